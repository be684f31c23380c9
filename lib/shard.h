/* shard.h — splitting a data set into N shards (`--shard K/N`, MPI ranks) and the shard tag
 * that result rows carry in their run_id (README "Results", docs/cluster.md).
 *
 * The partition is round-robin over the samples as listed after --subset/--limit: shard K of N
 * (1-based) holds the samples i (0-based) with i mod N = K-1, in their order. It depends only
 * on the list, never on --batch, --threads or the machine; shard sizes differ by at most one,
 * and every shard is a spread-out sample of an ImageFolder's classes. */
#ifndef QB_SHARD_H
#define QB_SHARD_H
#include "dataset.h"
#include <stddef.h>

/* Keep shard k (1..n) of ds in place. n == 1 keeps everything. QB_EXIT_USAGE when k is
 * outside 1..n or the shard would be empty (fewer images than shards). */
int qb_dataset_shard(qb_dataset *ds, int k, int n);

/* The run_id of a command's rows: "<cmd>-<pid>" unsharded (n == 0), "<cmd>-shard<k>of<n>-<pid>"
 * for a shard. */
void qb_shard_run_id(char *buf, size_t len, const char *cmd, int k, int n);
/* 1 and (k, n) when run_id carries a "-shard<k>of<n>" tag (1 <= k <= n), else 0. */
int qb_shard_of_run_id(const char *run_id, int *k, int *n);
/* Remove the "-shard<k>of<n>" tag from run_id in place ("eval-shard2of4-123" -> "eval-123"). */
void qb_shard_strip_run_id(char *run_id);

#endif
