/*
 * Helpers for the aggregator tests: a small model config in a temp dir, deterministic updates
 * encoded with the real codec, and an independent reference of the server step.
 */
#ifndef STOREFL_AGG_TESTUTIL_H
#define STOREFL_AGG_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storefl/agg_config.h"
#include "storefl/agg_service.h"
#include "storefl/codec.h"
#include "storefl/error.h"

#define TU_NT 3
static const storefl_accum_tensor TU_SPEC[TU_NT] = {
    {"item_emb", 2, {64, 16}}, {"mlp_w1", 2, {8, 12}}, {"bias", 1, {1}}};
static const size_t TU_NUMEL[TU_NT] = {1024, 96, 1};
#define TU_TOTAL (1024 + 96 + 1)

/* Makes a fresh temp dir and a config whose database lives in it. */
static inline void tu_config(storefl_agg_config *c, char *dir, size_t dircap) {
  snprintf(dir, dircap, "/tmp/storefl-aggtest-XXXXXX");
  if (!mkdtemp(dir))
    abort();
  storefl_agg_config_defaults(c);
  snprintf(c->db_path, sizeof c->db_path, "%s/agg.db", dir);
  c->n_tensors = TU_NT;
  memcpy(c->tensors, TU_SPEC, sizeof TU_SPEC);
  c->min_participants = 2;
  c->target_participants = 50;
  c->max_participants = 100;
  c->mode = STOREFL_PRIVACY_CENTRAL;
  c->noise_multiplier = 0; /* central mode without noise: no noise source needed */
  c->clip_norm = 1.0;
  c->weight_cap = 1000;
  c->server_lr = 0.5;
  c->total_rounds = 0;
  c->duration_ms = 60000;
  c->log_level = STOREFL_LOG_WARN;
}

static inline void tu_rmdir(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
}

static inline uint64_t tu_mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A deterministic update of store s for round r: values with L2 norm 0.9 (under C = 1). */
typedef struct tu_update {
  char store[32];
  uint64_t num_examples;
  storefl_dtype dtype;
  uint8_t *body;
  size_t len;
} tu_update;

static inline int tu_make_update(tu_update *u, int s, uint64_t round, uint64_t base_version,
                                 storefl_dtype dt) {
  static float vals[TU_TOTAL];
  static uint8_t packed[TU_TOTAL * 4];
  uint64_t seed = tu_mix((uint64_t)s * 1000003u + round);
  double ss = 0;
  for (size_t i = 0; i < TU_TOTAL; i++) {
    seed = tu_mix(seed);
    vals[i] = (float)((double)(seed >> 11) * 0x1.0p-53 - 0.5);
    ss += (double)vals[i] * vals[i];
  }
  float k = (float)(0.9 / sqrt(ss));
  for (size_t i = 0; i < TU_TOTAL; i++)
    vals[i] *= k;
  storefl_update_msg m;
  memset(&m, 0, sizeof m);
  snprintf(u->store, sizeof u->store, "store-%03d", s);
  u->num_examples = 1 + tu_mix(seed) % 1500; /* some above the weight cap of 1000 */
  u->dtype = dt;
  m.store_id.ptr = u->store;
  m.store_id.len = strlen(u->store);
  m.round = round;
  m.base_model_version = base_version;
  m.num_examples = u->num_examples;
  m.mode = STOREFL_PRIVACY_CENTRAL;
  m.clip_norm = 1.0;
  m.n_tensors = TU_NT;
  size_t off = 0, boff = 0, es = storefl_dtype_size(dt);
  for (int t = 0; t < TU_NT; t++) {
    storefl_tensor *x = &m.tensors[t];
    x->name.ptr = TU_SPEC[t].name;
    x->name.len = strlen(TU_SPEC[t].name);
    x->ndim = TU_SPEC[t].ndim;
    memcpy(x->shape, TU_SPEC[t].shape, sizeof x->shape);
    x->dtype = dt;
    x->scale = 1.0f;
    int rc = storefl_tensor_pack(dt, vals + off, TU_NUMEL[t], packed + boff, &x->scale);
    if (rc)
      return rc;
    x->data = packed + boff;
    x->nbytes = TU_NUMEL[t] * es;
    off += TU_NUMEL[t];
    boff += TU_NUMEL[t] * es;
  }
  size_t len = 0;
  int rc = storefl_update_encode(&m, NULL, 0, &len);
  if (rc)
    return rc;
  u->body = malloc(len);
  if (!u->body)
    return STOREFL_ERR_NOMEM;
  u->len = len;
  return storefl_update_encode(&m, u->body, len, &len);
}

/* Independent reference of one FedAvg round: decodes each update body with the codec, converts its
 * values to float, forms rint(x * w * 2^S) in long double and sums in __int128; then
 * theta' = (float)(theta + lr * sum / (W * 2^S)). */
static inline int tu_reference_round(float *theta, tu_update *const *ups, int n, uint64_t weight_cap,
                                     int scale_bits, double lr) {
  static __int128 sum[TU_TOTAL];
  static float x[TU_TOTAL];
  memset(sum, 0, sizeof sum);
  uint64_t W = 0;
  for (int j = 0; j < n; j++) {
    storefl_update_msg m;
    int rc = storefl_update_decode(ups[j]->body, ups[j]->len, ups[j]->len, &m);
    if (rc)
      return rc;
    uint64_t w = m.num_examples < weight_cap ? m.num_examples : weight_cap;
    W += w;
    size_t off = 0;
    for (uint32_t t = 0; t < m.n_tensors; t++) {
      const storefl_tensor *q = &m.tensors[t];
      if ((rc = storefl_tensor_to_f32(q, x + off, TU_NUMEL[t])))
        return rc;
      for (size_t i = 0; i < TU_NUMEL[t]; i++) {
        /* int8: the exact value q * scale (a float would round it) */
        long double v = q->dtype == STOREFL_DTYPE_I8 ? (long double)(int8_t)q->data[i] * (long double)q->scale
                                                     : (long double)x[off + i];
        sum[off + i] += (__int128)llrintl(v * (long double)w * ldexpl(1.0L, scale_bits));
      }
      off += TU_NUMEL[t];
    }
  }
  for (size_t i = 0; i < TU_TOTAL; i++)
    theta[i] = (float)((double)theta[i] + lr * ((double)(int64_t)sum[i] / ldexp((double)W, scale_bits)));
  return 0;
}

#endif
