/* `sparsetrain recipe-check` without a model: every modifier with every resolved field,
 * so a user sees exactly what the variables, aliases, eval() and overrides came to. */
#include <stdio.h>

#include "st_recipe.h"

static const char *interp_name(st_interp i) {
    return i == ST_INTERP_LINEAR ? "linear" : i == ST_INTERP_CUBIC ? "cubic" : "inverse_cubic";
}

static const char *lr_func_name(st_lr_func f) {
    return f == ST_LRF_LINEAR ? "linear" : f == ST_LRF_COSINE ? "cosine" : "cyclic_linear";
}

static const char *lr_class_name(st_lr_class c) {
    static const char *const n[] = {"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingWarmRestarts"};
    return (unsigned)c < 4 ? n[c] : "?";
}

static void print_groups_mask(FILE *f, int mask) {
    fprintf(f, " param_groups=[");
    for (int g = 0, first = 1; g < 3; g++)
        if (mask & (1 << g)) fprintf(f, "%s%d", first ? "" : ", ", g), first = 0;
    fprintf(f, "]");
}

static void print_mask(FILE *f, const st_modifier *m) {
    if (m->mask_type == ST_MASK_UNSTRUCTURED) fprintf(f, " mask_type=unstructured");
    /* [1, M] or [M, 1], as written in a recipe */
    else if (m->mask_type == ST_MASK_BLOCK) fprintf(f, " mask_type=[%d, %d]", m->mask_n, m->mask_m);
    else fprintf(f, " mask_type=%d:%d", m->mask_n, m->mask_m);
}

static void print_params(FILE *f, const st_modifier *m, int with_sparsity) {
    for (int g = 0; g < m->n_groups; g++) {
        const st_sparsity_group *sg = &m->groups[g];
        fprintf(f, "    ");
        if (with_sparsity) fprintf(f, "final_sparsity=%g ", sg->final_sparsity);
        fprintf(f, "params (%d):", sg->n_params);
        for (int i = 0; i < sg->n_params; i++) fprintf(f, " %s", sg->params[i]);
        fprintf(f, "\n");
    }
}

void st_recipe_print(const st_recipe *r, FILE *f) {
    fprintf(f, "recipe %s: %d modifiers", r->path ? r->path : "(recipe)", r->n_mods);
    if (r->n_not_run) fprintf(f, " (%d recognised but not run)", r->n_not_run);
    fprintf(f, ", %g epochs\n", r->end_epoch);
    for (int i = 0; i < r->n_mods; i++) {
        const st_modifier *m = &r->mods[i];
        fprintf(f, "#%d %s (line %d):", i + 1, m->tag, m->line);
        fprintf(f, " start_epoch=%g end_epoch=%g", m->start_epoch, m->end_epoch);
        switch (m->kind) {
        case ST_MOD_GMP:
        case ST_MOD_MAGNITUDE:
        case ST_MOD_GLOBAL_MAGNITUDE:
            fprintf(f, " update_frequency=%g", m->update_frequency);
            if (m->init_from_param) fprintf(f, " init_sparsity=__FROM_PARAM__");
            else fprintf(f, " init_sparsity=%g", m->init_sparsity);
            fprintf(f, " inter_func=%s", interp_name(m->inter_func));
            print_mask(f, m);
            fprintf(f, " leave_enabled=%s global_sparsity=%s\n", m->leave_enabled ? "true" : "false",
                    m->global_sparsity ? "true" : "false");
            print_params(f, m, 1);
            break;
        case ST_MOD_CONSTANT:
            fprintf(f, " update_frequency=%g\n", m->update_frequency);
            print_params(f, m, 0);
            break;
        case ST_MOD_SET_LR:
            fprintf(f, " learning_rate=%g", m->learning_rate);
            print_groups_mask(f, m->param_groups);
            fprintf(f, "\n");
            break;
        case ST_MOD_LR_FUNCTION:
            fprintf(f, " lr_func=%s init_lr=%g final_lr=%g cycle_epochs=%g update_frequency=%g",
                    lr_func_name(m->lr_func), m->init_lr, m->final_lr, m->cycle_epochs, m->update_frequency);
            print_groups_mask(f, m->param_groups);
            fprintf(f, "\n");
            break;
        case ST_MOD_LR:
            fprintf(f, " lr_class=%s init_lr=%g update_frequency=%g", lr_class_name(m->lr_class), m->init_lr,
                    m->update_frequency);
            if (m->lr_class == ST_LRC_STEP) fprintf(f, " step_size=%g gamma=%g", m->step_size, m->gamma);
            else if (m->lr_class == ST_LRC_EXPONENTIAL) fprintf(f, " gamma=%g", m->gamma);
            else if (m->lr_class == ST_LRC_COSINE_WARM)
                fprintf(f, " T_0=%g T_mult=%g eta_min=%g", m->t_0, m->t_mult, m->eta_min);
            else {
                fprintf(f, " milestones=[");
                for (int k = 0; k < m->n_milestones; k++) fprintf(f, "%s%g", k ? ", " : "", m->milestones[k]);
                fprintf(f, "] gamma=%g", m->gamma);
            }
            fprintf(f, "\n");
            break;
        case ST_MOD_SET_WD:
            fprintf(f, " weight_decay=%g", m->weight_decay);
            print_groups_mask(f, m->param_groups);
            fprintf(f, "\n");
            break;
        case ST_MOD_NOT_RUN:
            fprintf(f, " (recognised, not run)\n");
            break;
        default:
            fprintf(f, "\n");
            break;
        }
    }
}
