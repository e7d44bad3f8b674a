/*
 * Shared oracle of the codec fuzz targets: whatever the decoder accepts must re-encode, the
 * re-encoding must decode to an equal message, and encoding that again must give the same bytes
 * (canonical form is a fixed point). Every accepted tensor must convert to finite floats.
 * Any violation aborts, which libFuzzer reports as a crash.
 */
#ifndef STOREFL_FUZZ_CODEC_H
#define STOREFL_FUZZ_CODEC_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/error.h"

#define FUZZ_CHECK(cond)                                                                                     \
  do {                                                                                                       \
    if (!(cond))                                                                                             \
      abort();                                                                                               \
  } while (0)

/* Valid error codes of a decoder. */
static inline void fuzz_check_rc(int rc) {
  FUZZ_CHECK(rc == STOREFL_OK || rc == STOREFL_ERR_INVALID || rc == STOREFL_ERR_NONFINITE ||
             rc == STOREFL_ERR_TOO_LARGE || rc == STOREFL_ERR_FORMAT);
}

static inline void fuzz_check_tensors(const storefl_tensor *ts, uint32_t n) {
  FUZZ_CHECK(n <= STOREFL_MAX_TENSORS);
  for (uint32_t i = 0; i < n; i++) {
    uint64_t numel;
    FUZZ_CHECK(storefl_tensor_numel(&ts[i], &numel) == STOREFL_OK);
    FUZZ_CHECK(numel * storefl_dtype_size(ts[i].dtype) == ts[i].nbytes);
    for (uint64_t k = 0; k < numel; k++)
      FUZZ_CHECK(isfinite(storefl_tensor_get(&ts[i], (size_t)k)));
  }
}

/* enc(msg) twice through dec: returns the malloc'ed canonical bytes. */
#define FUZZ_ROUNDTRIP(type, enc, dec, msg_ptr)                                                              \
  do {                                                                                                       \
    size_t need_ = 0, len_ = 0, len2_ = 0;                                                                   \
    FUZZ_CHECK(enc((msg_ptr), NULL, 0, &need_) == STOREFL_OK);                                               \
    uint8_t *b1_ = malloc(need_), *b2_ = malloc(need_);                                                      \
    FUZZ_CHECK(b1_ &&b2_);                                                                                   \
    FUZZ_CHECK(enc((msg_ptr), b1_, need_, &len_) == STOREFL_OK && len_ == need_);                            \
    type *m2_ = malloc(sizeof(type));                                                                        \
    FUZZ_CHECK(m2_);                                                                                         \
    FUZZ_CHECK(dec(b1_, len_, len_, m2_) == STOREFL_OK);                                                     \
    FUZZ_CHECK(enc(m2_, b2_, need_, &len2_) == STOREFL_OK && len2_ == len_);                                 \
    FUZZ_CHECK(memcmp(b1_, b2_, len_) == 0);                                                                 \
    free(m2_);                                                                                               \
    free(b1_);                                                                                               \
    free(b2_);                                                                                               \
  } while (0)

#endif
