/* train.c — the training side of the engine (engine.md §5), llm.c style: the learning-rate
 * schedule, timm initialisation, the AdamW update over the flat parameter arena with a
 * per-slot weight-decay table, the global gradient norm and clipping, and per-layer attention
 * statistics read from the activations the FULL forward keeps. Forward/backward pairs live in
 * vit_ops.c and vit.c; this file only reads them. */
#include "train.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------
 * learning-rate schedule (timm CosineLRScheduler, cycle_limit 1, k_decay 1, warmup_prefix False) */

double qb_cosine_lr(double t, double lr, double min_lr, double warmup_lr, double warmup, double total) {
    if (t < warmup) return warmup_lr + t * (lr - warmup_lr) / warmup;
    if (t >= total) return min_lr;
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + cos(M_PI * t / total));
}

double qb_train_lr(const qb_train_config *c, long step, long steps_per_epoch) {
    if (c->per_epoch_schedule) {
        /* the scheduler is stepped after each epoch with step(epoch): epoch 0 runs at the
         * constructor's warmup_lr, epoch e ≥ 1 at η(e − 1) */
        long e = step / steps_per_epoch;
        if (e == 0) return c->warmup_epochs > 0 ? c->warmup_lr : c->lr;
        return qb_cosine_lr((double)(e - 1), c->lr, c->min_lr, c->warmup_lr, c->warmup_epochs, c->epochs);
    }
    /* per iteration (timm step_update): the update after `step` updates runs at η(step) */
    return qb_cosine_lr((double)step, c->lr, c->min_lr, c->warmup_lr, c->warmup_epochs * steps_per_epoch,
                        (double)c->epochs * steps_per_epoch);
}

/* ----------------------------------------------------------------------------------------
 * initialisation (timm VisionTransformer.init_weights, HEAD, mode '') */

double qb_trunc_normal(qb_rng *r, double std, double a, double b) {
    for (;;) {
        double x = std * qb_rng_normal(r);
        if (x >= a && x <= b) return x;
    }
}

/* slot indices in vit_params declaration order */
enum { P_PATCHW, P_PATCHB, P_CLS, P_POS, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_QNW, P_QNB, P_KNW, P_KNB, P_PROJW,
       P_PROJB, P_LN2W, P_LN2B, P_FC1W, P_FC1B, P_FC2W, P_FC2B, P_LNFW, P_LNFB, P_HEADW, P_HEADB };

int qb_param_slot_decays(int slot) {
    return slot == P_PATCHW || slot == P_QKVW || slot == P_PROJW || slot == P_FC1W || slot == P_FC2W ||
           slot == P_HEADW;
}

void qb_vit_init_timm(vit_model *m, uint64_t seed) {
    static const char *names[VIT_PARAM_SLOTS] = {
        "patchw", "patchb", "cls", "pos", "ln1w", "ln1b", "qkvw", "qkvb", "qnw", "qnb", "knw", "knb",
        "projw", "projb", "ln2w", "ln2b", "fc1w", "fc1b", "fc2w", "fc2b", "lnfw", "lnfb", "headw", "headb"};
    const vit_config *c = &m->cfg;
    double bound = 1.0 / sqrt((double)c->in_chans * c->patch * c->patch); /* kaiming_uniform(a=√5), fan_in */
    for (int s = 0; s < VIT_PARAM_SLOTS; s++) {
        float *p = *vit_param_slot(&m->params, s);
        size_t n = m->param_sizes[s];
        qb_rng r = qb_rng_stream(seed, qb_image_id(names[s]), "init");
        for (size_t i = 0; i < n; i++) {
            double x = 0.0;
            switch (s) {
            case P_PATCHW: case P_PATCHB: x = (2.0 * qb_rng_uniform(&r) - 1.0) * bound; break;
            case P_CLS: x = 1e-6 * qb_rng_normal(&r); break;
            case P_POS: case P_QKVW: case P_PROJW: case P_FC1W: case P_FC2W: case P_HEADW:
                x = qb_trunc_normal(&r, 0.02, -2.0, 2.0);
                break;
            case P_LN1W: case P_LN2W: case P_QNW: case P_KNW: case P_LNFW: x = 1.0; break;
            default: x = 0.0; /* biases, norm biases */
            }
            p[i] = (float)x;
        }
    }
}

/* ----------------------------------------------------------------------------------------
 * AdamW (torch.optim.AdamW, _single_tensor_adamw, PyTorch 1.13) */

void adamw_update(float *param, const float *grad, float *m, float *v, size_t n, double lr, double beta1,
                  double beta2, double eps, double weight_decay, long t) {
    /* the scalars as PyTorch hands them to its float kernels */
    const float decay = (float)(1.0 - lr * weight_decay);
    const float b1 = (float)beta1, a1 = (float)(1.0 - beta1), b2 = (float)beta2, a2 = (float)(1.0 - beta2);
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    const float step_size = (float)(-(lr / bc1)), bc2_sqrt = (float)sqrt(bc2), feps = (float)eps;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float p = param[i] * decay;                   /* param.mul_(1 - lr*wd) */
        float mi = fmaf(g, a1, m[i] * b1);            /* exp_avg.mul_(β1).add_(g, alpha=1-β1): fmadd */
        float vi = v[i] * b2 + a2 * g * g;            /* exp_avg_sq.mul_(β2).addcmul_(g, g, value=1-β2) */
        float denom = sqrtf(vi) / bc2_sqrt + feps;    /* (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps) */
        param[i] = p + step_size * mi / denom;        /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        m[i] = mi;
        v[i] = vi;
    }
}

int qb_adamw_init(qb_adamw *o, size_t num_params) {
    memset(o, 0, sizeof *o);
    o->m = qb_calloc(num_params ? num_params : 1, sizeof(float));
    o->v = qb_calloc(num_params ? num_params : 1, sizeof(float));
    if (!o->m || !o->v) {
        qb_adamw_free(o);
        return QB_EXIT_FAIL;
    }
    return 0;
}

void qb_adamw_free(qb_adamw *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void qb_adamw_step(qb_adamw *o, vit_model *m, double lr, const qb_train_config *c) {
    long t = ++o->step;
    size_t off = 0;
    for (int s = 0; s < VIT_PARAM_SLOTS; s++) {
        size_t n = m->param_sizes[s];
        if (n) {
            double wd = qb_param_slot_decays(s) ? c->weight_decay : 0.0;
            adamw_update(m->params_mem + off, m->grads_mem + off, o->m + off, o->v + off, n, lr, c->beta1,
                         c->beta2, c->adam_eps, wd, t);
        }
        off += n;
    }
}

/* ----------------------------------------------------------------------------------------
 * gradient norm and clipping */

double qb_grad_norm(const vit_model *m) {
    /* fixed chunks summed in order: the same value at any thread count */
    const size_t n = m->num_params, chunk = 4096, nc = (n + chunk - 1) / chunk;
    double *part = malloc((nc ? nc : 1) * sizeof(double));
    if (!part) return NAN;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nc; c++) {
        double s = 0.0;
        size_t e = (c + 1) * chunk < n ? (c + 1) * chunk : n;
        for (size_t i = c * chunk; i < e; i++) s += (double)m->grads_mem[i] * m->grads_mem[i];
        part[c] = s;
    }
    double s = 0.0;
    for (size_t c = 0; c < nc; c++) s += part[c];
    free(part);
    return sqrt(s);
}

void qb_clip_grads(vit_model *m, double norm, double max_norm) {
    double coef = max_norm / (norm + 1e-6);
    if (!(coef < 1.0)) return;
    const float f = (float)coef;
    float *g = m->grads_mem;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m->num_params; i++) g[i] *= f;
}

/* ----------------------------------------------------------------------------------------
 * per-layer attention statistics */

/* LayerNorm of one head vector (qknorm's q_norm/k_norm), as the model computes it */
static void headnorm(float *dst, const float *x, const float *w, const float *b, int hd, float eps) {
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < hd; i++) s += x[i];
    float mean = (float)(s / hd);
    for (int i = 0; i < hd; i++) ss += (double)(x[i] - mean) * (x[i] - mean);
    float rstd = 1.0f / sqrtf((float)(ss / hd) + eps);
    for (int i = 0; i < hd; i++) dst[i] = (x[i] - mean) * rstd * w[i] + b[i];
}

static double vnorm(const float *x, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

int qb_layer_stats(vit_model *m, int B_stats, double *out) {
    const vit_config *c = &m->cfg;
    if (!m->acts_mem || m->act_mode != VIT_MODE_FULL)
        return qb_error(QB_EXIT_FAIL, "layer statistics: no FULL forward pass to read");
    const int B = B_stats < m->act_B ? B_stats : m->act_B, N = c->n_tokens, D = c->dim, H = c->heads;
    const int hd = c->head_dim, L = c->depth;
    const size_t qkv_slot = offsetof(vit_acts, qkv) / sizeof(float *), att_slot = offsetof(vit_acts, att) / sizeof(float *);
    const int BH = B * H;
    /* per (b,h): qsum qmax ksum kmax logitmax entsum; reduced in fixed order afterwards */
    double *part = malloc((size_t)BH * 6 * sizeof(double));
    float *tmp = malloc((size_t)omp_get_max_threads() * 2 * N * hd * sizeof(float));
    if (!part || !tmp) {
        free(part), free(tmp);
        return qb_error(QB_EXIT_FAIL, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        const float *qkv = m->acts.qkv + (size_t)l * m->act_layer_stride[qkv_slot];
        const float *att = m->acts.att + (size_t)l * m->act_layer_stride[att_slot];
        const float *qnw = NULL, *qnb = NULL, *knw = NULL, *knb = NULL;
        if (c->attn == VIT_ATTN_QKNORM)
            qnw = m->params.qnw + (size_t)l * hd, qnb = m->params.qnb + (size_t)l * hd,
            knw = m->params.knw + (size_t)l * hd, knb = m->params.knb + (size_t)l * hd;
#pragma omp parallel for schedule(static)
        for (int bh = 0; bh < BH; bh++) {
            int b = bh / H, h = bh % H;
            float *qa = tmp + (size_t)omp_get_thread_num() * 2 * N * hd, *ka = qa + (size_t)N * hd;
            double qs = 0, qm = 0, ks = 0, km = 0, lm = -INFINITY, ent = 0;
            for (int n = 0; n < N; n++) {
                const float *q = qkv + ((size_t)b * N + n) * 3 * D + (size_t)h * hd, *k = q + D;
                double nq = vnorm(q, hd), nk = vnorm(k, hd);
                qs += nq, ks += nk;
                qm = nq > qm ? nq : qm;
                km = nk > km ? nk : km;
                if (c->attn == VIT_ATTN_QKNORM) {
                    headnorm(qa + (size_t)n * hd, q, qnw, qnb, hd, c->norm_eps);
                    headnorm(ka + (size_t)n * hd, k, knw, knb, hd, c->norm_eps);
                } else {
                    float kn = (float)nk, r = kn > c->quest_eps ? kn : c->quest_eps;
                    for (int i = 0; i < hd; i++) {
                        qa[(size_t)n * hd + i] = q[i];
                        ka[(size_t)n * hd + i] = c->attn == VIT_ATTN_QUEST ? k[i] / r : k[i];
                    }
                }
            }
            for (int i = 0; i < N; i++)
                for (int j = 0; j < N; j++) {
                    float s = 0.0f;
                    for (int t = 0; t < hd; t++) s += qa[(size_t)i * hd + t] * ka[(size_t)j * hd + t];
                    double lg = (double)c->attn_scale * s;
                    lm = lg > lm ? lg : lm;
                }
            const float *P = att + (size_t)(b * H + h) * N * N;
            for (size_t i = 0; i < (size_t)N * N; i++)
                if (P[i] > 0.0f) ent -= (double)P[i] * log((double)P[i]);
            double *o = part + (size_t)bh * 6;
            o[0] = qs, o[1] = qm, o[2] = ks, o[3] = km, o[4] = lm, o[5] = ent;
        }
        double qs = 0, qm = 0, ks = 0, km = 0, lm = -INFINITY, ent = 0;
        for (int bh = 0; bh < BH; bh++) {
            const double *o = part + (size_t)bh * 6;
            qs += o[0], ks += o[2], ent += o[5];
            qm = o[1] > qm ? o[1] : qm;
            km = o[3] > km ? o[3] : km;
            lm = o[4] > lm ? o[4] : lm;
        }
        double *r = out + (size_t)l * QB_LAYER_STATS;
        r[0] = qs / ((double)BH * N), r[1] = qm, r[2] = ks / ((double)BH * N), r[3] = km, r[4] = lm;
        r[5] = ent / ((double)BH * N);
    }
    free(part);
    free(tmp);
    return 0;
}
