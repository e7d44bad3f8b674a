/* Clipping and the exact discrete Gaussian sampler; see storefl/dp.h. */
#include "storefl/dp.h"

#include <math.h>
#include <string.h>

#include "storefl/error.h"

typedef unsigned __int128 u128;

/* ---- 256-bit unsigned integers, just enough for the exact Bernoulli(exp(-num/den)) ---------- */

typedef struct u256 {
  uint64_t w[4]; /* little-endian limbs */
} u256;

static u256 u256_from128(u128 a) {
  u256 r = {{(uint64_t)a, (uint64_t)(a >> 64), 0, 0}};
  return r;
}

static u256 u256_mul128(u128 a, u128 b) {
  uint64_t x[2] = {(uint64_t)a, (uint64_t)(a >> 64)};
  uint64_t y[2] = {(uint64_t)b, (uint64_t)(b >> 64)};
  u256 r = {{0, 0, 0, 0}};
  for (int i = 0; i < 2; i++) {
    u128 carry = 0;
    for (int j = 0; j < 2; j++) {
      u128 cur = (u128)x[i] * y[j] + r.w[i + j] + carry;
      r.w[i + j] = (uint64_t)cur;
      carry = cur >> 64;
    }
    int k = i + 2;
    while (carry != 0 && k < 4) {
      u128 cur = (u128)r.w[k] + carry;
      r.w[k] = (uint64_t)cur;
      carry = cur >> 64;
      k++;
    }
  }
  return r;
}

static u256 u256_shl(u256 a, unsigned s) { /* s < 192; callers keep the result below 2^256 */
  u256 r = {{0, 0, 0, 0}};
  unsigned limbs = s / 64, bits = s % 64;
  for (int i = 3; i >= 0; i--) {
    int src = i - (int)limbs;
    if (src < 0)
      continue;
    uint64_t v = a.w[src] << bits;
    if (bits != 0 && src > 0)
      v |= a.w[src - 1] >> (64 - bits);
    r.w[i] = v;
  }
  return r;
}

static int u256_cmp(const u256 *a, const u256 *b) {
  for (int i = 3; i >= 0; i--) {
    if (a->w[i] != b->w[i])
      return a->w[i] < b->w[i] ? -1 : 1;
  }
  return 0;
}

static void u256_sub(u256 *a, const u256 *b) { /* a -= b, requires a >= b */
  uint64_t borrow = 0;
  for (int i = 0; i < 4; i++) {
    uint64_t bi = b->w[i] + borrow;
    uint64_t nb = (bi < borrow) || (a->w[i] < bi);
    a->w[i] -= bi;
    borrow = nb;
  }
}

static unsigned u256_bitlen(const u256 *a) {
  for (int i = 3; i >= 0; i--) {
    if (a->w[i] != 0) {
      unsigned n = 0;
      uint64_t v = a->w[i];
      while (v != 0) {
        n++;
        v >>= 1;
      }
      return (unsigned)i * 64 + n;
    }
  }
  return 0;
}

static int u256_is_zero(const u256 *a) {
  return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

/* Bernoulli(num/den), 0 <= num <= den, den > 0: U uniform on [0, den) by rejection on bitlen(den)
 * bits, output U < num. The bits of U are drawn from the most significant limb down and the draw
 * stops as soon as the outcome is decided (U below num's prefix: 1; between num's and den's: 0;
 * above den's: reject), which is the same decision the full comparison makes, on far fewer bits. */
static int bern_ratio256(storefl_rng *rng, const u256 *num, const u256 *den, int *out) {
  if (u256_is_zero(num)) {
    *out = 0;
    return STOREFL_OK;
  }
  if (u256_cmp(num, den) >= 0) {
    *out = 1;
    return STOREFL_OK;
  }
  unsigned bits = u256_bitlen(den);
  int top = (int)((bits - 1) / 64);
  unsigned top_bits = bits - 64u * (unsigned)top;
  for (;;) {
    int eq_num = 1, eq_den = 1, result = -1, reject = 0;
    for (int i = top; i >= 0; i--) {
      uint64_t w;
      int rc = storefl_rng_bits(rng, i == top ? top_bits : 64, &w);
      if (rc != 0)
        return rc;
      if (eq_den) {
        if (w > den->w[i]) {
          reject = 1;
          break;
        }
        if (w < den->w[i])
          eq_den = 0;
      }
      if (eq_num) {
        if (w < num->w[i]) {
          result = 1; /* U < num <= den */
          break;
        }
        if (w > num->w[i])
          eq_num = 0;
      }
      if (!eq_num && !eq_den) {
        result = 0; /* num < U < den */
        break;
      }
    }
    if (reject)
      continue;
    if (result < 0) {
      if (eq_den)
        continue; /* U == den */
      result = 0; /* U == num */
    }
    *out = result;
    return STOREFL_OK;
  }
}

/* Bernoulli(1/k) for k >= 1. */
static int bern_inv(storefl_rng *rng, uint64_t k, int *out) {
  uint64_t v;
  int rc = storefl_rng_below(rng, k, &v);
  if (rc != 0)
    return rc;
  *out = v == 0;
  return STOREFL_OK;
}

/* CKS Algorithm 1 for gamma = num/den in [0, 1]: draw A_k ~ Bernoulli(gamma/k) for k = 1, 2, ...
 * until the first A_k = 0; output 1 iff that k is odd. Bernoulli(gamma/k) is drawn as
 * Bernoulli(1/k) AND Bernoulli(gamma) (independent), so den*k never has to be formed. */
static int bern_exp_le1(storefl_rng *rng, const u256 *num, const u256 *den, int *out) {
  uint64_t k = 1;
  for (;;) {
    int a;
    int rc = bern_inv(rng, k, &a);
    if (rc != 0)
      return rc;
    if (a) {
      rc = bern_ratio256(rng, num, den, &a);
      if (rc != 0)
        return rc;
    }
    if (!a)
      break;
    k++;
  }
  *out = (int)(k & 1u);
  return STOREFL_OK;
}

static int bern_exp_minus1(storefl_rng *rng, int *out) {
  static const u256 one = {{1, 0, 0, 0}};
  return bern_exp_le1(rng, &one, &one, out);
}

/* CKS Algorithm 1 for any gamma = num/den >= 0: floor(gamma) independent Bernoulli(exp(-1)) (stop
 * at the first 0), then Bernoulli(exp(-frac(gamma))). floor(gamma) is found by subtracting den, so
 * only comparisons and subtractions of 256-bit integers are needed. */
static int bern_exp(storefl_rng *rng, u256 num, const u256 *den, int *out) {
  while (u256_cmp(&num, den) >= 0) {
    int b;
    int rc = bern_exp_minus1(rng, &b);
    if (rc != 0)
      return rc;
    if (!b) {
      *out = 0;
      return STOREFL_OK;
    }
    u256_sub(&num, den);
  }
  return bern_exp_le1(rng, &num, den, out);
}

/* ---- discrete Gaussian ------------------------------------------------------------------------ */

/* sigma^2 = n / 2^k exactly; t = floor(sigma) + 1 (CKS's choice of the Laplace scale). */
typedef struct dg_params {
  u128 n;
  unsigned k;
  uint64_t t;
  double sigma2;
} dg_params;

int storefl_dgauss_sigma2(double sigma, double *sigma2) {
  if (sigma2 == NULL || !(sigma >= STOREFL_DGAUSS_MIN_SIGMA && sigma <= STOREFL_DGAUSS_MAX_SIGMA))
    return STOREFL_ERR_INVALID;
  double s2 = sigma * sigma;
  /* fma gives the exact rounding error of the product: round up so the noise is never too small. */
  if (fma(sigma, sigma, -s2) > 0)
    s2 = nextafter(s2, INFINITY);
  *sigma2 = s2;
  return STOREFL_OK;
}

static int dg_prepare(double sigma, dg_params *p) {
  double s2;
  int rc = storefl_dgauss_sigma2(sigma, &s2);
  if (rc != 0)
    return rc;
  int e;
  double f = frexp(s2, &e);
  uint64_t m = (uint64_t)ldexp(f, 53);
  e -= 53; /* s2 = m * 2^e exactly */
  while ((m & 1u) == 0 && e < 0) {
    m >>= 1;
    e++;
  }
  if (e >= 0) {
    p->n = (u128)m << e; /* s2 <= 2^96 */
    p->k = 0;
  } else {
    p->n = m;
    p->k = (unsigned)-e;
  }
  p->t = (uint64_t)floor(sqrt(s2)) + 1;
  p->sigma2 = s2;
  return STOREFL_OK;
}

static unsigned bitlen128(u128 x) {
  unsigned n = 0;
  while (x != 0) {
    n++;
    x >>= 1;
  }
  return n;
}

/* CKS Algorithm 2 with s = 1: discrete Laplace of scale t, P(z) proportional to exp(-|z|/t). */
static int dlap(storefl_rng *rng, uint64_t t, int64_t *out) {
  const u256 den = u256_from128(t);
  for (;;) {
    uint64_t u;
    int rc = storefl_rng_below(rng, t, &u);
    if (rc != 0)
      return rc;
    int d;
    rc = bern_exp(rng, u256_from128(u), &den, &d);
    if (rc != 0)
      return rc;
    if (!d)
      continue;
    uint64_t v = 0;
    for (;;) {
      int a;
      rc = bern_exp_minus1(rng, &a);
      if (rc != 0)
        return rc;
      if (!a)
        break;
      v++;
    }
    /* X = U + t*V; an X beyond 2^62 (V > 2^62/t, probability < exp(-2^62/t)) is redrawn. */
    if (v > ((UINT64_C(1) << 62) - u) / t)
      continue;
    uint64_t x = u + t * v;
    uint64_t b;
    rc = storefl_rng_bits(rng, 1, &b);
    if (rc != 0)
      return rc;
    if (b && x == 0)
      continue;
    *out = b ? -(int64_t)x : (int64_t)x;
    return STOREFL_OK;
  }
}

static int dg_sample(storefl_rng *rng, const dg_params *p, int64_t *out) {
  /* gamma = (|Y| - sigma^2/t)^2 / (2 sigma^2) = (|Y| t 2^k - n)^2 / (2 n t^2 2^k). */
  u256 den = u256_shl(u256_mul128(p->n, (u128)p->t * p->t), p->k + 1);
  for (;;) {
    int64_t y;
    int rc = dlap(rng, p->t, &y);
    if (rc != 0)
      return rc;
    uint64_t ay = y < 0 ? (uint64_t)0 - (uint64_t)y : (uint64_t)y;
    if (bitlen128(ay) + bitlen128(p->t) + p->k > 126)
      continue; /* see dp.h: acceptance probability below exp(-2^50) */
    u128 a = ((u128)ay * p->t) << p->k;
    u128 diff = a >= p->n ? a - p->n : p->n - a;
    u256 num = u256_mul128(diff, diff);
    int c;
    rc = bern_exp(rng, num, &den, &c);
    if (rc != 0)
      return rc;
    if (c) {
      *out = y;
      return STOREFL_OK;
    }
  }
}

int storefl_dgauss_sample(storefl_rng *rng, double sigma, int64_t *out) {
  if (rng == NULL || out == NULL)
    return STOREFL_ERR_INVALID;
  dg_params p;
  int rc = dg_prepare(sigma, &p);
  if (rc != 0)
    return rc;
  return dg_sample(rng, &p, out);
}

int storefl_dp_add_dgauss(storefl_rng *rng, int64_t *v, size_t n, double sigma) {
  if (rng == NULL || (v == NULL && n > 0))
    return STOREFL_ERR_INVALID;
  dg_params p;
  int rc = dg_prepare(sigma, &p);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < n; i++) {
    int64_t z;
    rc = dg_sample(rng, &p, &z);
    if (rc != 0)
      return rc;
    if ((z > 0 && v[i] > INT64_MAX - z) || (z < 0 && v[i] < INT64_MIN - z))
      return STOREFL_ERR_INVALID;
    v[i] += z;
  }
  return STOREFL_OK;
}

int storefl_dp_central_noise_hook(void *p_rng, int64_t *sums, size_t n, double stddev_grid) {
  storefl_rng *rng = p_rng;
  if (rng == NULL)
    return STOREFL_ERR_INVALID;
  if (storefl_rng_is_insecure(rng))
    return STOREFL_ERR_CRYPTO;
  return storefl_dp_add_dgauss(rng, sums, n, stddev_grid);
}

/* ---- clipping and the grid -------------------------------------------------------------------- */

int storefl_dp_l2_norm(const storefl_dp_span *spans, size_t n_spans, double *norm) {
  if ((spans == NULL && n_spans > 0) || norm == NULL)
    return STOREFL_ERR_INVALID;
  /* float32 squared is at most ~1.2e77, so a double sum of up to 2^64 of them cannot overflow. */
  double s = 0.0;
  for (size_t j = 0; j < n_spans; j++) {
    if (spans[j].data == NULL && spans[j].len > 0)
      return STOREFL_ERR_INVALID;
    for (size_t i = 0; i < spans[j].len; i++) {
      double x = spans[j].data[i];
      if (!isfinite(x))
        return STOREFL_ERR_NONFINITE;
      s += x * x;
    }
  }
  *norm = sqrt(s);
  return STOREFL_OK;
}

int storefl_dp_clip(storefl_dp_span *spans, size_t n_spans, double clip_norm, double *pre_clip_norm) {
  if (!(clip_norm > 0 && isfinite(clip_norm)))
    return STOREFL_ERR_INVALID;
  double norm;
  int rc = storefl_dp_l2_norm(spans, n_spans, &norm);
  if (rc != 0)
    return rc;
  if (pre_clip_norm != NULL)
    *pre_clip_norm = norm;
  if (norm <= clip_norm)
    return STOREFL_OK;
  /* float rounding of x*scale can make the result a hair above C; shrink the factor until it is
   * not, so "clipped to C" holds for the stored floats themselves. */
  double scale = clip_norm / norm;
  for (int attempt = 0; attempt < 64; attempt++) {
    double s = 0.0;
    for (size_t j = 0; j < n_spans; j++) {
      for (size_t i = 0; i < spans[j].len; i++) {
        double y = (double)(float)(spans[j].data[i] * scale);
        s += y * y;
      }
    }
    if (sqrt(s) <= clip_norm)
      break;
    scale *= 1.0 - 1e-7;
  }
  for (size_t j = 0; j < n_spans; j++)
    for (size_t i = 0; i < spans[j].len; i++)
      spans[j].data[i] = (float)(spans[j].data[i] * scale);
  return STOREFL_OK;
}

/* Rounds lambda*x/step for every coordinate; returns the exact sum of squares (saturating at
 * UINT128 max on overflow) or an error if a value does not fit. */
static int round_all(const storefl_dp_span *spans, size_t n_spans, double factor, int64_t *out, u128 *sumsq) {
  u128 s = 0;
  size_t o = 0;
  for (size_t j = 0; j < n_spans; j++) {
    for (size_t i = 0; i < spans[j].len; i++) {
      double y = nearbyint(spans[j].data[i] * factor); /* default rounding mode: half-even */
      if (!(fabs(y) < 4611686018427387904.0))          /* 2^62 */
        return STOREFL_ERR_INVALID;
      int64_t q = (int64_t)y;
      out[o++] = q;
      u128 a = (u128)(q < 0 ? -q : q);
      u128 sq = a * a;
      s = (s > ~(u128)0 - sq) ? ~(u128)0 : s + sq;
    }
  }
  *sumsq = s;
  return STOREFL_OK;
}

int storefl_dp_to_grid(const storefl_dp_span *spans, size_t n_spans, double step, double clip_norm,
                       int64_t *out, double *lambda_out) {
  if ((spans == NULL && n_spans > 0) || out == NULL || !(step > 0 && isfinite(step)) ||
      !(clip_norm > 0 && isfinite(clip_norm)))
    return STOREFL_ERR_INVALID;
  double delta = clip_norm / step;
  if (!(delta <= 1099511627776.0)) /* 2^40: keeps squares and their sums far inside 128 bits */
    return STOREFL_ERR_INVALID;
  /* Conservative bound: the real (C/step)^2 shrunk by 2^-50 relative absorbs the rounding of the
   * division and the product, so sumsq <= bound implies ||out|| <= C/step. */
  u128 bound = (u128)floor(delta * delta * (1.0 - 0x1p-50));
  for (size_t j = 0; j < n_spans; j++)
    if (spans[j].data == NULL && spans[j].len > 0)
      return STOREFL_ERR_INVALID;
  u128 s;
  int rc = round_all(spans, n_spans, 1.0 / step, out, &s);
  if (rc != 0)
    return rc;
  double lambda = 1.0;
  if (s > bound) {
    /* |round(l*x)| is nondecreasing in l for every coordinate, so the norm is monotone in l and
     * bisection finds the largest admissible l. l = 0 (all zeros) is always admissible. */
    double lo = 0.0, hi = 1.0;
    while (hi - lo > 0x1p-40) {
      double mid = 0.5 * (lo + hi);
      rc = round_all(spans, n_spans, mid / step, out, &s);
      if (rc != 0)
        return rc;
      if (s <= bound)
        lo = mid;
      else
        hi = mid;
    }
    lambda = lo;
    rc = round_all(spans, n_spans, lo / step, out, &s);
    if (rc != 0)
      return rc;
    if (s > bound)
      return STOREFL_ERR_INTERNAL;
  }
  if (lambda_out != NULL)
    *lambda_out = lambda;
  return STOREFL_OK;
}

int storefl_dp_privatize_local(storefl_rng *rng, storefl_dp_span *spans, size_t n_spans, double clip_norm,
                               double sigma, double step, int64_t *work, double *pre_clip_norm) {
  if (rng == NULL || work == NULL || !(sigma >= 0 && isfinite(sigma)))
    return STOREFL_ERR_INVALID;
  int rc = storefl_dp_clip(spans, n_spans, clip_norm, pre_clip_norm);
  if (rc != 0)
    return rc;
  rc = storefl_dp_to_grid(spans, n_spans, step, clip_norm, work, NULL);
  if (rc != 0)
    return rc;
  size_t total = 0;
  for (size_t j = 0; j < n_spans; j++)
    total += spans[j].len;
  if (sigma > 0) {
    rc = storefl_dp_add_dgauss(rng, work, total, sigma * clip_norm / step);
    if (rc != 0)
      return rc;
  }
  /* Check every value first so that a failure leaves the caller's (clipped) data untouched. */
  for (size_t i = 0; i < total; i++)
    if (work[i] >= (INT64_C(1) << 24) || work[i] <= -(INT64_C(1) << 24))
      return STOREFL_ERR_INVALID;
  size_t o = 0;
  for (size_t j = 0; j < n_spans; j++)
    for (size_t i = 0; i < spans[j].len; i++)
      spans[j].data[i] = (float)((double)work[o++] * step);
  return STOREFL_OK;
}

int storefl_dp_grid_to_i8(const int64_t *v, size_t n, int8_t *out, size_t *saturated) {
  if ((v == NULL || out == NULL) && n > 0)
    return STOREFL_ERR_INVALID;
  size_t sat = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t x = v[i];
    if (x > 127 || x < -127) {
      sat++;
      x = x > 0 ? 127 : -127;
    }
    out[i] = (int8_t)x;
  }
  if (saturated != NULL)
    *saturated = sat;
  return STOREFL_OK;
}
