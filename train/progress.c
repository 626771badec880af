#include "st_progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double st_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void st_format_duration(char *buf, size_t cap, double s) {
    if (s < 0) s = 0;
    if (s < 60) snprintf(buf, cap, "%.1fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void st_progress_start(st_progress *p, FILE *out, int mode, const char *label, long total) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->enabled = mode < 0 ? isatty(fileno(out)) : mode;
    p->total = total > 0 ? total : 1;
    p->t0 = st_now();
    snprintf(p->label, sizeof p->label, "%s", label);
}

void st_progress_update(st_progress *p, long done, const char *extra) {
    p->done = done;
    if (!p->enabled) return;
    double now = st_now();
    /* redraw at most 10 times a second: terminals are slow */
    if (done < p->total && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    double frac = (double)done / (double)p->total, el = now - p->t0;
    char eta[32] = "?", elapsed[32];
    if (done > 0) st_format_duration(eta, sizeof eta, el / frac - el);
    st_format_duration(elapsed, sizeof elapsed, el);
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(p->out, "\r%s [%s] %3d%% %ld/%ld %s<%s %s\033[K", p->label, bar, (int)(frac * 100),
            done, p->total, elapsed, eta, extra ? extra : "");
    fflush(p->out);
}

void st_progress_end(st_progress *p) {
    if (!p->enabled) return;
    fprintf(p->out, "\r\033[K");
    fflush(p->out);
}
