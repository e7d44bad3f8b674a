/* The wide-deep-v1 model: parameters, arithmetic, digest, scoring and the personalised head blob. */
#include <cblas.h>
#include <math.h>
#include <mbedtls/sha256.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "storefl/error.h"
#include "storefl/prng.h"

static const char *const PARAM_NAMES[STOREFL_MODEL_NPARAMS] = {
    "item_emb", "hour_emb", "wday_emb", "mlp_w1", "mlp_b1", "mlp_w2", "wide_w", "bias",
};

/* Candidates scored per sgemm: bounds scratch memory whatever n is. */
#define SCORE_CHUNK 256

void storefl_model_config_default(storefl_model_config *cfg) {
  cfg->buckets = 1u << 14;
  cfg->dim = 32;
  cfg->hidden = 64;
}

int storefl_model_config_check(const storefl_model_config *cfg) {
  if (!cfg || cfg->buckets < 16 || cfg->buckets > (1u << 24) || (cfg->buckets & (cfg->buckets - 1)) != 0 ||
      cfg->dim < 1 || cfg->dim > 1024 || cfg->hidden < 1 || cfg->hidden > 4096)
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

static void layout(storefl_model *m) {
  const storefl_model_config *c = &m->cfg;
  uint64_t in = SFL_IN(c);
  uint64_t shapes[STOREFL_MODEL_NPARAMS][2] = {
      {c->buckets, c->dim},       {24, c->dim}, {7, c->dim}, {c->hidden, in}, {c->hidden, 0}, {c->hidden, 0},
      {STOREFL_WIDE_FEATURES, 0}, {1, 0},
  };
  size_t off = 0;
  for (int i = 0; i < STOREFL_MODEL_NPARAMS; i++) {
    storefl_param *p = &m->params[i];
    p->name = PARAM_NAMES[i];
    p->shape[0] = shapes[i][0];
    p->shape[1] = shapes[i][1];
    p->ndim = shapes[i][1] ? 2 : 1;
    p->numel = (size_t)(p->shape[0] * (p->ndim == 2 ? p->shape[1] : 1));
    p->data = m->block ? m->block + off : NULL;
    off += p->numel;
  }
  m->numel = off;
}

int storefl_model_create(const storefl_model_config *cfg, storefl_model **out) {
  if (!out || storefl_model_config_check(cfg) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  storefl_model *m = calloc(1, sizeof *m);
  if (!m)
    return STOREFL_ERR_NOMEM;
  m->cfg = *cfg;
  layout(m);
  m->block = calloc(m->numel, sizeof *m->block);
  if (!m->block) {
    free(m);
    return STOREFL_ERR_NOMEM;
  }
  layout(m);
  *out = m;
  return STOREFL_OK;
}

void storefl_model_free(storefl_model *m) {
  if (!m)
    return;
  free(m->block);
  free(m);
}

static void fill_normal(storefl_prng *r, float *x, size_t n, double sd) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(storefl_prng_normal(r) * sd);
}

void storefl_model_init(storefl_model *m, uint64_t seed) {
  storefl_prng r;
  storefl_prng_seed(&r, seed);
  storefl_model_zero(m);
  /* Embeddings large enough that u*v carries signal at the start, small enough not to saturate. */
  fill_normal(&r, m->params[STOREFL_P_ITEM_EMB].data, m->params[STOREFL_P_ITEM_EMB].numel, 0.01);
  fill_normal(&r, m->params[STOREFL_P_HOUR_EMB].data, m->params[STOREFL_P_HOUR_EMB].numel, 0.01);
  fill_normal(&r, m->params[STOREFL_P_WDAY_EMB].data, m->params[STOREFL_P_WDAY_EMB].numel, 0.01);
  fill_normal(&r, m->params[STOREFL_P_W1].data, m->params[STOREFL_P_W1].numel,
              sqrt(2.0 / (double)SFL_IN(&m->cfg)));
  fill_normal(&r, m->params[STOREFL_P_W2].data, m->params[STOREFL_P_W2].numel,
              sqrt(1.0 / (double)m->cfg.hidden));
}

static int same_cfg(const storefl_model *a, const storefl_model *b) {
  return a && b && a->cfg.buckets == b->cfg.buckets && a->cfg.dim == b->cfg.dim &&
         a->cfg.hidden == b->cfg.hidden;
}

int storefl_model_clone(const storefl_model *src, storefl_model **out) {
  if (!src || !out)
    return STOREFL_ERR_INVALID;
  int rc = storefl_model_create(&src->cfg, out);
  if (rc == STOREFL_OK)
    memcpy((*out)->block, src->block, src->numel * sizeof *src->block);
  return rc;
}

int storefl_model_copy(storefl_model *dst, const storefl_model *src) {
  if (!same_cfg(dst, src))
    return STOREFL_ERR_INVALID;
  if (dst != src)
    memcpy(dst->block, src->block, src->numel * sizeof *src->block);
  return STOREFL_OK;
}

int storefl_model_axpy(storefl_model *y, float alpha, const storefl_model *x) {
  if (!same_cfg(y, x))
    return STOREFL_ERR_INVALID;
  cblas_saxpy((blasint)y->numel, alpha, x->block, 1, y->block, 1);
  return STOREFL_OK;
}

int storefl_model_sub(storefl_model *out, const storefl_model *a, const storefl_model *b) {
  if (!same_cfg(out, a) || !same_cfg(a, b))
    return STOREFL_ERR_INVALID;
  for (size_t i = 0; i < out->numel; i++)
    out->block[i] = a->block[i] - b->block[i];
  return STOREFL_OK;
}

void storefl_model_zero(storefl_model *m) {
  memset(m->block, 0, m->numel * sizeof *m->block);
}

void storefl_model_scale(storefl_model *m, float alpha) {
  cblas_sscal((blasint)m->numel, alpha, m->block, 1);
}

double storefl_model_l2norm(const storefl_model *m) {
  double s = 0;
  for (size_t i = 0; i < m->numel; i++)
    s += (double)m->block[i] * m->block[i];
  return sqrt(s);
}

int storefl_model_all_finite(const storefl_model *m) {
  for (size_t i = 0; i < m->numel; i++)
    if (!isfinite(m->block[i]))
      return 0;
  return 1;
}

int storefl_model_param_index(const char *name, size_t len) {
  if (!name)
    return -1;
  for (int i = 0; i < STOREFL_MODEL_NPARAMS; i++)
    if (strlen(PARAM_NAMES[i]) == len && memcmp(PARAM_NAMES[i], name, len) == 0)
      return i;
  return -1;
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* float32 values little-endian, in chunks so that big-endian hosts need no full copy. */
static void floats_le(const float *x, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    uint32_t b;
    memcpy(&b, &x[i], 4);
    put_u32(out + 4 * i, b);
  }
}

int storefl_model_sha256(const storefl_model *m, uint8_t out[STOREFL_MODEL_DIGEST_LEN]) {
  if (!m || !out)
    return STOREFL_ERR_INVALID;
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  int rc = mbedtls_sha256_starts_ret(&ctx, 0);
  uint8_t buf[4096];
  for (int i = 0; rc == 0 && i < STOREFL_MODEL_NPARAMS; i++) {
    const storefl_param *p = &m->params[i];
    size_t nl = strlen(p->name), h = 0;
    put_u32(buf, (uint32_t)nl);
    memcpy(buf + 4, p->name, nl);
    h = 4 + nl;
    put_u32(buf + h, p->ndim);
    h += 4;
    for (uint32_t d = 0; d < p->ndim; d++, h += 8)
      put_u64(buf + h, p->shape[d]);
    rc = mbedtls_sha256_update_ret(&ctx, buf, h);
    for (size_t off = 0; rc == 0 && off < p->numel; off += sizeof buf / 4) {
      size_t n = p->numel - off < sizeof buf / 4 ? p->numel - off : sizeof buf / 4;
      floats_le(p->data + off, n, buf);
      rc = mbedtls_sha256_update_ret(&ctx, buf, 4 * n);
    }
  }
  if (rc == 0)
    rc = mbedtls_sha256_finish_ret(&ctx, out);
  mbedtls_sha256_free(&ctx);
  return rc == 0 ? STOREFL_OK : STOREFL_ERR_CRYPTO;
}

/* ---- contexts and rows ---- */

void sfl_hour_wday(int64_t t, int *hour, int *wday) {
  int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
  int64_t sec = t - days * 86400;
  *hour = (int)(sec / 3600);
  *wday = (int)(((days % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday (4) */
}

int sfl_ctx_init(sfl_ctx *x, uint32_t buckets, uint32_t dim, size_t max_items) {
  memset(x, 0, sizeof *x);
  x->buckets = buckets;
  x->tf_all = calloc(buckets, sizeof *x->tf_all);
  x->tf_bsk = calloc(buckets, sizeof *x->tf_bsk);
  x->cap_items = max_items ? max_items : 1;
  x->items = malloc(x->cap_items * sizeof *x->items);
  x->cap_touched = x->cap_items * STOREFL_MAX_ITEM_TOKENS;
  x->touched = malloc(x->cap_touched * sizeof *x->touched);
  x->u = calloc(dim, sizeof *x->u);
  x->wsum = calloc(buckets, sizeof *x->wsum);
  x->ub = malloc(x->cap_touched * sizeof *x->ub);
  x->uw = malloc(x->cap_touched * sizeof *x->uw);
  if (!x->tf_all || !x->tf_bsk || !x->items || !x->touched || !x->u || !x->wsum || !x->ub || !x->uw) {
    sfl_ctx_free(x);
    return STOREFL_ERR_NOMEM;
  }
  return STOREFL_OK;
}

void sfl_ctx_free(sfl_ctx *x) {
  free(x->tf_all);
  free(x->tf_bsk);
  free(x->items);
  free(x->touched);
  free(x->u);
  free(x->wsum);
  free(x->ub);
  free(x->uw);
  memset(x, 0, sizeof *x);
}

static void item_vec(const storefl_model *m, const storefl_catalog *c, uint32_t item, float *v) {
  uint32_t d = m->cfg.dim;
  const float *E = m->params[STOREFL_P_ITEM_EMB].data;
  const uint32_t *t = c->tok + (size_t)item * STOREFL_MAX_ITEM_TOKENS;
  size_t n = c->ntok[item];
  memset(v, 0, d * sizeof *v);
  if (n == 0)
    return;
  /* Plain loops: d is small (32) and a BLAS call per token row would cost more than the row. */
  float w = 1.0f / (float)n;
  for (size_t k = 0; k < n; k++) {
    const float *e = E + (size_t)t[k] * d;
    for (uint32_t j = 0; j < d; j++)
      v[j] += w * e[j];
  }
}

void sfl_ctx_build(sfl_ctx *x, const storefl_model *m, const storefl_catalog *c, const storefl_profile *p,
                   size_t hist_begin, size_t hist_end, const uint32_t *basket, size_t n_basket,
                   int64_t time) {
  uint32_t d = m->cfg.dim;
  /* Reset the previous context's accumulators. */
  for (size_t i = 0; i < x->ntouched; i++) {
    x->tf_all[x->touched[i]] = 0;
    x->tf_bsk[x->touched[i]] = 0;
  }
  x->ntouched = 0;
  x->nitems = 0;
  x->nu = 0;
  x->profile = p;
  x->time = time;
  size_t nh = hist_end > hist_begin ? hist_end - hist_begin : 0;
  if (nh + n_basket > x->cap_items) {
    /* Keep the most recent history: the caller sized cap_items for history + basket. */
    size_t room = x->cap_items > n_basket ? x->cap_items - n_basket : 0;
    if (nh > room) {
      hist_begin = hist_end - room;
      nh = room;
    }
    if (n_basket > x->cap_items)
      n_basket = x->cap_items;
  }
  double lp = 0;
  size_t nlp = 0;
  for (size_t i = 0; i < nh; i++) {
    uint32_t it = p->item[hist_begin + i];
    x->items[x->nitems++] = it;
    if (!isnan(c->logprice[it])) {
      lp += c->logprice[it];
      nlp++;
    }
  }
  for (size_t i = 0; i < n_basket; i++)
    x->items[x->nitems++] = basket[i];
  x->has_usual = nlp > 0;
  x->usual_logprice = nlp ? (float)(lp / (double)nlp) : 0.0f;

  /* u = mean item vector + hour + weekday; TF-IDF sums of the history+basket and basket texts. */
  sfl_hour_wday(time, &x->hour, &x->wday);
  memcpy(x->u, m->params[STOREFL_P_HOUR_EMB].data + (size_t)x->hour * d, d * sizeof *x->u);
  cblas_saxpy((blasint)d, 1.0f, m->params[STOREFL_P_WDAY_EMB].data + (size_t)x->wday * d, 1, x->u, 1);
  size_t with_tokens = 0;
  for (size_t i = 0; i < x->nitems; i++)
    with_tokens += c->ntok[x->items[i]] > 0;
  x->item_w = with_tokens ? 1.0f / (float)with_tokens : 0.0f;
  const float *E = m->params[STOREFL_P_ITEM_EMB].data;
  for (size_t i = 0; i < x->nitems; i++) {
    uint32_t it = x->items[i];
    const uint32_t *t = c->tok + (size_t)it * STOREFL_MAX_ITEM_TOKENS;
    size_t n = c->ntok[it];
    if (n == 0)
      continue;
    float w = x->item_w / (float)n;
    for (size_t k = 0; k < n; k++) {
      if (x->wsum[t[k]] == 0 && x->nu < x->cap_touched)
        x->ub[x->nu++] = t[k];
      x->wsum[t[k]] += w;
    }
    int in_basket = i >= nh;
    for (size_t k = 0; k < c->nwords[it]; k++) {
      uint32_t b = t[k];
      if (x->tf_all[b] == 0 && x->ntouched < x->cap_touched)
        x->touched[x->ntouched++] = b;
      x->tf_all[b] += c->idf[b];
      if (in_basket)
        x->tf_bsk[b] += c->idf[b];
    }
  }
  /* u += sum over distinct buckets of weight * row; the accumulator is cleared on the way. */
  for (size_t i = 0; i < x->nu; i++) {
    uint32_t b = x->ub[i];
    float w = x->wsum[b];
    x->uw[i] = w;
    x->wsum[b] = 0;
    const float *e = E + (size_t)b * d;
    for (uint32_t j = 0; j < d; j++)
      x->u[j] += w * e[j];
  }
  double na = 0, nb = 0;
  for (size_t i = 0; i < x->ntouched; i++) {
    uint32_t b = x->touched[i];
    na += (double)x->tf_all[b] * x->tf_all[b];
    nb += (double)x->tf_bsk[b] * x->tf_bsk[b];
  }
  x->norm_all = (float)sqrt(na);
  x->norm_bsk = (float)sqrt(nb);
}

void sfl_row(const sfl_ctx *x, const storefl_model *m, const storefl_catalog *c, uint32_t item, float *row,
             float *v_out) {
  uint32_t d = m->cfg.dim;
  float *u = row, *v = row + d, *uv = row + 2 * d, *wide = row + 3 * d;
  memcpy(u, x->u, d * sizeof *u);
  item_vec(m, c, item, v);
  for (uint32_t k = 0; k < d; k++)
    uv[k] = u[k] * v[k];
  if (v_out)
    memcpy(v_out, v, d * sizeof *v);

  const uint32_t *t = c->tok + (size_t)item * STOREFL_MAX_ITEM_TOKENS;
  double da = 0, db = 0;
  for (size_t k = 0; k < c->nwords[item]; k++) {
    da += (double)c->idf[t[k]] * x->tf_all[t[k]];
    db += (double)c->idf[t[k]] * x->tf_bsk[t[k]];
  }
  float ni = c->tfidf_norm[item];
  wide[0] = (ni > 0 && x->norm_all > 0) ? (float)(da / ((double)ni * x->norm_all)) : 0.0f;
  wide[1] = (ni > 0 && x->norm_bsk > 0) ? (float)(db / ((double)ni * x->norm_bsk)) : 0.0f;
  float lr = (x->has_usual && !isnan(c->logprice[item])) ? c->logprice[item] - x->usual_logprice : 0.0f;
  wide[2] = lr;
  wide[3] = fabsf(lr);
  int64_t age = x->time - c->first_seen[item];
  wide[4] = age < 0 ? 0.0f : (float)(1.0 / (1.0 + (double)age / (7.0 * 86400.0)));
  uint32_t cnt = x->profile ? storefl_profile_count_before(x->profile, item, x->time) : 0;
  wide[5] = (float)log1p((double)cnt);
}

void sfl_forward(const storefl_model *m, const float *X, size_t R, float *hid, float *z) {
  size_t in = SFL_IN(&m->cfg), H = m->cfg.hidden;
  const float *W1 = m->params[STOREFL_P_W1].data, *b1 = m->params[STOREFL_P_B1].data;
  const float *w2 = m->params[STOREFL_P_W2].data, *ww = m->params[STOREFL_P_WIDE].data;
  float bias = m->params[STOREFL_P_BIAS].data[0];
  for (size_t r = 0; r < R; r++)
    memcpy(hid + r * H, b1, H * sizeof *hid);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)R, (blasint)H, (blasint)in, 1.0f, X,
              (blasint)in, W1, (blasint)in, 1.0f, hid, (blasint)H);
  for (size_t i = 0; i < R * H; i++)
    hid[i] = hid[i] > 0 ? hid[i] : 0.0f;
  cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)R, (blasint)H, 1.0f, hid, (blasint)H, w2, 1, 0.0f, z, 1);
  for (size_t r = 0; r < R; r++) {
    const float *wide = X + r * in + 3 * (size_t)m->cfg.dim;
    float s = bias;
    for (int k = 0; k < STOREFL_WIDE_FEATURES; k++)
      s += ww[k] * wide[k];
    z[r] += s;
  }
}

/* ---- scoring ---- */

int storefl_model_score(const storefl_model *m, const storefl_catalog *c, const storefl_query *q,
                        const uint32_t *cands, size_t n, float *scores) {
  if (!m || !c || !q || (n && (!cands || !scores)) || !c->finalized || c->buckets != m->cfg.buckets ||
      (q->n_basket && !q->basket))
    return STOREFL_ERR_INVALID;
  if (q->profile && q->profile->c != c)
    return STOREFL_ERR_INVALID;
  for (size_t i = 0; i < n; i++)
    if (cands[i] >= c->n)
      return STOREFL_ERR_INVALID;
  for (size_t i = 0; i < q->n_basket; i++)
    if (q->basket[i] >= c->n)
      return STOREFL_ERR_INVALID;
  if (n == 0)
    return STOREFL_OK;
  if (q->history > 4096 || q->n_basket > 4096)
    return STOREFL_ERR_INVALID; /* bounds the context scratch */
  size_t hist = q->history ? q->history : 32;
  size_t in = SFL_IN(&m->cfg), H = m->cfg.hidden, chunk = n < SCORE_CHUNK ? n : SCORE_CHUNK;
  sfl_ctx x;
  int rc = sfl_ctx_init(&x, c->buckets, m->cfg.dim, hist + q->n_basket);
  if (rc != STOREFL_OK)
    return rc;
  float *X = malloc(chunk * in * sizeof *X), *hid = malloc(chunk * H * sizeof *hid);
  if (!X || !hid) {
    free(X);
    free(hid);
    sfl_ctx_free(&x);
    return STOREFL_ERR_NOMEM;
  }
  size_t end = q->profile ? storefl_profile_before(q->profile, q->time) : 0;
  size_t begin = end > hist ? end - hist : 0;
  sfl_ctx_build(&x, m, c, q->profile, begin, end, q->basket, q->n_basket, q->time);
  for (size_t off = 0; off < n; off += chunk) {
    size_t r = n - off < chunk ? n - off : chunk;
    for (size_t i = 0; i < r; i++)
      sfl_row(&x, m, c, cands[off + i], X + i * in, NULL);
    sfl_forward(m, X, r, hid, scores + off);
  }
  free(X);
  free(hid);
  sfl_ctx_free(&x);
  return STOREFL_OK;
}

int storefl_model_rank(const storefl_model *m, const storefl_catalog *c, const storefl_query *q,
                       const uint32_t *cands, size_t n, size_t k, uint32_t *out_items, float *out_scores) {
  if ((k > 0 && (!out_items || !out_scores)) || k > INT32_MAX)
    return STOREFL_ERR_INVALID;
  float *s = malloc((n ? n : 1) * sizeof *s);
  if (!s)
    return STOREFL_ERR_NOMEM;
  int rc = storefl_model_score(m, c, q, cands, n, s);
  if (rc != STOREFL_OK) {
    free(s);
    return rc;
  }
  /* Insertion into a sorted top-k: k is small (a screenful), n up to the catalogue. */
  size_t got = 0;
  for (size_t i = 0; i < n && k > 0; i++) {
    float v = s[i];
    if (isnan(v))
      continue;
    size_t pos = got;
    while (pos > 0 &&
           (out_scores[pos - 1] < v || (out_scores[pos - 1] == v && out_items[pos - 1] > cands[i])))
      pos--;
    if (pos >= k)
      continue;
    size_t last = got < k ? got : k - 1;
    for (size_t j = last; j > pos; j--) {
      out_items[j] = out_items[j - 1];
      out_scores[j] = out_scores[j - 1];
    }
    out_items[pos] = cands[i];
    out_scores[pos] = v;
    if (got < k)
      got++;
  }
  free(s);
  return (int)got;
}

/* ---- personalised head ---- */

#define HEAD_MAGIC "SFLH"
#define HEAD_VERSION 1
#define HEAD_HDR (4 + 4 * 4 + STOREFL_MODEL_DIGEST_LEN)
static const int HEAD_PARAMS[] = {STOREFL_P_W1, STOREFL_P_B1, STOREFL_P_W2, STOREFL_P_WIDE, STOREFL_P_BIAS};
#define N_HEAD_PARAMS (sizeof HEAD_PARAMS / sizeof HEAD_PARAMS[0])

static size_t head_floats(const storefl_model_config *cfg) {
  size_t H = cfg->hidden;
  return H * SFL_IN(cfg) + H + H + STOREFL_WIDE_FEATURES + 1;
}

size_t storefl_head_blob_size(const storefl_model_config *cfg) {
  return HEAD_HDR + 4 * head_floats(cfg);
}

int storefl_head_to_blob(const storefl_model *m, const uint8_t base_digest[STOREFL_MODEL_DIGEST_LEN],
                         uint8_t *buf, size_t cap, size_t *len) {
  if (!m || !base_digest || !buf)
    return STOREFL_ERR_INVALID;
  size_t need = storefl_head_blob_size(&m->cfg);
  if (cap < need)
    return STOREFL_ERR_TOO_LARGE;
  memcpy(buf, HEAD_MAGIC, 4);
  put_u32(buf + 4, HEAD_VERSION);
  put_u32(buf + 8, m->cfg.dim);
  put_u32(buf + 12, m->cfg.hidden);
  put_u32(buf + 16, STOREFL_WIDE_FEATURES);
  memcpy(buf + 20, base_digest, STOREFL_MODEL_DIGEST_LEN);
  size_t off = HEAD_HDR;
  for (size_t i = 0; i < N_HEAD_PARAMS; i++) {
    const storefl_param *p = &m->params[HEAD_PARAMS[i]];
    floats_le(p->data, p->numel, buf + off);
    off += 4 * p->numel;
  }
  if (len)
    *len = off;
  return STOREFL_OK;
}

int storefl_head_from_blob(storefl_model *m, const uint8_t *blob, size_t len,
                           const uint8_t base_digest[STOREFL_MODEL_DIGEST_LEN]) {
  if (!m || !blob)
    return STOREFL_ERR_INVALID;
  if (len != storefl_head_blob_size(&m->cfg) || memcmp(blob, HEAD_MAGIC, 4) != 0 ||
      get_u32(blob + 4) != HEAD_VERSION || get_u32(blob + 8) != m->cfg.dim ||
      get_u32(blob + 12) != m->cfg.hidden || get_u32(blob + 16) != STOREFL_WIDE_FEATURES)
    return STOREFL_ERR_FORMAT;
  if (base_digest && memcmp(blob + 20, base_digest, STOREFL_MODEL_DIGEST_LEN) != 0)
    return STOREFL_ERR_CONFLICT;
  size_t nf = head_floats(&m->cfg);
  for (size_t i = 0; i < nf; i++) {
    uint32_t b = get_u32(blob + HEAD_HDR + 4 * i);
    float f;
    memcpy(&f, &b, 4);
    if (!isfinite(f))
      return STOREFL_ERR_NONFINITE;
  }
  size_t off = HEAD_HDR;
  for (size_t i = 0; i < N_HEAD_PARAMS; i++) {
    storefl_param *p = &m->params[HEAD_PARAMS[i]];
    for (size_t j = 0; j < p->numel; j++, off += 4) {
      uint32_t b = get_u32(blob + off);
      memcpy(&p->data[j], &b, 4);
    }
  }
  return STOREFL_OK;
}
