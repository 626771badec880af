/* Model files and reference results for the engine tests (tests/test_engine_api.c uses
 * only sparseengine.h; these helpers, in tests/test_engine_models.c, may use the
 * internal headers). */
#ifndef ST_ENGINE_MODELS_H
#define ST_ENGINE_MODELS_H

#include <stddef.h>

#include "sparseengine.h"

/* Writes model `name` ("cnn-small": 1x28x28, 10 classes; "yolov5n": 3 x size x size, 3
 * classes; "conv3x3": one 3x3 conv 64 -> 64 at 32x32) as ONNX at `path`, with random
 * BN statistics and `prune` of every prunable weight zeroed (weights and masks).
 * fold_bn: the exporter's folding (0 keeps the BatchNorm nodes). Asserts on failure. */
void stt_engine_write_model(const char *path, const char *name, int size, double prune,
                            int fold_bn, unsigned seed);
/* Our training executor's eval-mode forward of the imported file on x [N, ...]:
 * returns the number of outputs; outs[k] (malloc'ed) and ns[k] (floats). */
int stt_engine_ref_forward(const char *path, const float *x, int N, float **outs, size_t *ns);
/* The model at path compiled with options o (the loaded model freed). Asserts on failure. */
se_compiled *stt_engine_compile(const char *path, const se_options *o);
/* Sum over the graph's values (not aliases) of batch * numel * 4 bytes. */
size_t stt_engine_activation_bytes(const char *path, int N);

#endif
