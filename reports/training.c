/* training.c — the instability chart: per-step training logs of several runs (train_log.csv,
 * epochs.csv written by `questbench train`) as SVG curves of query/key norm growth, max
 * attention logit, attention entropy and loss, plus a Markdown table with clean test top-1. */
#include "training.h"
#include "markdown.h"
#include "svg.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LAYERS 32
enum { M_Q, M_K, M_LOGIT, M_ENT, M_N }; /* the per-layer metrics: l<i>_q_max, _k_max, _logit_max, _entropy */

/* one run's logged series: reduced over layers (max for norms and logits, mean for entropy)
 * and per layer; NAN where not logged. Plus clean test top-1 per epoch. */
typedef struct {
    int n, layers;
    double *step, *loss, *q_max, *k_max, *logit_max, *entropy;
    double *layer[M_N][MAX_LAYERS];
    int n_ep;
    double *ep_step, *ep_top1;
    double test_top1; /* last epoch, NAN if none */
    int epochs;
} run_log;

static void run_free(run_log *r) {
    free(r->step), free(r->loss), free(r->q_max), free(r->k_max), free(r->logit_max), free(r->entropy);
    for (int m = 0; m < M_N; m++)
        for (int l = 0; l < MAX_LAYERS; l++) free(r->layer[m][l]);
    free(r->ep_step), free(r->ep_top1);
    memset(r, 0, sizeof *r);
}

static int split(char *line, char **f, int maxf) {
    int n = 0;
    char *p = line;
    while (n < maxf) {
        f[n++] = p;
        p = strchr(p, ',');
        if (!p) break;
        *p++ = 0;
    }
    return n;
}

static double num(const char *s) {
    char *end;
    if (!*s) return NAN;
    double v = strtod(s, &end);
    return end == s ? NAN : v;
}

/* Read dir/train_log.csv: max over layers of l<i>_q_max, l<i>_k_max, l<i>_logit_max, mean of
 * l<i>_entropy, on rows where they were logged. */
static int read_log(run_log *r, const char *dir) {
    char path[1100], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof path, "%.1000s/train_log.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) return qb_error(QB_EXIT_DATA, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0, ncol = 0, lineno = 0, c_step = -1, c_loss = -1;
    enum { MAXC = 1024 };
    int kind[MAXC], lay[MAXC]; /* kind 0 other, 1 q_max, 2 k_max, 3 logit_max, 4 entropy; layer index */
    char *fl[MAXC];
    int rows_cap = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        int n = split(line, fl, MAXC);
        if (lineno == 1) {
            ncol = n;
            for (int i = 0; i < n; i++) {
                const char *u = strrchr(fl[i], '_');
                char *e;
                long li = fl[i][0] == 'l' ? strtol(fl[i] + 1, &e, 10) : -1;
                /* lay: the layer index of an l<i>_… column (every layer counts in the over-layer
                 * reductions; the first MAX_LAYERS also get their own series) */
                kind[i] = 0, lay[i] = li >= 0 && li < 1000000 && fl[i][1] >= '0' && fl[i][1] <= '9' && *e == '_' ? (int)li : -1;
                if (!strcmp(fl[i], "step")) c_step = i;
                else if (!strcmp(fl[i], "loss")) c_loss = i;
                else if (lay[i] >= 0 && u) {
                    if (strstr(fl[i], "_q_max")) kind[i] = 1;
                    else if (strstr(fl[i], "_k_max")) kind[i] = 2;
                    else if (strstr(fl[i], "_logit_max")) kind[i] = 3;
                    else if (strstr(fl[i], "_entropy")) kind[i] = 4;
                    if (kind[i] && lay[i] < MAX_LAYERS && lay[i] + 1 > r->layers) r->layers = lay[i] + 1;
                }
            }
            if (c_step < 0 || c_loss < 0) { rc = qb_error(QB_EXIT_DATA, "%s: not a questbench training log (no step/loss columns)", path); break; }
            continue;
        }
        if (n != ncol) continue; /* a torn last line of a running training */
        if (r->n == rows_cap) {
            rows_cap = rows_cap ? rows_cap * 2 : 256;
            double **arrs[6] = {&r->step, &r->loss, &r->q_max, &r->k_max, &r->logit_max, &r->entropy};
            int bad = 0;
            for (int a = 0; a < 6; a++) {
                double *p = realloc(*arrs[a], (size_t)rows_cap * sizeof(double));
                if (p) *arrs[a] = p;
                bad |= !p;
            }
            for (int m = 0; m < M_N; m++)
                for (int l = 0; l < r->layers; l++) {
                    double *p = realloc(r->layer[m][l], (size_t)rows_cap * sizeof(double));
                    if (p) r->layer[m][l] = p;
                    bad |= !p;
                }
            if (bad) { rc = qb_error(QB_EXIT_FAIL, "%s: out of memory", path); break; }
        }
        for (int m = 0; m < M_N; m++)
            for (int l = 0; l < r->layers; l++) r->layer[m][l][r->n] = NAN;
        double qm = -INFINITY, km = -INFINITY, lm = -INFINITY, es = 0;
        int ne = 0;
        for (int i = 0; i < n; i++) {
            double v = kind[i] ? num(fl[i]) : NAN;
            if (isnan(v)) continue;
            if (lay[i] < MAX_LAYERS && isfinite(v)) r->layer[kind[i] - 1][lay[i]][r->n] = v;
            if (kind[i] == 1) qm = fmax(qm, v);
            else if (kind[i] == 2) km = fmax(km, v);
            else if (kind[i] == 3) lm = fmax(lm, v);
            else if (kind[i] == 4) es += v, ne++;
        }
        r->step[r->n] = num(fl[c_step]);
        r->loss[r->n] = num(fl[c_loss]);
        r->q_max[r->n] = isinf(qm) ? NAN : qm;
        r->k_max[r->n] = isinf(km) ? NAN : km;
        r->logit_max[r->n] = isinf(lm) ? NAN : lm;
        r->entropy[r->n] = ne ? es / ne : NAN;
        r->n++;
    }
    free(line);
    fclose(f);
    if (!rc && r->n == 0) rc = qb_error(QB_EXIT_DATA, "%s: no logged steps", path);
    if (rc) return rc;
    /* the last epoch's clean test top-1 */
    snprintf(path, sizeof path, "%.1000s/epochs.csv", dir);
    r->test_top1 = NAN;
    f = fopen(path, "r");
    if (f) {
        char buf[1024], *g[16];
        int col = -1, scol = -1, ln = 0, cap_ep = 0;
        while (fgets(buf, sizeof buf, f)) {
            buf[strcspn(buf, "\r\n")] = 0;
            int n = split(buf, g, 16);
            if (ln++ == 0) {
                for (int i = 0; i < n; i++) {
                    if (!strcmp(g[i], "test_top1")) col = i;
                    if (!strcmp(g[i], "step")) scol = i;
                }
            } else if (col >= 0 && col < n) {
                r->test_top1 = num(g[col]);
                r->epochs = ln - 1;
                if (scol >= 0 && scol < n && !isnan(r->test_top1)) {
                    if (r->n_ep == cap_ep) {
                        cap_ep = cap_ep ? 2 * cap_ep : 64;
                        double *a = realloc(r->ep_step, (size_t)cap_ep * sizeof(double));
                        if (a) r->ep_step = a;
                        double *b = realloc(r->ep_top1, (size_t)cap_ep * sizeof(double));
                        if (b) r->ep_top1 = b;
                        if (!a || !b) break;
                    }
                    r->ep_step[r->n_ep] = num(g[scol]), r->ep_top1[r->n_ep++] = r->test_top1;
                }
            }
        }
        fclose(f);
    }
    return 0;
}

/* One chart's series: per run k, ys[k][i] at xs[k][i] for i < lens[k] (NAN: not logged), at
 * most SVG_MAX_POINTS evenly spaced logged points each; y from 0 (or fixed 0..ymax_fixed). */
static svg_chart *make_chart(const char *title, const char *ylabel, run_log *runs, const char *const *names, int n,
                             const double *const *xs, const double *const *ys, const int *lens, double ymax_fixed) {
    svg_chart *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    snprintf(c->title, sizeof c->title, "%s", title);
    snprintf(c->xlabel, sizeof c->xlabel, "training step");
    snprintf(c->ylabel, sizeof c->ylabel, "%s", ylabel);
    double ymax = 0, xmax = 0;
    for (int k = 0; k < n && c->n_series < SVG_MAX_SERIES; k++) {
        run_log *r = &runs[k];
        svg_series *s = &c->series[c->n_series];
        if (isnan(r->test_top1)) snprintf(s->name, sizeof s->name, "%s", names[k]);
        else snprintf(s->name, sizeof s->name, "%s (test %.1f%%)", names[k], r->test_top1);
        for (int i = 0; i < r->n; i++) xmax = fmax(xmax, r->step[i]);
        if (!ys[k]) continue;
        int logged = 0;
        /* only finite points (a diverged run logs inf; an empty cell reads NAN) */
        for (int i = 0; i < lens[k]; i++) logged += isfinite(ys[k][i]) && isfinite(xs[k][i]);
        int stride = logged > SVG_MAX_POINTS ? (logged + SVG_MAX_POINTS - 1) / SVG_MAX_POINTS : 1, seen = 0;
        for (int i = 0; i < lens[k] && s->n < SVG_MAX_POINTS; i++) {
            if (!isfinite(ys[k][i]) || !isfinite(xs[k][i]) || seen++ % stride) continue;
            s->x[s->n] = xs[k][i], s->y[s->n] = ys[k][i];
            ymax = fmax(ymax, ys[k][i]), xmax = fmax(xmax, xs[k][i]);
            s->n++;
        }
        if (s->n) c->n_series++;
    }
    c->ymin = 0;
    c->ymax = ymax_fixed > 0 ? ymax_fixed : ymax > 0 ? ymax * 1.1 : 1;
    for (int t = 0; t <= 5; t++) {
        c->xticks[c->n_xticks] = xmax * t / 5;
        snprintf(c->xtick_labels[c->n_xticks++], 16, "%.0f", xmax * t / 5);
    }
    return c;
}

/* Write charts[0..nc) to dir/file (one chart, or a grid of `cols` per row), atomically. */
static int write_svg(const char *dir, const char *file, svg_chart **charts, int nc, int cols, const char *title) {
    char final[1100], tmp[1120];
    snprintf(final, sizeof final, "%.1000s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", final, (int)getpid());
    int bad = 0;
    for (int i = 0; i < nc; i++) bad |= !charts[i];
    FILE *f = bad ? NULL : fopen(tmp, "w");
    bad = bad || !f || (nc == 1 && !title ? svg_write_chart(f, charts[0]) : svg_write_grid(f, (const svg_chart *const *)charts, nc, cols, title)) != 0;
    if (f) bad |= fclose(f) != 0;
    if (bad || rename(tmp, final)) {
        unlink(tmp);
        return qb_error(QB_EXIT_IO, "%s: write failed", final);
    }
    return 0;
}

/* The charts, in the order training.md shows them: test top-1 per epoch, the five series over
 * layers (q, k, logit, entropy, loss), then the four metrics per layer (M_Q … M_ENT). */
typedef struct {
    const char *file, *title, *ylabel;
} chart_info;
static const chart_info CH_TOP1 = {"training_test_top1.svg", "Clean test top-1 after each epoch", "test top-1 (%)"};
static const chart_info CH_OVER[5] = {
    {"training_q_norm.svg", "Query norm (max over layers and heads)", "max |q|"},
    {"training_k_norm.svg", "Key norm (max over layers and heads)", "max |k|"},
    {"training_logit_max.svg", "Max attention logit (over layers)", "max logit"},
    {"training_entropy.svg", "Attention entropy (mean over layers)", "entropy (nats)"},
    {"training_loss.svg", "Training loss", "loss"}};
static const chart_info CH_LAYERS[M_N] = {
    {"training_layers_q_norm.svg", "Query norm per layer (max over heads and tokens)", "max |q|"},
    {"training_layers_k_norm.svg", "Key norm per layer (max over heads and tokens)", "max |k|"},
    {"training_layers_logit_max.svg", "Max attention logit per layer", "max logit"},
    {"training_layers_entropy.svg", "Attention entropy per layer (mean)", "entropy (nats)"}};

/* the most layers any run logged (0: no per-layer charts) */
static int max_layers(const run_log *runs, int n) {
    int L = 0;
    for (int k = 0; k < n; k++) L = runs[k].layers > L ? runs[k].layers : L;
    return L;
}

static int write_charts(const char *dir, run_log *runs, const char *const *names, int n) {
    const double **xs = calloc((size_t)n, sizeof *xs), **ys = calloc((size_t)n, sizeof *ys);
    int *lens = calloc((size_t)n, sizeof *lens), rc = 0, L = max_layers(runs, n);
    if (!xs || !ys || !lens) rc = qb_error(QB_EXIT_FAIL, "out of memory");
    if (!rc) {
        for (int k = 0; k < n; k++) xs[k] = runs[k].ep_step, ys[k] = runs[k].ep_top1, lens[k] = runs[k].n_ep;
        svg_chart *c = make_chart(CH_TOP1.title, CH_TOP1.ylabel, runs, names, n, xs, ys, lens, 100);
        rc = write_svg(dir, CH_TOP1.file, &c, 1, 1, NULL);
        free(c);
    }
    for (int w = 0; w < 5 && !rc; w++) {
        for (int k = 0; k < n; k++) {
            double *a[5] = {runs[k].q_max, runs[k].k_max, runs[k].logit_max, runs[k].entropy, runs[k].loss};
            xs[k] = runs[k].step, ys[k] = a[w], lens[k] = runs[k].n;
        }
        svg_chart *c = make_chart(CH_OVER[w].title, CH_OVER[w].ylabel, runs, names, n, xs, ys, lens, 0);
        rc = write_svg(dir, CH_OVER[w].file, &c, 1, 1, NULL);
        free(c);
    }
    for (int m = 0; m < M_N && !rc && L > 0; m++) {
        svg_chart *panels[MAX_LAYERS] = {0};
        for (int l = 0; l < L; l++) {
            char t[64];
            snprintf(t, sizeof t, "layer %d", l);
            for (int k = 0; k < n; k++) xs[k] = runs[k].step, ys[k] = l < runs[k].layers ? runs[k].layer[m][l] : NULL, lens[k] = runs[k].n;
            panels[l] = make_chart(t, CH_LAYERS[m].ylabel, runs, names, n, xs, ys, lens, 0);
        }
        rc = write_svg(dir, CH_LAYERS[m].file, panels, L, 3, CH_LAYERS[m].title);
        for (int l = 0; l < L; l++) free(panels[l]);
    }
    free(xs), free(ys), free(lens);
    return rc;
}

int qb_training_report(const char *const *names, const char *const *dirs, int n, const char *out_dir) {
    if (mkdir(out_dir, 0755) && errno != EEXIST) return qb_error(QB_EXIT_IO, "%s: cannot create folder: %s", out_dir, strerror(errno));
    run_log *runs = calloc((size_t)n, sizeof *runs);
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) rc = read_log(&runs[k], dirs[k]);
    if (!rc) rc = write_charts(out_dir, runs, names, n);
    if (!rc) {
        char final[1100], tmp[1120];
        snprintf(final, sizeof final, "%.1000s/training.md", out_dir);
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", final, (int)getpid());
        FILE *f = fopen(tmp, "w");
        md_table *t = calloc(1, sizeof *t);
        if (f && t) {
            fprintf(f, "# Training runs\n\nLast logged values (max over layers for norms and logits, mean for entropy) "
                       "and clean test top-1 after the last epoch.\n\n");
            const char *head[] = {"run", "epochs", "test top-1", "steps", "max q-norm", "max k-norm", "max logit", "entropy"};
            for (int c = 0; c < 8; c++) md_set(t, 0, c, "%s", head[c]);
            for (int k = 0; k < n && k < 127; k++) {
                run_log *r = &runs[k];
                double v[4] = {NAN, NAN, NAN, NAN};
                for (int i = r->n - 1; i >= 0 && isnan(v[0]); i--)
                    if (!isnan(r->q_max[i])) v[0] = r->q_max[i], v[1] = r->k_max[i], v[2] = r->logit_max[i], v[3] = r->entropy[i];
                md_set(t, k + 1, 0, "%s", names[k]), md_set(t, k + 1, 1, "%d", r->epochs);
                md_set(t, k + 1, 2, isnan(r->test_top1) ? "—" : "%.2f", r->test_top1);
                md_set(t, k + 1, 3, "%.0f", r->step[r->n - 1]);
                for (int j = 0; j < 4; j++) md_set(t, k + 1, 4 + j, isnan(v[j]) ? "—" : "%.3f", v[j]);
            }
            md_write(f, t);
            fprintf(f, "![%s](%s)\n", CH_TOP1.title, CH_TOP1.file);
            for (int w = 0; w < 5; w++) fprintf(f, "![%s](%s)\n", CH_OVER[w].title, CH_OVER[w].file);
            if (max_layers(runs, n) > 0) /* the per-layer charts exist only when some run logged layers */
                for (int m = 0; m < M_N; m++) fprintf(f, "![%s](%s)\n", CH_LAYERS[m].title, CH_LAYERS[m].file);
        }
        int bad = !f || !t;
        if (f) bad |= fclose(f) != 0;
        free(t);
        if (bad || rename(tmp, final)) {
            unlink(tmp);
            rc = qb_error(QB_EXIT_IO, "%s: write failed", final);
        }
    }
    for (int k = 0; k < n; k++) run_free(&runs[k]);
    free(runs);
    return rc;
}
