/* Private to engine/onnx: the parsed model and the helpers the reader and the importer
 * share. The protobuf tree stays alive for the model's lifetime; every tensor the
 * importer may need (initializers, Constant nodes' values) is decoded once at read time
 * into host arrays, so import never touches raw payloads or external files. */
#ifndef ST_ONNX_INTERNAL_H
#define ST_ONNX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "st_onnx.h"

/* Size limits: generous for real networks, small enough that a hostile file cannot make
 * us allocate without bound (a tensor's payload must also be present in the file). */
#define ST_ONNX_MAX_FILE ((size_t)2 << 30)     /* protobuf's own 2 GiB limit */
#define ST_ONNX_MAX_NUMEL ((size_t)1 << 30)    /* elements of one tensor */
#define ST_ONNX_MAX_NDIM 8
#define ST_ONNX_MAX_NODES 200000
/* Elements of one activation per sample: keeps every builder's int arithmetic (a
 * concat of 8, an upsampling by 64) far from overflow. */
#define ST_ONNX_MAX_VALUE ((int64_t)1 << 27)

/* One decoded tensor. FLOAT tensors get `f`; integer tensors (INT64, INT32, and the
 * other integer types) get `i`; DOUBLE gets both (f rounded). Other types keep only
 * their dims (dtype tells the importer why it cannot use them). */
typedef struct {
    const char *name; /* points into the protobuf tree */
    int dtype;        /* ONNX__TENSOR_PROTO__DATA_TYPE__* */
    int ndim;
    int64_t dims[ST_ONNX_MAX_NDIM];
    size_t numel;
    float *f;
    int64_t *i;
    int is_init; /* 1 initializer, 0 a Constant node's value */
} st_onnx_tensor;

/* Name -> index map (open addressing; names point into the protobuf tree). */
typedef struct {
    const char **keys;
    int *vals;
    size_t cap, n;
} st_onnx_map;

int st_onnx_map_init(st_onnx_map *m, size_t expected);
void st_onnx_map_free(st_onnx_map *m);
/* 0 ok, -1 out of memory; an existing key keeps its first value. */
int st_onnx_map_put(st_onnx_map *m, const char *key, int val);
int st_onnx_map_get(const st_onnx_map *m, const char *key); /* -1 if absent */

struct st_onnx_model {
    char file[512];          /* for messages */
    Onnx__ModelProto *proto; /* owned (protobuf_c_message_free_unpacked) */
    Onnx__GraphProto *graph; /* proto->graph */
    int64_t opset;           /* ai.onnx version */
    st_onnx_tensor *tensors; /* initializers, then Constant node values */
    int n_tensors;
    st_onnx_map tensor_map;  /* name -> index into tensors */
};

/* The tensor named `name` (initializer or Constant output), NULL if none. */
const st_onnx_tensor *st_onnx_find_tensor(const st_onnx_model *m, const char *name);

/* Attribute helpers; `def` when absent. A NULL or empty string counts as absent. */
const Onnx__AttributeProto *st_onnx_attr(const Onnx__NodeProto *n, const char *name);
int64_t st_onnx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def);
float st_onnx_attr_f(const Onnx__NodeProto *n, const char *name, float def);
/* String attribute into buf (NUL-terminated, truncated), or def. */
const char *st_onnx_attr_s(const Onnx__NodeProto *n, const char *name, const char *def,
                           char *buf, size_t cap);
/* Integer list; returns the count (<= cap copied), or -1 if absent. */
int st_onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int cap);

/* Never NULL: protobuf-c leaves absent strings NULL. */
static inline const char *st_onnx_str(const char *s) { return s ? s : ""; }
/* Name of node i for messages: its name, else "#i". */
const char *st_onnx_node_label(const Onnx__NodeProto *n, int i, char *buf, size_t cap);
const char *st_onnx_dtype_name(int dtype);

/* ---- Importer state (onnx_import.c, onnx_fold.c) ---- */

/* The batch dimension inside folded shape values: symbolic, so any arithmetic on it is
 * refused rather than silently baked in. */
#define ST_ONNX_DIM_BATCH INT64_MIN

enum { ST_IV_NONE = 0, ST_IV_ACT, ST_IV_CONST };

/* What an ONNX value name stands for during import. */
typedef struct {
    int kind;
    /* ST_IV_ACT: a graph value; rank 4 is [N, C, H, W], rank 2 is [N, F] stored (F, 1, 1) */
    int vid, rank;
    /* ST_IV_CONST: host values, floats or int64 (not both) */
    int ndim;
    int64_t dims[ST_ONNX_MAX_NDIM];
    size_t n;
    const float *f;
    const int64_t *i;
    const char *pname; /* parameter name when used as a weight (the tensor's own name) */
    /* consumers: node inputs reading it plus graph outputs */
    int uses;
    int user; /* the last node reading it */
} st_onnx_ival;

typedef struct {
    int param;
    const float *src;
    size_t n;
} st_onnx_load;

typedef struct {
    const st_onnx_model *m;
    const st_onnx_import_opts *opts;
    st_graph *g;
    st_error *err;
    st_onnx_map names; /* value name -> index into vals */
    st_onnx_ival *vals;
    int n_vals, cap_vals;
    void **owned; /* buffers freed after import */
    int n_owned, cap_owned;
    st_onnx_load *loads;
    int n_loads, cap_loads;
    int tmp_names;
    /* the node being imported, for messages */
    const Onnx__NodeProto *node;
    char label[160];
} st_onnx_imp;

/* Error naming the file and the current node. */
st_status st_onnx_node_err(st_onnx_imp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The value of input k of the current node; NULL (with the error set) if absent. */
st_onnx_ival *st_onnx_in(st_onnx_imp *c, int k);
/* 1 if input k is present (an omitted optional input is the empty name). */
int st_onnx_has_in(const st_onnx_imp *c, int k);
/* Sets output k of the current node. */
st_status st_onnx_set_out(st_onnx_imp *c, int k, const st_onnx_ival *v);
/* A malloc'ed buffer owned by the import, NULL (error set) when out of memory. */
void *st_onnx_own(st_onnx_imp *c, size_t bytes);

/* The value named `name`, NULL if unknown. */
st_onnx_ival *st_onnx_val(const st_onnx_imp *c, const char *name);
/* Input k as an activation / as a float constant of n values (n < 0: any); NULL with
 * the error set otherwise. */
st_onnx_ival *st_onnx_act_in(st_onnx_imp *c, int k);
st_onnx_ival *st_onnx_weight_in(st_onnx_imp *c, int k, const char *what, long long n);
/* Output k is graph value vid (vid < 0: a builder failed; reported after the node). */
st_status st_onnx_set_act(st_onnx_imp *c, int k, int vid, int rank);
/* Parameter `slot` of the last built node takes w's name and values (or `data`). */
void st_onnx_bind(st_onnx_imp *c, int slot, const st_onnx_ival *w, const float *data);
/* A unique placeholder module name for a builder. */
const char *st_onnx_tmp_name(st_onnx_imp *c, char *buf, size_t cap);

/* Layer ops (onnx_layers.c) on the current node; `add` is a fused bias Add or NULL. */
st_status st_onnx_imp_conv(st_onnx_imp *c);
st_status st_onnx_imp_bn(st_onnx_imp *c);
st_status st_onnx_imp_gemm(st_onnx_imp *c);
st_status st_onnx_imp_matmul(st_onnx_imp *c, const Onnx__NodeProto *add);
st_status st_onnx_imp_pool(st_onnx_imp *c, int is_max);
st_status st_onnx_imp_resize(st_onnx_imp *c, int is_resize);

/* Constant folding of shape arithmetic (onnx_fold.c): Shape, Gather, Unsqueeze,
 * Squeeze, Cast, Concat of constants, Constant. Returns ST_OK and sets the outputs, or
 * an error. */
st_status st_onnx_fold(st_onnx_imp *c, const char *op);
/* Reshape target of the current node (input 1) decided against the activation x:
 * sets *flatten 1 for [N, F] targets, 0 when the target keeps x's shape. */
st_status st_onnx_reshape_kind(st_onnx_imp *c, const st_onnx_ival *x, int *flatten);

#endif
