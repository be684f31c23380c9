/* test_shard.c — `--shard K/N` and `questbench merge`: the partition (round-robin after
 * --subset/--limit), the shard tag in run_id and the resume key, and the main property: merging
 * 2 or 3 shards of eval, corrupt and attack (worst-case rows included) gives exactly the rows of
 * the single-process run, except run_id and timestamp. Also `run --shard`, per-shard resume in a
 * shared results file, and merge's errors (missing / duplicate shard, exit 4). */
#include "qbtest.h"
#include "qb.h"
#include "dataset.h"
#include "image.h"
#include "results.h"
#include "shard.h"
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

static int run(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char **out, char **err, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(cmd, sizeof cmd, "%s ", qbt_bin());
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    return qbt_run(cmd, out, err);
}

/* must succeed; frees the outputs (passed by address: read after run() has filled them) */
static void ok(const char *what, int rc, char **out, char **err) {
    ck_assert_msg(rc == 0, "%s: exit %d: %s", what, rc, *err ? *err : "");
    free(*out), free(*err);
}

/* An ImageFolder dir/data of 10 classes (c0..c9, the fixtures' classes) of generated 32x32 PNGs:
 * 15 noise images, two in three filed under the class cifar_sdpa predicts for them (so that
 * counts of correct points are not all 0), then one more image in each class left empty. */
void shardt_make_data(const char *dir) {
    char p[1024], q[1024], list[8192] = "";
    uint8_t px[32 * 32 * 3];
    qb_image img = {32, 32, px};
    uint32_t st = 12345;
    snprintf(p, sizeof p, "%s/data", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/stage", dir);
    mkdir(p, 0755);
    for (int i = 0; i < 25; i++) {
        for (int k = 0; k < 32 * 32 * 3; k++) {
            st = st * 1664525u + 1013904223u;
            px[k] = (uint8_t)((st >> 24) / (1 + i % 4) + (k % 96) * (i % 3));
        }
        snprintf(p, sizeof p, "%s/stage/img%02d.png", dir, i);
        ck_assert_int_eq(qb_image_save_png(&img, p), 0);
        if (i < 15) strcat(list, " "), strcat(list, p);
    }
    char cmd[9000], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s predict --model %s%s", qbt_bin(), qbt_fixture("vit/cifar_sdpa.safetensors"), list);
    ck_assert_int_eq(qbt_run(cmd, &out, NULL), 0);
    int used[10] = {0}, extra = 15;
    char *line = strchr(out, '\n');
    for (int i = 0; i < 15 && line; i++) {
        int top = -1;
        char *c = strchr(line + 1, ',');
        ck_assert_ptr_nonnull(c);
        top = atoi(c + 1);
        ck_assert(top >= 0 && top < 10);
        int cls = i % 3 == 2 ? (top + 1 + i) % 10 : top;
        snprintf(p, sizeof p, "%s/data/c%d", dir, cls);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/stage/img%02d.png", dir, i);
        snprintf(q, sizeof q, "%s/data/c%d/img%02d.png", dir, cls, i);
        ck_assert_int_eq(rename(p, q), 0);
        used[cls] = 1;
        line = strchr(line + 1, '\n');
    }
    free(out);
    for (int c = 0; c < 10; c++)
        if (!used[c]) {
            snprintf(p, sizeof p, "%s/data/c%d", dir, c);
            mkdir(p, 0755);
            snprintf(p, sizeof p, "%s/stage/img%02d.png", dir, extra);
            snprintf(q, sizeof q, "%s/data/c%d/img%02d.png", dir, c, extra++);
            ck_assert_int_eq(rename(p, q), 0);
        }
}

/* The lines of a file with run_id (field 1) and timestamp (field 19) blanked. */
static int read_rows(const char *path, char rows[][1024], int max) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s: cannot open", path);
    int n = 0;
    char line[2048];
    while (n < max && fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ','), *last = strrchr(line, ',');
        ck_assert_ptr_nonnull(c1);
        snprintf(rows[n++], 1024, "%.*s", (int)(last - c1 + 1), c1); /* ",model,...,version," */
    }
    fclose(f);
    return n;
}

void shardt_same_rows(const char *a, const char *b) {
    static char ra[256][1024], rb[256][1024];
    int na = read_rows(a, ra, 256), nb = read_rows(b, rb, 256);
    ck_assert_msg(na == nb, "%s has %d lines, %s %d", a, na, b, nb);
    for (int i = 0; i < na; i++) ck_assert_msg(!strcmp(ra[i], rb[i]), "line %d differs:\n  %s\n  %s", i + 1, ra[i], rb[i]);
}

int shardt_count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

START_TEST(test_partition_and_key) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    shardt_make_data(dir);
    char data[400];
    snprintf(data, sizeof data, "%s/data", dir);
    /* round-robin over the list after --limit: shard 2/3 of the first 8 is positions 1, 4, 7 */
    qb_dataset all, ds;
    ck_assert_int_eq(qb_dataset_open(&all, data, NULL, NULL, 8), 0);
    ck_assert_int_eq(qb_dataset_open(&ds, data, NULL, NULL, 8), 0);
    ck_assert_int_eq(qb_dataset_shard(&ds, 2, 3), 0);
    ck_assert_int_eq(ds.n, 3);
    for (int i = 0; i < 3; i++) ck_assert_str_eq(ds.items[i].rel, all.items[1 + 3 * i].rel);
    qb_dataset_free(&ds);
    qb_dataset_free(&all);
    ck_assert_int_eq(qb_dataset_open(&ds, data, NULL, NULL, 0), 0);
    ck_assert_int_eq(qb_dataset_shard(&ds, 1, 40), QB_EXIT_USAGE); /* at most 25 images, 40 shards */
    qb_dataset_free(&ds);

    /* the run_id tag, and the key: unsharded keys are unchanged, a shard's key names it */
    char id[64];
    qb_shard_run_id(id, sizeof id, "eval", 2, 4);
    ck_assert(!strncmp(id, "eval-shard2of4-", 15));
    int k = 0, n = 0;
    ck_assert(qb_shard_of_run_id(id, &k, &n) && k == 2 && n == 4);
    ck_assert(!qb_shard_of_run_id("eval-123", &k, &n) && !qb_shard_of_run_id("eval-shard5of4-1", &k, &n));
    qb_shard_strip_run_id(id);
    ck_assert(!strncmp(id, "eval-", 5) && !strstr(id, "shard"));
    qb_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.model, sizeof r.model, "m"), snprintf(r.kind, sizeof r.kind, "clean");
    snprintf(r.run_id, sizeof r.run_id, "eval-99");
    char key[1024], key2[1024];
    qb_result_key(&r, key, sizeof key);
    ck_assert_str_eq(key, "m||||clean||0|||0|0");
    snprintf(r.run_id, sizeof r.run_id, "eval-shard3of8-99");
    qb_result_key(&r, key2, sizeof key2);
    ck_assert_str_eq(key2, "m||||clean||0|||0|0|shard3of8");
}
END_TEST

/* eval, corrupt (two models) and attack (fgsm+pgd, two eps: worst-case rows) appended with
 * --resume to `out`, as `questbench run` does, optionally on one shard */
static void run_all(const char *dir, const char *out, const char *shard) {
    char sh[64] = "", m1[512], m2[512], *o, *e;
    if (shard) snprintf(sh, sizeof sh, "--shard %s", shard);
    snprintf(m1, sizeof m1, "std=%s", qbt_fixture("vit/cifar_sdpa.safetensors"));
    snprintf(m2, sizeof m2, "q=%s", qbt_fixture("vit/cifar_quest.safetensors"));
    int rc = run(&o, &e, "eval --model %s --data %s/data %s --out %s --resume --threads 1", m1, dir, sh, out);
    ok("eval", rc, &o, &e);
    rc = run(&o, &e, "corrupt --model %s --model %s --data %s/data --preset cifar --corruptions gaussian_noise,contrast "
                     "--severities 1-2 --seed 3 %s --out %s --resume --threads 1", m1, m2, dir, sh, out);
    ok("corrupt", rc, &o, &e);
    rc = run(&o, &e, "attack --model %s --model %s --data %s/data --attack fgsm,pgd --eps 2/255,8/255 --steps 2 --batch 2 "
                     "%s --out %s --resume --threads 1", m1, m2, dir, sh, out);
    ok("attack", rc, &o, &e);
}

START_TEST(test_merge_equals_single_process) {
    char dir[256], u[400], s2[400], m2[400], m3[400], s3[3][400];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    shardt_make_data(dir);
    snprintf(u, sizeof u, "%s/u.csv", dir);
    run_all(dir, u, NULL);
    /* 2 shards sharing one results file */
    snprintf(s2, sizeof s2, "%s/s2.csv", dir);
    run_all(dir, s2, "1/2");
    run_all(dir, s2, "2/2");
    int lines = shardt_count_lines(s2);
    run_all(dir, s2, "1/2"); /* resume per shard: nothing is recomputed nor appended */
    ck_assert_int_eq(shardt_count_lines(s2), lines);
    /* 3 shards, one file each, merged in another order */
    for (int k = 0; k < 3; k++) {
        char sh[32];
        snprintf(s3[k], sizeof s3[k], "%s/s3_%d.csv", dir, k + 1);
        snprintf(sh, sizeof sh, "%d/3", k + 1);
        run_all(dir, s3[k], sh);
    }
    snprintf(m2, sizeof m2, "%s/m2.csv", dir);
    snprintf(m3, sizeof m3, "%s/m3.csv", dir);
    char *o, *e;
    ok("merge 2", run(&o, &e, "merge %s --out %s", s2, m2), &o, &e);
    ok("merge 3", run(&o, &e, "merge %s %s %s --out %s", s3[2], s3[0], s3[1], m3), &o, &e);
    shardt_same_rows(u, m2);
    shardt_same_rows(u, m3);
    /* the single-process run has worst-case rows, and the merged run_id lost its shard tag */
    FILE *f = fopen(m3, "r");
    char line[2048];
    int worst = 0, tagged = 0;
    while (fgets(line, sizeof line, f)) worst += strstr(line, ",worst:fgsm+pgd[steps=2],") != NULL, tagged += strstr(line, "shard") != NULL;
    fclose(f);
    ck_assert_int_eq(worst, 4); /* 2 models x 2 eps */
    ck_assert_int_eq(tagged, 0);

    /* errors: a missing shard, a duplicate shard (exit 4, naming it) */
    int rc = run(&o, &e, "merge %s %s --out %s/x.csv", s3[0], s3[1], dir);
    ck_assert_msg(rc == QB_EXIT_DATA && strstr(e, "missing shard 3/3"), "exit %d: %s", rc, e);
    free(o), free(e);
    rc = run(&o, &e, "merge %s %s %s %s --out %s/x.csv", s3[0], s3[1], s3[2], s3[1], dir);
    ck_assert_msg(rc == QB_EXIT_DATA && strstr(e, "shard 2/3 appears twice"), "exit %d: %s", rc, e);
    free(o), free(e);
    rc = run(&o, &e, "merge %s %s --out %s/x.csv", s2, s3[0], dir); /* shard 1/2 with 1/3: different counts */
    ck_assert_msg(rc == QB_EXIT_DATA && strstr(e, "different counts"), "exit %d: %s", rc, e);
    free(o), free(e);
    struct stat st;
    snprintf(line, sizeof line, "%s/x.csv", dir);
    ck_assert_int_ne(stat(line, &st), 0); /* a failed merge writes nothing */
}
END_TEST

START_TEST(test_shard_usage_errors) {
    char dir[256], *o, *e;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    shardt_make_data(dir);
    const char *bad[] = {"0/2", "3/2", "2", "a/b", "1/0", "-1/2", "1/2x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = run(&o, &e, "eval --model %s --data %s/data --shard %s", qbt_fixture("vit/cifar_sdpa.safetensors"), dir, bad[i]);
        ck_assert_msg(rc == QB_EXIT_USAGE && strstr(e, "--shard"), "'%s': exit %d: %s", bad[i], rc, e);
        free(o), free(e);
    }
    int rc = run(&o, &e, "attack --model %s --data %s/data --attack fgsm --eps 1/255 --shard 4/40",
                 qbt_fixture("vit/cifar_sdpa.safetensors"), dir);
    ck_assert_msg(rc == QB_EXIT_USAGE && strstr(e, "fewer than 40 shards"), "exit %d: %s", rc, e);
    free(o), free(e);
    rc = run(&o, &e, "merge %s/none.csv", dir);
    ck_assert_int_eq(rc, QB_EXIT_USAGE);
    free(o), free(e);
}
END_TEST

/* `run --shard K/N` writes OUTPUT/results.shardKofN.csv; merging them gives the rows of the
 * plain run, and a plain run after the merge only writes the report. */
START_TEST(test_run_shards) {
    char dir[256], p[600], text[4096], a[700], b[700], *o, *e;
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    shardt_make_data(dir);
    for (int v = 0; v < 2; v++) {
        snprintf(p, sizeof p, "%s/s%d.yaml", dir, v);
        snprintf(text, sizeof text,
                 "output: %s/out%d\ndata: %s/data\npreset: cifar\nseed: 1\nthreads: 1\nmodels:\n  - name: std\n    file: %s\n"
                 "corruptions:\n  list: fog\n  severities: 2\nattacks:\n  - attack: fgsm,pgd\n    eps: [4/255]\n    steps: 2\n",
                 dir, v, dir, qbt_fixture("vit/cifar_sdpa.safetensors"));
        ck_assert_int_eq(qbt_write_file(p, text, strlen(text)), 0);
    }
    ok("run", run(&o, &e, "run %s/s0.yaml", dir), &o, &e);
    ok("run 1/2", run(&o, &e, "run %s/s1.yaml --shard 1/2", dir), &o, &e);
    ok("run 2/2", run(&o, &e, "run %s/s1.yaml --shard 2/2", dir), &o, &e);
    ok("merge", run(&o, &e, "merge %s/out1/results.shard1of2.csv %s/out1/results.shard2of2.csv --out %s/out1/results.csv", dir, dir, dir), &o, &e);
    snprintf(a, sizeof a, "%s/out0/results.csv", dir);
    snprintf(b, sizeof b, "%s/out1/results.csv", dir);
    shardt_same_rows(a, b);
    int lines = shardt_count_lines(b);
    ok("run after merge", run(&o, &e, "run %s/s1.yaml", dir), &o, &e);
    ck_assert_int_eq(shardt_count_lines(b), lines);
    snprintf(a, sizeof a, "%s/out0/report/summary.csv", dir);
    snprintf(b, sizeof b, "%s/out1/report/summary.csv", dir);
    char *sa, *sb;
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "cat %s", a);
    qbt_run(cmd, &sa, NULL);
    snprintf(cmd, sizeof cmd, "cat %s", b);
    qbt_run(cmd, &sb, NULL);
    ck_assert_msg(sa && sb && *sa && !strcmp(sa, sb), "summary.csv differs:\n%s\n---\n%s", sa, sb);
    free(sa), free(sb);
}
END_TEST

Suite *shard_suite(void) {
    Suite *s = suite_create("shard");
    TCase *tc = tcase_create("shard");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_partition_and_key);
    tcase_add_test(tc, test_merge_equals_single_process);
    tcase_add_test(tc, test_shard_usage_errors);
    tcase_add_test(tc, test_run_shards);
    suite_add_tcase(s, tc);
    return s;
}
