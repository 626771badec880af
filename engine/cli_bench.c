/* sparseengine bench: throughput and latency of a compiled model, as users of such tools
 * expect to read them (DeepSparse-style lines), optionally as JSON with percentiles. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_cli.h"
#include "sparseengine.h"
#include "st_cpu.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p) {
    double k = p / 100.0 * (n - 1);
    int i = (int)k;
    return i + 1 < n ? v[i] + (k - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparseengine bench MODEL.onnx [-b BATCH] [-t SECONDS] [-w WARMUP]\n"
            "                          [-ncores N] [--schedule layers|columns] [--dense]\n"
            "                          [--maps blocked|nchw] [--l2 KIB] [-x RESULT.json] [--profile]\n"
            "\n"
            "Compiles MODEL for the batch size and runs it on random inputs for SECONDS\n"
            "(default 10) after WARMUP seconds (default 2); prints throughput and latency.\n"
            "-ncores: threads (default: all CPUs). --dense: no sparse kernels (comparison).\n"
            "--maps: at batch 1 on several threads, maps between sparse layers are stored\n"
            "blocked by thread (default); nchw keeps every map NCHW (comparison).\n"
            "--l2: the per-core L2 cache in KiB that the columns schedule plans for (default:\n"
            "read from /sys; 1024 where it is not there): a run of layers becomes a section\n"
            "of columns only where each thread's share of the maps it keeps out of memory is\n"
            "bigger, and its bands are sized to half of it.\n"
            "-x: the same figures plus percentiles 50/90/95/99 as JSON.\n"
            "--profile: afterwards, a second timed pass prints every plan step's mean time\n"
            "per run and share, next to the step as `sparseengine info --plan` shows it,\n"
            "and on several threads how long each waited at the barriers between steps\n"
            "(uneven work, or a core slower than the others).\n"
            "On several threads it also prints how long two threads take to pass a cache\n"
            "line back and forth, before and after timing (Thread Round Trip): a VM may\n"
            "place its vCPUs on one core complex (tens of ns) or on two (hundreds), and\n"
            "multi-threaded latencies follow it.\n");
    return code;
}

/* Per-step times of a second pass, each next to its line of the plan. */
static int print_profile(se_compiled *c, se_context *x, const float *in, float **outs, double secs,
                         char *err, size_t errcap) {
    int rc = se_context_profile(x, 1);
    if (rc) return snprintf(err, errcap, "out of memory"), rc;
    double t0 = omp_get_wtime();
    int runs = 0;
    while (!rc && (omp_get_wtime() - t0 < secs || runs < 3)) rc = se_run(x, in, outs, err, errcap), runs++;
    const int n = se_num_steps(c);
    double *ms = calloc((size_t)n, sizeof *ms), total = 0;
    char *plan = rc ? NULL : se_cli_describe(c);
    if (!rc && (!ms || !plan)) rc = 4, snprintf(err, errcap, "out of memory");
    if (!rc) {
        se_context_step_ms(x, ms, n);
        for (int i = 0; i < n; i++) total += ms[i];
        printf("\nProfile (%d runs, mean ms per run; a tensor-column section on its first step):\n", runs);
        printf("%8s %6s  step\n", "ms", "share");
        int step = 0;
        for (char *line = strtok(plan, "\n"); line; line = strtok(NULL, "\n")) {
            if (sscanf(line, "%d", &step) != 1 || step < 0 || step >= n) continue;
            printf("%8.3f %5.1f%%  %s\n", ms[step], total > 0 ? 100 * ms[step] / total : 0.0, line);
        }
        printf("%8.3f %5.1f%%  total of the steps\n", total, 100.0);
        enum { MAX_SHOWN = 256 }; /* threads whose waits are printed */
        double wait[MAX_SHOWN];
        const int nt = se_context_wait_ms(x, wait, MAX_SHOWN);
        if (nt > 1) { /* a gap between threads: uneven work, or one core slower than another */
            printf("Barrier waits (mean ms per run, thread 0..%d):", nt - 1);
            for (int t = 0; t < nt; t++) printf(" %.4f", wait[t]);
            printf("\n");
        }
    }
    free(ms), free(plan);
    se_context_profile(x, 0);
    return rc;
}

int se_cmd_bench(int argc, char **argv) {
    const char *path = NULL, *json = NULL;
    int profile = 0;
    double secs = 10, warm = 2;
    se_options o;
    se_options_default(&o);
    o.threads = omp_get_num_procs();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (a[0] != '-') {
            if (path) return usage(stderr, 2);
            path = a;
            continue;
        }
        if (!strcmp(a, "--profile")) { profile = 1; continue; }
        int used, r = se_cli_compile_opt(a, v, &o, 1, &used);
        if (r == 0 && v) {
            used = 2, r = 1;
            if (!strcmp(a, "-t") || !strcmp(a, "--time")) r = (secs = atof(v)) > 0 ? 1 : -1;
            else if (!strcmp(a, "-w") || !strcmp(a, "--warmup")) r = (warm = atof(v)) >= 0 ? 1 : -1;
            else if (!strcmp(a, "-x")) json = v;
            else r = 0;
        }
        if (r != 1) {
            fprintf(stderr, "sparseengine bench: bad option '%s%s%s'\n(see sparseengine bench --help)\n",
                    a, v && used == 2 ? " " : "", v && used == 2 ? v : "");
            return 2;
        }
        i += used - 1;
    }
    if (!path) return usage(stderr, 2);
    char err[512] = "";
    se_model *m = NULL;
    se_compiled *c = NULL;
    se_context *x = NULL;
    float *in = NULL, **outs = NULL;
    double *lat = NULL;
    int rc = se_load(path, &m, err, sizeof err);
    if (!rc) rc = se_compile(m, &o, &c, err, sizeof err);
    if (!rc) rc = se_context_new(c, &x, err, sizeof err);
    if (rc) goto done;
    const size_t n_in = se_cli_numel(c, -1);
    in = malloc(n_in * sizeof *in);
    outs = calloc((size_t)se_num_outputs(c), sizeof *outs);
    if (!in || !outs || se_cli_alloc_outputs(c, outs)) { rc = 4; snprintf(err, sizeof err, "out of memory"); goto done; }
    unsigned s = 12345;
    for (size_t i = 0; i < n_in; i++) s = s * 1103515245u + 12345u, in[i] = (float)((s >> 8) & 0xffff) / 65536.0f;
    /* where the threads sit now (see st_thread_roundtrip_ns), before and after timing */
    const int probe = o.threads >= 2;
    const double rt0 = probe ? st_thread_roundtrip_ns(2000) : 0.0;
    double t0 = omp_get_wtime();
    while (!rc && omp_get_wtime() - t0 < warm) rc = se_run(x, in, outs, err, sizeof err);
    int cap = 1024, n = 0;
    lat = malloc((size_t)cap * sizeof *lat);
    if (!lat) { rc = 4; goto done; }
    double start = omp_get_wtime();
    while (!rc && (omp_get_wtime() - start < secs || n < 3)) {
        double a = omp_get_wtime();
        rc = se_run(x, in, outs, err, sizeof err);
        double b = omp_get_wtime();
        if (n == cap) {
            double *q = realloc(lat, (size_t)(cap *= 2) * sizeof *lat);
            if (!q) { rc = 4; break; }
            lat = q;
        }
        lat[n++] = 1e3 * (b - a);
    }
    if (rc) goto done;
    double total = omp_get_wtime() - start, mean = 0, var = 0;
    const double rt1 = probe ? st_thread_roundtrip_ns(2000) : 0.0;
    for (int i = 0; i < n; i++) mean += lat[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (lat[i] - mean) * (lat[i] - mean);
    double sd = n > 1 ? sqrt(var / (n - 1)) : 0;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double thr = (double)o.batch * n / total, frac = se_sparse_fraction(c);
    const char *sched = o.schedule == SE_SCHEDULE_COLUMNS ? "columns" : "layers";
    printf("Original Model Path: %s\nBatch Size: %d\nScenario: sync\nCores: %d\nSchedule: %s\n"
           "Sparse kernels: %.1f%% of multiply-adds%s\n",
           path, o.batch, o.threads, sched, 100 * frac, o.dense ? " (--dense)" : "");
    printf("Throughput (items/sec): %.4f\nLatency Mean (ms/batch): %.4f\nLatency Median (ms/batch): %.4f\n"
           "Latency Std (ms/batch): %.4f\nIterations: %d\n",
           thr, mean, pct(lat, n, 50), sd, n);
    if (probe) printf("Thread Round Trip (ns): %.0f before, %.0f after\n", rt0, rt1);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) { rc = 2; snprintf(err, sizeof err, "%s: cannot write", json); goto done; }
        fprintf(f, "{\"model\": \"%s\", \"batch_size\": %d, \"cores\": %d, \"schedule\": \"%s\", "
                   "\"dense\": %s, \"sparse_fraction\": %.6f, \"throughput_items_per_sec\": %.6f, "
                   "\"latency_mean_ms\": %.6f, \"latency_median_ms\": %.6f, \"latency_std_ms\": %.6f, "
                   "\"iterations\": %d, \"latency_percentiles_ms\": {\"50\": %.6f, \"90\": %.6f, "
                   "\"95\": %.6f, \"99\": %.6f}, \"thread_roundtrip_ns\": {\"before\": %.1f, \"after\": %.1f}}\n",
                path, o.batch, o.threads, o.schedule == SE_SCHEDULE_COLUMNS ? "columns" : "layers", o.dense ? "true" : "false", frac, thr, mean,
                pct(lat, n, 50), sd, n, pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 95), pct(lat, n, 99), rt0, rt1);
        if (fclose(f)) { rc = 1; snprintf(err, sizeof err, "%s: write failed", json); }
    }
    if (profile && !rc) rc = print_profile(c, x, in, outs, secs, err, sizeof err);
done:
    if (rc) fprintf(stderr, "sparseengine bench: error: %s\n", err);
    for (int k = 0; outs && k < se_num_outputs(c); k++) free(outs[k]);
    free(outs), free(in), free(lat);
    se_context_free(x);
    se_compiled_free(c);
    se_model_free(m);
    return rc;
}
