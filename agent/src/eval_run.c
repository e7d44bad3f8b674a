/* The evaluation loop and the baselines; see eval_run.h. */
#include "eval_run.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval_metrics.h"
#include "storefl/error.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int storefl_eval_client_lines_build(const storefl_eval_data *d, const storefl_eval_split *s,
                                    storefl_eval_client_lines *out) {
  memset(out, 0, sizeof *out);
  out->offsets = calloc(s->nclients + 1, sizeof *out->offsets);
  if (!out->offsets)
    return STOREFL_ERR_NOMEM;
  size_t total = 0;
  for (size_t i = 0; i < d->nlines; i++)
    if (s->line_client[i] >= 0) {
      out->offsets[s->line_client[i] + 1]++;
      total++;
    }
  for (size_t c = 0; c < s->nclients; c++)
    out->offsets[c + 1] += out->offsets[c];
  out->lines = malloc((total ? total : 1) * sizeof *out->lines);
  uint32_t *fill = malloc((s->nclients ? s->nclients : 1) * sizeof *fill);
  if (!out->lines || !fill) {
    free(fill);
    storefl_eval_client_lines_free(out);
    return STOREFL_ERR_NOMEM;
  }
  memcpy(fill, out->offsets, s->nclients * sizeof *fill);
  for (size_t i = 0; i < d->nlines; i++)
    if (s->line_client[i] >= 0)
      out->lines[fill[s->line_client[i]]++] = (uint32_t)i;
  free(fill);
  return STOREFL_OK;
}

void storefl_eval_client_lines_free(storefl_eval_client_lines *cl) {
  free(cl->offsets);
  free(cl->lines);
  cl->offsets = NULL;
  cl->lines = NULL;
}

static int cmp_event_client(const void *a, const void *b) {
  const storefl_eval_event *x = *(const storefl_eval_event *const *)a;
  const storefl_eval_event *y = *(const storefl_eval_event *const *)b;
  if (x->client != y->client)
    return x->client < y->client ? -1 : 1;
  if (x->t != y->t)
    return (x->t > y->t) - (x->t < y->t);
  return (x->line > y->line) - (x->line < y->line);
}

/* Distinct products of the event's invoice other than the target. Lines are sorted by (time,
 * invoice, ...), so an invoice's lines at one time are contiguous around the event's line. */
static size_t basket_of(const storefl_eval_data *d, const storefl_eval_event *e, uint32_t *out, size_t max) {
  size_t lo = e->line, hi = e->line + 1, n = 0;
  while (lo > 0 && d->lines[lo - 1].t == e->t && d->lines[lo - 1].invoice == e->invoice)
    lo--;
  while (hi < d->nlines && d->lines[hi].t == e->t && d->lines[hi].invoice == e->invoice)
    hi++;
  for (size_t i = lo; i < hi && n < max; i++) {
    uint32_t p = d->lines[i].product;
    if (p == e->product)
      continue;
    size_t j = 0;
    while (j < n && out[j] != p)
      j++;
    if (j == n)
      out[n++] = p;
  }
  return n;
}

enum { EVAL_K = 10, EVAL_MAX_BASKET = 1024 };

int storefl_eval_run(const storefl_eval_data *d, const storefl_eval_split *s, storefl_eval_method *methods,
                     size_t nmethods, storefl_eval_result *results, storefl_eval_progress progress,
                     void *progress_arg) {
  if (!d || !s || (nmethods && (!methods || !results)))
    return STOREFL_ERR_INVALID;
  int rc;
  storefl_eval_client_lines cl;
  if ((rc = storefl_eval_client_lines_build(d, s, &cl)))
    return rc;
  const storefl_eval_event **order = malloc((s->nevents ? s->nevents : 1) * sizeof *order);
  float *scores = malloc((s->nnew ? s->nnew : 1) * sizeof *scores);
  uint32_t *basket = malloc(EVAL_MAX_BASKET * sizeof *basket);
  /* Per method: sums over events, and per-client running sums for the client means. */
  double *acc = calloc(nmethods * 6 + 1, sizeof *acc);
  if (!order || !scores || !basket || !acc) {
    rc = STOREFL_ERR_NOMEM;
    goto out;
  }
  for (size_t i = 0; i < s->nevents; i++)
    order[i] = &s->events[i];
  qsort(order, s->nevents, sizeof *order, cmp_event_client);
  for (size_t m = 0; m < nmethods; m++) {
    memset(&results[m], 0, sizeof results[m]);
    snprintf(results[m].method, sizeof results[m].method, "%s", methods[m].name);
  }
  size_t i = 0, done = 0;
  while (i < s->nevents) {
    uint32_t c = order[i]->client;
    size_t j = i;
    while (j < s->nevents && order[j]->client == c)
      j++;
    storefl_eval_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.data = d;
    ctx.split = s;
    ctx.client = c;
    ctx.lines = cl.lines + cl.offsets[c];
    ctx.nlines = cl.offsets[c + 1] - cl.offsets[c];
    for (size_t m = 0; m < nmethods; m++) {
      double t0 = now_s();
      if (methods[m].begin_client && (rc = methods[m].begin_client(methods[m].state, &ctx)))
        goto out;
      results[m].seconds += now_s() - t0;
    }
    double *csum = acc + nmethods * 3; /* this client's sums per method */
    memset(csum, 0, nmethods * 3 * sizeof *csum);
    size_t hist = 0;
    for (size_t k = i; k < j; k++) {
      const storefl_eval_event *e = order[k];
      while (hist < ctx.nlines && d->lines[ctx.lines[hist]].t < e->t)
        hist++;
      ctx.event = e;
      ctx.nhistory = hist;
      ctx.nbasket = basket_of(d, e, basket, EVAL_MAX_BASKET);
      ctx.basket = basket;
      size_t n = e->ncand, rel = n;
      for (size_t q = 0; q < n; q++)
        if (s->new_products[q] == e->product)
          rel = q;
      if (rel == n) {
        rc = STOREFL_ERR_INTERNAL; /* the target is launched by its own event: a broken split */
        goto out;
      }
      for (size_t m = 0; m < nmethods; m++) {
        double t0 = now_s();
        if ((rc = methods[m].score(methods[m].state, &ctx, s->new_products, n, scores)))
          goto out;
        results[m].seconds += now_s() - t0;
        storefl_rank_metrics met;
        if ((rc = storefl_rank_metrics_compute(scores, n, rel, EVAL_K, &met)))
          goto out;
        acc[m * 3 + 0] += met.hr;
        acc[m * 3 + 1] += met.ndcg;
        acc[m * 3 + 2] += met.auc;
        csum[m * 3 + 0] += met.hr;
        csum[m * 3 + 1] += met.ndcg;
        csum[m * 3 + 2] += met.auc;
        results[m].events++;
      }
      done++;
      if (progress && (done % 256 == 0 || done == s->nevents))
        progress(progress_arg, "events", done, s->nevents);
    }
    double ne = (double)(j - i);
    for (size_t m = 0; m < nmethods; m++) {
      results[m].c_hr10 += csum[m * 3 + 0] / ne;
      results[m].c_ndcg10 += csum[m * 3 + 1] / ne;
      results[m].c_auc += csum[m * 3 + 2] / ne;
      results[m].clients++;
    }
    i = j;
  }
  for (size_t m = 0; m < nmethods; m++) {
    storefl_eval_result *r = &results[m];
    if (r->events) {
      r->hr10 = acc[m * 3 + 0] / (double)r->events;
      r->ndcg10 = acc[m * 3 + 1] / (double)r->events;
      r->auc = acc[m * 3 + 2] / (double)r->events;
    }
    if (r->clients) {
      r->c_hr10 /= (double)r->clients;
      r->c_ndcg10 /= (double)r->clients;
      r->c_auc /= (double)r->clients;
    }
  }
  rc = STOREFL_OK;
out:
  free(order);
  free(scores);
  free(basket);
  free(acc);
  storefl_eval_client_lines_free(&cl);
  return rc;
}

/* ---- random ---- */

static int random_score(void *st, const storefl_eval_ctx *ctx, const uint32_t *cands, size_t n,
                        float *scores) {
  (void)st;
  (void)ctx;
  (void)cands;
  for (size_t i = 0; i < n; i++)
    scores[i] = 0.0f;
  return STOREFL_OK;
}

int storefl_eval_method_random(storefl_eval_method *m) {
  memset(m, 0, sizeof *m);
  m->name = "random";
  m->score = random_score;
  return STOREFL_OK;
}

/* ---- popularity ---- */

typedef struct popularity {
  const storefl_eval_split *s;
  const storefl_eval_data *d;
  int global;
  float *count; /* per data product: global counts, or the current client's */
} popularity;

static int pop_begin(void *st, const storefl_eval_ctx *ctx) {
  popularity *p = st;
  if (p->global)
    return STOREFL_OK;
  memset(p->count, 0, p->d->nproducts * sizeof *p->count);
  for (size_t i = 0; i < ctx->nlines; i++) {
    const storefl_eval_line *ln = &p->d->lines[ctx->lines[i]];
    if (ln->t >= p->s->cut && ln->t < p->s->adapt_end && p->s->is_new[ln->product])
      p->count[ln->product] += 1.0f;
  }
  return STOREFL_OK;
}

static int pop_score(void *st, const storefl_eval_ctx *ctx, const uint32_t *cands, size_t n, float *scores) {
  popularity *p = st;
  (void)ctx;
  for (size_t i = 0; i < n; i++)
    scores[i] = p->count[cands[i]];
  return STOREFL_OK;
}

static void pop_destroy(void *st) {
  popularity *p = st;
  if (p)
    free(p->count);
  free(p);
}

int storefl_eval_method_popularity(const storefl_eval_data *d, const storefl_eval_split *s, int global,
                                   storefl_eval_method *m) {
  memset(m, 0, sizeof *m);
  popularity *p = calloc(1, sizeof *p);
  if (!p)
    return STOREFL_ERR_NOMEM;
  p->d = d;
  p->s = s;
  p->global = global;
  p->count = calloc(d->nproducts ? d->nproducts : 1, sizeof *p->count);
  if (!p->count) {
    free(p);
    return STOREFL_ERR_NOMEM;
  }
  if (global)
    for (size_t i = 0; i < d->nlines; i++) {
      const storefl_eval_line *ln = &d->lines[i];
      if (ln->t >= s->cut && ln->t < s->adapt_end && s->is_new[ln->product])
        p->count[ln->product] += 1.0f;
    }
  m->name = global ? "popularity-global" : "popularity";
  m->state = p;
  m->begin_client = pop_begin;
  m->score = pop_score;
  m->destroy = pop_destroy;
  return STOREFL_OK;
}

/* ---- TF-IDF attribute similarity ---- */

typedef struct tfidf {
  const storefl_eval_data *d;
  size_t vocab;
  double *idf;    /* per token */
  uint32_t *toff; /* per product + 1: offsets into tok/tf */
  uint32_t *tok;
  float *tf;
  double *pnorm; /* per product: L2 norm of its tf-idf vector */
  double *count; /* current client's token counts (history up to `pos`) */
  size_t pos;
} tfidf;

typedef struct vocab_tab {
  char **keys;
  uint32_t *slots;
  size_t n, cap;
} vocab_tab;

static uint64_t hash_str(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

static int vocab_id(vocab_tab *v, const char *w, size_t len, uint32_t *id) {
  if (v->n + 1 > v->cap / 2) {
    size_t cap = v->cap ? v->cap * 2 : 4096;
    uint32_t *slots = calloc(cap, sizeof *slots);
    char **keys = realloc(v->keys, cap / 2 * sizeof *keys);
    if (!slots || !keys) {
      free(slots);
      if (keys)
        v->keys = keys;
      return STOREFL_ERR_NOMEM;
    }
    v->keys = keys;
    for (size_t i = 0; i < v->n; i++) {
      size_t j = hash_str(keys[i], strlen(keys[i])) & (cap - 1);
      while (slots[j])
        j = (j + 1) & (cap - 1);
      slots[j] = (uint32_t)i + 1;
    }
    free(v->slots);
    v->slots = slots;
    v->cap = cap;
  }
  size_t j = hash_str(w, len) & (v->cap - 1);
  while (v->slots[j]) {
    const char *k = v->keys[v->slots[j] - 1];
    if (strlen(k) == len && memcmp(k, w, len) == 0) {
      *id = v->slots[j] - 1;
      return STOREFL_OK;
    }
    j = (j + 1) & (v->cap - 1);
  }
  char *copy = malloc(len + 1);
  if (!copy)
    return STOREFL_ERR_NOMEM;
  memcpy(copy, w, len);
  copy[len] = 0;
  v->keys[v->n] = copy;
  v->slots[j] = (uint32_t)v->n + 1;
  *id = (uint32_t)v->n++;
  return STOREFL_OK;
}

static void vocab_free(vocab_tab *v) {
  for (size_t i = 0; i < v->n; i++)
    free(v->keys[i]);
  free(v->keys);
  free(v->slots);
}

enum { TFIDF_MAX_TOKENS = 64, TFIDF_MAX_WORD = 64 };

/* Distinct upper-cased alphanumeric words of text with their counts (at most TFIDF_MAX_TOKENS). */
static int tokenize(vocab_tab *v, const char *text, uint32_t *ids, float *tf, size_t *n) {
  *n = 0;
  const char *p = text ? text : "";
  while (*p) {
    while (*p && !isalnum((unsigned char)*p))
      p++;
    char w[TFIDF_MAX_WORD];
    size_t len = 0;
    while (*p && isalnum((unsigned char)*p)) {
      if (len < sizeof w)
        w[len++] = (char)toupper((unsigned char)*p);
      p++;
    }
    if (!len)
      continue;
    uint32_t id;
    int rc = vocab_id(v, w, len, &id);
    if (rc)
      return rc;
    size_t k = 0;
    while (k < *n && ids[k] != id)
      k++;
    if (k < *n) {
      tf[k] += 1.0f;
    } else if (*n < TFIDF_MAX_TOKENS) {
      ids[*n] = id;
      tf[*n] = 1.0f;
      (*n)++;
    }
  }
  return STOREFL_OK;
}

static void tfidf_add(tfidf *t, uint32_t product, double sign) {
  for (uint32_t k = t->toff[product]; k < t->toff[product + 1]; k++)
    t->count[t->tok[k]] += sign * t->tf[k];
}

static int tfidf_begin(void *st, const storefl_eval_ctx *ctx) {
  tfidf *t = st;
  (void)ctx;
  memset(t->count, 0, t->vocab * sizeof *t->count);
  t->pos = 0;
  return STOREFL_OK;
}

static int tfidf_score(void *st, const storefl_eval_ctx *ctx, const uint32_t *cands, size_t n,
                       float *scores) {
  tfidf *t = st;
  /* Events of a client come in time order, so the history only grows. */
  while (t->pos < ctx->nhistory)
    tfidf_add(t, t->d->lines[ctx->lines[t->pos++]].product, 1.0);
  for (size_t b = 0; b < ctx->nbasket; b++)
    tfidf_add(t, ctx->basket[b], 1.0);
  double norm = 0.0;
  for (size_t v = 0; v < t->vocab; v++) {
    double w = t->count[v] * t->idf[v];
    norm += w * w;
  }
  norm = sqrt(norm);
  for (size_t i = 0; i < n; i++) {
    uint32_t p = cands[i];
    double dot = 0.0;
    for (uint32_t k = t->toff[p]; k < t->toff[p + 1]; k++)
      dot += t->count[t->tok[k]] * t->idf[t->tok[k]] * t->tf[k] * t->idf[t->tok[k]];
    double den = norm * t->pnorm[p];
    scores[i] = den > 0.0 ? (float)(dot / den) : 0.0f;
  }
  for (size_t b = 0; b < ctx->nbasket; b++)
    tfidf_add(t, ctx->basket[b], -1.0);
  return STOREFL_OK;
}

static void tfidf_destroy(void *st) {
  tfidf *t = st;
  if (!t)
    return;
  free(t->idf);
  free(t->toff);
  free(t->tok);
  free(t->tf);
  free(t->pnorm);
  free(t->count);
  free(t);
}

int storefl_eval_method_tfidf(const storefl_eval_data *d, const storefl_eval_split *s,
                              storefl_eval_method *m) {
  (void)s;
  memset(m, 0, sizeof *m);
  int rc = STOREFL_ERR_NOMEM;
  vocab_tab v;
  memset(&v, 0, sizeof v);
  tfidf *t = calloc(1, sizeof *t);
  if (!t)
    return STOREFL_ERR_NOMEM;
  t->d = d;
  size_t np = d->nproducts;
  t->toff = calloc(np + 1, sizeof *t->toff);
  t->tok = malloc((np ? np : 1) * TFIDF_MAX_TOKENS * sizeof *t->tok);
  t->tf = malloc((np ? np : 1) * TFIDF_MAX_TOKENS * sizeof *t->tf);
  t->pnorm = calloc(np ? np : 1, sizeof *t->pnorm);
  if (!t->toff || !t->tok || !t->tf || !t->pnorm)
    goto fail;
  for (size_t p = 0; p < np; p++) {
    size_t n;
    if ((rc = tokenize(&v, d->products[p].text, t->tok + t->toff[p], t->tf + t->toff[p], &n)))
      goto fail;
    t->toff[p + 1] = t->toff[p] + (uint32_t)n;
  }
  rc = STOREFL_ERR_NOMEM;
  t->vocab = v.n;
  t->idf = calloc(v.n ? v.n : 1, sizeof *t->idf);
  t->count = calloc(v.n ? v.n : 1, sizeof *t->count);
  if (!t->idf || !t->count)
    goto fail;
  for (size_t k = 0; k < t->toff[np]; k++)
    t->idf[t->tok[k]] += 1.0; /* document frequency: tokens are distinct per product */
  for (size_t w = 0; w < v.n; w++)
    t->idf[w] = log((double)np / t->idf[w]);
  for (size_t p = 0; p < np; p++) {
    double q = 0.0;
    for (uint32_t k = t->toff[p]; k < t->toff[p + 1]; k++) {
      double w = t->tf[k] * t->idf[t->tok[k]];
      q += w * w;
    }
    t->pnorm[p] = sqrt(q);
  }
  vocab_free(&v);
  m->name = "tfidf";
  m->state = t;
  m->begin_client = tfidf_begin;
  m->score = tfidf_score;
  m->destroy = tfidf_destroy;
  return STOREFL_OK;
fail:
  vocab_free(&v);
  tfidf_destroy(t);
  return rc;
}
