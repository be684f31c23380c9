/* weather.c — snow, frost, fog, brightness and the extra spatter (corruptions.md 4.8–4.11, 4.18). */
#include "prims.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- snow ---------------- */

static const double snow_params[3][5][7] = {
    {{0.1, 0.3, 3, 0.5, 10, 4, 0.8}, {0.2, 0.3, 2, 0.5, 12, 4, 0.7}, {0.55, 0.3, 4, 0.9, 12, 8, 0.7},
     {0.55, 0.3, 4.5, 0.85, 12, 8, 0.65}, {0.55, 0.3, 2.5, 0.85, 12, 12, 0.55}},
    {{0.1, 0.2, 1, 0.6, 8, 3, 0.8}, {0.1, 0.2, 1, 0.5, 10, 4, 0.8}, {0.15, 0.3, 1.75, 0.55, 10, 4, 0.7},
     {0.25, 0.3, 2.25, 0.6, 12, 6, 0.65}, {0.3, 0.3, 1.25, 0.65, 14, 12, 0.6}},
    {{0.1, 0.2, 1, 0.6, 8, 3, 0.95}, {0.1, 0.2, 1, 0.5, 10, 4, 0.9}, {0.15, 0.3, 1.75, 0.55, 10, 4, 0.9},
     {0.25, 0.3, 2.25, 0.6, 12, 6, 0.85}, {0.3, 0.3, 1.25, 0.65, 14, 12, 0.8}}};

int qb_snow(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    const double *c = snow_params[ctx->preset][sev - 1];
    int S = ctx->S;
    size_t n = (size_t)S * S;
    /* per-thread scratch (slots 0–2; motion blur uses 5) */
    double *layer = qbc_scratch(0, n * sizeof(double)), *Z = qbc_scratch(1, n * sizeof(double));
    uint8_t *N8 = qbc_scratch(2, 2 * n), *L8 = N8 ? N8 + n : NULL;
    if (!layer || !Z || !N8) return QB_EXIT_FAIL;
    qbc_normals(rng, layer, n);
    const double c0 = c[0], c1 = c[1], c3 = c[3]; /* locals: the stores cannot alias them */
#pragma omp simd
    for (size_t i = 0; i < n; i++) layer[i] = c0 + c1 * layer[i];
    int rc = qbc_clipped_zoom_f64(Z, layer, S, 1, c[2]);
    if (!rc) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            double v = Z[i] < c3 ? 0 : Z[i];
            v = v > 0 ? v : 0; /* Z is never NaN: the clip as two selects */
            v = v < 1 ? v : 1;
            N8[i] = (uint8_t)(int32_t)(v * 255.0);
        }
    }
    double angle = -135.0 + 90.0 * qb_crng_uniform(rng);
    if (!rc) rc = qbc_motion_blur_u8(L8, N8, S, S, 1, c[4], c[5], angle);
    if (!rc) {
        float blend = (float)c[6], rest = (float)(1.0 - c[6]);
        double *t0 = Z, *t1 = Z + S, *t2 = Z + 2 * S; /* Z is free again: three rows of sums (3·S ≤ S², S ≥ 32) */
        uint8_t *b8 = N8;                              /* and N8: their bytes */
        for (int i = 0; i < S; i++) {
            const uint8_t *p = in + (size_t)i * S * 3, *l1 = L8 + (size_t)i * S, *l2 = L8 + (size_t)(S - 1 - i) * S;
            uint8_t *o = out + (size_t)i * S * 3;
#pragma omp simd
            for (int j = 0; j < S; j++) { /* branch-free, vectorised: same operations per value */
                float v0 = (float)qbc_div255(p[3 * j]), v1 = (float)qbc_div255(p[3 * j + 1]), v2 = (float)qbc_div255(p[3 * j + 2]);
                float g = v0 * 0.299f + v1 * 0.587f + v2 * 0.114f;
                float hi = g * 1.5f + 0.5f;
                double L = qbc_div255(l1[j]), L2 = qbc_div255(l2[S - 1 - j]);
                float w0 = blend * v0 + rest * (v0 > hi ? v0 : hi), w1 = blend * v1 + rest * (v1 > hi ? v1 : hi);
                float w2 = blend * v2 + rest * (v2 > hi ? v2 : hi);
                t0[j] = ((double)w0 + L) + L2, t1[j] = ((double)w1 + L) + L2, t2[j] = ((double)w2 + L) + L2;
            }
            qbc_out8n_planes3(o, t0, (size_t)S, b8);
        }
    }
    return rc;
}

/* ---------------- frost ---------------- */

static const double frost_params[3][5][2] = {
    {{1, 0.4}, {0.8, 0.6}, {0.7, 0.7}, {0.65, 0.7}, {0.6, 0.75}},
    {{1, 0.3}, {0.9, 0.4}, {0.8, 0.45}, {0.75, 0.5}, {0.7, 0.55}},
    {{1, 0.2}, {1, 0.3}, {0.9, 0.4}, {0.85, 0.4}, {0.75, 0.45}}};

/* P14: cv2.resize(T, (0,0), fx=f, fy=f, INTER_LINEAR) on RGB8, OpenCV's fixed-point path. */
static int cv_resize_linear(uint8_t **dst, int *dw, int *dh, const uint8_t *src, int w, int h, double f) {
    int W = (int)nearbyint(w * f), H = (int)nearbyint(h * f);
    double scale = 1.0 / f;
    int *x0 = malloc((size_t)W * sizeof(int)), *xw = malloc((size_t)W * sizeof(int));
    int *t = malloc((size_t)W * 3 * 2 * sizeof(int));
    uint8_t *out = malloc((size_t)W * H * 3);
    if (!x0 || !xw || !t || !out) { free(x0), free(xw), free(t), free(out); return qb_error(QB_EXIT_FAIL, "frost: out of memory"); }
    for (int d = 0; d < W; d++) {
        float fx = (float)((d + 0.5) * scale - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        if (sx < 0) fx = 0, sx = 0;
        if (sx >= w - 1) fx = 0, sx = w - 1;
        x0[d] = sx, xw[d] = (int)nearbyintf((1.0f - fx) * 2048.0f);
    }
    for (int dy = 0; dy < H; dy++) {
        float fy = (float)((dy + 0.5) * scale - 0.5);
        int sy = (int)floorf(fy);
        fy -= (float)sy;
        if (sy < 0) fy = 0, sy = 0;
        if (sy >= h - 1) fy = 0, sy = h - 1;
        int b0 = (int)nearbyintf((1.0f - fy) * 2048.0f), b1 = 2048 - b0;
        for (int r = 0; r < 2; r++) {
            int yy = sy + r < h ? sy + r : h - 1;
            const uint8_t *row = src + (size_t)yy * w * 3;
            for (int d = 0; d < W; d++) {
                int xa = x0[d], xb = xa + 1 < w ? xa + 1 : w - 1, a0 = xw[d], a1 = 2048 - a0;
                for (int k = 0; k < 3; k++) t[(r * W + d) * 3 + k] = a0 * row[xa * 3 + k] + a1 * row[xb * 3 + k];
            }
        }
        for (int i = 0; i < W * 3; i++) {
            int v = ((b0 * (t[i] >> 4)) >> 16) + ((b1 * (t[W * 3 + i] >> 4)) >> 16);
            v = (v + 2) >> 2;
            out[(size_t)dy * W * 3 + i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(x0), free(xw), free(t);
    *dst = out, *dw = W, *dh = H;
    return 0;
}

const char *qb_frost_default_dir(char *buf, size_t len) {
    const char *d = getenv("QUESTBENCH_DATA");
    if (d && *d) snprintf(buf, len, "%s/frost", d);
    else snprintf(buf, len, "frost"); /* no data root given: a frost/ folder here */
    return buf;
}

int qb_frost_load(qb_frost *f, const char *dir, qb_preset p) {
    static const char *names[5] = {"frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"};
    memset(f, 0, sizeof *f);
    int S = qb_preset_size(p);
    for (int i = 0; i < 5; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        qb_image img;
        int rc = qb_image_load(&img, path);
        if (rc) {
            qb_frost_free(f);
            return qb_error(QB_EXIT_DATA, "frost texture %s: cannot load (%s); set QUESTBENCH_DATA or --frost-dir", path,
                            qb_last_error());
        }
        if (p == QB_PRESET_IMAGENET) f->rgb[i] = img.rgb, f->w[i] = img.w, f->h[i] = img.h;
        else {
            rc = cv_resize_linear(&f->rgb[i], &f->w[i], &f->h[i], img.rgb, img.w, img.h,
                                  p == QB_PRESET_TINYIMAGENET ? 0.3 : 0.2);
            qb_image_free(&img);
            if (rc) { qb_frost_free(f); return rc; }
        }
        if (f->w[i] <= S || f->h[i] <= S) {
            qb_frost_free(f);
            return qb_error(QB_EXIT_DATA, "frost texture %s: too small for the %s preset", path, qb_preset_name(p));
        }
    }
    return 0;
}

void qb_frost_free(qb_frost *f) {
    for (int i = 0; i < 5; i++) free(f->rgb[i]), f->rgb[i] = NULL;
}

int qb_frost_corrupt(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    if (!ctx->frost || !ctx->frost->rgb[0]) return qb_error(QB_EXIT_DATA, "frost: textures not loaded");
    const double *c = frost_params[ctx->preset][sev - 1];
    int S = ctx->S;
    int idx = (int)qb_crng_randint(rng, 0, 5);
    const qb_frost *f = ctx->frost;
    int r0 = (int)qb_crng_randint(rng, 0, f->h[idx] - S), c0 = (int)qb_crng_randint(rng, 0, f->w[idx] - S);
    double *v = qbc_scratch(0, (size_t)3 * S * sizeof(double)), ca = c[0], cb = c[1];
    if (!v) return QB_EXIT_FAIL;
    for (int i = 0; i < S; i++) {
        const uint8_t *x = in + (size_t)i * S * 3, *t = f->rgb[idx] + ((size_t)(r0 + i) * f->w[idx] + c0) * 3;
#pragma omp simd
        for (int j = 0; j < 3 * S; j++) v[j] = ca * (double)x[j] + cb * (double)t[j];
        qbc_out8n_row(out + (size_t)i * S * 3, v, 3 * (size_t)S, 2); /* (uint8)clamp(v, 0, 255) */
    }
    return 0;
}

/* ---------------- fog ---------------- */

static const double fog_params[3][5][2] = {
    {{1.5, 2}, {2, 2}, {2.5, 1.7}, {2.5, 1.5}, {3, 1.4}},
    {{0.4, 3}, {0.7, 3}, {1, 2.5}, {1.5, 2}, {2, 1.75}},
    {{0.2, 3}, {0.5, 3}, {0.75, 2.5}, {1, 2}, {1.5, 1.75}}};

int qb_fog(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    const double *c = fog_params[ctx->preset][sev - 1];
    int S = ctx->S, N = ctx->preset == QB_PRESET_IMAGENET ? 256 : S;
    double *F = qbc_scratch(0, (size_t)N * N * sizeof(double));
    double *Fr = qbc_scratch(1, (size_t)S * 3 * sizeof(double)); /* one row of c·F, repeated per channel */
    if (!F || !Fr) return QB_EXIT_FAIL;
    size_t n = (size_t)S * S * 3;
    uint8_t mx8 = 0;
#pragma omp simd reduction(max : mx8)
    for (size_t i = 0; i < n; i++) mx8 = in[i] > mx8 ? in[i] : mx8;
    double M = mx8 / 255.0;
    int rc = qbc_plasma(F, N, c[1], rng);
    if (rc) return rc;
    double den = M + c[0];
    for (int i = 0; i < S; i++) {
        for (int j = 0; j < S; j++) Fr[3 * j] = Fr[3 * j + 1] = Fr[3 * j + 2] = c[0] * F[(size_t)i * N + j];
        const uint8_t *x = in + (size_t)i * S * 3;
        uint8_t *o = out + (size_t)i * S * 3;
#pragma omp simd
        for (int j = 0; j < 3 * S; j++) Fr[j] = (qbc_div255(x[j]) + Fr[j]) * M / den;
        qbc_out8n_row(o, Fr, 3 * (size_t)S, 0);
    }
    return 0;
}

/* ---------------- brightness ---------------- */

static const double brightness_c[3][5] = {{0.1, 0.2, 0.3, 0.4, 0.5}, {0.1, 0.2, 0.3, 0.4, 0.5}, {0.05, 0.1, 0.15, 0.2, 0.3}};

int qb_brightness_sevs(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx) {
    double mult[6] = {1, 1, 1, 1, 1, 1}, add[6] = {0};
    for (int s = 1; s <= 5; s++) add[s] = brightness_c[ctx->preset][s - 1];
    return qbc_hsv_affine(out, in, ctx->S, 2, mult, add, mask);
}

/* ---------------- spatter ---------------- */

static const double spatter_params[3][5][6] = {
    {{0.65, 0.3, 4, 0.69, 0.6, 0}, {0.65, 0.3, 3, 0.68, 0.6, 0}, {0.65, 0.3, 2, 0.68, 0.5, 0},
     {0.65, 0.3, 1, 0.65, 1.5, 1}, {0.67, 0.4, 1, 0.65, 1.5, 1}},
    {{0.62, 0.1, 0.7, 0.7, 0.6, 0}, {0.65, 0.1, 0.8, 0.7, 0.6, 0}, {0.65, 0.3, 1, 0.69, 0.6, 0},
     {0.65, 0.1, 0.7, 0.68, 0.6, 1}, {0.65, 0.1, 0.5, 0.67, 0.6, 1}},
    {{0.62, 0.1, 0.7, 0.7, 0.5, 0}, {0.65, 0.1, 0.8, 0.7, 0.5, 0}, {0.65, 0.3, 1, 0.69, 0.5, 0},
     {0.65, 0.1, 0.7, 0.69, 0.6, 1}, {0.65, 0.1, 0.5, 0.68, 0.6, 1}}};

int qb_spatter(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    const double *c = spatter_params[ctx->preset][sev - 1];
    int S = ctx->S;
    size_t n = (size_t)S * S;
    /* per-thread scratch 0–2 (canny uses 3, the distance transform 4, the Gaussian 6 and 7) */
    double *Lq = qbc_scratch(0, n * sizeof(double));
    float *fa = qbc_scratch(1, 2 * n * sizeof(float)), *fb = fa ? fa + n : NULL;
    uint8_t *L8 = qbc_scratch(2, 3 * n), *u1 = L8 ? L8 + n : NULL, *u2 = L8 ? L8 + 2 * n : NULL;
    int rc = 0;
    if (!Lq || !fa || !L8) return QB_EXIT_FAIL;
    qbc_normals(rng, Lq, n);
    const double c0 = c[0], c1 = c[1], c3 = c[3]; /* locals: Lq's stores cannot alias them */
#pragma omp simd
    for (size_t i = 0; i < n; i++) Lq[i] = c0 + c1 * Lq[i];
    if ((rc = qbc_gauss_f64(Lq, S, S, 1, c[2], 0, 4.0))) goto done;
#pragma omp simd
    for (size_t i = 0; i < n; i++) Lq[i] = Lq[i] < c3 ? 0 : Lq[i];
    if (c[5] == 0) { /* water */
        /* Lq is 0 or ≥ c3 > 0 here: np.uint8's wrap is the int32 conversion's low byte */
#pragma omp simd
        for (size_t i = 0; i < n; i++) L8[i] = (uint8_t)(int32_t)(Lq[i] * 255.0);
        qbc_canny(u1, L8, S, S, 50, 150);
#pragma omp simd
        for (size_t i = 0; i < n; i++) u1[i] = (uint8_t)(255 - u1[i]);
        qbc_distance_transform(fa, u1, S, S);
#pragma omp simd
        for (size_t i = 0; i < n; i++) fa[i] = fa[i] > 20.0f ? 20.0f : fa[i];
        qbc_blur3_f32(fb, fa, S, S);
#pragma omp simd
        for (size_t i = 0; i < n; i++) u1[i] = (uint8_t)(int32_t)fb[i];
        qbc_equalize_hist(u2, u1, (int)n);
        static const int ker[9] = {-2, -1, 0, -1, 1, 1, 0, 1, 2};
        qbc_filter2d_u8_3x3(u1, u2, S, S, ker);
        qbc_blur3_u8(u2, u1, S, S);
        float mx = 0;
#pragma omp simd reduction(max : mx)
        for (size_t i = 0; i < n; i++) {
            fa[i] = (float)L8[i] * (float)u2[i];
            mx = fa[i] > mx ? fa[i] : mx;
        }
        float inten = (float)c[4];
        const float col[3] = {(float)(175 / 255.), (float)(238 / 255.), (float)(238 / 255.)};
        if (mx == 0) { /* the reference's 0/0: NaN everywhere, which np.uint8 makes 0 */
            memset(out, 0, 3 * n);
            goto done;
        }
        /* row by row: m per pixel spread over its three values, then one vector loop per row */
        float *m3 = fb, *c3 = fb + 3 * S; /* fb (n floats) is free again: 6·S ≤ n (S ≥ 32) */
        for (int j = 0; j < 3 * S; j++) c3[j] = col[j % 3];
        float *m1 = fb + 6 * S; /* 7·S ≤ n as well */
        for (int y = 0; y < S; y++) {
#pragma omp simd
            for (int j = 0; j < S; j++) m1[j] = fa[(size_t)y * S + j] / mx * inten; /* vector divisions */
            for (int j = 0; j < S; j++) m3[3 * j] = m3[3 * j + 1] = m3[3 * j + 2] = m1[j];
            const uint8_t *x = in + (size_t)y * 3 * S;
            uint8_t *o = out + (size_t)y * 3 * S;
#pragma omp simd
            for (int j = 0; j < 3 * S; j++) m3[j] = (float)qbc_div255((double)x[j]) + m3[j] * c3[j];
            qbc_out8f_row(o, m3, 3 * (size_t)S);
        }
    } else { /* mud */
#pragma omp simd
        for (size_t i = 0; i < n; i++) fa[i] = Lq[i] > c3 ? 1.0f : 0.0f;
        if ((rc = qbc_gauss_f32(fa, S, S, 1, c[4], 0, 4.0))) goto done;
        const float col[3] = {(float)(63 / 255.), (float)(42 / 255.), (float)(20 / 255.)};
        float *m3 = fb, *c3 = fb + 3 * S; /* as water's: row by row, vectorised */
        for (int j = 0; j < 3 * S; j++) c3[j] = col[j % 3];
        for (int y = 0; y < S; y++) {
            for (int j = 0; j < S; j++) {
                float f = fa[(size_t)y * S + j];
                m3[3 * j] = m3[3 * j + 1] = m3[3 * j + 2] = f < 0.8f ? 0.0f : f;
            }
            const uint8_t *x = in + (size_t)y * 3 * S;
            uint8_t *o = out + (size_t)y * 3 * S;
#pragma omp simd
            for (int j = 0; j < 3 * S; j++) m3[j] = (float)qbc_div255((double)x[j]) * (1.0f - m3[j]) + c3[j] * m3[j];
            qbc_out8f_row(o, m3, 3 * (size_t)S);
        }
    }
done:
    return rc;
}
