/* One YOLOv5 training step (forward in training mode + YOLOv5 loss + backward, no
 * optimizer) on synthetic data: ms per step, images/s and the slowest graph nodes.
 *   bench_yolo_step [--model yolov5n] [--imgsz 320] [--batch 16] [--threads 2]
 *                   [--steps 5] [--classes 10] [--top 15] */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_detect.h"
#include "st_exec.h"
#include "st_models.h"
#include "st_progress.h"
#include "st_rng.h"
#include "st_tool.h"

static int usage(int code) {
    fprintf(code ? stderr : stdout,
            "usage: bench_yolo_step [--model yolov5n|yolov5s] [--imgsz N] [--batch N] [--threads N]\n"
            "                       [--steps N] [--classes N] [--top N] [--sparsity S] [--dense] [--fuse-both]\n"
            "--sparsity S prunes the model as recipes/yolo95.yaml does (model.1-23 at S, the stem\n"
            "at min(S, 0.5), the Detect head at min(S, 0.8); random masks) and lets the executor\n"
            "choose sparse kernels; --dense keeps every layer on the dense path. --fuse-both\n"
            "runs the steps four times in one process, BN+activation fusion off, on, off, on (ST_NO_FUSE=1\n"
            "turns it off everywhere).\n");
    return code;
}

static int fail(st_status rc, const st_error *err) {
    fprintf(stderr, "bench_yolo_step: %s\n", err->msg);
    return st_exit_code(rc);
}

int main(int argc, char **argv) {
    const char *model = "yolov5n";
    long imgsz = 320, batch = 16, threads = 2, steps = 5, nc = 10, top = 15, dense = 0, fuse_both = 0;
    double sparsity = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(0);
        if (!strcmp(a, "--dense")) { dense = 1; continue; }
        if (!strcmp(a, "--fuse-both")) { fuse_both = 1; continue; }
        if (!v) return usage(2);
        int bad = 0;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--imgsz")) bad = st_tool_int(v, 32, 4096, &imgsz);
        else if (!strcmp(a, "--batch")) bad = st_tool_int(v, 1, 1024, &batch);
        else if (!strcmp(a, "--threads")) bad = st_tool_int(v, 1, 256, &threads);
        else if (!strcmp(a, "--steps")) bad = st_tool_int(v, 1, 100000, &steps);
        else if (!strcmp(a, "--classes")) bad = st_tool_int(v, 1, 1000, &nc);
        else if (!strcmp(a, "--top")) bad = st_tool_int(v, 0, 1000, &top);
        else if (!strcmp(a, "--sparsity")) {
            char *end;
            sparsity = strtod(v, &end);
            bad = *end || !(sparsity >= 0 && sparsity < 1);
        }
        else return usage(2);
        if (bad) return usage(2);
        i++;
    }
    omp_set_num_threads((int)threads);
    st_error err = {0};
    st_status rc;
    st_graph *g = NULL;
    if ((rc = st_model_build(model, 3, (int)imgsz, (int)imgsz, (int)nc, &g, &err)) != ST_OK ||
        (rc = st_graph_finalize(g, 1, &err)) != ST_OK) {
        st_graph_free(g);
        return fail(rc, &err);
    }
    st_yolo_cfg cfg;
    st_yolo_cfg_default(&cfg, (int)nc, (int)imgsz, (int)imgsz);
    float *bias[ST_YOLO_SCALES];
    for (int s = 0; s < ST_YOLO_SCALES; s++) {
        char name[64];
        snprintf(name, sizeof name, "model.24.m.%d.bias", s);
        bias[s] = st_param_data(g, st_graph_find_param(g, name));
    }
    st_yolo_init_biases(&cfg, bias);
    st_rng mr;
    st_rng_seed(&mr, 7);
    for (int p = 0; p < g->n_params && sparsity > 0; p++) {
        if (!g->params[p].prunable) continue;
        const char *nm = g->params[p].name;
        double sp = !strncmp(nm, "model.0.", 8) ? (sparsity < 0.5 ? sparsity : 0.5)
                  : !strncmp(nm, "model.24.", 9) ? (sparsity < 0.8 ? sparsity : 0.8) : sparsity;
        unsigned char *m = st_param_mask(g, p);
        float *w = st_param_data(g, p);
        for (size_t j = 0; j < g->params[p].numel; j++)
            if (st_rng_uniform(&mr) < sp) m[j] = 0, w[j] = 0.0f;
    }

    /* synthetic batch: uniform pixels, 4 boxes of random size per image */
    const int per_img = 4, n_boxes = (int)batch * per_img;
    st_batch_box *boxes = malloc((size_t)n_boxes * sizeof *boxes);
    st_exec e;
    st_yolo_ws *ws = NULL;
    if (!boxes) return fail(st_errorf(&err, ST_ERR_NOMEM, "out of memory"), &err);
    if ((rc = st_exec_plan(&e, g, (int)batch, 1, &err)) != ST_OK ||
        (rc = st_yolo_ws_new(&cfg, (int)batch, n_boxes, &ws, &err)) != ST_OK)
        return fail(rc, &err);
    e.dense_only = (int)dense;
    if ((rc = st_exec_sparse_repack(&e, &err)) != ST_OK) return fail(rc, &err);
    st_rng r;
    st_rng_seed(&r, 42);
    float *x = st_exec_input(&e);
    for (size_t i = 0; i < (size_t)batch * 3 * imgsz * imgsz; i++) x[i] = st_rng_uniform(&r);
    for (int i = 0; i < n_boxes; i++) {
        float w = 0.05f + 0.5f * st_rng_uniform(&r), h = 0.05f + 0.5f * st_rng_uniform(&r);
        boxes[i] = (st_batch_box){i / per_img, (int)(st_rng_uniform(&r) * nc) % (int)nc,
                                  w / 2 + (1 - w) * st_rng_uniform(&r), h / 2 + (1 - h) * st_rng_uniform(&r), w, h};
    }
    const float *out[ST_YOLO_SCALES];
    float *dout[ST_YOLO_SCALES];
    for (int s = 0; s < ST_YOLO_SCALES; s++) out[s] = e.act[g->outputs[s]], dout[s] = e.dact[g->outputs[s]];

    for (int pass = 0; pass < (fuse_both ? 4 : 1); pass++) { /* off, on, off, on */
    if (fuse_both) {
        st_exec_set_fusion(&e, pass & 1);
        printf("-- BN+activation fusion %s (%d pairs)\n", pass & 1 ? "on" : "off", st_exec_fused_count(&e));
    }
    double t_fwd = 0, t_loss = 0, t_bwd = 0;
    st_yolo_loss loss = {0};
    st_exec_profile(&e, 0);
    for (long step = -1; step < steps; step++) { /* step -1 warms up caches and threads */
        if (step == 0 && (rc = st_exec_profile(&e, 1)) != ST_OK)
            return fail(st_errorf(&err, rc, "out of memory"), &err);
        double t0 = st_now();
        st_exec_forward(&e, (int)batch, 1);
        double t1 = st_now();
        for (int s = 0; s < ST_YOLO_SCALES; s++)
            memset(dout[s], 0, batch * st_shape_numel(g->values[g->outputs[s]]) * sizeof(float));
        if ((rc = st_yolo_loss_compute(&cfg, ws, (int)batch, out, boxes, n_boxes, dout, &loss, &err)) != ST_OK)
            return fail(rc, &err);
        double t2 = st_now();
        st_graph_zero_grad(g);
        st_exec_backward(&e);
        double t3 = st_now();
        if (step >= 0) t_fwd += t1 - t0, t_loss += t2 - t1, t_bwd += t3 - t2;
    }
    double ms = 1e3 * (t_fwd + t_loss + t_bwd) / steps;
    printf("%s %ldx%ld, batch %ld, %ld threads, %zu params, %.1f%% of prunable weights zero, %d layers "
           "on sparse kernels: %.1f ms/step (forward %.1f, loss %.2f, backward %.1f), %.1f images/s\n",
           model, imgsz, imgsz, batch, threads, st_graph_num_trainable(g),
           100 * st_graph_prunable_sparsity(g), st_exec_sparse_count(&e), ms, 1e3 * t_fwd / steps,
           1e3 * t_loss / steps, 1e3 * t_bwd / steps, batch * 1e3 / ms);
    /* where the time goes, by operation type; fused BN+activation pairs on their own */
    double by_op[ST_OP_COUNT] = {0}, total = 0, fused = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        double t = e.node_seconds[2 * i] + e.node_seconds[2 * i + 1];
        if (e.fuse && e.fuse[i] >= 0) fused += t;
        else by_op[g->nodes[i].op] += t;
        total += t;
    }
    printf("time by operation:");
    for (int op = 0; op < ST_OP_COUNT; op++)
        if (by_op[op] > 0.005 * total) printf(" %s %.1f%%", st_op_name((st_op_type)op), 100 * by_op[op] / total);
    if (fused > 0) printf(" batchnorm+act(fused) %.1f%%", 100 * fused / total);
    printf("\nms/step by operation:");
    for (int op = 0; op < ST_OP_COUNT; op++)
        if (by_op[op] > 0.005 * total) printf(" %s %.1f", st_op_name((st_op_type)op), 1e3 * by_op[op] / steps);
    if (fused > 0) printf(" batchnorm+act(fused) %.1f", 1e3 * fused / steps);
    printf("\n");
    printf("last loss: total %.4f (box %.4f obj %.4f cls %.4f), %d assigned anchors\n", loss.total, loss.box,
           loss.obj, loss.cls, loss.n_targets);
    if (top > 0) {
        printf("slowest nodes over %ld steps:\n", steps);
        st_exec_profile_print(&e, stdout, (int)top);
    }
    }
    st_yolo_ws_free(ws);
    st_exec_free(&e);
    st_graph_free(g);
    free(boxes);
    return 0;
}
