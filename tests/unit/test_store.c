/* The agent store on a real SQLite file: schema, migrations, C API, ledger, outbox, ingest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <math.h>
#include <sqlite3.h>

#include "ingest.h"
#include "storefl/error.h"
#include "storefl_agent.h"

typedef struct fixture {
  char dir[64];
  char db[128];
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/storefl-test-store-XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  snprintf(f->db, sizeof f->db, "%s/store.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

static storefl_store *open_ok(const char *path) {
  storefl_store *s = NULL;
  char err[256] = "";
  int rc = storefl_store_open(path, NULL, &s, err, sizeof err);
  if (rc != STOREFL_OK)
    fail_msg("open %s: %s", path, err);
  return s;
}

static int64_t count(storefl_store *s, const char *sql) {
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(storefl_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

static void test_open_schema_and_versions(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  assert_int_equal(storefl_store_schema_version(s), STOREFL_STORE_SCHEMA_VERSION);
  assert_int_equal(count(s, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
  assert_int_equal(count(s, "PRAGMA foreign_keys"), 1);
  storefl_store_close(s);

  /* Reopen with the integrity check: idempotent migration, still version 1. */
  storefl_store_options o = {.integrity_check = 1};
  char err[256];
  assert_int_equal(storefl_store_open(f->db, &o, &s, err, sizeof err), STOREFL_OK);
  storefl_store_close(s);

  /* A newer schema is refused with a clear message and left untouched. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(storefl_store_open(f->db, NULL, &s, err, sizeof err), STOREFL_ERR_FORMAT);
  assert_null(s);
  assert_non_null(strstr(err, "schema version 99"));
  assert_non_null(strstr(err, "newer"));
  assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 99);
  sqlite3_finalize(st);
  sqlite3_close(db);

  /* Someone else's SQLite database is not migrated. */
  char other[160];
  snprintf(other, sizeof other, "%s/other.db", f->dir);
  assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  assert_int_equal(storefl_store_open(other, NULL, &s, err, sizeof err), STOREFL_ERR_FORMAT);
  assert_non_null(strstr(err, "not a storefl store"));

  /* Not a database at all. */
  char junk[160];
  snprintf(junk, sizeof junk, "%s/junk.db", f->dir);
  FILE *fp = fopen(junk, "wb");
  assert_non_null(fp);
  for (int i = 0; i < 2048; i++)
    fputc('x', fp);
  assert_int_equal(fclose(fp), 0);
  assert_int_not_equal(storefl_store_open(junk, NULL, &s, err, sizeof err), STOREFL_OK);
  assert_null(s);

  /* Read-only open of a missing file fails rather than creating it. */
  char missing[160];
  snprintf(missing, sizeof missing, "%s/missing.db", f->dir);
  storefl_store_options ro = {.read_only = 1};
  assert_int_equal(storefl_store_open(missing, &ro, &s, err, sizeof err), STOREFL_ERR_IO);
  assert_int_not_equal(access(missing, F_OK), 0);
}

static void test_integrity_check_detects_corruption(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  assert_int_equal(storefl_store_begin(s), STOREFL_OK);
  for (int i = 0; i < 2000; i++) {
    char code[16], name[64];
    snprintf(code, sizeof code, "%05d", i);
    snprintf(name, sizeof name, "PRODUCT NUMBER %d WITH A LONGISH NAME", i);
    storefl_product p = {.code = code, .name = name, .price = 1.5, .first_seen = 1000 + i};
    assert_int_equal(storefl_store_upsert_product(s, &p), STOREFL_OK);
  }
  assert_int_equal(storefl_store_commit(s), STOREFL_OK);
  storefl_store_close(s);
  /* Overwrite the middle of the file (index and table pages) with garbage. */
  FILE *fp = fopen(f->db, "r+b");
  assert_non_null(fp);
  assert_int_equal(fseek(fp, 4096 * 3, SEEK_SET), 0);
  for (int i = 0; i < 4096 * 4; i++)
    fputc(i * 7 & 0xff, fp);
  assert_int_equal(fclose(fp), 0);
  storefl_store_options o = {.integrity_check = 1};
  char err[256] = "";
  storefl_store *s2 = NULL;
  int rc = storefl_store_open(f->db, &o, &s2, err, sizeof err);
  assert_int_equal(rc, STOREFL_ERR_IO);
  assert_null(s2);
}

static void test_products_events_batches(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  storefl_product p = {.code = "23542", .name = "70'S ALPHABET WALL ART", .price = 5.95, .first_seen = 2000};
  assert_int_equal(storefl_store_upsert_product(s, &p), STOREFL_OK);
  /* Later update: empty fields keep, first_seen is the minimum. */
  storefl_product upd = {
      .code = "23542", .name = "", .category = "Wall art", .price = 6.25, .first_seen = 3000};
  assert_int_equal(storefl_store_upsert_product(s, &upd), STOREFL_OK);
  storefl_product got;
  assert_int_equal(storefl_store_get_product(s, "23542", &got), STOREFL_OK);
  assert_string_equal(got.name, "70'S ALPHABET WALL ART");
  assert_string_equal(got.category, "Wall art");
  assert_true(got.price == 6.25);
  assert_int_equal(got.first_seen, 2000);
  assert_int_equal(storefl_store_get_product(s, "99999", &got), STOREFL_ERR_NOT_FOUND);
  storefl_product bad = {.code = ""};
  assert_int_equal(storefl_store_upsert_product(s, &bad), STOREFL_ERR_INVALID);

  storefl_event e = {.time = 1500,
                     .shopper = "loyalty-42",
                     .basket = "R1",
                     .product = "23542",
                     .quantity = 2,
                     .price = 5.95,
                     .kind = STOREFL_EVENT_PURCHASE};
  int ins = -1;
  assert_int_equal(storefl_store_record_event(s, &e, &ins), STOREFL_OK);
  assert_int_equal(ins, 1);
  /* The event predates the known launch: first_seen moves back. */
  assert_int_equal(storefl_store_get_product(s, "23542", &got), STOREFL_OK);
  assert_int_equal(got.first_seen, 1500);
  /* Unknown product: added to the catalogue with its code. Anonymous view without basket. */
  storefl_event v = {.time = 1600, .product = "NEW-1", .quantity = 1, .kind = STOREFL_EVENT_VIEW};
  assert_int_equal(storefl_store_record_event(s, &v, NULL), STOREFL_OK);
  assert_int_equal(storefl_store_get_product(s, "NEW-1", &got), STOREFL_OK);
  assert_string_equal(got.name, "");
  assert_true(isnan(got.price));
  /* Invalid events are refused and leave nothing behind. */
  storefl_event neg = e;
  neg.quantity = -1;
  assert_int_equal(storefl_store_record_event(s, &neg, NULL), STOREFL_ERR_INVALID);
  storefl_event nan_q = e;
  nan_q.quantity = NAN;
  assert_int_equal(storefl_store_record_event(s, &nan_q, NULL), STOREFL_ERR_INVALID);
  storefl_event bad_kind = e;
  bad_kind.kind = (storefl_event_kind)9;
  assert_int_equal(storefl_store_record_event(s, &bad_kind, NULL), STOREFL_ERR_INVALID);

  /* Imported events are idempotent on (basket, product, time, line); live ones are not keyed. */
  storefl_event imp = e;
  imp.source_line = 17;
  assert_int_equal(storefl_store_record_event(s, &imp, &ins), STOREFL_OK);
  assert_int_equal(ins, 1);
  assert_int_equal(storefl_store_record_event(s, &imp, &ins), STOREFL_OK);
  assert_int_equal(ins, 0);

  /* A rolled-back batch leaves nothing; a committed one is visible to another handle. */
  assert_int_equal(storefl_store_begin(s), STOREFL_OK);
  assert_int_equal(storefl_store_begin(s), STOREFL_ERR_INVALID);
  for (int i = 0; i < 100; i++) {
    storefl_event b = e;
    b.time = 5000 + i;
    assert_int_equal(storefl_store_record_event(s, &b, NULL), STOREFL_OK);
  }
  assert_int_equal(storefl_store_rollback(s), STOREFL_OK);
  storefl_store_counts c;
  assert_int_equal(storefl_store_counts_get(s, &c), STOREFL_OK);
  assert_int_equal(c.events, 3);
  assert_int_equal(c.purchases, 2);
  assert_int_equal(c.products, 2);
  assert_int_equal(c.shoppers, 1);
  assert_int_equal(storefl_store_begin(s), STOREFL_OK);
  for (int i = 0; i < 100; i++) {
    storefl_event b = e;
    b.time = 5000 + i;
    b.shopper = i % 2 ? "loyalty-7" : NULL;
    assert_int_equal(storefl_store_record_event(s, &b, NULL), STOREFL_OK);
  }
  storefl_store *other = open_ok(f->db);
  assert_int_equal(count(other, "SELECT count(*) FROM events"), 3); /* not yet committed */
  assert_int_equal(storefl_store_commit(s), STOREFL_OK);
  assert_int_equal(count(other, "SELECT count(*) FROM events"), 103);
  assert_int_equal(count(other, "SELECT count(*) FROM events WHERE shopper_id IS NULL"), 51);
  assert_int_equal(storefl_store_commit(s), STOREFL_ERR_INVALID);
  storefl_store_close(other);

  /* Closing with an open batch discards it. */
  assert_int_equal(storefl_store_begin(s), STOREFL_OK);
  assert_int_equal(storefl_store_record_event(s, &e, NULL), STOREFL_OK);
  storefl_store_close(s);
  s = open_ok(f->db);
  assert_int_equal(count(s, "SELECT count(*) FROM events"), 103);
  assert_int_equal(count(s, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
  storefl_store_close(s);
}

static void test_models_and_meta(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  uint8_t d1[32], d2[32], got[32];
  memset(d1, 1, 32);
  memset(d2, 2, 32);
  float w1[4] = {1, 2, 3, 4}, w2[2] = {5, 6};
  void *blob;
  size_t len;
  uint64_t ver;
  assert_int_equal(storefl_store_get_model(s, "global", UINT64_MAX, &ver, got, &blob, &len),
                   STOREFL_ERR_NOT_FOUND);
  assert_int_equal(storefl_store_put_model(s, "global", 3, d1, w1, sizeof w1), STOREFL_OK);
  assert_int_equal(storefl_store_put_model(s, "global", 7, d2, w2, sizeof w2), STOREFL_OK);
  assert_int_equal(storefl_store_put_model(s, "personal", 7, d1, w1, sizeof w1), STOREFL_OK);
  assert_int_equal(storefl_store_get_model(s, "global", UINT64_MAX, &ver, got, &blob, &len), STOREFL_OK);
  assert_int_equal(ver, 7);
  assert_int_equal(len, sizeof w2);
  assert_memory_equal(blob, w2, sizeof w2);
  assert_memory_equal(got, d2, 32);
  free(blob);
  assert_int_equal(storefl_store_get_model(s, "global", 3, &ver, got, &blob, &len), STOREFL_OK);
  assert_memory_equal(blob, w1, sizeof w1);
  free(blob);
  assert_int_equal(storefl_store_get_model(s, "global", 4, &ver, got, &blob, &len), STOREFL_ERR_NOT_FOUND);
  assert_int_equal(storefl_store_put_model(s, "", 1, d1, w1, sizeof w1), STOREFL_ERR_INVALID);

  char buf[8];
  assert_int_equal(storefl_store_meta_get(s, "store_id", buf, sizeof buf), STOREFL_ERR_NOT_FOUND);
  assert_int_equal(storefl_store_meta_set(s, "store_id", "shop-12"), STOREFL_OK);
  assert_int_equal(storefl_store_meta_get(s, "store_id", buf, sizeof buf), STOREFL_OK);
  assert_string_equal(buf, "shop-12");
  assert_int_equal(storefl_store_meta_set(s, "store_id", "a-much-longer-id"), STOREFL_OK);
  assert_int_equal(storefl_store_meta_get(s, "store_id", buf, sizeof buf), STOREFL_ERR_TOO_LARGE);
  storefl_store_close(s);
}

static int collect_ledger(void *user, const storefl_local_ledger_entry *e) {
  uint64_t *rounds = user;
  rounds[rounds[0] + 1] = e->round;
  rounds[0]++;
  return 0;
}

static void test_ledger(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  storefl_local_ledger_entry last;
  assert_int_equal(storefl_store_ledger_last(s, &last), STOREFL_ERR_NOT_FOUND);
  storefl_local_ledger_entry e = {.round = 5,
                                  .mode = 1,
                                  .q = 0.1,
                                  .sigma = 1.1,
                                  .clip = 1.0,
                                  .delta = 1e-5,
                                  .epsilon_spent = 0.4,
                                  .time = 100};
  assert_int_equal(storefl_store_ledger_append(s, &e), STOREFL_OK);
  assert_true(e.id > 0);
  storefl_local_ledger_entry e2 = e;
  e2.round = 3;
  e2.epsilon_spent = 0.2;
  assert_int_equal(storefl_store_ledger_append(s, &e2), STOREFL_OK);
  assert_int_equal(storefl_store_ledger_append(s, &e2), STOREFL_ERR_CONFLICT); /* one entry per round */
  storefl_local_ledger_entry bad = e;
  bad.round = 9;
  bad.sigma = NAN;
  assert_int_equal(storefl_store_ledger_append(s, &bad), STOREFL_ERR_INVALID);
  bad.sigma = 1;
  bad.mode = 3;
  assert_int_equal(storefl_store_ledger_append(s, &bad), STOREFL_ERR_INVALID);
  bad.mode = 2;
  bad.q = 1.5;
  assert_int_equal(storefl_store_ledger_append(s, &bad), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_store_ledger_last(s, &last), STOREFL_OK);
  assert_int_equal(last.round, 5);
  assert_true(last.epsilon_spent == 0.4);
  assert_true(last.delta == 1e-5);
  assert_int_equal(last.mode, 1);
  uint64_t rounds[8] = {0};
  assert_int_equal(storefl_store_ledger_list(s, collect_ledger, rounds), STOREFL_OK);
  assert_int_equal(rounds[0], 2);
  assert_int_equal(rounds[1], 3);
  assert_int_equal(rounds[2], 5);
  storefl_store_close(s);
}

static int count_outbox(void *user, const storefl_outbox_item *it) {
  int *n = user;
  n[it->state]++;
  return 0;
}

static void test_outbox(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  storefl_outbox_item it;
  assert_int_equal(storefl_store_outbox_next_due(s, 1000, &it), STOREFL_ERR_NOT_FOUND);
  int64_t id1, id2;
  const char b1[] = "update-round-1", b2[] = "update-round-2";
  assert_int_equal(storefl_store_outbox_enqueue(s, 1, b1, sizeof b1, 100, &id1), STOREFL_OK);
  assert_int_equal(storefl_store_outbox_enqueue(s, 2, b2, sizeof b2, 110, &id2), STOREFL_OK);
  assert_int_equal(storefl_store_outbox_enqueue(s, 1, b2, sizeof b2, 120, NULL), STOREFL_ERR_CONFLICT);
  assert_int_equal(storefl_store_outbox_enqueue(s, 3, b2, 0, 120, NULL), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_store_outbox_next_due(s, 99, &it), STOREFL_ERR_NOT_FOUND); /* not due yet */
  assert_int_equal(storefl_store_outbox_next_due(s, 200, &it), STOREFL_OK);
  assert_int_equal(it.id, id1);
  assert_int_equal(it.round, 1);
  assert_int_equal(it.body_len, sizeof b1);
  assert_memory_equal(it.body, b1, sizeof b1);
  storefl_outbox_item_free(&it);
  /* A failed attempt backs off: round 2 becomes the next due. */
  assert_int_equal(storefl_store_outbox_mark_failed(s, id1, 500, "4.09 wrong round", 0), STOREFL_OK);
  assert_int_equal(storefl_store_outbox_next_due(s, 200, &it), STOREFL_OK);
  assert_int_equal(it.id, id2);
  storefl_outbox_item_free(&it);
  assert_int_equal(storefl_store_outbox_mark_sent(s, id2, "rcpt", 4, 210), STOREFL_OK);
  assert_int_equal(storefl_store_outbox_mark_sent(s, id2, "rcpt", 4, 210), STOREFL_ERR_CONFLICT);
  assert_int_equal(storefl_store_outbox_mark_sent(s, 999, "rcpt", 4, 210), STOREFL_ERR_NOT_FOUND);
  assert_int_equal(storefl_store_outbox_next_due(s, 200, &it), STOREFL_ERR_NOT_FOUND);
  assert_int_equal(storefl_store_outbox_next_due(s, 600, &it), STOREFL_OK);
  assert_int_equal(it.id, id1);
  assert_int_equal(it.attempts, 1);
  assert_string_equal(it.last_error, "4.09 wrong round");
  storefl_outbox_item_free(&it);
  assert_int_equal(storefl_store_outbox_mark_failed(s, id1, 700, "round closed", 1), STOREFL_OK);
  assert_int_equal(storefl_store_outbox_next_due(s, 10000, &it), STOREFL_ERR_NOT_FOUND);
  int n[3] = {0};
  assert_int_equal(storefl_store_outbox_list(s, count_outbox, n), STOREFL_OK);
  assert_int_equal(n[STOREFL_OUTBOX_PENDING], 0);
  assert_int_equal(n[STOREFL_OUTBOX_SENT], 1);
  assert_int_equal(n[STOREFL_OUTBOX_DEAD], 1);
  storefl_store_close(s);
  /* Durable across reopen, receipt included. */
  s = open_ok(f->db);
  assert_int_equal(count(s, "SELECT count(*) FROM outbox WHERE state = 1 AND receipt = CAST('rcpt' AS BLOB)"),
                   1);
  storefl_store_close(s);
}

static void write_file(const char *path, const char *text) {
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
  assert_int_equal(fclose(fp), 0);
}

static const char CSV[] =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,,United Kingdom\n"
    "C536379,71053,WHITE METAL LANTERN,-2,2010-12-01 09:41:00,3.39,17850.0,United Kingdom\n"
    "536370,POST,POSTAGE,3,2010-12-01 08:45:00,18,12583.0,France\n"
    "536414,22139,,56,2010-12-01 11:52:00,0,,United Kingdom\n"
    "536415,85123a,WHITE HANGING HEART T-LIGHT HOLDER v2,1,2010-12-02 08:00:00,2.65,12583.0,France\n"
    "536416,22633,HAND WARMER UNION JACK,oops,2010-12-02 09:00:00,1.85,12583.0,France\n";

static void test_ingest_skip_stop_and_reimport(void **state) {
  fixture *f = *state;
  char csv[160];
  snprintf(csv, sizeof csv, "%s/in.csv", f->dir);
  write_file(csv, CSV);
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  storefl_store *s = open_ok(f->db);
  storefl_ingest_stats st;

  /* stop: the bad row on line 9 aborts everything. */
  storefl_ingest_options stop = {.on_error = STOREFL_ON_ERROR_STOP, .batch = 2};
  assert_int_equal(storefl_ingest_file(s, csv, &cols, &stop, &st), STOREFL_ERR_INVALID);
  assert_non_null(strstr(storefl_store_errmsg(s), "line 9: bad quantity 'oops'"));
  assert_int_equal(count(s, "SELECT count(*) FROM events"), 0);
  assert_int_equal(count(s, "SELECT count(*) FROM products"), 0);
  assert_int_equal(count(s, "SELECT count(*) FROM ingest_staging"), 0);
  assert_int_equal(count(s, "SELECT count(*) FROM ingest_runs WHERE state = 'failed'"), 1);

  /* skip: counted, the rest imported. */
  storefl_ingest_options skip = {.on_error = STOREFL_ON_ERROR_SKIP, .batch = 2};
  assert_int_equal(storefl_ingest_file(s, csv, &cols, &skip, &st), STOREFL_OK);
  assert_int_equal(st.rows, 8);
  assert_int_equal(st.bad, 1);
  assert_int_equal(st.filtered, 2); /* POST, zero price */
  assert_int_equal(st.staged, 5);
  assert_int_equal(st.inserted, 5);
  assert_int_equal(count(s, "SELECT count(*) FROM events WHERE kind = 2"), 4);
  assert_int_equal(count(s, "SELECT count(*) FROM events WHERE kind = 3 AND quantity = 2"), 1);
  assert_int_equal(count(s, "SELECT count(*) FROM products"), 3);
  assert_int_equal(count(s, "SELECT count(*) FROM shoppers"), 2);
  assert_int_equal(count(s, "SELECT count(*) FROM shoppers WHERE ext_id IN ('17850', '12583')"), 2);
  assert_int_equal(count(s, "SELECT count(*) FROM events WHERE shopper_id IS NULL"), 1);
  /* Upper-cased code, latest text and price, earliest first_seen (2010-12-01 08:26). */
  storefl_product p;
  assert_int_equal(storefl_store_get_product(s, "85123A", &p), STOREFL_OK);
  assert_string_equal(p.name, "WHITE HANGING HEART T-LIGHT HOLDER v2");
  assert_true(p.price == 2.65);
  assert_int_equal(p.first_seen, 1291191960);

  /* Re-import: nothing new. */
  assert_int_equal(storefl_ingest_file(s, csv, &cols, &skip, &st), STOREFL_OK);
  assert_int_equal(st.inserted, 0);
  assert_int_equal(st.duplicate, 5);
  assert_int_equal(count(s, "SELECT count(*) FROM events"), 5);

  /* A missing column names itself; nothing is started. */
  storefl_retail_columns other = cols;
  assert_int_equal(storefl_retail_columns_set(&other, "product", "SKU"), STOREFL_OK);
  assert_int_equal(storefl_ingest_file(s, csv, &other, &skip, &st), STOREFL_ERR_INVALID);
  assert_non_null(strstr(storefl_store_errmsg(s), "'SKU'"));
  storefl_store_close(s);
}

static void test_interrupted_run_is_discarded_at_open(void **state) {
  fixture *f = *state;
  storefl_store *s = open_ok(f->db);
  /* What a kill -9 in the middle of an ingest leaves: a 'running' run of a dead process with
   * staged rows (the integration test produces this state with a real kill). */
  assert_int_equal(
      sqlite3_exec(storefl_store_db(s),
                   "INSERT INTO ingest_runs(id, source, pid, started_at, state) "
                   "VALUES(7, 'x.csv', 999999999, 0, 'running');"
                   "INSERT INTO ingest_staging VALUES(7, 0, '', 'b', '12345', 'n', '', '', 1, 1, 2, 2);",
                   NULL, NULL, NULL),
      SQLITE_OK);
  storefl_store_close(s);
  s = open_ok(f->db);
  assert_int_equal(count(s, "SELECT count(*) FROM ingest_staging"), 0);
  assert_int_equal(count(s, "SELECT count(*) FROM ingest_runs WHERE id = 7 AND state = 'aborted'"), 1);
  assert_int_equal(count(s, "SELECT count(*) FROM events"), 0);
  storefl_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_schema_and_versions, setup, teardown),
      cmocka_unit_test_setup_teardown(test_integrity_check_detects_corruption, setup, teardown),
      cmocka_unit_test_setup_teardown(test_products_events_batches, setup, teardown),
      cmocka_unit_test_setup_teardown(test_models_and_meta, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ledger, setup, teardown),
      cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ingest_skip_stop_and_reimport, setup, teardown),
      cmocka_unit_test_setup_teardown(test_interrupted_run_is_discarded_at_open, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
