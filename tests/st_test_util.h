/* Helpers shared by the test suites. */
#ifndef ST_TEST_UTIL_H
#define ST_TEST_UTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "st_rng.h"

/* Fill with uniform values in [lo, hi). */
void stt_fill_uniform(float *x, size_t n, float lo, float hi, st_rng *r);
/* Max over i of |a-b| / (atol + rtol*|b|); <= 1 means "close". */
double stt_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol);
/* ck_assert with a message naming the first mismatch. */
#define STT_ASSERT_CLOSE(a, b, n, atol, rtol)                                                  \
    do {                                                                                       \
        size_t stt_bad_ = stt_first_mismatch((a), (b), (n), (atol), (rtol));                   \
        ck_assert_msg(stt_bad_ == (size_t)-1, "%s vs %s: mismatch at %zu: %.8g vs %.8g", #a,   \
                      #b, stt_bad_, stt_bad_ == (size_t)-1 ? 0.0 : (double)(a)[stt_bad_],      \
                      stt_bad_ == (size_t)-1 ? 0.0 : (double)(b)[stt_bad_]);                   \
    } while (0)
size_t stt_first_mismatch(const float *a, const float *b, size_t n, double atol, double rtol);

/* Absolute path of a file under the source tree (static buffer per call site is not
 * allowed: the caller passes one). */
const char *stt_source_path(char *buf, size_t cap, const char *rel);
/* A scratch directory unique to this process under the build tree; created. */
const char *stt_tmpdir(char *buf, size_t cap, const char *tag);
/* Print a clear skip note (Check has no skip; the test then returns as passed). */
void stt_skip(const char *why);
/* Run a shell command, return its exit status (or -1); output goes to out_path if given. */
int stt_run(const char *cmd);

/* A small synthetic IDX dataset (320 train / 96 test 28x28 images whose class decides a
 * bright band) in a fresh temp folder; returns the folder. */
const char *stt_make_idx_dataset(char *buf, size_t cap);
/* Runs build/sparsetrain with `args`; returns its exit code and leaves what it printed
 * (stdout and stderr) in out. */
int stt_run_sparsetrain(const char *args, char *out, size_t cap);
/* The same for any program of the build folder (sparseengine, a tool). */
int stt_run_tool(const char *tool, const char *args, char *out, size_t cap);
/* Asserts two checkpoints hold the same tensors, bit for bit. */
void stt_assert_same_ckpt(const char *a, const char *b);

/* Installs (once, via tools/install-deps.sh --peers) and checks python3-onnx, torch,
 * torchvision and onnxruntime-node. Returns 1 if usable; otherwise prints a skip note
 * and returns 0 (the caller returns). */
int stt_need_peers(void);
/* ONNX Runtime on one .npy input -> .npy output (tools/ort_run.js); exit status. */
int stt_ort_run(const char *model, const char *in_npy, const char *out_npy);
/* onnx.checker.check_model(full_check=True); exit status (0 = valid). */
int stt_onnx_check(const char *model);

struct st_graph;
/* Non-default BN statistics and affine parameters (gamma 0.5..1.5, beta +-0.5, mean +-0.3,
 * var 0.5..2), so folding and BN arithmetic are really exercised. */
void stt_randomize_bn(struct st_graph *g, st_rng *r);
/* Zeroes exactly floor(frac * numel) random entries (mask and weight) of parameter p. */
void stt_prune_param(struct st_graph *g, int p, double frac, st_rng *r);
/* The same for every prunable parameter. */
void stt_prune_all(struct st_graph *g, double frac, st_rng *r);

#endif
