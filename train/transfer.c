/* Transfer learning: the run's model built for the dataset's classes, its weights taken
 * by name from a pretrained checkpoint or ONNX file, the output layers re-created when
 * their shape no longer fits. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "st_ckpt.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_train_state.h"
#include "st_transfer.h"

#define YOLO_ANCHORS 3 /* per scale: a Detect conv has 3 * (5 + nc) channels */

/* The conv / linear layers that produce the graph's outputs (through Flatten, Dropout,
 * Softmax, Sigmoid): their parameters are the head. */
static void mark_heads(const st_graph *g, unsigned char *is_head) {
    for (int k = 0; k < g->n_outputs; k++) {
        int v = g->outputs[k];
        for (int i = g->n_nodes - 1; i >= 0; i--) {
            const st_node *nd = &g->nodes[i];
            if (nd->output != v) continue;
            if (nd->op == ST_OP_FLATTEN || nd->op == ST_OP_DROPOUT || nd->op == ST_OP_SOFTMAX ||
                nd->op == ST_OP_SIGMOID) {
                v = nd->inputs[0];
                continue;
            }
            if (nd->op == ST_OP_CONV2D || nd->op == ST_OP_LINEAR)
                for (int j = 0; j < 2; j++)
                    if (nd->params[j] >= 0) is_head[nd->params[j]] = 1;
            break;
        }
    }
}

static void shape_str(const st_param *p, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (int d = 0; d < p->ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? "x" : "[", (long long)p->shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int same_shape(const st_param *a, const st_param *b) {
    if (a->numel != b->numel || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* Copies src into dst by name. Head parameters that src lacks or has in another shape
 * keep dst's fresh values (reported); any other mismatch is an error. */
static st_status copy_by_name(st_graph *dst, const st_graph *src, const char *file, int reset_head,
                              FILE *log, int *n_recreated, st_error *err) {
    unsigned char *is_head = calloc((size_t)dst->n_params + 1, 1);
    if (!is_head) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    mark_heads(dst, is_head);
    int loaded = 0, missing = 0, first_missing = -1;
    size_t values = 0;
    st_status rc = ST_OK;
    *n_recreated = 0;
    for (int p = 0; p < dst->n_params && rc == ST_OK; p++) {
        const st_param *dp = &dst->params[p];
        int sp = st_graph_find_param(src, dp->name);
        char ds[64], ss[64];
        shape_str(dp, ds, sizeof ds);
        if (is_head[p] && (reset_head || sp < 0 || !same_shape(dp, &src->params[sp]))) {
            if (sp >= 0) shape_str(&src->params[sp], ss, sizeof ss);
            if (log)
                fprintf(log, "  re-created %s %s: %s%s\n", dp->name, ds, reset_head ? "--reset-head" :
                        sp < 0 ? "not in the pretrained model" : "the pretrained one is ",
                        reset_head || sp < 0 ? "" : ss);
            ++*n_recreated;
            continue;
        }
        if (sp < 0) {
            if (first_missing < 0) first_missing = p;
            missing++;
            continue;
        }
        if (!same_shape(dp, &src->params[sp])) {
            shape_str(&src->params[sp], ss, sizeof ss);
            int stem = 0; /* a layer reading the image: other input channels */
            for (int i = 0; i < dst->n_nodes; i++)
                if (dst->nodes[i].params[0] == p && dst->nodes[i].inputs[0] == dst->input) stem = 1;
            if (stem && dp->ndim == 4 && src->params[sp].ndim == 4 && dp->shape[1] != src->params[sp].shape[1])
                rc = st_errorf(err, ST_ERR_INPUT,
                               "%s: %s is %s, the model needs %s: the pretrained model takes "
                               "%lld-channel images, this run %lld (add --channels %lld)",
                               file, dp->name, ss, ds, (long long)src->params[sp].shape[1],
                               (long long)dp->shape[1], (long long)src->params[sp].shape[1]);
            else
                rc = st_errorf(err, ST_ERR_INPUT,
                               "%s: %s is %s, the model needs %s: the file holds another "
                               "architecture or scale", file, dp->name, ss, ds);
            break;
        }
        memcpy(st_param_data(dst, p), st_param_data(src, sp), dp->numel * sizeof(float));
        loaded++;
        values += dp->numel;
    }
    if (rc == ST_OK && missing) {
        int bn = 0;
        for (int p = 0; p < dst->n_params; p++)
            bn += st_graph_find_param(src, dst->params[p].name) < 0 && dst->params[p].group == ST_PG_BN;
        rc = st_errorf(err, ST_ERR_INPUT,
                       "%s: %d of the model's %d parameters are not in the file (first: %s)%s",
                       file, missing, dst->n_params, dst->params[first_missing].name,
                       loaded == 0 ? ": it is a different architecture"
                       : bn ? ": BatchNorm was folded away (export with --keep-bn, or train the "
                              "file's own graph with --model FILE)"
                            : ": the names do not match this model");
    }
    if (rc == ST_OK && log)
        fprintf(log, "  loaded %d of %d parameters by name (%.2fM values)%s\n", loaded, dst->n_params,
                values / 1e6, src->n_params > loaded + *n_recreated ? "; the file has more, unused" : "");
    free(is_head);
    return rc;
}

/* What the head must give for the dataset: classifier n_classes features, detector
 * 3 * (5 + nc) channels per scale. Also the pretrained class count for the log. */
static int head_outputs(int detect, int nc) { return detect ? YOLO_ANCHORS * (5 + nc) : nc; }
static int head_classes(int detect, int64_t out) {
    return detect ? (out % YOLO_ANCHORS ? -1 : (int)(out / YOLO_ANCHORS) - 5) : (int)out;
}

/* Imports an ONNX architecture with every head re-sized for the dataset; the re-sized
 * (or, with reset_head, all) head parameters are initialised as a fresh model's. */
static st_status open_onnx_arch(st_onnx_model *m, const char *file, const st_transfer_req *q,
                                FILE *log, st_transfer_res *res, int *n_recreated, st_error *err) {
    int n_out = st_onnx_num_outputs(m), want_out = q->detect ? 3 : 1;
    if (n_out != want_out)
        return st_errorf(err, ST_ERR_INPUT, "%s has %d outputs; a %s needs %d", file, n_out,
                         q->detect ? "YOLO detector (three raw Detect heads, exported without --decode)"
                                   : "classifier",
                         want_out);
    st_onnx_head h[3];
    int resize[3] = {0, 0, 0};
    for (int k = 0; k < n_out; k++) {
        st_status rc = st_onnx_head_find(m, k, &h[k], err);
        if (rc != ST_OK) return rc;
        int old_nc = head_classes(q->detect, h[k].out);
        if (old_nc < 1)
            return st_errorf(err, ST_ERR_INPUT, "%s: output %d has %lld channels, not 3 x (5 + classes)",
                             file, k, (long long)h[k].out);
        resize[k] = q->reset_head || old_nc != q->n_classes;
    }
    /* names survive the import, so keep copies to find the parameters afterwards */
    char names[3][2][ST_NAME_MAX];
    for (int k = 0; k < n_out; k++) {
        snprintf(names[k][0], ST_NAME_MAX, "%s", h[k].weight);
        snprintf(names[k][1], ST_NAME_MAX, "%s", h[k].bias ? h[k].bias : "");
        if (!resize[k]) continue;
        if (log)
            fprintf(log, "  re-created %s (%s, %lld -> %d outputs): %s\n", h[k].weight, h[k].op,
                (long long)h[k].out, head_outputs(q->detect, q->n_classes),
                q->reset_head && head_classes(q->detect, h[k].out) == q->n_classes
                    ? "--reset-head" : "the dataset has other classes");
        st_status rc = st_onnx_head_resize(m, &h[k], head_outputs(q->detect, q->n_classes), err);
        if (rc != ST_OK) return rc;
    }
    st_status rc = st_model_import(m, q->seed, &res->g, &res->arch, &res->arch_len, err);
    if (rc != ST_OK) return rc;
    *n_recreated = 0;
    for (int k = 0; k < n_out; k++)
        for (int j = 0; j < 2 && resize[k]; j++) {
            int p = names[k][j][0] ? st_graph_find_param(res->g, names[k][j]) : -1;
            if (p >= 0) st_graph_init_param(res->g, p, q->seed), ++*n_recreated;
        }
    return ST_OK;
}

static void label_of_file(const char *file, char *buf, size_t cap) {
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    const char *dot = strrchr(base, '.');
    snprintf(buf, cap, "onnx:%.*s", dot ? (int)(dot - base) : (int)strlen(base), base);
}

/* The pretrained source: the graph with its weights, and what the file says of itself. */
typedef struct {
    st_graph *g;
    st_onnx_model *onnx;   /* ONNX files, and checkpoints of imported models */
    char model[64];        /* built-in name, or "" for an imported architecture */
    char label[64];        /* a checkpoint's model label (onnx:<stem> for imported ones) */
    char classes[512];     /* class names when recorded */
    int n_classes;
    int detect;            /* -1 unknown */
} pre_src;

static st_status open_checkpoint(const char *file, pre_src *s, st_error *err) {
    st_ckpt *c = NULL;
    st_status rc = st_ckpt_read(file, &c, err);
    if (rc != ST_OK) return rc;
    const char *model = st_ckpt_string(c, "model"), *task = st_ckpt_string(c, "task");
    const char *classes = st_ckpt_string(c, "classes"), *nc = st_ckpt_string(c, "num_classes");
    const st_ckpt_tensor *arch = st_ckpt_find(c, "arch/onnx");
    if (!model || !task) rc = st_errorf(err, ST_ERR_INPUT, "%s: not a sparsetrain training checkpoint", file);
    if (rc == ST_OK) {
        s->detect = !strcmp(task, "detect");
        s->n_classes = nc ? atoi(nc) : 0;
        snprintf(s->classes, sizeof s->classes, "%s", classes ? classes : "");
        snprintf(s->model, sizeof s->model, "%s", arch ? "" : model);
        snprintf(s->label, sizeof s->label, "%s", model);
        if (arch && arch->dtype == ST_DT_U8)
            rc = st_onnx_read_memory(arch->data, arch->nbytes, file, NULL, &s->onnx, err);
    }
    st_ckpt_free(c);
    if (rc == ST_OK) rc = st_model_from_checkpoint(file, &s->g, NULL, NULL, err);
    return rc;
}

static st_status open_onnx(const char *file, pre_src *s, st_error *err) {
    st_status rc = st_onnx_read_file(file, &s->onnx, err);
    if (rc != ST_OK) return rc;
    const char *task = st_onnx_metadata(s->onnx, "sparsetrain.task");
    const char *model = st_onnx_metadata(s->onnx, "sparsetrain.model");
    snprintf(s->label, sizeof s->label, "%s%s", model ? model : "", model ? " export" : "");
    const char *classes = st_onnx_metadata(s->onnx, "sparsetrain.classes");
    s->detect = task ? !strcmp(task, "detect") : -1;
    snprintf(s->classes, sizeof s->classes, "%s", classes ? classes : "");
    return st_model_import(s->onnx, 1, &s->g, NULL, NULL, err);
}

static void log_source(const st_transfer_req *q, const char *file, const pre_src *s, double sparsity) {
    fprintf(q->log, "pretrained: %s (%s%s%s; %.1f%% of the prunable weights are zero)\n", file,
            s->model[0] ? s->model : s->label[0] ? s->label : "ONNX graph", s->classes[0] ? ", classes " : "", s->classes,
            100.0 * sparsity);
}

st_status st_transfer_open(const st_transfer_req *q, st_transfer_res *res, st_error *err) {
    memset(res, 0, sizeof *res);
    const char *file = q->pretrained ? q->pretrained : q->model;
    int builtin = !q->pretrained && st_model_find(q->model);
    if (q->detect ? q->n_classes < 1 : q->n_classes < 2)
        return st_errorf(err, ST_ERR_INPUT, "the dataset has %d class%s; a %s needs at least %d",
                         q->n_classes, q->n_classes == 1 ? "" : "es", q->detect ? "detector" : "classifier",
                         q->detect ? 1 : 2);
    if (builtin) { /* no pretrained weights: a fresh model */
        snprintf(res->label, sizeof res->label, "%s", q->model);
        res->channels = q->channels ? q->channels : q->detect ? 3 : q->data_channels;
        res->height = q->height, res->width = q->width, res->fresh_head = 1;
        st_status rc = st_model_build(q->model, res->channels, res->height, res->width, q->n_classes,
                                      &res->g, err);
        return rc == ST_OK ? st_graph_finalize(res->g, q->seed, err) : rc;
    }
    if (q->pretrained && !st_model_find(q->model))
        return st_errorf(err, ST_ERR_INPUT, "--pretrained needs a built-in --model (got %s); to train "
                         "a file's own architecture, give it as --model", q->model);
    struct stat sb;
    if (stat(file, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        char names[256] = "";
        for (const st_model_info *mi = st_models_list(); mi->name; mi++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "", mi->name);
        if (!strchr(file, '/') && !strchr(file, '.'))
            return st_errorf(err, ST_ERR_INPUT, "unknown model '%s': built-in models are %s, or give "
                             "a checkpoint (.ckpt) or an ONNX file (.onnx)", file, names);
        return st_errorf(err, ST_ERR_INPUT, "%s: no such file (built-in models: %s; the pretrained "
                         "starting points are built by tools/make_pretrained.sh)", file, names);
    }
    pre_src s = {.detect = -1};
    int is_ckpt = !st_model_is_onnx(file);
    st_status rc = is_ckpt ? open_checkpoint(file, &s, err) : open_onnx(file, &s, err);
    if (rc == ST_OK && s.detect >= 0 && s.detect != q->detect)
        rc = st_errorf(err, ST_ERR_INPUT, "%s is a %s, the dataset is for %s", file,
                       s.detect ? "detector" : "classifier", q->detect ? "detection" : "classification");
    const char *arch_model = q->pretrained ? q->model : s.model;
    if (rc == ST_OK && q->pretrained && s.model[0] && strcmp(s.model, q->model))
        rc = st_errorf(err, ST_ERR_INPUT, "%s holds a %s, not a %s: a different architecture", file,
                       s.model, q->model);
    st_shape in = rc == ST_OK ? s.g->values[s.g->input] : (st_shape){0, 0, 0};
    int run_c = q->channels ? q->channels : q->detect ? 3 : q->data_channels;
    if (rc == ST_OK && in.c != run_c)
        rc = q->channels ? st_errorf(err, ST_ERR_INPUT, "--channels %d, but %s takes %d-channel images",
                                     q->channels, file, in.c)
                         : st_errorf(err, ST_ERR_INPUT,
                                     "%s takes %d-channel images, the dataset's are %d-channel: add "
                                     "--channels %d to convert them", file, in.c, q->data_channels, in.c);
    if (rc != ST_OK) goto done;
    res->sparsity = st_graph_prunable_sparsity(s.g);
    log_source(q, file, &s, res->sparsity);
    int n_re = 0;
    if (arch_model[0]) { /* a built-in architecture, re-built for the dataset */
        snprintf(res->label, sizeof res->label, "%s", arch_model);
        res->channels = in.c;
        res->height = q->detect || q->imgsz ? q->height : in.h;
        res->width = q->detect || q->imgsz ? q->width : in.w;
        rc = st_model_build(arch_model, res->channels, res->height, res->width, q->n_classes, &res->g, err);
        if (rc == ST_OK) rc = st_graph_finalize(res->g, q->seed, err);
        if (rc == ST_OK) rc = copy_by_name(res->g, s.g, file, q->reset_head, q->log, &n_re, err);
    } else { /* the file's own graph, with its head re-sized */
        if (!is_ckpt) label_of_file(file, res->label, sizeof res->label);
        else snprintf(res->label, sizeof res->label, "%s", s.label);
        rc = open_onnx_arch(s.onnx, file, q, is_ckpt ? NULL : q->log, res, &n_re, err);
        if (rc == ST_OK && is_ckpt) { /* the checkpoint's weights (EMA) over the architecture's */
            int n2 = 0;
            rc = copy_by_name(res->g, s.g, file, q->reset_head, q->log, &n2, err);
        } else if (rc == ST_OK) {
            fprintf(q->log, "  loaded %d of %d parameters from the file\n", res->g->n_params - n_re,
                    res->g->n_params);
        }
        st_shape din = rc == ST_OK ? res->g->values[res->g->input] : in;
        res->channels = din.c, res->height = din.h, res->width = din.w;
        if (rc == ST_OK && q->imgsz && (q->imgsz != din.h || q->imgsz != din.w))
            rc = st_errorf(err, ST_ERR_INPUT, "--imgsz %d, but %s takes %dx%d images", q->imgsz, file,
                           din.h, din.w);
    }
    res->fresh_head = n_re > 0;
    if (rc == ST_OK && !n_re)
        fprintf(q->log, "  the head fits the dataset's %d classes and is kept (%s%s%s--reset-head "
                        "re-creates it)\n", q->n_classes, s.classes[0] ? "pretrained classes: " : "",
                s.classes, s.classes[0] ? "; " : "");
done:
    st_graph_free(s.g);
    st_onnx_model_free(s.onnx);
    if (rc != ST_OK) {
        st_graph_free(res->g);
        free(res->arch);
        memset(res, 0, sizeof *res);
    }
    return rc;
}
