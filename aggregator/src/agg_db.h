/*
 * Persistence of the aggregator (internal): models, rounds and accepted updates in one SQLite file
 * (WAL, synchronous=FULL, so a commit returns only once the WAL is fsync'd).
 *
 * Schema: models(version, digest, arch, params, adam_m, adam_v, created_ms) - float32 blobs;
 * rounds(round, state, model_version, opened_ms, deadline_ms, extensions, closed_ms, participants, params);
 * updates(round, store_id, seq, weight, digest, accepted_ms, participants_so_far, body) - body is the
 * update as received, kept only while its round is open (replayed after a crash), set NULL when the
 * round ends; the row stays as the receipt for idempotent retries.
 * All functions return 0 or a storefl_err (STOREFL_ERR_IO for SQLite errors, STOREFL_ERR_NOT_FOUND).
 */
#ifndef STOREFL_AGG_DB_H
#define STOREFL_AGG_DB_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"

typedef struct agg_round_row {
  uint64_t round;
  int state; /* storefl_round_state */
  uint64_t model_version;
  int64_t opened_ms, deadline_ms, closed_ms;
  uint32_t extensions, participants;
} agg_round_row;

typedef struct agg_receipt_row {
  uint64_t round;
  char store_id[STOREFL_MAX_ID_LEN + 1];
  uint8_t digest[STOREFL_DIGEST_LEN];
  int64_t accepted_ms;
  uint32_t participants_so_far;
  uint64_t weight;
} agg_receipt_row;

int agg_db_open(const char *path, sqlite3 **out);
void agg_db_close(sqlite3 *db);
int agg_db_exec(sqlite3 *db, const char *sql);
int agg_db_begin(sqlite3 *db); /* BEGIN IMMEDIATE */
int agg_db_commit(sqlite3 *db);
void agg_db_rollback(sqlite3 *db);

int agg_db_meta_get(sqlite3 *db, const char *key, char *buf, size_t cap);
int agg_db_meta_set(sqlite3 *db, const char *key, const char *value);

/* Newest model. params/adam_m/adam_v have numel floats (adam_* may be NULL: not read). A stored blob
 * of another size is STOREFL_ERR_IO (the database does not match the configured model). */
int agg_db_latest_model(sqlite3 *db, size_t numel, uint64_t *version, uint8_t digest[STOREFL_DIGEST_LEN],
                        float *params, float *adam_m, float *adam_v);
int agg_db_insert_model(sqlite3 *db, uint64_t version, const uint8_t digest[STOREFL_DIGEST_LEN],
                        const char *arch, const float *params, const float *adam_m, const float *adam_v,
                        size_t numel, int64_t created_ms);
/* Deletes models with version < keep_from. */
int agg_db_prune_models(sqlite3 *db, uint64_t keep_from);

int agg_db_latest_round(sqlite3 *db, agg_round_row *out);
/* Insert or replace; params: the round's parameters as INI text (storefl_agg_config_round_params). */
int agg_db_put_round(sqlite3 *db, const agg_round_row *r, const char *params);
int agg_db_round_params(sqlite3 *db, uint64_t round, char *buf, size_t cap);

int agg_db_find_receipt(sqlite3 *db, uint64_t round, const char *store_id, agg_receipt_row *out);
int agg_db_insert_update(sqlite3 *db, const agg_receipt_row *r, const uint8_t *body, size_t len);
/* Calls fn for every stored body of round (in acceptance order); stops at fn's first error. */
int agg_db_for_each_body(sqlite3 *db, uint64_t round,
                         int (*fn)(void *ctx, const agg_receipt_row *r, const uint8_t *body, size_t len),
                         void *ctx);
int agg_db_drop_bodies(sqlite3 *db, uint64_t round);
/* Store ids of round's accepted updates, sorted bytewise, into ids (cap entries of
 * STOREFL_MAX_ID_LEN + 1 chars). */
int agg_db_participants(sqlite3 *db, uint64_t round, char (*ids)[STOREFL_MAX_ID_LEN + 1], uint32_t cap,
                        uint32_t *n);

#endif
