/* Budget checks shared by agent and aggregator: the q rule, refusal past the cap with the figures,
 * the secret self-sampling draw, and the central-noise hook. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "storefl/accountant.h"
#include "storefl/budget.h"
#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/rng.h"

static void test_q_rule(void **state) {
  (void)state;
  assert_true(storefl_budget_effective_q(1, 0.1, 1) == 0.1); /* central, deadline: amplified */
  assert_true(storefl_budget_effective_q(1, 0.1, 0) == 1.0); /* closes on target count */
  assert_true(storefl_budget_effective_q(0, 0.1, 1) == 1.0); /* local: aggregator sees who sent */
}

static void test_agent_refuses_past_cap(void **state) {
  (void)state;
  double rdp[STOREFL_BUDGET_ORDERS] = {0};
  double now, after, want;
  /* Spend rounds until the next one would pass cap 3.0; the spend always matches the accountant. */
  int rounds = 0;
  for (;;) {
    int rc = storefl_budget_check(rdp, 1.0, 4.0, 1e-5, 3.0, &now, &after);
    if (rc == STOREFL_ERR_BUDGET)
      break;
    assert_int_equal(rc, STOREFL_OK);
    assert_int_equal(storefl_budget_add_round(rdp, 1.0, 4.0), STOREFL_OK);
    rounds++;
    assert_int_equal(storefl_budget_epsilon(rdp, 1e-5, &now), STOREFL_OK);
    assert_int_equal(storefl_dp_epsilon(1.0, 4.0, (uint64_t)rounds, 1e-5, NULL, &want, NULL), STOREFL_OK);
    assert_true(fabs(now - want) <= 1e-12 * want);
    assert_true(now <= 3.0);
    assert_true(rounds < 1000);
  }
  assert_true(rounds >= 1);
  assert_true(now <= 3.0 && after > 3.0); /* the figures the agent reports when it refuses */
  double e0;
  assert_int_equal(storefl_budget_epsilon(NULL, 1e-5, &e0), STOREFL_OK);
  assert_true(e0 == 0);
  assert_int_equal(storefl_budget_check(NULL, 0.0, 1.0, 1e-5, 1.0, NULL, NULL), STOREFL_ERR_INVALID);
}

static void test_self_sample(void **state) {
  (void)state;
  storefl_rng *rng;
  assert_int_equal(storefl_rng_create("budget", &rng), STOREFL_OK);
  enum { N = 200000 };
  long in = 0;
  for (int i = 0; i < N; i++) {
    int p;
    assert_int_equal(storefl_budget_self_sample(rng, 0.05, &p), STOREFL_OK);
    in += p;
  }
  assert_true(fabs(in - N * 0.05) < 5 * sqrt(N * 0.05 * 0.95));
  int p;
  assert_int_equal(storefl_budget_self_sample(rng, 0.0, &p), STOREFL_ERR_INVALID);
  storefl_rng_free(rng);
}

static void test_central_noise_hook(void **state) {
  (void)state;
  storefl_rng *rng, *test_rng;
  assert_int_equal(storefl_rng_create("central", &rng), STOREFL_OK);
  assert_int_equal(storefl_rng_create_insecure_test_seed(1, &test_rng), STOREFL_OK);
  enum { N = 20000 };
  static int64_t sums[N];
  for (int i = 0; i < N; i++)
    sums[i] = 1000000;
  assert_int_equal(storefl_dp_central_noise_hook(test_rng, sums, N, 100.0), STOREFL_ERR_CRYPTO);
  for (int i = 0; i < N; i++)
    assert_true(sums[i] == 1000000); /* refused before touching anything */
  assert_int_equal(storefl_dp_central_noise_hook(rng, sums, N, 100.0), STOREFL_OK);
  double s = 0, s2 = 0;
  for (int i = 0; i < N; i++) {
    double d = (double)(sums[i] - 1000000);
    s += d;
    s2 += d * d;
  }
  /* Exactly one draw of sd 100 per coordinate: variance 10^4 (two draws would give 2*10^4). */
  double var = s2 / N;
  assert_true(fabs(s / N) < 5 * 100 / sqrt(N));
  assert_true(fabs(var - 1e4) < 5 * 1e4 * sqrt(2.0 / N));
  storefl_rng_free(rng);
  storefl_rng_free(test_rng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_q_rule),
      cmocka_unit_test(test_agent_refuses_past_cap),
      cmocka_unit_test(test_self_sample),
      cmocka_unit_test(test_central_noise_hook),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
