/* libFuzzer: arbitrary bytes as a retailer export through the evaluation loader, both splits and
 * the baselines. Any input must either be rejected with an error or evaluate without memory errors. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "eval_data.h"
#include "eval_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  storefl_eval_load_opts lo;
  memset(&lo, 0, sizeof lo);
  lo.max_rows = 5000;
  lo.max_bad_rows = 5000;
  storefl_eval_data *d = NULL;
  char err[256];
  if (storefl_eval_data_load_mem(data, size, &lo, &d, err, sizeof err) != 0)
    return 0;
  for (int c = 0; c < 2; c++)
    for (int r = 0; r < 2; r++) {
      storefl_eval_split_opts o = {.clients = (storefl_eval_clients)c,
                                   .regime = (storefl_eval_regime)r,
                                   .min_customer_lines = 1,
                                   .adapt_days = 1};
      storefl_eval_split *s = NULL;
      if (storefl_eval_split_build(d, &o, &s) != 0)
        continue;
      storefl_eval_method m[3];
      size_t n = 0;
      if (storefl_eval_method_random(&m[n]) == 0)
        n++;
      if (storefl_eval_method_popularity(d, s, 0, &m[n]) == 0)
        n++;
      if (storefl_eval_method_tfidf(d, s, &m[n]) == 0)
        n++;
      storefl_eval_result res[3];
      (void)storefl_eval_run(d, s, m, n, res, NULL, NULL);
      for (size_t i = 0; i < n; i++)
        if (m[i].destroy)
          m[i].destroy(m[i].state);
      storefl_eval_split_free(s);
    }
  storefl_eval_data_free(d);
  return 0;
}
