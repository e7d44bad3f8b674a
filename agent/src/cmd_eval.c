/* storefl-agent eval: see the --help text below and docs/evaluation.md. */
#include "cmd_eval.h"

#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eval_data.h"
#include "eval_models.h"
#include "eval_run.h"
#include "net_agent.h"
#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/retail_csv.h"

static void eval_usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-agent eval - measure how well new products are ranked, on a real export\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-agent eval --data FILE.csv[.gz] [--regime zero-shot|few-shot]\n"
               "                     [--clients customers|countries] [--json] [--config agent.ini]\n"
               "                     [--methods LIST] [--seed N] [--validation] [--max-clients N]\n"
               "\n"
               "DESCRIPTION\n"
               "  Loads a retailer-wide export once into memory, cleans it (cancellations, quantity <= 0,\n"
               "  unit price <= 0 and codes not matching ^[0-9]{5}[A-Za-z]*$ are dropped; codes are\n"
               "  upper-cased) and splits it in time at 80%% of the range of the raw file (first to last\n"
               "  time of all lines). New products are the codes first seen in clean lines at or after\n"
               "  the cut. A test event is one (client, product, invoice) of a clean line at or after the\n"
               "  evaluation start on a new product by an eligible client; it is ranked against ALL new\n"
               "  products launched by its time (full ranking), given the client's history (its clean\n"
               "  lines before that time) and basket (the rest of the invoice).\n"
               "\n"
               "  Metrics: HR@10, NDCG@10 (one relevant item) and AUC, where ties count as their expected\n"
               "  value under random tie-breaking, so a constant scorer scores exactly like a random\n"
               "  ranking. Each is reported as the mean over events and the mean over clients.\n"
               "\n"
               "  Regimes: zero-shot uses nothing after the cut for training and evaluates every event\n"
               "  from the cut; few-shot makes the first 14 days after the cut available for adaptation\n"
               "  and federated rounds and evaluates the events after them.\n"
               "\n"
               "  The split figures (cut, new products, events, clients) are printed first (on stderr\n"
               "  with --json), progress goes to stderr.\n"
               "\n"
               "OPTIONS\n"
               "  --data FILE         the export (CSV, or gzip-compressed CSV); required\n"
               "  --regime R          zero-shot (default) or few-shot\n"
               "  --clients C         customers (default: customers with >= 20 clean lines before the\n"
               "                      cut) or countries (every country, anonymous lines included)\n"
               "  --methods LIST      comma-separated methods, default all of:\n"
               "                        random            constant score: the expected value of a\n"
               "                                          random ranking\n"
               "                        popularity        the client's own purchases of each new\n"
               "                                          product in the adaptation window (zero-shot:\n"
               "                                          no window, equal to random)\n"
               "                        popularity-global the same counted over the whole retailer\n"
               "                                          (not computable by one store; reference)\n"
               "                        tfidf             TF-IDF cosine of the client's purchased\n"
               "                                          descriptions (history + basket) to the\n"
               "                                          product's description\n"
               "                        local             the model trained by each client on its own\n"
               "                                          data only\n"
               "                        central           the model trained on all clients' data\n"
               "                                          pooled (non-private upper bound)\n"
               "                        federated         FedAvg of local steps, simulated in-process\n"
               "                        federated+personal  the federated model with each client's\n"
               "                                          few-shot personalisation of the head\n"
               "                      Model methods train only on lines before the cut (zero-shot) or\n"
               "                      before cut + 14 days (few-shot).\n"
               "  --json              one JSON object per method and line instead of the table, with\n"
               "                      hr10, ndcg10, auc, events, clients and the client means\n"
               "                      client_hr10, client_ndcg10, client_auc\n"
               "  --config FILE       agent configuration: its [columns] section maps the export's\n"
               "                      column names (see docs/store.md)\n"
               "  --seed N            seed of the model initialisation and of every random choice in\n"
               "                      training (default 1, or seed in [eval])\n"
               "  --validation        evaluate on the validation split instead: the same rules applied\n"
               "                      to the period before the test cut (use it to tune; never tune on\n"
               "                      the test period)\n"
               "  --max-clients N     keep only the first N eligible clients (small slices, tests)\n"
               "  --help              print this text\n"
               "\n"
               "EXIT STATUS\n"
               "  0 success, 1 failure (unreadable data, out of memory), 2 usage error.\n"
               "\n"
               "EXAMPLES\n"
               "  storefl-agent eval --data online_retail.csv.gz --regime few-shot --clients customers\n"
               "  storefl-agent eval --data online_retail.csv.gz --clients countries --json \\\n"
               "      --methods random,tfidf\n");
}

static int is_tty_stderr(void) {
  return isatty(STDERR_FILENO);
}

static void load_progress(void *arg, uint64_t rows, uint64_t bytes) {
  (void)arg;
  if (is_tty_stderr())
    fprintf(stderr, "\rloading: %llu rows, %.1f MB read", (unsigned long long)rows, (double)bytes / 1e6);
}

static void run_progress(void *arg, const char *what, size_t done, size_t total) {
  (void)arg;
  if (is_tty_stderr())
    fprintf(stderr, "\rranking %s: %zu / %zu", what, done, total);
  if (done == total && is_tty_stderr())
    fputc('\n', stderr);
}

static void fmt_time(int64_t t, char *buf, size_t len) {
  storefl_format_time(t, buf, len);
}

static const char *const ALL_METHODS =
    "random,popularity,popularity-global,tfidf,local,central,federated,federated+personal";

/* 1 when name is one of the comma-separated names of ALL_METHODS. */
static int known_method(const char *name) {
  size_t len = strlen(name);
  for (const char *p = ALL_METHODS; *p;) {
    const char *q = strchr(p, ',');
    size_t l = q ? (size_t)(q - p) : strlen(p);
    if (l == len && strncmp(p, name, len) == 0)
      return 1;
    p += l;
    if (*p == ',')
      p++;
  }
  return 0;
}

static int make_method(const char *name, const storefl_eval_data *d, const storefl_eval_split *s,
                       storefl_eval_models *mc, storefl_eval_method *m) {
  if (strcmp(name, "random") == 0)
    return storefl_eval_method_random(m);
  if (strcmp(name, "popularity") == 0)
    return storefl_eval_method_popularity(d, s, 0, m);
  if (strcmp(name, "popularity-global") == 0)
    return storefl_eval_method_popularity(d, s, 1, m);
  if (strcmp(name, "tfidf") == 0)
    return storefl_eval_method_tfidf(d, s, m);
  if (strcmp(name, "local") == 0)
    return storefl_eval_method_model(mc, STOREFL_EVAL_LOCAL, m);
  if (strcmp(name, "central") == 0)
    return storefl_eval_method_model(mc, STOREFL_EVAL_CENTRAL, m);
  if (strcmp(name, "federated") == 0)
    return storefl_eval_method_model(mc, STOREFL_EVAL_FEDERATED, m);
  if (strcmp(name, "federated+personal") == 0)
    return storefl_eval_method_model(mc, STOREFL_EVAL_FEDERATED_PERSONAL, m);
  return STOREFL_ERR_NOT_FOUND;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum { MAX_METHODS = 16 };

int storefl_cmd_eval(int argc, char **argv) {
  static const struct option opts[] = {
      {"data", required_argument, NULL, 'd'},
      {"regime", required_argument, NULL, 'r'},
      {"clients", required_argument, NULL, 'c'},
      {"json", no_argument, NULL, 'j'},
      {"config", required_argument, NULL, 'f'},
      {"methods", required_argument, NULL, 'm'},
      {"seed", required_argument, NULL, 's'},
      {"validation", no_argument, NULL, 'v'},
      {"max-clients", required_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *data = NULL, *config = NULL, *methods_arg = ALL_METHODS;
  int json = 0;
  unsigned long long seed = 1;
  int seed_given = 0;
  storefl_eval_split_opts so;
  memset(&so, 0, sizeof so);
  optind = 1;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    char *end = NULL;
    switch (ch) {
    case 'd':
      data = optarg;
      break;
    case 'r':
      if (strcmp(optarg, "zero-shot") == 0)
        so.regime = STOREFL_EVAL_ZERO_SHOT;
      else if (strcmp(optarg, "few-shot") == 0)
        so.regime = STOREFL_EVAL_FEW_SHOT;
      else {
        fprintf(stderr, "eval: --regime must be zero-shot or few-shot, not '%s'\n", optarg);
        return STOREFL_EXIT_USAGE;
      }
      break;
    case 'c':
      if (strcmp(optarg, "customers") == 0)
        so.clients = STOREFL_EVAL_CUSTOMERS;
      else if (strcmp(optarg, "countries") == 0)
        so.clients = STOREFL_EVAL_COUNTRIES;
      else {
        fprintf(stderr, "eval: --clients must be customers or countries, not '%s'\n", optarg);
        return STOREFL_EXIT_USAGE;
      }
      break;
    case 'j':
      json = 1;
      break;
    case 'f':
      config = optarg;
      break;
    case 'm':
      methods_arg = optarg;
      break;
    case 's':
      seed = strtoull(optarg, &end, 10);
      seed_given = 1;
      if (!*optarg || *end) {
        fprintf(stderr, "eval: --seed needs a non-negative integer\n");
        return STOREFL_EXIT_USAGE;
      }
      break;
    case 'v':
      so.period = STOREFL_EVAL_VALIDATION;
      break;
    case 'n':
      so.max_clients = (size_t)strtoull(optarg, &end, 10);
      if (!*optarg || *end || so.max_clients == 0) {
        fprintf(stderr, "eval: --max-clients needs a positive integer\n");
        return STOREFL_EXIT_USAGE;
      }
      break;
    case 'h':
      eval_usage(stdout);
      return STOREFL_EXIT_OK;
    default:
      fprintf(stderr, "eval: see 'storefl-agent eval --help'\n");
      return STOREFL_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "eval: unexpected argument '%s'\n", argv[optind]);
    return STOREFL_EXIT_USAGE;
  }
  if (!data) {
    fprintf(stderr, "eval: --data FILE is required (see --help)\n");
    return STOREFL_EXIT_USAGE;
  }

  /* Parse the method list before the (slow) load so that a typo fails at once. */
  char names[MAX_METHODS][32];
  size_t nnames = 0;
  {
    const char *p = methods_arg;
    while (*p) {
      const char *q = strchr(p, ',');
      size_t len = q ? (size_t)(q - p) : strlen(p);
      if (len == 0 || len >= sizeof names[0] || nnames == MAX_METHODS) {
        fprintf(stderr, "eval: bad --methods list '%s'\n", methods_arg);
        return STOREFL_EXIT_USAGE;
      }
      memcpy(names[nnames], p, len);
      names[nnames][len] = 0;
      if (!known_method(names[nnames])) {
        fprintf(stderr, "eval: unknown method '%s' (known: %s)\n", names[nnames], ALL_METHODS);
        return STOREFL_EXIT_USAGE;
      }
      nnames++;
      p += len;
      if (*p == ',')
        p++;
    }
    if (nnames == 0) {
      fprintf(stderr, "eval: empty --methods list\n");
      return STOREFL_EXIT_USAGE;
    }
  }

  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  char err[512] = "";
  if (config && (storefl_agent_ini_check(config, err, sizeof err) != STOREFL_OK ||
                 storefl_retail_columns_load_ini(config, "columns", &cols, err, sizeof err) != 0)) {
    fprintf(stderr, "eval: %s: %s\n", config, err);
    return STOREFL_EXIT_FAIL;
  }
  /* The model's matrix products are small: OpenBLAS threads cost more in wake-ups than they save,
   * and one thread makes the figures identical whatever the machine's core count. */
  openblas_set_num_threads(1);
  storefl_eval_model_config mcfg;
  storefl_eval_model_config_default(&mcfg);
  if (config && storefl_eval_model_config_load_ini(config, "eval", &mcfg, err, sizeof err) != 0) {
    fprintf(stderr, "eval: %s\n", err);
    return STOREFL_EXIT_FAIL;
  }
  if (seed_given)
    mcfg.seed = seed;
  storefl_eval_load_opts lo;
  memset(&lo, 0, sizeof lo);
  lo.columns = &cols;
  lo.progress = load_progress;
  double t0 = now_s();
  storefl_eval_data *d = NULL;
  int rc = storefl_eval_data_load(data, &lo, &d, err, sizeof err);
  if (is_tty_stderr())
    fputc('\n', stderr);
  if (rc) {
    fprintf(stderr, "eval: %s: %s (%s)\n", data, err, storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  double t_load = now_s() - t0;
  storefl_eval_split *s = NULL;
  if ((rc = storefl_eval_split_build(d, &so, &s))) {
    fprintf(stderr, "eval: cannot split the data: %s\n", storefl_strerror(rc));
    storefl_eval_data_free(d);
    return STOREFL_EXIT_FAIL;
  }
  char cut[32], first[32], last[32], astart[32];
  fmt_time(s->cut, cut, sizeof cut);
  fmt_time(s->range_first, first, sizeof first);
  fmt_time(s->range_last, last, sizeof last);
  fmt_time(s->eval_start, astart, sizeof astart);
  FILE *info = json ? stderr : stdout;
  const char *regime = so.regime == STOREFL_EVAL_FEW_SHOT ? "few-shot" : "zero-shot";
  const char *ckind = so.clients == STOREFL_EVAL_COUNTRIES ? "countries" : "customers";
  const char *period = so.period == STOREFL_EVAL_VALIDATION ? "validation" : "test";
  fprintf(info,
          "split: %s period, %s, %s | %llu rows (%llu unparsable skipped), %zu clean lines | range %s .. %s\n"
          "cut %s | new products %zu | eval from %s | eligible clients %zu | test events %zu "
          "(%zu clients, %zu products) | loaded in %.1f s\n",
          period, regime, ckind, (unsigned long long)d->nrows, (unsigned long long)d->nbad_rows, d->nlines,
          first, last, cut, s->nnew, astart, s->nclients, s->nevents, s->nclients_with_events,
          s->nproducts_with_events, t_load);

  storefl_eval_method methods[MAX_METHODS];
  storefl_eval_result results[MAX_METHODS];
  size_t nm = 0;
  int status = STOREFL_EXIT_FAIL;
  storefl_eval_models *mc = NULL;
  for (size_t i = 0; i < nnames; i++) {
    static const char *const model_methods[] = {"local", "central", "federated", "federated+personal"};
    for (size_t k = 0; k < 4 && !mc; k++)
      if (strcmp(names[i], model_methods[k]) == 0) {
        if ((rc = storefl_eval_models_create(d, s, &mcfg, &mc))) {
          fprintf(stderr, "eval: cannot build the catalogue and profiles: %s\n", storefl_strerror(rc));
          goto out;
        }
        storefl_eval_models_set_progress(mc, run_progress, NULL);
        fprintf(stderr,
                "eval: model B=%u d=%u H=%u, %s lr %g, batch %u, %u negatives, central %u steps, local %u "
                "steps/client, federated %u rounds x %u clients x %u steps, personal %u steps, seed %llu\n",
                mcfg.model.buckets, mcfg.model.dim, mcfg.model.hidden,
                mcfg.train.optim.kind == STOREFL_OPT_ADAM ? "adam" : "sgd", (double)mcfg.train.optim.lr,
                mcfg.train.batch, mcfg.train.negatives, mcfg.central_steps, mcfg.local_steps, mcfg.rounds,
                mcfg.clients_per_round, mcfg.fed_local_steps, mcfg.train.personal_steps,
                (unsigned long long)mcfg.seed);
      }
    double tp = now_s();
    if ((rc = make_method(names[i], d, s, mc, &methods[nm]))) {
      fprintf(stderr, "eval: cannot prepare method %s: %s\n", names[i], storefl_strerror(rc));
      goto out;
    }
    nm++;
    fprintf(stderr, "eval: prepared %s in %.1f s\n", names[i], now_s() - tp);
  }
  double tr = now_s();
  if ((rc = storefl_eval_run(d, s, methods, nm, results, run_progress, NULL))) {
    fprintf(stderr, "eval: ranking failed: %s\n", storefl_strerror(rc));
    goto out;
  }
  fprintf(stderr, "eval: ranked %zu events with %zu methods in %.1f s\n", s->nevents, nm, now_s() - tr);
  if (json) {
    for (size_t i = 0; i < nm; i++) {
      const storefl_eval_result *r = &results[i];
      printf("{\"method\":\"%s\",\"regime\":\"%s\",\"clients_kind\":\"%s\",\"period\":\"%s\","
             "\"hr10\":%.6f,\"ndcg10\":%.6f,\"auc\":%.6f,\"events\":%zu,\"clients\":%zu,"
             "\"client_hr10\":%.6f,\"client_ndcg10\":%.6f,\"client_auc\":%.6f,\"new_products\":%zu,"
             "\"seconds\":%.3f}\n",
             r->method, regime, ckind, period, r->hr10, r->ndcg10, r->auc, r->events, r->clients, r->c_hr10,
             r->c_ndcg10, r->c_auc, s->nnew, r->seconds);
    }
  } else {
    printf("\n%-20s %8s %8s %8s %7s %7s | %8s %8s %8s | %7s\n", "method", "HR@10", "NDCG@10", "AUC", "events",
           "clients", "cHR@10", "cNDCG@10", "cAUC", "seconds");
    printf("%-20s %8s %8s %8s %7s %7s | %8s %8s %8s |\n", "", "(event", "mean)", "", "", "", "(client",
           "mean)", "");
    for (size_t i = 0; i < nm; i++) {
      const storefl_eval_result *r = &results[i];
      printf("%-20s %8.4f %8.4f %8.4f %7zu %7zu | %8.4f %8.4f %8.4f | %7.1f\n", r->method, r->hr10, r->ndcg10,
             r->auc, r->events, r->clients, r->c_hr10, r->c_ndcg10, r->c_auc, r->seconds);
    }
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "eval: cannot write the results\n");
    goto out;
  }
  status = STOREFL_EXIT_OK;
out:
  for (size_t i = 0; i < nm; i++)
    if (methods[i].destroy)
      methods[i].destroy(methods[i].state);
  storefl_eval_models_free(mc);
  storefl_eval_split_free(s);
  storefl_eval_data_free(d);
  return status;
}
