/* Progress for long loops: a bar with rate and ETA redrawn in place on a terminal, and
 * nothing in between on a pipe or file (callers print plain per-epoch lines there). */
#ifndef ST_PROGRESS_H
#define ST_PROGRESS_H

#include <stdio.h>

typedef struct st_progress {
    FILE *out;
    int enabled;
    long total, done;
    double t0, last_draw;
    char label[64];
} st_progress;

/* mode: -1 auto (on when out is a terminal), 0 off, 1 on. */
void st_progress_start(st_progress *p, FILE *out, int mode, const char *label, long total);
/* extra: short text after the bar (e.g. "loss 0.412"); may be NULL. */
void st_progress_update(st_progress *p, long done, const char *extra);
/* Clears the bar line. */
void st_progress_end(st_progress *p);
double st_now(void); /* monotonic seconds */
/* "1h02m", "3m07s", "12.3s" */
void st_format_duration(char *buf, size_t cap, double seconds);

#endif
