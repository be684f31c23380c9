/* digital.c — contrast, elastic_transform, pixelate, jpeg_compression and the extra saturate
 * (corruptions.md 4.12–4.15, 4.19), plus the libjpeg round trip and JPEG writer. */
#include "prims.h"
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <jpeglib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------- contrast ---------------- */

static const double contrast_c[3][5] = {{0.4, 0.3, 0.2, 0.1, 0.05}, {0.4, 0.3, 0.2, 0.1, 0.05}, {0.75, 0.5, 0.4, 0.3, 0.15}};

int qb_contrast(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    double c = contrast_c[ctx->preset][sev - 1];
    size_t n = (size_t)ctx->S * ctx->S;
    double m[3], lut[256];
    for (int v = 0; v < 256; v++) lut[v] = v / 255.0;
    /* channel means from exact integer sums (one rounding, not n: at least as close to
     * NumPy's pairwise-summed mean of x/255 as a running f64 sum) */
    uint64_t sum[3] = {0, 0, 0};
    for (size_t p = 0; p < n; p++) sum[0] += in[3 * p], sum[1] += in[3 * p + 1], sum[2] += in[3 * p + 2];
    for (int k = 0; k < 3; k++) m[k] = (double)sum[k] / 255.0 / (double)n;
    uint8_t o8[3][256]; /* the output depends only on (channel, value) */
    for (int k = 0; k < 3; k++)
        for (int v = 0; v < 256; v++) o8[k][v] = qbc_out8((lut[v] - m[k]) * c + m[k]);
    for (size_t p = 0; p < n; p++)
        for (int k = 0; k < 3; k++) out[3 * p + k] = o8[k][in[3 * p + k]];
    return 0;
}

/* ---------------- elastic_transform ---------------- */

/* (alpha, sigma, affine) multipliers of the side: imagenet uses the literal 244 */
static const double elastic_mult[3][5][3] = {
    {{2, 0.7, 0.1}, {2, 0.08, 0.2}, {0.05, 0.01, 0.02}, {0.07, 0.01, 0.02}, {0.12, 0.01, 0.02}},
    {{0, 0, 0.08}, {0.05, 0.3, 0.06}, {0.1, 0.08, 0.06}, {0.1, 0.03, 0.03}, {0.16, 0.03, 0.02}},
    {{0, 0, 0.08}, {0.05, 0.2, 0.07}, {0.08, 0.06, 0.06}, {0.1, 0.04, 0.05}, {0.1, 0.03, 0.03}}};

int qb_elastic_transform(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    int S = ctx->S;
    double base = ctx->preset == QB_PRESET_IMAGENET ? 244.0 : (double)S;
    const double *mu = elastic_mult[ctx->preset][sev - 1];
    double alpha = base * mu[0], sigma = base * mu[1], aff = base * mu[2];
    size_t n = (size_t)S * S;
    /* per-thread scratch (slots 0–3; the Gaussian uses 4, 6 and 7): no page faults per call */
    float *v = qbc_scratch(0, (n * 3 + 4) * sizeof(float)), *w = qbc_scratch(1, (n * 3 + 4) * sizeof(float));
    float *dxf = qbc_scratch(2, n * 2 * sizeof(float)), *dyf = dxf ? dxf + n : NULL;
    if (!v || !w || !dxf) return QB_EXIT_FAIL;
    int rc = 0;
#pragma omp simd
    for (size_t i = 0; i < n * 3; i++) v[i] = qbc_div255f((float)in[i]); /* = (float)in[i] / 255.0f */
    v[n * 3] = 0; /* the padding float the vector loads read */
    /* random affine on three points around the centre */
    float cs = (float)(S / 2), q = (float)(S / 3);
    float p1[6] = {cs + q, cs + q, cs + q, cs - q, cs - q, cs - q}, p2[6];
    for (int i = 0; i < 6; i++) p2[i] = p1[i] + (float)(-aff + 2 * aff * qb_crng_uniform(rng));
    double A[6];
    qbc_affine_from_points(p1, p2, A);
    qbc_warp_affine_f32(w, v, S, A);
    /* displacement fields: uniform(−1, 1), Gaussian-smoothed with reflect, t = 3, times alpha */
    /* wide kernels (r = 512 and 59 at 224 px) as GEMMs in f32: their fields are sums of hundreds
     * of taps, and an error of ~1e−7 relative moves a sample by < 1e−4 px */
    /* the GEMM path works on floats throughout (the f32 planes it multiplies), drawn straight into
     * dxf/dyf; the f64 path on doubles. Uniforms drawn and mapped to (−1, 1) a chunk at a time. */
    int wide = floor(3.0 * sigma + 0.5) >= 16;
    double *U = wide ? NULL : qbc_scratch(3, 2 * n * sizeof(double)), ub[256];
    if (!wide && !U) return QB_EXIT_FAIL;
    for (size_t i0 = 0; i0 < 2 * n; i0 += 256) {
        size_t m = 2 * n - i0 < 256 ? 2 * n - i0 : 256;
        qbc_uniforms(rng, ub, m);
        if (wide)
            for (size_t j = 0; j < m; j++) dxf[i0 + j] = (float)(-1.0 + 2.0 * ub[j]);
        else
            for (size_t j = 0; j < m; j++) U[i0 + j] = -1.0 + 2.0 * ub[j];
    }
    if (wide) {
        rc = qbc_gauss_planes_gemm(dxf, 2, S, sigma, 1, 3.0);
        for (size_t i = 0; i < 2 * n; i++) dxf[i] = (float)((double)dxf[i] * alpha);
    } else {
        for (int f = 0; f < 2 && !rc; f++) rc = qbc_gauss_f64(U + f * n, S, S, 1, sigma, 1, 3.0);
        for (size_t i = 0; i < 2 * n; i++) dxf[i] = (float)(U[i] * alpha);
    }
    if (rc) return rc;
    /* map_coordinates(order=1, mode='reflect') at (i + dy, j + dx): per row, the corner offsets
     * and fractions first (the reflections branch), then the blend */
    int *o4 = qbc_scratch(4, (size_t)S * 6 * sizeof(int) + ((size_t)S * 3 + 4) * sizeof(float));
    float *rowf = o4 ? (float *)(o4 + (size_t)S * 6) : NULL; /* a row's values, then its bytes */
    double *tt = qbc_scratch(5, (size_t)S * 4 * sizeof(double));
    if (!o4 || !tt) return QB_EXIT_FAIL;
    int *o00 = o4, *o01 = o4 + S, *o10 = o4 + 2 * S, *o11 = o4 + 3 * S, *RI = o4 + 4 * S, *CI = o4 + 5 * S;
    double *R0 = tt, *R1 = tt + S, *C0 = tt + 2 * S, *C1 = tt + 3 * S; /* 1 − tr, tr, 1 − tc, tc */
    for (int i = 0; i < S; i++) {
#pragma omp simd
        for (int j = 0; j < S; j++) {
            double r = (double)i + (double)dyf[(size_t)i * S + j], c = (double)j + (double)dxf[(size_t)i * S + j];
            double rf = floor(r), cf = floor(c), tr = r - rf, tc = c - cf;
            R0[j] = 1 - tr, R1[j] = tr, C0[j] = 1 - tc, C1[j] = tc;
            RI[j] = (int)rf, CI[j] = (int)cf;
        }
        for (int j = 0; j < S; j++) { /* corner offsets; reflections only near the border */
            int ri = RI[j], ci = CI[j];
            if ((unsigned)ri < (unsigned)(S - 1) && (unsigned)ci < (unsigned)(S - 1)) {
                int b = (ri * S + ci) * 3;
                o00[j] = b, o01[j] = b + 3, o10[j] = b + 3 * S, o11[j] = b + 3 * S + 3;
            } else {
                int r0 = qbc_reflect(ri, S), r1 = qbc_reflect(ri + 1, S), c0 = qbc_reflect(ci, S), c1 = qbc_reflect(ci + 1, S);
                o00[j] = (r0 * S + c0) * 3, o01[j] = (r0 * S + c1) * 3, o10[j] = (r1 * S + c0) * 3, o11[j] = (r1 * S + c1) * 3;
            }
        }
        uint8_t *o = out + (size_t)i * S * 3;
        for (int j = 0; j < S; j++) { /* a pixel's channels in one vector, the scalar order lane by lane */
            qbc_v4d t = qbc_ld4f_d(w + o00[j]) * R0[j] * C0[j];
            t += qbc_ld4f_d(w + o01[j]) * R0[j] * C1[j];
            t += qbc_ld4f_d(w + o10[j]) * R1[j] * C0[j];
            t += qbc_ld4f_d(w + o11[j]) * R1[j] * C1[j];
            qbc_v4f tf = __builtin_convertvector(t, qbc_v4f); /* the 4th float: the next pixel's */
            memcpy(rowf + 3 * j, &tf, sizeof tf);
        }
        qbc_out8f_row(o, rowf, 3 * (size_t)S);
    }
    return 0;
}

/* ---------------- pixelate ---------------- */

static const double pixelate_c[3][5] = {{0.6, 0.5, 0.4, 0.3, 0.25}, {0.9, 0.8, 0.7, 0.6, 0.5}, {0.95, 0.9, 0.85, 0.75, 0.65}};

/* qb_resize(…, QB_INTERP_BOX) of a square RGB8 image with its two passes into caller
 * buffers: tmp in·out·3 bytes, acc out·3 ints. */
static int box_resize(uint8_t *dst, const uint8_t *src, int in, int out, uint8_t *tmp, int32_t *acc) {
    if (in == out) { memcpy(dst, src, (size_t)in * in * 3); return 0; }
    int *bd;
    int32_t *kk;
    int ks = qb_resize_coeffs(in, out, QB_INTERP_BOX, &bd, &kk);
    if (!ks) return QB_EXIT_FAIL;
    qb_resample_h(tmp, out, src, in, in, bd, kk, ks);
    qb_resample_v(dst, out, tmp, (size_t)out * 3, bd, kk, ks, acc);
    free(bd), free(kk);
    return 0;
}

int qb_pixelate(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    int S = ctx->S, m = (int)(S * pixelate_c[ctx->preset][sev - 1]);
    /* scratch: small image, the intermediate of each pass, the vertical sums */
    uint8_t *small = qbc_scratch(0, (size_t)m * m * 3), *tmp = qbc_scratch(1, (size_t)S * S * 3);
    int32_t *acc = qbc_scratch(2, (size_t)S * 3 * sizeof(int32_t));
    if (!small || !tmp || !acc) return QB_EXIT_FAIL;
    int rc = box_resize(small, in, S, m, tmp, acc);
    return rc ? rc : box_resize(out, small, m, S, tmp, acc);
}

/* ---------------- JPEG through libjpeg ---------------- */

typedef struct {
    struct jpeg_error_mgr mgr; /* first member: libjpeg passes a pointer to it */
    jmp_buf jb;
} jerr_t;

static void jerr_exit(j_common_ptr ci) { longjmp(((jerr_t *)ci->err)->jb, 1); }
static void jerr_msg(j_common_ptr ci, int level) { (void)ci, (void)level; }

/* Encode RGB8 with Pillow's defaults (quality q with baseline-clamped tables, 4:2:0, ISLOW). */
static int jpeg_encode(unsigned char **buf, unsigned long *size, const uint8_t *rgb, int w, int h, int q) {
    struct jpeg_compress_struct ci;
    jerr_t je;
    ci.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jerr_exit, je.mgr.emit_message = jerr_msg;
    *buf = NULL, *size = 0;
    if (setjmp(je.jb)) {
        jpeg_destroy_compress(&ci);
        free(*buf);
        *buf = NULL;
        return qb_error(QB_EXIT_FAIL, "jpeg: encoder failed");
    }
    jpeg_create_compress(&ci);
    jpeg_mem_dest(&ci, buf, size);
    ci.image_width = (JDIMENSION)w, ci.image_height = (JDIMENSION)h, ci.input_components = 3, ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    ci.dct_method = JDCT_ISLOW;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ci.next_scanline * w * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return 0;
}

int qb_jpeg_roundtrip(uint8_t *out, const uint8_t *in, int w, int h, int quality) {
    unsigned char *buf;
    unsigned long size;
    int rc = jpeg_encode(&buf, &size, in, w, h, quality);
    if (rc) return rc;
    struct jpeg_decompress_struct di;
    jerr_t je;
    di.err = jpeg_std_error(&je.mgr);
    je.mgr.error_exit = jerr_exit, je.mgr.emit_message = jerr_msg;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&di);
        free(buf);
        return qb_error(QB_EXIT_FAIL, "jpeg: decoder failed");
    }
    jpeg_create_decompress(&di);
    jpeg_mem_src(&di, buf, size);
    jpeg_read_header(&di, TRUE);
    di.out_color_space = JCS_RGB;
    di.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&di);
    while (di.output_scanline < di.output_height) {
        JSAMPROW row = (JSAMPROW)(out + (size_t)di.output_scanline * w * 3);
        jpeg_read_scanlines(&di, &row, 1);
    }
    jpeg_finish_decompress(&di);
    jpeg_destroy_decompress(&di);
    free(buf);
    return 0;
}

int qb_image_save_jpeg(const qb_image *img, const char *path, int quality) {
    unsigned char *buf;
    unsigned long size;
    int rc = jpeg_encode(&buf, &size, img->rgb, img->w, img->h, quality);
    if (rc) return rc;
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int bad = !f || fwrite(buf, 1, size, f) != size;
    if (f && fclose(f)) bad = 1;
    if (!bad && rename(tmp, path)) bad = 1;
    free(buf);
    if (bad) { unlink(tmp); return qb_error(QB_EXIT_IO, "%s: cannot write", path); }
    return 0;
}

static const int jpeg_quality[3][5] = {{25, 18, 15, 10, 7}, {65, 58, 50, 40, 25}, {80, 65, 58, 50, 40}};

int qb_jpeg_compression(uint8_t *out, const uint8_t *in, int sev, qb_crng *rng, const qb_corrupt_ctx *ctx) {
    (void)rng;
    return qb_jpeg_roundtrip(out, in, ctx->S, ctx->S, jpeg_quality[ctx->preset][sev - 1]);
}

/* ---------------- saturate ---------------- */

static const double saturate_params[3][5][2] = {
    {{0.3, 0}, {0.1, 0}, {2, 0}, {5, 0.1}, {20, 0.2}},
    {{0.3, 0}, {0.1, 0}, {2, 0}, {5, 0.1}, {30, 0.2}},
    {{0.3, 0}, {0.1, 0}, {1.5, 0}, {2, 0.1}, {2.5, 0.2}}};

int qb_saturate_sevs(uint8_t *const out[6], const uint8_t *in, unsigned mask, const qb_corrupt_ctx *ctx) {
    double mult[6] = {0}, add[6] = {0};
    for (int s = 1; s <= 5; s++) mult[s] = saturate_params[ctx->preset][s - 1][0], add[s] = saturate_params[ctx->preset][s - 1][1];
    return qbc_hsv_affine(out, in, ctx->S, 1, mult, add, mask);
}

