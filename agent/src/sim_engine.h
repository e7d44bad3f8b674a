/*
 * Many agents in one process: one libcoap client context holding one DTLS session per simulated
 * store (its own PSK identity and key), driven by a single-threaded event loop. Used by the load
 * generator (bench/bench_load.c) and the scale campaign (storefl-agent simulate) against the real
 * `storefl-aggregator serve`.
 *
 * Requests go out in "waves": a list of agents that each make one request (GET round, POST update,
 * ...). At most max_inflight requests (and max_handshakes handshakes) are in progress at once; a
 * request body is produced by the caller's callback only when its agent's turn comes and is freed
 * as soon as the exchange is over, so memory is bounded by max_inflight bodies, not by the number
 * of agents. The same body is re-sent on retry (5.03 after its Max-Age, 4.08, a timeout or a lost
 * session: the session is re-established), exactly as the outbox of a real agent does, so an update
 * is counted at most once by the aggregator's (store, round) receipt logic.
 *
 * All functions return 0 or a negative storefl_err. Nothing here prints except SFL_DEBUG/WARN logs.
 */
#ifndef STOREFL_SIM_ENGINE_H
#define STOREFL_SIM_ENGINE_H

#include <coap3/coap.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "storefl/transport.h"

typedef struct storefl_sim storefl_sim;

typedef struct storefl_sim_opts {
  const char *host;        /* NULL -> 127.0.0.1 */
  uint16_t port;           /* 0 -> 5684 */
  unsigned max_handshakes; /* DTLS handshakes in progress at once, 0 -> 32 */
  unsigned block_size;     /* 16..1024, 0 -> 1024 */
  int q_block;             /* try RFC 9177 Q-Block (CON, lock-step) like the agent's default */
  uint32_t timeout_ms;     /* per attempt (handshake or request), 0 -> 60000 */
  unsigned max_attempts;   /* per request, 0 -> 8 */
  size_t max_response;     /* bytes, 0 -> 64 MiB */
} storefl_sim_opts;

/* Creates the engine and its libcoap context. *out is owned by the caller (storefl_sim_free()). */
int storefl_sim_create(const storefl_sim_opts *o, storefl_sim **out, char *err, size_t errlen);
/* Frees every session, the context and the engine (keys are wiped). */
void storefl_sim_free(storefl_sim *s);

/* Adds an agent (no network activity yet). The id must be a valid store id; the key 16..64 bytes
 * (copied). *index (may be NULL) receives its index (0, 1, ... in order of addition).
 * Errors: STOREFL_ERR_INVALID, STOREFL_ERR_NOMEM. */
int storefl_sim_add_agent(storefl_sim *s, const char *store_id, const uint8_t *key, size_t keylen,
                          size_t *index);
size_t storefl_sim_count(const storefl_sim *s);
const char *storefl_sim_agent_id(const storefl_sim *s, size_t i);

/* Per-agent measurements (monotonic milliseconds). */
typedef struct storefl_sim_stats {
  double handshake_ms; /* last completed handshake, 0 if none */
  unsigned handshakes; /* completed handshakes (more than 1: the session was lost and re-made) */
  unsigned handshake_failures;
  uint64_t body_up, body_down; /* CoAP payload bytes sent (request bodies) and received */
} storefl_sim_stats;
const storefl_sim_stats *storefl_sim_agent_stats(const storefl_sim *s, size_t i);

/* Establishes the DTLS sessions of agents[0..n) (all agents if agents is NULL), at most
 * max_handshakes at a time, retrying a failed handshake up to max_attempts times. *ok receives
 * how many agents hold an established session. Returns 0 even if some failed (see *ok). */
int storefl_sim_connect(storefl_sim *s, const size_t *agents, size_t n, size_t *ok);

/* Closes agent i's session (a DTLS close_notify; the aggregator frees its side), e.g. after the
 * agent's part of a round so that idle stores hold no session on either end. The next request of
 * the agent makes a new handshake. */
void storefl_sim_disconnect(storefl_sim *s, size_t i);

/* Negotiated cipher suite of agent i's session ("none" without one). */
const char *storefl_sim_agent_cipher(const storefl_sim *s, size_t i);

/* Sessions currently established. */
size_t storefl_sim_connected(const storefl_sim *s);

/* Outcome of one agent's request, given to the done callback. */
typedef struct storefl_sim_result {
  int rc;                       /* 0: resp holds the final CoAP answer; < 0: transport failure */
  const storefl_response *resp; /* valid during the callback only (NULL if rc < 0) */
  double latency_ms;            /* first byte of the final attempt to its complete response */
  double total_ms;              /* from the first attempt's first byte (includes retries) */
  unsigned attempts;
} storefl_sim_result;

/* One request per agent. body (NULL for no body) is called once, when the agent's turn comes:
 * it returns a malloc'd body (in body and len) that the engine frees (0), STOREFL_ERR_NOT_FOUND to skip
 * this agent (done is not called), or another error (done is called with that rc). */
typedef struct storefl_sim_req {
  coap_pdu_code_t method;
  const char *path;   /* "v1/update" */
  int content_format; /* -1 for none */
  int (*body)(void *arg, size_t agent, uint8_t **body, size_t *len);
  void (*done)(void *arg, size_t agent, const storefl_sim_result *r);
  void *arg;
  unsigned max_inflight;       /* requests in progress at once (and so bodies held), 0 -> 32 */
  volatile sig_atomic_t *stop; /* optional: when it becomes non-zero (a signal handler), the wave is
                                  abandoned (STOREFL_ERR_UNAVAILABLE; done is not called again) */
} storefl_sim_req;

/* Runs one wave: every agent of agents[0..n) makes the request; returns when all are done.
 * Errors: STOREFL_ERR_NOMEM, STOREFL_ERR_UNAVAILABLE (stopped); individual failures go to done. */
int storefl_sim_wave(storefl_sim *s, const size_t *agents, size_t n, const storefl_sim_req *req);

/* One blocking request on agent i's session (e.g. GET v1/model once for all agents of the process).
 * resp is owned by the caller (storefl_response_free()). */
int storefl_sim_request(storefl_sim *s, size_t i, coap_pdu_code_t method, const char *path,
                        int content_format, const uint8_t *body, size_t len, storefl_response *resp);

/* Monotonic milliseconds. */
double storefl_sim_now_ms(void);

#endif
