/* Model-based evaluation methods; see eval_models.h. */
#include "eval_models.h"

#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "storefl/error.h"
#include "storefl/features.h"
#include "storefl/parse.h"
#include "storefl/prng.h"

struct storefl_eval_models {
  const storefl_eval_data *d;
  const storefl_eval_split *s;
  storefl_eval_model_config cfg;
  storefl_catalog *catalog;
  storefl_profile **profiles; /* per split client */
  size_t *train_count;        /* positives in each client's training window */
  uint32_t *neg_pool;
  size_t n_neg_pool;
  storefl_model *init;       /* the common initialisation */
  storefl_model *fed_global; /* trained on first use */
  double train_seconds;
  storefl_eval_progress progress;
  void *progress_arg;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void storefl_eval_model_config_default(storefl_eval_model_config *c) {
  memset(c, 0, sizeof *c);
  storefl_model_config_default(&c->model);
  storefl_train_config_default(&c->train);
  c->central_steps = 3000;
  c->local_steps = 100;
  c->rounds = 30;
  c->clients_per_round = 100;
  c->fed_local_steps = 10;
  c->server_lr = 1.0f;
  c->neg_recent_days = 0;
  c->seed = 1;
}

typedef struct ini_ctx {
  const char *section;
  storefl_eval_model_config *c;
  char *err;
  size_t errlen;
  int line;
} ini_ctx;

static int parse_u32(const char *v, uint32_t *out) {
  return storefl_parse_u32(v, 0, UINT32_MAX, out);
}

static int parse_f(const char *v, float *out) {
  return storefl_parse_float(v, -HUGE_VALF, HUGE_VALF, out);
}

static int eval_ini_handler(void *user, const char *section, const char *name, const char *value) {
  ini_ctx *x = user;
  if (strcmp(section, x->section) != 0)
    return 1;
  storefl_eval_model_config *c = x->c;
  storefl_train_config *t = &c->train;
  int bad = 0;
  uint32_t u;
  if (strcmp(name, "buckets") == 0)
    bad = parse_u32(value, &c->model.buckets);
  else if (strcmp(name, "dim") == 0)
    bad = parse_u32(value, &c->model.dim);
  else if (strcmp(name, "hidden") == 0)
    bad = parse_u32(value, &c->model.hidden);
  else if (strcmp(name, "optimizer") == 0) {
    if (strcasecmp(value, "adam") == 0)
      t->optim.kind = STOREFL_OPT_ADAM;
    else if (strcasecmp(value, "sgd") == 0)
      t->optim.kind = STOREFL_OPT_SGD;
    else
      bad = 1;
  } else if (strcmp(name, "lr") == 0)
    bad = parse_f(value, &t->optim.lr);
  else if (strcmp(name, "batch") == 0)
    bad = parse_u32(value, &t->batch);
  else if (strcmp(name, "negatives") == 0)
    bad = parse_u32(value, &t->negatives);
  else if (strcmp(name, "history") == 0)
    bad = parse_u32(value, &t->history);
  else if (strcmp(name, "max_basket") == 0)
    bad = parse_u32(value, &t->max_basket);
  else if (strcmp(name, "algo") == 0) {
    if (strcasecmp(value, "fedavg") == 0)
      t->algo = STOREFL_FED_FEDAVG;
    else if (strcasecmp(value, "fomaml") == 0)
      t->algo = STOREFL_FED_FOMAML;
    else
      bad = 1;
  } else if (strcmp(name, "central_steps") == 0)
    bad = parse_u32(value, &c->central_steps);
  else if (strcmp(name, "local_steps") == 0)
    bad = parse_u32(value, &c->local_steps);
  else if (strcmp(name, "rounds") == 0)
    bad = parse_u32(value, &c->rounds);
  else if (strcmp(name, "clients_per_round") == 0)
    bad = parse_u32(value, &c->clients_per_round);
  else if (strcmp(name, "fed_local_steps") == 0)
    bad = parse_u32(value, &c->fed_local_steps);
  else if (strcmp(name, "server_lr") == 0)
    bad = parse_f(value, &c->server_lr);
  else if (strcmp(name, "personal_steps") == 0)
    bad = parse_u32(value, &t->personal_steps);
  else if (strcmp(name, "personal_last") == 0)
    bad = parse_u32(value, &t->personal_last);
  else if (strcmp(name, "personal_lr") == 0)
    bad = parse_f(value, &t->personal_lr);
  else if (strcmp(name, "neg_recent_days") == 0) {
    bad = parse_u32(value, &u) || u > 100000;
    c->neg_recent_days = (int32_t)u;
  } else if (strcmp(name, "seed") == 0) {
    char *end;
    unsigned long long s = strtoull(value, &end, 10);
    bad = !*value || *end;
    c->seed = s;
  } else {
    if (x->err)
      snprintf(x->err, x->errlen, "[%s]: unknown key '%s'", x->section, name);
    return 0;
  }
  if (bad) {
    if (x->err)
      snprintf(x->err, x->errlen, "[%s]: bad value '%s' for %s", x->section, value, name);
    return 0;
  }
  return 1;
}

int storefl_eval_model_config_load_ini(const char *path, const char *section, storefl_eval_model_config *c,
                                       char *err, size_t errlen) {
  if (!path || !section || !c)
    return STOREFL_ERR_INVALID;
  storefl_eval_model_config tmp = *c;
  ini_ctx x = {section, &tmp, err, errlen, 0};
  if (err && errlen)
    err[0] = 0;
  int rc = ini_parse(path, eval_ini_handler, &x);
  if (rc < 0) {
    if (err)
      snprintf(err, errlen, "cannot open %s", path);
    return STOREFL_ERR_IO;
  }
  if (rc > 0) {
    if (err) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", err[0] ? err : "syntax error");
      snprintf(err, errlen, "%s:%d: %s", path, rc, msg);
    }
    return STOREFL_ERR_INVALID;
  }
  *c = tmp;
  return STOREFL_OK;
}

void storefl_eval_models_free(storefl_eval_models *mc) {
  if (!mc)
    return;
  if (mc->profiles)
    for (size_t c = 0; c < mc->s->nclients; c++)
      storefl_profile_free(mc->profiles[c]);
  free(mc->profiles);
  free(mc->train_count);
  free(mc->neg_pool);
  storefl_model_free(mc->init);
  storefl_model_free(mc->fed_global);
  storefl_catalog_free(mc->catalog);
  free(mc);
}

static storefl_train_data client_data(const storefl_eval_models *mc, uint32_t c) {
  storefl_train_data td = {mc->catalog, (const storefl_profile *const *)&mc->profiles[c], 1, INT64_MIN,
                           mc->s->adapt_end};
  return td;
}

int storefl_eval_models_create(const storefl_eval_data *d, const storefl_eval_split *s,
                               const storefl_eval_model_config *cfg, storefl_eval_models **out) {
  if (!d || !s || !cfg || !out || storefl_model_config_check(&cfg->model) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  storefl_eval_models *mc = calloc(1, sizeof *mc);
  if (!mc)
    return STOREFL_ERR_NOMEM;
  mc->d = d;
  mc->s = s;
  mc->cfg = *cfg;
  double t0 = now_s();
  int rc = storefl_catalog_create(cfg->model.buckets, &mc->catalog);
  if (rc)
    goto fail;
  for (size_t p = 0; p < d->nproducts; p++) {
    const storefl_eval_product *pr = &d->products[p];
    storefl_item_attrs sp = {pr->code,  pr->text ? pr->text : "",
                             NULL,      NULL,
                             pr->price, pr->first_clean != INT64_MAX ? pr->first_clean : pr->first_any};
    uint32_t idx;
    if ((rc = storefl_catalog_add(mc->catalog, &sp, &idx)))
      goto fail;
    if (idx != p) {
      rc = STOREFL_ERR_INTERNAL;
      goto fail;
    }
  }
  if ((rc = storefl_catalog_finalize(mc->catalog)))
    goto fail;
  rc = STOREFL_ERR_NOMEM;
  mc->profiles = calloc(s->nclients ? s->nclients : 1, sizeof *mc->profiles);
  mc->train_count = calloc(s->nclients ? s->nclients : 1, sizeof *mc->train_count);
  if (!mc->profiles || !mc->train_count)
    goto fail;
  for (size_t c = 0; c < s->nclients; c++)
    if ((rc = storefl_profile_create(mc->catalog, &mc->profiles[c])))
      goto fail;
  for (size_t i = 0; i < d->nlines; i++) {
    int32_t c = s->line_client[i];
    if (c < 0)
      continue;
    const storefl_eval_line *ln = &d->lines[i];
    if ((rc = storefl_profile_add(mc->profiles[c], ln->product, ln->t, ln->invoice)))
      goto fail;
  }
  for (size_t c = 0; c < s->nclients; c++) {
    storefl_train_data td = client_data(mc, (uint32_t)c);
    mc->train_count[c] = storefl_train_count(&td);
  }
  if (cfg->neg_recent_days > 0) {
    int64_t from = s->adapt_end - (int64_t)cfg->neg_recent_days * 86400;
    mc->neg_pool = malloc((d->nproducts ? d->nproducts : 1) * sizeof *mc->neg_pool);
    if (!mc->neg_pool) {
      rc = STOREFL_ERR_NOMEM;
      goto fail;
    }
    for (size_t p = 0; p < d->nproducts; p++)
      if (d->products[p].first_clean >= from && d->products[p].first_clean < s->adapt_end)
        mc->neg_pool[mc->n_neg_pool++] = (uint32_t)p;
    mc->cfg.train.neg_pool = mc->neg_pool;
    mc->cfg.train.n_neg_pool = mc->n_neg_pool;
  }
  mc->cfg.train.seed = cfg->seed;
  if ((rc = storefl_model_create(&cfg->model, &mc->init)))
    goto fail;
  storefl_model_init(mc->init, cfg->seed);
  mc->train_seconds += now_s() - t0;
  *out = mc;
  return STOREFL_OK;
fail:
  storefl_eval_models_free(mc);
  return rc;
}

void storefl_eval_models_set_progress(storefl_eval_models *mc, storefl_eval_progress progress, void *arg) {
  mc->progress = progress;
  mc->progress_arg = arg;
}

double storefl_eval_models_train_seconds(const storefl_eval_models *mc) {
  return mc->train_seconds;
}

/* FedAvg simulated in-process (see eval_models.h). */
static int train_federated(storefl_eval_models *mc) {
  const storefl_eval_model_config *cfg = &mc->cfg;
  size_t nc = mc->s->nclients;
  uint32_t *elig = malloc((nc ? nc : 1) * sizeof *elig);
  storefl_model *delta = NULL, *acc = NULL;
  int rc = STOREFL_ERR_NOMEM;
  if (!elig)
    return rc;
  size_t ne = 0;
  for (size_t c = 0; c < nc; c++)
    if (mc->train_count[c] > 0)
      elig[ne++] = (uint32_t)c;
  if ((rc = storefl_model_clone(mc->init, &mc->fed_global)) || (rc = storefl_model_clone(mc->init, &delta)) ||
      (rc = storefl_model_clone(mc->init, &acc)))
    goto out;
  storefl_prng rng;
  storefl_prng_seed(&rng, cfg->seed ^ 0x9e3779b97f4a7c15ull);
  size_t per = cfg->clients_per_round < ne ? cfg->clients_per_round : ne;
  for (uint32_t r = 0; r < cfg->rounds && per > 0; r++) {
    /* A seeded partial Fisher-Yates shuffle picks this round's clients. */
    for (size_t i = 0; i < per; i++) {
      size_t j = i + (size_t)storefl_prng_below(&rng, ne - i);
      uint32_t tmp = elig[i];
      elig[i] = elig[j];
      elig[j] = tmp;
    }
    storefl_model_zero(acc);
    double wsum = 0.0;
    for (size_t i = 0; i < per; i++) {
      storefl_train_config tc = cfg->train;
      tc.steps = cfg->fed_local_steps;
      tc.seed = cfg->seed + 1000003ull * (r + 1) + elig[i];
      storefl_train_data td = client_data(mc, elig[i]);
      size_t n = 0;
      if ((rc = storefl_local_update(mc->fed_global, &td, &tc, delta, &n)))
        goto out;
      if ((rc = storefl_model_axpy(acc, (float)n, delta)))
        goto out;
      wsum += (double)n;
    }
    if (wsum > 0 && (rc = storefl_model_axpy(mc->fed_global, (float)(cfg->server_lr / wsum), acc)))
      goto out;
    if (!storefl_model_all_finite(mc->fed_global)) {
      rc = STOREFL_ERR_NONFINITE;
      goto out;
    }
    if (mc->progress)
      mc->progress(mc->progress_arg, "federated rounds", r + 1, cfg->rounds);
  }
  rc = STOREFL_OK;
out:
  if (rc) {
    storefl_model_free(mc->fed_global);
    mc->fed_global = NULL;
  }
  storefl_model_free(delta);
  storefl_model_free(acc);
  free(elig);
  return rc;
}

typedef struct mstate {
  storefl_eval_models *mc;
  storefl_eval_model_kind kind;
  const storefl_model *base; /* personalised methods adapt this model (the federated one) */
  storefl_model *model;
  storefl_trainer *trainer; /* local-only */
  size_t clients_done;
} mstate;

static int model_begin(void *st, const storefl_eval_ctx *ctx) {
  mstate *m = st;
  storefl_eval_models *mc = m->mc;
  double t0 = now_s();
  int rc = STOREFL_OK;
  storefl_train_data td = client_data(mc, ctx->client);
  if (m->kind == STOREFL_EVAL_LOCAL) {
    if ((rc = storefl_model_copy(m->model, mc->init)))
      return rc;
    storefl_trainer_reset(m->trainer);
    rc = storefl_trainer_train(m->trainer, m->model, &td, mc->cfg.local_steps, NULL);
  } else if (m->kind == STOREFL_EVAL_FEDERATED_PERSONAL) {
    rc = storefl_personalize(m->base, &td, &mc->cfg.train, m->model);
  }
  mc->train_seconds += now_s() - t0;
  m->clients_done++;
  return rc;
}

static int model_score(void *st, const storefl_eval_ctx *ctx, const uint32_t *cands, size_t n,
                       float *scores) {
  mstate *m = st;
  storefl_query q = {m->mc->profiles[ctx->client], ctx->basket, ctx->nbasket, ctx->event->t,
                     m->mc->cfg.train.history};
  return storefl_model_score(m->model, m->mc->catalog, &q, cands, n, scores);
}

static void model_destroy(void *st) {
  mstate *m = st;
  if (!m)
    return;
  storefl_model_free(m->model);
  storefl_trainer_free(m->trainer);
  free(m);
}

int storefl_eval_method_model(storefl_eval_models *mc, storefl_eval_model_kind kind,
                              storefl_eval_method *out) {
  if (!mc || !out || kind > STOREFL_EVAL_FEDERATED_PERSONAL)
    return STOREFL_ERR_INVALID;
  memset(out, 0, sizeof *out);
  mstate *m = calloc(1, sizeof *m);
  if (!m)
    return STOREFL_ERR_NOMEM;
  m->mc = mc;
  m->kind = kind;
  double t0 = now_s();
  int rc = storefl_model_clone(mc->init, &m->model);
  if (rc)
    goto fail;
  switch (kind) {
  case STOREFL_EVAL_LOCAL:
    out->name = "local";
    rc = storefl_trainer_create(&mc->cfg.model, &mc->cfg.train, &m->trainer);
    break;
  case STOREFL_EVAL_CENTRAL: {
    out->name = "central";
    storefl_trainer *t = NULL;
    if ((rc = storefl_trainer_create(&mc->cfg.model, &mc->cfg.train, &t)))
      break;
    storefl_train_data td = {mc->catalog, (const storefl_profile *const *)mc->profiles, mc->s->nclients,
                             INT64_MIN, mc->s->adapt_end};
    /* Train in chunks so that progress shows. */
    uint32_t done = 0, chunk = 100;
    while (rc == STOREFL_OK && done < mc->cfg.central_steps) {
      uint32_t k = mc->cfg.central_steps - done < chunk ? mc->cfg.central_steps - done : chunk;
      rc = storefl_trainer_train(t, m->model, &td, k, NULL);
      done += k;
      if (mc->progress)
        mc->progress(mc->progress_arg, "central steps", done, mc->cfg.central_steps);
    }
    storefl_trainer_free(t);
    break;
  }
  case STOREFL_EVAL_FEDERATED:
  case STOREFL_EVAL_FEDERATED_PERSONAL:
    out->name = kind == STOREFL_EVAL_FEDERATED ? "federated" : "federated+personal";
    if (!mc->fed_global && (rc = train_federated(mc)))
      break;
    rc = storefl_model_copy(m->model, mc->fed_global);
    m->base = mc->fed_global;
    break;
  }
  if (rc)
    goto fail;
  mc->train_seconds += now_s() - t0;
  out->state = m;
  if (kind == STOREFL_EVAL_LOCAL || kind == STOREFL_EVAL_FEDERATED_PERSONAL)
    out->begin_client = model_begin;
  out->score = model_score;
  out->destroy = model_destroy;
  return STOREFL_OK;
fail:
  model_destroy(m);
  return rc;
}

/* Added for the federated demo (storefl-agent campaign): the same scoring and personalisation as the
 * federated methods, on a model trained elsewhere (the aggregator's). */
int storefl_eval_method_given(storefl_eval_models *mc, const storefl_model *global, int personal,
                              storefl_eval_method *out) {
  if (!mc || !global || !out)
    return STOREFL_ERR_INVALID;
  if (global->cfg.buckets != mc->cfg.model.buckets || global->cfg.dim != mc->cfg.model.dim ||
      global->cfg.hidden != mc->cfg.model.hidden)
    return STOREFL_ERR_INVALID; /* the catalogue hashes into mc's bucket count */
  memset(out, 0, sizeof *out);
  mstate *m = calloc(1, sizeof *m);
  if (!m)
    return STOREFL_ERR_NOMEM;
  m->mc = mc;
  m->kind = personal ? STOREFL_EVAL_FEDERATED_PERSONAL : STOREFL_EVAL_FEDERATED;
  m->base = global;
  int rc = storefl_model_clone(global, &m->model);
  if (rc) {
    model_destroy(m);
    return rc;
  }
  out->name = personal ? "given+personal" : "given";
  out->state = m;
  if (personal)
    out->begin_client = model_begin;
  out->score = model_score;
  out->destroy = model_destroy;
  return STOREFL_OK;
}
