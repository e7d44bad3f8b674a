/* `storefl-agent budget`: the store's own privacy spend, from its local ledger. */
#ifndef STOREFL_CMD_BUDGET_H
#define STOREFL_CMD_BUDGET_H

/* argv[0] = "budget"; returns an exit status (storefl/cli.h). */
int storefl_cmd_budget(int argc, char **argv);

#endif
