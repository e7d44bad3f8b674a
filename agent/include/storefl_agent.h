/*
 * storefl agent: the store's local database (SQLite, WAL mode).
 *
 * This is the C API point-of-sale software links against to record what happens in the store
 * (product catalogue, views, add-to-carts, purchases, returns), and what the rest of the agent uses
 * to keep model versions, its local privacy ledger and the outbox of updates waiting to be sent.
 * The schema is documented in docs/store.md; it is versioned (PRAGMA user_version) and migrated
 * forward at open. A database written by a newer storefl is refused, never "downgraded".
 *
 * Conventions
 *  - Every function returns 0 (STOREFL_OK) or a negative storefl_err (storefl/error.h); a
 *    human-readable reason is then available from storefl_store_errmsg() until the next call.
 *  - Strings passed in are borrowed for the duration of the call only. Strings and blobs handed
 *    out are owned as stated on each function.
 *  - Times are unix seconds (int64_t). Exports without time zone are read as UTC.
 *  - A storefl_store handle is not thread-safe: use one handle per thread (SQLite WAL lets several
 *    handles, in several processes, read while one writes; writers wait up to busy_timeout_ms).
 *  - An ingest (storefl-agent ingest) makes a file visible in one final transaction that takes
 *    seconds for a large export (about 7 s for 540k lines); a POS writer meanwhile waits up to
 *    busy_timeout_ms and then gets STOREFL_ERR_UNAVAILABLE: retry, or raise the timeout.
 *  - Outside a batch each recording call is its own durable transaction; inside
 *    storefl_store_begin()/storefl_store_commit() nothing is visible to others before the commit,
 *    and storefl_store_rollback() (or closing the handle, or a crash) discards the whole batch.
 */
#ifndef STOREFL_AGENT_H
#define STOREFL_AGENT_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/retail_csv.h" /* storefl_event_kind */

#ifdef __cplusplus
extern "C" {
#endif

/* Schema version this build writes (PRAGMA user_version). */
#define STOREFL_STORE_SCHEMA_VERSION 1

typedef struct storefl_store storefl_store;

typedef struct storefl_store_options {
  int read_only;       /* open without creating or migrating */
  int integrity_check; /* run PRAGMA integrity_check + foreign_key_check at open; fail if not ok */
  int no_sync;         /* synchronous=OFF: only for stores being built from scratch (partition),
                          which are redone after a crash; default is synchronous=FULL */
  int busy_timeout_ms; /* 0 -> 5000 */
} storefl_store_options;

/* Opens (creating if needed, unless read_only) the store at path, enables WAL and foreign keys,
 * applies pending migrations, and discards the staging rows of ingests that were interrupted
 * (see agent/src/ingest.h). opts may be NULL for the defaults. On success *out is owned by the
 * caller and released with storefl_store_close(). err (may be NULL) receives the reason on failure.
 * Errors: STOREFL_ERR_IO (cannot open, not a database, integrity check failed),
 * STOREFL_ERR_FORMAT (a SQLite file that is not a storefl store, or a schema newer than
 * STOREFL_STORE_SCHEMA_VERSION), STOREFL_ERR_UNAVAILABLE (locked by another writer too long),
 * STOREFL_ERR_NOMEM. */
int storefl_store_open(const char *path, const storefl_store_options *opts, storefl_store **out, char *err,
                       size_t errlen);

/* Closes the handle; an open batch is rolled back. NULL is accepted. */
void storefl_store_close(storefl_store *s);

/* Reason for the last failure on this handle ("" if none). Owned by the handle. */
const char *storefl_store_errmsg(const storefl_store *s);

/* Schema version of the open database (== STOREFL_STORE_SCHEMA_VERSION after a successful open). */
int storefl_store_schema_version(storefl_store *s);

/* The underlying SQLite connection, borrowed (do not close it), for read queries by other agent
 * modules (training, recommend, evaluation). Write only through this API so that invariants hold. */
struct sqlite3 *storefl_store_db(storefl_store *s);

/* ---- Batches ---------------------------------------------------------------------------- */

/* Starts a batch (BEGIN IMMEDIATE). Errors: STOREFL_ERR_INVALID (already in a batch),
 * STOREFL_ERR_UNAVAILABLE (another writer holds the lock longer than busy_timeout_ms), _IO. */
int storefl_store_begin(storefl_store *s);
/* Makes the batch durable. On failure the batch is rolled back. Errors: _INVALID (no batch), _IO,
 * _UNAVAILABLE. */
int storefl_store_commit(storefl_store *s);
/* Discards the batch. Errors: _INVALID (no batch), _IO. */
int storefl_store_rollback(storefl_store *s);

/* ---- Catalogue -------------------------------------------------------------------------- */

typedef struct storefl_product {
  const char *code;     /* required, non-empty, < 64 bytes; stored as given (callers upper-case) */
  const char *name;     /* product text; NULL or "" keeps the stored one */
  const char *category; /* NULL or "" keeps the stored one */
  const char *brand;    /* brand or supplier; NULL or "" keeps the stored one */
  double price;         /* current unit price; <= 0 or NaN keeps the stored one */
  int64_t first_seen;   /* when the product was first on offer; the stored value becomes the
                           minimum of both (0 = unknown, keeps the stored one) */
} storefl_product;

/* Inserts or updates a product. Errors: STOREFL_ERR_INVALID (empty or over-long code), _IO,
 * _UNAVAILABLE. */
int storefl_store_upsert_product(storefl_store *s, const storefl_product *p);

/* Product lookup. On success *out is filled with strings owned by the handle, valid until the next
 * call on it. Errors: STOREFL_ERR_NOT_FOUND, _IO. */
int storefl_store_get_product(storefl_store *s, const char *code, storefl_product *out);

/* ---- Events ----------------------------------------------------------------------------- */

typedef struct storefl_event {
  int64_t time;
  const char *shopper; /* pseudonymous shopper id (loyalty number...), NULL or "" = anonymous */
  const char *basket;  /* basket / receipt id, NULL if none (e.g. a view) */
  const char *product; /* product code; an unknown code is added to the catalogue (code only) */
  double quantity;     /* units, > 0 (a return carries the units returned) */
  double price;        /* unit price paid, NaN or <= 0 if unknown */
  storefl_event_kind kind;
  int64_t source_line; /* line of the source file for imported events (idempotent re-import of
                          the same (basket, product, time, line) is ignored), 0 for live events */
} storefl_event;

/* Records one event. *inserted (may be NULL) is set to 0 when an identical imported event was
 * already there. Errors: STOREFL_ERR_INVALID (no product, bad kind, quantity not > 0 or not
 * finite), _IO, _UNAVAILABLE. */
int storefl_store_record_event(storefl_store *s, const storefl_event *e, int *inserted);

/* Counts of rows, for reports and tests. */
typedef struct storefl_store_counts {
  int64_t products, shoppers, events, purchases, models, ledger, outbox_pending;
} storefl_store_counts;
int storefl_store_counts_get(storefl_store *s, storefl_store_counts *out);

/* ---- Model versions --------------------------------------------------------------------- */

/* Stores a model blob under (kind, version), e.g. kind "global" for the federated model and
 * "personal" for the few-shot adapted copy. Replaces an existing (kind, version). digest is the
 * model's SHA-256 (32 bytes). Errors: _INVALID (empty kind, NULL blob), _IO. */
int storefl_store_put_model(storefl_store *s, const char *kind, uint64_t version, const uint8_t digest[32],
                            const void *blob, size_t len);

/* Fetches the model of kind with the highest version (version == UINT64_MAX) or the given version.
 * On success *blob is a malloc'd copy the caller frees, *len its size, *version_out (may be NULL)
 * its version and digest (may be NULL) gets 32 bytes. Errors: STOREFL_ERR_NOT_FOUND, _NOMEM, _IO. */
int storefl_store_get_model(storefl_store *s, const char *kind, uint64_t version, uint64_t *version_out,
                            uint8_t digest[32], void **blob, size_t *len);

/* ---- Local privacy ledger --------------------------------------------------------------- */

typedef struct storefl_local_ledger_entry {
  int64_t id; /* assigned on append */
  uint64_t round;
  int mode;             /* storefl_privacy_mode: 1 local, 2 central */
  double q;             /* sampling probability claimed */
  double sigma;         /* noise multiplier */
  double clip;          /* clipping norm C */
  double delta;         /* delta of the accounting */
  double epsilon_spent; /* cumulative epsilon after this round, as computed by the accountant */
  int64_t time;
} storefl_local_ledger_entry;

/* Appends an entry (one per round: a second entry for the same round is STOREFL_ERR_CONFLICT).
 * e->id is set. Errors: _INVALID (non-finite or negative parameters, mode not 1/2), _CONFLICT, _IO. */
int storefl_store_ledger_append(storefl_store *s, storefl_local_ledger_entry *e);

/* Calls fn for each entry in round order; a non-zero return from fn stops and is returned.
 * Errors: _IO. */
int storefl_store_ledger_list(storefl_store *s, int (*fn)(void *user, const storefl_local_ledger_entry *e),
                              void *user);

/* The latest entry (highest round). Errors: STOREFL_ERR_NOT_FOUND when empty, _IO. */
int storefl_store_ledger_last(storefl_store *s, storefl_local_ledger_entry *out);

/* ---- Outbox ----------------------------------------------------------------------------- */

typedef enum storefl_outbox_state {
  STOREFL_OUTBOX_PENDING = 0, /* waiting for (re)transmission */
  STOREFL_OUTBOX_SENT = 1,    /* acknowledged; receipt stored */
  STOREFL_OUTBOX_DEAD = 2,    /* given up (round closed, rejected for good) */
} storefl_outbox_state;

typedef struct storefl_outbox_item {
  int64_t id;
  uint64_t round;
  storefl_outbox_state state;
  int attempts;
  int64_t created_at, next_attempt_at, sent_at; /* sent_at 0 until sent */
  void *body;                                   /* owned by the item: storefl_outbox_item_free() */
  size_t body_len;
  void *receipt; /* owned by the item, NULL until sent */
  size_t receipt_len;
  char last_error[128];
} storefl_outbox_item;

/* Enqueues the encoded update body for round, due now. *id (may be NULL) gets its id.
 * Errors: STOREFL_ERR_CONFLICT (an update for this round is already queued or sent),
 * _INVALID (empty body), _IO. */
int storefl_store_outbox_enqueue(storefl_store *s, uint64_t round, const void *body, size_t len, int64_t now,
                                 int64_t *id);

/* The pending item with the earliest next_attempt_at <= now. On success the caller owns *out's
 * buffers (storefl_outbox_item_free). Errors: STOREFL_ERR_NOT_FOUND (nothing due), _NOMEM, _IO. */
int storefl_store_outbox_next_due(storefl_store *s, int64_t now, storefl_outbox_item *out);

/* Marks item id sent with the aggregator's receipt (may be empty). Errors: _NOT_FOUND, _CONFLICT
 * (not pending), _IO. */
int storefl_store_outbox_mark_sent(storefl_store *s, int64_t id, const void *receipt, size_t len,
                                   int64_t now);

/* Records a failed attempt: attempts+1, next_attempt_at = retry_at, error text kept (truncated).
 * give_up moves the item to STOREFL_OUTBOX_DEAD. Errors: _NOT_FOUND, _CONFLICT (not pending), _IO. */
int storefl_store_outbox_mark_failed(storefl_store *s, int64_t id, int64_t retry_at, const char *error,
                                     int give_up);

/* Calls fn for every item (all states) by id; the item's buffers are valid during the call only.
 * A non-zero return from fn stops and is returned. Errors: _NOMEM, _IO. */
int storefl_store_outbox_list(storefl_store *s, int (*fn)(void *user, const storefl_outbox_item *it),
                              void *user);

void storefl_outbox_item_free(storefl_outbox_item *it);

/* ---- Key-value metadata (store id, last model fetched, ...) ------------------------------- */

/* Sets or replaces key. Errors: _INVALID (empty key), _IO. */
int storefl_store_meta_set(storefl_store *s, const char *key, const char *value);
/* Copies the value into buf (truncation is STOREFL_ERR_TOO_LARGE). Errors: _NOT_FOUND, _IO. */
int storefl_store_meta_get(storefl_store *s, const char *key, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
