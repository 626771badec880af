/* The row kernels (spmm_rows, and spmm4_rows on quads) of every ISA that has them, against
 * double loops: image rows of up to 128 columns, several rows a call, written in place or
 * added to what Y holds (a channel block after the first), with and without a bias, and
 * nothing written outside the rows and columns asked for. (The convolutions that use them
 * are checked in test_sparse_conv.c.) */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "st_ops_test_util.h"
#include "st_sparse.h"

/* Random pattern over `units` rows (output channels, or quads) of `cols` input planes:
 * ptr, idx (the plane's offset in X, planes `pstride` floats apart) and per entry `per`
 * values (1, or 4 for a quad's rows). Unit 0 is empty when there are more than 2. */
typedef struct {
    int units, nnz;
    int32_t *ptr, *idx;
    float *val;
} rpat;

static rpat make_pat(int units, int cols, int per, double density, int pstride, st_rng *r) {
    rpat p = {.units = units};
    p.ptr = malloc(sizeof(int32_t) * (units + 1));
    p.idx = malloc(sizeof(int32_t) * ((size_t)units * cols + 1));
    p.val = malloc(sizeof(float) * ((size_t)units * cols * per + 1));
    int e = 0;
    for (int u = 0; u < units; u++) {
        p.ptr[u] = e;
        for (int j = 0; j < cols; j++) {
            if ((units > 2 && u == 0) || st_rng_uniform(r) >= density) continue;
            p.idx[e] = j * pstride;
            for (int i = 0; i < per; i++) p.val[(size_t)e * per + i] = 2.0f * st_rng_uniform(r) - 1.0f;
            e++;
        }
    }
    p.ptr[units] = e;
    p.nnz = e;
    return p;
}

static void free_pat(rpat *p) { free(p->ptr), free(p->idx), free(p->val); }

/* One call of fn over rows [r0, K) checked against the reference; per = 4: quads. */
static void check_rows(st_spmm_rows_fn fn, const char *name, int per, int K, int r0, int cols,
                       double density, int n, int nrows, int accumulate, int with_bias, st_rng *r) {
    const ptrdiff_t ldxr = n + 3, ldyr = n + 5, ldy = nrows * ldyr + 2;
    const int pstride = (int)(nrows * ldxr + 4);
    rpat p = make_pat(K / per, cols, per, density, pstride, r);
    float *X = ot_rand((size_t)cols * pstride, -1, 1, r), *bias = ot_rand(K, -1, 1, r);
    float *Y0 = ot_rand((size_t)K * ldy, -1, 1, r), *Y = ot_copy(Y0, (size_t)K * ldy);
    fn(r0, K, p.ptr, p.idx, p.val, X, ldxr, nrows, n, Y + (size_t)r0 * ldy, ldy, ldyr,
       with_bias ? bias : NULL, accumulate, NULL, 0);
    for (int k = 0; k < K; k++)
        for (ptrdiff_t i = 0; i < ldy; i++) {
            const ptrdiff_t j = i / ldyr, q = i % ldyr;
            double want = Y0[(size_t)k * ldy + i];
            if (k >= r0 && j < nrows && q < n) {
                const int u = k / per;
                double s = (accumulate ? want : 0.0) + (with_bias ? bias[k] : 0.0);
                for (int e = p.ptr[u]; e < p.ptr[u + 1]; e++)
                    s += (double)p.val[(size_t)e * per + k % per] * X[p.idx[e] + j * ldxr + q];
                want = s;
            }
            const double got = Y[(size_t)k * ldy + i];
            if (!(fabs(got - want) <= 1e-5 * (1 + fabs(want))))
                ck_abort_msg("%s: K %d from %d, n %d, %d rows, accumulate %d, bias %d: channel %d row %td "
                             "col %td is %g, want %g", name, K, r0, n, nrows, accumulate, with_bias, k, j, q,
                             got, want);
        }
    free(X), free(bias), free(Y0), free(Y);
    free_pat(&p);
}

START_TEST(test_rows_kernels_match_reference) {
    static const int n_l[] = {1, 7, 16, 17, 40, 100, 128}, rows_l[] = {1, 3, 9};
    static const double dens[] = {0.0, 0.3, 1.0};
    st_rng r;
    st_rng_seed(&r, 21);
    int tested = 0;
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_best_isa(); isa++) {
        st_sparse_kernels k;
        st_sparse_kernels_init(&k, (st_isa)isa);
        for (int quads = 0; quads < 2; quads++) {
            st_spmm_rows_fn fn = quads ? k.spmm4_rows : k.spmm_rows;
            if (!fn) continue; /* this ISA stages its rows instead */
            tested++;
            const int per = quads ? 4 : 1;
            for (int a = 0; a < 7; a++)
                for (int b = 0; b < 3; b++)
                    for (int d = 0; d < 3; d++)
                        for (int acc = 0; acc < 2; acc++) {
                            const int K = quads ? 12 : 7, r0 = acc ? per : 0;
                            check_rows(fn, st_isa_name(k.isa), per, K, r0, 5, dens[d], n_l[a], rows_l[b],
                                       acc, (a + d) % 2, &r);
                        }
        }
    }
    /* AVX-512 has both */
    if (st_cpu_best_isa() >= ST_ISA_AVX512) ck_assert_int_ge(tested, 2);
}
END_TEST

Suite *sparse_rows_suite(void) {
    Suite *s = suite_create("sparse_rows");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_rows_kernels_match_reference);
    suite_add_tcase(s, tc);
    return s;
}
