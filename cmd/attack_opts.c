/* attack_opts.c — `questbench attack`: help, option values (eps and attack lists, step size,
 * the elliptical-compat expansion of the attack list), the per-entry config, the per-image
 * CSV fields, 8-bit quantisation and the adversarial PNGs. */
#include "attack_cmd.h"
#include "cmd.h"
#include "image.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const qb_attack_kind STANDARD_STAGES[N_STAGES] = {QB_ATK_APGD_CE, QB_ATK_APGD_T, QB_ATK_FAB_T, QB_ATK_SQUARE};

void attack_help(FILE *f) {
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
        "                      still robust; L-inf and L2)\n"
        "  --eps LIST          comma list of radii, numbers or fractions such as 4/255; L-inf: (0, 1]\n"
        "  --norm linf|l2      threat model (default linf)\n"
        "  --steps N           iterations (pgd 10, apgd and fab-t 100) or queries (square 5000) instead of\n"
        "                      the default; square keeps AutoAttack's window schedule for any query count\n"
        "                      (its resc_schedule=False; SquareAttack alone rescales it to the queries)\n"
        "  --step-size X       PGD step: a number, a fraction, or a multiple of eps such as 0.15eps (at most\n"
        "                      eps under --protocol elliptical-compat, as cleverhans requires)\n"
        "                      (default eps/4 for L-inf, eps/5 for L2: torchattacks' 2/255 at 8/255, 0.2 at 1)\n"
        "  --restarts R        restarts of pgd (with random start), apgd, fab-t and square (default 1)\n"
        "  --random-start on|off  PGD random start (default on)\n"
        "  --targets N         target classes of apgd-t and fab-t (default 9, at most classes-1)\n"
        "  --seed S            seed of every random draw (default 0); a draw depends only on the seed,\n"
        "                      the image's relative path and the attack, never on --batch or --threads\n"
        "  --eps-space pixel|normalized  pixel (default): eps in [0,1] pixel units. normalized: eps and\n"
        "                      step in units of the model's normalised input, i.e. eps*std_c per channel in\n"
        "                      pixels (attacks.md section 9/10); the range stays [0,1] in pixels\n"
        "  --label-source true|pred  labels the attacks use: the true labels (default), or the model's clean\n"
        "                      predictions; with pred every image is attacked and counts as correct when the\n"
        "                      attacked image's prediction is its true label (top-1 of the attacked images,\n"
        "                      so an image wrong when clean can count as correct)\n"
        "  --protocol standard|elliptical-compat  standard (default): the above. elliptical-compat: the\n"
        "                      evaluation of the Elliptical-Attention code (attacks.md section 10), for\n"
        "                      comparison with paper tables only; L-inf, eps in normalised units, labels fixed\n"
        "                      by the protocol. Every row is labelled:\n"
        "                        fgsm-ell   one sign step of eps*std_c, labels = clean predictions, no clipping\n"
        "                        pgd-ell    20 steps of 0.15eps (unless --steps/--step-size), uniform random\n"
        "                                   start, projection to the eps box, clean predictions, no clipping\n"
        "                        X-ell      X = apgd-ce, apgd-t, fab-t, square, standard with true labels and\n"
        "                                   AutoAttack's [0,1] clamp of the normalised input, i.e. the pixel\n"
        "                                   range [mean_c, mean_c+std_c]: the artefact, whose APGD/Square points\n"
        "                                   can lie far outside the eps-ball (shown in the sanity report)\n"
        "                        X-ell-fixed  the same attack with the corrected pixel range [0,1]\n"
        "                      worst-ell:<attacks> is the per-point worst case over the -ell rows, and\n"
        "                      worst-ell-fixed:<attacks> over the -ell-fixed rows (fgsm-ell and pgd-ell,\n"
        "                      unclipped, count in both)\n"
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
        "                      attack x eps with attack = fgsm|pgd|apgd-ce|apgd-t|fab-t|square|standard (or\n"
        "                      the compat names above) and one worst row per group (per-point worst case\n"
        "                      over its attacks); n = images, correct = robust points. With --eps-space\n"
        "                      normalized (and elliptical-compat) the norm is written linf-n|l2-n and eps\n"
        "                      in normalised units; with --quantize the attack name gets the suffix -q8\n"
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

int attack_parse_eps_list(const char *s, eps_arg *eps, int *n, qb_norm norm) {
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

static void add_entry(run_ctx *r, int kind, const char *base, int variant, int label_pred, int group) {
    entry *e = &r->entries[r->n_entries++];
    e->kind = kind, e->variant = variant, e->label_pred = label_pred, e->group = group;
    snprintf(e->name, sizeof e->name, "%s%s", base, variant < 0 ? "" : variant == QB_ELL_FIXED ? "-ell-fixed" : "-ell");
}

int attack_parse_list(const char *s, run_ctx *r) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    int kinds[MAX_ENTRIES], n = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n >= MAX_ENTRIES) { fprintf(stderr, "questbench: --attack: at most %d attacks\n", MAX_ENTRIES); return -1; }
        qb_attack_kind k;
        if (!strcmp(tok, "standard")) kinds[n] = ENTRY_STANDARD;
        else if (qb_attack_parse(tok, &k)) { fprintf(stderr, "questbench: --attack: %s\n", qb_last_error()); return -1; }
        else kinds[n] = k;
        for (int j = 0; j < n; j++)
            if (kinds[j] == kinds[n]) { fprintf(stderr, "questbench: --attack: '%s' given twice\n", tok); return -1; }
        n++;
    }
    if (n == 0) { fprintf(stderr, "questbench: --attack: empty list\n"); return -1; }
    /* the canonical name (fgm is fgsm under --norm l2) names the rows. Under elliptical-compat
     * the -ell rows come first (in list order), then their -ell-fixed twins: 7 kinds give at
     * most 2 + 5·2 entries */
    r->n_entries = 0;
    for (int i = 0; i < n; i++) {
        const char *name = kinds[i] == ENTRY_STANDARD ? "standard" : qb_attack_name((qb_attack_kind)kinds[i]);
        if (!r->compat) add_entry(r, kinds[i], name, -1, r->label_pred, 0);
        else add_entry(r, kinds[i], name, QB_ELL_ARTEFACT, kinds[i] == QB_ATK_FGSM || kinds[i] == QB_ATK_PGD, 0);
    }
    r->n_groups = 1;
    if (r->compat)
        for (int i = 0; i < n; i++) {
            if (kinds[i] == QB_ATK_FGSM || kinds[i] == QB_ATK_PGD) continue;
            const char *name = kinds[i] == ENTRY_STANDARD ? "standard" : qb_attack_name((qb_attack_kind)kinds[i]);
            add_entry(r, kinds[i], name, QB_ELL_FIXED, 0, 1);
            r->n_groups = 2;
        }
    return 0;
}

int attack_parse_step(const char *s, float eps, float *out) {
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

/* The worst-case row is named after the attacks it covers, so runs over different attack
 * sets (e.g. the stages of a suite) never share a key, and a report never shows a "worst"
 * that did not see every attack it is compared with. Under elliptical-compat one per variant:
 * worst-ell:fgsm+pgd+standard, worst-ell-fixed:fgsm+pgd+standard (fgsm-ell and pgd-ell do not
 * clip, so they belong to both). */
int attack_entry_in_group(const run_ctx *r, const entry *e, int g) {
    if (e->group == g) return 1;
    return r->compat && e->variant == QB_ELL_ARTEFACT && (e->kind == QB_ATK_FGSM || e->kind == QB_ATK_PGD);
}

void attack_set_worst_names(run_ctx *r) {
    for (int g = 0; g < r->n_groups; g++) {
        char *w = r->worst_name[g];
        size_t cap = sizeof r->worst_name[g];
        size_t o = (size_t)snprintf(w, cap, "%s", !r->compat ? "worst:" : g ? "worst-ell-fixed:" : "worst-ell:");
        int first = 1;
        for (int e = 0; e < r->n_entries && o < cap; e++) {
            const entry *en = &r->entries[e];
            if (!attack_entry_in_group(r, en, g)) continue;
            /* compat names drop their variant suffix here: the prefix says it */
            const char *nm = en->kind == ENTRY_STANDARD ? "standard" : qb_attack_name((qb_attack_kind)en->kind);
            o += (size_t)snprintf(w + o, cap - o, "%s%s", first ? "" : "+", r->compat ? nm : en->name);
            first = 0;
        }
    }
}

int attack_entry_cfg(const run_ctx *r, int ie, int ix, qb_attack_cfg *cfg) {
    const entry *e = &r->entries[ie];
    qb_attack_cfg base = r->base;
    base.eps = r->eps[ix].value;
    base.step = 0;
    if (r->step_text && attack_parse_step(r->step_text, base.eps, &base.step))
        return qb_error(QB_EXIT_USAGE, "--step-size: bad value '%s'", r->step_text);
    if (e->variant < 0) {
        *cfg = base;
        return 0;
    }
    const vit_config *c = &r->model->vit.cfg;
    int pred_labels;
    /* standard runs AutoAttack's attacks: apgd-ce stands for all of them (the same range) */
    qb_attack_kind k = e->kind == ENTRY_STANDARD ? QB_ATK_APGD_CE : (qb_attack_kind)e->kind;
    qb_elliptical_cfg(k, (qb_ell_variant)e->variant, &base, c->mean, c->std, cfg, &pred_labels);
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

int attack_save_png(const char *dir, const char *model_name, const char *attack, const char *eps_text, const char *rel,
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
void attack_quantize_8bit(const qb_attack_cfg *cfg, const float *x, float *v, size_t plane) {
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
void attack_csv_common(FILE *f, const run_ctx *r, const char *attack, int ie, const qb_attack_cfg *cfg) {
    const vit_config *c = &r->model->vit.cfg;
    fprintf(f, "%s,%s,%s,%s,", r->model_name, vit_attn_name(c->attn), attack, qb_norm_name(cfg->norm));
    fprintf(f, "%.9g,%.6g,%s,", r->eps[ie].value, r->eps[ie].value * 255.0, r->eps_space_norm ? "normalized" : "pixel");
}

/* steps, step_size, restarts, seed, version; kind < 0 for the clean and worst rows */
void attack_csv_tail(FILE *f, int kind, const qb_attack_cfg *cfg) {
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
