/* bench_corrupt.c — speed of the 19 corruptions × 5 severities on 224 px images, one thread:
 * ms per image for each corruption (its 5 severities together) and for all 95, next to the
 * Python references measured on this machine (issue 5: bethgelab imagecorruptions 1.1.2
 * 1.08 s per image for all 95, hendrycks make_imagenet_c.py 7.4 s). Target ≤ 50 ms.
 * Images: the 4 reference crops from $QUESTBENCH_DATA/corruption-ref,
 * or synthetic ones when absent. Each severity's time is its fastest round (of 4 images). Usage: bench_corrupt [--rounds N] [--only NAME] (NAME: one
 * corruption, timed alone, e.g. under perf record) */
#include "../corruptions/corruptions.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_IMG 4

int main(int argc, char **argv) {
    int rounds = 2, only = -1;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only") && (only = qb_corruption_find(argv[i + 1])) < 0) {
            fprintf(stderr, "bench_corrupt: unknown corruption '%s'\n", argv[i + 1]);
            return 2;
        }
    if (rounds < 1) rounds = 1;
    omp_set_num_threads(1);
    const char *dd = getenv("QUESTBENCH_DATA");
    char data[1024];
    snprintf(data, sizeof data, "%s", dd && *dd ? dd : "/nonexistent-QUESTBENCH_DATA-unset");
    static const char *names[N_IMG] = {"n01440764", "n02007558", "n02112137", "n02526121"};
    const int S = 224;
    uint8_t *img[N_IMG], *outs[6] = {NULL};
    for (int s = 1; s <= 5; s++)
        if (!(outs[s] = malloc((size_t)S * S * 3))) { fprintf(stderr, "bench_corrupt: out of memory\n"); return 1; }
    int synthetic = 0;
    for (int i = 0; i < N_IMG; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/corruption-ref/imagenet/clean/%s.png", data, names[i]);
        qb_image im;
        if (qb_image_load(&im, p) == 0 && im.w == S && im.h == S) img[i] = im.rgb;
        else {
            synthetic = 1;
            if (!(img[i] = malloc((size_t)S * S * 3))) { fprintf(stderr, "bench_corrupt: out of memory\n"); return 1; }
            for (int k = 0; k < S * S * 3; k++) img[i][k] = (uint8_t)((k * 37 + i * 11 + (k / (S * 3)) * 5) & 255);
        }
    }
    char fdir[1200];
    snprintf(fdir, sizeof fdir, "%s/frost", data);
    qb_frost frost;
    int have_frost = qb_frost_load(&frost, fdir, QB_PRESET_IMAGENET) == 0;
    qb_corrupt_ctx ctx = {QB_PRESET_IMAGENET, S, have_frost ? &frost : NULL};
    printf("== corruptions: 19 x 5 severities, 224 px, 1 thread, %d images x %d rounds%s ==\n", N_IMG, rounds,
           synthetic ? " (synthetic images: reference crops not found)" : "");
    double total = 0;
    for (int c = 0; c < QB_N_CORRUPTIONS; c++) {
        if (only >= 0 && c != only) continue;
        if (c == qb_corruption_find("frost") && !have_frost) {
            printf("%-18s   skipped (frost textures not found at %s)\n", qb_corruptions[c].name, fdir);
            continue;
        }
        /* one severity at a time (qb_corrupt), then all five in one call (qb_corrupt_sevs, what
         * questbench corrupt does: corruptions with work shared across severities do it once);
         * each time is the fastest round, the least disturbed by other load on the machine */
        double sev_ms[5] = {0}, ms = 1e30;
        for (int s = 0; s <= 5; s++) {
            double best = 1e30;
            for (int r = 0; r < rounds; r++) {
                double t0 = qb_now();
                for (int i = 0; i < N_IMG; i++) {
                    int rc = s ? qb_corrupt(outs[s], img[i], c, s, QB_CRNG_COUNTER, (uint64_t)r, (uint64_t)i, &ctx)
                               : qb_corrupt_sevs(outs, img[i], c, 0x3E, QB_CRNG_COUNTER, (uint64_t)r, (uint64_t)i, &ctx);
                    if (rc) {
                        fprintf(stderr, "bench_corrupt: %s\n", qb_last_error());
                        return 1;
                    }
                }
                double t = (qb_now() - t0) / N_IMG;
                best = t < best ? t : best;
            }
            if (s) sev_ms[s - 1] = 1000.0 * best;
            else ms = 1000.0 * best;
        }
        total += ms;
        printf("%-18s %8.2f ms/image (all 5 in one call; one at a time: %.2f %.2f %.2f %.2f %.2f)\n",
               qb_corruptions[c].name, ms, sev_ms[0], sev_ms[1], sev_ms[2], sev_ms[3], sev_ms[4]);
    }
    if (only >= 0) return 0;
    printf("all 95             %8.2f ms/image  (target <= 50 ms)\n", total);
    printf("-- vs Python on this machine (issue 5): imagecorruptions 1.1.2 1080 ms -> %.1fx, "
           "make_imagenet_c.py 7400 ms -> %.1fx\n", 1080.0 / total, 7400.0 / total);
    if (have_frost) qb_frost_free(&frost);
    for (int i = 0; i < N_IMG; i++) free(img[i]);
    for (int s = 1; s <= 5; s++) free(outs[s]);
    return 0;
}
