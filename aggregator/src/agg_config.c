/* Aggregator INI configuration (see storefl/agg_config.h, docs/aggregator.md). */
#include "storefl/agg_config.h"
#include "storefl/parse.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/ini_check.h"
#include "storefl/model.h"

const char *const storefl_agg_ini_sections[] = {"storage",     "model", "round",  "privacy", "ledger",
                                                "aggregation", "log",   "server", "dtls",    NULL};

void storefl_agg_config_defaults(storefl_agg_config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->db_path, sizeof c->db_path, "aggregator.db");
  c->keep_models = 5;
  snprintf(c->arch, sizeof c->arch, "wide-deep-v1");
  c->init_seed = 1;
  c->init_scale = 0.01;
  c->min_participants = 2;
  c->target_participants = 100;
  c->max_participants = 1000;
  c->duration_ms = 600000;
  c->participation_q = 1.0;
  c->on_short = STOREFL_AGG_EXTEND;
  c->max_extensions = 3;
  c->total_rounds = 0;
  c->local_steps = 10;
  c->local_lr = 0.05;
  c->upload_dtype = STOREFL_DTYPE_I8;
  c->max_upload_bytes = 8u << 20;
  c->mode = STOREFL_PRIVACY_LOCAL;
  c->clip_norm = 1.0;
  c->noise_multiplier = 1.0;
  c->delta = 1e-6;
  c->clip_tolerance = 0.01;
  c->weight_cap = 1000;
  c->scale_bits = 24;
  c->optimizer = STOREFL_AGG_FEDAVG;
  c->server_lr = 1.0;
  c->adam_beta1 = 0.9;
  c->adam_beta2 = 0.99;
  c->adam_tau = 1e-3;
  c->log_level = STOREFL_LOG_INFO;
}

typedef struct parse_ctx {
  storefl_agg_config *cfg;
  char *err;
  size_t errlen;
  int failed;
} parse_ctx;

static int parse_u64(const char *v, uint64_t *out) {
  return storefl_parse_u64(v, 0, UINT64_MAX, out);
}

static int parse_u32(const char *v, uint32_t *out) {
  return storefl_parse_u32(v, 0, UINT32_MAX, out);
}

static int parse_double(const char *v, double *out) {
  return storefl_parse_double(v, -HUGE_VAL, HUGE_VAL, out);
}

/* "item_emb:16384x32" -> name and shape. */
static int parse_tensor(const char *v, storefl_accum_tensor *t) {
  const char *colon = strchr(v, ':');
  if (!colon || colon == v || (size_t)(colon - v) > STOREFL_MAX_ID_LEN)
    return -1;
  memset(t, 0, sizeof *t);
  memcpy(t->name, v, (size_t)(colon - v));
  const char *p = colon + 1;
  while (*p) {
    if (t->ndim == STOREFL_MAX_DIMS)
      return -1;
    char *end;
    errno = 0;
    if (*p < '0' || *p > '9')
      return -1;
    unsigned long long d = strtoull(p, &end, 10);
    if (errno || d == 0 || d > (1u << 31))
      return -1;
    t->shape[t->ndim++] = d;
    p = end;
    if (*p == 'x')
      p++;
    else if (*p)
      return -1;
  }
  return t->ndim ? 0 : -1;
}

#define KEY(s, k) (strcmp(section, s) == 0 && strcmp(name, k) == 0)

static int handler(void *user, const char *section, const char *name, const char *value) {
  parse_ctx *pc = user;
  storefl_agg_config *c = pc->cfg;
  int bad = 0;
  if (KEY("storage", "db")) {
    bad = strlen(value) >= sizeof c->db_path || !*value;
    if (!bad)
      snprintf(c->db_path, sizeof c->db_path, "%s", value);
  } else if (KEY("storage", "keep_models"))
    bad = parse_u32(value, &c->keep_models);
  else if (KEY("model", "arch")) {
    bad = strlen(value) > STOREFL_MAX_ID_LEN || !*value;
    if (!bad)
      snprintf(c->arch, sizeof c->arch, "%s", value);
  } else if (KEY("model", "tensor")) {
    bad = c->n_tensors >= STOREFL_MAX_TENSORS || parse_tensor(value, &c->tensors[c->n_tensors]);
    if (!bad)
      c->n_tensors++;
  } else if (KEY("model", "init_seed"))
    bad = parse_u64(value, &c->init_seed);
  else if (KEY("model", "init_scale"))
    bad = parse_double(value, &c->init_scale);
  else if (KEY("model", "buckets"))
    bad = parse_u32(value, &c->model_buckets);
  else if (KEY("model", "dim"))
    bad = parse_u32(value, &c->model_dim);
  else if (KEY("model", "hidden"))
    bad = parse_u32(value, &c->model_hidden);
  else if (KEY("round", "min_participants"))
    bad = parse_u32(value, &c->min_participants);
  else if (KEY("round", "target_participants"))
    bad = parse_u32(value, &c->target_participants);
  else if (KEY("round", "max_participants"))
    bad = parse_u32(value, &c->max_participants);
  else if (KEY("round", "duration_s")) {
    double d;
    bad = parse_double(value, &d) || d <= 0 || d > 1e9;
    if (!bad)
      c->duration_ms = (int64_t)llround(d * 1000.0);
  } else if (KEY("round", "participation_q"))
    bad = parse_double(value, &c->participation_q);
  else if (KEY("round", "on_short")) {
    if (strcmp(value, "extend") == 0)
      c->on_short = STOREFL_AGG_EXTEND;
    else if (strcmp(value, "abandon") == 0)
      c->on_short = STOREFL_AGG_ABANDON;
    else
      bad = 1;
  } else if (KEY("round", "max_extensions"))
    bad = parse_u32(value, &c->max_extensions);
  else if (KEY("round", "total_rounds"))
    bad = parse_u64(value, &c->total_rounds);
  else if (KEY("round", "local_steps"))
    bad = parse_u32(value, &c->local_steps);
  else if (KEY("round", "local_lr"))
    bad = parse_double(value, &c->local_lr);
  else if (KEY("round", "upload_dtype"))
    bad = storefl_dtype_parse(value, &c->upload_dtype) != 0;
  else if (KEY("round", "max_upload_bytes"))
    bad = parse_u64(value, &c->max_upload_bytes);
  else if (KEY("privacy", "mode")) {
    if (strcmp(value, "local") == 0)
      c->mode = STOREFL_PRIVACY_LOCAL;
    else if (strcmp(value, "central") == 0)
      c->mode = STOREFL_PRIVACY_CENTRAL;
    else
      bad = 1;
  } else if (KEY("privacy", "clip_norm"))
    bad = parse_double(value, &c->clip_norm);
  else if (KEY("privacy", "noise_multiplier"))
    bad = parse_double(value, &c->noise_multiplier);
  else if (KEY("privacy", "delta"))
    bad = parse_double(value, &c->delta);
  else if (KEY("privacy", "clip_tolerance"))
    bad = parse_double(value, &c->clip_tolerance);
  else if (KEY("privacy", "signing_key") || KEY("privacy", "epsilon_cap")) {
    /* One ledger configuration: these keys moved to [ledger]; silently accepting them would leave two
     * spellings of the same policy to keep consistent. */
    storefl_set_err(pc->err, pc->errlen, "[privacy] %s moved to [ledger] %s (see docs/privacy.md)", name,
                    strcmp(name, "signing_key") == 0 ? "key" : "epsilon_cap");
    pc->failed = 1;
    return 0;
  } else if (KEY("ledger", "key")) {
    bad = strlen(value) >= sizeof c->signing_key;
    if (!bad)
      snprintf(c->signing_key, sizeof c->signing_key, "%s", value);
  } else if (KEY("ledger", "epsilon_cap"))
    bad = parse_double(value, &c->epsilon_cap);
  else if (KEY("ledger", "enrolment")) {
    bad = strlen(value) >= sizeof c->enrolment;
    if (!bad)
      snprintf(c->enrolment, sizeof c->enrolment, "%s", value);
  } else if (KEY("privacy", "local_scale_bits")) {
    if (strcmp(value, "auto") == 0)
      c->local_scale_bits = 0;
    else
      bad = parse_u32(value, &c->local_scale_bits) || c->local_scale_bits < 1 ||
            c->local_scale_bits > STOREFL_MAX_SCALE_BITS;
  } else if (KEY("aggregation", "weight_cap"))
    bad = parse_u64(value, &c->weight_cap);
  else if (KEY("aggregation", "scale_bits")) {
    uint32_t b;
    bad = parse_u32(value, &b) || b > 60;
    if (!bad)
      c->scale_bits = (int)b;
  } else if (KEY("aggregation", "optimizer")) {
    if (strcmp(value, "fedavg") == 0)
      c->optimizer = STOREFL_AGG_FEDAVG;
    else if (strcmp(value, "fedadam") == 0)
      c->optimizer = STOREFL_AGG_FEDADAM;
    else
      bad = 1;
  } else if (KEY("aggregation", "server_lr"))
    bad = parse_double(value, &c->server_lr);
  else if (KEY("aggregation", "adam_beta1"))
    bad = parse_double(value, &c->adam_beta1);
  else if (KEY("aggregation", "adam_beta2"))
    bad = parse_double(value, &c->adam_beta2);
  else if (KEY("aggregation", "adam_tau"))
    bad = parse_double(value, &c->adam_tau);
  else if (KEY("log", "level"))
    bad = storefl_log_parse_level(value, &c->log_level) != 0;
  else if (strcmp(section, "storage") == 0 || strcmp(section, "model") == 0 ||
           strcmp(section, "round") == 0 || strcmp(section, "privacy") == 0 ||
           strcmp(section, "ledger") == 0 || strcmp(section, "aggregation") == 0 ||
           strcmp(section, "log") == 0) {
    storefl_set_err(pc->err, pc->errlen, "unknown key [%s] %s", section, name);
    pc->failed = 1;
    return 0;
  }
  if (bad) {
    storefl_set_err(pc->err, pc->errlen, "bad value for [%s] %s: '%s'", section, name, value);
    pc->failed = 1;
    return 0;
  }
  return 1;
}

static int finish(parse_ctx *pc, int rc) {
  if (pc->failed) {
    /* inih reports the first failing line as its return value. */
    if (pc->err && pc->errlen && rc > 0) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", pc->err);
      storefl_set_err(pc->err, pc->errlen, "line %d: %s", rc, msg);
    }
    return STOREFL_ERR_INVALID;
  }
  if (rc < 0)
    return STOREFL_ERR_IO;
  if (rc > 0) {
    storefl_set_err(pc->err, pc->errlen, "line %d: syntax error", rc);
    return STOREFL_ERR_INVALID;
  }
  int vrc = storefl_agg_config_resolve_model(pc->cfg, pc->err, pc->errlen);
  return vrc ? vrc : storefl_agg_config_validate(pc->cfg, pc->err, pc->errlen);
}

int storefl_agg_config_resolve_model(storefl_agg_config *c, char *err, size_t errlen) {
  if (c->n_tensors > 0 && !c->init_from_model)
    return STOREFL_OK; /* explicit spec */
  if (strcmp(c->arch, STOREFL_MODEL_ARCH) != 0) {
    storefl_set_err(err, errlen,
                    "[model] arch %s has no built-in definition: give its 'tensor = name:DIMxDIM' lines",
                    c->arch);
    return STOREFL_ERR_INVALID;
  }
  storefl_model_config mc;
  storefl_model_config_default(&mc);
  if (c->model_buckets)
    mc.buckets = c->model_buckets;
  if (c->model_dim)
    mc.dim = c->model_dim;
  if (c->model_hidden)
    mc.hidden = c->model_hidden;
  if (storefl_model_config_check(&mc) != STOREFL_OK) {
    storefl_set_err(err, errlen,
                    "[model] buckets/dim/hidden out of range (buckets a power of two in [16, 2^24])");
    return STOREFL_ERR_INVALID;
  }
  storefl_model *m = NULL;
  int rc = storefl_model_create(&mc, &m);
  if (rc) {
    storefl_set_err(err, errlen, "[model] cannot create the %s model", c->arch);
    return rc;
  }
  c->n_tensors = STOREFL_MODEL_NPARAMS;
  for (uint32_t i = 0; i < STOREFL_MODEL_NPARAMS; i++) {
    memset(&c->tensors[i], 0, sizeof c->tensors[i]);
    snprintf(c->tensors[i].name, sizeof c->tensors[i].name, "%s", m->params[i].name);
    c->tensors[i].ndim = m->params[i].ndim;
    for (uint32_t d = 0; d < m->params[i].ndim; d++)
      c->tensors[i].shape[d] = m->params[i].shape[d];
  }
  c->model_buckets = mc.buckets;
  c->model_dim = mc.dim;
  c->model_hidden = mc.hidden;
  c->init_from_model = 1;
  storefl_model_free(m);
  return STOREFL_OK;
}

int storefl_agg_config_load(const char *path, storefl_agg_config *cfg, char *err, size_t errlen) {
  int crc = storefl_ini_check_sections(path, storefl_agg_ini_sections, err, errlen);
  if (crc != STOREFL_OK)
    return crc;
  parse_ctx pc = {cfg, err, errlen, 0};
  int rc = ini_parse(path, handler, &pc);
  if (rc == -1)
    storefl_set_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
  int frc = finish(&pc, rc);
  if (frc != STOREFL_OK && rc != -1 && err && errlen) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err);
    storefl_set_err(err, errlen, "%s: %s", path, msg);
  }
  return frc;
}

int storefl_agg_config_load_string(const char *text, storefl_agg_config *cfg, char *err, size_t errlen) {
  int crc = storefl_ini_check_sections_string(text, "config", storefl_agg_ini_sections, err, errlen);
  if (crc != STOREFL_OK)
    return crc;
  parse_ctx pc = {cfg, err, errlen, 0};
  return finish(&pc, ini_parse_string(text, handler, &pc));
}

int storefl_agg_config_round_params(const storefl_agg_config *c, char *buf, size_t cap) {
  int n = snprintf(
      buf, cap,
      "[round]\nmin_participants = %u\ntarget_participants = %u\nmax_participants = %u\nduration_s = %.17g\n"
      "participation_q = %.17g\non_short = %s\nmax_extensions = %u\nlocal_steps = %u\nlocal_lr = %.17g\n"
      "upload_dtype = %s\nmax_upload_bytes = %llu\n"
      "[privacy]\nmode = %s\nclip_norm = %.17g\nnoise_multiplier = %.17g\ndelta = %.17g\nclip_tolerance = "
      "%.17g\nlocal_scale_bits = %u\n"
      "[aggregation]\nweight_cap = %llu\nscale_bits = %d\noptimizer = %s\nserver_lr = %.17g\n"
      "adam_beta1 = %.17g\nadam_beta2 = %.17g\nadam_tau = %.17g\n",
      c->min_participants, c->target_participants, c->max_participants, (double)c->duration_ms / 1000.0,
      c->participation_q, c->on_short == STOREFL_AGG_ABANDON ? "abandon" : "extend", c->max_extensions,
      c->local_steps, c->local_lr,
      storefl_dtype_name(c->upload_dtype) ? storefl_dtype_name(c->upload_dtype) : "?",
      (unsigned long long)c->max_upload_bytes, c->mode == STOREFL_PRIVACY_CENTRAL ? "central" : "local",
      c->clip_norm, c->noise_multiplier, c->delta, c->clip_tolerance, storefl_agg_config_local_scale_bits(c),
      (unsigned long long)c->weight_cap, c->scale_bits,
      c->optimizer == STOREFL_AGG_FEDADAM ? "fedadam" : "fedavg", c->server_lr, c->adam_beta1, c->adam_beta2,
      c->adam_tau);
  return n < 0 || (size_t)n >= cap ? STOREFL_ERR_TOO_LARGE : STOREFL_OK;
}

double storefl_agg_config_norm_bound(const storefl_agg_config *c, uint64_t d) {
  double b = c->clip_norm * (1.0 + c->clip_tolerance);
  if (c->mode == STOREFL_PRIVACY_LOCAL)
    b += c->noise_multiplier * c->clip_norm * (sqrt((double)d) + 10.0);
  return b;
}

uint32_t storefl_agg_config_local_scale_bits(const storefl_agg_config *c) {
  int top = c->scale_bits >= 1 && c->scale_bits <= STOREFL_MAX_SCALE_BITS ? c->scale_bits : 24;
  if (c->local_scale_bits)
    return c->local_scale_bits;
  /* log2 of the noise wanted in grid units: i8 16..32, f16 64..128, f32 2^16..2^17 (see the header). */
  int want = c->upload_dtype == STOREFL_DTYPE_F32 ? 16 : c->upload_dtype == STOREFL_DTYPE_F16 ? 6 : 4;
  double sd = (c->noise_multiplier > 0 ? c->noise_multiplier : 1.0 / 16.0) * c->clip_norm;
  if (!(sd > 0 && isfinite(sd)))
    return (uint32_t)top;
  /* s = sd * 2^b in [2^want, 2^(want+1)) <=> b = want - floor(log2(sd)) */
  int e = 0;
  (void)frexp(sd, &e); /* sd = m * 2^e with m in [0.5, 1): floor(log2(sd)) = e - 1 */
  long b = (long)want - (e - 1);
  if (b < 1)
    b = 1;
  if (b > top)
    b = top;
  return (uint32_t)b;
}

int storefl_agg_config_validate(const storefl_agg_config *c, char *err, size_t errlen) {
#define FAIL(...)                                                                                            \
  do {                                                                                                       \
    storefl_set_err(err, errlen, __VA_ARGS__);                                                               \
    return STOREFL_ERR_INVALID;                                                                              \
  } while (0)
  if (c->n_tensors == 0)
    FAIL("[model] needs 'tensor = name:DIMxDIM' lines, or arch = %s for the built-in model",
         STOREFL_MODEL_ARCH);
  uint64_t d = 0;
  for (uint32_t i = 0; i < c->n_tensors; i++) {
    uint64_t n;
    if (storefl_shape_numel(c->tensors[i].ndim, c->tensors[i].shape, &n) || n == 0)
      FAIL("[model] tensor %s: bad shape", c->tensors[i].name);
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(c->tensors[i].name, c->tensors[j].name) == 0)
        FAIL("[model] tensor %s declared twice", c->tensors[i].name);
    d += n;
  }
  if (d > ((uint64_t)1 << 31))
    FAIL("[model] more than 2^31 parameters");
  if (!(c->init_scale >= 0))
    FAIL("[model] init_scale must be >= 0");
  if (c->keep_models < 1)
    FAIL("[storage] keep_models must be >= 1");
  if (c->min_participants < 1 || c->min_participants > c->target_participants ||
      c->target_participants > c->max_participants || c->max_participants > STOREFL_MAX_PARTICIPANTS)
    FAIL("[round] need 1 <= min_participants <= target_participants <= max_participants <= %d",
         STOREFL_MAX_PARTICIPANTS);
  if (c->duration_ms <= 0)
    FAIL("[round] duration_s must be > 0");
  if (!(c->participation_q > 0 && c->participation_q <= 1))
    FAIL("[round] participation_q must be in (0, 1]");
  if (c->max_upload_bytes < 64 || c->max_upload_bytes > ((uint64_t)1 << 32))
    FAIL("[round] max_upload_bytes must be in [64, 2^32]");
  if (!(c->local_lr > 0))
    FAIL("[round] local_lr must be > 0");
  if (!(c->clip_norm > 0))
    FAIL("[privacy] clip_norm must be > 0");
  if (!(c->noise_multiplier >= 0))
    FAIL("[privacy] noise_multiplier must be >= 0");
  if (!(c->delta > 0 && c->delta < 1))
    FAIL("[privacy] delta must be in (0, 1)");
  if (!(c->epsilon_cap >= 0 && c->epsilon_cap < 1e300))
    FAIL("[ledger] epsilon_cap must be >= 0 (0 = no cap)");
  if (c->epsilon_cap > 0 && !c->signing_key[0])
    FAIL("[ledger] epsilon_cap needs the ledger: set [ledger] key");
  if (c->enrolment[0] && !c->signing_key[0])
    FAIL("[ledger] enrolment needs the ledger: set [ledger] key");
  /* A round without noise has epsilon = inf, which a ledger entry cannot hold: such a round could
   * never close (its closing transaction appends the entry). Refused here rather than recorded. */
  if (c->signing_key[0] && !(c->noise_multiplier > 0))
    FAIL("[ledger] key needs [privacy] noise_multiplier > 0: a round without noise has epsilon = inf, "
         "which the ledger cannot record (refused; remove [ledger] to run without noise and ledger)");
  if (!(c->clip_tolerance >= 0 && c->clip_tolerance <= 1))
    FAIL("[privacy] clip_tolerance must be in [0, 1]");
  if (c->weight_cap < 1 || c->weight_cap > ((uint64_t)1 << 20))
    FAIL("[aggregation] weight_cap must be in [1, 2^20] (keeps x*w*2^S exact in double)");
  if (c->scale_bits < 1 || c->scale_bits > 60)
    FAIL("[aggregation] scale_bits must be in [1, 60]");
  if (!(c->server_lr > 0))
    FAIL("[aggregation] server_lr must be > 0");
  if (c->optimizer == STOREFL_AGG_FEDADAM && !(c->adam_beta1 >= 0 && c->adam_beta1 < 1 &&
                                               c->adam_beta2 >= 0 && c->adam_beta2 < 1 && c->adam_tau > 0))
    FAIL("[aggregation] need 0 <= adam_beta1, adam_beta2 < 1 and adam_tau > 0");
  /* The largest acceptable coordinate is the norm bound; with the largest weight it must stay inside the
   * accumulator's per-contribution limit, or valid updates would be rejected as out of range. */
  int64_t lim = INT64_MAX / (int64_t)c->max_participants;
  if (lim > ((int64_t)1 << 51) - 1)
    lim = ((int64_t)1 << 51) - 1;
  double worst = ldexp(storefl_agg_config_norm_bound(c, d) * (double)c->weight_cap, c->scale_bits);
  if (!(worst <= (double)lim))
    FAIL("[aggregation] scale_bits %d too fine: norm bound %.6g x weight_cap %llu x 2^%d exceeds the "
         "accumulator range %lld; lower scale_bits or weight_cap",
         c->scale_bits, storefl_agg_config_norm_bound(c, d), (unsigned long long)c->weight_cap, c->scale_bits,
         (long long)lim);
  if (c->mode == STOREFL_PRIVACY_LOCAL) {
    /* Local releases: the agent's values k * 2^-b must land exactly on the accumulator's grid (b <= S),
     * its noise must be within the sampler's range, and the upload encoding must carry k exactly
     * (f32: |k| < 2^24, f16: |k| < 2^11 and b <= 24) or saturate it only in the far tail (i8: 4 s <= 127). */
    uint32_t b = storefl_agg_config_local_scale_bits(c);
    double s = ldexp(c->noise_multiplier * c->clip_norm, (int)b);
    double smax = c->upload_dtype == STOREFL_DTYPE_F32   ? 1048576.0
                  : c->upload_dtype == STOREFL_DTYPE_F16 ? 128.0
                                                         : 31.75;
    if ((int)b > c->scale_bits)
      FAIL("[privacy] local_scale_bits %u is finer than the accumulator's [aggregation] scale_bits %d", b,
           c->scale_bits);
    if (c->upload_dtype == STOREFL_DTYPE_F16 && b > 24)
      FAIL("[privacy] local_scale_bits %u: float16 uploads carry grid values exactly only up to 24 bits", b);
    if (c->noise_multiplier > 0 && !(s >= STOREFL_DGAUSS_MIN_SIGMA && s <= smax))
      FAIL("[privacy] local noise of %.6g grid units (sigma*C*2^%u) is outside [2^-8, %.6g] for %s uploads; "
           "set local_scale_bits = auto or a coarser grid",
           s, b, smax, storefl_dtype_name(c->upload_dtype));
  }
  if (c->mode == STOREFL_PRIVACY_CENTRAL && c->noise_multiplier > 0) {
    /* Central noise: sigma times the sensitivity of the integer weighted sum (see agg_service.h). */
    double sd = c->noise_multiplier *
                (ldexp(c->clip_norm * (1.0 + c->clip_tolerance) * (double)c->weight_cap, c->scale_bits) +
                 0.5 * sqrt((double)d));
    if (!(sd >= STOREFL_DGAUSS_MIN_SIGMA && sd <= STOREFL_DGAUSS_MAX_SIGMA))
      FAIL("[privacy] central noise of %.6g grid units is outside the sampler's range [2^-8, 2^48]; adjust "
           "[aggregation] scale_bits",
           sd);
  }
  return STOREFL_OK;
#undef FAIL
}
