/* Sparse kernels, AVX-512 (compiled with -mavx512f... and only called when the CPU has it).
 *
 * spmm: a tile of up to 128 columns of one output row lives in 8 zmm accumulators; each
 * nonzero is one broadcast and 8 FMAs with 8 loads of X (the bound: load bandwidth).
 * Tiles go column-outer, row-inner, so the X rows a tile touches stay in L1 for all rows.
 * Narrow tiles (<= 64 columns) have too few independent FMA chains to hide the latency,
 * so they alternate nonzeros between two accumulator sets. Direct mode's masked loads
 * take 7-vector tiles (one mask register each, k1-k7).
 * spmm_rows: the same over whole image rows, several short rows per 8 accumulators.
 * sddmm: a 256-column tile of dY's row sits in 16 registers; each nonzero's dot product
 * over it takes 16 loads + FMAs into 4 accumulators, then one horizontal sum. */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "act_vec_avx512.h"
#include "st_sparse.h"

#define AI __attribute__((always_inline)) static inline

AI __mmask16 tail_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* Four consecutive 16-lane masks of a lane-mask table as one 64-bit mask (the tables
 * are padded by four words, so a row's last vectors may be read this way). */
AI __mmask64 masks64(const uint16_t *m) {
    uint64_t u;
    memcpy(&u, m, sizeof u);
    return _cvtu64_mask64(u);
}

/* The 16 lanes of vector v < 4 in masks64's mask (an immediate shift in every build:
 * unoptimised ones do not unroll v into a constant). */
AI __mmask16 mask_part(__mmask64 k, int v) {
    switch (v) {
    case 0: return (__mmask16)k;
    case 1: return (__mmask16)_kshiftri_mask64(k, 16);
    case 2: return (__mmask16)_kshiftri_mask64(k, 32);
    default: return (__mmask16)_kshiftri_mask64(k, 48);
    }
}

/* Rows [r0, r1) over NV vectors of columns; the last vector is masked by km when MASKED.
 * XM: X loads masked by the lane-mask table (xm: this tile's first vector, row stride
 * nvec; it is zero past n, so km is not needed on X then). */
AI __m512 ldx(const int XM, const int MASKED, int v, int NV, const float *p, const uint16_t *mr,
              __mmask16 km) {
    if (XM) return _mm512_maskz_loadu_ps((__mmask16)mr[v], p + 16 * v);
    if (MASKED && v == NV - 1) return _mm512_maskz_loadu_ps(km, p + 16 * v);
    return _mm512_loadu_ps(p + 16 * v);
}

AI void spmm_tile(const int NV, const int MASKED, const int TWO, const int XM, int r0, int r1,
                  const int32_t *ptr, const int32_t *idx, const float *val, const float *X,
                  ptrdiff_t ldx_, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,
                  __mmask16 km, const uint8_t *cls, const uint16_t *xm, int nvec,
                  const st_epi_op *ops, int n_ops, int eo) {
    /* direct kxk, single-set tiles: runs of one mask class, or of one tap column (class
     * >> sh equal) where row 0 of the table says that no tap leaves the image vertically
     * in any of the tile's vectors (st_sparse.h): about 3 nonzeros a run at 95% zeros
     * cost a mispredicted exit and a reload of the masks each; 3x longer runs took the
     * 3x3 layers of ResNet-18 on 14x14-56x56 0.83-0.96x the time */
    const int sh = XM && !TWO ? st_sparse_run_shift(xm, NV) : 0;
    for (int r = r0; r < r1; r++) {
        float *y = Y + (ptrdiff_t)(r - r0) * ldy;
        __m512 a[8], c[8];
        const __m512 vb = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            __mmask16 m = (MASKED && v == NV - 1) ? km : (__mmask16)0xFFFF;
            a[v] = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + 16 * v), vb) : vb;
            c[v] = _mm512_setzero_ps();
        }
        int e = ptr[r];
        const int e1 = ptr[r + 1];
        if (TWO && XM) { /* NV <= 4: a nonzero's masks in one 64-bit load (st_sparse.h pads
                          * the tables), shifted out per vector: one load for NV (ResNet's 7x7
                          * 3x3 layers 0.91x the time) */
            for (; e + 1 < e1; e += 2) {
                const __m512 w0 = _mm512_set1_ps(val[e]), w1 = _mm512_set1_ps(val[e + 1]);
                const float *x0 = X + (ptrdiff_t)idx[e] * ldx_;
                const float *x1 = X + (ptrdiff_t)idx[e + 1] * ldx_;
                const __mmask64 k0 = masks64(xm + (size_t)cls[e] * nvec);
                const __mmask64 k1 = masks64(xm + (size_t)cls[e + 1] * nvec);
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                    const __mmask16 q0 = mask_part(k0, v), q1 = mask_part(k1, v);
                    a[v] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(q0, x0 + 16 * v), a[v]);
                    c[v] = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(q1, x1 + 16 * v), c[v]);
                }
            }
        } else if (TWO) {
            for (; e + 1 < e1; e += 2) {
                const __m512 w0 = _mm512_set1_ps(val[e]), w1 = _mm512_set1_ps(val[e + 1]);
                const float *x0 = X + (ptrdiff_t)idx[e] * ldx_;
                const float *x1 = X + (ptrdiff_t)idx[e + 1] * ldx_;
                const uint16_t *m0 = XM ? xm + (size_t)cls[e] * nvec : NULL;
                const uint16_t *m1 = XM ? xm + (size_t)cls[e + 1] * nvec : NULL;
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                    a[v] = _mm512_fmadd_ps(w0, ldx(XM, MASKED, v, NV, x0, m0, km), a[v]);
                    c[v] = _mm512_fmadd_ps(w1, ldx(XM, MASKED, v, NV, x1, m1, km), c[v]);
                }
            }
        }
        if (XM && !TWO) {
            /* runs (the direct layout sorts rows by tap column, then tap row): the
             * masks are loaded once per run */
            while (e < e1) {
                const int cl = cls[e] >> sh;
                const uint16_t *m0 = xm + (size_t)cls[e] * nvec;
                __mmask16 mk[8];
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) mk[v] = (__mmask16)m0[v];
                do {
                    const __m512 w0 = _mm512_set1_ps(val[e]);
                    const float *x0 = X + (ptrdiff_t)idx[e] * ldx_;
#pragma GCC unroll 8
                    for (int v = 0; v < NV; v++)
                        a[v] = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(mk[v], x0 + 16 * v), a[v]);
                    e++;
                } while (e < e1 && cls[e] >> sh == cl);
            }
        }
        for (; e < e1; e++) {
            const __m512 w0 = _mm512_set1_ps(val[e]);
            const float *x0 = X + (ptrdiff_t)idx[e] * ldx_;
            const uint16_t *m0 = XM ? xm + (size_t)cls[e] * nvec : NULL;
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++)
                a[v] = _mm512_fmadd_ps(w0, ldx(XM, MASKED, v, NV, x0, m0, km), a[v]);
        }
        if (TWO)
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) a[v] = _mm512_add_ps(a[v], c[v]);
        if (n_ops) { /* the epilogue in registers: y is written once */
            __mmask16 em[8];
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) em[v] = MASKED && v == NV - 1 ? km : (__mmask16)0xFFFF;
            st_epi_block16(a, 1, NV, 1, ops, n_ops, (size_t)((r - r0) * ldy + eo), 0, em);
        }
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) {
            if (MASKED && v == NV - 1) _mm512_mask_storeu_ps(y + 16 * v, km, a[v]);
            else _mm512_storeu_ps(y + 16 * v, a[v]);
        }
    }
}

#define SPMM_ARGS                                                                              \
    int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,  \
        ptrdiff_t ldx_, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,            \
        __mmask16 km, const uint8_t *cls, const uint16_t *xm, int nvec, const st_epi_op *ops,  \
        int n_ops, int eo
#define SPMM_PASS                                                                              \
    r0, r1, ptr, idx, val, X, ldx_, Y, ldy, bias, accumulate, km, cls, xm, nvec, ops, n_ops, eo
typedef void (*spmm_fn)(SPMM_ARGS);
#define SPMM_ARGS_NO_TILE                                                                      \
    int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,  \
        ptrdiff_t ldx_, float *Y, ptrdiff_t ldy, const float *bias, int accumulate,            \
        const uint8_t *cls, const uint16_t *xmask, const st_epi_op *ops, int n_ops
#define SPMM_VARIANTS(XM)                                                                      \
    static void spmm_full_##XM(SPMM_ARGS) { spmm_tile(8, 0, 0, XM, SPMM_PASS); }               \
    static void spmm_t1_##XM(SPMM_ARGS) { spmm_tile(1, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t2_##XM(SPMM_ARGS) { spmm_tile(2, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t3_##XM(SPMM_ARGS) { spmm_tile(3, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t4_##XM(SPMM_ARGS) { spmm_tile(4, 1, 1, XM, SPMM_PASS); }                 \
    static void spmm_t5_##XM(SPMM_ARGS) { spmm_tile(5, 1, 0, XM, SPMM_PASS); }                 \
    static void spmm_t6_##XM(SPMM_ARGS) { spmm_tile(6, 1, 0, XM, SPMM_PASS); }                 \
    static void spmm_t7_##XM(SPMM_ARGS) { spmm_tile(7, 1, 0, XM, SPMM_PASS); }                 \
    static void spmm_t8_##XM(SPMM_ARGS) { spmm_tile(8, 1, 0, XM, SPMM_PASS); }                 \
    static const spmm_fn spmm_tab_##XM[9] = {spmm_full_##XM, spmm_t1_##XM, spmm_t2_##XM,       \
                                             spmm_t3_##XM,   spmm_t4_##XM, spmm_t5_##XM,       \
                                             spmm_t6_##XM,   spmm_t7_##XM, spmm_t8_##XM};
SPMM_VARIANTS(0)
SPMM_VARIANTS(1)
/* Masked X loads need one mask register per vector: 8 vectors spilled the eighth (only
 * k1-k7 can mask) and reloaded it from the stack on every nonzero. */
static void spmm_full7_1(SPMM_ARGS) { spmm_tile(7, 0, 0, 1, SPMM_PASS); }

/* Columns [j0, j1) in tiles of `full` and one narrower tile. */
static void spmm_range(int j0, int j1, int nvec, SPMM_ARGS_NO_TILE) {
    const spmm_fn *tab = xmask ? spmm_tab_1 : spmm_tab_0;
    const int full = xmask ? ST_SPARSE_DIRECT_TILE_COLS : 128;
    const spmm_fn full_tile = xmask ? spmm_full7_1 : tab[0];
    for (; j0 + full <= j1; j0 += full)
        full_tile(r0, r1, ptr, idx, val, X + j0, ldx_, Y + j0, ldy, bias, accumulate, 0xFFFF, cls,
                  xmask ? xmask + j0 / 16 : NULL, nvec, ops, n_ops, j0);
    const int left = j1 - j0;
    if (left > 0) {
        const int nv = (left + 15) / 16;
        tab[nv](r0, r1, ptr, idx, val, X + j0, ldx_, Y + j0, ldy, bias, accumulate,
                tail_mask(left - 16 * (nv - 1)), cls, xmask ? xmask + j0 / 16 : NULL, nvec, ops,
                n_ops, j0);
    }
}

static void spmm_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                        const float *X, ptrdiff_t ldx_, int n, float *Y, ptrdiff_t ldy,
                        const float *bias, int accumulate, const uint8_t *cls,
                        const uint16_t *xmask, const st_epi_op *ops, int n_ops) {
    const int nvec = (n + 15) / 16;
    /* direct kxk: the vectors that no tap leaves vertically (row 0 of the table nonzero)
     * get full tiles of their own, where they fill one; the rest of them go with the
     * bottom rows' (a tile more for every nonzero cost 7x7 maps 1.33x the time) */
    int lo = 0, hi = 0;
    if (xmask) {
        hi = nvec;
        while (lo < nvec && !xmask[lo]) lo++;
        while (hi > lo && !xmask[hi - 1]) hi--;
        const int tv = ST_SPARSE_DIRECT_TILE_COLS / 16;
        hi = lo + (hi - lo) / tv * tv;
        if (hi == lo) lo = hi = 0;
    }
    const int cut[4] = {0, ST_MIN(n, 16 * lo), ST_MIN(n, 16 * hi), n};
    for (int i = 0; i < 3; i++)
        if (cut[i + 1] > cut[i])
            spmm_range(cut[i], cut[i + 1], nvec, r0, r1, ptr, idx, val, X, ldx_, Y, ldy, bias,
                       accumulate, cls, xmask, ops, n_ops);
}

/* NR image rows of NV vectors each (the last under km) of output channels [r0, r1): row j
 * reads X at x_off + j*ldxr and writes Y + j*ldyr; only rows j < rv are real (the others
 * repeat row rv - 1's loads, so nothing past the caller's rows is read, and are not
 * stored). Several short rows (a stride-2 layer's 20-40 columns) fill the 8 accumulators. */
AI void spmm_rblock(const int NR, const int NV, int r0, int r1, const int32_t *ptr,
                    const int32_t *idx, const float *val, const float *X, ptrdiff_t ldxr, int rv,
                    float *Y, ptrdiff_t ldy, ptrdiff_t ldyr, const float *bias, int accumulate,
                    __mmask16 km, const st_epi_op *ops, int n_ops, size_t eo) {
    ptrdiff_t ro[8];
    __mmask16 mk[8];
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++) ro[j] = (ptrdiff_t)(j < rv ? j : rv - 1) * ldxr;
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) mk[v] = v == NV - 1 ? km : (__mmask16)0xFFFF;
    for (int r = r0; r < r1; r++) {
        float *y = Y + (ptrdiff_t)(r - r0) * ldy;
        __m512 a[8];
        const __m512 vb = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 8
        for (int i = 0; i < NR * NV; i++) a[i] = vb;
        if (accumulate)
#pragma GCC unroll 8
            for (int j = 0; j < NR; j++)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) /* rows past rv: any value (not stored) */
                    a[j * NV + v] = _mm512_add_ps(a[j * NV + v], _mm512_maskz_loadu_ps(
                                                      j < rv ? mk[v] : 0, y + j * ldyr + 16 * v));
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const __m512 w0 = _mm512_set1_ps(val[e]);
            const float *x0 = X + idx[e];
#pragma GCC unroll 8
            for (int j = 0; j < NR; j++)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) {
                    const float *p = x0 + ro[j] + 16 * v;
                    const __m512 xv = v == NV - 1 ? _mm512_maskz_loadu_ps(km, p) : _mm512_loadu_ps(p);
                    a[j * NV + v] = _mm512_fmadd_ps(w0, xv, a[j * NV + v]);
                }
        }
        if (n_ops) st_epi_block16(a, NR, NV, rv, ops, n_ops, (size_t)((r - r0) * ldy) + eo, (size_t)ldyr, mk);
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++)
            if (j < rv)
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) { /* a masked store does not forward: full ones plain */
                    float *q = y + j * ldyr + 16 * v;
                    if (v == NV - 1) _mm512_mask_storeu_ps(q, km, a[j * NV + v]);
                    else _mm512_storeu_ps(q, a[j * NV + v]);
                }
    }
}

#define SPMM_ROWS_ARGS                                                                         \
    int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,  \
        ptrdiff_t ldxr, int rv, float *Y, ptrdiff_t ldy, ptrdiff_t ldyr, const float *bias,    \
        int accumulate, __mmask16 km, const st_epi_op *ops, int n_ops, size_t eo
#define SPMM_ROWS_PASS r0, r1, ptr, idx, val, X, ldxr, rv, Y, ldy, ldyr, bias, accumulate, km, ops, n_ops, eo
typedef void (*spmm_rows_fn)(SPMM_ROWS_ARGS);
#define SPMM_RB(NV)                                                                            \
    static void spmm_rb##NV(SPMM_ROWS_ARGS) {                                                  \
        spmm_rblock(ST_SPARSE_ROWS_PER_CALL(NV), NV, SPMM_ROWS_PASS);                          \
    }
SPMM_RB(1)
SPMM_RB(2)
SPMM_RB(3)
SPMM_RB(4)
SPMM_RB(5)
SPMM_RB(6)
SPMM_RB(7)
SPMM_RB(8)
static const spmm_rows_fn spmm_rb_tab[9] = {NULL,      spmm_rb1, spmm_rb2, spmm_rb3, spmm_rb4,
                                            spmm_rb5, spmm_rb6, spmm_rb7, spmm_rb8};

static void spmm_rows_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx,
                             const float *val, const float *X, ptrdiff_t ldxr, int nrows, int n,
                             float *Y, ptrdiff_t ldy, ptrdiff_t ldyr, const float *bias,
                             int accumulate, const st_epi_op *ops, int n_ops) {
    if (n < 1 || n > 128 || nrows < 1) return;
    const int nv = (n + 15) / 16, nr = ST_SPARSE_ROWS_PER_CALL(nv);
    const __mmask16 km = tail_mask(n - 16 * (nv - 1));
    for (int j0 = 0; j0 < nrows; j0 += nr)
        spmm_rb_tab[nv](r0, r1, ptr, idx, val, X + (ptrdiff_t)j0 * ldxr, ldxr, ST_MIN(nr, nrows - j0),
                        Y + (ptrdiff_t)j0 * ldyr, ldy, ldyr, bias, accumulate, km, ops, n_ops,
                        (size_t)j0 * ldyr);
}

AI float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

/* One nonzero's partial dot product: into its 16-lane slot of part, or summed into dval. */
AI void sd_put(float *dval, float *part, int e, int e0, __m512 s) {
    if (part) {
        float *p = part + (size_t)(e - e0) * 16;
        _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), s));
    } else {
        dval[e] += hsum(s);
    }
}

/* Full 256-column tiles with dY in registers. */
AI void sddmm_full(const int XM, int r0, int r1, const int32_t *ptr, const int32_t *idx,
                   const float *dY, ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, float *dval,
                   const uint8_t *cls, const uint16_t *xm, int nvec, float *part) {
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        __m512 dv[16];
#pragma GCC unroll 16
        for (int v = 0; v < 16; v++) dv[v] = _mm512_loadu_ps(d + 16 * v);
        for (int e = ptr[r]; e < ptr[r + 1]; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx_;
            const uint16_t *mr = XM ? xm + (size_t)cls[e] * nvec : NULL;
            __m512 s[4];
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) s[u] = _mm512_mul_ps(dv[u], ldx(XM, 0, u, 16, x, mr, 0));
#pragma GCC unroll 16
            for (int v = 4; v < 16; v++)
                s[v & 3] = _mm512_fmadd_ps(dv[v], ldx(XM, 0, v, 16, x, mr, 0), s[v & 3]);
            sd_put(dval, part, e, ptr[r0],
                   _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3])));
        }
    }
}

/* Up to 128 columns (NV vectors, the last masked by km) with dY in registers. */
AI void sddmm_small(const int NV, const int XM, int r0, int r1, const int32_t *ptr,
                    const int32_t *idx, const float *dY, ptrdiff_t ldy, const float *X,
                    ptrdiff_t ldx_, float *dval, const uint8_t *cls, const uint16_t *xm,
                    int nvec, float *part, __mmask16 km) {
    for (int r = r0; r < r1; r++) {
        const float *d = dY + (ptrdiff_t)(r - r0) * ldy;
        __m512 dv[8];
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            dv[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? km : (__mmask16)0xFFFF, d + 16 * v);
        int e = ptr[r];
        const int e1 = ptr[r + 1];
        while (XM && e < e1) { /* runs of one tap class: masks loaded once per run */
            const int cl = cls[e];
            const uint16_t *m0 = xm + (size_t)cl * nvec;
            __mmask16 mk[8];
#pragma GCC unroll 8
            for (int v = 0; v < NV; v++) mk[v] = (__mmask16)m0[v];
            do {
                const float *x = X + (ptrdiff_t)idx[e] * ldx_;
                __m512 s0 = _mm512_mul_ps(dv[0], _mm512_maskz_loadu_ps(mk[0], x));
                __m512 s1 = _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int v = 1; v < NV; v++) {
                    const __m512 t = _mm512_maskz_loadu_ps(mk[v], x + 16 * v);
                    if (v & 1) s1 = _mm512_fmadd_ps(dv[v], t, s1);
                    else s0 = _mm512_fmadd_ps(dv[v], t, s0);
                }
                sd_put(dval, part, e, ptr[r0], _mm512_add_ps(s0, s1));
                e++;
            } while (e < e1 && cls[e] == cl);
        }
        for (; e < e1; e++) {
            const float *x = X + (ptrdiff_t)idx[e] * ldx_;
            const uint16_t *mr = XM ? xm + (size_t)cls[e] * nvec : NULL;
            __m512 s0 = _mm512_mul_ps(dv[0], ldx(XM, NV == 1, 0, NV, x, mr, km));
            __m512 s1 = _mm512_setzero_ps();
#pragma GCC unroll 8
            for (int v = 1; v < NV; v++) {
                const __m512 t = ldx(XM, 1, v, NV, x, mr, km);
                if (v & 1) s1 = _mm512_fmadd_ps(dv[v], t, s1);
                else s0 = _mm512_fmadd_ps(dv[v], t, s0);
            }
            sd_put(dval, part, e, ptr[r0], _mm512_add_ps(s0, s1));
        }
    }
}

#define SD_ARGS                                                                                \
    int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY, ptrdiff_t ldy,    \
        const float *X, ptrdiff_t ldx_, float *dval, const uint8_t *cls, const uint16_t *xm,   \
        int nvec, float *part, __mmask16 km
#define SD_PASS r0, r1, ptr, idx, dY, ldy, X, ldx_, dval, cls, xm, nvec, part, km
typedef void (*sd_fn)(SD_ARGS);
#define SD_VARIANTS(XM)                                                                        \
    static void sd1_##XM(SD_ARGS) { sddmm_small(1, XM, SD_PASS); }                              \
    static void sd2_##XM(SD_ARGS) { sddmm_small(2, XM, SD_PASS); }                              \
    static void sd3_##XM(SD_ARGS) { sddmm_small(3, XM, SD_PASS); }                              \
    static void sd4_##XM(SD_ARGS) { sddmm_small(4, XM, SD_PASS); }                              \
    static void sd5_##XM(SD_ARGS) { sddmm_small(5, XM, SD_PASS); }                              \
    static void sd6_##XM(SD_ARGS) { sddmm_small(6, XM, SD_PASS); }                              \
    static void sd7_##XM(SD_ARGS) { sddmm_small(7, XM, SD_PASS); }                              \
    static void sd8_##XM(SD_ARGS) { sddmm_small(8, XM, SD_PASS); }                              \
    static const sd_fn sd_tab_##XM[9] = {NULL,     sd1_##XM, sd2_##XM, sd3_##XM, sd4_##XM,     \
                                         sd5_##XM, sd6_##XM, sd7_##XM, sd8_##XM};
SD_VARIANTS(0)
SD_VARIANTS(1)

static void sddmm_full_0(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                         ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, float *dval,
                         const uint8_t *cls, const uint16_t *xm, int nvec, float *part) {
    sddmm_full(0, r0, r1, ptr, idx, dY, ldy, X, ldx_, dval, cls, xm, nvec, part);
}
static void sddmm_full_1(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                         ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, float *dval,
                         const uint8_t *cls, const uint16_t *xm, int nvec, float *part) {
    sddmm_full(1, r0, r1, ptr, idx, dY, ldy, X, ldx_, dval, cls, xm, nvec, part);
}

/* dY in registers throughout: tiles of 256 while at least 320 columns are left, then
 * tiles of up to 128 (the last one masked). */
static void sddmm_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *dY,
                         ptrdiff_t ldy, const float *X, ptrdiff_t ldx_, int n, float *dval,
                         const uint8_t *cls, const uint16_t *xmask, float *part) {
    const int nvec = (n + 15) / 16;
    const sd_fn *tab = xmask ? sd_tab_1 : sd_tab_0;
    int j0 = 0;
    for (; !xmask && n - j0 >= 320; j0 += 256) {
        if (xmask)
            sddmm_full_1(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx_, dval, cls,
                         xmask + j0 / 16, nvec, part);
        else sddmm_full_0(r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx_, dval, NULL, NULL, 0, part);
    }
    for (; j0 < n; j0 += 128) {
        const int left = ST_MIN(128, n - j0), nv = (left + 15) / 16;
        tab[nv](r0, r1, ptr, idx, dY + j0, ldy, X + j0, ldx_, dval, cls,
                xmask ? xmask + j0 / 16 : NULL, nvec, part, tail_mask(left - 16 * (nv - 1)));
    }
}

static void int2_add_avx512(float *dst, const float *s0, const float *s1, int n) {
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int i = 0; i < n; i += 16) {
        const int left = n - i;
        const __mmask16 ks = tail_mask(left);
        const __mmask16 ka = tail_mask(2 * left), kb = tail_mask(2 * left - 16 > 0 ? 2 * left - 16 : 0);
        const __m512 a = _mm512_maskz_loadu_ps(ks, s0 + i), b = _mm512_maskz_loadu_ps(ks, s1 + i);
        float *d = dst + 2 * i;
        _mm512_mask_storeu_ps(d, ka, _mm512_add_ps(_mm512_maskz_loadu_ps(ka, d),
                                                   _mm512_permutex2var_ps(a, il, b)));
        _mm512_mask_storeu_ps(d + 16, kb, _mm512_add_ps(_mm512_maskz_loadu_ps(kb, d + 16),
                                                        _mm512_permutex2var_ps(a, ih, b)));
    }
}

/* 16 outputs a step: the even and odd source columns of 32 floats, the odd ones also
 * shifted up a lane (with the last step's top lane) for src[2j - 1]. Lanes past Q are
 * stored as zeros, so whole aligned vectors cover the row up to Wv. */
static void taps3_avx512(float *d0, float *d1, float *d2, const float *src, int W, int Q, int Wv) {
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    __m512 prev = _mm512_setzero_ps();
    for (int j = 0; j < Wv; j += 16) {
        const int left = W - 2 * j; /* source floats left from 2j */
        const __mmask16 ka = tail_mask(left > 0 ? left : 0), kb = tail_mask(left > 16 ? left - 16 : 0);
        const __m512 a = _mm512_maskz_loadu_ps(ka, src + 2 * j), b = _mm512_maskz_loadu_ps(kb, src + 2 * j + 16);
        const __mmask16 kq = tail_mask(Q - j > 0 ? Q - j : 0);
        const __m512 odd = _mm512_permutex2var_ps(a, io, b);
        _mm512_storeu_ps(d1 + j, _mm512_maskz_mov_ps(kq, _mm512_permutex2var_ps(a, ie, b)));
        _mm512_storeu_ps(d2 + j, _mm512_maskz_mov_ps(kq, odd));
        _mm512_storeu_ps(d0 + j, _mm512_maskz_mov_ps(kq, _mm512_castsi512_ps(_mm512_alignr_epi32(
                                    _mm512_castps_si512(odd), _mm512_castps_si512(prev), 15))));
        prev = odd;
    }
}

void st_sparse_kernels_avx512(st_sparse_kernels *k) {
    k->isa = ST_ISA_AVX512;
    k->spmm = spmm_avx512;
    k->spmm_rows = spmm_rows_avx512;
    k->sddmm = sddmm_avx512;
    k->int2_add = int2_add_avx512;
    k->taps3 = taps3_avx512;
    st_sparse_quads_avx512(k);
}
