/*
 * The bridge between the store's SQLite database (storefl_agent.h) and the in-memory model API
 * (storefl/features.h, model.h, train.h): loads the catalogue and the shoppers' purchase histories,
 * and keeps model versions in the store's models table.
 *
 * Model blobs in the models table, by kind:
 *   "global"   the federated model as received from the aggregator: the CBOR model message of
 *              GET /v1/model (protocol/PROTOCOL.md), digest = the model digest;
 *   "local"    a model trained on this store alone (storefl-agent train), same encoding;
 *   "personal" the few-shot adapted head (storefl_head_to_blob, storefl/model.h) stored under the
 *              version of the model it was adapted from, digest = that base model's digest.
 */
#ifndef STOREFL_STORE_MODEL_H
#define STOREFL_STORE_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/features.h"
#include "storefl/model.h"
#include "storefl/train.h"
#include "storefl_agent.h"

/* A store's data in memory. Profiles: one per identified shopper (their purchases in time order),
 * and one per anonymous basket (no history beyond the basket). Owned; storefl_agent_data_free(). */
typedef struct storefl_agent_data {
  storefl_catalog *cat;
  int64_t *product_ids; /* catalogue index -> products.id, ascending */
  size_t n_products;
  storefl_profile **profiles;
  size_t n_profiles;
  size_t n_events;    /* purchases loaded */
  int64_t first_time; /* earliest purchase (0 if none) */
  int64_t last_time;  /* latest purchase (0 if none) */
} storefl_agent_data;

/* Loads the catalogue (every product; products never sold get their first_seen, or "now" when
 * unknown) hashing into `buckets` buckets. Errors: STOREFL_ERR_IO, STOREFL_ERR_NOMEM,
 * STOREFL_ERR_INVALID (bad bucket count). */
int storefl_agent_load_catalog(storefl_store *s, uint32_t buckets, storefl_agent_data *d);

/* Loads purchase histories into profiles: all shoppers and anonymous baskets (shopper NULL), or
 * only the shopper whose external id is `shopper` (0 or 1 profile; STOREFL_ERR_NOT_FOUND if the id
 * is unknown). Needs storefl_agent_load_catalog() first. */
int storefl_agent_load_profiles(storefl_store *s, storefl_agent_data *d, const char *shopper);

/* Catalogue index of a product code, or -1. */
int64_t storefl_agent_find(const storefl_agent_data *d, const char *code);

void storefl_agent_data_free(storefl_agent_data *d);

/* Loads the latest model of kind ("global" or "local"), checking the architecture, every tensor
 * and the stored digest. *out is owned by the caller. Errors: STOREFL_ERR_NOT_FOUND (none stored),
 * STOREFL_ERR_FORMAT / _INVALID / _NONFINITE (a blob that does not decode to this architecture),
 * STOREFL_ERR_CONFLICT (digest mismatch), _IO, _NOMEM. */
int storefl_agent_load_model(storefl_store *s, const char *kind, storefl_model **out, uint64_t *version,
                             uint8_t digest[STOREFL_MODEL_DIGEST_LEN]);

/* Stores m as (kind, version), CBOR-encoded like the model message. Errors: _IO, _NOMEM, _INVALID. */
int storefl_agent_save_model(storefl_store *s, const char *kind, uint64_t version, const storefl_model *m);

/* The store's part of a federated round: loads the catalogue and every purchase history of the
 * store and runs storefl_local_update() (storefl/train.h) from `global` with cfg (the round's
 * local_steps and local_lr go in cfg->steps and cfg->optim.lr; cfg->algo selects FedAvg/Reptile or
 * first-order MAML). delta (global's config) receives theta_local - theta_global, *n_examples the
 * purchases used (the FedAvg weight). The caller clips, noises and encodes delta (privacy, codec).
 * Errors: as storefl_agent_load_catalog/profiles and storefl_local_update. */
int storefl_agent_local_update(storefl_store *s, const storefl_model *global, const storefl_train_config *cfg,
                               storefl_model *delta, size_t *n_examples);

/* Time of the store's latest purchase (0 when there is none). Errors: _IO. */
int storefl_agent_last_purchase(storefl_store *s, int64_t *out);

/* Highest stored version of kind, 0 if none. */
uint64_t storefl_agent_model_version(storefl_store *s, const char *kind);

#endif
