/* ONNX export to a file, atomically: the bytes go to "<path>.tmp-<pid>", which is
 * fsync'ed and renamed over path. On any failure the temporary is removed and an
 * existing file at path is left as it was. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_onnx.h"

/* Writes all of buf to fd; 0 or -1 with errno set. */
static int write_all(int fd, const uint8_t *buf, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Best effort: makes the rename itself durable by syncing the folder holding path. */
static void sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

st_status st_onnx_export_file(const st_graph *g, const st_onnx_export_opts *o, const char *path,
                              st_error *err) {
    if (!path || !path[0]) return st_errorf(err, ST_ERR_INPUT, "ONNX export: no output path");
    uint8_t *buf;
    size_t len;
    st_status s = st_onnx_export_memory(g, o, &buf, &len, err);
    if (s != ST_OK) return s;
    size_t tn = strlen(path) + 32;
    char *tmp = malloc(tn);
    if (!tmp) {
        free(buf);
        return st_errorf(err, ST_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, tn, "%s.tmp-%ld", path, (long)getpid());
    const char *what = "create";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ok = fd >= 0;
    if (ok && write_all(fd, buf, len)) ok = 0, what = "write";
    if (ok && fsync(fd)) ok = 0, what = "fsync";
    int saved = errno;
    if (fd >= 0 && close(fd) && ok) ok = 0, what = "close", saved = errno;
    if (ok && rename(tmp, path)) ok = 0, what = "rename", saved = errno;
    if (!ok) {
        if (fd >= 0) unlink(tmp);
        s = st_errorf(err, ST_ERR_IO, "cannot write %s: %s of %s failed: %s", path, what, tmp,
                      strerror(saved));
    } else {
        sync_dir(path);
    }
    free(tmp);
    free(buf);
    return s;
}
