/* pgd.c — projected gradient descent, L∞ and L2, as torchattacks PGD / PGDL2 (attacks.md
 * §3): optional random start, fixed step α, projection onto the ε-ball and the range after
 * every step, the last iterate returned. Restarts (not in torchattacks) rerun the attack
 * from fresh random starts on the images still classified correctly and keep the first
 * point that is misclassified. */
#include "attacks.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

void qb_pgd_step(const qb_attack_cfg *cfg, float step, const float *x, const float *xt, const float *g, int n,
                 size_t plane, float *xnext) {
    size_t d = 3 * plane;
    for (int b = 0; b < n; b++) {
        const float *xb = x + b * d, *tb = xt + b * d, *gb = g + b * d;
        float *ob = xnext + b * d;
        if (cfg->norm == QB_NORM_LINF) {
            /* the same float operations as torchattacks: x̃ = x_t + α·sign g, δ = clip(x̃ − x), clip(x + δ) to the range */
            for (int c = 0; c < 3; c++) {
                float e = cfg->eps * cfg->scale[c], a = step * cfg->scale[c], lo = cfg->lo[c], hi = cfg->hi[c];
                for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                    float sg = (float)((gb[i] > 0) - (gb[i] < 0));
                    float v = tb[i] + a * sg;
                    float dl = v - xb[i];
                    dl = dl < -e ? -e : dl > e ? e : dl;
                    ob[i] = qb_clipf(xb[i] + dl, lo, hi);
                }
            }
            continue;
        }
        /* L2: ĝ = g_a/(‖g_a‖ + 1e-10) in attack space (g_a = s_c·g), pixel step α·s_c·ĝ */
        double gs = 0;
        for (int c = 0; c < 3; c++)
            for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                double ga = (double)gb[i] * cfg->scale[c];
                gs += ga * ga;
            }
        double ginv = 1.0 / (sqrt(gs) + 1e-10), ds = 0;
        for (int c = 0; c < 3; c++) {
            float f = (float)(step * ginv * cfg->scale[c] * cfg->scale[c]);
            for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                float dl = (tb[i] + f * gb[i]) - xb[i];
                ob[i] = dl; /* δ, projected below */
                double da = dl / cfg->scale[c];
                ds += da * da;
            }
        }
        /* δ·min(1, ε/‖δ‖): ε/0 = inf gives factor 1, as in torchattacks */
        double fac = cfg->eps / sqrt(ds);
        float f = fac < 1 ? (float)fac : 1.0f;
        for (int c = 0; c < 3; c++) {
            float lo = cfg->lo[c], hi = cfg->hi[c];
            for (size_t i = c * plane; i < (c + 1) * plane; i++) ob[i] = qb_clipf(xb[i] + ob[i] * f, lo, hi);
        }
    }
}

void qb_pgd_random_start(const qb_attack_cfg *cfg, const float *x, uint64_t id, int restart, size_t plane,
                         float *x0) {
    char purpose[32];
    snprintf(purpose, sizeof purpose, "pgd/restart%d", restart);
    qb_rng r = qb_rng_stream(cfg->seed, id, purpose);
    size_t d = 3 * plane;
    if (cfg->norm == QB_NORM_LINF) {
        /* u ~ U(−ε, ε) per coordinate */
        for (int c = 0; c < 3; c++) {
            float e = cfg->eps * cfg->scale[c], lo = cfg->lo[c], hi = cfg->hi[c];
            for (size_t i = c * plane; i < (c + 1) * plane; i++)
                x0[i] = qb_clipf(x[i] + (2.0f * qb_rng_uniformf(&r) - 1.0f) * e, lo, hi);
        }
        return;
    }
    /* torchattacks PGDL2: δ = n·u·ε/‖n‖, n ~ N(0, I), u ~ U(0, 1) per image (attack space) */
    double ss = 0;
    for (size_t i = 0; i < d; i++) {
        double v = qb_rng_normal(&r);
        x0[i] = (float)v;
        ss += v * v;
    }
    double f = qb_rng_uniform(&r) * cfg->eps / sqrt(ss);
    for (int c = 0; c < 3; c++) {
        float lo = cfg->lo[c], hi = cfg->hi[c];
        for (size_t i = c * plane; i < (c + 1) * plane; i++) x0[i] = qb_clipf(x[i] + (float)(x0[i] * f * cfg->scale[c]), lo, hi);
    }
}

int qb_pgd_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *x, const int *y, const uint64_t *ids, int n,
               float *xadv) {
    size_t d = ws->d, plane = (size_t)ws->S * ws->S;
    int steps = cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(QB_ATK_PGD);
    float step = cfg->step > 0 ? cfg->step : cfg->eps / (cfg->norm == QB_NORM_LINF ? 4.0f : 5.0f);
    /* without a random start every restart is the same run */
    int restarts = cfg->random_start ? (cfg->restarts > 0 ? cfg->restarts : 1) : 1;
    float *xc = ws->buf[0], *xt = ws->buf[1], *xn = ws->buf[2];
    int *yc = ws->ivec[0], *orig = ws->ivec[1], *pred = ws->ivec[2];
    int *active = ws->ivec[3];
    for (int i = 0; i < n; i++) active[i] = 1;
    for (int r = 0; r < restarts; r++) {
        /* gather the images still classified correctly */
        int na = 0;
        for (int i = 0; i < n; i++) {
            if (!active[i]) continue;
            memcpy(xc + na * d, x + i * d, d * sizeof(float));
            yc[na] = y[i], orig[na] = i;
            if (cfg->random_start) qb_pgd_random_start(cfg, x + i * d, ids[i], r, plane, xt + na * d);
            else memcpy(xt + na * d, x + i * d, d * sizeof(float));
            na++;
        }
        if (na == 0) break;
        for (int s = 0; s < steps; s++) {
            int rc = qb_attack_loss_grad(ws, xt, na, yc, NULL, QB_LOSS_CE, NULL, ws->grad);
            if (rc) return rc;
            qb_pgd_step(cfg, step, xc, xt, ws->grad, na, plane, xn);
            float *tmp = xt;
            xt = xn, xn = tmp;
        }
        for (int j = 0; j < na; j++) memcpy(xadv + orig[j] * d, xt + j * d, d * sizeof(float));
        if (r + 1 < restarts) {
            int rc = qb_attack_predict(ws, xt, na, pred);
            if (rc) return rc;
            for (int j = 0; j < na; j++)
                if (pred[j] != yc[j]) active[orig[j]] = 0;
        }
    }
    return 0;
}
