/* Training loop for image classifiers (IDX, ImageFolder). One plan of buffers for the
 * whole run; the loader derives every epoch's order and augmentation from (seed, epoch),
 * so a run stopped anywhere and resumed from its checkpoint repeats the uninterrupted
 * run exactly (same thread count). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ckpt.h"
#include "st_cpu.h"
#include "st_exec.h"
#include "st_dataset.h"
#include "st_loader.h"
#include "st_models.h"
#include "st_optim.h"
#include "st_progress.h"
#include "st_rng.h"
#include "st_run_files.h"
#include "st_train.h"
#include "st_train_recipe.h"
#include "st_train_state.h"

/* Inputs are standardised: Fashion-MNIST's pixel statistics for gray data, ImageNet-like
 * ones for colour. Stored in the checkpoint so inference can repeat them. */
#define GRAY_MEAN 0.2860f
#define GRAY_STD 0.3530f
#define RGB_MEAN 0.45f
#define RGB_STD 0.225f

static const char *const metric_header[ST_M_COLS] = {
    "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_sec",
    "epoch_seconds", "data_wait_seconds", "sparsity"};

void st_train_opts_default(st_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->model = "cnn-small";
    o->epochs = 0; /* 5, or what the recipe says */
    o->batch = 64;
    o->threads = 2;
    o->seed = 1;
    o->lr = 0.05f;
    o->weight_decay = 5e-4f;
    o->momentum = 0.9f;
    o->optimizer = ST_OPT_SGD;
    o->progress = -1;
    o->workers = 1;
    o->log = stdout;
}

/* Default schedule: linear warm-up from 10% over the first tenth of the run (at most
 * 500 steps), then cosine decay to 1% of the base rate. */
static float schedule_lr(float base, int64_t step, int64_t total) {
    int64_t warm = total / 10 < 500 ? total / 10 : 500;
    if (step < warm) return base * (0.1f + 0.9f * (float)step / (float)warm);
    double x = (double)(step - warm) / (double)(total - warm > 0 ? total - warm : 1);
    return base * (float)(0.01 + 0.99 * 0.5 * (1.0 + cos(M_PI * (x > 1 ? 1 : x))));
}

static int count_correct(const float *logits, const int32_t *labels, int n, int c) {
    int correct = 0;
    for (int b = 0; b < n; b++) {
        const float *row = logits + (size_t)b * c;
        int best = 0;
        for (int k = 1; k < c; k++)
            if (row[k] > row[best]) best = k;
        correct += best == labels[b];
    }
    return correct;
}

typedef struct {
    st_dataset data;
    st_split train, val; /* the dataset's splits, cut to --train-limit / --test-limit */
    st_loader *train_loader, *val_loader;
    int channels, height, width;
    float mean, std;
    st_graph *g;
    st_exec ex;
    st_optim opt;
    st_kernels k;
    st_train_state st;
    st_meta meta;
    float *probs;
    st_recipe recipe;
    int have_recipe;
    st_recipe_run *rrun;
    float lr[ST_NUM_PG], wd[ST_NUM_PG]; /* current values, owned by the schedule or recipe */
    int mask_updates;                   /* GMP updates during the current epoch */
    char dir[512];
    char model[64];
} run_ctx;

static void run_free(run_ctx *r) {
    st_recipe_run_free(r->rrun);
    st_recipe_free(&r->recipe);
    st_loader_free(r->train_loader);
    st_loader_free(r->val_loader);
    st_dataset_free(&r->data);
    st_exec_free(&r->ex);
    st_optim_free(&r->opt);
    st_graph_free(r->g);
    st_train_state_free(&r->st);
    free(r->probs);
}

static st_status evaluate(run_ctx *r, float *loss, float *acc, st_error *err) {
    int C = r->data.n_classes, seen = 0, correct = 0;
    double loss_sum = 0, wait;
    st_status rc = st_loader_start_epoch(r->val_loader, 0, 0, err);
    const st_batch *b;
    while (rc == ST_OK && (b = st_loader_next(r->val_loader, &wait, &rc, err))) {
        memcpy(st_exec_input(&r->ex), b->images, (size_t)b->n * r->channels * r->height * r->width * sizeof(float));
        st_exec_forward(&r->ex, b->n, 0);
        const float *logits = st_exec_output(&r->ex);
        loss_sum += (double)st_softmax_xent_forward(r->probs, logits, b->labels, b->n, C) * b->n;
        correct += count_correct(logits, b->labels, b->n, C);
        seen += b->n;
    }
    *loss = seen ? (float)(loss_sum / seen) : 0;
    *acc = seen ? (float)correct / (float)seen : 0;
    return rc;
}

static st_status save(run_ctx *r, const char *name, st_error *err) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", r->dir, name);
    if (r->rrun) {
        size_t n = st_recipe_run_state_size(r->rrun);
        if (n != r->st.recipe_state_n) {
            float *q = realloc(r->st.recipe_state, (n ? n : 1) * sizeof(float));
            if (!q) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
            r->st.recipe_state = q;
            r->st.recipe_state_n = n;
        }
        st_recipe_run_state_get(r->rrun, r->st.recipe_state);
    }
    memcpy(r->st.lr_wd, r->lr, sizeof r->lr);
    memcpy(r->st.lr_wd + ST_NUM_PG, r->wd, sizeof r->wd);
    r->st.has_lr_wd = 1;
    return st_train_state_save(path, r->g, &r->opt, &r->st, &r->meta,
                               r->have_recipe ? r->recipe.text : NULL, err);
}

static st_status write_outputs(run_ctx *r, const st_train_opts *o, double seconds, st_error *err) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    st_status rc = st_write_metrics_csv(path, metric_header, r->st.history, r->st.history_rows,
                                        ST_M_COLS, err);
    if (rc != ST_OK) return rc;
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    float acc = r->st.history_rows ? r->st.history[(r->st.history_rows - 1) * ST_M_COLS + ST_M_TEST_ACC] : 0;
    return st_write_summary_json(path, "classify", o->model, "accuracy", acc, r->g,
                                 r->st.history_rows, seconds, err);
}

static st_status open_data(run_ctx *r, const st_train_opts *o, st_error *err) {
    st_ds_opts dso;
    st_ds_opts_default(&dso);
    dso.strict = o->strict;
    dso.cache = o->cache;
    dso.log = stderr;
    st_status rc = st_dataset_open(o->data, &dso, &r->data, err);
    if (rc != ST_OK) return rc;
    st_dataset_print_summary(&r->data, o->log);
    if (r->data.kind == ST_DS_YOLO)
        return st_errorf(err, ST_ERR_INPUT, "%s is a detection dataset; model %s is a classifier",
                         o->data, o->model);
    r->train = r->data.train;
    r->val = r->data.val;
    if (o->train_limit > 0 && o->train_limit < r->train.n) r->train.n = o->train_limit;
    if (o->test_limit > 0 && o->test_limit < r->val.n) r->val.n = o->test_limit;
    if (r->val.n < 1) return st_errorf(err, ST_ERR_INPUT, "%s: no validation images", o->data);
    /* input geometry: the first image's size and channels unless --imgsz / --channels
     * say otherwise (IDX: 1x28x28) */
    st_image first;
    int borrowed = 0;
    if ((rc = st_dataset_load_image(&r->data, &r->train, 0, 0, &first, &borrowed, err)) != ST_OK)
        return rc;
    r->channels = o->channels ? o->channels : first.c; /* default: the images' own */
    r->height = o->imgsz > 0 ? o->imgsz : first.h;
    r->width = o->imgsz > 0 ? o->imgsz : first.w;
    if (!borrowed) st_image_free(&first);
    r->mean = r->channels == 1 ? GRAY_MEAN : RGB_MEAN;
    r->std = r->channels == 1 ? GRAY_STD : RGB_STD;
    return ST_OK;
}

static st_status open_loaders(run_ctx *r, const st_train_opts *o, st_error *err) {
    st_loader_opts lo;
    st_loader_opts_default(&lo);
    lo.batch = o->batch;
    lo.channels = r->channels, lo.height = r->height, lo.width = r->width;
    lo.mean = r->mean, lo.std = r->std;
    lo.seed = o->seed;
    lo.workers = o->workers;
    lo.augment = o->fliplr > 0;
    lo.aug.fliplr = o->fliplr;
    st_status rc = st_loader_open(&r->data, &r->train, &lo, &r->train_loader, err);
    if (rc != ST_OK) return rc;
    lo.shuffle = lo.drop_last = lo.augment = 0;
    return st_loader_open(&r->data, &r->val, &lo, &r->val_loader, err);
}

/* Settings that decide the result are taken from the checkpoint when resuming. */
static void apply_resumed_settings(st_train_opts *o, const st_meta *m, FILE *log) {
    const char *v;
    if ((v = st_meta_get(m, "epochs")) && atoi(v) != o->epochs) {
        fprintf(log, "note: resuming a %s-epoch run (the checkpoint's setting wins over --epochs %d)\n", v, o->epochs);
        o->epochs = atoi(v);
    }
    if ((v = st_meta_get(m, "batch"))) o->batch = atoi(v);
    if ((v = st_meta_get(m, "lr"))) o->lr = strtof(v, NULL);
    if ((v = st_meta_get(m, "weight_decay"))) o->weight_decay = strtof(v, NULL);
    if ((v = st_meta_get(m, "momentum"))) o->momentum = strtof(v, NULL);
    if ((v = st_meta_get(m, "seed"))) o->seed = strtoull(v, NULL, 10);
    if ((v = st_meta_get(m, "train_limit"))) o->train_limit = atoi(v);
    if ((v = st_meta_get(m, "test_limit"))) o->test_limit = atoi(v);
    if ((v = st_meta_get(m, "threads")) && atoi(v) != o->threads)
        fprintf(log, "note: the run was started with %s threads, now %d: results will not be "
                     "bit-identical to an uninterrupted run\n", v, o->threads);
}

static st_status setup(run_ctx *r, st_train_opts *o, st_error *err) {
    st_status rc;
    if (o->resume) {
        /* The checkpoint names its model; an explicit --model must agree (checked on load). */
        st_ckpt *c = NULL;
        if ((rc = st_ckpt_read(o->resume, &c, err)) != ST_OK) return rc;
        const char *m = st_ckpt_string(c, "model"), *task = st_ckpt_string(c, "task");
        if (!m || !task || strcmp(task, "classify") != 0) {
            st_ckpt_free(c);
            return st_errorf(err, ST_ERR_INPUT, "%s: not a classifier training checkpoint", o->resume);
        }
        snprintf(r->model, sizeof r->model, "%s", o->model ? o->model : m);
        st_ckpt_free(c);
    } else {
        snprintf(r->model, sizeof r->model, "%s", o->model ? o->model : "cnn-small");
    }
    o->model = r->model;
    /* detectors (yolov5*) have three head outputs and their own loss: not trainable here */
    const st_model_info *mi = st_model_find(o->model);
    if (mi && strcmp(mi->task, "classify") != 0)
        return st_errorf(err, ST_ERR_INPUT, "model %s is a %s model, not a classifier", o->model, mi->task);
    if ((rc = open_data(r, o, err)) != ST_OK) return rc;
    const st_dataset *d = &r->data;
    if ((rc = st_model_build(o->model, r->channels, r->height, r->width, d->n_classes, &r->g, err)) != ST_OK)
        return rc;
    if ((rc = st_graph_finalize(r->g, o->seed, err)) != ST_OK) return rc;
    st_kernels_init(&r->k, st_cpu_select_isa());
    if ((rc = st_optim_init(&r->opt, r->g, (st_opt_kind)o->optimizer, err)) != ST_OK) return rc;
    if (o->resume) {
        if ((rc = st_train_state_load(o->resume, o->model, r->g, &r->opt, &r->st, &r->meta, err)) != ST_OK)
            return rc;
        apply_resumed_settings(o, &r->meta, o->log);
    }
    if ((rc = st_train_recipe_open(o->recipe, o->recipe_args, r->st.recipe_text, r->st.recipe_args,
                                   o->strict, o->log, &r->recipe, &r->have_recipe, err)) != ST_OK)
        return rc;
    if (r->have_recipe) {
        int epochs = (int)ceilf(r->recipe.end_epoch);
        if (epochs < 1) return st_errorf(err, ST_ERR_INPUT, "%s: the recipe lasts 0 epochs", r->recipe.path);
        if (o->epochs > 0 && o->epochs != epochs && !o->resume)
            fprintf(o->log, "note: the recipe runs %d epochs; it overrides --epochs %d\n", epochs, o->epochs);
        o->epochs = epochs;
    } else if (o->epochs <= 0) {
        o->epochs = 5;
    }
    if (o->batch < 1) return st_errorf(err, ST_ERR_INPUT, "--batch must be >= 1");
    if (o->epochs < 1) return st_errorf(err, ST_ERR_INPUT, "--epochs must be >= 1");
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
        if (o->recipe_args) st_meta_set(&r->meta, "recipe_args", "%s", o->recipe_args);
        else if (r->st.recipe_args) st_meta_set(&r->meta, "recipe_args", "%s", r->st.recipe_args);
    }
    /* ST_PROFILE=1: per-node timing, printed after each epoch (for performance work) */
    if (getenv("ST_PROFILE") && (rc = st_exec_profile(&r->ex, 1)) != ST_OK)
        return st_errorf(err, rc, "out of memory");
    r->probs = malloc((size_t)o->batch * d->n_classes * sizeof(float));
    if (!r->probs) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    if (o->resume && !o->out_dir) {
        /* continue in the folder the checkpoint lives in */
        snprintf(r->dir, sizeof r->dir, "%s", o->resume);
        char *slash = strrchr(r->dir, '/');
        if (slash) *slash = 0;
        else snprintf(r->dir, sizeof r->dir, ".");
        rc = st_mkdirs(r->dir, err);
    } else {
        rc = st_run_dir_choose(r->dir, sizeof r->dir, o->out_dir, o->model, o->overwrite,
                               o->resume != NULL, err);
    }
    if (rc != ST_OK) return rc;
    st_meta_set(&r->meta, "model", "%s", o->model);
    st_meta_set(&r->meta, "task", "classify");
    st_meta_set(&r->meta, "epochs", "%d", o->epochs);
    st_meta_set(&r->meta, "batch", "%d", o->batch);
    st_meta_set(&r->meta, "lr", "%.9g", o->lr);
    st_meta_set(&r->meta, "weight_decay", "%.9g", o->weight_decay);
    st_meta_set(&r->meta, "momentum", "%.9g", o->momentum);
    st_meta_set(&r->meta, "seed", "%llu", (unsigned long long)o->seed);
    st_meta_set(&r->meta, "threads", "%d", o->threads);
    st_meta_set(&r->meta, "train_limit", "%d", o->train_limit);
    st_meta_set(&r->meta, "test_limit", "%d", o->test_limit);
    st_meta_set(&r->meta, "num_classes", "%d", d->n_classes);
    st_meta_set(&r->meta, "input", "%dx%dx%d", r->channels, r->height, r->width);
    st_meta_set(&r->meta, "normalize", "%.6g %.6g", r->mean, r->std);
    if (!r->st.history) {
        r->st.history_cols = ST_M_COLS;
        r->st.history = calloc((size_t)o->epochs * ST_M_COLS, sizeof(float));
    } else if (r->st.history_cols != ST_M_COLS || r->st.history_rows > o->epochs) {
        return st_errorf(err, ST_ERR_INPUT, "%s: history does not fit this run", o->resume);
    } else {
        float *h = realloc(r->st.history, (size_t)o->epochs * ST_M_COLS * sizeof(float));
        if (!h) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
        r->st.history = h;
    }
    if (!r->st.history) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    return ST_OK;
}

/* One epoch of optimizer steps, starting at step `first` of the epoch (non-zero after a
 * mid-epoch resume). Returns 1 when interrupted. */
static int train_epoch(run_ctx *r, const st_train_opts *o, int epoch, int steps, st_error *err,
                       st_status *rc) {
    int B = o->batch, C = r->data.n_classes;
    size_t in_floats = (size_t)B * r->channels * r->height * r->width;
    int64_t total = (int64_t)steps * o->epochs;
    if ((*rc = st_loader_start_epoch(r->train_loader, epoch, r->st.epoch_step, err)) != ST_OK) return 0;
    char label[32], extra[64];
    r->mask_updates = 0;
    snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, o->epochs);
    st_progress pb;
    st_progress_start(&pb, stderr, o->progress, label, steps);
    double *part = r->st.part; /* loss, correct, seen, seconds, data wait */
    for (int s = r->st.epoch_step; s < steps; s++) {
        double t0 = st_now(), wait;
        const st_batch *b = st_loader_next(r->train_loader, &wait, rc, err);
        if (!b) {
            if (*rc == ST_OK) *rc = st_errorf(err, ST_ERR_INTERNAL, "loader ended early at step %d", s);
            st_progress_end(&pb);
            return 0;
        }
        memcpy(st_exec_input(&r->ex), b->images, in_floats * sizeof(float));
        const int32_t *labels = b->labels;
        r->ex.dropout_seed = st_hash64(o->seed ^ st_hash64((uint64_t)r->st.step));
        st_exec_forward(&r->ex, B, 1);
        const float *logits = st_exec_output(&r->ex);
        float loss = st_softmax_xent_forward(r->probs, logits, labels, B, C);
        if (!isfinite(loss)) {
            *rc = st_errorf(err, ST_ERR_NUMERIC,
                            "loss became %g at epoch %d step %d; lower --lr (now %g) or check the data",
                            (double)loss, epoch + 1, s + 1, (double)o->lr);
            st_progress_end(&pb);
            return 0;
        }
        part[1] += count_correct(logits, labels, B, C);
        float *dlogits = st_exec_doutput(&r->ex);
        memset(dlogits, 0, (size_t)B * C * sizeof(float));
        st_softmax_xent_backward(dlogits, r->probs, labels, B, C, 1.0f);
        st_graph_zero_grad(r->g);
        st_exec_backward(&r->ex);
        if (r->rrun) {
            if (st_recipe_run_step(r->rrun, r->g, r->st.step, r->lr, r->wd)) {
                r->mask_updates++;
                /* the new masks take effect in this very step's forward pass */
                if ((*rc = st_exec_sparse_repack(&r->ex, err)) != ST_OK) {
                    st_progress_end(&pb);
                    return 0;
                }
            }
        } else {
            float lr = schedule_lr(o->lr, r->st.step, total);
            for (int gi = 0; gi < ST_NUM_PG; gi++) r->lr[gi] = lr;
        }
        memcpy(r->opt.lr, r->lr, sizeof r->lr);
        memcpy(r->opt.weight_decay, r->wd, sizeof r->wd);
        st_optim_step(&r->opt, r->g, &r->k);
        st_exec_sparse_refresh(&r->ex);
        r->st.step++;
        r->st.epoch_step = s + 1;
        part[0] += loss * B;
        part[2] += B;
        part[3] += st_now() - t0;
        part[4] += wait;
        snprintf(extra, sizeof extra, "loss %.4f", part[0] / part[2]);
        st_progress_update(&pb, s + 1, extra);
        if (o->interrupt && *o->interrupt && s + 1 < steps) {
            st_progress_end(&pb);
            return 1;
        }
    }
    st_progress_end(&pb);
    /* A pruning modifier that ends with the run has its final update due at the step
     * after the last one: apply it now, before the last evaluation and checkpoint. */
    if (r->rrun && epoch == o->epochs - 1 && st_recipe_run_finish(r->rrun, r->g)) {
        r->mask_updates++;
        *rc = st_exec_sparse_repack(&r->ex, err);
    }
    return 0;
}

st_status st_train_classifier(const st_train_opts *opts, st_train_result *res, st_error *err) {
    st_train_opts o = *opts;
    run_ctx r;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    double t_start = st_now();
    st_status rc = setup(&r, &o, err);
    if (rc != ST_OK) {
        run_free(&r);
        return rc;
    }
    int steps = st_loader_num_batches(r.train_loader);
    snprintf(res->out_dir, sizeof res->out_dir, "%s", r.dir);
    FILE *log = o.log;
    fprintf(log, "model: %s, %zu parameters, input %dx%dx%d; batch %d, %d threads, kernels %s; "
                 "output %s\n", o.model, st_graph_num_trainable(r.g), r.channels, r.height, r.width,
            o.batch, o.threads, st_isa_name(r.k.isa), r.dir);
    if (o.resume)
        fprintf(log, "resuming from %s at epoch %d, step %d of %d\n", o.resume, r.st.epoch + 1,
                r.st.epoch_step, steps);
    double prior_seconds = 0;
    for (int i = 0; i < r.st.history_rows; i++) prior_seconds += r.st.history[i * ST_M_COLS + ST_M_EPOCH_S];
    while (r.st.epoch < o.epochs && rc == ST_OK) {
        int epoch = r.st.epoch;
        if (train_epoch(&r, &o, epoch, steps, err, &rc)) {
            res->interrupted = 1;
            rc = save(&r, "last.ckpt", err);
            if (rc == ST_OK)
                fprintf(log, "interrupted at epoch %d step %d; saved %s/last.ckpt (continue with "
                             "--resume %s/last.ckpt)\n", epoch + 1, r.st.epoch_step, r.dir, r.dir);
            break;
        }
        if (rc != ST_OK) break;
        float test_loss, test_acc;
        if ((rc = evaluate(&r, &test_loss, &test_acc, err)) != ST_OK) break;
        double *part = r.st.part;
        float *row = r.st.history + (size_t)epoch * ST_M_COLS;
        row[ST_M_EPOCH] = (float)(epoch + 1);
        row[ST_M_TRAIN_LOSS] = (float)(part[0] / part[2]);
        row[ST_M_TRAIN_ACC] = (float)(part[1] / part[2]);
        row[ST_M_TEST_LOSS] = test_loss;
        row[ST_M_TEST_ACC] = test_acc;
        row[ST_M_LR] = r.opt.lr[0];
        row[ST_M_IMG_PER_S] = (float)(part[2] / part[3]);
        row[ST_M_EPOCH_S] = (float)part[3];
        row[ST_M_DATA_WAIT_S] = (float)part[4];
        row[ST_M_SPARSITY] = (float)st_graph_prunable_sparsity(r.g);
        r.st.history_rows = epoch + 1;
        r.st.epoch = epoch + 1;
        r.st.epoch_step = 0;
        memset(r.st.part, 0, sizeof r.st.part);
        int best = test_acc > r.st.best_metric;
        if (best) r.st.best_metric = test_acc;
        prior_seconds += row[ST_M_EPOCH_S];
        char el[32];
        st_format_duration(el, sizeof el, st_now() - t_start);
        fprintf(log,
                "epoch %d/%d  train_loss %.4f  train_acc %.2f%%  test_loss %.4f  test_acc %.2f%%"
                "  lr %.5f  %.0f img/s  epoch %.1fs  data %.2fs  elapsed %s%s\n",
                epoch + 1, o.epochs, row[ST_M_TRAIN_LOSS], 100 * row[ST_M_TRAIN_ACC], test_loss,
                100 * test_acc, row[ST_M_LR], row[ST_M_IMG_PER_S], row[ST_M_EPOCH_S],
                row[ST_M_DATA_WAIT_S], el, best ? "  (best)" : "");
        if (r.have_recipe) {
            char line[1024];
            st_train_recipe_sparsity_line(&r.recipe, r.rrun, r.g, line, sizeof line);
            fprintf(log, "  recipe: lr %.5g/%.5g/%.5g (groups 0/1/2), weight decay %.3g; %s; %d mask updates\n",
                    r.lr[0], r.lr[1], r.lr[2], r.wd[0], line, r.mask_updates);
            st_exec_sparse_describe(&r.ex, log);
        }
        st_exec_profile_print(&r.ex, log, 12);
        fflush(log);
        rc = save(&r, "last.ckpt", err);
        if (rc == ST_OK && best) rc = save(&r, "best.ckpt", err);
        if (rc == ST_OK) rc = write_outputs(&r, &o, prior_seconds, err);
        if (o.stop_after > 0 && r.st.epoch >= o.stop_after && r.st.epoch < o.epochs) {
            res->interrupted = 1;
            fprintf(log, "stopping after epoch %d as asked; continue with --resume %s/last.ckpt\n",
                    r.st.epoch, r.dir);
            break;
        }
        if (o.interrupt && *o.interrupt && r.st.epoch < o.epochs) {
            res->interrupted = 1;
            fprintf(log, "interrupted after epoch %d; continue with --resume %s/last.ckpt\n",
                    r.st.epoch, r.dir);
            break;
        }
    }
    res->epochs_done = r.st.epoch;
    res->best_accuracy = r.st.best_metric;
    res->final_accuracy = r.st.history_rows ? r.st.history[(r.st.history_rows - 1) * ST_M_COLS + ST_M_TEST_ACC] : 0;
    res->seconds = prior_seconds;
    run_free(&r);
    return rc;
}
