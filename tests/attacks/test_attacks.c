/* test_attacks.c — attacks/ against PyTorch (FGSM, FGM, PGD L∞/L2 step for step on the
 * fixtures of tests/ref/make_attack_fixtures.py), APGD's schedule and halving rule, the
 * L2 ball, loss gradients, batch-size and thread-count invariance, the CLI. */
#include "qbtest.h"
#include "attacks.h"
#include "model.h"
#include "results.h"
#include "rng.h"
#include "safetensors.h"
#include <math.h>
#include <omp.h>
#include <string.h>

static const char *FIXTURES[] = {"sdpa_attack", "quest_attack"};

typedef struct {
    qb_model m;
    st_file ref;
    float *x, *grad, *fgsm, *fgm, *pgd_linf, *pgd_l2;
    int *y;
    float eps_linf, alpha_linf, eps_l2, alpha_l2;
    int B, T;
    size_t d, plane;
} fixture;

static float *ref_tensor(st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    ck_assert_msg(t != NULL, "reference tensor %s missing", name);
    float *buf = malloc(t->numel * sizeof(float));
    ck_assert_int_eq(st_to_f32(f, t, buf), 0);
    return buf;
}

static float ref_scalar(st_file *f, const char *name) {
    float *v = ref_tensor(f, name), s = v[0];
    free(v);
    return s;
}

static void fixture_open(fixture *fx, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "attacks/%s.safetensors", name);
    ck_assert_msg(qb_model_load(&fx->m, qbt_fixture(path), NULL) == 0, "load %s: %s", name, qb_last_error());
    snprintf(path, sizeof path, "attacks/%s.ref.safetensors", name);
    ck_assert_int_eq(st_open(&fx->ref, qbt_fixture(path)), 0);
    fx->x = ref_tensor(&fx->ref, "x");
    fx->grad = ref_tensor(&fx->ref, "grad");
    fx->fgsm = ref_tensor(&fx->ref, "fgsm");
    fx->fgm = ref_tensor(&fx->ref, "fgm");
    fx->pgd_linf = ref_tensor(&fx->ref, "pgd_linf");
    fx->pgd_l2 = ref_tensor(&fx->ref, "pgd_l2");
    fx->B = (int)st_find(&fx->ref, "x")->shape[0];
    fx->T = (int)st_find(&fx->ref, "pgd_linf")->shape[0] - 1;
    float *yf = ref_tensor(&fx->ref, "y");
    fx->y = malloc(sizeof(int) * fx->B);
    for (int b = 0; b < fx->B; b++) fx->y[b] = (int)yf[b];
    free(yf);
    fx->eps_linf = ref_scalar(&fx->ref, "eps_linf"), fx->alpha_linf = ref_scalar(&fx->ref, "alpha_linf");
    fx->eps_l2 = ref_scalar(&fx->ref, "eps_l2"), fx->alpha_l2 = ref_scalar(&fx->ref, "alpha_l2");
    int S = fx->m.vit.cfg.img_size;
    fx->plane = (size_t)S * S, fx->d = 3 * fx->plane;
}

static void fixture_close(fixture *fx) {
    free(fx->x), free(fx->grad), free(fx->fgsm), free(fx->fgm), free(fx->pgd_linf), free(fx->pgd_l2), free(fx->y);
    st_close(&fx->ref);
    qb_model_free(&fx->m);
}

static qb_attack_cfg cfg_make(qb_norm norm, float eps, float step, int steps) {
    qb_attack_cfg c;
    qb_attack_cfg_init(&c);
    c.norm = norm, c.eps = eps, c.step = step, c.steps = steps, c.restarts = 1;
    return c;
}

/* Coordinates where a sign step may legitimately differ from PyTorch: the reference
 * gradient is within float noise of zero there (relative to the image's largest entry). */
static int tiny_grad(const float *g, size_t d, size_t i) {
    float mx = 0;
    for (size_t k = 0; k < d; k++) mx = fmaxf(mx, fabsf(g[k]));
    return fabsf(g[i]) <= 1e-4f * mx;
}

/* FGSM equals clip01(x + ε·sign ∇) with ∇ from PyTorch; our gradient matches PyTorch's. */
START_TEST(test_fgsm_matches_pytorch) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    qb_attack_ws ws;
    ck_assert_int_eq(qb_attack_ws_init(&ws, &fx.m.vit, fx.B), 0);
    size_t nx = fx.B * fx.d;
    float *adv = malloc(nx * sizeof(float));
    qb_attack_cfg c = cfg_make(QB_NORM_LINF, fx.eps_linf, 0, 1);
    uint64_t ids[8] = {0};
    ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_FGSM, &c, fx.x, fx.y, ids, fx.B, adv), 0);
    double num = 0, den = 0;
    for (size_t i = 0; i < nx; i++) {
        num += ((double)ws.grad[i] - fx.grad[i]) * ((double)ws.grad[i] - fx.grad[i]);
        den += (double)fx.grad[i] * fx.grad[i];
    }
    ck_assert_msg(sqrt(num / den) < 1e-4, "gradient relative error %g", sqrt(num / den));
    int differ = 0;
    for (int b = 0; b < fx.B; b++)
        for (size_t i = 0; i < fx.d; i++) {
            size_t k = b * fx.d + i;
            if (adv[k] != fx.fgsm[k]) {
                ck_assert_msg(tiny_grad(fx.grad + b * fx.d, fx.d, i), "%s: fgsm differs at %zu where |g| = %g",
                              FIXTURES[_i], k, fx.grad[k]);
                differ++;
            }
        }
    ck_assert_int_le(differ, (int)(nx / 1000));
    /* FGM (L2): the same gradient normalised */
    c = cfg_make(QB_NORM_L2, fx.eps_l2, 0, 1);
    ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_FGSM, &c, fx.x, fx.y, ids, fx.B, adv), 0);
    for (size_t i = 0; i < nx; i++) ck_assert_float_eq_tol(adv[i], fx.fgm[i], 2e-6f);
    free(adv);
    qb_attack_ws_free(&ws);
    fixture_close(&fx);
}
END_TEST

/* PGD without random start follows the PyTorch run: each step from the reference iterate
 * gives the next reference iterate, and the whole C run ends where PyTorch ends. */
START_TEST(test_pgd_follows_pytorch) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    qb_attack_ws ws;
    ck_assert_int_eq(qb_attack_ws_init(&ws, &fx.m.vit, fx.B), 0);
    size_t nx = fx.B * fx.d;
    float *next = malloc(nx * sizeof(float)), *adv = malloc(nx * sizeof(float));
    uint64_t ids[8] = {0};
    for (int norm = 0; norm < 2; norm++) {
        const float *traj = norm == 0 ? fx.pgd_linf : fx.pgd_l2;
        qb_attack_cfg c = norm == 0 ? cfg_make(QB_NORM_LINF, fx.eps_linf, fx.alpha_linf, fx.T)
                                    : cfg_make((qb_norm)norm, fx.eps_l2, fx.alpha_l2, fx.T);
        int differ = 0;
        for (int t = 0; t < fx.T; t++) {
            const float *xt = traj + t * nx, *xr = traj + (t + 1) * nx;
            ck_assert_int_eq(qb_attack_loss_grad(&ws, xt, fx.B, fx.y, NULL, QB_LOSS_CE, NULL, ws.grad), 0);
            qb_pgd_step(&c, c.step, fx.x, xt, ws.grad, fx.B, fx.plane, next);
            for (size_t i = 0; i < nx; i++) {
                if (norm == 1) { ck_assert_float_eq_tol(next[i], xr[i], 2e-6f); continue; }
                if (next[i] != xr[i]) {
                    ck_assert_msg(tiny_grad(ws.grad + (i / fx.d) * fx.d, fx.d, i % fx.d),
                                  "%s step %d: L-inf iterate differs at %zu (our g %g)", FIXTURES[_i], t, i, ws.grad[i]);
                    differ++;
                }
            }
        }
        ck_assert_int_le(differ, (int)(fx.T * nx / 1000));
        c.random_start = 0;
        ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_PGD, &c, fx.x, fx.y, ids, fx.B, adv), 0);
        const float *last = traj + fx.T * nx;
        int far = 0;
        for (size_t i = 0; i < nx; i++) far += fabsf(adv[i] - last[i]) > 1e-5f;
        ck_assert_msg(far <= (int)(nx / 200), "%s %s: %d coordinates off the reference end point", FIXTURES[_i],
                      norm ? "l2" : "linf", far);
    }
    free(next), free(adv);
    qb_attack_ws_free(&ws);
    fixture_close(&fx);
}
END_TEST

/* The checkpoint iterations of attacks.md §4.1. */
START_TEST(test_apgd_checkpoints) {
    int out[128];
    static const int c100[] = {22, 41, 57, 70, 80, 87, 93, 99};
    ck_assert_int_eq(qb_apgd_checkpoints(100, out, 128), 8);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(out[i], c100[i]);
    static const int c50[] = {11, 21, 30, 38, 45};
    ck_assert_int_eq(qb_apgd_checkpoints(50, out, 128), 5);
    for (int i = 0; i < 5; i++) ck_assert_int_eq(out[i], c50[i]);
    /* 20: 4, 7, 9, then every step */
    int n = qb_apgd_checkpoints(20, out, 128);
    ck_assert_int_eq(n, 3 + 11);
    ck_assert_int_eq(out[0], 4);
    ck_assert_int_eq(out[1], 7);
    ck_assert_int_eq(out[2], 9);
    for (int i = 3; i < n; i++) ck_assert_int_eq(out[i], 7 + i);
    n = qb_apgd_checkpoints(10, out, 128);
    ck_assert_int_eq(n, 9);
    for (int i = 0; i < n; i++) ck_assert_int_eq(out[i], 2 + i);
    /* the formula itself: interval k_{j+1} = max(k_j − ⌊0.03N⌋, ⌊0.06N⌋), k_0 = ⌊0.22N⌋ */
    for (int N = 1; N <= 300; N += 7) {
        int m = qb_apgd_checkpoints(N, out, 128), k = (int)fmax(floor(0.22 * N), 1), at = 0;
        int decr = (int)fmax(floor(0.03 * N), 1), kmin = (int)fmax(floor(0.06 * N), 1);
        for (int j = 0; j < m; j++) {
            at += k;
            ck_assert_int_eq(out[j], at);
            k = k - decr > kmin ? k - decr : kmin;
        }
        ck_assert_int_gt(at + k, N); /* no checkpoint missed at the end */
    }
}
END_TEST

/* The halving rule: cond1 (loss rose in at most ρ·k of the last k steps) or cond2 (no halving
 * last time and no improvement of the best loss), with loss_steps[−1] = loss_steps[N−1]. */
START_TEST(test_apgd_step_halving) {
    double ls[10] = {0};
    /* k = 4 at i = 3: steps 0..3 rise 1,2,3,4 over ls[-1] = ls[9] = 0 → osc 4 > 3 → no halving */
    for (int j = 0; j < 4; j++) ls[j] = j + 1;
    ck_assert_int_eq(qb_apgd_should_halve(ls, 1, 10, 3, 4, 0.75, 1, 4, 4), 0);
    /* wrap-around: with ls[9] = 5 the first step is not an increase → osc 3 ≤ 3 → halve */
    ls[9] = 5;
    ck_assert_int_eq(qb_apgd_should_halve(ls, 1, 10, 3, 4, 0.75, 1, 4, 4), 1);
    ls[9] = 0;
    /* oscillating loss: 2 increases out of 4 → halve */
    double osc[10] = {1, 0.5, 2, 1.5, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(qb_apgd_should_halve(osc, 1, 10, 3, 4, 0.75, 1, 0, 2), 1);
    /* cond2: rising loss but best not improved since an unreduced checkpoint */
    ck_assert_int_eq(qb_apgd_should_halve(ls, 1, 10, 3, 4, 0.75, 0, 4, 4), 1);
    ck_assert_int_eq(qb_apgd_should_halve(ls, 1, 10, 3, 4, 0.75, 0, 3, 4), 0);
    /* strided storage (iterations × images) reads the right column */
    double st[20] = {0};
    for (int j = 0; j < 4; j++) st[j * 2 + 1] = j + 1;
    ck_assert_int_eq(qb_apgd_should_halve(st + 1, 2, 10, 3, 4, 0.75, 1, 4, 4), 0);
    ck_assert_int_eq(qb_apgd_should_halve(st, 2, 10, 3, 4, 0.75, 1, 0, 0), 1);
}
END_TEST

/* The APGD run itself follows the schedule and the halving rule (attacks.md §4): from the
 * run's own loss trace, an independent restatement of autopgd's loop says where the step must
 * halve; the run's step sizes must agree at every iteration, for L∞ and L2. Its points stay
 * in the ball and the range, as do FGM's. */
START_TEST(test_apgd_run_follows_schedule) {
    fixture fx;
    fixture_open(&fx, "sdpa_attack");
    qb_attack_ws ws;
    ck_assert_int_eq(qb_attack_ws_init(&ws, &fx.m.vit, fx.B), 0);
    int *pred = malloc(sizeof(int) * fx.B);
    ck_assert_int_eq(qb_attack_predict(&ws, fx.x, fx.B, pred), 0); /* labels = predictions: every image attacked */
    float *adv = malloc(sizeof(float) * fx.B * fx.d), *dl = malloc(sizeof(float) * fx.d);
    uint64_t ids[64];
    for (int b = 0; b < fx.B; b++) ids[b] = (uint64_t)b;
    enum { N = 30 };
    double tr[2 * (N + 1)];
    int halvings = 0, kept = 0;
    for (int norm = 0; norm < 2; norm++) {
        qb_attack_cfg c = cfg_make((qb_norm)norm, norm ? 0.5f : 4.0f / 255, 0, N);
        c.seed = 3;
        ws.apgd_trace = tr;
        ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_APGD_CE, &c, fx.x, pred, ids, 1, adv), 0);
        ws.apgd_trace = NULL;
        /* autopgd: k = max(⌊0.22N⌋, 1), then max(k − max(⌊0.03N⌋, 1), max(⌊0.06N⌋, 1)); at a checkpoint halve when the
         * loss rose in at most 0.75k of the last k steps (loss_steps[−1] is the last slot, 0
         * until written) or when the last checkpoint did not halve and the best did not improve */
        double ls[N] = {0}, best = tr[0], best_last = tr[0], eta = tr[1];
        int k = (int)fmax(floor(0.22 * N), 1), decr = (int)fmax(floor(0.03 * N), 1), kmin = (int)fmax(floor(0.06 * N), 1);
        int counter = 0, red = 1;
        ck_assert_double_eq(eta, 2.0 * c.eps * 1.0f);
        for (int i = 0; i < N; i++) {
            ls[i] = tr[2 * i + 2];
            if (ls[i] > best) best = ls[i];
            if (++counter == k) {
                int osc = 0;
                for (int j = i - k + 1; j <= i; j++) osc += ls[j] > ls[j - 1 < 0 ? N - 1 : j - 1];
                int halve = osc <= 0.75 * k || (!red && best_last >= best);
                red = halve, best_last = best;
                if (halve) eta /= 2, halvings++;
                else kept++;
                k = k - decr > kmin ? k - decr : kmin, counter = 0;
            }
            ck_assert_msg((float)eta == (float)tr[2 * i + 3], "norm %d it %d: step %g, the rule says %g", norm, i,
                          tr[2 * i + 3], eta);
        }
        /* every image's returned point: in the ball and [0,1] */
        ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_APGD_CE, &c, fx.x, pred, ids, fx.B, adv), 0);
        for (int pass = 0; pass < 2; pass++) {
            if (pass) { /* FGM / FGSM, one step of ε */
                c.steps = 1;
                ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_FGSM, &c, fx.x, pred, ids, fx.B, adv), 0);
            }
            for (int b = 0; b < fx.B; b++) {
                for (size_t i = 0; i < fx.d; i++) {
                    dl[i] = adv[b * fx.d + i] - fx.x[b * fx.d + i];
                    ck_assert(adv[b * fx.d + i] >= 0 && adv[b * fx.d + i] <= 1);
                }
                double nrm = qb_attack_norm(c.norm, dl, fx.plane, c.scale);
                ck_assert_msg(norm ? nrm <= c.eps * (1 + 1e-5) : nrm <= c.eps + 1e-6, "%s norm %d: %g > eps %g",
                              pass ? "fgm" : "apgd", norm, nrm, c.eps);
            }
        }
    }
    ck_assert_int_gt(halvings, 0); /* both branches of the rule were taken */
    ck_assert_int_gt(kept, 0);
    free(pred), free(adv), free(dl);
    qb_attack_ws_free(&ws);
    fixture_close(&fx);
}
END_TEST

/* L2 and L∞ random starts and PGD steps stay inside the ball and [0,1]. */
START_TEST(test_ball_and_range) {
    int S = 16;
    size_t plane = (size_t)S * S, d = 3 * plane;
    float *x = malloc(d * sizeof(float)), *x0 = malloc(d * sizeof(float)), *g = malloc(d * sizeof(float));
    float *xn = malloc(d * sizeof(float)), *dl = malloc(d * sizeof(float));
    qb_rng r = qb_rng_stream(7, 7, "test");
    float scales[2][3] = {{1, 1, 1}, {0.229f, 0.224f, 0.225f}};
    for (int norm = 0; norm < 2; norm++)
        for (int sc = 0; sc < 2; sc++)
            for (int trial = 0; trial < 20; trial++) {
                for (size_t i = 0; i < d; i++) x[i] = (float)qb_rng_below(&r, 256) / 255.0f, g[i] = (float)qb_rng_normal(&r);
                qb_attack_cfg c = cfg_make((qb_norm)norm, norm ? 0.5f + trial : 8.0f / 255, 0, 10);
                memcpy(c.scale, scales[sc], sizeof c.scale);
                c.seed = trial;
                qb_pgd_random_start(&c, x, (uint64_t)trial, 0, plane, x0);
                for (int step = 0; step < 3; step++) {
                    const float *cur = step == 0 ? x0 : xn;
                    for (size_t i = 0; i < d; i++) dl[i] = cur[i] - x[i];
                    double nrm = qb_attack_norm(c.norm, dl, plane, c.scale);
                    ck_assert_msg(norm ? nrm <= c.eps * (1 + 1e-5) : nrm <= c.eps + 1e-6, "norm %g > eps %g", nrm, c.eps);
                    for (size_t i = 0; i < d; i++) ck_assert(cur[i] >= 0 && cur[i] <= 1);
                    /* a step of 3ε must be projected back */
                    qb_pgd_step(&c, 3 * c.eps, x, cur, g, 1, plane, xn);
                }
            }
    free(x), free(x0), free(g), free(xn), free(dl);
}
END_TEST

/* Logit gradients of CE, DLR and targeted DLR against central differences. */
START_TEST(test_loss_gradients) {
    float z[7] = {0.3f, -1.2f, 2.5f, 0.9f, 1.7f, -0.4f, 2.2f}, dz[7], zp[7];
    qb_loss kinds[3] = {QB_LOSS_CE, QB_LOSS_DLR, QB_LOSS_DLR_T};
    for (int k = 0; k < 3; k++)
        for (int y = 0; y < 7; y += 3) {
            int t = (y + 1) % 7;
            qb_loss_eval(kinds[k], z, 7, y, t, dz);
            for (int j = 0; j < 7; j++) {
                memcpy(zp, z, sizeof z);
                float h = 1e-3f;
                zp[j] = z[j] + h;
                double lp = qb_loss_eval(kinds[k], zp, 7, y, t, NULL);
                zp[j] = z[j] - h;
                double lm = qb_loss_eval(kinds[k], zp, 7, y, t, NULL);
                ck_assert_msg(fabs((lp - lm) / (2 * h) - dz[j]) < 2e-3, "loss %d y %d: d/dz%d %g vs %g", k, y, j,
                              (lp - lm) / (2 * h), dz[j]);
            }
        }
    /* DLR of a correctly classified point is negative, of a misclassified one positive */
    ck_assert(qb_loss_eval(QB_LOSS_DLR, z, 7, 2, -1, NULL) < 0);
    ck_assert(qb_loss_eval(QB_LOSS_DLR, z, 7, 1, -1, NULL) > 0);
    ck_assert_int_eq(qb_rank_class(z, 7, 1), 2);
    ck_assert_int_eq(qb_rank_class(z, 7, 2), 6);
    float tie[4] = {1, 3, 3, 0};
    ck_assert_int_eq(qb_rank_class(tie, 4, 1), 1); /* ties: lower index first */
    ck_assert_int_eq(qb_rank_class(tie, 4, 2), 2);
    ck_assert_int_eq(qb_square_side(0, 0.8f, 224, 224), 200);
    ck_assert_int_eq(qb_square_side(11, 0.8f, 224, 224), 142);
    ck_assert_int_eq(qb_square_side(4001, 0.8f, 224, 224), 18);
    ck_assert_int_eq(qb_square_side(0, 0.8f, 32, 32), 29);
    ck_assert_int_eq(qb_square_side(4001, 0.8f, 32, 32), 3);
}
END_TEST

/* Every attack gives bit-identical points for batch 8 vs one image at a time, and for 1 vs 2
 * threads. */
START_TEST(test_batch_and_thread_invariance) {
    qb_model m;
    ck_assert_int_eq(qb_model_load(&m, qbt_fixture("attacks/sdpa_attack.safetensors"), NULL), 0);
    int B = 8, S = m.vit.cfg.img_size;
    size_t d = (size_t)3 * S * S;
    float *x = malloc(B * d * sizeof(float)), *a8 = malloc(B * d * sizeof(float)), *a1 = malloc(B * d * sizeof(float));
    int y[8];
    uint64_t ids[8];
    qb_rng r = qb_rng_stream(3, 3, "invariance");
    for (size_t i = 0; i < B * d; i++) x[i] = (float)qb_rng_below(&r, 256) / 255.0f;
    qb_attack_ws ws;
    ck_assert_int_eq(qb_attack_ws_init(&ws, &m.vit, B), 0);
    int pred[8];
    ck_assert_int_eq(qb_attack_predict(&ws, x, B, pred), 0);
    for (int b = 0; b < B; b++) {
        y[b] = b % 3 == 0 ? (pred[b] + 1) % 10 : pred[b]; /* some already wrong */
        char rel[32];
        snprintf(rel, sizeof rel, "img%d.png", b);
        ids[b] = qb_image_id(rel);
    }
    int saved = omp_get_max_threads();
    for (int k = 0; k < QB_ATK_COUNT; k++) {
        for (int norm = 0; norm < 2; norm++) {
            qb_attack_cfg c = cfg_make((qb_norm)norm, norm ? 0.5f : k == QB_ATK_FAB_T ? 0.05f : 4.0f / 255, 0,
                                       k == QB_ATK_SQUARE ? 30 : 4);
            c.random_start = 1, c.restarts = 2, c.n_targets = 3, c.seed = 11;
            omp_set_num_threads(2);
            ck_assert_int_eq(qb_attack_run(&ws, k, &c, x, y, ids, B, a8), 0);
            omp_set_num_threads(1);
            for (int b = 0; b < B; b++) ck_assert_int_eq(qb_attack_run(&ws, k, &c, x + b * d, y + b, ids + b, 1, a1 + b * d), 0);
            ck_assert_msg(memcmp(a8, a1, B * d * sizeof(float)) == 0, "%s %s: batch 8 / 2 threads differs from batch 1 / 1 thread",
                          qb_attack_name(k), qb_norm_name(c.norm));
            int moved = 0;
            for (size_t i = 0; i < B * d; i++) moved += a8[i] != x[i];
            ck_assert_msg(moved > 0, "%s did nothing", qb_attack_name(k));
        }
    }
    omp_set_num_threads(saved);
    /* bad input */
    qb_attack_cfg c = cfg_make(QB_NORM_LINF, 0, 0, 1);
    ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_PGD, &c, x, y, ids, 1, a1), QB_EXIT_USAGE);
    c.eps = 0.1f;
    int bad = 10;
    ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_PGD, &c, x, &bad, ids, 1, a1), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "outside"));
    qb_attack_kind k;
    ck_assert_int_eq(qb_attack_parse("cw", &k), QB_EXIT_USAGE);
    free(x), free(a8), free(a1);
    qb_attack_ws_free(&ws);
    qb_model_free(&m);
}
END_TEST

/* FAB's L∞ projection: the displaced point is in [0,1] and on the hyperplane when it is
 * reachable, and no smaller L∞ radius reaches it; an unreachable one goes to the corner. */
START_TEST(test_fab_projection) {
    size_t plane = 5, n = 3 * plane;
    float t[15], w[15], dd[15], scale[3] = {1, 1, 1}, lo01[3] = {0, 0, 0}, hi01[3] = {1, 1, 1};
    char scratch[15 * 8];
    qb_rng r = qb_rng_stream(9, 9, "fab-proj");
    for (int trial = 0; trial < 200; trial++) {
        for (size_t i = 0; i < n; i++) t[i] = qb_rng_uniformf(&r), w[i] = (float)qb_rng_normal(&r);
        if (trial % 5 == 0) w[trial % n] = 0;
        double wt = 0, wmin = 0, wmax = 0;
        for (size_t i = 0; i < n; i++) wt += (double)w[i] * t[i], wmin += w[i] < 0 ? w[i] : 0, wmax += w[i] > 0 ? w[i] : 0;
        double b = wt + (qb_rng_uniform(&r) - 0.5) * (trial % 7 == 0 ? 40 : 4); /* some out of reach */
        qb_fab_project_linf(t, w, b, plane, scale, lo01, hi01, dd, scratch);
        double wv = 0, lam = 0;
        for (size_t i = 0; i < n; i++) {
            float v = t[i] + dd[i];
            ck_assert(v >= -1e-6f && v <= 1 + 1e-6f);
            if (w[i] == 0) ck_assert(dd[i] == 0);
            wv += (double)w[i] * v;
            lam = fabs(dd[i]) > lam ? fabs(dd[i]) : lam;
        }
        int reachable = b >= wmin - 1e-9 && b <= wmax + 1e-9;
        if (!reachable) {
            for (size_t i = 0; i < n; i++) /* every coordinate at the bound that moves w·v toward b */
                if (w[i] != 0) ck_assert(fabsf(t[i] + dd[i] - ((w[i] > 0) == (b > wt) ? 1.0f : 0.0f)) < 1e-6f);
            continue;
        }
        ck_assert_msg(fabs(wv - b) < 1e-4 * (1 + fabs(b)), "trial %d: w.v %g vs b %g", trial, wv, b);
        /* a radius 1% smaller cannot reach the hyperplane */
        double best = 0, l2 = 0.99 * lam;
        for (size_t i = 0; i < n; i++) {
            double p = (w[i] > 0) == (b > wt) ? 1.0 - t[i] : t[i];
            best += fabs(w[i]) * (p < l2 ? p : l2);
        }
        ck_assert_msg(lam < 1e-9 || best < fabs(b - wt) * (1 + 1e-9), "trial %d: radius %g is not minimal", trial, lam);
    }
}
END_TEST

/* FAB-T on both fixture models: in the ball and [0,1], deterministic, and it breaks the
 * points PGD breaks at a large eps (a minimum-norm attack then finds a point inside the ball). */
START_TEST(test_fab_t) {
    fixture fx;
    fixture_open(&fx, FIXTURES[_i]);
    int B = fx.B;
    qb_attack_ws ws;
    ck_assert_int_eq(qb_attack_ws_init(&ws, &fx.m.vit, B), 0);
    size_t nx = B * fx.d;
    float *a1 = malloc(nx * sizeof(float)), *a2 = malloc(nx * sizeof(float)), *ap = malloc(nx * sizeof(float));
    float *dl = malloc(fx.d * sizeof(float));
    int y[16], pred[16];
    uint64_t ids[16];
    ck_assert_int_eq(qb_attack_predict(&ws, fx.x, B, pred), 0);
    for (int b = 0; b < B; b++) y[b] = pred[b], ids[b] = 100 + b; /* every point clean-correct */
    float eps_list[2] = {2.0f / 255, 0.1f};
    for (int e = 0; e < 2; e++) {
        qb_attack_cfg c = cfg_make(QB_NORM_LINF, eps_list[e], 0, 20);
        c.n_targets = 3, c.restarts = 2, c.seed = 3;
        ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_FAB_T, &c, fx.x, y, ids, B, a1), 0);
        ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_FAB_T, &c, fx.x, y, ids, B, a2), 0);
        ck_assert_msg(memcmp(a1, a2, nx * sizeof(float)) == 0, "fab-t is not deterministic");
        qb_attack_cfg cp = cfg_make(QB_NORM_LINF, eps_list[e], 0, 10);
        cp.random_start = 1;
        ck_assert_int_eq(qb_attack_run(&ws, QB_ATK_PGD, &cp, fx.x, y, ids, B, ap), 0);
        int pf[16], pp[16], broken_fab = 0, broken_pgd = 0;
        ck_assert_int_eq(qb_attack_predict(&ws, a1, B, pf), 0);
        ck_assert_int_eq(qb_attack_predict(&ws, ap, B, pp), 0);
        for (int b = 0; b < B; b++) {
            for (size_t i = 0; i < fx.d; i++) {
                float v = a1[b * fx.d + i];
                ck_assert(v >= 0 && v <= 1);
                dl[i] = v - fx.x[b * fx.d + i];
            }
            ck_assert(qb_attack_norm(QB_NORM_LINF, dl, fx.plane, c.scale) <= c.eps + 1e-7);
            broken_fab += pf[b] != y[b], broken_pgd += pp[b] != y[b];
            if (pf[b] == y[b]) /* not broken: the clean image comes back */
                ck_assert(memcmp(a1 + b * fx.d, fx.x + b * fx.d, fx.d * sizeof(float)) == 0);
            if (e == 1 && pp[b] != y[b]) ck_assert_msg(pf[b] != y[b], "image %d: PGD breaks it at eps 0.1, FAB-T does not", b);
        }
        if (e == 1) ck_assert_int_gt(broken_pgd, 0);
        if (e == 1) ck_assert_int_ge(broken_fab, broken_pgd);
    }
    free(a1), free(a2), free(ap), free(dl);
    qb_attack_ws_free(&ws);
    fixture_close(&fx);
}
END_TEST

/* The CLI end to end on a tiny data tree labelled with the model's own predictions. */
START_TEST(test_cli) {
    char dir[256], cmd[4096], *out = NULL, *err = NULL;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir()); /* qbt_run reuses qbt_tmpdir's buffer */
    static const char *imgs[] = {"png_rgb8.png", "jpg_444.jpg", "rs_37x23.png", "png_rgba8.png"};
    snprintf(cmd, sizeof cmd, "mkdir -p %s/data/a %s/data/b", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "cp %s/%s %s/data/%s/%d_%s", qbt_fixture("images"), imgs[i], dir, i < 2 ? "a" : "b", i, imgs[i]);
        ck_assert_int_eq(system(cmd), 0);
    }
    const char *model = qbt_fixture("attacks/sdpa_attack.safetensors");
    /* labels = clean predictions, so every point starts robust */
    snprintf(cmd, sizeof cmd, "%s attack --model %s --data %s/data --attack fgsm --eps 1/255 --per-image %s/p.csv", qbt_bin(),
             model, dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "awk -F, 'NR > 1 {print $9, $11}' %s/p.csv > %s/labels.txt", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "%s attack --model tiny=%s --data %s/data --labels %s/labels.txt --attack fgsm,pgd,apgd-ce,standard --eps 1/255,0.1 "
             "--steps 5 --batch 3 --seed 5 --save-adv %s/adv --out %s/r.csv --per-image %s/a.csv",
             qbt_bin(), model, dir, dir, dir, dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "clean accuracy: 100.00% (4/4)"));
    ck_assert_ptr_nonnull(strstr(out, "worst"));
    ck_assert_ptr_nonnull(strstr(out, "sanity (points of 4):"));
    ck_assert_ptr_null(strstr(out, "EXCEEDS"));
    free(out), free(err);
    /* per-image: 24 fields, 4 images x 4 attacks x 2 eps rows; PNGs under the model's NAME and
     * the attack's row name (its settings tag made a folder name) */
    snprintf(cmd, sizeof cmd, "(awk -F, 'NF != 24' %s/a.csv | wc -l; tail -n +2 %s/a.csv | wc -l; "
                              "ls %s/adv/tiny/pgd_steps=5/eps_1_255/a | wc -l)", dir, dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_str_eq(out, "0\n32\n2\n");
    free(out), free(err);
    /* the results rows, read back: one clean row, 4 attacks x 2 eps and a worst row per eps, each
     * matching the per-image rows (correct = robust points) */
    char path[512];
    snprintf(path, sizeof path, "%s/r.csv", dir);
    qb_results rs = {0};
    ck_assert_int_eq(qb_results_read(&rs, path), 0);
    ck_assert_int_eq(rs.n, 11);
    char sha[65];
    ck_assert_int_eq(qb_sha256_file(model, sha), 0);
    int n_clean = 0, n_worst = 0;
    for (int i = 0; i < rs.n; i++) {
        qb_result *w = &rs.rows[i];
        ck_assert_str_eq(w->model, "tiny");
        ck_assert_str_eq(w->model_sha256, sha);
        ck_assert_str_eq(w->attention, "sdpa");
        ck_assert_int_eq(w->n, 4);
        ck_assert_int_eq((int)w->seed, 5);
        ck_assert(strstr(w->dataset, "/data") != NULL);
        if (!strcmp(w->kind, "clean")) { n_clean++; ck_assert_int_eq(w->correct, 4); continue; }
        ck_assert_str_eq(w->kind, "attack");
        ck_assert_str_eq(w->norm, "linf");
        ck_assert(fabs(w->eps - 1.0 / 255) < 1e-12 || fabs(w->eps - 0.1) < 1e-12);
        /* count from the per-image rows: robust points of this attack, or images robust under all */
        snprintf(path, sizeof path, "%s/a.csv", dir);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        char line[1024], broken_img[8][256];
        int n_broken = 0;
        long expect = 0;
        int worst_row = !strncmp(w->attack, "worst", 5);
        n_worst += worst_row;
        ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
        while (fgets(line, sizeof line, f)) {
            char *fl[24], *rest = line, *tok;
            int nf = 0;
            while (nf < 24 && (tok = strsep(&rest, ","))) fl[nf++] = tok;
            ck_assert_int_eq(nf, 24);
            ck_assert_str_eq(fl[2], w->dataset); /* the same dataset id as the results rows */
            if (atof(fl[5]) != w->eps) continue; /* eps written exactly in both files */
            int rob = atoi(fl[13]);
            if (!worst_row) { expect += !strcmp(fl[3], w->attack) && rob; continue; }
            if (rob) continue;
            int seen = 0;
            for (int k = 0; k < n_broken; k++) seen |= !strcmp(broken_img[k], fl[8]);
            if (!seen && n_broken < 8) snprintf(broken_img[n_broken++], sizeof broken_img[0], "%s", fl[8]);
        }
        fclose(f);
        if (worst_row) expect = 4 - n_broken;
        ck_assert_msg(w->correct == expect, "%s eps %g: correct %ld, per-image rows say %ld", w->attack, w->eps, w->correct, expect);
    }
    ck_assert_int_eq(n_clean, 1);
    ck_assert_int_eq(n_worst, 2);
    qb_results_free(&rs);
    /* --resume: the same run again appends nothing; a new eps appends its rows only */
    snprintf(cmd, sizeof cmd,
             "%s attack --model tiny=%s --data %s/data --labels %s/labels.txt --attack fgsm,pgd,apgd-ce,standard --eps 1/255,0.1 "
             "--steps 5 --batch 3 --seed 5 --out %s/r.csv --resume",
             qbt_bin(), model, dir, dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "already"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd,
             "%s attack --model tiny=%s --data %s/data --labels %s/labels.txt --attack fgsm,pgd --eps 1/255,2/255 "
             "--steps 5 --seed 5 --out %s/r.csv --resume > /dev/null && wc -l %s/r.csv",
             qbt_bin(), model, dir, dir, dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    /* header, the first run, fgsm + pgd + worst:fgsm+pgd at 2/255, and worst:fgsm+pgd at 1/255 (a
     * new attack set has its own worst case) */
    ck_assert_int_eq(atoi(out), 1 + 11 + 4);
    free(out), free(err);
    /* batch 3 and 2 threads vs batch 1 and 1 thread: the same per-image rows (sorted) */
    snprintf(cmd, sizeof cmd,
             "%s attack --model tiny=%s --data %s/data --labels %s/labels.txt --attack fgsm,pgd,apgd-ce,standard --eps 1/255,0.1 "
             "--steps 5 --batch 1 --seed 5 --threads 1 --per-image %s/b.csv >/dev/null && sort %s/a.csv > %s/as && sort %s/b.csv > %s/bs && cmp %s/as %s/bs",
             qbt_bin(), model, dir, dir, dir, dir, dir, dir, dir, dir, dir);
    int rc_same = qbt_run(cmd, &out, &err);
    ck_assert_msg(rc_same == 0, "batch invariance: %s %s [%s]", out ? out : "", err ? err : "", cmd);
    free(out), free(err);
    /* bad input: one line on stderr, exit 2 or 4 */
    const char *bad[][2] = {{"--attack pgd --eps 0", "2"},      {"--attack pgd --eps 2", "2"},
                            {"--attack cw --eps 1/255", "2"},   {"--attack pgd --eps 1/255 --steps 0", "2"},
                            {"--attack pgd --eps 1/0", "2"},    {"--attack pgd --eps x", "2"}};
    for (int i = 0; i < 6; i++) {
        snprintf(cmd, sizeof cmd, "%s attack --model %s --data %s/data %s", qbt_bin(), model, dir, bad[i][0]);
        int rc = qbt_run(cmd, &out, &err);
        ck_assert_msg(rc == atoi(bad[i][1]), "'%s': exit %d", bad[i][0], rc);
        ck_assert_msg(err && strchr(err, '\n') == err + strlen(err) - 1, "'%s': stderr '%s'", bad[i][0], err ? err : "");
        free(out), free(err);
    }
    snprintf(cmd, sizeof cmd, "echo '0_png_rgb8.png 12' > %s/badlabels.txt; mkdir -p %s/flat; cp %s/data/a/0_png_rgb8.png %s/flat/; "
             "%s attack --model %s --data %s/flat --labels %s/badlabels.txt --attack pgd --eps 1/255",
             dir, dir, dir, dir, qbt_bin(), model, dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 4);
    ck_assert_ptr_nonnull(strstr(err, "outside the model's 10 classes"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "printf 'not an image' > %s/data/a/z.png; %s attack --model %s --data %s/data --attack pgd --eps 1/255",
             dir, qbt_bin(), model, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 4);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "%s attack --model %s --data %s/data --attack pgd --eps 1/255 --steps 2 --skip-bad", qbt_bin(), model, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "1 image(s) skipped"));
    free(out), free(err);
}
END_TEST

TCase *attacks_compat_tcase(void); /* test_elliptical.c */

Suite *attacks_suite(void) {
    Suite *s = suite_create("attacks");
    TCase *tc = tcase_create("attacks");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_fgsm_matches_pytorch, 0, 2);
    tcase_add_loop_test(tc, test_pgd_follows_pytorch, 0, 2);
    tcase_add_test(tc, test_apgd_checkpoints);
    tcase_add_test(tc, test_apgd_step_halving);
    tcase_add_test(tc, test_apgd_run_follows_schedule);
    tcase_add_test(tc, test_ball_and_range);
    tcase_add_test(tc, test_loss_gradients);
    tcase_add_test(tc, test_batch_and_thread_invariance);
    tcase_add_test(tc, test_fab_projection);
    tcase_add_loop_test(tc, test_fab_t, 0, 2);
    tcase_add_test(tc, test_cli);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, attacks_compat_tcase());
    return s;
}
