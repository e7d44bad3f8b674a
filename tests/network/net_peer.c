/*
 * Test driver for the transport alone (no service logic): a server whose "service" serves a
 * deterministic pseudo-random body as the model (ETag = SHA-256 prefix) and answers an upload with
 * the identity the transport authenticated and the SHA-256 of the bytes it received; and a client
 * that GETs or POSTs one body and prints what came back. The tests compare digests computed
 * independently (sha256sum) with what crossed DTLS, so a truncated, reordered or duplicated block
 * fails them. The aggregator's real service is exercised through storefl-aggregator serve.
 *
 *   net_peer serve PORT [--psk FILE] [--pki CA CERT KEY] [--model-bytes N] [--max-upload N]
 *                       [--no-q-block] [--insecure-dev]
 *   net_peer get|post PORT PATH [--psk-id ID --psk-key FILE | --pki CA CERT KEY] [--in FILE]
 *                       [--out FILE] [--cf N] [--etag HEX] [--q-block] [--block N] [--default-curves]
 *                       [--repeat N]   (N requests on one session; one line per extra answer)
 * The client prints "code=205 etag=HEX len=N cipher=NAME handshake_ms=X" and writes the body to --out.
 */
#include <math.h>
#include <mbedtls/sha256.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_agent.h"
#include "storefl/agg_service.h"
#include "storefl/coap_server.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/transport.h"

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

typedef struct peer_svc {
  uint8_t *model;
  size_t model_len;
  uint8_t etag[8];
} peer_svc;

static int svc_model(void *ctx, storefl_server_reply *r) {
  peer_svc *p = ctx;
  r->coap_code = 205;
  r->body = p->model;
  r->len = p->model_len;
  r->has_etag = 1;
  memcpy(r->etag, p->etag, 8);
  return 0;
}

static int svc_text(storefl_server_reply *r, int code, const char *text) {
  char *b = strdup(text);
  if (!b)
    return STOREFL_ERR_NOMEM;
  r->coap_code = code;
  r->body = (const uint8_t *)b;
  r->len = strlen(b);
  r->release = free;
  r->owner = b;
  return 0;
}

static int svc_round(void *ctx, storefl_server_reply *r) {
  (void)ctx;
  return svc_text(r, 205, "round");
}

static int svc_status(void *ctx, uint32_t sessions, storefl_server_reply *r) {
  (void)ctx;
  char buf[64];
  snprintf(buf, sizeof buf, "sessions=%u", sessions);
  return svc_text(r, 205, buf);
}

static int svc_update(void *ctx, const char *identity, int cf, const uint8_t *body, size_t len,
                      storefl_server_reply *r) {
  (void)ctx;
  if (cf != 60)
    return svc_text(r, 415, "content-format must be application/cbor (60)");
  uint8_t d[32];
  if (mbedtls_sha256_ret(body, len, d, 0) != 0)
    return STOREFL_ERR_CRYPTO;
  char buf[200];
  int n = snprintf(buf, sizeof buf, "identity=%s len=%zu sha256=", identity, len);
  for (int i = 0; i < 32; i++)
    n += snprintf(buf + n, sizeof buf - (size_t)n, "%02x", d[i]);
  return svc_text(r, 204, buf);
}

static int serve(int argc, char **argv) {
  storefl_server_opts o;
  memset(&o, 0, sizeof o);
  o.port = (uint16_t)atoi(argv[2]);
  size_t model_bytes = 2u << 20;
  storefl_psk_table *psk = NULL;
  char err[256];
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--psk") && i + 1 < argc) {
      if (storefl_psk_table_load(argv[++i], &psk, err, sizeof err) != 0) {
        fprintf(stderr, "net_peer: %s\n", err);
        return 1;
      }
      o.dtls.psk = psk;
    } else if (!strcmp(argv[i], "--pki") && i + 3 < argc) {
      o.dtls.ca_file = argv[++i];
      o.dtls.cert_file = argv[++i];
      o.dtls.key_file = argv[++i];
    } else if (!strcmp(argv[i], "--model-bytes") && i + 1 < argc) {
      model_bytes = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--max-upload") && i + 1 < argc) {
      o.max_upload_bytes = strtoull(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--no-q-block")) {
      o.no_q_block = 1;
    } else if (!strcmp(argv[i], "--idle-timeout") && i + 1 < argc) {
      o.idle_timeout_s = (unsigned)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--max-sessions") && i + 1 < argc) {
      o.max_sessions = (unsigned)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--insecure-dev")) {
      o.insecure_dev = 1;
    } else {
      fprintf(stderr, "net_peer: bad argument %s\n", argv[i]);
      return 2;
    }
  }
  peer_svc p;
  p.model_len = model_bytes;
  p.model = malloc(model_bytes ? model_bytes : 1);
  if (!p.model)
    return 1;
  uint64_t x = 0x9E3779B97F4A7C15ull; /* xorshift64: a fixed, incompressible-looking body */
  for (size_t i = 0; i < model_bytes; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p.model[i] = (uint8_t)(x >> 24);
  }
  uint8_t d[32];
  mbedtls_sha256_ret(p.model, model_bytes, d, 0);
  memcpy(p.etag, d, 8);
  storefl_server_service svc = {&p, svc_model, svc_round, svc_status, svc_update, NULL};
  storefl_server *s = NULL;
  if (storefl_server_open(&o, &svc, &s, err, sizeof err) != 0) {
    fprintf(stderr, "net_peer: %s\n", err);
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  fprintf(stderr, "net_peer: listening on 127.0.0.1:%u\n", (unsigned)o.port);
  int rc = storefl_server_run(s, &stop_flag);
  storefl_server_close(s);
  storefl_psk_table_free(psk);
  free(p.model);
  return rc ? 1 : 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct obs_state {
  int seen;
} obs_state;

static void on_notify(void *arg, const storefl_response *r) {
  obs_state *o = arg;
  o->seen++;
  printf("notification %d code=%d len=%zu etag=", o->seen, r->code, r->len);
  for (size_t i = 0; i < r->etag_len; i++)
    printf("%02x", r->etag[i]);
  printf("\n");
  fflush(stdout);
}

static int client(int argc, char **argv) {
  int post = !strcmp(argv[1], "post");
  int observe = !strcmp(argv[1], "observe");
  int count = 2;
  int repeat = 1; /* --repeat N: the same request N times on one session (rate-limit tests) */
  storefl_client_opts o;
  memset(&o, 0, sizeof o);
  o.port = (uint16_t)atoi(argv[2]);
  const char *path = argv[3];
  const char *in = NULL, *outp = NULL, *etag_hex = NULL;
  int cf = post ? 60 : -1;
  uint8_t key[STOREFL_PSK_MAX_KEY];
  size_t keylen = 0;
  char err[256];
  for (int i = 4; i < argc; i++) {
    if (!strcmp(argv[i], "--psk-id") && i + 1 < argc) {
      o.psk_identity = argv[++i];
    } else if (!strcmp(argv[i], "--psk-key") && i + 1 < argc) {
      if (storefl_psk_key_file_read(argv[++i], key, sizeof key, &keylen, err, sizeof err) != 0) {
        fprintf(stderr, "net_peer: %s\n", err);
        return 1;
      }
      o.psk_key = key;
      o.psk_key_len = keylen;
    } else if (!strcmp(argv[i], "--pki") && i + 3 < argc) {
      o.ca_file = argv[++i];
      o.cert_file = argv[++i];
      o.key_file = argv[++i];
    } else if (!strcmp(argv[i], "--in") && i + 1 < argc) {
      in = argv[++i];
    } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
      outp = argv[++i];
    } else if (!strcmp(argv[i], "--cf") && i + 1 < argc) {
      cf = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--etag") && i + 1 < argc) {
      etag_hex = argv[++i];
    } else if (!strcmp(argv[i], "--q-block")) {
      o.q_block = 1;
    } else if (!strcmp(argv[i], "--non")) {
      o.non = 1;
    } else if (!strcmp(argv[i], "--block") && i + 1 < argc) {
      o.block_size = (unsigned)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--default-curves")) {
      o.default_curves = 1;
    } else if (!strcmp(argv[i], "--insecure")) {
      o.insecure = 1;
    } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
      count = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
      repeat = atoi(argv[++i]);
    } else {
      fprintf(stderr, "net_peer: bad argument %s\n", argv[i]);
      return 2;
    }
  }
  o.timeout_ms = 20000;
  uint8_t *body = NULL;
  size_t len = 0;
  if (in) {
    FILE *f = fopen(in, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
      fprintf(stderr, "net_peer: cannot read %s\n", in);
      return 1;
    }
    long n = ftell(f);
    rewind(f);
    body = malloc(n > 0 ? (size_t)n : 1);
    if (!body || fread(body, 1, (size_t)n, f) != (size_t)n) {
      fprintf(stderr, "net_peer: cannot read %s\n", in);
      return 1;
    }
    len = (size_t)n;
    fclose(f);
  }
  uint8_t etag[8];
  size_t etag_len = 0;
  if (etag_hex) {
    for (; etag_hex[2 * etag_len] && etag_len < 8; etag_len++) {
      unsigned v;
      if (sscanf(etag_hex + 2 * etag_len, "%2x", &v) != 1)
        return 2;
      etag[etag_len] = (uint8_t)v;
    }
  }
  double t0 = now_ms();
  storefl_client *c = NULL;
  int rc = storefl_client_open(&o, &c, err, sizeof err);
  double t1 = now_ms();
  if (rc) {
    printf("error=%s\n", storefl_strerror(rc));
    fprintf(stderr, "net_peer: %s\n", err);
    free(body);
    return 3;
  }
  if (observe) {
    /* Prints each notification (the first response included) until --count were seen. */
    obs_state os = {0};
    rc = storefl_client_observe(c, path, on_notify, &os, err, sizeof err);
    double end = now_ms() + 60000;
    while (rc == 0 && os.seen < count && now_ms() < end)
      rc = storefl_client_poll(c, 200);
    storefl_client_close(c);
    free(body);
    if (rc || os.seen < count) {
      fprintf(stderr, "net_peer: observe: %d of %d notifications (%s)\n", os.seen, count,
              storefl_strerror(rc));
      return 5;
    }
    return 0;
  }
  storefl_response r;
  /* --repeat: all but the last request print one line each: "code=N max_age=S reason=R". */
  for (int k = 1; k < repeat; k++) {
    if (post)
      rc = storefl_client_request(c, COAP_REQUEST_CODE_POST, path, cf, body, len, NULL, 0, &r, err,
                                  sizeof err);
    else
      rc = storefl_client_fetch(c, path, etag_len ? etag : NULL, etag_len, &r, err, sizeof err);
    if (rc)
      break;
    storefl_error_msg em;
    int is_err = r.len && r.code >= 400 && storefl_error_decode(r.body, r.len, r.len, &em) == 0;
    printf("code=%d max_age=%lld reason=%.*s body_max_age=%u\n", r.code, (long long)r.max_age_s,
           is_err ? (int)em.reason.len : 1, is_err ? em.reason.ptr : "-",
           is_err ? (unsigned)em.max_age_s : 0);
    storefl_response_free(&r);
  }
  if (rc) {
    printf("error=%s\n", storefl_strerror(rc));
    fprintf(stderr, "net_peer: %s\n", err);
    storefl_client_close(c);
    free(body);
    return 4;
  }
  if (post)
    rc = storefl_client_request(c, COAP_REQUEST_CODE_POST, path, cf, body, len, NULL, 0, &r, err, sizeof err);
  else
    rc = storefl_client_fetch(c, path, etag_len ? etag : NULL, etag_len, &r, err, sizeof err);
  double t2 = now_ms();
  if (rc) {
    printf("error=%s\n", storefl_strerror(rc));
    fprintf(stderr, "net_peer: %s\n", err);
    storefl_client_close(c);
    free(body);
    return 4;
  }
  printf("code=%d len=%zu etag=", r.code, r.len);
  for (size_t i = 0; i < r.etag_len; i++)
    printf("%02x", r.etag[i]);
  if (r.max_age_s >= 0)
    printf(" max_age=%lld", (long long)r.max_age_s);
  printf(" cipher=%s handshake_ms=%.2f request_ms=%.2f\n",
         storefl_transport_session_cipher(storefl_client_session(c)), t1 - t0, t2 - t1);
  storefl_receipt_msg rcpt;
  storefl_error_msg em;
  storefl_status_msg sm;
  storefl_round_msg rm;
  if (r.len && storefl_receipt_decode(r.body, r.len, r.len, &rcpt) == 0)
    printf("receipt store=%.*s round=%llu duplicate=%u participants=%u\n", (int)rcpt.store_id.len,
           rcpt.store_id.ptr, (unsigned long long)rcpt.round, (unsigned)rcpt.duplicate,
           (unsigned)rcpt.participants_so_far);
  else if (r.len && storefl_error_decode(r.body, r.len, r.len, &em) == 0)
    printf("error_body code=%u reason=%.*s max_age=%u detail=%.*s\n", (unsigned)em.coap_code,
           (int)em.reason.len, em.reason.ptr, (unsigned)em.max_age_s, (int)em.detail.len, em.detail.ptr);
  else if (r.len && storefl_status_decode(r.body, r.len, r.len, &sm) == 0)
    printf("status round=%llu state=%d model_version=%llu participants=%u sessions=%u health=%.*s\n",
           (unsigned long long)sm.round, (int)sm.state, (unsigned long long)sm.model_version,
           (unsigned)sm.participants_so_far, (unsigned)sm.sessions, (int)sm.health.len, sm.health.ptr);
  else if (r.len && storefl_round_decode(r.body, r.len, r.len, &rm) == 0)
    printf("round round=%llu state=%d model_version=%llu\n", (unsigned long long)rm.round, (int)rm.state,
           (unsigned long long)rm.model_version);
  else if (post && r.len)
    printf("%.*s\n", (int)r.len, (const char *)r.body);
  if (outp) {
    FILE *f = fopen(outp, "wb");
    if (!f || (r.len && fwrite(r.body, 1, r.len, f) != r.len) || fclose(f) != 0) {
      fprintf(stderr, "net_peer: cannot write %s\n", outp);
      rc = 1;
    }
  }
  storefl_response_free(&r);
  storefl_client_close(c);
  free(body);
  return rc ? 1 : 0;
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  uint8_t *b = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    b = malloc(n ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
      free(b);
      b = NULL;
    }
  }
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* mkupdate ROUND.cbor MODEL.cbor --store ID --out FILE [--dtype i8|f16|f32] [--seed N] [--examples N]
 *          [--round R] [--base V] [--norm X]
 * A deterministic pseudo-random delta of L2 norm X (default: half the round's clip norm). */
static int mkupdate(int argc, char **argv) {
  size_t rlen, mlen;
  uint8_t *rb = read_file(argv[2], &rlen), *mb = read_file(argv[3], &mlen);
  storefl_round_msg round;
  storefl_model_msg model;
  if (!rb || !mb || storefl_round_decode(rb, rlen, rlen, &round) != 0 ||
      storefl_model_decode(mb, mlen, mlen, &model) != 0) {
    fprintf(stderr, "net_peer: cannot decode %s / %s\n", argv[2], argv[3]);
    return 1;
  }
  const char *store = NULL, *out = NULL;
  storefl_dtype dtype = STOREFL_DTYPE_I8;
  uint64_t seed = 1, examples = 10;
  double norm = round.clip_norm * 0.5;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--store"))
      store = argv[i + 1];
    else if (!strcmp(argv[i], "--out"))
      out = argv[i + 1];
    else if (!strcmp(argv[i], "--dtype") && storefl_dtype_parse(argv[i + 1], &dtype) == 0)
      ;
    else if (!strcmp(argv[i], "--seed"))
      seed = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--examples"))
      examples = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--round"))
      round.round = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--base"))
      round.model_version = strtoull(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--norm"))
      norm = strtod(argv[i + 1], NULL);
    else {
      fprintf(stderr, "net_peer: bad argument %s\n", argv[i]);
      return 2;
    }
  }
  if (!store || !out)
    return 2;
  size_t n = 0;
  for (uint32_t i = 0; i < model.n_tensors; i++) {
    uint64_t ne;
    storefl_tensor_numel(&model.tensors[i], &ne);
    n += (size_t)ne;
  }
  float *d = malloc((n ? n : 1) * sizeof *d);
  if (!d)
    return 1;
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  double ss = 0;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
    ss += (double)d[i] * d[i];
  }
  for (size_t i = 0; i < n; i++)
    d[i] = (float)(d[i] * (norm / sqrt(ss)));
  mbedtls_ctr_drbg_context *drbg = NULL;
  uint8_t *body = NULL;
  size_t len = 0;
  int rc = storefl_agent_drbg_new(&drbg);
  if (rc == 0)
    rc = storefl_agent_encode_update(&model, d, n, store, &round, examples, dtype, drbg, &body, &len);
  storefl_agent_drbg_free(drbg);
  FILE *f = rc == 0 ? fopen(out, "wb") : NULL;
  if (!f || fwrite(body, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "net_peer: mkupdate failed (%s)\n", storefl_strerror(rc));
    return 1;
  }
  printf("update store=%s round=%llu base=%llu bytes=%zu\n", store, (unsigned long long)round.round,
         (unsigned long long)round.model_version, len);
  free(body);
  free(d);
  free(rb);
  free(mb);
  return 0;
}

/* enqueue DB ROUND FILE: puts an update body into an agent store's outbox. */
static int enqueue(char **argv) {
  storefl_store *st = NULL;
  char err[256];
  size_t len;
  uint8_t *b = read_file(argv[4], &len);
  if (!b || storefl_store_open(argv[2], NULL, &st, err, sizeof err) != 0)
    return 1;
  int rc =
      storefl_store_outbox_enqueue(st, strtoull(argv[3], NULL, 10), b, len, storefl_agent_now_ms(), NULL);
  storefl_store_close(st);
  free(b);
  if (rc)
    fprintf(stderr, "net_peer: enqueue: %s\n", storefl_strerror(rc));
  return rc ? 1 : 0;
}

static int print_item(void *user, const storefl_outbox_item *it) {
  (void)user;
  storefl_receipt_msg r;
  int dup = -1;
  if (it->receipt_len && storefl_receipt_decode(it->receipt, it->receipt_len, it->receipt_len, &r) == 0)
    dup = r.duplicate;
  printf("item round=%llu state=%d attempts=%d receipt=%s duplicate=%d due_in_ms=%lld error=%s\n",
         (unsigned long long)it->round, (int)it->state, it->attempts, it->receipt_len ? "yes" : "no", dup,
         (long long)(it->next_attempt_at - storefl_agent_now_ms()), it->last_error);
  return 0;
}

/* outbox DB: lists the outbox. */
static int outbox(char **argv) {
  storefl_store *st = NULL;
  char err[256];
  if (storefl_store_open(argv[2], NULL, &st, err, sizeof err) != 0)
    return 1;
  int rc = storefl_store_outbox_list(st, print_item, NULL);
  storefl_store_close(st);
  return rc ? 1 : 0;
}

/* storemodel DB VERSION: the digest of the global model VERSION an agent stored. */
static int storemodel(char **argv) {
  storefl_store *st = NULL;
  char err[256];
  if (storefl_store_open(argv[2], NULL, &st, err, sizeof err) != 0)
    return 1;
  uint8_t d[32];
  void *blob = NULL;
  size_t len = 0;
  uint64_t v = 0;
  int rc = storefl_store_get_model(st, "global", strtoull(argv[3], NULL, 10), &v, d, &blob, &len);
  storefl_store_close(st);
  free(blob);
  if (rc)
    return 1;
  printf("version=%llu digest=", (unsigned long long)v);
  for (int i = 0; i < 32; i++)
    printf("%02x", d[i]);
  printf("\n");
  return 0;
}

typedef struct replay_ctx {
  uint64_t round;
  uint8_t *bodies[64];
  size_t lens[64];
  char ids[64][STOREFL_MAX_ID_LEN + 1];
  int n;
} replay_ctx;

static int collect(void *user, const storefl_outbox_item *it) {
  replay_ctx *r = user;
  if (it->round != r->round || it->state != STOREFL_OUTBOX_SENT || r->n == 64)
    return 0;
  storefl_update_msg u;
  if (storefl_update_decode(it->body, it->body_len, it->body_len, &u) != 0)
    return 0;
  r->bodies[r->n] = malloc(it->body_len);
  if (!r->bodies[r->n])
    return STOREFL_ERR_NOMEM;
  memcpy(r->bodies[r->n], it->body, it->body_len);
  r->lens[r->n] = it->body_len;
  snprintf(r->ids[r->n], sizeof r->ids[0], "%.*s", (int)u.store_id.len, u.store_id.ptr);
  r->n++;
  return 0;
}

/* replay AGG.ini DBFILE ROUNDS STORE.db...: feeds the acknowledged updates of rounds 1..ROUNDS, taken
 * from the agents' outboxes, into a fresh in-process aggregator (same config, database DBFILE), each
 * round in an arrival order different from the network's (reversed, then rotated), and prints the
 * digest of the resulting model: an independent recomputation of what the networked aggregator
 * published. */
static int replay(int argc, char **argv) {
  storefl_agg_config cfg;
  char err[512];
  storefl_agg_config_defaults(&cfg);
  if (storefl_agg_config_load(argv[2], &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "net_peer: %s\n", err);
    return 1;
  }
  snprintf(cfg.db_path, sizeof cfg.db_path, "%s", argv[3]);
  uint64_t rounds = strtoull(argv[4], NULL, 10);
  storefl_agg *agg = NULL;
  if (storefl_agg_open(&cfg, NULL, &agg) != 0)
    return 1;
  int rc = 0;
  for (uint64_t round = 1; round <= rounds && rc == 0; round++) {
    replay_ctx *r = calloc(1, sizeof *r);
    if (!r)
      return 1;
    r->round = round;
    for (int i = 5; i < argc && rc == 0; i++) {
      storefl_store *st = NULL;
      if (storefl_store_open(argv[i], NULL, &st, err, sizeof err) != 0)
        return 1;
      rc = storefl_store_outbox_list(st, collect, r);
      storefl_store_close(st);
    }
    for (int k = 0; k < r->n && rc == 0; k++) {
      int i = (int)((r->n - 1 - k + (int)round) % r->n); /* reversed and rotated per round */
      storefl_agg_response resp;
      memset(&resp, 0, sizeof resp);
      rc = storefl_agg_handle_update(agg, r->ids[i], 60, r->bodies[i], r->lens[i], &resp);
      if (rc)
        fprintf(stderr, "net_peer: replay of %s round %llu: %d\n", r->ids[i], (unsigned long long)round,
                resp.coap_code);
      storefl_agg_response_release(&resp);
    }
    printf("replayed round %llu: %d updates\n", (unsigned long long)round, r->n);
    for (int i = 0; i < r->n; i++)
      free(r->bodies[i]);
    free(r);
  }
  size_t n = storefl_agg_model_numel(agg);
  float *params = malloc(n * sizeof *params);
  uint64_t v = 0;
  uint8_t d[32];
  if (rc || !params || storefl_agg_model_copy(agg, params, n, &v, d) != 0)
    return 1;
  printf("version=%llu digest=", (unsigned long long)v);
  for (int i = 0; i < 32; i++)
    printf("%02x", d[i]);
  printf("\n");
  free(params);
  storefl_agg_close(agg);
  return 0;
}

int main(int argc, char **argv) {
  if (getenv("STOREFL_COAP_DEBUG"))
    storefl_log_set_level(STOREFL_LOG_DEBUG);
  if (argc >= 3 && !strcmp(argv[1], "serve"))
    return serve(argc, argv);
  if (argc >= 4 && !strcmp(argv[1], "mkupdate"))
    return mkupdate(argc, argv);
  if (argc == 5 && !strcmp(argv[1], "enqueue"))
    return enqueue(argv);
  if (argc == 4 && !strcmp(argv[1], "storemodel"))
    return storemodel(argv);
  if (argc >= 6 && !strcmp(argv[1], "replay"))
    return replay(argc, argv);
  if (argc == 3 && !strcmp(argv[1], "outbox"))
    return outbox(argv);
  if (argc >= 4 && (!strcmp(argv[1], "get") || !strcmp(argv[1], "post") || !strcmp(argv[1], "observe")))
    return client(argc, argv);
  fprintf(stderr, "usage: net_peer serve PORT ... | net_peer get|post PORT PATH ...\n");
  return 2;
}
