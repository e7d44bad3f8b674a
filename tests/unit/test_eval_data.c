/* Evaluation split: hand-built cases for every rule, the figures of the real data (checked against
 * tools/eval_split_reference.py), and an evaluation on a slice of the real data. */
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

#include "eval_data.h"
#include "eval_metrics.h"
#include "eval_models.h"
#include "eval_run.h"
#include "storefl/error.h"

/* Range 2011-01-01 00:00 .. 2011-01-11 00:00, so the cut is 2011-01-09 00:00 exactly. */
static const char SMALL[] =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "100,10001,RED LANTERN,1,2011-01-01 00:00:00,1.0,1.0,UK\n"
    "101,10002,BLUE MUG,1,2011-01-02 00:00:00,2.0,1.0,UK\n"
    "C103,20001,NEW LANTERN,-1,2011-01-02 00:00:00,3.0,1.0,UK\n" /* cancelled: not a sighting */
    "102,10003a,GREEN BOWL,1,2011-01-03 00:00:00,2.0,2.0,France\n"
    "104,20002,DAMAGED,1,2011-01-03 00:00:00,0,2.0,France\n" /* zero price: not a sighting */
    "106,10002,BLUE MUG,1,2011-01-04 00:00:00,2.0,2.0,France\n"
    "205,20004,EXACT CUT,1,2011-01-09 00:00:00,1.0,2.0,France\n" /* exactly at the cut: new */
    "200,20001,NEW LANTERN,2,2011-01-09 01:00:00,3.0,1.0,UK\n"
    "200,20001,NEW LANTERN,1,2011-01-09 01:00:00,3.0,1.0,UK\n" /* same (client, product, invoice) */
    "200,10001,RED LANTERN,1,2011-01-09 01:00:00,1.0,1.0,UK\n"
    "200,POST,POSTAGE,1,2011-01-09 01:00:00,5.0,1.0,UK\n" /* not a product */
    "201,20002,GREEN PLATE,1,2011-01-10 00:00:00,1.0,1.0,UK\n"
    "202,10003A,GREEN BOWL,1,2011-01-10 00:00:00,2.0,2.0,France\n" /* upper-cased: not new */
    "203,20001,NEW LANTERN,1,2011-01-10 00:00:00,3.0,,UK\n"        /* anonymous */
    "204,20003,NEW THING,1,2011-01-11 00:00:00,1.0,3.0,France\n";  /* customer 3 not eligible */

static storefl_eval_data *load_small(void) {
  storefl_eval_data *d = NULL;
  char err[256];
  assert_int_equal(storefl_eval_data_load_mem(SMALL, strlen(SMALL), NULL, &d, err, sizeof err), STOREFL_OK);
  return d;
}

static int64_t product_index(const storefl_eval_data *d, const char *code) {
  for (size_t i = 0; i < d->nproducts; i++)
    if (strcmp(d->products[i].code, code) == 0)
      return (int64_t)i;
  return -1;
}

static void test_small_split_rules(void **state) {
  (void)state;
  storefl_eval_data *d = load_small();
  assert_int_equal(d->nrows, 15);
  assert_int_equal(d->nlines, 12); /* cancelled, zero price, POST dropped; duplicates kept as lines */
  assert_true(product_index(d, "10003A") >= 0);
  assert_true(product_index(d, "10003a") < 0);
  storefl_eval_split_opts o = {.clients = STOREFL_EVAL_CUSTOMERS, .min_customer_lines = 2};
  storefl_eval_split *s = NULL;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
  char buf[32];
  storefl_format_time(s->cut, buf, sizeof buf);
  assert_string_equal(buf, "2011-01-09 00:00:00");
  assert_int_equal(s->nnew, 4); /* 20004, 20001, 20002, 20003 in launch order */
  assert_string_equal(d->products[s->new_products[0]].code, "20004");
  assert_string_equal(d->products[s->new_products[1]].code, "20001");
  assert_string_equal(d->products[s->new_products[2]].code, "20002");
  assert_string_equal(d->products[s->new_products[3]].code, "20003");
  /* The text of 20002 comes from its clean line, not the "DAMAGED" stock note. */
  assert_string_equal(d->products[product_index(d, "20002")].text, "GREEN PLATE");
  assert_int_equal(s->nclients, 2); /* customers 1 and 2; 3 has no line before the cut */
  assert_int_equal(s->nevents, 3);
  /* Sorted by time: (2, 20004) with 1 candidate, (1, 20001) with 2, (1, 20002) with 3. */
  assert_string_equal(d->products[s->events[0].product].code, "20004");
  assert_int_equal(s->events[0].ncand, 1);
  assert_string_equal(d->products[s->events[1].product].code, "20001");
  assert_int_equal(s->events[1].ncand, 2);
  assert_string_equal(d->products[s->events[2].product].code, "20002");
  assert_int_equal(s->events[2].ncand, 3);
  assert_int_equal(s->nclients_with_events, 2);
  storefl_eval_split_free(s);

  o.clients = STOREFL_EVAL_COUNTRIES;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
  assert_int_equal(s->nclients, 2);
  assert_int_equal(s->nevents, 5); /* + anonymous UK 20001 (invoice 203), France 20003 */
  storefl_eval_split_free(s);

  /* Few-shot with a one-day window: evaluation from 2011-01-10 00:00. */
  o.regime = STOREFL_EVAL_FEW_SHOT;
  o.adapt_days = 1;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
  assert_int_equal(s->nevents, 3); /* 201, 203 (UK), 204 (France) */
  storefl_eval_split_free(s);
  o.clients = STOREFL_EVAL_CUSTOMERS;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
  assert_int_equal(s->nevents, 1);
  assert_string_equal(d->products[s->events[0].product].code, "20002");
  storefl_eval_split_free(s);
  storefl_eval_data_free(d);
}

/* Regression (found by fuzz_eval_data): an export without a single clean line loads, and the
 * split refuses it instead of sorting a NULL array. */
static void test_no_clean_line(void **state) {
  (void)state;
  static const char csv[] =
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
      "C1,10001,X,-1,2011-01-01 00:00:00,1.0,1.0,UK\n"
      "2,POST,POSTAGE,1,2011-01-02 00:00:00,1.0,1.0,UK\n";
  storefl_eval_data *d = NULL;
  char err[256];
  assert_int_equal(storefl_eval_data_load_mem(csv, strlen(csv), NULL, &d, err, sizeof err), STOREFL_OK);
  assert_int_equal(d->nrows, 2);
  assert_int_equal(d->nlines, 0);
  storefl_eval_split_opts o = {.clients = STOREFL_EVAL_COUNTRIES};
  storefl_eval_split *s = NULL;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_ERR_INVALID);
  storefl_eval_data_free(d);
  /* A header alone is no data. */
  static const char hdr[] =
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n";
  assert_int_equal(storefl_eval_data_load_mem(hdr, strlen(hdr), NULL, &d, err, sizeof err),
                   STOREFL_ERR_INVALID);
}

/* A method that checks the context it is given and prefers one product. */
typedef struct probe {
  const storefl_eval_data *d;
  int calls;
  size_t basket_of_200;
  size_t history_of_200;
} probe;

static int probe_score(void *st, const storefl_eval_ctx *ctx, const uint32_t *cands, size_t n,
                       float *scores) {
  probe *p = st;
  p->calls++;
  if (strcmp(p->d->products[ctx->event->product].code, "20001") == 0) {
    p->basket_of_200 = ctx->nbasket;
    p->history_of_200 = ctx->nhistory;
    assert_string_equal(p->d->products[ctx->basket[0]].code, "10001");
  }
  for (size_t i = 0; i < ctx->nhistory; i++)
    assert_true(p->d->lines[ctx->lines[i]].t < ctx->event->t);
  for (size_t i = 0; i < n; i++)
    scores[i] = strcmp(p->d->products[cands[i]].code, "20002") == 0 ? 1.0f : 0.0f;
  return STOREFL_OK;
}

static void test_small_run(void **state) {
  (void)state;
  storefl_eval_data *d = load_small();
  storefl_eval_split_opts o = {.clients = STOREFL_EVAL_CUSTOMERS, .min_customer_lines = 2};
  storefl_eval_split *s = NULL;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
  probe pr = {.d = d};
  storefl_eval_method m[3];
  memset(m, 0, sizeof m);
  m[0].name = "probe";
  m[0].state = &pr;
  m[0].score = probe_score;
  assert_int_equal(storefl_eval_method_random(&m[1]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_tfidf(d, s, &m[2]), STOREFL_OK);
  storefl_eval_result r[3];
  assert_int_equal(storefl_eval_run(d, s, m, 3, r, NULL, NULL), STOREFL_OK);
  assert_int_equal(pr.calls, 3);
  assert_int_equal(pr.basket_of_200, 1);  /* RED LANTERN (POST is not clean, 20001 is the target) */
  assert_int_equal(pr.history_of_200, 2); /* invoices 100 and 101 */
  /* probe: event (2,20004) n=1 -> HR 1 NDCG 1 AUC 1/2; (1,20001) n=2 tied at 0 -> HR 1, NDCG
   * (1 + 1/log2 3)/2, AUC 1/2; (1,20002) n=3 ranked first -> 1, 1, 1. */
  double nd2 = (1.0 + 1.0 / log2(3.0)) / 2.0;
  assert_true(fabs(r[0].hr10 - 1.0) < 1e-12);
  assert_true(fabs(r[0].ndcg10 - (1.0 + nd2 + 1.0) / 3.0) < 1e-12);
  assert_true(fabs(r[0].auc - (0.5 + 0.5 + 1.0) / 3.0) < 1e-12);
  /* Client means: client 2 has one event (1, 1, 0.5), client 1 two. */
  assert_true(fabs(r[0].c_ndcg10 - (1.0 + (nd2 + 1.0) / 2.0) / 2.0) < 1e-12);
  assert_true(fabs(r[0].c_auc - (0.5 + 0.75) / 2.0) < 1e-12);
  assert_int_equal(r[0].clients, 2);
  assert_int_equal(r[0].events, 3);
  /* tfidf: customer 1 bought a LANTERN, so NEW LANTERN beats EXACT CUT: AUC 1 on that event. */
  assert_true(r[2].auc > r[1].auc);
  for (size_t i = 0; i < 3; i++)
    if (m[i].destroy)
      m[i].destroy(m[i].state);
  storefl_eval_split_free(s);
  storefl_eval_data_free(d);
}

/* ---- real data ---- */

static storefl_eval_data *real;

static int load_real(void **state) {
  (void)state;
  const char *dir = getenv("STOREFL_DATA_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/online-retail/online_retail.csv.gz", dir ? dir : "../shared/data");
  char err[256] = "";
  int rc = storefl_eval_data_load(path, NULL, &real, err, sizeof err);
  if (rc)
    fprintf(stderr, "cannot load %s: %s\n", path, err);
  return rc;
}

static int free_real(void **state) {
  (void)state;
  storefl_eval_data_free(real);
  return 0;
}

/* Figures of issue 7's definitions on the real file; tools/eval_split_reference.py (an independent
 * Python implementation) prints the same numbers. */
static void test_real_figures(void **state) {
  (void)state;
  storefl_eval_data *d = real;
  assert_int_equal(d->nrows, 541909);
  assert_int_equal(d->nlines, 527725);
  assert_int_equal(d->nclean_with_customer, 396337);
  assert_int_equal(d->ncountries, 38);
  char buf[32];
  storefl_format_time(d->t_first, buf, sizeof buf);
  assert_string_equal(buf, "2010-12-01 08:26:00");
  storefl_format_time(d->t_last, buf, sizeof buf);
  assert_string_equal(buf, "2011-12-09 12:50:00");
  size_t clean_products = 0;
  for (size_t i = 0; i < d->nproducts; i++)
    clean_products += d->products[i].first_clean != INT64_MAX;
  assert_int_equal(clean_products, 3791); /* upper-cased; the README's 3,900 is before upper-casing */

  static const struct {
    storefl_eval_clients c;
    storefl_eval_regime r;
    size_t events, clients, products;
    double hr, ndcg; /* random baseline, from the reference script */
  } want[] = {
      {STOREFL_EVAL_CUSTOMERS, STOREFL_EVAL_ZERO_SHOT, 5238, 971, 138, 0.088811, 0.040449},
      {STOREFL_EVAL_CUSTOMERS, STOREFL_EVAL_FEW_SHOT, 4923, 948, 138, 0.076784, 0.034887},
      {STOREFL_EVAL_COUNTRIES, STOREFL_EVAL_ZERO_SHOT, 8247, 24, 173, 0.086691, 0.039581},
      {STOREFL_EVAL_COUNTRIES, STOREFL_EVAL_FEW_SHOT, 7806, 24, 172, 0.076015, 0.034538},
  };
  for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
    storefl_eval_split_opts o = {.clients = want[w].c, .regime = want[w].r};
    storefl_eval_split *s = NULL;
    assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
    storefl_format_time(s->cut, buf, sizeof buf);
    assert_string_equal(buf, "2011-09-25 21:33:12"); /* the README's 2011-09-25 21:33 */
    /* 189 raw codes first seen in clean lines after the cut; 173 once upper-cased. */
    assert_int_equal(s->nnew, 173);
    assert_int_equal(s->nclients, want[w].c == STOREFL_EVAL_CUSTOMERS ? 2398 : 38);
    assert_int_equal(s->nevents, want[w].events);
    assert_int_equal(s->nclients_with_events, want[w].clients);
    assert_int_equal(s->nproducts_with_events, want[w].products);
    /* The random baseline through the whole loop equals its analytic expectation. */
    storefl_eval_method m;
    assert_int_equal(storefl_eval_method_random(&m), STOREFL_OK);
    storefl_eval_result r;
    assert_int_equal(storefl_eval_run(d, s, &m, 1, &r, NULL, NULL), STOREFL_OK);
    assert_true(fabs(r.hr10 - want[w].hr) < 5e-7);
    assert_true(fabs(r.ndcg10 - want[w].ndcg) < 5e-7);
    assert_true(r.auc == 0.5 && r.c_auc == 0.5);
    assert_int_equal(r.events, want[w].events);
    storefl_eval_split_free(s);
  }
  /* Upper-cased codes first seen in ANY line at or after the cut: 174 (the README's "173 once
   * upper-cased" is the clean-line count). */
  int64_t first = d->t_first, last = d->t_last;
  size_t any = 0;
  for (size_t i = 0; i < d->nproducts; i++)
    any += 5 * d->products[i].first_any >= 5 * first + 4 * (last - first);
  assert_int_equal(any, 174);
}

/* eval on a slice (the first 150 eligible customers, few-shot): structure, the random baseline
 * equal to the analytic expectation computed here from the candidate counts, and the baselines'
 * ordering that the data shows (TF-IDF well above random). */
static void test_real_slice(void **state) {
  (void)state;
  storefl_eval_data *d = real;
  storefl_eval_split_opts o = {
      .clients = STOREFL_EVAL_CUSTOMERS, .regime = STOREFL_EVAL_FEW_SHOT, .max_clients = 150};
  storefl_eval_split *s = NULL;
  assert_int_equal(storefl_eval_split_build(d, &o, &s), STOREFL_OK);
  assert_int_equal(s->nclients, 150);
  assert_true(s->nevents > 50);
  assert_true(s->nclients_with_events > 10 && s->nclients_with_events <= 150);
  double hr = 0, nd = 0;
  for (size_t i = 0; i < s->nevents; i++) {
    const storefl_eval_event *e = &s->events[i];
    assert_true(e->t >= s->eval_start);
    assert_true(e->ncand >= 1 && e->ncand <= s->nnew);
    assert_true(s->is_new[e->product]);
    if (i)
      assert_true(e->t >= s->events[i - 1].t);
    size_t k = e->ncand < 10 ? e->ncand : 10;
    hr += (double)k / e->ncand;
    double g = 0;
    for (size_t r = 1; r <= k; r++)
      g += 1.0 / log2((double)r + 1.0);
    nd += g / e->ncand;
  }
  hr /= (double)s->nevents;
  nd /= (double)s->nevents;
  storefl_eval_method m[4];
  assert_int_equal(storefl_eval_method_random(&m[0]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_popularity(d, s, 0, &m[1]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_popularity(d, s, 1, &m[2]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_tfidf(d, s, &m[3]), STOREFL_OK);
  storefl_eval_result r[4];
  assert_int_equal(storefl_eval_run(d, s, m, 4, r, NULL, NULL), STOREFL_OK);
  assert_true(fabs(r[0].hr10 - hr) < 1e-12);
  assert_true(fabs(r[0].ndcg10 - nd) < 1e-12);
  assert_true(r[0].auc == 0.5);
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(r[i].events, s->nevents);
    assert_int_equal(r[i].clients, s->nclients_with_events);
    assert_true(r[i].hr10 >= 0 && r[i].hr10 <= 1 && r[i].ndcg10 >= 0 && r[i].ndcg10 <= r[i].hr10);
    assert_true(r[i].auc >= 0 && r[i].auc <= 1);
    m[i].destroy ? m[i].destroy(m[i].state) : (void)0;
  }
  assert_true(r[3].ndcg10 > 2.0 * r[0].ndcg10);
  assert_true(r[3].auc > 0.6);
  storefl_eval_split_free(s);
}

/* [eval] keys are applied; an unknown key or a bad value is refused with its line, and the
 * configuration is then left unchanged. */
static void test_model_config_ini(void **state) {
  (void)state;
  char path[] = "/tmp/storefl_eval_iniXXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  assert_non_null(f);
  fputs("[columns]\nproduct = StockCode\n[eval]\nbuckets = 4096\ndim = 8\nhidden = 16\noptimizer = sgd\n"
        "lr = 0.1\nrounds = 7\nalgo = fomaml\nneg_recent_days = 90\nseed = 42\n",
        f);
  assert_int_equal(fclose(f), 0);
  storefl_eval_model_config c;
  storefl_eval_model_config_default(&c);
  char err[256];
  assert_int_equal(storefl_eval_model_config_load_ini(path, "eval", &c, err, sizeof err), STOREFL_OK);
  assert_int_equal(c.model.buckets, 4096);
  assert_int_equal(c.model.dim, 8);
  assert_int_equal(c.model.hidden, 16);
  assert_int_equal(c.train.optim.kind, STOREFL_OPT_SGD);
  assert_true(c.train.optim.lr == 0.1f);
  assert_int_equal(c.rounds, 7);
  assert_int_equal(c.train.algo, STOREFL_FED_FOMAML);
  assert_int_equal(c.neg_recent_days, 90);
  assert_int_equal(c.seed, 42);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("[eval]\nrounds = 3\nwarp = 9\n", f);
  assert_int_equal(fclose(f), 0);
  storefl_eval_model_config d = c;
  assert_int_equal(storefl_eval_model_config_load_ini(path, "eval", &d, err, sizeof err),
                   STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, ":3:"));
  assert_non_null(strstr(err, "warp"));
  assert_int_equal(d.rounds, 7);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("[eval]\nlr = fast\n", f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(storefl_eval_model_config_load_ini(path, "eval", &d, err, sizeof err),
                   STOREFL_ERR_INVALID);
  unlink(path);
  assert_int_equal(storefl_eval_model_config_load_ini(path, "eval", &d, err, sizeof err), STOREFL_ERR_IO);
}

/* The model methods on a slice of the real data with small training budgets: every event is
 * scored, metrics are in range, and a second run with the same seed gives identical figures. */
static void run_models(const storefl_eval_split *s, storefl_eval_result *r) {
  storefl_eval_model_config c;
  storefl_eval_model_config_default(&c);
  c.model.buckets = 4096;
  c.central_steps = 30;
  c.local_steps = 5;
  c.rounds = 2;
  c.clients_per_round = 6;
  c.fed_local_steps = 5;
  c.train.personal_steps = 5;
  storefl_eval_models *mc = NULL;
  assert_int_equal(storefl_eval_models_create(real, s, &c, &mc), STOREFL_OK);
  storefl_eval_method m[4];
  assert_int_equal(storefl_eval_method_model(mc, STOREFL_EVAL_LOCAL, &m[0]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_model(mc, STOREFL_EVAL_CENTRAL, &m[1]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_model(mc, STOREFL_EVAL_FEDERATED, &m[2]), STOREFL_OK);
  assert_int_equal(storefl_eval_method_model(mc, STOREFL_EVAL_FEDERATED_PERSONAL, &m[3]), STOREFL_OK);
  assert_int_equal(storefl_eval_run(real, s, m, 4, r, NULL, NULL), STOREFL_OK);
  for (size_t i = 0; i < 4; i++)
    m[i].destroy(m[i].state);
  storefl_eval_models_free(mc);
}

static void test_real_slice_models(void **state) {
  (void)state;
  storefl_eval_split_opts o = {
      .clients = STOREFL_EVAL_CUSTOMERS, .regime = STOREFL_EVAL_FEW_SHOT, .max_clients = 40};
  storefl_eval_split *s = NULL;
  assert_int_equal(storefl_eval_split_build(real, &o, &s), STOREFL_OK);
  storefl_eval_result a[4], b[4];
  run_models(s, a);
  run_models(s, b);
  static const char *const names[] = {"local", "central", "federated", "federated+personal"};
  for (size_t i = 0; i < 4; i++) {
    assert_string_equal(a[i].method, names[i]);
    assert_int_equal(a[i].events, s->nevents);
    assert_int_equal(a[i].clients, s->nclients_with_events);
    assert_true(a[i].ndcg10 >= 0 && a[i].ndcg10 <= a[i].hr10 && a[i].hr10 <= 1);
    assert_true(a[i].auc >= 0 && a[i].auc <= 1);
    assert_true(a[i].hr10 == b[i].hr10 && a[i].ndcg10 == b[i].ndcg10 && a[i].auc == b[i].auc);
  }
  storefl_eval_split_free(s);
}

int main(void) {
  const struct CMUnitTest small[] = {
      cmocka_unit_test(test_small_split_rules),
      cmocka_unit_test(test_small_run),
      cmocka_unit_test(test_no_clean_line),
      cmocka_unit_test(test_model_config_ini),
  };
  const struct CMUnitTest big[] = {
      cmocka_unit_test(test_real_figures),
      cmocka_unit_test(test_real_slice),
      cmocka_unit_test(test_real_slice_models),
  };
  int rc = cmocka_run_group_tests(small, NULL, NULL);
  rc |= cmocka_run_group_tests(big, load_real, free_real);
  return rc;
}
