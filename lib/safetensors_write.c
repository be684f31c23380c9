/* safetensors_write.c — the fp32 safetensors writer (reference layout, atomic tmp + rename);
 * the reader is lib/safetensors.c. */
#include "safetensors.h"
#include "safetensors_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------- */
/* writer */

typedef struct { char *p; size_t n, cap; int oom; } strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2) { b->oom = 1; return; }
            cap *= 2;
        }
        char *q = qb_malloc(cap);
        if (!q) { b->oom = 1; return; }
        if (b->n) memcpy(q, b->p, b->n);
        free(b->p);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string, escaped as serde_json (the reference writer) does, so output is byte-identical. */
static void sb_json(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const uint8_t *c = (const uint8_t *)s; *c; c++) {
        char e[8];
        switch (*c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*c < 0x20) { snprintf(e, sizeof e, "\\u%04x", *c); sb_put(b, e, 6); }
            else sb_put(b, (const char *)c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_wname(const void *a, const void *b) {
    return strcmp((*(const st_write_tensor *const *)a)->name, (*(const st_write_tensor *const *)b)->name);
}

static int write_all(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write tensor data little-endian. */
static int write_f32(int fd, const float *x, uint64_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return n ? write_all(fd, x, (size_t)n * 4) : 0;
#else
    uint8_t chunk[4096];
    for (uint64_t k = 0; k < n;) {
        size_t m = 0;
        for (; m < sizeof chunk && k < n; m += 4, k++) {
            uint32_t b; memcpy(&b, &x[k], 4);
            chunk[m] = b; chunk[m+1] = b >> 8; chunk[m+2] = b >> 16; chunk[m+3] = b >> 24;
        }
        if (write_all(fd, chunk, m)) return -1;
    }
    return 0;
#endif
}

int st_write_f32(const char *path, const st_write_tensor *tensors, int n, const st_meta *meta, int n_meta) {
    char nb[SHOWBUF], tmp[4096];
    if (n < 0 || n_meta < 0 || (n && !tensors) || (n_meta && !meta))
        return qb_error(QB_EXIT_FAIL, "%s: st_write_f32: bad arguments", path);
    for (int k = 0; k < n_meta; k++) {
        if (!meta[k].key || !meta[k].value)
            return qb_error(QB_EXIT_FAIL, "%s: __metadata__ entry %d has a NULL key or value", path, k);
        size_t lk = strlen(meta[k].key), lv = strlen(meta[k].value);
        if (st_utf8_check((const uint8_t *)meta[k].key, lk) < lk || st_utf8_check((const uint8_t *)meta[k].value, lv) < lv)
            return qb_error(QB_EXIT_FAIL, "%s: __metadata__ key '%s': key or value is not valid UTF-8",
                            path, st_show(meta[k].key, lk, nb, sizeof nb));
        for (int j = 0; j < k; j++)
            if (strcmp(meta[j].key, meta[k].key) == 0)
                return qb_error(QB_EXIT_FAIL, "%s: duplicate __metadata__ key '%s'", path, st_show(meta[k].key, lk, nb, sizeof nb));
    }
    const st_write_tensor **v = qb_malloc((size_t)n * sizeof *v + 1);
    if (!v) return QB_EXIT_FAIL;
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        const st_write_tensor *t = &tensors[k];
        v[k] = t;
        size_t l = t->name ? strlen(t->name) : 0;
        if (!t->name)
            rc = qb_error(QB_EXIT_FAIL, "%s: tensor %d has no name", path, k);
        else if (st_utf8_check((const uint8_t *)t->name, l) < l || strcmp(t->name, "__metadata__") == 0)
            rc = qb_error(QB_EXIT_FAIL, "%s: invalid tensor name '%s'", path, st_show(t->name, l, nb, sizeof nb));
        else if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            rc = qb_error(QB_EXIT_FAIL, "%s: tensor '%s': ndim %d out of range 0..%d", path,
                          st_show(t->name, l, nb, sizeof nb), t->ndim, ST_MAX_DIMS);
    }
    if (rc) { free(v); return rc; }
    qsort(v, (size_t)n, sizeof *v, cmp_wname);
    for (int k = 1; k < n; k++)
        if (strcmp(v[k - 1]->name, v[k]->name) == 0) {
            rc = qb_error(QB_EXIT_FAIL, "%s: duplicate tensor name '%s'", path,
                          st_show(v[k]->name, strlen(v[k]->name), nb, sizeof nb));
            free(v);
            return rc;
        }

    /* header: {"__metadata__":{..},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},..} */
    strbuf b = {0};
    sb_str(&b, "{");
    if (n_meta) {
        sb_str(&b, "\"__metadata__\":{");
        for (int k = 0; k < n_meta; k++) {
            if (k) sb_str(&b, ",");
            sb_json(&b, meta[k].key);
            sb_str(&b, ":");
            sb_json(&b, meta[k].value);
        }
        sb_str(&b, "}");
    }
    uint64_t off = 0;
    for (int k = 0; k < n && !rc; k++) {
        const st_write_tensor *t = v[k];
        uint64_t numel = 1, nbytes, end;
        for (int d = 0; d < t->ndim && !rc; d++)
            if (__builtin_mul_overflow(numel, t->shape[d], &numel)) rc = 1;
        if (rc || __builtin_mul_overflow(numel, 4, &nbytes) || __builtin_add_overflow(off, nbytes, &end)
            || nbytes > SIZE_MAX || (numel && !t->data)) {
            rc = qb_error(QB_EXIT_FAIL, "%s: tensor '%s': shape overflows or data is NULL", path,
                          st_show(t->name, strlen(t->name), nb, sizeof nb));
            break;
        }
        char num[200];
        if (n_meta || k) sb_str(&b, ",");
        sb_json(&b, t->name);
        sb_str(&b, ":{\"dtype\":\"F32\",\"shape\":");
        st_fmt_shape(num, sizeof num, t->shape, t->ndim);
        sb_str(&b, num);
        snprintf(num, sizeof num, ",\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)end);
        sb_str(&b, num);
        off = end;
    }
    sb_str(&b, "}");
    while (b.n % 8) sb_str(&b, " ");   /* pad so the data starts 8-aligned, as the reference does */
    if (!rc && b.oom) rc = qb_error(QB_EXIT_FAIL, "%s: out of memory building the header", path);
    if (!rc && b.n > ST_MAX_HEADER) rc = qb_error(QB_EXIT_FAIL, "%s: header of %zu bytes exceeds the limit", path, b.n);
    if (!rc && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        rc = qb_error(QB_EXIT_IO, "%s: path too long", path);
    if (rc) { free(v); free(b.p); return rc; }

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = qb_error(QB_EXIT_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        free(v); free(b.p);
        return rc;
    }
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)b.n >> (8 * k));
    int bad = write_all(fd, len8, 8) || write_all(fd, b.p, b.n);
    for (int k = 0; k < n && !bad; k++) {
        uint64_t numel = 1;
        for (int d = 0; d < v[k]->ndim; d++) numel *= v[k]->shape[d];   /* checked above */
        bad = write_f32(fd, v[k]->data, numel);
    }
    int e = errno;
    if (!bad && fsync(fd) != 0) { bad = 1; e = errno; }
    if (close(fd) != 0 && !bad) { bad = 1; e = errno; }
    if (!bad && rename(tmp, path) != 0) { bad = 1; e = errno; }
    free(v);
    free(b.p);
    if (bad) {
        unlink(tmp);
        return qb_error(QB_EXIT_IO, "%s: cannot write: %s", path, strerror(e));
    }
    /* make the rename itself durable; best effort, the file is complete either way */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0; else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { fsync(dfd); close(dfd); }
    return 0;
}
