/*
 * Exact, order-independent streaming accumulation of weighted model updates.
 *
 * Each coordinate x of an update with integer weight w (1 <= w <= 2^20) contributes
 * q = round_half_even(x * w * 2^S) to an int64 sum: x * w * 2^S is an exact double for float32,
 * float16 and int8 values (q8 * scale: 8 + 24 + 20 bits), so q depends on nothing but (x, w, S) and
 * the only rounding is that one, deterministic, step. Integer addition is associative, so any
 * arrival order and any sharding (sum of per-shard sums) gives bit-identical sums. Memory is
 * O(model): one int64 and one int32 (partial sums of the fast path, folded into the int64 sums
 * before they are read; see accum.c) per coordinate, whatever the number of participants.
 * Tensor names are at most STOREFL_MAX_ID_LEN (64) bytes here.
 *
 * Overflow is impossible by construction: every contribution |q| must be <= limit, where
 * limit = min(floor(INT64_MAX / max_updates), 2^51 - 1); an update that would exceed it is rejected (nothing
 * is changed), and more than max_updates updates are refused.
 *
 * Ownership: the accumulator owns its sums. Not thread-safe: one caller at a time.
 * Errors: storefl_err codes (negative); see each function.
 */
#ifndef STOREFL_ACCUM_H
#define STOREFL_ACCUM_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shape of one accumulated tensor (same as the model's). */
typedef struct storefl_accum_tensor {
  char name[STOREFL_MAX_ID_LEN + 1];
  uint32_t ndim;
  uint64_t shape[STOREFL_MAX_DIMS];
} storefl_accum_tensor;

typedef struct storefl_accum storefl_accum;

/* Creates an accumulator for n_tensors tensors of the given shapes with grid 2^-scale_bits
 * (1 <= scale_bits <= 60) accepting at most max_updates updates (>= 1).
 * STOREFL_ERR_INVALID for bad arguments or a model over 2^31 coordinates; STOREFL_ERR_NOMEM. */
int storefl_accum_create(const storefl_accum_tensor *tensors, uint32_t n_tensors, int scale_bits,
                         uint32_t max_updates, storefl_accum **out);
void storefl_accum_free(storefl_accum *acc);

/* Statistics of an update computed by storefl_accum_check (in update units, before weighting). */
typedef struct storefl_accum_stats {
  double l2_norm; /* over all tensors together; +inf or NaN never returned: non-finite -> error */
  double max_abs; /* largest |x| */
  uint64_t numel; /* coordinates */
} storefl_accum_stats;

/* Validates an update against the accumulator's model without changing anything: same tensor count,
 * names in the same order, same shapes, a supported dtype with consistent nbytes, an int8 scale that is
 * finite and > 0, every value finite. Fills stats (may be NULL).
 * Errors: STOREFL_ERR_INVALID (count/name/shape mismatch), STOREFL_ERR_FORMAT (unknown dtype),
 * STOREFL_ERR_NONFINITE (NaN/Inf value or scale). */
int storefl_accum_check(const storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                        storefl_accum_stats *stats);

/* Whether an update with these stats (from storefl_accum_check) and weight fits the range:
 * 0, or STOREFL_ERR_INVALID (weight 0 or > 2^20, or some |x * w * 2^S| over the limit). */
int storefl_accum_range_ok(const storefl_accum *acc, const storefl_accum_stats *stats, uint64_t weight);

/* storefl_accum_add for tensors already checked: stats must come from storefl_accum_check on the same
 * tensors (the service checks once, persists, then adds). Range and count are re-checked. */
int storefl_accum_add_checked(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                              uint64_t weight, const storefl_accum_stats *stats);

/* Structure only: count, names, order, shapes, dtypes, nbytes, int8 scales (finite, > 0). Same errors
 * as storefl_accum_check, without reading the values. */
int storefl_accum_match(const storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors);

/* The fast path: matches the structure, then adds weight * update while measuring it in the same pass
 * (the update is read once). If a value is not finite (STOREFL_ERR_NONFINITE), the L2 norm exceeds
 * max_norm or a contribution exceeds the range (STOREFL_ERR_INVALID), the same contributions are
 * subtracted again - exactly, in integers - and the sums are as before. stats (may be NULL) receives
 * the measurement either way once the structure matched. STOREFL_ERR_UNAVAILABLE when full. */
int storefl_accum_add_measured(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                               uint64_t weight, double max_norm, storefl_accum_stats *stats);

/* Takes back an update that was added with the same tensors and weight (e.g. when persisting it
 * failed): exact. STOREFL_ERR_INVALID for bad arguments. */
int storefl_accum_sub(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors, uint64_t weight);

/* Adds weight * update (weight >= 1). Call storefl_accum_check first; add re-checks only the range.
 * Errors: STOREFL_ERR_INVALID (weight 0, or a contribution over the limit: nothing changed),
 * STOREFL_ERR_UNAVAILABLE (max_updates already added), and the errors of storefl_accum_check when the
 * tensors do not match (nothing changed). */
int storefl_accum_add(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors, uint64_t weight);

/* Number of updates added and total weight so far. */
uint32_t storefl_accum_count(const storefl_accum *acc);
uint64_t storefl_accum_weight(const storefl_accum *acc);
/* Total coordinates, grid scale and raw sums (numel int64 values, tensors concatenated in order). */
size_t storefl_accum_numel(const storefl_accum *acc);
int storefl_accum_scale_bits(const storefl_accum *acc);
/* storefl_accum_sums and _mut fold the partial sums first (the values do not change); the pointer
 * stays valid until storefl_accum_free, but read the sums again through them after adding more. */
const int64_t *storefl_accum_sums(const storefl_accum *acc);
/* Mutable sums, for central-mode noise added on the same grid by the privacy layer. */
int64_t *storefl_accum_sums_mut(storefl_accum *acc);
/* Largest allowed |q * w| per contribution. */
int64_t storefl_accum_limit(const storefl_accum *acc);
/* Kernel in use: "avx2" (AVX2 + F16C, chosen at run time) or "scalar" (other CPUs, or the environment
 * variable STOREFL_NO_SIMD set). Both give bit-identical sums. */
const char *storefl_accum_kernel(void);

/* Forgets every update. */
void storefl_accum_reset(storefl_accum *acc);

/* The weighted mean of the accumulated updates, as doubles: mean[i] = sums[i] / (weight * 2^S),
 * computed exactly as that division of two exact doubles (sums are converted with round-to-nearest).
 * out has storefl_accum_numel() elements. STOREFL_ERR_INVALID if nothing was added. */
int storefl_accum_mean(const storefl_accum *acc, double *out);

/* round-half-even(x * 2^scale_bits) (x * w may be passed as x). STOREFL_ERR_INVALID if not finite
 * or out of int64 range. */
int storefl_accum_quantize(double x, int scale_bits, int64_t *q);

#ifdef __cplusplus
}
#endif
#endif
