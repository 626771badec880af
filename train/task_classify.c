/* The classification task: softmax cross-entropy on the logits, accuracy on the
 * validation split. */
#include <stdlib.h>
#include <string.h>

#include "trainer_internal.h"

enum { C_TRAIN_ACC, C_TEST_LOSS, C_TEST_ACC, C_N };
static const char *const cols[C_N] = {"train_acc", "test_loss", "test_acc"};
static const char *const summary_keys[1] = {"accuracy"};
static const int summary_cols[1] = {C_TEST_ACC};

typedef struct {
    float *probs; /* [batch][classes] */
} classify_ctx;

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

static st_status open_task(st_run *r, st_error *err) {
    st_shape out = r->g->values[r->g->output];
    if (r->g->n_outputs != 1 || out.c != r->data.n_classes || out.h != 1 || out.w != 1)
        return st_errorf(err, ST_ERR_INPUT,
                         "model %s gives %d outputs per image (%dx%dx%d), but %s has %d classes; "
                         "use a model with one output per class", r->o->model,
                         out.c * out.h * out.w, out.c, out.h, out.w, r->o->data, r->data.n_classes);
    classify_ctx *c = calloc(1, sizeof *c);
    if (!c || !(c->probs = malloc((size_t)r->o->batch * r->data.n_classes * sizeof(float)))) {
        free(c);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    }
    r->task_ctx = c;
    return ST_OK;
}

static st_status train_loss(st_run *r, const st_batch *b, float *loss, st_error *err) {
    classify_ctx *c = r->task_ctx;
    int B = r->o->batch, C = r->data.n_classes;
    st_exec_forward(&r->ex, B, 1);
    const float *logits = st_exec_output(&r->ex);
    *loss = st_softmax_xent_forward(c->probs, logits, b->labels, B, C);
    r->st.part[ST_P_TASK] += count_correct(logits, b->labels, B, C);
    float *dlogits = st_exec_doutput(&r->ex);
    memset(dlogits, 0, (size_t)B * C * sizeof(float));
    st_softmax_xent_backward(dlogits, c->probs, b->labels, B, C, 1.0f);
    return ST_OK;
}

static st_status evaluate(st_run *r, float *row, st_error *err) {
    classify_ctx *c = r->task_ctx;
    int C = r->data.n_classes, seen = 0, correct = 0;
    double loss_sum = 0, wait;
    st_status rc = st_loader_start_epoch(r->val_loader, 0, 0, err);
    const st_batch *b;
    while (rc == ST_OK && (b = st_loader_next(r->val_loader, &wait, &rc, err))) {
        memcpy(st_exec_input(&r->ex), b->images,
               (size_t)b->n * r->channels * r->height * r->width * sizeof(float));
        st_exec_forward(&r->ex, b->n, 0);
        const float *logits = st_exec_output(&r->ex);
        loss_sum += (double)st_softmax_xent_forward(c->probs, logits, b->labels, b->n, C) * b->n;
        correct += count_correct(logits, b->labels, b->n, C);
        seen += b->n;
    }
    double n = r->st.part[ST_P_SEEN];
    row[C_TRAIN_ACC] = n > 0 ? (float)(r->st.part[ST_P_TASK] / n) : 0;
    row[C_TEST_LOSS] = seen ? (float)(loss_sum / seen) : 0;
    row[C_TEST_ACC] = seen ? (float)correct / (float)seen : 0;
    return rc;
}

static void describe(const st_run *r, const float *row, char *buf, size_t cap) {
    snprintf(buf, cap, "train_acc %.2f%%  test_loss %.4f  test_acc %.2f%%", 100 * row[C_TRAIN_ACC],
             row[C_TEST_LOSS], 100 * row[C_TEST_ACC]);
}

static st_status finish(st_run *r, st_error *err) { return st_run_write_report(r, NULL, 0, NULL, 0, err); }

static void free_task(st_run *r) {
    classify_ctx *c = r->task_ctx;
    if (c) free(c->probs);
    free(c);
    r->task_ctx = NULL;
}

const st_task_ops st_task_classify = {
    .name = "classify", .n_cols = C_N, .cols = cols, .best_col = C_TEST_ACC,
    .n_summary = 1, .summary_keys = summary_keys, .summary_cols = summary_cols,
    .open = open_task, .train_loss = train_loss, .evaluate = evaluate, .describe = describe,
    .finish = finish, .free = free_task,
};
