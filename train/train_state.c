#include "st_train_state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_ckpt.h"

void st_meta_set(st_meta *m, const char *key, const char *fmt, ...) {
    int i = 0;
    while (i < m->n && strcmp(m->key[i], key) != 0) i++;
    if (i == ST_META_MAX) return;
    if (i == m->n) m->n++;
    snprintf(m->key[i], sizeof m->key[i], "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->value[i], sizeof m->value[i], fmt, ap);
    va_end(ap);
}

const char *st_meta_get(const st_meta *m, const char *key) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0) return m->value[i];
    return NULL;
}

void st_train_state_free(st_train_state *s) {
    free(s->history);
    free(s->recipe_state);
    free(s->recipe_text);
    free(s->recipe_args);
    free(s->arch);
    st_free(s->ema);
    s->ema = NULL;
    s->ema_updates = 0;
    s->arch = NULL;
    s->arch_len = 0;
    s->history = s->recipe_state = NULL;
    s->recipe_text = s->recipe_args = NULL;
    s->history_rows = 0;
    s->recipe_state_n = 0;
}

static st_status put_f32(st_ckpt_writer *w, const char *prefix, const st_param *p,
                         const float *data, st_error *err) {
    char name[ST_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    return st_ckpt_put_tensor(w, name, ST_DT_F32, p->ndim, p->shape, data, err);
}

st_status st_train_state_save(const char *path, const st_graph *g, const st_optim *o,
                              const st_train_state *s, const st_meta *meta, const char *recipe,
                              st_error *err) {
    st_ckpt_writer *w = st_ckpt_writer_new();
    if (!w) return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    st_status rc = ST_OK;
    char buf[64];
    rc = st_ckpt_put_string(w, "format", "sparsetrain-checkpoint-1", err);
    for (int i = 0; rc == ST_OK && i < meta->n; i++)
        rc = st_ckpt_put_string(w, meta->key[i], meta->value[i], err);
    if (rc == ST_OK && recipe) rc = st_ckpt_put_string(w, "recipe", recipe, err);
    if (rc == ST_OK && o) rc = st_ckpt_put_string(w, "optimizer", st_opt_name(o->kind), err);
    for (int i = 0; rc == ST_OK && i < g->n_params; i++) {
        const st_param *p = &g->params[i];
        rc = put_f32(w, "param/", p, st_param_data(g, i), err);
        if (rc == ST_OK && s && s->ema) rc = put_f32(w, "ema/", p, s->ema + p->offset, err);
        if (rc == ST_OK && p->prunable) {
            char name[ST_NAME_MAX + 16];
            snprintf(name, sizeof name, "mask/%s", p->name);
            rc = st_ckpt_put_tensor(w, name, ST_DT_U8, p->ndim, p->shape, st_param_mask(g, i), err);
        }
        if (rc == ST_OK && o && p->group != ST_PG_BUFFER) {
            rc = put_f32(w, "optim.a/", p, o->state + p->offset, err);
            if (rc == ST_OK && o->kind == ST_OPT_ADAMW)
                rc = put_f32(w, "optim.b/", p, o->state + g->param_floats + p->offset, err);
        }
    }
    if (rc == ST_OK && s) {
        int64_t pos[4] = {s->epoch, s->epoch_step, s->step, s->ema_updates}, n3[1] = {4};
        int64_t n5[1] = {(int64_t)(sizeof s->part / sizeof s->part[0])};
        rc = st_ckpt_put_tensor(w, "state/position", ST_DT_U64, 1, n3, pos, err);
        /* the partial sums are doubles: store their exact bit patterns as u64 */
        uint64_t bits[sizeof s->part / sizeof s->part[0]];
        memcpy(bits, s->part, sizeof bits);
        if (rc == ST_OK) rc = st_ckpt_put_tensor(w, "state/partial", ST_DT_U64, 1, n5, bits, err);
        snprintf(buf, sizeof buf, "%.9g", s->best_metric);
        if (rc == ST_OK) rc = st_ckpt_put_string(w, "best_metric", buf, err);
        if (rc == ST_OK && s->has_lr_wd) {
            int64_t n6[1] = {6};
            rc = st_ckpt_put_tensor(w, "state/lr_wd", ST_DT_F32, 1, n6, s->lr_wd, err);
        }
        if (rc == ST_OK && s->recipe_state_n > 0) {
            int64_t rn[1] = {(int64_t)s->recipe_state_n};
            rc = st_ckpt_put_tensor(w, "state/recipe", ST_DT_F32, 1, rn, s->recipe_state, err);
        }
        if (rc == ST_OK && s->arch) {
            int64_t an[1] = {(int64_t)s->arch_len};
            rc = st_ckpt_put_tensor(w, "arch/onnx", ST_DT_U8, 1, an, s->arch, err);
        }
        if (rc == ST_OK && s->history_rows > 0) {
            int64_t hs[2] = {s->history_rows, s->history_cols};
            rc = st_ckpt_put_tensor(w, "state/history", ST_DT_F32, 2, hs, s->history, err);
        }
    }
    if (rc == ST_OK && o) {
        int64_t one[1] = {1};
        rc = st_ckpt_put_tensor(w, "state/optim_steps", ST_DT_U64, 1, one, &o->steps, err);
    }
    if (rc == ST_OK) rc = st_ckpt_write(w, path, err);
    st_ckpt_writer_free(w);
    return rc;
}

static int same_shape(const st_ckpt_tensor *t, const st_param *p, st_dtype dt) {
    if (t->dtype != dt || t->ndim != p->ndim) return 0;
    for (int i = 0; i < p->ndim; i++)
        if (t->shape[i] != p->shape[i]) return 0;
    return 1;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* Looks up prefix+name and checks dtype/shape; NULL (with err set) when it does not fit. */
static const st_ckpt_tensor *want(const st_ckpt *c, const char *path, const char *prefix,
                                  const st_param *p, st_dtype dt, st_error *err) {
    char name[ST_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    const st_ckpt_tensor *t = st_ckpt_find(c, name);
    if (!t) {
        st_errorf(err, ST_ERR_INPUT, "%s: has no tensor %s; it was saved from a different model",
                  path, name);
        return NULL;
    }
    if (!same_shape(t, p, dt)) {
        char a[96], b[96];
        shape_str(a, sizeof a, t->ndim, t->shape);
        shape_str(b, sizeof b, p->ndim, p->shape);
        st_errorf(err, ST_ERR_INPUT,
                  "%s: %s has shape %s in the checkpoint but %s in the model; it belongs to "
                  "another model or number of classes", path, name, a, b);
        return NULL;
    }
    return t;
}

st_status st_train_state_load(const char *path, const char *model, st_graph *g, st_optim *o,
                              st_train_state *s, st_meta *meta, st_error *err) {
    st_ckpt *c = NULL;
    st_status rc = st_ckpt_read(path, &c, err);
    if (rc != ST_OK) return rc;
    const char *fmt = st_ckpt_string(c, "format"), *m = st_ckpt_string(c, "model");
    if (!fmt || strcmp(fmt, "sparsetrain-checkpoint-1") != 0) {
        rc = st_errorf(err, ST_ERR_INPUT, "%s: not a sparsetrain training checkpoint", path);
        goto done;
    }
    if (model && (!m || strcmp(m, model) != 0)) {
        rc = st_errorf(err, ST_ERR_INPUT,
                       "%s: checkpoint belongs to model '%s', but this run uses '%s'; pass "
                       "--model %s or another checkpoint", path, m ? m : "?", model, m ? m : "?");
        goto done;
    }
    const char *oname = st_ckpt_string(c, "optimizer");
    if (o && oname && strcmp(oname, st_opt_name(o->kind)) != 0) {
        rc = st_errorf(err, ST_ERR_INPUT, "%s: optimizer state is for %s, this run uses %s", path,
                       oname, st_opt_name(o->kind));
        goto done;
    }
    /* Validate everything before touching the model, so a bad file changes nothing. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < g->n_params; i++) {
            const st_param *p = &g->params[i];
            const st_ckpt_tensor *t = want(c, path, "param/", p, ST_DT_F32, err);
            if (!t) { rc = ST_ERR_INPUT; goto done; }
            if (pass) memcpy(st_param_data(g, i), t->data, p->numel * sizeof(float));
            if (p->prunable) {
                const st_ckpt_tensor *mk = want(c, path, "mask/", p, ST_DT_U8, err);
                if (!mk) { rc = ST_ERR_INPUT; goto done; }
                if (pass) memcpy(st_param_mask(g, i), mk->data, p->numel);
            }
            if (o && p->group != ST_PG_BUFFER) {
                const st_ckpt_tensor *a = want(c, path, "optim.a/", p, ST_DT_F32, err);
                const st_ckpt_tensor *b = o->kind == ST_OPT_ADAMW
                                              ? want(c, path, "optim.b/", p, ST_DT_F32, err) : a;
                if (!a || !b) { rc = ST_ERR_INPUT; goto done; }
                if (pass) {
                    memcpy(o->state + p->offset, a->data, p->numel * sizeof(float));
                    if (o->kind == ST_OPT_ADAMW)
                        memcpy(o->state + g->param_floats + p->offset, b->data, p->numel * sizeof(float));
                }
            }
        }
    }
    if (o) {
        const st_ckpt_tensor *t = st_ckpt_find(c, "state/optim_steps");
        if (t && t->dtype == ST_DT_U64 && t->nbytes == 8) memcpy(&o->steps, t->data, 8);
    }
    if (s) {
        memset(s, 0, sizeof *s);
        const st_ckpt_tensor *pos = st_ckpt_find(c, "state/position");
        const st_ckpt_tensor *part = st_ckpt_find(c, "state/partial");
        if (pos && pos->dtype == ST_DT_U64 && pos->nbytes >= 24) {
            const int64_t *v = pos->data;
            s->epoch = (int)v[0];
            s->epoch_step = (int)v[1];
            s->step = v[2];
            if (pos->nbytes >= 32) s->ema_updates = v[3];
        }
        if (g->n_params) {
            char first[ST_NAME_MAX + 8];
            snprintf(first, sizeof first, "ema/%s", g->params[0].name);
            if (st_ckpt_find(c, first)) {
                s->ema = st_calloc(g->param_floats * sizeof(float));
                if (!s->ema) { rc = st_errorf(err, ST_ERR_NOMEM, "out of memory"); goto done; }
                for (int i = 0; i < g->n_params; i++) {
                    const st_ckpt_tensor *t = want(c, path, "ema/", &g->params[i], ST_DT_F32, err);
                    if (!t) { rc = ST_ERR_INPUT; goto done; }
                    memcpy(s->ema + g->params[i].offset, t->data, g->params[i].numel * sizeof(float));
                }
            }
        }
        if (part && part->dtype == ST_DT_U64 && part->nbytes == sizeof s->part)
            memcpy(s->part, part->data, sizeof s->part);
        const char *best = st_ckpt_string(c, "best_metric");
        s->best_metric = best ? strtof(best, NULL) : 0.0f;
        const st_ckpt_tensor *lw = st_ckpt_find(c, "state/lr_wd");
        if (lw && lw->dtype == ST_DT_F32 && lw->nbytes == sizeof s->lr_wd) {
            memcpy(s->lr_wd, lw->data, sizeof s->lr_wd);
            s->has_lr_wd = 1;
        }
        const st_ckpt_tensor *rs = st_ckpt_find(c, "state/recipe");
        if (rs && rs->dtype == ST_DT_F32 && rs->ndim == 1) {
            s->recipe_state_n = (size_t)rs->shape[0];
            s->recipe_state = malloc(rs->nbytes ? rs->nbytes : 1);
            if (!s->recipe_state) { rc = st_errorf(err, ST_ERR_NOMEM, "out of memory"); goto done; }
            memcpy(s->recipe_state, rs->data, rs->nbytes);
        }
        const char *rt = st_ckpt_string(c, "recipe"), *ra = st_ckpt_string(c, "recipe_args");
        if (rt && !(s->recipe_text = strdup(rt))) { rc = st_errorf(err, ST_ERR_NOMEM, "out of memory"); goto done; }
        if (ra && !(s->recipe_args = strdup(ra))) { rc = st_errorf(err, ST_ERR_NOMEM, "out of memory"); goto done; }
        const st_ckpt_tensor *h = st_ckpt_find(c, "state/history");
        if (h && h->dtype == ST_DT_F32 && h->ndim == 2) {
            s->history_rows = (int)h->shape[0];
            s->history_cols = (int)h->shape[1];
            s->history = malloc(h->nbytes ? h->nbytes : 1);
            if (!s->history) { rc = st_errorf(err, ST_ERR_NOMEM, "out of memory"); goto done; }
            memcpy(s->history, h->data, h->nbytes);
        }
    }
    if (meta) {
        memset(meta, 0, sizeof *meta);
        static const char *const keys[] = {"model", "task", "epochs", "batch", "lr", "weight_decay",
                                           "momentum", "seed", "threads", "train_limit",
                                           "test_limit", "num_classes", "input", "data", "classes",
                                           "recipe_args", "normalize"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = st_ckpt_string(c, keys[i]);
            if (v) st_meta_set(meta, keys[i], "%s", v);
        }
    }
done:
    st_ckpt_free(c);
    return rc;
}
