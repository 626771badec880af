/* Dataset discovery and validation: small ImageFolder, YOLO and IDX sets built at run
 * time, the committed tests/fixtures/bad_yolo set with one of each broken case, data.yaml
 * errors, open errors, and the real Fashion-MNIST when installed. */
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

/* Opens root with the given options, the log captured; returns the status. */
static st_status open_logged(const char *root, st_ds_opts *o, st_dataset *d, st_error *err, dst_log *log) {
    dst_log_start(log);
    o->log = log->f;
    st_status s = st_dataset_open(root, o, d, err);
    dst_log_finish(log);
    o->log = NULL;
    return s;
}

static void summary(const st_dataset *d, char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    ck_assert(f != NULL);
    st_dataset_print_summary(d, f);
    fclose(f);
}

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

/* images/{train,val} + labels/{train,val} with: t0 (2 boxes), t1 (background, no label
 * file), t2 (an empty label file: also background), v0 (1 box). */
static void make_yolo(const char *root, const char *yaml) {
    char p[700];
    dst_mkdirs(dst_path(p, sizeof p, root, "images/train"));
    dst_mkdirs(dst_path(p, sizeof p, root, "images/val"));
    dst_mkdirs(dst_path(p, sizeof p, root, "labels/train"));
    dst_mkdirs(dst_path(p, sizeof p, root, "labels/val"));
    for (int i = 0; i < 3; i++) {
        char n[64];
        snprintf(n, sizeof n, "images/train/t%d.png", i);
        dst_write_png(dst_path(p, sizeof p, root, n), 6, 4, 3, i);
    }
    dst_write_png(dst_path(p, sizeof p, root, "images/val/v0.png"), 6, 4, 3, 9);
    dst_write_file(dst_path(p, sizeof p, root, "labels/train/t0.txt"), "2 0.5 0.5 0.2 0.4\n0\t0.1 0.9 1 0.05\n");
    dst_write_file(dst_path(p, sizeof p, root, "labels/train/t2.txt"), "");
    dst_write_file(dst_path(p, sizeof p, root, "labels/val/v0.txt"), "1 0.25 0.75 0.5 0.5");
    dst_write_file(dst_path(p, sizeof p, root, "labels/classes.txt"), "not a split\n"); /* ignored */
    if (yaml) dst_write_file(dst_path(p, sizeof p, root, "data.yaml"), yaml);
}

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

static void put_be32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

static void write_idx(const char *path, int images, int n) {
    uint8_t buf[256] = {0};
    size_t len = images ? 16 + (size_t)n * 6 : 8 + (size_t)n;
    put_be32(buf, images ? 0x803 : 0x801);
    put_be32(buf + 4, (uint32_t)n);
    if (images) put_be32(buf + 8, 2), put_be32(buf + 12, 3);
    for (size_t i = images ? 16 : 8; i < len; i++) buf[i] = (uint8_t)(images ? i * 9 : (i - 8) % 4);
    gzFile f = gzopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(gzwrite(f, buf, (unsigned)len), (int)len);
    ck_assert_int_eq(gzclose(f), Z_OK);
}

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

/* ---------------------------------------------------------------- broken files */

/* A copy of tests/fixtures/bad_yolo plus what git cannot hold: a folder named x.png and
 * non-UTF-8 names (an image with its label file, and a lone label file). */
static void make_bad_copy(char *root, size_t cap) {
    char tmp[512], src[600], p[700], cmd[2048];
    stt_tmpdir(tmp, sizeof tmp, "ds-bad");
    snprintf(root, cap, "%s/bad_yolo", tmp);
    stt_source_path(src, sizeof src, "tests/fixtures/bad_yolo");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", root, src, root);
    ck_assert_int_eq(stt_run(cmd), 0);
    dst_mkdirs(dst_path(p, sizeof p, root, "images/train/x.png"));
    dst_write_png(dst_path(p, sizeof p, root, "images/train/bad\xff.png"), 4, 4, 3, 7);
    dst_write_file(dst_path(p, sizeof p, root, "labels/train/bad\xff.txt"), "0 0.5 0.5 0.1 0.1\n");
    dst_write_file(dst_path(p, sizeof p, root, "labels/train/lbl\xfe.txt"), "0 0.5 0.5 0.1 0.1\n");
}

START_TEST(test_bad_yolo_fixture) {
    char root[600];
    make_bad_copy(root, sizeof root);
    st_ds_opts o;
    st_ds_opts_default(&o);
    o.threads = 2;
    o.cache = 1;
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log) == ST_OK, "%s", err.msg);
    const st_ds_report *r = &d.report;
    static const int img_want[ST_IMG_PROBLEM_COUNT] = {
        [ST_IMG_EMPTY] = 1, [ST_IMG_TRUNCATED] = 1,   [ST_IMG_NOT_PNG] = 1,     [ST_IMG_CRC] = 1,
        [ST_IMG_CORRUPT] = 0, [ST_IMG_UNREADABLE] = 2, [ST_IMG_UNSUPPORTED] = 1, [ST_IMG_TOO_LARGE] = 0};
    static const int lbl_want[ST_LBL_PROBLEM_COUNT] = {
        [ST_LBL_FIELDS] = 2,     [ST_LBL_NOT_NUMBER] = 1, [ST_LBL_CLASS_RANGE] = 2, [ST_LBL_COORD_RANGE] = 2,
        [ST_LBL_ZERO_SIZE] = 1,  [ST_LBL_ORPHAN] = 1,     [ST_LBL_BAD_NAME] = 2};
    for (int k = 1; k < ST_IMG_PROBLEM_COUNT; k++)
        ck_assert_msg(r->img_problems[k] == img_want[k], "%s: %d, want %d\n%s", st_img_problem_name(k),
                      r->img_problems[k], img_want[k], log.text);
    for (int k = 0; k < ST_LBL_PROBLEM_COUNT; k++)
        ck_assert_msg(r->lbl_problems[k] == lbl_want[k], "%s: %d, want %d\n%s", st_lbl_problem_name(k),
                      r->lbl_problems[k], lbl_want[k], log.text);
    ck_assert_int_eq(r->images_seen, 19);
    ck_assert_int_eq(r->images_skipped, 15);
    ck_assert_int_eq(d.train.n, 2);
    ck_assert_int_eq(d.val.n, 2);
    ck_assert_int_eq(d.n_classes, 3);
    ck_assert_str_eq(d.class_names[2], "bird");
    ck_assert_int_eq(d.train.samples[0].n_boxes, 3); /* CRLF, blank line, duplicate box kept */
    ck_assert_int_eq(d.train.samples[1].n_boxes, 0); /* good2: no label file */
    ck_assert_ptr_nonnull(strstr(d.val.samples[0].path, "images/val/Val2.PNG"));
    ck_assert_int_eq(d.train.samples[1].cached.c, 3); /* gray good2, cached as RGB */

    /* One line per problem, each "skip: <root>/<file>[:line]: ...". */
    ck_assert_int_eq(dst_count(log.text, "\n"), 18);
    ck_assert_int_eq(dst_count(log.text, "skip: "), 18);
    char prefix[700];
    snprintf(prefix, sizeof prefix, "skip: %s/", root);
    for (const char *l = log.text; *l; l = strchr(l, '\n') + 1)
        ck_assert_msg(strncmp(l, prefix, strlen(prefix)) == 0, "line does not name its file: %.200s", l);
    /* Decoding problems: "<path>: <problem name>: <detail> (<hint>)". */
    static const struct {
        const char *file;
        st_img_problem p;
    } img_lines[] = {{"empty.png", ST_IMG_EMPTY},         {"truncated.png", ST_IMG_TRUNCATED},
                     {"text.png", ST_IMG_NOT_PNG},        {"badcrc.png", ST_IMG_CRC},
                     {"dangling.png", ST_IMG_UNREADABLE}, {"x.png", ST_IMG_UNREADABLE}};
    for (size_t i = 0; i < sizeof img_lines / sizeof *img_lines; i++) {
        char l[256];
        snprintf(l, sizeof l, "/images/train/%s: %s: ", img_lines[i].file, st_img_problem_name(img_lines[i].p));
        ck_assert_msg(dst_count(log.text, l) == 1, "want once: %s\nlog:\n%s", l, log.text);
    }
    ck_assert_ptr_nonnull(strstr(log.text, "chunk IHDR")); /* the decoder's detail is kept */
    static const char *const expect[] = {
        "/images/train/photo.jpg: JPEG is not supported (convert to PNG)",
        "/labels/train/fields4.txt:1: 4 fields, expected 5: class cx cy w h (the line: '0 0.5 0.5 0.2')",
        "/labels/train/fields6.txt:2: 6 fields, expected 5",
        "/labels/train/classrange.txt:1: class id 3 is out of range [0, 3)",
        "/labels/train/classrange.txt:3: class id 7 is out of range [0, 3)",
        "/labels/train/negcoord.txt:1: cx = -0.1 is outside [0, 1]",
        "/labels/train/bigcoord.txt:3: cx = 1.5 is outside [0, 1]",
        "/labels/train/zerosize.txt:1: zero-size box (w = 0, h = 0.2)",
        "/labels/train/notnum.txt:1: cy 'abc' is not a number",
        "/labels/train/orphan.txt: label file without image (no images/train/orphan.png",
        "/images/train/bad\\xFF.png: file name is not valid UTF-8",
        "/labels/train/lbl\\xFE.txt: file name is not valid UTF-8",
    };
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++)
        ck_assert_msg(dst_count(log.text, expect[i]) == 1, "want once: %s\nlog:\n%s", expect[i], log.text);

    char line[2048], want[2048];
    summary(&d, line, sizeof line);
    snprintf(want, sizeof want,
             "data: %s: YOLO detection set, 2 train / 2 val images, 3 classes (from data.yaml)\n"
             "skipped 15 of 19 images: 2 %s, 2 %s, 2 %s, 2 %s, 2 %s, 1 %s, 1 %s, 1 %s, 1 %s, 1 %s, 1 %s, "
             "1 %s, 1 %s\n",
             root, st_img_problem_name(ST_IMG_UNREADABLE), st_lbl_problem_name(ST_LBL_FIELDS),
             st_lbl_problem_name(ST_LBL_CLASS_RANGE), st_lbl_problem_name(ST_LBL_COORD_RANGE),
             st_lbl_problem_name(ST_LBL_BAD_NAME), st_img_problem_name(ST_IMG_EMPTY),
             st_img_problem_name(ST_IMG_TRUNCATED), st_img_problem_name(ST_IMG_NOT_PNG),
             st_img_problem_name(ST_IMG_CRC), st_img_problem_name(ST_IMG_UNSUPPORTED),
             st_lbl_problem_name(ST_LBL_NOT_NUMBER), st_lbl_problem_name(ST_LBL_ZERO_SIZE),
             st_lbl_problem_name(ST_LBL_ORPHAN));
    ck_assert_str_eq(line, want);
    st_dataset_free(&d);

    /* The same log, line for line, on one thread: reports follow file order. */
    dst_log log1;
    o.threads = 1;
    o.cache = 0;
    ck_assert_msg(open_logged(root, &o, &d, &err, &log1) == ST_OK, "%s", err.msg);
    ck_assert_str_eq(log1.text, log.text);
    st_dataset_free(&d);
    free(log1.text);
    free(log.text);

    /* Strict: the first problem in file order is the error; nothing is opened. */
    o.strict = 1;
    ck_assert_int_eq(open_logged(root, &o, &d, &err, &log), ST_ERR_INPUT);
    char first[256];
    snprintf(first, sizeof first, "/images/train/badcrc.png: %s: ", st_img_problem_name(ST_IMG_CRC));
    ck_assert_msg(strstr(err.msg, first), "%s", err.msg);
    ck_assert_ptr_null(d.train.samples);
    ck_assert_ptr_null(d.root);
    free(log.text);
}
END_TEST

/* YOLO set whose data.yaml is yaml; opening must fail naming the file and mentioning
 * each of the needles. */
static void expect_yaml_error(const char *tag, const char *yaml, const char *n1, const char *n2) {
    char root[512];
    stt_tmpdir(root, sizeof root, tag);
    make_yolo(root, yaml);
    st_ds_opts o;
    st_ds_opts_default(&o);
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_int_eq(open_logged(root, &o, &d, &err, &log), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "/data.yaml:") && strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)),
                  "%s: %s", tag, err.msg);
    free(log.text);
}

START_TEST(test_yaml_errors) {
    expect_yaml_error("ds-y-bracket", "nc: 2\nnames: [a, b\n", "data.yaml:3:", "malformed YAML");
    expect_yaml_error("ds-y-indent", "nc: 2\nnames:\n  - a\n - b\n", "data.yaml:4:", "malformed YAML");
    expect_yaml_error("ds-y-tab", "nc: 2\n\tnames: [a, b]\n", "data.yaml:2:", "malformed YAML");
    expect_yaml_error("ds-y-count", "nc: 3\nnames: [a, b]\n", "data.yaml:2:8:", "nc is 3 but names lists 2");
    expect_yaml_error("ds-y-mapkey", "names: {0: a, 2: b}\n", "data.yaml:1:15:", "key '2' is not a class id");
    expect_yaml_error("ds-y-nc", "nc: many\n", "data.yaml:1:5:", "nc: 'many'");
    expect_yaml_error("ds-y-list", "- a\n- b\n", "data.yaml:1:1:", "expected a mapping");
    expect_yaml_error("ds-y-dup", "nc: 2\nnc: 2\n", "data.yaml:2:1:", "twice");
    expect_yaml_error("ds-y-trainlist", "train: [images/a, images/b]\n", "data.yaml:1:8:", "lists are not");
    expect_yaml_error("ds-y-empty", "", "data.yaml: no keys in the file", NULL);
    expect_yaml_error("ds-y-comments", "# nc: 3\n", "data.yaml: no keys in the file", NULL);
    expect_yaml_error("ds-y-utf8", "nc: 2\nnames: [a, \xff]\n", "data.yaml: byte 17:", "UTF-8");
}
END_TEST

static void expect_open_error(const char *root, int channels, const char *n1, const char *n2) {
    st_ds_opts o;
    st_ds_opts_default(&o);
    if (channels >= 0) o.channels = channels;
    st_dataset d;
    st_error err = {0};
    dst_log log;
    ck_assert_int_eq(open_logged(root, &o, &d, &err, &log), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)), "%s", err.msg);
    ck_assert_ptr_null(d.root);
    free(log.text);
}

START_TEST(test_open_errors) {
    char root[512], p[700], want[800];
    stt_tmpdir(root, sizeof root, "ds-errors");
    dst_path(p, sizeof p, root, "no-such-dir");
    expect_open_error(p, -1, p, "No such file");
    dst_write_file(dst_path(p, sizeof p, root, "file"), "x");
    expect_open_error(p, -1, "not a folder", "expected train-images-idx3-ubyte[.gz] (IDX)");
    dst_mkdirs(dst_path(p, sizeof p, root, "empty"));
    expect_open_error(p, -1, "(the folder is empty)",
                      "expected train-images-idx3-ubyte[.gz] (IDX), train/<class>/*.png (ImageFolder) or "
                      "images/train + labels/train (YOLO)");
    expect_open_error(p, 2, "channels must be 1 or 3", NULL);
    dst_mkdirs(dst_path(p, sizeof p, root, "other/stuff"));
    expect_open_error(dst_path(p, sizeof p, root, "other"), -1, "no dataset found; expected", NULL);
    /* IDX with a file missing: st_mnist_load names it. */
    dst_mkdirs(dst_path(p, sizeof p, root, "idx"));
    write_idx(dst_path(p, sizeof p, root, "idx/train-images-idx3-ubyte.gz"), 1, 2);
    expect_open_error(dst_path(p, sizeof p, root, "idx"), -1, "train-labels-idx1-ubyte", NULL);

    /* Only broken images: YOLO and ImageFolder. */
    dst_mkdirs(dst_path(p, sizeof p, root, "yolo/images/train"));
    dst_mkdirs(dst_path(p, sizeof p, root, "yolo/labels/train"));
    dst_write_file(dst_path(p, sizeof p, root, "yolo/images/train/a.png"), "");
    dst_write_file(dst_path(p, sizeof p, root, "yolo/images/train/b.png"), "text");
    snprintf(want, sizeof want, "no usable image in %s/yolo/images/train: 2 skipped, see above", root);
    expect_open_error(dst_path(p, sizeof p, root, "yolo"), -1, want, NULL);
    dst_mkdirs(dst_path(p, sizeof p, root, "yolo2/images/val"));
    dst_mkdirs(dst_path(p, sizeof p, root, "yolo2/labels"));
    expect_open_error(dst_path(p, sizeof p, root, "yolo2"), -1, "yolo2/images/train: no such folder", NULL);
    dst_mkdirs(dst_path(p, sizeof p, root, "folder/train/cls"));
    dst_write_file(dst_path(p, sizeof p, root, "folder/train/cls/a.png"), "");
    snprintf(want, sizeof want, "no usable image in %s/folder/train: 1 skipped, see above", root);
    expect_open_error(dst_path(p, sizeof p, root, "folder"), -1, want, NULL);
    dst_mkdirs(dst_path(p, sizeof p, root, "noclass/train"));
    expect_open_error(dst_path(p, sizeof p, root, "noclass"), -1, "no class folders", NULL);
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
    TCase *bad = tcase_create("broken");
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, test_bad_yolo_fixture);
    tcase_add_test(bad, test_yaml_errors);
    tcase_add_test(bad, test_open_errors);
    suite_add_tcase(s, bad);
    TCase *real = tcase_create("fashion-mnist");
    tcase_set_timeout(real, 120);
    tcase_add_test(real, test_fashion_mnist_real);
    suite_add_tcase(s, real);
    return s;
}
