/* sparseengine: the inference front end (info here; bench, run in engine/cli_*.c).
 * Library code returns statuses; only the front end prints usage and picks exit codes. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_onnx.h"
#include "se_cli.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparseengine info MODEL.onnx [--plan [-b BATCH] [-ncores N] [--schedule S] [--dense]\n"
            "                                            [--maps M] [--l2 KIB]]\n"
            "       sparseengine bench MODEL.onnx [-b BATCH] [-t SECONDS] [-w WARMUP] [-ncores N]\n"
            "                          [--schedule layers|columns] [--dense] [--maps blocked|nchw]\n"
            "                          [--l2 KIB]\n"
            "                          [-x RESULT.json]\n"
            "       sparseengine run MODEL.onnx --input [NAME=]X.npy [--output Y.npy] [--threads N]\n"
            "                        [--schedule layers|columns] [--dense]\n"
            "       sparseengine run MODEL.onnx --image IMG.png [--threads N]\n"
            "\n"
            "info  prints the model's producer, opset, inputs and outputs, operator counts,\n"
            "      parameter count and the sparsity of each convolution / Gemm weight.\n"
            "      --plan: compiles the model as bench does and prints the plan instead: per\n"
            "      step the fused epilogue, the kernel chosen (sparse or dense) and why, and\n"
            "      the tile (layer or tensor-column section); memory of a context.\n"
            "run   runs the compiled model (the plan bench measures) on a NumPy array (float32\n"
            "      or float64, [N, C, H, W] or [N, F]; N is any batch size) and writes the\n"
            "      outputs as float32 .npy (default: prints their shapes and first values;\n"
            "      see run --help). With --image: the PNG is preprocessed as\n"
            "      the model's metadata says (our exports record input size, normalisation,\n"
            "      task and class names) and the top-5 classes or the detections are printed.\n"
            "\n"
            "bench compiles the model (BatchNorm folded, activations fused, sparse kernels where\n"
            "      they are faster) and reports throughput and latency (see bench --help).\n"
            "\n"
            "Exit codes: 0 done, 2 bad input (file, model, array), 1 other errors.\n");
    return code;
}

static int fail(const char *cmd, st_status rc, const st_error *err) {
    fprintf(stderr, "sparseengine %s: error: %s\n", cmd, err->msg);
    return st_exit_code(rc);
}

/* info --plan: compile as bench would and print the plan (kernel choices and reasons,
 * fused epilogues, memory, tensor-column sections). */
static int info_plan(const char *path, const se_options *o) {
    char err[512] = "";
    se_model *m = NULL;
    se_compiled *c = NULL;
    char *buf = NULL;
    int rc = se_load(path, &m, err, sizeof err);
    if (!rc) rc = se_compile(m, o, &c, err, sizeof err);
    if (!rc && !(buf = se_cli_describe(c))) rc = 4, snprintf(err, sizeof err, "out of memory");
    if (!rc) fputs(buf, stdout);
    else fprintf(stderr, "sparseengine info: error: %s\n", err);
    free(buf);
    se_compiled_free(c);
    se_model_free(m);
    return se_cli_exit(rc);
}

static int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int plan = 0;
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
        if (!strcmp(a, "--plan")) { plan = 1; continue; }
        int used, r = se_cli_compile_opt(a, v, &o, 1, &used);
        if (r != 1) {
            fprintf(stderr, "sparseengine info: %s '%s'\n(see sparseengine --help)\n",
                    r == 0 ? "unknown option" : "bad or missing value for", a);
            return 2;
        }
        i += used - 1;
    }
    if (!path) return usage(stderr, 2);
    if (plan) return info_plan(path, &o);
    st_error err = {0};
    st_onnx_model *m = NULL;
    st_status rc = st_onnx_read_file(path, &m, &err);
    if (rc != ST_OK) return fail("info", rc, &err);
    printf("model: %s\n", path);
    st_onnx_print_info(m, stdout);
    st_onnx_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    /* No st_cli_prefer_passive_wait here: between the many short layers of one inference
     * libgomp's default (spin briefly, then sleep) saves a futex wake-up per layer
     * (yolov5n 95% at 320, 2 threads: 5.7 -> 4.3 ms median; ONNX Runtime's pool spins
     * too). OMP_WAIT_POLICY=PASSIVE still applies when the user sets it. */
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return usage(argc < 2 ? stderr : stdout, argc < 2 ? 2 : 0);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "run")) return se_cmd_run(argc - 2, argv + 2);
    if (!strcmp(argv[1], "bench")) return se_cmd_bench(argc - 2, argv + 2);
    fprintf(stderr, "sparseengine: unknown command '%s'\n(see sparseengine --help)\n", argv[1]);
    return 2;
}
