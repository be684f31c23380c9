/* test_elliptical.c — the per-channel range of attacks.h (the default [0,1] equal to the range set by
 * hand), the elliptical-compat protocol of attacks/elliptical.c (FGSM and PGD against
 * hand-written references, APGD's range artefact on a fixture model), Square L2 and FAB-T L2.
 * Part of the `attacks` suite (test_attacks.c adds this tcase). */
#include "qbtest.h"
#include "attacks.h"
#include "model.h"
#include "rng.h"
#include <math.h>
#include <string.h>

static const char *FIXTURE_MODELS[] = {"attacks/sdpa_attack.safetensors", "attacks/quest_attack.safetensors"};

typedef struct {
    qb_model m;
    int B, S, K;
    size_t d, plane;
    float *x;       /* (B, d) pixels with some exactly 0 or 1, so that unclipped steps leave [0,1] */
    int y[8];
    uint64_t ids[8];
    qb_attack_ws ws;
} tiny;

static void tiny_open(tiny *t, const char *model) {
    ck_assert_msg(qb_model_load(&t->m, qbt_fixture(model), NULL) == 0, "load %s: %s", model, qb_last_error());
    t->B = 8, t->S = t->m.vit.cfg.img_size, t->K = t->m.vit.cfg.classes;
    t->plane = (size_t)t->S * t->S, t->d = 3 * t->plane;
    t->x = malloc(t->B * t->d * sizeof(float));
    qb_rng r = qb_rng_stream(5, 5, "elliptical-test");
    for (size_t i = 0; i < t->B * t->d; i++) {
        unsigned v = (unsigned)qb_rng_below(&r, 300);
        t->x[i] = v >= 255 ? (v % 2 ? 1.0f : 0.0f) : (float)v / 255.0f;
    }
    ck_assert_int_eq(qb_attack_ws_init(&t->ws, &t->m.vit, t->B), 0);
    int pred[8];
    ck_assert_int_eq(qb_attack_predict(&t->ws, t->x, t->B, pred), 0);
    for (int b = 0; b < t->B; b++) {
        t->y[b] = pred[b]; /* every point clean-correct: the attacks run on all of them */
        char rel[32];
        snprintf(rel, sizeof rel, "ell%d.png", b);
        t->ids[b] = qb_image_id(rel);
    }
}

static void tiny_close(tiny *t) {
    qb_attack_ws_free(&t->ws);
    free(t->x);
    qb_model_free(&t->m);
}

static qb_attack_cfg base_cfg(qb_norm norm, float eps, int steps) {
    qb_attack_cfg c;
    qb_attack_cfg_init(&c);
    c.norm = norm, c.eps = eps, c.steps = steps, c.restarts = 1, c.random_start = 1, c.seed = 7, c.n_targets = 3;
    return c;
}

/* Setting the range [0,1] by hand gives the same floats as qb_attack_cfg_init's default, for
 * every attack and both norms, with per-channel scales. */
START_TEST(test_range_default_bit_identical) {
    tiny t;
    tiny_open(&t, "attacks/sdpa_attack.safetensors");
    size_t nx = t.B * t.d;
    float *a = malloc(nx * sizeof(float)), *b = malloc(nx * sizeof(float));
    for (int k = 0; k < QB_ATK_COUNT; k++)
        for (int norm = 0; norm < 2; norm++) {
            qb_attack_cfg c = base_cfg((qb_norm)norm, norm ? 0.5f : 4.0f / 255, k == QB_ATK_SQUARE ? 25 : 4);
            c.scale[0] = 0.229f, c.scale[1] = 0.224f, c.scale[2] = 0.225f;
            ck_assert_int_eq(qb_attack_run(&t.ws, k, &c, t.x, t.y, t.ids, t.B, a), 0);
            for (int ch = 0; ch < 3; ch++) c.lo[ch] = 0.0f, c.hi[ch] = 1.0f;
            ck_assert_int_eq(qb_attack_run(&t.ws, k, &c, t.x, t.y, t.ids, t.B, b), 0);
            ck_assert_msg(memcmp(a, b, nx * sizeof(float)) == 0, "%s %s: explicit [0,1] differs", qb_attack_name(k),
                          qb_norm_name(c.norm));
        }
    free(a), free(b);
    tiny_close(&t);
}
END_TEST

/* compat FGSM = x + (1/255)·σ_c·sign(∇ CE(f(x), ŷ)), ŷ the clean prediction, with no clipping */
START_TEST(test_compat_fgsm) {
    tiny t;
    tiny_open(&t, FIXTURE_MODELS[_i]);
    const vit_config *vc = &t.m.vit.cfg;
    size_t nx = t.B * t.d;
    float *adv = malloc(nx * sizeof(float)), *g = malloc(nx * sizeof(float));
    qb_attack_cfg base = base_cfg(QB_NORM_LINF, 1.0f / 255, 0), c;
    int pred_labels;
    qb_elliptical_cfg(QB_ATK_FGSM, QB_ELL_ARTEFACT, &base, vc->mean, vc->std, &c, &pred_labels);
    ck_assert_int_eq(pred_labels, 1);
    ck_assert_int_eq(qb_elliptical_has_variants(QB_ATK_FGSM), 0);
    ck_assert(isinf(c.lo[0]) && c.lo[0] < 0 && isinf(c.hi[2]) && c.hi[2] > 0);
    ck_assert_int_eq(qb_attack_run(&t.ws, QB_ATK_FGSM, &c, t.x, t.y, t.ids, t.B, adv), 0);
    ck_assert_int_eq(qb_attack_loss_grad(&t.ws, t.x, t.B, t.y, NULL, QB_LOSS_CE, NULL, g), 0);
    long outside = 0;
    for (int b = 0; b < t.B; b++)
        for (int ch = 0; ch < 3; ch++) {
            float e = (1.0f / 255) * vc->std[ch];
            for (size_t i = ch * t.plane; i < (ch + 1) * t.plane; i++) {
                size_t k = b * t.d + i;
                float sg = (float)((g[k] > 0) - (g[k] < 0));
                ck_assert_msg(adv[k] == t.x[k] + e * sg, "fgsm-ell at %zu: %.9g vs %.9g", k, adv[k], t.x[k] + e * sg);
                outside += adv[k] < 0 || adv[k] > 1;
            }
        }
    ck_assert_int_gt(outside, 0); /* unclipped: the 0 and 1 pixels step out of [0,1] */
    free(adv), free(g);
    tiny_close(&t);
}
END_TEST

/* compat PGD: 20 steps of 0.15ε from a uniform start in ±ε·σ_c, labels ŷ, projected onto the
 * box and never clipped; equal to those 20 steps written out with the exposed step function. */
START_TEST(test_compat_pgd) {
    tiny t;
    tiny_open(&t, FIXTURE_MODELS[_i]);
    const vit_config *vc = &t.m.vit.cfg;
    size_t nx = t.B * t.d;
    float *adv = malloc(nx * sizeof(float)), *xt = malloc(nx * sizeof(float)), *xn = malloc(nx * sizeof(float));
    float *g = malloc(nx * sizeof(float));
    float eps = 2.0f / 255;
    qb_attack_cfg base = base_cfg(QB_NORM_LINF, eps, 0), c;
    base.random_start = 0; /* the protocol turns it on */
    int pred_labels;
    qb_elliptical_cfg(QB_ATK_PGD, QB_ELL_ARTEFACT, &base, vc->mean, vc->std, &c, &pred_labels);
    ck_assert_int_eq(pred_labels, 1);
    ck_assert_int_eq(c.steps, 20);
    ck_assert_float_eq(c.step, 0.15f * eps);
    ck_assert_int_eq(c.random_start, 1);
    for (int ch = 0; ch < 3; ch++) ck_assert_float_eq(c.scale[ch], vc->std[ch]);
    ck_assert_int_eq(qb_attack_run(&t.ws, QB_ATK_PGD, &c, t.x, t.y, t.ids, t.B, adv), 0);
    for (int b = 0; b < t.B; b++) qb_pgd_random_start(&c, t.x + b * t.d, t.ids[b], 0, t.plane, xt + b * t.d);
    for (int s = 0; s < 20; s++) {
        ck_assert_int_eq(qb_attack_loss_grad(&t.ws, xt, t.B, t.y, NULL, QB_LOSS_CE, NULL, g), 0);
        qb_pgd_step(&c, 0.15f * eps, t.x, xt, g, t.B, t.plane, xn);
        memcpy(xt, xn, nx * sizeof(float));
    }
    ck_assert_msg(memcmp(adv, xt, nx * sizeof(float)) == 0, "pgd-ell differs from 20 steps of 0.15 eps");
    long outside = 0;
    for (int b = 0; b < t.B; b++)
        for (int ch = 0; ch < 3; ch++)
            for (size_t i = ch * t.plane; i < (ch + 1) * t.plane; i++) {
                size_t k = b * t.d + i;
                /* the sanity report's bound: ε + 1e-6 in attack space (float rounding of x + δ) */
                ck_assert(fabs((double)adv[k] - t.x[k]) / vc->std[ch] <= eps + 1e-6);
                outside += adv[k] < 0 || adv[k] > 1;
            }
    ck_assert_int_gt(outside, 0);
    /* the user's --steps/--step-size win over the protocol's */
    base.steps = 5, base.step = 0.5f * eps;
    qb_elliptical_cfg(QB_ATK_PGD, QB_ELL_ARTEFACT, &base, vc->mean, vc->std, &c, &pred_labels);
    ck_assert_int_eq(c.steps, 5);
    ck_assert_float_eq(c.step, 0.5f * eps);
    free(adv), free(xt), free(xn), free(g);
    tiny_close(&t);
}
END_TEST

/* AutoAttack's artefact: with the range [μ_c, μ_c + σ_c] (the [0,1] clamp of the normalised
 * input) APGD-CE returns points far outside the ε-ball that break the model; the corrected
 * variant stays inside the ball and [0,1]. */
START_TEST(test_compat_apgd_artefact) {
    tiny t;
    tiny_open(&t, "attacks/sdpa_attack.safetensors");
    const vit_config *vc = &t.m.vit.cfg;
    size_t nx = t.B * t.d;
    float *adv = malloc(nx * sizeof(float)), *dl = malloc(t.d * sizeof(float));
    float eps = 1.0f / 255;
    for (int v = 0; v < 2; v++) {
        qb_attack_cfg base = base_cfg(QB_NORM_LINF, eps, 10), c;
        int pred_labels;
        qb_elliptical_cfg(QB_ATK_APGD_CE, (qb_ell_variant)v, &base, vc->mean, vc->std, &c, &pred_labels);
        ck_assert_int_eq(pred_labels, 0);
        for (int ch = 0; ch < 3; ch++) {
            ck_assert_float_eq(c.lo[ch], v == QB_ELL_ARTEFACT ? vc->mean[ch] : 0.0f);
            ck_assert_float_eq(c.hi[ch], v == QB_ELL_ARTEFACT ? vc->mean[ch] + vc->std[ch] : 1.0f);
        }
        ck_assert_int_eq(qb_attack_run(&t.ws, QB_ATK_APGD_CE, &c, t.x, t.y, t.ids, t.B, adv), 0);
        int pred[8], beyond = 0, broken = 0;
        double maxn = 0;
        ck_assert_int_eq(qb_attack_predict(&t.ws, adv, t.B, pred), 0);
        for (int b = 0; b < t.B; b++) {
            if (pred[b] == t.y[b]) continue;
            broken++;
            for (size_t i = 0; i < t.d; i++) {
                int ch = (int)(i / t.plane);
                float a = adv[b * t.d + i];
                dl[i] = a - t.x[b * t.d + i];
                ck_assert(a >= c.lo[ch] && a <= c.hi[ch]);
            }
            double n = qb_attack_norm(QB_NORM_LINF, dl, t.plane, c.scale);
            maxn = n > maxn ? n : maxn;
            beyond += n > eps + 1e-6;
        }
        if (v == QB_ELL_ARTEFACT) {
            ck_assert_int_gt(beyond, 0);
            ck_assert_msg(maxn > 100 * eps, "artefact: max norm %g is not far outside eps", maxn);
        } else {
            ck_assert_int_eq(beyond, 0);
            ck_assert(maxn <= eps + 1e-6);
        }
        ck_assert_int_gt(broken + (v == QB_ELL_FIXED), 0);
    }
    free(adv), free(dl);
    tiny_close(&t);
}
END_TEST

/* Square L2: window sides, the eta window, ‖δ‖₂ ≤ ε and [0,1] on the returned points, the
 * smallest margin never increasing with more queries, and points broken at a large ε. */
START_TEST(test_square_l2) {
    ck_assert_int_eq(qb_square_side_l2(0, 0.8f, 32, 32), 29);
    ck_assert_int_eq(qb_square_side_l2(11, 0.8f, 32, 32), 21);
    ck_assert_int_eq(qb_square_side_l2(0, 0.8f, 16, 16), 15);
    ck_assert_int_eq(qb_square_side_l2(0, 0.8f, 224, 224), 201);
    ck_assert_int_eq(qb_square_side_l2(9000, 0.8f, 32, 32), 3);
    ck_assert_int_eq(qb_square_side_l2(0, 1.0f, 32, 32), 31); /* 33 would not fit */
    float eta[15 * 15], et[15 * 15];
    for (int s = 3; s <= 15; s += 2) {
        qb_square_eta(s, 0, eta);
        qb_square_eta(s, 1, et);
        double ss = 0;
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++) {
                ss += (double)eta[a * s + b] * eta[a * s + b];
                ck_assert(a < s / 2 ? eta[a * s + b] > 0 : eta[a * s + b] < 0);
                ck_assert(et[b * s + a] == eta[a * s + b]);
            }
        ck_assert(fabs(ss - 1) < 1e-5);
        /* the centre of each half carries the most mass */
        ck_assert(eta[(s / 4) * s + s / 2] >= eta[0]);
    }
    tiny t;
    tiny_open(&t, "attacks/sdpa_attack.safetensors");
    size_t nx = t.B * t.d;
    float *adv = malloc(nx * sizeof(float)), *dl = malloc(t.d * sizeof(float));
    float prev[8];
    int queries[4] = {1, 5, 20, 60};
    float epses[2] = {0.5f, 4.0f};
    for (int e = 0; e < 2; e++) {
        int broken = 0;
        for (int q = 0; q < 4; q++) {
            qb_attack_cfg c = base_cfg(QB_NORM_L2, epses[e], queries[q]);
            ck_assert_int_eq(qb_attack_run(&t.ws, QB_ATK_SQUARE, &c, t.x, t.y, t.ids, t.B, adv), 0);
            int pred[8];
            ck_assert_int_eq(qb_attack_predict(&t.ws, adv, t.B, pred), 0);
            broken = 0;
            for (int b = 0; b < t.B; b++) {
                for (size_t i = 0; i < t.d; i++) {
                    float a = adv[b * t.d + i];
                    ck_assert(a >= 0 && a <= 1);
                    dl[i] = a - t.x[b * t.d + i];
                }
                double n = qb_attack_norm(QB_NORM_L2, dl, t.plane, c.scale);
                ck_assert_msg(n <= c.eps * (1 + 1e-5), "square l2: norm %g > eps %g", n, c.eps);
                float m = t.ws.margin[b];
                ck_assert(isfinite(m));
                if (q) ck_assert_msg(m <= prev[b], "image %d: margin %g after %d queries > %g after %d", b, m, queries[q],
                                     prev[b], queries[q - 1]);
                prev[b] = m;
                if (pred[b] != t.y[b]) {
                    broken++;
                    ck_assert(m <= 0);
                } else ck_assert(memcmp(adv + b * t.d, t.x + b * t.d, t.d * sizeof(float)) == 0);
            }
        }
        if (e == 1) ck_assert_int_gt(broken, 0);
    }
    free(adv), free(dl);
    tiny_close(&t);
}
END_TEST

/* FAB's L2 projection: on the hyperplane and in the box when reachable, and optimal by the
 * KKT conditions of min ‖d‖² (d_i = clip(−α·w_i, lo − t_i, hi − t_i) for one α ≥ 0, with
 * per-channel scales); out of reach every coordinate sits at the bound that moves w·v toward b. */
START_TEST(test_fab_projection_l2) {
    size_t plane = 6, n = 3 * plane;
    float t[18], w[18], dd[18], scales[2][3] = {{1, 1, 1}, {0.229f, 0.224f, 0.225f}};
    float lo[3] = {0, 0.1f, 0}, hi[3] = {1, 0.9f, 1};
    char scratch[18 * 8];
    qb_rng r = qb_rng_stream(4, 4, "fab-l2");
    for (int trial = 0; trial < 300; trial++) {
        const float *sc = scales[trial % 2];
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i / plane);
            t[i] = lo[c] + (hi[c] - lo[c]) * qb_rng_uniformf(&r), w[i] = (float)qb_rng_normal(&r);
        }
        if (trial % 5 == 0) w[trial % n] = 0;
        double wt = 0, lowest = 0, highest = 0;
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i / plane);
            wt += (double)w[i] * t[i];
            lowest += w[i] * (double)(w[i] > 0 ? lo[c] : hi[c]), highest += w[i] * (double)(w[i] > 0 ? hi[c] : lo[c]);
        }
        double b = wt + (qb_rng_uniform(&r) - 0.5) * (trial % 7 == 0 ? 40 : 3);
        qb_fab_project_l2(t, w, b, plane, sc, lo, hi, dd, scratch);
        double wv = 0;
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i / plane);
            float v = t[i] + dd[i];
            ck_assert(v >= lo[c] - 1e-6f && v <= hi[c] + 1e-6f);
            if (w[i] == 0) ck_assert(dd[i] == 0);
            wv += (double)w[i] * v;
        }
        if (b < lowest - 1e-9 || b > highest + 1e-9) { /* out of reach: the extreme corner */
            for (size_t i = 0; i < n; i++) {
                int c = (int)(i / plane);
                if (w[i] == 0) continue;
                float corner = (w[i] > 0) == (b > wt) ? hi[c] : lo[c];
                ck_assert_msg(fabsf(t[i] + dd[i] - corner) < 1e-6f, "trial %d: coordinate %zu not at its bound", trial, i);
            }
            continue;
        }
        ck_assert_msg(fabs(wv - b) < 1e-4 * (1 + fabs(b)), "trial %d: w.v %g vs b %g", trial, wv, b);
        /* KKT: the free coordinates share one α = −d_u/w_u (attack space) */
        double alpha = -1;
        for (size_t i = 0; i < n; i++) {
            int c = (int)(i / plane);
            float v = t[i] + dd[i];
            if (w[i] == 0 || fabsf(v - lo[c]) < 1e-6f || fabsf(v - hi[c]) < 1e-6f) continue;
            double a = -(dd[i] / sc[c]) / (w[i] * sc[c]);
            if (alpha < 0) alpha = a;
            ck_assert_msg(fabs(a - alpha) < 1e-4 * (1 + fabs(alpha)), "trial %d: alpha %g vs %g", trial, a, alpha);
        }
    }
}
END_TEST

/* FAB-T L2 on the fixture model: points inside the L2 ball and [0,1], clean images where not
 * broken, and at a large eps it breaks every point PGD L2 breaks. */
START_TEST(test_fab_t_l2) {
    tiny t;
    tiny_open(&t, "attacks/sdpa_attack.safetensors");
    size_t nx = t.B * t.d;
    float *a = malloc(nx * sizeof(float)), *ap = malloc(nx * sizeof(float)), *dl = malloc(t.d * sizeof(float));
    float epses[2] = {0.1f, 3.0f};
    for (int e = 0; e < 2; e++) {
        qb_attack_cfg c = base_cfg(QB_NORM_L2, epses[e], 20);
        c.restarts = 2;
        ck_assert_int_eq(qb_attack_run(&t.ws, QB_ATK_FAB_T, &c, t.x, t.y, t.ids, t.B, a), 0);
        qb_attack_cfg cp = base_cfg(QB_NORM_L2, epses[e], 10);
        ck_assert_int_eq(qb_attack_run(&t.ws, QB_ATK_PGD, &cp, t.x, t.y, t.ids, t.B, ap), 0);
        int pf[8], pp[8], broken = 0;
        ck_assert_int_eq(qb_attack_predict(&t.ws, a, t.B, pf), 0);
        ck_assert_int_eq(qb_attack_predict(&t.ws, ap, t.B, pp), 0);
        for (int b = 0; b < t.B; b++) {
            for (size_t i = 0; i < t.d; i++) {
                float v = a[b * t.d + i];
                ck_assert(v >= 0 && v <= 1);
                dl[i] = v - t.x[b * t.d + i];
            }
            ck_assert(qb_attack_norm(QB_NORM_L2, dl, t.plane, c.scale) <= c.eps * (1 + 1e-5));
            if (pf[b] == t.y[b]) ck_assert(memcmp(a + b * t.d, t.x + b * t.d, t.d * sizeof(float)) == 0);
            else broken++;
            if (e == 1 && pp[b] != t.y[b]) ck_assert_msg(pf[b] != t.y[b], "image %d: PGD L2 breaks it, FAB-T L2 does not", b);
        }
        if (e == 1) ck_assert_int_gt(broken, 0);
    }
    free(a), free(ap), free(dl);
    tiny_close(&t);
}
END_TEST

TCase *attacks_compat_tcase(void) {
    TCase *tc = tcase_create("attacks-compat");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_range_default_bit_identical);
    tcase_add_loop_test(tc, test_compat_fgsm, 0, 2);
    tcase_add_loop_test(tc, test_compat_pgd, 0, 2);
    tcase_add_test(tc, test_compat_apgd_artefact);
    tcase_add_test(tc, test_square_l2);
    tcase_add_test(tc, test_fab_projection_l2);
    tcase_add_test(tc, test_fab_t_l2);
    return tc;
}
