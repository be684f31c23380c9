/* attacks.h — white-box and black-box evasion attacks on the engine's input gradients.
 * Spec: attacks.md. Everything runs in [0,1] pixel space on the
 * preprocessed image; normalisation is the model's first op.
 *
 * Shared conventions:
 *  - x, xadv are (n, 3, S, S) float pixels; y are labels in [0, K); ids are per-image
 *    stable ids (qb_image_id of the relative path) that key every random draw, so an
 *    image's result never depends on batch size, batch order or thread count.
 *  - The engine is called with the whole batch: it is batch-invariant (an image's logits
 *    and input gradient are bit-identical alone or at any position in a batch, tests/lib
 *    test_vit.c), so with per-image random streams results are bit-identical for any
 *    --batch and --threads.
 *  - Per-channel scale s_c: the attack's space is pixel space (s = 1) or the model's
 *    normalised input (s = std): a step or ball of radius r in attack space is r·s_c in
 *    pixels, and norms are taken of δ_c / s_c (attacks.md §9).
 *  - Range: every point an attack makes is clipped per channel to [lo_c, hi_c] in pixels,
 *    always after the projection onto the ε-ball (that order is what reproduces AutoAttack's
 *    [0,1] clamp on normalised inputs, attacks.md §10). [0,1] by default; ±INFINITY turns
 *    clipping off (the elliptical-compat FGSM/PGD, elliptical.c).
 *  - sign(0) = 0, as torch.sign. */
#ifndef QB_ATTACKS_H
#define QB_ATTACKS_H
#include "qb.h"
#include "vit.h"
#include <string.h>

typedef enum { QB_NORM_LINF = 0, QB_NORM_L2 = 1 } qb_norm;
typedef enum {
    QB_LOSS_CE = 0,
    QB_LOSS_MARGIN = 1,
    QB_LOSS_DLR = 2,
    QB_LOSS_DLR_T = 3,
    QB_LOSS_TDIFF = 4 /* z_t − z_y (FAB-T's linearised boundary) */
} qb_loss;
typedef enum {
    QB_ATK_FGSM = 0, /* FGSM (L∞) or FGM (L2): one step of size ε */
    QB_ATK_PGD,      /* torchattacks PGD / PGDL2, restarts keep the first success */
    QB_ATK_APGD_CE,  /* AutoAttack APGD with cross-entropy */
    QB_ATK_APGD_T,   /* AutoAttack APGD-T: targeted DLR over the top non-true classes */
    QB_ATK_FAB_T,    /* targeted FAB, L∞ / L2 (AutoAttack fab_base.py, targeted) */
    QB_ATK_SQUARE,   /* Square L∞ / L2, margin loss, gradient-free */
    QB_ATK_COUNT
} qb_attack_kind;

const char *qb_attack_name(qb_attack_kind k);         /* "fgsm", "pgd", "apgd-ce", ... */
int qb_attack_parse(const char *s, qb_attack_kind *k); /* 0 or QB_EXIT_USAGE */
const char *qb_norm_name(qb_norm n);                   /* "linf" | "l2" */

typedef struct {
    qb_norm norm;
    float eps;         /* radius in the attack space (> 0) */
    float step;        /* PGD step α in the attack space; ≤ 0: ε/4 (L∞) or ε/5 (L2), torchattacks' ratios */
    int steps;         /* iterations (PGD, APGD, FAB) or queries (Square); ≤ 0: the attack's default */
    int restarts;      /* ≥ 1 */
    int random_start;  /* PGD only (APGD always starts at random, FGSM never) */
    uint64_t seed;
    float scale[3];    /* pixel δ per unit of attack-space δ, per channel (1 or std) */
    int n_targets;     /* APGD-T / FAB-T target classes; ≤ 0: 9 (clipped to K − 1) */
    float rho;         /* APGD checkpoint threshold; ≤ 0: 0.75 */
    float p_init;      /* Square; ≤ 0: 0.8 */
    float lo[3], hi[3]; /* pixel range per channel, [0,1] by default; ±INFINITY: no clipping */
} qb_attack_cfg;

/* A config with every field at its default: ≤ 0 fields (the attack's defaults), pixel space
 * (scale 1), range [0,1], L∞, no random start, seed 0. */
static inline void qb_attack_cfg_init(qb_attack_cfg *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 3; i++) c->scale[i] = 1.0f, c->lo[i] = 0.0f, c->hi[i] = 1.0f;
}

/* clip(v, lo, hi) as torch.clamp; with lo = 0, hi = 1 the same floats as the former clip01 */
static inline float qb_clipf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Defaults of one attack (steps, restarts) for a config whose fields are ≤ 0. */
int qb_attack_default_steps(qb_attack_kind k);

/* Workspace: buffers for up to `cap` images, allocated once. Counters accumulate over
 * calls (the sanity report). */
typedef struct {
    vit_model *m;
    int cap, K, S;
    size_t d;             /* 3·S·S */
    float *logits, *dlogits; /* (cap, K) */
    float *grad;          /* (cap, d) loss gradient w.r.t. pixels */
    float *buf[8];        /* (cap, d) scratch for the attacks */
    float *vec[8];        /* (cap) per-image scalars */
    int *ivec[8];         /* (cap) per-image ints */
    uint64_t *ids;        /* (cap) compacted image ids */
    double *dscratch;     /* APGD: (n_iter + 4, cap) losses, grown on demand */
    size_t dscratch_len;
    long zero_grad;       /* APGD runs (image x target x restart) whose start gradient was exactly zero
                           * (attacks.md §11.6); per image: ivec[7][i] = 1 after an APGD qb_attack_run
                           * for each input image i with such a start */
    long nonfinite;       /* NaN/Inf seen in logits or gradients */
    float *margin;        /* (cap) Square: each image's smallest margin of the last run (tests) */
    double *apgd_trace;   /* tests: when set, (n_iter + 1, 2) of the last APGD run's first image: row 0
                           * the loss at the start and the first step size, row i+1 the loss at
                           * iterate i+1 and the step size after iteration i's checkpoint */
} qb_attack_ws;

int qb_attack_ws_init(qb_attack_ws *ws, vit_model *m, int cap);
void qb_attack_ws_free(qb_attack_ws *ws);

/* Run one attack on n ≤ cap images; xadv receives the returned points. The caller
 * decides success with a fresh forward on xadv (attacks.md §11.4). Errors: QB_EXIT_USAGE
 * (bad config), QB_EXIT_DATA (label outside the classes), QB_EXIT_FAIL (non-finite values). */
int qb_attack_run(qb_attack_ws *ws, qb_attack_kind kind, const qb_attack_cfg *cfg, const float *x, const int *y,
                  const uint64_t *ids, int n, float *xadv);

/* ---- losses (losses.c) --------------------------------------------------------------- */
/* 0, or a qb_error for arguments a loss cannot take: y outside [0, K); K below what the loss
 * reads (MARGIN 2, DLR 3, DLR_T 4, TDIFF 2); for DLR_T and TDIFF a target t outside [0, K)
 * or equal to y (t is ignored by the untargeted losses). O(1). */
int qb_loss_check(qb_loss kind, int K, int y, int t);
/* Per-sample loss of one logit row (K classes, label y, target t for DLR_T and TDIFF) and,
 * when dz != NULL, its gradient w.r.t. the logits. CE and DLR are ascended; MARGIN (z_y −
 * max_{j≠y} z_j) is what Square minimises. Sorting for DLR: value descending, then index
 * ascending. Arguments qb_loss_check refuses give NAN (dz zeroed) and that error. */
double qb_loss_eval(qb_loss kind, const float *z, int K, int y, int t, float *dz);
int qb_argmax(const float *z, int K);                  /* first index of the maximum */
int qb_rank_class(const float *z, int K, int r);       /* index of the r-th largest logit (r ≥ 1) */

/* Forward + per-sample loss + input gradient for n images (one engine call).
 * t may be NULL (untargeted; DLR_T and TDIFF need it). grad may be NULL (forward only). Fills
 * ws->logits; loss (n) may be NULL. y may be NULL only when loss and grad are. Labels and
 * targets are checked (qb_loss_check, naming the image) before the forward. */
int qb_attack_loss_grad(qb_attack_ws *ws, const float *x, int n, const int *y, const int *t, qb_loss kind,
                        double *loss, float *grad);
/* Forward only: logits into ws->logits, predictions into pred (n). */
int qb_attack_predict(qb_attack_ws *ws, const float *x, int n, int *pred);

/* ---- building blocks exposed for tests ------------------------------------------------ */
/* Norm of a pixel-space δ measured in attack space (δ_c / s_c). */
double qb_attack_norm(qb_norm norm, const float *delta, size_t plane, const float scale[3]);
/* torchattacks PGD step from xt with gradient g: L∞ sign step / L2 normalised step, then
 * projection onto the ε-ball around x and clip to [0,1]. n images of d = 3·plane. */
void qb_pgd_step(const qb_attack_cfg *cfg, float step, const float *x, const float *xt, const float *g, int n,
                 size_t plane, float *xnext);
/* PGD random start for one image (stream keyed by seed, id, restart). */
void qb_pgd_random_start(const qb_attack_cfg *cfg, const float *x, uint64_t id, int restart, size_t plane,
                         float *x0);
/* FGSM/FGM from a gradient: L∞ clip(x + ε·s_c·sign g), L2 clip(x + ε·s·ĝ), clip to the range. */
void qb_fgsm_step(const qb_attack_cfg *cfg, const float *x, const float *g, int n, size_t plane, float *xadv);

/* APGD checkpoint schedule: the iteration counts (1-based, completed iterations) at which
 * the step size may be halved, for N iterations; returns how many (≤ cap written). */
int qb_apgd_checkpoints(int n_iter, int *out, int cap); /* out may be NULL: the count alone */
/* The halving decision at a checkpoint for one image: loss_steps[j] (j = 0..n_iter−1,
 * stride `stride` between iterations) with Python's wrap-around at index −1. */
int qb_apgd_should_halve(const double *loss_steps, int stride, int n_iter, int i, int k, double rho,
                         int reduced_last, double best_last, double best);
/* FAB's L∞ projection (fab_projections.projection_linf): the minimal-L∞ displacement d that
 * moves t onto {v : w·v = b} inside the box [lo_c, hi_c] (finite bounds; attack-space norm,
 * per-channel scale); scratch holds 3·plane pairs of floats. */
void qb_fab_project_linf(const float *t, const float *w, double b, size_t plane, const float scale[3],
                         const float lo[3], const float hi[3], float *d, void *scratch);
/* FAB's L2 projection (fab_projections.projection_l2): the minimal-L2 displacement onto the
 * hyperplane inside the box (attack-space norm), every coordinate to its bound when out of
 * reach; the same arguments. */
void qb_fab_project_l2(const float *t, const float *w, double b, size_t plane, const float scale[3],
                       const float lo[3], const float hi[3], float *d, void *scratch);
/* Square's window side at iteration `it` for an h×w image (p_init, no rescaling): L∞, and
 * L2 (at least 3, odd, at most the image side). */
int qb_square_side(int it, float p_init, int h, int w);
int qb_square_side_l2(int it, float p_init, int h, int w);
/* Square L2's pseudo-gaussian window (square.py eta): s×s, unit L2 norm, +mass on the top
 * half and −mass on the bottom half, transposed when `transpose`. */
void qb_square_eta(int s, int transpose, float *out);

/* ---- the Elliptical-Attention compatibility protocol (elliptical.c, attacks.md §10) ---- */
typedef enum {
    QB_ELL_ARTEFACT = 0, /* as the Elliptical code ran it: AutoAttack's range [μ_c, μ_c + σ_c] */
    QB_ELL_FIXED = 1     /* the corrected AutoAttack variant: range [0,1] */
} qb_ell_variant;
/* The config of attack k under elliptical-compat from `base` (eps, seed, steps/step as given
 * by the user: ≤ 0 means the protocol's value): ε in normalised units (scale = σ), FGSM one
 * unclipped sign step, PGD 20 unclipped steps of 0.15ε from a uniform start, APGD/FAB/Square
 * in the variant's range. *pred_labels: 1 where the protocol attacks the clean predictions
 * (fgsm, pgd), 0 for true labels. */
void qb_elliptical_cfg(qb_attack_kind k, qb_ell_variant v, const qb_attack_cfg *base, const float mean[3],
                       const float std[3], qb_attack_cfg *out, int *pred_labels);
/* Whether attack k under the protocol has two variants (the AutoAttack attacks) or one. */
int qb_elliptical_has_variants(qb_attack_kind k);

#endif
