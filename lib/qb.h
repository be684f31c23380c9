/* qb.h — shared conventions of questbench: exit codes, error reporting, small helpers.
 *
 * Library functions never print and never exit. They return 0 on success or a
 * QB_EXIT_* code on failure, after recording one human-readable line with
 * qb_error(). Commands print that line on stderr prefixed "questbench: " and exit
 * with the returned code (documented in README.md). */
#ifndef QB_H
#define QB_H

#include <stddef.h>
#include <stdint.h>

#define QB_VERSION "0.3.0"

enum {
    QB_EXIT_OK = 0,
    QB_EXIT_FAIL = 1,    /* internal failure: out of memory, unexpected state */
    QB_EXIT_USAGE = 2,   /* bad command line: unknown flag, bad value */
    QB_EXIT_MODEL = 3,   /* model file unreadable, malformed or inconsistent */
    QB_EXIT_DATA = 4,    /* image or data tree unreadable or malformed */
    QB_EXIT_IO = 5,      /* cannot write an output file */
    QB_EXIT_REGRESSION = 6, /* report --baseline: a metric got worse beyond the tolerance */
};

/* Record the last error (printf-style); thread-local. Returns `code` so a caller
 * can write `return qb_error(QB_EXIT_MODEL, "%s: ...", path);`. */
int qb_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *qb_last_error(void);

/* Allocation that records an error on failure (returns NULL). Memory is 64-byte
 * aligned and must be released with free(). */
void *qb_malloc(size_t bytes);
void *qb_calloc(size_t count, size_t size);

/* Overflow-checked size arithmetic: return 0 on success, 1 on overflow. */
static inline int qb_mul_overflow(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }
static inline int qb_add_overflow(size_t a, size_t b, size_t *out) { return __builtin_add_overflow(a, b, out); }

double qb_now(void); /* monotonic seconds */

/* $VAR / ${VAR} expansion of src into dst (n bytes), for config and suite files.
 * Returns 0, 1 when a variable is unset or malformed (its name, or "?", goes to var),
 * or 2 when the result does not fit. */
int qb_expand_env(char *dst, size_t n, const char *src, char var[128]);

#endif
