/* safetensors.c — strict safetensors reader (mmap) and fp32 writer.
 * Spec: engine.md §3. The header parser is schema-driven: every value
 * position has one expected type, so nothing is parsed recursively and hostile nesting
 * is rejected at the first unexpected '[' or '{'. Every read is bounds-checked, because
 * the input is untrusted (and fuzzed through st_open_buffer). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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


static const struct { const char *name; size_t size; } dtypes[] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1}, [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_I16] = {"I16", 2}, [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4}, [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8}, [ST_U64] = {"U64", 8},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *st_dtype_name(st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? dtypes[d].name : "?"; }
size_t st_dtype_size(st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? dtypes[d].size : 0; }

/* ---------------------------------------------------------------------------------- */
/* helpers shared by reader and writer */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (Unicode Table 3-7:
 * no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len; uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++) if ((s[k] & 0xC0) != 0x80) return 0;
    return len;
}

/* Offset of the first invalid UTF-8 byte, or n if all valid. */
size_t st_utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t l = utf8_seq(s + i, n - i);
        if (!l) return i;
        i += l;
    }
    return n;
}

/* Printable, truncated copy of a (possibly hostile) name, so error messages stay one line. */
const char *st_show(const char *str, size_t n, char *buf, size_t cap) {
    const uint8_t *s = (const uint8_t *)str;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = s[i] >= 0x80 ? utf8_seq(s + i, n - i) : 1;
        int printable = s[i] >= 0x20 && s[i] != 0x7F && s[i] != '\\' && l > 0;
        size_t need = printable ? l : 4;
        if (o + need + 4 > cap) { memcpy(buf + o, "...", 3); o += 3; break; }
        if (printable) { memcpy(buf + o, s + i, l); o += l; i += l; }
        else { snprintf(buf + o, 5, "\\x%02x", s[i]); o += 4; i++; }
    }
    buf[o] = 0;
    return buf;
}

/* ---------------------------------------------------------------------------------- */
/* reader */

typedef struct {
    const uint8_t *s;         /* header bytes (not NUL-terminated) */
    size_t n, i;              /* length, cursor */
    const char *label;
    char *tmp;                /* last decoded string; n+1 bytes suffice (decoding never grows) */
    size_t tmp_len;
    st_file *f;
    uint64_t (*off)[2];       /* data_offsets per tensor, parallel to f->tensors */
    int cap_t, cap_m;
} parser;

static int perr(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(parser *p, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qb_error(QB_EXIT_MODEL, "%s: %s", p->label, msg);
}

static int jerr(parser *p, const char *what) {
    return perr(p, "invalid header JSON at header byte %zu: %s", p->i, what);
}

/* Error about tensor t (its name already decoded). */
static int terr(parser *p, const st_tensor *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int terr(parser *p, const st_tensor *t, const char *fmt, ...) {
    char msg[400], nb[SHOWBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return perr(p, "tensor '%s': %s", st_show(t->name, t->name_len, nb, sizeof nb), msg);
}

static void ws(parser *p) {
    while (p->i < p->n) {
        uint8_t c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}
static int peek(const parser *p) { return p->i < p->n ? p->s[p->i] : -1; }

/* Skip whitespace, require character c, step over it. */
static int expect(parser *p, char c, const char *what) {
    ws(p);
    if (peek(p) != (uint8_t)c) return jerr(p, what);
    p->i++;
    ws(p);
    return 0;
}

static int hex4(const parser *p, size_t at, unsigned *out) {
    if (at > p->n || p->n - at < 4) return 1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = p->s[at + k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Decode the JSON string at the cursor into p->tmp (NUL-terminated, p->tmp_len bytes).
 * The header was already checked to be UTF-8, so raw bytes are copied as they are. */
static int parse_string(parser *p) {
    if (peek(p) != '"') return jerr(p, "expected a string");
    size_t i = p->i + 1, o = 0;
    for (;;) {
        if (i >= p->n) { p->i = i; return jerr(p, "unterminated string"); }
        uint8_t c = p->s[i];
        if (c == '"') break;
        if (c < 0x20) { p->i = i; return jerr(p, "control character in string must be escaped"); }
        if (c != '\\') { p->tmp[o++] = (char)c; i++; continue; }
        if (i + 1 >= p->n) { p->i = i; return jerr(p, "unterminated string"); }
        uint8_t e = p->s[i + 1];
        p->i = i;                      /* error position: the backslash */
        i += 2;
        switch (e) {
        case '"': case '\\': case '/': p->tmp[o++] = (char)e; break;
        case 'b': p->tmp[o++] = '\b'; break;
        case 'f': p->tmp[o++] = '\f'; break;
        case 'n': p->tmp[o++] = '\n'; break;
        case 'r': p->tmp[o++] = '\r'; break;
        case 't': p->tmp[o++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(p, i, &cp)) return jerr(p, "\\u must be followed by 4 hex digits");
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return jerr(p, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 2 > p->n || p->s[i] != '\\' || p->s[i + 1] != 'u' || hex4(p, i + 2, &lo)
                    || lo < 0xDC00 || lo > 0xDFFF)
                    return jerr(p, "lone high surrogate in \\u escape (no low surrogate follows)");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            if (cp == 0) return jerr(p, "string contains NUL (\\u0000)");
            /* 6 or 12 escape bytes become at most 3 or 4 UTF-8 bytes: tmp cannot overflow */
            int len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            static const uint8_t lead[5] = {0, 0x00, 0xC0, 0xE0, 0xF0};
            for (int k = len - 1; k > 0; k--, cp >>= 6) p->tmp[o + (size_t)k] = (char)(0x80 | (cp & 63));
            p->tmp[o] = (char)(lead[len] | cp);
            o += (size_t)len;
            break;
        }
        default: return jerr(p, "invalid escape in string");
        }
    }
    p->tmp[o] = 0;
    p->tmp_len = o;
    p->i = i + 1;
    return 0;
}

static char *dup_tmp(const parser *p) {
    char *s = qb_malloc(p->tmp_len + 1);
    if (s) memcpy(s, p->tmp, p->tmp_len + 1);
    return s;
}

static int tmp_is(const parser *p, const char *lit) {
    size_t l = strlen(lit);
    return p->tmp_len == l && memcmp(p->tmp, lit, l) == 0;
}

/* A plain non-negative JSON integer that fits in 64 bits. */
static int parse_u64(parser *p, const st_tensor *t, const char *field, uint64_t *out) {
    int c = peek(p);
    if (c == '-') return terr(p, t, "%s: negative number at header byte %zu", field, p->i);
    if (c < '0' || c > '9')
        return terr(p, t, "%s: expected a non-negative integer at header byte %zu", field, p->i);
    if (c == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
        return terr(p, t, "%s: integer with a leading zero at header byte %zu", field, p->i);
    uint64_t v = 0;
    while ((c = peek(p)) >= '0' && c <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(c - '0'), &v))
            return terr(p, t, "%s: integer overflows 2^64-1 at header byte %zu", field, p->i);
        p->i++;
    }
    if (c == '.' || c == 'e' || c == 'E')
        return terr(p, t, "%s: number with a fraction or exponent at header byte %zu; only plain integers are allowed",
                    field, p->i);
    *out = v;
    return 0;
}

/* Array of at most `max` integers; *count gets the number read. */
static int parse_u64_array(parser *p, const st_tensor *t, const char *field, uint64_t *out, int max, int *count) {
    if (peek(p) != '[') return terr(p, t, "%s must be an array of integers", field);
    p->i++;
    ws(p);
    int k = 0;
    if (peek(p) == ']') { p->i++; *count = 0; return 0; }
    for (;;) {
        if (k == max) {
            if (max == ST_MAX_DIMS) return terr(p, t, "shape has more than %d dimensions", ST_MAX_DIMS);
            return terr(p, t, "%s must have exactly %d elements", field, max);
        }
        if (parse_u64(p, t, field, &out[k])) return QB_EXIT_MODEL;
        k++;
        ws(p);
        int c = peek(p);
        p->i++;
        if (c == ']') break;
        if (c != ',') { p->i--; return jerr(p, "expected ',' or ']' in array"); }
        ws(p);
    }
    *count = k;
    return 0;
}

void st_fmt_shape(char *buf, size_t cap, const uint64_t *shape, int ndim) {
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%llu", d ? "," : "", (unsigned long long)shape[d]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* The value of a tensor entry: {"dtype":..,"shape":[..],"data_offsets":[b,e]}, any order. */
static int parse_tensor(parser *p, st_tensor *t, uint64_t off[2]) {
    if (peek(p) != '{') return terr(p, t, "entry must be an object with dtype, shape and data_offsets");
    p->i++;
    ws(p);
    int have_d = 0, have_s = 0, have_o = 0;
    if (peek(p) == '}') p->i++;
    else for (;;) {
        if (parse_string(p)) return QB_EXIT_MODEL;
        int field = tmp_is(p, "dtype") ? 0 : tmp_is(p, "shape") ? 1 : tmp_is(p, "data_offsets") ? 2 : -1;
        if (field < 0) {
            char nb[SHOWBUF];
            return terr(p, t, "unknown field '%s' (only dtype, shape, data_offsets are allowed)",
                        st_show(p->tmp, p->tmp_len, nb, sizeof nb));
        }
        int *have = field == 0 ? &have_d : field == 1 ? &have_s : &have_o;
        if (*have) return terr(p, t, "duplicate field '%s'", p->tmp);
        *have = 1;
        if (expect(p, ':', "expected ':' after a key")) return QB_EXIT_MODEL;
        if (field == 0) {
            if (peek(p) != '"') return terr(p, t, "dtype must be a string");
            if (parse_string(p)) return QB_EXIT_MODEL;
            int d = 0;
            while (d < N_DTYPES && !tmp_is(p, dtypes[d].name)) d++;
            if (d == N_DTYPES) {
                char nb[SHOWBUF];
                return terr(p, t, "unknown dtype '%s'", st_show(p->tmp, p->tmp_len, nb, sizeof nb));
            }
            t->dtype = (st_dtype)d;
        } else if (field == 1) {
            if (parse_u64_array(p, t, "shape", t->shape, ST_MAX_DIMS, &t->ndim)) return QB_EXIT_MODEL;
        } else {
            int k;
            if (parse_u64_array(p, t, "data_offsets", off, 2, &k)) return QB_EXIT_MODEL;
            if (k != 2) return terr(p, t, "data_offsets must have exactly 2 elements, got %d", k);
        }
        ws(p);
        int c = peek(p);
        p->i++;
        if (c == '}') break;
        if (c != ',') { p->i--; return jerr(p, "expected ',' or '}' in tensor entry"); }
        ws(p);
    }
    if (!have_d) return terr(p, t, "missing field 'dtype'");
    if (!have_s) return terr(p, t, "missing field 'shape'");
    if (!have_o) return terr(p, t, "missing field 'data_offsets'");

    char sb[200];
    st_fmt_shape(sb, sizeof sb, t->shape, t->ndim);
    uint64_t numel = 1, nbytes;
    for (int d = 0; d < t->ndim; d++)
        if (__builtin_mul_overflow(numel, t->shape[d], &numel))
            return terr(p, t, "shape %s: element count overflows 64 bits", sb);
    if (__builtin_mul_overflow(numel, (uint64_t)dtypes[t->dtype].size, &nbytes))
        return terr(p, t, "shape %s %s: byte size overflows 64 bits", sb, dtypes[t->dtype].name);
    if (off[1] < off[0])
        return terr(p, t, "data_offsets [%llu,%llu]: end is before begin",
                    (unsigned long long)off[0], (unsigned long long)off[1]);
    if (off[1] - off[0] != nbytes)
        return terr(p, t, "data_offsets [%llu,%llu] hold %llu bytes but shape %s %s needs %llu",
                    (unsigned long long)off[0], (unsigned long long)off[1],
                    (unsigned long long)(off[1] - off[0]), sb, dtypes[t->dtype].name,
                    (unsigned long long)nbytes);
    t->numel = numel;
    t->nbytes = nbytes;
    return 0;
}

static int parse_metadata(parser *p) {
    st_file *f = p->f;
    if (peek(p) != '{') return perr(p, "__metadata__ must be an object mapping strings to strings");
    p->i++;
    ws(p);
    if (peek(p) == '}') { p->i++; return 0; }
    for (;;) {
        if (parse_string(p)) return QB_EXIT_MODEL;
        if (f->n_meta == p->cap_m) {
            if (p->cap_m > INT_MAX / 4) return perr(p, "too many __metadata__ entries");
            int cap = p->cap_m ? 2 * p->cap_m : 16;
            st_meta *m = qb_calloc((size_t)cap, sizeof *m);
            if (!m) return QB_EXIT_FAIL;
            if (f->n_meta) memcpy(m, f->meta, (size_t)f->n_meta * sizeof *m);
            free(f->meta);
            f->meta = m;
            p->cap_m = cap;
        }
        st_meta *m = &f->meta[f->n_meta++];
        if (!(m->key = dup_tmp(p))) return QB_EXIT_FAIL;
        if (expect(p, ':', "expected ':' after a key")) return QB_EXIT_MODEL;
        if (peek(p) != '"') {
            char nb[SHOWBUF];
            return perr(p, "__metadata__ value for key '%s' is not a string (only string values are allowed)",
                        st_show(m->key, strlen(m->key), nb, sizeof nb));
        }
        if (parse_string(p)) return QB_EXIT_MODEL;
        if (!(m->value = dup_tmp(p))) return QB_EXIT_FAIL;
        ws(p);
        int c = peek(p);
        p->i++;
        if (c == '}') return 0;
        if (c != ',') { p->i--; return jerr(p, "expected ',' or '}' in __metadata__"); }
        ws(p);
    }
}

static int add_tensor(parser *p, st_tensor **out) {
    st_file *f = p->f;
    if (f->n_tensors == p->cap_t) {
        if (p->cap_t > INT_MAX / 4) return perr(p, "too many tensors");
        int cap = p->cap_t ? 2 * p->cap_t : 64;
        st_tensor *t = qb_calloc((size_t)cap, sizeof *t);
        uint64_t (*off)[2] = qb_calloc((size_t)cap, sizeof *off);
        if (!t || !off) { free(t); free(off); return QB_EXIT_FAIL; }
        if (f->n_tensors) {
            memcpy(t, f->tensors, (size_t)f->n_tensors * sizeof *t);
            memcpy(off, p->off, (size_t)f->n_tensors * sizeof *off);
        }
        free(f->tensors);
        free(p->off);
        f->tensors = t;
        p->off = off;
        p->cap_t = cap;
    }
    *out = &f->tensors[f->n_tensors++];
    return 0;
}

static int parse_header(parser *p) {
    if (p->n == 0) return perr(p, "header is empty (N = 0); expected a JSON object");
    if (p->s[0] != '{') return perr(p, "header does not start with '{' (first byte 0x%02x)", p->s[0]);
    p->i = 1;
    ws(p);
    int have_meta = 0;
    if (peek(p) == '}') p->i++;
    else for (;;) {
        if (parse_string(p)) return QB_EXIT_MODEL;
        if (tmp_is(p, "__metadata__")) {
            if (have_meta) return perr(p, "duplicate key '__metadata__'");
            have_meta = 1;
            if (expect(p, ':', "expected ':' after a key")) return QB_EXIT_MODEL;
            if (parse_metadata(p)) return QB_EXIT_MODEL;
        } else {
            st_tensor *t = NULL;
            int rc = add_tensor(p, &t);
            if (rc) return rc;
            if (!(t->name = dup_tmp(p))) return QB_EXIT_FAIL;
            t->name_len = p->tmp_len;
            if (expect(p, ':', "expected ':' after a key")) return QB_EXIT_MODEL;
            rc = parse_tensor(p, t, p->off[p->f->n_tensors - 1]);
            if (rc) return rc;
        }
        ws(p);
        int c = peek(p);
        p->i++;
        if (c == '}') break;
        if (c != ',') { p->i--; return jerr(p, "expected ',' or '}' after a top-level entry"); }
        ws(p);
    }
    ws(p);
    if (p->i < p->n)
        return perr(p, "unexpected data after the JSON object at header byte %zu (only whitespace may follow)", p->i);
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    size_t l = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, l);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}
static int cmp_meta(const void *a, const void *b) {
    return strcmp((*(const st_meta *const *)a)->key, (*(const st_meta *const *)b)->key);
}

typedef struct { uint64_t begin, end; int idx; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Rules 6, 11, 12 of §3.3, after the JSON parsed: unique names, contiguous offsets, size. */
static int check_layout(parser *p, uint64_t hdr_len, size_t file_size) {
    st_file *f = p->f;
    char nb[SHOWBUF], nb2[SHOWBUF];
    int n = f->n_tensors, rc = 0;
    /* sort (O(n log n)) rather than compare pairs, so a huge hostile header cannot hang us */
    const void **v = qb_malloc((size_t)(n > f->n_meta ? n : f->n_meta) * sizeof *v + 1);
    span *sp = qb_malloc((size_t)n * sizeof *sp + 1);
    if (!v || !sp) { free(v); free(sp); return QB_EXIT_FAIL; }
    for (int k = 0; k < n; k++) v[k] = &f->tensors[k];
    qsort(v, (size_t)n, sizeof *v, cmp_name);
    for (int k = 1; k < n && !rc; k++)
        if (cmp_name(&v[k - 1], &v[k]) == 0) {
            const st_tensor *t = v[k];
            rc = perr(p, "duplicate tensor name '%s'", st_show(t->name, t->name_len, nb, sizeof nb));
        }
    for (int k = 0; k < f->n_meta && !rc; k++) v[k] = &f->meta[k];
    if (!rc) qsort(v, (size_t)f->n_meta, sizeof *v, cmp_meta);
    for (int k = 1; k < f->n_meta && !rc; k++)
        if (cmp_meta(&v[k - 1], &v[k]) == 0) {
            const char *key = ((const st_meta *)v[k])->key;
            rc = perr(p, "duplicate __metadata__ key '%s'", st_show(key, strlen(key), nb, sizeof nb));
        }

    for (int k = 0; k < n; k++) sp[k] = (span){p->off[k][0], p->off[k][1], k};
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    uint64_t end = 0;
    for (int k = 0; k < n && !rc; k++) {
        const st_tensor *t = &f->tensors[sp[k].idx];
        st_show(t->name, t->name_len, nb, sizeof nb);
        if (k == 0 && sp[k].begin != 0)
            rc = perr(p, "tensor '%s': the first tensor in the data buffer begins at %llu, not 0 (gap)",
                      nb, (unsigned long long)sp[k].begin);
        else if (k > 0 && sp[k].begin != end) {
            const st_tensor *q = &f->tensors[sp[k - 1].idx];
            rc = perr(p, "tensor '%s': data_offsets begin at %llu but the previous tensor '%s' ends at %llu (%s)",
                      nb, (unsigned long long)sp[k].begin, st_show(q->name, q->name_len, nb2, sizeof nb2),
                      (unsigned long long)end, sp[k].begin > end ? "gap" : "overlap");
        }
        end = sp[k].end;
    }
    free(v);
    free(sp);
    if (rc) return rc;
    uint64_t total;
    if (__builtin_add_overflow(end, 8 + hdr_len, &total) || total != (uint64_t)file_size)
        return perr(p, "tensor data ends at byte %llu of the data buffer, but the file holds %llu data bytes "
                    "(file size %zu, header 8 + %llu)", (unsigned long long)end,
                    (unsigned long long)(file_size - 8 - hdr_len), file_size, (unsigned long long)hdr_len);
    const uint8_t *base = (const uint8_t *)f->map + 8 + hdr_len;
    for (int k = 0; k < n; k++) f->tensors[k].data = base + p->off[k][0];
    return 0;
}

/* Validate f->map (f->map_size bytes). On failure frees everything and zeroes *f. */
static int st_parse(st_file *f, const char *label) {
    const uint8_t *m = f->map;
    size_t size = f->map_size;
    parser p = {.label = label, .f = f};
    int rc;
    if (size < 8) {
        rc = qb_error(QB_EXIT_MODEL, "%s: file is %zu bytes, too small for the 8-byte header length (truncated?)",
                      label, size);
        goto done;
    }
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--) n = n << 8 | m[k];
    if (n > ST_MAX_HEADER) {
        rc = qb_error(QB_EXIT_MODEL, "%s: header length %llu exceeds the limit of %llu bytes (not a safetensors file?)",
                      label, (unsigned long long)n, ST_MAX_HEADER);
        goto done;
    }
    if (n > size - 8) {
        rc = qb_error(QB_EXIT_MODEL, "%s: header length %llu needs %llu bytes but the file has only %zu (truncated?)",
                      label, (unsigned long long)n, (unsigned long long)(n + 8), size);
        goto done;
    }
    p.s = m + 8;
    p.n = (size_t)n;
    size_t bad = st_utf8_check(p.s, p.n);
    if (bad < p.n) {
        rc = qb_error(QB_EXIT_MODEL, "%s: header is not valid UTF-8 (header byte %zu)", label, bad);
        goto done;
    }
    /* exact size (not qb_malloc's rounding) so AddressSanitizer sees any overrun */
    p.tmp = malloc(p.n + 1);
    if (!p.tmp) { rc = qb_error(QB_EXIT_FAIL, "%s: out of memory for the header", label); goto done; }
    rc = parse_header(&p);
    if (!rc) rc = check_layout(&p, n, size);
done:
    free(p.tmp);
    free(p.off);
    if (rc) st_close(f);
    return rc;
}

int st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    /* O_NONBLOCK: opening a FIFO must not hang; it is rejected below as not a regular file */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return qb_error(QB_EXIT_MODEL, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return qb_error(QB_EXIT_MODEL, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) { close(fd); return qb_error(QB_EXIT_MODEL, "%s: is a directory, not a safetensors file", path); }
    if (!S_ISREG(st.st_mode)) { close(fd); return qb_error(QB_EXIT_MODEL, "%s: not a regular file", path); }
    if (st.st_size < 8) {
        close(fd);
        return qb_error(QB_EXIT_MODEL, "%s: file is %lld bytes, too small for the 8-byte header length (truncated?)",
                        path, (long long)st.st_size);
    }
    if ((unsigned long long)st.st_size > SIZE_MAX) { close(fd); return qb_error(QB_EXIT_MODEL, "%s: file too large to map", path); }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return qb_error(QB_EXIT_MODEL, "%s: cannot map: %s", path, strerror(e));
    f->map = map;
    f->map_size = (size_t)st.st_size;
    snprintf(f->path, sizeof f->path, "%s", path);
    return st_parse(f, path);
}

int st_open_buffer(st_file *f, const void *buf, size_t size, const char *label) {
    memset(f, 0, sizeof *f);
    if (!label) label = "<buffer>";
    /* exact-size malloc (not qb_malloc's 64-byte rounding) so fuzzers catch overreads */
    void *copy = malloc(size ? size : 1);
    if (!copy) return qb_error(QB_EXIT_FAIL, "%s: out of memory copying %zu bytes", label, size);
    if (size) memcpy(copy, buf, size);
    f->map = copy;
    f->map_size = size;
    f->map_heap = 1;
    snprintf(f->path, sizeof f->path, "%s", label);
    return st_parse(f, label);
}

void st_close(st_file *f) {
    for (int k = 0; k < f->n_tensors; k++) free(f->tensors[k].name);
    for (int k = 0; k < f->n_meta; k++) { free(f->meta[k].key); free(f->meta[k].value); }
    free(f->tensors);
    free(f->meta);
    if (f->map) {
        if (f->map_heap) free(f->map);
        else munmap(f->map, f->map_size);
    }
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    size_t l = strlen(name);
    for (int k = 0; k < f->n_tensors; k++)
        if (f->tensors[k].name_len == l && memcmp(f->tensors[k].name, name, l) == 0) return &f->tensors[k];
    return NULL;
}

const char *st_meta_get(const st_file *f, const char *key) {
    for (int k = 0; k < f->n_meta; k++)
        if (strcmp(f->meta[k].key, key) == 0) return f->meta[k].value;
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* decoding (§3.4) */

static float bits_f32(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }

static float f16_to_f32(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    if (e == 0) { float v = (float)m * 0x1p-24f; return s ? -v : v; }   /* zero, subnormal: exact */
    if (e == 31) return bits_f32(s | 0x7f800000u | m << 13);            /* inf, NaN (payload kept) */
    return bits_f32(s | (e + 112) << 23 | m << 13);
}

int st_to_f32(const st_file *f, const st_tensor *t, float *dst) {
    const uint8_t *p = t->data;
    uint64_t n = t->numel;
    switch (t->dtype) {
    case ST_F32:
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) memcpy(dst, p, (size_t)n * 4);   /* memcpy: data may be unaligned */
#else
        for (uint64_t k = 0; k < n; k++)
            dst[k] = bits_f32((uint32_t)p[4*k] | (uint32_t)p[4*k+1] << 8 | (uint32_t)p[4*k+2] << 16 | (uint32_t)p[4*k+3] << 24);
#endif
        return 0;
    case ST_F16:
        for (uint64_t k = 0; k < n; k++) dst[k] = f16_to_f32((uint16_t)(p[2*k] | p[2*k+1] << 8));
        return 0;
    case ST_BF16:
        for (uint64_t k = 0; k < n; k++) dst[k] = bits_f32((uint32_t)(p[2*k] | p[2*k+1] << 8) << 16);
        return 0;
    default: {
        char nb[SHOWBUF];
        return qb_error(QB_EXIT_MODEL, "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 can be loaded",
                        f->path, st_show(t->name, t->name_len, nb, sizeof nb), st_dtype_name(t->dtype));
    }
    }
}
