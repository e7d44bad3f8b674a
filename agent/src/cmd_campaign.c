/* storefl-agent campaign plan|watch: see cmd_campaign.h and the --help texts below. */
#include "cmd_campaign.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd_store.h"
#include "eval_data.h"
#include "eval_models.h"
#include "eval_run.h"
#include "net_agent.h"
#include "store_model.h"
#include "storefl/accountant.h"
#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/parse.h"

#define CAMPAIGN_MAX_STORES 4096

static void usage(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent campaign - plan and watch a federated campaign on real store data\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent campaign plan --data FILE.csv[.gz] --stores N --rounds R --q Q\n"
          "                              --epsilon-cap E|inf [--delta D] [--ids-out FILE]\n"
          "                              [--by customer|country] [--mode central|local]\n"
          "  storefl-agent campaign watch --config OBSERVER.ini --data FILE.csv[.gz] --stores-dir DIR\n"
          "                               --ids FILE --rounds R [--epsilon-cap E|inf] [--timeout-s S]\n"
          "                               [--summary FILE.json] [--local] [--by customer|country]\n"
          "                               [--per-store]\n"
          "\n"
          "DESCRIPTION\n"
          "  The two halves of the federated demo (scripts/demo-campaign.sh). Both use the evaluation's\n"
          "  few-shot split of the export (docs/evaluation.md): training data is every clean line before\n"
          "  the end of the adaptation window (cut + 14 days); held-out events are the purchases of new\n"
          "  products after it, each ranked against all new products launched by its time.\n"
          "\n"
          "  plan prints, as shell-readable key=value lines: cut and adapt_end (UTC, the --before date\n"
          "  for 'storefl-agent partition'), min_lines (a --min-lines that keeps at least the chosen\n"
          "  stores), and sigma: the smallest noise multiplier for which R rounds of the sampled\n"
          "  Gaussian mechanism with participation probability Q stay within the epsilon cap E at delta\n"
          "  D (the privacy accountant's calibration, aimed at E(1 - 1e-6) so that the aggregator's\n"
          "  own budget check never refuses the last round over rounding; with Q = 1 every store is\n"
          "  counted in every round). In local mode (--mode local) each store's noisy update is seen\n"
          "  by the aggregator, so sampling does not amplify: sigma is calibrated for R rounds at q = 1\n"
          "  (the worst case: a store drawn in every round). With --epsilon-cap inf there is no noise:\n"
          "  sigma=0 and epsilon_planned=inf.\n"
          "  The stores are the N eligible customers (>= 20 clean lines before the cut), or with --by\n"
          "  country the N countries, with the most clean lines before adapt_end (clients without any\n"
          "  line before it are skipped); their ids go to --ids-out, one per line, spelled as\n"
          "  'storefl-agent partition' names the stores (characters outside [A-Za-z0-9._-] become _,\n"
          "  so United Kingdom is United_Kingdom).\n"
          "\n"
          "  watch connects to the aggregator as an observer (its own DTLS identity; it never uploads),\n"
          "  follows GET /v1/round by Observe, fetches each new global model by ETag and, for every\n"
          "  round that closes, prints one line: round, participants, NDCG@10 and HR@10 of the global\n"
          "  model and of the personalised models (each store adapts the global model's head on its own\n"
          "  training window, as storefl-agent personalize does) over the held-out events of the\n"
          "  watched stores, epsilon spent per store (max and median; the accountant composed over the\n"
          "  rounds: in central mode with q < 1 every store is charged every round, since not being\n"
          "  sampled is part of the mechanism; with q = 1, and in local mode, only the rounds it took\n"
          "  part in; without noise epsilon is inf), bytes up (the acknowledged\n"
          "  update bodies in the stores' outboxes) and down (the round's base model, once per store\n"
          "  that holds it), and the round's wall time as the observer saw it. Participation and bytes\n"
          "  are read from the stores' SQLite files (read-only; the agents keep writing them). After R\n"
          "  rounds, or when the aggregator goes idle, it prints the comparison with the baselines on\n"
          "  the same events.\n"
          "\n"
          "OPTIONS\n"
          "  --data FILE        the retailer export the stores were cut from\n"
          "  --stores N         plan: how many stores (1..4096)\n"
          "  --rounds R         plan: rounds to calibrate for; watch: stop after R closed rounds\n"
          "  --q Q              plan: participation probability in (0, 1]\n"
          "  --epsilon-cap E    epsilon cap per store (plan: calibration target; watch: shown, and\n"
          "                     exit status 1 if a store goes past it); inf: no noise, no cap\n"
          "  --by customer|country\n"
          "                     the clients that are stores (default customer; country: the\n"
          "                     export's countries, very unequal in size)\n"
          "  --mode central|local\n"
          "                     plan: the privacy mode sigma is calibrated for (default central)\n"
          "  --delta D          plan: delta of the accounting (default 1e-5)\n"
          "  --ids-out FILE     plan: write the chosen store ids there\n"
          "  --config FILE      watch: an agent INI for the observer ([agent] store_id and db,\n"
          "                     [aggregator] address, [dtls] psk_key or certificates)\n"
          "  --stores-dir DIR   watch: the stores' databases, DIR/<id>.db\n"
          "  --ids FILE         watch: the store ids, one per line\n"
          "  --timeout-s S      watch: give up after S seconds (default 600)\n"
          "  --summary FILE     watch: also write every figure as one JSON object\n"
          "  --local            watch: add the local-only baseline (each store trains alone)\n"
          "  --per-store        watch: also the final NDCG@10 / HR@10 of TF-IDF and of the campaign's\n"
          "                     global and personalised models over each store's own events\n"
          "  --help             print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 success, 1 failure (data, network, timeout, a store over its cap), 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent campaign plan --data online_retail.csv.gz --stores 40 --rounds 8 --q 0.5 \\\n"
          "      --epsilon-cap 8 --ids-out ids.txt\n"
          "  storefl-agent campaign watch --config observer.ini --data online_retail.csv.gz \\\n"
          "      --stores-dir stores --ids ids.txt --rounds 8 --epsilon-cap 8\n"
          "  storefl-agent campaign plan --data online_retail.csv.gz --by country --stores 38 \\\n"
          "      --rounds 8 --q 1 --epsilon-cap 8 --ids-out ids.txt\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_utc(int64_t t, char *buf, size_t len) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static int parse_double(const char *v, double *out) {
  return storefl_parse_double(v, -HUGE_VAL, HUGE_VAL, out);
}

static int parse_ulong(const char *v, unsigned long *out) {
  uint64_t x;
  if (storefl_parse_u64(v, 0, ULONG_MAX, &x))
    return -1;
  *out = (unsigned long)x;
  return 0;
}

/* An epsilon cap: a positive number, or inf (no noise, no cap). */
static int parse_cap(const char *v, double *out) {
  if (!strcmp(v, "inf") || !strcmp(v, "infinity")) {
    *out = INFINITY;
    return 0;
  }
  return parse_double(v, out) || !(*out > 0) ? -1 : 0;
}

/* customer|country -> the split's clients. */
static int parse_by(const char *v, storefl_eval_clients *out) {
  if (!strcmp(v, "customer"))
    *out = STOREFL_EVAL_CUSTOMERS;
  else if (!strcmp(v, "country"))
    *out = STOREFL_EVAL_COUNTRIES;
  else
    return -1;
  return 0;
}

/* A client's store id as 'storefl-agent partition' names its file (cmd_partition.c file_name_for):
 * characters outside [A-Za-z0-9._-] (and a leading '.') become '_'. */
static void store_id_for(const char *client, char *buf, size_t len) {
  size_t n = 0;
  for (const char *p = client; *p && n + 1 < len && n < STOREFL_MAX_ID_LEN; p++) {
    char ch = *p;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
             ch == '_' || (ch == '.' && n > 0);
    buf[n++] = ok ? ch : '_';
  }
  buf[n] = '\0';
}

/* Loads the export and builds the few-shot split of customers or countries. */
static int load_split(const char *data, storefl_eval_clients by, storefl_eval_data **d,
                      storefl_eval_split **s) {
  char err[512] = {0};
  int rc = storefl_eval_data_load(data, NULL, d, err, sizeof err);
  if (rc) {
    fprintf(stderr, "campaign: %s: %s\n", data, err[0] ? err : storefl_strerror(rc));
    return rc;
  }
  storefl_eval_split_opts so;
  memset(&so, 0, sizeof so);
  so.clients = by;
  so.regime = STOREFL_EVAL_FEW_SHOT;
  so.period = STOREFL_EVAL_TEST;
  if ((rc = storefl_eval_split_build(*d, &so, s)) != 0) {
    fprintf(stderr, "campaign: cannot build the split: %s\n", storefl_strerror(rc));
    storefl_eval_data_free(*d);
    *d = NULL;
  }
  return rc;
}

/* ---- plan --------------------------------------------------------------------------------------- */

typedef struct client_count {
  uint32_t client;
  size_t lines;
} client_count;

static int cmp_count_desc(const void *a, const void *b) {
  const client_count *x = a, *y = b;
  if (x->lines != y->lines)
    return x->lines < y->lines ? 1 : -1;
  return x->client < y->client ? -1 : x->client > y->client;
}

static int cmd_plan(int argc, char **argv) {
  const char *data = NULL, *ids_out = NULL, *v;
  unsigned long n_stores = 0, rounds = 0;
  double q = -1, cap = -1, delta = 1e-5;
  storefl_eval_clients by = STOREFL_EVAL_CUSTOMERS;
  int local = 0;
  for (int i = 2; i < argc; i++) {
    int m;
    if ((m = storefl_cmd_opt(argc, argv, &i, "--by", &v)) != 0) {
      if (m < 0 || parse_by(v, &by))
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--mode", &v)) != 0) {
      if (m < 0 || (strcmp(v, "central") && strcmp(v, "local")))
        goto bad;
      local = !strcmp(v, "local");
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--data", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      data = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--ids-out", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      ids_out = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--stores", &v)) != 0) {
      if (m < 0 || parse_ulong(v, &n_stores) || n_stores < 1 || n_stores > CAMPAIGN_MAX_STORES)
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--rounds", &v)) != 0) {
      if (m < 0 || parse_ulong(v, &rounds) || rounds < 1 || rounds > 1000000)
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--q", &v)) != 0) {
      if (m < 0 || parse_double(v, &q) || !(q > 0 && q <= 1))
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--epsilon-cap", &v)) != 0) {
      if (m < 0 || parse_cap(v, &cap))
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--delta", &v)) != 0) {
      if (m < 0 || parse_double(v, &delta) || !(delta > 0 && delta < 1))
        goto bad;
    } else {
      fprintf(stderr, "campaign plan: unexpected argument '%s' (see --help)\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!data || !n_stores || !rounds || q < 0 || cap < 0) {
    fprintf(stderr, "campaign plan: --data, --stores, --rounds, --q and --epsilon-cap are required\n");
    return STOREFL_EXIT_USAGE;
  }
  double sigma = 0, eps = INFINITY;
  /* Local mode: the aggregator sees which stores sent a noisy update, so there is no amplification
   * by sampling; the agents charge q = 1 for each round they take part in (budget.c). */
  double q_cal = local ? 1.0 : q;
  int rc;
  if (isfinite(cap)) {
    /* A hair under the cap: the aggregator's budget check recomputes epsilon by its own composition,
     * and a last round landing on the cap to the last bit could be refused over rounding. */
    rc = storefl_dp_calibrate_sigma(q_cal, cap * (1 - 1e-6), rounds, delta, NULL, &sigma);
    if (rc) {
      fprintf(stderr, "campaign plan: no noise multiplier reaches epsilon %g in %lu rounds (q %g): %s\n", cap,
              rounds, q_cal, storefl_strerror(rc));
      return STOREFL_EXIT_FAIL;
    }
    if ((rc = storefl_dp_epsilon(q_cal, sigma, rounds, delta, NULL, &eps, NULL)) != 0) {
      fprintf(stderr, "campaign plan: accountant: %s\n", storefl_strerror(rc));
      return STOREFL_EXIT_FAIL;
    }
  }
  storefl_eval_data *d = NULL;
  storefl_eval_split *s = NULL;
  if (load_split(data, by, &d, &s))
    return STOREFL_EXIT_FAIL;
  client_count *cc = calloc(s->nclients ? s->nclients : 1, sizeof *cc);
  if (!cc) {
    storefl_eval_split_free(s);
    storefl_eval_data_free(d);
    return STOREFL_EXIT_FAIL;
  }
  for (size_t c = 0; c < s->nclients; c++)
    cc[c].client = (uint32_t)c;
  for (size_t i = 0; i < d->nlines; i++)
    if (s->line_client[i] >= 0 && d->lines[i].t < s->adapt_end)
      cc[s->line_client[i]].lines++;
  qsort(cc, s->nclients, sizeof *cc, cmp_count_desc);
  size_t n = n_stores < s->nclients ? n_stores : s->nclients;
  while (n > 0 && cc[n - 1].lines == 0) /* partition writes no store for a client without lines */
    n--;
  int ret = STOREFL_EXIT_OK;
  if (ids_out) {
    FILE *f = fopen(ids_out, "w");
    if (!f) {
      fprintf(stderr, "campaign plan: cannot write %s\n", ids_out);
      ret = STOREFL_EXIT_FAIL;
    } else {
      for (size_t i = 0; i < n; i++) {
        char id[STOREFL_MAX_ID_LEN + 1];
        store_id_for(s->client_names[cc[i].client], id, sizeof id);
        fprintf(f, "%s\n", id);
      }
      if (fclose(f) != 0) {
        fprintf(stderr, "campaign plan: cannot write %s\n", ids_out);
        ret = STOREFL_EXIT_FAIL;
      }
    }
  }
  char cut[32], adapt[32];
  fmt_utc(s->cut, cut, sizeof cut);
  fmt_utc(s->adapt_end, adapt, sizeof adapt);
  /* partition's cleaning also drops lines without a description: leave it a margin so that every
   * chosen store is written (extra stores are harmless; only the chosen ones get an agent). */
  size_t min_lines = n ? cc[n - 1].lines * 9 / 10 : 1;
  char capbuf[32], epsbuf[32];
  if (isfinite(cap)) {
    snprintf(capbuf, sizeof capbuf, "%g", cap);
    snprintf(epsbuf, sizeof epsbuf, "%.6f", eps);
  } else {
    snprintf(capbuf, sizeof capbuf, "inf");
    snprintf(epsbuf, sizeof epsbuf, "inf");
  }
  printf("cut='%s'\nadapt_end='%s'\nstores=%zu\nmin_lines=%zu\nlargest_lines=%zu\nsmallest_lines=%zu\n"
         "sigma=%.10g\nq=%g\nrounds=%lu\ndelta=%g\nepsilon_cap=%s\nepsilon_planned=%s\nmode=%s\nby=%s\n",
         cut, adapt, n, min_lines ? min_lines : 1, n ? cc[0].lines : 0, n ? cc[n - 1].lines : 0, sigma, q,
         rounds, delta, capbuf, epsbuf, local ? "local" : "central",
         by == STOREFL_EVAL_COUNTRIES ? "country" : "customer");
  free(cc);
  storefl_eval_split_free(s);
  storefl_eval_data_free(d);
  return ret;
bad:
  fprintf(stderr, "campaign plan: bad option value (see --help)\n");
  return STOREFL_EXIT_USAGE;
}

/* ---- watch -------------------------------------------------------------------------------------- */

typedef struct store_info {
  char id[STOREFL_MAX_ID_LEN + 1];
  int32_t client; /* split client index, -1 if not an eligible customer */
  double *rdp;    /* per accountant order */
  double eps;
  unsigned rounds_in;
} store_info;

typedef struct round_rec {
  uint64_t round, base_version;
  double q, sigma, delta;
  int local;  /* local-mode round: charged to its participants at q = 1 */
  int closed; /* 1 closed (a new model), 0 abandoned, -1 ended unseen (charged as closed) */
  unsigned participants;
  uint64_t bytes_up, bytes_down;
  double seconds;
  double g_ndcg, g_hr, p_ndcg, p_hr;
  double eps_max, eps_median;
} round_rec;

typedef struct watch_ctx {
  store_info *stores;
  size_t n;
  const char *dir;
  const double *orders;
  size_t n_orders;
} watch_ctx;

typedef struct outbox_scan {
  uint64_t round;
  int sent;
  uint64_t bytes;
} outbox_scan;

static int scan_item(void *user, const storefl_outbox_item *it) {
  outbox_scan *o = user;
  if (it->round == o->round && it->state == STOREFL_OUTBOX_SENT) {
    o->sent = 1;
    o->bytes += it->body_len;
  }
  return 0;
}

/* Reads, for round r with base model `base`, which stores had their update acknowledged and how
 * many bytes went up and down. part[i] = 1 for participants. */
static int scan_stores(const watch_ctx *w, uint64_t r, uint64_t base, uint8_t *part, unsigned *participants,
                       uint64_t *up, uint64_t *down) {
  *participants = 0;
  *up = *down = 0;
  storefl_store_options so;
  memset(&so, 0, sizeof so);
  so.read_only = 1;
  so.busy_timeout_ms = 10000;
  for (size_t i = 0; i < w->n; i++) {
    char path[STOREFL_AGENT_PATH_MAX + 80], err[256];
    snprintf(path, sizeof path, "%s/%s.db", w->dir, w->stores[i].id);
    storefl_store *st = NULL;
    int rc = storefl_store_open(path, &so, &st, err, sizeof err);
    if (rc) {
      fprintf(stderr, "campaign watch: %s: %s\n", path, err);
      return rc;
    }
    outbox_scan o = {r, 0, 0};
    rc = storefl_store_outbox_list(st, scan_item, &o);
    void *blob = NULL;
    size_t len = 0;
    int mrc = rc ? rc : storefl_store_get_model(st, "global", base, NULL, NULL, &blob, &len);
    free(blob);
    storefl_store_close(st);
    if (rc)
      return rc;
    if (mrc == 0)
      *down += len;
    else if (mrc != STOREFL_ERR_NOT_FOUND)
      return mrc;
    part[i] = (uint8_t)o.sent;
    if (o.sent) {
      (*participants)++;
      *up += o.bytes;
    }
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Charges round rec to every store (q < 1: all of them; q = 1: its participants), then converts. */
static int charge_round(watch_ctx *w, const round_rec *rec, const uint8_t *part, double *eps_max,
                        double *eps_median) {
  double *e = malloc(w->n * sizeof *e);
  if (!e)
    return STOREFL_ERR_NOMEM;
  int rc = 0;
  for (size_t i = 0; i < w->n && !rc; i++) {
    store_info *s = &w->stores[i];
    if ((rec->q < 1.0 && !rec->local) || part[i]) {
      s->rounds_in++;
      if (!(rec->sigma > 0)) {
        s->eps = INFINITY; /* a release without noise */
      } else if (isfinite(s->eps)) {
        double q = rec->local ? 1.0 : rec->q;
        if ((rc = storefl_rdp_compose(q, rec->sigma, 1, w->orders, w->n_orders, s->rdp)) != 0)
          break;
        rc = storefl_rdp_to_epsilon(w->orders, s->rdp, w->n_orders, rec->delta, 0, &s->eps, NULL);
      }
    }
    e[i] = s->eps;
  }
  if (!rc) {
    qsort(e, w->n, sizeof *e, cmp_double);
    *eps_max = w->n ? e[w->n - 1] : 0;
    *eps_median = w->n ? (w->n % 2 ? e[w->n / 2] : 0.5 * (e[w->n / 2 - 1] + e[w->n / 2])) : 0;
  }
  free(e);
  return rc;
}

/* Runs `methods` over the watched events. */
static int run_methods(const storefl_eval_data *d, const storefl_eval_split *view, storefl_eval_method *m,
                       size_t n, storefl_eval_result *res) {
  return storefl_eval_run(d, view, m, n, res, NULL, NULL);
}

static int eval_global(const storefl_eval_data *d, const storefl_eval_split *view, storefl_eval_models *mc,
                       const storefl_model *global, storefl_eval_result res[2]) {
  storefl_eval_method m[2];
  memset(m, 0, sizeof m);
  int rc = storefl_eval_method_given(mc, global, 0, &m[0]);
  if (!rc)
    rc = storefl_eval_method_given(mc, global, 1, &m[1]);
  if (!rc)
    rc = run_methods(d, view, m, 2, res);
  for (int i = 0; i < 2; i++)
    if (m[i].destroy)
      m[i].destroy(m[i].state);
  return rc;
}

/* The three methods over the events of one client of `view` (res[k].events = 0 if it has none). */
static int eval_store(const storefl_eval_data *d, const storefl_eval_split *view, int32_t client,
                      storefl_eval_method m[3], storefl_eval_result res[3]) {
  memset(res, 0, 3 * sizeof *res);
  size_t n = 0, first = 0;
  for (size_t i = 0; i < view->nevents; i++)
    if ((int32_t)view->events[i].client == client && n++ == 0)
      first = i;
  if (client < 0 || n == 0)
    return 0;
  storefl_eval_event *ev = malloc(n * sizeof *ev);
  if (!ev)
    return STOREFL_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = first; i < view->nevents && k < n; i++)
    if ((int32_t)view->events[i].client == client)
      ev[k++] = view->events[i];
  storefl_eval_split one = *view;
  one.events = ev;
  one.nevents = n;
  one.nclients_with_events = 1;
  int rc = run_methods(d, &one, m, 3, res);
  free(ev);
  return rc;
}

static void fmt_eps(double e, char *buf, size_t len) {
  if (isinf(e))
    snprintf(buf, len, "inf");
  else
    snprintf(buf, len, "%.3f", e);
}

static void json_num(FILE *f, double x) {
  if (isfinite(x))
    fprintf(f, "%.17g", x);
  else
    fprintf(f, "null");
}

typedef struct watch_opts {
  const char *config, *data, *dir, *ids, *summary;
  unsigned long rounds, timeout_s;
  double cap;
  int local, per_store;
  storefl_eval_clients by;
} watch_opts;

static int read_ids(const char *path, watch_ctx *w) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "campaign watch: cannot read %s\n", path);
    return STOREFL_ERR_IO;
  }
  char line[256];
  int rc = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0])
      continue;
    if (w->n >= CAMPAIGN_MAX_STORES || strlen(line) > STOREFL_MAX_ID_LEN) {
      fprintf(stderr, "campaign watch: %s: too many ids or an id too long\n", path);
      rc = STOREFL_ERR_TOO_LARGE;
      break;
    }
    snprintf(w->stores[w->n].id, sizeof w->stores[w->n].id, "%s", line);
    w->stores[w->n].client = -1;
    w->n++;
  }
  if (ferror(f))
    rc = STOREFL_ERR_IO;
  fclose(f);
  if (!rc && w->n == 0) {
    fprintf(stderr, "campaign watch: %s lists no store\n", path);
    rc = STOREFL_ERR_INVALID;
  }
  return rc;
}

typedef struct obs_state {
  int changed;
} obs_state;

static void on_round(void *arg, const storefl_response *r) {
  obs_state *s = arg;
  if (r->code == 205)
    s->changed = 1;
}

static void print_header(void) {
  printf("%5s %5s | %-15s | %-15s | %-15s | %-17s | %7s\n", "", "", "global model", "personalized",
         "epsilon/store", "MB up    MB down", "");
  printf("%5s %5s | %7s %7s | %7s %7s | %7s %7s | %8s %8s | %7s\n", "round", "part", "NDCG@10", "HR@10",
         "NDCG@10", "HR@10", "max", "median", "", "", "time s");
  fflush(stdout);
}

static void fmt_metric(double x, char *buf, size_t len) {
  if (isnan(x))
    snprintf(buf, len, "-");
  else
    snprintf(buf, len, "%.4f", x);
}

static void print_round(const round_rec *r, int *header) {
  if (!*header) {
    print_header();
    *header = 1;
  }
  char emax[16], emed[16], m[4][16], t[16];
  fmt_eps(r->eps_max, emax, sizeof emax);
  fmt_eps(r->eps_median, emed, sizeof emed);
  fmt_metric(r->g_ndcg, m[0], sizeof m[0]);
  fmt_metric(r->g_hr, m[1], sizeof m[1]);
  fmt_metric(r->p_ndcg, m[2], sizeof m[2]);
  fmt_metric(r->p_hr, m[3], sizeof m[3]);
  if (isnan(r->seconds))
    snprintf(t, sizeof t, "-");
  else
    snprintf(t, sizeof t, "%.1f", r->seconds);
  printf("%5" PRIu64 " %5u | %7s %7s | %7s %7s | %7s %7s | %8.2f %8.2f | %7s%s\n", r->round, r->participants,
         m[0], m[1], m[2], m[3], emax, emed, (double)r->bytes_up / 1e6, (double)r->bytes_down / 1e6, t,
         r->closed == 1   ? ""
         : r->closed == 0 ? "  (abandoned: model unchanged)"
                          : "  (ended unseen)");
  fflush(stdout);
}

static int cmd_watch(int argc, char **argv) {
  watch_opts o;
  memset(&o, 0, sizeof o);
  o.timeout_s = 600;
  o.cap = -1;
  const char *v;
  for (int i = 2; i < argc; i++) {
    int m;
    if (!strcmp(argv[i], "--local")) {
      o.local = 1;
    } else if (!strcmp(argv[i], "--per-store")) {
      o.per_store = 1;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--by", &v)) != 0) {
      if (m < 0 || parse_by(v, &o.by))
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--config", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      o.config = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--data", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      o.data = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--stores-dir", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      o.dir = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--ids", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      o.ids = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--summary", &v)) != 0) {
      if (m < 0)
        return STOREFL_EXIT_USAGE;
      o.summary = v;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--rounds", &v)) != 0) {
      if (m < 0 || parse_ulong(v, &o.rounds) || o.rounds < 1 || o.rounds > 100000)
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--timeout-s", &v)) != 0) {
      if (m < 0 || parse_ulong(v, &o.timeout_s) || o.timeout_s < 1)
        goto bad;
    } else if ((m = storefl_cmd_opt(argc, argv, &i, "--epsilon-cap", &v)) != 0) {
      if (m < 0 || parse_cap(v, &o.cap))
        goto bad;
    } else {
      fprintf(stderr, "campaign watch: unexpected argument '%s' (see --help)\n", argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!o.config || !o.data || !o.dir || !o.ids || !o.rounds) {
    fprintf(stderr, "campaign watch: --config, --data, --stores-dir, --ids and --rounds are required\n");
    return STOREFL_EXIT_USAGE;
  }

  int ret = STOREFL_EXIT_FAIL, rc;
  char err[512] = {0};
  watch_ctx w;
  memset(&w, 0, sizeof w);
  w.dir = o.dir;
  w.orders = storefl_rdp_default_orders(&w.n_orders);
  storefl_eval_data *d = NULL;
  storefl_eval_split *s = NULL, view;
  storefl_eval_event *events = NULL;
  storefl_eval_models *mc = NULL;
  storefl_store *st = NULL;
  storefl_client *cl = NULL;
  storefl_model *global = NULL;
  round_rec *recs = NULL;
  uint8_t *part = NULL;
  size_t nrecs = 0;
  FILE *sum = NULL;
  storefl_eval_result(*per)[3] = NULL; /* --per-store: tfidf, global, personal per store */

  w.stores = calloc(CAMPAIGN_MAX_STORES, sizeof *w.stores);
  recs = calloc(o.rounds, sizeof *recs);
  if (!w.stores || !recs)
    goto out;
  if (read_ids(o.ids, &w))
    goto out;
  part = calloc(w.n, 1);
  if (!part)
    goto out;
  for (size_t i = 0; i < w.n; i++)
    if (!(w.stores[i].rdp = calloc(w.n_orders, sizeof(double))))
      goto out;

  double t_load = now_s();
  if (load_split(o.data, o.by, &d, &s))
    goto out;
  /* The watched events: those of the campaign's stores only. */
  size_t nwatched = 0;
  for (size_t i = 0; i < w.n; i++)
    for (size_t c = 0; c < s->nclients; c++) {
      char id[STOREFL_MAX_ID_LEN + 1];
      store_id_for(s->client_names[c], id, sizeof id);
      if (!strcmp(id, w.stores[i].id)) {
        w.stores[i].client = (int32_t)c;
        nwatched++;
        break;
      }
    }
  events = malloc((s->nevents ? s->nevents : 1) * sizeof *events);
  uint8_t *watched = calloc(s->nclients ? s->nclients : 1, 1);
  if (!events || !watched) {
    free(watched);
    goto out;
  }
  for (size_t i = 0; i < w.n; i++)
    if (w.stores[i].client >= 0)
      watched[w.stores[i].client] = 1;
  view = *s;
  view.nevents = 0;
  view.nclients_with_events = 0;
  for (size_t i = 0; i < s->nevents; i++)
    if (watched[s->events[i].client]) {
      events[view.nevents++] = s->events[i];
    }
  uint8_t *seen = calloc(s->nclients ? s->nclients : 1, 1);
  if (!seen) {
    free(watched);
    goto out;
  }
  for (size_t i = 0; i < view.nevents; i++)
    if (!seen[events[i].client]) {
      seen[events[i].client] = 1;
      view.nclients_with_events++;
    }
  free(seen);
  free(watched);
  view.events = events;
  {
    char adapt[32];
    fmt_utc(s->adapt_end, adapt, sizeof adapt);
    printf("held-out: %zu new-product purchase events of %zu of the %zu stores after %s UTC (few-shot; "
           "export loaded in %.1f s)\n",
           view.nevents, view.nclients_with_events, w.n, adapt, now_s() - t_load);
    if (nwatched < w.n)
      printf("note: %zu store(s) are not eligible customers of the split and have no held-out events\n",
             w.n - nwatched);
  }

  storefl_agent_net_config nc;
  storefl_agent_net_config_defaults(&nc);
  if (storefl_agent_net_config_load(o.config, &nc, err, sizeof err) != 0) {
    fprintf(stderr, "campaign watch: %s\n", err);
    goto out;
  }
  if (storefl_store_open(nc.db, NULL, &st, err, sizeof err) != 0) {
    fprintf(stderr, "campaign watch: %s: %s\n", nc.db, err);
    goto out;
  }
  if (storefl_cli_catch_stop_signals() != 0)
    fprintf(stderr, "storefl-agent campaign watch: cannot install the SIGINT/SIGTERM handlers: %s\n",
            strerror(errno));

  obs_state os = {1};
  double t0 = now_s(), t_round = NAN, next_sync = 0;
  uint64_t cur_round = 0;
  round_rec cur;
  memset(&cur, 0, sizeof cur);
  int idle = 0, header = 0, observing = 0;
  while (!storefl_cli_stop && nrecs < o.rounds && !idle) {
    if (now_s() - t0 > (double)o.timeout_s) {
      fprintf(stderr, "campaign watch: timeout after %lu s with %zu round(s) closed\n", o.timeout_s, nrecs);
      goto out;
    }
    if (!cl) {
      if (storefl_agent_connect(&nc, &cl, err, sizeof err) != 0 ||
          storefl_client_observe(cl, "v1/round", on_round, &os, err, sizeof err) != 0) {
        storefl_client_close(cl);
        cl = NULL;
        SFL_WARN("campaign", "aggregator unreachable (%s); retrying", err);
        struct timespec ts = {0, 300000000};
        nanosleep(&ts, NULL);
        continue;
      }
      os.changed = 1;
    }
    if (os.changed || now_s() >= next_sync) {
      os.changed = 0;
      next_sync = now_s() + 2.0;
      storefl_sync_result res;
      rc = storefl_agent_sync(&nc, st, cl, &res, err, sizeof err);
      if (rc == STOREFL_ERR_UNAVAILABLE || rc == STOREFL_ERR_UNAUTHORIZED) {
        SFL_WARN("campaign", "session lost (%s); reconnecting", err);
        storefl_client_close(cl);
        cl = NULL;
        continue;
      }
      if (rc == 0 && res.have_round) {
        const storefl_round_msg *r = &res.round;
        double t_seen = now_s();
        if (!observing) {
          observing = 1;
          SFL_INFO("campaign", "observing round %" PRIu64 " at %s", r->round, nc.address);
          /* Rounds that ended before the observer came are accounted from round 1: those before the
           * open one, or, when it arrives after the last round (the campaign is idle), all of them;
           * without this an observer late by a whole campaign waited for rounds that never came. */
          int open = r->state == STOREFL_ROUND_OPEN;
          if ((open && r->round > 1) || (r->state == STOREFL_ROUND_IDLE && r->round >= 1)) {
            uint64_t before = open ? r->round - 1 : r->round; /* rounds over, each a new model */
            cur_round = 1;
            cur.round = 1;
            cur.base_version = r->model_version > before ? r->model_version - before : 1;
            cur.q = r->participation_q;
            cur.local = r->mode == STOREFL_PRIVACY_LOCAL;
            cur.sigma = r->noise_multiplier;
            cur.delta = r->delta;
            t_round = NAN; /* its start was not seen: no round time */
          }
        }
        if (cur_round && (r->round != cur_round || r->state != STOREFL_ROUND_OPEN)) {
          /* Rounds cur_round .. last are over. Rounds can close faster than the observer evaluates
           * (q = 1 closes on the target count): rounds it did not see open are still accounted,
           * with the campaign's parameters of the round it saw; their model is not evaluated. */
          uint64_t last = r->state == STOREFL_ROUND_OPEN ? r->round - 1 : r->round;
          if (last < cur_round)
            last = cur_round;
          uint64_t n_over = last - cur_round + 1;
          uint64_t advanced = r->model_version > cur.base_version ? r->model_version - cur.base_version : 0;
          if (advanced != n_over && n_over > 1)
            SFL_WARN("campaign",
                     "rounds %" PRIu64 "..%" PRIu64 " ended unseen with %" PRIu64
                     " new model(s); all are charged as closed (conservative)",
                     cur_round, last, advanced);
          storefl_model_free(global);
          global = NULL;
          if ((rc = storefl_agent_load_model(st, "global", &global, NULL, NULL)) != 0) {
            fprintf(stderr, "campaign watch: no global model: %s\n", storefl_strerror(rc));
            goto out;
          }
          if (!mc) {
            storefl_eval_model_config ec;
            storefl_eval_model_config_default(&ec);
            ec.model = global->cfg;
            if ((rc = storefl_eval_models_create(d, s, &ec, &mc)) != 0) {
              fprintf(stderr, "campaign watch: evaluation models: %s\n", storefl_strerror(rc));
              goto out;
            }
          }
          for (uint64_t k = cur_round; k <= last && nrecs < o.rounds; k++) {
            round_rec rec = cur;
            int observed = k == last;
            rec.round = k;
            rec.base_version = cur.base_version + (k - cur_round);
            rec.seconds = observed ? (t_seen - t_round) / (double)n_over : NAN;
            rec.closed = n_over == 1 ? advanced > 0 : (advanced == n_over ? 1 : -1);
            if ((rc = scan_stores(&w, rec.round, rec.base_version, part, &rec.participants, &rec.bytes_up,
                                  &rec.bytes_down)) != 0)
              goto out;
            if (rec.closed) {
              if ((rc = charge_round(&w, &rec, part, &rec.eps_max, &rec.eps_median)) != 0) {
                fprintf(stderr, "campaign watch: accountant: %s\n", storefl_strerror(rc));
                goto out;
              }
            } else if (nrecs > 0) {
              rec.eps_max = recs[nrecs - 1].eps_max; /* nothing released: nothing spent */
              rec.eps_median = recs[nrecs - 1].eps_median;
            }
            rec.g_ndcg = rec.g_hr = rec.p_ndcg = rec.p_hr = NAN;
            if (observed) {
              storefl_eval_result er[2];
              if ((rc = eval_global(d, &view, mc, global, er)) != 0) {
                fprintf(stderr, "campaign watch: evaluation: %s\n", storefl_strerror(rc));
                goto out;
              }
              rec.g_ndcg = er[0].ndcg10;
              rec.g_hr = er[0].hr10;
              rec.p_ndcg = er[1].ndcg10;
              rec.p_hr = er[1].hr10;
            }
            recs[nrecs++] = rec;
            print_round(&rec, &header);
          }
          cur_round = 0;
          if (r->state != STOREFL_ROUND_OPEN)
            idle = 1;
        }
        if (!cur_round && r->state == STOREFL_ROUND_OPEN && nrecs < o.rounds) {
          cur_round = r->round;
          memset(&cur, 0, sizeof cur);
          cur.round = r->round;
          cur.base_version = r->model_version;
          cur.q = r->participation_q;
          cur.local = r->mode == STOREFL_PRIVACY_LOCAL;
          cur.sigma = r->mode == STOREFL_PRIVACY_CENTRAL || r->mode == STOREFL_PRIVACY_LOCAL
                          ? r->noise_multiplier
                          : 0;
          cur.delta = r->delta;
          t_round = t_seen; /* when it was seen, not after the evaluation of the previous one */
        }
      }
    }
    if (cl && storefl_client_poll(cl, 200) != 0) {
      storefl_client_close(cl);
      cl = NULL;
    }
  }
  if (storefl_cli_stop) {
    fprintf(stderr, "campaign watch: interrupted after %zu round(s)\n", nrecs);
    goto out;
  }
  if (nrecs == 0 || !global) {
    fprintf(stderr, "campaign watch: no round closed\n");
    goto out;
  }
  storefl_client_close(cl);
  cl = NULL;

  /* The comparison on the same events: baselines and the campaign's final model. */
  storefl_eval_method m[6];
  storefl_eval_result res[6];
  memset(m, 0, sizeof m);
  size_t nm = 0;
  double t_final = now_s();
  if ((rc = storefl_eval_method_random(&m[nm])) == 0)
    nm++;
  if (!rc && (rc = storefl_eval_method_popularity(d, s, 0, &m[nm])) == 0)
    nm++;
  if (!rc && (rc = storefl_eval_method_tfidf(d, s, &m[nm])) == 0)
    nm++;
  if (!rc && o.local && (rc = storefl_eval_method_model(mc, STOREFL_EVAL_LOCAL, &m[nm])) == 0)
    nm++;
  if (!rc && (rc = storefl_eval_method_given(mc, global, 0, &m[nm])) == 0)
    m[nm++].name = "federated (campaign)";
  if (!rc && (rc = storefl_eval_method_given(mc, global, 1, &m[nm])) == 0)
    m[nm++].name = "fed+personal (campaign)";
  if (!rc)
    rc = run_methods(d, &view, m, nm, res);
  if (!rc && o.per_store) {
    if (!(per = calloc(w.n, sizeof *per)))
      rc = STOREFL_ERR_NOMEM;
    /* m[2] TF-IDF, then the campaign's global and personalised models (the last two). */
    storefl_eval_method pm[3] = {m[2], m[nm - 2], m[nm - 1]};
    for (size_t i = 0; i < w.n && !rc; i++)
      rc = eval_store(d, &view, w.stores[i].client, pm, per[i]);
  }
  for (size_t i = 0; i < nm; i++)
    if (m[i].destroy)
      m[i].destroy(m[i].state);
  if (rc) {
    fprintf(stderr, "campaign watch: final evaluation: %s\n", storefl_strerror(rc));
    goto out;
  }
  printf("\ncomparison on the same %zu held-out events (%zu stores with events; %.1f s):\n", res[0].events,
         res[0].clients, now_s() - t_final);
  printf("%-36s %8s %8s %8s | %8s %8s\n", "method", "NDCG@10", "HR@10", "AUC", "cNDCG@10", "cHR@10");
  for (size_t i = 0; i < nm; i++)
    printf("%-36s %8.4f %8.4f %8.4f | %8.4f %8.4f\n", res[i].method, res[i].ndcg10, res[i].hr10, res[i].auc,
           res[i].c_ndcg10, res[i].c_hr10);
  double emax = 0;
  size_t over = 0;
  for (size_t i = 0; i < w.n; i++) {
    if (w.stores[i].eps > emax)
      emax = w.stores[i].eps;
    if (o.cap > 0 && w.stores[i].eps > o.cap * (1 + 1e-9))
      over++;
  }
  char ebuf[16];
  fmt_eps(emax, ebuf, sizeof ebuf);
  printf("(c = mean over stores.) privacy: max epsilon per store %s at delta %g", ebuf,
         recs[nrecs - 1].delta);
  if (o.cap > 0)
    printf(" (cap %g: %zu store(s) over it)", o.cap, over);
  printf("\n");
  if (per) {
    printf("\nper store (its own held-out events; NDCG@10 / HR@10):\n%-24s %6s | %-15s | %-15s | %-15s\n",
           "store", "events", "tfidf", "global", "personalized");
    for (size_t i = 0; i < w.n; i++) {
      if (per[i][0].events == 0) {
        printf("%-24s %6d |\n", w.stores[i].id, 0);
        continue;
      }
      printf("%-24s %6zu | %7.4f %7.4f | %7.4f %7.4f | %7.4f %7.4f\n", w.stores[i].id, per[i][0].events,
             per[i][0].ndcg10, per[i][0].hr10, per[i][1].ndcg10, per[i][1].hr10, per[i][2].ndcg10,
             per[i][2].hr10);
    }
  }
  fflush(stdout);

  if (o.summary) {
    sum = fopen(o.summary, "w");
    if (!sum) {
      fprintf(stderr, "campaign watch: cannot write %s\n", o.summary);
      goto out;
    }
    fprintf(sum, "{\"stores\":%zu,\"events\":%zu,\"rounds\":[", w.n, res[0].events);
    for (size_t i = 0; i < nrecs; i++) {
      const round_rec *r = &recs[i];
      fprintf(sum,
              "%s{\"round\":%" PRIu64 ",\"closed\":%d,\"participants\":%u,\"q\":%.17g,\"sigma\":%.17g,"
              "\"delta\":%.17g,\"ndcg10_global\":",
              i ? "," : "", r->round, r->closed, r->participants, r->q, r->sigma, r->delta);
      json_num(sum, r->g_ndcg);
      fprintf(sum, ",\"hr10_global\":");
      json_num(sum, r->g_hr);
      fprintf(sum, ",\"ndcg10_personal\":");
      json_num(sum, r->p_ndcg);
      fprintf(sum, ",\"hr10_personal\":");
      json_num(sum, r->p_hr);
      fprintf(sum, ",\"epsilon_max\":");
      json_num(sum, r->eps_max);
      fprintf(sum, ",\"epsilon_median\":");
      json_num(sum, r->eps_median);
      fprintf(sum, ",\"bytes_up\":%" PRIu64 ",\"bytes_down\":%" PRIu64 ",\"seconds\":", r->bytes_up,
              r->bytes_down);
      json_num(sum, r->seconds); /* null for rounds that ended unseen */
      fprintf(sum, "}");
    }
    fprintf(sum, "],\"final\":{");
    for (size_t i = 0; i < nm; i++) {
      fprintf(sum, "%s\"%s\":{\"ndcg10\":", i ? "," : "", res[i].method);
      json_num(sum, res[i].ndcg10);
      fprintf(sum, ",\"hr10\":");
      json_num(sum, res[i].hr10);
      fprintf(sum, ",\"auc\":");
      json_num(sum, res[i].auc);
      fprintf(sum, ",\"events\":%zu,\"clients\":%zu}", res[i].events, res[i].clients);
    }
    fprintf(sum, "},\"epsilon\":{");
    for (size_t i = 0; i < w.n; i++) {
      fprintf(sum, "%s\"%s\":{\"epsilon\":", i ? "," : "", w.stores[i].id);
      json_num(sum, w.stores[i].eps);
      fprintf(sum, ",\"rounds_charged\":%u}", w.stores[i].rounds_in);
    }
    if (per) {
      static const char *const keys[3] = {"tfidf", "global", "personal"};
      fprintf(sum, "},\"per_store\":{");
      for (size_t i = 0; i < w.n; i++) {
        fprintf(sum, "%s\"%s\":{\"events\":%zu", i ? "," : "", w.stores[i].id, per[i][0].events);
        for (int k = 0; k < 3 && per[i][0].events; k++) {
          fprintf(sum, ",\"ndcg10_%s\":", keys[k]);
          json_num(sum, per[i][k].ndcg10);
          fprintf(sum, ",\"hr10_%s\":", keys[k]);
          json_num(sum, per[i][k].hr10);
        }
        fprintf(sum, "}");
      }
    }
    fprintf(sum, "}}\n");
    if (fclose(sum) != 0) {
      sum = NULL;
      fprintf(stderr, "campaign watch: cannot write %s\n", o.summary);
      goto out;
    }
    sum = NULL;
  }
  ret = over ? STOREFL_EXIT_FAIL : STOREFL_EXIT_OK;
out:
  if (sum)
    fclose(sum);
  storefl_client_close(cl);
  storefl_store_close(st);
  storefl_model_free(global);
  storefl_eval_models_free(mc);
  free(events);
  storefl_eval_split_free(s);
  storefl_eval_data_free(d);
  if (w.stores)
    for (size_t i = 0; i < w.n; i++)
      free(w.stores[i].rdp);
  free(w.stores);
  free(recs);
  free(part);
  free(per);
  return ret;
bad:
  fprintf(stderr, "campaign watch: bad option value (see --help)\n");
  return STOREFL_EXIT_USAGE;
}

int storefl_cmd_campaign(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? STOREFL_EXIT_USAGE : STOREFL_EXIT_OK;
  }
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    }
  if (!strcmp(argv[1], "plan"))
    return cmd_plan(argc, argv);
  if (!strcmp(argv[1], "watch"))
    return cmd_watch(argc, argv);
  fprintf(stderr, "storefl-agent campaign: unknown action '%s' (plan or watch; see --help)\n", argv[1]);
  return STOREFL_EXIT_USAGE;
}
