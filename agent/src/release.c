#include "release.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "net_agent.h"
#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/log.h"

int storefl_agent_release_update(const storefl_model_msg *model, storefl_model *delta, const char *store_id,
                                 const storefl_round_msg *round, uint64_t n_examples, storefl_dtype dtype,
                                 mbedtls_ctr_drbg_context *drbg, storefl_rng *rng, double *norm,
                                 uint8_t **out, size_t *len) {
  if (!model || !delta || !store_id || !round || !out || !len)
    return STOREFL_ERR_INVALID;
  *out = NULL;
  *len = 0;
  double pre = 0;
  int rc;
  if (round->mode == STOREFL_PRIVACY_LOCAL) {
    /* Clip, grid 2^-scale_bits, discrete Gaussian sigma*C: the values in delta are now the release. */
    storefl_dp_span sp = {delta->block, delta->numel};
    int64_t *grid = malloc(delta->numel ? delta->numel * sizeof *grid : 1);
    rc = grid ? storefl_dp_privatize_local(rng, &sp, 1, round->clip_norm, round->noise_multiplier,
                                           ldexp(1.0, -(int)round->scale_bits), grid, &pre)
              : STOREFL_ERR_NOMEM;
    if (rc)
      SFL_ERROR("release", "round %" PRIu64 ": local privatization failed: %s", round->round,
                storefl_strerror(rc));
    else
      rc = storefl_agent_encode_update_local(model, delta->block, grid, delta->numel, store_id, round, dtype,
                                             out, len);
    free(grid);
  } else {
    /* Client-level clipping: everything this store sends in the round has L2 norm <= C (the
     * aggregator adds the noise in central mode). */
    double ss = 0;
    for (size_t i = 0; i < delta->numel; i++)
      ss += (double)delta->block[i] * delta->block[i];
    pre = sqrt(ss);
    if (pre > round->clip_norm && pre > 0)
      storefl_model_scale(delta, (float)(round->clip_norm / pre * (1.0 - 1e-6)));
    rc = storefl_agent_encode_update(model, delta->block, delta->numel, store_id, round, n_examples, dtype,
                                     drbg, out, len);
  }
  if (norm)
    *norm = pre;
  return rc;
}
