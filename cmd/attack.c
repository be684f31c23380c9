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
        "usage: questbench attack --model M [--model M2 ...] --data DIR --attack LIST --eps LIST [OPTIONS]\n"
        "Robust accuracy under white-box and black-box attacks, in [0,1] pixel space on the preprocessed\n"
        "image (normalisation is part of the model). A point is robust only if it is classified correctly\n"
        "clean and after the attack (a fresh forward on the returned point); 'worst' is the per-point\n"
        "minimum over all attacks of the run at that eps.\n"
        "options:\n"
        "  --model FILE        timm ViT checkpoint (safetensors); repeat to compare models\n"
        "  --data DIR          ImageFolder root, or a flat folder with --labels\n"
        "  --labels FILE       lines 'relative/path label'\n"
        "  --subset FILE       only these relative paths, in this order\n"
        "  --limit N           the first N images\n"
        "  --attack LIST       comma list of fgsm (fgm with --norm l2), pgd, apgd-ce, apgd-t, square and\n"
        "                      standard (AutoAttack: apgd-ce -> apgd-t -> square, each on the points still\n"
        "                      robust; fab-t is not implemented yet and is skipped with a note)\n"
        "  --eps LIST          comma list of radii, numbers or fractions such as 4/255; L-inf: (0, 1]\n"
        "  --norm linf|l2      threat model (default linf; square is L-inf only)\n"
        "  --steps N           iterations (pgd 10, apgd 100) or queries (square 5000) instead of the default\n"
        "  --step-size X       PGD step: a number, a fraction, or a multiple of eps such as 0.15eps\n"
        "                      (default eps/4 for L-inf, eps/5 for L2: torchattacks' 2/255 at 8/255, 0.2 at 1)\n"
        "  --restarts R        restarts of pgd (with random start), apgd and square (default 1)\n"
        "  --random-start on|off  PGD random start (default on)\n"
        "  --targets N         target classes of apgd-t (default 9, at most classes-1)\n"
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
        "  --out FILE.csv      long-format CSV, written atomically. Columns:\n"
        "                      row,model,attention,attack,norm,eps,eps_255,eps_space,image,label,clean_pred,\n"
        "                      adv_pred,success,robust,loss,linf,l2,n,correct,accuracy,steps,step_size,\n"
        "                      restarts,seed,version\n"
        "                      row=image: one per image x attack x eps (success = clean-correct and broken,\n"
        "                      loss = cross-entropy at the returned point, linf/l2 = norm of the perturbation\n"
        "                      in the eps space); row=summary: attack=clean (clean accuracy), each attack,\n"
        "                      standard/<stage> (cumulative robust accuracy after each stage) and worst;\n"
        "                      n = images, correct = robust points, accuracy = correct/n\n"
        "exit codes: 0 ok, 1 internal failure (incl. a perturbation outside the eps-ball or NaN),\n"
        "            2 bad command line (eps <= 0 or > 1 for L-inf, unknown attack, steps 0),\n"
        "            3 bad model, 4 bad data (unreadable image, label outside the model's classes), 5 write error\n"
        QB_MODEL_OPTIONS_HELP);
}

typedef struct {
    char text[32];   /* as given, for the table */
    float value;
} eps_arg;

typedef struct {
    int kind;        /* qb_attack_kind or ENTRY_STANDARD */
    const char *name;
} entry;

/* per (entry, eps) tallies for the summary rows and the sanity report */
typedef struct {
    long n, correct;
    long stage_correct[3]; /* standard: robust after each stage */
    double max_norm;
    long outside, nan, zero_grad, over_eps;
} tally;

typedef struct {
    const char *model_path;
    qb_model *model;
    FILE *out;
    int n_entries, n_eps;
    entry entries[MAX_ENTRIES];
    eps_arg eps[MAX_EPS];
    qb_attack_cfg base;
    const char *step_text;
    int eps_space_norm, quantize;
    const char *save_dir;
} run_ctx;

static const qb_attack_kind STANDARD_STAGES[] = {QB_ATK_APGD_CE, QB_ATK_APGD_T, QB_ATK_SQUARE};
#define N_STAGES 3

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
        else if (k == QB_ATK_FAB_T) { fprintf(stderr, "questbench: --attack: fab-t is not implemented yet\n"); return -1; }
        else e[*n].kind = k;
        e[*n].name = tok;
        for (int j = 0; j < *n; j++)
            if (!strcmp(e[j].name, tok)) { fprintf(stderr, "questbench: --attack: '%s' given twice\n", tok); return -1; }
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

static int save_png(const char *dir, const char *model_path, const char *attack, const char *eps_text, const char *rel,
                    const float *x, int S) {
    char path[4096], mdl[256], et[64];
    const char *base = strrchr(model_path, '/');
    snprintf(mdl, sizeof mdl, "%s", base ? base + 1 : model_path);
    char *dot = strrchr(mdl, '.');
    if (dot) *dot = 0;
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

static void csv_common(FILE *f, run_ctx *r, const char *attack, int ie, const qb_attack_cfg *cfg) {
    const vit_config *c = &r->model->vit.cfg;
    fprintf(f, "%s,%s,%s,%s,", r->model_path, vit_attn_name(c->attn), attack, qb_norm_name(cfg->norm));
    if (ie >= 0) fprintf(f, "%.9g,%.6g,%s,", r->eps[ie].value, r->eps[ie].value * 255.0, r->eps_space_norm ? "normalized" : "pixel");
    else fprintf(f, ",,%s,", r->eps_space_norm ? "normalized" : "pixel");
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

/* Attack one model over the data set. */
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
            if (r->entries[e].kind == QB_ATK_SQUARE)
                return cmd_fail(qb_error(QB_EXIT_USAGE, "square: only the L-inf norm is implemented"));
    for (int e = 0; e < NE; e++)
        if (r->entries[e].kind == ENTRY_STANDARD && r->base.norm == QB_NORM_L2)
            fprintf(stderr, "questbench: note: standard with --norm l2 runs apgd-ce and apgd-t only (Square L2 and FAB-T "
                            "are not implemented yet)\n");
        else if (r->entries[e].kind == ENTRY_STANDARD)
            fprintf(stderr, "questbench: note: standard runs apgd-ce, apgd-t, square (FAB-T is not implemented yet)\n");
    qb_attack_ws ws;
    if ((rc = qb_attack_ws_init(&ws, &m->vit, batch))) return cmd_fail(rc);
    tally *tal = calloc((size_t)NE * NX, sizeof(tally));
    float *x = qb_malloc(sizeof(float) * batch * d), *xc = qb_malloc(sizeof(float) * batch * d);
    float *xadv = qb_malloc(sizeof(float) * batch * d), *xbest = qb_malloc(sizeof(float) * batch * d);
    int *idx = calloc(batch, sizeof(int)), *y = calloc(batch, sizeof(int)), *yc = calloc(batch, sizeof(int));
    int *clean_pred = calloc(batch, sizeof(int)), *pos = calloc(batch, sizeof(int)), *pred = calloc(batch, sizeof(int));
    int *robust = calloc((size_t)batch * NX, sizeof(int)), *alive = calloc(batch, sizeof(int));
    uint64_t *ids = calloc(batch, sizeof(uint64_t)), *idc = calloc(batch, sizeof(uint64_t));
    double *loss = calloc(batch, sizeof(double));
    const char **paths = calloc(batch, sizeof(char *));
    if (!tal || !x || !xc || !xadv || !xbest || !idx || !y || !yc || !clean_pred || !pos || !pred || !robust || !alive ||
        !ids || !idc || !loss || !paths) {
        rc = cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory"));
        goto done;
    }
    long clean_correct = 0, done_n = 0, skipped = 0, worst[MAX_EPS] = {0};
    qb_progress pb;
    qb_progress_start(&pb, "attack", ds->n);
    int next = 0;
    while (next < ds->n && !rc) {
        int nb = 0;
        while (nb < batch && next < ds->n) idx[nb] = next, paths[nb] = ds->items[next].path, nb++, next++;
        int failed;
        while ((rc = qb_load_batch(x, paths, nb, S, m->crop_pct, m->interp, &failed)) && skip_bad && rc == QB_EXIT_DATA) {
            fprintf(stderr, "questbench: skipped: %s\n", qb_last_error());
            skipped++;
            memmove(paths + failed, paths + failed + 1, (size_t)(nb - failed - 1) * sizeof(char *));
            memmove(idx + failed, idx + failed + 1, (size_t)(nb - failed - 1) * sizeof(int));
            nb--;
            rc = 0;
        }
        if (rc) { cmd_fail(rc); break; }
        if (nb == 0) continue;
        for (int j = 0; j < nb; j++) y[j] = ds->items[idx[j]].label, ids[j] = qb_image_id(ds->items[idx[j]].rel);
        if ((rc = qb_attack_predict(&ws, x, nb, clean_pred))) { cmd_fail(rc); break; }
        for (int j = 0; j < nb; j++) clean_correct += clean_pred[j] == y[j];
        for (int j = 0; j < nb * NX; j++) robust[j] = clean_pred[j % nb] == y[j % nb];
        for (int ix = 0; ix < NX && !rc; ix++) {
            qb_attack_cfg cfg = r->base;
            cfg.eps = r->eps[ix].value;
            if (r->step_text && parse_step(r->step_text, cfg.eps, &cfg.step)) {
                rc = cmd_fail(qb_error(QB_EXIT_USAGE, "--step-size: bad value '%s'", r->step_text));
                break;
            }
            for (int ie = 0; ie < NE && !rc; ie++) {
                tally *t = &tal[ie * NX + ix];
                int kind = r->entries[ie].kind;
                /* points wrong on the clean image count as broken and are not attacked */
                memcpy(xbest, x, sizeof(float) * nb * d);
                for (int j = 0; j < nb; j++) alive[j] = clean_pred[j] == y[j];
                int n_stages = kind == ENTRY_STANDARD ? N_STAGES : 1;
                long zg0 = ws.zero_grad;
                for (int st = 0; st < n_stages && !rc; st++) {
                    qb_attack_kind k = kind == ENTRY_STANDARD ? STANDARD_STAGES[st] : (qb_attack_kind)kind;
                    if (k == QB_ATK_SQUARE && cfg.norm == QB_NORM_L2) { /* no L2 Square yet: the stage keeps its points */
                        for (int j = 0; j < nb; j++) t->stage_correct[st] += alive[j];
                        continue;
                    }
                    qb_attack_cfg scfg = cfg;
                    if (kind == ENTRY_STANDARD) {
                        /* AutoAttack 'standard': 1 restart, 100 iterations, 9 targets, 5000 queries */
                        scfg.steps = r->base.steps > 0 ? r->base.steps : 0;
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
                t->zero_grad += ws.zero_grad - zg0;
                /* score the final points: prediction, CE loss, norms */
                if ((rc = qb_attack_loss_grad(&ws, xbest, nb, y, NULL, QB_LOSS_CE, loss, NULL))) { cmd_fail(rc); break; }
                for (int j = 0; j < nb; j++) {
                    const float *xa = xbest + j * d, *x0 = x + j * d;
                    int p = qb_argmax(ws.logits + (size_t)j * K, K), ok = clean_pred[j] == y[j] && p == y[j];
                    for (size_t i = 0; i < d; i++) {
                        t->outside += xa[i] < 0 || xa[i] > 1;
                        t->nan += !isfinite(xa[i]);
                        xc[i] = xa[i] - x0[i];
                    }
                    double linf = qb_attack_norm(QB_NORM_LINF, xc, plane, cfg.scale);
                    double l2 = qb_attack_norm(QB_NORM_L2, xc, plane, cfg.scale);
                    double nrm = cfg.norm == QB_NORM_LINF ? linf : l2;
                    if (nrm > t->max_norm) t->max_norm = nrm;
                    if (cfg.norm == QB_NORM_LINF ? nrm > cfg.eps + 1e-6 : nrm > cfg.eps * (1 + 1e-5)) t->over_eps++;
                    t->n++;
                    t->correct += ok;
                    if (!ok) robust[ix * nb + j] = 0;
                    if (r->out) {
                        fprintf(r->out, "image,");
                        csv_common(r->out, r, r->entries[ie].name, ix, &cfg);
                        fprintf(r->out, "%s,%d,%d,%d,%d,%d,%.7g,%.7g,%.7g,,,,", ds->items[idx[j]].rel, y[j], clean_pred[j],
                                p, clean_pred[j] == y[j] && p != y[j], ok, loss[j], linf, l2);
                        csv_tail(r->out, kind, &cfg);
                    }
                    if (r->save_dir && (rc = save_png(r->save_dir, r->model_path, r->entries[ie].name, r->eps[ix].text,
                                                      ds->items[idx[j]].rel, xa, S))) {
                        cmd_fail(rc);
                        break;
                    }
                }
            }
        }
        /* worst case per eps: robust under every attack of the run */
        for (int ix = 0; ix < NX; ix++)
            for (int j = 0; j < nb; j++) worst[ix] += robust[ix * nb + j];
        done_n += nb;
        qb_progress_update(&pb, done_n + skipped);
    }
    qb_progress_finish(&pb);
    *skipped_out += skipped;
    if (rc) goto done;

    /* summary rows, table, sanity report */
    const char *space = r->eps_space_norm ? "normalized" : "pixel";
    printf("model: %s (attention %s)\nimages: %ld%s\nclean accuracy: %.2f%% (%ld/%ld)\n", r->model_path,
           vit_attn_name(c->attn), done_n, skipped ? " (some skipped)" : "", done_n ? 100.0 * clean_correct / done_n : 0,
           clean_correct, done_n);
    printf("robust accuracy %% (norm %s, eps in %s space%s):\n%-12s", qb_norm_name(r->base.norm), space,
           r->quantize ? ", 8-bit quantized" : "", "eps");
    for (int ie = 0; ie < NE; ie++) printf(" %10s", r->entries[ie].name);
    printf(" %10s\n", "worst");
    if (r->out) {
        fprintf(r->out, "summary,");
        csv_common(r->out, r, "clean", -1, &r->base);
        fprintf(r->out, ",,,,,,,,,%ld,%ld,%.6f,", done_n, clean_correct, done_n ? (double)clean_correct / done_n : 0);
        csv_tail(r->out, -1, &r->base);
    }
    for (int ix = 0; ix < NX; ix++) {
        qb_attack_cfg cfg = r->base;
        cfg.eps = r->eps[ix].value;
        if (r->step_text) parse_step(r->step_text, cfg.eps, &cfg.step);
        printf("%-12s", r->eps[ix].text);
        for (int ie = 0; ie < NE; ie++) {
            tally *t = &tal[ie * NX + ix];
            printf(" %10.2f", t->n ? 100.0 * t->correct / t->n : 0);
            if (!r->out) continue;
            fprintf(r->out, "summary,");
            csv_common(r->out, r, r->entries[ie].name, ix, &cfg);
            fprintf(r->out, ",,,,,,,,,%ld,%ld,%.6f,", t->n, t->correct, t->n ? (double)t->correct / t->n : 0);
            csv_tail(r->out, r->entries[ie].kind, &cfg);
            if (r->entries[ie].kind == ENTRY_STANDARD)
                for (int st = 0; st < N_STAGES; st++) {
                    char nm[64];
                    snprintf(nm, sizeof nm, "standard/%s", qb_attack_name(STANDARD_STAGES[st]));
                    fprintf(r->out, "summary,");
                    csv_common(r->out, r, nm, ix, &cfg);
                    fprintf(r->out, ",,,,,,,,,%ld,%ld,%.6f,", t->n, t->stage_correct[st],
                            t->n ? (double)t->stage_correct[st] / t->n : 0);
                    csv_tail(r->out, STANDARD_STAGES[st], &cfg);
                }
        }
        printf(" %10.2f\n", done_n ? 100.0 * worst[ix] / done_n : 0);
        if (r->out) {
            fprintf(r->out, "summary,");
            csv_common(r->out, r, "worst", ix, &cfg);
            fprintf(r->out, ",,,,,,,,,%ld,%ld,%.6f,", done_n, worst[ix], done_n ? (double)worst[ix] / done_n : 0);
            csv_tail(r->out, -1, &cfg);
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
            printf("  eps %-10s %-9s max %s norm %.7g%s, outside [0,1]: %ld, NaN: %ld, zero-gradient starts: %ld\n",
                   r->eps[ix].text, r->entries[ie].name, qb_norm_name(r->base.norm), t->max_norm,
                   t->over_eps ? " EXCEEDS EPS" : " (within eps)", t->outside, t->nan, t->zero_grad);
            violations += t->over_eps + t->outside + t->nan;
            double acc = t->n ? (double)t->correct / t->n : 0;
            int k = r->entries[ie].kind;
            if (k == QB_ATK_SQUARE) sq = acc;
            else if (k == ENTRY_STANDARD && t->n)
                sq_gain = (double)(t->stage_correct[1] - t->stage_correct[2]) / t->n;
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
    free(tal), free(x), free(xc), free(xadv), free(xbest), free(idx), free(y), free(yc), free(clean_pred), free(pos);
    free(pred), free(robust), free(alive), free(ids), free(idc), free(loss), free(paths);
    return rc;
}

int cmd_attack(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0, skip_bad = 0, n_models = 0;
    long batch = 8, limit = 0, steps = 0, restarts = 1, n_targets = 9;
    const char *models[MAX_MODELS], *data = NULL, *labels = NULL, *subset = NULL, *out_path = NULL;
    const char *attack_list = NULL, *eps_list = NULL;
    run_ctx r;
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
        static const char *opts[] = {"--model", "--data", "--labels", "--subset", "--out", "--batch", "--limit", "--attack",
                                     "--eps", "--norm", "--steps", "--step-size", "--restarts", "--random-start",
                                     "--seed", "--eps-space", "--save-adv", "--targets"};
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
        }
    }
    if (!n_models || !data || !attack_list || !eps_list) {
        fprintf(stderr, "questbench attack: %s is required\n", !n_models ? "--model" : !data ? "--data" : !attack_list ? "--attack" : "--eps");
        return QB_EXIT_USAGE;
    }
    if (parse_attack_list(attack_list, r.entries, &r.n_entries) || parse_eps_list(eps_list, r.eps, &r.n_eps, r.base.norm))
        return QB_EXIT_USAGE;
    float probe;
    if (r.step_text && parse_step(r.step_text, 1.0f, &probe)) {
        fprintf(stderr, "questbench: --step-size: expected a positive number, fraction or multiple of eps (0.15eps), got '%s'\n", r.step_text);
        return QB_EXIT_USAGE;
    }
    r.base.steps = (int)steps;
    r.base.restarts = (int)restarts;
    r.base.n_targets = (int)n_targets;
    cmd_set_threads(threads);
    qb_dataset ds;
    int rc = qb_dataset_open(&ds, data, labels, subset, (int)limit);
    if (rc) return cmd_fail(rc);
    char tmp_path[1100] = "";
    if (out_path) {
        snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%d", out_path, (int)getpid());
        if (!(r.out = fopen(tmp_path, "w"))) {
            qb_dataset_free(&ds);
            return cmd_fail(qb_error(QB_EXIT_IO, "%s: cannot write (%s)", out_path, strerror(errno)));
        }
        fprintf(r.out, "row,model,attention,attack,norm,eps,eps_255,eps_space,image,label,clean_pred,adv_pred,success,robust,"
                       "loss,linf,l2,n,correct,accuracy,steps,step_size,restarts,seed,version\n");
    }
    long skipped = 0;
    for (int mi = 0; mi < n_models && !rc; mi++) {
        qb_model m;
        if ((rc = cmd_load_model(&m, models[mi], &ov, 0))) break;
        r.model_path = models[mi];
        r.model = &m;
        for (int c = 0; c < 3; c++) r.base.scale[c] = r.eps_space_norm ? m.vit.cfg.std[c] : 1.0f;
        if (mi) printf("\n");
        rc = attack_model(&r, &ds, (int)batch, skip_bad, &skipped);
        qb_model_free(&m);
    }
    if (skipped) fprintf(stderr, "questbench: %ld image(s) skipped (--skip-bad)\n", skipped);
    if (r.out) {
        /* the CSV is kept when only the sanity check failed: it is the evidence */
        int keep = !rc || rc == QB_EXIT_FAIL;
        if (keep && (fflush(r.out) || fsync(fileno(r.out)) || fclose(r.out) || rename(tmp_path, out_path))) {
            rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: write failed", out_path));
            unlink(tmp_path);
        } else if (!keep) {
            fclose(r.out);
            unlink(tmp_path);
        }
    }
    qb_dataset_free(&ds);
    return rc;
}
