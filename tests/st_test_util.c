#include "st_test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void stt_fill_uniform(float *x, size_t n, float lo, float hi, st_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * st_rng_uniform(r);
}

double stt_max_rel_err(const float *a, const float *b, size_t n, double atol, double rtol) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(e <= m)) m = e; /* NaN propagates as "bad" */
    }
    return m;
}

size_t stt_first_mismatch(const float *a, const float *b, size_t n, double atol, double rtol) {
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) return i;
    }
    return (size_t)-1;
}

const char *stt_source_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", ST_SOURCE_DIR, rel);
    return buf;
}

const char *stt_tmpdir(char *buf, size_t cap, const char *tag) {
    snprintf(buf, cap, "%s/test-tmp", ST_BINARY_DIR);
    mkdir(buf, 0755);
    snprintf(buf, cap, "%s/test-tmp/%s-%d", ST_BINARY_DIR, tag, (int)getpid());
    mkdir(buf, 0755);
    return buf;
}

void stt_skip(const char *why) { fprintf(stderr, "SKIP: %s\n", why); }

int stt_run(const char *cmd) {
    int s = system(cmd);
    if (s == -1) return -1;
    if (WIFEXITED(s)) return WEXITSTATUS(s);
    return 128 + (WIFSIGNALED(s) ? WTERMSIG(s) : 0);
}
