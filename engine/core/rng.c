#include "st_rng.h"

#include <math.h>

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void st_rng_seed(st_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x = st_hash64(x + (uint64_t)i);
        r->s[i] = x;
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1;
}

/* xoshiro256** */
uint64_t st_rng_next(st_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float st_rng_uniform(st_rng *r) { return (float)(st_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float st_rng_normal(st_rng *r) {
    double u1 = ((double)(st_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(st_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t st_rng_below(st_rng *r, uint32_t n) {
    /* Lemire's multiply-shift; the tiny bias is irrelevant for shuffles. */
    return (uint32_t)(((st_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

void st_rng_shuffle(st_rng *r, int32_t *idx, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)st_rng_below(r, (uint32_t)(i + 1));
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
