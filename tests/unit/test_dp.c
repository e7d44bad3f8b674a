/* CSPRNG, clipping, grid encoding and the discrete Gaussian sampler (distribution tests over
 * >= 10^6 draws with thresholds derived from the sample size and the exact pmf). */
#define _DEFAULT_SOURCE /* M_PI */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/rng.h"

/* Every statistical check below fails by chance with probability about 1e-6 (5 sigma two-sided is
 * 5.7e-7; chi-square at its 1e-6 critical value). */
#define Z_BOUND 5.0
#define CHI2_P 1e-6

static storefl_rng *secure_rng(void) {
  storefl_rng *r = NULL;
  assert_int_equal(storefl_rng_create("test_dp", &r), STOREFL_OK);
  assert_false(storefl_rng_is_insecure(r));
  return r;
}

/* Regularized upper incomplete gamma Q(a, x) (series for x < a+1, Lentz continued fraction
 * otherwise), to get chi-square critical values instead of hard-coding them. */
static double gamma_q(double a, double x) {
  double gln = lgamma(a);
  if (x < a + 1) {
    double ap = a, sum = 1.0 / a, del = sum;
    for (int n = 0; n < 100000; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (fabs(del) < fabs(sum) * 1e-16)
        break;
    }
    return 1.0 - sum * exp(-x + a * log(x) - gln);
  }
  double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (int i = 1; i < 100000; i++) {
    double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (fabs(d) < 1e-300)
      d = 1e-300;
    c = b + an / c;
    if (fabs(c) < 1e-300)
      c = 1e-300;
    d = 1 / d;
    double del = d * c;
    h *= del;
    if (fabs(del - 1) < 1e-16)
      break;
  }
  return exp(-x + a * log(x) - gln) * h;
}

static double chi2_critical(int df, double p) {
  double lo = 0, hi = df + 100.0 * sqrt((double)df) + 100;
  for (int i = 0; i < 200; i++) {
    double mid = 0.5 * (lo + hi);
    if (gamma_q(df / 2.0, mid / 2.0) > p)
      lo = mid;
    else
      hi = mid;
  }
  return hi;
}

static void test_chi2_critical_values(void **state) {
  (void)state;
  /* Textbook values (e.g. NIST/SEMATECH tables): chi2_{0.95}(1) = 3.841, chi2_{0.99}(10) = 23.209. */
  assert_true(fabs(chi2_critical(1, 0.05) - 3.841) < 1e-3);
  assert_true(fabs(chi2_critical(10, 0.01) - 23.209) < 1e-3);
}

static void test_rng_basics(void **state) {
  (void)state;
  storefl_rng *a = NULL, *b = NULL, *s1 = secure_rng(), *s2 = secure_rng();
  assert_int_equal(storefl_rng_create_insecure_test_seed(42, &a), STOREFL_OK);
  assert_int_equal(storefl_rng_create_insecure_test_seed(42, &b), STOREFL_OK);
  assert_true(storefl_rng_is_insecure(a));
  uint8_t x[3000], y[3000];
  assert_int_equal(storefl_rng_bytes(a, x, sizeof x), STOREFL_OK);
  assert_int_equal(storefl_rng_bytes(b, y, sizeof y), STOREFL_OK);
  assert_memory_equal(x, y, sizeof x); /* the test seed is reproducible */
  assert_int_equal(storefl_rng_bytes(s1, x, 32), STOREFL_OK);
  assert_int_equal(storefl_rng_bytes(s2, y, 32), STOREFL_OK);
  assert_memory_not_equal(x, y, 32); /* two OS-seeded generators differ */
  uint64_t v;
  assert_int_equal(storefl_rng_below(s1, 0, &v), STOREFL_ERR_INVALID);
  int bit;
  assert_int_equal(storefl_rng_bernoulli(s1, 1.5, &bit), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rng_bernoulli(s1, NAN, &bit), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_rng_bernoulli_ratio(s1, 3, 2, &bit), STOREFL_ERR_INVALID);

  /* Uniform below 6 (not a power of two: modulo bias would show): chi-square, 5 df. */
  enum { N = 600000 };
  long cnt[6] = {0};
  for (int i = 0; i < N; i++) {
    assert_int_equal(storefl_rng_below(s1, 6, &v), STOREFL_OK);
    assert_true(v < 6);
    cnt[v]++;
  }
  double chi = 0;
  for (int i = 0; i < 6; i++)
    chi += (cnt[i] - N / 6.0) * (cnt[i] - N / 6.0) / (N / 6.0);
  assert_true(chi < chi2_critical(5, CHI2_P));

  /* Bernoulli(p) for a double p and for a ratio, within 5 sigma. */
  const double ps[] = {0.3, 1e-3, 0.999, 0.5};
  for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
    long ones = 0;
    for (int i = 0; i < N; i++) {
      assert_int_equal(storefl_rng_bernoulli(s1, ps[k], &bit), STOREFL_OK);
      ones += bit;
    }
    double sd = sqrt(N * ps[k] * (1 - ps[k]));
    assert_true(fabs(ones - N * ps[k]) < Z_BOUND * sd);
  }
  long ones = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(storefl_rng_bernoulli_ratio(s1, 2, 7, &bit), STOREFL_OK);
    ones += bit;
  }
  assert_true(fabs(ones - N * 2.0 / 7) < Z_BOUND * sqrt(N * (2.0 / 7) * (5.0 / 7)));
  storefl_rng_free(a);
  storefl_rng_free(b);
  storefl_rng_free(s1);
  storefl_rng_free(s2);
}

static void test_clip(void **state) {
  (void)state;
  float a[3] = {3, 0, 0}, b[2] = {0, 4};
  storefl_dp_span sp[2] = {{a, 3}, {b, 2}};
  double pre, norm;
  assert_int_equal(storefl_dp_clip(sp, 2, 1.0, &pre), STOREFL_OK);
  assert_true(fabs(pre - 5.0) < 1e-12);
  assert_int_equal(storefl_dp_l2_norm(sp, 2, &norm), STOREFL_OK);
  assert_true(norm <= 1.0 && norm > 1.0 - 1e-6);
  assert_true(fabs(a[0] - 0.6f) < 1e-6 && fabs(b[1] - 0.8f) < 1e-6); /* direction kept */
  /* Under the norm: untouched. */
  float c[2] = {0.1f, 0.2f};
  storefl_dp_span sc = {c, 2};
  assert_int_equal(storefl_dp_clip(&sc, 1, 1.0, &pre), STOREFL_OK);
  assert_true(c[0] == 0.1f && c[1] == 0.2f);
  /* NaN rejected, data unchanged. */
  float d[2] = {NAN, 10};
  storefl_dp_span sd = {d, 2};
  assert_int_equal(storefl_dp_clip(&sd, 1, 1.0, &pre), STOREFL_ERR_NONFINITE);
  assert_true(d[1] == 10);
  assert_int_equal(storefl_dp_clip(&sc, 1, 0.0, &pre), STOREFL_ERR_INVALID);
}

static void test_grid_norm_bound(void **state) {
  (void)state;
  /* 10000 coordinates each at 0.6 grid steps: norm 60 steps, but rounding makes each 1 step (norm
   * 100). With C = 60 steps, the encoder must shrink until the integer norm is <= 60. */
  enum { N = 10000 };
  static float x[N];
  static int64_t q[N];
  for (int i = 0; i < N; i++)
    x[i] = 0.6f * 0.125f;
  storefl_dp_span sp = {x, N};
  double lambda;
  assert_int_equal(storefl_dp_to_grid(&sp, 1, 0.125, 60 * 0.125, q, &lambda), STOREFL_OK);
  double s = 0;
  for (int i = 0; i < N; i++)
    s += (double)q[i] * (double)q[i];
  assert_true(s <= 3600.0);
  assert_true(lambda < 1.0);
  /* Without rounding trouble, exact values. */
  float y[3] = {0.5f, -0.25f, 0.125f};
  storefl_dp_span sy = {y, 3};
  int64_t qy[3];
  assert_int_equal(storefl_dp_to_grid(&sy, 1, 0.125, 1.0, qy, &lambda), STOREFL_OK);
  assert_true(lambda == 1.0);
  assert_true(qy[0] == 4 && qy[1] == -2 && qy[2] == 1);
  int8_t q8[3];
  int64_t big[3] = {200, -3, -500};
  size_t sat;
  assert_int_equal(storefl_dp_grid_to_i8(big, 3, q8, &sat), STOREFL_OK);
  assert_true(q8[0] == 127 && q8[1] == -3 && q8[2] == -127 && sat == 2);
}

/* Draws n samples at scale sigma and checks mean, variance, tail mass and (if chi2) a chi-square
 * against the exact pmf P(k) = exp(-k^2/(2 s2)) / Z, s2 being the sampler's exact sigma^2. */
static void check_distribution(double sigma, long n, int chi2) {
  storefl_rng *rng = secure_rng();
  double s2;
  assert_int_equal(storefl_dgauss_sigma2(sigma, &s2), STOREFL_OK);
  assert_true(s2 >= sigma * sigma);
  /* Exact moments from the pmf, summed to |k| <= 40 sigma + 10 (the rest is below 1e-300). */
  long kmax = (long)(40 * sqrt(s2)) + 10;
  long tail_k = (long)ceil(2 * sqrt(s2)); /* tail event: |X| >= tail_k */
  double z = 0, m2 = 0, m4 = 0, p_tail = 0;
  if (s2 > 1e6) {
    /* Too many integers to sum: by Poisson summation the discrete moments equal the continuous ones
     * up to exp(-2 pi^2 s2) relative, and the midpoint rule gives the tail to O(k/s2^2). */
    z = sqrt(2 * M_PI * s2);
    m2 = s2;
    m4 = 3 * s2 * s2;
    p_tail = erfc((tail_k - 0.5) / sqrt(2 * s2));
  } else {
    for (long k = -kmax; k <= kmax; k++) {
      double w = exp(-(double)k * k / (2 * s2));
      z += w;
      m2 += w * k * k;
      m4 += w * (double)k * k * k * k;
    }
    m2 /= z;
    m4 /= z;
    for (long k = tail_k; k <= kmax; k++)
      p_tail += 2 * exp(-(double)k * k / (2 * s2)) / z;
  }

  /* Chi-square bins: every integer whose expected count is >= 20, plus the two tails merged. */
  long bmax = 0;
  while (chi2 && bmax < kmax && n * exp(-(double)(bmax + 1) * (bmax + 1) / (2 * s2)) / z >= 20)
    bmax++;
  long nb = 2 * bmax + 2;
  long *cnt = calloc((size_t)nb, sizeof *cnt);
  assert_non_null(cnt);

  double sum = 0, sumsq = 0;
  long tail = 0;
  for (long i = 0; i < n; i++) {
    int64_t x;
    assert_int_equal(storefl_dgauss_sample(rng, sigma, &x), STOREFL_OK);
    double d = (double)x;
    sum += d;
    sumsq += d * d;
    if (llabs(x) >= tail_k)
      tail++;
    if (llabs(x) <= bmax)
      cnt[x + bmax]++;
    else
      cnt[nb - 1]++;
  }
  double mean = sum / n, msq = sumsq / n;
  assert_true(fabs(mean) < Z_BOUND * sqrt(m2 / n));
  assert_true(fabs(msq - m2) < Z_BOUND * sqrt((m4 - m2 * m2) / n));
  assert_true(fabs(tail - n * p_tail) < Z_BOUND * sqrt(n * p_tail * (1 - p_tail)));
  if (chi2) {
    double chi = 0, p_in = 0;
    for (long k = -bmax; k <= bmax; k++) {
      double e = n * exp(-(double)k * k / (2 * s2)) / z;
      p_in += e / n;
      chi += (cnt[k + bmax] - e) * (cnt[k + bmax] - e) / e;
    }
    double e_out = n * (1 - p_in);
    if (e_out >= 5)
      chi += (cnt[nb - 1] - e_out) * (cnt[nb - 1] - e_out) / e_out;
    int df = (int)(2 * bmax + (e_out >= 5 ? 1 : 0));
    double crit = chi2_critical(df, CHI2_P);
    printf("# sigma=%g n=%ld mean=%.4f var=%.4f (exact %.4f) tail=%ld (exp %.1f) chi2=%.1f df=%d crit=%.1f\n",
           sigma, n, mean, msq, m2, tail, n * p_tail, chi, df, crit);
    assert_true(chi < crit);
  }
  free(cnt);
  storefl_rng_free(rng);
}

static void test_dgauss_sigma3(void **state) {
  (void)state;
  check_distribution(3.0, 1000000, 1);
}

static void test_dgauss_small_and_fractional(void **state) {
  (void)state;
  check_distribution(0.7, 300000, 1);
  check_distribution(12.345, 300000, 1);
}

static void test_dgauss_large_scale(void **state) {
  (void)state;
  /* The accumulator-grid regime (sigma ~ 2^30 grid units): mean, variance, tail. */
  check_distribution(1073741824.5, 100000, 0);
}

static void test_add_noise_and_local(void **state) {
  (void)state;
  storefl_rng *rng = secure_rng();
  int64_t v[4] = {INT64_MAX, 0, 0, 0};
  assert_int_equal(storefl_dp_add_dgauss(rng, v, 4, 0.0), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_dp_add_dgauss(rng, v, 4, 1e20), STOREFL_ERR_INVALID);
  /* Local mode: the released values are grid points, never the clipped input itself. */
  enum { N = 2000 };
  static float x[N], orig[N];
  static int64_t work[N];
  for (int i = 0; i < N; i++)
    x[i] = orig[i] = (float)sin(i) * 0.01f;
  storefl_dp_span sp = {x, N};
  double pre;
  const double step = 0x1p-16;
  assert_int_equal(storefl_dp_privatize_local(rng, &sp, 1, 0.1, 1.0, step, work, &pre), STOREFL_OK);
  double diff2 = 0;
  long same = 0;
  for (int i = 0; i < N; i++) {
    double k = x[i] / step;
    assert_true(k == floor(k)); /* on the grid */
    diff2 += (x[i] - orig[i]) * (x[i] - orig[i]);
    same += x[i] == orig[i];
  }
  /* Noise per coordinate has sd sigma*C = 0.1, so the total noise norm is about 0.1*sqrt(N). */
  assert_true(sqrt(diff2) > 0.05 * sqrt(N));
  assert_true(same < N / 20);
  storefl_rng_free(rng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chi2_critical_values),
      cmocka_unit_test(test_rng_basics),
      cmocka_unit_test(test_clip),
      cmocka_unit_test(test_grid_norm_bound),
      cmocka_unit_test(test_dgauss_sigma3),
      cmocka_unit_test(test_dgauss_small_and_fractional),
      cmocka_unit_test(test_dgauss_large_scale),
      cmocka_unit_test(test_add_noise_and_local),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
