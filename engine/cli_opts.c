/* Compile options shared by the sparseengine subcommands that compile a model (bench,
 * run, info --plan), so each spells them the same way. */
#include <stdlib.h>
#include <string.h>

#include "se_cli.h"

int se_cli_compile_opt(const char *a, const char *v, se_options *o, int allow_batch, int *used) {
    *used = 1;
    if (!strcmp(a, "--dense")) { o->dense = 1; return 1; }
    int is_batch = !strcmp(a, "-b") || !strcmp(a, "--batch");
    int is_threads = !strcmp(a, "-ncores") || !strcmp(a, "--ncores") || !strcmp(a, "--threads");
    int is_sched = !strcmp(a, "--schedule");
    if (!(is_batch && allow_batch) && !is_threads && !is_sched) return 0;
    *used = 2;
    if (!v) return -1;
    if (is_batch) return (o->batch = atoi(v)) >= 1 ? 1 : -1;
    if (is_threads) return (o->threads = atoi(v)) >= 1 ? 1 : -1;
    if (!strcmp(v, "layers")) o->schedule = SE_SCHEDULE_LAYERS;
    else if (!strcmp(v, "columns")) o->schedule = SE_SCHEDULE_COLUMNS;
    else return -1;
    return 1;
}
