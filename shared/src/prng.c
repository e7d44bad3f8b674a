/* xoshiro256** (Blackman & Vigna), seeded with splitmix64 so that any 64-bit seed is usable. */
#include "storefl/prng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void storefl_prng_seed(storefl_prng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t storefl_prng_next(storefl_prng *r) {
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

uint64_t storefl_prng_below(storefl_prng *r, uint64_t n) {
  /* Rejection of the short last interval keeps every value equally likely. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = storefl_prng_next(r);
  } while (x >= limit);
  return x % n;
}

float storefl_prng_uniform(storefl_prng *r) {
  return (float)(storefl_prng_next(r) >> 40) * (1.0f / 16777216.0f);
}

double storefl_prng_normal(storefl_prng *r) {
  double u1 = ((double)(storefl_prng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  double u2 = (double)(storefl_prng_next(r) >> 11) * (1.0 / 9007199254740992.0);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
