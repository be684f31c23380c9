/* train_config.c — the training config (YAML, libyaml): strict keys and values, every error
 * one line "FILE:LINE:COLUMN: problem" (QB_EXIT_USAGE). Values may use $VAR / ${VAR}. */
#include "train.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    const char *path;
    yaml_document_t *doc;
} ctx;

static int bad(const ctx *x, const yaml_node_t *n, const char *fmt, const char *arg) {
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    return qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: %s", x->path, n->start_mark.line + 1, n->start_mark.column + 1, msg);
}

/* the scalar's text with $VAR expansion */
static int text(const ctx *x, const yaml_node_t *n, char *dst, size_t len, const char *key) {
    if (n->type != YAML_SCALAR_NODE) return bad(x, n, "%s: expected a single value", key);
    char var[128];
    int rc = qb_expand_env(dst, len, (const char *)n->data.scalar.value, var);
    if (rc == 1) return bad(x, n, "environment variable '%s' is not set", var);
    if (rc) return bad(x, n, "%s: value too long", key);
    return 0;
}

static int num(const ctx *x, const yaml_node_t *n, const char *key, double lo, double hi, int lo_open, double *out) {
    char b[256];
    int rc = text(x, n, b, sizeof b, key);
    if (rc) return rc;
    char *end;
    errno = 0;
    double v = strtod(b, &end);
    if (end == b || *end || errno || !isfinite(v) || v < lo || v > hi || (lo_open && v == lo)) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: expected a number in %c%g, %g], got '%.100s'", key, lo_open ? '(' : '[', lo, hi, b);
        return bad(x, n, "%s", msg);
    }
    *out = v;
    return 0;
}

static int integer(const ctx *x, const yaml_node_t *n, const char *key, long lo, long hi, long *out) {
    char b[256];
    int rc = text(x, n, b, sizeof b, key);
    if (rc) return rc;
    char *end;
    errno = 0;
    long v = strtol(b, &end, 10);
    if (end == b || *end || errno || v < lo || v > hi) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s: expected an integer in [%ld, %ld], got '%.100s'", key, lo, hi, b);
        return bad(x, n, "%s", msg);
    }
    *out = v;
    return 0;
}

static int boolean(const ctx *x, const yaml_node_t *n, const char *key, int *out) {
    char b[32];
    int rc = text(x, n, b, sizeof b, key);
    if (rc) return rc;
    if (!strcmp(b, "true") || !strcmp(b, "yes")) *out = 1;
    else if (!strcmp(b, "false") || !strcmp(b, "no")) *out = 0;
    else return bad(x, n, "%s: expected true or false", key);
    return 0;
}

/* three numbers: a sequence [a, b, c] or "a,b,c" */
static int triple(const ctx *x, const yaml_node_t *n, const char *key, float out[3]) {
    if (n->type == YAML_SEQUENCE_NODE) {
        int k = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, k++) {
            if (k == 3) return bad(x, n, "%s: expected three numbers", key);
            double v;
            int rc = num(x, yaml_document_get_node(x->doc, *it), key, -1e6, 1e6, 0, &v);
            if (rc) return rc;
            out[k] = (float)v;
        }
        if (k != 3) return bad(x, n, "%s: expected three numbers", key);
        return 0;
    }
    char b[256];
    int rc = text(x, n, b, sizeof b, key);
    if (rc) return rc;
    char *p = b;
    for (int k = 0; k < 3; k++) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v)) return bad(x, n, "%s: expected three numbers", key);
        out[k] = (float)v;
        p = end;
        while (*p == ' ') p++;
        if (k < 2 && *p++ != ',') return bad(x, n, "%s: expected three numbers", key);
    }
    if (*p) return bad(x, n, "%s: expected three numbers", key);
    return 0;
}

static const char *key_of(const yaml_node_t *k) { return k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : ""; }

static int parse_model(const ctx *x, yaml_node_t *map, qb_train_config *c) {
    if (map->type != YAML_MAPPING_NODE) return bad(x, map, "%s: expected a mapping", "model");
    int rc = 0;
    yaml_node_t *heads_node = NULL, *patch_node = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top && !rc; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *v = yaml_document_get_node(x->doc, p->value);
        const char *k = key_of(kn);
        long i = 0;
        char b[64];
        if (!strcmp(k, "img_size")) { rc = integer(x, v, k, 1, 4096, &i); c->img_size = (int)i; }
        else if (!strcmp(k, "patch")) { rc = integer(x, v, k, 1, 1024, &i); c->patch = (int)i; }
        else if (!strcmp(k, "dim")) { rc = integer(x, v, k, 1, 65536, &i); c->dim = (int)i; }
        else if (!strcmp(k, "depth")) { rc = integer(x, v, k, 1, 1024, &i); c->depth = (int)i; }
        else if (!strcmp(k, "heads")) { rc = integer(x, v, k, 1, 4096, &i); c->heads = (int)i; }
        else if (!strcmp(k, "classes")) { rc = integer(x, v, k, 2, 100000, &i); c->classes = (int)i; }
        else if (!strcmp(k, "mlp_ratio")) rc = num(x, v, k, 0, 64, 1, &c->mlp_ratio);
        else if (!strcmp(k, "quest_eps")) rc = num(x, v, k, 0, 1, 1, &c->quest_eps);
        else if (!strcmp(k, "mean")) rc = triple(x, v, k, c->mean);
        else if (!strcmp(k, "std")) {
            if (!(rc = triple(x, v, k, c->std)))
                for (int j = 0; j < 3; j++)
                    if (!(c->std[j] > 0)) return bad(x, v, "%s: values must be > 0", k);
        } else if (!strcmp(k, "attention")) {
            if ((rc = text(x, v, b, sizeof b, k))) break;
            if (vit_attn_parse(b, &c->attn)) rc = bad(x, v, "attention: expected sdpa, qknorm or quest, got '%s'", b);
        } else
            rc = bad(x, kn, "unknown key '%s' in model (expected img_size, patch, dim, depth, heads, mlp_ratio, "
                            "classes, attention, quest_eps, mean, std)", k);
        if (!strcmp(k, "heads")) heads_node = v;
        if (!strcmp(k, "patch")) patch_node = v;
    }
    if (rc) return rc;
    if (c->dim % c->heads) return bad(x, heads_node ? heads_node : map, "model.heads: %s", "must divide model.dim");
    if (c->img_size % c->patch) return bad(x, patch_node ? patch_node : map, "model.patch: %s", "must divide model.img_size");
    if ((int)lround(c->dim * c->mlp_ratio) < 1) return bad(x, map, "model: %s", "dim * mlp_ratio must be >= 1");
    return 0;
}

static int parse_spurious(const ctx *x, yaml_node_t *map, qb_train_config *c, yaml_node_t **size_node) {
    if (map->type != YAML_MAPPING_NODE) return bad(x, map, "%s: expected a mapping {strength, size}", "spurious");
    int rc = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top && !rc; p++) {
        yaml_node_t *kn = yaml_document_get_node(x->doc, p->key), *v = yaml_document_get_node(x->doc, p->value);
        const char *k = key_of(kn);
        long i;
        if (!strcmp(k, "strength")) rc = num(x, v, "spurious.strength", 0, 1, 0, &c->spurious_strength);
        else if (!strcmp(k, "size")) {
            rc = integer(x, v, "spurious.size", 1, 4096, &i);
            c->spurious_size = (int)i;
            *size_node = v;
        } else rc = bad(x, kn, "unknown key '%s' in spurious (expected strength, size)", k);
    }
    return rc;
}

static uint64_t file_hash(FILE *f) {
    uint64_t h = 0xCBF29CE484222325ull;
    int ch;
    rewind(f);
    while ((ch = fgetc(f)) != EOF) h = (h ^ (uint8_t)ch) * 0x100000001B3ull;
    rewind(f);
    return h;
}

int qb_train_config_load(qb_train_config *c, const char *path) {
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    /* defaults: a small CIFAR-10 ViT and a short DeiT-like recipe */
    c->img_size = 32, c->patch = 4, c->dim = 192, c->depth = 6, c->heads = 3, c->classes = 10, c->mlp_ratio = 4;
    c->attn = VIT_ATTN_SDPA, c->quest_eps = 1e-6;
    const float cm[3] = {0.4914f, 0.4822f, 0.4465f}, cs[3] = {0.2470f, 0.2435f, 0.2616f};
    memcpy(c->mean, cm, sizeof cm), memcpy(c->std, cs, sizeof cs);
    c->format = QB_FORMAT_FOLDER;
    c->epochs = 10, c->batch = 128;
    c->lr = 1e-3, c->min_lr = 1e-5, c->warmup_lr = 1e-6, c->warmup_epochs = 1;
    c->weight_decay = 0.05, c->beta1 = 0.9, c->beta2 = 0.999, c->adam_eps = 1e-8;
    c->label_smoothing = 0.1, c->crop_padding = 4, c->hflip = 1, c->spurious_size = 4;
    c->log_every = 50, c->eval_batch = 250;

    FILE *f = fopen(path, "rb");
    if (!f) return qb_error(QB_EXIT_USAGE, "%s: cannot open: %s", path, strerror(errno));
    c->hash = file_hash(f);
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
                          parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
    }
    ctx x = {path, &doc};
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc), *data_node = NULL, *minlr_node = NULL;
    yaml_node_t *size_node = NULL, *batch_node = NULL, *pad_node = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = root ? bad(&x, root, "%s", "the config must be a mapping of keys") : qb_error(QB_EXIT_USAGE, "%s: empty config", path);
        goto done;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && !rc; p++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, p->key), *v = yaml_document_get_node(&doc, p->value);
        const char *k = key_of(kn);
        long i = 0;
        char b[64];
        if (!strcmp(k, "model")) rc = parse_model(&x, v, c);
        else if (!strcmp(k, "data")) { rc = text(&x, v, c->data, sizeof c->data, k); data_node = v; }
        else if (!strcmp(k, "output")) rc = text(&x, v, c->output, sizeof c->output, k);
        else if (!strcmp(k, "format")) {
            if ((rc = text(&x, v, b, sizeof b, k))) break;
            if (!strcmp(b, "folder")) c->format = QB_FORMAT_FOLDER;
            else if (!strcmp(b, "cifar-binary")) c->format = QB_FORMAT_CIFAR_BINARY;
            else rc = bad(&x, v, "format: expected folder or cifar-binary, got '%s'", b);
        } else if (!strcmp(k, "seed")) { rc = integer(&x, v, k, 0, 2000000000, &i); c->seed = (uint64_t)i; }
        else if (!strcmp(k, "epochs")) { rc = integer(&x, v, k, 1, 100000, &i); c->epochs = (int)i; }
        else if (!strcmp(k, "batch")) { rc = integer(&x, v, k, 1, 65536, &i); c->batch = (int)i; batch_node = v; }
        else if (!strcmp(k, "eval_batch")) { rc = integer(&x, v, k, 1, 65536, &i); c->eval_batch = (int)i; }
        else if (!strcmp(k, "train_limit")) { rc = integer(&x, v, k, 0, 2000000000, &i); c->train_limit = (int)i; }
        else if (!strcmp(k, "test_limit")) { rc = integer(&x, v, k, 0, 2000000000, &i); c->test_limit = (int)i; }
        else if (!strcmp(k, "log_every")) { rc = integer(&x, v, k, 0, 2000000000, &i); c->log_every = (int)i; }
        else if (!strcmp(k, "threads")) { rc = integer(&x, v, k, 0, 1024, &i); c->threads = (int)i; }
        else if (!strcmp(k, "crop_padding")) { rc = integer(&x, v, k, 0, 1024, &i); c->crop_padding = (int)i; pad_node = v; }
        else if (!strcmp(k, "hflip")) rc = boolean(&x, v, k, &c->hflip);
        else if (!strcmp(k, "lr")) rc = num(&x, v, k, 0, 10, 1, &c->lr);
        else if (!strcmp(k, "min_lr")) { rc = num(&x, v, k, 0, 10, 0, &c->min_lr); minlr_node = v; }
        else if (!strcmp(k, "warmup_lr")) rc = num(&x, v, k, 0, 10, 0, &c->warmup_lr);
        else if (!strcmp(k, "warmup_epochs")) rc = num(&x, v, k, 0, 100000, 0, &c->warmup_epochs);
        else if (!strcmp(k, "weight_decay")) rc = num(&x, v, k, 0, 10, 0, &c->weight_decay);
        else if (!strcmp(k, "adam_eps")) rc = num(&x, v, k, 0, 1, 1, &c->adam_eps);
        else if (!strcmp(k, "label_smoothing")) rc = num(&x, v, k, 0, 0.999, 0, &c->label_smoothing);
        else if (!strcmp(k, "clip_grad")) rc = num(&x, v, k, 0, 1e9, 0, &c->clip_grad);
        else if (!strcmp(k, "betas")) {
            if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top - v->data.sequence.items.start != 2) {
                rc = bad(&x, v, "%s: expected [beta1, beta2]", k);
                break;
            }
            yaml_node_item_t *it = v->data.sequence.items.start;
            if (!(rc = num(&x, yaml_document_get_node(&doc, it[0]), "betas[0]", 0, 1, 0, &c->beta1)))
                rc = num(&x, yaml_document_get_node(&doc, it[1]), "betas[1]", 0, 1, 0, &c->beta2);
            if (!rc && (c->beta1 >= 1 || c->beta2 >= 1)) rc = bad(&x, v, "%s: each beta must be < 1", k);
        } else if (!strcmp(k, "lr_schedule")) {
            if ((rc = text(&x, v, b, sizeof b, k))) break;
            if (!strcmp(b, "iteration")) c->per_epoch_schedule = 0;
            else if (!strcmp(b, "epoch")) c->per_epoch_schedule = 1;
            else rc = bad(&x, v, "lr_schedule: expected iteration or epoch, got '%s'", b);
        } else if (!strcmp(k, "spurious")) rc = parse_spurious(&x, v, c, &size_node);
        else
            rc = bad(&x, kn, "unknown key '%s' (expected model, data, format, output, seed, epochs, batch, lr, min_lr, "
                             "warmup_lr, warmup_epochs, lr_schedule, weight_decay, betas, adam_eps, label_smoothing, "
                             "clip_grad, crop_padding, hflip, spurious, log_every, eval_batch, threads, train_limit, "
                             "test_limit)", k);
    }
    if (rc) goto done;
    /* combinations */
    if (!c->data[0]) { rc = qb_error(QB_EXIT_USAGE, "%s: no 'data' folder", path); goto done; }
    if (!c->output[0]) { rc = qb_error(QB_EXIT_USAGE, "%s: no 'output' folder", path); goto done; }
    if (c->min_lr > c->lr) { rc = bad(&x, minlr_node, "min_lr: %s", "must not exceed lr"); goto done; }
    if (c->warmup_epochs > c->epochs) { rc = qb_error(QB_EXIT_USAGE, "%s: warmup_epochs exceeds epochs", path); goto done; }
    if (c->format == QB_FORMAT_CIFAR_BINARY && (c->img_size != 32 || c->classes != 10)) {
        rc = bad(&x, data_node ? data_node : root, "%s", "format cifar-binary holds 32x32 images of 10 classes: set model.img_size 32 and classes 10");
        goto done;
    }
    if (c->spurious_strength > 0 && c->spurious_size > c->img_size) {
        rc = bad(&x, size_node ? size_node : root, "spurious.size: %s", "larger than the image");
        goto done;
    }
    if (c->crop_padding > c->img_size) { rc = bad(&x, pad_node, "crop_padding: %s", "larger than the image"); goto done; }
    if (c->train_limit && c->train_limit < c->batch) {
        rc = bad(&x, batch_node ? batch_node : root, "batch: %s", "larger than train_limit (no full batch)");
        goto done;
    }
    vit_config vc;
    if ((rc = qb_train_vit_config(c, &vc))) rc = qb_error(QB_EXIT_USAGE, "%s: %s", path, qb_last_error());
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int qb_train_vit_config(const qb_train_config *t, vit_config *c) {
    memset(c, 0, sizeof *c);
    c->img_size = t->img_size, c->patch = t->patch, c->in_chans = 3, c->dim = t->dim, c->depth = t->depth;
    c->heads = t->heads, c->mlp_dim = (int)lround(t->dim * t->mlp_ratio), c->classes = t->classes;
    c->class_token = 1, c->qkv_bias = 1, c->pool = VIT_POOL_TOKEN, c->attn = t->attn;
    c->norm_eps = 1e-6f, c->quest_eps = (float)t->quest_eps;
    memcpy(c->mean, t->mean, sizeof c->mean), memcpy(c->std, t->std, sizeof c->std);
    return vit_config_finish(c);
}
