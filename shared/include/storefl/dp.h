/*
 * Differential privacy mechanisms: L2 clipping of a whole update, exact discrete Gaussian noise on
 * a fixed-point grid.
 *
 * Why a grid and a discrete sampler: Gaussian noise sampled in floating point (Box-Muller on
 * doubles) leaks through the irregular set of representable values (Mironov 2012, "On significance
 * of the least significant bits for differential privacy"). Here noise is an integer k drawn from
 * the discrete Gaussian N_Z(0, s^2) with the exact rejection sampler of Canonne, Kamath and Steinke
 * (2020, "The Discrete Gaussian for Differential Privacy", Algorithm 3, with Bernoulli(exp(-g))
 * drawn by their Algorithm 1 from integer arithmetic and CSPRNG bits only), and the released value
 * is (x_grid + k) * step: an exact point of the grid of spacing `step`.
 *
 * The grid is the transport's: in `central` mode the aggregator's accumulator holds every
 * coordinate as an int64 multiple of 2^-scale_bits (aggregator accum.h) and the noise is added to
 * those integers directly (stddev in grid units = sigma * sensitivity * 2^scale_bits). In `local`
 * mode the agent puts its clipped update on the grid step = 2^-scale_bits (storefl_dp_to_grid),
 * adds k, and sends the values k*step (exact in float32 while |value/step| < 2^24), or as int8
 * q*scale with scale = step when the range allows (saturation is post-processing and costs no
 * privacy, see storefl_dp_grid_to_i8).
 *
 * Privacy: for integer vectors whose difference has L2 norm <= D, adding independent N_Z(0, s^2)
 * per coordinate satisfies the same Renyi bound alpha*D^2/(2 s^2) as the continuous Gaussian
 * (Canonne-Kamath-Steinke, Prop. 14 / Thm. 15), so the accountant (accountant.h) applies with
 * sigma = s / D. storefl_dp_to_grid guarantees the integer vector's norm is <= C/step *exactly*,
 * which is what makes D = C/step true after rounding.
 *
 * All functions return 0 or a negative storefl_err.
 */
#ifndef STOREFL_DP_H
#define STOREFL_DP_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/rng.h"

/* Range of the discrete Gaussian scale s (grid units) the sampler supports. */
#define STOREFL_DGAUSS_MIN_SIGMA (1.0 / 256.0)
#define STOREFL_DGAUSS_MAX_SIGMA 281474976710656.0 /* 2^48 */

/* One tensor of an update, as a mutable float array. */
typedef struct storefl_dp_span {
  float *data;
  size_t len;
} storefl_dp_span;

/* L2 norm of all spans together (computed in double). STOREFL_ERR_NONFINITE if any value is NaN or
 * infinite. */
int storefl_dp_l2_norm(const storefl_dp_span *spans, size_t n_spans, double *norm);

/* Clips the whole update (all spans as one vector) to L2 norm <= clip_norm (> 0, finite): scales
 * every value by min(1, clip_norm / norm). *pre_clip_norm (may be NULL) receives the norm before
 * clipping. STOREFL_ERR_NONFINITE on NaN/Inf input (nothing is modified). */
int storefl_dp_clip(storefl_dp_span *spans, size_t n_spans, double clip_norm, double *pre_clip_norm);

/* The exact sigma^2 the sampler uses for scale sigma: sigma*sigma rounded *up* to a double (so the
 * noise is never smaller than asked). STOREFL_ERR_INVALID outside
 * [STOREFL_DGAUSS_MIN_SIGMA, STOREFL_DGAUSS_MAX_SIGMA]. */
int storefl_dgauss_sigma2(double sigma, double *sigma2);

/* One draw from the discrete Gaussian N_Z(0, sigma^2): P(k) proportional to exp(-k^2 / (2 sigma^2)).
 * Draws whose intermediate |Y| * t * 2^k would exceed 2^126 (a discrete Laplace draw beyond about
 * 2^58 sigma, probability below exp(-2^50)) are rejected, the only departure from exactness. */
int storefl_dgauss_sample(storefl_rng *rng, double sigma, int64_t *out);

/* Adds an independent N_Z(0, sigma^2) draw to each of v[0..n): the central-mode noise on the
 * accumulator grid. STOREFL_ERR_INVALID if a sum would overflow int64 (v is then partly noised:
 * the caller must discard it). */
int storefl_dp_add_dgauss(storefl_rng *rng, int64_t *v, size_t n, double sigma);

/* The aggregator's central-noise hook (aggcore's storefl_agg_privacy.add_central_noise has this
 * signature): p_rng is a storefl_rng created with storefl_rng_create; adds N_Z(0, stddev_grid^2) to
 * each accumulated sum. Called by the round logic once, when the round closes. Refuses an insecure
 * test-seeded generator (STOREFL_ERR_CRYPTO) so that test wiring cannot reach production. */
int storefl_dp_central_noise_hook(void *p_rng, int64_t *sums, size_t n, double stddev_grid);

/* Puts a clipped update (L2 norm <= clip_norm) on the grid of spacing step: out[i] (all spans
 * concatenated, total length = sum of lens) = round-half-even(lambda * x[i] / step), with lambda = 1
 * unless rounding pushed the integer vector's norm above clip_norm / step, in which case lambda < 1
 * is the largest value (bisection to 2^-40) for which sum(out^2) <= (clip_norm/step)^2 holds
 * exactly in integer arithmetic. *lambda_out (may be NULL) reports it. STOREFL_ERR_INVALID if a
 * value does not fit in int64 (step too small) or arguments are not positive and finite. */
int storefl_dp_to_grid(const storefl_dp_span *spans, size_t n_spans, double step, double clip_norm,
                       int64_t *out, double *lambda_out);

/* Local mode in one call: clip to clip_norm, put on the grid step, add N_Z(0, (sigma*clip_norm/step)^2)
 * to every coordinate and write the released values k*step back into the spans (float32; exact
 * while |k| < 2^24, otherwise STOREFL_ERR_INVALID because the value would leave the grid). work
 * must hold the total number of coordinates. sigma = 0 releases the clipped update on the grid
 * without noise (for tests and non-private runs). *pre_clip_norm may be NULL. */
int storefl_dp_privatize_local(storefl_rng *rng, storefl_dp_span *spans, size_t n_spans, double clip_norm,
                               double sigma, double step, int64_t *work, double *pre_clip_norm);

/* Post-processing to the int8 transport (value = q * scale with scale = step): q = clamp(v, -127,
 * 127). Saturation happens after the noise, so it changes accuracy, not privacy. *saturated (may
 * be NULL) counts clamped coordinates. */
int storefl_dp_grid_to_i8(const int64_t *v, size_t n, int8_t *out, size_t *saturated);

#endif
