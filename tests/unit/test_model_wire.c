/* storefl_model <-> wire tensors: round trip, config inference, and every rejection leaves the
 * model untouched. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/model.h"
#include "storefl/model_wire.h"

static storefl_model *make(uint64_t seed) {
  storefl_model_config mc = {64, 4, 8};
  storefl_model *m;
  assert_int_equal(storefl_model_create(&mc, &m), STOREFL_OK);
  storefl_model_init(m, seed);
  return m;
}

static void test_round_trip(void **state) {
  (void)state;
  storefl_model *a = make(1), *b = make(2);
  storefl_tensor t[STOREFL_MAX_TENSORS];
  uint32_t n = 0;
  assert_int_equal(storefl_model_to_tensors(a, t, 3, &n), STOREFL_ERR_TOO_LARGE);
  assert_int_equal(storefl_model_to_tensors(a, t, STOREFL_MAX_TENSORS, &n), STOREFL_OK);
  assert_int_equal(n, STOREFL_MODEL_NPARAMS);
  assert_int_equal(t[0].name.len, 8);
  assert_memory_equal(t[0].name.ptr, "item_emb", 8);
  assert_int_equal(t[0].ndim, 2);
  assert_int_equal(t[0].shape[0], 64);
  assert_int_equal(t[0].shape[1], 4);
  assert_int_equal(t[3].shape[1], 3 * 4 + STOREFL_WIDE_FEATURES);
  storefl_model_config cfg;
  assert_int_equal(storefl_model_config_from_tensors(t, n, &cfg), STOREFL_OK);
  assert_int_equal(cfg.buckets, 64);
  assert_int_equal(cfg.dim, 4);
  assert_int_equal(cfg.hidden, 8);
  /* Any order of the tensors is accepted. */
  storefl_tensor r[STOREFL_MODEL_NPARAMS];
  for (uint32_t i = 0; i < n; i++)
    r[i] = t[n - 1 - i];
  assert_int_equal(storefl_model_from_tensors(b, r, n), STOREFL_OK);
  assert_memory_equal(a->block, b->block, a->numel * sizeof(float));
  uint8_t da[32], db[32];
  assert_int_equal(storefl_model_sha256(a, da), STOREFL_OK);
  assert_int_equal(storefl_model_sha256(b, db), STOREFL_OK);
  assert_memory_equal(da, db, 32);
  storefl_model_free(a);
  storefl_model_free(b);
}

static void expect_reject(storefl_tensor *t, uint32_t n, int code) {
  storefl_model *b = make(9), *c = make(9);
  assert_int_equal(storefl_model_from_tensors(b, t, n), code);
  assert_memory_equal(b->block, c->block, b->numel * sizeof(float));
  storefl_model_free(b);
  storefl_model_free(c);
}

static void test_rejections(void **state) {
  (void)state;
  storefl_model *a = make(1);
  storefl_tensor t[STOREFL_MODEL_NPARAMS], x[STOREFL_MODEL_NPARAMS];
  uint32_t n;
  assert_int_equal(storefl_model_to_tensors(a, t, STOREFL_MODEL_NPARAMS, &n), STOREFL_OK);
  expect_reject(t, n - 1, STOREFL_ERR_INVALID); /* missing tensor */
  memcpy(x, t, sizeof t);
  x[2] = x[1]; /* duplicate name, another missing */
  expect_reject(x, n, STOREFL_ERR_INVALID);
  memcpy(x, t, sizeof t);
  x[0].shape[0] = 128; /* wrong shape */
  expect_reject(x, n, STOREFL_ERR_INVALID);
  memcpy(x, t, sizeof t);
  x[5].nbytes -= 4; /* size does not match the shape */
  expect_reject(x, n, STOREFL_ERR_INVALID);
  memcpy(x, t, sizeof t);
  x[4].dtype = STOREFL_DTYPE_F16;
  expect_reject(x, n, STOREFL_ERR_FORMAT);
  memcpy(x, t, sizeof t);
  x[6].name = (storefl_str){"wide_x", 6};
  expect_reject(x, n, STOREFL_ERR_INVALID);
  /* A NaN in the last tensor: nothing of the earlier tensors may have been copied. */
  float bad[1] = {NAN};
  memcpy(x, t, sizeof t);
  x[7].data = (const uint8_t *)bad;
  expect_reject(x, n, STOREFL_ERR_NONFINITE);
  storefl_model_config cfg;
  memcpy(x, t, sizeof t);
  x[0].shape[0] = 100; /* not a power of two */
  assert_int_equal(storefl_model_config_from_tensors(x, n, &cfg), STOREFL_ERR_INVALID);
  storefl_model_free(a);
}

/* The model's own digest equals the codec's digest of its tensor list, and a model survives a trip
 * through the model message encoder and decoder bit for bit. */
static void test_codec_interop(void **state) {
  (void)state;
  storefl_model *a = make(5), *b = make(6);
  storefl_model_msg msg;
  memset(&msg, 0, sizeof msg);
  msg.model_version = 3;
  msg.arch = (storefl_str){STOREFL_MODEL_ARCH, strlen(STOREFL_MODEL_ARCH)};
  assert_int_equal(storefl_model_to_tensors(a, msg.tensors, STOREFL_MAX_TENSORS, &msg.n_tensors), STOREFL_OK);
  uint8_t mine[32];
  assert_int_equal(storefl_model_sha256(a, mine), STOREFL_OK);
  assert_int_equal(storefl_model_digest(msg.tensors, msg.n_tensors, msg.digest), STOREFL_OK);
  assert_memory_equal(mine, msg.digest, 32);
  size_t len = 0;
  assert_int_equal(storefl_model_encode(&msg, NULL, 0, &len), STOREFL_OK);
  uint8_t *buf = malloc(len);
  assert_int_equal(storefl_model_encode(&msg, buf, len, &len), STOREFL_OK);
  storefl_model_msg out;
  assert_int_equal(storefl_model_decode(buf, len, STOREFL_DEFAULT_MAX_BODY, &out), STOREFL_OK);
  storefl_model_config cfg;
  assert_int_equal(storefl_model_config_from_tensors(out.tensors, out.n_tensors, &cfg), STOREFL_OK);
  assert_int_equal(storefl_model_from_tensors(b, out.tensors, out.n_tensors), STOREFL_OK);
  assert_memory_equal(a->block, b->block, a->numel * sizeof(float));
  free(buf);
  storefl_model_free(a);
  storefl_model_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_codec_interop),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
