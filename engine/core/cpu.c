#include "st_cpu.h"

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
