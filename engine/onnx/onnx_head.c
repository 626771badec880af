/* The output layers of an ONNX model, for transfer learning: a model trained on one set
 * of classes gets its head re-sized for another before import. Only the decoded
 * initializers change (the importer reads those); the protobuf tree is left alone. */
#include <stdlib.h>
#include <string.h>

#include "onnx_internal.h"

int st_onnx_num_outputs(const st_onnx_model *m) { return (int)m->graph->n_output; }

static const Onnx__NodeProto *producer(const st_onnx_model *m, const char *value) {
    const Onnx__GraphProto *gp = m->graph;
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t o = 0; o < gp->node[i]->n_output; o++)
            if (!strcmp(st_onnx_str(gp->node[i]->output[o]), value)) return gp->node[i];
    return NULL;
}

static st_onnx_tensor *init_tensor(const st_onnx_model *m, const char *name) {
    int k = st_onnx_map_get(&m->tensor_map, name);
    if (k < 0 || !m->tensors[k].is_init || !m->tensors[k].f) return NULL;
    return &m->tensors[k];
}

/* Walks from graph output k back through layers that keep the feature count (Softmax,
 * Identity, Flatten, Dropout) to the Conv, Gemm or MatMul(+Add) that decides it. */
st_status st_onnx_head_find(const st_onnx_model *m, int k, st_onnx_head *h, st_error *err) {
    memset(h, 0, sizeof *h);
    if (k < 0 || k >= (int)m->graph->n_output)
        return st_errorf(err, ST_ERR_INTERNAL, "%s: no graph output %d", m->file, k);
    const char *v = st_onnx_str(m->graph->output[k]->name);
    const Onnx__NodeProto *bias_add = NULL;
    for (int depth = 0; depth < 16; depth++) {
        const Onnx__NodeProto *n = producer(m, v);
        if (!n || n->n_input < 1) break;
        const char *op = st_onnx_str(n->op_type);
        if (!strcmp(op, "Softmax") || !strcmp(op, "Identity") || !strcmp(op, "Flatten") ||
            !strcmp(op, "Dropout")) {
            v = st_onnx_str(n->input[0]);
            continue;
        }
        if (!strcmp(op, "Add") && !bias_add && n->n_input == 2) { /* MatMul + Add */
            int c = init_tensor(m, st_onnx_str(n->input[1])) ? 1 : 0;
            bias_add = n;
            v = st_onnx_str(n->input[1 - c]);
            continue;
        }
        int is_conv = !strcmp(op, "Conv"), is_gemm = !strcmp(op, "Gemm");
        if (!is_conv && !is_gemm && !(!strcmp(op, "MatMul") && n->n_input == 2)) break;
        if (bias_add && strcmp(op, "MatMul")) break;
        const st_onnx_tensor *w = n->n_input > 1 ? init_tensor(m, st_onnx_str(n->input[1])) : NULL;
        if (!w || (is_conv && w->ndim != 4) || (!is_conv && w->ndim != 2)) break;
        h->weight = w->name;
        h->out_axis = is_conv ? 0 : is_gemm ? (st_onnx_attr_i(n, "transB", 0) ? 0 : 1) : 1;
        h->out = w->dims[h->out_axis];
        const char *b = bias_add ? st_onnx_str(bias_add->input[init_tensor(m, st_onnx_str(bias_add->input[1])) ? 1 : 0])
                        : n->n_input > 2 ? st_onnx_str(n->input[2]) : NULL;
        const st_onnx_tensor *bt = b && *b ? init_tensor(m, b) : NULL;
        if (b && *b && (!bt || bt->numel != (size_t)h->out))
            break; /* a broadcast or computed bias: not a layer we can re-size */
        h->bias = bt ? bt->name : NULL;
        snprintf(h->op, sizeof h->op, "%s", op);
        return ST_OK;
    }
    return st_errorf(err, ST_ERR_INPUT,
                     "%s: output '%s' does not come from a Conv, Gemm or MatMul layer with "
                     "constant weights, so its head cannot be re-created for other classes",
                     m->file, st_onnx_str(m->graph->output[k]->name));
}

static st_status resize_tensor(st_onnx_model *m, const char *name, int axis, int64_t old_out,
                               int64_t new_out, st_error *err) {
    st_onnx_tensor *t = init_tensor(m, name);
    if (!t || axis >= t->ndim || t->dims[axis] != old_out)
        return st_errorf(err, ST_ERR_INPUT, "%s: initializer '%s' is not a %lld-output tensor",
                         m->file, name, (long long)old_out);
    size_t n = t->numel / (size_t)old_out * (size_t)new_out;
    float *f = calloc(n ? n : 1, sizeof *f);
    if (!f) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    free(t->f);
    t->f = f;
    t->numel = n;
    t->dims[axis] = new_out;
    return ST_OK;
}

st_status st_onnx_head_resize(st_onnx_model *m, const st_onnx_head *h, int64_t new_out,
                              st_error *err) {
    if (new_out < 1 || new_out > (1 << 20))
        return st_errorf(err, ST_ERR_INPUT, "%s: %lld outputs for the head", m->file, (long long)new_out);
    if (new_out == h->out) return ST_OK;
    st_status rc = resize_tensor(m, h->weight, h->out_axis, h->out, new_out, err);
    if (rc == ST_OK && h->bias) {
        st_onnx_tensor *b = init_tensor(m, h->bias);
        rc = resize_tensor(m, h->bias, b ? b->ndim - 1 : 0, h->out, new_out, err);
    }
    return rc;
}
