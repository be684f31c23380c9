/* elliptical.c — the Elliptical-Attention compatibility protocol (attacks.md §10): the attack
 * settings of KurtPask/Elliptical-Attention ImageAttack (cleverhans FGM/PGD and the vendored
 * AutoAttack, all run on the normalised tensor), restated on the engine's pixel input.
 *  - ε is in normalised units: ε·σ_c per channel in pixels (scale = σ).
 *  - fgsm: cleverhans fast_gradient_method, one sign step of ε, labels = clean predictions,
 *    no clip_min/clip_max, so no clipping at all.
 *  - pgd: cleverhans projected_gradient_descent(ε, 0.15ε, 20 steps), uniform start in ±ε,
 *    projection onto the box, labels = clean predictions, no clipping.
 *  - apgd-ce, apgd-t, fab-t, square (and standard): true labels; AutoAttack clamps to [0,1]
 *    the *normalised* input, i.e. [μ_c, μ_c + σ_c] in pixels (QB_ELL_ARTEFACT), or the
 *    corrected pixel range [0,1] (QB_ELL_FIXED). The clamp follows the ε-ball projection, so
 *    with the artefact APGD's points can lie far outside the ε-ball (§10). */
#include "attacks.h"
#include <math.h>

int qb_elliptical_has_variants(qb_attack_kind k) { return k != QB_ATK_FGSM && k != QB_ATK_PGD; }

void qb_elliptical_cfg(qb_attack_kind k, qb_ell_variant v, const qb_attack_cfg *base, const float mean[3],
                       const float std[3], qb_attack_cfg *out, int *pred_labels) {
    *out = *base;
    out->norm = QB_NORM_LINF;
    for (int c = 0; c < 3; c++) out->scale[c] = std[c];
    *pred_labels = !qb_elliptical_has_variants(k);
    if (*pred_labels) {
        for (int c = 0; c < 3; c++) out->lo[c] = -INFINITY, out->hi[c] = INFINITY;
        if (k == QB_ATK_PGD) {
            out->steps = base->steps > 0 ? base->steps : 20;
            out->step = base->step > 0 ? base->step : 0.15f * base->eps;
            out->random_start = 1;
        }
        return;
    }
    for (int c = 0; c < 3; c++) {
        out->lo[c] = v == QB_ELL_ARTEFACT ? mean[c] : 0.0f;
        out->hi[c] = v == QB_ELL_ARTEFACT ? mean[c] + std[c] : 1.0f;
    }
}
