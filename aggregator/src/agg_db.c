/* SQLite persistence of the aggregator (see agg_db.h). */
#include "agg_db.h"

#include <string.h>

#include "storefl/error.h"
#include "storefl/log.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model blobs are stored as host float32: little-endian hosts only"
#endif

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS models(version INTEGER PRIMARY KEY, digest BLOB NOT NULL, arch TEXT NOT NULL,"
    " params BLOB NOT NULL, adam_m BLOB, adam_v BLOB, created_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS rounds(round INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
    " model_version INTEGER NOT NULL, opened_ms INTEGER NOT NULL, deadline_ms INTEGER NOT NULL,"
    " extensions INTEGER NOT NULL, closed_ms INTEGER NOT NULL, participants INTEGER NOT NULL,"
    " params TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS updates(round INTEGER NOT NULL, store_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " weight INTEGER NOT NULL, digest BLOB NOT NULL, accepted_ms INTEGER NOT NULL,"
    " participants_so_far INTEGER NOT NULL, body BLOB, PRIMARY KEY(round, store_id));";

/* PRAGMA user_version of the schema above; a database written by a newer aggregator is refused. */
#define AGG_DB_SCHEMA_VERSION 1

static int fail(sqlite3 *db, const char *what) {
  SFL_ERROR("aggregator", "database: %s: %s", what, db ? sqlite3_errmsg(db) : "no handle");
  return STOREFL_ERR_IO;
}

int agg_db_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    SFL_ERROR("aggregator", "database: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return STOREFL_ERR_IO;
  }
  return STOREFL_OK;
}

#define STR_(x) #x
#define STR(x) STR_(x)

/* Start-up checks, before anything is written: a damaged file or one from a newer aggregator must
 * stop the service with a clear message rather than be served (or "repaired") silently. */
static int startup_checks(sqlite3 *db, const char *path) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(5)", -1, &st, NULL) != SQLITE_OK)
    return fail(db, path);
  int rc = STOREFL_OK;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *m = (const char *)sqlite3_column_text(st, 0);
    if (!m || strcmp(m, "ok") != 0) {
      SFL_ERROR("aggregator",
                "database %s fails its integrity check (%s): refusing to start; restore it from a backup",
                path, m ? m : "?");
      rc = STOREFL_ERR_IO;
    }
  }
  if (step != SQLITE_DONE && rc == STOREFL_OK) {
    SFL_ERROR("aggregator", "database %s: integrity check cannot run (%s): refusing to start", path,
              sqlite3_errmsg(db));
    rc = STOREFL_ERR_IO;
  }
  sqlite3_finalize(st);
  if (rc)
    return rc;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return fail(db, path);
  int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  if (v < 0 || v > AGG_DB_SCHEMA_VERSION) {
    SFL_ERROR("aggregator",
              "database %s has schema version %d, this aggregator knows up to %d: refusing to start", path, v,
              AGG_DB_SCHEMA_VERSION);
    return STOREFL_ERR_IO;
  }
  return STOREFL_OK; /* 0: new file, or written before versioning (same schema): stamped after SCHEMA */
}

int agg_db_open(const char *path, sqlite3 **out) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
      SQLITE_OK) {
    int rc = fail(db, path);
    sqlite3_close(db);
    return rc;
  }
  sqlite3_busy_timeout(db, 5000);
  /* WAL + synchronous=FULL: a commit is durable (WAL fsync'd) before it returns, which is what lets us
   * acknowledge an update right after its INSERT commits. */
  if (agg_db_exec(db, "PRAGMA journal_mode=WAL;") || agg_db_exec(db, "PRAGMA synchronous=FULL;") ||
      agg_db_exec(db, "PRAGMA foreign_keys=ON;") || startup_checks(db, path) || agg_db_exec(db, SCHEMA) ||
      agg_db_exec(db, "PRAGMA user_version=" STR(AGG_DB_SCHEMA_VERSION) ";")) {
    sqlite3_close(db);
    return STOREFL_ERR_IO;
  }
  *out = db;
  return STOREFL_OK;
}

void agg_db_close(sqlite3 *db) {
  if (db)
    sqlite3_close(db);
}

int agg_db_begin(sqlite3 *db) {
  return agg_db_exec(db, "BEGIN IMMEDIATE;");
}
int agg_db_commit(sqlite3 *db) {
  return agg_db_exec(db, "COMMIT;");
}
void agg_db_rollback(sqlite3 *db) {
  if (!sqlite3_get_autocommit(db))
    (void)agg_db_exec(db, "ROLLBACK;");
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
    return fail(db, sql);
  return STOREFL_OK;
}

/* Runs a statement that returns no rows, then finalizes it. */
static int run(sqlite3 *db, sqlite3_stmt *st, int bind_rc) {
  int rc = bind_rc == SQLITE_OK ? sqlite3_step(st) : bind_rc;
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? STOREFL_OK : fail(db, "write");
}

int agg_db_meta_get(sqlite3 *db, const char *key, char *buf, size_t cap) {
  sqlite3_stmt *st;
  int rc = prep(db, "SELECT value FROM meta WHERE key=?", &st);
  if (rc)
    return rc;
  if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
    sqlite3_finalize(st);
    return fail(db, "bind");
  }
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    if (!v || n >= cap)
      rc = STOREFL_ERR_IO;
    else
      memcpy(buf, v, n + 1);
  } else
    rc = s == SQLITE_DONE ? STOREFL_ERR_NOT_FOUND : fail(db, "meta");
  sqlite3_finalize(st);
  return rc;
}

int agg_db_meta_set(sqlite3 *db, const char *key, const char *value) {
  sqlite3_stmt *st;
  int rc = prep(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st);
  if (rc)
    return rc;
  int b = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if (b == SQLITE_OK)
    b = sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
  return run(db, st, b);
}

static int read_floats(sqlite3_stmt *st, int col, float *dst, size_t numel) {
  if (!dst)
    return STOREFL_OK;
  const void *p = sqlite3_column_blob(st, col);
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  if (n != numel * sizeof(float) || (numel && !p))
    return STOREFL_ERR_IO;
  memcpy(dst, p, n);
  return STOREFL_OK;
}

int agg_db_latest_model(sqlite3 *db, size_t numel, uint64_t *version, uint8_t digest[STOREFL_DIGEST_LEN],
                        float *params, float *adam_m, float *adam_v) {
  sqlite3_stmt *st;
  int rc = prep(
      db, "SELECT version, digest, params, adam_m, adam_v FROM models ORDER BY version DESC LIMIT 1", &st);
  if (rc)
    return rc;
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    *version = (uint64_t)sqlite3_column_int64(st, 0);
    if (sqlite3_column_bytes(st, 1) != STOREFL_DIGEST_LEN)
      rc = STOREFL_ERR_IO;
    else
      memcpy(digest, sqlite3_column_blob(st, 1), STOREFL_DIGEST_LEN);
    if (!rc)
      rc = read_floats(st, 2, params, numel);
    /* Moments are absent until the first FedAdam step: they start at zero. */
    if (!rc && adam_m && sqlite3_column_type(st, 3) != SQLITE_NULL)
      rc = read_floats(st, 3, adam_m, numel);
    else if (adam_m)
      memset(adam_m, 0, numel * sizeof(float));
    if (!rc && adam_v && sqlite3_column_type(st, 4) != SQLITE_NULL)
      rc = read_floats(st, 4, adam_v, numel);
    else if (adam_v)
      memset(adam_v, 0, numel * sizeof(float));
    if (rc)
      SFL_ERROR("aggregator", "database: stored model does not match the configured model size");
  } else
    rc = s == SQLITE_DONE ? STOREFL_ERR_NOT_FOUND : fail(db, "models");
  sqlite3_finalize(st);
  return rc;
}

int agg_db_insert_model(sqlite3 *db, uint64_t version, const uint8_t digest[STOREFL_DIGEST_LEN],
                        const char *arch, const float *params, const float *adam_m, const float *adam_v,
                        size_t numel, int64_t created_ms) {
  sqlite3_stmt *st;
  int rc = prep(db,
                "INSERT INTO models(version, digest, arch, params, adam_m, adam_v, created_ms)"
                " VALUES(?, ?, ?, ?, ?, ?, ?)",
                &st);
  if (rc)
    return rc;
  sqlite3_uint64 nb = (sqlite3_uint64)numel * sizeof(float);
  int b = sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
  if (b == SQLITE_OK)
    b = sqlite3_bind_blob(st, 2, digest, STOREFL_DIGEST_LEN, SQLITE_STATIC);
  if (b == SQLITE_OK)
    b = sqlite3_bind_text(st, 3, arch, -1, SQLITE_STATIC);
  if (b == SQLITE_OK)
    b = sqlite3_bind_blob64(st, 4, params, nb, SQLITE_STATIC);
  if (b == SQLITE_OK)
    b = adam_m ? sqlite3_bind_blob64(st, 5, adam_m, nb, SQLITE_STATIC) : sqlite3_bind_null(st, 5);
  if (b == SQLITE_OK)
    b = adam_v ? sqlite3_bind_blob64(st, 6, adam_v, nb, SQLITE_STATIC) : sqlite3_bind_null(st, 6);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 7, created_ms);
  return run(db, st, b);
}

int agg_db_prune_models(sqlite3 *db, uint64_t keep_from) {
  sqlite3_stmt *st;
  int rc = prep(db, "DELETE FROM models WHERE version < ?", &st);
  if (rc)
    return rc;
  return run(db, st, sqlite3_bind_int64(st, 1, (sqlite3_int64)keep_from));
}

int agg_db_latest_round(sqlite3 *db, agg_round_row *r) {
  sqlite3_stmt *st;
  int rc =
      prep(db,
           "SELECT round, state, model_version, opened_ms, deadline_ms, extensions, closed_ms, participants"
           " FROM rounds ORDER BY round DESC LIMIT 1",
           &st);
  if (rc)
    return rc;
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    r->round = (uint64_t)sqlite3_column_int64(st, 0);
    r->state = sqlite3_column_int(st, 1);
    r->model_version = (uint64_t)sqlite3_column_int64(st, 2);
    r->opened_ms = sqlite3_column_int64(st, 3);
    r->deadline_ms = sqlite3_column_int64(st, 4);
    r->extensions = (uint32_t)sqlite3_column_int64(st, 5);
    r->closed_ms = sqlite3_column_int64(st, 6);
    r->participants = (uint32_t)sqlite3_column_int64(st, 7);
  } else
    rc = s == SQLITE_DONE ? STOREFL_ERR_NOT_FOUND : fail(db, "rounds");
  sqlite3_finalize(st);
  return rc;
}

int agg_db_put_round(sqlite3 *db, const agg_round_row *r, const char *params) {
  sqlite3_stmt *st;
  int rc =
      prep(db,
           "INSERT OR REPLACE INTO rounds(round, state, model_version, opened_ms, deadline_ms, extensions,"
           " closed_ms, participants, params) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
           &st);
  if (rc)
    return rc;
  int b = sqlite3_bind_int64(st, 1, (sqlite3_int64)r->round);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int(st, 2, r->state);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 3, (sqlite3_int64)r->model_version);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 4, r->opened_ms);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 5, r->deadline_ms);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 6, r->extensions);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 7, r->closed_ms);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 8, r->participants);
  if (b == SQLITE_OK)
    b = sqlite3_bind_text(st, 9, params, -1, SQLITE_STATIC);
  return run(db, st, b);
}

int agg_db_round_params(sqlite3 *db, uint64_t round, char *buf, size_t cap) {
  sqlite3_stmt *st;
  int rc = prep(db, "SELECT params FROM rounds WHERE round=?", &st);
  if (rc)
    return rc;
  if (sqlite3_bind_int64(st, 1, (sqlite3_int64)round) != SQLITE_OK) {
    sqlite3_finalize(st);
    return fail(db, "bind");
  }
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    if (!v || n >= cap)
      rc = STOREFL_ERR_IO;
    else
      memcpy(buf, v, n + 1);
  } else
    rc = s == SQLITE_DONE ? STOREFL_ERR_NOT_FOUND : fail(db, "rounds");
  sqlite3_finalize(st);
  return rc;
}

static int row_to_receipt(sqlite3_stmt *st, agg_receipt_row *r) {
  const char *id = (const char *)sqlite3_column_text(st, 1);
  size_t idn = (size_t)sqlite3_column_bytes(st, 1);
  if (!id || idn > STOREFL_MAX_ID_LEN || sqlite3_column_bytes(st, 3) != STOREFL_DIGEST_LEN)
    return STOREFL_ERR_IO;
  r->round = (uint64_t)sqlite3_column_int64(st, 0);
  memcpy(r->store_id, id, idn + 1);
  r->weight = (uint64_t)sqlite3_column_int64(st, 2);
  memcpy(r->digest, sqlite3_column_blob(st, 3), STOREFL_DIGEST_LEN);
  r->accepted_ms = sqlite3_column_int64(st, 4);
  r->participants_so_far = (uint32_t)sqlite3_column_int64(st, 5);
  return STOREFL_OK;
}

#define RECEIPT_COLS "round, store_id, weight, digest, accepted_ms, participants_so_far"

int agg_db_find_receipt(sqlite3 *db, uint64_t round, const char *store_id, agg_receipt_row *out) {
  sqlite3_stmt *st;
  int rc = prep(db, "SELECT " RECEIPT_COLS " FROM updates WHERE round=? AND store_id=?", &st);
  if (rc)
    return rc;
  if (sqlite3_bind_int64(st, 1, (sqlite3_int64)round) != SQLITE_OK ||
      sqlite3_bind_text(st, 2, store_id, -1, SQLITE_STATIC) != SQLITE_OK) {
    sqlite3_finalize(st);
    return fail(db, "bind");
  }
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW)
    rc = row_to_receipt(st, out);
  else
    rc = s == SQLITE_DONE ? STOREFL_ERR_NOT_FOUND : fail(db, "updates");
  sqlite3_finalize(st);
  return rc;
}

int agg_db_insert_update(sqlite3 *db, const agg_receipt_row *r, const uint8_t *body, size_t len) {
  sqlite3_stmt *st;
  int rc =
      prep(db,
           "INSERT INTO updates(round, store_id, seq, weight, digest, accepted_ms, participants_so_far, body)"
           " VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
           &st);
  if (rc)
    return rc;
  int b = sqlite3_bind_int64(st, 1, (sqlite3_int64)r->round);
  if (b == SQLITE_OK)
    b = sqlite3_bind_text(st, 2, r->store_id, -1, SQLITE_STATIC);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 3, r->participants_so_far);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 4, (sqlite3_int64)r->weight);
  if (b == SQLITE_OK)
    b = sqlite3_bind_blob(st, 5, r->digest, STOREFL_DIGEST_LEN, SQLITE_STATIC);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 6, r->accepted_ms);
  if (b == SQLITE_OK)
    b = sqlite3_bind_int64(st, 7, r->participants_so_far);
  if (b == SQLITE_OK)
    b = sqlite3_bind_blob64(st, 8, body, (sqlite3_uint64)len, SQLITE_STATIC);
  return run(db, st, b);
}

int agg_db_for_each_body(sqlite3 *db, uint64_t round,
                         int (*fn)(void *ctx, const agg_receipt_row *r, const uint8_t *body, size_t len),
                         void *ctx) {
  sqlite3_stmt *st;
  int rc = prep(
      db, "SELECT " RECEIPT_COLS ", body FROM updates WHERE round=? AND body IS NOT NULL ORDER BY seq", &st);
  if (rc)
    return rc;
  if (sqlite3_bind_int64(st, 1, (sqlite3_int64)round) != SQLITE_OK) {
    sqlite3_finalize(st);
    return fail(db, "bind");
  }
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    agg_receipt_row r;
    rc = row_to_receipt(st, &r);
    if (!rc)
      rc = fn(ctx, &r, sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6));
    if (rc)
      break;
  }
  if (!rc && s != SQLITE_DONE)
    rc = fail(db, "updates");
  sqlite3_finalize(st);
  return rc;
}

int agg_db_drop_bodies(sqlite3 *db, uint64_t round) {
  sqlite3_stmt *st;
  int rc = prep(db, "UPDATE updates SET body=NULL WHERE round=?", &st);
  if (rc)
    return rc;
  return run(db, st, sqlite3_bind_int64(st, 1, (sqlite3_int64)round));
}

int agg_db_participants(sqlite3 *db, uint64_t round, char (*ids)[STOREFL_MAX_ID_LEN + 1], uint32_t cap,
                        uint32_t *n) {
  sqlite3_stmt *st;
  /* BINARY collation compares with memcmp: bytewise order, as the ledger requires. */
  int rc = prep(db, "SELECT store_id FROM updates WHERE round=? ORDER BY store_id COLLATE BINARY", &st);
  if (rc)
    return rc;
  if (sqlite3_bind_int64(st, 1, (sqlite3_int64)round) != SQLITE_OK) {
    sqlite3_finalize(st);
    return fail(db, "bind");
  }
  uint32_t k = 0;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    if (k >= cap || !id || len > STOREFL_MAX_ID_LEN) {
      rc = STOREFL_ERR_IO;
      break;
    }
    memcpy(ids[k++], id, len + 1);
  }
  if (!rc && s != SQLITE_DONE)
    rc = fail(db, "participants");
  sqlite3_finalize(st);
  *n = k;
  return rc;
}
