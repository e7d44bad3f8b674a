/* The store <-> model bridge on a real SQLite store: catalogue and histories load as recorded,
 * models round-trip through the models table and a corrupted one is refused, and a model trained on
 * the store ranks a planted new product first for the shoppers whose taste it matches. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store_model.h"
#include "storefl/error.h"
#include "storefl/prng.h"
#include "storefl/train.h"
#include "storefl_agent.h"

#define DAY 86400
#define T0 1293840000
#define CUT (T0 + 200 * DAY)

static const char *const COLOURS[] = {"RED", "WHITE", "GREEN", "PINK", "IVORY", "BLACK"};
static const char *const LSTYLE[] = {"METAL", "GLASS", "HANGING", "MOROCCAN"};
static const char *const MSTYLE[] = {"SPOTTY", "CERAMIC", "BREAKFAST", "ENAMEL"};

static char dir[64];
static char path[128];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/storefl-sm-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/store.db", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void put(storefl_store *s, const char *code, const char *name, double price, int64_t first) {
  storefl_product p = {code, name, NULL, NULL, price, first};
  assert_int_equal(storefl_store_upsert_product(s, &p), STOREFL_OK);
}

/* 24 lanterns (L00..), 24 mugs (M00..), and new products launched at CUT: BLUE LANTERN (N0),
 * BLUE MUG (N1), and four unrelated. Shoppers S0..S5 buy lanterns, S6..S11 mugs. */
static void build_store(storefl_store *s) {
  char code[16], name[64];
  assert_int_equal(storefl_store_begin(s), STOREFL_OK);
  for (int i = 0; i < 24; i++) {
    snprintf(code, sizeof code, "L%02d", i);
    snprintf(name, sizeof name, "%s %s LANTERN", COLOURS[i % 6], LSTYLE[i / 6]);
    put(s, code, name, 3.0 + 0.02 * i, T0);
    snprintf(code, sizeof code, "M%02d", i);
    snprintf(name, sizeof name, "%s %s MUG", COLOURS[i % 6], MSTYLE[i / 6]);
    put(s, code, name, 2.0 + 0.02 * i, T0);
  }
  put(s, "N0", "BLUE LANTERN", 3.2, CUT);
  put(s, "N1", "BLUE MUG", 2.2, CUT);
  put(s, "N2", "BLUE TEAPOT", 2.7, CUT);
  put(s, "N3", "BLUE GARDEN SPADE", 2.7, CUT);
  put(s, "N4", "BLUE PICNIC HAMPER", 2.7, CUT);
  put(s, "N5", "BLUE KNITTING NEEDLES", 2.7, CUT);
  storefl_prng r;
  storefl_prng_seed(&r, 42);
  for (int c = 0; c < 12; c++) {
    char shopper[8], basket[16], prod[8];
    snprintf(shopper, sizeof shopper, "S%d", c);
    for (int b = 0; b < 12; b++) {
      snprintf(basket, sizeof basket, "B%d-%d", c, b);
      int64_t t = T0 + (int64_t)(b * 15 + c) * DAY + 10 * 3600;
      for (int k = 0; k < 2; k++) {
        snprintf(prod, sizeof prod, "%c%02d", c < 6 ? 'L' : 'M', (int)storefl_prng_below(&r, 24));
        storefl_event e = {t, shopper, basket, prod, 1.0, NAN, STOREFL_EVENT_PURCHASE, 0};
        assert_int_equal(storefl_store_record_event(s, &e, NULL), STOREFL_OK);
      }
    }
  }
  /* A view is not a purchase: it must not enter the histories. */
  storefl_event v = {T0 + 5, "S0", NULL, "M00", 1.0, NAN, STOREFL_EVENT_VIEW, 0};
  assert_int_equal(storefl_store_record_event(s, &v, NULL), STOREFL_OK);
  assert_int_equal(storefl_store_commit(s), STOREFL_OK);
}

static void test_planted_product_through_the_store(void **state) {
  (void)state;
  storefl_store *s;
  char err[256];
  assert_int_equal(storefl_store_open(path, NULL, &s, err, sizeof err), STOREFL_OK);
  build_store(s);
  storefl_agent_data d;
  assert_int_equal(storefl_agent_load_catalog(s, 1u << 12, &d), STOREFL_OK);
  assert_int_equal(storefl_catalog_size(d.cat), 54);
  assert_int_equal(storefl_agent_load_profiles(s, &d, NULL), STOREFL_OK);
  assert_int_equal(d.n_profiles, 12);
  assert_int_equal(d.n_events, 12 * 12 * 2);
  assert_int_equal(d.last_time, T0 + (int64_t)(11 * 15 + 11) * DAY + 10 * 3600);
  int64_t last = 0;
  assert_int_equal(storefl_agent_last_purchase(s, &last), STOREFL_OK);
  assert_int_equal(last, d.last_time);
  int64_t n0 = storefl_agent_find(&d, "N0"), n1 = storefl_agent_find(&d, "N1");
  assert_true(n0 >= 0 && n1 >= 0);
  assert_int_equal(storefl_catalog_first_seen(d.cat, (uint32_t)n0), CUT);

  /* Train on the store, save as "local", load it back. */
  storefl_model_config mc = {1u << 12, 16, 32};
  storefl_model *m, *back;
  assert_int_equal(storefl_model_create(&mc, &m), STOREFL_OK);
  storefl_model_init(m, 5);
  storefl_train_config tc;
  storefl_train_config_default(&tc);
  tc.seed = 5;
  tc.batch = 16;
  tc.optim.lr = 0.02f;
  storefl_trainer *t;
  assert_int_equal(storefl_trainer_create(&mc, &tc, &t), STOREFL_OK);
  storefl_train_data td = {d.cat, (const storefl_profile *const *)d.profiles, d.n_profiles, INT64_MIN, CUT};
  assert_int_equal(storefl_trainer_train(t, m, &td, 400, NULL), STOREFL_OK);
  storefl_trainer_free(t);
  assert_int_equal(storefl_agent_model_version(s, "local"), 0);
  assert_int_equal(storefl_agent_save_model(s, "local", 1, m), STOREFL_OK);
  assert_int_equal(storefl_agent_model_version(s, "local"), 1);
  uint64_t v = 0;
  uint8_t dg[32], mine[32];
  assert_int_equal(storefl_agent_load_model(s, "global", &back, &v, dg), STOREFL_ERR_NOT_FOUND);
  assert_int_equal(storefl_agent_load_model(s, "local", &back, &v, dg), STOREFL_OK);
  assert_int_equal(v, 1);
  assert_int_equal(storefl_model_sha256(m, mine), STOREFL_OK);
  assert_memory_equal(dg, mine, 32);
  assert_memory_equal(back->block, m->block, m->numel * sizeof(float));
  storefl_model_free(back);

  /* Each shopper, new products only: their kind's blue product comes first. */
  uint32_t newp[6];
  for (int i = 0; i < 6; i++) {
    char code[4];
    snprintf(code, sizeof code, "N%d", i);
    newp[i] = (uint32_t)storefl_agent_find(&d, code);
  }
  for (int c = 0; c < 12; c++) {
    storefl_agent_data one;
    char shopper[8];
    snprintf(shopper, sizeof shopper, "S%d", c);
    assert_int_equal(storefl_agent_load_catalog(s, 1u << 12, &one), STOREFL_OK);
    assert_int_equal(storefl_agent_load_profiles(s, &one, shopper), STOREFL_OK);
    assert_int_equal(one.n_profiles, 1);
    assert_int_equal(storefl_profile_len(one.profiles[0]), 24); /* purchases only, no view */
    storefl_query q = {one.profiles[0], NULL, 0, CUT + 5 * DAY, 0};
    uint32_t top[1];
    float sc[1];
    assert_int_equal(storefl_model_rank(m, one.cat, &q, newp, 6, 1, top, sc), 1);
    assert_int_equal(top[0], c < 6 ? (uint32_t)n0 : (uint32_t)n1);
    storefl_agent_data_free(&one);
  }
  storefl_agent_data one;
  assert_int_equal(storefl_agent_load_catalog(s, 1u << 12, &one), STOREFL_OK);
  assert_int_equal(storefl_agent_load_profiles(s, &one, "nobody"), STOREFL_ERR_NOT_FOUND);
  storefl_agent_data_free(&one);

  /* The store's part of a federated round equals the library's local step on the loaded data. */
  storefl_model *g, *delta, *expect;
  assert_int_equal(storefl_model_create(&mc, &g), STOREFL_OK);
  storefl_model_init(g, 77);
  assert_int_equal(storefl_model_create(&mc, &delta), STOREFL_OK);
  assert_int_equal(storefl_model_create(&mc, &expect), STOREFL_OK);
  storefl_train_config fc;
  storefl_train_config_default(&fc);
  fc.steps = 5;
  fc.algo = STOREFL_FED_FOMAML;
  size_t nex = 0, nex2 = 0;
  assert_int_equal(storefl_agent_local_update(s, g, &fc, delta, &nex), STOREFL_OK);
  assert_int_equal(nex, 12 * 12 * 2);
  storefl_train_data all = {d.cat, (const storefl_profile *const *)d.profiles, d.n_profiles, INT64_MIN,
                            INT64_MAX};
  assert_int_equal(storefl_local_update(g, &all, &fc, expect, &nex2), STOREFL_OK);
  assert_int_equal(nex2, nex);
  assert_memory_equal(delta->block, expect->block, g->numel * sizeof(float));
  assert_true(storefl_model_l2norm(delta) > 0);
  storefl_model_free(g);
  storefl_model_free(delta);
  storefl_model_free(expect);

  /* A blob altered on disk is refused: one float flipped keeps the CBOR valid but not the digest. */
  sqlite3 *db = storefl_store_db(s);
  assert_int_equal(sqlite3_exec(db,
                                "UPDATE models SET blob = substr(blob, 1, length(blob) - 1) || x'41' "
                                "WHERE kind = 'local'",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  assert_int_equal(storefl_agent_load_model(s, "local", &back, &v, dg), STOREFL_ERR_CONFLICT);
  assert_int_equal(sqlite3_exec(db, "UPDATE models SET blob = x'a1' WHERE kind = 'local'", NULL, NULL, NULL),
                   SQLITE_OK);
  assert_true(storefl_agent_load_model(s, "local", &back, &v, dg) < 0);
  storefl_model_free(m);
  storefl_agent_data_free(&d);
  storefl_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_planted_product_through_the_store, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
