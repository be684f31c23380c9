/* fab.c — targeted FAB, L∞ and L2 (attacks.md §5; autoattack/fab_base.py with targeted=True
 * and fab_projections.py projection_linf / projection_l2). A minimum-norm attack: at each iteration the
 * decision boundary between the true class y and the target t is linearised at the current
 * point x1, both x1 and the clean x are projected onto that hyperplane inside the box
 * [0,1] (the config's range: finite bounds only; minimal L∞ displacement, d1 and d2), and the next point is a convex combination
 * of the two projections, overshot by η and biased toward the clean image by
 * α = clip(‖d1‖/(‖d1‖+‖d2‖), 0, α_max). When the point is misclassified it is kept if its
 * norm is the smallest so far, then pulled back toward x by β. A point counts as broken
 * only when the smallest adversarial norm found is ≤ ε; otherwise the clean image is
 * returned. Targets are the 2nd … (n_targets+1)-th largest clean logits, each on the
 * images still robust; restart r > 0 starts from x + ½·min(res, ε)·u/‖u‖∞, u ~ U(−1,1)
 * (L2: x + ½·min(res, ε)·u/‖u‖₂, u ~ N(0, I)). L2 measures every norm (d1, d2, the kept
 * point) in L2 and projects with the minimal-L2 displacement.
 *
 * Deviations from the reference, documented:
 *  - the projection accumulates its sums in double (the reference in float32) and sorts
 *    with a total order (distance descending, then |w| descending); the solution of the
 *    projection does not depend on the order of ties;
 *  - the reference re-predicts the returned points; the model is deterministic, so the
 *    success recorded during the run (misclassified and ‖δ‖∞ ≤ ε) is the same;
 *  - --eps-space normalized: the projection and the norms are taken in attack space
 *    (δ_c / s_c, box [0, 1/s_c]), pixel steps are s_c times attack-space steps. */
#include "attacks.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAB_ALPHA_MAX 0.1f
#define FAB_ETA 1.05f
#define FAB_BETA 0.9f

typedef struct { float p, aw; } pw;

static int pw_desc(const void *a, const void *b) {
    const pw *u = a, *v = b;
    if (u->p != v->p) return u->p > v->p ? -1 : 1;
    if (u->aw != v->aw) return u->aw > v->aw ? -1 : 1;
    return 0;
}

/* Minimal-L∞ displacement d (pixels) that moves t onto {v : w·v = b} inside the box [lo_c, hi_c]
 * (fab_projections.projection_linf), or toward the box corner that gets closest when the
 * hyperplane is out of reach. Norms in attack space: coordinate i of channel c has scale s_c.
 * scratch holds n pairs. */
void qb_fab_project_linf(const float *t, const float *w, double b, size_t plane, const float scale[3],
                         const float lo[3], const float hi[3], float *d, void *scratch) {
    size_t n = 3 * plane;
    pw *sp = scratch;
    double wt = 0;
    for (size_t i = 0; i < n; i++) wt += (double)w[i] * t[i];
    /* orient the hyperplane so that t is on its non-negative side: w·v must decrease by −bb ≥ 0 */
    double sg = wt - b >= 0 ? 1.0 : -1.0;
    double bb = sg * b - sg * wt; /* required change of w·v, ≤ 0 */
    double b0 = 0;                /* the change with every coordinate at its bound */
    size_t m = 0;
    for (int c = 0; c < 3; c++)
        for (size_t i = c * plane; i < (c + 1) * plane; i++) {
            double wi = sg * w[i];
            if (wi == 0) continue;
            /* the bound that lowers w·v: hi where w < 0, lo where w > 0; p = distance to it (attack space) */
            float p = (float)((wi < 0 ? (double)hi[c] - t[i] : (double)t[i] - lo[c]) / scale[c]);
            float aw = (float)(fabs(wi) * scale[c]);
            sp[m].p = p, sp[m].aw = aw;
            m++;
            b0 -= (double)aw * p;
        }
    double lambda; /* L∞ radius in attack space */
    if (m == 0 || !(bb > b0)) {
        lambda = INFINITY; /* out of reach (or w = 0): every coordinate to its bound */
    } else {
        qsort(sp, m, sizeof *sp, pw_desc);
        /* change(λ) = −Σ|w| min(λ, p): with the k+1 largest p unsaturated it is sb_k − s_k·λ */
        double s = 0, sb = b0, pmin = sp[m - 1].p;
        double s_all = 0, sb_all = b0;
        for (size_t k = 0; k < m; k++) s_all += sp[k].aw, sb_all += (double)sp[k].aw * sp[k].p;
        if (bb - (sb_all - s_all * pmin) > 0) {
            lambda = (bb - sb_all) / -s_all; /* below the smallest distance: no coordinate saturates */
        } else {
            /* the last k with bb > change at λ = p_k (k = 0 always qualifies: change there is b0) */
            double s_lb = 0, sb_lb = b0;
            for (size_t k = 0; k < m; k++) {
                s += sp[k].aw, sb += (double)sp[k].aw * sp[k].p;
                if (!(bb - (sb - s * sp[k].p) > 0)) break;
                s_lb = s, sb_lb = sb;
            }
            lambda = (bb - sb_lb) / -s_lb;
        }
        if (!(lambda >= 0)) lambda = 0; /* clamp_min(0), NaN from 0/0 included */
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = c * plane; i < (c + 1) * plane; i++) {
            double wi = sg * w[i];
            if (wi == 0) { d[i] = 0; continue; }
            double p = (wi < 0 ? (double)hi[c] - t[i] : (double)t[i] - lo[c]) / scale[c];
            double mag = lambda < p ? lambda : p;
            d[i] = (float)((wi < 0 ? mag : -mag) * scale[c]);
        }
}

/* FAB's L2 projection (fab_projections.projection_l2), in attack space (u = v/s_c, w_u = w·s_c,
 * box [lo_c/s_c, hi_c/s_c]): the displacement is d_i = −min(α, r_i)·w_i, where r_i is the α
 * at which coordinate i reaches the bound it moves toward, and α ≥ 0 solves w·(t + d) = b
 * (a piecewise-linear equation: walk the breakpoints in ascending order). Out of reach,
 * every coordinate goes to its bound. |w_u| < 1e-8 stays put, as the reference. */
typedef struct { float r, w2; } rw;

static int rw_asc(const void *a, const void *b) {
    const rw *u = a, *v = b;
    if (u->r != v->r) return u->r < v->r ? -1 : 1;
    if (u->w2 != v->w2) return u->w2 > v->w2 ? -1 : 1;
    return 0;
}

void qb_fab_project_l2(const float *t, const float *w, double b, size_t plane, const float scale[3], const float lo[3],
                       const float hi[3], float *d, void *scratch) {
    size_t n = 3 * plane, m = 0;
    rw *sp = scratch;
    double cst = -b;
    for (size_t i = 0; i < n; i++) cst += (double)w[i] * t[i];
    double sg = cst >= 0 ? 1.0 : -1.0; /* orient so that w·v must decrease by cst ≥ 0 */
    cst *= sg;
    double reach = 0; /* the decrease with every coordinate at its bound */
    for (int c = 0; c < 3; c++)
        for (size_t i = c * plane; i < (c + 1) * plane; i++) {
            double wu = sg * w[i] * scale[c];
            if (fabs(wu) < 1e-8) continue;
            double tu = t[i] / scale[c], r = wu > 0 ? (tu - lo[c] / scale[c]) / wu : (tu - hi[c] / scale[c]) / wu;
            sp[m].r = (float)r, sp[m].w2 = (float)(wu * wu);
            reach += (double)sp[m].w2 * sp[m].r;
            m++;
        }
    double alpha = INFINITY;
    if (cst == 0) alpha = 0;
    else if (reach > cst) {
        qsort(sp, m, sizeof *sp, rw_asc);
        double sat = 0, wfree = 0; /* Σ w²·r of the saturated coordinates, Σ w² of the free ones */
        for (size_t k = 0; k < m; k++) wfree += sp[k].w2;
        for (size_t k = 0; k < m && wfree > 0; k++) {
            alpha = (cst - sat) / wfree;
            if (alpha <= sp[k].r) break;
            sat += (double)sp[k].w2 * sp[k].r, wfree -= sp[k].w2;
        }
        if (!(alpha >= 0)) alpha = 0;
    }
    for (int c = 0; c < 3; c++)
        for (size_t i = c * plane; i < (c + 1) * plane; i++) {
            double wu = sg * w[i] * scale[c];
            if (fabs(wu) < 1e-8) { d[i] = 0; continue; }
            double tu = t[i] / scale[c], r = wu > 0 ? (tu - lo[c] / scale[c]) / wu : (tu - hi[c] / scale[c]) / wu;
            d[i] = (float)(-(alpha < r ? alpha : r) * wu * scale[c]);
        }
}

/* ‖v − x‖ in attack space, L∞ or L2 */
static double dist(qb_norm norm, const float *v, const float *x, size_t plane, const float scale[3]) {
    double m = 0;
    for (int c = 0; c < 3; c++)
        for (size_t i = c * plane; i < (c + 1) * plane; i++) {
            double a = fabs((double)v[i] - x[i]) / scale[c];
            if (norm == QB_NORM_LINF) m = a > m ? a : m;
            else m += a * a;
        }
    return norm == QB_NORM_LINF ? m : sqrt(m);
}

/* One FAB-T run (fab_base attack_single_run, targeted) on n compacted clean-correct images. */
static int fab_single_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *xc, const int *yc, const int *tgt,
                          const uint64_t *ids, int target_rank, int restart, int n, int n_iter, float *res,
                          float *xbadv) {
    size_t d = ws->d, plane = (size_t)ws->S * ws->S;
    int K = ws->K;
    float *x1 = ws->buf[1], *d1 = ws->buf[2], *d2 = ws->buf[3];
    double *df = ws->dscratch;
    int *pred = ws->ivec[3];
    const float *lo = cfg->lo, *hi = cfg->hi;
    for (int j = 0; j < n; j++) res[j] = 1e10f;
    memcpy(x1, xc, n * d * sizeof(float));
    if (restart > 0) {
        char purpose[48];
        snprintf(purpose, sizeof purpose, "fab-t/target%d/restart%d", target_rank, restart);
        for (int j = 0; j < n; j++) {
            qb_rng r = qb_rng_stream(cfg->seed, ids[j], purpose);
            float *v = x1 + j * d;
            double m = 0;
            for (size_t i = 0; i < d; i++) {
                if (cfg->norm == QB_NORM_LINF) {
                    v[i] = 2.0f * qb_rng_uniformf(&r) - 1.0f;
                    m = fabs(v[i]) > m ? fabs(v[i]) : m;
                } else {
                    v[i] = (float)qb_rng_normal(&r);
                    m += (double)v[i] * v[i];
                }
            }
            if (cfg->norm == QB_NORM_L2) m = sqrt(m);
            double f = 0.5 * cfg->eps / (m > 0 ? m : 1);
            for (int c = 0; c < 3; c++)
                for (size_t i = c * plane; i < (c + 1) * plane; i++)
                    v[i] = qb_clipf(xc[j * d + i] + (float)(v[i] * f * cfg->scale[c]), lo[c], hi[c]);
        }
    }
    int rc = 0;
    for (int it = 0; it < n_iter; it++) {
        /* df = z_t − z_y and its input gradient */
        if ((rc = qb_attack_loss_grad(ws, x1, n, yc, tgt, QB_LOSS_TDIFF, df, ws->grad))) return rc;
        int err = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : err)
        for (int j = 0; j < n; j++) {
            const float *w = ws->grad + j * d, *xj = xc + j * d;
            float *v = x1 + j * d, *e1 = d1 + j * d, *e2 = d2 + j * d;
            double wx = 0;
            for (size_t i = 0; i < d; i++) wx += (double)w[i] * v[i];
            double b = -df[j] + wx;
            void *scratch = malloc(d * sizeof(pw));
            if (!scratch) { err = 1; continue; }
            if (cfg->norm == QB_NORM_LINF) {
                qb_fab_project_linf(v, w, b, plane, cfg->scale, lo, hi, e1, scratch);
                qb_fab_project_linf(xj, w, b, plane, cfg->scale, lo, hi, e2, scratch);
            } else {
                qb_fab_project_l2(v, w, b, plane, cfg->scale, lo, hi, e1, scratch);
                qb_fab_project_l2(xj, w, b, plane, cfg->scale, lo, hi, e2, scratch);
            }
            free(scratch);
            double a1 = 0, a2 = 0;
            for (int c = 0; c < 3; c++)
                for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                    double u1 = fabs(e1[i]) / cfg->scale[c], u2 = fabs(e2[i]) / cfg->scale[c];
                    if (cfg->norm == QB_NORM_LINF) a1 = u1 > a1 ? u1 : a1, a2 = u2 > a2 ? u2 : a2;
                    else a1 += u1 * u1, a2 += u2 * u2;
                }
            if (cfg->norm == QB_NORM_L2) a1 = sqrt(a1), a2 = sqrt(a2);
            a1 = a1 > 1e-8 ? a1 : 1e-8, a2 = a2 > 1e-8 ? a2 : 1e-8;
            float alpha = (float)(a1 / (a1 + a2));
            alpha = alpha < 0 ? 0 : alpha > FAB_ALPHA_MAX ? FAB_ALPHA_MAX : alpha;
            for (int c = 0; c < 3; c++)
                for (size_t i = c * plane; i < (c + 1) * plane; i++)
                    v[i] = qb_clipf((v[i] + FAB_ETA * e1[i]) * (1 - alpha) + (xj[i] + e2[i] * FAB_ETA) * alpha, lo[c], hi[c]);
        }
        if (err) return qb_error(QB_EXIT_FAIL, "out of memory");
        if ((rc = qb_attack_predict(ws, x1, n, pred))) return rc;
        for (int j = 0; j < n; j++) {
            if (pred[j] == yc[j]) continue;
            float *v = x1 + j * d;
            const float *xj = xc + j * d;
            float t = (float)dist(cfg->norm, v, xj, plane, cfg->scale);
            if (t < res[j]) {
                res[j] = t;
                memcpy(xbadv + j * d, v, d * sizeof(float));
            }
            for (size_t i = 0; i < d; i++) v[i] = xj[i] + (v[i] - xj[i]) * FAB_BETA; /* backward step */
        }
    }
    (void)K;
    return 0;
}

int qb_fab_t_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *x, const int *y, const uint64_t *ids, int n,
                 float *xadv) {
    for (int c = 0; c < 3; c++) {
        float lo = cfg->lo[c], hi = cfg->hi[c];
        if (!isfinite(lo) || !isfinite(hi)) return qb_error(QB_EXIT_USAGE, "fab-t: the range must be finite");
    }
    if (ws->K < 2) return qb_error(QB_EXIT_USAGE, "fab-t: needs at least 2 classes");
    size_t d = ws->d;
    int K = ws->K;
    int n_iter = cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(QB_ATK_FAB_T);
    int restarts = cfg->restarts > 0 ? cfg->restarts : 1;
    int n_targets = cfg->n_targets > 0 ? cfg->n_targets : 9;
    if (n_targets > K - 1) n_targets = K - 1;
    float *xc = ws->buf[0], *xbadv = ws->buf[6], *clean_logits = ws->buf[7], *res = ws->vec[0];
    int *yc = ws->ivec[0], *orig = ws->ivec[1], *active = ws->ivec[2], *tgt = ws->ivec[4];
    uint64_t *idc = ws->ids;
    memcpy(xadv, x, n * d * sizeof(float));
    int rc = qb_attack_predict(ws, x, n, active);
    if (rc) return rc;
    if ((size_t)n * K > (size_t)ws->cap * d) return qb_error(QB_EXIT_FAIL, "fab-t: too many classes for the workspace");
    memcpy(clean_logits, ws->logits, sizeof(float) * n * K);
    for (int i = 0; i < n; i++) active[i] = active[i] == y[i];
    size_t need = (size_t)n;
    if (ws->dscratch_len < need) {
        free(ws->dscratch);
        if (!(ws->dscratch = qb_malloc(need * sizeof(double)))) { ws->dscratch_len = 0; return QB_EXIT_FAIL; }
        ws->dscratch_len = need;
    }
    for (int tr = 2; tr < 2 + n_targets; tr++)
        for (int r = 0; r < restarts; r++) {
            int na = 0;
            for (int i = 0; i < n; i++) {
                if (!active[i]) continue;
                memcpy(xc + na * d, x + i * d, d * sizeof(float));
                yc[na] = y[i], orig[na] = i, idc[na] = ids[i];
                tgt[na] = qb_rank_class(clean_logits + (size_t)i * K, K, tr);
                na++;
            }
            if (na == 0) return 0;
            if ((rc = fab_single_run(ws, cfg, xc, yc, tgt, idc, tr, r, na, n_iter, res, xbadv))) return rc;
            for (int j = 0; j < na; j++)
                if (res[j] <= cfg->eps) { /* broken within the ball */
                    active[orig[j]] = 0;
                    memcpy(xadv + orig[j] * d, xbadv + j * d, d * sizeof(float));
                }
        }
    return 0;
}
