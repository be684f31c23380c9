/* noise.c — gaussian_noise, shot_noise, impulse_noise, speckle_noise (corruptions.md 4.1–4.3, 4.16). */
#include "prims.h"
#include <math.h>
#include <string.h>

static const double gaussian_sigma[3][5] = {
    {0.08, 0.12, 0.18, 0.26, 0.38}, {0.04, 0.08, 0.12, 0.15, 0.18}, {0.04, 0.06, 0.08, 0.09, 0.10}};
static const double shot_c[3][5] = {{60, 25, 12, 5, 3}, {250, 100, 50, 30, 15}, {500, 250, 100, 75, 50}};
static const double impulse_amount[3][5] = {
    {0.03, 0.06, 0.09, 0.17, 0.27}, {0.01, 0.02, 0.05, 0.08, 0.14}, {0.01, 0.02, 0.03, 0.05, 0.07}};
static const double speckle_sigma[3][5] = {
    {0.15, 0.2, 0.35, 0.45, 0.6}, {0.15, 0.2, 0.25, 0.3, 0.35}, {0.06, 0.1, 0.12, 0.16, 0.2}};

/* Noise is drawn in bulk, in the order the reference draws it, a cache-sized chunk at a time
 * (consecutive bulk calls continue the same stream). */
#define NOISE_CHUNK 1024
int qb_gaussian_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double s = gaussian_sigma[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    double z[NOISE_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) {
        size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK;
        qbc_normals(rng, z, m);
        const uint8_t *x = in + i0;
        uint8_t *o = out + i0;
#pragma omp simd
        for (size_t j = 0; j < m; j++) z[j] = qbc_div255((double)x[j]) + s * z[j];
        qbc_out8n_row(o, z, m, 0);
    }
    return 0;
}

/* One input value's output distribution for the counter stream, as an alias table (Walker/Vose)
 * of N = 2^bits columns: a word's top bits pick the column, its low 32 bits are compared with the
 * column's threshold. Each output byte's probability is kept to 2^−32/N. */
typedef struct { uint32_t thr; uint8_t self, alias; } shot_cell;
enum { SHOT_MAX_COLS = 256 };

/* Poisson(lam) counts → output bytes o8[k] (bytes merged), then Vose's construction. */
static int shot_table(shot_cell *T, double lam, const uint8_t *o8, int maxlen) {
    double P[256] = {0}, p = exp(-lam), tot = 0;
    for (int k = 0; k < maxlen; k++) { /* the inversion path's masses, stopped where it stops */
        P[o8[k]] += p, tot += p;
        if (k > lam && p < 1e-20) break;
        p *= lam / (k + 1);
    }
    int m = 0, out[256];
    for (int b = 0; b < 256; b++)
        if (P[b] > 0) out[m++] = b;
    int bits = 1;
    while ((1 << bits) < m) bits++;
    int N = 1 << bits, small[SHOT_MAX_COLS], large[SHOT_MAX_COLS], ns = 0, nl = 0;
    double q[SHOT_MAX_COLS];
    for (int i = 0; i < N; i++) {
        q[i] = i < m ? P[out[i]] * N / tot : 0;
        T[i].self = T[i].alias = (uint8_t)(i < m ? out[i] : out[0]);
        if (q[i] < 1) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns && nl) {
        int s = small[--ns], l = large[nl - 1];
        T[s].thr = (uint32_t)(q[s] * 4294967296.0), T[s].alias = T[l].self;
        q[l] -= 1 - q[s];
        if (q[l] < 1) nl--, small[ns++] = l;
    }
    /* what is left is full (up to rounding): always its own outcome */
    while (nl) T[large[--nl]].thr = 0, T[large[nl]].alias = T[large[nl]].self;
    while (ns) T[small[--ns]].thr = 0, T[small[ns]].alias = T[small[ns]].self;
    return bits;
}

/* Poisson(v/255·c)/c per value. NumPy source: NumPy's algorithm draw by draw, its constants
 * computed once per distinct value. Counter stream on large images: one word per value through
 * the alias table of its input value (built on first use, ≤ 256 per call). */
int qb_shot_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double c = shot_c[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    if (rng->kind == QB_CRNG_NUMPY || (double)n < 64 * c) {
        qbc_poisson *P = qbc_scratch(1, 256 * sizeof(qbc_poisson));
        if (!P) return QB_EXIT_FAIL;
        uint8_t have[256] = {0};
        for (size_t i = 0; i < n; i++) {
            if (!have[in[i]]) qbc_poisson_prep(&P[in[i]], in[i] / 255.0 * c), have[in[i]] = 1;
            out[i] = qbc_out8((double)qbc_poisson_draw(rng, &P[in[i]]) / c);
        }
        return 0;
    }
    int maxlen = (int)(c + 12 * sqrt(c) + 40);
    /* the tables depend on c only: kept per thread between calls (and images), built on first use */
    size_t tbytes = (size_t)256 * SHOT_MAX_COLS * sizeof(shot_cell);
    uint64_t key;
    memcpy(&key, &c, sizeof key), key ^= 0x9E3779B97F4A7C15ull; /* c's bits, tagged */
    uint64_t *w = qbc_scratch(0, 256 * sizeof(uint64_t));
    uint8_t *o8 = qbc_scratch(3, (size_t)maxlen);
    int fresh;
    uint8_t *blob = w && o8 ? qbc_cache(key, tbytes + 256, &fresh) : NULL;
    if (!blob) return QB_EXIT_FAIL;
    shot_cell *tab = (shot_cell *)blob;
    uint8_t *shift = blob + tbytes; /* 64 − bits of value v's table; 0: not built yet */
    if (fresh) memset(shift, 0, 256);
    for (int k = 0; k < maxlen; k++) o8[k] = qbc_out8((double)k / c); /* the output of count k */
    for (size_t i0 = 0; i0 < n; i0 += 256) {
        size_t m = n - i0 < 256 ? n - i0 : 256;
        qbc_words(rng, w, m);
        for (size_t j = 0; j < m; j++) {
            int v = in[i0 + j];
            shot_cell *T = tab + (size_t)v * SHOT_MAX_COLS;
            if (!shift[v]) shift[v] = (uint8_t)(64 - shot_table(T, v / 255.0 * c, o8, maxlen));
            shot_cell e = T[w[j] >> shift[v]];
            out[i0 + j] = (uint32_t)w[j] < e.thr ? e.self : e.alias;
        }
    }
    return 0;
}

/* Value j of a chunk: flipped = the j-th 32-bit half of w below T, salted = bit j of the words
 * after the (m + 1)/2 flip words; out = flipped ? (salted ? 255 : 0) : in. 32 values at a time
 * with AVX2 (unsigned compares through the sign flip, the salt bits spread to bytes with a shuffle
 * and a bit mask), the rest one by one: the same values. */
static void impulse_merge(uint8_t *o, const uint8_t *x, const uint64_t *w, size_t m, uint64_t T) {
    const uint64_t *sw = w + (m + 1) / 2;
    size_t j = 0;
#ifdef __AVX2__
    if (T < 4294967296ull) {
        const __m256i sign = _mm256_set1_epi32((int)0x80000000u), tx = _mm256_set1_epi32((int)((uint32_t)T ^ 0x80000000u));
        const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                                3, 3, 3, 3, 3, 3, 3);
        const __m256i bit = _mm256_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16,
                                             32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
        for (; j + 32 <= m; j += 32) {
            __m256i c[4];
            for (int t = 0; t < 4; t++) /* halves j + 8t .. j + 8t + 7, below T */
                c[t] = _mm256_cmpgt_epi32(tx, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(w + j / 2 + 4 * t)), sign));
            __m256i f = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
            f = _mm256_permutevar8x32_epi32(f, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            __m256i sb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)(uint32_t)(sw[j >> 6] >> (j & 63))), spread);
            sb = _mm256_cmpeq_epi8(_mm256_and_si256(sb, bit), bit);
            __m256i xv = _mm256_loadu_si256((const __m256i *)(x + j));
            _mm256_storeu_si256((__m256i *)(o + j), _mm256_or_si256(_mm256_and_si256(sb, f), _mm256_andnot_si256(f, xv)));
        }
    }
#endif
    for (; j < m; j++) {
        int f = (uint64_t)(uint32_t)(w[j >> 1] >> (32 * (j & 1))) < T, sv = (int)(sw[j >> 6] >> (j & 63) & 1);
        o[j] = f ? (sv ? 255 : 0) : x[j];
    }
}

/* scikit-image random_noise(mode='s&p', amount=a): a "flipped" field, then a "salted" field.
 * NumPy source: two uniforms per value, all flipped draws then all salted ones. Counter stream:
 * per chunk of values, flipped = a 32-bit half of a word below round(a·2^32) (two values per
 * word), salted = one bit of a word (64 values per word) — the same Bernoulli(a) and
 * Bernoulli(½) fields (a resolved to 2^−32), from a sixteenth of the words. */
int qb_impulse_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double a = impulse_amount[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    if (rng->kind != QB_CRNG_COUNTER) {
        qbc_below(rng, a, out, n); /* flipped */
        uint8_t salt[NOISE_CHUNK];
        for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) { /* salted: the next n draws, < 0.5 */
            size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK;
            qbc_below(rng, 0.5, salt, m);
            for (size_t j = 0; j < m; j++) out[i0 + j] = out[i0 + j] ? (salt[j] ? 255 : 0) : in[i0 + j];
        }
        return 0;
    }
    double tf = nearbyint(a * 4294967296.0);
    uint64_t T = tf <= 0 ? 0 : tf >= 4294967296.0 ? 4294967296ull : (uint64_t)tf;
    uint64_t w[NOISE_CHUNK / 2 + NOISE_CHUNK / 64];
    for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) {
        size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK, nf = (m + 1) / 2, ns = (m + 63) / 64;
        qbc_words(rng, w, nf + ns);
        impulse_merge(out + i0, in + i0, w, m, T);
    }
    return 0;
}

int qb_speckle_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    double s = speckle_sigma[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S * 3;
    double z[NOISE_CHUNK];
    for (size_t i0 = 0; i0 < n; i0 += NOISE_CHUNK) {
        size_t m = n - i0 < NOISE_CHUNK ? n - i0 : NOISE_CHUNK;
        qbc_normals(rng, z, m);
        const uint8_t *x = in + i0;
        uint8_t *o = out + i0;
#pragma omp simd
        for (size_t j = 0; j < m; j++) {
            double u = qbc_div255((double)x[j]);
            z[j] = u + u * (s * z[j]);
        }
        qbc_out8n_row(o, z, m, 0);
    }
    return 0;
}
