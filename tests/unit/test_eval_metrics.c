/* Ranking metrics: hand-computed cases, exact tie handling, and "a constant scorer is random". */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "eval_metrics.h"
#include "storefl/error.h"

#define EPS 1e-12

static void test_hand_computed(void **state) {
  (void)state;
  storefl_rank_metrics m;
  /* Relevant (index 2, score 0.7) ranks 2nd of 4 without ties. */
  const float s1[] = {0.9f, 0.1f, 0.7f, 0.3f};
  assert_int_equal(storefl_rank_metrics_compute(s1, 4, 2, 10, &m), STOREFL_OK);
  assert_true(fabs(m.hr - 1.0) < EPS);
  assert_true(fabs(m.ndcg - 1.0 / log2(3.0)) < EPS);
  assert_true(fabs(m.auc - 2.0 / 3.0) < EPS);
  /* Ranked first: NDCG 1, AUC 1. */
  assert_int_equal(storefl_rank_metrics_compute(s1, 4, 0, 10, &m), STOREFL_OK);
  assert_true(fabs(m.ndcg - 1.0) < EPS && fabs(m.auc - 1.0) < EPS);
  /* Ranked last: AUC 0; outside a cut-off of 3: HR and NDCG 0. */
  assert_int_equal(storefl_rank_metrics_compute(s1, 4, 1, 3, &m), STOREFL_OK);
  assert_true(m.hr == 0.0 && m.ndcg == 0.0 && m.auc == 0.0);
  /* At a cut-off of 4 the last rank counts: 1/log2(5). */
  assert_int_equal(storefl_rank_metrics_compute(s1, 4, 1, 4, &m), STOREFL_OK);
  assert_true(fabs(m.hr - 1.0) < EPS && fabs(m.ndcg - 1.0 / log2(5.0)) < EPS);
}

static void test_ties_expected_value(void **state) {
  (void)state;
  storefl_rank_metrics m;
  /* One above, relevant tied with two others, one below: rank uniform on {2, 3, 4}. */
  const float s[] = {5.0f, 2.0f, 2.0f, 2.0f, 1.0f};
  assert_int_equal(storefl_rank_metrics_compute(s, 5, 2, 3, &m), STOREFL_OK);
  assert_true(fabs(m.hr - 2.0 / 3.0) < EPS);
  assert_true(fabs(m.ndcg - (1.0 / log2(3.0) + 1.0 / log2(4.0)) / 3.0) < EPS);
  /* Negatives: 1 above, 2 tied (1/2 each), 1 below -> (1 + 1) / 4. */
  assert_true(fabs(m.auc - 0.5) < EPS);
}

/* Brute force: average the metric of the tie-free ranking over every order of the tied block. */
static void test_ties_match_enumeration(void **state) {
  (void)state;
  /* With g above and e tied, every placement of the relevant item within the tied block is
   * equally likely; enumerate the placements. */
  for (size_t n = 1; n <= 30; n++)
    for (size_t g = 0; g < n; g++)
      for (size_t e = 0; g + e + 1 <= n; e++) {
        double hr = 0, nd = 0, auc = 0;
        for (size_t pos = 0; pos <= e; pos++) {
          size_t rank = g + 1 + pos;
          if (rank <= 10) {
            hr += 1;
            nd += 1.0 / log2((double)rank + 1.0);
          }
          auc += n > 1 ? (double)(n - rank) / (double)(n - 1) : 0.5;
        }
        storefl_rank_metrics m;
        assert_int_equal(storefl_rank_metrics_from_counts(g, e, n, 10, &m), STOREFL_OK);
        assert_true(fabs(m.hr - hr / (double)(e + 1)) < 1e-12);
        assert_true(fabs(m.ndcg - nd / (double)(e + 1)) < 1e-12);
        assert_true(fabs(m.auc - auc / (double)(e + 1)) < 1e-12);
      }
}

/* A constant scorer must score exactly like the analytic expectation of a random ranking, which
 * is also the average over the n equally likely positions of the relevant item. */
static void test_constant_is_random(void **state) {
  (void)state;
  float s[200];
  for (size_t i = 0; i < 200; i++)
    s[i] = 0.25f;
  for (size_t n = 1; n <= 200; n++) {
    double hr = 0, nd = 0;
    for (size_t r = 1; r <= n && r <= 10; r++) {
      hr += 1.0;
      nd += 1.0 / log2((double)r + 1.0);
    }
    hr /= (double)n;
    nd /= (double)n;
    storefl_rank_metrics c, r;
    assert_int_equal(storefl_rank_metrics_compute(s, n, n / 2, 10, &c), STOREFL_OK);
    assert_int_equal(storefl_rank_metrics_random(n, 10, &r), STOREFL_OK);
    assert_true(fabs(c.hr - hr) < 1e-12 && fabs(c.ndcg - nd) < 1e-12 && c.auc == 0.5);
    assert_true(c.hr == r.hr && c.ndcg == r.ndcg && c.auc == r.auc);
    assert_true(fabs(c.hr - (n < 10 ? 1.0 : 10.0 / (double)n)) < 1e-12);
  }
}

/* Averaged over all n positions of the relevant item in a strict ranking, metrics equal random. */
static void test_average_over_positions_is_random(void **state) {
  (void)state;
  enum { N = 37 };
  float s[N];
  for (size_t i = 0; i < N; i++)
    s[i] = (float)i;
  double hr = 0, nd = 0, auc = 0;
  for (size_t rel = 0; rel < N; rel++) {
    storefl_rank_metrics m;
    assert_int_equal(storefl_rank_metrics_compute(s, N, rel, 10, &m), STOREFL_OK);
    hr += m.hr;
    nd += m.ndcg;
    auc += m.auc;
  }
  storefl_rank_metrics r;
  assert_int_equal(storefl_rank_metrics_random(N, 10, &r), STOREFL_OK);
  assert_true(fabs(hr / N - r.hr) < 1e-12 && fabs(nd / N - r.ndcg) < 1e-12 && fabs(auc / N - r.auc) < 1e-12);
}

static void test_nan_is_lowest_and_errors(void **state) {
  (void)state;
  storefl_rank_metrics m;
  const float s[] = {NAN, 1.0f, NAN};
  /* A NaN relevant score ranks below every number and ties with the other NaN. */
  assert_int_equal(storefl_rank_metrics_compute(s, 3, 0, 10, &m), STOREFL_OK);
  assert_true(fabs(m.auc - 0.25) < EPS);
  /* A numeric relevant score beats NaN candidates. */
  assert_int_equal(storefl_rank_metrics_compute(s, 3, 1, 10, &m), STOREFL_OK);
  assert_true(m.auc == 1.0 && m.ndcg == 1.0);
  assert_int_equal(storefl_rank_metrics_compute(s, 0, 0, 10, &m), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rank_metrics_compute(s, 3, 3, 10, &m), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rank_metrics_compute(s, 3, 0, 0, &m), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rank_metrics_from_counts(2, 1, 3, 10, &m), STOREFL_ERR_INVALID);
  /* A single candidate: a hit at rank 1, AUC 1/2 by convention (no negative). */
  assert_int_equal(storefl_rank_metrics_compute(s + 1, 1, 0, 10, &m), STOREFL_OK);
  assert_true(m.hr == 1.0 && m.ndcg == 1.0 && m.auc == 0.5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_computed),
      cmocka_unit_test(test_ties_expected_value),
      cmocka_unit_test(test_ties_match_enumeration),
      cmocka_unit_test(test_constant_is_random),
      cmocka_unit_test(test_average_over_positions_is_random),
      cmocka_unit_test(test_nan_is_lowest_and_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
