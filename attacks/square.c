/* square.c — Square Attack L∞ (attacks.md §6; autoattack/square.py with resc_schedule
 * off): a gradient-free random search over square windows set to x ± ε per channel,
 * margin loss, a window kept when it lowers the loss or misclassifies. Draws are per
 * image from its own stream (the reference shares one draw per batch, §6 deviation). */
#include "attacks.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline float clip01f(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

static double p_selection(int it, double p_init) {
    if (it <= 10) return p_init;
    if (it <= 50) return p_init / 2;
    if (it <= 200) return p_init / 4;
    if (it <= 500) return p_init / 8;
    if (it <= 1000) return p_init / 16;
    if (it <= 2000) return p_init / 32;
    if (it <= 4000) return p_init / 64;
    if (it <= 6000) return p_init / 128;
    if (it <= 8000) return p_init / 256;
    return p_init / 512;
}

int qb_square_side(int it, float p_init, int h, int w) {
    double p = p_selection(it, p_init);
    int c = 3;
    double n_feat = (double)c * h * w;
    int s = (int)nearbyint(sqrt(p * n_feat / c)); /* Python round: half to even */
    if (s < 1) s = 1;
    int m = h < w ? h : w;
    return s < m ? s : m;
}

int qb_square_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *x, const int *y, const uint64_t *ids,
                  int n, float *xadv) {
    size_t d = ws->d;
    int S = ws->S;
    size_t plane = (size_t)S * S;
    int n_queries = cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(QB_ATK_SQUARE);
    int restarts = cfg->restarts > 0 ? cfg->restarts : 1;
    float p_init = cfg->p_init > 0 ? cfg->p_init : 0.8f;
    float *xbest = ws->buf[0], *xnew = ws->buf[1];
    float *mmin = ws->vec[0], *lmin = ws->vec[1];
    int *active = ws->ivec[0], *idx = ws->ivec[1], *pred = ws->ivec[2];
    double *lc = NULL;
    memcpy(xadv, x, n * d * sizeof(float));
    int rc = qb_attack_predict(ws, x, n, pred);
    if (rc) return rc;
    for (int i = 0; i < n; i++) active[i] = pred[i] == y[i];
    /* one stream per image, kept across iterations; margins of a query in lc */
    size_t need = (size_t)n * (sizeof(qb_rng) / sizeof(double) + 2) + 1;
    if (ws->dscratch_len < need) {
        free(ws->dscratch);
        if (!(ws->dscratch = qb_malloc(need * sizeof(double)))) { ws->dscratch_len = 0; return QB_EXIT_FAIL; }
        ws->dscratch_len = need;
    }
    qb_rng *rngs = (qb_rng *)ws->dscratch;
    lc = ws->dscratch + (size_t)n * (sizeof(qb_rng) / sizeof(double));
    for (int r = 0; r < restarts; r++) {
        char purpose[32];
        snprintf(purpose, sizeof purpose, "square/restart%d", r);
        /* vertical stripes: one sign per image, channel and column */
        for (int i = 0; i < n; i++) {
            if (!active[i]) continue;
            rngs[i] = qb_rng_stream(cfg->seed, ids[i], purpose);
            for (int c = 0; c < 3; c++) {
                float e = cfg->eps * cfg->scale[c];
                for (int col = 0; col < S; col++) {
                    float sg = qb_rng_uniform(&rngs[i]) < 0.5 ? -1.0f : 1.0f;
                    for (int row = 0; row < S; row++) {
                        size_t k = c * plane + (size_t)row * S + col;
                        xbest[i * d + k] = clip01f(x[i * d + k] + e * sg);
                    }
                }
            }
        }
        int na = 0;
        for (int i = 0; i < n; i++)
            if (active[i]) {
                memcpy(xnew + na * d, xbest + i * d, d * sizeof(float));
                idx[na++] = i;
            }
        if (na == 0) break;
        /* query 1: the stripes; labels gathered in pred[] as scratch */
        for (int j = 0; j < na; j++) pred[j] = y[idx[j]];
        if ((rc = qb_attack_loss_grad(ws, xnew, na, pred, NULL, QB_LOSS_MARGIN, lc, NULL))) return rc;
        for (int j = 0; j < na; j++) mmin[idx[j]] = lmin[idx[j]] = (float)lc[j];
        for (int it = 0; it < n_queries; it++) {
            int s = qb_square_side(it, p_init, S, S);
            na = 0;
            for (int i = 0; i < n; i++) {
                if (!active[i] || !(mmin[i] > 0)) continue;
                const float *xi = x + i * d;
                float *xn = xnew + na * d;
                memcpy(xn, xbest + i * d, d * sizeof(float));
                int vh = s < S ? (int)floor(qb_rng_uniform(&rngs[i]) * (S - s)) : 0;
                int vw = s < S ? (int)floor(qb_rng_uniform(&rngs[i]) * (S - s)) : 0;
                for (int c = 0; c < 3; c++) {
                    float e = cfg->eps * cfg->scale[c];
                    float dl = 2.0f * e * (qb_rng_uniform(&rngs[i]) < 0.5 ? -1.0f : 1.0f);
                    for (int row = vh; row < vh + s; row++)
                        for (int col = vw; col < vw + s; col++) {
                            size_t k = c * plane + (size_t)row * S + col;
                            float v = xn[k] + dl, lo = xi[k] - e, hi = xi[k] + e;
                            xn[k] = clip01f(v < lo ? lo : v > hi ? hi : v);
                        }
                }
                idx[na] = i;
                pred[na] = y[i];
                na++;
            }
            if (na == 0) break;
            if ((rc = qb_attack_loss_grad(ws, xnew, na, pred, NULL, QB_LOSS_MARGIN, lc, NULL))) return rc;
            for (int j = 0; j < na; j++) {
                int i = idx[j];
                float m = (float)lc[j];
                int better = m < lmin[i]; /* margin loss: the loss is the margin */
                if (better) lmin[i] = m;
                if (better || m <= 0) {
                    mmin[i] = m;
                    memcpy(xbest + i * d, xnew + j * d, d * sizeof(float));
                }
            }
        }
        for (int i = 0; i < n; i++)
            if (active[i] && mmin[i] <= 0) {
                active[i] = 0;
                memcpy(xadv + i * d, xbest + i * d, d * sizeof(float));
            }
    }
    return 0;
}
