/* test_model.c — lib/model.c: architecture inference, metadata, overrides and the strict
 * key/shape check, on variants of a fixture checkpoint rewritten with st_write_f32. */
#include "qbtest.h"
#include "model.h"
#include "safetensors.h"
#include <string.h>

/* Rewrite the sdpa_tiny fixture: drop key `drop`, add key `extra`, reshape key `reshape`
 * to [7], replace metadata key `mkey` by `mval` (NULL value: remove it). */
static const char *rewrite(const char *drop, const char *extra, const char *reshape, const char *mkey, const char *mval) {
    static char out[512];
    st_file f;
    ck_assert_int_eq(st_open(&f, qbt_fixture("vit/sdpa_tiny.safetensors")), 0);
    st_write_tensor *t = calloc((size_t)f.n_tensors + 1, sizeof *t);
    float **bufs = calloc((size_t)f.n_tensors + 1, sizeof *bufs);
    int n = 0;
    static float seven[7];
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *s = &f.tensors[i];
        if (drop && !strcmp(s->name, drop)) continue;
        bufs[n] = malloc(s->numel * sizeof(float));
        ck_assert_int_eq(st_to_f32(&f, s, bufs[n]), 0);
        t[n].name = s->name, t[n].ndim = s->ndim, t[n].data = bufs[n];
        memcpy(t[n].shape, s->shape, sizeof s->shape);
        if (reshape && !strcmp(s->name, reshape)) t[n].ndim = 1, t[n].shape[0] = 7, t[n].data = seven;
        n++;
    }
    if (extra) t[n].name = extra, t[n].ndim = 1, t[n].shape[0] = 7, t[n].data = seven, n++;
    st_meta meta[64];
    int nm = 0;
    for (int i = 0; i < f.n_meta; i++) {
        if (mkey && !strcmp(f.meta[i].key, mkey)) continue;
        if (mkey && !strcmp(mkey, "*") && strncmp(f.meta[i].key, "questbench.", 11) == 0) continue;
        meta[nm++] = f.meta[i];
    }
    if (mkey && mval) meta[nm].key = (char *)mkey, meta[nm].value = (char *)mval, nm++;
    snprintf(out, sizeof out, "%s/m.safetensors", qbt_tmpdir());
    ck_assert_int_eq(st_write_f32(out, t, n, meta, nm), 0);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs), free(t);
    st_close(&f);
    return out;
}

static void expect_fail(const char *path, const qb_model_overrides *ov, int code, const char *needle) {
    qb_model m;
    int rc = qb_model_load(&m, path, ov);
    ck_assert_msg(rc == code, "expected %d, got %d (%s)", code, rc, rc ? qb_last_error() : "loaded");
    ck_assert_msg(strstr(qb_last_error(), needle) != NULL, "message lacks '%s': %s", needle, qb_last_error());
}

START_TEST(test_infers_architecture) {
    qb_model m;
    ck_assert_int_eq(qb_model_load(&m, qbt_fixture("vit/quest_avg.safetensors"), NULL), 0);
    const vit_config *c = &m.vit.cfg;
    ck_assert_int_eq(c->dim, 32);
    ck_assert_int_eq(c->heads, 4);
    ck_assert_int_eq(c->depth, 2);
    ck_assert_int_eq(c->patch, 4);
    ck_assert_int_eq(c->img_size, 12);
    ck_assert_int_eq(c->mlp_dim, 128);
    ck_assert_int_eq(c->classes, 6);
    ck_assert_int_eq(c->pool, VIT_POOL_AVG);
    ck_assert_int_eq(c->qkv_bias, 0);
    ck_assert_int_eq(c->attn, VIT_ATTN_QUEST);
    ck_assert_float_eq(c->attn_scale, 1.0f);
    ck_assert_int_eq(m.interp, QB_INTERP_BICUBIC);
    ck_assert_str_eq(m.notes, ""); /* everything came from metadata */
    qb_model_free(&m);
}
END_TEST

START_TEST(test_defaults_are_noted) {
    /* no num_heads and a width that is not a multiple of 64: refuse, ask for --heads */
    const char *p = rewrite(NULL, NULL, NULL, "questbench.num_heads", NULL);
    expect_fail(p, NULL, QB_EXIT_MODEL, "pass --heads");
    qb_model_overrides ov = {0};
    ov.heads = 2;
    qb_model m;
    ck_assert_int_eq(qb_model_load(&m, p, &ov), 0);
    ck_assert_int_eq(m.vit.cfg.heads, 2);
    qb_model_free(&m);
    /* no mean metadata: ImageNet's, and a note saying so */
    p = rewrite(NULL, NULL, NULL, "questbench.mean", NULL);
    ck_assert_int_eq(qb_model_load(&m, p, NULL), 0);
    ck_assert_float_eq(m.vit.cfg.mean[0], 0.485f);
    ck_assert_ptr_nonnull(strstr(m.notes, "mean: ImageNet"));
    qb_model_free(&m);
}
END_TEST

START_TEST(test_overrides) {
    qb_model_overrides ov = {0};
    ov.attention = "quest", ov.heads = 4, ov.crop_pct = 0.9, ov.interpolation = "bilinear", ov.has_mean = 1;
    ov.mean[0] = ov.mean[1] = ov.mean[2] = 0.5f;
    qb_model m;
    ck_assert_int_eq(qb_model_load(&m, qbt_fixture("vit/sdpa_tiny.safetensors"), &ov), 0);
    ck_assert_int_eq(m.vit.cfg.attn, VIT_ATTN_QUEST);
    ck_assert_int_eq(m.vit.cfg.heads, 4);
    ck_assert_double_eq(m.crop_pct, 0.9);
    ck_assert_int_eq(m.interp, QB_INTERP_BILINEAR);
    ck_assert_float_eq(m.vit.cfg.mean[1], 0.5f);
    ck_assert_ptr_nonnull(strstr(m.notes, "overrides"));
    qb_model_free(&m);
}
END_TEST

START_TEST(test_rejects_inconsistent_files) {
    expect_fail(rewrite("blocks.1.mlp.fc2.bias", NULL, NULL, NULL, NULL), NULL, QB_EXIT_MODEL,
                "missing tensor 'blocks.1.mlp.fc2.bias'");
    expect_fail(rewrite(NULL, "blocks.0.attn.gate.weight", NULL, NULL, NULL), NULL, QB_EXIT_MODEL,
                "unexpected tensor 'blocks.0.attn.gate.weight'");
    expect_fail(rewrite(NULL, NULL, "blocks.0.norm2.bias", NULL, NULL), NULL, QB_EXIT_MODEL,
                "'blocks.0.norm2.bias' has shape [7], expected [32]");
    expect_fail(rewrite(NULL, NULL, NULL, "questbench.depth", "5"), NULL, QB_EXIT_MODEL, "questbench.depth = 5");
    expect_fail(rewrite(NULL, NULL, NULL, "questbench.num_heads", "4"), NULL, QB_EXIT_MODEL, "head_dim = 16 disagrees with 4 heads");
    expect_fail(rewrite(NULL, NULL, NULL, "questbench.attn", "flash"), NULL, QB_EXIT_MODEL, "questbench.attn = 'flash'");
    expect_fail(rewrite(NULL, NULL, NULL, "questbench.act", "relu"), NULL, QB_EXIT_MODEL, "activation 'relu'");
    expect_fail(rewrite(NULL, NULL, NULL, "questbench.crop_pct", "abc"), NULL, QB_EXIT_MODEL, "not a valid number");
    expect_fail(rewrite("head.weight", NULL, NULL, NULL, NULL), NULL, QB_EXIT_MODEL, "features-only");
    expect_fail(rewrite(NULL, NULL, "pos_embed", NULL, NULL), NULL, QB_EXIT_MODEL, "pos_embed");
    qb_model_overrides ov = {0};
    ov.attention = "qknorm";
    expect_fail(qbt_fixture("vit/sdpa_tiny.safetensors"), &ov, QB_EXIT_MODEL, "q_norm");
    ov.attention = NULL, ov.heads = 5;
    expect_fail(qbt_fixture("vit/sdpa_tiny.safetensors"), &ov, QB_EXIT_MODEL, "5 heads do not divide width 32");
}
END_TEST

/* A checkpoint as timm/safetensors write it (metadata {"format":"pt"} only) loads with the
 * defaults noted, and with --heads gives the same logits as the annotated file. */
/* Regression (hardening): a 66 KB file whose few tensors imply a 10-block ViT of width 4096 made
 * the loader allocate and zero ~8 GB before finding the missing tensors; it is refused first. */
START_TEST(test_refuses_parameter_bomb) {
    char path[300], hdr[600];
    snprintf(path, sizeof path, "%s/bomb.safetensors", qbt_tmpdir());
    int n = snprintf(hdr, sizeof hdr,
                     "{\"patch_embed.proj.weight\":{\"dtype\":\"F32\",\"shape\":[4096,3,1,1],\"data_offsets\":[0,49152]},"
                     "\"pos_embed\":{\"dtype\":\"F32\",\"shape\":[1,4,4096],\"data_offsets\":[49152,114688]},"
                     "\"blocks.0.mlp.fc1.weight\":{\"dtype\":\"F32\",\"shape\":[16384,0],\"data_offsets\":[114688,114688]},"
                     "\"head.weight\":{\"dtype\":\"F32\",\"shape\":[1000,0],\"data_offsets\":[114688,114688]},"
                     "\"blocks.9.norm1.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[114688,114688]}}");
    while (n % 8) hdr[n++] = ' ';
    size_t total = 8 + (size_t)n + 114688;
    uint8_t *buf = calloc(1, total);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, hdr, (size_t)n);
    ck_assert_int_eq(qbt_write_file(path, buf, total), 0);
    free(buf);
    qb_model m;
    qb_model_overrides ov = {0};
    ov.heads = 64;
    ck_assert_int_eq(qb_model_load(&m, path, &ov), QB_EXIT_MODEL);
    ck_assert_msg(strstr(qb_last_error(), "10-block ViT of width 4096 with at least") != NULL, "%s", qb_last_error());
}
END_TEST

START_TEST(test_plain_timm_checkpoint) {
    const char *p = rewrite(NULL, NULL, NULL, "*", NULL);
    qb_model_overrides ov = {0};
    ov.heads = 2;
    qb_model plain, annotated;
    ck_assert_int_eq(qb_model_load(&plain, p, &ov), 0);
    ck_assert_ptr_nonnull(strstr(plain.notes, "attention: sdpa (no questbench.attn metadata"));
    ck_assert_ptr_nonnull(strstr(plain.notes, "interpolation: bilinear"));
    ck_assert_int_eq(qb_model_load(&annotated, qbt_fixture("vit/sdpa_tiny.safetensors"), NULL), 0);
    float x[2 * 3 * 16 * 16], l1[20], l2[20];
    for (int i = 0; i < 2 * 3 * 16 * 16; i++) x[i] = (float)((i * 37) % 101) / 100.0f;
    ck_assert_int_eq(vit_forward(&plain.vit, x, 2, VIT_MODE_INFER, l1), 0);
    ck_assert_int_eq(vit_forward(&annotated.vit, x, 2, VIT_MODE_INFER, l2), 0);
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    qb_model_free(&plain);
    qb_model_free(&annotated);
}
END_TEST

START_TEST(test_param_lookup) {
    qb_model m;
    ck_assert_int_eq(qb_model_load(&m, qbt_fixture("vit/qknorm_small.safetensors"), NULL), 0);
    float *p;
    size_t n;
    ck_assert_int_eq(qb_param_lookup(&m.vit.cfg, &m.vit.params, "blocks.1.attn.k_norm.bias", &p, &n), 0);
    ck_assert_uint_eq(n, 16);
    ck_assert_ptr_eq(p, m.vit.params.knb + 16);
    ck_assert_int_ne(qb_param_lookup(&m.vit.cfg, &m.vit.params, "blocks.2.norm1.weight", &p, &n), 0);
    qb_model_free(&m);
}
END_TEST

Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_infers_architecture);
    tcase_add_test(tc, test_defaults_are_noted);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_rejects_inconsistent_files);
    tcase_add_test(tc, test_param_lookup);
    tcase_add_test(tc, test_plain_timm_checkpoint);
    tcase_add_test(tc, test_refuses_parameter_bomb);
    suite_add_tcase(s, tc);
    return s;
}
