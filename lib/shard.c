/* shard.c — round-robin shards of a data set and the shard tag of result run_ids (shard.h). */
#include "shard.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int qb_dataset_shard(qb_dataset *ds, int k, int n) {
    if (n < 1 || k < 1 || k > n) return qb_error(QB_EXIT_USAGE, "--shard %d/%d: expected 1 <= K <= N", k, n);
    if (n == 1) return 0;
    if (ds->n < n)
        return qb_error(QB_EXIT_USAGE, "--shard %d/%d: the data has %d image%s after --subset/--limit, fewer than %d shards",
                        k, n, ds->n, ds->n == 1 ? "" : "s", n);
    int kept = 0;
    for (int i = 0; i < ds->n; i++) {
        if (i % n == k - 1) ds->items[kept++] = ds->items[i];
        else free(ds->items[i].path), free(ds->items[i].rel);
    }
    ds->n = kept;
    return 0;
}

void qb_shard_run_id(char *buf, size_t len, const char *cmd, int k, int n) {
    if (n > 0) snprintf(buf, len, "%s-shard%dof%d-%d", cmd, k, n, (int)getpid());
    else snprintf(buf, len, "%s-%d", cmd, (int)getpid());
}

/* the tag's position and length in run_id, or NULL */
static const char *find_tag(const char *run_id, int *k, int *n, size_t *len) {
    for (const char *p = strstr(run_id, "-shard"); p; p = strstr(p + 1, "-shard")) {
        const char *q = p + 6;
        char *end;
        if (*q < '1' || *q > '9') continue;
        long a = strtol(q, &end, 10);
        if (strncmp(end, "of", 2) || end[2] < '1' || end[2] > '9') continue;
        long b = strtol(end + 2, &end, 10);
        if ((*end && *end != '-') || a > b || b > 1000000000) continue;
        *k = (int)a, *n = (int)b, *len = (size_t)(end - p);
        return p;
    }
    return NULL;
}

int qb_shard_of_run_id(const char *run_id, int *k, int *n) {
    size_t len;
    int a, b;
    if (!find_tag(run_id, &a, &b, &len)) return 0;
    if (k) *k = a;
    if (n) *n = b;
    return 1;
}

void qb_shard_strip_run_id(char *run_id) {
    size_t len;
    int a, b;
    char *p = (char *)find_tag(run_id, &a, &b, &len);
    if (p) memmove(p, p + len, strlen(p + len) + 1);
}
