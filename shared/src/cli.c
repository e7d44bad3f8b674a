#include "storefl/cli.h"

#include <string.h>

int storefl_cli_dispatch(const char *program, const storefl_command *commands, int argc, char **argv) {
  if (argc < 1)
    return STOREFL_EXIT_USAGE;
  if (strcmp(argv[0], "help") == 0 && argc >= 2) {
    char help[] = "--help";
    char *sub[] = {argv[1], help, NULL};
    return storefl_cli_dispatch(program, commands, 2, sub);
  }
  for (const storefl_command *c = commands; c->name; c++)
    if (strcmp(c->name, argv[0]) == 0)
      return c->run(argc, argv);
  fprintf(stderr, "%s: unknown command '%s'; see '%s --help'\n", program, argv[0], program);
  return STOREFL_EXIT_USAGE;
}

void storefl_cli_print_commands(FILE *out, const storefl_command *commands) {
  for (const storefl_command *c = commands; c->name; c++)
    fprintf(out, "  %-12s %s\n", c->name, c->summary);
}

volatile sig_atomic_t storefl_cli_stop;

static void on_stop_signal(int sig) {
  (void)sig;
  storefl_cli_stop = 1;
}

int storefl_cli_catch_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
      sigaction(SIGTERM, &sa, NULL) != 0)
    return -1;
  return 0;
}
