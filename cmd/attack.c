/* attack.c — `questbench attack`: robust accuracy of one or more models under FGSM, PGD,
 * APGD-CE/-T, Square and the AutoAttack 'standard' sequence over a list of ε, scored per
 * point (a point is robust only if it is clean-correct and no attack breaks it), with a
 * long-format CSV, a table on stdout and AutoAttack's sanity report. Spec:
 * ../shared/docs/attacks.md; the CSV format is in help() below. */
#include "attacks.h"
#include "cmd.h"
#include "dataset.h"
#include "loader.h"
#include "progress.h"
#include "results.h"
#include "sharding.h"
#include "rng.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MODELS 16
#define MAX_EPS 32
#define MAX_ENTRIES 16
#define ENTRY_STANDARD QB_ATK_COUNT /* the AutoAttack sequence, one list entry */

static void help(FILE *f) {
    fprintf(f,
        "usage: questbench attack --model [NAME=]M [--model M2 ...] --data DIR --attack LIST --eps LIST [OPTIONS]\n"
        "Robust accuracy under white-box and black-box attacks, in [0,1] pixel space on the preprocessed\n"
        "image (normalisation is part of the model). A point is robust only if it is classified correctly\n"
        "clean and after the attack (a fresh forward on the returned point); 'worst' is the per-point\n"
        "minimum over all attacks of the run at that eps.\n"
        "options:\n"
        "  --model [NAME=]FILE timm ViT checkpoint (safetensors); repeat to compare models. NAME names the\n"
        "                      model in the results (default: the file name without folder and .safetensors)\n"
        "  --data DIR          ImageFolder root, or a flat folder with --labels\n"
        "  --labels FILE       lines 'relative/path label'\n"
        "  --subset FILE       only these relative paths, in this order\n"
        "  --limit N           the first N images\n"
        "  --shard K/N         only shard K of N of the images (after --subset/--limit: positions K, K+N, ...);\n"
        "                      rows are tagged with the shard, for questbench merge (worst-case rows too)\n"
        "  --attack LIST       comma list of fgsm (fgm with --norm l2), pgd, apgd-ce, apgd-t, fab-t, square and\n"
        "                      standard (AutoAttack: apgd-ce -> apgd-t -> fab-t -> square, each on the points\n"
        "                      still robust; with --norm l2 fab-t and square are skipped with a note)\n"
        "  --eps LIST          comma list of radii, numbers or fractions such as 4/255; L-inf: (0, 1]\n"
        "  --norm linf|l2      threat model (default linf; fab-t and square are L-inf only)\n"
        "  --steps N           iterations (pgd 10, apgd and fab-t 100) or queries (square 5000) instead of\n"
        "                      the default\n"
        "  --step-size X       PGD step: a number, a fraction, or a multiple of eps such as 0.15eps\n"
        "                      (default eps/4 for L-inf, eps/5 for L2: torchattacks' 2/255 at 8/255, 0.2 at 1)\n"
        "  --restarts R        restarts of pgd (with random start), apgd, fab-t and square (default 1)\n"
        "  --random-start on|off  PGD random start (default on)\n"
        "  --targets N         target classes of apgd-t and fab-t (default 9, at most classes-1)\n"
        "  --seed S            seed of every random draw (default 0); a draw depends only on the seed,\n"
        "                      the image's relative path and the attack, never on --batch or --threads\n"
        "  --eps-space pixel|normalized  pixel (default): eps in [0,1] pixel units. normalized: eps and\n"
        "                      step in units of the model's normalised input, i.e. eps*std_c per channel in\n"
        "                      pixels (attacks.md section 9/10); the range stays [0,1] in pixels\n"
        "  --batch B           images attacked together (default 8; results do not depend on it)\n"
        "  --save-adv DIR      write adversarial images as PNG under DIR/<model>/<attack>/<eps>/<rel>.png\n"
        "                      (PNG rounds to 8 bits: scores are of the float images unless --quantize)\n"
        "  --quantize          round adversarial images to 8 bits before scoring (rounded toward the clean\n"
        "                      image where nearest rounding would leave the eps-ball)\n"
        "  --skip-bad          skip images that fail to load (counted, named on stderr); by default the\n"
        "                      first one stops the run with exit 4\n"
        "  --out FILE.csv      append result rows to the questbench results file (README \"Results\"; one\n"
        "                      schema for every command), each row as soon as it is measured, row-atomic:\n"
        "                      kind=clean (clean accuracy, one per model) and kind=attack, one per model x\n"
        "                      attack x eps with attack = fgsm|pgd|apgd-ce|apgd-t|fab-t|square|standard and\n"
        "                      one attack=worst (per-point worst case over the run's attacks); n = images,\n"
        "                      correct = robust points, eps in pixel units. With --eps-space normalized\n"
        "                      the norm is written linf-n|l2-n and eps in normalised units; with --quantize\n"
        "                      the attack name gets the suffix -q8\n"
        "  --resume            skip the measurements whose row is already in --out (same model, attention,\n"
        "                      dataset, attack, norm, eps and seed); an eps whose 'worst' row is missing is\n"
        "                      recomputed for every attack, but only missing rows are appended. The key does\n"
        "                      not hold --steps/--restarts: use a fresh --out when changing them\n"
        "  --per-image FILE.csv  one row per image x attack x eps, written atomically (tmp + rename):\n"
        "                      model,attention,attack,norm,eps,eps_255,eps_space,image,label,clean_pred,\n"
        "                      adv_pred,success,robust,loss,linf,l2,steps,step_size,restarts,seed,version\n"
        "                      (success = clean-correct and broken, loss = cross-entropy at the returned\n"
        "                      point, linf/l2 = norm of the perturbation in the eps space)\n"
        "exit codes: 0 ok, 1 internal failure (incl. a perturbation outside the eps-ball or NaN),\n"
        "            2 bad command line (eps <= 0 or > 1 for L-inf, unknown attack, steps 0),\n"
        "            3 bad model, 4 bad data (unreadable image, label outside the model's classes), 5 write error\n"
        QB_MODEL_OPTIONS_HELP);
}

typedef struct {
    char text[32];   /* as given, for the table */
    float value;
    double exact;    /* the value in double (4/255 exactly as a double): the rows' eps */
} eps_arg;

typedef struct {
    int kind;        /* qb_attack_kind or ENTRY_STANDARD */
    const char *name;
} entry;

/* per (entry, eps) tallies for the result rows and the sanity report */
typedef struct {
    long n, correct;
    long stage_correct[4]; /* standard: robust after each stage */
    double max_norm;
    long outside, nan, zero_grad, over_eps;
} tally;

typedef struct {
    const char *model_path;
    char model_name[256];
    char model_sha[65];
    qb_model *model;
    FILE *per_image;          /* --per-image (a temporary file renamed at the end) */
    const char *results_path; /* --out: the results file rows are appended to */
    const char *data;
    char run_id[64];
    char worst_name[32];      /* "worst:<attack>+<attack>...": the set the per-point worst case covers */
    qb_results prev;          /* --resume: the rows already in --out */
    int resume;
    int n_entries, n_eps;
    entry entries[MAX_ENTRIES];
    eps_arg eps[MAX_EPS];
    qb_attack_cfg base;
    const char *step_text;
    int eps_space_norm, quantize;
    const char *save_dir;
} run_ctx;

/* AutoAttack 'standard' (autoattack.py): each stage on the points still robust */
static const qb_attack_kind STANDARD_STAGES[] = {QB_ATK_APGD_CE, QB_ATK_APGD_T, QB_ATK_FAB_T, QB_ATK_SQUARE};
#define N_STAGES 4

static double last_parsed; /* the double behind the last parse_number */

static int parse_number(const char *s, float *out) {
    char *end;
    errno = 0;
    double a = strtod(s, &end), b = 1;
    if (end == s || errno) return -1;
    if (*end == '/') {
        const char *q = end + 1;
        b = strtod(q, &end);
        if (end == q || errno || b == 0) return -1;
    }
    if (*end || !isfinite(a / b)) return -1;
    *out = (float)(a / b);
    last_parsed = a / b;
    return 0;
}

static int parse_eps_list(const char *s, eps_arg *eps, int *n, qb_norm norm) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_EPS) { fprintf(stderr, "questbench: --eps: at most %d values\n", MAX_EPS); return -1; }
        float v;
        if (parse_number(tok, &v)) { fprintf(stderr, "questbench: --eps: expected a number or a fraction such as 4/255, got '%s'\n", tok); return -1; }
        if (!(v > 0) || (norm == QB_NORM_LINF && v > 1)) {
            fprintf(stderr, "questbench: --eps: %s is outside %s\n", tok, norm == QB_NORM_LINF ? "(0, 1]" : "(0, inf)");
            return -1;
        }
        snprintf(eps[*n].text, sizeof eps[*n].text, "%s", tok);
        eps[*n].exact = last_parsed;
        eps[(*n)++].value = v;
    }
    if (*n == 0) { fprintf(stderr, "questbench: --eps: empty list\n"); return -1; }
    return 0;
}

static int parse_attack_list(const char *s, entry *e, int *n) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_ENTRIES) { fprintf(stderr, "questbench: --attack: at most %d attacks\n", MAX_ENTRIES); return -1; }
        qb_attack_kind k;
        if (!strcmp(tok, "standard")) e[*n].kind = ENTRY_STANDARD;
        else if (qb_attack_parse(tok, &k)) { fprintf(stderr, "questbench: --attack: %s\n", qb_last_error()); return -1; }
        else e[*n].kind = k;
        /* the canonical name (fgm is fgsm under --norm l2) names the rows */
        e[*n].name = e[*n].kind == ENTRY_STANDARD ? "standard" : qb_attack_name(k);
        for (int j = 0; j < *n; j++)
            if (e[j].kind == e[*n].kind) { fprintf(stderr, "questbench: --attack: '%s' given twice\n", tok); return -1; }
        (*n)++;
    }
    if (*n == 0) { fprintf(stderr, "questbench: --attack: empty list\n"); return -1; }
    return 0;
}

static int mkdirs(char *path) { /* mkdir -p of the directory part of path */
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            int r = mkdir(path, 0777);
            *p = '/';
            if (r && errno != EEXIST) return -1;
        }
    return 0;
}

static int save_png(const char *dir, const char *model_name, const char *attack, const char *eps_text, const char *rel,
                    const float *x, int S) {
    char path[4096], et[64];
    const char *mdl = model_name;
    snprintf(et, sizeof et, "%s", eps_text);
    for (char *p = et; *p; p++) if (*p == '/') *p = '_';
    snprintf(path, sizeof path, "%s/%s/%s/eps_%s/%s", dir, mdl, attack, et, rel);
    char *ext = strrchr(path, '.');
    if (ext && !strchr(ext, '/')) *ext = 0;
    strncat(path, ".png", sizeof path - strlen(path) - 1);
    if (mkdirs(path)) return qb_error(QB_EXIT_IO, "%s: cannot create the directory", path);
    qb_image img = {S, S, malloc((size_t)S * S * 3)};
    if (!img.rgb) return qb_error(QB_EXIT_FAIL, "out of memory");
    size_t plane = (size_t)S * S;
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) img.rgb[i * 3 + c] = (uint8_t)lrintf(fminf(fmaxf(x[c * plane + i], 0), 1) * 255.0f);
    int rc = qb_image_save_png(&img, path);
    free(img.rgb);
    return rc;
}

/* Round to the 8-bit grid; where that leaves the ball, round toward the clean image (on the grid). */
static void quantize_8bit(const qb_attack_cfg *cfg, const float *x, float *v, size_t plane) {
    size_t d = 3 * plane;
    for (size_t i = 0; i < d; i++) {
        float q = (float)nearbyint(v[i] * 255.0f) / 255.0f;
        float e = cfg->eps * cfg->scale[i / plane] * (1 + 1e-6f);
        if (cfg->norm == QB_NORM_LINF && fabsf(q - x[i]) > e) q = (float)(v[i] > x[i] ? floor(v[i] * 255.0f) : ceil(v[i] * 255.0f)) / 255.0f;
        /* with eps under one grid step the ball may hold no 8-bit value: keep v there */
        if (cfg->norm == QB_NORM_LINF && fabsf(q - x[i]) > e) q = v[i];
        v[i] = q;
    }
    if (cfg->norm == QB_NORM_L2) {
        float *dl = v; /* norm of v − x measured in place */
        double ss = 0;
        for (int c = 0; c < 3; c++)
            for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                double a = ((double)dl[i] - x[i]) / cfg->scale[c];
                ss += a * a;
            }
        if (sqrt(ss) > cfg->eps)
            for (size_t i = 0; i < d; i++) {
                float u = v[i] * 255.0f, xu = x[i] * 255.0f;
                v[i] = (float)(u > xu ? floor(u + 1e-3f) : ceil(u - 1e-3f)) / 255.0f;
            }
    }
}

/* per-image rows: model,attention,attack,norm,eps,eps_255,eps_space, */
static void csv_common(FILE *f, run_ctx *r, const char *attack, int ie, const qb_attack_cfg *cfg) {
    const vit_config *c = &r->model->vit.cfg;
    fprintf(f, "%s,%s,%s,%s,", r->model_name, vit_attn_name(c->attn), attack, qb_norm_name(cfg->norm));
    fprintf(f, "%.9g,%.6g,%s,", r->eps[ie].value, r->eps[ie].value * 255.0, r->eps_space_norm ? "normalized" : "pixel");
}

/* steps, step_size, restarts, seed, version; kind < 0 for the clean and worst rows */
static void csv_tail(FILE *f, int kind, const qb_attack_cfg *cfg) {
    if (kind == QB_ATK_FGSM) fprintf(f, "1,%.9g,", cfg->eps);
    else if (kind == QB_ATK_PGD)
        fprintf(f, "%d,%.9g,", cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(kind),
                cfg->step > 0 ? cfg->step : cfg->eps / (cfg->norm == QB_NORM_LINF ? 4.0f : 5.0f));
    else if (kind >= 0 && kind < QB_ATK_COUNT) fprintf(f, "%d,,", cfg->steps > 0 ? cfg->steps : qb_attack_default_steps(kind));
    else fprintf(f, ",,");
    if (kind >= 0) fprintf(f, "%d,", kind == ENTRY_STANDARD ? 1 : cfg->restarts);
    else fprintf(f, ",");
    fprintf(f, "%llu,%s\n", (unsigned long long)cfg->seed, QB_VERSION);
}

static int parse_step(const char *s, float eps, float *out) {
    size_t n = strlen(s);
    if (n > 3 && !strcmp(s + n - 3, "eps")) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)(n - 3), s);
        float m;
        if (parse_number(buf, &m) || !(m > 0)) return -1;
        *out = m * eps;
        return 0;
    }
    return parse_number(s, out) || !(*out > 0) ? -1 : 0;
}


/* A result row of this run: kind clean (attack NULL) or attack. */
/* The worst-case row is named after the attacks it covers, so runs over different attack
 * sets (e.g. the stages of a suite) never share a key, and a report never shows a "worst"
 * that did not see every attack it is compared with. */
static void set_worst_name(run_ctx *r) {
    size_t o = (size_t)snprintf(r->worst_name, sizeof r->worst_name, "worst:");
    for (int e = 0; e < r->n_entries && o < sizeof r->worst_name; e++)
        o += (size_t)snprintf(r->worst_name + o, sizeof r->worst_name - o, "%s%s", e ? "+" : "", r->entries[e].name);
}

static qb_result make_row(const run_ctx *r, const char *attack, double eps) {
    qb_result w;
    memset(&w, 0, sizeof w);
    snprintf(w.run_id, sizeof w.run_id, "%s", r->run_id);
    snprintf(w.model, sizeof w.model, "%s", r->model_name);
    snprintf(w.model_sha256, sizeof w.model_sha256, "%s", r->model_sha);
    snprintf(w.attention, sizeof w.attention, "%s", vit_attn_name(r->model->vit.cfg.attn));
    snprintf(w.dataset, sizeof w.dataset, "%s", r->data);
    w.seed = r->base.seed;
    if (!attack) {
        snprintf(w.kind, sizeof w.kind, "clean");
        return w;
    }
    snprintf(w.kind, sizeof w.kind, "attack");
    if (!strcmp(attack, "worst")) attack = r->worst_name;
    snprintf(w.attack, sizeof w.attack, "%.28s%s", attack, r->quantize ? "-q8" : "");
    snprintf(w.norm, sizeof w.norm, "%s%s", qb_norm_name(r->base.norm), r->eps_space_norm ? "-n" : "");
    w.eps = eps;
    return w;
}

static int row_done(const run_ctx *r, const qb_result *w) { return r->resume && qb_results_has(&r->prev, w); }

/* the stored value of a row skipped by --resume, as a percentage (-1 if absent) */
static double row_value(const run_ctx *r, const qb_result *w) {
    char a[1024], b[1024];
    qb_result_key(w, a, sizeof a);
    for (int i = r->prev.n - 1; i >= 0; i--) {
        qb_result_key(&r->prev.rows[i], b, sizeof b);
        if (!strcmp(a, b)) return 100.0 * r->prev.rows[i].value;
    }
    return -1;
}

static int append_row(const run_ctx *r, qb_result *w, long n, long correct) {
    if (!r->results_path) return 0;
    w->n = n, w->correct = correct;
    qb_result_finish(w);
    return qb_results_append(r->results_path, w, 1);
}

/* Load the images order[start .. start+nb) into x; with skip_bad, drop the unreadable ones
 * from order (n shrinks) and count them. */
static int load_images(const qb_dataset *ds, int *order, int *n, int start, int nb, float *x, const char **paths,
                       const qb_model *m, int skip_bad, long *skipped) {
    for (;;) {
        int k = nb < *n - start ? nb : *n - start;
        for (int j = 0; j < k; j++) paths[j] = ds->items[order[start + j]].path;
        int failed, rc = qb_load_batch(x, paths, k, m->vit.cfg.img_size, m->crop_pct, m->interp, &failed);
        if (!rc || !skip_bad || rc != QB_EXIT_DATA) return rc ? rc : 0;
        fprintf(stderr, "questbench: skipped: %s\n", qb_last_error());
        (*skipped)++;
        memmove(order + start + failed, order + start + failed + 1, (size_t)(*n - start - failed - 1) * sizeof(int));
        (*n)--;
    }
}

/* Attack one model over the data set: a clean pass, then each eps x attack over all images
 * (its row appended as soon as it is done, so a killed run resumes at that granularity),
 * then the worst case per eps. */
static int attack_model(run_ctx *r, qb_dataset *ds, int batch, int skip_bad, long *skipped_out) {
    qb_model *m = r->model;
    const vit_config *c = &m->vit.cfg;
    int S = c->img_size, K = c->classes, NE = r->n_entries, NX = r->n_eps;
    size_t d = (size_t)3 * S * S, plane = (size_t)S * S;
    int rc = 0;
    for (int i = 0; i < ds->n; i++)
        if (ds->items[i].label < 0 || ds->items[i].label >= K)
            return cmd_fail(qb_error(QB_EXIT_DATA, "%s: label %d is outside the model's %d classes", ds->items[i].rel,
                                     ds->items[i].label, K));
    for (int e = 0; e < NE; e++)
        if ((r->entries[e].kind == QB_ATK_APGD_T || r->entries[e].kind == ENTRY_STANDARD) && K < 4)
            return cmd_fail(qb_error(QB_EXIT_USAGE, "%s: apgd-t needs at least 4 classes, the model has %d", r->entries[e].name, K));
    if (r->base.norm == QB_NORM_L2)
        for (int e = 0; e < NE; e++)
            if (r->entries[e].kind == QB_ATK_SQUARE || r->entries[e].kind == QB_ATK_FAB_T)
                return cmd_fail(qb_error(QB_EXIT_USAGE, "%s: only the L-inf norm is implemented", r->entries[e].name));
    for (int e = 0; e < NE; e++)
        if (r->entries[e].kind == ENTRY_STANDARD && r->base.steps > 0)
            fprintf(stderr, "questbench: note: standard with --steps %d: APGD and FAB-T run %d iterations (AutoAttack: "
                            "100); Square keeps its 5000 queries\n", r->base.steps, r->base.steps);
    for (int e = 0; e < NE; e++)
        if (r->entries[e].kind == ENTRY_STANDARD && r->base.norm == QB_NORM_L2)
            fprintf(stderr, "questbench: note: standard with --norm l2 runs apgd-ce and apgd-t only (FAB-T and Square "
                            "L2 are not implemented yet)\n");

    /* what is left to do (--resume): an attack x eps is computed when its row or the eps's worst row is missing */
    int *need = calloc((size_t)NE * NX, sizeof(int)), *emit = calloc((size_t)NE * NX, sizeof(int));
    int emit_worst[MAX_EPS], n_need = 0;
    if (!need || !emit) { free(need), free(emit); return cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory")); }
    qb_result clean_row = make_row(r, NULL, 0);
    int emit_clean = !row_done(r, &clean_row);
    for (int ix = 0; ix < NX; ix++) {
        qb_result w = make_row(r, "worst", r->eps[ix].exact);
        emit_worst[ix] = !row_done(r, &w);
        for (int ie = 0; ie < NE; ie++) {
            qb_result a = make_row(r, r->entries[ie].name, r->eps[ix].exact);
            emit[ie * NX + ix] = !row_done(r, &a);
            need[ie * NX + ix] = emit[ie * NX + ix] || emit_worst[ix];
            n_need += need[ie * NX + ix];
        }
    }
    if (!n_need && !emit_clean) {
        printf("model: %s: every result is already in %s (--resume)\n", r->model_name, r->results_path);
        free(need), free(emit);
        return 0;
    }

    qb_attack_ws ws;
    if ((rc = qb_attack_ws_init(&ws, &m->vit, batch))) { free(need), free(emit); return cmd_fail(rc); }
    int N = ds->n;
    tally *tal = calloc((size_t)NE * NX, sizeof(tally));
    float *x = qb_malloc(sizeof(float) * batch * d), *xc = qb_malloc(sizeof(float) * batch * d);
    float *xadv = qb_malloc(sizeof(float) * batch * d), *xbest = qb_malloc(sizeof(float) * batch * d);
    int *order = calloc(N + 1, sizeof(int)), *y = calloc(batch, sizeof(int)), *yc = calloc(batch, sizeof(int));
    int *clean_pred = calloc(N + 1, sizeof(int)), *pos = calloc(batch, sizeof(int)), *pred = calloc(batch, sizeof(int));
    int *robust = calloc((size_t)(N + 1) * NX, sizeof(int)), *alive = calloc(batch, sizeof(int));
    uint64_t *ids = calloc(batch, sizeof(uint64_t)), *idc = calloc(batch, sizeof(uint64_t));
    double *loss = calloc(batch, sizeof(double));
    const char **paths = calloc(batch, sizeof(char *));
    if (!tal || !x || !xc || !xadv || !xbest || !order || !y || !yc || !clean_pred || !pos || !pred || !robust ||
        !alive || !ids || !idc || !loss || !paths) {
        rc = cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory"));
        goto done;
    }
    long clean_correct = 0, skipped = 0;
    qb_progress pb;
    qb_progress_start(&pb, "attack", (long)N * (1 + n_need));
    long progress = 0;

    /* clean pass: predictions of every readable image; order[] keeps the readable ones */
    int n_ok = N;
    for (int i = 0; i < N; i++) order[i] = i;
    for (int start = 0; start < n_ok && !rc; start += batch) {
        long sk0 = skipped;
        if ((rc = load_images(ds, order, &n_ok, start, batch, x, paths, m, skip_bad, &skipped))) { cmd_fail(rc); break; }
        int nb = batch < n_ok - start ? batch : n_ok - start;
        if ((rc = qb_attack_predict(&ws, x, nb, pred))) { cmd_fail(rc); break; }
        for (int j = 0; j < nb; j++) {
            int i = order[start + j];
            clean_pred[i] = pred[j];
            clean_correct += pred[j] == ds->items[i].label;
        }
        progress += nb + (skipped - sk0);
        qb_progress_update(&pb, progress);
    }
    if (rc) { qb_progress_finish(&pb); goto done; }
    for (int ix = 0; ix < NX; ix++)
        for (int k = 0; k < n_ok; k++) robust[ix * N + k] = clean_pred[order[k]] == ds->items[order[k]].label;
    if (emit_clean && (rc = append_row(r, &clean_row, n_ok, clean_correct))) { qb_progress_finish(&pb); cmd_fail(rc); goto done; }

    for (int ix = 0; ix < NX && !rc; ix++) {
        qb_attack_cfg cfg = r->base;
        cfg.eps = r->eps[ix].value;
        if (r->step_text && parse_step(r->step_text, cfg.eps, &cfg.step)) {
            rc = cmd_fail(qb_error(QB_EXIT_USAGE, "--step-size: bad value '%s'", r->step_text));
            break;
        }
        for (int ie = 0; ie < NE && !rc; ie++) {
            if (!need[ie * NX + ix]) continue;
            tally *t = &tal[ie * NX + ix];
            int kind = r->entries[ie].kind;
            long zg0 = ws.zero_grad;
            for (int start = 0; start < n_ok && !rc; start += batch) {
                int nb = batch < n_ok - start ? batch : n_ok - start;
                /* the images loaded in the clean pass: a failure now is an error even with --skip-bad */
                for (int j = 0; j < nb; j++) paths[j] = ds->items[order[start + j]].path;
                int failed;
                if ((rc = qb_load_batch(x, paths, nb, S, m->crop_pct, m->interp, &failed))) { cmd_fail(rc); break; }
                for (int j = 0; j < nb; j++) {
                    const qb_sample *it = &ds->items[order[start + j]];
                    y[j] = it->label, ids[j] = qb_image_id(it->rel);
                    alive[j] = clean_pred[order[start + j]] == y[j]; /* wrong clean: broken, not attacked */
                }
                memcpy(xbest, x, sizeof(float) * nb * d);
                int n_stages = kind == ENTRY_STANDARD ? N_STAGES : 1;
                for (int st = 0; st < n_stages && !rc; st++) {
                    qb_attack_kind k = kind == ENTRY_STANDARD ? STANDARD_STAGES[st] : (qb_attack_kind)kind;
                    if ((k == QB_ATK_SQUARE || k == QB_ATK_FAB_T) && cfg.norm == QB_NORM_L2) {
                        /* no L2 Square / FAB-T yet: the stage keeps its points */
                        for (int j = 0; j < nb; j++) t->stage_correct[st] += alive[j];
                        continue;
                    }
                    qb_attack_cfg scfg = cfg;
                    if (kind == ENTRY_STANDARD) {
                        /* AutoAttack 'standard': 1 restart, 100 iterations, 9 targets, 5000 queries;
                         * --steps changes the gradient stages' iterations only, never Square's queries */
                        scfg.steps = k == QB_ATK_SQUARE ? 0 : (r->base.steps > 0 ? r->base.steps : 0);
                        scfg.restarts = 1;
                    }
                    int na = 0;
                    for (int j = 0; j < nb; j++)
                        if (alive[j]) {
                            memcpy(xc + na * d, x + j * d, sizeof(float) * d);
                            yc[na] = y[j], idc[na] = ids[j], pos[na] = j;
                            na++;
                        }
                    if (na > 0) {
                        if ((rc = qb_attack_run(&ws, k, &scfg, xc, yc, idc, na, xadv))) { cmd_fail(rc); break; }
                        if (r->quantize)
                            for (int j = 0; j < na; j++) quantize_8bit(&scfg, xc + j * d, xadv + j * d, plane);
                        /* the verdict comes from a fresh forward on the returned point (attacks.md §11.4) */
                        if ((rc = qb_attack_predict(&ws, xadv, na, pred))) { cmd_fail(rc); break; }
                        for (int j = 0; j < na; j++)
                            if (pred[j] != yc[j] || kind != ENTRY_STANDARD) {
                                memcpy(xbest + pos[j] * d, xadv + j * d, sizeof(float) * d);
                                if (pred[j] != yc[j]) alive[pos[j]] = 0;
                            }
                    }
                    if (kind == ENTRY_STANDARD)
                        for (int j = 0; j < nb; j++) t->stage_correct[st] += alive[j];
                }
                if (rc) break;
                /* score the final points: prediction, CE loss, norms */
                if ((rc = qb_attack_loss_grad(&ws, xbest, nb, y, NULL, QB_LOSS_CE, loss, NULL))) { cmd_fail(rc); break; }
                for (int j = 0; j < nb; j++) {
                    const float *xa = xbest + j * d, *x0 = x + j * d;
                    int i = order[start + j];
                    int p = qb_argmax(ws.logits + (size_t)j * K, K), ok = clean_pred[i] == y[j] && p == y[j];
                    for (size_t q = 0; q < d; q++) {
                        t->outside += xa[q] < 0 || xa[q] > 1;
                        t->nan += !isfinite(xa[q]);
                        xc[q] = xa[q] - x0[q];
                    }
                    double linf = qb_attack_norm(QB_NORM_LINF, xc, plane, cfg.scale);
                    double l2 = qb_attack_norm(QB_NORM_L2, xc, plane, cfg.scale);
                    double nrm = cfg.norm == QB_NORM_LINF ? linf : l2;
                    if (nrm > t->max_norm) t->max_norm = nrm;
                    if (cfg.norm == QB_NORM_LINF ? nrm > cfg.eps + 1e-6 : nrm > cfg.eps * (1 + 1e-5)) t->over_eps++;
                    t->n++;
                    t->correct += ok;
                    if (!ok) robust[ix * N + start + j] = 0;
                    if (r->per_image) {
                        csv_common(r->per_image, r, r->entries[ie].name, ix, &cfg);
                        fprintf(r->per_image, "%s,%d,%d,%d,%d,%d,%.7g,%.7g,%.7g,", ds->items[i].rel, y[j], clean_pred[i],
                                p, clean_pred[i] == y[j] && p != y[j], ok, loss[j], linf, l2);
                        csv_tail(r->per_image, kind, &cfg);
                    }
                    if (r->save_dir && (rc = save_png(r->save_dir, r->model_name, r->entries[ie].name, r->eps[ix].text,
                                                      ds->items[i].rel, xa, S))) {
                        cmd_fail(rc);
                        break;
                    }
                }
                progress += nb;
                qb_progress_update(&pb, progress);
            }
            if (rc) break;
            t->zero_grad += ws.zero_grad - zg0;
            if (emit[ie * NX + ix]) {
                qb_result w = make_row(r, r->entries[ie].name, r->eps[ix].exact);
                if ((rc = append_row(r, &w, t->n, t->correct))) { cmd_fail(rc); break; }
            }
        }
        if (rc) break;
        if (emit_worst[ix]) { /* every attack of this eps was computed in this run (need[] above) */
            long worst = 0;
            for (int k = 0; k < n_ok; k++) worst += robust[ix * N + k];
            qb_result w = make_row(r, "worst", r->eps[ix].exact);
            if ((rc = append_row(r, &w, n_ok, worst))) { cmd_fail(rc); break; }
        }
    }
    qb_progress_finish(&pb);
    *skipped_out += skipped;
    if (rc) goto done;

    /* table, sanity report */
    const char *space = r->eps_space_norm ? "normalized" : "pixel";
    printf("model: %s (%s, attention %s)\nimages: %d%s\nclean accuracy: %.2f%% (%ld/%d)\n", r->model_name, r->model_path,
           vit_attn_name(c->attn), n_ok, skipped ? " (some skipped)" : "", n_ok ? 100.0 * clean_correct / n_ok : 0,
           clean_correct, n_ok);
    printf("robust accuracy %% (norm %s, eps in %s space%s; * = from %s, --resume):\n%-12s", qb_norm_name(r->base.norm),
           space, r->quantize ? ", 8-bit quantized" : "", r->results_path ? r->results_path : "--out", "eps");
    for (int ie = 0; ie < NE; ie++) printf(" %10s", r->entries[ie].name);
    printf(" %10s\n", "worst");
    for (int ix = 0; ix < NX; ix++) {
        printf("%-12s", r->eps[ix].text);
        for (int ie = 0; ie < NE; ie++) {
            tally *t = &tal[ie * NX + ix];
            if (need[ie * NX + ix]) printf(" %10.2f", t->n ? 100.0 * t->correct / t->n : 0);
            else {
                qb_result w = make_row(r, r->entries[ie].name, r->eps[ix].exact);
                printf(" %9.2f*", row_value(r, &w));
            }
        }
        if (emit_worst[ix]) {
            long worst = 0;
            for (int k = 0; k < n_ok; k++) worst += robust[ix * N + k];
            printf(" %10.2f\n", n_ok ? 100.0 * worst / n_ok : 0);
        } else {
            qb_result w = make_row(r, "worst", r->eps[ix].exact);
            printf(" %9.2f*\n", row_value(r, &w));
        }
        for (int ie = 0; ie < NE; ie++) {
            tally *t = &tal[ie * NX + ix];
            if (r->entries[ie].kind != ENTRY_STANDARD || !need[ie * NX + ix] || !t->n) continue;
            printf("  standard at eps %s, robust after each stage:", r->eps[ix].text);
            for (int st = 0; st < N_STAGES; st++)
                printf(" %s %.2f%s", qb_attack_name(STANDARD_STAGES[st]), 100.0 * t->stage_correct[st] / t->n,
                       st + 1 < N_STAGES ? " ->" : "\n");
        }
    }
    if (r->eps_space_norm)
        printf("eps in pixels per channel = eps x std (%.4g, %.4g, %.4g)\n", c->std[0], c->std[1], c->std[2]);
    /* sanity report (AutoAttack's final log plus attacks.md §11) */
    printf("sanity:\n");
    long violations = 0;
    for (int ix = 0; ix < NX; ix++) {
        double best_grad = 2, sq = 2, sq_gain = 0;
        for (int ie = 0; ie < NE; ie++) {
            tally *t = &tal[ie * NX + ix];
            if (!need[ie * NX + ix]) continue;
            printf("  eps %-10s %-9s max %s norm %.7g%s, outside [0,1]: %ld, NaN: %ld, zero-gradient starts: %ld\n",
                   r->eps[ix].text, r->entries[ie].name, qb_norm_name(r->base.norm), t->max_norm,
                   t->over_eps ? " EXCEEDS EPS" : " (within eps)", t->outside, t->nan, t->zero_grad);
            violations += t->over_eps + t->outside + t->nan;
            double acc = t->n ? (double)t->correct / t->n : 0;
            int k = r->entries[ie].kind;
            if (k == QB_ATK_SQUARE) sq = acc;
            else if (k == ENTRY_STANDARD && t->n)
                sq_gain = (double)(t->stage_correct[2] - t->stage_correct[3]) / t->n;
            else if (acc < best_grad) best_grad = acc;
        }
        if ((sq < 2 && best_grad < 2 && sq < best_grad - 0.002) || sq_gain > 0.002)
            fprintf(stderr, "questbench: warning: eps %s: the black-box Square attack broke points the gradient attacks "
                            "did not (%.2f%% of points) - a sign of gradient masking\n",
                    r->eps[ix].text, 100.0 * (sq_gain > 0.002 ? sq_gain : best_grad - sq));
    }
    if (ws.nonfinite) violations++;
    if (violations) rc = cmd_fail(qb_error(QB_EXIT_FAIL, "sanity check failed: perturbations outside the eps-ball or [0,1], or NaN (see the report)"));
done:
    qb_attack_ws_free(&ws);
    free(tal), free(x), free(xc), free(xadv), free(xbest), free(order), free(y), free(yc), free(clean_pred), free(pos);
    free(pred), free(robust), free(alive), free(ids), free(idc), free(loss), free(paths), free(need), free(emit);
    return rc;
}

int cmd_attack(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0, skip_bad = 0, n_models = 0, resume = 0, shard_k = 0, shard_n = 0;
    long batch = 8, limit = 0, steps = 0, restarts = 1, n_targets = 9;
    const char *models[MAX_MODELS], *data = NULL, *labels = NULL, *subset = NULL, *out_path = NULL, *per_image = NULL;
    const char *attack_list = NULL, *eps_list = NULL;
    static run_ctx r;
    memset(&r, 0, sizeof r);
    r.base.norm = QB_NORM_LINF;
    r.base.random_start = 1;
    for (int i = 1; i < argc; i++) {
        int mo = cmd_model_option(argc, argv, &i, &ov, &threads);
        if (mo < 0) return QB_EXIT_USAGE;
        if (mo) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); return 0; }
        if (!strcmp(a, "--skip-bad")) { skip_bad = 1; continue; }
        if (!strcmp(a, "--quantize")) { r.quantize = 1; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        static const char *opts[] = {"--model", "--data", "--labels", "--subset", "--out", "--batch", "--limit", "--attack",
                                     "--eps", "--norm", "--steps", "--step-size", "--restarts", "--random-start",
                                     "--seed", "--eps-space", "--save-adv", "--targets", "--per-image", "--shard"};
        int k = -1;
        for (int j = 0; j < (int)(sizeof opts / sizeof *opts); j++) if (!strcmp(a, opts[j])) k = j;
        if (k < 0) { fprintf(stderr, "questbench attack: unknown %s '%s'\n", a[0] == '-' ? "option" : "argument", a); return QB_EXIT_USAGE; }
        if (i + 1 >= argc) { fprintf(stderr, "questbench attack: %s needs a value\n", a); return QB_EXIT_USAGE; }
        const char *v = argv[++i];
        char *end;
        switch (k) {
        case 0:
            if (n_models >= MAX_MODELS) { fprintf(stderr, "questbench attack: at most %d models\n", MAX_MODELS); return QB_EXIT_USAGE; }
            models[n_models++] = v;
            break;
        case 1: data = v; break;
        case 2: labels = v; break;
        case 3: subset = v; break;
        case 4: out_path = v; break;
        case 5: if (cmd_parse_int("--batch", v, 1, 4096, &batch)) return QB_EXIT_USAGE; break;
        case 6: if (cmd_parse_int("--limit", v, 1, 2000000000, &limit)) return QB_EXIT_USAGE; break;
        case 7: attack_list = v; break;
        case 8: eps_list = v; break;
        case 9:
            if (!strcmp(v, "linf")) r.base.norm = QB_NORM_LINF;
            else if (!strcmp(v, "l2")) r.base.norm = QB_NORM_L2;
            else { fprintf(stderr, "questbench: --norm: expected linf or l2, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 10: if (cmd_parse_int("--steps", v, 1, 1000000, &steps)) return QB_EXIT_USAGE; break;
        case 11: r.step_text = v; break;
        case 12: if (cmd_parse_int("--restarts", v, 1, 1000, &restarts)) return QB_EXIT_USAGE; break;
        case 13:
            if (!strcmp(v, "on")) r.base.random_start = 1;
            else if (!strcmp(v, "off")) r.base.random_start = 0;
            else { fprintf(stderr, "questbench: --random-start: expected on or off, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 14:
            errno = 0;
            r.base.seed = strtoull(v, &end, 10);
            if (end == v || *end || errno || v[0] == '-') { fprintf(stderr, "questbench: --seed: expected a non-negative integer, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 15:
            if (!strcmp(v, "pixel")) r.eps_space_norm = 0;
            else if (!strcmp(v, "normalized") || !strcmp(v, "normalised")) r.eps_space_norm = 1;
            else { fprintf(stderr, "questbench: --eps-space: expected pixel or normalized, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 16: r.save_dir = v; break;
        case 17: if (cmd_parse_int("--targets", v, 1, 1000, &n_targets)) return QB_EXIT_USAGE; break;
        case 18: per_image = v; break;
        case 19: if (cmd_parse_shard(v, &shard_k, &shard_n)) return QB_EXIT_USAGE; break;
        }
    }
    if (!n_models || !data || !attack_list || !eps_list) {
        fprintf(stderr, "questbench attack: %s is required\n", !n_models ? "--model" : !data ? "--data" : !attack_list ? "--attack" : "--eps");
        return QB_EXIT_USAGE;
    }
    if (resume && !out_path) {
        fprintf(stderr, "questbench attack: --resume needs --out\n");
        return QB_EXIT_USAGE;
    }
    if (parse_attack_list(attack_list, r.entries, &r.n_entries) || parse_eps_list(eps_list, r.eps, &r.n_eps, r.base.norm))
        return QB_EXIT_USAGE;
    set_worst_name(&r);
    float probe;
    if (r.step_text && parse_step(r.step_text, 1.0f, &probe)) {
        fprintf(stderr, "questbench: --step-size: expected a positive number, fraction or multiple of eps (0.15eps), got '%s'\n", r.step_text);
        return QB_EXIT_USAGE;
    }
    char names[MAX_MODELS][256];
    const char *mpaths[MAX_MODELS];
    for (int mi = 0; mi < n_models; mi++) {
        mpaths[mi] = cmd_model_name(models[mi], names[mi], sizeof names[mi]);
        if (!names[mi][0] || !mpaths[mi][0]) {
            fprintf(stderr, "questbench: --model: expected FILE or NAME=FILE, got '%s'\n", models[mi]);
            return QB_EXIT_USAGE;
        }
        for (int mj = 0; mj < mi; mj++)
            if (!strcmp(names[mi], names[mj])) {
                fprintf(stderr, "questbench: --model: the name '%s' is given twice (use NAME=FILE)\n", names[mi]);
                return QB_EXIT_USAGE;
            }
    }
    r.base.steps = (int)steps;
    r.base.restarts = (int)restarts;
    r.base.n_targets = (int)n_targets;
    r.results_path = out_path;
    r.data = data;
    r.resume = resume;
    qb_shard_run_id(r.run_id, sizeof r.run_id, "attack", shard_k, shard_n);
    int rc = out_path ? qb_results_check_writable(out_path) : 0;
    if (rc) return cmd_fail(rc);
    if (resume && access(out_path, F_OK) == 0) {
        struct stat st;
        if (!stat(out_path, &st) && st.st_size > 0 && (rc = qb_results_read(&r.prev, out_path))) return cmd_fail(rc);
    }
    cmd_set_threads(threads);
    qb_dataset ds;
    if ((rc = qb_dataset_open(&ds, data, labels, subset, (int)limit))) { qb_results_free(&r.prev); return cmd_fail(rc); }
    if ((rc = cmd_apply_shard(&ds, shard_k, shard_n))) { qb_dataset_free(&ds); qb_results_free(&r.prev); return rc; }
    char tmp_path[1100] = "";
    if (per_image) {
        snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", per_image, (int)getpid());
        if (!(r.per_image = fopen(tmp_path, "w"))) {
            qb_dataset_free(&ds);
            qb_results_free(&r.prev);
            return cmd_fail(qb_error(QB_EXIT_IO, "%s: cannot write (%s)", per_image, strerror(errno)));
        }
        fprintf(r.per_image, "model,attention,attack,norm,eps,eps_255,eps_space,image,label,clean_pred,adv_pred,success,"
                             "robust,loss,linf,l2,steps,step_size,restarts,seed,version\n");
    }
    long skipped = 0;
    for (int mi = 0; mi < n_models && !rc; mi++) {
        qb_model m;
        if ((rc = cmd_load_model(&m, mpaths[mi], &ov, 0))) break;
        r.model_path = mpaths[mi];
        snprintf(r.model_name, sizeof r.model_name, "%s", names[mi]);
        r.model_sha[0] = 0;
        if (out_path && (rc = qb_sha256_file(mpaths[mi], r.model_sha))) { cmd_fail(rc); qb_model_free(&m); break; }
        r.model = &m;
        for (int c = 0; c < 3; c++) r.base.scale[c] = r.eps_space_norm ? m.vit.cfg.std[c] : 1.0f;
        if (mi) printf("\n");
        rc = attack_model(&r, &ds, (int)batch, skip_bad, &skipped);
        qb_model_free(&m);
    }
    if (skipped) fprintf(stderr, "questbench: %ld image(s) skipped (--skip-bad)\n", skipped);
    if (r.per_image) {
        /* the per-image file is kept when only the sanity check failed: it is the evidence */
        int keep = !rc || rc == QB_EXIT_FAIL;
        if (keep && (fflush(r.per_image) || fsync(fileno(r.per_image)) || fclose(r.per_image) || rename(tmp_path, per_image))) {
            rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: write failed", per_image));
            unlink(tmp_path);
        } else if (!keep) {
            fclose(r.per_image);
            unlink(tmp_path);
        }
    }
    qb_results_free(&r.prev);
    qb_dataset_free(&ds);
    return rc;
}
