/*
 * The aggregator's CoAP/DTLS front end: resources /v1/model, /v1/round, /v1/update, /v1/status on
 * libcoap, block-wise transfers (Block1/Block2, Q-Block where the client supports it), Observe,
 * bounded upload buffers, bounded and expiring sessions. It only moves bytes: every answer comes
 * from a storefl_server_service (the aggregator's service logic, see cmd_serve.c), and the store
 * identity passed to it is the DTLS identity (PSK identity or certificate CN), never anything from
 * a body.
 *
 * Single-threaded: storefl_server_run() drives libcoap's I/O and the service's tick from one thread.
 */
#ifndef STOREFL_COAP_SERVER_H
#define STOREFL_COAP_SERVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "storefl/transport.h"

/* One answer of the service. body stays valid until release(owner) is called (for a model this may
 * be long after the handler returned: Block2 keeps serving it). release may be NULL. */
typedef struct storefl_server_reply {
  int coap_code;       /* class*100 + detail */
  const uint8_t *body; /* CBOR; NULL when empty */
  size_t len;
  int has_etag;
  uint8_t etag[STOREFL_ETAG_LEN]; /* model: the first 8 bytes of its digest */
  uint32_t max_age_s;             /* 0 = none */
  void (*release)(void *owner);
  void *owner;
} storefl_server_reply;

enum { STOREFL_SERVER_CHANGED_ROUND = 1u, STOREFL_SERVER_CHANGED_MODEL = 2u };

typedef struct storefl_server_service {
  void *ctx;
  int (*model)(void *ctx, storefl_server_reply *r);
  int (*round)(void *ctx, storefl_server_reply *r);
  int (*status)(void *ctx, uint32_t sessions, storefl_server_reply *r);
  /* identity: authenticated store id. content_format: -1 if absent. */
  int (*update)(void *ctx, const char *identity, int content_format, const uint8_t *body, size_t len,
                storefl_server_reply *r);
  /* Periodic work (round deadlines). May be NULL. */
  void (*tick)(void *ctx);
} storefl_server_service;

#define STOREFL_SERVER_HS_PER_ADDR_DEFAULT 8u
#define STOREFL_SERVER_NO_LIMIT 0xffffffffu

typedef struct storefl_server_opts {
  const char *host; /* listen address, NULL -> 127.0.0.1 */
  uint16_t port;    /* 0 -> 5684 */
  storefl_dtls_server_opts dtls;
  int insecure_dev;          /* plaintext CoAP instead of DTLS; identity from the "store=" URI query */
  uint64_t max_upload_bytes; /* POST bodies over this get 4.13 (checked on the first block) */
  unsigned max_sessions;     /* idle sessions kept, 0 -> 1024 */
  unsigned idle_timeout_s;   /* idle sessions expire after this, 0 -> 120 */
  unsigned max_handshakes;   /* concurrent handshakes, 0 -> 128 */
  unsigned max_uploads;      /* block-wise uploads in progress at once, 0 -> 64; beyond: 5.03 */
  unsigned busy_max_age_s;   /* Max-Age of that 5.03 (when to retry), 0 -> 5 */
  /* Per-store request rate (token bucket per DTLS identity, storefl/rate_limit.h): requests per
   * second and bucket size. Over it a request gets 5.03 with Max-Age = the wait for the next token
   * (and reason "rate_limited"). Counted: GET /v1/model, /v1/round, /v1/status and each upload
   * attempt (its first block); not Observe notifications nor the later blocks of an upload.
   * store_rate 0 = no limit; store_burst 0 -> 100. */
  double store_rate;
  unsigned store_burst;
  unsigned block_size;    /* max block size, 0 -> 1024 */
  int no_q_block;         /* 1: do not offer RFC 9177 Q-Block (benchmark "before") */
  unsigned q_block_burst; /* Q-Block2 MAX_PAYLOADS before pacing, 0 -> libcoap's 10 */
  unsigned tick_ms;       /* service tick period, 0 -> 1000 */
  /* Half-open handshakes one source address (any port) may hold; beyond, its oldest cookie-verified
   * ones are dropped so that it cannot fill max_handshakes and lock the others out.
   * 0 -> STOREFL_SERVER_HS_PER_ADDR_DEFAULT; STOREFL_SERVER_NO_LIMIT -> no per-address bound. */
  unsigned max_handshakes_per_addr;
} storefl_server_opts;

typedef struct storefl_server storefl_server;

/* Binds the endpoint and registers the resources. svc is copied. Errors: STOREFL_ERR_INVALID,
 * STOREFL_ERR_IO (cannot bind), STOREFL_ERR_CRYPTO, STOREFL_ERR_NOMEM. */
int storefl_server_open(const storefl_server_opts *opts, const storefl_server_service *svc,
                        storefl_server **out, char *err, size_t errlen);
/* Runs until *stop becomes non-zero (set it from a signal handler); returns 0 or STOREFL_ERR_IO. */
int storefl_server_run(storefl_server *s, volatile sig_atomic_t *stop);
/* One iteration of storefl_server_run(): handles the datagrams and timers that are due, waiting at
 * most timeout_ms for something to happen (0: not at all), then the service's tick if its period
 * has passed and pending Observe notifications. For callers that drive their own loop (the
 * in-process request fuzzer, tests/fuzz/fuzz_coap_server.c). Returns 0 or STOREFL_ERR_IO. */
int storefl_server_step(storefl_server *s, unsigned timeout_ms);
/* Marks resources as changed: Observe notifications go out from the run loop. Safe to call from
 * inside a service callback. */
void storefl_server_notify(storefl_server *s, unsigned changed);
/* Live sessions (for /v1/status). */
uint32_t storefl_server_sessions(const storefl_server *s);
void storefl_server_close(storefl_server *s);

#endif
