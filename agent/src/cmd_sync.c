/* storefl-agent sync: one exchange with the aggregator. */
#include <stdio.h>
#include <string.h>

#include "cmd_net.h"
#include "net_agent.h"
#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/log.h"

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-agent sync - one exchange with the aggregator\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-agent sync --config agent.ini [--db FILE] [--json]\n"
               "\n"
               "DESCRIPTION\n"
               "  Connects to the aggregator over DTLS (PSK identity = [agent] store_id, or the store's\n"
               "  certificate), then: fetches the current round (GET /v1/round); fetches the global model\n"
               "  only if its ETag changed (GET /v1/model with the stored ETag: 2.03 Valid costs no body)\n"
               "  and stores it in the store's database; uploads the outbox's due update (POST /v1/update,\n"
               "  block-wise, Q-Block when the server offers it) and stores the receipt. An update stays\n"
               "  in the outbox until a receipt arrives: after a timeout or 5.xx it is retried later with\n"
               "  exponential back-off and jitter ([retry] base_s, max_s); a 4.xx rejection is final (the\n"
               "  item is marked dead with the reason).\n"
               "\n"
               "OPTIONS\n"
               "  --config FILE  agent INI with [agent] store_id, db; [aggregator] address; [dtls] psk_key\n"
               "                 or ca, cert, key; [upload] dtype, q_block, block_size, timeout_s; [retry]\n"
               "                 base_s, max_s (docs/network.md)\n"
               "  --db FILE      overrides [agent] db\n"
               "  --json         print the outcome as one JSON object on stdout\n"
               "  --help         print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 exchange completed (see the summary), 1 failure (aggregator unreachable, refused\n"
               "  handshake, database), 2 usage error, 4 the update was rejected for good.\n"
               "\n"
               "EXAMPLES\n"
               "  storefl-agent sync --config agent.ini\n"
               "  storefl-agent sync --config agent.ini --json\n");
}

int storefl_cmd_sync(int argc, char **argv) {
  const char *config = NULL, *db = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
      config = argv[++i];
    } else if (!strcmp(argv[i], "--db") && i + 1 < argc) {
      db = argv[++i];
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else {
      fprintf(stderr, "storefl-agent sync: unexpected argument '%s' (see --help)\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!config) {
    fprintf(stderr, "storefl-agent sync: --config FILE is required (see --help)\n");
    return STOREFL_EXIT_USAGE;
  }
  char err[512] = {0};
  storefl_agent_net_config c;
  storefl_agent_net_config_defaults(&c);
  if (storefl_agent_net_config_load(config, &c, err, sizeof err) != 0) {
    fprintf(stderr, "storefl-agent sync: %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  if (db)
    snprintf(c.db, sizeof c.db, "%s", db);
  storefl_store *st = NULL;
  if (storefl_store_open(c.db, NULL, &st, err, sizeof err) != 0) {
    fprintf(stderr, "storefl-agent sync: %s: %s\n", c.db, err);
    return STOREFL_EXIT_FAIL;
  }
  storefl_client *cl = NULL;
  int rc = storefl_agent_connect(&c, &cl, err, sizeof err);
  storefl_sync_result res;
  memset(&res, 0, sizeof res);
  if (rc == 0)
    rc = storefl_agent_sync(&c, st, cl, &res, err, sizeof err);
  storefl_client_close(cl);
  storefl_store_close(st);
  if (json) {
    printf("{\"ok\":%s,\"error\":\"%s\",\"round\":%llu,\"round_state\":%d,\"model_changed\":%d,"
           "\"model_version\":%llu,\"model_bytes\":%zu,\"upload_code\":%d,\"uploaded\":%d,\"duplicate\":%d,"
           "\"rejected\":%d,\"pending\":%d}\n",
           rc ? "false" : "true", rc ? storefl_strerror(rc) : "", (unsigned long long)res.round.round,
           res.have_round ? (int)res.round.state : 0, res.model_changed,
           (unsigned long long)res.model_version, res.model_bytes, res.upload_code, res.uploaded,
           res.duplicate, res.rejected, res.pending_left);
  } else if (rc == 0) {
    fprintf(stderr, "storefl-agent sync: round %llu, model %s, upload %s\n",
            (unsigned long long)res.round.round, res.model_changed ? "updated" : "unchanged",
            res.uploaded       ? (res.duplicate ? "acknowledged (already counted)" : "acknowledged")
            : res.rejected     ? "rejected"
            : res.pending_left ? "pending (retry later)"
                               : "none due");
  }
  if (rc) {
    fprintf(stderr, "storefl-agent sync: %s\n", err[0] ? err : storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  return res.rejected ? 4 : STOREFL_EXIT_OK;
}
