/* attack_cmd.h — what the three files of `questbench attack` share: attack.c (the run),
 * attack_opts.c (help, option values, per-image CSV, PNGs) and attack_report.c (the stdout
 * table and the sanity report). */
#ifndef QB_ATTACK_CMD_H
#define QB_ATTACK_CMD_H
#include "attacks.h"
#include "dataset.h"
#include "model.h"
#include "results.h"
#include <stdio.h>

#define MAX_MODELS 16
#define MAX_EPS 32
#define MAX_ENTRIES 16
#define MAX_GROUPS 2                 /* worst-case groups: one, or elliptical-compat's two variants */
#define ENTRY_STANDARD QB_ATK_COUNT /* the AutoAttack sequence, one list entry */
#define N_STAGES 4

/* AutoAttack 'standard' (autoattack.py): each stage on the points still robust */
extern const qb_attack_kind STANDARD_STAGES[N_STAGES];

typedef struct {
    char text[64];   /* as given, for the table */
    float value;
    double exact;    /* the value in double (4/255 exactly as a double): the rows' eps */
} eps_arg;

typedef struct {
    int kind;        /* qb_attack_kind or ENTRY_STANDARD */
    char name[32];   /* the attack: fgsm ... standard, or a compat name (fgsm-ell, standard-ell-fixed) */
    char tag[160];   /* the settings that differ from the defaults, "[steps=20;restarts=2]", or "" */
    char row[200];   /* the rows' attack name: name + tag */
    int variant;     /* -1: standard protocol; QB_ELL_ARTEFACT or QB_ELL_FIXED under elliptical-compat */
    int label_pred;  /* attacked with the clean predictions as labels (--label-source pred, compat fgsm/pgd) */
    int group;       /* the worst-case group it belongs to */
} entry;

/* per (entry, eps) tallies for the result rows and the sanity report */
typedef struct {
    long n, correct;
    long stage_correct[N_STAGES]; /* standard: robust after each stage */
    double max_norm;
    /* points: outside the attack's declared range / [0,1], with a NaN, with an exactly zero
     * start gradient (APGD stages only: has_zero_grad), beyond eps */
    long outside, outside01, nan, zero_grad, over_eps;
    int has_zero_grad;
} tally;

/* One image's outcome in a pass, as the batch journal keeps it (attack_journal.c) */
typedef struct {
    int ok, brk, out, out01, nan, zero; /* robust; broken (clean-correct, now wrong); outside its range,
                                         * [0,1]; NaN; zero start gradient */
    int stages;                         /* standard: the stages after which it was still robust */
    double linf, l2;                    /* the perturbation's norms in the eps space */
} jpoint;

typedef struct attack_journal attack_journal;

typedef struct {
    const char *model_path;
    char model_name[256];
    char model_sha[65];
    qb_model *model;
    FILE *per_image;          /* --per-image, open for appending (each pass's rows in one write) */
    const char *per_image_path;
    int pi_fresh;             /* without --resume: the file is started at the first pass's rows */
    char *pi_buf;             /* this pass's per-image rows (open_memstream) */
    size_t pi_len;
    FILE *pi_mem;
    const char *results_path; /* --out: the results file rows are appended to */
    const char *data;
    char dataset_id[512];     /* the rows' dataset: data path and selection (cmd_dataset_id) */
    char run_id[64];
    int n_groups;
    char worst_name[MAX_GROUPS][256]; /* "worst:<attack>+<attack>...": the set each per-point worst case covers */
    qb_results prev;          /* --resume: the rows already in --out */
    int resume;
    int n_entries, n_eps;
    entry entries[MAX_ENTRIES];
    eps_arg eps[MAX_EPS];
    qb_attack_cfg base;
    const char *step_text;
    int eps_space_norm, quantize;
    int compat;               /* --protocol elliptical-compat */
    int label_pred;           /* --label-source pred */
    const char *save_dir;
    attack_journal *journal;  /* OUT.partial: the finished batches of unfinished passes */
} run_ctx;

/* attack_opts.c */
void attack_help(FILE *f);
int attack_parse_eps_list(const char *s, eps_arg *eps, int *n, qb_norm norm);
/* the --attack list; under elliptical-compat each AutoAttack attack becomes two entries */
int attack_parse_list(const char *s, run_ctx *r);
int attack_parse_step(const char *s, float eps, float *out);
/* Per model (the target count depends on its classes): each entry's settings tag and row
 * name, and the worst-case row names built from them. */
int attack_set_row_names(run_ctx *r); /* QB_EXIT_USAGE when a name is too long for a row */
/* Whether entry e counts in worst-case group g. Under elliptical-compat fgsm-ell and pgd-ell do
 * not clip, so they are the same attack for both range variants and count in both groups. */
int attack_entry_in_group(const run_ctx *r, const entry *e, int g);
/* The config of entry ie at eps index ix for the current model (scale, range, protocol). */
int attack_entry_cfg(const run_ctx *r, int ie, int ix, qb_attack_cfg *cfg);
int attack_save_png(const char *dir, const char *model_name, const char *attack, const char *eps_text, const char *rel,
                    const float *x, int S);
void attack_quantize_8bit(const qb_attack_cfg *cfg, const float *x, float *v, size_t plane);
/* --per-image: the header; a pass's row parts, the same for each of its images (*head, *tail
 * malloc'd: free them); one row from them and the image's own fields */
extern const char *const ATTACK_PER_IMAGE_HEADER;
int attack_csv_pass_parts(const run_ctx *r, int ie, int ix, const qb_attack_cfg *cfg, char **head, char **tail);
void attack_csv_row(FILE *f, const char *head, const char *rel, const char *fields, const char *tail);
/* --save-adv: the folder exists (or is made) and takes files, checked before any work */
int attack_check_save_dir(const char *dir);

/* attack_journal.c: with --out, every finished batch of a pass is journaled; --resume replays
 * the batches of a pass whose row is missing instead of attacking them again */
int attack_journal_open(run_ctx *r);
void attack_journal_pass_key(const run_ctx *r, int ie, int ix, int n_ok, int batch, char *out, size_t n);
/* Pick the records of one pass (by key), then look batches up among them */
void attack_journal_select(run_ctx *r, const char *key);
const jpoint *attack_journal_find(run_ctx *r, int start, int nb, const char **rows, size_t *rows_len);
int attack_journal_append(run_ctx *r, const char *key, int start, int nb, const jpoint *pts, const char *rows,
                          size_t rows_len);
/* Close; the file goes when the run finished (every row written). */
void attack_journal_close(run_ctx *r, int finished);

/* attack.c */
qb_result attack_make_row(const run_ctx *r, const char *attack, double eps);
double attack_row_value(const run_ctx *r, const qb_result *w);

/* attack_report.c: prints the table and the sanity report; returns the number of sanity
 * violations. worst[g·NX + ix] are the worst-case counts computed this run; broken[(ie·NX +
 * ix)·N + q]: attack ie broke the clean-correct point q (the per-point Square check). */
long attack_report(const run_ctx *r, const tally *tal, const int *need, const int *emit_worst, const long *worst,
                   const unsigned char *broken, int N, int n_ok, long clean_correct, long skipped, long nonfinite);
/* The points of one pass that break its rules (beyond eps, outside its range, NaN): its rows
 * are not written. */
long attack_tally_violations(const entry *e, const tally *t);

#endif
