/* model.c — load a timm VisionTransformer checkpoint (safetensors) into a vit_model.
 * Architecture from shapes (engine.md §1.7), heads/attention/preprocessing from
 * questbench.* metadata (§3.7) or command-line overrides, strict key/shape validation. */
#include "model.h"
#include "safetensors.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void note(qb_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(qb_model *m, const char *fmt, ...) {
    size_t len = strlen(m->notes);
    if (len + 2 >= sizeof m->notes) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->notes + len, sizeof m->notes - len - 1, fmt, ap);
    va_end(ap);
    len = strlen(m->notes);
    m->notes[len] = '\n';
    m->notes[len + 1] = 0;
}

int qb_parse_float3(const char *s, float out[3], const char *what) {
    char *end;
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v))
            return qb_error(QB_EXIT_USAGE, "%s: expected three comma-separated numbers, got '%s'", what, s);
        out[i] = (float)v;
        p = end;
        if (i < 2) {
            if (*p != ',') return qb_error(QB_EXIT_USAGE, "%s: expected three comma-separated numbers, got '%s'", what, s);
            p++;
        }
    }
    if (*p) return qb_error(QB_EXIT_USAGE, "%s: expected three comma-separated numbers, got '%s'", what, s);
    return 0;
}

/* strict integer / float parsing of metadata strings */
static int meta_int(const st_file *f, const char *key, int *out, int *present) {
    const char *v = st_meta_get(f, key);
    *present = v != NULL;
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < 0 || x > 1000000000)
        return qb_error(QB_EXIT_MODEL, "%s: metadata %s = '%s' is not a valid integer", f->path, key, v);
    *out = (int)x;
    return 0;
}

static int meta_double(const st_file *f, const char *key, double *out, int *present) {
    const char *v = st_meta_get(f, key);
    *present = v != NULL;
    if (!v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x))
        return qb_error(QB_EXIT_MODEL, "%s: metadata %s = '%s' is not a valid number", f->path, key, v);
    *out = x;
    return 0;
}

static int shape_is(const st_tensor *t, int ndim, const uint64_t *dims) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != dims[i]) return 0;
    return 1;
}

static void shape_str(char *buf, size_t n, int ndim, const uint64_t *dims) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* One expected tensor: timm key, shape, destination in the arena. */
typedef struct {
    char name[96];
    int ndim;
    uint64_t dims[4];
    float *dst;
    int optional_zero; /* absent is allowed and means zeros (qkv bias) */
} expect_t;

static int build_expected(expect_t *e, const vit_config *c, const vit_params *p) {
    uint64_t D = c->dim, F = c->mlp_dim, K = c->classes, N = c->n_tokens, hd = c->head_dim, P = c->patch;
    int n = 0;
#define EXP(nm, nd, d0, d1, d2, d3, ptr, opt)                                                                     \
    do {                                                                                                           \
        snprintf(e[n].name, sizeof e[n].name, "%s", nm);                                                          \
        e[n].ndim = nd, e[n].dims[0] = d0, e[n].dims[1] = d1, e[n].dims[2] = d2, e[n].dims[3] = d3;              \
        e[n].dst = ptr, e[n].optional_zero = opt;                                                                 \
        n++;                                                                                                       \
    } while (0)
    EXP("patch_embed.proj.weight", 4, D, (uint64_t)c->in_chans, P, P, p->patchw, 0);
    EXP("patch_embed.proj.bias", 1, D, 0, 0, 0, p->patchb, 0);
    if (c->class_token) EXP("cls_token", 3, 1, 1, D, 0, p->cls, 0);
    EXP("pos_embed", 3, 1, N, D, 0, p->pos, 0);
    char nm[96];
    for (int l = 0; l < c->depth; l++) {
#define BLK(suffix, nd, d0, d1, ptr, opt)                                                                         \
    do {                                                                                                           \
        snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);                                                       \
        EXP(nm, nd, d0, d1, 0, 0, ptr, opt);                                                                      \
    } while (0)
        BLK("norm1.weight", 1, D, 0, p->ln1w + l * D, 0);
        BLK("norm1.bias", 1, D, 0, p->ln1b + l * D, 0);
        BLK("attn.qkv.weight", 2, 3 * D, D, p->qkvw + l * 3 * D * D, 0);
        if (c->qkv_bias) BLK("attn.qkv.bias", 1, 3 * D, 0, p->qkvb + l * 3 * D, 0);
        if (c->attn == VIT_ATTN_QKNORM) {
            BLK("attn.q_norm.weight", 1, hd, 0, p->qnw + l * hd, 0);
            BLK("attn.q_norm.bias", 1, hd, 0, p->qnb + l * hd, 0);
            BLK("attn.k_norm.weight", 1, hd, 0, p->knw + l * hd, 0);
            BLK("attn.k_norm.bias", 1, hd, 0, p->knb + l * hd, 0);
        }
        BLK("attn.proj.weight", 2, D, D, p->projw + l * D * D, 0);
        BLK("attn.proj.bias", 1, D, 0, p->projb + l * D, 0);
        BLK("norm2.weight", 1, D, 0, p->ln2w + l * D, 0);
        BLK("norm2.bias", 1, D, 0, p->ln2b + l * D, 0);
        BLK("mlp.fc1.weight", 2, F, D, p->fc1w + l * F * D, 0);
        BLK("mlp.fc1.bias", 1, F, 0, p->fc1b + l * F, 0);
        BLK("mlp.fc2.weight", 2, D, F, p->fc2w + l * D * F, 0);
        BLK("mlp.fc2.bias", 1, D, 0, p->fc2b + l * D, 0);
#undef BLK
    }
    const char *fn = c->pool == VIT_POOL_TOKEN ? "norm" : "fc_norm";
    snprintf(nm, sizeof nm, "%s.weight", fn);
    EXP(nm, 1, D, 0, 0, 0, p->lnfw, 0);
    snprintf(nm, sizeof nm, "%s.bias", fn);
    EXP(nm, 1, D, 0, 0, 0, p->lnfb, 0);
    EXP("head.weight", 2, K, D, 0, 0, p->headw, 0);
    EXP("head.bias", 1, K, 0, 0, 0, p->headb, 0);
#undef EXP
    return n;
}

/* Largest block index + 1 among "blocks.<i>." names; -1 on a malformed index. */
static int count_blocks(const st_file *f) {
    int L = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const char *s = f->tensors[i].name;
        if (strncmp(s, "blocks.", 7)) continue;
        char *end;
        long b = strtol(s + 7, &end, 10);
        if (end == s + 7 || *end != '.' || b < 0 || b > 4096) return -1;
        if (b + 1 > L) L = (int)b + 1;
    }
    return L;
}

static int split_names(qb_model *m, const char *s) {
    int n = 1;
    for (const char *q = s; *q; q++) n += *q == '\n';
    m->class_names = calloc((size_t)n, sizeof(char *));
    if (!m->class_names) return qb_error(QB_EXIT_FAIL, "out of memory");
    const char *start = s;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(start, '\n');
        size_t len = e ? (size_t)(e - start) : strlen(start);
        m->class_names[i] = strndup(start, len);
        start = e ? e + 1 : start + len;
    }
    m->n_class_names = n;
    return 0;
}

int qb_model_load(qb_model *m, const char *path, const qb_model_overrides *ov) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    qb_model_overrides none = {0};
    if (!ov) ov = &none;
    st_file f;
    int rc = st_open(&f, path);
    if (rc) return rc;

    vit_config c = {0};
    const st_tensor *pw = st_find(&f, "patch_embed.proj.weight"), *pos = st_find(&f, "pos_embed");
    const st_tensor *fc1 = st_find(&f, "blocks.0.mlp.fc1.weight"), *head = st_find(&f, "head.weight");
    const st_tensor *qn = st_find(&f, "blocks.0.attn.q_norm.weight");
    const char *missing = !pw ? "patch_embed.proj.weight" : !pos ? "pos_embed" : !fc1 ? "blocks.0.mlp.fc1.weight" : NULL;
    if (missing) { rc = qb_error(QB_EXIT_MODEL, "%s: not a timm VisionTransformer checkpoint (no tensor '%s')", path, missing); goto fail; }
    if (!head) { rc = qb_error(QB_EXIT_MODEL, "%s: no 'head.weight': a features-only model has no classifier to evaluate", path); goto fail; }
    if (pw->ndim != 4 || pw->shape[2] != pw->shape[3] || pos->ndim != 3 || pos->shape[0] != 1 || fc1->ndim != 2 ||
        head->ndim != 2 || pos->shape[2] != pw->shape[0] || pw->shape[0] > 65536 || pw->shape[2] > 4096 ||
        pos->shape[1] > 1000000 || fc1->shape[0] > 1000000 || head->shape[0] > 10000000) {
        rc = qb_error(QB_EXIT_MODEL, "%s: inconsistent shapes of patch_embed.proj.weight, pos_embed, mlp.fc1 or head", path);
        goto fail;
    }
    c.dim = (int)pw->shape[0];
    c.in_chans = (int)pw->shape[1];
    c.patch = (int)pw->shape[2];
    c.mlp_dim = (int)fc1->shape[0];
    c.classes = (int)head->shape[0];
    c.class_token = st_find(&f, "cls_token") != NULL;
    c.qkv_bias = st_find(&f, "blocks.0.attn.qkv.bias") != NULL;
    c.pool = st_find(&f, "norm.weight") ? VIT_POOL_TOKEN : VIT_POOL_AVG;
    c.depth = count_blocks(&f);
    if (c.depth <= 0) { rc = qb_error(QB_EXIT_MODEL, "%s: no well-formed 'blocks.<i>.' tensors", path); goto fail; }
    int Np = (int)pos->shape[1] - c.class_token;
    int G = (int)lround(sqrt((double)Np));
    if (Np <= 0 || G * G != Np) {
        rc = qb_error(QB_EXIT_MODEL, "%s: pos_embed has %llu rows, which is not a square patch grid%s", path,
                      (unsigned long long)pos->shape[1], c.class_token ? " plus a class token" : "");
        goto fail;
    }
    c.img_size = G * c.patch;

    /* attention kind: override > metadata > shapes (q_norm tensors mean qknorm) > sdpa */
    const char *attn_s = st_meta_get(&f, "questbench.attn");
    c.attn = qn ? VIT_ATTN_QKNORM : VIT_ATTN_SDPA;
    if (attn_s && (rc = vit_attn_parse(attn_s, &c.attn))) {
        rc = qb_error(QB_EXIT_MODEL, "%s: metadata questbench.attn = '%s' is not sdpa, qknorm or quest", path, attn_s);
        goto fail;
    }
    if (ov->attention) {
        vit_attn o;
        if ((rc = vit_attn_parse(ov->attention, &o))) goto fail;
        if (o != c.attn) note(m, "attention: %s (overrides %s from the file)", vit_attn_name(o), vit_attn_name(c.attn));
        c.attn = o;
    } else if (!attn_s) {
        note(m, "attention: %s (no questbench.attn metadata; %s)", vit_attn_name(c.attn),
             qn ? "q_norm tensors present" : "assumed standard; pass --attention quest for QUEST weights");
    }
    if (c.attn == VIT_ATTN_QKNORM && !qn) {
        rc = qb_error(QB_EXIT_MODEL, "%s: attention qknorm needs 'blocks.0.attn.q_norm.weight', which the file lacks", path);
        goto fail;
    }
    if (c.attn != VIT_ATTN_QKNORM && qn) {
        rc = qb_error(QB_EXIT_MODEL, "%s: attention %s, but the file has q_norm/k_norm tensors (a qknorm model)", path,
                      vit_attn_name(c.attn));
        goto fail;
    }

    /* heads: override > metadata > q_norm length > head_dim 64 (timm's choice for every ViT) */
    int heads = 0, present = 0, v = 0;
    if ((rc = meta_int(&f, "questbench.num_heads", &heads, &present))) goto fail;
    if (qn && qn->ndim == 1 && qn->shape[0] > 0 && c.dim % (int)qn->shape[0] == 0) {
        int h2 = c.dim / (int)qn->shape[0];
        if (present && heads != h2) {
            rc = qb_error(QB_EXIT_MODEL, "%s: questbench.num_heads = %d but q_norm has length %llu (%d heads)", path,
                          heads, (unsigned long long)qn->shape[0], h2);
            goto fail;
        }
        heads = h2, present = 1;
    }
    if (ov->heads > 0) {
        if (present && heads != ov->heads) note(m, "heads: %d (overrides %d from the file)", ov->heads, heads);
        heads = ov->heads;
    } else if (!present) {
        if (c.dim % 64) {
            rc = qb_error(QB_EXIT_MODEL, "%s: no questbench.num_heads metadata and width %d is not a multiple of 64; pass --heads",
                          path, c.dim);
            goto fail;
        }
        heads = c.dim / 64;
        note(m, "heads: %d (no questbench.num_heads metadata; assumed head_dim 64 as in timm's ViTs; --heads overrides)", heads);
    }
    c.heads = heads;

    /* redundant metadata must agree with the shapes */
    struct { const char *key; int want; } checks[] = {
        {"questbench.embed_dim", c.dim}, {"questbench.depth", c.depth}, {"questbench.patch_size", c.patch},
        {"questbench.img_size", c.img_size}, {"questbench.in_chans", c.in_chans}, {"questbench.num_classes", c.classes},
        {"questbench.class_token", c.class_token}};
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        if ((rc = meta_int(&f, checks[i].key, &v, &present))) goto fail;
        if (present && v != checks[i].want) {
            rc = qb_error(QB_EXIT_MODEL, "%s: metadata %s = %d disagrees with the tensor shapes (%d)", path,
                          checks[i].key, v, checks[i].want);
            goto fail;
        }
    }
    if ((rc = meta_int(&f, "questbench.head_dim", &v, &present))) goto fail;
    if (present && !ov->heads && v * c.heads != c.dim) {
        rc = qb_error(QB_EXIT_MODEL, "%s: metadata questbench.head_dim = %d disagrees with %d heads of width %d", path, v,
                      c.heads, c.dim);
        goto fail;
    }
    const char *gp = st_meta_get(&f, "questbench.global_pool");
    if (gp && strcmp(gp, c.pool == VIT_POOL_TOKEN ? "token" : "avg")) {
        rc = qb_error(QB_EXIT_MODEL, "%s: metadata questbench.global_pool = '%s' but the file has %s", path, gp,
                      c.pool == VIT_POOL_TOKEN ? "norm.* (token pooling)" : "fc_norm.* (avg pooling)");
        goto fail;
    }
    const char *act = st_meta_get(&f, "questbench.act");
    if (act && strcmp(act, "gelu_erf") && strcmp(act, "gelu")) {
        rc = qb_error(QB_EXIT_MODEL, "%s: activation '%s' is not supported (only exact GELU, gelu_erf)", path, act);
        goto fail;
    }
    double dv;
    if ((rc = meta_double(&f, "questbench.norm_eps", &dv, &present))) goto fail;
    c.norm_eps = present ? (float)dv : 1e-6f;
    if ((rc = meta_double(&f, "questbench.attn_scale", &dv, &present))) goto fail;
    if (present && !ov->attention) c.attn_scale = (float)dv;
    if ((rc = meta_double(&f, "questbench.quest_eps", &dv, &present))) goto fail;
    c.quest_eps = present ? (float)dv : 1e-6f;
    if (ov->quest_eps > 0) c.quest_eps = (float)ov->quest_eps;
    if (c.attn == VIT_ATTN_QUEST && !present && !(ov->quest_eps > 0))
        note(m, "quest_eps: 1e-06 (no questbench.quest_eps metadata)");

    /* preprocessing: override > metadata > timm's fallback (ImageNet mean/std, 0.875, bilinear) */
    const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(c.mean, in_mean, sizeof c.mean);
    memcpy(c.std, in_std, sizeof c.std);
    const char *ms = st_meta_get(&f, "questbench.mean"), *ss = st_meta_get(&f, "questbench.std");
    if (ms && qb_parse_float3(ms, c.mean, "metadata questbench.mean")) { rc = qb_error(QB_EXIT_MODEL, "%s: %s", path, qb_last_error()); goto fail; }
    if (ss && qb_parse_float3(ss, c.std, "metadata questbench.std")) { rc = qb_error(QB_EXIT_MODEL, "%s: %s", path, qb_last_error()); goto fail; }
    if (ov->has_mean) memcpy(c.mean, ov->mean, sizeof c.mean);
    if (ov->has_std) memcpy(c.std, ov->std, sizeof c.std);
    if (!ms && !ov->has_mean) note(m, "mean: ImageNet 0.485,0.456,0.406 (no questbench.mean metadata; --mean overrides)");
    if (!ss && !ov->has_std) note(m, "std: ImageNet 0.229,0.224,0.225 (no questbench.std metadata; --std overrides)");
    m->crop_pct = 0.875;
    if ((rc = meta_double(&f, "questbench.crop_pct", &dv, &present))) goto fail;
    if (present) m->crop_pct = dv;
    if (ov->crop_pct > 0) m->crop_pct = ov->crop_pct;
    if (!(m->crop_pct > 0 && m->crop_pct <= 1.0)) {
        rc = qb_error(QB_EXIT_MODEL, "%s: crop_pct %g is outside (0, 1]", path, m->crop_pct);
        goto fail;
    }
    const char *ip = ov->interpolation ? ov->interpolation : st_meta_get(&f, "questbench.interpolation");
    m->interp = QB_INTERP_BILINEAR;
    if (ip && qb_interp_parse(ip, &m->interp)) { rc = qb_error(ov->interpolation ? QB_EXIT_USAGE : QB_EXIT_MODEL, "%s: %s", path, qb_last_error()); goto fail; }
    if (!ip) note(m, "interpolation: bilinear, crop_pct %g (timm's fallback; no questbench.interpolation metadata)", m->crop_pct);

    /* Before allocating the parameters: the shapes of a few tensors fix the size of the model,
     * and a valid file holds every parameter (no tensor may be missing), so a file claiming
     * more parameters than it holds values is refused here, not after allocating (and zeroing)
     * gigabytes for a file of a few KB). */
    {
        uint64_t D = (uint64_t)c.dim, F = (uint64_t)c.mlp_dim, K = (uint64_t)c.classes, held = 0;
        uint64_t need = (uint64_t)c.depth * (4 * D * D + 2 * D * F) + pos->shape[1] * D + K * D;
        for (int i = 0; i < f.n_tensors; i++) held += f.tensors[i].numel; /* each ≤ the file size */
        if (need > held) {
            rc = qb_error(QB_EXIT_MODEL,
                          "%s: the tensor shapes imply a %d-block ViT of width %d with at least %llu parameters, "
                          "but the file holds only %llu values (missing tensors?)",
                          path, c.depth, c.dim, (unsigned long long)need, (unsigned long long)held);
            goto fail;
        }
    }
    if ((rc = vit_config_finish(&c))) { rc = qb_error(QB_EXIT_MODEL, "%s: %s", path, qb_last_error()); goto fail; }
    if ((rc = vit_init(&m->vit, &c))) goto fail;

    /* every expected tensor present with its exact shape; nothing unexpected */
    size_t n_exp_max = 8 + (size_t)c.depth * 16;
    expect_t *e = calloc(n_exp_max, sizeof *e);
    if (!e) { rc = qb_error(QB_EXIT_FAIL, "out of memory"); goto fail; }
    int ne = build_expected(e, &m->vit.cfg, &m->vit.params);
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        int found = 0;
        for (int j = 0; j < ne && !found; j++) found = !strcmp(e[j].name, t->name);
        if (!found) {
            rc = qb_error(QB_EXIT_MODEL, "%s: unexpected tensor '%s' for a %d-block %s ViT", path, t->name, c.depth,
                          vit_attn_name(c.attn));
            free(e);
            goto fail;
        }
    }
    for (int j = 0; j < ne; j++) {
        const st_tensor *t = st_find(&f, e[j].name);
        char want[96], got[96];
        if (!t) { rc = qb_error(QB_EXIT_MODEL, "%s: missing tensor '%s'", path, e[j].name); free(e); goto fail; }
        if (!shape_is(t, e[j].ndim, e[j].dims)) {
            shape_str(want, sizeof want, e[j].ndim, e[j].dims);
            shape_str(got, sizeof got, t->ndim, t->shape);
            rc = qb_error(QB_EXIT_MODEL, "%s: tensor '%s' has shape %s, expected %s", path, e[j].name, got, want);
            free(e);
            goto fail;
        }
        if ((rc = st_to_f32(&f, t, e[j].dst))) { free(e); goto fail; }
    }
    free(e);
    const char *names = st_meta_get(&f, "questbench.class_names");
    if (names) {
        if ((rc = split_names(m, names))) goto fail;
        if (m->n_class_names != c.classes) {
            rc = qb_error(QB_EXIT_MODEL, "%s: questbench.class_names has %d lines for %d classes", path,
                          m->n_class_names, c.classes);
            goto fail;
        }
    }
    st_close(&f);
    return 0;
fail:
    st_close(&f);
    qb_model_free(m);
    return rc;
}

void qb_model_free(qb_model *m) {
    vit_free(&m->vit);
    for (int i = 0; i < m->n_class_names; i++) free(m->class_names[i]);
    free(m->class_names);
    m->class_names = NULL;
    m->n_class_names = 0;
}

int qb_param_lookup(const vit_config *c, const vit_params *arena, const char *key, float **ptr, size_t *n) {
    expect_t *e = calloc(8 + (size_t)c->depth * 16, sizeof *e);
    if (!e) return qb_error(QB_EXIT_FAIL, "out of memory");
    int ne = build_expected(e, c, arena), rc = QB_EXIT_MODEL;
    for (int j = 0; j < ne; j++) {
        if (strcmp(e[j].name, key)) continue;
        size_t cnt = 1;
        for (int d = 0; d < e[j].ndim; d++) cnt *= e[j].dims[d];
        *ptr = e[j].dst;
        *n = cnt;
        rc = 0;
        break;
    }
    if (rc) qb_error(rc, "no parameter named '%s' in this model", key);
    free(e);
    return rc;
}

int qb_param_count(const vit_config *c) { return 8 + c->depth * 16; }

const char *qb_param_name(const vit_config *c, int i, char *buf, size_t len) {
    expect_t *e = calloc((size_t)qb_param_count(c), sizeof *e);
    if (!e) return NULL;
    vit_params dummy = {0};
    int ne = build_expected(e, c, &dummy);
    const char *r = NULL;
    if (i >= 0 && i < ne) {
        snprintf(buf, len, "%s", e[i].name);
        r = buf;
    }
    free(e);
    return r;
}
