/*
 * Ranking metrics for one relevant item among n scored candidates, with exact tie handling.
 *
 * Ties are resolved by their expected value under uniformly random tie-breaking: if g candidates
 * score strictly higher than the relevant one and e others score exactly the same, the relevant
 * item's rank is uniform on g+1 .. g+1+e. HR@k and NDCG@k are the expectations over that rank, and
 * AUC counts a tied negative as 1/2. So a constant scorer scores exactly like a random ranking
 * (HR@k = min(k,n)/n, AUC = 1/2), and no method gains from ties in its scores.
 */
#ifndef STOREFL_EVAL_METRICS_H
#define STOREFL_EVAL_METRICS_H
#include <stddef.h>

typedef struct storefl_rank_metrics {
  double hr;   /* expected hit rate at k: P(rank <= k) */
  double ndcg; /* expected NDCG at k with one relevant item: E[1/log2(rank+1); rank <= k] */
  double auc;  /* fraction of negatives ranked below the relevant item, ties 1/2; 1/2 if no negative */
} storefl_rank_metrics;

/* Metrics of candidate `relevant` (index into scores[0..n-1]) at cut-off k. NaN scores are
 * treated as the lowest possible score (a broken model must not look good).
 * Errors: STOREFL_ERR_INVALID if n == 0, relevant >= n or k == 0. */
int storefl_rank_metrics_compute(const float *scores, size_t n, size_t relevant, unsigned k,
                                 storefl_rank_metrics *out);

/* The same metrics from the counts alone: `greater` candidates score above the relevant one,
 * `equal` others tie with it, n candidates in all. */
int storefl_rank_metrics_from_counts(size_t greater, size_t equal, size_t n, unsigned k,
                                     storefl_rank_metrics *out);

/* Expected metrics of a uniformly random ranking of n candidates (the analytic random baseline). */
int storefl_rank_metrics_random(size_t n, unsigned k, storefl_rank_metrics *out);

#endif
