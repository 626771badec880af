/* See st_onnx_build.h. An arena of malloc'ed blocks owns every string, struct and
 * array; arrays grow by copying (the models are tiny). */
#include "st_onnx_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stb {
    void **blocks;
    size_t n_blocks, cap_blocks;
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
};

void *stb_alloc(stb *b, size_t bytes) {
    if (b->n_blocks == b->cap_blocks) {
        b->cap_blocks = b->cap_blocks ? 2 * b->cap_blocks : 64;
        b->blocks = realloc(b->blocks, b->cap_blocks * sizeof *b->blocks);
        if (!b->blocks) abort();
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) abort();
    b->blocks[b->n_blocks++] = p;
    return p;
}

char *stb_str(stb *b, const char *s) {
    char *p = stb_alloc(b, strlen(s) + 1);
    memcpy(p, s, strlen(s) + 1);
    return p;
}

/* Appends item to an array of pointers (elem bytes each). */
static void push(stb *b, void **arr, size_t *n, const void *item, size_t elem) {
    char *q = stb_alloc(b, (*n + 1) * elem);
    if (*n) memcpy(q, *arr, *n * elem);
    memcpy(q + *n * elem, item, elem);
    *arr = q;
    (*n)++;
}
#define PUSH(b, arr, n, item) push((b), (void **)&(arr), &(n), &(item), sizeof(item))

stb *stb_new(int64_t opset) {
    stb *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->model = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
    b->graph = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
    b->opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
    b->opset.domain = stb_str(b, "");
    b->opset.has_version = 1;
    b->opset.version = opset;
    b->opsets[0] = &b->opset;
    b->model.has_ir_version = 1;
    b->model.ir_version = 7;
    b->model.producer_name = stb_str(b, "st_onnx_build");
    b->model.producer_version = stb_str(b, "1");
    b->model.n_opset_import = 1;
    b->model.opset_import = b->opsets;
    b->model.graph = &b->graph;
    b->graph.name = stb_str(b, "test");
    return b;
}

void stb_free(stb *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n_blocks; i++) free(b->blocks[i]);
    free(b->blocks);
    free(b);
}

Onnx__ModelProto *stb_model(stb *b) { return &b->model; }

static Onnx__ValueInfoProto *value_info(stb *b, const char *name, int ndim, const int64_t *dims) {
    Onnx__ValueInfoProto *v = stb_alloc(b, sizeof *v);
    *v = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    v->name = stb_str(b, name);
    Onnx__TypeProto *t = stb_alloc(b, sizeof *t);
    *t = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor *tt = stb_alloc(b, sizeof *tt);
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->type = t;
    if (ndim < 0) return v;
    Onnx__TensorShapeProto *s = stb_alloc(b, sizeof *s);
    *s = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = stb_alloc(b, sizeof *d);
        *d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = stb_str(b, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        PUSH(b, s->dim, s->n_dim, d);
    }
    tt->shape = s;
    return v;
}

void stb_input(stb *b, const char *name, int ndim, const int64_t *dims) {
    Onnx__ValueInfoProto *v = value_info(b, name, ndim, dims);
    PUSH(b, b->graph.input, b->graph.n_input, v);
}

void stb_output(stb *b, const char *name) {
    Onnx__ValueInfoProto *v = value_info(b, name, -1, NULL);
    PUSH(b, b->graph.output, b->graph.n_output, v);
}

static Onnx__TensorProto *tensor(stb *b, const char *name, int ndim, const int64_t *dims,
                                 const void *data, int dtype, size_t esize) {
    Onnx__TensorProto *t = stb_alloc(b, sizeof *t);
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    t->name = stb_str(b, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = (size_t)ndim;
    t->dims = stb_alloc(b, (size_t)(ndim ? ndim : 1) * sizeof(int64_t));
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    if (data) {
        t->has_raw_data = 1;
        t->raw_data.len = n * esize;
        t->raw_data.data = stb_alloc(b, n * esize);
        memcpy(t->raw_data.data, data, n * esize);
    }
    return t;
}

Onnx__TensorProto *stb_tensor(stb *b, const char *name, int ndim, const int64_t *dims, const float *data) {
    return tensor(b, name, ndim, dims, data, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4);
}

Onnx__TensorProto *stb_tensor_i64(stb *b, const char *name, int ndim, const int64_t *dims,
                                  const int64_t *data) {
    return tensor(b, name, ndim, dims, data, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 8);
}

Onnx__TensorProto *stb_init(stb *b, const char *name, int ndim, const int64_t *dims, const float *data) {
    Onnx__TensorProto *t = stb_tensor(b, name, ndim, dims, data);
    PUSH(b, b->graph.initializer, b->graph.n_initializer, t);
    return t;
}

Onnx__TensorProto *stb_init_i64(stb *b, const char *name, int ndim, const int64_t *dims,
                                const int64_t *data) {
    Onnx__TensorProto *t = stb_tensor_i64(b, name, ndim, dims, data);
    PUSH(b, b->graph.initializer, b->graph.n_initializer, t);
    return t;
}

/* Splits "a,b,,c" into owned strings (empty entries kept). */
static void split(stb *b, const char *s, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!s || !*s) return;
    const char *p = s;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *piece = stb_alloc(b, len + 1);
        memcpy(piece, p, len);
        PUSH(b, *out, *n, piece);
        if (!e) break;
        p = e + 1;
    }
}

Onnx__NodeProto *stb_node(stb *b, const char *op, const char *name, const char *ins, const char *outs) {
    Onnx__NodeProto *n = stb_alloc(b, sizeof *n);
    *n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    n->op_type = stb_str(b, op);
    if (name) n->name = stb_str(b, name);
    split(b, ins, &n->input, &n->n_input);
    split(b, outs, &n->output, &n->n_output);
    PUSH(b, b->graph.node, b->graph.n_node, n);
    return n;
}

static Onnx__AttributeProto *attr(stb *b, Onnx__NodeProto *n, const char *name, int type) {
    Onnx__AttributeProto *a = stb_alloc(b, sizeof *a);
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = stb_str(b, name);
    a->has_type = 1;
    a->type = type;
    PUSH(b, n->attribute, n->n_attribute, a);
    return a;
}

void stb_attr_i(stb *b, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void stb_attr_f(stb *b, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

void stb_attr_s(stb *b, Onnx__NodeProto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)stb_str(b, v);
}

void stb_attr_ints(stb *b, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v) {
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)cnt;
    a->ints = stb_alloc(b, (size_t)(cnt ? cnt : 1) * sizeof(int64_t));
    if (cnt) memcpy(a->ints, v, (size_t)cnt * sizeof(int64_t));
}

void stb_attr_floats(stb *b, Onnx__NodeProto *n, const char *name, int cnt, const float *v) {
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = (size_t)cnt;
    a->floats = stb_alloc(b, (size_t)(cnt ? cnt : 1) * sizeof(float));
    if (cnt) memcpy(a->floats, v, (size_t)cnt * sizeof(float));
}

void stb_attr_t(stb *b, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t) {
    Onnx__AttributeProto *a = attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = t;
}

void stb_meta(stb *b, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = stb_alloc(b, sizeof *e);
    *e = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    e->key = stb_str(b, key);
    e->value = stb_str(b, value);
    PUSH(b, b->model.metadata_props, b->model.n_metadata_props, e);
}

uint8_t *stb_pack(stb *b, size_t *len) {
    *len = onnx__model_proto__get_packed_size(&b->model);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf) abort();
    onnx__model_proto__pack(&b->model, buf);
    return buf;
}

int stb_save(stb *b, const char *path) {
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f) ok = fclose(f) == 0 && ok;
    free(buf);
    stb_free(b);
    return ok ? 0 : -1;
}
