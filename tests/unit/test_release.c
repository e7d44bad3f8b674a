/* The agent's release step (agent/src/release.h), shared by `run` and `simulate`: central mode
 * clips and encodes; local mode clips, puts the update on the round's grid, noises it and encodes
 * exactly what it left in delta. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net_agent.h"
#include "release.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/rng.h"

typedef struct fixture {
  storefl_model *delta;
  storefl_model_msg msg; /* names and shapes of delta's parameters, in model order */
  storefl_round_msg round;
  mbedtls_ctr_drbg_context *drbg;
  storefl_rng *rng;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  storefl_model_config cfg = {16, 2, 3};
  if (storefl_model_create(&cfg, &f->delta) != 0 || storefl_agent_drbg_new(&f->drbg) != 0 ||
      storefl_rng_create("test_release", &f->rng) != 0)
    return -1;
  f->msg.n_tensors = 0;
  for (size_t p = 0; p < STOREFL_MODEL_NPARAMS; p++) {
    const storefl_param *pa = &f->delta->params[p];
    storefl_tensor *t = &f->msg.tensors[f->msg.n_tensors++];
    t->name = (storefl_str){pa->name, strlen(pa->name)};
    t->ndim = pa->ndim;
    t->shape[0] = pa->shape[0];
    t->shape[1] = pa->shape[1];
  }
  /* A delta of norm well above C = 1 (every coordinate 0.5). */
  for (size_t i = 0; i < f->delta->numel; i++)
    f->delta->block[i] = 0.5f;
  f->round.round = 4;
  f->round.model_version = 3;
  f->round.clip_norm = 1.0;
  f->round.delta = 1e-5;
  f->round.scale_bits = 8;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  storefl_model_free(f->delta);
  storefl_agent_drbg_free(f->drbg);
  storefl_rng_free(f->rng);
  free(f);
  return 0;
}

/* Decodes body as f32 and checks it equals delta coordinate for coordinate; returns its L2 norm. */
static double decoded_matches(const uint8_t *body, size_t len, const storefl_model *delta,
                              storefl_update_msg *u) {
  assert_int_equal(storefl_update_decode(body, len, len, u), 0);
  double ss = 0;
  size_t off = 0;
  for (size_t t = 0; t < u->n_tensors; t++) {
    size_t n = (size_t)u->tensors[t].shape[0] * (u->tensors[t].ndim > 1 ? u->tensors[t].shape[1] : 1);
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    assert_int_equal(storefl_tensor_to_f32(&u->tensors[t], v, n), 0);
    for (size_t i = 0; i < n; i++) {
      assert_true(v[i] == delta->block[off + i]);
      ss += (double)v[i] * v[i];
    }
    off += n;
    free(v);
  }
  assert_int_equal(off, delta->numel);
  return sqrt(ss);
}

static void central_clips_and_encodes(void **state) {
  fixture *f = *state;
  f->round.mode = STOREFL_PRIVACY_CENTRAL;
  f->round.noise_multiplier = 1.0; /* the aggregator's noise: nothing added here */
  double pre = 0, want = 0.5 * sqrt((double)f->delta->numel);
  uint8_t *body = NULL;
  size_t len = 0;
  assert_int_equal(storefl_agent_release_update(&f->msg, f->delta, "s1", &f->round, 17, STOREFL_DTYPE_F32,
                                                f->drbg, f->rng, &pre, &body, &len),
                   0);
  assert_true(fabs(pre - want) < 1e-9);
  storefl_update_msg u;
  double norm = decoded_matches(body, len, f->delta, &u);
  assert_true(norm <= 1.0 && norm > 0.999);
  assert_int_equal(u.num_examples, 17);
  assert_int_equal(u.mode, STOREFL_PRIVACY_CENTRAL);
  for (size_t i = 1; i < f->delta->numel; i++)
    assert_true(f->delta->block[i] == f->delta->block[0]); /* scaled, not noised */
  free(body);
}

static void local_noises_on_the_grid(void **state) {
  fixture *f = *state;
  f->round.mode = STOREFL_PRIVACY_LOCAL;
  f->round.noise_multiplier = 1.0;
  double clean = 1.0 / sqrt((double)f->delta->numel); /* each coordinate after clipping */
  double pre = 0;
  uint8_t *body = NULL;
  size_t len = 0;
  assert_int_equal(storefl_agent_release_update(&f->msg, f->delta, "s1", &f->round, 17, STOREFL_DTYPE_F32,
                                                f->drbg, f->rng, &pre, &body, &len),
                   0);
  assert_true(fabs(pre - 0.5 * sqrt((double)f->delta->numel)) < 1e-9);
  storefl_update_msg u;
  (void)decoded_matches(body, len, f->delta, &u);
  assert_int_equal(u.num_examples, 1); /* not noised, so not released */
  assert_int_equal(u.mode, STOREFL_PRIVACY_LOCAL);
  assert_true(u.noise_multiplier == 1.0);
  /* Every value on the grid 2^-8; with sigma*C/step = 256 grid units of noise per coordinate,
   * the release is far from the clipped value somewhere (P(all within 4 units) is negligible). */
  double far = 0;
  for (size_t i = 0; i < f->delta->numel; i++) {
    double k = ldexp(f->delta->block[i], 8);
    assert_true(k == floor(k));
    double d = fabs(f->delta->block[i] - clean);
    far = d > far ? d : far;
  }
  assert_true(far > ldexp(4.0, -8));
  free(body);
}

static void local_without_noise_is_the_clipped_grid(void **state) {
  fixture *f = *state;
  f->round.mode = STOREFL_PRIVACY_LOCAL;
  f->round.noise_multiplier = 0;
  uint8_t *body = NULL;
  size_t len = 0;
  assert_int_equal(storefl_agent_release_update(&f->msg, f->delta, "s1", &f->round, 17, STOREFL_DTYPE_I8,
                                                f->drbg, f->rng, NULL, &body, &len),
                   0);
  double ss = 0;
  for (size_t i = 0; i < f->delta->numel; i++) {
    double k = ldexp(f->delta->block[i], 8);
    assert_true(k == floor(k) && fabs(k) <= 127);
    ss += (double)f->delta->block[i] * f->delta->block[i];
  }
  assert_true(sqrt(ss) <= 1.0 && sqrt(ss) > 0.9);
  free(body);
}

static void refuses_bad_arguments(void **state) {
  fixture *f = *state;
  f->round.mode = STOREFL_PRIVACY_LOCAL;
  f->round.noise_multiplier = 1.0;
  uint8_t *body = (uint8_t *)"x";
  size_t len = 1;
  assert_int_equal(storefl_agent_release_update(&f->msg, f->delta, NULL, &f->round, 1, STOREFL_DTYPE_F32,
                                                f->drbg, f->rng, NULL, &body, &len),
                   STOREFL_ERR_INVALID);
  f->round.clip_norm = -1; /* storefl_dp_privatize_local refuses it; nothing is encoded */
  assert_int_equal(storefl_agent_release_update(&f->msg, f->delta, "s1", &f->round, 1, STOREFL_DTYPE_F32,
                                                f->drbg, f->rng, NULL, &body, &len),
                   STOREFL_ERR_INVALID);
  assert_null(body);
  assert_int_equal(len, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(central_clips_and_encodes, setup, teardown),
      cmocka_unit_test_setup_teardown(local_noises_on_the_grid, setup, teardown),
      cmocka_unit_test_setup_teardown(local_without_noise_is_the_clipped_grid, setup, teardown),
      cmocka_unit_test_setup_teardown(refuses_bad_arguments, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
