/* apgd.c — Auto-PGD as fra31/auto-attack autopgd_base.py (attacks.md §4): random start on
 * the ε-sphere, step size 2ε halved at checkpoints when the loss stalls (then restart
 * from the best-loss point), momentum 0.75, APGD-CE (cross-entropy) and APGD-T (targeted
 * DLR over the top non-true classes of the clean logits). Success = misclassification;
 * the returned point is the last misclassified iterate, the clean image otherwise. */
#include "attacks.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Π∞: the ε-box [blo, bhi] first, then the range [rlo, rhi] (AutoAttack's order, attacks.md §10) */
static inline float box(float v, float blo, float bhi, float rlo, float rhi) {
    return qb_clipf(v < blo ? blo : v > bhi ? bhi : v, rlo, rhi);
}

typedef struct { int n2, nmin, decr; } apgd_sched;

static apgd_sched apgd_schedule(int n_iter) {
    apgd_sched s;
    s.n2 = (int)floor(0.22 * n_iter), s.nmin = (int)floor(0.06 * n_iter), s.decr = (int)floor(0.03 * n_iter);
    if (s.n2 < 1) s.n2 = 1;
    if (s.nmin < 1) s.nmin = 1;
    if (s.decr < 1) s.decr = 1;
    return s;
}

int qb_apgd_checkpoints(int n_iter, int *out, int cap) {
    apgd_sched s = apgd_schedule(n_iter);
    int k = s.n2, counter = 0, n = 0;
    for (int i = 0; i < n_iter; i++)
        if (++counter == k) {
            if (out && n < cap) out[n] = i + 1;
            n++;
            k = k - s.decr > s.nmin ? k - s.decr : s.nmin;
            counter = 0;
        }
    return n;
}

int qb_apgd_should_halve(const double *loss_steps, int stride, int n_iter, int i, int k, double rho,
                         int reduced_last, double best_last, double best) {
    int osc = 0;
    for (int c = 0; c < k; c++) {
        int j = i - c, jp = j - 1 < 0 ? j - 1 + n_iter : j - 1; /* Python's loss_steps[-1] */
        osc += loss_steps[(size_t)j * stride] > loss_steps[(size_t)jp * stride];
    }
    int cond1 = osc <= k * rho;
    int cond2 = !reduced_last && best_last >= best;
    return cond1 || cond2;
}

/* L2 projection as autopgd: x + (v − x)/(‖v − x‖ + 1e-12)·min(ε, ‖v − x‖), norm in attack space */
static void project_l2(const qb_attack_cfg *cfg, const float *x, float *v, size_t plane) {
    double ss = 0;
    for (int c = 0; c < 3; c++)
        for (size_t i = c * plane; i < (c + 1) * plane; i++) {
            double da = ((double)v[i] - x[i]) / cfg->scale[c];
            ss += da * da;
        }
    double nrm = sqrt(ss);
    float f = (float)((nrm < cfg->eps ? nrm : cfg->eps) / (nrm + 1e-12));
    for (int c = 0; c < 3; c++) {
        float lo = cfg->lo[c], hi = cfg->hi[c];
        for (size_t i = c * plane; i < (c + 1) * plane; i++) v[i] = qb_clipf(x[i] + (v[i] - x[i]) * f, lo, hi);
    }
}

static void apgd_start(const qb_attack_cfg *cfg, const float *x, qb_rng *r, size_t plane, float *x0) {
    size_t d = 3 * plane;
    double m = 0;
    for (size_t i = 0; i < d; i++) {
        double t = cfg->norm == QB_NORM_LINF ? 2.0 * qb_rng_uniformf(r) - 1.0 : qb_rng_normal(r);
        x0[i] = (float)t;
        m = cfg->norm == QB_NORM_LINF ? (fabs(t) > m ? fabs(t) : m) : m + t * t;
    }
    double f = cfg->eps / ((cfg->norm == QB_NORM_LINF ? m : sqrt(m)) + 1e-12);
    for (int c = 0; c < 3; c++) {
        float lo = cfg->lo[c], hi = cfg->hi[c];
        for (size_t i = c * plane; i < (c + 1) * plane; i++) x0[i] = qb_clipf(x[i] + (float)(x0[i] * f * cfg->scale[c]), lo, hi);
    }
}

/* One APGD run (autopgd attack_single_run) on n compacted images, halving at the n_cp
 * checkpoints cps (qb_apgd_checkpoints); broken[j] = 1 and
 * xbadv[j] set for images misclassified at some iterate; ivec[6][j] = 1 where the start
 * gradient is exactly zero. */
static int apgd_single_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *xc, const int *yc,
                           const int *tgt, const uint64_t *ids, const char *purpose, int n, int n_iter, const int *cps,
                           int n_cp, int *broken, float *xbadv) {
    size_t d = ws->d, plane = (size_t)ws->S * ws->S;
    int K = ws->K;
    qb_loss loss = tgt ? QB_LOSS_DLR_T : QB_LOSS_CE;
    float *xcur = ws->buf[1], *xprev = ws->buf[2], *xnew = ws->buf[3], *xbest = ws->buf[4], *gbest = ws->buf[5];
    float *g = ws->grad, *eta = ws->vec[0];
    int *reduced_last = ws->ivec[5];
    size_t need = (size_t)(n_iter + 3) * n;
    if (ws->dscratch_len < need) {
        free(ws->dscratch);
        if (!(ws->dscratch = qb_malloc(need * sizeof(double)))) { ws->dscratch_len = 0; return QB_EXIT_FAIL; }
        ws->dscratch_len = need;
    }
    double *loss_steps = ws->dscratch, *lcur = loss_steps + (size_t)n_iter * n, *lbest = lcur + n,
           *best_last = lbest + n;
    memset(loss_steps, 0, sizeof(double) * n_iter * n);
    for (int j = 0; j < n; j++) {
        qb_rng r = qb_rng_stream(cfg->seed, ids[j], purpose);
        apgd_start(cfg, xc + j * d, &r, plane, xcur + j * d);
    }
    int rc = qb_attack_loss_grad(ws, xcur, n, yc, tgt, loss, lcur, g);
    if (rc) return rc;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (size_t i = 0; i < d; i++) s += fabsf(g[j * d + i]);
        ws->zero_grad += s == 0; /* a masked or saturated gradient at the start (attacks.md §11.6) */
        ws->ivec[6][j] = s == 0;
        broken[j] = qb_argmax(ws->logits + (size_t)j * K, K) != yc[j];
        if (broken[j]) memcpy(xbadv + j * d, xcur + j * d, d * sizeof(float));
        eta[j] = 2.0f * cfg->eps;
        lbest[j] = best_last[j] = lcur[j];
        reduced_last[j] = 1;
    }
    if (ws->apgd_trace) ws->apgd_trace[0] = lcur[0], ws->apgd_trace[1] = eta[0];
    memcpy(xbest, xcur, n * d * sizeof(float));
    memcpy(gbest, g, n * d * sizeof(float));
    memcpy(xprev, xcur, n * d * sizeof(float));
    int next_cp = 0; /* k at a checkpoint = the interval that ends there */
    double rho = cfg->rho > 0 ? cfg->rho : 0.75;
    for (int it = 0; it < n_iter; it++) {
        float a = it == 0 ? 1.0f : 0.75f;
        for (int j = 0; j < n; j++) {
            const float *x = xc + j * d, *cur = xcur + j * d, *prev = xprev + j * d, *gj = g + j * d;
            float *z = xnew + j * d;
            if (cfg->norm == QB_NORM_LINF) {
                for (int c = 0; c < 3; c++) {
                    float e = cfg->eps * cfg->scale[c], st = eta[j] * cfg->scale[c], rlo = cfg->lo[c], rhi = cfg->hi[c];
                    for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                        float lo = x[i] - e, hi = x[i] + e;
                        float sg = (float)((gj[i] > 0) - (gj[i] < 0));
                        float zi = box(cur[i] + st * sg, lo, hi, rlo, rhi);
                        z[i] = box(cur[i] + (zi - cur[i]) * a + (cur[i] - prev[i]) * (1 - a), lo, hi, rlo, rhi);
                    }
                }
            } else {
                double gs = 0;
                for (int c = 0; c < 3; c++)
                    for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                        double ga = (double)gj[i] * cfg->scale[c];
                        gs += ga * ga;
                    }
                double ginv = 1.0 / (sqrt(gs) + 1e-12);
                for (int c = 0; c < 3; c++) {
                    float f = (float)(eta[j] * ginv * cfg->scale[c] * cfg->scale[c]);
                    for (size_t i = c * plane; i < (c + 1) * plane; i++) z[i] = cur[i] + f * gj[i];
                }
                project_l2(cfg, x, z, plane);
                for (size_t i = 0; i < d; i++) z[i] = cur[i] + (z[i] - cur[i]) * a + (cur[i] - prev[i]) * (1 - a);
                project_l2(cfg, x, z, plane);
            }
        }
        float *t = xprev; /* x_prev ← x_i, x_{i+1} becomes current */
        xprev = xcur, xcur = xnew, xnew = t;
        if ((rc = qb_attack_loss_grad(ws, xcur, n, yc, tgt, loss, lcur, g))) return rc;
        for (int j = 0; j < n; j++) {
            if (qb_argmax(ws->logits + (size_t)j * K, K) != yc[j]) {
                broken[j] = 1;
                memcpy(xbadv + j * d, xcur + j * d, d * sizeof(float)); /* the last misclassified iterate */
            }
            loss_steps[(size_t)it * n + j] = lcur[j];
            if (lcur[j] > lbest[j]) {
                lbest[j] = lcur[j];
                memcpy(xbest + j * d, xcur + j * d, d * sizeof(float));
                memcpy(gbest + j * d, g + j * d, d * sizeof(float));
            }
        }
        if (next_cp < n_cp && it + 1 == cps[next_cp]) {
            int k = cps[next_cp] - (next_cp ? cps[next_cp - 1] : 0);
            next_cp++;
            for (int j = 0; j < n; j++) {
                int halve = qb_apgd_should_halve(loss_steps + j, n, n_iter, it, k, rho, reduced_last[j], best_last[j],
                                                 lbest[j]);
                reduced_last[j] = halve;
                best_last[j] = lbest[j];
                if (halve) {
                    /* x_prev is kept: the next momentum term is x_best − x_i, as in autopgd */
                    eta[j] /= 2.0f;
                    memcpy(xcur + j * d, xbest + j * d, d * sizeof(float));
                    memcpy(g + j * d, gbest + j * d, d * sizeof(float));
                }
            }
        }
        if (ws->apgd_trace) ws->apgd_trace[2 * it + 2] = lcur[0], ws->apgd_trace[2 * it + 3] = eta[0];
    }
    return 0;
}

int qb_apgd_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, int targeted, const float *x, const int *y,
                const uint64_t *ids, int n, float *xadv) {
    size_t d = ws->d;
    int K = ws->K;
    int n_iter = cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(QB_ATK_APGD_CE);
    int restarts = cfg->restarts > 0 ? cfg->restarts : 1;
    int n_targets = targeted ? (cfg->n_targets > 0 ? cfg->n_targets : 9) : 1;
    if (n_targets > K - 1) n_targets = K - 1;
    float *xc = ws->buf[0], *xbadv = ws->buf[6], *clean_logits = ws->buf[7];
    int *yc = ws->ivec[0], *orig = ws->ivec[1], *active = ws->ivec[2], *broken = ws->ivec[3], *tgt = ws->ivec[4];
    uint64_t *idc = ws->ids;
    int *zero_start = ws->ivec[7]; /* per input image, for the caller's sanity report (attacks.h) */
    memset(zero_start, 0, sizeof(int) * n);
    memcpy(xadv, x, n * d * sizeof(float));
    /* images misclassified already are not attacked (autopgd perturb); the clean logits give the targets */
    int rc = qb_attack_predict(ws, x, n, active);
    if (rc) return rc;
    if ((size_t)n * K > (size_t)ws->cap * d) return qb_error(QB_EXIT_FAIL, "apgd: too many classes for the workspace");
    memcpy(clean_logits, ws->logits, sizeof(float) * n * K);
    for (int i = 0; i < n; i++) active[i] = active[i] == y[i];
    /* the checkpoints, once for every run: qb_apgd_checkpoints, the tested formula */
    int n_cp = qb_apgd_checkpoints(n_iter, NULL, 0);
    int *cps = malloc(sizeof(int) * (n_cp > 0 ? n_cp : 1));
    if (!cps) return qb_error(QB_EXIT_FAIL, "out of memory");
    qb_apgd_checkpoints(n_iter, cps, n_cp);
    for (int tr = 2; tr < 2 + n_targets && !rc; tr++)
        for (int r = 0; r < restarts && !rc; r++) {
            int na = 0;
            for (int i = 0; i < n; i++) {
                if (!active[i]) continue;
                memcpy(xc + na * d, x + i * d, d * sizeof(float));
                yc[na] = y[i], orig[na] = i, idc[na] = ids[i];
                if (targeted) tgt[na] = qb_rank_class(clean_logits + (size_t)i * K, K, tr);
                na++;
            }
            if (na == 0) goto out; /* every image broken: nothing left to attack */
            char purpose[48];
            if (targeted) snprintf(purpose, sizeof purpose, "apgd-t/target%d/restart%d", tr, r);
            else snprintf(purpose, sizeof purpose, "apgd-ce/restart%d", r);
            rc = apgd_single_run(ws, cfg, xc, yc, targeted ? tgt : NULL, idc, purpose, na, n_iter, cps, n_cp, broken, xbadv);
            if (rc) break;
            for (int j = 0; j < na; j++) zero_start[orig[j]] |= ws->ivec[6][j];
            for (int j = 0; j < na; j++)
                if (broken[j]) {
                    active[orig[j]] = 0;
                    memcpy(xadv + orig[j] * d, xbadv + j * d, d * sizeof(float));
                }
        }
out:
    free(cps);
    return rc;
}
