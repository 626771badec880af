/* Running a bound recipe: per optimizer step, learning rate / weight decay and the
 * pruning modifiers' mask updates; modifier state for checkpoints.
 *
 * GMP timing (in steps, see rr_internal.h): the first update at the first step with
 * epoch >= start; then at the first step with epoch >= last update + update_frequency
 * (the epoch of the step actually taken, as SparseML does, so with 0.25-epoch updates and
 * 10 steps per epoch the updates are 3 steps apart); one forced at the first step with
 * epoch >= end, which applies final_sparsity exactly. A regular update uses the
 * interpolation at that step's epoch (init exactly when a step falls on start). With
 * leave_enabled false the masks are released (all ones) at that final step, right after
 * the final update has zeroed the weights, as SparseML does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rr_internal.h"

const char *rr_kind_name(st_mod_kind k) {
    static const char *const names[ST_MOD_KIND_COUNT] = {
        "EpochRangeModifier", "GMPruningModifier", "MagnitudePruningModifier",
        "GlobalMagnitudePruningModifier", "ConstantPruningModifier", "SetLearningRateModifier",
        "LearningRateFunctionModifier", "LearningRateModifier", "SetWeightDecayModifier",
        "(not run)"};
    return (unsigned)k < ST_MOD_KIND_COUNT ? names[k] : "?";
}

static int is_global(const st_modifier *m) {
    return m->kind == ST_MOD_GLOBAL_MAGNITUDE || (m->kind == ST_MOD_GMP && m->global_sparsity);
}

static int is_gmp(st_mod_kind k) {
    return k == ST_MOD_GMP || k == ST_MOD_MAGNITUDE || k == ST_MOD_GLOBAL_MAGNITUDE;
}

static st_status check_modifier(const st_recipe *r, const st_modifier *m, st_error *err) {
    if (!is_gmp(m->kind)) return ST_OK;
    const char *path = r->path ? r->path : "recipe";
    const char *tag = m->tag[0] ? m->tag : rr_kind_name(m->kind);
    if (m->mask_type == ST_MASK_BLOCK && m->mask_m < 1)
        return st_errorf(err, ST_ERR_INPUT, "%s:%d: %s: block size %d must be >= 1", path,
                         m->line, tag, m->mask_m);
    /* the parser rejects these too; a modifier built by hand meets the same rule */
    if (m->mask_type == ST_MASK_BLOCK && m->mask_n > 1 && m->mask_m > 1)
        return st_errorf(err, ST_ERR_INPUT, "%s:%d: %s: mask_type [%d, %d]: only [1, M] (input "
                         "channels) or [M, 1] (output channels) blocks are supported", path,
                         m->line, tag, m->mask_n, m->mask_m);
    if (m->mask_type != ST_MASK_NM) return ST_OK;
    if (m->mask_n < 1 || m->mask_n >= m->mask_m || m->mask_m > 64)
        return st_errorf(err, ST_ERR_INPUT, "%s:%d: %s: mask_type %d:%d: need 1 <= N < M <= 64",
                         path, m->line, tag, m->mask_n, m->mask_m);
    if (is_global(m))
        return st_errorf(err, ST_ERR_INPUT, "%s:%d: %s: N:M masks are per group of M weights; "
                         "global sparsity does not apply to them", path, m->line, tag);
    /* An N:M pattern has one sparsity; like SparseML, the target must name it. */
    double nm = 1.0 - (double)m->mask_n / m->mask_m;
    for (int gi = 0; gi < m->n_groups; gi++)
        if (fabs(m->groups[gi].final_sparsity - nm) > 0.01)
            return st_errorf(err, ST_ERR_INPUT, "%s:%d: %s: mask_type %d:%d gives sparsity %.4g "
                             "but final_sparsity is %.4g (they must agree within 0.01)", path,
                             m->line, tag, m->mask_n, m->mask_m, nm,
                             m->groups[gi].final_sparsity);
    return ST_OK;
}

st_status st_recipe_bind(const st_recipe *r, const st_graph *g, int steps_per_epoch,
                         st_recipe_run **out, st_error *err) {
    *out = NULL;
    if (!r) return st_errorf(err, ST_ERR_INTERNAL, "st_recipe_bind: no recipe");
    if (steps_per_epoch <= 0)
        return st_errorf(err, ST_ERR_INPUT, "steps per epoch must be positive (got %d)",
                         steps_per_epoch);
    for (int i = 0; i < r->n_mods; i++) {
        st_status rc = check_modifier(r, &r->mods[i], err);
        if (rc) return rc;
    }
    st_recipe_run *run = calloc(1, sizeof *run);
    if (!run) return st_errorf(err, ST_ERR_NOMEM, "out of memory binding the recipe");
    run->spe = steps_per_epoch;
    run->n_params = g ? g->n_params : 0;
    run->n_mods = r->n_mods;
    run->mods = calloc(r->n_mods > 0 ? (size_t)r->n_mods : 1, sizeof *run->mods);
    if (!run->mods) goto oom;
    double end = r->end_epoch > 0 ? rr_dec(r->end_epoch) : 0.0;
    for (int i = 0; i < r->n_mods; i++) {
        rr_mod *md = &run->mods[i];
        md->m = r->mods[i];
        md->m.groups = NULL;
        md->last = -1;
        if (md->m.n_groups > 0) {
            md->finals = malloc((size_t)md->m.n_groups * sizeof(float));
            if (!md->finals) goto oom;
            for (int gi = 0; gi < md->m.n_groups; gi++)
                md->finals[gi] = r->mods[i].groups[gi].final_sparsity;
        } else {
            md->m.n_groups = 0;
        }
        /* the run lasts until the largest start or end epoch among modifiers */
        if (md->m.start_epoch > 0 && rr_dec(md->m.start_epoch) > end) end = rr_dec(md->m.start_epoch);
        if (md->m.end_epoch > 0 && rr_dec(md->m.end_epoch) > end) end = rr_dec(md->m.end_epoch);
    }
    run->run_end = end;
    rr_resolve_times(run);
    if (g) {
        st_status rc = rr_select(r, g, run, err);
        if (rc) {
            st_recipe_run_free(run);
            return rc;
        }
    }
    int most = 1;
    for (int i = 0; i < run->n_mods; i++) most = run->mods[i].nt > most ? run->mods[i].nt : most;
    run->scratch = malloc((size_t)most * sizeof *run->scratch);
    if (!run->scratch) goto oom;
    *out = run;
    return ST_OK;
oom:
    st_recipe_run_free(run);
    return st_errorf(err, ST_ERR_NOMEM, "out of memory binding the recipe");
}

void st_recipe_run_free(st_recipe_run *run) {
    if (!run) return;
    for (int i = 0; i < run->n_mods && run->mods; i++) free(run->mods[i].finals);
    free(run->mods);
    free(run->targets);
    free(run->scratch);
    free(run);
}

float st_recipe_run_epochs(const st_recipe_run *run) { return run ? (float)run->run_end : 0.0f; }

int64_t st_recipe_run_total_steps(const st_recipe_run *run) {
    return run ? rr_first_step(run->run_end, run->spe) : 0;
}

/* ---- masks ---- */

/* The view of param p for items of `rows` output channels (rows > 1: [M, 1] blocks) or
 * of blocks along the input channels (rows 1). */
static st_mask_tensor tensor_of(const st_graph *g, int p, int rows) {
    const st_param *pp = &g->params[p];
    st_mask_tensor t = {st_param_data(g, p), st_param_mask(g, p), 0, 0, 0};
    st_mask_view(pp->shape, pp->ndim, pp->numel, rows, &t);
    return t;
}

/* Zero the pruned weights now: the optimizer only re-applies masks after its next step. */
static void apply_mask(st_graph *g, int p) {
    float *w = st_param_data(g, p);
    const unsigned char *mk = st_param_mask(g, p);
    for (size_t i = 0; i < g->params[p].numel; i++)
        if (!mk[i]) w[i] = 0.0f;
}

static int set_ones(st_graph *g, int p) {
    unsigned char *mk = st_param_mask(g, p);
    int changed = 0;
    for (size_t i = 0; i < g->params[p].numel; i++) changed |= mk[i] != 1, mk[i] = 1;
    return changed;
}

static size_t count_zeros(const st_graph *g, int p) {
    const float *w = st_param_data(g, p);
    size_t z = 0;
    for (size_t i = 0; i < g->params[p].numel; i++) z += w[i] == 0.0f;
    return z;
}

static float lerp_target(double init, double fin, double y) {
    return y >= 1.0 ? (float)fin : (float)(init + y * (fin - init));
}

static int gmp_update(st_recipe_run *run, rr_mod *md, st_graph *g, int64_t step) {
    const st_modifier *m = &md->m;
    double y = rr_gmp_y(run, md, step);
    int first = md->n_updates == 0, changed = 0;
    /* block size along the view's c: [1, M] -> M, [M, 1] -> M (c is then dim 0) */
    int rows = m->mask_type == ST_MASK_BLOCK && m->mask_n > 1 ? m->mask_n : 1;
    int bm = m->mask_type != ST_MASK_BLOCK ? 1 : rows > 1 ? rows : m->mask_m;
    rr_target *tg = run->targets + md->t0;
    for (int a = 0; a < md->nt;) {
        int gi = tg[a].group, b = a;
        while (b < md->nt && tg[b].group == gi) b++; /* targets [a, b) form group gi */
        double fin = md->finals[gi];
        if (is_global(m)) {
            if (first && m->init_from_param) { /* the group's overall sparsity */
                size_t z = 0, n = 0;
                for (int i = a; i < b; i++)
                    z += count_zeros(g, tg[i].param), n += g->params[tg[i].param].numel;
                float init = n ? (float)((double)z / (double)n) : 0.0f;
                for (int i = a; i < b; i++) tg[i].init = init;
            }
            float s = lerp_target(tg[a].init, fin, y);
            for (int i = a; i < b; i++) run->scratch[i - a] = tensor_of(g, tg[i].param, rows);
            /* one threshold over the group's weights (or blocks) */
            changed |= st_mask_update(run->scratch, b - a, bm, s);
            for (int i = a; i < b; i++) tg[i].target = s;
        } else {
            for (int i = a; i < b; i++) {
                int p = tg[i].param;
                if (first && m->init_from_param)
                    tg[i].init = (float)((double)count_zeros(g, p) / (double)g->params[p].numel);
                float s = lerp_target(tg[i].init, fin, y);
                st_mask_tensor t = tensor_of(g, p, rows);
                if (m->mask_type == ST_MASK_NM)
                    changed |= s > 0.0f ? st_mask_nm_update(&t, m->mask_n, m->mask_m) : set_ones(g, p);
                else
                    changed |= st_mask_update(&t, 1, bm, s);
                tg[i].target = s;
            }
        }
        for (int i = a; i < b; i++) apply_mask(g, tg[i].param);
        a = b;
    }
    md->last = step;
    md->n_updates++;
    if (step >= md->s_end) md->finished = 1;
    return changed;
}

static int release(st_recipe_run *run, rr_mod *md, st_graph *g) {
    int changed = 0;
    for (int i = 0; i < md->nt; i++) changed |= set_ones(g, run->targets[md->t0 + i].param);
    md->released = 1;
    return changed;
}

static int step_gmp(st_recipe_run *run, rr_mod *md, st_graph *g, int64_t step) {
    int changed = 0;
    if (md->released) return 0;
    if (!md->started) {
        if (step < md->s_start) return 0;
        md->started = 1;
        changed |= gmp_update(run, md, g, step);
    } else if (!md->finished && (step >= md->s_end || step >= md->last + md->gap)) {
        changed |= gmp_update(run, md, g, step);
    }
    if (md->finished && !md->m.leave_enabled) changed |= release(run, md, g);
    return changed;
}

/* ConstantPruningModifier: freeze today's zeros at start, release at end (if any). */
static int step_constant(st_recipe_run *run, rr_mod *md, st_graph *g, int64_t step) {
    int changed = 0;
    if (!md->started && step >= md->s_start) {
        for (int i = 0; i < md->nt; i++) {
            rr_target *t = &run->targets[md->t0 + i];
            const float *w = st_param_data(g, t->param);
            unsigned char *mk = st_param_mask(g, t->param);
            size_t n = g->params[t->param].numel, z = 0;
            for (size_t j = 0; j < n; j++) {
                unsigned char nv = w[j] != 0.0f;
                changed |= mk[j] != nv;
                mk[j] = nv;
                z += !nv;
            }
            t->init = t->target = n ? (float)((double)z / (double)n) : 0.0f;
        }
        md->started = 1;
        md->last = step;
        md->n_updates++;
    }
    if (md->started && !md->released && step >= md->s_end) {
        changed |= release(run, md, g);
        md->finished = 1;
    }
    return changed;
}

int st_recipe_run_step(st_recipe_run *run, st_graph *g, int64_t step, float lr[3], float wd[3]) {
    if (!run || step < 0) return 0;
    rr_lr_at(run, step, lr, wd);
    /* masks need the graph the run was bound to */
    if (!g || !g->finalized || g->n_params != run->n_params || !run->n_targets) return 0;
    int changed = 0;
    for (int i = 0; i < run->n_mods; i++) {
        rr_mod *md = &run->mods[i];
        if (!md->nt) continue;
        if (is_gmp(md->m.kind)) changed |= step_gmp(run, md, g, step);
        else if (md->m.kind == ST_MOD_CONSTANT) changed |= step_constant(run, md, g, step);
    }
    return changed;
}

int st_recipe_run_finish(st_recipe_run *run, st_graph *g) {
    return st_recipe_run_step(run, g, st_recipe_run_total_steps(run), NULL, NULL);
}

/* ---- reports ---- */

int st_recipe_run_num_targets(const st_recipe_run *run) { return run ? run->n_targets : 0; }

st_prune_target_info st_recipe_run_target(const st_recipe_run *run, int i) {
    st_prune_target_info info = {-1, -1, NAN};
    if (!run || i < 0 || i >= run->n_targets) return info;
    info.param = run->targets[i].param;
    info.modifier = run->targets[i].mod;
    info.target = run->targets[i].target;
    return info;
}

st_modifier_status st_recipe_run_modifier_status(const st_recipe_run *run, int modifier) {
    st_modifier_status st = {-1, 0, 0, 0, 0};
    if (!run || modifier < 0 || modifier >= run->n_mods) return st;
    const rr_mod *md = &run->mods[modifier];
    st.last_update_step = md->last;
    st.n_updates = md->n_updates;
    st.started = md->started, st.finished = md->finished, st.released = md->released;
    return st;
}

/* ---- checkpoint state ----
 * [magic, version, n_mods, n_targets, steps_per_epoch]
 * per modifier: kind, last (hi, lo), n_updates (hi, lo), started, finished, released
 * per target: param, init, target
 * Step counts are split in two floats (2^20 * hi + lo) so they stay exact. */
#define RR_MAGIC 21074.0f
#define RR_VERSION 1.0f
#define RR_HDR 5
#define RR_PER_MOD 8
#define RR_PER_TGT 3
#define RR_SPLIT 1048576.0

size_t st_recipe_run_state_size(const st_recipe_run *run) {
    return run ? RR_HDR + (size_t)RR_PER_MOD * run->n_mods + (size_t)RR_PER_TGT * run->n_targets
               : 0;
}

static void put64(float *o, int64_t v) {
    double hi = floor((double)v / RR_SPLIT);
    o[0] = (float)hi;
    o[1] = (float)((double)v - hi * RR_SPLIT);
}
static int64_t get64(const float *o) { return (int64_t)((double)o[0] * RR_SPLIT + (double)o[1]); }

void st_recipe_run_state_get(const st_recipe_run *run, float *out) {
    if (!run) return;
    out[0] = RR_MAGIC, out[1] = RR_VERSION;
    out[2] = (float)run->n_mods, out[3] = (float)run->n_targets, out[4] = (float)run->spe;
    float *o = out + RR_HDR;
    for (int i = 0; i < run->n_mods; i++, o += RR_PER_MOD) {
        const rr_mod *md = &run->mods[i];
        o[0] = (float)md->m.kind;
        put64(o + 1, md->last);
        put64(o + 3, md->n_updates);
        o[5] = (float)md->started, o[6] = (float)md->finished, o[7] = (float)md->released;
    }
    for (int i = 0; i < run->n_targets; i++, o += RR_PER_TGT) {
        o[0] = (float)run->targets[i].param;
        o[1] = run->targets[i].init;
        o[2] = run->targets[i].target;
    }
}

st_status st_recipe_run_state_set(st_recipe_run *run, const float *in, size_t n, st_error *err) {
    const char *what = "the checkpoint's recipe state does not match this recipe and model";
    if (!run) return st_errorf(err, ST_ERR_INTERNAL, "st_recipe_run_state_set: no run");
    if (n < RR_HDR || in[0] != RR_MAGIC || in[1] != RR_VERSION)
        return st_errorf(err, ST_ERR_INPUT, "%s (unknown state format)", what);
    if (n != st_recipe_run_state_size(run) || in[2] != (float)run->n_mods ||
        in[3] != (float)run->n_targets)
        return st_errorf(err, ST_ERR_INPUT, "%s (%g modifiers and %g pruned params saved, %d and "
                         "%d now)", what, in[2], in[3], run->n_mods, run->n_targets);
    const float *o = in + RR_HDR;
    for (int i = 0; i < run->n_mods; i++, o += RR_PER_MOD)
        if (o[0] != (float)run->mods[i].m.kind)
            return st_errorf(err, ST_ERR_INPUT, "%s (modifier %d was a %s)", what, i,
                             rr_kind_name((st_mod_kind)(int)o[0]));
    for (int i = 0; i < run->n_targets; i++, o += RR_PER_TGT)
        if (o[0] != (float)run->targets[i].param)
            return st_errorf(err, ST_ERR_INPUT, "%s (pruned parameters differ)", what);
    /* A different batch size changes steps per epoch: the last update keeps its epoch. */
    double scale = in[4] > 0 ? (double)run->spe / (double)in[4] : 1.0;
    o = in + RR_HDR;
    for (int i = 0; i < run->n_mods; i++, o += RR_PER_MOD) {
        rr_mod *md = &run->mods[i];
        int64_t last = get64(o + 1);
        md->last = last < 0 ? -1 : (int64_t)llround((double)last * scale);
        md->n_updates = get64(o + 3);
        md->started = o[5] != 0, md->finished = o[6] != 0, md->released = o[7] != 0;
    }
    for (int i = 0; i < run->n_targets; i++, o += RR_PER_TGT) {
        run->targets[i].init = o[1];
        run->targets[i].target = o[2];
    }
    return ST_OK;
}
