/* Time and value schedules of a recipe: when modifiers start, end and update (in steps),
 * GMP interpolation, learning-rate functions and PyTorch-style schedulers.
 *
 * Learning rate and weight decay are a pure function of the step: at every step each
 * active LR modifier "writes" its value for its groups, in recipe order, and a written
 * value persists until the next write. rr_lr_at() finds, per group, the write with the
 * greatest (step, recipe index), so the modifier listed later wins when two write at the
 * same step, and a resumed run needs no LR state at all. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "rr_internal.h"

/* Relative tolerance for comparing epochs: far below one step for any realistic
 * steps_per_epoch, far above double rounding of a few operations. */
#define RR_TOL 1e-9

double rr_dec(float f) {
    /* The float nearest to a short decimal (what the recipe said) back to that decimal:
     * round to 7 significant digits and keep it when it maps to the same float. Done
     * numerically so it does not depend on the C locale (strtod would). */
    if (f == 0.0f || !isfinite(f)) return (double)f;
    double d = (double)f;
    int e = (int)floor(log10(fabs(d)));
    if (e > 6 || e < -30) return d;
    double scale = pow(10.0, 6 - e);
    double r = nearbyint(d * scale) / scale;
    return (float)r == f ? r : d;
}

static double tol_of(double v) { return RR_TOL * (fabs(v) > 1.0 ? fabs(v) : 1.0); }
/* For values that are (products of) recipe floats: a float is only known to FLT_EPSILON
 * relative, so eval(1/3) epochs with 3 steps per epoch is step 1, not 2. */
static double ftol_of(double v) { return FLT_EPSILON * (fabs(v) > 1.0 ? fabs(v) : 1.0); }

int64_t rr_first_step(double epoch, int spe) {
    if (!(epoch > 0.0)) return 0;
    if (isinf(epoch)) return RR_NEVER;
    double v = epoch * (double)spe;
    if (v > 9e18) return RR_NEVER;
    return (int64_t)ceil(v - ftol_of(v));
}

/* floor() and fmod() that treat a value within tolerance below an integer multiple as
 * reaching it (epoch 1.0 with 0.1-epoch cycles must start the 10th cycle). */
static double snap_floor(double q) { return floor(q + tol_of(q)); }
static double snap_fmod(double a, double b) {
    double r = fmod(a, b);
    if (r < 0) r += b;
    if (b - r <= tol_of(a)) r = 0.0;
    return r;
}

int rr_is_pruning(st_mod_kind k) {
    return k == ST_MOD_GMP || k == ST_MOD_MAGNITUDE || k == ST_MOD_GLOBAL_MAGNITUDE ||
           k == ST_MOD_CONSTANT;
}

int rr_is_lr(st_mod_kind k) {
    return k == ST_MOD_SET_LR || k == ST_MOD_LR_FUNCTION || k == ST_MOD_LR;
}

double rr_interp(st_interp f, double x) {
    if (!(x > 0.0)) x = 0.0; /* also NaN */
    if (x > 1.0) x = 1.0;
    switch (f) {
    case ST_INTERP_LINEAR: return x;
    case ST_INTERP_CUBIC: return 1.0 - (1.0 - x) * (1.0 - x) * (1.0 - x);
    case ST_INTERP_INVERSE_CUBIC: return 1.0 - cbrt(1.0 - x);
    }
    return x;
}

static int64_t gap_steps(float freq, int spe) {
    if (!(freq > 0.0f)) return 1; /* -1 (or 0): every step */
    double v = rr_dec(freq) * (double)spe;
    if (v > 9e18) return RR_NEVER;
    int64_t g = (int64_t)ceil(v - ftol_of(v));
    return g < 1 ? 1 : g;
}

void rr_resolve_times(st_recipe_run *run) {
    for (int i = 0; i < run->n_mods; i++) {
        rr_mod *md = &run->mods[i];
        const st_modifier *m = &md->m;
        md->start = m->start_epoch < 0 ? 0.0 : rr_dec(m->start_epoch);
        double end_given = m->end_epoch < 0 ? -1.0 : rr_dec(m->end_epoch);
        switch (m->kind) {
        case ST_MOD_GMP:
        case ST_MOD_MAGNITUDE:
        case ST_MOD_GLOBAL_MAGNITUDE:
        case ST_MOD_LR_FUNCTION:
            /* the interpolation needs a finite end: -1 is the run's end */
            md->end = end_given < 0 ? run->run_end : end_given;
            break;
        case ST_MOD_CONSTANT:
        case ST_MOD_LR:
            /* -1: holds (constant mask, last scheduler value) for ever */
            md->end = end_given < 0 ? INFINITY : end_given;
            break;
        default:
            md->end = INFINITY; /* Set* modifiers act once; the rest are not run */
            break;
        }
        if (md->end < md->start) md->end = md->start;
        md->s_start = rr_first_step(md->start, run->spe);
        md->s_end = rr_first_step(md->end, run->spe);
        md->gap = (m->kind == ST_MOD_LR_FUNCTION) ? 1 : gap_steps(m->update_frequency, run->spe);
    }
}

double rr_gmp_y(const st_recipe_run *run, const rr_mod *md, int64_t step) {
    if (step >= md->s_end) return 1.0;
    double span = md->end - md->start;
    if (!(span > 0.0)) return 1.0;
    double e = (double)step / (double)run->spe;
    return rr_interp(md->m.inter_func, (e - md->start) / span);
}

int64_t rr_gmp_last_update(const rr_mod *md, int64_t step) {
    if (step < md->s_start) return -1;
    if (step >= md->s_end) return md->s_end;
    return md->s_start + (step - md->s_start) / md->gap * md->gap;
}

/* ---- learning rate ---- */

static double lr_function(const st_modifier *m, double start, double end, double e) {
    double span = end - start;
    double x = span > 0.0 && isfinite(span) ? (e - start) / span : 0.0;
    double init = rr_dec(m->init_lr), fin = rr_dec(m->final_lr);
    switch (m->lr_func) {
    case ST_LRF_LINEAR: return init + x * (fin - init);
    case ST_LRF_COSINE: return fin + (init - fin) * (1.0 + cos(M_PI * x)) / 2.0;
    case ST_LRF_CYCLIC_LINEAR: {
        double cyc = m->cycle_epochs > 0 ? rr_dec(m->cycle_epochs) : span;
        if (!(cyc > 0.0) || !isfinite(cyc)) return init;
        double xc = snap_fmod(e - start, cyc) / cyc;
        return init + xc * (fin - init);
    }
    }
    return init;
}

static double lr_scheduler(const st_modifier *m, double start, double e) {
    double init = rr_dec(m->init_lr), gamma = rr_dec(m->gamma);
    double d = e - start;
    if (d < 0) d = 0;
    switch (m->lr_class) {
    case ST_LRC_STEP: {
        double ss = rr_dec(m->step_size);
        return ss > 0 ? init * pow(gamma, snap_floor(d / ss)) : init;
    }
    case ST_LRC_MULTISTEP: {
        /* milestones are absolute epochs (SparseML converts them to steps after start) */
        int n = 0;
        for (int i = 0; i < m->n_milestones && i < ST_MAX_MILESTONES; i++) {
            double ms = rr_dec(m->milestones[i]);
            n += e >= ms - ftol_of(ms);
        }
        return init * pow(gamma, n);
    }
    case ST_LRC_EXPONENTIAL: return init * pow(gamma, snap_floor(d));
    case ST_LRC_COSINE_WARM: {
        double t0 = rr_dec(m->t_0), tm = m->t_mult > 0 ? rr_dec(m->t_mult) : 1.0;
        double eta = rr_dec(m->eta_min);
        if (!(t0 > 0)) return init;
        double tcur, ti;
        if (tm <= 1.0 + 1e-12) {
            tcur = snap_fmod(d, t0);
            ti = t0;
        } else {
            /* torch: n = int(log(d / T_0 * (T_mult - 1) + 1, T_mult)) */
            double n = snap_floor(log(d / t0 * (tm - 1.0) + 1.0) / log(tm));
            ti = t0 * pow(tm, n);
            tcur = d - t0 * (pow(tm, n) - 1.0) / (tm - 1.0);
            if (tcur < 0) tcur = 0;
            if (ti - tcur <= tol_of(d)) tcur = 0; /* rounding right at a restart */
        }
        return eta + (init - eta) * (1.0 + cos(M_PI * tcur / ti)) / 2.0;
    }
    }
    return init;
}

/* The last write of an LR-kind modifier at or before `step`: its step (or -1) and value. */
static int64_t last_write(const st_recipe_run *run, const rr_mod *md, int64_t step, double *val) {
    const st_modifier *m = &md->m;
    if (step < md->s_start) return -1;
    switch (m->kind) {
    case ST_MOD_SET_LR: *val = rr_dec(m->learning_rate); return md->s_start;
    case ST_MOD_SET_WD: *val = rr_dec(m->weight_decay); return md->s_start;
    case ST_MOD_LR_FUNCTION:
    case ST_MOD_LR: {
        if (md->s_start >= md->s_end) return -1; /* empty window */
        int64_t at = step < md->s_end ? step : md->s_end - 1;
        at = md->s_start + (at - md->s_start) / md->gap * md->gap;
        double e = (double)at / (double)run->spe;
        *val = m->kind == ST_MOD_LR ? lr_scheduler(m, md->start, e)
                                    : lr_function(m, md->start, md->end, e);
        return at;
    }
    default: return -1;
    }
}

void rr_lr_at(const st_recipe_run *run, int64_t step, float *lr, float *wd) {
    for (int what = 0; what < 2; what++) {
        float *out = what == 0 ? lr : wd;
        if (!out) continue;
        for (int g = 0; g < ST_NUM_PG; g++) {
            int64_t best = -1;
            double bv = 0;
            for (int i = 0; i < run->n_mods; i++) {
                const rr_mod *md = &run->mods[i];
                int is_mine = what == 0 ? rr_is_lr(md->m.kind) : md->m.kind == ST_MOD_SET_WD;
                int groups = md->m.param_groups ? md->m.param_groups : 7;
                if (!is_mine || !(groups & (1 << g))) continue;
                double v;
                int64_t at = last_write(run, md, step, &v);
                if (at >= 0 && at >= best) { /* >=: the later modifier wins a tie */
                    best = at;
                    bv = v;
                }
            }
            if (best >= 0) out[g] = (float)bv;
        }
    }
}

/* ---- closed forms on a modifier alone (no run) ---- */

static double mod_start(const st_modifier *m) {
    return m->start_epoch < 0 ? 0.0 : rr_dec(m->start_epoch);
}

float st_gmp_target(const st_modifier *m, int group, float epoch) {
    if (!m || group < 0 || group >= m->n_groups || !m->groups) return NAN;
    double s = mod_start(m);
    double e = m->end_epoch < 0 ? INFINITY : rr_dec(m->end_epoch);
    double ep = rr_dec(epoch), x;
    if (isinf(e)) x = 0.0; /* "until the run's end" is unknown without a run */
    else if (e > s) x = (ep - s) / (e - s);
    else x = ep >= s - ftol_of(s) ? 1.0 : 0.0;
    double init = m->init_sparsity, fin = m->groups[group].final_sparsity;
    double y = rr_interp(m->inter_func, x);
    if (y >= 1.0) return (float)fin;
    return (float)(init + y * (fin - init));
}

float st_modifier_lr(const st_modifier *m, float epoch) {
    if (!m || !rr_is_lr(m->kind)) return NAN;
    double s = mod_start(m), ep = rr_dec(epoch);
    if (ep < s - ftol_of(s)) return NAN;
    if (m->kind == ST_MOD_SET_LR) return m->learning_rate;
    double e = m->end_epoch < 0 ? INFINITY : rr_dec(m->end_epoch);
    if (ep >= e - ftol_of(e)) return NAN;
    if (m->kind == ST_MOD_LR) return (float)lr_scheduler(m, s, ep);
    return (float)lr_function(m, s, e, ep);
}
