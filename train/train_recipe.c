#include "st_train_recipe.h"

#include <stdlib.h>
#include <string.h>

st_status st_train_recipe_open(const char *path, const char *args, const char *stored_text,
                               const char *stored_args, int strict, FILE *log, st_recipe *out,
                               int *loaded, st_error *err) {
    *loaded = 0;
    memset(out, 0, sizeof *out);
    st_status rc = ST_OK;
    if (path) rc = st_recipe_load(path, args, strict, log, out, err);
    else if (stored_text)
        rc = st_recipe_parse(stored_text, strlen(stored_text), "recipe stored in the checkpoint",
                             stored_args, strict, log, out, err);
    else return ST_OK;
    if (rc == ST_OK) *loaded = 1;
    return rc;
}

void st_train_recipe_sparsity_line(const st_recipe *r, const st_recipe_run *run,
                                   const st_graph *g, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "sparsity %.4f", st_graph_prunable_sparsity(g));
    int n = run ? st_recipe_run_num_targets(run) : 0;
    /* one entry per pruning modifier: mean target and achieved sparsity over its params */
    for (int m = 0; m < r->n_mods && k < cap; m++) {
        double zeros = 0, total = 0, target = 0;
        int count = 0;
        for (int i = 0; i < n; i++) {
            st_prune_target_info t = st_recipe_run_target(run, i);
            if (t.modifier != m) continue;
            size_t numel = g->params[t.param].numel;
            zeros += st_param_sparsity(g, t.param) * (double)numel;
            total += (double)numel;
            target += t.target * (double)numel;
            count++;
        }
        if (!count) continue;
        k += (size_t)snprintf(buf + k, cap - k, "%s %s#%d %.3f/%.3f", k ? ";" : "", r->mods[m].tag, m,
                              target / total, zeros / total);
    }
}
