/* paper.c — published QUEST numbers (engine.md §7.1, §7.3) beside measured ones. */
#include "paper.h"
#include "markdown.h"
#include <stdlib.h>
#include <math.h>
#include <string.h>

typedef struct {
    const char *attention, *label;
    double clean, mce, fgsm, pgd, autoattack; /* %, NAN unknown */
} paper_row;

/* §7.1 (IN-val top-1, IN-C mCE) and §7.3 (clean, FGSM, PGD, AutoAttack; protocol unstated) */
static const paper_row QUEST_VIT_TI[] = {
    {"sdpa", "Standard", 72.6, 55.7, 54.23, 43.65, 26.57},
    {"quest", "QUEST", 73.4, 55.0, 56.90, 45.26, 27.29},
    {"qknorm", "QKNorm", 71.9, 58.1, NAN, NAN, NAN},
};

int qb_paper_known(const char *name) { return !strcmp(name, "quest-vit-ti"); }

static void cell(md_table *t, int r, int c, double v) {
    if (isnan(v)) md_set(t, r, c, "—");
    else md_set(t, r, c, "%.2f", v);
}

static int attack_index(const qb_report *r, const char *name) {
    for (int a = 0; a < r->n_attacks; a++)
        if (!strcmp(r->attacks[a], name)) return a;
    return -1;
}

void qb_paper_section(FILE *f, const char *name, const qb_report *r) {
    if (!qb_paper_known(name)) return;
    fprintf(f, "## Published numbers: QUEST paper, ViT-Ti/16, DeiT recipe, ImageNet-1k\n\n"
               "Govindarajan et al., ICLR 2026 (arXiv 2604.00199), as reported by secondary summaries (the PDF "
               "was not available; engine.md §7). The paper's attack protocol (ε, steps, pixel or normalised "
               "space) is not stated, so measured robust accuracies are shown at every ε run; rows marked "
               "elliptical-compat come from `--protocol elliptical-compat` (the protocol the table most likely "
               "used, ε in normalised units, AutoAttack with its [0,1]-on-normalised-input artefact).\n\n");
    md_table *t = calloc(1, sizeof *t);
    const char *head[] = {"source", "attention", "clean", "mCE", "FGSM", "PGD", "AutoAttack"};
    for (int c = 0; c < 7; c++) md_set(t, 0, c, "%s", head[c]);
    int row = 1;
    int fg = attack_index(r, "fgsm"), pg = attack_index(r, "pgd"), aa = attack_index(r, "standard");
    int fe = attack_index(r, "fgsm-ell"), pe = attack_index(r, "pgd-ell"), ae = attack_index(r, "standard-ell");
    for (size_t i = 0; i < sizeof QUEST_VIT_TI / sizeof *QUEST_VIT_TI && row < 128; i++) {
        const paper_row *p = &QUEST_VIT_TI[i];
        md_set(t, row, 0, "published"), md_set(t, row, 1, "%s", p->label);
        cell(t, row, 2, p->clean), cell(t, row, 3, p->mce), cell(t, row, 4, p->fgsm), cell(t, row, 5, p->pgd);
        cell(t, row, 6, p->autoattack);
        row++;
        for (int k = 0; k < r->n_models; k++) {
            const qb_model_metrics *m = &r->m[k];
            if (strcmp(m->attention, p->attention)) continue;
            for (int e = 0; e < (r->n_eps ? r->n_eps : 1) && row < 128; e++, row++) {
                if (r->n_eps) md_set(t, row, 0, "measured: %.20s @ε=%.4g", m->name, r->eps[e]);
                else md_set(t, row, 0, "measured: %.30s", m->name);
                md_set(t, row, 1, "%s", p->label);
                cell(t, row, 2, 100 * m->clean_acc), cell(t, row, 3, 100 * m->mce);
                cell(t, row, 4, fg >= 0 && r->n_eps ? 100 * m->rob[fg][e] : NAN);
                cell(t, row, 5, pg >= 0 && r->n_eps ? 100 * m->rob[pg][e] : NAN);
                cell(t, row, 6, aa >= 0 && r->n_eps ? 100 * m->rob[aa][e] : NAN);
            }
            /* the same model under the elliptical-compat protocol (attacks.md §10, ε normalised) */
            if ((fe < 0 && pe < 0 && ae < 0) || !r->n_eps) continue;
            for (int e = 0; e < r->n_eps && row < 128; e++) {
                double v[3] = {fe >= 0 ? m->rob[fe][e] : NAN, pe >= 0 ? m->rob[pe][e] : NAN,
                               ae >= 0 ? m->rob[ae][e] : NAN};
                if (isnan(v[0]) && isnan(v[1]) && isnan(v[2])) continue;
                md_set(t, row, 0, "measured, elliptical-compat: %.20s @ε=%.4g", m->name, r->eps[e]);
                md_set(t, row, 1, "%s", p->label);
                cell(t, row, 2, 100 * m->clean_acc), cell(t, row, 3, NAN);
                for (int j = 0; j < 3; j++) cell(t, row, 4 + j, 100 * v[j]);
                row++;
            }
        }
    }
    md_write(f, t);
    free(t);
}
