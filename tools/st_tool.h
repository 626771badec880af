/* Small helpers shared by the programs in tools/ (each tools/NAME.c is one program, so
 * these are static inline rather than a library). Front-end code: it may print. */
#ifndef ST_TOOL_H
#define ST_TOOL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "st_common.h"

/* Parses a whole decimal integer in [lo, hi]; returns 0 on success. */
static inline int st_tool_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* mkdir -p. */
static inline st_status st_tool_mkdirs(const char *path, st_error *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return st_errorf(err, ST_ERR_INPUT, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != 0) continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return st_errorf(err, ST_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        struct stat sb;
        if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return st_errorf(err, ST_ERR_INPUT, "%s: exists and is not a folder", buf);
        *p = c;
        if (c == 0) break;
    }
    return ST_OK;
}

/* 1 if path is a folder with at least one entry, 0 if missing or empty, -1 if it exists
 * but is not a folder. */
static inline int st_tool_dir_nonempty(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return -1;
    DIR *d = opendir(path);
    if (!d) return 1; /* unreadable: treat as occupied */
    struct dirent *e;
    int n = 0;
    while (!n && (e = readdir(d)))
        n = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Removes the files in dir whose names end in ext (not recursive; a missing dir is fine):
 * the stale output of an earlier run, so --force never mixes two runs. */
static inline st_status st_tool_clear_files(const char *dir, const char *ext, st_error *err) {
    DIR *d = opendir(dir);
    if (!d) return ST_OK;
    struct dirent *e;
    size_t el = strlen(ext);
    char path[PATH_MAX + 256];
    st_status s = ST_OK;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= el || strcmp(e->d_name + n - el, ext) != 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && s == ST_OK)
            s = st_errorf(err, ST_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    return s;
}

/* Flushes the file system holding path: the tools write many files without a per-file
 * fsync (it would cost more than the encoding) and make them durable once here. */
static inline st_status st_tool_sync(const char *path, st_error *err) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return st_errorf(err, ST_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int r = syncfs(fd);
    int e = errno;
    close(fd);
    if (r != 0) return st_errorf(err, ST_ERR_IO, "%s: sync failed: %s", path, strerror(e));
    return ST_OK;
}

static inline double st_tool_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Fashion-MNIST class lists "0-4", "1,3,7", "0-2,8": sets remap[10] so the chosen classes
 * become 0..k-1 in order (others -1); returns k, or -1 for a malformed list. */
static inline int st_tool_parse_classes(const char *s, int remap[10]) {
    int chosen[10] = {0};
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) return -1;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p) return -1;
        }
        if (a < 0 || b > 9 || a > b) return -1;
        for (long c = a; c <= b; c++) chosen[c] = 1;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    int k = 0;
    for (int c = 0; c < 10; c++) remap[c] = chosen[c] ? k++ : -1;
    return k;
}

#endif
