/* bench_train.c — training speed of the CIFAR-10 demo architecture (configs/train-cifar10-*.yaml):
 * images/s of full training steps (augmented batch, forward, label-smoothed cross-entropy,
 * backward, gradient norm, AdamW) on random 32x32 images, per attention kind.
 * Usage: bench_train [--batch B] [--iters N] [--attn sdpa,qknorm,quest]
 *                    [--dim D --depth L --heads H --mlp-ratio R --patch P]
 * Prints lines `questbench <attn> train <images/s>` that bench/run_train.sh compares with
 * bench/torch_train.py (same architecture, batch and threads). */
#include "loss.h"
#include "train.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int B = 128, iters = 4, D = 128, L = 6, H = 4, P = 4;
    double ratio = 2;
    char attns[64] = "sdpa,qknorm,quest";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--attn")) snprintf(attns, sizeof attns, "%s", v);
        else if (!strcmp(a, "--dim")) D = atoi(v);
        else if (!strcmp(a, "--depth")) L = atoi(v);
        else if (!strcmp(a, "--heads")) H = atoi(v);
        else if (!strcmp(a, "--patch")) P = atoi(v);
        else if (!strcmp(a, "--mlp-ratio")) ratio = atof(v);
        else { fprintf(stderr, "bench_train: unknown option %s\n", a); return 2; }
    }
    qb_train_config c;
    memset(&c, 0, sizeof c);
    c.img_size = 32, c.patch = P, c.dim = D, c.depth = L, c.heads = H, c.classes = 10, c.mlp_ratio = ratio;
    c.quest_eps = 1e-6, c.seed = 0, c.crop_padding = 4, c.hflip = 1, c.label_smoothing = 0.1;
    c.weight_decay = 0.05, c.beta1 = 0.9, c.beta2 = 0.999, c.adam_eps = 1e-8;
    for (int i = 0; i < 3; i++) c.mean[i] = 0.5f, c.std[i] = 0.25f;
    const int n = B * 4;
    qb_train_set s = {n, 32, 10, malloc((size_t)n * 3072), malloc((size_t)n * sizeof(int)), NULL};
    for (int i = 0; i < n; i++) {
        s.labels[i] = i % 10;
        for (int k = 0; k < 3072; k++) s.pix[(size_t)i * 3072 + k] = (uint8_t)((k * 31 + i * 17) & 255);
    }
    float *x = malloc((size_t)B * 3072 * sizeof(float)), *dl = malloc((size_t)B * 10 * sizeof(float));
    int *y = malloc((size_t)B * sizeof(int)), *perm = malloc((size_t)n * sizeof(int));
    qb_train_shuffle(perm, n, 0, 0);
    printf("# questbench train step, ViT dim %d depth %d heads %d mlp_ratio %g patch %d on 32x32, batch %d, %d threads\n",
           D, L, H, ratio, P, B, omp_get_max_threads());
    for (char *tok = strtok(attns, ","); tok; tok = strtok(NULL, ",")) {
        if (vit_attn_parse(tok, &c.attn)) { fprintf(stderr, "bench_train: %s\n", qb_last_error()); return 2; }
        vit_config vc;
        vit_model m;
        qb_adamw o;
        if (qb_train_vit_config(&c, &vc) || vit_init(&m, &vc) || qb_adamw_init(&o, m.num_params)) {
            fprintf(stderr, "bench_train: %s\n", qb_last_error());
            return 1;
        }
        qb_vit_init_timm(&m, 0);
        double t0 = 0;
        for (int it = 0; it <= iters; it++) {
            if (it == 1) t0 = qb_now(); /* the first step allocates: not timed */
            qb_train_batch(x, y, &s, perm + (size_t)(it % 4) * B, B, &c, 0);
            vit_forward(&m, x, B, VIT_MODE_FULL, NULL);
            crossentropy_forward_backward(NULL, dl, NULL, m.acts.logits, y, B, 10, 0.1f, 1.0f / B);
            vit_zero_grad(&m);
            vit_backward(&m, dl, NULL);
            qb_grad_norm(&m);
            qb_adamw_step(&o, &m, 1e-4, &c);
        }
        double dt = qb_now() - t0;
        printf("questbench %s train %.2f\n", vit_attn_name(c.attn), iters * B / dt);
        fflush(stdout);
        qb_adamw_free(&o);
        vit_free(&m);
    }
    free(x), free(dl), free(y), free(perm), free(s.pix), free(s.labels);
    return 0;
}
