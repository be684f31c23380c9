/* shard.c — `--shard K/N`: parsing and applying it (the partition itself is lib/shard.c). */
#include "sharding.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_parse_shard(const char *v, int *k, int *n) {
    char *end;
    errno = 0;
    long a = strtol(v, &end, 10), b = 0;
    int ok = end != v && *end == '/' && v[0] != '-' && v[0] != '+' && !errno;
    if (ok) {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        ok = end != q && !*end && *q != '-' && *q != '+' && !errno && a >= 1 && b >= 1 && a <= b && b <= 1000000;
    }
    if (!ok) {
        fprintf(stderr, "questbench: --shard: expected K/N with 1 <= K <= N (e.g. 2/8), got '%s'\n", v);
        return -1;
    }
    *k = (int)a, *n = (int)b;
    return 0;
}

int cmd_apply_shard(qb_dataset *ds, int k, int n) {
    if (n <= 0) return 0;
    int total = ds->n, rc = qb_dataset_shard(ds, k, n);
    if (rc) return cmd_fail(rc);
    fprintf(stderr, "questbench: note: shard %d/%d: %d of %d images (those at positions %d, %d+%d, ...)\n", k, n, ds->n,
            total, k, k, n);
    return 0;
}
