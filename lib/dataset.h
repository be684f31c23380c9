/* dataset.h — lists of (image path, label) from an ImageFolder tree or a flat folder + labels file. */
#ifndef QB_DATASET_H
#define QB_DATASET_H
#include "qb.h"

typedef struct {
    char *path;        /* full path to the file */
    char *rel;         /* path relative to the data root (stable image id) */
    int label;         /* class index, -1 if unknown */
} qb_sample;

typedef struct {
    char root[1024];
    qb_sample *items;
    int n;
    char **classes;    /* class names in index order (sorted folder names), n_classes of them */
    int n_classes;
} qb_dataset;

/* Open a data source:
 *  - ImageFolder: DIR/<class>/<files> (classes = sorted sub-folder names, files sorted, recursive
 *    inside a class folder as torchvision does), image extensions only (.jpg .jpeg .png, any case);
 *  - flat folder + labels file (labels != NULL): lines "relative/path label" (ImageNet val
 *    ground truth); every listed file must exist.
 * subset (may be NULL): a file listing relative paths, one per line; keep only those, in the
 * subset's order; a listed path missing from the data is an error.
 * limit > 0: keep the first `limit` samples (after subset).
 * Errors (QB_EXIT_DATA): missing/unreadable dir, no classes, no images, bad labels line (with
 * line number), duplicate entries.
 * Details (dataset.c): ImageFolder order is torchvision's (classes include hidden folders; a
 * class folder without images is an error, as in torchvision; symlink cycles are an error).
 * Labels mode: items sorted by rel (strcmp), blank lines and '#' lines skipped, label ≥ 0,
 * classes = NULL and n_classes = 0 (no names known). On error *ds is left empty. */
int qb_dataset_open(qb_dataset *ds, const char *dir, const char *labels, const char *subset, int limit);
void qb_dataset_free(qb_dataset *ds);

#endif
