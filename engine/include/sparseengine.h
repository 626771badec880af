/* sparseengine: run ONNX models on the CPU with sparse kernels.
 *
 * Prepare, then run:
 *   se_model *m;     se_load("model.onnx", &m, err, sizeof err);
 *   se_compiled *c;  se_compile(m, &opts, &c, err, sizeof err);   (once per batch size)
 *   se_context *x;   se_context_new(c, &x, err, sizeof err);      (one per calling thread)
 *   se_run(x, input, outputs, err, sizeof err);                   (any number of times)
 * A compiled model is read-only after se_compile: several threads may run it at once,
 * each through its own context. A context owns every buffer a run needs (planned once,
 * with buffers reused by liveness); se_run allocates nothing.
 *
 * Functions return 0 on success, or a status (2: bad input such as an invalid or
 * unsupported model, 1: internal error, 4: out of memory) with a message in err.
 * Inputs and outputs are float32, NCHW (or [N, F]), batch = the compiled batch. */
#ifndef SPARSEENGINE_H
#define SPARSEENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct se_model se_model;
typedef struct se_compiled se_compiled;
typedef struct se_context se_context;

enum { SE_SCHEDULE_LAYERS = 0, SE_SCHEDULE_COLUMNS = 1 };

typedef struct se_options {
    int batch;    /* >= 1 */
    int threads;  /* OpenMP threads for this model's runs; 0: the process default */
    int schedule; /* SE_SCHEDULE_LAYERS or SE_SCHEDULE_COLUMNS (falls back to layers where
                     a part of the graph cannot run as columns) */
    int dense;    /* 1: never use the sparse kernels (for comparisons) */
    int column_rows; /* columns: output rows per band of every section; 0: sized to the
                        per-core L2 (the default) */
    int nchw_maps;   /* 1: keep every map NCHW; 0 (default): at batch 1 on several threads,
                        maps between sparse layers are stored blocked by thread */
    size_t l2_bytes; /* columns: the per-core L2 cache, in bytes, that sections are chosen
                        for (only where each thread's share of their inner maps exceeds
                        it) and bands sized to;
                        0 (default): read from sysfs, 1 MiB where it says nothing */
} se_options;

void se_options_default(se_options *o); /* batch 1, threads 0, layers, sparse allowed */

int se_load(const char *path, se_model **out, char *err, size_t errcap);
void se_model_free(se_model *m);

int se_compile(const se_model *m, const se_options *o, se_compiled **out, char *err, size_t errcap);
void se_compiled_free(se_compiled *c);

/* Shapes, batch included: [batch, C, H, W] or [batch, F] (ndim 2). */
int se_num_outputs(const se_compiled *c);
int se_input_shape(const se_compiled *c, int64_t dims[4]);   /* returns ndim */
int se_output_shape(const se_compiled *c, int k, int64_t dims[4]);
const char *se_input_name(const se_compiled *c);  /* the ONNX graph input's name */
const char *se_output_name(const se_compiled *c, int k);
/* Bytes of buffers one context holds (activations, scratch): known before running. */
size_t se_context_bytes(const se_compiled *c);
/* Fraction of the multiply-adds that run on the sparse kernels (0..1). */
double se_sparse_fraction(const se_compiled *c);
/* A human-readable plan: one line per step (op, fused epilogue, kernel and why, tile). */
int se_describe(const se_compiled *c, char *buf, size_t cap);

int se_context_new(const se_compiled *c, se_context **out, char *err, size_t errcap);
void se_context_free(se_context *x);

/* Per-step timing (off by default): while on, se_run adds each plan step's wall time
 * (a tensor-column section counts on its first step); se_context_step_ms writes the
 * mean ms per run of up to cap steps (the steps se_describe lists) and returns how
 * many. Turning it on again starts over. */
int se_context_profile(se_context *x, int on);
int se_context_step_ms(const se_context *x, double *ms, int cap);
/* While profiling: the mean ms per run each thread spent waiting at the barriers between
 * the steps it runs with the others (up to cap threads; returns how many). A thread that
 * waits much longer than the others had less work, or a faster core. */
int se_context_wait_ms(const se_context *x, double *ms, int cap);
int se_num_steps(const se_compiled *c);

/* input: batch * input numel floats; outputs[k]: room for output k. */
int se_run(se_context *x, const float *input, float *const *outputs, char *err, size_t errcap);

#ifdef __cplusplus
}
#endif

#endif
