/* storefl-aggregator serve: the CoAP/DTLS service (cmd_serve.c). */
#ifndef STOREFL_CMD_SERVE_H
#define STOREFL_CMD_SERVE_H

int storefl_cmd_serve(int argc, char **argv);

#endif
