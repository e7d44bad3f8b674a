/*
 * The aggregator's service logic behind the sockets: (authenticated store identity, request bytes)
 * in, (CoAP response code, CBOR body) out. The transport (CoAP/DTLS) only moves bytes and tells the
 * service who the peer is; everything else - rounds, validation, accumulation, durability, model
 * versions - happens here, testable and fuzzable without a network.
 *
 * Durability: storefl_agg_handle_update() returns a 2.04 receipt only after the update body is
 * committed to SQLite (WAL, synchronous=FULL). On open, an interrupted round is restored by replaying
 * its committed updates into the accumulator, so it finishes with a bit-identical model.
 *
 * Threads: every function takes an internal lock; the service may be called from several threads.
 * Responses stay valid until released, even across later calls (the model body is reference-counted,
 * so a Block2 transfer can keep serving an old version while a new one is published).
 */
#ifndef STOREFL_AGG_SERVICE_H
#define STOREFL_AGG_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/agg_config.h"
#include "storefl/messages.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sqlite3 sqlite3;

#define STOREFL_COAP_CONTENT_CBOR 60 /* application/cbor */

/* Outcome of a closed round, passed to the privacy layer's ledger hook. */
typedef struct storefl_agg_round_result {
  uint64_t round;
  storefl_privacy_mode mode;
  double participation_q;
  double noise_multiplier;
  double clip_norm;
  double delta;
  int64_t closed_unix_ms;
  uint64_t model_version; /* the new model */
  uint8_t model_digest[STOREFL_DIGEST_LEN];
  uint32_t n_participants;
  const storefl_str *participants; /* sorted bytewise */
  int closed_on_deadline;          /* 1 if it closed at its deadline (needed to claim amplification) */
} storefl_agg_round_result;

/* Privacy hooks. Every pointer may be NULL: no budget check, no ledger; and in central mode with
 * noise_multiplier > 0 and no add_central_noise, the built-in source is used (the privacy module's exact
 * discrete Gaussian, storefl_dp_add_dgauss, on a CTR_DRBG seeded from the OS entropy source). */
typedef struct storefl_agg_privacy {
  void *ctx;
  /* 0 if store_id may take part in this round; STOREFL_ERR_BUDGET (-> 4.03) if it would exceed its
   * cap; any other error -> 5.00. */
  int (*budget_check)(void *ctx, const char *store_id, const storefl_round_msg *round);
  /* Adds noise to a copy of the accumulated integer sums, in place, on the accumulator grid, with
   * standard deviation stddev_grid = sigma * D grid units, D = C*(1+clip_tolerance)*weight_cap*2^S +
   * sqrt(d)/2: the L2 sensitivity of the weighted integer sum to one store (accepted norm bound plus
   * the rounding of d coordinates). Must be a discrete Gaussian from a CSPRNG. An error leaves the
   * round open. */
  int (*add_central_noise)(void *ctx, int64_t *sums, size_t n, double stddev_grid);
  /* Called inside the transaction that closes the round (db is the service's connection; write the
   * ledger entry there so that model, round state and ledger commit together). Error -> rollback. */
  int (*on_round_closed)(void *ctx, sqlite3 *db, const storefl_agg_round_result *result);
} storefl_agg_privacy;

/* notify() flags: the round (announcement) changed, the model changed, the status changed (an update
 * was accepted). */
enum { STOREFL_AGG_CHANGED_ROUND = 1u, STOREFL_AGG_CHANGED_MODEL = 2u, STOREFL_AGG_CHANGED_STATUS = 4u };

typedef struct storefl_agg_options {
  int64_t (*now_ms)(void *ctx); /* NULL: CLOCK_REALTIME in ms */
  void *clock_ctx;
  /* Called (with the service lock held: do not call back into the service) when the round and/or the
   * model changed, so the transport can send Observe notifications. May be NULL. */
  void (*notify)(void *ctx, unsigned changed);
  void *notify_ctx;
  const storefl_agg_privacy *privacy; /* copied; may be NULL */
  /* The enrolled stores (valid ids, at most STOREFL_MAX_PARTICIPANTS; copied at open): with the
   * built-in ledger ([ledger] key) every round with sampling (q < 1) charges each of them, selected
   * or not. NULL/0: only the stores the ledger has already seen and the round's participants. */
  const char *const *enrolled;
  size_t n_enrolled;
} storefl_agg_options;

typedef struct storefl_agg storefl_agg;

/* Opens (creating if needed) the database, loads the newest model (or creates the initial one from
 * the config's model spec), restores or opens the current round. cfg is copied. opt may be NULL.
 * STOREFL_ERR_INVALID (bad config), STOREFL_ERR_IO (database), STOREFL_ERR_NOMEM. */
int storefl_agg_open(const storefl_agg_config *cfg, const storefl_agg_options *opt, storefl_agg **out);
void storefl_agg_close(storefl_agg *agg);

/* A response. body is valid until storefl_agg_response_release(). */
typedef struct storefl_agg_response {
  int coap_code;       /* class*100+detail: 205, 204, 203, 400, 403, 409, 413, 415, 500, 503 */
  const uint8_t *body; /* CBOR (content format 60); may be NULL with body_len 0 (2.03) */
  size_t body_len;
  int has_etag; /* model responses: etag = model digest */
  uint8_t etag[STOREFL_DIGEST_LEN];
  uint32_t max_age_s; /* 0 = none */
  void *owner_;       /* private */
} storefl_agg_response;

/* Frees the body (drops the reference to a shared model body); safe on a zeroed/released response. */
void storefl_agg_response_release(storefl_agg_response *resp);

/* POST /v1/update. identity: the authenticated store id (DTLS PSK identity or certificate CN),
 * NUL-terminated. content_format: the request's Content-Format option (-1 if absent).
 * Codes: 2.04 + receipt; 4.00 malformed/shape/non-finite/norm, 4.01 no identity, 4.03 forged
 * identity or budget, 4.09 wrong round/base model/round not open, 4.13 too large, 4.15 wrong content
 * format or tensor encoding, 5.03 service unavailable (e.g. round full), 5.00 internal.
 * Every rejection leaves all state unchanged. Returns the storefl_err behind the code (0 on 2.04). */
int storefl_agg_handle_update(storefl_agg *agg, const char *identity, int content_format, const uint8_t *body,
                              size_t len, storefl_agg_response *resp);

/* GET /v1/round: 2.05 + round announcement. */
int storefl_agg_handle_round(storefl_agg *agg, storefl_agg_response *resp);

/* GET /v1/model: 2.05 + model + ETag; 2.03 without body when if_etag (may be NULL) equals the
 * current digest. */
int storefl_agg_handle_model(storefl_agg *agg, const uint8_t *if_etag, size_t if_etag_len,
                             storefl_agg_response *resp);

/* GET /v1/status: 2.05 + status; sessions is the transport's count of live DTLS sessions. */
int storefl_agg_handle_status(storefl_agg *agg, uint32_t sessions, storefl_agg_response *resp);

/* Advances time: closes, extends or abandons the round whose deadline passed. Call it periodically
 * (e.g. every second). Returns ms until the current round's deadline (>= 0), or -1 if idle. */
int64_t storefl_agg_tick(storefl_agg *agg);

/* Introspection for tests, tools and the status page. */
int storefl_agg_round_info(storefl_agg *agg, storefl_round_msg *out, uint32_t *participants_so_far);
/* Copies the current model's float32 parameters (tensors concatenated) into params (numel floats),
 * and its version/digest. numel must equal the model's size (STOREFL_ERR_INVALID otherwise). */
int storefl_agg_model_copy(storefl_agg *agg, float *params, size_t numel, uint64_t *version,
                           uint8_t digest[STOREFL_DIGEST_LEN]);
size_t storefl_agg_model_numel(storefl_agg *agg);

#ifdef __cplusplus
}
#endif
#endif
