/* Internal to the ONNX exporter: a small builder over the protobuf-c ModelProto.
 *
 * Every string, array and sub-message hung off the model is malloc'ed, so one
 * protobuf_c_message_free_unpacked on the ModelProto releases all of it (the default
 * allocator is malloc/free), whether the export finished or failed half way.
 *
 * The builder keeps a sticky status: after the first out-of-memory every call is a
 * no-op that returns NULL/-1, and ox_status reports it. Tensor names (values and
 * initializers share one namespace in ONNX) are made unique by ox_unique_name. */
#ifndef ST_ONNX_EXPORT_INTERNAL_H
#define ST_ONNX_EXPORT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"
#include "st_common.h"

#ifndef ST_VERSION_STRING
#define ST_VERSION_STRING "0.1"

#endif

#define OX_OPSET 13
#define OX_IR_VERSION 7

typedef struct ox_builder {
    Onnx__ModelProto *model;
    Onnx__GraphProto *graph;
    size_t cap_node, cap_init, cap_meta;
    char **names; /* tensor names in use (owned copies) */
    size_t n_names, cap_names;
    int oom;
} ox_builder;

/* Creates the model and its graph (ir_version, opset, producer). 0 or -1 (out of memory). */
int ox_begin(ox_builder *b, const char *producer_version, const char *graph_name);
/* Frees everything (the model too, unless it was taken). */
void ox_end(ox_builder *b);
static inline int ox_failed(const ox_builder *b) { return b->oom; }

/* Marks `name` as taken (the builder keeps a copy). */
int ox_reserve_name(ox_builder *b, const char *name);
/* Whether `name` is taken. */
int ox_name_taken(const ox_builder *b, const char *name);
/* A fresh malloc'ed name: `base`, or `base_2`, `base_3`... the first not taken; it is
 * reserved. NULL on out of memory. */
char *ox_unique_name(ox_builder *b, const char *base);

/* Appends a node; strings are copied. Input names may be "" (an omitted optional
 * input). Returns the node or NULL. */
Onnx__NodeProto *ox_node(ox_builder *b, const char *op_type, const char *name,
                         const char *const *inputs, int n_inputs, const char *output);
void ox_attr_int(ox_builder *b, Onnx__NodeProto *n, const char *name, int64_t v);
void ox_attr_float(ox_builder *b, Onnx__NodeProto *n, const char *name, float v);
void ox_attr_string(ox_builder *b, Onnx__NodeProto *n, const char *name, const char *v);
void ox_attr_ints(ox_builder *b, Onnx__NodeProto *n, const char *name, const int64_t *v,
                  int count);

/* Appends a float32 initializer with these dims (ndim 0: a scalar) and returns its
 * data (raw_data, numel floats, uninitialised) for the caller to fill; NULL on OOM. */
float *ox_init_float(ox_builder *b, const char *name, int ndim, const int64_t *dims);
/* An int64 initializer (1-D, count values). 0 or -1. */
int ox_init_int64(ox_builder *b, const char *name, const int64_t *v, int count);

/* Graph input or output: float32 tensor [N, dims...] with N the symbolic "N". */
int ox_graph_io(ox_builder *b, int is_output, const char *name, int ndim, const int64_t *dims);
/* Appends a metadata_props entry. 0 or -1. */
int ox_metadata(ox_builder *b, const char *key, const char *value);

/* Appends printf-formatted text to a growing malloc'ed string (for the JSON). */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} ox_str;
void ox_str_printf(ox_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quoted, escaped). */
void ox_str_json(ox_str *s, const char *v);


struct st_onnx_yolo_decode;
/* YOLOv5's decode after the raw outputs raw[s] ([N, 3(nc+5), H, W], hw[s] = {H, W}); the
 * graph output "detections". 0 or -1 (out of memory). */
int st_onnx_emit_yolo_decode(ox_builder *b, const struct st_onnx_yolo_decode *d,
                             const char *const raw[3], const int hw[3][2]);

#endif
