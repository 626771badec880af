/* The quad kernel (ST_CSR_QUADS), AVX-512: four output channels that share one pattern
 * of nonzeros (a model pruned with mask_type [4, 1]) run together, so each vector of X
 * loaded serves four FMAs instead of one. The single-row spmm is bound by those loads
 * (one per FMA, half of them split across cache lines); four FMAs per load leave it
 * bound by the FMAs.
 * A tile is 4 rows x NV vectors (up to 6: 24 accumulators, 6 loaded vectors and the
 * broadcasts fill the 32 registers). Direct mode's masked loads take one mask register
 * per vector (k1-k6), loaded once per run of one tap class as spmm does. */
#include <immintrin.h>
#include <stddef.h>

#include "act_vec_avx512.h"
#include "st_sparse.h"

#define AI __attribute__((always_inline)) static inline
#define QNV 6 /* vectors per full tile */

AI __mmask16 q_tail_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

/* One quad entry e: NV vectors of X at x0 (under mk), times the four values at val[4e]. */
AI void quad_fma(const int NV, __m512 *a, const float *x0, const float *w, const __mmask16 *mk) {
    __m512 xv[QNV];
#pragma GCC unroll 6
    for (int v = 0; v < NV; v++) xv[v] = _mm512_maskz_loadu_ps(mk[v], x0 + 16 * v);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512 wj = _mm512_set1_ps(w[j]);
#pragma GCC unroll 6
        for (int v = 0; v < NV; v++) a[j * NV + v] = _mm512_fmadd_ps(wj, xv[v], a[j * NV + v]);
    }
}

/* The four rows' accumulators of quad q (PER vectors each) set to their biases. */
AI void quad_bias(const int PER, __m512 *a, const float *bias, int q) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512 vb = _mm512_set1_ps(bias ? bias[4 * q + j] : 0.0f);
#pragma GCC unroll 6
        for (int i = 0; i < PER; i++) a[j * PER + i] = vb;
    }
}

/* Quads [q0, q1) over NV vectors of columns (the last under km). XM: X loads under the
 * tap classes' lane masks (xm: this tile's first vector, row stride nvec). */
AI void quad_tile(const int NV, const int XM, int q0, int q1, const int32_t *ptr, const int32_t *idx,
                  const float *val, const float *X, float *Y, ptrdiff_t ldy, const float *bias,
                  int accumulate, __mmask16 km, const uint8_t *cls, const uint16_t *xm, int nvec,
                  const st_epi_op *ops, int n_ops, size_t eo) {
    __mmask16 em[QNV];
#pragma GCC unroll 6
    for (int v = 0; v < NV; v++) em[v] = v == NV - 1 ? km : (__mmask16)0xFFFF;
    const int sh = XM ? st_sparse_run_shift(xm, NV) : 0; /* runs of one tap column where row 0 allows */
    for (int q = q0; q < q1; q++) {
        float *y = Y + (ptrdiff_t)(q - q0) * 4 * ldy;
        __m512 a[4 * QNV];
        quad_bias(NV, a, bias, q);
        if (accumulate)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
#pragma GCC unroll 6
                for (int v = 0; v < NV; v++)
                    a[j * NV + v] = _mm512_add_ps(a[j * NV + v], _mm512_maskz_loadu_ps(em[v], y + j * ldy + 16 * v));
        int e = ptr[q];
        const int e1 = ptr[q + 1];
        if (XM) {
            while (e < e1) { /* runs of one mask: loaded once */
                const int cl = cls[e] >> sh;
                const uint16_t *m0 = xm + (size_t)cls[e] * nvec;
                __mmask16 mk[QNV];
#pragma GCC unroll 6
                for (int v = 0; v < NV; v++) mk[v] = (__mmask16)(m0[v] & em[v]);
                do {
                    quad_fma(NV, a, X + idx[e], val + 4 * (size_t)e, mk);
                    e++;
                } while (e < e1 && cls[e] >> sh == cl);
            }
        } else {
            for (; e < e1; e++) quad_fma(NV, a, X + idx[e], val + 4 * (size_t)e, em);
        }
        /* row by row, each stored before the next one's ops: the ops over all 24
         * accumulators at once spilled (SiLU's temporaries and constants) and ran the
         * 1x1 32 -> 32 layer at 80x80 2.5x slower than single rows */
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (n_ops) st_epi_block16(a + j * NV, 1, NV, 1, ops, n_ops, ((size_t)(q - q0) * 4 + j) * (size_t)ldy + eo, 0, em);
#pragma GCC unroll 6
            for (int v = 0; v < NV; v++) { /* a masked store does not forward: full ones plain */
                float *p = y + j * ldy + 16 * v;
                if (v == NV - 1 && km != 0xFFFF) _mm512_mask_storeu_ps(p, km, a[j * NV + v]);
                else _mm512_storeu_ps(p, a[j * NV + v]);
            }
        }
    }
}

#define QUAD_ARGS                                                                               \
    int q0, int q1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,   \
        float *Y, ptrdiff_t ldy, const float *bias, int accumulate, __mmask16 km,               \
        const uint8_t *cls, const uint16_t *xm, int nvec, const st_epi_op *ops, int n_ops, size_t eo
#define QUAD_PASS q0, q1, ptr, idx, val, X, Y, ldy, bias, accumulate, km, cls, xm, nvec, ops, n_ops, eo
typedef void (*quad_fn)(QUAD_ARGS);
#define QUAD_VARIANTS(XM)                                                                       \
    static void quad1_##XM(QUAD_ARGS) { quad_tile(1, XM, QUAD_PASS); }                          \
    static void quad2_##XM(QUAD_ARGS) { quad_tile(2, XM, QUAD_PASS); }                          \
    static void quad3_##XM(QUAD_ARGS) { quad_tile(3, XM, QUAD_PASS); }                          \
    static void quad4_##XM(QUAD_ARGS) { quad_tile(4, XM, QUAD_PASS); }                          \
    static void quad5_##XM(QUAD_ARGS) { quad_tile(5, XM, QUAD_PASS); }                          \
    static void quad6_##XM(QUAD_ARGS) { quad_tile(6, XM, QUAD_PASS); }                          \
    static const quad_fn quad_tab_##XM[QNV + 1] = {NULL, quad1_##XM, quad2_##XM, quad3_##XM,     \
                                                   quad4_##XM, quad5_##XM, quad6_##XM};
QUAD_VARIANTS(0)
QUAD_VARIANTS(1)

/* spmm's contract over rows [r0, r1) (multiples of 4) of a quad CSR: ptr indexed by
 * quad (r / 4), idx the X offsets of each entry, val four values per entry (rows
 * 4q .. 4q + 3). Column tiles outer, quads inner: a tile's X stays in L1 for all quads. */
static void spmm4_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                         const float *X, ptrdiff_t ldx, int n, float *Y, ptrdiff_t ldy,
                         const float *bias, int accumulate, const uint8_t *cls,
                         const uint16_t *xmask, const st_epi_op *ops, int n_ops) {
    (void)ldx; /* the quad CSR's offsets are premultiplied (ldx = 1) */
    const quad_fn *tab = xmask ? quad_tab_1 : quad_tab_0;
    const int nvec = (n + 15) / 16, q0 = r0 / 4, q1 = r1 / 4;
    for (int j0 = 0; j0 < n; j0 += 16 * QNV) {
        const int left = n - j0, nv = left >= 16 * QNV ? QNV : (left + 15) / 16;
        tab[nv](q0, q1, ptr, idx, val, X + j0, Y + j0, ldy, bias, accumulate,
                q_tail_mask(left - 16 * (nv - 1)), cls, xmask ? xmask + j0 / 16 : NULL, nvec, ops, n_ops,
                (size_t)j0);
    }
}

/* spmm_rows' contract on quads: NR image rows of NV vectors (the last under km) of
 * quads [q0, q1); row rr reads X at idx + rr*ldxr and writes Y + rr*ldyr; rows rr >= rv
 * repeat row rv - 1's loads and are not stored. NR * NV <= 6: 24 accumulators. */
AI void quad_rblock(const int NR, const int NV, int q0, int q1, const int32_t *ptr, const int32_t *idx,
                    const float *val, const float *X, ptrdiff_t ldxr, int rv, float *Y, ptrdiff_t ldy,
                    ptrdiff_t ldyr, const float *bias, int accumulate, __mmask16 km, const st_epi_op *ops,
                    int n_ops, size_t eo) {
    ptrdiff_t ro[QNV];
    __mmask16 mk[QNV];
#pragma GCC unroll 6
    for (int rr = 0; rr < NR; rr++) ro[rr] = (ptrdiff_t)(rr < rv ? rr : rv - 1) * ldxr;
#pragma GCC unroll 6
    for (int v = 0; v < NV; v++) mk[v] = v == NV - 1 ? km : (__mmask16)0xFFFF;
    for (int q = q0; q < q1; q++) {
        float *y = Y + (ptrdiff_t)(q - q0) * 4 * ldy;
        __m512 a[4 * QNV];
        quad_bias(NR * NV, a, bias, q);
        if (accumulate)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
#pragma GCC unroll 6
                for (int rr = 0; rr < NR; rr++)
#pragma GCC unroll 6
                    for (int v = 0; v < NV; v++) /* rows past rv: any value (not stored) */
                        a[(j * NR + rr) * NV + v] = _mm512_add_ps(
                            a[(j * NR + rr) * NV + v],
                            _mm512_maskz_loadu_ps(rr < rv ? mk[v] : 0, y + j * ldy + rr * ldyr + 16 * v));
        for (int e = ptr[q]; e < ptr[q + 1]; e++) {
            const float *x0 = X + idx[e], *w = val + 4 * (size_t)e;
            __m512 xv[QNV];
#pragma GCC unroll 6
            for (int rr = 0; rr < NR; rr++)
#pragma GCC unroll 6
                for (int v = 0; v < NV; v++) {
                    const float *p = x0 + ro[rr] + 16 * v;
                    xv[rr * NV + v] = v == NV - 1 ? _mm512_maskz_loadu_ps(km, p) : _mm512_loadu_ps(p);
                }
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m512 wj = _mm512_set1_ps(w[j]);
#pragma GCC unroll 6
                for (int i = 0; i < NR * NV; i++) a[j * NR * NV + i] = _mm512_fmadd_ps(wj, xv[i], a[j * NR * NV + i]);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) { /* channel by channel, as quad_tile */
            __m512 *aj = a + j * NR * NV;
            if (n_ops) st_epi_block16(aj, NR, NV, rv, ops, n_ops, ((size_t)(q - q0) * 4 + j) * (size_t)ldy + eo, (size_t)ldyr, mk);
#pragma GCC unroll 6
            for (int rr = 0; rr < NR; rr++)
                if (rr < rv)
#pragma GCC unroll 6
                    for (int v = 0; v < NV; v++) {
                        float *p = y + j * ldy + rr * ldyr + 16 * v;
                        if (v == NV - 1) _mm512_mask_storeu_ps(p, km, aj[rr * NV + v]);
                        else _mm512_storeu_ps(p, aj[rr * NV + v]);
                    }
        }
    }
}

#define QROWS_ARGS                                                                              \
    int q0, int q1, const int32_t *ptr, const int32_t *idx, const float *val, const float *X,   \
        ptrdiff_t ldxr, int rv, float *Y, ptrdiff_t ldy, ptrdiff_t ldyr, const float *bias,     \
        int accumulate, __mmask16 km, const st_epi_op *ops, int n_ops, size_t eo
#define QROWS_PASS q0, q1, ptr, idx, val, X, ldxr, rv, Y, ldy, ldyr, bias, accumulate, km, ops, n_ops, eo
typedef void (*qrows_fn)(QROWS_ARGS);
#define QROWS(NV) \
    static void qrows##NV(QROWS_ARGS) { quad_rblock(QNV / NV, NV, QROWS_PASS); }
QROWS(1)
QROWS(2)
QROWS(3)
QROWS(4)
QROWS(5)
QROWS(6)
static const qrows_fn qrows_tab[QNV + 1] = {NULL, qrows1, qrows2, qrows3, qrows4, qrows5, qrows6};

/* Rows of n <= 128 columns: up to 96 (6 vectors) per pass, the rest in a second one. */
static void spmm4_rows_avx512(int r0, int r1, const int32_t *ptr, const int32_t *idx, const float *val,
                              const float *X, ptrdiff_t ldxr, int nrows, int n, float *Y, ptrdiff_t ldy,
                              ptrdiff_t ldyr, const float *bias, int accumulate, const st_epi_op *ops,
                              int n_ops) {
    if (n < 1 || n > 128 || nrows < 1) return;
    for (int c0 = 0; c0 < n; c0 += 16 * QNV) {
        const int w = ST_MIN(n - c0, 16 * QNV), nv = (w + 15) / 16, nr = QNV / nv;
        const __mmask16 km = q_tail_mask(w - 16 * (nv - 1));
        for (int j0 = 0; j0 < nrows; j0 += nr)
            qrows_tab[nv](r0 / 4, r1 / 4, ptr, idx, val, X + (ptrdiff_t)j0 * ldxr + c0, ldxr, ST_MIN(nr, nrows - j0),
                          Y + (ptrdiff_t)j0 * ldyr + c0, ldy, ldyr, bias, accumulate, km, ops, n_ops,
                          (size_t)j0 * ldyr + (size_t)c0);
    }
}

void st_sparse_quads_avx512(st_sparse_kernels *k) {
    k->spmm4 = spmm4_avx512;
    k->spmm4_rows = spmm4_rows_avx512;
}
