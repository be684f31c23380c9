/* test_models.c — the shipped CIFAR-10 models (models/, README "Models"): each file loads with
 * the attention its name says and classifies the demo's fixed 200 CIFAR-10 test images with at
 * least 65 % top-1 (the full-test-set figures are in models/README.md). Needs
 * $QUESTBENCH_DATA/cifar10/test for the accuracy part; without it that part is skipped. */
#include "qbtest.h"
#include <string.h>
#include <sys/stat.h>

static const char *names[] = {"sdpa", "qknorm", "quest"};

START_TEST(test_shipped_models) {
    /* tests/fixtures -> repository root */
    char root[1024], subset[1100], data[1100];
    snprintf(root, sizeof root, "%s/../..", qbt_fixture(""));
    snprintf(subset, sizeof subset, "%s/configs/demo-subset.txt", root);
    const char *d = getenv("QUESTBENCH_DATA");
    struct stat st;
    snprintf(data, sizeof data, "%s/cifar10/test", d && *d ? d : "/nonexistent");
    int have_data = stat(data, &st) == 0;
    if (!have_data) printf("models: SKIPPED accuracy: %s not found (set QUESTBENCH_DATA)\n", data);
    int shipped = 0;
    for (int i = 0; i < 3; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/models/cifar10-vit-%s.safetensors", root, names[i]);
        ck_assert_msg(stat(path, &st) == 0, "%s: missing (models/README.md lists the shipped models)", path);
        shipped++;
        char *out, *err, want[64];
        ck_assert_int_eq(qbt_cli(&out, &err, "info %s", path), 0);
        snprintf(want, sizeof want, "attention: %s\n", names[i]);
        ck_assert_msg(strstr(out, want) != NULL, "%s: %s", path, out);
        ck_assert_ptr_nonnull(strstr(out, "img_size: 32\n"));
        free(out), free(err);
        if (!have_data) continue;
        int rc = qbt_cli(&out, &err, "eval --model %s --data %s --subset %s --threads 1", path, data, subset);
        ck_assert_msg(rc == 0, "%s", err);
        const char *t = strstr(out, "top1: ");
        ck_assert_ptr_nonnull(t);
        double top1 = atof(t + 6);
        ck_assert_msg(top1 >= 65.0, "%s: top-1 %.2f%% on the demo subset", names[i], top1);
        ck_assert_ptr_nonnull(strstr(out, "/200)")); /* every subset image was scored */
        free(out), free(err);
    }
    ck_assert_int_eq(shipped, 3);
}
END_TEST

Suite *models_suite(void) {
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("shipped");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_shipped_models);
    suite_add_tcase(s, tc);
    return s;
}
