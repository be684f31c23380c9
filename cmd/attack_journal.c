/* attack_journal.c — `questbench attack`'s batch journal: a pass (one attack at one eps over
 * all images) writes its results row only when it is done, so a killed run would redo the
 * whole pass — hours for `standard` on ImageNet. Each finished batch is therefore appended to
 * OUT.partial (OUT = --out; one file per shard) as one record, in one write, fsync'd:
 *
 *   B <tab> pass key <tab> start <tab> nb <tab> rows_bytes \n
 *   nb lines: ok brk out out01 nan zero stages linf l2 \n   (per image, exact norms)
 *   rows_bytes of --per-image rows
 *   E \n
 *
 * `--resume` reads the complete records (a torn tail is ignored) and replays a batch whose
 * pass key, start and size match instead of attacking it again; the outcome is the same bits,
 * as every image's result is independent of its batch. The file goes when the run ends well;
 * a run without --resume starts it afresh. */
#include "attack_cmd.h"
#include "shard.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct attack_journal {
    char path[4200];
    int fd;
    int n, cap, replayed, appended;
    int *sel, n_sel; /* the records of the current pass (attack_journal_select) */
    struct jrec {
        char *key;
        int start, nb;
        jpoint *pts;
        char *rows;
        size_t rows_len;
    } *recs;
};

static void free_recs(attack_journal *j) {
    for (int i = 0; i < j->n; i++) free(j->recs[i].key), free(j->recs[i].pts), free(j->recs[i].rows);
    free(j->recs), free(j->sel);
    j->recs = NULL, j->sel = NULL, j->n = j->cap = j->n_sel = 0;
}

/* Read the complete records of an existing journal; anything malformed ends the reading (a
 * torn tail, or a file that is not a journal: its records are simply not replayed). Returns
 * the offset just past the last complete record, where appending resumes. */
static long load(attack_journal *j, FILE *f) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long good = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n' || strncmp(line, "B\t", 2)) break;
        line[len - 1] = 0;
        char *key = line + 2, *t1 = strchr(key, '\t'), *end;
        if (!t1) break;
        *t1 = 0;
        long start = strtol(t1 + 1, &end, 10), nb = *end == '\t' ? strtol(end + 1, &end, 10) : -1;
        if (*end != '\t' || end[1] < '0' || end[1] > '9') break;
        unsigned long long rl = strtoull(end + 1, &end, 10);
        if (*end || start < 0 || start > (1L << 30) || nb <= 0 || nb > (1 << 20) || rl > (1ull << 32)) break;
        size_t rows_len = (size_t)rl;
        struct jrec r = {strdup(key), (int)start, (int)nb, calloc((size_t)nb, sizeof(jpoint)), malloc(rows_len + 1), rows_len};
        int ok = r.key && r.pts && r.rows;
        for (int i = 0; i < nb && ok; i++) {
            jpoint *p = &r.pts[i];
            int v[7];
            ok = getline(&line, &cap, f) > 0 &&
                 sscanf(line, "%d %d %d %d %d %d %d %lf %lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &p->linf,
                        &p->l2) == 9;
            p->ok = v[0], p->brk = v[1], p->out = v[2], p->out01 = v[3], p->nan = v[4], p->zero = v[5], p->stages = v[6];
        }
        ok = ok && fread(r.rows, 1, rows_len, f) == rows_len && getline(&line, &cap, f) > 0 && !strcmp(line, "E\n");
        if (ok && j->n == j->cap) {
            int nc = j->cap ? 2 * j->cap : 64;
            struct jrec *nr = realloc(j->recs, (size_t)nc * sizeof *nr);
            if (nr) j->recs = nr, j->cap = nc;
            else ok = 0;
        }
        if (!ok) {
            free(r.key), free(r.pts), free(r.rows);
            break;
        }
        j->recs[j->n++] = r;
        good = ftell(f);
    }
    free(line);
    return good;
}

int attack_journal_open(run_ctx *r) {
    if (!r->results_path) return 0;
    attack_journal *j = calloc(1, sizeof *j);
    if (!j) return qb_error(QB_EXIT_FAIL, "out of memory");
    int k, n;
    if (qb_shard_of_run_id(r->run_id, &k, &n)) snprintf(j->path, sizeof j->path, "%s.partial.shard%dof%d", r->results_path, k, n);
    else snprintf(j->path, sizeof j->path, "%s.partial", r->results_path);
    long good = 0;
    if (r->resume) {
        FILE *f = fopen(j->path, "r");
        if (f) good = load(j, f), fclose(f);
    } else {
        unlink(j->path);
    }
    j->fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    /* cut a torn or foreign tail, so that later records follow the last good one */
    if (j->fd >= 0 && ftruncate(j->fd, good) != 0) close(j->fd), j->fd = -1;
    if (j->fd < 0) {
        int e = errno;
        free_recs(j);
        errno = e;
        char path[4200];
        snprintf(path, sizeof path, "%s", j->path);
        free(j);
        return qb_error(QB_EXIT_IO, "%s: cannot write the batch journal (%s)", path, strerror(errno));
    }
    r->journal = j;
    return 0;
}

void attack_journal_pass_key(const run_ctx *r, int ie, int ix, int n_ok, int batch, char *out, size_t n) {
    /* the pass's results-row key (model, attention, dataset, attack, norm, eps, seed, shard), and
     * what else a record must share with this run: version, model file, the readable images and
     * batching, and whether (and where) it wrote per-image rows and PNGs */
    qb_result row = attack_make_row(r, r->entries[ie].row, r->eps[ix].exact);
    char rk[2048];
    qb_result_key(&row, rk, sizeof rk);
    int o = snprintf(out, n, "%s|%s|%s|%d|%d|%s|%s", QB_VERSION, rk, r->model_sha, n_ok, batch, r->per_image_path ? "rows" : "",
                     r->save_dir ? r->save_dir : "");
    /* the key is one tab-free, newline-free field */
    for (int i = 0; i < o && (size_t)i < n; i++)
        if (out[i] == '\t' || out[i] == '\n') out[i] = ' ';
}

void attack_journal_select(run_ctx *r, const char *key) {
    attack_journal *j = r->journal;
    if (!j) return;
    j->n_sel = 0;
    if (!j->sel && j->n && !(j->sel = malloc(sizeof(int) * (size_t)j->n))) return; /* no replay: recomputed */
    for (int i = 0; i < j->n; i++)
        if (!strcmp(j->recs[i].key, key)) j->sel[j->n_sel++] = i;
}

const jpoint *attack_journal_find(run_ctx *r, int start, int nb, const char **rows, size_t *rows_len) {
    attack_journal *j = r->journal;
    if (!j) return NULL;
    for (int i = j->n_sel - 1; i >= 0; i--) {
        struct jrec *e = &j->recs[j->sel[i]];
        if (e->start == start && e->nb == nb) {
            *rows = e->rows, *rows_len = e->rows_len;
            j->replayed++;
            return e->pts;
        }
    }
    return NULL;
}

int attack_journal_append(run_ctx *r, const char *key, int start, int nb, const jpoint *pts, const char *rows,
                          size_t rows_len) {
    attack_journal *j = r->journal;
    if (!j) return 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m) return qb_error(QB_EXIT_FAIL, "out of memory");
    fprintf(m, "B\t%s\t%d\t%d\t%zu\n", key, start, nb, rows_len);
    for (int i = 0; i < nb; i++) {
        const jpoint *p = &pts[i];
        fprintf(m, "%d %d %d %d %d %d %d %.17g %.17g\n", p->ok, p->brk, p->out, p->out01, p->nan, p->zero, p->stages,
                p->linf, p->l2);
    }
    if (rows_len) fwrite(rows, 1, rows_len, m);
    fputs("E\n", m);
    int bad = fclose(m) != 0;
    /* one write: a kill leaves the record whole or torn (then ignored, and the batch redone) */
    bad = bad || write(j->fd, buf, len) != (ssize_t)len || fsync(j->fd) != 0;
    free(buf);
    j->appended++;
    return bad ? qb_error(QB_EXIT_IO, "%s: write failed (%s)", j->path, strerror(errno)) : 0;
}

void attack_journal_close(run_ctx *r, int finished) {
    attack_journal *j = r->journal;
    if (!j) return;
    if (j->replayed)
        fprintf(stderr, "questbench: note: %d batch(es) of unfinished passes replayed from %s (--resume)\n", j->replayed,
                j->path);
    close(j->fd);
    if (finished || (!j->n && !j->appended)) unlink(j->path); /* done, or nothing in it */
    free_recs(j);
    free(j);
    r->journal = NULL;
}
