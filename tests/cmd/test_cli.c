/* test_cli.c — the questbench binary end to end: predict/eval/info output against PyTorch
 * and PIL, and one clear stderr line with a documented exit code for each bad input. */
#include "qbtest.h"
#include "qb.h"
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* exactly one line on stderr, containing `needle` */
static void assert_one_line_error(const char *err, const char *needle) {
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, needle) != NULL, "stderr lacks '%s': %s", needle, err);
    const char *nl = strchr(err, '\n');
    ck_assert_msg(nl && nl[1] == 0, "stderr is not one line: %s", err);
}

/* predict --logits on an odd-sized PNG and JPEG equals PIL resize + PyTorch forward */
START_TEST(test_predict_matches_pytorch) {
    const char *names[] = {"sdpa_tiny", "quest_deep"};
    const char *name = names[_i];
    char model[512], img0[512], img1[512], ref[512];
    snprintf(model, sizeof model, "%s", qbt_fixture("vit/"));
    snprintf(model + strlen(model), sizeof model - strlen(model), "%s.safetensors", name);
    snprintf(img0, sizeof img0, "%s", qbt_fixture("vit/"));
    snprintf(img0 + strlen(img0), sizeof img0 - strlen(img0), "%s_img0.png", name);
    snprintf(img1, sizeof img1, "%s", qbt_fixture("vit/"));
    snprintf(img1 + strlen(img1), sizeof img1 - strlen(img1), "%s_img1.jpg", name);
    snprintf(ref, sizeof ref, "%s", qbt_fixture("vit/"));
    snprintf(ref + strlen(ref), sizeof ref - strlen(ref), "%s_predict.csv", name);
    char *out, *err;
    int rc = qbt_cli(&out, &err, "predict --model %s --logits %s %s", model, img0, img1);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(out, "path,top1,prob,logit0,logit1"));
    FILE *f = fopen(ref, "r");
    ck_assert_ptr_nonnull(f);
    char *line = strchr(out, '\n') + 1;
    for (int row = 0; row < 2; row++) {
        char buf[4096];
        ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
        /* skip path, top1, prob */
        char *p = line;
        for (int c = 0; c < 3; c++) p = strchr(p, ',') + 1;
        char *r = buf;
        int k = 0, top = 0;
        float best = -INFINITY, maxabs = 0, maxd = 0;
        while (*r && *r != '\n') {
            float want = strtof(r, &r), got = strtof(p, &p);
            if (want > best) best = want, top = k;
            maxabs = fmaxf(maxabs, fabsf(want));
            maxd = fmaxf(maxd, fabsf(want - got));
            k++;
            if (*r == ',') r++;
            if (*p == ',') p++;
        }
        ck_assert_msg(maxd <= 1e-4f * maxabs, "%s image %d: max |Δlogit| %g", name, row, maxd);
        ck_assert_int_eq(atoi(strchr(line, ',') + 1), top);
        line = strchr(line, '\n') + 1;
    }
    fclose(f);
    free(out), free(err);
}
END_TEST

START_TEST(test_info_reports_architecture) {
    char *out, *err;
    int rc = qbt_cli(&out, &err, "info %s", qbt_fixture("vit/quest_deep.safetensors"));
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "attention: quest"));
    ck_assert_ptr_nonnull(strstr(out, "num_heads: 4"));
    ck_assert_ptr_nonnull(strstr(out, "depth: 3"));
    ck_assert_ptr_nonnull(strstr(out, "img_size: 20"));
    ck_assert_ptr_nonnull(strstr(out, "interpolation: bicubic"));
    free(out), free(err);
    rc = qbt_cli(&out, &err, "info --heads 2 --attention sdpa %s", qbt_fixture("vit/quest_deep.safetensors"));
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_nonnull(strstr(out, "num_heads: 2"));
    ck_assert_ptr_nonnull(strstr(out, "attention: sdpa"));
    ck_assert_ptr_nonnull(strstr(err, "overrides")); /* the override is logged */
    free(out), free(err);
}
END_TEST

/* eval on a tiny ImageFolder: counts, accuracy consistent with predict, atomic --out */
START_TEST(test_eval_imagefolder) {
    const char *d = qbt_tmpdir();
    char path[1024], outcsv[1024];
    const char *classes[] = {"a", "b"};
    for (int c = 0; c < 2; c++) {
        snprintf(path, sizeof path, "%s/data/%s", d, classes[c]);
        char mk[4200];
        snprintf(mk, sizeof mk, "mkdir -p %s && cp %s %s/x%d.png && cp %s %s/y%d.jpg", path,
                 qbt_fixture("vit/sdpa_tiny_img0.png"), path, c, qbt_fixture("vit/sdpa_tiny_img1.jpg"), path, c);
        ck_assert_int_eq(system(mk), 0);
    }
    snprintf(outcsv, sizeof outcsv, "%s/per_image.csv", d);
    char *out, *err;
    int rc = qbt_cli(&out, &err, "eval --model %s --data %s/data --batch 3 --per-image %s", qbt_fixture("vit/sdpa_tiny.safetensors"),
                 d, outcsv);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_ptr_nonnull(strstr(out, "images: 4"));
    ck_assert_ptr_nonnull(strstr(out, "top1: "));
    /* the summary's top-1 count equals the per-image rows' correct1 column */
    int top1 = -1;
    ck_assert_int_eq(sscanf(strstr(out, "top1: "), "top1: %*f%% (%d/4)", &top1), 1);
    FILE *f = fopen(outcsv, "r");
    ck_assert_ptr_nonnull(f);
    char buf[512];
    int rows = 0, correct = 0;
    while (fgets(buf, sizeof buf, f)) {
        if (rows++ == 0) continue;
        int label, pred, c1, c5;
        float prob;
        ck_assert_int_eq(sscanf(strchr(buf, ',') + 1, "%d,%d,%f,%d,%d", &label, &pred, &prob, &c1, &c5), 5);
        ck_assert_int_eq(c1, label == pred);
        ck_assert(prob > 0.1f && prob <= 1.0f);
        correct += c1;
    }
    fclose(f);
    ck_assert_int_eq(rows, 5);
    ck_assert_int_eq(correct, top1);
    free(out), free(err);
}
END_TEST

/* Each bad input: the exit code and one line on stderr naming the thing. */
typedef struct {
    const char *args;
    int code;
    const char *needle;
} bad_case;

/* eval --out appends one schema row; --resume leaves the file alone the second time */
START_TEST(test_eval_results_row) {
    const char *d = qbt_tmpdir();
    char mk[2048], res[600];
    snprintf(mk, sizeof mk, "mkdir -p %s/data/a %s/data/b && cp %s %s/data/a/ && cp %s %s/data/b/", d, d,
             qbt_fixture("vit/sdpa_tiny_img0.png"), d, qbt_fixture("vit/sdpa_tiny_img1.jpg"), d);
    ck_assert_int_eq(system(mk), 0);
    snprintf(res, sizeof res, "%s/results.csv", d);
    char *out, *err;
    ck_assert_int_eq(qbt_cli(&out, &err, "eval --model tiny=%s --data %s/data --out %s --seed 7", qbt_fixture("vit/sdpa_tiny.safetensors"), d, res), 0);
    int top1 = -1;
    ck_assert_int_eq(sscanf(strstr(out, "top1: "), "top1: %*f%% (%d/2)", &top1), 1);
    free(out), free(err);
    ck_assert_int_eq(qbt_cli(&out, &err, "eval --model tiny=%s --data %s/data --out %s --seed 7 --resume", qbt_fixture("vit/sdpa_tiny.safetensors"), d, res), 0);
    ck_assert_ptr_nonnull(strstr(err, "already recorded"));
    free(out), free(err);
    FILE *f = fopen(res, "r");
    char line[2048];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (rows++ == 0) { ck_assert_ptr_nonnull(strstr(line, "run_id,model,model_sha256")); continue; }
        ck_assert_ptr_nonnull(strstr(line, ",tiny,"));
        ck_assert_ptr_nonnull(strstr(line, ",sdpa,"));
        ck_assert_ptr_nonnull(strstr(line, ",clean,"));
        char expect[64];
        snprintf(expect, sizeof expect, ",2,%d,top1,", top1);
        ck_assert_ptr_nonnull(strstr(line, expect));
    }
    fclose(f);
    ck_assert_int_eq(rows, 2);
}
END_TEST

START_TEST(test_bad_inputs) {
    const char *d = qbt_tmpdir();
    char p[8][512];
    /* files to feed */
    snprintf(p[0], sizeof p[0], "%s/trunc.safetensors", d);
    FILE *src = fopen(qbt_fixture("vit/sdpa_tiny.safetensors"), "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, src);
    fclose(src);
    qbt_write_file(p[0], buf, n); /* header intact, data cut short */
    snprintf(p[1], sizeof p[1], "%s/text.png", d);
    qbt_write_file(p[1], "hello, not an image\n", 20);
    snprintf(p[2], sizeof p[2], "%s/empty", d);
    mkdir(p[2], 0755);
    snprintf(p[3], sizeof p[3], "%s/huge.safetensors", d);
    uint64_t big = 200000000ull;
    qbt_write_file(p[3], &big, 8);
    snprintf(p[4], sizeof p[4], "%s/corrupt.jpg", d);
    src = fopen(qbt_fixture("vit/sdpa_tiny_img1.jpg"), "rb");
    n = fread(buf, 1, sizeof buf, src);
    fclose(src);
    qbt_write_file(p[4], buf, n / 2);
    char mk[2048];
    snprintf(mk, sizeof mk, "mkdir -p %s/data/a && cp %s %s/data/a/", d, qbt_fixture("vit/sdpa_tiny_img0.png"), d);
    ck_assert_int_eq(system(mk), 0);
    char m[512]; /* qbt_fixture returns a static buffer: copy it */
    snprintf(m, sizeof m, "%s", qbt_fixture("vit/sdpa_tiny.safetensors"));
    char args[32][4096];
    bad_case cases[32];
    int nc = 0;
#define CASE(code_, needle_, ...)                                          \
    do {                                                                   \
        snprintf(args[nc], sizeof args[nc], __VA_ARGS__);                  \
        cases[nc].args = args[nc], cases[nc].code = code_, cases[nc].needle = needle_; \
        nc++;                                                              \
    } while (0)
    CASE(QB_EXIT_USAGE, "unknown command", "frobnicate");
    CASE(QB_EXIT_USAGE, "unknown option '--bogus'", "predict --model %s --bogus x.png", m);
    CASE(QB_EXIT_USAGE, "--model is required", "predict x.png");
    CASE(QB_EXIT_USAGE, "--batch", "predict --model %s --batch 0 x.png", m);
    CASE(QB_EXIT_USAGE, "--attention", "predict --model %s --attention softmax x.png", m);
    CASE(QB_EXIT_USAGE, "--mean", "info --mean 1,2 %s", m);
    CASE(QB_EXIT_USAGE, "--crop-pct", "info --crop-pct 1.5 %s", m);
    CASE(QB_EXIT_MODEL, "trunc.safetensors", "info %s", p[0]);
    CASE(QB_EXIT_MODEL, "huge.safetensors", "info %s", p[3]);
    CASE(QB_EXIT_MODEL, "no_such_model", "info %s/no_such_model.safetensors", d);
    CASE(QB_EXIT_MODEL, "not a timm VisionTransformer", "info %s", qbt_fixture("vit/sdpa_tiny.ref.safetensors"));
    CASE(QB_EXIT_MODEL, "q_norm", "info --attention qknorm %s", m);
    CASE(QB_EXIT_DATA, "text.png", "predict --model %s %s", m, p[1]);
    CASE(QB_EXIT_DATA, "corrupt.jpg", "predict --model %s %s", m, p[4]);
    CASE(QB_EXIT_DATA, "empty", "eval --model %s --data %s", m, p[2]);
    CASE(QB_EXIT_DATA, "missing_dir", "eval --model %s --data %s/missing_dir", m, d);
    CASE(QB_EXIT_USAGE, "--data is required", "eval --model %s", m);
    CASE(QB_EXIT_IO, "out.csv", "eval --model %s --data %s/data --per-image %s/no/such/dir/out.csv", m, d, d);
    CASE(QB_EXIT_IO, "res.csv", "eval --model %s --data %s/data --out %s/no/such/dir/res.csv", m, d, d);
    CASE(QB_EXIT_USAGE, "--resume needs --out", "eval --model %s --data %s/data --resume", m, d);
    for (int i = 0; i < nc; i++) {
        char *out, *err;
        int rc = qbt_cli(&out, &err, "%s", cases[i].args);
        ck_assert_msg(rc == cases[i].code, "'%s': exit %d, expected %d (stderr: %s)", cases[i].args, rc, cases[i].code,
                      err);
        assert_one_line_error(err, cases[i].needle);
        ck_assert_msg(out == NULL || out[0] == 0, "'%s' wrote to stdout: %s", cases[i].args, out);
        free(out), free(err);
    }
    /* --skip-bad with no readable image: exit 4 and no 0 % row */
    snprintf(mk, sizeof mk, "mkdir -p %s/allbad/a && cp %s %s/allbad/a/", d, p[1], d);
    ck_assert_int_eq(system(mk), 0);
    char *out, *err;
    ck_assert_int_eq(qbt_cli(&out, &err, "eval --model %s --data %s/allbad --skip-bad --out %s/allbad.csv", m, d, d), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(err, "none of the 1 image(s) could be read"));
    free(out), free(err);
    snprintf(mk, sizeof mk, "%s/allbad.csv", d);
    ck_assert_int_ne(access(mk, F_OK), 0);
}
END_TEST

START_TEST(test_help_and_version) {
    const char *cmds[] = {"predict", "eval", "info"};
    char *out, *err;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(qbt_cli(&out, &err, "%s --help", cmds[i]), 0);
        ck_assert_ptr_nonnull(strstr(out, "usage: questbench"));
        free(out), free(err);
    }
    ck_assert_int_eq(qbt_cli(&out, &err, "--version"), 0);
    ck_assert_ptr_nonnull(strstr(out, QB_VERSION));
    free(out), free(err);
}
END_TEST

/* attack --protocol elliptical-compat (attacks.md §10): every row labelled -ell / -ell-fixed,
 * one worst row per variant, eps in normalised units, and the sanity report states APGD's
 * points beyond eps under the artefact range instead of failing; --norm l2 runs Square. */
START_TEST(test_attack_compat_and_square_l2) {
    char dir[256], model[512], cmd[2048], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(model, sizeof model, "%s", qbt_fixture("attacks/sdpa_attack.safetensors"));
    static const char *imgs[] = {"png_rgb8.png", "jpg_444.jpg", "rs_37x23.png", "png_rgba8.png"};
    snprintf(cmd, sizeof cmd, "mkdir -p %s/data/a %s/data/b", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "cp %s/%s %s/data/%s/%d_%s", qbt_fixture("images"), imgs[i], dir, i < 2 ? "a" : "b", i, imgs[i]);
        ck_assert_int_eq(system(cmd), 0);
    }
    /* labels = clean predictions (read from a per-image file), so every point starts robust */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm --eps 1/255 --per-image %s/p.csv",
                             model, dir, dir), 0);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "awk -F, 'NR > 1 {print $9, $11}' %s/p.csv > %s/labels.txt", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    int rc = qbt_cli(&out, &err, "attack --model m=%s --data %s/data --labels %s/labels.txt --protocol elliptical-compat "
                                 "--attack fgsm,pgd,apgd-ce --eps 1/255 --steps 10 --out %s/r.csv", model, dir, dir, dir);
    ck_assert_msg(rc == 0, "compat run: rc %d: %s", rc, err);
    static const char *names[] = {"fgsm-ell", "pgd-ell", "apgd-ce-ell", "apgd-ce-ell-fixed", "worst-ell", "worst-ell-fixed",
                                  "protocol: elliptical-compat", "not an error in elliptical-compat"};
    for (int i = 0; i < 8; i++) ck_assert_msg(strstr(out, names[i]) != NULL, "stdout lacks '%s':\n%s", names[i], out);
    ck_assert_ptr_null(strstr(out, "EXCEEDS"));
    free(out), free(err);
    /* the rows: attack names, normalised eps (linf-n) and a worst row per variant */
    snprintf(cmd, sizeof cmd, "(cut -d, -f10,11 %s/r.csv | tail -n +3 | sort | tr '\\n' ' ')", dir); /* () : qbt_run adds </dev/null */
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    /* --steps 10 differs from both defaults (pgd-ell 20, apgd 100): the names carry it */
    ck_assert_str_eq(out, "apgd-ce-ell-fixed[steps=10],linf-n apgd-ce-ell[steps=10],linf-n fgsm-ell,linf-n "
                          "pgd-ell[steps=10],linf-n worst-ell-fixed:fgsm+pgd[steps=10]+apgd-ce[steps=10],linf-n "
                          "worst-ell:fgsm+pgd[steps=10]+apgd-ce[steps=10],linf-n ");
    free(out), free(err);
    /* labels that disagree with the predictions: fgsm-ell/pgd-ell attack the predictions and may
     * flip a point to its true label, but a worst row never counts a clean-wrong point */
    snprintf(cmd, sizeof cmd, "awk '{print $1, ($2 + 1) %% 3}' %s/labels.txt > %s/labels2.txt", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    rc = qbt_cli(&out, &err, "attack --model m=%s --data %s/data --labels %s/labels2.txt --protocol elliptical-compat "
                             "--attack fgsm,pgd --eps 8/255 --steps 5 --out %s/r2.csv", model, dir, dir, dir);
    ck_assert_msg(rc == 0, "compat run 2: rc %d: %s", rc, err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "(awk -F, '$7 == \"clean\" {c = $14} $10 ~ /^worst/ {w = $14} END {print c, w}' %s/r2.csv)", dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    int clean_ok = -1, worst_ok = -1;
    ck_assert_int_eq(sscanf(out, "%d %d", &clean_ok, &worst_ok), 2);
    ck_assert_msg(worst_ok <= clean_ok, "worst %d > clean %d", worst_ok, clean_ok);
    free(out), free(err);
    /* --label-source pred in the standard protocol: every image attacked with its prediction */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --label-source pred --attack pgd --eps 1/255 --steps 2",
                             model, dir), 0);
    ck_assert_ptr_nonnull(strstr(out, "labels: clean predictions"));
    free(out), free(err);
    /* Square L2 runs (no note, no skip) and its points pass the sanity report */
    rc = qbt_cli(&out, &err, "attack --model %s --data %s/data --labels %s/labels.txt --norm l2 --attack square --eps 2 --steps 40",
                 model, dir, dir);
    ck_assert_msg(rc == 0, "square l2: rc %d: %s", rc, err);
    ck_assert_ptr_nonnull(strstr(out, "square    max l2 norm"));
    ck_assert_ptr_null(strstr(out, "EXCEEDS"));
    ck_assert_msg(!err || !strstr(err, "note"), "square l2: %s", err);
    free(out), free(err);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --help"), 0);
    static const char *help[] = {"--protocol standard|elliptical-compat", "--label-source true|pred", "X-ell-fixed", "fgsm-ell"};
    for (int i = 0; i < 4; i++) ck_assert_msg(strstr(out, help[i]) != NULL, "attack --help lacks '%s'", help[i]);
    free(out), free(err);
}
END_TEST

Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("commands");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_predict_matches_pytorch, 0, 2);
    tcase_add_test(tc, test_info_reports_architecture);
    tcase_add_test(tc, test_eval_imagefolder);
    tcase_add_test(tc, test_eval_results_row);
    tcase_add_test(tc, test_bad_inputs);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_test(tc, test_attack_compat_and_square_l2);
    suite_add_tcase(s, tc);
    return s;
}
