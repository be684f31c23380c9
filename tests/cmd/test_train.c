/* test_train.c — `questbench train` end to end on generated data: the loss falls on a tiny
 * run (CIFAR-10 binary batches), the checkpoint loads in info/eval with the same accuracy,
 * --stop-after + --resume equals an uninterrupted run bit for bit (weights, optimizer state,
 * logs), and bad input exits with the documented codes (config 2, checkpoint 3, data 4). */
#include "qbtest.h"
#include "image.h"
#include "safetensors.h"
#include <string.h>
#include <sys/stat.h>

/* a learnable toy CIFAR: class k has its own colour layout, plus noise */
static void pixel_image(uint8_t *chw, int S, int k, int i) {
    uint32_t h = 2166136261u ^ (uint32_t)i;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                h = (h ^ (uint32_t)(c * 131 + y * 17 + x)) * 16777619u;
                int base = ((k * 37 + c * 91 + (y * 4 / S) * (k + 1) * 13 + (x * 4 / S) * 29 * (k + 2)) % 200) + 28;
                int v = base + (int)(h % 41) - 20;
                chw[((size_t)c * S + y) * S + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

static void make_binary(const char *dir, int per_batch, int n_test) {
    char p[600];
    uint8_t rec[3073];
    for (int b = 0; b <= 5; b++) {
        if (b < 5) snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b + 1);
        else snprintf(p, sizeof p, "%s/test_batch.bin", dir);
        FILE *f = fopen(p, "wb");
        ck_assert_ptr_nonnull(f);
        int n = b < 5 ? per_batch : n_test;
        for (int i = 0; i < n; i++) {
            int id = b * 1000 + i, k = id % 10;
            rec[0] = (uint8_t)k;
            pixel_image(rec + 1, 32, k, id);
            ck_assert_int_eq(fwrite(rec, 1, sizeof rec, f), sizeof rec);
        }
        fclose(f);
    }
}

static void write_text(const char *path, const char *s) { ck_assert_int_eq(qbt_write_file(path, s, strlen(s)), 0); }

static const char *TINY = "model: {img_size: 32, patch: 8, dim: 16, depth: 1, heads: 2, mlp_ratio: 2, classes: 10, "
                          "attention: %s}\ndata: %s\nformat: cifar-binary\noutput: %s\nepochs: %d\nbatch: 20\n"
                          "lr: 1e-2\nwarmup_epochs: 1\nlog_every: 3\nseed: 3\n";

static int train(const char *cfg, const char *extra, char **out, char **err) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s train --config %s --threads 2 %s", qbt_bin(), cfg, extra);
    return qbt_run(cmd, out, err);
}

/* column `col` (0-based) of the CSV row whose first field is `row` */
static double csv_field(const char *csv, int row, int col) {
    const char *s = strchr(csv, '\n');
    while (s && *++s) {
        if (atoi(s) == row) {
            for (int i = 0; i < col; i++) s = strchr(s, ',') + 1;
            return atof(s);
        }
        s = strchr(s, '\n');
    }
    return NAN;
}

START_TEST(test_train_binary_loss_falls_and_eval_loads) {
    char d[256], cfg[512], o[512], p[700], cmd[2048], *out, *err;
    snprintf(d, sizeof d, "%s", qbt_tmpdir());
    make_binary(d, 40, 60);
    snprintf(cfg, sizeof cfg, "%s/tiny.yaml", d);
    snprintf(o, sizeof o, "%s/out", d);
    char text[1024];
    snprintf(text, sizeof text, TINY, "quest", d, o, 8);
    write_text(cfg, text);
    int rc = train(cfg, "", &out, &err);
    ck_assert_msg(rc == 0, "train failed (%d): %s", rc, err);
    ck_assert_ptr_nonnull(strstr(out, "epoch 8/8"));
    free(out), free(err);
    snprintf(p, sizeof p, "%s/epochs.csv", o);
    char *ep = qbt_slurp(p);
    ck_assert_ptr_nonnull(ep);
    double l1 = csv_field(ep, 1, 3), l8 = csv_field(ep, 8, 3), top8 = csv_field(ep, 8, 5);
    ck_assert_msg(l8 < 0.85 * l1, "train loss %g after epoch 1, %g after epoch 8", l1, l8);
    free(ep);
    /* the per-step log: 80 steps; layer statistics every 3rd step */
    snprintf(p, sizeof p, "%s/train_log.csv", o);
    char *log = qbt_slurp(p);
    ck_assert_ptr_nonnull(strstr(log, "step,epoch,loss,lr,grad_norm,l0_q_mean,l0_q_max,l0_k_mean,l0_k_max,l0_logit_max,l0_entropy\n"));
    ck_assert(csv_field(log, 80, 1) == 8);
    ck_assert(csv_field(log, 1, 10) > 0);   /* step 1 (index 0) has statistics */
    ck_assert(csv_field(log, 4, 5) > 0);    /* q mean of step 4 (index 3) */
    free(log);
    /* the checkpoint is a model the engine loads without notes */
    snprintf(cmd, sizeof cmd, "%s info %s/model.safetensors", qbt_bin(), o);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "quest"));
    ck_assert_ptr_null(strstr(err, "note"));
    free(out), free(err);
    /* training's own test accuracy equals the engine's eval on the same images */
    snprintf(p, sizeof p, "%s/test", d);
    mkdir(p, 0755);
    static const char *names[10] = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
    uint8_t chw[3072], rgb[3072];
    for (int i = 0; i < 60; i++) {
        int id = 5000 + i, k = id % 10;
        pixel_image(chw, 32, k, id);
        for (int c = 0; c < 3; c++)
            for (int j = 0; j < 1024; j++) rgb[j * 3 + c] = chw[c * 1024 + j];
        qb_image img = {32, 32, rgb};
        snprintf(p, sizeof p, "%s/test/%s", d, names[k]);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/test/%s/%03d.png", d, names[k], i);
        ck_assert_int_eq(qb_image_save_png(&img, p), 0);
    }
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model.safetensors --data %s/test --batch 7", qbt_bin(), o, d);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    char want[64];
    snprintf(want, sizeof want, "top1: %.2f%%", top8);
    ck_assert_msg(strstr(out, want) != NULL, "eval says '%s', training said %.2f%%", out, top8);
    free(out), free(err);
    /* a finished run resumes to nothing */
    ck_assert_int_eq(train(cfg, "--resume", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "already has all 8 epochs"));
    free(out), free(err);
}
END_TEST

/* keep the first n columns of every CSV row, in place */
static void keep_columns(char *s, int n) {
    char *w = s;
    while (*s) {
        int col = 0;
        for (; *s && *s != '\n'; s++) {
            if (*s == ',' && ++col >= n) continue;
            if (col < n) *w++ = *s;
        }
        if (*s) *w++ = *s++;
    }
    *w = 0;
}

static int same_tensors(const char *a, const char *b) {
    st_file fa, fb;
    if (st_open(&fa, a) || st_open(&fb, b)) return 0;
    int same = fa.n_tensors == fb.n_tensors;
    for (int i = 0; same && i < fa.n_tensors; i++) {
        const st_tensor *t = st_find(&fb, fa.tensors[i].name);
        same = t && t->nbytes == fa.tensors[i].nbytes && !memcmp(t->data, fa.tensors[i].data, t->nbytes);
    }
    st_close(&fa);
    st_close(&fb);
    return same;
}

START_TEST(test_resume_bit_identical) {
    char d[256], cfg_a[512], cfg_b[512], oa[512], ob[512], text[1024], pa[700], pb[700], *out, *err;
    snprintf(d, sizeof d, "%s", qbt_tmpdir());
    make_binary(d, 20, 30);
    snprintf(oa, sizeof oa, "%s/a", d);
    snprintf(ob, sizeof ob, "%s/b", d);
    snprintf(cfg_a, sizeof cfg_a, "%s/a.yaml", d);
    snprintf(cfg_b, sizeof cfg_b, "%s/b.yaml", d);
    snprintf(text, sizeof text, TINY, "qknorm", d, oa, 4);
    strcat(text, "clip_grad: 0.5\nspurious: {strength: 0.5, size: 4}\n");
    write_text(cfg_a, text);
    snprintf(text, sizeof text, TINY, "qknorm", d, ob, 4);
    strcat(text, "clip_grad: 0.5\nspurious: {strength: 0.5, size: 4}\n");
    write_text(cfg_b, text);
    ck_assert_int_eq(train(cfg_a, "", &out, &err), 0);
    free(out), free(err);
    /* two epochs, stop, resume (at another thread count) for the other two */
    ck_assert_int_eq(train(cfg_b, "--stop-after 2", &out, &err), 0);
    ck_assert_ptr_null(strstr(out, "epoch 3/4"));
    free(out), free(err);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s train --config %s --threads 1 --resume", qbt_bin(), cfg_b);
    int rc = qbt_run(cmd, &out, &err);
    ck_assert_msg(rc == 0, "resume failed: %s", err);
    ck_assert_ptr_null(strstr(err, "differs from the config")); /* same config: no note */
    ck_assert_ptr_nonnull(strstr(out, "epoch 3/4"));
    ck_assert_ptr_null(strstr(out, "epoch 2/4"));
    free(out), free(err);
    snprintf(pa, sizeof pa, "%s/model.safetensors", oa);
    snprintf(pb, sizeof pb, "%s/model.safetensors", ob);
    ck_assert_msg(same_tensors(pa, pb), "weights differ after resume");
    snprintf(pa, sizeof pa, "%s/model.optim.safetensors", oa);
    snprintf(pb, sizeof pb, "%s/model.optim.safetensors", ob);
    ck_assert_msg(same_tensors(pa, pb), "optimizer state differs after resume");
    const char *logs[2] = {"train_log.csv", "epochs.csv"};
    for (int i = 0; i < 2; i++) {
        snprintf(pa, sizeof pa, "%s/%s", oa, logs[i]);
        snprintf(pb, sizeof pb, "%s/%s", ob, logs[i]);
        char *la = qbt_slurp(pa), *lb = qbt_slurp(pb);
        if (i == 1) keep_columns(la, 6), keep_columns(lb, 6); /* not seconds and images/s */
        ck_assert_str_eq(la, lb);
        free(la), free(lb);
    }
    /* --resume with a config of another architecture: exit 3 */
    snprintf(text, sizeof text, TINY, "qknorm", d, ob, 4);
    char *w = strstr(text, "dim: 16");
    memcpy(w, "dim: 24", 7);
    write_text(cfg_b, text);
    ck_assert_int_eq(train(cfg_b, "--resume", &out, &err), 3);
    ck_assert_ptr_nonnull(strstr(err, "checkpoint of another architecture"));
    free(out), free(err);
    /* without --resume an existing checkpoint is not overwritten: exit 2 */
    ck_assert_int_eq(train(cfg_a, "", &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "pass --resume"));
    free(out), free(err);
}
END_TEST

START_TEST(test_folder_data_and_errors) {
    char d[256], p[700], cfg[512], text[1024], *out, *err;
    snprintf(d, sizeof d, "%s", qbt_tmpdir());
    const char *cls[3] = {"ant", "bee", "cow"}, *split[2] = {"train", "test"};
    uint8_t chw[3 * 8 * 8], rgb[3 * 8 * 8];
    for (int s = 0; s < 2; s++) {
        snprintf(p, sizeof p, "%s/%s", d, split[s]);
        mkdir(p, 0755);
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "%s/%s/%s", d, split[s], cls[k]);
            mkdir(p, 0755);
            for (int i = 0; i < (s ? 3 : 8); i++) {
                pixel_image(chw, 8, k, s * 100 + i);
                for (int c = 0; c < 3; c++)
                    for (int j = 0; j < 64; j++) rgb[j * 3 + c] = chw[c * 64 + j];
                qb_image img = {8, 8, rgb};
                snprintf(p, sizeof p, "%s/%s/%s/%d.png", d, split[s], cls[k], i);
                ck_assert_int_eq(qb_image_save_png(&img, p), 0);
            }
        }
    }
    snprintf(cfg, sizeof cfg, "%s/f.yaml", d);
    snprintf(text, sizeof text,
             "model: {img_size: 8, patch: 4, dim: 8, depth: 1, heads: 1, classes: 3}\ndata: %s\noutput: %s/out\n"
             "epochs: 1\nbatch: 6\ncrop_padding: 1\n", d, d);
    write_text(cfg, text);
    int rc = train(cfg, "", &out, &err);
    ck_assert_msg(rc == 0, "folder training failed: %s", err);
    free(out), free(err);
    /* the class names travel in the checkpoint */
    snprintf(p, sizeof p, "%s/out/model.safetensors", d);
    st_file f;
    ck_assert_int_eq(st_open(&f, p), 0);
    ck_assert_str_eq(st_meta_get(&f, "questbench.class_names"), "ant\nbee\ncow");
    ck_assert_str_eq(st_meta_get(&f, "questbench.crop_pct"), "1.0");
    ck_assert_ptr_nonnull(st_meta_get(&f, "questbench.train.schedule"));
    st_close(&f);
    /* a model with more classes than folders, and a test split missing a class: exit 4 */
    snprintf(text, sizeof text,
             "model: {img_size: 8, patch: 4, dim: 8, depth: 1, heads: 1, classes: 4}\ndata: %s\noutput: %s/o2\n"
             "batch: 6\n", d, d);
    write_text(cfg, text);
    ck_assert_int_eq(train(cfg, "", &out, &err), 4);
    ck_assert_ptr_nonnull(strstr(err, "missing classes"));
    free(out), free(err);
    snprintf(p, sizeof p, "rm -r %s/test/bee", d);
    ck_assert_int_eq(system(p), 0);
    snprintf(text, sizeof text,
             "model: {img_size: 8, patch: 4, dim: 8, depth: 1, heads: 1, classes: 3}\ndata: %s\noutput: %s/o3\n"
             "batch: 6\n", d, d);
    write_text(cfg, text);
    ck_assert_int_eq(train(cfg, "", &out, &err), 4);
    ck_assert_ptr_nonnull(strstr(err, "test: 2 class folders"));
    free(out), free(err);
    /* a bad config: exit 2, one line naming file:line:column */
    write_text(cfg, "data: /x\noutput: /y\nmodel:\n  dim: 10\n  heads: 3\n");
    ck_assert_int_eq(train(cfg, "", &out, &err), 2);
    snprintf(p, sizeof p, "questbench: %s:5:10: model.heads: must divide model.dim\n", cfg);
    ck_assert_str_eq(err, p);
    free(out), free(err);
    /* missing binary batches: exit 4 */
    snprintf(text, sizeof text, "data: %s\nformat: cifar-binary\noutput: %s/o4\n", d, d);
    write_text(cfg, text);
    ck_assert_int_eq(train(cfg, "", &out, &err), 4);
    ck_assert_ptr_nonnull(strstr(err, "no CIFAR-10 binary batches"));
    free(out), free(err);
}
END_TEST

START_TEST(test_shipped_configs_parse) {
    const char *names[6] = {"train-cifar10-sdpa", "train-cifar10-qknorm", "train-cifar10-quest",
                            "instability-sdpa", "instability-qknorm", "instability-quest"};
    for (int i = 0; i < 6; i++) {
        char cmd[2048], rel[128], *out, *err;
        snprintf(rel, sizeof rel, "../../configs/%s.yaml", names[i]);
        snprintf(cmd, sizeof cmd, "QUESTBENCH_DATA=/nonexistent %s train --config %s --dry-run", qbt_bin(), qbt_fixture(rel));
        ck_assert_msg(qbt_run(cmd, &out, &err) == 0, "%s: %s", names[i], err);
        ck_assert_ptr_nonnull(strstr(out, "dim 128 depth 6 heads 4"));
        free(out), free(err);
    }
}
END_TEST

Suite *train_cli_suite(void) {
    Suite *s = suite_create("train_cli");
    TCase *tc = tcase_create("train_cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_train_binary_loss_falls_and_eval_loads);
    tcase_add_test(tc, test_resume_bit_identical);
    tcase_add_test(tc, test_folder_data_and_errors);
    tcase_add_test(tc, test_shipped_configs_parse);
    suite_add_tcase(s, tc);
    return s;
}
