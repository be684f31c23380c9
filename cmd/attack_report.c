/* attack_report.c — `questbench attack`'s stdout: the robust-accuracy table (one column per
 * attack, one worst column per group) and AutoAttack's sanity report (largest perturbation,
 * points outside the declared range, NaN, zero-gradient starts, the Square check), with the exemptions of
 * the elliptical-compat protocol stated where they apply. */
#include "attack_cmd.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static int col_width(const char *name) { int n = (int)strlen(name); return n > 10 ? n : 10; }

/* group g's column heading: "worst", or under elliptical-compat "worst-ell" / "worst-ell-fixed" */
static void worst_heading(const run_ctx *r, int g, char *out, size_t n) {
    snprintf(out, n, "%s", r->worst_name[g]);
    char *colon = strchr(out, ':');
    if (colon) *colon = 0;
}

/* Whether the ε-ball rule is relaxed for an entry (attacks.md §10): the artefact variant of the
 * AutoAttack rows clamps to [μ, μ+σ] after the ε-ball, so its points may leave the ball; that is
 * the protocol, not a fault, and is reported rather than failed. The range rule always holds
 * against the entry's declared range ([0,1]; [μ, μ+σ] for the artefact rows; none for the
 * unclipped fgsm-ell/pgd-ell, whose points outside [0,1] are reported as allowed). */
static int ball_exempt(const entry *e) {
    return e->variant == QB_ELL_ARTEFACT && e->kind != QB_ATK_FGSM && e->kind != QB_ATK_PGD;
}

long attack_tally_violations(const entry *e, const tally *t) {
    return (ball_exempt(e) ? 0 : t->over_eps) + t->outside + t->nan;
}

long attack_report(const run_ctx *r, const tally *tal, const int *need, const int *emit_worst, const long *worst,
                   const unsigned char *broken, int N, int n_ok, long clean_correct, long skipped, long nonfinite) {
    const vit_config *c = &r->model->vit.cfg;
    int NE = r->n_entries, NX = r->n_eps, NG = r->n_groups;
    const char *space = r->eps_space_norm ? "normalized" : "pixel";
    printf("model: %s (%s, attention %s)\nimages: %d%s\nclean accuracy: %.2f%% (%ld/%d)\n", r->model_name, r->model_path,
           vit_attn_name(c->attn), n_ok, skipped ? " (some skipped)" : "", n_ok ? 100.0 * clean_correct / n_ok : 0,
           clean_correct, n_ok);
    if (r->compat)
        printf("protocol: elliptical-compat (attacks.md section 10: -ell rows as the Elliptical-Attention code ran "
               "them, -ell-fixed rows with the corrected [0,1] range)\n");
    if (r->label_pred)
        printf("labels: clean predictions (--label-source pred): correct = the attacked image is classified as its true label\n");
    printf("robust accuracy %% (norm %s, eps in %s space%s; * = from %s, --resume):\n%-12s", qb_norm_name(r->base.norm),
           space, r->quantize ? ", 8-bit quantized" : "", r->results_path ? r->results_path : "--out", "eps");
    char head[64];
    for (int ie = 0; ie < NE; ie++) printf(" %*s", col_width(r->entries[ie].name), r->entries[ie].name);
    for (int g = 0; g < NG; g++) {
        worst_heading(r, g, head, sizeof head);
        printf(" %*s", col_width(head), head);
    }
    printf("\n");
    for (int ix = 0; ix < NX; ix++) {
        printf("%-12s", r->eps[ix].text);
        for (int ie = 0; ie < NE; ie++) {
            const tally *t = &tal[ie * NX + ix];
            int w = col_width(r->entries[ie].name);
            if (need[ie * NX + ix]) printf(" %*.2f", w, t->n ? 100.0 * t->correct / t->n : 0);
            else {
                qb_result row = attack_make_row(r, r->entries[ie].row, r->eps[ix].exact);
                printf(" %*.2f*", w - 1, attack_row_value(r, &row));
            }
        }
        for (int g = 0; g < NG; g++) {
            worst_heading(r, g, head, sizeof head);
            int w = col_width(head);
            if (emit_worst[g * NX + ix]) printf(" %*.2f", w, n_ok ? 100.0 * worst[g * NX + ix] / n_ok : 0);
            else {
                qb_result row = attack_make_row(r, r->worst_name[g], r->eps[ix].exact);
                printf(" %*.2f*", w - 1, attack_row_value(r, &row));
            }
        }
        printf("\n");
        for (int ie = 0; ie < NE; ie++) {
            const tally *t = &tal[ie * NX + ix];
            if (r->entries[ie].kind != ENTRY_STANDARD || !need[ie * NX + ix] || !t->n) continue;
            printf("  %s at eps %s, robust after each stage:", r->entries[ie].name, r->eps[ix].text);
            for (int st = 0; st < N_STAGES; st++)
                printf(" %s %.2f%s", qb_attack_name(STANDARD_STAGES[st]), 100.0 * t->stage_correct[st] / t->n,
                       st + 1 < N_STAGES ? " ->" : "\n");
        }
    }
    if (r->eps_space_norm)
        printf("eps in pixels per channel = eps x std (%.4g, %.4g, %.4g)\n", c->std[0], c->std[1], c->std[2]);
    if (r->compat)
        printf("-ell range in pixels: fgsm/pgd unclipped; the others [mean, mean+std] = [%.4g, %.4g] [%.4g, %.4g] "
               "[%.4g, %.4g]\n", c->mean[0], c->mean[0] + c->std[0], c->mean[1], c->mean[1] + c->std[1], c->mean[2],
               c->mean[2] + c->std[2]);
    for (int ie = 0; ie < NE; ie++)
        if (r->entries[ie].tag[0]) printf("settings: %s%s\n", r->entries[ie].name, r->entries[ie].tag);
    /* sanity report (AutoAttack's final log plus attacks.md §11); counts are of points */
    printf("sanity (points of %d):\n", n_ok);
    long violations = 0;
    for (int ix = 0; ix < NX; ix++) {
        for (int ie = 0; ie < NE; ie++) {
            const tally *t = &tal[ie * NX + ix];
            const entry *e = &r->entries[ie];
            if (!need[ie * NX + ix]) continue;
            int bx = ball_exempt(e), unclipped = e->variant == QB_ELL_ARTEFACT && (e->kind == QB_ATK_FGSM || e->kind == QB_ATK_PGD);
            int artefact_range = e->variant == QB_ELL_ARTEFACT && !unclipped;
            printf("  eps %-10s %-9s max %s norm %.7g", r->eps[ix].text, e->name, qb_norm_name(r->base.norm), t->max_norm);
            if (!t->over_eps) printf(" (within eps)");
            else if (bx)
                printf(" (%.0fx eps; %ld point(s) beyond eps: AutoAttack's [0,1] clamp of the normalised input, "
                       "attacks.md section 10, not an error in elliptical-compat)", t->max_norm / r->eps[ix].value, t->over_eps);
            else printf(" EXCEEDS EPS at %ld point(s)", t->over_eps);
            if (unclipped)
                printf(", outside [0,1]: %ld%s", t->outside01, t->outside01 ? " (unclipped in elliptical-compat: allowed)" : "");
            else if (artefact_range) printf(", outside [mean, mean+std]: %ld", t->outside);
            else printf(", outside [0,1]: %ld", t->outside);
            printf(", NaN: %ld", t->nan);
            if (t->has_zero_grad) printf(", zero-gradient starts: %ld", t->zero_grad);
            if (attack_tally_violations(e, t)) printf("  -> FAILED: rows not written");
            printf("\n");
            violations += attack_tally_violations(e, t);
        }
        /* the Square check, per point and within one group (never artefact with corrected):
         * points the black-box Square broke that no gradient attack of the run broke */
        for (int g = 0; g < NG; g++) {
            int sq = -1, any_grad = 0, grad_reused = 0;
            long sq_only = 0;
            const tally *std = NULL;
            for (int ie = 0; ie < NE; ie++) {
                if (r->entries[ie].group != g) continue;
                int k = r->entries[ie].kind;
                if (!need[ie * NX + ix]) {
                    /* a gradient attack's row from --out: its points are not known this run */
                    grad_reused |= k != QB_ATK_SQUARE && k != ENTRY_STANDARD;
                    continue;
                }
                if (k == QB_ATK_SQUARE) sq = ie;
                else if (k == ENTRY_STANDARD) std = &tal[ie * NX + ix];
                else any_grad = 1;
            }
            if (sq >= 0 && any_grad && grad_reused)
                printf("  eps %s: the per-point Square check is skipped: some gradient attacks' rows came from --out\n",
                       r->eps[ix].text);
            else if (sq >= 0 && any_grad)
                for (int q = 0; q < n_ok; q++) {
                    if (!broken[((size_t)sq * NX + ix) * N + q]) continue;
                    int by_grad = 0;
                    for (int ie = 0; ie < NE && !by_grad; ie++) {
                        int k = r->entries[ie].kind;
                        if (ie == sq || !need[ie * NX + ix] || r->entries[ie].group != g || k == ENTRY_STANDARD) continue;
                        by_grad = broken[((size_t)ie * NX + ix) * N + q];
                    }
                    sq_only += !by_grad;
                }
            /* inside standard, Square runs on the points the gradient stages left robust */
            long std_sq = std ? std->stage_correct[2] - std->stage_correct[3] : 0;
            if (sq_only || std_sq) {
                char msg[256];
                snprintf(msg, sizeof msg, "eps %s: the black-box Square attack broke %ld point(s) the gradient attacks did "
                         "not - a sign of gradient masking", r->eps[ix].text, sq_only > std_sq ? sq_only : std_sq);
                printf("  warning: %s\n", msg);
                fprintf(stderr, "questbench: warning: %s\n", msg);
            }
        }
    }
    if (nonfinite) {
        printf("  non-finite logits or gradients met during the attacks: %ld\n", nonfinite);
        violations++;
    }
    return violations;
}
