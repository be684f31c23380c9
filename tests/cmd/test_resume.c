/* test_resume.c — crash safety of `questbench run`: a small suite (two 32-px models, 20 generated
 * images, three corruptions × two severities, `fgsm,pgd` at two ε) is killed with SIGKILL at
 * random moments (deterministic seed) and resumed each time; the final results.csv (without
 * run_id and timestamp, rows sorted) and the report must equal an uninterrupted run's: no torn,
 * lost or duplicate row. */
#include "qbtest.h"
#include "image.h"
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

static void make_suite(const char *name) {
    char p[600], text[4096];
    snprintf(p, sizeof p, "%s/%s.yaml", dir, name);
    snprintf(text, sizeof text,
             "name: %s\noutput: %s/%s\ndata: %s/data\npreset: cifar\nseed: 3\nthreads: 1\n"
             "models:\n  - name: std\n    file: %s\n",
             name, dir, name, dir, qbt_fixture("vit/cifar_sdpa.safetensors"));
    size_t n = strlen(text);
    snprintf(text + n, sizeof text - n,
             "  - name: q\n    file: %s\ncorruptions:\n  list: gaussian_noise,contrast,fog\n  severities: 1-2\n"
             "attacks:\n  - attack: fgsm,pgd\n    eps: [1/255, 2/255]\n    steps: 3\n",
             qbt_fixture("vit/cifar_quest.safetensors"));
    ck_assert_int_eq(qbt_write_file(p, text, strlen(text)), 0);
}

/* start `questbench run DIR/NAME.yaml` with stdout and stderr discarded */
static pid_t spawn_run(const char *name) {
    char suite[600];
    snprintf(suite, sizeof suite, "%s/%s.yaml", dir, name);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execl(qbt_bin(), qbt_bin(), "run", suite, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* results.csv rows without run_id (first field) and timestamp (last), sorted; checks that the
 * file ends with a newline (no torn tail) and that every row has 19 fields */
static int read_rows(const char *path, char ***rows_out) {
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char **rows = NULL;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        ck_assert_msg(len && line[len - 1] == '\n', "%s: torn line '%s'", path, line);
        line[len - 1] = 0;
        int commas = 0;
        for (char *c = line; *c; c++) commas += *c == ',';
        ck_assert_msg(commas == 18, "%s: row with %d fields: '%s'", path, commas + 1, line);
        char *first = strchr(line, ','), *last = strrchr(line, ',');
        *last = 0;
        rows = realloc(rows, (size_t)(n + 1) * sizeof *rows);
        rows[n++] = strdup(first + 1);
    }
    fclose(f);
    qsort(rows, (size_t)n, sizeof *rows, cmp_str);
    *rows_out = rows;
    return n;
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

/* s with every occurrence of `from` replaced by `to` (report.md names its results file) */
static char *replace_all(const char *s, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), cap = strlen(s) * (tl > fl ? tl / fl + 2 : 1) + 1, o = 0;
    char *r = malloc(cap);
    while (*s) {
        if (!strncmp(s, from, fl)) memcpy(r + o, to, tl), o += tl, s += fl;
        else r[o++] = *s++;
    }
    r[o] = 0;
    return r;
}

START_TEST(test_kill_and_resume) {
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    char p[600];
    /* an ImageFolder of 2 classes × 10 generated 32×32 PNGs */
    uint8_t px[32 * 32 * 3];
    qb_image img = {32, 32, px};
    uint32_t x = 12345;
    snprintf(p, sizeof p, "%s/data", dir);
    mkdir(p, 0755);
    for (int c = 0; c < 2; c++) {
        snprintf(p, sizeof p, "%s/data/%c", dir, 'a' + c);
        mkdir(p, 0755);
        for (int i = 0; i < 10; i++) {
            for (int k = 0; k < (int)sizeof px; k++) x = x * 1664525u + 1013904223u, px[k] = (uint8_t)(x >> 24);
            snprintf(p, sizeof p, "%s/data/%c/%02d.png", dir, 'a' + c, i);
            ck_assert_int_eq(qb_image_save_png(&img, p), 0);
        }
    }
    make_suite("ref");
    make_suite("kill");

    /* the uninterrupted run, timed: kills are spread over its duration */
    double t0 = now();
    int st;
    pid_t pid = spawn_run("ref");
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "uninterrupted run failed (status %d)", st);
    double T = now() - t0;

    /* 16 kill points spread over the uninterrupted run's timeline, sorted; the i-th resumed run
     * is killed at the i-th point (it first skips, quickly, what is recorded, then redoes the
     * stage it was killed in, so it is at least that far), so the kills land across all stages. Then, until 10
     * kills have landed on a running process, more kills at random short delays (start-up,
     * resume checks, the report). Deterministic seed. */
    char kill_csv[600];
    snprintf(kill_csv, sizeof kill_csv, "%s/kill/results.csv", dir);
    int stages = 0, last_rows = -1; /* kills that found the results file at a new length */
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    double pts[16];
    for (int i = 0; i < 16; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        pts[i] = (double)(rng >> 11) / 9007199254740992.0 * T; /* [0, T) */
    }
    for (int i = 1; i < 16; i++)
        for (int j = i; j > 0 && pts[j] < pts[j - 1]; j--) {
            double t = pts[j];
            pts[j] = pts[j - 1], pts[j - 1] = t;
        }
    int landed = 0, tries = 0;
    while ((tries < 16 || landed < 10) && tries < 60) {
        double delay;
        if (tries < 16) delay = pts[tries];
        else {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            delay = (double)(rng >> 11) / 9007199254740992.0 * 0.1;
        }
        tries++;
        pid = spawn_run("kill");
        usleep((useconds_t)(delay * 1e6));
        int alive = waitpid(pid, &st, WNOHANG) == 0;
        if (alive) {
            kill(pid, SIGKILL);
            ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        }
        if (alive && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            landed++;
            int rows = count_lines(kill_csv);
            if (getenv("QB_TEST_VERBOSE")) fprintf(stderr, "resume: kill %d after %.3f s: %d lines\n", landed, delay, rows);
            if (rows != last_rows) stages++, last_rows = rows;
        } else ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a resumed run failed (status %d)", st);
    }
    ck_assert_msg(landed >= 10, "only %d of %d kills landed while the run was going (run takes %.2f s)", landed, tries, T);
    ck_assert_msg(stages >= 3, "the kills landed at only %d distinct points of progress", stages);
    /* then resume to the end */
    pid = spawn_run("kill");
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "final resume failed (status %d)", st);

    char a[600], b[600];
    snprintf(a, sizeof a, "%s/ref/results.csv", dir);
    snprintf(b, sizeof b, "%s/kill/results.csv", dir);
    char **ra, **rb;
    int na = read_rows(a, &ra), nb = read_rows(b, &rb);
    ck_assert_int_ge(na, 1 + 2 + 2 * 3 * 2 + 2 * 3 * 2); /* header, clean, corruptions, fgsm/pgd/worst × 2 ε */
    for (int i = 1; i < na; i++) ck_assert_msg(strcmp(ra[i - 1], ra[i]), "duplicate row in the reference: %s", ra[i]);
    ck_assert_msg(na == nb, "%d rows after %d kills, %d uninterrupted", nb, landed, na);
    for (int i = 0; i < na; i++) ck_assert_msg(!strcmp(ra[i], rb[i]), "row differs:\n  %s\n  %s", ra[i], rb[i]);
    for (int i = 0; i < na; i++) free(ra[i]), free(rb[i]);
    free(ra), free(rb);

    snprintf(a, sizeof a, "%s/ref/report/summary.csv", dir);
    snprintf(b, sizeof b, "%s/kill/report/summary.csv", dir);
    char *sa = slurp(a), *sb = slurp(b);
    ck_assert_msg(!strcmp(sa, sb), "summary.csv differs after kills:\n%s\nvs\n%s", sa, sb);
    free(sa), free(sb);
    snprintf(a, sizeof a, "%s/ref/report/report.md", dir);
    snprintf(b, sizeof b, "%s/kill/report/report.md", dir);
    sa = slurp(a), sb = slurp(b);
    char from[300], to[300];
    snprintf(from, sizeof from, "%s/kill/", dir);
    snprintf(to, sizeof to, "%s/ref/", dir);
    char *sb2 = replace_all(sb, from, to);
    ck_assert_msg(!strcmp(sa, sb2), "report.md differs after kills");
    free(sa), free(sb), free(sb2);
}
END_TEST

Suite *resume_suite(void) {
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("sigkill");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_kill_and_resume);
    suite_add_tcase(s, tc);
    return s;
}
