/* `storefl-agent budget`: spent and remaining epsilon of this store. */
#include "cmd_budget.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget_gate.h"
#include "storefl/cli.h"
#include "storefl/error.h"

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-agent budget - how much privacy budget this store has spent and has left\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-agent budget --db STORE.db [--cap EPS] [--delta D]... [--json]\n"
               "\n"
               "DESCRIPTION\n"
               "  Replays the store's local privacy ledger (one entry per round the store was charged\n"
               "  for: the q, noise multiplier and delta of that round) through the Renyi DP accountant\n"
               "  and prints the epsilon spent so far, for each delta found in the ledger and each delta\n"
               "  given with --delta, and what remains under the cap. The agent refuses any round that\n"
               "  would take it past its cap, before training and without sending anything.\n"
               "\n"
               "OPTIONS\n"
               "  --db STORE.db   the store's database (opened read-only)\n"
               "  --cap EPS       the store's epsilon cap; prints the remaining budget\n"
               "  --delta D       also report epsilon at this delta, 0 < D < 1 (repeatable)\n"
               "  --json          print one JSON object\n"
               "  --help          print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 success, 1 the store cannot be read, 2 usage error.\n"
               "\n"
               "EXAMPLES\n"
               "  storefl-agent budget --db store-17.db --cap 8\n"
               "  storefl-agent budget --db store-17.db --delta 1e-6 --delta 1e-8 --json\n");
}

#define MAX_DELTAS 16

typedef struct deltas {
  double v[MAX_DELTAS];
  int n;
} deltas;

static void add_delta(deltas *d, double x) {
  for (int i = 0; i < d->n; i++)
    if (d->v[i] == x)
      return;
  if (d->n < MAX_DELTAS)
    d->v[d->n++] = x;
}

static int collect_delta(void *user, const storefl_local_ledger_entry *e) {
  add_delta(user, e->delta);
  return 0;
}

int storefl_cmd_budget(int argc, char **argv) {
  const char *db = NULL;
  double cap = NAN;
  int json = 0;
  deltas ds = {{0}, 0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    }
    if (strcmp(a, "--json") == 0) {
      json = 1;
      continue;
    }
    if (i + 1 >= argc || (strcmp(a, "--db") != 0 && strcmp(a, "--cap") != 0 && strcmp(a, "--delta") != 0)) {
      fprintf(stderr, "storefl-agent budget: unknown option or missing value '%s' (see --help)\n", a);
      return STOREFL_EXIT_USAGE;
    }
    const char *v = argv[++i];
    if (strcmp(a, "--db") == 0) {
      db = v;
      continue;
    }
    char *end;
    double x = strtod(v, &end);
    if (*end != '\0' || end == v || !isfinite(x)) {
      fprintf(stderr, "storefl-agent budget: %s: not a number: '%s'\n", a, v);
      return STOREFL_EXIT_USAGE;
    }
    if (strcmp(a, "--cap") == 0) {
      if (!(x >= 0)) {
        fprintf(stderr, "storefl-agent budget: --cap must be >= 0\n");
        return STOREFL_EXIT_USAGE;
      }
      cap = x;
    } else {
      if (!(x > 0 && x < 1)) {
        fprintf(stderr, "storefl-agent budget: --delta must be in (0, 1), got %g\n", x);
        return STOREFL_EXIT_USAGE;
      }
      add_delta(&ds, x);
    }
  }
  if (db == NULL) {
    fprintf(stderr, "storefl-agent budget: --db is required (see --help)\n");
    return STOREFL_EXIT_USAGE;
  }
  storefl_store_options so = {0};
  so.read_only = 1;
  storefl_store *s = NULL;
  char err[256] = "";
  int rc = storefl_store_open(db, &so, &s, err, sizeof err);
  if (rc != 0) {
    fprintf(stderr, "storefl-agent budget: cannot open %s: %s\n", db, err[0] ? err : storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  rc = storefl_store_ledger_list(s, collect_delta, &ds);
  double rdp[STOREFL_BUDGET_ORDERS];
  uint64_t rounds = 0;
  if (rc == 0)
    rc = storefl_agent_budget_rdp(s, rdp, &rounds);
  storefl_store_close(s);
  if (rc != 0) {
    fprintf(stderr, "storefl-agent budget: cannot read the local ledger: %s\n", storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  if (ds.n == 0)
    add_delta(&ds, 1e-5); /* nothing recorded and nothing asked: report at a common default */
  if (json)
    printf("{\"rounds_charged\":%llu,\"cap\":", (unsigned long long)rounds);
  else
    printf("%llu round(s) charged in the local ledger\n", (unsigned long long)rounds);
  if (json) {
    if (isnan(cap))
      printf("null");
    else
      printf("%.17g", cap);
    printf(",\"by_delta\":[");
  }
  for (int i = 0; i < ds.n; i++) {
    double eps;
    rc = storefl_budget_epsilon(rdp, ds.v[i], &eps);
    if (rc != 0) {
      fprintf(stderr, "storefl-agent budget: accountant failed: %s\n", storefl_strerror(rc));
      return STOREFL_EXIT_FAIL;
    }
    if (json) {
      printf("%s{\"delta\":%.17g,\"epsilon_spent\":%.17g", i ? "," : "", ds.v[i], eps);
      if (!isnan(cap))
        printf(",\"epsilon_remaining\":%.17g", cap - eps > 0 ? cap - eps : 0);
      printf("}");
    } else {
      printf("delta %-8g epsilon spent %.6g", ds.v[i], eps);
      if (!isnan(cap))
        printf("   remaining %.6g of cap %g%s", cap - eps > 0 ? cap - eps : 0, cap,
               eps > cap ? "  (OVER CAP)" : "");
      printf("\n");
    }
  }
  if (json)
    printf("]}\n");
  return STOREFL_EXIT_OK;
}
