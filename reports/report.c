/* report.c — metrics from result rows (CE, mCE, relative mCE, mean error, robust accuracy,
 * worst case), the Markdown report with aligned tables, summary.csv, SVG charts, and the
 * regression gate. */
#include "report.h"
#include "svg.h"
#include "paper.h"
#include "markdown.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ----------------------------------------------------------------------------------------
 * aggregation */

static int find_or_add_model(qb_report *r, const qb_result *row) {
    for (int i = 0; i < r->n_models; i++)
        if (!strcmp(r->m[i].name, row->model) && !strcmp(r->m[i].attention, row->attention)) return i;
    if (r->n_models == QB_REPORT_MAX_MODELS) return -1;
    qb_model_metrics *m = &r->m[r->n_models];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", row->model);
    snprintf(m->attention, sizeof m->attention, "%s", row->attention);
    m->clean_acc = m->mce = m->rel_mce = m->mean_err = NAN;
    for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
        m->ce[c] = m->rel_ce[c] = NAN;
        for (int s = 0; s < 5; s++) m->err[c][s] = NAN;
    }
    for (int a = 0; a < QB_REPORT_MAX_ATTACKS; a++)
        for (int e = 0; e < QB_REPORT_MAX_EPS; e++) m->rob[a][e] = NAN;
    return r->n_models++;
}

static int find_or_add_attack(qb_report *r, const char *name, const char *norm) {
    for (int i = 0; i < r->n_attacks; i++)
        if (!strcmp(r->attacks[i], name) && !strcmp(r->norms[i], norm)) return i;
    if (r->n_attacks == QB_REPORT_MAX_ATTACKS) return -1;
    snprintf(r->attacks[r->n_attacks], sizeof r->attacks[0], "%s", name);
    snprintf(r->norms[r->n_attacks], sizeof r->norms[0], "%s", norm);
    return r->n_attacks++;
}

static int eps_index(qb_report *r, double eps, int add) {
    for (int i = 0; i < r->n_eps; i++)
        if (fabs(r->eps[i] - eps) <= 1e-9 * fmax(1.0, fabs(eps))) return i;
    if (!add || r->n_eps == QB_REPORT_MAX_EPS) return -1;
    int i = r->n_eps++;
    while (i > 0 && r->eps[i - 1] > eps) r->eps[i] = r->eps[i - 1], i--;
    r->eps[i] = eps;
    return i;
}

int qb_report_build(qb_report *r, const qb_results *rows, const char *baseline_name) {
    memset(r, 0, sizeof *r);
    /* ε values first, so indices are stable in ascending order */
    for (int i = 0; i < rows->n; i++)
        if (!strcmp(rows->rows[i].kind, "attack") && eps_index(r, rows->rows[i].eps, 1) < 0)
            return qb_error(QB_EXIT_DATA, "more than %d distinct eps values", QB_REPORT_MAX_EPS);
    for (int i = 0; i < rows->n; i++) {
        const qb_result *row = &rows->rows[i];
        const char *sh = strstr(row->run_id, "-shard");
        if (sh) /* one shard's counts would silently stand for the whole data set */
            return qb_error(QB_EXIT_DATA, "row %d comes from %.*s (run %s): merge the shards first (questbench merge)",
                            i + 1, (int)strcspn(sh + 1, "-"), sh + 1, row->run_id);
        int mi = find_or_add_model(r, row);
        if (mi < 0) return qb_error(QB_EXIT_DATA, "more than %d models in the results", QB_REPORT_MAX_MODELS);
        qb_model_metrics *m = &r->m[mi];
        if (row->model_sha256[0]) snprintf(m->sha, sizeof m->sha, "%s", row->model_sha256);
        if (row->preset[0]) snprintf(m->preset, sizeof m->preset, "%s", row->preset);
        if (!strcmp(row->kind, "clean")) {
            m->clean_acc = row->value, m->clean_n = row->n;
        } else if (!strcmp(row->kind, "corruption")) {
            int c = qb_corruption_find(row->corruption);
            if (c < 0) return qb_error(QB_EXIT_DATA, "unknown corruption '%s' in the results", row->corruption);
            if (row->severity < 1 || row->severity > 5)
                return qb_error(QB_EXIT_DATA, "corruption %s with severity %d", row->corruption, row->severity);
            m->err[c][row->severity - 1] = 1.0 - row->value;
        } else {
            int a = find_or_add_attack(r, row->attack, row->norm);
            if (a < 0) return qb_error(QB_EXIT_DATA, "more than %d attacks in the results", QB_REPORT_MAX_ATTACKS);
            m->rob[a][eps_index(r, row->eps, 0)] = row->value;
        }
    }
    /* keep "worst" (per-point worst case) as the last attack column */
    for (int a = 0; a + 1 < r->n_attacks; a++) {
        if (strncmp(r->attacks[a], "worst", 5)) continue;
        char nm[sizeof r->attacks[0]], no[sizeof r->norms[0]];
        memcpy(nm, r->attacks[a], sizeof nm), memcpy(no, r->norms[a], sizeof no);
        double saved[QB_REPORT_MAX_MODELS][QB_REPORT_MAX_EPS];
        for (int k = 0; k < r->n_models; k++) memcpy(saved[k], r->m[k].rob[a], sizeof saved[k]);
        for (int b = a; b + 1 < r->n_attacks; b++) {
            memcpy(r->attacks[b], r->attacks[b + 1], sizeof nm), memcpy(r->norms[b], r->norms[b + 1], sizeof no);
            for (int k = 0; k < r->n_models; k++) memcpy(r->m[k].rob[b], r->m[k].rob[b + 1], sizeof saved[k]);
        }
        int last = r->n_attacks - 1;
        memcpy(r->attacks[last], nm, sizeof nm), memcpy(r->norms[last], no, sizeof no);
        for (int k = 0; k < r->n_models; k++) memcpy(r->m[k].rob[last], saved[k], sizeof saved[k]);
        break;
    }
    for (int k = 0; k < r->n_models; k++) {
        qb_model_metrics *m = &r->m[k];
        int imagenet = !strcmp(m->preset, "imagenet");
        double sum = 0, msum = 0, rsum = 0;
        int cnt = 0, full = 1;
        for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
            double e = 0, a = 0, re = 0, ra = 0;
            int all5 = 1;
            for (int s = 0; s < 5; s++) {
                if (isnan(m->err[c][s])) { all5 = 0; continue; }
                if (c < QB_N_COMMON) sum += m->err[c][s], cnt++;
                e += m->err[c][s], a += qb_alexnet_err[c][s];
                re += m->err[c][s] - (1.0 - m->clean_acc), ra += qb_alexnet_err[c][s] - qb_alexnet_clean_err;
            }
            if (all5 && imagenet) {
                m->ce[c] = e / a;
                if (!isnan(m->clean_acc)) m->rel_ce[c] = re / ra;
            }
            if (c < QB_N_COMMON) {
                full &= all5 && imagenet;
                if (all5 && imagenet) msum += m->ce[c], rsum += m->rel_ce[c];
            }
        }
        m->n_err_present = cnt;
        if (cnt == QB_N_COMMON * 5) m->mean_err = sum / cnt;
        if (full) {
            m->mce = msum / QB_N_COMMON;
            m->rel_mce = isnan(m->clean_acc) ? NAN : rsum / QB_N_COMMON;
        }
    }
    r->baseline = 0;
    for (int k = r->n_models - 1; k >= 0; k--)
        if (baseline_name ? !strcmp(r->m[k].name, baseline_name) : !strcmp(r->m[k].attention, "sdpa")) r->baseline = k;
    if (baseline_name && strcmp(r->m[r->baseline].name, baseline_name))
        return qb_error(QB_EXIT_USAGE, "--baseline-model: no model named '%s' in the results", baseline_name);
    return 0;
}

/* ----------------------------------------------------------------------------------------
 * summary rows */

static void add_summary(qb_summary_row **v, int *n, int *cap, const qb_model_metrics *m, const char *metric,
                        double eps, double value, int hb) {
    if (isnan(value)) return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, (size_t)*cap * sizeof **v);
    }
    qb_summary_row *s = &(*v)[(*n)++];
    snprintf(s->model, sizeof s->model, "%s", m->name);
    snprintf(s->attention, sizeof s->attention, "%s", m->attention);
    snprintf(s->metric, sizeof s->metric, "%s", metric);
    s->eps = eps, s->value = value, s->higher_better = hb;
}

int qb_report_summary(const qb_report *r, qb_summary_row **out) {
    qb_summary_row *v = NULL;
    int n = 0, cap = 0;
    char name[sizeof r->attacks[0] + 32];
    for (int k = 0; k < r->n_models; k++) {
        const qb_model_metrics *m = &r->m[k];
        add_summary(&v, &n, &cap, m, "clean_top1", 0, m->clean_acc, 1);
        add_summary(&v, &n, &cap, m, "mce", 0, m->mce, 0);
        add_summary(&v, &n, &cap, m, "relative_mce", 0, m->rel_mce, 0);
        add_summary(&v, &n, &cap, m, "mean_corruption_error", 0, m->mean_err, 0);
        for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
            double e = 0;
            int cnt = 0;
            for (int s = 0; s < 5; s++)
                if (!isnan(m->err[c][s])) e += m->err[c][s], cnt++;
            snprintf(name, sizeof name, "error_%s", qb_corruptions[c].name);
            if (cnt) add_summary(&v, &n, &cap, m, name, 0, e / cnt, 0);
            snprintf(name, sizeof name, "ce_%s", qb_corruptions[c].name);
            add_summary(&v, &n, &cap, m, name, 0, m->ce[c], 0);
        }
        for (int a = 0; a < r->n_attacks; a++)
            for (int e = 0; e < r->n_eps; e++) {
                snprintf(name, sizeof name, "robust_%s_%s", r->attacks[a], r->norms[a]);
                add_summary(&v, &n, &cap, m, name, r->eps[e], m->rob[a][e], 1);
            }
    }
    *out = v;
    return n;
}

/* ----------------------------------------------------------------------------------------
 * Markdown tables with aligned columns */

static const char *pct(char *buf, double v) {
    if (isnan(v)) snprintf(buf, 16, "—");
    else snprintf(buf, 16, "%.2f", 100 * v);
    return buf;
}

static const char *diff(char *buf, double a, double b) {
    if (isnan(a) || isnan(b)) snprintf(buf, 16, "—");
    else snprintf(buf, 16, "%+.2f", 100 * (a - b));
    return buf;
}

static void eps_label(char *buf, size_t n, double eps) {
    double k = eps * 255;
    if (fabs(k - round(k)) < 1e-6 && k >= 1) snprintf(buf, n, "%.0f/255", round(k));
    else snprintf(buf, n, "%.4g", eps);
}

/* write to path.tmp then rename (tmp and final: 1400 bytes) */
static FILE *open_atomic(const char *dir, const char *name, char *tmp, char *final) {
    snprintf(final, 1400, "%.1000s/%.300s", dir, name);
    snprintf(tmp, 1400, "%.1370s.tmp.%d", final, (int)getpid());
    return fopen(tmp, "w");
}

static int close_atomic(FILE *f, const char *tmp, const char *final) {
    int bad = ferror(f) != 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, final)) {
        unlink(tmp);
        return qb_error(QB_EXIT_IO, "%s: write failed", final);
    }
    return 0;
}

static int write_svgs(const qb_report *r, const char *dir) {
    static const char *groups[] = {"noise", "blur", "weather", "digital", "extra"};
    char tmp[1400], final[1400], fname[400];
    svg_chart *ch = calloc(1, sizeof *ch);
    for (int g = 0; g < 5; g++) {
        int any = 0;
        memset(ch, 0, sizeof *ch);
        snprintf(ch->title, sizeof ch->title, "Top-1 error vs severity: %s corruptions (mean over the group)", groups[g]);
        snprintf(ch->xlabel, sizeof ch->xlabel, "severity"), snprintf(ch->ylabel, sizeof ch->ylabel, "top-1 error (%%)");
        ch->ymin = 0, ch->ymax = 100, ch->n_xticks = 5;
        for (int s = 0; s < 5; s++) ch->xticks[s] = s + 1, snprintf(ch->xtick_labels[s], 16, "%d", s + 1);
        for (int k = 0; k < r->n_models && k < SVG_MAX_SERIES; k++) {
            svg_series *sr = &ch->series[ch->n_series];
            snprintf(sr->name, sizeof sr->name, "%s (%s)", r->m[k].name, r->m[k].attention);
            for (int s = 0; s < 5; s++) {
                double e = 0;
                int cnt = 0;
                for (int c = 0; c < QB_N_CORRUPTIONS; c++)
                    if (!strcmp(qb_corruptions[c].group, groups[g]) && !isnan(r->m[k].err[c][s])) e += r->m[k].err[c][s], cnt++;
                if (cnt) sr->x[sr->n] = s + 1, sr->y[sr->n++] = 100 * e / cnt;
            }
            if (sr->n) ch->n_series++, any = 1;
        }
        if (!any) continue;
        snprintf(fname, sizeof fname, "corruption_%s.svg", groups[g]);
        FILE *f = open_atomic(dir, fname, tmp, final);
        if (!f || svg_write_chart(f, ch) || close_atomic(f, tmp, final)) { free(ch); return qb_error(QB_EXIT_IO, "%s: write failed", final); }
    }
    for (int a = 0; a < r->n_attacks; a++) {
        memset(ch, 0, sizeof *ch);
        snprintf(ch->title, sizeof ch->title, "Robust accuracy vs eps: %s (%s)", r->attacks[a], r->norms[a]);
        snprintf(ch->xlabel, sizeof ch->xlabel, "eps"), snprintf(ch->ylabel, sizeof ch->ylabel, "robust top-1 (%%)");
        ch->ymin = 0, ch->ymax = 100;
        for (int e = 0; e < r->n_eps && e < SVG_MAX_POINTS; e++) {
            ch->xticks[ch->n_xticks] = r->eps[e];
            eps_label(ch->xtick_labels[ch->n_xticks++], 16, r->eps[e]);
        }
        for (int k = 0; k < r->n_models && k < SVG_MAX_SERIES; k++) {
            svg_series *sr = &ch->series[ch->n_series];
            snprintf(sr->name, sizeof sr->name, "%s (%s)", r->m[k].name, r->m[k].attention);
            for (int e = 0; e < r->n_eps && sr->n < SVG_MAX_POINTS; e++)
                if (!isnan(r->m[k].rob[a][e])) sr->x[sr->n] = r->eps[e], sr->y[sr->n++] = 100 * r->m[k].rob[a][e];
            if (sr->n) ch->n_series++;
        }
        char safe[256];
        snprintf(fname, sizeof fname, "robust_%s_%s.svg", qb_file_safe_name(r->attacks[a], safe, sizeof safe), r->norms[a]);
        FILE *f = open_atomic(dir, fname, tmp, final);
        if (!f || svg_write_chart(f, ch) || close_atomic(f, tmp, final)) { free(ch); return qb_error(QB_EXIT_IO, "%s: write failed", final); }
    }
    free(ch);
    return 0;
}

int qb_report_write(const qb_report *r, const char *dir, const char *const *sources, int n_sources, const char *paper) {
    if (mkdir(dir, 0755) && errno != EEXIST) return qb_error(QB_EXIT_IO, "%s: cannot create folder: %s", dir, strerror(errno));
    char tmp[1400], final[1400], b1[16], b2[16], b3[16], el[16];
    int rc = write_svgs(r, dir);
    if (rc) return rc;
    /* summary.csv */
    qb_summary_row *sum;
    int ns = qb_report_summary(r, &sum);
    FILE *f = open_atomic(dir, "summary.csv", tmp, final);
    if (!f) { free(sum); return qb_error(QB_EXIT_IO, "%s: cannot write", final); }
    fprintf(f, "model,attention,metric,eps,value\n");
    for (int i = 0; i < ns; i++)
        fprintf(f, "%s,%s,%s,%.9g,%.9g\n", sum[i].model, sum[i].attention, sum[i].metric, sum[i].eps, sum[i].value);
    free(sum);
    if ((rc = close_atomic(f, tmp, final))) return rc;

    f = open_atomic(dir, "report.md", tmp, final);
    if (!f) return qb_error(QB_EXIT_IO, "%s: cannot write", final);
    md_table *t = calloc(1, sizeof *t);
    const qb_model_metrics *base = &r->m[r->baseline];
    fprintf(f, "# questbench report\n\nSources:");
    for (int i = 0; i < n_sources; i++) fprintf(f, " `%s`", sources[i]);
    fprintf(f, ". Baseline for differences (Δ, percentage points): **%s** (%s). Numbers are percentages.\n\n",
            base->name, base->attention);
    /* models */
    md_set(t, 0, 0, "model"), md_set(t, 0, 1, "attention"), md_set(t, 0, 2, "preset"), md_set(t, 0, 3, "sha256");
    for (int k = 0; k < r->n_models; k++) {
        md_set(t, k + 1, 0, "%s", r->m[k].name), md_set(t, k + 1, 1, "%s", r->m[k].attention);
        md_set(t, k + 1, 2, "%s", r->m[k].preset[0] ? r->m[k].preset : "—");
        md_set(t, k + 1, 3, "%.12s", r->m[k].sha[0] ? r->m[k].sha : "—");
    }
    fprintf(f, "## Models\n\n");
    md_write(f, t);
    /* paper-style summary at each ε */
    fprintf(f, "## Summary\n\nClean top-1, robust top-1 under each attack, and corruption error (mCE and relative "
               "mCE against AlexNet for the imagenet preset; the unnormalised mean error over 15 corruptions × 5 "
               "severities for every preset).\n\n");
    memset(t, 0, sizeof *t);
    int col = 0;
    md_set(t, 0, col++, "model"), md_set(t, 0, col++, "attention"), md_set(t, 0, col++, "clean");
    int ac0 = col;
    for (int a = 0; a < r->n_attacks && col < 9; a++) md_set(t, 0, col++, "%s", r->attacks[a]);
    md_set(t, 0, col++, "mCE"), md_set(t, 0, col++, "rel. mCE"), md_set(t, 0, col++, "mean err");
    int row = 1;
    for (int e = 0; e < (r->n_eps ? r->n_eps : 1); e++)
        for (int k = 0; k < r->n_models && row < 127; k++, row++) {
            const qb_model_metrics *m = &r->m[k];
            if (r->n_eps) eps_label(el, sizeof el, r->eps[e]);
            md_set(t, row, 0, "%s%s%s", m->name, r->n_eps ? " @ε=" : "", r->n_eps ? el : "");
            md_set(t, row, 1, "%s", m->attention), md_set(t, row, 2, "%s", pct(b1, m->clean_acc));
            for (int a = 0; a < r->n_attacks && ac0 + a < 9; a++) md_set(t, row, ac0 + a, "%s", pct(b1, m->rob[a][e]));
            md_set(t, row, col - 3, "%s", pct(b1, m->mce)), md_set(t, row, col - 2, "%s", pct(b2, m->rel_mce));
            md_set(t, row, col - 1, "%s", pct(b3, m->mean_err));
        }
    md_write(f, t);
    if (paper) qb_paper_section(f, paper, r);
    /* corruptions */
    int any_corr = 0;
    for (int k = 0; k < r->n_models; k++) any_corr |= r->m[k].n_err_present > 0;
    for (int k = 0; k < r->n_models && !any_corr; k++)
        for (int c = QB_N_COMMON; c < QB_N_CORRUPTIONS; c++)
            for (int s = 0; s < 5; s++) any_corr |= !isnan(r->m[k].err[c][s]);
    if (any_corr) {
        fprintf(f, "## Corruptions\n\nTop-1 error per severity (1–5), its mean, CE (imagenet preset) and the "
                   "difference of the mean error from the baseline.\n\n");
        for (int k = 0; k < r->n_models; k++) {
            const qb_model_metrics *m = &r->m[k];
            memset(t, 0, sizeof *t);
            md_set(t, 0, 0, "corruption"), md_set(t, 0, 1, "group");
            for (int s = 0; s < 5; s++) md_set(t, 0, 2 + s, "s%d", s + 1);
            md_set(t, 0, 7, "mean"), md_set(t, 0, 8, "CE"), md_set(t, 0, 9, "Δ mean");
            row = 1;
            for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
                double e = 0, eb = 0;
                int cnt = 0, cb = 0;
                for (int s = 0; s < 5; s++) {
                    if (!isnan(m->err[c][s])) e += m->err[c][s], cnt++;
                    if (!isnan(base->err[c][s])) eb += base->err[c][s], cb++;
                }
                if (!cnt) continue;
                md_set(t, row, 0, "%s", qb_corruptions[c].name), md_set(t, row, 1, "%s", qb_corruptions[c].group);
                for (int s = 0; s < 5; s++) md_set(t, row, 2 + s, "%s", pct(b1, m->err[c][s]));
                md_set(t, row, 7, "%s", pct(b1, e / cnt)), md_set(t, row, 8, "%s", pct(b2, m->ce[c]));
                md_set(t, row, 9, "%s", k == r->baseline ? "—" : diff(b3, e / cnt, cb ? eb / cb : NAN));
                row++;
            }
            fprintf(f, "### %s (%s)\n\n", m->name, m->attention);
            md_write(f, t);
        }
        static const char *groups[] = {"noise", "blur", "weather", "digital", "extra"};
        for (int g = 0; g < 5; g++) {
            char svg[1100];
            snprintf(svg, sizeof svg, "%.1000s/corruption_%s.svg", dir, groups[g]);
            if (access(svg, F_OK) == 0) fprintf(f, "![%s](corruption_%s.svg)\n", groups[g], groups[g]);
        }
        fprintf(f, "\n");
    }
    /* attacks */
    if (r->n_attacks) {
        fprintf(f, "## Attacks\n\nRobust top-1 (a point counts as robust only if the attack fails on it; points "
                   "misclassified when clean count as broken). `worst` is the per-point worst case over all "
                   "attacks run.\n\n");
        memset(t, 0, sizeof *t);
        md_set(t, 0, 0, "attack"), md_set(t, 0, 1, "norm"), md_set(t, 0, 2, "ε");
        for (int k = 0; k < r->n_models && k < 8; k++) md_set(t, 0, 3 + k, "%s (%s)", r->m[k].name, r->m[k].attention);
        int nm = r->n_models < 8 ? r->n_models : 8;
        if (nm > 1) md_set(t, 0, 3 + nm, "Δ vs %s", base->name);
        row = 1;
        for (int a = 0; a < r->n_attacks; a++)
            for (int e = 0; e < r->n_eps && row < 127; e++) {
                int any = 0;
                for (int k = 0; k < nm; k++) any |= !isnan(r->m[k].rob[a][e]);
                if (!any) continue;
                eps_label(el, sizeof el, r->eps[e]);
                md_set(t, row, 0, "%s", r->attacks[a]), md_set(t, row, 1, "%s", r->norms[a]), md_set(t, row, 2, "%s", el);
                for (int k = 0; k < nm; k++) md_set(t, row, 3 + k, "%s", pct(b1, r->m[k].rob[a][e]));
                if (nm > 1) {
                    /* the largest difference of a non-baseline model from the baseline */
                    int other = r->baseline == 0 ? 1 : 0;
                    md_set(t, row, 3 + nm, "%s", diff(b2, r->m[other].rob[a][e], base->rob[a][e]));
                }
                row++;
            }
        md_write(f, t);
        for (int a = 0; a < r->n_attacks; a++) {
            char safe[256];
            fprintf(f, "![%s](robust_%s_%s.svg)\n", r->attacks[a], qb_file_safe_name(r->attacks[a], safe, sizeof safe), r->norms[a]);
        }
        fprintf(f, "\n");
    }
    free(t);
    return close_atomic(f, tmp, final);
}

/* ----------------------------------------------------------------------------------------
 * regression gate */

int qb_report_regressions(FILE *f, const qb_report *now, const qb_report *base, double tol_pp) {
    qb_summary_row *a, *b;
    int na = qb_report_summary(now, &a), nb = qb_report_summary(base, &b), worse = 0, missing = 0;
    for (int j = 0; j < nb; j++) {
        int found = 0;
        for (int i = 0; i < na && !found; i++) {
            if (strcmp(a[i].model, b[j].model) || strcmp(a[i].attention, b[j].attention) || strcmp(a[i].metric, b[j].metric) ||
                fabs(a[i].eps - b[j].eps) > 1e-9)
                continue;
            found = 1;
            double d = 100 * (a[i].value - b[j].value) * (b[j].higher_better ? -1 : 1); /* > 0 means worse */
            if (d > tol_pp) {
                char el[16] = "";
                if (b[j].eps > 0) eps_label(el, sizeof el, b[j].eps);
                fprintf(f, "REGRESSION %s (%s) %s%s%s: %.2f -> %.2f (worse by %.2f pp, tolerance %.2f)\n", b[j].model,
                        b[j].attention, b[j].metric, el[0] ? " eps=" : "", el, 100 * b[j].value, 100 * a[i].value, d,
                        tol_pp);
                worse++;
            }
        }
        if (!found) {
            fprintf(f, "missing in the new results: %s (%s) %s eps=%g\n", b[j].model, b[j].attention, b[j].metric, b[j].eps);
            missing++;
        }
    }
    free(a), free(b);
    return worse + missing; /* a metric that vanished (a failed or renamed measurement) fails the gate too */
}
