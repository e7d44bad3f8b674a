/*
 * Training of the wide-deep-v1 model (storefl/model.h) on clients' profiles (storefl/features.h):
 * batched loss and gradient, local training, the local federated step (FedAvg/Reptile or first-order
 * MAML) and few-shot personalisation.
 *
 * Examples. Every profile event whose time lies in [t_begin, t_end) is a positive: its context is the
 * rest of its basket (up to max_basket items) and the client's last `history` events before the
 * basket's time. Each positive gets `negatives` items drawn uniformly (seeded PRNG) from the negative
 * pool (default: the whole catalogue) among products already launched at that time and different
 * from the positive. Loss = mean binary cross-entropy over positives and negatives.
 *
 * Determinism: for a given model, data, config and seed, results are bit-identical across runs on the
 * same machine and OpenBLAS build (set OPENBLAS_NUM_THREADS=1 for bit-identity across thread counts).
 */
#ifndef STOREFL_TRAIN_H
#define STOREFL_TRAIN_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/features.h"
#include "storefl/model.h"
#include "storefl/optim.h"

typedef enum storefl_fed_algo {
  STOREFL_FED_FEDAVG = 1, /* k local steps, delta = theta_local - theta_global (Reptile / FedAvg) */
  STOREFL_FED_FOMAML = 2, /* first-order MAML: adapt on support, step on the query gradient */
} storefl_fed_algo;

typedef struct storefl_train_config {
  storefl_optim_config optim; /* default Adam, lr 0.005 */
  uint32_t batch;             /* positives per step; default 32 */
  uint32_t negatives;         /* sampled negatives per positive; default 4 */
  uint32_t steps;             /* local steps k; default 50 */
  uint32_t history;           /* history events in a context; default 32 */
  uint32_t max_basket;        /* basket items in a context; default 16 */
  uint64_t seed;              /* PRNG seed for sampling; default 1 */
  const uint32_t *neg_pool;   /* negatives drawn from these catalogue indices; NULL = all */
  size_t n_neg_pool;
  /* Local federated step */
  storefl_fed_algo algo; /* default FEDAVG */
  float support_frac;    /* FOMAML: earliest fraction of examples forming the support set; 0.5 */
  uint32_t inner_steps;  /* FOMAML: adaptation steps on the support set per meta-step; 3 */
  float inner_lr;        /* FOMAML: SGD step of the adaptation; 0.05 */
  /* Personalisation */
  uint32_t personal_steps; /* steps on the latest events; default 20 */
  uint32_t personal_last;  /* how many latest events; default 256 */
  float personal_lr;       /* Adam lr of the head; default 0.005 */
} storefl_train_config;

void storefl_train_config_default(storefl_train_config *cfg);

/* A training data source: profiles of one or more clients (several = pooled, e.g. the centralized
 * upper bound), with the time window of the events that serve as positives. */
typedef struct storefl_train_data {
  const storefl_catalog *catalog;
  const storefl_profile *const *profiles;
  size_t n_profiles;
  int64_t t_begin, t_end; /* positives: events with t_begin <= time < t_end */
} storefl_train_data;

/* Number of positives in the window over all profiles. */
size_t storefl_train_count(const storefl_train_data *data);

typedef struct storefl_train_stats {
  size_t examples;   /* positives available */
  size_t steps;      /* optimizer steps taken */
  double first_loss; /* mean BCE of the first step */
  double last_loss;  /* mean BCE of the last step */
} storefl_train_stats;

/* One explicit example for the low-level API: event `event` of profile `profile` as positive, with
 * the given negatives. */
typedef struct storefl_example {
  uint32_t profile;
  uint32_t event;
  const uint32_t *negatives;
  uint32_t n_negatives;
} storefl_example;

typedef struct storefl_trainer storefl_trainer;

/* A trainer owns the scratch buffers, the gradient and the optimizer state for one model config.
 * Errors: STOREFL_ERR_INVALID (config), STOREFL_ERR_NOMEM. */
int storefl_trainer_create(const storefl_model_config *mcfg, const storefl_train_config *cfg,
                           storefl_trainer **out);
void storefl_trainer_free(storefl_trainer *t);

/* Mean BCE of the examples at m and its gradient (into the trainer's gradient model, returned in
 * *grad with the touched item_emb rows in *rows; both valid until the next call on t). grad may be
 * NULL to compute the loss only. This is what the gradient check tests against finite differences. */
int storefl_trainer_loss_grad(storefl_trainer *t, const storefl_model *m, const storefl_train_data *data,
                              const storefl_example *ex, size_t n, double *loss, const storefl_model **grad,
                              storefl_rows *rows);

/* Trains m in place for `steps` optimizer steps over the window (epochs of a seeded shuffle; 0 steps
 * or no example is a no-op). The optimizer state persists across calls until storefl_trainer_reset.
 * stats may be NULL. Errors: STOREFL_ERR_INVALID, STOREFL_ERR_NOMEM, STOREFL_ERR_NONFINITE. */
int storefl_trainer_train(storefl_trainer *t, storefl_model *m, const storefl_train_data *data,
                          uint32_t steps, storefl_train_stats *stats);
/* Forgets optimizer moments and restarts the PRNG from the config's seed. */
void storefl_trainer_reset(storefl_trainer *t);

/* Local federated step: from `global`, trains a copy on the client's data and writes
 * delta = theta_local - theta_global into `delta` (same config). FEDAVG: cfg->steps optimizer steps
 * on all positives. FOMAML: cfg->steps meta-steps; each adapts a copy with inner_steps SGD steps on
 * the support set (earliest support_frac of the positives by time), takes the gradient of the query
 * loss at the adapted weights and applies it (first-order) with the optimizer to the local weights.
 * *n_examples (if not NULL) gets the positives count, the FedAvg weight. A client without examples
 * gets a zero delta. Errors: as storefl_trainer_train. */
int storefl_local_update(const storefl_model *global, const storefl_train_data *data,
                         const storefl_train_config *cfg, storefl_model *delta, size_t *n_examples);

/* Few-shot personalisation: `out` = global with its head (mlp, wide, bias) adapted by
 * cfg->personal_steps Adam steps on the client's latest cfg->personal_last positives in the window
 * (first sales of new products included). The embeddings stay global, so the result is carried by
 * storefl_head_to_blob(). out must have global's config. */
int storefl_personalize(const storefl_model *global, const storefl_train_data *data,
                        const storefl_train_config *cfg, storefl_model *out);

/* Applies the keys of INI section `section` (e.g. "model" of agent.ini) on top of *mc and *tc (either
 * may be NULL to ignore its keys); other sections are ignored, an absent section changes nothing.
 * Keys: buckets, dim, hidden (model); optimizer = adam|sgd, lr, beta1, beta2, clip, batch, negatives,
 * steps, history, max_basket, seed, algo = fedavg|fomaml, support_frac, inner_steps, inner_lr,
 * personal_steps, personal_last, personal_lr (training). The result is validated as a whole.
 * Errors: STOREFL_ERR_IO (cannot open), STOREFL_ERR_INVALID (syntax, unknown key, bad value, or an
 * invalid combination; err names the line or the problem). err may be NULL. */
int storefl_train_config_load_ini(const char *path, const char *section, storefl_model_config *mc,
                                  storefl_train_config *tc, char *err, size_t errlen);

#endif
