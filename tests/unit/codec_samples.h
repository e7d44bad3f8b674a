/*
 * Sample protocol messages shared by the codec unit tests, the interop writer (tests/interop) and
 * the fuzz seed generator. Values are chosen to hit edge cases: negative zero, float16 subnormals
 * and the largest finite float16, an empty tensor (a zero dimension), a rank-0 tensor, int8 -128,
 * negative timestamps, non-ASCII UTF-8 text. Storage is static per translation unit; each sample_*
 * call rebuilds it.
 */
#ifndef STOREFL_CODEC_SAMPLES_H
#define STOREFL_CODEC_SAMPLES_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/error.h"

#define SAMPLE_STR(s) ((storefl_str){(s), sizeof(s) - 1})

/* Tensor values (float): w is 2x3, b is 3, e is 0x4 (empty), s is a scalar. */
static const float sample_w[6] = {1.5f,
                                  -0.0f,
                                  65504.0f,
                                  5.9604644775390625e-08f /* 2^-24 */,
                                  -6.097555160522461e-05f /* largest f16 subnormal, negated */,
                                  0.333251953125f};
static const float sample_b[3] = {0.0f, -2.0f, 1024.0f};
static const float sample_s[1] = {-7.25f};

static uint8_t sample_storage[4][64];
static storefl_str sample_participants[3];
static storefl_store_epsilon sample_epsilons[3];
static const uint8_t sample_sig[8] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02};

static inline void sample_fill_tensor(storefl_tensor *t, int slot, const char *name, uint32_t ndim,
                                      const uint64_t *shape, storefl_dtype dt, const float *vals, size_t n) {
  memset(t, 0, sizeof *t);
  t->name.ptr = name;
  t->name.len = strlen(name);
  t->ndim = ndim;
  for (uint32_t i = 0; i < ndim; i++)
    t->shape[i] = shape[i];
  t->dtype = dt;
  float scale = 0;
  if (storefl_tensor_pack(dt, vals, n, sample_storage[slot], &scale) != STOREFL_OK)
    abort();
  if (dt == STOREFL_DTYPE_I8) {
    t->scale = scale;
    if (slot == 0)
      sample_storage[0][1] = 0x80; /* -128: legal on the wire though the quantizer never makes it */
  }
  t->data = n ? sample_storage[slot] : NULL;
  t->nbytes = n * storefl_dtype_size(dt);
}

/* Four tensors: w (2x3), b (3), e (0x4, empty), s (rank 0). */
static inline uint32_t sample_tensors(storefl_tensor *ts, storefl_dtype dt) {
  static const uint64_t sw[2] = {2, 3}, sb[1] = {3}, se[2] = {0, 4};
  sample_fill_tensor(&ts[0], 0, "dense/w", 2, sw, dt, sample_w, 6);
  sample_fill_tensor(&ts[1], 1, "dense/b", 1, sb, dt, sample_b, 3);
  sample_fill_tensor(&ts[2], 2, "emb\xc3\xa9/empty", 2, se, dt, NULL, 0);
  sample_fill_tensor(&ts[3], 3, "s", 0, NULL, dt, sample_s, 1);
  return 4;
}

static inline void sample_digest(uint8_t *d, uint8_t seed) {
  for (int i = 0; i < STOREFL_DIGEST_LEN; i++)
    d[i] = (uint8_t)(seed + 7 * i);
}

static inline void sample_model(storefl_model_msg *m, storefl_dtype dt) {
  memset(m, 0, sizeof *m);
  m->model_version = 42;
  sample_digest(m->digest, 1);
  m->arch = SAMPLE_STR("wide-deep-v1");
  m->n_tensors = sample_tensors(m->tensors, dt);
}

static inline void sample_round(storefl_round_msg *m) {
  memset(m, 0, sizeof *m);
  m->round = 7;
  m->state = STOREFL_ROUND_OPEN;
  m->model_version = 42;
  sample_digest(m->model_digest, 2);
  m->deadline_unix_ms = 1795000000123;
  m->participation_q = 0.25;
  m->mode = STOREFL_PRIVACY_CENTRAL;
  m->clip_norm = 1.0;
  m->noise_multiplier = 1.1;
  m->delta = 1e-5;
  m->min_participants = 3;
  m->target_participants = 100;
  m->local_steps = 20;
  m->local_lr = 0.05;
  m->upload_dtype = STOREFL_DTYPE_I8;
  m->max_upload_bytes = (uint64_t)8 << 20;
  m->scale_bits = 12;
}

static inline void sample_update(storefl_update_msg *m, storefl_dtype dt) {
  memset(m, 0, sizeof *m);
  m->store_id = SAMPLE_STR("store-0042.eu_west");
  m->round = 7;
  m->base_model_version = 42;
  m->num_examples = 12345;
  m->mode = STOREFL_PRIVACY_LOCAL;
  m->clip_norm = 0.5;
  m->noise_multiplier = 0.8;
  m->n_tensors = sample_tensors(m->tensors, dt);
}

static inline void sample_receipt(storefl_receipt_msg *m) {
  memset(m, 0, sizeof *m);
  m->store_id = SAMPLE_STR("S1");
  m->round = 7;
  sample_digest(m->update_digest, 3);
  m->accepted_unix_ms = -1; /* negative int path */
  m->participants_so_far = 5;
  m->duplicate = 1;
}

static inline void sample_error(storefl_error_msg *m) {
  memset(m, 0, sizeof *m);
  m->coap_code = 503;
  m->reason = SAMPLE_STR("unavailable");
  m->detail = SAMPLE_STR("disk full \xe2\x80\x94 retry later");
  m->max_age_s = 30;
}

static inline void sample_status(storefl_status_msg *m) {
  memset(m, 0, sizeof *m);
  m->round = 7;
  m->state = STOREFL_ROUND_CLOSED;
  m->model_version = 43;
  m->participants_so_far = 100;
  m->sessions = 250;
  m->health = SAMPLE_STR("ok");
}

static inline void sample_ledger(storefl_ledger_entry *e) {
  memset(e, 0, sizeof *e);
  e->index = 3;
  e->round = 7;
  e->mode = STOREFL_PRIVACY_CENTRAL;
  e->participation_q = 0.25;
  e->noise_multiplier = 1.1;
  e->clip_norm = 1.0;
  e->delta = 1e-5;
  e->closed_unix_ms = 1795000000999;
  sample_digest(e->model_digest, 4);
  sample_digest(e->prev_hash, 5);
  sample_participants[0] = SAMPLE_STR("S1");
  sample_participants[1] = SAMPLE_STR("S10");
  sample_participants[2] = SAMPLE_STR("S2");
  e->n_participants = 3;
  e->participants = sample_participants;
  sample_epsilons[0] = (storefl_store_epsilon){SAMPLE_STR("S1"), 0.5};
  sample_epsilons[1] = (storefl_store_epsilon){SAMPLE_STR("S10"), 0.0};
  sample_epsilons[2] = (storefl_store_epsilon){SAMPLE_STR("S3"), 3.75};
  e->n_epsilons = 3;
  e->epsilons = sample_epsilons;
  sample_digest(e->entry_hash, 6);
  e->signature = sample_sig;
  e->signature_len = sizeof sample_sig;
}

#endif
