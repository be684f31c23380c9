/* report.h — from results rows to per-model metrics, report.md, summary.csv, SVG charts,
 * and the regression gate. Definitions: corruptions.md §5 (CE, mCE, relative
 * mCE, unnormalised mean error), attacks.md (robust accuracy, worst case per point). */
#ifndef QB_REPORT_H
#define QB_REPORT_H
#include <stdio.h>
#include "results.h"
#include "corruptions.h"

#define QB_REPORT_MAX_MODELS 16
#define QB_REPORT_MAX_ATTACKS 16
#define QB_REPORT_MAX_EPS 16

typedef struct {
    char name[256], attention[16], sha[65], preset[16];
    double clean_acc;                       /* NAN when absent */
    long clean_n;
    double err[QB_N_CORRUPTIONS][5];        /* top-1 error per corruption and severity; NAN absent */
    double ce[QB_N_CORRUPTIONS], rel_ce[QB_N_CORRUPTIONS]; /* NAN unless all 5 severities (+ imagenet) */
    double mce, rel_mce;                    /* over the 15 common; NAN unless all present (imagenet) */
    double mean_err;                        /* over 15 × 5; NAN unless all present */
    int n_err_present;                      /* of the 75 common cells */
    double rob[QB_REPORT_MAX_ATTACKS][QB_REPORT_MAX_EPS]; /* robust accuracy; NAN absent */
} qb_model_metrics;

typedef struct {
    int n_models;
    qb_model_metrics m[QB_REPORT_MAX_MODELS];
    int n_attacks;
    char attacks[QB_REPORT_MAX_ATTACKS][256]; /* in first-seen order; "worst" last if present */
    char norms[QB_REPORT_MAX_ATTACKS][8];
    int n_eps;
    double eps[QB_REPORT_MAX_EPS];            /* ascending */
    int baseline;                             /* index of the baseline model (first sdpa, else 0) */
} qb_report;

/* Aggregate rows (later rows replace earlier ones with the same key). QB_EXIT_DATA when there
 * are too many models, attacks or ε values. baseline_name may be NULL. */
int qb_report_build(qb_report *r, const qb_results *rows, const char *baseline_name);

/* One summary metric: (model, attention, metric, eps, value, higher_is_better). */
typedef struct {
    char model[256], attention[16], metric[300]; /* robust_<attack name>_<norm> */
    double eps, value;
    int higher_better;
} qb_summary_row;
/* Flatten the report into summary rows (caller frees *out). */
int qb_report_summary(const qb_report *r, qb_summary_row **out);

/* Write report.md, summary.csv and the SVG charts into dir (created if needed), atomically
 * per file. `sources` names the input files for the header; `paper` (may be NULL) adds the
 * published numbers of that table (paper.h). QB_EXIT_IO on failure. */
int qb_report_write(const qb_report *r, const char *dir, const char *const *sources, int n_sources, const char *paper);

/* Regression gate: every summary metric of `now` that is worse than in `base` by more than
 * tol_pp percentage points, and every metric of `base` missing from `now`, is printed to f;
 * returns how many (metrics new in `now` are not counted). */
int qb_report_regressions(FILE *f, const qb_report *now, const qb_report *base, double tol_pp);

#endif
