/* test_resize.c — lib/resize.c: Pillow 9.4 Image.resize bit for bit, and the timm/torchvision
 * eval transform. References: tests/fixtures/images (tests/ref/make_image_fixtures.py). */
#include "qbtest.h"
#include "image.h"
#include <string.h>

/* Decode tests/fixtures/images/<name>. */
static qb_image load_fixture(const char *name) {
    qb_image img;
    char path[4096], rel[512];
    snprintf(rel, sizeof rel, "images/%s", name);
    snprintf(path, sizeof path, "%s", qbt_fixture(rel));
    int rc = qb_image_load(&img, path);
    ck_assert_msg(rc == 0, "%s: %s", name, qb_last_error());
    return img;
}

/* Number of differing bytes; sizes must agree. */
static long count_mismatch(const qb_image *a, const qb_image *b) {
    ck_assert_int_eq(a->w, b->w);
    ck_assert_int_eq(a->h, b->h);
    long bad = 0;
    for (size_t i = 0; i < (size_t)a->w * a->h * 3; i++) bad += a->rgb[i] != b->rgb[i];
    return bad;
}

/* A 1-row image whose three channels all hold `v` (a mode-L row as RGB). */
static qb_image gray_row(const uint8_t *v, int n) {
    qb_image img = {.w = n, .h = 1, .rgb = malloc((size_t)n * 3)};
    for (int i = 0; i < n; i++) img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = v[i];
    return img;
}

START_TEST(test_interp_names) {
    qb_interp f;
    const char *names[] = {"nearest", "bilinear", "bicubic", "box"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(qb_interp_parse(names[i], &f), 0);
        ck_assert_str_eq(qb_interp_name(f), names[i]);
    }
    ck_assert_int_eq(qb_interp_parse("3", &f), 0); /* DeiT's interpolation=3 */
    ck_assert_int_eq(f, QB_INTERP_BICUBIC);
    ck_assert_int_eq(qb_interp_parse("lanczos", &f), QB_EXIT_USAGE);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "lanczos"));
    ck_assert_int_eq(qb_interp_parse("", &f), QB_EXIT_USAGE);
}
END_TEST

/* engine.md §4.5: mode L row [0, 255, 0, 255]. */
START_TEST(test_row_vectors) {
    static const uint8_t in[4] = {0, 255, 0, 255};
    static const struct { qb_interp f; int w; uint8_t out[7]; } cases[] = {
        {QB_INTERP_BICUBIC, 2, {107, 148}},
        {QB_INTERP_BICUBIC, 7, {0, 87, 251, 128, 4, 168, 255}},
        {QB_INTERP_BILINEAR, 7, {0, 91, 237, 128, 18, 164, 255}},
    };
    qb_image src = gray_row(in, 4);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        qb_image dst;
        ck_assert_int_eq(qb_resize(&dst, &src, cases[c].w, 1, cases[c].f), 0);
        for (int i = 0; i < cases[c].w; i++)
            for (int ch = 0; ch < 3; ch++) ck_assert_int_eq(dst.rgb[3 * i + ch], cases[c].out[i]);
        qb_image_free(&dst);
    }
    qb_image_free(&src);
}
END_TEST

START_TEST(test_coeffs_4_to_2) {
    int *bounds;
    int32_t *k;
    int ksize = qb_resize_coeffs(4, 2, QB_INTERP_BICUBIC, &bounds, &k);
    ck_assert_int_ge(ksize, 4);
    static const int32_t want[2][4] = {{1923834, 1923834, 502623, -155987}, {-155987, 502623, 1923834, 1923834}};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(bounds[2 * i], 0);
        ck_assert_int_eq(bounds[2 * i + 1], 4);
        int64_t sum = 0;
        for (int t = 0; t < 4; t++) {
            ck_assert_int_eq(k[i * ksize + t], want[i][t]);
            sum += k[i * ksize + t];
        }
        ck_assert_int_eq(sum, 1 << 22);
    }
    free(bounds);
    free(k);
}
END_TEST

START_TEST(test_coeffs_4_to_7) {
    static const struct { int lo, n; int32_t c[4]; } want[7] = {
        {0, 2, {4527025, -332721}},          {0, 3, {2927401, 1427046, -160142}},
        {0, 3, {189853, 4133307, -128856}},  {0, 4, {-262144, 2359296, 2359296, -262144}},
        {1, 3, {-128856, 4133307, 189853}},  {1, 3, {-160142, 1427046, 2927401}},
        {2, 2, {-332721, 4527025}},
    };
    int *bounds;
    int32_t *k;
    int ksize = qb_resize_coeffs(4, 7, QB_INTERP_BICUBIC, &bounds, &k);
    ck_assert_int_eq(ksize, 5); /* 2·ceil(2.0) + 1 */
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(bounds[2 * i], want[i].lo);
        ck_assert_int_eq(bounds[2 * i + 1], want[i].n);
        for (int t = 0; t < want[i].n; t++) ck_assert_int_eq(k[i * ksize + t], want[i].c[t]);
    }
    free(bounds);
    free(k);
    ck_assert_int_eq(qb_resize_coeffs(4, 7, QB_INTERP_NEAREST, &bounds, &k), 0);
    ck_assert_int_eq(qb_resize_coeffs(0, 7, QB_INTERP_BOX, &bounds, &k), 0);
}
END_TEST

/* Image.resize on committed inputs of odd sizes, up and down, every filter: 0 mismatches. */
static const struct { int w, h, ow, oh; } resize_cases[] = {
    {37, 23, 224, 224}, {500, 375, 330, 248}, {7, 5, 3, 2}, {13, 17, 26, 34},
    {1, 6, 3, 2},       {5, 9, 5, 4},         {13, 17, 5, 7},
};
static const qb_interp all_filters[] = {QB_INTERP_NEAREST, QB_INTERP_BILINEAR, QB_INTERP_BICUBIC, QB_INTERP_BOX};

START_TEST(test_pil_resize) {
    int c = _i / 4; /* loop test: one case × filter per iteration */
    qb_interp f = all_filters[_i % 4];
    char name[256];
    snprintf(name, sizeof name, "rs_%dx%d.png", resize_cases[c].w, resize_cases[c].h);
    qb_image src = load_fixture(name);
    snprintf(name, sizeof name, "rs_%dx%d_%dx%d_%s.png", resize_cases[c].w, resize_cases[c].h, resize_cases[c].ow,
             resize_cases[c].oh, qb_interp_name(f));
    qb_image want = load_fixture(name), got;
    ck_assert_int_eq(qb_resize(&got, &src, resize_cases[c].ow, resize_cases[c].oh, f), 0);
    long bad = count_mismatch(&got, &want);
    ck_assert_msg(bad == 0, "%s: %ld of %d values differ from Pillow", name, bad, want.w * want.h * 3);
    qb_image_free(&src);
    qb_image_free(&want);
    qb_image_free(&got);
}
END_TEST

START_TEST(test_resize_identity_and_errors) {
    qb_image src = load_fixture("rs_13x17.png"), dst;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(qb_resize(&dst, &src, 13, 17, all_filters[i]), 0);
        ck_assert_int_eq(count_mismatch(&dst, &src), 0);
        ck_assert_ptr_ne(dst.rgb, src.rgb);
        qb_image_free(&dst);
    }
    ck_assert_int_eq(qb_resize(&dst, &src, 0, 5, QB_INTERP_BICUBIC), QB_EXIT_USAGE);
    ck_assert_ptr_null(dst.rgb);
    ck_assert_int_eq(qb_resize(&dst, &src, 5, -1, QB_INTERP_NEAREST), QB_EXIT_USAGE);
    qb_image empty = {0};
    ck_assert_int_eq(qb_resize(&dst, &empty, 5, 5, QB_INTERP_BICUBIC), QB_EXIT_USAGE);
    /* 1×1 up to 224×224 is a constant image for every filter */
    qb_image one = {.w = 1, .h = 1, .rgb = (uint8_t[]){12, 200, 99}};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(qb_resize(&dst, &one, 224, 224, all_filters[i]), 0);
        for (int p = 0; p < 224 * 224; p++) ck_assert(memcmp(dst.rgb + 3 * p, one.rgb, 3) == 0);
        qb_image_free(&dst);
    }
    qb_image_free(&src);
}
END_TEST

START_TEST(test_eval_sizes) {
    static const struct { int w, h, size; double crop; int nw, nh; } cases[] = {
        {500, 375, 224, 0.9, 330, 248},   /* 224/0.9 = 248.9 -> 248; int(248·500/375) = 330 */
        {500, 333, 224, 0.9, 372, 248},   {500, 375, 224, 0.875, 341, 256}, {333, 500, 224, 0.875, 256, 384},
        {248, 331, 224, 0.9, 248, 331},   {1, 6, 224, 0.875, 256, 1536},     {37, 23, 224, 0.9, 398, 248},
        {13, 17, 32, 1.25, 25, 32},       {640, 427, 224, 0.9, 371, 248},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int nw, nh;
        ck_assert_int_eq(qb_eval_resize_size(cases[i].w, cases[i].h, cases[i].size, cases[i].crop, &nw, &nh), 0);
        ck_assert_int_eq(nw, cases[i].nw);
        ck_assert_int_eq(nh, cases[i].nh);
    }
    int nw, nh;
    ck_assert_int_eq(qb_eval_resize_size(500, 375, 224, 0.0, &nw, &nh), QB_EXIT_USAGE);
    ck_assert_int_eq(qb_eval_resize_size(500, 375, 0, 0.9, &nw, &nh), QB_EXIT_USAGE);
    ck_assert_int_eq(qb_eval_resize_size(500, 375, 224, 1000.0, &nw, &nh), QB_EXIT_USAGE);
}
END_TEST

/* Pixel (x, y) holds (x, y, 7) so a crop tells its own offset. */
static qb_image coord_image(int w, int h) {
    qb_image img = {.w = w, .h = h, .rgb = malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)x, p[1] = (uint8_t)y, p[2] = 7;
        }
    return img;
}

START_TEST(test_center_crop_offsets) {
    /* Python round(): 53.5 -> 54, 52.5 -> 52, 12.0 -> 12. */
    static const struct { int w, h, x0, y0; } cases[] = {{331, 248, 54, 12}, {329, 248, 52, 12}, {224, 224, 0, 0},
                                                         {225, 226, 0, 1}, {227, 230, 2, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_image src = coord_image(cases[i].w, cases[i].h), dst;
        ck_assert_int_eq(qb_center_crop(&dst, &src, 224), 0);
        ck_assert_int_eq(dst.rgb[0], (uint8_t)cases[i].x0);
        ck_assert_int_eq(dst.rgb[1], (uint8_t)cases[i].y0);
        qb_image_free(&src);
        qb_image_free(&dst);
    }
    /* smaller than the crop: pad (size−n)//2 before, (size−n+1)//2 after, zeros */
    qb_image src = coord_image(5, 12), dst;
    ck_assert_int_eq(qb_center_crop(&dst, &src, 8), 0); /* x: pad 1 left, 2 right; y: offset 2 */
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            const uint8_t *p = dst.rgb + (y * 8 + x) * 3;
            if (x < 1 || x >= 6) ck_assert(p[0] == 0 && p[1] == 0 && p[2] == 0);
            else ck_assert(p[0] == x - 1 && p[1] == y + 2 && p[2] == 7);
        }
    qb_image_free(&src);
    qb_image_free(&dst);
}
END_TEST

static float *load_tensor_lut(void) {
    FILE *f = fopen(qbt_fixture("images/tensor_lut.bin"), "rb");
    ck_assert_ptr_nonnull(f);
    float *lut = malloc(256 * sizeof(float));
    ck_assert_int_eq(fread(lut, sizeof(float), 256, f), 256);
    fclose(f);
    return lut;
}

START_TEST(test_to_tensor_exact) {
    float *lut = load_tensor_lut();
    uint8_t px[256 * 3];
    for (int i = 0; i < 256; i++) px[3 * i] = (uint8_t)i, px[3 * i + 1] = (uint8_t)(255 - i), px[3 * i + 2] = 0;
    qb_image img = {.w = 256, .h = 1, .rgb = px};
    float out[3 * 256];
    qb_image_to_chw(out, &img);
    for (int i = 0; i < 256; i++) {
        ck_assert(memcmp(&out[i], &lut[i], 4) == 0); /* torch's ToTensor, bit for bit */
        ck_assert(memcmp(&out[256 + i], &lut[255 - i], 4) == 0);
        ck_assert(out[512 + i] == 0.0f);
    }
    free(lut);
}
END_TEST

/* Full eval transform vs torchvision 0.14 + Pillow 9.4 (uint8 crop) and torch ToTensor. */
static const struct { const char *name, *input; int size; double crop; qb_interp f; } eval_cases[] = {
    {"ev_500x375_s224_c0.9_bicubic", "rs_500x375.png", 224, 0.9, QB_INTERP_BICUBIC},
    {"ev_500x375_s224_c0.875_bilinear", "rs_500x375.png", 224, 0.875, QB_INTERP_BILINEAR},
    {"ev_333x500_s224_c0.875_bicubic", "rs_333x500.png", 224, 0.875, QB_INTERP_BICUBIC},
    {"ev_37x23_s64_c0.9_bicubic", "rs_37x23.png", 64, 0.9, QB_INTERP_BICUBIC},
    {"ev_248x331_s224_c0.9_bicubic", "rs_248x331.png", 224, 0.9, QB_INTERP_BICUBIC},
    {"ev_13x17_s32_c1.25_bicubic", "rs_13x17.png", 32, 1.25, QB_INTERP_BICUBIC},
    {"ev_7x5_s16_c0.9_box", "rs_7x5.png", 16, 0.9, QB_INTERP_BOX},
    {"ev_7x5_s16_c0.875_nearest", "rs_7x5.png", 16, 0.875, QB_INTERP_NEAREST},
};

START_TEST(test_eval_pipeline) {
    char name[256];
    snprintf(name, sizeof name, "%s.png", eval_cases[_i].name);
    qb_image want = load_fixture(name);
    qb_image src = load_fixture(eval_cases[_i].input), crop;
    int s = eval_cases[_i].size;
    ck_assert_int_eq(qb_preprocess_eval_u8(&crop, &src, s, eval_cases[_i].crop, eval_cases[_i].f), 0);
    long bad = count_mismatch(&crop, &want);
    ck_assert_msg(bad == 0, "%s: %ld crop values differ", eval_cases[_i].name, bad);

    float *lut = load_tensor_lut();
    float *out = malloc(sizeof(float) * 3 * s * s);
    ck_assert_int_eq(qb_preprocess_eval(out, &src, s, eval_cases[_i].crop, eval_cases[_i].f), 0);
    long bad_t = 0;
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < s * s; p++)
            bad_t += memcmp(&out[c * s * s + p], &lut[want.rgb[3 * p + c]], 4) != 0;
    ck_assert_msg(bad_t == 0, "%s: %ld tensor values differ", eval_cases[_i].name, bad_t);
    free(out);
    free(lut);
    qb_image_free(&want);
    qb_image_free(&src);
    qb_image_free(&crop);
}
END_TEST

Suite *resize_suite(void) {
    Suite *s = suite_create("resize");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interp_names);
    tcase_add_test(tc, test_row_vectors);
    tcase_add_test(tc, test_coeffs_4_to_2);
    tcase_add_test(tc, test_coeffs_4_to_7);
    tcase_add_loop_test(tc, test_pil_resize, 0, (int)(4 * sizeof resize_cases / sizeof resize_cases[0]));
    tcase_add_test(tc, test_resize_identity_and_errors);
    tcase_add_test(tc, test_eval_sizes);
    tcase_add_test(tc, test_center_crop_offsets);
    tcase_add_test(tc, test_to_tensor_exact);
    tcase_add_loop_test(tc, test_eval_pipeline, 0, (int)(sizeof eval_cases / sizeof eval_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}
