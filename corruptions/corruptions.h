/* corruptions.h — the 19 ImageNet-C corruptions (hendrycks/robustness) at severities 1–5 for
 * three presets, and their registry. Spec: corruptions.md (section numbers
 * below refer to it).
 *
 * Every corruption maps an S×S RGB8 image to an S×S RGB8 image (the reference's float result
 * truncated, §2.3). Randomness comes from a qb_crng: either the counter-based qb_rng stream
 * keyed by (seed, image id, "corruption/severity") — the default, independent of threads and
 * order — or NumPy's legacy RandomState (MT19937) seeded with `seed` before each call, which
 * reproduces the reference scripts' draws (§7.3, Appendix A). */
#ifndef QB_CORRUPTIONS_H
#define QB_CORRUPTIONS_H
#include "qb.h"
#include "rng.h"
#include "image.h"

typedef enum { QB_PRESET_IMAGENET = 0, QB_PRESET_TINYIMAGENET = 1, QB_PRESET_CIFAR = 2, QB_N_PRESETS = 3 } qb_preset;

int qb_preset_parse(const char *s, qb_preset *out);   /* "imagenet" etc.; QB_EXIT_USAGE */
const char *qb_preset_name(qb_preset p);
int qb_preset_size(qb_preset p);                      /* 224, 64, 32 */

/* ---- random source ---- */
typedef enum { QB_CRNG_COUNTER = 0, QB_CRNG_NUMPY = 1 } qb_crng_kind;

typedef struct {
    qb_crng_kind kind;
    qb_rng ctr;            /* QB_CRNG_COUNTER */
    uint32_t mt[624];      /* QB_CRNG_NUMPY: MT19937 state */
    int pos;
    int has_gauss;
    double gauss;
} qb_crng;

/* Counter stream keyed by (seed, image id, "<corruption>/<severity>"). */
void qb_crng_counter(qb_crng *r, uint64_t seed, uint64_t image_id, const char *corruption, int severity);
/* NumPy np.random.seed(seed) (seed < 2^32). */
void qb_crng_numpy(qb_crng *r, uint32_t seed);
double qb_crng_uniform(qb_crng *r);                   /* [0, 1) */
double qb_crng_normal(qb_crng *r);                    /* N(0, 1) */
long qb_crng_randint(qb_crng *r, long lo, long hi);   /* lo ≤ v < hi */
long qb_crng_poisson(qb_crng *r, double lam);         /* NumPy's legacy algorithm on this source */
uint32_t qb_crng_next32(qb_crng *r);

/* ---- registry ---- */
#define QB_N_CORRUPTIONS 19
#define QB_N_COMMON 15

/* Frost textures (§4.9), decoded and rescaled for one preset. */
typedef struct {
    int w[5], h[5];
    uint8_t *rgb[5];       /* frost1.png … frost5.jpg (frost6 is never drawn) */
} qb_frost;

/* Load the five textures from dir and rescale for the preset (P14). QB_EXIT_DATA if missing. */
int qb_frost_load(qb_frost *f, const char *dir, qb_preset p);
void qb_frost_free(qb_frost *f);
/* The texture folder: $QUESTBENCH_DATA/frost if set, else frost/ relative to
 * the current directory. Writes into buf; returns buf. */
const char *qb_frost_default_dir(char *buf, size_t len);

/* What a corruption needs besides the image. */
typedef struct {
    qb_preset preset;
    int S;
    const qb_frost *frost; /* required by frost only */
} qb_corrupt_ctx;

/* out, in: S×S×3 RGB8 (out != in). sev in 1..5. Returns 0 or QB_EXIT_* after qb_error. */
typedef int (*qb_corrupt_fn)(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);

/* Several severities of a deterministic corruption at once (bit s of mask: severity s, into
 * out[s]), sharing the work they have in common; outputs equal the one-severity function's. */
typedef int (*qb_corrupt_sevs_fn)(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx);

typedef struct {
    const char *name;
    const char *group;     /* noise, blur, weather, digital, extra */
    qb_corrupt_fn fn;        /* NULL: computed through sevs, one severity at a time too */
    int stochastic;
    qb_corrupt_sevs_fn sevs; /* NULL: severities computed one by one with fn */
} qb_corruption;

extern const qb_corruption qb_corruptions[QB_N_CORRUPTIONS]; /* in the scripts' order; first 15 = common */
int qb_corruption_find(const char *name);             /* index or -1 */

/* Parse a comma-separated list of names and groups (noise, blur, weather, digital, extra,
 * common, all) into a selection mask, in registry order: sel[i] = 1 if chosen.
 * QB_EXIT_USAGE naming the unknown entry. */
int qb_corruption_select(const char *list, int sel[QB_N_CORRUPTIONS]);
/* Parse "1-5", "3", "1,3,5" into sev[1..5]. QB_EXIT_USAGE. */
int qb_severity_select(const char *list, int sev[6]);

/* Apply corruption `idx` at `sev` with a fresh stream for (seed, image id). */
int qb_corrupt(uint8_t *out, const uint8_t *in, int idx, int sev, qb_crng_kind kind, uint64_t seed,
               uint64_t image_id, const qb_corrupt_ctx *ctx);

/* The severities in mask (bit s = severity s, 1..5) of corruption idx into out[s], each equal to
 * qb_corrupt(out[s], in, idx, s, …); corruptions with shared work across severities (zoom_blur:
 * the zoom factors common to several severities; brightness and saturate: the HSV conversion)
 * do it once. QB_EXIT_USAGE for an empty or out-of-range mask. */
int qb_corrupt_sevs(uint8_t *const out[6], const uint8_t *in, int idx, unsigned mask, qb_crng_kind kind,
                    uint64_t seed, uint64_t image_id, const qb_corrupt_ctx *ctx);

/* Bring an image to the preset's size as the reference pipeline did (§2.1): an image already
 * S×S is copied; imagenet: shorter side to 256 (PIL bilinear, long side truncated), centre
 * crop 224; tinyimagenet: bilinear resize to 64×64; cifar: must already be 32×32.
 * QB_EXIT_DATA (naming label) if the image is smaller than S on a side. dst allocated here. */
int qb_corrupt_prepare(qb_image *dst, const qb_image *src, qb_preset p, const char *label);

/* JPEG round trip through libjpeg(-turbo) defaults (baseline, 4:2:0, ISLOW), as Pillow's
 * save(quality=q) then decode (P10). */
int qb_jpeg_roundtrip(uint8_t *out, const uint8_t *in, int w, int h, int quality);
/* Write RGB8 as JPEG (Pillow's defaults: 4:2:0, quality q), atomically. QB_EXIT_IO. */
int qb_image_save_jpeg(const qb_image *img, const char *path, int quality);

/* AlexNet top-1 errors (§5.2): [corruption][severity-1], and the clean error. */
extern const double qb_alexnet_err[QB_N_CORRUPTIONS][5];
extern const double qb_alexnet_clean_err;

/* ---- individual corruptions (used by the registry and tests) ---- */
int qb_gaussian_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_shot_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_impulse_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_speckle_noise(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_defocus_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_glass_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_motion_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_zoom_blur_sevs(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx);
int qb_gaussian_blur(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_snow(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_frost_corrupt(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_fog(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_brightness_sevs(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx);
int qb_spatter(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_contrast(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_elastic_transform(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_pixelate(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_jpeg_compression(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx);
int qb_saturate_sevs(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx);

#endif
