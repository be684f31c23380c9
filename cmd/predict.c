/* predict.c — `questbench predict`: classify image files, CSV on stdout. */
#include "cmd.h"
#include "loader.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f, "usage: questbench predict --model M.safetensors [--logits] [--batch B] [OPTIONS] IMAGE...\n"
               "Classify PNG/JPEG images. CSV on stdout with a header: path,top1,prob\n"
               "(top1 = class index, prob = its softmax probability), plus logit0..logitK-1 with --logits.\n"
               "Nothing is printed unless every image loads (exit 4 names the first that does not).\n"
               "options:\n"
               "  --model FILE   timm ViT checkpoint (safetensors)\n"
               "  --logits       add the raw logits\n"
               "  --batch B      images per forward pass (default 16)\n" QB_MODEL_OPTIONS_HELP);
}

/* CSV field: quoted when it holds a comma, quote or newline */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int cmd_predict(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0, with_logits = 0;
    long batch = 16;
    const char *model_path = NULL;
    const char **images = calloc((size_t)argc, sizeof(char *));
    int n_images = 0;
    for (int i = 1; i < argc; i++) {
        int r = cmd_model_option(argc, argv, &i, &ov, &threads);
        if (r < 0) { free(images); return QB_EXIT_USAGE; }
        if (r) continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(stdout); free(images); return 0; }
        else if (!strcmp(a, "--logits")) with_logits = 1;
        else if (!strcmp(a, "--model") || !strcmp(a, "--batch")) {
            if (i + 1 >= argc) { fprintf(stderr, "questbench predict: %s needs a value\n", a); free(images); return QB_EXIT_USAGE; }
            if (!strcmp(a, "--model")) model_path = argv[++i];
            else if (cmd_parse_int("--batch", argv[++i], 1, 4096, &batch)) { free(images); return QB_EXIT_USAGE; }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "questbench predict: unknown option '%s'\n", a);
            free(images);
            return QB_EXIT_USAGE;
        } else images[n_images++] = a;
    }
    if (!model_path || n_images == 0) {
        fprintf(stderr, "questbench predict: %s\n", !model_path ? "--model is required" : "no images given");
        free(images);
        return QB_EXIT_USAGE;
    }
    cmd_set_threads(threads);
    qb_model m;
    int rc = cmd_load_model(&m, model_path, &ov, 0);
    if (rc) { free(images); return rc; }
    const vit_config *c = &m.vit.cfg;
    int K = c->classes, S = c->img_size;
    if (batch > n_images) batch = n_images;
    float *x = qb_malloc((size_t)batch * 3 * S * S * sizeof(float));
    float *logits = qb_malloc((size_t)n_images * K * sizeof(float)); /* all rows kept: print only on success */
    if (!x || !logits) { rc = cmd_fail(QB_EXIT_FAIL); goto out; }
    for (int b0 = 0; b0 < n_images; b0 += (int)batch) {
        int nb = n_images - b0 < batch ? n_images - b0 : (int)batch, failed;
        if ((rc = qb_load_batch(x, images + b0, nb, S, m.crop_pct, m.interp, &failed))) { cmd_fail(rc); goto out; }
        if ((rc = vit_forward(&m.vit, x, nb, VIT_MODE_INFER, logits + (size_t)b0 * K))) { cmd_fail(rc); goto out; }
    }
    printf("path,top1,prob");
    if (with_logits)
        for (int k = 0; k < K; k++) printf(",logit%d", k);
    printf("\n");
    for (int i = 0; i < n_images; i++) {
        const float *z = logits + (size_t)i * K;
        int top = 0;
        for (int k = 1; k < K; k++) if (z[k] > z[top]) top = k;
        double s = 0;
        for (int k = 0; k < K; k++) s += exp((double)z[k] - z[top]);
        csv_field(stdout, images[i]);
        printf(",%d,%.6f", top, 1.0 / s);
        if (with_logits)
            for (int k = 0; k < K; k++) printf(",%.9g", z[k]);
        printf("\n");
    }
    if (fflush(stdout) != 0) rc = cmd_fail(qb_error(QB_EXIT_IO, "stdout: write failed"));
out:
    free(x), free(logits), free(images);
    qb_model_free(&m);
    return rc;
}
