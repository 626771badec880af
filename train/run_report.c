/* report.html of a finished run: per-epoch charts from the history, the per-layer table
 * (shape, sparsity, kernel, share of the last epoch's time) and the task's images. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_report.h"
#include "trainer_internal.h"

/* Columns with the same unit share a chart. */
static const char *unit_of(const char *col) {
    size_t n = strlen(col);
    if (n >= 4 && !strcmp(col + n - 4, "loss")) return "loss";
    if (!strcmp(col, "lr")) return "learning rate";
    if (!strcmp(col, "sparsity")) return "sparsity";
    if (!strcmp(col, "images_per_sec")) return "images/s";
    if (n >= 7 && !strcmp(col + n - 7, "seconds")) return "seconds";
    return "metric";
}

static void layer_rows(const st_run *r, st_report_layer *rows, char (*shapes)[48], int *n) {
    const st_graph *g = r->g;
    double total = 0;
    if (r->ex.node_seconds)
        for (int i = 0; i < 2 * g->n_nodes; i++) total += r->ex.node_seconds[i];
    *n = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const st_node *nd = &g->nodes[i];
        if ((nd->op != ST_OP_CONV2D && nd->op != ST_OP_LINEAR) || nd->params[0] < 0) continue;
        const st_param *p = &g->params[nd->params[0]];
        int k = 0;
        for (int d = 0; d < p->ndim; d++)
            k += snprintf(shapes[*n] + k, 48 - k, "%s%lld", d ? "x" : "", (long long)p->shape[d]);
        rows[*n] = (st_report_layer){
            .name = p->name, .shape = shapes[*n], .sparsity = st_param_sparsity(g, nd->params[0]),
            .sparse_kernel = r->ex.sparse && r->ex.sparse[i].active,
            .time_share = total > 0 ? (r->ex.node_seconds[2 * i] + r->ex.node_seconds[2 * i + 1]) / total : -1};
        (*n)++;
    }
}

st_status st_run_write_report(st_run *r, const st_report_image *images, int n_images,
                              const st_report_kv *extra, int n_extra, st_error *err) {
    const st_graph *g = r->g;
    int rows = r->st.history_rows, cols = r->n_cols;
    double *y = malloc((size_t)rows * cols * sizeof(double) + 1);
    st_report_series *series = malloc((size_t)cols * sizeof *series);
    st_report_layer *layers = malloc((size_t)g->n_nodes * sizeof *layers + 1);
    char(*shapes)[48] = malloc((size_t)g->n_nodes * 48 + 1);
    st_report_kv *kv = malloc((size_t)(n_extra + 8) * sizeof *kv);
    st_status rc = ST_OK;
    if (!y || !series || !layers || !shapes || !kv) {
        rc = st_errorf(err, ST_ERR_NOMEM, "out of memory");
        goto done;
    }
    int ns = 0;
    for (int c = ST_C_EPOCH + 1; c < cols; c++) {
        if (c == ST_C_DATA_WAIT_S) continue; /* in metrics.csv; it would flatten the seconds chart */
        double *col = y + (size_t)ns * rows;
        for (int e = 0; e < rows; e++) col[e] = r->st.history[(size_t)e * cols + c];
        const char *name = st_run_col_name(r, c);
        series[ns++] = (st_report_series){name, unit_of(name), col};
    }
    int nl = 0;
    layer_rows(r, layers, shapes, &nl);
    char sp[32], params[32], input[48], epochs[32];
    snprintf(sp, sizeof sp, "%.2f%%", 100 * st_graph_prunable_sparsity(g));
    snprintf(params, sizeof params, "%zu", st_graph_num_trainable(g));
    snprintf(input, sizeof input, "%dx%dx%d", r->channels, r->height, r->width);
    snprintf(epochs, sizeof epochs, "%d", rows);
    int nk = 0;
    kv[nk++] = (st_report_kv){"model", r->o->model};
    kv[nk++] = (st_report_kv){"data", r->o->data};
    kv[nk++] = (st_report_kv){"input", input};
    kv[nk++] = (st_report_kv){"parameters", params};
    kv[nk++] = (st_report_kv){"epochs", epochs};
    kv[nk++] = (st_report_kv){"prunable weights at zero", sp};
    kv[nk++] = (st_report_kv){"recipe", r->have_recipe ? r->recipe.path : "none"};
    for (int i = 0; i < n_extra; i++) kv[nk++] = extra[i];
    char title[256];
    snprintf(title, sizeof title, "sparsetrain: %s on %s", r->o->model, r->o->data);
    st_report rep = {.title = title, .summary = kv, .n_summary = nk, .n_epochs = rows,
                     .series = series, .n_series = ns, .layers = layers, .n_layers = nl,
                     .images = images, .n_images = n_images};
    char path[600];
    snprintf(path, sizeof path, "%s/report.html", r->dir);
    rc = st_report_write_html(path, &rep, err);
    if (rc == ST_OK) fprintf(r->o->log, "report: %s\n", path);
done:
    free(y), free(series), free(layers), free(shapes), free(kv);
    return rc;
}
