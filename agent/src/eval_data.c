/* Evaluation dataset loading and temporal split; definitions in eval_data.h. */
#include "eval_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"

/* ---- string interning: open addressing, FNV-1a ---- */

typedef struct intern {
  char **keys; /* owned */
  size_t n;
  uint32_t *slots; /* index + 1, 0 = empty */
  size_t cap;      /* power of two */
} intern;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static int intern_grow(intern *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  uint32_t *slots = calloc(cap, sizeof *slots);
  char **keys = realloc(t->keys, cap / 2 * sizeof *keys);
  if (!slots || !keys) {
    free(slots);
    if (keys)
      t->keys = keys;
    return STOREFL_ERR_NOMEM;
  }
  t->keys = keys;
  for (size_t i = 0; i < t->n; i++) {
    size_t j = fnv1a(keys[i]) & (cap - 1);
    while (slots[j])
      j = (j + 1) & (cap - 1);
    slots[j] = (uint32_t)i + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->cap = cap;
  return STOREFL_OK;
}

/* Index of key, inserting it if new (*added = 1). Load factor stays <= 1/2. */
static int intern_get(intern *t, const char *key, uint32_t *idx, int *added) {
  if (added)
    *added = 0;
  if (t->n + 1 > t->cap / 2) {
    int rc = intern_grow(t);
    if (rc)
      return rc;
  }
  size_t j = fnv1a(key) & (t->cap - 1);
  while (t->slots[j]) {
    uint32_t k = t->slots[j] - 1;
    if (strcmp(t->keys[k], key) == 0) {
      *idx = k;
      return STOREFL_OK;
    }
    j = (j + 1) & (t->cap - 1);
  }
  char *copy = strdup(key);
  if (!copy)
    return STOREFL_ERR_NOMEM;
  t->keys[t->n] = copy;
  t->slots[j] = (uint32_t)t->n + 1;
  *idx = (uint32_t)t->n++;
  if (added)
    *added = 1;
  return STOREFL_OK;
}

static void intern_free_slots(intern *t) {
  free(t->slots);
  t->slots = NULL;
}

static void intern_free(intern *t) {
  for (size_t i = 0; i < t->n; i++)
    free(t->keys[i]);
  free(t->keys);
  free(t->slots);
  memset(t, 0, sizeof *t);
}

/* ---- loading ---- */

/* The evaluation's cleaning rules are the data README's four; an empty description keeps a line. */
static const unsigned EVAL_UNCLEAN =
    STOREFL_ROW_CANCELLED | STOREFL_ROW_QTY_NONPOS | STOREFL_ROW_PRICE_NONPOS | STOREFL_ROW_NOT_PRODUCT;

typedef struct loader {
  storefl_eval_data *d;
  intern products, customers, countries, invoices;
  size_t prod_cap, line_cap;
} loader;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return STOREFL_OK;
  size_t c = *cap ? *cap : 1024;
  while (c < need)
    c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q)
    return STOREFL_ERR_NOMEM;
  *p = q;
  *cap = c;
  return STOREFL_OK;
}

static int add_row(loader *L, const storefl_retail_row *row) {
  storefl_eval_data *d = L->d;
  if (d->nrows == 1 || row->time < d->t_first)
    d->t_first = row->time;
  if (d->nrows == 1 || row->time > d->t_last)
    d->t_last = row->time;
  uint32_t p;
  int added, rc;
  if (strlen(row->code) >= sizeof d->products[0].code) {
    /* A code this long is not a product code (the regex allows 5 digits + letters). */
    return STOREFL_OK;
  }
  if ((rc = intern_get(&L->products, row->code, &p, &added)))
    return rc;
  if (added) {
    if ((rc = grow((void **)&d->products, &L->prod_cap, p + 1, sizeof *d->products)))
      return rc;
    storefl_eval_product *pr = &d->products[p];
    memset(pr, 0, sizeof *pr);
    memcpy(pr->code, row->code, strlen(row->code) + 1);
    pr->first_clean = INT64_MAX;
    pr->first_any = row->time;
    d->nproducts = p + 1;
  }
  storefl_eval_product *pr = &d->products[p];
  if (row->time < pr->first_any)
    pr->first_any = row->time;
  int clean = (row->flags & EVAL_UNCLEAN) == 0;
  /* Text: the first non-empty text of a clean line wins over any text of an unclean line (the
   * latter carry stock notes such as "damaged"). */
  if (row->text[0] && (!pr->text || (clean && pr->first_clean == INT64_MAX))) {
    char *t = strdup(row->text);
    if (!t)
      return STOREFL_ERR_NOMEM;
    free(pr->text);
    pr->text = t;
  }
  if (!clean)
    return STOREFL_OK;
  if (pr->first_clean == INT64_MAX || row->time < pr->first_clean) {
    if (pr->first_clean == INT64_MAX)
      pr->price = (float)row->price;
    pr->first_clean = row->time;
  }
  if ((rc = grow((void **)&d->lines, &L->line_cap, d->nlines + 1, sizeof *d->lines)))
    return rc;
  storefl_eval_line *ln = &d->lines[d->nlines];
  ln->t = row->time;
  ln->product = p;
  ln->quantity = (float)row->quantity;
  ln->price = (float)row->price;
  uint32_t idx;
  if ((rc = intern_get(&L->invoices, row->basket, &idx, NULL)))
    return rc;
  ln->invoice = idx;
  ln->customer = -1;
  if (row->shopper[0]) {
    if ((rc = intern_get(&L->customers, row->shopper, &idx, NULL)))
      return rc;
    ln->customer = (int32_t)idx;
    d->nclean_with_customer++;
  }
  if ((rc = intern_get(&L->countries, row->country, &idx, NULL)))
    return rc;
  if (idx > UINT16_MAX)
    return STOREFL_ERR_TOO_LARGE;
  ln->country = (uint16_t)idx;
  d->nlines++;
  return STOREFL_OK;
}

static int cmp_line_time(const void *a, const void *b) {
  const storefl_eval_line *x = a, *y = b;
  if (x->t != y->t)
    return (x->t > y->t) - (x->t < y->t);
  if (x->invoice != y->invoice)
    return (x->invoice > y->invoice) - (x->invoice < y->invoice);
  if (x->product != y->product)
    return (x->product > y->product) - (x->product < y->product);
  if (x->quantity != y->quantity)
    return (x->quantity > y->quantity) - (x->quantity < y->quantity);
  return (x->price > y->price) - (x->price < y->price);
}

static int load(storefl_retail_reader *r, const storefl_eval_load_opts *opts, storefl_eval_data **out,
                char *err, size_t errlen) {
  uint64_t max_rows = opts && opts->max_rows ? opts->max_rows : 20000000u;
  uint64_t max_bad = opts && opts->max_bad_rows ? opts->max_bad_rows : 1000u;
  loader L;
  memset(&L, 0, sizeof L);
  L.d = calloc(1, sizeof *L.d);
  if (!L.d)
    return STOREFL_ERR_NOMEM;
  int rc;
  storefl_retail_row row;
  for (;;) {
    rc = storefl_retail_next(r, &row);
    if (rc == 0)
      break;
    if (rc < 0) {
      if (rc == STOREFL_ERR_INVALID && !storefl_retail_failed(r) && L.d->nbad_rows < max_bad) {
        L.d->nbad_rows++;
        continue;
      }
      if (err)
        snprintf(err, errlen, "%s", storefl_retail_error(r));
      goto fail;
    }
    if (++L.d->nrows > max_rows) {
      rc = STOREFL_ERR_TOO_LARGE;
      if (err)
        snprintf(err, errlen, "more than %llu rows", (unsigned long long)max_rows);
      goto fail;
    }
    if ((rc = add_row(&L, &row))) {
      if (err)
        snprintf(err, errlen, "line %llu: %s", (unsigned long long)row.line, storefl_strerror(rc));
      goto fail;
    }
    if (opts && opts->progress && (L.d->nrows & 0xffff) == 0)
      opts->progress(opts->progress_arg, L.d->nrows, storefl_retail_offset(r));
  }
  if (L.d->nrows == 0) {
    rc = STOREFL_ERR_INVALID;
    if (err)
      snprintf(err, errlen, "no data rows");
    goto fail;
  }
  /* Exports need not be chronological. qsort is not stable, so ties are broken by invoice (order
   * of first appearance), product, quantity and price: lines equal in all of these are
   * interchangeable, and the order is deterministic. */
  if (L.d->nlines > 1) /* lines is NULL when no line is clean */
    qsort(L.d->lines, L.d->nlines, sizeof *L.d->lines, cmp_line_time);
  L.d->customers = L.customers.keys;
  L.d->ncustomers = L.customers.n;
  L.d->countries = L.countries.keys;
  L.d->ncountries = L.countries.n;
  L.d->ninvoices = L.invoices.n;
  intern_free_slots(&L.customers);
  intern_free_slots(&L.countries);
  intern_free(&L.invoices);
  intern_free(&L.products); /* codes are copied into the product table */
  *out = L.d;
  return STOREFL_OK;
fail:
  L.d->customers = L.customers.keys;
  L.d->ncustomers = L.customers.n;
  L.d->countries = L.countries.keys;
  L.d->ncountries = L.countries.n;
  intern_free_slots(&L.customers);
  intern_free_slots(&L.countries);
  intern_free(&L.invoices);
  intern_free(&L.products);
  storefl_eval_data_free(L.d);
  return rc;
}

int storefl_eval_data_load(const char *path, const storefl_eval_load_opts *opts, storefl_eval_data **out,
                           char *err, size_t errlen) {
  if (!path || !out)
    return STOREFL_ERR_INVALID;
  storefl_retail_columns def;
  storefl_retail_columns_default(&def);
  storefl_retail_reader *r = NULL;
  int rc = storefl_retail_open(path, opts && opts->columns ? opts->columns : &def, &r, err, errlen);
  if (rc)
    return rc;
  rc = load(r, opts, out, err, errlen);
  storefl_retail_close(r);
  return rc;
}

int storefl_eval_data_load_mem(const void *buf, size_t len, const storefl_eval_load_opts *opts,
                               storefl_eval_data **out, char *err, size_t errlen) {
  if (!buf || !out)
    return STOREFL_ERR_INVALID;
  storefl_retail_columns def;
  storefl_retail_columns_default(&def);
  storefl_retail_reader *r = NULL;
  int rc = storefl_retail_open_mem(buf, len, opts && opts->columns ? opts->columns : &def, &r, err, errlen);
  if (rc)
    return rc;
  rc = load(r, opts, out, err, errlen);
  storefl_retail_close(r);
  return rc;
}

void storefl_eval_data_free(storefl_eval_data *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->nproducts; i++)
    free(d->products[i].text);
  free(d->products);
  free(d->lines);
  for (size_t i = 0; i < d->ncustomers; i++)
    free(d->customers[i]);
  free(d->customers);
  for (size_t i = 0; i < d->ncountries; i++)
    free(d->countries[i]);
  free(d->countries);
  free(d);
}

/* ---- split ---- */

/* 1 when t is at or after the point at 80% of [first, last], exactly in integers. */
static int at_or_after_80(int64_t t, int64_t first, int64_t last) {
  return 5 * t >= 5 * first + 4 * (last - first);
}

static int64_t first_second_at_80(int64_t first, int64_t last) {
  int64_t num = 5 * first + 4 * (last - first); /* cut = num / 5, rounded up to whole seconds */
  int64_t c = num / 5;
  while (!at_or_after_80(c, first, last))
    c++;
  while (at_or_after_80(c - 1, first, last))
    c--;
  return c;
}

typedef struct ekey {
  uint32_t client, product, invoice, line;
} ekey;

static int cmp_ekey(const void *a, const void *b) {
  const ekey *x = a, *y = b;
  if (x->client != y->client)
    return x->client < y->client ? -1 : 1;
  if (x->product != y->product)
    return x->product < y->product ? -1 : 1;
  if (x->invoice != y->invoice)
    return x->invoice < y->invoice ? -1 : 1;
  return (x->line > y->line) - (x->line < y->line);
}

static int cmp_event(const void *a, const void *b) {
  const storefl_eval_event *x = a, *y = b;
  if (x->t != y->t)
    return (x->t > y->t) - (x->t < y->t);
  return (x->line > y->line) - (x->line < y->line);
}

typedef struct launch_pair {
  int64_t t;
  uint32_t p;
} launch_pair;

static int cmp_launch(const void *a, const void *b) {
  const launch_pair *x = a, *y = b;
  if (x->t != y->t)
    return (x->t > y->t) - (x->t < y->t);
  return (x->p > y->p) - (x->p < y->p);
}

int storefl_eval_split_build(const storefl_eval_data *d, const storefl_eval_split_opts *opts,
                             storefl_eval_split **out) {
  if (!d || !opts || !out || d->nlines == 0 || d->nrows == 0)
    return STOREFL_ERR_INVALID;
  if (opts->clients > STOREFL_EVAL_COUNTRIES || opts->regime > STOREFL_EVAL_FEW_SHOT ||
      opts->period > STOREFL_EVAL_VALIDATION)
    return STOREFL_ERR_INVALID;
  int rc = STOREFL_ERR_NOMEM;
  storefl_eval_split *s = calloc(1, sizeof *s);
  if (!s)
    return STOREFL_ERR_NOMEM;
  s->opts = *opts;
  if (!s->opts.min_customer_lines)
    s->opts.min_customer_lines = 20;
  if (!s->opts.adapt_days)
    s->opts.adapt_days = 14;
  int64_t test_cut = first_second_at_80(d->t_first, d->t_last);
  if (opts->period == STOREFL_EVAL_TEST) {
    s->range_first = d->t_first;
    s->range_last = d->t_last;
    s->end = INT64_MAX;
  } else {
    s->range_first = d->t_first;
    s->range_last = test_cut;
    s->end = test_cut;
  }
  s->cut = first_second_at_80(s->range_first, s->range_last);
  s->adapt_end = s->cut;
  if (opts->regime == STOREFL_EVAL_FEW_SHOT)
    s->adapt_end = s->cut + (int64_t)s->opts.adapt_days * 86400;
  s->eval_start = s->adapt_end;

  /* New products, by launch. */
  s->is_new = calloc(d->nproducts ? d->nproducts : 1, 1);
  launch_pair *lp = calloc(d->nproducts ? d->nproducts : 1, sizeof *lp);
  if (!s->is_new || !lp) {
    free(lp);
    goto fail;
  }
  for (size_t p = 0; p < d->nproducts; p++) {
    int64_t f = d->products[p].first_clean;
    if (f != INT64_MAX && f >= s->cut && f < s->end) {
      s->is_new[p] = 1;
      lp[s->nnew].t = f;
      lp[s->nnew].p = (uint32_t)p;
      s->nnew++;
    }
  }
  qsort(lp, s->nnew, sizeof *lp, cmp_launch);
  s->new_products = malloc((s->nnew ? s->nnew : 1) * sizeof *s->new_products);
  s->launch = malloc((s->nnew ? s->nnew : 1) * sizeof *s->launch);
  if (!s->new_products || !s->launch) {
    free(lp);
    goto fail;
  }
  for (size_t i = 0; i < s->nnew; i++) {
    s->new_products[i] = lp[i].p;
    s->launch[i] = lp[i].t;
  }
  free(lp);

  /* Eligible clients. */
  size_t nsrc = opts->clients == STOREFL_EVAL_CUSTOMERS ? d->ncustomers : d->ncountries;
  int32_t *src_client = malloc((nsrc ? nsrc : 1) * sizeof *src_client);
  uint32_t *before = calloc(nsrc ? nsrc : 1, sizeof *before);
  s->client_source = malloc((nsrc ? nsrc : 1) * sizeof *s->client_source);
  s->client_names = malloc((nsrc ? nsrc : 1) * sizeof *s->client_names);
  if (!src_client || !before || !s->client_source || !s->client_names) {
    free(src_client);
    free(before);
    goto fail;
  }
  if (opts->clients == STOREFL_EVAL_CUSTOMERS) {
    for (size_t i = 0; i < d->nlines; i++)
      if (d->lines[i].customer >= 0 && d->lines[i].t < s->cut)
        before[d->lines[i].customer]++;
  }
  for (size_t c = 0; c < nsrc; c++) {
    int ok = opts->clients == STOREFL_EVAL_COUNTRIES || before[c] >= s->opts.min_customer_lines;
    if (ok && opts->max_clients && s->nclients >= opts->max_clients)
      ok = 0;
    src_client[c] = ok ? (int32_t)s->nclients : -1;
    if (ok) {
      s->client_source[s->nclients] = (uint32_t)c;
      s->client_names[s->nclients] =
          opts->clients == STOREFL_EVAL_CUSTOMERS ? d->customers[c] : d->countries[c];
      s->nclients++;
    }
  }
  free(before);
  s->line_client = malloc((d->nlines ? d->nlines : 1) * sizeof *s->line_client);
  if (!s->line_client) {
    free(src_client);
    goto fail;
  }
  size_t nkeys = 0;
  for (size_t i = 0; i < d->nlines; i++) {
    const storefl_eval_line *ln = &d->lines[i];
    int32_t c = -1;
    if (ln->t < s->end) {
      if (opts->clients == STOREFL_EVAL_CUSTOMERS)
        c = ln->customer >= 0 ? src_client[ln->customer] : -1;
      else
        c = src_client[ln->country];
    }
    s->line_client[i] = c;
    if (c >= 0 && ln->t >= s->eval_start && s->is_new[ln->product])
      nkeys++;
  }
  free(src_client);

  /* Events: distinct (client, product, invoice), keeping the earliest line. */
  ekey *keys = malloc((nkeys ? nkeys : 1) * sizeof *keys);
  if (!keys)
    goto fail;
  size_t k = 0;
  for (size_t i = 0; i < d->nlines; i++) {
    const storefl_eval_line *ln = &d->lines[i];
    int32_t c = s->line_client[i];
    if (c >= 0 && ln->t >= s->eval_start && s->is_new[ln->product]) {
      keys[k].client = (uint32_t)c;
      keys[k].product = ln->product;
      keys[k].invoice = ln->invoice;
      keys[k].line = (uint32_t)i;
      k++;
    }
  }
  qsort(keys, nkeys, sizeof *keys, cmp_ekey);
  s->events = malloc((nkeys ? nkeys : 1) * sizeof *s->events);
  uint8_t *cseen = calloc(s->nclients ? s->nclients : 1, 1);
  uint8_t *pseen = calloc(d->nproducts ? d->nproducts : 1, 1);
  if (!s->events || !cseen || !pseen) {
    free(keys);
    free(cseen);
    free(pseen);
    goto fail;
  }
  for (size_t i = 0; i < nkeys; i++) {
    if (i > 0 && keys[i].client == keys[i - 1].client && keys[i].product == keys[i - 1].product &&
        keys[i].invoice == keys[i - 1].invoice)
      continue;
    storefl_eval_event *e = &s->events[s->nevents++];
    e->t = d->lines[keys[i].line].t;
    e->client = keys[i].client;
    e->product = keys[i].product;
    e->invoice = keys[i].invoice;
    e->line = keys[i].line;
    e->ncand = (uint32_t)storefl_eval_split_candidates(s, e->t);
    if (!cseen[e->client]) {
      cseen[e->client] = 1;
      s->nclients_with_events++;
    }
    if (!pseen[e->product]) {
      pseen[e->product] = 1;
      s->nproducts_with_events++;
    }
  }
  free(keys);
  free(cseen);
  free(pseen);
  qsort(s->events, s->nevents, sizeof *s->events, cmp_event);
  *out = s;
  return STOREFL_OK;
fail:
  storefl_eval_split_free(s);
  return rc;
}

size_t storefl_eval_split_candidates(const storefl_eval_split *s, int64_t t) {
  size_t lo = 0, hi = s->nnew; /* first index with launch > t */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->launch[mid] <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void storefl_eval_split_free(storefl_eval_split *s) {
  if (!s)
    return;
  free(s->new_products);
  free(s->launch);
  free(s->is_new);
  free(s->client_source);
  free(s->client_names);
  free(s->line_client);
  free(s->events);
  free(s);
}
