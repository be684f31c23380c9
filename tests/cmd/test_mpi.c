/* test_mpi.c — `mpirun -n 2 questbench run SUITE.yaml` (the make MPI=1 build) writes the rows
 * and the report of the single-process run, resumes, and the MPI binary started without mpirun
 * runs single-process. Run by `make test-mpi` (CK_RUN_SUITE=mpi, QB_MPI_BIN = the MPI binary,
 * .ci/run); under plain `make test` QB_MPI_BIN is unset and the test only says so. */
#include "qbtest.h"
#include "qb.h"
#include <string.h>
#include <sys/stat.h>

void shardt_make_data(const char *dir);
void shardt_same_rows(const char *a, const char *b);
int shardt_count_lines(const char *path);

static char *slurp(const char *path) {
    char cmd[1200], *s = NULL;
    snprintf(cmd, sizeof cmd, "cat '%s'", path);
    qbt_run(cmd, &s, NULL);
    return s;
}

START_TEST(test_mpirun_two_ranks) {
    const char *mpi_bin = getenv("QB_MPI_BIN");
    if (!mpi_bin || !*mpi_bin) {
        fprintf(stderr, "mpi: QB_MPI_BIN not set, skipped (make test-mpi runs it)\n");
        return;
    }
    char dir[256], p[600], text[4096], a[700], b[700], cmd[4096];
    snprintf(dir, sizeof dir, "%s", qbt_tmpdir());
    shardt_make_data(dir);
    for (int v = 0; v < 3; v++) {
        snprintf(p, sizeof p, "%s/s%d.yaml", dir, v);
        snprintf(text, sizeof text,
                 "output: %s/out%d\ndata: %s/data\npreset: cifar\nseed: 2\nthreads: 1\nmodels:\n  - name: std\n    file: %s\n"
                 "  - name: q\n    file: %s\ncorruptions:\n  list: gaussian_noise,fog\n  severities: 1-2\n"
                 "attacks:\n  - attack: fgsm,pgd\n    eps: [2/255, 8/255]\n    steps: 2\n",
                 dir, v, dir, qbt_fixture("vit/cifar_sdpa.safetensors"), qbt_fixture("vit/cifar_quest.safetensors"));
        ck_assert_int_eq(qbt_write_file(p, text, strlen(text)), 0);
    }
    char *o, *e;
    snprintf(cmd, sizeof cmd, "%s run %s/s0.yaml", qbt_bin(), dir);
    int rc = qbt_run(cmd, &o, &e);
    ck_assert_msg(rc == 0, "single process: exit %d: %s", rc, e);
    free(o), free(e);
    snprintf(cmd, sizeof cmd, "mpirun --oversubscribe --allow-run-as-root -n 2 %s run %s/s1.yaml", mpi_bin, dir);
    rc = qbt_run(cmd, &o, &e);
    ck_assert_msg(rc == 0, "mpirun: exit %d: %s", rc, e);
    ck_assert_msg(strstr(e, "merged the rows of 2 ranks"), "no merge on rank 0: %s", e);
    ck_assert_msg(strstr(o, "# ") || strstr(o, "|"), "no report on stdout: %s", o);
    free(o), free(e);
    snprintf(a, sizeof a, "%s/out0/results.csv", dir);
    snprintf(b, sizeof b, "%s/out1/results.csv", dir);
    shardt_same_rows(a, b);
    snprintf(a, sizeof a, "%s/out0/report/summary.csv", dir);
    snprintf(b, sizeof b, "%s/out1/report/summary.csv", dir);
    char *sa = slurp(a), *sb = slurp(b);
    ck_assert_msg(sa && sb && *sa && !strcmp(sa, sb), "summary.csv differs:\n%s\n---\n%s", sa, sb);
    free(sa), free(sb);
    struct stat st;
    snprintf(p, sizeof p, "%s/out1/results.shard2of2.csv", dir);
    ck_assert_msg(stat(p, &st) == 0, "%s: rank 1's shard file is missing", p);

    /* resumed: every rank finds its rows, rank 0 appends nothing */
    snprintf(b, sizeof b, "%s/out1/results.csv", dir);
    int lines = shardt_count_lines(b);
    snprintf(cmd, sizeof cmd, "mpirun --oversubscribe --allow-run-as-root -n 2 %s run %s/s1.yaml", mpi_bin, dir);
    rc = qbt_run(cmd, &o, &e);
    ck_assert_msg(rc == 0 && strstr(e, ": 0 new rows"), "mpirun again: exit %d: %s", rc, e);
    free(o), free(e);
    snprintf(b, sizeof b, "%s/out1/results.csv", dir);
    ck_assert_int_eq(shardt_count_lines(b), lines);

    /* the MPI build without a launcher: one process, the same rows */
    snprintf(cmd, sizeof cmd, "%s run %s/s2.yaml", mpi_bin, dir);
    rc = qbt_run(cmd, &o, &e);
    ck_assert_msg(rc == 0, "MPI binary alone: exit %d: %s", rc, e);
    free(o), free(e);
    snprintf(a, sizeof a, "%s/out0/results.csv", dir);
    snprintf(b, sizeof b, "%s/out2/results.csv", dir);
    shardt_same_rows(a, b);
}
END_TEST

Suite *mpi_suite(void) {
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpi");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_mpirun_two_ranks);
    suite_add_tcase(s, tc);
    return s;
}
