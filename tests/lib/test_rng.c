/* test_rng.c — lib/rng.c: streams are pure functions of their key, and look uniform/normal. */
#include "qbtest.h"
#include "rng.h"
#include <math.h>

START_TEST(test_stream_reproducible_and_distinct) {
    qb_rng a = qb_rng_stream(7, qb_image_id("cat/0001.jpg"), "gaussian_noise/3");
    qb_rng b = qb_rng_stream(7, qb_image_id("cat/0001.jpg"), "gaussian_noise/3");
    qb_rng c = qb_rng_stream(7, qb_image_id("cat/0002.jpg"), "gaussian_noise/3");
    qb_rng d = qb_rng_stream(8, qb_image_id("cat/0001.jpg"), "gaussian_noise/3");
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = qb_rng_u64(&a);
        ck_assert_uint_eq(x, qb_rng_u64(&b));
        same_c += x == qb_rng_u64(&c);
        same_d += x == qb_rng_u64(&d);
    }
    ck_assert_int_eq(same_c, 0);
    ck_assert_int_eq(same_d, 0);
    ck_assert_uint_ne(qb_image_id("a"), qb_image_id("b"));
}
END_TEST

START_TEST(test_moments) {
    qb_rng r = qb_rng_stream(1, 2, "moments");
    double su = 0, sn = 0, sn2 = 0;
    int n = 200000, lo = 0;
    for (int i = 0; i < n; i++) {
        double u = qb_rng_uniform(&r);
        ck_assert(u >= 0 && u < 1);
        su += u;
        lo += u < 0.1;
        double z = qb_rng_normal(&r);
        sn += z, sn2 += z * z;
    }
    ck_assert_double_eq_tol(su / n, 0.5, 0.005);
    ck_assert_double_eq_tol(lo / (double)n, 0.1, 0.005);
    ck_assert_double_eq_tol(sn / n, 0.0, 0.01);
    ck_assert_double_eq_tol(sn2 / n, 1.0, 0.02);
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) hist[qb_rng_below(&r, 7)]++;
    for (int k = 0; k < 7; k++) ck_assert_int_lt(abs(hist[k] - 10000), 500);
}
END_TEST

Suite *rng_suite(void) {
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_stream_reproducible_and_distinct);
    tcase_add_test(tc, test_moments);
    suite_add_tcase(s, tc);
    return s;
}
