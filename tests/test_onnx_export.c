/* ONNX export: the file's structure (opset, dynamic batch, initializer names, folding,
 * pruned zeros, metadata), failure paths of the atomic file write, and, where the peers
 * are installed, onnx.checker plus ONNX Runtime against our own eval-mode forward. */
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
#include "st_test_util.h"

/* ---- graphs ---------------------------------------------------------------------- */

static st_graph *cnn_small(uint64_t seed) {
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("cnn-small", 1, 28, 28, 10, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, seed, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, seed + 1);
    stt_randomize_bn(g, &r);
    return g;
}

/* Every op kind, with the cases the exporter treats differently: BN folded into a conv
 * with and without bias, BN kept (its conv output read twice; not after a conv), per-axis
 * conv/pool, ceil-mode and padded pools, a linear on a 4-D value, Add of a 2-D and a
 * 4-D value, a conv on a 2-D value, softmax on 4-D and 2-D values. */
static st_graph *every_op(uint64_t seed) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 9, 9);
    int a = st_g_conv2d(g, "m.c0", x, 8, 3, 3, 1, 1, 1, 1, 1);
    a = st_g_leakyrelu(g, st_g_batchnorm(g, "m.bn0", a, 1e-5f, 0.1f), 0.1f);
    int b = st_g_conv2d_ex(g, "m.c1", a, 8, 3, 1, 1, 1, 1, 0, 1, 1, 2, 0);
    b = st_g_batchnorm(g, "m.bn1", st_g_sigmoid(g, st_g_silu(g, b)), 1e-3f, 0.03f);
    int c = st_g_conv2d(g, "m.c2", a, 8, 1, 1, 1, 0, 1, 1, 0);
    int cb = st_g_batchnorm(g, "m.bn2", c, 1e-5f, 0.1f);
    int s = st_g_dropout(g, st_g_add(g, cb, st_g_mul(g, c, b)), 0.3f); /* 8x9x9 */
    int p[4];
    p[0] = st_g_maxpool(g, s, 3, 2, 1, 1);                                 /* 8x5x5 */
    p[1] = st_g_avgpool(g, s, 3, 2, 1, 1, 0);                              /* 8x5x5 */
    p[2] = st_g_avgpool(g, s, 3, 2, 1, 0, 1);                              /* 8x5x5 */
    p[3] = st_g_pool_ex(g, ST_OP_MAXPOOL, s, 3, 1, 2, 2, 1, 0, 0, 0);      /* 8x5x5 */
    int u = st_g_upsample(g, st_g_concat(g, p, 4), 2);                     /* 32x10x10 */
    u = st_g_softmax(g, st_g_clip(g, u, -0.2f, 0.6f));
    int gp = st_g_global_avgpool(g, u);                                    /* 32x1x1 */
    int h = st_g_linear(g, "m.fc0", gp, 12, 1);                            /* 2-D */
    int hc = st_g_conv2d(g, "m.c3", gp, 12, 1, 1, 1, 0, 1, 1, 1);         /* 4-D */
    h = st_g_relu(g, st_g_add(g, h, hc));
    h = st_g_conv2d(g, "m.c4", h, 12, 1, 1, 1, 0, 1, 1, 0);                /* conv on 2-D */
    h = st_g_batchnorm(g, "m.bn4", h, 1e-5f, 0.1f);
    h = st_g_dropout(g, st_g_flatten(g, h), 0.5f);
    int y = st_g_softmax(g, st_g_linear(g, "m.fc1", h, 6, 0));
    st_g_output(g, y);
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, seed, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, seed + 1);
    stt_randomize_bn(g, &r);
    return g;
}

/* ---- reading the exported bytes --------------------------------------------------- */

static Onnx__ModelProto *export_unpack(const st_graph *g, const st_onnx_export_opts *o) {
    uint8_t *buf = NULL;
    size_t len = 0;
    st_error err = {0};
    ck_assert_msg(st_onnx_export_memory(g, o, &buf, &len, &err) == ST_OK, "%s", err.msg);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    ck_assert_ptr_nonnull(m);
    return m;
}

static const Onnx__TensorProto *find_init(const Onnx__ModelProto *m, const char *name) {
    for (size_t i = 0; i < m->graph->n_initializer; i++)
        if (strcmp(m->graph->initializer[i]->name, name) == 0) return m->graph->initializer[i];
    return NULL;
}

static int count_op(const Onnx__ModelProto *m, const char *op) {
    int n = 0;
    for (size_t i = 0; i < m->graph->n_node; i++) n += strcmp(m->graph->node[i]->op_type, op) == 0;
    return n;
}

static const char *meta(const Onnx__ModelProto *m, const char *key) {
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (strcmp(m->metadata_props[i]->key, key) == 0) return m->metadata_props[i]->value;
    return NULL;
}

/* Number of initializers the graph's parameters become: all of them, less the four of
 * each folded BN, plus a bias for each folded conv that had none. */
static void check_common(const Onnx__ModelProto *m) {
    ck_assert(m->has_ir_version && m->ir_version == 7);
    ck_assert_uint_eq(m->n_opset_import, 1);
    ck_assert_str_eq(m->opset_import[0]->domain ? m->opset_import[0]->domain : "", "");
    ck_assert_int_eq(m->opset_import[0]->version, 13);
    ck_assert_str_eq(m->producer_name, "sparsetrain");
    const Onnx__GraphProto *gp = m->graph;
    ck_assert_uint_eq(gp->n_input, 1);
    ck_assert_uint_eq(gp->n_output, 1);
    ck_assert_str_eq(gp->input[0]->name, "input");
    ck_assert_str_eq(gp->output[0]->name, "output");
    const Onnx__TensorShapeProto *sh = gp->input[0]->type->tensor_type->shape;
    ck_assert_uint_eq(sh->n_dim, 4);
    ck_assert_int_eq(sh->dim[0]->value_case, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM);
    ck_assert_str_eq(sh->dim[0]->dim_param, "N");
    sh = gp->output[0]->type->tensor_type->shape;
    ck_assert_str_eq(sh->dim[0]->dim_param, "N");
    /* Tensor names are SSA: every node output is new and no initializer is produced. */
    for (size_t i = 0; i < gp->n_node; i++) {
        const char *o = gp->node[i]->output[0];
        ck_assert_msg(!find_init(m, o), "node output %s is an initializer name", o);
        ck_assert_str_ne(o, "input");
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(o, gp->node[j]->output[0]) != 0, "%s produced twice", o);
    }
}

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

/* ---- interoperability: onnx.checker and ONNX Runtime vs our forward ----------------- */

/* Exports g, checks it, runs ORT at batches 1 and 3 and compares with st_exec (eval). */
static void check_against_ort(const st_graph *g, const st_onnx_export_opts *o, const char *tag) {
    char dir[512], model[700], in_npy[700], out_npy[700];
    stt_tmpdir(dir, sizeof dir, "onnx-ort");
    snprintf(model, sizeof model, "%s/%s.onnx", dir, tag);
    st_error err = {0};
    ck_assert_msg(st_onnx_export_file(g, o, model, &err) == ST_OK, "%s", err.msg);
    ck_assert_msg(stt_onnx_check(model) == 0, "onnx.checker rejected %s", model);
    st_shape is = g->values[g->input];
    size_t n_in = st_shape_numel(is);
    st_rng r;
    st_rng_seed(&r, 1234);
    for (int N = 1; N <= 3; N += 2) {
        float *x = malloc((size_t)N * n_in * sizeof(float));
        stt_fill_uniform(x, (size_t)N * n_in, -1.0f, 1.0f, &r);
        int64_t shape[4] = {N, is.c, is.h, is.w};
        snprintf(in_npy, sizeof in_npy, "%s/%s-in%d.npy", dir, tag, N);
        snprintf(out_npy, sizeof out_npy, "%s/%s-out%d.npy", dir, tag, N);
        ck_assert_int_eq(st_npy_write(in_npy, 4, shape, x, &err), ST_OK);
        ck_assert_msg(stt_ort_run(model, in_npy, out_npy) == 0, "ORT failed on %s", model);
        st_exec e;
        ck_assert_int_eq(st_exec_plan(&e, g, N, 0, &err), ST_OK);
        e.dense_only = 1;
        memcpy(st_exec_input(&e), x, (size_t)N * n_in * sizeof(float));
        st_exec_forward(&e, N, 0);
        for (int k = 0; k < g->n_outputs; k++) {
            char yk[760];
            if (k) snprintf(yk, sizeof yk, "%s/%s-out%d_%d.npy", dir, tag, N, k);
            else snprintf(yk, sizeof yk, "%s", out_npy);
            st_npy y;
            ck_assert_int_eq(st_npy_read(yk, &y, &err), ST_OK);
            ck_assert_int_eq(y.shape[0], N);
            ck_assert_uint_eq(y.numel, (size_t)N * st_shape_numel(g->values[g->outputs[k]]));
            const float *ours = e.act[g->outputs[k]];
            size_t bad = stt_first_mismatch(y.data, ours, y.numel, 1e-5, 1e-4);
            ck_assert_msg(bad == (size_t)-1, "%s batch %d output %d: ORT %.8g vs ours %.8g at %zu",
                          tag, N, k, bad == (size_t)-1 ? 0.0 : (double)y.data[bad],
                          bad == (size_t)-1 ? 0.0 : (double)ours[bad], bad);
            st_npy_free(&y);
        }
        st_exec_free(&e);
        free(x);
    }
}

START_TEST(test_ort_cnn_small) {
    if (!stt_need_peers()) return;
    for (int pruned = 0; pruned <= 1; pruned++) {
        st_graph *g = cnn_small(11 + pruned);
        if (pruned) {
            st_rng r;
            st_rng_seed(&r, 77);
            stt_prune_all(g, 0.9, &r);
        }
        for (int fold = 0; fold <= 1; fold++) {
            st_onnx_export_opts o;
            st_onnx_export_opts_default(&o);
            o.fold_bn = fold;
            char tag[64];
            snprintf(tag, sizeof tag, "cnn-%s-%s", pruned ? "pruned" : "dense",
                     fold ? "folded" : "bn");
            check_against_ort(g, &o, tag);
        }
        st_graph_free(g);
    }
}
END_TEST

/* The detector: yolov5n (3 classes, 64x64), dense and 95% pruned, BN folded; its three
 * raw head outputs against ONNX Runtime, and the import of its own export. */
START_TEST(test_ort_yolov5n) {
    if (!stt_need_peers()) return;
    for (int pruned = 0; pruned <= 1; pruned++) {
        st_graph *g = NULL;
        st_error err = {0};
        ck_assert_int_eq(st_model_build("yolov5n", 3, 64, 64, 3, &g, &err), ST_OK);
        ck_assert_int_eq(st_graph_finalize(g, 5, &err), ST_OK);
        st_rng r;
        st_rng_seed(&r, 6);
        stt_randomize_bn(g, &r);
        if (pruned) stt_prune_all(g, 0.95, &r);
        check_against_ort(g, NULL, pruned ? "yolov5n-pruned" : "yolov5n-dense");
        st_graph_free(g);
    }
}
END_TEST

/* The export with YOLOv5's decode: ONNX Runtime's "detections" [N, A, 5+nc] equal the
 * decode of our raw outputs computed here from the formulas (docs/yolov5.md). */
START_TEST(test_ort_yolov5n_decode) {
    if (!stt_need_peers()) return;
    const int nc = 3, S = 64, N = 2, K = nc + 5;
    st_graph *g = NULL;
    st_error err = {0};
    ck_assert_int_eq(st_model_build("yolov5n", 3, S, S, nc, &g, &err), ST_OK);
    ck_assert_int_eq(st_graph_finalize(g, 8, &err), ST_OK);
    st_rng r;
    st_rng_seed(&r, 9);
    stt_randomize_bn(g, &r);
    st_onnx_yolo_decode d = {.nc = nc, .strides = {8, 16, 32},
                             .anchors = {{{10, 13}, {16, 30}, {33, 23}},
                                         {{30, 61}, {62, 45}, {59, 119}},
                                         {{116, 90}, {156, 198}, {373, 326}}}};
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.yolo_decode = &d;
    char dir[512], model[700], in_npy[700], out_npy[700];
    stt_tmpdir(dir, sizeof dir, "onnx-decode");
    snprintf(model, sizeof model, "%s/yolo-decode.onnx", dir);
    ck_assert_msg(st_onnx_export_file(g, &o, model, &err) == ST_OK, "%s", err.msg);
    ck_assert_msg(stt_onnx_check(model) == 0, "onnx.checker rejected %s", model);
    size_t n_in = (size_t)N * 3 * S * S;
    float *x = malloc(n_in * sizeof(float));
    stt_fill_uniform(x, n_in, 0.0f, 1.0f, &r);
    int64_t shape[4] = {N, 3, S, S};
    snprintf(in_npy, sizeof in_npy, "%s/in.npy", dir);
    snprintf(out_npy, sizeof out_npy, "%s/out.npy", dir);
    ck_assert_int_eq(st_npy_write(in_npy, 4, shape, x, &err), ST_OK);
    ck_assert_int_eq(stt_ort_run(model, in_npy, out_npy), 0);
    st_npy y;
    ck_assert_int_eq(st_npy_read(out_npy, &y, &err), ST_OK);
    int A = 3 * (8 * 8 + 4 * 4 + 2 * 2);
    ck_assert_int_eq(y.ndim, 3);
    ck_assert_int_eq(y.shape[1], A);
    ck_assert_int_eq(y.shape[2], K);
    st_exec e;
    ck_assert_int_eq(st_exec_plan(&e, g, N, 0, &err), ST_OK);
    memcpy(st_exec_input(&e), x, n_in * sizeof(float));
    st_exec_forward(&e, N, 0);
    float *want = malloc(y.numel * sizeof(float));
    for (int n = 0; n < N; n++) {
        int row = 0;
        for (int sc = 0; sc < 3; sc++) {
            st_shape os = g->values[g->outputs[sc]];
            const float *raw = e.act[g->outputs[sc]] + (size_t)n * st_shape_numel(os);
            int H = os.h, W = os.w, hw = H * W;
            for (int a = 0; a < 3; a++)
                for (int cy = 0; cy < H; cy++)
                    for (int cx = 0; cx < W; cx++, row++) {
                        float *o = want + ((size_t)n * A + row) * K;
                        for (int k = 0; k < K; k++) {
                            float v = 1.0f / (1.0f + expf(-raw[(size_t)(a * K + k) * hw + cy * W + cx]));
                            if (k == 0) v = (v * 2 - 0.5f + cx) * d.strides[sc];
                            else if (k == 1) v = (v * 2 - 0.5f + cy) * d.strides[sc];
                            else if (k < 4) v = (v * 2) * (v * 2) * d.anchors[sc][a][k - 2];
                            o[k] = v;
                        }
                    }
        }
    }
    STT_ASSERT_CLOSE(y.data, want, y.numel, 1e-4, 1e-4);
    /* the decode needs a detector */
    st_graph *c = cnn_small(3);
    ck_assert_int_eq(st_onnx_export_file(c, &o, model, &err), ST_ERR_INPUT);
    st_graph_free(c);
    free(want), free(x);
    st_npy_free(&y);
    st_exec_free(&e);
    st_graph_free(g);
}
END_TEST

START_TEST(test_ort_every_op) {
    if (!stt_need_peers()) return;
    st_graph *g = every_op(21);
    st_rng r;
    st_rng_seed(&r, 5);
    stt_prune_all(g, 0.5, &r);
    for (int v = 0; v < 3; v++) {
        st_onnx_export_opts o;
        st_onnx_export_opts_default(&o);
        o.fold_bn = v != 1;
        o.keep_dropout = v == 2;
        const char *tags[3] = {"every-folded", "every-bn", "every-dropout"};
        check_against_ort(g, &o, tags[v]);
    }
    st_graph_free(g);
}
END_TEST

/* Output reached through a dropped Dropout (an Identity names it "output"), and a BN on
 * a 2-D value (after a linear: kept, nothing to fold into). */
static st_graph *edge_graph(void) {
    st_graph *g = st_graph_new();
    int x = st_g_flatten(g, st_g_input(g, 2, 4, 4));
    x = st_g_batchnorm(g, "fc.bn", st_g_linear(g, "fc", x, 7, 1), 1e-5f, 0.1f);
    st_g_output(g, st_g_dropout(g, x, 0.2f));
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, 3, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, 4);
    stt_randomize_bn(g, &r);
    return g;
}

START_TEST(test_export_edge_graph) {
    st_graph *g = edge_graph();
    Onnx__ModelProto *m = export_unpack(g, NULL);
    check_common(m);
    ck_assert_int_eq(count_op(m, "Identity"), 1);
    ck_assert_int_eq(count_op(m, "BatchNormalization"), 1);
    ck_assert_int_eq(count_op(m, "Dropout"), 0);
    ck_assert_uint_eq(m->graph->output[0]->type->tensor_type->shape->n_dim, 2);
    onnx__model_proto__free_unpacked(m, NULL);
    st_onnx_export_opts o;
    st_onnx_export_opts_default(&o);
    o.keep_dropout = 1;
    m = export_unpack(g, &o);
    ck_assert_int_eq(count_op(m, "Identity"), 0);
    ck_assert_int_eq(count_op(m, "Dropout"), 1);
    onnx__model_proto__free_unpacked(m, NULL);
    if (stt_need_peers()) {
        check_against_ort(g, NULL, "edge");
        check_against_ort(g, &o, "edge-dropout");
    }
    st_graph_free(g);
}
END_TEST

/* Several outputs (a detector's scales): "output0", "output1", each with its shape. */
START_TEST(test_export_two_outputs) {
    st_graph *g = st_graph_new();
    int x = st_g_input(g, 3, 8, 8);
    int a = st_g_silu(g, st_g_batchnorm(g, "m.0.bn", st_g_conv2d(g, "m.0.conv", x, 4, 3, 3, 1, 1, 1, 1, 0), 1e-3f, 0.03f));
    int b = st_g_conv2d(g, "m.1", a, 6, 3, 3, 2, 1, 1, 1, 1);
    st_g_output(g, st_g_conv2d(g, "m.2", a, 5, 1, 1, 1, 0, 1, 1, 1));
    st_g_output(g, b);
    st_error err = {0};
    ck_assert_msg(st_graph_finalize(g, 3, &err) == ST_OK, "%s", err.msg);
    st_rng r;
    st_rng_seed(&r, 4);
    stt_randomize_bn(g, &r);
    Onnx__ModelProto *m = export_unpack(g, NULL);
    ck_assert_uint_eq(m->graph->n_output, 2);
    ck_assert_str_eq(m->graph->output[0]->name, "output0");
    ck_assert_str_eq(m->graph->output[1]->name, "output1");
    ck_assert_int_eq(m->graph->output[1]->type->tensor_type->shape->dim[1]->dim_value, 6);
    ck_assert_int_eq(m->graph->output[1]->type->tensor_type->shape->dim[2]->dim_value, 4);
    onnx__model_proto__free_unpacked(m, NULL);
    if (stt_need_peers()) check_against_ort(g, NULL, "two-outputs");
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
    TCase *peers = tcase_create("peers");
    tcase_add_test(peers, test_ort_cnn_small);
    tcase_add_test(peers, test_ort_every_op);
    tcase_add_test(peers, test_export_edge_graph);
    tcase_add_test(peers, test_export_two_outputs);
    tcase_add_test(peers, test_ort_yolov5n);
    tcase_add_test(peers, test_ort_yolov5n_decode);
    tcase_set_timeout(peers, 300);
    suite_add_tcase(s, peers);
    return s;
}
