/* ONNX exporter: protobuf-c building blocks (nodes, attributes, initializers, graph
 * inputs/outputs, metadata) and a growing string for the metadata JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_export_internal.h"

/* Allocation helpers: on failure they set the sticky flag and return NULL. */
static void *ox_calloc(ox_builder *b, size_t n, size_t size) {
    if (b->oom) return NULL;
    void *p = calloc(n ? n : 1, size);
    if (!p) b->oom = 1;
    return p;
}

static char *ox_strdup(ox_builder *b, const char *s) {
    if (b->oom) return NULL;
    char *d = strdup(s ? s : "");
    if (!d) b->oom = 1;
    return d;
}

/* Makes room for one more pointer in *arr (count *n, capacity *cap). */
static int ox_grow(ox_builder *b, void ***arr, size_t n, size_t *cap) {
    if (b->oom) return -1;
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void **q = realloc(*arr, nc * sizeof *q);
    if (!q) {
        b->oom = 1;
        return -1;
    }
    *arr = q;
    *cap = nc;
    return 0;
}

int ox_begin(ox_builder *b, const char *producer_version, const char *graph_name) {
    memset(b, 0, sizeof *b);
    Onnx__ModelProto *m = ox_calloc(b, 1, sizeof *m);
    Onnx__GraphProto *g = ox_calloc(b, 1, sizeof *g);
    Onnx__OperatorSetIdProto *op = ox_calloc(b, 1, sizeof *op);
    Onnx__OperatorSetIdProto **ops = ox_calloc(b, 1, sizeof *ops);
    if (b->oom) {
        free(m), free(g), free(op), free(ops);
        return -1;
    }
    onnx__model_proto__init(m);
    onnx__graph_proto__init(g);
    onnx__operator_set_id_proto__init(op);
    b->model = m;
    m->graph = g;
    b->graph = g;
    op->domain = ox_strdup(b, "");
    op->has_version = 1;
    op->version = OX_OPSET;
    ops[0] = op;
    m->opset_import = ops;
    m->n_opset_import = 1;
    m->has_ir_version = 1;
    m->ir_version = OX_IR_VERSION;
    m->producer_name = ox_strdup(b, "sparsetrain");
    m->producer_version = ox_strdup(b, producer_version);
    g->name = ox_strdup(b, graph_name);
    return b->oom ? -1 : 0;
}

void ox_end(ox_builder *b) {
    if (b->model) protobuf_c_message_free_unpacked(&b->model->base, NULL);
    for (size_t i = 0; i < b->n_names; i++) free(b->names[i]);
    free(b->names);
    memset(b, 0, sizeof *b);
}

int ox_name_taken(const ox_builder *b, const char *name) {
    for (size_t i = 0; i < b->n_names; i++)
        if (strcmp(b->names[i], name) == 0) return 1;
    return 0;
}

int ox_reserve_name(ox_builder *b, const char *name) {
    if (ox_name_taken(b, name)) return 0;
    if (ox_grow(b, (void ***)&b->names, b->n_names, &b->cap_names)) return -1;
    char *d = ox_strdup(b, name);
    if (!d) return -1;
    b->names[b->n_names++] = d;
    return 0;
}

char *ox_unique_name(ox_builder *b, const char *base) {
    if (b->oom) return NULL;
    size_t cap = strlen(base) + 24;
    char *s = ox_calloc(b, cap, 1);
    if (!s) return NULL;
    snprintf(s, cap, "%s", base);
    for (int k = 2; ox_name_taken(b, s); k++) snprintf(s, cap, "%s_%d", base, k);
    if (ox_reserve_name(b, s)) {
        free(s);
        return NULL;
    }
    return s;
}

Onnx__NodeProto *ox_node(ox_builder *b, const char *op_type, const char *name,
                         const char *const *inputs, int n_inputs, const char *output) {
    Onnx__GraphProto *g = b->graph;
    if (ox_grow(b, (void ***)&g->node, g->n_node, &b->cap_node)) return NULL;
    Onnx__NodeProto *n = ox_calloc(b, 1, sizeof *n);
    if (!n) return NULL;
    onnx__node_proto__init(n);
    g->node[g->n_node++] = n; /* owned by the graph from here on, even if filling fails */
    n->op_type = ox_strdup(b, op_type);
    n->name = ox_strdup(b, name);
    n->domain = ox_strdup(b, "");
    n->input = ox_calloc(b, (size_t)n_inputs, sizeof *n->input);
    n->output = ox_calloc(b, 1, sizeof *n->output);
    if (b->oom) return NULL;
    for (int i = 0; i < n_inputs; i++) {
        n->input[i] = ox_strdup(b, inputs[i]);
        if (!n->input[i]) return NULL;
        n->n_input++;
    }
    n->output[0] = ox_strdup(b, output);
    if (!n->output[0]) return NULL;
    n->n_output = 1;
    return n;
}

/* Appends an attribute of `type` to node n; the caller fills the value. */
static Onnx__AttributeProto *ox_attr(ox_builder *b, Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type) {
    if (!n || b->oom) return NULL;
    /* The attribute array grows one at a time (a node has a handful). */
    Onnx__AttributeProto **arr = realloc(n->attribute, (n->n_attribute + 1) * sizeof *arr);
    if (!arr) {
        b->oom = 1;
        return NULL;
    }
    n->attribute = arr;
    Onnx__AttributeProto *a = ox_calloc(b, 1, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    n->attribute[n->n_attribute++] = a;
    a->name = ox_strdup(b, name);
    a->has_type = 1;
    a->type = type;
    return b->oom ? NULL : a;
}

void ox_attr_int(ox_builder *b, Onnx__NodeProto *n, const char *name, int64_t v) {
    Onnx__AttributeProto *a = ox_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = 1, a->i = v;
}

void ox_attr_float(ox_builder *b, Onnx__NodeProto *n, const char *name, float v) {
    Onnx__AttributeProto *a = ox_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = 1, a->f = v;
}

void ox_attr_string(ox_builder *b, Onnx__NodeProto *n, const char *name, const char *v) {
    Onnx__AttributeProto *a = ox_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (!a) return;
    char *d = ox_strdup(b, v);
    if (!d) return;
    a->has_s = 1;
    a->s.data = (uint8_t *)d;
    a->s.len = strlen(d);
}

void ox_attr_ints(ox_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v,
                  int count) {
    Onnx__AttributeProto *a = ox_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    if (!a) return;
    a->ints = ox_calloc(b, (size_t)count, sizeof *a->ints);
    if (!a->ints) return;
    memcpy(a->ints, v, (size_t)count * sizeof *v);
    a->n_ints = (size_t)count;
}

static Onnx__TensorProto *ox_init(ox_builder *b, const char *name, int data_type, int ndim,
                                  const int64_t *dims, size_t elem) {
    Onnx__GraphProto *g = b->graph;
    if (ox_grow(b, (void ***)&g->initializer, g->n_initializer, &b->cap_init)) return NULL;
    Onnx__TensorProto *t = ox_calloc(b, 1, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    g->initializer[g->n_initializer++] = t;
    t->name = ox_strdup(b, name);
    t->has_data_type = 1;
    t->data_type = data_type;
    size_t numel = 1;
    if (ndim > 0) {
        t->dims = ox_calloc(b, (size_t)ndim, sizeof *t->dims);
        if (!t->dims) return NULL;
        for (int i = 0; i < ndim; i++) numel *= (size_t)(t->dims[i] = dims[i]);
        t->n_dims = (size_t)ndim;
    }
    t->raw_data.data = ox_calloc(b, numel, elem);
    if (!t->raw_data.data) return NULL;
    t->raw_data.len = numel * elem;
    t->has_raw_data = 1;
    return b->oom ? NULL : t;
}

/* raw_data is little-endian by definition; every target we build for is. */
float *ox_init_float(ox_builder *b, const char *name, int ndim, const int64_t *dims) {
    Onnx__TensorProto *t =
        ox_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndim, dims, sizeof(float));
    return t ? (float *)t->raw_data.data : NULL;
}

int ox_init_int64(ox_builder *b, const char *name, const int64_t *v, int count) {
    int64_t d = count;
    Onnx__TensorProto *t =
        ox_init(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &d, sizeof(int64_t));
    if (!t) return -1;
    memcpy(t->raw_data.data, v, (size_t)count * sizeof *v);
    return 0;
}

int ox_graph_io(ox_builder *b, int is_output, const char *name, int ndim, const int64_t *dims) {
    Onnx__GraphProto *g = b->graph;
    Onnx__ValueInfoProto *vi = ox_calloc(b, 1, sizeof *vi);
    Onnx__TypeProto *tp = ox_calloc(b, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ox_calloc(b, 1, sizeof *tt);
    Onnx__TensorShapeProto *sh = ox_calloc(b, 1, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = ox_calloc(b, (size_t)ndim + 1, sizeof *dv);
    Onnx__ValueInfoProto **arr =
        b->oom ? NULL : realloc(is_output ? g->output : g->input,
                                ((is_output ? g->n_output : g->n_input) + 1) * sizeof *arr);
    if (!arr) {
        b->oom = 1;
        free(vi), free(tp), free(tt), free(sh), free(dv);
        return -1;
    }
    if (is_output) g->output = arr, g->output[g->n_output++] = vi;
    else g->input = arr, g->input[g->n_input++] = vi;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    sh->dim = dv;
    vi->name = ox_strdup(b, name);
    for (int i = 0; i <= ndim && !b->oom; i++) {
        Onnx__TensorShapeProto__Dimension *d = ox_calloc(b, 1, sizeof *d);
        if (!d) break;
        onnx__tensor_shape_proto__dimension__init(d);
        sh->dim[sh->n_dim++] = d;
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = ox_strdup(b, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i - 1];
        }
    }
    return b->oom ? -1 : 0;
}

int ox_metadata(ox_builder *b, const char *key, const char *value) {
    Onnx__ModelProto *m = b->model;
    if (ox_grow(b, (void ***)&m->metadata_props, m->n_metadata_props, &b->cap_meta)) return -1;
    Onnx__StringStringEntryProto *e = ox_calloc(b, 1, sizeof *e);
    if (!e) return -1;
    onnx__string_string_entry_proto__init(e);
    m->metadata_props[m->n_metadata_props++] = e;
    e->key = ox_strdup(b, key);
    e->value = ox_strdup(b, value);
    return b->oom ? -1 : 0;
}

void ox_str_printf(ox_str *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = s->cap - s->len;
        int n = vsnprintf(s->s ? s->s + s->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = 1;
            return;
        }
        if ((size_t)n < room) {
            s->len += (size_t)n;
            return;
        }
        size_t nc = (s->cap ? s->cap * 2 : 256) + (size_t)n;
        char *q = realloc(s->s, nc);
        if (!q) {
            s->oom = 1;
            return;
        }
        s->s = q;
        s->cap = nc;
    }
}

void ox_str_json(ox_str *s, const char *v) {
    ox_str_printf(s, "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') ox_str_printf(s, "\\%c", *p);
        else if (*p < 0x20) ox_str_printf(s, "\\u%04x", *p);
        else ox_str_printf(s, "%c", *p);
    }
    ox_str_printf(s, "\"");
}
