/* .npy reading and writing: round trip, float64 input, what NumPy itself wrote, and
 * every malformed file giving ST_ERR_INPUT. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "st_npy.h"
#include "st_test_util.h"

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

START_TEST(round_trip) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "npy");
    snprintf(path, sizeof path, "%s/a.npy", dir);
    const int64_t shapes[3][4] = {{2, 3, 5, 7}, {1, 0, 0, 0}, {17, 0, 0, 0}};
    const int ndims[3] = {4, 0, 1};
    for (int t = 0; t < 3; t++) {
        size_t n = 1;
        for (int i = 0; i < ndims[t]; i++) n *= shapes[t][i];
        float x[2 * 3 * 5 * 7];
        for (size_t i = 0; i < n; i++) x[i] = (float)i * 0.25f - 3.0f;
        st_error err = {0};
        ck_assert_int_eq(st_npy_write(path, ndims[t], shapes[t], x, &err), ST_OK);
        st_npy a;
        ck_assert_msg(st_npy_read(path, &a, &err) == ST_OK, "%s", err.msg);
        ck_assert_int_eq(a.ndim, ndims[t]);
        ck_assert_uint_eq(a.numel, n);
        for (int i = 0; i < a.ndim; i++) ck_assert_int_eq(a.shape[i], shapes[t][i]);
        ck_assert_mem_eq(a.data, x, n * sizeof(float));
        st_npy_free(&a);
    }
}
END_TEST

/* A float64 file laid out as NumPy writes it (header padded to 64 bytes). */
START_TEST(float64_converted) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "npy64");
    snprintf(path, sizeof path, "%s/d.npy", dir);
    const char *hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
    unsigned char buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    size_t hl = strlen(hdr), total = 10 + hl + 1, pad = (64 - total % 64) % 64;
    size_t n = hl + pad + 1;
    buf[8] = (unsigned char)n;
    memcpy(buf + 10, hdr, hl);
    memset(buf + 10 + hl, ' ', pad);
    buf[10 + n - 1] = '\n';
    double v[3] = {1.5, -2.25, 1e-3};
    memcpy(buf + 10 + n, v, sizeof v);
    write_bytes(path, buf, 10 + n + sizeof v);
    st_npy a;
    st_error err = {0};
    ck_assert_msg(st_npy_read(path, &a, &err) == ST_OK, "%s", err.msg);
    ck_assert_uint_eq(a.numel, 3);
    ck_assert_float_eq(a.data[0], 1.5f);
    ck_assert_float_eq(a.data[1], -2.25f);
    ck_assert_float_eq(a.data[2], 1e-3f);
    st_npy_free(&a);
}
END_TEST

START_TEST(bad_files) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "npybad");
    snprintf(path, sizeof path, "%s/b.npy", dir);
    struct {
        const char *hdr;
        size_t payload;
        const char *want;
    } cases[] = {
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 8, "element type"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, "C order"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 8, "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, }", 8, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 8, "shape"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        unsigned char buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
        size_t hl = strlen(cases[c].hdr);
        buf[8] = (unsigned char)(hl + 1);
        memcpy(buf + 10, cases[c].hdr, hl);
        buf[10 + hl] = '\n';
        write_bytes(path, buf, 10 + hl + 1 + cases[c].payload);
        st_npy a;
        st_error err = {0};
        ck_assert_int_eq(st_npy_read(path, &a, &err), ST_ERR_INPUT);
        ck_assert_msg(strstr(err.msg, cases[c].want) && strstr(err.msg, path), "case %zu: %s", c, err.msg);
        ck_assert_ptr_null(a.data);
    }
    write_bytes(path, "hello world, not numpy", 22);
    st_npy a;
    st_error err = {0};
    ck_assert_int_eq(st_npy_read(path, &a, &err), ST_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a NumPy"));
    snprintf(path, sizeof path, "%s/missing.npy", dir);
    ck_assert_int_eq(st_npy_read(path, &a, &err), ST_ERR_INPUT);
}
END_TEST

Suite *npy_suite(void) {
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, float64_converted);
    tcase_add_test(tc, bad_files);
    suite_add_tcase(s, tc);
    return s;
}
