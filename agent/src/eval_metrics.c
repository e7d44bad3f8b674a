/* Ranking metrics with expected-value tie handling; see eval_metrics.h. */
#include "eval_metrics.h"

#include <math.h>

#include "storefl/error.h"

int storefl_rank_metrics_from_counts(size_t greater, size_t equal, size_t n, unsigned k,
                                     storefl_rank_metrics *out) {
  if (!out || n == 0 || k == 0 || greater + equal + 1 > n)
    return STOREFL_ERR_INVALID;
  /* Rank is uniform on [lo, hi]. Sum over the part of that interval within the cut-off. */
  size_t lo = greater + 1, hi = greater + 1 + equal;
  double hits = 0.0, gain = 0.0;
  for (size_t r = lo; r <= hi && r <= k; r++) {
    hits += 1.0;
    gain += 1.0 / log2((double)r + 1.0);
  }
  double m = (double)(equal + 1);
  out->hr = hits / m;
  out->ndcg = gain / m;
  size_t neg = n - 1;
  if (neg == 0) {
    out->auc = 0.5;
  } else {
    size_t lower = n - 1 - greater - equal;
    out->auc = ((double)lower + 0.5 * (double)equal) / (double)neg;
  }
  return STOREFL_OK;
}

int storefl_rank_metrics_compute(const float *scores, size_t n, size_t relevant, unsigned k,
                                 storefl_rank_metrics *out) {
  if (!scores || n == 0 || relevant >= n || k == 0 || !out)
    return STOREFL_ERR_INVALID;
  float s = scores[relevant];
  size_t greater = 0, equal = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == relevant)
      continue;
    float x = scores[i];
    if (isnan(s)) {
      /* NaN is the lowest score: every non-NaN candidate is above, NaNs tie. */
      if (isnan(x))
        equal++;
      else
        greater++;
    } else if (isnan(x)) {
      continue;
    } else if (x > s) {
      greater++;
    } else if (x == s) {
      equal++;
    }
  }
  return storefl_rank_metrics_from_counts(greater, equal, n, k, out);
}

int storefl_rank_metrics_random(size_t n, unsigned k, storefl_rank_metrics *out) {
  if (n == 0)
    return STOREFL_ERR_INVALID;
  return storefl_rank_metrics_from_counts(0, n - 1, n, k, out);
}
