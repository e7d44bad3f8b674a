/* SGD and Adam with sparse (lazy) updates of the item embedding table (storefl/optim.h). */
#include "storefl/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"

struct storefl_optim {
  storefl_optim_config cfg;
  storefl_model_config mcfg;
  size_t numel;
  float *m1, *m2; /* Adam moments, [numel] each, NULL for SGD */
  uint64_t t;
};

int storefl_optim_create(const storefl_optim_config *cfg, const storefl_model_config *mcfg,
                         storefl_optim **out) {
  if (!cfg || !mcfg || !out || (cfg->kind != STOREFL_OPT_SGD && cfg->kind != STOREFL_OPT_ADAM) ||
      !(cfg->lr > 0) || !isfinite(cfg->lr) || storefl_model_config_check(mcfg) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  if (cfg->kind == STOREFL_OPT_ADAM &&
      !(cfg->beta1 >= 0 && cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1 && cfg->eps > 0))
    return STOREFL_ERR_INVALID;
  storefl_model *probe;
  int rc = storefl_model_create(mcfg, &probe);
  if (rc != STOREFL_OK)
    return rc;
  size_t numel = probe->numel;
  storefl_model_free(probe);
  storefl_optim *o = calloc(1, sizeof *o);
  if (!o)
    return STOREFL_ERR_NOMEM;
  o->cfg = *cfg;
  o->mcfg = *mcfg;
  o->numel = numel;
  if (cfg->kind == STOREFL_OPT_ADAM) {
    o->m1 = calloc(numel, sizeof *o->m1);
    o->m2 = calloc(numel, sizeof *o->m2);
    if (!o->m1 || !o->m2) {
      storefl_optim_free(o);
      return STOREFL_ERR_NOMEM;
    }
  }
  *out = o;
  return STOREFL_OK;
}

void storefl_optim_free(storefl_optim *o) {
  if (!o)
    return;
  free(o->m1);
  free(o->m2);
  free(o);
}

void storefl_optim_reset(storefl_optim *o) {
  if (!o)
    return;
  if (o->m1) {
    memset(o->m1, 0, o->numel * sizeof *o->m1);
    memset(o->m2, 0, o->numel * sizeof *o->m2);
  }
  o->t = 0;
}

/* A contiguous range of the parameter block updated densely by a step. */
typedef struct range {
  size_t off, n;
} range;

/* Dense ranges a step updates: the context embeddings (unless head_only) and the head. The item
 * embedding rows are sparse and handled row by row. Returns the count written to r[0..2). */
static size_t dense_ranges(const storefl_optim *o, const storefl_model *m, range r[2]) {
  size_t k = 0;
  if (!o->cfg.head_only)
    r[k++] = (range){(size_t)(m->params[STOREFL_P_HOUR_EMB].data - m->block),
                     m->params[STOREFL_P_HOUR_EMB].numel + m->params[STOREFL_P_WDAY_EMB].numel};
  size_t head = (size_t)(m->params[STOREFL_P_W1].data - m->block);
  r[k++] = (range){head, m->numel - head};
  return k;
}

static void update(storefl_optim *o, float *w, const float *g, size_t off, size_t n, float scale,
                   float lr_t) {
  if (o->cfg.kind == STOREFL_OPT_SGD) {
    float a = -o->cfg.lr * scale;
    for (size_t i = 0; i < n; i++)
      w[off + i] += a * g[off + i];
    return;
  }
  float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps;
  float *m1 = o->m1 + off, *m2 = o->m2 + off;
  for (size_t i = 0; i < n; i++) {
    float gi = g[off + i] * scale;
    m1[i] = b1 * m1[i] + (1 - b1) * gi;
    m2[i] = b2 * m2[i] + (1 - b2) * gi * gi;
    w[off + i] -= lr_t * m1[i] / (sqrtf(m2[i]) + eps);
  }
}

int storefl_optim_step(storefl_optim *o, storefl_model *m, const storefl_model *grad, storefl_rows rows) {
  if (!o || !m || !grad || m->numel != o->numel || grad->numel != o->numel ||
      m->cfg.buckets != o->mcfg.buckets || m->cfg.dim != o->mcfg.dim || m->cfg.hidden != o->mcfg.hidden ||
      (rows.n && !rows.rows))
    return STOREFL_ERR_INVALID;
  size_t d = m->cfg.dim;
  range r[2];
  size_t nr = dense_ranges(o, m, r);
  size_t nrows = o->cfg.head_only ? 0 : rows.n;
  const float *E = grad->params[STOREFL_P_ITEM_EMB].data;
  size_t eoff = (size_t)(m->params[STOREFL_P_ITEM_EMB].data - m->block);
  /* Norm over exactly what this step reads, for clipping and the finiteness check. */
  double ss = 0;
  for (size_t k = 0; k < nr; k++)
    for (size_t i = 0; i < r[k].n; i++)
      ss += (double)grad->block[r[k].off + i] * grad->block[r[k].off + i];
  for (size_t j = 0; j < nrows; j++) {
    if (rows.rows[j] >= m->cfg.buckets)
      return STOREFL_ERR_INVALID;
    const float *g = E + (size_t)rows.rows[j] * d;
    for (size_t i = 0; i < d; i++)
      ss += (double)g[i] * g[i];
  }
  if (!isfinite(ss))
    return STOREFL_ERR_NONFINITE;
  float scale = 1.0f;
  if (o->cfg.clip > 0 && sqrt(ss) > o->cfg.clip)
    scale = (float)(o->cfg.clip / sqrt(ss));
  o->t++;
  float lr_t = o->cfg.lr;
  if (o->cfg.kind == STOREFL_OPT_ADAM)
    lr_t = (float)(o->cfg.lr * sqrt(1.0 - pow(o->cfg.beta2, (double)o->t)) /
                   (1.0 - pow(o->cfg.beta1, (double)o->t)));
  for (size_t k = 0; k < nr; k++)
    update(o, m->block, grad->block, r[k].off, r[k].n, scale, lr_t);
  for (size_t j = 0; j < nrows; j++)
    update(o, m->block, grad->block, eoff + (size_t)rows.rows[j] * d, d, scale, lr_t);
  return STOREFL_OK;
}
