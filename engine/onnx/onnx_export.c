/* ONNX export: a finalized st_graph and its parameters as an opset-13 ModelProto.
 *
 * Tensors are NCHW with a symbolic batch "N". A value of ours has a per-sample shape
 * (C, H, W); in ONNX it is either 4-D [N, C, H, W] or, after Flatten/Linear, 2-D [N, C]
 * (then H = W = 1). Each value remembers its rank; where an op needs the other one a
 * Flatten (to 2-D) or Reshape [0, -1, 1, 1] (to 4-D) is inserted once per value.
 *
 * Initializers carry our parameter names and values, pruned zeros included (written as
 * +0.0f). With fold_bn, a BatchNorm whose input is a convolution output read by nothing
 * else is folded into that convolution: W' = W * s, b' = (b - mean) * s + beta with
 * s = gamma / sqrt(var + eps) per output channel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_export_internal.h"
#include "st_onnx.h"

typedef struct {
    char *name;  /* ONNX tensor name (owned), NULL until produced */
    char *flat;  /* its 2-D form, made on first use (owned) */
    char *image; /* its 4-D form, made on first use (owned) */
    int rank;    /* 2 or 4 */
} ox_val;

typedef struct {
    const st_graph *g;
    const st_onnx_export_opts *o;
    ox_builder b;
    ox_val *v;     /* [n_values] */
    int *alias;    /* [n_values]: value whose tensor this one is (dropped Dropout), or -1 */
    int *uses;     /* [n_values]: node inputs reading it, +1 for the graph output */
    int *fold;     /* [n_nodes]: conv -> BN node folded into it, -1 */
    int *folded;   /* [n_nodes]: 1 for a BN folded into its conv */
    char *shape4d; /* the Reshape target [0, -1, 1, 1], made on first use */
} ox_ctx;

void st_onnx_export_opts_default(st_onnx_export_opts *o) {
    memset(o, 0, sizeof *o);
    o->fold_bn = 1;
}

static int canon(const ox_ctx *c, int v) {
    while (c->alias[v] >= 0) v = c->alias[v];
    return v;
}

static const char *vname(const ox_ctx *c, int v) { return c->v[canon(c, v)].name; }
static int vrank(const ox_ctx *c, int v) { return c->v[canon(c, v)].rank; }

/* Graph output k: "output", or "output0", "output1", ... when there are several (a
 * detector's three scales). */
static void output_name(const st_graph *g, int k, char *buf, size_t cap) {
    if (g->n_outputs > 1) snprintf(buf, cap, "output%d", k);
    else snprintf(buf, cap, "output");
}

static int output_index(const st_graph *g, int v) {
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] == v) return k;
    return -1;
}

/* Name for the tensor of value v produced by node i: the output name for a graph
 * output, else the node's name (or OpType_i), made unique. */
static char *new_value_name(ox_ctx *c, int i, int v, const char *op_type) {
    int k = output_index(c->g, v);
    if (k >= 0) {
        char on[32];
        output_name(c->g, k, on, sizeof on);
        char *s = strdup(on);
        if (!s) c->b.oom = 1;
        return s;
    }
    char base[ST_NAME_MAX + 32];
    const char *nn = c->g->nodes[i].name;
    if (nn[0]) snprintf(base, sizeof base, "%s", nn);
    else snprintf(base, sizeof base, "%s_%d", op_type, i);
    return ox_unique_name(&c->b, base);
}

/* Unique name "<base>_<suffix>" for a helper tensor or initializer. */
static char *helper_name(ox_ctx *c, const char *base, const char *suffix) {
    size_t n = strlen(base) + strlen(suffix) + 2;
    char *tmp = malloc(n);
    if (!tmp) {
        c->b.oom = 1;
        return NULL;
    }
    snprintf(tmp, n, "%s_%s", base, suffix);
    char *s = ox_unique_name(&c->b, tmp);
    free(tmp);
    return s;
}

/* Value v as a 2-D [N, C] tensor (v must have H = W = 1 unless it is 2-D already). */
static const char *as_flat(ox_ctx *c, int v) {
    ox_val *x = &c->v[canon(c, v)];
    if (x->rank == 2) return x->name;
    if (x->flat) return x->flat;
    x->flat = helper_name(c, x->name, "flat");
    if (!x->flat) return NULL;
    const char *in[1] = {x->name};
    ox_attr_int(&c->b, ox_node(&c->b, "Flatten", x->flat, in, 1, x->flat), "axis", 1);
    return ox_failed(&c->b) ? NULL : x->flat;
}

/* Value v as a 4-D [N, C, H, W] tensor. */
static const char *as_image(ox_ctx *c, int v) {
    ox_val *x = &c->v[canon(c, v)];
    if (x->rank == 4) return x->name;
    if (x->image) return x->image;
    if (!c->shape4d) {
        static const int64_t shape[4] = {0, -1, 1, 1};
        c->shape4d = ox_unique_name(&c->b, "shape_n_c_1_1");
        if (!c->shape4d || ox_init_int64(&c->b, c->shape4d, shape, 4)) return NULL;
    }
    x->image = helper_name(c, x->name, "4d");
    if (!x->image) return NULL;
    const char *in[2] = {x->name, c->shape4d};
    ox_node(&c->b, "Reshape", x->image, in, 2, x->image);
    return ox_failed(&c->b) ? NULL : x->image;
}

/* Initializer holding parameter p as it is (masked entries are exact zeros). */
static int emit_param(ox_ctx *c, int p) {
    const st_param *pp = &c->g->params[p];
    float *d = ox_init_float(&c->b, pp->name, pp->ndim, pp->shape);
    if (!d) return -1;
    const float *s = st_param_data(c->g, p);
    for (size_t j = 0; j < pp->numel; j++) d[j] = s[j] == 0.0f ? 0.0f : s[j];
    return 0;
}

/* A scalar float initializer named "<base>_<suffix>"; returns its name (owned by the
 * caller) or NULL. */
static char *emit_scalar(ox_ctx *c, const char *base, const char *suffix, float v) {
    char *n = helper_name(c, base, suffix);
    float *d = n ? ox_init_float(&c->b, n, 0, NULL) : NULL;
    if (!d) {
        free(n);
        return NULL;
    }
    d[0] = v;
    return n;
}

/* Convolution i, with the BN c->fold[i] folded in if there is one. */
static int emit_conv(ox_ctx *c, int i, char *out) {
    const st_graph *g = c->g;
    const st_node *nd = &g->nodes[i];
    const char *x = as_image(c, nd->inputs[0]);
    if (!x) return -1;
    const st_param *wp = &g->params[nd->params[0]];
    const char *in[3] = {x, wp->name, NULL};
    int n_in = 2;
    char *bias_name = NULL;
    if (c->fold[i] < 0) {
        if (emit_param(c, nd->params[0])) return -1;
        if (nd->params[1] >= 0) {
            if (emit_param(c, nd->params[1])) return -1;
            in[n_in++] = g->params[nd->params[1]].name;
        }
    } else {
        const st_node *bn = &g->nodes[c->fold[i]];
        if (nd->params[1] >= 0) {
            bias_name = strdup(g->params[nd->params[1]].name);
            if (!bias_name) c->b.oom = 1;
        } else {
            /* named after the weight: model.0.conv.weight -> model.0.conv.bias */
            char base[ST_NAME_MAX + 16];
            const char *wn = g->params[nd->params[0]].name;
            size_t wl = strlen(wn);
            if (wl > 7 && !strcmp(wn + wl - 7, ".weight"))
                snprintf(base, sizeof base, "%.*s.bias", (int)(wl - 7), wn);
            else snprintf(base, sizeof base, "%s_bias", wn);
            bias_name = ox_unique_name(&c->b, base);
        }
        int64_t k = nd->a.conv.k;
        float *w = bias_name ? ox_init_float(&c->b, wp->name, 4, wp->shape) : NULL;
        float *bias = w ? ox_init_float(&c->b, bias_name, 1, &k) : NULL;
        if (!bias) {
            free(bias_name);
            return -1;
        }
        const float *w0 = st_param_data(g, nd->params[0]);
        const float *b0 = nd->params[1] >= 0 ? st_param_data(g, nd->params[1]) : NULL;
        const float *gam = st_param_data(g, bn->params[0]), *bet = st_param_data(g, bn->params[1]);
        const float *mean = st_param_data(g, bn->params[2]), *var = st_param_data(g, bn->params[3]);
        size_t per = wp->numel / (size_t)k;
        for (int64_t o = 0; o < k; o++) {
            double s = (double)gam[o] / sqrt((double)var[o] + (double)bn->a.bn.eps);
            for (size_t j = 0; j < per; j++) {
                float wv = w0[o * per + j];
                w[o * per + j] = wv == 0.0f ? 0.0f : (float)(wv * s); /* zeros stay zeros */
            }
            bias[o] = (float)(((b0 ? (double)b0[o] : 0.0) - mean[o]) * s + bet[o]);
        }
        in[n_in++] = bias_name;
    }
    Onnx__NodeProto *n = ox_node(&c->b, "Conv", out, in, n_in, out);
    free(bias_name);
    int64_t ks[2] = {nd->a.conv.r, nd->a.conv.s};
    int64_t st[2] = {nd->a.conv.stride_h, nd->a.conv.stride_w};
    int64_t pads[4] = {nd->a.conv.pad_h, nd->a.conv.pad_w, nd->a.conv.pad_h, nd->a.conv.pad_w};
    int64_t dil[2] = {nd->a.conv.dil_h, nd->a.conv.dil_w};
    ox_attr_ints(&c->b, n, "kernel_shape", ks, 2);
    ox_attr_ints(&c->b, n, "strides", st, 2);
    ox_attr_ints(&c->b, n, "pads", pads, 4);
    ox_attr_ints(&c->b, n, "dilations", dil, 2);
    ox_attr_int(&c->b, n, "group", nd->a.conv.groups);
    return ox_failed(&c->b) ? -1 : 0;
}

static int emit_pool(ox_ctx *c, const st_node *nd, const char *x, const char *out) {
    int avg = nd->op == ST_OP_AVGPOOL;
    Onnx__NodeProto *n = ox_node(&c->b, avg ? "AveragePool" : "MaxPool", out, &x, 1, out);
    int64_t ks[2] = {nd->a.pool.kh, nd->a.pool.kw};
    int64_t st[2] = {nd->a.pool.stride_h, nd->a.pool.stride_w};
    int64_t pads[4] = {nd->a.pool.pad_h, nd->a.pool.pad_w, nd->a.pool.pad_h, nd->a.pool.pad_w};
    ox_attr_ints(&c->b, n, "kernel_shape", ks, 2);
    ox_attr_ints(&c->b, n, "strides", st, 2);
    ox_attr_ints(&c->b, n, "pads", pads, 4);
    ox_attr_int(&c->b, n, "ceil_mode", nd->a.pool.ceil_mode ? 1 : 0);
    if (avg) ox_attr_int(&c->b, n, "count_include_pad", nd->a.pool.count_include_pad ? 1 : 0);
    return ox_failed(&c->b) ? -1 : 0;
}

/* Add / Mul / Concat: operands of mixed rank are all taken 2-D. Sets *rank. */
static int emit_nary(ox_ctx *c, const st_node *nd, const char *op, const char *out, int *rank) {
    const char *in[ST_MAX_INPUTS];
    int flat = 0;
    for (int k = 0; k < nd->n_inputs; k++) flat |= vrank(c, nd->inputs[k]) == 2;
    for (int k = 0; k < nd->n_inputs; k++) {
        in[k] = flat ? as_flat(c, nd->inputs[k]) : vname(c, nd->inputs[k]);
        if (!in[k]) return -1;
    }
    Onnx__NodeProto *n = ox_node(&c->b, op, out, in, nd->n_inputs, out);
    if (nd->op == ST_OP_CONCAT) ox_attr_int(&c->b, n, "axis", 1);
    *rank = flat ? 2 : 4;
    return ox_failed(&c->b) ? -1 : 0;
}

static const char *onnx_op(st_op_type op) {
    switch (op) {
    case ST_OP_CONV2D: return "Conv";
    case ST_OP_BATCHNORM: return "BatchNormalization";
    case ST_OP_RELU: return "Relu";
    case ST_OP_LEAKYRELU: return "LeakyRelu";
    case ST_OP_SILU: return "SiLU";
    case ST_OP_SIGMOID: return "Sigmoid";
    case ST_OP_MAXPOOL: return "MaxPool";
    case ST_OP_AVGPOOL: return "AveragePool";
    case ST_OP_GLOBALAVGPOOL: return "GlobalAveragePool";
    case ST_OP_LINEAR: return "Gemm";
    case ST_OP_ADD: return "Add";
    case ST_OP_MUL: return "Mul";
    case ST_OP_CONCAT: return "Concat";
    case ST_OP_UPSAMPLE: return "Resize";
    case ST_OP_FLATTEN: return "Flatten";
    case ST_OP_DROPOUT: return "Dropout";
    case ST_OP_CLIP: return "Clip";
    case ST_OP_SOFTMAX: return "Softmax";
    default: return NULL;
    }
}

/* Emits node i (anything but the input). */
static st_status emit_node(ox_ctx *c, int i, st_error *err) {
    const st_graph *g = c->g;
    const st_node *nd = &g->nodes[i];
    const char *op = onnx_op(nd->op);
    if (!op)
        return st_errorf(err, ST_ERR_INTERNAL, "ONNX export: node %d has unknown op %d", i,
                         (int)nd->op);
    if (c->folded[i]) return ST_OK; /* its conv already wrote this value */
    if (nd->op == ST_OP_DROPOUT && !c->o->keep_dropout) {
        c->alias[nd->output] = nd->inputs[0];
        return ST_OK;
    }
    int ov = nd->output;
    int src = nd->n_inputs > 0 ? nd->inputs[0] : -1;
    int in_rank = src >= 0 ? vrank(c, src) : 4, rank = in_rank;
    if (nd->op == ST_OP_CONV2D && c->fold[i] >= 0) ov = g->nodes[c->fold[i]].output;
    char *out = new_value_name(c, i, ov, op);
    if (!out) return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");
    c->v[ov].name = out;
    const char *x = src >= 0 ? vname(c, src) : NULL;
    char *aux[2] = {NULL, NULL};
    int rc = 0;
    switch (nd->op) {
    case ST_OP_CONV2D:
        rc = emit_conv(c, i, out);
        rank = 4;
        break;
    case ST_OP_BATCHNORM: {
        const char *in[5] = {x};
        for (int k = 0; k < 4; k++) {
            in[k + 1] = g->params[nd->params[k]].name;
            if (emit_param(c, nd->params[k])) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        }
        Onnx__NodeProto *n = ox_node(&c->b, op, out, in, 5, out);
        ox_attr_float(&c->b, n, "epsilon", nd->a.bn.eps);
        ox_attr_float(&c->b, n, "momentum", 1.0f - nd->a.bn.momentum);
        break;
    }
    case ST_OP_RELU:
    case ST_OP_SIGMOID:
    case ST_OP_FLATTEN:
    case ST_OP_SOFTMAX: {
        Onnx__NodeProto *n = ox_node(&c->b, op, out, &x, 1, out);
        if (nd->op == ST_OP_FLATTEN || nd->op == ST_OP_SOFTMAX) ox_attr_int(&c->b, n, "axis", 1);
        if (nd->op == ST_OP_FLATTEN) rank = 2;
        break;
    }
    case ST_OP_LEAKYRELU:
        ox_attr_float(&c->b, ox_node(&c->b, op, out, &x, 1, out), "alpha", nd->a.slope);
        break;
    case ST_OP_SILU: { /* opset 13 has no SiLU: x * Sigmoid(x) */
        aux[0] = helper_name(c, out, "sigmoid");
        if (!aux[0]) break;
        ox_node(&c->b, "Sigmoid", aux[0], &x, 1, aux[0]);
        const char *in[2] = {x, aux[0]};
        ox_node(&c->b, "Mul", out, in, 2, out);
        break;
    }
    case ST_OP_MAXPOOL:
    case ST_OP_AVGPOOL:
        rc = (x = as_image(c, src)) ? emit_pool(c, nd, x, out) : -1;
        rank = 4;
        break;
    case ST_OP_GLOBALAVGPOOL:
        if ((x = as_image(c, src))) ox_node(&c->b, op, out, &x, 1, out);
        rank = 4;
        break;
    case ST_OP_LINEAR: {
        const char *in[3] = {as_flat(c, src), g->params[nd->params[0]].name, NULL};
        int n_in = 2;
        if (!in[0] || emit_param(c, nd->params[0])) break;
        if (nd->params[1] >= 0) {
            if (emit_param(c, nd->params[1])) break;
            in[n_in++] = g->params[nd->params[1]].name;
        }
        ox_attr_int(&c->b, ox_node(&c->b, op, out, in, n_in, out), "transB", 1);
        rank = 2;
        break;
    }
    case ST_OP_ADD:
    case ST_OP_MUL:
    case ST_OP_CONCAT:
        rc = emit_nary(c, nd, op, out, &rank);
        break;
    case ST_OP_UPSAMPLE: {
        /* Nearest, asymmetric, floor: out[i] = in[floor(i / f)], PyTorch's nearest. */
        int64_t four = 4;
        float *sc = NULL;
        if (!(x = as_image(c, src)) || !(aux[0] = helper_name(c, out, "scales")) ||
            !(sc = ox_init_float(&c->b, aux[0], 1, &four)))
            break;
        sc[0] = sc[1] = 1.0f;
        sc[2] = sc[3] = (float)nd->a.factor;
        const char *in[3] = {x, "", aux[0]};
        Onnx__NodeProto *n = ox_node(&c->b, op, out, in, 3, out);
        ox_attr_string(&c->b, n, "mode", "nearest");
        ox_attr_string(&c->b, n, "coordinate_transformation_mode", "asymmetric");
        ox_attr_string(&c->b, n, "nearest_mode", "floor");
        rank = 4;
        break;
    }
    case ST_OP_DROPOUT: { /* kept: inference-mode Dropout with its ratio */
        if (!(aux[0] = emit_scalar(c, out, "ratio", nd->a.p))) break;
        const char *in[2] = {x, aux[0]};
        ox_node(&c->b, op, out, in, 2, out);
        break;
    }
    case ST_OP_CLIP: {
        if (!(aux[0] = emit_scalar(c, out, "min", nd->a.clip.lo)) ||
            !(aux[1] = emit_scalar(c, out, "max", nd->a.clip.hi)))
            break;
        const char *in[3] = {x, aux[0], aux[1]};
        ox_node(&c->b, op, out, in, 3, out);
        break;
    }
    default: break;
    }
    free(aux[0]);
    free(aux[1]);
    c->v[ov].rank = rank;
    if (rc || ox_failed(&c->b)) return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");
    return ST_OK;
}

/* Plans BN folding: a BN whose input is a conv output read only by that BN. */
static int plan(ox_ctx *c) {
    const st_graph *g = c->g;
    int *producer = malloc((size_t)g->n_values * sizeof *producer); /* value -> node */
    if (!producer) return -1;
    for (int v = 0; v < g->n_values; v++) producer[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_inputs; k++) c->uses[nd->inputs[k]]++;
        producer[nd->output] = i;
        c->fold[i] = -1;
        c->folded[i] = 0;
    }
    for (int k = 0; k < g->n_outputs; k++) c->uses[g->outputs[k]]++;
    for (int i = 0; i < g->n_nodes && c->o->fold_bn; i++) {
        const st_node *nd = &g->nodes[i];
        if (nd->op != ST_OP_BATCHNORM) continue;
        int p = producer[nd->inputs[0]];
        if (p >= 0 && g->nodes[p].op == ST_OP_CONV2D && c->uses[nd->inputs[0]] == 1)
            c->fold[p] = i, c->folded[i] = 1;
    }
    free(producer);
    return 0;
}

/* metadata_props: recipe, per-parameter sparsity (JSON), the caller's extra pairs. */
static st_status emit_metadata(ox_ctx *c, st_error *err) {
    const st_graph *g = c->g;
    const st_onnx_export_opts *o = c->o;
    static const char *const own[2] = {"sparsetrain.recipe", "sparsetrain.sparsity"};
    for (int k = 0; k < o->n_meta; k++) {
        const char *key = o->meta_keys ? o->meta_keys[k] : NULL;
        if (!key || !o->meta_values || !o->meta_values[k])
            return st_errorf(err, ST_ERR_INPUT, "ONNX export: metadata entry %d is NULL", k);
        int dup = !strcmp(key, own[0]) || !strcmp(key, own[1]);
        for (int j = 0; j < k; j++) dup |= !strcmp(key, o->meta_keys[j]);
        if (dup) return st_errorf(err, ST_ERR_INPUT, "ONNX export: duplicate metadata key '%s'", key);
    }
    if (o->recipe) ox_metadata(&c->b, own[0], o->recipe);
    ox_str js = {0};
    ox_str_printf(&js, "{");
    for (int p = 0; p < g->n_params; p++) {
        if (!g->params[p].prunable) continue;
        ox_str_json(&js, g->params[p].name);
        ox_str_printf(&js, ": %.6g, ", st_param_sparsity(g, p));
    }
    ox_str_printf(&js, "\"__all_prunable__\": %.6g}", st_graph_prunable_sparsity(g));
    if (js.oom) c->b.oom = 1;
    else ox_metadata(&c->b, own[1], js.s);
    free(js.s);
    for (int k = 0; k < o->n_meta; k++) ox_metadata(&c->b, o->meta_keys[k], o->meta_values[k]);
    return ox_failed(&c->b) ? st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory") : ST_OK;
}

/* Refuses graphs the file could not represent faithfully. */
static st_status check_graph(const st_graph *g, st_error *err) {
    if (!g || !g->finalized || g->input < 0 || g->output < 0)
        return st_errorf(err, ST_ERR_INPUT, "ONNX export: the graph is not finalized");
    for (int p = 0; p < g->n_params; p++) {
        const st_param *pp = &g->params[p];
        if (!strcmp(pp->name, "input") || !strcmp(pp->name, "output"))
            return st_errorf(err, ST_ERR_INPUT,
                             "ONNX export: parameter name '%s' clashes with the graph input/output",
                             pp->name);
        const unsigned char *m = st_param_mask(g, p);
        const float *d = st_param_data(g, p);
        size_t bad = 0, first = 0;
        for (size_t j = 0; m && j < pp->numel; j++)
            if (!m[j] && d[j] != 0.0f && !bad++) first = j;
        if (bad)
            return st_errorf(err, ST_ERR_INPUT,
                             "ONNX export: %s has %zu pruned (masked) weights that are not 0 "
                             "(first at index %zu: %g); apply the masks before exporting",
                             pp->name, bad, first, (double)d[first]);
    }
    return ST_OK;
}

static st_status build(ox_ctx *c, st_error *err) {
    const st_graph *g = c->g;
    const st_onnx_export_opts *o = c->o;
    if (ox_begin(&c->b, o->producer_version ? o->producer_version : ST_VERSION_STRING,
                 o->graph_name ? o->graph_name : "sparsetrain"))
        return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");
    c->v = calloc((size_t)g->n_values, sizeof *c->v);
    c->alias = malloc((size_t)g->n_values * sizeof *c->alias);
    c->uses = calloc((size_t)g->n_values, sizeof *c->uses);
    c->fold = malloc((size_t)g->n_nodes * sizeof *c->fold);
    c->folded = malloc((size_t)g->n_nodes * sizeof *c->folded);
    if (!c->v || !c->alias || !c->uses || !c->fold || !c->folded)
        return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");
    for (int v = 0; v < g->n_values; v++) c->alias[v] = -1;
    ox_reserve_name(&c->b, "input");
    for (int k = 0; k < g->n_outputs; k++) {
        char on[32];
        output_name(g, k, on, sizeof on);
        ox_reserve_name(&c->b, on);
    }
    ox_reserve_name(&c->b, "detections");
    for (int p = 0; p < g->n_params; p++) ox_reserve_name(&c->b, g->params[p].name);
    if (plan(c) || ox_failed(&c->b)) return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");

    st_shape in = g->values[g->input];
    int64_t in_dims[3] = {in.c, in.h, in.w};
    c->v[g->input].name = strdup("input");
    c->v[g->input].rank = 4;
    if (!c->v[g->input].name || ox_graph_io(&c->b, 0, "input", 3, in_dims))
        return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].op == ST_OP_INPUT) continue;
        st_status s = emit_node(c, i, err);
        if (s != ST_OK) return s;
    }
    if (c->o->yolo_decode) {
        const char *raw[3];
        int hw[3][2];
        for (int k = 0; k < 3; k++) {
            raw[k] = vname(c, g->outputs[k]);
            hw[k][0] = g->values[g->outputs[k]].h, hw[k][1] = g->values[g->outputs[k]].w;
        }
        st_onnx_emit_yolo_decode(&c->b, c->o->yolo_decode, raw, hw);
    } else {
        for (int k = 0; k < g->n_outputs; k++) {
            /* An output tensor renamed away (the input itself, or a dropped Dropout). */
            char on[32];
            output_name(g, k, on, sizeof on);
            const char *last = vname(c, g->outputs[k]);
            if (strcmp(last, on) != 0) ox_node(&c->b, "Identity", on, &last, 1, on);
            st_shape os = g->values[g->outputs[k]];
            int64_t out_dims[3] = {os.c, os.h, os.w};
            ox_graph_io(&c->b, 1, on, vrank(c, g->outputs[k]) == 2 ? 1 : 3, out_dims);
        }
    }
    if (ox_failed(&c->b)) return st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory");
    return emit_metadata(c, err);
}

static void ctx_free(ox_ctx *c) {
    for (int v = 0; c->v && v < c->g->n_values; v++) {
        free(c->v[v].name);
        free(c->v[v].flat);
        free(c->v[v].image);
    }
    free(c->v);
    free(c->alias);
    free(c->uses);
    free(c->fold);
    free(c->folded);
    free(c->shape4d);
    ox_end(&c->b);
}

st_status st_onnx_export_memory(const st_graph *g, const st_onnx_export_opts *o, uint8_t **buf,
                                size_t *len, st_error *err) {
    if (!buf || !len) return st_errorf(err, ST_ERR_INTERNAL, "ONNX export: no output buffer");
    *buf = NULL;
    *len = 0;
    st_onnx_export_opts def;
    if (!o) {
        st_onnx_export_opts_default(&def);
        o = &def;
    }
    st_status s = check_graph(g, err);
    if (s != ST_OK) return s;
    if (o->yolo_decode) {
        int want = 3 * (o->yolo_decode->nc + 5);
        for (int k = 0; k < 3 && g->n_outputs == 3; k++)
            if (g->values[g->outputs[k]].c != want) s = ST_ERR_INPUT;
        if (g->n_outputs != 3 || s != ST_OK)
            return st_errorf(err, ST_ERR_INPUT, "ONNX export: the decode needs a detector's three "
                                                "raw outputs of 3 x (classes + 5) channels");
    }
    ox_ctx c = {.g = g, .o = o};
    s = build(&c, err);
    if (s == ST_OK) {
        size_t n = onnx__model_proto__get_packed_size(c.b.model);
        uint8_t *d = malloc(n ? n : 1);
        if (!d) s = st_errorf(err, ST_ERR_NOMEM, "ONNX export: out of memory (%zu bytes)", n);
        else if (onnx__model_proto__pack(c.b.model, d) != n) {
            free(d);
            s = st_errorf(err, ST_ERR_INTERNAL, "ONNX export: protobuf packing size mismatch");
        } else {
            *buf = d;
            *len = n;
        }
    }
    ctx_free(&c);
    return s;
}
