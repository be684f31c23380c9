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
#include <unistd.h>

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
        "                      first one stops the run with exit 4, as does a run where none loads\n"
        "  --out FILE.csv      append result rows to the questbench results file (README \"Results\"; one\n"
        "                      schema for every command), each row as soon as it is measured, row-atomic:\n"
        "                      kind=clean (clean accuracy, one per model) and kind=attack, one per model x\n"
        "                      attack x eps with attack = fgsm|pgd|apgd-ce|apgd-t|fab-t|square|standard (or\n"
        "                      the compat names above) and one worst row per group (per-point worst case\n"
        "                      over its attacks); n = images, correct = robust points. With --eps-space\n"
        "                      normalized (and elliptical-compat) the norm is written linf-n|l2-n and eps\n"
        "                      in normalised units; with --quantize the attack name gets the suffix -q8\n"
        "  --resume            skip the measurements whose row is already in --out (same model, attention,\n"
        "                      dataset and selection, attack with its settings tag, norm, eps and seed); an\n"
        "                      eps whose 'worst' row is missing is recomputed for every attack, but only\n"
        "                      missing rows are appended. Settings that differ from the defaults are in the\n"
        "                      attack's row name (pgd[steps=20;restarts=2]), so changing them never reuses rows.\n"
        "                      Every finished batch of a pass is journaled in FILE.csv.partial (per shard),\n"
        "                      and --resume replays those of unfinished passes: a killed run loses at most a\n"
        "                      batch per pass. The journal goes when the run ends well\n"
        "  --per-image FILE.csv  one row per image x attack x eps, each pass's rows appended in one write:\n"
        "                      model,attention,dataset,attack,norm,eps,eps_255,eps_space,image,label,\n"
        "                      clean_pred,adv_pred,success,robust,loss,linf,l2,steps,step_size,restarts,\n"
        "                      random_start,targets,seed,version (success = clean-correct and broken, loss =\n"
        "                      cross-entropy at the returned point, linf/l2 = norm of the perturbation in the\n"
        "                      eps space; dataset, attack and eps as in the --out row). Without --resume the\n"
        "                      file is started anew when the first batch is done; with it, the rows of passes\n"
        "                      already in --out are kept. One file per --shard\n"
        "exit codes: 0 ok, 1 internal failure (incl. a perturbation outside the eps-ball or NaN: that\n"
        "            pass's --out rows are not written; non-finite logits or gradients stop the run),\n"
        "            2 bad command line (eps <= 0 or > 1 for L-inf, a repeated eps, an empty list item,\n"
        "            unknown attack, fgm under L-inf, steps 0),\n"
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

/* Split a comma list into at most max items, in place; an empty item (",,", a leading or
 * trailing comma) is an error, as a list cut short by a typo must not run silently. */
static int split_list(const char *flag, char *buf, char **items, int max, int *n) {
    *n = 0;
    if (!*buf) { fprintf(stderr, "questbench: %s: empty list\n", flag); return -1; }
    for (char *p = buf;;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (!*p) { fprintf(stderr, "questbench: %s: empty item in the list (a stray comma?)\n", flag); return -1; }
        if (*n >= max) { fprintf(stderr, "questbench: %s: at most %d values\n", flag, max); return -1; }
        items[(*n)++] = p;
        if (!c) return 0;
        p = c + 1;
    }
}

int attack_parse_eps_list(const char *s, eps_arg *eps, int *n, qb_norm norm) {
    char *buf = strdup(s), *items[MAX_EPS];
    int ni = 0, rc = -1;
    if (!buf || split_list("--eps", buf, items, MAX_EPS, &ni)) goto out;
    *n = 0;
    for (int i = 0; i < ni; i++) {
        const char *tok = items[i];
        float v;
        if (parse_number(tok, &v)) { fprintf(stderr, "questbench: --eps: expected a number or a fraction such as 4/255, got '%s'\n", tok); goto out; }
        if (!(v > 0) || (norm == QB_NORM_LINF && v > 1)) {
            fprintf(stderr, "questbench: --eps: %s is outside %s\n", tok, norm == QB_NORM_LINF ? "(0, 1]" : "(0, inf)");
            goto out;
        }
        if (strlen(tok) >= sizeof eps[*n].text) { fprintf(stderr, "questbench: --eps: '%s' is too long\n", tok); goto out; }
        /* the same radius twice would measure, and append, the same rows twice */
        for (int j = 0; j < *n; j++)
            if (eps[j].value == v) {
                fprintf(stderr, "questbench: --eps: %s and %s are the same radius\n", eps[j].text, tok);
                goto out;
            }
        snprintf(eps[*n].text, sizeof eps[*n].text, "%s", tok);
        eps[*n].exact = last_parsed;
        eps[(*n)++].value = v;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

static void add_entry(run_ctx *r, int kind, const char *base, int variant, int label_pred, int group) {
    entry *e = &r->entries[r->n_entries++];
    e->kind = kind, e->variant = variant, e->label_pred = label_pred, e->group = group;
    snprintf(e->name, sizeof e->name, "%s%s", base, variant < 0 ? "" : variant == QB_ELL_FIXED ? "-ell-fixed" : "-ell");
}

int attack_parse_list(const char *s, run_ctx *r) {
    char *buf = strdup(s), *items[MAX_ENTRIES];
    int kinds[MAX_ENTRIES], n = 0, ni = 0;
    if (!buf || split_list("--attack", buf, items, MAX_ENTRIES, &ni)) { free(buf); return -1; }
    for (int i = 0; i < ni; i++, n++) {
        const char *tok = items[i];
        qb_attack_kind k;
        int bad = 0;
        if (!strcmp(tok, "standard")) kinds[n] = ENTRY_STANDARD;
        else if (qb_attack_parse(tok, &k)) { fprintf(stderr, "questbench: --attack: %s\n", qb_last_error()); bad = 1; }
        else kinds[n] = k;
        /* fgm is the L2 attack: under L-inf it would silently be fgsm */
        if (!bad && !strcmp(tok, "fgm") && r->base.norm == QB_NORM_LINF) {
            fprintf(stderr, "questbench: --attack: fgm is the L2 one-step attack (--norm l2); under L-inf use fgsm\n");
            bad = 1;
        }
        for (int j = 0; j < n && !bad; j++)
            if (kinds[j] == kinds[n]) { fprintf(stderr, "questbench: --attack: '%s' given twice\n", tok); bad = 1; }
        if (bad) { free(buf); return -1; }
    }
    free(buf);
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

/* The effective settings of entry ie at eps ix that a row's value depends on beyond its key
 * fields (attacks.md defaults where a flag is absent). */
typedef struct {
    int steps, restarts, random_start, targets;
    float step;
} entry_settings;

static entry_settings effective(const run_ctx *r, int ie, int ix) {
    const entry *e = &r->entries[ie];
    qb_attack_cfg c;
    entry_settings s = {0};
    if (attack_entry_cfg(r, ie, ix, &c)) return s;
    int k = e->kind == ENTRY_STANDARD ? QB_ATK_APGD_CE : e->kind;
    s.steps = c.steps > 0 ? c.steps : qb_attack_default_steps((qb_attack_kind)k);
    s.restarts = c.restarts > 0 ? c.restarts : 1;
    s.random_start = c.random_start;
    if (e->kind == QB_ATK_PGD) {
        s.step = c.step > 0 ? c.step : c.eps / (c.norm == QB_NORM_LINF ? 4.0f : 5.0f);
        if (!c.random_start) s.restarts = 1; /* without a random start every restart is the same run */
    }
    if (e->kind == ENTRY_STANDARD) s.restarts = 1;
    int K = r->model->vit.cfg.classes, t = c.n_targets > 0 ? c.n_targets : 9;
    s.targets = t < K - 1 ? t : K - 1; /* as apgd.c and fab.c clamp it */
    return s;
}

/* "[steps=20;restarts=2]": the settings of entry ie that differ from the defaults, so that rows
 * measured with other settings never share a key (--resume, reports) with the default ones. */
static void entry_tag(const run_ctx *r, int ie, char *out, size_t cap) {
    const entry *e = &r->entries[ie];
    run_ctx *d = malloc(sizeof *d);
    out[0] = 0;
    if (!d) return;
    *d = *r;
    d->base.steps = 0, d->base.restarts = 1, d->base.random_start = 1, d->base.n_targets = 9, d->step_text = NULL;
    int diff_steps = 0, diff_restarts = 0, diff_start = 0, diff_targets = 0, diff_step = 0;
    for (int ix = 0; ix < r->n_eps; ix++) {
        entry_settings u = effective(r, ie, ix), f = effective(d, ie, ix);
        diff_steps |= u.steps != f.steps, diff_restarts |= u.restarts != f.restarts;
        diff_start |= u.random_start != f.random_start, diff_targets |= u.targets != f.targets;
        diff_step |= u.step != f.step;
    }
    entry_settings u = effective(r, ie, 0);
    free(d);
    int k = e->kind;
    int has_steps = k != QB_ATK_FGSM, has_restarts = k != QB_ATK_FGSM && k != ENTRY_STANDARD;
    int has_targets = k == QB_ATK_APGD_T || k == QB_ATK_FAB_T || k == ENTRY_STANDARD;
    size_t o = 0;
#define PART(...) o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, __VA_ARGS__), sep = ";"
    const char *sep = "";
    if (has_steps && diff_steps) PART("%s%s=%d", sep, k == QB_ATK_SQUARE ? "queries" : "steps", u.steps);
    if (k == QB_ATK_PGD && r->step_text) {
        /* a multiple of eps is tagged where it differs from the default multiple; an absolute
         * step always (it equals the default at one eps at most, and a row's name must not
         * depend on the other eps of the list) */
        size_t n = strlen(r->step_text);
        if (n > 3 && !strcmp(r->step_text + n - 3, "eps")) {
            if (diff_step) PART("%sstep=%s", sep, r->step_text);
        } else PART("%sstep=%.9g", sep, u.step);
    }
    if (k == QB_ATK_PGD && diff_start) PART("%sstart=%s", sep, u.random_start ? "random" : "clean");
    if (has_restarts && diff_restarts) PART("%srestarts=%d", sep, u.restarts);
    if (has_targets && diff_targets) PART("%stargets=%d", sep, u.targets);
    if (!r->compat && e->label_pred) PART("%slabels=pred", sep);
#undef PART
    if (o) {
        /* wrap the parts in brackets */
        size_t n = strlen(out);
        if (n + 3 > cap) n = cap - 3;
        memmove(out + 1, out, n);
        out[0] = '[', out[n + 1] = ']', out[n + 2] = 0;
    }
}

int attack_set_row_names(run_ctx *r) {
    /* a row's attack field holds 255 characters, "-q8" included: a longer name is an error, never cut */
    const size_t cap_row = sizeof ((qb_result *)0)->attack - 4;
    for (int ie = 0; ie < r->n_entries; ie++) {
        entry *e = &r->entries[ie];
        entry_tag(r, ie, e->tag, sizeof e->tag);
        int n = snprintf(e->row, sizeof e->row, "%s%s", e->name, e->tag);
        if (strlen(e->tag) + 1 >= sizeof e->tag || n < 0 || (size_t)n >= sizeof e->row)
            return qb_error(QB_EXIT_USAGE, "%s: its settings make a row name over %zu characters", e->name, sizeof e->row - 1);
    }
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
            o += (size_t)snprintf(w + o, cap - o, "%s%s%s", first ? "" : "+", r->compat ? nm : en->name, en->tag);
            first = 0;
        }
        if (o > cap_row)
            return qb_error(QB_EXIT_USAGE, "the worst-case row name '%.40s...' is over %zu characters: list fewer attacks "
                                           "with non-default settings per call", w, cap_row);
    }
    return 0;
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

int attack_check_save_dir(const char *dir) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.questbench-probe-%d", dir, (int)getpid());
    if (mkdirs(probe)) return qb_error(QB_EXIT_IO, "--save-adv %s: cannot create the folder (%s)", dir, strerror(errno));
    FILE *f = fopen(probe, "w");
    if (!f) return qb_error(QB_EXIT_IO, "--save-adv %s: cannot write there (%s)", dir, strerror(errno));
    fclose(f);
    unlink(probe);
    return 0;
}

int attack_save_png(const char *dir, const char *model_name, const char *attack, const char *eps_text, const char *rel,
                    const float *x, int S) {
    char path[4096], et[64], att[sizeof ((qb_result *)0)->attack];
    snprintf(path, sizeof path, "%s/%s/%s/eps_%s/%s", dir, model_name, qb_file_safe_name(attack, att, sizeof att),
             qb_file_safe_name(eps_text, et, sizeof et), rel);
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

const char *const ATTACK_PER_IMAGE_HEADER =
    "model,attention,dataset,attack,norm,eps,eps_255,eps_space,image,label,clean_pred,adv_pred,success,robust,loss,"
    "linf,l2,steps,step_size,restarts,random_start,targets,seed,version";

/* a CSV field, quoted as in the results file */
static void csv_str(FILE *f, const char *s) {
    char buf[4200];
    fwrite(buf, 1, qb_csv_field(buf, sizeof buf, s), f);
}

void attack_csv_row(FILE *f, const char *head, const char *rel, const char *fields, const char *tail) {
    fputs(head, f);
    csv_str(f, rel);
    fprintf(f, ",%s%s\n", fields, tail);
}

/* A pass's per-image row parts, the same for each of its images: the head (model, attention,
 * dataset, attack, norm, eps exact as in the --out row, eps_255, eps_space) and the tail (steps,
 * step_size, restarts, random_start, targets, seed, version: the settings it ran with). */
int attack_csv_pass_parts(const run_ctx *r, int ie, int ix, const qb_attack_cfg *cfg, char **head, char **tail) {
    size_t n;
    FILE *f = open_memstream(head, &n);
    if (!f) return qb_error(QB_EXIT_FAIL, "out of memory");
    const vit_config *c = &r->model->vit.cfg;
    csv_str(f, r->model_name);
    fprintf(f, ",%s,", vit_attn_name(c->attn));
    csv_str(f, r->dataset_id);
    fputc(',', f);
    char att[sizeof ((qb_result *)0)->attack];
    snprintf(att, sizeof att, "%s%s", r->entries[ie].row, r->quantize ? "-q8" : "");
    csv_str(f, att);
    fprintf(f, ",%s,%.17g,%.6g,%s,", qb_norm_name(r->base.norm), r->eps[ix].exact, r->eps[ix].exact * 255.0,
            r->eps_space_norm ? "normalized" : "pixel");
    if (fclose(f) || !(f = open_memstream(tail, &n))) return qb_error(QB_EXIT_FAIL, "out of memory");
    int k = r->entries[ie].kind;
    entry_settings u = effective(r, ie, ix);
    if (k == QB_ATK_FGSM) fprintf(f, ",1,%.9g,1,,", cfg->eps);
    else if (k == QB_ATK_PGD) fprintf(f, ",%d,%.9g,%d,%s,", u.steps, u.step, u.restarts, u.random_start ? "on" : "off");
    else fprintf(f, ",%d,,%d,,", u.steps, u.restarts);
    if (k == QB_ATK_APGD_T || k == QB_ATK_FAB_T || k == ENTRY_STANDARD) fprintf(f, "%d", u.targets);
    fprintf(f, ",%llu,%s", (unsigned long long)cfg->seed, QB_VERSION);
    return fclose(f) ? qb_error(QB_EXIT_FAIL, "out of memory") : 0;
}
