/* The files of a run's output folder: choosing the folder, metrics.csv, summary.json. */
#ifndef ST_RUN_FILES_H
#define ST_RUN_FILES_H

#include <stddef.h>

#include "st_common.h"
#include "st_graph.h"

/* explicit_dir NULL: "runs/<name>", then "runs/<name>-2", ... the first that holds no
 * run. explicit_dir given: used as is, but refused when it holds a run (last.ckpt)
 * unless overwrite or resuming. The folder is created (with parents). */
st_status st_run_dir_choose(char *out, size_t cap, const char *explicit_dir, const char *name,
                            int overwrite, int resuming, st_error *err);
/* mkdir -p */
st_status st_mkdirs(const char *path, st_error *err);
/* Rewrites path atomically with a header and rows x cols values. */
st_status st_write_metrics_csv(const char *path, const char *const *header, const float *rows,
                               int n_rows, int n_cols, st_error *err);
/* Writes a whole text file atomically (temp file + rename). */
st_status st_write_text_atomic(const char *path, const char *text, size_t len, st_error *err);
/* summary.json: {"task", "model", "metrics": {key: value, ...}, "sparsity": {"overall",
 * "layers": {name: s}}, "epochs", "seconds"} */
st_status st_write_summary_json(const char *path, const char *task, const char *model,
                                int n_metrics, const char *const *keys, const double *metrics,
                                const st_graph *g, int epochs, double seconds, st_error *err);

/* A JSON array of the strings, escaped, in buf (truncated to whole items if cap is
 * too small; each item may take up to 6 bytes per input byte). */
void st_json_string_list(char *buf, size_t cap, const char *const *items, int n);
/* Parses a JSON array of strings (as written above) into malloc'ed strings. */
st_status st_json_parse_string_list(const char *json, char ***out, int *n, st_error *err);
void st_json_free_list(char **items, int n);

#endif
