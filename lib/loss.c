/* loss.c — softmax cross-entropy with label smoothing, fused forward and backward. */
#include "loss.h"
#include <math.h>

int crossentropy_forward_backward(float *loss_out, float *dlogits, double *mean_out, const float *logits,
                                  const int *labels, int B, int K, float smoothing, float scale) {
    if (B <= 0 || K <= 0) return qb_error(QB_EXIT_FAIL, "cross-entropy: batch %d and classes %d must be > 0", B, K);
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return qb_error(QB_EXIT_FAIL, "cross-entropy: label smoothing %g is outside [0, 1)", smoothing);
    for (int b = 0; b < B; b++) {
        if (labels[b] < 0 || labels[b] >= K)
            return qb_error(QB_EXIT_FAIL, "cross-entropy: label %d of sample %d is outside [0, %d)", labels[b], b, K);
        for (int k = 0; k < K; k++)
            if (!isfinite(logits[(size_t)b * K + k]))
                return qb_error(QB_EXIT_FAIL, "cross-entropy: non-finite logit (sample %d, class %d)", b, k);
    }
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        /* log-sum-exp in double: −log p_k = lse − z_k */
        double mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
        double lse = mx + log(s), mean_nll = 0.0;
        for (int k = 0; k < K; k++) mean_nll += lse - z[k];
        mean_nll /= K;
        double loss = (1.0 - smoothing) * (lse - z[labels[b]]) + smoothing * mean_nll;
        if (loss_out) loss_out[b] = (float)loss;
        total += loss;
        if (dlogits)
            for (int k = 0; k < K; k++) {
                double q = smoothing / K + (k == labels[b] ? 1.0 - smoothing : 0.0);
                dlogits[(size_t)b * K + k] = (float)((exp((double)z[k] - lse) - q) * scale);
            }
    }
    if (mean_out) *mean_out = total / B;
    return 0;
}
