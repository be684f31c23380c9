/* test_errors.c — every row of docs/errors.md: the command exits with the documented code and
 * prints exactly the documented message as its only line on stderr, and nothing on stdout. */
#include "qbtest.h"
#include "image.h"
#include <string.h>
#include <sys/stat.h>

static char D[256], M[512], C[512];

#define SHARD_CSV                                                                                           \
    "run_id,model,model_sha256,attention,dataset,preset,kind,corruption,severity,attack,norm,eps,n,correct," \
    "metric,value,seed,version,timestamp\n"                                                                  \
    "eval-shard1of2-7,m,,sdpa,d,,clean,,0,,,0,5,2,top1,0.4,0,0.1.0,2026-11-26T00:00:00Z\n"

/* the scratch folder the table's {D} refers to */
static void make_scratch(void) {
    snprintf(D, sizeof D, "%s", qbt_tmpdir());
    snprintf(M, sizeof M, "%s", qbt_fixture("vit/sdpa_tiny.safetensors"));
    snprintf(C, sizeof C, "%s", qbt_fixture("vit/cifar_sdpa.safetensors"));
    char p[1024];
    uint8_t px[32 * 32 * 3];
    qb_image img = {32, 32, px};
    const char *dirs[] = {"data", "data/a", "data/b", "empty", "small", "small/a"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", D, dirs[i]);
        mkdir(p, 0755);
    }
    for (int c = 0; c < 2; c++) {
        for (int k = 0; k < (int)sizeof px; k++) px[k] = (uint8_t)(k * (3 + c));
        snprintf(p, sizeof p, "%s/data/%c/x.png", D, 'a' + c);
        ck_assert_int_eq(qb_image_save_png(&img, p), 0);
    }
    char cmd[4096], png[512], jpg[512]; /* qbt_fixture reuses one buffer: copy each result */
    snprintf(png, sizeof png, "%s", qbt_fixture("vit/sdpa_tiny_img0.png"));
    snprintf(jpg, sizeof jpg, "%s", qbt_fixture("vit/sdpa_tiny_img1.jpg"));
    snprintf(cmd, sizeof cmd,
             "cp %s %s/small/a/x.png && head -c 300 %s > %s/corrupt.jpg && head -c 3000 %s > %s/trunc.safetensors",
             png, D, jpg, D, M, D);
    ck_assert_int_eq(system(cmd), 0);
    const uint8_t huge[16] = {0x00, 0xC2, 0xEB, 0x0B, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}; /* 2e8 */
    const uint8_t zero8[8] = {0};
    struct { const char *name; const void *data; size_t n; } files[] = {
        {"text.png", "hello", 5},
        {"huge.safetensors", huge, 16},
        {"zero8", zero8, 8},
        {"labels_bad.txt", "a/x.png 0\nbroken line\n", 22},
        {"subset_missing.txt", "a/x.png\na/nope.png\n", 19},
        {"notresults.csv", "a,b\n1,2\n", 8},
        {"shardrows.csv", SHARD_CSV, sizeof SHARD_CSV - 1},
        {"bad.yaml", "name: x\nmodels:\n  - file: a\n   bad: [\n", 38},
        {"badkey.yaml", "output: o\ndata: d\nmodels:\n  - [a]: m\n", 37},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", D, files[i].name);
        ck_assert_int_eq(qbt_write_file(p, files[i].data, files[i].n), 0);
    }
}

/* replace {M} {C} {D} */
static void expand(char *dst, size_t n, const char *src) {
    size_t o = 0;
    for (const char *s = src; *s && o + 1 < n; s++) {
        const char *rep = NULL;
        if (!strncmp(s, "{M}", 3)) rep = M;
        else if (!strncmp(s, "{C}", 3)) rep = C;
        else if (!strncmp(s, "{D}", 3)) rep = D;
        if (rep) {
            o += (size_t)snprintf(dst + o, n - o, "%s", rep);
            s += 2;
        } else dst[o++] = *s;
    }
    dst[o < n ? o : n - 1] = 0;
}

/* text between the first and second backtick after `from`; advances *from */
static int backticked(char **from, char *out, size_t n) {
    char *a = strchr(*from, '`');
    if (!a) return 0;
    char *b = strchr(a + 1, '`');
    if (!b) return 0;
    snprintf(out, n, "%.*s", (int)(b - a - 1), a + 1);
    *from = b + 1;
    return 1;
}

START_TEST(test_documented_errors) {
    make_scratch();
    char doc[1024];
    snprintf(doc, sizeof doc, "%s/../../docs/errors.md", qbt_fixture(""));
    FILE *f = fopen(doc, "r");
    ck_assert_msg(f != NULL, "cannot open %s", doc);
    char line[8192];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        int num, code;
        if (sscanf(line, "| %d |", &num) != 1) continue;
        char *p = line, args[2048], msg[2048], cmdline[8192], want[4096];
        ck_assert(backticked(&p, args, sizeof args));
        ck_assert_int_eq(sscanf(p, " | %d |", &code), 1);
        ck_assert(backticked(&p, msg, sizeof msg));
        char ex[4096];
        expand(ex, sizeof ex, args);
        snprintf(cmdline, sizeof cmdline, "%s %s", qbt_bin(), ex);
        expand(want, sizeof want, msg);
        char *out, *err;
        int rc = qbt_run(cmdline, &out, &err);
        ck_assert_msg(rc == code, "row %d (%s): exit %d, documented %d; stderr: %s", num, args, rc, code, err);
        size_t wl = strlen(want);
        ck_assert_msg(err && !strncmp(err, want, wl) && err[wl] == '\n' && err[wl + 1] == 0,
                      "row %d (%s): stderr differs from the documented message\n  got:  %s\n  want: %s", num, args,
                      err, want);
        ck_assert_msg(!out || !out[0], "row %d wrote to stdout: %s", num, out);
        free(out), free(err);
        rows++;
    }
    fclose(f);
    ck_assert_int_ge(rows, 30);
}
END_TEST

Suite *errors_suite(void) {
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("documented");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_documented_errors);
    suite_add_tcase(s, tc);
    return s;
}
