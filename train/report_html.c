/* report.html writer. The page is built in memory, then written atomically, so a reader
 * (or a browser left open on it while training goes on) never sees half a page.
 *
 * Charts are hand-written SVG: a frame, "nice" ticks (1, 2, 5 x 10^k) on both axes with
 * grid lines, axis titles, one path per series (NaN breaks it into pieces), point markers
 * for short series and a legend to the right. Series sharing a unit share a chart, which
 * keeps e.g. mAP50 and mAP50-95 comparable and a learning rate on its own scale. */
#include "st_report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_run_files.h" /* st_write_text_atomic */

/* ---------------------------------------------------------------- text buffer */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} hbuf;

static void hb_reserve(hbuf *b, size_t more) {
    if (b->oom || b->len + more + 1 <= b->cap) return;
    size_t cap = ST_MAX(b->cap * 2, b->len + more + 1024);
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return;
    }
    b->s = s;
    b->cap = cap;
}

static void hb_putn(hbuf *b, const char *s, size_t n) {
    hb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void hb_puts(hbuf *b, const char *s) { hb_putn(b, s, strlen(s)); }

static void hb_printf(hbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hb_printf(hbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    hb_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Escaped text or attribute value, at most max bytes of s (cut at a UTF-8 character
 * boundary, with an ellipsis). Control characters other than tab and newline are
 * dropped: they are not allowed in HTML text. */
static void hb_esc_n(hbuf *b, const char *s, size_t max) {
    if (!s) return;
    size_t n = strlen(s), cut = n > max ? max : n;
    while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '<': hb_puts(b, "&lt;"); break;
        case '>': hb_puts(b, "&gt;"); break;
        case '&': hb_puts(b, "&amp;"); break;
        case '"': hb_puts(b, "&quot;"); break;
        case '\'': hb_puts(b, "&#39;"); break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n') hb_putn(b, (const char *)&c, 1);
        }
    }
    if (cut < n) hb_puts(b, "&#8230;");
}

static void hb_esc(hbuf *b, const char *s) { hb_esc_n(b, s, (size_t)-1); }

/* A number for tables and tick labels; "-" for NaN and infinities. */
static void hb_num(hbuf *b, double v) {
    if (!isfinite(v)) hb_puts(b, "&#8211;");
    else hb_printf(b, "%.6g", v);
}

size_t st_base64_encode(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

/* ---------------------------------------------------------------- charts */

#define CH_W 720
#define CH_H 320
#define PL_X0 70  /* plot area */
#define PL_X1 540
#define PL_Y0 20
#define PL_Y1 268

static const char *const series_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                            "#9467bd", "#8c564b", "#e377c2", "#17becf"};

/* Axis range and tick step: a 1, 2 or 5 x 10^k step giving about 5 intervals, the range
 * widened to whole steps. A flat or empty range is opened up so that it has a scale. */
static void nice_axis(double lo, double hi, double *a0, double *a1, double *step) {
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12 * fmax(1, fabs(hi))) {
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double s = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    *a0 = floor(lo / s + 1e-9) * s;
    *a1 = ceil(hi / s - 1e-9) * s;
    *step = s;
}

static double epoch_at(const st_report *r, int i) { return r->epochs ? r->epochs[i] : i + 1; }

static int same_unit(const char *a, const char *b) {
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* One chart for every series whose unit is `unit`. */
static void chart(hbuf *b, const st_report *r, const char *unit) {
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < r->n_epochs; i++) {
        double x = epoch_at(r, i);
        if (!isfinite(x)) continue;
        xlo = fmin(xlo, x);
        xhi = fmax(xhi, x);
        for (int s = 0; s < r->n_series; s++) {
            if (!same_unit(r->series[s].unit, unit) || !r->series[s].y) continue;
            double y = r->series[s].y[i];
            if (!isfinite(y)) continue;
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
        }
    }
    double x0, x1, xs, y0, y1, ys;
    nice_axis(xlo, xhi, &x0, &x1, &xs);
    nice_axis(ylo, yhi, &y0, &y1, &ys);
#define PX(x) (PL_X0 + ((x) - x0) / (x1 - x0) * (PL_X1 - PL_X0))
#define PY(y) (PL_Y1 - ((y) - y0) / (y1 - y0) * (PL_Y1 - PL_Y0))
    const char *u = unit && *unit ? unit : "value";
    hb_printf(b, "<figure class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" "
                 "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"",
              CH_W, CH_H, CH_W, CH_H);
    hb_esc(b, u);
    hb_puts(b, " per epoch\">\n");
    hb_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fff\" stroke=\"#999\"/>\n",
              PL_X0, PL_Y0, PL_X1 - PL_X0, PL_Y1 - PL_Y0);
    /* ticks: at most ~12 per axis whatever the data, as the step is nice */
    for (int k = 0; k <= 20; k++) {
        double v = y0 + k * ys;
        if (v > y1 + ys * 1e-6) break;
        if (fabs(v) < ys * 1e-9) v = 0;
        double py = PY(v);
        hb_printf(b, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.2f\" y2=\"%.2f\"/>"
                     "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%.6g</text>\n",
                  PL_X0, PL_X1, py, py, PL_X0 - 6, py + 4, v);
    }
    for (int k = 0; k <= 20; k++) {
        double v = x0 + k * xs;
        if (v > x1 + xs * 1e-6) break;
        if (fabs(v) < xs * 1e-9) v = 0;
        double px = PX(v);
        hb_printf(b, "<line class=\"grid\" x1=\"%.2f\" x2=\"%.2f\" y1=\"%d\" y2=\"%d\"/>"
                     "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%.6g</text>\n",
                  px, px, PL_Y0, PL_Y1, px, PL_Y1 + 16, v);
    }
    hb_printf(b, "<text class=\"axis\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n",
              (PL_X0 + PL_X1) / 2, PL_Y1 + 40);
    hb_printf(b, "<text class=\"axis\" transform=\"translate(16,%d) rotate(-90)\" "
                 "text-anchor=\"middle\">", (PL_Y0 + PL_Y1) / 2);
    hb_esc_n(b, u, 40);
    hb_puts(b, "</text>\n");

    int slot = 0;
    for (int s = 0; s < r->n_series; s++) {
        const st_report_series *se = &r->series[s];
        if (!same_unit(se->unit, unit) || !se->y) continue;
        const char *col = series_colors[slot % (int)(sizeof series_colors / sizeof *series_colors)];
        hb_printf(b, "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"", col);
        int pen = 0, points = 0;
        for (int i = 0; i < r->n_epochs; i++) {
            double x = epoch_at(r, i), y = se->y[i];
            if (!isfinite(x) || !isfinite(y)) {
                pen = 0;
                continue;
            }
            hb_printf(b, "%s%.2f %.2f ", pen ? "L" : "M", PX(x), PY(y));
            pen = 1;
            points++;
        }
        hb_puts(b, "\"/>\n");
        /* markers: a lone point would otherwise be invisible; dense series stay clean */
        if (points <= 60)
            for (int i = 0; i < r->n_epochs; i++) {
                double x = epoch_at(r, i), y = se->y[i];
                if (isfinite(x) && isfinite(y))
                    hb_printf(b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>", PX(x), PY(y), col);
            }
        int ly = PL_Y0 + 8 + slot * 20;
        hb_printf(b, "\n<g class=\"legend\"><line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" "
                     "stroke-width=\"3\"/><text x=\"%d\" y=\"%d\">",
                  PL_X1 + 12, PL_X1 + 34, ly, ly, col, PL_X1 + 40, ly + 4);
        hb_esc_n(b, se->name, 24);
        hb_puts(b, "</text></g>\n");
        slot++;
    }
#undef PX
#undef PY
    /* caption: the series names, so the chart can be found by what it shows */
    hb_puts(b, "</svg><figcaption>");
    for (int s = 0, k = 0; s < r->n_series; s++) {
        if (!same_unit(r->series[s].unit, unit) || !r->series[s].y) continue;
        hb_puts(b, k++ ? ", " : "");
        hb_esc(b, r->series[s].name);
    }
    hb_puts(b, "</figcaption></figure>\n");
}

/* Every chart (one per unit, in order of first appearance), then the values as a table. */
static void charts(hbuf *b, const st_report *r) {
    if (r->n_series <= 0 || r->n_epochs <= 0) return;
    hb_puts(b, "<h2>Training curves</h2>\n<div class=\"charts\">\n");
    for (int s = 0; s < r->n_series; s++) {
        int first = 1;
        for (int t = 0; t < s && first; t++)
            if (same_unit(r->series[t].unit, r->series[s].unit)) first = 0;
        if (first) chart(b, r, r->series[s].unit);
    }
    hb_puts(b, "</div>\n<details><summary>Values per epoch</summary>\n<table class=\"values\">\n"
               "<thead><tr><th>epoch</th>");
    for (int s = 0; s < r->n_series; s++) {
        hb_puts(b, "<th>");
        hb_esc(b, r->series[s].name);
        if (r->series[s].unit && *r->series[s].unit) {
            hb_puts(b, " <small>(");
            hb_esc(b, r->series[s].unit);
            hb_puts(b, ")</small>");
        }
        hb_puts(b, "</th>");
    }
    hb_puts(b, "</tr></thead>\n<tbody>\n");
    for (int i = 0; i < r->n_epochs; i++) {
        hb_puts(b, "<tr><td>");
        hb_num(b, epoch_at(r, i));
        hb_puts(b, "</td>");
        for (int s = 0; s < r->n_series; s++) {
            hb_puts(b, "<td>");
            hb_num(b, r->series[s].y ? r->series[s].y[i] : NAN);
            hb_puts(b, "</td>");
        }
        hb_puts(b, "</tr>\n");
    }
    hb_puts(b, "</tbody>\n</table>\n</details>\n");
}

/* ---------------------------------------------------------------- tables and images */

static void pct_cell(hbuf *b, double f) {
    if (!isfinite(f) || f < 0) {
        hb_puts(b, "<td class=\"num\">n/a</td>");
        return;
    }
    double p = fmin(100, 100 * f);
    hb_printf(b, "<td class=\"num\"><span class=\"bar\"><span style=\"width:%.1f%%\"></span></span>"
                 "%.1f%%</td>", p, 100 * f);
}

static void layers(hbuf *b, const st_report *r) {
    if (r->n_layers <= 0) return;
    hb_puts(b, "<h2>Layers</h2>\n<table class=\"layers\">\n<thead><tr><th>layer</th><th>shape</th>"
               "<th>sparsity</th><th>kernel</th><th>time</th></tr></thead>\n<tbody>\n");
    for (int i = 0; i < r->n_layers; i++) {
        const st_report_layer *l = &r->layers[i];
        hb_puts(b, "<tr><td>");
        hb_esc(b, l->name);
        hb_puts(b, "</td><td>");
        hb_esc(b, l->shape);
        hb_puts(b, "</td>");
        pct_cell(b, l->sparsity);
        hb_printf(b, "<td class=\"%s\">%s</td>", l->sparse_kernel ? "sparse" : "dense",
                  l->sparse_kernel ? "sparse" : "dense");
        pct_cell(b, l->time_share);
        hb_puts(b, "</tr>\n");
    }
    hb_puts(b, "</tbody>\n</table>\n");
}

static st_status images(hbuf *b, const st_report *r, st_error *err) {
    if (r->n_images <= 0) return ST_OK;
    hb_puts(b, "<h2>Predictions</h2>\n<div class=\"images\">\n");
    for (int i = 0; i < r->n_images; i++) {
        uint8_t *png = NULL;
        size_t n = 0;
        st_status rc = st_png_write_memory(r->images[i].image, &png, &n, err);
        if (rc != ST_OK) return rc;
        char *b64 = malloc(4 * ((n + 2) / 3) + 1);
        if (!b64) {
            free(png);
            return st_errorf(err, ST_ERR_NOMEM, "out of memory (report image)");
        }
        size_t m = st_base64_encode(png, n, b64);
        free(png);
        hb_printf(b, "<figure><img width=\"%d\" height=\"%d\" alt=\"", r->images[i].image->w,
                  r->images[i].image->h);
        hb_esc(b, r->images[i].caption);
        hb_puts(b, "\" src=\"data:image/png;base64,");
        hb_putn(b, b64, m);
        free(b64);
        hb_puts(b, "\"><figcaption>");
        hb_esc(b, r->images[i].caption);
        hb_puts(b, "</figcaption></figure>\n");
    }
    hb_puts(b, "</div>\n");
    return ST_OK;
}

static const char style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;"
    "color:#222;background:#fafafa}\n"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\n"
    "table{border-collapse:collapse;font-size:.9em;background:#fff}\n"
    "th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}\n"
    "td.num{text-align:right;white-space:nowrap}th{background:#f0f0f0}\n"
    "td.sparse{color:#1a7f37;font-weight:600}td.dense{color:#666}\n"
    ".bar{display:inline-block;width:60px;height:8px;background:#eee;margin-right:6px}\n"
    ".bar span{display:block;height:8px;background:#4c8bf5}\n"
    ".charts,.images{display:flex;flex-wrap:wrap;gap:16px}\n"
    "figure{margin:0}figcaption{font-size:.85em;color:#555;text-align:center}\n"
    "svg text{font-size:12px;fill:#333}svg text.axis{font-size:13px}\n"
    "svg line.grid{stroke:#e4e4e4}\n"
    "img{max-width:100%;height:auto;border:1px solid #ccc;image-rendering:pixelated}\n";

st_status st_report_html(const st_report *r, char **out, size_t *len, st_error *err) {
    *out = NULL;
    *len = 0;
    hbuf b = {0};
    const char *title = r->title ? r->title : "sparsetrain run";
    hb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    hb_esc(&b, title);
    hb_printf(&b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", style);
    hb_esc(&b, title);
    hb_puts(&b, "</h1>\n");
    if (r->n_summary > 0) {
        hb_puts(&b, "<table class=\"summary\">\n<tbody>\n");
        for (int i = 0; i < r->n_summary; i++) {
            hb_puts(&b, "<tr><th>");
            hb_esc(&b, r->summary[i].key);
            hb_puts(&b, "</th><td>");
            hb_esc(&b, r->summary[i].value);
            hb_puts(&b, "</td></tr>\n");
        }
        hb_puts(&b, "</tbody>\n</table>\n");
    }
    charts(&b, r);
    layers(&b, r);
    st_status rc = images(&b, r, err);
    hb_puts(&b, "</body>\n</html>\n");
    if (rc == ST_OK && b.oom) rc = st_errorf(err, ST_ERR_NOMEM, "out of memory (report.html)");
    if (rc != ST_OK) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    *len = b.len;
    return ST_OK;
}

st_status st_report_write_html(const char *path, const st_report *r, st_error *err) {
    char *html;
    size_t len;
    st_status rc = st_report_html(r, &html, &len, err);
    if (rc != ST_OK) return rc;
    rc = st_write_text_atomic(path, html, len, err);
    free(html);
    return rc;
}
