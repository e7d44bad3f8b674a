/*
 * The agent's side of the network: configuration ([agent], [aggregator], [dtls], [upload], [retry]
 * sections of agent.ini), quantization of updates for upload, encoding of an update message, and
 * one synchronisation exchange with the aggregator (round, conditional model fetch, outbox upload,
 * receipt). Used by `storefl-agent sync` and `storefl-agent run`.
 */
#ifndef STOREFL_NET_AGENT_H
#define STOREFL_NET_AGENT_H

#include <mbedtls/ctr_drbg.h>
#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"
#include "storefl/transport.h"
#include "storefl_agent.h"

#define STOREFL_AGENT_PATH_MAX 1024

typedef struct storefl_agent_net_config {
  /* [agent] */
  char store_id[STOREFL_MAX_ID_LEN + 1];
  char db[STOREFL_AGENT_PATH_MAX];
  /* [aggregator] */
  char address[300]; /* HOST:PORT, default 127.0.0.1:5684 */
  int insecure_dev;  /* plaintext CoAP (the server must run --insecure-dev) */
  /* [dtls]: psk_key (a file with the hex key; identity = store_id) or ca + cert + key */
  char psk_key[STOREFL_AGENT_PATH_MAX];
  char ca[STOREFL_AGENT_PATH_MAX], cert[STOREFL_AGENT_PATH_MAX], key[STOREFL_AGENT_PATH_MAX];
  /* [upload] */
  storefl_dtype dtype; /* i8 (default, stochastic rounding), f16, f32 */
  int q_block;         /* default 1 */
  int non; /* uploads as NON (Q-Block's streaming mode, RFC 9177), default 0 (see docs/network.md) */
  unsigned block_size; /* default 1024 */
  unsigned timeout_s;  /* per request, default 60 */
  /* [privacy] */
  double epsilon_cap; /* the store's own cap on cumulative epsilon (default 8); rounds that would pass it are
                         refused by the budget gate before training */
  /* [retry] */
  unsigned retry_base_s; /* first back-off, default 2 */
  unsigned retry_max_s;  /* cap, default 300 */
} storefl_agent_net_config;

void storefl_agent_net_config_defaults(storefl_agent_net_config *c);
/* Every section of an agent INI: the network sections read here and [model], [columns], [eval] read
 * by the training, ingest and evaluation loaders. NULL-terminated. */
extern const char *const storefl_agent_ini_sections[];

/* Checks that every section of the agent INI at path is in storefl_agent_ini_sections, so that a
 * misspelt section is an error rather than ignored by every loader (storefl/ini_check.h). Each
 * command reading an agent INI calls it once before its loaders. STOREFL_OK, STOREFL_ERR_IO,
 * STOREFL_ERR_INVALID (err: "PATH:LINE: unknown section [S] (key K); ..."). */
int storefl_agent_ini_check(const char *path, char *err, size_t errlen);

/* Reads the network sections of an agent INI over the defaults, after storefl_agent_ini_check; other
 * known sections are left to their loaders. Errors: STOREFL_ERR_IO, STOREFL_ERR_INVALID (message with
 * the file, line, section and key in err). [privacy] epsilon_cap must be finite and >= 0. */
int storefl_agent_net_config_load(const char *path, storefl_agent_net_config *c, char *err, size_t errlen);

/* Opens a DTLS client to the aggregator with the configured credentials. */
int storefl_agent_connect(const storefl_agent_net_config *c, storefl_client **out, char *err, size_t errlen);

/* ---- Quantization ----------------------------------------------------------------------------- */

/* Unbiased stochastic int8 quantization: scale = max|x| / 127 (1 if all zero), q_i =
 * floor(x_i / scale + u_i) with u_i uniform in [0, 1) from the CTR_DRBG, so E[q_i * scale] = x_i
 * exactly (up to the 24-bit resolution of u). Errors: STOREFL_ERR_NONFINITE, STOREFL_ERR_CRYPTO. */
int storefl_quantize_i8_stochastic(const float *x, size_t n, int8_t *q, float *scale,
                                   mbedtls_ctr_drbg_context *drbg);

/* A CTR_DRBG seeded from the OS entropy source (personalization string: "storefl-agent"). Free with
 * storefl_agent_drbg_free(). */
int storefl_agent_drbg_new(mbedtls_ctr_drbg_context **out);
void storefl_agent_drbg_free(mbedtls_ctr_drbg_context *d);

/* ---- Update encoding -------------------------------------------------------------------------- */

/* Encodes the update message for `round` with the tensor names and shapes of `model` and the values
 * of delta (all tensors concatenated in model order, n floats). The body is malloc'd (*out, *len);
 * the caller frees it. Errors: STOREFL_ERR_INVALID (n does not match the model), codec errors,
 * STOREFL_ERR_NOMEM. */
int storefl_agent_encode_update(const storefl_model_msg *model, const float *delta, size_t n,
                                const char *store_id, const storefl_round_msg *round, uint64_t num_examples,
                                storefl_dtype dtype, mbedtls_ctr_drbg_context *drbg, uint8_t **out,
                                size_t *len);

/* The local-mode release: grid holds the n noised grid integers k_i that storefl_dp_privatize_local
 * left in its work array, on the round's grid step = 2^-round->scale_bits; delta their values k_i * step
 * (as it wrote them back). Encodes them exactly: f32 as is, f16 (exact while |k_i| < 2^11), i8 as
 * q_i = k_i saturated to [-127, 127] with scale = step (storefl_dp_grid_to_i8; post-processing). The
 * message declares noise_multiplier = round->noise_multiplier and num_examples = 1: the example count
 * is not noised, so it is not released. Errors as storefl_agent_encode_update. */
int storefl_agent_encode_update_local(const storefl_model_msg *model, const float *delta, const int64_t *grid,
                                      size_t n, const char *store_id, const storefl_round_msg *round,
                                      storefl_dtype dtype, uint8_t **out, size_t *len);

/* ---- One exchange ------------------------------------------------------------------------------- */

typedef struct storefl_sync_result {
  int have_round;
  storefl_round_msg round; /* valid if have_round (no string fields) */
  int model_changed;       /* a new model was downloaded and stored (kind "global") */
  uint64_t model_version;
  size_t model_bytes; /* bytes of the model body received (0 when 2.03) */
  int uploaded;       /* an outbox item was acknowledged */
  int duplicate;      /* ... and the aggregator had already counted it */
  int rejected;       /* an outbox item was rejected for good (moved to dead) */
  int upload_code;    /* CoAP code of the upload, 0 if none */
  int pending_left;   /* an item is still pending (retry later) */
} storefl_sync_result;

/* Fetches the round, fetches the model if its ETag changed (the model is stored in the store with
 * kind "global" and its ETag in meta "model_etag"), uploads the due outbox item (if any) and stores
 * its receipt. A transient failure (timeout, 5.03) re-schedules the item with exponential back-off
 * and jitter; a definitive rejection (4.xx) moves it to dead. Returns 0 when the exchange
 * completed, STOREFL_ERR_UNAVAILABLE when the aggregator could not be reached (the outbox is kept). */
int storefl_agent_sync(const storefl_agent_net_config *c, storefl_store *st, storefl_client *client,
                       storefl_sync_result *res, char *err, size_t errlen);

/* Back-off before retry number `attempts` (1, 2, ...): base * 2^(attempts-1) capped at max, then
 * uniformly jittered in [50%, 100%] so that stores do not retry in lock-step. Milliseconds. */
int64_t storefl_agent_backoff_ms(const storefl_agent_net_config *c, int attempts,
                                 mbedtls_ctr_drbg_context *drbg);

int64_t storefl_agent_now_ms(void);

#endif
