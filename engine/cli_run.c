/* sparseengine run MODEL.onnx --input [NAME=]x.npy [--output y.npy]: one run of the
 * compiled engine (the same plan `bench` measures) on a NumPy array; the batch size is
 * the array's first dimension. --image goes to cli_image.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_cli.h"
#include "st_graph.h"
#include "st_npy.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparseengine run MODEL.onnx --input [NAME=]X.npy [--output Y.npy]\n"
            "                        [--threads N] [--schedule layers|columns] [--dense]\n"
            "                        [--maps blocked|nchw] [--l2 KIB]\n"
            "       sparseengine run MODEL.onnx --image IMG.png [--threads N] ...\n"
            "\n"
            "Compiles MODEL for the array's batch size (its first dimension) and runs it once.\n"
            "X.npy: float32 or float64, [N, C, H, W] or [N, F]; NAME, when given, must be the\n"
            "model's input name. Y.npy gets the output as float32; a model with several\n"
            "outputs writes one file per output, Y.<output name>.npy. Without --output the\n"
            "shape and first values of each output are printed.\n"
            "--image: the PNG is preprocessed as the model's metadata says and the top-5\n"
            "classes or the detections are printed.\n");
    return code;
}

/* Y.npy + name -> Y.name.npy (characters outside [A-Za-z0-9._-] become '_'). */
static void output_path(char *dst, size_t cap, const char *base, const char *name) {
    size_t n = strlen(base);
    if (n >= 4 && !strcmp(base + n - 4, ".npy")) n -= 4;
    int at = snprintf(dst, cap, "%.*s.", (int)n, base);
    for (const char *p = name; *p && at + 5 < (int)cap; p++) {
        char ch = *p;
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '-' || ch == '_';
        dst[at++] = ok ? ch : '_';
    }
    snprintf(dst + at, cap - (size_t)at, ".npy");
}

int se_cmd_run(int argc, char **argv) {
    const char *model = NULL, *in = NULL, *in_name = NULL, *out = NULL, *image = NULL;
    se_options o;
    se_options_default(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (a[0] != '-') {
            if (model) return usage(stderr, 2);
            model = a;
            continue;
        }
        int used, r = se_cli_compile_opt(a, v, &o, 0, &used);
        if (r == 0 && v && (!strcmp(a, "--input") || !strcmp(a, "--image") || !strcmp(a, "--output"))) {
            used = 2, r = 1;
            if (!strcmp(a, "--image")) image = v;
            else if (!strcmp(a, "--output")) out = v;
            else if (in) {
                fprintf(stderr, "sparseengine run: more than one --input; the engine's models take "
                                "one input tensor\n");
                return 2;
            } else {
                const char *eq = strchr(v, '=');
                in = eq ? eq + 1 : v;
                in_name = eq ? v : NULL;
            }
        }
        if (r != 1) {
            fprintf(stderr, "sparseengine run: %s '%s%s%s'\n(see sparseengine run --help)\n",
                    r == 0 ? "unknown option" : "bad or missing value for", a, v && used == 2 ? " " : "",
                    v && used == 2 ? v : "");
            return 2;
        }
        i += used - 1;
    }
    if (model && image && !in) return se_cmd_run_image(model, image, &o);
    if (!model || !in || image) {
        fprintf(stderr, "sparseengine run: needs MODEL.onnx and one of --input X.npy or --image "
                        "IMG.png\n(see sparseengine run --help)\n");
        return 2;
    }
    char err[512] = "";
    st_error e = {0};
    st_npy x = {0};
    se_model *m = NULL;
    se_compiled *c = NULL;
    se_context *cx = NULL;
    float *outs[ST_MAX_OUTPUTS] = {0};
    int rc = se_load(model, &m, err, sizeof err);
    if (!rc && st_npy_read(in, &x, &e) != ST_OK) rc = 2, snprintf(err, sizeof err, "%.500s", e.msg);
    if (!rc && (x.ndim < 1 || x.shape[0] < 1))
        rc = 2, snprintf(err, sizeof err, "%s: an empty array; the first dimension is the batch", in);
    if (rc) goto done;
    o.batch = (int)x.shape[0];
    if ((rc = se_compile(m, &o, &c, err, sizeof err))) goto done;
    if (in_name) {
        size_t nl = (size_t)(strchr(in_name, '=') - in_name);
        if (nl != strlen(se_input_name(c)) || strncmp(in_name, se_input_name(c), nl)) {
            rc = 2;
            snprintf(err, sizeof err, "%s has no input named '%.*s'; its input is '%s'", model, (int)nl,
                     in_name, se_input_name(c));
            goto done;
        }
    }
    int64_t d[4];
    se_input_shape(c, d);
    int fits = (x.ndim == 4 && x.shape[1] == d[1] && x.shape[2] == d[2] && x.shape[3] == d[3]) ||
               (x.ndim == 2 && d[2] == 1 && d[3] == 1 && x.shape[1] == d[1]);
    if (!fits) {
        rc = 2;
        snprintf(err, sizeof err, "%s: array shape does not fit %s, which takes [N, %lld, %lld, %lld]", in,
                 model, (long long)d[1], (long long)d[2], (long long)d[3]);
        goto done;
    }
    const int n_out = se_num_outputs(c);
    if ((rc = se_cli_alloc_outputs(c, outs))) snprintf(err, sizeof err, "out of memory");
    if (!rc) rc = se_context_new(c, &cx, err, sizeof err);
    if (!rc) rc = se_run(cx, x.data, outs, err, sizeof err);
    for (int k = 0; k < n_out && !rc; k++) {
        int64_t od[4];
        const int nd = se_output_shape(c, k, od);
        const size_t n = se_cli_numel(c, k);
        char path[1024];
        if (out) {
            if (n_out == 1) snprintf(path, sizeof path, "%s", out);
            else output_path(path, sizeof path, out, se_output_name(c, k));
            if (st_npy_write(path, nd, od, outs[k], &e) != ST_OK) {
                rc = e.code == ST_ERR_INPUT ? 2 : 1;
                snprintf(err, sizeof err, "%.500s", e.msg);
                break;
            }
            printf("wrote %s: ", path);
        }
        printf("%s [", se_output_name(c, k));
        for (int j = 0; j < nd; j++) printf("%s%lld", j ? ", " : "", (long long)od[j]);
        printf("] first values:");
        for (size_t i = 0; i < n && i < 6; i++) printf(" %.6g", outs[k][i]);
        printf("\n");
    }
done:
    if (rc) fprintf(stderr, "sparseengine run: error: %s\n", err);
    for (int k = 0; k < ST_MAX_OUTPUTS; k++) free(outs[k]);
    se_context_free(cx);
    se_compiled_free(c);
    se_model_free(m);
    st_npy_free(&x);
    return se_cli_exit(rc);
}
