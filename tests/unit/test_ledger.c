/* Audit ledger: key handling, chained signed entries in a real SQLite file, per-store accounting,
 * budget checks, and tampering (byte flips, deleted/inserted/swapped rows, re-signing with another
 * key, truncation) detected and named. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <mbedtls/pk.h>
#include <sqlite3.h>

#include "storefl/accountant.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/ledger.h"
#include "storefl/rng.h"

static char dir[256];

static void path_in(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/storefl-ledger-XXXXXX");
  return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static storefl_str S(const char *s) {
  storefl_str x = {s, strlen(s)};
  return x;
}

/* Builds a ledger of 5 rounds in db_name with the key key_name. Stores a, b, c, d. */
static void make_ledger(const char *db_name, const char *key_name, sqlite3 **db_out,
                        storefl_signer **signer_out) {
  char dbp[512], keyp[512];
  path_in(dbp, sizeof dbp, db_name);
  path_in(keyp, sizeof keyp, key_name);
  unlink(dbp);
  sqlite3 *db;
  storefl_signer *signer;
  assert_int_equal(storefl_ledger_open_db(dbp, &db), STOREFL_OK);
  assert_int_equal(storefl_signer_open(keyp, &signer, NULL), STOREFL_OK);
  storefl_str r0[] = {S("store-b"), S("store-a")}, r1[] = {S("store-c"), S("store-a")}, r2[] = {S("store-a")},
              r3[] = {S("store-d"), S("store-b")}, r4[] = {S("store-a"), S("store-c")};
  const storefl_str *parts[] = {r0, r1, r2, r3, r4};
  const uint32_t np[] = {2, 2, 1, 2, 2};
  for (uint64_t i = 0; i < 5; i++) {
    storefl_ledger_round r;
    memset(&r, 0, sizeof r);
    r.round = 10 + i;
    r.mode = i == 2 ? STOREFL_PRIVACY_LOCAL : STOREFL_PRIVACY_CENTRAL;
    r.participation_q = 0.1;
    r.closed_on_deadline = i != 1; /* round 11 closes on its target count: q = 1 */
    r.noise_multiplier = 1.5;
    r.clip_norm = 1.0;
    r.delta = 1e-5;
    r.closed_unix_ms = 1700000000000 + (int64_t)i * 60000;
    memset(r.model_digest, (int)i + 1, sizeof r.model_digest);
    r.n_participants = np[i];
    r.participants = parts[i];
    uint64_t idx;
    assert_int_equal(storefl_ledger_append(db, signer, &r, &idx), STOREFL_OK);
    assert_int_equal(idx, i);
  }
  *db_out = db;
  *signer_out = signer;
}

static void expect_bad(sqlite3 *db, storefl_signer *pub, int64_t row, const char *word) {
  storefl_ledger_report rep;
  assert_int_equal(storefl_ledger_verify(db, pub, &rep), STOREFL_ERR_INVALID);
  printf("#   detected at entry %lld: %s\n", (long long)rep.bad_row, rep.problem);
  assert_int_equal(rep.bad_row, row);
  if (strstr(rep.problem, word) == NULL)
    fail_msg("problem '%s' does not mention '%s'", rep.problem, word);
}

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
    fail_msg("%s: %s", sql, err);
}

static void test_key_file_mode(void **state) {
  (void)state;
  char keyp[512];
  path_in(keyp, sizeof keyp, "mode.key");
  storefl_signer *s;
  int created;
  assert_int_equal(storefl_signer_open(keyp, &s, &created), STOREFL_OK);
  assert_int_equal(created, 1);
  struct stat st;
  assert_int_equal(stat(keyp, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char pem1[512], pem2[512];
  assert_int_equal(storefl_signer_public_pem(s, pem1, sizeof pem1), STOREFL_OK);
  assert_non_null(strstr(pem1, "BEGIN PUBLIC KEY"));
  storefl_signer_free(s);
  assert_int_equal(storefl_signer_open(keyp, &s, &created), STOREFL_OK); /* the same key again */
  assert_int_equal(created, 0);
  assert_int_equal(storefl_signer_public_pem(s, pem2, sizeof pem2), STOREFL_OK);
  assert_string_equal(pem1, pem2);
  storefl_signer_free(s);
  assert_int_equal(chmod(keyp, 0640), 0);
  assert_int_equal(storefl_signer_open(keyp, &s, NULL), STOREFL_ERR_FORBIDDEN);
  assert_null(s);
}

static void test_chain_and_accounting(void **state) {
  (void)state;
  sqlite3 *db;
  storefl_signer *signer;
  make_ledger("ok.db", "ok.key", &db, &signer);
  storefl_ledger_report rep;
  assert_int_equal(storefl_ledger_verify(db, signer, &rep), STOREFL_OK);
  assert_int_equal(rep.n_entries, 5);
  assert_int_equal(rep.bad_row, -1);

  /* store-d: round 12 (local: q = 1 only for participants -> not d), round 13 (central, deadline:
   * amplified q = 0.1, charged to every known store), ... Recompute by hand with the accountant:
   * q=0.1 rounds: 10, 13, 14 (all known at the time); q=1 rounds: 11 (c, a), 12 (a, local). d is
   * first known in round 13, so d spent rounds 13 and 14 at q = 0.1. */
  double e_d, want;
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-d", 1e-5, &e_d), STOREFL_OK);
  assert_int_equal(storefl_dp_epsilon(0.1, 1.5, 2, 1e-5, NULL, &want, NULL), STOREFL_OK);
  assert_true(fabs(e_d - want) <= 1e-12 * want);
  double e_x;
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-unknown", 1e-5, &e_x), STOREFL_OK);
  assert_true(e_x == 0);

  /* Budget: a store far below the cap may join; past it, STOREFL_ERR_BUDGET (-> 4.03). */
  double now, after;
  assert_int_equal(storefl_ledger_budget_check(db, "store-a", STOREFL_PRIVACY_CENTRAL, 0.1, 1, 1.5, 1e-5,
                                               100.0, &now, &after),
                   STOREFL_OK);
  assert_true(after > now && now > 0);
  assert_int_equal(storefl_ledger_budget_check(db, "store-a", STOREFL_PRIVACY_LOCAL, 0.1, 1, 1.5, 1e-5,
                                               now + 1e-3, &now, &after),
                   STOREFL_ERR_BUDGET);
  assert_int_equal(storefl_err_to_coap(STOREFL_ERR_BUDGET), 403);

  /* A round is recorded once. */
  storefl_str p[] = {S("store-a")};
  storefl_ledger_round r = {10, STOREFL_PRIVACY_CENTRAL, 0.1, 1, 1.5, 1.0, 1e-5, 0, {0}, 1, p, 0, NULL};
  assert_int_equal(storefl_ledger_append(db, signer, &r, NULL), STOREFL_ERR_CONFLICT);
  r.round = 99;
  r.noise_multiplier = 0; /* no noise, no finite epsilon: refused */
  assert_int_equal(storefl_ledger_append(db, signer, &r, NULL), STOREFL_ERR_INVALID);
  storefl_signer_free(signer);
  sqlite3_close(db);
}

/* Regression: with sampling (q < 1) an enrolled store is charged every round, also before it is
 * first sampled; the ledger used to charge only stores it had already seen upload. */
static void test_population_charged(void **state) {
  (void)state;
  char dbp[512], keyp[512];
  path_in(dbp, sizeof dbp, "pop.db");
  path_in(keyp, sizeof keyp, "pop.key");
  sqlite3 *db;
  storefl_signer *signer;
  assert_int_equal(storefl_ledger_open_db(dbp, &db), STOREFL_OK);
  assert_int_equal(storefl_signer_open(keyp, &signer, NULL), STOREFL_OK);
  storefl_str pop[] = {S("store-e"), S("store-a"), S("store-b")};
  storefl_str r0[] = {S("store-a")}, r1[] = {S("store-b")}, r2[] = {S("store-a")};
  const storefl_str *parts[] = {r0, r1, r2};
  for (uint64_t i = 0; i < 3; i++) {
    storefl_ledger_round r;
    memset(&r, 0, sizeof r);
    r.round = i + 1;
    r.mode = STOREFL_PRIVACY_CENTRAL;
    r.participation_q = 0.2;
    r.closed_on_deadline = i != 2; /* the last round closes on a target count: q = 1, no population */
    r.noise_multiplier = 1.3;
    r.clip_norm = 1.0;
    r.delta = 1e-5;
    r.n_participants = 1;
    r.participants = parts[i];
    r.n_population = 3;
    r.population = pop;
    assert_int_equal(storefl_ledger_append(db, signer, &r, NULL), STOREFL_OK);
  }
  storefl_ledger_report rep;
  assert_int_equal(storefl_ledger_verify(db, signer, &rep), STOREFL_OK);
  assert_int_equal(rep.n_entries, 3);
  /* store-e never sent anything: charged for the two sampled rounds, not for the q = 1 round. */
  double e_e, e_b, want2, e_a;
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-e", 1e-5, &e_e), STOREFL_OK);
  assert_int_equal(storefl_dp_epsilon(0.2, 1.3, 2, 1e-5, NULL, &want2, NULL), STOREFL_OK);
  assert_true(want2 > 0 && fabs(e_e - want2) <= 1e-12 * want2);
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-b", 1e-5, &e_b), STOREFL_OK);
  assert_true(fabs(e_b - want2) <= 1e-12 * want2);
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-a", 1e-5, &e_a), STOREFL_OK);
  assert_true(e_a > e_e); /* a also paid the unamplified q = 1 round it took part in */
  /* An invalid enrolled id is refused before anything is written. */
  storefl_str badpop[] = {S("bad id")};
  storefl_ledger_round r;
  memset(&r, 0, sizeof r);
  r.round = 9;
  r.mode = STOREFL_PRIVACY_CENTRAL;
  r.participation_q = 0.2;
  r.closed_on_deadline = 1;
  r.noise_multiplier = 1.3;
  r.delta = 1e-5;
  r.n_population = 1;
  r.population = badpop;
  assert_int_equal(storefl_ledger_append(db, signer, &r, NULL), STOREFL_ERR_INVALID);
  storefl_signer_free(signer);
  sqlite3_close(db);
}

static void test_tamper_byte_flip(void **state) {
  (void)state;
  sqlite3 *db;
  storefl_signer *signer;
  make_ledger("flip.db", "flip.key", &db, &signer);
  /* Flip one byte in the middle of entry 2's stored CBOR. */
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT entry FROM ledger WHERE idx = 2", -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int len = sqlite3_column_bytes(st, 0);
  uint8_t *b = malloc((size_t)len);
  assert_non_null(b);
  memcpy(b, sqlite3_column_blob(st, 0), (size_t)len);
  sqlite3_finalize(st);
  /* Every single-byte flip of the entry is caught and pinned on entry 2. */
  for (int pos = 0; pos < len; pos += 7) {
    b[pos] ^= 0x01;
    assert_int_equal(sqlite3_prepare_v2(db, "UPDATE ledger SET entry = ? WHERE idx = 2", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_blob(st, 1, b, len, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    storefl_ledger_report rep;
    assert_int_equal(storefl_ledger_verify(db, signer, &rep), STOREFL_ERR_INVALID);
    if (rep.bad_row != 2)
      fail_msg("flip at byte %d: reported entry %lld (%s)", pos, (long long)rep.bad_row, rep.problem);
    b[pos] ^= 0x01;
  }
  free(b);
  storefl_signer_free(signer);
  sqlite3_close(db);
}

static void test_tamper_rows(void **state) {
  (void)state;
  sqlite3 *db;
  storefl_signer *signer;
  /* Deleted row. */
  make_ledger("del.db", "rows.key", &db, &signer);
  exec(db, "DELETE FROM ledger WHERE idx = 2");
  expect_bad(db, signer, 3, "removed, inserted or reordered");
  sqlite3_close(db);
  storefl_signer_free(signer);
  /* Swapped rows (contents of 1 and 3 exchanged). */
  make_ledger("swap.db", "rows.key", &db, &signer);
  exec(db, "UPDATE ledger SET idx = -1 WHERE idx = 1; UPDATE ledger SET idx = 1 WHERE idx = 3;"
           "UPDATE ledger SET idx = 3 WHERE idx = -1;");
  expect_bad(db, signer, 1, "reordered");
  sqlite3_close(db);
  storefl_signer_free(signer);
  /* Inserted row (a copy of a genuine, validly signed entry). */
  make_ledger("ins.db", "rows.key", &db, &signer);
  exec(db, "UPDATE ledger SET idx = -idx - 1 WHERE idx >= 3; UPDATE ledger SET idx = -idx WHERE idx < 0;"
           "INSERT INTO ledger(idx, round, entry) SELECT 3, round, entry FROM ledger WHERE idx = 1;");
  expect_bad(db, signer, 3, "inserted");
  sqlite3_close(db);
  storefl_signer_free(signer);
  /* Truncated tail: the last entry removed. */
  make_ledger("trunc.db", "rows.key", &db, &signer);
  exec(db, "DELETE FROM ledger WHERE idx = 4");
  expect_bad(db, signer, 4, "removed");
  sqlite3_close(db);
  storefl_signer_free(signer);
}

static void test_tamper_resigned(void **state) {
  (void)state;
  sqlite3 *db;
  storefl_signer *signer;
  make_ledger("resign.db", "real.key", &db, &signer);
  /* The forger lowers store-a's epsilon in entry 2, recomputes the hash and signs with its own key. */
  char k2[512];
  path_in(k2, sizeof k2, "forger.key");
  storefl_signer *forger;
  assert_int_equal(storefl_signer_open(k2, &forger, NULL), STOREFL_OK); /* creates the forger's key */
  mbedtls_pk_context pk;
  mbedtls_pk_init(&pk);
  assert_int_equal(mbedtls_pk_parse_keyfile(&pk, k2, NULL), 0);
  storefl_rng *rng;
  assert_int_equal(storefl_rng_create("forger", &rng), STOREFL_OK);

  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT entry FROM ledger WHERE idx = 2", -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int len = sqlite3_column_bytes(st, 0);
  uint8_t *orig = malloc((size_t)len);
  assert_non_null(orig);
  memcpy(orig, sqlite3_column_blob(st, 0), (size_t)len);
  sqlite3_finalize(st);
  static storefl_str parts[STOREFL_MAX_PARTICIPANTS];
  static storefl_store_epsilon eps[STOREFL_MAX_PARTICIPANTS];
  storefl_ledger_entry e;
  assert_int_equal(storefl_ledger_entry_decode(orig, (size_t)len, STOREFL_DEFAULT_MAX_BODY, &e, parts,
                                               STOREFL_MAX_PARTICIPANTS, eps, STOREFL_MAX_PARTICIPANTS),
                   STOREFL_OK);
  eps[0].epsilon *= 0.5;
  assert_int_equal(storefl_ledger_entry_hash(&e, e.entry_hash), STOREFL_OK);
  uint8_t sig[MBEDTLS_ECDSA_MAX_LEN];
  size_t sig_len;
  assert_int_equal(
      mbedtls_pk_sign(&pk, MBEDTLS_MD_SHA256, e.entry_hash, 32, sig, &sig_len, storefl_rng_mbedtls, rng), 0);
  e.signature = sig;
  e.signature_len = sig_len;
  uint8_t out[4096];
  size_t out_len;
  assert_int_equal(storefl_ledger_entry_encode(&e, out, sizeof out, &out_len), STOREFL_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "UPDATE ledger SET entry = ? WHERE idx = 2", -1, &st, NULL),
                   SQLITE_OK);
  sqlite3_bind_blob(st, 1, out, (int)out_len, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  expect_bad(db, signer, 2, "signature");
  /* Checked against the forger's key instead, the first genuine entry fails. */
  expect_bad(db, forger, 0, "signature");
  free(orig);
  mbedtls_pk_free(&pk);
  storefl_rng_free(rng);
  storefl_signer_free(forger);
  storefl_signer_free(signer);
  sqlite3_close(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_file_mode),    cmocka_unit_test(test_chain_and_accounting),
      cmocka_unit_test(test_tamper_byte_flip), cmocka_unit_test(test_tamper_rows),
      cmocka_unit_test(test_tamper_resigned),  cmocka_unit_test(test_population_charged),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
