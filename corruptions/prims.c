/* prims.c — shared primitives of the corruptions (corruptions.md §3). */
#include "prims.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* P1 (Gaussian smoothing) is in gauss.c. */

/* ---------------- P5: zoom and clipped_zoom ---------------- */

/* Geometry of clipped_zoom by z: centre crop ch×ch at (top, top), scipy zoom(order=1) to m×m,
 * rows/cols [trim, trim+S) kept. Output o reads crop samples i0[o], j0[o] with weight f[o] on j0. */
int qbc_zoom_geom(int S, double z, int *top, int *i0, int *j0, double *f) {
    int ch = (int)ceil((double)S / z);
    *top = (int)floor((S - ch) / 2.0);
    int m = (int)nearbyint((double)ch * z); /* Python round: ties to even */
    int trim = (int)floor((m - S) / 2.0);
    double ratio = m > 1 ? (double)(ch - 1) / (double)(m - 1) : 0;
    for (int o = 0; o < S; o++) {
        double s = (double)(o + trim) * ratio;
        int fl = (int)floor(s);
        if (fl > ch - 1) fl = ch - 1;
        i0[o] = fl;
        f[o] = s - fl;
        j0[o] = fl + 1 < ch ? fl + 1 : ch - 1;
    }
    return ch;
}

/* Value Σ (v·wr)·wc over the 2×2 footprint, in that order (f64 for snow's single channel). */
int qbc_clipped_zoom_f64(double *out, const double *in, int S, int c, double z) {
    int i0[512], j0[512], top;
    double f[512];
    if (S > 512) return qb_error(QB_EXIT_FAIL, "zoom: image too large");
    int ch = qbc_zoom_geom(S, z, &top, i0, j0, f);
    if (c == 1) { /* (v·wr) per source sample of the two rows first (vectorised), then ·wc per output */
        double A0[512], A1[512], wx0[512];
        for (int x = 0; x < S; x++) wx0[x] = 1.0 - f[x];
        for (int y = 0; y < S; y++) {
            const double *r0 = in + (size_t)(top + i0[y]) * S + top, *r1 = in + (size_t)(top + j0[y]) * S + top;
            double wy1 = f[y], wy0 = 1.0 - wy1;
#pragma omp simd
            for (int s = 0; s < ch; s++) A0[s] = r0[s] * wy0, A1[s] = r1[s] * wy1;
            double *o = out + (size_t)y * S;
            for (int x = 0; x < S; x++) {
                int a = i0[x], b = j0[x];
                double t = A0[a] * wx0[x];
                t += A0[b] * f[x];
                t += A1[a] * wx0[x];
                t += A1[b] * f[x];
                o[x] = t;
            }
        }
        return 0;
    }
    for (int y = 0; y < S; y++) {
        const double *r0 = in + ((size_t)(top + i0[y]) * S + top) * c;
        const double *r1 = in + ((size_t)(top + j0[y]) * S + top) * c;
        double wy1 = f[y], wy0 = 1.0 - wy1;
        for (int x = 0; x < S; x++) {
            double wx1 = f[x], wx0 = 1.0 - wx1;
            int a = i0[x] * c, b = j0[x] * c;
            for (int k = 0; k < c; k++) {
                double t = r0[a + k] * wy0 * wx0;
                t += r0[b + k] * wy0 * wx1;
                t += r1[a + k] * wy1 * wx0;
                t += r1[b + k] * wy1 * wx1;
                out[((size_t)y * S + x) * c + k] = t;
            }
        }
    }
    return 0;
}

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
    /* 257·v (the 16-bit quantum) as doubles, each row padded by R samples of its edge value on
     * both sides, so every tap reads one contiguous run; the sum per sample is still
     * 0 + Σ_{i=0..W−1} k[i]·(257·v) in tap order, 32 samples at a time in registers. */
    int R = 0;
    for (int i = 0; i < W; i++) R = abs(dx[i]) > R ? abs(dx[i]) : R;
    size_t rowlen = (size_t)w * c, prow = ((size_t)w + 2 * (size_t)R) * c;
    double *E = qbc_scratch(5, (size_t)h * prow * sizeof(double)), *acc = malloc(rowlen * sizeof(double));
    const double **tap = malloc((size_t)W * sizeof(*tap));
    if (!E || !acc || !tap) { free(k), free(dx), free(dy), free(acc), free(tap); return qb_error(QB_EXIT_FAIL, "motion blur: out of memory"); }
    double q257[256];
    for (int v = 0; v < 256; v++) q257[v] = 257.0 * v;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = in + (size_t)y * rowlen;
        double *e = E + (size_t)y * prow;
        for (int x = 0; x < R; x++)
            for (int ch = 0; ch < c; ch++) e[(size_t)x * c + ch] = q257[row[ch]], e[(size_t)(R + w + x) * c + ch] = q257[row[(size_t)(w - 1) * c + ch]];
        double *ei = e + (size_t)R * c;
#pragma omp simd
        for (size_t j = 0; j < rowlen; j++) ei[j] = (double)(257 * (int32_t)row[j]); /* = q257[row[j]] */
    }
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < W; i++) tap[i] = E + (size_t)qbc_clampi(y + dy[i], 0, h - 1) * prow + (ptrdiff_t)(R + dx[i]) * c;
        size_t j = 0;
        for (; j + 32 <= rowlen; j += 32) { /* 32 samples, eight running sums in registers */
            qbc_v4d s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, s4 = {0}, s5 = {0}, s6 = {0}, s7 = {0};
            for (int i = 0; i < W; i++) {
                const double *e = tap[i] + j;
                double ki = k[i];
                s0 += ki * qbc_ld4(e), s1 += ki * qbc_ld4(e + 4), s2 += ki * qbc_ld4(e + 8), s3 += ki * qbc_ld4(e + 12);
                s4 += ki * qbc_ld4(e + 16), s5 += ki * qbc_ld4(e + 20), s6 += ki * qbc_ld4(e + 24), s7 += ki * qbc_ld4(e + 28);
            }
            double *a = acc + j;
            qbc_st4(a, s0), qbc_st4(a + 4, s1), qbc_st4(a + 8, s2), qbc_st4(a + 12, s3);
            qbc_st4(a + 16, s4), qbc_st4(a + 20, s5), qbc_st4(a + 24, s6), qbc_st4(a + 28, s7);
        }
        for (; j < rowlen; j++) {
            double s0 = 0;
            for (int i = 0; i < W; i++) s0 += k[i] * tap[i][j];
            acc[j] = s0;
        }
        uint8_t *o = out + (size_t)y * rowlen;
        j = 0;
#ifdef __AVX2__
        for (; j + 16 <= rowlen; j += 16) { /* the loop below, 16 at a time (its narrowing took shuffles) */
            const __m256d half = _mm256_set1_pd(0.5), zero = _mm256_setzero_pd(), top = _mm256_set1_pd(65535);
            __m128i q[4];
            for (int t = 0; t < 4; t++) {
                __m256d a = _mm256_floor_pd(_mm256_add_pd(_mm256_loadu_pd(acc + j + 4 * t), half));
                a = _mm256_min_pd(_mm256_max_pd(a, zero), top); /* q > 0 ? q : 0, then q < 65535 ? q : 65535 */
                q[t] = _mm_srli_epi32(_mm_mullo_epi32(_mm256_cvttpd_epi32(a), _mm_set1_epi32(0xFF01)), 24);
            }
            __m128i lo = _mm_packs_epi32(q[0], q[1]), hi = _mm_packs_epi32(q[2], q[3]);
            _mm_storeu_si128((__m128i *)(o + j), _mm_packus_epi16(lo, hi));
        }
#endif
        for (; j < rowlen; j++) { /* the 16-bit quantum, clamped; ÷257 as ·0xFF01 >> 24 (exact below 2^16) */
            double q = floor(acc[j] + 0.5);
            q = q > 0 ? q : 0;
            q = q < 65535 ? q : 65535;
            o[j] = (uint8_t)(((uint32_t)(int32_t)q * 0xFF01u) >> 24);
        }
    }
    free(acc), free(tap);
    free(k), free(dx), free(dy);
    return 0;
}

/* ---------------- P7: plasma fractal ---------------- */

/* One level of the plasma fractal (cell size s): its three passes, each over rows a and columns
 * b of the n×n grid with wrap-around neighbours. The wrapping column is peeled off so the rest of
 * each row is a plain strided loop; inlined with s = 2 (most of the cells) it vectorises. Every
 * value is the same expression on the same operands as the reference's loop. */
static inline __attribute__((always_inline)) void plasma_level(double *A, int N, int s, double wib, qb_crng *rng,
                                                               double *U) {
    int h = s / 2, n = N / s;
#define ROW_C(a) (A + (size_t)(a) * s * N)           /* C(a, b) = ROW_C(a)[b·s]: corners */
#define ROW_D(a) (A + (size_t)((a) * s + h) * N + h) /* D(a, b) = ROW_D(a)[b·s]: centres */
#define WIB(acc, u) ((acc) / 4 + wib * (-wib + 2 * wib * (u)))
    /* centres: (C(a,b) + C(a1,b)) + (C(a,b1) + C(a1,b1)) */
    qbc_uniforms_exact(rng, U, (size_t)n * n);
    for (int a = 0; a < n; a++) {
        int a1 = a + 1 == n ? 0 : a + 1;
        const double *c0 = ROW_C(a), *c1 = ROW_C(a1), *u = U + (size_t)a * n;
        double *o = ROW_D(a);
#pragma omp simd
        for (int b = 0; b < n - 1; b++)
            o[(size_t)b * s] = WIB((c0[(size_t)b * s] + c1[(size_t)b * s]) + (c0[(size_t)(b + 1) * s] + c1[(size_t)(b + 1) * s]), u[b]);
        int b = n - 1;
        o[(size_t)b * s] = WIB((c0[(size_t)b * s] + c1[(size_t)b * s]) + (c0[0] + c1[0]), u[b]);
    }
    /* top edges, at (a·s, b·s + h): (D(a,b) + D(am,b)) + (C(a,b) + C(a,b1)) */
    qbc_uniforms_exact(rng, U, (size_t)n * n);
    for (int a = 0; a < n; a++) {
        int am = a == 0 ? n - 1 : a - 1;
        const double *d0 = ROW_D(a), *dm = ROW_D(am), *c0 = ROW_C(a), *u = U + (size_t)a * n;
        double *o = ROW_C(a) + h;
#pragma omp simd
        for (int b = 0; b < n - 1; b++)
            o[(size_t)b * s] = WIB((d0[(size_t)b * s] + dm[(size_t)b * s]) + (c0[(size_t)b * s] + c0[(size_t)(b + 1) * s]), u[b]);
        int b = n - 1;
        o[(size_t)b * s] = WIB((d0[(size_t)b * s] + dm[(size_t)b * s]) + (c0[(size_t)b * s] + c0[0]), u[b]);
    }
    /* left edges, at (a·s + h, b·s): (D(a,b) + D(a,bm)) + (C(a,b) + C(a1,b)) */
    qbc_uniforms_exact(rng, U, (size_t)n * n);
    for (int a = 0; a < n; a++) {
        int a1 = a + 1 == n ? 0 : a + 1;
        const double *d0 = ROW_D(a), *c0 = ROW_C(a), *c1 = ROW_C(a1), *u = U + (size_t)a * n;
        double *o = ROW_D(a) - h;
        o[0] = WIB((d0[0] + d0[(size_t)(n - 1) * s]) + (c0[0] + c1[0]), u[0]);
#pragma omp simd
        for (int b = 1; b < n; b++)
            o[(size_t)b * s] = WIB((d0[(size_t)b * s] + d0[(size_t)(b - 1) * s]) + (c0[(size_t)b * s] + c1[(size_t)b * s]), u[b]);
    }
#undef ROW_C
#undef ROW_D
#undef WIB
}

/* Neighbours wrap at the n×n grid edge (compare-and-select, not modulo). */
int qbc_plasma(double *A, int N, double decay, qb_crng *rng) {
    /* each loop's n² draws taken in bulk first (qb_crng_uniform's values, in loop order);
     * scratch slot 2 (the caller, fog, uses 0 and 1) */
    double *U = qbc_scratch(2, (size_t)(N / 2) * (N / 2) * sizeof(double) + sizeof(double));
    if (!U) return QB_EXIT_FAIL;
    A[0] = 0;
    double wib = 100;
    for (int s = N; s >= 2; s /= 2) {
        if (s == 2) plasma_level(A, N, 2, wib, rng, U); /* a constant stride: vectorised */
        else plasma_level(A, N, s, wib, rng, U);
        wib /= decay;
    }
    size_t NN = (size_t)N * N;
    double mn = A[0], mx;
#pragma omp simd reduction(min : mn)
    for (size_t i = 1; i < NN; i++) mn = A[i] < mn ? A[i] : mn;
#pragma omp simd
    for (size_t i = 0; i < NN; i++) A[i] -= mn;
    mx = A[0];
#pragma omp simd reduction(max : mx)
    for (size_t i = 1; i < NN; i++) mx = A[i] > mx ? A[i] : mx;
#pragma omp simd
    for (size_t i = 0; i < NN; i++) A[i] /= mx;
    return 0;
}

/* ---------------- P8: HSV ---------------- */

void qbc_rgb2hsv_row(double *h, double *s, double *v, const double *r, const double *g, const double *b, int n) {
#pragma omp simd
    for (int p = 0; p < n; p++) {
        double R = r[p], G = g[p], B = b[p];
        double V = R > G ? R : G;
        V = B > V ? B : V;
        double mn = R < G ? R : G;
        mn = B < mn ? B : mn;
        double d = V - mn;
        double S = d == 0 ? 0 : d / V;
        /* sector of the maximum (b over g over r when tied): (g−b)/d, 2 + (b−r)/d, 4 + (r−g)/d */
        double num = B == V ? R - G : G == V ? B - R : G - B;
        double hh = num / d;
        double off = B == V ? 4.0 : 2.0;
        hh = B == V ? off + hh : G == V ? off + hh : hh;
        hh = hh / 6.0;
        hh = hh - floor(hh); /* floored modulo 1 */
        hh = d == 0 ? 0 : hh != hh ? 0 : hh;
        h[p] = hh, s[p] = S != S ? 0 : S, v[p] = V;
    }
}

void qbc_hsv2rgb_row(double *r, double *g, double *b, const double *h, const double *s, const double *v, int n) {
#pragma omp simd
    for (int p = 0; p < n; p++) {
        double H = h[p], S = s[p], V = v[p];
        double fi = floor(H * 6.0);
        double f = H * 6.0 - fi;
        double pp = V * (1 - S), q = V * (1 - f * S), t = V * (1 - (1 - f) * S);
        double i = fi == 6.0 ? 0.0 : fi; /* (uint8)fi mod 6 for fi in 0..6 */
        /* sector i: (V,t,p) (q,V,p) (p,V,t) (p,q,V) (t,p,V) (V,p,q); sequential selects vectorise */
        double R = pp, G = pp, B = pp;
        R = i == 4 ? t : R, R = i == 1 ? q : R, R = i == 0 ? V : R, R = i == 5 ? V : R;
        G = i == 3 ? q : G, G = i == 0 ? t : G, G = i == 1 ? V : G, G = i == 2 ? V : G;
        B = i == 5 ? q : B, B = i == 2 ? t : B, B = i == 3 ? V : B, B = i == 4 ? V : B;
        r[p] = R, g[p] = G, b[p] = B;
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

/* in and out: S·S·3 floats plus one of padding (read and written past the last pixel) */
void qbc_warp_affine_f32(float *out, const float *in, int S, const double A[6]) {
    double D = A[0] * A[4] - A[1] * A[3];
    D = D != 0 ? 1.0 / D : 0;
    double B00 = A[4] * D, B01 = -A[1] * D, B10 = -A[3] * D, B11 = A[0] * D;
    double B02 = -B00 * A[2] - B01 * A[5], B12 = -B10 * A[2] - B11 * A[5];
    /* the x terms of the fixed-point map do not depend on the row: once per call */
    int *ax = malloc((size_t)S * 6 * sizeof(int));
    float *wt = malloc((size_t)S * 4 * sizeof(float));
    if (!ax || !wt) { free(ax), free(wt); memset(out, 0, (size_t)S * S * 3 * sizeof(float)); return; }
    int *ay = ax + S, *oa = ax + 2 * S, *ob = ax + 3 * S, *oc = ax + 4 * S, *od = ax + 5 * S;
    float *w00 = wt, *w01 = wt + S, *w10 = wt + 2 * S, *w11 = wt + 3 * S;
    for (int x = 0; x < S; x++) ax[x] = rne_int(B00 * x * 1024), ay[x] = rne_int(B10 * x * 1024);
    for (int y = 0; y < S; y++) {
        int X0 = rne_int((B01 * y + B02) * 1024) + 16, Y0 = rne_int((B11 * y + B12) * 1024) + 16;
#pragma omp simd
        for (int x = 0; x < S; x++) {
            int X = (X0 + ax[x]) >> 5, Y = (Y0 + ay[x]) >> 5;
            float fx = (float)(X & 31) / 32.0f, fy = (float)(Y & 31) / 32.0f;
            w00[x] = (1.0f - fy) * (1.0f - fx), w01[x] = (1.0f - fy) * fx, w10[x] = fy * (1.0f - fx), w11[x] = fy * fx;
        }
        /* the source corner is monotonic along the row (ax, ay are), so the pixels whose 2×2
         * neighbourhood lies inside the image form one run [x0, x1): no reflection there */
#define WARP_IN(x) ((unsigned)((X0 + ax[x]) >> 10) < (unsigned)(S - 1) && (unsigned)((Y0 + ay[x]) >> 10) < (unsigned)(S - 1))
        int x0 = 0, x1 = S;
        while (x0 < S && !WARP_IN(x0)) x0++;
        while (x1 > x0 && !WARP_IN(x1 - 1)) x1--;
#undef WARP_IN
#pragma omp simd
        for (int x = x0; x < x1; x++) {
            int xi = (X0 + ax[x]) >> 10, yi = (Y0 + ay[x]) >> 10, b = (yi * S + xi) * 3;
            oa[x] = b, ob[x] = b + 3, oc[x] = b + 3 * S, od[x] = b + 3 * S + 3;
        }
        for (int x = 0; x < S; x++) {
            if (x == x0) x = x1; /* skip the run */
            if (x >= S) break;
            int xi = (X0 + ax[x]) >> 10, yi = (Y0 + ay[x]) >> 10;
            int xa = qbc_reflect101(xi, S), xb = qbc_reflect101(xi + 1, S);
            int ya = qbc_reflect101(yi, S), yb = qbc_reflect101(yi + 1, S);
            oa[x] = (ya * S + xa) * 3, ob[x] = (ya * S + xb) * 3, oc[x] = (yb * S + xa) * 3, od[x] = (yb * S + xb) * 3;
        }
        /* one pixel's three channels (and a fourth, overwritten by the next pixel) per vector:
         * the scalar expression lane by lane; in and out carry one float of padding */
        float *o = out + (size_t)y * S * 3;
        for (int x = 0; x < S; x++) {
            qbc_v4f r = qbc_ld4f(in + oa[x]) * w00[x] + qbc_ld4f(in + ob[x]) * w01[x] + qbc_ld4f(in + oc[x]) * w10[x] +
                        qbc_ld4f(in + od[x]) * w11[x];
            memcpy(o + 3 * x, &r, sizeof r);
        }
    }
    free(ax), free(wt);
}

/* ---------------- P13: OpenCV pieces for spatter ---------------- */

void qbc_canny(uint8_t *out, const uint8_t *in, int h, int w, int lo, int hi) {
    size_t n = (size_t)h * w;
    int W2 = w + 2; /* padded planes: one sample of border on each side */
    size_t n2 = (size_t)(h + 2) * W2;
    int *gx = qbc_scratch(3, (3 * n + 2 * n2) * sizeof(int) + n); /* scratch slot 3: all planes */
    if (!gx) { memset(out, 0, n); return; }
    int *gy = gx + n, *stack = gy + n, *mag = stack + n, *src = mag + n2;
    uint8_t *state = (uint8_t *)(src + n2); /* 0 none, 1 candidate, 2 edge */
    memset(mag, 0, n2 * sizeof(int)), memset(state, 0, n);
    /* Sobel on the input with replicated borders (the clamped reads of before, as a padded copy) */
    for (int y = -1; y <= h; y++) {
        const uint8_t *row = in + (size_t)qbc_clampi(y, 0, h - 1) * w;
        int *d = src + (size_t)(y + 1) * W2;
        d[0] = row[0], d[w + 1] = row[w - 1];
#pragma omp simd
        for (int x = 0; x < w; x++) d[x + 1] = row[x];
    }
    for (int y = 0; y < h; y++) {
        const int *r0 = src + (size_t)y * W2 + 1, *r1 = r0 + W2, *r2 = r1 + W2;
        int *ox = gx + (size_t)y * w, *oy = gy + (size_t)y * w, *om = mag + (size_t)(y + 1) * W2 + 1;
#pragma omp simd
        for (int x = 0; x < w; x++) {
            int a = r0[x - 1], b = r0[x], c = r0[x + 1], d = r1[x - 1], f = r1[x + 1];
            int g = r2[x - 1], hh = r2[x], i = r2[x + 1];
            int sx = -a + c - 2 * d + 2 * f - g + i;
            int sy = -a - 2 * b - c + g + 2 * hh + i;
            ox[x] = sx, oy[x] = sy;
            om[x] = abs(sx) + abs(sy);
        }
    }
    /* non-maximum suppression; magnitudes outside the image read 0 (the zero border of mag) */
#define MAG(yy, xx) mag[(size_t)((yy) + 1) * W2 + (xx) + 1]
    int sp = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t p = (size_t)y * w + x;
            int m = MAG(y, x);
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
}

void qbc_distance_transform(float *out, const uint8_t *in, int h, int w) {
    /* 5×5 chamfer in 16-bit fixed point (OpenCV DIST_L2, mask 5), on a plane padded by two
     * samples of +∞ on each side so the scans need no bounds tests (a padded neighbour never
     * wins: INF + weight > any value it could replace). */
    const int A = 65536, B = 91750, C = 143976, INF = 8192 * 65536;
    size_t n = (size_t)h * w;
    int W4 = w + 4;
    int *pd = qbc_scratch(4, (size_t)(h + 4) * W4 * sizeof(int));
    if (!pd) { for (size_t p = 0; p < n; p++) out[p] = 8192.0f; return; }
    for (size_t p = 0; p < (size_t)(h + 4) * W4; p++) pd[p] = INF;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) pd[(size_t)(y + 2) * W4 + x + 2] = in[(size_t)y * w + x] ? INF : 0;
    /* each scan: the seven taps of the rows already done, as a vectorisable min (a zero stays
     * zero: every candidate is ≥ a weight > 0), then the serial left (right) neighbour */
#define DT_MIN(b, v) b = (v) < b ? (v) : b
    for (int y = 0; y < h; y++) {
        int *d = pd + (size_t)(y + 2) * W4 + 2;
        const int *r2 = d - 2 * W4, *r1 = d - W4;
#pragma omp simd
        for (int x = 0; x < w; x++) {
            int best = d[x];
            DT_MIN(best, r2[x - 1] + C), DT_MIN(best, r2[x + 1] + C), DT_MIN(best, r1[x - 2] + C);
            DT_MIN(best, r1[x - 1] + B), DT_MIN(best, r1[x] + A), DT_MIN(best, r1[x + 1] + B);
            DT_MIN(best, r1[x + 2] + C);
            d[x] = best;
        }
        for (int x = 0, prev = d[-1]; x < w; x++) { /* the carry in a register, not through memory */
            int v = prev + A;
            prev = d[x] = v < d[x] ? v : d[x];
        }
    }
    for (int y = h - 1; y >= 0; y--) {
        int *d = pd + (size_t)(y + 2) * W4 + 2;
        const int *r2 = d + 2 * W4, *r1 = d + W4;
#pragma omp simd
        for (int x = 0; x < w; x++) {
            int best = d[x];
            DT_MIN(best, r2[x + 1] + C), DT_MIN(best, r2[x - 1] + C), DT_MIN(best, r1[x + 2] + C);
            DT_MIN(best, r1[x + 1] + B), DT_MIN(best, r1[x] + A), DT_MIN(best, r1[x - 1] + B);
            DT_MIN(best, r1[x - 2] + C);
            d[x] = best;
        }
        for (int x = w - 1, prev = d[w]; x >= 0; x--) {
            int v = prev + A;
            prev = d[x] = v < d[x] ? v : d[x];
        }
    }
#undef DT_MIN
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) out[(size_t)y * w + x] = (float)pd[(size_t)(y + 2) * W4 + x + 2] * (1.0f / 65536.0f);
}

/* 3×3 box, REFLECT_101: for each output row the three source rows and, per column, the
 * reflected neighbours; the interior columns run without index arithmetic. */
#define BOX3_ROWS(h, y)                                                                                         \
    const int y0_ = qbc_reflect101((y) - 1, h), y2_ = qbc_reflect101((y) + 1, h)
void qbc_blur3_f32(float *out, const float *in, int h, int w) {
    for (int y = 0; y < h; y++) {
        BOX3_ROWS(h, y);
        const float *r0 = in + (size_t)y0_ * w, *r1 = in + (size_t)y * w, *r2 = in + (size_t)y2_ * w;
        float *o = out + (size_t)y * w;
        /* the sum in the order dy = −1..1, dx = −1..1, as before */
#define BOX3F(xm, x, xp)                                                                                        \
    do {                                                                                                        \
        float s_ = 0;                                                                                           \
        s_ += r0[xm], s_ += r0[x], s_ += r0[xp], s_ += r1[xm], s_ += r1[x], s_ += r1[xp];                     \
        s_ += r2[xm], s_ += r2[x], s_ += r2[xp];                                                                \
        o[x] = s_ * (1.0f / 9.0f);                                                                              \
    } while (0)
        BOX3F(qbc_reflect101(-1, w), 0, qbc_reflect101(1, w));
#pragma omp simd
        for (int x = 1; x < w - 1; x++) BOX3F(x - 1, x, x + 1);
        if (w > 1) BOX3F(w - 2, w - 1, qbc_reflect101(w, w));
#undef BOX3F
    }
}

void qbc_blur3_u8(uint8_t *out, const uint8_t *in, int h, int w) {
    for (int y = 0; y < h; y++) {
        BOX3_ROWS(h, y);
        const uint8_t *r0 = in + (size_t)y0_ * w, *r1 = in + (size_t)y * w, *r2 = in + (size_t)y2_ * w;
        uint8_t *o = out + (size_t)y * w;
#define BOX3U(xm, x, xp)                                                                                        \
    do {                                                                                                        \
        int s_ = r0[xm] + r0[x] + r0[xp] + r1[xm] + r1[x] + r1[xp] + r2[xm] + r2[x] + r2[xp];                  \
        o[x] = (uint8_t)((s_ * 2 + 9) / 18); /* rne(s/9); ties impossible */                                   \
    } while (0)
        BOX3U(qbc_reflect101(-1, w), 0, qbc_reflect101(1, w));
#pragma omp simd
        for (int x = 1; x < w - 1; x++) BOX3U(x - 1, x, x + 1);
        if (w > 1) BOX3U(w - 2, w - 1, qbc_reflect101(w, w));
#undef BOX3U
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

/* Integer kernel: the f64 sum of before was exact (small integers), so an int sum is the same. */
void qbc_filter2d_u8_3x3(uint8_t *out, const uint8_t *in, int h, int w, const int k[9]) {
    for (int y = 0; y < h; y++) {
        BOX3_ROWS(h, y);
        const uint8_t *r0 = in + (size_t)y0_ * w, *r1 = in + (size_t)y * w, *r2 = in + (size_t)y2_ * w;
        uint8_t *o = out + (size_t)y * w;
#define F3(xm, x, xp)                                                                                           \
    do {                                                                                                        \
        int s_ = k[0] * r0[xm] + k[1] * r0[x] + k[2] * r0[xp] + k[3] * r1[xm] + k[4] * r1[x] + k[5] * r1[xp] + \
                 k[6] * r2[xm] + k[7] * r2[x] + k[8] * r2[xp];                                                  \
        o[x] = (uint8_t)(s_ < 0 ? 0 : s_ > 255 ? 255 : s_);                                                    \
    } while (0)
        F3(qbc_reflect101(-1, w), 0, qbc_reflect101(1, w));
#pragma omp simd
        for (int x = 1; x < w - 1; x++) F3(x - 1, x, x + 1);
        if (w > 1) F3(w - 2, w - 1, qbc_reflect101(w, w));
#undef F3
    }
}
#undef BOX3_ROWS

/* ---------------- per-thread scratch ---------------- */

/* QBC_CACHE_SLOTS more buffers that keep their contents for a key (replaced round-robin) */
#define QBC_CACHE_SLOTS 8
typedef struct {
    void *p[QBC_SCRATCH_SLOTS + QBC_CACHE_SLOTS];
    size_t cap[QBC_SCRATCH_SLOTS + QBC_CACHE_SLOTS];
    uint64_t key[QBC_CACHE_SLOTS];
    int next;
} scratch_set;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *v) {
    scratch_set *s = v;
    for (int i = 0; i < QBC_SCRATCH_SLOTS + QBC_CACHE_SLOTS; i++) free(s->p[i]);
    free(s);
}
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

static scratch_set *scratch_get(void) {
    pthread_once(&scratch_once, scratch_init);
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)) || pthread_setspecific(scratch_key, s)) {
            free(s);
            qb_error(QB_EXIT_FAIL, "out of memory");
            return NULL;
        }
    }
    return s;
}

static void *slot_grow(scratch_set *s, int slot, size_t bytes) {
    if (s->cap[slot] < bytes) {
        free(s->p[slot]);
        s->cap[slot] = 0;
        size_t want = bytes + bytes / 4;
        if (!(s->p[slot] = qb_malloc(want))) return NULL;
        s->cap[slot] = want;
    }
    return s->p[slot];
}

void *qbc_scratch(int slot, size_t bytes) {
    scratch_set *s = scratch_get();
    return s ? slot_grow(s, slot, bytes) : NULL;
}

void *qbc_cache(uint64_t key, size_t bytes, int *fresh) {
    scratch_set *s = scratch_get();
    if (!s) return NULL;
    *fresh = 0;
    for (int i = 0; i < QBC_CACHE_SLOTS; i++)
        if (s->p[QBC_SCRATCH_SLOTS + i] && s->key[i] == key && s->cap[QBC_SCRATCH_SLOTS + i] >= bytes)
            return s->p[QBC_SCRATCH_SLOTS + i];
    int i = s->next;
    s->next = (i + 1) % QBC_CACHE_SLOTS;
    s->key[i] = key, *fresh = 1;
    void *p = slot_grow(s, QBC_SCRATCH_SLOTS + i, bytes);
    if (!p) s->key[i] = 0;
    return p;
}

int qbc_hsv_affine(uint8_t *const out[6], const uint8_t *in, int S, int channel, const double mult[6],
                   const double add[6], unsigned mask) {
    double *pl = qbc_scratch(0, (size_t)7 * S * sizeof(double)); /* one row as r, g, b, h, s, v, c' planes */
    if (!pl) return QB_EXIT_FAIL;
    double *r = pl, *g = r + S, *b = g + S, *h = b + S, *s = h + S, *v = s + S, *c2 = v + S;
    const double *c = channel == 1 ? s : v;
    for (int y = 0; y < S; y++) {
        const uint8_t *x = in + (size_t)y * S * 3;
#pragma omp simd
        for (int j = 0; j < S; j++) /* = lut[x[·]] */
            r[j] = qbc_div255((double)x[3 * j]), g[j] = qbc_div255((double)x[3 * j + 1]), b[j] = qbc_div255((double)x[3 * j + 2]);
        qbc_rgb2hsv_row(h, s, v, r, g, b, S);
        for (int sev = 1; sev <= 5; sev++) {
            if (!(mask >> sev & 1)) continue;
            double m = mult[sev], a = add[sev];
#pragma omp simd
            for (int j = 0; j < S; j++) {
                double t = c[j] * m + a; /* mult 1 is exact: v + c as the reference */
                c2[j] = t < 0 ? 0 : t > 1 ? 1 : t;
            }
            qbc_hsv2rgb_row(r, g, b, h, channel == 1 ? c2 : s, channel == 1 ? v : c2, S);
            qbc_out8n_planes3(out[sev] + (size_t)y * S * 3, r, (size_t)S, (uint8_t *)c2); /* r, g, b contiguous; c2 free */
        }
    }
    return 0;
}
