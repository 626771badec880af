/* ONNX reading and validation: every malformed input is ST_ERR_INPUT with a message
 * naming the file and the problem; external data read relative to the model's folder.
 * Models are crafted in memory (tests/st_onnx_build.h). The valid models written here
 * also seed the fuzzer (build/onnx-seeds). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx.pb-c.h"
#include "st_onnx.h"
#include "st_onnx_build.h"
#include "st_test_util.h"

/* x[N,2,4,4] -> Conv(w[3,2,3,3], b[3], pad 1) -> Relu -> y */
static stb *small_model(int64_t opset) {
    stb *b = stb_new(opset);
    stb_input(b, "x", 4, (int64_t[]){-1, 2, 4, 4});
    float w[54], bias[3] = {0.1f, -0.2f, 0.3f};
    for (int i = 0; i < 54; i++) w[i] = (i % 7) * 0.1f - 0.3f;
    w[5] = w[9] = 0.0f;
    stb_init(b, "conv.weight", 4, (int64_t[]){3, 2, 3, 3}, w);
    stb_init(b, "conv.bias", 1, (int64_t[]){3}, bias);
    Onnx__NodeProto *c = stb_node(b, "Conv", "conv0", "x,conv.weight,conv.bias", "h");
    stb_attr_ints(b, c, "pads", 4, (int64_t[]){1, 1, 1, 1});
    stb_attr_ints(b, c, "kernel_shape", 2, (int64_t[]){3, 3});
    stb_node(b, "Relu", "relu0", "h", "y");
    stb_output(b, "y");
    return b;
}

/* Reads b's bytes; returns the status and leaves the message in err. */
static st_status read_stb(stb *b, st_error *err) {
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    st_onnx_model *m = NULL;
    st_status s = st_onnx_read_memory(buf, len, "m.onnx", NULL, &m, err);
    if (s == ST_OK) ck_assert_ptr_nonnull(m);
    else ck_assert_ptr_null(m);
    st_onnx_model_free(m);
    free(buf);
    return s;
}

#define EXPECT_BAD(b, want)                                                                \
    do {                                                                                   \
        st_error err_ = {0};                                                               \
        ck_assert_int_eq(read_stb((b), &err_), ST_ERR_INPUT);                              \
        ck_assert_msg(strstr(err_.msg, (want)) && strstr(err_.msg, "m.onnx"),              \
                      "message '%s' lacks '%s'", err_.msg, (want));                       \
    } while (0)

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

START_TEST(valid_model_and_info) {
    stb *b = small_model(13);
    stb_meta(b, "recipe", "gmp 0.9");
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    st_onnx_model *m = NULL;
    st_error err = {0};
    ck_assert_msg(st_onnx_read_memory(buf, len, "m.onnx", NULL, &m, &err) == ST_OK, "%s", err.msg);
    ck_assert_str_eq(st_onnx_metadata(m, "recipe"), "gmp 0.9");
    ck_assert_ptr_null(st_onnx_metadata(m, "nope"));
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    st_onnx_print_info(m, f);
    fclose(f);
    ck_assert_msg(strstr(text, "st_onnx_build") && strstr(text, "ai.onnx 13") &&
                  strstr(text, "x: FLOAT [N, 2, 4, 4]") && strstr(text, "Conv") &&
                  strstr(text, "parameters: 57") && strstr(text, "conv.weight") &&
                  strstr(text, "18.52%"), "%s", text);
    free(text);
    st_onnx_model_free(m);

    /* The same through a file, and a seed for the fuzzer. */
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/onnx-seeds", ST_BINARY_DIR);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/small.onnx", dir);
    write_file(path, buf, len);
    ck_assert_msg(st_onnx_read_file(path, &m, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);
    free(buf);
    stb_free(b);
}
END_TEST

START_TEST(not_a_model) {
    st_error err = {0};
    st_onnx_model *m = NULL;
    /* random bytes */
    st_rng r;
    st_rng_seed(&r, 5);
    unsigned char junk[4096];
    for (int t = 0; t < 50; t++) {
        size_t n = 1 + st_rng_below(&r, sizeof junk);
        for (size_t i = 0; i < n; i++) junk[i] = (unsigned char)st_rng_below(&r, 256);
        st_status s = st_onnx_read_memory(junk, n, "m.onnx", NULL, &m, &err);
        ck_assert_int_eq(s, ST_ERR_INPUT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, "m.onnx"), "%s", err.msg);
    }
    ck_assert_int_eq(st_onnx_read_memory(junk, 0, "m.onnx", NULL, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "empty"), "%s", err.msg);

    /* every truncation of a valid model */
    stb *b = small_model(13);
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    for (size_t n = 1; n < len; n++) {
        st_status s = st_onnx_read_memory(buf, n, "m.onnx", NULL, &m, &err);
        if (s == ST_OK) st_onnx_model_free(m); /* a cut between fields can still parse... */
        else ck_assert_int_eq(s, ST_ERR_INPUT);
    }
    free(buf);
    stb_free(b);

    /* a serialized TensorProto */
    Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
    int64_t dims[2] = {2, 3};
    float vals[6] = {1, 2, 3, 4, 5, 6};
    t.n_dims = 2, t.dims = dims;
    t.n_float_data = 6, t.float_data = vals;
    uint8_t tb[256];
    size_t tl = onnx__tensor_proto__pack(&t, tb);
    ck_assert_int_eq(st_onnx_read_memory(tb, tl, "m.onnx", NULL, &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "m.onnx: not an ONNX model"), "%s", err.msg);

    /* a model without a graph */
    b = small_model(13);
    stb_model(b)->graph = NULL;
    EXPECT_BAD(b, "not an ONNX model: no graph");
    stb_free(b);

    /* a missing file */
    ck_assert_int_eq(st_onnx_read_file("/nonexistent/m.onnx", &m, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "/nonexistent/m.onnx"), "%s", err.msg);
}
END_TEST

START_TEST(bad_opset) {
    stb *b = small_model(6);
    EXPECT_BAD(b, "opset 6 is too old; re-export with opset >= 7");
    stb_free(b);
    b = small_model(13);
    stb_model(b)->n_opset_import = 0;
    EXPECT_BAD(b, "no ai.onnx opset");
    stb_free(b);
}
END_TEST

START_TEST(bad_graph) {
    stb *b = small_model(13);
    stb_node(b, "Relu", "r2", "nothing_here", "z");
    EXPECT_BAD(b, "'nothing_here' is not produced");
    stb_free(b);

    b = small_model(13);
    Onnx__GraphProto *g = stb_model(b)->graph;
    Onnx__NodeProto *t = g->node[0]; /* Relu before Conv */
    g->node[0] = g->node[1], g->node[1] = t;
    EXPECT_BAD(b, "topological order");
    stb_free(b);

    b = small_model(13);
    stb_output(b, "ghost");
    EXPECT_BAD(b, "graph output 'ghost'");
    stb_free(b);

    b = small_model(13);
    stb_node(b, "Relu", "again", "h", "h");
    EXPECT_BAD(b, "node 'again' (Relu) output 'h' is already defined");
    stb_free(b);

    b = small_model(13);
    stb_model(b)->graph->node[0]->op_type = NULL;
    EXPECT_BAD(b, "no op_type");
    stb_free(b);
}
END_TEST

START_TEST(bad_tensors) {
    /* raw_data shorter than the dims say */
    stb *b = small_model(13);
    stb_model(b)->graph->initializer[0]->raw_data.len -= 4;
    EXPECT_BAD(b, "initializer 'conv.weight': raw_data has 212 bytes, dims need 216");
    stb_free(b);

    /* float_data count */
    b = small_model(13);
    Onnx__TensorProto *t = stb_model(b)->graph->initializer[1];
    t->has_raw_data = 0;
    t->n_float_data = 2;
    t->float_data = stb_alloc(b, 2 * sizeof(float));
    EXPECT_BAD(b, "float_data has 2 values, dims need 3");
    stb_free(b);

    /* no payload at all */
    b = small_model(13);
    stb_model(b)->graph->initializer[1]->has_raw_data = 0;
    EXPECT_BAD(b, "float_data has 0 values, dims need 3");
    stb_free(b);

    /* a negative dim, and one overflowing the size limit */
    b = small_model(13);
    stb_model(b)->graph->initializer[1]->dims[0] = -3;
    EXPECT_BAD(b, "dimension 0 is -3");
    stb_free(b);
    b = small_model(13);
    t = stb_model(b)->graph->initializer[0];
    t->dims[0] = t->dims[1] = t->dims[2] = (int64_t)1 << 30;
    EXPECT_BAD(b, "too large");
    stb_free(b);

    /* an int64 tensor as a conv weight */
    b = small_model(13);
    t = stb_model(b)->graph->initializer[1];
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->raw_data.len = 24;
    t->raw_data.data = stb_alloc(b, 24);
    EXPECT_BAD(b, "'conv.bias' (input 2 of Conv node 'conv0') has data type INT64; only FLOAT");
    stb_free(b);

    /* no data type */
    b = small_model(13);
    stb_model(b)->graph->initializer[1]->data_type = 0;
    EXPECT_BAD(b, "has no data type");
    stb_free(b);

    /* float_data, int64_data and int32 values decode */
    b = small_model(13);
    t = stb_model(b)->graph->initializer[1];
    t->has_raw_data = 0;
    t->n_float_data = 3;
    t->float_data = stb_alloc(b, 3 * sizeof(float));
    stb_init_i64(b, "shape_vec", 1, (int64_t[]){2}, (int64_t[]){5, -1});
    Onnx__TensorProto *i32 = stb_init_i64(b, "i32", 1, (int64_t[]){3}, NULL);
    i32->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    i32->n_int32_data = 3;
    i32->int32_data = stb_alloc(b, 3 * sizeof(int32_t));
    st_error err = {0};
    ck_assert_msg(read_stb(b, &err) == ST_OK, "%s", err.msg);
    stb_free(b);
}
END_TEST

/* conv.weight moved to an external file w.bin at offset 16. */
static stb *external_model(const char *location, const char *offset, const char *length) {
    stb *b = small_model(13);
    Onnx__TensorProto *t = stb_model(b)->graph->initializer[0];
    t->has_raw_data = 0;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *kv[3][2] = {{"location", location}, {"offset", offset}, {"length", length}};
    t->external_data = stb_alloc(b, 3 * sizeof *t->external_data);
    for (int i = 0; i < 3; i++) {
        if (!kv[i][1]) continue;
        Onnx__StringStringEntryProto *e = stb_alloc(b, sizeof *e);
        *e = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        e->key = stb_str(b, kv[i][0]);
        e->value = stb_str(b, kv[i][1]);
        t->external_data[t->n_external_data++] = e;
    }
    return b;
}

static st_status read_ext(stb *b, const char *dir, st_onnx_model **m, st_error *err) {
    char path[700];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    write_file(path, buf, len);
    free(buf);
    stb_free(b);
    return st_onnx_read_file(path, m, err);
}

START_TEST(external_data) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "onnxext");
    snprintf(path, sizeof path, "%s/w.bin", dir);
    float payload[4 + 54];
    for (int i = 0; i < 58; i++) payload[i] = (float)i * 0.5f;
    write_file(path, payload, sizeof payload);
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/w2.bin", dir);
    write_file(path, payload + 4, 54 * sizeof(float));

    st_onnx_model *m = NULL;
    st_error err = {0};
    ck_assert_msg(read_ext(external_model("w.bin", "16", "216"), dir, &m, &err) == ST_OK, "%s", err.msg);
    char *text = NULL;
    size_t tlen;
    FILE *f = open_memstream(&text, &tlen);
    st_onnx_print_info(m, f);
    fclose(f);
    ck_assert_msg(strstr(text, "parameters: 57"), "%s", text);
    free(text);
    st_onnx_model_free(m);
    /* no offset/length: the whole file */
    ck_assert_msg(read_ext(external_model("sub/w2.bin", NULL, NULL), dir, &m, &err) == ST_OK, "%s", err.msg);
    st_onnx_model_free(m);

    struct {
        const char *loc, *off, *len, *want;
    } bad[] = {
        {"missing.bin", NULL, NULL, "missing.bin: No such file"},
        {"w.bin", "200", "216", "beyond the end of"},
        {"w.bin", "0", "100", "external data length 100, dims need 216"},
        {"w.bin", "x1", NULL, "bad external data offset"},
        {"/etc/passwd", NULL, NULL, "must be a relative path"},
        {"../w.bin", NULL, NULL, "leaves the model's folder"},
        {"sub/../../w.bin", NULL, NULL, "leaves the model's folder"},
        {"", NULL, NULL, "without a location"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(read_ext(external_model(bad[i].loc, bad[i].off, bad[i].len), dir, &m, &err),
                         ST_ERR_INPUT);
        ck_assert_msg(strstr(err.msg, bad[i].want) && strstr(err.msg, "m.onnx") &&
                      strstr(err.msg, "conv.weight"), "case %zu: %s", i, err.msg);
        ck_assert_ptr_null(m);
    }
    /* from memory there is no folder */
    stb *b = external_model("w.bin", NULL, NULL);
    EXPECT_BAD(b, "read from memory");
    stb_free(b);
}
END_TEST

Suite *onnx_read_suite(void) {
    Suite *s = suite_create("onnx_read");
    TCase *tc = tcase_create("read");
    tcase_add_test(tc, valid_model_and_info);
    tcase_add_test(tc, not_a_model);
    tcase_add_test(tc, bad_opset);
    tcase_add_test(tc, bad_graph);
    tcase_add_test(tc, bad_tensors);
    tcase_add_test(tc, external_data);
    suite_add_tcase(s, tc);
    return s;
}
