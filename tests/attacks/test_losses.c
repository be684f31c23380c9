/* test_losses.c — the logit losses against double-precision references: cross-entropy with
 * label smoothing (lib/loss.c), and attacks/losses.c's CE, CW margin, DLR, targeted DLR and
 * z_t − z_y, values and gradients by central differences; bad labels, targets and class
 * counts refused by qb_loss_eval and qb_attack_loss_grad. */
#include "qbtest.h"
#include "attacks.h"
#include "loss.h"
#include <math.h>
#include <string.h>

enum { K = 7 };
/* logits with gaps ≥ 0.1 between any two, so ±h never reorders them (the max and sorts of
 * margin and DLR are smooth there) */
static const float Z[3][K] = {{0.3f, -1.2f, 2.5f, 0.9f, 1.7f, -0.4f, 2.2f},
                              {1.1f, 0.6f, -0.3f, 2.9f, -2.0f, 0.15f, 1.9f},
                              {-0.8f, 3.1f, 0.45f, -1.5f, 1.35f, 2.6f, 0.0f}};

/* ---- double references (attacks.md §1, engine.md §5.1) ---- */

static double lse_d(const double *z, int n) {
    double mx = z[0], s = 0;
    for (int k = 1; k < n; k++) mx = fmax(mx, z[k]);
    for (int k = 0; k < n; k++) s += exp(z[k] - mx);
    return mx + log(s);
}

/* −Σ_k q_k log p_k with q_k = ε/K + (1−ε)[k = y] */
static double ce_smooth_d(const double *z, int n, int y, double eps) {
    double lse = lse_d(z, n), mean_nll = 0;
    for (int k = 0; k < n; k++) mean_nll += lse - z[k];
    return (1 - eps) * (lse - z[y]) + eps * mean_nll / n;
}

static double max_other_d(const double *z, int n, int y) {
    double m = -INFINITY;
    for (int k = 0; k < n; k++)
        if (k != y) m = fmax(m, z[k]);
    return m;
}

/* the r-th largest value (r ≥ 1); values are distinct here */
static double sorted_d(const double *z, int n, int r) {
    for (int j = 0; j < n; j++) {
        int above = 0;
        for (int i = 0; i < n; i++) above += z[i] > z[j];
        if (above == r - 1) return z[j];
    }
    return NAN;
}

static double loss_d(qb_loss kind, const double *z, int n, int y, int t) {
    switch (kind) {
    case QB_LOSS_CE: return ce_smooth_d(z, n, y, 0);
    case QB_LOSS_MARGIN: return z[y] - max_other_d(z, n, y);
    case QB_LOSS_DLR: return -(z[y] - max_other_d(z, n, y)) / (sorted_d(z, n, 1) - sorted_d(z, n, 3) + 1e-12);
    case QB_LOSS_DLR_T:
        return -(z[y] - z[t]) / (sorted_d(z, n, 1) - 0.5 * (sorted_d(z, n, 3) + sorted_d(z, n, 4)) + 1e-12);
    case QB_LOSS_TDIFF: return z[t] - z[y];
    }
    return NAN;
}

#define H_FD 1e-6
static void check_grad(const char *what, int row, int y, int j, double g, double fd) {
    ck_assert_msg(fabs(g - fd) <= 1e-6 * (1 + fabs(fd)), "%s row %d y %d: dL/dz%d %.10g vs finite difference %.10g",
                  what, row, y, j, g, fd);
}

/* Every label (and, targeted, several targets) of every row: value to 1e-12, gradient to the
 * float rounding of dz. */
START_TEST(test_attack_losses_fd) {
    qb_loss kind = (qb_loss)_i;
    const char *names[] = {"ce", "margin", "dlr", "dlr-t", "tdiff"};
    int targeted = kind == QB_LOSS_DLR_T || kind == QB_LOSS_TDIFF;
    for (int row = 0; row < 3; row++)
        for (int y = 0; y < K; y++)
            for (int dt = 1; dt <= (targeted ? 3 : 1); dt++) {
                int t = targeted ? (y + 2 * dt) % K : -1;
                float dz[K];
                double zd[K];
                for (int k = 0; k < K; k++) zd[k] = Z[row][k];
                double l = qb_loss_eval(kind, Z[row], K, y, t, dz), ref = loss_d(kind, zd, K, y, t);
                ck_assert_msg(fabs(l - ref) <= 1e-12 * (1 + fabs(ref)), "%s row %d y %d t %d: loss %.15g vs %.15g",
                              names[kind], row, y, t, l, ref);
                for (int j = 0; j < K; j++) {
                    double keep = zd[j];
                    zd[j] = keep + H_FD;
                    double lp = loss_d(kind, zd, K, y, t);
                    zd[j] = keep - H_FD;
                    double lm = loss_d(kind, zd, K, y, t);
                    zd[j] = keep;
                    check_grad(names[kind], row, y, j, dz[j], (lp - lm) / (2 * H_FD));
                }
            }
}
END_TEST

/* lib/loss.c's fused cross-entropy with label smoothing ε ∈ {0, 0.1, 0.4}: per-sample values
 * and the gradient (scale 1: per-sample sums; scale 1/B is the same scaled). */
START_TEST(test_crossentropy_smoothing_fd) {
    float eps_list[3] = {0.0f, 0.1f, 0.4f};
    int y[3] = {2, 0, 5};
    for (int e = 0; e < 3; e++) {
        float loss[3], dz[3 * K];
        ck_assert_int_eq(crossentropy_forward_backward(loss, dz, NULL, &Z[0][0], y, 3, K, eps_list[e], 1.0f), 0);
        for (int row = 0; row < 3; row++) {
            double zd[K];
            for (int k = 0; k < K; k++) zd[k] = Z[row][k];
            double ref = ce_smooth_d(zd, K, y[row], eps_list[e]);
            ck_assert_msg(fabs(loss[row] - ref) <= 1e-6 * (1 + ref), "ε %g row %d: loss %.9g vs %.9g", eps_list[e], row,
                          loss[row], ref);
            for (int j = 0; j < K; j++) {
                double keep = zd[j];
                zd[j] = keep + H_FD;
                double lp = ce_smooth_d(zd, K, y[row], eps_list[e]);
                zd[j] = keep - H_FD;
                double lm = ce_smooth_d(zd, K, y[row], eps_list[e]);
                zd[j] = keep;
                check_grad("ce smoothed", row, y[row], j, dz[row * K + j], (lp - lm) / (2 * H_FD));
            }
        }
    }
}
END_TEST

/* qb_loss_eval: NAN and an error, never a read outside z, for arguments it cannot take */
START_TEST(test_loss_eval_rejects) {
    const float *z = Z[0];
    float dz[K];
    struct { qb_loss kind; int K, y, t; const char *msg; } bad[] = {
        {QB_LOSS_CE, K, -1, -1, "label -1"},         {QB_LOSS_CE, K, K, -1, "label 7"},
        {QB_LOSS_MARGIN, 1, 0, -1, "at least 2"},    {QB_LOSS_DLR, 2, 0, -1, "at least 3"},
        {QB_LOSS_DLR_T, 3, 0, 1, "at least 4"},      {QB_LOSS_DLR_T, K, 0, -1, "target -1"},
        {QB_LOSS_DLR_T, K, 3, 3, "target is the label"}, {QB_LOSS_TDIFF, K, 1, K, "target 7"},
        {QB_LOSS_TDIFF, K, 2, 2, "target is the label"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dz[0] = 5;
        ck_assert(isnan(qb_loss_eval(bad[i].kind, z, bad[i].K, bad[i].y, bad[i].t, dz)));
        ck_assert_msg(strstr(qb_last_error(), bad[i].msg), "case %zu: '%s' lacks '%s'", i, qb_last_error(), bad[i].msg);
        ck_assert_float_eq(dz[0], 0.0f);
        ck_assert_int_ne(qb_loss_check(bad[i].kind, bad[i].K, bad[i].y, bad[i].t), 0);
    }
    /* the smallest valid cases; untargeted losses ignore t */
    ck_assert_int_eq(qb_loss_check(QB_LOSS_DLR, 3, 2, 99), 0);
    ck_assert_int_eq(qb_loss_check(QB_LOSS_DLR_T, 4, 0, 3), 0);
    ck_assert(isfinite(qb_loss_eval(QB_LOSS_MARGIN, z, 2, 1, -1, dz)));
}
END_TEST

/* qb_attack_loss_grad checks every image's label and target before the forward */
START_TEST(test_attack_loss_grad_rejects) {
    vit_config c = {0};
    c.img_size = 8, c.patch = 4, c.in_chans = 3, c.dim = 8, c.depth = 1, c.heads = 2, c.mlp_dim = 16;
    c.classes = 3, c.class_token = 1, c.qkv_bias = 1, c.pool = VIT_POOL_TOKEN, c.attn = VIT_ATTN_SDPA;
    for (int i = 0; i < 3; i++) c.std[i] = 0.5f;
    ck_assert_int_eq(vit_config_finish(&c), 0);
    vit_model m;
    ck_assert_int_eq(vit_init(&m, &c), 0);
    for (size_t i = 0; i < m.num_params; i++) m.params_mem[i] = 0.01f * (float)(i % 7);
    qb_attack_ws ws;
    ck_assert_int_eq(qb_attack_ws_init(&ws, &m, 2), 0);
    float x[2 * 3 * 64], g[2 * 3 * 64];
    for (int i = 0; i < 2 * 3 * 64; i++) x[i] = (float)(i % 11) / 10;
    double loss[2];
    int y[2] = {0, 2}, ybad[2] = {1, 3}, t[2] = {1, 0}, tsame[2] = {1, 2};
    ck_assert_int_eq(qb_attack_loss_grad(&ws, x, 2, y, NULL, QB_LOSS_CE, loss, g), 0);
    ck_assert_int_eq(qb_attack_loss_grad(&ws, x, 2, y, t, QB_LOSS_TDIFF, loss, g), 0);
    ck_assert_int_eq(qb_attack_loss_grad(&ws, x, 2, y, NULL, QB_LOSS_DLR, loss, g), 0);
    ck_assert_int_eq(qb_attack_loss_grad(&ws, x, 2, ybad, NULL, QB_LOSS_CE, loss, g), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "image 1: loss: label 3"));
    ck_assert_int_ne(qb_attack_loss_grad(&ws, x, 2, y, NULL, QB_LOSS_TDIFF, loss, g), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "image 0: targeted loss: target -1"));
    ck_assert_int_ne(qb_attack_loss_grad(&ws, x, 2, y, tsame, QB_LOSS_TDIFF, loss, g), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "image 1: targeted loss: the target is the label"));
    ck_assert_int_ne(qb_attack_loss_grad(&ws, x, 2, y, t, QB_LOSS_DLR_T, loss, g), 0); /* 3 classes */
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "at least 4 classes"));
    ck_assert_int_ne(qb_attack_loss_grad(&ws, x, 2, NULL, NULL, QB_LOSS_CE, NULL, g), 0);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "needs labels"));
    ck_assert_int_eq(qb_attack_loss_grad(&ws, x, 2, NULL, NULL, QB_LOSS_CE, NULL, NULL), 0); /* predict */
    qb_attack_ws_free(&ws);
    vit_free(&m);
}
END_TEST

Suite *losses_suite(void) {
    Suite *s = suite_create("losses");
    TCase *tc = tcase_create("logit losses");
    tcase_add_loop_test(tc, test_attack_losses_fd, QB_LOSS_CE, QB_LOSS_TDIFF + 1);
    tcase_add_test(tc, test_crossentropy_smoothing_fd);
    tcase_add_test(tc, test_loss_eval_rejects);
    tcase_add_test(tc, test_attack_loss_grad_rejects);
    suite_add_tcase(s, tc);
    return s;
}
