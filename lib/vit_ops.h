/* vit_ops.h — the ViT's layer kernels, each `_forward` beside its `_backward`
 * (engine.md §2). Outputs first, inputs next, dims last. Backward kernels accumulate
 * (+=) into parameter gradients; a NULL parameter-gradient pointer skips that work
 * (input-gradient mode). Reductions over rows run in a fixed order, so results do not
 * depend on the thread count. */
#ifndef QB_VIT_OPS_H
#define QB_VIT_OPS_H
#include <stddef.h>

/* xn = (x - mean_c) / std_c on (B, C, HW); float32 division as torchvision does. */
void normalize_forward(float *xn, const float *x, const float *mean, const float *std, int B, int C, int HW);
/* dx = dxn / std_c (assigns). */
void normalize_backward(float *dx, const float *dxn, const float *std, int B, int C, int HW);

/* im2col for a stride-P, kernel-P convolution: patches (B, G*G, C*P*P) from img (B, C, G*P, G*P). */
void im2col_forward(float *patches, const float *img, int B, int C, int G, int P);
/* col2im (a pure permutation since patches do not overlap): assigns dimg. */
void im2col_backward(float *dimg, const float *dpatches, int B, int C, int G, int P);
/* im2col of the normalised image in one pass: patches = im2col((img − mean_c) / std_c), the
 * same float operations as normalize_forward then im2col_forward (so no (B, C, S, S) copy of
 * the normalised input is needed); the backward is im2col_backward then normalize_backward. */
void im2col_normalize_forward(float *patches, const float *img, const float *mean, const float *std, int B, int C,
                              int G, int P);

/* Token sequence: t (B, N, D) holds the patch embeddings in rows [cls, N); this writes row 0 =
 * cls_tok when cls, then t[b] += pos (N, D) (timm _pos_embed, engine.md §1.2 step 2). */
void tokens_forward(float *t, const float *cls_tok, const float *pos, int B, int N, int D, int cls);
/* dpos (N, D) += Σ_b dt[b];  dcls (D) += Σ_b dt[b, 0] when cls (either may be NULL). */
void tokens_backward(float *dcls, float *dpos, const float *dt, int B, int N, int D, int cls);

/* Pooling of t (B, N, D) into pooled (B, D): avg = 0: the class token's row 0 ('token');
 * avg = 1: the mean of rows [cls, N), the patch tokens (engine.md §1.6). */
void pool_forward(float *pooled, const float *t, int B, int N, int D, int cls, int avg);
/* dt (B, N, D) = the pooling's gradient (assigns every row; rows it does not read get 0). */
void pool_backward(float *dt, const float *dpooled, int B, int N, int D, int cls, int avg);

/* C (M,N) = alpha·op(A)·op(B) + beta·C, tiles in parallel, one BLAS thread per tile: results
 * do not depend on the thread count. row_group > 0: C's rows come in groups of that many
 * (one image each) and tiles follow the groups, so an image's rows get the same result at
 * any batch size and position; 0: tiling by shape only (weight gradients). */
void gemm_tiled(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                int ldb, float beta, float *C, int ldc, int row_group);

/* out (M, OUT) = inp (M, IN) · w (OUT, IN)ᵀ + b (OUT, may be NULL); rows of out are ldo apart;
 * the M rows are images of rows_per_image rows each (see gemm_tiled). */
void matmul_forward(float *out, int ldo, const float *inp, const float *w, const float *b, int M, int IN, int OUT,
                    int rows_per_image);
/* dinp (M, IN) += dout · w (if dinp); dw (OUT, IN) += doutᵀ · inp (if dw); db (OUT) += Σ_rows dout (if db). */
void matmul_backward(float *dinp, float *dw, float *db, const float *dout, int lddo, const float *inp,
                     const float *w, int M, int IN, int OUT, int rows_per_image);
/* The naive triple loop the BLAS path is tested against (double accumulation). */
void matmul_forward_naive(float *out, int ldo, const float *inp, const float *w, const float *b, int M, int IN, int OUT);

/* LayerNorm over the last dim D of `rows` rows (rows are ld apart in inp and out). */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int rows, int D, float eps);
/* dinp (rows, D) += LN backward; dw, db (D) += (may be NULL). */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *w, int rows, int D);

/* Exact (erf) GELU, elementwise on n values. */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp = dout ⊙ gelu'(inp) (assigns; dinp may alias dout). */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Row softmax in place on (rows, n). */
void softmax_rows_forward(float *x, int rows, int n);

/* Multi-head attention core on one batch (B images):
 *   qkv (B, N, 3D) holds q,k,v laid out [3, H, hd];
 *   out (B, N, D) head outputs concatenated (proj input);
 *   att (B, H, N, N) softmax probabilities (kept for backward);
 *   stat (4, B, H, N): qknorm: q mean, q rstd, k mean, k rstd; quest: slot 2 holds ‖k‖;
 *   qn (4, hd) qknorm's q_norm w, b, k_norm w, b (NULL otherwise);
 *   scratch: per thread `attention_scratch_floats(N, hd)` floats, nthreads of them. */
typedef struct {
    int B, N, D, H, hd;
    int kind;          /* vit_attn */
    float scale;       /* logit scale */
    float eps;         /* qknorm: LN eps; quest: key-norm clamp */
} attention_dims;
size_t attention_scratch_floats(int N, int hd);
void attention_forward(float *out, float *att, float *stat, const float *qkv, const float *qn_w, const float *qn_b,
                       const float *kn_w, const float *kn_b, float *scratch, const attention_dims *a);
/* dqkv (B, N, 3D) is assigned; dqn_partial (B*H, 4, hd) receives per-(b,h) partial sums of
 * dγq, dβq, dγk, dβk for qknorm (NULL to skip), reduced by the caller in fixed order. */
void attention_backward(float *dqkv, float *dqn_partial, const float *dout, const float *qkv, const float *att,
                        const float *stat, const float *qn_w, const float *qn_b, const float *kn_w,
                        const float *kn_b, float *scratch, const attention_dims *a);

/* Column sums in fixed row order: out (n) += Σ_r x[r, :] (rows ld apart). */
void colsum_accumulate(float *out, const float *x, int rows, int n, int ld);

#endif
