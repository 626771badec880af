#include "st_models.h"

#include <stdio.h>
#include <string.h>

#include "models_yolo.h"

static const st_model_info models[] = {
    {"cnn-small", "classify",
     "2 conv (32, 64 ch, 3x3) + BN + ReLU + max-pool, FC 128, FC classes; 421k params at 28x28"},
    {"yolov5n", "detect",
     "YOLOv5n v6 (depth 0.33, width 0.25): CSP backbone, SPPF, PANet, 3 heads P3-P5; "
     "1.78M params at 10 classes; input a multiple of 32"},
    {"yolov5s", "detect",
     "YOLOv5s v6 (depth 0.33, width 0.50): CSP backbone, SPPF, PANet, 3 heads P3-P5; "
     "7.05M params at 10 classes; input a multiple of 32"},
    {NULL, NULL, NULL},
};

const st_model_info *st_models_list(void) { return models; }

const st_model_info *st_model_find(const char *name) {
    for (const st_model_info *m = models; m->name; m++)
        if (strcmp(m->name, name) == 0) return m;
    return NULL;
}

/* Module numbering follows a PyTorch nn.Sequential of the same model, so parameter
 * names match what torch users see: model.0 conv block, model.1 pool, model.2 conv
 * block, model.3 pool, model.4 flatten, model.5 fc, model.6 relu, model.7 fc. */
static int cnn_small(st_graph *g, int x, int n_classes) {
    x = st_g_conv2d(g, "model.0.conv", x, 32, 3, 3, 1, 1, 1, 1, 0);
    x = st_g_relu(g, st_g_batchnorm(g, "model.0.bn", x, 1e-5f, 0.1f));
    x = st_g_maxpool(g, x, 2, 2, 0, 0);
    x = st_g_conv2d(g, "model.2.conv", x, 64, 3, 3, 1, 1, 1, 1, 0);
    x = st_g_relu(g, st_g_batchnorm(g, "model.2.bn", x, 1e-5f, 0.1f));
    x = st_g_maxpool(g, x, 2, 2, 0, 0);
    x = st_g_flatten(g, x);
    x = st_g_relu(g, st_g_linear(g, "model.5", x, 128, 1));
    x = st_g_dropout(g, x, 0.25f);
    return st_g_linear(g, "model.7", x, n_classes, 1);
}

st_status st_model_build(const char *name, int in_c, int in_h, int in_w, int n_classes,
                         st_graph **out, st_error *err) {
    *out = NULL;
    if (!st_model_find(name)) {
        char known[256] = "";
        for (const st_model_info *m = models; m->name; m++) {
            strncat(known, m == models ? "" : ", ", sizeof known - strlen(known) - 1);
            strncat(known, m->name, sizeof known - strlen(known) - 1);
        }
        return st_errorf(err, ST_ERR_INPUT, "unknown model '%s' (known: %s)", name, known);
    }
    int detect = strcmp(st_model_find(name)->task, "detect") == 0;
    if (!detect && n_classes < 2)
        return st_errorf(err, ST_ERR_INPUT, "a classifier needs at least 2 classes (got %d)", n_classes);
    if (detect && n_classes < 1)
        return st_errorf(err, ST_ERR_INPUT, "a detector needs at least 1 class (got %d)", n_classes);
    /* five stride-2 stages: other sizes would misalign the upsampled and lateral maps */
    if (detect && (in_h < 32 || in_w < 32 || in_h % 32 || in_w % 32))
        return st_errorf(err, ST_ERR_INPUT,
                         "%s needs an input height and width that are multiples of 32 (got %dx%d)",
                         name, in_h, in_w);
    st_graph *g = st_graph_new();
    if (!g) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    int x = st_g_input(g, in_c, in_h, in_w);
    if (strcmp(name, "cnn-small") == 0) st_g_output(g, cnn_small(g, x, n_classes));
    else if (strcmp(name, "yolov5n") == 0) st_yolov5_build(g, x, n_classes, 0.33, 0.25);
    else if (strcmp(name, "yolov5s") == 0) st_yolov5_build(g, x, n_classes, 0.33, 0.50);
    if (g->err.code != ST_OK) {
        st_status s = st_errorf(err, g->err.code, "model %s: %s", name, g->err.msg);
        st_graph_free(g);
        return s;
    }
    *out = g;
    return ST_OK;
}
