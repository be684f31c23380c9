/* gauss.c — P1, Gaussian smoothing as scipy.ndimage.gaussian_filter computes it (corruptions.md §3):
 * axis 0 then axis 1, each output sample summed in SciPy's order, f64 sums, each pass stored in
 * the array's type. The loops run over blocks of samples with the sums held in registers; every
 * sample still sees the same operations on the same values in the same order. Scratch slots:
 * 6 and 7, and 4 for the folded matrices. */
#include "prims.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static inline int ext_index(int j, int n, int reflect) { return reflect ? qbc_reflect(j, n) : qbc_clampi(j, 0, n - 1); }

/* One output line of SciPy's symmetric sum, n samples:
 * acc[j] = c0[j]·w0 + Σ_{m=r..1} (lo[m][j] + hi[m][j])·w[m], 32 samples at a time (every preset's
 * lines are multiples of 32; the rest one by one, the same sums). */
static void sym_line(double *acc, const double *c0, const double *const *lo, const double *const *hi,
                     const double *w, int r, int n) {
    int j = 0;
    for (; j + 32 <= n; j += 32) { /* 32 samples: the per-tap pointer and weight loads amortised twice as far */
        const double *c = c0 + j;
        qbc_v4d s0 = qbc_ld4(c) * w[0], s1 = qbc_ld4(c + 4) * w[0], s2 = qbc_ld4(c + 8) * w[0], s3 = qbc_ld4(c + 12) * w[0];
        qbc_v4d s4 = qbc_ld4(c + 16) * w[0], s5 = qbc_ld4(c + 20) * w[0], s6 = qbc_ld4(c + 24) * w[0], s7 = qbc_ld4(c + 28) * w[0];
        for (int m = r; m >= 1; m--) {
            const double *a = lo[m] + j, *b = hi[m] + j;
            double wm = w[m];
            s0 += (qbc_ld4(a) + qbc_ld4(b)) * wm, s1 += (qbc_ld4(a + 4) + qbc_ld4(b + 4)) * wm;
            s2 += (qbc_ld4(a + 8) + qbc_ld4(b + 8)) * wm, s3 += (qbc_ld4(a + 12) + qbc_ld4(b + 12)) * wm;
            s4 += (qbc_ld4(a + 16) + qbc_ld4(b + 16)) * wm, s5 += (qbc_ld4(a + 20) + qbc_ld4(b + 20)) * wm;
            s6 += (qbc_ld4(a + 24) + qbc_ld4(b + 24)) * wm, s7 += (qbc_ld4(a + 28) + qbc_ld4(b + 28)) * wm;
        }
        double *o = acc + j;
        qbc_st4(o, s0), qbc_st4(o + 4, s1), qbc_st4(o + 8, s2), qbc_st4(o + 12, s3);
        qbc_st4(o + 16, s4), qbc_st4(o + 20, s5), qbc_st4(o + 24, s6), qbc_st4(o + 28, s7);
    }
    for (; j < n; j++) {
        double s = c0[j] * w[0];
        for (int m = r; m >= 1; m--) s += (lo[m][j] + hi[m][j]) * w[m];
        acc[j] = s;
    }
}

/* Row i of both passes for r below the line length: axis 0 combines rows of D (the input as
 * doubles), the result is stored as the array type (f32: rounded through float), extended by r
 * samples each side, and axis 1 runs along it into res. ext: (w + 2r)·c; acc: w·c; lo, hi: r + 1
 * pointers each. Row by row, so the intermediate never leaves the cache. */
static void gauss_row(double *res, const double *D, int i, int h, int wd, int c, const double *w, int r, int reflect,
                      int f32, double *ext, double *acc, const double **lo, const double **hi) {
    int rowlen = wd * c;
    for (int m = 1; m <= r; m++)
        lo[m] = D + (size_t)ext_index(i - m, h, reflect) * rowlen, hi[m] = D + (size_t)ext_index(i + m, h, reflect) * rowlen;
    sym_line(acc, D + (size_t)i * rowlen, lo, hi, w, r, rowlen);
    if (f32)
        for (int j = 0; j < rowlen; j++) acc[j] = (double)(float)acc[j];
    double *x = ext + r * c;
    memcpy(x, acc, (size_t)rowlen * sizeof(double));
    for (int j = 0; j < r; j++)
        for (int k = 0; k < c; k++) {
            ext[j * c + k] = acc[ext_index(j - r, wd, reflect) * c + k];
            x[(wd + j) * c + k] = acc[ext_index(wd + j, wd, reflect) * c + k];
        }
    for (int m = 1; m <= r; m++) lo[m] = x - m * c, hi[m] = x + m * c;
    sym_line(res, x, lo, hi, w, r, rowlen);
}

/* Scratch for gauss_row (slot 7) laid out as ext | acc | res | lo | hi. */
static double *row_scratch(int wd, int c, int r, double **acc, double **res, const double ***lo, const double ***hi) {
    size_t e = ((size_t)wd + 2 * (size_t)r) * c, n = (size_t)wd * c;
    double *ext = qbc_scratch(7, (e + 2 * n) * sizeof(double) + 2 * ((size_t)r + 1) * sizeof(double *));
    if (!ext) return NULL;
    *acc = ext + e, *res = *acc + n;
    *lo = (const double **)(*res + n), *hi = *lo + r + 1;
    return ext;
}

/* For radii far beyond the line (elastic's σ = 170.8 → r = 512 on 224 samples), fold the kernel
 * onto the n source samples: W[s][i] = Σ_{m: ext(i+m) = s} w[|m|], and each output is
 * 0 + Σ_{s=0..n−1} W[s][i]·x[s] in that order. Stored with rows = sources. */
static void fold_matrix(double *W, int n, const double *w, int r, int reflect) {
    memset(W, 0, (size_t)n * n * sizeof(double));
    int *T = malloc(((size_t)n + 2 * (size_t)r) * sizeof(int)); /* T[q] = ext(q − r): no division per tap */
    for (int q = 0; T && q < n + 2 * r; q++) T[q] = ext_index(q - r, n, reflect);
    for (int i = 0; i < n; i++)
        for (int m = -r; m <= r; m++)
            W[(size_t)(T ? T[i + m + r] : ext_index(i + m, n, reflect)) * n + i] += w[m < 0 ? -m : m];
    free(T);
}

/* Axis 0 folded: output row i = Σ_s W[s][i]·row s (rows of len doubles in D). Blocks of 16
 * columns are packed contiguous (P: n·16), W is read transposed (WT[i][s]), two output rows
 * per pass over the block. */
static void folded_rows(double *out, const double *D, int n, int len, const double *W, double *WT, double *P) {
    for (int i = 0; i < n; i++)
        for (int s = 0; s < n; s++) WT[(size_t)i * n + s] = W[(size_t)s * n + i];
    int j = 0;
    for (; j + 16 <= len; j += 16) {
        for (int s = 0; s < n; s++) memcpy(P + (size_t)s * 16, D + (size_t)s * len + j, 16 * sizeof(double));
        int i = 0;
        for (; i + 2 <= n; i += 2) {
            const double *u = WT + (size_t)i * n, *v = u + n;
            qbc_v4d a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
            for (int s = 0; s < n; s++) {
                const double *x = P + (size_t)s * 16;
                qbc_v4d x0 = qbc_ld4(x), x1 = qbc_ld4(x + 4), x2 = qbc_ld4(x + 8), x3 = qbc_ld4(x + 12);
                double us = u[s], vs = v[s];
                a0 += us * x0, a1 += us * x1, a2 += us * x2, a3 += us * x3;
                b0 += vs * x0, b1 += vs * x1, b2 += vs * x2, b3 += vs * x3;
            }
            double *o0 = out + (size_t)i * len + j, *o1 = o0 + len;
            qbc_st4(o0, a0), qbc_st4(o0 + 4, a1), qbc_st4(o0 + 8, a2), qbc_st4(o0 + 12, a3);
            qbc_st4(o1, b0), qbc_st4(o1 + 4, b1), qbc_st4(o1 + 8, b2), qbc_st4(o1 + 12, b3);
        }
        for (; i < n; i++)
            for (int t = 0; t < 16; t++) {
                double s0 = 0;
                for (int s = 0; s < n; s++) s0 += WT[(size_t)i * n + s] * P[(size_t)s * 16 + t];
                out[(size_t)i * len + j + t] = s0;
            }
    }
    for (; j < len; j++)
        for (int i = 0; i < n; i++) {
            double s0 = 0;
            for (int s = 0; s < n; s++) s0 += WT[(size_t)i * n + s] * D[(size_t)s * len + j];
            out[(size_t)i * len + j] = s0;
        }
}

/* Axis 1 folded, on L lines of n samples (contiguous in X): out[l][i] = Σ_s W[s][i]·X[l][s].
 * Blocks of 8 outputs have their W columns packed contiguous (Q: n·8), four lines per pass. */
static void folded_lines(double *out, const double *X, int L, int n, const double *W, double *Q) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int s = 0; s < n; s++) memcpy(Q + (size_t)s * 8, W + (size_t)s * n + i, 8 * sizeof(double));
        int l = 0;
        for (; l + 4 <= L; l += 4) {
            const double *x0 = X + (size_t)l * n, *x1 = x0 + n, *x2 = x1 + n, *x3 = x2 + n;
            qbc_v4d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0}, d0 = {0}, d1 = {0};
            for (int s = 0; s < n; s++) {
                qbc_v4d w0 = qbc_ld4(Q + (size_t)s * 8), w1 = qbc_ld4(Q + (size_t)s * 8 + 4);
                double p = x0[s], q = x1[s], r = x2[s], t = x3[s];
                a0 += w0 * p, a1 += w1 * p, b0 += w0 * q, b1 += w1 * q;
                c0 += w0 * r, c1 += w1 * r, d0 += w0 * t, d1 += w1 * t;
            }
            double *o = out + (size_t)l * n + i;
            qbc_st4(o, a0), qbc_st4(o + 4, a1), qbc_st4(o + n, b0), qbc_st4(o + n + 4, b1);
            qbc_st4(o + 2 * n, c0), qbc_st4(o + 2 * n + 4, c1), qbc_st4(o + 3 * n, d0), qbc_st4(o + 3 * n + 4, d1);
        }
        for (; l < L; l++)
            for (int t = 0; t < 8; t++) {
                double s0 = 0;
                for (int s = 0; s < n; s++) s0 += W[(size_t)s * n + i + t] * X[(size_t)l * n + s];
                out[(size_t)l * n + i + t] = s0;
            }
    }
    for (; i < n; i++)
        for (int l = 0; l < L; l++) {
            double s0 = 0;
            for (int s = 0; s < n; s++) s0 += W[(size_t)s * n + i] * X[(size_t)l * n + s];
            out[(size_t)l * n + i] = s0;
        }
}

/* Both folded passes. D, E: h·w·c doubles each; W, Wt: max(h,w)² doubles; Pk: 16·max(h,w). */
#define GAUSS_FOLDED(T)                                                                                         \
    static void gauss_folded_##T(T *a, int h, int wd, int c, const double *w, int r, int reflect, double *D,  \
                                 double *E, double *W, double *Wt, double *Pk) {                              \
        size_t n = (size_t)h * wd * c;                                                                        \
        for (size_t i = 0; i < n; i++) D[i] = (double)a[i];                                                   \
        fold_matrix(W, h, w, r, reflect);                                                                     \
        folded_rows(E, D, h, wd * c, W, Wt, Pk);                                                              \
        for (size_t i = 0; i < n; i++) a[i] = (T)E[i];                                                        \
        /* axis 1: lines (row, channel) gathered contiguous, then scattered back */                          \
        for (int y = 0; y < h; y++)                                                                           \
            for (int k = 0; k < c; k++)                                                                       \
                for (int x = 0; x < wd; x++) D[((size_t)y * c + k) * wd + x] = (double)a[((size_t)y * wd + x) * c + k]; \
        if (wd != h) fold_matrix(W, wd, w, r, reflect);                                                       \
        folded_lines(E, D, h * c, wd, W, Pk);                                                                 \
        for (int y = 0; y < h; y++)                                                                           \
            for (int k = 0; k < c; k++)                                                                       \
                for (int x = 0; x < wd; x++) a[((size_t)y * wd + x) * c + k] = (T)E[((size_t)y * c + k) * wd + x]; \
    }
GAUSS_FOLDED(double)
GAUSS_FOLDED(float)

#define GAUSS_IMPL(T)                                                                                           \
    static int gauss_##T(T *a, int h, int w, int c, double sigma, int reflect, double truncate) {            \
        if (sigma <= 1e-15) return 0;                                                                         \
        double *wt;                                                                                           \
        int r = gauss_taps(sigma, truncate, &wt);                                                             \
        if (r < 0) return qb_error(QB_EXIT_FAIL, "gaussian: out of memory");                                 \
        if (r == 0) { free(wt); return 0; }                                                                   \
        int nmax = h > w ? h : w;                                                                             \
        size_t n = (size_t)h * w * c;                                                                         \
        double *D = qbc_scratch(6, n * sizeof(double));                                                       \
        if (D && 2 * r + 1 > nmax) {                                                                          \
            double *E = qbc_scratch(7, n * sizeof(double));                                                   \
            double *W = qbc_scratch(4, ((size_t)2 * nmax * nmax + 16 * (size_t)nmax) * sizeof(double));       \
            if (E && W) gauss_folded_##T(a, h, w, c, wt, r, reflect, D, E, W, W + (size_t)nmax * nmax,        \
                                         W + (size_t)2 * nmax * nmax);                                        \
            free(wt);                                                                                         \
            return E && W ? 0 : qb_error(QB_EXIT_FAIL, "gaussian: out of memory");                            \
        }                                                                                                     \
        double *acc, *res;                                                                                    \
        const double **lo, **hi;                                                                              \
        double *ext = D ? row_scratch(w, c, r, &acc, &res, &lo, &hi) : NULL;                                  \
        if (ext) {                                                                                            \
            size_t rowlen = (size_t)w * c;                                                                    \
            for (size_t i = 0; i < n; i++) D[i] = (double)a[i];                                               \
            for (int i = 0; i < h; i++) {                                                                     \
                gauss_row(res, D, i, h, w, c, wt, r, reflect, sizeof(T) == 4, ext, acc, lo, hi);              \
                for (size_t j = 0; j < rowlen; j++) a[i * rowlen + j] = (T)res[j];                            \
            }                                                                                                 \
        }                                                                                                     \
        free(wt);                                                                                             \
        return ext ? 0 : qb_error(QB_EXIT_FAIL, "gaussian: out of memory");                                   \
    }
GAUSS_IMPL(double)
GAUSS_IMPL(float)

int qbc_gauss_planes_gemm(float *a, int np, int n, double sigma, int reflect, double truncate) {
    if (sigma <= 1e-15) return 0;
    double *wt;
    int r = gauss_taps(sigma, truncate, &wt);
    if (r < 0) return qb_error(QB_EXIT_FAIL, "gaussian: out of memory");
    size_t nn = (size_t)n * n;
    /* the folded matrix depends on (n, σ, truncate, mode) only: kept per thread between calls */
    uint64_t key = 0xcbf29ce484222325ull;
    double kv[4] = {n, sigma, truncate, reflect};
    const unsigned char *kb = (const unsigned char *)kv;
    for (size_t i = 0; i < sizeof kv; i++) key = (key ^ kb[i]) * 0x100000001b3ull;
    int fresh;
    float *E = qbc_scratch(6, nn * sizeof(float));
    double *Wd = qbc_scratch(7, nn * sizeof(double)); /* before the cache: no failure once it is fresh */
    float *W = E && Wd ? qbc_cache(key, nn * sizeof(float), &fresh) : NULL;
    if (!W) { free(wt); return QB_EXIT_FAIL; }
    if (fresh) {
        fold_matrix(Wd, n, wt, r, reflect);
        for (size_t i = 0; i < nn; i++) W[i] = (float)Wd[i];
    }
    free(wt);
    for (int p = 0; p < np; p++) {
        float *X = a + (size_t)p * nn;
        /* axis 0: E = Wᵀ·X (E[i][j] = Σ_s W[s][i]·X[s][j]); axis 1: X = E·W */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0f, W, n, X, n, 0.0f, E, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, E, n, W, n, 0.0f, X, n);
    }
    return 0;
}

int qbc_gauss_f64(double *a, int h, int w, int c, double sigma, int reflect, double truncate) {
    return gauss_double(a, h, w, c, sigma, reflect, truncate);
}
int qbc_gauss_f32(float *a, int h, int w, int c, double sigma, int reflect, double truncate) {
    return gauss_float(a, h, w, c, sigma, reflect, truncate);
}

/* uint8 in, uint8 out through the f64 path: u = v/255, smoothed, then out8(·) (mode 0) or
 * trunc8(255·) (mode 1), one row at a time (no full-size f64 output array). */
int qbc_gauss_u8(uint8_t *out, const uint8_t *in, int h, int w, int c, double sigma, int reflect, double truncate,
                 int mode) {
    size_t n = (size_t)h * w * c, rowlen = (size_t)w * c;
    double *D = qbc_scratch(6, n * sizeof(double));
    if (!D) return QB_EXIT_FAIL;
#pragma omp simd
    for (size_t i = 0; i < n; i++) D[i] = qbc_div255((double)in[i]); /* = in[i] / 255.0 */
    double *wt = NULL;
    int r = sigma <= 1e-15 ? 0 : gauss_taps(sigma, truncate, &wt);
    if (r < 0) return qb_error(QB_EXIT_FAIL, "gaussian: out of memory");
    int nmax = h > w ? h : w, rc = 0;
    if (r > 0 && 2 * r + 1 > nmax) { /* folded radius: the in-place f64 path on a copy */
        double *A = malloc(n * sizeof(double));
        if (!A) { free(wt); return qb_error(QB_EXIT_FAIL, "gaussian: out of memory"); }
        memcpy(A, D, n * sizeof(double));
        rc = qbc_gauss_f64(A, h, w, c, sigma, reflect, truncate);
        for (size_t i = 0; i < n && !rc; i++) out[i] = mode ? qbc_trunc8(A[i] * 255.0) : qbc_out8(A[i]);
        free(A), free(wt);
        return rc;
    }
    double *acc, *res;
    const double **lo, **hi;
    double *ext = r > 0 ? row_scratch(w, c, r, &acc, &res, &lo, &hi) : NULL;
    if (r > 0 && !ext) { free(wt); return QB_EXIT_FAIL; }
    for (int i = 0; i < h; i++) {
        const double *v = D + i * rowlen;
        if (r > 0) gauss_row(res, D, i, h, w, c, wt, r, reflect, 0, ext, acc, lo, hi), v = res;
        uint8_t *o = out + i * rowlen;
        /* smoothed values lie in [0, 1 + ε] and are never NaN: qbc_trunc8 is the int32 cast there */
        qbc_out8n_row(o, v, rowlen, mode);
    }
    free(wt);
    return 0;
}
