#include "st_optim.h"

#include <math.h>
#include <string.h>

const char *st_opt_name(st_opt_kind kind) { return kind == ST_OPT_ADAMW ? "adamw" : "sgd"; }

int st_opt_parse(const char *s) {
    if (strcmp(s, "sgd") == 0) return ST_OPT_SGD;
    if (strcmp(s, "adamw") == 0) return ST_OPT_ADAMW;
    return -1;
}

st_status st_optim_init(st_optim *o, const st_graph *g, st_opt_kind kind, st_error *err) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->momentum = 0.9f;
    o->nesterov = 1;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    for (int i = 0; i < ST_NUM_PG; i++) o->lr[i] = 0.01f;
    o->state_floats = g->param_floats * (kind == ST_OPT_ADAMW ? 2 : 1);
    o->state = st_calloc(o->state_floats * sizeof(float));
    if (!o->state) return st_errorf(err, ST_ERR_NOMEM, "out of memory for optimizer state");
    return ST_OK;
}

void st_optim_free(st_optim *o) {
    st_free(o->state);
    o->state = NULL;
}

void st_graph_apply_masks(st_graph *g, const st_kernels *k) {
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].prunable)
            k->apply_mask(st_param_data(g, i), st_param_mask(g, i), g->params[i].numel);
}

void st_optim_step(st_optim *o, st_graph *g, const st_kernels *k) {
    int first = o->steps == 0;
    o->steps++;
    float bc1 = 1.0f - powf(o->beta1, (float)o->steps);
    float bc2 = 1.0f - powf(o->beta2, (float)o->steps);
    for (int i = 0; i < g->n_params; i++) {
        const st_param *p = &g->params[i];
        if (p->group == ST_PG_BUFFER) continue;
        float *w = st_param_data(g, i), *gr = st_param_grad(g, i);
        const unsigned char *mask = st_param_mask(g, i);
        if (mask) k->apply_mask(gr, mask, p->numel);
        float lr = o->lr[p->group], wd = o->weight_decay[p->group];
        if (o->kind == ST_OPT_SGD) {
            k->sgd(w, gr, o->state + p->offset, p->numel, lr, o->momentum, wd, o->nesterov, first);
        } else {
            float *m = o->state + p->offset, *v = o->state + g->param_floats + p->offset;
            k->adamw(w, gr, m, v, p->numel, lr, o->beta1, o->beta2, o->eps, wd, bc1, bc2);
        }
        if (mask) k->apply_mask(w, mask, p->numel);
    }
}
