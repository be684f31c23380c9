/* rng.h — counter-based randomness: every draw is a pure function of (seed, image id,
 * purpose, counter), so results never depend on thread count, batch size or order.
 * The mixer is SplitMix64's finaliser applied to a combined key and counter. */
#ifndef QB_RNG_H
#define QB_RNG_H
#include <stdint.h>

typedef struct {
    uint64_t key;     /* derived from seed, image id and purpose */
    uint64_t counter; /* advanced by every draw */
} qb_rng;

/* A stable 64-bit id for an image: FNV-1a of its path relative to the data root. */
uint64_t qb_image_id(const char *rel_path);
/* A stream for (seed, image id, purpose); purpose is a short constant string such as
 * "gaussian_noise/3" or "pgd/restart0". */
qb_rng qb_rng_stream(uint64_t seed, uint64_t image_id, const char *purpose);

uint64_t qb_rng_u64(qb_rng *r);
double qb_rng_uniform(qb_rng *r);           /* [0, 1), 53 bits */
float qb_rng_uniformf(qb_rng *r);           /* [0, 1), 24 bits */
double qb_rng_normal(qb_rng *r);            /* N(0, 1), Box–Muller, one value per call */
uint64_t qb_rng_below(qb_rng *r, uint64_t n); /* uniform in [0, n), unbiased */

#endif
