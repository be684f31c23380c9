/* test_vit_grad.c — lib/vit.c's backward as a whole against central finite differences, in
 * double precision, of a double reference forward written here (timm's ViT, engine.md §1.2)
 * for the fake loss L = Σ logits ⊙ r. Covers what the per-kernel tests (test_vit_ops.c) do
 * not: the patch embedding (im2col + matmul per image), the cls-token and position-embedding
 * gradients, pooling inside the model, and input-gradient mode's class-token-only last block.
 * Tiny model: img 8, patch 4 (4 patches), dim 8, 2 heads, depth 2, MLP 16, 4 classes, B = 2. */
#include "qbtest.h"
#include "vit.h"
#include <math.h>
#include <string.h>

static uint64_t seed_state;
static float rnd(void) { /* deterministic uniform [-1, 1) */
    seed_state = seed_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((seed_state >> 40) * (1.0 / (1 << 23))) - 1.0f;
}

enum { NMAX = 8, DMAX = 8, FMAX = 16 };

static void ln_row_d(double *out, const double *x, const double *w, const double *b, int D, double eps) {
    double m = 0, var = 0;
    for (int i = 0; i < D; i++) m += x[i];
    m /= D;
    for (int i = 0; i < D; i++) var += (x[i] - m) * (x[i] - m);
    double rs = 1.0 / sqrt(var / D + eps);
    for (int i = 0; i < D; i++) out[i] = (x[i] - m) * rs * w[i] + b[i];
}

/* out (OUT) = w (OUT, IN) · x + b (b may be NULL) */
static void lin_d(double *out, const double *x, const double *w, const double *b, int IN, int OUT) {
    for (int o = 0; o < OUT; o++) {
        double acc = b ? b[o] : 0;
        for (int i = 0; i < IN; i++) acc += w[(size_t)o * IN + i] * x[i];
        out[o] = acc;
    }
}

/* the reference forward: x (B, 3, S, S) pixels, p the double copy of the parameter arena (same
 * layout as vit_model.params_mem, slot offsets off[]) → logits (B, K) */
static void vit_forward_d(double *logits, const double *x, const double *p, const size_t *off, const vit_config *c, int B) {
    const int S = c->img_size, P = c->patch, G = c->grid, N = c->n_tokens, D = c->dim, F = c->mlp_dim;
    const int H = c->heads, hd = c->head_dim, K = c->classes, cls = c->class_token ? 1 : 0, CPP = 3 * P * P;
    const double *patchw = p + off[0], *patchb = p + off[1], *cls_tok = p + off[2], *pos = p + off[3];
    for (int b = 0; b < B; b++) {
        double T[NMAX][DMAX], a[NMAX][DMAX], qkv[NMAX][3 * DMAX], o[NMAX][DMAX], h[FMAX], t[DMAX], col[3 * 16];
        for (int g = 0; g < G * G; g++) { /* patch embedding: conv(stride P) = im2col · Wᵀ + b */
            int gy = g / G, gx = g % G;
            for (int ch = 0; ch < 3; ch++)
                for (int ky = 0; ky < P; ky++)
                    for (int kx = 0; kx < P; kx++)
                        col[(ch * P + ky) * P + kx] =
                            (x[(((size_t)b * 3 + ch) * S + gy * P + ky) * S + gx * P + kx] - c->mean[ch]) / c->std[ch];
            lin_d(T[cls + g], col, patchw, patchb, CPP, D);
        }
        if (cls) memcpy(T[0], cls_tok, sizeof(double) * D);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < D; i++) T[n][i] += pos[n * D + i];
        for (int l = 0; l < c->depth; l++) {
            const double *ln1w = p + off[4] + l * D, *ln1b = p + off[5] + l * D;
            const double *qkvw = p + off[6] + (size_t)l * 3 * D * D, *qkvb = c->qkv_bias ? p + off[7] + l * 3 * D : NULL;
            const double *qnw = p + off[8] + l * hd, *qnb = p + off[9] + l * hd;
            const double *knw = p + off[10] + l * hd, *knb = p + off[11] + l * hd;
            const double *projw = p + off[12] + (size_t)l * D * D, *projb = p + off[13] + l * D;
            const double *ln2w = p + off[14] + l * D, *ln2b = p + off[15] + l * D;
            const double *fc1w = p + off[16] + (size_t)l * F * D, *fc1b = p + off[17] + l * F;
            const double *fc2w = p + off[18] + (size_t)l * D * F, *fc2b = p + off[19] + l * D;
            for (int n = 0; n < N; n++) {
                ln_row_d(a[n], T[n], ln1w, ln1b, D, c->norm_eps);
                lin_d(qkv[n], a[n], qkvw, qkvb, D, 3 * D);
            }
            for (int hh = 0; hh < H; hh++) {
                double q[NMAX][DMAX], k[NMAX][DMAX];
                for (int n = 0; n < N; n++) {
                    double *qr = &qkv[n][hh * hd], *kr = &qkv[n][D + hh * hd];
                    if (c->attn == VIT_ATTN_QKNORM) {
                        ln_row_d(q[n], qr, qnw, qnb, hd, c->norm_eps);
                        ln_row_d(k[n], kr, knw, knb, hd, c->norm_eps);
                    } else {
                        memcpy(q[n], qr, sizeof(double) * hd), memcpy(k[n], kr, sizeof(double) * hd);
                    }
                    if (c->attn == VIT_ATTN_QUEST) { /* k / max(‖k‖, eps) */
                        double ss = 0;
                        for (int i = 0; i < hd; i++) ss += k[n][i] * k[n][i];
                        double r = fmax(sqrt(ss), c->quest_eps);
                        for (int i = 0; i < hd; i++) k[n][i] /= r;
                    }
                }
                for (int i = 0; i < N; i++) {
                    double s[NMAX], mx = -INFINITY, sum = 0;
                    for (int j = 0; j < N; j++) {
                        double d = 0;
                        for (int e = 0; e < hd; e++) d += q[i][e] * k[j][e];
                        mx = fmax(mx, s[j] = c->attn_scale * d);
                    }
                    for (int j = 0; j < N; j++) sum += (s[j] = exp(s[j] - mx));
                    for (int e = 0; e < hd; e++) {
                        double acc = 0;
                        for (int j = 0; j < N; j++) acc += s[j] / sum * qkv[j][2 * D + hh * hd + e];
                        o[i][hh * hd + e] = acc;
                    }
                }
            }
            for (int n = 0; n < N; n++) {
                lin_d(t, o[n], projw, projb, D, D);
                for (int i = 0; i < D; i++) T[n][i] += t[i];
                ln_row_d(t, T[n], ln2w, ln2b, D, c->norm_eps);
                lin_d(h, t, fc1w, fc1b, D, F);
                for (int i = 0; i < F; i++) h[i] = 0.5 * h[i] * (1 + erf(h[i] / sqrt(2.0)));
                lin_d(t, h, fc2w, fc2b, F, D);
                for (int i = 0; i < D; i++) T[n][i] += t[i];
            }
        }
        double pooled[DMAX], f[DMAX];
        for (int i = 0; i < D; i++) {
            pooled[i] = 0;
            if (c->pool == VIT_POOL_TOKEN) pooled[i] = T[0][i];
            else {
                for (int n = cls; n < N; n++) pooled[i] += T[n][i];
                pooled[i] /= N - cls;
            }
        }
        ln_row_d(f, pooled, p + off[20], p + off[21], D, c->norm_eps);
        lin_d(logits + (size_t)b * K, f, p + off[22], p + off[23], D, K);
    }
}

static double fake_loss_d(const double *x, const double *p, const size_t *off, const vit_config *c, int B,
                          const float *r) {
    double z[2 * 8], L = 0;
    vit_forward_d(z, x, p, off, c, B);
    for (int i = 0; i < B * c->classes; i++) L += z[i] * r[i];
    return L;
}

#define FD64_H 1e-5
/* |g − fd| ≤ 1e-4 + 3e-3·|fd| per element (engine.md §2.6) */
static void check_fd(const char *cfg, const char *what, size_t i, float g, double fd) {
    ck_assert_msg(fabs(g - fd) <= 1e-4 + 3e-3 * fabs(fd), "%s: %s[%zu]: analytic %.8g vs finite difference %.8g", cfg,
                  what, i, g, fd);
}

typedef struct {
    const char *name;
    vit_attn attn;
    vit_pool pool;
    int cls, qkv_bias;
} grad_case;

static const grad_case CASES[] = {
    {"sdpa token", VIT_ATTN_SDPA, VIT_POOL_TOKEN, 1, 1},
    {"qknorm avg cls", VIT_ATTN_QKNORM, VIT_POOL_AVG, 1, 1},
    {"quest avg nocls", VIT_ATTN_QUEST, VIT_POOL_AVG, 0, 0},
    {"quest token", VIT_ATTN_QUEST, VIT_POOL_TOKEN, 1, 1},
};

static const char *SLOT_NAMES[VIT_PARAM_SLOTS] = {
    "patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "pos_embed", "norm1.weight", "norm1.bias",
    "qkv.weight", "qkv.bias", "q_norm.weight", "q_norm.bias", "k_norm.weight", "k_norm.bias", "proj.weight",
    "proj.bias", "norm2.weight", "norm2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "norm.weight",
    "norm.bias", "head.weight", "head.bias"};

/* Full mode: every parameter gradient and dx; input-gradient mode: dx (for 'token' pooling
 * through the class-token-only last block). */
START_TEST(test_model_backward_fd) {
    const grad_case *gc = &CASES[_i];
    enum { B = 2, S = 8 };
    vit_config c = {0};
    c.img_size = S, c.patch = 4, c.in_chans = 3, c.dim = 8, c.depth = 2, c.heads = 2, c.mlp_dim = 16, c.classes = 4;
    c.class_token = gc->cls, c.qkv_bias = gc->qkv_bias, c.pool = gc->pool, c.attn = gc->attn;
    c.mean[0] = 0.485f, c.mean[1] = 0.456f, c.mean[2] = 0.406f, c.std[0] = 0.229f, c.std[1] = 0.224f, c.std[2] = 0.225f;
    c.quest_eps = 0.8f; /* some keys below it: the clamp branch too */
    ck_assert_int_eq(vit_config_finish(&c), 0);
    vit_model m;
    ck_assert_int_eq(vit_init(&m, &c), 0);
    seed_state = 100 + _i;
    size_t off[VIT_PARAM_SLOTS], o = 0;
    for (int s = 0; s < VIT_PARAM_SLOTS; s++) {
        off[s] = o;
        int is_norm_w = s == 4 || s == 8 || s == 10 || s == 14 || s == 20;
        float scale = s == 0 ? 0.15f : s == 6 ? 0.6f : s == 2 || s == 3 ? 0.5f : 0.3f;
        for (size_t i = 0; i < m.param_sizes[s]; i++) m.params_mem[o + i] = (is_norm_w ? 1.0f : 0.0f) + scale * rnd();
        o += m.param_sizes[s];
    }
    if (!c.qkv_bias) memset(*vit_param_slot(&m.params, 7), 0, m.param_sizes[7] * sizeof(float)); /* unused: zeros */
    size_t nx = (size_t)B * 3 * S * S;
    float x[B * 3 * S * S], r[B * 4], dx[B * 3 * S * S], dx_ig[B * 3 * S * S];
    for (size_t i = 0; i < nx; i++) x[i] = 0.5f + 0.5f * rnd();
    for (int i = 0; i < B * 4; i++) r[i] = rnd();
    ck_assert_int_eq(vit_forward(&m, x, B, VIT_MODE_FULL, NULL), 0);
    ck_assert_int_eq(vit_zero_grad(&m), 0);
    ck_assert_int_eq(vit_backward(&m, r, dx), 0);
    ck_assert_int_eq(vit_forward(&m, x, B, VIT_MODE_INPUT_GRAD, NULL), 0);
    ck_assert_int_eq(vit_backward(&m, r, dx_ig), 0);
    if (c.attn == VIT_ATTN_QUEST) { /* block 0's key norms straddle eps: both branches are checked */
        const float *kn = m.acts.qk_stat + 2 * (size_t)B * c.heads * c.n_tokens;
        int below = 0, n = B * c.heads * c.n_tokens;
        for (int i = 0; i < n; i++) below += kn[i] < c.quest_eps;
        ck_assert_msg(below > 0 && below < n, "%d of %d keys below quest eps", below, n);
    }

    double *pd = malloc(sizeof(double) * m.num_params), xd[B * 3 * S * S];
    for (size_t i = 0; i < m.num_params; i++) pd[i] = m.params_mem[i];
    for (size_t i = 0; i < nx; i++) xd[i] = x[i];
    for (int s = 0; s < VIT_PARAM_SLOTS; s++)
        for (size_t i = 0; i < m.param_sizes[s]; i++) {
            double *v = &pd[off[s] + i], keep = *v;
            *v = keep + FD64_H;
            double lp = fake_loss_d(xd, pd, off, &c, B, r);
            *v = keep - FD64_H;
            double lm = fake_loss_d(xd, pd, off, &c, B, r);
            *v = keep;
            check_fd(gc->name, SLOT_NAMES[s], i, m.grads_mem[off[s] + i], (lp - lm) / (2 * FD64_H));
        }
    for (size_t i = 0; i < nx; i++) {
        double keep = xd[i];
        xd[i] = keep + FD64_H;
        double lp = fake_loss_d(xd, pd, off, &c, B, r);
        xd[i] = keep - FD64_H;
        double lm = fake_loss_d(xd, pd, off, &c, B, r);
        xd[i] = keep;
        double fd = (lp - lm) / (2 * FD64_H);
        check_fd(gc->name, "dx (full)", i, dx[i], fd);
        check_fd(gc->name, "dx (input-gradient mode)", i, dx_ig[i], fd);
    }
    free(pd);
    vit_free(&m);
}
END_TEST

Suite *vit_grad_suite(void) {
    Suite *s = suite_create("vit_grad");
    TCase *tc = tcase_create("finite differences");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_model_backward_fd, 0, (int)(sizeof CASES / sizeof *CASES));
    suite_add_tcase(s, tc);
    return s;
}
