/*
 * Model-based methods of the evaluation, on the wide-deep-v1 model and training API
 * (storefl/model.h, storefl/train.h):
 *
 *   local          each client trains its own model from the common initialisation on its own
 *                  training window only (what a store could do alone)
 *   central        one model trained on all clients' training windows pooled (the non-private
 *                  upper bound of the same architecture)
 *   federated      FedAvg simulated in-process: each round, clients_per_round clients (seeded
 *                  sample among those with training data) run storefl_local_update from the global
 *                  model; the global model moves by server_lr times the example-weighted mean delta
 *   federated+personal  the federated model, then storefl_personalize on each client's latest
 *                  training-window interactions (the head only; embeddings stay global)
 *
 * Training windows: every clean line of the client before the split's adapt_end (zero-shot: the
 * cut; few-shot: cut + 14 days). Nothing later is used for training; at scoring time the model sees
 * the client's history before the event and the basket, like every other method.
 *
 * Ownership: storefl_eval_models holds the catalogue and the clients' profiles, shared by the
 * methods built from it; it must outlive them. Methods own their models.
 */
#ifndef STOREFL_EVAL_MODELS_H
#define STOREFL_EVAL_MODELS_H
#include <stddef.h>
#include <stdint.h>

#include "eval_data.h"
#include "eval_run.h"
#include "storefl/model.h"
#include "storefl/train.h"

typedef struct storefl_eval_model_config {
  storefl_model_config model;
  storefl_train_config train; /* optimiser, batch, negatives, history, personalisation, FedAvg algo */
  uint32_t central_steps;     /* optimizer steps of the centralized model; default 3000 */
  uint32_t local_steps;       /* optimizer steps of each local-only model; default 100 */
  uint32_t rounds;            /* federated rounds; default 30 */
  uint32_t clients_per_round; /* default 100 (all clients if fewer have data) */
  uint32_t fed_local_steps;   /* local steps k per round and client; default 10 */
  float server_lr;            /* default 1.0 (plain FedAvg) */
  int32_t neg_recent_days;    /* > 0: negatives only among products launched at most this many
                                 days before the training window ends (the eval ranks new
                                 products); 0 = the whole catalogue (default) */
  uint64_t seed;              /* model init and sampling; default 1 */
} storefl_eval_model_config;

void storefl_eval_model_config_default(storefl_eval_model_config *c);

/* Applies keys of the INI section `section` (e.g. "eval") on top of *c. Keys: buckets, dim, hidden,
 * optimizer (sgd|adam), lr, batch, negatives, history, max_basket, algo (fedavg|fomaml),
 * central_steps, local_steps, rounds, clients_per_round, fed_local_steps, server_lr,
 * personal_steps, personal_last, personal_lr, neg_recent_days, seed. Errors: STOREFL_ERR_IO,
 * STOREFL_ERR_INVALID (unknown key or bad value; err names the line). */
int storefl_eval_model_config_load_ini(const char *path, const char *section, storefl_eval_model_config *c,
                                       char *err, size_t errlen);

typedef struct storefl_eval_models storefl_eval_models;

/* Builds the catalogue (every product of d, catalogue index = data product index) and one profile
 * per split client. Errors: STOREFL_ERR_INVALID (config), STOREFL_ERR_NOMEM. */
int storefl_eval_models_create(const storefl_eval_data *d, const storefl_eval_split *s,
                               const storefl_eval_model_config *cfg, storefl_eval_models **out);
void storefl_eval_models_free(storefl_eval_models *mc);

typedef enum storefl_eval_model_kind {
  STOREFL_EVAL_LOCAL = 0,
  STOREFL_EVAL_CENTRAL,
  STOREFL_EVAL_FEDERATED,
  STOREFL_EVAL_FEDERATED_PERSONAL,
} storefl_eval_model_kind;

/* Creates the method, training what it needs up front (central, federated; the federated model
 * is trained once and shared by federated and federated+personal). Local-only and personalised
 * models are trained per client when its events come (begin_client). */
int storefl_eval_method_model(storefl_eval_models *mc, storefl_eval_model_kind kind, storefl_eval_method *m);

/* A method scoring with `global`, a model trained elsewhere (e.g. received from the aggregator),
 * as is (personal = 0) or personalised per client like federated+personal (personal = 1). global
 * must have mc's model config (STOREFL_ERR_INVALID otherwise) and must outlive the method when
 * personal = 1 (it is adapted per client); the method scores with its own copy. */
int storefl_eval_method_given(storefl_eval_models *mc, const storefl_model *global, int personal,
                              storefl_eval_method *out);

/* Progress of the up-front training (rounds, steps), e.g. for a terminal. */
void storefl_eval_models_set_progress(storefl_eval_models *mc, storefl_eval_progress progress, void *arg);

/* Training time spent in storefl_eval_method_model (seconds) and steps, for the report. */
double storefl_eval_models_train_seconds(const storefl_eval_models *mc);

#endif
