/* libFuzzer target: storefl_ledger_entry_decode on arbitrary bytes. Accepted entries must
 * re-encode to a fixed point, and the streamed hash must equal SHA-256 of the signed part. */
#include <mbedtls/sha256.h>

#include "fuzz_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static storefl_str parts[64], parts2[64];
static storefl_store_epsilon eps[64], eps2[64];

static int dec(const uint8_t *b, size_t n, size_t cap, storefl_ledger_entry *e, storefl_str *p,
               storefl_store_epsilon *x) {
  return storefl_ledger_entry_decode(b, n, cap, e, p, 64, x, 64);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  storefl_ledger_entry e, e2;
  int rc = dec(data, size, size, &e, parts, eps);
  fuzz_check_rc(rc);
  if (rc != STOREFL_OK)
    return 0;
  size_t need = 0, len = 0, len2 = 0, slen = 0;
  FUZZ_CHECK(storefl_ledger_entry_encode(&e, NULL, 0, &need) == STOREFL_OK);
  uint8_t *b1 = malloc(need), *b2 = malloc(need);
  FUZZ_CHECK(b1 && b2);
  FUZZ_CHECK(storefl_ledger_entry_encode(&e, b1, need, &len) == STOREFL_OK && len == need);
  FUZZ_CHECK(dec(b1, len, len, &e2, parts2, eps2) == STOREFL_OK);
  FUZZ_CHECK(storefl_ledger_entry_encode(&e2, b2, need, &len2) == STOREFL_OK && len2 == len);
  FUZZ_CHECK(memcmp(b1, b2, len) == 0);
  FUZZ_CHECK(storefl_ledger_entry_encode_signed_part(&e, b2, need, &slen) == STOREFL_OK && slen < len);
  uint8_t h1[32], h2[32];
  FUZZ_CHECK(mbedtls_sha256_ret(b2, slen, h1, 0) == 0);
  FUZZ_CHECK(storefl_ledger_entry_hash(&e, h2) == STOREFL_OK);
  FUZZ_CHECK(memcmp(h1, h2, 32) == 0);
  free(b1);
  free(b2);
  return 0;
}
