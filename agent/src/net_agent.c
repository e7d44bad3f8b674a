/* The agent's network side (see net_agent.h). */
#include "net_agent.h"

#include <ini.h>
#include <math.h>
#include <mbedtls/entropy.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "storefl/codec.h"
#include "storefl/dp.h"
#include "storefl/error.h"
#include "storefl/ini_check.h"
#include "storefl/log.h"
#include "storefl/parse.h"

int64_t storefl_agent_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ------------------------------------------------------------------------------ */

void storefl_agent_net_config_defaults(storefl_agent_net_config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->db, sizeof c->db, "store.db");
  snprintf(c->address, sizeof c->address, "127.0.0.1:%d", STOREFL_COAP_DEFAULT_PORT);
  c->dtype = STOREFL_DTYPE_I8;
  c->q_block = 1;
  c->non = 0; /* NON streams 4x faster across vCPUs but stalls in recovery under loss: opt-in */
  c->block_size = 1024;
  c->timeout_s = 60;
  c->epsilon_cap = 8.0;
  c->retry_base_s = 2;
  c->retry_max_s = 300;
}

typedef struct parse_ctx {
  storefl_agent_net_config *c;
  char err[300];
} parse_ctx;

static int set_str(char *dst, size_t cap, const char *v) {
  size_t n = strlen(v);
  if (n == 0 || n >= cap)
    return 1;
  memcpy(dst, v, n + 1);
  return 0;
}

static int set_uint(unsigned *dst, const char *v, unsigned lo, unsigned hi) {
  char *end;
  unsigned long x = strtoul(v, &end, 10);
  if (end == v || *end || x < lo || x > hi)
    return 1;
  *dst = (unsigned)x;
  return 0;
}

static int set_bool(int *dst, const char *v) {
  if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"))
    *dst = 1;
  else if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no"))
    *dst = 0;
  else
    return 1;
  return 0;
}

static int on_ini(void *user, const char *section, const char *name, const char *v) {
  parse_ctx *p = user;
  storefl_agent_net_config *c = p->c;
  int bad = 0, known = 1;
  if (!strcmp(section, "agent")) {
    if (!strcmp(name, "store_id"))
      bad = set_str(c->store_id, sizeof c->store_id, v) || !storefl_store_id_valid(v, strlen(v));
    else if (!strcmp(name, "db"))
      bad = set_str(c->db, sizeof c->db, v);
    else
      known = 0;
  } else if (!strcmp(section, "aggregator")) {
    if (!strcmp(name, "address"))
      bad = set_str(c->address, sizeof c->address, v);
    else if (!strcmp(name, "insecure_dev"))
      bad = set_bool(&c->insecure_dev, v);
    else
      known = 0;
  } else if (!strcmp(section, "dtls")) {
    if (!strcmp(name, "psk_key"))
      bad = set_str(c->psk_key, sizeof c->psk_key, v);
    else if (!strcmp(name, "ca"))
      bad = set_str(c->ca, sizeof c->ca, v);
    else if (!strcmp(name, "cert"))
      bad = set_str(c->cert, sizeof c->cert, v);
    else if (!strcmp(name, "key"))
      bad = set_str(c->key, sizeof c->key, v);
    else
      known = 0;
  } else if (!strcmp(section, "upload")) {
    if (!strcmp(name, "dtype"))
      bad = storefl_dtype_parse(v, &c->dtype) != 0;
    else if (!strcmp(name, "q_block"))
      bad = set_bool(&c->q_block, v);
    else if (!strcmp(name, "non"))
      bad = set_bool(&c->non, v);
    else if (!strcmp(name, "block_size"))
      bad = set_uint(&c->block_size, v, 16, 1024) || (c->block_size & (c->block_size - 1));
    else if (!strcmp(name, "timeout_s"))
      bad = set_uint(&c->timeout_s, v, 1, 3600);
    else
      known = 0;
  } else if (!strcmp(section, "privacy")) {
    if (!strcmp(name, "epsilon_cap")) {
      /* Finite only: inf passed strtod and then failed the budget gate on every noisy round. A store
       * that wants no practical cap sets a large number; 1e9 bounds it. */
      if (storefl_parse_double(v, 0, 1e9, &c->epsilon_cap)) {
        snprintf(
            p->err, sizeof p->err,
            "[privacy] epsilon_cap: '%s' is not a finite number in [0, 1e9] (inf/nan refused: the store's "
            "cap must be a number)",
            v);
        return 0;
      }
    } else
      known = 0;
  } else if (!strcmp(section, "retry")) {
    if (!strcmp(name, "base_s"))
      bad = set_uint(&c->retry_base_s, v, 1, 3600);
    else if (!strcmp(name, "max_s"))
      bad = set_uint(&c->retry_max_s, v, 1, 86400);
    else
      known = 0;
  } else {
    return 1; /* other sections belong to other parts of the agent */
  }
  if (!known || bad) {
    snprintf(p->err, sizeof p->err, "[%s] %s: %s", section, name, known ? "invalid value" : "unknown key");
    return 0;
  }
  return 1;
}

const char *const storefl_agent_ini_sections[] = {"agent", "aggregator", "dtls",    "upload", "privacy",
                                                  "retry", "model",      "columns", "eval",   NULL};

int storefl_agent_ini_check(const char *path, char *err, size_t errlen) {
  return storefl_ini_check_sections(path, storefl_agent_ini_sections, err, errlen);
}

int storefl_agent_net_config_load(const char *path, storefl_agent_net_config *c, char *err, size_t errlen) {
  int crc = storefl_agent_ini_check(path, err, errlen);
  if (crc != STOREFL_OK)
    return crc;
  parse_ctx p = {c, {0}};
  int rc = ini_parse(path, on_ini, &p);
  if (rc < 0) {
    snprintf(err, errlen, "%s: cannot read", path);
    return STOREFL_ERR_IO;
  }
  if (rc > 0 || p.err[0]) {
    snprintf(err, errlen, "%s:%d: %s", path, rc, p.err[0] ? p.err : "syntax error");
    return STOREFL_ERR_INVALID;
  }
  if (!c->store_id[0]) {
    snprintf(err, errlen, "%s: [agent] store_id is required", path);
    return STOREFL_ERR_INVALID;
  }
  if (c->retry_max_s < c->retry_base_s) {
    snprintf(err, errlen, "%s: [retry] max_s must be >= base_s", path);
    return STOREFL_ERR_INVALID;
  }
  return STOREFL_OK;
}

int storefl_agent_connect(const storefl_agent_net_config *c, storefl_client **out, char *err, size_t errlen) {
  storefl_client_opts o;
  memset(&o, 0, sizeof o);
  char host[256];
  uint16_t port = c->insecure_dev ? 5683 : STOREFL_COAP_DEFAULT_PORT;
  if (storefl_parse_hostport(c->address, host, sizeof host, &port) != 0) {
    snprintf(err, errlen, "invalid [aggregator] address '%s'", c->address);
    return STOREFL_ERR_INVALID;
  }
  o.host = host;
  o.port = port;
  o.insecure = c->insecure_dev;
  o.q_block = c->q_block;
  o.non = c->q_block && c->non; /* NON only pays with Q-Block; lock-step Block1 stays CON */
  o.block_size = c->block_size;
  o.timeout_ms = c->timeout_s * 1000u;
  uint8_t key[STOREFL_PSK_MAX_KEY];
  size_t keylen = 0;
  if (!c->insecure_dev) {
    if (c->psk_key[0]) {
      int rc = storefl_psk_key_file_read(c->psk_key, key, sizeof key, &keylen, err, errlen);
      if (rc)
        return rc;
      o.psk_identity = c->store_id;
      o.psk_key = key;
      o.psk_key_len = keylen;
    } else if (c->ca[0] && c->cert[0] && c->key[0]) {
      o.ca_file = c->ca;
      o.cert_file = c->cert;
      o.key_file = c->key;
    } else {
      snprintf(err, errlen, "[dtls] needs psk_key, or ca + cert + key");
      return STOREFL_ERR_INVALID;
    }
  }
  int rc = storefl_client_open(&o, out, err, errlen);
  memset(key, 0, sizeof key);
  return rc;
}

/* ---- quantization ------------------------------------------------------------------------------- */

int storefl_agent_drbg_new(mbedtls_ctr_drbg_context **out) {
  *out = NULL;
  typedef struct {
    mbedtls_ctr_drbg_context d;
    mbedtls_entropy_context e;
  } both;
  both *b = calloc(1, sizeof *b);
  if (!b)
    return STOREFL_ERR_NOMEM;
  mbedtls_entropy_init(&b->e);
  mbedtls_ctr_drbg_init(&b->d);
  static const char pers[] = "storefl-agent";
  if (mbedtls_ctr_drbg_seed(&b->d, mbedtls_entropy_func, &b->e, (const unsigned char *)pers,
                            sizeof pers - 1) != 0) {
    mbedtls_ctr_drbg_free(&b->d);
    mbedtls_entropy_free(&b->e);
    free(b);
    return STOREFL_ERR_CRYPTO;
  }
  *out = &b->d; /* first member: the allocation starts here */
  return STOREFL_OK;
}

void storefl_agent_drbg_free(mbedtls_ctr_drbg_context *d) {
  if (!d)
    return;
  typedef struct {
    mbedtls_ctr_drbg_context d;
    mbedtls_entropy_context e;
  } both;
  both *b = (both *)(void *)d;
  mbedtls_ctr_drbg_free(&b->d);
  mbedtls_entropy_free(&b->e);
  free(b);
}

int storefl_quantize_i8_stochastic(const float *x, size_t n, int8_t *q, float *scale,
                                   mbedtls_ctr_drbg_context *drbg) {
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i]))
      return STOREFL_ERR_NONFINITE;
    float a = fabsf(x[i]);
    if (a > m)
      m = a;
  }
  float s = m > 0.0f ? m / 127.0f : 1.0f;
  if (!(s > 0.0f) || !isfinite(s))
    s = 1.0f; /* max|x| so small that m/127 underflows: everything rounds around 0 */
  *scale = s;
  uint32_t rnd[MBEDTLS_CTR_DRBG_MAX_REQUEST / sizeof(uint32_t)]; /* one DRBG request */
  size_t have = 0, used = 0;
  for (size_t i = 0; i < n; i++) {
    if (used == have) {
      size_t cap = sizeof rnd / sizeof rnd[0];
      size_t want = n - i < cap ? n - i : cap;
      if (mbedtls_ctr_drbg_random(drbg, (unsigned char *)rnd, want * sizeof rnd[0]) != 0)
        return STOREFL_ERR_CRYPTO;
      have = want;
      used = 0;
    }
    /* u in [0, 1) on a 2^-24 grid (exact in float and double). */
    double u = (double)(rnd[used++] >> 8) * (1.0 / 16777216.0);
    double y = floor((double)x[i] / (double)s + u);
    if (y > 127.0)
      y = 127.0;
    if (y < -127.0)
      y = -127.0;
    q[i] = (int8_t)y;
  }
  return STOREFL_OK;
}

/* ---- update encoding ---------------------------------------------------------------------------- */

/* grid == NULL: a clipped update, i8 by stochastic rounding. grid != NULL: a local-mode release on the
 * round's grid (see storefl_agent_encode_update_local). */
static int encode_update(const storefl_model_msg *model, const float *delta, const int64_t *grid, size_t n,
                         const char *store_id, const storefl_round_msg *round, uint64_t num_examples,
                         storefl_dtype dtype, mbedtls_ctr_drbg_context *drbg, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  size_t esz = storefl_dtype_size(dtype);
  if (!esz)
    return STOREFL_ERR_FORMAT;
  size_t total = 0;
  for (uint32_t i = 0; i < model->n_tensors; i++) {
    uint64_t ne;
    if (storefl_tensor_numel(&model->tensors[i], &ne) != 0)
      return STOREFL_ERR_INVALID;
    total += (size_t)ne;
  }
  if (total != n)
    return STOREFL_ERR_INVALID;
  uint8_t *packed = malloc(n > 0 ? n * esz : 1);
  if (!packed)
    return STOREFL_ERR_NOMEM;
  storefl_update_msg u;
  memset(&u, 0, sizeof u);
  u.store_id.ptr = store_id;
  u.store_id.len = strlen(store_id);
  u.round = round->round;
  u.base_model_version = round->model_version;
  u.num_examples = num_examples;
  u.mode = round->mode;
  u.clip_norm = round->clip_norm;
  /* The noise actually added: none for a clipped update; the round's for a local release, which
   * storefl_dp_privatize_local made before the values reached this encoder. */
  u.noise_multiplier = grid ? round->noise_multiplier : 0.0;
  u.n_tensors = model->n_tensors;
  int rc = STOREFL_OK;
  size_t off = 0;
  for (uint32_t i = 0; i < model->n_tensors && rc == 0; i++) {
    const storefl_tensor *mt = &model->tensors[i];
    uint64_t ne;
    storefl_tensor_numel(mt, &ne);
    storefl_tensor *t = &u.tensors[i];
    t->name = mt->name;
    t->ndim = mt->ndim;
    memcpy(t->shape, mt->shape, sizeof t->shape);
    t->dtype = dtype;
    t->scale = 1.0f;
    t->data = packed + off * esz;
    t->nbytes = (size_t)ne * esz;
    if (dtype == STOREFL_DTYPE_I8 && grid) {
      t->scale = (float)ldexp(1.0, -(int)round->scale_bits);
      rc = storefl_dp_grid_to_i8(grid + off, (size_t)ne, (int8_t *)(packed + off), NULL);
    } else if (dtype == STOREFL_DTYPE_I8)
      rc = storefl_quantize_i8_stochastic(delta + off, (size_t)ne, (int8_t *)(packed + off), &t->scale, drbg);
    else
      rc = storefl_tensor_pack(dtype, delta + off, (size_t)ne, packed + off * esz, NULL);
    off += (size_t)ne;
  }
  size_t need = 0;
  if (rc == 0)
    rc = storefl_update_encode(&u, NULL, 0, &need);
  uint8_t *body = NULL;
  if (rc == 0) {
    body = malloc(need);
    rc = body ? storefl_update_encode(&u, body, need, len) : STOREFL_ERR_NOMEM;
  }
  free(packed);
  if (rc) {
    free(body);
    return rc;
  }
  *out = body;
  return STOREFL_OK;
}

int storefl_agent_encode_update(const storefl_model_msg *model, const float *delta, size_t n,
                                const char *store_id, const storefl_round_msg *round, uint64_t num_examples,
                                storefl_dtype dtype, mbedtls_ctr_drbg_context *drbg, uint8_t **out,
                                size_t *len) {
  return encode_update(model, delta, NULL, n, store_id, round, num_examples, dtype, drbg, out, len);
}

int storefl_agent_encode_update_local(const storefl_model_msg *model, const float *delta, const int64_t *grid,
                                      size_t n, const char *store_id, const storefl_round_msg *round,
                                      storefl_dtype dtype, uint8_t **out, size_t *len) {
  if (!grid || round->scale_bits < 1 || round->scale_bits > STOREFL_MAX_SCALE_BITS)
    return STOREFL_ERR_INVALID;
  return encode_update(model, delta, grid, n, store_id, round, 1, dtype, NULL, out, len);
}

/* ---- sync ----------------------------------------------------------------------------------------- */

int64_t storefl_agent_backoff_ms(const storefl_agent_net_config *c, int attempts,
                                 mbedtls_ctr_drbg_context *drbg) {
  double b = (double)c->retry_base_s * 1000.0;
  for (int i = 1; i < attempts && b < c->retry_max_s * 1000.0; i++)
    b *= 2;
  if (b > c->retry_max_s * 1000.0)
    b = c->retry_max_s * 1000.0;
  uint32_t r = 0;
  if (drbg && mbedtls_ctr_drbg_random(drbg, (unsigned char *)&r, sizeof r) == 0)
    return (int64_t)(b * (0.5 + 0.5 * (r / 4294967296.0)));
  return (int64_t)b;
}

static void to_hex(const uint8_t *b, size_t n, char *out) {
  static const char h[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = h[b[i] >> 4];
    out[2 * i + 1] = h[b[i] & 15];
  }
  out[2 * n] = 0;
}

static size_t from_hex(const char *s, uint8_t *out, size_t cap) {
  size_t n = 0;
  while (s[0] && s[1] && n < cap) {
    unsigned v;
    if (sscanf(s, "%2x", &v) != 1)
      return 0;
    out[n++] = (uint8_t)v;
    s += 2;
  }
  return n;
}

/* Reason of an error body, for the outbox's last_error. */
static void error_reason(const storefl_response *r, char *buf, size_t cap) {
  storefl_error_msg e;
  if (r->len && storefl_error_decode(r->body, r->len, r->len, &e) == 0)
    snprintf(buf, cap, "%d.%02d %.*s%s%.*s", r->code / 100, r->code % 100, (int)e.reason.len, e.reason.ptr,
             e.detail.len ? ": " : "", (int)(e.detail.len > 80 ? 80 : e.detail.len), e.detail.ptr);
  else
    snprintf(buf, cap, "%d.%02d", r->code / 100, r->code % 100);
}

static int sync_model(storefl_store *st, storefl_client *client, storefl_sync_result *res, char *err,
                      size_t errlen);
static int sync_outbox(const storefl_agent_net_config *c, storefl_store *st, storefl_client *client,
                       storefl_sync_result *res, char *err, size_t errlen);

int storefl_agent_sync(const storefl_agent_net_config *c, storefl_store *st, storefl_client *client,
                       storefl_sync_result *res, char *err, size_t errlen) {
  memset(res, 0, sizeof *res);
  storefl_response r;
  /* 1. The round. */
  int rc = storefl_client_request(client, COAP_REQUEST_CODE_GET, "v1/round", -1, NULL, 0, NULL, 0, &r, err,
                                  errlen);
  if (rc)
    return rc;
  if (r.code == 205 && storefl_round_decode(r.body, r.len, r.len, &res->round) == 0) {
    res->have_round = 1;
  } else {
    SFL_WARN("sync", "GET /v1/round answered %d.%02d", r.code / 100, r.code % 100);
  }
  storefl_response_free(&r);

  /* 2. The outbox before the model: a pending update is what must not wait; on a lossy link a
   * failed model download used to end the exchange before the upload was even tried
   * (tests/hardening/test_loss.sh). 3. The model, only if its ETag changed. */
  rc = sync_outbox(c, st, client, res, err, errlen);
  if (rc)
    return rc;
  return sync_model(st, client, res, err, errlen);
}

static int sync_model(storefl_store *st, storefl_client *client, storefl_sync_result *res, char *err,
                      size_t errlen) {
  storefl_response r;
  int rc;
  char hex[2 * STOREFL_ETAG_LEN + 1] = {0};
  uint8_t etag[STOREFL_ETAG_LEN];
  size_t etag_len = 0;
  if (storefl_store_meta_get(st, "model_etag", hex, sizeof hex) == 0)
    etag_len = from_hex(hex, etag, sizeof etag);
  if (etag_len && res->have_round) {
    /* The round names its model's digest, whose first 8 bytes are the ETag: validate only what is
     * expected to match (2.03), and fetch a changed model with a plain GET. A non-matching ETag
     * would make libcoap 4.3.5's server leak 80 bytes on the follow-up Block2 request (its
     * coap_handle_request_send_block returns without freeing out_blocks) and its client stop after
     * the first block. */
    uint64_t have = 0, want = 0;
    for (size_t i = 0; i < etag_len; i++)
      have = have << 8 | etag[i];
    for (size_t i = 0; i < STOREFL_ETAG_LEN; i++)
      want = want << 8 | res->round.model_digest[i];
    if (have != want)
      etag_len = 0;
  }
  rc = storefl_client_fetch(client, "v1/model", etag_len ? etag : NULL, etag_len, &r, err, errlen);
  if (rc)
    return rc;
  if (r.code == 205) {
    storefl_model_msg m;
    rc = storefl_model_decode(r.body, r.len, r.len, &m);
    if (rc == 0)
      rc = storefl_store_put_model(st, "global", m.model_version, m.digest, r.body, r.len);
    if (rc == 0 && r.etag_len) {
      to_hex(r.etag, r.etag_len, hex);
      rc = storefl_store_meta_set(st, "model_etag", hex);
    }
    if (rc) {
      snprintf(err, errlen, "cannot accept the model (%s)", storefl_strerror(rc));
      storefl_response_free(&r);
      return rc;
    }
    res->model_changed = 1;
    res->model_version = m.model_version;
    res->model_bytes = r.len;
    SFL_INFO("sync", "model v%llu downloaded (%zu bytes)", (unsigned long long)m.model_version, r.len);
  } else if (r.code != 203) {
    SFL_WARN("sync", "GET /v1/model answered %d.%02d", r.code / 100, r.code % 100);
  }
  storefl_response_free(&r);

  return STOREFL_OK;
}

static int sync_outbox(const storefl_agent_net_config *c, storefl_store *st, storefl_client *client,
                       storefl_sync_result *res, char *err, size_t errlen) {
  storefl_response r;
  int rc;
  int64_t now = storefl_agent_now_ms();
  storefl_outbox_item it;
  memset(&it, 0, sizeof it);
  rc = storefl_store_outbox_next_due(st, now, &it);
  if (rc == STOREFL_ERR_NOT_FOUND)
    return STOREFL_OK;
  if (rc) {
    snprintf(err, errlen, "outbox: %s", storefl_strerror(rc));
    return rc;
  }
  mbedtls_ctr_drbg_context *drbg = NULL;
  (void)storefl_agent_drbg_new(&drbg); /* jitter only; without it the back-off is not jittered */
  /* --insecure-dev servers have no DTLS identity: the store names itself in the query. */
  char upath[32 + STOREFL_MAX_ID_LEN];
  if (c->insecure_dev)
    snprintf(upath, sizeof upath, "v1/update?store=%s", c->store_id);
  else
    snprintf(upath, sizeof upath, "v1/update");
  rc = storefl_client_request(client, COAP_REQUEST_CODE_POST, upath, 60, it.body, it.body_len, NULL, 0, &r,
                              err, errlen);
  if (rc) {
    int64_t at = now + storefl_agent_backoff_ms(c, it.attempts + 1, drbg);
    (void)storefl_store_outbox_mark_failed(st, it.id, at, err, 0);
    res->pending_left = 1;
    storefl_outbox_item_free(&it);
    storefl_agent_drbg_free(drbg);
    return rc;
  }
  res->upload_code = r.code;
  char why[200];
  if (r.code / 100 == 2) {
    storefl_receipt_msg rc_msg;
    int drc = storefl_receipt_decode(r.body, r.len, r.len, &rc_msg);
    if (drc == 0 && (rc_msg.round != it.round || rc_msg.store_id.len != strlen(c->store_id) ||
                     memcmp(rc_msg.store_id.ptr, c->store_id, rc_msg.store_id.len) != 0))
      drc = STOREFL_ERR_INVALID;
    if (drc) {
      /* Not a receipt for this update: keep the item and retry (the upload is idempotent). */
      snprintf(why, sizeof why, "invalid receipt (%s)", storefl_strerror(drc));
      (void)storefl_store_outbox_mark_failed(
          st, it.id, now + storefl_agent_backoff_ms(c, it.attempts + 1, drbg), why, 0);
      res->pending_left = 1;
    } else {
      rc = storefl_store_outbox_mark_sent(st, it.id, r.body, r.len, storefl_agent_now_ms());
      res->uploaded = rc == 0;
      res->duplicate = rc_msg.duplicate;
      SFL_INFO("sync", "update for round %llu acknowledged (%zu bytes%s)", (unsigned long long)it.round,
               it.body_len, rc_msg.duplicate ? ", already counted" : "");
    }
  } else if (r.code == 408 || r.code / 100 == 5) {
    /* 4.08 Request Entity Incomplete is about the transfer (a block lost or retransmitted on a lossy
     * path, tests/hardening/test_loss.sh), not about the update: retry it like an outage. */
    error_reason(&r, why, sizeof why);
    int64_t wait = storefl_agent_backoff_ms(c, it.attempts + 1, drbg);
    /* A 5.03's max_age_s (rate limit, overload, disk full) is when the aggregator wants to hear
     * from us again: retrying earlier only draws another 5.03 (tests/hardening/test_rate_limit.sh). */
    storefl_error_msg em;
    if (r.code == 503 && r.len && storefl_error_decode(r.body, r.len, r.len, &em) == 0 &&
        (int64_t)em.max_age_s * 1000 > wait)
      wait = em.max_age_s > c->retry_max_s ? (int64_t)c->retry_max_s * 1000 : (int64_t)em.max_age_s * 1000;
    (void)storefl_store_outbox_mark_failed(st, it.id, now + wait, why, 0);
    res->pending_left = 1;
    SFL_WARN("sync", "update for round %llu: %s; retry in %lld ms", (unsigned long long)it.round, why,
             (long long)wait);
  } else {
    error_reason(&r, why, sizeof why);
    (void)storefl_store_outbox_mark_failed(st, it.id, now, why, 1);
    res->rejected = 1;
    SFL_WARN("sync", "update for round %llu rejected for good: %s", (unsigned long long)it.round, why);
  }
  storefl_response_free(&r);
  storefl_outbox_item_free(&it);
  storefl_agent_drbg_free(drbg);
  return rc;
}
