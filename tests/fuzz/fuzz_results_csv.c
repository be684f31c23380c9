/* fuzz_results_csv.c — libFuzzer harness for the results-CSV reader (qb_results_read_buffer),
 * then the resume lookup over what it read. Built and run by `make fuzz`. */
#include "results.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qb_results rs = {0};
    int rc = qb_results_read_buffer(&rs, data, size, "fuzz.csv");
    if (rc != 0 && rc != QB_EXIT_DATA) abort();
    for (int i = 0; i < rs.n; i++) {
        const qb_result *r = &rs.rows[i];
        if (r->n < 0 || r->correct < 0 || r->correct > r->n || r->severity < 0 || r->severity > 5) abort();
        if (i < 64 && !qb_results_has(&rs, r)) abort();
    }
    qb_results_free(&rs);
    return 0;
}
