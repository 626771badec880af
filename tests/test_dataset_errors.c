/* Broken datasets: the committed tests/fixtures/bad_yolo set with one of each broken
 * case (plus names git cannot hold), data.yaml errors and open errors, each a clear
 * message naming the file, never a crash. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_dataset.h"
#include "st_ds_test_util.h"
#include "st_test_util.h"

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


Suite *dataset_errors_suite(void) {
    Suite *s = suite_create("dataset_errors");
    TCase *bad = tcase_create("broken");
    tcase_set_timeout(bad, 60);
    tcase_add_test(bad, test_bad_yolo_fixture);
    tcase_add_test(bad, test_yaml_errors);
    tcase_add_test(bad, test_open_errors);
    suite_add_tcase(s, bad);
    return s;
}
