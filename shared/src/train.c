/* Batched loss and gradient, local training, the local federated step and personalisation
 * (storefl/train.h). */
#include "storefl/train.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "storefl/error.h"
#include "storefl/prng.h"

/* Draws per negative before accepting one that is not yet launched. */
#define NEG_TRIES 16

typedef struct ex_ref {
  uint32_t profile, event;
} ex_ref;

/* A shuffled stream of examples, reshuffled at each pass. */
typedef struct sampler {
  ex_ref *ex;
  size_t n, pos;
} sampler;

struct storefl_trainer {
  storefl_model_config mcfg;
  storefl_train_config cfg;
  storefl_optim *opt;
  storefl_prng rng;
  storefl_model *grad;
  uint8_t *touched; /* [B] rows of grad's item_emb that are non-zero */
  uint32_t *rows;
  size_t nrows;
  sfl_ctx ctx;
  size_t max_ctx;  /* history + basket items per example */
  size_t cap_ex;   /* examples per batch the buffers hold */
  size_t cap_rows; /* rows per batch the buffers hold */
  float *X, *hid, *z, *dz, *dX, *V, *U, *dU;
  uint32_t *row_item, *row_ex;
  uint32_t *cx_b; /* per example: the context's distinct buckets (sfl_ctx ub) */
  float *cx_bw;   /* and their weights */
  size_t *cx_off, *cx_n;
  int *cx_hour, *cx_wday;
  uint32_t *negbuf;
  storefl_example *exbuf;
  sampler main;
};

void storefl_train_config_default(storefl_train_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->optim = (storefl_optim_config){STOREFL_OPT_ADAM, 0.005f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
  cfg->batch = 32;
  cfg->negatives = 4;
  cfg->steps = 50;
  cfg->history = 32;
  cfg->max_basket = 16;
  cfg->seed = 1;
  cfg->algo = STOREFL_FED_FEDAVG;
  cfg->support_frac = 0.5f;
  cfg->inner_steps = 3;
  cfg->inner_lr = 0.05f;
  cfg->personal_steps = 20;
  cfg->personal_last = 256;
  cfg->personal_lr = 0.005f;
}

static int check_cfg(const storefl_train_config *c) {
  if (!c || c->batch == 0 || c->batch > 65536 || c->negatives > 1024 || c->history > 4096 ||
      c->max_basket > 4096 || (c->n_neg_pool && !c->neg_pool) ||
      (c->algo != STOREFL_FED_FEDAVG && c->algo != STOREFL_FED_FOMAML) || !(c->support_frac > 0) ||
      !(c->support_frac < 1) || !(c->inner_lr > 0) || !(c->personal_lr > 0))
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

static int check_data(const storefl_train_data *d, const storefl_model_config *mcfg) {
  if (!d || !d->catalog || !d->catalog->finalized || d->catalog->buckets != mcfg->buckets ||
      (d->n_profiles && !d->profiles) || d->n_profiles > UINT32_MAX)
    return STOREFL_ERR_INVALID;
  for (size_t i = 0; i < d->n_profiles; i++)
    if (!d->profiles[i] || d->profiles[i]->c != d->catalog)
      return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

static int ensure_batch(storefl_trainer *t, size_t nex, size_t nrows) {
  if (nex <= t->cap_ex && nrows <= t->cap_rows)
    return STOREFL_OK;
  size_t d = t->mcfg.dim, in = SFL_IN(&t->mcfg), H = t->mcfg.hidden;
  size_t ce = nex > t->cap_ex ? nex : t->cap_ex, cr = nrows > t->cap_rows ? nrows : t->cap_rows;
#define RE(p, n)                                                                                             \
  do {                                                                                                       \
    void *np_ = realloc((p), (n) * sizeof *(p));                                                             \
    if (!np_)                                                                                                \
      return STOREFL_ERR_NOMEM;                                                                              \
    (p) = np_;                                                                                               \
  } while (0)
  RE(t->X, cr * in);
  RE(t->dX, cr * in);
  RE(t->hid, cr * H);
  RE(t->z, cr);
  RE(t->dz, cr);
  RE(t->V, cr * d);
  RE(t->row_item, cr);
  RE(t->row_ex, cr);
  RE(t->U, ce * d);
  RE(t->dU, ce * d);
  RE(t->cx_b, ce * t->max_ctx * STOREFL_MAX_ITEM_TOKENS);
  RE(t->cx_bw, ce * t->max_ctx * STOREFL_MAX_ITEM_TOKENS);
  RE(t->cx_off, ce);
  RE(t->cx_n, ce);
  RE(t->cx_hour, ce);
  RE(t->cx_wday, ce);
  RE(t->exbuf, ce);
  RE(t->negbuf, ce * (t->cfg.negatives ? t->cfg.negatives : 1));
#undef RE
  t->cap_ex = ce;
  t->cap_rows = cr;
  return STOREFL_OK;
}

int storefl_trainer_create(const storefl_model_config *mcfg, const storefl_train_config *cfg,
                           storefl_trainer **out) {
  if (!out || storefl_model_config_check(mcfg) != STOREFL_OK || check_cfg(cfg) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  storefl_trainer *t = calloc(1, sizeof *t);
  if (!t)
    return STOREFL_ERR_NOMEM;
  t->mcfg = *mcfg;
  t->cfg = *cfg;
  t->max_ctx = (size_t)cfg->history + cfg->max_basket;
  storefl_prng_seed(&t->rng, cfg->seed);
  int rc = storefl_optim_create(&cfg->optim, mcfg, &t->opt);
  if (rc == STOREFL_OK)
    rc = storefl_model_create(mcfg, &t->grad);
  if (rc == STOREFL_OK)
    rc = sfl_ctx_init(&t->ctx, mcfg->buckets, mcfg->dim, t->max_ctx);
  if (rc == STOREFL_OK) {
    t->touched = calloc(mcfg->buckets, 1);
    t->rows = malloc(mcfg->buckets * sizeof *t->rows);
    if (!t->touched || !t->rows)
      rc = STOREFL_ERR_NOMEM;
  }
  if (rc == STOREFL_OK)
    rc = ensure_batch(t, cfg->batch, (size_t)cfg->batch * (1 + cfg->negatives));
  if (rc != STOREFL_OK) {
    storefl_trainer_free(t);
    return rc;
  }
  *out = t;
  return STOREFL_OK;
}

void storefl_trainer_free(storefl_trainer *t) {
  if (!t)
    return;
  storefl_optim_free(t->opt);
  storefl_model_free(t->grad);
  sfl_ctx_free(&t->ctx);
  free(t->touched);
  free(t->rows);
  free(t->X);
  free(t->dX);
  free(t->hid);
  free(t->z);
  free(t->dz);
  free(t->V);
  free(t->U);
  free(t->dU);
  free(t->row_item);
  free(t->row_ex);
  free(t->cx_b);
  free(t->cx_bw);
  free(t->cx_off);
  free(t->cx_n);
  free(t->cx_hour);
  free(t->cx_wday);
  free(t->negbuf);
  free(t->exbuf);
  free(t->main.ex);
  free(t);
}

void storefl_trainer_reset(storefl_trainer *t) {
  if (!t)
    return;
  storefl_optim_reset(t->opt);
  storefl_prng_seed(&t->rng, t->cfg.seed);
  t->main.pos = 0;
}

/* Clears the previous gradient: dense parts fully, item_emb only where it was touched. */
static void grad_clear(storefl_trainer *t) {
  storefl_model *g = t->grad;
  size_t d = t->mcfg.dim;
  float *E = g->params[STOREFL_P_ITEM_EMB].data;
  for (size_t i = 0; i < t->nrows; i++) {
    memset(E + (size_t)t->rows[i] * d, 0, d * sizeof *E);
    t->touched[t->rows[i]] = 0;
  }
  t->nrows = 0;
  size_t off = (size_t)(g->params[STOREFL_P_HOUR_EMB].data - g->block);
  memset(g->block + off, 0, (g->numel - off) * sizeof *g->block);
}

/* grad item_emb[row] += w * x */
static void emb_add(storefl_trainer *t, uint32_t row, float w, const float *x) {
  size_t d = t->mcfg.dim;
  if (!t->touched[row]) {
    t->touched[row] = 1;
    t->rows[t->nrows++] = row;
  }
  float *g = t->grad->params[STOREFL_P_ITEM_EMB].data + (size_t)row * d;
  for (size_t j = 0; j < d; j++)
    g[j] += w * x[j];
}

static int loss_grad(storefl_trainer *t, const storefl_model *m, const storefl_train_data *data,
                     const storefl_example *ex, size_t n, double *loss, int want_grad) {
  const storefl_catalog *c = data->catalog;
  size_t d = t->mcfg.dim, in = SFL_IN(&t->mcfg), H = t->mcfg.hidden;
  size_t R = 0;
  for (size_t e = 0; e < n; e++) {
    if (ex[e].profile >= data->n_profiles || ex[e].event >= data->profiles[ex[e].profile]->n ||
        (ex[e].n_negatives && !ex[e].negatives))
      return STOREFL_ERR_INVALID;
    for (uint32_t k = 0; k < ex[e].n_negatives; k++)
      if (ex[e].negatives[k] >= c->n)
        return STOREFL_ERR_INVALID;
    R += 1 + ex[e].n_negatives;
  }
  if (n == 0 || R == 0) {
    *loss = 0;
    if (want_grad)
      grad_clear(t);
    return STOREFL_OK;
  }
  int rc = ensure_batch(t, n, R);
  if (rc != STOREFL_OK)
    return rc;

  /* Contexts and MLP input rows. */
  size_t r = 0;
  for (size_t e = 0; e < n; e++) {
    const storefl_profile *p = data->profiles[ex[e].profile];
    size_t i = ex[e].event, bs = p->bstart[i];
    uint32_t basket[4096];
    size_t nb = 0;
    for (size_t j = bs; j < p->n && p->bstart[j] == bs && nb < t->cfg.max_basket; j++)
      if (j != i)
        basket[nb++] = p->item[j];
    size_t hb = bs > t->cfg.history ? bs - t->cfg.history : 0;
    sfl_ctx_build(&t->ctx, m, c, p, hb, bs, basket, nb, p->time[i]);
    memcpy(t->U + e * d, t->ctx.u, d * sizeof *t->U);
    t->cx_off[e] = e * t->max_ctx * STOREFL_MAX_ITEM_TOKENS;
    t->cx_n[e] = t->ctx.nu;
    memcpy(t->cx_b + t->cx_off[e], t->ctx.ub, t->ctx.nu * sizeof *t->cx_b);
    memcpy(t->cx_bw + t->cx_off[e], t->ctx.uw, t->ctx.nu * sizeof *t->cx_bw);
    t->cx_hour[e] = t->ctx.hour;
    t->cx_wday[e] = t->ctx.wday;
    for (uint32_t k = 0; k <= ex[e].n_negatives; k++, r++) {
      uint32_t it = k == 0 ? p->item[i] : ex[e].negatives[k - 1];
      t->row_item[r] = it;
      t->row_ex[r] = (uint32_t)e;
      sfl_row(&t->ctx, m, c, it, t->X + r * in, t->V + r * d);
    }
  }

  sfl_forward(m, t->X, R, t->hid, t->z);
  double L = 0;
  for (size_t q = 0; q < R; q++) {
    float z = t->z[q];
    int y = q == 0 || t->row_ex[q] != t->row_ex[q - 1];
    /* log(1 + e^-|z|) + max(z, 0) - y z: stable BCE with logits */
    L += log1p(exp(-fabs((double)z))) + (z > 0 ? z : 0) - (y ? z : 0);
    double s = 1.0 / (1.0 + exp(-(double)z));
    t->dz[q] = (float)((s - y) / (double)R);
  }
  *loss = L / (double)R;
  if (!want_grad)
    return STOREFL_OK;

  grad_clear(t);
  storefl_model *g = t->grad;
  const float *W1 = m->params[STOREFL_P_W1].data, *w2 = m->params[STOREFL_P_W2].data;
  float *gW1 = g->params[STOREFL_P_W1].data, *gb1 = g->params[STOREFL_P_B1].data;
  float *gw2 = g->params[STOREFL_P_W2].data, *gww = g->params[STOREFL_P_WIDE].data;
  float *gbias = g->params[STOREFL_P_BIAS].data;
  for (size_t q = 0; q < R; q++) {
    const float *wide = t->X + q * in + 3 * d;
    gbias[0] += t->dz[q];
    for (int k = 0; k < STOREFL_WIDE_FEATURES; k++)
      gww[k] += t->dz[q] * wide[k];
  }
  /* gw2 = A^T dz, then dHpre = dz w2^T masked by the ReLU (in place of the activations). */
  cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)R, (blasint)H, 1.0f, t->hid, (blasint)H, t->dz, 1, 0.0f,
              gw2, 1);
  for (size_t q = 0; q < R; q++) {
    float *a = t->hid + q * H;
    for (size_t h = 0; h < H; h++)
      a[h] = a[h] > 0 ? t->dz[q] * w2[h] : 0.0f;
  }
  for (size_t q = 0; q < R; q++)
    cblas_saxpy((blasint)H, 1.0f, t->hid + q * H, 1, gb1, 1);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)H, (blasint)in, (blasint)R, 1.0f, t->hid,
              (blasint)H, t->X, (blasint)in, 0.0f, gW1, (blasint)in);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)R, (blasint)in, (blasint)H, 1.0f, t->hid,
              (blasint)H, W1, (blasint)in, 0.0f, t->dX, (blasint)in);

  /* dX -> du (per example) and dv (per row, scattered to the item's token rows). */
  memset(t->dU, 0, n * d * sizeof *t->dU);
  float dv[1024];
  for (size_t q = 0; q < R; q++) {
    size_t e = t->row_ex[q];
    const float *dx = t->dX + q * in, *u = t->U + e * d, *v = t->V + q * d;
    float *du = t->dU + e * d;
    for (size_t k = 0; k < d; k++) {
      du[k] += dx[k] + dx[2 * d + k] * v[k];
      dv[k] = dx[d + k] + dx[2 * d + k] * u[k];
    }
    uint32_t it = t->row_item[q];
    const uint32_t *tok = c->tok + (size_t)it * STOREFL_MAX_ITEM_TOKENS;
    size_t nt = c->ntok[it];
    for (size_t k = 0; k < nt; k++)
      emb_add(t, tok[k], 1.0f / (float)nt, dv);
  }
  float *gh = g->params[STOREFL_P_HOUR_EMB].data, *gw = g->params[STOREFL_P_WDAY_EMB].data;
  for (size_t e = 0; e < n; e++) {
    const float *du = t->dU + e * d;
    cblas_saxpy((blasint)d, 1.0f, du, 1, gh + (size_t)t->cx_hour[e] * d, 1);
    cblas_saxpy((blasint)d, 1.0f, du, 1, gw + (size_t)t->cx_wday[e] * d, 1);
    for (size_t j = 0; j < t->cx_n[e]; j++)
      emb_add(t, t->cx_b[t->cx_off[e] + j], t->cx_bw[t->cx_off[e] + j], du);
  }
  return STOREFL_OK;
}

int storefl_trainer_loss_grad(storefl_trainer *t, const storefl_model *m, const storefl_train_data *data,
                              const storefl_example *ex, size_t n, double *loss, const storefl_model **grad,
                              storefl_rows *rows) {
  if (!t || !m || !loss || (n && !ex) || check_data(data, &t->mcfg) != STOREFL_OK ||
      m->cfg.buckets != t->mcfg.buckets || m->cfg.dim != t->mcfg.dim || m->cfg.hidden != t->mcfg.hidden)
    return STOREFL_ERR_INVALID;
  int rc = loss_grad(t, m, data, ex, n, loss, grad != NULL);
  if (rc == STOREFL_OK && grad) {
    *grad = t->grad;
    if (rows)
      *rows = (storefl_rows){t->rows, t->nrows};
  }
  return rc;
}

/* ---- example streams ---- */

size_t storefl_train_count(const storefl_train_data *data) {
  if (!data)
    return 0;
  size_t n = 0;
  for (size_t i = 0; i < data->n_profiles; i++) {
    const storefl_profile *p = data->profiles[i];
    n += storefl_profile_before(p, data->t_end) - storefl_profile_before(p, data->t_begin);
  }
  return n;
}

/* Examples of the window; with last > 0 only the latest `last` of each profile. */
static int sampler_fill(sampler *s, const storefl_train_data *data, size_t last) {
  size_t n = 0;
  for (size_t i = 0; i < data->n_profiles; i++) {
    const storefl_profile *p = data->profiles[i];
    size_t a = storefl_profile_before(p, data->t_begin), b = storefl_profile_before(p, data->t_end);
    n += (last && b - a > last) ? last : b - a;
  }
  ex_ref *ex = malloc((n ? n : 1) * sizeof *ex);
  if (!ex)
    return STOREFL_ERR_NOMEM;
  size_t k = 0;
  for (size_t i = 0; i < data->n_profiles; i++) {
    const storefl_profile *p = data->profiles[i];
    size_t a = storefl_profile_before(p, data->t_begin), b = storefl_profile_before(p, data->t_end);
    if (last && b - a > last)
      a = b - last;
    for (size_t j = a; j < b; j++)
      ex[k++] = (ex_ref){(uint32_t)i, (uint32_t)j};
  }
  free(s->ex);
  s->ex = ex;
  s->n = n;
  s->pos = n; /* shuffle before the first batch */
  return STOREFL_OK;
}

static void shuffle(storefl_prng *r, ex_ref *ex, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)storefl_prng_below(r, i);
    ex_ref tmp = ex[i - 1];
    ex[i - 1] = ex[j];
    ex[j] = tmp;
  }
}

static uint32_t draw_negative(storefl_trainer *t, const storefl_catalog *c, uint32_t pos, int64_t time) {
  const storefl_train_config *cfg = &t->cfg;
  size_t pool = cfg->neg_pool ? cfg->n_neg_pool : c->n;
  uint32_t cand = UINT32_MAX;
  for (int k = 0; k < NEG_TRIES; k++) {
    uint64_t j = storefl_prng_below(&t->rng, pool);
    uint32_t it = cfg->neg_pool ? cfg->neg_pool[j] : (uint32_t)j;
    if (it == pos || it >= c->n)
      continue;
    cand = it;
    if (c->first_seen[it] <= time)
      break;
  }
  return cand;
}

/* Next batch of the stream with freshly sampled negatives, into t->exbuf; returns its size. */
static size_t next_batch(storefl_trainer *t, sampler *s, const storefl_train_data *data) {
  size_t b = t->cfg.batch < s->n ? t->cfg.batch : s->n;
  uint32_t K = t->cfg.negatives;
  for (size_t e = 0; e < b; e++) {
    if (s->pos >= s->n) {
      shuffle(&t->rng, s->ex, s->n);
      s->pos = 0;
    }
    ex_ref r = s->ex[s->pos++];
    const storefl_profile *p = data->profiles[r.profile];
    uint32_t *neg = t->negbuf + e * (K ? K : 1), nn = 0;
    for (uint32_t k = 0; k < K; k++) {
      uint32_t it = draw_negative(t, data->catalog, p->item[r.event], p->time[r.event]);
      if (it != UINT32_MAX)
        neg[nn++] = it;
    }
    t->exbuf[e] = (storefl_example){r.profile, r.event, neg, nn};
  }
  return b;
}

static int train_steps(storefl_trainer *t, storefl_optim *opt, storefl_model *m, sampler *s,
                       const storefl_train_data *data, uint32_t steps, storefl_train_stats *st) {
  for (uint32_t k = 0; k < steps && s->n > 0; k++) {
    size_t b = next_batch(t, s, data);
    double loss;
    int rc = loss_grad(t, m, data, t->exbuf, b, &loss, 1);
    if (rc == STOREFL_OK)
      rc = storefl_optim_step(opt, m, t->grad, (storefl_rows){t->rows, t->nrows});
    if (rc != STOREFL_OK)
      return rc;
    if (st) {
      if (st->steps == 0)
        st->first_loss = loss;
      st->last_loss = loss;
      st->steps++;
    }
  }
  return STOREFL_OK;
}

static int same_model_cfg(const storefl_model *m, const storefl_model_config *c) {
  return m && m->cfg.buckets == c->buckets && m->cfg.dim == c->dim && m->cfg.hidden == c->hidden;
}

int storefl_trainer_train(storefl_trainer *t, storefl_model *m, const storefl_train_data *data,
                          uint32_t steps, storefl_train_stats *stats) {
  if (!t || !same_model_cfg(m, &t->mcfg) || check_data(data, &t->mcfg) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  int rc = sampler_fill(&t->main, data, 0);
  if (rc != STOREFL_OK)
    return rc;
  storefl_train_stats st = {t->main.n, 0, 0, 0};
  rc = train_steps(t, t->opt, m, &t->main, data, steps, &st);
  if (stats)
    *stats = st;
  return rc;
}

/* ---- federated step and personalisation ---- */

static int fomaml(storefl_trainer *t, storefl_model *local, const storefl_train_data *data) {
  const storefl_train_config *cfg = &t->cfg;
  sampler all = {0}, sup = {0}, qry = {0};
  storefl_model *adapted = NULL;
  storefl_optim *inner = NULL;
  int rc = sampler_fill(&all, data, 0);
  if (rc != STOREFL_OK)
    return rc;
  /* Support = earliest fraction by time, query = the rest: adapting to the past must help on the
   * future, which is what personalisation at recommendation time does. */
  size_t ns = (size_t)((double)all.n * cfg->support_frac);
  if (ns == 0)
    ns = 1;
  if (all.n < 2) {
    /* Too few examples to split: plain local steps. */
    rc = train_steps(t, t->opt, local, &all, data, cfg->steps, NULL);
    free(all.ex);
    return rc;
  }
  if (ns >= all.n)
    ns = all.n - 1;
  /* Order all examples by time (stable across profiles: by time, then profile, then event). */
  for (size_t i = 1; i < all.n; i++) {
    ex_ref v = all.ex[i];
    int64_t tv = data->profiles[v.profile]->time[v.event];
    size_t j = i;
    while (j > 0) {
      ex_ref w = all.ex[j - 1];
      int64_t tw = data->profiles[w.profile]->time[w.event];
      if (tw < tv || (tw == tv && (w.profile < v.profile || (w.profile == v.profile && w.event < v.event))))
        break;
      all.ex[j] = w;
      j--;
    }
    all.ex[j] = v;
  }
  sup.ex = malloc(ns * sizeof *sup.ex);
  qry.ex = malloc((all.n - ns) * sizeof *qry.ex);
  storefl_optim_config ic = {STOREFL_OPT_SGD, cfg->inner_lr, 0, 0, 0, cfg->optim.clip, cfg->optim.head_only};
  if (!sup.ex || !qry.ex) {
    rc = STOREFL_ERR_NOMEM;
    goto out;
  }
  memcpy(sup.ex, all.ex, ns * sizeof *sup.ex);
  memcpy(qry.ex, all.ex + ns, (all.n - ns) * sizeof *qry.ex);
  sup.n = sup.pos = ns;
  qry.n = qry.pos = all.n - ns;
  if ((rc = storefl_model_create(&t->mcfg, &adapted)) != STOREFL_OK ||
      (rc = storefl_optim_create(&ic, &t->mcfg, &inner)) != STOREFL_OK)
    goto out;
  for (uint32_t k = 0; k < cfg->steps; k++) {
    storefl_model_copy(adapted, local);
    if ((rc = train_steps(t, inner, adapted, &sup, data, cfg->inner_steps, NULL)) != STOREFL_OK)
      goto out;
    size_t b = next_batch(t, &qry, data);
    double loss;
    if ((rc = loss_grad(t, adapted, data, t->exbuf, b, &loss, 1)) != STOREFL_OK)
      goto out;
    /* First-order MAML: the query gradient at the adapted weights updates the local weights. */
    if ((rc = storefl_optim_step(t->opt, local, t->grad, (storefl_rows){t->rows, t->nrows})) != STOREFL_OK)
      goto out;
  }
out:
  storefl_optim_free(inner);
  storefl_model_free(adapted);
  free(all.ex);
  free(sup.ex);
  free(qry.ex);
  return rc;
}

int storefl_local_update(const storefl_model *global, const storefl_train_data *data,
                         const storefl_train_config *cfg, storefl_model *delta, size_t *n_examples) {
  if (!global || !delta || !same_model_cfg(delta, &global->cfg) || check_cfg(cfg) != STOREFL_OK ||
      check_data(data, &global->cfg) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  size_t n = storefl_train_count(data);
  if (n_examples)
    *n_examples = n;
  if (n == 0) {
    storefl_model_zero(delta);
    return STOREFL_OK;
  }
  storefl_trainer *t = NULL;
  storefl_model *local = NULL;
  int rc = storefl_trainer_create(&global->cfg, cfg, &t);
  if (rc == STOREFL_OK)
    rc = storefl_model_clone(global, &local);
  if (rc == STOREFL_OK) {
    if (cfg->algo == STOREFL_FED_FOMAML) {
      rc = fomaml(t, local, data);
    } else {
      rc = sampler_fill(&t->main, data, 0);
      if (rc == STOREFL_OK)
        rc = train_steps(t, t->opt, local, &t->main, data, cfg->steps, NULL);
    }
  }
  if (rc == STOREFL_OK)
    rc = storefl_model_sub(delta, local, global);
  storefl_model_free(local);
  storefl_trainer_free(t);
  return rc;
}

int storefl_personalize(const storefl_model *global, const storefl_train_data *data,
                        const storefl_train_config *cfg, storefl_model *out) {
  if (!global || !out || !same_model_cfg(out, &global->cfg) || check_cfg(cfg) != STOREFL_OK ||
      check_data(data, &global->cfg) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  int rc = storefl_model_copy(out, global);
  if (rc != STOREFL_OK)
    return rc;
  storefl_train_config pc = *cfg;
  pc.optim =
      (storefl_optim_config){STOREFL_OPT_ADAM, cfg->personal_lr, 0.9f, 0.999f, 1e-8f, cfg->optim.clip, 1};
  storefl_trainer *t = NULL;
  rc = storefl_trainer_create(&global->cfg, &pc, &t);
  if (rc == STOREFL_OK)
    rc = sampler_fill(&t->main, data, cfg->personal_last ? cfg->personal_last : 1);
  if (rc == STOREFL_OK)
    rc = train_steps(t, t->opt, out, &t->main, data, cfg->personal_steps, NULL);
  storefl_trainer_free(t);
  return rc;
}
