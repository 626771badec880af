/* `recipe-check` plan: what a recipe will do, before training.
 *
 * 1. every modifier with its resolved schedule (and, with a graph, the params each
 *    pruning group matched: name, shape, numel);
 * 2. a table, one row per event (a modifier's start or end, a GMP update, each epoch
 *    start, and the finish step after the last one): LR (and weight decay, if a recipe
 *    sets it) per group and the target sparsity per pruning group. Long tables keep their
 *    first 60 rows and then every Nth, always with the last. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rr_internal.h"

static void print_groups(FILE *f, int groups) {
    if (!groups) groups = 7;
    const char *sep = "";
    fprintf(f, " groups ");
    for (int g = 0; g < ST_NUM_PG; g++)
        if (groups & (1 << g)) fprintf(f, "%s%d", sep, g), sep = ",";
}

static void print_end(FILE *f, const st_modifier *m, double end) {
    if (isinf(end)) fprintf(f, "end");
    else fprintf(f, "%g%s", end, m->end_epoch < 0 ? " (run end)" : "");
}

static const char *interp_name(st_interp i) {
    return i == ST_INTERP_LINEAR ? "linear" : i == ST_INTERP_CUBIC ? "cubic" : "inverse_cubic";
}

static void print_mask_type(FILE *f, const st_modifier *m) {
    if (m->mask_type == ST_MASK_BLOCK && m->mask_n > 1)
        fprintf(f, "block [%d, 1] (output channels)", m->mask_n);
    else if (m->mask_type == ST_MASK_BLOCK) fprintf(f, "block [1, %d]", m->mask_m);
    else if (m->mask_type == ST_MASK_NM) fprintf(f, "%d:%d (sparsity fixed at %g)", m->mask_n,
                                                 m->mask_m, 1.0 - (double)m->mask_n / m->mask_m);
    else fprintf(f, "unstructured");
}

static void print_modifier(FILE *f, const st_recipe *r, const st_recipe_run *run,
                           const st_graph *g, int i) {
    const rr_mod *md = &run->mods[i];
    const st_modifier *m = &r->mods[i];
    fprintf(f, "  [%d] line %d %s:", i, m->line, m->tag[0] ? m->tag : rr_kind_name(m->kind));
    switch (m->kind) {
    case ST_MOD_EPOCH_RANGE:
        fprintf(f, " epochs %g -> ", md->start);
        print_end(f, m, rr_dec(m->end_epoch));
        break;
    case ST_MOD_GMP:
    case ST_MOD_MAGNITUDE:
    case ST_MOD_GLOBAL_MAGNITUDE:
        fprintf(f, " %s", interp_name(m->inter_func));
        if (m->init_from_param) fprintf(f, " from each tensor's sparsity");
        else fprintf(f, " %g", m->init_sparsity);
        fprintf(f, " -> final, epochs %g -> ", md->start);
        print_end(f, m, md->end);
        if (md->gap == 1) fprintf(f, ", update every step");
        else fprintf(f, ", update every %g epochs (%lld steps)", rr_dec(m->update_frequency),
                     (long long)md->gap);
        fprintf(f, ", mask ");
        print_mask_type(f, m);
        if (m->kind == ST_MOD_GLOBAL_MAGNITUDE || m->global_sparsity) fprintf(f, ", global");
        if (!m->leave_enabled) fprintf(f, ", released at the end");
        break;
    case ST_MOD_CONSTANT:
        fprintf(f, " holds today's zeros from epoch %g to ", md->start);
        print_end(f, m, md->end);
        break;
    case ST_MOD_SET_LR:
        fprintf(f, " lr %g from epoch %g,", rr_dec(m->learning_rate), md->start);
        print_groups(f, m->param_groups);
        break;
    case ST_MOD_SET_WD:
        fprintf(f, " weight_decay %g from epoch %g,", rr_dec(m->weight_decay), md->start);
        print_groups(f, m->param_groups);
        break;
    case ST_MOD_LR_FUNCTION: {
        static const char *fn[] = {"linear", "cosine", "cyclic_linear"};
        fprintf(f, " %s %g -> %g, epochs %g -> ", fn[m->lr_func % 3], rr_dec(m->init_lr),
                rr_dec(m->final_lr), md->start);
        print_end(f, m, md->end);
        if (m->lr_func == ST_LRF_CYCLIC_LINEAR) fprintf(f, ", cycle %g", rr_dec(m->cycle_epochs));
        fprintf(f, ",");
        print_groups(f, m->param_groups);
        break;
    }
    case ST_MOD_LR: {
        static const char *cl[] = {"StepLR", "MultiStepLR", "ExponentialLR",
                                   "CosineAnnealingWarmRestarts"};
        fprintf(f, " %s init_lr %g gamma %g", cl[m->lr_class % 4], rr_dec(m->init_lr),
                rr_dec(m->gamma));
        if (m->lr_class == ST_LRC_STEP) fprintf(f, " step_size %g", rr_dec(m->step_size));
        if (m->lr_class == ST_LRC_MULTISTEP) {
            fprintf(f, " milestones");
            for (int k = 0; k < m->n_milestones && k < ST_MAX_MILESTONES; k++)
                fprintf(f, "%s%g", k ? "," : " ", rr_dec(m->milestones[k]));
        }
        if (m->lr_class == ST_LRC_COSINE_WARM)
            fprintf(f, " T_0 %g T_mult %g eta_min %g", rr_dec(m->t_0), rr_dec(m->t_mult),
                    rr_dec(m->eta_min));
        fprintf(f, ", epochs %g -> ", md->start);
        print_end(f, m, md->end);
        fprintf(f, ",");
        print_groups(f, m->param_groups);
        break;
    }
    default: fprintf(f, " recognised, not run"); break;
    }
    fprintf(f, "\n");
    if (!rr_is_pruning(m->kind)) return;
    for (int gi = 0; gi < m->n_groups; gi++) {
        if (m->kind == ST_MOD_CONSTANT) fprintf(f, "      params:");
        else fprintf(f, "      final_sparsity %g:", m->groups[gi].final_sparsity);
        if (!g || run->n_params != g->n_params) { /* no graph: the selectors as written */
            for (int s = 0; s < m->groups[gi].n_params; s++)
                fprintf(f, "%s%s", s ? ", " : " ", m->groups[gi].params[s]);
            fprintf(f, "\n");
            continue;
        }
        size_t total = 0;
        int count = 0;
        for (int t = md->t0; t < md->t0 + md->nt; t++)
            if (run->targets[t].group == gi) count++, total += g->params[run->targets[t].param].numel;
        fprintf(f, " %d params, %zu weights\n", count, total);
        for (int t = md->t0; t < md->t0 + md->nt; t++) {
            if (run->targets[t].group != gi) continue;
            const st_param *p = &g->params[run->targets[t].param];
            fprintf(f, "        %-40s [", p->name);
            for (int d = 0; d < p->ndim; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)p->shape[d]);
            fprintf(f, "] %zu\n", p->numel);
        }
    }
}

typedef struct points {
    int64_t *v;
    size_t n, cap;
} points;

static void add_point(points *p, int64_t s, int64_t total) {
    if (s < 0 || s > total) return;
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 256;
        int64_t *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) return;
        p->v = nv, p->cap = nc;
    }
    p->v[p->n++] = s;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Target of a pruning group after the updates up to `step` ("-" before the first). */
static void cell_target(FILE *f, const st_recipe_run *run, const rr_mod *md, int gi,
                        int64_t step) {
    int64_t u = rr_gmp_last_update(md, step);
    if (md->m.kind == ST_MOD_CONSTANT) {
        fprintf(f, " %9s", step < md->s_start ? "-" : step >= md->s_end ? "off" : "hold");
        return;
    }
    if (u < 0) {
        fprintf(f, " %9s", "-");
        return;
    }
    if (!md->m.leave_enabled && step >= md->s_end) {
        fprintf(f, " %9s", "off");
        return;
    }
    double y = rr_gmp_y(run, md, u);
    if (md->m.init_from_param) fprintf(f, " %8.4fy", y); /* init is each tensor's own */
    else fprintf(f, " %9.4f", y >= 1.0 ? md->finals[gi]
                                       : md->m.init_sparsity + y * (md->finals[gi] - md->m.init_sparsity));
}

static void print_table(FILE *f, const st_recipe_run *run) {
    int64_t total = st_recipe_run_total_steps(run);
    points pts = {0};
    add_point(&pts, 0, total);
    add_point(&pts, total, total);
    int any_wd = 0, n_cols = 0, any_from_param = 0;
    for (int e = 0; e <= (int)ceil(run->run_end) && e <= 5000; e++)
        add_point(&pts, rr_first_step(e, run->spe), total);
    for (int i = 0; i < run->n_mods; i++) {
        const rr_mod *md = &run->mods[i];
        if (md->m.kind == ST_MOD_EPOCH_RANGE || md->m.kind == ST_MOD_NOT_RUN) continue;
        any_wd |= md->m.kind == ST_MOD_SET_WD;
        add_point(&pts, md->s_start, total);
        if (md->s_end != RR_NEVER) add_point(&pts, md->s_end, total);
        if (!rr_is_pruning(md->m.kind)) continue;
        n_cols += md->m.n_groups;
        any_from_param |= md->m.init_from_param && md->m.kind != ST_MOD_CONSTANT;
        if (md->m.kind == ST_MOD_CONSTANT || md->s_end == RR_NEVER) continue;
        /* the update steps; at most ~2000 of them per modifier */
        int64_t span = md->s_end - md->s_start, stride = md->gap;
        if (span / stride > 2000) stride = (span / 2000 + md->gap - 1) / md->gap * md->gap;
        for (int64_t s = md->s_start; s < md->s_end; s += stride) add_point(&pts, s, total);
    }
    qsort(pts.v, pts.n, sizeof *pts.v, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < pts.n; i++)
        if (!u || pts.v[i] != pts.v[u - 1]) pts.v[u++] = pts.v[i];
    pts.n = u;

    fprintf(f, "Schedule (step = optimizer step before which the values apply; step %lld is the "
            "finish after the last):\n", (long long)total);
    fprintf(f, "  %9s %9s %10s %10s %10s", "step", "epoch", "lr[0]", "lr[1]", "lr[2]");
    if (any_wd) fprintf(f, " %10s %10s %10s", "wd[0]", "wd[1]", "wd[2]");
    for (int i = 0; i < run->n_mods; i++)
        if (rr_is_pruning(run->mods[i].m.kind))
            for (int gi = 0; gi < run->mods[i].m.n_groups; gi++) {
                char h[24];
                snprintf(h, sizeof h, "[%d].%d", i, gi);
                fprintf(f, " %9s", h);
            }
    fprintf(f, "\n");
    size_t keep_first = 60, every = 1;
    if (pts.n > 80) every = (pts.n - keep_first + 19) / 20;
    for (size_t i = 0; i < pts.n; i++) {
        if (i >= keep_first && i + 1 < pts.n && (i - keep_first) % every) continue;
        int64_t s = pts.v[i];
        float lr[3] = {NAN, NAN, NAN}, wd[3] = {NAN, NAN, NAN};
        rr_lr_at(run, s, lr, wd);
        fprintf(f, "  %9lld %9.4f", (long long)s, (double)s / run->spe);
        for (int g = 0; g < 3; g++)
            isnan(lr[g]) ? fprintf(f, " %10s", "-") : fprintf(f, " %10.6g", lr[g]);
        if (any_wd)
            for (int g = 0; g < 3; g++)
                isnan(wd[g]) ? fprintf(f, " %10s", "-") : fprintf(f, " %10.6g", wd[g]);
        for (int m = 0; m < run->n_mods; m++)
            if (rr_is_pruning(run->mods[m].m.kind))
                for (int gi = 0; gi < run->mods[m].m.n_groups; gi++)
                    cell_target(f, run, &run->mods[m], gi, s);
        fprintf(f, "\n");
    }
    if (pts.n > 80)
        fprintf(f, "  (%zu rows: the first %zu, then every %zu-th, and the last)\n", pts.n,
                keep_first, every);
    fprintf(f, "  lr '-': not set by the recipe (the trainer's value)");
    if (n_cols) fprintf(f, "; [m].g: target sparsity of modifier m, group g (hold/off: "
                        "constant mask held/released)");
    if (any_from_param) fprintf(f, "; 'y': init from each tensor's sparsity, target = init + "
                                "y (final - init)");
    fprintf(f, "\n");
    free(pts.v);
}

void st_recipe_print_plan(const st_recipe *r, const st_recipe_run *run, const st_graph *g,
                          int steps_per_epoch, FILE *f) {
    if (!r || !f) return;
    st_recipe_run *own = NULL;
    if (!run) {
        st_error err = {0};
        int spe = steps_per_epoch > 0 ? steps_per_epoch : 100;
        if (st_recipe_bind(r, g, spe, &own, &err) != ST_OK) {
            fprintf(f, "error: %s\n", err.msg);
            /* still show the schedule, from the recipe alone */
            if (!g || st_recipe_bind(r, NULL, spe, &own, &err) != ST_OK) return;
            g = NULL;
        }
        run = own;
    }
    fprintf(f, "Recipe %s: %d modifiers; the run lasts %g epochs = %lld steps at %d steps per "
            "epoch\n", r->path ? r->path : "(in memory)", r->n_mods, run->run_end,
            (long long)st_recipe_run_total_steps(run), run->spe);
    for (int i = 0; i < r->n_mods && i < run->n_mods; i++) print_modifier(f, r, run, g, i);
    print_table(f, run);
    st_recipe_run_free(own);
}
