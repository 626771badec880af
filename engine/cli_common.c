/* What the sparseengine subcommands that compile a model (bench, run, info --plan)
 * share: the compile options, spelled the same way by each, and the buffers and plan
 * text of a compiled model. */
#include <stdlib.h>
#include <string.h>

#include "se_cli.h"

int se_cli_compile_opt(const char *a, const char *v, se_options *o, int allow_batch, int *used) {
    *used = 1;
    if (!strcmp(a, "--dense")) { o->dense = 1; return 1; }
    int is_batch = !strcmp(a, "-b") || !strcmp(a, "--batch");
    int is_threads = !strcmp(a, "-ncores") || !strcmp(a, "--ncores") || !strcmp(a, "--threads");
    int is_sched = !strcmp(a, "--schedule"), is_maps = !strcmp(a, "--maps");
    int is_l2 = !strcmp(a, "--l2");
    if (!(is_batch && allow_batch) && !is_threads && !is_sched && !is_maps && !is_l2) return 0;
    *used = 2;
    if (!v) return -1;
    if (is_l2) { /* KiB */
        char *end;
        const long k = strtol(v, &end, 10);
        if (end == v || *end || k < 1 || k > (1L << 30)) return -1;
        o->l2_bytes = (size_t)k << 10;
        return 1;
    }
    if (is_batch) return (o->batch = atoi(v)) >= 1 ? 1 : -1;
    if (is_threads) return (o->threads = atoi(v)) >= 1 ? 1 : -1;
    if (is_maps) {
        if (!strcmp(v, "nchw")) o->nchw_maps = 1;
        else if (!strcmp(v, "blocked")) o->nchw_maps = 0;
        else return -1;
        return 1;
    }
    if (!strcmp(v, "layers")) o->schedule = SE_SCHEDULE_LAYERS;
    else if (!strcmp(v, "columns")) o->schedule = SE_SCHEDULE_COLUMNS;
    else return -1;
    return 1;
}

size_t se_cli_numel(const se_compiled *c, int k) {
    int64_t d[4];
    const int nd = k < 0 ? se_input_shape(c, d) : se_output_shape(c, k, d);
    size_t n = 1;
    for (int j = 0; j < nd; j++) n *= (size_t)d[j];
    return n;
}

int se_cli_alloc_outputs(const se_compiled *c, float **outs) {
    for (int k = 0; k < se_num_outputs(c); k++)
        if (!(outs[k] = malloc(se_cli_numel(c, k) * sizeof(float)))) return 4;
    return 0;
}

char *se_cli_describe(const se_compiled *c) {
    for (size_t cap = 1 << 16;; cap *= 2) {
        char *buf = malloc(cap);
        if (!buf || se_describe(c, buf, cap) == 0) return buf;
        free(buf);
    }
}
