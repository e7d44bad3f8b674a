/* storefl-aggregator serve's ledger and budget hooks; see serve_ledger.h. */
#include "serve_ledger.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/ledger.h"
#include "storefl/log.h"

struct storefl_serve_ledger {
  storefl_signer *signer;
  sqlite3 *db; /* a second connection to the service's database, for the budget check */
  double cap;
  storefl_str *population; /* enrolled store ids; strings owned (population_buf) */
  char *population_buf;
  uint32_t n_population;
};

int storefl_serve_ledger_set_population(storefl_serve_ledger *l, const char *const *ids, size_t n) {
  if (!l || (n > 0 && !ids) || n > STOREFL_MAX_PARTICIPANTS)
    return STOREFL_ERR_INVALID;
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += strlen(ids[i]) + 1;
  storefl_str *pop = calloc(n ? n : 1, sizeof *pop);
  char *buf = malloc(total ? total : 1);
  if (!pop || !buf) {
    free(pop);
    free(buf);
    return STOREFL_ERR_NOMEM;
  }
  char *p = buf;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(ids[i]);
    memcpy(p, ids[i], len + 1);
    pop[i].ptr = p;
    pop[i].len = len;
    p += len + 1;
  }
  free(l->population);
  free(l->population_buf);
  l->population = pop;
  l->population_buf = buf;
  l->n_population = (uint32_t)n;
  return STOREFL_OK;
}

static int on_round_closed(void *ctx, sqlite3 *db, const storefl_agg_round_result *r) {
  storefl_serve_ledger *l = ctx;
  storefl_ledger_round lr;
  memset(&lr, 0, sizeof lr);
  lr.round = r->round;
  lr.mode = r->mode;
  lr.participation_q = r->participation_q;
  lr.closed_on_deadline = r->closed_on_deadline;
  lr.noise_multiplier = r->noise_multiplier;
  lr.clip_norm = r->clip_norm;
  lr.delta = r->delta;
  lr.closed_unix_ms = r->closed_unix_ms;
  memcpy(lr.model_digest, r->model_digest, sizeof lr.model_digest);
  lr.n_participants = r->n_participants;
  lr.participants = r->participants;
  lr.n_population = l->n_population;
  lr.population = l->population;
  uint64_t index = 0;
  /* Inside the service's closing transaction: model, round state and entry commit together. */
  int rc = storefl_ledger_append(db, l->signer, &lr, &index);
  if (rc)
    SFL_ERROR("ledger", "round %llu: cannot append the ledger entry: %s", (unsigned long long)r->round,
              storefl_strerror(rc));
  else
    SFL_INFO("ledger", "round %llu: entry %llu signed (%u participants)", (unsigned long long)r->round,
             (unsigned long long)index, r->n_participants);
  return rc;
}

static int budget_check(void *ctx, const char *store_id, const storefl_round_msg *round) {
  storefl_serve_ledger *l = ctx;
  if (l->cap <= 0)
    return STOREFL_OK;
  /* A round with q < 1 closes on its deadline only (agg_service), which is what the ledger needs
   * to claim amplification; q = 1 rounds are charged in full. */
  int on_deadline = round->participation_q < 1.0;
  double now = 0, after = 0;
  int rc = storefl_ledger_budget_check(l->db, store_id, round->mode, round->participation_q, on_deadline,
                                       round->noise_multiplier, round->delta, l->cap, &now, &after);
  if (rc == STOREFL_ERR_BUDGET)
    SFL_WARN("ledger", "store %s: epsilon %.4g would become %.4g, over the cap %.4g", store_id, now, after,
             l->cap);
  return rc;
}

int storefl_serve_ledger_open(const char *key_path, const char *db_path, double epsilon_cap,
                              storefl_serve_ledger **out, storefl_agg_privacy *hooks, char *err,
                              size_t errlen) {
  if (!key_path || !db_path || !out || !hooks)
    return STOREFL_ERR_INVALID;
  storefl_serve_ledger *l = calloc(1, sizeof *l);
  if (!l)
    return STOREFL_ERR_NOMEM;
  l->cap = epsilon_cap;
  int created = 0;
  int rc = storefl_signer_open(key_path, &l->signer, &created);
  if (rc) {
    snprintf(err, errlen, "ledger key %s: %s%s", key_path, storefl_strerror(rc),
             rc == STOREFL_ERR_FORBIDDEN ? " (its mode must be 0600)" : "");
    storefl_serve_ledger_close(l);
    return rc;
  }
  if (created)
    SFL_INFO("ledger", "created the signing key %s (mode 0600)", key_path);
  /* Creates the ledger tables in the service's database if needed. */
  if ((rc = storefl_ledger_open_db(db_path, &l->db)) != 0) {
    snprintf(err, errlen, "ledger database %s: %s", db_path, storefl_strerror(rc));
    storefl_serve_ledger_close(l);
    return rc;
  }
  memset(hooks, 0, sizeof *hooks);
  hooks->ctx = l;
  hooks->on_round_closed = on_round_closed;
  hooks->budget_check = budget_check;
  *out = l;
  return STOREFL_OK;
}

void storefl_serve_ledger_close(storefl_serve_ledger *l) {
  if (!l)
    return;
  if (l->db)
    sqlite3_close(l->db);
  storefl_signer_free(l->signer);
  free(l->population);
  free(l->population_buf);
  free(l);
}
