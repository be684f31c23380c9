/* vit.c — the ViT model: config, parameter/activation arenas with named pointers,
 * forward and backward passes (engine.md §1, §2, §6). Kernels live in vit_ops.c. */
#include "vit.h"
#include "vit_ops.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------
 * config */

const char *vit_attn_name(vit_attn a) {
    switch (a) {
    case VIT_ATTN_SDPA: return "sdpa";
    case VIT_ATTN_QKNORM: return "qknorm";
    case VIT_ATTN_QUEST: return "quest";
    }
    return "?";
}

int vit_attn_parse(const char *s, vit_attn *out) {
    if (!strcmp(s, "sdpa") || !strcmp(s, "standard")) *out = VIT_ATTN_SDPA;
    else if (!strcmp(s, "qknorm")) *out = VIT_ATTN_QKNORM;
    else if (!strcmp(s, "quest")) *out = VIT_ATTN_QUEST;
    else return qb_error(QB_EXIT_USAGE, "unknown attention kind '%s' (expected sdpa, qknorm or quest)", s);
    return 0;
}

int vit_config_finish(vit_config *c) {
    if (c->in_chans != 3) return qb_error(QB_EXIT_MODEL, "in_chans is %d; only 3-channel models are supported", c->in_chans);
    if (c->patch <= 0 || c->img_size <= 0 || c->img_size % c->patch)
        return qb_error(QB_EXIT_MODEL, "image size %d is not a multiple of patch size %d", c->img_size, c->patch);
    if (c->dim <= 0 || c->depth <= 0 || c->mlp_dim <= 0 || c->classes <= 0)
        return qb_error(QB_EXIT_MODEL, "model dimensions must be positive (dim %d, depth %d, mlp %d, classes %d)",
                        c->dim, c->depth, c->mlp_dim, c->classes);
    if (c->heads <= 0 || c->dim % c->heads)
        return qb_error(QB_EXIT_MODEL, "%d heads do not divide width %d", c->heads, c->dim);
    c->grid = c->img_size / c->patch;
    c->n_patches = c->grid * c->grid;
    c->n_tokens = c->n_patches + (c->class_token ? 1 : 0);
    c->head_dim = c->dim / c->heads;
    if (!c->class_token && c->pool == VIT_POOL_TOKEN)
        return qb_error(QB_EXIT_MODEL, "token pooling needs a class token");
    if (!(c->norm_eps > 0)) c->norm_eps = 1e-6f;
    if (!(c->attn_scale > 0)) c->attn_scale = c->attn == VIT_ATTN_QUEST ? 1.0f : 1.0f / sqrtf((float)c->head_dim);
    if (!(c->quest_eps > 0)) c->quest_eps = 1e-6f;
    for (int i = 0; i < 3; i++)
        if (!(c->std[i] > 0)) return qb_error(QB_EXIT_MODEL, "normalisation std[%d] must be > 0", i);
    return 0;
}

double vit_forward_flops(const vit_config *c) {
    double N = c->n_tokens, D = c->dim, F = c->mlp_dim;
    double mac = c->n_patches * (double)c->in_chans * c->patch * c->patch * D +
                 c->depth * (N * D * 3 * D + 2 * N * N * D + N * D * D + 2 * N * D * F) + D * c->classes;
    return 2 * mac;
}

/* ----------------------------------------------------------------------------------------
 * parameters */

void vit_param_sizes(const vit_config *c, size_t s[VIT_PARAM_SLOTS]) {
    size_t D = c->dim, L = c->depth, F = c->mlp_dim, K = c->classes, N = c->n_tokens, hd = c->head_dim;
    size_t CPP = (size_t)c->in_chans * c->patch * c->patch;
    int qk = c->attn == VIT_ATTN_QKNORM;
    size_t i = 0;
    s[i++] = D * CPP;          /* patchw */
    s[i++] = D;                /* patchb */
    s[i++] = D;                /* cls */
    s[i++] = N * D;            /* pos */
    s[i++] = L * D;            /* ln1w */
    s[i++] = L * D;            /* ln1b */
    s[i++] = L * 3 * D * D;    /* qkvw */
    s[i++] = L * 3 * D;        /* qkvb */
    s[i++] = qk ? L * hd : 0;  /* qnw */
    s[i++] = qk ? L * hd : 0;  /* qnb */
    s[i++] = qk ? L * hd : 0;  /* knw */
    s[i++] = qk ? L * hd : 0;  /* knb */
    s[i++] = L * D * D;        /* projw */
    s[i++] = L * D;            /* projb */
    s[i++] = L * D;            /* ln2w */
    s[i++] = L * D;            /* ln2b */
    s[i++] = L * F * D;        /* fc1w */
    s[i++] = L * F;            /* fc1b */
    s[i++] = L * D * F;        /* fc2w */
    s[i++] = L * D;            /* fc2b */
    s[i++] = D;                /* lnfw */
    s[i++] = D;                /* lnfb */
    s[i++] = K * D;            /* headw */
    s[i++] = K;                /* headb */
}

float **vit_param_slot(vit_params *p, int i) { return (float **)p + i; }

static float *point_arena(float **slots, const size_t *sizes, int n, size_t *total_out) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    float *mem = qb_calloc(total ? total : 1, sizeof(float));
    if (!mem) return NULL;
    float *p = mem;
    for (int i = 0; i < n; i++) {
        slots[i] = p;
        p += sizes[i];
    }
    if (total_out) *total_out = total;
    return mem;
}

int vit_init(vit_model *m, const vit_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    vit_param_sizes(&m->cfg, m->param_sizes);
    m->params_mem = point_arena((float **)&m->params, m->param_sizes, VIT_PARAM_SLOTS, &m->num_params);
    return m->params_mem ? 0 : QB_EXIT_FAIL;
}

void vit_free(vit_model *m) {
    free(m->params_mem);
    free(m->acts_mem);
    free(m->grads_mem);
    free(m->dacts_mem);
    memset(m, 0, sizeof *m);
}

/* ----------------------------------------------------------------------------------------
 * activations: per-layer buffers either strided by layer (kept for backward) or shared */

enum { A_PATCHES, A_RES, A_LN1, A_LN1M, A_LN1R, A_QKV, A_QKSTAT, A_ATT, A_ATTY, A_RESMID, A_LN2, A_LN2M,
       A_LN2R, A_FCH, A_FCHG, A_POOLED, A_LNF, A_LNFM, A_LNFR, A_LOGITS, A_SCRATCH };

/* per-layer size of each activation, and whether it is indexed by layer */
static void act_layout(const vit_config *c, int B, vit_mode mode, int T, size_t per[VIT_ACT_SLOTS],
                       int layered[VIT_ACT_SLOTS]) {
    size_t N = c->n_tokens, D = c->dim, F = c->mlp_dim, H = c->heads;
    size_t BN = (size_t)B * N;
    memset(layered, 0, sizeof(int) * VIT_ACT_SLOTS);
    /* only the patch-embedding weight gradient reads patches again: other modes embed image by image */
    per[A_PATCHES] = (size_t)(mode == VIT_MODE_FULL ? B : 1) * c->n_patches * c->in_chans * c->patch * c->patch;
    per[A_RES] = BN * D;
    per[A_LN1] = BN * D;
    per[A_LN1M] = BN;
    per[A_LN1R] = BN;
    per[A_QKV] = BN * 3 * D;
    per[A_QKSTAT] = 4 * (size_t)B * H * N;
    per[A_ATT] = (size_t)B * H * N * N;
    per[A_ATTY] = BN * D;
    per[A_RESMID] = BN * D;
    per[A_LN2] = BN * D;
    per[A_LN2M] = BN;
    per[A_LN2R] = BN;
    per[A_FCH] = BN * F;
    per[A_FCHG] = BN * F;
    per[A_POOLED] = (size_t)B * D;
    per[A_LNF] = (size_t)B * D;
    per[A_LNFM] = B;
    per[A_LNFR] = B;
    per[A_LOGITS] = (size_t)B * c->classes;
    per[A_SCRATCH] = (size_t)T * attention_scratch_floats((int)N, c->head_dim);
    for (int i = 0; i < VIT_ACT_SLOTS; i++) per[i] = (per[i] + 15) & ~(size_t)15; /* keep 64-byte alignment */
}

static int acts_ensure(vit_model *m, int B, vit_mode mode) {
    int T = omp_get_max_threads();
    if (m->acts_mem && m->act_B == B && m->act_mode == mode && m->act_threads >= T) return 0;
    free(m->acts_mem);
    m->acts_mem = NULL;
    size_t per[VIT_ACT_SLOTS];
    int layered[VIT_ACT_SLOTS];
    act_layout(&m->cfg, B, mode, T, per, layered);
    /* what backward reads per layer (engine.md §1.8); the rest is shared scratch */
    int keep_input[] = {A_RES, A_LN1M, A_LN1R, A_QKV, A_QKSTAT, A_ATT, A_RESMID, A_LN2M, A_LN2R, A_FCH};
    int keep_full[] = {A_LN1, A_ATTY, A_LN2, A_FCHG};
    if (mode >= VIT_MODE_INPUT_GRAD)
        for (size_t i = 0; i < sizeof keep_input / sizeof *keep_input; i++) layered[keep_input[i]] = 1;
    if (mode == VIT_MODE_FULL)
        for (size_t i = 0; i < sizeof keep_full / sizeof *keep_full; i++) layered[keep_full[i]] = 1;
    size_t L = m->cfg.depth;
    /* res[L] is read by the pooling alone: input-gradient mode puts it in ln1's shared buffer
     * (free by then: the last block's qkv GEMM was its last reader; see act_at) */
    size_t res_layers = mode == VIT_MODE_INPUT_GRAD ? L : L + 1;
    for (int i = 0; i < VIT_ACT_SLOTS; i++) {
        size_t nl = layered[i] ? (i == A_RES ? res_layers : L) : (i == A_RES ? 2 : 1);
        m->act_sizes[i] = per[i] * nl;
        m->act_layer_stride[i] = layered[i] ? per[i] : 0;
    }
    /* without per-layer residuals, alternate two buffers: res[l] and res[l+1] */
    if (!layered[A_RES]) m->act_layer_stride[A_RES] = per[A_RES];
    size_t total = 0;
    m->acts_mem = point_arena((float **)&m->acts, m->act_sizes, VIT_ACT_SLOTS, &total);
    if (!m->acts_mem) return QB_EXIT_FAIL;
    m->acts_bytes = total * sizeof(float);
    m->act_B = B;
    m->act_mode = mode;
    m->act_threads = T;
    return 0;
}

/* pointer to layer l of activation slot i */
static inline float *act_at(vit_model *m, float *base, int slot, int l) {
    if (slot == A_RES && m->act_mode == VIT_MODE_INFER) return base + (size_t)(l & 1) * m->act_layer_stride[slot];
    if (slot == A_RES && m->act_mode == VIT_MODE_INPUT_GRAD && l == m->cfg.depth) return m->acts.ln1;
    return base + (size_t)l * m->act_layer_stride[slot];
}

/* ----------------------------------------------------------------------------------------
 * forward */

/* residual connection: y += x */
static void add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* Whether the last block computes the class token's row only after attention: when the head
 * reads that row alone ('token' pooling) and no weight gradient needs the other rows. */
static int last_block_cls_only(const vit_config *c, vit_mode mode) {
    return mode != VIT_MODE_FULL && c->class_token && c->pool == VIT_POOL_TOKEN;
}

/* the first image (of B, n floats each) holding a NaN or infinity, or -1: an exponent test on
 * the bits, which vectorises (an early-exit isfinite loop does not) */
static int first_nonfinite_image(const float *x, int B, size_t n) {
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * n;
        uint32_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, xb + i, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) return b;
    }
    return -1;
}

int vit_forward(vit_model *m, const float *x, int B, vit_mode mode, float *logits_out) {
    m->act_valid = 0; /* a failure below must not leave an older forward for vit_backward */
    if (B <= 0) return qb_error(QB_EXIT_FAIL, "vit_forward: batch size must be > 0 (got %d)", B);
    if (!x) return qb_error(QB_EXIT_FAIL, "vit_forward: no input");
    const size_t img_floats = (size_t)m->cfg.in_chans * m->cfg.img_size * m->cfg.img_size;
    int bad = first_nonfinite_image(x, B, img_floats);
    if (bad >= 0) return qb_error(QB_EXIT_FAIL, "vit_forward: image %d has a non-finite pixel (NaN or infinity)", bad);
    int rc = acts_ensure(m, B, mode);
    if (rc) return rc;
    const vit_config *c = &m->cfg;
    const int N = c->n_tokens, D = c->dim, F = c->mlp_dim, H = c->heads, hd = c->head_dim, K = c->classes;
    const int G = c->grid, P = c->patch, C = c->in_chans, CPP = C * P * P, Np = c->n_patches;
    const int cls = c->class_token ? 1 : 0, BN = B * N;
    vit_params *p = &m->params;
    vit_acts *a = &m->acts;
    /* GEMM tiles follow images (results independent of batch size and position: what
     * inference and attacks need) except in training mode, where whole-batch tiles are
     * faster and only thread-count invariance is kept */
    const int gN = mode == VIT_MODE_FULL ? 0 : N, gNp = mode == VIT_MODE_FULL ? 0 : Np, g1 = mode == VIT_MODE_FULL ? 0 : 1;

    /* input normalisation and patch embedding straight into the residual stream; full mode
     * keeps every image's patches (weight gradient), the others reuse one image's buffer */
    const int keep_patches = mode == VIT_MODE_FULL;
    float *res0 = act_at(m, a->res, A_RES, 0);
    if (keep_patches) im2col_normalize_forward(a->patches, x, c->mean, c->std, B, C, G, P);
    for (int b = 0; b < B; b++) {
        float *pt = a->patches + (keep_patches ? (size_t)b * Np * CPP : 0);
        if (!keep_patches) im2col_normalize_forward(pt, x + b * img_floats, c->mean, c->std, 1, C, G, P);
        matmul_forward(res0 + ((size_t)b * N + cls) * D, D, pt, p->patchw, p->patchb, Np, CPP, D, gNp);
    }
    tokens_forward(res0, p->cls, p->pos, B, N, D, cls);

    attention_dims ad = {B, N, D, H, hd, c->attn, c->attn_scale,
                         c->attn == VIT_ATTN_QUEST ? c->quest_eps : c->norm_eps};
    const int cls_only = last_block_cls_only(c, mode);
    for (int l = 0; l < c->depth; l++) {
        float *res = act_at(m, a->res, A_RES, l), *res_out = act_at(m, a->res, A_RES, l + 1);
        float *ln1 = act_at(m, a->ln1, A_LN1, l), *ln1m = act_at(m, a->ln1_mean, A_LN1M, l);
        float *ln1r = act_at(m, a->ln1_rstd, A_LN1R, l), *qkv = act_at(m, a->qkv, A_QKV, l);
        float *qks = act_at(m, a->qk_stat, A_QKSTAT, l), *att = act_at(m, a->att, A_ATT, l);
        float *atty = act_at(m, a->atty, A_ATTY, l), *res_mid = act_at(m, a->res_mid, A_RESMID, l);
        float *ln2 = act_at(m, a->ln2, A_LN2, l), *ln2m = act_at(m, a->ln2_mean, A_LN2M, l);
        float *ln2r = act_at(m, a->ln2_rstd, A_LN2R, l), *fch = act_at(m, a->fch, A_FCH, l);
        float *fchg = act_at(m, a->fch_gelu, A_FCHG, l);
        const float *l_ln1w = p->ln1w + (size_t)l * D, *l_ln1b = p->ln1b + (size_t)l * D;
        const float *l_qkvw = p->qkvw + (size_t)l * 3 * D * D, *l_qkvb = p->qkvb + (size_t)l * 3 * D;
        const float *l_projw = p->projw + (size_t)l * D * D, *l_projb = p->projb + (size_t)l * D;
        const float *l_ln2w = p->ln2w + (size_t)l * D, *l_ln2b = p->ln2b + (size_t)l * D;
        const float *l_fc1w = p->fc1w + (size_t)l * F * D, *l_fc1b = p->fc1b + (size_t)l * F;
        const float *l_fc2w = p->fc2w + (size_t)l * D * F, *l_fc2b = p->fc2b + (size_t)l * D;
        const float *l_qnw = NULL, *l_qnb = NULL, *l_knw = NULL, *l_knb = NULL;
        if (c->attn == VIT_ATTN_QKNORM) {
            l_qnw = p->qnw + (size_t)l * hd, l_qnb = p->qnb + (size_t)l * hd;
            l_knw = p->knw + (size_t)l * hd, l_knb = p->knb + (size_t)l * hd;
        }

        /* T = T + proj(MHA(LN1(T))) */
        layernorm_forward(ln1, ln1m, ln1r, res, l_ln1w, l_ln1b, BN, D, c->norm_eps);
        matmul_forward(qkv, 3 * D, ln1, l_qkvw, l_qkvb, BN, D, 3 * D, gN);
        attention_forward(atty, att, qks, qkv, l_qnw, l_qnb, l_knw, l_knb, a->scratch, &ad);
        if (l == c->depth - 1 && cls_only) {
            /* the head reads the class token alone: after attention, the last block computes its
             * row only (image b's at b·N·D; res_mid, ln2, fch, fch_gelu hold B compact rows) */
            const size_t ND = (size_t)N * D;
            for (int b = 0; b < B; b++) memcpy(res_mid + (size_t)b * D, l_projb, (size_t)D * sizeof(float));
            gemm_tiled(0, 1, B, D, D, 1.0f, atty, (int)ND, l_projw, D, 1.0f, res_mid, D, 1);
            for (int b = 0; b < B; b++)
                for (int i = 0; i < D; i++) res_mid[(size_t)b * D + i] += res[b * ND + i];
            layernorm_forward(ln2, ln2m, ln2r, res_mid, l_ln2w, l_ln2b, B, D, c->norm_eps);
            matmul_forward(fch, F, ln2, l_fc1w, l_fc1b, B, D, F, 1);
            gelu_forward(fchg, fch, (size_t)B * F);
            matmul_forward(res_out, (int)ND, fchg, l_fc2w, l_fc2b, B, F, D, 1);
            for (int b = 0; b < B; b++)
                for (int i = 0; i < D; i++) res_out[b * ND + i] += res_mid[(size_t)b * D + i];
            continue;
        }
        matmul_forward(res_mid, D, atty, l_projw, l_projb, BN, D, D, gN);
        add_inplace(res_mid, res, (size_t)BN * D);
        /* T = T + fc2(GELU(fc1(LN2(T)))) */
        layernorm_forward(ln2, ln2m, ln2r, res_mid, l_ln2w, l_ln2b, BN, D, c->norm_eps);
        matmul_forward(fch, F, ln2, l_fc1w, l_fc1b, BN, D, F, gN);
        gelu_forward(fchg, fch, (size_t)BN * F);
        matmul_forward(res_out, D, fchg, l_fc2w, l_fc2b, BN, F, D, gN);
        add_inplace(res_out, res_mid, (size_t)BN * D);
    }

    /* pool ('token': cls row; 'avg': mean of patch tokens), final norm, head */
    pool_forward(a->pooled, act_at(m, a->res, A_RES, c->depth), B, N, D, cls, c->pool == VIT_POOL_AVG);
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->pooled, p->lnfw, p->lnfb, B, D, c->norm_eps);
    matmul_forward(a->logits, K, a->lnf, p->headw, p->headb, B, D, K, g1);
    if (logits_out) memcpy(logits_out, a->logits, (size_t)B * K * sizeof(float));
    m->act_valid = 1;
    return 0;
}

/* ----------------------------------------------------------------------------------------
 * backward */

static int dacts_ensure(vit_model *m, int B) {
    if (m->dacts_mem && m->dacts_B == B) return 0;
    free(m->dacts_mem);
    const vit_config *c = &m->cfg;
    size_t BN = (size_t)B * c->n_tokens, D = c->dim, CPP = (size_t)c->in_chans * c->patch * c->patch;
    size_t sizes[VIT_GRAD_ACT_SLOTS] = {
        BN * D, BN * D, BN * 3 * D, BN * c->mlp_dim + (size_t)B * D /* + the class-token tail's (B, D) */,
        (size_t)B * c->n_patches * CPP,
        (size_t)B * c->in_chans * c->img_size * c->img_size, (size_t)B * D, (size_t)B * D,
        (size_t)B * c->heads * 4 * c->head_dim};
    m->dacts_mem = point_arena((float **)&m->dacts, sizes, VIT_GRAD_ACT_SLOTS, NULL);
    if (!m->dacts_mem) return QB_EXIT_FAIL;
    m->dacts_B = B;
    return 0;
}

int vit_zero_grad(vit_model *m) {
    if (!m->grads_mem) {
        m->grads_mem = point_arena((float **)&m->grads, m->param_sizes, VIT_PARAM_SLOTS, NULL);
        return m->grads_mem ? 0 : QB_EXIT_FAIL;
    }
    memset(m->grads_mem, 0, m->num_params * sizeof(float));
    return 0;
}

#define GRAD(field) (full ? m->grads.field : NULL)

int vit_backward(vit_model *m, const float *dlogits, float *dx) {
    if (!m->acts_mem || m->act_B <= 0 || !m->act_valid)
        return qb_error(QB_EXIT_FAIL, "vit_backward: no successful forward pass to go back through");
    if (m->act_mode < VIT_MODE_INPUT_GRAD)
        return qb_error(QB_EXIT_FAIL, "vit_backward: the forward pass ran in inference mode (no activations kept)");
    if (!dlogits) return qb_error(QB_EXIT_FAIL, "vit_backward: no gradient of the logits (dlogits is NULL)");
    /* attention indexes its scratch by thread number: more threads than the forward sized it
     * for would write past the arena */
    if (omp_get_max_threads() > m->act_threads)
        return qb_error(QB_EXIT_FAIL,
                        "vit_backward: %d OpenMP threads, but the forward pass sized its scratch for %d; "
                        "run the forward again at this thread count", omp_get_max_threads(), m->act_threads);
    const vit_config *c = &m->cfg;
    const int B = m->act_B, N = c->n_tokens, D = c->dim, F = c->mlp_dim, H = c->heads, hd = c->head_dim;
    const int K = c->classes, P = c->patch, C = c->in_chans, CPP = C * P * P, Np = c->n_patches;
    const int cls = c->class_token ? 1 : 0, BN = B * N;
    for (size_t i = 0; i < (size_t)B * K; i++)
        if (!isfinite(dlogits[i]))
            return qb_error(QB_EXIT_FAIL, "vit_backward: non-finite gradient of the logits (image %zu, class %zu)",
                            i / K, i % K);
    const int full = m->act_mode == VIT_MODE_FULL;
    const int gN = full ? 0 : N, gNp = full ? 0 : Np, g1 = full ? 0 : 1; /* tiling as in vit_forward */
    if (full && !m->grads_mem && vit_zero_grad(m)) return QB_EXIT_FAIL;
    if (dacts_ensure(m, B)) return QB_EXIT_FAIL;
    vit_params *p = &m->params;
    vit_acts *a = &m->acts;
    vit_grad_acts *d = &m->dacts;

    /* head, final norm, pooling */
    memset(d->dlnf, 0, (size_t)B * D * sizeof(float));
    matmul_backward(d->dlnf, GRAD(headw), GRAD(headb), dlogits, K, a->lnf, p->headw, B, D, K, g1);
    memset(d->dpooled, 0, (size_t)B * D * sizeof(float));
    layernorm_backward(d->dpooled, GRAD(lnfw), GRAD(lnfb), d->dlnf, a->pooled, a->lnf_mean, a->lnf_rstd, p->lnfw, B, D);
    pool_backward(d->dres, d->dpooled, B, N, D, cls, c->pool == VIT_POOL_AVG);

    attention_dims ad = {B, N, D, H, hd, c->attn, c->attn_scale,
                         c->attn == VIT_ATTN_QUEST ? c->quest_eps : c->norm_eps};
    const int cls_only = last_block_cls_only(c, m->act_mode);
    for (int l = c->depth - 1; l >= 0; l--) {
        float *res = act_at(m, a->res, A_RES, l), *ln1 = act_at(m, a->ln1, A_LN1, l);
        float *ln1m = act_at(m, a->ln1_mean, A_LN1M, l), *ln1r = act_at(m, a->ln1_rstd, A_LN1R, l);
        float *qkv = act_at(m, a->qkv, A_QKV, l), *qks = act_at(m, a->qk_stat, A_QKSTAT, l);
        float *att = act_at(m, a->att, A_ATT, l), *atty = act_at(m, a->atty, A_ATTY, l);
        float *res_mid = act_at(m, a->res_mid, A_RESMID, l), *ln2 = act_at(m, a->ln2, A_LN2, l);
        float *ln2m = act_at(m, a->ln2_mean, A_LN2M, l), *ln2r = act_at(m, a->ln2_rstd, A_LN2R, l);
        float *fch = act_at(m, a->fch, A_FCH, l), *fchg = act_at(m, a->fch_gelu, A_FCHG, l);
        size_t oD = (size_t)l * D, o3D = (size_t)l * 3 * D, oF = (size_t)l * F, ohd = (size_t)l * hd;
        const float *l_qnw = NULL, *l_qnb = NULL, *l_knw = NULL, *l_knb = NULL;
        if (c->attn == VIT_ATTN_QKNORM)
            l_qnw = p->qnw + ohd, l_qnb = p->qnb + ohd, l_knw = p->knw + ohd, l_knb = p->knb + ohd;

        if (l == c->depth - 1 && cls_only) {
            /* the forward's class-token-only tail (no weight gradients here): its gradient is
             * the class rows'; the other rows of dres are zero and stay so until attention */
            const size_t ND = (size_t)N * D;
            float *dmid = d->dfch + (size_t)BN * F; /* (B, D) past dfch's B·N·F (sized for it) */
            for (int b = 0; b < B; b++) memcpy(dmid + (size_t)b * D, d->dres + b * ND, (size_t)D * sizeof(float));
            memset(d->dfch, 0, (size_t)B * F * sizeof(float));
            matmul_backward(d->dfch, NULL, NULL, dmid, D, fchg, p->fc2w + oD * F, B, F, D, 1);
            gelu_backward(d->dfch, fch, d->dfch, (size_t)B * F);
            memset(d->dtmp, 0, (size_t)B * D * sizeof(float));
            matmul_backward(d->dtmp, NULL, NULL, d->dfch, F, ln2, p->fc1w + oF * D, B, D, F, 1);
            layernorm_backward(dmid, NULL, NULL, d->dtmp, res_mid, ln2m, ln2r, p->ln2w + oD, B, D);
            memset(d->dtmp, 0, (size_t)BN * D * sizeof(float));
            gemm_tiled(0, 0, B, D, D, 1.0f, dmid, D, p->projw + oD * D, D, 1.0f, d->dtmp, (int)ND, 1);
            for (int b = 0; b < B; b++) memcpy(d->dres + b * ND, dmid + (size_t)b * D, (size_t)D * sizeof(float));
        } else {
            /* MLP branch: res_out = res_mid + fc2(GELU(fc1(LN2(res_mid)))) */
            memset(d->dfch, 0, (size_t)BN * F * sizeof(float));
            matmul_backward(d->dfch, full ? m->grads.fc2w + oD * F : NULL, full ? m->grads.fc2b + oD : NULL, d->dres,
                            D, fchg, p->fc2w + oD * F, BN, F, D, gN);
            gelu_backward(d->dfch, fch, d->dfch, (size_t)BN * F);
            memset(d->dtmp, 0, (size_t)BN * D * sizeof(float));
            matmul_backward(d->dtmp, full ? m->grads.fc1w + oF * D : NULL, full ? m->grads.fc1b + oF : NULL, d->dfch,
                            F, ln2, p->fc1w + oF * D, BN, D, F, gN);
            layernorm_backward(d->dres, full ? m->grads.ln2w + oD : NULL, full ? m->grads.ln2b + oD : NULL, d->dtmp,
                               res_mid, ln2m, ln2r, p->ln2w + oD, BN, D);

            /* attention branch: res_mid = res + proj(MHA(LN1(res))) */
            memset(d->dtmp, 0, (size_t)BN * D * sizeof(float));
            matmul_backward(d->dtmp, full ? m->grads.projw + oD * D : NULL, full ? m->grads.projb + oD : NULL,
                            d->dres, D, atty, p->projw + oD * D, BN, D, D, gN);
        }
        int want_qn = full && c->attn == VIT_ATTN_QKNORM;
        attention_backward(d->dqkv, want_qn ? d->dqn : NULL, d->dtmp, qkv, att, qks, l_qnw, l_qnb, l_knw, l_knb,
                           a->scratch, &ad);
        if (want_qn) {
            /* reduce per-(b,h) partials in fixed order */
            float *gq[4] = {m->grads.qnw + ohd, m->grads.qnb + ohd, m->grads.knw + ohd, m->grads.knb + ohd};
            for (int bh = 0; bh < B * H; bh++)
                for (int s = 0; s < 4; s++)
                    for (int i = 0; i < hd; i++) gq[s][i] += d->dqn[((size_t)bh * 4 + s) * hd + i];
        }
        memset(d->dtmp, 0, (size_t)BN * D * sizeof(float));
        matmul_backward(d->dtmp, full ? m->grads.qkvw + o3D * D : NULL,
                        full && c->qkv_bias ? m->grads.qkvb + o3D : NULL, d->dqkv, 3 * D, ln1,
                        p->qkvw + o3D * D, BN, D, 3 * D, gN);
        layernorm_backward(d->dres, full ? m->grads.ln1w + oD : NULL, full ? m->grads.ln1b + oD : NULL, d->dtmp, res,
                           ln1m, ln1r, p->ln1w + oD, BN, D);
    }

    /* embeddings: T0 = [cls; patch_embed(x)] + pos; the patch GEMM's input side only when dx
     * is wanted (training needs the weight side alone) */
    if (full) tokens_backward(m->grads.cls, m->grads.pos, d->dres, B, N, D, cls);
    if (dx) memset(d->dpatches, 0, (size_t)B * Np * CPP * sizeof(float));
    if (full || dx)
        for (int b = 0; b < B; b++)
            matmul_backward(dx ? d->dpatches + (size_t)b * Np * CPP : NULL, GRAD(patchw), GRAD(patchb),
                            d->dres + ((size_t)b * N + cls) * D, D, full ? a->patches + (size_t)b * Np * CPP : NULL,
                            p->patchw, Np, CPP, D, gNp);
    if (dx) {
        im2col_backward(d->dxn, d->dpatches, B, C, c->grid, P);
        normalize_backward(dx, d->dxn, c->std, B, C, c->img_size * c->img_size);
    }
    return 0;
}
