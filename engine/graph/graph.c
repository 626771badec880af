/* Graph building, parameter registration and arena allocation. */
#include "st_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_rng.h"

static const char *const op_names[ST_OP_COUNT] = {
    "Input", "Conv2d", "BatchNorm2d", "ReLU", "LeakyReLU", "SiLU", "Sigmoid", "MaxPool2d",
    "AvgPool2d", "GlobalAvgPool", "Linear", "Add", "Mul", "Concat", "Upsample", "Flatten",
    "Dropout", "Clip", "Softmax"};

const char *st_op_name(st_op_type op) { return op < ST_OP_COUNT ? op_names[op] : "?"; }

st_graph *st_graph_new(void) {
    st_graph *g = calloc(1, sizeof *g);
    if (g) g->input = g->output = -1;
    return g;
}

void st_graph_free(st_graph *g) {
    if (!g) return;
    free(g->nodes);
    free(g->values);
    free(g->params);
    st_free(g->param_data);
    st_free(g->grad_data);
    st_free(g->mask_data);
    free(g);
}

static int failed(const st_graph *g) { return g->err.code != ST_OK; }

static int fail(st_graph *g, const char *fmt, const char *detail) {
    if (!failed(g)) st_errorf(&g->err, ST_ERR_INPUT, fmt, detail ? detail : "");
    return -1;
}

static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int check_value(st_graph *g, int v) {
    if (failed(g)) return -1;
    if (g->finalized) return fail(g, "graph is finalized; cannot add nodes%s", "");
    if (v < 0 || v >= g->n_values) return fail(g, "invalid value id%s", "");
    return 0;
}

static int new_value(st_graph *g, st_shape s) {
    if (s.c < 1 || s.h < 1 || s.w < 1) return fail(g, "operation gives an empty output%s", "");
    if (grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values))
        return fail(g, "out of memory%s", "");
    g->values[g->n_values] = s;
    return g->n_values++;
}

/* Appends a node producing a value of shape s; returns the node pointer or NULL. */
static st_node *add_node(st_graph *g, st_op_type op, const char *name, const int *in, int n_in,
                         st_shape s) {
    if (failed(g)) return NULL;
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes)) {
        fail(g, "out of memory%s", "");
        return NULL;
    }
    int v = new_value(g, s);
    if (v < 0) return NULL;
    st_node *nd = &g->nodes[g->n_nodes++];
    memset(nd, 0, sizeof *nd);
    nd->op = op;
    snprintf(nd->name, sizeof nd->name, "%s", name ? name : "");
    for (int i = 0; i < n_in; i++) nd->inputs[i] = in[i];
    nd->n_inputs = n_in;
    nd->output = v;
    for (int i = 0; i < 4; i++) nd->params[i] = -1;
    return nd;
}

static int add_param(st_graph *g, const char *module, const char *leaf, int ndim,
                     const int64_t *shape, int group, int prunable, int fan_in) {
    if (failed(g)) return -1;
    char name[ST_NAME_MAX];
    if ((size_t)snprintf(name, sizeof name, "%s.%s", module, leaf) >= sizeof name)
        return fail(g, "parameter name too long: %s", module);
    if (st_graph_find_param(g, name) >= 0) return fail(g, "duplicate parameter name %s", name);
    if (grow((void **)&g->params, &g->cap_params, g->n_params + 1, sizeof *g->params))
        return fail(g, "out of memory%s", "");
    st_param *p = &g->params[g->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->group = group;
    p->prunable = prunable;
    p->fan_in = fan_in;
    return g->n_params++;
}

int st_g_input(st_graph *g, int c, int h, int w) {
    if (failed(g)) return -1;
    if (g->input >= 0) return fail(g, "graph already has an input%s", "");
    st_node *nd = add_node(g, ST_OP_INPUT, "input", NULL, 0, (st_shape){c, h, w});
    if (!nd) return -1;
    g->input = nd->output;
    return nd->output;
}

int st_g_conv2d_ex(st_graph *g, const char *name, int x, int out_c, int kh, int kw,
                   int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w,
                   int groups, int bias) {
    if (check_value(g, x)) return -1;
    st_shape in = g->values[x];
    st_conv2d c = {.N = 1, .C = in.c, .H = in.h, .W = in.w, .K = out_c, .R = kh, .S = kw,
                   .stride_h = stride_h, .stride_w = stride_w, .pad_h = pad_h, .pad_w = pad_w,
                   .dil_h = dil_h, .dil_w = dil_w, .groups = groups};
    if (out_c < 1 || kh < 1 || kw < 1 || groups < 1 || in.c % groups || out_c % groups ||
        st_conv2d_init(&c))
        return fail(g, "invalid convolution shape at %s", name);
    st_node *nd = add_node(g, ST_OP_CONV2D, name, &x, 1, (st_shape){out_c, c.P, c.Q});
    if (!nd) return -1;
    nd->a.conv.k = out_c, nd->a.conv.r = kh, nd->a.conv.s = kw;
    nd->a.conv.stride_h = stride_h, nd->a.conv.stride_w = stride_w;
    nd->a.conv.pad_h = pad_h, nd->a.conv.pad_w = pad_w;
    nd->a.conv.dil_h = dil_h, nd->a.conv.dil_w = dil_w;
    nd->a.conv.groups = groups;
    int fan_in = in.c / groups * kh * kw;
    int64_t ws[4] = {out_c, in.c / groups, kh, kw}, bs[1] = {out_c};
    nd->params[0] = add_param(g, name, "weight", 4, ws, ST_PG_WEIGHT, 1, fan_in);
    nd->params[1] = bias ? add_param(g, name, "bias", 1, bs, ST_PG_BIAS, 0, fan_in) : -1;
    return failed(g) ? -1 : nd->output;
}

int st_g_conv2d(st_graph *g, const char *name, int x, int out_c, int kh, int kw, int stride,
                int pad, int dil, int groups, int bias) {
    return st_g_conv2d_ex(g, name, x, out_c, kh, kw, stride, stride, pad, pad, dil, dil, groups,
                          bias);
}

int st_g_batchnorm(st_graph *g, const char *name, int x, float eps, float momentum) {
    if (check_value(g, x)) return -1;
    st_node *nd = add_node(g, ST_OP_BATCHNORM, name, &x, 1, g->values[x]);
    if (!nd) return -1;
    nd->a.bn.eps = eps;
    nd->a.bn.momentum = momentum;
    int64_t cs[1] = {g->values[x].c};
    nd->params[0] = add_param(g, name, "weight", 1, cs, ST_PG_BN, 0, 0);
    nd->params[1] = add_param(g, name, "bias", 1, cs, ST_PG_BIAS, 0, 0);
    nd->params[2] = add_param(g, name, "running_mean", 1, cs, ST_PG_BUFFER, 0, 0);
    nd->params[3] = add_param(g, name, "running_var", 1, cs, ST_PG_BUFFER, 0, 0);
    return failed(g) ? -1 : nd->output;
}

static int unary(st_graph *g, st_op_type op, int x) {
    if (check_value(g, x)) return -1;
    st_node *nd = add_node(g, op, NULL, &x, 1, g->values[x]);
    return nd ? nd->output : -1;
}

int st_g_relu(st_graph *g, int x) { return unary(g, ST_OP_RELU, x); }
int st_g_silu(st_graph *g, int x) { return unary(g, ST_OP_SILU, x); }
int st_g_sigmoid(st_graph *g, int x) { return unary(g, ST_OP_SIGMOID, x); }

int st_g_leakyrelu(st_graph *g, int x, float slope) {
    int y = unary(g, ST_OP_LEAKYRELU, x);
    if (y >= 0) g->nodes[g->n_nodes - 1].a.slope = slope;
    return y;
}

int st_g_dropout(st_graph *g, int x, float p) {
    if (!(p >= 0.0f && p < 1.0f)) return fail(g, "dropout probability must be in [0, 1)%s", "");
    int y = unary(g, ST_OP_DROPOUT, x);
    if (y >= 0) g->nodes[g->n_nodes - 1].a.p = p;
    return y;
}

int st_g_pool_ex(st_graph *g, st_op_type op, int x, int kh, int kw, int stride_h, int stride_w,
                 int pad_h, int pad_w, int ceil_mode, int cip) {
    if (check_value(g, x)) return -1;
    if (op != ST_OP_MAXPOOL && op != ST_OP_AVGPOOL) return fail(g, "not a pooling op%s", "");
    st_shape in = g->values[x];
    st_pool p = {.N = 1, .C = in.c, .H = in.h, .W = in.w, .kh = kh, .kw = kw,
                 .stride_h = stride_h, .stride_w = stride_w, .pad_h = pad_h, .pad_w = pad_w,
                 .ceil_mode = ceil_mode, .count_include_pad = cip};
    /* PyTorch's rule: padding at most half the kernel, so no window lies in padding only. */
    if (kh < 1 || kw < 1 || stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0 ||
        2 * pad_h > kh || 2 * pad_w > kw || st_pool_init(&p))
        return fail(g, "invalid pooling shape%s", "");
    st_node *nd = add_node(g, op, NULL, &x, 1, (st_shape){in.c, p.P, p.Q});
    if (!nd) return -1;
    nd->a.pool.kh = kh, nd->a.pool.kw = kw;
    nd->a.pool.stride_h = stride_h, nd->a.pool.stride_w = stride_w;
    nd->a.pool.pad_h = pad_h, nd->a.pool.pad_w = pad_w;
    nd->a.pool.ceil_mode = ceil_mode;
    nd->a.pool.count_include_pad = cip;
    return nd->output;
}

int st_g_maxpool(st_graph *g, int x, int k, int stride, int pad, int ceil_mode) {
    return st_g_pool_ex(g, ST_OP_MAXPOOL, x, k, k, stride, stride, pad, pad, ceil_mode, 0);
}

int st_g_avgpool(st_graph *g, int x, int k, int stride, int pad, int ceil_mode, int cip) {
    return st_g_pool_ex(g, ST_OP_AVGPOOL, x, k, k, stride, stride, pad, pad, ceil_mode, cip);
}

int st_g_clip(st_graph *g, int x, float lo, float hi) {
    if (!(lo <= hi)) return fail(g, "clip needs min <= max%s", "");
    int y = unary(g, ST_OP_CLIP, x);
    if (y >= 0) g->nodes[g->n_nodes - 1].a.clip.lo = lo, g->nodes[g->n_nodes - 1].a.clip.hi = hi;
    return y;
}

int st_g_softmax(st_graph *g, int x) { return unary(g, ST_OP_SOFTMAX, x); }

int st_g_global_avgpool(st_graph *g, int x) {
    if (check_value(g, x)) return -1;
    st_node *nd = add_node(g, ST_OP_GLOBALAVGPOOL, NULL, &x, 1, (st_shape){g->values[x].c, 1, 1});
    return nd ? nd->output : -1;
}

int st_g_flatten(st_graph *g, int x) {
    if (check_value(g, x)) return -1;
    st_node *nd =
        add_node(g, ST_OP_FLATTEN, NULL, &x, 1, (st_shape){(int)st_shape_numel(g->values[x]), 1, 1});
    return nd ? nd->output : -1;
}

int st_g_linear(st_graph *g, const char *name, int x, int out_features, int bias) {
    if (check_value(g, x)) return -1;
    st_shape in = g->values[x];
    if (in.h != 1 || in.w != 1) return fail(g, "linear layer %s needs a flattened input", name);
    st_node *nd = add_node(g, ST_OP_LINEAR, name, &x, 1, (st_shape){out_features, 1, 1});
    if (!nd) return -1;
    nd->a.features = out_features;
    int64_t ws[2] = {out_features, in.c}, bs[1] = {out_features};
    nd->params[0] = add_param(g, name, "weight", 2, ws, ST_PG_WEIGHT, 1, in.c);
    nd->params[1] = bias ? add_param(g, name, "bias", 1, bs, ST_PG_BIAS, 0, in.c) : -1;
    return failed(g) ? -1 : nd->output;
}

static int binary(st_graph *g, st_op_type op, int a, int b) {
    if (check_value(g, a) || check_value(g, b)) return -1;
    st_shape sa = g->values[a], sb = g->values[b];
    if (sa.c != sb.c || sa.h != sb.h || sa.w != sb.w)
        return fail(g, "%s of tensors with different shapes", st_op_name(op));
    int in[2] = {a, b};
    st_node *nd = add_node(g, op, NULL, in, 2, sa);
    return nd ? nd->output : -1;
}

int st_g_add(st_graph *g, int a, int b) { return binary(g, ST_OP_ADD, a, b); }
int st_g_mul(st_graph *g, int a, int b) { return binary(g, ST_OP_MUL, a, b); }

int st_g_concat(st_graph *g, const int *xs, int n) {
    if (n < 1 || n > ST_MAX_INPUTS) return fail(g, "concat takes 1 to 8 inputs%s", "");
    int c = 0;
    for (int i = 0; i < n; i++) {
        if (check_value(g, xs[i])) return -1;
        st_shape s = g->values[xs[i]];
        if (s.h != g->values[xs[0]].h || s.w != g->values[xs[0]].w)
            return fail(g, "concat of maps with different sizes%s", "");
        c += s.c;
    }
    st_node *nd = add_node(g, ST_OP_CONCAT, NULL, xs, n,
                           (st_shape){c, g->values[xs[0]].h, g->values[xs[0]].w});
    return nd ? nd->output : -1;
}

int st_g_upsample(st_graph *g, int x, int factor) {
    if (check_value(g, x)) return -1;
    if (factor < 1) return fail(g, "upsample factor must be >= 1%s", "");
    st_shape s = g->values[x];
    st_node *nd = add_node(g, ST_OP_UPSAMPLE, NULL, &x, 1, (st_shape){s.c, s.h * factor, s.w * factor});
    if (!nd) return -1;
    nd->a.factor = factor;
    return nd->output;
}

int st_g_output(st_graph *g, int x) {
    if (check_value(g, x)) return -1;
    if (g->n_outputs == ST_MAX_OUTPUTS) return fail(g, "too many graph outputs%s", "");
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == x) return fail(g, "value marked as an output twice%s", "");
    g->outputs[g->n_outputs++] = x;
    g->output = g->outputs[0];
    return x;
}

int st_graph_find_param(const st_graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0) return i;
    return -1;
}

int st_graph_rename_param(st_graph *g, int p, const char *name) {
    if (failed(g)) return -1;
    if (g->finalized) return fail(g, "graph is finalized; cannot rename parameters%s", "");
    if (p < 0 || p >= g->n_params) return fail(g, "invalid parameter id%s", "");
    if (!name[0] || strlen(name) >= ST_NAME_MAX) return fail(g, "bad parameter name '%s'", name);
    int q = st_graph_find_param(g, name);
    if (q >= 0 && q != p) return fail(g, "duplicate parameter name %s", name);
    snprintf(g->params[p].name, ST_NAME_MAX, "%s", name);
    return 0;
}

/* PyTorch's defaults: uniform +-1/sqrt(fan_in) for conv/linear weights and biases, BN
 * gamma and running variance 1, everything else 0. */
static void init_param(st_graph *g, int i, st_rng *r) {
    st_param *p = &g->params[i];
    float *d = g->param_data + p->offset;
    const char *leaf = strrchr(p->name, '.');
    leaf = leaf ? leaf + 1 : p->name;
    if (p->group == ST_PG_WEIGHT || (p->group == ST_PG_BIAS && p->fan_in > 0)) {
        float bound = 1.0f / sqrtf((float)(p->fan_in > 0 ? p->fan_in : 1));
        for (size_t j = 0; j < p->numel; j++) d[j] = bound * (2.0f * st_rng_uniform(r) - 1.0f);
    } else if (p->group == ST_PG_BN || strcmp(leaf, "running_var") == 0) {
        for (size_t j = 0; j < p->numel; j++) d[j] = 1.0f;
    } else {
        memset(d, 0, p->numel * sizeof(float));
    }
}

st_status st_graph_finalize(st_graph *g, uint64_t seed, st_error *err) {
    if (failed(g)) return st_errorf(err, g->err.code, "%s", g->err.msg);
    if (g->input < 0 || g->output < 0)
        return st_errorf(err, ST_ERR_INTERNAL, "graph needs an input and an output");
    if (g->finalized) return ST_OK;
    size_t off = 0, moff = 0;
    for (int i = 0; i < g->n_params; i++) {
        st_param *p = &g->params[i];
        p->offset = off;
        off += (p->numel + 15) & ~(size_t)15; /* keep every tensor 64-byte aligned */
        if (p->prunable) {
            p->mask_offset = moff;
            moff += (p->numel + 63) & ~(size_t)63;
        }
    }
    g->param_floats = off;
    g->mask_bytes = moff;
    g->param_data = st_calloc(off * sizeof(float));
    g->grad_data = st_calloc(off * sizeof(float));
    g->mask_data = st_alloc(moff ? moff : 1);
    if (!g->param_data || !g->grad_data || !g->mask_data)
        return st_errorf(err, ST_ERR_NOMEM, "out of memory allocating %zu parameters", off);
    memset(g->mask_data, 1, moff ? moff : 1);
    st_rng r;
    st_rng_seed(&r, seed);
    for (int i = 0; i < g->n_params; i++) init_param(g, i, &r);
    g->finalized = 1;
    return ST_OK;
}

void st_graph_init_param(st_graph *g, int p, uint64_t seed) {
    st_rng r;
    st_rng_seed(&r, st_hash64(seed) ^ st_hash64((uint64_t)p + 1));
    init_param(g, p, &r);
    if (g->params[p].prunable) memset(st_param_mask(g, p), 1, g->params[p].numel);
}

void st_graph_zero_grad(st_graph *g) { memset(g->grad_data, 0, g->param_floats * sizeof(float)); }

size_t st_graph_num_trainable(const st_graph *g) {
    size_t n = 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].group != ST_PG_BUFFER) n += g->params[i].numel;
    return n;
}

double st_param_sparsity(const st_graph *g, int p) {
    const float *d = st_param_data(g, p);
    size_t z = 0, n = g->params[p].numel;
    for (size_t i = 0; i < n; i++) z += d[i] == 0.0f;
    return n ? (double)z / (double)n : 0.0;
}

double st_graph_prunable_sparsity(const st_graph *g) {
    size_t z = 0, n = 0;
    for (int i = 0; i < g->n_params; i++) {
        if (!g->params[i].prunable) continue;
        const float *d = st_param_data(g, i);
        for (size_t j = 0; j < g->params[i].numel; j++) z += d[j] == 0.0f;
        n += g->params[i].numel;
    }
    return n ? (double)z / (double)n : 0.0;
}
