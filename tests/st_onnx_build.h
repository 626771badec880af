/* Crafting ONNX models in memory for tests and fuzz seeds: a thin layer over the
 * protobuf-c structs. Everything a builder allocates is freed by stb_free; the structs
 * stay reachable (stb_model) so a test can break them on purpose before stb_pack. */
#ifndef ST_ONNX_BUILD_H
#define ST_ONNX_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "onnx.pb-c.h"

typedef struct stb stb;

stb *stb_new(int64_t opset);
void stb_free(stb *b);
Onnx__ModelProto *stb_model(stb *b);

/* Graph input; dims[0] < 0 becomes the symbolic batch "N". */
void stb_input(stb *b, const char *name, int ndim, const int64_t *dims);
void stb_output(stb *b, const char *name);
/* A float tensor (raw_data), not attached anywhere; data NULL: no payload. */
Onnx__TensorProto *stb_tensor(stb *b, const char *name, int ndim, const int64_t *dims,
                              const float *data);
Onnx__TensorProto *stb_tensor_i64(stb *b, const char *name, int ndim, const int64_t *dims,
                                  const int64_t *data);
/* Same, added to the graph's initializers. */
Onnx__TensorProto *stb_init(stb *b, const char *name, int ndim, const int64_t *dims,
                            const float *data);
Onnx__TensorProto *stb_init_i64(stb *b, const char *name, int ndim, const int64_t *dims,
                                const int64_t *data);
/* ins / outs: comma-separated names; an empty entry is an omitted optional input. */
Onnx__NodeProto *stb_node(stb *b, const char *op, const char *name, const char *ins,
                          const char *outs);
void stb_attr_i(stb *b, Onnx__NodeProto *n, const char *name, int64_t v);
void stb_attr_f(stb *b, Onnx__NodeProto *n, const char *name, float v);
void stb_attr_s(stb *b, Onnx__NodeProto *n, const char *name, const char *v);
void stb_attr_ints(stb *b, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v);
void stb_attr_floats(stb *b, Onnx__NodeProto *n, const char *name, int cnt, const float *v);
void stb_attr_t(stb *b, Onnx__NodeProto *n, const char *name, Onnx__TensorProto *t);
void stb_meta(stb *b, const char *key, const char *value);
/* A string owned by the builder. */
char *stb_str(stb *b, const char *s);
void *stb_alloc(stb *b, size_t bytes);

/* Serialized model, malloc'ed (caller frees). */
uint8_t *stb_pack(stb *b, size_t *len);
/* Packs the model into the file at path and frees b; 0 on success, -1 if the file
 * could not be written. */
int stb_save(stb *b, const char *path);

#endif
