/* safetensors_internal.h — helpers the safetensors reader and writer share (not public API). */
#ifndef QB_SAFETENSORS_INTERNAL_H
#define QB_SAFETENSORS_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_HEADER 100000000ull /* reference MAX_HEADER_SIZE */
#define SHOWBUF 100                /* bytes of a hostile name shown in a message */

/* Offset of the first invalid UTF-8 byte, or n if all valid. */
size_t st_utf8_check(const uint8_t *s, size_t n);
/* A name made printable and cut to cap for a one-line message. */
const char *st_show(const char *str, size_t n, char *buf, size_t cap);
/* "[a,b,c]" */
void st_fmt_shape(char *buf, size_t cap, const uint64_t *shape, int ndim);

#endif
