/* CoAP/DTLS front end of the aggregator (see storefl/coap_server.h). */
#include "storefl/coap_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/rate_limit.h"

#include "hs_guard.h"

#define CF_CBOR 60 /* application/cbor */

/* Upload being reassembled on one session (blocks arrive in order; see hnd_update). */
typedef struct sess_state {
  uint8_t *buf;
  size_t cap, len;
  int active; /* holds one of the server's max_uploads slots */
  int q_seen; /* the peer used Q-Block1/Q-Block2 on this session (see screen_blocks) */
} sess_state;

struct storefl_server {
  coap_context_t *ctx;
  storefl_server_opts o;
  storefl_server_service svc;
  coap_resource_t *r_model, *r_round, *r_update, *r_status;
  unsigned pending; /* STOREFL_SERVER_CHANGED_* not yet notified */
  uint32_t sessions;
  unsigned uploads;                 /* sessions holding an upload slot (sess_state.active) */
  storefl_hs_guard hs;              /* half-open DTLS sessions per source address */
  coap_tick_t hs_logged;            /* last debug dump of the half-open sessions */
  storefl_rate_limit *rate;         /* per-store request rate; NULL = no limit */
  coap_tick_t last_tick;            /* of the service's tick; 0 = never */
  struct storefl_server *next_open; /* the servers open in this process (is_server) */
};

/* Open servers: the libcoap wrapper below sees every libcoap context of the process, clients too,
 * and must only treat ours as a storefl_server. Opened and closed from one thread. */
static storefl_server *g_open;

static int is_server(const void *p) {
  for (const storefl_server *s = g_open; s; s = s->next_open)
    if (s == p)
      return 1;
  return 0;
}

static void set_err(char *err, size_t errlen, const char *msg, const char *arg) {
  if (err && errlen)
    snprintf(err, errlen, "%s%s", msg, arg);
}

static storefl_server *server_of(coap_session_t *session) {
  return coap_context_get_app_data(coap_session_get_context(session));
}

/* Gives back the session's upload slot (upload finished, refused, or session gone). */
static void upload_done(storefl_server *s, sess_state *st) {
  if (st && st->active) {
    st->active = 0;
    if (s->uploads)
      s->uploads--;
  }
}

static void sess_free(sess_state *st) {
  if (!st)
    return;
  free(st->buf);
  free(st);
}

/* The source IP of a session, without the port (a flood uses many ports). 0 if not IP. */
static size_t remote_ip(coap_session_t *session, uint8_t out[STOREFL_HS_ADDR_MAX]) {
  const coap_address_t *a = coap_session_get_addr_remote(session);
  if (!a)
    return 0;
  if (a->addr.sa.sa_family == AF_INET) {
    memcpy(out, &a->addr.sin.sin_addr, 4);
    return 4;
  }
  if (a->addr.sa.sa_family == AF_INET6) {
    const uint8_t *b = a->addr.sin6.sin6_addr.s6_addr;
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, v4mapped, 12) == 0) { /* the same host whether it comes as IPv4 or mapped */
      memcpy(out, b + 12, 4);
      return 4;
    }
    memcpy(out, b, 16);
    return 16;
  }
  return 0;
}

static uint64_t now_ms(void) {
  coap_tick_t t;
  coap_ticks(&t);
  return coap_ticks_to_rt_us(t) / 1000;
}

static int on_event(coap_session_t *session, const coap_event_t event) {
  storefl_server *s = server_of(session);
  if (!s)
    return 0;
  if (event == COAP_EVENT_SERVER_SESSION_NEW) {
    s->sessions++;
    uint8_t ip[STOREFL_HS_ADDR_MAX];
    size_t iplen = remote_ip(session, ip);
    if (!s->o.insecure_dev && iplen) {
      int rc = storefl_hs_guard_add(&s->hs, session, ip, iplen, now_ms());
      if (rc == STOREFL_ERR_UNAVAILABLE && s->hs.untracked % 1000 == 1)
        SFL_WARN("dtls", "half-open registry full (%zu): %s not limited per address", s->hs.n,
                 coap_session_str(session));
      else if (rc && rc != STOREFL_ERR_UNAVAILABLE)
        SFL_WARN("dtls", "cannot track the handshake of %s: %s", coap_session_str(session),
                 storefl_strerror(rc));
    }
    if (s->o.q_block_burst)
      coap_session_set_max_payloads(session,
                                    (uint16_t)(s->o.q_block_burst > 65535 ? 65535 : s->o.q_block_burst));
  } else if (event == COAP_EVENT_SERVER_SESSION_DEL) {
    if (s->sessions)
      s->sessions--;
    if (storefl_hs_guard_remove(&s->hs, session))
      SFL_DEBUG("dtls", "%s: half-open session freed (state %d)", coap_session_str(session),
                (int)coap_session_get_state(session));
    upload_done(s, coap_session_get_app_data(session));
    sess_free(coap_session_get_app_data(session));
    coap_session_set_app_data(session, NULL);
  } else if (event == COAP_EVENT_DTLS_ERROR) {
    SFL_WARN("dtls", "handshake with %s failed", coap_session_str(session));
  }
  return 0;
}

static uint64_t etag_u64(const uint8_t e[STOREFL_ETAG_LEN]) {
  uint64_t v = 0;
  for (int i = 0; i < STOREFL_ETAG_LEN; i++)
    v = v << 8 | e[i];
  return v ? v : 1; /* libcoap treats 0 as "no ETag" */
}

typedef struct reply_box {
  storefl_server_reply r;
} reply_box;

static void release_box(coap_session_t *session, void *p) {
  (void)session;
  reply_box *b = p;
  if (b->r.release)
    b->r.release(b->r.owner);
  free(b);
}

static void release_reply(storefl_server_reply *r) {
  if (r->release)
    r->release(r->owner);
  memset(r, 0, sizeof *r);
}

/* Sends a service reply; takes ownership of r's body. */
static void send_reply(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                       const coap_string_t *query, coap_pdu_t *response, storefl_server_reply *r) {
  coap_pdu_set_code(response, (coap_pdu_code_t)COAP_RESPONSE_CODE(r->coap_code));
  if (!r->body || !r->len) {
    uint8_t buf[8];
    if (r->has_etag)
      coap_add_option(response, COAP_OPTION_ETAG, coap_encode_var_safe8(buf, sizeof buf, etag_u64(r->etag)),
                      buf);
    if (r->max_age_s)
      coap_add_option(response, COAP_OPTION_MAXAGE, coap_encode_var_safe(buf, sizeof buf, r->max_age_s), buf);
    release_reply(r);
    return;
  }
  reply_box *b = malloc(sizeof *b);
  if (!b) {
    release_reply(r);
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
    return;
  }
  b->r = *r;
  memset(r, 0, sizeof *r);
  /* libcoap keeps the body for the rest of a Block2 transfer and calls release_box when done (or
   * on failure). */
  if (!coap_add_data_large_response(
          resource, session, request, response, query, CF_CBOR, b->r.max_age_s ? (int)b->r.max_age_s : -1,
          b->r.has_etag ? etag_u64(b->r.etag) : 0, b->r.len, b->r.body, release_box, b))
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
}

static void plain_code(coap_pdu_t *response, int code, const char *why, coap_session_t *session) {
  coap_pdu_set_code(response, (coap_pdu_code_t)COAP_RESPONSE_CODE(code));
  if (why)
    SFL_INFO("server", "%d.%02d for %s: %s", code / 100, code % 100, coap_session_str(session), why);
}

/* The DTLS identity; in --insecure-dev mode, the "store=" query (there is no authentication). */
static int identity_of(storefl_server *s, coap_session_t *session, const coap_string_t *query,
                       char id[STOREFL_MAX_ID_LEN + 1]) {
  if (!s->o.insecure_dev)
    return storefl_transport_session_identity(session, id);
  if (!query)
    return STOREFL_ERR_UNAUTHORIZED;
  const char *q = (const char *)query->s;
  size_t n = query->length;
  for (size_t i = 0; i + 6 <= n; i++) {
    if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "store=", 6) == 0) {
      size_t j = i + 6, k = j;
      while (k < n && q[k] != '&')
        k++;
      if (!storefl_store_id_valid(q + j, k - j))
        return STOREFL_ERR_UNAUTHORIZED;
      memcpy(id, q + j, k - j);
      id[k - j] = 0;
      return STOREFL_OK;
    }
  }
  return STOREFL_ERR_UNAUTHORIZED;
}

/* 5.03 Service Unavailable with Max-Age (RFC 7252 5.9.3.4: when to retry) and the CBOR error body
 * whose max_age_s says the same, so that an agent's outbox backs off for that long. */
static void unavailable(coap_pdu_t *response, const char *reason, const char *detail, uint32_t max_age_s) {
  uint8_t buf[4];
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE);
  coap_add_option(response, COAP_OPTION_MAXAGE, coap_encode_var_safe(buf, sizeof buf, max_age_s), buf);
  storefl_error_msg m;
  memset(&m, 0, sizeof m);
  m.coap_code = 503;
  m.reason.ptr = reason;
  m.reason.len = strlen(reason);
  m.detail.ptr = detail;
  m.detail.len = strlen(detail);
  m.max_age_s = max_age_s;
  uint8_t body[256];
  size_t len = 0;
  uint8_t cf[4];
  /* Small enough for one datagram; without a body the code and Max-Age still say it all. */
  if (storefl_error_encode(&m, body, sizeof body, &len) == STOREFL_OK &&
      coap_add_option(response, COAP_OPTION_CONTENT_FORMAT, coap_encode_var_safe(cf, sizeof cf, CF_CBOR), cf))
    (void)coap_add_data(response, len, body);
}

/* Overload: more block-wise uploads in progress than max_uploads. 5.03 with Max-Age tells the agent
 * when to come back (its outbox retries 5.xx with back-off), instead of buffering without bound. */
static void busy(storefl_server *s, coap_pdu_t *response, coap_session_t *session) {
  SFL_INFO("server", "5.03 for %s: %u uploads in progress (max_uploads), retry in %u s",
           coap_session_str(session), s->uploads, s->o.busy_max_age_s);
  unavailable(response, "busy", "too many uploads in progress", s->o.busy_max_age_s);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Per-store rate limit: 1 if the request may proceed; 0 if it was answered 5.03 with Max-Age
 * (the store is over [server] store_rate). Requests without a store identity (insecure-dev without
 * store=, a certificate whose CN is no store id) are not counted here: they are refused or cheap,
 * and their sessions are bounded by max_sessions / max_handshakes. */
static int admit(storefl_server *s, coap_session_t *session, const coap_string_t *query, coap_pdu_t *response,
                 const char *what) {
  char id[STOREFL_MAX_ID_LEN + 1];
  uint32_t wait = 0;
  if (!s->rate || identity_of(s, session, query, id) != 0 ||
      storefl_rate_limit_take(s->rate, id, mono_ms(), &wait))
    return 1;
  SFL_INFO("server", "5.03 for %s: store %s over its request rate (%g/s, burst %u) on %s, retry in %u s",
           coap_session_str(session), id, s->o.store_rate, s->o.store_burst, what, (unsigned)wait);
  unavailable(response, "rate_limited", "too many requests from this store", wait);
  return 0;
}

/* An Observe notification (libcoap calls the GET handler to build it) is the server's own doing
 * and costs the store nothing. libcoap builds notifications as CON; the response to a request is
 * an ACK (CON request) or NON (NON request), never CON. */
static int is_notification(const coap_pdu_t *response) {
  return coap_pdu_get_type(response) == COAP_MESSAGE_CON;
}

static void hnd_model(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                      const coap_string_t *query, coap_pdu_t *response) {
  storefl_server *s = server_of(session);
  if (!is_notification(response) && !admit(s, session, query, response, "GET /v1/model"))
    return;
  storefl_server_reply r;
  memset(&r, 0, sizeof r);
  if (s->svc.model(s->svc.ctx, &r) != 0 && r.coap_code == 0)
    r.coap_code = 500;
  /* Conditional fetch: the client names the ETag of the body it holds; if it is still current the
   * answer is 2.03 Valid without a body (RFC 7252 5.10.6.2). Observe notifications are never
   * conditional. */
  coap_opt_iterator_t it;
  coap_opt_t *opt;
  int notification = coap_check_option(request, COAP_OPTION_OBSERVE, &it) != NULL;
  if (r.coap_code == 205 && r.has_etag && !notification) {
    uint64_t cur = etag_u64(r.etag);
    coap_option_iterator_init(request, &it, COAP_OPT_ALL);
    while ((opt = coap_option_next(&it)) != NULL) {
      if (it.number != COAP_OPTION_ETAG || coap_opt_length(opt) > 8)
        continue;
      if (coap_decode_var_bytes8(coap_opt_value(opt), coap_opt_length(opt)) == cur) {
        storefl_server_reply v = r;
        v.coap_code = 203;
        v.body = NULL;
        v.len = 0;
        send_reply(resource, session, request, query, response, &v);
        return; /* v took the release */
      }
    }
  }
  send_reply(resource, session, request, query, response, &r);
}

static void hnd_round(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                      const coap_string_t *query, coap_pdu_t *response) {
  storefl_server *s = server_of(session);
  if (!is_notification(response) && !admit(s, session, query, response, "GET /v1/round"))
    return;
  storefl_server_reply r;
  memset(&r, 0, sizeof r);
  if (s->svc.round(s->svc.ctx, &r) != 0 && r.coap_code == 0)
    r.coap_code = 500;
  send_reply(resource, session, request, query, response, &r);
}

static void hnd_status(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                       const coap_string_t *query, coap_pdu_t *response) {
  storefl_server *s = server_of(session);
  if (!admit(s, session, query, response, "GET /v1/status"))
    return;
  storefl_server_reply r;
  memset(&r, 0, sizeof r);
  if (s->svc.status(s->svc.ctx, s->sessions, &r) != 0 && r.coap_code == 0)
    r.coap_code = 500;
  send_reply(resource, session, request, query, response, &r);
}

static void too_large(storefl_server *s, coap_pdu_t *response, coap_session_t *session, size_t total) {
  uint8_t buf[8];
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_REQUEST_TOO_LARGE);
  coap_add_option(response, COAP_OPTION_SIZE1, coap_encode_var_safe8(buf, sizeof buf, s->o.max_upload_bytes),
                  buf);
  SFL_INFO("server", "4.13 for %s: upload of %zu bytes over the cap of %llu", coap_session_str(session),
           total, (unsigned long long)s->o.max_upload_bytes);
}

/* ---- libcoap 4.3.5 block-layer guard -----------------------------------------------------------
 * libcoap reassembles Block1/Q-Block1 bodies in coap_handle_request_put_block() before any handler
 * runs, and in 4.3.5 that code (a) dereferences a NULL token when a Block1 request with M=1 arrives
 * on a session that has used Q-Block2 and the blocks it has seen already cover the body (Size1
 * absent or small: two datagrams crash the server; upstream libcoap issue #1566, fixed after
 * 4.3.5), and (b) allocates a body buffer of whatever size Size1 or the block number announce, with
 * no limit. Both were found by tests/fuzz/fuzz_coap_server.c. The aggregator links with
 * -Wl,--wrap=coap_handle_request_put_block (aggregator/CMakeLists.txt), so every request passes
 * screen_blocks() first: a Block1 upload on a session that used Q-Block is refused (4.02: a client
 * that speaks Q-Block uploads with Q-Block1, as storefl agents do), and a (Q-)Block1 upload larger
 * than max_upload_bytes gets 4.13 before libcoap buffers anything. */
struct coap_lg_srcv_t;
int __real_coap_handle_request_put_block(coap_context_t *context, coap_session_t *session, coap_pdu_t *pdu,
                                         coap_pdu_t *response, coap_resource_t *resource,
                                         coap_string_t *uri_path, coap_opt_t *observe, int *added_block,
                                         struct coap_lg_srcv_t **pfree_lg_srcv);
int __wrap_coap_handle_request_put_block(coap_context_t *context, coap_session_t *session, coap_pdu_t *pdu,
                                         coap_pdu_t *response, coap_resource_t *resource,
                                         coap_string_t *uri_path, coap_opt_t *observe, int *added_block,
                                         struct coap_lg_srcv_t **pfree_lg_srcv);

/* 1 if the request was answered here (libcoap then sends response without calling a handler). */
static int screen_blocks(storefl_server *s, coap_session_t *session, const coap_pdu_t *pdu,
                         coap_pdu_t *response) {
  coap_opt_iterator_t it;
  coap_block_b_t b1, qb1, qb2;
  int has_b1 = coap_get_block_b(session, pdu, COAP_OPTION_BLOCK1, &b1);
  int has_qb1 = coap_get_block_b(session, pdu, COAP_OPTION_Q_BLOCK1, &qb1);
  int has_qb2 = coap_get_block_b(session, pdu, COAP_OPTION_Q_BLOCK2, &qb2);
  sess_state *st = coap_session_get_app_data(session);
  if (has_qb1 || has_qb2) {
    if (!st) {
      st = calloc(1, sizeof *st);
      if (!st) {
        plain_code(response, 500, "out of memory", session);
        return 1;
      }
      coap_session_set_app_data(session, st);
    }
    st->q_seen = 1;
  }
  if (has_b1 && (b1.num || b1.m) && st && st->q_seen) {
    plain_code(response, 402, "Block1 upload after Q-Block on the same session (use Q-Block1)", session);
    return 1;
  }
  const coap_block_b_t *b = has_qb1 ? &qb1 : has_b1 ? &b1 : NULL;
  if (!b)
    return 0;
  coap_opt_t *size_opt = coap_check_option(pdu, COAP_OPTION_SIZE1, &it);
  uint64_t size1 = size_opt ? coap_decode_var_bytes8(coap_opt_value(size_opt), coap_opt_length(size_opt)) : 0;
  uint64_t offset = (uint64_t)b->num << (b->szx + 4), end = offset + b->chunk_size;
  if (size1 > s->o.max_upload_bytes || offset >= s->o.max_upload_bytes) {
    too_large(s, response, session, (size_t)(size1 > end ? size1 : end));
    return 1;
  }
  return 0;
}

int __wrap_coap_handle_request_put_block(coap_context_t *context, coap_session_t *session, coap_pdu_t *pdu,
                                         coap_pdu_t *response, coap_resource_t *resource,
                                         coap_string_t *uri_path, coap_opt_t *observe, int *added_block,
                                         struct coap_lg_srcv_t **pfree_lg_srcv) {
  storefl_server *s = coap_context_get_app_data(context);
  if (s && is_server(s) && screen_blocks(s, session, pdu, response)) {
    *added_block = 0;
    *pfree_lg_srcv = NULL;
    return 1;
  }
  return __real_coap_handle_request_put_block(context, session, pdu, response, resource, uri_path, observe,
                                              added_block, pfree_lg_srcv);
}

static void hnd_update(coap_resource_t *resource, coap_session_t *session, const coap_pdu_t *request,
                       const coap_string_t *query, coap_pdu_t *response) {
  storefl_server *s = server_of(session);
  char id[STOREFL_MAX_ID_LEN + 1];
  if (identity_of(s, session, query, id) != 0) {
    plain_code(response, 401, "no authenticated store identity", session);
    return;
  }
  coap_opt_iterator_t it;
  coap_opt_t *opt = coap_check_option(request, COAP_OPTION_CONTENT_FORMAT, &it);
  int cf = opt ? (int)coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt)) : -1;
  sess_state *st = coap_session_get_app_data(session);
  size_t size = 0, offset = 0, total = 0;
  const uint8_t *data = NULL;
  if (!coap_get_data_large(request, &size, &data, &offset, &total)) {
    size = offset = total = 0;
    data = NULL;
  }
  /* One token per upload attempt: its first block (or whole body); the rest of an admitted
   * block-wise upload is not charged. */
  if (offset == 0 && !admit(s, session, query, response, "POST /v1/update")) {
    if (st) {
      st->len = 0;
      upload_done(s, st);
    }
    return;
  }
  if (cf != CF_CBOR) {
    /* Refused on the first block, before anything is buffered. */
    if (st) {
      st->len = 0;
      upload_done(s, st);
    }
    storefl_server_reply r;
    memset(&r, 0, sizeof r);
    if (s->svc.update(s->svc.ctx, id, cf, data, size, &r) != 0 && r.coap_code == 0)
      r.coap_code = 415;
    send_reply(resource, session, request, query, response, &r);
    return;
  }
  /* total is the client's Size1 (or the running size); checking it on the first block means an
   * oversized upload is refused before it is transferred, and the buffer never exceeds the cap. */
  if (total > s->o.max_upload_bytes || offset + size > s->o.max_upload_bytes) {
    if (st) {
      st->len = 0;
      upload_done(s, st);
    }
    too_large(s, response, session, total > offset + size ? total : offset + size);
    return;
  }
  if (size != total || offset != 0) {
    /* One block of a larger body. */
    if (!st) {
      st = calloc(1, sizeof *st);
      if (!st) {
        plain_code(response, 500, "out of memory", session);
        return;
      }
      coap_session_set_app_data(session, st);
    }
    if (offset == 0) {
      if (!st->active) {
        if (s->uploads >= s->o.max_uploads) {
          busy(s, response, session);
          return;
        }
        st->active = 1;
        s->uploads++;
      }
      st->len = 0;
      SFL_DEBUG("server", "upload started: store=%s bytes=%zu", id, total);
    }
    if (offset < st->len && offset + size < total && offset + size <= st->len &&
        memcmp(st->buf + offset, data, size) == 0) {
      /* A block already held, with the same bytes: the retransmission of a CON whose 2.31 was lost
       * on the way back (tests/hardening/test_loss.sh). Acknowledge it again instead of failing the
       * whole upload. */
      coap_pdu_set_code(response, COAP_RESPONSE_CODE_CONTINUE);
      return;
    }
    if (offset != st->len) {
      st->len = 0;
      upload_done(s, st);
      plain_code(response, 408, "block out of sequence", session);
      return;
    }
    size_t need = offset + size;
    if (need > st->cap) {
      /* Grow geometrically up to the announced total, never beyond the cap. */
      size_t ncap = st->cap ? st->cap * 2 : 64 * 1024;
      if (ncap < total)
        ncap = total;
      if (ncap < need)
        ncap = need;
      if (ncap > s->o.max_upload_bytes)
        ncap = (size_t)s->o.max_upload_bytes;
      uint8_t *nb = realloc(st->buf, ncap);
      if (!nb) {
        st->len = 0;
        upload_done(s, st);
        plain_code(response, 500, "out of memory", session);
        return;
      }
      st->buf = nb;
      st->cap = ncap;
    }
    if (size)
      memcpy(st->buf + offset, data, size);
    st->len = need;
    if (need < total) {
      coap_pdu_set_code(response, COAP_RESPONSE_CODE_CONTINUE);
      return;
    }
    data = st->buf;
    size = st->len;
  }
  storefl_server_reply r;
  memset(&r, 0, sizeof r);
  if (s->svc.update(s->svc.ctx, id, cf, data, size, &r) != 0 && r.coap_code == 0)
    r.coap_code = 500;
  if (st) {
    /* The service has consumed the body: drop the buffer, idle sessions should cost little. */
    free(st->buf);
    st->buf = NULL;
    st->cap = st->len = 0;
    upload_done(s, st);
  }
  send_reply(resource, session, request, query, response, &r);
}

static int bind_endpoint(storefl_server *s, char *err, size_t errlen) {
  coap_address_t addr;
  coap_address_init(&addr);
  const char *host = s->o.host ? s->o.host : "127.0.0.1";
  coap_str_const_t h = {strlen(host), (const uint8_t *)host};
  coap_addr_info_t *ai = coap_resolve_address_info(
      &h, s->o.port, s->o.port, s->o.port, s->o.port, AI_PASSIVE | AI_NUMERICHOST,
      s->o.insecure_dev ? COAP_URI_SCHEME_COAP_BIT : COAP_URI_SCHEME_COAPS_BIT, COAP_RESOLVE_TYPE_LOCAL);
  if (!ai) {
    set_err(err, errlen, "cannot resolve listen address ", host);
    return STOREFL_ERR_INVALID;
  }
  addr = ai->addr;
  coap_free_address_info(ai);
  coap_endpoint_t *ep =
      coap_new_endpoint(s->ctx, &addr, s->o.insecure_dev ? COAP_PROTO_UDP : COAP_PROTO_DTLS);
  if (!ep) {
    set_err(err, errlen, "cannot listen (address in use?) on ", host);
    return STOREFL_ERR_IO;
  }
  return STOREFL_OK;
}

static coap_resource_t *add_resource(storefl_server *s, const char *path, coap_request_t method,
                                     coap_method_handler_t h, int observable) {
  coap_resource_t *r = coap_resource_init(coap_make_str_const(path), COAP_RESOURCE_FLAGS_NOTIFY_CON);
  if (!r)
    return NULL;
  coap_register_request_handler(r, method, h);
  if (observable)
    coap_resource_set_get_observable(r, 1);
  coap_add_resource(s->ctx, r);
  return r;
}

int storefl_server_open(const storefl_server_opts *opts, const storefl_server_service *svc,
                        storefl_server **out, char *err, size_t errlen) {
  *out = NULL;
  storefl_transport_init();
  storefl_server *s = calloc(1, sizeof *s);
  if (!s)
    return STOREFL_ERR_NOMEM;
  s->o = *opts;
  s->svc = *svc;
  if (!s->o.port)
    s->o.port = s->o.insecure_dev ? 5683 : STOREFL_COAP_DEFAULT_PORT;
  if (!s->o.max_sessions)
    s->o.max_sessions = 1024;
  if (!s->o.idle_timeout_s)
    s->o.idle_timeout_s = 120;
  if (!s->o.max_handshakes)
    s->o.max_handshakes = 128;
  if (!s->o.max_uploads)
    s->o.max_uploads = 64;
  if (!s->o.busy_max_age_s)
    s->o.busy_max_age_s = 5;
  if (!s->o.block_size)
    s->o.block_size = 1024;
  if (!s->o.tick_ms)
    s->o.tick_ms = 1000;
  if (!s->o.max_upload_bytes)
    s->o.max_upload_bytes = (uint64_t)16 << 20;
  int rc = STOREFL_ERR_NOMEM;
  if (s->o.store_rate > 0) {
    if (!s->o.store_burst)
      s->o.store_burst = 100;
    /* Buckets of stores seen within burst/rate seconds; sessions are what bounds active stores. */
    size_t max_stores = (size_t)(s->o.max_sessions ? s->o.max_sessions : 1024) * 4;
    rc = storefl_rate_limit_new(s->o.store_rate, s->o.store_burst, max_stores < 1024 ? 1024 : max_stores,
                                &s->rate);
    if (rc) {
      set_err(err, errlen, "invalid [server] store_rate / store_burst", "");
      goto fail;
    }
  }
  rc = STOREFL_ERR_NOMEM;
  s->ctx = coap_new_context(NULL);
  if (!s->ctx)
    goto fail;
  coap_context_set_app_data(s->ctx, s);
  /* Bodies are reassembled here, block by block, into a buffer bounded by max_upload_bytes, instead
   * of libcoap's unbounded single-body assembly. */
  coap_context_set_block_mode(s->ctx,
                              COAP_BLOCK_USE_LIBCOAP | (s->o.no_q_block ? 0 : COAP_BLOCK_TRY_Q_BLOCK));
  if (!coap_context_set_max_block_size(s->ctx, s->o.block_size)) {
    set_err(err, errlen, "invalid block size", "");
    rc = STOREFL_ERR_INVALID;
    goto fail;
  }
  coap_context_set_max_idle_sessions(s->ctx, s->o.max_sessions);
  coap_context_set_session_timeout(s->ctx, s->o.idle_timeout_s);
  coap_context_set_max_handshake_sessions(s->ctx, s->o.max_handshakes);
  if (!s->o.max_handshakes_per_addr)
    s->o.max_handshakes_per_addr = STOREFL_SERVER_HS_PER_ADDR_DEFAULT;
  /* libcoap holds at most max_handshakes + 1 half-open sessions; established ones leave at the next
   * sweep, so max_sessions more bounds what can be tracked at once. The per-address bound applies
   * once half of libcoap's handshake slots are taken: before that nothing is starved, and dropping
   * would only hurt concurrent stores behind one address (10 agents at a time from 127.0.0.1 under
   * ASan, where a handshake takes long, were cut at a bound of 8 without this). */
  storefl_hs_guard_init(
      &s->hs, s->o.max_handshakes_per_addr == STOREFL_SERVER_NO_LIMIT ? 0 : s->o.max_handshakes_per_addr,
      (s->o.max_handshakes + 1) / 2, (size_t)s->o.max_handshakes + s->o.max_sessions + 1);
  coap_register_event_handler(s->ctx, on_event);
  if (!s->o.insecure_dev) {
    rc = storefl_dtls_server_setup(s->ctx, &s->o.dtls, err, errlen);
    if (rc)
      goto fail;
  }
  rc = bind_endpoint(s, err, errlen);
  if (rc)
    goto fail;
  rc = STOREFL_ERR_NOMEM;
  s->r_model = add_resource(s, "v1/model", COAP_REQUEST_GET, hnd_model, 1);
  s->r_round = add_resource(s, "v1/round", COAP_REQUEST_GET, hnd_round, 1);
  s->r_update = add_resource(s, "v1/update", COAP_REQUEST_POST, hnd_update, 0);
  s->r_status = add_resource(s, "v1/status", COAP_REQUEST_GET, hnd_status, 0);
  if (!s->r_model || !s->r_round || !s->r_update || !s->r_status)
    goto fail;
  s->next_open = g_open;
  g_open = s;
  *out = s;
  return STOREFL_OK;
fail:
  storefl_server_close(s);
  return rc;
}

void storefl_server_notify(storefl_server *s, unsigned changed) {
  s->pending |= changed;
}

uint32_t storefl_server_sessions(const storefl_server *s) {
  return s->sessions;
}

static void flush_notifications(storefl_server *s) {
  unsigned p = s->pending;
  s->pending = 0;
  if (p & STOREFL_SERVER_CHANGED_ROUND)
    coap_resource_notify_observers(s->r_round, NULL);
  if (p & STOREFL_SERVER_CHANGED_MODEL)
    coap_resource_notify_observers(s->r_model, NULL);
}

static storefl_hs_state hs_state(void *ctx, const void *key) {
  (void)ctx;
  coap_session_t *session = (coap_session_t *)key;
  if (coap_session_get_type(session) == COAP_SESSION_TYPE_HELLO)
    return STOREFL_HS_HELLO;
  if (coap_session_get_state(session) == COAP_SESSION_STATE_HANDSHAKE)
    return STOREFL_HS_HANDSHAKE;
  return STOREFL_HS_DONE; /* established, or disconnected and about to be freed */
}

static void hs_drop(void *ctx, const void *key) {
  (void)ctx;
  coap_session_t *session = (coap_session_t *)key;
  SFL_DEBUG("dtls", "%s: dropping a half-open handshake (over the per-address bound)",
            coap_session_str(session));
  /* The path of libcoap's own handshake timeout (coap_dtls_handle_timeout): the session goes to
   * state NONE and the next coap_io_prepare frees it (SESSION_DEL). */
  coap_session_disconnected(session, COAP_NACK_TLS_FAILED);
}

static const char *hs_type_name(coap_session_t *session) {
  switch (coap_session_get_type(session)) {
  case COAP_SESSION_TYPE_HELLO:
    return "hello";
  case COAP_SESSION_TYPE_SERVER:
    return "server";
  default:
    return "other";
  }
}

/* Debug view of every half-open session (type, libcoap state, age): if handshakes stop
 * completing, this names which state they are stuck in and from where. */
static void hs_log(storefl_server *s, uint64_t t_ms) {
  if (storefl_log_get_level() > STOREFL_LOG_DEBUG || !s->hs.n)
    return;
  SFL_DEBUG("dtls", "%zu half-open sessions (dropped %llu so far, untracked %llu, live %u)", s->hs.n,
            (unsigned long long)s->hs.dropped, (unsigned long long)s->hs.untracked, s->sessions);
  size_t shown = s->hs.n < 32 ? s->hs.n : 32;
  for (size_t i = 0; i < shown; i++) {
    coap_session_t *session = (coap_session_t *)s->hs.e[i].key;
    SFL_DEBUG("dtls", "  %s type=%s state=%d age_ms=%llu", coap_session_str(session), hs_type_name(session),
              (int)coap_session_get_state(session), (unsigned long long)(t_ms - s->hs.e[i].t0_ms));
  }
}

/* After every batch of datagrams: a flooding address never holds more than its bound for longer
 * than one batch, so the global max_handshakes keeps room for others; once a second, the debug
 * view of the half-open sessions. */
static void hs_after_io(storefl_server *s) {
  if (s->hs.n) {
    size_t before = (size_t)s->hs.dropped;
    if (storefl_hs_guard_sweep(&s->hs, hs_state, hs_drop, s, NULL) &&
        (before == 0 || s->hs.dropped / 100 != before / 100))
      SFL_WARN("dtls", "half-open handshakes over the per-address bound of %u: %llu dropped so far",
               s->hs.per_addr, (unsigned long long)s->hs.dropped);
  }
  coap_tick_t now;
  coap_ticks(&now);
  if (now - s->hs_logged >= COAP_TICKS_PER_SECOND) {
    s->hs_logged = now;
    hs_log(s, coap_ticks_to_rt_us(now) / 1000);
  }
}

int storefl_server_step(storefl_server *s, unsigned timeout_ms) {
  int r = coap_io_process(s->ctx, timeout_ms ? timeout_ms : COAP_IO_NO_WAIT);
  if (r < 0) {
    SFL_ERROR("server", "libcoap I/O failed");
    return STOREFL_ERR_IO;
  }
  hs_after_io(s);
  coap_tick_t now;
  coap_ticks(&now);
  /* Elapsed ticks converted by hand: coap_ticks_to_rt_us() adds the clock's epoch offset, so on a
   * difference it is always huge (the tick then ran after every datagram). */
  if (s->svc.tick &&
      (s->last_tick == 0 || (uint64_t)(now - s->last_tick) * 1000 / COAP_TICKS_PER_SECOND >= s->o.tick_ms)) {
    s->last_tick = now;
    s->svc.tick(s->svc.ctx);
  }
  if (s->pending)
    flush_notifications(s);
  return STOREFL_OK;
}

int storefl_server_run(storefl_server *s, volatile sig_atomic_t *stop) {
  while (!*stop) {
    /* Short waits so that a signal (which only sets *stop) ends the loop promptly. */
    int rc = storefl_server_step(s, s->o.tick_ms < 200 ? s->o.tick_ms : 200);
    if (rc)
      return rc;
  }
  return STOREFL_OK;
}

void storefl_server_close(storefl_server *s) {
  if (!s)
    return;
  for (storefl_server **p = &g_open; *p; p = &(*p)->next_open)
    if (*p == s) {
      *p = s->next_open;
      break;
    }
  if (s->ctx)
    coap_free_context(s->ctx); /* releases sessions (SESSION_DEL frees their buffers) and bodies */
  storefl_hs_guard_free(&s->hs);
  storefl_rate_limit_free(s->rate);
  free(s);
}
