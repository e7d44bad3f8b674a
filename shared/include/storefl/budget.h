/*
 * Privacy budget checks, used on both sides: the agent refuses a round that would take it past its
 * cap (and sends nothing), the aggregator answers 4.03 budget_exceeded to an update from a store
 * past its cap. Both keep the store's RDP curve at the default orders of accountant.h
 * (STOREFL_BUDGET_ORDERS doubles) and compose the next round onto it.
 *
 * Which q to charge: amplification by sampling (q < 1) holds only when the store's participation
 * is a secret Bernoulli(q) draw made before anything is seen, and only towards a party that does
 * not learn who took part. The agent's own draw satisfies this in central mode for rounds closing
 * at their deadline; a round that closes on a target count (who got in depends on others), and the
 * aggregator's view in local mode (it sees who sent), must be charged with q = 1.
 * storefl_budget_effective_q encodes that rule.
 */
#ifndef STOREFL_BUDGET_H
#define STOREFL_BUDGET_H

#include <stddef.h>

#include "storefl/rng.h"

#define STOREFL_BUDGET_ORDERS 160 /* = number of default orders in accountant.h */

/* q to account for a round: q if the mode is central (central_mode != 0) and the round closes at its
 * deadline, else 1. */
double storefl_budget_effective_q(int central_mode, double q, int closes_on_deadline);

/* epsilon at delta of an RDP curve (STOREFL_BUDGET_ORDERS values at the default orders; NULL = no
 * spend, epsilon 0). */
int storefl_budget_epsilon(const double *rdp, double delta, double *eps);

/* Adds one round (q, sigma) to rdp in place. */
int storefl_budget_add_round(double *rdp, double q, double sigma);

/* Would one more round (q, sigma) keep epsilon at delta within cap? *eps_now and *eps_after (each
 * may be NULL) receive the figures either way. Returns 0 if within cap, STOREFL_ERR_BUDGET if it
 * would exceed it (the caller must not take part / must reject), other errors for bad input. */
int storefl_budget_check(const double *rdp, double q, double sigma, double delta, double cap, double *eps_now,
                         double *eps_after);

/* The agent's secret participation draw: Bernoulli(q) from the CSPRNG. */
int storefl_budget_self_sample(storefl_rng *rng, double q, int *participate);

#endif
