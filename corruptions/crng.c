/* crng.c — the corruptions' random source: the counter stream of lib/rng.h, or NumPy's legacy
 * RandomState (MT19937 + its double, normal, randint and poisson draws), corruptions.md App. A. */
#include "prims.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

void qb_crng_counter(qb_crng *r, uint64_t seed, uint64_t image_id, const char *corruption, int severity) {
    char purpose[64];
    snprintf(purpose, sizeof purpose, "%s/%d", corruption, severity);
    r->kind = QB_CRNG_COUNTER;
    r->ctr = qb_rng_stream(seed, image_id, purpose);
    r->pos = 0, r->has_gauss = 0, r->gauss = 0;
}

void qb_crng_numpy(qb_crng *r, uint32_t seed) {
    r->kind = QB_CRNG_NUMPY;
    r->mt[0] = seed;
    for (int i = 1; i < 624; i++) r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->pos = 624;
    r->has_gauss = 0, r->gauss = 0;
}

static void mt_twist(uint32_t *mt) {
    for (int i = 0; i < 624; i++) {
        uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % 624] & 0x7FFFFFFFu);
        mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908B0DFu : 0u);
    }
}

uint32_t qb_crng_next32(qb_crng *r) {
    if (r->kind == QB_CRNG_COUNTER) return (uint32_t)(qb_rng_u64(&r->ctr) >> 32);
    if (r->pos >= 624) { mt_twist(r->mt); r->pos = 0; }
    uint32_t y = r->mt[r->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9D2C5680u;
    y ^= (y << 15) & 0xEFC60000u;
    y ^= y >> 18;
    return y;
}

double qb_crng_uniform(qb_crng *r) {
    if (r->kind == QB_CRNG_COUNTER) return qb_rng_uniform(&r->ctr);
    uint32_t a = qb_crng_next32(r) >> 5, b = qb_crng_next32(r) >> 6;
    return ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
}

double qb_crng_normal(qb_crng *r) {
    if (r->has_gauss) { r->has_gauss = 0; return r->gauss; }
    if (r->kind == QB_CRNG_COUNTER) {
        /* Box–Muller on two counter uniforms, both outputs used (half the draws of qb_rng_normal) */
        double u1 = qb_rng_uniform(&r->ctr), u2 = qb_rng_uniform(&r->ctr);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        r->gauss = rad * sin(th), r->has_gauss = 1;
        return rad * cos(th);
    }
    double x1, x2, r2;
    do {
        x1 = 2.0 * qb_crng_uniform(r) - 1.0;
        x2 = 2.0 * qb_crng_uniform(r) - 1.0;
        r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    double f = sqrt(-2.0 * log(r2) / r2);
    r->gauss = f * x1, r->has_gauss = 1;
    return f * x2;
}

long qb_crng_randint(qb_crng *r, long lo, long hi) {
    if (r->kind == QB_CRNG_COUNTER) {
        /* Lemire's multiply-shift with rejection: unbiased, and no division in the common case */
        uint64_t n = (uint64_t)(hi - lo);
        if (n <= 0xFFFFFFFFu) {
            uint64_t m = (qb_rng_u64(&r->ctr) >> 32) * n;
            uint32_t l = (uint32_t)m;
            if (l < n) {
                uint32_t t = (uint32_t)(-(uint32_t)n) % (uint32_t)n;
                while (l < t) { m = (qb_rng_u64(&r->ctr) >> 32) * n; l = (uint32_t)m; }
            }
            return lo + (long)(m >> 32);
        }
        return lo + (long)qb_rng_below(&r->ctr, n);
    }
    uint32_t rng = (uint32_t)(hi - lo - 1);
    if (rng == 0) return lo;
    uint32_t mask = rng;
    mask |= mask >> 1, mask |= mask >> 2, mask |= mask >> 4, mask |= mask >> 8, mask |= mask >> 16;
    uint32_t v;
    do v = qb_crng_next32(r) & mask;
    while (v > rng);
    return lo + (long)v;
}

/* NumPy's loggam for the PTRS acceptance test. */
static double loggam(double x) {
    static const double a[10] = {8.333333333333333e-02, -2.777777777777778e-03, 7.936507936507937e-04,
                                 -5.952380952380952e-04, 8.417508417508418e-04, -1.917526917526918e-03,
                                 6.410256410256410e-03, -2.955065359477124e-02, 1.796443723688307e-01,
                                 -1.39243221690590e+00};
    if (x == 1.0 || x == 2.0) return 0.0;
    double x0 = x;
    long n = 0;
    if (x <= 7.0) { n = (long)(7 - x); x0 = x + n; }
    double x2 = 1.0 / (x0 * x0), gl0 = a[9];
    for (int k = 8; k >= 0; k--) gl0 = gl0 * x2 + a[k];
    double gl = gl0 / x0 + 0.5 * log(2.0 * M_PI) + (x0 - 0.5) * log(x0) - x0;
    if (x <= 7.0)
        for (long k = 1; k <= n; k++) { gl -= log(x0 - 1.0); x0 -= 1.0; }
    return gl;
}

void qbc_poisson_prep(qbc_poisson *P, double lam) {
    P->lam = lam;
    if (lam >= 10) {
        P->sl = sqrt(lam), P->ll = log(lam), P->b = 0.931 + 2.53 * P->sl, P->a = -0.059 + 0.02483 * P->b;
        P->ia = 1.1239 + 1.1328 / (P->b - 3.4), P->vr = 0.9277 - 3.6224 / (P->b - 2);
        P->logia = log(P->ia);
    } else P->L = exp(-lam);
}

/* NumPy's legacy poisson (multiplication for λ < 10, PTRS otherwise) with the per-λ constants
 * precomputed: the same operations on the same values as computing them per draw. */
long qbc_poisson_draw(qb_crng *r, const qbc_poisson *P) {
    double lam = P->lam;
    if (lam <= 0) return 0;
    if (lam < 10) {
        double p = 1;
        long X = 0;
        for (;;) {
            p *= qb_crng_uniform(r);
            if (p > P->L) X++;
            else return X;
        }
    }
    double a = P->a, b = P->b;
    for (;;) {
        double U = qb_crng_uniform(r) - 0.5, V = qb_crng_uniform(r);
        double us = 0.5 - fabs(U);
        long k = (long)floor((2 * a / us + b) * U + lam + 0.43);
        if (us >= 0.07 && V <= P->vr) return k;
        if (k < 0 || (us < 0.013 && V > us)) continue;
        if (log(V) + P->logia - log(a / (us * us) + b) <= -lam + k * P->ll - loggam(k + 1)) return k;
    }
}

long qb_crng_poisson(qb_crng *r, double lam) {
    if (lam <= 0) return 0;
    qbc_poisson P;
    qbc_poisson_prep(&P, lam);
    return qbc_poisson_draw(r, &P);
}

/* ---------------- bulk draws (corruptions.md App. A; the counter path's fast samplers) ---------------- */

/* Bulk words of the counter stream: SplitMix64 (one finaliser round) over the stream's counter,
 * keyed by its key — half the work of qb_rng_u64's two rounds, still a keyed bijection of the
 * counter, so draws depend on (seed, image id, corruption, severity) and position only. */
static inline uint64_t ctr_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Four lanes at a time in a 4×u64 vector (GCC/Clang vector extension), the keyed counter
 * advanced by addition: key + (c0 + i)·G = key + c0·G + i·G mod 2^64, the same words. */
typedef uint64_t ctr_v4 __attribute__((vector_size(32)));
static inline ctr_v4 ctr_mix_v4(ctr_v4 x) { /* ctr_mix lane by lane */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
/* n words of the stream from its counter on: one finaliser round (two = 0), or the two rounds of
 * qb_rng_u64 (mix(mix(key + c·G) ^ key): its words exactly) */
static inline void ctr_fill_rounds(qb_rng *g, uint64_t *u, size_t n, int two) {
    const uint64_t G = 0x9E3779B97F4A7C15ull;
    uint64_t key = g->key, c0 = g->counter, z0 = key + c0 * G;
    ctr_v4 z = {z0, z0 + G, z0 + 2 * G, z0 + 3 * G};
    size_t i = 0;
    for (; i + 4 <= n; i += 4, z += 4 * G) {
        ctr_v4 x = ctr_mix_v4(z);
        if (two) x = ctr_mix_v4(x ^ key);
        memcpy(u + i, &x, sizeof x);
    }
    for (; i < n; i++) u[i] = two ? ctr_mix(ctr_mix(key + (c0 + i) * G) ^ key) : ctr_mix(key + (c0 + i) * G);
    g->counter = c0 + n;
}
static void ctr_fill(qb_rng *g, uint64_t *u, size_t n) { ctr_fill_rounds(g, u, n, 0); }
static inline uint64_t ctr_one(qb_rng *g) {
    uint64_t u;
    ctr_fill(g, &u, 1);
    return u;
}

void qbc_words(qb_crng *r, uint64_t *out, size_t n) {
    if (r->kind == QB_CRNG_COUNTER) ctr_fill(&r->ctr, out, n);
    else
        for (size_t i = 0; i < n; i++) {
            uint64_t hi = qb_crng_next32(r);
            out[i] = hi << 32 | qb_crng_next32(r);
        }
}

/* (word >> 11) · 2^−53 for m words, the 53-bit integer converted exactly as two 26/27-bit halves
 * through the 2^52 exponent trick (vectorisable, unlike u64 → double on AVX2) */
static void words_to_unit(double *out, const uint64_t *w, size_t m) {
    const double two52 = 4503599627370496.0;
#pragma omp simd
    for (size_t j = 0; j < m; j++) {
        uint64_t x = w[j] >> 11, bh = 0x4330000000000000ull | (x >> 26), bl = 0x4330000000000000ull | (x & 0x3FFFFFFu);
        double dh, dl;
        memcpy(&dh, &bh, 8), memcpy(&dl, &bl, 8);
        out[j] = ((dh - two52) * 67108864.0 + (dl - two52)) * (1.0 / 9007199254740992.0);
    }
}

/* n uniforms: the counter stream's bulk words (one round), or the given stream draw by draw;
 * two = 1: qb_crng_uniform's own values (the two-round words), in bulk */
static void uniforms_rounds(qb_crng *r, double *out, size_t n, int two) {
    if (r->kind != QB_CRNG_COUNTER) {
        for (size_t i = 0; i < n; i++) out[i] = qb_crng_uniform(r);
        return;
    }
    uint64_t buf[256];
    for (size_t i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        ctr_fill_rounds(&r->ctr, buf, m, two);
        words_to_unit(out + i, buf, m);
    }
}
void qbc_uniforms(qb_crng *r, double *out, size_t n) { uniforms_rounds(r, out, n, 0); }
void qbc_uniforms_exact(qb_crng *r, double *out, size_t n) { uniforms_rounds(r, out, n, 1); }

void qbc_below(qb_crng *r, double a, uint8_t *out, size_t n) {
    if (r->kind != QB_CRNG_COUNTER) {
        for (size_t i = 0; i < n; i++) out[i] = qb_crng_uniform(r) < a;
        return;
    }
    /* u = m·2^−53 with m = word >> 11 (exact), so u < a ⟺ m < ceil(a·2^53): integers only */
    double t = ceil(a * 9007199254740992.0);
    int64_t T = t <= 0 ? 0 : t >= 9007199254740992.0 ? (int64_t)9007199254740992 : (int64_t)t;
    uint64_t buf[256];
    for (size_t i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256;
        ctr_fill(&r->ctr, buf, m);
#pragma omp simd
        for (size_t j = 0; j < m; j++) out[i + j] = (int64_t)(buf[j] >> 11) < T;
    }
}

void qbc_randints(qb_crng *r, long lo, long hi, int *out, size_t n) {
    uint64_t span = (uint64_t)(hi - lo);
    if (r->kind != QB_CRNG_COUNTER || span > 0xFFFFFFFFu || span == 0) {
        for (size_t i = 0; i < n; i++) out[i] = (int)qb_crng_randint(r, lo, hi);
        return;
    }
    /* Lemire's multiply-shift on 32-bit halves of the words (low half, then high: two draws per
     * word), rejecting the biased low products: a rejected draw (probability < span/2^32) is
     * redrawn, in order, from fresh words after the chunk's */
    uint32_t t = (uint32_t)(-(uint32_t)span) % (uint32_t)span;
    uint64_t buf[256];
    for (size_t i = 0; i < n; i += 512) {
        size_t m = n - i < 512 ? n - i : 512;
        ctr_fill(&r->ctr, buf, (m + 1) / 2);
        uint32_t bad = 0;
        size_t nw = m / 2;
        int *o = out + i;
        uint32_t l32 = (uint32_t)lo; /* lo + q in 32-bit unsigned arithmetic (wraps; the sum lies in [lo, hi)) */
#pragma omp simd reduction(| : bad)
        for (size_t k = 0; k < nw; k++) { /* 32×32 → 64-bit products: one vpmuludq per half */
            uint64_t p0 = (buf[k] & 0xFFFFFFFFu) * span, p1 = (buf[k] >> 32) * span;
            bad |= ((uint32_t)p0 < t) | ((uint32_t)p1 < t);
            o[2 * k] = (int)(l32 + (uint32_t)(p0 >> 32)), o[2 * k + 1] = (int)(l32 + (uint32_t)(p1 >> 32));
        }
        if (m & 1) {
            uint64_t p = (buf[nw] & 0xFFFFFFFFu) * span;
            bad |= (uint32_t)p < t;
            o[m - 1] = (int)(l32 + (uint32_t)(p >> 32));
        }
        if (bad)
            for (size_t j = 0; j < m; j++) {
                uint64_t p = (uint64_t)(uint32_t)(buf[j >> 1] >> (32 * (j & 1))) * span;
                while ((uint32_t)p < t) p = (ctr_one(&r->ctr) >> 32) * span;
                out[i + j] = (int)(lo + (long)(p >> 32));
            }
    }
}

/* Ziggurat (Marsaglia & Tsang 2000, 256 layers, 52-bit abscissae, index and sign from bits of
 * the same word that do not overlap the abscissa): one u64 per normal on ≈ 99 % of draws, the
 * exact N(0, 1) otherwise through the wedge and tail tests. Counter stream only. */
#define ZIG_N 256
#define ZIG_R 3.6541528853610088
#define ZIG_V 4.92867323399e-3
static uint64_t zig_k[ZIG_N];
static double zig_w[ZIG_N], zig_f[ZIG_N], zig_ws[2 * ZIG_N]; /* zig_ws: zig_w, then −zig_w (bit 8: the sign) */
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

static void zig_init(void) {
    const double m = 4503599627370496.0; /* 2^52 */
    double dn = ZIG_R, tn = dn, q = ZIG_V / exp(-0.5 * dn * dn);
    zig_k[0] = (uint64_t)((dn / q) * m);
    zig_k[1] = 0;
    zig_w[0] = q / m, zig_w[ZIG_N - 1] = dn / m;
    zig_f[0] = 1.0, zig_f[ZIG_N - 1] = exp(-0.5 * dn * dn);
    for (int i = ZIG_N - 2; i >= 1; i--) {
        dn = sqrt(-2.0 * log(ZIG_V / dn + exp(-0.5 * dn * dn)));
        zig_k[i + 1] = (uint64_t)((dn / tn) * m);
        tn = dn;
        zig_f[i] = exp(-0.5 * dn * dn);
        zig_w[i] = dn / m;
    }
    for (int i = 0; i < ZIG_N; i++) zig_ws[i] = zig_w[i], zig_ws[ZIG_N + i] = -zig_w[i];
}

static inline double ctr_unif(qb_rng *g) { return (double)(ctr_one(g) >> 11) * (1.0 / 9007199254740992.0); }

/* The rejected part of one draw with word u: wedge test, tail, or a fresh word. */
static double zig_slow(qb_rng *g, uint64_t u) {
    for (;;) {
        int i = (int)(u & 0xFF);
        uint64_t a = (u >> 12) & 0xFFFFFFFFFFFFFull; /* 52 bits */
        double sgn = (u >> 8) & 1 ? -1.0 : 1.0;
        if (a < zig_k[i]) return sgn * (double)a * zig_w[i];
        if (i == 0) { /* tail beyond R */
            double x, y;
            do {
                x = -log1p(-ctr_unif(g)) / ZIG_R;
                y = -log1p(-ctr_unif(g));
            } while (y + y < x * x);
            return sgn * (ZIG_R + x);
        }
        double x = (double)a * zig_w[i];
        if (zig_f[i] + ctr_unif(g) * (zig_f[i - 1] - zig_f[i]) < exp(-0.5 * x * x)) return sgn * x;
        u = ctr_one(g);
    }
}

void qbc_normals(qb_crng *r, double *out, size_t n) {
    if (r->kind != QB_CRNG_COUNTER) {
        for (size_t i = 0; i < n; i++) out[i] = qb_crng_normal(r);
        return;
    }
    pthread_once(&zig_once, zig_init);
    uint64_t buf[256];
    size_t i = 0;
    while (i < n) {
        size_t m = n - i < 256 ? n - i : 256, j = 0; /* ≤ one output per word: i stays ≤ n */
        uint64_t c0 = r->ctr.counter;
        ctr_fill(&r->ctr, buf, m);
        while (j < m) {
            for (; j < m; j++, i++) {
                uint64_t u = buf[j];
                uint64_t a = (u >> 12) & 0xFFFFFFFFFFFFFull;
                if (a >= zig_k[u & 0xFF]) break;
                /* a < 2^52 to a double through the exponent trick; the signed width (bit 8 the
                 * sign): ±(a·w), the same value as sign · (a · w) */
                uint64_t b = a | 0x4330000000000000ull;
                double x;
                memcpy(&x, &b, 8);
                out[i] = (x - 4503599627370496.0) * zig_ws[u & 0x1FF];
            }
            if (j == m) break;
            /* word j rejected: finish that draw from the stream just after it; the words it
             * takes are the buffer's next ones (same counters), so the rest of the buffer stays
             * valid from where it stops */
            r->ctr.counter = c0 + j + 1;
            out[i++] = zig_slow(&r->ctr, buf[j]);
            j = (size_t)(r->ctr.counter - c0);
        }
        r->ctr.counter = c0 + j; /* just after the last word used (j ≥ m: already there) */
    }
}
