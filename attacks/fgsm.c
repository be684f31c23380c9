/* fgsm.c — FGSM (L∞) and FGM (L2): one gradient step of size ε from the clean image
 * (attacks.md §2; torchattacks FGSM, cleverhans fast_gradient_method with norm=2). */
#include "attacks.h"
#include <math.h>

void qb_fgsm_step(const qb_attack_cfg *cfg, const float *x, const float *g, int n, size_t plane, float *xadv) {
    size_t d = 3 * plane;
    for (int b = 0; b < n; b++) {
        const float *xb = x + b * d, *gb = g + b * d;
        float *ob = xadv + b * d;
        if (cfg->norm == QB_NORM_LINF) {
            for (int c = 0; c < 3; c++) {
                float e = cfg->eps * cfg->scale[c], lo = cfg->lo[c], hi = cfg->hi[c];
                for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                    float sg = (float)((gb[i] > 0) - (gb[i] < 0)); /* sign(0) = 0 */
                    ob[i] = qb_clipf(xb[i] + e * sg, lo, hi);
                }
            }
        } else {
            /* the gradient in attack space is s_c·g; its unit vector, mapped back to pixels */
            double ss = 0;
            for (int c = 0; c < 3; c++)
                for (size_t i = c * plane; i < (c + 1) * plane; i++) {
                    double ga = (double)gb[i] * cfg->scale[c];
                    ss += ga * ga;
                }
            double inv = 1.0 / sqrt(ss > 1e-12 ? ss : 1e-12);
            for (int c = 0; c < 3; c++) {
                float f = (float)(cfg->eps * inv * cfg->scale[c] * cfg->scale[c]), lo = cfg->lo[c], hi = cfg->hi[c];
                for (size_t i = c * plane; i < (c + 1) * plane; i++) ob[i] = qb_clipf(xb[i] + f * gb[i], lo, hi);
            }
        }
    }
}

int qb_fgsm_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *x, const int *y, int n, float *xadv) {
    int rc = qb_attack_loss_grad(ws, x, n, y, NULL, QB_LOSS_CE, NULL, ws->grad);
    if (rc) return rc;
    qb_fgsm_step(cfg, x, ws->grad, n, (size_t)ws->S * ws->S, xadv);
    return 0;
}
