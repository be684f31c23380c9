/* loader.c — parallel decode + eval preprocessing of a batch of files. */
#include "loader.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qb_load_batch(float *x, const char *const *paths, int n, int size, double crop_pct, qb_interp interp, int *failed) {
    int *codes = calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    char (*msgs)[512] = calloc((size_t)(n > 0 ? n : 1), sizeof *msgs);
    if (!codes || !msgs) {
        free(codes), free(msgs);
        return qb_error(QB_EXIT_FAIL, "out of memory");
    }
    size_t per = (size_t)3 * size * size;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        qb_image img = {0};
        int rc = qb_image_load(&img, paths[i]);
        if (!rc) rc = qb_preprocess_eval(x + (size_t)i * per, &img, size, crop_pct, interp);
        if (rc) {
            codes[i] = rc;
            snprintf(msgs[i], sizeof msgs[i], "%s", qb_last_error()); /* errors are thread-local */
        }
        qb_image_free(&img);
    }
    int rc = 0;
    *failed = -1;
    for (int i = 0; i < n && !rc; i++)
        if (codes[i]) {
            rc = qb_error(codes[i], "%s", msgs[i]);
            *failed = i;
        }
    free(codes), free(msgs);
    return rc;
}
