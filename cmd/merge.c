/* merge.c — `questbench merge SHARD.csv... --out ALL.csv`: the rows of --shard K/N runs summed
 * into the rows a single-process run writes (cmd/sharding.h, docs/cluster.md). */
#include "sharding.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_INPUTS 4096

static void help(FILE *f) {
    fprintf(f, "usage: questbench merge SHARD.csv... --out ALL.csv\n"
               "Merges results files written by `--shard K/N` runs (eval, corrupt, attack, run; shards may\n"
               "share a file or have one each) into the rows one process would have written: rows are grouped\n"
               "by their measurement (model, attention, dataset, preset, kind, corruption, severity, attack,\n"
               "norm, eps, seed), n and correct are summed and value = correct/n. Every group must hold\n"
               "shards 1..N exactly once (else exit 4 naming the missing or duplicate shard). Rows without a\n"
               "shard are copied as they are. ALL.csv is written atomically (replaced if it exists), in the\n"
               "single-process row order; run_id loses its shard tag and timestamp is the latest shard's.\n");
}

typedef struct {
    int in, row;     /* where the row is */
    int k, n;        /* shard, 0 = unsharded */
    char *key;       /* the key without the shard */
} ref;

static int cmp_ref(const void *a, const void *b) {
    const ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    if (x->in != y->in) return x->in < y->in ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

typedef struct {
    int in, row;     /* anchor: position of the group's first shard (its order in the output) */
    qb_result r;
} outrow;

static int cmp_out(const void *a, const void *b) {
    const outrow *x = a, *y = b;
    if (x->in != y->in) return x->in < y->in ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* "model std, clean" / "model std, corruption fog severity 3" / "model q, attack pgd linf eps 0.0078" */
static void describe(const qb_result *r, char *buf, size_t len) {
    int o = snprintf(buf, len, "model %s (%s), %s", r->model, r->attention, r->kind);
    if (o < 0 || (size_t)o >= len) return;
    if (!strcmp(r->kind, "corruption")) snprintf(buf + o, len - (size_t)o, " %s severity %d", r->corruption, r->severity);
    else if (!strcmp(r->kind, "attack")) snprintf(buf + o, len - (size_t)o, " %s %s eps %.6g", r->attack, r->norm, r->eps);
    if (r->preset[0] && strlen(buf) + strlen(r->preset) + 12 < len) strcat(buf, ", preset "), strcat(buf, r->preset);
}

int cmd_merge_rows(const qb_results *in, const char *const *names, int n_in, qb_results *out) {
    memset(out, 0, sizeof *out);
    size_t total = 0;
    for (int i = 0; i < n_in; i++) total += (size_t)in[i].n;
    ref *refs = calloc(total ? total : 1, sizeof *refs);
    outrow *rows = calloc(total ? total : 1, sizeof *rows);
    if (!refs || !rows) { free(refs), free(rows); return qb_error(QB_EXIT_FAIL, "out of memory"); }
    size_t nr = 0, no = 0;
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < in[i].n; j++) {
            ref *f = &refs[nr++];
            qb_result c = in[i].rows[j];
            f->in = i, f->row = j;
            if (!qb_shard_of_run_id(c.run_id, &f->k, &f->n)) f->k = f->n = 0;
            c.run_id[0] = 0;
            char key[2048];
            qb_result_key(&c, key, sizeof key);
            if (!(f->key = strdup(key))) {
                for (size_t t = 0; t + 1 < nr; t++) free(refs[t].key);
                free(refs), free(rows);
                return qb_error(QB_EXIT_FAIL, "out of memory");
            }
        }
    qsort(refs, nr, sizeof *refs, cmp_ref);
    int rc = 0;
    char what[512];
    for (size_t g = 0; g < nr && !rc;) {
        size_t e = g;
        while (e < nr && !strcmp(refs[e].key, refs[g].key)) e++;
        const qb_result *first = &in[refs[g].in].rows[refs[g].row];
        describe(first, what, sizeof what);
        /* rows without a shard pass through; a measurement is either sharded or not */
        size_t s = g;
        while (s < e && refs[s].k == 0) {
            rows[no].in = refs[s].in, rows[no].row = refs[s].row, rows[no].r = in[refs[s].in].rows[refs[s].row];
            no++, s++;
        }
        if (s == e) { g = e; continue; }
        int N = refs[s].n;
        qb_result m = in[refs[s].in].rows[refs[s].row];
        m.n = m.correct = 0;
        for (size_t t = s; t < e && !rc; t++) {
            const ref *f = &refs[t];
            const qb_result *r = &in[f->in].rows[f->row];
            int expect = (int)(t - s) + 1;
            if (f->n != N)
                rc = qb_error(QB_EXIT_DATA, "%s: %s: shards of different counts (%d/%d in %s, %d/%d in %s)", names[f->in],
                              what, refs[s].k, N, names[refs[s].in], f->k, f->n, names[f->in]);
            else if (f->k < expect)
                rc = qb_error(QB_EXIT_DATA, "%s: %s: shard %d/%d appears twice (%s%s%s)", names[f->in], what, f->k, N,
                              names[refs[t - 1].in], refs[t - 1].in == f->in ? ", twice" : " and ",
                              refs[t - 1].in == f->in ? "" : names[f->in]);
            else if (f->k > expect)
                rc = qb_error(QB_EXIT_DATA, "%s: missing shard %d/%d", what, expect, N);
            else if (strcmp(r->model_sha256, m.model_sha256))
                rc = qb_error(QB_EXIT_DATA, "%s: %s: shard %d/%d comes from a different model file (sha256 %.12s, shard 1 %.12s)",
                              names[f->in], what, f->k, N, r->model_sha256, m.model_sha256);
            if (rc) break;
            m.n += r->n, m.correct += r->correct;
            if (strcmp(r->timestamp, m.timestamp) > 0) snprintf(m.timestamp, sizeof m.timestamp, "%s", r->timestamp);
        }
        if (!rc && (int)(e - s) < N) rc = qb_error(QB_EXIT_DATA, "%s: missing shard %d/%d", what, (int)(e - s) + 1, N);
        if (rc) break;
        m.value = m.n > 0 ? (double)m.correct / (double)m.n : 0.0; /* as qb_result_finish */
        qb_shard_strip_run_id(m.run_id);
        rows[no].in = refs[s].in, rows[no].row = refs[s].row, rows[no].r = m; /* shard 1's position */
        no++;
        g = e;
    }
    for (size_t t = 0; t < nr; t++) free(refs[t].key);
    free(refs);
    if (rc) { free(rows); return rc; }
    qsort(rows, no, sizeof *rows, cmp_out);
    out->rows = malloc((no ? no : 1) * sizeof *out->rows);
    if (!out->rows) { free(rows); return qb_error(QB_EXIT_FAIL, "out of memory"); }
    for (size_t i = 0; i < no; i++) out->rows[i] = rows[i].r;
    out->n = out->cap = (int)no;
    free(rows);
    return 0;
}

int cmd_merge(int argc, char **argv) {
    const char *out_path = NULL;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    int n_in = 0;
    if (!inputs) return cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); free(inputs); return 0; }
        if (!strcmp(a, "--out")) {
            if (i + 1 >= argc) { fprintf(stderr, "questbench merge: --out needs a value\n"); free(inputs); return QB_EXIT_USAGE; }
            out_path = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "questbench merge: unknown option '%s'\n", a);
            free(inputs);
            return QB_EXIT_USAGE;
        } else inputs[n_in++] = a;
    }
    if (!n_in || !out_path || n_in > MAX_INPUTS) {
        fprintf(stderr, "questbench merge: %s\n", n_in > MAX_INPUTS ? "at most 4096 input files" : !n_in ? "no input files (SHARD.csv...)" : "--out is required");
        free(inputs);
        return QB_EXIT_USAGE;
    }
    int rc = qb_results_check_writable(out_path);
    qb_results *in = calloc((size_t)n_in, sizeof *in), merged = {0};
    if (!rc && !in) rc = qb_error(QB_EXIT_FAIL, "out of memory");
    long total = 0;
    for (int i = 0; i < n_in && !rc; i++) rc = qb_results_read(&in[i], inputs[i]), total += in ? in[i].n : 0;
    if (!rc) rc = cmd_merge_rows(in, inputs, n_in, &merged);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%.1100s.tmp.%d", out_path, (int)getpid());
    if (!rc) {
        /* a fresh file with the header, then rename: readers see the old file or the whole new one */
        unlink(tmp);
        rc = qb_results_append(tmp, merged.rows, merged.n);
        if (!rc && rename(tmp, out_path)) rc = qb_error(QB_EXIT_IO, "%s: cannot write: %s", out_path, strerror(errno));
        if (rc) unlink(tmp);
    }
    if (!rc) fprintf(stderr, "questbench merge: %ld rows from %d file%s -> %d rows in %s\n", total, n_in, n_in == 1 ? "" : "s",
                     merged.n, out_path);
    for (int i = 0; in && i < n_in; i++) qb_results_free(&in[i]);
    free(in);
    qb_results_free(&merged);
    free(inputs);
    return rc ? cmd_fail(rc) : 0;
}
