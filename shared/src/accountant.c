/* RDP accountant for the sampled Gaussian mechanism; see storefl/accountant.h. */
#include "storefl/accountant.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "storefl/error.h"

#define NINF (-INFINITY)

static double log_add(double a, double b) {
  if (a == NINF)
    return b;
  if (b == NINF)
    return a;
  double m = a > b ? a : b;
  return m + log1p(exp(-fabs(a - b)));
}

/* log|C(alpha, i)| for real alpha > 0 and integer i >= 0; sign in *sign. */
static double log_binom(double alpha, double i, int *sign) {
  double fl = floor(alpha);
  *sign = 1;
  if (alpha == fl && i > alpha) { /* integer alpha: zero beyond alpha */
    *sign = 0;
    return NINF;
  }
  if (i > fl + 1 && fmod(i - fl - 1, 2.0) == 1.0)
    *sign = -1;
  return lgamma(alpha + 1) - lgamma(i + 1) - lgamma(alpha - i + 1);
}

/* log(erfc(x)) without underflow: the asymptotic series for large x (5 terms: relative error below
 * 1e-12 for x >= 25). */
static double log_erfc(double x) {
  if (x < 25)
    return log(erfc(x));
  double r = 1 / (x * x);
  double s = 1 - 0.5 * r * (1 - 1.5 * r * (1 - 2.5 * r * (1 - 3.5 * r * (1 - 4.5 * r))));
  return -x * x - log(x) - 0.57236494292470008707 /* log(pi)/2 */ + log(s);
}

/* log(expm1(x)) for x > 0. */
static double log_expm1(double x) {
  return x > 30 ? x + log1p(-exp(-x)) : log(expm1(x));
}

/* log(1 + e^l) */
static double log1p_exp(double l) {
  return l > 0 ? l + log1p(exp(-l)) : log1p(exp(l));
}

/* Integer alpha >= 2: A - 1 = sum_{k>=2} C(a,k) (1-q)^(a-k) q^k (e^{(k^2-k)/(2 s^2)} - 1), all terms
 * positive (the k = 0, 1 terms and the "- 1" parts sum to exactly 1). Returns log(A). */
static double log_a_int(double q, double sigma, double alpha) {
  double lq = log(q), l1q = log1p(-q), s2 = 2 * sigma * sigma;
  double acc = NINF;
  for (double k = 2; k <= alpha; k++) {
    int sg;
    double t = log_binom(alpha, k, &sg) + (alpha - k) * l1q + k * lq + log_expm1((k * k - k) / s2);
    acc = log_add(acc, t);
  }
  return log1p_exp(acc);
}

/* Linear-scale value of a signed log term relative to scale m. */
static double lin(double l, int sign, double m) {
  return sign == 0 || l == NINF ? 0.0 : sign * exp(l - m);
}

/* One term of the fractional series (Mironov-Talwar-Zhang 2019, Sec. 3.3) as log|t| and sign, for
 * the sum A (am1 = 0) or A - 1 (am1 = 1, q < 1/4: the binomial series sum C(a,i) q^i (1-q)^(a-i),
 * which equals 1, is subtracted term by term). */
static void frac_term(double q, double sigma, double alpha, double i, double z0, int am1, double *l0, int *g0,
                      double *l1, int *g1) {
  int sg;
  double lb = log_binom(alpha, i, &sg);
  double s2 = 2 * sigma * sigma, sq2s = sqrt(2.0) * sigma;
  double lq = log(q), l1q = log1p(-q), j = alpha - i;
  double base0 = lb + i * lq + j * l1q;
  double c0 = (i * i - i) / s2;
  if (!am1) {
    *l0 = base0 + c0 + log(0.5) + log_erfc((i - z0) / sq2s);
    *g0 = sg;
  } else {
    /* e^c * E0 - 1 with E0 = 1 - F, F = erfc((z0 - i)/(sqrt2 s))/2: expm1(c) - e^c F. */
    double lf = log(0.5) + log_erfc((z0 - i) / sq2s);
    if (i > z0) {
      /* Here F > 1/2 and 1 - F would cancel: use E0 directly, bracket = expm1(c + log E0). */
      double x = c0 + log(0.5) + log_erfc((i - z0) / sq2s);
      if (x > 0) {
        *l0 = base0 + log_expm1(x);
        *g0 = sg;
      } else if (x < 0) {
        *l0 = base0 + log(-expm1(x));
        *g0 = -sg;
      } else {
        *l0 = NINF;
        *g0 = 0;
      }
    } else if (c0 == 0) {
      *l0 = base0 + lf;
      *g0 = -sg;
    } else {
      double a = log_expm1(c0), b = c0 + lf;
      if (a >= b) {
        *l0 = base0 + a + log1p(-exp(b - a));
        *g0 = sg;
      } else {
        *l0 = base0 + b + log1p(-exp(a - b));
        *g0 = -sg;
      }
    }
  }
  *l1 = lb + j * lq + i * l1q + (j * j - j) / s2 + log(0.5) + log_erfc((z0 - j) / sq2s);
  *g1 = sg;
}

#define RING 32

/* Fractional alpha: returns log(A) in *out. */
static int log_a_frac(double q, double sigma, double alpha, double *out) {
  int am1 = q < 0.25;
  double z0 = sigma * sigma * log(1 / q - 1) + 0.5;
  /* Scale: the largest term among the first ceil(alpha)+2 (the bulk of the sum). */
  double head = ceil(alpha) + 2, m = NINF;
  for (double i = 0; i <= head; i++) {
    double l0, l1;
    int g0, g1;
    frac_term(q, sigma, alpha, i, z0, am1, &l0, &g0, &l1, &g1);
    if (g0 != 0 && l0 > m)
      m = l0;
    if (g1 != 0 && l1 > m)
      m = l1;
  }
  if (m == NINF)
    return STOREFL_ERR_INTERNAL;
  double ring[RING];
  double s = 0, prev_est = NAN;
  double check = fmax(head, z0 + 10 * sigma) + 128;
  const double max_terms = 4194304;
  int small_run = 0;
  for (double i = 0; i < max_terms; i++) {
    double l0, l1;
    int g0, g1;
    frac_term(q, sigma, alpha, i, z0, am1, &l0, &g0, &l1, &g1);
    double t = lin(l0, g0, m) + lin(l1, g1, m);
    if (!isfinite(t))
      return STOREFL_ERR_INTERNAL;
    s += t;
    ring[(size_t)i % RING] = s;
    if (i > head) {
      /* Terms negligible outright (the usual case when sigma*log(1/q) is large). */
      small_run = fabs(t) <= 1e-30 * fabs(s) ? small_run + 1 : 0;
      if (small_run >= 4)
        break;
      if (i >= check) {
        /* Alternating, polynomially decaying tail: repeated averaging of the last RING partial sums
         * (Euler transform) estimates the limit; accept when two checkpoints agree. */
        double w[RING];
        for (size_t k = 0; k < RING; k++)
          w[k] = ring[((size_t)i + 1 + k) % RING];
        for (size_t lvl = RING - 1; lvl > 0; lvl--)
          for (size_t k = 0; k < lvl; k++)
            w[k] = 0.5 * (w[k] + w[k + 1]);
        double est = w[0];
        if (!isnan(prev_est) && fabs(est - prev_est) <= 1e-14 * fabs(est)) {
          s = est;
          break;
        }
        prev_est = est;
        check *= 2;
      }
    }
    if (i + 1 >= max_terms)
      return STOREFL_ERR_INTERNAL;
  }
  if (am1) {
    /* A - 1 >= 0 in exact arithmetic; a non-positive sum is rounding noise around 0. */
    *out = s > 0 ? log1p_exp(m + log(s)) : 0.0;
  } else {
    if (!(s > 0))
      return STOREFL_ERR_INTERNAL;
    *out = m + log(s);
  }
  return STOREFL_OK;
}

static int check_q_sigma(double q, double sigma) {
  if (!(q > 0 && q <= 1) || !(sigma >= 0) || !isfinite(sigma))
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

int storefl_rdp_sgm(double q, double sigma, double alpha, double *rdp) {
  if (rdp == NULL || check_q_sigma(q, sigma) != 0 || !(alpha > 1) || !isfinite(alpha))
    return STOREFL_ERR_INVALID;
  if (sigma == 0) {
    *rdp = INFINITY;
    return STOREFL_OK;
  }
  if (q == 1) { /* plain Gaussian mechanism */
    *rdp = alpha / (2 * sigma * sigma);
    return STOREFL_OK;
  }
  double la;
  if (alpha == floor(alpha)) {
    la = log_a_int(q, sigma, alpha);
  } else {
    int rc = log_a_frac(q, sigma, alpha, &la);
    if (rc != 0)
      return rc;
  }
  *rdp = la / (alpha - 1);
  if (!(*rdp >= 0)) /* log A >= 0 mathematically; clamp rounding below zero */
    *rdp = 0;
  return STOREFL_OK;
}

#define N_DEFAULT_ORDERS (99 + 54 + 7)
static double g_orders[N_DEFAULT_ORDERS];
static pthread_once_t g_orders_once = PTHREAD_ONCE_INIT;

static void init_orders(void) {
  size_t k = 0;
  for (int x = 1; x < 100; x++)
    g_orders[k++] = 1 + x / 10.0;
  for (int a = 11; a <= 64; a++)
    g_orders[k++] = a;
  const double big[] = {80, 96, 128, 192, 256, 512, 1024};
  for (size_t b = 0; b < sizeof big / sizeof big[0]; b++)
    g_orders[k++] = big[b];
}

/* Thread-safe: the aggregator's network and round threads may both ask first. */
static const double *default_orders(size_t *n) {
  pthread_once(&g_orders_once, init_orders);
  *n = N_DEFAULT_ORDERS;
  return g_orders;
}

const double *storefl_rdp_default_orders(size_t *n) {
  size_t dummy;
  return default_orders(n != NULL ? n : &dummy);
}

int storefl_rdp_compose(double q, double sigma, uint64_t rounds, const double *orders, size_t n,
                        double *rdp) {
  if (orders == NULL || rdp == NULL || n == 0)
    return STOREFL_ERR_INVALID;
  for (size_t k = 0; k < n; k++) {
    double r;
    int rc = storefl_rdp_sgm(q, sigma, orders[k], &r);
    if (rc != 0)
      return rc;
    rdp[k] += (double)rounds * r;
  }
  return STOREFL_OK;
}

int storefl_rdp_to_epsilon(const double *orders, const double *rdp, size_t n, double delta, int classic,
                           double *eps, double *best_order) {
  if (orders == NULL || rdp == NULL || eps == NULL || n == 0 || !(delta > 0 && delta < 1))
    return STOREFL_ERR_INVALID;
  int all_zero = 1;
  for (size_t k = 0; k < n; k++) {
    if (!(orders[k] > 1) || !(rdp[k] >= 0) || isnan(rdp[k]))
      return STOREFL_ERR_INVALID;
    if (rdp[k] != 0)
      all_zero = 0;
  }
  if (all_zero) {
    /* Nothing of the store was used: no privacy loss, whatever the conversion's slack. */
    *eps = 0;
    if (best_order != NULL)
      *best_order = NAN;
    return STOREFL_OK;
  }
  double best = INFINITY, best_a = NAN;
  for (size_t k = 0; k < n; k++) {
    double a = orders[k], e;
    if (classic)
      e = rdp[k] + log(1 / delta) / (a - 1);
    else
      e = rdp[k] + log1p(-1 / a) - (log(delta) + log(a)) / (a - 1);
    if (e < best) {
      best = e;
      best_a = a;
    }
  }
  *eps = best > 0 ? best : 0;
  if (best_order != NULL)
    *best_order = best_a;
  return STOREFL_OK;
}

int storefl_dp_epsilon(double q, double sigma, uint64_t rounds, double delta,
                       const storefl_accountant_opts *opts, double *eps, double *best_order) {
  if (eps == NULL || check_q_sigma(q, sigma) != 0 || !(delta > 0 && delta < 1))
    return STOREFL_ERR_INVALID;
  size_t n;
  const double *orders = storefl_rdp_default_orders(&n);
  int classic = 0;
  if (opts != NULL) {
    if (opts->orders != NULL) {
      orders = opts->orders;
      n = opts->n_orders;
    }
    classic = opts->classic;
  }
  if (n == 0)
    return STOREFL_ERR_INVALID;
  double *rdp = calloc(n, sizeof *rdp);
  if (rdp == NULL)
    return STOREFL_ERR_NOMEM;
  int rc = STOREFL_OK;
  if (rounds > 0 && sigma == 0) {
    *eps = INFINITY;
    if (best_order != NULL)
      *best_order = NAN;
  } else {
    if (rounds > 0)
      rc = storefl_rdp_compose(q, sigma, rounds, orders, n, rdp);
    if (rc == 0)
      rc = storefl_rdp_to_epsilon(orders, rdp, n, delta, classic, eps, best_order);
  }
  free(rdp);
  return rc;
}

int storefl_dp_calibrate_sigma(double q, double target_eps, uint64_t rounds, double delta,
                               const storefl_accountant_opts *opts, double *sigma) {
  if (sigma == NULL || !(target_eps > 0) || !isfinite(target_eps) || check_q_sigma(q, 1.0) != 0 ||
      rounds == 0)
    return STOREFL_ERR_INVALID;
  double lo = 0, hi = 1, e;
  int rc;
  /* Find an upper end that meets the target; epsilon decreases with sigma. */
  for (;;) {
    rc = storefl_dp_epsilon(q, hi, rounds, delta, opts, &e, NULL);
    if (rc != 0)
      return rc;
    if (e <= target_eps)
      break;
    lo = hi;
    hi *= 2;
    if (hi > 1e6)
      return STOREFL_ERR_INVALID;
  }
  while (hi - lo > STOREFL_CALIBRATE_RTOL * hi) {
    double mid = 0.5 * (lo + hi);
    rc = storefl_dp_epsilon(q, mid, rounds, delta, opts, &e, NULL);
    if (rc != 0)
      return rc;
    if (e <= target_eps)
      hi = mid;
    else
      lo = mid;
  }
  *sigma = hi;
  return STOREFL_OK;
}
