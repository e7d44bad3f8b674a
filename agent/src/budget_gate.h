/*
 * The agent's side of the privacy budget: its own accounting, from its local ledger (the store's
 * SQLite, storefl_agent.h), and the gate every round announcement goes through before any training
 * or upload.
 *
 * The gate (storefl_agent_budget_gate):
 *  1. q charged = storefl_budget_effective_q(central, q, closes at deadline): amplification is
 *     claimed only in central mode for a round that closes at its deadline -- the aggregator closes
 *     every q < 1 round at its deadline, and a round without a target count does too -- because
 *     only then is the store's participation a secret Bernoulli(q) draw towards everyone who sees
 *     the result. The aggregator's ledger applies the same rule, so both sides charge the same q.
 *  2. If charging the round would take the store past its cap, it refuses: nothing is drawn,
 *     recorded or sent, and the reason carries the figures (spent, after, cap).
 *  3. Otherwise the store draws Bernoulli(q) from the CSPRNG (storefl_budget_self_sample).
 *  4. The spend is recorded in the local ledger *before* anything leaves the store: for an
 *     amplified round always (under Poisson sampling a store spends whether drawn or not), for a
 *     q = 1 round only if it participates.
 * A round already in the local ledger is not redrawn (redrawing until selected would void the
 * sampling): amplified -> not participating; q = 1 -> participating (its update may be resent).
 */
#ifndef STOREFL_BUDGET_GATE_H
#define STOREFL_BUDGET_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/budget.h"
#include "storefl/messages.h"
#include "storefl/rng.h"
#include "storefl_agent.h"

/* The store's RDP curve (STOREFL_BUDGET_ORDERS values at the default orders) replayed from its
 * local ledger, and the number of rounds charged. */
int storefl_agent_budget_rdp(storefl_store *s, double *rdp, uint64_t *rounds);

/* Spent epsilon at delta (0 for an empty ledger). */
int storefl_agent_budget_spent(storefl_store *s, double delta, double *eps, uint64_t *rounds);

typedef struct storefl_agent_gate {
  int participate;  /* 1: train, privatize and upload for this round */
  int charged;      /* 1: the round was recorded in the local ledger now */
  double q_charged; /* q used in the accounting */
  double eps_now;   /* spent before this round (at the round's delta) */
  double eps_after; /* spent if this round is charged */
  double cap;
  char reason[256]; /* why it refused or skipped; "" when participating */
} storefl_agent_gate;

/* Runs the gate for one round announcement (see above). Returns 0 (check out->participate),
 * STOREFL_ERR_BUDGET if the store refuses because of its cap (out->reason says so with the
 * figures), STOREFL_ERR_INVALID for a malformed announcement (state not open, q outside (0, 1],
 * sigma <= 0, delta outside (0, 1)), other errors from the store or the RNG. */
int storefl_agent_budget_gate(storefl_store *s, storefl_rng *rng, const storefl_round_msg *round, double cap,
                              int64_t now_unix_s, storefl_agent_gate *out);

#endif
