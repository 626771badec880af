/* The training loop shared by every task. One plan of buffers for the whole run; the
 * loader derives every epoch's order and augmentation from (seed, epoch), so a run
 * stopped anywhere and resumed from its checkpoint repeats the uninterrupted run
 * exactly (same thread count). The task (task_classify.c, task_detect.c) supplies the
 * loss of a batch and the evaluation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ckpt.h"
#include "st_models.h"
#include "st_onnx.h"
#include "st_progress.h"
#include "st_rng.h"
#include "st_run_files.h"
#include "st_train_recipe.h"
#include "trainer_internal.h"

static const char *const common_cols[ST_C_COMMON] = {
    "epoch", "train_loss", "lr", "images_per_sec", "epoch_seconds", "data_wait_seconds",
    "sparsity"};

void st_train_opts_default(st_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 0; /* 5, or what the recipe says */
    o->batch = 0;  /* task default: 64 classify, 16 detect */
    o->threads = 2;
    o->seed = 1;
    o->lr = 0;     /* task default */
    o->weight_decay = 5e-4f;
    o->momentum = -1; /* task default: 0.9 classify, 0.937 detect */
    o->optimizer = ST_OPT_SGD;
    o->progress = -1;
    o->workers = 1;
    o->fliplr = -1;   /* task default: 0 classify, 0.5 detect */
    o->mosaic = -1;   /* detect: 1.0 */
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

void st_run_free(st_run *r) {
    if (r->task && r->task->free) r->task->free(r);
    st_recipe_run_free(r->rrun);
    st_recipe_free(&r->recipe);
    st_loader_free(r->train_loader);
    st_loader_free(r->val_loader);
    st_dataset_free(&r->data);
    st_exec_free(&r->ex);
    st_optim_free(&r->opt);
    st_graph_free(r->g);
    st_train_state_free(&r->st);
    free(r->arch_in);
}

const char *st_run_col_name(const st_run *r, int c) {
    return c < ST_C_COMMON ? common_cols[c] : r->task->cols[c - ST_C_COMMON];
}

static st_status save(st_run *r, const char *name, st_error *err) {
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

static st_status write_outputs(st_run *r, double seconds, st_error *err) {
    char path[600];
    const char *header[ST_MAX_COLS];
    for (int c = 0; c < r->n_cols; c++) header[c] = st_run_col_name(r, c);
    snprintf(path, sizeof path, "%s/metrics.csv", r->dir);
    st_status rc = st_write_metrics_csv(path, header, r->st.history, r->st.history_rows,
                                        r->n_cols, err);
    if (rc != ST_OK) return rc;
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    const float *last = r->st.history + (size_t)(r->st.history_rows - 1) * r->n_cols + ST_C_COMMON;
    double vals[8];
    const st_task_ops *t = r->task;
    for (int i = 0; i < t->n_summary && i < 8; i++) vals[i] = r->st.history_rows ? last[t->summary_cols[i]] : 0;
    return st_write_summary_json(path, t->name, r->o->model, t->n_summary, t->summary_keys, vals,
                                 r->g, r->st.history_rows, seconds, err);
}

/* The finished model as ONNX (BatchNorm folded; the EMA weights when there are), with
 * what a deployment needs to preprocess images and name the classes. */
static st_status export_onnx(st_run *r, st_error *err) {
    char path[600], input[64], norm[64], *names = NULL;
    snprintf(path, sizeof path, "%s/model.onnx", r->dir);
    snprintf(input, sizeof input, "%dx%dx%d", r->channels, r->height, r->width);
    snprintf(norm, sizeof norm, "%.6g %.6g", r->mean, r->std);
    size_t len = 3;
    for (int i = 0; i < r->data.n_classes; i++) len += 6 * strlen(r->data.class_names[i]) + 4;
    if (!(names = malloc(len))) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    st_json_string_list(names, len, (const char *const *)r->data.class_names, r->data.n_classes);
    const char *keys[] = {"sparsetrain.task", "sparsetrain.model", "sparsetrain.input",
                          "sparsetrain.normalize", "sparsetrain.classes"};
    const char *vals[] = {r->task->name, r->o->model, input, norm, names};
    st_onnx_export_opts eo;
    st_onnx_export_opts_default(&eo);
    eo.recipe = r->have_recipe ? r->recipe.text : NULL;
    eo.n_meta = 5, eo.meta_keys = keys, eo.meta_values = vals;
    if (r->st.ema) st_run_swap_ema(r);
    st_status rc = st_onnx_export_file(r->g, &eo, path, err);
    if (r->st.ema) st_run_swap_ema(r);
    if (rc == ST_OK) fprintf(r->o->log, "exported %s (opset 13, BatchNorm folded)\n", path);
    free(names);
    return rc;
}

void st_run_speed_line(const st_run *r, char *buf, size_t cap) {
    int n = 0;
    double d = r->dense_s > 0 ? r->dense_img / r->dense_s : 0, h = r->held_s > 0 ? r->held_img / r->held_s : 0;
    int B = r->o->batch;
    if (d > 0)
        n += snprintf(buf + n, cap - n, "dense %.1f img/s (%.0f steps)", d, r->dense_img / B);
    if (h > 0)
        n += snprintf(buf + n, cap - n, "%sat %.2f%% sparsity %.1f img/s (%.0f steps)", n ? ", " : "",
                      100 * r->cur_sparsity, h, r->held_img / B);
    if (d > 0 && h > 0) n += snprintf(buf + n, cap - n, ": %.2fx", h / d);
    if (!n) snprintf(buf, cap, "no training steps timed");
}

void st_run_ema_update(st_run *r) {
    if (!r->st.ema) return;
    /* YOLOv5's ModelEMA: decay 0.9999 ramped up over the first ~2000 updates */
    double d = 0.9999 * (1.0 - exp(-(double)++r->st.ema_updates / 2000.0));
    float df = (float)d, k = 1.0f - df;
    const st_graph *g = r->g;
    for (int i = 0; i < g->n_params; i++) {
        const st_param *p = &g->params[i];
        float *e = r->st.ema + p->offset;
        const float *w = st_param_data(g, i);
        const unsigned char *m = st_param_mask(g, i);
        for (size_t j = 0; j < p->numel; j++) e[j] = m && !m[j] ? 0.0f : df * e[j] + k * w[j];
    }
}

void st_run_swap_ema(st_run *r) {
    float *w = r->g->param_data;
    r->g->param_data = r->st.ema;
    r->st.ema = w;
    st_exec_sparse_refresh(&r->ex);
}


/* One epoch of optimizer steps, from step r->st.epoch_step (non-zero after a mid-epoch
 * resume). Returns 1 when interrupted. */
static int train_epoch(st_run *r, int epoch, int steps, st_error *err, st_status *rc) {
    const st_train_opts *o = r->o;
    int B = o->batch;
    size_t in_floats = (size_t)B * r->channels * r->height * r->width;
    int64_t total = (int64_t)steps * o->epochs;
    if ((*rc = st_loader_start_epoch(r->train_loader, epoch, r->st.epoch_step, err)) != ST_OK) return 0;
    /* the last epoch's node times give the report's per-layer share of time */
    if (epoch == o->epochs - 1 && !r->ex.node_seconds && (*rc = st_exec_profile(&r->ex, 1)) != ST_OK)
        return 0;
    char label[32], extra[64];
    r->mask_updates = 0;
    snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, o->epochs);
    st_progress pb;
    st_progress_start(&pb, stderr, o->progress, label, steps);
    double *part = r->st.part;
    int stop = 0;
    for (int s = r->st.epoch_step; s < steps && !stop; s++) {
        double t0 = st_now(), wait;
        const st_batch *b = st_loader_next(r->train_loader, &wait, rc, err);
        if (!b) {
            if (*rc == ST_OK) *rc = st_errorf(err, ST_ERR_INTERNAL, "loader ended early at step %d", s);
            break;
        }
        memcpy(st_exec_input(&r->ex), b->images, in_floats * sizeof(float));
        r->ex.dropout_seed = st_hash64(o->seed ^ st_hash64((uint64_t)r->st.step));
        float loss = 0;
        if ((*rc = r->task->train_loss(r, b, &loss, err)) != ST_OK) break;
        if (!isfinite(loss)) {
            *rc = st_errorf(err, ST_ERR_NUMERIC,
                            "loss became %g at epoch %d step %d; lower --lr (now %g) or check the data",
                            (double)loss, epoch + 1, s + 1, (double)o->lr);
            break;
        }
        st_graph_zero_grad(r->g);
        st_exec_backward(&r->ex);
        if (r->rrun) {
            if (st_recipe_run_step(r->rrun, r->g, r->st.step, r->lr, r->wd)) {
                r->mask_updates++;
                r->cur_sparsity = (float)st_graph_prunable_sparsity(r->g);
                r->held_s = r->held_img = 0;
                /* the new masks take effect in this very step's forward pass */
                if ((*rc = st_exec_sparse_repack(&r->ex, err)) != ST_OK) break;
            }
        } else {
            float lr = schedule_lr(o->lr, r->st.step, total);
            for (int gi = 0; gi < ST_NUM_PG; gi++) r->lr[gi] = lr;
        }
        memcpy(r->opt.lr, r->lr, sizeof r->lr);
        memcpy(r->opt.weight_decay, r->wd, sizeof r->wd);
        st_optim_step(&r->opt, r->g, &r->k);
        st_exec_sparse_refresh(&r->ex);
        st_run_ema_update(r);
        r->st.step++;
        r->st.epoch_step = s + 1;
        part[ST_P_LOSS] += loss * B;
        part[ST_P_SEEN] += B;
        part[ST_P_SECONDS] += st_now() - t0;
        part[ST_P_WAIT] += wait;
        double dt = st_now() - t0;
        if (r->cur_sparsity < 0.01f) r->dense_s += dt, r->dense_img += B;
        else r->held_s += dt, r->held_img += B;
        snprintf(extra, sizeof extra, "loss %.4f", part[ST_P_LOSS] / part[ST_P_SEEN]);
        st_progress_update(&pb, s + 1, extra);
        stop = o->interrupt && *o->interrupt && s + 1 < steps;
    }
    st_progress_end(&pb);
    if (stop || *rc != ST_OK) return stop;
    /* A pruning modifier that ends with the run has its final update due at the step
     * after the last one: apply it now, before the last evaluation and checkpoint. */
    if (r->rrun && epoch == o->epochs - 1 && st_recipe_run_finish(r->rrun, r->g)) {
        r->mask_updates++;
        if (r->st.ema) { /* the EMA follows the final masks */
            for (int i = 0; i < r->g->n_params; i++) {
                const unsigned char *m = st_param_mask(r->g, i);
                for (size_t j = 0; m && j < r->g->params[i].numel; j++)
                    if (!m[j]) r->st.ema[r->g->params[i].offset + j] = 0.0f;
            }
        }
        *rc = st_exec_sparse_repack(&r->ex, err);
    }
    return 0;
}

/* Evaluates, records the epoch's row, logs it, saves checkpoints and run files. */
static st_status end_epoch(st_run *r, int epoch, double t_start, double *prior_seconds,
                           st_error *err) {
    const st_train_opts *o = r->o;
    float *row = r->st.history + (size_t)epoch * r->n_cols;
    double *part = r->st.part;
    st_status rc = r->task->evaluate(r, row + ST_C_COMMON, err);
    if (rc != ST_OK) return rc;
    row[ST_C_EPOCH] = (float)(epoch + 1);
    row[ST_C_TRAIN_LOSS] = (float)(part[ST_P_LOSS] / part[ST_P_SEEN]);
    row[ST_C_LR] = r->opt.lr[0];
    row[ST_C_IMG_PER_S] = (float)(part[ST_P_SEEN] / part[ST_P_SECONDS]);
    row[ST_C_EPOCH_S] = (float)part[ST_P_SECONDS];
    row[ST_C_DATA_WAIT_S] = (float)part[ST_P_WAIT];
    row[ST_C_SPARSITY] = (float)st_graph_prunable_sparsity(r->g);
    r->st.history_rows = epoch + 1;
    r->st.epoch = epoch + 1;
    r->st.epoch_step = 0;
    memset(r->st.part, 0, sizeof r->st.part);
    float metric = row[ST_C_COMMON + r->task->best_col];
    int best = metric > r->st.best_metric;
    if (best) r->st.best_metric = metric;
    *prior_seconds += row[ST_C_EPOCH_S];
    char el[32], desc[256];
    st_format_duration(el, sizeof el, st_now() - t_start);
    r->task->describe(r, row + ST_C_COMMON, desc, sizeof desc);
    fprintf(o->log,
            "epoch %d/%d  train_loss %.4f  %s  lr %.5f  %.0f img/s  epoch %.1fs  data %.2fs  "
            "elapsed %s%s\n",
            epoch + 1, o->epochs, row[ST_C_TRAIN_LOSS], desc, row[ST_C_LR], row[ST_C_IMG_PER_S],
            row[ST_C_EPOCH_S], row[ST_C_DATA_WAIT_S], el, best ? "  (best)" : "");
    if (r->have_recipe) {
        char line[1024];
        st_train_recipe_sparsity_line(&r->recipe, r->rrun, r->g, line, sizeof line);
        fprintf(o->log, "  recipe: lr %.5g/%.5g/%.5g (groups 0/1/2), weight decay %.3g; %s; %d mask updates\n",
                r->lr[0], r->lr[1], r->lr[2], r->wd[0], line, r->mask_updates);
        st_exec_sparse_describe(&r->ex, o->log);
    }
    if (r->profile_print) st_exec_profile_print(&r->ex, o->log, 12);
    fflush(o->log);
    rc = save(r, "last.ckpt", err);
    if (rc == ST_OK && best) rc = save(r, "best.ckpt", err);
    if (rc == ST_OK) rc = write_outputs(r, *prior_seconds, err);
    return rc;
}

st_status st_train_run(const st_train_opts *opts, st_train_result *res, st_error *err) {
    st_train_opts o = *opts;
    st_run r;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    r.o = &o;
    double t_start = st_now();
    st_status rc = st_run_setup(&r, &o, err);
    if (rc != ST_OK) {
        st_run_free(&r);
        return rc;
    }
    int steps = st_loader_num_batches(r.train_loader);
    snprintf(res->out_dir, sizeof res->out_dir, "%s", r.dir);
    FILE *log = o.log;
    fprintf(log, "model: %s (%s), %zu parameters, input %dx%dx%d; batch %d, %d threads, kernels %s; "
                 "output %s\n", o.model, r.task->name, st_graph_num_trainable(r.g), r.channels,
            r.height, r.width, o.batch, o.threads, st_isa_name(r.k.isa), r.dir);
    if (o.resume)
        fprintf(log, "resuming from %s at epoch %d, step %d of %d\n", o.resume, r.st.epoch + 1,
                r.st.epoch_step, steps);
    fflush(log); /* what was loaded and how, before the first (long) epoch */
    double prior_seconds = 0;
    for (int i = 0; i < r.st.history_rows; i++) prior_seconds += r.st.history[i * r.n_cols + ST_C_EPOCH_S];
    while (r.st.epoch < o.epochs && rc == ST_OK) {
        int epoch = r.st.epoch;
        if (train_epoch(&r, epoch, steps, err, &rc)) {
            res->interrupted = 1;
            rc = save(&r, "last.ckpt", err);
            if (rc == ST_OK)
                fprintf(log, "interrupted at epoch %d step %d; saved %s/last.ckpt (continue with "
                             "--resume %s/last.ckpt)\n", epoch + 1, r.st.epoch_step, r.dir, r.dir);
            break;
        }
        if (rc != ST_OK || (rc = end_epoch(&r, epoch, t_start, &prior_seconds, err)) != ST_OK) break;
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
    if (rc == ST_OK && !res->interrupted && r.st.epoch >= o.epochs) {
        rc = export_onnx(&r, err);
        if (rc == ST_OK && r.task->finish) rc = r.task->finish(&r, err);
    }
    res->epochs_done = r.st.epoch;
    snprintf(res->task, sizeof res->task, "%s", r.task->name);
    snprintf(res->metric_name, sizeof res->metric_name, "%s", r.task->cols[r.task->best_col]);
    res->best_metric = r.st.best_metric;
    res->final_metric = r.st.history_rows
                            ? r.st.history[(r.st.history_rows - 1) * r.n_cols + ST_C_COMMON + r.task->best_col]
                            : 0;
    res->seconds = prior_seconds;
    st_run_free(&r);
    return rc;
}
