/* se_example: the smallest program on the engine's public API (sparseengine.h only).
 *   se_example MODEL.onnx [INPUT.npy] [--threads N] [--dense]
 * Loads the model, compiles it for batch 1, runs it on the input (a float32 .npy of the
 * input's shape, C order; zeros without one) and prints each output's name, shape and
 * first values. Exit codes: 0 done, 2 bad input, 1 other errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparseengine.h"

/* A float32 little-endian C-order .npy with exactly n values into x; 0 or 2. */
static int read_npy(const char *path, float *x, size_t n, char *err, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return snprintf(err, cap, "%s: cannot open", path), 2;
    unsigned char pre[10];
    int rc = 2;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) || pre[6] != 1) {
        snprintf(err, cap, "%s: not a version 1 .npy file", path);
        goto out;
    }
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    char *h = calloc(hl + 1, 1);
    if (!h || fread(h, 1, hl, f) != hl) {
        snprintf(err, cap, "%s: truncated header", path);
        free(h);
        goto out;
    }
    int ok = strstr(h, "'<f4'") && strstr(h, "'fortran_order': False");
    free(h);
    if (!ok) {
        snprintf(err, cap, "%s: only float32 little-endian C-order arrays are read", path);
        goto out;
    }
    if (fread(x, sizeof(float), n, f) != n || fgetc(f) != EOF) {
        snprintf(err, cap, "%s: expected exactly %zu float32 values (the model's input)", path, n);
        goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

int main(int argc, char **argv) {
    const char *model = NULL, *input = NULL;
    se_options o;
    se_options_default(&o);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) o.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dense")) o.dense = 1;
        else if (!model) model = argv[i];
        else if (!input) input = argv[i];
        else model = NULL, i = argc;
    }
    if (!model) {
        fprintf(stderr, "usage: se_example MODEL.onnx [INPUT.npy] [--threads N] [--dense]\n");
        return 2;
    }
    char err[1024];
    se_model *m = NULL;
    se_compiled *c = NULL;
    se_context *x = NULL;
    float *in = NULL, *outs[4] = {0};
    int rc = se_load(model, &m, err, sizeof err);
    if (!rc) rc = se_compile(m, &o, &c, err, sizeof err);
    if (!rc) rc = se_context_new(c, &x, err, sizeof err);
    if (rc) goto done;
    int64_t d[4];
    int nd = se_input_shape(c, d);
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)d[i];
    in = calloc(n, sizeof(float));
    if (!in) rc = 4, snprintf(err, sizeof err, "out of memory");
    if (!rc && input) rc = read_npy(input, in, n, err, sizeof err);
    for (int k = 0; !rc && k < se_num_outputs(c); k++) {
        int64_t od[4];
        int ond = se_output_shape(c, k, od);
        size_t on = 1;
        for (int i = 0; i < ond; i++) on *= (size_t)od[i];
        if (!(outs[k] = malloc(on * sizeof(float)))) rc = 4, snprintf(err, sizeof err, "out of memory");
    }
    if (!rc) rc = se_run(x, in, outs, err, sizeof err);
    if (rc) goto done;
    static char desc[1 << 16];
    se_describe(c, desc, sizeof desc);
    printf("%s", desc);
    printf("input [%lld, %lld, %lld, %lld]%s\n", (long long)d[0], (long long)d[1], (long long)d[2],
           (long long)d[3], input ? "" : " (zeros)");
    for (int k = 0; k < se_num_outputs(c); k++) {
        int64_t od[4];
        int ond = se_output_shape(c, k, od);
        size_t on = 1;
        printf("output %d '%s' [", k, se_output_name(c, k));
        for (int i = 0; i < ond; i++) printf("%s%lld", i ? ", " : "", (long long)od[i]), on *= (size_t)od[i];
        printf("]:");
        for (size_t i = 0; i < on && i < 8; i++) printf(" %.6g", outs[k][i]);
        printf("%s\n", on > 8 ? " ..." : "");
    }
done:
    if (rc) fprintf(stderr, "se_example: error: %s\n", err);
    for (int k = 0; k < 4; k++) free(outs[k]);
    free(in);
    se_context_free(x);
    se_compiled_free(c);
    se_model_free(m);
    return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}
