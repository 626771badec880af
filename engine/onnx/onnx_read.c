/* Reading and validating ONNX files (see st_onnx.h). Everything a later stage relies on
 * is checked here, once: the importer may then assume a graph, a usable opset,
 * topologically ordered nodes whose inputs all exist, and decoded tensors whose sizes
 * match their dims. Every defect is ST_ERR_INPUT naming the file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "onnx_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian; this reader copies it as is"
#endif

/* Bytes per element, 0 for types without a fixed size (STRING, UNDEFINED, unknown). */
static size_t elem_size(int dtype) {
    switch (dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
        return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128: return 16;
    default: return 0;
    }
}

static int is_int_type(int dtype) {
    switch (dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return 1;
    default: return 0;
    }
}

/* One little-endian element of an integer type as int64. */
static int64_t load_int(const unsigned char *p, int dtype) {
    switch (dtype) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: return (int8_t)p[0];
    default: return p[0]; /* UINT8, BOOL */
    }
}

/* Reads [offset, offset+length) of an external data file into a malloc'ed buffer. The
 * location must stay inside the model's folder: no absolute paths, no "..". */
static st_status read_external(const st_onnx_model *m, const char *base_dir,
                               const Onnx__TensorProto *t, const char *what, size_t want,
                               unsigned char **out, st_error *err) {
    const char *loc = NULL, *off_s = NULL, *len_s = NULL;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        const char *k = st_onnx_str(e->key);
        if (strcmp(k, "location") == 0) loc = st_onnx_str(e->value);
        else if (strcmp(k, "offset") == 0) off_s = st_onnx_str(e->value);
        else if (strcmp(k, "length") == 0) len_s = st_onnx_str(e->value);
    }
    if (!loc || !*loc)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data without a location", m->file, what);
    if (!base_dir)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data '%s' but the model was read "
                         "from memory with no folder to look in", m->file, what, loc);
    if (loc[0] == '/' || strstr(loc, "\\"))
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data location '%s' must be a "
                         "relative path inside the model's folder", m->file, what, loc);
    for (const char *p = loc; p; p = strchr(p, '/')) {
        if (*p == '/') p++;
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == 0))
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data location '%s' leaves "
                             "the model's folder ('..')", m->file, what, loc);
    }
    long long off = 0, len = -1;
    char *end;
    if (off_s) {
        errno = 0;
        off = strtoll(off_s, &end, 10);
        if (errno || end == off_s || *end || off < 0)
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: bad external data offset '%s'", m->file, what, off_s);
    }
    if (len_s) {
        errno = 0;
        len = strtoll(len_s, &end, 10);
        if (errno || end == len_s || *end || len < 0)
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: bad external data length '%s'", m->file, what, len_s);
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", base_dir, loc) >= sizeof path)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data path too long", m->file, what);
    FILE *f = fopen(path, "rb");
    if (!f)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data file %s: %s", m->file, what,
                         path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data %s is not a regular file",
                         m->file, what, path);
    }
    long long size = (long long)sb.st_size;
    if (len < 0) len = off <= size ? size - off : 0;
    if (off > size || len > size - off) {
        fclose(f);
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data range [%lld, %lld) is beyond "
                         "the end of %s (%lld bytes)", m->file, what, off, off + len, path, size);
    }
    if ((unsigned long long)len != want) {
        fclose(f);
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: external data length %lld, dims need %zu bytes",
                         m->file, what, len, want);
    }
    unsigned char *buf = malloc(want ? want : 1);
    if (!buf) {
        fclose(f);
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory reading %s", m->file, path);
    }
    int ok = fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, want, f) == want;
    fclose(f);
    if (!ok) {
        free(buf);
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: cannot read %zu bytes at offset %lld of %s",
                         m->file, what, want, off, path);
    }
    *out = buf;
    return ST_OK;
}

/* Decodes a TensorProto into `o` (dims, and values as floats and/or int64). */
static st_status decode_tensor(const st_onnx_model *m, const char *base_dir,
                               const Onnx__TensorProto *t, const char *what, st_onnx_tensor *o,
                               st_error *err) {
    memset(o, 0, sizeof *o);
    o->name = st_onnx_str(t->name);
    o->dtype = t->data_type;
    if (t->n_dims > ST_ONNX_MAX_NDIM)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s has %zu dimensions (at most %d)", m->file,
                         what, t->n_dims, ST_ONNX_MAX_NDIM);
    o->ndim = (int)t->n_dims;
    o->numel = 1;
    for (int d = 0; d < o->ndim; d++) {
        int64_t v = t->dims[d];
        if (v < 0 || (v > 0 && o->numel > ST_ONNX_MAX_NUMEL / (size_t)v))
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: dimension %d is %lld (negative or too "
                             "large)", m->file, what, d, (long long)v);
        o->dims[d] = v;
        o->numel *= (size_t)v;
    }
    if (t->segment)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s: segmented tensors are not supported", m->file, what);
    size_t es = elem_size(t->data_type);
    if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED)
        return st_errorf(err, ST_ERR_INPUT, "%s: %s has no data type", m->file, what);
    int want_f = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                 t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    int want_i = is_int_type(t->data_type);
    if (!es || (!want_f && !want_i)) return ST_OK; /* kept undecoded; import says why */

    unsigned char *ext = NULL;
    const unsigned char *bytes = NULL;
    size_t nbytes = o->numel * es;
    int external = t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external) {
        st_status s = read_external(m, base_dir, t, what, nbytes, &ext, err);
        if (s) return s;
        bytes = ext;
    } else if (t->has_raw_data) {
        if (t->raw_data.len != nbytes)
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: raw_data has %zu bytes, dims need %zu",
                             m->file, what, t->raw_data.len, nbytes);
        bytes = t->raw_data.data;
    } else {
        /* Typed fields: which one holds the data depends on the type. */
        size_t have;
        const char *field;
        switch (t->data_type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = t->n_float_data; field = "float_data"; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = t->n_double_data; field = "double_data"; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data; field = "int64_data"; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: have = t->n_uint64_data; field = "uint64_data"; break;
        default: have = t->n_int32_data; field = "int32_data"; break;
        }
        if (have != o->numel)
            return st_errorf(err, ST_ERR_INPUT, "%s: %s: %s has %zu values, dims need %zu",
                             m->file, what, field, have, o->numel);
    }
    size_t n = o->numel ? o->numel : 1;
    if (want_f) o->f = malloc(n * sizeof(float));
    if (want_i) o->i = malloc(n * sizeof(int64_t));
    if ((want_f && !o->f) || (want_i && !o->i)) {
        free(ext);
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory decoding %s", m->file, what);
    }
    for (size_t k = 0; k < o->numel; k++) {
        if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
            if (bytes) memcpy(&o->f[k], bytes + 4 * k, 4);
            else o->f[k] = t->float_data[k];
        } else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
            double v;
            if (bytes) memcpy(&v, bytes + 8 * k, 8);
            else v = t->double_data[k];
            o->f[k] = (float)v;
        } else if (bytes) {
            o->i[k] = load_int(bytes + es * k, t->data_type);
        } else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
            o->i[k] = t->int64_data[k];
        } else if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT32) {
            o->i[k] = (int64_t)(uint32_t)t->uint64_data[k];
        } else {
            o->i[k] = t->int32_data[k];
        }
    }
    free(ext);
    return ST_OK;
}

/* A Constant node's value as a tensor named after its output. Kinds other than tensor,
 * float(s) and int(s) are left for the importer to reject. */
static st_status decode_constant(st_onnx_model *m, const char *base_dir, const Onnx__NodeProto *n,
                                 const char *label, st_onnx_tensor *o, int *got, st_error *err) {
    *got = 0;
    if (n->n_output < 1 || !n->output[0] || !*n->output[0]) return ST_OK;
    char what[300];
    snprintf(what, sizeof what, "Constant node '%s'", label);
    for (size_t a = 0; a < n->n_attribute; a++) {
        const Onnx__AttributeProto *at = n->attribute[a];
        const char *an = st_onnx_str(at->name);
        if (strcmp(an, "value") == 0 && at->t) {
            st_status s = decode_tensor(m, base_dir, at->t, what, o, err);
            if (s) return s;
        } else if (strcmp(an, "value_float") == 0 || strcmp(an, "value_floats") == 0 ||
                   strcmp(an, "value_int") == 0 || strcmp(an, "value_ints") == 0) {
            int is_f = an[6] == 'f', many = an[strlen(an) - 1] == 's';
            size_t cnt = many ? (is_f ? at->n_floats : at->n_ints) : 1;
            memset(o, 0, sizeof *o);
            o->dtype = is_f ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
            o->ndim = many ? 1 : 0;
            o->dims[0] = (int64_t)cnt;
            o->numel = cnt;
            if (is_f) o->f = malloc((cnt ? cnt : 1) * sizeof(float));
            else o->i = malloc((cnt ? cnt : 1) * sizeof(int64_t));
            if (is_f ? !o->f : !o->i) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
            for (size_t k = 0; k < cnt; k++) {
                if (is_f) o->f[k] = many ? at->floats[k] : at->f;
                else o->i[k] = many ? at->ints[k] : at->i;
            }
        } else {
            continue;
        }
        o->name = n->output[0];
        o->is_init = 0;
        *got = 1;
        return ST_OK;
    }
    return ST_OK;
}

static int is_weight_input(const char *op, size_t idx) {
    if (strcmp(op, "Conv") == 0 || strcmp(op, "Gemm") == 0) return idx == 1 || idx == 2;
    if (strcmp(op, "MatMul") == 0) return idx == 1;
    if (strcmp(op, "BatchNormalization") == 0) return idx >= 1 && idx <= 4;
    return 0;
}

/* Topological order and producers; weights are float. */
static st_status validate_graph(st_onnx_model *m, st_error *err) {
    const Onnx__GraphProto *g = m->graph;
    st_onnx_map defined = {0}, later = {0};
    st_status s = ST_OK;
    if (st_onnx_map_init(&defined, g->n_input + g->n_initializer + 2 * g->n_node) ||
        st_onnx_map_init(&later, 2 * g->n_node)) {
        s = st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
        goto done;
    }
    for (size_t i = 0; i < g->n_input; i++)
        if (st_onnx_map_put(&defined, st_onnx_str(g->input[i]->name), 1)) goto oom;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (st_onnx_map_put(&defined, st_onnx_str(g->initializer[i]->name), 1)) goto oom;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t o = 0; o < g->node[i]->n_output; o++)
            if (st_onnx_map_put(&later, st_onnx_str(g->node[i]->output[o]), (int)i)) goto oom;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        char lb[160];
        st_onnx_node_label(n, (int)i, lb, sizeof lb);
        if (!n->op_type || !*n->op_type) {
            s = st_errorf(err, ST_ERR_INPUT, "%s: node '%s' has no op_type", m->file, lb);
            goto done;
        }
        for (size_t k = 0; k < n->n_input; k++) {
            const char *in = st_onnx_str(n->input[k]);
            if (!*in) continue; /* an omitted optional input */
            if (st_onnx_map_get(&defined, in) >= 0) {
                const st_onnx_tensor *t = st_onnx_find_tensor(m, in);
                if (t && is_weight_input(n->op_type, k) && t->dtype != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
                    s = st_errorf(err, ST_ERR_INPUT, "%s: '%s' (input %zu of %s node '%s') has data "
                                  "type %s; only FLOAT weights are supported", m->file, in, k,
                                  n->op_type, lb, st_onnx_dtype_name(t->dtype));
                    goto done;
                }
                continue;
            }
            if (st_onnx_map_get(&later, in) >= 0)
                s = st_errorf(err, ST_ERR_INPUT, "%s: node '%s' (%s) uses '%s' before the node that "
                              "produces it (nodes must be in topological order)", m->file, lb, n->op_type, in);
            else
                s = st_errorf(err, ST_ERR_INPUT, "%s: node '%s' (%s) input '%s' is not produced by "
                              "any node, graph input or initializer", m->file, lb, n->op_type, in);
            goto done;
        }
        for (size_t o = 0; o < n->n_output; o++) {
            const char *on = st_onnx_str(n->output[o]);
            if (!*on) continue; /* an omitted optional output */
            if (st_onnx_map_get(&defined, on) >= 0) {
                s = st_errorf(err, ST_ERR_INPUT, "%s: node '%s' (%s) output '%s' is already defined "
                              "(every value must have one producer)", m->file, lb, n->op_type, on);
                goto done;
            }
            if (st_onnx_map_put(&defined, on, 1)) goto oom;
        }
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *on = st_onnx_str(g->output[i]->name);
        if (st_onnx_map_get(&defined, on) < 0) {
            s = st_errorf(err, ST_ERR_INPUT, "%s: graph output '%s' is not produced by any node",
                          m->file, on);
            goto done;
        }
    }
    goto done;
oom:
    s = st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
done:
    st_onnx_map_free(&defined);
    st_onnx_map_free(&later);
    return s;
}

static st_status check_model(st_onnx_model *m, const char *base_dir, st_error *err) {
    Onnx__ModelProto *p = m->proto;
    if (!p->graph)
        return st_errorf(err, ST_ERR_INPUT, "%s: not an ONNX model: no graph", m->file);
    m->graph = p->graph;
    const Onnx__GraphProto *g = m->graph;
    m->opset = -1;
    for (size_t i = 0; i < p->n_opset_import; i++) {
        const char *d = st_onnx_str(p->opset_import[i]->domain);
        if (!*d || strcmp(d, "ai.onnx") == 0) m->opset = p->opset_import[i]->version;
    }
    if (m->opset < 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: not an ONNX model: no ai.onnx opset import", m->file);
    if (m->opset < 7)
        return st_errorf(err, ST_ERR_INPUT, "%s: opset %lld is too old; re-export with opset >= 7",
                         m->file, (long long)m->opset);
    if (g->n_node > ST_ONNX_MAX_NODES)
        return st_errorf(err, ST_ERR_INPUT, "%s: %zu nodes (at most %d)", m->file, g->n_node, ST_ONNX_MAX_NODES);
    if (g->n_output < 1)
        return st_errorf(err, ST_ERR_INPUT, "%s: the graph has no outputs", m->file);
    if (g->n_sparse_initializer)
        return st_errorf(err, ST_ERR_INPUT, "%s: sparse initializers are not supported", m->file);

    int n_const = 0;
    for (size_t i = 0; i < g->n_node; i++)
        n_const += strcmp(st_onnx_str(g->node[i]->op_type), "Constant") == 0;
    m->tensors = calloc(g->n_initializer + (size_t)n_const + 1, sizeof *m->tensors);
    if (!m->tensors || st_onnx_map_init(&m->tensor_map, g->n_initializer + (size_t)n_const))
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        char what[300];
        snprintf(what, sizeof what, "initializer '%s'", st_onnx_str(t->name));
        if (!t->name || !*t->name)
            return st_errorf(err, ST_ERR_INPUT, "%s: initializer %zu has no name", m->file, i);
        st_onnx_tensor *o = &m->tensors[m->n_tensors];
        st_status s = decode_tensor(m, base_dir, t, what, o, err);
        m->n_tensors++; /* decoded arrays are freed with the model even on failure */
        if (s) return s;
        o->is_init = 1;
        if (st_onnx_map_get(&m->tensor_map, o->name) >= 0)
            return st_errorf(err, ST_ERR_INPUT, "%s: two initializers are named '%s'", m->file, o->name);
        if (st_onnx_map_put(&m->tensor_map, o->name, m->n_tensors - 1))
            return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if (strcmp(st_onnx_str(n->op_type), "Constant") != 0) continue;
        char lb[160];
        st_onnx_node_label(n, (int)i, lb, sizeof lb);
        int got = 0;
        st_status s = decode_constant(m, base_dir, n, lb, &m->tensors[m->n_tensors], &got, err);
        if (got || s) m->n_tensors++;
        if (s) return s;
        if (got && st_onnx_map_put(&m->tensor_map, m->tensors[m->n_tensors - 1].name, m->n_tensors - 1))
            return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", m->file);
    }
    return validate_graph(m, err);
}

st_status st_onnx_read_memory(const void *data, size_t len, const char *name,
                              const char *base_dir, st_onnx_model **out, st_error *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    if (len == 0)
        return st_errorf(err, ST_ERR_INPUT, "%s: not an ONNX model: empty file", name);
    if (len > ST_ONNX_MAX_FILE)
        return st_errorf(err, ST_ERR_INPUT, "%s: %zu bytes is beyond protobuf's 2 GiB limit "
                         "(large models keep weights in external data)", name, len);
    st_onnx_model *m = calloc(1, sizeof *m);
    if (!m) return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", name);
    snprintf(m->file, sizeof m->file, "%s", name);
    m->proto = onnx__model_proto__unpack(NULL, len, data);
    if (!m->proto) {
        st_onnx_model_free(m);
        return st_errorf(err, ST_ERR_INPUT, "%s: not an ONNX model: not a valid protobuf message "
                         "(truncated or corrupt file?)", name);
    }
    st_status s = check_model(m, base_dir, err);
    if (s) {
        st_onnx_model_free(m);
        return s;
    }
    *out = m;
    return ST_OK;
}

st_status st_onnx_read_file(const char *path, st_onnx_model **out, st_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return st_errorf(err, ST_ERR_INPUT, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return st_errorf(err, ST_ERR_INPUT, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len > ST_ONNX_MAX_FILE) {
        fclose(f);
        return st_errorf(err, ST_ERR_INPUT, "%s: %zu bytes is beyond protobuf's 2 GiB limit", path, len);
    }
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) {
        fclose(f);
        return st_errorf(err, ST_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, len, f);
    fclose(f);
    if (got != len) {
        free(buf);
        return st_errorf(err, ST_ERR_IO, "%s: read error", path);
    }
    /* External data lives next to the model. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    else snprintf(dir, sizeof dir, ".");
    st_status s = st_onnx_read_memory(buf, len, path, dir, out, err);
    free(buf);
    return s;
}

void st_onnx_model_free(st_onnx_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) {
        free(m->tensors[i].f);
        free(m->tensors[i].i);
    }
    free(m->tensors);
    st_onnx_map_free(&m->tensor_map);
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, NULL);
    free(m);
}

const st_onnx_tensor *st_onnx_find_tensor(const st_onnx_model *m, const char *name) {
    int i = st_onnx_map_get(&m->tensor_map, name);
    return i >= 0 ? &m->tensors[i] : NULL;
}
