/* Per-address bound on half-open DTLS handshakes.
 *
 * libcoap 4.3.5 refuses every new ClientHello, from anyone, while more than max_handshakes sessions
 * are half-open, and a half-open session lives until its DTLS retransmissions run out (about 30 s).
 * One address opening sessions from many source ports could therefore lock every store out. This
 * registry remembers each half-open session with its source address (without the port) and, on
 * each sweep, names the sessions to drop so that no address keeps more than `per_addr` of them:
 * the flood then only ever holds per_addr of libcoap's slots and other addresses keep getting in.
 *
 * Pure bookkeeping (no libcoap here): the caller keys entries by an opaque pointer (the session),
 * tells the sweep what state each one is in, and performs the drop itself.
 * Not thread-safe (the server is single-threaded). */
#ifndef STOREFL_HS_GUARD_H
#define STOREFL_HS_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define STOREFL_HS_ADDR_MAX 16 /* IPv6 */

typedef enum storefl_hs_state {
  STOREFL_HS_HELLO,     /* before the cookie exchange: not counted, cannot be dropped (libcoap) */
  STOREFL_HS_HANDSHAKE, /* cookie verified, handshake in progress: counted and droppable */
  STOREFL_HS_DONE,      /* established (or already dying): leaves the registry */
} storefl_hs_state;

typedef struct storefl_hs_entry {
  const void *key;
  uint64_t seq;   /* insertion order: lower is older */
  uint64_t t0_ms; /* when the session appeared (caller's clock), for logs */
  uint8_t alen;
  uint8_t addr[STOREFL_HS_ADDR_MAX];
} storefl_hs_entry;

typedef struct storefl_hs_guard {
  unsigned per_addr; /* 0: no per-address limit (entries are still tracked for the logs) */
  size_t pressure;   /* the bound applies only while at least this many sessions are half-open */
  size_t max_entries;
  size_t n, cap;
  storefl_hs_entry *e;
  uint64_t next_seq;
  uint64_t dropped;   /* sessions dropped so far */
  uint64_t untracked; /* additions refused because the registry was full */
} storefl_hs_guard;

/* Initializes an empty registry holding at most max_entries entries (>= 1). No allocation yet.
 * The per-address bound is enforced only under pressure, while at least `pressure` sessions are
 * half-open (all addresses, all states; 0 = always): a handshake is never dropped while libcoap's
 * slots are far from full, so many stores behind one address (or a slow machine, where handshakes
 * take long) are not cut for nothing. */
void storefl_hs_guard_init(storefl_hs_guard *g, unsigned per_addr, size_t pressure, size_t max_entries);
void storefl_hs_guard_free(storefl_hs_guard *g);

/* Records a new half-open session. STOREFL_ERR_INVALID for alen 0 or > STOREFL_HS_ADDR_MAX;
 * STOREFL_ERR_UNAVAILABLE when max_entries are tracked (the session is then not limited: fail-open, and
 * counted in `untracked`), STOREFL_ERR_NOMEM. */
int storefl_hs_guard_add(storefl_hs_guard *g, const void *key, const uint8_t *addr, size_t alen,
                         uint64_t now_ms);
/* Forgets key (no-op if unknown). Returns 1 if it was tracked. */
int storefl_hs_guard_remove(storefl_hs_guard *g, const void *key);

/* Asks state(ctx, key) for every entry; DONE entries leave. Then, if at least `pressure` entries
 * are left, for each address with more than
 * per_addr HANDSHAKE entries, calls drop(ctx, key) on its oldest ones until it has per_addr. HELLO
 * entries (before the cookie exchange) neither count nor are dropped: libcoap cannot free them, and
 * counting them would make the guard drop the address's next genuine handshake instead. Dropped entries leave
 * the registry; drop() must not call back into the registry (the server only marks the session, libcoap frees
 * it later). Returns the number dropped; *half_open (if not NULL) gets the entries left. */
size_t storefl_hs_guard_sweep(storefl_hs_guard *g, storefl_hs_state (*state)(void *ctx, const void *key),
                              void (*drop)(void *ctx, const void *key), void *ctx, size_t *half_open);

/* Entries tracked from the same address as addr (any state). */
size_t storefl_hs_guard_count_addr(const storefl_hs_guard *g, const uint8_t *addr, size_t alen);

#endif
