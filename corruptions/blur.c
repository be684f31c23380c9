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

int qb_defocus_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    int S = ctx->S;
    float K[21 * 21];
    int sz = defocus_kernel(K, defocus_params[ctx->preset][sev - 1][0], defocus_params[ctx->preset][sev - 1][1]);
    int c = sz / 2, P = S + 2 * c;
    /* non-zero span of each kernel row, so the mostly empty 17×17 grid costs only the disk */
    int b0[21], b1[21];
    for (int a = 0; a < sz; a++) {
        b0[a] = sz, b1[a] = -1;
        for (int b = 0; b < sz; b++)
            if (K[a * sz + b] != 0) { if (b < b0[a]) b0[a] = b; b1[a] = b; }
    }
    /* f64 accumulation as before (an f32 sum moved 0.5 % of values by one against the reference:
     * flat regions land exactly on k/255) */
    double *pad = qbc_scratch(0, (size_t)P * P * sizeof(double)), *acc = qbc_scratch(1, (size_t)S * sizeof(double));
    if (!pad || !acc) return QB_EXIT_FAIL;
    double lut[256];
    for (int v = 0; v < 256; v++) lut[v] = v / 255.0;
    for (int k = 0; k < 3; k++) {
        for (int y = 0; y < P; y++) {
            const uint8_t *row = in + (size_t)qbc_reflect101(y - c, S) * S * 3;
            for (int x = 0; x < P; x++) pad[(size_t)y * P + x] = lut[row[qbc_reflect101(x - c, S) * 3 + k]];
        }
        for (int y = 0; y < S; y++) {
            for (int x = 0; x < S; x++) acc[x] = 0;
            for (int a = 0; a < sz; a++)
                for (int b = b0[a]; b <= b1[a]; b++) {
                    double w = K[a * sz + b];
                    const double *src = pad + (size_t)(y + a) * P + b;
#pragma omp simd
                    for (int x = 0; x < S; x++) acc[x] += w * src[x];
                }
            for (int x = 0; x < S; x++) out[((size_t)y * S + x) * 3 + k] = qbc_out8(acc[x]);
        }
    }
    return 0;
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
    double *a = malloc(n * sizeof(double));
    uint8_t *y = malloc(n);
    if (!a || !y) { free(a), free(y); return qb_error(QB_EXIT_FAIL, "glass_blur: out of memory"); }
    for (size_t i = 0; i < n; i++) a[i] = in[i] / 255.0;
    int rc = qbc_gauss_f64(a, S, S, 3, sigma, 0, 4.0);
    for (size_t i = 0; i < n && !rc; i++) y[i] = qbc_trunc8(a[i] * 255.0);
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
    for (size_t i = 0; i < n && !rc; i++) a[i] = y[i] / 255.0;
    if (!rc) rc = qbc_gauss_f64(a, S, S, 3, sigma, 0, 4.0);
    for (size_t i = 0; i < n && !rc; i++) out[i] = qbc_out8(a[i]);
    free(a), free(y);
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

int qb_zoom_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    int S = ctx->S;
    double stop = zoom_params[ctx->preset][sev - 1][0], step = zoom_params[ctx->preset][sev - 1][1];
    int nz = (int)ceil((stop - 1.0) / step);
    double delta = (1.0 + step) - 1.0; /* NumPy's arange steps by (start + step) − start */
    size_t n = (size_t)S * S * 3;
    float *v = malloc(n * sizeof(float)), *acc = calloc(n, sizeof(float)), *z = malloc(n * sizeof(float));
    if (!v || !acc || !z) { free(v), free(acc), free(z); return qb_error(QB_EXIT_FAIL, "zoom_blur: out of memory"); }
    for (size_t i = 0; i < n; i++) v[i] = (float)(in[i] / 255.0);
    int rc = 0;
    for (int k = 0; k < nz && !rc; k++) {
        rc = qbc_clipped_zoom_f32(z, v, S, 3, 1.0 + k * delta);
        for (size_t i = 0; i < n; i++) acc[i] += z[i];
    }
    float den = (float)(nz + 1);
    for (size_t i = 0; i < n && !rc; i++) out[i] = qbc_out8f((v[i] + acc[i]) / den);
    free(v), free(acc), free(z);
    return rc;
}

/* ---------------- gaussian_blur ---------------- */

static const double gblur_sigma[3][5] = {{1, 2, 3, 4, 6}, {0.5, 0.75, 1, 1.25, 1.5}, {0.4, 0.6, 0.7, 0.8, 1}};

int qb_gaussian_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    int S = ctx->S;
    size_t n = (size_t)S * S * 3;
    double *a = malloc(n * sizeof(double));
    if (!a) return qb_error(QB_EXIT_FAIL, "gaussian_blur: out of memory");
    for (size_t i = 0; i < n; i++) a[i] = in[i] / 255.0;
    int rc = qbc_gauss_f64(a, S, S, 3, gblur_sigma[ctx->preset][sev - 1], 0, 4.0);
    for (size_t i = 0; i < n && !rc; i++) out[i] = qbc_out8(a[i]);
    free(a);
    return rc;
}
