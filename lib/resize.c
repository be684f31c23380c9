/* resize.c — Pillow 9.4 Image.resize on RGB8, bit-exact, and the timm/torchvision eval
 * transform (Resize shorter side, CenterCrop, ToTensor). Spec: engine.md §4.1, §4.4.
 *
 * Pillow's Resample.c in short: per axis, double-precision filter weights normalised to sum 1,
 * rounded to 22-bit fixed point; horizontal pass first into a uint8 image, then vertical, each
 * output = clamp((2^21 + Σ src·coef) >> 22). NEAREST is a separate affine path. */
#include "image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Exactness needs Pillow's double rounding: no fused multiply-add anywhere in this file.
 * -std=c11 already implies -ffp-contract=off for GCC; say it here too, for gnu11 or clang. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define PRECISION_BITS (32 - 8 - 2)

int qb_interp_parse(const char *s, qb_interp *out) {
    /* Names as timm/torchvision spell them; also Pillow's integer codes (DeiT's interpolation=3). */
    static const struct { const char *name, *code; qb_interp v; } names[] = {
        {"nearest", "0", QB_INTERP_NEAREST}, {"bilinear", "2", QB_INTERP_BILINEAR},
        {"bicubic", "3", QB_INTERP_BICUBIC}, {"box", "4", QB_INTERP_BOX},
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0 || strcmp(s, names[i].code) == 0) {
            *out = names[i].v;
            return 0;
        }
    return qb_error(QB_EXIT_USAGE, "unknown interpolation '%s' (expected nearest, bilinear, bicubic or box)",
                    s ? s : "(null)");
}

const char *qb_interp_name(qb_interp i) {
    switch (i) {
    case QB_INTERP_NEAREST: return "nearest";
    case QB_INTERP_BILINEAR: return "bilinear";
    case QB_INTERP_BICUBIC: return "bicubic";
    case QB_INTERP_BOX: return "box";
    }
    return "unknown";
}

/* ------------------------------------------------------------- filters (Resample.c, verbatim) */

static double box_filter(double x) {
    if (x > -0.5 && x <= 0.5) return 1.0;
    return 0.0;
}

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) {
    const double a = -0.5; /* Keys; OpenCV and torch's tensor path use −0.75 */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

int qb_resize_coeffs(int in_size, int out_size, qb_interp filter, int **bounds_out, int32_t **coeffs_out) {
    double (*f)(double);
    double filter_support;
    switch (filter) {
    case QB_INTERP_BOX: f = box_filter, filter_support = 0.5; break;
    case QB_INTERP_BILINEAR: f = bilinear_filter, filter_support = 1.0; break;
    case QB_INTERP_BICUBIC: f = bicubic_filter, filter_support = 2.0; break;
    default: qb_error(QB_EXIT_USAGE, "resize: no coefficient table for %s", qb_interp_name(filter)); return 0;
    }
    if (in_size <= 0 || out_size <= 0) {
        qb_error(QB_EXIT_USAGE, "resize: bad sizes %d -> %d", in_size, out_size);
        return 0;
    }
    /* in0 = 0, in1 = in_size are floats in Pillow; exact for any image size we accept. */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale; /* widen the kernel only when shrinking */
    double support = filter_support * filterscale;
    double ksize_d = ceil(support) * 2 + 1;
    if (ksize_d > (double)(INT32_MAX / 2) || ksize_d * out_size > (double)(SIZE_MAX / 8)) {
        qb_error(QB_EXIT_USAGE, "resize: %d -> %d needs too many coefficients", in_size, out_size);
        return 0;
    }
    int ksize = (int)ksize_d;
    int *bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    int32_t *kk = malloc(sizeof(int32_t) * (size_t)ksize * out_size);
    double *w = malloc(sizeof(double) * (size_t)ksize);
    if (!bounds || !kk || !w) {
        free(bounds), free(kk), free(w);
        qb_error(QB_EXIT_FAIL, "resize: out of memory");
        return 0;
    }
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5); /* C truncation, as Pillow */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = f(((double)(x + xmin) - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = kk + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0; /* divide, as Pillow */
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *coeffs_out = kk;
    return ksize;
}

static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> PRECISION_BITS; /* arithmetic shift = floor division, as Pillow */
    v = v > 0 ? v : 0; /* selects, so the vertical pass vectorises */
    v = v < 255 ? v : 255;
    return (uint8_t)v;
}

/* A pixel's three channels (and the next byte, weighted but unused) as one 4 × int32 vector. */
typedef int32_t rs_v4i __attribute__((vector_size(16)));
typedef uint8_t rs_v4b __attribute__((vector_size(4)));

void qb_resample_h(uint8_t *dst, int out_w, const uint8_t *src, int in_w, int rows, const int *bounds,
                       const int32_t *kk, int ksize) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *s = src + (size_t)y * in_w * 3;
        uint8_t *d = dst + (size_t)y * out_w * 3;
        int x = 0;
        /* vector form while every tap's 4-byte load stays inside the row (the same integer sums
         * per channel, in tap order) */
        for (; x < out_w; x++) {
            const uint8_t *p = s + (size_t)bounds[2 * x] * 3;
            const int32_t *k = kk + (size_t)x * ksize;
            int n = bounds[2 * x + 1];
            if (((size_t)bounds[2 * x] + (size_t)n) * 3 + 1 > (size_t)in_w * 3) break; /* the last load's 4th byte */
            rs_v4i a = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1), 0};
            for (int t = 0; t < n; t++) {
                rs_v4b b;
                memcpy(&b, p + 3 * t, 4);
                a += __builtin_convertvector(b, rs_v4i) * k[t];
            }
            a >>= PRECISION_BITS;
            a &= a > 0; /* clip8 lane by lane, as masks */
            rs_v4i lt = a < 255;
            a = (a & lt) | (255 & ~lt);
            d[3 * x] = (uint8_t)a[0], d[3 * x + 1] = (uint8_t)a[1], d[3 * x + 2] = (uint8_t)a[2];
        }
        for (; x < out_w; x++) {
            const uint8_t *p = s + (size_t)bounds[2 * x] * 3;
            const int32_t *k = kk + (size_t)x * ksize;
            int n = bounds[2 * x + 1];
            int32_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0;
            for (int t = 0; t < n; t++) {
                a0 += p[3 * t] * k[t];
                a1 += p[3 * t + 1] * k[t];
                a2 += p[3 * t + 2] * k[t];
            }
            d[3 * x] = clip8(a0);
            d[3 * x + 1] = clip8(a1);
            d[3 * x + 2] = clip8(a2);
        }
    }
}

/* Accumulating row by row keeps the vertical pass's inner loop contiguous (vectorisable). */
void qb_resample_v(uint8_t *dst, int out_h, const uint8_t *src, size_t w3, const int *bounds,
                       const int32_t *kk, int ksize, int32_t *acc) {
    for (int y = 0; y < out_h; y++) {
        const int32_t *k = kk + (size_t)y * ksize;
        int lo = bounds[2 * y], n = bounds[2 * y + 1];
        /* acc never overlaps src or dst (omp simd: no runtime alias checks needed) */
#pragma omp simd
        for (size_t i = 0; i < w3; i++) acc[i] = 1 << (PRECISION_BITS - 1);
        for (int t = 0; t < n; t++) {
            const uint8_t *s = src + (size_t)(lo + t) * w3;
            int32_t c = k[t];
#pragma omp simd
            for (size_t i = 0; i < w3; i++) acc[i] += s[i] * c;
        }
        uint8_t *d = dst + (size_t)y * w3;
#pragma omp simd
        for (size_t i = 0; i < w3; i++) d[i] = clip8(acc[i]);
    }
}

/* Pillow's NEAREST: ImagingScaleAffine with a0 = inW/outW, positions accumulated from a0/2. */
static void nearest_table(int *tab, int in_size, int out_size) {
    double a = (double)(float)in_size / out_size;
    double xo = 0.0 + a * 0.5;
    for (int x = 0; x < out_size; x++) {
        int xin = xo < 0.0 ? -1 : (int)xo;
        tab[x] = xin < in_size ? xin : -1; /* −1: outside, filled with 0 */
        xo += a;
    }
}

static int alloc_image(qb_image *img, int w, int h) {
    size_t bytes;
    if (qb_mul_overflow((size_t)w, (size_t)h, &bytes) || qb_mul_overflow(bytes, 3, &bytes))
        return qb_error(QB_EXIT_USAGE, "resize: output %dx%d too large", w, h);
    img->rgb = qb_malloc(bytes);
    if (!img->rgb) return QB_EXIT_FAIL;
    img->w = w;
    img->h = h;
    return 0;
}

static int resize_nearest(qb_image *dst, const qb_image *src, int out_w, int out_h) {
    int *xt = malloc(sizeof(int) * ((size_t)out_w + out_h));
    if (!xt) return qb_error(QB_EXIT_FAIL, "resize: out of memory");
    int *yt = xt + out_w;
    nearest_table(xt, src->w, out_w);
    nearest_table(yt, src->h, out_h);
    int rc = alloc_image(dst, out_w, out_h);
    if (rc) {
        free(xt);
        return rc;
    }
    for (int y = 0; y < out_h; y++) {
        uint8_t *d = dst->rgb + (size_t)y * out_w * 3;
        if (yt[y] < 0) {
            memset(d, 0, (size_t)out_w * 3);
            continue;
        }
        const uint8_t *s = src->rgb + (size_t)yt[y] * src->w * 3;
        for (int x = 0; x < out_w; x++) {
            if (xt[x] < 0) d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = 0;
            else memcpy(d + 3 * x, s + (size_t)xt[x] * 3, 3);
        }
    }
    free(xt);
    return 0;
}

int qb_resize(qb_image *dst, const qb_image *src, int out_w, int out_h, qb_interp filter) {
    dst->rgb = NULL;
    dst->w = dst->h = 0;
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0) return qb_error(QB_EXIT_USAGE, "resize: empty input image");
    if (out_w <= 0 || out_h <= 0) return qb_error(QB_EXIT_USAGE, "resize: bad output size %dx%d", out_w, out_h);
    if (out_w == src->w && out_h == src->h) { /* Image.resize returns a copy */
        int rc = alloc_image(dst, out_w, out_h);
        if (!rc) memcpy(dst->rgb, src->rgb, (size_t)out_w * out_h * 3);
        return rc;
    }
    if (filter == QB_INTERP_NEAREST) return resize_nearest(dst, src, out_w, out_h);

    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL, *acc = NULL;
    uint8_t *tmp = NULL;
    int rc = QB_EXIT_FAIL;
    int need_h = out_w != src->w, need_v = out_h != src->h;
    /* Vertical coefficients first: they say which source rows the horizontal pass must produce. */
    int ksize_v = qb_resize_coeffs(src->h, out_h, filter, &bv, &kv);
    int ksize_h = ksize_v ? qb_resize_coeffs(src->w, out_w, filter, &bh, &kh) : 0;
    if (!ksize_h) goto done;
    const uint8_t *cur = src->rgb; /* input of the vertical pass */
    if (need_h) {
        int first = 0, last = src->h;
        if (need_v) {
            first = bv[0];
            last = bv[2 * out_h - 2] + bv[2 * out_h - 1];
            for (int i = 0; i < out_h; i++) bv[2 * i] -= first;
        }
        qb_image t = {0};
        if ((rc = alloc_image(&t, out_w, last - first))) goto done;
        tmp = t.rgb;
        qb_resample_h(tmp, out_w, src->rgb + (size_t)first * src->w * 3, src->w, last - first, bh, kh, ksize_h);
        cur = tmp;
        if (!need_v) { /* the uint8 intermediate is the result */
            dst->rgb = tmp, dst->w = out_w, dst->h = out_h;
            tmp = NULL;
            rc = 0;
            goto done;
        }
    }
    size_t w3 = (size_t)out_w * 3;
    acc = malloc(sizeof(int32_t) * w3);
    if (!acc) {
        rc = qb_error(QB_EXIT_FAIL, "resize: out of memory");
        goto done;
    }
    if ((rc = alloc_image(dst, out_w, out_h))) goto done;
    qb_resample_v(dst->rgb, out_h, cur, w3, bv, kv, ksize_v, acc);
    rc = 0;
done:
    free(bh), free(bv), free(kh), free(kv), free(acc), free(tmp);
    return rc;
}

/* ------------------------------------------------------------------ eval transform (timm) */

int qb_eval_resize_size(int w, int h, int size, double crop_pct, int *new_w, int *new_h) {
    if (w <= 0 || h <= 0) return qb_error(QB_EXIT_USAGE, "preprocess: empty image");
    if (size <= 0 || size > 65536) return qb_error(QB_EXIT_USAGE, "preprocess: bad image size %d", size);
    if (!(crop_pct > 0.0) || !isfinite(crop_pct)) return qb_error(QB_EXIT_USAGE, "preprocess: bad crop_pct %g", crop_pct);
    double scale_d = floor((double)size / crop_pct); /* Python: math.floor(img_size / crop_pct) */
    if (scale_d < 1.0 || scale_d > 1048576.0)
        return qb_error(QB_EXIT_USAGE, "preprocess: size %d / crop_pct %g gives resize %g", size, crop_pct, scale_d);
    int64_t scale = (int64_t)scale_d;
    /* torchvision _compute_resized_output_size: int(short·long/short_in), multiply first. */
    int64_t short_in = w <= h ? w : h, long_in = w <= h ? h : w;
    double long_d = (double)(scale * long_in) / (double)short_in;
    if (long_d >= 2147483647.0) return qb_error(QB_EXIT_USAGE, "preprocess: resized image too large");
    int long_out = (int)long_d; /* truncation, as Python int() */
    *new_w = w <= h ? (int)scale : long_out;
    *new_h = w <= h ? long_out : (int)scale;
    return 0;
}

/* Python round((d)/2.0) for d ≥ 0: half to even. */
static int half_even_half(int d) {
    int off = d / 2;
    if ((d & 1) && (off & 1)) off++;
    return off;
}

int qb_center_crop(qb_image *dst, const qb_image *src, int size) {
    dst->rgb = NULL;
    dst->w = dst->h = 0;
    if (!src || !src->rgb || src->w <= 0 || src->h <= 0) return qb_error(QB_EXIT_USAGE, "crop: empty input image");
    if (size <= 0) return qb_error(QB_EXIT_USAGE, "crop: bad size %d", size);
    int rc = alloc_image(dst, size, size);
    if (rc) return rc;
    /* Per axis: larger than the crop -> offset round((n−size)/2); smaller -> zero pad with
     * (size−n)//2 before (torchvision pads only the axes that are too small). */
    int sx = 0, dx = 0, nx = size, sy = 0, dy = 0, ny = size;
    if (src->w >= size) sx = half_even_half(src->w - size);
    else dx = (size - src->w) / 2, nx = src->w;
    if (src->h >= size) sy = half_even_half(src->h - size);
    else dy = (size - src->h) / 2, ny = src->h;
    if (nx != size || ny != size) memset(dst->rgb, 0, (size_t)size * size * 3);
    for (int y = 0; y < ny; y++)
        memcpy(dst->rgb + ((size_t)(dy + y) * size + dx) * 3, src->rgb + ((size_t)(sy + y) * src->w + sx) * 3,
               (size_t)nx * 3);
    return 0;
}

int qb_preprocess_eval_u8(qb_image *dst, const qb_image *src, int size, double crop_pct, qb_interp filter) {
    dst->rgb = NULL;
    dst->w = dst->h = 0;
    if (!src || !src->rgb) return qb_error(QB_EXIT_USAGE, "preprocess: empty image");
    int new_w = 0, new_h = 0;
    int rc = qb_eval_resize_size(src->w, src->h, size, crop_pct, &new_w, &new_h);
    if (rc) return rc;
    if (new_w == src->w && new_h == src->h) return qb_center_crop(dst, src, size); /* F.resize: unchanged */
    qb_image resized;
    if ((rc = qb_resize(&resized, src, new_w, new_h, filter))) return rc;
    rc = qb_center_crop(dst, &resized, size);
    qb_image_free(&resized);
    return rc;
}

void qb_image_to_chw(float *out, const qb_image *img) {
    /* ToTensor: float32 division by 255 (not a multiply by 1/255: that differs in the last bit). */
    float lut[256];
    for (int i = 0; i < 256; i++) lut[i] = (float)i / 255.0f;
    size_t plane = (size_t)img->w * img->h;
    const uint8_t *p = img->rgb;
    for (size_t i = 0; i < plane; i++, p += 3) {
        out[i] = lut[p[0]];
        out[plane + i] = lut[p[1]];
        out[2 * plane + i] = lut[p[2]];
    }
}

int qb_preprocess_eval(float *out, const qb_image *img, int size, double crop_pct, qb_interp filter) {
    qb_image crop;
    int rc = qb_preprocess_eval_u8(&crop, img, size, crop_pct, filter);
    if (rc) return rc;
    qb_image_to_chw(out, &crop);
    qb_image_free(&crop);
    return 0;
}
