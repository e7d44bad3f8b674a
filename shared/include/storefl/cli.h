/*
 * Subcommand dispatch shared by storefl-agent and storefl-aggregator.
 *
 * Each subcommand is a function taking (argc, argv) with argv[0] the subcommand name; it returns
 * the process exit status (0 ok, 1 failure, 2 usage error) and prints its own errors to stderr.
 */
#ifndef STOREFL_CLI_H
#define STOREFL_CLI_H
#include <stdio.h>

typedef struct storefl_command {
  const char *name;
  const char *summary; /* one line for the command list */
  int (*run)(int argc, char **argv);
} storefl_command;

/* Exit statuses, as sysexits-like conventions users can script against. */
enum { STOREFL_EXIT_OK = 0, STOREFL_EXIT_FAIL = 1, STOREFL_EXIT_USAGE = 2 };

/* Finds the command named argv[0] in the NULL-terminated table and runs it. Handles
 * "help CMD" by running CMD --help. Unknown commands print a hint and return STOREFL_EXIT_USAGE. */
int storefl_cli_dispatch(const char *program, const storefl_command *commands, int argc, char **argv);

/* Prints the command list (name and summary), used in --help texts. */
void storefl_cli_print_commands(FILE *out, const storefl_command *commands);

#endif
