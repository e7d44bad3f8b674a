/*
 * Aggregator configuration (INI, libinih). Every key, its default and meaning: docs/aggregator.md;
 * example: configs/aggregator.ini.
 *
 * Sections read here: [storage], [model], [round], [privacy], [ledger], [aggregation], [log]. Keys in those
 * sections that are not known are errors (a typo must not silently fall back to a default). Other
 * sections (e.g. [server], [dtls] of the transport) are left to their owners and ignored here.
 */
#ifndef STOREFL_AGG_CONFIG_H
#define STOREFL_AGG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/accum.h"
#include "storefl/log.h"
#include "storefl/messages.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STOREFL_AGG_PATH_MAX 1024

typedef enum storefl_agg_on_short {
  STOREFL_AGG_EXTEND = 1,  /* deadline reached below min participants: extend the deadline */
  STOREFL_AGG_ABANDON = 2, /* ... abandon the round (nothing applied), open the next one */
} storefl_agg_on_short;

typedef enum storefl_agg_optimizer {
  STOREFL_AGG_FEDAVG = 1, /* theta += server_lr * mean(delta) */
  STOREFL_AGG_FEDADAM = 2 /* Reddi et al. 2021, "Adaptive Federated Optimization" */
} storefl_agg_optimizer;

typedef struct storefl_agg_config {
  /* [storage] */
  char db_path[STOREFL_AGG_PATH_MAX]; /* SQLite file (WAL, synchronous=FULL) */
  uint32_t keep_models;               /* model versions kept (>= 1); older ones pruned at close */
  /* [model] initial model when the database has none. With arch = wide-deep-v1 and no `tensor` lines,
   * the model module's architecture (buckets/dim/hidden) and initializer (storefl_model_init) are used;
   * with `tensor` lines, those shapes and uniform(-init_scale, init_scale) weights. */
  char arch[STOREFL_MAX_ID_LEN + 1];
  uint32_t n_tensors;
  storefl_accum_tensor tensors[STOREFL_MAX_TENSORS];
  uint64_t init_seed;
  double init_scale;
  uint32_t model_buckets, model_dim, model_hidden; /* wide-deep-v1 sizes; 0 = the model's default */
  int init_from_model; /* set by storefl_agg_config_resolve_model(): tensors came from the model module */
  /* [round] */
  uint32_t min_participants, target_participants;
  uint32_t max_participants; /* hard cap of accepted updates per round (bounds the accumulator range) */
  int64_t duration_ms;       /* deadline = opened + duration */
  double participation_q;    /* < 1 claims amplification: the round closes on its deadline only */
  storefl_agg_on_short on_short;
  uint32_t max_extensions; /* with EXTEND: after this many, abandon */
  uint64_t total_rounds;   /* 0 = no limit; after the last one the state is IDLE */
  uint32_t local_steps;
  double local_lr;
  storefl_dtype upload_dtype;
  uint64_t max_upload_bytes;
  /* [privacy] */
  storefl_privacy_mode mode;
  double clip_norm;        /* C */
  double noise_multiplier; /* sigma */
  double delta;
  double clip_tolerance; /* relative slack on C for quantization error (e.g. 0.01) */
  /* Local mode: grid 2^-local_scale_bits of the agents' noised releases, announced in the round
   * message; 0 = auto (storefl_agg_config_local_scale_bits). */
  uint32_t local_scale_bits;
  /* [ledger] - the one ledger configuration (key, cap, enrolment). The former [privacy] signing_key
   * and epsilon_cap are refused with a message naming these keys. */
  char signing_key[STOREFL_AGG_PATH_MAX]; /* [ledger] key: ECDSA P-256 PEM, 0600; empty = no ledger */
  double epsilon_cap;                     /* [ledger] epsilon_cap: per-store cap at delta; 0 = none */
  char enrolment[STOREFL_AGG_PATH_MAX];   /* [ledger] enrolment: store ids file (storefl/enrolment.h) */
  /* [aggregation] */
  uint64_t weight_cap; /* per-store weight = min(num_examples, weight_cap) */
  int scale_bits;      /* fixed-point grid 2^-scale_bits */
  storefl_agg_optimizer optimizer;
  double server_lr;
  double adam_beta1, adam_beta2, adam_tau;
  /* [log] */
  storefl_log_level log_level;
} storefl_agg_config;

/* Fills every field with its documented default (the model spec is empty: it must be configured). */
void storefl_agg_config_defaults(storefl_agg_config *cfg);

/* Every section of the aggregator INI: the service's (this loader) and the transport's ([server],
 * [dtls], read by `serve`). NULL-terminated. A section outside it is an error (storefl/ini_check.h). */
extern const char *const storefl_agg_ini_sections[];

/* Reads path over the defaults already in cfg and validates the result. On error writes a message
 * naming the file, line, section and key into err (if errlen > 0): a section outside
 * storefl_agg_ini_sections or an unknown key in a service section is an error.
 * STOREFL_ERR_IO (cannot read), STOREFL_ERR_INVALID. */
int storefl_agg_config_load(const char *path, storefl_agg_config *cfg, char *err, size_t errlen);

/* Same from an in-memory INI text (tests). */
int storefl_agg_config_load_string(const char *text, storefl_agg_config *cfg, char *err, size_t errlen);

/* With arch = wide-deep-v1 and no tensor lines, fills the tensor list from the model module
 * (storefl/model.h) and sets init_from_model. Called by the loaders and by storefl_agg_open.
 * STOREFL_ERR_INVALID for bad sizes. */
int storefl_agg_config_resolve_model(storefl_agg_config *cfg, char *err, size_t errlen);

/* The per-round parameters of cfg ([round], [privacy], [aggregation] keys except total_rounds) as INI
 * text that storefl_agg_config_load_string() reads back exactly (doubles with 17 digits). A round keeps
 * the parameters it opened with across restarts; edited ones apply from the next round.
 * STOREFL_ERR_TOO_LARGE if cap is too small. */
int storefl_agg_config_round_params(const storefl_agg_config *cfg, char *buf, size_t cap);

/* Checks ranges and consistency (min <= target <= max participants, grid range cannot overflow for
 * the largest acceptable update, ...). STOREFL_ERR_INVALID with a message. */
int storefl_agg_config_validate(const storefl_agg_config *cfg, char *err, size_t errlen);

/* Largest L2 norm an update may have in this configuration: C*(1+tol) in central mode; in local mode
 * C*(1+tol) + sigma*C*(sqrt(d)+10), a bound the agent's Gaussian noise exceeds with probability
 * below exp(-50) (concentration of the chi distribution). d = number of coordinates. */
double storefl_agg_config_norm_bound(const storefl_agg_config *cfg, uint64_t d);

/* The grid (scale bits b, step 2^-b) announced for local-mode releases. Configured, or auto: the b
 * (at most the accumulator's scale_bits, so that the accumulator sums the released values exactly)
 * that puts the agent's noise s = sigma*C*2^b in [16, 32) grid units for i8 uploads (int8 = the grid
 * integer, saturating beyond 4 s), [64, 128) for f16 (exact below 2048) and [2^16, 2^17) for f32
 * (exact below 2^24). Without noise the same rule with sigma = 1/16. Always in [1, scale_bits]. */
uint32_t storefl_agg_config_local_scale_bits(const storefl_agg_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
