/* storefl-agent subcommands of the model: train (on this store alone), personalize (few-shot
 * adaptation of the head, cached in the store) and recommend (rank products for a basket/shopper). */
#ifndef STOREFL_CMD_MODEL_H
#define STOREFL_CMD_MODEL_H

int storefl_cmd_train(int argc, char **argv);
int storefl_cmd_personalize(int argc, char **argv);
int storefl_cmd_recommend(int argc, char **argv);

#endif
