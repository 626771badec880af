/* Inference epilogue kernels (act_kernels.h): every ISA's st_epi_rows against the
 * definitions, op by op and chained, on row lengths 0-40 (every vector tail) and past the
 * AVX-512 kernel's 8-vector blocks (127-299: a block, then vectors, then a tail), several
 * rows with distinct strides, in place and copying, with NaN, infinities, -0 and values
 * outside exp's range. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "act_kernels.h"
#include "st_cpu.h"

static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

/* The definition of one op (activation.c's formulas). */
static float apply(const st_epi_op *op, float v, float addend) {
    switch (op->kind) {
    case ST_EPI_OP_RELU: return v > 0.0f ? v : 0.0f;
    case ST_EPI_OP_LEAKYRELU: return v > 0.0f ? v : v * op->a;
    case ST_EPI_OP_SILU: return v * sigm(v);
    case ST_EPI_OP_SIGMOID: return sigm(v);
    case ST_EPI_OP_CLIP: v = v < op->a ? op->a : v; return v > op->b ? op->b : v;
    case ST_EPI_OP_ADD: return v + addend;
    default: ck_abort_msg("unknown op %d", op->kind);
    }
    return v;
}

/* Equal, both NaN, or (exp-based ops) within 2e-6 of max(1, |want|): the inputs are of
 * order 1-10 and an ADD after SiLU may cancel most of the value. */
static int close_enough(float got, float want, int approx) {
    if (isnan(want)) return isnan(got);
    if (!approx) return memcmp(&got, &want, sizeof got) == 0; /* bit-exact: -0 included */
    if (isinf(want)) return got == want;
    return fabsf(got - want) <= 2e-6f * fmaxf(1.0f, fabsf(want));
}

/* Beyond the exp's range both ways, too: 1e30 and -89 (whose exp overflows) */
static const float specials[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f, -1e-40f, 88.0f, -100.0f,
                                 1e30f, -1e30f, -89.0f, 100.5f};
#define N_SPECIALS ((int)(sizeof specials / sizeof specials[0]))

START_TEST(test_epi_rows_match_definitions) {
    static const st_epi_op chains[][ST_EPI_MAX_OPS] = {
        {{ST_EPI_OP_RELU, 0, 0, NULL}},
        {{ST_EPI_OP_LEAKYRELU, 0.1f, 0, NULL}},
        {{ST_EPI_OP_SILU, 0, 0, NULL}},
        {{ST_EPI_OP_SIGMOID, 0, 0, NULL}},
        {{ST_EPI_OP_CLIP, -0.5f, 2.0f, NULL}},
        {{ST_EPI_OP_ADD, 0, 0, NULL}, {ST_EPI_OP_RELU, 0, 0, NULL}}, /* ResNet's add, relu */
        {{ST_EPI_OP_SILU, 0, 0, NULL}, {ST_EPI_OP_ADD, 0, 0, NULL}}, /* YOLO's silu, add */
        {{ST_EPI_OP_ADD, 0, 0, NULL}, {ST_EPI_OP_LEAKYRELU, 0.2f, 0, NULL},
         {ST_EPI_OP_CLIP, -1.0f, 6.0f, NULL}, {ST_EPI_OP_ADD, 0, 0, NULL}},
    };
    static const int n_ops[] = {1, 1, 1, 1, 1, 2, 2, 4};
    const int chain = _i;
    st_epi_rows_fn fns[3] = {st_epi_rows_scalar, NULL, NULL};
    const char *names[3] = {"scalar", "avx2", "avx512"};
    if (st_cpu_best_isa() >= ST_ISA_AVX2) fns[1] = st_epi_rows_avx2;
    if (st_cpu_best_isa() >= ST_ISA_AVX512) fns[2] = st_epi_rows_avx512;
    int approx = 0;
    for (int k = 0; k < n_ops[chain]; k++)
        approx |= chains[chain][k].kind == ST_EPI_OP_SILU || chains[chain][k].kind == ST_EPI_OP_SIGMOID;
    /* 11 rows: AVX-512 takes rows of up to 64 floats 8, 4 or 2 to a block, plus the rest */
    const int rows = 11, ldx = 301, ldy = 299; /* strides apart, and not multiples of 16 */
    static const int long_n[] = {47, 48, 49, 63, 64, 65, 127, 128, 129, 143, 255, 256, 270, 299};
    const int n_long = (int)(sizeof long_n / sizeof long_n[0]);
    static float x[11 * 301], res[11 * 299], res2[11 * 299], y[11 * 299], want[11 * 299];
    uint32_t s = 12345u + (uint32_t)chain;
    for (int f = 0; f < 3; f++) {
        if (!fns[f]) continue;
        for (int ni = 0; ni <= 40 + n_long; ni++)
            for (int inplace = 0; inplace < 2; inplace++) {
                const int n = ni <= 40 ? ni : long_n[ni - 41];
                for (int i = 0; i < rows * ldx; i++) {
                    s = s * 1664525u + 1013904223u;
                    x[i] = (float)((s >> 8) % 20001) / 1000.0f - 10.0f;
                    if (s % 13 == 0) x[i] = specials[(s >> 4) % N_SPECIALS];
                }
                /* each special at least once where row 0 is N_SPECIALS long or more */
                for (int i = 0; i < N_SPECIALS; i++) x[i] = specials[i];
                for (int i = 0; i < rows * ldy; i++) {
                    s = s * 1664525u + 1013904223u;
                    res[i] = (float)((s >> 8) % 2001) / 1000.0f - 1.0f;
                    res2[i] = (float)((s >> 3) % 2001) / 500.0f - 2.0f;
                    y[i] = -7.0f; /* sentinel outside the rows' n columns */
                }
                st_epi_op ops[ST_EPI_MAX_OPS];
                int adds = 0;
                for (int k = 0; k < n_ops[chain]; k++) {
                    ops[k] = chains[chain][k];
                    if (ops[k].kind == ST_EPI_OP_ADD) ops[k].src = adds++ ? res2 : res;
                }
                const float bias = n % 3 == 0 ? 0.0f : 0.25f;
                float *in = x;
                ptrdiff_t ld_in = ldx;
                if (inplace) { /* y holds the input */
                    for (int r = 0; r < rows; r++) memcpy(y + r * ldy, x + r * ldx, sizeof(float) * (size_t)n);
                    in = y, ld_in = ldy;
                }
                for (int r = 0; r < rows; r++)
                    for (int i = 0; i < ldy; i++) {
                        float v = i < n ? x[r * ldx + i] + bias : -7.0f;
                        if (i < n)
                            for (int k = 0; k < n_ops[chain]; k++)
                                v = apply(&ops[k], v, ops[k].src ? ops[k].src[r * ldy + i] : 0.0f);
                        want[r * ldy + i] = v;
                    }
                fns[f](y, ldy, in, ld_in, rows, (size_t)n, bias, ops, n_ops[chain]);
                int i = 0; /* the first bad element (one assertion per case: check's are slow) */
                while (i < rows * ldy && close_enough(y[i], want[i], approx && i % ldy < n)) i++;
                if (i < rows * ldy)
                    ck_assert_msg(0,
                                  "%s chain %d n %d %s: y[%d] = %g, want %g (x %g)", names[f], chain, n,
                                  inplace ? "in place" : "copy", i, y[i], want[i],
                                  i % ldy < n ? x[i / ldy * ldx + i % ldy] : 0.0f);
            }
    }
}
END_TEST

Suite *epilogue_suite(void) {
    Suite *s = suite_create("epilogue");
    TCase *tc = tcase_create("rows");
    tcase_add_loop_test(tc, test_epi_rows_match_definitions, 0, 8);
    suite_add_tcase(s, tc);
    return s;
}
