/* storefl-agent train, personalize and recommend: the model on the store's own data. */
#include "cmd_model.h"

#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_store.h"
#include "net_agent.h"
#include "store_model.h"
#include "storefl/cli.h"
#include "storefl/error.h"
#include "storefl/parse.h"
#include "storefl/retail_csv.h"
#include "storefl/train.h"
#include "storefl_agent.h"

enum { MAX_BASKET = 256, MAX_K = 1000 };

/* The model's matrix products are small (160 x 102 x 64 in training, up to 256 rows when scoring):
 * OpenBLAS threads cost more in wake-ups than they save, and one thread keeps results identical
 * whatever the machine's core count. */
static void one_blas_thread(void) {
  openblas_set_num_threads(1);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  return storefl_parse_u64(s, lo, hi, out);
}

static int open_store(const char *prog, const char *path, int read_only, storefl_store **s) {
  char err[256] = "";
  storefl_store_options o = {read_only, 0, 0, 0};
  int rc = storefl_store_open(path, &o, s, err, sizeof err);
  if (rc != STOREFL_OK)
    fprintf(stderr, "%s: %s: %s\n", prog, path, err[0] ? err : storefl_strerror(rc));
  return rc;
}

/* The base model: "global" (federated) or "local" (this store only); "auto" takes global if there
 * is one. */
static int load_base(const char *prog, storefl_store *s, const char *which, storefl_model **m,
                     const char **kind, uint64_t *version, uint8_t digest[32]) {
  int rc = STOREFL_ERR_NOT_FOUND;
  if (strcmp(which, "auto") == 0 || strcmp(which, "global") == 0) {
    *kind = "global";
    rc = storefl_agent_load_model(s, "global", m, version, digest);
  }
  if (rc == STOREFL_ERR_NOT_FOUND && (strcmp(which, "auto") == 0 || strcmp(which, "local") == 0)) {
    *kind = "local";
    rc = storefl_agent_load_model(s, "local", m, version, digest);
  }
  if (rc == STOREFL_ERR_NOT_FOUND)
    fprintf(stderr,
            "%s: no %s model in the store: join a federated round, or run `storefl-agent train` to "
            "train one on this store's data\n",
            prog, strcmp(which, "auto") == 0 ? "global or local" : which);
  else if (rc != STOREFL_OK)
    fprintf(stderr, "%s: cannot load the %s model: %s\n", prog, *kind, storefl_strerror(rc));
  return rc;
}

/* ---- train ---- */

static void train_help(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent train - train the recommendation model on this store's purchases alone\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent train --db STORE.db [--config AGENT.ini] [--steps N] [--seed S] [--lr X]\n"
          "                      [--from-scratch] [--buckets B] [--dim D] [--hidden H]\n"
          "\n"
          "DESCRIPTION\n"
          "  Trains the wide-deep-v1 model (docs/model.md) on every purchase in STORE.db: each purchase is\n"
          "  a positive in the context of the rest of its basket and the shopper's earlier purchases,\n"
          "  against negatives sampled from the store's catalogue. Training starts from the latest\n"
          "  global (federated) model when the store has one, else from a fresh model, and the result\n"
          "  is saved as the next version of kind \"local\" in the store's models table. Nothing leaves\n"
          "  the store. Deterministic for a given store, seed and options.\n"
          "\n"
          "OPTIONS\n"
          "  --db STORE.db      the store's database (required)\n"
          "  --config AGENT.ini agent configuration: its [model] section sets the model shape and the\n"
          "                     training hyper-parameters (docs/model.md); options below override it\n"
          "  --steps N          optimizer steps of 32 purchases (default: one pass over the purchases)\n"
          "  --seed S           seed for initialisation and negative sampling (default 1)\n"
          "  --lr X             Adam step size (default 0.005)\n"
          "  --from-scratch     ignore the global model and start from a fresh one\n"
          "  --buckets B        hash buckets of a fresh model, a power of two (default 16384)\n"
          "  --dim D            embedding width of a fresh model (default 32)\n"
          "  --hidden H         MLP width of a fresh model (default 64)\n"
          "  --help             print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 trained and saved, 1 failure (no purchases, database error), 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent ingest --db store.db export.csv.gz && storefl-agent train --db store.db\n"
          "  storefl-agent train --db store.db --from-scratch --steps 2000 --seed 7\n");
}

int storefl_cmd_train(int argc, char **argv) {
  one_blas_thread();
  const char *prog = "storefl-agent train", *db = NULL, *config = NULL, *v;
  /* 0 / negative = not given on the command line: the config file or the defaults decide. */
  uint64_t steps = 0, seed = 0, buckets = 0, dim = 0, hidden = 0;
  double lr = -1;
  int scratch = 0, seed_set = 0;
  for (int i = 1; i < argc; i++) {
    int r;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      train_help(stdout);
      return STOREFL_EXIT_OK;
    }
    if (strcmp(argv[i], "--from-scratch") == 0) {
      scratch = 1;
      continue;
    }
    if ((r = storefl_cmd_opt(argc, argv, &i, "--db", &db)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--config", &config)) != 0) {
      if (r < 0)
        return STOREFL_EXIT_USAGE;
      continue;
    }
    const char *names[] = {"--steps", "--seed", "--buckets", "--dim", "--hidden", "--lr"};
    int matched = 0;
    for (int k = 0; k < 6 && !matched; k++) {
      if ((r = storefl_cmd_opt(argc, argv, &i, names[k], &v)) == 0)
        continue;
      if (r < 0)
        return STOREFL_EXIT_USAGE;
      matched = 1;
      int bad = 0;
      switch (k) {
      case 0:
        bad = parse_u64(v, 1, 100000000, &steps);
        break;
      case 1:
        bad = parse_u64(v, 0, UINT64_MAX, &seed);
        seed_set = 1;
        break;
      case 2:
        bad = parse_u64(v, 16, 1u << 24, &buckets) || (buckets & (buckets - 1));
        break;
      case 3:
        bad = parse_u64(v, 1, 1024, &dim);
        break;
      case 4:
        bad = parse_u64(v, 1, 4096, &hidden);
        break;
      case 5: {
        char *end;
        lr = strtod(v, &end);
        bad = *end || !(lr > 0 && lr < 10);
        break;
      }
      }
      if (bad) {
        fprintf(stderr, "%s: invalid value for %s: %s\n", prog, names[k], v);
        return STOREFL_EXIT_USAGE;
      }
    }
    if (!matched) {
      fprintf(stderr, "%s: unknown argument %s (see --help)\n", prog, argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!db) {
    fprintf(stderr, "%s: --db is required (see --help)\n", prog);
    return STOREFL_EXIT_USAGE;
  }
  storefl_model_config mc;
  storefl_train_config tc;
  storefl_model_config_default(&mc);
  storefl_train_config_default(&tc);
  if (config) {
    char err[256];
    if (storefl_agent_ini_check(config, err, sizeof err) != STOREFL_OK ||
        storefl_train_config_load_ini(config, "model", &mc, &tc, err, sizeof err) != STOREFL_OK) {
      fprintf(stderr, "%s: %s\n", prog, err);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (buckets)
    mc.buckets = (uint32_t)buckets;
  if (dim)
    mc.dim = (uint32_t)dim;
  if (hidden)
    mc.hidden = (uint32_t)hidden;
  if (seed_set)
    tc.seed = seed;
  if (lr > 0)
    tc.optim.lr = (float)lr;
  storefl_store *s;
  if (open_store(prog, db, 0, &s) != STOREFL_OK)
    return STOREFL_EXIT_FAIL;
  int status = STOREFL_EXIT_FAIL, rc;
  storefl_model *m = NULL;
  storefl_trainer *t = NULL;
  storefl_agent_data d;
  memset(&d, 0, sizeof d);
  uint64_t base_version = 0;
  const char *base = "fresh";
  if (!scratch) {
    rc = storefl_agent_load_model(s, "global", &m, &base_version, NULL);
    if (rc == STOREFL_OK) {
      base = "global";
    } else if (rc != STOREFL_ERR_NOT_FOUND) {
      fprintf(stderr, "%s: cannot load the global model: %s\n", prog, storefl_strerror(rc));
      goto out;
    }
  }
  if (!m) {
    if ((rc = storefl_model_create(&mc, &m)) != STOREFL_OK) {
      fprintf(stderr, "%s: %s\n", prog, storefl_strerror(rc));
      goto out;
    }
    storefl_model_init(m, tc.seed);
  }
  if ((rc = storefl_agent_load_catalog(s, m->cfg.buckets, &d)) != STOREFL_OK ||
      (rc = storefl_agent_load_profiles(s, &d, NULL)) != STOREFL_OK) {
    fprintf(stderr, "%s: cannot read the store: %s\n", prog, storefl_strerror(rc));
    goto out;
  }
  if (d.n_events == 0) {
    fprintf(stderr, "%s: the store has no purchases to learn from\n", prog);
    goto out;
  }
  if (steps == 0)
    steps = (d.n_events + tc.batch - 1) / tc.batch;
  storefl_train_data td = {d.cat, (const storefl_profile *const *)d.profiles, d.n_profiles, INT64_MIN,
                           INT64_MAX};
  storefl_train_stats st;
  double t0 = storefl_cmd_now();
  if ((rc = storefl_trainer_create(&m->cfg, &tc, &t)) != STOREFL_OK ||
      (rc = storefl_trainer_train(t, m, &td, (uint32_t)steps, &st)) != STOREFL_OK) {
    fprintf(stderr, "%s: training failed: %s\n", prog, storefl_strerror(rc));
    goto out;
  }
  double dt = storefl_cmd_now() - t0;
  uint64_t version = storefl_agent_model_version(s, "local") + 1;
  if ((rc = storefl_agent_save_model(s, "local", version, m)) != STOREFL_OK) {
    fprintf(stderr, "%s: cannot save the model: %s (%s)\n", prog, storefl_strerror(rc),
            storefl_store_errmsg(s));
    goto out;
  }
  fprintf(stderr,
          "%s: local model v%" PRIu64 " from %s model: %zu purchases of %zu profiles, %zu steps in %.1f s, "
          "loss %.4f -> %.4f, peak RSS %.0f MiB\n",
          prog, version, base, st.examples, d.n_profiles, st.steps, dt, st.first_loss, st.last_loss,
          storefl_cmd_peak_rss_mib());
  (void)base_version;
  status = STOREFL_EXIT_OK;
out:
  storefl_trainer_free(t);
  storefl_model_free(m);
  storefl_agent_data_free(&d);
  storefl_store_close(s);
  return status;
}

/* ---- personalize ---- */

static void personalize_help(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent personalize - adapt the model's head to this store's latest purchases\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent personalize --db STORE.db [--config AGENT.ini] [--model auto|global|local]\n"
          "                            [--days N] [--steps N] [--lr X] [--seed S]\n"
          "\n"
          "DESCRIPTION\n"
          "  Few-shot personalisation: starting from the store's global (federated) model, or its local\n"
          "  one, takes a few Adam steps on the purchases of the last N days of the store's data\n"
          "  (including the first sales of new products), moving only the scorer (MLP, wide weights,\n"
          "  intercept) while the shared embeddings stay as they are. The adapted head is cached in the\n"
          "  store's models table (kind \"personal\", under the base model's version, bound to its\n"
          "  digest); `recommend` uses it as long as the base model is unchanged.\n"
          "\n"
          "OPTIONS\n"
          "  --db STORE.db          the store's database (required)\n"
          "  --config AGENT.ini     agent configuration: personal_steps, personal_lr and seed of its\n"
          "                         [model] section (docs/model.md); options below override them\n"
          "  --model auto|global|local  base model (default auto: global if present, else local)\n"
          "  --days N               window of latest purchases, counted back from the last one (default 14)\n"
          "  --steps N              Adam steps of 32 purchases (default 20)\n"
          "  --lr X                 step size (default 0.005)\n"
          "  --seed S               seed for negative sampling (default 1)\n"
          "  --help                 print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 adapted and cached, 1 failure (no model, no recent purchase), 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent personalize --db store.db\n"
          "  storefl-agent personalize --db store.db --days 7 --steps 50\n");
}

int storefl_cmd_personalize(int argc, char **argv) {
  one_blas_thread();
  const char *prog = "storefl-agent personalize", *db = NULL, *which = "auto", *config = NULL, *v;
  /* 0 / negative = not given: the config file or the defaults decide. */
  uint64_t days = 14, steps = 0, seed = 0;
  double lr = -1;
  int seed_set = 0;
  for (int i = 1; i < argc; i++) {
    int r;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      personalize_help(stdout);
      return STOREFL_EXIT_OK;
    }
    if ((r = storefl_cmd_opt(argc, argv, &i, "--db", &db)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--model", &which)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--config", &config)) != 0) {
      if (r < 0)
        return STOREFL_EXIT_USAGE;
      continue;
    }
    const char *names[] = {"--days", "--steps", "--seed", "--lr"};
    int matched = 0;
    for (int k = 0; k < 4 && !matched; k++) {
      if ((r = storefl_cmd_opt(argc, argv, &i, names[k], &v)) == 0)
        continue;
      if (r < 0)
        return STOREFL_EXIT_USAGE;
      matched = 1;
      int bad = 0;
      char *end;
      switch (k) {
      case 0:
        bad = parse_u64(v, 1, 36500, &days);
        break;
      case 1:
        bad = parse_u64(v, 1, 1000000, &steps);
        break;
      case 2:
        bad = parse_u64(v, 0, UINT64_MAX, &seed);
        seed_set = 1;
        break;
      case 3:
        lr = strtod(v, &end);
        bad = *end || !(lr > 0 && lr < 10);
        break;
      }
      if (bad) {
        fprintf(stderr, "%s: invalid value for %s: %s\n", prog, names[k], v);
        return STOREFL_EXIT_USAGE;
      }
    }
    if (!matched) {
      fprintf(stderr, "%s: unknown argument %s (see --help)\n", prog, argv[i]);
      return STOREFL_EXIT_USAGE;
    }
  }
  if (!db || (strcmp(which, "auto") && strcmp(which, "global") && strcmp(which, "local"))) {
    fprintf(stderr, "%s: --db is required and --model is auto, global or local (see --help)\n", prog);
    return STOREFL_EXIT_USAGE;
  }
  storefl_store *s;
  if (open_store(prog, db, 0, &s) != STOREFL_OK)
    return STOREFL_EXIT_FAIL;
  int status = STOREFL_EXIT_FAIL, rc;
  storefl_model *m = NULL, *pm = NULL;
  storefl_agent_data d;
  memset(&d, 0, sizeof d);
  uint8_t *blob = NULL;
  const char *kind = "";
  uint64_t version = 0;
  uint8_t digest[32];
  if (load_base(prog, s, which, &m, &kind, &version, digest) != STOREFL_OK)
    goto out;
  if ((rc = storefl_agent_load_catalog(s, m->cfg.buckets, &d)) != STOREFL_OK ||
      (rc = storefl_agent_load_profiles(s, &d, NULL)) != STOREFL_OK) {
    fprintf(stderr, "%s: cannot read the store: %s\n", prog, storefl_strerror(rc));
    goto out;
  }
  storefl_train_config tc;
  storefl_train_config_default(&tc);
  if (config) {
    char err[256];
    if (storefl_agent_ini_check(config, err, sizeof err) != STOREFL_OK ||
        storefl_train_config_load_ini(config, "model", NULL, &tc, err, sizeof err) != STOREFL_OK) {
      fprintf(stderr, "%s: %s\n", prog, err);
      goto out;
    }
  }
  if (seed_set)
    tc.seed = seed;
  if (steps)
    tc.personal_steps = (uint32_t)steps;
  if (lr > 0)
    tc.personal_lr = (float)lr;
  steps = tc.personal_steps;
  tc.personal_last = UINT32_MAX; /* the window, not a count, bounds the examples */
  int64_t begin = d.last_time - (int64_t)days * 86400;
  storefl_train_data td = {d.cat, (const storefl_profile *const *)d.profiles, d.n_profiles, begin, INT64_MAX};
  size_t n = storefl_train_count(&td);
  if (n == 0) {
    fprintf(stderr, "%s: no purchase in the last %" PRIu64 " days of the store's data\n", prog, days);
    goto out;
  }
  if ((rc = storefl_model_create(&m->cfg, &pm)) != STOREFL_OK ||
      (rc = storefl_personalize(m, &td, &tc, pm)) != STOREFL_OK) {
    fprintf(stderr, "%s: personalisation failed: %s\n", prog, storefl_strerror(rc));
    goto out;
  }
  size_t cap = storefl_head_blob_size(&m->cfg), len = 0;
  blob = malloc(cap);
  if (!blob || (rc = storefl_head_to_blob(pm, digest, blob, cap, &len)) != STOREFL_OK ||
      (rc = storefl_store_put_model(s, "personal", version, digest, blob, len)) != STOREFL_OK) {
    fprintf(stderr, "%s: cannot cache the personalised head: %s\n", prog,
            storefl_strerror(blob ? rc : STOREFL_ERR_NOMEM));
    goto out;
  }
  fprintf(stderr,
          "%s: head adapted from the %s model v%" PRIu64 " on %zu purchases of the last %" PRIu64
          " days (%" PRIu64 " steps), cached (%zu bytes)\n",
          prog, kind, version, n, days, steps, len);
  status = STOREFL_EXIT_OK;
out:
  free(blob);
  storefl_model_free(pm);
  storefl_model_free(m);
  storefl_agent_data_free(&d);
  storefl_store_close(s);
  return status;
}

/* ---- recommend ---- */

static void recommend_help(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-agent recommend - rank the store's products for a basket and a shopper\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-agent recommend --db STORE.db --basket CODE[,CODE...] [--shopper ID] [--new-only]\n"
          "                          [--new-days N] [-k N] [--json] [--at TIME] [--model auto|global|local]\n"
          "                          [--no-personal]\n"
          "\n"
          "DESCRIPTION\n"
          "  Scores the store's catalogue with the wide-deep-v1 model for the current basket and, when\n"
          "  --shopper is given, that shopper's purchase history before TIME, and prints the K best\n"
          "  products that are not in the basket: rank, code, score (probability of interest, 0..1) and\n"
          "  name. Products are scored by their attributes (words of the name, category, brand, price),\n"
          "  so a product nobody has bought yet is ranked like any other. The personalised head cached\n"
          "  by `personalize` is used when it was adapted from the model in use.\n"
          "\n"
          "OPTIONS\n"
          "  --db STORE.db          the store's database (required; opened read-only)\n"
          "  --basket CODES         comma-separated product codes in the basket (required, may be empty\n"
          "                         with --shopper); codes are upper-cased\n"
          "  --shopper ID           the shopper's id as recorded (loyalty number...); without it the\n"
          "                         shopper is anonymous and only the basket is the context\n"
          "  --new-only             rank only new products: launched in the --new-days before TIME\n"
          "  --new-days N           what \"new\" means, in days (default 30)\n"
          "  -k N                   how many products to print (default 10, at most 1000)\n"
          "  --json                 print one JSON object instead of a table\n"
          "  --at TIME              \"YYYY-MM-DD HH:MM[:SS]\" (UTC) of the recommendation (default: the\n"
          "                         store's latest purchase, so that an imported history replays well);\n"
          "                         products launched after TIME are never recommended\n"
          "  --model auto|global|local  model to use (default auto: global if present, else local)\n"
          "  --no-personal          ignore the cached personalised head\n"
          "  --help                 print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 printed, 1 failure (no model, unknown code or shopper, database error), 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-agent recommend --db store.db --basket 22423,85123A\n"
          "  storefl-agent recommend --db store.db --basket 22423 --shopper 17850 --new-only -k 5 --json\n");
}

static void json_str(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(out, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(out, "\\u%04x", *p);
    else
      fputc(*p, out);
  }
  fputc('"', out);
}

int storefl_cmd_recommend(int argc, char **argv) {
  one_blas_thread();
  const char *prog = "storefl-agent recommend", *db = NULL, *basket_arg = NULL, *shopper = NULL;
  const char *which = "auto", *at = NULL, *v;
  uint64_t k = 10, new_days = 30;
  int json = 0, new_only = 0, no_personal = 0;
  for (int i = 1; i < argc; i++) {
    int r;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      recommend_help(stdout);
      return STOREFL_EXIT_OK;
    }
    if (strcmp(argv[i], "--json") == 0) {
      json = 1;
      continue;
    }
    if (strcmp(argv[i], "--new-only") == 0) {
      new_only = 1;
      continue;
    }
    if (strcmp(argv[i], "--no-personal") == 0) {
      no_personal = 1;
      continue;
    }
    if ((r = storefl_cmd_opt(argc, argv, &i, "--db", &db)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--basket", &basket_arg)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--shopper", &shopper)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--model", &which)) != 0 ||
        (r = storefl_cmd_opt(argc, argv, &i, "--at", &at)) != 0) {
      if (r < 0)
        return STOREFL_EXIT_USAGE;
      continue;
    }
    if ((r = storefl_cmd_opt(argc, argv, &i, "-k", &v)) != 0) {
      if (r < 0 || parse_u64(v, 1, MAX_K, &k)) {
        fprintf(stderr, "%s: -k needs a number in 1..%d\n", prog, MAX_K);
        return STOREFL_EXIT_USAGE;
      }
      continue;
    }
    if ((r = storefl_cmd_opt(argc, argv, &i, "--new-days", &v)) != 0) {
      if (r < 0 || parse_u64(v, 1, 36500, &new_days)) {
        fprintf(stderr, "%s: --new-days needs a number of days\n", prog);
        return STOREFL_EXIT_USAGE;
      }
      continue;
    }
    fprintf(stderr, "%s: unknown argument %s (see --help)\n", prog, argv[i]);
    return STOREFL_EXIT_USAGE;
  }
  if (!db || !basket_arg || (strcmp(which, "auto") && strcmp(which, "global") && strcmp(which, "local"))) {
    fprintf(stderr, "%s: --db and --basket are required; --model is auto, global or local (see --help)\n",
            prog);
    return STOREFL_EXIT_USAGE;
  }
  if (!basket_arg[0] && !shopper) {
    fprintf(stderr, "%s: an empty basket needs --shopper (there is no context otherwise)\n", prog);
    return STOREFL_EXIT_USAGE;
  }
  int64_t at_time = 0;
  if (at && storefl_parse_time(at, &at_time) != STOREFL_OK) {
    fprintf(stderr, "%s: --at: not a time of the form YYYY-MM-DD HH:MM[:SS]: %s\n", prog, at);
    return STOREFL_EXIT_USAGE;
  }

  storefl_store *s;
  if (open_store(prog, db, 1, &s) != STOREFL_OK)
    return STOREFL_EXIT_FAIL;
  int status = STOREFL_EXIT_FAIL, rc;
  storefl_model *m = NULL;
  storefl_agent_data d;
  memset(&d, 0, sizeof d);
  uint32_t *cands = NULL, *top = NULL;
  float *scores = NULL;
  void *blob = NULL;
  const char *kind = "";
  uint64_t version = 0;
  uint8_t digest[32];
  int personalised = 0;
  if (load_base(prog, s, which, &m, &kind, &version, digest) != STOREFL_OK)
    goto out;
  if (!no_personal) {
    size_t len = 0;
    uint8_t pd[32];
    uint64_t pv = 0;
    rc = storefl_store_get_model(s, "personal", version, &pv, pd, &blob, &len);
    if (rc == STOREFL_OK) {
      /* A head adapted from another base model is stale: it is not used. */
      rc = memcmp(pd, digest, 32) == 0 ? storefl_head_from_blob(m, blob, len, digest) : STOREFL_ERR_CONFLICT;
      if (rc == STOREFL_OK)
        personalised = 1;
      else
        fprintf(stderr, "%s: warning: cached personalised head not used (%s); run personalize again\n", prog,
                storefl_strerror(rc));
    } else if (rc != STOREFL_ERR_NOT_FOUND) {
      fprintf(stderr, "%s: warning: cannot read the personalised head: %s\n", prog, storefl_strerror(rc));
    }
  }
  if ((rc = storefl_agent_load_catalog(s, m->cfg.buckets, &d)) != STOREFL_OK) {
    fprintf(stderr, "%s: cannot read the catalogue: %s\n", prog, storefl_strerror(rc));
    goto out;
  }
  if (shopper) {
    rc = storefl_agent_load_profiles(s, &d, shopper);
    if (rc == STOREFL_ERR_NOT_FOUND) {
      fprintf(stderr, "%s: unknown shopper %s\n", prog, shopper);
      goto out;
    }
    if (rc != STOREFL_OK) {
      fprintf(stderr, "%s: cannot read the shopper's history: %s\n", prog, storefl_strerror(rc));
      goto out;
    }
  }
  {
    /* Basket codes, upper-cased, each known to the catalogue. */
    uint32_t basket[MAX_BASKET];
    size_t nb = 0;
    char code[64];
    const char *p = basket_arg;
    while (*p) {
      size_t len = strcspn(p, ",");
      if (len > 0) {
        if (len >= sizeof code || nb == MAX_BASKET) {
          fprintf(stderr, "%s: basket code too long or more than %d codes\n", prog, MAX_BASKET);
          goto out;
        }
        for (size_t j = 0; j < len; j++)
          code[j] = (char)((p[j] >= 'a' && p[j] <= 'z') ? p[j] - 'a' + 'A' : p[j]);
        code[len] = 0;
        int64_t idx = storefl_agent_find(&d, code);
        if (idx < 0) {
          fprintf(stderr, "%s: unknown product code %s\n", prog, code);
          goto out;
        }
        basket[nb++] = (uint32_t)idx;
      }
      p += len;
      if (*p == ',')
        p++;
    }
    if (!at) {
      int64_t last = 0;
      if ((rc = storefl_agent_last_purchase(s, &last)) != STOREFL_OK) {
        fprintf(stderr, "%s: cannot read the store: %s\n", prog, storefl_strerror(rc));
        goto out;
      }
      /* Just after the latest purchase, so that it belongs to the history. */
      at_time = last + 1;
    }
    size_t n = storefl_catalog_size(d.cat);
    cands = malloc((n ? n : 1) * sizeof *cands);
    top = malloc(k * sizeof *top);
    scores = malloc(k * sizeof *scores);
    if (!cands || !top || !scores) {
      fprintf(stderr, "%s: out of memory\n", prog);
      goto out;
    }
    size_t nc = 0;
    for (uint32_t i = 0; i < n; i++) {
      int64_t fs = storefl_catalog_first_seen(d.cat, i);
      if (fs > at_time)
        continue; /* not launched yet */
      if (new_only && fs < at_time - (int64_t)new_days * 86400)
        continue;
      int in_basket = 0;
      for (size_t j = 0; j < nb; j++)
        in_basket |= basket[j] == i;
      if (!in_basket)
        cands[nc++] = i;
    }
    storefl_query q = {d.n_profiles ? d.profiles[0] : NULL, basket, nb, at_time, 0};
    int got = storefl_model_rank(m, d.cat, &q, cands, nc, k, top, scores);
    if (got < 0) {
      fprintf(stderr, "%s: scoring failed: %s\n", prog, storefl_strerror(got));
      goto out;
    }
    char when[32];
    storefl_format_time(at_time, when, sizeof when);
    if (json) {
      printf("{\"model\":{\"kind\":\"%s\",\"version\":%" PRIu64 ",\"personalized\":%s},\"at\":\"%s\","
             "\"shopper\":",
             kind, version, personalised ? "true" : "false", when);
      if (shopper)
        json_str(stdout, shopper);
      else
        printf("null");
      printf(",\"history\":%zu,\"candidates\":%zu,\"results\":[",
             d.n_profiles ? storefl_profile_before(d.profiles[0], at_time) : (size_t)0, nc);
      for (int r = 0; r < got; r++) {
        printf("%s{\"rank\":%d,\"code\":", r ? "," : "", r + 1);
        json_str(stdout, storefl_catalog_code(d.cat, top[r]));
        printf(",\"name\":");
        json_str(stdout, storefl_catalog_text(d.cat, top[r]));
        printf(",\"score\":%.6f}", 1.0 / (1.0 + exp(-(double)scores[r])));
      }
      printf("]}\n");
    } else {
      printf("# %s model v%" PRIu64 "%s, at %s, %zu candidates%s\n", kind, version,
             personalised ? " + personalised head" : "", when, nc, new_only ? " (new products only)" : "");
      printf("%4s  %-12s %7s  %s\n", "rank", "code", "score", "name");
      for (int r = 0; r < got; r++)
        printf("%4d  %-12s %7.4f  %s\n", r + 1, storefl_catalog_code(d.cat, top[r]),
               1.0 / (1.0 + exp(-(double)scores[r])), storefl_catalog_text(d.cat, top[r]));
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
      fprintf(stderr, "%s: cannot write the output\n", prog);
      goto out;
    }
  }
  status = STOREFL_EXIT_OK;
out:
  free(blob);
  free(cands);
  free(top);
  free(scores);
  storefl_model_free(m);
  storefl_agent_data_free(&d);
  storefl_store_close(s);
  return status;
}
