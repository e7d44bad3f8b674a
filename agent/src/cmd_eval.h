/* storefl-agent eval: offline evaluation of new-product ranking on a retailer export. */
#ifndef STOREFL_CMD_EVAL_H
#define STOREFL_CMD_EVAL_H

int storefl_cmd_eval(int argc, char **argv);

#endif
