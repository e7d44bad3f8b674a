/* Agent-side budget gate; see budget_gate.h. */
#include "budget_gate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "storefl/accountant.h"
#include "storefl/error.h"

typedef struct replay {
  double *rdp;
  uint64_t rounds;
  int rc;
  uint64_t find_round;
  int found;
  /* Rounds mostly repeat (q, sigma): reuse the last per-round RDP instead of recomputing it. */
  int have_inc;
  double inc_q, inc_sigma, inc[STOREFL_BUDGET_ORDERS];
} replay;

static int replay_entry(void *user, const storefl_local_ledger_entry *e) {
  replay *r = user;
  if (e->round == r->find_round)
    r->found = 1;
  if (r->rdp == NULL)
    return 0;
  /* The entry's q is the q charged (storefl_agent_budget_gate writes the effective q). */
  if (!r->have_inc || r->inc_q != e->q || r->inc_sigma != e->sigma) {
    memset(r->inc, 0, sizeof r->inc);
    int rc = storefl_budget_add_round(r->inc, e->q, e->sigma);
    if (rc != 0) {
      r->rc = rc;
      return 1;
    }
    r->have_inc = 1;
    r->inc_q = e->q;
    r->inc_sigma = e->sigma;
  }
  for (size_t k = 0; k < STOREFL_BUDGET_ORDERS; k++)
    r->rdp[k] += r->inc[k];
  r->rounds++;
  return 0;
}

int storefl_agent_budget_rdp(storefl_store *s, double *rdp, uint64_t *rounds) {
  if (s == NULL || rdp == NULL)
    return STOREFL_ERR_INVALID;
  memset(rdp, 0, STOREFL_BUDGET_ORDERS * sizeof *rdp);
  replay r;
  memset(&r, 0, sizeof r);
  r.rdp = rdp;
  r.find_round = UINT64_MAX;
  int rc = storefl_store_ledger_list(s, replay_entry, &r);
  if (r.rc != 0)
    return r.rc;
  if (rc != 0)
    return rc;
  if (rounds != NULL)
    *rounds = r.rounds;
  return STOREFL_OK;
}

int storefl_agent_budget_spent(storefl_store *s, double delta, double *eps, uint64_t *rounds) {
  double rdp[STOREFL_BUDGET_ORDERS];
  int rc = storefl_agent_budget_rdp(s, rdp, rounds);
  if (rc != 0)
    return rc;
  return storefl_budget_epsilon(rdp, delta, eps);
}

int storefl_agent_budget_gate(storefl_store *s, storefl_rng *rng, const storefl_round_msg *round, double cap,
                              int64_t now_unix_s, storefl_agent_gate *out) {
  if (s == NULL || rng == NULL || round == NULL || out == NULL || !(cap >= 0) || !isfinite(cap))
    return STOREFL_ERR_INVALID;
  memset(out, 0, sizeof *out);
  out->cap = cap;
  if (round->state != STOREFL_ROUND_OPEN || !(round->participation_q > 0 && round->participation_q <= 1) ||
      !(round->noise_multiplier > 0) || !isfinite(round->noise_multiplier) ||
      !(round->delta > 0 && round->delta < 1) || !(round->clip_norm > 0) || !isfinite(round->clip_norm) ||
      (round->mode != STOREFL_PRIVACY_LOCAL && round->mode != STOREFL_PRIVACY_CENTRAL))
    return STOREFL_ERR_INVALID;
  int central = round->mode == STOREFL_PRIVACY_CENTRAL;
  /* The aggregator closes a round with q < 1 only at its deadline (a target count would make who got
   * in depend on the others, see aggregator/src/agg_service.c); a round without a target closes at
   * its deadline too. Same rule as the aggregator's ledger, so both sides charge the same q. */
  int on_deadline = round->participation_q < 1 || round->target_participants == 0;
  double q = storefl_budget_effective_q(central, round->participation_q, on_deadline);
  out->q_charged = q;

  double rdp[STOREFL_BUDGET_ORDERS];
  memset(rdp, 0, sizeof rdp);
  replay r;
  memset(&r, 0, sizeof r);
  r.rdp = rdp;
  r.find_round = round->round;
  int rc = storefl_store_ledger_list(s, replay_entry, &r);
  if (r.rc != 0)
    return r.rc;
  if (rc != 0)
    return rc;
  rc = storefl_budget_epsilon(rdp, round->delta, &out->eps_now);
  if (rc != 0)
    return rc;
  if (r.found) {
    out->eps_after = out->eps_now;
    out->participate = q >= 1;
    snprintf(out->reason, sizeof out->reason, "round %llu already decided (%s)",
             (unsigned long long)round->round, out->participate ? "resending" : "its draw is not repeated");
    if (out->participate)
      out->reason[0] = '\0';
    return STOREFL_OK;
  }
  rc = storefl_budget_check(rdp, q, round->noise_multiplier, round->delta, cap, &out->eps_now,
                            &out->eps_after);
  if (rc == STOREFL_ERR_BUDGET) {
    snprintf(out->reason, sizeof out->reason,
             "privacy budget: round %llu would take epsilon from %.4g to %.4g (delta %g, q %g, sigma %g), "
             "past the "
             "cap %g; refusing",
             (unsigned long long)round->round, out->eps_now, out->eps_after, round->delta, q,
             round->noise_multiplier, cap);
    return rc;
  }
  if (rc != 0)
    return rc;
  int drawn;
  rc = storefl_budget_self_sample(rng, round->participation_q, &drawn);
  if (rc != 0)
    return rc;
  if (q < 1 || drawn) {
    storefl_local_ledger_entry e;
    memset(&e, 0, sizeof e);
    e.round = round->round;
    e.mode = (int)round->mode;
    e.q = q;
    e.sigma = round->noise_multiplier;
    e.clip = round->clip_norm;
    e.delta = round->delta;
    e.epsilon_spent = out->eps_after;
    e.time = now_unix_s;
    rc = storefl_store_ledger_append(s, &e);
    if (rc != 0)
      return rc;
    out->charged = 1;
  } else {
    out->eps_after = out->eps_now;
  }
  out->participate = drawn;
  if (!drawn)
    snprintf(out->reason, sizeof out->reason, "not drawn this round (q = %g)", round->participation_q);
  return STOREFL_OK;
}
