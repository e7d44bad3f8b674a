/* `storefl-aggregator privacy`: campaign planning with the RDP accountant (shared/accountant.h). */
#ifndef STOREFL_CMD_PRIVACY_H
#define STOREFL_CMD_PRIVACY_H

/* argv[0] = "privacy"; returns an exit status (storefl/cli.h). */
int storefl_cmd_privacy(int argc, char **argv);

#endif
