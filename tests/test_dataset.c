/* Dataset discovery and validation: small ImageFolder, YOLO and IDX sets built at run
 * time, and the real Fashion-MNIST when installed. Broken datasets, data.yaml errors and
 * open errors: test_dataset_errors.c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "st_dataset.h"
#include "st_ds_test_util.h"
#include "st_test_util.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* The pixels of sample i match dst_px(seed) converted to c channels. */
static void check_pixels(const st_image *im, int w, int h, int c, int src_c, int seed) {
    ck_assert_int_eq(im->w, w);
    ck_assert_int_eq(im->h, h);
    ck_assert_int_eq(im->c, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int want = dst_px(seed, x, y, src_c == 1 ? 0 : k);
                ck_assert_msg(im->data[((size_t)y * w + x) * c + k] == want, "pixel (%d,%d,%d): %d vs %d", x,
                              y, k, im->data[((size_t)y * w + x) * c + k], want);
            }
}

/* ---------------------------------------------------------------- ImageFolder */

START_TEST(test_folder_three_classes) {
    char root[512], p[700];
    stt_tmpdir(root, sizeof root, "ds-folder");
    /* Created out of order: ids must follow the sorted names (bird, cat, dog). */
    const char *cls[] = {"dog", "cat", "bird"};
    int n_train[] = {1, 3, 2};
    for (int c = 0; c < 3; c++) {
        dst_mkdirs(dst_path(p, sizeof p, root, "train"));
        char sub[64];
        snprintf(sub, sizeof sub, "train/%s", cls[c]);
        dst_mkdirs(dst_path(p, sizeof p, root, sub));
        for (int i = 0; i < n_train[c]; i++) {
            snprintf(sub, sizeof sub, "train/%s/img%d.png", cls[c], i);
            dst_write_png(dst_path(p, sizeof p, root, sub), 5, 4, c == 1 ? 1 : 3, 10 * c + i);
        }
    }
    dst_write_file(dst_path(p, sizeof p, root, "train/cat/notes.txt"), "ignored\n");
    dst_write_file(dst_path(p, sizeof p, root, "train/cat/scan.JPG"), "\xff\xd8\xff");
    dst_mkdirs(dst_path(p, sizeof p, root, "val/dog"));
    dst_mkdirs(dst_path(p, sizeof p, root, "val/bird"));
    dst_write_png(dst_path(p, sizeof p, root, "val/dog/a.PNG"), 5, 4, 3, 50);
    dst_write_png(dst_path(p, sizeof p, root, "val/bird/b.png"), 5, 4, 3, 51);
    dst_mkdirs(dst_path(p, sizeof p, root, "test/cat")); /* ignored: val/ exists */

    st_ds_opts o;
    st_ds_opts_default(&o);
    o.cache = 1;
    o.channels = 3;
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.kind, ST_DS_FOLDER);
    ck_assert_int_eq(d.n_classes, 3);
    ck_assert_str_eq(d.class_names[0], "bird");
    ck_assert_str_eq(d.class_names[1], "cat");
    ck_assert_str_eq(d.class_names[2], "dog");
    ck_assert_int_eq(d.train.n, 6);
    int want_labels[] = {0, 0, 1, 1, 1, 2};
    for (int i = 0; i < 6; i++) ck_assert_int_eq(d.train.samples[i].label, want_labels[i]);
    ck_assert_ptr_nonnull(strstr(d.train.samples[2].path, "train/cat/img0.png"));
    ck_assert_int_eq(d.val.n, 2);
    ck_assert_int_eq(d.val.samples[0].label, 0); /* val/bird/b.png first: folders sorted */
    ck_assert_int_eq(d.val.samples[1].label, 2);
    ck_assert_int_eq(d.report.images_seen, 9);
    ck_assert_int_eq(d.report.images_skipped, 1);
    ck_assert_int_eq(d.report.img_problems[ST_IMG_UNSUPPORTED], 1);
    ck_assert_msg(strstr(log.text, "skip: ") && strstr(log.text, "train/cat/scan.JPG: JPEG is not supported"),
                  "log: %s", log.text);
    ck_assert_int_eq(dst_count(log.text, "\n"), 1);

    /* Cached pixels are lent; gray cat images were converted to 3 channels at open. */
    st_image im;
    int borrowed = 0;
    ck_assert_int_eq(st_dataset_load_image(&d, &d.train, 2, 3, &im, &borrowed, &err), ST_OK);
    ck_assert_int_eq(borrowed, 1);
    check_pixels(&im, 5, 4, 3, 1, 10);
    ck_assert_int_eq(st_dataset_load_image(&d, &d.train, 0, 3, &im, &borrowed, &err), ST_OK);
    check_pixels(&im, 5, 4, 3, 3, 20);

    char line[1024];
    summary(&d, line, sizeof line);
    char want[1024];
    snprintf(want, sizeof want,
             "data: %s: ImageFolder classification set, 6 train / 2 val images, 3 classes (from the folder "
             "names)\nskipped 1 of 9 images: 1 %s\n",
             root, st_img_problem_name(ST_IMG_UNSUPPORTED));
    ck_assert_str_eq(line, want);
    st_dataset_free(&d);
    free(log.text);

    /* Without the cache: nothing kept, pixels decoded on demand. */
    o.cache = 0;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_ptr_null(d.train.samples[5].cached.data);
    ck_assert_int_eq(st_dataset_load_image(&d, &d.train, 5, 1, &im, &borrowed, &err), ST_OK);
    ck_assert_int_eq(borrowed, 0);
    ck_assert_int_eq(im.c, 1);
    st_image_free(&im);
    st_dataset_free(&d);
    free(log.text);
}
END_TEST

START_TEST(test_folder_test_split_and_errors) {
    char root[512], p[700];
    stt_tmpdir(root, sizeof root, "ds-folder2");
    dst_mkdirs(dst_path(p, sizeof p, root, "train/a"));
    dst_mkdirs(dst_path(p, sizeof p, root, "train/b")); /* empty class */
    dst_mkdirs(dst_path(p, sizeof p, root, "test/a"));
    dst_write_png(dst_path(p, sizeof p, root, "train/a/1.png"), 3, 3, 1, 1);
    dst_write_png(dst_path(p, sizeof p, root, "test/a/1.png"), 3, 3, 1, 2);
    st_ds_opts o;
    st_ds_opts_default(&o);
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.n_classes, 2);
    ck_assert_int_eq(d.val.n, 1);
    ck_assert_msg(strstr(log.text, "note: ") && strstr(log.text, "class 'b' has no usable image"), "log: %s",
                  log.text);
    char line[1024];
    summary(&d, line, sizeof line);
    ck_assert_msg(strstr(line, "(from the folder names; val from test/)\n"), "%s", line);
    ck_assert_ptr_null(strstr(line, "skipped"));
    st_dataset_free(&d);
    free(log.text);

    /* Names that are not UTF-8: a class folder (not a class, its images unused) and a file. */
    dst_mkdirs(dst_path(p, sizeof p, root, "train/c\xff"));
    dst_write_png(dst_path(p, sizeof p, root, "train/c\xff/1.png"), 3, 3, 1, 3);
    dst_write_png(dst_path(p, sizeof p, root, "train/a/\xfe.png"), 3, 3, 1, 4);
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.n_classes, 2);
    ck_assert_int_eq(d.train.n, 1);
    ck_assert_int_eq(d.report.lbl_problems[ST_LBL_BAD_NAME], 2);
    ck_assert_int_eq(d.report.images_seen, 3); /* a/1.png, a/\xFE.png, test/a/1.png */
    ck_assert_int_eq(d.report.images_skipped, 1);
    ck_assert_msg(strstr(log.text, "/train/a/\\xFE.png: file name is not valid UTF-8") &&
                      strstr(log.text, "/train/c\\xFF: file name is not valid UTF-8 (rename it; its images"),
                  "%s", log.text);
    st_dataset_free(&d);
    free(log.text);
    o.strict = 1;
    ck_assert_int_eq(open_logged(root, &o, &d, &err, &log), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "/train/a/\\xFE.png: file name is not valid UTF-8"), "%s", err.msg);
    free(log.text);
    o.strict = 0;

    /* A validation class the model has no output for. */
    dst_mkdirs(dst_path(p, sizeof p, root, "val/zebra"));
    ck_assert_int_eq(open_logged(root, &o, &d, &err, &log), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "val/zebra") && strstr(err.msg, "'zebra' is not in"), "%s", err.msg);
    ck_assert_ptr_null(d.root); /* freed on failure */
    free(log.text);
}
END_TEST

/* ---------------------------------------------------------------- YOLO */

static void check_yolo_boxes(const st_dataset *d) {
    ck_assert_int_eq(d->kind, ST_DS_YOLO);
    ck_assert_int_eq(d->train.n, 3);
    ck_assert_int_eq(d->val.n, 1);
    const st_sample *t0 = &d->train.samples[0];
    ck_assert_int_eq(t0->n_boxes, 2);
    ck_assert_int_eq(t0->boxes[0].cls, 2);
    ck_assert_float_eq(t0->boxes[0].h, 0.4f);
    ck_assert_int_eq(t0->boxes[1].cls, 0);
    ck_assert_float_eq(t0->boxes[1].cy, 0.9f);
    ck_assert_float_eq(t0->boxes[1].w, 1.0f);
    ck_assert_int_eq(d->train.samples[1].n_boxes, 0);
    ck_assert_int_eq(d->train.samples[2].n_boxes, 0);
    ck_assert_int_eq(d->val.samples[0].n_boxes, 1);
    ck_assert_float_eq(d->val.samples[0].boxes[0].cx, 0.25f);
    ck_assert_int_eq(d->report.images_seen, 4);
    ck_assert_int_eq(d->report.images_skipped, 0);
}

START_TEST(test_yolo_names_list_and_mapping) {
    char root[512];
    stt_tmpdir(root, sizeof root, "ds-yolo-list");
    make_yolo(root, "# comment\nnc: 4\nnames: [person, 'car', \"bus\", truck]\ndownload: |\n  echo hi\n");
    st_ds_opts o;
    st_ds_opts_default(&o);
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    check_yolo_boxes(&d);
    ck_assert_int_eq(d.n_classes, 4);
    ck_assert_str_eq(d.class_names[2], "bus");
    ck_assert_str_eq(log.text, "");
    char line[1024], want[1024];
    summary(&d, line, sizeof line);
    snprintf(want, sizeof want,
             "data: %s: YOLO detection set, 3 train / 1 val images, 4 classes (from data.yaml)\n", root);
    ck_assert_str_eq(line, want);
    st_dataset_free(&d);
    free(log.text);

    stt_tmpdir(root, sizeof root, "ds-yolo-map");
    make_yolo(root, "names:\n  2: bus\n  0: person\n  1: car\n");
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    check_yolo_boxes(&d);
    ck_assert_int_eq(d.n_classes, 3);
    ck_assert_str_eq(d.class_names[0], "person");
    ck_assert_str_eq(d.class_names[2], "bus");
    st_dataset_free(&d);
    free(log.text);
}
END_TEST

START_TEST(test_yolo_without_yaml) {
    char root[512];
    stt_tmpdir(root, sizeof root, "ds-yolo-noyaml");
    make_yolo(root, NULL);
    st_ds_opts o;
    st_ds_opts_default(&o);
    o.cache = 1;
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    check_yolo_boxes(&d);
    ck_assert_int_eq(d.n_classes, 3); /* largest id is 2 */
    ck_assert_str_eq(d.class_names[0], "0");
    ck_assert_str_eq(d.class_names[2], "2");
    char line[1024];
    summary(&d, line, sizeof line);
    ck_assert_msg(strstr(line, "3 classes (no data.yaml: nc = largest class id + 1"), "%s", line);
    st_image im;
    int borrowed;
    ck_assert_int_eq(st_dataset_load_image(&d, &d.val, 0, 3, &im, &borrowed, &err), ST_OK);
    ck_assert_int_eq(borrowed, 1);
    check_pixels(&im, 6, 4, 3, 3, 9);
    /* A different channel count than cached: converted copy, owned by the caller. */
    ck_assert_int_eq(st_dataset_load_image(&d, &d.val, 0, 1, &im, &borrowed, &err), ST_OK);
    ck_assert_int_eq(borrowed, 0);
    ck_assert_int_eq(im.c, 1);
    st_image direct; /* the same gray as decoding the file straight to one channel */
    ck_assert_int_eq(st_png_read(d.val.samples[0].path, 1, &direct, NULL, &err), ST_OK);
    ck_assert_int_eq(memcmp(im.data, direct.data, 6 * 4), 0);
    st_image_free(&direct);
    st_image_free(&im);
    st_dataset_free(&d);
    free(log.text);
}
END_TEST

START_TEST(test_yolo_ultralytics_folders) {
    char root[512], p[700];
    stt_tmpdir(root, sizeof root, "ds-yolo-ultra");
    dst_mkdirs(dst_path(p, sizeof p, root, "images/training"));
    dst_mkdirs(dst_path(p, sizeof p, root, "images/validation"));
    dst_mkdirs(dst_path(p, sizeof p, root, "labels/training"));
    dst_write_png(dst_path(p, sizeof p, root, "images/training/a.png"), 4, 4, 3, 1);
    dst_write_png(dst_path(p, sizeof p, root, "images/validation/b.png"), 4, 4, 3, 2);
    dst_write_file(dst_path(p, sizeof p, root, "labels/training/a.txt"), "1 0.5 0.5 0.5 0.5\n");
    dst_write_file(dst_path(p, sizeof p, root, "data.yaml"),
                   "path: ../somewhere\ntrain: images/training\nval: ./images/validation\nnc: 2\n");
    st_ds_opts o;
    st_ds_opts_default(&o);
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.train.n, 1);
    ck_assert_int_eq(d.train.samples[0].n_boxes, 1);
    ck_assert_int_eq(d.val.n, 1);
    ck_assert_int_eq(d.n_classes, 2);
    ck_assert_str_eq(d.class_names[1], "1");
    /* No labels/validation: every val image is background, and the log says so. */
    ck_assert_msg(strstr(log.text, "note: ") && strstr(log.text, "labels/validation"), "%s", log.text);
    st_dataset_free(&d);
    free(log.text);

    dst_write_file(dst_path(p, sizeof p, root, "data.yaml"), "train: images/nope\nnc: 2\n");
    ck_assert_int_eq(open_logged(root, &o, &d, &err, &log), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "data.yaml: train: 'images/nope' is not a folder"), "%s", err.msg);
    free(log.text);
}
END_TEST

/* Label lines at the edges of the format, without data.yaml (so ids are bounded only by
 * the sanity cap), each in its own image so each skips exactly one. */
START_TEST(test_yolo_label_edges) {
    char root[512], p[700];
    stt_tmpdir(root, sizeof root, "ds-yolo-edges");
    dst_mkdirs(dst_path(p, sizeof p, root, "images/train"));
    dst_mkdirs(dst_path(p, sizeof p, root, "labels/train/dir.txt")); /* a folder as label file */
    static const struct {
        const char *stem, *text;
        int ok;
        const char *needle;
    } c[] = {
        {"dir", NULL, 0, "labels/train/dir.txt: "},
        {"float_cls", "1.0 0.5 0.5 1 1\n", 1, NULL},
        {"half_cls", "1.5 0.5 0.5 1 1\n", 0, "half_cls.txt:1: class id 1.5 is not an integer"},
        {"huge_cls", "200000 0.5 0.5 0.1 0.1\n", 0, "huge_cls.txt:1: class id 200000 is over 100000, the most"},
        {"long", "0 0.5 0.5 0.1 0.1 0000000000000000000000000000000000000000000000000000000000000000000000000"
                 "0000000000000000000000000000000000000000000000000000000000000000000\n",
         0, "...')"},
        {"nan", "0 nan 0.5 0.1 0.1\n", 0, "nan.txt:1: cx 'nan' is not a number"},
        {"neg_cls", "\n\n-1 0.5 0.5 0.1 0.1\n", 0, "neg_cls.txt:3: class id -1 is negative"},
        {"nul", "0 0.5\0 0.5 0.1 0.1\n", 0, "nul.txt:1: "},
        {"tabs", "\t3\t0.5  0.5\t0.1 0.1 \r\n   \n", 1, NULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char n[128];
        snprintf(n, sizeof n, "images/train/%s.png", c[i].stem);
        dst_write_png(dst_path(p, sizeof p, root, n), 2, 2, 1, (int)i);
        if (!c[i].text) continue;
        snprintf(n, sizeof n, "labels/train/%s.txt", c[i].stem);
        FILE *f = fopen(dst_path(p, sizeof p, root, n), "wb");
        /* nul: the text holds a NUL, so write up to the final newline by hand. */
        size_t len = strcmp(c[i].stem, "nul") == 0 ? 19 : strlen(c[i].text);
        ck_assert_uint_eq(fwrite(c[i].text, 1, len, f), len);
        fclose(f);
    }
    st_ds_opts o;
    st_ds_opts_default(&o);
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.train.n, 2);
    ck_assert_int_eq(d.n_classes, 4); /* tabs.txt has class 3 */
    ck_assert_int_eq(d.train.samples[0].boxes[0].cls, 1);
    ck_assert_int_eq(d.report.images_skipped, 7);
    ck_assert_int_eq(d.report.img_problems[ST_IMG_UNREADABLE], 1);
    ck_assert_int_eq(d.report.lbl_problems[ST_LBL_NOT_NUMBER], 3);
    ck_assert_int_eq(d.report.lbl_problems[ST_LBL_CLASS_RANGE], 2);
    ck_assert_int_eq(d.report.lbl_problems[ST_LBL_FIELDS], 1);
    ck_assert_int_eq(dst_count(log.text, "skip: "), 7);
    ck_assert_ptr_nonnull(strstr(log.text, "'0 0.5\\x00 0.5 0.1 0.1')")); /* the NUL shown escaped */
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        if (c[i].needle) ck_assert_msg(strstr(log.text, c[i].needle), "no '%s' in:\n%s", c[i].needle, log.text);
    st_dataset_free(&d);
    free(log.text);
}
END_TEST

/* ---------------------------------------------------------------- IDX */

START_TEST(test_idx_detected) {
    char root[512], p[700];
    stt_tmpdir(root, sizeof root, "ds-idx");
    write_idx(dst_path(p, sizeof p, root, "train-images-idx3-ubyte.gz"), 1, 5);
    write_idx(dst_path(p, sizeof p, root, "train-labels-idx1-ubyte.gz"), 0, 5);
    write_idx(dst_path(p, sizeof p, root, "t10k-images-idx3-ubyte.gz"), 1, 3);
    write_idx(dst_path(p, sizeof p, root, "t10k-labels-idx1-ubyte.gz"), 0, 3);
    st_ds_opts o;
    st_ds_opts_default(&o);
    st_dataset d;
    st_error err = {0};
    dst_log log;
    char slash[600];
    snprintf(slash, sizeof slash, "%s/", root); /* a trailing slash is tidied away */
    ck_assert_msg(open_logged(slash, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.kind, ST_DS_IDX);
    ck_assert_str_eq(d.root, root);
    ck_assert_int_eq(d.train.n, 5);
    ck_assert_int_eq(d.val.n, 3);
    ck_assert_int_eq(d.n_classes, 4);
    ck_assert_int_eq(d.train.samples[3].label, 3);
    ck_assert_ptr_null(d.train.samples[0].path);
    st_image im;
    int borrowed;
    ck_assert_int_eq(st_dataset_load_image(&d, &d.train, 1, 3, &im, &borrowed, &err), ST_OK);
    ck_assert_int_eq(borrowed, 0);
    ck_assert_int_eq(im.h, 2);
    ck_assert_int_eq(im.w, 3);
    ck_assert_int_eq(im.c, 3);
    /* Pixel 0 of image 1 is file byte 16 + 6: gray replicated to RGB. */
    ck_assert_uint_eq(im.data[0], (uint8_t)(22 * 9));
    ck_assert_uint_eq(im.data[2], (uint8_t)(22 * 9));
    st_image_free(&im);
    ck_assert_int_eq(st_dataset_load_image(&d, &d.val, 3, 1, &im, &borrowed, &err), ST_ERR_INTERNAL);
    char line[1024];
    summary(&d, line, sizeof line);
    ck_assert_msg(strstr(line, ": IDX (MNIST format) classification set, 5 train / 3 val images, 4 classes"), "%s",
                  line);
    st_dataset_free(&d);
    free(log.text);
}
END_TEST

START_TEST(test_fashion_mnist_real) {
    if (access(FMNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0 &&
        access(FMNIST_DIR "/train-images-idx3-ubyte", R_OK) != 0) {
        stt_skip(FMNIST_DIR " absent (apt-get install dataset-fashion-mnist)");
        return;
    }
    st_dataset d;
    st_error err = {0};
    ck_assert_msg(st_dataset_open(FMNIST_DIR, NULL, &d, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(d.kind, ST_DS_IDX);
    ck_assert_int_eq(d.train.n, 60000);
    ck_assert_int_eq(d.val.n, 10000);
    ck_assert_int_eq(d.n_classes, 10);
    st_image im;
    int borrowed;
    ck_assert_int_eq(st_dataset_load_image(&d, &d.val, 9999, 1, &im, &borrowed, &err), ST_OK);
    ck_assert_int_eq(im.w, 28);
    ck_assert_int_eq(im.c, 1);
    st_image_free(&im);
    st_dataset_free(&d);
}
END_TEST

Suite *dataset_suite(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("layouts");
    tcase_set_timeout(tc, 60); /* sanitizer builds */
    tcase_add_test(tc, test_folder_three_classes);
    tcase_add_test(tc, test_folder_test_split_and_errors);
    tcase_add_test(tc, test_yolo_names_list_and_mapping);
    tcase_add_test(tc, test_yolo_without_yaml);
    tcase_add_test(tc, test_yolo_ultralytics_folders);
    tcase_add_test(tc, test_yolo_label_edges);
    tcase_add_test(tc, test_idx_detected);
    suite_add_tcase(s, tc);
    TCase *real = tcase_create("fashion-mnist");
    tcase_set_timeout(real, 120);
    tcase_add_test(real, test_fashion_mnist_real);
    suite_add_tcase(s, real);
    return s;
}
