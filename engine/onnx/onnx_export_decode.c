/* YOLOv5's decode as ONNX nodes after a detector's three raw outputs, so a runtime that
 * knows nothing of YOLO gets boxes in pixels: per scale, [N, 3(nc+5), H, W] ->
 * [N, 3, H, W, nc+5] (Reshape, Transpose), sigmoid, xy = sig*2*stride + (grid-0.5)*stride,
 * wh = sig^2 * 4*anchor, then [N, 3HW, nc+5]; the scales concatenated on axis 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_export_internal.h"
#include "st_onnx.h"

static char *nm(ox_builder *b, const char *base, int s) {
    char buf[64];
    snprintf(buf, sizeof buf, "decode%d_%s", s, base);
    return ox_unique_name(b, buf);
}

/* One scale: raw [N, 3(nc+5), H, W] named `raw` -> [N, 3HW, nc+5]; returns its name. */
static char *decode_scale(ox_builder *b, const st_onnx_yolo_decode *d, int s, const char *raw,
                          int H, int W) {
    int64_t K = d->nc + 5;
    char *shape5 = nm(b, "shape5", s), *r5 = nm(b, "r5", s), *tr = nm(b, "tr", s);
    char *sg = nm(b, "sig", s), *split = nm(b, "split", s), *xy = nm(b, "xy", s);
    char *wh = nm(b, "wh", s), *rest = nm(b, "rest", s), *gain = nm(b, "gain", s);
    char *xym = nm(b, "xy_mul", s), *grid = nm(b, "grid", s), *xyo = nm(b, "xy_px", s);
    char *wh2 = nm(b, "wh_sq", s), *anc = nm(b, "anchor", s), *who = nm(b, "wh_px", s);
    char *cat = nm(b, "cat", s), *shape3 = nm(b, "shape3", s), *out = nm(b, "out", s);
    if (ox_failed(b)) return NULL;
    int64_t s5[5] = {0, 3, K, H, W}, s3[3] = {0, -1, K}, sp[3] = {2, 2, K - 4};
    ox_init_int64(b, shape5, s5, 5);
    ox_init_int64(b, shape3, s3, 3);
    ox_init_int64(b, split, sp, 3);
    const char *in1[2] = {raw, shape5};
    ox_node(b, "Reshape", r5, in1, 2, r5);
    Onnx__NodeProto *t = ox_node(b, "Transpose", tr, (const char *[]){r5}, 1, tr);
    if (t) ox_attr_ints(b, t, "perm", (const int64_t[]){0, 1, 3, 4, 2}, 5);
    ox_node(b, "Sigmoid", sg, (const char *[]){tr}, 1, sg);
    Onnx__NodeProto *sn = ox_node(b, "Split", split, (const char *[]){sg, split}, 2, xy);
    if (sn) { /* three outputs: ox_node made one */
        Onnx__NodeProto *n = sn;
        char **o = realloc(n->output, 3 * sizeof *o);
        if (!o) b->oom = 1;
        else {
            n->output = o;
            o[1] = strdup(wh), o[2] = strdup(rest);
            if (!o[1] || !o[2]) b->oom = 1;
            n->n_output = 3;
        }
        ox_attr_int(b, n, "axis", -1);
    }
    float stride = (float)d->strides[s];
    float *g = ox_init_float(b, gain, 0, NULL);
    if (g) g[0] = 2.0f * stride;
    ox_node(b, "Mul", xym, (const char *[]){xy, gain}, 2, xym);
    float *gr = ox_init_float(b, grid, 5, (const int64_t[]){1, 1, H, W, 2});
    for (int y = 0; gr && y < H; y++)
        for (int x = 0; x < W; x++) {
            gr[(y * W + x) * 2 + 0] = ((float)x - 0.5f) * stride;
            gr[(y * W + x) * 2 + 1] = ((float)y - 0.5f) * stride;
        }
    ox_node(b, "Add", xyo, (const char *[]){xym, grid}, 2, xyo);
    ox_node(b, "Mul", wh2, (const char *[]){wh, wh}, 2, wh2);
    float *an = ox_init_float(b, anc, 5, (const int64_t[]){1, 3, 1, 1, 2});
    for (int a = 0; an && a < 3; a++)
        for (int k = 0; k < 2; k++) an[a * 2 + k] = 4.0f * d->anchors[s][a][k];
    ox_node(b, "Mul", who, (const char *[]){wh2, anc}, 2, who);
    Onnx__NodeProto *c = ox_node(b, "Concat", cat, (const char *[]){xyo, who, rest}, 3, cat);
    if (c) ox_attr_int(b, c, "axis", -1);
    ox_node(b, "Reshape", out, (const char *[]){cat, shape3}, 2, out);
    char *keep = out;
    char *all[] = {shape5, r5, tr, sg, split, xy, wh, rest, gain, xym, grid, xyo, wh2, anc, who, cat, shape3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
    return keep;
}

int st_onnx_emit_yolo_decode(ox_builder *b, const st_onnx_yolo_decode *d,
                             const char *const raw[3], const int hw[3][2]) {
    char *outs[3] = {NULL, NULL, NULL};
    for (int s = 0; s < 3; s++) outs[s] = decode_scale(b, d, s, raw[s], hw[s][0], hw[s][1]);
    Onnx__NodeProto *c = NULL;
    if (outs[0] && outs[1] && outs[2])
        c = ox_node(b, "Concat", "detections", (const char *const *)outs, 3, "detections");
    if (c) ox_attr_int(b, c, "axis", 1);
    int total = 0;
    for (int s = 0; s < 3; s++) total += 3 * hw[s][0] * hw[s][1];
    int64_t dims[2] = {total, d->nc + 5};
    ox_graph_io(b, 1, "detections", 2, dims);
    for (int s = 0; s < 3; s++) free(outs[s]);
    return ox_failed(b) ? -1 : 0;
}
