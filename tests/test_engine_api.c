/* The engine's public API (sparseengine.h only, plus test utilities): outputs equal our
 * training executor's eval forward of the same file and ONNX Runtime (where the peers
 * are installed), dense and pruned, batch 1 and 4; several threads on one compiled
 * model; the plan (BN folding, fused epilogues, liveness reuse, kernel choice); bad
 * input; the example program. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sparseengine.h"
#include "st_cpu.h"
#include "st_engine_models.h"
#include "st_npy.h"
#include "st_test_util.h"

static char err[1024];

static int schedule = SE_SCHEDULE_COLUMNS; /* these tests exercise columns unless told */

static se_compiled *compile(const char *path, int batch, int threads, int dense) {
    se_model *m = NULL;
    ck_assert_msg(se_load(path, &m, err, sizeof err) == 0, "%s", err);
    se_options o;
    se_options_default(&o);
    o.batch = batch, o.threads = threads, o.dense = dense, o.schedule = schedule;
    se_compiled *c = NULL;
    ck_assert_msg(se_compile(m, &o, &c, err, sizeof err) == 0, "%s", err);
    se_model_free(m); /* the compiled model keeps what it needs */
    return c;
}

static size_t numel(const int64_t *d, int nd) {
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)d[i];
    return n;
}

/* Runs c on x; returns the outputs (malloc'ed) in outs, sizes in ns. */
static int run(const se_compiled *c, const float *x, float **outs, size_t *ns) {
    int n = se_num_outputs(c);
    for (int k = 0; k < n; k++) {
        int64_t d[4];
        int nd = se_output_shape(c, k, d);
        ck_assert_int_ge(nd, 2);
        ns[k] = numel(d, nd);
        outs[k] = malloc(ns[k] * sizeof(float));
    }
    se_context *x_ = NULL;
    ck_assert_msg(se_context_new(c, &x_, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(se_run(x_, x, outs, err, sizeof err) == 0, "%s", err);
    se_context_free(x_);
    return n;
}

static float *random_input(const se_compiled *c, size_t *n, unsigned seed, int64_t d[4]) {
    int nd = se_input_shape(c, d);
    *n = numel(d, nd);
    float *x = malloc(*n * sizeof(float));
    st_rng r;
    st_rng_seed(&r, seed);
    stt_fill_uniform(x, *n, -1.0f, 1.0f, &r);
    return x;
}

/* se_run == the executor's eval forward (1e-4 rel, 1e-5 abs); with ort, also ONNX
 * Runtime on the same input. */
static void check_model(const char *path, const char *tag, int batch, int dense, int ort) {
    se_compiled *c = compile(path, batch, 2, dense);
    size_t n_in;
    int64_t d[4];
    float *x = random_input(c, &n_in, 100 + batch, d);
    float *outs[4], *refs[4];
    size_t ns[4], nr[4];
    int n = run(c, x, outs, ns);
    int n_ref = stt_engine_ref_forward(path, x, batch, refs, nr);
    ck_assert_int_eq(n, n_ref);
    for (int k = 0; k < n; k++) {
        ck_assert_uint_eq(ns[k], nr[k]);
        size_t bad = stt_first_mismatch(outs[k], refs[k], ns[k], 1e-5, 1e-4);
        ck_assert_msg(bad == (size_t)-1, "%s batch %d dense %d output %d (%s): %.8g vs exec %.8g at %zu",
                      tag, batch, dense, k, se_output_name(c, k), bad == (size_t)-1 ? 0.0 : outs[k][bad],
                      bad == (size_t)-1 ? 0.0 : refs[k][bad], bad);
    }
    if (ort) {
        char dir[512], in_npy[700], out_npy[700], yk[760];
        stt_tmpdir(dir, sizeof dir, "engine-ort");
        snprintf(in_npy, sizeof in_npy, "%s/%s-%d-in.npy", dir, tag, batch);
        snprintf(out_npy, sizeof out_npy, "%s/%s-%d-out", dir, tag, batch);
        st_error e = {0};
        ck_assert_int_eq(st_npy_write(in_npy, 4, d, x, &e), ST_OK);
        snprintf(yk, sizeof yk, "%s.npy", out_npy);
        ck_assert_msg(stt_ort_run(path, in_npy, yk) == 0, "ORT failed on %s", path);
        for (int k = 0; k < n; k++) {
            if (k) snprintf(yk, sizeof yk, "%s_%d.npy", out_npy, k);
            st_npy y;
            ck_assert_msg(st_npy_read(yk, &y, &e) == ST_OK, "%s", e.msg);
            ck_assert_uint_eq(y.numel, ns[k]);
            size_t bad = stt_first_mismatch(outs[k], y.data, ns[k], 1e-4, 1e-4);
            ck_assert_msg(bad == (size_t)-1, "%s batch %d output %d: %.8g vs ORT %.8g at %zu", tag,
                          batch, k, bad == (size_t)-1 ? 0.0 : outs[k][bad],
                          bad == (size_t)-1 ? 0.0 : y.data[bad], bad);
            st_npy_free(&y);
        }
    }
    for (int k = 0; k < n; k++) free(outs[k]), free(refs[k]);
    free(x);
    se_compiled_free(c);
}

/* cnn-small (BN kept in the file, so the engine folds it; and folded by the exporter)
 * and yolov5n at 64x64 (three raw outputs), dense and 90% pruned, batch 1 and 4. */
START_TEST(matches_executor_and_ort) {
    static const char *const models[] = {"cnn-small", "yolov5n"};
    const char *name = models[_i];
    int ort = getenv("ST_PEERS_DIR") || access(ST_SOURCE_DIR "/.peers", F_OK) == 0 ? stt_need_peers() : 0;
    if (!ort) stt_skip("ONNX Runtime comparison (set ST_PEERS_DIR or install the peers)");
    char dir[512], path[700], tag[96];
    stt_tmpdir(dir, sizeof dir, "engine-api");
    for (int pruned = 0; pruned <= 1; pruned++) {
        for (int fold = 0; fold <= 1; fold++) {
            snprintf(tag, sizeof tag, "%s-%s-%s", name, pruned ? "p90" : "dense", fold ? "folded" : "bn");
            snprintf(path, sizeof path, "%s/%s.onnx", dir, tag);
            stt_engine_write_model(path, name, 64, pruned ? 0.9 : 0.0, fold, 40 + pruned);
            for (int batch = 1; batch <= 4; batch += 3) {
                check_model(path, tag, batch, 0, ort && batch == 4 && !fold);
                if (pruned && batch == 4) check_model(path, tag, batch, 1, 0);
            }
        }
    }
}
END_TEST

/* PyTorch exports (tools/gen_onnx_models.py, generated by the onnx_interop suite into
 * build/onnx_models): skipped when absent. */
START_TEST(torchvision_models) {
    static const char *const names[] = {"cnn_small", "viewnet", "squeezenet1_1", "mobilenet_v2", "resnet18"};
    char done[600], path[700], in[700];
    snprintf(done, sizeof done, "%s/onnx_models/DONE", ST_BINARY_DIR);
    struct stat sb;
    if (stat(done, &sb) != 0) {
        stt_skip("build/onnx_models absent (run the onnx_interop suite first)");
        return;
    }
    const char *name = names[_i];
    snprintf(path, sizeof path, "%s/onnx_models/%s_eval.onnx", ST_BINARY_DIR, name);
    snprintf(in, sizeof in, "%s/onnx_models/%s_in.npy", ST_BINARY_DIR, name);
    st_npy x;
    st_error e = {0};
    ck_assert_msg(st_npy_read(in, &x, &e) == ST_OK, "%s", e.msg);
    int N = (int)x.shape[0];
    se_compiled *c = compile(path, N, 2, 0);
    float *outs[4], *refs[4];
    size_t ns[4], nr[4];
    int n = run(c, x.data, outs, ns);
    ck_assert_int_eq(stt_engine_ref_forward(path, x.data, N, refs, nr), n);
    for (int k = 0; k < n; k++) {
        ck_assert_uint_eq(ns[k], nr[k]);
        size_t bad = stt_first_mismatch(outs[k], refs[k], ns[k], 1e-5, 1e-4);
        ck_assert_msg(bad == (size_t)-1, "%s output %d: %.8g vs exec %.8g at %zu", name, k,
                      bad == (size_t)-1 ? 0.0 : outs[k][bad], bad == (size_t)-1 ? 0.0 : refs[k][bad], bad);
        free(outs[k]), free(refs[k]);
    }
    se_compiled_free(c);
    st_npy_free(&x);
}
END_TEST

typedef struct {
    const se_compiled *c;
    const float *x;
    float *out[4];
    int rc;
} job;

static void *worker(void *arg) {
    job *j = arg;
    se_context *x = NULL;
    char e[256];
    j->rc = se_context_new(j->c, &x, e, sizeof e);
    for (int it = 0; it < 3 && !j->rc; it++) j->rc = se_run(x, j->x, j->out, e, sizeof e);
    se_context_free(x);
    return NULL;
}

/* Two threads, each with its own context, on one compiled (90% pruned, so partly
 * sparse) yolov5n: bit-identical to a run on this thread. */
START_TEST(reentrant_contexts) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "engine-mt");
    snprintf(path, sizeof path, "%s/yolo-p90.onnx", dir);
    stt_engine_write_model(path, "yolov5n", 96, 0.9, 1, 5);
    se_compiled *c = compile(path, 2, 2, 0);
    ck_assert_double_gt(se_sparse_fraction(c), 0.0);
    size_t n_in;
    int64_t d[4];
    float *x = random_input(c, &n_in, 9, d);
    float *ref[4];
    size_t ns[4];
    int n = run(c, x, ref, ns);
    job jobs[2];
    pthread_t t[2];
    for (int j = 0; j < 2; j++) {
        jobs[j] = (job){.c = c, .x = x};
        for (int k = 0; k < n; k++) jobs[j].out[k] = calloc(ns[k], sizeof(float));
        ck_assert_int_eq(pthread_create(&t[j], NULL, worker, &jobs[j]), 0);
    }
    for (int j = 0; j < 2; j++) {
        pthread_join(t[j], NULL);
        ck_assert_int_eq(jobs[j].rc, 0);
        for (int k = 0; k < n; k++) {
            ck_assert_msg(memcmp(jobs[j].out[k], ref[k], ns[k] * sizeof(float)) == 0,
                          "thread %d output %d differs", j, k);
            free(jobs[j].out[k]);
        }
    }
    for (int k = 0; k < n; k++) free(ref[k]);
    free(x);
    se_compiled_free(c);
}
END_TEST

/* With several threads, the layers schedule runs its convolutions (sparse, and packed
 * dense: direct and in-place 1x1), concats, upsampling and max pools as one team, each
 * thread on its share of the rows: yolov5n at 160x160 (80-wide maps, whose concats copy
 * rows at batch 2; the 20..5-wide ones copy byte ranges; SPPF pools on 5x5), dense and
 * 90% pruned, at batch 1 and 2, on 2 and 3 threads (3 does not divide the maps' rows),
 * equals the single-threaded run. */
START_TEST(team_matches_one_thread) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "engine-team");
    snprintf(path, sizeof path, "%s/yolo160-%s.onnx", dir, _i ? "p90" : "dense");
    stt_engine_write_model(path, "yolov5n", 160, _i ? 0.9 : 0.0, 1, 11);
    const int saved = schedule;
    schedule = SE_SCHEDULE_LAYERS;
    for (int batch = 1; batch <= 2; batch++) {
        se_compiled *one = compile(path, batch, 1, 0);
        size_t n_in, ns[4], nt[4];
        int64_t d[4];
        float *x = random_input(one, &n_in, 21 + batch, d), *ref[4], *got[4];
        const int n = run(one, x, ref, ns);
        for (int threads = 2; threads <= 3; threads++) {
            se_compiled *c = compile(path, batch, threads, 0);
            ck_assert_int_eq(run(c, x, got, nt), n);
            for (int k = 0; k < n; k++) {
                ck_assert_uint_eq(nt[k], ns[k]);
                size_t bad = stt_first_mismatch(got[k], ref[k], ns[k], 1e-6, 1e-5);
                ck_assert_msg(bad == (size_t)-1, "batch %d, %d threads, output %d: %.8g vs %.8g at %zu",
                              batch, threads, k, bad == (size_t)-1 ? 0.0 : got[k][bad],
                              bad == (size_t)-1 ? 0.0 : ref[k][bad], bad);
                free(got[k]);
            }
            se_compiled_free(c);
        }
        for (int k = 0; k < n; k++) free(ref[k]);
        free(x);
        se_compiled_free(one);
    }
    schedule = saved;
}
END_TEST

static char desc[1 << 16];

START_TEST(plan_folds_fuses_and_reuses) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "engine-plan");
    /* cnn-small with BatchNorm kept in the file: folded, ReLU fused */
    snprintf(path, sizeof path, "%s/cnn-bn.onnx", dir);
    stt_engine_write_model(path, "cnn-small", 28, 0.0, 0, 1);
    se_compiled *c = compile(path, 1, 1, 0);
    ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
    ck_assert_msg(!strstr(desc, "BatchNorm"), "a BatchNorm step is left:\n%s", desc);
    ck_assert_msg(strstr(desc, "bn-folded,relu"), "no folded BN + fused ReLU:\n%s", desc);
    ck_assert_msg(!strstr(desc, " ReLU "), "a ReLU step is left:\n%s", desc);
    ck_assert_msg(strstr(desc, "schedule columns ("), "%s", desc);
    int64_t dims[4];
    ck_assert_int_eq(se_output_shape(c, 0, dims), 2);
    ck_assert_int_eq(dims[0], 1);
    ck_assert_int_eq(dims[1], 10);
    ck_assert_ptr_nonnull(se_output_name(c, 0));
    se_compiled_free(c);
    /* yolov5n: residual Adds fused, buffers reused by liveness */
    snprintf(path, sizeof path, "%s/yolo.onnx", dir);
    stt_engine_write_model(path, "yolov5n", 128, 0.0, 1, 2);
    c = compile(path, 1, 1, 0);
    ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
    ck_assert_msg(strstr(desc, "silu,add]"), "no fused residual add:\n%s", desc);
    ck_assert_int_eq(se_num_outputs(c), 3);
    size_t all = stt_engine_activation_bytes(path, 1), ctx = se_context_bytes(c);
    /* columns: band buffers per thread, section inputs live to the section's end */
    ck_assert_msg(ctx < all * 6 / 10, "context %zu bytes vs %zu bytes of activations", ctx, all);
    se_compiled_free(c);
    schedule = SE_SCHEDULE_LAYERS;
    c = compile(path, 1, 1, 0);
    ctx = se_context_bytes(c);
    ck_assert_msg(ctx < all / 2, "layers: context %zu bytes vs %zu bytes of activations", ctx, all);
    /* batch 1: every concat's inputs are written in place (the Concat steps elided);
     * batch 2, where a sample's channel ranges are not contiguous, copies */
    ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
    int concats = 0, elided = 0;
    for (const char *l = desc; (l = strstr(l, " Concat ")); l++, concats++)
        elided += strstr(l, "elided") && strstr(l, "elided") < strchr(l, '\n');
    ck_assert_msg(concats > 0 && elided == concats, "%d of %d concats elided:\n%s", elided, concats, desc);
    se_compiled_free(c);
    c = compile(path, 2, 1, 0);
    ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
    ck_assert_msg(strstr(desc, " Concat ") && !strstr(desc, "elided"), "batch 2:\n%s", desc);
    schedule = SE_SCHEDULE_COLUMNS;
    se_compiled_free(c);
    /* one 3x3 conv: sparse kernels at 95%, dense when dense */
    for (int pruned = 0; pruned <= 1; pruned++) {
        snprintf(path, sizeof path, "%s/conv-%d.onnx", dir, pruned);
        stt_engine_write_model(path, "conv3x3", 32, pruned ? 0.95 : 0.0, 1, 3);
        c = compile(path, 1, 1, 0);
        ck_assert_int_eq(se_describe(c, desc, sizeof desc), 0);
        /* dense: on the packed kernels where the CPU has AVX2, im2col + BLAS elsewhere */
        ck_assert_msg(strstr(desc, pruned ? "kernel sparse (95% zeros"
                                          : st_cpu_select_isa() >= ST_ISA_AVX2 ? "kernel dense packed (0% zeros"
                                                                                : "kernel dense (0% zeros"),
                      "%s", desc);
        ck_assert_double_eq(se_sparse_fraction(c), pruned ? 1.0 : 0.0);
        se_compiled_free(c);
        if (pruned) { /* dense requested: no sparse kernels */
            c = compile(path, 1, 1, 1);
            ck_assert_double_eq(se_sparse_fraction(c), 0.0);
            se_compiled_free(c);
        }
    }
}
END_TEST

START_TEST(bad_input) {
    se_model *m = (se_model *)1;
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "engine-bad");
    snprintf(path, sizeof path, "%s/missing.onnx", dir);
    ck_assert_int_eq(se_load(path, &m, err, sizeof err), 2);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, path), "message does not name the file: %s", err);
    snprintf(path, sizeof path, "%s/garbage.onnx", dir);
    FILE *f = fopen(path, "wb");
    fputs("this is not a protobuf \x01\x02\x03", f);
    fclose(f);
    ck_assert_int_eq(se_load(path, &m, err, sizeof err), 2);
    ck_assert_msg(strstr(err, path), "message does not name the file: %s", err);
    snprintf(path, sizeof path, "%s/ok.onnx", dir);
    stt_engine_write_model(path, "conv3x3", 32, 0.0, 1, 3);
    ck_assert_int_eq(se_load(path, &m, err, sizeof err), 0);
    se_options o;
    se_options_default(&o);
    ck_assert_int_eq(o.batch, 1);
    ck_assert_int_eq(o.schedule, SE_SCHEDULE_LAYERS);
    se_compiled *c = (se_compiled *)1;
    o.batch = 0;
    ck_assert_int_eq(se_compile(m, &o, &c, err, sizeof err), 2);
    ck_assert_ptr_null(c);
    o.batch = 1, o.threads = -1;
    ck_assert_int_eq(se_compile(m, &o, &c, err, sizeof err), 2);
    o.threads = 0, o.schedule = 7;
    ck_assert_int_eq(se_compile(m, &o, &c, err, sizeof err), 2);
    se_model_free(m);
}
END_TEST

START_TEST(example_program) {
    char dir[512], path[700], out[8192];
    stt_tmpdir(dir, sizeof dir, "engine-example");
    snprintf(path, sizeof path, "%s/cnn.onnx", dir);
    stt_engine_write_model(path, "cnn-small", 28, 0.9, 1, 4);
    ck_assert_int_eq(stt_run_tool("se_example", path, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "output 0") && strstr(out, "[1, 10]"), "%s", out);
    char args[800];
    snprintf(args, sizeof args, "%s/missing.onnx", dir);
    ck_assert_int_eq(stt_run_tool("se_example", args, out, sizeof out), 2);
}
END_TEST

Suite *engine_api_suite(void) {
    Suite *s = suite_create("engine_api");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, matches_executor_and_ort, 0, 2);
    tcase_add_loop_test(tc, torchvision_models, 0, 5);
    tcase_add_test(tc, reentrant_contexts);
    tcase_add_loop_test(tc, team_matches_one_thread, 0, 2);
    tcase_add_test(tc, plan_folds_fuses_and_reuses);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, example_program);
    suite_add_tcase(s, tc);
    return s;
}
