/* train_ckpt.c — training checkpoints: the model as a timm-layout safetensors file with the
 * questbench.* metadata the engine reads (so eval/predict/info load it directly) plus
 * questbench.train.* provenance, and the optimizer state (AdamW m, v, step, epoch, schedule
 * position) in a sibling safetensors file. Both are written atomically (tmp + rename). */
#include "train.h"
#include "model.h"
#include "safetensors.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the tensor's timm shape from its name and element count */
static int param_shape(const vit_config *c, const char *name, size_t n, uint64_t *dims) {
    size_t len = strlen(name);
#define ENDS(s) (len >= strlen(s) && !strcmp(name + len - strlen(s), s))
    if (!strcmp(name, "patch_embed.proj.weight")) {
        dims[0] = c->dim, dims[1] = c->in_chans, dims[2] = c->patch, dims[3] = c->patch;
        return 4;
    }
    if (!strcmp(name, "cls_token") || !strcmp(name, "pos_embed")) {
        dims[0] = 1, dims[1] = n / c->dim, dims[2] = c->dim;
        return 3;
    }
    if (ENDS(".weight") && !strstr(name, "norm")) { /* Linear: (out, in) */
        size_t in = ENDS("fc2.weight") ? (size_t)c->mlp_dim : (size_t)c->dim;
        dims[0] = n / in, dims[1] = in;
        return 2;
    }
#undef ENDS
    dims[0] = n;
    return 1;
}

static void arch_str(char *buf, size_t n, const vit_config *c) {
    snprintf(buf, n, "img %d patch %d dim %d depth %d heads %d mlp %d classes %d %s", c->img_size, c->patch, c->dim,
             c->depth, c->heads, c->mlp_dim, c->classes, vit_attn_name(c->attn));
}

#define MAX_META 48

typedef struct {
    st_meta meta[MAX_META];
    char store[MAX_META][2][256];
    int n;
} meta_list;

static void put(meta_list *l, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(meta_list *l, const char *key, const char *fmt, ...) {
    if (l->n == MAX_META) return;
    va_list ap;
    va_start(ap, fmt);
    snprintf(l->store[l->n][0], 256, "%s", key);
    vsnprintf(l->store[l->n][1], 256, fmt, ap);
    va_end(ap);
    l->meta[l->n].key = l->store[l->n][0];
    l->meta[l->n].value = l->store[l->n][1];
    l->n++;
}

int qb_train_save(const char *path, const char *optim_path, const vit_model *m, const qb_adamw *o,
                  const qb_train_config *c, const qb_train_state *st, char **class_names) {
    const vit_config *vc = &m->cfg;
    int np = qb_param_count(vc), n = 0, rc = 0;
    st_write_tensor *t = calloc((size_t)np, sizeof *t);
    char (*names)[96] = calloc((size_t)np, 96);
    char *cls_names = NULL;
    meta_list *ml = calloc(1, sizeof *ml);
    if (!t || !names || !ml) { rc = qb_error(QB_EXIT_FAIL, "out of memory"); goto out; }
    for (int i = 0; i < np; i++) {
        if (!qb_param_name(vc, i, names[n], sizeof names[n])) break;
        float *ptr;
        size_t cnt;
        if ((rc = qb_param_lookup(vc, &m->params, names[n], &ptr, &cnt))) goto out;
        t[n].name = names[n];
        t[n].data = ptr;
        t[n].ndim = param_shape(vc, names[n], cnt, t[n].shape);
        n++;
    }
    /* what the engine reads (engine.md §3.7), then the training provenance */
    put(ml, "format", "pt");
    put(ml, "questbench.schema", "1");
    put(ml, "questbench.arch", "vit");
    put(ml, "questbench.attn", "%s", vit_attn_name(vc->attn));
    put(ml, "questbench.num_heads", "%d", vc->heads);
    put(ml, "questbench.head_dim", "%d", vc->head_dim);
    put(ml, "questbench.global_pool", "token");
    put(ml, "questbench.norm_eps", "1e-06");
    if (vc->attn == VIT_ATTN_QUEST) put(ml, "questbench.quest_eps", "%.9g", vc->quest_eps);
    put(ml, "questbench.mean", "%.9g,%.9g,%.9g", vc->mean[0], vc->mean[1], vc->mean[2]);
    put(ml, "questbench.std", "%.9g,%.9g,%.9g", vc->std[0], vc->std[1], vc->std[2]);
    put(ml, "questbench.crop_pct", "1.0");
    put(ml, "questbench.interpolation", "bicubic");
    put(ml, "questbench.act", "gelu_erf");
    put(ml, "questbench.num_classes", "%d", vc->classes);
    put(ml, "questbench.img_size", "%d", vc->img_size);
    put(ml, "questbench.source", "questbench train %s", QB_VERSION);
    put(ml, "questbench.train.config", "%s", c->path);
    put(ml, "questbench.train.config_fnv1a", "%016llx", (unsigned long long)c->hash);
    put(ml, "questbench.train.data", "%s (%s)", c->data, c->format == QB_FORMAT_FOLDER ? "folder" : "cifar-binary");
    put(ml, "questbench.train.seed", "%llu", (unsigned long long)c->seed);
    put(ml, "questbench.train.epoch", "%d", st->epoch);
    put(ml, "questbench.train.epochs", "%d", c->epochs);
    put(ml, "questbench.train.step", "%ld", st->step);
    put(ml, "questbench.train.batch", "%d", c->batch);
    put(ml, "questbench.train.optimizer", "adamw lr %g betas %g,%g eps %g weight_decay %g (no decay: biases, norms, pos_embed, cls_token)",
        c->lr, c->beta1, c->beta2, c->adam_eps, c->weight_decay);
    put(ml, "questbench.train.schedule", "warmup %g epochs from %g, cosine to %g, stepped per %s", c->warmup_epochs,
        c->warmup_lr, c->min_lr, c->per_epoch_schedule ? "epoch (timm t_in_epochs)" : "iteration");
    put(ml, "questbench.train.label_smoothing", "%g", c->label_smoothing);
    put(ml, "questbench.train.clip_grad", "%g", c->clip_grad);
    put(ml, "questbench.train.augment", "random crop pad %d, hflip %s", c->crop_padding, c->hflip ? "yes" : "no");
    put(ml, "questbench.train.init", "timm (trunc_normal 0.02, cls normal 1e-6, conv default)");
    if (c->spurious_strength > 0)
        put(ml, "questbench.train.spurious", "strength %g size %d (train images only)", c->spurious_strength,
            c->spurious_size);
    if (st->test_top1 >= 0) put(ml, "questbench.train.test_top1", "%.4f", st->test_top1);
    if (class_names) {
        size_t len = 1;
        for (int k = 0; k < vc->classes; k++) len += strlen(class_names[k]) + 1;
        cls_names = malloc(len);
        if (!cls_names) { rc = qb_error(QB_EXIT_FAIL, "out of memory"); goto out; }
        size_t off = 0;
        for (int k = 0; k < vc->classes; k++) off += (size_t)sprintf(cls_names + off, "%s%s", k ? "\n" : "", class_names[k]);
        if (ml->n < MAX_META) {
            ml->meta[ml->n].key = "questbench.class_names";
            ml->meta[ml->n].value = cls_names;
            ml->n++;
        }
    }
    if ((rc = st_write_f32(path, t, n, ml->meta, ml->n))) goto out;

    /* optimizer state */
    meta_list *ol = calloc(1, sizeof *ol);
    if (!ol) { rc = qb_error(QB_EXIT_FAIL, "out of memory"); goto out; }
    char arch[256];
    arch_str(arch, sizeof arch, vc);
    put(ol, "questbench.optim", "adamw");
    put(ol, "questbench.optim.arch", "%s", arch);
    put(ol, "questbench.optim.step", "%ld", o->step);
    put(ol, "questbench.optim.epoch", "%d", st->epoch);
    put(ol, "questbench.optim.lr", "%.17g", st->lr);
    put(ol, "questbench.optim.test_top1", "%.17g", st->test_top1);
    put(ol, "questbench.optim.config_fnv1a", "%016llx", (unsigned long long)c->hash);
    st_write_tensor ot[2] = {{"exp_avg", 1, {m->num_params}, o->m}, {"exp_avg_sq", 1, {m->num_params}, o->v}};
    rc = st_write_f32(optim_path, ot, 2, ol->meta, ol->n);
    free(ol);
out:
    free(t);
    free(names);
    free(ml);
    free(cls_names);
    return rc;
}

static int meta_long(const st_file *f, const char *key, long *out) {
    const char *v = st_meta_get(f, key);
    char *end;
    if (!v) return qb_error(QB_EXIT_MODEL, "%s: no %s metadata (not a questbench optimizer state)", f->path, key);
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < 0) return qb_error(QB_EXIT_MODEL, "%s: bad %s '%s'", f->path, key, v);
    *out = x;
    return 0;
}

int qb_train_load(const char *path, const char *optim_path, vit_model *m, qb_adamw *o, const qb_train_config *c,
                  qb_train_state *st) {
    qb_model q;
    int rc = qb_model_load(&q, path, NULL);
    if (rc) return rc;
    const vit_config *a = &q.vit.cfg, *b = &m->cfg;
    char have[256], want[256];
    arch_str(have, sizeof have, a);
    arch_str(want, sizeof want, b);
    if (strcmp(have, want) || q.vit.num_params != m->num_params) {
        qb_model_free(&q);
        return qb_error(QB_EXIT_MODEL, "%s: checkpoint of another architecture (%s); the config asks for %s", path,
                        have, want);
    }
    memcpy(m->params_mem, q.vit.params_mem, m->num_params * sizeof(float));
    qb_model_free(&q);

    st_file f;
    if ((rc = st_open(&f, optim_path))) return rc;
    const char *arch = st_meta_get(&f, "questbench.optim.arch");
    const st_tensor *tm = st_find(&f, "exp_avg"), *tv = st_find(&f, "exp_avg_sq");
    long step = 0, epoch = 0;
    if (!arch || strcmp(arch, want)) {
        rc = qb_error(QB_EXIT_MODEL, "%s: optimizer state of another architecture (%s); the config asks for %s",
                      optim_path, arch ? arch : "unknown", want);
    } else if (!tm || !tv || tm->numel != m->num_params || tv->numel != m->num_params) {
        rc = qb_error(QB_EXIT_MODEL, "%s: exp_avg/exp_avg_sq missing or not %zu values", optim_path, m->num_params);
    } else if (!(rc = meta_long(&f, "questbench.optim.step", &step)) &&
               !(rc = meta_long(&f, "questbench.optim.epoch", &epoch)) && !(rc = st_to_f32(&f, tm, o->m))) {
        rc = st_to_f32(&f, tv, o->v);
    }
    if (!rc) { /* the model is written first: a crash between the two leaves them at different steps */
        st_file mf;
        if (!(rc = st_open(&mf, path))) {
            const char *ms = st_meta_get(&mf, "questbench.train.step");
            if (!ms || strtol(ms, NULL, 10) != step)
                rc = qb_error(QB_EXIT_MODEL, "%s: model is at step %s but %s at step %ld (interrupted save?)", path,
                              ms ? ms : "unknown", optim_path, step);
            st_close(&mf);
        }
    }
    if (!rc) {
        const char *lr = st_meta_get(&f, "questbench.optim.lr"), *top = st_meta_get(&f, "questbench.optim.test_top1");
        o->step = step;
        st->step = step;
        st->epoch = (int)epoch;
        st->lr = lr ? strtod(lr, NULL) : 0;
        st->test_top1 = top ? strtod(top, NULL) : -1;
        const char *h = st_meta_get(&f, "questbench.optim.config_fnv1a");
        st->config_changed = !h || strtoull(h, NULL, 16) != c->hash;
    }
    st_close(&f);
    return rc;
}
