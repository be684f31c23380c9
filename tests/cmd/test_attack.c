/* test_attack.c — cmd/attack.c: what a results row's key holds (the data selection, the
 * settings that differ from the defaults), --per-image with --resume, the list errors, and
 * runs that must stop before writing anything (no readable image, an unwritable --save-adv). */
#include "qbtest.h"
#include "results.h"
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>

/* 4 images in two classes (labels 0 and 1 of the 10-class fixture model) */
static void make_data(const char *dir) {
    static const char *imgs[] = {"png_rgb8.png", "jpg_444.jpg", "rs_37x23.png", "png_rgba8.png"};
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/data/a %s/data/b", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "cp %s/%s %s/data/%s/%d_%s", qbt_fixture("images"), imgs[i], dir, i < 2 ? "a" : "b", i,
                 imgs[i]);
        ck_assert_int_eq(system(cmd), 0);
    }
}

static int count_rows(const char *path, const char *field_needle) {
    char *s = qbt_slurp(path);
    if (!s) return -1;
    int n = 0;
    for (char *p = s; (p = strstr(p, field_needle)); p++) n++;
    free(s);
    return n;
}

/* the rows' attack names carry the non-default settings, and only those */
START_TEST(test_settings_in_row_names) {
    char dir[256], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    const char *m = qbt_fixture("attacks/sdpa_attack.safetensors");
    static const struct {
        const char *flags, *names, *note;
    } cases[] = {
        {"--attack fgsm,pgd --steps 10", ",fgsm,|,pgd,|,worst:fgsm+pgd,", NULL},
        {"--attack pgd --steps 3 --step-size 0.5eps --restarts 2", ",pgd[steps=3;step=0.5eps;restarts=2],", NULL},
        {"--attack pgd --steps 2 --step-size 1/255", ",pgd[steps=2;step=0.00392156886],", NULL},
        {"--attack pgd --steps 2 --random-start off --restarts 3", ",pgd[steps=2;start=clean],", "runs 1 restart"},
        {"--attack apgd-t,fab-t --steps 2 --targets 20", ",apgd-t[steps=2],|,fab-t[steps=2],", "so 9 target classes"},
        {"--attack apgd-t --steps 2 --targets 3", ",apgd-t[steps=2;targets=3],", NULL},
        {"--attack fgsm --label-source pred", ",fgsm[labels=pred],|,worst:fgsm[labels=pred],", NULL},
        {"--attack square --steps 20", ",square[queries=20],", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = qbt_cli(&out, &err, "attack --model %s --data %s/data --eps 1/255 %s --out %s/s%zu.csv", m, dir,
                         cases[i].flags, dir, i);
        ck_assert_msg(rc == 0, "%s: exit %d: %s", cases[i].flags, rc, err);
        if (cases[i].note) ck_assert_msg(strstr(err, cases[i].note), "%s: no note '%s': %s", cases[i].flags, cases[i].note, err);
        else ck_assert_msg(!strstr(err, "note:"), "%s: unexpected note: %s", cases[i].flags, err);
        free(out), free(err);
        char path[512], names[256];
        snprintf(path, sizeof path, "%s/s%zu.csv", dir, i);
        snprintf(names, sizeof names, "%s", cases[i].names);
        for (char *save, *nm = strtok_r(names, "|", &save); nm; nm = strtok_r(NULL, "|", &save))
            ck_assert_msg(count_rows(path, nm) == 1, "%s: no row '%s' in %s", cases[i].flags, nm, qbt_slurp(path));
    }
}
END_TEST

/* --resume never reuses rows of another image selection or other settings */
START_TEST(test_resume_keys) {
    char dir[256], path[512], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    const char *m = qbt_fixture("attacks/sdpa_attack.safetensors");
    snprintf(path, sizeof path, "%s/r.csv", dir);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --limit 2 --attack fgsm --eps 1/255 --out %s", m, dir, path), 0);
    free(out), free(err);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --limit 3 --attack fgsm --eps 1/255 --out %s --resume",
                             m, dir, path), 0);
    ck_assert_ptr_null(strstr(out, "already"));
    free(out), free(err);
    qb_results rs = {0};
    ck_assert_int_eq(qb_results_read(&rs, path), 0);
    ck_assert_int_eq(rs.n, 6); /* clean, fgsm, worst for each selection */
    int n2 = 0, n3 = 0;
    for (int i = 0; i < rs.n; i++) {
        n2 += strstr(rs.rows[i].dataset, "/data?limit=2") != NULL && rs.rows[i].n == 2;
        n3 += strstr(rs.rows[i].dataset, "/data?limit=3") != NULL && rs.rows[i].n == 3;
    }
    ck_assert_int_eq(n2, 3);
    ck_assert_int_eq(n3, 3);
    qb_results_free(&rs);
    /* the same again: nothing to do; other steps: new rows */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --limit 3 --attack fgsm --eps 1/255 --out %s --resume",
                             m, dir, path), 0);
    ck_assert_ptr_nonnull(strstr(out, "already"));
    free(out), free(err);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --limit 3 --attack pgd --steps 2 --eps 1/255 "
                                         "--out %s --resume", m, dir, path), 0);
    free(out), free(err);
    ck_assert_int_eq(count_rows(path, ",pgd[steps=2],"), 1);
    /* a subset file is keyed by its content */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sub.txt", dir);
    ck_assert_int_eq(qbt_write_file(sub, "a/0_png_rgb8.png\n", 17), 0);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --subset %s --attack fgsm --eps 1/255 --out %s --resume",
                             m, dir, sub, path), 0);
    free(out), free(err);
    ck_assert_int_eq(count_rows(path, "/data?subset="), 3);
    /* a model option that changes the results is part of the key */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --limit 3 --attack fgsm --eps 1/255 --crop-pct 0.5 "
                                         "--interpolation nearest --out %s --resume", m, dir, path), 0);
    ck_assert_ptr_null(strstr(out, "already"));
    free(out), free(err);
    ck_assert_int_eq(count_rows(path, "/data?limit=3&crop-pct=0.5&interpolation=nearest,"), 3);
    /* a name longer than a row holds is an error, never cut: 20 eps-relative steps of every kind */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack pgd,apgd-ce,apgd-t,fab-t,square,standard "
                                         "--eps 1/255 --steps 7 --restarts 2 --targets 3 --step-size 0.123456789eps "
                                         "--random-start off --label-source pred --out %s", m, dir, path), 2);
    ck_assert_ptr_nonnull(strstr(err, "characters"));
    free(out), free(err);
}
END_TEST

/* long row names survive the report: the gate of a file against itself with its rows reversed
 * (the worst row first) passes, and the summary holds every name whole */
START_TEST(test_long_names_in_report) {
    char dir[256], cmd[2048], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    const char *m = qbt_fixture("attacks/sdpa_attack.safetensors");
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm,pgd,square --eps 1/255,2/255 --steps 3 "
                                         "--step-size 0.3eps --random-start off --label-source pred --out %s/r.csv", m, dir, dir), 0);
    free(out), free(err);
    const char *worst = "worst:fgsm[labels=pred]+pgd[steps=3;step=0.3eps;start=clean;labels=pred]+square[queries=3;labels=pred]";
    ck_assert_int_gt((int)strlen(worst), 64);
    char path[600];
    snprintf(path, sizeof path, "%s/r.csv", dir);
    ck_assert_int_eq(count_rows(path, worst), 2);
    snprintf(cmd, sizeof cmd, "(head -1 %s/r.csv; tail -n +2 %s/r.csv | tac) > %s/rev.csv", dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(qbt_cli(&out, &err, "report %s/rev.csv --baseline %s/r.csv --tolerance 0", dir, dir), 0);
    ck_assert_ptr_nonnull(strstr(out, "no regression"));
    free(out), free(err);
    ck_assert_int_eq(qbt_cli(&out, &err, "report %s/rev.csv --out %s/rep", dir, dir), 0);
    free(out), free(err);
    snprintf(path, sizeof path, "%s/rep/summary.csv", dir);
    ck_assert_int_eq(count_rows(path, worst), 2);
    snprintf(cmd, sizeof cmd, "(ls %s/rep | grep -c '^robust_.*\\.svg$')", dir); /* () : qbt_run adds </dev/null */
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_int_eq(atoi(out), 4); /* fgsm, pgd, square, worst: distinct files, each ending .svg */
    free(out), free(err);
}
END_TEST

/* --per-image with --resume keeps the rows of the passes in --out, drops a killed pass's */
START_TEST(test_per_image_resume) {
    char dir[256], r[512], p[512], cmd[4096], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    const char *m = qbt_fixture("attacks/sdpa_attack.safetensors");
    snprintf(r, sizeof r, "%s/r.csv", dir);
    snprintf(p, sizeof p, "%s/p.csv", dir);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm --eps 1/255 --out %s --per-image %s",
                             m, dir, r, p), 0);
    free(out), free(err);
    ck_assert_int_eq(count_rows(p, "\n"), 1 + 4);
    /* a pass killed after its per-image rows, before its --out row: fake one at eps 3/255 */
    snprintf(cmd, sizeof cmd, "tail -n 1 %s | sed 's/,0.0039215686274509803,/,0.011764705882352941,/' >> %s", p, p);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(count_rows(p, ",0.011764705882352941,"), 1);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm --eps 1/255,2/255 --out %s "
                                         "--per-image %s --resume", m, dir, r, p), 0);
    free(out), free(err);
    ck_assert_int_eq(count_rows(p, ",0.0039215686274509803,"), 4); /* kept, not recomputed */
    ck_assert_int_eq(count_rows(p, ",0.0078431372549019607,"), 4); /* the new eps */
    ck_assert_int_eq(count_rows(p, ",0.011764705882352941,"), 0);  /* the killed pass's row dropped */
    ck_assert_int_eq(count_rows(p, "\n"), 1 + 8);
    /* nothing left to do: the file keeps its rows */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm --eps 1/255,2/255 --out %s "
                                         "--per-image %s --resume", m, dir, r, p), 0);
    free(out), free(err);
    ck_assert_int_eq(count_rows(p, "\n"), 1 + 8);
    /* without --resume the file starts anew */
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm --eps 2/255 --per-image %s", m, dir, p), 0);
    free(out), free(err);
    ck_assert_int_eq(count_rows(p, "\n"), 1 + 4);
    /* a file of another format is not overwritten under --resume */
    ck_assert_int_eq(qbt_write_file(p, "a,b\n1,2\n", 8), 0);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack fgsm --eps 2/255 --out %s --per-image %s "
                                         "--resume", m, dir, r, p), 4);
    ck_assert_ptr_nonnull(strstr(err, "header differs"));
    free(out), free(err);
    char *left = qbt_slurp(p);
    ck_assert_str_eq(left, "a,b\n1,2\n");
    free(left);
}
END_TEST

/* list errors and runs that stop before writing anything: one line on stderr, no file */
START_TEST(test_errors_write_nothing) {
    char dir[256], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    const char *m = qbt_fixture("attacks/sdpa_attack.safetensors");
    static const struct {
        const char *flags, *msg;
        int rc;
    } cases[] = {
        {"--attack fgsm --eps 1/255,2/255,1/255", "same radius", 2},
        {"--attack fgsm --eps 1/255,0.00392156862745098", "same radius", 2},
        {"--attack fgsm --eps 1/255,", "empty item", 2},
        {"--attack ,fgsm --eps 1/255", "empty item", 2},
        {"--attack fgm --eps 1/255", "fgm is the L2", 2},
        {"--attack fgsm --eps 1/255 --save-adv /proc/no/such", "--save-adv", 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = qbt_cli(&out, &err, "attack --model %s --data %s/data %s --out %s/e.csv", m, dir, cases[i].flags, dir);
        ck_assert_msg(rc == cases[i].rc, "%s: exit %d: %s", cases[i].flags, rc, err);
        ck_assert_msg(err && strstr(err, cases[i].msg) && strchr(err, '\n') == err + strlen(err) - 1, "%s: stderr '%s'",
                      cases[i].flags, err ? err : "");
        free(out), free(err);
    }
    /* a long list is parsed whole (no fixed-size buffer): 32 radii */
    char list[1400] = "";
    for (int k = 1; k <= 32; k++) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d.0000000000000000000000000/1000", k > 1 ? "," : "", k);
    ck_assert_int_gt((int)strlen(list), 1024);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --limit 1 --attack fgsm --eps %s --out %s/long.csv", m,
                             dir, list, dir), 0);
    free(out), free(err);
    char path[512];
    snprintf(path, sizeof path, "%s/long.csv", dir);
    ck_assert_int_eq(count_rows(path, ",fgsm,linf,"), 32);
    /* --skip-bad where no image loads: exit 4, no rows, and an existing per-image file untouched */
    char pi[600];
    snprintf(pi, sizeof pi, "%s/keep.csv", dir);
    ck_assert_int_eq(qbt_write_file(pi, "old\n", 4), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/bad/a && echo junk > %s/bad/a/x.jpg", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/bad --attack fgsm --eps 1/255 --skip-bad --out %s/e.csv "
                                         "--per-image %s", m, dir, dir, pi), 4);
    ck_assert_ptr_nonnull(strstr(err, "none of the 1 image(s) could be read"));
    free(out), free(err);
    snprintf(path, sizeof path, "%s/e.csv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_null(f);
    snprintf(path, sizeof path, "%s/e.csv.partial", dir); /* no journal left either */
    ck_assert_int_ne(access(path, F_OK), 0);
    char *kept = qbt_slurp(pi);
    ck_assert_str_eq(kept, "old\n");
    free(kept);
}
END_TEST

/* --quantize: the scored points lie on the 8-bit grid (the clean images do: decoded bytes /
 * 255) and inside the ball, and the rows say so (-q8) */
START_TEST(test_quantize) {
    char dir[256], p[512], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    const char *m = qbt_fixture("attacks/sdpa_attack.safetensors");
    snprintf(p, sizeof p, "%s/q.csv", dir);
    ck_assert_int_eq(qbt_cli(&out, &err, "attack --model %s --data %s/data --attack pgd --steps 3 --eps 3/255,0.01 --quantize "
                                         "--label-source pred --per-image %s --out %s/r.csv", m, dir, p, dir), 0);
    free(out), free(err);
    char *s = qbt_slurp(p), *save = NULL;
    ck_assert_ptr_nonnull(s);
    int rows = 0;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "model,", 6)) continue;
        char *f[30], *rest = line, *tok;
        int nf = 0;
        while (nf < 30 && (tok = strsep(&rest, ","))) f[nf++] = tok;
        ck_assert_int_eq(nf, 24);
        ck_assert_ptr_nonnull(strstr(f[3], "-q8"));
        double eps = atof(f[5]), linf = atof(f[15]) * 255;
        ck_assert_msg(fabs(linf - nearbyint(linf)) < 1e-3, "linf %g/255 is off the 8-bit grid", linf);
        ck_assert_msg(linf / 255 <= eps + 1e-6, "linf %g/255 > eps %g", linf, eps);
        rows++;
    }
    ck_assert_int_eq(rows, 8);
    free(s);
}
END_TEST

/* rows without run_id and timestamp, sorted, as one string */
static char *rows_of(const char *path) {
    char cmd[1024], *out, *err;
    snprintf(cmd, sizeof cmd, "cut -d, -f2-18 %s | sort", path);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    free(err);
    return out;
}

/* start `questbench ARGS EXTRA --out DIR/k.csv --per-image DIR/k.pi.csv` and SIGKILL it as soon
 * as its journal holds one whole record */
static void kill_after_first_record(const char *args, const char *extra, const char *dir, const char *journal) {
    char cmd[4096];
    unlink(journal);
    snprintf(cmd, sizeof cmd, "exec %s %s %s --out %s/k.csv --per-image %s/k.pi.csv >/dev/null 2>&1", qbt_bin(), args, extra,
             dir, dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int waited = 0;
    for (; waited < 60000; waited++) {
        char *j = qbt_slurp(journal);
        int whole = j && strstr(j, "\nE\n") != NULL;
        free(j);
        if (whole) break;
        usleep(1000);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    ck_assert_msg(waited < 60000, "no journal record appeared");
}

/* A pass killed part-way resumes from its journaled batches (OUT.partial): the finished images
 * are replayed, not attacked again, and the rows and per-image rows equal an uninterrupted run's */
START_TEST(test_kill_mid_pass_resumes_batches) {
    char dir[256], cmd[4096], args[2048], journal[600], *out, *err;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    make_data(dir);
    /* 4 images, one per batch, ~0.5 s each: a kill after the first batch lands inside the pass */
    snprintf(args, sizeof args, "attack --model %s --data %s/data --attack pgd --steps 1000 --eps 1/255 --batch 1 "
                                "--label-source pred --threads 1", qbt_fixture("vit/cifar_sdpa.safetensors"), dir);
    ck_assert_int_eq(qbt_cli(&out, &err, "%s --out %s/ref.csv --per-image %s/ref.pi.csv", args, dir, dir), 0);
    free(out), free(err);
    snprintf(journal, sizeof journal, "%s/k.csv.partial", dir);
    ck_assert_int_ne(access(journal, F_OK), 0); /* a finished run leaves no journal */
    char path[5000], line[512];
    /* records of another attention are never replayed: killed under --attention quest, resumed as
     * sdpa, the sdpa pgd row is the uninterrupted run's */
    kill_after_first_record(args, "--attention quest", dir, journal);
    ck_assert_int_eq(qbt_cli(&out, &err, "%s --out %s/k.csv --per-image %s/k.pi.csv --resume", args, dir, dir), 0);
    ck_assert_msg(!strstr(err, "replayed"), "a quest batch was replayed into an sdpa run: %s", err);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "(grep ',sdpa,.*,pgd\\[' %s/ref.csv | cut -d, -f13-14; grep ',sdpa,.*,pgd\\[' %s/k.csv | cut -d, -f13-14)",
             dir, dir);
    ck_assert_int_eq(qbt_run(cmd, &out, &err), 0);
    ck_assert_int_eq(sscanf(out, "%511s", line), 1);
    ck_assert_msg(strchr(out, '\n') && !strcmp(strchr(out, '\n') + 1, strchr(out, '\n') + 1) &&
                      !strncmp(out, strchr(out, '\n') + 1, strlen(line)),
                  "sdpa pgd n,correct differ: %s", out);
    free(out), free(err);
    /* now killed and resumed alike */
    snprintf(cmd, sizeof cmd, "rm -f %s/k.csv %s/k.pi.csv", dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    kill_after_first_record(args, "", dir, journal);
    snprintf(path, sizeof path, "%s/k.csv", dir);
    ck_assert_int_eq(count_rows(path, ",pgd[steps=1000;labels=pred],"), 0); /* the pass was unfinished */
    /* a torn or foreign tail (here with a negative size) is cut, never read as a record */
    FILE *jf = fopen(journal, "a");
    ck_assert_ptr_nonnull(jf);
    fputs("B\tjunk\t0\t1\t-1\n0 0 0", jf);
    fclose(jf);
    ck_assert_int_eq(qbt_cli(&out, &err, "%s --out %s/k.csv --per-image %s/k.pi.csv --resume", args, dir, dir), 0);
    ck_assert_msg(strstr(err, "replayed from"), "no batch replayed: %s", err);
    free(out), free(err);
    ck_assert_int_ne(access(journal, F_OK), 0);
    snprintf(path, sizeof path, "%s/ref.csv", dir);
    char *a = rows_of(path);
    snprintf(path, sizeof path, "%s/k.csv", dir);
    char *b = rows_of(path);
    ck_assert_str_eq(a, b);
    free(a), free(b);
    snprintf(cmd, sizeof cmd, "sort %s/ref.pi.csv | cmp - <(sort %s/k.pi.csv)", dir, dir);
    snprintf(path, sizeof path, "bash -c '%s'", cmd);
    ck_assert_int_eq(qbt_run(path, &out, &err), 0);
    free(out), free(err);
}
END_TEST

Suite *attack_cli_suite(void) {
    Suite *s = suite_create("attack_cli");
    TCase *tc = tcase_create("attack");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_settings_in_row_names);
    tcase_add_test(tc, test_resume_keys);
    tcase_add_test(tc, test_per_image_resume);
    tcase_add_test(tc, test_errors_write_nothing);
    tcase_add_test(tc, test_quantize);
    tcase_add_test(tc, test_long_names_in_report);
    tcase_add_test(tc, test_kill_mid_pass_resumes_batches);
    suite_add_tcase(s, tc);
    return s;
}
