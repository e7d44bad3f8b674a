/* `storefl-aggregator rounds`: read-only report of rounds and model versions (see --help). */
#include "cmd_rounds.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/agg_config.h"
#include "storefl/cli.h"

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-aggregator rounds - show the rounds and model versions of an aggregator database\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-aggregator rounds (--config FILE | --db FILE) [--json] [--limit N]\n"
               "\n"
               "DESCRIPTION\n"
               "  Opens the aggregator's SQLite database read-only (safe while `serve` runs: WAL readers\n"
               "  do not block the writer) and prints, newest first, each round's state (open, closed,\n"
               "  abandoned), base model version, participants, extensions and its opening, deadline and\n"
               "  closing times; then the model versions kept (see [storage] keep_models) with their\n"
               "  SHA-256 digest, which is the ETag agents see on /v1/model; and how many acknowledged\n"
               "  updates of the open round are held for crash recovery.\n"
               "\n"
               "OPTIONS\n"
               "  --config FILE  aggregator INI file; its [storage] db names the database\n"
               "  --db FILE      the database itself\n"
               "  --json         one JSON object instead of text\n"
               "  --limit N      at most N rounds (default 50; 0 = all)\n"
               "  --help         print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 success, 1 the database cannot be read, 2 usage error.\n"
               "\n"
               "EXAMPLES\n"
               "  storefl-aggregator rounds --config configs/aggregator.ini\n"
               "  storefl-aggregator rounds --db /var/lib/storefl/aggregator.db --json --limit 0\n");
}

static const char *state_name(int s) {
  switch (s) {
  case 1:
    return "open";
  case 2:
    return "closed";
  case 3:
    return "abandoned";
  default:
    return "unknown";
  }
}

static int report(sqlite3 *db, int json, long limit) {
  sqlite3_stmt *st = NULL;
  const char *rq = /* an open round's row is final only at close: count its accepted updates */
      "SELECT round, state, model_version, CASE WHEN state = 1 THEN (SELECT COUNT(*) FROM updates u"
      " WHERE u.round = rounds.round) ELSE participants END, extensions, opened_ms, deadline_ms,"
      " closed_ms FROM rounds ORDER BY round DESC LIMIT ?";
  if (sqlite3_prepare_v2(db, rq, -1, &st, NULL) != SQLITE_OK)
    return -1;
  if (sqlite3_bind_int64(st, 1, limit > 0 ? limit : -1) != SQLITE_OK) {
    sqlite3_finalize(st);
    return -1;
  }
  if (json)
    printf("{\"rounds\":[");
  else
    printf("%8s %-9s %6s %12s %4s %14s %14s %14s\n", "round", "state", "model", "participants", "ext",
           "opened_ms", "deadline_ms", "closed_ms");
  int first = 1, rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    long long r = sqlite3_column_int64(st, 0), mv = sqlite3_column_int64(st, 2),
              p = sqlite3_column_int64(st, 3), ext = sqlite3_column_int64(st, 4),
              op = sqlite3_column_int64(st, 5), dl = sqlite3_column_int64(st, 6),
              cl = sqlite3_column_int64(st, 7);
    const char *sn = state_name(sqlite3_column_int(st, 1));
    if (json)
      printf("%s{\"round\":%lld,\"state\":\"%s\",\"model_version\":%lld,\"participants\":%lld,\"extensions\":"
             "%lld,"
             "\"opened_unix_ms\":%lld,\"deadline_unix_ms\":%lld,\"closed_unix_ms\":%lld}",
             first ? "" : ",", r, sn, mv, p, ext, op, dl, cl);
    else
      printf("%8lld %-9s %6lld %12lld %4lld %14lld %14lld %14lld\n", r, sn, mv, p, ext, op, dl, cl);
    first = 0;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return -1;
  if (sqlite3_prepare_v2(db, "SELECT version, digest, created_ms FROM models ORDER BY version DESC", -1, &st,
                         NULL) != SQLITE_OK)
    return -1;
  printf(json ? "],\"models\":[" : "\n%8s %-64s %14s\n", "model", "digest (sha-256, ETag)", "created_ms");
  first = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    char hex[2 * 32 + 1] = "";
    const unsigned char *d = sqlite3_column_blob(st, 1);
    int n = sqlite3_column_bytes(st, 1);
    for (int i = 0; d && i < n && i < 32; i++)
      snprintf(hex + 2 * i, 3, "%02x", d[i]);
    long long v = sqlite3_column_int64(st, 0), c = sqlite3_column_int64(st, 2);
    if (json)
      printf("%s{\"version\":%lld,\"digest\":\"%s\",\"created_unix_ms\":%lld}", first ? "" : ",", v, hex, c);
    else
      printf("%8lld %-64s %14lld\n", v, hex, c);
    first = 0;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return -1;
  if (sqlite3_prepare_v2(
          db, "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM updates WHERE body IS NOT NULL", -1, &st,
          NULL) != SQLITE_OK)
    return -1;
  rc = sqlite3_step(st);
  long long pending = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  long long bytes = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW)
    return -1;
  if (json)
    printf("],\"open_round_updates\":%lld,\"open_round_update_bytes\":%lld}\n", pending, bytes);
  else
    printf("\nopen round: %lld acknowledged updates held for recovery (%lld bytes)\n", pending, bytes);
  return 0;
}

int storefl_cmd_rounds(int argc, char **argv) {
  const char *config = NULL, *dbpath = NULL;
  int json = 0;
  long limit = 50;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    } else if (strcmp(argv[i], "--json") == 0)
      json = 1;
    else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
      config = argv[++i];
    else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc)
      dbpath = argv[++i];
    else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
      char *end;
      limit = strtol(argv[++i], &end, 10);
      if (*end || limit < 0) {
        fprintf(stderr, "storefl-aggregator rounds: bad --limit '%s'\n", argv[i]);
        return STOREFL_EXIT_USAGE;
      }
    } else {
      fprintf(stderr, "storefl-aggregator rounds: unexpected argument '%s'; see --help\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!config == !dbpath) {
    fprintf(stderr, "storefl-aggregator rounds: give exactly one of --config FILE or --db FILE\n");
    return STOREFL_EXIT_USAGE;
  }
  static storefl_agg_config cfg;
  if (config) {
    char err[512];
    storefl_agg_config_defaults(&cfg);
    if (storefl_agg_config_load(config, &cfg, err, sizeof err) != 0) {
      fprintf(stderr, "storefl-aggregator rounds: %s: %s\n", config, err);
      return STOREFL_EXIT_FAIL;
    }
    dbpath = cfg.db_path;
  }
  sqlite3 *db = NULL;
  /* Read-only and never created: a typo must not leave an empty database behind. */
  if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    fprintf(stderr, "storefl-aggregator rounds: cannot open %s: %s\n", dbpath,
            db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return STOREFL_EXIT_FAIL;
  }
  sqlite3_busy_timeout(db, 5000);
  int rc = report(db, json, limit);
  if (rc)
    fprintf(stderr, "storefl-aggregator rounds: %s: %s\n", dbpath, sqlite3_errmsg(db));
  sqlite3_close(db);
  return rc ? STOREFL_EXIT_FAIL : STOREFL_EXIT_OK;
}
