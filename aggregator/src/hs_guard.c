/* Per-address bound on half-open DTLS handshakes (see hs_guard.h). */
#include "hs_guard.h"

#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"

void storefl_hs_guard_init(storefl_hs_guard *g, unsigned per_addr, size_t pressure, size_t max_entries) {
  memset(g, 0, sizeof *g);
  g->per_addr = per_addr;
  g->pressure = pressure;
  g->max_entries = max_entries ? max_entries : 1;
}

void storefl_hs_guard_free(storefl_hs_guard *g) {
  free(g->e);
  g->e = NULL;
  g->n = g->cap = 0;
}

int storefl_hs_guard_add(storefl_hs_guard *g, const void *key, const uint8_t *addr, size_t alen,
                         uint64_t now_ms) {
  if (!alen || alen > STOREFL_HS_ADDR_MAX)
    return STOREFL_ERR_INVALID;
  if (g->n >= g->max_entries) {
    g->untracked++;
    return STOREFL_ERR_UNAVAILABLE;
  }
  if (g->n == g->cap) {
    size_t nc = g->cap ? g->cap * 2 : 64;
    if (nc > g->max_entries)
      nc = g->max_entries;
    storefl_hs_entry *ne = realloc(g->e, nc * sizeof *ne);
    if (!ne)
      return STOREFL_ERR_NOMEM;
    g->e = ne;
    g->cap = nc;
  }
  storefl_hs_entry *x = &g->e[g->n++];
  memset(x, 0, sizeof *x);
  x->key = key;
  x->seq = g->next_seq++;
  x->t0_ms = now_ms;
  x->alen = (uint8_t)alen;
  memcpy(x->addr, addr, alen);
  return STOREFL_OK;
}

int storefl_hs_guard_remove(storefl_hs_guard *g, const void *key) {
  for (size_t i = 0; i < g->n; i++)
    if (g->e[i].key == key) {
      g->e[i] = g->e[--g->n]; /* order in the array is irrelevant: age is in seq */
      return 1;
    }
  return 0;
}

static int same_addr(const storefl_hs_entry *a, const uint8_t *addr, size_t alen) {
  return a->alen == alen && memcmp(a->addr, addr, alen) == 0;
}

size_t storefl_hs_guard_count_addr(const storefl_hs_guard *g, const uint8_t *addr, size_t alen) {
  size_t c = 0;
  for (size_t i = 0; i < g->n; i++)
    c += same_addr(&g->e[i], addr, alen);
  return c;
}

/* Sort key: address, then age, so that each address is one run, oldest first. */
static int cmp_entry(const void *pa, const void *pb) {
  const storefl_hs_entry *a = pa, *b = pb;
  if (a->alen != b->alen)
    return a->alen < b->alen ? -1 : 1;
  int c = memcmp(a->addr, b->addr, a->alen);
  if (c)
    return c;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

size_t storefl_hs_guard_sweep(storefl_hs_guard *g, storefl_hs_state (*state)(void *ctx, const void *key),
                              void (*drop)(void *ctx, const void *key), void *ctx, size_t *half_open) {
  /* Pass 1: forget the sessions that are no longer half-open. */
  size_t w = 0;
  for (size_t i = 0; i < g->n; i++)
    if (state(ctx, g->e[i].key) != STOREFL_HS_DONE)
      g->e[w++] = g->e[i];
  g->n = w;
  size_t dropped = 0;
  if (g->per_addr && g->n > g->per_addr && g->n >= g->pressure) {
    qsort(g->e, g->n, sizeof *g->e, cmp_entry);
    /* Pass 2: in each address's run (oldest first), drop the droppable entries beyond per_addr;
     * keep the others, compacting in place. */
    w = 0;
    for (size_t i = 0, j; i < g->n; i = j) {
      for (j = i; j < g->n && same_addr(&g->e[j], g->e[i].addr, g->e[i].alen); j++)
        ;
      /* Only cookie-verified sessions count: those before the cookie exchange cannot be dropped, so
       * counting them would only make the guard drop this address's next real handshake (an honest
       * store behind an address whose flood left hello sessions behind). */
      size_t hs = 0;
      for (size_t k = i; k < j; k++)
        hs += state(ctx, g->e[k].key) == STOREFL_HS_HANDSHAKE;
      size_t excess = hs > g->per_addr ? hs - g->per_addr : 0;
      for (size_t k = i; k < j; k++) {
        if (excess && state(ctx, g->e[k].key) == STOREFL_HS_HANDSHAKE) {
          excess--;
          drop(ctx, g->e[k].key);
          dropped++;
        } else {
          g->e[w++] = g->e[k];
        }
      }
    }
    g->n = w;
  }
  g->dropped += dropped;
  if (half_open)
    *half_open = g->n;
  return dropped;
}
