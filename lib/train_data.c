/* train_data.c — training data in memory: CIFAR-10 as an ImageFolder tree (decoded once) or
 * as the official binary batches, stored as uint8 CHW; shuffling, random crop with zero
 * padding + horizontal flip (torchvision RandomCrop(size, padding) then RandomHorizontalFlip),
 * and the spurious class-coloured patch of the instability experiment. */
#include "train.h"
#include "dataset.h"
#include "image.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *cifar_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                      "dog", "frog", "horse", "ship", "truck"};

void qb_train_set_free(qb_train_set *s) {
    free(s->pix);
    free(s->labels);
    if (s->class_names)
        for (int i = 0; i < s->classes; i++) free(s->class_names[i]);
    free(s->class_names);
    memset(s, 0, sizeof *s);
}

static int set_alloc(qb_train_set *s, int n, int size, int classes) {
    memset(s, 0, sizeof *s);
    s->n = n, s->size = size, s->classes = classes;
    s->pix = qb_malloc((size_t)n * 3 * size * size + 1);
    s->labels = qb_calloc((size_t)n + 1, sizeof(int));
    s->class_names = qb_calloc((size_t)classes, sizeof(char *));
    if (!s->pix || !s->labels || !s->class_names) {
        qb_train_set_free(s);
        return QB_EXIT_FAIL;
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------
 * ImageFolder */

static int load_folder_split(qb_train_set *s, const char *root, const char *split, int size, int classes, int limit,
                             const qb_train_set *ref) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/%s", root, split);
    qb_dataset ds;
    int rc = qb_dataset_open(&ds, dir, NULL, NULL, 0);
    if (rc) return rc;
    if (limit > 0 && limit < ds.n) {
        /* an evenly spaced subset: the listing is sorted by class, its head would be one class */
        int n = ds.n;
        for (int i = 0; i < limit; i++) {
            int j = (int)((long long)i * n / limit);
            if (i != j) {
                qb_sample t = ds.items[i];
                ds.items[i] = ds.items[j], ds.items[j] = t;
            }
        }
        for (int i = limit; i < n; i++) free(ds.items[i].path), free(ds.items[i].rel);
        ds.n = limit;
    }
    if (ds.n_classes != classes) {
        rc = qb_error(QB_EXIT_DATA, "%s: %d class folders, but the model has %d classes%s", dir, ds.n_classes,
                      classes, ds.n_classes < classes ? " (missing classes)" : "");
        qb_dataset_free(&ds);
        return rc;
    }
    if (ref)
        for (int k = 0; k < classes; k++)
            if (strcmp(ref->class_names[k], ds.classes[k])) {
                rc = qb_error(QB_EXIT_DATA, "%s: class %d is '%s' but the training split's is '%s' (missing class?)",
                              dir, k, ds.classes[k], ref->class_names[k]);
                qb_dataset_free(&ds);
                return rc;
            }
    if ((rc = set_alloc(s, ds.n, size, classes))) { qb_dataset_free(&ds); return rc; }
    for (int k = 0; k < classes; k++) s->class_names[k] = strdup(ds.classes[k]);
    int first_bad = ds.n, bad_rc = 0;
    char bad_msg[1200] = "";
    const size_t img = (size_t)3 * size * size;
#pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < ds.n; i++) {
        qb_image im;
        int r = qb_image_load(&im, ds.items[i].path);
        if (!r && (im.w != size || im.h != size)) {
            r = qb_error(QB_EXIT_DATA, "%s: image is %dx%d, the model takes %dx%d", ds.items[i].path, im.w, im.h, size,
                         size);
            qb_image_free(&im);
        }
        if (r) {
#pragma omp critical(train_load)
            if (i < first_bad) first_bad = i, bad_rc = r, snprintf(bad_msg, sizeof bad_msg, "%s", qb_last_error());
            continue;
        }
        uint8_t *dst = s->pix + (size_t)i * img;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
                for (int ch = 0; ch < 3; ch++)
                    dst[((size_t)ch * size + y) * size + x] = im.rgb[((size_t)y * size + x) * 3 + ch];
        s->labels[i] = ds.items[i].label;
        qb_image_free(&im);
    }
    qb_dataset_free(&ds);
    if (bad_rc) {
        qb_train_set_free(s);
        return qb_error(bad_rc, "%s", bad_msg);
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------
 * CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (R, G, B planes of 32x32) */

static int bin_dir(char *out, size_t n, const char *dir) {
    const char *cands[2] = {"%s/data_batch_1.bin", "%s/cifar-10-batches-bin/data_batch_1.bin"};
    struct stat st;
    char p[1200];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, cands[i], dir);
        if (!stat(p, &st)) {
            snprintf(out, n, i ? "%s/cifar-10-batches-bin" : "%s", dir);
            return 0;
        }
    }
    return qb_error(QB_EXIT_DATA, "%s: no CIFAR-10 binary batches (data_batch_1.bin, here or in cifar-10-batches-bin/)",
                    dir);
}

static int load_bin_split(qb_train_set *s, const char *dir, int test, int limit) {
    const char *files[5] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                            "data_batch_5.bin"};
    int nf = test ? 1 : 5;
    const size_t rec = 3073;
    long counts[5] = {0}, total = 0;
    char p[1300];
    for (int i = 0; i < nf; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, test ? "test_batch.bin" : files[i]);
        struct stat st;
        if (stat(p, &st)) return qb_error(QB_EXIT_DATA, "%s: missing (%s)", p, strerror(errno));
        if (st.st_size == 0 || st.st_size % rec)
            return qb_error(QB_EXIT_DATA, "%s: %lld bytes is not a whole number of 3073-byte CIFAR-10 records", p,
                            (long long)st.st_size);
        counts[i] = st.st_size / rec;
        total += counts[i];
    }
    if (limit > 0 && total > limit) total = limit;
    int rc = set_alloc(s, (int)total, 32, 10);
    if (rc) return rc;
    for (int k = 0; k < 10; k++) s->class_names[k] = strdup(cifar_names[k]);
    uint8_t r[3073];
    long o = 0;
    for (int i = 0; i < nf && o < total; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, test ? "test_batch.bin" : files[i]);
        FILE *f = fopen(p, "rb");
        if (!f) { qb_train_set_free(s); return qb_error(QB_EXIT_DATA, "%s: cannot open: %s", p, strerror(errno)); }
        for (long j = 0; j < counts[i] && o < total; j++, o++) {
            if (fread(r, 1, rec, f) != rec) {
                fclose(f);
                qb_train_set_free(s);
                return qb_error(QB_EXIT_DATA, "%s: short read at record %ld", p, j);
            }
            if (r[0] > 9) {
                fclose(f);
                qb_train_set_free(s);
                return qb_error(QB_EXIT_DATA, "%s: record %ld has label %d (CIFAR-10 labels are 0-9)", p, j, r[0]);
            }
            s->labels[o] = r[0];
            memcpy(s->pix + (size_t)o * 3072, r + 1, 3072);
        }
        fclose(f);
    }
    return 0;
}

int qb_train_data_load(qb_train_set *train, qb_train_set *test, const char *dir, qb_data_format fmt, int size,
                       int classes, int train_limit, int test_limit) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int rc;
    if (fmt == QB_FORMAT_CIFAR_BINARY) {
        if (size != 32 || classes != 10)
            return qb_error(QB_EXIT_DATA, "%s: CIFAR-10 binary batches hold 32x32 images of 10 classes", dir);
        char d[1100];
        if ((rc = bin_dir(d, sizeof d, dir))) return rc;
        if ((rc = load_bin_split(train, d, 0, train_limit))) return rc;
        if ((rc = load_bin_split(test, d, 1, test_limit))) { qb_train_set_free(train); return rc; }
    } else {
        if ((rc = load_folder_split(train, dir, "train", size, classes, train_limit, NULL))) return rc;
        if ((rc = load_folder_split(test, dir, "test", size, classes, test_limit, train))) {
            qb_train_set_free(train);
            return rc;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------
 * shuffling, augmentation, the spurious patch */

void qb_train_shuffle(int *perm, int n, uint64_t seed, int epoch) {
    for (int i = 0; i < n; i++) perm[i] = i;
    qb_rng r = qb_rng_stream(seed, (uint64_t)epoch, "shuffle");
    for (int i = n - 1; i > 0; i--) {
        int j = (int)qb_rng_below(&r, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

void qb_spurious_colour(int k, float rgb[3]) {
    static const float pal[10][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {1, 0, 1},
                                     {0, 1, 1}, {1, 1, 1}, {0, 0, 0}, {1, 0.5f, 0}, {0.5f, 0, 1}};
    if (k >= 0 && k < 10) {
        memcpy(rgb, pal[k], sizeof pal[k]);
        return;
    }
    qb_rng r = qb_rng_stream(0, (uint64_t)k, "spurious/colour");
    for (int c = 0; c < 3; c++) rgb[c] = (float)qb_rng_below(&r, 5) / 4.0f;
}

void qb_spurious_apply(float *img, int S, int k, int size) {
    float rgb[3];
    qb_spurious_colour(k, rgb);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size && y < S; y++)
            for (int x = 0; x < size && x < S; x++) img[((size_t)c * S + y) * S + x] = rgb[c];
}

void qb_train_batch(float *x, int *y, const qb_train_set *s, const int *idx, int B, const qb_train_config *c,
                    int epoch) {
    const int S = s->size, pad = c->crop_padding;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        int i = idx[b];
        const uint8_t *src = s->pix + (size_t)i * 3 * S * S;
        float *dst = x + (size_t)b * 3 * S * S;
        qb_rng r = qb_rng_stream(c->seed, ((uint64_t)epoch << 32) | (uint32_t)i, "augment");
        int oy = pad ? (int)qb_rng_below(&r, 2 * (uint64_t)pad + 1) : pad;
        int ox = pad ? (int)qb_rng_below(&r, 2 * (uint64_t)pad + 1) : pad;
        int flip = c->hflip ? (int)qb_rng_below(&r, 2) : 0;
        for (int ch = 0; ch < 3; ch++)
            for (int yy = 0; yy < S; yy++) {
                int sy = yy + oy - pad;
                float *row = dst + ((size_t)ch * S + yy) * S;
                for (int xx = 0; xx < S; xx++) {
                    int sx = (flip ? S - 1 - xx : xx) + ox - pad;
                    row[xx] = (sy >= 0 && sy < S && sx >= 0 && sx < S)
                                  ? src[((size_t)ch * S + sy) * S + sx] / 255.0f
                                  : 0.0f;
                }
            }
        y[b] = s->labels[i];
        if (c->spurious_strength > 0) {
            /* a fixed subset of the training images carries its class's patch, every epoch */
            qb_rng rs = qb_rng_stream(c->seed, (uint64_t)i, "spurious");
            if (qb_rng_uniform(&rs) < c->spurious_strength) qb_spurious_apply(dst, S, y[b], c->spurious_size);
        }
    }
}

void qb_eval_batch(float *x, const qb_train_set *s, int start, int B) {
    const size_t img = (size_t)3 * s->size * s->size;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const uint8_t *src = s->pix + (size_t)(start + b) * img;
        float *dst = x + (size_t)b * img;
        for (size_t k = 0; k < img; k++) dst[k] = src[k] / 255.0f;
    }
}
