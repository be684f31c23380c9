/* run.c — `questbench run SUITE.yaml`: clean evaluation, corruptions and attacks for a list
 * of models, appended to one results file and resumable, then the report. Each stage runs
 * the same code as the eval/corrupt/attack commands, with --out and --resume. */
#include "cmd.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define MAX_MODELS 8
#define MAX_ATTACKS 8

typedef struct {
    char name[128], file[1024], attention[16];
} suite_model;

typedef struct {
    char attack[32], eps[256], norm[8], steps[16], step_size[32], restarts[16];
} suite_attack;

typedef struct {
    char path[1024];
    char name[128], output[1024], data[1024], labels[1024], subset[1024], preset[16];
    char limit[16], seed[24], threads[8], batch[8];
    int clean;
    char corruptions[256], severities[32];
    suite_model models[MAX_MODELS];
    int n_models;
    suite_attack attacks[MAX_ATTACKS];
    int n_attacks;
    char baseline_model[128], paper[64];
} suite;

static void help(FILE *f) {
    fprintf(f, "usage: questbench run SUITE.yaml [--dry-run]\n"
               "Runs a suite: clean accuracy, corruptions and attacks for each model, appending to\n"
               "OUTPUT/results.csv (a killed run resumes where it stopped), then writes OUTPUT/report/.\n"
               "--dry-run prints the stages as commands without running them.\n"
               "Suite keys (see configs/*.yaml): name, output, data, labels, subset, limit, preset, seed,\n"
               "threads, batch, models: [{name, file, attention}], clean: true|false,\n"
               "corruptions: {list, severities}, attacks: [{attack, eps, norm, steps, step_size, restarts}],\n"
               "report: {baseline_model, paper}. Values may use $VAR or ${VAR} from the environment.\n");
}

/* $VAR / ${VAR} expansion; an unset variable is an error naming it */
static int expand(char *dst, size_t n, const char *src, const suite *s, const yaml_node_t *node) {
    size_t o = 0;
    for (const char *p = src; *p;) {
        if (*p == '$') {
            int brace = p[1] == '{';
            const char *q = p + 1 + brace;
            char var[128];
            size_t k = 0;
            while ((*q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')) && k < 127)
                var[k++] = *q++;
            var[k] = 0;
            if (brace && *q++ != '}') k = 0;
            const char *v = k ? getenv(var) : NULL;
            if (!v)
                return qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: environment variable '%s' is not set", s->path,
                                node->start_mark.line + 1, node->start_mark.column + 1, k ? var : "?");
            o += (size_t)snprintf(dst + o, o < n ? n - o : 0, "%s", v);
            p = q;
        } else {
            if (o + 1 < n) dst[o] = *p;
            o++, p++;
        }
    }
    if (o >= n) return qb_error(QB_EXIT_USAGE, "%s:%zu: value too long", s->path, node->start_mark.line + 1);
    dst[o] = 0;
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
            const char *k = (const char *)kn->data.scalar.value;
            FIELD("attack", a->attack) FIELD("eps", a->eps) FIELD("norm", a->norm) FIELD("steps", a->steps)
            FIELD("step_size", a->step_size) FIELD("restarts", a->restarts)
            return bad(s, kn, "unknown key in an attack (expected attack, eps, norm, steps, step_size, restarts)");
        }
        if (!a->attack[0] || !a->eps[0]) return bad(s, m, "an attack needs 'attack' and 'eps'");
    }
    return 0;
}

static int parse_suite(suite *s, const char *path) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->clean = 1;
    FILE *f = fopen(path, "rb");
    if (!f) return qb_error(QB_EXIT_USAGE, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = qb_error(QB_EXIT_USAGE, "%s:%zu:%zu: YAML error: %s", path, parser.problem_mark.line + 1,
                      parser.problem_mark.column + 1, parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
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
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* argv builder */
typedef struct {
    char *v[96];
    int n;
    char store[96][1100];
} args;

static void add(args *a, const char *flag, const char *value) {
    if (a->n + 2 >= 95) return;
    if (flag) snprintf(a->store[a->n], sizeof a->store[0], "%s", flag), a->v[a->n] = a->store[a->n], a->n++;
    if (value) snprintf(a->store[a->n], sizeof a->store[0], "%s", value), a->v[a->n] = a->store[a->n], a->n++;
    a->v[a->n] = NULL;
}

static void add_common(args *a, const suite *s, const char *results) {
    add(a, "--data", s->data);
    if (s->labels[0]) add(a, "--labels", s->labels);
    if (s->subset[0]) add(a, "--subset", s->subset);
    if (s->limit[0]) add(a, "--limit", s->limit);
    if (s->seed[0]) add(a, "--seed", s->seed);
    if (s->threads[0]) add(a, "--threads", s->threads);
    if (s->batch[0]) add(a, "--batch", s->batch);
    add(a, "--out", results);
    add(a, "--resume", NULL);
}

static void model_arg(char *buf, size_t n, const suite_model *m) { snprintf(buf, n, "%s=%s", m->name, m->file); }

static int stage(int (*fn)(int, char **), args *a, int dry, int idx, int total) {
    fprintf(stderr, "questbench run: [%d/%d] questbench", idx, total);
    for (int i = 0; i < a->n; i++) fprintf(stderr, " %s", a->v[i]);
    fprintf(stderr, "\n");
    if (dry) return 0;
    return fn(a->n, a->v);
}

int cmd_run(int argc, char **argv) {
    const char *path = NULL;
    int dry = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { help(stdout); return 0; }
        if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "questbench run: unknown option '%s'\n", argv[i]); return QB_EXIT_USAGE; }
        else if (path) { fprintf(stderr, "questbench run: one suite at a time\n"); return QB_EXIT_USAGE; }
        else path = argv[i];
    }
    if (!path) { help(stderr); return QB_EXIT_USAGE; }
    suite *s = calloc(1, sizeof *s);
    int rc = parse_suite(s, path);
    if (rc) { free(s); return cmd_fail(rc); }
    for (int i = 0; i < s->n_models && !dry; i++) {
        struct stat st;
        if (stat(s->models[i].file, &st)) {
            rc = cmd_fail(qb_error(QB_EXIT_MODEL, "%s: model '%s': %s: %s", path, s->models[i].name, s->models[i].file, strerror(errno)));
            free(s);
            return rc;
        }
    }
    if (!dry && mkdir(s->output, 0755) && errno != EEXIST) {
        rc = cmd_fail(qb_error(QB_EXIT_IO, "%s: cannot create output folder: %s", s->output, strerror(errno)));
        free(s);
        return rc;
    }
    char results[1100], report_dir[1100], mbuf[MAX_MODELS][1200];
    snprintf(results, sizeof results, "%.1000s/results.csv", s->output);
    snprintf(report_dir, sizeof report_dir, "%.1000s/report", s->output);
    for (int i = 0; i < s->n_models; i++) model_arg(mbuf[i], sizeof mbuf[i], &s->models[i]);
    int total = 0, idx = 0;
    args *a = calloc(1, sizeof *a);
    /* corrupt and attack take every model at once, unless a model overrides its attention
     * kind (the override is per command): then one stage per model */
    int per_model = 0;
    for (int i = 0; i < s->n_models; i++) per_model |= s->models[i].attention[0] != 0;
    int groups = per_model ? s->n_models : 1;
    total = (s->clean ? s->n_models : 0) + groups * ((s->corruptions[0] ? 1 : 0) + s->n_attacks) + 1;
    for (int i = 0; i < s->n_models && !rc && s->clean; i++) {
        a->n = 0;
        add(a, "eval", NULL), add(a, "--model", mbuf[i]);
        if (s->models[i].attention[0]) add(a, "--attention", s->models[i].attention);
        add_common(a, s, results);
        rc = stage(cmd_eval, a, dry, ++idx, total);
    }
    for (int g = 0; g < groups && !rc; g++) {
        int m0 = per_model ? g : 0, m1 = per_model ? g + 1 : s->n_models;
        if (s->corruptions[0]) {
            a->n = 0;
            add(a, "corrupt", NULL);
            for (int i = m0; i < m1; i++) add(a, "--model", mbuf[i]);
            if (per_model && s->models[g].attention[0]) add(a, "--attention", s->models[g].attention);
            if (s->preset[0]) add(a, "--preset", s->preset);
            add(a, "--corruptions", s->corruptions);
            if (s->severities[0]) add(a, "--severities", s->severities);
            add_common(a, s, results);
            rc = stage(cmd_corrupt, a, dry, ++idx, total);
        }
        for (int k = 0; k < s->n_attacks && !rc; k++) {
            const suite_attack *at = &s->attacks[k];
            a->n = 0;
            add(a, "attack", NULL);
            for (int i = m0; i < m1; i++) add(a, "--model", mbuf[i]);
            if (per_model && s->models[g].attention[0]) add(a, "--attention", s->models[g].attention);
            add(a, "--attack", at->attack), add(a, "--eps", at->eps);
            if (at->norm[0]) add(a, "--norm", at->norm);
            if (at->steps[0]) add(a, "--steps", at->steps);
            if (at->step_size[0]) add(a, "--step-size", at->step_size);
            if (at->restarts[0]) add(a, "--restarts", at->restarts);
            add_common(a, s, results);
            rc = stage(cmd_attack, a, dry, ++idx, total);
        }
    }
    if (!rc) {
        a->n = 0;
        add(a, "report", NULL), add(a, results, NULL), add(a, "--out", report_dir);
        if (s->baseline_model[0]) add(a, "--baseline-model", s->baseline_model);
        if (s->paper[0]) add(a, "--paper", s->paper);
        rc = stage(cmd_report, a, dry, ++idx, total);
    }
    free(a);
    free(s);
    return rc;
}
