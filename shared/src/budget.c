/* Budget checks on top of the accountant; see storefl/budget.h. */
#include "storefl/budget.h"

#include <math.h>
#include <string.h>

#include "storefl/accountant.h"
#include "storefl/error.h"

double storefl_budget_effective_q(int central_mode, double q, int closes_on_deadline) {
  return (central_mode && closes_on_deadline) ? q : 1.0;
}

static const double *orders_checked(void) {
  size_t n;
  const double *o = storefl_rdp_default_orders(&n);
  return n == STOREFL_BUDGET_ORDERS ? o : NULL;
}

int storefl_budget_epsilon(const double *rdp, double delta, double *eps) {
  const double *o = orders_checked();
  if (o == NULL || eps == NULL)
    return STOREFL_ERR_INTERNAL;
  double zero[STOREFL_BUDGET_ORDERS];
  if (rdp == NULL) {
    memset(zero, 0, sizeof zero);
    rdp = zero;
  }
  return storefl_rdp_to_epsilon(o, rdp, STOREFL_BUDGET_ORDERS, delta, 0, eps, NULL);
}

int storefl_budget_add_round(double *rdp, double q, double sigma) {
  const double *o = orders_checked();
  if (o == NULL || rdp == NULL)
    return STOREFL_ERR_INVALID;
  return storefl_rdp_compose(q, sigma, 1, o, STOREFL_BUDGET_ORDERS, rdp);
}

int storefl_budget_check(const double *rdp, double q, double sigma, double delta, double cap, double *eps_now,
                         double *eps_after) {
  if (!(cap >= 0) || isnan(cap))
    return STOREFL_ERR_INVALID;
  double next[STOREFL_BUDGET_ORDERS];
  if (rdp != NULL)
    memcpy(next, rdp, sizeof next);
  else
    memset(next, 0, sizeof next);
  double now, after;
  int rc = storefl_budget_epsilon(next, delta, &now);
  if (rc != 0)
    return rc;
  rc = storefl_budget_add_round(next, q, sigma);
  if (rc != 0)
    return rc;
  rc = storefl_budget_epsilon(next, delta, &after);
  if (rc != 0)
    return rc;
  if (eps_now != NULL)
    *eps_now = now;
  if (eps_after != NULL)
    *eps_after = after;
  return after <= cap ? STOREFL_OK : STOREFL_ERR_BUDGET;
}

int storefl_budget_self_sample(storefl_rng *rng, double q, int *participate) {
  if (!(q > 0 && q <= 1))
    return STOREFL_ERR_INVALID;
  return storefl_rng_bernoulli(rng, q, participate);
}
