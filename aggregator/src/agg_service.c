/* The aggregator's service logic: rounds, validation, accumulation, durability (storefl/agg_service.h). */
#include "storefl/agg_service.h"

#include <math.h>
#include <mbedtls/sha256.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agg_db.h"
#include "storefl/accum.h"
#include "storefl/codec.h"
#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/ledger.h"
#include "storefl/log.h"
#include "storefl/model.h"
#include "storefl/rng.h"

#define COMP "aggregator"

/* A reference-counted response body (the encoded model is shared by concurrent Block2 transfers). */
typedef struct agg_blob {
  atomic_int refs;
  size_t len;
  uint8_t data[];
} agg_blob;

static agg_blob *blob_new(size_t len) {
  agg_blob *b = malloc(sizeof *b + (len ? len : 1));
  if (b) {
    atomic_init(&b->refs, 1);
    b->len = len;
  }
  return b;
}

static void blob_unref(agg_blob *b) {
  if (b && atomic_fetch_sub(&b->refs, 1) == 1)
    free(b);
}

struct storefl_agg {
  pthread_mutex_t mu;
  storefl_agg_config cfg;
  storefl_agg_options opt;
  storefl_agg_privacy priv;
  sqlite3 *db;
  storefl_accum *acc;
  size_t numel;
  /* current model */
  uint64_t model_version;
  uint8_t digest[STOREFL_DIGEST_LEN];
  float *params, *adam_m, *adam_v; /* FedAdam moments (zero until the first FedAdam step) */
  agg_blob *model_body;
  /* current round */
  agg_round_row round;
  int idle;         /* campaign over: no open round */
  storefl_rng *rng; /* built-in central noise (CTR_DRBG), created at the first noisy close */
  /* cfg holds the current round's parameters (those it opened with, restored from its row after a
   * restart); file_cfg the configuration given to storefl_agg_open, applied from the next round. */
  storefl_agg_config file_cfg;
  char round_params[4096];
  int acc_scale_bits;
  uint32_t acc_max;
  /* Built-in privacy (privacy module) when the caller gives no hook: the signed ledger appended in the
   * closing transaction ([ledger] key) and the per-store budget check ([ledger] epsilon_cap); the
   * enrolled stores it charges in sampled rounds (storefl_agg_options.enrolled, copied). */
  storefl_signer *signer;
  storefl_str *population;
  char (*population_ids)[STOREFL_MAX_ID_LEN + 1];
  uint32_t n_population;
};

static int64_t now_ms(storefl_agg *a) {
  if (a->opt.now_ms)
    return a->opt.now_ms(a->opt.clock_ctx);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void notify(storefl_agg *a, unsigned what) {
  if (a->opt.notify)
    a->opt.notify(a->opt.notify_ctx, what);
}

/* Tensor views of a float32 parameter block laid out as the config's model spec. */
static void param_views(const storefl_agg *a, const float *params, storefl_tensor *t) {
  size_t off = 0;
  for (uint32_t i = 0; i < a->cfg.n_tensors; i++) {
    const storefl_accum_tensor *s = &a->cfg.tensors[i];
    uint64_t n = 1;
    for (uint32_t d = 0; d < s->ndim; d++)
      n *= s->shape[d];
    memset(&t[i], 0, sizeof t[i]);
    t[i].name.ptr = s->name;
    t[i].name.len = strlen(s->name);
    t[i].ndim = s->ndim;
    memcpy(t[i].shape, s->shape, sizeof t[i].shape);
    t[i].dtype = STOREFL_DTYPE_F32;
    t[i].scale = 1.0f;
    t[i].data = (const uint8_t *)(params + off);
    t[i].nbytes = (size_t)n * sizeof(float);
    off += (size_t)n;
  }
}

static int compute_digest(const storefl_agg *a, const float *params, uint8_t digest[STOREFL_DIGEST_LEN]) {
  storefl_tensor t[STOREFL_MAX_TENSORS];
  param_views(a, params, t);
  return storefl_model_digest(t, a->cfg.n_tensors, digest);
}

/* Encodes the current model message into a fresh shared blob. */
static int rebuild_model_body(storefl_agg *a) {
  storefl_model_msg *m = calloc(1, sizeof *m);
  if (!m)
    return STOREFL_ERR_NOMEM;
  m->model_version = a->model_version;
  memcpy(m->digest, a->digest, sizeof m->digest);
  m->arch.ptr = a->cfg.arch;
  m->arch.len = strlen(a->cfg.arch);
  m->n_tensors = a->cfg.n_tensors;
  param_views(a, a->params, m->tensors);
  size_t len = 0;
  int rc = storefl_model_encode(m, NULL, 0, &len);
  agg_blob *b = NULL;
  if (!rc) {
    b = blob_new(len);
    rc = b ? storefl_model_encode(m, b->data, len, &len) : STOREFL_ERR_NOMEM;
  }
  free(m);
  if (rc) {
    blob_unref(b);
    return rc;
  }
  blob_unref(a->model_body);
  a->model_body = b;
  return STOREFL_OK;
}

/* Deterministic initial weights: uniform(-scale, scale) from splitmix64(seed). Used only when the
 * database holds no model yet. */
static void init_params(float *p, size_t n, uint64_t seed, double scale) {
  uint64_t s = seed;
  for (size_t i = 0; i < n; i++) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = (double)(z >> 11) * 0x1.0p-53; /* [0, 1) */
    p[i] = (float)((2.0 * u - 1.0) * scale);
  }
}

/* Model spec as text, stored in the database so that a restart with another model config is refused. */
static void spec_text(const storefl_agg_config *c, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "%s", c->arch);
  for (uint32_t i = 0; i < c->n_tensors && n < cap; i++) {
    n += (size_t)snprintf(buf + n, cap - n, ";%s:", c->tensors[i].name);
    for (uint32_t d = 0; d < c->tensors[i].ndim && n < cap; d++)
      n += (size_t)snprintf(buf + n, cap - n, d ? "x%llu" : "%llu",
                            (unsigned long long)c->tensors[i].shape[d]);
  }
}

static storefl_round_state round_state(const storefl_agg *a) {
  return a->idle ? STOREFL_ROUND_IDLE : (storefl_round_state)a->round.state;
}

static int replay_one(void *ctx, const agg_receipt_row *r, const uint8_t *body, size_t len) {
  storefl_agg *a = ctx;
  storefl_update_msg *u = malloc(sizeof *u);
  if (!u)
    return STOREFL_ERR_NOMEM;
  int rc = storefl_update_decode(body, len, len, u);
  storefl_accum_stats st;
  if (!rc)
    rc = storefl_accum_check(a->acc, u->tensors, u->n_tensors, &st);
  if (!rc)
    rc = storefl_accum_add_checked(a->acc, u->tensors, u->n_tensors, r->weight, &st);
  free(u);
  if (rc)
    SFL_ERROR(COMP, "cannot replay the update of store %s in round %llu: %s", r->store_id,
              (unsigned long long)r->round, storefl_strerror(rc));
  return rc ? STOREFL_ERR_IO : STOREFL_OK;
}

/* An accumulator for c's grid and participant cap: NULL in *out if the current one already fits. */
static int accum_for(storefl_agg *a, const storefl_agg_config *c, storefl_accum **out) {
  *out = NULL;
  if (a->acc && a->acc_scale_bits == c->scale_bits && a->acc_max == c->max_participants)
    return STOREFL_OK;
  return storefl_accum_create(c->tensors, c->n_tensors, c->scale_bits, c->max_participants, out);
}

static void accum_install(storefl_agg *a, storefl_accum *fresh) {
  if (fresh) {
    storefl_accum_free(a->acc);
    a->acc = fresh;
    a->acc_scale_bits = a->cfg.scale_bits;
    a->acc_max = a->cfg.max_participants;
  } else
    storefl_accum_reset(a->acc);
}

/* Writes the row of a new open round with the configuration file's parameters (inside the caller's
 * transaction); the caller switches a->cfg to file_cfg once committed. */
static int put_new_round(storefl_agg *a, uint64_t round, uint64_t version, int64_t now, agg_round_row *row,
                         char *params, size_t cap) {
  memset(row, 0, sizeof *row);
  row->round = round;
  row->state = STOREFL_ROUND_OPEN;
  row->model_version = version;
  row->opened_ms = now;
  row->deadline_ms = now + a->file_cfg.duration_ms;
  int rc = storefl_agg_config_round_params(&a->file_cfg, params, cap);
  return rc ? rc : agg_db_put_round(a->db, row, params);
}

static int open_round_row(storefl_agg *a, uint64_t round, uint64_t version, int64_t now) {
  agg_round_row r;
  char params[sizeof a->round_params];
  int rc = put_new_round(a, round, version, now, &r, params, sizeof params);
  if (!rc) {
    a->round = r;
    a->cfg = a->file_cfg;
    memcpy(a->round_params, params, sizeof params);
  }
  return rc;
}

static int campaign_over(const storefl_agg *a, uint64_t last_round) {
  return a->file_cfg.total_rounds != 0 && last_round >= a->file_cfg.total_rounds;
}

static int restore(storefl_agg *a) {
  char spec[4096], stored[4096];
  spec_text(&a->cfg, spec, sizeof spec);
  int rc = agg_db_meta_get(a->db, "model_spec", stored, sizeof stored);
  if (rc == STOREFL_OK && strcmp(spec, stored) != 0) {
    SFL_ERROR(COMP, "the database holds model '%s' but the config describes '%s'", stored, spec);
    return STOREFL_ERR_INVALID;
  }
  if (rc != STOREFL_OK && rc != STOREFL_ERR_NOT_FOUND)
    return rc;
  rc = agg_db_latest_model(a->db, a->numel, &a->model_version, a->digest, a->params, a->adam_m, a->adam_v);
  if (rc == STOREFL_ERR_NOT_FOUND) {
    /* First start: model version 1 and round 1, created together. */
    if (a->cfg.init_from_model) {
      storefl_model_config mc = {a->cfg.model_buckets, a->cfg.model_dim, a->cfg.model_hidden};
      storefl_model *m = NULL;
      if ((rc = storefl_model_create(&mc, &m)))
        return rc;
      storefl_model_init(m, a->cfg.init_seed);
      if (m->numel != a->numel) {
        storefl_model_free(m);
        return STOREFL_ERR_INTERNAL;
      }
      memcpy(a->params, m->block, a->numel * sizeof *a->params);
      storefl_model_free(m);
    } else
      init_params(a->params, a->numel, a->cfg.init_seed, a->cfg.init_scale);
    a->model_version = 1;
    rc = compute_digest(a, a->params, a->digest);
    if (rc)
      return rc;
    int64_t now = now_ms(a);
    if ((rc = agg_db_begin(a->db)))
      return rc;
    rc = agg_db_meta_set(a->db, "model_spec", spec);
    if (!rc)
      rc = agg_db_insert_model(a->db, 1, a->digest, a->cfg.arch, a->params, NULL, NULL, a->numel, now);
    if (!rc)
      rc = open_round_row(a, 1, 1, now);
    if (!rc)
      rc = agg_db_commit(a->db);
    if (rc) {
      agg_db_rollback(a->db);
      return rc;
    }
    SFL_INFO(COMP, "created initial model version 1 (%s, %zu parameters, seed %llu, %s)", a->cfg.arch,
             a->numel, (unsigned long long)a->cfg.init_seed,
             a->cfg.init_from_model ? "model module initializer"
                                    : "uniform init from the config's tensor spec");
    SFL_INFO(COMP, "round 1 opened on model 1, deadline in %lld ms", (long long)a->cfg.duration_ms);
    return STOREFL_OK;
  }
  if (rc)
    return rc;
  uint8_t check[STOREFL_DIGEST_LEN];
  if ((rc = compute_digest(a, a->params, check)))
    return rc;
  if (memcmp(check, a->digest, sizeof check) != 0) {
    SFL_ERROR(COMP, "model version %llu in the database does not match its digest",
              (unsigned long long)a->model_version);
    return STOREFL_ERR_IO;
  }
  rc = agg_db_latest_round(a->db, &a->round);
  if (rc)
    return rc == STOREFL_ERR_NOT_FOUND ? STOREFL_ERR_IO : rc;
  if (a->round.state == STOREFL_ROUND_OPEN) {
    if (a->round.model_version != a->model_version) {
      SFL_ERROR(COMP, "open round %llu is based on model %llu, but the newest model is %llu",
                (unsigned long long)a->round.round, (unsigned long long)a->round.model_version,
                (unsigned long long)a->model_version);
      return STOREFL_ERR_IO;
    }
    /* The round finishes with the parameters it opened with, whatever the file says now. */
    rc = agg_db_round_params(a->db, a->round.round, a->round_params, sizeof a->round_params);
    if (rc)
      return rc == STOREFL_ERR_NOT_FOUND ? STOREFL_ERR_IO : rc;
    storefl_agg_config rc_cfg = a->file_cfg;
    char err[256] = "";
    if (storefl_agg_config_load_string(a->round_params, &rc_cfg, err, sizeof err) != STOREFL_OK) {
      SFL_ERROR(COMP, "round %llu: stored parameters unreadable: %s", (unsigned long long)a->round.round,
                err);
      return STOREFL_ERR_IO;
    }
    char now_params[sizeof a->round_params];
    if (storefl_agg_config_round_params(&a->file_cfg, now_params, sizeof now_params) == STOREFL_OK &&
        strcmp(now_params, a->round_params) != 0)
      SFL_WARN(COMP, "round %llu keeps the parameters it opened with; the edited ones apply from round %llu",
               (unsigned long long)a->round.round, (unsigned long long)a->round.round + 1);
    a->cfg = rc_cfg;
    storefl_accum *fresh;
    if ((rc = accum_for(a, &a->cfg, &fresh)))
      return rc;
    accum_install(a, fresh);
    rc = agg_db_for_each_body(a->db, a->round.round, replay_one, a);
    if (rc)
      return rc;
    if (storefl_accum_count(a->acc) != a->round.participants)
      a->round.participants = storefl_accum_count(a->acc);
    SFL_INFO(COMP, "round %llu restored with %u acknowledged updates", (unsigned long long)a->round.round,
             a->round.participants);
    return STOREFL_OK;
  }
  if (campaign_over(a, a->round.round)) {
    a->idle = 1;
    SFL_INFO(COMP, "campaign finished after round %llu: idle", (unsigned long long)a->round.round);
    return STOREFL_OK;
  }
  /* The last round ended and the campaign was extended (total_rounds raised): open the next one. */
  if ((rc = open_round_row(a, a->round.round + 1, a->model_version, now_ms(a))))
    return rc;
  SFL_INFO(COMP, "round %llu opened on model %llu", (unsigned long long)a->round.round,
           (unsigned long long)a->model_version);
  return STOREFL_OK;
}

int storefl_agg_open(const storefl_agg_config *cfg, const storefl_agg_options *opt, storefl_agg **out) {
  char err[512];
  if (!cfg || !out)
    return STOREFL_ERR_INVALID;
  storefl_agg_config resolved = *cfg;
  if (storefl_agg_config_resolve_model(&resolved, err, sizeof err) ||
      storefl_agg_config_validate(&resolved, err, sizeof err)) {
    SFL_ERROR(COMP, "config: %s", err);
    return STOREFL_ERR_INVALID;
  }
  storefl_agg *a = calloc(1, sizeof *a);
  if (!a)
    return STOREFL_ERR_NOMEM;
  a->cfg = resolved;
  a->file_cfg = resolved;
  cfg = &a->cfg;
  if (opt) {
    a->opt = *opt;
    if (opt->privacy)
      a->priv = *opt->privacy;
  }
  a->opt.privacy = NULL;
  a->opt.enrolled = NULL;
  a->opt.n_enrolled = 0;
  if (opt && opt->n_enrolled) {
    int bad = !opt->enrolled || opt->n_enrolled > STOREFL_MAX_PARTICIPANTS;
    a->population = bad ? NULL : calloc(opt->n_enrolled, sizeof *a->population);
    a->population_ids = bad ? NULL : calloc(opt->n_enrolled, sizeof *a->population_ids);
    for (size_t i = 0; !bad && a->population && a->population_ids && i < opt->n_enrolled; i++) {
      size_t l = opt->enrolled[i] ? strlen(opt->enrolled[i]) : 0;
      bad = !storefl_store_id_valid(opt->enrolled[i], l);
      if (!bad) {
        memcpy(a->population_ids[i], opt->enrolled[i], l + 1);
        a->population[i].ptr = a->population_ids[i];
        a->population[i].len = l;
      }
    }
    if (bad || !a->population || !a->population_ids) {
      free(a->population);
      free(a->population_ids);
      free(a);
      return bad ? STOREFL_ERR_INVALID : STOREFL_ERR_NOMEM;
    }
    a->n_population = (uint32_t)opt->n_enrolled;
  }
  if (pthread_mutex_init(&a->mu, NULL)) {
    free(a->population);
    free(a->population_ids);
    free(a);
    return STOREFL_ERR_INTERNAL;
  }
  int rc =
      storefl_accum_create(cfg->tensors, cfg->n_tensors, cfg->scale_bits, cfg->max_participants, &a->acc);
  if (!rc) {
    a->acc_scale_bits = cfg->scale_bits;
    a->acc_max = cfg->max_participants;
    a->numel = storefl_accum_numel(a->acc);
    a->params = malloc(a->numel * sizeof(float));
    a->adam_m = calloc(a->numel, sizeof(float));
    a->adam_v = calloc(a->numel, sizeof(float));
    if (!a->params || !a->adam_m || !a->adam_v)
      rc = STOREFL_ERR_NOMEM;
  }
  if (!rc)
    rc = agg_db_open(cfg->db_path, &a->db);
  if (!rc && cfg->signing_key[0] && !a->priv.on_round_closed) {
    int created = 0;
    rc = storefl_signer_open(cfg->signing_key, &a->signer, &created);
    if (rc)
      SFL_ERROR(COMP, "ledger signing key %s: %s", cfg->signing_key, storefl_strerror(rc));
    else if (created)
      SFL_WARN(COMP, "created the ledger signing key %s (publish its public key: audit pubkey)",
               cfg->signing_key);
    if (!rc)
      rc = storefl_ledger_init_schema(a->db);
  }
  if (!rc)
    rc = restore(a);
  if (!rc)
    rc = rebuild_model_body(a);
  if (rc) {
    storefl_agg_close(a);
    return rc;
  }
  *out = a;
  return STOREFL_OK;
}

void storefl_agg_close(storefl_agg *a) {
  if (!a)
    return;
  agg_db_close(a->db);
  storefl_signer_free(a->signer);
  free(a->population);
  free(a->population_ids);
  storefl_rng_free(a->rng);
  storefl_accum_free(a->acc);
  blob_unref(a->model_body);
  free(a->params);
  free(a->adam_m);
  free(a->adam_v);
  pthread_mutex_destroy(&a->mu);
  free(a);
}

void storefl_agg_response_release(storefl_agg_response *r) {
  if (!r)
    return;
  blob_unref(r->owner_);
  memset(r, 0, sizeof *r);
}

/* ---- responses ---------------------------------------------------------------------------------- */

static int respond_blob(storefl_agg_response *resp, int code, agg_blob *b) {
  resp->coap_code = code;
  resp->owner_ = b;
  resp->body = b ? b->data : NULL;
  resp->body_len = b ? b->len : 0;
  return STOREFL_OK;
}

/* Error response with a stable reason ([a-z0-9_]) and a human detail. If even that cannot be encoded,
 * the code is still right and the body empty. Returns err. */
static int respond_error(storefl_agg_response *resp, int err, const char *reason, const char *detail,
                         uint32_t max_age_s) {
  storefl_error_msg m = {0};
  m.coap_code = (uint32_t)storefl_err_to_coap(err);
  m.reason.ptr = reason;
  m.reason.len = strlen(reason);
  m.detail.ptr = detail ? detail : "";
  m.detail.len = detail ? strnlen(detail, STOREFL_MAX_TEXT_LEN) : 0;
  m.max_age_s = max_age_s;
  memset(resp, 0, sizeof *resp);
  resp->coap_code = (int)m.coap_code;
  resp->max_age_s = max_age_s;
  size_t len = 0;
  if (storefl_error_encode(&m, NULL, 0, &len) == STOREFL_OK) {
    agg_blob *b = blob_new(len);
    if (b && storefl_error_encode(&m, b->data, len, &len) == STOREFL_OK) {
      resp->owner_ = b;
      resp->body = b->data;
      resp->body_len = len;
    } else
      blob_unref(b);
  }
  return err;
}

static void fill_round_msg(const storefl_agg *a, storefl_round_msg *m) {
  memset(m, 0, sizeof *m);
  m->round = a->round.round;
  m->state = round_state(a);
  m->model_version = a->model_version;
  memcpy(m->model_digest, a->digest, sizeof m->model_digest);
  m->deadline_unix_ms = a->round.deadline_ms;
  m->participation_q = a->cfg.participation_q;
  m->mode = a->cfg.mode;
  m->clip_norm = a->cfg.clip_norm;
  m->noise_multiplier = a->cfg.noise_multiplier;
  m->delta = a->cfg.delta;
  m->min_participants = a->cfg.min_participants;
  m->target_participants = a->cfg.target_participants;
  m->local_steps = a->cfg.local_steps;
  m->local_lr = a->cfg.local_lr;
  m->upload_dtype = a->cfg.upload_dtype;
  m->max_upload_bytes = a->cfg.max_upload_bytes;
  /* Local mode: the grid the agents release their noised updates on; central: the accumulator's. */
  m->scale_bits = a->cfg.mode == STOREFL_PRIVACY_LOCAL ? storefl_agg_config_local_scale_bits(&a->cfg)
                                                       : (uint32_t)a->cfg.scale_bits;
}

static int respond_receipt(storefl_agg_response *resp, const agg_receipt_row *r, int duplicate) {
  storefl_receipt_msg m = {0};
  m.store_id.ptr = r->store_id;
  m.store_id.len = strlen(r->store_id);
  m.round = r->round;
  memcpy(m.update_digest, r->digest, sizeof m.update_digest);
  m.accepted_unix_ms = r->accepted_ms;
  m.participants_so_far = r->participants_so_far;
  m.duplicate = (uint8_t)duplicate;
  size_t len = 0;
  int rc = storefl_receipt_encode(&m, NULL, 0, &len);
  agg_blob *b = rc ? NULL : blob_new(len);
  if (!rc && !b)
    rc = STOREFL_ERR_NOMEM;
  if (!rc)
    rc = storefl_receipt_encode(&m, b->data, len, &len);
  if (rc) {
    blob_unref(b);
    return respond_error(resp, STOREFL_ERR_INTERNAL, "internal", "cannot encode the receipt", 0);
  }
  memset(resp, 0, sizeof *resp);
  return respond_blob(resp, 204, b);
}

/* ---- closing rounds ------------------------------------------------------------------------------ */

/* Applies the server step to a copy of the parameters; returns new params (and moments) in fresh
 * buffers. The arithmetic is per coordinate in a fixed order, so it is deterministic. */
static int server_step(storefl_agg *a, const int64_t *sums, float **out_p, float **out_m, float **out_v) {
  size_t n = a->numel;
  float *p = malloc(n * sizeof *p);
  int adam = a->cfg.optimizer == STOREFL_AGG_FEDADAM;
  float *m = adam ? malloc(n * sizeof *m) : NULL;
  float *v = adam ? malloc(n * sizeof *v) : NULL;
  if (!p || (adam && (!m || !v))) {
    free(p);
    free(m);
    free(v);
    return STOREFL_ERR_NOMEM;
  }
  double denom = ldexp((double)storefl_accum_weight(a->acc), a->cfg.scale_bits);
  double lr = a->cfg.server_lr;
  int finite = 1;
  for (size_t i = 0; i < n; i++) {
    double g = (double)sums[i] / denom; /* weighted mean of the deltas */
    double x;
    if (a->cfg.optimizer == STOREFL_AGG_FEDADAM) {
      double b1 = a->cfg.adam_beta1, b2 = a->cfg.adam_beta2;
      double mi = b1 * (double)a->adam_m[i] + (1.0 - b1) * g;
      double vi = b2 * (double)a->adam_v[i] + (1.0 - b2) * g * g;
      m[i] = (float)mi;
      v[i] = (float)vi;
      x = (double)a->params[i] + lr * mi / (sqrt(vi) + a->cfg.adam_tau);
    } else
      x = (double)a->params[i] + lr * g;
    p[i] = (float)x;
    finite &= isfinite(p[i]) != 0;
  }
  if (!finite) {
    free(p);
    free(m);
    free(v);
    return STOREFL_ERR_NONFINITE;
  }
  *out_p = p;
  *out_m = m;
  *out_v = v;
  return STOREFL_OK;
}

/* Standard deviation of the central noise in grid units: sigma times the L2 sensitivity of the
 * integer weighted sum to one store, which is at most C(1+tol) * weight_cap * 2^S (the accepted norm
 * bound) plus sqrt(d)/2 for the rounding of each coordinate to the grid. */
static double central_stddev_grid(const storefl_agg_config *c, size_t d) {
  double sens = ldexp(c->clip_norm * (1.0 + c->clip_tolerance) * (double)c->weight_cap, c->scale_bits) +
                0.5 * sqrt((double)d);
  return c->noise_multiplier * sens;
}

/* Ends the open round: closed (new model) or abandoned (nothing applied). Everything - new model,
 * round states, ledger entry, pruning - commits in one transaction or not at all. */
static int end_round(storefl_agg *a, int close, int on_deadline) {
  int64_t now = now_ms(a);
  float *np = NULL, *nm = NULL, *nv = NULL;
  int64_t *noisy = NULL;
  char(*ids)[STOREFL_MAX_ID_LEN + 1] = NULL;
  storefl_str *strs = NULL;
  uint8_t ndigest[STOREFL_DIGEST_LEN];
  uint64_t nversion = a->model_version;
  int rc = STOREFL_OK;
  if (close) {
    const int64_t *sums = storefl_accum_sums(a->acc);
    if (a->cfg.mode == STOREFL_PRIVACY_CENTRAL && a->cfg.noise_multiplier > 0) {
      /* Noise goes on a copy so that a failed close leaves the exact sums for a retry. */
      noisy = malloc(a->numel * sizeof *noisy);
      if (!noisy)
        return STOREFL_ERR_NOMEM;
      memcpy(noisy, sums, a->numel * sizeof *noisy);
      double sd = central_stddev_grid(&a->cfg, a->numel);
      if (a->priv.add_central_noise)
        rc = a->priv.add_central_noise(a->priv.ctx, noisy, a->numel, sd);
      else {
        /* Built-in: the privacy module's exact discrete Gaussian on a CTR_DRBG seeded from the OS. */
        if (!a->rng)
          rc = storefl_rng_create("storefl-aggregator central noise", &a->rng);
        if (!rc)
          rc = storefl_dp_central_noise_hook(a->rng, noisy, a->numel, sd);
      }
      sums = noisy;
    }
    if (!rc)
      rc = server_step(a, sums, &np, &nm, &nv);
    free(noisy);
    if (!rc)
      rc = compute_digest(a, np, ndigest);
    nversion = a->model_version + 1;
  }
  /* The next round runs with the configuration file's parameters; its accumulator is ready before the
   * transaction so that nothing can fail after the commit. */
  storefl_accum *fresh = NULL;
  if (!rc && !campaign_over(a, a->round.round))
    rc = accum_for(a, &a->file_cfg, &fresh);
  uint32_t nids = 0;
  int ledger = close && (a->priv.on_round_closed || a->signer);
  if (!rc && ledger) {
    ids = malloc((size_t)a->cfg.max_participants * sizeof *ids);
    strs = malloc((size_t)a->cfg.max_participants * sizeof *strs);
    rc = ids && strs ? STOREFL_OK : STOREFL_ERR_NOMEM;
  }
  if (!rc)
    rc = agg_db_begin(a->db);
  if (rc)
    goto out;
  agg_round_row done = a->round;
  done.state = close ? STOREFL_ROUND_CLOSED : STOREFL_ROUND_ABANDONED;
  done.closed_ms = now;
  done.participants = storefl_accum_count(a->acc);
  rc = agg_db_put_round(a->db, &done, a->round_params);
  if (!rc && close)
    rc = agg_db_insert_model(a->db, nversion, ndigest, a->cfg.arch, np, nm, nv, a->numel, now);
  if (!rc)
    rc = agg_db_drop_bodies(a->db, done.round);
  if (!rc && close && nversion > a->cfg.keep_models)
    rc = agg_db_prune_models(a->db, nversion - a->cfg.keep_models + 1);
  if (!rc && ledger) {
    rc = agg_db_participants(a->db, done.round, ids, a->cfg.max_participants, &nids);
    for (uint32_t i = 0; !rc && i < nids; i++) {
      strs[i].ptr = ids[i];
      strs[i].len = strlen(ids[i]);
    }
    if (!rc) {
      storefl_agg_round_result res = {0};
      res.round = done.round;
      res.mode = a->cfg.mode;
      res.participation_q = a->cfg.participation_q;
      res.noise_multiplier = a->cfg.noise_multiplier;
      res.clip_norm = a->cfg.clip_norm;
      res.delta = a->cfg.delta;
      res.closed_unix_ms = now;
      res.model_version = nversion;
      memcpy(res.model_digest, ndigest, sizeof ndigest);
      res.n_participants = nids;
      res.participants = strs;
      res.closed_on_deadline = on_deadline;
      if (a->priv.on_round_closed)
        rc = a->priv.on_round_closed(a->priv.ctx, a->db, &res);
      else {
        storefl_ledger_round lr = {0};
        lr.round = res.round;
        lr.mode = res.mode;
        lr.participation_q = res.participation_q;
        lr.closed_on_deadline = res.closed_on_deadline;
        lr.noise_multiplier = res.noise_multiplier;
        lr.clip_norm = res.clip_norm;
        lr.delta = res.delta;
        lr.closed_unix_ms = res.closed_unix_ms;
        memcpy(lr.model_digest, res.model_digest, sizeof lr.model_digest);
        lr.n_participants = res.n_participants;
        lr.participants = res.participants;
        lr.n_population = a->n_population;
        lr.population = a->population;
        uint64_t index = 0;
        rc = storefl_ledger_append(a->db, a->signer, &lr, &index);
        if (!rc)
          SFL_INFO(COMP, "ledger entry %llu appended for round %llu", (unsigned long long)index,
                   (unsigned long long)res.round);
      }
    }
  }
  int idle = campaign_over(a, done.round);
  agg_round_row next = {0};
  char nparams[sizeof a->round_params];
  if (!rc && !idle)
    rc = put_new_round(a, done.round + 1, nversion, now, &next, nparams, sizeof nparams);
  if (!rc)
    rc = agg_db_commit(a->db);
  if (rc) {
    agg_db_rollback(a->db);
    SFL_ERROR(COMP, "round %llu: cannot %s it (%s); it stays open", (unsigned long long)a->round.round,
              close ? "close" : "abandon", storefl_strerror(rc));
    goto out;
  }
  /* Committed: switch the in-memory state. */
  if (close) {
    float *t = a->params;
    a->params = np;
    np = t;
    if (nm) {
      t = a->adam_m;
      a->adam_m = nm;
      nm = t;
      t = a->adam_v;
      a->adam_v = nv;
      nv = t;
    } else {
      /* A FedAvg model is stored without moments, which a restart reads as zeros: match that. */
      memset(a->adam_m, 0, a->numel * sizeof *a->adam_m);
      memset(a->adam_v, 0, a->numel * sizeof *a->adam_v);
    }
    a->model_version = nversion;
    memcpy(a->digest, ndigest, sizeof ndigest);
    if (rebuild_model_body(a) != STOREFL_OK) {
      /* Never serve the old body under the new ETag: GET /v1/model retries the encoding. */
      blob_unref(a->model_body);
      a->model_body = NULL;
      SFL_ERROR(COMP, "cannot encode model %llu for serving yet", (unsigned long long)nversion);
    }
    char hex[17];
    for (int i = 0; i < 8; i++)
      snprintf(hex + 2 * i, 3, "%02x", ndigest[i]);
    SFL_INFO(COMP, "round %llu closed%s with %u participants (weight %llu): model %llu digest %s...",
             (unsigned long long)done.round, on_deadline ? " at its deadline" : " on its target",
             done.participants, (unsigned long long)storefl_accum_weight(a->acc),
             (unsigned long long)nversion, hex);
  } else
    SFL_WARN(COMP, "round %llu abandoned with %u participants (minimum %u): nothing applied",
             (unsigned long long)done.round, done.participants, a->cfg.min_participants);
  if (idle) {
    storefl_accum_reset(a->acc);
    a->round = done;
    a->idle = 1;
    SFL_INFO(COMP, "campaign finished after round %llu: idle", (unsigned long long)done.round);
  } else {
    a->round = next;
    a->cfg = a->file_cfg;
    memcpy(a->round_params, nparams, sizeof nparams);
    accum_install(a, fresh);
    fresh = NULL;
    SFL_INFO(COMP, "round %llu opened on model %llu, deadline in %lld ms", (unsigned long long)next.round,
             (unsigned long long)nversion, (long long)a->cfg.duration_ms);
  }
  notify(a,
         STOREFL_AGG_CHANGED_ROUND | STOREFL_AGG_CHANGED_STATUS | (close ? STOREFL_AGG_CHANGED_MODEL : 0u));
out:
  storefl_accum_free(fresh);
  free(np);
  free(nm);
  free(nv);
  free(ids);
  free(strs);
  return rc;
}

/* Deadline handling; called with the lock held. */
static void check_deadline(storefl_agg *a) {
  if (a->idle || a->round.state != STOREFL_ROUND_OPEN)
    return;
  /* A round restored after a crash that came between the commit of its target-th update and its
   * close already has its target: close it now instead of waiting for the deadline
   * (scripts/kill9-campaign.sh found rounds stuck for their whole duration). */
  if (a->cfg.participation_q >= 1.0 && storefl_accum_count(a->acc) >= a->cfg.target_participants) {
    (void)end_round(a, 1, 0);
    return;
  }
  if (now_ms(a) < a->round.deadline_ms)
    return;
  if (storefl_accum_count(a->acc) >= a->cfg.min_participants) {
    (void)end_round(a, 1, 1);
    return;
  }
  if (a->cfg.on_short == STOREFL_AGG_EXTEND && a->round.extensions < a->cfg.max_extensions) {
    agg_round_row r = a->round;
    r.extensions++;
    r.deadline_ms = now_ms(a) + a->cfg.duration_ms;
    if (agg_db_put_round(a->db, &r, a->round_params) == STOREFL_OK) {
      a->round = r;
      SFL_WARN(COMP, "round %llu extended (%u/%u) with %u of %u minimum participants",
               (unsigned long long)r.round, r.extensions, a->cfg.max_extensions, storefl_accum_count(a->acc),
               a->cfg.min_participants);
      notify(a, STOREFL_AGG_CHANGED_ROUND | STOREFL_AGG_CHANGED_STATUS);
    }
    return;
  }
  (void)end_round(a, 0, 1);
}

int64_t storefl_agg_tick(storefl_agg *a) {
  pthread_mutex_lock(&a->mu);
  check_deadline(a);
  int64_t left = -1;
  if (!a->idle) {
    left = a->round.deadline_ms - now_ms(a);
    if (left < 0)
      left = 0;
  }
  pthread_mutex_unlock(&a->mu);
  return left;
}

/* ---- POST /v1/update ----------------------------------------------------------------------------- */

static int reject(storefl_agg_response *resp, const char *store, int err, const char *reason,
                  const char *detail, uint32_t max_age) {
  SFL_WARN(COMP, "update rejected: store=%s code=%d reason=%s%s%s", store, storefl_err_to_coap(err), reason,
           detail ? ": " : "", detail ? detail : "");
  return respond_error(resp, err, reason, detail, max_age);
}

static const char *check_reason(int rc) {
  switch (rc) {
  case STOREFL_ERR_FORMAT:
    return "unsupported_tensor_format";
  case STOREFL_ERR_NONFINITE:
    return "non_finite";
  default:
    return "shape_mismatch";
  }
}

static int handle_update_locked(storefl_agg *a, const char *identity, int content_format, const uint8_t *body,
                                size_t len, storefl_agg_response *resp, storefl_update_msg *u) {
  char detail[256];
  if (!identity || !storefl_store_id_valid(identity, strlen(identity)))
    return reject(resp, "-", STOREFL_ERR_UNAUTHORIZED, "no_identity", "no authenticated store identity", 0);
  if (content_format != STOREFL_COAP_CONTENT_CBOR)
    return reject(resp, identity, STOREFL_ERR_FORMAT, "content_format", "expected application/cbor (60)", 0);
  if (len > a->cfg.max_upload_bytes) {
    snprintf(detail, sizeof detail, "%zu bytes over the cap of %llu", len,
             (unsigned long long)a->cfg.max_upload_bytes);
    return reject(resp, identity, STOREFL_ERR_TOO_LARGE, "too_large", detail, 0);
  }
  int rc = storefl_update_decode(body, len, (size_t)a->cfg.max_upload_bytes, u);
  if (rc)
    return reject(resp, identity, rc, rc == STOREFL_ERR_NONFINITE ? "non_finite" : storefl_strerror(rc),
                  "update does not decode", 0);
  if (u->store_id.len != strlen(identity) || memcmp(u->store_id.ptr, identity, u->store_id.len) != 0)
    return reject(resp, identity, STOREFL_ERR_FORBIDDEN, "forged_identity",
                  "store_id differs from the authenticated identity", 0);
  /* Idempotency first: a retry of an accepted upload gets the same receipt even after its round ended. */
  agg_receipt_row rec;
  rc = agg_db_find_receipt(a->db, u->round, identity, &rec);
  if (rc == STOREFL_OK) {
    SFL_INFO(COMP, "update duplicate: store=%s round=%llu (counted once)", identity,
             (unsigned long long)u->round);
    return respond_receipt(resp, &rec, 1);
  }
  if (rc != STOREFL_ERR_NOT_FOUND)
    return reject(resp, identity, STOREFL_ERR_UNAVAILABLE, "storage", "database error", 5);
  check_deadline(a);
  if (a->idle || a->round.state != STOREFL_ROUND_OPEN || u->round != a->round.round) {
    snprintf(detail, sizeof detail, "update for round %llu, open round is %llu%s",
             (unsigned long long)u->round, (unsigned long long)a->round.round, a->idle ? " (idle)" : "");
    return reject(resp, identity, STOREFL_ERR_CONFLICT, "wrong_round", detail, 0);
  }
  if (now_ms(a) >= a->round.deadline_ms) /* its close failed and is being retried: not part of it */
    return reject(resp, identity, STOREFL_ERR_UNAVAILABLE, "round_closing", "the round is past its deadline",
                  1);
  if (u->base_model_version != a->model_version) {
    snprintf(detail, sizeof detail, "based on model %llu, round is on model %llu",
             (unsigned long long)u->base_model_version, (unsigned long long)a->model_version);
    return reject(resp, identity, STOREFL_ERR_CONFLICT, "wrong_base_model", detail, 0);
  }
  if (u->mode != a->cfg.mode)
    return reject(resp, identity, STOREFL_ERR_INVALID, "wrong_privacy_mode",
                  "privacy mode differs from the round's", 0);
  if (!(u->clip_norm <= a->cfg.clip_norm * (1.0 + a->cfg.clip_tolerance))) {
    snprintf(detail, sizeof detail, "clipped to %.6g, the round's bound is %.6g", u->clip_norm,
             a->cfg.clip_norm);
    return reject(resp, identity, STOREFL_ERR_INVALID, "clip_norm_mismatch", detail, 0);
  }
  /* In local mode the privacy guarantee is the agent's own noise: less than the round asks is refused. */
  if (a->cfg.mode == STOREFL_PRIVACY_LOCAL && !(u->noise_multiplier >= a->cfg.noise_multiplier)) {
    snprintf(detail, sizeof detail, "noise multiplier %.6g below the round's %.6g", u->noise_multiplier,
             a->cfg.noise_multiplier);
    return reject(resp, identity, STOREFL_ERR_INVALID, "insufficient_noise", detail, 0);
  }
  if (u->num_examples == 0)
    return reject(resp, identity, STOREFL_ERR_INVALID, "no_examples", "num_examples is 0", 0);
  rc = storefl_accum_match(a->acc, u->tensors, u->n_tensors);
  if (rc)
    return reject(resp, identity, rc == STOREFL_ERR_NONFINITE ? STOREFL_ERR_INVALID : rc, check_reason(rc),
                  "tensors do not match the model", 0);
  uint64_t w = u->num_examples < a->cfg.weight_cap ? u->num_examples : a->cfg.weight_cap;
  if (storefl_accum_count(a->acc) >= a->cfg.max_participants) {
    int64_t left = (a->round.deadline_ms - now_ms(a)) / 1000 + 1;
    return reject(resp, identity, STOREFL_ERR_UNAVAILABLE, "round_full",
                  "the round has its maximum participants", (uint32_t)(left > 0 ? left : 1));
  }
  if (a->priv.budget_check) {
    storefl_round_msg rm;
    fill_round_msg(a, &rm);
    rc = a->priv.budget_check(a->priv.ctx, identity, &rm);
    if (rc == STOREFL_ERR_BUDGET)
      return reject(resp, identity, STOREFL_ERR_BUDGET, "budget_exceeded",
                    "the store's privacy budget is spent", 0);
    if (rc)
      return reject(resp, identity, STOREFL_ERR_INTERNAL, "budget_check", storefl_strerror(rc), 0);
  } else if (a->signer && a->file_cfg.epsilon_cap > 0) {
    /* The cap is policy: the current file's value applies at once. A q < 1 round closes only at its
     * deadline, which is what lets the ledger charge the amplified q (central mode). */
    double eps_now = 0, eps_after = 0;
    rc = storefl_ledger_budget_check(a->db, identity, a->cfg.mode, a->cfg.participation_q,
                                     a->cfg.participation_q < 1.0, a->cfg.noise_multiplier, a->cfg.delta,
                                     a->file_cfg.epsilon_cap, &eps_now, &eps_after);
    if (rc == STOREFL_ERR_BUDGET) {
      snprintf(detail, sizeof detail, "epsilon %.4g would become %.4g, over the cap %.4g", eps_now, eps_after,
               a->file_cfg.epsilon_cap);
      return reject(resp, identity, STOREFL_ERR_BUDGET, "budget_exceeded", detail, 0);
    }
    if (rc)
      return reject(resp, identity, STOREFL_ERR_UNAVAILABLE, "budget_check", storefl_strerror(rc), 5);
  }
  /* Values: finite, L2 norm within the bound, contributions within range - measured while folding the
   * update in (one read of it); a rejection takes it out again exactly, leaving the sums unchanged. */
  storefl_accum_stats st;
  double bound = storefl_agg_config_norm_bound(&a->cfg, storefl_accum_numel(a->acc));
  rc = storefl_accum_add_measured(a->acc, u->tensors, u->n_tensors, w, bound, &st);
  if (rc == STOREFL_ERR_NONFINITE)
    return reject(resp, identity, STOREFL_ERR_INVALID, "non_finite", "a value is NaN or infinite", 0);
  if (rc == STOREFL_ERR_INVALID && !(st.l2_norm <= bound)) {
    snprintf(detail, sizeof detail, "L2 norm %.6g over the bound %.6g", st.l2_norm, bound);
    return reject(resp, identity, STOREFL_ERR_INVALID, "norm_exceeds_clip", detail, 0);
  }
  if (rc == STOREFL_ERR_INVALID)
    return reject(resp, identity, STOREFL_ERR_INVALID, "out_of_range", "values outside the accumulator range",
                  0);
  if (rc)
    return reject(resp, identity, STOREFL_ERR_INTERNAL, "internal", storefl_strerror(rc), 0);
  /* Durable before acknowledged: the row commits (WAL fsync) before the receipt leaves; if it cannot,
   * the update is taken out of the sums again. A crash before the commit loses only an unacknowledged
   * update; after it, the row is replayed on restart. */
  memset(&rec, 0, sizeof rec);
  rec.round = a->round.round;
  memcpy(rec.store_id, identity, strlen(identity) + 1);
  if (mbedtls_sha256_ret(body, len, rec.digest, 0) != 0) {
    (void)storefl_accum_sub(a->acc, u->tensors, u->n_tensors, w);
    return reject(resp, identity, STOREFL_ERR_CRYPTO, "internal", "sha256 failed", 0);
  }
  rec.accepted_ms = now_ms(a);
  rec.participants_so_far = storefl_accum_count(a->acc);
  rec.weight = w;
  rc = agg_db_insert_update(a->db, &rec, body, len);
  if (rc) {
    if (storefl_accum_sub(a->acc, u->tensors, u->n_tensors, w) != STOREFL_OK)
      SFL_ERROR(COMP, "cannot take back an unpersisted update: the round's sums are suspect");
    return reject(resp, identity, STOREFL_ERR_UNAVAILABLE, "storage", "cannot persist the update", 5);
  }
  a->round.participants = storefl_accum_count(a->acc);
  SFL_INFO(COMP, "update accepted: store=%s round=%llu weight=%llu norm=%.4g participants=%u", identity,
           (unsigned long long)rec.round, (unsigned long long)w, st.l2_norm, rec.participants_so_far);
  respond_receipt(resp, &rec, 0);
  notify(a, STOREFL_AGG_CHANGED_STATUS);
  /* Amplification by sampling needs a fixed deadline: a q < 1 round never closes on a count. */
  if (a->cfg.participation_q >= 1.0 && storefl_accum_count(a->acc) >= a->cfg.target_participants)
    (void)end_round(a, 1, 0);
  return STOREFL_OK;
}

int storefl_agg_handle_update(storefl_agg *a, const char *identity, int content_format, const uint8_t *body,
                              size_t len, storefl_agg_response *resp) {
  memset(resp, 0, sizeof *resp);
  if (!a || (!body && len))
    return respond_error(resp, STOREFL_ERR_INVALID, "invalid", "no body", 0);
  storefl_update_msg *u = malloc(sizeof *u);
  if (!u)
    return respond_error(resp, STOREFL_ERR_UNAVAILABLE, "no_memory", NULL, 1);
  pthread_mutex_lock(&a->mu);
  int rc = handle_update_locked(a, identity, content_format, body ? body : (const uint8_t *)"", len, resp, u);
  pthread_mutex_unlock(&a->mu);
  free(u);
  return rc;
}

/* ---- GET handlers ------------------------------------------------------------------------------- */

int storefl_agg_handle_round(storefl_agg *a, storefl_agg_response *resp) {
  memset(resp, 0, sizeof *resp);
  pthread_mutex_lock(&a->mu);
  check_deadline(a);
  storefl_round_msg m;
  fill_round_msg(a, &m);
  pthread_mutex_unlock(&a->mu);
  size_t len = 0;
  int rc = storefl_round_encode(&m, NULL, 0, &len);
  agg_blob *b = rc ? NULL : blob_new(len);
  if (!rc && !b)
    rc = STOREFL_ERR_NOMEM;
  if (!rc)
    rc = storefl_round_encode(&m, b->data, len, &len);
  if (rc) {
    blob_unref(b);
    return respond_error(resp, STOREFL_ERR_INTERNAL, "internal", "cannot encode the round", 0);
  }
  return respond_blob(resp, 205, b);
}

int storefl_agg_handle_model(storefl_agg *a, const uint8_t *if_etag, size_t if_etag_len,
                             storefl_agg_response *resp) {
  memset(resp, 0, sizeof *resp);
  pthread_mutex_lock(&a->mu);
  if (!a->model_body && rebuild_model_body(a) != STOREFL_OK)
    SFL_ERROR(COMP, "cannot encode model %llu for serving", (unsigned long long)a->model_version);
  agg_blob *b = a->model_body;
  if (b)
    atomic_fetch_add(&b->refs, 1);
  resp->has_etag = 1;
  memcpy(resp->etag, a->digest, sizeof resp->etag);
  pthread_mutex_unlock(&a->mu);
  if (!b)
    return respond_error(resp, STOREFL_ERR_UNAVAILABLE, "model_unavailable", NULL, 1);
  if (if_etag && if_etag_len == STOREFL_DIGEST_LEN && memcmp(if_etag, resp->etag, STOREFL_DIGEST_LEN) == 0) {
    blob_unref(b);
    resp->coap_code = 203; /* 2.03 Valid: the agent already has this model */
    return STOREFL_OK;
  }
  return respond_blob(resp, 205, b);
}

int storefl_agg_handle_status(storefl_agg *a, uint32_t sessions, storefl_agg_response *resp) {
  memset(resp, 0, sizeof *resp);
  storefl_status_msg m = {0};
  pthread_mutex_lock(&a->mu);
  check_deadline(a);
  m.round = a->round.round;
  m.state = round_state(a);
  m.model_version = a->model_version;
  m.participants_so_far = storefl_accum_count(a->acc);
  pthread_mutex_unlock(&a->mu);
  m.sessions = sessions;
  m.health.ptr = "ok";
  m.health.len = 2;
  size_t len = 0;
  int rc = storefl_status_encode(&m, NULL, 0, &len);
  agg_blob *b = rc ? NULL : blob_new(len);
  if (!rc && !b)
    rc = STOREFL_ERR_NOMEM;
  if (!rc)
    rc = storefl_status_encode(&m, b->data, len, &len);
  if (rc) {
    blob_unref(b);
    return respond_error(resp, STOREFL_ERR_INTERNAL, "internal", "cannot encode the status", 0);
  }
  return respond_blob(resp, 205, b);
}

int storefl_agg_round_info(storefl_agg *a, storefl_round_msg *out, uint32_t *participants) {
  pthread_mutex_lock(&a->mu);
  fill_round_msg(a, out);
  if (participants)
    *participants = storefl_accum_count(a->acc);
  pthread_mutex_unlock(&a->mu);
  return STOREFL_OK;
}

int storefl_agg_model_copy(storefl_agg *a, float *params, size_t numel, uint64_t *version,
                           uint8_t digest[STOREFL_DIGEST_LEN]) {
  if (numel != a->numel)
    return STOREFL_ERR_INVALID;
  pthread_mutex_lock(&a->mu);
  if (params)
    memcpy(params, a->params, numel * sizeof *params);
  if (version)
    *version = a->model_version;
  if (digest)
    memcpy(digest, a->digest, STOREFL_DIGEST_LEN);
  pthread_mutex_unlock(&a->mu);
  return STOREFL_OK;
}

size_t storefl_agg_model_numel(storefl_agg *a) {
  return a->numel;
}
