/* Whole-string number parsing shared by every configuration reader and command line. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "storefl/error.h"
#include "storefl/parse.h"

static void test_unsigned(void **state) {
  (void)state;
  uint64_t x = 7;
  assert_int_equal(storefl_parse_u64("42", 0, 100, &x), STOREFL_OK);
  assert_int_equal(x, 42);
  assert_int_equal(storefl_parse_u64("18446744073709551615", 0, UINT64_MAX, &x), STOREFL_OK);
  assert_true(x == UINT64_MAX);
  /* Regression: two of the former copies took an overflowing value as the maximum. */
  x = 7;
  assert_int_equal(storefl_parse_u64("99999999999999999999", 0, UINT64_MAX, &x), STOREFL_ERR_INVALID);
  assert_int_equal(x, 7);
  const char *bad[] = {"", "-1", " 1", "+1", "1 ", "1x", "0x10", "abc"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(storefl_parse_u64(bad[i], 0, UINT64_MAX, &x), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_parse_u64(NULL, 0, 1, &x), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_parse_u64("101", 0, 100, &x), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_parse_u64("4", 5, 100, &x), STOREFL_ERR_INVALID);
  uint32_t y;
  assert_int_equal(storefl_parse_u32("4294967295", 0, UINT32_MAX, &y), STOREFL_OK);
  assert_true(y == UINT32_MAX);
  assert_int_equal(storefl_parse_u32("4294967296", 0, UINT32_MAX, &y), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_parse_u32("010", 0, 100, &y), STOREFL_OK);
  assert_int_equal(y, 10);
}

static void test_floating(void **state) {
  (void)state;
  double d = 0;
  assert_int_equal(storefl_parse_double("-2.5e-3", -HUGE_VAL, HUGE_VAL, &d), STOREFL_OK);
  assert_true(d == -2.5e-3);
  const char *bad[] = {"", "nan", "inf", "-inf", "1e400", "1.0x", "."};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(storefl_parse_double(bad[i], -HUGE_VAL, HUGE_VAL, &d), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_parse_double("1.5", 0, 1, &d), STOREFL_ERR_INVALID);
  float f = 0;
  assert_int_equal(storefl_parse_float("0.005", 0, 1, &f), STOREFL_OK);
  assert_true(f == 0.005f); /* the nearest float, as strtof rounds it once */
  assert_int_equal(storefl_parse_float("1e39", -HUGE_VALF, HUGE_VALF, &f), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_parse_float("2", 0, 1, &f), STOREFL_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_unsigned), cmocka_unit_test(test_floating)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
