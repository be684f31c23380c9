/* test_vit_ops.c — lib/vit_ops.c kernel by kernel: every BLAS call shape against the naive
 * loop, and every float32 backward against central finite differences, in double precision,
 * of the "fake loss" L = Σ out ⊙ r (r fixed random) through double reference forwards.
 * Tiny shapes (N=5, D=8, H=2, hd=4) as engine.md §2.6 suggests. */
#include "qbtest.h"
#include "vit.h"
#include "vit_ops.h"
#include <math.h>
#include <omp.h>
#include <string.h>

static uint64_t seed_state;
static float rnd(void) { /* deterministic uniform [-1, 1) */
    seed_state = seed_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((seed_state >> 40) * (1.0 / (1 << 23))) - 1.0f;
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * rnd();
}


START_TEST(test_gemm_tiled_vs_naive) {
    seed_state = 1;
    int shapes[][3] = {{5, 7, 3}, {300, 70, 33}, {17, 600, 9}, {64, 64, 64}};
    for (int s = 0; s < 4; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
                float *C = malloc(sizeof(float) * M * (N + 3)), *R = malloc(sizeof(float) * M * N);
                fill(A, (size_t)M * K, 1), fill(B, (size_t)N * K, 1), fill(C, (size_t)M * (N + 3), 1);
                int lda = ta ? M : K, ldb = tb ? K : N, ldc = N + 3; /* strided output */
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double acc = 0.5 * C[(size_t)i * ldc + j];
                        for (int k = 0; k < K; k++)
                            acc += 2.0 * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                                   (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                        R[(size_t)i * N + j] = (float)acc;
                    }
                gemm_tiled(ta, tb, M, N, K, 2.0f, A, lda, B, ldb, 0.5f, C, ldc, (s & 1) ? 0 : (M % 5 == 0 ? 5 : 1));
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++)
                        ck_assert_float_eq_tol(C[(size_t)i * ldc + j], R[(size_t)i * N + j], 1e-4f * (1 + K));
                free(A), free(B), free(C), free(R);
            }
    }
}
END_TEST

START_TEST(test_matmul_forward_vs_naive) {
    seed_state = 2;
    int M = 37, IN = 19, OUT = 23, ldo = 29;
    float *x = malloc(sizeof(float) * M * IN), *w = malloc(sizeof(float) * OUT * IN), *b = malloc(sizeof(float) * OUT);
    float *o1 = calloc((size_t)M * ldo, sizeof(float)), *o2 = calloc((size_t)M * ldo, sizeof(float));
    fill(x, (size_t)M * IN, 1), fill(w, (size_t)OUT * IN, 1), fill(b, OUT, 1);
    matmul_forward(o1, ldo, x, w, b, M, IN, OUT, 1);
    matmul_forward_naive(o2, ldo, x, w, b, M, IN, OUT);
    for (int i = 0; i < M * ldo; i++) ck_assert_float_eq_tol(o1[i], o2[i], 1e-5f);
    free(x), free(w), free(b), free(o1), free(o2);
}
END_TEST

/* ---- double-precision reference forwards for the finite differences ---- */

static void ln_d(double *out, const double *x, const double *w, const double *b, int rows, int D, double eps) {
    for (int r = 0; r < rows; r++) {
        const double *v = x + (size_t)r * D;
        double m = 0, var = 0;
        for (int i = 0; i < D; i++) m += v[i];
        m /= D;
        for (int i = 0; i < D; i++) var += (v[i] - m) * (v[i] - m);
        double rs = 1.0 / sqrt(var / D + eps);
        for (int i = 0; i < D; i++) out[(size_t)r * D + i] = (v[i] - m) * rs * w[i] + b[i];
    }
}

static void linear_d(double *out, const double *x, const double *w, const double *b, int M, int IN, int OUT) {
    for (int r = 0; r < M; r++)
        for (int o = 0; o < OUT; o++) {
            double acc = b[o];
            for (int i = 0; i < IN; i++) acc += x[(size_t)r * IN + i] * w[(size_t)o * IN + i];
            out[(size_t)r * OUT + o] = acc;
        }
}

/* attention core on qkv (B, N, 3D) as vit_ops does it; qn = q_norm w, b, k_norm w, b (4, hd) */
static void attention_d(double *out, const double *qkv, const double *qn, const attention_dims *a) {
    int N = a->N, D = a->D, hd = a->hd;
    double q[8][16], k[8][16], S[8][8];
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++) {
            for (int n = 0; n < N; n++)
                for (int i = 0; i < hd; i++) {
                    q[n][i] = qkv[((size_t)b * N + n) * 3 * D + h * hd + i];
                    k[n][i] = qkv[((size_t)b * N + n) * 3 * D + D + h * hd + i];
                }
            for (int n = 0; n < N; n++) {
                if (a->kind == VIT_ATTN_QKNORM) {
                    double tq[16], tk[16];
                    memcpy(tq, q[n], sizeof tq), memcpy(tk, k[n], sizeof tk);
                    ln_d(q[n], tq, qn, qn + hd, 1, hd, a->eps);
                    ln_d(k[n], tk, qn + 2 * hd, qn + 3 * hd, 1, hd, a->eps);
                } else if (a->kind == VIT_ATTN_QUEST) {
                    double ss = 0;
                    for (int i = 0; i < hd; i++) ss += k[n][i] * k[n][i];
                    double r = fmax(sqrt(ss), a->eps);
                    for (int i = 0; i < hd; i++) k[n][i] /= r;
                }
            }
            for (int i = 0; i < N; i++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < N; j++) {
                    double d = 0;
                    for (int t = 0; t < hd; t++) d += q[i][t] * k[j][t];
                    S[i][j] = a->scale * d;
                    mx = fmax(mx, S[i][j]);
                }
                for (int j = 0; j < N; j++) sum += (S[i][j] = exp(S[i][j] - mx));
                for (int t = 0; t < hd; t++) {
                    double o = 0;
                    for (int j = 0; j < N; j++) o += S[i][j] / sum * qkv[((size_t)b * N + j) * 3 * D + 2 * D + h * hd + t];
                    out[((size_t)b * N + i) * D + h * hd + t] = o;
                }
            }
        }
}

/* Central differences of the double forward, step h, against the float backward:
 * |g − fd| ≤ 1e-4 + 3e-3·|fd| (engine.md §2.6). */
#define FD64_H 1e-5
static void check_fd(const char *what, int i, float analytic, double fd) {
    ck_assert_msg(fabs(analytic - fd) <= 1e-4 + 3e-3 * fabs(fd), "%s[%d]: analytic %.8g vs finite difference %.8g",
                  what, i, analytic, fd);
}

static void to_double(double *d, const float *f, int n) {
    for (int i = 0; i < n; i++) d[i] = f[i];
}

START_TEST(test_layernorm_backward_fd) {
    seed_state = 3;
    enum { R = 5, D = 8 };
    float x[R * D], w[D], b[D], out[R * D], r[R * D], mean[R], rstd[R], dx[R * D] = {0}, dw[D] = {0}, db[D] = {0};
    fill(x, R * D, 2), fill(w, D, 1), fill(b, D, 1), fill(r, R * D, 1);
    layernorm_forward(out, mean, rstd, x, w, b, R, D, 1e-6f);
    layernorm_backward(dx, dw, db, r, x, mean, rstd, w, R, D);
    double xd[R * D], wd[D], bd[D], rd[R * D], od[R * D];
    to_double(xd, x, R * D), to_double(wd, w, D), to_double(bd, b, D), to_double(rd, r, R * D);
    double *vars[3] = {xd, wd, bd};
    float *grads[3] = {dx, dw, db};
    int sizes[3] = {R * D, D, D};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < sizes[v]; i++) {
            double keep = vars[v][i], lp, lm;
            vars[v][i] = keep + FD64_H;
            ln_d(od, xd, wd, bd, R, D, 1e-6);
            lp = 0;
            for (int j = 0; j < R * D; j++) lp += od[j] * rd[j];
            vars[v][i] = keep - FD64_H;
            ln_d(od, xd, wd, bd, R, D, 1e-6);
            lm = 0;
            for (int j = 0; j < R * D; j++) lm += od[j] * rd[j];
            vars[v][i] = keep;
            check_fd(v == 0 ? "layernorm dx" : v == 1 ? "layernorm dw" : "layernorm db", i, grads[v][i], (lp - lm) / (2 * FD64_H));
        }
}
END_TEST

START_TEST(test_gelu_backward_fd) {
    seed_state = 4;
    float x[64], r[64], dx[64];
    fill(x, 64, 4), fill(r, 64, 1);
    gelu_backward(dx, x, r, 64);
    for (int i = 0; i < 64; i++) {
        double xp = (double)x[i] + FD64_H, xm = (double)x[i] - FD64_H;
        double gp = 0.5 * xp * (1 + erf(xp / sqrt(2.0))), gm = 0.5 * xm * (1 + erf(xm / sqrt(2.0)));
        check_fd("gelu", i, dx[i], (gp - gm) / (2 * FD64_H) * r[i]);
    }
    /* exact-erf GELU values (PyTorch's nn.GELU()): gelu(1) = 0.8413447, gelu(-2) = -0.04550026 */
    float v[2] = {1.0f, -2.0f}, g[2];
    gelu_forward(g, v, 2);
    ck_assert_float_eq_tol(g[0], 0.8413447f, 3e-7f);
    ck_assert_float_eq_tol(g[1], -0.04550026f, 3e-7f);
}
END_TEST

START_TEST(test_matmul_backward_fd) {
    seed_state = 5;
    enum { M = 5, IN = 8, OUT = 6 };
    float x[M * IN], w[OUT * IN], b[OUT], r[M * OUT], dx[M * IN] = {0}, dw[OUT * IN] = {0}, db[OUT] = {0};
    fill(x, M * IN, 1), fill(w, OUT * IN, 1), fill(b, OUT, 1), fill(r, M * OUT, 1);
    matmul_backward(dx, dw, db, r, OUT, x, w, M, IN, OUT, 5);
    double xd[M * IN], wd[OUT * IN], bd[OUT], rd[M * OUT], od[M * OUT];
    to_double(xd, x, M * IN), to_double(wd, w, OUT * IN), to_double(bd, b, OUT), to_double(rd, r, M * OUT);
    double *vars[3] = {xd, wd, bd};
    float *grads[3] = {dx, dw, db};
    int sizes[3] = {M * IN, OUT * IN, OUT};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < sizes[v]; i++) {
            double keep = vars[v][i], lp = 0, lm = 0;
            vars[v][i] = keep + FD64_H;
            linear_d(od, xd, wd, bd, M, IN, OUT);
            for (int j = 0; j < M * OUT; j++) lp += od[j] * rd[j];
            vars[v][i] = keep - FD64_H;
            linear_d(od, xd, wd, bd, M, IN, OUT);
            for (int j = 0; j < M * OUT; j++) lm += od[j] * rd[j];
            vars[v][i] = keep;
            check_fd("matmul", i, grads[v][i], (lp - lm) / (2 * FD64_H));
        }
}
END_TEST

/* attention for each kind; for quest, keys of head 0 have norms below and above eps */
START_TEST(test_attention_backward_fd) {
    seed_state = 6 + _i;
    enum { B = 1, N = 5, D = 8, H = 2, hd = 4 };
    attention_dims a = {B, N, D, H, hd, _i, _i == VIT_ATTN_QUEST ? 1.0f : 0.5f, _i == VIT_ATTN_QUEST ? 0.05f : 1e-6f};
    float qkv[N * 3 * D], out[N * D], att[H * N * N], stat[4 * H * N], r[N * D], dqkv[N * 3 * D], dqn[H * 4 * hd];
    float qn[4 * hd];
    size_t T = (size_t)omp_get_max_threads();
    float *scr = malloc(sizeof(float) * T * attention_scratch_floats(N, hd));
    fill(qkv, N * 3 * D, 1.5f), fill(r, N * D, 1), fill(qn, 4 * hd, 0.5f);
    qn[0] += 1, qn[2 * hd] += 1;
    if (_i == VIT_ATTN_QUEST)
        for (int n = 0; n < N; n++) /* head 0 keys: norms ~0.02 (< eps) for n < 2, ~0.2 otherwise */
            for (int i = 0; i < hd; i++) qkv[n * 3 * D + D + i] *= n < 2 ? 0.01f : 0.1f;
    attention_forward(out, att, stat, qkv, qn, qn + hd, qn + 2 * hd, qn + 3 * hd, scr, &a);
    if (_i == VIT_ATTN_QUEST) {
        ck_assert_float_lt(stat[2 * H * N + 0], a.eps); /* slot 2 holds ‖k‖ of (b0,h0,n0) */
        ck_assert_float_gt(stat[2 * H * N + 3], a.eps);
    }
    attention_backward(dqkv, dqn, r, qkv, att, stat, qn, qn + hd, qn + 2 * hd, qn + 3 * hd, scr, &a);
    double qd[N * 3 * D], nd[4 * hd], rd[N * D], od[N * D];
    to_double(qd, qkv, N * 3 * D), to_double(nd, qn, 4 * hd), to_double(rd, r, N * D);
    attention_dims ad = a;
    for (int i = 0; i < N * 3 * D; i++) {
        double keep = qd[i], lp = 0, lm = 0;
        qd[i] = keep + FD64_H;
        attention_d(od, qd, nd, &ad);
        for (int j = 0; j < N * D; j++) lp += od[j] * rd[j];
        qd[i] = keep - FD64_H;
        attention_d(od, qd, nd, &ad);
        for (int j = 0; j < N * D; j++) lm += od[j] * rd[j];
        qd[i] = keep;
        check_fd(vit_attn_name(_i), i, dqkv[i], (lp - lm) / (2 * FD64_H));
    }
    if (_i == VIT_ATTN_QKNORM) /* q_norm/k_norm weight and bias, summed over heads */
        for (int i = 0; i < 4 * hd; i++) {
            double keep = nd[i], lp = 0, lm = 0;
            nd[i] = keep + FD64_H;
            attention_d(od, qd, nd, &ad);
            for (int j = 0; j < N * D; j++) lp += od[j] * rd[j];
            nd[i] = keep - FD64_H;
            attention_d(od, qd, nd, &ad);
            for (int j = 0; j < N * D; j++) lm += od[j] * rd[j];
            nd[i] = keep;
            float g = 0;
            for (int bh = 0; bh < B * H; bh++) g += dqn[(bh * 4 + i / hd) * hd + i % hd];
            check_fd("qknorm affine", i, g, (lp - lm) / (2 * FD64_H));
        }
    free(scr);
}
END_TEST

/* QUEST logits are bounded by the query norm: |S_ij| ≤ ‖q_i‖ (keys on the unit sphere). */
START_TEST(test_quest_logit_bound) {
    seed_state = 9;
    const int N = 6, D = 8, H = 2, hd = 4;
    attention_dims a = {1, N, D, H, hd, VIT_ATTN_QUEST, 1.0f, 1e-6f};
    float qkv[6 * 24], out[48], att[2 * 36], stat[4 * 2 * 6];
    float *scr = malloc(sizeof(float) * omp_get_max_threads() * attention_scratch_floats(N, hd));
    fill(qkv, 144, 10.0f);
    attention_forward(out, att, stat, qkv, NULL, NULL, NULL, NULL, scr, &a);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < N; i++) {
            double qn = 0;
            for (int t = 0; t < hd; t++) qn += (double)qkv[i * 24 + h * hd + t] * qkv[i * 24 + h * hd + t];
            qn = sqrt(qn);
            /* softmax of logits bounded by ±‖q‖: every probability ≥ e^{−2‖q‖}/N */
            for (int j = 0; j < N; j++) ck_assert(att[h * 36 + i * N + j] >= exp(-2 * qn) / N * (1 - 1e-5));
        }
    free(scr);
}
END_TEST

/* pooling ('token'; 'avg' with and without a class token) backward against finite differences */
START_TEST(test_pool_backward_fd) {
    seed_state = 11 + _i;
    enum { B = 2, N = 5, D = 8 };
    int cls = _i < 2, avg = _i > 0;
    float t[B * N * D], r[B * D], pooled[B * D], dt[B * N * D];
    fill(t, B * N * D, 1), fill(r, B * D, 1);
    pool_forward(pooled, t, B, N, D, cls, avg);
    pool_backward(dt, r, B, N, D, cls, avg);
    double td[B * N * D];
    to_double(td, t, B * N * D);
    for (int i = 0; i < B * N * D; i++) {
        double keep = td[i], l[2];
        for (int s = 0; s < 2; s++) {
            td[i] = keep + (s ? -FD64_H : FD64_H);
            l[s] = 0;
            for (int b = 0; b < B; b++)
                for (int j = 0; j < D; j++) {
                    double v = 0;
                    if (!avg) v = td[(size_t)b * N * D + j];
                    else {
                        for (int n = cls; n < N; n++) v += td[((size_t)b * N + n) * D + j];
                        v /= N - cls;
                    }
                    l[s] += v * r[b * D + j];
                }
        }
        td[i] = keep;
        check_fd(avg ? "avg pool" : "token pool", i, dt[i], (l[0] - l[1]) / (2 * FD64_H));
    }
}
END_TEST

/* token sequence: cls row and position embedding, gradients of cls and pos by finite differences */
START_TEST(test_tokens_backward_fd) {
    seed_state = 14 + _i;
    enum { B = 2, N = 5, D = 8 };
    int cls = _i;
    float t[B * N * D], e[B * N * D], c[D], pos[N * D], r[B * N * D], dc[D] = {0}, dpos[N * D] = {0};
    fill(e, B * N * D, 1), fill(c, D, 1), fill(pos, N * D, 1), fill(r, B * N * D, 1);
    memcpy(t, e, sizeof t);
    tokens_forward(t, c, pos, B, N, D, cls);
    for (int i = 0; i < B * N * D; i++) /* row 0 is the cls token when there is one */
        ck_assert_float_eq(t[i], (cls && i % (N * D) < D ? c[i % D] : e[i]) + pos[i % (N * D)]);
    tokens_backward(dc, dpos, r, B, N, D, cls);
    double cd[D], pd[N * D];
    to_double(cd, c, D), to_double(pd, pos, N * D);
    double *vars[2] = {cd, pd};
    float *grads[2] = {dc, dpos};
    int sizes[2] = {D, N * D};
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < sizes[v]; i++) {
            double keep = vars[v][i], l[2];
            for (int s = 0; s < 2; s++) {
                vars[v][i] = keep + (s ? -FD64_H : FD64_H);
                l[s] = 0;
                for (int b = 0; b < B; b++)
                    for (int j = 0; j < N * D; j++)
                        l[s] += ((cls && j < D ? cd[j] : e[b * N * D + j]) + pd[j]) * r[b * N * D + j];
            }
            vars[v][i] = keep;
            check_fd(v ? "dpos" : "dcls", i, grads[v][i], (l[0] - l[1]) / (2 * FD64_H));
        }
}
END_TEST

START_TEST(test_normalize_and_im2col_roundtrip) {
    seed_state = 10;
    int B = 2, C = 3, G = 3, P = 4, S = G * P;
    size_t n = (size_t)B * C * S * S;
    float *x = malloc(n * 4), *xn = malloc(n * 4), *pt = malloc(n * 4), *back = malloc(n * 4);
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    fill(x, n, 1);
    normalize_forward(xn, x, mean, std, B, C, S * S);
    ck_assert_float_eq(xn[0], (x[0] - mean[0]) / std[0]);
    im2col_forward(pt, xn, B, C, G, P);
    /* patch p=(gy=1,gx=2), channel 1, ky=3, kx=0 of image 1 */
    ck_assert_float_eq(pt[((size_t)1 * G * G + 1 * G + 2) * C * P * P + (1 * P + 3) * P + 0],
                       xn[(((size_t)1 * C + 1) * S + 1 * P + 3) * S + 2 * P + 0]);
    im2col_backward(back, pt, B, C, G, P);
    ck_assert_int_eq(memcmp(back, xn, n * 4), 0);
    normalize_backward(back, xn, std, B, C, S * S);
    ck_assert_float_eq(back[5], xn[5] / std[0]);
    /* the fused op gives the same bits as normalise then im2col */
    float *fused = malloc(n * 4);
    im2col_normalize_forward(fused, x, mean, std, B, C, G, P);
    ck_assert_int_eq(memcmp(fused, pt, n * 4), 0);
    free(fused);
    free(x), free(xn), free(pt), free(back);
}
END_TEST

Suite *vit_ops_suite(void) {
    Suite *s = suite_create("vit_ops");
    TCase *tc = tcase_create("kernels");
    tcase_add_test(tc, test_gemm_tiled_vs_naive);
    tcase_add_test(tc, test_matmul_forward_vs_naive);
    tcase_add_test(tc, test_layernorm_backward_fd);
    tcase_add_test(tc, test_gelu_backward_fd);
    tcase_add_test(tc, test_matmul_backward_fd);
    tcase_add_loop_test(tc, test_attention_backward_fd, 0, 3);
    tcase_add_test(tc, test_quest_logit_bound);
    tcase_add_loop_test(tc, test_pool_backward_fd, 0, 3);
    tcase_add_loop_test(tc, test_tokens_backward_fd, 0, 2);
    tcase_add_test(tc, test_normalize_and_im2col_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}
