/* test_loss.c — lib/loss.c: values from PyTorch's F.cross_entropy, gradient by finite
 * differences, bad input rejected. */
#include "qbtest.h"
#include "loss.h"
#include <math.h>
#include <string.h>

START_TEST(test_values) {
    /* F.cross_entropy(torch.tensor([[1.,2.,3.],[0.5,-1.,2.]]), torch.tensor([0,2]), reduction='none')
     * = [2.4076059, 0.2413113]; with label_smoothing=0.1: [2.3076060, 0.3913113] */
    float z[6] = {1, 2, 3, 0.5f, -1, 2}, l[2];
    int y[2] = {0, 2};
    double mean;
    ck_assert_int_eq(crossentropy_forward_backward(l, NULL, &mean, z, y, 2, 3, 0.0f, 1.0f), 0);
    ck_assert_float_eq_tol(l[0], 2.4076059f, 1e-6f);
    ck_assert_float_eq_tol(l[1], 0.2413113f, 1e-6f);
    ck_assert_double_eq_tol(mean, (2.4076059 + 0.2413113) / 2, 1e-6);
    ck_assert_int_eq(crossentropy_forward_backward(l, NULL, NULL, z, y, 2, 3, 0.1f, 1.0f), 0);
    ck_assert_float_eq_tol(l[0], 2.3076060f, 1e-6f);
    ck_assert_float_eq_tol(l[1], 0.3913113f, 1e-6f);
}
END_TEST

START_TEST(test_gradient_fd) {
    float z[12] = {0.3f, -1.2f, 2.0f, 0.1f, 1.5f, 0.0f, -0.7f, 0.9f, 0.2f, 0.2f, -2.0f, 1.1f}, dz[12];
    int y[3] = {2, 0, 3};
    ck_assert_int_eq(crossentropy_forward_backward(NULL, dz, NULL, z, y, 3, 4, 0.1f, 1.0f / 3), 0);
    double row = 0;
    for (int k = 0; k < 4; k++) row += dz[k];
    ck_assert_double_eq_tol(row, 0.0, 1e-7); /* p and q both sum to one */
    for (int i = 0; i < 12; i++) {
        double lp, lm;
        float keep = z[i];
        z[i] = keep + 1e-2f;
        crossentropy_forward_backward(NULL, NULL, &lp, z, y, 3, 4, 0.1f, 1.0f);
        z[i] = keep - 1e-2f;
        crossentropy_forward_backward(NULL, NULL, &lm, z, y, 3, 4, 0.1f, 1.0f);
        z[i] = keep;
        ck_assert_double_eq_tol(dz[i], (lp - lm) / 2e-2, 1e-4);
    }
}
END_TEST

START_TEST(test_bad_input) {
    float z[4] = {1, 2, NAN, 0}, dz[4];
    int y[2] = {0, 1}, bad[2] = {0, 5};
    ck_assert_int_eq(crossentropy_forward_backward(NULL, dz, NULL, z, y, 0, 2, 0, 1), QB_EXIT_FAIL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "batch 0"));
    ck_assert_int_eq(crossentropy_forward_backward(NULL, dz, NULL, z, bad, 2, 2, 0, 1), QB_EXIT_FAIL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "label 5 of sample 1"));
    ck_assert_int_eq(crossentropy_forward_backward(NULL, dz, NULL, z, y, 2, 2, 0, 1), QB_EXIT_FAIL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "non-finite"));
    ck_assert_int_eq(crossentropy_forward_backward(NULL, dz, NULL, z, y, 1, 2, 1.5f, 1), QB_EXIT_FAIL);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "smoothing"));
}
END_TEST

Suite *loss_suite(void) {
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("crossentropy");
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_gradient_fd);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return s;
}
