/* The engine (se_run) against the training executor's eval forward (st_exec_forward) on
 * one model file: ms per run, min and median.
 *   bench_engine [--model yolov5n] [--imgsz 320] [--batch 1] [--threads 2] [--iters 10]
 *                [--sparsity S] [--classes 80]
 * --sparsity S zeroes a random fraction S of every prunable weight (weights and masks)
 * before the ONNX export (BN folded by the exporter). The executor runs twice: dense
 * only, and with its own sparse kernel choice (st_exec_sparse_repack); the engine runs
 * with its choice and with dense forced, each with the layer and the column schedule. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparseengine.h"
#include "st_exec.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_rng.h"
#include "st_tool.h"

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmpd);
    printf("  %-34s min %8.2f ms  median %8.2f ms\n", what, 1e3 * t[0], 1e3 * t[n / 2]);
}

int main(int argc, char **argv) {
    const char *model = "yolov5n";
    long imgsz = 320, batch = 1, threads = 2, iters = 10, nc = 80;
    double sparsity = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        long *dst = !strcmp(a, "--imgsz") ? &imgsz : !strcmp(a, "--batch") ? &batch
                  : !strcmp(a, "--threads") ? &threads : !strcmp(a, "--iters") ? &iters
                  : !strcmp(a, "--classes") ? &nc : NULL;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--sparsity")) sparsity = atof(v);
        else if (!dst || st_tool_int(v, 1, 100000, dst)) {
            fprintf(stderr, "usage: bench_engine [--model M] [--imgsz N] [--batch N] [--threads N] "
                            "[--iters N] [--sparsity S] [--classes N]\n");
            return 2;
        }
    }
    st_error err = {0};
    st_graph *g = NULL;
    st_status rc = st_model_build(model, 3, (int)imgsz, (int)imgsz, (int)nc, &g, &err);
    if (rc == ST_OK) rc = st_graph_finalize(g, 1, &err);
    if (rc != ST_OK) return fprintf(stderr, "bench_engine: %s\n", err.msg), st_exit_code(rc);
    st_rng r;
    st_rng_seed(&r, 7);
    for (int p = 0; p < g->n_params && sparsity > 0; p++) {
        if (!g->params[p].prunable) continue;
        unsigned char *m = st_param_mask(g, p);
        float *w = st_param_data(g, p);
        for (size_t j = 0; j < g->params[p].numel; j++)
            if (st_rng_uniform(&r) < sparsity) m[j] = 0, w[j] = 0.0f;
    }
    char path[256];
    snprintf(path, sizeof path, "/tmp/bench_engine_%d.onnx", (int)getpid());
    if ((rc = st_onnx_export_file(g, NULL, path, &err)) != ST_OK)
        return fprintf(stderr, "bench_engine: %s\n", err.msg), st_exit_code(rc);
    st_graph_free(g);
    printf("%s @%ld, batch %ld, %ld threads, sparsity %.0f%%, %ld runs\n", model, imgsz, batch,
           threads, 100 * sparsity, iters);

    /* the executor on the imported file (the same graph the engine compiles) */
    st_onnx_model *om = NULL;
    if ((rc = st_onnx_read_file(path, &om, &err)) != ST_OK || (rc = st_onnx_import(om, NULL, &g, &err)) != ST_OK)
        return fprintf(stderr, "bench_engine: %s\n", err.msg), st_exit_code(rc);
    st_onnx_model_free(om);
    /* the executor chooses from the masks: masks of the file's zeros, as after training */
    for (int p = 0; p < g->n_params; p++) {
        if (!g->params[p].prunable) continue;
        unsigned char *mk = st_param_mask(g, p);
        const float *w = st_param_data(g, p);
        for (size_t j = 0; j < g->params[p].numel; j++) mk[j] = w[j] != 0.0f;
    }
    size_t n_in = (size_t)batch * st_shape_numel(g->values[g->input]);
    float *x = malloc(n_in * sizeof(float));
    for (size_t i = 0; i < n_in; i++) x[i] = st_rng_uniform(&r);
    double *t = malloc((size_t)iters * sizeof *t);
    omp_set_num_threads((int)threads);
    size_t n_out0 = (size_t)batch * st_shape_numel(g->values[g->outputs[0]]);
    float *ref = malloc(n_out0 * sizeof(float));
    for (int dense = 1; dense >= 0; dense--) {
        st_exec e;
        if ((rc = st_exec_plan(&e, g, (int)batch, 0, &err)) != ST_OK) return fprintf(stderr, "%s\n", err.msg), 1;
        e.dense_only = dense;
        if ((rc = st_exec_sparse_repack(&e, &err)) != ST_OK) return fprintf(stderr, "%s\n", err.msg), 1;
        memcpy(st_exec_input(&e), x, n_in * sizeof(float));
        for (int w = 0; w < 2; w++) st_exec_forward(&e, (int)batch, 0);
        for (int i = 0; i < iters; i++) {
            double t0 = omp_get_wtime();
            st_exec_forward(&e, (int)batch, 0);
            t[i] = omp_get_wtime() - t0;
        }
        char what[96];
        snprintf(what, sizeof what, "st_exec_forward eval (%s, %d sparse)", dense ? "dense" : "own choice",
                 st_exec_sparse_count(&e));
        report(what, t, (int)iters);
        if (dense) memcpy(ref, e.act[g->outputs[0]], n_out0 * sizeof(float));
        st_exec_free(&e);
    }
    st_graph_free(g);

    char msg[1024];
    se_model *m = NULL;
    if (se_load(path, &m, msg, sizeof msg)) return fprintf(stderr, "%s\n", msg), 2;
    remove(path);
    for (int run = 0; run < 4; run++) {
        const int dense = run < 2, sched = run & 1 ? SE_SCHEDULE_COLUMNS : SE_SCHEDULE_LAYERS;
        se_options o;
        se_options_default(&o);
        o.batch = (int)batch, o.threads = (int)threads, o.dense = dense, o.schedule = sched;
        se_compiled *c = NULL;
        se_context *cx = NULL;
        if (se_compile(m, &o, &c, msg, sizeof msg) || se_context_new(c, &cx, msg, sizeof msg))
            return fprintf(stderr, "%s\n", msg), 1;
        float *outs[4] = {0};
        for (int k = 0; k < se_num_outputs(c); k++) {
            int64_t d[4];
            int nd = se_output_shape(c, k, d);
            size_t n = 1;
            for (int j = 0; j < nd; j++) n *= (size_t)d[j];
            outs[k] = malloc(n * sizeof(float));
        }
        for (int w = 0; w < 2; w++) se_run(cx, x, outs, msg, sizeof msg);
        for (int i = 0; i < iters; i++) {
            double t0 = omp_get_wtime();
            se_run(cx, x, outs, msg, sizeof msg);
            t[i] = omp_get_wtime() - t0;
        }
        double md = 0;
        for (size_t i = 0; i < n_out0; i++) {
            double dd = (outs[0][i] - ref[i]) / (1e-3 + (ref[i] < 0 ? -ref[i] : ref[i]));
            if (dd < 0) dd = -dd;
            if (dd > md) md = dd;
        }
        char what[96];
        snprintf(what, sizeof what, "se_run %s (%s, %.0f%% MACs sparse)",
                 sched == SE_SCHEDULE_COLUMNS ? "columns" : "layers", dense ? "dense" : "own choice",
                 100 * se_sparse_fraction(c));
        report(what, t, (int)iters);
        printf("    context %.1f MB; output 0 vs executor: max rel err %.2g\n",
               se_context_bytes(c) / 1e6, md);
        for (int k = 0; k < 4; k++) free(outs[k]);
        se_context_free(cx);
        se_compiled_free(c);
    }
    se_model_free(m);
    free(x), free(t), free(ref);
    return 0;
}
