/*
 * Subcommand dispatch shared by storefl-agent and storefl-aggregator.
 *
 * Each subcommand is a function taking (argc, argv) with argv[0] the subcommand name; it returns
 * the process exit status (0 ok, 1 failure, 2 usage error) and prints its own errors to stderr.
 */
#ifndef STOREFL_CLI_H
#define STOREFL_CLI_H
#include <signal.h>
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

/* Set to 1 by SIGINT or SIGTERM once storefl_cli_catch_stop_signals() has run. Long-running commands
 * (serve, run, simulate, campaign watch) poll it and stop cleanly: the signal only sets the flag, so
 * no write is interrupted half-way. */
extern volatile sig_atomic_t storefl_cli_stop;

/* Installs the handler that sets storefl_cli_stop for SIGINT and SIGTERM. Returns 0, or -1 with errno
 * set if sigaction failed (callers report it: the command then stops only by SIGKILL, which the
 * stores and the aggregator survive, but not cleanly). */
int storefl_cli_catch_stop_signals(void);

#endif
