/* test_dataset.c — lib/dataset.c: ImageFolder order as torchvision, labels-file mode, subset,
 * limit, and the errors (each naming the directory, or the file and line). Files are empty:
 * listing never opens images. */
#include "qbtest.h"
#include "dataset.h"
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[512];

/* Create root/<rel> (and its folders) with `text` as content. */
static void put(const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        mkdir(path, 0755);
        *p = '/';
    }
    ck_assert_int_eq(qbt_write_file(path, text, strlen(text)), 0);
}

static void new_root(void) { snprintf(root, sizeof root, "%s", qbt_tmpdir()); }

/* root/<rel>; four rotating buffers so one call can take several. */
static const char *in_root(const char *rel) {
    static char path[4][1024];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", root, rel);
    return p;
}

START_TEST(test_image_folder_order) {
    new_root();
    /* Classes sort by bytes: "Zebra" < "ant" < "bee". Inside a class, torchvision walks folders
     * in path order and lists each folder's files sorted: ant/y.JPEG, ant/z.png come before
     * ant/sub/c.jpg although "sub/c.jpg" < "y.JPEG", and folder "sub-x" precedes "sub/deeper"
     * ('-' < '/'). Checked with Python: sorted(os.walk(...)). Non-images are skipped. */
    put("data/bee/2.png", "");
    put("data/bee/10.png", "");
    put("data/ant/z.png", "");
    put("data/ant/y.JPEG", "");
    put("data/ant/sub/c.jpg", "");
    put("data/ant/sub/deeper/a.Png", "");
    put("data/ant/sub-x/b.jpeg", "");
    put("data/ant/readme.txt", "");
    put("data/Zebra/q.jpg", "");
    put("data/stray.jpg", ""); /* a file at the top is not a class */
    qb_dataset ds;
    int rc = qb_dataset_open(&ds, in_root("data"), NULL, NULL, 0);
    ck_assert_msg(rc == 0, "%s", qb_last_error());
    ck_assert_int_eq(ds.n_classes, 3);
    ck_assert_str_eq(ds.classes[0], "Zebra");
    ck_assert_str_eq(ds.classes[1], "ant");
    ck_assert_str_eq(ds.classes[2], "bee");
    static const struct { const char *rel; int label; } want[] = {
        {"Zebra/q.jpg", 0},      {"ant/y.JPEG", 1},           {"ant/z.png", 1},
        {"ant/sub/c.jpg", 1},    {"ant/sub-x/b.jpeg", 1},     {"ant/sub/deeper/a.Png", 1},
        {"bee/10.png", 2},       {"bee/2.png", 2},
    };
    ck_assert_int_eq(ds.n, 8);
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(ds.items[i].rel, want[i].rel);
        ck_assert_int_eq(ds.items[i].label, want[i].label);
        char full[1024];
        snprintf(full, sizeof full, "%s/data/%s", root, want[i].rel);
        ck_assert_str_eq(ds.items[i].path, full);
    }
    qb_dataset_free(&ds);
    ck_assert_int_eq(ds.n, 0);
    ck_assert_ptr_null(ds.items);

    /* a trailing slash on the root does not double it in paths */
    char slash[1100];
    snprintf(slash, sizeof slash, "%s/", in_root("data"));
    ck_assert_int_eq(qb_dataset_open(&ds, slash, NULL, NULL, 3), 0);
    ck_assert_int_eq(ds.n, 3); /* limit */
    ck_assert_str_eq(ds.items[2].rel, "ant/z.png");
    ck_assert_ptr_null(strstr(ds.items[0].path, "//"));
    qb_dataset_free(&ds);
}
END_TEST

START_TEST(test_subset) {
    new_root();
    put("d/a/1.jpg", "");
    put("d/a/2.jpg", "");
    put("d/b/3.jpg", "");
    put("d/b/4.jpg", "");
    put("subset.txt", "b/4.jpg\n\na/1.jpg\r\n# comment\nb/3.jpg\n");
    qb_dataset ds;
    ck_assert_int_eq(qb_dataset_open(&ds, in_root("d"), NULL, in_root("subset.txt"), 0), 0);
    ck_assert_int_eq(ds.n, 3); /* subset order, not data order */
    ck_assert_str_eq(ds.items[0].rel, "b/4.jpg");
    ck_assert_int_eq(ds.items[0].label, 1);
    ck_assert_str_eq(ds.items[1].rel, "a/1.jpg");
    ck_assert_int_eq(ds.items[1].label, 0);
    ck_assert_str_eq(ds.items[2].rel, "b/3.jpg");
    ck_assert_int_eq(ds.n_classes, 2); /* classes stay those of the full tree */
    qb_dataset_free(&ds);

    ck_assert_int_eq(qb_dataset_open(&ds, in_root("d"), NULL, in_root("subset.txt"), 2), 0);
    ck_assert_int_eq(ds.n, 2); /* limit applies after the subset */
    ck_assert_str_eq(ds.items[1].rel, "a/1.jpg");
    qb_dataset_free(&ds);

    put("missing.txt", "a/1.jpg\nb/9.jpg\n");
    ck_assert_int_eq(qb_dataset_open(&ds, in_root("d"), NULL, in_root("missing.txt"), 0), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "missing.txt:2"));
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "b/9.jpg"));
    ck_assert_int_eq(ds.n, 0);
    put("dup.txt", "a/1.jpg\na/1.jpg\n");
    ck_assert_int_eq(qb_dataset_open(&ds, in_root("d"), NULL, in_root("dup.txt"), 0), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "dup.txt:2: duplicate"));
    ck_assert_int_eq(qb_dataset_open(&ds, in_root("d"), NULL, in_root("nope.txt"), 0), QB_EXIT_DATA);
    ck_assert_ptr_nonnull(strstr(qb_last_error(), "nope.txt"));
}
END_TEST

START_TEST(test_labels_file) {
    new_root();
    put("val/ILSVRC2012_val_00000002.JPEG", "");
    put("val/ILSVRC2012_val_00000001.JPEG", "");
    put("val/sub dir/x y.png", "");
    put("val/not_listed.jpg", "");
    put("labels.txt", "ILSVRC2012_val_00000002.JPEG 970\r\n# header comment\n\n"
                      "sub dir/x y.png\t3\nILSVRC2012_val_00000001.JPEG 65\n");
    qb_dataset ds;
    int rc = qb_dataset_open(&ds, in_root("val"), in_root("labels.txt"), NULL, 0);
    ck_assert_msg(rc == 0, "%s", qb_last_error());
    ck_assert_int_eq(ds.n, 3); /* sorted by path, unlisted files ignored */
    ck_assert_str_eq(ds.items[0].rel, "ILSVRC2012_val_00000001.JPEG");
    ck_assert_int_eq(ds.items[0].label, 65);
    ck_assert_str_eq(ds.items[1].rel, "ILSVRC2012_val_00000002.JPEG");
    ck_assert_int_eq(ds.items[1].label, 970);
    ck_assert_str_eq(ds.items[2].rel, "sub dir/x y.png");
    ck_assert_int_eq(ds.items[2].label, 3);
    ck_assert_str_eq(ds.items[2].path, in_root("val/sub dir/x y.png"));
    ck_assert_int_eq(ds.n_classes, 0); /* no class names in this mode */
    qb_dataset_free(&ds);

    put("sub.txt", "sub dir/x y.png\nILSVRC2012_val_00000002.JPEG\n");
    ck_assert_int_eq(qb_dataset_open(&ds, in_root("val"), in_root("labels.txt"), in_root("sub.txt"), 0), 0);
    ck_assert_int_eq(ds.n, 2);
    ck_assert_int_eq(ds.items[0].label, 3);
    ck_assert_int_eq(ds.items[1].label, 970);
    qb_dataset_free(&ds);
}
END_TEST

static void expect_error(const char *dir, const char *labels, const char *needle) {
    qb_dataset ds;
    int rc = qb_dataset_open(&ds, dir, labels, NULL, 0);
    ck_assert_msg(rc == QB_EXIT_DATA, "rc %d for %s", rc, needle);
    ck_assert_msg(strstr(qb_last_error(), needle) != NULL, "'%s' lacks '%s'", qb_last_error(), needle);
    ck_assert_int_eq(ds.n, 0);
    ck_assert_ptr_null(ds.items);
}

START_TEST(test_labels_errors) {
    new_root();
    put("val/a.jpg", "");
    put("val/b.jpg", "");
    put("bad_label.txt", "a.jpg 1\nb.jpg one\n");
    expect_error(in_root("val"), in_root("bad_label.txt"), "bad_label.txt:2: expected");
    put("no_label.txt", "a.jpg 1\n\nb.jpg\n");
    expect_error(in_root("val"), in_root("no_label.txt"), "no_label.txt:3:");
    put("negative.txt", "a.jpg -1\n");
    expect_error(in_root("val"), in_root("negative.txt"), "negative.txt:1:");
    put("gone.txt", "a.jpg 1\nc.jpg 2\n");
    expect_error(in_root("val"), in_root("gone.txt"), "gone.txt:2:");
    put("dup.txt", "a.jpg 1\nb.jpg 2\na.jpg 1\n");
    expect_error(in_root("val"), in_root("dup.txt"), "dup.txt:3: duplicate entry 'a.jpg' (first on line 1)");
    put("abs.txt", "/etc/passwd 1\n");
    expect_error(in_root("val"), in_root("abs.txt"), "abs.txt:1:");
    put("empty.txt", "# nothing\n");
    expect_error(in_root("val"), in_root("empty.txt"), "empty.txt: no entries");
    expect_error(in_root("val"), in_root("absent.txt"), "absent.txt: cannot open");
    expect_error(in_root("nowhere"), in_root("gone.txt"), "nowhere");
}
END_TEST

START_TEST(test_folder_errors) {
    new_root();
    expect_error(in_root("missing"), NULL, "missing: cannot open directory");
    mkdir(in_root("empty"), 0755);
    expect_error(in_root("empty"), NULL, "empty: no class sub-folders");
    put("flat/a.jpg", "");
    expect_error(in_root("flat"), NULL, "no class sub-folders");
    put("noimg/cls/readme.txt", "");
    put("noimg/good/a.png", "");
    expect_error(in_root("noimg"), NULL, "noimg/cls: class folder has no images");
    mkdir(in_root("emptyclass"), 0755);
    mkdir(in_root("emptyclass/c0"), 0755);
    expect_error(in_root("emptyclass"), NULL, "emptyclass/c0");
    expect_error("", NULL, "no data directory");
}
END_TEST

/* A symlink cycle inside a class folder is an error, not an endless walk. */
START_TEST(test_symlink_loop) {
    new_root();
    put("loop/c/a.jpg", "");
    ck_assert_int_eq(symlink(in_root("loop/c"), in_root("loop/c/again")), 0);
    expect_error(in_root("loop"), NULL, "loop/c/again: symlink loop");
}
END_TEST

Suite *dataset_suite(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_image_folder_order);
    tcase_add_test(tc, test_subset);
    tcase_add_test(tc, test_labels_file);
    tcase_add_test(tc, test_labels_errors);
    tcase_add_test(tc, test_folder_errors);
    tcase_add_test(tc, test_symlink_loop);
    suite_add_tcase(s, tc);
    return s;
}
