/* test_threads.c — eval, corrupt and attack give identical results at --threads 1 and 2: the
 * --out rows (without run_id and timestamp) and the --per-image files are byte-identical. */
#include "qbtest.h"
#include "image.h"
#include <string.h>
#include <sys/stat.h>

static char dir[256], model[512], model2[512];

static void make_data(void) {
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    snprintf(model, sizeof model, "%s", qbt_fixture("vit/cifar_sdpa.safetensors"));
    snprintf(model2, sizeof model2, "%s", qbt_fixture("vit/cifar_quest.safetensors"));
    char p[600];
    uint8_t px[32 * 32 * 3];
    qb_image img = {32, 32, px};
    uint32_t x = 777;
    snprintf(p, sizeof p, "%s/data", dir);
    mkdir(p, 0755);
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/data/%c", dir, 'a' + c);
        mkdir(p, 0755);
        for (int i = 0; i < 4; i++) {
            for (int k = 0; k < (int)sizeof px; k++) x = x * 1664525u + 1013904223u, px[k] = (uint8_t)(x >> 24);
            snprintf(p, sizeof p, "%s/data/%c/%d.png", dir, 'a' + c, i);
            ck_assert_int_eq(qb_image_save_png(&img, p), 0);
        }
    }
}

/* a results file's rows with the first (run_id) and last (timestamp) fields cut */
static char *rows_without_ids(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 16, o = 0;
    char *r = malloc(cap), line[4096];
    r[0] = 0;
    while (fgets(line, sizeof line, f)) {
        char *first = strchr(line, ','), *last = strrchr(line, ',');
        ck_assert_ptr_nonnull(first);
        *last = 0;
        size_t n = strlen(first + 1);
        if (o + n + 2 > cap) r = realloc(r, cap = 2 * (o + n + 2));
        memcpy(r + o, first + 1, n), o += n;
        r[o++] = '\n', r[o] = 0;
    }
    fclose(f);
    return r;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* run `questbench <args> --threads T --out DIR/<tag>T.csv [--per-image DIR/<tag>T.pi.csv]` for
 * T = 1, 2 and compare */
static void same_at_1_and_2(const char *tag, const char *args, int per_image) {
    char out[2][600], pi[2][600];
    for (int t = 0; t < 2; t++) {
        snprintf(out[t], sizeof out[t], "%s/%s%d.csv", dir, tag, t + 1);
        snprintf(pi[t], sizeof pi[t], "%s/%s%d.pi.csv", dir, tag, t + 1);
        char *o, *e, extra[1400] = "";
        if (per_image) snprintf(extra, sizeof extra, "--per-image %s", pi[t]);
        int rc = qbt_cli(&o, &e, "%s --threads %d --out %s %s", args, t + 1, out[t], extra);
        ck_assert_msg(rc == 0, "%s --threads %d failed (%d): %s", tag, t + 1, rc, e);
        free(o), free(e);
    }
    char *a = rows_without_ids(out[0]), *b = rows_without_ids(out[1]);
    ck_assert_msg(strchr(a, '\n') != strrchr(a, '\n'), "%s: no result rows", tag);
    ck_assert_msg(!strcmp(a, b), "%s: --out rows differ between 1 and 2 threads:\n%s\nvs\n%s", tag, a, b);
    free(a), free(b);
    if (per_image) {
        a = slurp(pi[0]), b = slurp(pi[1]);
        ck_assert_msg(!strcmp(a, b), "%s: --per-image differs between 1 and 2 threads", tag);
        free(a), free(b);
    }
}

START_TEST(test_threads_identical) {
    make_data();
    char args[2048];
    snprintf(args, sizeof args, "eval --model %s --data %s/data --batch 5", model, dir);
    same_at_1_and_2("eval", args, 1);
    /* frost needs the textures under $QUESTBENCH_DATA/frost; without them the other 18 run */
    const char *qd = getenv("QUESTBENCH_DATA");
    char frost[1024];
    struct stat st;
    snprintf(frost, sizeof frost, "%s/frost", qd && *qd ? qd : "/nonexistent");
    int have_frost = stat(frost, &st) == 0;
    if (!have_frost) printf("threads: frost SKIPPED: %s not found (set QUESTBENCH_DATA)\n", frost);
    snprintf(args, sizeof args,
             "corrupt --model %s --model %s --data %s/data --preset cifar --corruptions %s --severities 3 --seed 5",
             model, model2, dir,
             have_frost ? "all" : "noise,blur,snow,fog,brightness,digital,extra");
    same_at_1_and_2("corrupt", args, 0);
    snprintf(args, sizeof args,
             "attack --model %s --model %s --data %s/data --attack fgsm,pgd,apgd-ce,square --eps 2/255,8/255 "
             "--steps 4 --seed 5 --batch 5",
             model, model2, dir);
    same_at_1_and_2("attack", args, 1);
}
END_TEST

Suite *threads_suite(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("identical");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_identical);
    suite_add_tcase(s, tc);
    return s;
}
