#include "st_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

st_status st_errorf(st_error *err, st_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int st_exit_code(st_status s) {
    if (s == ST_OK) return 0;
    if (s == ST_ERR_INPUT || s == ST_ERR_NUMERIC) return 2; /* bad data or settings */
    return 1;
}

void *st_alloc(size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    return aligned_alloc(64, n);
}

void *st_calloc(size_t bytes) {
    void *p = st_alloc(bytes);
    if (p) memset(p, 0, (bytes + 63) & ~(size_t)63);
    return p;
}

void st_free(void *p) { free(p); }

int st_edit_distance(const char *a, const char *b) {
    enum { MAXL = 255 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXL) la = MAXL;
    if (lb > MAXL) lb = MAXL;
    int row[MAXL + 1];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}
