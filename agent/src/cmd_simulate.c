/* storefl-agent simulate: the scale campaign (see the --help text below and docs/demo.md). */
#include "cmd_simulate.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <mbedtls/sha256.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget_gate.h"
#include "cmd_store.h"
#include "eval_data.h"
#include "eval_models.h"
#include "eval_run.h"
#include "net_agent.h"
#include "release.h"
#include "sim_engine.h"
#include "store_model.h"
#include "storefl/cli.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/model_wire.h"
#include "storefl/parse.h"
#include "storefl/stats.h"
#include "storefl/train.h"

#define SIM_MAX_STORES 20000

static void usage(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent simulate - many stores' agents in one process against a real aggregator\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent simulate --stores-dir DIR --ids FILE --keys DIR --rounds R\n"
          "                         (--per-round T | --self-select) [--address HOST:PORT]\n"
          "                         [--data FILE.csv[.gz]] [--dtype i8|f16|f32] [--epsilon-cap E]\n"
          "                         [--inflight U] [--handshakes H] [--summary FILE.json]\n"
          "\n"
          "DESCRIPTION\n"
          "  Runs the agents of every store listed in --ids (thousands: e.g. every eligible customer\n"
          "  of the export, cut by 'storefl-agent partition') in one process, each with its own DTLS\n"
          "  PSK session (identity = store id, key DIR/<id>.psk from scripts/make-dev-keys.sh) and its\n"
          "  own SQLite store DIR/<id>.db, against a real 'storefl-aggregator serve'. One libcoap\n"
          "  context holds the sessions; a single-threaded event loop keeps at most U uploads and H\n"
          "  handshakes in flight (agent/src/sim_engine.h).\n"
          "\n"
          "  Each round: the round announcement is read (GET /v1/round); the round's base model is\n"
          "  fetched once for the process when it changed (GET /v1/model; every participant would\n"
          "  download these bytes); T distinct stores are drawn uniformly from the CSPRNG (the\n"
          "  aggregator runs the round with q = 1 and target T, i.e. server-side cohort selection:\n"
          "  the round closes when the T-th update is durable). With --self-select instead, every store\n"
          "  decides for itself with the round's q, as 'storefl-agent run' does, and the round closes at\n"
          "  its deadline. Either way a store's decision is the agent's: rounds with noise (sigma > 0)\n"
          "  go through its privacy budget gate (refused past --epsilon-cap; Bernoulli(q) from the\n"
          "  CSPRNG; the spend recorded in its local ledger before anything is sent), rounds without\n"
          "  noise draw Bernoulli(q); local-mode rounds are gated and charged the same way. Each\n"
          "  taking part, when its turn comes, runs the agent's own code path: local federated step on\n"
          "  its purchases (storefl_agent_local_update with the round's local_steps and local_lr), then\n"
          "  the agent's release step (storefl_agent_release_update, as 'run'): L2 clip to the round's C\n"
          "  and quantized encoding; in local mode clip, the round's grid and discrete-Gaussian noise\n"
          "  added by the store itself before encoding. The update is queued in\n"
          "  its SQLite outbox, the upload (Block1/Q-Block1 over its DTLS session, retried with the\n"
          "  same body on 5.03/4.08/timeouts), the receipt checked and stored (outbox: sent); then its\n"
          "  session is closed, so idle stores hold no memory on either side. Only the stores in\n"
          "  flight hold an update; the global model is one shared read-only copy.\n"
          "\n"
          "  After each round closes, one line: round, participants (receipts, checked against the\n"
          "  announcement of the next round), NDCG@10 and HR@10 of new products of the new global model\n"
          "  on the held-out events of the simulated stores (the few-shot split of the evaluation, as\n"
          "  'storefl-agent campaign watch' computes them; needs --data), bytes up per participant\n"
          "  (update bodies the aggregator acknowledged) and down per participant (the model body as\n"
          "  received), and times (training, uploads, evaluation).\n"
          "\n"
          "OPTIONS\n"
          "  --stores-dir DIR   the stores' databases, DIR/<id>.db\n"
          "  --ids FILE         store ids, one per line\n"
          "  --keys DIR         the stores' PSK files, DIR/<id>.psk (mode 0600)\n"
          "  --rounds R         rounds to take part in (the aggregator must have them)\n"
          "  --per-round T      stores drawn per round (= the aggregator's target_participants)\n"
          "  --self-select      every store decides with the round's q (closes at the deadline)\n"
          "  --epsilon-cap E    the stores' own cap on cumulative epsilon (default 8, as the agent's)\n"
          "  --address A        aggregator HOST:PORT, numeric (default 127.0.0.1:5684)\n"
          "  --data FILE        the export the stores were cut from: enables the evaluation\n"
          "  --dtype D          update encoding: i8 (stochastic rounding, default), f16, f32\n"
          "  --inflight U       uploads in flight (default 16)\n"
          "  --handshakes H     DTLS handshakes in flight (default 16)\n"
          "  --summary FILE     also write every figure as one JSON object\n"
          "  --help             print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 every round closed with every drawn store's update acknowledged and counted, 1 failure,\n"
          "  2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent simulate --stores-dir stores --ids ids.txt --keys keys/stores --rounds 20 \\\n"
          "      --per-round 150 --address 127.0.0.1:21500 --data online_retail.csv.gz\n"
          "  scripts/scale-campaign.sh        (everything: partition, keys, aggregator, campaign)\n");
}

typedef struct sim_opts {
  const char *dir, *ids, *keys, *address, *data, *summary;
  unsigned long rounds, per_round, inflight, handshakes;
  storefl_dtype dtype;
  int self_select;    /* every store decides with the round's q (budget gate), rounds close at deadline */
  double epsilon_cap; /* the stores' own cap ([privacy] epsilon_cap of an agent) */
} sim_opts;

typedef struct round_stat {
  uint64_t round;
  unsigned selected, refused, participants, counted;
  uint64_t bytes_up, bytes_down;
  size_t update_bytes_min, update_bytes_max;
  double ndcg, hr, train_s, upload_s, eval_s, wall_s;
  double upload_p50, upload_p99;
} round_stat;

typedef struct sim_ctx {
  const sim_opts *o;
  storefl_sim *sim;
  char (*ids)[STOREFL_MAX_ID_LEN + 1];
  size_t n;
  /* The round being run and its base model (one shared copy). */
  storefl_round_msg round;
  storefl_model *global;
  storefl_model_msg model_msg; /* views into model_body */
  uint8_t *model_body;
  size_t model_len;
  mbedtls_ctr_drbg_context *drbg;
  storefl_rng *rng; /* the privacy layer's CSPRNG (budget gate draws, local-mode noise) */
  unsigned refused; /* stores whose budget gate refused the round (cap) */
  /* Per store, valid during a round. */
  int64_t *outbox_id;
  size_t *up_len;
  uint8_t (*up_digest)[32]; /* SHA-256 of the body sent: the receipt must name it */
  /* Round accumulators. */
  unsigned receipts, failures;
  uint64_t bytes_up;
  size_t bmin, bmax;
  double train_s;
  double *lat;
  size_t n_lat;
  char first_error[256];
} sim_ctx;

static int open_store(const sim_ctx *c, size_t i, storefl_store **st) {
  char path[STOREFL_AGENT_PATH_MAX + 80], err[256];
  snprintf(path, sizeof path, "%s/%s.db", c->o->dir, c->ids[i]);
  int rc = storefl_store_open(path, NULL, st, err, sizeof err);
  if (rc)
    SFL_ERROR("simulate", "%s: %s", path, err);
  return rc;
}

/* The agent's decision for a round, as `storefl-agent run` makes it (maybe_join): rounds with noise
 * go through the privacy budget gate (refused past the store's cap; Bernoulli(q) from the CSPRNG;
 * the spend recorded in the store's local ledger before anything is sent); rounds without noise
 * draw Bernoulli(q) from the CTR_DRBG. Local-mode rounds are gated and charged the same way (the
 * gate charges the store's own q). The decision is stored (meta decided_round). *join = 1 to take part. */
static int decide(sim_ctx *c, storefl_store *st, size_t i, int *join) {
  const storefl_round_msg *r = &c->round;
  *join = 0;
  int rc = 0;
  if (r->noise_multiplier > 0) {
    storefl_agent_gate g;
    memset(&g, 0, sizeof g);
    rc = storefl_agent_budget_gate(st, c->rng, r, c->o->epsilon_cap, storefl_agent_now_ms() / 1000, &g);
    if (rc == STOREFL_ERR_BUDGET) {
      SFL_INFO("simulate", "%s: round %" PRIu64 " refused by the budget: %s", c->ids[i], r->round, g.reason);
      c->refused++;
      rc = 0;
    } else if (rc == 0) {
      *join = g.participate;
    }
  } else if (r->participation_q < 1.0) {
    uint32_t u = 0;
    rc = mbedtls_ctr_drbg_random(c->drbg, (unsigned char *)&u, sizeof u) ? STOREFL_ERR_CRYPTO : 0;
    *join = (double)u < r->participation_q * 4294967296.0;
  } else {
    *join = 1;
  }
  if (rc == 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, r->round);
    rc = storefl_store_meta_set(st, "decided_round", buf);
  }
  if (rc)
    SFL_ERROR("simulate", "%s: round %" PRIu64 ": no decision: %s", c->ids[i], r->round,
              storefl_strerror(rc));
  return rc;
}

/* The agent's part of the round up to the upload: what `storefl-agent run` does when selected. */
static int train_one(void *arg, size_t i, uint8_t **body, size_t *len) {
  sim_ctx *c = arg;
  storefl_store *st = NULL;
  storefl_model *delta = NULL;
  double t0 = storefl_cmd_now();
  int rc = open_store(c, i, &st);
  if (rc)
    return rc;
  if (!c->o->self_select) {
    /* Drawn into the cohort: the store's own gate still decides (its cap, its ledger). */
    int join = 0;
    if ((rc = decide(c, st, i, &join)) != 0 || !join) {
      storefl_store_close(st);
      c->train_s += storefl_cmd_now() - t0;
      return rc ? rc : STOREFL_ERR_NOT_FOUND;
    }
  }
  storefl_train_config tc;
  storefl_train_config_default(&tc);
  if (c->round.local_steps)
    tc.steps = c->round.local_steps;
  if (c->round.local_lr > 0)
    tc.optim.lr = (float)c->round.local_lr;
  uint32_t seed = 0;
  if (mbedtls_ctr_drbg_random(c->drbg, (unsigned char *)&seed, sizeof seed) == 0)
    tc.seed = seed;
  size_t n_examples = 0;
  if ((rc = storefl_model_create(&c->global->cfg, &delta)) == 0)
    rc = storefl_agent_local_update(st, c->global, &tc, delta, &n_examples);
  if (rc == 0 && n_examples == 0)
    rc = STOREFL_ERR_INVALID; /* nothing to learn from: the aggregator would refuse it (no_examples) */
  if (rc == 0)                /* clip (and in local mode noise on the grid) and encode, as `run` does */
    rc = storefl_agent_release_update(&c->model_msg, delta, c->ids[i], &c->round, n_examples, c->o->dtype,
                                      c->drbg, c->rng, NULL, body, len);
  if (rc == 0) {
    rc = storefl_store_outbox_enqueue(st, c->round.round, *body, *len, storefl_agent_now_ms(),
                                      &c->outbox_id[i]);
    if (rc == STOREFL_ERR_CONFLICT)
      SFL_ERROR("simulate",
                "%s: its outbox already holds an update for round %" PRIu64
                " (a store of another campaign? partition fresh stores for a new aggregator)",
                c->ids[i], c->round.round);
  }
  if (rc == 0) {
    c->up_len[i] = *len;
    if (mbedtls_sha256_ret(*body, *len, c->up_digest[i], 0) != 0)
      rc = STOREFL_ERR_CRYPTO;
  } else {
    free(*body);
    *body = NULL;
    SFL_ERROR("simulate", "%s: no update for round %" PRIu64 ": %s", c->ids[i], c->round.round,
              storefl_strerror(rc));
  }
  storefl_model_free(delta);
  storefl_store_close(st);
  c->train_s += storefl_cmd_now() - t0;
  return rc;
}

static void uploaded(void *arg, size_t i, const storefl_sim_result *r) {
  sim_ctx *c = arg;
  storefl_receipt_msg m;
  int ok = r->rc == 0 && r->resp->code == 204 &&
           storefl_receipt_decode(r->resp->body, r->resp->len, r->resp->len, &m) == 0 &&
           m.round == c->round.round && m.store_id.len == strlen(c->ids[i]) &&
           /* the aggregator hashed exactly the bytes this store sent: the byte counts are its */
           memcmp(m.update_digest, c->up_digest[i], 32) == 0 &&
           memcmp(m.store_id.ptr, c->ids[i], m.store_id.len) == 0;
  if (!ok) {
    c->failures++;
    if (!c->first_error[0]) {
      storefl_error_msg e;
      if (r->rc == 0 && r->resp->len &&
          storefl_error_decode(r->resp->body, r->resp->len, r->resp->len, &e) == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s: %d.%02d %.*s", c->ids[i], r->resp->code / 100,
                 r->resp->code % 100, (int)e.reason.len, e.reason.ptr);
      else
        snprintf(c->first_error, sizeof c->first_error, "%s: %s", c->ids[i],
                 r->rc ? storefl_strerror(r->rc) : "invalid receipt");
    }
  } else {
    /* The receipt goes into the store's outbox, as the agent keeps it. */
    storefl_store *st = NULL;
    if (open_store(c, i, &st) == 0) {
      if (storefl_store_outbox_mark_sent(st, c->outbox_id[i], r->resp->body, r->resp->len,
                                         storefl_agent_now_ms()) != 0)
        SFL_WARN("simulate", "%s: cannot store the receipt", c->ids[i]);
      storefl_store_close(st);
    }
    if (!m.duplicate)
      c->receipts++;
    c->bytes_up += c->up_len[i];
    if (!c->bmin || c->up_len[i] < c->bmin)
      c->bmin = c->up_len[i];
    if (c->up_len[i] > c->bmax)
      c->bmax = c->up_len[i];
    c->lat[c->n_lat++] = r->latency_ms;
  }
  /* Its part of the round is over: no session held while idle (either end). */
  storefl_sim_disconnect(c->sim, i);
}

static int get_round(sim_ctx *c, size_t via, storefl_round_msg *r) {
  storefl_response resp;
  int rc = storefl_sim_request(c->sim, via, COAP_REQUEST_CODE_GET, "v1/round", -1, NULL, 0, &resp);
  if (rc == 0 && (resp.code != 205 || storefl_round_decode(resp.body, resp.len, resp.len, r) != 0))
    rc = STOREFL_ERR_INVALID;
  storefl_response_free(&resp);
  return rc;
}

/* Fetches and decodes the current model (one copy for the process). */
static int get_model(sim_ctx *c, size_t via) {
  storefl_response resp;
  int rc = storefl_sim_request(c->sim, via, COAP_REQUEST_CODE_GET, "v1/model", -1, NULL, 0, &resp);
  if (rc)
    return rc;
  if (resp.code != 205) {
    storefl_response_free(&resp);
    return STOREFL_ERR_INVALID;
  }
  storefl_model_msg msg;
  storefl_model_config cfg;
  storefl_model *m = NULL;
  rc = storefl_model_decode(resp.body, resp.len, resp.len, &msg);
  if (rc == 0)
    rc = storefl_model_config_from_tensors(msg.tensors, msg.n_tensors, &cfg);
  if (rc == 0)
    rc = storefl_model_create(&cfg, &m);
  if (rc == 0)
    rc = storefl_model_from_tensors(m, msg.tensors, msg.n_tensors);
  if (rc) {
    storefl_model_free(m);
    storefl_response_free(&resp);
    return rc;
  }
  storefl_model_free(c->global);
  free(c->model_body);
  c->global = m;
  c->model_body = resp.body; /* msg's views point into it */
  c->model_len = resp.len;
  c->model_msg = msg;
  return 0;
}

static int read_ids(const char *path, sim_ctx *c) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "simulate: cannot read %s\n", path);
    return STOREFL_ERR_IO;
  }
  size_t cap = 0;
  char line[256];
  int rc = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0])
      continue;
    if (c->n >= SIM_MAX_STORES || !storefl_store_id_valid(line, strlen(line))) {
      fprintf(stderr, "simulate: %s: too many ids or an invalid id '%s'\n", path, line);
      rc = STOREFL_ERR_INVALID;
      break;
    }
    if (c->n == cap) {
      cap = cap ? cap * 2 : 1024;
      void *p = realloc(c->ids, cap * sizeof *c->ids);
      if (!p) {
        rc = STOREFL_ERR_NOMEM;
        break;
      }
      c->ids = p;
    }
    snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", line);
  }
  if (!rc && ferror(f))
    rc = STOREFL_ERR_IO;
  fclose(f);
  if (!rc && !c->n) {
    fprintf(stderr, "simulate: %s lists no store\n", path);
    rc = STOREFL_ERR_INVALID;
  }
  return rc;
}

/* ---- evaluation (the observer's: global model, new products, held-out events of the stores) ---- */

typedef struct sim_eval {
  storefl_eval_data *d;
  storefl_eval_split *s, view;
  storefl_eval_event *events;
  storefl_eval_models *mc;
} sim_eval;

static void eval_free(sim_eval *e) {
  storefl_eval_models_free(e->mc);
  free(e->events);
  storefl_eval_split_free(e->s);
  storefl_eval_data_free(e->d);
  memset(e, 0, sizeof *e);
}

static int eval_load(const char *data, const sim_ctx *c, sim_eval *e) {
  char err[512] = {0};
  int rc = storefl_eval_data_load(data, NULL, &e->d, err, sizeof err);
  if (rc) {
    fprintf(stderr, "simulate: %s: %s\n", data, err[0] ? err : storefl_strerror(rc));
    return rc;
  }
  storefl_eval_split_opts so;
  memset(&so, 0, sizeof so);
  so.clients = STOREFL_EVAL_CUSTOMERS;
  so.regime = STOREFL_EVAL_FEW_SHOT;
  so.period = STOREFL_EVAL_TEST;
  if ((rc = storefl_eval_split_build(e->d, &so, &e->s)) != 0)
    return rc;
  uint8_t *watched = calloc(e->s->nclients ? e->s->nclients : 1, 1);
  uint8_t *seen = calloc(e->s->nclients ? e->s->nclients : 1, 1);
  e->events = malloc((e->s->nevents ? e->s->nevents : 1) * sizeof *e->events);
  if (!watched || !seen || !e->events) {
    free(watched);
    free(seen);
    return STOREFL_ERR_NOMEM;
  }
  /* Client names are the store ids partition wrote (customer ids are valid file names). */
  for (size_t cl = 0; cl < e->s->nclients; cl++)
    for (size_t i = 0; i < c->n; i++)
      if (!strcmp(e->s->client_names[cl], c->ids[i])) {
        watched[cl] = 1;
        break;
      }
  e->view = *e->s;
  e->view.nevents = 0;
  e->view.nclients_with_events = 0;
  for (size_t i = 0; i < e->s->nevents; i++)
    if (watched[e->s->events[i].client]) {
      e->events[e->view.nevents++] = e->s->events[i];
      if (!seen[e->s->events[i].client]) {
        seen[e->s->events[i].client] = 1;
        e->view.nclients_with_events++;
      }
    }
  e->view.events = e->events;
  free(watched);
  free(seen);
  return 0;
}

static int eval_global(sim_eval *e, const storefl_model *global, double *ndcg, double *hr) {
  int rc;
  if (!e->mc) {
    storefl_eval_model_config ec;
    storefl_eval_model_config_default(&ec);
    ec.model = global->cfg;
    if ((rc = storefl_eval_models_create(e->d, e->s, &ec, &e->mc)) != 0)
      return rc;
  }
  storefl_eval_method m;
  memset(&m, 0, sizeof m);
  storefl_eval_result res;
  if ((rc = storefl_eval_method_given(e->mc, global, 0, &m)) != 0)
    return rc;
  rc = storefl_eval_run(e->d, &e->view, &m, 1, &res, NULL, NULL);
  if (m.destroy)
    m.destroy(m.state);
  if (rc == 0) {
    *ndcg = res.ndcg10;
    *hr = res.hr10;
  }
  return rc;
}

/* ---- main ------------------------------------------------------------------------------------- */

/* T distinct indices of [0, n) uniformly (partial Fisher-Yates with CSPRNG draws). */
static int draw(mbedtls_ctr_drbg_context *drbg, size_t *perm, size_t n, size_t t) {
  for (size_t i = 0; i < n; i++)
    perm[i] = i;
  for (size_t i = 0; i < t && i < n; i++) {
    uint64_t u;
    if (mbedtls_ctr_drbg_random(drbg, (unsigned char *)&u, sizeof u) != 0)
      return STOREFL_ERR_CRYPTO;
    size_t j = i + (size_t)(u % (uint64_t)(n - i)); /* bias < n/2^64: irrelevant here */
    size_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
  return 0;
}

static int parse_opts(int argc, char **argv, sim_opts *o) {
  const char *v;
  for (int i = 1; i < argc; i++) {
    int m;
    uint64_t x;
    if ((m = storefl_cmd_opt(argc, argv, &i, "--stores-dir", &v)) != 0) {
      if (m < 0)
        return -1;
      o->dir = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--ids", &v)) != 0) {
      if (m < 0)
        return -1;
      o->ids = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--keys", &v)) != 0) {
      if (m < 0)
        return -1;
      o->keys = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--address", &v)) != 0) {
      if (m < 0)
        return -1;
      o->address = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--data", &v)) != 0) {
      if (m < 0)
        return -1;
      o->data = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--summary", &v)) != 0) {
      if (m < 0)
        return -1;
      o->summary = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--dtype", &v)) != 0) {
      if (m < 0 || storefl_dtype_parse(v, &o->dtype) != 0)
        return -1;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--rounds", &v)) != 0) {
      if (m < 0 || storefl_parse_u64(v, 1, 100000, &x))
        return -1;
      o->rounds = (unsigned long)x;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--per-round", &v)) != 0) {
      if (m < 0 || storefl_parse_u64(v, 1, SIM_MAX_STORES, &x))
        return -1;
      o->per_round = (unsigned long)x;
    } else if (!strcmp(argv[i], "--self-select")) {
      o->self_select = 1;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--epsilon-cap", &v)) != 0) {
      if (m < 0 || storefl_parse_double(v, 0, 1e9, &o->epsilon_cap))
        return -1;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--inflight", &v)) != 0) {
      if (m < 0 || storefl_parse_u64(v, 1, 1024, &x))
        return -1;
      o->inflight = (unsigned long)x;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--handshakes", &v)) != 0) {
      if (m < 0 || storefl_parse_u64(v, 1, 1024, &x))
        return -1;
      o->handshakes = (unsigned long)x;
    } else {
      fprintf(stderr, "storefl-agent simulate: unexpected argument '%s' (see --help)\n", argv[i]);
      return -1;
    }
  }
  return 0;
}

int storefl_cmd_simulate(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    }
  sim_opts o;
  memset(&o, 0, sizeof o);
  o.address = "127.0.0.1:5684";
  o.dtype = STOREFL_DTYPE_I8;
  o.inflight = 16;
  o.handshakes = 16;
  o.epsilon_cap = 8.0;
  if (parse_opts(argc, argv, &o) != 0)
    return STOREFL_EXIT_USAGE;
  if (!o.dir || !o.ids || !o.keys || !o.rounds || (!o.per_round && !o.self_select)) {
    fprintf(stderr, "storefl-agent simulate: --stores-dir, --ids, --keys, --rounds and --per-round (or "
                    "--self-select) are required (see --help)\n");
    return STOREFL_EXIT_USAGE;
  }
  int ret = STOREFL_EXIT_FAIL, rc;
  sim_ctx c;
  memset(&c, 0, sizeof c);
  c.o = &o;
  sim_eval ev;
  memset(&ev, 0, sizeof ev);
  round_stat *stats = calloc(o.rounds, sizeof *stats);
  size_t *perm = NULL;
  size_t nstats = 0;
  if (!stats || read_ids(o.ids, &c) != 0)
    goto out;
  if (o.per_round > c.n) {
    fprintf(stderr, "simulate: --per-round %lu is more than the %zu stores\n", o.per_round, c.n);
    goto out;
  }
  c.outbox_id = calloc(c.n, sizeof *c.outbox_id);
  c.up_len = calloc(c.n, sizeof *c.up_len);
  c.up_digest = calloc(c.n, sizeof *c.up_digest);
  c.lat = calloc(c.n, sizeof *c.lat);
  perm = calloc(c.n, sizeof *perm);
  if (!c.outbox_id || !c.up_len || !c.up_digest || !c.lat || !perm || storefl_agent_drbg_new(&c.drbg) != 0 ||
      storefl_rng_create("storefl-agent simulate", &c.rng) != 0)
    goto out;
  char host[256], err[256] = {0};
  uint16_t port = STOREFL_COAP_DEFAULT_PORT;
  if (storefl_parse_hostport(o.address, host, sizeof host, &port) != 0) {
    fprintf(stderr, "simulate: invalid --address '%s'\n", o.address);
    goto out;
  }
  storefl_sim_opts so;
  memset(&so, 0, sizeof so);
  so.host = host;
  so.port = port;
  so.max_handshakes = (unsigned)o.handshakes;
  so.q_block = 1;
  if (storefl_sim_create(&so, &c.sim, err, sizeof err) != 0) {
    fprintf(stderr, "simulate: %s\n", err);
    goto out;
  }
  for (size_t i = 0; i < c.n; i++) {
    char path[STOREFL_AGENT_PATH_MAX + 80];
    uint8_t key[STOREFL_PSK_MAX_KEY];
    size_t keylen = 0;
    snprintf(path, sizeof path, "%s/%s.psk", o.keys, c.ids[i]);
    rc = storefl_psk_key_file_read(path, key, sizeof key, &keylen, err, sizeof err);
    if (rc == 0)
      rc = storefl_sim_add_agent(c.sim, c.ids[i], key, keylen, NULL);
    memset(key, 0, sizeof key);
    if (rc) {
      fprintf(stderr, "simulate: %s: %s\n", path, err[0] ? err : storefl_strerror(rc));
      goto out;
    }
  }
  if (o.data) {
    double t = storefl_cmd_now();
    if (eval_load(o.data, &c, &ev) != 0)
      goto out;
    printf(
        "held-out: %zu new-product purchase events of %zu of the %zu stores (few-shot; loaded in %.1f s)\n",
        ev.view.nevents, ev.view.nclients_with_events, c.n, storefl_cmd_now() - t);
  }
  if (storefl_cli_catch_stop_signals() != 0)
    fprintf(stderr, "storefl-agent simulate: cannot install the SIGINT/SIGTERM handlers: %s\n",
            strerror(errno));

  printf("%5s %5s %5s | %7s %7s | %10s %10s | %7s %7s %7s %7s | %8s\n", "round", "part", "count", "NDCG@10",
         "HR@10", "B up/st", "B down/st", "train s", "up s", "eval s", "wall s", "up p99ms");
  fflush(stdout);
  uint64_t model_version = 0;
  size_t via = 0; /* the store whose session reads the round and the model */
  while (nstats < o.rounds && !storefl_cli_stop) {
    double t_round = storefl_cmd_now();
    if ((rc = get_round(&c, via, &c.round)) != 0) {
      fprintf(stderr, "simulate: GET /v1/round: %s\n", storefl_strerror(rc));
      goto out;
    }
    if (c.round.state != STOREFL_ROUND_OPEN) {
      fprintf(stderr, "simulate: the aggregator has no open round (round %" PRIu64 ")\n", c.round.round);
      goto out;
    }
    round_stat *rs = &stats[nstats];
    memset(rs, 0, sizeof *rs);
    rs->round = c.round.round;
    if (!c.global || model_version != c.round.model_version) {
      if ((rc = get_model(&c, via)) != 0) {
        fprintf(stderr, "simulate: GET /v1/model: %s\n", storefl_strerror(rc));
        goto out;
      }
      model_version = c.model_msg.model_version;
    }
    if (model_version != c.round.model_version) {
      fprintf(stderr, "simulate: the model (v%" PRIu64 ") is not the round's base (v%" PRIu64 ")\n",
              model_version, c.round.model_version);
      goto out;
    }
    storefl_sim_disconnect(c.sim, via);
    /* The cohort, and every store of it through the agent's code path. */
    size_t ncohort = 0;
    c.refused = 0;
    if (o.self_select) {
      /* Every store decides on its own, with the round's q. */
      for (size_t i = 0; i < c.n && !storefl_cli_stop; i++) {
        storefl_store *st = NULL;
        int join = 0;
        if (open_store(&c, i, &st) != 0)
          goto out;
        rc = decide(&c, st, i, &join);
        storefl_store_close(st);
        if (rc)
          goto out;
        if (join)
          perm[ncohort++] = i;
      }
      if (storefl_cli_stop)
        break;
    } else {
      if (draw(c.drbg, perm, c.n, o.per_round) != 0)
        goto out;
      ncohort = o.per_round;
    }
    c.receipts = c.failures = 0;
    c.bytes_up = 0;
    c.bmin = c.bmax = 0;
    c.train_s = 0;
    c.n_lat = 0;
    double t_up = storefl_cmd_now();
    storefl_sim_req rq = {COAP_REQUEST_CODE_POST, "v1/update",      60, train_one, uploaded, &c,
                          (unsigned)o.inflight,   &storefl_cli_stop};
    if ((rc = storefl_sim_wave(c.sim, perm, ncohort, &rq)) != 0) {
      if (storefl_cli_stop)
        break; /* reported below */
      goto out;
    }
    rs->upload_s = storefl_cmd_now() - t_up - c.train_s;
    rs->train_s = c.train_s;
    rs->participants = c.receipts;
    rs->selected = (unsigned)ncohort;
    rs->refused = c.refused;
    rs->bytes_up = c.receipts ? c.bytes_up / c.receipts : 0;
    rs->update_bytes_min = c.bmin;
    rs->update_bytes_max = c.bmax;
    rs->upload_p50 = storefl_percentile(c.lat, c.n_lat, 50);
    rs->upload_p99 = storefl_percentile(c.lat, c.n_lat, 99);
    if (c.failures) {
      fprintf(stderr, "simulate: round %" PRIu64 ": %u of %zu uploads failed (first: %s)\n", rs->round,
              c.failures, ncohort, c.first_error);
      goto out;
    }
    /* The close: the next announcement names the next round, and the number the aggregator counted. */
    storefl_round_msg next;
    memset(&next, 0, sizeof next);
    for (int t = 0; t < 6000 && !storefl_cli_stop; t++) {
      if ((rc = get_round(&c, via, &next)) != 0) {
        fprintf(stderr, "simulate: GET /v1/round: %s\n", storefl_strerror(rc));
        goto out;
      }
      if (next.round > rs->round || next.state != STOREFL_ROUND_OPEN)
        break;
      struct timespec ts = {0, 100000000};
      nanosleep(&ts, NULL);
    }
    if (next.round == rs->round && next.state == STOREFL_ROUND_OPEN) {
      fprintf(stderr, "simulate: round %" PRIu64 " did not close\n", rs->round);
      goto out;
    }
    /* Its result model: fetched now (it is the next round's base), and evaluated. */
    if ((rc = get_model(&c, via)) != 0) {
      fprintf(stderr, "simulate: GET /v1/model: %s\n", storefl_strerror(rc));
      goto out;
    }
    storefl_sim_disconnect(c.sim, via);
    model_version = c.model_msg.model_version;
    rs->bytes_down = c.model_len;
    rs->counted = (unsigned)(model_version > c.round.model_version); /* a new model: the round closed */
    rs->ndcg = rs->hr = NAN;
    if (o.data) {
      double t = storefl_cmd_now();
      if ((rc = eval_global(&ev, c.global, &rs->ndcg, &rs->hr)) != 0) {
        fprintf(stderr, "simulate: evaluation: %s\n", storefl_strerror(rc));
        goto out;
      }
      rs->eval_s = storefl_cmd_now() - t;
    }
    rs->wall_s = storefl_cmd_now() - t_round;
    printf("%5" PRIu64 " %5u %5s | %7.4f %7.4f | %10" PRIu64 " %10" PRIu64
           " | %7.1f %7.1f %7.1f %7.1f | %8.0f\n",
           rs->round, rs->participants, rs->counted ? "ok" : "NO", rs->ndcg, rs->hr, rs->bytes_up,
           rs->bytes_down, rs->train_s, rs->upload_s, rs->eval_s, rs->wall_s, rs->upload_p99);
    fflush(stdout);
    nstats++;
    if (!rs->counted) {
      fprintf(stderr, "simulate: round %" PRIu64 " closed without a new model\n", rs->round);
      goto out;
    }
  }
  if (storefl_cli_stop) {
    fprintf(stderr, "simulate: interrupted after %zu round(s)\n", nstats);
    goto out;
  }
  /* Rounds to reach 95% of the final NDCG@10. */
  long r95 = -1;
  if (o.data && nstats) {
    double fin = stats[nstats - 1].ndcg;
    for (size_t k = 0; k < nstats; k++)
      if (stats[k].ndcg >= 0.95 * fin) {
        r95 = (long)(k + 1);
        break;
      }
    printf("final NDCG@10 %.4f; 95%% of it first reached after %ld round(s)\n", fin, r95);
  }
  ret = STOREFL_EXIT_OK;
  if (o.summary) {
    FILE *f = fopen(o.summary, "w");
    if (!f) {
      fprintf(stderr, "simulate: cannot write %s\n", o.summary);
      ret = STOREFL_EXIT_FAIL;
      goto out;
    }
    fprintf(f, "{\"stores\":%zu,\"per_round\":%lu,\"dtype\":\"%s\",\"rounds_to_95pct_ndcg\":%ld,\"rounds\":[",
            c.n, o.per_round, storefl_dtype_name(o.dtype), r95);
    for (size_t k = 0; k < nstats; k++) {
      const round_stat *s = &stats[k];
      fprintf(f,
              "%s{\"round\":%" PRIu64 ",\"selected\":%u,\"refused_by_budget\":%u,\"participants\":%u,"
              "\"ndcg10\":%.6f,\"hr10\":%.6f,\"bytes_up_per_store\":%" PRIu64
              ",\"update_bytes_min\":%zu,\"update_bytes_max\":%zu,\"bytes_down_per_store\":%" PRIu64
              ",\"train_s\":%.2f,\"upload_s\":%.2f,\"eval_s\":%.2f,\"wall_s\":%.2f,\"upload_ms_p50\":%.1f,"
              "\"upload_ms_p99\":%.1f}",
              k ? "," : "", s->round, s->selected, s->refused, s->participants,
              isnan(s->ndcg) ? -1.0 : s->ndcg, isnan(s->hr) ? -1.0 : s->hr, s->bytes_up, s->update_bytes_min,
              s->update_bytes_max, s->bytes_down, s->train_s, s->upload_s, s->eval_s, s->wall_s,
              s->upload_p50, s->upload_p99);
    }
    fprintf(f, "]}\n");
    if (fclose(f) != 0)
      ret = STOREFL_EXIT_FAIL;
  }
out:
  storefl_sim_free(c.sim);
  storefl_agent_drbg_free(c.drbg);
  storefl_rng_free(c.rng);
  storefl_model_free(c.global);
  free(c.model_body);
  free(c.ids);
  free(c.outbox_id);
  free(c.up_len);
  free(c.up_digest);
  free(c.lat);
  free(perm);
  free(stats);
  eval_free(&ev);
  return ret;
}
