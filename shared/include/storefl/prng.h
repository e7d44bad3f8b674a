/*
 * Small seeded PRNG (xoshiro256**, seeded through splitmix64) for reproducible training: sampling
 * negatives, shuffling, initialisation. NOT for privacy noise or keys: those use the CSPRNG of
 * storefl/rng.h (Mbed TLS CTR_DRBG).
 */
#ifndef STOREFL_PRNG_H
#define STOREFL_PRNG_H
#include <stdint.h>

typedef struct storefl_prng {
  uint64_t s[4];
} storefl_prng;

void storefl_prng_seed(storefl_prng *r, uint64_t seed);
uint64_t storefl_prng_next(storefl_prng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t storefl_prng_below(storefl_prng *r, uint64_t n);
/* Uniform float in [0, 1). */
float storefl_prng_uniform(storefl_prng *r);
/* Standard normal (Box-Muller on doubles: fine for initialisation, never for DP noise). */
double storefl_prng_normal(storefl_prng *r);

#endif
