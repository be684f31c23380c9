/* test_qb.c — lib/qb.c: error recording, checked arithmetic, $VAR expansion. */
#include "qbtest.h"
#include "qb.h"
#include <string.h>

START_TEST(test_error_roundtrip) {
    int code = qb_error(QB_EXIT_MODEL, "%s: bad %d", "m.safetensors", 7);
    ck_assert_int_eq(code, QB_EXIT_MODEL);
    ck_assert_str_eq(qb_last_error(), "m.safetensors: bad 7");
    qb_error(QB_EXIT_MODEL, "%s: %s", "wrapped", qb_last_error()); /* the message may quote itself */
    ck_assert_str_eq(qb_last_error(), "wrapped: m.safetensors: bad 7");
}
END_TEST

START_TEST(test_overflow) {
    size_t r;
    ck_assert_int_eq(qb_mul_overflow(SIZE_MAX / 2, 3, &r), 1);
    ck_assert_int_eq(qb_mul_overflow(1000, 3, &r), 0);
    ck_assert_uint_eq(r, 3000);
    ck_assert_int_eq(qb_add_overflow(SIZE_MAX, 1, &r), 1);
}
END_TEST

START_TEST(test_malloc_aligned) {
    float *p = qb_malloc(100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    free(p);
}
END_TEST

START_TEST(test_expand_env) {
    char out[32], var[128];
    setenv("QBT_DIR", "/data", 1);
    unsetenv("QBT_UNSET");
    ck_assert_int_eq(qb_expand_env(out, sizeof out, "${QBT_DIR}/cifar10", var), 0);
    ck_assert_str_eq(out, "/data/cifar10");
    ck_assert_int_eq(qb_expand_env(out, sizeof out, "$QBT_DIR-x $QBT_DIR", var), 0);
    ck_assert_str_eq(out, "/data-x /data");
    ck_assert_int_eq(qb_expand_env(out, sizeof out, "a/$QBT_UNSET/b", var), 1);
    ck_assert_str_eq(var, "QBT_UNSET");
    ck_assert_int_eq(qb_expand_env(out, sizeof out, "${QBT_DIR", var), 1); /* no closing brace */
    ck_assert_str_eq(var, "?");
    ck_assert_int_eq(qb_expand_env(out, 8, "$QBT_DIR/abcdef", var), 2); /* 13 bytes into 8 */
    ck_assert_int_eq(qb_expand_env(out, 14, "$QBT_DIR/abcdef", var), 0);
    ck_assert_str_eq(out, "/data/abcdef");
}
END_TEST

Suite *qb_suite(void) {
    Suite *s = suite_create("qb");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_error_roundtrip);
    tcase_add_test(tc, test_overflow);
    tcase_add_test(tc, test_malloc_aligned);
    tcase_add_test(tc, test_expand_env);
    suite_add_tcase(s, tc);
    return s;
}
