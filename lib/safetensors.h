/* safetensors.h — strict reader (memory-mapped) and writer for the safetensors format.
 * Spec: engine.md §3. Every validation failure returns QB_EXIT_MODEL with
 * a message naming the file and the problem (qb_last_error()). */
#ifndef QB_SAFETENSORS_H
#define QB_SAFETENSORS_H
#include "qb.h"

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;                  /* NUL-terminated, decoded from JSON escapes */
    size_t name_len;             /* byte length (names may not contain NUL; rejected if they do) */
    st_dtype dtype;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    const uint8_t *data;         /* points into the mapping (little-endian, maybe unaligned) */
    uint64_t nbytes;
} st_tensor;

typedef struct {
    char *key, *value;
} st_meta;

typedef struct {
    char path[1024];
    void *map;                   /* whole file, read-only mmap */
    size_t map_size;
    st_tensor *tensors;          /* in header order */
    int n_tensors;
    st_meta *meta;               /* __metadata__ entries */
    int n_meta;
    int map_heap;                /* 1: map is a malloc'd copy (st_open_buffer), 0: mmap */
} st_file;

/* Open and validate (all rules of engine.md §3.3). On failure *f is left zeroed. */
int st_open(st_file *f, const char *path);
/* Same checks on an in-memory buffer (copied); used by tests and fuzzers. */
int st_open_buffer(st_file *f, const void *buf, size_t size, const char *label);
void st_close(st_file *f);

const st_tensor *st_find(const st_file *f, const char *name);   /* NULL if absent */
const char *st_meta_get(const st_file *f, const char *key);     /* NULL if absent */
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* Convert a F32/F16/BF16 tensor to fp32 into dst (numel floats). Other dtypes: QB_EXIT_MODEL. */
int st_to_f32(const st_file *f, const st_tensor *t, float *dst);

/* Writer: fp32 tensors, names sorted as the reference writer does, header padded to 8 bytes.
 * Writes to path.tmp then renames (atomic). */
typedef struct {
    const char *name;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    const float *data;
} st_write_tensor;
int st_write_f32(const char *path, const st_write_tensor *tensors, int n,
                 const st_meta *meta, int n_meta);

#endif
