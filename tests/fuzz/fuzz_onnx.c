/* libFuzzer target: arbitrary bytes through the ONNX reader and importer, and, for
 * small imported graphs, one eval forward (imported shapes must be executable). Built
 * with -DST_FUZZ=ON (clang); run by tools/fuzz_onnx.sh. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "st_exec.h"
#include "st_onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_onnx_model *m = NULL;
    st_error err = {0};
    if (st_onnx_read_memory(data, size, "fuzz.onnx", NULL, &m, &err) != ST_OK) return 0;
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) {
        st_onnx_print_info(m, devnull);
        fclose(devnull);
    }
    st_onnx_metadata(m, "producer");
    st_graph *g = NULL;
    st_onnx_import_opts opts = {.strip_softmax = (int)(size & 1), .seed = 1};
    if (st_onnx_import(m, &opts, &g, &err) == ST_OK) {
        /* Keep each input fast: forward only modest graphs. */
        if (g->param_floats < ((size_t)1 << 20) && st_exec_arena_floats(g, 1, 0) < ((size_t)1 << 22)) {
            st_exec e;
            if (st_exec_plan(&e, g, 1, 0, &err) == ST_OK) {
                memset(st_exec_input(&e), 0, st_shape_numel(g->values[g->input]) * sizeof(float));
                st_exec_forward(&e, 1, 0);
                st_exec_free(&e);
            }
        }
        st_graph_free(g);
    }
    st_onnx_model_free(m);
    return 0;
}
