/* ONNX model -> st_graph (see st_onnx.h). One pass over the topologically ordered
 * nodes: layer ops become graph nodes whose parameters are the initializers (renamed to
 * the initializers' names, values copied after finalize); shape arithmetic is folded
 * (onnx_fold.c); two patterns are fused: x * Sigmoid(x) -> SiLU, and MatMul followed by
 * the Add of a 1-D bias -> one linear layer. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

static const char *const supported_ops[] = {
    "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Mul", "Add", "Concat",
    "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm", "MatMul", "Flatten", "Reshape",
    "Resize", "Upsample", "Identity", "Dropout", "Clip", "Softmax", "Constant", "Shape",
    "Gather", "Unsqueeze", "Squeeze", "Cast", "Pad", NULL};

enum { FUSE_NONE = 0, FUSE_SKIP, FUSE_SILU, FUSE_BIAS };

st_status st_onnx_node_err(st_onnx_imp *c, const char *fmt, ...) {
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_errorf(c->err, ST_ERR_INPUT, "%s: node '%s' (%s): %s", c->m->file, c->label,
                     c->node ? st_onnx_str(c->node->op_type) : "?", msg);
}

void *st_onnx_own(st_onnx_imp *c, size_t bytes) {
    if (c->n_owned == c->cap_owned) {
        int nc = c->cap_owned ? 2 * c->cap_owned : 64;
        void **q = realloc(c->owned, (size_t)nc * sizeof *q);
        if (!q) return st_errorf(c->err, ST_ERR_NOMEM, "%s: out of memory", c->m->file), NULL;
        c->owned = q;
        c->cap_owned = nc;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return st_errorf(c->err, ST_ERR_NOMEM, "%s: out of memory", c->m->file), NULL;
    c->owned[c->n_owned++] = p;
    return p;
}

/* Index of a value name, created (ST_IV_NONE) if new; -1 when out of memory. */
static int val_index(st_onnx_imp *c, const char *name) {
    int i = st_onnx_map_get(&c->names, name);
    if (i >= 0) return i;
    if (c->n_vals == c->cap_vals) {
        int nc = c->cap_vals ? 2 * c->cap_vals : 256;
        st_onnx_ival *q = realloc(c->vals, (size_t)nc * sizeof *q);
        if (!q) return -1;
        c->vals = q;
        c->cap_vals = nc;
    }
    memset(&c->vals[c->n_vals], 0, sizeof *c->vals);
    c->vals[c->n_vals].user = -1;
    if (st_onnx_map_put(&c->names, name, c->n_vals)) return -1;
    return c->n_vals++;
}

st_onnx_ival *st_onnx_val(const st_onnx_imp *c, const char *name) {
    int i = st_onnx_map_get(&c->names, name);
    return i >= 0 ? &c->vals[i] : NULL;
}

int st_onnx_has_in(const st_onnx_imp *c, int k) {
    return k < (int)c->node->n_input && *st_onnx_str(c->node->input[k]);
}

st_onnx_ival *st_onnx_in(st_onnx_imp *c, int k) {
    if (!st_onnx_has_in(c, k)) {
        st_onnx_node_err(c, "input %d is missing", k);
        return NULL;
    }
    st_onnx_ival *v = st_onnx_val(c, c->node->input[k]);
    if (!v || v->kind == ST_IV_NONE) {
        st_onnx_node_err(c, "input '%s' has no value (produced by an unused output?)", c->node->input[k]);
        return NULL;
    }
    return v;
}

st_status st_onnx_set_out(st_onnx_imp *c, int k, const st_onnx_ival *v) {
    if (k >= (int)c->node->n_output || !*st_onnx_str(c->node->output[k])) return ST_OK;
    st_onnx_ival *o = st_onnx_val(c, c->node->output[k]);
    if (!o) return st_onnx_node_err(c, "internal: output not registered");
    int uses = o->uses, user = o->user;
    const char *pname = o->pname;
    *o = *v;
    o->uses = uses, o->user = user;
    if (!o->pname || v->kind != ST_IV_CONST) o->pname = pname;
    return ST_OK;
}

st_onnx_ival *st_onnx_act_in(st_onnx_imp *c, int k) {
    st_onnx_ival *v = st_onnx_in(c, k);
    if (v && v->kind != ST_IV_ACT) {
        st_onnx_node_err(c, "input '%s' must be computed from the image input, not a constant",
                         c->node->input[k]);
        return NULL;
    }
    return v;
}

/* A float constant with `n` elements (n < 0: any) and at most max_ndim dimensions. */
st_onnx_ival *st_onnx_weight_in(st_onnx_imp *c, int k, const char *what, long long n) {
    st_onnx_ival *v = st_onnx_in(c, k);
    if (!v) return NULL;
    if (v->kind != ST_IV_CONST || !v->f) {
        st_onnx_node_err(c, "%s '%s' must be a float initializer", what, c->node->input[k]);
        return NULL;
    }
    if (n >= 0 && v->n != (size_t)n) {
        st_onnx_node_err(c, "%s '%s' has %zu values, expected %lld", what, c->node->input[k], v->n, n);
        return NULL;
    }
    return v;
}

st_status st_onnx_set_act(st_onnx_imp *c, int k, int vid, int rank) {
    if (vid < 0) return ST_OK; /* the builder's sticky error is reported after the node */
    st_onnx_ival v = {.kind = ST_IV_ACT, .vid = vid, .rank = rank};
    return st_onnx_set_out(c, k, &v);
}

/* Parameter p of the last node takes the name and the values of `w` (or of `data`). */
void st_onnx_bind(st_onnx_imp *c, int slot, const st_onnx_ival *w, const float *data) {
    if (c->g->err.code || c->err->code) return;
    int p = c->g->nodes[c->g->n_nodes - 1].params[slot];
    if (p < 0) return;
    char own[200], alt[240];
    if (!w->pname) snprintf(own, sizeof own, "%.159s.param%d", c->label, slot); /* computed weight */
    const char *name = w->pname ? w->pname : own;
    /* Exporters deduplicate equal initializers (PyTorch shares, e.g., all-zero biases of
     * the same length); our parameters cannot be shared, so later users get a copy
     * under a derived name and train independently, as they did in the source model. */
    for (int k = 1; st_graph_find_param(c->g, name) >= 0; k++) {
        snprintf(alt, sizeof alt, "%.200s.shared%d", w->pname ? w->pname : own, k);
        name = alt;
    }
    if (st_graph_rename_param(c->g, p, name)) return;
    if (slot == 0) { /* the node (module) takes its weight's name: conv1.weight -> conv1 */
        st_node *nd = &c->g->nodes[c->g->n_nodes - 1];
        size_t l = strlen(name);
        if (l > 7 && !strcmp(name + l - 7, ".weight")) snprintf(nd->name, sizeof nd->name, "%.*s", (int)(l - 7), name);
        else snprintf(nd->name, sizeof nd->name, "%.*s", (int)sizeof nd->name - 1, name); /* truncates */
    }
    if (c->n_loads == c->cap_loads) {
        int nc = c->cap_loads ? 2 * c->cap_loads : 64;
        st_onnx_load *q = realloc(c->loads, (size_t)nc * sizeof *q);
        if (!q) {
            st_errorf(c->err, ST_ERR_NOMEM, "%s: out of memory", c->m->file);
            return;
        }
        c->loads = q;
        c->cap_loads = nc;
    }
    c->loads[c->n_loads++] = (st_onnx_load){p, data ? data : w->f, c->g->params[p].numel};
}

const char *st_onnx_tmp_name(st_onnx_imp *c, char *buf, size_t cap) {
    /* Replaced by the initializers' names right after; only needs to be unique. */
    snprintf(buf, cap, "\x01onnx%d", c->tmp_names++);
    return buf;
}

/* Reads an optional float scalar input k; returns 1 if present, -1 on error. */
static int scalar_in(st_onnx_imp *c, int k, float *v) {
    if (!st_onnx_has_in(c, k)) return 0;
    st_onnx_ival *s = st_onnx_weight_in(c, k, "scalar", 1);
    if (!s) return -1;
    *v = s->f[0];
    return 1;
}

static st_status imp_layer(st_onnx_imp *c, const char *op, int fuse) {
    st_graph *g = c->g;
    if (!strcmp(op, "Conv")) return st_onnx_imp_conv(c);
    if (!strcmp(op, "BatchNormalization")) return st_onnx_imp_bn(c);
    if (!strcmp(op, "Gemm")) return st_onnx_imp_gemm(c);
    if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool")) return st_onnx_imp_pool(c, op[1] == 'a');
    if (!strcmp(op, "Resize") || !strcmp(op, "Upsample")) return st_onnx_imp_resize(c, op[0] == 'R');
    if (!strcmp(op, "Constant")) return st_onnx_fold(c, op);
    if (!strcmp(op, "Shape") || !strcmp(op, "Gather") || !strcmp(op, "Unsqueeze") ||
        !strcmp(op, "Squeeze"))
        return st_onnx_fold(c, op);
    if (!strcmp(op, "Cast")) return st_onnx_fold(c, op);
    if (!strcmp(op, "Identity")) {
        st_onnx_ival *x = st_onnx_in(c, 0);
        return x ? st_onnx_set_out(c, 0, x) : c->err->code;
    }
    if (!strcmp(op, "Concat")) {
        int all_const = 1;
        for (int k = 0; k < (int)c->node->n_input; k++) {
            st_onnx_ival *v = st_onnx_in(c, k);
            if (!v) return c->err->code;
            all_const &= v->kind == ST_IV_CONST;
        }
        if (all_const) return st_onnx_fold(c, op);
        int ids[ST_MAX_INPUTS], n = (int)c->node->n_input, rank = 0;
        if (n > ST_MAX_INPUTS) return st_onnx_node_err(c, "at most %d inputs are supported", ST_MAX_INPUTS);
        for (int k = 0; k < n; k++) {
            st_onnx_ival *v = st_onnx_act_in(c, k);
            if (!v) return c->err->code;
            if (k && v->rank != rank) return st_onnx_node_err(c, "inputs of different ranks");
            rank = v->rank;
            ids[k] = v->vid;
        }
        int64_t total = 0;
        for (int k = 0; k < n; k++) total += (int64_t)st_shape_numel(g->values[ids[k]]);
        if (total > ST_ONNX_MAX_VALUE) return st_onnx_node_err(c, "output too large");
        int64_t axis = st_onnx_attr_i(c->node, "axis", 1);
        if (axis < 0) axis += rank;
        if (axis != 1) return st_onnx_node_err(c, "only axis 1 (channels) is supported");
        return st_onnx_set_act(c, 0, st_g_concat(g, ids, n), rank);
    }

    if (fuse == FUSE_SILU) {
        /* x * Sigmoid(x): x is the input that is not the (skipped) sigmoid's output */
        int sig = st_onnx_val(c, st_onnx_str(c->node->input[0]))->user == -2 ? 0 : 1;
        st_onnx_ival *x = st_onnx_act_in(c, 1 - sig);
        return x ? st_onnx_set_act(c, 0, st_g_silu(g, x->vid), x->rank) : c->err->code;
    }
    /* The rest take one activation first (Add/Mul check their own operands). */
    int binary = !strcmp(op, "Add") || !strcmp(op, "Mul");
    st_onnx_ival *x = binary ? st_onnx_in(c, 0) : st_onnx_act_in(c, 0);
    if (!x) return c->err->code;
    if (!strcmp(op, "Relu")) return st_onnx_set_act(c, 0, st_g_relu(g, x->vid), x->rank);
    if (!strcmp(op, "Sigmoid")) return st_onnx_set_act(c, 0, st_g_sigmoid(g, x->vid), x->rank);
    if (!strcmp(op, "LeakyRelu"))
        return st_onnx_set_act(c, 0, st_g_leakyrelu(g, x->vid, st_onnx_attr_f(c->node, "alpha", 0.01f)), x->rank);
    if (!strcmp(op, "GlobalAveragePool")) {
        if (x->rank != 4) return st_onnx_node_err(c, "needs [N, C, H, W]");
        return st_onnx_set_act(c, 0, st_g_global_avgpool(g, x->vid), 4);
    }
    if (!strcmp(op, "Add") || !strcmp(op, "Mul")) {
        st_onnx_ival *b = st_onnx_in(c, 1);
        if (!b) return c->err->code;
        if (b->kind != ST_IV_ACT || x->kind != ST_IV_ACT)
            return st_onnx_node_err(c, "%s with a constant operand is not supported (only a bias "
                                    "right after a MatMul)", op);
        if (b->rank != x->rank) return st_onnx_node_err(c, "operands of different ranks");
        int y = op[0] == 'A' ? st_g_add(g, x->vid, b->vid) : st_g_mul(g, x->vid, b->vid);
        return st_onnx_set_act(c, 0, y, x->rank);
    }
    if (!strcmp(op, "MatMul")) return st_onnx_imp_matmul(c, NULL);
    if (!strcmp(op, "Flatten")) {
        if (st_onnx_attr_i(c->node, "axis", 1) != 1) return st_onnx_node_err(c, "only axis 1 is supported");
        st_shape s = g->values[x->vid];
        /* [N, C, 1, 1] is already laid out as [N, C]: no copy needed */
        if (x->rank == 2 || (s.h == 1 && s.w == 1)) return st_onnx_set_act(c, 0, x->vid, 2);
        return st_onnx_set_act(c, 0, st_g_flatten(g, x->vid), 2);
    }
    if (!strcmp(op, "Reshape")) {
        int flatten;
        if (st_onnx_reshape_kind(c, x, &flatten)) return c->err->code;
        if (!flatten) return st_onnx_set_out(c, 0, x);
        st_shape s = g->values[x->vid];
        if (x->rank == 2 || (s.h == 1 && s.w == 1)) return st_onnx_set_act(c, 0, x->vid, 2);
        return st_onnx_set_act(c, 0, st_g_flatten(g, x->vid), 2);
    }
    if (!strcmp(op, "Pad")) {
        /* PyTorch emits an all-zero Pad before average pooling; only that is supported */
        char buf[32];
        const char *mode = st_onnx_attr_s(c->node, "mode", "constant", buf, sizeof buf);
        int64_t pads[2 * ST_ONNX_MAX_NDIM];
        int np = 0;
        if (c->m->opset < 11) {
            np = st_onnx_attr_ints(c->node, "pads", pads, 2 * ST_ONNX_MAX_NDIM);
        } else {
            st_onnx_ival *p = st_onnx_in(c, 1);
            if (!p) return c->err->code;
            if (p->kind != ST_IV_CONST || !p->i || p->n > 2 * ST_ONNX_MAX_NDIM)
                return st_onnx_node_err(c, "pads must be a constant int64 list");
            np = (int)p->n;
            memcpy(pads, p->i, p->n * sizeof(int64_t));
        }
        for (int k = 0; k < np && k < 2 * ST_ONNX_MAX_NDIM; k++)
            if (pads[k] != 0)
                return st_onnx_node_err(c, "Pad (mode %s) with non-zero pads is not supported; "
                                        "only the no-op Pad exporters put before pooling", mode);
        return st_onnx_set_out(c, 0, x);
    }
    if (!strcmp(op, "Dropout")) {
        float p = st_onnx_attr_f(c->node, "ratio", 0.5f);
        if (c->m->opset >= 12 && scalar_in(c, 1, &p) < 0) return c->err->code;
        if (c->node->n_output > 1) {
            st_onnx_ival *v = st_onnx_val(c, st_onnx_str(c->node->output[1]));
            if (v && v->uses) return st_onnx_node_err(c, "the mask output is not supported");
        }
        if (!(p >= 0.0f && p < 1.0f)) return st_onnx_node_err(c, "ratio %g is not in [0, 1)", p);
        return st_onnx_set_act(c, 0, st_g_dropout(g, x->vid, p), x->rank);
    }
    if (!strcmp(op, "Clip")) {
        float lo = -INFINITY, hi = INFINITY;
        if (c->m->opset < 11) {
            lo = st_onnx_attr_f(c->node, "min", lo);
            hi = st_onnx_attr_f(c->node, "max", hi);
        } else if (scalar_in(c, 1, &lo) < 0 || scalar_in(c, 2, &hi) < 0) {
            return c->err->code;
        }
        if (!(lo <= hi)) return st_onnx_node_err(c, "min %g > max %g", lo, hi);
        return st_onnx_set_act(c, 0, st_g_clip(g, x->vid, lo, hi), x->rank);
    }
    if (!strcmp(op, "Softmax")) {
        int64_t axis = st_onnx_attr_i(c->node, "axis", c->m->opset >= 13 ? -1 : 1);
        st_shape s = g->values[x->vid];
        int flat = x->rank == 2 || (s.h == 1 && s.w == 1);
        int ok = x->rank == 2 ? (axis == 1 || axis == -1)
               : c->m->opset >= 13 ? (axis == 1 || axis == -3 || (flat && axis == -1))
                                   : (flat && (axis == 1 || axis == -3));
        if (!ok) return st_onnx_node_err(c, "softmax over axis %lld of a rank-%d value is not supported "
                                         "(only over channels)", (long long)axis, x->rank);
        st_onnx_ival *o = st_onnx_val(c, st_onnx_str(c->node->output[0]));
        if (c->opts && c->opts->strip_softmax && o && o->user == -3) return st_onnx_set_out(c, 0, x);
        return st_onnx_set_act(c, 0, st_g_softmax(g, x->vid), x->rank);
    }
    return st_onnx_node_err(c, "internal: unhandled operator");
}

/* Lists every unsupported operator with its nodes, in one message (cut short with
 * "..." when it would not fit). */
static st_status check_ops(const st_onnx_model *m, st_error *err) {
    const Onnx__GraphProto *g = m->graph;
    char msg[800] = "";
    int bad = 0, full = 0, n_keys = 0;
    char *keys[64]; /* the map keeps pointers to its keys */
    st_onnx_map seen;
    if (st_onnx_map_init(&seen, 16)) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
    for (size_t i = 0; i < g->n_node && !full; i++) {
        const Onnx__NodeProto *n = g->node[i];
        const char *d = st_onnx_str(n->domain), *op = st_onnx_str(n->op_type);
        int std = !*d || !strcmp(d, "ai.onnx"), ok = 0;
        for (int k = 0; std && supported_ops[k] && !ok; k++) ok = !strcmp(op, supported_ops[k]);
        if (ok) continue;
        char key[300];
        snprintf(key, sizeof key, "%.140s|%.140s", d, op);
        if (st_onnx_map_get(&seen, key) >= 0) continue;
        if (n_keys == 64) {
            full = 1;
            break;
        }
        if (!(keys[n_keys] = strdup(key)) || st_onnx_map_put(&seen, keys[n_keys], 1)) break;
        n_keys++;
        size_t l = strlen(msg);
        snprintf(msg + l, sizeof msg - l, "%s%s%s%s (", bad ? ", " : "", std ? "" : d, std ? "" : ".", op);
        int listed = 0;
        for (size_t j = i; j < g->n_node; j++) {
            if (strcmp(st_onnx_str(g->node[j]->op_type), op) || strcmp(st_onnx_str(g->node[j]->domain), d)) continue;
            char lb[160];
            l = strlen(msg);
            if (l > sizeof msg - 200) {
                full = 1;
                break;
            }
            snprintf(msg + l, sizeof msg - l, "%s%s", listed++ ? ", " : "",
                     st_onnx_node_label(g->node[j], (int)j, lb, sizeof lb));
        }
        l = strlen(msg);
        snprintf(msg + l, sizeof msg - l, full ? ", ...)" : ")");
        bad++;
    }
    st_onnx_map_free(&seen);
    for (int k = 0; k < n_keys; k++) free(keys[k]);
    if (bad) return st_errorf(err, ST_ERR_INPUT, "%s: unsupported operators: %s", m->file, msg);
    return ST_OK;
}

/* The image input: [N, C, H, W] or [N, F], static except the batch. */
static st_status make_input(st_onnx_imp *c, int *vid, int *rank, const char **name) {
    const Onnx__GraphProto *gp = c->m->graph;
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < gp->n_input; i++) {
        if (st_onnx_find_tensor(c->m, st_onnx_str(gp->input[i]->name))) continue;
        if (in) return st_errorf(c->err, ST_ERR_INPUT, "%s: more than one graph input ('%s', '%s'); "
                                 "only one image input is supported", c->m->file, st_onnx_str(in->name),
                                 st_onnx_str(gp->input[i]->name));
        in = gp->input[i];
    }
    if (!in) return st_errorf(c->err, ST_ERR_INPUT, "%s: the graph has no input", c->m->file);
    *name = st_onnx_str(in->name);
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type ||
        t->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || !t->tensor_type->shape)
        return st_errorf(c->err, ST_ERR_INPUT, "%s: input '%s' must be a float tensor with a known shape",
                         c->m->file, *name);
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    int64_t d[4] = {0, 1, 1, 1};
    if (s->n_dim != 4 && s->n_dim != 2)
        return st_errorf(c->err, ST_ERR_INPUT, "%s: input '%s' has %zu dimensions; expected [N, C, H, W] "
                         "or [N, F]", c->m->file, *name, s->n_dim);
    for (size_t k = 1; k < s->n_dim; k++) {
        if (s->dim[k]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
            s->dim[k]->dim_value < 1 || s->dim[k]->dim_value > 1 << 20)
            return st_errorf(c->err, ST_ERR_INPUT, "%s: input '%s' dimension %zu must be a fixed "
                             "positive size (only the batch may be symbolic)", c->m->file, *name, k);
        d[k] = s->dim[k]->dim_value;
    }
    if (d[1] * d[2] * d[3] > ST_ONNX_MAX_VALUE)
        return st_errorf(c->err, ST_ERR_INPUT, "%s: input '%s' is too large (%lld values per sample)",
                         c->m->file, *name, (long long)(d[1] * d[2] * d[3]));
    *rank = (int)s->n_dim;
    *vid = st_g_input(c->g, (int)d[1], (int)d[2], (int)d[3]);
    if (*vid < 0) return st_errorf(c->err, ST_ERR_INPUT, "%s: input '%s': %s", c->m->file, *name, c->g->err.msg);
    return ST_OK;
}

/* Counts consumers and marks the fusions; fuse[i] per node. */
static st_status plan(st_onnx_imp *c, int *fuse) {
    const Onnx__GraphProto *gp = c->m->graph;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        for (size_t k = 0; k < n->n_input; k++) {
            if (!*st_onnx_str(n->input[k])) continue;
            st_onnx_ival *v = st_onnx_val(c, n->input[k]);
            if (v) v->uses++, v->user = (int)i;
        }
        for (size_t k = 0; k < n->n_output; k++)
            if (val_index(c, st_onnx_str(n->output[k])) < 0)
                return st_errorf(c->err, ST_ERR_NOMEM, "%s: out of memory", c->m->file);
    }
    for (size_t k = 0; k < gp->n_output; k++) {
        st_onnx_ival *out = st_onnx_val(c, st_onnx_str(gp->output[k]->name));
        if (!out) return st_errorf(c->err, ST_ERR_INPUT, "%s: graph output has no producer", c->m->file);
        out->uses++;
        out->user = -3; /* marks a graph output (see Softmax) */
    }
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        const char *op = st_onnx_str(n->op_type);
        if ((strcmp(op, "Sigmoid") && strcmp(op, "MatMul")) || n->n_output < 1 || n->n_input < 1) continue;
        st_onnx_ival *y = st_onnx_val(c, st_onnx_str(n->output[0]));
        if (!y || y->uses != 1 || y->user < 0) continue;
        const Onnx__NodeProto *u = gp->node[y->user];
        if (u->n_input != 2 || u->n_output < 1) continue;
        int yi = strcmp(st_onnx_str(u->input[0]), st_onnx_str(n->output[0])) == 0 ? 0 : 1;
        const char *other = st_onnx_str(u->input[1 - yi]);
        if (!strcmp(op, "Sigmoid") && !strcmp(st_onnx_str(u->op_type), "Mul") &&
            !strcmp(other, st_onnx_str(n->input[0]))) {
            fuse[i] = FUSE_SKIP;
            fuse[y->user] = FUSE_SILU;
            y->user = -2; /* tells the Mul which input is the sigmoid's */
        } else if (!strcmp(op, "MatMul") && !strcmp(st_onnx_str(u->op_type), "Add")) {
            const st_onnx_ival *b = st_onnx_val(c, other);
            if (b && b->kind == ST_IV_CONST && b->f && b->ndim <= 2 && n->n_input >= 2) {
                const st_onnx_ival *w = st_onnx_val(c, st_onnx_str(n->input[1]));
                if (w && w->kind == ST_IV_CONST && w->ndim == 2 && b->n == (size_t)w->dims[1] &&
                    b->dims[b->ndim ? b->ndim - 1 : 0] == w->dims[1]) {
                    fuse[i] = FUSE_BIAS;
                    fuse[y->user] = FUSE_SKIP;
                }
            }
        }
    }
    return ST_OK;
}

st_status st_onnx_import(const st_onnx_model *m, const st_onnx_import_opts *opts,
                         st_graph **out, st_error *err) {
    *out = NULL;
    st_status s = check_ops(m, err);
    if (s) return s;
    const Onnx__GraphProto *gp = m->graph;
    if (gp->n_output < 1 || gp->n_output > ST_MAX_OUTPUTS)
        return st_errorf(err, ST_ERR_INPUT, "%s: the graph has %zu outputs; 1 to %d are supported",
                         m->file, gp->n_output, ST_MAX_OUTPUTS);
    st_onnx_imp c = {.m = m, .opts = opts, .err = err};
    int *fuse = calloc(gp->n_node + 1, sizeof *fuse);
    c.g = st_graph_new();
    if (!fuse || !c.g || st_onnx_map_init(&c.names, (size_t)m->n_tensors + 2 * gp->n_node + 4)) {
        s = st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
        goto done;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const st_onnx_tensor *t = &m->tensors[i];
        int k = val_index(&c, t->name);
        if (k < 0) goto oom;
        st_onnx_ival *v = &c.vals[k];
        v->kind = ST_IV_CONST;
        v->ndim = t->ndim;
        memcpy(v->dims, t->dims, sizeof v->dims);
        v->n = t->numel;
        v->f = t->f;
        v->i = t->f ? NULL : t->i; /* DOUBLE tensors have both; floats win */
        v->pname = t->name;
    }
    int in_vid = -1, in_rank = 4;
    const char *in_name = "";
    if ((s = make_input(&c, &in_vid, &in_rank, &in_name))) goto done;
    int k = val_index(&c, in_name);
    if (k < 0) goto oom;
    c.vals[k] = (st_onnx_ival){.kind = ST_IV_ACT, .vid = in_vid, .rank = in_rank, .user = -1};
    if ((s = plan(&c, fuse))) goto done;

    for (size_t i = 0; i < gp->n_node; i++) {
        c.node = gp->node[i];
        st_onnx_node_label(c.node, (int)i, c.label, sizeof c.label);
        if (fuse[i] == FUSE_SKIP) continue;
        const char *op = st_onnx_str(c.node->op_type);
        if (fuse[i] == FUSE_BIAS) s = st_onnx_imp_matmul(&c, gp->node[c.vals[st_onnx_map_get(&c.names,
                                         c.node->output[0])].user]);
        else s = imp_layer(&c, op, fuse[i]);
        if (s) goto done;
        if (c.g->err.code != ST_OK) {
            s = st_onnx_node_err(&c, "%s", c.g->err.msg);
            goto done;
        }
        if ((int64_t)st_shape_numel(c.g->values[c.g->n_values - 1]) > ST_ONNX_MAX_VALUE) {
            s = st_onnx_node_err(&c, "output too large (%zu values per sample)",
                                 st_shape_numel(c.g->values[c.g->n_values - 1]));
            goto done;
        }
    }
    c.node = NULL;
    for (size_t k = 0; k < gp->n_output; k++) {
        st_onnx_ival *o = st_onnx_val(&c, st_onnx_str(gp->output[k]->name));
        if (!o || o->kind != ST_IV_ACT) {
            s = st_errorf(err, ST_ERR_INPUT, "%s: graph output '%s' does not depend on the input",
                          m->file, st_onnx_str(gp->output[k]->name));
            goto done;
        }
        st_g_output(c.g, o->vid);
    }
    if ((s = st_graph_finalize(c.g, opts ? opts->seed : 0, err))) {
        if (s == ST_ERR_INPUT || s == ST_ERR_INTERNAL) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            s = st_errorf(err, ST_ERR_INPUT, "%s: %s", m->file, msg);
        }
        goto done;
    }
    for (int i = 0; i < c.n_loads; i++)
        memcpy(st_param_data(c.g, c.loads[i].param), c.loads[i].src, c.loads[i].n * sizeof(float));
    *out = c.g;
    c.g = NULL;
    goto done;
oom:
    s = st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
done:
    st_graph_free(c.g);
    for (int i = 0; i < c.n_owned; i++) free(c.owned[i]);
    free(c.owned);
    free(c.loads);
    free(c.vals);
    st_onnx_map_free(&c.names);
    free(fuse);
    return s;
}
