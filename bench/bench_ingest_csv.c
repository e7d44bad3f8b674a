/*
 * Ingest throughput into the SQLite store against the raw speed of reading the same export,
 * measured in the same run: gunzip only, CSV records, parsed retail rows, then the full ingest
 * (staging + merge). Also the ingest's peak RSS on a 100k-row prefix and on the whole file, each in
 * a child process, to show that memory does not grow with the file.
 *
 * Usage: bench_ingest_csv [online_retail.csv.gz]   (default $STOREFL_DATA_DIR/online-retail/...)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "benchutil.h"
#include "ingest.h"
#include "storefl/csv.h"
#include "storefl/error.h"
#include "storefl/retail_csv.h"
#include "storefl_agent.h"

static double gunzip_seconds(const char *path, size_t *bytes) {
  double t0 = bench_now();
  gzFile gz = gzopen(path, "rb");
  if (!gz)
    return -1;
  static char buf[1 << 16];
  int n;
  *bytes = 0;
  while ((n = gzread(gz, buf, sizeof buf)) > 0)
    *bytes += (size_t)n;
  gzclose(gz);
  return n < 0 ? -1 : bench_now() - t0;
}

static double csv_seconds(const char *path, size_t *records) {
  double t0 = bench_now();
  storefl_csv *r = NULL;
  if (storefl_csv_open(path, NULL, &r) != STOREFL_OK)
    return -1;
  int rc;
  *records = 0;
  while ((rc = storefl_csv_next(r)) == 1)
    (*records)++;
  storefl_csv_close(r);
  return rc == 0 ? bench_now() - t0 : -1;
}

static double rows_seconds(const char *path, size_t *rows) {
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  double t0 = bench_now();
  storefl_retail_reader *r = NULL;
  if (storefl_retail_open(path, &cols, &r, NULL, 0) != STOREFL_OK)
    return -1;
  storefl_retail_row row;
  int rc;
  *rows = 0;
  while ((rc = storefl_retail_next(r, &row)) == 1)
    *rows += row.flags == 0;
  storefl_retail_close(r);
  return rc == 0 ? bench_now() - t0 : -1;
}

typedef struct phase {
  double t0, staged_at;
} phase;

static void on_progress(void *user, const storefl_ingest_stats *st) {
  (void)st;
  phase *p = user;
  p->staged_at = bench_now() - p->t0; /* the last call comes right before the merge */
}

/* Ingests path into a new store at db; returns seconds, or -1. */
static double ingest_seconds(const char *path, const char *db, double *stage_s, storefl_ingest_stats *st) {
  storefl_store *s = NULL;
  char err[256];
  if (storefl_store_open(db, NULL, &s, err, sizeof err) != STOREFL_OK) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  phase p = {.t0 = bench_now()};
  storefl_ingest_options o = {.progress = on_progress, .user = &p};
  int e = storefl_ingest_file(s, path, &cols, &o, st);
  double dt = bench_now() - p.t0;
  if (e != STOREFL_OK)
    fprintf(stderr, "ingest: %s\n", storefl_store_errmsg(s));
  storefl_store_close(s);
  *stage_s = p.staged_at;
  return e == STOREFL_OK ? dt : -1;
}

/* Peak RSS (MiB) over the children waited for so far (POSIX keeps the maximum), after a child
 * process that ingests path into db: call with the smaller input first. */
static double child_ingest_rss(const char *path, const char *db) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    double stage;
    storefl_ingest_stats st;
    _exit(ingest_seconds(path, db, &stage, &st) < 0 ? 1 : 0);
  }
  int status;
  struct rusage ru;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
      getrusage(RUSAGE_CHILDREN, &ru) != 0)
    return -1;
  return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
  char path[1024], dir[] = "/tmp/storefl-bench-ingest-XXXXXX", db[1100], prefix[1100];
  const char *env = getenv("STOREFL_DATA_DIR");
  if (argc > 1)
    snprintf(path, sizeof path, "%s", argv[1]);
  else
    snprintf(path, sizeof path, "%s/online-retail/online_retail.csv.gz", env ? env : "../shared/data");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  size_t bytes = 0, records = 0, clean = 0;
  double t_gz = gunzip_seconds(path, &bytes);
  double t_csv = csv_seconds(path, &records);
  double t_rows = rows_seconds(path, &clean);
  snprintf(db, sizeof db, "%s/store.db", dir);
  double stage_s = 0;
  storefl_ingest_stats st;
  double t_ingest = ingest_seconds(path, db, &stage_s, &st);

  /* A 100k-row prefix as plain CSV, for the memory comparison. */
  snprintf(prefix, sizeof prefix, "%s/prefix.csv", dir);
  int ok = t_gz > 0 && t_csv > 0 && t_rows > 0 && t_ingest > 0;
  gzFile gz = gzopen(path, "rb");
  FILE *out = fopen(prefix, "wb");
  if (!gz || !out)
    ok = 0;
  for (int lines = 0; ok && lines <= 100000;) {
    int c = gzgetc(gz);
    if (c < 0)
      break;
    if (fputc(c, out) == EOF)
      ok = 0;
    lines += c == '\n';
  }
  if (gz)
    gzclose(gz);
  if (out && fclose(out) != 0)
    ok = 0;
  char db_small[1100], db_full[1100];
  snprintf(db_small, sizeof db_small, "%s/small.db", dir);
  snprintf(db_full, sizeof db_full, "%s/full.db", dir);
  double rss_small = ok ? child_ingest_rss(prefix, db_small) : -1;
  double rss_full = ok ? child_ingest_rss(path, db_full) : -1;

  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  if (!ok || rss_small < 0 || rss_full < 0) {
    fprintf(stderr, "bench_ingest_csv: a measurement failed (data at %s?)\n", path);
    return 1;
  }
  double rows = (double)records - 1; /* header */
  printf("{\"bench\":\"ingest_csv\",\"file\":\"%s\",\"rows\":%.0f,\"clean_rows\":%zu,\"unpacked_mb\":%.1f,"
         "\"gunzip_mb_s\":%.1f,\"csv_parse_rows_s\":%.0f,\"retail_parse_rows_s\":%.0f,"
         "\"ingest_rows_s\":%.0f,\"ingest_stage_s\":%.2f,\"ingest_merge_s\":%.2f,\"events\":%llu,"
         "\"ingest_vs_csv_parse\":%.4f,\"ingest_vs_retail_parse\":%.4f,"
         "\"peak_rss_mib_100k_rows\":%.1f,\"peak_rss_mib_all_rows\":%.1f}\n",
         path, rows, clean, (double)bytes / 1e6, (double)bytes / 1e6 / t_gz, rows / t_csv, rows / t_rows,
         rows / t_ingest, stage_s, t_ingest - stage_s, (unsigned long long)st.inserted, t_csv / t_ingest,
         t_rows / t_ingest, rss_small, rss_full);
  return 0;
}
