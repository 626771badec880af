/* Magnitude masks: unstructured, blocks along the input channels ([1, M]) or the output
 * channels ([M, 1]), N:M, and global (one threshold across tensors).
 *
 * Every mask is "the k lowest-scoring items pruned", where an item is a weight or a block
 * of m weights along c of the view [outer, c, inner]. [1, M] views a weight [K, C, rest]
 * as is (blocks of input channels); [M, 1] views it as [1, K, C * rest], so a block is M
 * consecutive output channels at one (c, r, s): an inference kernel can then load each
 * input once for M outputs. An item's score is its mean |w|, except that an item whose
 * entries were all pruned by the previous mask scores below every other item: a weight
 * pruned once stays pruned (no regrowth) even when several weights are exactly zero.
 * Ties are broken by position (tensor order, then the item's first index): the lower
 * position is pruned first, so masks are deterministic.
 *
 * Selection is a radix select on 32-bit keys (the bit pattern of a non-negative float
 * orders like the float): four histogram passes find the k-th smallest key, a last pass
 * writes the mask. O(n), no allocation, and in place: the previous mask is read from the
 * buffer the new one is written to (each item's entries are read before they are
 * written, and items do not overlap).
 *
 * k = round(s * n) with Python's round (half to even), as SparseML computes it
 * (lookup_index = round(sparsity * numel)); the float target is first mapped back to the
 * decimal it came from (0.35f -> 0.35), so 0.35 of 10 weights prunes 4 as in Python. */
#include <math.h>
#include <string.h>

#include "rr_internal.h"

size_t st_mask_num_pruned(float sparsity, size_t n) {
    if (!(sparsity > 0.0f)) return 0; /* also NaN */
    if (sparsity >= 1.0f) return n;
    double v = rr_dec(sparsity) * (double)n;
    double f = floor(v), d = v - f;
    if (d > 0.5 || (d == 0.5 && fmod(f, 2.0) != 0.0)) f += 1.0;
    return f > (double)n ? n : (size_t)f;
}

void st_mask_layout(const int64_t *shape, int ndim, size_t numel, int64_t *outer, int64_t *c,
                    int64_t *inner) {
    if (ndim >= 2 && shape) {
        /* [out, in, ...]: blocks run along the input axis (dim 1) */
        *outer = shape[0];
        *c = shape[1];
        int64_t in = 1;
        for (int i = 2; i < ndim; i++) in *= shape[i];
        *inner = in;
    } else {
        *outer = 1;
        *c = (int64_t)numel;
        *inner = 1;
    }
}

void st_mask_view(const int64_t *shape, int ndim, size_t numel, int rows, st_mask_tensor *t) {
    if (rows > 1 && ndim >= 2 && shape && shape[0] > 0) {
        /* blocks of rows output channels: stride numel / shape[0] along dim 0 */
        t->outer = 1;
        t->c = shape[0];
        t->inner = (int64_t)numel / shape[0];
    } else {
        st_mask_layout(shape, ndim, numel, &t->outer, &t->c, &t->inner);
    }
}

static inline uint32_t float_key(float mean) {
    uint32_t b;
    memcpy(&b, &mean, sizeof b);
    return (b & 0x7fffffffu) + 1u; /* 0 is reserved for "already pruned" */
}

/* Key of block (o, j, in) of t with blocks of m along c. */
static uint32_t block_key(const st_mask_tensor *t, int64_t o, int64_t j, int64_t in, int m) {
    int64_t c0 = j * m, c1 = c0 + m < t->c ? c0 + m : t->c;
    size_t base = (size_t)((o * t->c + c0) * t->inner + in), step = (size_t)t->inner;
    double sum = 0.0;
    int kept = 0;
    for (int64_t c = c0; c < c1; c++, base += step) {
        sum += fabsf(t->w[base]);
        kept |= t->mask[base];
    }
    if (!kept) return 0;
    return float_key((float)(sum / (double)(c1 - c0)));
}

static size_t num_blocks(const st_mask_tensor *t, int m) {
    int64_t nb = (t->c + m - 1) / m;
    return (size_t)(t->outer * nb * t->inner);
}

/* Visits every item of every tensor in position order. mode 0: histogram of the key byte
 * at `shift` among keys whose bits under pmask equal prefix. mode 1: write the mask
 * (prune keys < thr, and the first `rem` keys == thr); returns 1 if any entry changed. */
typedef struct sel_ctx {
    int mode, shift;
    uint32_t prefix, pmask, thr;
    size_t rem;
    size_t hist[256];
    int changed;
} sel_ctx;

/* One item: its key and its n_e mask entries (flat, flat + step, ...). */
static inline void visit_key(sel_ctx *x, uint32_t key, int n_e, unsigned char *flat,
                             size_t flat_step) {
    if (x->mode == 0) {
        if ((key & x->pmask) == x->prefix) x->hist[(key >> x->shift) & 255u]++;
        return;
    }
    int prune = key < x->thr || (key == x->thr && x->rem > 0);
    if (key == x->thr && prune) x->rem--;
    unsigned char nv = prune ? 0 : 1;
    for (int i = 0; i < n_e; i++, flat += flat_step) {
        x->changed |= *flat != nv;
        *flat = nv;
    }
}

static void visit_all(sel_ctx *x, st_mask_tensor *ts, int n, int m) {
    for (int ti = 0; ti < n; ti++) {
        st_mask_tensor *t = &ts[ti];
        if (m == 1) { /* fast path: items are the weights in memory order */
            size_t cnt = (size_t)(t->outer * t->c * t->inner);
            for (size_t i = 0; i < cnt; i++) {
                uint32_t key = t->mask[i] ? float_key(fabsf(t->w[i])) : 0u;
                visit_key(x, key, 1, t->mask + i, 1);
            }
            continue;
        }
        int64_t nb = (t->c + m - 1) / m;
        for (int64_t o = 0; o < t->outer; o++)
            for (int64_t j = 0; j < nb; j++)
                for (int64_t in = 0; in < t->inner; in++) {
                    uint32_t key = block_key(t, o, j, in, m);
                    if (x->mode == 0) {
                        visit_key(x, key, 0, NULL, 0);
                    } else {
                        int64_t c0 = j * m, c1 = c0 + m < t->c ? c0 + m : t->c;
                        size_t base = (size_t)((o * t->c + c0) * t->inner + in);
                        visit_key(x, key, (int)(c1 - c0), t->mask + base,
                                  (size_t)t->inner);
                    }
                }
    }
}

int st_mask_update(st_mask_tensor *ts, int n_tensors, int m, float sparsity) {
    if (!ts || n_tensors <= 0) return 0;
    if (m < 1) m = 1;
    size_t total = 0;
    for (int i = 0; i < n_tensors; i++) total += num_blocks(&ts[i], m);
    size_t k = st_mask_num_pruned(sparsity, total);
    sel_ctx x;
    memset(&x, 0, sizeof x);
    if (k == 0) {
        x.thr = 0; /* nothing is < 0 and rem = 0: all kept */
    } else {
        /* the k-th smallest key, byte by byte from the top */
        size_t want = k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            x.mode = 0;
            x.shift = shift;
            memset(x.hist, 0, sizeof x.hist);
            visit_all(&x, ts, n_tensors, m);
            size_t cum = 0;
            unsigned b = 0;
            for (; b < 255; b++) {
                if (cum + x.hist[b] >= want) break;
                cum += x.hist[b];
            }
            want -= cum;
            x.prefix |= (uint32_t)b << shift;
            x.pmask |= 255u << shift;
        }
        x.thr = x.prefix;
        x.rem = want; /* how many of the keys equal to thr are pruned, first ones first */
    }
    x.mode = 1;
    x.changed = 0;
    visit_all(&x, ts, n_tensors, m);
    return x.changed;
}

#define ST_NM_MAX_M 64

int st_mask_nm_update(st_mask_tensor *t, int keep_n, int m) {
    if (!t || m < 1 || m > ST_NM_MAX_M || keep_n < 0) return 0;
    int changed = 0;
    int64_t nb = (t->c + m - 1) / m;
    uint32_t key[ST_NM_MAX_M];
    unsigned char cut[ST_NM_MAX_M];
    for (int64_t o = 0; o < t->outer; o++)
        for (int64_t j = 0; j < nb; j++)
            for (int64_t in = 0; in < t->inner; in++) {
                int64_t c0 = j * m, c1 = c0 + m < t->c ? c0 + m : t->c;
                int len = (int)(c1 - c0);
                size_t base = (size_t)((o * t->c + c0) * t->inner + in), st = (size_t)t->inner;
                for (int i = 0; i < len; i++) {
                    size_t p = base + (size_t)i * st;
                    key[i] = t->mask[p] ? float_key(fabsf(t->w[p])) : 0u;
                    cut[i] = 0;
                }
                /* prune the len - keep smallest (a partial last group keeps min(n, len)) */
                int n_cut = len > keep_n ? len - keep_n : 0;
                for (int r = 0; r < n_cut; r++) {
                    int best = -1;
                    for (int i = 0; i < len; i++)
                        if (!cut[i] && (best < 0 || key[i] < key[best])) best = i;
                    cut[best] = 1;
                }
                for (int i = 0; i < len; i++) {
                    size_t p = base + (size_t)i * st;
                    unsigned char nv = cut[i] ? 0 : 1;
                    changed |= t->mask[p] != nv;
                    t->mask[p] = nv;
                }
            }
    return changed;
}

void st_mask_unstructured(const float *w, size_t n, float sparsity, unsigned char *mask) {
    memset(mask, 1, n);
    st_mask_tensor t = {w, mask, 1, (int64_t)n, 1};
    st_mask_update(&t, 1, 1, sparsity);
}

/* A fresh [rows, cols] block mask (one of them 1) of one tensor. */
static void block_mask(const float *w, const int64_t *shape, int ndim, int rows, int cols,
                       float sparsity, unsigned char *mask) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    memset(mask, 1, n);
    st_mask_tensor t = {.w = w, .mask = mask};
    st_mask_view(shape, ndim, n, rows, &t);
    st_mask_update(&t, 1, rows > 1 ? rows : cols, sparsity);
}

void st_mask_block(const float *w, const int64_t *shape, int ndim, int m, float sparsity,
                   unsigned char *mask) {
    block_mask(w, shape, ndim, 1, m, sparsity, mask);
}

void st_mask_block_out(const float *w, const int64_t *shape, int ndim, int m, float sparsity,
                       unsigned char *mask) {
    block_mask(w, shape, ndim, m, 1, sparsity, mask);
}

void st_mask_nm(const float *w, const int64_t *shape, int ndim, int keep_n, int m,
                unsigned char *mask) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    memset(mask, 1, n);
    st_mask_tensor t = {.w = w, .mask = mask};
    st_mask_layout(shape, ndim, n, &t.outer, &t.c, &t.inner);
    st_mask_nm_update(&t, keep_n, m);
}
