/* suite.c — the suite file parser of `questbench run` (libyaml document API). Untrusted input:
 * every value is copied with a bound, every node type checked before use. */
#include "suite.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* $VAR / ${VAR} expansion; an unset variable is an error naming it */
static int expand(char *dst, size_t n, const char *src, const suite *s, const yaml_node_t *node) {
    char var[128];
    int rc = qb_expand_env(dst, n, src, var);
    if (rc == 1)
        return qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: environment variable '%s' is not set", s->path,
                        node->start_mark.line + 1, node->start_mark.column + 1, var);
    if (rc) return qb_error(QB_EXIT_USAGE, "%s:%zu: value too long", s->path, node->start_mark.line + 1);
    return 0;
}

static int bad(const suite *s, const yaml_node_t *node, const char *what) {
    return qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: %s", s->path, node->start_mark.line + 1, node->start_mark.column + 1, what);
}

/* A scalar, or a sequence of scalars joined with commas (eps lists). */
static int scalar(yaml_document_t *doc, yaml_node_t *node, char *dst, size_t n, const suite *s) {
    if (node->type == YAML_SCALAR_NODE) return expand(dst, n, (const char *)node->data.scalar.value, s, node);
    if (node->type == YAML_SEQUENCE_NODE) {
        size_t o = 0;
        dst[0] = 0;
        for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
            yaml_node_t *v = yaml_document_get_node(doc, *it);
            if (v->type != YAML_SCALAR_NODE) return bad(s, v, "expected a list of plain values");
            o += (size_t)snprintf(dst + o, o < n ? n - o : 0, "%s%s", o ? "," : "", (const char *)v->data.scalar.value);
        }
        if (o >= n) return bad(s, node, "list too long");
        return 0;
    }
    return bad(s, node, "expected a value");
}

#define FIELD(key_, dst_)                                                                                          \
    if (!strcmp(k, key_)) {                                                                                        \
        if ((rc = scalar(doc, v, dst_, sizeof dst_, s))) return rc;                                               \
        continue;                                                                                                  \
    }

static int parse_models(yaml_document_t *doc, yaml_node_t *seq, suite *s) {
    if (seq->type != YAML_SEQUENCE_NODE) return bad(s, seq, "models: expected a list");
    int rc;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        yaml_node_t *m = yaml_document_get_node(doc, *it);
        if (m->type != YAML_MAPPING_NODE) return bad(s, m, "models: each entry is a mapping {name, file, attention}");
        if (s->n_models == MAX_MODELS) return bad(s, m, "more than 8 models");
        suite_model *sm = &s->models[s->n_models++];
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
            if (kn->type != YAML_SCALAR_NODE) return bad(s, kn, "keys must be plain words");
            const char *k = (const char *)kn->data.scalar.value;
            FIELD("name", sm->name) FIELD("file", sm->file) FIELD("attention", sm->attention)
            return bad(s, kn, "unknown key in a model (expected name, file, attention)");
        }
        if (!sm->file[0]) return bad(s, m, "a model needs 'file'");
        if (!sm->name[0]) {
            const char *b = strrchr(sm->file, '/');
            snprintf(sm->name, sizeof sm->name, "%s", b ? b + 1 : sm->file);
            char *dot = strstr(sm->name, ".safetensors");
            if (dot) *dot = 0;
        }
    }
    return 0;
}

static int parse_attacks(yaml_document_t *doc, yaml_node_t *seq, suite *s) {
    if (seq->type != YAML_SEQUENCE_NODE) return bad(s, seq, "attacks: expected a list");
    int rc;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        yaml_node_t *m = yaml_document_get_node(doc, *it);
        if (m->type != YAML_MAPPING_NODE) return bad(s, m, "attacks: each entry is a mapping {attack, eps, ...}");
        if (s->n_attacks == MAX_ATTACKS) return bad(s, m, "more than 8 attack entries");
        suite_attack *a = &s->attacks[s->n_attacks++];
        for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
            if (kn->type != YAML_SCALAR_NODE) return bad(s, kn, "keys must be plain words");
            const char *k = (const char *)kn->data.scalar.value;
            FIELD("attack", a->attack) FIELD("eps", a->eps) FIELD("norm", a->norm) FIELD("steps", a->steps)
            FIELD("step_size", a->step_size) FIELD("restarts", a->restarts) FIELD("eps_space", a->eps_space)
            FIELD("protocol", a->protocol) FIELD("label_source", a->label_source)
            return bad(s, kn, "unknown key in an attack (expected attack, eps, norm, steps, step_size, restarts, "
                              "eps_space, protocol, label_source)");
        }
        if (!a->attack[0] || !a->eps[0]) return bad(s, m, "an attack needs 'attack' and 'eps'");
    }
    return 0;
}

/* the document once loaded; `path` is the label used in messages */
static int parse_loaded(suite *s, yaml_parser_t *parser, const char *path) {
    yaml_document_t doc;
    int rc = 0;
    if (!yaml_parser_load(parser, &doc)) {
        return qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: YAML error: %s", path, parser->problem_mark.line + 1,
                        parser->problem_mark.column + 1, parser->problem ? parser->problem : "unknown");
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = root ? bad(s, root, "the suite must be a mapping of keys") : qb_error(QB_EXIT_USAGE, "%s: empty suite", path);
        goto done;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top && !rc; p++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, p->key), *v = yaml_document_get_node(&doc, p->value);
        if (kn->type != YAML_SCALAR_NODE) { rc = bad(s, kn, "keys must be plain words"); break; }
        const char *k = (const char *)kn->data.scalar.value;
        yaml_document_t *d = &doc;
#define TOP(key_, dst_) if (!strcmp(k, key_)) { rc = scalar(d, v, dst_, sizeof dst_, s); continue; }
        TOP("name", s->name) TOP("output", s->output) TOP("data", s->data) TOP("labels", s->labels)
        TOP("subset", s->subset) TOP("preset", s->preset) TOP("limit", s->limit) TOP("seed", s->seed)
        TOP("threads", s->threads) TOP("batch", s->batch)
#undef TOP
        if (!strcmp(k, "clean")) {
            char b[16];
            if ((rc = scalar(d, v, b, sizeof b, s))) break;
            if (!strcmp(b, "true") || !strcmp(b, "yes")) s->clean = 1;
            else if (!strcmp(b, "false") || !strcmp(b, "no")) s->clean = 0;
            else rc = bad(s, v, "clean: expected true or false");
        } else if (!strcmp(k, "models")) rc = parse_models(d, v, s);
        else if (!strcmp(k, "attacks")) rc = parse_attacks(d, v, s);
        else if (!strcmp(k, "corruptions") || !strcmp(k, "report")) {
            if (v->type != YAML_MAPPING_NODE) { rc = bad(s, v, "expected a mapping"); break; }
            int corr = !strcmp(k, "corruptions");
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top && !rc; q++) {
                yaml_node_t *kk = yaml_document_get_node(d, q->key), *vv = yaml_document_get_node(d, q->value);
                if (kk->type != YAML_SCALAR_NODE) { rc = bad(s, kk, "keys must be plain words"); break; }
                const char *n = (const char *)kk->data.scalar.value;
                char *dst = NULL;
                size_t len = 0;
                if (corr && !strcmp(n, "list")) dst = s->corruptions, len = sizeof s->corruptions;
                else if (corr && !strcmp(n, "severities")) dst = s->severities, len = sizeof s->severities;
                else if (!corr && !strcmp(n, "baseline_model")) dst = s->baseline_model, len = sizeof s->baseline_model;
                else if (!corr && !strcmp(n, "paper")) dst = s->paper, len = sizeof s->paper;
                if (!dst) rc = bad(s, kk, corr ? "unknown key in corruptions (expected list, severities)"
                                             : "unknown key in report (expected baseline_model, paper)");
                else rc = scalar(d, vv, dst, len, s);
            }
            if (corr && !rc && !s->corruptions[0]) snprintf(s->corruptions, sizeof s->corruptions, "common");
        } else rc = bad(s, kn, "unknown key");
    }
    if (!rc && !s->n_models) rc = qb_error(QB_EXIT_USAGE, "%s: no models", path);
    if (!rc && !s->data[0]) rc = qb_error(QB_EXIT_USAGE, "%s: no data", path);
    if (!rc && !s->output[0]) rc = qb_error(QB_EXIT_USAGE, "%s: no output folder", path);
done:
    yaml_document_delete(&doc);
    return rc;
}

static void suite_init(suite *s, const char *path) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->clean = 1;
}

int qb_suite_parse_file(suite *s, const char *path) {
    suite_init(s, path);
    FILE *f = fopen(path, "rb");
    if (!f) return qb_error(QB_EXIT_USAGE, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = parse_loaded(s, &parser, path);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

int qb_suite_parse_buffer(suite *s, const void *buf, size_t size, const char *label) {
    suite_init(s, label);
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, size);
    int rc = parse_loaded(s, &parser, label);
    yaml_parser_delete(&parser);
    return rc;
}
