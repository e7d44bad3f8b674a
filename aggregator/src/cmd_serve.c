/* storefl-aggregator serve: the aggregator's service logic (agg_service) behind CoAP over DTLS. */
#include "cmd_serve.h"

#include <errno.h>
#include <ini.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "storefl/agg_config.h"
#include "storefl/agg_service.h"
#include "storefl/cli.h"
#include "storefl/coap_server.h"
#include "storefl/enrolment.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/parse.h"
#include "storefl/transport.h"

#define PATHLEN 1024

/* The transport's sections of the aggregator INI: [server] and [dtls]. */
typedef struct serve_config {
  char listen[300];
  unsigned max_sessions, idle_timeout_s, max_handshakes, block_size, max_uploads, busy_max_age_s;
  unsigned hs_per_addr; /* max_handshakes_per_address; 0 = no bound */
  int hs_per_addr_set;
  double store_rate; /* per-store requests/s, 0 = no limit */
  unsigned store_burst;
  int q_block;
  char psk_keys[PATHLEN], psk_hint[128], ca[PATHLEN], cert[PATHLEN], key[PATHLEN];
  char err[300];
} serve_config;

static int parse_uint(const char *v, unsigned lo, unsigned hi, unsigned *out) {
  uint32_t x;
  if (storefl_parse_u32(v, lo, hi, &x))
    return -1;
  *out = x;
  return 0;
}

static int copy_str(char *dst, size_t cap, const char *v) {
  if (strlen(v) >= cap)
    return -1;
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *value) {
  serve_config *c = user;
  int bad = 0;
  if (strcmp(section, "server") == 0) {
    if (!strcmp(name, "listen"))
      bad = copy_str(c->listen, sizeof c->listen, value);
    else if (!strcmp(name, "max_sessions"))
      bad = parse_uint(value, 1, 1000000, &c->max_sessions);
    else if (!strcmp(name, "idle_timeout_s"))
      bad = parse_uint(value, 1, 86400, &c->idle_timeout_s);
    else if (!strcmp(name, "max_handshakes"))
      bad = parse_uint(value, 1, 100000, &c->max_handshakes);
    else if (!strcmp(name, "max_handshakes_per_address")) {
      bad = parse_uint(value, 0, 100000, &c->hs_per_addr);
      c->hs_per_addr_set = !bad;
    } else if (!strcmp(name, "max_uploads"))
      bad = parse_uint(value, 1, 1000000, &c->max_uploads);
    else if (!strcmp(name, "busy_max_age_s"))
      bad = parse_uint(value, 1, 3600, &c->busy_max_age_s);
    else if (!strcmp(name, "store_rate"))
      bad = storefl_parse_double(value, 0, 1e6, &c->store_rate);
    else if (!strcmp(name, "store_burst"))
      bad = parse_uint(value, 1, 1000000, &c->store_burst);
    else if (!strcmp(name, "block_size")) {
      bad = parse_uint(value, 16, 1024, &c->block_size) || (c->block_size & (c->block_size - 1));
    } else if (!strcmp(name, "q_block")) {
      if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes"))
        c->q_block = 1;
      else if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no"))
        c->q_block = 0;
      else
        bad = 1;
    } else
      bad = 2;
  } else if (strcmp(section, "dtls") == 0) {
    if (!strcmp(name, "psk_keys"))
      bad = copy_str(c->psk_keys, sizeof c->psk_keys, value);
    else if (!strcmp(name, "psk_hint"))
      bad = copy_str(c->psk_hint, sizeof c->psk_hint, value);
    else if (!strcmp(name, "ca"))
      bad = copy_str(c->ca, sizeof c->ca, value);
    else if (!strcmp(name, "cert"))
      bad = copy_str(c->cert, sizeof c->cert, value);
    else if (!strcmp(name, "key"))
      bad = copy_str(c->key, sizeof c->key, value);
    else
      bad = 2;
  }
  if (bad) {
    snprintf(c->err, sizeof c->err, "[%s] %s: %s", section, name, bad == 2 ? "unknown key" : "invalid value");
    return 0;
  }
  return 1;
}

/* ---- the service adapter: storefl_agg responses as transport replies ---------------------------- */

typedef struct adapter {
  storefl_agg *agg;
  storefl_server *server; /* NULL until the endpoint is up */
  unsigned early;         /* changes reported before the server existed */
} adapter;

static void release_agg(void *owner) {
  storefl_agg_response *r = owner;
  storefl_agg_response_release(r);
  free(r);
}

/* Moves *resp into r (heap copy owned by r->owner). */
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
    memcpy(r->etag, box->etag, STOREFL_ETAG_LEN); /* the first 8 bytes of the model digest */
  r->max_age_s = box->max_age_s;
  r->release = release_agg;
  r->owner = box;
  return STOREFL_OK;
}

static int svc_model(void *ctx, storefl_server_reply *r) {
  adapter *a = ctx;
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  int rc = storefl_agg_handle_model(a->agg, NULL, 0, &resp);
  return to_reply(rc, &resp, r);
}

static int svc_round(void *ctx, storefl_server_reply *r) {
  adapter *a = ctx;
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  int rc = storefl_agg_handle_round(a->agg, &resp);
  return to_reply(rc, &resp, r);
}

static int svc_status(void *ctx, uint32_t sessions, storefl_server_reply *r) {
  adapter *a = ctx;
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  int rc = storefl_agg_handle_status(a->agg, sessions, &resp);
  return to_reply(rc, &resp, r);
}

static int svc_update(void *ctx, const char *identity, int cf, const uint8_t *body, size_t len,
                      storefl_server_reply *r) {
  adapter *a = ctx;
  storefl_agg_response resp;
  memset(&resp, 0, sizeof resp);
  int rc = storefl_agg_handle_update(a->agg, identity, cf, body, len, &resp);
  return to_reply(rc, &resp, r);
}

static void svc_tick(void *ctx) {
  adapter *a = ctx;
  (void)storefl_agg_tick(a->agg);
}

static void on_changed(void *ctx, unsigned changed) {
  adapter *a = ctx;
  unsigned m = (changed & STOREFL_AGG_CHANGED_ROUND ? STOREFL_SERVER_CHANGED_ROUND : 0) |
               (changed & STOREFL_AGG_CHANGED_MODEL ? STOREFL_SERVER_CHANGED_MODEL : 0);
  if (a->server)
    storefl_server_notify(a->server, m);
  else
    a->early |= m;
}

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-aggregator serve - run the federated rounds over CoAP + DTLS\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-aggregator serve --config FILE [--listen HOST:PORT] [--insecure-dev]\n"
               "\n"
               "DESCRIPTION\n"
               "  Serves the aggregator's resources over CoAP (RFC 7252) on DTLS 1.2 (UDP):\n"
               "    GET  /v1/model   the global model (CBOR), block-wise (Block2 / Q-Block2); ETag = the\n"
               "                     first 8 bytes of the model digest; a request carrying the current\n"
               "                     ETag gets 2.03 Valid without a body; observable: new models notify.\n"
               "    GET  /v1/round   the current round and its parameters; observable.\n"
               "    POST /v1/update  a store's update (application/cbor, Block1 / Q-Block1) up to\n"
               "                     [round] max_upload_bytes (4.13 beyond, on the first block); the\n"
               "                     answer is the receipt (2.04), sent only once the update is durable.\n"
               "    GET  /v1/status  round, participants so far, live sessions, health.\n"
               "  Stores authenticate with a pre-shared key (identity = store id; keys file [dtls]\n"
               "  psk_keys, which must not be readable by group or others) or an ECDSA certificate\n"
               "  issued by the [dtls] ca (store id = subject CN). The store id given to the service\n"
               "  logic is always the DTLS identity, never a field of the body (an update naming another\n"
               "  store gets 4.03). Idle sessions expire; their number is bounded. Each store's requests\n"
               "  are rate-limited by a token bucket ([server] store_rate per second, store_burst; default\n"
               "  10/s, 100): over it a request gets 5.03 with Max-Age = seconds until it may retry, as\n"
               "  does a new upload beyond [server] max_uploads in progress. SIGINT or SIGTERM\n"
               "  stops the server cleanly (the database is closed; acknowledged updates are durable).\n"
               "\n"
               "OPTIONS\n"
               "  --config FILE       aggregator INI: the service's sections (docs/aggregator.md), the\n"
               "                      transport's [server] and [dtls] sections (docs/network.md), and\n"
               "                      [ledger] (docs/privacy.md): key = the ECDSA P-256 signing key of\n"
               "                      the audit ledger (created 0600 if missing; each closed round\n"
               "                      appends a signed entry, see storefl-aggregator audit);\n"
               "                      epsilon_cap = per-store cap (an update that would pass it gets\n"
               "                      4.03; 0 or absent: no cap); enrolment = FILE of store ids, one\n"
               "                      per line (mode 0600). In rounds with sampling (q < 1) the ledger\n"
               "                      charges every enrolled store: the enrolment file if given, else\n"
               "                      the stores of [dtls] psk_keys. With a ledger, q < 1 and neither,\n"
               "                      serve refuses to start.\n"
               "  --listen HOST:PORT  overrides [server] listen (default 127.0.0.1:5684)\n"
               "  --insecure-dev      plaintext CoAP without DTLS, for development only: there is no\n"
               "                      authentication, the store id is taken from a \"store=ID\" URI query.\n"
               "                      Prints a warning; never use it on a network.\n"
               "  --help              print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 stopped by a signal, 1 failure (configuration, keys, database, cannot listen),\n"
               "  2 usage error.\n"
               "\n"
               "EXAMPLES\n"
               "  scripts/make-dev-keys.sh keys --count 10\n"
               "  storefl-aggregator serve --config configs/aggregator.ini --listen 127.0.0.1:5684\n");
}

int storefl_cmd_serve(int argc, char **argv) {
  const char *config = NULL, *listen = NULL;
  int insecure = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      config = argv[++i];
    } else if (!strcmp(argv[i], "--listen") && i + 1 < argc) {
      listen = argv[++i];
    } else if (!strcmp(argv[i], "--insecure-dev")) {
      insecure = 1;
    } else {
      fprintf(stderr, "storefl-aggregator serve: unexpected argument '%s' (see --help)\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!config) {
    fprintf(stderr, "storefl-aggregator serve: --config FILE is required (see --help)\n");
    return STOREFL_EXIT_USAGE;
  }
  char err[512];
  storefl_agg_config cfg;
  storefl_agg_config_defaults(&cfg);
  if (storefl_agg_config_load(config, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "storefl-aggregator serve: %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  storefl_log_set_level(cfg.log_level);
  serve_config sc;
  memset(&sc, 0, sizeof sc);
  snprintf(sc.listen, sizeof sc.listen, "127.0.0.1:%d", STOREFL_COAP_DEFAULT_PORT);
  sc.q_block = 1;
  /* A store agent makes ~3 requests per sync (round, update, model); 10/s sustained with bursts of
   * 100 is far above that and bounds what one misbehaving store can cost (docs/RELIABILITY.md). */
  sc.store_rate = 10;
  sc.store_burst = 100;
  int prc = ini_parse(config, on_ini, &sc);
  if (prc != 0 || sc.err[0]) {
    /* The file's sections were checked by storefl_agg_config_load; inih returns the failing line. */
    fprintf(stderr, "storefl-aggregator serve: %s:%d: %s\n", config, prc,
            sc.err[0] ? sc.err : "cannot parse");
    return STOREFL_EXIT_FAIL;
  }
  if (listen && copy_str(sc.listen, sizeof sc.listen, listen) != 0) {
    fprintf(stderr, "storefl-aggregator serve: --listen too long\n");
    return STOREFL_EXIT_USAGE;
  }
  storefl_server_opts so;
  memset(&so, 0, sizeof so);
  char host[256];
  uint16_t port = insecure ? 5683 : STOREFL_COAP_DEFAULT_PORT;
  if (storefl_parse_hostport(sc.listen, host, sizeof host, &port) != 0) {
    fprintf(stderr, "storefl-aggregator serve: invalid listen address '%s' (HOST:PORT)\n", sc.listen);
    return STOREFL_EXIT_USAGE;
  }
  so.host = host;
  so.port = port;
  so.insecure_dev = insecure;
  so.max_upload_bytes = cfg.max_upload_bytes;
  so.max_sessions = sc.max_sessions;
  so.idle_timeout_s = sc.idle_timeout_s;
  so.max_handshakes = sc.max_handshakes;
  if (sc.hs_per_addr_set)
    so.max_handshakes_per_addr = sc.hs_per_addr ? sc.hs_per_addr : STOREFL_SERVER_NO_LIMIT;
  so.max_uploads = sc.max_uploads;
  so.busy_max_age_s = sc.busy_max_age_s;
  so.store_rate = sc.store_rate;
  so.store_burst = sc.store_burst;
  so.block_size = sc.block_size;
  so.no_q_block = !sc.q_block;

  storefl_psk_table *psk = NULL;
  if (insecure) {
    fprintf(stderr,
            "\n"
            "  !!! WARNING: --insecure-dev: plaintext CoAP, NO DTLS, NO AUTHENTICATION !!!\n"
            "  !!! Anyone who can reach %s can read the model and upload updates\n"
            "  !!! as any store. Development only: never use it on a network.\n\n",
            sc.listen);
    SFL_WARN("serve", "INSECURE development mode: plaintext CoAP without authentication on %s", sc.listen);
  } else {
    if (sc.psk_keys[0]) {
      if (storefl_psk_table_load(sc.psk_keys, &psk, err, sizeof err) != 0) {
        fprintf(stderr, "storefl-aggregator serve: %s\n", err);
        return STOREFL_EXIT_FAIL;
      }
      so.dtls.psk = psk;
      so.dtls.psk_hint = sc.psk_hint[0] ? sc.psk_hint : NULL;
    }
    if (sc.cert[0] || sc.key[0] || sc.ca[0]) {
      so.dtls.ca_file = sc.ca[0] ? sc.ca : NULL;
      so.dtls.cert_file = sc.cert[0] ? sc.cert : NULL;
      so.dtls.key_file = sc.key[0] ? sc.key : NULL;
    }
    if (!psk && !so.dtls.cert_file) {
      fprintf(stderr, "storefl-aggregator serve: [dtls] needs psk_keys and/or ca, cert and key "
                      "(or --insecure-dev for a plaintext development server)\n");
      return STOREFL_EXIT_FAIL;
    }
  }

  adapter a;
  memset(&a, 0, sizeof a);
  storefl_agg_options ao;
  memset(&ao, 0, sizeof ao);
  ao.notify = on_changed;
  ao.notify_ctx = &a;
  /* The ledger ([ledger] key, epsilon_cap) is the service's own (agg_service.c). Its enrolment list -
   * the stores a sampled round charges whether selected or not - is the [ledger] enrolment file, else
   * the PSK keys file. */
  storefl_enrolment enrol;
  memset(&enrol, 0, sizeof enrol);
  const char **enrolled = NULL;
  size_t n_enrolled = 0;
  if (cfg.signing_key[0] && cfg.enrolment[0]) {
    if (storefl_enrolment_load(cfg.enrolment, &enrol, err, sizeof err) != 0) {
      fprintf(stderr, "storefl-aggregator serve: [ledger] enrolment: %s\n", err);
      storefl_psk_table_free(psk);
      return STOREFL_EXIT_FAIL;
    }
    n_enrolled = enrol.n;
  } else if (cfg.signing_key[0]) {
    n_enrolled = storefl_psk_table_count(psk);
  }
  if (cfg.signing_key[0] && cfg.participation_q < 1.0 && n_enrolled == 0) {
    fprintf(stderr,
            "storefl-aggregator serve: [round] participation_q = %g claims amplification by sampling, so the "
            "ledger must charge every enrolled store each round, but there is no enrolment list: set "
            "[ledger] enrolment = FILE (store ids, one per line, mode 0600) or use [dtls] psk_keys\n",
            cfg.participation_q);
    storefl_enrolment_free(&enrol);
    storefl_psk_table_free(psk);
    return STOREFL_EXIT_FAIL;
  }
  if (n_enrolled) {
    enrolled = calloc(n_enrolled, sizeof *enrolled);
    if (!enrolled) {
      fprintf(stderr, "storefl-aggregator serve: out of memory\n");
      storefl_enrolment_free(&enrol);
      storefl_psk_table_free(psk);
      return STOREFL_EXIT_FAIL;
    }
    for (size_t i = 0; i < n_enrolled; i++)
      enrolled[i] = enrol.n ? enrol.ids[i] : storefl_psk_table_id(psk, i);
    ao.enrolled = enrolled;
    ao.n_enrolled = n_enrolled;
  }
  int rc = storefl_agg_open(&cfg, &ao, &a.agg);
  free(enrolled);
  storefl_enrolment_free(&enrol);
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator serve: cannot open the service (%s): %s\n", cfg.db_path,
            storefl_strerror(rc));
    storefl_psk_table_free(psk);
    return STOREFL_EXIT_FAIL;
  }
  if (cfg.signing_key[0])
    SFL_INFO("serve", "ledger %s: %zu enrolled store(s) (%s), cap %g", cfg.signing_key, n_enrolled,
             cfg.enrolment[0] ? cfg.enrolment : "the PSK keys file", cfg.epsilon_cap);
  storefl_server_service svc = {&a, svc_model, svc_round, svc_status, svc_update, svc_tick};
  storefl_server *srv = NULL;
  rc = storefl_server_open(&so, &svc, &srv, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator serve: %s\n", err);
    storefl_agg_close(a.agg);
    storefl_psk_table_free(psk);
    return STOREFL_EXIT_FAIL;
  }
  a.server = srv;
  if (a.early)
    storefl_server_notify(srv, a.early);

  if (storefl_cli_catch_stop_signals() != 0)
    fprintf(stderr, "storefl-aggregator serve: cannot install the SIGINT/SIGTERM handlers: %s\n",
            strerror(errno));
  signal(SIGPIPE, SIG_IGN);

  SFL_INFO("serve", "listening on %s (%s%s%s), %zu PSK store(s), upload cap %llu bytes", sc.listen,
           insecure ? "plaintext CoAP" : "DTLS", psk ? " PSK" : "", so.dtls.cert_file ? " certificates" : "",
           storefl_psk_table_count(psk), (unsigned long long)cfg.max_upload_bytes);
  rc = storefl_server_run(srv, &storefl_cli_stop);
  SFL_INFO("serve", "stopping (%s)", rc ? "I/O error" : "signal");
  storefl_server_close(srv);
  storefl_agg_close(a.agg);
  storefl_psk_table_free(psk);
  return rc ? STOREFL_EXIT_FAIL : STOREFL_EXIT_OK;
}
