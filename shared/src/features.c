/* Hashed product attributes, the catalogue and clients' profiles (storefl/features.h). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "features_internal.h"
#include "storefl/error.h"

#define MAX_PRODUCTS (1u << 24)
#define MAX_EVENTS ((size_t)1 << 31)
/* Tokens reserved after the words for category, brand and price bucket. */
#define RESERVED_TOKENS 3

uint64_t storefl_fnv1a64(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static uint32_t token_bucket(char kind, const char *tok, size_t len, uint32_t buckets) {
  char buf[STOREFL_MAX_TOKEN_LEN + 2];
  buf[0] = kind;
  buf[1] = ':';
  memcpy(buf + 2, tok, len);
  return (uint32_t)(storefl_fnv1a64(buf, len + 2) & (uint64_t)(buckets - 1));
}

/* Word characters: ASCII letters and digits, and any non-ASCII byte (UTF-8 letters stay in words). */
static int is_word_char(unsigned char ch) {
  return ch >= 0x80 || isalnum(ch);
}

/* Words of 2+ characters, upper-cased, truncated to STOREFL_MAX_TOKEN_LEN bytes. */
static size_t text_tokens(const char *s, uint32_t buckets, uint32_t *out, size_t max) {
  size_t n = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p && n < max) {
    while (*p && !is_word_char(*p))
      p++;
    char w[STOREFL_MAX_TOKEN_LEN];
    size_t len = 0, full = 0;
    while (*p && is_word_char(*p)) {
      if (len < sizeof w)
        w[len++] = (char)(*p < 0x80 ? toupper(*p) : *p);
      full++;
      p++;
    }
    if (full >= 2)
      out[n++] = token_bucket('w', w, len, buckets);
  }
  return n;
}

/* A whole attribute value (category, brand) as one upper-cased, trimmed token. */
static int attr_token(char kind, const char *s, uint32_t buckets, uint32_t *out) {
  if (!s)
    return 0;
  while (*s && isspace((unsigned char)*s))
    s++;
  size_t len = strlen(s);
  while (len > 0 && isspace((unsigned char)s[len - 1]))
    len--;
  if (len == 0)
    return 0;
  if (len > STOREFL_MAX_TOKEN_LEN)
    len = STOREFL_MAX_TOKEN_LEN;
  char w[STOREFL_MAX_TOKEN_LEN];
  for (size_t i = 0; i < len; i++)
    w[i] = (char)((unsigned char)s[i] < 0x80 ? toupper((unsigned char)s[i]) : s[i]);
  *out = token_bucket(kind, w, len, buckets);
  return 1;
}

static size_t item_tokens(const storefl_item_attrs *p, uint32_t buckets, uint32_t *out, size_t max,
                          size_t *nwords) {
  size_t wmax = max > RESERVED_TOKENS ? max - RESERVED_TOKENS : 0;
  size_t n = p->text ? text_tokens(p->text, buckets, out, wmax) : 0;
  if (nwords)
    *nwords = n;
  if (n < max && attr_token('c', p->category, buckets, out + n))
    n++;
  if (n < max && attr_token('b', p->brand, buckets, out + n))
    n++;
  if (n < max && p->price > 0 && isfinite(p->price)) {
    /* Half-octave buckets: prices within ~41% of each other share a token. */
    double b = floor(2.0 * log2((double)p->price));
    if (b < -20)
      b = -20;
    if (b > 40)
      b = 40;
    char w[16];
    int len = snprintf(w, sizeof w, "%d", (int)b);
    out[n++] = token_bucket('p', w, (size_t)len, buckets);
  }
  return n;
}

size_t storefl_item_tokens(const storefl_item_attrs *p, uint32_t buckets, uint32_t *out, size_t max) {
  if (!p || !out || buckets == 0 || (buckets & (buckets - 1)) != 0)
    return 0;
  return item_tokens(p, buckets, out, max, NULL);
}

int storefl_catalog_create(uint32_t buckets, storefl_catalog **out) {
  if (!out || buckets < 16 || buckets > (1u << 24) || (buckets & (buckets - 1)) != 0)
    return STOREFL_ERR_INVALID;
  storefl_catalog *c = calloc(1, sizeof *c);
  if (!c)
    return STOREFL_ERR_NOMEM;
  c->buckets = buckets;
  *out = c;
  return STOREFL_OK;
}

void storefl_catalog_free(storefl_catalog *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++) {
    free(c->codes[i]);
    free(c->texts[i]);
  }
  free(c->codes);
  free(c->texts);
  free(c->price);
  free(c->logprice);
  free(c->first_seen);
  free(c->tok);
  free(c->ntok);
  free(c->nwords);
  free(c->idf);
  free(c->tfidf_norm);
  free(c->slots);
  free(c);
}

static size_t code_slot(const storefl_catalog *c, const char *code) {
  size_t mask = c->nslots - 1;
  size_t i = (size_t)storefl_fnv1a64(code, strlen(code)) & mask;
  while (c->slots[i] != UINT32_MAX && strcmp(c->codes[c->slots[i]], code) != 0)
    i = (i + 1) & mask;
  return i;
}

static int rehash(storefl_catalog *c, size_t nslots) {
  uint32_t *slots = malloc(nslots * sizeof *slots);
  if (!slots)
    return STOREFL_ERR_NOMEM;
  memset(slots, 0xff, nslots * sizeof *slots);
  free(c->slots);
  c->slots = slots;
  c->nslots = nslots;
  for (size_t i = 0; i < c->n; i++)
    c->slots[code_slot(c, c->codes[i])] = (uint32_t)i;
  return STOREFL_OK;
}

#define GROW(ptr, n)                                                                                         \
  do {                                                                                                       \
    void *np_ = realloc((ptr), (n) * sizeof *(ptr));                                                         \
    if (!np_)                                                                                                \
      return STOREFL_ERR_NOMEM;                                                                              \
    (ptr) = np_;                                                                                             \
  } while (0)

static int catalog_grow(storefl_catalog *c) {
  size_t cap = c->cap ? c->cap * 2 : 256;
  GROW(c->codes, cap);
  GROW(c->texts, cap);
  GROW(c->price, cap);
  GROW(c->logprice, cap);
  GROW(c->first_seen, cap);
  GROW(c->tok, cap * STOREFL_MAX_ITEM_TOKENS);
  GROW(c->ntok, cap);
  GROW(c->nwords, cap);
  c->cap = cap;
  return STOREFL_OK;
}

int storefl_catalog_add(storefl_catalog *c, const storefl_item_attrs *p, uint32_t *index) {
  if (!c || !p || !p->code || !p->text || !p->code[0] || c->finalized)
    return STOREFL_ERR_INVALID;
  if (c->n >= MAX_PRODUCTS)
    return STOREFL_ERR_TOO_LARGE;
  int rc;
  if (c->nslots < 2 * (c->n + 1) && (rc = rehash(c, c->nslots ? c->nslots * 2 : 512)) != STOREFL_OK)
    return rc;
  size_t slot = code_slot(c, p->code);
  if (c->slots[slot] != UINT32_MAX)
    return STOREFL_ERR_CONFLICT;
  if (c->n == c->cap && (rc = catalog_grow(c)) != STOREFL_OK)
    return rc;
  char *code = strdup(p->code), *text = strdup(p->text);
  if (!code || !text) {
    free(code);
    free(text);
    return STOREFL_ERR_NOMEM;
  }
  size_t i = c->n, nw = 0;
  c->codes[i] = code;
  c->texts[i] = text;
  c->price[i] = p->price;
  c->logprice[i] = (p->price > 0 && isfinite(p->price)) ? logf(p->price) : NAN;
  c->first_seen[i] = p->first_seen;
  c->ntok[i] =
      (uint8_t)item_tokens(p, c->buckets, c->tok + i * STOREFL_MAX_ITEM_TOKENS, STOREFL_MAX_ITEM_TOKENS, &nw);
  c->nwords[i] = (uint8_t)nw;
  c->slots[slot] = (uint32_t)i;
  c->n++;
  if (index)
    *index = (uint32_t)i;
  return STOREFL_OK;
}

int storefl_catalog_finalize(storefl_catalog *c) {
  if (!c)
    return STOREFL_ERR_INVALID;
  if (c->finalized)
    return STOREFL_OK;
  float *idf = calloc(c->buckets, sizeof *idf);
  float *norm = malloc((c->n ? c->n : 1) * sizeof *norm);
  uint32_t *df = calloc(c->buckets, sizeof *df);
  if (!idf || !norm || !df) {
    free(idf);
    free(norm);
    free(df);
    return STOREFL_ERR_NOMEM;
  }
  /* Document frequency counts a bucket once per product. */
  for (size_t i = 0; i < c->n; i++) {
    const uint32_t *t = c->tok + i * STOREFL_MAX_ITEM_TOKENS;
    for (size_t k = 0; k < c->nwords[i]; k++) {
      int seen = 0;
      for (size_t j = 0; j < k; j++)
        seen |= t[j] == t[k];
      if (!seen)
        df[t[k]]++;
    }
  }
  for (uint32_t b = 0; b < c->buckets; b++)
    idf[b] = (float)(log((double)(c->n + 1) / (double)(df[b] + 1)) + 1.0);
  for (size_t i = 0; i < c->n; i++) {
    /* TF-IDF vector of an item: weight idf per occurrence (so tf multiplies), norm over buckets. */
    const uint32_t *t = c->tok + i * STOREFL_MAX_ITEM_TOKENS;
    double s = 0;
    for (size_t k = 0; k < c->nwords[i]; k++) {
      int first = 1;
      for (size_t j = 0; j < k; j++)
        first &= t[j] != t[k];
      if (!first)
        continue;
      size_t tf = 0;
      for (size_t j = k; j < c->nwords[i]; j++)
        tf += t[j] == t[k];
      double w = (double)tf * idf[t[k]];
      s += w * w;
    }
    norm[i] = (float)sqrt(s);
  }
  free(df);
  c->idf = idf;
  c->tfidf_norm = norm;
  c->finalized = 1;
  return STOREFL_OK;
}

size_t storefl_catalog_size(const storefl_catalog *c) {
  return c ? c->n : 0;
}
uint32_t storefl_catalog_buckets(const storefl_catalog *c) {
  return c ? c->buckets : 0;
}

int64_t storefl_catalog_find(const storefl_catalog *c, const char *code) {
  if (!c || !code || c->nslots == 0)
    return -1;
  uint32_t i = c->slots[code_slot(c, code)];
  return i == UINT32_MAX ? -1 : (int64_t)i;
}

const char *storefl_catalog_code(const storefl_catalog *c, uint32_t i) {
  return c && i < c->n ? c->codes[i] : NULL;
}
const char *storefl_catalog_text(const storefl_catalog *c, uint32_t i) {
  return c && i < c->n ? c->texts[i] : NULL;
}
float storefl_catalog_price(const storefl_catalog *c, uint32_t i) {
  return c && i < c->n ? c->price[i] : 0.0f;
}
int64_t storefl_catalog_first_seen(const storefl_catalog *c, uint32_t i) {
  return c && i < c->n ? c->first_seen[i] : 0;
}
size_t storefl_catalog_tokens(const storefl_catalog *c, uint32_t i, const uint32_t **buckets) {
  if (!c || i >= c->n) {
    if (buckets)
      *buckets = NULL;
    return 0;
  }
  if (buckets)
    *buckets = c->tok + (size_t)i * STOREFL_MAX_ITEM_TOKENS;
  return c->ntok[i];
}

/* ---- profile ---- */

int storefl_profile_create(const storefl_catalog *c, storefl_profile **out) {
  if (!c || !out)
    return STOREFL_ERR_INVALID;
  storefl_profile *p = calloc(1, sizeof *p);
  if (!p)
    return STOREFL_ERR_NOMEM;
  p->c = c;
  *out = p;
  return STOREFL_OK;
}

static const uint32_t *occ_list(const sfl_occ *e) {
  return e->n <= 2 ? e->u.in : e->u.heap;
}

void storefl_profile_free(storefl_profile *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nmap; i++)
    if (p->map[i].item != UINT32_MAX && p->map[i].n > 2)
      free(p->map[i].u.heap);
  free(p->map);
  free(p->item);
  free(p->time);
  free(p->bstart);
  free(p);
}

static size_t map_slot(const sfl_occ *map, size_t nmap, uint32_t item) {
  size_t mask = nmap - 1;
  size_t i = (size_t)(item * 2654435761u) & mask;
  while (map[i].item != UINT32_MAX && map[i].item != item)
    i = (i + 1) & mask;
  return i;
}

static int map_grow(storefl_profile *p) {
  size_t nmap = p->nmap ? p->nmap * 2 : 64;
  sfl_occ *map = malloc(nmap * sizeof *map);
  if (!map)
    return STOREFL_ERR_NOMEM;
  for (size_t i = 0; i < nmap; i++)
    map[i].item = UINT32_MAX;
  for (size_t i = 0; i < p->nmap; i++)
    if (p->map[i].item != UINT32_MAX)
      map[map_slot(map, nmap, p->map[i].item)] = p->map[i];
  free(p->map);
  p->map = map;
  p->nmap = nmap;
  return STOREFL_OK;
}

/* Appends event index ev to an entry, moving to (or growing) the heap list when full. */
static int occ_push(sfl_occ *e, uint32_t ev) {
  if (e->n < 2) {
    e->u.in[e->n++] = ev;
    return STOREFL_OK;
  }
  if (e->n == 2) {
    uint32_t *h = malloc(4 * sizeof *h);
    if (!h)
      return STOREFL_ERR_NOMEM;
    h[0] = e->u.in[0];
    h[1] = e->u.in[1];
    e->u.heap = h;
  } else if (e->n >= 4 && (e->n & (e->n - 1)) == 0) {
    uint32_t *h = realloc(e->u.heap, 2 * (size_t)e->n * sizeof *h);
    if (!h)
      return STOREFL_ERR_NOMEM;
    e->u.heap = h;
  }
  e->u.heap[e->n++] = ev;
  return STOREFL_OK;
}

int storefl_profile_add(storefl_profile *p, uint32_t item, int64_t time, uint64_t basket) {
  if (!p || item >= p->c->n || (p->n > 0 && time < p->time[p->n - 1]))
    return STOREFL_ERR_INVALID;
  if (p->n >= MAX_EVENTS)
    return STOREFL_ERR_TOO_LARGE;
  int rc;
  if (4 * (p->mapused + 1) > 3 * p->nmap && (rc = map_grow(p)) != STOREFL_OK)
    return rc;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap + p->cap / 2 : 64;
    GROW(p->item, cap);
    GROW(p->time, cap);
    GROW(p->bstart, cap);
    p->cap = cap;
  }
  sfl_occ *e = &p->map[map_slot(p->map, p->nmap, item)];
  int fresh = e->item == UINT32_MAX;
  if (fresh) {
    e->item = item;
    e->n = 0;
  }
  size_t i = p->n;
  if ((rc = occ_push(e, (uint32_t)i)) != STOREFL_OK) {
    if (fresh)
      e->item = UINT32_MAX;
    return rc;
  }
  if (fresh)
    p->mapused++;
  p->item[i] = item;
  p->time[i] = time;
  p->bstart[i] = (i > 0 && p->last_basket == basket) ? p->bstart[i - 1] : (uint32_t)i;
  p->last_basket = basket;
  p->n++;
  return STOREFL_OK;
}

size_t storefl_profile_len(const storefl_profile *p) {
  return p ? p->n : 0;
}
uint32_t storefl_profile_item(const storefl_profile *p, size_t i) {
  return p && i < p->n ? p->item[i] : UINT32_MAX;
}
int64_t storefl_profile_time(const storefl_profile *p, size_t i) {
  return p && i < p->n ? p->time[i] : 0;
}

/* First index in the sorted times t[0..n) with t[i] >= x. */
static size_t lower_bound(const int64_t *t, size_t n, int64_t x) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (t[mid] < x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

size_t storefl_profile_before(const storefl_profile *p, int64_t t) {
  return p ? lower_bound(p->time, p->n, t) : 0;
}

uint32_t storefl_profile_count_before(const storefl_profile *p, uint32_t item, int64_t t) {
  if (!p || p->nmap == 0)
    return 0;
  const sfl_occ *e = &p->map[map_slot(p->map, p->nmap, item)];
  if (e->item == UINT32_MAX)
    return 0;
  /* Occurrences are event indices in time order: binary search on their times. */
  const uint32_t *ev = occ_list(e);
  size_t lo = 0, hi = e->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (p->time[ev[mid]] < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (uint32_t)lo;
}
