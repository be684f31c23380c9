/* fastmath.h — branch-free expf and erff that GCC can vectorise (no -ffast-math needed).
 * qb_expf: Cephes-style range reduction + degree-6 polynomial, ≈1 ulp on [-87, 88].
 * qb_erff: Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7), the same formula PyTorch's
 * vectorised CPU GELU (Vectorized<float>::erf) evaluates, so GELU matches PyTorch's
 * AVX path rather than libm's erff (they differ by at most ~1e-7). */
#ifndef QB_FASTMATH_H
#define QB_FASTMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float qb_expf(float x) {
    /* clamp: exp(-87.3) is the smallest normal; beyond 88.7 overflows */
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.72f ? 88.72f : x;
    /* n = round(x/ln2): adding and removing 1.5·2^23 rounds to an integer without a libm
     * call, so loops calling this vectorise (strict IEEE semantics keep the pair intact) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;   /* ln2 split in two for an exact first step */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

static inline float qb_erff(float x) {
    float ax = fabsf(x);
    float t = 1.0f / (0.3275911f * ax + 1.0f);
    float r = 1.061405429f;
    r = r * t - 1.453152027f;
    r = r * t + 1.421413741f;
    r = r * t - 0.284496736f;
    r = r * t + 0.254829592f;
    float y = 1.0f - r * t * qb_expf(-ax * ax);
    return copysignf(y, x);
}
#endif
