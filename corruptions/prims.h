/* prims.h — the library primitives the reference corruptions call (corruptions.md §3, P1–P14),
 * reimplemented to match SciPy / scikit-image / OpenCV / ImageMagick / Pillow numerics. Internal. */
#ifndef QB_CORRUPTIONS_PRIMS_H
#define QB_CORRUPTIONS_PRIMS_H
#include "corruptions.h"
#include <math.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

/* P1: scipy.ndimage.gaussian_filter over axes 0 and 1 of an (h, w, c) interleaved array,
 * channels independent. reflect = 0: mode 'nearest'; 1: SciPy 'reflect'. f64 and f32 flavours
 * (f32 stores each pass's result in f32, as SciPy does). */
int qbc_gauss_f64(double *a, int h, int w, int c, double sigma, int reflect, double truncate);
int qbc_gauss_f32(float *a, int h, int w, int c, double sigma, int reflect, double truncate);
/* P1 on np square n×n single-channel f64 planes (contiguous), each axis's kernel folded onto the
 * n samples (an n×n matrix) and applied as two f32 GEMMs: O(n³) whatever the radius, ~1e−7
 * relative error. For elastic's displacement fields, which are scaled to pixels (errors
 * < 1e−4 px), not for images. Scratch slots 6 and 7. */
int qbc_gauss_planes_gemm(float *a, int np, int n, double sigma, int reflect, double truncate);
/* The f64 flavour on u = in/255 (uint8), written as qbc_out8(·) (mode 0) or qbc_trunc8(255·)
 * (mode 1). out != in. */
int qbc_gauss_u8(uint8_t *out, const uint8_t *in, int h, int w, int c, double sigma, int reflect, double truncate,
                 int mode);

/* P5: clipped_zoom of an S×S×c array by factor z (scipy zoom order 1, corner aligned).
 * qbc_zoom_geom: crop offset `top`, and per output index o (S ≤ 512) the two crop samples
 * i0[o], j0[o] and the weight f[o] of j0; returns the crop side. */
int qbc_zoom_geom(int S, double z, int *top, int *i0, int *j0, double *f);
int qbc_clipped_zoom_f64(double *out, const double *in, int S, int c, double z);

/* P6: ImageMagick motion blur of an 8-bit (h, w, c) image. */
int qbc_motion_blur_u8(uint8_t *out, const uint8_t *in, int h, int w, int c, double radius, double sigma,
                       double angle_deg);

/* P7: plasma fractal N×N (N power of two) with decay d, values in [0, 1]. */
int qbc_plasma(double *a, int N, double decay, qb_crng *rng); /* 0, or QB_EXIT_FAIL (out of memory) */


/* P8: scikit-image rgb2hsv / hsv2rgb (f64) over n pixels held as planes (r, g, b) ↔ (h, s, v),
 * written with selects so the loops vectorise. hsv2rgb expects h in [0, 1], as rgb2hsv gives. */
void qbc_rgb2hsv_row(double *h, double *s, double *v, const double *r, const double *g, const double *b, int n);
void qbc_hsv2rgb_row(double *r, double *g, double *b, const double *h, const double *s, const double *v, int n);
/* skimage rgb2hsv → one HSV channel c (1 = saturation, 2 = value) set to clip(c·mult + add, 0, 1)
 * → hsv2rgb → uint8, row by row (brightness: v + c; saturate: s·mult + add). S×S RGB. For each
 * severity s in mask (bits 1–5), with mult[s], add[s], into out[s]: the rgb2hsv of a row is
 * computed once for all of them. */
int qbc_hsv_affine(uint8_t *const out[6], const uint8_t *in, int S, int channel, const double mult[6],
                   const double add[6], unsigned mask);

/* P11: OpenCV warpAffine(INTER_LINEAR, BORDER_REFLECT_101) of an S×S×3 f32 image with the
 * forward affine A (2×3) — inverted internally, 1/32-pixel fixed-point mapping. in and out hold
 * S·S·3 floats plus one of padding (read and written past the last pixel by the vector loads). */
void qbc_warp_affine_f32(float *out, const float *in, int S, const double A[6]);
/* OpenCV getAffineTransform(src, dst) for three (x, y) points. */
void qbc_affine_from_points(const float src[6], const float dst[6], double A[6]);

/* P13: OpenCV pieces used by spatter (uint8 / f32, single channel, h×w). */
void qbc_canny(uint8_t *out, const uint8_t *in, int h, int w, int lo, int hi);
void qbc_distance_transform(float *out, const uint8_t *in, int h, int w);
void qbc_blur3_f32(float *out, const float *in, int h, int w);
void qbc_blur3_u8(uint8_t *out, const uint8_t *in, int h, int w);
void qbc_equalize_hist(uint8_t *out, const uint8_t *in, int n);
void qbc_filter2d_u8_3x3(uint8_t *out, const uint8_t *in, int h, int w, const int k[9]);

/* ---- bulk random draws and scratch (crng.c, prims.c) ---- */
/* n draws in stream order. NumPy source: exactly n calls of qb_crng_uniform / qb_crng_randint /
 * qb_crng_normal (bit-identical to the reference's draws). Counter stream: bulk SplitMix64 words
 * of the keyed stream; normals by a 256-layer ziggurat (exact N(0,1), one word per draw mostly). */
void qbc_uniforms(qb_crng *r, double *out, size_t n);
/* n raw 64-bit words of the stream (counter: the bulk words; NumPy: two 32-bit draws each) */
void qbc_words(qb_crng *r, uint64_t *out, size_t n);
/* n × qb_crng_uniform (not qbc_uniforms' sequence), in bulk */
void qbc_uniforms_exact(qb_crng *r, double *out, size_t n);
/* out[i] = (the i-th uniform of qbc_uniforms < a): the same draws, compared without doubles */
void qbc_below(qb_crng *r, double a, uint8_t *out, size_t n);
void qbc_randints(qb_crng *r, long lo, long hi, int *out, size_t n);
void qbc_normals(qb_crng *r, double *out, size_t n);

/* NumPy's legacy poisson with its per-λ constants computed once (bit-identical draws). */
typedef struct { double lam, L, sl, ll, b, a, ia, vr, logia; } qbc_poisson;
void qbc_poisson_prep(qbc_poisson *P, double lam);
long qbc_poisson_draw(qb_crng *r, const qbc_poisson *P);

/* A per-thread buffer of at least `bytes` (64-byte aligned), reused by later calls on the same
 * thread with the same slot (0..QBC_SCRATCH_SLOTS−1); contents are not preserved across calls
 * that grow it. NULL after qb_error on allocation failure. Freed when the thread exits. */
/* Slots in use: a corruption's own buffers 0–3 (it holds them across its calls below); canny 3,
 * distance transform 4, folded Gaussian 4, motion blur 5, Gaussian 6 and 7. */
#define QBC_SCRATCH_SLOTS 8
void *qbc_scratch(int slot, size_t bytes);
/* A per-thread buffer of at least `bytes` that keeps its contents between calls for the same
 * key (a few keys at a time): *fresh = 1 when the caller must (re)fill it. NULL on failure. */
void *qbc_cache(uint64_t key, size_t bytes, int *fresh);

/* x/255 correctly rounded for the integers 0 ≤ x ≤ 255 (all 256 checked by the tests): a multiply
 * and two FMAs (Markstein's correction), which vectorise, instead of a division, which is slow */
static inline double qbc_div255(double x) {
    double q = x * (1.0 / 255.0);
    return fma(fma(-q, 255.0, x), 1.0 / 255.0, q);
}
static inline float qbc_div255f(float x) {
    float q = x * (1.0f / 255.0f);
    return fmaf(fmaf(-q, 255.0f, x), 1.0f / 255.0f, q);
}
/* NumPy's float64 → uint8 cast (truncation; x86 wraps values ≥ 256, NaN → 0). */
static inline uint8_t qbc_trunc8(double v) {
    if (!(v == v)) return 0;
    if (v >= 0 && v < 256) return (uint8_t)v;
    if (v > -2147483648.0 && v < 2147483648.0) return (uint8_t)(int32_t)v;
    return 0;
}
/* 255·clip01(v), truncated (the caller's np.uint8 of the reference's float result). */
static inline uint8_t qbc_out8(double v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)(v * 255.0);
}
/* qbc_out8 for values known not to be NaN, in a form loops can vectorise (same result). */
static inline uint8_t qbc_out8n(double v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)(int32_t)(v * 255.0);
}
/* qbc_out8n over n values (mode 0), the bare (uint8)(int32)(255·v) for values known to lie in
 * [0, 256) (mode 1), or (uint8)clamp(v, 0, 255) of values already in byte units (mode 2), 16 at a
 * time with AVX2: max/min/multiply/truncate, then two packs (GCC's own vectorisation of the select
 * chain and the narrowing takes blends and shuffles). Same values. */
static inline void qbc_out8n_row(uint8_t *o, const double *v, size_t n, int mode) {
    size_t j = 0;
#ifdef __AVX2__
    const __m256d z = _mm256_setzero_pd(), one = _mm256_set1_pd(1.0), k = _mm256_set1_pd(255.0);
    for (; j + 16 <= n; j += 16) {
        __m128i q[4];
        for (int t = 0; t < 4; t++) {
            __m256d x = _mm256_loadu_pd(v + j + 4 * t);
            if (mode == 2) /* v < 0 ? 0 : v > 255 ? 255 : v (no NaN in these callers) */
                q[t] = _mm256_cvttpd_epi32(_mm256_min_pd(_mm256_max_pd(x, z), k));
            else {
                if (!mode) x = _mm256_min_pd(_mm256_max_pd(x, z), one); /* max: x > 0 ? x : 0; min: x < 1 ? x : 1 */
                q[t] = _mm256_cvttpd_epi32(_mm256_mul_pd(x, k));
            }
        }
        if (mode == 1) /* the low byte of each int32, as the scalar cast (no saturation) */
            for (int t = 0; t < 4; t++) q[t] = _mm_and_si128(q[t], _mm_set1_epi32(0xFF));
        __m128i a = _mm_packs_epi32(q[0], q[1]), b = _mm_packs_epi32(q[2], q[3]);
        _mm_storeu_si128((__m128i *)(o + j), _mm_packus_epi16(a, b));
    }
#endif
    for (; j < n; j++)
        o[j] = mode == 2 ? (uint8_t)(v[j] < 0 ? 0 : v[j] > 255 ? 255 : v[j]) : mode ? (uint8_t)(int32_t)(v[j] * 255.0) : qbc_out8n(v[j]);
}
/* Three planes of n values (p, p + n, p + 2n) to interleaved bytes o[3j + k] = qbc_out8n(p[k·n + j]),
 * through qbc_out8n_row into b8 (3n bytes). */
static inline void qbc_out8n_planes3(uint8_t *o, const double *p, size_t n, uint8_t *b8) {
    qbc_out8n_row(b8, p, 3 * n, 0);
    for (size_t j = 0; j < n; j++) o[3 * j] = b8[j], o[3 * j + 1] = b8[n + j], o[3 * j + 2] = b8[2 * n + j];
}
static inline uint8_t qbc_out8f(float v) {
    v = v > 0 ? v : 0; /* two selects (maxss/minss), not branches; NaN → 0 */
    v = v < 1 ? v : 1;
    return (uint8_t)(int32_t)(v * 255.0f);
}
/* qbc_out8f over n floats, 32 at a time with AVX2 (as qbc_out8n_row). Same values. */
static inline void qbc_out8f_row(uint8_t *o, const float *v, size_t n) {
    size_t j = 0;
#ifdef __AVX2__
    const __m256 z = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), k = _mm256_set1_ps(255.0f);
    for (; j + 32 <= n; j += 32) {
        __m256i q[4];
        for (int t = 0; t < 4; t++) { /* max: x > 0 ? x : 0 (NaN → 0); min: x < 1 ? x : 1 */
            __m256 x = _mm256_min_ps(_mm256_max_ps(_mm256_loadu_ps(v + j + 8 * t), z), one);
            q[t] = _mm256_cvttps_epi32(_mm256_mul_ps(x, k));
        }
        /* packs work within 128-bit lanes: the permute puts the 32 bytes back in order */
        __m256i a = _mm256_packs_epi32(q[0], q[1]), b = _mm256_packs_epi32(q[2], q[3]);
        __m256i r = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(o + j), r);
    }
#endif
    for (; j < n; j++) o[j] = qbc_out8f(v[j]);
}
/* Four doubles in a register (GCC/Clang vector extension; AVX2 with -march=native, plain code
 * elsewhere): lets the hot filters keep their running sums in registers. Element-wise +, *
 * round exactly like the scalar operations (no contraction under -std=c11). */
typedef double qbc_v4d __attribute__((vector_size(32)));
typedef float qbc_v4f __attribute__((vector_size(16)));
static inline qbc_v4f qbc_ld4f(const float *p) { qbc_v4f v; memcpy(&v, p, sizeof v); return v; }
/* four floats widened to four doubles (exact); with AVX one vcvtps2pd (GCC's generic conversion
 * splits it into halves and shuffles) */
#ifdef __AVX__
static inline qbc_v4d qbc_ld4f_d(const float *p) { return (qbc_v4d)_mm256_cvtps_pd(_mm_loadu_ps(p)); }
#else
static inline qbc_v4d qbc_ld4f_d(const float *p) { return __builtin_convertvector(qbc_ld4f(p), qbc_v4d); }
#endif
static inline qbc_v4d qbc_ld4(const double *p) { qbc_v4d v; memcpy(&v, p, sizeof v); return v; }
static inline void qbc_st4(double *p, qbc_v4d v) { memcpy(p, &v, sizeof v); }

static inline int qbc_reflect101(int i, int n) {
    if ((unsigned)i < (unsigned)n) return i; /* the common case, without the division */
    if (n == 1) return 0;
    int p = 2 * n - 2;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - i;
}
static inline int qbc_reflect(int i, int n) {
    if ((unsigned)i < (unsigned)n) return i;
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}
static inline int qbc_clampi(int i, int lo, int hi) { return i < lo ? lo : i > hi ? hi : i; }

#endif
