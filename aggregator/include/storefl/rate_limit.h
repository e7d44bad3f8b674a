/*
 * Per-store request rate limit: one token bucket per authenticated store identity (DTLS PSK identity
 * or certificate CN). A bucket holds up to `burst` tokens and refills at `rate` tokens per second;
 * each admitted request takes one. A store over its rate is told how long to wait, which the server
 * sends as 5.03 Service Unavailable with Max-Age (tests/hardening/test_rate_limit.sh).
 *
 * Memory is bounded: at most max_stores buckets. A bucket that has refilled completely is the same
 * as no bucket, so when the table is full those are dropped first; if every bucket is still
 * refilling (more than max_stores stores active within burst/rate seconds) a new store is refused
 * like an over-rate one: the limit fails closed rather than growing without bound.
 *
 * Not thread-safe (the CoAP server is single-threaded). Time is passed in by the caller (monotonic
 * milliseconds), which keeps the bucket arithmetic testable (tests/unit/test_rate_limit.c).
 */
#ifndef STOREFL_RATE_LIMIT_H
#define STOREFL_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct storefl_rate_limit storefl_rate_limit;

/* rate: tokens per second (> 0, finite); burst: bucket size (>= 1); max_stores: buckets kept (>= 1).
 * *out is owned by the caller (storefl_rate_limit_free). Errors: STOREFL_ERR_INVALID, NOMEM. */
int storefl_rate_limit_new(double rate, uint32_t burst, size_t max_stores, storefl_rate_limit **out);
void storefl_rate_limit_free(storefl_rate_limit *rl);

/* Takes one token from store's bucket at time now_ms (monotonic; a clock going backwards refills
 * nothing). Returns 1 if the request is admitted; 0 if not, with *retry_after_s (>= 1) the whole
 * seconds until a token will be there (the Max-Age to send). store: a NUL-terminated identity of
 * at most STOREFL_MAX_ID_LEN bytes (longer ones are refused: 0, retry_after_s = 1). */
int storefl_rate_limit_take(storefl_rate_limit *rl, const char *store, int64_t now_ms,
                            uint32_t *retry_after_s);

/* Buckets currently held (for tests and diagnostics). */
size_t storefl_rate_limit_size(const storefl_rate_limit *rl);

#endif
