/* storefl-agent run: the agent's daemon (observe rounds, join when selected, train, upload). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "budget_gate.h"
#include "cmd_net.h"
#include "net_agent.h"
#include "release.h"
#include "store_model.h"
#include "storefl/cli.h"
#include "storefl/codec.h"
#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/train.h"

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-agent run - take part in federated rounds (daemon)\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-agent run --config agent.ini [--db FILE] [--rounds N] [--poll-s S]\n"
               "\n"
               "DESCRIPTION\n"
               "  Keeps a DTLS session to the aggregator and observes GET /v1/round (RFC 7641). For each\n"
               "  open round it decides once, with the round's participation probability q drawn from\n"
               "  the CTR_DRBG, whether to take part; the decision is stored so that a restart never\n"
               "  re-draws it. When selected it fetches the round's base model (by ETag), runs the local\n"
               "  federated step on the store's purchases (the learning code's FedAvg/FOMAML step with\n"
               "  the round's local_steps and local_lr), clips the update to the round's norm C, quantizes\n"
               "  it ([upload] dtype: i8 stochastic by default, f16, f32), puts it in the store's outbox\n"
               "  and uploads it. The update stays in the outbox until the aggregator's receipt arrives,\n"
               "  across agent restarts and aggregator outages; retries back off with jitter. New models\n"
               "  are fetched when the round announcement names one.\n"
               "  Rounds with noise (sigma > 0) pass the privacy budget gate first: a round that would\n"
               "  take the store past [privacy] epsilon_cap is refused before training, and the spend is\n"
               "  recorded in the local ledger before anything is sent (see storefl-agent budget).\n"
               "  In local-mode rounds the agent itself clips the update to C, rounds it to the grid the\n"
               "  round announces (step 2^-scale_bits) and adds discrete-Gaussian noise sigma*C from the\n"
               "  CTR_DRBG before the update is encoded or written to the outbox; int8 uploads then carry\n"
               "  the grid integers (scale = step), and num_examples is sent as 1 (the count is not\n"
               "  noised). The local ledger charges the round with the store's own q (its self-sampling\n"
               "  is secret from everyone else).\n"
               "\n"
               "OPTIONS\n"
               "  --config FILE  agent INI (see storefl-agent sync --help and docs/network.md)\n"
               "  --db FILE      overrides [agent] db\n"
               "  --rounds N     exit after N acknowledged uploads (default: run until SIGINT/SIGTERM)\n"
               "  --poll-s S     re-synchronise at least every S seconds even without notifications\n"
               "                 (default 30; keeps the session and the observation alive)\n"
               "  --help         print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 stopped by a signal or after --rounds, 1 failure (configuration, database), 2 usage.\n"
               "\n"
               "EXAMPLES\n"
               "  storefl-agent run --config agent.ini\n"
               "  storefl-agent run --config agent.ini --rounds 3\n");
}

typedef struct run_state {
  int round_changed;
} run_state;

static void on_round(void *arg, const storefl_response *r) {
  run_state *s = arg;
  if (r->code == 205)
    s->round_changed = 1;
}

static int meta_u64(storefl_store *st, const char *key, uint64_t *out) {
  char buf[32];
  if (storefl_store_meta_get(st, key, buf, sizeof buf) != 0)
    return -1;
  *out = strtoull(buf, NULL, 10);
  return 0;
}

static int set_meta_u64(storefl_store *st, const char *key, uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%" PRIu64, v);
  return storefl_store_meta_set(st, key, buf);
}

/* Test-only (STOREFL_TEST_RECORD_CLEAN=DIR, never set in production): writes DIR/round-R.grid, the
 * clean clipped update on the round's grid (n int64, native byte order), computed apart from the
 * release by the same deterministic clip and rounding, so that a test can show what the outbox and
 * the wire carry differs from it by the noise. It stays on the store's machine, like the raw data. */
static int record_clean_for_test(const char *dir, const storefl_round_msg *round, const float *delta,
                                 size_t n) {
  float *copy = malloc(n ? n * sizeof *copy : 1);
  int64_t *grid = malloc(n ? n * sizeof *grid : 1);
  int rc = copy && grid ? STOREFL_OK : STOREFL_ERR_NOMEM;
  if (!rc) {
    memcpy(copy, delta, n * sizeof *copy);
    storefl_dp_span sp = {copy, n};
    rc = storefl_dp_clip(&sp, 1, round->clip_norm, NULL);
    if (!rc)
      rc = storefl_dp_to_grid(&sp, 1, ldexp(1.0, -(int)round->scale_bits), round->clip_norm, grid, NULL);
  }
  char path[4096];
  FILE *f = NULL;
  if (!rc) {
    snprintf(path, sizeof path, "%s/round-%" PRIu64 ".grid", dir, round->round);
    f = fopen(path, "wb");
    rc = f && fwrite(grid, sizeof *grid, n, f) == n ? STOREFL_OK : STOREFL_ERR_IO;
    if (f && fclose(f) != 0)
      rc = STOREFL_ERR_IO;
  }
  free(copy);
  free(grid);
  return rc;
}

/* The round's decision, written in one meta value ("ROUND 1" selected, "ROUND 0" not) so that it is
 * atomic; "decided_round" (the round alone) is still written after it for older readers. */
static int get_decision(storefl_store *st, uint64_t *round, int *selected) {
  char buf[48];
  unsigned long long r;
  int sel;
  if (storefl_store_meta_get(st, "round_decision", buf, sizeof buf) == 0 &&
      sscanf(buf, "%llu %d", &r, &sel) == 2) {
    *round = r;
    *selected = sel == 1;
    return 0;
  }
  *selected = 0; /* a decision recorded by an older agent: its outcome is unknown */
  return meta_u64(st, "decided_round", round);
}

static int item_for_round(void *user, const storefl_outbox_item *it) {
  uint64_t *round = user;
  if (it->round == *round)
    *round = 0; /* found */
  return 0;
}

/* 1 if the outbox holds an update for round (queued, sent or rejected). */
static int outbox_has(storefl_store *st, uint64_t round) {
  uint64_t r = round;
  if (storefl_store_outbox_list(st, item_for_round, &r) != 0)
    return 1; /* cannot tell: do not train a second update */
  return r == 0;
}

/* Trains on the store's data from the stored global model (which must be the round's base) and
 * enqueues the update. Local mode: the update is clipped, put on the round's grid and noised here,
 * before it is encoded or written to the outbox - nothing un-noised leaves this function. */
static int contribute(const storefl_agent_net_config *c, storefl_store *st, const storefl_round_msg *round,
                      mbedtls_ctr_drbg_context *drbg, storefl_rng *rng) {
  storefl_model *global = NULL, *delta = NULL;
  storefl_agent_data d;
  memset(&d, 0, sizeof d);
  void *blob = NULL;
  size_t blob_len = 0;
  uint8_t *body = NULL;
  size_t body_len = 0;
  uint64_t version = 0;
  uint8_t digest[32];
  int rc = storefl_agent_load_model(st, "global", &global, &version, digest);
  if (rc == 0 && version != round->model_version)
    rc = STOREFL_ERR_CONFLICT;
  if (rc) {
    SFL_WARN("run", "round %" PRIu64 ": base model %" PRIu64 " not available locally (%s)", round->round,
             round->model_version, storefl_strerror(rc));
    goto out;
  }
  if ((rc = storefl_agent_load_catalog(st, global->cfg.buckets, &d)) != 0 ||
      (rc = storefl_agent_load_profiles(st, &d, NULL)) != 0)
    goto out;
  storefl_train_config tc;
  storefl_train_config_default(&tc);
  if (round->local_steps)
    tc.steps = round->local_steps;
  if (round->local_lr > 0)
    tc.optim.lr = (float)round->local_lr;
  uint32_t seed = 0;
  if (mbedtls_ctr_drbg_random(drbg, (unsigned char *)&seed, sizeof seed) == 0)
    tc.seed = seed; /* negatives sampling: not privacy-relevant, but no two rounds alike */
  storefl_train_data td = {d.cat, (const storefl_profile *const *)d.profiles, d.n_profiles, INT64_MIN,
                           INT64_MAX};
  size_t n_examples = 0;
  if ((rc = storefl_model_create(&global->cfg, &delta)) != 0 ||
      (rc = storefl_local_update(global, &td, &tc, delta, &n_examples)) != 0)
    goto out;
  int local = round->mode == STOREFL_PRIVACY_LOCAL;
  if (local) {
    const char *rec = getenv("STOREFL_TEST_RECORD_CLEAN");
    if (rec && *rec && (rc = record_clean_for_test(rec, round, delta->block, delta->numel)) != 0)
      goto out;
  }
  /* Names and shapes in wire order come from the model message as received. */
  storefl_model_msg mm;
  double norm = 0;
  if ((rc = storefl_store_get_model(st, "global", version, NULL, NULL, &blob, &blob_len)) != 0 ||
      (rc = storefl_model_decode(blob, blob_len, blob_len, &mm)) != 0)
    goto out;
  rc = storefl_agent_release_update(&mm, delta, c->store_id, round, n_examples, c->dtype, drbg, rng, &norm,
                                    &body, &body_len);
  if (rc == 0)
    rc = storefl_store_outbox_enqueue(st, round->round, body, body_len, storefl_agent_now_ms(), NULL);
  if (rc == 0)
    SFL_INFO("run",
             "round %" PRIu64
             ": trained on %zu purchases, update norm %.4g (clip %.4g)%s, %zu bytes (%s) queued",
             round->round, n_examples, norm, round->clip_norm,
             local ? ", noised on the grid (local mode)" : "", body_len, storefl_dtype_name(c->dtype));
out:
  free(body);
  free(blob);
  storefl_model_free(delta);
  storefl_model_free(global);
  storefl_agent_data_free(&d);
  return rc;
}

/* Decides once per round whether to join, and contributes when selected. Private rounds (sigma > 0)
 * go through the privacy budget gate: it refuses a round that would take the store past its cap,
 * draws Bernoulli(q) from the CSPRNG and records the spend in the local ledger before anything is
 * sent. Rounds without noise carry no privacy accounting: participation is drawn with q alone. */
static void maybe_join(const storefl_agent_net_config *c, storefl_store *st, const storefl_round_msg *r,
                       mbedtls_ctr_drbg_context *drbg, storefl_rng *rng) {
  if (r->state != STOREFL_ROUND_OPEN)
    return;
  uint64_t decided = 0;
  int was_selected = 0;
  if (get_decision(st, &decided, &was_selected) == 0 && decided >= r->round) {
    /* Selected, but the agent stopped (kill, power cut, crash) between the decision and the
     * outbox insert: nothing of this round was sent, so train now; the draw is not repeated
     * (scripts/agent-powercut.sh, kind "train"). The outbox holds one update per round at most. */
    if (decided == r->round && was_selected && !outbox_has(st, r->round)) {
      SFL_INFO("run", "round %" PRIu64 ": selected before a restart, no update queued yet: training now",
               r->round);
      int rc = contribute(c, st, r, drbg, rng);
      if (rc && rc != STOREFL_ERR_CONFLICT)
        SFL_ERROR("run", "round %" PRIu64 ": no update: %s", r->round, storefl_strerror(rc));
    }
    return;
  }
  int selected = 1;
  if (r->noise_multiplier > 0) {
    storefl_agent_gate g;
    memset(&g, 0, sizeof g);
    int rc = storefl_agent_budget_gate(st, rng, r, c->epsilon_cap, storefl_agent_now_ms() / 1000, &g);
    if (rc == STOREFL_ERR_BUDGET) {
      SFL_WARN("run", "round %" PRIu64 ": refused by the privacy budget: %s", r->round, g.reason);
      selected = 0;
    } else if (rc) {
      SFL_ERROR("run", "round %" PRIu64 ": budget gate failed: %s", r->round, storefl_strerror(rc));
      return; /* undecided: try again on the next announcement */
    } else {
      selected = g.participate;
      SFL_INFO("run", "round %" PRIu64 ": epsilon %.4g -> %.4g of %.4g (q charged %.3g)%s%s", r->round,
               g.eps_now, g.eps_after, g.cap, g.q_charged, g.reason[0] ? ": " : "", g.reason);
    }
  } else if (r->participation_q < 1.0) {
    uint32_t u = 0;
    if (mbedtls_ctr_drbg_random(drbg, (unsigned char *)&u, sizeof u) != 0)
      return; /* no decision without randomness; try again later */
    selected = (double)u < r->participation_q * 4294967296.0;
  }
  /* The decision is durable before anything else happens: a restart must not re-draw it. */
  char dec[48];
  snprintf(dec, sizeof dec, "%" PRIu64 " %d", r->round, selected);
  if (storefl_store_meta_set(st, "round_decision", dec) != 0 ||
      set_meta_u64(st, "decided_round", r->round) != 0)
    return;
  SFL_INFO("run", "round %" PRIu64 ": %s (q = %.3g, sigma = %.3g)", r->round,
           selected ? "selected" : "not taking part", r->participation_q, r->noise_multiplier);
  if (selected) {
    int rc = contribute(c, st, r, drbg, rng);
    if (rc && rc != STOREFL_ERR_CONFLICT)
      SFL_ERROR("run", "round %" PRIu64 ": no update: %s", r->round, storefl_strerror(rc));
  }
}

int storefl_cmd_run(int argc, char **argv) {
  const char *config = NULL, *db = NULL;
  long rounds = 0, poll_s = 30;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      config = argv[++i];
    } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
      db = argv[++i];
    } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
      rounds = strtol(argv[++i], NULL, 10);
    } else if (!strcmp(argv[i], "--poll-s") && i + 1 < argc) {
      poll_s = strtol(argv[++i], NULL, 10);
    } else {
      fprintf(stderr, "storefl-agent run: unexpected argument '%s' (see --help)\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!config || rounds < 0 || poll_s < 1) {
    fprintf(stderr,
            "storefl-agent run: --config FILE is required; --rounds >= 0, --poll-s >= 1 (see --help)\n");
    return STOREFL_EXIT_USAGE;
  }
  char err[512] = {0};
  storefl_agent_net_config c;
  storefl_agent_net_config_defaults(&c);
  if (storefl_agent_net_config_load(config, &c, err, sizeof err) != 0) {
    fprintf(stderr, "storefl-agent run: %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  if (db)
    snprintf(c.db, sizeof c.db, "%s", db);
  storefl_store *st = NULL;
  if (storefl_store_open(c.db, NULL, &st, err, sizeof err) != 0) {
    fprintf(stderr, "storefl-agent run: %s: %s\n", c.db, err);
    return STOREFL_EXIT_FAIL;
  }
  mbedtls_ctr_drbg_context *drbg = NULL;
  storefl_rng *rng = NULL;
  if (storefl_agent_drbg_new(&drbg) != 0 || storefl_rng_create("storefl-agent run", &rng) != 0) {
    fprintf(stderr, "storefl-agent run: no entropy for the CTR_DRBG\n");
    storefl_agent_drbg_free(drbg);
    storefl_store_close(st);
    return STOREFL_EXIT_FAIL;
  }
  if (storefl_cli_catch_stop_signals() != 0)
    fprintf(stderr, "storefl-agent run: cannot install the SIGINT/SIGTERM handlers: %s\n", strerror(errno));

  run_state rs = {1};
  storefl_client *cl = NULL;
  int failures = 0;
  long done = 0;
  int64_t next_sync = 0;
  while (!storefl_cli_stop && (rounds == 0 || done < rounds)) {
    if (!cl) {
      if (storefl_agent_connect(&c, &cl, err, sizeof err) != 0 ||
          storefl_client_observe(cl, "v1/round", on_round, &rs, err, sizeof err) != 0) {
        storefl_client_close(cl);
        cl = NULL;
        int64_t wait = storefl_agent_backoff_ms(&c, ++failures, drbg);
        SFL_WARN("run", "aggregator unreachable (%s); retry in %lld ms", err, (long long)wait);
        for (int64_t t = 0; t < wait && !storefl_cli_stop; t += 100) {
          struct timespec ts = {0, 100000000};
          nanosleep(&ts, NULL);
        }
        continue;
      }
      failures = 0;
      rs.round_changed = 1;
    }
    int64_t now = storefl_agent_now_ms();
    if (rs.round_changed || now >= next_sync) {
      rs.round_changed = 0;
      next_sync = now + poll_s * 1000;
      storefl_sync_result res;
      int rc = storefl_agent_sync(&c, st, cl, &res, err, sizeof err);
      if (rc == 0 && res.uploaded)
        done++;
      if (rc == 0 && res.have_round) {
        maybe_join(&c, st, &res.round, drbg, rng);
        /* Upload what was just queued without waiting for the next notification. */
        rc = storefl_agent_sync(&c, st, cl, &res, err, sizeof err);
        if (rc == 0 && res.uploaded)
          done++;
        if (rc == 0 && res.pending_left)
          next_sync = storefl_agent_now_ms() + 1000;
      }
      if (rc == STOREFL_ERR_UNAVAILABLE || rc == STOREFL_ERR_UNAUTHORIZED) {
        SFL_WARN("run", "session lost (%s); reconnecting", err);
        storefl_client_close(cl);
        cl = NULL;
        continue;
      }
    }
    if (storefl_client_poll(cl, 500) != 0) {
      storefl_client_close(cl);
      cl = NULL;
    }
  }
  SFL_INFO("run", "stopping after %ld acknowledged upload(s)", done);
  storefl_client_close(cl);
  storefl_agent_drbg_free(drbg);
  storefl_rng_free(rng);
  storefl_store_close(st);
  return STOREFL_EXIT_OK;
}
