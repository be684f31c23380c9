/* sharding.h — sharding helpers of the commands: `--shard K/N` (parse, apply, run_id), the merge
 * of shard rows into the single-process rows (cmd/merge.c), and the MPI side of `questbench run`
 * (cmd/mpi.c; without -DQB_MPI these are single-process stubs and no MPI is linked).
 * docs/cluster.md is the user-facing description. */
#ifndef QB_CMD_SHARDING_H
#define QB_CMD_SHARDING_H
#include "cmd.h"
#include "dataset.h"
#include "results.h"
#include "shard.h"

/* After qb_dataset_open: keep shard k of n (no-op when n == 0, i.e. no --shard), with a note
 * on stderr naming the shard and its size. Returns 0 or the exit code after printing the error. */
int cmd_apply_shard(qb_dataset *ds, int k, int n);

/* Merge the rows of n_in results (names[i] names in[i] in messages): rows of shards (run_id
 * "<cmd>-shardKofN-<pid>") are grouped by their key without the shard; each group must hold
 * shards 1..N exactly once, of one N and one model file; n and correct are summed, value is
 * recomputed, run_id loses the shard tag and timestamp is the latest. Unsharded rows pass
 * through as they are. Rows come out in the order of their first shard's (or their own) position
 * in the inputs, which is the single-process order. QB_EXIT_DATA naming the missing or
 * duplicate shard. */
int cmd_merge_rows(const qb_results *in, const char *const *names, int n_in, qb_results *out);

/* MPI (cmd/mpi.c). cmd_mpi_start: under mpirun/srun in an MPI build, MPI_Init and the rank and
 * size; else rank 0 of 1 (an MPI build started without a launcher runs single-process). */
void cmd_mpi_start(int *rank, int *size);
/* The largest rc over the ranks (every rank calls it). */
int cmd_mpi_max_rc(int rc);
/* Every rank sends the bytes of its shard results file (absent = no rows); rank 0 merges them
 * (cmd_merge_rows) and appends the merged rows results_path does not hold yet, in one write.
 * Returns rank 0's rc on every rank. */
int cmd_mpi_gather_merge(const char *shard_path, const char *results_path, int rank, int size);
/* Silence stdout (on = 1) or bring it back (0): the stages' tables are per shard. */
void cmd_mpi_quiet_stdout(int on);
void cmd_mpi_end(void);

#endif
