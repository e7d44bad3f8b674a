/* The ledger's enrolment list (storefl/enrolment.h): format, limits and the file mode rule. */
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

#include "storefl/enrolment.h"
#include "storefl/error.h"

static int parse(const char *text, storefl_enrolment *e, char *err) {
  return storefl_enrolment_parse(text, strlen(text), e, err, 256);
}

static void test_format(void **state) {
  (void)state;
  storefl_enrolment e;
  char err[256] = "";
  assert_int_equal(parse("# stores\n\nstore-b\n  store-a\t\r\nstore.c_3", &e, err), STOREFL_OK);
  assert_int_equal(e.n, 3);
  assert_string_equal(e.ids[0], "store-a"); /* sorted */
  assert_string_equal(e.ids[1], "store-b");
  assert_string_equal(e.ids[2], "store.c_3");
  storefl_enrolment_free(&e);
  assert_int_equal(parse("", &e, err), STOREFL_OK);
  assert_int_equal(e.n, 0);
  assert_int_equal(parse("a\nb\na\n", &e, err), STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "twice"));
  assert_true(e.ids == NULL && e.n == 0);
  assert_int_equal(parse("a\nstore 2\n", &e, err), STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "line 2"));
  char long_id[80];
  memset(long_id, 'x', 65);
  long_id[65] = 0;
  assert_int_equal(parse(long_id, &e, err), STOREFL_ERR_INVALID);
  /* at most one ledger entry's worth of stores */
  size_t cap = (STOREFL_MAX_PARTICIPANTS + 1) * 8;
  char *many = malloc(cap);
  assert_non_null(many);
  size_t off = 0;
  for (int i = 0; i <= STOREFL_MAX_PARTICIPANTS; i++)
    off += (size_t)snprintf(many + off, cap - off, "s%05d\n", i);
  assert_int_equal(storefl_enrolment_parse(many, off, &e, err, sizeof err), STOREFL_ERR_INVALID);
  off -= 7; /* drop the last line: exactly the limit */
  assert_int_equal(storefl_enrolment_parse(many, off, &e, err, sizeof err), STOREFL_OK);
  assert_int_equal(e.n, STOREFL_MAX_PARTICIPANTS);
  storefl_enrolment_free(&e);
  free(many);
  assert_int_equal(storefl_enrolment_parse("a", STOREFL_ENROLMENT_MAX_BYTES + 1, &e, err, sizeof err),
                   STOREFL_ERR_TOO_LARGE);
}

static void test_file_mode(void **state) {
  (void)state;
  char dir[] = "/tmp/storefl-enrol-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof path, "%s/stores.txt", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("store-1\nstore-2\n", f);
  assert_int_equal(fclose(f), 0);
  storefl_enrolment e;
  char err[256] = "";
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(storefl_enrolment_load(path, &e, err, sizeof err), STOREFL_ERR_FORBIDDEN);
  assert_non_null(strstr(err, "chmod 600"));
  assert_int_equal(chmod(path, 0600), 0);
  assert_int_equal(storefl_enrolment_load(path, &e, err, sizeof err), STOREFL_OK);
  assert_int_equal(e.n, 2);
  storefl_enrolment_free(&e);
  assert_int_equal(storefl_enrolment_load(dir, &e, err, sizeof err), STOREFL_ERR_INVALID); /* a directory */
  char missing[160];
  snprintf(missing, sizeof missing, "%s/none", dir);
  assert_int_equal(storefl_enrolment_load(missing, &e, err, sizeof err), STOREFL_ERR_IO);
  assert_int_equal(unlink(path), 0);
  assert_int_equal(rmdir(dir), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_file_mode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
