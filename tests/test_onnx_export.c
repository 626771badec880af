/* ONNX export: the file's structure (opset, dynamic batch, initializer names, folding,
 * pruned zeros, metadata) and failure paths of the atomic file write. The same files
 * through onnx.checker and ONNX Runtime: test_onnx_export_ort.c. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "st_exec.h"
#include "st_models.h"
#include "st_npy.h"
#include "st_onnx.h"
#include "st_onnx_export_test_util.h"
#include "st_test_util.h"

START_TEST(test_export_cnn_small_structure) {
    st_graph *g = cnn_small(3);
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    ck_assert_int_eq(o.fold_bn, 1);
    ck_assert_int_eq(o.keep_dropout, 0);
    Onnx__ModelProto *m = export_unpack(g, &o);
    check_common(m);
    ck_assert_str_eq(m->graph->name, "sparsetrain");
    ck_assert_str_eq(m->producer_version, "0.1");
    const Onnx__TensorShapeProto *sh = m->graph->input[0]->type->tensor_type->shape;
    ck_assert_int_eq(sh->dim[1]->dim_value, 1);
    ck_assert_int_eq(sh->dim[2]->dim_value, 28);
    ck_assert_int_eq(sh->dim[3]->dim_value, 28);
    sh = m->graph->output[0]->type->tensor_type->shape;
    ck_assert_uint_eq(sh->n_dim, 2);
    ck_assert_int_eq(sh->dim[1]->dim_value, 10);
    /* Folded: conv weights + new biases, the two linears; no BN. */
    static const char *const folded[] = {"model.0.conv.weight", "model.0.conv.bias",
                                         "model.2.conv.weight", "model.2.conv.bias",
                                         "model.5.weight", "model.5.bias", "model.7.weight",
                                         "model.7.bias"};
    ck_assert_uint_eq(m->graph->n_initializer, 8);
    for (int i = 0; i < 8; i++) ck_assert_msg(find_init(m, folded[i]), "missing %s", folded[i]);
    ck_assert_int_eq(count_op(m, "BatchNormalization"), 0);
    ck_assert_int_eq(count_op(m, "Conv"), 2);
    ck_assert_int_eq(count_op(m, "Gemm"), 2);
    ck_assert_int_eq(count_op(m, "Dropout"), 0);
    const Onnx__TensorProto *w = find_init(m, "model.0.conv.weight");
    ck_assert_int_eq(w->data_type, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    ck_assert_uint_eq(w->n_dims, 4);
    ck_assert_int_eq(w->dims[0], 32);
    ck_assert_int_eq(w->dims[1], 1);
    ck_assert_uint_eq(w->raw_data.len, 32 * 9 * sizeof(float));
    onnx__model_proto__free_unpacked(m, NULL);

    /* Kept: every parameter under its own name; BN momentum is 1 - ours. */
    o.fold_bn = 0;
    o.keep_dropout = 1;
    o.producer_version = "9.9-test";
    o.graph_name = "cnn";
    m = export_unpack(g, &o);
    check_common(m);
    ck_assert_str_eq(m->producer_version, "9.9-test");
    ck_assert_str_eq(m->graph->name, "cnn");
    ck_assert_uint_eq(m->graph->n_initializer, (size_t)g->n_params + 1); /* + dropout ratio */
    for (int p = 0; p < g->n_params; p++)
        ck_assert_msg(find_init(m, g->params[p].name), "missing %s", g->params[p].name);
    ck_assert_int_eq(count_op(m, "BatchNormalization"), 2);
    ck_assert_int_eq(count_op(m, "Dropout"), 1);
    for (size_t i = 0; i < m->graph->n_node; i++) {
        const Onnx__NodeProto *n = m->graph->node[i];
        if (strcmp(n->op_type, "BatchNormalization")) continue;
        for (size_t k = 0; k < n->n_attribute; k++)
            if (!strcmp(n->attribute[k]->name, "momentum"))
                ck_assert_float_eq_tol(n->attribute[k]->f, 0.9f, 1e-6f);
    }
    const float *mean = (const float *)find_init(m, "model.2.bn.running_mean")->raw_data.data;
    ck_assert_float_eq(mean[5], st_param_data(g, st_graph_find_param(g, "model.2.bn.running_mean"))[5]);
    onnx__model_proto__free_unpacked(m, NULL);
    st_graph_free(g);
}
END_TEST

START_TEST(test_export_every_op_structure) {
    st_graph *g = every_op(7);
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    Onnx__ModelProto *m = export_unpack(g, &o);
    check_common(m);
    /* bn0 (conv with bias) and bn4 (conv on a 2-D value, no bias) fold; bn1 follows a
     * sigmoid and bn2's conv output is also read by the Mul: both kept. */
    ck_assert_int_eq(count_op(m, "BatchNormalization"), 2);
    ck_assert_ptr_null(find_init(m, "m.bn0.weight"));
    ck_assert_ptr_null(find_init(m, "m.bn4.running_var"));
    ck_assert_ptr_nonnull(find_init(m, "m.bn1.running_var"));
    ck_assert_ptr_nonnull(find_init(m, "m.bn2.weight"));
    ck_assert_ptr_nonnull(find_init(m, "m.c0.bias"));
    ck_assert_ptr_nonnull(find_init(m, "m.c4.bias")); /* created by folding */
    ck_assert_ptr_null(find_init(m, "m.c2.bias"));
    /* parameters - 8 folded BN + 1 new bias + Resize scales + Clip min/max + Reshape shape */
    ck_assert_uint_eq(m->graph->n_initializer, (size_t)g->n_params - 8 + 1 + 4);
    static const char *const ops[] = {"Conv", "LeakyRelu", "Sigmoid", "Mul", "Add", "MaxPool",
                                      "AveragePool", "Concat", "Resize", "Clip", "Softmax",
                                      "GlobalAveragePool", "Gemm", "Relu", "Flatten", "Reshape"};
    static const int counts[] = {5, 1, 2, 2, 2, 2, 2, 1, 1, 1, 2, 1, 2, 1, 3, 1};
    for (int i = 0; i < 16; i++)
        ck_assert_msg(count_op(m, ops[i]) == counts[i], "%s: %d, want %d", ops[i],
                      count_op(m, ops[i]), counts[i]);
    ck_assert_int_eq(count_op(m, "Dropout"), 0);
    ck_assert_uint_eq(m->graph->output[0]->type->tensor_type->shape->n_dim, 2);
    /* Resize as PyTorch's nearest; pools carry ceil_mode and count_include_pad. */
    for (size_t i = 0; i < m->graph->n_node; i++) {
        const Onnx__NodeProto *n = m->graph->node[i];
        if (!strcmp(n->op_type, "Resize")) {
            ck_assert_uint_eq(n->n_input, 3);
            ck_assert_str_eq(n->input[1], "");
            const float *sc = (const float *)find_init(m, n->input[2])->raw_data.data;
            ck_assert(sc[0] == 1.0f && sc[1] == 1.0f && sc[2] == 2.0f && sc[3] == 2.0f);
            int seen = 0;
            for (size_t k = 0; k < n->n_attribute; k++) {
                const Onnx__AttributeProto *at = n->attribute[k];
                const char *v = (const char *)at->s.data;
                if (!strcmp(at->name, "mode")) seen += !strncmp(v, "nearest", at->s.len);
                if (!strcmp(at->name, "coordinate_transformation_mode"))
                    seen += !strncmp(v, "asymmetric", at->s.len);
                if (!strcmp(at->name, "nearest_mode")) seen += !strncmp(v, "floor", at->s.len);
            }
            ck_assert_int_eq(seen, 3);
        }
    }
    onnx__model_proto__free_unpacked(m, NULL);

    o.fold_bn = 0;
    o.keep_dropout = 1;
    m = export_unpack(g, &o);
    check_common(m);
    ck_assert_int_eq(count_op(m, "BatchNormalization"), 4);
    ck_assert_int_eq(count_op(m, "Dropout"), 2);
    ck_assert_uint_eq(m->graph->n_initializer, (size_t)g->n_params + 4 + 2);
    for (int p = 0; p < g->n_params; p++)
        ck_assert_msg(find_init(m, g->params[p].name), "missing %s", g->params[p].name);
    onnx__model_proto__free_unpacked(m, NULL);
    st_graph_free(g);
}
END_TEST

START_TEST(test_export_pruned_zeros_and_metadata) {
    st_graph *g = cnn_small(5);
    st_rng r;
    st_rng_seed(&r, 99);
    int p0 = st_graph_find_param(g, "model.0.conv.weight");
    int p5 = st_graph_find_param(g, "model.5.weight");
    stt_prune_param(g, p0, 0.9, &r);
    stt_prune_param(g, p5, 0.9, &r);
    static const char *const keys[] = {"sparsetrain.dataset", "author"};
    static const char *const vals[] = {"fashion-mnist", "test \"quoted\""};
    for (int fold = 0; fold <= 1; fold++) {
        st_onnx_export_opts o;
        st_onnx_export_opts_default(&o);
        o.fold_bn = fold;
        o.recipe = "prune:\n  - gmp: {sparsity: 0.9}\n";
        o.n_meta = 2;
        o.meta_keys = keys;
        o.meta_values = vals;
        Onnx__ModelProto *m = export_unpack(g, &o);
        /* Every masked entry is an exact +0 in the file, folded or not; kept ones are not. */
        const int ps[2] = {p0, p5};
        for (int k = 0; k < 2; k++) {
            const st_param *pp = &g->params[ps[k]];
            const Onnx__TensorProto *t = find_init(m, pp->name);
            ck_assert_ptr_nonnull(t);
            ck_assert_uint_eq(t->raw_data.len, pp->numel * sizeof(float));
            const float *d = (const float *)t->raw_data.data;
            const unsigned char *mask = st_param_mask(g, ps[k]);
            size_t zeros = 0;
            for (size_t j = 0; j < pp->numel; j++) {
                uint32_t bits;
                memcpy(&bits, &d[j], 4);
                if (!mask[j]) ck_assert_msg(bits == 0, "%s[%zu] = %g", pp->name, j, (double)d[j]);
                else ck_assert(d[j] != 0.0f);
                zeros += d[j] == 0.0f;
            }
            ck_assert_uint_eq(zeros, (size_t)(0.9 * (double)pp->numel));
        }
        ck_assert_str_eq(meta(m, "sparsetrain.recipe"), o.recipe);
        ck_assert_str_eq(meta(m, "sparsetrain.dataset"), "fashion-mnist");
        ck_assert_str_eq(meta(m, "author"), vals[1]);
        const char *js = meta(m, "sparsetrain.sparsity");
        ck_assert_ptr_nonnull(js);
        ck_assert(js[0] == '{' && js[strlen(js) - 1] == '}');
        /* One entry per prunable parameter plus the total, and values in [0, 1]. */
        for (int p = 0; p < g->n_params; p++) {
            char key[ST_NAME_MAX + 4];
            snprintf(key, sizeof key, "\"%s\":", g->params[p].name);
            const char *at = strstr(js, key);
            ck_assert_msg(!at == !g->params[p].prunable, "%s in %s", key, js);
            if (!at) continue;
            double v = strtod(at + strlen(key), NULL);
            ck_assert_msg(fabs(v - st_param_sparsity(g, p)) < 1e-5, "%s %g", key, v);
        }
        const char *all = strstr(js, "\"__all_prunable__\":");
        ck_assert_ptr_nonnull(all);
        double v = strtod(all + strlen("\"__all_prunable__\":"), NULL);
        ck_assert(fabs(v - st_graph_prunable_sparsity(g)) < 1e-5 && v > 0.5 && v < 0.95);
        if (!fold) { /* tiny JSON sanity: balanced quotes, commas between entries */
            int q = 0;
            for (const char *c = js; *c; c++) q += *c == '"';
            ck_assert_int_eq(q % 2, 0);
            ck_assert_int_eq(q, 2 * 5); /* 4 prunable params + total */
        }
        onnx__model_proto__free_unpacked(m, NULL);
    }
    st_graph_free(g);
}
END_TEST

START_TEST(test_export_refuses_bad_input) {
    st_graph *g = cnn_small(8);
    st_error err = {0};
    uint8_t *buf = (uint8_t *)1;
    size_t len = 1;
    /* A masked weight that is not zero: the masks were not applied. */
    int p = st_graph_find_param(g, "model.7.weight");
    st_param_mask(g, p)[3] = 0;
    ck_assert_int_eq(st_onnx_export_memory(g, NULL, &buf, &len, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(buf);
    ck_assert_ptr_nonnull(strstr(err.msg, "model.7.weight"));
    st_param_data(g, p)[3] = 0.0f;
    ck_assert_int_eq(st_onnx_export_memory(g, NULL, &buf, &len, &err), ST_OK);
    free(buf);
    /* Duplicate metadata keys. */
    static const char *const keys[] = {"sparsetrain.sparsity"}, *const vals[] = {"x"};
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.n_meta = 1, o.meta_keys = keys, o.meta_values = vals;
    ck_assert_int_eq(st_onnx_export_memory(g, &o, &buf, &len, &err), ST_ERR_INPUT);
    st_graph_free(g);
    /* Not finalized. */
    g = st_graph_new();
    st_g_output(g, st_g_relu(g, st_g_input(g, 1, 2, 2)));
    ck_assert_int_eq(st_onnx_export_memory(g, NULL, &buf, &len, &err), ST_ERR_INPUT);
    st_graph_free(g);
}
END_TEST

/* Files in dir whose name starts with prefix. */
static int count_files(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

START_TEST(test_export_file_atomic) {
    st_graph *g = cnn_small(4);
    char dir[512], path[700], bad[700];
    stt_tmpdir(dir, sizeof dir, "onnx-export");
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    st_error err = {0};
    ck_assert_msg(st_onnx_export_file(g, NULL, path, &err) == ST_OK, "%s", err.msg);
    /* The file is the memory export, byte for byte, and no temporary is left. */
    uint8_t *buf;
    size_t len;
    ck_assert_int_eq(st_onnx_export_memory(g, NULL, &buf, &len, &err), ST_OK);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *got = malloc(len + 1);
    ck_assert_uint_eq(fread(got, 1, len + 1, f), len);
    fclose(f);
    ck_assert_int_eq(memcmp(got, buf, len), 0);
    free(got);
    free(buf);
    ck_assert_int_eq(count_files(dir, "model.onnx.tmp"), 0);

    /* A folder that does not exist: ST_ERR_IO naming the cause; nothing created. */
    snprintf(bad, sizeof bad, "%s/no-such-dir/model.onnx", dir);
    ck_assert_int_eq(st_onnx_export_file(g, NULL, bad, &err), ST_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, strerror(ENOENT)));
    ck_assert_int_eq(count_files(dir, "no-such-dir"), 0);

    /* A failing export (bad graph state) leaves an existing file untouched. */
    struct stat before, after;
    ck_assert_int_eq(stat(path, &before), 0);
    int p = st_graph_find_param(g, "model.0.conv.weight");
    st_param_mask(g, p)[0] = 0; /* weight 0 is not zero: refused */
    ck_assert_int_eq(st_onnx_export_file(g, NULL, path, &err), ST_ERR_INPUT);
    /* A rename that fails (the target is a non-empty folder): existing folder untouched,
     * temporary removed. */
    char sub[720], inner[740];
    snprintf(sub, sizeof sub, "%s/adir", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep", sub);
    f = fopen(inner, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    st_param_data(g, p)[0] = 0.0f;
    ck_assert_int_eq(st_onnx_export_file(g, NULL, sub, &err), ST_ERR_IO);
    ck_assert_int_eq(count_files(dir, "adir.tmp"), 0);
    ck_assert_int_eq(access(inner, F_OK), 0);
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert_int_eq(before.st_size, after.st_size);
    ck_assert_int_eq(before.st_mtime, after.st_mtime);
    ck_assert_int_eq(before.st_ino, after.st_ino);
    st_graph_free(g);
}
END_TEST

Suite *onnx_export_suite(void) {
    Suite *s = suite_create("onnx_export");
    TCase *tc = tcase_create("structure");
    tcase_add_test(tc, test_export_cnn_small_structure);
    tcase_add_test(tc, test_export_every_op_structure);
    tcase_add_test(tc, test_export_pruned_zeros_and_metadata);
    tcase_add_test(tc, test_export_refuses_bad_input);
    tcase_add_test(tc, test_export_file_atomic);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
