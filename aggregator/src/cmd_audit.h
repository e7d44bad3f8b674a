/* `storefl-aggregator audit`: export and verify the signed privacy ledger (storefl/ledger.h). */
#ifndef STOREFL_CMD_AUDIT_H
#define STOREFL_CMD_AUDIT_H

/* argv[0] = "audit"; returns an exit status (storefl/cli.h). */
int storefl_cmd_audit(int argc, char **argv);

#endif
