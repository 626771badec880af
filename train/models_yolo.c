/* YOLOv5 v6+ as a graph (the layer table of docs/yolov5.md). Module numbering and
 * parameter names follow the published model ("model.2.m.0.cv1.conv.weight") so that
 * YOLOv5 checkpoints and users' expectations about names carry over unchanged. */
#include "models_yolo.h"

#include <math.h>
#include <stdio.h>

#define YOLO_BN_EPS 1e-3f
#define YOLO_BN_MOMENTUM 0.03f /* PyTorch convention: running = 0.97 running + 0.03 batch */

typedef struct {
    st_graph *g;
    double depth, width;
} yolo_b;

/* Channels: smallest multiple of 8 >= c * width (YOLOv5's make_divisible). */
static int ch(const yolo_b *b, int c) { return (int)ceil(c * b->width / 8.0) * 8; }

/* Repeats: max(round(n * depth), 1) for n > 1. */
static int reps(const yolo_b *b, int n) {
    if (n <= 1) return n;
    int r = (int)lround(n * b->depth);
    return r < 1 ? 1 : r;
}

/* "<m>.<leaf>" into buf. The longest module path built here, "model.23.m.2.cv2.conv", is
 * far below ST_NAME_MAX; the return value is checked only to keep that explicit. */
static const char *join(char *buf, const char *m, const char *leaf) {
    int k = snprintf(buf, ST_NAME_MAX, "%s.%s", m, leaf);
    return k > 0 && k < ST_NAME_MAX ? buf : "model.name_too_long";
}

/* Conv: conv (no bias) + BN + SiLU under module `m` (m.conv, m.bn). */
static int conv(yolo_b *b, const char *m, int x, int c2, int k, int s, int p) {
    char n[ST_NAME_MAX];
    x = st_g_conv2d(b->g, join(n, m, "conv"), x, c2, k, k, s, p, 1, 1, 0);
    x = st_g_batchnorm(b->g, join(n, m, "bn"), x, YOLO_BN_EPS, YOLO_BN_MOMENTUM);
    return st_g_silu(b->g, x);
}

static int sub(yolo_b *b, const char *m, const char *leaf, int x, int c2, int k, int s) {
    char n[ST_NAME_MAX];
    return conv(b, join(n, m, leaf), x, c2, k, s, k / 2);
}

/* C3 with n Bottlenecks (e = 1.0 inside C3); shortcut adds only in the backbone. */
static int c3(yolo_b *b, const char *m, int x, int c2, int n, int shortcut) {
    int c_ = c2 / 2;
    int y = sub(b, m, "cv1", x, c_, 1, 1);
    for (int i = 0; i < n; i++) {
        char bm[ST_NAME_MAX], idx[16];
        snprintf(idx, sizeof idx, "m.%d", i);
        join(bm, m, idx);
        int t = sub(b, bm, "cv1", y, c_, 1, 1);
        t = sub(b, bm, "cv2", t, c_, 3, 1);
        y = shortcut ? st_g_add(b->g, y, t) : t;
    }
    int cat[2] = {y, sub(b, m, "cv2", x, c_, 1, 1)};
    return sub(b, m, "cv3", st_g_concat(b->g, cat, 2), c2, 1, 1);
}

/* SPPF: three chained 5x5 max pools are equivalent to pools of 5, 9 and 13, cheaper. */
static int sppf(yolo_b *b, const char *m, int x, int c2) {
    int c_ = b->g->values[x].c / 2;
    int cat[4];
    cat[0] = sub(b, m, "cv1", x, c_, 1, 1);
    for (int i = 1; i < 4; i++) cat[i] = st_g_maxpool(b->g, cat[i - 1], 5, 1, 2, 0);
    return sub(b, m, "cv2", st_g_concat(b->g, cat, 4), c2, 1, 1);
}

static int cat2(yolo_b *b, int a, int c) {
    int xs[2] = {a, c};
    return st_g_concat(b->g, xs, 2);
}

void st_yolov5_build(st_graph *g, int x, int nc, double depth, double width) {
    yolo_b b = {g, depth, width};
    int l[24];
    /* backbone */
    l[0] = conv(&b, "model.0", x, ch(&b, 64), 6, 2, 2);
    l[1] = conv(&b, "model.1", l[0], ch(&b, 128), 3, 2, 1);
    l[2] = c3(&b, "model.2", l[1], ch(&b, 128), reps(&b, 3), 1);
    l[3] = conv(&b, "model.3", l[2], ch(&b, 256), 3, 2, 1);
    l[4] = c3(&b, "model.4", l[3], ch(&b, 256), reps(&b, 6), 1);
    l[5] = conv(&b, "model.5", l[4], ch(&b, 512), 3, 2, 1);
    l[6] = c3(&b, "model.6", l[5], ch(&b, 512), reps(&b, 9), 1);
    l[7] = conv(&b, "model.7", l[6], ch(&b, 1024), 3, 2, 1);
    l[8] = c3(&b, "model.8", l[7], ch(&b, 1024), reps(&b, 3), 1);
    l[9] = sppf(&b, "model.9", l[8], ch(&b, 1024));
    /* head (PANet) */
    l[10] = conv(&b, "model.10", l[9], ch(&b, 512), 1, 1, 0);
    l[11] = st_g_upsample(g, l[10], 2);
    l[12] = cat2(&b, l[11], l[6]);
    l[13] = c3(&b, "model.13", l[12], ch(&b, 512), reps(&b, 3), 0);
    l[14] = conv(&b, "model.14", l[13], ch(&b, 256), 1, 1, 0);
    l[15] = st_g_upsample(g, l[14], 2);
    l[16] = cat2(&b, l[15], l[4]);
    l[17] = c3(&b, "model.17", l[16], ch(&b, 256), reps(&b, 3), 0);
    l[18] = conv(&b, "model.18", l[17], ch(&b, 256), 3, 2, 1);
    l[19] = cat2(&b, l[18], l[14]);
    l[20] = c3(&b, "model.20", l[19], ch(&b, 512), reps(&b, 3), 0);
    l[21] = conv(&b, "model.21", l[20], ch(&b, 512), 3, 2, 1);
    l[22] = cat2(&b, l[21], l[10]);
    l[23] = c3(&b, "model.23", l[22], ch(&b, 1024), reps(&b, 3), 0);
    /* Detect: 1x1 convs with bias, outputs marked in the order P3, P4, P5 */
    const int from[3] = {17, 20, 23};
    for (int i = 0; i < 3; i++) {
        char n[ST_NAME_MAX];
        snprintf(n, sizeof n, "model.24.m.%d", i);
        st_g_output(g, st_g_conv2d(g, n, l[from[i]], 3 * (nc + 5), 1, 1, 1, 0, 1, 1, 1));
    }
}
