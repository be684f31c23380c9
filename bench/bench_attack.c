/* bench_attack.c — `questbench attack` speed: PGD-10 L∞ (ε = 4/255, α = 1/255, random
 * start, cross-entropy) on ViT-S/16 224 with random weights, images/s, the whole batch per
 * engine call (the engine is batch-invariant, so this is what --batch N runs and its
 * results are bit-identical to --batch 1). bench/torch_attack.py runs the same PGD in PyTorch; bench/run_attack.sh prints
 * the ratio. Usage: bench_attack [--images N] [--attn sdpa,quest] */
#include "attacks.h"
#include "rng.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void init_vit_s(vit_model *m, vit_attn attn) {
    vit_config c = {0};
    c.img_size = 224, c.patch = 16, c.in_chans = 3, c.dim = 384, c.depth = 12, c.heads = 6, c.mlp_dim = 1536;
    c.classes = 1000, c.class_token = 1, c.qkv_bias = 1, c.pool = VIT_POOL_TOKEN, c.attn = attn;
    for (int i = 0; i < 3; i++) c.mean[i] = 0.5f, c.std[i] = 0.5f;
    if (vit_config_finish(&c) || vit_init(m, &c)) { fprintf(stderr, "bench: %s\n", qb_last_error()); exit(1); }
    qb_rng r = qb_rng_stream(42, 0, "bench/params");
    for (size_t i = 0; i < m->num_params; i++) m->params_mem[i] = 0.02f * (2 * qb_rng_uniformf(&r) - 1);
    for (int l = 0; l < c.depth; l++)
        for (int i = 0; i < c.dim; i++) m->params.ln1w[l * c.dim + i] = m->params.ln2w[l * c.dim + i] = 1.0f;
    for (int i = 0; i < c.dim; i++) m->params.lnfw[i] = 1.0f;
}

int main(int argc, char **argv) {
    int n = 4;
    const char *attns = "sdpa";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--images")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--attn")) attns = argv[i + 1];
    }
    printf("# PGD-10 L-inf on ViT-S/16 224, %d images, %d threads\n", n, omp_get_max_threads());
    char list[256];
    snprintf(list, sizeof list, "%s", attns);
    for (char *save, *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
        vit_attn attn;
        if (vit_attn_parse(a, &attn)) { fprintf(stderr, "bench: %s\n", qb_last_error()); return 1; }
        vit_model m;
        init_vit_s(&m, attn);
        size_t d = (size_t)3 * 224 * 224;
        float *x = malloc(n * d * sizeof(float)), *adv = malloc(n * d * sizeof(float));
        int *y = malloc(n * sizeof(int));
        uint64_t *ids = malloc(n * sizeof(uint64_t));
        qb_rng r = qb_rng_stream(1, 0, "bench/images");
        for (size_t i = 0; i < n * d; i++) x[i] = (float)qb_rng_below(&r, 256) / 255.0f;
        for (int b = 0; b < n; b++) y[b] = b, ids[b] = (uint64_t)b;
        qb_attack_ws ws;
        if (qb_attack_ws_init(&ws, &m, n)) { fprintf(stderr, "bench: %s\n", qb_last_error()); return 1; }
        qb_attack_cfg c;
        qb_attack_cfg_init(&c);
        c.norm = QB_NORM_LINF, c.eps = 4.0f / 255, c.step = 1.0f / 255, c.steps = 10, c.restarts = 1, c.random_start = 1;
        int pred[256];
        qb_attack_predict(&ws, x, n < 256 ? n : 256, pred); /* warm-up: allocates the activations */
        double t = qb_now();
        if (qb_attack_run(&ws, QB_ATK_PGD, &c, x, y, ids, n, adv)) { fprintf(stderr, "bench: %s\n", qb_last_error()); return 1; }
        t = qb_now() - t;
        /* ten forward + input-gradient passes per image, counted as bench_vit counts them */
        printf("questbench %s pgd10 %.3f img/s %.1f GFLOP/s\n", a, n / t, n / t * 10 * 2 * vit_forward_flops(&m.cfg) / 1e9);
        fflush(stdout);
        qb_attack_ws_free(&ws);
        vit_free(&m);
        free(x), free(adv), free(y), free(ids);
    }
    return 0;
}
