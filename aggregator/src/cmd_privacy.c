/* `storefl-aggregator privacy epsilon|sigma`: what a campaign will cost, before it runs. */
#include "cmd_privacy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/accountant.h"
#include "storefl/cli.h"
#include "storefl/error.h"

static void usage(FILE *out) {
  fprintf(out,
          "NAME\n"
          "  storefl-aggregator privacy - plan a campaign's differential privacy budget\n"
          "\n"
          "SYNOPSIS\n"
          "  storefl-aggregator privacy epsilon --q Q --sigma S --rounds T --delta D [--json] [--classic]\n"
          "  storefl-aggregator privacy sigma --q Q --epsilon E --rounds T --delta D [--json] [--classic]\n"
          "\n"
          "DESCRIPTION\n"
          "  The privacy accountant of storefl, for use before a campaign starts. Each round a store\n"
          "  takes part with probability Q (its own secret draw), its update is clipped to norm C and\n"
          "  Gaussian noise of standard deviation S*C is added. The accountant computes the Renyi DP\n"
          "  of this sampled Gaussian mechanism (Mironov, Talwar, Zhang 2019) at fractional orders\n"
          "  1.1..10.9 and integer orders 11..64, 80, 96, 128, 192, 256, 512, 1024, composes it over T\n"
          "  rounds and converts it to (epsilon, delta) with the conversion of Balle et al. 2020.\n"
          "  The unit of privacy is the store: epsilon bounds what the whole campaign reveals about\n"
          "  everything one store contributed.\n"
          "\n"
          "  Use Q = 1 unless amplification by sampling really holds: the store's participation must\n"
          "  be a secret Bernoulli(Q) draw. Rounds that close on a target count of participants, and\n"
          "  the aggregator's view in local mode, are accounted with Q = 1 in the ledger.\n"
          "\n"
          "  epsilon   prints the epsilon spent after T rounds with noise multiplier S.\n"
          "  sigma     prints the smallest noise multiplier S (to 1e-7 relative) for which epsilon\n"
          "            after T rounds is at most E.\n"
          "\n"
          "OPTIONS\n"
          "  --q Q          participation probability per round, 0 < Q <= 1\n"
          "  --sigma S      noise multiplier (noise standard deviation / clip norm), S > 0\n"
          "  --epsilon E    target epsilon, E > 0\n"
          "  --rounds T     number of rounds, an integer >= 1\n"
          "  --delta D      delta of (epsilon, delta)-DP, 0 < D < 1 (e.g. below 1 / number of stores)\n"
          "  --json         print one JSON object instead of text\n"
          "  --classic      use the classic RDP conversion eps = rdp + log(1/D)/(order-1) (looser; what\n"
          "                 older publications and TensorFlow Privacy's rdp_accountant used)\n"
          "  --help         print this text\n"
          "\n"
          "EXIT STATUS\n"
          "  0 success, 1 the target cannot be met (sigma would exceed 1e6), 2 usage error.\n"
          "\n"
          "EXAMPLES\n"
          "  storefl-aggregator privacy epsilon --q 0.01 --sigma 1.1 --rounds 1000 --delta 1e-5\n"
          "  storefl-aggregator privacy sigma --q 0.05 --epsilon 3 --rounds 200 --delta 1e-6 --json\n"
          "  # TensorFlow Privacy's MNIST tutorial setting (classic conversion): prints 2.92\n"
          "  storefl-aggregator privacy epsilon --q 0.0042666666666667 --sigma 1.12 --rounds 14040 \\\n"
          "      --delta 1e-5 --classic\n");
}

static int parse_double(const char *name, const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) {
    fprintf(stderr, "storefl-aggregator privacy: %s: not a finite number: '%s'\n", name, s);
    return -1;
  }
  *out = v;
  return 0;
}

int storefl_cmd_privacy(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return STOREFL_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return STOREFL_EXIT_OK;
  }
  int want_eps = strcmp(argv[1], "epsilon") == 0;
  if (!want_eps && strcmp(argv[1], "sigma") != 0) {
    fprintf(stderr, "storefl-aggregator privacy: unknown action '%s' (epsilon or sigma; see --help)\n",
            argv[1]);
    return STOREFL_EXIT_USAGE;
  }
  double q = NAN, sigma = NAN, eps_target = NAN, delta = NAN, rounds_d = NAN;
  int json = 0, classic = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return STOREFL_EXIT_OK;
    }
    if (strcmp(a, "--json") == 0) {
      json = 1;
      continue;
    }
    if (strcmp(a, "--classic") == 0) {
      classic = 1;
      continue;
    }
    double *dst = NULL;
    if (strcmp(a, "--q") == 0)
      dst = &q;
    else if (strcmp(a, "--sigma") == 0 && want_eps)
      dst = &sigma;
    else if (strcmp(a, "--epsilon") == 0 && !want_eps)
      dst = &eps_target;
    else if (strcmp(a, "--delta") == 0)
      dst = &delta;
    else if (strcmp(a, "--rounds") == 0)
      dst = &rounds_d;
    if (dst == NULL) {
      fprintf(stderr, "storefl-aggregator privacy %s: unknown option '%s' (see --help)\n", argv[1], a);
      return STOREFL_EXIT_USAGE;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "storefl-aggregator privacy: %s needs a value\n", a);
      return STOREFL_EXIT_USAGE;
    }
    if (parse_double(a, argv[++i], dst) != 0)
      return STOREFL_EXIT_USAGE;
  }
  const char *missing = isnan(q)                           ? "--q"
                        : isnan(delta)                     ? "--delta"
                        : isnan(rounds_d)                  ? "--rounds"
                        : (want_eps && isnan(sigma))       ? "--sigma"
                        : (!want_eps && isnan(eps_target)) ? "--epsilon"
                                                           : NULL;
  if (missing != NULL) {
    fprintf(stderr, "storefl-aggregator privacy %s: missing %s (see --help)\n", argv[1], missing);
    return STOREFL_EXIT_USAGE;
  }
  if (!(q > 0 && q <= 1)) {
    fprintf(stderr, "storefl-aggregator privacy: --q must be in (0, 1], got %g\n", q);
    return STOREFL_EXIT_USAGE;
  }
  if (!(delta > 0 && delta < 1)) {
    fprintf(stderr, "storefl-aggregator privacy: --delta must be in (0, 1), got %g\n", delta);
    return STOREFL_EXIT_USAGE;
  }
  if (!(rounds_d >= 1 && rounds_d <= 1e12 && rounds_d == floor(rounds_d))) {
    fprintf(stderr, "storefl-aggregator privacy: --rounds must be an integer in [1, 1e12], got %g\n",
            rounds_d);
    return STOREFL_EXIT_USAGE;
  }
  if (want_eps && !(sigma > 0)) {
    fprintf(stderr, "storefl-aggregator privacy: --sigma must be > 0, got %g (no noise means no privacy)\n",
            sigma);
    return STOREFL_EXIT_USAGE;
  }
  if (!want_eps && !(eps_target > 0)) {
    fprintf(stderr, "storefl-aggregator privacy: --epsilon must be > 0, got %g\n", eps_target);
    return STOREFL_EXIT_USAGE;
  }
  uint64_t rounds = (uint64_t)rounds_d;
  storefl_accountant_opts opts = {NULL, 0, classic};
  const char *conv = classic ? "classic" : "balle2020";
  if (want_eps) {
    double eps, order;
    int rc = storefl_dp_epsilon(q, sigma, rounds, delta, &opts, &eps, &order);
    if (rc != 0) {
      fprintf(stderr, "storefl-aggregator privacy: accountant failed: %s\n", storefl_strerror(rc));
      return STOREFL_EXIT_FAIL;
    }
    if (json)
      printf("{\"q\":%.17g,\"sigma\":%.17g,\"rounds\":%llu,\"delta\":%.17g,\"conversion\":\"%s\","
             "\"epsilon\":%.17g,\"order\":%.17g}\n",
             q, sigma, (unsigned long long)rounds, delta, conv, eps, order);
    else
      printf("epsilon = %.6g  (q = %g, sigma = %g, %llu rounds, delta = %g; best order %g, %s conversion)\n",
             eps, q, sigma, (unsigned long long)rounds, delta, order, conv);
    return STOREFL_EXIT_OK;
  }
  double s;
  int rc = storefl_dp_calibrate_sigma(q, eps_target, rounds, delta, &opts, &s);
  if (rc == STOREFL_ERR_INVALID) {
    fprintf(stderr, "storefl-aggregator privacy: epsilon %g is out of reach for sigma <= 1e6\n", eps_target);
    return STOREFL_EXIT_FAIL;
  }
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator privacy: accountant failed: %s\n", storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  double eps;
  rc = storefl_dp_epsilon(q, s, rounds, delta, &opts, &eps, NULL);
  if (rc != 0) {
    fprintf(stderr, "storefl-aggregator privacy: accountant failed: %s\n", storefl_strerror(rc));
    return STOREFL_EXIT_FAIL;
  }
  if (json)
    printf("{\"q\":%.17g,\"epsilon_target\":%.17g,\"rounds\":%llu,\"delta\":%.17g,\"conversion\":\"%s\","
           "\"sigma\":%.17g,\"epsilon\":%.17g}\n",
           q, eps_target, (unsigned long long)rounds, delta, conv, s, eps);
  else
    printf("sigma = %.6g  (epsilon = %.6g <= %g after %llu rounds at q = %g, delta = %g; %s conversion)\n", s,
           eps, eps_target, (unsigned long long)rounds, q, delta, conv);
  return STOREFL_EXIT_OK;
}
