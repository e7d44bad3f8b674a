/* CSPRNG on Mbed TLS CTR_DRBG; see storefl/rng.h. */
#include "storefl/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>

#include "storefl/error.h"

/* One CTR_DRBG request is at most MBEDTLS_CTR_DRBG_MAX_REQUEST (1024) bytes. */
#define RNG_BUF 1024

struct storefl_rng {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  int insecure;
  uint64_t test_seed, test_counter;
  unsigned char buf[RNG_BUF];
  size_t pos; /* next unread byte of buf; RNG_BUF when empty */
  uint64_t reservoir;
  unsigned reservoir_bits;
};

static int refill(storefl_rng *rng) {
  if (mbedtls_ctr_drbg_random(&rng->drbg, rng->buf, RNG_BUF) != 0)
    return STOREFL_ERR_CRYPTO;
  rng->pos = 0;
  return STOREFL_OK;
}

int storefl_rng_bytes(storefl_rng *rng, void *out, size_t len) {
  if (rng == NULL || (out == NULL && len > 0))
    return STOREFL_ERR_INVALID;
  unsigned char *p = out;
  while (len > 0) {
    if (rng->pos == RNG_BUF) {
      int rc = refill(rng);
      if (rc != 0)
        return rc;
    }
    size_t n = RNG_BUF - rng->pos;
    if (n > len)
      n = len;
    memcpy(p, rng->buf + rng->pos, n);
    /* Bytes handed out are erased from the buffer so a later memory disclosure cannot reveal them. */
    mbedtls_platform_zeroize(rng->buf + rng->pos, n);
    rng->pos += n;
    p += n;
    len -= n;
  }
  return STOREFL_OK;
}

/* Deterministic "entropy" for tests: SHA-256(seed || counter) blocks. */
static int test_entropy(void *ctx, unsigned char *out, size_t len) {
  storefl_rng *rng = ctx;
  while (len > 0) {
    unsigned char in[16], h[32];
    for (int i = 0; i < 8; i++) {
      in[i] = (unsigned char)(rng->test_seed >> (8 * i));
      in[8 + i] = (unsigned char)(rng->test_counter >> (8 * i));
    }
    rng->test_counter++;
    if (mbedtls_sha256_ret(in, sizeof in, h, 0) != 0)
      return MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
    size_t n = len < sizeof h ? len : sizeof h;
    memcpy(out, h, n);
    out += n;
    len -= n;
  }
  return 0;
}

static int create(const char *pers, int insecure, uint64_t seed, storefl_rng **out) {
  if (out == NULL)
    return STOREFL_ERR_INVALID;
  *out = NULL;
  storefl_rng *rng = calloc(1, sizeof *rng);
  if (rng == NULL)
    return STOREFL_ERR_NOMEM;
  rng->insecure = insecure;
  rng->test_seed = seed;
  rng->pos = RNG_BUF;
  mbedtls_ctr_drbg_init(&rng->drbg);
  int rc;
  const char *p = pers != NULL ? pers : "storefl-rng";
  if (insecure) {
    rc = mbedtls_ctr_drbg_seed(&rng->drbg, test_entropy, rng, (const unsigned char *)p, strlen(p));
  } else {
    mbedtls_entropy_init(&rng->entropy);
    rc = mbedtls_ctr_drbg_seed(&rng->drbg, mbedtls_entropy_func, &rng->entropy, (const unsigned char *)p,
                               strlen(p));
  }
  if (rc != 0) {
    storefl_rng_free(rng);
    return STOREFL_ERR_CRYPTO;
  }
  *out = rng;
  return STOREFL_OK;
}

int storefl_rng_create(const char *personalization, storefl_rng **out) {
  return create(personalization, 0, 0, out);
}

int storefl_rng_create_insecure_test_seed(uint64_t seed, storefl_rng **out) {
  return create("storefl-insecure-test-seed", 1, seed, out);
}

int storefl_rng_is_insecure(const storefl_rng *rng) {
  return rng != NULL && rng->insecure;
}

void storefl_rng_free(storefl_rng *rng) {
  if (rng == NULL)
    return;
  mbedtls_ctr_drbg_free(&rng->drbg);
  if (!rng->insecure)
    mbedtls_entropy_free(&rng->entropy);
  mbedtls_platform_zeroize(rng, sizeof *rng);
  free(rng);
}

int storefl_rng_u64(storefl_rng *rng, uint64_t *out) {
  unsigned char b[8];
  int rc = storefl_rng_bytes(rng, b, sizeof b);
  if (rc != 0)
    return rc;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)b[i] << (8 * i);
  *out = v;
  return STOREFL_OK;
}

int storefl_rng_bits(storefl_rng *rng, unsigned k, uint64_t *out) {
  if (rng == NULL || out == NULL || k > 64)
    return STOREFL_ERR_INVALID;
  if (k == 0) {
    *out = 0;
    return STOREFL_OK;
  }
  if (k == 64)
    return storefl_rng_u64(rng, out);
  if (rng->reservoir_bits < k) {
    /* Keep the leftover bits and append a fresh word above them. */
    uint64_t w;
    int rc = storefl_rng_u64(rng, &w);
    if (rc != 0)
      return rc;
    unsigned have = rng->reservoir_bits;
    uint64_t low = rng->reservoir;
    uint64_t need = k - have;
    *out = low | ((w & ((UINT64_C(1) << need) - 1)) << have);
    rng->reservoir = w >> need;
    rng->reservoir_bits = 64 - (unsigned)need;
    return STOREFL_OK;
  }
  *out = rng->reservoir & ((UINT64_C(1) << k) - 1);
  rng->reservoir >>= k;
  rng->reservoir_bits -= k;
  return STOREFL_OK;
}

static unsigned bitlen64(uint64_t x) {
  unsigned n = 0;
  while (x != 0) {
    n++;
    x >>= 1;
  }
  return n;
}

int storefl_rng_below(storefl_rng *rng, uint64_t n, uint64_t *out) {
  if (rng == NULL || out == NULL || n == 0)
    return STOREFL_ERR_INVALID;
  if (n == 1) {
    *out = 0;
    return STOREFL_OK;
  }
  /* Draw bitlen(n-1) bits and reject values >= n: accepted values are exactly uniform, and each
   * attempt succeeds with probability > 1/2. */
  unsigned k = bitlen64(n - 1);
  for (;;) {
    uint64_t v;
    int rc = storefl_rng_bits(rng, k, &v);
    if (rc != 0)
      return rc;
    if (v < n) {
      *out = v;
      return STOREFL_OK;
    }
  }
}

int storefl_rng_bernoulli_ratio(storefl_rng *rng, uint64_t num, uint64_t den, int *out) {
  if (rng == NULL || out == NULL || den == 0 || num > den)
    return STOREFL_ERR_INVALID;
  uint64_t v;
  int rc = storefl_rng_below(rng, den, &v);
  if (rc != 0)
    return rc;
  *out = v < num;
  return STOREFL_OK;
}

int storefl_rng_bernoulli(storefl_rng *rng, double p, int *out) {
  if (rng == NULL || out == NULL || !(p >= 0.0 && p <= 1.0))
    return STOREFL_ERR_INVALID;
  if (p == 1.0) {
    *out = 1;
    return STOREFL_OK;
  }
  if (p == 0.0) {
    *out = 0;
    return STOREFL_OK;
  }
  /* p = M * 2^(e-53) with M a 53-bit integer; its binary digit of weight 2^-i is bit (53-e-i) of M.
   * Output 1 iff the uniform U = 0.u1u2... is below p: decide at the first differing digit. */
  int e;
  double f = frexp(p, &e); /* p = f * 2^e, f in [0.5, 1), e <= 0 */
  uint64_t m = (uint64_t)ldexp(f, 53);
  for (int i = 1; i <= 53 - e; i++) {
    int pos = 53 - e - i;
    unsigned pi = (pos >= 0 && pos < 53) ? (unsigned)((m >> pos) & 1u) : 0u;
    uint64_t ui;
    int rc = storefl_rng_bits(rng, 1, &ui);
    if (rc != 0)
      return rc;
    if (ui != pi) {
      *out = ui < pi;
      return STOREFL_OK;
    }
  }
  *out = 0; /* U matches every digit of p: U >= p */
  return STOREFL_OK;
}

int storefl_rng_mbedtls(void *p_rng, unsigned char *out, size_t len) {
  return storefl_rng_bytes(p_rng, out, len) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}
