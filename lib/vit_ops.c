/* vit_ops.c — ViT layer kernels, forward beside backward (engine.md §2).
 * GEMMs go through OpenBLAS (strides instead of copies); elementwise work is threaded
 * with OpenMP over outer loops. Parameter-gradient reductions run over rows in a fixed
 * order (parallel over columns), so gradients are identical at any thread count. */
#include "vit_ops.h"
#include "vit.h"
#include "fastmath.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* ----------------------------------------------------------------------------------------
 * input normalisation */

void normalize_forward(float *xn, const float *x, const float *mean, const float *std, int B, int C, int HW) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *x_bc = x + ((size_t)b * C + c) * HW;
            float *xn_bc = xn + ((size_t)b * C + c) * HW;
            float m = mean[c], s = std[c];
            for (int i = 0; i < HW; i++) xn_bc[i] = (x_bc[i] - m) / s;
        }
}

void normalize_backward(float *dx, const float *dxn, const float *std, int B, int C, int HW) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *d_bc = dxn + ((size_t)b * C + c) * HW;
            float *dx_bc = dx + ((size_t)b * C + c) * HW;
            float s = std[c];
            for (int i = 0; i < HW; i++) dx_bc[i] = d_bc[i] / s;
        }
}

/* ----------------------------------------------------------------------------------------
 * patch embedding = im2col + matmul (col index c·P·P + ky·P + kx matches the conv weight) */

void im2col_forward(float *patches, const float *img, int B, int C, int G, int P) {
    int S = G * P, CPP = C * P * P;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < G * G; p++) {
            int gy = p / G, gx = p % G;
            float *row = patches + ((size_t)b * G * G + p) * CPP;
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < P; ky++) {
                    const float *src = img + (((size_t)b * C + c) * S + gy * P + ky) * S + gx * P;
                    memcpy(row + (c * P + ky) * P, src, (size_t)P * sizeof(float));
                }
        }
}

void im2col_backward(float *dimg, const float *dpatches, int B, int C, int G, int P) {
    int S = G * P, CPP = C * P * P;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < G * G; p++) {
            int gy = p / G, gx = p % G;
            const float *row = dpatches + ((size_t)b * G * G + p) * CPP;
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < P; ky++) {
                    float *dst = dimg + (((size_t)b * C + c) * S + gy * P + ky) * S + gx * P;
                    memcpy(dst, row + (c * P + ky) * P, (size_t)P * sizeof(float));
                }
        }
}

void im2col_normalize_forward(float *patches, const float *img, const float *mean, const float *std, int B, int C,
                              int G, int P) {
    int S = G * P, CPP = C * P * P;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int p = 0; p < G * G; p++) {
            int gy = p / G, gx = p % G;
            float *row = patches + ((size_t)b * G * G + p) * CPP;
            for (int c = 0; c < C; c++) {
                float m = mean[c], s = std[c];
                for (int ky = 0; ky < P; ky++) {
                    const float *src = img + (((size_t)b * C + c) * S + gy * P + ky) * S + gx * P;
                    float *dst = row + (c * P + ky) * P;
                    for (int kx = 0; kx < P; kx++) dst[kx] = (src[kx] - m) / s;
                }
            }
        }
}

/* ----------------------------------------------------------------------------------------
 * token sequence (cls + patches + position embedding) and pooling */

void tokens_forward(float *t, const float *cls_tok, const float *pos, int B, int N, int D, int cls) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *tb = t + (size_t)b * N * D;
        if (cls) memcpy(tb, cls_tok, (size_t)D * sizeof(float));
        for (size_t i = 0; i < (size_t)N * D; i++) tb[i] += pos[i];
    }
}

void tokens_backward(float *dcls, float *dpos, const float *dt, int B, int N, int D, int cls) {
    /* every image's rows summed in order (colsum_accumulate): deterministic */
    if (dpos) colsum_accumulate(dpos, dt, B, N * D, N * D);
    if (dcls && cls) colsum_accumulate(dcls, dt, B, D, N * D);
}

void pool_forward(float *pooled, const float *t, int B, int N, int D, int cls, int avg) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *pool_b = pooled + (size_t)b * D;
        const float *tb = t + (size_t)b * N * D;
        if (!avg) {
            memcpy(pool_b, tb, (size_t)D * sizeof(float));
        } else {
            for (int i = 0; i < D; i++) {
                float s = 0.0f;
                for (int n = cls; n < N; n++) s += tb[(size_t)n * D + i];
                pool_b[i] = s / (float)(N - cls);
            }
        }
    }
}

void pool_backward(float *dt, const float *dpooled, int B, int N, int D, int cls, int avg) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *dp = dpooled + (size_t)b * D;
        float *dtb = dt + (size_t)b * N * D;
        memset(dtb, 0, (size_t)N * D * sizeof(float));
        if (!avg) {
            memcpy(dtb, dp, (size_t)D * sizeof(float));
        } else {
            float inv = 1.0f / (float)(N - cls);
            for (int n = cls; n < N; n++)
                for (int i = 0; i < D; i++) dtb[(size_t)n * D + i] = dp[i] * inv;
        }
    }
}

/* ----------------------------------------------------------------------------------------
 * GEMM: OpenBLAS runs one thread per call and all threading is ours. OpenBLAS's own
 * threading partitions work by thread count and its edge kernels round differently, so
 * results would change with --threads; a tiling fixed by the shape alone does not.
 * (The pthread build is safe to call from several threads at once; Debian's serial build
 * is not — it shares one buffer pool without locks.) The one-thread setting is made once for
 * every program, in lib/qb.c. */

void gemm_tiled(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                int ldb, float beta, float *C, int ldc, int row_group) {
    int tm = 256, tn = 512;
    if (row_group > 0) {
        /* one image's rows per tile and a width fixed by N: every image goes through the same
         * calls wherever it sits in whatever batch, so its results do not depend on either */
        tm = row_group;
        tn = N <= 256 ? N : 256;
    } else {
        /* big tiles, halved until there are enough of them to balance threads */
        while ((long)((M + tm - 1) / tm) * ((N + tn - 1) / tn) < 16 && (tm > 64 || tn > 64)) {
            if (tn >= tm && tn > 64) tn /= 2;
            else tm /= 2;
        }
    }
    int nti = (M + tm - 1) / tm, ntj = (N + tn - 1) / tn;
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < nti * ntj; t++) {
        int i0 = (t / ntj) * tm, j0 = (t % ntj) * tn;
        int mi = M - i0 < tm ? M - i0 : tm, nj = N - j0 < tn ? N - j0 : tn;
        const float *a = transA ? A + i0 : A + (size_t)i0 * lda;
        const float *b = transB ? B + (size_t)j0 * ldb : B + j0;
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, mi, nj, K,
                    alpha, a, lda, b, ldb, beta, C + (size_t)i0 * ldc + j0, ldc);
    }
}

/* ----------------------------------------------------------------------------------------
 * linear layers */

void colsum_accumulate(float *out, const float *x, int rows, int n, int ld) {
    /* parallel over column blocks, rows summed in order: deterministic */
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < n; c0 += 64) {
        int c1 = c0 + 64 < n ? c0 + 64 : n;
        float acc[64] = {0};
        if (c1 - c0 == 64) {
            /* a fixed trip count lets the compiler keep acc in vector registers; same order */
            for (int r = 0; r < rows; r++) {
                const float *x_r = x + (size_t)r * ld + c0;
                for (int c = 0; c < 64; c++) acc[c] += x_r[c];
            }
        } else {
            for (int r = 0; r < rows; r++) {
                const float *x_r = x + (size_t)r * ld;
                for (int c = c0; c < c1; c++) acc[c - c0] += x_r[c];
            }
        }
        for (int c = c0; c < c1; c++) out[c] += acc[c - c0];
    }
}

void matmul_forward(float *out, int ldo, const float *inp, const float *w, const float *b, int M, int IN, int OUT,
                    int rows_per_image) {
    float beta = 0.0f;
    if (b) {
        /* preload the bias so the GEMM adds onto it (beta = 1) */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) memcpy(out + (size_t)r * ldo, b, (size_t)OUT * sizeof(float));
        beta = 1.0f;
    }
    gemm_tiled(0, 1, M, OUT, IN, 1.0f, inp, IN, w, IN, beta, out, ldo, rows_per_image);
}

void matmul_forward_naive(float *out, int ldo, const float *inp, const float *w, const float *b, int M, int IN, int OUT) {
    for (int r = 0; r < M; r++)
        for (int o = 0; o < OUT; o++) {
            double acc = b ? b[o] : 0.0;
            for (int i = 0; i < IN; i++) acc += (double)inp[(size_t)r * IN + i] * w[(size_t)o * IN + i];
            out[(size_t)r * ldo + o] = (float)acc;
        }
}

void matmul_backward(float *dinp, float *dw, float *db, const float *dout, int lddo, const float *inp,
                     const float *w, int M, int IN, int OUT, int rows_per_image) {
    if (dinp) /* dinp (M, IN) += dout (M, OUT) · w (OUT, IN) */
        gemm_tiled(0, 0, M, IN, OUT, 1.0f, dout, lddo, w, IN, 1.0f, dinp, IN, rows_per_image);
    if (dw) /* dw (OUT, IN) += doutᵀ · inp */
        gemm_tiled(1, 0, OUT, IN, M, 1.0f, dout, lddo, inp, IN, 1.0f, dw, IN, 0);
    if (db) colsum_accumulate(db, dout, M, OUT, lddo);
}

/* ----------------------------------------------------------------------------------------
 * LayerNorm (biased variance, eps inside the sqrt; stats in double for accuracy) */

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                       int rows, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *x = inp + (size_t)r * D;
        float *o = out + (size_t)r * D;
        double s = 0.0;
        for (int i = 0; i < D; i++) s += x[i];
        float m = (float)(s / D);
        double v = 0.0;
        for (int i = 0; i < D; i++) {
            double d = (double)x[i] - m;
            v += d * d;
        }
        float rs = (float)(1.0 / sqrt(v / D + (double)eps));
        for (int i = 0; i < D; i++) o[i] = (x[i] - m) * rs * w[i] + b[i];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *w, int rows, int D) {
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            const float *x = inp + (size_t)r * D, *dy = dout + (size_t)r * D;
            float *dx = dinp + (size_t)r * D;
            float m = mean[r], rs = rstd[r];
            /* g = dy ⊙ w;  dx += rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) */
            double sg = 0.0, sgx = 0.0;
            for (int i = 0; i < D; i++) {
                float xh = (x[i] - m) * rs, g = dy[i] * w[i];
                sg += g;
                sgx += (double)g * xh;
            }
            float mg = (float)(sg / D), mgx = (float)(sgx / D);
            for (int i = 0; i < D; i++) {
                float xh = (x[i] - m) * rs;
                dx[i] += rs * (dy[i] * w[i] - mg - xh * mgx);
            }
        }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static)
        for (int c0 = 0; c0 < D; c0 += 64) {
            int c1 = c0 + 64 < D ? c0 + 64 : D;
            float aw[64] = {0}, ab[64] = {0};
            for (int r = 0; r < rows; r++) {
                const float *x = inp + (size_t)r * D, *dy = dout + (size_t)r * D;
                float m = mean[r], rs = rstd[r];
                for (int c = c0; c < c1; c++) {
                    aw[c - c0] += dy[c] * ((x[c] - m) * rs);
                    ab[c - c0] += dy[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dw) dw[c] += aw[c - c0];
                if (db) db[c] += ab[c - c0];
            }
        }
    }
}

/* ----------------------------------------------------------------------------------------
 * GELU, exact erf form: gelu(x) = ½x(1 + erf(x/√2)) */

#define QB_SQRT1_2 0.70710678118654752440f
#define QB_INV_SQRT_2PI 0.39894228040143267794f

void gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + qb_erff(x * QB_SQRT1_2));
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        /* gelu'(x) = Φ(x) + x·φ(x) */
        float cdf = 0.5f * (1.0f + qb_erff(x * QB_SQRT1_2));
        float pdf = QB_INV_SQRT_2PI * qb_expf(-0.5f * x * x);
        dinp[i] = dout[i] * (cdf + x * pdf);
    }
}

/* ----------------------------------------------------------------------------------------
 * softmax */

static void softmax_row(float *x, int n) {
    float mx = x[0];
    for (int j = 1; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) {
        x[j] = qb_expf(x[j] - mx);
        s += x[j];
    }
    float inv = 1.0f / s;
#pragma omp simd
    for (int j = 0; j < n; j++) x[j] *= inv;
}

void softmax_rows_forward(float *x, int rows, int n) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) softmax_row(x + (size_t)r * n, n);
}

/* ----------------------------------------------------------------------------------------
 * attention: per (b, h), Q, K, V are strided (N, hd) views of qkv with leading dim 3D */

size_t attention_scratch_floats(int N, int hd) { return (size_t)N * N + 4 * (size_t)N * hd + 4 * (size_t)hd + 16; }

/* LayerNorm over hd for each of N rows of a strided view; writes normalised·γ+β to dst (N, hd). */
static void headnorm_forward(float *dst, float *mean, float *rstd, const float *src, int ld, const float *g,
                             const float *bta, int N, int hd, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = src + (size_t)n * ld;
        double s = 0.0, v = 0.0;
        for (int i = 0; i < hd; i++) s += x[i];
        float m = (float)(s / hd);
        for (int i = 0; i < hd; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
        float rs = (float)(1.0 / sqrt(v / hd + (double)eps));
        for (int i = 0; i < hd; i++) dst[(size_t)n * hd + i] = (x[i] - m) * rs * g[i] + bta[i];
        mean[n] = m;
        rstd[n] = rs;
    }
}

/* k̂ = k / max(‖k‖, eps) per row; records the unclamped ‖k‖ (float sum of squares in double). */
static void keynorm_forward(float *dst, float *norm, const float *src, int ld, int N, int hd, float eps) {
    for (int n = 0; n < N; n++) {
        const float *k = src + (size_t)n * ld;
        double ss = 0.0;
        for (int i = 0; i < hd; i++) ss += (double)k[i] * k[i];
        float nk = (float)sqrt(ss);
        float r = nk > eps ? nk : eps;
        for (int i = 0; i < hd; i++) dst[(size_t)n * hd + i] = k[i] / r;
        norm[n] = nk;
    }
}

void attention_forward(float *out, float *att, float *stat, const float *qkv, const float *qn_w, const float *qn_b,
                       const float *kn_w, const float *kn_b, float *scratch, const attention_dims *a) {
    const int B = a->B, N = a->N, D = a->D, H = a->H, hd = a->hd, ld = 3 * D;
    const size_t BHN = (size_t)B * H * N;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *scr = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(N, hd);
        const float *q = qkv + (size_t)b * N * ld + h * hd; /* (N, hd) ld 3D */
        const float *k = q + D;
        const float *v = q + 2 * D;
        float *P = att + (size_t)bh * N * N;                /* (N, N) */
        float *st = stat + (size_t)bh * N;                  /* (N) in each of 4 slots BHN apart */
        const float *qa = q, *ka = k;
        int lda = ld, ldb = ld;
        if (a->kind == VIT_ATTN_QKNORM) {
            float *qt = scr + (size_t)N * N, *kt = qt + (size_t)N * hd;
            headnorm_forward(qt, st, st + BHN, q, ld, qn_w, qn_b, N, hd, a->eps);
            headnorm_forward(kt, st + 2 * BHN, st + 3 * BHN, k, ld, kn_w, kn_b, N, hd, a->eps);
            qa = qt, ka = kt, lda = hd, ldb = hd;
        } else if (a->kind == VIT_ATTN_QUEST) {
            float *kh = scr + (size_t)N * N;
            keynorm_forward(kh, st + 2 * BHN, k, ld, N, hd, a->eps);
            ka = kh, ldb = hd;
        }
        /* S = scale · Qa · Kaᵀ, then softmax rows in place */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, hd, a->scale, qa, lda, ka, ldb, 0.0f, P, N);
        for (int n = 0; n < N; n++) softmax_row(P + (size_t)n * N, N);
        /* O = P · V into this head's columns of out (ld D) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, 1.0f, P, N, v, ld, 0.0f,
                    out + (size_t)b * N * D + h * hd, D);
    }
}

/* Backward of the per-row LayerNorm over hd: dx (ld-strided) = LN_backward(dy), plus
 * partial dγ, dβ sums. Recomputes x̂ from the raw rows and the cached stats. */
static void headnorm_backward(float *dx, int ldx, float *dg, float *dbt, const float *dy, const float *x, int ld,
                              const float *mean, const float *rstd, const float *g, int N, int hd) {
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * ld, *dyr = dy + (size_t)n * hd;
        float m = mean[n], rs = rstd[n];
        double sg = 0.0, sgx = 0.0;
        for (int i = 0; i < hd; i++) {
            float xh = (xr[i] - m) * rs, gi = dyr[i] * g[i];
            sg += gi;
            sgx += (double)gi * xh;
            dg[i] += dyr[i] * xh;
            dbt[i] += dyr[i];
        }
        float mg = (float)(sg / hd), mgx = (float)(sgx / hd);
        float *dxr = dx + (size_t)n * ldx;
        for (int i = 0; i < hd; i++) {
            float xh = (xr[i] - m) * rs;
            dxr[i] = rs * (dyr[i] * g[i] - mg - xh * mgx);
        }
    }
}

void attention_backward(float *dqkv, float *dqn_partial, const float *dout, const float *qkv, const float *att,
                        const float *stat, const float *qn_w, const float *qn_b, const float *kn_w,
                        const float *kn_b, float *scratch, const attention_dims *a) {
    const int B = a->B, N = a->N, D = a->D, H = a->H, hd = a->hd, ld = 3 * D;
    const size_t BHN = (size_t)B * H * N;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H;
        float *scr = scratch + (size_t)omp_get_thread_num() * attention_scratch_floats(N, hd);
        float *dP = scr;                              /* (N, N) */
        float *t0 = scr + (size_t)N * N;              /* (N, hd) q̃ or unused */
        float *t1 = t0 + (size_t)N * hd;              /* (N, hd) k̃ or k̂ */
        float *t2 = t1 + (size_t)N * hd;              /* (N, hd) dq̃ */
        float *t3 = t2 + (size_t)N * hd;              /* (N, hd) dk̃ or dk̂ */
        const float *q = qkv + (size_t)b * N * ld + h * hd, *k = q + D, *v = q + 2 * D;
        float *dq = dqkv + (size_t)b * N * ld + h * hd, *dk = dq + D, *dv = dq + 2 * D;
        const float *P = att + (size_t)bh * N * N;
        const float *dO = dout + (size_t)b * N * D + h * hd; /* (N, hd) ld D */
        const float *st = stat + (size_t)bh * N;

        /* dV = Pᵀ·dO ;  dP = dO·Vᵀ ;  dS = P ⊙ (dP − rowsum(P ⊙ dP)) (in place in dP) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, hd, N, 1.0f, P, N, dO, D, 0.0f, dv, ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, N, hd, 1.0f, dO, D, v, ld, 0.0f, dP, N);
        for (int n = 0; n < N; n++) {
            const float *p = P + (size_t)n * N;
            float *d = dP + (size_t)n * N;
            float s = 0.0f;
            for (int j = 0; j < N; j++) s += p[j] * d[j];
            for (int j = 0; j < N; j++) d[j] = p[j] * (d[j] - s);
        }
        if (a->kind == VIT_ATTN_SDPA) {
            /* dQ = c·dS·K ;  dK = c·dSᵀ·Q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, a->scale, dP, N, k, ld, 0.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, hd, N, a->scale, dP, N, q, ld, 0.0f, dk, ld);
        } else if (a->kind == VIT_ATTN_QUEST) {
            /* recompute k̂; dQ = c·dS·K̂ ; dK̂ = c·dSᵀ·Q ; dk = (dk̂ − k̂(k̂·dk̂))/‖k‖ or dk̂/eps */
            const float *knorm = st + 2 * BHN;
            for (int n = 0; n < N; n++) {
                float r = knorm[n] > a->eps ? knorm[n] : a->eps;
                for (int i = 0; i < hd; i++) t1[(size_t)n * hd + i] = k[(size_t)n * ld + i] / r;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, a->scale, dP, N, t1, hd, 0.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, hd, N, a->scale, dP, N, q, ld, 0.0f, t3, hd);
            for (int n = 0; n < N; n++) {
                const float *kh = t1 + (size_t)n * hd, *dkh = t3 + (size_t)n * hd;
                float *dkr = dk + (size_t)n * ld;
                if (knorm[n] >= a->eps) {
                    float dot = 0.0f;
                    for (int i = 0; i < hd; i++) dot += kh[i] * dkh[i];
                    for (int i = 0; i < hd; i++) dkr[i] = (dkh[i] - kh[i] * dot) / knorm[n];
                } else {
                    for (int i = 0; i < hd; i++) dkr[i] = dkh[i] / a->eps;
                }
            }
        } else { /* QKNORM: recompute q̃, k̃ */
            const float *qm = st, *qr = st + BHN, *km = st + 2 * BHN, *kr = st + 3 * BHN;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < hd; i++) {
                    t0[(size_t)n * hd + i] = (q[(size_t)n * ld + i] - qm[n]) * qr[n] * qn_w[i] + qn_b[i];
                    t1[(size_t)n * hd + i] = (k[(size_t)n * ld + i] - km[n]) * kr[n] * kn_w[i] + kn_b[i];
                }
            /* dQ̃ = c·dS·K̃ ;  dK̃ = c·dSᵀ·Q̃ */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, a->scale, dP, N, t1, hd, 0.0f, t2, hd);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, hd, N, a->scale, dP, N, t0, hd, 0.0f, t3, hd);
            /* partial dγ, dβ for this (b,h); the caller reduces them in fixed order */
            float *pg = dqn_partial ? dqn_partial + (size_t)bh * 4 * hd : t3 + (size_t)N * hd;
            memset(pg, 0, 4 * (size_t)hd * sizeof(float));
            headnorm_backward(dq, ld, pg, pg + hd, t2, q, ld, qm, qr, qn_w, N, hd);
            headnorm_backward(dk, ld, pg + 2 * hd, pg + 3 * hd, t3, k, ld, km, kr, kn_w, N, hd);
        }
    }
    (void)qn_b;
    (void)kn_b;
}
