/* report.html: one self-contained page per run (no external resources, no JavaScript):
 * a summary table, per-epoch line charts as inline SVG, a per-layer sparsity table and a
 * few annotated images embedded as PNG data: URIs. Everything given as text is escaped,
 * so class or layer names with '<' or '&' cannot break the page. */
#ifndef ST_REPORT_H
#define ST_REPORT_H

#include <stddef.h>

#include "st_common.h"
#include "st_image.h"

typedef struct st_report_kv {
    const char *key, *value;
} st_report_kv;

/* One per-epoch series, e.g. {"mAP50", "mAP", map50} or {"lr", "lr", lr}. Series with
 * the same unit share a chart (in order of first appearance). y has the report's
 * n_epochs values; NaN marks a missing one (the line breaks there). */
typedef struct st_report_series {
    const char *name;
    const char *unit; /* NULL or "": plotted together as unitless values */
    const double *y;
} st_report_series;

typedef struct st_report_layer {
    const char *name;
    const char *shape;  /* e.g. "64x32x3x3" */
    double sparsity;    /* fraction of zero weights, 0..1 */
    int sparse_kernel;  /* 1: runs the sparse kernel, 0: dense */
    double time_share;  /* fraction of the step time, 0..1; negative: not measured */
} st_report_layer;

typedef struct st_report_image {
    const char *caption;
    const st_image *image; /* 8-bit gray or RGB */
} st_report_image;

typedef struct st_report {
    const char *title;
    const st_report_kv *summary;
    int n_summary;
    const double *epochs; /* [n_epochs]; NULL: 1, 2, ... */
    int n_epochs;
    const st_report_series *series;
    int n_series;
    const st_report_layer *layers;
    int n_layers;
    const st_report_image *images;
    int n_images;
} st_report;

/* The page as a NUL-terminated malloc'd string (*len without the NUL). */
st_status st_report_html(const st_report *r, char **out, size_t *len, st_error *err);
/* Writes it to path atomically (temp file + rename). */
st_status st_report_write_html(const char *path, const st_report *r, st_error *err);

/* Standard base64 (RFC 4648, with padding) of n bytes into out, which needs
 * 4 * ((n + 2) / 3) + 1 bytes; returns the length written (NUL not counted). */
size_t st_base64_encode(const uint8_t *in, size_t n, char *out);

#endif
