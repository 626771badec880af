/* Setting up a training run: which task and model, the task's defaults, the data and
 * its geometry, the model (built in, ONNX, or rebuilt from the checkpoint being
 * resumed), optimizer, recipe, plan, loaders, run folder and the settings recorded in
 * checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ckpt.h"
#include "st_models.h"
#include "st_run_files.h"
#include "st_train_recipe.h"
#include "st_transfer.h"
#include "trainer_internal.h"

/* Classification inputs are standardised with Fashion-MNIST's pixel statistics for gray
 * data and ImageNet-like ones for colour; detection keeps YOLOv5's x/255. Stored in the
 * checkpoint and the ONNX metadata so inference can repeat them. */
#define GRAY_MEAN 0.2860f
#define GRAY_STD 0.3530f
#define RGB_MEAN 0.45f
#define RGB_STD 0.225f

/* Settings that decide the result are taken from the checkpoint when resuming. */
static void apply_resumed_settings(st_train_opts *o, const st_meta *m, FILE *log) {
    const char *v;
    if ((v = st_meta_get(m, "epochs")) && atoi(v) != o->epochs) {
        if (o->epochs > 0)
            fprintf(log, "note: resuming a %s-epoch run (the checkpoint's setting wins over --epochs %d)\n",
                    v, o->epochs);
        o->epochs = atoi(v);
    }
    if ((v = st_meta_get(m, "batch"))) o->batch = atoi(v);
    if ((v = st_meta_get(m, "lr"))) o->lr = strtof(v, NULL);
    if ((v = st_meta_get(m, "weight_decay"))) o->weight_decay = strtof(v, NULL);
    if ((v = st_meta_get(m, "momentum"))) o->momentum = strtof(v, NULL);
    if ((v = st_meta_get(m, "seed"))) o->seed = strtoull(v, NULL, 10);
    if ((v = st_meta_get(m, "train_limit"))) o->train_limit = atoi(v);
    if ((v = st_meta_get(m, "test_limit"))) o->test_limit = atoi(v);
    if ((v = st_meta_get(m, "fliplr"))) o->fliplr = strtof(v, NULL);
    if ((v = st_meta_get(m, "mosaic"))) o->mosaic = strtof(v, NULL);
    if ((v = st_meta_get(m, "threads")) && atoi(v) != o->threads)
        fprintf(log, "note: the run was started with %s threads, now %d: results will not be "
                     "bit-identical to an uninterrupted run\n", v, o->threads);
}

/* Which model and task: the checkpoint's when resuming (an explicit --model must agree),
 * else --model, else the default for the data (detector for YOLO folders). */
static st_status choose_model(st_run *r, st_train_opts *o, const char **spec, char *task,
                              size_t task_cap, st_error *err) {
    st_status rc;
    *spec = o->model;
    task[0] = 0;
    if (!o->resume) return ST_OK;
    st_ckpt *c = NULL;
    if ((rc = st_ckpt_read(o->resume, &c, err)) != ST_OK) return rc;
    const char *m = st_ckpt_string(c, "model"), *t = st_ckpt_string(c, "task");
    const st_ckpt_tensor *arch = st_ckpt_find(c, "arch/onnx");
    if (!m || !t || (strcmp(t, "classify") && strcmp(t, "detect"))) {
        st_ckpt_free(c);
        return st_errorf(err, ST_ERR_INPUT, "%s: not a sparsetrain training checkpoint", o->resume);
    }
    snprintf(task, task_cap, "%s", t);
    const char *data = st_ckpt_string(c, "data");
    if (!o->data && data) { /* resume where the run trained */
        snprintf(r->data_path, sizeof r->data_path, "%s", data);
        o->data = r->data_path;
    }
    if (o->model) st_model_label(o->model, r->model, sizeof r->model);
    else snprintf(r->model, sizeof r->model, "%s", m);
    /* A model imported from ONNX is rebuilt from the architecture the checkpoint holds. */
    if (arch && arch->dtype == ST_DT_U8 && strcmp(r->model, m) == 0) {
        r->arch_in = malloc(arch->nbytes ? arch->nbytes : 1);
        if (!r->arch_in) {
            st_ckpt_free(c);
            return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        }
        memcpy(r->arch_in, arch->data, arch->nbytes);
        r->arch_in_len = arch->nbytes;
    }
    if (!o->model) *spec = r->model;
    st_ckpt_free(c);
    return ST_OK;
}

static st_status open_data(st_run *r, st_train_opts *o, const char **spec, const char *task,
                           st_error *err) {
    st_ds_opts dso;
    st_ds_opts_default(&dso);
    dso.strict = o->strict;
    dso.cache = o->cache;
    dso.log = stderr;
    st_status rc = st_dataset_open(o->data, &dso, &r->data, err);
    if (rc != ST_OK) return rc;
    st_dataset_print_summary(&r->data, o->log);
    int detect_data = r->data.kind == ST_DS_YOLO;
    if (!*spec) *spec = detect_data ? "yolov5n" : "cnn-small";
    const st_model_info *mi = st_model_is_onnx(*spec) ? NULL : st_model_find(*spec);
    int detect = task[0] ? strcmp(task, "detect") == 0
                         : (mi ? strcmp(mi->task, "detect") == 0 : detect_data);
    if (detect != detect_data)
        return st_errorf(err, ST_ERR_INPUT, "%s is a %s dataset, but model %s is a %s",
                         o->data, detect_data ? "detection" : "classification", *spec,
                         detect ? "detector" : "classifier");
    r->task = detect ? &st_task_detect : &st_task_classify;
    r->train = r->data.train;
    r->val = r->data.val;
    if (o->train_limit > 0 && o->train_limit < r->train.n) r->train.n = o->train_limit;
    if (o->test_limit > 0 && o->test_limit < r->val.n) r->val.n = o->test_limit;
    if (r->val.n < 1) return st_errorf(err, ST_ERR_INPUT, "%s: no validation images", o->data);
    /* input geometry: the first image's size and channels unless --imgsz / --channels
     * say otherwise (IDX: 1x28x28); detectors: square, a multiple of 32, RGB */
    st_image first;
    int borrowed = 0;
    if ((rc = st_dataset_load_image(&r->data, &r->train, 0, 0, &first, &borrowed, err)) != ST_OK)
        return rc;
    r->data_channels = first.c;
    r->channels = o->channels ? o->channels : detect ? 3 : first.c;
    if (detect) {
        int side = o->imgsz > 0 ? o->imgsz : (first.h > first.w ? first.h : first.w);
        if (o->imgsz > 0 && o->imgsz % 32)
            return st_errorf(err, ST_ERR_INPUT, "--imgsz %d: a detector needs a multiple of 32", o->imgsz);
        side = (side + 31) / 32 * 32;
        r->height = r->width = side < 64 ? 64 : side > 1280 ? 1280 : side;
    } else {
        r->height = o->imgsz > 0 ? o->imgsz : first.h;
        r->width = o->imgsz > 0 ? o->imgsz : first.w;
    }
    if (!borrowed) st_image_free(&first);
    return ST_OK;
}

/* An imported model decides the input geometry (images are resized to it). */
static st_status adopt_model_geometry(st_run *r, const st_train_opts *o, const char *spec,
                                      st_error *err) {
    st_shape in = r->g->values[r->g->input];
    if (in.c != 1 && in.c != 3)
        return st_errorf(err, ST_ERR_INPUT, "%s: the model takes %d input channels; images give 1 or 3",
                         spec, in.c);
    if (o->channels && o->channels != in.c)
        return st_errorf(err, ST_ERR_INPUT, "--channels %d, but %s takes %d input channels", o->channels,
                         spec, in.c);
    if (o->imgsz > 0 && (o->imgsz != in.h || o->imgsz != in.w))
        return st_errorf(err, ST_ERR_INPUT, "--imgsz %d, but %s takes %dx%d images", o->imgsz, spec,
                         in.h, in.w);
    r->channels = in.c, r->height = in.h, r->width = in.w;
    return ST_OK;
}

/* The model: rebuilt for resuming, or built for the dataset and, from a pretrained file,
 * loaded by name with its head re-created when the classes differ. */
static st_status open_model(st_run *r, st_train_opts *o, const char *spec, st_error *err) {
    st_status rc;
    const st_dataset *d = &r->data;
    if (o->resume) {
        o->model = r->model;
        if ((rc = st_model_open(spec, r->arch_in, r->arch_in_len, r->channels, r->height, r->width,
                                d->n_classes, o->seed, &r->g, &r->st.arch, &r->st.arch_len, err)) != ST_OK)
            return rc;
        if (r->st.arch && (rc = adopt_model_geometry(r, o, spec, err)) != ST_OK) return rc;
        return st_graph_finalize(r->g, o->seed, err);
    }
    st_transfer_req q = {.model = spec, .pretrained = o->pretrained,
                         .detect = r->task == &st_task_detect, .n_classes = d->n_classes,
                         .data_channels = r->data_channels, .channels = o->channels,
                         .height = r->height, .width = r->width, .imgsz = o->imgsz,
                         .reset_head = o->reset_head, .seed = o->seed, .log = o->log};
    st_transfer_res t;
    if ((rc = st_transfer_open(&q, &t, err)) != ST_OK) return rc;
    r->g = t.g;
    r->st.arch = t.arch, r->st.arch_len = t.arch_len;
    r->channels = t.channels, r->height = t.height, r->width = t.width;
    r->fresh_head = t.fresh_head;
    r->pretrained_sparsity = t.sparsity;
    if (o->pretrained || !st_model_find(spec))
        snprintf(r->pretrained_from, sizeof r->pretrained_from, "%s", o->pretrained ? o->pretrained : spec);
    snprintf(r->model, sizeof r->model, "%s", t.label);
    o->model = r->model;
    return ST_OK;
}

static void task_defaults(st_run *r, st_train_opts *o) {
    int detect = r->task == &st_task_detect;
    if (o->batch <= 0) o->batch = detect ? 16 : 64;
    if (o->lr <= 0) o->lr = o->optimizer == ST_OPT_ADAMW ? 0.001f : detect ? 0.01f : 0.05f;
    if (o->momentum < 0) o->momentum = detect ? 0.937f : 0.9f;
    if (o->fliplr < 0) o->fliplr = detect ? 0.5f : 0.0f;
    if (o->mosaic < 0) o->mosaic = detect ? 1.0f : 0.0f;
    if (detect) r->mean = 0.0f, r->std = 1.0f;
    else {
        r->mean = r->channels == 1 ? GRAY_MEAN : RGB_MEAN;
        r->std = r->channels == 1 ? GRAY_STD : RGB_STD;
    }
}

static st_status open_loaders(st_run *r, const st_train_opts *o, st_error *err) {
    st_loader_opts lo;
    st_loader_opts_default(&lo);
    lo.batch = o->batch;
    lo.channels = r->channels, lo.height = r->height, lo.width = r->width;
    lo.mean = r->mean, lo.std = r->std;
    lo.seed = o->seed;
    lo.workers = o->workers;
    lo.detect = r->task == &st_task_detect;
    lo.aug.fliplr = o->fliplr;
    if (lo.detect) { /* YOLOv5's defaults */
        lo.aug.mosaic = o->mosaic;
        lo.aug.hsv_h = 0.015f, lo.aug.hsv_s = 0.7f, lo.aug.hsv_v = 0.4f;
        lo.aug.translate = 0.1f, lo.aug.scale = 0.5f;
    }
    lo.augment = o->fliplr > 0 || lo.detect;
    st_status rc = st_loader_open(&r->data, &r->train, &lo, &r->train_loader, err);
    if (rc != ST_OK) return rc;
    lo.shuffle = lo.drop_last = lo.augment = 0;
    return st_loader_open(&r->data, &r->val, &lo, &r->val_loader, err);
}

static st_status open_recipe(st_run *r, st_train_opts *o, st_error *err) {
    st_status rc = st_train_recipe_open(o->recipe, o->recipe_args, r->st.recipe_text, r->st.recipe_args,
                                        o->strict, o->log, &r->recipe, &r->have_recipe, err);
    if (rc != ST_OK) return rc;
    if (r->have_recipe) {
        int epochs = (int)ceilf(r->recipe.end_epoch);
        if (epochs < 1) return st_errorf(err, ST_ERR_INPUT, "%s: the recipe lasts 0 epochs", r->recipe.path);
        if (o->epochs > 0 && o->epochs != epochs && !o->resume)
            fprintf(o->log, "note: the recipe runs %d epochs; it overrides --epochs %d\n", epochs, o->epochs);
        o->epochs = epochs;
    } else if (o->epochs <= 0) {
        o->epochs = 5;
    }
    return ST_OK;
}

static void record_settings(st_run *r, const st_train_opts *o) {
    st_meta *m = &r->meta;
    st_meta_set(m, "model", "%s", o->model);
    st_meta_set(m, "data", "%s", o->data);
    if (r->pretrained_from[0]) st_meta_set(m, "pretrained", "%s", r->pretrained_from);
    st_meta_set(m, "task", "%s", r->task->name);
    st_meta_set(m, "epochs", "%d", o->epochs);
    st_meta_set(m, "batch", "%d", o->batch);
    st_meta_set(m, "lr", "%.9g", o->lr);
    st_meta_set(m, "weight_decay", "%.9g", o->weight_decay);
    st_meta_set(m, "momentum", "%.9g", o->momentum);
    st_meta_set(m, "seed", "%llu", (unsigned long long)o->seed);
    st_meta_set(m, "threads", "%d", o->threads);
    st_meta_set(m, "train_limit", "%d", o->train_limit);
    st_meta_set(m, "test_limit", "%d", o->test_limit);
    st_meta_set(m, "fliplr", "%.6g", o->fliplr);
    st_meta_set(m, "mosaic", "%.6g", o->mosaic);
    st_meta_set(m, "num_classes", "%d", r->data.n_classes);
    st_meta_set(m, "input", "%dx%dx%d", r->channels, r->height, r->width);
    st_meta_set(m, "normalize", "%.6g %.6g", r->mean, r->std);
    char names[2048];
    st_json_string_list(names, sizeof names, (const char *const *)r->data.class_names, r->data.n_classes);
    st_meta_set(m, "classes", "%s", names);
}

static st_status open_history(st_run *r, const st_train_opts *o, st_error *err) {
    r->n_cols = ST_C_COMMON + r->task->n_cols;
    if (!r->st.history) {
        r->st.history_cols = r->n_cols;
        r->st.history = calloc((size_t)o->epochs * r->n_cols, sizeof(float));
    } else if (r->st.history_cols != r->n_cols || r->st.history_rows > o->epochs) {
        return st_errorf(err, ST_ERR_INPUT, "%s: history does not fit this run", o->resume);
    } else {
        float *h = realloc(r->st.history, (size_t)o->epochs * r->n_cols * sizeof(float));
        if (!h) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        r->st.history = h;
    }
    return r->st.history ? ST_OK : st_errorf(err, ST_ERR_NOMEM, "out of memory");
}

st_status st_run_setup(st_run *r, st_train_opts *o, st_error *err) {
    st_status rc;
    const char *spec;
    char task[16];
    if ((rc = choose_model(r, o, &spec, task, sizeof task, err)) != ST_OK) return rc;
    if (!o->data) return st_errorf(err, ST_ERR_INPUT, "--data DIR is required");
    if ((rc = open_data(r, o, &spec, task, err)) != ST_OK) return rc;
    if ((rc = open_model(r, o, spec, err)) != ST_OK) return rc;
    st_kernels_init(&r->k, st_cpu_select_isa());
    if ((rc = st_optim_init(&r->opt, r->g, (st_opt_kind)o->optimizer, err)) != ST_OK) return rc;
    if (o->resume) {
        uint8_t *arch = r->st.arch; /* the load resets the state */
        size_t arch_len = r->st.arch_len;
        r->st.arch = NULL;
        rc = st_train_state_load(o->resume, o->model, r->g, &r->opt, &r->st, &r->meta, err);
        r->st.arch = arch, r->st.arch_len = arch_len;
        if (rc != ST_OK) return rc;
        apply_resumed_settings(o, &r->meta, o->log);
    }
    task_defaults(r, o);
    if ((rc = open_recipe(r, o, err)) != ST_OK) return rc;
    if (!o->resume && r->pretrained_sparsity > 0.1 && !r->have_recipe)
        fprintf(o->log, "note: %.1f%% of the pretrained prunable weights are zero; without a recipe "
                        "that holds them (ConstantPruningModifier, as in recipes/transfer.yaml) "
                        "training fills them in\n", 100.0 * r->pretrained_sparsity);
    r->opt.momentum = o->momentum;
    for (int gi = 0; gi < ST_NUM_PG; gi++) r->opt.weight_decay[gi] = gi == ST_PG_WEIGHT ? o->weight_decay : 0.0f;
    if ((rc = st_exec_plan(&r->ex, r->g, o->batch, 1, err)) != ST_OK) return rc;
    r->ex.dense_only = o->dense;
    if ((rc = open_loaders(r, o, err)) != ST_OK) return rc;
    for (int gi = 0; gi < ST_NUM_PG; gi++) {
        r->lr[gi] = o->lr;
        r->wd[gi] = gi == ST_PG_WEIGHT ? o->weight_decay : 0.0f;
    }
    if (r->st.has_lr_wd) {
        memcpy(r->lr, r->st.lr_wd, sizeof r->lr);
        memcpy(r->wd, r->st.lr_wd + ST_NUM_PG, sizeof r->wd);
    }
    if (r->have_recipe) {
        if ((rc = st_recipe_bind(&r->recipe, r->g, st_loader_num_batches(r->train_loader), &r->rrun, err)) != ST_OK)
            return rc;
        if (r->st.recipe_state_n &&
            (rc = st_recipe_run_state_set(r->rrun, r->st.recipe_state, r->st.recipe_state_n, err)) != ST_OK)
            return rc;
        /* masks restored from a checkpoint may already be sparse */
        if ((rc = st_exec_sparse_repack(&r->ex, err)) != ST_OK) return rc;
        r->cur_sparsity = (float)st_graph_prunable_sparsity(r->g);
        if (o->recipe_args) st_meta_set(&r->meta, "recipe_args", "%s", o->recipe_args);
        else if (r->st.recipe_args) st_meta_set(&r->meta, "recipe_args", "%s", r->st.recipe_args);
    }
    /* ST_PROFILE=1: per-node timing, printed after each epoch (for performance work) */
    r->profile_print = getenv("ST_PROFILE") != NULL;
    if (r->profile_print && (rc = st_exec_profile(&r->ex, 1)) != ST_OK)
        return st_errorf(err, rc, "out of memory");
    if (o->resume && !o->out_dir) {
        /* continue in the folder the checkpoint lives in */
        snprintf(r->dir, sizeof r->dir, "%s", o->resume);
        char *slash = strrchr(r->dir, '/');
        if (slash) *slash = 0;
        else snprintf(r->dir, sizeof r->dir, ".");
        rc = st_mkdirs(r->dir, err);
    } else {
        char name[64];
        snprintf(name, sizeof name, "%s", o->model);
        for (char *p = name; *p; p++)
            if (*p == ':' || *p == '/') *p = '-'; /* onnx:foo -> runs/onnx-foo */
        rc = st_run_dir_choose(r->dir, sizeof r->dir, o->out_dir, name, o->overwrite,
                               o->resume != NULL, err);
    }
    if (rc != ST_OK) return rc;
    record_settings(r, o);
    if ((rc = open_history(r, o, err)) != ST_OK) return rc;
    return r->task->open(r, err);
}
