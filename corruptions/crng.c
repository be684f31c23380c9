/* crng.c — the corruptions' random source: the counter stream of lib/rng.h, or NumPy's legacy
 * RandomState (MT19937 + its double, normal, randint and poisson draws), corruptions.md App. A. */
#include "corruptions.h"
#include <math.h>
#include <stdio.h>

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

long qb_crng_poisson(qb_crng *r, double lam) {
    if (lam <= 0) return 0;
    if (lam < 10) {
        double L = exp(-lam), p = 1;
        long X = 0;
        for (;;) {
            p *= qb_crng_uniform(r);
            if (p > L) X++;
            else return X;
        }
    }
    double sl = sqrt(lam), ll = log(lam), b = 0.931 + 2.53 * sl, a = -0.059 + 0.02483 * b;
    double ia = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
    for (;;) {
        double U = qb_crng_uniform(r) - 0.5, V = qb_crng_uniform(r);
        double us = 0.5 - fabs(U);
        long k = (long)floor((2 * a / us + b) * U + lam + 0.43);
        if (us >= 0.07 && V <= vr) return k;
        if (k < 0 || (us < 0.013 && V > us)) continue;
        if (log(V) + log(ia) - log(a / (us * us) + b) <= -lam + k * ll - loggam(k + 1)) return k;
    }
}
