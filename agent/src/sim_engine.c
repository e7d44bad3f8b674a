/* Many agents in one process over one libcoap context (see sim_engine.h). */
#include "sim_engine.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/log.h"

/* A request body shared between the wave slot and libcoap's block-wise transmit state: libcoap may
 * release its reference after the slot is done (or before), so the bytes live until both are. */
typedef struct sim_body {
  uint8_t *data;
  size_t len;
  int refs;
} sim_body;

static void body_unref(sim_body *b) {
  if (b && --b->refs == 0) {
    free(b->data);
    free(b);
  }
}

static void body_release(coap_session_t *session, void *app_ptr) {
  (void)session;
  body_unref(app_ptr);
}

enum { SES_NONE = 0, SES_HANDSHAKE, SES_READY, SES_FAILED };

typedef struct sim_agent {
  char id[STOREFL_MAX_ID_LEN + 1];
  uint8_t key[STOREFL_PSK_MAX_KEY];
  size_t keylen;
  coap_session_t *session;
  int ses;         /* SES_* */
  double hs_start; /* ms */
  /* The request in flight on this session (one at a time per agent). */
  uint8_t token[8];
  size_t token_len;
  int waiting, got;
  int resp_rc;
  storefl_response resp;
  storefl_sim_stats st;
} sim_agent;

struct storefl_sim {
  coap_context_t *ctx;
  coap_address_t dst;
  storefl_sim_opts o;
  sim_agent *a;
  size_t n, cap;
};

double storefl_sim_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static sim_agent *agent_of(coap_session_t *session) {
  return coap_session_get_app_data(session);
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *received, const coap_mid_t mid) {
  (void)sent;
  (void)mid;
  sim_agent *a = agent_of(session);
  if (!a || !a->waiting || a->got)
    return COAP_RESPONSE_OK;
  coap_bin_const_t tok = coap_pdu_get_token(received);
  if (tok.length != a->token_len || memcmp(tok.s, a->token, tok.length) != 0)
    return COAP_RESPONSE_OK; /* late answer to an abandoned attempt */
  storefl_sim *s = coap_context_get_app_data(coap_session_get_context(session));
  a->resp_rc = storefl_response_from_pdu(received, s->o.max_response, &a->resp);
  a->got = 1;
  return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent, const coap_nack_reason_t reason,
                    const coap_mid_t mid) {
  (void)sent;
  (void)mid;
  sim_agent *a = agent_of(session);
  if (!a)
    return;
  SFL_DEBUG("sim", "%s: NACK %d", a->id, (int)reason);
  a->ses = SES_FAILED;
}

static int on_event(coap_session_t *session, const coap_event_t event) {
  sim_agent *a = session ? agent_of(session) : NULL;
  if (!a)
    return 0;
  switch (event) {
  case COAP_EVENT_DTLS_CONNECTED:
  case COAP_EVENT_SESSION_CONNECTED:
    if (a->ses == SES_HANDSHAKE)
      a->ses = SES_READY;
    break;
  case COAP_EVENT_DTLS_ERROR:
  case COAP_EVENT_DTLS_CLOSED:
  case COAP_EVENT_SESSION_CLOSED:
  case COAP_EVENT_SESSION_FAILED:
    a->ses = SES_FAILED;
    break;
  default:
    break;
  }
  return 0;
}

int storefl_sim_create(const storefl_sim_opts *o, storefl_sim **out, char *err, size_t errlen) {
  *out = NULL;
  storefl_transport_init();
  storefl_sim *s = calloc(1, sizeof *s);
  if (!s)
    return STOREFL_ERR_NOMEM;
  s->o = *o;
  if (!s->o.port)
    s->o.port = STOREFL_COAP_DEFAULT_PORT;
  if (!s->o.max_handshakes)
    s->o.max_handshakes = 32;
  if (!s->o.block_size)
    s->o.block_size = 1024;
  if (!s->o.timeout_ms)
    s->o.timeout_ms = 60000;
  if (!s->o.max_attempts)
    s->o.max_attempts = 8;
  if (!s->o.max_response)
    s->o.max_response = (size_t)64 << 20;
  /* Loopback load generation: numeric addresses only (no resolver in the event loop). */
  const char *host = s->o.host ? s->o.host : "127.0.0.1";
  coap_address_init(&s->dst);
  struct sockaddr_in *v4 = &s->dst.addr.sin;
  struct sockaddr_in6 *v6 = &s->dst.addr.sin6;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(s->o.port);
    s->dst.size = sizeof *v4;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(s->o.port);
    s->dst.size = sizeof *v6;
  } else {
    snprintf(err, errlen, "'%s' is not a numeric IPv4/IPv6 address", host);
    free(s);
    return STOREFL_ERR_INVALID;
  }
  s->o.host = NULL; /* not kept: the caller's string */
  s->ctx = coap_new_context(NULL);
  if (!s->ctx) {
    free(s);
    return STOREFL_ERR_NOMEM;
  }
  coap_context_set_app_data(s->ctx, s);
  coap_context_set_block_mode(s->ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY |
                                          (s->o.q_block ? COAP_BLOCK_TRY_Q_BLOCK : 0));
  if (!coap_context_set_max_block_size(s->ctx, s->o.block_size)) {
    snprintf(err, errlen, "invalid block size %u", s->o.block_size);
    storefl_sim_free(s);
    return STOREFL_ERR_INVALID;
  }
  coap_register_response_handler(s->ctx, on_response);
  coap_register_nack_handler(s->ctx, on_nack);
  coap_register_event_handler(s->ctx, on_event);
  *out = s;
  return STOREFL_OK;
}

static void drop_session(sim_agent *a) {
  if (a->session) {
    coap_session_set_app_data(a->session, NULL);
    coap_session_release(a->session);
  }
  a->session = NULL;
  a->ses = SES_NONE;
  a->waiting = a->got = 0;
  storefl_response_free(&a->resp);
}

void storefl_sim_free(storefl_sim *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++) {
    drop_session(&s->a[i]);
    memset(s->a[i].key, 0, sizeof s->a[i].key);
  }
  if (s->ctx)
    coap_free_context(s->ctx);
  free(s->a);
  free(s);
}

int storefl_sim_add_agent(storefl_sim *s, const char *store_id, const uint8_t *key, size_t keylen,
                          size_t *index) {
  size_t idl = strlen(store_id);
  if (!storefl_store_id_valid(store_id, idl) || idl > STOREFL_MAX_ID_LEN || keylen < STOREFL_PSK_MIN_KEY ||
      keylen > STOREFL_PSK_MAX_KEY)
    return STOREFL_ERR_INVALID;
  if (s->n == s->cap) {
    size_t nc = s->cap ? s->cap * 2 : 64;
    sim_agent *na = realloc(s->a, nc * sizeof *na);
    if (!na)
      return STOREFL_ERR_NOMEM;
    /* Sessions point at their agent (app data): re-point them after the move. */
    for (size_t i = 0; i < s->n; i++)
      if (na[i].session)
        coap_session_set_app_data(na[i].session, &na[i]);
    s->a = na;
    s->cap = nc;
  }
  sim_agent *a = &s->a[s->n];
  memset(a, 0, sizeof *a);
  memcpy(a->id, store_id, idl + 1);
  memcpy(a->key, key, keylen);
  a->keylen = keylen;
  if (index)
    *index = s->n;
  s->n++;
  return STOREFL_OK;
}

size_t storefl_sim_count(const storefl_sim *s) {
  return s->n;
}

const char *storefl_sim_agent_id(const storefl_sim *s, size_t i) {
  return i < s->n ? s->a[i].id : NULL;
}

const storefl_sim_stats *storefl_sim_agent_stats(const storefl_sim *s, size_t i) {
  return i < s->n ? &s->a[i].st : NULL;
}

void storefl_sim_disconnect(storefl_sim *s, size_t i) {
  if (i < s->n)
    drop_session(&s->a[i]);
}

const char *storefl_sim_agent_cipher(const storefl_sim *s, size_t i) {
  return i < s->n && s->a[i].session ? storefl_transport_session_cipher(s->a[i].session) : "none";
}

size_t storefl_sim_connected(const storefl_sim *s) {
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    k += s->a[i].ses == SES_READY;
  return k;
}

/* Starts a DTLS handshake for agent a (a fresh session). */
static int start_handshake(storefl_sim *s, sim_agent *a) {
  drop_session(a);
  coap_dtls_cpsk_t cpsk;
  memset(&cpsk, 0, sizeof cpsk);
  cpsk.version = COAP_DTLS_CPSK_SETUP_VERSION;
  cpsk.psk_info.identity.s = (const uint8_t *)a->id;
  cpsk.psk_info.identity.length = strlen(a->id);
  cpsk.psk_info.key.s = a->key;
  cpsk.psk_info.key.length = a->keylen;
  a->hs_start = storefl_sim_now_ms();
  a->ses = SES_HANDSHAKE;
  /* The session's app data must be set before the first event can be delivered: libcoap may call
   * the event handler from inside coap_new_client_session_psk2 only for immediate failures, which
   * then show as a NULL session here. */
  a->session = coap_new_client_session_psk2(s->ctx, NULL, &s->dst, COAP_PROTO_DTLS, &cpsk);
  if (!a->session) {
    a->ses = SES_FAILED;
    return STOREFL_ERR_UNAVAILABLE;
  }
  coap_session_set_app_data(a->session, a);
  storefl_transport_client_narrow(a->session, 1);
  return STOREFL_OK;
}

/* Advances a handshaking agent: READY (with the handshake time recorded), FAILED or still going. */
static void check_handshake(storefl_sim *s, sim_agent *a, double now) {
  if (a->ses == SES_HANDSHAKE && a->session &&
      coap_session_get_state(a->session) == COAP_SESSION_STATE_ESTABLISHED)
    a->ses = SES_READY; /* DTLS_CONNECTED is not always delivered (docs/network.md) */
  if (a->ses == SES_READY && a->hs_start > 0) {
    a->st.handshake_ms = now - a->hs_start;
    a->st.handshakes++;
    a->hs_start = 0;
  } else if (a->ses == SES_HANDSHAKE && now - a->hs_start > s->o.timeout_ms) {
    a->ses = SES_FAILED;
  }
  if (a->ses == SES_FAILED && a->hs_start > 0) {
    a->st.handshake_failures++;
    a->hs_start = 0;
  }
}

static void io(storefl_sim *s, uint32_t ms) {
  if (coap_io_process(s->ctx, ms) < 0)
    SFL_WARN("sim", "coap_io_process failed");
}

int storefl_sim_connect(storefl_sim *s, const size_t *agents, size_t n, size_t *ok) {
  if (!agents)
    n = s->n;
  size_t next = 0, inflight = 0, done = 0;
  size_t *fly = calloc(s->o.max_handshakes, sizeof *fly);
  unsigned *tries = calloc(n ? n : 1, sizeof *tries);
  size_t *pos = calloc(s->o.max_handshakes, sizeof *pos);
  if (!fly || !tries || !pos) {
    free(fly);
    free(tries);
    free(pos);
    return STOREFL_ERR_NOMEM;
  }
  while (done < n) {
    while (inflight < s->o.max_handshakes && next < n) {
      size_t i = agents ? agents[next] : next;
      if (i >= s->n) {
        next++;
        done++;
        continue;
      }
      tries[next]++;
      (void)start_handshake(s, &s->a[i]); /* a NULL session shows as FAILED below */
      fly[inflight] = i;
      pos[inflight] = next;
      inflight++;
      next++;
    }
    io(s, 5);
    double now = storefl_sim_now_ms();
    for (size_t k = 0; k < inflight;) {
      sim_agent *a = &s->a[fly[k]];
      check_handshake(s, a, now);
      if (a->ses == SES_HANDSHAKE) {
        k++;
        continue;
      }
      if (a->ses == SES_FAILED && tries[pos[k]] < s->o.max_attempts) {
        tries[pos[k]]++;
        SFL_DEBUG("sim", "%s: handshake failed; again", a->id);
        (void)start_handshake(s, a);
        k++;
        continue;
      }
      if (a->ses == SES_FAILED)
        SFL_WARN("sim", "%s: no DTLS session after %u attempts", a->id, tries[pos[k]]);
      fly[k] = fly[inflight - 1];
      pos[k] = pos[inflight - 1];
      inflight--;
      done++;
    }
  }
  free(fly);
  free(tries);
  free(pos);
  if (ok)
    *ok = storefl_sim_connected(s);
  return STOREFL_OK;
}

/* ---- requests --------------------------------------------------------------------------------- */

/* Sends one attempt of a request on a READY session. The body (if any) gains a reference held by
 * libcoap until it releases it. */
static int send_on(storefl_sim *s, sim_agent *a, coap_pdu_code_t method, const char *path, int cf,
                   sim_body *b) {
  (void)s;
  coap_pdu_t *pdu = coap_pdu_init(COAP_MESSAGE_CON, method, coap_new_message_id(a->session),
                                  coap_session_max_pdu_size(a->session));
  if (!pdu)
    return STOREFL_ERR_NOMEM;
  coap_session_new_token(a->session, &a->token_len, a->token);
  uint8_t buf[8];
  int ok = coap_add_token(pdu, a->token_len, a->token) && storefl_pdu_add_uri_path(pdu, path) == 0;
  if (ok && cf >= 0)
    ok = coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT, coap_encode_var_safe(buf, sizeof buf, (unsigned)cf),
                         buf) != 0;
  if (ok && b && b->len) {
    b->refs++; /* libcoap's reference: released through body_release, also on failure */
    ok = coap_add_data_large_request(a->session, pdu, b->len, b->data, body_release, b);
  }
  if (!ok) {
    coap_delete_pdu(pdu);
    return STOREFL_ERR_INTERNAL;
  }
  storefl_response_free(&a->resp);
  a->waiting = 1;
  a->got = 0;
  a->resp_rc = 0;
  if (coap_send(a->session, pdu) == COAP_INVALID_MID) {
    a->waiting = 0;
    return STOREFL_ERR_UNAVAILABLE;
  }
  if (b)
    a->st.body_up += b->len;
  return STOREFL_OK;
}

typedef struct slot {
  size_t agent;
  sim_body *body;
  unsigned attempts;
  double first_ms, start_ms, not_before;
  int sent; /* the current attempt's request is out */
} slot;

static unsigned max_age_of(const storefl_response *r) {
  storefl_error_msg e;
  if (r->len && storefl_error_decode(r->body, r->len, r->len, &e) == 0 && e.max_age_s > 0)
    return e.max_age_s > 30 ? 30 : e.max_age_s;
  return 1;
}

int storefl_sim_wave(storefl_sim *s, const size_t *agents, size_t n, const storefl_sim_req *req) {
  unsigned maxf = req->max_inflight ? req->max_inflight : 32;
  slot *fly = calloc(maxf, sizeof *fly);
  if (!fly)
    return STOREFL_ERR_NOMEM;
  size_t next = 0, inflight = 0, done = 0, handshaking = 0;
  while (done < n) {
    if (req->stop && *req->stop) {
      /* Abandoned: the in-flight exchanges are dropped with their sessions (the bodies stay in the
       * callers' outboxes, as an agent stopped mid-upload keeps them). */
      for (size_t k = 0; k < inflight; k++) {
        drop_session(&s->a[fly[k].agent]);
        body_unref(fly[k].body);
      }
      free(fly);
      return STOREFL_ERR_UNAVAILABLE;
    }
    /* Fill free slots: the body is produced only now, so at most maxf bodies exist. */
    while (inflight < maxf && next < n) {
      size_t i = agents[next++];
      if (i >= s->n) {
        done++;
        continue;
      }
      slot *sl = &fly[inflight];
      memset(sl, 0, sizeof *sl);
      sl->agent = i;
      if (req->body) {
        uint8_t *data = NULL;
        size_t len = 0;
        int rc = req->body(req->arg, i, &data, &len);
        if (rc == STOREFL_ERR_NOT_FOUND) {
          done++;
          continue;
        }
        if (rc == 0) {
          sl->body = calloc(1, sizeof *sl->body);
          if (!sl->body) {
            free(data);
            rc = STOREFL_ERR_NOMEM;
          } else {
            sl->body->data = data;
            sl->body->len = len;
            sl->body->refs = 1;
          }
        }
        if (rc) {
          storefl_sim_result r = {rc, NULL, 0, 0, 0};
          if (req->done)
            req->done(req->arg, i, &r);
          done++;
          continue;
        }
      }
      inflight++;
    }
    io(s, 2);
    double now = storefl_sim_now_ms();
    for (size_t k = 0; k < inflight;) {
      slot *sl = &fly[k];
      sim_agent *a = &s->a[sl->agent];
      int finished = 0;
      storefl_sim_result r = {0, NULL, 0, 0, sl->attempts};
      if (!sl->sent) {
        if (now < sl->not_before) {
          k++;
          continue;
        }
        if (a->ses == SES_HANDSHAKE) {
          check_handshake(s, a, now);
          if (a->ses != SES_HANDSHAKE && handshaking)
            handshaking--;
        }
        if (a->ses == SES_NONE || a->ses == SES_FAILED) {
          if (handshaking >= s->o.max_handshakes) {
            k++;
            continue;
          }
          if (sl->attempts >= s->o.max_attempts) {
            r.rc = STOREFL_ERR_UNAVAILABLE;
            finished = 1;
          } else {
            sl->attempts++;
            if (start_handshake(s, a) == 0)
              handshaking++;
            else
              sl->not_before = now + 1000;
          }
        }
        if (!finished && a->ses == SES_READY) {
          if (!sl->attempts)
            sl->attempts = 1;
          int rc = send_on(s, a, req->method, req->path, req->content_format, sl->body);
          if (rc == 0) {
            sl->sent = 1;
            sl->start_ms = now;
            if (sl->first_ms == 0)
              sl->first_ms = now;
          } else {
            a->ses = SES_FAILED;
            sl->not_before = now + 100;
          }
        }
      } else if (a->got) {
        a->waiting = 0;
        if (a->resp_rc) {
          r.rc = a->resp_rc;
          finished = 1;
        } else {
          a->st.body_down += a->resp.len;
          int c = a->resp.code;
          if ((c == 503 || c == 408) && sl->attempts < s->o.max_attempts) {
            /* Busy (Max-Age) or an incomplete block-wise transfer: same body again, later. */
            sl->not_before = now + (c == 503 ? 1000.0 * max_age_of(&a->resp) : 200.0);
            sl->sent = 0;
            sl->attempts++;
          } else {
            r.resp = &a->resp;
            finished = 1;
          }
        }
      } else if (a->ses == SES_FAILED || now - sl->start_ms > s->o.timeout_ms) {
        /* Session lost or no answer: a fresh session, the same body (the outbox's retry). */
        SFL_DEBUG("sim", "%s: request lost (%s)", a->id, a->ses == SES_FAILED ? "session failed" : "timeout");
        drop_session(a);
        sl->sent = 0;
        if (sl->attempts >= s->o.max_attempts) {
          r.rc = STOREFL_ERR_UNAVAILABLE;
          finished = 1;
        }
      }
      if (!finished) {
        k++;
        continue;
      }
      r.attempts = sl->attempts;
      r.latency_ms = sl->start_ms > 0 ? now - sl->start_ms : 0;
      r.total_ms = sl->first_ms > 0 ? now - sl->first_ms : 0;
      if (req->done)
        req->done(req->arg, sl->agent, &r);
      a->waiting = 0;
      storefl_response_free(&a->resp);
      body_unref(sl->body);
      fly[k] = fly[inflight - 1];
      inflight--;
      done++;
    }
  }
  free(fly);
  return STOREFL_OK;
}

/* storefl_sim_request(): one wave of one agent; the argument carries both the body to send and
 * where the answer goes. */
typedef struct one_ctx {
  const uint8_t *body;
  size_t len;
  storefl_response *out;
  int rc;
} one_ctx;

static int one_body(void *arg, size_t agent, uint8_t **body, size_t *len) {
  (void)agent;
  const one_ctx *c = arg;
  *len = c->len;
  *body = malloc(c->len ? c->len : 1);
  if (!*body)
    return STOREFL_ERR_NOMEM;
  if (c->len)
    memcpy(*body, c->body, c->len);
  return STOREFL_OK;
}

static void one_done(void *arg, size_t agent, const storefl_sim_result *r) {
  (void)agent;
  one_ctx *c = arg;
  c->rc = r->rc;
  if (r->rc == 0 && r->resp) {
    *c->out = *r->resp;
    c->out->body = NULL;
    c->out->len = 0;
    if (r->resp->len) {
      c->out->body = malloc(r->resp->len);
      if (!c->out->body) {
        c->rc = STOREFL_ERR_NOMEM;
        return;
      }
      memcpy(c->out->body, r->resp->body, r->resp->len);
      c->out->len = r->resp->len;
    }
  }
}

int storefl_sim_request(storefl_sim *s, size_t i, coap_pdu_code_t method, const char *path,
                        int content_format, const uint8_t *body, size_t len, storefl_response *resp) {
  memset(resp, 0, sizeof *resp);
  if (i >= s->n)
    return STOREFL_ERR_INVALID;
  one_ctx c = {body, len, resp, STOREFL_ERR_UNAVAILABLE};
  storefl_sim_req req = {method, path, content_format, body ? one_body : NULL, one_done, &c, 1, NULL};
  int rc = storefl_sim_wave(s, &i, 1, &req);
  return rc ? rc : c.rc;
}
