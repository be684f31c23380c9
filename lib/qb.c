/* qb.c — error recording, aligned allocation, clock, $VAR expansion, the OpenBLAS thread setting. */
#include "qb.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS runs one thread per call in every questbench program: the GEMM callers (lib/vit_ops.c,
 * corruptions/gauss.c) thread over tiles fixed by the shape, so results never depend on the
 * thread count. qb.o is in every program (errors), so the setting is made here, once. */
void openblas_set_num_threads(int);
__attribute__((constructor)) static void blas_one_thread_per_call(void) { openblas_set_num_threads(1); }

static _Thread_local char qb_errbuf[1024];

int qb_error(int code, const char *fmt, ...) {
    /* format into a scratch buffer first: callers may pass qb_last_error() as an argument */
    char tmp[sizeof qb_errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(qb_errbuf, tmp, sizeof tmp);
    return code;
}

const char *qb_last_error(void) { return qb_errbuf[0] ? qb_errbuf : "unknown error"; }

void *qb_malloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes || posix_memalign(&p, 64, rounded) != 0) {
        qb_error(QB_EXIT_FAIL, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    return p;
}

void *qb_calloc(size_t count, size_t size) {
    size_t bytes;
    if (qb_mul_overflow(count, size, &bytes)) {
        qb_error(QB_EXIT_FAIL, "allocation size overflow (%zu x %zu)", count, size);
        return NULL;
    }
    void *p = qb_malloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

double qb_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int qb_expand_env(char *dst, size_t n, const char *src, char var[128]) {
    size_t o = 0;
    for (const char *p = src; *p;) {
        if (*p == '$') {
            int brace = p[1] == '{';
            const char *q = p + 1 + brace;
            size_t k = 0;
            while ((*q == '_' || (*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')) && k < 127)
                var[k++] = *q++;
            var[k] = 0;
            if (brace && *q++ != '}') k = 0;
            const char *v = k ? getenv(var) : NULL;
            if (!v) {
                if (!k) strcpy(var, "?");
                return 1;
            }
            o += (size_t)snprintf(dst + o, o < n ? n - o : 0, "%s", v);
            p = q;
        } else {
            if (o + 1 < n) dst[o] = *p;
            o++, p++;
        }
    }
    if (o >= n) return 2;
    dst[o] = 0;
    return 0;
}
