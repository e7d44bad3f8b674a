/* `storefl-aggregator audit export|verify|pubkey`. */
#include "cmd_audit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/base64.h>

#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/ledger.h"

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-aggregator audit - export and verify the signed privacy ledger\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-aggregator audit export --db DB --format json|csv|html [--cap EPS] [-o FILE]\n"
               "  storefl-aggregator audit verify --db DB (--pubkey PEM | --key KEY)\n"
               "  storefl-aggregator audit pubkey --key KEY [-o FILE]\n"
               "\n"
               "DESCRIPTION\n"
               "  Every closed round appends one entry to the aggregator's ledger: round, privacy mode,\n"
               "  the participation probability q claimed for amplification (1 when not claimed), noise\n"
               "  multiplier sigma, clip norm C, delta, participants, the cumulative epsilon of every\n"
               "  store, the model digest, the previous entry's hash, the entry's SHA-256 over its\n"
               "  canonical CBOR, and an ECDSA P-256 signature by the aggregator's key.\n"
               "\n"
               "  export   writes the ledger as JSON (every field, plus each entry's signed CBOR and\n"
               "           signature in base64 so it can be checked with openssl), CSV (one row per entry\n"
               "           and store) or HTML (one self-contained page: chart of epsilon per store over\n"
               "           rounds with the cap, and the table of rounds).\n"
               "  verify   checks that every entry decodes, sits at its index, chains to the previous\n"
               "           hash, hashes to its entry hash, carries a valid signature under the given key,\n"
               "           and lists the epsilons a replay of the ledger's rounds gives. Prints the number\n"
               "           of entries and the head hash (publish them: a verifier holding an earlier head\n"
               "           also detects a truncated ledger).\n"
               "  pubkey   prints the aggregator's public key as PEM (creating the key, mode 0600, if it\n"
               "           does not exist yet).\n"
               "\n"
               "OPTIONS\n"
               "  --db DB          the aggregator's SQLite database\n"
               "  --format F       json, csv or html\n"
               "  --cap EPS        the per-store epsilon cap to draw in the HTML chart (optional)\n"
               "  -o, --output F   write to F instead of standard output\n"
               "  --pubkey PEM     the aggregator's published public key (what an auditor should use)\n"
               "  --key KEY        the aggregator's private key file (its public half is used)\n"
               "  --help           print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 success (verify: the ledger is intact), 1 failure (verify: names the first bad entry),\n"
               "  2 usage error.\n"
               "\n"
               "EXAMPLES\n"
               "  storefl-aggregator audit verify --db aggregator.db --pubkey aggregator-pub.pem\n"
               "  storefl-aggregator audit export --db aggregator.db --format html --cap 8 -o audit.html\n"
               "  storefl-aggregator audit pubkey --key aggregator.key -o aggregator-pub.pem\n"
               "  (docs/privacy.md shows how to check one exported entry with openssl alone)\n");
}

/* ---- collecting the ledger for export ------------------------------------------------------------ */

typedef struct row {
  storefl_ledger_entry e; /* pointers below are owned copies */
  char **parts;
  char **eps_ids;
  double *eps;
  char *signed_b64, *sig_b64;
} row;

typedef struct rows {
  row *v;
  size_t n, cap;
} rows;

static char *dup_str(const char *p, size_t len) {
  char *s = malloc(len + 1);
  if (s != NULL) {
    memcpy(s, p, len);
    s[len] = '\0';
  }
  return s;
}

static char *b64(const uint8_t *p, size_t len) {
  size_t olen = 0;
  mbedtls_base64_encode(NULL, 0, &olen, p, len);
  char *s = malloc(olen + 1);
  if (s == NULL || mbedtls_base64_encode((unsigned char *)s, olen + 1, &olen, p, len) != 0) {
    free(s);
    return NULL;
  }
  s[olen] = '\0';
  return s;
}

static int collect(void *ctx, const storefl_ledger_entry *e, const uint8_t *signed_cbor, size_t signed_len) {
  rows *rs = ctx;
  if (rs->n == rs->cap) {
    size_t nc = rs->cap ? 2 * rs->cap : 16;
    row *nv = realloc(rs->v, nc * sizeof *nv);
    if (nv == NULL)
      return STOREFL_ERR_NOMEM;
    rs->v = nv;
    rs->cap = nc;
  }
  row *r = &rs->v[rs->n];
  memset(r, 0, sizeof *r);
  r->e = *e;
  r->e.participants = NULL;
  r->e.epsilons = NULL;
  r->e.signature = NULL;
  rs->n++; /* counted now so that a failure below still frees what was allocated */
  r->parts = calloc(e->n_participants + 1, sizeof *r->parts);
  r->eps_ids = calloc(e->n_epsilons + 1, sizeof *r->eps_ids);
  r->eps = calloc(e->n_epsilons + 1, sizeof *r->eps);
  r->signed_b64 = b64(signed_cbor, signed_len);
  r->sig_b64 = b64(e->signature, e->signature_len);
  if (!r->parts || !r->eps_ids || !r->eps || !r->signed_b64 || !r->sig_b64)
    return STOREFL_ERR_NOMEM;
  for (uint32_t i = 0; i < e->n_participants; i++)
    if ((r->parts[i] = dup_str(e->participants[i].ptr, e->participants[i].len)) == NULL)
      return STOREFL_ERR_NOMEM;
  for (uint32_t i = 0; i < e->n_epsilons; i++) {
    if ((r->eps_ids[i] = dup_str(e->epsilons[i].store_id.ptr, e->epsilons[i].store_id.len)) == NULL)
      return STOREFL_ERR_NOMEM;
    r->eps[i] = e->epsilons[i].epsilon;
  }
  return STOREFL_OK;
}

static void rows_free(rows *rs) {
  for (size_t k = 0; k < rs->n; k++) {
    row *r = &rs->v[k];
    for (uint32_t i = 0; r->parts && i < r->e.n_participants; i++)
      free(r->parts[i]);
    for (uint32_t i = 0; r->eps_ids && i < r->e.n_epsilons; i++)
      free(r->eps_ids[i]);
    free(r->parts);
    free(r->eps_ids);
    free(r->eps);
    free(r->signed_b64);
    free(r->sig_b64);
  }
  free(rs->v);
}

static void hex(FILE *f, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%02x", p[i]);
}

static const char *mode_name(storefl_privacy_mode m) {
  return m == STOREFL_PRIVACY_LOCAL ? "local" : m == STOREFL_PRIVACY_CENTRAL ? "central" : "unknown";
}

static void utc(char *buf, size_t cap, int64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  if (gmtime_r(&t, &tm) == NULL || strftime(buf, cap, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
    snprintf(buf, cap, "%lld ms", (long long)ms);
}

static int participated(const row *r, const char *id) {
  for (uint32_t i = 0; i < r->e.n_participants; i++)
    if (strcmp(r->parts[i], id) == 0)
      return 1;
  return 0;
}

static void export_json(FILE *f, const rows *rs) {
  fprintf(f, "{\"format\":\"storefl-ledger-1\",\"entries\":[");
  for (size_t k = 0; k < rs->n; k++) {
    const row *r = &rs->v[k];
    fprintf(
        f,
        "%s\n{\"index\":%llu,\"round\":%llu,\"mode\":\"%s\",\"q\":%.17g,\"sigma\":%.17g,\"clip_norm\":%.17g,"
        "\"delta\":%.17g,\"closed_unix_ms\":%lld,\"model_digest\":\"",
        k ? "," : "", (unsigned long long)r->e.index, (unsigned long long)r->e.round, mode_name(r->e.mode),
        r->e.participation_q, r->e.noise_multiplier, r->e.clip_norm, r->e.delta,
        (long long)r->e.closed_unix_ms);
    hex(f, r->e.model_digest, STOREFL_DIGEST_LEN);
    fprintf(f, "\",\"prev_hash\":\"");
    hex(f, r->e.prev_hash, STOREFL_DIGEST_LEN);
    fprintf(f, "\",\"entry_hash\":\"");
    hex(f, r->e.entry_hash, STOREFL_DIGEST_LEN);
    fprintf(f, "\",\"participants\":[");
    for (uint32_t i = 0; i < r->e.n_participants; i++)
      fprintf(f, "%s\"%s\"", i ? "," : "", r->parts[i]); /* ids are [A-Za-z0-9._-]: no escaping needed */
    fprintf(f, "],\"epsilons\":{");
    for (uint32_t i = 0; i < r->e.n_epsilons; i++)
      fprintf(f, "%s\"%s\":%.17g", i ? "," : "", r->eps_ids[i], r->eps[i]);
    fprintf(f, "},\"signed_cbor_b64\":\"%s\",\"signature_der_b64\":\"%s\"}", r->signed_b64, r->sig_b64);
  }
  fprintf(f, "\n]}\n");
}

static void export_csv(FILE *f, const rows *rs) {
  fprintf(f, "index,round,closed_utc,mode,q,sigma,clip_norm,delta,n_participants,store_id,participated,"
             "cumulative_epsilon,entry_hash\n");
  for (size_t k = 0; k < rs->n; k++) {
    const row *r = &rs->v[k];
    char when[64];
    utc(when, sizeof when, r->e.closed_unix_ms);
    for (uint32_t i = 0; i < r->e.n_epsilons; i++) {
      fprintf(f, "%llu,%llu,%s,%s,%.17g,%.17g,%.17g,%.17g,%u,%s,%d,%.17g,", (unsigned long long)r->e.index,
              (unsigned long long)r->e.round, when, mode_name(r->e.mode), r->e.participation_q,
              r->e.noise_multiplier, r->e.clip_norm, r->e.delta, r->e.n_participants, r->eps_ids[i],
              participated(r, r->eps_ids[i]), r->eps[i]);
      hex(f, r->e.entry_hash, STOREFL_DIGEST_LEN);
      fputc('\n', f);
    }
  }
}

/* Stores in the last entry (every store ever charged appears in every later entry). */
static void export_html(FILE *f, const rows *rs, double cap) {
  static const char *colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
                                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#d62728"};
  const row *last = rs->n ? &rs->v[rs->n - 1] : NULL;
  double ymax = isfinite(cap) && cap > 0 ? cap : 0;
  for (size_t k = 0; k < rs->n; k++)
    for (uint32_t i = 0; i < rs->v[k].e.n_epsilons; i++)
      if (rs->v[k].eps[i] > ymax)
        ymax = rs->v[k].eps[i];
  if (ymax <= 0)
    ymax = 1;
  ymax *= 1.1;
  const double W = 760, H = 340, L = 60, R = 20, T = 20, B = 40;
  double pw = W - L - R, ph = H - T - B;
  size_t n = rs->n;
  fprintf(
      f,
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>storefl privacy "
      "audit</title>\n"
      "<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:"
      "13px}"
      "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f0f0f0}"
      "td.l{text-align:left;font-family:monospace}.note{color:#555;max-width:60em}</style></head><body>\n");
  fprintf(
      f,
      "<h1>Privacy audit of the federated learning ledger</h1>\n<p class=\"note\">%zu rounds recorded. Each "
      "row below is one closed round, chained to the previous one by SHA-256 and signed by the aggregator "
      "(ECDSA P-256). The chart shows each store's cumulative &epsilon; (at the round's &delta;) after every "
      "round; the store is the unit of privacy. Run <code>storefl-aggregator audit verify</code> to check "
      "hashes, chain and signatures.</p>\n",
      n);
  if (isfinite(cap) && cap > 0)
    fprintf(f, "<p>Per-store cap: &epsilon; &le; %g.</p>\n", cap);
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" role=\"img\" "
          "aria-label=\"cumulative epsilon per store over rounds\">\n",
          W, H + (last ? 20.0 * (double)((last->e.n_epsilons + 3) / 4) : 0));
  fprintf(f,
          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#999\"/>\n",
          L, T, pw, ph);
  for (int t = 0; t <= 4; t++) {
    double v = ymax * t / 4, y = T + ph - ph * t / 4;
    fprintf(f,
            "<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>"
            "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n",
            L - 5, y + 4, v, L, L + pw, y, y);
  }
  fprintf(f,
          "<text x=\"15\" y=\"%.0f\" font-size=\"12\" transform=\"rotate(-90 15 %.0f)\">cumulative "
          "&#949;</text>\n",
          T + ph / 2, T + ph / 2);
  for (size_t k = 0; k < n; k++) {
    double x = L + (n > 1 ? pw * (double)k / (double)(n - 1) : pw / 2);
    if (n <= 20 || k % (n / 10) == 0)
      fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"middle\">%llu</text>\n", x,
              T + ph + 15, (unsigned long long)rs->v[k].e.round);
  }
  fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\">round</text>\n", L + pw / 2,
          T + ph + 32);
  if (isfinite(cap) && cap > 0) {
    double y = T + ph - ph * cap / ymax;
    fprintf(
        f,
        "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-dasharray=\"6 4\" "
        "stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" fill=\"#d62728\" "
        "text-anchor=\"end\">cap %g</text>\n",
        L, L + pw, y, y, L + pw - 4, y - 4, cap);
  }
  for (uint32_t s = 0; last && s < last->e.n_epsilons; s++) {
    const char *id = last->eps_ids[s];
    const char *col = colors[s % (sizeof colors / sizeof colors[0])];
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
    for (size_t k = 0; k < n; k++) {
      const row *r = &rs->v[k];
      for (uint32_t i = 0; i < r->e.n_epsilons; i++) {
        if (strcmp(r->eps_ids[i], id) != 0)
          continue;
        double x = L + (n > 1 ? pw * (double)k / (double)(n - 1) : pw / 2);
        fprintf(f, "%.1f,%.1f ", x, T + ph - ph * r->eps[i] / ymax);
      }
    }
    fprintf(f, "\"><title>%s</title></polyline>\n", id);
    double lx = L + (double)(s % 4) * 180, ly = H + 12 + 20.0 * (double)(s / 4);
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"4\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\" "
            "font-size=\"12\">%s (&#949; %.3g)</text>\n",
            lx, ly - 4, col, lx + 16, ly, id, last->eps[s]);
  }
  fprintf(f,
          "</svg>\n<h2>Rounds</h2>\n<table><tr><th>entry</th><th>round</th><th>closed (UTC)</th><th>mode</th>"
          "<th>q claimed</th><th>&sigma;</th><th>C</th><th>&delta;</th><th>participants</th>"
          "<th>max cumulative &epsilon;</th><th>entry hash</th></tr>\n");
  for (size_t k = 0; k < n; k++) {
    const row *r = &rs->v[k];
    char when[64];
    utc(when, sizeof when, r->e.closed_unix_ms);
    double mx = 0;
    for (uint32_t i = 0; i < r->e.n_epsilons; i++)
      mx = r->eps[i] > mx ? r->eps[i] : mx;
    fprintf(f,
            "<tr><td>%llu</td><td>%llu</td><td>%s</td><td>%s</td><td>%g</td><td>%g</td><td>%g</td><td>%g</td>"
            "<td class=\"l\">",
            (unsigned long long)r->e.index, (unsigned long long)r->e.round, when, mode_name(r->e.mode),
            r->e.participation_q, r->e.noise_multiplier, r->e.clip_norm, r->e.delta);
    for (uint32_t i = 0; i < r->e.n_participants && i < 8; i++)
      fprintf(f, "%s%s", i ? " " : "", r->parts[i]);
    if (r->e.n_participants > 8)
      fprintf(f, " &hellip; (%u)", r->e.n_participants);
    fprintf(f, "</td><td%s>%.4g</td><td class=\"l\">",
            isfinite(cap) && mx > cap ? " style=\"color:#d62728\"" : "", mx);
    hex(f, r->e.entry_hash, 8);
    fprintf(f, "&hellip;</td></tr>\n");
  }
  fprintf(f,
          "</table>\n<p class=\"note\">q claimed is the participation probability used for amplification by "
          "sampling; it is 1 for rounds that closed on a target count and in local mode, where amplification "
          "does not hold towards the aggregator.</p>\n</body></html>\n");
}

/* ---- subcommands --------------------------------------------------------------------------------- */

typedef struct opts {
  const char *db, *format, *out, *pubkey, *key;
  double cap;
} opts;

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->cap = NAN;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return 1;
    if (strcmp(a, "--db") == 0)
      dst = &o->db;
    else if (strcmp(a, "--format") == 0)
      dst = &o->format;
    else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
      dst = &o->out;
    else if (strcmp(a, "--pubkey") == 0)
      dst = &o->pubkey;
    else if (strcmp(a, "--key") == 0)
      dst = &o->key;
    else if (strcmp(a, "--cap") == 0) {
      char *end;
      if (i + 1 >= argc || (o->cap = strtod(argv[i + 1], &end), *end != '\0' || !(o->cap > 0))) {
        fprintf(stderr, "storefl-aggregator audit: --cap needs a positive number\n");
        return -1;
      }
      i++;
      continue;
    }
    if (dst == NULL) {
      fprintf(stderr, "storefl-aggregator audit %s: unknown option '%s' (see --help)\n", argv[1], a);
      return -1;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "storefl-aggregator audit: %s needs a value\n", a);
      return -1;
    }
    *dst = argv[++i];
  }
  return 0;
}

static int open_existing_db(const char *path, sqlite3 **db) {
  /* Auditing must not create an empty ledger where none existed. */
  if (sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    fprintf(stderr, "storefl-aggregator audit: cannot open %s: %s\n", path, sqlite3_errmsg(*db));
    sqlite3_close(*db);
    *db = NULL;
    return -1;
  }
  return 0;
}

static int do_export(const opts *o) {
  if (o->db == NULL || o->format == NULL) {
    fprintf(stderr, "storefl-aggregator audit export: --db and --format are required\n");
    return STOREFL_EXIT_USAGE;
  }
  int fmt = strcmp(o->format, "json") == 0   ? 0
            : strcmp(o->format, "csv") == 0  ? 1
            : strcmp(o->format, "html") == 0 ? 2
                                             : -1;
  if (fmt < 0) {
    fprintf(stderr, "storefl-aggregator audit export: --format must be json, csv or html, got '%s'\n",
            o->format);
    return STOREFL_EXIT_USAGE;
  }
  sqlite3 *db;
  if (open_existing_db(o->db, &db) != 0)
    return STOREFL_EXIT_FAIL;
  rows rs = {NULL, 0, 0};
  int rc = storefl_ledger_foreach(db, collect, &rs);
  sqlite3_close(db);
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator audit export: cannot read the ledger: %s (run audit verify)\n",
            storefl_strerror(rc));
    rows_free(&rs);
    return STOREFL_EXIT_FAIL;
  }
  FILE *f = o->out ? fopen(o->out, "w") : stdout;
  if (f == NULL) {
    fprintf(stderr, "storefl-aggregator audit export: cannot write %s\n", o->out);
    rows_free(&rs);
    return STOREFL_EXIT_FAIL;
  }
  if (fmt == 0)
    export_json(f, &rs);
  else if (fmt == 1)
    export_csv(f, &rs);
  else
    export_html(f, &rs, o->cap);
  int bad = ferror(f);
  if (o->out && fclose(f) != 0)
    bad = 1;
  rows_free(&rs);
  if (bad) {
    fprintf(stderr, "storefl-aggregator audit export: write error\n");
    return STOREFL_EXIT_FAIL;
  }
  return STOREFL_EXIT_OK;
}

static int last_hash(void *ctx, const storefl_ledger_entry *e, const uint8_t *c, size_t l) {
  (void)c;
  (void)l;
  memcpy(ctx, e->entry_hash, STOREFL_DIGEST_LEN);
  return 0;
}

static int do_verify(const opts *o) {
  if (o->db == NULL || (o->pubkey == NULL) == (o->key == NULL)) {
    fprintf(stderr, "storefl-aggregator audit verify: --db and one of --pubkey or --key are required\n");
    return STOREFL_EXIT_USAGE;
  }
  storefl_signer *pub = NULL;
  int rc = o->pubkey ? storefl_signer_open_public(o->pubkey, &pub) : storefl_signer_open(o->key, &pub, NULL);
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator audit verify: cannot load the key %s: %s\n",
            o->pubkey ? o->pubkey : o->key, storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  sqlite3 *db;
  if (open_existing_db(o->db, &db) != 0) {
    storefl_signer_free(pub);
    return STOREFL_EXIT_FAIL;
  }
  storefl_ledger_report rep;
  rc = storefl_ledger_verify(db, pub, &rep);
  uint8_t head[STOREFL_DIGEST_LEN] = {0};
  if (rc == 0 && rep.n_entries > 0)
    rc = storefl_ledger_foreach(db, last_hash, head);
  sqlite3_close(db);
  storefl_signer_free(pub);
  if (rc == STOREFL_ERR_INVALID && rep.bad_row >= 0) {
    printf("FAILED: entry %lld: %s\n", (long long)rep.bad_row, rep.problem);
    return STOREFL_EXIT_FAIL;
  }
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator audit verify: cannot read the ledger: %s\n", storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  printf("ok: %llu entries; hashes, chain, signatures and epsilons verified; head ",
         (unsigned long long)rep.n_entries);
  hex(stdout, head, STOREFL_DIGEST_LEN);
  printf("\n");
  return STOREFL_EXIT_OK;
}

static int do_pubkey(const opts *o) {
  if (o->key == NULL) {
    fprintf(stderr, "storefl-aggregator audit pubkey: --key is required\n");
    return STOREFL_EXIT_USAGE;
  }
  storefl_signer *s;
  int created;
  int rc = storefl_signer_open(o->key, &s, &created);
  if (rc == STOREFL_ERR_FORBIDDEN) {
    fprintf(stderr,
            "storefl-aggregator audit pubkey: %s is readable by others: chmod 600 it (and consider the key "
            "compromised)\n",
            o->key);
    return STOREFL_EXIT_FAIL;
  }
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator audit pubkey: cannot load %s: %s\n", o->key, storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  char pem[512];
  rc = storefl_signer_public_pem(s, pem, sizeof pem);
  storefl_signer_free(s);
  if (rc != 0)
    return STOREFL_EXIT_FAIL;
  FILE *f = o->out ? fopen(o->out, "w") : stdout;
  if (f == NULL || fputs(pem, f) < 0 || (o->out && fclose(f) != 0)) {
    fprintf(stderr, "storefl-aggregator audit pubkey: cannot write the key\n");
    return STOREFL_EXIT_FAIL;
  }
  if (created)
    fprintf(stderr, "storefl-aggregator audit pubkey: created a new key in %s (mode 0600)\n", o->key);
  return STOREFL_EXIT_OK;
}

int storefl_cmd_audit(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return STOREFL_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return STOREFL_EXIT_OK;
  }
  opts o;
  int p = parse(argc, argv, &o);
  if (p > 0) {
    usage(stdout);
    return STOREFL_EXIT_OK;
  }
  if (p < 0)
    return STOREFL_EXIT_USAGE;
  if (strcmp(argv[1], "export") == 0)
    return do_export(&o);
  if (strcmp(argv[1], "verify") == 0)
    return do_verify(&o);
  if (strcmp(argv[1], "pubkey") == 0)
    return do_pubkey(&o);
  fprintf(stderr, "storefl-aggregator audit: unknown action '%s' (export, verify or pubkey; see --help)\n",
          argv[1]);
  return STOREFL_EXIT_USAGE;
}
