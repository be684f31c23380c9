/* loss.h — losses on logits that produce dL/dlogits for vit_backward (engine.md §2.5, §5.1). */
#ifndef QB_LOSS_H
#define QB_LOSS_H
#include "qb.h"

/* Softmax cross-entropy with label smoothing ε (PyTorch F.cross_entropy(label_smoothing=ε)):
 * q_k = ε/K + (1−ε)[k = y], ℓ_b = −Σ_k q_k log p_k. logits (B, K), labels (B).
 * loss_out (B) per-sample losses (may be NULL); dlogits (B, K) = (p − q)·scale, where scale is
 * 1/B for the batch mean (training) or 1 for per-sample sums (attacks). Returns the mean loss
 * in *mean_out (may be NULL). Errors: B ≤ 0, a label outside [0, K), ε outside [0, 1),
 * non-finite logits → QB_EXIT_FAIL with a message naming the sample. */
int crossentropy_forward_backward(float *loss_out, float *dlogits, double *mean_out, const float *logits,
                                  const int *labels, int B, int K, float smoothing, float scale);

#endif
