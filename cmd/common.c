/* common.c — option parsing and model loading shared by the commands. */
#include "cmd.h"
#include "results.h"
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_dataset_id(char *out, size_t len, const char *data, const char *labels, const char *subset, long limit,
                   const qb_model_overrides *ov) {
    size_t o = (size_t)snprintf(out, len, "%s", data);
    const char *sep = "?";
#define ADD(...) (o += (size_t)snprintf(out + o, o < len ? len - o : 0, __VA_ARGS__), sep = "&")
    const char *files[2] = {labels, subset}, *keys[2] = {"labels", "subset"};
    for (int i = 0; i < 2; i++) {
        if (!files[i]) continue;
        char sha[65];
        if (qb_sha256_file(files[i], sha)) return qb_error(QB_EXIT_DATA, "%s: cannot read", files[i]);
        ADD("%s%s=%.12s", sep, keys[i], sha);
    }
    if (limit > 0) ADD("%slimit=%ld", sep, limit);
    /* the model options that change what the network sees or computes (--attention is a key field of its own) */
    if (ov) {
        if (ov->crop_pct > 0) ADD("%scrop-pct=%.9g", sep, ov->crop_pct);
        if (ov->interpolation) ADD("%sinterpolation=%s", sep, ov->interpolation);
        if (ov->has_mean) ADD("%smean=%.9g:%.9g:%.9g", sep, ov->mean[0], ov->mean[1], ov->mean[2]);
        if (ov->has_std) ADD("%sstd=%.9g:%.9g:%.9g", sep, ov->std[0], ov->std[1], ov->std[2]);
        if (ov->heads > 0) ADD("%sheads=%d", sep, ov->heads);
        if (ov->quest_eps > 0) ADD("%squest-eps=%.9g", sep, ov->quest_eps);
    }
#undef ADD
    if (o >= len)
        return qb_error(QB_EXIT_USAGE, "%s: the dataset key (path, selection and model options) is over %zu characters", data,
                        len - 1);
    return 0;
}

int cmd_fail(int rc) {
    fprintf(stderr, "questbench: %s\n", qb_last_error());
    return rc;
}

int cmd_parse_int(const char *flag, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "questbench: %s: expected an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int need_value(int argc, char **argv, int i) {
    if (i + 1 >= argc) {
        fprintf(stderr, "questbench: %s needs a value\n", argv[i]);
        return -1;
    }
    return 0;
}

int cmd_model_option(int argc, char **argv, int *i, qb_model_overrides *ov, int *threads) {
    const char *a = argv[*i];
    static const char *flags[] = {"--attention", "--heads", "--mean", "--std", "--crop-pct", "--interpolation",
                                  "--quest-eps", "--threads", "--max-pixels"};
    int which = -1;
    for (int k = 0; k < 9; k++)
        if (!strcmp(a, flags[k])) which = k;
    if (which < 0) return 0;
    if (need_value(argc, argv, *i)) return -1;
    const char *v = argv[++*i];
    long n;
    char *end;
    double d;
    vit_attn at;
    qb_interp ip;
    switch (which) {
    case 0:
        if (vit_attn_parse(v, &at)) { fprintf(stderr, "questbench: --attention: %s\n", qb_last_error()); return -1; }
        ov->attention = v;
        break;
    case 1:
        if (cmd_parse_int("--heads", v, 1, 4096, &n)) return -1;
        ov->heads = (int)n;
        break;
    case 2:
    case 3:
        if (qb_parse_float3(v, which == 2 ? ov->mean : ov->std, a)) { fprintf(stderr, "questbench: %s\n", qb_last_error()); return -1; }
        if (which == 3)
            for (int k = 0; k < 3; k++)
                if (!(ov->std[k] > 0)) { fprintf(stderr, "questbench: --std: values must be > 0, got '%s'\n", v); return -1; }
        if (which == 2) ov->has_mean = 1; else ov->has_std = 1;
        break;
    case 4:
    case 6:
        errno = 0;
        d = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(d) || d <= 0 || (which == 4 && d > 1)) {
            fprintf(stderr, "questbench: %s: expected a number in %s, got '%s'\n", a, which == 4 ? "(0, 1]" : "(0, inf)", v);
            return -1;
        }
        if (which == 4) ov->crop_pct = d; else ov->quest_eps = d;
        break;
    case 5:
        if (qb_interp_parse(v, &ip)) { fprintf(stderr, "questbench: --interpolation: %s\n", qb_last_error()); return -1; }
        ov->interpolation = v;
        break;
    case 7:
        if (cmd_parse_int("--threads", v, 0, 1024, &n)) return -1;
        *threads = (int)n;
        break;
    case 8: /* process-wide: the decoders refuse larger images before allocating their pixels */
        if (cmd_parse_int("--max-pixels", v, 1, 1000000000000L, &n)) return -1;
        qb_max_image_pixels = (uint64_t)n;
        break;
    }
    return 1;
}

int cmd_load_model(qb_model *m, const char *path, const qb_model_overrides *ov, int quiet) {
    int rc = qb_model_load(m, path, ov);
    if (rc) return cmd_fail(rc);
    if (!quiet && m->notes[0]) {
        /* one "note:" line per default or override that was applied */
        const char *s = m->notes;
        while (*s) {
            const char *e = strchr(s, '\n');
            fprintf(stderr, "questbench: %s: note: %.*s\n", path, (int)(e - s), s);
            s = e + 1;
        }
    }
    return 0;
}

void cmd_set_threads(int threads) {
    if (threads > 0) {
        omp_set_num_threads(threads);
    }
}

const char *cmd_model_name(const char *arg, char *name, size_t len) {
    const char *eq = strchr(arg, '=');
    const char *slash = strchr(arg, '/');
    if (eq && (!slash || eq < slash) && eq > arg) { /* NAME=PATH; a '=' inside a folder name is not one */
        snprintf(name, len, "%.*s", (int)(eq - arg), arg);
        return eq + 1;
    }
    const char *base = strrchr(arg, '/');
    base = base ? base + 1 : arg;
    size_t n = strlen(base);
    if (n > 12 && !strcmp(base + n - 12, ".safetensors")) n -= 12;
    snprintf(name, len, "%.*s", (int)n, base);
    return arg;
}
