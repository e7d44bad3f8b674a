/* `storefl-aggregator rounds`: the round history and model versions of an aggregator database. */
#ifndef STOREFL_CMD_ROUNDS_H
#define STOREFL_CMD_ROUNDS_H

/* argv[0] is "rounds". Returns an exit status (0 ok, 1 failure, 2 usage). */
int storefl_cmd_rounds(int argc, char **argv);

#endif
