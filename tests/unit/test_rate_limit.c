/* The per-store token buckets behind the aggregator's 5.03 rate limit (aggregator/src/rate_limit.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "storefl/error.h"
#include "storefl/rate_limit.h"

static void test_invalid(void **state) {
  (void)state;
  storefl_rate_limit *rl = (storefl_rate_limit *)1;
  assert_int_equal(storefl_rate_limit_new(0, 10, 10, &rl), STOREFL_ERR_INVALID);
  assert_null(rl);
  assert_int_equal(storefl_rate_limit_new(-1, 10, 10, &rl), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rate_limit_new(INFINITY, 10, 10, &rl), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rate_limit_new(1, 0, 10, &rl), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rate_limit_new(1, 1, 0, &rl), STOREFL_ERR_INVALID);
}

/* Burst, then exactly rate per second; the wait it announces is when a token is really there. */
static void test_burst_and_refill(void **state) {
  (void)state;
  storefl_rate_limit *rl;
  assert_int_equal(storefl_rate_limit_new(2.0, 5, 16, &rl), STOREFL_OK);
  uint32_t wait = 0;
  int64_t t = 1000000;
  for (int i = 0; i < 5; i++)
    assert_int_equal(storefl_rate_limit_take(rl, "store-001", t, &wait), 1);
  assert_int_equal(storefl_rate_limit_take(rl, "store-001", t, &wait), 0);
  assert_int_equal(wait, 1); /* 0.5 s to the next token, rounded up to whole seconds */
  /* 499 ms later: still none; 500 ms: one. */
  assert_int_equal(storefl_rate_limit_take(rl, "store-001", t + 499, &wait), 0);
  assert_int_equal(storefl_rate_limit_take(rl, "store-001", t + 500, &wait), 1);
  assert_int_equal(storefl_rate_limit_take(rl, "store-001", t + 500, &wait), 0);
  /* Sustained: over 10 s at one request every 100 ms, exactly 20 (= 10 s x 2/s) are admitted. */
  int admitted = 0;
  for (int i = 1; i <= 100; i++)
    admitted += storefl_rate_limit_take(rl, "store-001", t + 500 + i * 100, &wait);
  assert_int_equal(admitted, 20);
  /* A long pause refills to the burst, not beyond. */
  t += 3600 * 1000;
  admitted = 0;
  for (int i = 0; i < 50; i++)
    admitted += storefl_rate_limit_take(rl, "store-001", t, &wait);
  assert_int_equal(admitted, 5);
  storefl_rate_limit_free(rl);
}

/* One store's flood does not touch another's bucket. */
static void test_per_store(void **state) {
  (void)state;
  storefl_rate_limit *rl;
  assert_int_equal(storefl_rate_limit_new(1.0, 3, 16, &rl), STOREFL_OK);
  uint32_t wait;
  int a = 0;
  for (int i = 0; i < 1000; i++)
    a += storefl_rate_limit_take(rl, "store-003", 5000, &wait);
  assert_int_equal(a, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(storefl_rate_limit_take(rl, "store-001", 5000, &wait), 1);
  assert_int_equal(storefl_rate_limit_take(rl, "store-001", 5000, &wait), 0);
  assert_int_equal(storefl_rate_limit_size(rl), 2);
  storefl_rate_limit_free(rl);
}

/* A slow rate announces a long wait: Max-Age must cover it. */
static void test_wait_seconds(void **state) {
  (void)state;
  storefl_rate_limit *rl;
  assert_int_equal(storefl_rate_limit_new(0.1, 1, 4, &rl), STOREFL_OK); /* one per 10 s */
  uint32_t wait = 0;
  assert_int_equal(storefl_rate_limit_take(rl, "s", 0, &wait), 1);
  assert_int_equal(storefl_rate_limit_take(rl, "s", 0, &wait), 0);
  assert_int_equal(wait, 10);
  assert_int_equal(storefl_rate_limit_take(rl, "s", 2500, &wait), 0);
  assert_int_equal(wait, 8); /* 7.5 s left */
  assert_int_equal(storefl_rate_limit_take(rl, "s", 10000, &wait), 1);
  /* A clock going backwards refills nothing (and does not underflow). */
  assert_int_equal(storefl_rate_limit_take(rl, "s", 0, &wait), 0);
  assert_true(wait >= 1 && wait <= 10);
  storefl_rate_limit_free(rl);
}

/* Memory stays bounded: a full table drops refilled buckets; if none is refilled, a new store is
 * refused (fails closed) until one is. */
static void test_bounded(void **state) {
  (void)state;
  storefl_rate_limit *rl;
  assert_int_equal(storefl_rate_limit_new(1.0, 2, 8, &rl), STOREFL_OK);
  uint32_t wait;
  char id[32];
  for (int i = 0; i < 8; i++) {
    snprintf(id, sizeof id, "store-%03d", i);
    assert_int_equal(storefl_rate_limit_take(rl, id, 0, &wait), 1);
  }
  assert_int_equal(storefl_rate_limit_size(rl), 8);
  assert_int_equal(storefl_rate_limit_take(rl, "store-new", 0, &wait), 0);
  assert_true(wait >= 1);
  assert_int_equal(storefl_rate_limit_size(rl), 8);
  /* Known stores still work. */
  assert_int_equal(storefl_rate_limit_take(rl, "store-000", 0, &wait), 1);
  /* 1 s later every bucket but store-000's has refilled (it took two tokens): they are dropped. */
  assert_int_equal(storefl_rate_limit_take(rl, "store-new", 1000, &wait), 1);
  assert_int_equal(storefl_rate_limit_size(rl), 2);
  /* Many distinct stores over time never grow the table beyond its bound. */
  for (int i = 0; i < 10000; i++) {
    snprintf(id, sizeof id, "s%d", i);
    (void)storefl_rate_limit_take(rl, id, 2000 + i * 10, &wait);
    assert_true(storefl_rate_limit_size(rl) <= 8);
  }
  storefl_rate_limit_free(rl);
}

static void test_bad_ids(void **state) {
  (void)state;
  storefl_rate_limit *rl;
  assert_int_equal(storefl_rate_limit_new(1.0, 2, 8, &rl), STOREFL_OK);
  uint32_t wait = 0;
  assert_int_equal(storefl_rate_limit_take(rl, "", 0, &wait), 0);
  char long_id[100];
  memset(long_id, 'a', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = 0;
  assert_int_equal(storefl_rate_limit_take(rl, long_id, 0, &wait), 0);
  assert_int_equal(wait, 1);
  assert_int_equal(storefl_rate_limit_size(rl), 0);
  storefl_rate_limit_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_invalid),   cmocka_unit_test(test_burst_and_refill),
      cmocka_unit_test(test_per_store), cmocka_unit_test(test_wait_seconds),
      cmocka_unit_test(test_bounded),   cmocka_unit_test(test_bad_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
