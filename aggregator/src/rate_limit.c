/* Per-store token buckets (see storefl/rate_limit.h). */
#include "storefl/rate_limit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/messages.h"

typedef struct bucket {
  char id[STOREFL_MAX_ID_LEN + 1]; /* "" = free slot */
  double tokens;
  int64_t last_ms;
} bucket;

struct storefl_rate_limit {
  double rate; /* tokens per millisecond */
  double burst;
  size_t max, n, cap; /* cap: a power of two >= 2 * max, so probes stay short */
  bucket *slots;
};

int storefl_rate_limit_new(double rate, uint32_t burst, size_t max_stores, storefl_rate_limit **out) {
  *out = NULL;
  if (!(rate > 0) || !isfinite(rate) || burst < 1 || max_stores < 1 || max_stores > ((size_t)1 << 24))
    return STOREFL_ERR_INVALID;
  storefl_rate_limit *rl = calloc(1, sizeof *rl);
  if (!rl)
    return STOREFL_ERR_NOMEM;
  rl->rate = rate / 1000.0;
  rl->burst = burst;
  rl->max = max_stores;
  rl->cap = 16;
  while (rl->cap < 2 * max_stores)
    rl->cap *= 2;
  rl->slots = calloc(rl->cap, sizeof *rl->slots);
  if (!rl->slots) {
    free(rl);
    return STOREFL_ERR_NOMEM;
  }
  *out = rl;
  return STOREFL_OK;
}

void storefl_rate_limit_free(storefl_rate_limit *rl) {
  if (!rl)
    return;
  free(rl->slots);
  free(rl);
}

size_t storefl_rate_limit_size(const storefl_rate_limit *rl) {
  return rl->n;
}

static uint64_t hash_id(const char *s) { /* FNV-1a */
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++)
    h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

/* The slot holding id, or the free slot where it would go. */
static bucket *find(storefl_rate_limit *rl, const char *id) {
  size_t i = (size_t)hash_id(id) & (rl->cap - 1);
  while (rl->slots[i].id[0] && strcmp(rl->slots[i].id, id) != 0)
    i = (i + 1) & (rl->cap - 1);
  return &rl->slots[i];
}

static void refill(const storefl_rate_limit *rl, bucket *b, int64_t now_ms) {
  if (now_ms > b->last_ms) {
    b->tokens += (double)(now_ms - b->last_ms) * rl->rate;
    if (b->tokens > rl->burst)
      b->tokens = rl->burst;
    b->last_ms = now_ms;
  }
}

/* Drops the buckets that are full again (indistinguishable from absent) by rebuilding the table;
 * linear probing has no cheap single delete. Runs only when the table is full. */
static void compact(storefl_rate_limit *rl, int64_t now_ms) {
  bucket *old = rl->slots;
  bucket *fresh = calloc(rl->cap, sizeof *fresh);
  if (!fresh)
    return; /* keep the full table: new stores are refused, which is safe */
  rl->slots = fresh;
  rl->n = 0;
  for (size_t i = 0; i < rl->cap; i++) {
    if (!old[i].id[0])
      continue;
    refill(rl, &old[i], now_ms);
    if (old[i].tokens >= rl->burst)
      continue;
    *find(rl, old[i].id) = old[i];
    rl->n++;
  }
  free(old);
}

static uint32_t wait_s(const storefl_rate_limit *rl, double tokens) {
  double ms = (1.0 - tokens) / rl->rate;
  double s = ceil(ms / 1000.0);
  if (!(s >= 1))
    return 1;
  return s > 86400 ? 86400 : (uint32_t)s;
}

int storefl_rate_limit_take(storefl_rate_limit *rl, const char *store, int64_t now_ms,
                            uint32_t *retry_after_s) {
  *retry_after_s = 1;
  size_t len = strnlen(store, STOREFL_MAX_ID_LEN + 1);
  if (len == 0 || len > STOREFL_MAX_ID_LEN)
    return 0;
  bucket *b = find(rl, store);
  if (!b->id[0]) {
    if (rl->n >= rl->max) {
      compact(rl, now_ms);
      if (rl->n >= rl->max) {
        /* Every tracked store is still refilling: the soonest a slot frees is when the fullest
         * bucket tops up; one token's wait is a fair hint. */
        *retry_after_s = wait_s(rl, 0);
        return 0;
      }
      b = find(rl, store);
    }
    memcpy(b->id, store, len + 1);
    b->tokens = rl->burst;
    b->last_ms = now_ms;
    rl->n++;
  }
  refill(rl, b, now_ms);
  if (b->tokens >= 1.0) {
    b->tokens -= 1.0;
    return 1;
  }
  *retry_after_s = wait_s(rl, b->tokens);
  return 0;
}
