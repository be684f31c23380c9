/* vit.h — a timm VisionTransformer on the CPU: config, parameter and activation arenas,
 * forward and backward. Spec: engine.md §1, §2, §6.
 *
 * Dimension letters used everywhere: B batch, N tokens (Np patches + cls), D width, H heads,
 * hd = D/H, F MLP width, K classes, L depth, C·P·P patch vector length (C = 3 channels). */
#ifndef QB_VIT_H
#define QB_VIT_H
#include "qb.h"

typedef enum { VIT_ATTN_SDPA = 0, VIT_ATTN_QKNORM = 1, VIT_ATTN_QUEST = 2 } vit_attn;
typedef enum { VIT_POOL_TOKEN = 0, VIT_POOL_AVG = 1 } vit_pool;

typedef struct {
    int img_size;     /* S: input side in pixels */
    int patch;        /* P */
    int in_chans;     /* C (3) */
    int grid;         /* G = S/P */
    int n_patches;    /* Np = G*G */
    int n_tokens;     /* N = Np + class_token */
    int dim;          /* D */
    int depth;        /* L */
    int heads;        /* H */
    int head_dim;     /* hd = D/H */
    int mlp_dim;      /* F */
    int classes;      /* K */
    int class_token;  /* 1: a cls token is prepended (and pos_embed covers it) */
    int qkv_bias;     /* 1: qkv has a bias (timm default) */
    vit_pool pool;
    vit_attn attn;
    float norm_eps;   /* LayerNorm eps (1e-6), also q_norm/k_norm */
    float attn_scale; /* logit scale: 1/sqrt(hd) for sdpa/qknorm, 1 for quest */
    float quest_eps;  /* k̂ = k / max(|k|, quest_eps) */
    float mean[3], std[3]; /* input normalisation applied inside the model (input is [0,1] pixels) */
} vit_config;

const char *vit_attn_name(vit_attn a);
int vit_attn_parse(const char *s, vit_attn *out); /* "sdpa"|"qknorm"|"quest"; 0 or QB_EXIT_USAGE */
/* Fill derived fields (grid, tokens, head_dim, default scale) and validate; QB_EXIT_MODEL on nonsense. */
int vit_config_finish(vit_config *c);

/* Floating-point operations (2 per multiply-add) of one image's forward pass, the matrix
 * products only (engine.md §1.5); a forward + input-gradient pass is counted as twice this. */
double vit_forward_flops(const vit_config *c);

/* Parameters: one flat arena, named pointers into it (timm key in the comment). */
typedef struct {
    float *patchw; /* (D, C*P*P)  patch_embed.proj.weight */
    float *patchb; /* (D)         patch_embed.proj.bias */
    float *cls;    /* (D)         cls_token (unused without class token) */
    float *pos;    /* (N, D)      pos_embed */
    float *ln1w;   /* (L, D)      blocks.l.norm1.weight */
    float *ln1b;   /* (L, D) */
    float *qkvw;   /* (L, 3D, D)  blocks.l.attn.qkv.weight */
    float *qkvb;   /* (L, 3D)     zeros when qkv_bias = 0 */
    float *qnw;    /* (L, hd)     blocks.l.attn.q_norm.weight (qknorm only) */
    float *qnb;    /* (L, hd) */
    float *knw;    /* (L, hd)     blocks.l.attn.k_norm.weight (qknorm only) */
    float *knb;    /* (L, hd) */
    float *projw;  /* (L, D, D)   blocks.l.attn.proj.weight */
    float *projb;  /* (L, D) */
    float *ln2w;   /* (L, D)      blocks.l.norm2.weight */
    float *ln2b;   /* (L, D) */
    float *fc1w;   /* (L, F, D)   blocks.l.mlp.fc1.weight */
    float *fc1b;   /* (L, F) */
    float *fc2w;   /* (L, D, F)   blocks.l.mlp.fc2.weight */
    float *fc2b;   /* (L, D) */
    float *lnfw;   /* (D)         norm.weight ('token') or fc_norm.weight ('avg') */
    float *lnfb;   /* (D) */
    float *headw;  /* (K, D)      head.weight */
    float *headb;  /* (K)         head.bias */
} vit_params;
#define VIT_PARAM_SLOTS 24

void vit_param_sizes(const vit_config *c, size_t sizes[VIT_PARAM_SLOTS]);
float **vit_param_slot(vit_params *p, int i); /* i-th pointer field in declaration order */

/* What the activation arena keeps per layer. */
typedef enum {
    VIT_MODE_INFER = 0,     /* forward only: one layer's buffers, reused */
    VIT_MODE_INPUT_GRAD = 1,/* keep what the input gradient needs, no weight gradients */
    VIT_MODE_FULL = 2,      /* keep everything: weight and input gradients */
} vit_mode;

typedef struct {
    float *patches;   /* (B, Np, CPP)   im2col of the normalised input; full mode only keeps
                       * every image's (weight gradient), other modes one image's, reused */
    float *res;       /* (L+1, B, N, D) residual stream entering block l; [L] = after last block
                       * (inference and input-gradient modes with 'token' pooling: the last block
                       * computes only the class-token rows after attention, so [L] holds those,
                       * and its res_mid, ln2(+stats), fch, fch_gelu hold B compact rows).
                       * Input-gradient mode keeps L of them: [L] lives in ln1's shared buffer
                       * (backward reads pooled, never [L]) */
    float *ln1;       /* (L, B, N, D)   norm1 output */
    float *ln1_mean;  /* (L, B, N) */
    float *ln1_rstd;  /* (L, B, N) */
    float *qkv;       /* (L, B, N, 3D)  raw q,k,v */
    float *qk_stat;   /* (L, 4, B, H, N) qknorm: q mean, q rstd, k mean, k rstd; quest: k norm in slot 2 */
    float *att;       /* (L, B, H, N, N) softmax probabilities */
    float *atty;      /* (L, B, N, D)   concatenated head outputs (proj input) */
    float *res_mid;   /* (L, B, N, D)   residual after attention (norm2 input) */
    float *ln2;       /* (L, B, N, D)   norm2 output */
    float *ln2_mean;  /* (L, B, N) */
    float *ln2_rstd;  /* (L, B, N) */
    float *fch;       /* (L, B, N, F)   fc1 output, pre-GELU */
    float *fch_gelu;  /* (L, B, N, F)   GELU output */
    float *pooled;    /* (B, D)         'token': res[L][:,0,:]; 'avg': mean of patch tokens */
    float *lnf;       /* (B, D)         final norm (norm or fc_norm) of pooled */
    float *lnf_mean;  /* (B) */
    float *lnf_rstd;  /* (B) */
    float *logits;    /* (B, K) */
    float *scratch;   /* (T, N*N + 4*N*hd) per-thread per-head working space */
} vit_acts;
#define VIT_ACT_SLOTS 21

/* Activation gradients for one layer at a time (backward walks the layers down). */
typedef struct {
    float *dres;      /* (B, N, D)   gradient of the residual stream */
    float *dtmp;      /* (B, N, D)   gradient of a norm output or of the proj input */
    float *dqkv;      /* (B, N, 3D) */
    float *dfch;      /* (B, N, F) */
    float *dpatches;  /* (B, Np, CPP) */
    float *dxn;       /* (B, C, S, S) gradient w.r.t. the normalised input */
    float *dpooled;   /* (B, D) */
    float *dlnf;      /* (B, D) */
    float *dqn;       /* (B*H, 4, hd) per-(b,h) partial sums for q_norm/k_norm gradients */
} vit_grad_acts;
#define VIT_GRAD_ACT_SLOTS 9

typedef struct {
    vit_config cfg;
    vit_params params;
    float *params_mem;
    size_t num_params;
    size_t param_sizes[VIT_PARAM_SLOTS];
    /* activations, sized at first use for (B, mode) */
    vit_acts acts;
    float *acts_mem;
    size_t act_layer_stride[VIT_ACT_SLOTS]; /* floats between layers; 0 = shared by all layers */
    size_t act_sizes[VIT_ACT_SLOTS];
    int act_B;
    vit_mode act_mode;
    int act_threads;  /* attention scratch is sized for this many threads */
    int act_valid;    /* 1 after a successful vit_forward; cleared when one starts */
    size_t acts_bytes;
    /* gradients (lazily allocated at the first backward) */
    vit_params grads;
    float *grads_mem;
    vit_grad_acts dacts; /* activation gradients: one layer's worth, reused going backward */
    float *dacts_mem;
    int dacts_B;
} vit_model;

/* Allocate a model with zeroed parameters for `cfg` (after vit_config_finish). */
int vit_init(vit_model *m, const vit_config *cfg);
void vit_free(vit_model *m);

/* Forward: x is (B, C, S, S) pixels in [0,1]; logits_out (B, K) may be NULL (then read
 * m->acts.logits). Allocates activations on first use or when B/mode grow. A non-finite
 * pixel is an error naming the image. Any failure leaves no activations to go back through. */
int vit_forward(vit_model *m, const float *x, int B, vit_mode mode, float *logits_out);

/* Backward from dlogits (B, K) after a successful vit_forward in mode ≥ INPUT_GRAD, at no more
 * OpenMP threads than that forward ran with (its scratch is sized for them; more is an error).
 * dx (B, C, S, S) receives dL/dx in pixel space (assigned, not accumulated) when non-NULL.
 * In VIT_MODE_FULL the parameter gradients accumulate into m->grads (zero them with
 * vit_zero_grad); with dx NULL the input-side work of the patch embedding is skipped. */
int vit_backward(vit_model *m, const float *dlogits, float *dx);
int vit_zero_grad(vit_model *m);

#endif
