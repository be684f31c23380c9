/* dataset.c — (image path, label) lists from an ImageFolder tree or a flat folder + labels file.
 *
 * ImageFolder order is torchvision's (datasets/folder.py): classes = sorted sub-folder names
 * (hidden ones too, symlinks followed, as os.scandir().is_dir()); inside a class,
 * sorted(os.walk(class_dir, followlinks=True)) — folders in path order, each folder's files
 * sorted — so the class index and the sample order match torchvision's. Sorting is strcmp
 * byte order, which for UTF-8 names equals Python's sorted() on str. Only .jpg .jpeg .png
 * (any case) count as images: the decoders read nothing else. Images are never opened here. */
#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_DEPTH 64 /* folder nesting inside a class */

typedef struct {
    char **v;
    int n, cap;
} strvec;

static int oom(void) { return qb_error(QB_EXIT_FAIL, "out of memory listing the data set"); }

static int sv_push(strvec *s, const char *str) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, sizeof(char *) * (size_t)cap);
        if (!v) return oom();
        s->v = v, s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str))) return oom();
    s->n++;
    return 0;
}

static void sv_free(strvec *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_image_ext(const char *name) {
    static const char *exts[] = {".jpg", ".jpeg", ".png"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n >= e && strcasecmp(name + n - e, exts[i]) == 0) return 1;
    }
    return 0;
}

/* "a" + "/" + "b" (no doubled slash when a already ends in one); NULL after qb_error. */
static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    int slash = na > 0 && a[na - 1] != '/';
    char *s = malloc(na + slash + nb + 1);
    if (!s) {
        oom();
        return NULL;
    }
    memcpy(s, a, na);
    if (slash) s[na] = '/';
    memcpy(s + na + slash, b, nb + 1);
    return s;
}

/* Names in `path`, split into sub-folders and other entries, each sorted. */
static int list_dir(const char *path, strvec *dirs, strvec *files) {
    DIR *d = opendir(path);
    if (!d) return qb_error(QB_EXIT_DATA, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    errno = 0;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        int is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) { /* follow links, as is_dir() does */
            char *full = join(path, e->d_name);
            if (!full) {
                rc = QB_EXIT_FAIL;
                break;
            }
            struct stat st;
            is_dir = stat(full, &st) == 0 && S_ISDIR(st.st_mode);
            free(full);
        }
        rc = sv_push(is_dir ? dirs : files, e->d_name);
        errno = 0;
    }
    if (!rc && errno) rc = qb_error(QB_EXIT_DATA, "%s: cannot read directory: %s", path, strerror(errno));
    closedir(d);
    if (!rc) {
        /* qsort on an empty (NULL) list is undefined behaviour */
        if (dirs->n > 1) qsort(dirs->v, (size_t)dirs->n, sizeof(char *), cmp_str);
        if (files->n > 1) qsort(files->v, (size_t)files->n, sizeof(char *), cmp_str);
    }
    return rc;
}

typedef struct {
    qb_sample *v;
    int n, cap;
} samplevec;

/* Takes ownership of rel. */
static int push_sample(samplevec *s, const char *root, char *rel, int label) {
    if (s->n == INT_MAX) {
        free(rel);
        return qb_error(QB_EXIT_DATA, "%s: too many images", root);
    }
    if (s->n == s->cap) {
        int cap = s->cap ? (s->cap > INT_MAX / 2 ? INT_MAX : 2 * s->cap) : 64;
        qb_sample *v = realloc(s->v, sizeof(qb_sample) * (size_t)cap);
        if (!v) {
            free(rel);
            return oom();
        }
        s->v = v, s->cap = cap;
    }
    char *path = join(root, rel);
    if (!path) {
        free(rel);
        return QB_EXIT_FAIL;
    }
    s->v[s->n++] = (qb_sample){.path = path, .rel = rel, .label = label};
    return 0;
}

typedef struct {
    dev_t dev;
    ino_t ino;
} dir_id;

/* Every folder under root/rel (rel included), relative to root, in any order. `up` holds the
 * identities of the folders above, to catch symlink cycles (os.walk would repeat them until
 * the kernel's ELOOP, listing the same images dozens of times). */
static int collect_dirs(const char *root, const char *rel, int depth, dir_id *up, strvec *out) {
    char *full = join(root, rel);
    if (!full) return QB_EXIT_FAIL;
    struct stat st;
    int rc = 0;
    if (stat(full, &st) != 0) rc = qb_error(QB_EXIT_DATA, "%s: %s", full, strerror(errno));
    for (int i = 0; !rc && i < depth; i++)
        if (up[i].dev == st.st_dev && up[i].ino == st.st_ino)
            rc = qb_error(QB_EXIT_DATA, "%s: symlink loop (same folder as a parent)", full);
    if (!rc && depth >= MAX_DEPTH) rc = qb_error(QB_EXIT_DATA, "%s: folders nested too deep", full);
    if (!rc) rc = sv_push(out, rel);
    strvec dirs = {0}, files = {0};
    if (!rc) rc = list_dir(full, &dirs, &files);
    free(full);
    if (!rc) up[depth] = (dir_id){st.st_dev, st.st_ino};
    for (int i = 0; !rc && i < dirs.n; i++) {
        char *sub = join(rel, dirs.v[i]);
        rc = sub ? collect_dirs(root, sub, depth + 1, up, out) : QB_EXIT_FAIL;
        free(sub);
    }
    sv_free(&dirs);
    sv_free(&files);
    return rc;
}

static int open_image_folder(qb_dataset *ds, samplevec *out) {
    const char *root = ds->root;
    strvec classes = {0}, files = {0};
    int rc = list_dir(root, &classes, &files);
    sv_free(&files);
    if (!rc && classes.n == 0) rc = qb_error(QB_EXIT_DATA, "%s: no class sub-folders (expected DIR/<class>/<image>)", root);
    for (int c = 0; !rc && c < classes.n; c++) {
        strvec dirs = {0};
        dir_id up[MAX_DEPTH];
        rc = collect_dirs(root, classes.v[c], 0, up, &dirs);
        qsort(dirs.v, (size_t)dirs.n, sizeof(char *), cmp_str); /* sorted(os.walk(...)) */
        int before = out->n;
        for (int i = 0; !rc && i < dirs.n; i++) {
            strvec sub = {0}, names = {0};
            char *full = join(root, dirs.v[i]);
            rc = full ? list_dir(full, &sub, &names) : QB_EXIT_FAIL;
            free(full);
            for (int j = 0; !rc && j < names.n; j++) {
                if (!has_image_ext(names.v[j])) continue;
                char *rel = join(dirs.v[i], names.v[j]);
                rc = rel ? push_sample(out, root, rel, c) : QB_EXIT_FAIL;
            }
            sv_free(&sub);
            sv_free(&names);
        }
        sv_free(&dirs);
        if (!rc && out->n == before) /* torchvision raises here too: the class indices would shift */
            rc = qb_error(QB_EXIT_DATA, "%s/%s: class folder has no images (.jpg .jpeg .png)", root, classes.v[c]);
    }
    if (rc) {
        sv_free(&classes);
        return rc;
    }
    ds->classes = classes.v;
    ds->n_classes = classes.n;
    return 0;
}

/* Next line of f without the newline and trailing blanks; NULL at end of file. */
static char *next_line(FILE *f, char **buf, size_t *cap) {
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return NULL;
    while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r' || (*buf)[n - 1] == ' ' || (*buf)[n - 1] == '\t'))
        (*buf)[--n] = 0;
    char *s = *buf;
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

typedef struct {
    qb_sample s;
    int line;
} labelled;

static int cmp_labelled(const void *a, const void *b) {
    return strcmp(((const labelled *)a)->s.rel, ((const labelled *)b)->s.rel);
}

static int open_labels(qb_dataset *ds, const char *labels, samplevec *out) {
    const char *root = ds->root;
    struct stat st;
    if (stat(root, &st) != 0) return qb_error(QB_EXIT_DATA, "%s: cannot open directory: %s", root, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return qb_error(QB_EXIT_DATA, "%s: not a directory", root);
    FILE *f = fopen(labels, "r");
    if (!f) return qb_error(QB_EXIT_DATA, "%s: cannot open labels file: %s", labels, strerror(errno));
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0, lineno = 0;
    labelled *v = NULL;
    int n = 0, vcap = 0;
    for (char *s; !rc && (s = next_line(f, &buf, &cap));) {
        lineno++;
        if (!*s || *s == '#') continue;
        char *sp = strrchr(s, ' '), *tab = strrchr(s, '\t');
        if (!sp || (tab && tab > sp)) sp = tab;
        char *end = NULL;
        long label = sp ? (errno = 0, strtol(sp + 1, &end, 10)) : -1;
        if (!sp || end == sp + 1 || *end || errno || label < 0 || label > INT_MAX) {
            rc = qb_error(QB_EXIT_DATA, "%s:%d: expected '<relative path> <label>', got '%.80s'", labels, lineno, s);
            break;
        }
        while (sp > s && (sp[-1] == ' ' || sp[-1] == '\t')) sp--;
        *sp = 0;
        if (s[0] == '/') {
            rc = qb_error(QB_EXIT_DATA, "%s:%d: path '%.80s' must be relative to %s", labels, lineno, s, root);
            break;
        }
        if (n == vcap) {
            labelled *nv = n < INT_MAX / 2 ? realloc(v, sizeof(labelled) * (size_t)(vcap ? 2 * vcap : 256)) : NULL;
            if (!nv) {
                rc = oom();
                break;
            }
            v = nv, vcap = vcap ? 2 * vcap : 256;
        }
        char *rel = strdup(s), *path = rel ? join(root, rel) : NULL;
        if (!path) {
            free(rel);
            rc = oom();
            break;
        }
        v[n++] = (labelled){.s = {.path = path, .rel = rel, .label = (int)label}, .line = lineno};
        if (stat(path, &st) != 0)
            rc = qb_error(QB_EXIT_DATA, "%s:%d: %s: %s", labels, lineno, path, strerror(errno));
        else if (!S_ISREG(st.st_mode))
            rc = qb_error(QB_EXIT_DATA, "%s:%d: %s: not a file", labels, lineno, path);
    }
    if (!rc && ferror(f)) rc = qb_error(QB_EXIT_DATA, "%s: read error", labels);
    fclose(f);
    free(buf);
    if (!rc && n == 0) rc = qb_error(QB_EXIT_DATA, "%s: no entries", labels);
    if (!rc) {
        qsort(v, (size_t)n, sizeof(labelled), cmp_labelled);
        for (int i = 1; !rc && i < n; i++)
            if (strcmp(v[i - 1].s.rel, v[i].s.rel) == 0)
                rc = qb_error(QB_EXIT_DATA, "%s:%d: duplicate entry '%.200s' (first on line %d)", labels,
                              v[i].line > v[i - 1].line ? v[i].line : v[i - 1].line, v[i].s.rel,
                              v[i].line < v[i - 1].line ? v[i].line : v[i - 1].line);
    }
    if (!rc) {
        out->v = malloc(sizeof(qb_sample) * (size_t)n);
        if (!out->v) rc = oom();
    }
    if (rc) {
        for (int i = 0; i < n; i++) free(v[i].s.path), free(v[i].s.rel);
        free(v);
        return rc;
    }
    for (int i = 0; i < n; i++) out->v[i] = v[i].s;
    out->n = out->cap = n;
    free(v);
    return 0;
}

/* Stable merge sort of idx[0..n) by items[idx].rel (tmp has n ints); no globals, unlike qsort. */
static void sort_by_rel(int *idx, int *tmp, int n, const qb_sample *items) {
    if (n < 2) return;
    int h = n / 2;
    sort_by_rel(idx, tmp, h, items);
    sort_by_rel(idx + h, tmp, n - h, items);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = strcmp(items[idx[j]].rel, items[idx[i]].rel) < 0 ? idx[j++] : idx[i++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, sizeof(int) * (size_t)n);
}

/* Keep only the samples listed in `subset`, in its order. */
static int apply_subset(qb_dataset *ds, samplevec *all, const char *subset) {
    FILE *f = fopen(subset, "r");
    if (!f) return qb_error(QB_EXIT_DATA, "%s: cannot open subset file: %s", subset, strerror(errno));
    int n = all->n, rc = 0;
    size_t n1 = (size_t)(n ? n : 1);
    int *order = malloc(sizeof(int) * n1), *tmp = malloc(sizeof(int) * n1), *used = calloc(n1, sizeof(int));
    qb_sample *kept = malloc(sizeof(qb_sample) * n1);
    if (!order || !tmp || !used || !kept) rc = oom();
    int n_kept = 0, lineno = 0;
    char *buf = NULL;
    size_t cap = 0;
    if (!rc) { /* index sorted by rel, for binary search: ImageFolder order is not rel order */
        for (int i = 0; i < n; i++) order[i] = i;
        sort_by_rel(order, tmp, n, all->v);
    }
    free(tmp);
    for (char *s; !rc && (s = next_line(f, &buf, &cap));) {
        lineno++;
        if (!*s || *s == '#') continue;
        int lo = 0, hi = n - 1, found = -1;
        while (lo <= hi) {
            int mid = lo + (hi - lo) / 2, c = strcmp(all->v[order[mid]].rel, s);
            if (c == 0) {
                found = order[mid];
                break;
            }
            if (c < 0) lo = mid + 1;
            else hi = mid - 1;
        }
        if (found < 0) rc = qb_error(QB_EXIT_DATA, "%s:%d: '%.200s' is not in %s", subset, lineno, s, ds->root);
        else if (used[found]) rc = qb_error(QB_EXIT_DATA, "%s:%d: duplicate entry '%.200s'", subset, lineno, s);
        else {
            used[found] = 1;
            kept[n_kept++] = all->v[found];
        }
    }
    if (!rc && ferror(f)) rc = qb_error(QB_EXIT_DATA, "%s: read error", subset);
    fclose(f);
    free(buf);
    if (!rc && n_kept == 0) rc = qb_error(QB_EXIT_DATA, "%s: no entries", subset);
    if (rc) {
        free(order), free(used), free(kept);
        return rc;
    }
    for (int i = 0; i < n; i++)
        if (!used[i]) free(all->v[i].path), free(all->v[i].rel);
    free(all->v);
    all->v = kept;
    all->n = all->cap = n_kept;
    free(order), free(used);
    return 0;
}

int qb_dataset_open(qb_dataset *ds, const char *dir, const char *labels, const char *subset, int limit) {
    memset(ds, 0, sizeof *ds);
    if (!dir || !*dir) return qb_error(QB_EXIT_DATA, "no data directory given");
    if (strlen(dir) >= sizeof ds->root) return qb_error(QB_EXIT_DATA, "%.100s...: data path too long", dir);
    strcpy(ds->root, dir);
    samplevec all = {0};
    int rc = labels ? open_labels(ds, labels, &all) : open_image_folder(ds, &all);
    if (!rc && all.n == 0) rc = qb_error(QB_EXIT_DATA, "%s: no images found (.jpg .jpeg .png)", dir);
    if (!rc && subset) rc = apply_subset(ds, &all, subset);
    if (!rc && limit > 0 && all.n > limit) {
        for (int i = limit; i < all.n; i++) free(all.v[i].path), free(all.v[i].rel);
        all.n = limit;
    }
    ds->items = all.v;
    ds->n = all.n;
    if (rc) qb_dataset_free(ds);
    return rc;
}

void qb_dataset_free(qb_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n; i++) free(ds->items[i].path), free(ds->items[i].rel);
    free(ds->items);
    for (int i = 0; i < ds->n_classes; i++) free(ds->classes[i]);
    free(ds->classes);
    memset(ds, 0, sizeof *ds);
}
