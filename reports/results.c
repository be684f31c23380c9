/* results.c — long-format results CSV: row-atomic append, strict reader, resume keys, SHA-256. */
#include "results.h"
#include "shard.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void qb_result_finish(qb_result *r) {
    snprintf(r->version, sizeof r->version, "%s", QB_VERSION);
    if (!r->metric[0]) snprintf(r->metric, sizeof r->metric, "top1");
    r->value = r->n > 0 ? (double)r->correct / (double)r->n : 0.0;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(r->timestamp, sizeof r->timestamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

size_t qb_csv_field(char *dst, size_t cap, const char *s) {
    size_t o = 0;
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    if (quote && o < cap) dst[o++] = '"';
    for (; *s && o + 2 < cap; s++) {
        if (*s == '"') dst[o++] = '"';
        dst[o++] = *s;
    }
    if (quote && o < cap) dst[o++] = '"';
    return o;
}

const char *qb_file_safe_name(const char *name, char *out, size_t n) {
    size_t o = 0;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    for (; *name && o + 1 < n; name++) {
        char ch = *name;
        if (ch == ']') continue;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("._+=-", ch);
        out[o++] = ok ? ch : '_';
    }
    out[o] = 0;
    if (o > 100 && n > 100) snprintf(out + 80, n - 80, "-%016llx", (unsigned long long)h);
    return out;
}

static size_t format_row(char *buf, size_t cap, const qb_result *r) {
    char num[8][40];
    snprintf(num[0], sizeof num[0], "%d", r->severity);
    snprintf(num[1], sizeof num[1], "%.17g", r->eps); /* round-trips exactly */
    snprintf(num[2], sizeof num[2], "%ld", r->n);
    snprintf(num[3], sizeof num[3], "%ld", r->correct);
    snprintf(num[4], sizeof num[4], "%.17g", r->value);
    snprintf(num[5], sizeof num[5], "%llu", (unsigned long long)r->seed);
    const char *f[19] = {r->run_id, r->model, r->model_sha256, r->attention, r->dataset, r->preset, r->kind,
                         r->corruption, num[0], r->attack, r->norm, num[1], num[2], num[3], r->metric, num[4], num[5],
                         r->version, r->timestamp};
    size_t o = 0;
    for (int i = 0; i < 19 && o < cap; i++) {
        if (i) buf[o++] = ',';
        o += qb_csv_field(buf + o, cap - o, f[i]);
    }
    if (o < cap) buf[o++] = '\n';
    return o;
}

/* Cut a torn last line (no trailing newline) left by a crash mid-append. */
static int cut_torn_tail(int fd, off_t size) {
    if (size == 0) return 0;
    char c;
    if (pread(fd, &c, 1, size - 1) != 1) return -1;
    if (c == '\n') return 0;
    off_t pos = size - 1;
    while (pos > 0) {
        char ch;
        if (pread(fd, &ch, 1, pos - 1) != 1) return -1;
        if (ch == '\n') break;
        pos--;
    }
    return ftruncate(fd, pos);
}

int qb_results_check_writable(const char *path) {
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK)) return qb_error(QB_EXIT_IO, "%s: not writable: %s", path, strerror(errno));
        return 0;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    if (access(dir[0] ? dir : "/", W_OK)) return qb_error(QB_EXIT_IO, "%s: cannot create: %s", path, strerror(errno));
    return 0;
}

int qb_results_append(const char *path, const qb_result *rows, int n) {
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND, 0644); /* read access: to inspect the tail */
    if (fd < 0) return qb_error(QB_EXIT_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || cut_torn_tail(fd, st.st_size)) {
        close(fd);
        return qb_error(QB_EXIT_IO, "%s: cannot inspect: %s", path, strerror(errno));
    }
    size_t cap = (size_t)(n + 1) * 4096, o = 0; /* a row: at most about 2.6 KB, quotes doubled */
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return qb_error(QB_EXIT_FAIL, "out of memory");
    }
    fstat(fd, &st);
    if (st.st_size == 0) o += (size_t)snprintf(buf, cap, "%s\n", QB_RESULTS_HEADER);
    for (int i = 0; i < n; i++) o += format_row(buf + o, cap - o, &rows[i]);
    /* one write of whole lines: a crash leaves either none of them or a torn tail we cut */
    ssize_t w = write(fd, buf, o);
    int bad = w != (ssize_t)o || fsync(fd) != 0;
    free(buf);
    if (close(fd) != 0) bad = 1;
    if (bad) return qb_error(QB_EXIT_IO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* Split one CSV line into fields (quotes honoured); returns the count or -1. */
int qb_csv_split(char *line, char **fields, int maxf) {
    int n = 0;
    char *p = line, *w;
    while (n < maxf) {
        fields[n++] = w = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"' && p[1] == '"') *w++ = '"', p += 2;
                else if (*p == '"') { p++; break; }
                else *w++ = *p++;
            }
            if (*p && *p != ',') return -1;
        } else {
            while (*p && *p != ',') *w++ = *p++;
        }
        int more = *p == ',';
        *w = 0;
        if (!more) return n;
        p++;
    }
    return -1;
}

/* A decimal integer in [0, max] (digits only), so that no value can overflow the field it goes to. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out) {
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_num(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int qb_results_read(qb_results *rs, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return qb_error(QB_EXIT_DATA, "%s: cannot open: %s", path, strerror(errno));
    int rc = qb_results_read_stream(rs, f, path);
    fclose(f);
    return rc;
}

int qb_results_read_buffer(qb_results *rs, const void *buf, size_t size, const char *label) {
    if (size == 0) return qb_error(QB_EXIT_DATA, "%s: empty file (no header)", label);
    FILE *f = fmemopen((void *)buf, size, "r");
    if (!f) return qb_error(QB_EXIT_FAIL, "%s: cannot read from memory: %s", label, strerror(errno));
    int rc = qb_results_read_stream(rs, f, label);
    fclose(f);
    return rc;
}

int qb_results_read_stream(qb_results *rs, FILE *f, const char *path) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || line[len - 1] != '\n') break; /* torn tail from a crash: ignore */
        line[--len] = 0;
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (lineno == 1) {
            if (strcmp(line, QB_RESULTS_HEADER)) {
                rc = qb_error(QB_EXIT_DATA, "%s: not a questbench results file (header differs)", path);
                break;
            }
            continue;
        }
        if (!len) continue;
        char *fl[20];
        if (qb_csv_split(line, fl, 20) != 19) {
            rc = qb_error(QB_EXIT_DATA, "%s:%d: expected 19 comma-separated fields", path, lineno);
            break;
        }
        qb_result r;
        memset(&r, 0, sizeof r);
        /* severity, n, correct and seed are integers (parsed as such: a double would overflow the
         * long or uint64_t they go to, and lose seeds above 2^53); eps and value are numbers */
        double eps, value;
        unsigned long long sev, n, correct, seed;
        int bad = parse_uint(fl[8], 5, &sev) | parse_uint(fl[12], LONG_MAX, &n) | parse_uint(fl[13], LONG_MAX, &correct) |
                  parse_uint(fl[16], UINT64_MAX, &seed) | parse_num(fl[11], &eps) | parse_num(fl[15], &value);
        if (bad || correct > n) {
            rc = qb_error(QB_EXIT_DATA, "%s:%d: malformed number (severity, eps, n, correct, value or seed)", path,
                          lineno);
            break;
        }
        if (strcmp(fl[6], "clean") && strcmp(fl[6], "corruption") && strcmp(fl[6], "attack")) {
            rc = qb_error(QB_EXIT_DATA, "%s:%d: kind '%s' is not clean, corruption or attack", path, lineno, fl[6]);
            break;
        }
#define COPY(dst, src) snprintf(dst, sizeof dst, "%s", src)
        COPY(r.run_id, fl[0]), COPY(r.model, fl[1]), COPY(r.model_sha256, fl[2]), COPY(r.attention, fl[3]);
        COPY(r.dataset, fl[4]), COPY(r.preset, fl[5]), COPY(r.kind, fl[6]), COPY(r.corruption, fl[7]);
        COPY(r.attack, fl[9]), COPY(r.norm, fl[10]), COPY(r.metric, fl[14]), COPY(r.version, fl[17]);
        COPY(r.timestamp, fl[18]);
#undef COPY
        r.severity = (int)sev, r.eps = eps, r.n = (long)n, r.correct = (long)correct, r.value = value;
        r.seed = (uint64_t)seed;
        if (rs->n == rs->cap) {
            int nc = rs->cap ? rs->cap * 2 : 64;
            qb_result *nr = realloc(rs->rows, (size_t)nc * sizeof *nr);
            if (!nr) { rc = qb_error(QB_EXIT_FAIL, "out of memory"); break; }
            rs->rows = nr, rs->cap = nc;
        }
        rs->rows[rs->n++] = r;
    }
    if (!rc && lineno == 0) rc = qb_error(QB_EXIT_DATA, "%s: empty file (no header)", path);
    free(line);
    return rc;
}

void qb_results_free(qb_results *rs) {
    free(rs->rows);
    memset(rs, 0, sizeof *rs);
}

void qb_result_key(const qb_result *r, char *buf, size_t len) {
    int o = snprintf(buf, len, "%s|%s|%s|%s|%s|%s|%d|%s|%s|%.9g|%llu", r->model, r->attention, r->dataset, r->preset,
                     r->kind, r->corruption, r->severity, r->attack, r->norm, r->eps, (unsigned long long)r->seed);
    /* a shard's row (run_id "<cmd>-shardKofN-<pid>", lib/shard.h) is its own measurement, so
     * shards can share a results file and resume separately; unsharded keys are unchanged */
    int k, n;
    if (o >= 0 && (size_t)o < len && qb_shard_of_run_id(r->run_id, &k, &n))
        snprintf(buf + o, len - (size_t)o, "|shard%dof%d", k, n);
}

int qb_results_has(const qb_results *rs, const qb_result *r) {
    char a[2048], b[2048];
    qb_result_key(r, a, sizeof a);
    for (int i = 0; i < rs->n; i++) {
        qb_result_key(&rs->rows[i], b, sizeof b);
        if (!strcmp(a, b)) return 1;
    }
    return 0;
}

/* ---- SHA-256 (FIPS 180-4) ---- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

int qb_sha256_file(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return qb_error(QB_EXIT_MODEL, "%s: cannot open: %s", path, strerror(errno));
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    static _Thread_local uint8_t buf[1 << 16];
    uint8_t tail[128];
    uint64_t total = 0;
    size_t got;
    size_t carry = 0;
    while ((got = fread(buf + carry, 1, sizeof buf - carry, f)) > 0) {
        size_t avail = carry + got, off = 0;
        total += got;
        for (; off + 64 <= avail; off += 64) sha256_block(h, buf + off);
        carry = avail - off;
        memmove(buf, buf + off, carry);
    }
    int err = ferror(f);
    fclose(f);
    if (err) return qb_error(QB_EXIT_MODEL, "%s: read error", path);
    memcpy(tail, buf, carry);
    size_t tl = carry;
    tail[tl++] = 0x80;
    size_t pad = tl <= 56 ? 64 : 128;
    memset(tail + tl, 0, pad - tl);
    uint64_t bits = total * 8;
    for (int i = 0; i < 8; i++) tail[pad - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < pad; off += 64) sha256_block(h, tail + off);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", h[i]);
    return 0;
}
