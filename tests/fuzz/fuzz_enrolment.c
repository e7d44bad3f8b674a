/* libFuzzer target: the ledger's enrolment list parser (storefl_enrolment_parse) on arbitrary bytes.
 * Every accepted list must hold valid, sorted, distinct store ids, no more than the limit, and
 * parsing its own rendering must give the same list back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/enrolment.h"
#include "storefl/error.h"

#define CHECK(c)                                                                                             \
  do {                                                                                                       \
    if (!(c))                                                                                                \
      abort();                                                                                               \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  storefl_enrolment e;
  char err[256];
  int rc = storefl_enrolment_parse((const char *)data, size, &e, err, sizeof err);
  if (rc != STOREFL_OK) {
    CHECK(e.ids == NULL && e.n == 0);
    return 0;
  }
  CHECK(e.n <= STOREFL_MAX_PARTICIPANTS);
  size_t total = 0;
  for (size_t i = 0; i < e.n; i++) {
    size_t l = strlen(e.ids[i]);
    CHECK(storefl_store_id_valid(e.ids[i], l));
    CHECK(i == 0 || strcmp(e.ids[i - 1], e.ids[i]) < 0);
    total += l + 1;
  }
  char *text = malloc(total ? total : 1);
  CHECK(text);
  size_t off = 0;
  for (size_t i = 0; i < e.n; i++) {
    size_t l = strlen(e.ids[i]);
    memcpy(text + off, e.ids[i], l);
    text[off + l] = '\n';
    off += l + 1;
  }
  storefl_enrolment again;
  CHECK(storefl_enrolment_parse(text, off, &again, err, sizeof err) == STOREFL_OK);
  CHECK(again.n == e.n);
  for (size_t i = 0; i < e.n; i++)
    CHECK(strcmp(again.ids[i], e.ids[i]) == 0);
  storefl_enrolment_free(&again);
  storefl_enrolment_free(&e);
  free(text);
  return 0;
}
