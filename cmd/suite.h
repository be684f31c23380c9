/* suite.h — the `questbench run` suite file (YAML) parser, split from run.c so that it can be
 * tested and fuzzed on its own (tests/fuzz/fuzz_suite_yaml.c). */
#ifndef QB_SUITE_H
#define QB_SUITE_H
#include "qb.h"
#include <stddef.h>

#define MAX_MODELS 8
#define MAX_ATTACKS 8

typedef struct {
    char name[128], file[1024], attention[16];
} suite_model;

typedef struct {
    char attack[128], eps[256], norm[8], steps[16], step_size[32], restarts[16];
    char eps_space[16], protocol[24], label_source[8];
} suite_attack;

typedef struct {
    char path[1024];      /* the file name, for messages */
    char name[128], output[1024], data[1024], labels[1024], subset[1024], preset[16];
    char limit[16], seed[24], threads[8], batch[8];
    int clean;
    char corruptions[256], severities[32];
    suite_model models[MAX_MODELS];
    int n_models;
    suite_attack attacks[MAX_ATTACKS];
    int n_attacks;
    char baseline_model[128], paper[64];
} suite;

/* Parse a suite file. 0, or QB_EXIT_USAGE with a message naming file, line and column. */
int qb_suite_parse_file(suite *s, const char *path);
/* The same on an in-memory document; `label` stands for the file name in messages. */
int qb_suite_parse_buffer(suite *s, const void *buf, size_t size, const char *label);

#endif
