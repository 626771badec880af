/* IDX reader: small fixtures written here (plain and gzipped), every failure mode the
 * loader promises to report, and the real Fashion-MNIST files when installed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "st_idx.h"
#include "st_rng.h"
#include "st_test_util.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_file(const char *path, const void *data, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        if (n) ck_assert_int_eq(gzwrite(f, data, (unsigned)n), (int)n);
        ck_assert_int_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        if (n) ck_assert_uint_eq(fwrite(data, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
    }
}

/* An image file of n images rows x cols; pixel i is (i * 7) & 255; `keep` bytes of the
 * encoded (uncompressed) file are written, or all when keep is (size_t)-1. */
static void write_images(const char *path, uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                         size_t keep, int gz) {
    /* Lying headers claim far more than is written, so build only the kept prefix. */
    uint64_t np = (uint64_t)n * rows * cols;
    size_t len = (size_t)ST_MIN((uint64_t)keep, 16 + np);
    uint8_t *b = malloc(ST_MAX(len, 16));
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 16; i < len; i++)
        b[i] = (uint8_t)((i - 16) * 7);
    write_file(path, b, len, gz);
    free(b);
}

static void write_labels(const char *path, uint32_t n, uint32_t claimed, int gz) {
    uint8_t *b = malloc(8 + n);
    put_be32(b, 0x801);
    put_be32(b + 4, claimed);
    for (uint32_t i = 0; i < n; i++)
        b[8 + i] = (uint8_t)(i % 10);
    write_file(path, b, 8 + n, gz);
    free(b);
}

/* The loader must fail with ST_ERR_INPUT, name the file, and mention `needle`. */
static void expect_image_error(const char *path, const char *needle) {
    st_idx_images im;
    st_error err = {0};
    st_status s = st_idx_load_images(path, &im, &err);
    ck_assert_int_eq(s, ST_ERR_INPUT);
    ck_assert_int_eq(err.code, ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message lacks path: %s", err.msg);
    if (needle) ck_assert_msg(strstr(err.msg, needle) != NULL, "no '%s' in: %s", needle, err.msg);
    ck_assert_ptr_null(im.pixels);
}

static void expect_label_error(const char *path, const char *needle) {
    uint8_t *lab = (uint8_t *)1;
    int n = -1;
    st_error err = {0};
    ck_assert_int_eq(st_idx_load_labels(path, &lab, &n, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message lacks path: %s", err.msg);
    if (needle) ck_assert_msg(strstr(err.msg, needle) != NULL, "no '%s' in: %s", needle, err.msg);
    ck_assert_ptr_null(lab);
    ck_assert_int_eq(n, 0);
}

START_TEST(test_idx_plain_and_gz) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "idx-ok");
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/img%d", dir, gz);
        write_images(path, 0x803, 3, 4, 5, (size_t)-1, gz);
        st_idx_images im;
        st_error err = {0};
        ck_assert_int_eq(st_idx_load_images(path, &im, &err), ST_OK);
        ck_assert_int_eq(im.n, 3);
        ck_assert_int_eq(im.rows, 4);
        ck_assert_int_eq(im.cols, 5);
        for (int i = 0; i < 60; i++)
            ck_assert_uint_eq(im.pixels[i], (uint8_t)(i * 7));
        st_idx_images_free(&im);
        ck_assert_ptr_null(im.pixels);

        snprintf(path, sizeof path, "%s/lab%d", dir, gz);
        write_labels(path, 13, 13, gz);
        uint8_t *lab;
        int n;
        ck_assert_int_eq(st_idx_load_labels(path, &lab, &n, &err), ST_OK);
        ck_assert_int_eq(n, 13);
        for (int i = 0; i < 13; i++)
            ck_assert_uint_eq(lab[i], (uint8_t)(i % 10));
        free(lab);
    }
}
END_TEST

START_TEST(test_idx_truncated_header_and_empty) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "idx-hdr");
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/short%d", dir, gz);
        write_images(path, 0x803, 3, 4, 5, 10, gz);
        expect_image_error(path, "truncated IDX header");
        snprintf(path, sizeof path, "%s/empty%d", dir, gz);
        write_file(path, "", 0, gz);
        expect_image_error(path, "empty");
        expect_label_error(path, "empty");
    }
}
END_TEST

START_TEST(test_idx_truncated_pixels) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "idx-trunc");
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/img%d", dir, gz);
        write_images(path, 0x803, 3, 4, 5, 16 + 40, gz); /* two of three images */
        expect_image_error(path, "expected 60 bytes of pixel data, got 40");
    }
    /* Labels file claims more labels than it holds. */
    snprintf(path, sizeof path, "%s/lab", dir);
    write_labels(path, 5, 9, 0);
    expect_label_error(path, "expected 9 bytes of label data, got 5");
    /* More bytes than the header accounts for is as suspect as fewer. */
    write_labels(path, 9, 5, 0);
    expect_label_error(path, "unexpected bytes");
}
END_TEST

START_TEST(test_idx_cut_and_corrupt_gzip) {
    char dir[512], full[600], path[600];
    stt_tmpdir(dir, sizeof dir, "idx-gz");
    snprintf(full, sizeof full, "%s/full.gz", dir);
    write_images(full, 0x803, 50, 28, 28, (size_t)-1, 1);
    FILE *f = fopen(full, "rb");
    static uint8_t buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert_uint_gt(len, 100);
    ck_assert_uint_lt(len, sizeof buf);
    /* Cut the compressed stream at several points, including inside the 8-byte trailer. */
    size_t cuts[] = {len / 2, len - 20, len - 4, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(path, sizeof path, "%s/cut%zu.gz", dir, i);
        write_file(path, buf, cuts[i], 0);
        expect_image_error(path, "truncated");
    }
    /* Flip bytes in the middle of the deflate data: zlib reports a data error or a CRC
     * mismatch in the trailer; either way it must be reported, not silently accepted. */
    for (size_t at = 20; at < len - 8; at += len / 7) {
        snprintf(path, sizeof path, "%s/flip.gz", dir);
        uint8_t save = buf[at];
        buf[at] ^= 0x5a;
        write_file(path, buf, len, 0);
        buf[at] = save;
        expect_image_error(path, NULL);
    }
    /* A gzip header followed by garbage. */
    uint8_t junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    for (int i = 10; i < 64; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    snprintf(path, sizeof path, "%s/junk.gz", dir);
    write_file(path, junk, sizeof junk, 0);
    expect_image_error(path, "gzip");
}
END_TEST

START_TEST(test_idx_wrong_magic_and_dims) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "idx-magic");
    snprintf(path, sizeof path, "%s/lab", dir);
    write_labels(path, 20, 20, 1);
    expect_image_error(path, "label file"); /* labels handed to the image loader */
    snprintf(path, sizeof path, "%s/img", dir);
    write_images(path, 0x803, 1, 2, 2, (size_t)-1, 0);
    expect_label_error(path, "magic 0x00000803");
    write_images(path, 0x12345678, 1, 2, 2, (size_t)-1, 0);
    expect_image_error(path, "magic 0x12345678");
    write_images(path, 0x803, 1, 0, 2, (size_t)-1, 0);
    expect_image_error(path, "implausible image size");
    write_images(path, 0x803, 1, 2, 70000, 16, 0);
    expect_image_error(path, "implausible image size");
    write_images(path, 0x803, 0, 2, 2, (size_t)-1, 0);
    expect_image_error(path, "no images");
    /* A lying header: 2^31-1 images of 65535x65535 with a handful of bytes behind it. */
    write_images(path, 0x803, 0x7fffffff, 65535, 65535, 16, 0);
    FILE *f = fopen(path, "ab");
    fwrite("abcdefgh", 1, 8, f);
    fclose(f);
    expect_image_error(path, "got 8");
    write_images(path, 0x803, 0x80000000u, 1, 1, 16, 0);
    expect_image_error(path, "not plausible");
    write_labels(path, 3, 0xffffffffu, 1);
    expect_label_error(path, "not plausible");
}
END_TEST

START_TEST(test_idx_random_bytes_and_missing) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "idx-rand");
    st_rng r;
    st_rng_seed(&r, 99);
    uint8_t buf[4096];
    size_t sizes[] = {1, 3, 7, 8, 15, 16, 17, 100, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t i = 0; i < sizes[k]; i++)
            buf[i] = (uint8_t)st_rng_next(&r);
        snprintf(path, sizeof path, "%s/rand%zu", dir, k);
        write_file(path, buf, sizes[k], (int)(k & 1));
        expect_image_error(path, NULL);
        expect_label_error(path, NULL);
    }
    snprintf(path, sizeof path, "%s/no-such-file", dir);
    expect_image_error(path, "No such file");
    expect_label_error(path, "No such file");
    expect_image_error(dir, "not a regular file");
}
END_TEST

/* Writes a complete MNIST-style directory: 6 train and 4 test images of 3x2. */
static void write_mnist_dir(const char *dir, int gz_train, int gz_test) {
    char p[600];
    const char *ext_tr = gz_train ? ".gz" : "", *ext_te = gz_test ? ".gz" : "";
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte%s", dir, ext_tr);
    write_images(p, 0x803, 6, 3, 2, (size_t)-1, gz_train);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte%s", dir, ext_tr);
    write_labels(p, 6, 6, gz_train);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte%s", dir, ext_te);
    write_images(p, 0x803, 4, 3, 2, (size_t)-1, gz_test);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte%s", dir, ext_te);
    write_labels(p, 4, 4, gz_test);
}

START_TEST(test_mnist_dir_fixture) {
    char dir[512], p[600];
    stt_tmpdir(dir, sizeof dir, "mnist-ok");
    write_mnist_dir(dir, 1, 0);
    st_mnist m;
    st_error err = {0};
    ck_assert_int_eq(st_mnist_load(dir, &m, &err), ST_OK);
    ck_assert_int_eq(m.n_train, 6);
    ck_assert_int_eq(m.n_test, 4);
    ck_assert_int_eq(m.rows, 3);
    ck_assert_int_eq(m.cols, 2);
    ck_assert_int_eq(m.n_classes, 6); /* labels 0..5 */
    ck_assert_uint_eq(m.train_x[5], 35);
    ck_assert_uint_eq(m.test_y[3], 3);
    st_mnist_free(&m);
    ck_assert_ptr_null(m.train_x);

    /* Count mismatch between images and labels: both files named. */
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    write_labels(p, 5, 5, 0);
    ck_assert_int_eq(st_mnist_load(dir, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, p) != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "t10k-images-idx3-ubyte") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "4 images") && strstr(err.msg, "5 labels"), "%s", err.msg);
    ck_assert_ptr_null(m.train_x);

    /* Missing file: the names looked for and the install hint. */
    unlink(p);
    ck_assert_int_eq(st_mnist_load(dir, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, p) != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "t10k-labels-idx1-ubyte.gz") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "apt-get install dataset-fashion-mnist") != NULL, "%s", err.msg);

    /* A broken member file: the error names that file. */
    write_labels(p, 4, 4, 0);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_images(p, 0x803, 6, 3, 2, 30, 1);
    ck_assert_int_eq(st_mnist_load(dir, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, p) != NULL, "%s", err.msg);

    /* Train and test image sizes must agree. */
    write_images(p, 0x803, 6, 2, 3, (size_t)-1, 1);
    ck_assert_int_eq(st_mnist_load(dir, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "2x3") != NULL, "%s", err.msg);

    /* Missing directory. */
    snprintf(p, sizeof p, "%s/nowhere", dir);
    ck_assert_int_eq(st_mnist_load(p, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, p) && strstr(err.msg, "apt-get install dataset-fashion-mnist"),
                  "%s", err.msg);
}
END_TEST

START_TEST(test_fashion_mnist_real) {
    struct stat sb;
    if (stat(FMNIST_DIR, &sb) != 0) {
        stt_skip(FMNIST_DIR " absent (apt-get install dataset-fashion-mnist)");
        return;
    }
    st_mnist m;
    st_error err = {0};
    ck_assert_msg(st_mnist_load(FMNIST_DIR, &m, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(m.n_train, 60000);
    ck_assert_int_eq(m.n_test, 10000);
    ck_assert_int_eq(m.rows, 28);
    ck_assert_int_eq(m.cols, 28);
    ck_assert_int_eq(m.n_classes, 10);
    int count[10] = {0}, tcount[10] = {0};
    for (int i = 0; i < m.n_train; i++)
        count[m.train_y[i]]++;
    for (int i = 0; i < m.n_test; i++)
        tcount[m.test_y[i]]++;
    for (int c = 0; c < 10; c++) {
        ck_assert_int_eq(count[c], 6000);
        ck_assert_int_eq(tcount[c], 1000);
    }
    /* First labels (ankle boot, t-shirt, ...) and first-image pixel sums, as read by an
     * independent decoder (Python's gzip module). */
    const uint8_t first_train[] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
    const uint8_t first_test[] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5};
    for (int i = 0; i < 12; i++) {
        ck_assert_uint_eq(m.train_y[i], first_train[i]);
        ck_assert_uint_eq(m.test_y[i], first_test[i]);
    }
    long s_tr = 0, s_te = 0;
    for (int i = 0; i < 784; i++) {
        s_tr += m.train_x[i];
        s_te += m.test_x[i];
    }
    ck_assert_int_eq(s_tr, 76247);
    ck_assert_int_eq(s_te, 33456);
    st_mnist_free(&m);
}
END_TEST

Suite *idx_suite(void) {
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("fixtures");
    tcase_add_test(tc, test_idx_plain_and_gz);
    tcase_add_test(tc, test_idx_truncated_header_and_empty);
    tcase_add_test(tc, test_idx_truncated_pixels);
    tcase_add_test(tc, test_idx_cut_and_corrupt_gzip);
    tcase_add_test(tc, test_idx_wrong_magic_and_dims);
    tcase_add_test(tc, test_idx_random_bytes_and_missing);
    tcase_add_test(tc, test_mnist_dir_fixture);
    suite_add_tcase(s, tc);
    TCase *real = tcase_create("fashion-mnist");
    /* Decompressing 30 MB takes a few seconds under the sanitizers. */
    tcase_set_timeout(real, 120);
    tcase_add_test(real, test_fashion_mnist_real);
    suite_add_tcase(s, real);
    return s;
}
