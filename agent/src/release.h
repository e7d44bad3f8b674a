#ifndef STOREFL_AGENT_RELEASE_H
#define STOREFL_AGENT_RELEASE_H
/* The release step of an agent's update: what turns a trained delta into the bytes that leave the
 * store. One function for `storefl-agent run` and `storefl-agent simulate`, so that the two cannot
 * release differently (docs/privacy.md, "local mode"). */
#include <mbedtls/ctr_drbg.h>
#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"
#include "storefl/model.h"
#include "storefl/rng.h"

/* Releases delta (trained from the round's base model) for round, by its mode:
 *  - central (and rounds without privacy): clip to L2 norm round->clip_norm, then encode and
 *    quantize to dtype (storefl_agent_encode_update; stochastic rounding from drbg);
 *  - local: clip, put on the grid 2^-round->scale_bits and add discrete-Gaussian noise
 *    sigma * C from rng (storefl_dp_privatize_local), then encode the grid values exactly
 *    (storefl_agent_encode_update_local; num_examples is not released).
 * delta is modified in place (it holds the released values afterwards); nothing un-clipped or,
 * in local mode, un-noised reaches *out. model gives the tensor names and shapes in wire order.
 * *norm (may be NULL) receives the update's L2 norm before clipping. The body is malloc'd into
 * *out / *len; the caller frees it. Budget gating and charging are the caller's: this function
 * neither decides nor records participation. Errors: STOREFL_ERR_NOMEM, the errors of
 * storefl_dp_privatize_local (STOREFL_ERR_INVALID, STOREFL_ERR_CRYPTO) and of the encoders. */
int storefl_agent_release_update(const storefl_model_msg *model, storefl_model *delta, const char *store_id,
                                 const storefl_round_msg *round, uint64_t n_examples, storefl_dtype dtype,
                                 mbedtls_ctr_drbg_context *drbg, storefl_rng *rng, double *norm,
                                 uint8_t **out, size_t *len);

#endif
