/* Fuzzes the CSV reader and the retail row reader on arbitrary bytes: header mapping, quoting,
 * number and time parsing, classification. The first byte picks the column mapping so that
 * both the default layout and a custom one (with category/brand/kind) are exercised. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/retail_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  if (data[0] & 1) {
    static const char *const KV[][2] = {{"product", "p"}, {"text", "t"},     {"time", "ts"},
                                        {"basket", "b"},  {"shopper", "s"},  {"quantity", "q"},
                                        {"price", "pr"},  {"category", "c"}, {"brand", "br"},
                                        {"kind", "k"},    {"country", ""}};
    for (size_t i = 0; i < sizeof KV / sizeof KV[0]; i++)
      if (storefl_retail_columns_set(&cols, KV[i][0], KV[i][1]) != STOREFL_OK)
        __builtin_trap();
  }
  storefl_retail_reader *r = NULL;
  char err[256];
  if (storefl_retail_open_mem(data + 1, size - 1, &cols, &r, err, sizeof err) != STOREFL_OK)
    return 0;
  storefl_retail_row row;
  int rc;
  unsigned rows = 0;
  while ((rc = storefl_retail_next(r, &row)) != 0) {
    if (rc == 1) {
      /* Invariants every consumer relies on. */
      if (!row.code || !row.text || !row.basket || !row.shopper || !row.category || !row.brand ||
          !row.country)
        __builtin_trap();
      if (row.flags != storefl_retail_classify(row.basket, row.code, row.quantity, row.price, row.text))
        __builtin_trap();
      for (const char *p = row.code; *p; p++)
        if (*p >= 'a' && *p <= 'z')
          __builtin_trap();
      char buf[32];
      storefl_format_time(row.time, buf, sizeof buf);
      int64_t back;
      if (storefl_parse_time(buf, &back) != STOREFL_OK || back != row.time)
        __builtin_trap();
    } else {
      if (storefl_retail_failed(r))
        break;
      if (strncmp(storefl_retail_error(r), "line ", 5) != 0)
        __builtin_trap(); /* a recoverable error must name its line */
    }
    if (++rows > 100000)
      break;
  }
  storefl_retail_close(r);
  return 0;
}
