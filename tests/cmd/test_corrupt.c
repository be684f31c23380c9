/* test_corrupt.c — `questbench corrupt` evaluation paths: on-the-fly evaluation with the 16-px
 * fixture model on a generated 32-px ImageFolder, the result rows read back in the results schema,
 * --resume appending nothing the second time, generate-mode layout, --from on the generated tree,
 * and the exit codes of bad input. */
#include "qbtest.h"
#include "image.h"
#include "results.h"
#include <string.h>
#include <sys/stat.h>

/* DIR/<class>/img<k>.png: 3 classes × 2 images of 32×32, each a smooth pattern. */
static void make_tree(const char *dir) {
    static const char *cls[3] = {"ant", "bee", "cat"};
    char p[1024];
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "mkdir -p %s/%s", dir, cls[c]);
        ck_assert_int_eq(system(p), 0);
        for (int k = 0; k < 2; k++) {
            uint8_t px[32 * 32 * 3];
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    for (int ch = 0; ch < 3; ch++)
                        px[(y * 32 + x) * 3 + ch] = (uint8_t)(40 + 60 * c + 3 * x * (ch + 1) + 2 * y * (k + 1));
            qb_image im = {32, 32, px};
            snprintf(p, sizeof p, "%s/%s/img%d.png", dir, cls[c], k);
            ck_assert_int_eq(qb_image_save_png(&im, p), 0);
        }
    }
}

static int count_kind(const qb_results *rs, const char *kind) {
    int n = 0;
    for (int i = 0; i < rs->n; i++) n += !strcmp(rs->rows[i].kind, kind);
    return n;
}

START_TEST(test_corrupt_eval_rows_resume_from) {
    const char *d = qbt_tmpdir(), *bin = qbt_bin();
    char model[1024], data[1200], csv[1200], gen[1200], csv2[1200], cmd[8192], *out = NULL, *err = NULL;
    snprintf(model, sizeof model, "%s", qbt_fixture("vit/sdpa_tiny.safetensors"));
    snprintf(data, sizeof data, "%s/data", d);
    snprintf(csv, sizeof csv, "%s/results.csv", d);
    snprintf(csv2, sizeof csv2, "%s/from.csv", d);
    snprintf(gen, sizeof gen, "%s/gen", d);
    make_tree(data);

    /* on the fly: 1 clean row + 3 corruptions × 2 severities */
    snprintf(cmd, sizeof cmd,
             "%s corrupt --model tiny=%s --data %s --preset cifar --corruptions impulse_noise,contrast,pixelate "
             "--severities 1,4 --seed 11 --threads 2 --out %s",
             bin, model, data, csv);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "contrast"));
    ck_assert_ptr_nonnull(strstr(out, "clean error"));
    free(out), free(err);
    qb_results rs = {0};
    ck_assert_int_eq(qb_results_read(&rs, csv), 0);
    ck_assert_int_eq(rs.n, 7);
    ck_assert_int_eq(count_kind(&rs, "clean"), 1);
    ck_assert_int_eq(count_kind(&rs, "corruption"), 6);
    char sha[65];
    ck_assert_int_eq(qb_sha256_file(model, sha), 0);
    long contrast1_correct = -1;
    for (int i = 0; i < rs.n; i++) {
        const qb_result *r = &rs.rows[i];
        ck_assert_str_eq(r->model, "tiny");
        ck_assert_str_eq(r->model_sha256, sha);
        ck_assert_str_eq(r->attention, "sdpa");
        ck_assert_str_eq(r->dataset, data);
        ck_assert_str_eq(r->preset, "cifar");
        ck_assert_str_eq(r->metric, "top1");
        ck_assert_int_eq((int)r->seed, 11);
        ck_assert_int_eq(r->n, 6);
        ck_assert(r->correct >= 0 && r->correct <= 6);
        ck_assert_double_eq_tol(r->value, (double)r->correct / r->n, 1e-12);
        if (!strcmp(r->kind, "clean")) {
            ck_assert_str_eq(r->corruption, "");
            ck_assert_int_eq(r->severity, 0);
        } else {
            ck_assert(r->severity == 1 || r->severity == 4);
            ck_assert(!strcmp(r->corruption, "impulse_noise") || !strcmp(r->corruption, "contrast") ||
                      !strcmp(r->corruption, "pixelate"));
            if (!strcmp(r->corruption, "contrast") && r->severity == 1) contrast1_correct = r->correct;
        }
    }
    qb_results_free(&rs);

    /* --resume: nothing new the second time; a wider request adds only the missing rows, and the
     * default model name is the file stem */
    snprintf(cmd, sizeof cmd,
             "%s corrupt --model tiny=%s --data %s --preset cifar --corruptions impulse_noise,contrast,pixelate "
             "--severities 1,4 --seed 11 --threads 2 --out %s --resume",
             bin, model, data, csv);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(out), free(err);
    ck_assert_int_eq(qb_results_read(&rs, csv), 0);
    ck_assert_int_eq(rs.n, 7);
    qb_results_free(&rs);
    snprintf(cmd, sizeof cmd,
             "%s corrupt --model tiny=%s --model %s --data %s --preset cifar --corruptions contrast "
             "--severities 1-2 --seed 11 --threads 2 --out %s --resume",
             bin, model, model, data, csv);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(out), free(err);
    ck_assert_int_eq(qb_results_read(&rs, csv), 0);
    ck_assert_int_eq(rs.n, 7 + 1 + 3); /* tiny: contrast/2; sdpa_tiny: clean, contrast/1, contrast/2 */
    int stem = 0;
    for (int i = 0; i < rs.n; i++) stem += !strcmp(rs.rows[i].model, "sdpa_tiny");
    ck_assert_int_eq(stem, 3);
    qb_results_free(&rs);

    /* generate: OUT/<corruption>/<severity>/<class>/<file>.png, 32×32 */
    snprintf(cmd, sizeof cmd, "%s corrupt --data %s --preset cifar --corruptions contrast --severities 1 --save %s --threads 2",
             bin, data, gen);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(out), free(err);
    char p[1400];
    snprintf(p, sizeof p, "%s/contrast/1/bee/img1.png", gen);
    qb_image im;
    ck_assert_msg(qb_image_load(&im, p) == 0, "%s", qb_last_error());
    ck_assert_int_eq(im.w, 32);
    ck_assert_int_eq(im.h, 32);
    qb_image_free(&im);
    struct stat st;
    snprintf(p, sizeof p, "%s/contrast/2", gen);
    ck_assert_int_ne(stat(p, &st), 0);

    /* --from the generated tree: same contrast/1 score as in memory (PNG is lossless) */
    snprintf(cmd, sizeof cmd, "%s corrupt --from %s --model tiny=%s --preset cifar --corruptions contrast --severities 1 "
             "--seed 11 --threads 2 --out %s", bin, gen, model, csv2);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(out), free(err);
    ck_assert_int_eq(qb_results_read(&rs, csv2), 0);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_str_eq(rs.rows[0].kind, "corruption");
    ck_assert_str_eq(rs.rows[0].dataset, gen);
    ck_assert_int_eq(rs.rows[0].n, 6);
    ck_assert_int_eq(rs.rows[0].correct, contrast1_correct);
    qb_results_free(&rs);
}
END_TEST

START_TEST(test_corrupt_bad_input) {
    const char *d = qbt_tmpdir(), *bin = qbt_bin();
    char model[1024], data[1200], cmd[8192], *out = NULL, *err = NULL;
    snprintf(model, sizeof model, "%s", qbt_fixture("vit/sdpa_tiny.safetensors"));
    snprintf(data, sizeof data, "%s/data", d);
    make_tree(data);
    static const struct { const char *args; int code; const char *says; } cases[] = {
        {"--model %s --data %s --preset cifar --resume", 2, "--resume"},
        {"--model %s --data %s --preset cifar --corruptions fogg", 2, "fogg"},
        {"--model %s --data %s --preset cifar --severities 0-2", 2, "1-5"},
        {"--model %s --data %s --preset svhn", 2, "svhn"},
        {"--model %s.missing --data %s --preset cifar --corruptions contrast", 3, "missing"},
        {"--model %s --data %s/none --preset cifar --corruptions contrast", 4, "none"},
        {"--model %s --data %s --preset imagenet --corruptions contrast", 4, "smaller"},
        {"--model %s --data %s --preset cifar --corruptions contrast --out /proc/qb-no/r.csv", 5, "r.csv"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4096];
        snprintf(args, sizeof args, cases[i].args, model, data);
        snprintf(cmd, sizeof cmd, "%s corrupt %s --threads 1", bin, args);
        int rc = qbt_run(cmd, &out, &err);
        ck_assert_msg(rc == cases[i].code, "'%s': exit %d, expected %d (%s)", args, rc, cases[i].code, err ? err : "");
        ck_assert_msg(err && strstr(err, cases[i].says), "'%s': stderr lacks '%s': %s", args, cases[i].says, err ? err : "");
        free(out), free(err);
    }
}
END_TEST

Suite *corrupt_cli_suite(void) {
    Suite *s = suite_create("corrupt_cli");
    TCase *tc = tcase_create("corrupt_cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_corrupt_eval_rows_resume_from);
    tcase_add_test(tc, test_corrupt_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
