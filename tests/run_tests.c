/* run_tests.c — one check runner over every suite, so `make test` ends with one summary line. */
#include "qbtest.h"

/* Each suite constructor lives in the test file that mirrors its source file. */
#define QB_SUITES(X) \
    X(qb_suite) \
    X(safetensors_suite) \
    X(image_suite) \
    X(resize_suite) \
    X(dataset_suite) \
    X(vit_suite) \
    X(vit_ops_suite) \
    X(vit_grad_suite) \
    X(model_suite) \
    X(loss_suite) \
    X(train_suite) \
    X(report_suite) \
    X(rng_suite) \
    X(corruptions_suite) \
    X(attacks_suite) \
    X(losses_suite) \
    X(cli_suite) \
    X(corrupt_cli_suite) \
    X(run_suite) \
    X(resume_suite) \
    X(threads_suite) \
    X(shard_suite) \
    X(mpi_suite) \
    X(train_cli_suite) \
    X(models_suite) \
    X(errors_suite) \
    X(attack_cli_suite)

#define DECLARE(name) Suite *name(void);
QB_SUITES(DECLARE)

int main(void) {
    SRunner *sr = srunner_create(NULL);
#define ADD(name) srunner_add_suite(sr, name());
    QB_SUITES(ADD)
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
