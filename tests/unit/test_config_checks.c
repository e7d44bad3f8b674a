/* Regressions for configuration bugs found during integration: a misspelt INI section silently
 * ignored (aggregator and agent files), [ledger] key with noise_multiplier = 0 (rounds that never
 * close), and the agent's [privacy] epsilon_cap accepting inf/nan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net_agent.h"
#include "storefl/agg_config.h"
#include "storefl/error.h"
#include "storefl/ini_check.h"

static char g_dir[] = "/tmp/storefl-cfgcheck-XXXXXX";

static int setup(void **state) {
  (void)state;
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to g_dir/name; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(text, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
  return path;
}

#define AGG_BASE "[model]\ntensor = a:4\n"

static void test_agg_ledger_without_noise_refused(void **state) {
  (void)state;
  storefl_agg_config c;
  char err[512] = "";
  storefl_agg_config_defaults(&c);
  /* the ledger cannot record epsilon = inf: refused at load, not a round that never closes */
  assert_int_equal(storefl_agg_config_load_string(AGG_BASE
                                                  "[privacy]\nnoise_multiplier = 0\n[ledger]\nkey = k.pem\n",
                                                  &c, err, sizeof err),
                   STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "noise_multiplier > 0"));
  assert_non_null(strstr(err, "[ledger] key"));
  /* the same through the struct (storefl_agg_open validates what callers fill in) */
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string(AGG_BASE, &c, err, sizeof err), STOREFL_OK);
  snprintf(c.signing_key, sizeof c.signing_key, "k.pem");
  c.noise_multiplier = 0;
  assert_int_equal(storefl_agg_config_validate(&c, err, sizeof err), STOREFL_ERR_INVALID);
  /* either alone is fine */
  storefl_agg_config_defaults(&c);
  assert_int_equal(
      storefl_agg_config_load_string(AGG_BASE "[privacy]\nnoise_multiplier = 0\n", &c, err, sizeof err),
      STOREFL_OK);
  storefl_agg_config_defaults(&c);
  assert_int_equal(
      storefl_agg_config_load_string(AGG_BASE "[privacy]\nnoise_multiplier = 0.5\n[ledger]\nkey = k.pem\n",
                                     &c, err, sizeof err),
      STOREFL_OK);
}

static void test_agg_unknown_section_refused(void **state) {
  (void)state;
  storefl_agg_config c;
  char err[512] = "";
  /* "[ledgr]" used to mean: no ledger, no budget check, and no word about it */
  const char *path = write_file("agg-typo.ini", AGG_BASE "[ledgr]\nkey = k.pem\nepsilon_cap = 3\n");
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load(path, &c, err, sizeof err), STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, ":4:"));
  assert_non_null(strstr(err, "[ledgr]"));
  assert_non_null(strstr(err, "'key'"));
  storefl_agg_config_defaults(&c);
  assert_int_equal(
      storefl_agg_config_load_string(AGG_BASE "[roudn]\ntotal_rounds = 3\n", &c, err, sizeof err),
      STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "[roudn]"));
  /* a key before any section belongs to no loader */
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string("db = x.db\n" AGG_BASE, &c, err, sizeof err),
                   STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "outside any"));
  /* an unknown key in a known service section names file, line, section and key */
  path = write_file("agg-key.ini", AGG_BASE "[ledger]\nkey = k.pem\nepsilon_kap = 3\n");
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load(path, &c, err, sizeof err), STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, "line 5"));
  assert_non_null(strstr(err, "[ledger] epsilon_kap"));
  /* the transport's sections ([server], [dtls], read by serve) belong to the same file */
  path = write_file("agg-ok.ini", AGG_BASE "[server]\nlisten = 127.0.0.1:5684\n[dtls]\npsk_keys = p.keys\n"
                                           "[log]\nlevel = info\n");
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load(path, &c, err, sizeof err), STOREFL_OK);
}

#define AGENT_BASE "[agent]\nstore_id = store-1\n"

static void test_agent_unknown_section_refused(void **state) {
  (void)state;
  storefl_agent_net_config c;
  char err[512] = "";
  const char *path = write_file("agent-typo.ini", AGENT_BASE "[privcy]\nepsilon_cap = 2\n");
  storefl_agent_net_config_defaults(&c);
  assert_int_equal(storefl_agent_net_config_load(path, &c, err, sizeof err), STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, path));
  assert_non_null(strstr(err, ":4:"));
  assert_non_null(strstr(err, "[privcy]"));
  assert_non_null(strstr(err, "'epsilon_cap'"));
  /* the same check guards the commands that read only [model], [columns] or [eval] of the file */
  path = write_file("agent-model-typo.ini", "[modle]\nsteps = 5\n");
  assert_int_equal(storefl_agent_ini_check(path, err, sizeof err), STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "[modle]"));
  /* every loader's section is known */
  path = write_file("agent-ok.ini",
                    AGENT_BASE "[aggregator]\naddress = 127.0.0.1:5684\n[dtls]\npsk_key = k\n"
                               "[upload]\ndtype = i8\n[privacy]\nepsilon_cap = 2\n[retry]\nbase_s = 1\n"
                               "[model]\nsteps = 5\n[columns]\nproduct = StockCode\n[eval]\nrounds = 2\n");
  assert_int_equal(storefl_agent_ini_check(path, err, sizeof err), STOREFL_OK);
  storefl_agent_net_config_defaults(&c);
  assert_int_equal(storefl_agent_net_config_load(path, &c, err, sizeof err), STOREFL_OK);
  assert_true(c.epsilon_cap == 2.0);
  /* an unreadable file is an I/O error, not a pass */
  snprintf(err, sizeof err, "%s/missing.ini", g_dir);
  char missing[512];
  snprintf(missing, sizeof missing, "%s", err);
  assert_int_equal(storefl_agent_ini_check(missing, err, sizeof err), STOREFL_ERR_IO);
}

static void test_agent_epsilon_cap_finite(void **state) {
  (void)state;
  static const char *const bad[] = {"inf", "-inf", "nan", "infinity", "-1", "1e999", "2x", ""};
  char text[256], err[512];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, AGENT_BASE "[privacy]\nepsilon_cap = %s\n", bad[i]);
    const char *path = write_file("agent-cap.ini", text);
    storefl_agent_net_config c;
    storefl_agent_net_config_defaults(&c);
    err[0] = 0;
    int rc = storefl_agent_net_config_load(path, &c, err, sizeof err);
    if (rc != STOREFL_ERR_INVALID)
      fail_msg("epsilon_cap = '%s' accepted (rc %d, cap %g)", bad[i], rc, c.epsilon_cap);
    assert_non_null(strstr(err, "epsilon_cap"));
    assert_non_null(strstr(err, "finite"));
  }
  const char *path = write_file("agent-cap.ini", AGENT_BASE "[privacy]\nepsilon_cap = 0\n");
  storefl_agent_net_config c;
  storefl_agent_net_config_defaults(&c);
  assert_int_equal(storefl_agent_net_config_load(path, &c, err, sizeof err), STOREFL_OK);
  assert_true(c.epsilon_cap == 0.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_agg_ledger_without_noise_refused),
      cmocka_unit_test(test_agg_unknown_section_refused),
      cmocka_unit_test(test_agent_unknown_section_refused),
      cmocka_unit_test(test_agent_epsilon_cap_finite),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
