/* results.h — the one long-format results CSV every command writes (README "Results").
 *
 * One row per measurement: a model's top-1 accuracy on one data condition. Rows are appended
 * row-atomically (one write() per batch of complete lines, fsync'd; a torn last line left by
 * a crash is cut off before the next append and ignored by readers), so a killed run never
 * leaves a torn, lost or duplicate row, and `--resume` skips rows already present. */
#ifndef QB_RESULTS_H
#define QB_RESULTS_H
#include "qb.h"
#include <stdio.h>

#define QB_RESULTS_HEADER                                                                                  \
    "run_id,model,model_sha256,attention,dataset,preset,kind,corruption,severity,attack,norm,eps,n,correct," \
    "metric,value,seed,version,timestamp"

typedef struct {
    char run_id[64];
    char model[256];        /* a short name (suite name or file stem) */
    char model_sha256[65];  /* of the model file */
    char attention[16];     /* sdpa | qknorm | quest */
    char dataset[512];      /* the data path, with ?limit=/subset=/labels= when a selection applies */
    char preset[16];        /* imagenet | tinyimagenet | cifar | "" */
    char kind[16];          /* clean | corruption | attack */
    char corruption[32];    /* corruption rows */
    int severity;           /* 1..5 for corruption rows, else 0 */
    char attack[256];       /* attack rows: fgsm, pgd, apgd-ce, apgd-t, fab-t, square, standard, worst:...; a
                             * [settings] tag where they differ from the defaults */
    char norm[8];           /* linf | l2 | "" */
    double eps;             /* attack rows, in pixel units of [0,1] */
    long n, correct;        /* images scored, and correct (robust) ones */
    char metric[16];        /* top1 */
    double value;           /* correct / n */
    uint64_t seed;
    char version[16];
    char timestamp[32];     /* ISO 8601 UTC */
} qb_result;

/* Fill version, timestamp and value from the other fields. */
void qb_result_finish(qb_result *r);

/* Append rows to path (created with the header if absent or empty). QB_EXIT_IO on failure. */
int qb_results_append(const char *path, const qb_result *rows, int n);

/* Before long work: the file is writable, or can be created. QB_EXIT_IO naming it. */
int qb_results_check_writable(const char *path);

/* Read every complete row of one or more files. QB_EXIT_DATA names the file and line of a
 * malformed row or a wrong header; a missing file is QB_EXIT_DATA too. */
typedef struct {
    qb_result *rows;
    int n, cap;
} qb_results;
int qb_results_read(qb_results *rs, const char *path);
/* The same on an open stream or an in-memory file (`label` names it in messages; fuzzed). */
int qb_results_read_stream(qb_results *rs, FILE *f, const char *label);
int qb_results_read_buffer(qb_results *rs, const void *buf, size_t size, const char *label);
void qb_results_free(qb_results *rs);

/* The identity of a measurement, for --resume and for matching baselines:
 * model, attention, dataset, preset, kind, corruption, severity, attack, norm, eps, seed, and for
 * a shard's row the shard K/N read from its run_id (lib/shard.h). */
void qb_result_key(const qb_result *r, char *buf, size_t len);
/* 1 if a row with the same key is present. */
int qb_results_has(const qb_results *rs, const qb_result *r);

/* One CSV field into dst (at most cap bytes, no NUL), quoted when it holds a comma, quote or
 * line break (quotes doubled); returns the bytes written. */
size_t qb_csv_field(char *dst, size_t cap, const char *s);

/* A name (an attack's row name, an eps such as 4/255) as a file name: "worst:fgsm+pgd[steps=20]"
 * -> "worst_fgsm+pgd_steps=20"; over 100 characters it keeps the first 80 and a hash of the
 * whole, so distinct names give distinct files within the file-name limit. Returns out. */
const char *qb_file_safe_name(const char *name, char *out, size_t n);

/* Split one CSV line in place (RFC 4180 quotes) into at most maxf fields; the field count,
 * or -1 if malformed or more than maxf. */
int qb_csv_split(char *line, char **fields, int maxf);

/* SHA-256 of a file as 64 hex characters. QB_EXIT_MODEL if unreadable. */
int qb_sha256_file(const char *path, char out[65]);

#endif
