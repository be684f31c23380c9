/* image.c — PNG/JPEG decoding to RGB8 exactly as Pillow 9.4's Image.open(f).convert('RGB'),
 * and atomic PNG writing. Spec: engine.md §4.1 step 1.
 *
 * libpng and libjpeg report fatal errors by calling a handler that must not return; ours
 * longjmp back to the decoder with the message saved, so corrupt input never crashes and
 * nothing is printed. Warnings are dropped, except libjpeg's "premature end of data",
 * which Pillow treats as a truncated file (OSError) and so do we. */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

uint64_t qb_max_image_pixels = 178956970;

void qb_image_free(qb_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

/* Shared by both decoders: header dimensions are checked before any pixel allocation. */
static int check_dims(const char *label, uint64_t w, uint64_t h) {
    if (w == 0 || h == 0) return qb_error(QB_EXIT_DATA, "%s: image has zero size (%llux%llu)", label,
                                          (unsigned long long)w, (unsigned long long)h);
    if (w > INT32_MAX || h > INT32_MAX || w * h > qb_max_image_pixels)
        return qb_error(QB_EXIT_DATA, "%s: image too large (%llux%llu pixels, limit %llu)", label,
                        (unsigned long long)w, (unsigned long long)h, (unsigned long long)qb_max_image_pixels);
    return 0;
}

static int alloc_rgb(qb_image *img, const char *label, int w, int h) {
    size_t bytes;
    if (qb_mul_overflow((size_t)w, (size_t)h, &bytes) || qb_mul_overflow(bytes, 3, &bytes))
        return qb_error(QB_EXIT_DATA, "%s: image too large", label);
    img->rgb = qb_malloc(bytes);
    if (!img->rgb) return QB_EXIT_FAIL;
    img->w = w;
    img->h = h;
    return 0;
}

/* ------------------------------------------------------------------------------------ PNG */

typedef struct {
    jmp_buf jmp;
    char msg[200];
    const uint8_t *data;
    size_t size, pos;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->pos) png_error(png, "truncated file");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

/* One decoded row (after libpng's unpacking of <8-bit samples) to RGB8, the way Pillow's
 * unpackers plus convert('RGB') do it. */
static void png_row_to_rgb(uint8_t *out, const uint8_t *row, int w, int color_type, int depth,
                           const uint8_t pal[256][3]) {
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
        if (depth == 16) {
            /* Pillow 9.4 opens 16-bit grey as mode 'I' (values 0..65535), and I→RGB clips to
             * 0..255 rather than scaling, so every value ≥ 255 becomes white. Matched here. */
            for (int x = 0; x < w; x++) {
                unsigned v = ((unsigned)row[2 * x] << 8) | row[2 * x + 1];
                out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v > 255 ? 255 : (uint8_t)v;
            }
        } else { /* 1/2/4-bit already scaled to 0..255 by png_set_expand_gray_1_2_4_to_8 */
            for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: { /* 'LA' or 'LA;16B': high byte of grey, alpha dropped */
        int step = depth == 16 ? 4 : 2;
        for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[step * x];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: { /* 'RGB;16B', 'RGBA;16B': high bytes; alpha dropped */
        int bps = depth == 16 ? 2 : 1, step = (color_type == PNG_COLOR_TYPE_RGB ? 3 : 4) * bps;
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) out[3 * x + c] = row[step * x + c * bps];
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++) memcpy(out + 3 * x, pal[row[x]], 3);
        break;
    }
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int decode_png(qb_image *img, const uint8_t *data, size_t size, const char *label) {
    /* IHDR comes first: refuse oversized images before libpng reads any further chunk. */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint32_t w = be32(data + 16), h = be32(data + 20);
        if (w && h && check_dims(label, w, h)) return QB_EXIT_DATA;
    }
    png_ctx ctx = {.data = data, .size = size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return qb_error(QB_EXIT_FAIL, "%s: out of memory", label);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile raw = NULL; /* volatile: still needed after a longjmp */
    volatile int oom = !info;
    if (!info || setjmp(ctx.jmp)) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(raw);
        qb_image_free(img);
        if (oom) return qb_error(QB_EXIT_FAIL, "%s: out of memory decoding PNG", label);
        return qb_error(QB_EXIT_DATA, "%s: bad PNG: %s", label, ctx.msg);
    }
    png_set_read_fn(png, &ctx, png_read_mem);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff); /* our pixel-count limit applies instead */
    png_set_benign_errors(png, 1);                     /* e.g. bad ancillary chunks: keep going */
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color_type, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color_type, &interlace, NULL, NULL);
    int rc = check_dims(label, w, h);
    if (rc) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }

    /* Pillow's palette starts as the grey ramp (i,i,i) and PLTE overwrites its first entries,
     * so an index past the end of a short PLTE decodes as grey, not black as in libpng. */
    uint8_t pal[256][3];
    for (int i = 0; i < 256; i++) pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp plte;
        int n_plte = 0;
        if (!png_get_PLTE(png, info, &plte, &n_plte)) png_error(png, "palette image without PLTE");
        for (int i = 0; i < n_plte && i < 256; i++) {
            pal[i][0] = plte[i].red;
            pal[i][1] = plte[i].green;
            pal[i][2] = plte[i].blue;
        }
        if (depth < 8) png_set_packing(png); /* one index per byte */
    } else if (color_type == PNG_COLOR_TYPE_GRAY && depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png); /* ×255/(2^d−1), as Pillow's '1', 'L;2', 'L;4' */
    }
    /* No gamma, no tRNS expansion: Pillow applies neither and convert('RGB') drops alpha. */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);

    size_t raw_bytes;
    if (qb_mul_overflow(rowbytes, passes > 1 ? h : 1, &raw_bytes)) png_error(png, "image too large");
    oom = alloc_rgb(img, label, (int)w, (int)h) != 0 || !(raw = malloc(raw_bytes));
    if (oom) png_error(png, "out of memory");
    if (passes > 1) { /* Adam7: libpng needs the whole image to merge passes */
        for (int pass = 0; pass < passes; pass++)
            for (png_uint_32 y = 0; y < h; y++) png_read_row(png, raw + y * rowbytes, NULL);
        for (png_uint_32 y = 0; y < h; y++)
            png_row_to_rgb(img->rgb + (size_t)y * w * 3, raw + y * rowbytes, (int)w, color_type, depth, pal);
    } else { /* stream row by row through one row buffer */
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(png, raw, NULL);
            png_row_to_rgb(img->rgb + (size_t)y * w * 3, raw, (int)w, color_type, depth, pal);
        }
    }
    /* Chunks after the image data are not read: Pillow ignores a missing IEND too. */
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    return 0;
}

/* ----------------------------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr mgr; /* first member: libjpeg passes a pointer to it */
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* libjpeg calls this for warnings (level −1) and trace messages (≥ 0). Pillow ignores both;
 * running out of data (JWRN_JPEG_EOF) is where Pillow raises "image file is truncated". */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_err *e = (jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "truncated file");
        longjmp(e->jmp, 1);
    }
}

static int decode_jpeg(qb_image *img, const uint8_t *data, size_t size, const char *label) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *volatile row = NULL;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = jpeg_on_error;
    err.mgr.emit_message = jpeg_on_message;
    err.msg[0] = 0;
    if (setjmp(err.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        qb_image_free(img);
        return qb_error(QB_EXIT_DATA, "%s: bad JPEG: %s", label, err.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    if (jpeg_read_header(&cinfo, TRUE) != JPEG_HEADER_OK) {
        snprintf(err.msg, sizeof err.msg, "no image in file");
        longjmp(err.jmp, 1);
    }
    int rc = check_dims(label, cinfo.image_width, cinfo.image_height);
    if (rc) {
        jpeg_destroy_decompress(&cinfo);
        return rc;
    }
    /* Pillow's modes: 1 component 'L', 3 'RGB' (libjpeg converts YCbCr), 4 'CMYK' read as
     * 'CMYK;I' (Adobe inverted; libjpeg converts YCCK to CMYK). Library defaults otherwise:
     * JDCT_ISLOW, fancy upsampling, no scaling — Pillow changes them only in draft mode. */
    int comps = cinfo.num_components;
    if (comps == 1) cinfo.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3) cinfo.out_color_space = JCS_RGB;
    else if (comps == 4) cinfo.out_color_space = JCS_CMYK;
    else {
        snprintf(err.msg, sizeof err.msg, "unsupported number of components (%d)", comps);
        longjmp(err.jmp, 1);
    }
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height, oc = cinfo.output_components;
    if (oc != comps) {
        snprintf(err.msg, sizeof err.msg, "unexpected output components (%d)", oc);
        longjmp(err.jmp, 1);
    }
    if ((rc = alloc_rgb(img, label, w, h))) {
        jpeg_destroy_decompress(&cinfo);
        return rc;
    }
    if (oc != 3) {
        row = malloc((size_t)w * oc);
        if (!row) {
            snprintf(err.msg, sizeof err.msg, "out of memory");
            longjmp(err.jmp, 1);
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *out = img->rgb + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW dst = oc == 3 ? out : row;
        jpeg_read_scanlines(&cinfo, &dst, 1);
        if (oc == 1) {
            for (int x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
        } else if (oc == 4) {
            /* 'CMYK;I' unpack inverts; then Pillow's cmyk2rgb: nk = 255−k,
             * out = nk − MULDIV255(c, nk) with MULDIV255(a,b) = ((t>>8)+t)>>8, t = a·b+128. */
            for (int x = 0; x < w; x++) {
                const uint8_t *p = row + 4 * x;
                int nk = p[3]; /* 255 − (255 − k) */
                for (int c = 0; c < 3; c++) {
                    int t = (255 - p[c]) * nk + 128;
                    int v = nk - (((t >> 8) + t) >> 8);
                    out[3 * x + c] = (uint8_t)(v < 0 ? 0 : v);
                }
            }
        }
    }
    jpeg_finish_decompress(&cinfo); /* reads to EOI: a missing EOI is a truncated file */
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return 0;
}

/* ------------------------------------------------------------------------------- dispatch */

int qb_image_load_memory(qb_image *img, const void *buf, size_t size, const char *label) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const uint8_t *p = buf;
    img->w = img->h = 0;
    img->rgb = NULL;
    if (size == 0) return qb_error(QB_EXIT_DATA, "%s: empty file", label);
    if (size >= 8 && memcmp(p, png_magic, 8) == 0) return decode_png(img, p, size, label);
    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return decode_jpeg(img, p, size, label);
    return qb_error(QB_EXIT_DATA, "%s: not a PNG or JPEG file", label);
}

int qb_image_load(qb_image *img, const char *path) {
    img->w = img->h = 0;
    img->rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return qb_error(QB_EXIT_DATA, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qb_error(QB_EXIT_DATA, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data) {
        fclose(f);
        return qb_error(QB_EXIT_FAIL, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = fread(data, 1, size, f);
    int read_err = ferror(f);
    fclose(f);
    if (read_err || got != size) {
        free(data);
        return qb_error(QB_EXIT_DATA, "%s: read error", path);
    }
    int rc = qb_image_load_memory(img, data, size, path);
    free(data);
    return rc;
}

/* ----------------------------------------------------------------------------- PNG output */

typedef struct {
    jmp_buf jmp;
    char msg[200];
} png_wctx;

static void png_on_write_error(png_structp png, png_const_charp msg) {
    png_wctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

int qb_image_save_png(const qb_image *img, const char *path) {
    if (!img || !img->rgb || img->w <= 0 || img->h <= 0)
        return qb_error(QB_EXIT_IO, "%s: no image to write", path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return qb_error(QB_EXIT_IO, "%s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return qb_error(QB_EXIT_IO, "%s: cannot create: %s", path, strerror(errno));
    fchmod(fd, 0644); /* mkstemp makes 0600; outputs are ordinary files */
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(tmp);
        return qb_error(QB_EXIT_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    png_wctx ctx = {.msg = ""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_write_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(ctx.jmp)) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        return qb_error(QB_EXIT_IO, "%s: cannot write PNG: %s", path, ctx.msg[0] ? ctx.msg : "out of memory");
    }
    png_init_io(png, f);
    /* zlib level 3 and the Paeth filter alone: ~3x faster than libpng's defaults (level 6, all
     * filters tried per row) for ~5 % larger files; still lossless. Corrupted-tree generation
     * writes 95 PNGs per image, where the encoder dominated. */
    png_set_compression_level(png, 3);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_PAETH);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->h; y++) png_write_row(png, img->rgb + (size_t)y * img->w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    /* No fsync: rename already keeps readers from ever seeing a partial file. */
    int bad = fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return qb_error(QB_EXIT_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}
