/* test_image.c — lib/image.c: PNG/JPEG decoding equal to Pillow 9.4's .convert('RGB'), error
 * handling on corrupt input, atomic PNG writing. References: the .rgb files in tests/fixtures/images. */
#include "qbtest.h"
#include "image.h"
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *fixture(const char *name) {
    char rel[512];
    snprintf(rel, sizeof rel, "images/%s", name);
    return qbt_fixture(rel);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)size + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return buf;
}

/* Decoded fixture vs Pillow's raw RGB; returns the largest absolute difference. */
static int decode_vs_pil(const char *name, int w, int h, long *n_bad) {
    qb_image img;
    int rc = qb_image_load(&img, fixture(name));
    ck_assert_msg(rc == 0, "%s: %s", name, qb_last_error());
    ck_assert_int_eq(img.w, w);
    ck_assert_int_eq(img.h, h);
    char ref[256];
    snprintf(ref, sizeof ref, "%.*s.rgb", (int)(strrchr(name, '.') - name), name);
    size_t n;
    uint8_t *want = slurp(fixture(ref), &n);
    ck_assert_uint_eq(n, (size_t)w * h * 3);
    int maxdiff = 0;
    *n_bad = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)img.rgb[i] - (int)want[i]);
        *n_bad += d != 0;
        if (d > maxdiff) maxdiff = d;
    }
    free(want);
    qb_image_free(&img);
    return maxdiff;
}

static const char *png_cases[] = {
    "png_g1.png",    "png_g2.png",         "png_g4.png",    "png_g8.png",     "png_g8_trns.png",
    "png_g16.png",   "png_ga8.png",        "png_ga16.png",  "png_rgb8.png",   "png_rgb16.png",
    "png_rgb16_trns.png", "png_rgba8.png", "png_rgba16.png", "png_rgb8_adam7.png", "png_rgba16_adam7.png",
    "png_p1.png",    "png_p2.png",         "png_p4.png",    "png_p8.png",     "png_p8_short.png",
    "png_p8_trns.png",
};

START_TEST(test_png_variants) {
    long bad;
    int maxdiff = decode_vs_pil(png_cases[_i], 13, 7, &bad);
    ck_assert_msg(bad == 0, "%s: %ld values differ from Pillow (max %d)", png_cases[_i], bad, maxdiff);
}
END_TEST

static const struct { const char *name; int w, h; } jpeg_cases[] = {
    {"jpg_420.jpg", 37, 23}, {"jpg_444.jpg", 37, 23}, {"jpg_422.jpg", 61, 39},  {"jpg_prog.jpg", 61, 39},
    {"jpg_opt.jpg", 37, 23}, {"jpg_gray.jpg", 61, 39}, {"jpg_cmyk.jpg", 37, 23}, {"jpg_1x1.jpg", 1, 1},
    {"jpg_corrupt.jpg", 61, 39}, /* damaged entropy data: libjpeg warns, Pillow decodes anyway */
};

/* Same libjpeg-turbo, same defaults (ISLOW, fancy upsampling) as Pillow: exact. */
START_TEST(test_jpeg_variants) {
    long bad;
    int maxdiff = decode_vs_pil(jpeg_cases[_i].name, jpeg_cases[_i].w, jpeg_cases[_i].h, &bad);
    ck_assert_msg(bad == 0, "%s: %ld values differ from Pillow (max %d)", jpeg_cases[_i].name, bad, maxdiff);
}
END_TEST

START_TEST(test_png_1x1) {
    qb_image img;
    ck_assert_int_eq(qb_image_load(&img, fixture("png_1x1.png")), 0);
    ck_assert_int_eq(img.w, 1);
    ck_assert_int_eq(img.h, 1);
    ck_assert(img.rgb[0] == 12 && img.rgb[1] == 200 && img.rgb[2] == 99);
    qb_image_free(&img);
    ck_assert_ptr_null(img.rgb);
}
END_TEST

/* Format comes from the magic bytes, not the name. */
START_TEST(test_magic_not_extension) {
    size_t n;
    uint8_t *png = slurp(fixture("png_rgb8.png"), &n);
    char path[512];
    snprintf(path, sizeof path, "%s/actually_png.jpg", qbt_tmpdir());
    ck_assert_int_eq(qbt_write_file(path, png, n), 0);
    qb_image img;
    ck_assert_int_eq(qb_image_load(&img, path), 0);
    ck_assert_int_eq(img.w, 13);
    qb_image_free(&img);
    free(png);
}
END_TEST

static void expect_data_error(const void *buf, size_t n, const char *label, const char *needle) {
    qb_image img = {.w = 99, .h = 99, .rgb = (uint8_t *)1};
    int rc = qb_image_load_memory(&img, buf, n, label);
    ck_assert_msg(rc == QB_EXIT_DATA, "%s: rc %d, want QB_EXIT_DATA", label, rc);
    ck_assert_ptr_null(img.rgb);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), label)); /* the error names the file */
    if (needle) ck_assert_msg(strstr(qb_last_error(), needle) != NULL, "'%s' lacks '%s'", qb_last_error(), needle);
}

START_TEST(test_not_images) {
    expect_data_error("", 0, "empty.png", "empty file");
    const char *text = "hello, this is text\n";
    expect_data_error(text, strlen(text), "notes.txt", "not a PNG or JPEG file");
    expect_data_error("\x89PNG", 4, "short.png", "not a PNG or JPEG file");
    expect_data_error("\xFF\xD8\xFF", 3, "stub.jpg", "bad JPEG");

    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(path, sizeof path, "%s/empty.jpg", dir);
    ck_assert_int_eq(qbt_write_file(path, "", 0), 0);
    qb_image img;
    ck_assert_int_eq(qb_image_load(&img, path), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "empty file"));
    snprintf(path, sizeof path, "%s/missing.png", dir);
    ck_assert_int_eq(qb_image_load(&img, path), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "missing.png"));
    ck_assert_int_eq(qb_image_load(&img, dir), QB_EXIT_DATA); /* a directory */
}
END_TEST

/* Every truncation is an error (PNG: until the image data is complete; Pillow too ignores a
 * missing IEND). JPEG: any missing byte, even only the EOI marker, as Pillow raises. */
START_TEST(test_truncated) {
    static const char *files[] = {"png_rgb8.png", "png_rgba16_adam7.png", "png_p4.png", "jpg_420.jpg", "jpg_prog.jpg",
                                  "jpg_gray.jpg", "jpg_cmyk.jpg"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t n;
        uint8_t *data = slurp(fixture(files[f]), &n);
        int is_png = data[0] == 0x89;
        size_t keep_max = is_png ? n - 12 : n; /* 12 = IEND chunk */
        for (size_t k = 0; k < keep_max; k++) {
            qb_image img;
            int rc = qb_image_load_memory(&img, data, k, files[f]);
            ck_assert_msg(rc == QB_EXIT_DATA, "%s cut to %zu of %zu bytes: rc %d", files[f], k, n, rc);
            ck_assert_ptr_null(img.rgb);
        }
        if (is_png) { /* without IEND: still decodes */
            qb_image img;
            ck_assert_int_eq(qb_image_load_memory(&img, data, n - 12, files[f]), 0);
            qb_image_free(&img);
        }
        free(data);
    }
    qb_image img;
    size_t n;
    uint8_t *data = slurp(fixture("jpg_420.jpg"), &n);
    ck_assert_int_eq(qb_image_load_memory(&img, data, n / 2, "half.jpg"), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "truncated"));
    free(data);
}
END_TEST

/* Random byte damage: never a crash; either a clean error or an image. */
START_TEST(test_fuzz_no_crash) {
    static const char *files[] = {"png_rgb8.png", "png_p8.png", "png_rgba16_adam7.png", "jpg_420.jpg", "jpg_prog.jpg",
                                  "jpg_cmyk.jpg"};
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t n;
        uint8_t *orig = slurp(fixture(files[f]), &n), *data = malloc(n);
        int ok = 0, err = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(data, orig, n);
            for (int flips = 0; flips < 1 + it % 4; flips++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                size_t pos = 3 + (size_t)(seed >> 33) % (n - 3); /* keep the magic */
                data[pos] ^= (uint8_t)(1u << ((seed >> 20) & 7));
            }
            qb_image img;
            int rc = qb_image_load_memory(&img, data, n, files[f]);
            ck_assert_msg(rc == 0 || rc == QB_EXIT_DATA, "%s: rc %d", files[f], rc);
            if (rc == 0) {
                ck_assert(img.w > 0 && img.h > 0 && img.rgb);
                ok++;
            }
            err += rc != 0;
            qb_image_free(&img);
        }
        ck_assert_int_eq(ok + err, 300);
        free(orig);
        free(data);
    }
}
END_TEST

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG whose IHDR claims w×h (valid CRC); pixel data never follows. */
static void png_header(uint8_t out[33], uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    put_be32(out + 8, 13);
    memcpy(out + 12, "IHDR", 4);
    put_be32(out + 16, w);
    put_be32(out + 20, h);
    out[24] = 8, out[25] = 2, out[26] = out[27] = out[28] = 0;
    put_be32(out + 29, (uint32_t)crc32(0, out + 12, 17));
}

START_TEST(test_huge_dimensions) {
    uint8_t hdr[33];
    png_header(hdr, 100000, 100000); /* 10^10 pixels: refused before any allocation */
    expect_data_error(hdr, sizeof hdr, "huge.png", "too large");
    png_header(hdr, 0, 5);
    expect_data_error(hdr, sizeof hdr, "zero.png", NULL);

    size_t n;
    uint8_t *jpg = slurp(fixture("jpg_1x1.jpg"), &n);
    size_t sof = 0;
    for (size_t i = 2; i + 9 < n; i++)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    ck_assert_uint_gt(sof, 0);
    jpg[sof + 5] = 0xEA, jpg[sof + 6] = 0x60; /* height 60000 */
    jpg[sof + 7] = 0xEA, jpg[sof + 8] = 0x60; /* width 60000: 3.6e9 pixels */
    expect_data_error(jpg, n, "huge.jpg", "too large");
    free(jpg);

    /* The limit is a variable: 13×7 = 91 pixels against a limit of 90. */
    uint64_t saved = qb_max_image_pixels;
    qb_max_image_pixels = 90;
    uint8_t *png = slurp(fixture("png_rgb8.png"), &n);
    expect_data_error(png, n, "limit.png", "too large");
    qb_max_image_pixels = 91;
    qb_image img;
    ck_assert_int_eq(qb_image_load_memory(&img, png, n, "limit.png"), 0);
    qb_image_free(&img);
    qb_max_image_pixels = saved;
    free(png);
}
END_TEST

/* A damaged critical chunk (IDAT CRC) is an error naming the file. */
START_TEST(test_corrupt_png_crc) {
    size_t n;
    uint8_t *png = slurp(fixture("png_rgb8.png"), &n);
    png[n - 12 - 6] ^= 0xFF; /* inside IDAT's data, just before its CRC */
    expect_data_error(png, n, "crc.png", "bad PNG");
    free(png);
}
END_TEST

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(test_save_png_roundtrip) {
    qb_image img, back;
    ck_assert_int_eq(qb_image_load(&img, fixture("jpg_422.jpg")), 0);
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(path, sizeof path, "%s/out.png", dir);
    ck_assert_int_eq(qb_image_save_png(&img, path), 0);
    ck_assert_int_eq(qb_image_save_png(&img, path), 0); /* overwrite in place */
    ck_assert_int_eq(count_entries(dir), 1);            /* no temporary left behind */
    ck_assert_int_eq(qb_image_load(&back, path), 0);
    ck_assert_int_eq(back.w, img.w);
    ck_assert_int_eq(back.h, img.h);
    ck_assert(memcmp(back.rgb, img.rgb, (size_t)img.w * img.h * 3) == 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);

    snprintf(path, sizeof path, "%s/no/such/dir/out.png", dir);
    ck_assert_int_eq(qb_image_save_png(&img, path), QB_EXIT_IO);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "out.png"));
    qb_image empty = {0};
    snprintf(path, sizeof path, "%s/empty.png", dir);
    ck_assert_int_eq(qb_image_save_png(&empty, path), QB_EXIT_IO);
    qb_image_free(&img);
    qb_image_free(&back);
}
END_TEST

/* Real ImageNet JPEGs from $QUESTBENCH_DATA/imagenet-sample: decode and both eval
 * crops must hash (CRC-32) as Pillow's do. Nothing to check without them. */
START_TEST(test_imagenet_sample) {
    const char *data = getenv("QUESTBENCH_DATA");
    char dir[1024], line[512];
    snprintf(dir, sizeof dir, "%s/imagenet-sample", data && *data ? data : "/nonexistent-QUESTBENCH_DATA-unset");
    struct stat st;
    if (stat(dir, &st) != 0) return;
    FILE *f = fopen(fixture("imagenet_sample.txt"), "r");
    ck_assert_ptr_nonnull(f);
    int n = 0, bad_decode = 0, bad_crop = 0;
    while (fgets(line, sizeof line, f)) {
        char name[256], path[1400];
        int w, h;
        unsigned crc_dec, crc_c1, crc_c2;
        if (line[0] == '#') continue;
        ck_assert_int_eq(sscanf(line, "%255s %d %d %x %x %x", name, &w, &h, &crc_dec, &crc_c1, &crc_c2), 6);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        qb_image img, crop;
        ck_assert_msg(qb_image_load(&img, path) == 0, "%s", qb_last_error());
        ck_assert(img.w == w && img.h == h);
        bad_decode += crc32(0, img.rgb, (unsigned)((size_t)w * h * 3)) != crc_dec;
        ck_assert_int_eq(qb_preprocess_eval_u8(&crop, &img, 224, 0.875, QB_INTERP_BICUBIC), 0);
        bad_crop += crc32(0, crop.rgb, 224 * 224 * 3) != crc_c1;
        qb_image_free(&crop);
        ck_assert_int_eq(qb_preprocess_eval_u8(&crop, &img, 224, 0.9, QB_INTERP_BILINEAR), 0);
        bad_crop += crc32(0, crop.rgb, 224 * 224 * 3) != crc_c2;
        qb_image_free(&crop);
        qb_image_free(&img);
        n++;
    }
    fclose(f);
    ck_assert_int_ge(n, 100);
    ck_assert_msg(bad_decode == 0, "%d of %d JPEGs decode differently from Pillow", bad_decode, n);
    ck_assert_msg(bad_crop == 0, "%d of %d eval crops differ from torchvision+Pillow", bad_crop, 2 * n);
}
END_TEST

Suite *image_suite(void) {
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_png_variants, 0, (int)(sizeof png_cases / sizeof png_cases[0]));
    tcase_add_loop_test(tc, test_jpeg_variants, 0, (int)(sizeof jpeg_cases / sizeof jpeg_cases[0]));
    tcase_add_test(tc, test_png_1x1);
    tcase_add_test(tc, test_magic_not_extension);
    tcase_add_test(tc, test_not_images);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_fuzz_no_crash);
    tcase_add_test(tc, test_huge_dimensions);
    tcase_add_test(tc, test_corrupt_png_crc);
    tcase_add_test(tc, test_save_png_roundtrip);
    tcase_add_test(tc, test_imagenet_sample);
    suite_add_tcase(s, tc);
    return s;
}
