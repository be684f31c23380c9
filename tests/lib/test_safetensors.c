/* test_safetensors.c — lib/safetensors.c: engine.md §3.5 vectors, strict validation, decoding, writer. */
#include "qbtest.h"
#include "safetensors.h"
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LABEL "t.safetensors"

/* File image: 8-byte little-endian length, header bytes, data_len bytes (0,1,2,..). */
static uint8_t *mk(const char *hdr, size_t hdr_len, size_t data_len, size_t *size) {
    uint8_t *b = calloc(8 + hdr_len + data_len + 1, 1);
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)((uint64_t)hdr_len >> (8 * k));
    memcpy(b + 8, hdr, hdr_len);
    for (size_t k = 0; k < data_len; k++) b[8 + hdr_len + k] = (uint8_t)k;
    *size = 8 + hdr_len + data_len;
    return b;
}

static int open_hdr(st_file *f, const char *hdr, size_t data_len) {
    size_t size;
    uint8_t *b = mk(hdr, strlen(hdr), data_len, &size);
    int rc = st_open_buffer(f, b, size, LABEL);
    free(b);
    return rc;
}

static void check_failed(int rc, const st_file *f, const char *needle, const char *what) {
    const char *e = qb_last_error();
    ck_assert_msg(rc == QB_EXIT_MODEL, "rc %d (expected %d) for %s; error: %s", rc, QB_EXIT_MODEL, what, e);
    ck_assert_msg(strstr(e, needle) != NULL, "error '%s' does not mention '%s' (%s)", e, needle, what);
    ck_assert_msg(strncmp(e, LABEL ": ", strlen(LABEL) + 2) == 0, "error '%s' does not name the file", e);
    ck_assert_msg(strchr(e, '\n') == NULL, "error '%s' is not one line", e);
    ck_assert_ptr_null(f->map);
    ck_assert_ptr_null(f->tensors);
    ck_assert_int_eq(f->n_tensors, 0);
}

static void expect_bad(const char *hdr, size_t data_len, const char *needle) {
    st_file f;
    int rc = open_hdr(&f, hdr, data_len);
    check_failed(rc, &f, needle, hdr);
}

static void expect_bad_raw(const void *buf, size_t size, const char *needle) {
    st_file f;
    int rc = st_open_buffer(&f, buf, size, LABEL);
    check_failed(rc, &f, needle, "raw buffer");
}

static const char *VEC_F32_HDR = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";

static uint8_t *vec_f32(size_t *size) {
    size_t n = strlen(VEC_F32_HDR);
    uint8_t *b = mk(VEC_F32_HDR, n, 24, size);
    for (int k = 0; k < 6; k++) { float v = (float)k; memcpy(b + 8 + n + 4 * k, &v, 4); }
    return b;
}

static int file_eq(const char *path, const uint8_t *want, size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    uint8_t *got = malloc(n + 1);
    size_t r = fread(got, 1, n + 1, fp);
    fclose(fp);
    int ok = r == n && memcmp(got, want, n) == 0;
    free(got);
    return ok;
}

/* ---- §3.5 byte-exact vectors ---- */

START_TEST(test_vec_f32) {
    ck_assert_uint_eq(strlen(VEC_F32_HDR), 64);
    size_t size;
    uint8_t *b = vec_f32(&size);
    ck_assert_uint_eq(size, 96);
    st_file f;
    ck_assert_int_eq(st_open_buffer(&f, b, size, LABEL), 0);
    ck_assert_int_eq(f.n_tensors, 1);
    const st_tensor *t = st_find(&f, "attn.0");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->name, "attn.0");
    ck_assert_uint_eq(t->name_len, 6);
    ck_assert_int_eq(t->dtype, ST_F32);
    ck_assert_int_eq(t->ndim, 3);
    ck_assert_uint_eq(t->shape[0], 1);
    ck_assert_uint_eq(t->shape[1], 2);
    ck_assert_uint_eq(t->shape[2], 3);
    ck_assert_uint_eq(t->numel, 6);
    ck_assert_uint_eq(t->nbytes, 24);
    ck_assert_ptr_eq(t->data, (const uint8_t *)f.map + 72);
    float x[6];
    ck_assert_int_eq(st_to_f32(&f, t, x), 0);
    for (int k = 0; k < 6; k++) ck_assert_float_eq(x[k], (float)k);
    ck_assert_int_eq(f.n_meta, 0);
    st_close(&f);
    ck_assert_ptr_null(f.map);

    /* the writer reproduces the 96 bytes exactly, and the result reads back through mmap */
    char path[512];
    snprintf(path, sizeof path, "%s/a.safetensors", qbt_tmpdir());
    float v[6] = {0, 1, 2, 3, 4, 5};
    st_write_tensor w = {.name = "attn.0", .ndim = 3, .shape = {1, 2, 3}, .data = v};
    ck_assert_int_eq(st_write_f32(path, &w, 1, NULL, 0), 0);
    ck_assert(file_eq(path, b, 96));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
    ck_assert_int_eq(st_open(&f, path), 0);
    ck_assert_str_eq(f.path, path);
    ck_assert_int_eq(st_to_f32(&f, st_find(&f, "attn.0"), x), 0);
    ck_assert_float_eq(x[5], 5.0f);
    st_close(&f);
    free(b);
}
END_TEST

START_TEST(test_vec_empty) {
    const uint8_t want[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    st_file f;
    ck_assert_int_eq(st_open_buffer(&f, want, 16, LABEL), 0);
    ck_assert_int_eq(f.n_tensors, 0);
    ck_assert_int_eq(f.n_meta, 0);
    ck_assert_ptr_null(st_find(&f, "a"));
    st_close(&f);
    char path[512];
    snprintf(path, sizeof path, "%s/e.safetensors", qbt_tmpdir());
    ck_assert_int_eq(st_write_f32(path, NULL, 0, NULL, 0), 0);
    ck_assert(file_eq(path, want, 16));
}
END_TEST

START_TEST(test_vec_meta) {
    const char *hdr = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    ck_assert_uint_eq(strlen(hdr), 40);
    size_t size;
    uint8_t *b = mk(hdr, 40, 0, &size);
    st_file f;
    ck_assert_int_eq(st_open_buffer(&f, b, size, LABEL), 0);
    ck_assert_int_eq(f.n_tensors, 0);
    ck_assert_int_eq(f.n_meta, 1);
    ck_assert_str_eq(st_meta_get(&f, "framework"), "pt");
    ck_assert_ptr_null(st_meta_get(&f, "frame"));
    st_close(&f);
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", qbt_tmpdir());
    st_meta m = {"framework", "pt"};
    ck_assert_int_eq(st_write_f32(path, NULL, 0, &m, 1), 0);
    ck_assert(file_eq(path, b, 48));
    free(b);
}
END_TEST

/* ---- sizes and header length ---- */

START_TEST(test_bad_sizes) {
    size_t size;
    uint8_t *b = vec_f32(&size);
    expect_bad_raw(b, 0, "0 bytes");                /* empty file */
    expect_bad_raw(b, 7, "7 bytes");
    expect_bad_raw(b, 90, "tensor data ends at byte 24");   /* truncated data */
    expect_bad_raw(b, 40, "needs 72 bytes");               /* truncated header */
    b[0] = 0xe8; b[1] = 0x03;                              /* N = 1000 > file */
    expect_bad_raw(b, size, "1000");
    uint64_t big = 100000001;                              /* N > 1e8 */
    for (int k = 0; k < 8; k++) b[k] = (uint8_t)(big >> (8 * k));
    expect_bad_raw(b, size, "exceeds the limit");
    memset(b, 0xff, 8);                                    /* N = 2^64-1: no overflow in 8 + N */
    expect_bad_raw(b, size, "18446744073709551615");
    memset(b, 0, 8);                                       /* N = 0 */
    expect_bad_raw(b, 8, "empty");
    free(b);
    /* total size mismatch: 4 extra bytes after the data */
    expect_bad(VEC_F32_HDR, 28, "28 data bytes");
}
END_TEST

/* ---- structure and JSON ---- */

START_TEST(test_bad_json) {
    expect_bad("[]", 0, "does not start with '{'");
    expect_bad(" {}", 0, "does not start with '{'");
    expect_bad("{} x", 0, "unexpected data after the JSON object");
    expect_bad("{}{}", 0, "unexpected data after the JSON object");
    expect_bad("{", 0, "invalid header JSON");
    expect_bad("{\"a\"", 0, "expected ':'");
    expect_bad("{\"a\":{\"dtype\":\"F32\"", 0, "invalid header JSON");
    expect_bad("{\"a", 0, "unterminated string");
    expect_bad("{a:1}", 0, "expected a string");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, "expected a string");
    expect_bad("{\"a\":{\"dtype\":\"F32\" \"shape\":[1]}}", 0, "expected ',' or '}'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1 2],\"data_offsets\":[0,4]}}", 4, "expected ',' or ']'");
    expect_bad("{\"a\tb\":{}}", 0, "control character");
    expect_bad("{\"a\\x\":{}}", 0, "invalid escape");
    expect_bad("{\"a\\u12\":{}}", 0, "4 hex digits");
    expect_bad("{\"a\xc3\x28\":{}}", 0, "UTF-8");             /* bad continuation */
    expect_bad("{\"\xc0\xaf\":{}}", 0, "UTF-8");              /* overlong '/' */
    expect_bad("{\"\xed\xa0\x80\":{}}", 0, "UTF-8");          /* raw surrogate */
    expect_bad("{\"a\":{}}", 0, "missing field 'dtype'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing field 'shape'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing field 'data_offsets'");
    expect_bad("{\"a\":1}", 0, "tensor 'a': entry must be an object");
    const char nul[] = "{\"__metadata__\":{}\0}";
    size_t size;
    uint8_t *b = mk(nul, sizeof nul - 1, 0, &size);
    expect_bad_raw(b, size, "expected ',' or '}'");
    free(b);
}
END_TEST

START_TEST(test_escapes) {
    /* every escape decodes; the name is found by its decoded bytes */
    st_file f;
    const char *hdr = "{\"q\\\"b\\\\s\\/n\\n\\b\\f\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\":"
                      "{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}";
    ck_assert_int_eq(open_hdr(&f, hdr, 1), 0);
    const char *want = "q\"b\\s/n\n\b\f\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    ck_assert_str_eq(f.tensors[0].name, want);
    ck_assert_uint_eq(f.tensors[0].name_len, strlen(want));
    ck_assert_ptr_nonnull(st_find(&f, want));
    ck_assert_int_eq(f.tensors[0].ndim, 0);
    ck_assert_uint_eq(f.tensors[0].numel, 1);   /* [] is a scalar */
    st_close(&f);
    expect_bad("{\"\\ud800\":{}}", 0, "lone high surrogate");
    expect_bad("{\"\\ud800\\u0041\":{}}", 0, "lone high surrogate");
    expect_bad("{\"\\udc00\":{}}", 0, "lone low surrogate");
    expect_bad("{\"a\\u0000b\":{}}", 0, "NUL");
}
END_TEST

START_TEST(test_bad_keys_and_meta) {
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor name 'a'");
    expect_bad("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key '__metadata__'");
    expect_bad("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate __metadata__ key 'k'");
    expect_bad("{\"__metadata__\":{\"epochs\":1}}", 0, "value for key 'epochs' is not a string");
    expect_bad("{\"__metadata__\":{\"x\":{\"y\":\"z\"}}}", 0, "value for key 'x' is not a string");
    expect_bad("{\"__metadata__\":{\"x\":[\"y\"]}}", 0, "value for key 'x' is not a string");
    expect_bad("{\"__metadata__\":{\"x\":null}}", 0, "value for key 'x' is not a string");
    expect_bad("{\"__metadata__\":\"pt\"}", 0, "__metadata__ must be an object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4,
               "unknown field 'extra'");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               "duplicate field 'dtype'");
    expect_bad("{\"w\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'F7'");
    expect_bad("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'f32'");
    expect_bad("{\"w\":{\"dtype\":\"F4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'F4'");
    expect_bad("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype must be a string");
    /* hostile names are shown escaped and truncated, on one line */
    expect_bad("{\"a\\nb\\u0001\":{\"dtype\":\"F7\"}}", 0, "'a\\x0ab\\x01'");
}
END_TEST

START_TEST(test_bad_integers) {
#define T(shape, offs) "{\"w\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}}"
    expect_bad(T("[-1]", "[0,4]"), 4, "negative");
    expect_bad(T("[1]", "[-0,4]"), 4, "negative");
    expect_bad(T("[1.0]", "[0,4]"), 4, "fraction or exponent");
    expect_bad(T("[1e0]", "[0,4]"), 4, "fraction or exponent");
    expect_bad(T("[1]", "[0,4E0]"), 4, "fraction or exponent");
    expect_bad(T("[01]", "[0,4]"), 4, "leading zero");
    expect_bad(T("[+1]", "[0,4]"), 4, "expected a non-negative integer");
    expect_bad(T("[\"1\"]", "[0,4]"), 4, "expected a non-negative integer");
    expect_bad(T("1", "[0,4]"), 4, "shape must be an array");
    expect_bad(T("[1]", "[0,18446744073709551616]"), 4, "overflows 2^64-1");
    expect_bad(T("[18446744073709551615]", "[0,4]"), 4, "overflows 64 bits");        /* bytes */
    expect_bad(T("[4294967296,4294967297]", "[0,4]"), 4, "overflows 64 bits");       /* elements */
    expect_bad(T("[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, "more than 8 dimensions");
    expect_bad(T("[1]", "[0]"), 4, "exactly 2 elements");
    expect_bad(T("[1]", "[]"), 4, "exactly 2 elements");
    expect_bad(T("[1]", "[0,4,8]"), 4, "exactly 2 elements");
    expect_bad(T("[1]", "[4,0]"), 4, "end is before begin");
    expect_bad(T("[1]", "[0,4"), 4, "invalid header JSON");
    /* eight dims is fine; 2^64-1 is a valid integer when the arithmetic fits */
    st_file f;
    ck_assert_int_eq(open_hdr(&f, T("[1,1,1,1,1,1,1,2]", "[0,8]"), 8), 0);
    ck_assert_int_eq(f.tensors[0].ndim, 8);
    st_close(&f);
    ck_assert_int_eq(open_hdr(&f, "{\"z\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615,0],\"data_offsets\":[0,0]}}", 0), 0);
    ck_assert_uint_eq(f.tensors[0].numel, 0);
    st_close(&f);
#undef T
}
END_TEST

START_TEST(test_bad_offsets) {
    expect_bad("{\"blocks.0.attn.qkv.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,100]}}", 100,
               "tensor 'blocks.0.attn.qkv.weight': data_offsets [0,100] hold 100 bytes but shape [3,4] F32 needs 48");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "(gap)");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "(overlap)");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "begins at 4, not 0");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 3, "tensor data ends at byte 4");
    /* header order need not be offset order; empty tensors may share an offset */
    st_file f;
    ck_assert_int_eq(open_hdr(&f, "{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                                  "\"e1\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                                  "\"e2\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[4,4]},"
                                  "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 8), 0);
    ck_assert_int_eq(f.n_tensors, 4);
    ck_assert_str_eq(f.tensors[0].name, "b");   /* header order kept */
    ck_assert_ptr_eq(st_find(&f, "b")->data, st_find(&f, "a")->data + 4);
    ck_assert_uint_eq(st_find(&f, "e1")->numel, 0);
    st_close(&f);
}
END_TEST

START_TEST(test_deep_nesting) {
    size_t n = 200000;
    char *h = malloc(5 * n + 64);
    ck_assert_ptr_nonnull(h);
    strcpy(h, "{\"a\":");
    memset(h + 5, '[', n);
    h[5 + n] = 0;
    expect_bad(h, 0, "entry must be an object");
    strcpy(h, "{\"a\":{\"shape\":");
    size_t o = strlen(h);
    memset(h + o, '[', n);
    h[o + n] = 0;
    expect_bad(h, 0, "expected a non-negative integer");
    strcpy(h, "{\"__metadata__\":{\"k\":");
    o = strlen(h);
    for (size_t k = 0; k < n; k++) memcpy(h + o + 5 * k, "{\"k\":", 5), h[o + 5 * k + 5] = 0;
    expect_bad(h, 0, "not a string");
    free(h);
}
END_TEST

START_TEST(test_prefix_names) {
    st_file f;
    ck_assert_int_eq(open_hdr(&f, "{\"ab\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                                  "\"abc\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12), 0);
    ck_assert_str_eq(st_find(&f, "a")->name, "a");
    ck_assert_str_eq(st_find(&f, "ab")->name, "ab");
    ck_assert_str_eq(st_find(&f, "abc")->name, "abc");
    ck_assert_ptr_null(st_find(&f, "abcd"));
    ck_assert_ptr_null(st_find(&f, ""));
    ck_assert_ptr_null(st_find(&f, "b"));
    st_close(&f);
}
END_TEST

/* ---- decoding ---- */

START_TEST(test_f16_bf16) {
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[5],\"data_offsets\":[22,32]},"
                      "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[32,40]}}";
    const uint16_t h[11] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x7C00, 0xFC00, 0x7E00, 0x8000, 0x3555};
    const uint16_t bf[5] = {0x3F80, 0xBF00, 0x7F80, 0x7FC1, 0x0001};
    size_t n = strlen(hdr), size;   /* n is odd-aligned on purpose: data is unaligned */
    uint8_t *b = mk(hdr, n, 40, &size);
    for (int k = 0; k < 11; k++) { b[8 + n + 2 * k] = h[k] & 255; b[8 + n + 2 * k + 1] = h[k] >> 8; }
    for (int k = 0; k < 5; k++) { b[8 + n + 22 + 2 * k] = bf[k] & 255; b[8 + n + 22 + 2 * k + 1] = bf[k] >> 8; }
    st_file f;
    ck_assert_int_eq(st_open_buffer(&f, b, size, LABEL), 0);
    float x[11];
    ck_assert_int_eq(st_to_f32(&f, st_find(&f, "h"), x), 0);
    ck_assert(x[0] == 1.0f);
    ck_assert(x[1] == -2.0f);
    ck_assert(x[2] == 65504.0f);
    ck_assert(x[3] == 0x1p-24f);
    ck_assert(x[4] == 1023 * 0x1p-24f);
    ck_assert(x[5] == 0x1p-14f);
    ck_assert(isinf(x[6]) && x[6] > 0);
    ck_assert(isinf(x[7]) && x[7] < 0);
    ck_assert(isnan(x[8]));
    uint32_t bits;
    memcpy(&bits, &x[8], 4);
    ck_assert_uint_eq(bits, 0x7fc00000u);
    ck_assert(x[9] == 0.0f && signbit(x[9]));
    ck_assert(x[10] == 0x1.554p-2f);   /* 0x3555 = 0.333251953125 */
    ck_assert_int_eq(st_to_f32(&f, st_find(&f, "b"), x), 0);
    ck_assert(x[0] == 1.0f);
    ck_assert(x[1] == -0.5f);
    ck_assert(isinf(x[2]));
    memcpy(&bits, &x[3], 4);
    ck_assert_uint_eq(bits, 0x7fc10000u);   /* NaN payload kept */
    memcpy(&bits, &x[4], 4);
    ck_assert_uint_eq(bits, 0x00010000u);
    /* other dtypes are refused by name */
    ck_assert_int_eq(st_to_f32(&f, st_find(&f, "i"), x), QB_EXIT_MODEL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "'i'"));
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "I64"));
    ck_assert_ptr_nonnull(strstr(qb_last_error(), LABEL));
    st_close(&f);
    free(b);
}
END_TEST

START_TEST(test_unaligned_f32) {
    /* unpadded header of odd length: the F32 data starts at an odd address */
    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    size_t n = strlen(hdr), size;
    ck_assert_uint_eq(n % 2, 1);
    uint8_t *b = mk(hdr, n, 12, &size);
    float v[3] = {1.5f, -3.25f, 1e-30f};
    memcpy(b + 8 + n, v, 12);
    st_file f;
    ck_assert_int_eq(st_open_buffer(&f, b, size, LABEL), 0);
    ck_assert_uint_eq((uintptr_t)f.tensors[0].data % 2, 1);
    float x[3];
    ck_assert_int_eq(st_to_f32(&f, &f.tensors[0], x), 0);
    ck_assert(memcmp(x, v, 12) == 0);
    st_close(&f);
    free(b);
}
END_TEST

/* ---- writer ---- */

START_TEST(test_roundtrip) {
    char path[512];
    snprintf(path, sizeof path, "%s/r.safetensors", qbt_tmpdir());
    float w[6] = {1, 2, 3, 4, 5, 6}, s = 0.125f, e = 0, bias[2] = {-1, NAN};
    st_write_tensor ts[] = {
        {.name = "blocks.2.w", .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "blocks.10.w", .ndim = 1, .shape = {2}, .data = bias},
        {.name = "scale", .ndim = 0, .data = &s},
        {.name = "empty", .ndim = 2, .shape = {0, 4}, .data = &e},
        {.name = "na\"me\\\xc3\xa9", .ndim = 1, .shape = {1}, .data = &s},
    };
    st_meta meta[] = {
        {"format", "pt"},
        {"questbench.class_names", "tench\ngoldfish \"great\" white\\shark\t\x01 caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"k\"ey\\", ""},
    };
    ck_assert_int_eq(st_write_f32(path, ts, 5, meta, 3), 0);
    st_file f;
    ck_assert_int_eq(st_open(&f, path), 0);
    ck_assert_uint_eq(((const uint8_t *)f.map)[0] % 8, 0);   /* N is a multiple of 8 */
    ck_assert_int_eq(f.n_tensors, 5);
    /* sorted by name, byte order: "blocks.10" before "blocks.2" */
    const char *order[] = {"blocks.10.w", "blocks.2.w", "empty", "na\"me\\\xc3\xa9", "scale"};
    for (int k = 0; k < 5; k++) ck_assert_str_eq(f.tensors[k].name, order[k]);
    ck_assert_int_eq(f.n_meta, 3);
    for (int k = 0; k < 3; k++) {
        ck_assert_str_eq(f.meta[k].key, meta[k].key);
        ck_assert_str_eq(f.meta[k].value, meta[k].value);
    }
    float x[6];
    ck_assert_int_eq(st_to_f32(&f, st_find(&f, "blocks.2.w"), x), 0);
    ck_assert(memcmp(x, w, sizeof w) == 0);
    ck_assert_int_eq(st_find(&f, "blocks.2.w")->ndim, 2);
    ck_assert_int_eq(st_to_f32(&f, st_find(&f, "blocks.10.w"), x), 0);
    ck_assert(x[0] == -1 && isnan(x[1]));
    const st_tensor *t = st_find(&f, "scale");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_int_eq(st_to_f32(&f, t, x), 0);
    ck_assert(x[0] == 0.125f);
    ck_assert_uint_eq(st_find(&f, "empty")->nbytes, 0);
    st_close(&f);

    /* the escapes are exactly serde_json's */
    FILE *fp = fopen(path, "rb");
    char hdr[1024] = {0};
    ck_assert_uint_gt(fread(hdr, 1, sizeof hdr - 1, fp), 100);
    fclose(fp);
    ck_assert_ptr_nonnull(strstr(hdr + 8, "\"tench\\ngoldfish \\\"great\\\" white\\\\shark\\t\\u0001 caf\xc3\xa9"));
    ck_assert_ptr_nonnull(strstr(hdr + 8, "{\"__metadata__\":{\"format\":\"pt\","));
}
END_TEST

START_TEST(test_write_errors) {
    float v = 1;
    st_write_tensor t = {.name = "a", .ndim = 1, .shape = {1}, .data = &v};
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", qbt_tmpdir());
    ck_assert_int_eq(st_write_f32(path, &t, 1, NULL, 0), QB_EXIT_IO);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), path));
    st_write_tensor two[2] = {t, t};
    snprintf(path, sizeof path, "%s/d.safetensors", qbt_tmpdir());
    ck_assert_int_eq(st_write_f32(path, two, 2, NULL, 0), QB_EXIT_FAIL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "duplicate tensor name 'a'"));
    ck_assert_int_ne(access(path, F_OK), 0);
    t.ndim = 9;
    ck_assert_int_eq(st_write_f32(path, &t, 1, NULL, 0), QB_EXIT_FAIL);
    t.ndim = 1;
    t.name = "bad\xff";
    ck_assert_int_eq(st_write_f32(path, &t, 1, NULL, 0), QB_EXIT_FAIL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "\\xff"));
    /* rename onto a directory fails: IO error and no .tmp left behind */
    snprintf(path, sizeof path, "%s", qbt_tmpdir());
    t.name = "a";
    ck_assert_int_eq(st_write_f32(path, &t, 1, NULL, 0), QB_EXIT_IO);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_ne(access(tmp, F_OK), 0);
}
END_TEST

START_TEST(test_open_errors) {
    st_file f;
    const char *d = qbt_tmpdir();
    ck_assert_int_eq(st_open(&f, d), QB_EXIT_MODEL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "directory"));
    ck_assert_ptr_nonnull(strstr(qb_last_error(), d));
    char path[512];
    snprintf(path, sizeof path, "%s/missing.safetensors", d);
    ck_assert_int_eq(st_open(&f, path), QB_EXIT_MODEL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "cannot open"));
    ck_assert_ptr_nonnull(strstr(qb_last_error(), path));
    ck_assert_int_eq(qbt_write_file(path, "", 0), 0);    /* empty file: no mmap of 0 bytes */
    ck_assert_int_eq(st_open(&f, path), QB_EXIT_MODEL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "0 bytes"));
    ck_assert_ptr_null(f.map);
    ck_assert_int_eq(qbt_write_file(path, "\x02\0\0\0\0\0\0\0{]", 10), 0);
    ck_assert_int_eq(st_open(&f, path), QB_EXIT_MODEL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), path));
    ck_assert_ptr_null(f.map);
    if (geteuid() != 0) {   /* root reads anything */
        ck_assert_int_eq(qbt_write_file(path, "\x02\0\0\0\0\0\0\0{}", 10), 0);
        chmod(path, 0);
        ck_assert_int_eq(st_open(&f, path), QB_EXIT_MODEL);
        ck_assert_ptr_nonnull(strstr(qb_last_error(), "Permission denied"));
    }
}
END_TEST

/* Random mutations of valid files: must never crash, hang or leak (run under ASan). */
START_TEST(test_mutations) {
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\",\"s\":\"\\u00e9\\ud83d\\ude00\"},"
                      "\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}";
    size_t n = strlen(hdr), size;
    uint8_t *base = mk(hdr, n, 12, &size);
    uint8_t *b = malloc(size);
    uint32_t r = 12345;
    int ok = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(b, base, size);
        size_t len = size;
        int edits = 1 + it % 4;
        for (int e = 0; e < edits; e++) {
            r = r * 1664525u + 1013904223u;
            size_t at = (r >> 8) % size;
            switch ((r >> 4) % 4) {
            case 0: b[at] ^= (uint8_t)(1u << (r & 7)); break;
            case 1: b[at] = "{}[]\",:\\0-.e u"[(r >> 1) % 15]; break;
            case 2: len = at; break;
            default: b[at] = (uint8_t)(r >> 24); break;
            }
        }
        st_file f;
        int rc = st_open_buffer(&f, b, len, LABEL);
        ck_assert(rc == 0 || rc == QB_EXIT_MODEL);
        if (rc == 0) {
            ok++;
            for (int k = 0; k < f.n_tensors; k++) {
                const st_tensor *t = &f.tensors[k];
                ck_assert(t->data >= (const uint8_t *)f.map && t->data + t->nbytes <= (const uint8_t *)f.map + len);
            }
        } else {
            ck_assert_ptr_null(f.map);
        }
        st_close(&f);
    }
    ck_assert_int_gt(ok, 0);
    free(b);
    free(base);
}
END_TEST

Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_vec_f32);
    tcase_add_test(tc, test_vec_empty);
    tcase_add_test(tc, test_vec_meta);
    tcase_add_test(tc, test_bad_sizes);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_escapes);
    tcase_add_test(tc, test_bad_keys_and_meta);
    tcase_add_test(tc, test_bad_integers);
    tcase_add_test(tc, test_bad_offsets);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_prefix_names);
    tcase_add_test(tc, test_f16_bf16);
    tcase_add_test(tc, test_unaligned_f32);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_write_errors);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_mutations);
    suite_add_tcase(s, tc);
    return s;
}
