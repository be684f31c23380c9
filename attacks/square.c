/* square.c — Square Attack, L∞ and L2 (attacks.md §6; autoattack/square.py with
 * resc_schedule off): a gradient-free random search with the margin loss, a candidate kept
 * when it lowers the loss or misclassifies.
 *  - L∞: vertical-stripe start at x ± ε, then square windows set to x ± ε per channel.
 *  - L2: a start of 5×5 windows of pseudo-gaussian mass (eta) with random signs, scaled to
 *    ‖δ‖ = ε; each query moves the mass of a second window into the first, re-drawn as
 *    eta·σ_c plus the first window's old direction, so that ‖δ‖ stays ε (before clipping).
 * Draws are per image from its own stream (the reference shares one draw per batch, §6
 * deviation); L2 works on δ in attack space (δ_c / s_c, --eps-space normalized). Every
 * candidate is clipped to the range after the ε-ball (attacks.h). */
#include "attacks.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int qb_square_side_l2(int it, float p_init, int h, int w) {
    double p = p_selection(it, p_init);
    int s = (int)nearbyint(sqrt(p * h * w));
    if (s < 3) s = 3;
    if (s % 2 == 0) s++; /* odd, so eta's centre is a pixel */
    /* the reference has no upper bound (it fails there); keep an odd side inside the image */
    int m = h < w ? h : w;
    if (s > m) s = m % 2 ? m : m - 1;
    return s;
}

/* square.py eta_rectangles: rows×cols (row stride `stride`) of nested rectangles around the
 * centre, the k-th of half-size k adding 1/(k+1)², scaled to L2 norm |sign| with its sign. */
static void eta_rectangles(int rows, int cols, float sign, float *out, int stride) {
    if (rows <= 0) return;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) out[r * stride + c] = 0;
    int r0 = rows / 2, c0 = cols / 2, n = rows / 2 + 1 > cols / 2 + 1 ? rows / 2 + 1 : cols / 2 + 1;
    for (int k = 0; k < n; k++, r0--, c0--) {
        float v = 1.0f / ((float)(k + 1) * (float)(k + 1));
        int ra = r0 > 0 ? r0 : 0, rb = r0 + 2 * k + 1 < rows ? r0 + 2 * k + 1 : rows;
        int ca = c0 > 0 ? c0 : 0, cb = c0 + 2 * k + 1 < cols ? c0 + 2 * k + 1 : cols;
        for (int r = ra; r < rb; r++)
            for (int c = ca; c < cb; c++) out[r * stride + c] += v;
    }
    double ss = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) ss += (double)out[r * stride + c] * out[r * stride + c];
    float f = (float)(sign / sqrt(ss));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) out[r * stride + c] *= f;
}

void qb_square_eta(int s, int transpose, float *out) {
    int h = s / 2;
    eta_rectangles(h, s, 1.0f, out, s);
    eta_rectangles(s - h, s, -1.0f, out + (size_t)h * s, s);
    double ss = 0;
    for (int i = 0; i < s * s; i++) ss += (double)out[i] * out[i];
    float f = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < s * s; i++) out[i] *= f;
    if (transpose)
        for (int a = 0; a < s; a++)
            for (int b = a + 1; b < s; b++) {
                float t = out[a * s + b];
                out[a * s + b] = out[b * s + a], out[b * s + a] = t;
            }
}

static inline float rand_sign(qb_rng *r) { return qb_rng_uniform(r) < 0.5 ? -1.0f : 1.0f; }
static inline int rand_offset(qb_rng *r, int S, int s) { return s < S ? (int)floor(qb_rng_uniform(r) * (S - s)) : 0; }

/* x + δ_a·s_c·ε/‖δ_a‖ in the range: an L2 point from an attack-space direction */
static void l2_point(const qb_attack_cfg *cfg, const float *x, const float *da, size_t plane, float *out) {
    double ss = 0;
    for (size_t k = 0; k < 3 * plane; k++) ss += (double)da[k] * da[k];
    double g = cfg->eps / (sqrt(ss) + 1e-12);
    for (int c = 0; c < 3; c++) {
        float lo = cfg->lo[c], hi = cfg->hi[c], f = (float)(g * cfg->scale[c]);
        for (size_t k = c * plane; k < (c + 1) * plane; k++) out[k] = qb_clipf(x[k] + da[k] * f, lo, hi);
    }
}

/* L∞ start: one sign per channel and column, x ± ε down the whole column */
static void init_linf(const qb_attack_cfg *cfg, const float *x, qb_rng *r, int S, float *xb) {
    size_t plane = (size_t)S * S;
    for (int c = 0; c < 3; c++) {
        float e = cfg->eps * cfg->scale[c], lo = cfg->lo[c], hi = cfg->hi[c];
        for (int col = 0; col < S; col++) {
            float sg = rand_sign(r);
            for (int row = 0; row < S; row++) {
                size_t k = c * plane + (size_t)row * S + col;
                xb[k] = qb_clipf(x[k] + e * sg, lo, hi);
            }
        }
    }
}

/* L2 start: a grid of s0 = S/5 windows from offset (S − 5·s0)/2, each eta (transposed or
 * not) times a sign per channel, windows clipped at the border as torch slicing does */
static void init_l2(const qb_attack_cfg *cfg, const float *x, qb_rng *r, int S, const float *eta0, float *da, float *xb) {
    size_t plane = (size_t)S * S;
    int s0 = S / 5, sp = (S - 5 * s0) / 2, nwin = S / s0;
    memset(da, 0, 3 * plane * sizeof(float));
    for (int wh = 0; wh < nwin; wh++)
        for (int ww = 0; ww < nwin; ww++) {
            int vh = sp + wh * s0, vw = sp + ww * s0, tr = qb_rng_uniform(r) > 0.5;
            for (int c = 0; c < 3; c++) {
                float sg = rand_sign(r);
                for (int a = 0; a < s0 && vh + a < S; a++)
                    for (int b = 0; b < s0 && vw + b < S; b++)
                        da[c * plane + (size_t)(vh + a) * S + vw + b] += (tr ? eta0[b * s0 + a] : eta0[a * s0 + b]) * sg;
            }
        }
    l2_point(cfg, x, da, plane, xb);
}

/* L∞ candidate: window [vh, vh+s)² of every channel moved by 2ε·σ_c, projected back to x ± ε */
static void cand_linf(const qb_attack_cfg *cfg, const float *x, qb_rng *r, int S, int s, float *xn) {
    size_t plane = (size_t)S * S;
    int vh = rand_offset(r, S, s), vw = rand_offset(r, S, s);
    for (int c = 0; c < 3; c++) {
        float e = cfg->eps * cfg->scale[c], rlo = cfg->lo[c], rhi = cfg->hi[c];
        float dl = 2.0f * e * rand_sign(r);
        for (int row = vh; row < vh + s; row++)
            for (int col = vw; col < vw + s; col++) {
                size_t k = c * plane + (size_t)row * S + col;
                float v = xn[k] + dl, lo = x[k] - e, hi = x[k] + e;
                xn[k] = qb_clipf(v < lo ? lo : v > hi ? hi : v, rlo, rhi);
            }
    }
}

/* L2 candidate from x_best (square.py, norm 'L2'): window 1 gets eta·σ_c plus its old
 * direction, rescaled per channel so that it takes the mass of both windows plus an even
 * share of what ε leaves over; window 2 is emptied; then δ is rescaled to ‖δ‖ = ε.
 * da: d floats, nw: 3·s·s floats of scratch. */
static void cand_l2(const qb_attack_cfg *cfg, const float *x, const float *xb, qb_rng *r, int S, int s, const float *eta,
                    float *da, float *nw, float *xn) {
    size_t plane = (size_t)S * S;
    for (int c = 0; c < 3; c++)
        for (size_t k = c * plane; k < (c + 1) * plane; k++) da[k] = (xb[k] - x[k]) / cfg->scale[c];
    int vh = rand_offset(r, S, s), vw = rand_offset(r, S, s);
    int vh2 = rand_offset(r, S, s), vw2 = rand_offset(r, S, s);
    int tr = qb_rng_uniform(r) > 0.5;
    double img2 = 0, union2 = 0, w1[3] = {0, 0, 0};
    for (int row = 0; row < S; row++)
        for (int col = 0; col < S; col++) {
            int in1 = row >= vh && row < vh + s && col >= vw && col < vw + s;
            int in2 = row >= vh2 && row < vh2 + s && col >= vw2 && col < vw2 + s;
            for (int c = 0; c < 3; c++) {
                double v = da[c * plane + (size_t)row * S + col], v2 = v * v;
                img2 += v2;
                if (in1 || in2) union2 += v2;
                if (in1) w1[c] += v2;
            }
        }
    double rest = (double)cfg->eps * cfg->eps - img2;
    double target = sqrt((rest > 0 ? rest : 0) / 3 + union2);
    double nn[3];
    for (int c = 0; c < 3; c++) {
        float sg = rand_sign(r), inv = (float)(1.0 / (1e-12 + sqrt(w1[c])));
        float *o = nw + (size_t)c * s * s;
        nn[c] = 0;
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++) {
                float e = tr ? eta[b * s + a] : eta[a * s + b];
                float v = e * sg + da[c * plane + (size_t)(vh + a) * S + vw + b] * inv;
                o[a * s + b] = v;
                nn[c] += (double)v * v;
            }
    }
    for (int c = 0; c < 3; c++)
        for (int a = 0; a < s; a++) memset(da + c * plane + (size_t)(vh2 + a) * S + vw2, 0, s * sizeof(float));
    for (int c = 0; c < 3; c++) {
        float f = (float)(target / (1e-12 + sqrt(nn[c])));
        const float *o = nw + (size_t)c * s * s;
        for (int a = 0; a < s; a++)
            for (int b = 0; b < s; b++) da[c * plane + (size_t)(vh + a) * S + vw + b] = o[a * s + b] * f;
    }
    l2_point(cfg, x, da, plane, xn);
}

int qb_square_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *x, const int *y, const uint64_t *ids,
                  int n, float *xadv) {
    size_t d = ws->d;
    int S = ws->S, l2 = cfg->norm == QB_NORM_L2;
    if (l2 && S < 5) return qb_error(QB_EXIT_USAGE, "square: L2 needs images of at least 5x5 pixels");
    int n_queries = cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(QB_ATK_SQUARE);
    int restarts = cfg->restarts > 0 ? cfg->restarts : 1;
    float p_init = cfg->p_init > 0 ? cfg->p_init : 0.8f;
    /* buf[2]: eta of the current side; buf[3], buf[4]: L2 scratch (one image at a time) */
    float *xbest = ws->buf[0], *xnew = ws->buf[1], *eta = ws->buf[2], *da = ws->buf[3], *nw = ws->buf[4];
    float *mmin = ws->vec[0], *lmin = ws->vec[1];
    int *active = ws->ivec[0], *idx = ws->ivec[1], *pred = ws->ivec[2];
    double *lc = NULL;
    memcpy(xadv, x, n * d * sizeof(float));
    int rc = qb_attack_predict(ws, x, n, pred);
    if (rc) return rc;
    for (int i = 0; i < n; i++) active[i] = pred[i] == y[i], ws->margin[i] = NAN;
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
        snprintf(purpose, sizeof purpose, l2 ? "square-l2/restart%d" : "square/restart%d", r);
        int eta_s = S / 5;
        if (l2) qb_square_eta(eta_s, 0, eta);
        for (int i = 0; i < n; i++) {
            if (!active[i]) continue;
            rngs[i] = qb_rng_stream(cfg->seed, ids[i], purpose);
            if (l2) init_l2(cfg, x + i * d, &rngs[i], S, eta, da, xbest + i * d);
            else init_linf(cfg, x + i * d, &rngs[i], S, xbest + i * d);
        }
        int na = 0;
        for (int i = 0; i < n; i++)
            if (active[i]) {
                memcpy(xnew + na * d, xbest + i * d, d * sizeof(float));
                idx[na++] = i;
            }
        if (na == 0) break;
        /* query 1: the start; labels gathered in pred[] as scratch */
        for (int j = 0; j < na; j++) pred[j] = y[idx[j]];
        if ((rc = qb_attack_loss_grad(ws, xnew, na, pred, NULL, QB_LOSS_MARGIN, lc, NULL))) return rc;
        for (int j = 0; j < na; j++) mmin[idx[j]] = lmin[idx[j]] = (float)lc[j];
        for (int it = 0; it < n_queries; it++) {
            int s = l2 ? qb_square_side_l2(it, p_init, S, S) : qb_square_side(it, p_init, S, S);
            if (l2 && s != eta_s) qb_square_eta(eta_s = s, 0, eta); /* the side changes ~10 times a run */
            na = 0;
            for (int i = 0; i < n; i++) {
                if (!active[i] || !(mmin[i] > 0)) continue;
                float *xn = xnew + na * d;
                if (l2) cand_l2(cfg, x + i * d, xbest + i * d, &rngs[i], S, s, eta, da, nw, xn);
                else {
                    memcpy(xn, xbest + i * d, d * sizeof(float));
                    cand_linf(cfg, x + i * d, &rngs[i], S, s, xn);
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
        for (int i = 0; i < n; i++) {
            if (!active[i]) continue;
            ws->margin[i] = mmin[i];
            if (mmin[i] <= 0) {
                active[i] = 0;
                memcpy(xadv + i * d, xbest + i * d, d * sizeof(float));
            }
        }
    }
    return 0;
}
