/* sparseengine: the inference front end. Only this file prints usage and exits.
 *   sparseengine info MODEL.onnx
 *   sparseengine run MODEL.onnx --input x.npy [--output y.npy] [--threads N]
 * `run` executes any importable model layer by layer (the compiled engine with tensor
 * columns and `bench` arrive with the engine issue). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli.h"
#include "st_exec.h"
#include "st_npy.h"
#include "st_onnx.h"
#include "se_cli.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparseengine info MODEL.onnx\n"
            "       sparseengine bench MODEL.onnx [-b BATCH] [-t SECONDS] [-w WARMUP] [-ncores N]\n"
            "                          [--schedule layers|columns] [--dense] [-x RESULT.json]\n"
            "       sparseengine run MODEL.onnx --input X.npy [--output Y.npy] [--threads N]\n"
            "       sparseengine run MODEL.onnx --image IMG.png [--threads N]\n"
            "\n"
            "info  prints the model's producer, opset, inputs and outputs, operator counts,\n"
            "      parameter count and the sparsity of each convolution / Gemm weight.\n"
            "run   runs the model on a NumPy array (float32 or float64, [N, C, H, W] or [N, F];\n"
            "      N is any batch size) and writes the output as float32 .npy (default:\n"
            "      prints its shape and first values). With --image: the PNG is preprocessed as\n"
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

static int cmd_info(int argc, char **argv) {
    if (argc != 1 || argv[0][0] == '-') return usage(argc == 1 ? stdout : stderr, argc == 1 ? 0 : 2);
    st_error err = {0};
    st_onnx_model *m = NULL;
    st_status rc = st_onnx_read_file(argv[0], &m, &err);
    if (rc != ST_OK) return fail("info", rc, &err);
    printf("model: %s\n", argv[0]);
    st_onnx_print_info(m, stdout);
    st_onnx_model_free(m);
    return 0;
}

/* An output reached through Flatten or a fully connected layer is [N, F] in ONNX; a
 * spatial one is [N, C, H, W]. */
static int output_is_flat(const st_graph *g) {
    int v = g->output;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const st_node *nd = &g->nodes[i];
        if (nd->output != v) continue;
        if (nd->op == ST_OP_FLATTEN || nd->op == ST_OP_LINEAR) return 1;
        if (nd->op == ST_OP_INPUT || nd->n_inputs == 0) return 0;
        if (nd->op == ST_OP_CONV2D || nd->op == ST_OP_MAXPOOL || nd->op == ST_OP_AVGPOOL ||
            nd->op == ST_OP_GLOBALAVGPOOL || nd->op == ST_OP_UPSAMPLE || nd->op == ST_OP_CONCAT)
            return 0;
        v = nd->inputs[0];
    }
    return 0;
}

static int cmd_run(int argc, char **argv) {
    const char *model = NULL, *in = NULL, *out = NULL, *image = NULL;
    int threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (a[0] != '-') {
            if (model) return usage(stderr, 2);
            model = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "sparseengine run: missing value for %s\n", a);
            return 2;
        }
        if (!strcmp(a, "--input")) in = v;
        else if (!strcmp(a, "--image")) image = v;
        else if (!strcmp(a, "--output")) out = v;
        else if (!strcmp(a, "--threads") && (threads = atoi(v)) > 0) {}
        else {
            fprintf(stderr, "sparseengine run: bad option '%s %s'\n(see sparseengine --help)\n", a, v);
            return 2;
        }
        i++;
    }
    if (threads > 0) omp_set_num_threads(threads);
    if (model && image) return se_cmd_run_image(model, image);
    if (!model || !in) {
        fprintf(stderr, "sparseengine run: needs MODEL.onnx and --input X.npy (or --image IMG.png)\n"
                        "(see sparseengine --help)\n");
        return 2;
    }
    st_error err = {0};
    st_onnx_model *m = NULL;
    st_graph *g = NULL;
    st_npy x = {0};
    st_exec e;
    memset(&e, 0, sizeof e);
    st_status rc = st_onnx_read_file(model, &m, &err);
    if (rc == ST_OK) rc = st_onnx_import(m, NULL, &g, &err);
    if (rc == ST_OK) rc = st_npy_read(in, &x, &err);
    if (rc != ST_OK) goto done;
    st_shape s = g->values[g->input];
    int ok = x.ndim >= 1 && x.shape[0] >= 1 &&
             ((x.ndim == 4 && x.shape[1] == s.c && x.shape[2] == s.h && x.shape[3] == s.w) ||
              (x.ndim == 2 && s.h == 1 && s.w == 1 && x.shape[1] == s.c));
    if (!ok) {
        rc = st_errorf(&err, ST_ERR_INPUT, "%s: array shape does not fit %s, which takes [N, %d, %d, %d]",
                       in, model, s.c, s.h, s.w);
        goto done;
    }
    int N = (int)x.shape[0];
    if ((rc = st_exec_plan(&e, g, N, 0, &err)) != ST_OK) goto done;
    if ((rc = st_exec_sparse_repack(&e, &err)) != ST_OK) goto done;
    memcpy(st_exec_input(&e), x.data, x.numel * sizeof(float));
    st_exec_forward(&e, N, 0);
    st_shape o = g->values[g->output];
    int flat = output_is_flat(g);
    int64_t shape[4] = {N, o.c, o.h, o.w};
    size_t n = (size_t)N * st_shape_numel(o);
    if (out) {
        rc = st_npy_write(out, flat ? 2 : 4, shape, st_exec_output(&e), &err);
        if (rc == ST_OK) printf("wrote %s: ", out);
    }
    if (rc == ST_OK) {
        if (flat) printf("output [%d, %d]", N, o.c);
        else printf("output [%d, %d, %d, %d]", N, o.c, o.h, o.w);
        printf(" first values:");
        for (size_t i = 0; i < n && i < 6; i++) printf(" %.6g", st_exec_output(&e)[i]);
        printf("\n");
    }
done:
    st_exec_free(&e);
    st_npy_free(&x);
    st_graph_free(g);
    st_onnx_model_free(m);
    return rc == ST_OK ? 0 : fail("run", rc, &err);
}

int main(int argc, char **argv) {
    st_cli_prefer_passive_wait(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return usage(argc < 2 ? stderr : stdout, argc < 2 ? 2 : 0);
    if (!strcmp(argv[1], "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(argv[1], "bench")) return se_cmd_bench(argc - 2, argv + 2);
    fprintf(stderr, "sparseengine: unknown command '%s'\n(see sparseengine --help)\n", argv[1]);
    return 2;
}
