/* libFuzzer target: storefl_update_decode on arbitrary bytes (oracle in fuzz_codec.h). */
#include "fuzz_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  storefl_update_msg *m = malloc(sizeof *m);
  FUZZ_CHECK(m);
  int rc = storefl_update_decode(data, size, size, m);
  fuzz_check_rc(rc);
  /* a cap below the size is always refused before parsing */
  if (size)
    FUZZ_CHECK(storefl_update_decode(data, size, size - 1, m) == STOREFL_ERR_TOO_LARGE);
  rc = storefl_update_decode(data, size, size, m);
  if (rc == STOREFL_OK) {
    fuzz_check_tensors(m->tensors, m->n_tensors);
    FUZZ_ROUNDTRIP(storefl_update_msg, storefl_update_encode, storefl_update_decode, m);
  }
  free(m);
  return 0;
}
