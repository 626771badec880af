/* The training loop's shared state and the interface a task (classification,
 * detection) plugs into it. One generic loop (trainer.c) owns data, model, optimizer,
 * recipe, checkpoints and run files; a task supplies the loss of a batch, the
 * evaluation and its metric columns. */
#ifndef ST_TRAINER_INTERNAL_H
#define ST_TRAINER_INTERNAL_H

#include <stdio.h>

#include "st_cpu.h"
#include "st_dataset.h"
#include "st_exec.h"
#include "st_loader.h"
#include "st_optim.h"
#include "st_recipe_run.h"
#include "st_train.h"
#include "st_train_state.h"

/* Columns every task has in metrics.csv (and the checkpoint's history), first. */
enum {
    ST_C_EPOCH, ST_C_TRAIN_LOSS, ST_C_LR, ST_C_IMG_PER_S, ST_C_EPOCH_S, ST_C_DATA_WAIT_S,
    ST_C_SPARSITY, ST_C_COMMON
};
#define ST_MAX_COLS 24

/* Partial sums of the current epoch (st_train_state.part): loss, images, seconds, data
 * wait, then up to ST_PART_TASK sums of the task. */
enum { ST_P_LOSS, ST_P_SEEN, ST_P_SECONDS, ST_P_WAIT, ST_P_TASK };

typedef struct st_run st_run;

typedef struct st_task_ops {
    const char *name;               /* "classify" | "detect", stored in checkpoints */
    int n_cols;                     /* task columns after the common ones */
    const char *const *cols;
    int best_col;                   /* task column deciding best.ckpt (higher is better) */
    int n_summary;                  /* metrics for summary.json: keys and task columns */
    const char *const *summary_keys;
    const int *summary_cols;
    /* After the graph, plan and loaders exist: task buffers. */
    st_status (*open)(st_run *r, st_error *err);
    /* The batch is in the executor's input: forward (training mode), loss, gradient of
     * the loss into the output gradients; *loss gets the batch's loss, task sums go to
     * r->st.part[ST_P_TASK + i]. The trainer then runs backward and the optimizer. */
    st_status (*train_loss)(st_run *r, const st_batch *b, float *loss, st_error *err);
    /* Fills the task's train columns from the epoch sums and its evaluation columns. */
    st_status (*evaluate)(st_run *r, float *task_row, st_error *err);
    /* One line for the epoch log from the task's columns. */
    void (*describe)(const st_run *r, const float *task_row, char *buf, size_t cap);
    /* After the last epoch (tables, reports); may be NULL. */
    st_status (*finish)(st_run *r, st_error *err);
    void (*free)(st_run *r);
} st_task_ops;

extern const st_task_ops st_task_classify;
extern const st_task_ops st_task_detect;

struct st_run {
    const st_task_ops *task;
    void *task_ctx;
    const st_train_opts *o;
    st_dataset data;
    st_split train, val;
    st_loader *train_loader, *val_loader;
    int channels, height, width;
    float mean, std;
    st_graph *g;
    st_exec ex;
    st_optim opt;
    st_kernels k;
    st_train_state st;
    st_meta meta;
    st_recipe recipe;
    int have_recipe;
    st_recipe_run *rrun;
    float lr[ST_NUM_PG], wd[ST_NUM_PG];
    int mask_updates;
    int n_cols;                     /* ST_C_COMMON + task->n_cols */
    int profile_print;              /* ST_PROFILE set: print node times every epoch */
    /* Training speed by phase (this process only): steps while the prunable weights
     * were dense (< 1% zeros), and steps since the last mask change (the final
     * sparsity at the end of a run). Seconds and images. */
    double dense_s, dense_img, held_s, held_img;
    float cur_sparsity;
    char dir[512];
    char data_path[1024];           /* --data taken from the checkpoint when resuming */
    char model[64];                 /* built-in name or onnx:<stem> */
    uint8_t *arch_in;
    size_t arch_in_len;
    int data_channels;              /* the images' own channels */
    int fresh_head;                 /* output layers freshly initialised (task inits them) */
    double pretrained_sparsity;     /* zeros in the pretrained prunable weights */
    char pretrained_from[1024];     /* the file the weights came from, or "" */
};

/* Opens data, model, optimizer, recipe, plan, loaders and the run folder (resuming when
 * o->resume); fills o's task defaults. */
st_status st_run_setup(st_run *r, st_train_opts *o, st_error *err);
void st_run_free(st_run *r);
const char *st_run_col_name(const st_run *r, int c);

/* "dense 15.0 img/s (250 steps), at 95.3% sparsity 31.0 img/s (500 steps): 2.07x" or
 * what is known of it. */
void st_run_speed_line(const st_run *r, char *buf, size_t cap);

/* OUTDIR/report.html from the history, the layers and the task's images. */
struct st_report_image;
struct st_report_kv;
st_status st_run_write_report(st_run *r, const struct st_report_image *images, int n_images,
                              const struct st_report_kv *extra, int n_extra, st_error *err);

/* Exponential moving average of the weights (r->st.ema, detection): updated after each
 * optimizer step, pruned entries kept exactly zero; swapped into the graph for
 * evaluation and export, and back. */
void st_run_ema_update(st_run *r);
void st_run_swap_ema(st_run *r);

#endif
