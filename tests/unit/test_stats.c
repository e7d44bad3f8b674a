/* storefl_percentile: nearest-rank percentiles as the load generator and the simulation report them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storefl/stats.h"

static void nearest_rank(void **state) {
  (void)state;
  double v[] = {5, 1, 4, 2, 3, 10, 9, 8, 7, 6}; /* 1..10, unsorted */
  assert_true(storefl_percentile(v, 10, 50) == 5);
  assert_true(storefl_percentile(v, 10, 99) == 10);
  assert_true(storefl_percentile(v, 10, 10) == 1);
  assert_true(storefl_percentile(v, 10, 11) == 2); /* ceil(1.1) = 2nd value */
  assert_true(storefl_percentile(v, 10, 100) == 10);
  assert_true(v[0] == 1 && v[9] == 10); /* sorted in place */
}

static void edge_cases(void **state) {
  (void)state;
  double one[] = {42};
  assert_true(storefl_percentile(one, 1, 50) == 42);
  assert_true(storefl_percentile(one, 1, 1) == 42);
  assert_true(storefl_percentile(NULL, 0, 50) == 0);
  double two[] = {3, 1};
  assert_true(storefl_percentile(two, 2, 50) == 1);
  assert_true(storefl_percentile(two, 2, 51) == 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(nearest_rank), cmocka_unit_test(edge_cases)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
