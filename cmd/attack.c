/* attack.c — `questbench attack`: robust accuracy of one or more models under FGSM, PGD,
 * APGD-CE/-T, FAB-T, Square and the AutoAttack 'standard' sequence over a list of ε, scored
 * per point (a point is robust only if it is clean-correct and no attack breaks it), with a
 * long-format CSV, a table on stdout and AutoAttack's sanity report; optionally under the
 * Elliptical-Attention compatibility protocol (attacks/elliptical.c). Spec:
 * attacks.md; options and the CSV format in attack_opts.c, the table and the
 * sanity report in attack_report.c. */
#include "attack_cmd.h"
#include "cmd.h"
#include "loader.h"
#include "progress.h"
#include "sharding.h"
#include "rng.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

qb_result attack_make_row(const run_ctx *r, const char *attack, double eps) {
    qb_result w;
    memset(&w, 0, sizeof w);
    snprintf(w.run_id, sizeof w.run_id, "%s", r->run_id);
    snprintf(w.model, sizeof w.model, "%s", r->model_name);
    snprintf(w.model_sha256, sizeof w.model_sha256, "%s", r->model_sha);
    snprintf(w.attention, sizeof w.attention, "%s", vit_attn_name(r->model->vit.cfg.attn));
    snprintf(w.dataset, sizeof w.dataset, "%s", r->dataset_id);
    w.seed = r->base.seed;
    if (!attack) {
        snprintf(w.kind, sizeof w.kind, "clean");
        return w;
    }
    snprintf(w.kind, sizeof w.kind, "attack");
    snprintf(w.attack, sizeof w.attack, "%s%s", attack, r->quantize ? "-q8" : "");
    snprintf(w.norm, sizeof w.norm, "%s%s", qb_norm_name(r->base.norm), r->eps_space_norm ? "-n" : "");
    w.eps = eps;
    return w;
}

static int row_done(const run_ctx *r, const qb_result *w) { return r->resume && qb_results_has(&r->prev, w); }

/* the stored value of a row skipped by --resume, as a percentage (-1 if absent) */
double attack_row_value(const run_ctx *r, const qb_result *w) {
    char a[2048], b[2048];
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

/* --per-image: start the file with its header, keeping with --resume the rows of passes
 * whose results row is in --out (a pass killed before its results row is redone, so its
 * earlier rows go); the rewrite is atomic (tmp + rename). Then it is appended to per pass. */
static int per_image_open(run_ctx *r, const char *path) {
    r->per_image_path = path;
    if (!(r->pi_mem = open_memstream(&r->pi_buf, &r->pi_len))) return qb_error(QB_EXIT_FAIL, "out of memory");
    if (!r->resume) {
        /* started at the first pass's rows (flush_per_image): a run that fails before leaves an
         * existing file as it was; its folder must take the file now */
        char dir[4200];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        if (access(path, F_OK) == 0 ? access(path, W_OK) != 0 : access(slash ? (dir[0] ? dir : "/") : ".", W_OK) != 0)
            return qb_error(QB_EXIT_IO, "%s: cannot write (%s)", path, strerror(errno));
        r->pi_fresh = 1;
        return 0;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *out = fopen(tmp, "w");
    if (!out) return qb_error(QB_EXIT_IO, "%s: cannot write (%s)", path, strerror(errno));
    fprintf(out, "%s\n", ATTACK_PER_IMAGE_HEADER);
    FILE *in = r->resume ? fopen(path, "r") : NULL;
    int rc = 0;
    if (in) {
        char *line = NULL, *copy = NULL;
        size_t cap = 0;
        ssize_t len;
        for (int lineno = 1; (len = getline(&line, &cap, in)) > 0; lineno++) {
            if (line[len - 1] != '\n') break; /* a torn tail */
            line[len - 1] = 0;
            if (lineno == 1) {
                if (strcmp(line, ATTACK_PER_IMAGE_HEADER)) {
                    rc = qb_error(QB_EXIT_DATA, "%s: not a per-image file of this version (its header differs); "
                                                "give a new --per-image file", path);
                    break;
                }
                continue;
            }
            free(copy);
            if (!(copy = strdup(line))) { rc = qb_error(QB_EXIT_FAIL, "out of memory"); break; }
            char *f[25];
            if (qb_csv_split(copy, f, 25) != 24) {
                rc = qb_error(QB_EXIT_DATA, "%s:%d: expected 24 comma-separated fields", path, lineno);
                break;
            }
            qb_result k;
            memset(&k, 0, sizeof k);
            snprintf(k.model, sizeof k.model, "%s", f[0]);
            snprintf(k.attention, sizeof k.attention, "%s", f[1]);
            snprintf(k.dataset, sizeof k.dataset, "%s", f[2]);
            snprintf(k.kind, sizeof k.kind, "attack");
            snprintf(k.attack, sizeof k.attack, "%s", f[3]);
            snprintf(k.norm, sizeof k.norm, "%s%s", f[4], !strcmp(f[7], "normalized") ? "-n" : "");
            k.eps = strtod(f[5], NULL);
            k.seed = strtoull(f[22], NULL, 10);
            snprintf(k.run_id, sizeof k.run_id, "%s", r->run_id); /* the same shard as this run */
            if (qb_results_has(&r->prev, &k)) fprintf(out, "%s\n", line);
        }
        free(line), free(copy);
        fclose(in);
    }
    if (fflush(out) || fsync(fileno(out))) rc = rc ? rc : qb_error(QB_EXIT_IO, "%s: write failed", tmp);
    fclose(out);
    if (rc || rename(tmp, path)) {
        unlink(tmp);
        return rc ? rc : qb_error(QB_EXIT_IO, "%s: cannot replace (%s)", path, strerror(errno));
    }
    if (!(r->per_image = fopen(path, "a"))) return qb_error(QB_EXIT_IO, "%s: cannot append (%s)", path, strerror(errno));
    return 0;
}

/* Append the pass's per-image rows in one write (before its results row: a run killed in
 * between leaves rows that --resume drops, as their results row is missing). */
/* Without --resume the per-image file is started (emptied, with its header) once the first
 * batch is done: a run that fails before leaves an existing file as it was, and one killed
 * after has a file of its own rows only, which --resume then keeps or drops by --out. */
static int per_image_start(run_ctx *r) {
    if (!r->pi_fresh) return 0;
    if (!(r->per_image = fopen(r->per_image_path, "w")) || fprintf(r->per_image, "%s\n", ATTACK_PER_IMAGE_HEADER) < 0 ||
        fflush(r->per_image) || fsync(fileno(r->per_image)))
        return qb_error(QB_EXIT_IO, "%s: cannot write (%s)", r->per_image_path, strerror(errno));
    r->pi_fresh = 0;
    return 0;
}

static int flush_per_image(run_ctx *r) {
    if (!r->per_image_path) return 0;
    if (fflush(r->pi_mem)) return qb_error(QB_EXIT_FAIL, "out of memory");
    int rc = per_image_start(r);
    if (rc) return rc;
    int bad = r->pi_len && (fwrite(r->pi_buf, 1, r->pi_len, r->per_image) != r->pi_len || fflush(r->per_image) ||
                            fsync(fileno(r->per_image)));
    rewind(r->pi_mem);
    r->pi_len = 0;
    return bad ? qb_error(QB_EXIT_IO, "%s: write failed: %s", r->per_image_path, strerror(errno)) : 0;
}

/* Count one image's outcome in its pass (computed now, or replayed from the journal) */
static void apply_point(const run_ctx *r, int ie, int ix, const qb_attack_cfg *cfg, const jpoint *p, int q, int N, tally *t,
                        int *robust, unsigned char *broken) {
    int NX = r->n_eps;
    const entry *en = &r->entries[ie];
    t->outside += p->out, t->outside01 += p->out01, t->nan += p->nan, t->zero_grad += p->zero;
    double nrm = cfg->norm == QB_NORM_LINF ? p->linf : p->l2;
    if (nrm > t->max_norm) t->max_norm = nrm;
    if (cfg->norm == QB_NORM_LINF ? nrm > cfg->eps + 1e-6 : nrm > cfg->eps * (1 + 1e-5)) t->over_eps++;
    t->n++;
    t->correct += p->ok;
    if (en->kind == ENTRY_STANDARD)
        for (int st = 0; st < N_STAGES; st++) t->stage_correct[st] += st < p->stages;
    broken[((size_t)ie * NX + ix) * N + q] = (unsigned char)p->brk;
    if (!p->ok)
        for (int g = 0; g < r->n_groups; g++)
            if (attack_entry_in_group(r, en, g)) robust[((size_t)g * NX + ix) * N + q] = 0;
}

/* Attack one model over the data set: a clean pass, then each eps x attack over all images
 * (its row appended as soon as it is done and passed the sanity checks, so a killed run
 * resumes at that granularity), then the worst case per eps and group. */
static int attack_model(run_ctx *r, qb_dataset *ds, int batch, int skip_bad, long *skipped_out) {
    qb_model *m = r->model;
    const vit_config *c = &m->vit.cfg;
    int S = c->img_size, K = c->classes, NE = r->n_entries, NX = r->n_eps, NG = r->n_groups;
    size_t d = (size_t)3 * S * S, plane = (size_t)S * S;
    int rc = 0;
    for (int i = 0; i < ds->n; i++)
        if (ds->items[i].label < 0 || ds->items[i].label >= K)
            return cmd_fail(qb_error(QB_EXIT_DATA, "%s: label %d is outside the model's %d classes", ds->items[i].rel,
                                     ds->items[i].label, K));
    int has_targets = 0, has_standard = 0, has_pgd = 0;
    for (int e = 0; e < NE; e++) {
        int k = r->entries[e].kind;
        if ((k == QB_ATK_APGD_T || k == ENTRY_STANDARD) && K < 4)
            return cmd_fail(qb_error(QB_EXIT_USAGE, "%s: apgd-t needs at least 4 classes, the model has %d", r->entries[e].name, K));
        has_targets |= k == QB_ATK_APGD_T || k == QB_ATK_FAB_T || k == ENTRY_STANDARD;
        has_standard |= k == ENTRY_STANDARD, has_pgd |= k == QB_ATK_PGD;
    }
    if ((rc = attack_set_row_names(r))) return cmd_fail(rc);
    /* settings that do not apply as given: said, never silently changed */
    if (has_standard && r->base.steps > 0)
        fprintf(stderr, "questbench: note: standard with --steps %d: APGD and FAB-T run %d iterations (AutoAttack: "
                        "100); Square keeps its 5000 queries\n", r->base.steps, r->base.steps);
    if (has_standard && r->base.restarts > 1)
        fprintf(stderr, "questbench: note: standard runs 1 restart of each attack, as AutoAttack; --restarts %d applies "
                        "to the attacks listed on their own\n", r->base.restarts);
    if (has_pgd && r->base.restarts > 1 && !r->base.random_start && !r->compat)
        fprintf(stderr, "questbench: note: pgd with --random-start off runs 1 restart (every restart would be the "
                        "same run)\n");
    if (has_targets && r->base.n_targets > K - 1)
        fprintf(stderr, "questbench: note: --targets %d: %s has %d classes, so %d target classes are attacked\n",
                r->base.n_targets, r->model_name, K, K - 1);

    /* what is left to do (--resume): an attack x eps is computed when its row or its group's worst row is missing */
    int *need = calloc((size_t)NE * NX, sizeof(int)), *emit = calloc((size_t)NE * NX, sizeof(int));
    int emit_worst[MAX_GROUPS * MAX_EPS], n_need = 0;
    if (!need || !emit) { free(need), free(emit); return cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory")); }
    qb_result clean_row = attack_make_row(r, NULL, 0);
    int emit_clean = !row_done(r, &clean_row);
    for (int ix = 0; ix < NX; ix++) {
        for (int g = 0; g < NG; g++) {
            qb_result w = attack_make_row(r, r->worst_name[g], r->eps[ix].exact);
            emit_worst[g * NX + ix] = !row_done(r, &w);
        }
        for (int ie = 0; ie < NE; ie++) {
            qb_result a = attack_make_row(r, r->entries[ie].row, r->eps[ix].exact);
            emit[ie * NX + ix] = !row_done(r, &a);
            need[ie * NX + ix] = emit[ie * NX + ix];
            for (int g = 0; g < NG; g++)
                need[ie * NX + ix] |= emit_worst[g * NX + ix] && attack_entry_in_group(r, &r->entries[ie], g);
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
    int *ya = calloc(batch, sizeof(int)), *zero_start = calloc(batch, sizeof(int)), *stages = calloc(batch, sizeof(int));
    jpoint *pts = calloc(batch, sizeof(jpoint));
    int *clean_pred = calloc(N + 1, sizeof(int)), *pos = calloc(batch, sizeof(int)), *pred = calloc(batch, sizeof(int));
    /* robust[(g·NX + ix)·N + k]: point k survives every attack of group g at eps ix;
     * broken[(ie·NX + ix)·N + k]: attack ie broke clean-correct point k (the Square check) */
    int *robust = calloc((size_t)(N + 1) * NX * NG, sizeof(int)), *alive = calloc(batch, sizeof(int));
    unsigned char *broken = calloc((size_t)(N + 1) * NX * NE, 1);
    int *bad_eps = calloc((size_t)NX * NG, sizeof(int)); /* a pass of the group failed the sanity checks */
    uint64_t *ids = calloc(batch, sizeof(uint64_t)), *idc = calloc(batch, sizeof(uint64_t));
    double *loss = calloc(batch, sizeof(double));
    const char **paths = calloc(batch, sizeof(char *));
    long worst[MAX_GROUPS * MAX_EPS] = {0};
    char *pi_head = NULL, *pi_tail = NULL; /* the current pass's per-image row parts */
    if (!tal || !x || !xc || !xadv || !xbest || !order || !y || !yc || !ya || !zero_start || !stages || !pts || !clean_pred || !pos ||
        !pred || !robust || !broken || !bad_eps || !alive || !ids || !idc || !loss || !paths) {
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
        if (nb <= 0) break; /* the batch's last images were all skipped */
        if ((rc = qb_attack_predict(&ws, x, nb, pred))) { cmd_fail(rc); break; }
        for (int j = 0; j < nb; j++) {
            int i = order[start + j];
            clean_pred[i] = pred[j];
            clean_correct += pred[j] == ds->items[i].label;
        }
        progress += nb + (skipped - sk0);
        qb_progress_update(&pb, progress);
    }
    if (!rc && n_ok == 0)
        rc = cmd_fail(qb_error(QB_EXIT_DATA, "%s: none of the %d image(s) could be read (--skip-bad skipped them all)",
                               r->data, N));
    if (rc) { qb_progress_finish(&pb); goto done; }
    /* a point wrong on the clean image is broken in every worst-case row (attacks.md §11.5),
     * also where an attack on clean predictions happens to flip it to the true label */
    for (int g = 0; g < NG; g++)
        for (int ix = 0; ix < NX; ix++)
            for (int q = 0; q < n_ok; q++)
                robust[((size_t)g * NX + ix) * N + q] = clean_pred[order[q]] == ds->items[order[q]].label;
    if (emit_clean && (rc = append_row(r, &clean_row, n_ok, clean_correct))) { qb_progress_finish(&pb); cmd_fail(rc); goto done; }

    for (int ix = 0; ix < NX && !rc; ix++) {
        for (int ie = 0; ie < NE && !rc; ie++) {
            if (!need[ie * NX + ix]) continue;
            qb_attack_cfg cfg;
            if ((rc = attack_entry_cfg(r, ie, ix, &cfg))) { cmd_fail(rc); break; }
            tally *t = &tal[ie * NX + ix];
            const entry *en = &r->entries[ie];
            int kind = en->kind;
            t->has_zero_grad = kind == QB_ATK_APGD_CE || kind == QB_ATK_APGD_T || kind == ENTRY_STANDARD;
            char key[2048];
            attack_journal_pass_key(r, ie, ix, n_ok, batch, key, sizeof key);
            attack_journal_select(r, key);
            free(pi_head), free(pi_tail), pi_head = pi_tail = NULL;
            if (r->per_image_path && (rc = attack_csv_pass_parts(r, ie, ix, &cfg, &pi_head, &pi_tail))) { cmd_fail(rc); break; }
            for (int start = 0; start < n_ok && !rc; start += batch) {
                int nb = batch < n_ok - start ? batch : n_ok - start;
                const char *jrows;
                size_t jrows_len, pi0 = 0;
                const jpoint *jp = attack_journal_find(r, start, nb, &jrows, &jrows_len);
                if (jp) { /* finished before the run was stopped: the same outcome, replayed */
                    for (int j = 0; j < nb; j++) apply_point(r, ie, ix, &cfg, &jp[j], start + j, N, t, robust, broken);
                    if (r->per_image_path && jrows_len && fwrite(jrows, 1, jrows_len, r->pi_mem) != jrows_len) {
                        rc = cmd_fail(qb_error(QB_EXIT_FAIL, "out of memory"));
                        break;
                    }
                    progress += nb;
                    qb_progress_update(&pb, progress);
                    continue;
                }
                if (r->per_image_path) fflush(r->pi_mem), pi0 = r->pi_len;
                /* the images loaded in the clean pass: a failure now is an error even with --skip-bad */
                for (int j = 0; j < nb; j++) paths[j] = ds->items[order[start + j]].path;
                int failed;
                if ((rc = qb_load_batch(x, paths, nb, S, m->crop_pct, m->interp, &failed))) { cmd_fail(rc); break; }
                for (int j = 0; j < nb; j++) {
                    const qb_sample *it = &ds->items[order[start + j]];
                    int cp = clean_pred[order[start + j]];
                    y[j] = it->label, ids[j] = qb_image_id(it->rel);
                    /* true labels: a wrong clean point is broken, not attacked; clean predictions:
                     * every point is attacked with its prediction as label */
                    ya[j] = en->label_pred ? cp : y[j];
                    alive[j] = en->label_pred || cp == y[j];
                    zero_start[j] = 0, stages[j] = 0;
                }
                memcpy(xbest, x, sizeof(float) * nb * d);
                int n_stages = kind == ENTRY_STANDARD ? N_STAGES : 1;
                for (int st = 0; st < n_stages && !rc; st++) {
                    qb_attack_kind k = kind == ENTRY_STANDARD ? STANDARD_STAGES[st] : (qb_attack_kind)kind;
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
                            yc[na] = ya[j], idc[na] = ids[j], pos[na] = j;
                            na++;
                        }
                    if (na > 0) {
                        if ((rc = qb_attack_run(&ws, k, &scfg, xc, yc, idc, na, xadv))) { cmd_fail(rc); break; }
                        if (k == QB_ATK_APGD_CE || k == QB_ATK_APGD_T)
                            for (int j = 0; j < na; j++) zero_start[pos[j]] |= ws.ivec[7][j];
                        if (r->quantize)
                            for (int j = 0; j < na; j++) attack_quantize_8bit(&scfg, xc + j * d, xadv + j * d, plane);
                        /* the verdict comes from a fresh forward on the returned point (attacks.md §11.4) */
                        if ((rc = qb_attack_predict(&ws, xadv, na, pred))) { cmd_fail(rc); break; }
                        for (int j = 0; j < na; j++)
                            if (pred[j] != yc[j] || kind != ENTRY_STANDARD) {
                                memcpy(xbest + pos[j] * d, xadv + j * d, sizeof(float) * d);
                                if (pred[j] != yc[j]) alive[pos[j]] = 0;
                            }
                    }
                    for (int j = 0; j < nb; j++) stages[j] += alive[j]; /* alive only decreases */
                }
                if (rc) break;
                /* score the final points with a fresh forward: prediction, CE loss, norms */
                if ((rc = qb_attack_loss_grad(&ws, xbest, nb, y, NULL, QB_LOSS_CE, loss, NULL))) { cmd_fail(rc); break; }
                for (int j = 0; j < nb; j++) {
                    const float *xa = xbest + j * d, *x0 = x + j * d;
                    int i = order[start + j];
                    int p = qb_argmax(ws.logits + (size_t)j * K, K);
                    /* correct = the attacked point is classified as its true label (and, with true
                     * labels, was clean-correct: AutoAttack's per-point rule) */
                    int ok = p == y[j] && (en->label_pred || clean_pred[i] == y[j]);
                    /* a point not attacked (clean-wrong) or not broken (AutoAttack returns those
                     * unchanged) comes back as the clean image, which need not lie in an artefact range */
                    int attacked = memcmp(xa, x0, sizeof(float) * d) != 0;
                    float qtol = r->quantize ? 0.5f / 255 : 0; /* 8-bit rounding may step past a range end off the grid */
                    jpoint *pt = &pts[j];
                    memset(pt, 0, sizeof *pt);
                    for (size_t q = 0; q < d; q++) {
                        int ch = (int)(q / plane);
                        pt->out |= attacked && (xa[q] < cfg.lo[ch] - qtol || xa[q] > cfg.hi[ch] + qtol);
                        pt->out01 |= xa[q] < 0 || xa[q] > 1;
                        pt->nan |= !isfinite(xa[q]);
                        xc[q] = xa[q] - x0[q];
                    }
                    double linf = qb_attack_norm(QB_NORM_LINF, xc, plane, cfg.scale);
                    double l2 = qb_attack_norm(QB_NORM_L2, xc, plane, cfg.scale);
                    pt->zero = zero_start[j], pt->stages = stages[j], pt->linf = linf, pt->l2 = l2;
                    pt->ok = ok, pt->brk = clean_pred[i] == y[j] && p != y[j];
                    apply_point(r, ie, ix, &cfg, pt, start + j, N, t, robust, broken);
                    if (r->per_image_path) {
                        char fields[160];
                        snprintf(fields, sizeof fields, "%d,%d,%d,%d,%d,%.7g,%.7g,%.7g", y[j], clean_pred[i], p, pt->brk, ok,
                                 loss[j], linf, l2);
                        attack_csv_row(r->pi_mem, pi_head, ds->items[i].rel, fields, pi_tail);
                    }
                    if (r->save_dir && (rc = attack_save_png(r->save_dir, r->model_name, en->row, r->eps[ix].text,
                                                             ds->items[i].rel, xa, S))) {
                        cmd_fail(rc);
                        break;
                    }
                }
                if (rc) break;
                if (r->per_image_path && (rc = per_image_start(r))) { cmd_fail(rc); break; }
                if (r->journal) {
                    if (r->per_image_path) fflush(r->pi_mem);
                    const char *rows = r->per_image_path ? r->pi_buf + pi0 : "";
                    size_t rows_len = r->per_image_path ? r->pi_len - pi0 : 0;
                    if ((rc = attack_journal_append(r, key, start, nb, pts, rows, rows_len))) { cmd_fail(rc); break; }
                }
                progress += nb;
                qb_progress_update(&pb, progress);
            }
            if (rc) break;
            /* the per-image rows are kept as evidence even when the pass fails its checks; its
             * results row (and its eps's worst rows) only when it passes them */
            /* a pass redone only for its eps's worst row has its per-image rows in the file already */
            if (!emit[ie * NX + ix] && r->per_image_path) rewind(r->pi_mem), r->pi_len = 0;
            else if ((rc = flush_per_image(r))) { cmd_fail(rc); break; }
            if (attack_tally_violations(en, t)) {
                for (int g = 0; g < NG; g++)
                    if (attack_entry_in_group(r, en, g)) bad_eps[g * NX + ix] = 1;
                continue;
            }
            if (emit[ie * NX + ix]) {
                qb_result w = attack_make_row(r, en->row, r->eps[ix].exact);
                if ((rc = append_row(r, &w, t->n, t->correct))) { cmd_fail(rc); break; }
            }
        }
        for (int g = 0; g < NG && !rc; g++) {
            if (!emit_worst[g * NX + ix]) continue; /* every attack of the group was computed in this run (need[]) */
            for (int k = 0; k < n_ok; k++) worst[g * NX + ix] += robust[((size_t)g * NX + ix) * N + k];
            if (bad_eps[g * NX + ix]) continue;
            qb_result w = attack_make_row(r, r->worst_name[g], r->eps[ix].exact);
            if ((rc = append_row(r, &w, n_ok, worst[g * NX + ix]))) { cmd_fail(rc); break; }
        }
    }
    qb_progress_finish(&pb);
    *skipped_out += skipped;
    if (rc) goto done;
    long violations = attack_report(r, tal, need, emit_worst, worst, broken, N, n_ok, clean_correct, skipped, ws.nonfinite);
    if (violations)
        rc = cmd_fail(qb_error(QB_EXIT_FAIL, "sanity check failed: perturbations outside the eps-ball or the range, or "
                                             "NaN (see the report; those rows were not written)"));
done:
    qb_attack_ws_free(&ws);
    free(tal), free(x), free(xc), free(xadv), free(xbest), free(order), free(y), free(yc), free(ya), free(zero_start);
    free(stages), free(pts);
    free(clean_pred), free(pos), free(pred), free(robust), free(broken), free(bad_eps), free(alive), free(ids), free(idc);
    free(loss), free(paths), free(need), free(emit), free(pi_head), free(pi_tail);
    return rc;
}

int cmd_attack(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0, skip_bad = 0, n_models = 0, resume = 0, shard_k = 0, shard_n = 0;
    int eps_space_pixel = 0, label_source_given = 0;
    long batch = 8, limit = 0, steps = 0, restarts = 1, n_targets = 9;
    const char *models[MAX_MODELS], *data = NULL, *labels = NULL, *subset = NULL, *out_path = NULL, *per_image = NULL;
    const char *attack_list = NULL, *eps_list = NULL;
    static run_ctx r;
    memset(&r, 0, sizeof r);
    qb_attack_cfg_init(&r.base);
    r.base.random_start = 1;
    for (int i = 1; i < argc; i++) {
        int mo = cmd_model_option(argc, argv, &i, &ov, &threads);
        if (mo < 0) return QB_EXIT_USAGE;
        if (mo) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { attack_help(stdout); return 0; }
        if (!strcmp(a, "--skip-bad")) { skip_bad = 1; continue; }
        if (!strcmp(a, "--quantize")) { r.quantize = 1; continue; }
        if (!strcmp(a, "--resume")) { resume = 1; continue; }
        static const char *opts[] = {"--model", "--data", "--labels", "--subset", "--out", "--batch", "--limit", "--attack",
                                     "--eps", "--norm", "--steps", "--step-size", "--restarts", "--random-start",
                                     "--seed", "--eps-space", "--save-adv", "--targets", "--per-image", "--shard",
                                     "--protocol", "--label-source"};
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
            if (!strcmp(v, "pixel")) r.eps_space_norm = 0, eps_space_pixel = 1;
            else if (!strcmp(v, "normalized") || !strcmp(v, "normalised")) r.eps_space_norm = 1, eps_space_pixel = 0;
            else { fprintf(stderr, "questbench: --eps-space: expected pixel or normalized, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 16: r.save_dir = v; break;
        case 17: if (cmd_parse_int("--targets", v, 1, 1000, &n_targets)) return QB_EXIT_USAGE; break;
        case 18: per_image = v; break;
        case 19: if (cmd_parse_shard(v, &shard_k, &shard_n)) return QB_EXIT_USAGE; break;
        case 20:
            if (!strcmp(v, "standard")) r.compat = 0;
            else if (!strcmp(v, "elliptical-compat")) r.compat = 1;
            else { fprintf(stderr, "questbench: --protocol: expected standard or elliptical-compat, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
        case 21:
            label_source_given = 1;
            if (!strcmp(v, "true")) r.label_pred = 0;
            else if (!strcmp(v, "pred")) r.label_pred = 1;
            else { fprintf(stderr, "questbench: --label-source: expected true or pred, got '%s'\n", v); return QB_EXIT_USAGE; }
            break;
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
    if (r.compat) {
        /* the protocol fixes the space, the norm and the labels: say so rather than ignore a flag */
        const char *why = eps_space_pixel ? "eps is in normalised units (drop --eps-space pixel)"
                          : r.base.norm != QB_NORM_LINF ? "the protocol is L-inf only (drop --norm l2)"
                          : label_source_given ? "the protocol fixes the labels (fgsm, pgd: clean predictions; the others: true labels); drop --label-source"
                          : !r.base.random_start ? "PGD starts at random in the protocol (drop --random-start off)"
                          : NULL;
        if (why) { fprintf(stderr, "questbench: --protocol elliptical-compat: %s\n", why); return QB_EXIT_USAGE; }
        r.eps_space_norm = 1;
    }
    if (attack_parse_list(attack_list, &r) || attack_parse_eps_list(eps_list, r.eps, &r.n_eps, r.base.norm))
        return QB_EXIT_USAGE;
    float probe;
    if (r.step_text && attack_parse_step(r.step_text, 1.0f, &probe)) {
        fprintf(stderr, "questbench: --step-size: expected a positive number, fraction or multiple of eps (0.15eps), got '%s'\n", r.step_text);
        return QB_EXIT_USAGE;
    }
    /* cleverhans' projected_gradient_descent asserts eps_iter <= eps */
    for (int ix = 0; r.compat && r.step_text && ix < r.n_eps; ix++) {
        float st;
        attack_parse_step(r.step_text, r.eps[ix].value, &st);
        if (st > r.eps[ix].value) {
            fprintf(stderr, "questbench: --protocol elliptical-compat: --step-size %s is larger than eps %s (cleverhans "
                            "requires step <= eps)\n", r.step_text, r.eps[ix].text);
            return QB_EXIT_USAGE;
        }
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
    if ((rc = cmd_dataset_id(r.dataset_id, sizeof r.dataset_id, data, labels, subset, limit, &ov)) ||
        (r.save_dir && (rc = attack_check_save_dir(r.save_dir))) || (per_image && (rc = per_image_open(&r, per_image))) ||
        (rc = attack_journal_open(&r))) {
        cmd_fail(rc);
        if (r.per_image) fclose(r.per_image);
        if (r.pi_mem) fclose(r.pi_mem);
        free(r.pi_buf);
        qb_dataset_free(&ds);
        qb_results_free(&r.prev);
        return rc;
    }
    if (r.save_dir && !r.quantize)
        fprintf(stderr, "questbench: note: --save-adv writes 8-bit PNG: a saved image can lie up to 0.5/255 per pixel "
                        "off the scored float image (and so outside eps); --quantize scores the rounded images\n");
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
    if (r.per_image && fclose(r.per_image) && !rc) rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: write failed", per_image));
    if (r.pi_mem) fclose(r.pi_mem);
    free(r.pi_buf);
    attack_journal_close(&r, rc == 0);
    qb_results_free(&r.prev);
    qb_dataset_free(&ds);
    return rc;
}
