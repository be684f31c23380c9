/* blur.c — defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur
 * (corruptions.md 4.4–4.7, 4.17). */
#include "prims.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- defocus_blur ---------------- */

static const double defocus_params[3][5][2] = {
    {{3, 0.1}, {4, 0.5}, {6, 0.5}, {8, 0.5}, {10, 0.5}},
    {{0.5, 0.6}, {1, 0.1}, {1.5, 0.1}, {2.5, 0.01}, {3, 0.1}},
    {{0.3, 0.4}, {0.4, 0.5}, {0.5, 0.6}, {1, 0.2}, {1.5, 0.1}}};

/* The reference's disk(): binary disk normalised in f32, then cv2.GaussianBlur (f32 taps,
 * symmetric row pass then column pass, REFLECT_101 inside the kernel array). K is sz×sz. */
static int defocus_kernel(float *K, double radius, double alias) {
    int L = radius <= 8 ? 8 : (int)radius, sz = 2 * L + 1, ks = radius <= 8 ? 3 : 5, kr = ks / 2;
    float D[21 * 21], T[21 * 21], g[5];
    int count = 0;
    for (int a = 0; a < sz; a++)
        for (int b = 0; b < sz; b++) {
            double ya = a - L, xb = b - L;
            D[a * sz + b] = (xb * xb + ya * ya) <= radius * radius;
            count += D[a * sz + b] != 0;
        }
    for (int i = 0; i < sz * sz; i++) D[i] /= (float)count;
    double gd[5], gs = 0;
    for (int m = 0; m < ks; m++) gs += gd[m] = exp(-0.5 / (alias * alias) * (m - kr) * (m - kr));
    for (int m = 0; m < ks; m++) g[m] = (float)(gd[m] * (1.0 / gs));
    for (int a = 0; a < sz; a++)
        for (int b = 0; b < sz; b++) {
            float s = g[kr] * D[a * sz + b];
            for (int m = 1; m <= kr; m++)
                s += g[kr + m] * (D[a * sz + qbc_reflect101(b - m, sz)] + D[a * sz + qbc_reflect101(b + m, sz)]);
            T[a * sz + b] = s;
        }
    for (int a = 0; a < sz; a++)
        for (int b = 0; b < sz; b++) {
            float s = g[kr] * T[a * sz + b];
            for (int m = 1; m <= kr; m++)
                s += g[kr + m] * (T[qbc_reflect101(a - m, sz) * sz + b] + T[qbc_reflect101(a + m, sz) * sz + b]);
            K[a * sz + b] = s;
        }
    return sz;
}

typedef float defocus_v8f __attribute__((vector_size(32)));
static inline defocus_v8f defocus_ld8(const float *p) { defocus_v8f v; memcpy(&v, p, sizeof v); return v; }

/* filter2D with K = GaussianBlur(disk): correlating with G∗D is correlating with the binary disk D
 * (integer row-segment sums from prefix sums: exact) and then with the separable 3×3 or 5×5 G
 * (f64), all on the image padded once with REFLECT_101 (the composed kernel's borders). Where the
 * blurred disk reaches the kernel array's edge (radius near L: imagenet severities 4–5), OpenCV's
 * REFLECT_101 inside the array folds the spill back: K = crop(G∗D) + fold. Those few taps — the
 * spill outside the array, negated, and the band the fold lands on — are a sparse correction added
 * after the composed pass. K's other f32 taps differ from G∗D/count by ~1e−8 relative; the composed
 * part is scaled so flat regions, which the reference puts at v·ΣK just off k/255, land on the same
 * side. */
static int defocus_composed(uint8_t *out, const uint8_t *in, int S, const float *K, int sz, double radius,
                            double alias) {
    int L = sz / 2, ks = radius <= 8 ? 3 : 5, kr = ks / 2, e[21], rd = 0, count = 0;
    for (int a = 0; a < sz; a++) { /* half-width of disk row a (−1: empty), as defocus_kernel tests it */
        e[a] = -1;
        for (int b = L; b < sz; b++) {
            double ya = a - L, xb = b - L;
            if ((xb * xb + ya * ya) <= radius * radius) e[a] = b - L;
        }
        if (e[a] >= 0) count += 2 * e[a] + 1, rd = a - L > rd ? a - L : rd;
    }
    double gd[5], gs = 0, g[5];
    for (int m = 0; m < ks; m++) gs += gd[m] = exp(-0.5 / (alias * alias) * (m - kr) * (m - kr));
    for (int m = 0; m < ks; m++) g[m] = (float)(gd[m] * (1.0 / gs));
    /* Wf: G∗D (binary D) at offsets −F..F; Kd: the reference's pipeline in f64, reflection included */
    enum { FM = 25 }; /* radius ≤ 10 (checked by the caller): L ≤ 10, sz ≤ 21, FW ≤ 25 */
    int F = L + kr, FW = 2 * F + 1;
    double Wf[FM * FM], Kd[21 * 21], Td[21 * 21];
    for (int u = 0; u < FW; u++)
        for (int v = 0; v < FW; v++) {
            double w = 0;
            for (int i = 0; i < ks; i++)
                for (int j = 0; j < ks; j++) {
                    int a = u - F - (i - kr) + L, b = v - F - (j - kr) + L;
                    if (a >= 0 && a < sz && b >= 0 && b < sz && e[a] >= 0 && abs(b - L) <= e[a]) w += g[i] * g[j];
                }
            Wf[u * FW + v] = w / count;
        }
    for (int a = 0; a < sz; a++)
        for (int b = 0; b < sz; b++) {
            double t = 0;
            for (int j = 0; j < ks; j++) {
                int bb = qbc_reflect101(b + j - kr, sz);
                t += g[j] * (e[a] >= 0 && abs(bb - L) <= e[a]);
            }
            Td[a * sz + b] = t;
        }
    for (int a = 0; a < sz; a++)
        for (int b = 0; b < sz; b++) {
            double t = 0;
            for (int i = 0; i < ks; i++) t += g[i] * Td[qbc_reflect101(a + i - kr, sz) * sz + b];
            Kd[a * sz + b] = t / count;
        }
    /* the correction taps (offsets dy, dx; weights ·1/255) and the composed part's scale */
    int cdy[FM * FM], cdx[FM * FM], nc = 0;
    double cw[FM * FM], kin = 0, win = 0;
    for (int u = 0; u < FW; u++)
        for (int v = 0; v < FW; v++) {
            int a = u - kr, b = v - kr, inside = a >= 0 && a < sz && b >= 0 && b < sz;
            double w = Wf[u * FW + v];
            /* a tap: spill outside the array, or where the fold makes K differ from G∗D beyond
             * f32 rounding (weights set below, once σ is known) */
            if (inside ? fabs(Kd[a * sz + b] - w) > 1e-6 / count : w != 0) cdy[nc] = u - F, cdx[nc] = v - F, cw[nc++] = 0;
            else if (inside) kin += K[a * sz + b], win += w;
        }
    double g1 = 0, ksum = 0, sigma;
    for (int m = 0; m < ks; m++) g1 += g[m];
    for (int i = 0; i < sz * sz; i++) ksum += K[i];
    sigma = nc ? kin / win : ksum / (g1 * g1); /* no fold: ΣK / Σ(G∗D/count) */
    for (int t = 0; t < nc; t++) { /* the composed part is σ·Wf everywhere: take σ·Wf off, put K on */
        int a = cdy[t] + F - kr, b = cdx[t] + F - kr, inside = a >= 0 && a < sz && b >= 0 && b < sz;
        double w = Wf[(cdy[t] + F) * FW + cdx[t] + F];
        cw[t] = ((inside ? K[a * sz + b] : 0.0) - sigma * w) / 255.0;
    }
    double scale = sigma / count / 255.0;
    int R = rd + kr > F ? rd + kr : F, W = S + 2 * R, Qn = S + 2 * kr;
    int32_t *H = qbc_scratch(0, (size_t)W * (W + 1) * sizeof(int32_t));
    int32_t *Q = qbc_scratch(1, (size_t)Qn * Qn * sizeof(int32_t));
    double *T = qbc_scratch(2, (size_t)(Qn + 4 + 2 * S) * sizeof(double));
    float *Pd = nc ? qbc_scratch(3, (size_t)W * W * sizeof(float)) : NULL;
    int *coff = qbc_scratch(4, (size_t)(nc + 1) * sizeof(int));
    if (!H || !Q || !T || !coff || (nc && !Pd)) return QB_EXIT_FAIL;
    float cwf[FM * FM];
    for (int t = 0; t < nc; t++) coff[t] = (R + cdy[t]) * W + R + cdx[t], cwf[t] = (float)cw[t];
    int xr[64 + 512];
    if (W > 64 + 512) return qb_error(QB_EXIT_FAIL, "defocus_blur: image too large");
    for (int x = 0; x < W; x++) xr[x] = qbc_reflect101(x - R, S);
    for (int k = 0; k < 3; k++) {
        /* prefix sums of the padded rows: H[y][x] = Σ_{x' < x} pad[y][x'] */
        for (int y = 0; y < W; y++) {
            const uint8_t *row = in + (size_t)qbc_reflect101(y - R, S) * S * 3 + k;
            int32_t *h = H + (size_t)y * (W + 1), acc = 0;
            h[0] = 0;
            for (int x = 0; x < R; x++) acc += row[xr[x] * 3], h[x + 1] = acc;
            for (int x = R; x < R + S; x++) acc += row[(x - R) * 3], h[x + 1] = acc;
            for (int x = R + S; x < W; x++) acc += row[xr[x] * 3], h[x + 1] = acc;
            if (nc)
                for (int x = 0; x < W; x++) Pd[(size_t)y * W + x] = (float)row[xr[x] * 3];
        }
        /* Q[y][x]: disk sum centred on image (y − kr, x − kr), padded (y − kr + R, x − kr + R) */
        for (int y = 0; y < Qn; y++) {
            int32_t *q = Q + (size_t)y * Qn;
            for (int x = 0; x < Qn; x++) q[x] = 0;
            for (int a = 0; a < sz; a++) {
                if (e[a] < 0) continue;
                const int32_t *h = H + (size_t)(y + a - L + R - kr) * (W + 1) + R - kr;
                const int32_t *hi = h + e[a] + 1, *lo = h - e[a];
#pragma omp simd
                for (int x = 0; x < Qn; x++) q[x] += hi[x] - lo[x];
            }
        }
        /* G: columns, then rows, f64 (scale folded into the row taps' result) */
        for (int y = 0; y < S; y++) {
            const int32_t *q0 = Q + (size_t)y * Qn;
            for (int x = 0; x < Qn; x++) T[x] = 0; /* 0 + g_0·Q[y] + g_1·Q[y+1] + … in that order, */
            for (int i = 0; i < ks; i++) {         /* tap by tap so the loop over x vectorises */
                const int32_t *qi = q0 + (size_t)i * Qn;
                double gi = g[i];
#pragma omp simd
                for (int x = 0; x < Qn; x++) T[x] += gi * (double)qi[x];
            }
            double *U = T + Qn + 4; /* 0 + g_0·T[x] + g_1·T[x+1] + … in that order */
            for (int x = 0; x < S; x++) U[x] = 0;
            for (int j = 0; j < ks; j++)
#pragma omp simd
                for (int x = 0; x < S; x++) U[x] += g[j] * T[x + j];
            uint8_t *o = out + (size_t)y * S * 3 + k;
            if (nc) {
                /* the correction taps in f32, 32 outputs at a time with their sums in registers.
                 * The correction is ~1 % of the value, so its f32 error is ~1e−9: flat regions,
                 * which the reference puts ≥ 1e−8 off a truncation boundary, keep their side; other
                 * values land within 1e−9 of a boundary rarely — 8 of 69.2 M values (92 ImageNet
                 * images, severities 1–5) differ by one from the f64 sum. Twice as fast as f64. */
                const float *base = Pd + (size_t)y * W;
                float *C = (float *)(U + S);
                int x = 0;
                for (; x + 32 <= S; x += 32) {
                    defocus_v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
                    for (int t = 0; t < nc; t++) {
                        const float *src = base + coff[t] + x;
                        float w = cwf[t];
                        s0 += w * defocus_ld8(src), s1 += w * defocus_ld8(src + 8);
                        s2 += w * defocus_ld8(src + 16), s3 += w * defocus_ld8(src + 24);
                    }
                    memcpy(C + x, &s0, 32), memcpy(C + x + 8, &s1, 32), memcpy(C + x + 16, &s2, 32), memcpy(C + x + 24, &s3, 32);
                }
                for (; x < S; x++) {
                    float acc = 0;
                    for (int t = 0; t < nc; t++) acc += cwf[t] * base[coff[t] + x];
                    C[x] = acc;
                }
#pragma omp simd
                for (x = 0; x < S; x++) U[x] = U[x] * scale + (double)C[x];
            } else {
#pragma omp simd
                for (int x = 0; x < S; x++) U[x] *= scale;
            }
            /* to bytes 16 at a time, then into the channel's place in the interleaved row */
            uint8_t *b8 = (uint8_t *)T; /* T (the column pass) is consumed */
            qbc_out8n_row(b8, U, S, 0);
            for (int x = 0; x < S; x++) o[(size_t)x * 3] = b8[x];
        }
    }
    return 0;
}

int qb_defocus_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    int S = ctx->S;
    float K[21 * 21];
    double radius = defocus_params[ctx->preset][sev - 1][0], alias = defocus_params[ctx->preset][sev - 1][1];
    if (radius > 10) return qb_error(QB_EXIT_FAIL, "defocus_blur: radius %g beyond the presets'", radius); /* K: 21×21 */
    int sz = defocus_kernel(K, radius, alias);
    return defocus_composed(out, in, S, K, sz, radius, alias);
}

/* ---------------- glass_blur ---------------- */

static const double glass_params[3][5][3] = {
    {{0.7, 1, 2}, {0.9, 2, 1}, {1, 2, 3}, {1.1, 3, 2}, {1.5, 4, 2}},
    {{0.1, 1, 1}, {0.5, 1, 1}, {0.6, 1, 2}, {0.7, 2, 1}, {0.9, 2, 2}},
    {{0.05, 1, 1}, {0.25, 1, 1}, {0.4, 1, 1}, {0.25, 1, 2}, {0.4, 1, 2}}};

int qb_glass_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    int S = ctx->S;
    double sigma = glass_params[ctx->preset][sev - 1][0];
    int delta = (int)glass_params[ctx->preset][sev - 1][1], iters = (int)glass_params[ctx->preset][sev - 1][2];
    size_t n = (size_t)S * S * 3;
    uint8_t *y = qbc_scratch(1, n);
    if (!y) return QB_EXIT_FAIL;
    int rc = qbc_gauss_u8(y, in, S, S, 3, sigma, 0, 4.0, 1);
    /* in-place copies (not swaps), descending order, offsets in [−δ, δ−1] */
    int span = S - 2 * delta;
    int *d = span > 0 ? qbc_scratch(0, (size_t)span * span * 2 * sizeof(int)) : NULL;
    if (span > 0 && !d) rc = QB_EXIT_FAIL;
    for (int it = 0; it < iters && !rc && span > 0; it++) {
        qbc_randints(rng, -delta, delta, d, (size_t)span * span * 2); /* (dx, dy) per pixel, in loop order */
        const int *dd = d;
        for (int h = S - delta; h > delta; h--)
            for (int w = S - delta; w > delta; w--, dd += 2) {
                int dx = dd[0], dy = dd[1];
                uint8_t *dst = y + ((size_t)h * S + w) * 3;
                const uint8_t *src = y + ((size_t)(h + dy) * S + (w + dx)) * 3;
                dst[0] = src[0], dst[1] = src[1], dst[2] = src[2];
            }
    }
    if (!rc) rc = qbc_gauss_u8(out, y, S, S, 3, sigma, 0, 4.0, 0);
    return rc;
}

/* ---------------- motion_blur ---------------- */

static const double motion_params[3][5][2] = {
    {{10, 3}, {15, 5}, {15, 8}, {15, 12}, {20, 15}},
    {{10, 1}, {10, 1.5}, {10, 2}, {10, 2.5}, {12, 3}},
    {{6, 1}, {6, 1.5}, {6, 2}, {8, 2}, {9, 2.5}}};

int qb_motion_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double angle = -45.0 + 90.0 * qb_crng_uniform(rng);
    return qbc_motion_blur_u8(out, in, ctx->S, ctx->S, 3, motion_params[ctx->preset][sev - 1][0],
                              motion_params[ctx->preset][sev - 1][1], angle);
}

/* ---------------- zoom_blur ---------------- */

/* np.arange(1, stop, step) as (stop, step) */
static const double zoom_params[3][5][2] = {
    {{1.11, 0.01}, {1.16, 0.01}, {1.21, 0.02}, {1.26, 0.02}, {1.31, 0.03}},
    {{1.06, 0.01}, {1.11, 0.01}, {1.16, 0.01}, {1.21, 0.01}, {1.26, 0.01}},
    {{1.06, 0.01}, {1.11, 0.01}, {1.16, 0.01}, {1.21, 0.01}, {1.26, 0.01}}};

/* One zoom of the stack: its geometry and a cache of two crop rows already interpolated along x
 * (h: S·3 values, +1 for the overhanging 4th double of the last store). */
typedef struct {
    int top, i0[512], j0[512], tag[2];
    double f[512];
    double *h[2];
} zoom_plan;

/* Slot holding crop row `row` interpolated along x (computed on a miss into the slot other than
 * `keep`). Separable: (v·wx0 + v'·wx1) per row, then rows blended by wy; the 2×2 sum in another
 * order, equal to the reference's f64 value up to f64 rounding, which the f32 store absorbs. */
static int zoom_hrow(zoom_plan *Z, const float *v, int S, int row, int keep) {
    int s = Z->tag[0] == row ? 0 : Z->tag[1] == row ? 1 : -1;
    if (s < 0) { /* rows only move down: the smaller tag is the stale one */
        s = keep >= 0 ? 1 - keep : Z->tag[0] < Z->tag[1] ? 0 : 1;
        Z->tag[s] = row;
        const float *src = v + ((size_t)(Z->top + row) * S + Z->top) * 3;
        double *h = Z->h[s];
        /* whole pixels as 4-double vectors: the 4th lane is overwritten by the next pixel (v padded) */
        for (int x = 0; x < S; x++) {
            double w1 = Z->f[x], w0 = 1.0 - w1;
            qbc_st4(h + 3 * x, qbc_ld4f_d(src + 3 * Z->i0[x]) * w0 + qbc_ld4f_d(src + 3 * Z->j0[x]) * w1);
        }
    }
    return s;
}

/* Each zoom's value is stored f32, then summed in f32 in zoom order (scipy + the reference's
 * loop). Done output row by output row over all zooms so the running sums stay in cache. The
 * severities' zoom factors overlap (1.02 is in severities 1–4 of imagenet): each distinct factor
 * is interpolated once and added to the sum of every severity in mask that has it; factors are
 * visited in increasing order, which is each severity's own order, so every sum sees the same
 * additions in the same order as alone. */
enum { ZOOM_MAXZ = 160 };
int qb_zoom_blur_sevs(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx) {
    int S = ctx->S, S3 = S * 3;
    if (S > 512) return qb_error(QB_EXIT_FAIL, "zoom_blur: image too large");
    double zl[ZOOM_MAXZ];
    unsigned use[ZOOM_MAXZ]; /* bit s: severity s sums this factor */
    int nd = 0;
    float den[6] = {0};
    for (int sv = 1; sv <= 5; sv++) {
        if (!(mask >> sv & 1)) continue;
        double stop = zoom_params[ctx->preset][sv - 1][0], step = zoom_params[ctx->preset][sv - 1][1];
        int nz = (int)ceil((stop - 1.0) / step);
        double delta = (1.0 + step) - 1.0; /* NumPy's arange steps by (start + step) − start */
        den[sv] = (float)(nz + 1);
        for (int k = 1; k < nz; k++) { /* k = 0: zoom 1, the identity (z_0 = 1 exactly) */
            double z = 1.0 + k * delta;
            int d = 0;
            while (d < nd && zl[d] < z) d++;
            if (d < nd && zl[d] == z) { use[d] |= 1u << sv; continue; }
            if (nd == ZOOM_MAXZ) return qb_error(QB_EXIT_FAIL, "zoom_blur: too many zoom factors");
            memmove(zl + d + 1, zl + d, (size_t)(nd - d) * sizeof *zl), memmove(use + d + 1, use + d, (size_t)(nd - d) * sizeof *use);
            zl[d] = z, use[d] = 1u << sv, nd++;
        }
    }
    size_t n = (size_t)S * S3;
    zoom_plan *Z = qbc_scratch(0, (size_t)(nd + 1) * sizeof(zoom_plan));
    size_t hs = (size_t)S3 + 4;
    double *hbuf = qbc_scratch(2, (size_t)(nd + 1) * 2 * hs * sizeof(double));
    /* the image in f32 (the reference's array) */
    float *v = qbc_scratch(3, (n + 1) * sizeof(float));
    float *acc = qbc_scratch(4, (size_t)S3 * 7 * sizeof(float)), *tmp = acc ? acc + (size_t)S3 * 6 : NULL;
    if (!Z || !hbuf || !v || !acc) return QB_EXIT_FAIL;
#pragma omp simd
    for (size_t i = 0; i < n; i++) v[i] = (float)qbc_div255((double)in[i]); /* (float)(in / 255.0) */
    v[n] = 0;
    for (int d = 0; d < nd; d++) {
        zoom_plan *P = &Z[d];
        qbc_zoom_geom(S, zl[d], &P->top, P->i0, P->j0, P->f);
        for (int s = 0; s < 2; s++) P->h[s] = hbuf + ((size_t)d * 2 + s) * hs, P->tag[s] = -1 - s;
    }
    for (int y = 0; y < S; y++) {
        const float *vy = v + (size_t)y * S3;
        for (int sv = 1; sv <= 5; sv++)
            if (mask >> sv & 1) memcpy(acc + (size_t)sv * S3, vy, (size_t)S3 * sizeof(float));
        for (int d = 0; d < nd; d++) {
            zoom_plan *P = &Z[d];
            int s0 = zoom_hrow(P, v, S, P->i0[y], -1), s1 = zoom_hrow(P, v, S, P->j0[y], s0);
            const double *h0 = P->h[s0], *h1 = P->h[s1];
            double wy1 = P->f[y], wy0 = 1.0 - wy1;
            unsigned u = use[d];
            if (!(u & (u - 1))) { /* one severity: straight into its sum */
                float *a = acc + (size_t)__builtin_ctz(u) * S3;
#pragma omp simd
                for (int j = 0; j < S3; j++) a[j] += (float)(h0[j] * wy0 + h1[j] * wy1);
                continue;
            }
#pragma omp simd
            for (int j = 0; j < S3; j++) tmp[j] = (float)(h0[j] * wy0 + h1[j] * wy1);
            for (int sv = 1; sv <= 5; sv++) {
                if (!(u >> sv & 1)) continue;
                float *a = acc + (size_t)sv * S3;
#pragma omp simd
                for (int j = 0; j < S3; j++) a[j] += tmp[j];
            }
        }
        const uint8_t *x = in + (size_t)y * S3;
        for (int sv = 1; sv <= 5; sv++) {
            if (!(mask >> sv & 1)) continue;
            const float *a = acc + (size_t)sv * S3;
            float dn = den[sv];
            uint8_t *o = out[sv] + (size_t)y * S3;
            float *q = tmp; /* free here */
#pragma omp simd
            for (int j = 0; j < S3; j++) q[j] = ((float)qbc_div255((double)x[j]) + a[j]) / dn;
            qbc_out8f_row(o, q, (size_t)S3);
        }
    }
    return 0;
}

/* ---------------- gaussian_blur ---------------- */

static const double gblur_sigma[3][5] = {{1, 2, 3, 4, 6}, {0.5, 0.75, 1, 1.25, 1.5}, {0.4, 0.6, 0.7, 0.8, 1}};

int qb_gaussian_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    return qbc_gauss_u8(out, in, ctx->S, ctx->S, 3, gblur_sigma[ctx->preset][sev - 1], 0, 4.0, 0);
}
