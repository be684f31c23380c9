/* report.c — `questbench report`: Markdown, summary CSV and SVG charts from results files,
 * and the regression gate for nightly jobs. */
#include "cmd.h"
#include "report.h"
#include "paper.h"
#include "training.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f, "usage: questbench report RESULTS.csv... [--out DIR] [--baseline-model NAME]\n"
               "       questbench report NEW.csv... --baseline OLD.csv [--tolerance PP]\n"
               "Writes DIR/report.md, DIR/summary.csv and SVG charts (default DIR: report) from results\n"
               "files written by eval, corrupt, attack and run, and prints report.md on stdout.\n"
               "With --baseline: lists every summary metric that is worse than in OLD.csv by more than the\n"
               "tolerance (percentage points, default 0.5) and exits 6 if there is one.\n"
               "options:\n"
               "  --out DIR              output folder (created)\n"
               "  --baseline-model NAME  model the differences (Δ) are taken against (default: first sdpa)\n"
               "  --baseline OLD.csv     regression gate against older results\n"
               "  --tolerance PP         allowed worsening in percentage points (default 0.5)\n"
               "  --paper NAME           add published numbers beside the measured ones (quest-vit-ti)\n"
               "  --training [NAME=]DIR  a `questbench train` output folder (repeatable): writes DIR/training.md\n"
               "                         and SVG curves of query/key norms, max attention logit, attention\n"
               "                         entropy and loss over steps, with clean test top-1 (instability chart)\n");
}

static int read_all(qb_results *rs, const char *const *files, int n) {
    for (int i = 0; i < n; i++) {
        int rc = qb_results_read(rs, files[i]);
        if (rc) return rc;
    }
    if (rs->n == 0) return qb_error(QB_EXIT_DATA, "%s: no result rows", files[0]);
    return 0;
}

int cmd_report(int argc, char **argv) {
    const char *out_dir = "report", *baseline = NULL, *baseline_model = NULL, *paper = NULL;
    double tol = 0.5;
    const char **files = calloc((size_t)argc, sizeof(char *));
    const char **tdirs = calloc((size_t)argc, sizeof(char *)), **tnames = calloc((size_t)argc, sizeof(char *));
    char (*tname_buf)[128] = calloc((size_t)argc, sizeof *tname_buf);
    int nf = 0, nt = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); free(files), free(tdirs), free(tnames), free(tname_buf); return 0; }
        if (!strcmp(a, "--training")) {
            if (i + 1 >= argc) { fprintf(stderr, "questbench report: --training needs a value\n"); free(files), free(tdirs), free(tnames), free(tname_buf); return QB_EXIT_USAGE; }
            tdirs[nt] = cmd_model_name(argv[++i], tname_buf[nt], sizeof tname_buf[nt]); /* NAME=DIR */
            tnames[nt] = tname_buf[nt];
            nt++;
            continue;
        }
        if (!strcmp(a, "--out") || !strcmp(a, "--baseline") || !strcmp(a, "--tolerance") || !strcmp(a, "--baseline-model") ||
            !strcmp(a, "--paper")) {
            if (i + 1 >= argc) { fprintf(stderr, "questbench report: %s needs a value\n", a); free(files), free(tdirs), free(tnames), free(tname_buf); return QB_EXIT_USAGE; }
            const char *v = argv[++i];
            if (!strcmp(a, "--out")) out_dir = v;
            else if (!strcmp(a, "--baseline")) baseline = v;
            else if (!strcmp(a, "--baseline-model")) baseline_model = v;
            else if (!strcmp(a, "--paper")) {
                if (!qb_paper_known(v)) {
                    fprintf(stderr, "questbench report: --paper: unknown table '%s' (known: quest-vit-ti)\n", v);
                    free(files), free(tdirs), free(tnames), free(tname_buf);
                    return QB_EXIT_USAGE;
                }
                paper = v;
            }
            else {
                char *end;
                errno = 0;
                tol = strtod(v, &end);
                if (end == v || *end || errno || !isfinite(tol) || tol < 0) {
                    fprintf(stderr, "questbench report: --tolerance: expected a number >= 0, got '%s'\n", v);
                    free(files), free(tdirs), free(tnames), free(tname_buf);
                    return QB_EXIT_USAGE;
                }
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "questbench report: unknown option '%s'\n", a);
            free(files), free(tdirs), free(tnames), free(tname_buf);
            return QB_EXIT_USAGE;
        } else files[nf++] = a;
    }
    if (nt > 0 && nf == 0) {
        int rc = qb_training_report(tnames, tdirs, nt, out_dir);
        if (rc) cmd_fail(rc);
        else fprintf(stderr, "questbench: wrote %s/training.md and the training charts\n", out_dir);
        free(files), free(tdirs), free(tnames), free(tname_buf);
        return rc;
    }
    free(tdirs), free(tnames), free(tname_buf);
    if (nf == 0) { fprintf(stderr, "questbench report: no results files given\n"); free(files); return QB_EXIT_USAGE; }
    qb_results rs = {0};
    qb_report *rep = calloc(1, sizeof *rep), *old = NULL;
    int rc = read_all(&rs, files, nf);
    if (!rc) rc = qb_report_build(rep, &rs, baseline_model);
    if (!rc && baseline) {
        qb_results ro = {0};
        old = calloc(1, sizeof *old);
        rc = read_all(&ro, &baseline, 1);
        if (!rc) rc = qb_report_build(old, &ro, baseline_model);
        qb_results_free(&ro);
        if (!rc) {
            int worse = qb_report_regressions(stdout, rep, old, tol);
            if (worse) {
                fprintf(stderr, "questbench: %d metric%s worse than %s by more than %.2f pp, or missing\n", worse,
                        worse > 1 ? "s" : "", baseline, tol);
                rc = QB_EXIT_REGRESSION;
            } else {
                printf("no regression beyond %.2f pp against %s\n", tol, baseline);
            }
        } else cmd_fail(rc);
    } else if (!rc) {
        rc = qb_report_write(rep, out_dir, files, nf, paper);
        if (rc) cmd_fail(rc);
        else {
            char path[1100];
            snprintf(path, sizeof path, "%s/report.md", out_dir);
            FILE *f = fopen(path, "r");
            char buf[4096];
            size_t got;
            while (f && (got = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, got, stdout);
            if (f) fclose(f);
            fprintf(stderr, "questbench: wrote %s/report.md, %s/summary.csv and the charts\n", out_dir, out_dir);
        }
    } else cmd_fail(rc);
    qb_results_free(&rs);
    free(rep), free(old), free(files);
    return rc;
}
