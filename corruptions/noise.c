/* noise.c — gaussian_noise, shot_noise, impulse_noise, speckle_noise (corruptions.md 4.1–4.3, 4.16). */
#include "prims.h"

static const double gaussian_sigma[3][5] = {
    {0.08, 0.12, 0.18, 0.26, 0.38}, {0.04, 0.08, 0.12, 0.15, 0.18}, {0.04, 0.06, 0.08, 0.09, 0.10}};
static const double shot_c[3][5] = {{60, 25, 12, 5, 3}, {250, 100, 50, 30, 15}, {500, 250, 100, 75, 50}};
static const double impulse_amount[3][5] = {
    {0.03, 0.06, 0.09, 0.17, 0.27}, {0.01, 0.02, 0.05, 0.08, 0.14}, {0.01, 0.02, 0.03, 0.05, 0.07}};
static const double speckle_sigma[3][5] = {
    {0.15, 0.2, 0.35, 0.45, 0.6}, {0.15, 0.2, 0.25, 0.3, 0.35}, {0.06, 0.1, 0.12, 0.16, 0.2}};

int qb_gaussian_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double s = gaussian_sigma[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    for (size_t i = 0; i < n; i++) out[i] = qbc_out8(in[i] / 255.0 + s * qb_crng_normal(rng));
    return 0;
}

int qb_shot_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double c = shot_c[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    for (size_t i = 0; i < n; i++) out[i] = qbc_out8((double)qb_crng_poisson(rng, in[i] / 255.0 * c) / c);
    return 0;
}

/* scikit-image random_noise(mode='s&p', amount=a): a "flipped" field, then a "salted" field. */
int qb_impulse_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double a = impulse_amount[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    for (size_t i = 0; i < n; i++) out[i] = qb_crng_uniform(rng) < a; /* flipped */
    for (size_t i = 0; i < n; i++) {
        int salted = qb_crng_uniform(rng) < 0.5;
        out[i] = out[i] ? (salted ? 255 : 0) : in[i];
    }
    return 0;
}

int qb_speckle_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double s = speckle_sigma[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    for (size_t i = 0; i < n; i++) {
        double u = in[i] / 255.0;
        out[i] = qbc_out8(u + u * (s * qb_crng_normal(rng)));
    }
    return 0;
}
