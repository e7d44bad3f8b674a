/*
 * Cryptographically secure random numbers for differential privacy noise and participation
 * sampling: Mbed TLS CTR_DRBG (AES-256) seeded from the OS entropy source (mbedtls_entropy:
 * getrandom / /dev/urandom), reseeded by CTR_DRBG's own policy.
 *
 * DP noise must never come from rand() or any seeded PRNG: an adversary who can predict the noise
 * can subtract it. The only deterministic constructor, storefl_rng_create_insecure_test_seed(),
 * exists for reproducible tests; its name says so, and production code never calls it (a grep for
 * "insecure_test_seed" outside tests/ must stay empty).
 *
 * A storefl_rng is not thread-safe: use one per thread. All functions return 0 (STOREFL_OK) or a
 * negative storefl_err (STOREFL_ERR_CRYPTO when Mbed TLS fails, STOREFL_ERR_INVALID for bad
 * arguments, STOREFL_ERR_NOMEM).
 */
#ifndef STOREFL_RNG_H
#define STOREFL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct storefl_rng storefl_rng;

/* Creates a generator seeded from the OS entropy source. personalization (may be NULL) is mixed
 * into the seed as CTR_DRBG's personalization string. The caller owns *out (storefl_rng_free). */
int storefl_rng_create(const char *personalization, storefl_rng **out);

/* TEST ONLY: a generator whose whole output is a function of seed (the entropy callback returns
 * SHA-256(seed || counter) blocks). Never use it for noise that protects anyone. */
int storefl_rng_create_insecure_test_seed(uint64_t seed, storefl_rng **out);

/* 1 if rng came from storefl_rng_create_insecure_test_seed(), so callers can refuse it. */
int storefl_rng_is_insecure(const storefl_rng *rng);

void storefl_rng_free(storefl_rng *rng);

/* Fills buf with len random bytes. */
int storefl_rng_bytes(storefl_rng *rng, void *buf, size_t len);

/* k (0..64) uniform random bits in the low bits of *out. Bits are drawn from an internal reservoir,
 * so a Bernoulli(1/2) costs one bit, not a DRBG call. */
int storefl_rng_bits(storefl_rng *rng, unsigned k, uint64_t *out);

/* Uniform on [0, 2^64). */
int storefl_rng_u64(storefl_rng *rng, uint64_t *out);

/* Uniform on [0, n), n >= 1, without modulo bias (rejection of the draws above the largest
 * multiple of n, on the smallest power-of-two range that holds n). */
int storefl_rng_below(storefl_rng *rng, uint64_t n, uint64_t *out);

/* Exact Bernoulli(num/den) (*out = 1 with probability num/den), 0 <= num <= den, den >= 1. */
int storefl_rng_bernoulli_ratio(storefl_rng *rng, uint64_t num, uint64_t den, int *out);

/* Exact Bernoulli(p) for the double p in [0, 1]: p is a dyadic rational, compared bit by bit with
 * a lazily drawn uniform (two bits on average). Used for the store's secret participation draw. */
int storefl_rng_bernoulli(storefl_rng *rng, double p, int *out);

/* Adapter with Mbed TLS's f_rng signature (ECDSA signing, key generation); p_rng is a storefl_rng.
 * Returns 0 or MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED. */
int storefl_rng_mbedtls(void *p_rng, unsigned char *out, size_t len);

#endif
