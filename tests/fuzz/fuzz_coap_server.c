/* Fuzzes the aggregator's CoAP request path in process: whole datagrams go through libcoap's own
 * receive path (PDU parsing, session creation, Block1/Block2/Q-Block and Observe handling,
 * deduplication) into the real resource handlers (aggregator/src/coap_server.c: bounded Block1
 * reassembly, upload slots, rate limit, ETag validation) and the real service
 * (aggregator/src/agg_service.c) on a real SQLite file in a temporary directory.
 *
 * Input: byte 0 picks one of 4 client UDP sockets on 127.0.0.1 (4 server sessions, kept across
 * inputs like real peers: a Block1 transfer or an observation can span inputs); then a sequence of
 * datagrams, each a 2-byte big-endian length and that many bytes (the last one is cut to what is
 * left), at most 32, sent to the server's endpoint, which is stepped (storefl_server_step) after
 * each one; responses are read and dropped. (A fresh socket per input made every input allocate a
 * new session, which set off libFuzzer's leak check on every input: 200 exec/s.)
 *
 * What it does not cover: DTLS. The endpoint is plain CoAP (--insecure-dev mode), so the store
 * identity comes from the "store=" URI query instead of the DTLS session (identity_of's other
 * branch); everything after the identity is the same code as over DTLS. The DTLS record layer and
 * handshake are Mbed TLS's and libcoap's; hostile handshakes are covered over the wire by
 * tests/hardening/test_dtls_hostile.sh.
 *
 * Invariant checked beyond memory safety: the open round never counts more participants than its
 * maximum. The seeds (corpus/fuzz_coap_server) are valid GET/POST/Block1/Block2/Observe sequences
 * for the model below, written by tests/fuzz/gen_coap_seeds.py. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "storefl/agg_service.h"
#include "storefl/coap_server.h"
#include "storefl/error.h"
#include "storefl/log.h"

static storefl_agg *g_agg;
static storefl_server *g_srv;
static struct sockaddr_in g_addr;
static int g_fd[4];
static char g_dir[64], g_db[128];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the service adapter (as in aggregator/src/cmd_serve.c) ---------------------------------- */

static void release_agg(void *owner) {
  storefl_agg_response *r = owner;
  storefl_agg_response_release(r);
  free(r);
}

static int to_reply(int rc, storefl_agg_response *resp, storefl_server_reply *r) {
  storefl_agg_response *box = malloc(sizeof *box);
  if (!box) {
    storefl_agg_response_release(resp);
    r->coap_code = 500;
    return STOREFL_ERR_NOMEM;
  }
  *box = *resp;
  r->coap_code = box->coap_code ? box->coap_code : storefl_err_to_coap(rc ? rc : STOREFL_ERR_INTERNAL);
  r->body = box->body;
  r->len = box->body_len;
  r->has_etag = box->has_etag;
  if (box->has_etag)
    memcpy(r->etag, box->etag, STOREFL_ETAG_LEN);
  r->max_age_s = box->max_age_s;
  r->release = release_agg;
  r->owner = box;
  return STOREFL_OK;
}

static int svc_model(void *ctx, storefl_server_reply *r) {
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  return to_reply(storefl_agg_handle_model(ctx, NULL, 0, &resp), &resp, r);
}

static int svc_round(void *ctx, storefl_server_reply *r) {
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  return to_reply(storefl_agg_handle_round(ctx, &resp), &resp, r);
}

static int svc_status(void *ctx, uint32_t sessions, storefl_server_reply *r) {
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  return to_reply(storefl_agg_handle_status(ctx, sessions, &resp), &resp, r);
}

static int svc_update(void *ctx, const char *identity, int cf, const uint8_t *body, size_t len,
                      storefl_server_reply *r) {
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  return to_reply(storefl_agg_handle_update(ctx, identity, cf, body, len, &resp), &resp, r);
}

static void svc_tick(void *ctx) {
  (void)storefl_agg_tick(ctx);
}

static void on_changed(void *ctx, unsigned changed) {
  (void)ctx;
  unsigned m = (changed & STOREFL_AGG_CHANGED_ROUND ? STOREFL_SERVER_CHANGED_ROUND : 0) |
               (changed & STOREFL_AGG_CHANGED_MODEL ? STOREFL_SERVER_CHANGED_MODEL : 0);
  if (g_srv)
    storefl_server_notify(g_srv, m);
}

static void cleanup(void) {
  for (int i = 0; i < 4; i++)
    if (g_fd[i] > 0)
      close(g_fd[i]);
  storefl_server_close(g_srv);
  storefl_agg_close(g_agg);
  const char *sfx[] = {"", "-wal", "-shm", "-journal"};
  char p[160];
  for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
    snprintf(p, sizeof p, "%s%s", g_db, sfx[i]);
    (void)unlink(p);
  }
  (void)rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  storefl_log_set_level(STOREFL_LOG_OFF);
  snprintf(g_dir, sizeof g_dir, "/tmp/storefl-fuzz-coap-XXXXXX");
  if (!mkdtemp(g_dir))
    abort();
  snprintf(g_db, sizeof g_db, "%s/agg.db", g_dir);
  storefl_agg_config c;
  storefl_agg_config_defaults(&c);
  snprintf(c.db_path, sizeof c.db_path, "%s", g_db);
  c.n_tensors = 2;
  memcpy(c.tensors[0].name, "w", 2);
  c.tensors[0].ndim = 2;
  c.tensors[0].shape[0] = 4;
  c.tensors[0].shape[1] = 4;
  memcpy(c.tensors[1].name, "b", 2);
  c.tensors[1].ndim = 1;
  c.tensors[1].shape[0] = 4;
  c.min_participants = 1;
  c.target_participants = 3; /* rounds close now and then: the close and notification paths run */
  c.max_participants = 4;
  c.mode = STOREFL_PRIVACY_LOCAL;
  c.noise_multiplier = 0.5;
  c.max_upload_bytes = 4096;
  storefl_agg_options ao;
  memset(&ao, 0, sizeof ao);
  ao.notify = on_changed;
  if (storefl_agg_open(&c, &ao, &g_agg) != 0)
    abort();
  storefl_server_service svc = {g_agg, svc_model, svc_round, svc_status, svc_update, svc_tick};
  storefl_server_opts o;
  memset(&o, 0, sizeof o);
  o.host = "127.0.0.1";
  o.insecure_dev = 1;
  o.max_upload_bytes = 4096;
  o.max_sessions = 16; /* old sessions are evicted: state stays bounded over millions of inputs */
  o.max_uploads = 2;   /* the 5.03 busy path is reachable */
  o.store_rate = 1000; /* the limiter runs; a fast fuzzer sometimes exceeds it (5.03 path) */
  o.store_burst = 1000;
  /* A free port: other tests use fixed ones in 20000-22999; several fuzzers may run at once. */
  unsigned seed = (unsigned)getpid();
  char err[256];
  for (int i = 0; i < 50 && !g_srv; i++) {
    seed = seed * 1103515245u + 12345u;
    o.port = (uint16_t)(30000 + (seed >> 8) % 30000);
    if (storefl_server_open(&o, &svc, &g_srv, err, sizeof err) != 0)
      g_srv = NULL;
  }
  if (!g_srv)
    abort();
  /* libcoap logs every RST and odd PDU at ALERT/WARNING: millions of lines in a long run. (After
   * the open: storefl_transport_init sets libcoap's level.) */
  coap_set_log_level(COAP_LOG_EMERG);
  memset(&g_addr, 0, sizeof g_addr);
  g_addr.sin_family = AF_INET;
  g_addr.sin_port = htons(o.port);
  g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 4; i++) {
    g_fd[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (g_fd[i] < 0 || connect(g_fd[i], (const struct sockaddr *)&g_addr, sizeof g_addr) != 0)
      abort();
  }
  atexit(cleanup);
  return 0;
}

static void drain(int fd) {
  uint8_t buf[2048];
  while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
    ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  int fd = g_fd[data[0] & 3];
  size_t pos = 1;
  for (int n = 0; n < 32 && pos + 2 <= size; n++) {
    size_t len = (size_t)data[pos] << 8 | data[pos + 1];
    pos += 2;
    if (len > size - pos)
      len = size - pos;
    /* Loopback delivers before send() returns: the step below finds the datagram. */
    if (send(fd, data + pos, len, 0) < 0 && errno != ECONNREFUSED)
      break;
    pos += len;
    if (storefl_server_step(g_srv, 0) != 0)
      abort();
    drain(fd);
  }
  if (storefl_server_step(g_srv, 0) != 0) /* timers that fell due (retransmissions, ticks) */
    abort();
  drain(fd);
  storefl_round_msg r;
  uint32_t participants = 0;
  storefl_agg_round_info(g_agg, &r, &participants);
  if (participants > 4)
    abort();
  return 0;
}
