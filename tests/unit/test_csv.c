/* RFC 4180 reader: quoting, line ends, limits, errors with line numbers, gzip input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "storefl/csv.h"
#include "storefl/error.h"

static storefl_csv *open_str(const char *s, const storefl_csv_limits *lim) {
  storefl_csv *r = NULL;
  assert_int_equal(storefl_csv_open_mem(s, strlen(s), lim, &r), STOREFL_OK);
  return r;
}

static void test_quoting_and_line_ends(void **state) {
  (void)state;
  storefl_csv *r = open_str("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\n\"multi\nline\",2,3\nlast,,", NULL);
  assert_int_equal(storefl_csv_next(r), 1);
  assert_int_equal(storefl_csv_nfields(r), 3);
  assert_string_equal(storefl_csv_field(r, 2, NULL), "c");
  assert_int_equal(storefl_csv_find(r, "b"), 1);
  assert_int_equal(storefl_csv_find(r, "z"), -1);
  assert_int_equal(storefl_csv_next(r), 1);
  assert_int_equal(storefl_csv_line(r), 2);
  assert_int_equal(storefl_csv_nfields(r), 3);
  assert_string_equal(storefl_csv_field(r, 0, NULL), "x, y");
  size_t len;
  assert_string_equal(storefl_csv_field(r, 1, &len), "say \"hi\"");
  assert_int_equal(len, 8);
  assert_string_equal(storefl_csv_field(r, 2, NULL), "");
  assert_int_equal(storefl_csv_next(r), 1);
  assert_int_equal(storefl_csv_line(r), 3);
  assert_string_equal(storefl_csv_field(r, 0, NULL), "multi\nline");
  assert_int_equal(storefl_csv_next(r), 1);
  assert_int_equal(storefl_csv_line(r), 5);
  assert_int_equal(storefl_csv_nfields(r), 3);
  assert_null(storefl_csv_field(r, 3, NULL));
  assert_int_equal(storefl_csv_next(r), 0);
  storefl_csv_close(r);
}

static void expect_error(const char *text, int code, const char *msg, const storefl_csv_limits *lim) {
  storefl_csv *r = open_str(text, lim);
  int rc;
  while ((rc = storefl_csv_next(r)) == 1) {
  }
  assert_int_equal(rc, code);
  assert_non_null(strstr(storefl_csv_error(r), msg));
  assert_int_equal(storefl_csv_next(r), code); /* stays failed */
  storefl_csv_close(r);
}

static void test_errors(void **state) {
  (void)state;
  expect_error("a\n\"open", STOREFL_ERR_INVALID, "line 2: unterminated", NULL);
  expect_error("a\nb\n\"x\"y\n", STOREFL_ERR_INVALID, "line 3: characters after a closing quote", NULL);
  expect_error("a\nb\"c\n", STOREFL_ERR_INVALID, "line 2: quote inside", NULL);
  storefl_csv_limits small = {.max_record_bytes = 8, .max_fields = 3};
  expect_error("1234,5678,90\n", STOREFL_ERR_TOO_LARGE, "line 1: record longer", &small);
  expect_error("1,2,3,4\n", STOREFL_ERR_TOO_LARGE, "more fields", &small);
}

static void test_gzip_file(void **state) {
  (void)state;
  char path[] = "/tmp/storefl-csv-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  gzFile gz = gzopen(path, "wb");
  assert_non_null(gz);
  gzputs(gz, "InvoiceNo,StockCode\n");
  for (int i = 0; i < 100000; i++)
    gzprintf(gz, "%d,\"%05d\"\n", i, i % 99999);
  assert_int_equal(gzclose(gz), Z_OK);
  storefl_csv *r = NULL;
  assert_int_equal(storefl_csv_open(path, NULL, &r), STOREFL_OK);
  assert_int_equal(storefl_csv_next(r), 1);
  assert_int_equal(storefl_csv_find(r, "StockCode"), 1);
  long rows = 0;
  int rc;
  while ((rc = storefl_csv_next(r)) == 1) {
    assert_int_equal(atol(storefl_csv_field(r, 0, NULL)), rows);
    rows++;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(rows, 100000);
  assert_true(storefl_csv_offset(r) > 0);
  storefl_csv_close(r);
  unlink(path);
  assert_int_equal(storefl_csv_open("/nonexistent/x.csv", NULL, &r), STOREFL_ERR_IO);
  assert_null(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quoting_and_line_ends),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_gzip_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
