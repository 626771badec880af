/* Small shared pieces of the ONNX reader and importer: the name map, attribute access,
 * metadata and the human-readable summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int st_onnx_map_init(st_onnx_map *m, size_t expected) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < 2 * expected + 2) cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    return m->keys && m->vals ? 0 : -1;
}

void st_onnx_map_free(st_onnx_map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int map_grow(st_onnx_map *m) {
    st_onnx_map n;
    if (st_onnx_map_init(&n, m->cap)) {
        st_onnx_map_free(&n);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) st_onnx_map_put(&n, m->keys[i], m->vals[i]);
    st_onnx_map_free(m);
    *m = n;
    return 0;
}

int st_onnx_map_put(st_onnx_map *m, const char *key, int val) {
    if (!m->keys) return -1;
    if (2 * (m->n + 1) > m->cap && map_grow(m)) return -1;
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0) return 0;
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return 0;
}

int st_onnx_map_get(const st_onnx_map *m, const char *key) {
    if (!m->keys || !key) return -1;
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], key) == 0) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return -1;
}

const Onnx__AttributeProto *st_onnx_attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (strcmp(st_onnx_str(n->attribute[i]->name), name) == 0) return n->attribute[i];
    return NULL;
}

int64_t st_onnx_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = st_onnx_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float st_onnx_attr_f(const Onnx__NodeProto *n, const char *name, float def) {
    const Onnx__AttributeProto *a = st_onnx_attr(n, name);
    return a && a->has_f ? a->f : def;
}

const char *st_onnx_attr_s(const Onnx__NodeProto *n, const char *name, const char *def,
                           char *buf, size_t cap) {
    const Onnx__AttributeProto *a = st_onnx_attr(n, name);
    if (!a || !a->has_s) return def;
    size_t len = a->s.len < cap - 1 ? a->s.len : cap - 1;
    if (len) memcpy(buf, a->s.data, len);
    buf[len] = 0;
    return buf;
}

int st_onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int cap) {
    const Onnx__AttributeProto *a = st_onnx_attr(n, name);
    if (!a) return -1;
    for (size_t i = 0; i < a->n_ints && (int)i < cap; i++) out[i] = a->ints[i];
    return a->n_ints > (size_t)1 << 20 ? (1 << 20) : (int)a->n_ints;
}

const char *st_onnx_node_label(const Onnx__NodeProto *n, int i, char *buf, size_t cap) {
    if (n->name && *n->name) snprintf(buf, cap, "%s", n->name);
    else snprintf(buf, cap, "#%d", i);
    return buf;
}

const char *st_onnx_dtype_name(int dtype) {
    static const char *const names[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16",
                                        "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16",
                                        "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128",
                                        "BFLOAT16"};
    return dtype >= 0 && dtype < (int)(sizeof names / sizeof names[0]) ? names[dtype] : "unknown";
}

const char *st_onnx_metadata(const st_onnx_model *m, const char *key) {
    for (size_t i = 0; i < m->proto->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = m->proto->metadata_props[i];
        if (strcmp(st_onnx_str(e->key), key) == 0) return st_onnx_str(e->value);
    }
    return NULL;
}

static void print_value_info(const Onnx__ValueInfoProto *v, FILE *f) {
    fprintf(f, "  %s", st_onnx_str(v->name));
    const Onnx__TypeProto *t = v->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type) {
        fprintf(f, " (not a tensor)\n");
        return;
    }
    fprintf(f, ": %s [", st_onnx_dtype_name(t->tensor_type->elem_type));
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    for (size_t d = 0; s && d < s->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = s->dim[d];
        if (d) fprintf(f, ", ");
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            fprintf(f, "%lld", (long long)dm->dim_value);
        else if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
            fprintf(f, "%s", st_onnx_str(dm->dim_param));
        else
            fprintf(f, "?");
    }
    fprintf(f, "]\n");
}

void st_onnx_print_info(const st_onnx_model *m, FILE *f) {
    const Onnx__ModelProto *p = m->proto;
    const Onnx__GraphProto *g = m->graph;
    fprintf(f, "%s\n", m->file);
    fprintf(f, "producer: %s %s\n", st_onnx_str(p->producer_name), st_onnx_str(p->producer_version));
    fprintf(f, "IR version %lld, opset", (long long)p->ir_version);
    for (size_t i = 0; i < p->n_opset_import; i++) {
        const char *d = st_onnx_str(p->opset_import[i]->domain);
        fprintf(f, " %s %lld", *d ? d : "ai.onnx", (long long)p->opset_import[i]->version);
    }
    fprintf(f, "\ninputs:\n");
    for (size_t i = 0; i < g->n_input; i++)
        if (!st_onnx_find_tensor(m, st_onnx_str(g->input[i]->name))) print_value_info(g->input[i], f);
    fprintf(f, "outputs:\n");
    for (size_t i = 0; i < g->n_output; i++) print_value_info(g->output[i], f);

    /* Op counts in order of first appearance (a map: files can have many nodes). */
    fprintf(f, "operators (%zu nodes):\n", g->n_node);
    st_onnx_map ops;
    int *count = calloc(g->n_node + 1, sizeof *count);
    const char **type = calloc(g->n_node + 1, sizeof *type);
    if (count && type && st_onnx_map_init(&ops, 64) == 0) {
        int n_types = 0;
        for (size_t i = 0; i < g->n_node; i++) {
            const char *op = st_onnx_str(g->node[i]->op_type);
            int k = st_onnx_map_get(&ops, op);
            if (k < 0) {
                if (st_onnx_map_put(&ops, op, n_types)) break;
                type[n_types] = op;
                k = n_types++;
            }
            count[k]++;
        }
        for (int k = 0; k < n_types; k++) fprintf(f, "  %-22s %d\n", type[k], count[k]);
        st_onnx_map_free(&ops);
    }
    free(count);
    free(type);
    size_t params = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].is_init && m->tensors[i].f) params += m->tensors[i].numel;
    fprintf(f, "parameters: %zu (float initializers)\n", params);

    /* Sparsity of the weights of conv / fully connected nodes: what pruning left. */
    int header = 0;
    size_t zeros = 0, total = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        const char *op = st_onnx_str(n->op_type);
        if (strcmp(op, "Conv") && strcmp(op, "Gemm") && strcmp(op, "MatMul")) continue;
        if (n->n_input < 2) continue;
        const st_onnx_tensor *t = st_onnx_find_tensor(m, st_onnx_str(n->input[1]));
        if (!t || !t->f || !t->numel) continue;
        size_t z = 0;
        for (size_t k = 0; k < t->numel; k++) z += t->f[k] == 0.0f;
        if (!header) fprintf(f, "weight sparsity:\n");
        header = 1;
        fprintf(f, "  %-40s %-7s %9zu  %6.2f%%\n", t->name, op, t->numel, 100.0 * (double)z / (double)t->numel);
        zeros += z;
        total += t->numel;
    }
    if (total) fprintf(f, "  %-40s %-7s %9zu  %6.2f%%\n", "(all)", "", total, 100.0 * (double)zeros / (double)total);
    for (size_t i = 0; i < p->n_metadata_props; i++) {
        if (!i) fprintf(f, "metadata:\n");
        fprintf(f, "  %s: %s\n", st_onnx_str(p->metadata_props[i]->key),
                st_onnx_str(p->metadata_props[i]->value));
    }
}
