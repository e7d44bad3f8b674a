/* storefl-agent simulate: many stores' agents in one process against a real aggregator (the scale
 * campaign; see --help and docs/demo.md). */
#ifndef STOREFL_CMD_SIMULATE_H
#define STOREFL_CMD_SIMULATE_H

int storefl_cmd_simulate(int argc, char **argv);

#endif
