#include <check.h>

#include "st_exec.h"
#include "st_tensor.h"

START_TEST(test_tensor_views_and_strides) {
    float d[24];
    for (int i = 0; i < 24; i++) d[i] = (float)i;
    int64_t shape[3] = {2, 3, 4};
    st_tensor t = st_tensor_contiguous(d, 3, shape);
    ck_assert_int_eq(t.stride[0], 12);
    ck_assert_int_eq(t.stride[1], 4);
    ck_assert_int_eq(t.stride[2], 1);
    ck_assert_uint_eq(st_tensor_numel(&t), 24);
    ck_assert(st_tensor_is_contiguous(&t));
    int64_t idx[3] = {1, 2, 3};
    ck_assert_float_eq(t.data[st_tensor_offset(&t, idx)], 23.0f);
    st_tensor s = st_tensor_select0(&t, 1);
    ck_assert_int_eq(s.ndim, 2);
    ck_assert_float_eq(s.data[0], 12.0f);
    /* a transposed view (swap the last two dims) is not contiguous and copies in order */
    st_tensor tr = t;
    tr.shape[1] = 4, tr.shape[2] = 3, tr.stride[1] = 1, tr.stride[2] = 4;
    ck_assert(!st_tensor_is_contiguous(&tr));
    float out[24];
    ck_assert_uint_eq(st_tensor_copy_to_contiguous(&tr, out), 24);
    ck_assert_float_eq(out[1], 4.0f);  /* [0][0][1] = d[0*1 + 1*4] */
    ck_assert_float_eq(out[3], 1.0f);  /* [0][1][0] = d[1] */
    ck_assert_float_eq(out[12], 12.0f);
}
END_TEST

START_TEST(test_exec_value_view) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 2, 3, 5);
    st_g_output(g, st_g_relu(g, x));
    st_error err = {0};
    ck_assert_int_eq(st_graph_finalize(g, 1, &err), ST_OK);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, 4, 0, &err), ST_OK);
    st_exec_forward(&e, 3, 0);
    st_tensor v = st_exec_value(&e, g->output);
    ck_assert_int_eq(v.shape[0], 3);
    ck_assert_int_eq(v.shape[1], 2);
    ck_assert_int_eq(v.stride[0], 30);
    ck_assert_ptr_eq(v.data, st_exec_output(&e));
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

Suite *tensor_suite(void) {
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("views");
    tcase_add_test(tc, test_tensor_views_and_strides);
    tcase_add_test(tc, test_exec_value_view);
    suite_add_tcase(s, tc);
    return s;
}
