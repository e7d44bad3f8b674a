/* storefl-agent: the store-side program (POS terminal / edge box). */
#include <stdio.h>
#include <string.h>

#include "cmd_budget.h"
#include "cmd_campaign.h"
#include "cmd_eval.h"
#include "cmd_model.h"
#include "cmd_net.h"
#include "cmd_simulate.h"
#include "cmd_store.h"
#include "storefl/buildinfo.h"
#include "storefl/cli.h"

static const char *const PROGRAM = "storefl-agent";

static int cmd_version(int argc, char **argv) {
  (void)argc;
  (void)argv;
  storefl_print_versions(stdout, PROGRAM);
  return STOREFL_EXIT_OK;
}

static const storefl_command COMMANDS[] = {
    {"version", "print the versions of storefl and the libraries it runs on", cmd_version},
    {"ingest", "import a retailer CSV export (plain or .gz) into the store's database", storefl_cmd_ingest},
    {"eval", "rank new products on a real export: baselines and models, HR@10/NDCG@10/AUC", storefl_cmd_eval},
    {"budget", "print the privacy budget this store has spent and has left", storefl_cmd_budget},
    {"partition", "split a retailer-wide export into one store database per client", storefl_cmd_partition},
    {"train", "train the recommendation model on this store's purchases alone", storefl_cmd_train},
    {"personalize", "adapt the model's head to the store's latest purchases (cached)",
     storefl_cmd_personalize},
    {"recommend", "rank the store's products (or only new ones) for a basket and shopper",
     storefl_cmd_recommend},
    {"sync", "one exchange with the aggregator: round, model (by ETag), upload the outbox", storefl_cmd_sync},
    {"run", "daemon: observe rounds, train when selected, upload, fetch new models", storefl_cmd_run},
    {"simulate", "many stores' agents in one process against a real aggregator (scale campaign)",
     storefl_cmd_simulate},
    {"campaign", "plan and watch a federated campaign (the demo): quality, privacy, bytes per round",
     storefl_cmd_campaign},
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-agent - learn new-product interest in one store, privately and federated\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-agent [--version] [--help] COMMAND [ARGS...]\n"
               "  storefl-agent help COMMAND\n"
               "\n"
               "DESCRIPTION\n"
               "  Runs on a store's edge box or POS terminal. It keeps the store's shopper-product\n"
               "  interactions in a local SQLite database, trains the shared model on them, and sends\n"
               "  only differentially private, clipped updates (CBOR over CoAP + DTLS) to the\n"
               "  storefl-aggregator. Raw shopper data never leaves the store.\n"
               "\n"
               "COMMANDS\n");
  storefl_cli_print_commands(out, COMMANDS);
  fprintf(out, "\n"
               "OPTIONS\n"
               "  --version   print versions of storefl, libcoap (and its DTLS library), Mbed TLS,\n"
               "              libcbor, SQLite, OpenBLAS and zlib, then exit\n"
               "  --help      print this text and exit\n"
               "\n"
               "EXIT STATUS\n"
               "  0 success, 1 failure, 2 usage error, 3 libcoap lacks DTLS with Mbed TLS.\n"
               "\n"
               "SEE ALSO\n"
               "  storefl-aggregator(1), README.md, protocol/PROTOCOL.md\n");
}

int main(int argc, char **argv) {
  char err[256];
  /* Refuse to run on a libcoap that could silently fall back to plaintext or another TLS stack. */
  if (storefl_check_transport(err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", PROGRAM, err);
    return 3;
  }
  if (argc < 2) {
    usage(stderr);
    return STOREFL_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return STOREFL_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0)
    return cmd_version(0, NULL);
  return storefl_cli_dispatch(PROGRAM, COMMANDS, argc - 1, argv + 1);
}
