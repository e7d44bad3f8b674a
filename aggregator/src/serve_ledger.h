/*
 * The privacy ledger and the per-store budget behind `storefl-aggregator serve` ([ledger] section):
 * the glue between the service's privacy hooks (storefl_agg_privacy, agg_service.h) and the privacy
 * module's signed ledger (storefl/ledger.h). With it, every closed round appends a signed,
 * hash-chained entry in the same transaction as the new model, and an update from a store whose
 * next charge would take it past epsilon_cap gets 4.03 budget_exceeded.
 */
#ifndef STOREFL_SERVE_LEDGER_H
#define STOREFL_SERVE_LEDGER_H

#include "storefl/agg_service.h"

typedef struct storefl_serve_ledger storefl_serve_ledger;

/* key_path: the aggregator's ECDSA P-256 signing key (created with mode 0600 if missing; refused
 * if its mode is looser, STOREFL_ERR_FORBIDDEN). db_path: the service's database, where the ledger
 * tables live (opened here once more, read-only use, for the budget check). epsilon_cap <= 0: no
 * cap. On success *out is owned by the caller (storefl_serve_ledger_close, after the service is
 * closed) and *hooks is filled for storefl_agg_options.privacy. err gets a reason on failure. */
int storefl_serve_ledger_open(const char *key_path, const char *db_path, double epsilon_cap,
                              storefl_serve_ledger **out, storefl_agg_privacy *hooks, char *err,
                              size_t errlen);
/* The enrolled stores (copied): every round with sampling (q < 1) charges each of them in the
 * ledger, sampled or not. Without it only stores the ledger has seen are charged. */
int storefl_serve_ledger_set_population(storefl_serve_ledger *l, const char *const *ids, size_t n);
void storefl_serve_ledger_close(storefl_serve_ledger *l);

#endif
