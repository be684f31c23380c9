/* test_vit_ops.c — lib/vit_ops.c kernel by kernel: every BLAS call shape against the naive
 * loop, and every backward against central finite differences of the "fake loss"
 * L = Σ out ⊙ r (r fixed random), accumulated in double over the float32 kernels.
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
static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* float32 central differences: tolerance |g − fd| ≤ 5e-4 + 5e-3·|fd| (the float forward's
 * rounding noise divided by 2h sets the absolute part) */
#define FD_H 1e-2f
static void check_grad(const char *what, float analytic, double fd) {
    ck_assert_msg(fabs(analytic - fd) <= 5e-4 + 5e-3 * fabs(fd), "%s: analytic %g vs finite difference %g", what,
                  analytic, fd);
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

START_TEST(test_layernorm_backward_fd) {
    seed_state = 3;
    int rows = 5, D = 8;
    float x[40], w[8], b[8], out[40], r[40], mean[5], rstd[5], dx[40] = {0}, dw[8] = {0}, db[8] = {0};
    fill(x, 40, 2), fill(w, 8, 1), fill(b, 8, 1), fill(r, 40, 1);
    layernorm_forward(out, mean, rstd, x, w, b, rows, D, 1e-6f);
    layernorm_backward(dx, dw, db, r, x, mean, rstd, w, rows, D);
    float *vars[3] = {x, w, b}, *grads[3] = {dx, dw, db};
    int sizes[3] = {40, 8, 8};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < sizes[v]; i++) {
            float keep = vars[v][i];
            vars[v][i] = keep + FD_H;
            layernorm_forward(out, NULL, NULL, x, w, b, rows, D, 1e-6f);
            double lp = dot(out, r, 40);
            vars[v][i] = keep - FD_H;
            layernorm_forward(out, NULL, NULL, x, w, b, rows, D, 1e-6f);
            double lm = dot(out, r, 40);
            vars[v][i] = keep;
            check_grad("layernorm", grads[v][i], (lp - lm) / (2 * FD_H));
        }
}
END_TEST

START_TEST(test_gelu_backward_fd) {
    seed_state = 4;
    float x[64], r[64], dx[64];
    fill(x, 64, 4), fill(r, 64, 1);
    gelu_backward(dx, x, r, 64);
    for (int i = 0; i < 64; i++) {
        float keep = x[i], o;
        x[i] = keep + FD_H;
        gelu_forward(&o, &x[i], 1);
        double lp = (double)o * r[i];
        x[i] = keep - FD_H;
        gelu_forward(&o, &x[i], 1);
        double lm = (double)o * r[i];
        x[i] = keep;
        check_grad("gelu", dx[i], (lp - lm) / (2 * FD_H));
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
    int M = 5, IN = 8, OUT = 6;
    float x[40], w[48], b[6], out[30], r[30], dx[40] = {0}, dw[48] = {0}, db[6] = {0};
    fill(x, 40, 1), fill(w, 48, 1), fill(b, 6, 1), fill(r, 30, 1);
    matmul_backward(dx, dw, db, r, OUT, x, w, M, IN, OUT, 5);
    float *vars[3] = {x, w, b}, *grads[3] = {dx, dw, db};
    int sizes[3] = {40, 48, 6};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < sizes[v]; i++) {
            float keep = vars[v][i];
            vars[v][i] = keep + FD_H;
            matmul_forward_naive(out, OUT, x, w, b, M, IN, OUT);
            double lp = dot(out, r, 30);
            vars[v][i] = keep - FD_H;
            matmul_forward_naive(out, OUT, x, w, b, M, IN, OUT);
            double lm = dot(out, r, 30);
            vars[v][i] = keep;
            check_grad("matmul", grads[v][i], (lp - lm) / (2 * FD_H));
        }
}
END_TEST

/* attention for each kind; for quest, keys of head 0 are scaled to norms below and above eps */
START_TEST(test_attention_backward_fd) {
    seed_state = 6 + _i;
    const int B = 1, N = 5, D = 8, H = 2, hd = 4;
    attention_dims a = {B, N, D, H, hd, _i, _i == VIT_ATTN_QUEST ? 1.0f : 0.5f, _i == VIT_ATTN_QUEST ? 0.05f : 1e-6f};
    float qkv[5 * 24], out[40], att[2 * 25], stat[4 * 2 * 5], r[40], dqkv[5 * 24], dqn[2 * 4 * 4];
    float qn[4][4];
    size_t T = (size_t)omp_get_max_threads();
    float *scr = malloc(sizeof(float) * T * attention_scratch_floats(N, hd));
    fill(qkv, 120, 1.5f), fill(r, 40, 1);
    for (int s = 0; s < 4; s++) fill(qn[s], 4, 0.5f), qn[s][0] += 1;
    if (_i == VIT_ATTN_QUEST)
        for (int n = 0; n < N; n++) /* head 0 keys: norms ~0.02 (< eps) for n < 2, ~0.2 otherwise */
            for (int i = 0; i < hd; i++) qkv[n * 24 + D + i] *= n < 2 ? 0.01f : 0.1f;
    attention_forward(out, att, stat, qkv, qn[0], qn[1], qn[2], qn[3], scr, &a);
    if (_i == VIT_ATTN_QUEST) {
        ck_assert_float_lt(stat[2 * 10 + 0], a.eps); /* slot 2 holds ‖k‖ of (b0,h0,n0) */
        ck_assert_float_gt(stat[2 * 10 + 3], a.eps);
    }
    attention_backward(dqkv, dqn, r, qkv, att, stat, qn[0], qn[1], qn[2], qn[3], scr, &a);
    float h = _i == VIT_ATTN_QUEST ? 1e-3f : FD_H;
    for (int i = 0; i < 120; i++) {
        float keep = qkv[i];
        qkv[i] = keep + h;
        attention_forward(out, att, stat, qkv, qn[0], qn[1], qn[2], qn[3], scr, &a);
        double lp = dot(out, r, 40);
        qkv[i] = keep - h;
        attention_forward(out, att, stat, qkv, qn[0], qn[1], qn[2], qn[3], scr, &a);
        double lm = dot(out, r, 40);
        qkv[i] = keep;
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(dqkv[i] - fd) <= 2e-3 + 5e-3 * fabs(fd), "attention %s dqkv[%d]: %g vs %g",
                      vit_attn_name(_i), i, dqkv[i], fd);
    }
    if (_i == VIT_ATTN_QKNORM) /* q_norm/k_norm weight and bias, summed over heads */
        for (int s = 0; s < 4; s++)
            for (int i = 0; i < hd; i++) {
                float keep = qn[s][i];
                qn[s][i] = keep + FD_H;
                attention_forward(out, att, stat, qkv, qn[0], qn[1], qn[2], qn[3], scr, &a);
                double lp = dot(out, r, 40);
                qn[s][i] = keep - FD_H;
                attention_forward(out, att, stat, qkv, qn[0], qn[1], qn[2], qn[3], scr, &a);
                double lm = dot(out, r, 40);
                qn[s][i] = keep;
                float g = 0;
                for (int bh = 0; bh < B * H; bh++) g += dqn[(bh * 4 + s) * hd + i];
                check_grad("qknorm affine", g, (lp - lm) / (2 * FD_H));
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
    tcase_add_test(tc, test_normalize_and_im2col_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}
