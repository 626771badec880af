/* Optimizers over a finalized graph. LR and weight decay are per parameter group
 * (0 conv/linear weights, 1 BN weights, 2 biases) and set from outside before each step:
 * the default schedule or the recipe engine owns them. State (momentum, Adam moments)
 * lives in one arena parallel to the parameter arena. */
#ifndef ST_OPTIM_H
#define ST_OPTIM_H

#include "st_cpu.h"
#include "st_graph.h"

typedef enum { ST_OPT_SGD = 0, ST_OPT_ADAMW = 1 } st_opt_kind;

typedef struct st_optim {
    st_opt_kind kind;
    float momentum; /* SGD */
    int nesterov;   /* SGD */
    float beta1, beta2, eps; /* AdamW */
    float lr[ST_NUM_PG];
    float weight_decay[ST_NUM_PG];
    int64_t steps;  /* optimizer steps taken */
    float *state;   /* SGD: [param_floats]; AdamW: [2 * param_floats] */
    size_t state_floats;
} st_optim;

st_status st_optim_init(st_optim *o, const st_graph *g, st_opt_kind kind, st_error *err);
void st_optim_free(st_optim *o);
/* Masks the gradients of masked params, updates every trainable param, then re-applies
 * the masks to the weights so a pruned weight stays exactly zero. */
void st_optim_step(st_optim *o, st_graph *g, const st_kernels *k);
/* Apply the masks to the weights alone (after loading or changing masks). */
void st_graph_apply_masks(st_graph *g, const st_kernels *k);
const char *st_opt_name(st_opt_kind kind);
/* Parses "sgd" or "adamw"; returns -1 otherwise. */
int st_opt_parse(const char *s);

#endif
