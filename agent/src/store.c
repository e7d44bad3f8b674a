/* The agent's SQLite store: schema and migrations, catalogue, events, models, ledger, outbox. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"
#include "storefl/error.h"
#include "storefl_agent.h"

/* A DELETE collects the rowids it removes in memory first: chunks keep that bounded. */
enum { STAGING_DELETE_CHUNK = 20000 };

/* 'SFL1': marks a SQLite file as a storefl store so that we never migrate someone else's database. */
#define STOREFL_APPLICATION_ID 0x53464C31

/* Migration i brings user_version from i to i+1. Append only: never edit a released step. */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1: initial schema (docs/store.md). */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE products("
    "  id INTEGER PRIMARY KEY,"
    "  code TEXT NOT NULL UNIQUE CHECK(length(code) BETWEEN 1 AND 63),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  category TEXT NOT NULL DEFAULT '',"
    "  brand TEXT NOT NULL DEFAULT '',"
    "  price REAL,"        /* current unit price, NULL unknown */
    "  first_seen INTEGER" /* first time on offer, NULL unknown */
    ");"
    "CREATE TABLE shoppers(id INTEGER PRIMARY KEY, ext_id TEXT NOT NULL UNIQUE, first_seen INTEGER NOT NULL);"
    "CREATE TABLE ingest_runs("
    "  id INTEGER PRIMARY KEY,"
    "  source TEXT NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  state TEXT NOT NULL CHECK(state IN ('running','complete','failed','aborted')),"
    "  rows_read INTEGER NOT NULL DEFAULT 0,"
    "  rows_stored INTEGER NOT NULL DEFAULT 0,"
    "  rows_duplicate INTEGER NOT NULL DEFAULT 0,"
    "  rows_filtered INTEGER NOT NULL DEFAULT 0,"
    "  rows_bad INTEGER NOT NULL DEFAULT 0,"
    "  message TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE TABLE events("
    "  id INTEGER PRIMARY KEY,"
    "  time INTEGER NOT NULL,"
    "  shopper_id INTEGER REFERENCES shoppers(id),"
    "  basket TEXT,"
    "  product_id INTEGER NOT NULL REFERENCES products(id),"
    "  quantity REAL NOT NULL CHECK(quantity > 0),"
    "  price REAL,"
    "  kind INTEGER NOT NULL CHECK(kind BETWEEN 0 AND 3),"
    "  source_line INTEGER,"
    "  run_id INTEGER REFERENCES ingest_runs(id)"
    ");"
    "CREATE UNIQUE INDEX events_import_key ON events(basket, product_id, time, source_line)"
    "  WHERE source_line IS NOT NULL;"
    "CREATE INDEX events_shopper_time ON events(shopper_id, time);"
    "CREATE INDEX events_product_time ON events(product_id, time);"
    "CREATE INDEX events_time ON events(time);"
    /* Rows of an ingest in progress: invisible to readers of events until the run completes. */
    "CREATE TABLE ingest_staging("
    "  run_id INTEGER NOT NULL REFERENCES ingest_runs(id),"
    "  time INTEGER NOT NULL, shopper TEXT NOT NULL, basket TEXT NOT NULL, code TEXT NOT NULL,"
    "  name TEXT NOT NULL, category TEXT NOT NULL, brand TEXT NOT NULL,"
    "  quantity REAL NOT NULL, price REAL NOT NULL, kind INTEGER NOT NULL, source_line INTEGER NOT NULL"
    ");"
    "CREATE INDEX ingest_staging_run ON ingest_staging(run_id);"
    "CREATE TABLE models("
    "  kind TEXT NOT NULL, version INTEGER NOT NULL,"
    "  digest BLOB NOT NULL CHECK(length(digest) = 32), blob BLOB NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY(kind, version)"
    ");"
    "CREATE TABLE ledger("
    "  id INTEGER PRIMARY KEY,"
    "  round INTEGER NOT NULL UNIQUE,"
    "  mode INTEGER NOT NULL CHECK(mode IN (1, 2)),"
    "  q REAL NOT NULL, sigma REAL NOT NULL, clip REAL NOT NULL, delta REAL NOT NULL,"
    "  epsilon REAL NOT NULL,"
    "  time INTEGER NOT NULL"
    ");"
    "CREATE TABLE outbox("
    "  id INTEGER PRIMARY KEY,"
    "  round INTEGER NOT NULL UNIQUE,"
    "  body BLOB NOT NULL,"
    "  state INTEGER NOT NULL DEFAULT 0 CHECK(state IN (0, 1, 2)),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  next_attempt_at INTEGER NOT NULL,"
    "  sent_at INTEGER,"
    "  receipt BLOB,"
    "  last_error TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX outbox_due ON outbox(state, next_attempt_at);",
};
enum { N_MIGRATIONS = sizeof MIGRATIONS / sizeof MIGRATIONS[0] };
_Static_assert(N_MIGRATIONS == STOREFL_STORE_SCHEMA_VERSION, "one migration per schema version");

enum {
  ST_PRODUCT_UPSERT,
  ST_PRODUCT_GET,
  ST_PRODUCT_ENSURE,
  ST_SHOPPER_ENSURE,
  ST_EVENT_INSERT,
  ST_MODEL_PUT,
  ST_MODEL_GET_LATEST,
  ST_MODEL_GET,
  ST_LEDGER_APPEND,
  ST_LEDGER_LIST,
  ST_LEDGER_LAST,
  ST_OUTBOX_ENQUEUE,
  ST_OUTBOX_DUE,
  ST_OUTBOX_STATE,
  ST_OUTBOX_SENT,
  ST_OUTBOX_FAILED,
  ST_OUTBOX_LIST,
  ST_META_SET,
  ST_META_GET,
  ST_COUNT
};

static const char *const SQL[ST_COUNT] = {
    [ST_PRODUCT_UPSERT] =
        "INSERT INTO products(code, name, category, brand, price, first_seen) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
        "ON CONFLICT(code) DO UPDATE SET "
        "name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE name END, "
        "category = CASE WHEN excluded.category <> '' THEN excluded.category ELSE category END, "
        "brand = CASE WHEN excluded.brand <> '' THEN excluded.brand ELSE brand END, "
        "price = coalesce(excluded.price, price), "
        "first_seen = CASE WHEN first_seen IS NULL THEN excluded.first_seen "
        "  WHEN excluded.first_seen IS NULL THEN first_seen ELSE min(first_seen, excluded.first_seen) END",
    [ST_PRODUCT_GET] = "SELECT code, name, category, brand, price, first_seen FROM products WHERE code = ?1",
    /* An event for a product not in the catalogue adds it (code only): POS events are never lost. An
     * event earlier than the known launch moves first_seen back: the product was on offer then. */
    [ST_PRODUCT_ENSURE] =
        "INSERT INTO products(code, first_seen) VALUES(?1, ?2) ON CONFLICT(code) DO UPDATE SET "
        "first_seen = min(coalesce(first_seen, excluded.first_seen), excluded.first_seen) "
        "WHERE first_seen IS NULL OR first_seen > excluded.first_seen",
    [ST_SHOPPER_ENSURE] =
        "INSERT INTO shoppers(ext_id, first_seen) VALUES(?1, ?2) ON CONFLICT(ext_id) DO UPDATE "
        "SET first_seen = excluded.first_seen WHERE first_seen > excluded.first_seen",
    [ST_EVENT_INSERT] =
        "INSERT OR IGNORE INTO events(time, shopper_id, basket, product_id, quantity, price, kind, "
        "source_line) VALUES(?1, (SELECT id FROM shoppers WHERE ext_id = ?2), ?3, "
        "(SELECT id FROM products WHERE code = ?4), ?5, ?6, ?7, ?8)",
    [ST_MODEL_PUT] =
        "INSERT OR REPLACE INTO models(kind, version, digest, blob, created_at) VALUES(?1, ?2, ?3, ?4, "
        "CAST(strftime('%s','now') AS INTEGER))",
    [ST_MODEL_GET_LATEST] =
        "SELECT version, digest, blob FROM models WHERE kind = ?1 ORDER BY version DESC LIMIT 1",
    [ST_MODEL_GET] = "SELECT version, digest, blob FROM models WHERE kind = ?1 AND version = ?2",
    [ST_LEDGER_APPEND] = "INSERT INTO ledger(round, mode, q, sigma, clip, delta, epsilon, time) "
                         "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_LEDGER_LIST] =
        "SELECT id, round, mode, q, sigma, clip, delta, epsilon, time FROM ledger ORDER BY round",
    [ST_LEDGER_LAST] = "SELECT id, round, mode, q, sigma, clip, delta, epsilon, time FROM ledger ORDER BY "
                       "round DESC LIMIT 1",
    [ST_OUTBOX_ENQUEUE] =
        "INSERT INTO outbox(round, body, created_at, next_attempt_at) VALUES(?1, ?2, ?3, ?3)",
    [ST_OUTBOX_DUE] =
        "SELECT id, round, state, attempts, created_at, next_attempt_at, sent_at, body, receipt, "
        "last_error FROM outbox WHERE state = 0 AND next_attempt_at <= ?1 "
        "ORDER BY next_attempt_at, id LIMIT 1",
    [ST_OUTBOX_STATE] = "SELECT state FROM outbox WHERE id = ?1",
    [ST_OUTBOX_SENT] = "UPDATE outbox SET state = 1, attempts = attempts + 1, sent_at = ?2, receipt = ?3, "
                       "last_error = '' WHERE id = ?1 AND state = 0",
    [ST_OUTBOX_FAILED] = "UPDATE outbox SET state = ?4, attempts = attempts + 1, next_attempt_at = ?2, "
                         "last_error = substr(?3, 1, 127) WHERE id = ?1 AND state = 0",
    [ST_OUTBOX_LIST] =
        "SELECT id, round, state, attempts, created_at, next_attempt_at, sent_at, body, receipt, "
        "last_error FROM outbox ORDER BY id",
    [ST_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
};

struct storefl_store {
  sqlite3 *db;
  sqlite3_stmt *st[ST_COUNT];
  char *path;
  int in_batch;
  int lock_fd;   /* ingest lock, -1 when not held */
  int recovered; /* interrupted ingest runs discarded by this handle */
  char err[512];
  /* storefl_store_get_product() results */
  char prod_code[64];
  char *prod_name, *prod_category, *prod_brand;
};

int storefl_store_fail(storefl_store *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, sizeof s->err, fmt, ap);
  va_end(ap);
  return err;
}

static int map_sqlite(int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_DONE:
  case SQLITE_ROW:
    return STOREFL_OK;
  case SQLITE_NOMEM:
    return STOREFL_ERR_NOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
  case SQLITE_FULL:
    return STOREFL_ERR_UNAVAILABLE;
  case SQLITE_CONSTRAINT:
    return STOREFL_ERR_CONFLICT;
  case SQLITE_TOOBIG:
    return STOREFL_ERR_TOO_LARGE;
  case SQLITE_NOTADB:
  case SQLITE_CORRUPT:
  default:
    return STOREFL_ERR_IO;
  }
}

int storefl_store_sqlerr(storefl_store *s, int rc, const char *what) {
  int err = map_sqlite(rc);
  if (err == STOREFL_OK)
    err = STOREFL_ERR_INTERNAL;
  return storefl_store_fail(s, err, "%s: %s", what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

int storefl_store_exec(storefl_store *s, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    int err = map_sqlite(rc);
    storefl_store_fail(s, err == STOREFL_OK ? STOREFL_ERR_INTERNAL : err, "%.200s: %s", sql,
                       msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err == STOREFL_OK ? STOREFL_ERR_INTERNAL : err;
  }
  return STOREFL_OK;
}

/* Prepared statement i, prepared on first use and reset for reuse. NULL on error (message set). */
static sqlite3_stmt *stmt(storefl_store *s, int i) {
  if (!s->st[i]) {
    int rc = sqlite3_prepare_v3(s->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
    if (rc != SQLITE_OK) {
      storefl_store_sqlerr(s, rc, "prepare");
      return NULL;
    }
  } else {
    sqlite3_reset(s->st[i]);
    sqlite3_clear_bindings(s->st[i]);
  }
  return s->st[i];
}

/* Runs a statement expected to return no row; resets it. */
static int step_done(storefl_store *s, sqlite3_stmt *st, const char *what) {
  int rc = sqlite3_step(st);
  int err = rc == SQLITE_DONE ? STOREFL_OK : storefl_store_sqlerr(s, rc, what);
  sqlite3_reset(st);
  return err;
}

static int query_int(storefl_store *s, const char *sql, int64_t *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, sql);
  rc = sqlite3_step(st);
  int err = STOREFL_OK;
  if (rc == SQLITE_ROW)
    *out = sqlite3_column_int64(st, 0);
  else
    err = storefl_store_sqlerr(s, rc == SQLITE_DONE ? SQLITE_INTERNAL : rc, sql);
  sqlite3_finalize(st);
  return err;
}

static int migrate(storefl_store *s) {
  int64_t app_id, version, objects;
  int err = query_int(s, "PRAGMA application_id", &app_id);
  if (err == STOREFL_OK)
    err = query_int(s, "PRAGMA user_version", &version);
  if (err == STOREFL_OK)
    err = query_int(s, "SELECT count(*) FROM sqlite_schema", &objects);
  if (err != STOREFL_OK)
    return err;
  if (app_id != STOREFL_APPLICATION_ID && (app_id != 0 || objects != 0))
    return storefl_store_fail(s, STOREFL_ERR_FORMAT, "%s is a SQLite database but not a storefl store",
                              s->path);
  if (version > STOREFL_STORE_SCHEMA_VERSION)
    return storefl_store_fail(s, STOREFL_ERR_FORMAT,
                              "%s has schema version %lld, newer than this storefl-agent knows (%d): "
                              "upgrade storefl-agent; the database was not modified",
                              s->path, (long long)version, STOREFL_STORE_SCHEMA_VERSION);
  if (version == STOREFL_STORE_SCHEMA_VERSION)
    return STOREFL_OK;
  /* Re-read under the write lock: another process may have migrated meanwhile. */
  if ((err = storefl_store_exec(s, "BEGIN IMMEDIATE")) != STOREFL_OK)
    return err;
  err = query_int(s, "PRAGMA user_version", &version);
  for (int64_t v = version; err == STOREFL_OK && v < STOREFL_STORE_SCHEMA_VERSION; v++) {
    char pragma[64];
    err = storefl_store_exec(s, MIGRATIONS[v]);
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %lld", (long long)v + 1);
    if (err == STOREFL_OK)
      err = storefl_store_exec(s, pragma);
  }
  if (err == STOREFL_OK) {
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA application_id = %d", STOREFL_APPLICATION_ID);
    err = storefl_store_exec(s, pragma);
  }
  if (err == STOREFL_OK)
    return storefl_store_exec(s, "COMMIT");
  char keep[sizeof s->err];
  memcpy(keep, s->err, sizeof keep);
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* best effort: the error above is what matters */
  memcpy(s->err, keep, sizeof keep);
  return err;
}

static int integrity_check(storefl_store *s) {
  static const char *const CHECKS[] = {"PRAGMA integrity_check", "PRAGMA foreign_key_check"};
  for (size_t i = 0; i < 2; i++) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, CHECKS[i], -1, &st, NULL);
    if (rc != SQLITE_OK)
      return storefl_store_sqlerr(s, rc, CHECKS[i]);
    rc = sqlite3_step(st);
    int err = STOREFL_OK;
    if (i == 0 && rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
      err = storefl_store_fail(s, STOREFL_ERR_IO, "%s: integrity check failed: %.300s", s->path,
                               (const char *)sqlite3_column_text(st, 0));
    else if (i == 1 && rc == SQLITE_ROW)
      err = storefl_store_fail(s, STOREFL_ERR_IO, "%s: foreign key check failed in table %s", s->path,
                               (const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      err = storefl_store_sqlerr(s, rc, CHECKS[i]);
    sqlite3_finalize(st);
    if (err != STOREFL_OK)
      return err;
  }
  return STOREFL_OK;
}

int storefl_store_open(const char *path, const storefl_store_options *opts, storefl_store **out, char *err,
                       size_t errlen) {
  static const storefl_store_options DEFAULTS = {0};
  if (!opts)
    opts = &DEFAULTS;
  *out = NULL;
  storefl_store *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    if (err && errlen)
      snprintf(err, errlen, "out of memory");
    return STOREFL_ERR_NOMEM;
  }
  s->lock_fd = -1;
  int flags = opts->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  int e = STOREFL_OK;
  if (rc != SQLITE_OK) {
    e = storefl_store_fail(s, map_sqlite(rc) == STOREFL_ERR_NOMEM ? STOREFL_ERR_NOMEM : STOREFL_ERR_IO,
                           "%s: cannot open: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
  }
  if (e == STOREFL_OK)
    sqlite3_extended_result_codes(s->db, 1);
  if (e == STOREFL_OK &&
      sqlite3_busy_timeout(s->db, opts->busy_timeout_ms > 0 ? opts->busy_timeout_ms : 5000))
    e = storefl_store_sqlerr(s, SQLITE_ERROR, "busy_timeout");
  if (e == STOREFL_OK)
    e = storefl_store_exec(s, "PRAGMA foreign_keys = ON");
  if (e == STOREFL_OK && !opts->read_only) {
    /* journal_mode answers with the mode in effect: "wal" unless the file system refuses it. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
      rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
      e = storefl_store_sqlerr(s, rc, path);
    else if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
      e = storefl_store_fail(s, STOREFL_ERR_IO, "%s: cannot switch to WAL mode (journal_mode is %s)", path,
                             (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  if (e == STOREFL_OK && !opts->read_only)
    e = storefl_store_exec(s, opts->no_sync ? "PRAGMA synchronous = OFF" : "PRAGMA synchronous = FULL");
  if (e == STOREFL_OK && opts->read_only) {
    int64_t version;
    e = query_int(s, "PRAGMA user_version", &version);
    if (e == STOREFL_OK && version != STOREFL_STORE_SCHEMA_VERSION)
      e = storefl_store_fail(
          s, STOREFL_ERR_FORMAT, "%s has schema version %lld, this storefl-agent reads %d%s", path,
          (long long)version, STOREFL_STORE_SCHEMA_VERSION,
          version < STOREFL_STORE_SCHEMA_VERSION ? " (open it read-write once to migrate)" : "");
  }
  if (e == STOREFL_OK && !opts->read_only)
    e = migrate(s);
  if (e == STOREFL_OK && opts->integrity_check)
    e = integrity_check(s);
  if (e == STOREFL_OK && !opts->read_only)
    e = storefl_store_recover_ingests(s, &s->recovered);
  if (e != STOREFL_OK) {
    if (err && errlen)
      snprintf(err, errlen, "%s", s->err);
    storefl_store_close(s);
    return e;
  }
  *out = s;
  return STOREFL_OK;
}

void storefl_store_close(storefl_store *s) {
  if (!s)
    return;
  if (s->in_batch)
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* documented: close discards an open batch */
  for (int i = 0; i < ST_COUNT; i++)
    sqlite3_finalize(s->st[i]);
  sqlite3_close(s->db);
  storefl_store_ingest_unlock(s);
  free(s->prod_name);
  free(s->prod_category);
  free(s->prod_brand);
  free(s->path);
  free(s);
}

const char *storefl_store_errmsg(const storefl_store *s) {
  return s->err;
}

int storefl_store_schema_version(storefl_store *s) {
  int64_t v = -1;
  return query_int(s, "PRAGMA user_version", &v) == STOREFL_OK ? (int)v : -1;
}

struct sqlite3 *storefl_store_db(storefl_store *s) {
  return s->db;
}

int storefl_store_recovered_runs(const storefl_store *s) {
  return s->recovered;
}

int storefl_store_in_batch(const storefl_store *s) {
  return s->in_batch;
}

int storefl_store_begin(storefl_store *s) {
  if (s->in_batch)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "a batch is already open");
  int e = storefl_store_exec(s, "BEGIN IMMEDIATE");
  if (e == STOREFL_OK)
    s->in_batch = 1;
  return e;
}

int storefl_store_commit(storefl_store *s) {
  if (!s->in_batch)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "no batch is open");
  int e = storefl_store_exec(s, "COMMIT");
  if (e != STOREFL_OK && !sqlite3_get_autocommit(s->db)) {
    char keep[sizeof s->err];
    memcpy(keep, s->err, sizeof keep);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* documented: a failed commit discards */
    memcpy(s->err, keep, sizeof keep);
  }
  s->in_batch = 0;
  return e;
}

int storefl_store_rollback(storefl_store *s) {
  if (!s->in_batch)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "no batch is open");
  s->in_batch = 0;
  return storefl_store_exec(s, "ROLLBACK");
}

/* Multi-statement writes outside a batch are made atomic with a savepoint (which nests in a batch). */
static int sp_begin(storefl_store *s) {
  return storefl_store_exec(s, "SAVEPOINT sfl");
}

static int sp_end(storefl_store *s, int err) {
  if (err == STOREFL_OK)
    return storefl_store_exec(s, "RELEASE sfl");
  char keep[sizeof s->err];
  memcpy(keep, s->err, sizeof keep);
  sqlite3_exec(s->db, "ROLLBACK TO sfl; RELEASE sfl", NULL, NULL, NULL); /* the first error is reported */
  memcpy(s->err, keep, sizeof keep);
  return err;
}

static int bind_text_or_empty(sqlite3_stmt *st, int i, const char *v) {
  return sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

static int valid_code(storefl_store *s, const char *code) {
  if (!code || !code[0] || strlen(code) > 63)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "product code must have 1 to 63 bytes");
  return STOREFL_OK;
}

int storefl_store_upsert_product(storefl_store *s, const storefl_product *p) {
  int e = valid_code(s, p->code);
  if (e != STOREFL_OK)
    return e;
  sqlite3_stmt *st = stmt(s, ST_PRODUCT_UPSERT);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_text(st, 1, p->code, -1, SQLITE_TRANSIENT);
  rc = rc ? rc : bind_text_or_empty(st, 2, p->name);
  rc = rc ? rc : bind_text_or_empty(st, 3, p->category);
  rc = rc ? rc : bind_text_or_empty(st, 4, p->brand);
  rc = rc ? rc
          : (p->price > 0 && isfinite(p->price) ? sqlite3_bind_double(st, 5, p->price)
                                                : sqlite3_bind_null(st, 5));
  rc = rc ? rc : (p->first_seen ? sqlite3_bind_int64(st, 6, p->first_seen) : sqlite3_bind_null(st, 6));
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "upsert product");
  return step_done(s, st, "upsert product");
}

static int dup_col(sqlite3_stmt *st, int col, char **out) {
  const unsigned char *t = sqlite3_column_text(st, col);
  free(*out);
  *out = strdup(t ? (const char *)t : "");
  return *out ? STOREFL_OK : STOREFL_ERR_NOMEM;
}

int storefl_store_get_product(storefl_store *s, const char *code, storefl_product *out) {
  sqlite3_stmt *st = stmt(s, ST_PRODUCT_GET);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_text(st, 1, code, -1, SQLITE_TRANSIENT);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "get product");
  rc = sqlite3_step(st);
  int e = STOREFL_OK;
  if (rc == SQLITE_DONE)
    e = storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "no product '%.64s'", code);
  else if (rc != SQLITE_ROW)
    e = storefl_store_sqlerr(s, rc, "get product");
  if (e == STOREFL_OK) {
    snprintf(s->prod_code, sizeof s->prod_code, "%s", (const char *)sqlite3_column_text(st, 0));
    e = dup_col(st, 1, &s->prod_name);
    e = e ? e : dup_col(st, 2, &s->prod_category);
    e = e ? e : dup_col(st, 3, &s->prod_brand);
  }
  if (e == STOREFL_OK) {
    out->code = s->prod_code;
    out->name = s->prod_name;
    out->category = s->prod_category;
    out->brand = s->prod_brand;
    out->price = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
    out->first_seen = sqlite3_column_int64(st, 5);
  }
  sqlite3_reset(st);
  return e;
}

int storefl_store_record_event(storefl_store *s, const storefl_event *ev, int *inserted) {
  if (inserted)
    *inserted = 0;
  int e = valid_code(s, ev->product);
  if (e != STOREFL_OK)
    return e;
  if (!(ev->quantity > 0) || !isfinite(ev->quantity))
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "event quantity must be a finite number > 0");
  if (ev->kind < STOREFL_EVENT_VIEW || ev->kind > STOREFL_EVENT_RETURN)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "bad event kind %d", (int)ev->kind);
  if ((e = sp_begin(s)) != STOREFL_OK)
    return e;
  int has_shopper = ev->shopper && ev->shopper[0];
  sqlite3_stmt *st = stmt(s, ST_PRODUCT_ENSURE);
  if (!st)
    e = STOREFL_ERR_IO;
  if (e == STOREFL_OK) {
    int rc = sqlite3_bind_text(st, 1, ev->product, -1, SQLITE_TRANSIENT);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, ev->time);
    e = rc ? storefl_store_sqlerr(s, rc, "bind") : step_done(s, st, "record event: product");
  }
  if (e == STOREFL_OK && has_shopper) {
    if (!(st = stmt(s, ST_SHOPPER_ENSURE)))
      e = STOREFL_ERR_IO;
    if (e == STOREFL_OK) {
      int rc = sqlite3_bind_text(st, 1, ev->shopper, -1, SQLITE_TRANSIENT);
      rc = rc ? rc : sqlite3_bind_int64(st, 2, ev->time);
      e = rc ? storefl_store_sqlerr(s, rc, "bind") : step_done(s, st, "record event: shopper");
    }
  }
  if (e == STOREFL_OK && !(st = stmt(s, ST_EVENT_INSERT)))
    e = STOREFL_ERR_IO;
  if (e == STOREFL_OK) {
    int rc = sqlite3_bind_int64(st, 1, ev->time);
    rc = rc ? rc
            : (has_shopper ? sqlite3_bind_text(st, 2, ev->shopper, -1, SQLITE_TRANSIENT)
                           : sqlite3_bind_null(st, 2));
    rc = rc ? rc
            : (ev->basket ? sqlite3_bind_text(st, 3, ev->basket, -1, SQLITE_TRANSIENT)
                          : sqlite3_bind_null(st, 3));
    rc = rc ? rc : sqlite3_bind_text(st, 4, ev->product, -1, SQLITE_TRANSIENT);
    rc = rc ? rc : sqlite3_bind_double(st, 5, ev->quantity);
    rc = rc ? rc
            : (ev->price > 0 && isfinite(ev->price) ? sqlite3_bind_double(st, 6, ev->price)
                                                    : sqlite3_bind_null(st, 6));
    rc = rc ? rc : sqlite3_bind_int(st, 7, (int)ev->kind);
    rc = rc ? rc : (ev->source_line ? sqlite3_bind_int64(st, 8, ev->source_line) : sqlite3_bind_null(st, 8));
    e = rc ? storefl_store_sqlerr(s, rc, "bind") : step_done(s, st, "record event");
    if (e == STOREFL_OK && inserted)
      *inserted = sqlite3_changes(s->db) > 0;
  }
  return sp_end(s, e);
}

int storefl_store_counts_get(storefl_store *s, storefl_store_counts *out) {
  static const char *const Q[] = {
      "SELECT count(*) FROM products",
      "SELECT count(*) FROM shoppers",
      "SELECT count(*) FROM events",
      "SELECT count(*) FROM events WHERE kind = 2",
      "SELECT count(*) FROM models",
      "SELECT count(*) FROM ledger",
      "SELECT count(*) FROM outbox WHERE state = 0",
  };
  int64_t *dst[] = {&out->products, &out->shoppers, &out->events,        &out->purchases,
                    &out->models,   &out->ledger,   &out->outbox_pending};
  for (size_t i = 0; i < sizeof Q / sizeof Q[0]; i++) {
    int e = query_int(s, Q[i], dst[i]);
    if (e != STOREFL_OK)
      return e;
  }
  return STOREFL_OK;
}

/* ---- models ---- */

int storefl_store_put_model(storefl_store *s, const char *kind, uint64_t version, const uint8_t digest[32],
                            const void *blob, size_t len) {
  if (!kind || !kind[0] || !blob || !digest)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "put model: kind, digest and blob are required");
  if (version > INT64_MAX || len > INT32_MAX)
    return storefl_store_fail(s, STOREFL_ERR_TOO_LARGE, "put model: version or blob too large");
  sqlite3_stmt *st = stmt(s, ST_MODEL_PUT);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, (int64_t)version);
  rc = rc ? rc : sqlite3_bind_blob(st, 3, digest, 32, SQLITE_TRANSIENT);
  rc = rc ? rc : sqlite3_bind_blob(st, 4, blob, (int)len, SQLITE_STATIC);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "put model");
  int e = step_done(s, st, "put model");
  sqlite3_clear_bindings(st); /* the blob was bound SQLITE_STATIC */
  return e;
}

int storefl_store_get_model(storefl_store *s, const char *kind, uint64_t version, uint64_t *version_out,
                            uint8_t digest[32], void **blob, size_t *len) {
  *blob = NULL;
  *len = 0;
  int latest = version == UINT64_MAX;
  if (!latest && version > INT64_MAX)
    return storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "no model version %llu", (unsigned long long)version);
  sqlite3_stmt *st = stmt(s, latest ? ST_MODEL_GET_LATEST : ST_MODEL_GET);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_text(st, 1, kind, -1, SQLITE_TRANSIENT);
  if (!latest)
    rc = rc ? rc : sqlite3_bind_int64(st, 2, (int64_t)version);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "get model");
  rc = sqlite3_step(st);
  int e = STOREFL_OK;
  if (rc == SQLITE_DONE)
    e = storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "no %s model%s", kind, latest ? "" : " of that version");
  else if (rc != SQLITE_ROW)
    e = storefl_store_sqlerr(s, rc, "get model");
  if (e == STOREFL_OK) {
    size_t n = (size_t)sqlite3_column_bytes(st, 2);
    const void *p = sqlite3_column_blob(st, 2);
    *blob = malloc(n ? n : 1);
    if (!*blob) {
      e = STOREFL_ERR_NOMEM;
    } else {
      if (n)
        memcpy(*blob, p, n);
      *len = n;
      if (version_out)
        *version_out = (uint64_t)sqlite3_column_int64(st, 0);
      if (digest && sqlite3_column_bytes(st, 1) == 32)
        memcpy(digest, sqlite3_column_blob(st, 1), 32);
    }
  }
  sqlite3_reset(st);
  return e;
}

/* ---- ledger ---- */

static void read_ledger(sqlite3_stmt *st, storefl_local_ledger_entry *e) {
  e->id = sqlite3_column_int64(st, 0);
  e->round = (uint64_t)sqlite3_column_int64(st, 1);
  e->mode = sqlite3_column_int(st, 2);
  e->q = sqlite3_column_double(st, 3);
  e->sigma = sqlite3_column_double(st, 4);
  e->clip = sqlite3_column_double(st, 5);
  e->delta = sqlite3_column_double(st, 6);
  e->epsilon_spent = sqlite3_column_double(st, 7);
  e->time = sqlite3_column_int64(st, 8);
}

int storefl_store_ledger_append(storefl_store *s, storefl_local_ledger_entry *le) {
  const double v[] = {le->q, le->sigma, le->clip, le->delta, le->epsilon_spent};
  for (size_t i = 0; i < 5; i++)
    if (!isfinite(v[i]) || v[i] < 0)
      return storefl_store_fail(s, STOREFL_ERR_INVALID,
                                "ledger: q, sigma, C, delta and epsilon must be finite >= 0");
  if (le->q > 1 || le->delta >= 1)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "ledger: q must be <= 1 and delta < 1");
  if (le->mode != 1 && le->mode != 2)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "ledger: mode must be 1 (local) or 2 (central)");
  if (le->round > INT64_MAX)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "ledger: round out of range");
  sqlite3_stmt *st = stmt(s, ST_LEDGER_APPEND);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_int64(st, 1, (int64_t)le->round);
  rc = rc ? rc : sqlite3_bind_int(st, 2, le->mode);
  for (int i = 0; i < 5 && rc == SQLITE_OK; i++)
    rc = sqlite3_bind_double(st, 3 + i, v[i]);
  rc = rc ? rc : sqlite3_bind_int64(st, 8, le->time);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "ledger append");
  int e = step_done(s, st, "ledger append");
  if (e == STOREFL_ERR_CONFLICT)
    return storefl_store_fail(s, e, "ledger: round %llu already has an entry", (unsigned long long)le->round);
  if (e == STOREFL_OK)
    le->id = sqlite3_last_insert_rowid(s->db);
  return e;
}

int storefl_store_ledger_list(storefl_store *s, int (*fn)(void *user, const storefl_local_ledger_entry *e),
                              void *user) {
  sqlite3_stmt *st = stmt(s, ST_LEDGER_LIST);
  if (!st)
    return STOREFL_ERR_IO;
  int rc, ret = STOREFL_OK;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    storefl_local_ledger_entry le;
    read_ledger(st, &le);
    if ((ret = fn(user, &le)) != 0)
      break;
  }
  if (ret == STOREFL_OK && rc != SQLITE_DONE)
    ret = storefl_store_sqlerr(s, rc, "ledger list");
  sqlite3_reset(st);
  return ret;
}

int storefl_store_ledger_last(storefl_store *s, storefl_local_ledger_entry *out) {
  sqlite3_stmt *st = stmt(s, ST_LEDGER_LAST);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_step(st);
  int e = STOREFL_OK;
  if (rc == SQLITE_ROW)
    read_ledger(st, out);
  else if (rc == SQLITE_DONE)
    e = storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "the ledger is empty");
  else
    e = storefl_store_sqlerr(s, rc, "ledger last");
  sqlite3_reset(st);
  return e;
}

/* ---- outbox ---- */

void storefl_outbox_item_free(storefl_outbox_item *it) {
  if (!it)
    return;
  free(it->body);
  free(it->receipt);
  it->body = it->receipt = NULL;
  it->body_len = it->receipt_len = 0;
}

static int copy_blob(sqlite3_stmt *st, int col, void **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (sqlite3_column_type(st, col) == SQLITE_NULL)
    return STOREFL_OK;
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  const void *p = sqlite3_column_blob(st, col);
  if (!(*out = malloc(n ? n : 1)))
    return STOREFL_ERR_NOMEM;
  if (n)
    memcpy(*out, p, n);
  *len = n;
  return STOREFL_OK;
}

static int read_outbox(sqlite3_stmt *st, storefl_outbox_item *it) {
  memset(it, 0, sizeof *it);
  it->id = sqlite3_column_int64(st, 0);
  it->round = (uint64_t)sqlite3_column_int64(st, 1);
  it->state = (storefl_outbox_state)sqlite3_column_int(st, 2);
  it->attempts = sqlite3_column_int(st, 3);
  it->created_at = sqlite3_column_int64(st, 4);
  it->next_attempt_at = sqlite3_column_int64(st, 5);
  it->sent_at = sqlite3_column_int64(st, 6);
  const unsigned char *msg = sqlite3_column_text(st, 9);
  snprintf(it->last_error, sizeof it->last_error, "%s", msg ? (const char *)msg : "");
  int e = copy_blob(st, 7, &it->body, &it->body_len);
  e = e ? e : copy_blob(st, 8, &it->receipt, &it->receipt_len);
  if (e != STOREFL_OK)
    storefl_outbox_item_free(it);
  return e;
}

int storefl_store_outbox_enqueue(storefl_store *s, uint64_t round, const void *body, size_t len, int64_t now,
                                 int64_t *id) {
  if (!body || len == 0)
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "outbox: empty body");
  if (round > INT64_MAX || len > INT32_MAX)
    return storefl_store_fail(s, STOREFL_ERR_TOO_LARGE, "outbox: round or body too large");
  sqlite3_stmt *st = stmt(s, ST_OUTBOX_ENQUEUE);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_int64(st, 1, (int64_t)round);
  rc = rc ? rc : sqlite3_bind_blob(st, 2, body, (int)len, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int64(st, 3, now);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "outbox enqueue");
  int e = step_done(s, st, "outbox enqueue");
  sqlite3_clear_bindings(st);
  if (e == STOREFL_ERR_CONFLICT)
    return storefl_store_fail(s, e, "outbox: an update for round %llu is already queued",
                              (unsigned long long)round);
  if (e == STOREFL_OK && id)
    *id = sqlite3_last_insert_rowid(s->db);
  return e;
}

int storefl_store_outbox_next_due(storefl_store *s, int64_t now, storefl_outbox_item *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = stmt(s, ST_OUTBOX_DUE);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_int64(st, 1, now);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "outbox next");
  rc = sqlite3_step(st);
  int e;
  if (rc == SQLITE_ROW)
    e = read_outbox(st, out);
  else if (rc == SQLITE_DONE)
    e = storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "outbox: nothing due");
  else
    e = storefl_store_sqlerr(s, rc, "outbox next");
  sqlite3_reset(st);
  return e;
}

/* Why an update of a pending-only item changed nothing: no such item, or not pending. */
static int outbox_not_pending(storefl_store *s, int64_t id) {
  sqlite3_stmt *st = stmt(s, ST_OUTBOX_STATE);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_int64(st, 1, id);
  rc = rc ? rc : sqlite3_step(st);
  int e;
  if (rc == SQLITE_ROW)
    e = storefl_store_fail(s, STOREFL_ERR_CONFLICT, "outbox item %lld is not pending (state %d)",
                           (long long)id, sqlite3_column_int(st, 0));
  else if (rc == SQLITE_DONE)
    e = storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "no outbox item %lld", (long long)id);
  else
    e = storefl_store_sqlerr(s, rc, "outbox");
  sqlite3_reset(st);
  return e;
}

int storefl_store_outbox_mark_sent(storefl_store *s, int64_t id, const void *receipt, size_t len,
                                   int64_t now) {
  if (len > INT32_MAX)
    return storefl_store_fail(s, STOREFL_ERR_TOO_LARGE, "outbox: receipt too large");
  sqlite3_stmt *st = stmt(s, ST_OUTBOX_SENT);
  if (!st)
    return STOREFL_ERR_IO;
  static const uint8_t EMPTY[1] = {0};
  int rc = sqlite3_bind_int64(st, 1, id);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, now);
  rc = rc ? rc : sqlite3_bind_blob(st, 3, receipt && len ? receipt : EMPTY, (int)len, SQLITE_STATIC);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "outbox mark sent");
  int e = step_done(s, st, "outbox mark sent");
  sqlite3_clear_bindings(st);
  if (e == STOREFL_OK && sqlite3_changes(s->db) == 0)
    e = outbox_not_pending(s, id);
  return e;
}

int storefl_store_outbox_mark_failed(storefl_store *s, int64_t id, int64_t retry_at, const char *error,
                                     int give_up) {
  sqlite3_stmt *st = stmt(s, ST_OUTBOX_FAILED);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_int64(st, 1, id);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, retry_at);
  rc = rc ? rc : bind_text_or_empty(st, 3, error);
  rc = rc ? rc : sqlite3_bind_int(st, 4, give_up ? STOREFL_OUTBOX_DEAD : STOREFL_OUTBOX_PENDING);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "outbox mark failed");
  int e = step_done(s, st, "outbox mark failed");
  if (e == STOREFL_OK && sqlite3_changes(s->db) == 0)
    e = outbox_not_pending(s, id);
  return e;
}

int storefl_store_outbox_list(storefl_store *s, int (*fn)(void *user, const storefl_outbox_item *it),
                              void *user) {
  sqlite3_stmt *st = stmt(s, ST_OUTBOX_LIST);
  if (!st)
    return STOREFL_ERR_IO;
  int rc, ret = STOREFL_OK;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    storefl_outbox_item it;
    if ((ret = read_outbox(st, &it)) != STOREFL_OK)
      break;
    ret = fn(user, &it);
    storefl_outbox_item_free(&it);
    if (ret != 0)
      break;
  }
  if (ret == STOREFL_OK && rc != SQLITE_DONE)
    ret = storefl_store_sqlerr(s, rc, "outbox list");
  sqlite3_reset(st);
  return ret;
}

/* ---- meta ---- */

int storefl_store_meta_set(storefl_store *s, const char *key, const char *value) {
  if (!key || !key[0])
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "meta: empty key");
  sqlite3_stmt *st = stmt(s, ST_META_SET);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  rc = rc ? rc : bind_text_or_empty(st, 2, value);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "meta set");
  return step_done(s, st, "meta set");
}

int storefl_store_meta_get(storefl_store *s, const char *key, char *buf, size_t len) {
  sqlite3_stmt *st = stmt(s, ST_META_GET);
  if (!st)
    return STOREFL_ERR_IO;
  int rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
  if (rc != SQLITE_OK)
    return storefl_store_sqlerr(s, rc, "meta get");
  rc = sqlite3_step(st);
  int e = STOREFL_OK;
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if ((size_t)snprintf(buf, len, "%s", v ? v : "") >= len)
      e = storefl_store_fail(s, STOREFL_ERR_TOO_LARGE, "meta %s: value longer than the buffer", key);
  } else if (rc == SQLITE_DONE) {
    e = storefl_store_fail(s, STOREFL_ERR_NOT_FOUND, "meta: no key '%.64s'", key);
  } else {
    e = storefl_store_sqlerr(s, rc, "meta get");
  }
  sqlite3_reset(st);
  return e;
}

/* ---- ingest lock and recovery ---- */

static int lock_file(storefl_store *s, int *fd_out) {
  size_t n = strlen(s->path) + sizeof "-ingest.lock";
  char *lp = malloc(n);
  if (!lp)
    return STOREFL_ERR_NOMEM;
  snprintf(lp, n, "%s-ingest.lock", s->path);
  int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = storefl_store_fail(s, STOREFL_ERR_IO, "%s: %s", lp, strerror(errno));
    free(lp);
    return e;
  }
  free(lp);
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_SETLK, &fl) != 0) {
    int busy = errno == EACCES || errno == EAGAIN;
    int e = busy
                ? storefl_store_fail(s, STOREFL_ERR_UNAVAILABLE, "another ingest into %s is running", s->path)
                : storefl_store_fail(s, STOREFL_ERR_IO, "lock %s: %s", s->path, strerror(errno));
    close(fd);
    return e;
  }
  *fd_out = fd;
  return STOREFL_OK;
}

int storefl_store_ingest_lock(storefl_store *s) {
  if (s->lock_fd >= 0)
    return STOREFL_OK;
  return lock_file(s, &s->lock_fd);
}

void storefl_store_ingest_unlock(storefl_store *s) {
  if (s->lock_fd >= 0) {
    close(s->lock_fd); /* releases the fcntl lock */
    s->lock_fd = -1;
  }
}

int storefl_store_delete_staging(storefl_store *s, int64_t run_id) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(s->db,
                              "DELETE FROM ingest_staging WHERE rowid IN "
                              "(SELECT rowid FROM ingest_staging WHERE run_id = ?1 LIMIT ?2)",
                              -1, &st, NULL);
  rc = rc ? rc : sqlite3_bind_int64(st, 1, run_id);
  rc = rc ? rc : sqlite3_bind_int(st, 2, STAGING_DELETE_CHUNK);
  while (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
      break;
    rc = sqlite3_changes(s->db) > 0 ? sqlite3_reset(st) : SQLITE_DONE;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? STOREFL_OK : storefl_store_sqlerr(s, rc, "delete staged rows");
}

int storefl_store_recover_ingests(storefl_store *s, int *aborted) {
  if (aborted)
    *aborted = 0;
  int64_t running = 0;
  int e0 = query_int(s, "SELECT count(*) FROM ingest_runs WHERE state = 'running'", &running);
  if (e0 != STOREFL_OK || running == 0)
    return e0; /* the common case touches no lock file */
  int held = s->lock_fd >= 0;
  if (!held) {
    int e = storefl_store_ingest_lock(s);
    if (e == STOREFL_ERR_UNAVAILABLE) {
      s->err[0] = '\0';
      return STOREFL_OK; /* a live ingest owns the running run(s) */
    }
    if (e != STOREFL_OK)
      return e;
  }
  /* Holding the lock, every 'running' run of another process is dead. Runs of this very process
   * are kept: fcntl locks do not exclude the process that holds them. */
  char sql[512];
  snprintf(sql, sizeof sql,
           "DELETE FROM ingest_staging WHERE rowid IN (SELECT rowid FROM ingest_staging WHERE run_id IN "
           "(SELECT id FROM ingest_runs WHERE state = 'running' AND pid <> %ld) LIMIT %d)",
           (long)getpid(), STAGING_DELETE_CHUNK);
  int e = storefl_store_exec(s, "BEGIN IMMEDIATE");
  for (int more = 1; e == STOREFL_OK && more;) {
    e = storefl_store_exec(s, sql);
    more = sqlite3_changes(s->db) > 0;
  }
  snprintf(
      sql, sizeof sql,
      "UPDATE ingest_runs SET state = 'aborted', finished_at = CAST(strftime('%%s','now') AS INTEGER), "
      "  message = 'interrupted; staged rows discarded at next open' WHERE state = 'running' AND pid <> %ld;",
      (long)getpid());
  if (e == STOREFL_OK)
    e = storefl_store_exec(s, sql);
  int changed = sqlite3_changes(s->db);
  if (e == STOREFL_OK)
    e = storefl_store_exec(s, "COMMIT");
  if (e == STOREFL_OK && aborted)
    *aborted = changed;
  if (e == STOREFL_OK && aborted != &s->recovered)
    s->recovered += changed;
  if (e != STOREFL_OK && !sqlite3_get_autocommit(s->db))
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  if (!held)
    storefl_store_ingest_unlock(s);
  return e;
}
