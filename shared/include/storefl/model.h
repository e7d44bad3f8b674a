/*
 * The default storefl model, "wide-deep-v1" (docs/model.md, DESIGN.md "The model").
 *
 *   item vector   v = mean of item_emb rows of the product's hashed tokens           (d)
 *   context       u = mean of the item vectors of history + basket
 *                     + hour_emb[hour] + wday_emb[weekday]  (UTC)                      (d)
 *   MLP input     x = [u, v, u*v, wide]                                                (3d + W)
 *   logit         z = w2 . relu(W1 x + b1) + wide_w . wide + bias
 *   score         sigmoid(z)
 *
 * Parameters are named float32 tensors in one contiguous block, in this order:
 *   item_emb [B, d]  hour_emb [24, d]  wday_emb [7, d]  mlp_w1 [H, 3d+W]  mlp_b1 [H]
 *   mlp_w2 [H]  wide_w [W]  bias [1]
 * so a model or an update maps one-to-one to the wire's storefl_tensor list
 * (protocol/include/storefl/model_wire.h converts), and whole-model arithmetic is one saxpy.
 *
 * Ownership: storefl_model_create() allocates; storefl_model_free() releases. Parameter pointers
 * point into the model's block and live as long as the model.
 */
#ifndef STOREFL_MODEL_H
#define STOREFL_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/features.h"

#define STOREFL_MODEL_ARCH "wide-deep-v1"
#define STOREFL_MODEL_DIGEST_LEN 32

enum {
  STOREFL_P_ITEM_EMB = 0,
  STOREFL_P_HOUR_EMB,
  STOREFL_P_WDAY_EMB,
  STOREFL_P_W1,
  STOREFL_P_B1,
  STOREFL_P_W2,
  STOREFL_P_WIDE,
  STOREFL_P_BIAS,
  STOREFL_MODEL_NPARAMS
};

typedef struct storefl_model_config {
  uint32_t buckets; /* B: hash buckets, power of two; default 16384 */
  uint32_t dim;     /* d: embedding width; default 32 */
  uint32_t hidden;  /* H: MLP width; default 64 */
} storefl_model_config;

/* One named tensor of the model (rank 1 or 2). */
typedef struct storefl_param {
  const char *name;
  uint32_t ndim;
  uint64_t shape[2];
  size_t numel;
  float *data;
} storefl_param;

typedef struct storefl_model {
  storefl_model_config cfg;
  storefl_param params[STOREFL_MODEL_NPARAMS];
  float *block; /* all parameters, contiguous, in the order above */
  size_t numel; /* total floats */
} storefl_model;

void storefl_model_config_default(storefl_model_config *cfg);
/* Checks ranges: buckets power of two in [16, 2^24], dim in [1, 1024], hidden in [1, 4096]. */
int storefl_model_config_check(const storefl_model_config *cfg);

/* Allocates a zeroed model. Errors: STOREFL_ERR_INVALID (config), STOREFL_ERR_NOMEM. */
int storefl_model_create(const storefl_model_config *cfg, storefl_model **out);
void storefl_model_free(storefl_model *m);
/* Deterministic initialisation from a seed (small Gaussian embeddings, He-scaled W1, zero biases). */
void storefl_model_init(storefl_model *m, uint64_t seed);
/* Allocates a copy. */
int storefl_model_clone(const storefl_model *src, storefl_model **out);
/* dst = src; STOREFL_ERR_INVALID if the configs differ. */
int storefl_model_copy(storefl_model *dst, const storefl_model *src);
/* y += alpha * x over every parameter (FedAvg: apply a weighted delta). Errors: config mismatch. */
int storefl_model_axpy(storefl_model *y, float alpha, const storefl_model *x);
/* out = a - b (an update delta). All three must share the config. */
int storefl_model_sub(storefl_model *out, const storefl_model *a, const storefl_model *b);
void storefl_model_zero(storefl_model *m);
void storefl_model_scale(storefl_model *m, float alpha);
/* L2 norm over all parameters (double accumulation). */
double storefl_model_l2norm(const storefl_model *m);
/* 1 if every parameter is finite. */
int storefl_model_all_finite(const storefl_model *m);
/* Index of the parameter named name (NUL-terminated or len bytes), or -1. */
int storefl_model_param_index(const char *name, size_t len);

/* The model digest (named apart from codec.h's storefl_model_digest over a tensor list, which gives
 * the same bytes for the same model): SHA-256 over, for each tensor in order: u32 LE name length, name bytes,
 * u32 LE ndim, each dim as u64 LE, then the float32 values little-endian. Errors: STOREFL_ERR_CRYPTO. */
int storefl_model_sha256(const storefl_model *m, uint8_t out[STOREFL_MODEL_DIGEST_LEN]);

/* Scores candidates (catalogue indices) for a query: scores[i] = logit of candidate i (higher is
 * better; apply a sigmoid for a probability). The catalogue must be finalized and hash into the
 * model's bucket count. Work is O(n * (3d+W) * H) via sgemm, memory O(min(n, 256) * (3d+W)).
 * Errors: STOREFL_ERR_INVALID (bucket mismatch, index out of range, history or basket over 4096),
 * STOREFL_ERR_NOMEM. */
int storefl_model_score(const storefl_model *m, const storefl_catalog *c, const storefl_query *q,
                        const uint32_t *cands, size_t n, float *scores);

/* Top-k ranking: writes the k (or fewer if n < k) best candidates and their logits to out_items /
 * out_scores in decreasing score, ties broken by lower catalogue index. Returns the count or a
 * negative storefl_err. */
int storefl_model_rank(const storefl_model *m, const storefl_catalog *c, const storefl_query *q,
                       const uint32_t *cands, size_t n, size_t k, uint32_t *out_items, float *out_scores);

/* The personalised head: mlp_w1, mlp_b1, mlp_w2, wide_w, bias (the embeddings stay global).
 * Blob layout (little-endian): "SFLH" magic, u32 version (1), u32 dim, u32 hidden, u32 wide,
 * 32-byte digest of the base model the head was adapted from, then the head tensors' float32
 * values in the order above. The agent caches it (e.g. in SQLite) next to the model version. */
size_t storefl_head_blob_size(const storefl_model_config *cfg);
/* Writes the head of m (adapted from a base model with digest base_digest) into buf (cap bytes).
 * Errors: STOREFL_ERR_TOO_LARGE (cap too small). */
int storefl_head_to_blob(const storefl_model *m, const uint8_t base_digest[STOREFL_MODEL_DIGEST_LEN],
                         uint8_t *buf, size_t cap, size_t *len);
/* Replaces the head of m with the blob's. If base_digest is not NULL the blob must have been adapted
 * from that base model, else STOREFL_ERR_CONFLICT (a stale cache). Errors: STOREFL_ERR_FORMAT (bad
 * magic/version/shapes/size), STOREFL_ERR_NONFINITE, STOREFL_ERR_CONFLICT. m is unchanged on error. */
int storefl_head_from_blob(storefl_model *m, const uint8_t *blob, size_t len,
                           const uint8_t base_digest[STOREFL_MODEL_DIGEST_LEN]);

#endif
