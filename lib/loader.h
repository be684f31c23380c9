/* loader.h — decode and preprocess a batch of image files in parallel. */
#ifndef QB_LOADER_H
#define QB_LOADER_H
#include "image.h"

/* x (n, 3, size, size) receives each image after the timm eval transform (pixels in [0,1]).
 * Images are decoded in parallel; on failure returns the error of the lowest failing index
 * (deterministic) and sets *failed to that index, else returns 0 and *failed = -1. */
int qb_load_batch(float *x, const char *const *paths, int n, int size, double crop_pct, qb_interp interp, int *failed);

#endif
