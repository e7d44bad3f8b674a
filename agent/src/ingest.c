/* Streaming CSV import through a staging table (see ingest.h for the guarantees). */
#include "ingest.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store_internal.h"
#include "storefl/error.h"

/* Returns 1 if the row becomes an event, adjusting its quantity (returns carry positive units). */
static int keep_row(storefl_retail_row *row, int any_code) {
  unsigned bad = row->flags;
  if (any_code)
    bad &= ~(unsigned)STOREFL_ROW_NOT_PRODUCT;
  switch (row->kind) {
  case STOREFL_EVENT_PURCHASE:
    return bad == 0;
  case STOREFL_EVENT_RETURN:
    /* A cancellation line is a return of real goods when it is otherwise clean. */
    bad &= ~(unsigned)(STOREFL_ROW_CANCELLED | STOREFL_ROW_QTY_NONPOS);
    row->quantity = fabs(row->quantity);
    return bad == 0 && row->quantity > 0;
  case STOREFL_EVENT_VIEW:
  case STOREFL_EVENT_CART:
    bad &= ~(unsigned)(STOREFL_ROW_PRICE_NONPOS | STOREFL_ROW_CANCELLED);
    if (!(row->quantity > 0))
      row->quantity = 1; /* a view has no meaningful quantity */
    bad &= ~(unsigned)STOREFL_ROW_QTY_NONPOS;
    return bad == 0;
  }
  return 0;
}

/* Runs one statement with ?1 bound to the run id. */
static int exec_run(storefl_store *s, const char *sql, int64_t run_id) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(storefl_store_db(s), sql, -1, &st, NULL);
  rc = rc ? rc : sqlite3_bind_int64(st, 1, run_id);
  rc = rc ? rc : sqlite3_step(st);
  int e = rc == SQLITE_DONE ? STOREFL_OK : storefl_store_sqlerr(s, rc, "ingest merge");
  sqlite3_finalize(st);
  return e;
}

static int keep_error(storefl_store *s, int e, void (*fn)(storefl_store *, int64_t), int64_t arg) {
  char keep[512];
  snprintf(keep, sizeof keep, "%s", storefl_store_errmsg(s));
  fn(s, arg);
  storefl_store_fail(s, e, "%s", keep);
  return e;
}

/* Discards a failed run's staged rows; best effort (recovery at next open covers a failure here). */
static void fail_run(storefl_store *s, int64_t run_id) {
  sqlite3 *db = storefl_store_db(s);
  if (!sqlite3_get_autocommit(db))
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  char sql[512];
  sqlite3_stmt *st = NULL;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return;
  int rc = storefl_store_delete_staging(s, run_id) == STOREFL_OK ? SQLITE_OK : SQLITE_ERROR;
  snprintf(sql, sizeof sql,
           "UPDATE ingest_runs SET state = 'failed', finished_at = CAST(strftime('%%s','now') AS INTEGER), "
           "message = substr(?1, 1, 500) WHERE id = %lld",
           (long long)run_id);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text(st, 1, storefl_store_errmsg(s), -1, SQLITE_TRANSIENT);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  sqlite3_finalize(st);
  sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
}

static const char STAGE_SQL[] =
    "INSERT INTO ingest_staging(run_id, time, shopper, basket, code, name, category, "
    "brand, quantity, price, kind, source_line) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

static int stage_row(storefl_store *s, sqlite3_stmt *st, int64_t run_id, const storefl_retail_row *r) {
  sqlite3_reset(st);
  int rc = sqlite3_bind_int64(st, 1, run_id);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, r->time);
  rc = rc ? rc : sqlite3_bind_text(st, 3, r->shopper, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 4, r->basket, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 5, r->code, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 6, r->text, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 7, r->category, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_text(st, 8, r->brand, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_double(st, 9, r->quantity);
  rc = rc ? rc : sqlite3_bind_double(st, 10, r->price);
  rc = rc ? rc : sqlite3_bind_int(st, 11, (int)r->kind);
  rc = rc ? rc : sqlite3_bind_int64(st, 12, (int64_t)r->line);
  if (rc == SQLITE_OK)
    rc = sqlite3_step(st);
  if (rc != SQLITE_DONE)
    return storefl_store_sqlerr(s, rc, "stage row");
  return STOREFL_OK;
}

/* The one transaction that makes a run visible. Catalogue: latest non-empty text and price in file
 * order win, first_seen is the earliest time. */
static const char *const MERGE_SQL[] = {
    "INSERT INTO products(code, name, category, brand, price, first_seen) "
    "SELECT code, name, category, brand, CASE WHEN price > 0 THEN price END, time FROM ingest_staging "
    "WHERE run_id = ?1 ORDER BY rowid "
    "ON CONFLICT(code) DO UPDATE SET "
    "name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE name END, "
    "category = CASE WHEN excluded.category <> '' THEN excluded.category ELSE category END, "
    "brand = CASE WHEN excluded.brand <> '' THEN excluded.brand ELSE brand END, "
    "price = coalesce(excluded.price, price), "
    "first_seen = min(coalesce(first_seen, excluded.first_seen), excluded.first_seen)",
    "INSERT INTO shoppers(ext_id, first_seen) SELECT shopper, min(time) FROM ingest_staging "
    "WHERE run_id = ?1 AND shopper <> '' GROUP BY shopper "
    "ON CONFLICT(ext_id) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen)",
    "INSERT OR IGNORE INTO events(time, shopper_id, basket, product_id, quantity, price, kind, source_line, "
    "run_id) "
    "SELECT g.time, h.id, g.basket, p.id, g.quantity, CASE WHEN g.price > 0 THEN g.price END, g.kind, "
    "g.source_line, g.run_id FROM ingest_staging g JOIN products p ON p.code = g.code "
    "LEFT JOIN shoppers h ON g.shopper <> '' AND h.ext_id = g.shopper WHERE g.run_id = ?1 ORDER BY g.rowid",
};

static int merge_run(storefl_store *s, storefl_ingest_stats *stats) {
  int e = storefl_store_exec(s, "BEGIN IMMEDIATE");
  for (size_t i = 0; e == STOREFL_OK && i < sizeof MERGE_SQL / sizeof MERGE_SQL[0]; i++) {
    e = exec_run(s, MERGE_SQL[i], stats->run_id);
    if (e == STOREFL_OK && i == 2) {
      stats->inserted = (uint64_t)sqlite3_changes64(storefl_store_db(s));
      stats->duplicate = stats->staged - stats->inserted;
    }
  }
  if (e == STOREFL_OK)
    e = storefl_store_delete_staging(s, stats->run_id);
  if (e == STOREFL_OK) {
    char sql[512];
    snprintf(
        sql, sizeof sql,
        "UPDATE ingest_runs SET state = 'complete', finished_at = CAST(strftime('%%s','now') AS INTEGER), "
        "rows_read = %llu, rows_stored = %llu, rows_duplicate = %llu, rows_filtered = %llu, rows_bad = %llu "
        "WHERE id = %lld",
        (unsigned long long)stats->rows, (unsigned long long)stats->inserted,
        (unsigned long long)stats->duplicate, (unsigned long long)stats->filtered,
        (unsigned long long)stats->bad, (long long)stats->run_id);
    e = storefl_store_exec(s, sql);
  }
  if (e == STOREFL_OK)
    e = storefl_store_exec(s, "COMMIT");
  return e;
}

static int start_run(storefl_store *s, const char *path, int64_t *run_id) {
  sqlite3 *db = storefl_store_db(s);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db,
                              "INSERT INTO ingest_runs(source, pid, started_at, state) "
                              "VALUES(?1, ?2, CAST(strftime('%s','now') AS INTEGER), 'running')",
                              -1, &st, NULL);
  rc = rc ? rc : sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
  rc = rc ? rc : sqlite3_bind_int64(st, 2, (int64_t)getpid());
  rc = rc ? rc : sqlite3_step(st);
  int e = rc == SQLITE_DONE ? STOREFL_OK : storefl_store_sqlerr(s, rc, "start ingest run");
  sqlite3_finalize(st);
  if (e == STOREFL_OK)
    *run_id = sqlite3_last_insert_rowid(db);
  return e;
}

int storefl_ingest_file(storefl_store *s, const char *path, const storefl_retail_columns *cols,
                        const storefl_ingest_options *opts, storefl_ingest_stats *stats) {
  static const storefl_ingest_options DEFAULTS = {0};
  if (!opts)
    opts = &DEFAULTS;
  memset(stats, 0, sizeof *stats);
  if (storefl_store_in_batch(s))
    return storefl_store_fail(s, STOREFL_ERR_INVALID, "ingest: the store has an open batch");
  uint32_t batch = opts->batch ? opts->batch : 10000;

  int e = storefl_store_ingest_lock(s);
  if (e == STOREFL_OK)
    e = storefl_store_recover_ingests(s, NULL);
  stats->recovered_runs = storefl_store_recovered_runs(s);
  if (e != STOREFL_OK)
    return e;
  storefl_retail_reader *rd = NULL;
  char err[256];
  e = storefl_retail_open(path, cols, &rd, err, sizeof err);
  if (e != STOREFL_OK) {
    storefl_store_ingest_unlock(s);
    return storefl_store_fail(s, e, "%s: %s", path, err);
  }
  e = start_run(s, path, &stats->run_id);
  sqlite3_stmt *st = NULL;
  if (e == STOREFL_OK) {
    int rc = sqlite3_prepare_v3(storefl_store_db(s), STAGE_SQL, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
      e = storefl_store_sqlerr(s, rc, "prepare staging");
  }
  if (e != STOREFL_OK) {
    storefl_retail_close(rd);
    storefl_store_ingest_unlock(s);
    return e;
  }

  int in_txn = 0;
  uint32_t in_batch = 0;
  storefl_retail_row row;
  int rc;
  for (;;) {
    rc = storefl_retail_next(rd, &row);
    if (rc == 0)
      break;
    if (rc < 0) {
      if (!storefl_retail_failed(rd))
        stats->rows++; /* a bad data row was read */
      if (storefl_retail_failed(rd) || opts->on_error == STOREFL_ON_ERROR_STOP) {
        e = storefl_store_fail(s, rc, "%s: %s%s", path, storefl_retail_error(rd),
                               storefl_retail_failed(rd) ? "" : " (--on-error stop: nothing was imported)");
        break;
      }
      stats->bad++;
      if (opts->bad_row)
        opts->bad_row(opts->user, storefl_retail_error(rd));
      continue;
    }
    stats->rows++;
    if (!keep_row(&row, opts->any_code)) {
      stats->filtered++;
      continue;
    }
    if (!in_txn) {
      if ((e = storefl_store_exec(s, "BEGIN IMMEDIATE")) != STOREFL_OK)
        break;
      in_txn = 1;
    }
    if ((e = stage_row(s, st, stats->run_id, &row)) != STOREFL_OK)
      break;
    stats->staged++;
    if (++in_batch >= batch) {
      if ((e = storefl_store_exec(s, "COMMIT")) != STOREFL_OK)
        break;
      in_txn = 0;
      in_batch = 0;
      stats->bytes = storefl_retail_offset(rd);
      if (opts->progress)
        opts->progress(opts->user, stats);
    }
  }
  sqlite3_finalize(st);
  if (e == STOREFL_OK && in_txn) {
    e = storefl_store_exec(s, "COMMIT");
    in_txn = 0;
  }
  stats->bytes = storefl_retail_offset(rd);
  storefl_retail_close(rd);
  if (e == STOREFL_OK && opts->progress)
    opts->progress(opts->user, stats);
  if (e == STOREFL_OK)
    e = merge_run(s, stats);
  if (e != STOREFL_OK)
    keep_error(s, e, fail_run, stats->run_id);
  storefl_store_ingest_unlock(s);
  return e;
}
