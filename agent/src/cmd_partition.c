/* storefl-agent partition: one store database per client (customer or country) from a retailer export. */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd_store.h"
#include "net_agent.h"
#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/retail_csv.h"
#include "storefl_agent.h"

#define PROG "storefl-agent partition"

enum { MAX_BAD_SHOWN = 10, NAME_MAX_LEN = 100 };

static void partition_help(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent partition - split a retailer-wide export into one store database per client\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent partition --data FILE.csv[.gz] --by customer|country --out DIR\n"
          "                          [--min-lines N] [--before DATE] [--config AGENT.ini]\n"
          "\n"
          "DESCRIPTION\n"
          "  Simulates a federation from one export: every client (a customer, or a country) gets its\n"
          "  own store database DIR/<client>.db, with the same schema as 'storefl-agent ingest'\n"
          "  writes. Only clean purchase lines are used (the cleaning rules of the data README: no\n"
          "  cancellation invoice, quantity > 0, unit price > 0, a product code matching\n"
          "  ^[0-9]{5}[A-Za-z]*$, non-empty text; codes upper-cased).\n"
          "\n"
          "  Each store holds its client's events (shopper = the customer; lines without a customer\n"
          "  are anonymous and only go to country stores) and the whole catalogue: every clean\n"
          "  product of the file with its latest text and price and the time it was first sold\n"
          "  anywhere (first_seen). The catalogue is not private; it lets a store score products it\n"
          "  has never sold.\n"
          "\n"
          "  Client ids are used as file names (characters other than letters, digits, '.', '-' and\n"
          "  '_' become '_', e.g. United_Kingdom.db). DIR/clients.tsv lists client, file and events.\n"
          "  Files are written under a temporary name and renamed when complete. The stores are built\n"
          "  without fsync: after a crash, run the command again.\n"
          "\n"
          "OPTIONS\n"
          "  --data FILE         retailer export (CSV with header, plain or gzip)\n"
          "  --by customer|country\n"
          "                      what a client is\n"
          "  --out DIR           output directory (created if missing)\n"
          "  --min-lines N       only clients with at least N clean lines (before DATE if given);\n"
          "                      default 1\n"
          "  --before DATE       only events before DATE (YYYY-MM-DD[ HH:MM[:SS]], UTC as in the file),\n"
          "                      e.g. to keep a test period out of the stores\n"
          "  --config AGENT.ini  its [columns] section maps the CSV columns (see 'ingest --help')\n"
          "  --help              print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 success, 1 failure, 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent partition --data ../shared/data/online-retail/online_retail.csv.gz \\\n"
          "      --by country --out stores/\n"
          "  storefl-agent partition --data online_retail.csv.gz --by customer --min-lines 20 \\\n"
          "      --before 2011-09-25 --out customers/\n");
}

typedef struct part_ctx {
  const char *data, *out;
  int by_country;
  int64_t min_lines, before;
  sqlite3 *work;
  char work_path[4096];
  int tty;
} part_ctx;

static int work_exec(part_ctx *c, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(c->work, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, PROG ": work database: %s\n", msg ? msg : sqlite3_errmsg(c->work));
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

static int prepare(part_ctx *c, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(c->work, sql, -1, st, NULL) != SQLITE_OK) {
    fprintf(stderr, PROG ": work database: %s\n", sqlite3_errmsg(c->work));
    return -1;
  }
  return 0;
}

/* Pass 1: every clean line into the work database, and the catalogue. */
static int load_lines(part_ctx *c, const storefl_retail_columns *cols, uint64_t *rows_out,
                      uint64_t *clean_out) {
  storefl_retail_reader *rd = NULL;
  char err[300];
  if (storefl_retail_open(c->data, cols, &rd, err, sizeof err) != STOREFL_OK) {
    fprintf(stderr, PROG ": %s: %s\n", c->data, err);
    return -1;
  }
  struct stat sb;
  double total = stat(c->data, &sb) == 0 ? (double)sb.st_size : 0;
  sqlite3_stmt *line_st = NULL, *cat_st = NULL;
  int ret = work_exec(c, "BEGIN");
  ret = ret ? ret
            : prepare(c,
                      "INSERT INTO lines(client, time, shopper, basket, code, quantity, price, line) "
                      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                      &line_st);
  ret = ret ? ret
            : prepare(c,
                      "INSERT INTO catalogue(code, name, price, first_seen) VALUES(?1, ?2, ?3, ?4) "
                      "ON CONFLICT(code) DO UPDATE SET name = excluded.name, price = excluded.price, "
                      "first_seen = min(first_seen, excluded.first_seen)",
                      &cat_st);
  uint64_t rows = 0, clean = 0, bad = 0;
  double t0 = storefl_cmd_now(), last = 0;
  storefl_retail_row r;
  int rc;
  while (ret == 0 && (rc = storefl_retail_next(rd, &r)) != 0) {
    if (rc < 0) {
      if (storefl_retail_failed(rd)) {
        fprintf(stderr, PROG ": %s: %s\n", c->data, storefl_retail_error(rd));
        ret = -1;
        break;
      }
      if (bad++ < MAX_BAD_SHOWN)
        fprintf(stderr, "%s" PROG ": skipped bad row: %s\n", c->tty ? "\n" : "", storefl_retail_error(rd));
      continue;
    }
    rows++;
    if (r.flags != 0)
      continue;
    clean++;
    /* The catalogue sees every clean line, including anonymous ones and those after --before. */
    int src = sqlite3_reset(cat_st);
    src = src ? src : sqlite3_bind_text(cat_st, 1, r.code, -1, SQLITE_STATIC);
    src = src ? src : sqlite3_bind_text(cat_st, 2, r.text, -1, SQLITE_STATIC);
    src = src ? src : sqlite3_bind_double(cat_st, 3, r.price);
    src = src ? src : sqlite3_bind_int64(cat_st, 4, r.time);
    src = src ? src : (sqlite3_step(cat_st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR);
    const char *client = c->by_country ? r.country : r.shopper;
    if (src == SQLITE_OK && client[0] != '\0' && r.time < c->before) {
      src = sqlite3_reset(line_st);
      src = src ? src : sqlite3_bind_text(line_st, 1, client, -1, SQLITE_STATIC);
      src = src ? src : sqlite3_bind_int64(line_st, 2, r.time);
      src = src ? src : sqlite3_bind_text(line_st, 3, r.shopper, -1, SQLITE_STATIC);
      src = src ? src : sqlite3_bind_text(line_st, 4, r.basket, -1, SQLITE_STATIC);
      src = src ? src : sqlite3_bind_text(line_st, 5, r.code, -1, SQLITE_STATIC);
      src = src ? src : sqlite3_bind_double(line_st, 6, r.quantity);
      src = src ? src : sqlite3_bind_double(line_st, 7, r.price);
      src = src ? src : sqlite3_bind_int64(line_st, 8, (int64_t)r.line);
      src = src ? src : (sqlite3_step(line_st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR);
    }
    if (src != SQLITE_OK) {
      fprintf(stderr, PROG ": work database: %s\n", sqlite3_errmsg(c->work));
      ret = -1;
    }
    if (c->tty && (rows & 0x3fff) == 0) {
      double now = storefl_cmd_now();
      if (now - last > 0.25) {
        last = now;
        fprintf(stderr, "\r  reading: %" PRIu64 " rows  %.1f/%.1f MB  %.0f rows/s ", rows,
                (double)storefl_retail_offset(rd) / 1e6, total / 1e6, (double)rows / (now - t0 + 1e-9));
        fflush(stderr);
      }
    }
  }
  sqlite3_finalize(line_st);
  sqlite3_finalize(cat_st);
  storefl_retail_close(rd);
  if (ret == 0)
    ret = work_exec(c, "COMMIT; CREATE INDEX lines_client ON lines(client, line);");
  if (c->tty)
    fputc('\n', stderr);
  if (bad)
    fprintf(stderr, PROG ": %" PRIu64 " bad rows skipped\n", bad);
  *rows_out = rows;
  *clean_out = clean;
  return ret;
}

static void file_name_for(const char *client, char *buf, size_t len) {
  size_t n = 0;
  for (const char *p = client; *p && n + 1 < len && n < NAME_MAX_LEN; p++) {
    char ch = *p;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
             ch == '_' || (ch == '.' && n > 0);
    buf[n++] = ok ? ch : '_';
  }
  buf[n] = '\0';
}

static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb");
  if (!in)
    return -1;
  FILE *out = fopen(to, "wb");
  if (!out) {
    fclose(in);
    return -1;
  }
  char buf[1 << 16];
  size_t n;
  int ret = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) {
      ret = -1;
      break;
    }
  if (ferror(in))
    ret = -1;
  fclose(in);
  if (fclose(out) != 0)
    ret = -1;
  return ret;
}

static int path_join(char *buf, size_t len, const char *dir, const char *name, const char *suffix) {
  if ((size_t)snprintf(buf, len, "%s/%s%s", dir, name, suffix) >= len) {
    fprintf(stderr, PROG ": path too long: %s/%s%s\n", dir, name, suffix);
    return -1;
  }
  return 0;
}

/* A store with the schema and the catalogue, copied for every client. */
static int build_template(part_ctx *c, const char *path) {
  storefl_store_options o = {.no_sync = 1};
  storefl_store *s = NULL;
  char err[512];
  unlink(path);
  if (storefl_store_open(path, &o, &s, err, sizeof err) != STOREFL_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    return -1;
  }
  sqlite3 *db = storefl_store_db(s);
  /* ATTACH takes the file name as an expression: bind it rather than quote it. */
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "ATTACH ?1 AS work", -1, &st, NULL);
  rc = rc ? rc : sqlite3_bind_text(st, 1, c->work_path, -1, SQLITE_STATIC);
  rc = rc ? rc : (sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR);
  sqlite3_finalize(st);
  char *msg = NULL;
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db,
                      "BEGIN; INSERT INTO products(code, name, price, first_seen) "
                      "SELECT code, name, price, first_seen FROM work.catalogue ORDER BY code; COMMIT; "
                      "DETACH work;",
                      NULL, NULL, &msg);
  if (rc != SQLITE_OK) {
    fprintf(stderr, PROG ": template store: %s\n", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    storefl_store_close(s);
    return -1;
  }
  int e = storefl_store_meta_set(s, "source", c->data);
  e = e ? e : storefl_store_meta_set(s, "partition_by", c->by_country ? "country" : "customer");
  if (e != STOREFL_OK) {
    fprintf(stderr, PROG ": template store: %s\n", storefl_store_errmsg(s));
    storefl_store_close(s);
    return -1;
  }
  storefl_store_close(s);
  return 0;
}

/* Fills one client's store (a copy of the template) with its events, as one completed ingest run. */
static int fill_store(part_ctx *c, const char *path, const char *client, int64_t *events) {
  storefl_store_options o = {.no_sync = 1};
  storefl_store *s = NULL;
  char err[512];
  if (storefl_store_open(path, &o, &s, err, sizeof err) != STOREFL_OK) {
    fprintf(stderr, PROG ": %s\n", err);
    return -1;
  }
  sqlite3 *db = storefl_store_db(s);
  static const char *const STEPS[] = {
      "ATTACH ?2 AS work",
      "BEGIN",
      "INSERT INTO ingest_runs(source, pid, started_at, finished_at, state, message) "
      "VALUES(?3, 0, CAST(strftime('%s','now') AS INTEGER), CAST(strftime('%s','now') AS INTEGER), "
      "'complete', "
      "'storefl-agent partition')",
      "INSERT INTO shoppers(ext_id, first_seen) SELECT shopper, min(time) FROM work.lines "
      "WHERE client = ?1 AND shopper <> '' GROUP BY shopper",
      "INSERT OR IGNORE INTO events(time, shopper_id, basket, product_id, quantity, price, kind, "
      "source_line, run_id) "
      "SELECT l.time, h.id, l.basket, p.id, l.quantity, l.price, 2, l.line, (SELECT max(id) FROM "
      "ingest_runs) "
      "FROM work.lines l JOIN products p ON p.code = l.code LEFT JOIN shoppers h ON l.shopper <> '' AND "
      "h.ext_id = l.shopper WHERE l.client = ?1 ORDER BY l.line",
      "UPDATE ingest_runs SET rows_read = (SELECT count(*) FROM events), rows_stored = (SELECT count(*) FROM "
      "events) "
      "WHERE id = (SELECT max(id) FROM ingest_runs)",
      "INSERT OR REPLACE INTO meta(key, value) VALUES('client', ?1)",
      "COMMIT",
      "DETACH work",
  };
  int ret = 0;
  for (size_t i = 0; i < sizeof STEPS / sizeof STEPS[0] && ret == 0; i++) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, STEPS[i], -1, &st, NULL);
    int np = rc == SQLITE_OK ? sqlite3_bind_parameter_count(st) : 0;
    for (int k = 1; k <= np && rc == SQLITE_OK; k++) {
      const char *pname = sqlite3_bind_parameter_name(st, k);
      if (!pname)
        continue; /* ?N numbering leaves unnamed gaps below the highest N used */
      const char *val = strcmp(pname, "?1") == 0 ? client : strcmp(pname, "?2") == 0 ? c->work_path : c->data;
      rc = sqlite3_bind_text(st, k, val, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK)
      rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK && i == 4)
      *events = sqlite3_changes64(db);
    if (rc != SQLITE_OK) {
      fprintf(stderr, PROG ": %s: %s\n", path, sqlite3_errmsg(db));
      ret = -1;
    }
    sqlite3_finalize(st);
  }
  storefl_store_close(s); /* rolls back an open transaction */
  return ret;
}

static int write_stores(part_ctx *c, int64_t *n_stores, int64_t *n_events) {
  char tpl[4096], tmp[4096], final[4096], name[NAME_MAX_LEN + 16], manifest[4096];
  if (path_join(tpl, sizeof tpl, c->out, ".storefl-partition-template", ".db") ||
      path_join(manifest, sizeof manifest, c->out, "clients", ".tsv") || build_template(c, tpl))
    return -1;
  FILE *mf = fopen(manifest, "w");
  if (!mf) {
    fprintf(stderr, PROG ": %s: %s\n", manifest, strerror(errno));
    unlink(tpl);
    return -1;
  }
  fprintf(mf, "client\tfile\tevents\n");
  sqlite3_stmt *st = NULL, *name_st = NULL;
  char q[256];
  snprintf(q, sizeof q,
           "SELECT client, count(*) FROM lines GROUP BY client HAVING count(*) >= %lld ORDER BY client",
           (long long)c->min_lines);
  int ret = prepare(c, q, &st);
  ret = ret ? ret : prepare(c, "INSERT INTO names(name) VALUES(?1)", &name_st);
  int64_t total = 0;
  double t0 = storefl_cmd_now(), last = 0;
  while (ret == 0 && sqlite3_step(st) == SQLITE_ROW) {
    const char *client = (const char *)sqlite3_column_text(st, 0);
    char base[NAME_MAX_LEN + 1];
    file_name_for(client, base, sizeof base);
    /* Two ids may sanitise to one name: the later one gets a suffix. */
    for (int k = 1;; k++) {
      if (k == 1)
        snprintf(name, sizeof name, "%s", base);
      else
        snprintf(name, sizeof name, "%s-%d", base, k);
      sqlite3_reset(name_st);
      if (sqlite3_bind_text(name_st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK) {
        ret = -1;
        break;
      }
      int rc = sqlite3_step(name_st);
      if (rc == SQLITE_DONE)
        break;
      if ((rc & 0xff) != SQLITE_CONSTRAINT || k > 1000) {
        fprintf(stderr, PROG ": work database: %s\n", sqlite3_errmsg(c->work));
        ret = -1;
        break;
      }
    }
    if (ret)
      break;
    int64_t ev = 0;
    if (path_join(tmp, sizeof tmp, c->out, name, ".db.tmp") ||
        path_join(final, sizeof final, c->out, name, ".db")) {
      ret = -1;
      break;
    }
    if (copy_file(tpl, tmp) != 0) {
      fprintf(stderr, PROG ": copy %s to %s: %s\n", tpl, tmp, strerror(errno));
      ret = -1;
      break;
    }
    int failed = fill_store(c, tmp, client, &ev) != 0;
    if (!failed && rename(tmp, final) != 0) {
      fprintf(stderr, PROG ": %s: %s\n", final, strerror(errno));
      failed = 1;
    }
    if (failed) {
      unlink(tmp);
      ret = -1;
      break;
    }
    fprintf(mf, "%s\t%s.db\t%lld\n", client, name, (long long)ev);
    total += ev;
    (*n_stores)++;
    if (c->tty) {
      double now = storefl_cmd_now();
      if (now - last > 0.25) {
        last = now;
        fprintf(stderr, "\r  writing: %lld stores  %lld events  %.0f stores/s ", (long long)*n_stores,
                (long long)total, (double)*n_stores / (now - t0 + 1e-9));
        fflush(stderr);
      }
    }
  }
  if (c->tty)
    fputc('\n', stderr);
  sqlite3_finalize(st);
  sqlite3_finalize(name_st);
  if (fclose(mf) != 0 && ret == 0) {
    fprintf(stderr, PROG ": %s: %s\n", manifest, strerror(errno));
    ret = -1;
  }
  unlink(tpl);
  *n_events = total;
  return ret;
}

int storefl_cmd_partition(int argc, char **argv) {
  part_ctx c = {.before = INT64_MAX, .min_lines = 1, .by_country = -1};
  const char *config = NULL, *v;
  for (int i = 1; i < argc; i++) {
    int m;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      partition_help(stdout);
      return STOREFL_EXIT_OK;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--data", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      c.data = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--out", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      c.out = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--config", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      config = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--by", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      if (strcmp(v, "customer") == 0)
        c.by_country = 0;
      else if (strcmp(v, "country") == 0)
        c.by_country = 1;
      else {
        fprintf(stderr, PROG ": --by takes customer or country, not '%s'\n", v);
        return STOREFL_EXIT_USAGE;
      }
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--min-lines", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      char *end;
      errno = 0;
      long long n = strtoll(v, &end, 10);
      if (*v == '\0' || *end != '\0' || errno || n < 1) {
        fprintf(stderr, PROG ": --min-lines takes a number >= 1\n");
        return STOREFL_EXIT_USAGE;
      }
      c.min_lines = n;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--before", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      char buf[32];
      snprintf(buf, sizeof buf, "%s", v);
      if (strlen(v) == 10)
        snprintf(buf, sizeof buf, "%s 00:00", v);
      if (storefl_parse_time(buf, &c.before) != STOREFL_OK) {
        fprintf(stderr, PROG ": --before takes YYYY-MM-DD[ HH:MM[:SS]], not '%s'\n", v);
        return STOREFL_EXIT_USAGE;
      }
    } else {
      fprintf(stderr, PROG ": unknown argument '%s'; see '" PROG " --help'\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!c.data || !c.out || c.by_country < 0) {
    fprintf(stderr, PROG ": --data, --by and --out are required; see '" PROG " --help'\n");
    return STOREFL_EXIT_USAGE;
  }
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  char err[512];
  if (config && (storefl_agent_ini_check(config, err, sizeof err) != STOREFL_OK ||
                 storefl_retail_columns_load_ini(config, "columns", &cols, err, sizeof err) != STOREFL_OK)) {
    fprintf(stderr, PROG ": %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  if (c.by_country && cols.name[STOREFL_COL_COUNTRY][0] == '\0') {
    fprintf(stderr, PROG ": --by country needs a country column ([columns] country = ...)\n");
    return STOREFL_EXIT_USAGE;
  }
  /* Clients are countries: the column becomes required, so a missing one is an error naming it
   * rather than zero stores. */
  if (c.by_country &&
      storefl_retail_columns_set(&cols, "country", cols.name[STOREFL_COL_COUNTRY]) != STOREFL_OK) {
    fprintf(stderr, PROG ": bad country column name\n");
    return STOREFL_EXIT_FAIL;
  }
  if (mkdir(c.out, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, PROG ": %s: %s\n", c.out, strerror(errno));
    return STOREFL_EXIT_FAIL;
  }
  if (path_join(c.work_path, sizeof c.work_path, c.out, ".storefl-partition-work", ".db"))
    return STOREFL_EXIT_FAIL;
  c.tty = isatty(STDERR_FILENO);
  unlink(c.work_path);
  if (sqlite3_open_v2(c.work_path, &c.work, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    fprintf(stderr, PROG ": %s: %s\n", c.work_path, sqlite3_errmsg(c.work));
    sqlite3_close(c.work);
    return STOREFL_EXIT_FAIL;
  }
  double t0 = storefl_cmd_now();
  uint64_t rows = 0, clean = 0;
  int64_t stores = 0, events = 0, products = 0;
  /* A scratch database: no journal, no fsync; it is deleted at the end either way. */
  int ret = work_exec(
      &c, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -16384;"
          "CREATE TABLE lines(client TEXT NOT NULL, time INTEGER NOT NULL, shopper TEXT NOT NULL, "
          "  basket TEXT NOT NULL, code TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL, "
          "  line INTEGER NOT NULL);"
          "CREATE TABLE catalogue(code TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL, "
          "  first_seen INTEGER NOT NULL);"
          "CREATE TABLE names(name TEXT PRIMARY KEY);");
  ret = ret ? ret : load_lines(&c, &cols, &rows, &clean);
  if (ret == 0) {
    sqlite3_stmt *st = NULL;
    ret = prepare(&c, "SELECT count(*) FROM catalogue", &st);
    if (ret == 0 && sqlite3_step(st) == SQLITE_ROW)
      products = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  ret = ret ? ret : write_stores(&c, &stores, &events);
  sqlite3_close(c.work);
  unlink(c.work_path);
  if (ret != 0) {
    fprintf(stderr, PROG ": failed; the stores written so far in %s are complete, the rest is missing\n",
            c.out);
    return STOREFL_EXIT_FAIL;
  }
  fprintf(stderr,
          "partition: %s: %" PRIu64 " rows, %" PRIu64 " clean; %lld stores (by %s, >= %lld lines) with %lld "
          "events and a catalogue of %lld products each, in %s; %.1f s, peak RSS %.1f MiB\n",
          c.data, rows, clean, (long long)stores, c.by_country ? "country" : "customer",
          (long long)c.min_lines, (long long)events, (long long)products, c.out, storefl_cmd_now() - t0,
          storefl_cmd_peak_rss_mib());
  return STOREFL_EXIT_OK;
}
