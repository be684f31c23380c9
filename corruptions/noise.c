/* noise.c — gaussian_noise, shot_noise, impulse_noise, speckle_noise (corruptions.md 4.1–4.3, 4.16). */
#include "prims.h"
#include <math.h>

static const double gaussian_sigma[3][5] = {
    {0.08, 0.12, 0.18, 0.26, 0.38}, {0.04, 0.08, 0.12, 0.15, 0.18}, {0.04, 0.06, 0.08, 0.09, 0.10}};
static const double shot_c[3][5] = {{60, 25, 12, 5, 3}, {250, 100, 50, 30, 15}, {500, 250, 100, 75, 50}};
static const double impulse_amount[3][5] = {
    {0.03, 0.06, 0.09, 0.17, 0.27}, {0.01, 0.02, 0.05, 0.08, 0.14}, {0.01, 0.02, 0.03, 0.05, 0.07}};
static const double speckle_sigma[3][5] = {
    {0.15, 0.2, 0.35, 0.45, 0.6}, {0.15, 0.2, 0.25, 0.3, 0.35}, {0.06, 0.1, 0.12, 0.16, 0.2}};

/* Noise is drawn in bulk, in the order the reference draws it, a cache-sized chunk at a time
 * (consecutive bulk calls continue the same stream). */
#define NOISE_CHUNK 1024
int qb_gaussian_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double s = gaussian_sigma[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    double z[NOISE_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) {
        size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK;
        qbc_normals(rng, z, m);
        const uint8_t *x = in + i0;
        uint8_t *o = out + i0;
#pragma omp simd
        for (size_t j = 0; j < m; j++) o[j] = qbc_out8n(qbc_div255((double)x[j]) + s * z[j]);
    }
    return 0;
}

/* Poisson(v/255·c)/c per value. NumPy source: NumPy's algorithm draw by draw, its constants
 * computed once per distinct value. Counter stream on large images: inversion of the exact
 * Poisson CDF, one uniform per value, with a table per distinct input value (≤ 256) and a
 * 64-entry guide table to start the search. */
#define SHOT_GUIDE 64
int qb_shot_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double c = shot_c[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    if (rng->kind == QB_CRNG_NUMPY || (double)n < 64 * c) {
        qbc_poisson *P = qbc_scratch(1, 256 * sizeof(qbc_poisson));
        if (!P) return QB_EXIT_FAIL;
        uint8_t have[256] = {0};
        for (size_t i = 0; i < n; i++) {
            if (!have[in[i]]) qbc_poisson_prep(&P[in[i]], in[i] / 255.0 * c), have[in[i]] = 1;
            out[i] = qbc_out8((double)qbc_poisson_draw(rng, &P[in[i]]) / c);
        }
        return 0;
    }
    int maxlen = (int)(c + 12 * sqrt(c) + 40);
    double *cdf = qbc_scratch(1, (size_t)256 * maxlen * sizeof(double));
    uint8_t *guide = qbc_scratch(2, (size_t)256 * SHOT_GUIDE * sizeof(uint16_t));
    double *u = qbc_scratch(0, 256 * sizeof(double));
    if (!cdf || !guide || !u) return QB_EXIT_FAIL;
    uint16_t *gd = (uint16_t *)guide;
    uint8_t have[256] = {0}, *o8 = qbc_scratch(3, (size_t)maxlen);
    if (!o8) return QB_EXIT_FAIL;
    for (int k = 0; k < maxlen; k++) o8[k] = qbc_out8((double)k / c); /* the output of count k */
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        size_t m = n - i0 < 256 ? n - i0 : 256;
        qbc_uniforms(rng, u, m);
        for (size_t j = 0; j < m; j++) {
            int v = in[i0 + j];
            double *F = cdf + (size_t)v * maxlen;
            uint16_t *G = gd + (size_t)v * SHOT_GUIDE;
            if (!have[v]) {
                double lam = v / 255.0 * c, p = exp(-lam), acc = 0;
                int k = 0;
                for (; k < maxlen - 1; k++) {
                    acc += p;
                    F[k] = acc;
                    if (k > lam && p < 1e-20) break;
                    p *= lam / (k + 1);
                }
                F[k] = 2.0; /* the tail beyond (mass < 1e-19) lands on the last k */
                int kk = 0;
                for (int g = 0; g < SHOT_GUIDE; g++) {
                    while (F[kk] <= (double)g / SHOT_GUIDE) kk++;
                    G[g] = (uint16_t)kk;
                }
                have[v] = 1;
            }
            double x = u[j];
            int k = G[(int)(x * SHOT_GUIDE)];
            k += F[k] <= x; /* the usual 0–2 steps without branches (F ends in 2.0: bounded) */
            k += F[k] <= x;
            while (F[k] <= x) k++;
            out[i0 + j] = o8[k];
        }
    }
    return 0;
}

/* scikit-image random_noise(mode='s&p', amount=a): a "flipped" field, then a "salted" field. */
int qb_impulse_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double a = impulse_amount[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    qbc_below(rng, a, out, n); /* flipped */
    uint8_t salt[NOISE_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) { /* salted: the next n draws, < 0.5 */
        size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK;
        qbc_below(rng, 0.5, salt, m);
#pragma omp simd
        for (size_t j = 0; j < m; j++) { /* flipped ? (salted ? 255 : 0) : in, as masks (vectorises) */
            uint8_t f = (uint8_t)-out[i0 + j], sv = (uint8_t)-salt[j];
            out[i0 + j] = (uint8_t)((sv & f) | (in[i0 + j] & (uint8_t)~f));
        }
    }
    return 0;
}

int qb_speckle_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double s = speckle_sigma[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    double z[NOISE_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) {
        size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK;
        qbc_normals(rng, z, m);
        const uint8_t *x = in + i0;
        uint8_t *o = out + i0;
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            double u = qbc_div255((double)x[j]);
            o[j] = qbc_out8n(u + u * (s * z[j]));
        }
    }
    return 0;
}
