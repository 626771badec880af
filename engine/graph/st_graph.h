/* The graph shared by the trainer, the ONNX exporter/importer and the engine.
 *
 * A graph is a list of nodes in topological order (builders append them that way). Each
 * node reads value ids and writes one value. Values have a per-sample shape (C, H, W);
 * the batch dimension is chosen when the graph is planned (st_exec). Parameters carry
 * stable dotted names ("model.3.conv.weight"), a group (0 conv/linear weights, 1 BN
 * weights, 2 biases, -1 buffers such as running statistics), a prunable flag and a mask.
 *
 * Parameters, gradients and masks live in three arenas allocated once by
 * st_graph_finalize; st_param holds offsets into them.
 *
 * Builders use a sticky error: after the first failure every builder call returns -1
 * and st_graph_finalize reports the first message. */
#ifndef ST_GRAPH_H
#define ST_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "st_common.h"
#include "st_ops.h"

typedef enum {
    ST_OP_INPUT = 0,
    ST_OP_CONV2D,
    ST_OP_BATCHNORM,
    ST_OP_RELU,
    ST_OP_LEAKYRELU,
    ST_OP_SILU,
    ST_OP_SIGMOID,
    ST_OP_MAXPOOL,
    ST_OP_AVGPOOL,
    ST_OP_GLOBALAVGPOOL,
    ST_OP_LINEAR,
    ST_OP_ADD,
    ST_OP_MUL,
    ST_OP_CONCAT,
    ST_OP_UPSAMPLE,
    ST_OP_FLATTEN,
    ST_OP_DROPOUT,
    ST_OP_CLIP,    /* min(max(x, lo), hi); ReLU6 is Clip(0, 6) */
    ST_OP_SOFTMAX, /* over channels, per pixel (per sample for flattened values) */
    ST_OP_COUNT
} st_op_type;

enum { ST_PG_BUFFER = -1, ST_PG_WEIGHT = 0, ST_PG_BN = 1, ST_PG_BIAS = 2, ST_NUM_PG = 3 };

#define ST_NAME_MAX 128
#define ST_MAX_INPUTS 8
#define ST_MAX_OUTPUTS 4

typedef struct st_param {
    char name[ST_NAME_MAX];
    int ndim;
    int64_t shape[4];
    size_t numel;
    size_t offset;      /* floats into the param and grad arenas */
    size_t mask_offset; /* bytes into the mask arena (prunable params only) */
    int group;          /* ST_PG_* */
    int prunable;       /* conv and fully connected weights */
    int fan_in;         /* for initialisation */
} st_param;

typedef struct st_shape {
    int c, h, w;
} st_shape;

typedef struct st_node {
    st_op_type op;
    char name[ST_NAME_MAX]; /* module path, e.g. "model.0.conv" */
    int inputs[ST_MAX_INPUTS];
    int n_inputs;
    int output;
    int params[4]; /* conv/linear: weight, bias (-1 if none); bn: gamma, beta, mean, var */
    union {
        struct {
            int k, r, s, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
        } conv;
        struct {
            float eps, momentum;
        } bn;
        struct {
            int kh, kw, stride_h, stride_w, pad_h, pad_w, ceil_mode, count_include_pad;
        } pool;
        struct {
            float lo, hi;
        } clip;
        float slope;  /* leaky relu */
        float p;      /* dropout */
        int factor;   /* upsample */
        int features; /* linear: output features */
    } a;
} st_node;

typedef struct st_graph {
    st_node *nodes;
    int n_nodes, cap_nodes;
    st_shape *values; /* per-sample shape of each value */
    int n_values, cap_values;
    st_param *params;
    int n_params, cap_params;
    int input, output; /* output: the first graph output */
    int outputs[ST_MAX_OUTPUTS]; /* every graph output, in the order they were marked */
    int n_outputs;
    float *param_data; /* [param_floats] */
    float *grad_data;  /* [param_floats] */
    unsigned char *mask_data; /* [mask_bytes]: 1 keep, 0 pruned */
    size_t param_floats, mask_bytes;
    int finalized;
    st_error err; /* sticky builder error */
} st_graph;

st_graph *st_graph_new(void);
void st_graph_free(st_graph *g);

/* Builders: return the output value id, or -1 after an error. `name` is the module path
 * the parameter names are built from (NULL for parameter-free ops). */
int st_g_input(st_graph *g, int c, int h, int w);
int st_g_conv2d(st_graph *g, const char *name, int x, int out_c, int kh, int kw, int stride,
                int pad, int dil, int groups, int bias);
/* Per-axis stride, padding and dilation (ONNX allows them to differ). */
int st_g_conv2d_ex(st_graph *g, const char *name, int x, int out_c, int kh, int kw,
                   int stride_h, int stride_w, int pad_h, int pad_w, int dil_h, int dil_w,
                   int groups, int bias);
int st_g_batchnorm(st_graph *g, const char *name, int x, float eps, float momentum);
int st_g_relu(st_graph *g, int x);
int st_g_leakyrelu(st_graph *g, int x, float slope);
int st_g_silu(st_graph *g, int x);
int st_g_sigmoid(st_graph *g, int x);
int st_g_maxpool(st_graph *g, int x, int k, int stride, int pad, int ceil_mode);
int st_g_avgpool(st_graph *g, int x, int k, int stride, int pad, int ceil_mode,
                 int count_include_pad);
/* op is ST_OP_MAXPOOL or ST_OP_AVGPOOL; per-axis kernel, stride and padding. */
int st_g_pool_ex(st_graph *g, st_op_type op, int x, int kh, int kw, int stride_h, int stride_w,
                 int pad_h, int pad_w, int ceil_mode, int count_include_pad);
int st_g_clip(st_graph *g, int x, float lo, float hi);
int st_g_softmax(st_graph *g, int x);
int st_g_global_avgpool(st_graph *g, int x);
int st_g_linear(st_graph *g, const char *name, int x, int out_features, int bias);
int st_g_add(st_graph *g, int a, int b);
int st_g_mul(st_graph *g, int a, int b);
int st_g_concat(st_graph *g, const int *xs, int n);
int st_g_upsample(st_graph *g, int x, int factor);
int st_g_flatten(st_graph *g, int x);
int st_g_dropout(st_graph *g, int x, float p);
/* Marks a graph output (up to ST_MAX_OUTPUTS, e.g. a detector's three scales); the
 * first one is also g->output. */
int st_g_output(st_graph *g, int x);

/* Allocates the arenas and initialises parameters like PyTorch's defaults (uniform
 * +-1/sqrt(fan_in) for conv/linear weights and biases, BN gamma 1, beta 0, running mean 0,
 * var 1), masks all 1. */
st_status st_graph_finalize(st_graph *g, uint64_t seed, st_error *err);

/* Re-initialises one parameter of a finalized graph as st_graph_finalize does (its own
 * random stream from seed and p) and resets its mask: heads re-created by transfer
 * learning start like a fresh model's. */
void st_graph_init_param(st_graph *g, int p, uint64_t seed);

static inline float *st_param_data(const st_graph *g, int p) {
    return g->param_data + g->params[p].offset;
}
static inline float *st_param_grad(const st_graph *g, int p) {
    return g->grad_data + g->params[p].offset;
}
static inline unsigned char *st_param_mask(const st_graph *g, int p) {
    return g->params[p].prunable ? g->mask_data + g->params[p].mask_offset : NULL;
}
static inline size_t st_shape_numel(st_shape s) { return (size_t)s.c * s.h * s.w; }

int st_graph_find_param(const st_graph *g, const char *name); /* -1 if absent */
/* Renames a parameter before finalize (importers keep the file's names). Sticky error on
 * a duplicate or too long name; returns 0 or -1. */
int st_graph_rename_param(st_graph *g, int p, const char *name);
void st_graph_zero_grad(st_graph *g);
size_t st_graph_num_trainable(const st_graph *g);
/* Fraction of zeros in a param (exact zeros of the weights). */
double st_param_sparsity(const st_graph *g, int p);
/* Over all prunable params. */
double st_graph_prunable_sparsity(const st_graph *g);
const char *st_op_name(st_op_type op);

#endif
