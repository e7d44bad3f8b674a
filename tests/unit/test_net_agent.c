/* Agent-side network helpers: stochastic int8 quantization (unbiased, bounded), back-off with
 * jitter, PSK keys files (mode check, parsing), host:port parsing, update encoding round trip. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_agent.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/transport.h"

/* Unbiasedness: the mean of many independent quantizations of the same vector converges to the
 * vector. With K repetitions the dequantized mean of coordinate i has standard deviation at most
 * scale / (2 sqrt(K)) (a rounding step is a Bernoulli on a grid of width scale); we check every
 * coordinate within 5 of those deviations and the average signed error within a much tighter
 * bound, which a biased rounding (e.g. always nearest, or floor) fails by orders of magnitude. */
static void quantize_unbiased(void **state) {
  (void)state;
  enum { N = 512, K = 2000 };
  float x[N];
  for (int i = 0; i < N; i++)
    x[i] = (float)sin(0.37 * i) * 0.8f + (i == 7 ? 1.0f : 0.0f); /* max |x| about 1.8 */
  mbedtls_ctr_drbg_context *drbg = NULL;
  assert_int_equal(storefl_agent_drbg_new(&drbg), 0);
  double *sum = calloc(N, sizeof *sum);
  int8_t q[N];
  float scale = 0;
  for (int k = 0; k < K; k++) {
    assert_int_equal(storefl_quantize_i8_stochastic(x, N, q, &scale, drbg), 0);
    for (int i = 0; i < N; i++) {
      assert_true(q[i] >= -127 && q[i] <= 127);
      /* Each q is one of the two grid points around x / scale. */
      double y = x[i] / scale;
      assert_true(q[i] == (int)floor(y) || q[i] == (int)ceil(y));
      sum[i] += q[i] * (double)scale;
    }
  }
  double worst = 0, signed_err = 0;
  for (int i = 0; i < N; i++) {
    double err = sum[i] / K - x[i];
    signed_err += err;
    double z = fabs(err) / (scale / (2.0 * sqrt((double)K)));
    if (z > worst)
      worst = z;
  }
  printf("stochastic int8: worst |mean error| = %.2f sigma, mean signed error %.2e (scale %.4g)\n", worst,
         signed_err / N, scale);
  assert_true(worst < 6.0);
  /* Mean of N independent errors: sd <= scale / (2 sqrt(K N)). */
  assert_true(fabs(signed_err / N) < 6.0 * scale / (2.0 * sqrt((double)K * N)));
  /* A deterministic floor would be biased by about -scale/2 on average: far outside that bound. */
  free(sum);
  storefl_agent_drbg_free(drbg);
}

static void quantize_edges(void **state) {
  (void)state;
  mbedtls_ctr_drbg_context *drbg = NULL;
  assert_int_equal(storefl_agent_drbg_new(&drbg), 0);
  float zeros[4] = {0, 0, 0, 0}, scale = 0;
  int8_t q[4];
  assert_int_equal(storefl_quantize_i8_stochastic(zeros, 4, q, &scale, drbg), 0);
  assert_true(scale == 1.0f);
  for (int i = 0; i < 4; i++)
    assert_int_equal(q[i], 0);
  float ext[3] = {-2.0f, 2.0f, 0.0f};
  assert_int_equal(storefl_quantize_i8_stochastic(ext, 3, q, &scale, drbg), 0);
  assert_int_equal(q[0], -127); /* the extremes are exact grid points */
  assert_int_equal(q[1], 127);
  float bad[2] = {1.0f, NAN};
  assert_int_equal(storefl_quantize_i8_stochastic(bad, 2, q, &scale, drbg), STOREFL_ERR_NONFINITE);
  storefl_agent_drbg_free(drbg);
}

static void backoff_jitter(void **state) {
  (void)state;
  storefl_agent_net_config c;
  storefl_agent_net_config_defaults(&c);
  c.retry_base_s = 2;
  c.retry_max_s = 30;
  mbedtls_ctr_drbg_context *drbg = NULL;
  assert_int_equal(storefl_agent_drbg_new(&drbg), 0);
  int64_t lo[8] = {1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000};
  int64_t hi[8] = {2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000};
  int distinct = 0;
  int64_t prev = -1;
  for (int a = 1; a <= 8; a++) {
    for (int k = 0; k < 20; k++) {
      int64_t ms = storefl_agent_backoff_ms(&c, a, drbg);
      assert_true(ms >= lo[a - 1] && ms <= hi[a - 1]);
      if (ms != prev)
        distinct++;
      prev = ms;
    }
  }
  assert_true(distinct > 100); /* jittered, not lock-step */
  storefl_agent_drbg_free(drbg);
}

static char tmpdir[64];

static const char *write_file(const char *name, const char *text, mode_t mode) {
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(path, mode), 0);
  return path;
}

static void psk_table(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/storefl-psk-XXXXXX");
  assert_non_null(mkdtemp(tmpdir));
  char err[256];
  storefl_psk_table *t = NULL;
  const char *good = "# stores\n"
                     "store-b 000102030405060708090a0b0c0d0e0f\n"
                     "\n"
                     "  store-a   ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100  \n";
  const char *p = write_file("good.keys", good, 0600);
  assert_int_equal(storefl_psk_table_load(p, &t, err, sizeof err), 0);
  assert_int_equal(storefl_psk_table_count(t), 2);
  const coap_bin_const_t *k = storefl_psk_table_find(t, (const uint8_t *)"store-b", 7);
  assert_non_null(k);
  assert_int_equal(k->length, 16);
  assert_int_equal(k->s[15], 0x0f);
  k = storefl_psk_table_find(t, (const uint8_t *)"store-a", 7);
  assert_non_null(k);
  assert_int_equal(k->length, 32);
  assert_null(storefl_psk_table_find(t, (const uint8_t *)"store-c", 7));
  assert_null(storefl_psk_table_find(t, (const uint8_t *)"store-", 6));
  storefl_psk_table_free(t);

  /* Group- or other-readable: refused whatever the content. */
  p = write_file("loose.keys", good, 0640);
  assert_int_equal(storefl_psk_table_load(p, &t, err, sizeof err), STOREFL_ERR_FORBIDDEN);
  assert_non_null(strstr(err, "chmod 600"));
  p = write_file("loose2.keys", good, 0604);
  assert_int_equal(storefl_psk_table_load(p, &t, err, sizeof err), STOREFL_ERR_FORBIDDEN);

  const char *bad[] = {
      "store-a 0001\n",                                   /* key too short */
      "store-a 000102030405060708090a0b0c0d0e0g\n",       /* not hex */
      "store a 000102030405060708090a0b0c0d0e0f\n",       /* id with a space */
      "store/a 000102030405060708090a0b0c0d0e0f\n",       /* id outside the alphabet */
      "store-a\n",                                        /* no key */
      "store-a 000102030405060708090a0b0c0d0e0f extra\n", /* trailing field */
      "x 000102030405060708090a0b0c0d0e0f\nx 000102030405060708090a0b0c0d0e0f\n", /* duplicate */
      "store-a 000102030405060708090a0b0c0d0e0\n",                                /* odd hex length */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p = write_file("bad.keys", bad[i], 0600);
    assert_int_equal(storefl_psk_table_load(p, &t, err, sizeof err), STOREFL_ERR_INVALID);
    assert_null(t);
  }
  /* A line longer than the parser's buffer. */
  char *longline = malloc(2000);
  memset(longline, 'a', 1999);
  longline[1999] = 0;
  p = write_file("long.keys", longline, 0600);
  free(longline);
  assert_int_equal(storefl_psk_table_load(p, &t, err, sizeof err), STOREFL_ERR_INVALID);

  uint8_t key[STOREFL_PSK_MAX_KEY];
  size_t len = 0;
  p = write_file("one.psk", "00112233445566778899aabbccddeeff\n", 0600);
  assert_int_equal(storefl_psk_key_file_read(p, key, sizeof key, &len, err, sizeof err), 0);
  assert_int_equal(len, 16);
  assert_int_equal(key[1], 0x11);
  p = write_file("one-loose.psk", "00112233445566778899aabbccddeeff\n", 0644);
  assert_int_equal(storefl_psk_key_file_read(p, key, sizeof key, &len, err, sizeof err),
                   STOREFL_ERR_FORBIDDEN);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  assert_int_equal(system(cmd), 0);
}

static void hostport(void **state) {
  (void)state;
  char h[64];
  uint16_t port = 5684;
  assert_int_equal(storefl_parse_hostport("127.0.0.1:20001", h, sizeof h, &port), 0);
  assert_string_equal(h, "127.0.0.1");
  assert_int_equal(port, 20001);
  port = 5684;
  assert_int_equal(storefl_parse_hostport("localhost", h, sizeof h, &port), 0);
  assert_int_equal(port, 5684);
  assert_int_equal(storefl_parse_hostport("[::1]:7", h, sizeof h, &port), 0);
  assert_string_equal(h, "::1");
  assert_int_equal(port, 7);
  assert_int_equal(storefl_parse_hostport("::1", h, sizeof h, &port), 0);
  assert_string_equal(h, "::1");
  assert_int_not_equal(storefl_parse_hostport("127.0.0.1:99999", h, sizeof h, &port), 0);
  assert_int_not_equal(storefl_parse_hostport("127.0.0.1:", h, sizeof h, &port), 0);
  assert_int_not_equal(storefl_parse_hostport(":80", h, sizeof h, &port), 0);
  assert_int_not_equal(storefl_parse_hostport("[::1", h, sizeof h, &port), 0);
}

/* The encoded update decodes to the same names/shapes, and each dtype reproduces the delta within
 * its resolution. */
static void update_roundtrip(void **state) {
  (void)state;
  storefl_model_msg m;
  memset(&m, 0, sizeof m);
  m.n_tensors = 2;
  m.tensors[0].name = (storefl_str){"w", 1};
  m.tensors[0].ndim = 2;
  m.tensors[0].shape[0] = 3;
  m.tensors[0].shape[1] = 4;
  m.tensors[1].name = (storefl_str){"b", 1};
  m.tensors[1].ndim = 1;
  m.tensors[1].shape[0] = 4;
  float d[16];
  for (int i = 0; i < 16; i++)
    d[i] = (float)(i - 8) / 16.0f;
  storefl_round_msg r;
  memset(&r, 0, sizeof r);
  r.round = 9;
  r.model_version = 4;
  r.mode = STOREFL_PRIVACY_CENTRAL;
  r.clip_norm = 2.0;
  mbedtls_ctr_drbg_context *drbg = NULL;
  assert_int_equal(storefl_agent_drbg_new(&drbg), 0);
  storefl_dtype dts[3] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  for (int k = 0; k < 3; k++) {
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(storefl_agent_encode_update(&m, d, 16, "store-7", &r, 33, dts[k], drbg, &body, &len), 0);
    storefl_update_msg u;
    assert_int_equal(storefl_update_decode(body, len, len, &u), 0);
    assert_int_equal(u.round, 9);
    assert_int_equal(u.base_model_version, 4);
    assert_int_equal(u.num_examples, 33);
    assert_int_equal(u.n_tensors, 2);
    assert_int_equal(u.tensors[0].dtype, dts[k]);
    assert_memory_equal(u.store_id.ptr, "store-7", 7);
    float back[16];
    assert_int_equal(storefl_tensor_to_f32(&u.tensors[0], back, 12), 0);
    assert_int_equal(storefl_tensor_to_f32(&u.tensors[1], back + 12, 4), 0);
    for (int i = 0; i < 16; i++) {
      float tol = dts[k] == STOREFL_DTYPE_I8 ? 0.5f / 127.0f + 1e-6f : 1e-3f;
      assert_true(fabsf(back[i] - d[i]) <= tol);
    }
    free(body);
  }
  uint8_t *body = NULL;
  size_t len = 0;
  assert_int_equal(
      storefl_agent_encode_update(&m, d, 15, "store-7", &r, 1, STOREFL_DTYPE_F32, drbg, &body, &len),
      STOREFL_ERR_INVALID);
  storefl_agent_drbg_free(drbg);
}

/* Local mode: the released grid integers travel exactly (f32, f16; i8 as q = k with scale = step,
 * saturated at +-127), with the round's sigma declared and num_examples withheld (1). */
static void update_local_release(void **state) {
  (void)state;
  storefl_model_msg m;
  memset(&m, 0, sizeof m);
  m.n_tensors = 1;
  m.tensors[0].name = (storefl_str){"w", 1};
  m.tensors[0].ndim = 1;
  m.tensors[0].shape[0] = 8;
  const int64_t k[8] = {-300, -127, -5, 0, 1, 64, 127, 1000};
  storefl_round_msg r;
  memset(&r, 0, sizeof r);
  r.round = 3;
  r.model_version = 2;
  r.mode = STOREFL_PRIVACY_LOCAL;
  r.clip_norm = 1.0;
  r.noise_multiplier = 1.5;
  r.scale_bits = 6;
  float d[8];
  for (int i = 0; i < 8; i++)
    d[i] = (float)ldexp((double)k[i], -6);
  storefl_dtype dts[3] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  for (int t = 0; t < 3; t++) {
    uint8_t *body = NULL;
    size_t len = 0;
    assert_int_equal(storefl_agent_encode_update_local(&m, d, k, 8, "s1", &r, dts[t], &body, &len), 0);
    storefl_update_msg u;
    assert_int_equal(storefl_update_decode(body, len, len, &u), 0);
    assert_int_equal(u.num_examples, 1);
    assert_true(u.noise_multiplier == 1.5);
    assert_int_equal(u.mode, STOREFL_PRIVACY_LOCAL);
    float back[8];
    assert_int_equal(storefl_tensor_to_f32(&u.tensors[0], back, 8), 0);
    for (int i = 0; i < 8; i++) {
      int64_t want = k[i];
      if (dts[t] == STOREFL_DTYPE_I8)
        want = want > 127 ? 127 : want < -127 ? -127 : want;
      assert_true(back[i] == (float)ldexp((double)want, -6));
    }
    if (dts[t] == STOREFL_DTYPE_I8)
      assert_true(u.tensors[0].scale == 0.015625f);
    free(body);
  }
  uint8_t *body = NULL;
  size_t len = 0;
  assert_int_equal(
      storefl_agent_encode_update_local(&m, d, NULL, 8, "s1", &r, STOREFL_DTYPE_F32, &body, &len),
      STOREFL_ERR_INVALID);
  r.scale_bits = 0;
  assert_int_equal(storefl_agent_encode_update_local(&m, d, k, 8, "s1", &r, STOREFL_DTYPE_F32, &body, &len),
                   STOREFL_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(update_local_release),
      cmocka_unit_test(quantize_unbiased),
      cmocka_unit_test(quantize_edges),
      cmocka_unit_test(backoff_jitter),
      cmocka_unit_test(psk_table),
      cmocka_unit_test(hostport),
      cmocka_unit_test(update_roundtrip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
