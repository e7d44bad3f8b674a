/*
 * Features of the default wide & deep model (docs/model.md): hashed product attributes, the store's
 * catalogue, and a client's interaction profile.
 *
 * Everything here is in memory and independent of SQLite, so that the agent (whose store fills a
 * catalogue and a profile from its database) and the evaluation (which fills them from a CSV export)
 * share the same code.
 *
 * Hashing. A product is the bag of its attribute tokens: upper-cased alphanumeric words of the
 * name/description ("w:" prefix), the category ("c:"), the supplier or brand ("b:"), and a
 * half-octave price bucket ("p:" + floor(2*log2(price)), clamped to [-20, 40]). Each token string
 * "<kind>:<TOKEN>" is hashed with 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3)
 * and mapped to bucket hash & (B - 1). A product never sold still has tokens, hence a vector.
 *
 * Ownership: create/free pairs; a catalogue must outlive every profile and model call using it.
 */
#ifndef STOREFL_FEATURES_H
#define STOREFL_FEATURES_H
#include <stddef.h>
#include <stdint.h>

/* Words and tokens kept per product (more are ignored, which bounds work per product). */
#define STOREFL_MAX_ITEM_TOKENS 24
#define STOREFL_MAX_TOKEN_LEN 48

/* Wide (hand-made) features per (context, product) pair, in this order:
 *   0 TF-IDF cosine of the history+basket text to the product text
 *   1 TF-IDF cosine of the basket text alone to the product text
 *   2 log(product price / client's usual price): usual = geometric mean over the history (0 if none)
 *   3 |feature 2|
 *   4 recency of launch: 1 / (1 + age_days / 7), age = query time - first_seen (0 if not launched)
 *   5 early sales in this store: log(1 + purchases of the product by this client before the query) */
#define STOREFL_WIDE_FEATURES 6

/* 64-bit FNV-1a of len bytes. */
uint64_t storefl_fnv1a64(const void *data, size_t len);

typedef struct storefl_catalog storefl_catalog;

/* A product's attributes as the model sees them (named apart from storefl_agent.h's storefl_product,
 * the store's record, so that agent code can include both). Strings are NUL-terminated; category and brand
 * may be NULL. */
typedef struct storefl_item_attrs {
  const char *code;     /* the store's product code (copied; used by lookups) */
  const char *text;     /* name or description */
  const char *category; /* optional */
  const char *brand;    /* optional: brand or supplier */
  float price;          /* unit price (> 0 for a price token; <= 0 means unknown) */
  int64_t first_seen;   /* unix seconds of launch (first sale or listing) */
} storefl_item_attrs;

/* Creates an empty catalogue hashing into `buckets` buckets (a power of two, 2^4..2^24).
 * Errors: STOREFL_ERR_INVALID, STOREFL_ERR_NOMEM. */
int storefl_catalog_create(uint32_t buckets, storefl_catalog **out);
void storefl_catalog_free(storefl_catalog *c);

/* Adds a product; its index (0, 1, 2, ... in order of addition) goes to *index if not NULL.
 * A code already present is STOREFL_ERR_CONFLICT. Not allowed after storefl_catalog_finalize().
 * Errors: STOREFL_ERR_INVALID (NULL code/text, empty code, finalized), STOREFL_ERR_CONFLICT,
 * STOREFL_ERR_TOO_LARGE (more than 2^24 products), STOREFL_ERR_NOMEM. */
int storefl_catalog_add(storefl_catalog *c, const storefl_item_attrs *p, uint32_t *index);

/* Computes the inverse document frequencies of text tokens over the catalogue (the catalogue is
 * public, so its statistics are too). Required before any feature or model call. */
int storefl_catalog_finalize(storefl_catalog *c);

size_t storefl_catalog_size(const storefl_catalog *c);
uint32_t storefl_catalog_buckets(const storefl_catalog *c);
/* Index of a code, or -1 if absent (hash lookup, O(1)). */
int64_t storefl_catalog_find(const storefl_catalog *c, const char *code);
/* Accessors for product i < size (NULL / 0 when out of range). Strings live as long as the catalogue. */
const char *storefl_catalog_code(const storefl_catalog *c, uint32_t i);
const char *storefl_catalog_text(const storefl_catalog *c, uint32_t i);
float storefl_catalog_price(const storefl_catalog *c, uint32_t i);
int64_t storefl_catalog_first_seen(const storefl_catalog *c, uint32_t i);
/* Hashed tokens (bucket ids) of product i: returns their count, *buckets points into the catalogue. */
size_t storefl_catalog_tokens(const storefl_catalog *c, uint32_t i, const uint32_t **buckets);

/* Tokenises a product like the catalogue does, writing at most max bucket ids; returns the count.
 * Exposed for tests and documentation of the hashing. */
size_t storefl_item_tokens(const storefl_item_attrs *p, uint32_t buckets, uint32_t *out, size_t max);

/* A client's purchase history: events appended in non-decreasing time. Events of one basket
 * (invoice) must be appended contiguously; the basket id only separates consecutive baskets. */
typedef struct storefl_profile storefl_profile;

int storefl_profile_create(const storefl_catalog *c, storefl_profile **out);
void storefl_profile_free(storefl_profile *p);
/* Errors: STOREFL_ERR_INVALID (item out of range, time going backwards), STOREFL_ERR_NOMEM,
 * STOREFL_ERR_TOO_LARGE (more than 2^31 events). */
int storefl_profile_add(storefl_profile *p, uint32_t item, int64_t time, uint64_t basket);
size_t storefl_profile_len(const storefl_profile *p);
/* Item, time and basket of event i < len. */
uint32_t storefl_profile_item(const storefl_profile *p, size_t i);
int64_t storefl_profile_time(const storefl_profile *p, size_t i);
/* Number of events with time < t (the history visible at time t). */
size_t storefl_profile_before(const storefl_profile *p, int64_t t);
/* Purchases of item by this client with time < t. */
uint32_t storefl_profile_count_before(const storefl_profile *p, uint32_t item, int64_t t);

/* What a score is asked for: a client (profile, may be NULL for an anonymous shopper), the current
 * basket (catalogue indices, may be empty) and the time. History = the last `history` events of the
 * profile strictly before `time`. */
typedef struct storefl_query {
  const storefl_profile *profile;
  const uint32_t *basket;
  size_t n_basket;
  int64_t time;
  uint32_t history; /* 0 -> 32 */
} storefl_query;

#endif
