/* storefl-agent subcommands that talk to the aggregator: sync (one exchange) and run (daemon). */
#ifndef STOREFL_CMD_NET_H
#define STOREFL_CMD_NET_H

int storefl_cmd_sync(int argc, char **argv);
int storefl_cmd_run(int argc, char **argv);

#endif
