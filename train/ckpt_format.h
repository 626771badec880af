/* Constants and helpers shared by the checkpoint writer (ckpt.c, which documents the
 * byte format) and reader (ckpt_read.c). Internal: not part of the public API. */
#ifndef ST_CKPT_FORMAT_H
#define ST_CKPT_FORMAT_H

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint tensor data is stored in host order, which must be little-endian"
#endif

#define CK_MAGIC "STCKPT01"
#define CK_VERSION 1u
#define CK_HDR 32
#define CK_ALIGN 64
#define CK_MAX_RAW ((uint64_t)64 << 30)
/* Deflate cannot expand more than ~1032:1; a header claiming more is lying. */
#define CK_MAX_RATIO 1032u
#define CK_HINT "re-run training or use another checkpoint (e.g. best.ckpt)"

enum { REC_STRING = 1, REC_TENSOR = 2 };

typedef struct {
    const char *key, *value;
} kv_pair;

/* Grows *arr (of elsize-byte items) so that index n fits; 0 when out of memory. */
static inline int ckpt_grow(void **arr, int *cap, int n, size_t elsize) {
    if (n < *cap) return 1;
    if (*cap >= INT_MAX / 2) return 0;
    int ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)ncap * elsize);
    if (!p) return 0;
    *arr = p;
    *cap = ncap;
    return 1;
}

#endif
