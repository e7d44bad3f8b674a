/* storefl-aggregator: the central federated-averaging service. */
#include <stdio.h>
#include <string.h>

#include "cmd_rounds.h"
#include "cmd_serve.h"
#include "storefl/buildinfo.h"
#include "storefl/cli.h"

#include "cmd_audit.h"
#include "cmd_privacy.h"

static const char *const PROGRAM = "storefl-aggregator";

static int cmd_version(int argc, char **argv) {
  (void)argc;
  (void)argv;
  storefl_print_versions(stdout, PROGRAM);
  return STOREFL_EXIT_OK;
}

static const storefl_command COMMANDS[] = {
    {"version", "print the versions of storefl and the libraries it runs on", cmd_version},
    {"serve", "run the federated rounds over CoAP + DTLS", storefl_cmd_serve},
    {"rounds", "show the rounds and model versions of an aggregator database", storefl_cmd_rounds},
    {"audit", "export (JSON, CSV, HTML) and verify the signed privacy ledger", storefl_cmd_audit},
    {"privacy", "plan a campaign: epsilon for a noise level, or the noise for a target epsilon",
     storefl_cmd_privacy},
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
  fprintf(out, "NAME\n"
               "  storefl-aggregator - federated averaging of private store updates, with an audit ledger\n"
               "\n"
               "SYNOPSIS\n"
               "  storefl-aggregator [--version] [--help] COMMAND [ARGS...]\n"
               "  storefl-aggregator help COMMAND\n"
               "\n"
               "DESCRIPTION\n"
               "  Runs the federated averaging rounds. It serves the global model and round\n"
               "  announcements to store agents over CoAP + DTLS, authenticates each store by its DTLS\n"
               "  identity, validates and streams their clipped, differentially private updates into\n"
               "  an exact fixed-point accumulator, and keeps a signed, hash-chained privacy ledger\n"
               "  that compliance auditors can export and verify.\n"
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
               "  storefl-agent(1), README.md, protocol/PROTOCOL.md\n");
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
