#include "st_cpu.h"

#include <omp.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

st_isa st_cpu_best_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return ST_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ST_ISA_AVX2;
    return ST_ISA_SCALAR;
}

st_isa st_cpu_select_isa(void) {
    st_isa best = st_cpu_best_isa();
    const char *env = getenv("ST_ISA");
    if (!env) return best;
    st_isa want = best;
    if (strcmp(env, "scalar") == 0) want = ST_ISA_SCALAR;
    else if (strcmp(env, "avx2") == 0) want = ST_ISA_AVX2;
    else if (strcmp(env, "avx512") == 0) want = ST_ISA_AVX512;
    return want < best ? want : best;
}

int st_cpu_fma512_split(void) {
    const char *env = getenv("ST_FMA512_SPLIT");
    if (env && (env[0] == '0' || env[0] == '1') && !env[1]) return env[0] == '1';
    if (st_cpu_select_isa() < ST_ISA_AVX512) return 0; /* the AVX2 kernels: not measured */
    return __builtin_cpu_is("amdfam19h") != 0; /* with AVX-512: Zen 4 (Zen 3 has none) */
}

const char *st_isa_name(st_isa isa) {
    switch (isa) {
    case ST_ISA_AVX512: return "avx512";
    case ST_ISA_AVX2: return "avx2";
    default: return "scalar";
    }
}

void st_kernels_init(st_kernels *k, st_isa isa) {
    st_isa best = st_cpu_best_isa();
    if (isa > best) isa = best;
    if (isa == ST_ISA_AVX512) st_kernels_avx512(k);
    else if (isa == ST_ISA_AVX2) st_kernels_avx2(k);
    else st_kernels_scalar(k);
    k->isa = isa;
}

static int cmp_dbl(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double st_thread_roundtrip_ns(int rounds) {
    enum { BATCHES = 9 };
    /* the flag alone on its cache line: nothing else moves with it */
    struct { alignas(64) atomic_int v; char pad[60]; } flag = {0};
    double ns[BATCHES] = {0};
    int two = 0;
    if (rounds < 1) return 0.0;
#pragma omp parallel num_threads(2)
    {
        const int me = omp_get_thread_num();
        if (omp_get_num_threads() == 2) {
            if (me == 0) two = 1;
            int seq = 0;
            for (int b = 0; b < BATCHES; b++) {
#pragma omp barrier
                const double t0 = omp_get_wtime();
                for (int i = 0; i < rounds; i++, seq += 2) {
                    /* wait for the other thread's number, yielding the core when kept
                     * long (more threads than cores: a waiter would spin its time slice) */
                    const int want = me == 0 ? seq + 2 : seq + 1;
                    if (me == 0) atomic_store_explicit(&flag.v, seq + 1, memory_order_release);
                    for (long spins = 0; atomic_load_explicit(&flag.v, memory_order_acquire) != want;)
                        if (++spins > (1 << 14)) sched_yield();
                    if (me == 1) atomic_store_explicit(&flag.v, seq + 2, memory_order_release);
                }
                if (me == 0) ns[b] = (omp_get_wtime() - t0) * 1e9 / rounds;
            }
        }
    }
    if (!two) return 0.0;
    qsort(ns, BATCHES, sizeof ns[0], cmp_dbl);
    return ns[BATCHES / 2];
}
