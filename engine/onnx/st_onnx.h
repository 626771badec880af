/* ONNX files in and out.
 *
 * Reading: st_onnx_read_* parses a ModelProto (protobuf-c, generated at build time from
 * Debian's onnx.proto) and validates it before anything else looks at it: opset >= 7,
 * a graph, every node input produced by a node, a graph input or an initializer,
 * tensor payloads consistent with their dims, external data present and in range.
 * Every defect is ST_ERR_INPUT with a message naming the file and the problem.
 *
 * Import: st_onnx_import turns a model into a finalized st_graph whose parameters are
 * the initializers, under the initializers' names (so recipes select them by name or
 * __ALL_PRUNABLE__). Unsupported operators are reported all at once, with node names,
 * before any graph is built. The first graph input is the image input (N, C, H, W); its
 * first dimension is the batch, whatever the file says.
 *
 * Export: st_onnx_export_* writes a graph and its parameters as opset 13 with a dynamic
 * batch dimension ("N"), dense initializers holding the exact zeros of pruned weights,
 * initializer names equal to our parameter names, BatchNorm folded into the preceding
 * convolution (default) or kept, and metadata_props (producer, recipe, per-layer
 * sparsity). */
#ifndef ST_ONNX_H
#define ST_ONNX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "st_common.h"
#include "st_graph.h"

typedef struct st_onnx_model st_onnx_model;

/* Reads and validates `path`; external data files are looked up next to it. */
st_status st_onnx_read_file(const char *path, st_onnx_model **out, st_error *err);
/* Same from memory. `name` is used in messages; `base_dir` is where external data files
 * live (NULL: external data is an error). The bytes are not kept after the call. */
st_status st_onnx_read_memory(const void *data, size_t len, const char *name,
                              const char *base_dir, st_onnx_model **out, st_error *err);
void st_onnx_model_free(st_onnx_model *m);

/* metadata_props value for `key`, NULL if absent. */
const char *st_onnx_metadata(const st_onnx_model *m, const char *key);
/* Human-readable summary: producer, opset, inputs and outputs with shapes, op counts,
 * parameter count, per-initializer sparsity for conv/Gemm/MatMul weights. */
void st_onnx_print_info(const st_onnx_model *m, FILE *f);

typedef struct {
    /* Drop a trailing Softmax (a trainer adds its own loss on the logits). */
    int strip_softmax;
    /* Seed for parameters that have no initializer (none in a valid file; kept for
     * heads re-created by transfer learning). */
    uint64_t seed;
} st_onnx_import_opts;

/* Builds and finalizes a graph with all parameters loaded. `opts` may be NULL. */
st_status st_onnx_import(const st_onnx_model *m, const st_onnx_import_opts *opts,
                         st_graph **out, st_error *err);

/* Transfer learning: the layer that decides graph output k's feature count (a Conv,
 * Gemm or MatMul(+Add), found through Softmax / Identity / Flatten / Dropout). */
typedef struct st_onnx_head {
    const char *weight, *bias; /* initializer names (bias NULL when the layer has none);
                                  valid while the model lives */
    int out_axis;              /* the weight's output axis */
    int64_t out;               /* output features or channels */
    char op[16];
} st_onnx_head;
int st_onnx_num_outputs(const st_onnx_model *m);
st_status st_onnx_head_find(const st_onnx_model *m, int k, st_onnx_head *h, st_error *err);
/* Re-sizes the head's weight and bias initializers to new_out outputs (zeros: the
 * caller re-initialises those parameters after import). */
st_status st_onnx_head_resize(st_onnx_model *m, const st_onnx_head *h, int64_t new_out,
                              st_error *err);

/* YOLOv5's decode, appended to a detector's three raw outputs on export. */
typedef struct st_onnx_yolo_decode {
    int nc;
    int strides[3];
    float anchors[3][3][2]; /* pixels (w, h) per scale and anchor */
} st_onnx_yolo_decode;

typedef struct {
    int fold_bn;        /* 1 (default): BatchNorm folded into the preceding conv */
    int keep_dropout;   /* 0 (default): Dropout left out (eval graph); 1: kept */
    const char *producer_version; /* NULL: the build's version */
    const char *graph_name;       /* NULL: "sparsetrain" */
    const char *recipe;           /* recipe text for metadata, NULL none */
    /* Not NULL (detectors): the graph's three raw outputs are decoded as YOLOv5's export
     * does, and the only output is "detections" [N, 3*(cells of all scales), 5 + nc]:
     * cx, cy, w, h in input pixels, objectness, class probabilities. */
    const st_onnx_yolo_decode *yolo_decode;
    /* extra metadata_props, n_meta pairs */
    int n_meta;
    const char *const *meta_keys;
    const char *const *meta_values;
} st_onnx_export_opts;

void st_onnx_export_opts_default(st_onnx_export_opts *o);
/* Serialises to a malloc'ed buffer the caller frees. */
st_status st_onnx_export_memory(const st_graph *g, const st_onnx_export_opts *o,
                                uint8_t **buf, size_t *len, st_error *err);
/* Writes atomically (temporary file, fsync, rename). */
st_status st_onnx_export_file(const st_graph *g, const st_onnx_export_opts *o,
                              const char *path, st_error *err);

#endif
