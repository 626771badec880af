/* Finding and re-sizing the head of an ONNX model (transfer learning): the layer that
 * decides an output's feature count is found through Softmax / Flatten / Dropout /
 * Identity for Gemm (both transB), MatMul + Add and Conv; after re-sizing, the import
 * gives the new output shape and every other parameter keeps the file's values. Graphs
 * whose output is not such a layer are refused with a message. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "st_onnx.h"
#include "st_onnx_build.h"
#include "st_test_util.h"

static st_onnx_model *read_model(stb *b) {
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    st_onnx_model *m = NULL;
    st_error err = {0};
    ck_assert_msg(st_onnx_read_memory(buf, len, "m.onnx", NULL, &m, &err) == ST_OK, "%s", err.msg);
    free(buf);
    return m;
}

static float vals[4096];

/* x [N, 6] -> Gemm "hidden" [5] -> Relu -> head -> (Softmax) -> y */
static stb *classifier(const char *head, int transB) {
    stb *b = stb_new(13);
    stb_input(b, "x", 2, (int64_t[]){-1, 6});
    stb_init(b, "W0", 2, (int64_t[]){5, 6}, vals);
    stb_init(b, "b0", 1, (int64_t[]){5}, vals + 30);
    Onnx__NodeProto *n = stb_node(b, "Gemm", "hidden", "x,W0,b0", "h0");
    stb_attr_i(b, n, "transB", 1);
    stb_node(b, "Relu", "r", "h0", "h");
    if (!strcmp(head, "gemm")) {
        if (transB) stb_init(b, "W", 2, (int64_t[]){4, 5}, vals + 100);
        else stb_init(b, "W", 2, (int64_t[]){5, 4}, vals + 100);
        stb_init(b, "B", 1, (int64_t[]){4}, vals + 200);
        n = stb_node(b, "Gemm", "head", "h,W,B", "logits");
        stb_attr_i(b, n, "transB", transB);
    } else { /* MatMul + Add, the bias first */
        stb_init(b, "W", 2, (int64_t[]){5, 4}, vals + 100);
        stb_init(b, "B", 1, (int64_t[]){4}, vals + 200);
        stb_node(b, "MatMul", "mm", "h,W", "m");
        stb_node(b, "Add", "add", "B,m", "logits");
    }
    stb_node(b, "Softmax", "sm", "logits", "y");
    stb_output(b, "y");
    return b;
}

static void check_resized(stb *b, const char *bias, int axis, int new_out) {
    st_onnx_model *m = read_model(b);
    st_onnx_head h;
    st_error err = {0};
    ck_assert_msg(st_onnx_head_find(m, 0, &h, &err) == ST_OK, "%s", err.msg);
    ck_assert_str_eq(h.weight, "W");
    ck_assert_str_eq(h.bias, bias);
    ck_assert_int_eq(h.out, 4);
    ck_assert_int_eq(h.out_axis, axis);
    ck_assert_int_eq(st_onnx_head_resize(m, &h, new_out, &err), ST_OK);
    st_graph *g = NULL;
    st_onnx_import_opts io = {.strip_softmax = 1, .seed = 1};
    ck_assert_msg(st_onnx_import(m, &io, &g, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(g->values[g->output].c, new_out);
    int w = st_graph_find_param(g, "W"), w0 = st_graph_find_param(g, "W0");
    ck_assert_int_eq((int)g->params[w].shape[0], new_out); /* ours: [out, in] */
    ck_assert_int_eq((int)g->params[st_graph_find_param(g, "B")].numel, new_out);
    /* the layer before keeps the file's weights */
    ck_assert_int_eq(memcmp(st_param_data(g, w0), vals, 30 * sizeof(float)), 0);
    st_graph_free(g);
    st_onnx_model_free(m);
}

START_TEST(classifier_heads) {
    st_rng r;
    st_rng_seed(&r, 3);
    stt_fill_uniform(vals, 4096, -1, 1, &r);
    for (int transB = 0; transB < 2; transB++) {
        stb *b = classifier("gemm", transB);
        check_resized(b, "B", transB ? 0 : 1, 7);
        stb_free(b);
    }
    stb *b = classifier("matmul", 0);
    check_resized(b, "B", 1, 2);
    stb_free(b);
}
END_TEST

/* A detector-like output straight from a Conv; a graph output that is an Add of two
 * activations has no head to re-size. */
START_TEST(conv_head_and_refusal) {
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 8, 8});
    stb_init(b, "Wc", 4, (int64_t[]){30, 3, 1, 1}, vals);
    stb_init(b, "bc", 1, (int64_t[]){30}, vals + 100);
    stb_node(b, "Conv", "det", "x,Wc,bc", "out0");
    stb_output(b, "out0");
    st_onnx_model *m = read_model(b);
    st_onnx_head h;
    st_error err = {0};
    ck_assert_msg(st_onnx_head_find(m, 0, &h, &err) == ST_OK, "%s", err.msg);
    ck_assert_str_eq(h.op, "Conv");
    ck_assert_int_eq(h.out, 30);
    ck_assert_int_eq(st_onnx_head_resize(m, &h, 24, &err), ST_OK);
    st_graph *g = NULL;
    ck_assert_msg(st_onnx_import(m, NULL, &g, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(g->values[g->output].c, 24);
    ck_assert_int_eq(st_onnx_num_outputs(m), 1);
    st_graph_free(g);
    st_onnx_model_free(m);
    stb_free(b);

    b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 8, 8});
    stb_init(b, "Wc", 4, (int64_t[]){3, 3, 1, 1}, vals);
    stb_node(b, "Conv", "c", "x,Wc", "a");
    stb_node(b, "Add", "res", "a,x", "y");
    stb_output(b, "y");
    m = read_model(b);
    ck_assert_int_eq(st_onnx_head_find(m, 0, &h, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "output 'y' does not come from a Conv, Gemm or MatMul"), "%s", err.msg);
    st_onnx_model_free(m);
    stb_free(b);
}
END_TEST

Suite *onnx_head_suite(void) {
    Suite *s = suite_create("onnx_head");
    TCase *tc = tcase_create("head");
    tcase_add_test(tc, classifier_heads);
    tcase_add_test(tc, conv_head_and_refusal);
    suite_add_tcase(s, tc);
    return s;
}
