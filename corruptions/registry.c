/* registry.c — corruption names, groups, presets, input preparation and the AlexNet baseline. */
#include "corruptions.h"
#include <stdlib.h>
#include <string.h>

const qb_corruption qb_corruptions[QB_N_CORRUPTIONS] = {
    {"gaussian_noise", "noise", qb_gaussian_noise, 1, NULL},
    {"shot_noise", "noise", qb_shot_noise, 1, NULL},
    {"impulse_noise", "noise", qb_impulse_noise, 1, NULL},
    {"defocus_blur", "blur", qb_defocus_blur, 0, NULL},
    {"glass_blur", "blur", qb_glass_blur, 1, NULL},
    {"motion_blur", "blur", qb_motion_blur, 1, NULL},
    {"zoom_blur", "blur", NULL, 0, qb_zoom_blur_sevs},
    {"snow", "weather", qb_snow, 1, NULL},
    {"frost", "weather", qb_frost_corrupt, 1, NULL},
    {"fog", "weather", qb_fog, 1, NULL},
    {"brightness", "weather", NULL, 0, qb_brightness_sevs},
    {"contrast", "digital", qb_contrast, 0, NULL},
    {"elastic_transform", "digital", qb_elastic_transform, 1, NULL},
    {"pixelate", "digital", qb_pixelate, 0, NULL},
    {"jpeg_compression", "digital", qb_jpeg_compression, 0, NULL},
    {"speckle_noise", "extra", qb_speckle_noise, 1, NULL},
    {"gaussian_blur", "extra", qb_gaussian_blur, 0, NULL},
    {"spatter", "extra", qb_spatter, 1, NULL},
    {"saturate", "extra", NULL, 0, qb_saturate_sevs},
};

/* §5.2: hendrycks/robustness README at 76d9393, torchvision AlexNet. */
const double qb_alexnet_err[QB_N_CORRUPTIONS][5] = {
    {0.69528, 0.82542, 0.93554, 0.98138, 0.99452}, {0.71224, 0.85108, 0.93574, 0.98182, 0.99146},
    {0.78374, 0.89808, 0.94870, 0.98720, 0.99548}, {0.65624, 0.73202, 0.85036, 0.91364, 0.94714},
    {0.64308, 0.75054, 0.88806, 0.91622, 0.93344}, {0.58430, 0.70048, 0.82108, 0.89750, 0.92638},
    {0.70008, 0.76992, 0.80784, 0.84198, 0.87198}, {0.71726, 0.88392, 0.86468, 0.91870, 0.94952},
    {0.61390, 0.79734, 0.88790, 0.89942, 0.93430}, {0.67474, 0.76050, 0.84378, 0.87260, 0.94500},
    {0.45140, 0.48502, 0.54048, 0.62166, 0.72440}, {0.64548, 0.76150, 0.88874, 0.97760, 0.99270},
    {0.52596, 0.70116, 0.55686, 0.64076, 0.80554}, {0.52218, 0.54620, 0.73728, 0.87092, 0.91262},
    {0.51002, 0.54718, 0.57294, 0.65458, 0.74778}, {0.66192, 0.74440, 0.90246, 0.94548, 0.97268},
    {0.54732, 0.70444, 0.82574, 0.89864, 0.95940}, {0.47196, 0.62194, 0.75052, 0.84132, 0.90182},
    {0.59342, 0.65514, 0.51174, 0.70834, 0.82260}};
const double qb_alexnet_clean_err = 0.43478;

static const char *preset_names[QB_N_PRESETS] = {"imagenet", "tinyimagenet", "cifar"};
static const int preset_sizes[QB_N_PRESETS] = {224, 64, 32};

int qb_preset_parse(const char *s, qb_preset *out) {
    for (int i = 0; i < QB_N_PRESETS; i++)
        if (!strcmp(s, preset_names[i])) { *out = (qb_preset)i; return 0; }
    return qb_error(QB_EXIT_USAGE, "unknown preset '%s' (expected imagenet, tinyimagenet or cifar)", s);
}
const char *qb_preset_name(qb_preset p) { return preset_names[p]; }
int qb_preset_size(qb_preset p) { return preset_sizes[p]; }

int qb_corruption_find(const char *name) {
    for (int i = 0; i < QB_N_CORRUPTIONS; i++)
        if (!strcmp(name, qb_corruptions[i].name)) return i;
    return -1;
}

int qb_corruption_select(const char *list, int sel[QB_N_CORRUPTIONS]) {
    memset(sel, 0, QB_N_CORRUPTIONS * sizeof(int));
    const char *s = list;
    int any = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char tok[64];
        if (len == 0 || len >= sizeof tok) return qb_error(QB_EXIT_USAGE, "--corruptions: bad entry in '%s'", list);
        memcpy(tok, s, len), tok[len] = 0;
        int found = 0;
        for (int i = 0; i < QB_N_CORRUPTIONS; i++) {
            const qb_corruption *c = &qb_corruptions[i];
            if (!strcmp(tok, "all") || (!strcmp(tok, "common") && i < QB_N_COMMON) || !strcmp(tok, c->group) ||
                !strcmp(tok, c->name))
                sel[i] = 1, found = 1;
        }
        if (!found)
            return qb_error(QB_EXIT_USAGE,
                            "--corruptions: unknown corruption or group '%s' (groups: noise, blur, weather, digital, "
                            "extra, common, all)", tok);
        any = 1;
        s += len;
        if (*s == ',') s++;
    }
    if (!any) return qb_error(QB_EXIT_USAGE, "--corruptions: empty list");
    return 0;
}

int qb_severity_select(const char *list, int sev[6]) {
    memset(sev, 0, 6 * sizeof(int));
    const char *s = list;
    int any = 0;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) return qb_error(QB_EXIT_USAGE, "--severities: expected e.g. 1-5 or 1,3,5, got '%s'", list);
        if (*end == '-') {
            const char *t = end + 1;
            b = strtol(t, &end, 10);
            if (end == t) return qb_error(QB_EXIT_USAGE, "--severities: expected e.g. 1-5 or 1,3,5, got '%s'", list);
        }
        if (a < 1 || b > 5 || a > b) return qb_error(QB_EXIT_USAGE, "--severities: severities must lie in 1-5, got '%s'", list);
        for (long v = a; v <= b; v++) sev[v] = 1;
        any = 1;
        if (*end == ',') end++;
        else if (*end) return qb_error(QB_EXIT_USAGE, "--severities: expected e.g. 1-5 or 1,3,5, got '%s'", list);
        s = end;
    }
    if (!any) return qb_error(QB_EXIT_USAGE, "--severities: empty list");
    return 0;
}

int qb_corrupt(uint8_t *out, const uint8_t *in, int idx, int sev, qb_crng_kind kind, uint64_t seed, uint64_t image_id,
               const qb_corrupt_ctx *ctx) {
    if (idx < 0 || idx >= QB_N_CORRUPTIONS) return qb_error(QB_EXIT_USAGE, "corruption index %d out of range", idx);
    if (sev < 1 || sev > 5) return qb_error(QB_EXIT_USAGE, "severity %d outside 1-5", sev);
    qb_crng r;
    if (kind == QB_CRNG_NUMPY) qb_crng_numpy(&r, (uint32_t)seed);
    else qb_crng_counter(&r, seed, image_id, qb_corruptions[idx].name, sev);
    if (!qb_corruptions[idx].fn) { /* a corruption computed through its several-severity function */
        uint8_t *o[6] = {NULL};
        o[sev] = out;
        return qb_corruptions[idx].sevs(o, in, 1u << sev, ctx);
    }
    return qb_corruptions[idx].fn(out, in, sev, &r, ctx);
}

int qb_corrupt_sevs(uint8_t *const out[6], const uint8_t *in, int idx, unsigned mask, qb_crng_kind kind,
                    uint64_t seed, uint64_t image_id, const qb_corrupt_ctx *ctx) {
    if (idx < 0 || idx >= QB_N_CORRUPTIONS) return qb_error(QB_EXIT_USAGE, "corruption index %d out of range", idx);
    if (!mask || (mask & ~0x3Eu)) return qb_error(QB_EXIT_USAGE, "severity mask 0x%x: expected bits 1-5", mask);
    if (qb_corruptions[idx].sevs) return qb_corruptions[idx].sevs(out, in, mask, ctx);
    for (int s = 1; s <= 5; s++)
        if (mask >> s & 1) {
            int rc = qb_corrupt(out[s], in, idx, s, kind, seed, image_id, ctx);
            if (rc) return rc;
        }
    return 0;
}

int qb_corrupt_prepare(qb_image *dst, const qb_image *src, qb_preset p, const char *label) {
    int S = preset_sizes[p];
    dst->rgb = NULL, dst->w = dst->h = 0;
    if (src->w == S && src->h == S) {
        dst->rgb = qb_malloc((size_t)S * S * 3);
        if (!dst->rgb) return QB_EXIT_FAIL;
        memcpy(dst->rgb, src->rgb, (size_t)S * S * 3);
        dst->w = dst->h = S;
        return 0;
    }
    if (src->w < S || src->h < S)
        return qb_error(QB_EXIT_DATA, "%s: image is %dx%d, smaller than the %s preset's %dx%d", label, src->w, src->h,
                        preset_names[p], S, S);
    if (p == QB_PRESET_CIFAR)
        return qb_error(QB_EXIT_DATA, "%s: image is %dx%d; the cifar preset takes 32x32 images as they are", label,
                        src->w, src->h);
    if (p == QB_PRESET_TINYIMAGENET) return qb_resize(dst, src, S, S, QB_INTERP_BILINEAR);
    /* imagenet: Resize(256) (shorter side 256, long side int(256·long/short)) + CenterCrop(224) */
    int nw, nh;
    if (src->w <= src->h) nw = 256, nh = (int)(256.0 * src->h / src->w);
    else nh = 256, nw = (int)(256.0 * src->w / src->h);
    qb_image mid;
    int rc = qb_resize(&mid, src, nw, nh, QB_INTERP_BILINEAR);
    if (rc) return rc;
    rc = qb_center_crop(dst, &mid, S);
    qb_image_free(&mid);
    return rc;
}
