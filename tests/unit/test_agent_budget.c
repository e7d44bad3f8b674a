/* The agent's budget gate on a real store database: refuses past the cap with the figures and
 * records nothing; charges amplified rounds whether drawn or not; never redraws a round; and
 * `storefl-agent budget` reports the spend. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "budget_gate.h"
#include "cmd_budget.h"
#include "storefl/accountant.h"
#include "storefl/error.h"

static char dir[256];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/storefl-agent-budget-XXXXXX");
  return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static storefl_store *open_store(const char *name, char *path, size_t cap) {
  snprintf(path, cap, "%s/%s", dir, name);
  storefl_store *s = NULL;
  char err[256];
  assert_int_equal(storefl_store_open(path, NULL, &s, err, sizeof err), STOREFL_OK);
  return s;
}

static int64_t ledger_rows(storefl_store *s) {
  storefl_store_counts c;
  assert_int_equal(storefl_store_counts_get(s, &c), STOREFL_OK);
  return c.ledger;
}

static storefl_round_msg round_msg(uint64_t r, storefl_privacy_mode mode, double q, uint32_t target) {
  storefl_round_msg m;
  memset(&m, 0, sizeof m);
  m.round = r;
  m.state = STOREFL_ROUND_OPEN;
  m.participation_q = q;
  m.mode = mode;
  m.clip_norm = 1.0;
  m.noise_multiplier = 4.0;
  m.delta = 1e-5;
  m.target_participants = target;
  return m;
}

static void test_refuses_past_cap(void **state) {
  (void)state;
  char path[512];
  storefl_store *s = open_store("cap.db", path, sizeof path);
  storefl_rng *rng;
  assert_int_equal(storefl_rng_create("agent-test", &rng), STOREFL_OK);
  storefl_agent_gate g;
  uint64_t r = 1;
  for (;; r++) {
    storefl_round_msg m = round_msg(r, STOREFL_PRIVACY_CENTRAL, 1.0, 10); /* target count: q = 1 */
    int rc = storefl_agent_budget_gate(s, rng, &m, 3.0, 1700000000, &g);
    if (rc == STOREFL_ERR_BUDGET)
      break;
    assert_int_equal(rc, STOREFL_OK);
    assert_true(g.participate && g.charged && g.q_charged == 1.0);
    assert_true(r < 100);
  }
  uint64_t charged = r - 1;
  assert_true(charged >= 1);
  /* Refused: nothing recorded, nothing to send, and the figures are in the reason. */
  assert_int_equal(ledger_rows(s), (int64_t)charged);
  assert_false(g.participate);
  assert_false(g.charged);
  assert_true(g.eps_now <= 3.0 && g.eps_after > 3.0);
  assert_non_null(strstr(g.reason, "cap 3"));
  assert_non_null(strstr(g.reason, "refusing"));
  printf("# refused: %s\n", g.reason);
  double spent, want;
  uint64_t rounds;
  assert_int_equal(storefl_agent_budget_spent(s, 1e-5, &spent, &rounds), STOREFL_OK);
  assert_int_equal(rounds, charged);
  assert_int_equal(storefl_dp_epsilon(1.0, 4.0, charged, 1e-5, NULL, &want, NULL), STOREFL_OK);
  assert_true(fabs(spent - want) <= 1e-12 * want);
  /* Asking again for the same refused round refuses again. */
  storefl_round_msg m = round_msg(r, STOREFL_PRIVACY_CENTRAL, 1.0, 10);
  assert_int_equal(storefl_agent_budget_gate(s, rng, &m, 3.0, 1700000000, &g), STOREFL_ERR_BUDGET);
  assert_int_equal(ledger_rows(s), (int64_t)charged);
  /* A malformed announcement is rejected. */
  m.noise_multiplier = 0;
  assert_int_equal(storefl_agent_budget_gate(s, rng, &m, 3.0, 0, &g), STOREFL_ERR_INVALID);
  storefl_store_close(s);

  /* storefl-agent budget on that store. */
  char out[600];
  snprintf(out, sizeof out, "%s/budget.json", dir);
  fflush(stdout);
  int saved = dup(1);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(saved >= 0 && fd >= 0);
  assert_true(dup2(fd, 1) >= 0);
  char *argv[] = {"budget", "--db", path, "--cap", "3", "--delta", "1e-6", "--json", NULL};
  int rc = storefl_cmd_budget(8, argv);
  fflush(stdout);
  assert_true(dup2(saved, 1) >= 0);
  close(fd);
  close(saved);
  assert_int_equal(rc, 0);
  FILE *f = fopen(out, "r");
  assert_non_null(f);
  char buf[1024] = "";
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  char expect[128];
  snprintf(expect, sizeof expect, "\"rounds_charged\":%llu", (unsigned long long)charged);
  assert_non_null(strstr(buf, expect));
  snprintf(expect, sizeof expect, "\"epsilon_spent\":%.17g", spent);
  assert_non_null(strstr(buf, expect)); /* at the ledger's delta 1e-5 */
  assert_non_null(strstr(buf, "\"delta\":9.9999999999999995e-07"));
  char *bad[] = {"budget", "--db", path, "--delta", "2", NULL};
  assert_int_equal(storefl_cmd_budget(5, bad), 2);
  storefl_rng_free(rng);
}

static void test_amplified_rounds_charge_everyone(void **state) {
  (void)state;
  char path[512];
  storefl_store *s = open_store("amp.db", path, sizeof path);
  storefl_rng *rng;
  assert_int_equal(storefl_rng_create("agent-test", &rng), STOREFL_OK);
  int drawn = 0;
  for (uint64_t r = 1; r <= 60; r++) {
    storefl_round_msg m = round_msg(r, STOREFL_PRIVACY_CENTRAL, 0.3, 0); /* deadline round: q = 0.3 */
    storefl_agent_gate g;
    assert_int_equal(storefl_agent_budget_gate(s, rng, &m, 100.0, 0, &g), STOREFL_OK);
    assert_true(g.charged && g.q_charged == 0.3);
    drawn += g.participate;
  }
  assert_int_equal(ledger_rows(s), 60); /* charged whether drawn or not */
  assert_true(drawn > 0 && drawn < 60); /* P(fail) = 0.7^60 + 0.3^60 < 1e-9 */
  /* The same round is never redrawn: amplified -> not participating. */
  storefl_round_msg m = round_msg(5, STOREFL_PRIVACY_CENTRAL, 0.3, 0);
  storefl_agent_gate g;
  assert_int_equal(storefl_agent_budget_gate(s, rng, &m, 100.0, 0, &g), STOREFL_OK);
  assert_false(g.participate);
  assert_int_equal(ledger_rows(s), 60);
  storefl_store_close(s);

  /* Local mode: no amplification towards the aggregator, charged only when drawn. */
  s = open_store("local.db", path, sizeof path);
  drawn = 0;
  for (uint64_t r = 1; r <= 60; r++) {
    storefl_round_msg lm = round_msg(r, STOREFL_PRIVACY_LOCAL, 0.3, 0);
    assert_int_equal(storefl_agent_budget_gate(s, rng, &lm, 100.0, 0, &g), STOREFL_OK);
    assert_true(g.q_charged == 1.0);
    assert_int_equal(g.charged, g.participate);
    drawn += g.participate;
  }
  assert_int_equal(ledger_rows(s), drawn);
  storefl_store_close(s);
  storefl_rng_free(rng);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refuses_past_cap),
      cmocka_unit_test(test_amplified_rounds_charge_everyone),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
