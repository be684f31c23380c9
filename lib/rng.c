/* rng.c — counter-based random streams (see rng.h). */
#include "rng.h"
#include <math.h>
#include <string.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

uint64_t qb_image_id(const char *rel_path) { return fnv1a(rel_path); }

qb_rng qb_rng_stream(uint64_t seed, uint64_t image_id, const char *purpose) {
    qb_rng r;
    r.key = mix64(mix64(mix64(seed + 0x9E3779B97F4A7C15ull) ^ image_id) ^ fnv1a(purpose));
    r.counter = 0;
    return r;
}

uint64_t qb_rng_u64(qb_rng *r) {
    /* two rounds of the finaliser over (key, counter): a keyed bijection of the counter */
    uint64_t c = r->counter++;
    return mix64(mix64(c * 0x9E3779B97F4A7C15ull + r->key) ^ r->key);
}

double qb_rng_uniform(qb_rng *r) { return (double)(qb_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

float qb_rng_uniformf(qb_rng *r) { return (float)(qb_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double qb_rng_normal(qb_rng *r) {
    double u1 = qb_rng_uniform(r), u2 = qb_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t qb_rng_below(qb_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t x;
    do x = qb_rng_u64(r);
    while (x >= lim);
    return x % n;
}
