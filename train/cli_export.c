/* sparsetrain export --checkpoint C --out model.onnx [--keep-bn] [--keep-dropout]
 * Rebuilds the model a checkpoint was saved from and writes it as ONNX. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cli_cmds.h"
#include "st_detect.h"
#include "st_models.h"
#include "st_onnx.h"

static int usage(FILE *f, int code) {
    fprintf(f,
            "usage: sparsetrain export --checkpoint CKPT --out MODEL.onnx [--keep-bn]\n"
            "\n"
            "Writes the model of a training checkpoint (last.ckpt, best.ckpt) as ONNX: opset 13,\n"
            "dynamic batch, initializers named as our parameters, pruned weights as exact zeros,\n"
            "the recipe and per-layer sparsity in metadata_props. Training runs export\n"
            "OUTDIR/model.onnx themselves when they finish.\n"
            "\n"
            "  --checkpoint CKPT  checkpoint to export\n"
            "  --out FILE         ONNX file to write (replaced atomically)\n"
            "  --keep-bn          keep BatchNormalization nodes (default: folded into the convs)\n"
            "  --keep-dropout     keep Dropout nodes (default: left out, as in eval mode)\n"
            "  --decode           detectors: append YOLOv5's decode; the only output is then\n"
            "                     \"detections\" [N, anchors x cells, 5 + classes]: cx, cy, w, h in\n"
            "                     input pixels, objectness, class probabilities (default: the\n"
            "                     three raw head outputs, which our tools read)\n");
    return code;
}

int st_cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL;
    int keep_bn = 0, keep_dropout = 0, decode = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout, 0);
        if (!strcmp(a, "--keep-bn")) { keep_bn = 1; continue; }
        if (!strcmp(a, "--keep-dropout")) { keep_dropout = 1; continue; }
        if (!strcmp(a, "--decode")) { decode = 1; continue; }
        if (!v || (strcmp(a, "--checkpoint") && strcmp(a, "--out"))) {
            fprintf(stderr, "sparsetrain export: %s '%s'\n(see sparsetrain export --help)\n",
                    v ? "unknown option" : "missing value for", a);
            return 2;
        }
        if (!strcmp(a, "--checkpoint")) ckpt = v;
        else out = v;
        i++;
    }
    if (!ckpt || !out) {
        fprintf(stderr, "sparsetrain export: needs --checkpoint and --out\n(see sparsetrain export --help)\n");
        return 2;
    }
    st_error err = {0};
    st_graph *g = NULL;
    st_meta meta;
    char *recipe = NULL;
    st_status rc = st_model_from_checkpoint(ckpt, &g, &meta, &recipe, &err);
    if (rc == ST_OK) {
        const char *keys[5], *vals[5];
        int n = 0;
        static const char *const copy[] = {"task", "model", "input", "normalize", "classes"};
        char kbuf[5][48];
        for (int i = 0; i < 5; i++) {
            const char *v = st_meta_get(&meta, copy[i]);
            if (!v) continue;
            snprintf(kbuf[n], sizeof kbuf[n], "sparsetrain.%s", copy[i]);
            keys[n] = kbuf[n], vals[n] = v, n++;
        }
        st_onnx_export_opts eo;
        st_onnx_export_opts_default(&eo);
        eo.fold_bn = !keep_bn;
        eo.keep_dropout = keep_dropout;
        eo.recipe = recipe;
        eo.n_meta = n, eo.meta_keys = keys, eo.meta_values = vals;
        st_onnx_yolo_decode dec;
        if (decode) {
            const char *task = st_meta_get(&meta, "task");
            st_shape in = g->values[g->input];
            st_yolo_cfg yc;
            st_yolo_cfg_default(&yc, g->values[g->output].c / 3 - 5, in.h, in.w);
            dec.nc = yc.nc;
            memcpy(dec.strides, yc.strides, sizeof dec.strides);
            memcpy(dec.anchors, yc.anchors, sizeof dec.anchors);
            eo.yolo_decode = &dec;
            if (!task || strcmp(task, "detect"))
                rc = st_errorf(&err, ST_ERR_INPUT, "--decode: %s is not a detector's checkpoint", ckpt);
        }
        if (rc == ST_OK) rc = st_onnx_export_file(g, &eo, out, &err);
    }
    if (rc == ST_OK)
        printf("exported %s (%s) to %s: %zu parameters, %.2f%% of prunable weights zero%s\n", ckpt,
               st_meta_get(&meta, "model") ? st_meta_get(&meta, "model") : "?", out,
               st_graph_num_trainable(g), 100.0 * st_graph_prunable_sparsity(g),
               keep_bn ? ", BatchNorm kept" : ", BatchNorm folded");
    else
        fprintf(stderr, "sparsetrain export: error: %s\n", err.msg);
    free(recipe);
    st_graph_free(g);
    return st_exit_code(rc);
}
