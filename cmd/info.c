/* info.c — `questbench info MODEL`: what the engine will run. */
#include "cmd.h"
#include <stdio.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f, "usage: questbench info [OPTIONS] MODEL.safetensors\n"
               "Print the architecture, attention kind and preprocessing the engine infers for MODEL.\n"
               "options:\n" QB_MODEL_OPTIONS_HELP);
}

int cmd_info(int argc, char **argv) {
    qb_model_overrides ov = {0};
    int threads = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cmd_model_option(argc, argv, &i, &ov, &threads);
        if (r < 0) return QB_EXIT_USAGE;
        if (r) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { help(stdout); return 0; }
        if (argv[i][0] == '-') { fprintf(stderr, "questbench info: unknown option '%s'\n", argv[i]); return QB_EXIT_USAGE; }
        if (path) { fprintf(stderr, "questbench info: one model at a time (got '%s' and '%s')\n", path, argv[i]); return QB_EXIT_USAGE; }
        path = argv[i];
    }
    if (!path) { help(stderr); return QB_EXIT_USAGE; }
    qb_model m;
    int rc = cmd_load_model(&m, path, &ov, 0);
    if (rc) return rc;
    const vit_config *c = &m.vit.cfg;
    printf("file: %s\n", path);
    printf("attention: %s\n", vit_attn_name(c->attn));
    printf("img_size: %d\npatch_size: %d\nembed_dim: %d\ndepth: %d\nnum_heads: %d\nhead_dim: %d\nmlp_dim: %d\n",
           c->img_size, c->patch, c->dim, c->depth, c->heads, c->head_dim, c->mlp_dim);
    printf("num_classes: %d\nclass_token: %d\nglobal_pool: %s\nqkv_bias: %d\n", c->classes, c->class_token,
           c->pool == VIT_POOL_TOKEN ? "token" : "avg", c->qkv_bias);
    printf("norm_eps: %.6g\nattn_scale: %.6g\n", c->norm_eps, c->attn_scale);
    if (c->attn == VIT_ATTN_QUEST) printf("quest_eps: %.6g\n", c->quest_eps);
    printf("parameters: %zu\n", m.vit.num_params);
    printf("mean: %.6g,%.6g,%.6g\nstd: %.6g,%.6g,%.6g\n", c->mean[0], c->mean[1], c->mean[2], c->std[0], c->std[1], c->std[2]);
    printf("crop_pct: %.9g\ninterpolation: %s\n", m.crop_pct, qb_interp_name(m.interp));
    printf("gflops_per_image: %.3f\n", vit_forward_flops(c) / 1e9);
    qb_model_free(&m);
    return 0;
}
