/* qbtest.c — helpers shared by the check test suites (linked into run_tests). */
#include "qbtest.h"
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

const char *qbt_fixture(const char *name) {
    /* eight buffers in turn, so several results can sit in one call's arguments */
    static _Thread_local char buf[8][4096];
    static _Thread_local int next;
    char *b = buf[next++ & 7];
    const char *dir = getenv("QB_FIXTURES");
    snprintf(b, 4096, "%s/%s", dir ? dir : "tests/fixtures", name);
    return b;
}

const char *qbt_bin(void) {
    const char *b = getenv("QB_BIN");
    return b ? b : "build/questbench";
}

const char *qbt_tmpdir(void) {
    static _Thread_local char buf[256];
    snprintf(buf, sizeof buf, "/tmp/qbtest.XXXXXX");
    if (!mkdtemp(buf)) return "/tmp";
    return buf;
}

char *qbt_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

int qbt_run(const char *cmd, char **out, char **err) {
    char d[64] = "/tmp/qbrun.XXXXXX"; /* its own folder: callers may hold qbt_tmpdir()'s buffer */
    if (!mkdtemp(d)) return -1;
    char full[8192], po[300], pe[300];
    snprintf(po, sizeof po, "%s/out", d);
    snprintf(pe, sizeof pe, "%s/err", d);
    snprintf(full, sizeof full, "%s >%s 2>%s </dev/null", cmd, po, pe);
    int st = system(full);
    if (out) *out = qbt_slurp(po);
    if (err) *err = qbt_slurp(pe);
    unlink(po);
    unlink(pe);
    rmdir(d);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int qbt_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

int qbt_cli(char **out, char **err, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(cmd, sizeof cmd, "%s ", qbt_bin());
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    return qbt_run(cmd, out, err);
}
