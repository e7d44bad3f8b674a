/*
 * Privacy accountant: Renyi differential privacy (RDP) of the sampled Gaussian mechanism, composed
 * over rounds and converted to (epsilon, delta).
 *
 * Mechanism: each round a store takes part with probability q (Poisson sampling), its update is
 * clipped to L2 norm C and Gaussian noise of standard deviation sigma*C is added (sigma = the noise
 * multiplier). RDP at order alpha follows Mironov, Talwar and Zhang (2019, "Renyi Differential
 * Privacy of the Sampled Gaussian Mechanism"): for integer alpha the binomial expansion (their
 * Sec. 3.3, eq. for A_alpha), for fractional alpha the two-series formula with the erfc terms. Both
 * are evaluated in log space (log-binomials via lgamma, log-sum-exp, log-erfc with its asymptotic
 * expansion), and for q < 1/4 as A_alpha - 1 directly (the binomial terms that sum to 1 are
 * subtracted analytically), so that tiny q does not drown the result in rounding error. The
 * fractional series is summed to convergence: its tail alternates and decays only polynomially,
 * so it is accelerated by repeated averaging of partial sums and stopped when two checkpoints agree
 * to 1e-14 relative -- not cut at a fixed term size, which overestimates epsilon.
 *
 * Composition: RDP adds over rounds (at each order). Conversion: by default the tighter bound of
 * Balle et al. (2020, "Hypothesis testing interpretations and Renyi DP", Thm 21) / Canonne, Kamath
 * and Steinke (2020, Prop. 12):
 *     eps = rdp + log((alpha-1)/alpha) - (log delta + log alpha) / (alpha - 1),
 * minimised over the orders; classic (Mironov 2017, Prop. 3): eps = rdp + log(1/delta)/(alpha-1).
 * Zero RDP (no store data touched) gives eps = 0 exactly.
 *
 * All functions return 0 or a negative storefl_err (STOREFL_ERR_INVALID for out-of-range inputs:
 * q outside (0, 1], sigma < 0 or not finite, alpha <= 1, delta outside (0, 1)).
 */
#ifndef STOREFL_ACCOUNTANT_H
#define STOREFL_ACCOUNTANT_H

#include <stddef.h>
#include <stdint.h>

/* Orders and conversion. orders == NULL selects the default list: 1.1, 1.2, ..., 10.9, 11, 12,
 * ..., 64, 80, 96, 128, 192, 256, 512, 1024 (fractional orders matter at large epsilon, large ones
 * at small epsilon). */
typedef struct storefl_accountant_opts {
  const double *orders;
  size_t n_orders;
  int classic; /* 1: classic conversion, 0: Balle et al. 2020 (default) */
} storefl_accountant_opts;

/* The default orders (static storage). */
const double *storefl_rdp_default_orders(size_t *n);

/* RDP of one round at order alpha (> 1). sigma = 0 gives +INFINITY (no noise, no privacy). */
int storefl_rdp_sgm(double q, double sigma, double alpha, double *rdp);

/* Adds `rounds` rounds of the sampled Gaussian mechanism (q, sigma) to rdp[0..n) at orders[0..n). */
int storefl_rdp_compose(double q, double sigma, uint64_t rounds, const double *orders, size_t n, double *rdp);

/* Converts RDP curve to epsilon at delta, minimising over the orders. *best_order may be NULL. */
int storefl_rdp_to_epsilon(const double *orders, const double *rdp, size_t n, double delta, int classic,
                           double *eps, double *best_order);

/* epsilon after `rounds` rounds (q, sigma) at delta. opts may be NULL (defaults). */
int storefl_dp_epsilon(double q, double sigma, uint64_t rounds, double delta,
                       const storefl_accountant_opts *opts, double *eps, double *best_order);

/* Relative tolerance of storefl_dp_calibrate_sigma. */
#define STOREFL_CALIBRATE_RTOL 1e-7

/* The smallest noise multiplier sigma whose epsilon after `rounds` rounds is <= target_eps, by
 * bisection: the returned sigma meets the target and is within STOREFL_CALIBRATE_RTOL (relative)
 * of the exact threshold. STOREFL_ERR_INVALID if the target is <= 0 or unreachable for
 * sigma <= 1e6. */
int storefl_dp_calibrate_sigma(double q, double target_eps, uint64_t rounds, double delta,
                               const storefl_accountant_opts *opts, double *sigma);

#endif
