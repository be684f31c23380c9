/* fuzz_suite_yaml.c — libFuzzer harness for the `questbench run` suite parser (cmd/suite.c on
 * libyaml), including $VAR expansion (QB_FUZZ_VAR is set). Built and run by `make fuzz`. */
#include "suite.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static suite s; /* 30 KB: static, as run.c allocates it on the heap */
    static int init;
    if (!init) setenv("QB_FUZZ_VAR", "/tmp/x", 1), init = 1;
    int rc = qb_suite_parse_buffer(&s, data, size, "fuzz.yaml");
    if (rc == 0) {
        /* what run.c relies on after a successful parse */
        if (s.n_models < 1 || s.n_models > MAX_MODELS || s.n_attacks < 0 || s.n_attacks > MAX_ATTACKS) abort();
        if (!s.data[0] || !s.output[0]) abort();
        for (int i = 0; i < s.n_models; i++)
            if (!s.models[i].file[0] || !memchr(s.models[i].name, 0, sizeof s.models[i].name)) abort();
        for (int i = 0; i < s.n_attacks; i++)
            if (!s.attacks[i].attack[0] || !s.attacks[i].eps[0]) abort();
    } else if (rc != QB_EXIT_USAGE) abort();
    return 0;
}
