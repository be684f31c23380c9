/* losses.c — per-sample attack losses and their logit gradients (attacks.md §1), the
 * workspace, the forward/backward helper every gradient attack uses, and the dispatcher. */
#include "attacks.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ATTACK_NAMES[QB_ATK_COUNT] = {"fgsm", "pgd", "apgd-ce", "apgd-t", "fab-t", "square"};

const char *qb_attack_name(qb_attack_kind k) { return k < QB_ATK_COUNT ? ATTACK_NAMES[k] : "?"; }
const char *qb_norm_name(qb_norm n) { return n == QB_NORM_L2 ? "l2" : "linf"; }

int qb_attack_parse(const char *s, qb_attack_kind *k) {
    for (int i = 0; i < QB_ATK_COUNT; i++)
        if (!strcmp(s, ATTACK_NAMES[i])) { *k = (qb_attack_kind)i; return 0; }
    if (!strcmp(s, "fgm")) { *k = QB_ATK_FGSM; return 0; } /* the L2 name of the same one-step attack */
    return qb_error(QB_EXIT_USAGE, "unknown attack '%s' (fgsm, fgm, pgd, apgd-ce, apgd-t, fab-t, square, standard)", s);
}

int qb_attack_default_steps(qb_attack_kind k) {
    switch (k) {
    case QB_ATK_FGSM: return 1;
    case QB_ATK_PGD: return 10;       /* torchattacks */
    case QB_ATK_SQUARE: return 5000;  /* AutoAttack standard */
    default: return 100;              /* APGD, FAB in AutoAttack standard */
    }
}

/* ---- sorting helpers: value descending, then index ascending (deterministic at ties) ---- */

static int ranks_before(const float *z, int a, int b) { return z[a] > z[b] || (z[a] == z[b] && a < b); }

/* the indices of the k largest logits, in order (k ≤ 4 here: insertion into a short list) */
static void top_k(const float *z, int K, int k, int *idx) {
    int n = 0;
    for (int j = 0; j < K; j++) {
        int pos = n < k ? n : k;
        while (pos > 0 && ranks_before(z, j, idx[pos - 1])) pos--;
        if (pos >= k) continue;
        int last = n < k ? n : k - 1;
        for (int q = last; q > pos; q--) idx[q] = idx[q - 1];
        idx[pos] = j;
        if (n < k) n++;
    }
}

int qb_argmax(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

int qb_rank_class(const float *z, int K, int r) {
    /* count of classes ranked before each class; r-th largest has count r − 1 */
    for (int j = 0; j < K; j++) {
        int before = 0;
        for (int i = 0; i < K; i++) before += i != j && ranks_before(z, i, j);
        if (before == r - 1) return j;
    }
    return -1;
}

int qb_loss_check(qb_loss kind, int K, int y, int t) {
    static const int min_k[] = {1, 2, 3, 4, 2}; /* CE, MARGIN (one other class), DLR (π3), DLR_T (π4), TDIFF */
    if ((unsigned)kind > QB_LOSS_TDIFF) return qb_error(QB_EXIT_USAGE, "loss: unknown kind %d", (int)kind);
    if (K < min_k[kind])
        return qb_error(QB_EXIT_USAGE, "loss %d needs at least %d classes, the model has %d", (int)kind, min_k[kind], K);
    if (y < 0 || y >= K) return qb_error(QB_EXIT_DATA, "loss: label %d is outside the model's %d classes", y, K);
    if (kind == QB_LOSS_DLR_T || kind == QB_LOSS_TDIFF) {
        if (t < 0 || t >= K) return qb_error(QB_EXIT_USAGE, "targeted loss: target %d is outside [0, %d)", t, K);
        if (t == y) return qb_error(QB_EXIT_USAGE, "targeted loss: the target is the label (%d)", y);
    }
    return 0;
}

double qb_loss_eval(qb_loss kind, const float *z, int K, int y, int t, float *dz) {
    if (qb_loss_check(kind, K, y, t)) { /* never index z or dz out of range */
        if (dz && K > 0) memset(dz, 0, sizeof(float) * K);
        return NAN;
    }
    if (dz) memset(dz, 0, sizeof(float) * K);
    if (kind == QB_LOSS_CE) {
        double mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double s = 0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - mx);
        double lse = mx + log(s);
        if (dz)
            for (int k = 0; k < K; k++) dz[k] = (float)(exp((double)z[k] - lse) - (k == y));
        return lse - z[y];
    }
    if (kind == QB_LOSS_TDIFF) {
        if (dz) dz[t] += 1, dz[y] -= 1;
        return (double)z[t] - z[y];
    }
    if (kind == QB_LOSS_MARGIN) {
        int o = -1;
        for (int k = 0; k < K; k++)
            if (k != y && (o < 0 || z[k] > z[o])) o = k;
        if (dz) dz[y] = 1, dz[o] = -1;
        return (double)z[y] - z[o];
    }
    int top[4] = {0, 0, 0, 0};
    top_k(z, K, kind == QB_LOSS_DLR ? 3 : 4, top);
    double a, d;
    int other;
    if (kind == QB_LOSS_DLR) {
        other = top[0] == y ? top[1] : top[0];
        a = (double)z[y] - z[other];
        d = (double)z[top[0]] - z[top[2]] + 1e-12;
        if (dz) {
            dz[top[0]] += (float)(a / (d * d));
            dz[top[2]] -= (float)(a / (d * d));
        }
    } else {
        other = t;
        a = (double)z[y] - z[t];
        d = (double)z[top[0]] - 0.5 * ((double)z[top[2]] + z[top[3]]) + 1e-12;
        if (dz) {
            dz[top[0]] += (float)(a / (d * d));
            dz[top[2]] -= (float)(0.5 * a / (d * d));
            dz[top[3]] -= (float)(0.5 * a / (d * d));
        }
    }
    if (dz) {
        dz[y] -= (float)(1.0 / d);
        dz[other] += (float)(1.0 / d);
    }
    return -a / d;
}

/* ---- workspace ------------------------------------------------------------------------- */

int qb_attack_ws_init(qb_attack_ws *ws, vit_model *m, int cap) {
    memset(ws, 0, sizeof *ws);
    ws->m = m;
    ws->cap = cap;
    ws->K = m->cfg.classes;
    ws->S = m->cfg.img_size;
    ws->d = (size_t)3 * ws->S * ws->S;
    size_t nd = (size_t)cap * ws->d;
    ws->logits = qb_malloc(sizeof(float) * cap * ws->K);
    ws->dlogits = qb_malloc(sizeof(float) * cap * ws->K);
    ws->grad = qb_malloc(sizeof(float) * nd);
    ws->ids = qb_malloc(sizeof(uint64_t) * cap);
    ws->margin = qb_malloc(sizeof(float) * cap);
    int ok = ws->logits && ws->dlogits && ws->grad && ws->ids && ws->margin;
    for (int i = 0; i < 8; i++) ok = ok && (ws->buf[i] = qb_malloc(sizeof(float) * nd));
    for (int i = 0; i < 8; i++) ok = ok && (ws->vec[i] = qb_malloc(sizeof(float) * cap));
    for (int i = 0; i < 8; i++) ok = ok && (ws->ivec[i] = qb_malloc(sizeof(int) * cap));
    if (!ok) { qb_attack_ws_free(ws); return QB_EXIT_FAIL; }
    return 0;
}

void qb_attack_ws_free(qb_attack_ws *ws) {
    free(ws->logits), free(ws->dlogits), free(ws->grad), free(ws->ids), free(ws->dscratch), free(ws->margin);
    for (int i = 0; i < 8; i++) free(ws->buf[i]), free(ws->vec[i]);
    for (int i = 0; i < 8; i++) free(ws->ivec[i]);
    memset(ws, 0, sizeof *ws);
}

/* ---- forward/backward ------------------------------------------------------------------ */

int qb_attack_loss_grad(qb_attack_ws *ws, const float *x, int n, const int *y, const int *t, qb_loss kind,
                        double *loss, float *grad) {
    int K = ws->K, rc;
    size_t d = ws->d;
    if (n > ws->cap) return qb_error(QB_EXIT_FAIL, "attack: %d images exceed the workspace of %d", n, ws->cap);
    if (n == 0) return 0;
    if (!y && (loss || grad)) return qb_error(QB_EXIT_FAIL, "attack: a loss or gradient needs labels");
    /* O(n) before the forward: labels and targets in range, enough classes for the loss */
    for (int b = 0; y && b < n; b++)
        if ((rc = qb_loss_check(kind, K, y[b], t ? t[b] : -1))) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", qb_last_error());
            return qb_error(rc, "attack: image %d: %s", b, msg);
        }
    /* one engine call for the whole batch: the engine is batch-invariant (an image's logits and
     * input gradient are bit-identical alone or at any position of a batch) */
    float *z = ws->logits, *dz = ws->dlogits;
    rc = vit_forward(ws->m, x, n, grad ? VIT_MODE_INPUT_GRAD : VIT_MODE_INFER, z);
    if (rc) return rc;
    int bad = 0;
    for (int i = 0; i < n * K; i++) bad |= !isfinite(z[i]);
    if (bad) {
        ws->nonfinite++;
        return qb_error(QB_EXIT_FAIL, "attack: non-finite logits");
    }
    if (y)
        for (int b = 0; b < n; b++) {
            double l = qb_loss_eval(kind, z + (size_t)b * K, K, y[b], t ? t[b] : -1, dz + (size_t)b * K);
            if (loss) loss[b] = l;
        }
    if (grad) {
        if ((rc = vit_backward(ws->m, dz, grad))) return rc;
        long nbad = 0;
        for (size_t i = 0; i < (size_t)n * d; i++) nbad += !isfinite(grad[i]);
        if (nbad) {
            ws->nonfinite++;
            return qb_error(QB_EXIT_FAIL, "attack: non-finite input gradient");
        }
    }
    return 0;
}

int qb_attack_predict(qb_attack_ws *ws, const float *x, int n, int *pred) {
    int rc = qb_attack_loss_grad(ws, x, n, NULL, NULL, QB_LOSS_CE, NULL, NULL);
    if (rc) return rc;
    for (int b = 0; b < n; b++) pred[b] = qb_argmax(ws->logits + (size_t)b * ws->K, ws->K);
    return 0;
}

double qb_attack_norm(qb_norm norm, const float *delta, size_t plane, const float scale[3]) {
    double acc = 0;
    for (int c = 0; c < 3; c++) {
        const float *v = delta + c * plane;
        double inv = 1.0 / scale[c];
        for (size_t i = 0; i < plane; i++) {
            double a = fabs((double)v[i]) * inv;
            if (norm == QB_NORM_LINF) acc = a > acc ? a : acc;
            else acc += a * a;
        }
    }
    return norm == QB_NORM_LINF ? acc : sqrt(acc);
}

/* ---- dispatcher ------------------------------------------------------------------------ */

int qb_fgsm_run(qb_attack_ws *, const qb_attack_cfg *, const float *, const int *, int, float *);
int qb_pgd_run(qb_attack_ws *, const qb_attack_cfg *, const float *, const int *, const uint64_t *, int, float *);
int qb_apgd_run(qb_attack_ws *, const qb_attack_cfg *, int, const float *, const int *, const uint64_t *, int, float *);
int qb_square_run(qb_attack_ws *, const qb_attack_cfg *, const float *, const int *, const uint64_t *, int, float *);
int qb_fab_t_run(qb_attack_ws *, const qb_attack_cfg *, const float *, const int *, const uint64_t *, int, float *);

int qb_attack_run(qb_attack_ws *ws, qb_attack_kind kind, const qb_attack_cfg *cfg, const float *x, const int *y,
                  const uint64_t *ids, int n, float *xadv) {
    if (!(cfg->eps > 0) || !isfinite(cfg->eps)) return qb_error(QB_EXIT_USAGE, "attack: eps must be > 0");
    if (n > ws->cap) return qb_error(QB_EXIT_FAIL, "attack: %d images exceed the workspace of %d", n, ws->cap);
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= ws->K)
            return qb_error(QB_EXIT_DATA, "attack: label %d is outside the model's %d classes", y[i], ws->K);
    if (n == 0) return 0;
    switch (kind) {
    case QB_ATK_FGSM: return qb_fgsm_run(ws, cfg, x, y, n, xadv);
    case QB_ATK_PGD: return qb_pgd_run(ws, cfg, x, y, ids, n, xadv);
    case QB_ATK_APGD_CE: return qb_apgd_run(ws, cfg, 0, x, y, ids, n, xadv);
    case QB_ATK_APGD_T:
        if (ws->K < 4) return qb_error(QB_EXIT_USAGE, "apgd-t: the targeted DLR loss needs at least 4 classes, the model has %d", ws->K);
        return qb_apgd_run(ws, cfg, 1, x, y, ids, n, xadv);
    case QB_ATK_SQUARE: return qb_square_run(ws, cfg, x, y, ids, n, xadv);
    case QB_ATK_FAB_T: return qb_fab_t_run(ws, cfg, x, y, ids, n, xadv);
    default: return qb_error(QB_EXIT_USAGE, "attack: unknown kind %d", (int)kind);
    }
}
