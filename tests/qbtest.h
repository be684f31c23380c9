/* qbtest.h — helpers shared by the check test suites. */
#ifndef QBTEST_H
#define QBTEST_H
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* Path of a committed fixture under tests/fixtures (QB_FIXTURES), in one of 8 static buffers
 * used in turn (copy it to keep it past 7 more calls). */
const char *qbt_fixture(const char *name);
/* Path of the built CLI (QB_BIN). */
const char *qbt_bin(void);
/* A fresh temporary directory for this test (removed at exit by the OS tmp cleaner). */
const char *qbt_tmpdir(void);
/* Run a shell command; capture stdout and stderr into malloc'd strings (may be NULL). Returns exit status. */
int qbt_run(const char *cmd, char **out, char **err);
/* Run the questbench CLI with printf-style arguments (captured like qbt_run). */
int qbt_cli(char **out, char **err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A whole file in a malloc'd NUL-terminated string, or NULL. */
char *qbt_slurp(const char *path);
/* Write `n` bytes to `path`; returns 0 on success. */
int qbt_write_file(const char *path, const void *data, size_t n);

/* One suite per source file; run_tests.c lists them. */
#endif
