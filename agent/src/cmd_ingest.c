/* storefl-agent ingest: import a retailer CSV export into the store. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd_store.h"
#include "ingest.h"
#include "net_agent.h"
#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/retail_csv.h"
#include "storefl_agent.h"

enum { MAX_BAD_SHOWN = 10 };

int storefl_cmd_opt(int argc, char **argv, int *i, const char *name, const char **value) {
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0)
    return 0;
  if (a[n] == '=') {
    *value = a + n + 1;
    return 1;
  }
  if (a[n] != '\0')
    return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "%s: option %s needs a value\n", argv[0], name);
    return -1;
  }
  *value = argv[++*i];
  return 1;
}

double storefl_cmd_peak_rss_mib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

double storefl_cmd_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void ingest_help(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent ingest - import a retailer's CSV export into the store's database\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent ingest --db STORE.db [--config AGENT.ini] [--on-error skip|stop] [--batch N]\n"
          "                       [--any-code] [--integrity-check] FILE.csv[.gz]\n"
          "\n"
          "DESCRIPTION\n"
          "  Streams FILE (plain or gzip-compressed CSV with a header line) into STORE.db (created if\n"
          "  missing; SQLite in WAL mode), in constant memory. Columns are found by header name with\n"
          "  the mapping of the [columns] section of AGENT.ini; the defaults are the Online Retail\n"
          "  layout (StockCode, Description, InvoiceDate, InvoiceNo, CustomerID, Quantity, UnitPrice,\n"
          "  Country). See docs/store.md for the keys (product, text, time, basket, shopper,\n"
          "  quantity, price, category, brand, country, kind).\n"
          "\n"
          "  Cleaning: purchases are kept when the invoice is not a cancellation (no leading C),\n"
          "  quantity > 0, unit price > 0, the code is a product code (^[0-9]{5}[A-Za-z]*$ unless\n"
          "  --any-code) and the text is not empty; cancellations of such products become returns;\n"
          "  views and add-to-carts (from a kind column) need no price. Other lines are counted as\n"
          "  filtered. Product codes are upper-cased; \"17850.0\" shopper ids become \"17850\".\n"
          "\n"
          "  The file is imported as one unit: rows are staged one transaction per batch, and only a\n"
          "  final transaction makes them visible. If the ingest stops (a bad row with --on-error\n"
          "  stop, an unreadable file, a kill or a crash), nothing of the file appears in the store;\n"
          "  staged rows of an interrupted run are discarded the next time the store is opened.\n"
          "  Re-importing the same file adds nothing (events are keyed by basket, product, time and\n"
          "  line), so an interrupted ingest is simply run again.\n"
          "\n"
          "  On a terminal, progress (rows, MB, rows/s) is shown on stderr; a summary line is always\n"
          "  printed on stderr at the end.\n"
          "\n"
          "OPTIONS\n"
          "  --db STORE.db          the store's database (required)\n"
          "  --config AGENT.ini     agent configuration; its [columns] section maps the CSV columns\n"
          "  --on-error skip|stop   a bad row (unparsable number or time, missing fields) is reported\n"
          "                         with its line number and skipped (default), or stops the ingest\n"
          "                         with nothing imported\n"
          "  --batch N              rows per staging transaction (default 10000)\n"
          "  --any-code             accept any product code, not only Online Retail's 5 digits + letters\n"
          "  --integrity-check      run SQLite's integrity and foreign key checks on the store first\n"
          "                         (reads the whole database) and refuse a damaged one\n"
          "  --help                 print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 imported (bad rows skipped are reported), 1 failure (nothing imported), 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent ingest --db store.db ../shared/data/online-retail/online_retail.csv.gz\n"
          "  storefl-agent ingest --db store.db --config agent.ini --on-error stop pos-export.csv\n");
}

typedef struct ingest_ui {
  int tty;
  double t0, last;
  uint64_t total_bytes;
  unsigned bad_shown;
} ingest_ui;

static void on_progress(void *user, const storefl_ingest_stats *st) {
  ingest_ui *ui = user;
  if (!ui->tty)
    return;
  double now = storefl_cmd_now();
  if (now - ui->last < 0.25)
    return;
  ui->last = now;
  double dt = now - ui->t0 > 1e-9 ? now - ui->t0 : 1e-9;
  fprintf(stderr, "\r  %" PRIu64 " rows  %.1f/%.1f MB  %.0f rows/s ", st->rows, (double)st->bytes / 1e6,
          (double)ui->total_bytes / 1e6, (double)st->rows / dt);
  fflush(stderr);
}

static void on_bad_row(void *user, const char *msg) {
  ingest_ui *ui = user;
  if (ui->tty)
    fputc('\n', stderr);
  if (ui->bad_shown < MAX_BAD_SHOWN)
    fprintf(stderr, "storefl-agent ingest: skipped bad row: %s\n", msg);
  else if (ui->bad_shown == MAX_BAD_SHOWN)
    fprintf(stderr, "storefl-agent ingest: more bad rows skipped; the summary counts them\n");
  ui->bad_shown++;
}

int storefl_cmd_ingest(int argc, char **argv) {
  const char *db = NULL, *config = NULL, *file = NULL, *v;
  storefl_ingest_options opts = {0};
  storefl_store_options store_opts = {0};
  for (int i = 1; i < argc; i++) {
    int m;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      ingest_help(stdout);
      return STOREFL_EXIT_OK;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--db", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      db = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--config", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      config = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--on-error", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      if (strcmp(v, "skip") == 0)
        opts.on_error = STOREFL_ON_ERROR_SKIP;
      else if (strcmp(v, "stop") == 0)
        opts.on_error = STOREFL_ON_ERROR_STOP;
      else {
        fprintf(stderr, "storefl-agent ingest: --on-error takes skip or stop, not '%s'\n", v);
        return STOREFL_EXIT_USAGE;
      }
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--batch", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      char *end;
      errno = 0;
      unsigned long n = strtoul(v, &end, 10);
      if (*v == '\0' || *end != '\0' || errno || n == 0 || n > 10000000) {
        fprintf(stderr, "storefl-agent ingest: --batch takes a number from 1 to 10000000\n");
        return STOREFL_EXIT_USAGE;
      }
      opts.batch = (uint32_t)n;
    } else if (strcmp(argv[i], "--integrity-check") == 0) {
      store_opts.integrity_check = 1;
    } else if (strcmp(argv[i], "--any-code") == 0) {
      opts.any_code = 1;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "storefl-agent ingest: unknown option '%s'; see 'storefl-agent ingest --help'\n",
              argv[i]);
      return STOREFL_EXIT_USAGE;
    } else if (file) {
      fprintf(stderr, "storefl-agent ingest: one FILE at a time\n");
      return STOREFL_EXIT_USAGE;
    } else {
      file = argv[i];
    }
  }
  if (!db || !file) {
    fprintf(stderr, "storefl-agent ingest: --db and FILE are required; see 'storefl-agent ingest --help'\n");
    return STOREFL_EXIT_USAGE;
  }
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  char err[512];
  if (config && (storefl_agent_ini_check(config, err, sizeof err) != STOREFL_OK ||
                 storefl_retail_columns_load_ini(config, "columns", &cols, err, sizeof err) != STOREFL_OK)) {
    fprintf(stderr, "storefl-agent ingest: %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  storefl_store *s = NULL;
  if (storefl_store_open(db, &store_opts, &s, err, sizeof err) != STOREFL_OK) {
    fprintf(stderr, "storefl-agent ingest: %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  ingest_ui ui = {.tty = isatty(STDERR_FILENO), .t0 = storefl_cmd_now()};
  struct stat sb;
  if (stat(file, &sb) == 0)
    ui.total_bytes = (uint64_t)sb.st_size;
  opts.progress = on_progress;
  opts.bad_row = on_bad_row;
  opts.user = &ui;
  storefl_ingest_stats st;
  int e = storefl_ingest_file(s, file, &cols, &opts, &st);
  double dt = storefl_cmd_now() - ui.t0;
  if (ui.tty)
    fputc('\n', stderr);
  if (st.recovered_runs)
    fprintf(stderr, "storefl-agent ingest: discarded %d interrupted earlier ingest(s) of this store\n",
            st.recovered_runs);
  if (e != STOREFL_OK) {
    fprintf(stderr, "storefl-agent ingest: %s\n", storefl_store_errmsg(s));
    fprintf(stderr, "storefl-agent ingest: failed after %" PRIu64 " rows; nothing of %s was imported\n",
            st.rows, file);
    storefl_store_close(s);
    return STOREFL_EXIT_FAIL;
  }
  storefl_store_close(s);
  fprintf(stderr,
          "ingest: %s: %" PRIu64 " rows read, %" PRIu64 " kept, %" PRIu64 " filtered, %" PRIu64
          " bad; %" PRIu64 " new events, %" PRIu64 " already present; %.1f s, %.0f rows/s, %.1f MB, "
          "peak RSS %.1f MiB\n",
          file, st.rows, st.staged, st.filtered, st.bad, st.inserted, st.duplicate, dt,
          dt > 0 ? (double)st.rows / dt : 0.0, (double)st.bytes / 1e6, storefl_cmd_peak_rss_mib());
  return STOREFL_EXIT_OK;
}
