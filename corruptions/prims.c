/* prims.c — shared primitives of the corruptions (corruptions.md §3). */
#include "prims.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- P1: Gaussian smoothing ---------------- */

/* SciPy's _gaussian_kernel1d: w[m] for m = 0..r (symmetric), normalised by the full sum. */
static int gauss_taps(double sigma, double truncate, double **w_out) {
    int r = (int)floor(truncate * sigma + 0.5);
    double *w = malloc((size_t)(r + 1) * sizeof(double));
    if (!w) return -1;
    double k = -0.5 / (sigma * sigma), sum = 0;
    for (int m = -r; m <= r; m++) sum += exp(k * (double)m * (double)m);
    for (int m = 0; m <= r; m++) w[m] = exp(k * (double)m * (double)m) / sum;
    *w_out = w;
    return r;
}

/* Extended-index table for one axis: idx[j] = ext(j − r), j = 0..n+2r−1. */
static void ext_table(int *idx, int n, int r, int reflect) {
    for (int j = 0; j < n + 2 * r; j++) idx[j] = reflect ? qbc_reflect(j - r, n) : qbc_clampi(j - r, 0, n - 1);
}

/* SciPy's symmetric accumulation order per output sample: w0·x[i] + Σ_{m=r..1} (x[i−m] + x[i+m])·w[m],
 * evaluated for whole rows at a time so the loops run over contiguous memory (same operations on
 * the same values per sample, so the same result as a line-by-line pass).
 * Axis 0: row i of the output combines rows ext(i±m) of the input; rows are w·c samples long.
 * tmp: h·w·c doubles for the output (the pass is not in place); acc: w·c doubles. */
#define GAUSS_AXIS0(T)                                                                                          \
    static void gauss_axis0_##T(T *a, int h, int rowlen, const double *w, int r, const int *idx, double *acc, \
                                T *tmp) {                                                                     \
        for (int i = 0; i < h; i++) {                                                                         \
            const T *x0 = a + (size_t)idx[i + r] * rowlen;                                                    \
            _Pragma("omp simd") for (int j = 0; j < rowlen; j++) acc[j] = (double)x0[j] * w[0];               \
            for (int m = r; m >= 1; m--) {                                                                    \
                const T *xm = a + (size_t)idx[i + r - m] * rowlen, *xp = a + (size_t)idx[i + r + m] * rowlen; \
                double wm = w[m];                                                                             \
                _Pragma("omp simd") for (int j = 0; j < rowlen; j++) acc[j] += ((double)xm[j] + (double)xp[j]) * wm; \
            }                                                                                                 \
            T *o = tmp + (size_t)i * rowlen;                                                                  \
            for (int j = 0; j < rowlen; j++) o[j] = (T)acc[j];                                                \
        }                                                                                                     \
        memcpy(a, tmp, (size_t)h * rowlen * sizeof(T));                                                      \
    }
/* Axis 1: each row extended by r pixels each side (c channels interleaved), then taps ±m·c. */
#define GAUSS_AXIS1(T)                                                                                          \
    static void gauss_axis1_##T(T *a, int h, int wd, int c, const double *w, int r, const int *idx, double *ext, \
                                double *acc) {                                                                \
        int rowlen = wd * c;                                                                                  \
        for (int y = 0; y < h; y++) {                                                                         \
            T *p = a + (size_t)y * rowlen;                                                                    \
            for (int j = 0; j < wd + 2 * r; j++)                                                              \
                for (int k = 0; k < c; k++) ext[j * c + k] = (double)p[idx[j] * c + k];                       \
            const double *x = ext + r * c;                                                                    \
            _Pragma("omp simd") for (int j = 0; j < rowlen; j++) acc[j] = x[j] * w[0];                        \
            for (int m = r; m >= 1; m--) {                                                                    \
                double wm = w[m];                                                                             \
                const double *xm = x - m * c, *xp = x + m * c;                                                \
                _Pragma("omp simd") for (int j = 0; j < rowlen; j++) acc[j] += (xm[j] + xp[j]) * wm;          \
            }                                                                                                 \
            for (int j = 0; j < rowlen; j++) p[j] = (T)acc[j];                                                \
        }                                                                                                     \
    }
GAUSS_AXIS0(double)
GAUSS_AXIS0(float)
GAUSS_AXIS1(double)
GAUSS_AXIS1(float)

/* For radii far beyond the line (elastic's σ = 170.8 → r = 512 on 224 samples), fold the
 * kernel onto the n source samples: W[i][s] = Σ_{m: ext(i+m) = s} w[|m|]. Same sum, other order. */
#define GAUSS_FOLDED(T)                                                                                         \
    static void gauss_folded_##T(T *a, int n, int lines, long step, long lstride, const double *w, int r,    \
                                 int reflect, double *W, double *line, double *acc) {                        \
        memset(W, 0, (size_t)n * n * sizeof(double));                                                         \
        for (int i = 0; i < n; i++)                                                                           \
            for (int m = -r; m <= r; m++) {                                                                   \
                int s = reflect ? qbc_reflect(i + m, n) : qbc_clampi(i + m, 0, n - 1);                        \
                W[(size_t)s * n + i] += w[m < 0 ? -m : m]; /* stored transposed: rows are sources */          \
            }                                                                                                 \
        for (int l = 0; l < lines; l++) {                                                                     \
            T *p = a + l * lstride;                                                                           \
            for (int s = 0; s < n; s++) line[s] = (double)p[s * step];                                        \
            for (int i = 0; i < n; i++) acc[i] = 0;                                                           \
            for (int s = 0; s < n; s++) {                                                                     \
                const double *Ws = W + (size_t)s * n, ls = line[s];                                           \
                _Pragma("omp simd") for (int i = 0; i < n; i++) acc[i] += Ws[i] * ls;                         \
            }                                                                                                 \
            for (int i = 0; i < n; i++) p[i * step] = (T)acc[i];                                              \
        }                                                                                                     \
    }
GAUSS_FOLDED(double)
GAUSS_FOLDED(float)

#define GAUSS_IMPL(T)                                                                                           \
    int qbc_gauss_##T##_impl(T *a, int h, int w, int c, double sigma, int reflect, double truncate) {        \
        if (sigma <= 1e-15) return 0;                                                                         \
        double *wt;                                                                                           \
        int r = gauss_taps(sigma, truncate, &wt);                                                             \
        if (r < 0) return qb_error(QB_EXIT_FAIL, "gaussian: out of memory");                                 \
        if (r == 0) { free(wt); return 0; }                                                                   \
        int nmax = h > w ? h : w;                                                                             \
        int folded = 2 * r + 1 > nmax;                                                                        \
        size_t extn = (size_t)nmax + 2 * (size_t)r;                                                           \
        int *idx = malloc(extn * sizeof(int));                                                                \
        double *ext = qbc_scratch(6, extn * c * sizeof(double)), *acc = malloc((size_t)nmax * c * sizeof(double)); \
        T *tmp = folded ? NULL : qbc_scratch(7, (size_t)h * w * c * sizeof(T));                               \
        double *W = folded ? malloc((size_t)nmax * nmax * sizeof(double)) : NULL;                             \
        if (!idx || !ext || !acc || (folded && !W) || (!folded && !tmp)) {                                    \
            free(wt), free(idx), free(acc), free(W);                                                          \
            return qb_error(QB_EXIT_FAIL, "gaussian: out of memory");                                         \
        }                                                                                                     \
        /* axis 0 (down the columns), then axis 1 (along the rows) */                                        \
        if (folded) {                                                                                         \
            for (int k = 0; k < c; k++) gauss_folded_##T(a + k, h, w, (long)w * c, c, wt, r, reflect, W, ext, acc); \
            for (int k = 0; k < c; k++) gauss_folded_##T(a + k, w, h, c, (long)w * c, wt, r, reflect, W, ext, acc); \
        } else {                                                                                              \
            ext_table(idx, h, r, reflect);                                                                    \
            gauss_axis0_##T(a, h, w * c, wt, r, idx, acc, tmp);                                               \
            ext_table(idx, w, r, reflect);                                                                    \
            gauss_axis1_##T(a, h, w, c, wt, r, idx, ext, acc);                                                \
        }                                                                                                     \
        free(wt), free(idx), free(acc), free(W);                                                              \
        return 0;                                                                                             \
    }
GAUSS_IMPL(double)
GAUSS_IMPL(float)

int qbc_gauss_f64(double *a, int h, int w, int c, double sigma, int reflect, double truncate) {
    return qbc_gauss_double_impl(a, h, w, c, sigma, reflect, truncate);
}
int qbc_gauss_f32(float *a, int h, int w, int c, double sigma, int reflect, double truncate) {
    return qbc_gauss_float_impl(a, h, w, c, sigma, reflect, truncate);
}

/* ---------------- P5: zoom and clipped_zoom ---------------- */

/* scipy.ndimage.zoom(order=1) of an n×n×c crop (row stride `stride` elements) to m×m, then keep
 * rows/cols [trim, trim+S). Weights per axis; value Σ (v·wr)·wc over the 2×2 footprint. */
#define CLIPPED_ZOOM(T, NAME)                                                                                   \
    int NAME(T *out, const T *in, int S, int c, double z) {                                                   \
        int ch = (int)ceil((double)S / z);                                                                    \
        int top = (int)floor((S - ch) / 2.0);                                                                 \
        int m = (int)nearbyint((double)ch * z); /* Python round: ties to even */                              \
        int trim = (int)floor((m - S) / 2.0);                                                                 \
        double ratio = m > 1 ? (double)(ch - 1) / (double)(m - 1) : 0;                                       \
        int i0[512], j0[512];                                                                                 \
        double f[512];                                                                                        \
        if (S > 512) return qb_error(QB_EXIT_FAIL, "zoom: image too large");                                 \
        for (int o = 0; o < S; o++) {                                                                         \
            double s = (double)(o + trim) * ratio;                                                            \
            int fl = (int)floor(s);                                                                           \
            if (fl > ch - 1) fl = ch - 1;                                                                     \
            i0[o] = fl;                                                                                       \
            f[o] = s - fl;                                                                                    \
            j0[o] = fl + 1 < ch ? fl + 1 : ch - 1;                                                            \
        }                                                                                                     \
        for (int y = 0; y < S; y++) {                                                                         \
            const T *r0 = in + ((size_t)(top + i0[y]) * S + top) * c;                                         \
            const T *r1 = in + ((size_t)(top + j0[y]) * S + top) * c;                                         \
            double wy1 = f[y], wy0 = 1.0 - wy1;                                                               \
            for (int x = 0; x < S; x++) {                                                                     \
                double wx1 = f[x], wx0 = 1.0 - wx1;                                                           \
                int a = i0[x] * c, b = j0[x] * c;                                                             \
                for (int k = 0; k < c; k++) {                                                                 \
                    double t = (double)r0[a + k] * wy0 * wx0;                                                 \
                    t += (double)r0[b + k] * wy0 * wx1;                                                       \
                    t += (double)r1[a + k] * wy1 * wx0;                                                       \
                    t += (double)r1[b + k] * wy1 * wx1;                                                       \
                    out[((size_t)y * S + x) * c + k] = (T)t;                                                  \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        return 0;                                                                                             \
    }
CLIPPED_ZOOM(double, qbc_clipped_zoom_f64)
CLIPPED_ZOOM(float, qbc_clipped_zoom_f32)

/* ---------------- P6: ImageMagick motion blur ---------------- */

int qbc_motion_blur_u8(uint8_t *out, const uint8_t *in, int h, int w, int c, double radius, double sigma,
                       double angle_deg) {
    int W = 2 * (int)ceil(radius) + 1;
    double *k = malloc((size_t)W * sizeof(double));
    int *dx = malloc((size_t)W * sizeof(int)), *dy = malloc((size_t)W * sizeof(int));
    if (!k || !dx || !dy) { free(k), free(dx), free(dy); return qb_error(QB_EXIT_FAIL, "motion blur: out of memory"); }
    double sum = 0;
    for (int i = 0; i < W; i++) sum += k[i] = exp(-(double)i * i / (2.0 * sigma * sigma));
    for (int i = 0; i < W; i++) k[i] /= sum;
    double th = angle_deg * (M_PI / 180.0);
    double px = W * sin(th), py = W * cos(th), hyp = hypot(px, py);
    for (int i = 0; i < W; i++) {
        dx[i] = (int)ceil(i * py / hyp - 0.5);
        dy[i] = (int)ceil(i * px / hyp - 0.5);
    }
    /* tap by tap over whole rows: each pixel still sums its taps in order i = 0..W−1 */
    size_t rowlen = (size_t)w * c;
    double *acc = malloc(rowlen * sizeof(double));
    int *xs = malloc((size_t)w * sizeof(int));
    if (!acc || !xs) { free(k), free(dx), free(dy), free(acc), free(xs); return qb_error(QB_EXIT_FAIL, "motion blur: out of memory"); }
    for (int y = 0; y < h; y++) {
        for (size_t j = 0; j < rowlen; j++) acc[j] = 0;
        for (int i = 0; i < W; i++) {
            const uint8_t *row = in + (size_t)qbc_clampi(y + dy[i], 0, h - 1) * rowlen;
            double ki = k[i];
            int x0 = qbc_clampi(-dx[i], 0, w), x1 = qbc_clampi(w - dx[i], 0, w); /* unclamped x range */
            for (int x = 0; x < x0; x++)
                for (int ch = 0; ch < c; ch++) acc[(size_t)x * c + ch] += ki * (257.0 * row[(size_t)qbc_clampi(x + dx[i], 0, w - 1) * c + ch]);
            const uint8_t *src = row + (ptrdiff_t)dx[i] * c;
#pragma omp simd
            for (size_t j = (size_t)x0 * c; j < (size_t)x1 * c; j++) acc[j] += ki * (257.0 * src[j]);
            for (int x = x1 > x0 ? x1 : x0; x < w; x++)
                for (int ch = 0; ch < c; ch++) acc[(size_t)x * c + ch] += ki * (257.0 * row[(size_t)qbc_clampi(x + dx[i], 0, w - 1) * c + ch]);
        }
        for (size_t j = 0; j < rowlen; j++) {
            double q = floor(acc[j] + 0.5);
            if (q < 0) q = 0;
            if (q > 65535) q = 65535;
            out[(size_t)y * rowlen + j] = (uint8_t)((int)q / 257);
        }
    }
    free(acc), free(xs);
    free(k), free(dx), free(dy);
    return 0;
}

/* ---------------- P7: plasma fractal ---------------- */

void qbc_plasma(double *A, int N, double decay, qb_crng *rng) {
    A[0] = 0;
    double wib = 100;
    for (int s = N; s >= 2; s /= 2) {
        int h = s / 2, n = N / s;
#define C_(a, b) A[(size_t)(((a) % n + n) % n) * s * N + (size_t)(((b) % n + n) % n) * s]
#define D_(a, b) A[(size_t)((((a) % n + n) % n) * s + h) * N + (size_t)(((b) % n + n) % n) * s + h]
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double acc = (C_(a, b) + C_(a + 1, b)) + (C_(a, b + 1) + C_(a + 1, b + 1));
                double u = -wib + 2 * wib * qb_crng_uniform(rng);
                A[(size_t)(a * s + h) * N + b * s + h] = acc / 4 + wib * u;
            }
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double acc = (D_(a, b) + D_(a - 1, b)) + (C_(a, b) + C_(a, b + 1));
                double u = -wib + 2 * wib * qb_crng_uniform(rng);
                A[(size_t)(a * s) * N + b * s + h] = acc / 4 + wib * u;
            }
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double acc = (D_(a, b) + D_(a, b - 1)) + (C_(a, b) + C_(a + 1, b));
                double u = -wib + 2 * wib * qb_crng_uniform(rng);
                A[(size_t)(a * s + h) * N + b * s] = acc / 4 + wib * u;
            }
#undef C_
#undef D_
        wib /= decay;
    }
    size_t NN = (size_t)N * N;
    double mn = A[0], mx;
    for (size_t i = 1; i < NN; i++) if (A[i] < mn) mn = A[i];
    for (size_t i = 0; i < NN; i++) A[i] -= mn;
    mx = A[0];
    for (size_t i = 1; i < NN; i++) if (A[i] > mx) mx = A[i];
    for (size_t i = 0; i < NN; i++) A[i] /= mx;
}

/* ---------------- P8: HSV ---------------- */

void qbc_rgb2hsv(const double rgb[3], double hsv[3]) {
    double r = rgb[0], g = rgb[1], b = rgb[2];
    double v = r > g ? r : g;
    if (b > v) v = b;
    double mn = r < g ? r : g;
    if (b < mn) mn = b;
    double d = v - mn;
    double s = d == 0 ? 0 : d / v;
    double hh = 0;
    if (d != 0) {
        if (r == v) hh = (g - b) / d;
        if (g == v) hh = 2.0 + (b - r) / d;
        if (b == v) hh = 4.0 + (r - g) / d;
        hh = hh / 6.0;
        hh = hh - floor(hh); /* floored modulo 1 */
        if (hh != hh) hh = 0;
    }
    if (s != s) s = 0;
    hsv[0] = hh, hsv[1] = s, hsv[2] = v;
}

void qbc_hsv2rgb(const double hsv[3], double rgb[3]) {
    double H = hsv[0], S = hsv[1], V = hsv[2];
    double fi = floor(H * 6.0);
    double f = H * 6.0 - fi;
    double p = V * (1 - S), q = V * (1 - f * S), t = V * (1 - (1 - f) * S);
    int i = ((int)(uint8_t)(int)fi) % 6;
    switch (i) {
    case 0: rgb[0] = V, rgb[1] = t, rgb[2] = p; break;
    case 1: rgb[0] = q, rgb[1] = V, rgb[2] = p; break;
    case 2: rgb[0] = p, rgb[1] = V, rgb[2] = t; break;
    case 3: rgb[0] = p, rgb[1] = q, rgb[2] = V; break;
    case 4: rgb[0] = t, rgb[1] = p, rgb[2] = V; break;
    default: rgb[0] = V, rgb[1] = p, rgb[2] = q; break;
    }
}

/* ---------------- P11: affine ---------------- */

void qbc_affine_from_points(const float src[6], const float dst[6], double A[6]) {
    /* Solve [x y 1]·(a0 a1 a2) = X and [x y 1]·(a3 a4 a5) = Y by Cramer's rule. */
    double x0 = src[0], y0 = src[1], x1 = src[2], y1 = src[3], x2 = src[4], y2 = src[5];
    double det = x0 * (y1 - y2) - y0 * (x1 - x2) + (x1 * y2 - x2 * y1);
    for (int r = 0; r < 2; r++) {
        double b0 = dst[r], b1 = dst[2 + r], b2 = dst[4 + r];
        double a = (b0 * (y1 - y2) - y0 * (b1 - b2) + (b1 * y2 - b2 * y1)) / det;
        double bb = (x0 * (b1 - b2) - b0 * (x1 - x2) + (x1 * b2 - x2 * b1)) / det;
        double cc = (x0 * (y1 * b2 - y2 * b1) - y0 * (x1 * b2 - x2 * b1) + b0 * (x1 * y2 - x2 * y1)) / det;
        A[3 * r] = a, A[3 * r + 1] = bb, A[3 * r + 2] = cc;
    }
}

static int rne_int(double v) { return (int)nearbyint(v); }

void qbc_warp_affine_f32(float *out, const float *in, int S, const double A[6]) {
    double D = A[0] * A[4] - A[1] * A[3];
    D = D != 0 ? 1.0 / D : 0;
    double B00 = A[4] * D, B01 = -A[1] * D, B10 = -A[3] * D, B11 = A[0] * D;
    double B02 = -B00 * A[2] - B01 * A[5], B12 = -B10 * A[2] - B11 * A[5];
    for (int y = 0; y < S; y++) {
        int X0 = rne_int((B01 * y + B02) * 1024) + 16, Y0 = rne_int((B11 * y + B12) * 1024) + 16;
        for (int x = 0; x < S; x++) {
            int X = (X0 + rne_int(B00 * x * 1024)) >> 5, Y = (Y0 + rne_int(B10 * x * 1024)) >> 5;
            int xi = X >> 5, yi = Y >> 5;
            float fx = (float)(X & 31) / 32.0f, fy = (float)(Y & 31) / 32.0f;
            float w00 = (1.0f - fy) * (1.0f - fx), w01 = (1.0f - fy) * fx, w10 = fy * (1.0f - fx), w11 = fy * fx;
            int xa = qbc_reflect101(xi, S), xb = qbc_reflect101(xi + 1, S);
            int ya = qbc_reflect101(yi, S), yb = qbc_reflect101(yi + 1, S);
            for (int k = 0; k < 3; k++) {
                float v00 = in[((size_t)ya * S + xa) * 3 + k], v01 = in[((size_t)ya * S + xb) * 3 + k];
                float v10 = in[((size_t)yb * S + xa) * 3 + k], v11 = in[((size_t)yb * S + xb) * 3 + k];
                out[((size_t)y * S + x) * 3 + k] = v00 * w00 + v01 * w01 + v10 * w10 + v11 * w11;
            }
        }
    }
}

/* ---------------- P13: OpenCV pieces for spatter ---------------- */

void qbc_canny(uint8_t *out, const uint8_t *in, int h, int w, int lo, int hi) {
    size_t n = (size_t)h * w;
    int *gx = malloc(n * sizeof(int)), *gy = malloc(n * sizeof(int)), *mag = malloc(n * sizeof(int));
    uint8_t *state = calloc(n, 1); /* 0 none, 1 candidate, 2 edge */
    int *stack = malloc(n * sizeof(int));
    if (!gx || !gy || !mag || !state || !stack) {
        memset(out, 0, n);
        free(gx), free(gy), free(mag), free(state), free(stack);
        return;
    }
#define PX(yy, xx) ((int)in[(size_t)qbc_clampi(yy, 0, h - 1) * w + qbc_clampi(xx, 0, w - 1)])
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int a = PX(y - 1, x - 1), b = PX(y - 1, x), c = PX(y - 1, x + 1);
            int d = PX(y, x - 1), f = PX(y, x + 1);
            int g = PX(y + 1, x - 1), hh = PX(y + 1, x), i = PX(y + 1, x + 1);
            int sx = -a + c - 2 * d + 2 * f - g + i;
            int sy = -a - 2 * b - c + g + 2 * hh + i;
            gx[(size_t)y * w + x] = sx, gy[(size_t)y * w + x] = sy;
            mag[(size_t)y * w + x] = abs(sx) + abs(sy);
        }
#undef PX
#define MAG(yy, xx) (((yy) < 0 || (yy) >= h || (xx) < 0 || (xx) >= w) ? 0 : mag[(size_t)(yy) * w + (xx)])
    int sp = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            int m = mag[p];
            if (m <= lo) continue;
            long X = labs((long)gx[p]), Y = labs((long)gy[p]) << 15, T = X * 13573;
            int keep;
            if (Y < T) keep = m > MAG(y, x - 1) && m >= MAG(y, x + 1);
            else if (Y > T + (X << 16)) keep = m > MAG(y - 1, x) && m >= MAG(y + 1, x);
            else {
                int s = (gx[p] < 0) != (gy[p] < 0) ? -1 : 1;
                keep = m > MAG(y - 1, x - s) && m > MAG(y + 1, x + s);
            }
            if (!keep) continue;
            if (m > hi) { state[p] = 2; stack[sp++] = (int)p; }
            else state[p] = 1;
        }
#undef MAG
    while (sp > 0) {
        int p = stack[--sp], y = p / w, x = p % w;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                size_t q = (size_t)yy * w + xx;
                if (state[q] == 1) { state[q] = 2; stack[sp++] = (int)q; }
            }
    }
    for (size_t p = 0; p < n; p++) out[p] = state[p] == 2 ? 255 : 0;
    free(gx), free(gy), free(mag), free(state), free(stack);
}

void qbc_distance_transform(float *out, const uint8_t *in, int h, int w) {
    /* 5×5 chamfer in 16-bit fixed point (OpenCV DIST_L2, mask 5). */
    const int A = 65536, B = 91750, C = 143976, INF = 8192 * 65536;
    size_t n = (size_t)h * w;
    int *d = malloc(n * sizeof(int));
    if (!d) { for (size_t p = 0; p < n; p++) out[p] = 8192.0f; return; }
    for (size_t p = 0; p < n; p++) d[p] = in[p] ? INF : 0;
    static const int fy[8] = {-2, -2, -1, -1, -1, -1, -1, 0}, fx[8] = {-1, 1, -2, -1, 0, 1, 2, -1};
    int fw[8] = {C, C, C, B, A, B, C, A};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            if (!d[p]) continue;
            int best = d[p];
            for (int t = 0; t < 8; t++) {
                int yy = y + fy[t], xx = x + fx[t];
                if (yy < 0 || xx < 0 || xx >= w) continue;
                int v = d[(size_t)yy * w + xx] + fw[t];
                if (v < best) best = v;
            }
            d[p] = best;
        }
    for (int y = h - 1; y >= 0; y--)
        for (int x = w - 1; x >= 0; x--) {
            size_t p = (size_t)y * w + x;
            if (!d[p]) continue;
            int best = d[p];
            for (int t = 0; t < 8; t++) {
                int yy = y - fy[t], xx = x - fx[t];
                if (yy >= h || xx < 0 || xx >= w) continue;
                int v = d[(size_t)yy * w + xx] + fw[t];
                if (v < best) best = v;
            }
            d[p] = best;
        }
    for (size_t p = 0; p < n; p++) out[p] = (float)d[p] * (1.0f / 65536.0f);
    free(d);
}

void qbc_blur3_f32(float *out, const float *in, int h, int w) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    s += in[(size_t)qbc_reflect101(y + dy, h) * w + qbc_reflect101(x + dx, w)];
            out[(size_t)y * w + x] = s * (1.0f / 9.0f);
        }
}

void qbc_blur3_u8(uint8_t *out, const uint8_t *in, int h, int w) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int s = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    s += in[(size_t)qbc_reflect101(y + dy, h) * w + qbc_reflect101(x + dx, w)];
            out[(size_t)y * w + x] = (uint8_t)((s * 2 + 9) / 18); /* rne(s/9); ties impossible */
        }
}

void qbc_equalize_hist(uint8_t *out, const uint8_t *in, int n) {
    int hist[256] = {0};
    for (int p = 0; p < n; p++) hist[in[p]]++;
    int v0 = 0;
    while (!hist[v0]) v0++;
    if (hist[v0] == n) { memcpy(out, in, (size_t)n); return; }
    uint8_t lut[256];
    double scale = 255.0 / (n - hist[v0]);
    int cum = 0;
    for (int v = 0; v < 256; v++) {
        if (v <= v0) { lut[v] = 0; continue; }
        cum += hist[v];
        int t = (int)nearbyint(scale * cum);
        lut[v] = (uint8_t)(t > 255 ? 255 : t);
    }
    for (int p = 0; p < n; p++) out[p] = lut[in[p]];
}

void qbc_filter2d_u8_3x3(uint8_t *out, const uint8_t *in, int h, int w, const double k[9]) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    s += k[a * 3 + b] * in[(size_t)qbc_reflect101(y + a - 1, h) * w + qbc_reflect101(x + b - 1, w)];
            int t = (int)nearbyint(s);
            out[(size_t)y * w + x] = (uint8_t)(t < 0 ? 0 : t > 255 ? 255 : t);
        }
}

/* ---------------- per-thread scratch ---------------- */

typedef struct { void *p[QBC_SCRATCH_SLOTS]; size_t cap[QBC_SCRATCH_SLOTS]; } scratch_set;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *v) {
    scratch_set *s = v;
    for (int i = 0; i < QBC_SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *qbc_scratch(int slot, size_t bytes) {
    pthread_once(&scratch_once, scratch_init);
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || pthread_setspecific(scratch_key, s)) {
            free(s);
            qb_error(QB_EXIT_FAIL, "out of memory");
            return NULL;
        }
    }
    if (s->cap[slot] < bytes) {
        free(s->p[slot]);
        s->cap[slot] = 0;
        size_t want = bytes + bytes / 4;
        if (!(s->p[slot] = qb_malloc(want))) return NULL;
        s->cap[slot] = want;
    }
    return s->p[slot];
}
