/* Internal layout of the catalogue and profile, shared by features.c, model.c and train.c. */
#ifndef STOREFL_FEATURES_INTERNAL_H
#define STOREFL_FEATURES_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/features.h"

struct storefl_catalog {
  uint32_t buckets;
  int finalized;
  size_t n, cap;
  char **codes;
  char **texts;
  float *price;
  float *logprice; /* log(price), or NAN when unknown */
  int64_t *first_seen;
  /* tokens of item i: tok[i * STOREFL_MAX_ITEM_TOKENS ...], ntok[i] of them, the first nwords[i]
   * being words of the text */
  uint32_t *tok;
  uint8_t *ntok;
  uint8_t *nwords;
  /* after finalize: idf per bucket and the L2 norm of each item's TF-IDF text vector */
  float *idf;
  float *tfidf_norm;
  /* code -> index, open addressing, UINT32_MAX = empty */
  uint32_t *slots;
  size_t nslots;
};

/* Occurrences of one item in a profile: indices of its events, ascending. Most (client, item)
 * pairs occur once or twice, so up to two indices live inline and the entry is 16 bytes. */
typedef struct sfl_occ {
  uint32_t item; /* UINT32_MAX = empty slot */
  uint32_t n;    /* occurrences; n <= 2: u.in, else u.heap with capacity max(4, next power of two) */
  union {
    uint32_t in[2];
    uint32_t *heap;
  } u;
} sfl_occ;

struct storefl_profile {
  const storefl_catalog *c;
  size_t n, cap;
  uint32_t *item;
  int64_t *time;
  uint32_t *bstart; /* index of the first event of the event's basket */
  uint64_t last_basket;
  sfl_occ *map; /* item -> its events, open addressing, load <= 3/4 */
  size_t nmap, mapused;
};

#endif
