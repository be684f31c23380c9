/* mpi.c — the MPI side of `questbench run` (make MPI=1 defines QB_MPI; docs/cluster.md).
 *
 * Under mpirun/srun every rank runs the suite on its shard (rank r = shard r+1 of R), writing
 * its rows to its own shard file OUTPUT/results.shard<r+1>of<R>.csv (its resume state). Then
 * each rank sends that file's bytes to rank 0 (MPI_Gather of the sizes, MPI_Gatherv of the
 * bytes: no shared file system is needed), and rank 0 merges them exactly as `questbench merge`
 * does and appends the merged rows to OUTPUT/results.csv before writing the report.
 * Without QB_MPI the functions below are single-process stubs and nothing of MPI is linked. */
#include "sharding.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int saved_stdout = -1;

void cmd_mpi_quiet_stdout(int on) {
    fflush(stdout);
    if (on && saved_stdout < 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0) return;
        saved_stdout = dup(STDOUT_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    } else if (!on && saved_stdout >= 0) {
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
        saved_stdout = -1;
    }
}

/* Merge the shard files' bytes (one buffer per rank) and append what results_path lacks. */
static int merge_buffers(char *const *bufs, const long *sizes, int size, const char *results_path) {
    qb_results *in = calloc((size_t)size, sizeof *in), merged = {0}, prev = {0};
    char (*names)[64] = calloc((size_t)size, sizeof *names);
    const char **np = calloc((size_t)size, sizeof *np);
    int rc = in && names && np ? 0 : qb_error(QB_EXIT_FAIL, "out of memory");
    for (int r = 0; r < size && !rc; r++) {
        snprintf(names[r], sizeof names[r], "rank %d (shard %d/%d)", r, r + 1, size);
        np[r] = names[r];
        if (sizes[r] > 0) rc = qb_results_read_buffer(&in[r], bufs[r], (size_t)sizes[r], names[r]);
    }
    if (!rc) rc = cmd_merge_rows(in, np, size, &merged);
    if (!rc && access(results_path, F_OK) == 0) rc = qb_results_read(&prev, results_path);
    if (!rc) {
        /* only the rows results.csv does not hold yet (a resumed run merges every row again) */
        int k = 0;
        for (int i = 0; i < merged.n; i++)
            if (!qb_results_has(&prev, &merged.rows[i])) merged.rows[k++] = merged.rows[i];
        if (k) rc = qb_results_append(results_path, merged.rows, k);
        if (!rc) fprintf(stderr, "questbench run: merged the rows of %d ranks: %d new row%s in %s\n", size, k, k == 1 ? "" : "s",
                         results_path);
    }
    for (int r = 0; in && r < size; r++) qb_results_free(&in[r]);
    free(in), free(names), free(np);
    qb_results_free(&merged);
    qb_results_free(&prev);
    return rc;
}

/* The whole file (NULL and size 0 when it does not exist). */
static int slurp(const char *path, char **buf, long *size) {
    *buf = NULL, *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : qb_error(QB_EXIT_DATA, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fileno(f), &st) || st.st_size > 1L << 30) rc = qb_error(QB_EXIT_DATA, "%s: cannot read (or over 1 GiB)", path);
    else if (st.st_size > 0) {
        *buf = malloc((size_t)st.st_size);
        if (!*buf) rc = qb_error(QB_EXIT_FAIL, "out of memory");
        else if (fread(*buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) rc = qb_error(QB_EXIT_DATA, "%s: read error", path);
        else *size = (long)st.st_size;
    }
    fclose(f);
    if (rc) free(*buf), *buf = NULL, *size = 0;
    return rc;
}

#ifdef QB_MPI
#include <mpi.h>

static int mpi_on;

void cmd_mpi_start(int *rank, int *size) {
    *rank = 0, *size = 1;
    /* started by a launcher (mpirun, srun with PMI/PMIx)? Otherwise run single-process rather
     * than attempt a singleton MPI_Init, which fails on machines without a usable network. */
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"};
    int launched = 0;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) launched |= getenv(vars[i]) != NULL;
    if (!launched) return;
    int init = 0;
    MPI_Initialized(&init);
    if (!init && MPI_Init(NULL, NULL) != MPI_SUCCESS) return;
    mpi_on = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
}

int cmd_mpi_max_rc(int rc) {
    if (!mpi_on) return rc;
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

int cmd_mpi_gather_merge(const char *shard_path, const char *results_path, int rank, int size) {
    char *mine = NULL;
    long my_size = 0;
    int rc = slurp(shard_path, &mine, &my_size);
    if (rc) fprintf(stderr, "questbench: %s\n", qb_last_error());
    if ((rc = cmd_mpi_max_rc(rc))) { free(mine); return rc; }
    int n = (int)my_size, *counts = NULL, *displs = NULL;
    char *all = NULL;
    if (rank == 0) {
        counts = calloc((size_t)size, sizeof *counts), displs = calloc((size_t)size, sizeof *displs);
        if (!counts || !displs) MPI_Abort(MPI_COMM_WORLD, QB_EXIT_FAIL);
    }
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        long total = 0;
        for (int r = 0; r < size; r++) displs[r] = (int)total, total += counts[r];
        if (total > 0x7fffffffL || !(all = malloc(total ? (size_t)total : 1))) MPI_Abort(MPI_COMM_WORLD, QB_EXIT_FAIL);
    }
    MPI_Gatherv(mine, n, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, MPI_COMM_WORLD);
    free(mine);
    if (rank == 0) {
        char **bufs = calloc((size_t)size, sizeof *bufs);
        long *sizes = calloc((size_t)size, sizeof *sizes);
        if (!bufs || !sizes) rc = qb_error(QB_EXIT_FAIL, "out of memory");
        for (int r = 0; r < size && !rc; r++) bufs[r] = all + displs[r], sizes[r] = counts[r];
        if (!rc) rc = merge_buffers(bufs, sizes, size, results_path);
        if (rc) fprintf(stderr, "questbench: %s\n", qb_last_error());
        free(bufs), free(sizes), free(all), free(counts), free(displs);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc;
}

void cmd_mpi_end(void) {
    if (mpi_on) MPI_Finalize();
    mpi_on = 0;
}

#else /* single process: no MPI in this build */

void cmd_mpi_start(int *rank, int *size) { *rank = 0, *size = 1; }
int cmd_mpi_max_rc(int rc) { return rc; }
int cmd_mpi_gather_merge(const char *shard_path, const char *results_path, int rank, int size) {
    (void)rank;
    char *buf;
    long n;
    int rc = slurp(shard_path, &buf, &n);
    if (!rc) rc = merge_buffers(&buf, &n, size, results_path);
    if (rc) fprintf(stderr, "questbench: %s\n", qb_last_error());
    free(buf);
    return rc;
}
void cmd_mpi_end(void) {}

#endif
