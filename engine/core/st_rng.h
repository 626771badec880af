/* Deterministic random numbers. Two kinds:
 * - st_rng: a small sequential generator (xoshiro128+ style state in 4 words) for
 *   shuffles and initialisation; its state is saved in checkpoints.
 * - st_hash_*: counter-based values that depend only on (seed, index), for places that
 *   run in parallel (dropout) and must not depend on thread scheduling. */
#ifndef ST_RNG_H
#define ST_RNG_H

#include <stdint.h>

typedef struct st_rng {
    uint64_t s[4];
} st_rng;

void st_rng_seed(st_rng *r, uint64_t seed);
uint64_t st_rng_next(st_rng *r);
/* Uniform in [0, 1). */
float st_rng_uniform(st_rng *r);
/* Standard normal (Box-Muller). */
float st_rng_normal(st_rng *r);
/* Uniform integer in [0, n). */
uint32_t st_rng_below(st_rng *r, uint32_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void st_rng_shuffle(st_rng *r, int32_t *idx, int n);

static inline uint64_t st_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
/* Uniform in [0, 1) from (seed, index). */
static inline float st_hash_uniform(uint64_t seed, uint64_t index) {
    return (float)(st_hash64(seed ^ st_hash64(index)) >> 40) * (1.0f / 16777216.0f);
}

#endif
