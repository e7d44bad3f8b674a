/* [model] section of the agent configuration: model shape and training hyper-parameters. */
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/parse.h"
#include "storefl/train.h"

typedef struct ctx {
  const char *section;
  storefl_model_config mc;
  storefl_train_config tc;
  char msg[160];
} ctx;

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out) {
  return storefl_parse_u32(v, lo, hi, out);
}

static int parse_u64(const char *v, uint64_t *out) {
  return storefl_parse_u64(v, 0, UINT64_MAX, out);
}

static int parse_f(const char *v, float lo, float hi, float *out) {
  return storefl_parse_float(v, lo, hi, out);
}

static int handler(void *user, const char *section, const char *name, const char *value) {
  ctx *c = user;
  if (strcmp(section, c->section) != 0)
    return 1;
  storefl_train_config *t = &c->tc;
  storefl_model_config *m = &c->mc;
  int bad = 0;
  if (strcmp(name, "buckets") == 0) {
    bad = parse_u32(value, 16, 1u << 24, &m->buckets) || (m->buckets & (m->buckets - 1)) != 0;
  } else if (strcmp(name, "dim") == 0) {
    bad = parse_u32(value, 1, 1024, &m->dim);
  } else if (strcmp(name, "hidden") == 0) {
    bad = parse_u32(value, 1, 4096, &m->hidden);
  } else if (strcmp(name, "optimizer") == 0) {
    if (strcmp(value, "adam") == 0)
      t->optim.kind = STOREFL_OPT_ADAM;
    else if (strcmp(value, "sgd") == 0)
      t->optim.kind = STOREFL_OPT_SGD;
    else
      bad = 1;
  } else if (strcmp(name, "lr") == 0) {
    bad = parse_f(value, 1e-9f, 10.0f, &t->optim.lr);
  } else if (strcmp(name, "beta1") == 0) {
    bad = parse_f(value, 0.0f, 0.999999f, &t->optim.beta1);
  } else if (strcmp(name, "beta2") == 0) {
    bad = parse_f(value, 0.0f, 0.999999f, &t->optim.beta2);
  } else if (strcmp(name, "clip") == 0) {
    bad = parse_f(value, 0.0f, 1e9f, &t->optim.clip);
  } else if (strcmp(name, "batch") == 0) {
    bad = parse_u32(value, 1, 65536, &t->batch);
  } else if (strcmp(name, "negatives") == 0) {
    bad = parse_u32(value, 0, 1024, &t->negatives);
  } else if (strcmp(name, "steps") == 0) {
    bad = parse_u32(value, 0, 100000000, &t->steps);
  } else if (strcmp(name, "history") == 0) {
    bad = parse_u32(value, 0, 4096, &t->history);
  } else if (strcmp(name, "max_basket") == 0) {
    bad = parse_u32(value, 0, 4096, &t->max_basket);
  } else if (strcmp(name, "seed") == 0) {
    bad = parse_u64(value, &t->seed);
  } else if (strcmp(name, "algo") == 0) {
    if (strcmp(value, "fedavg") == 0 || strcmp(value, "reptile") == 0)
      t->algo = STOREFL_FED_FEDAVG;
    else if (strcmp(value, "fomaml") == 0)
      t->algo = STOREFL_FED_FOMAML;
    else
      bad = 1;
  } else if (strcmp(name, "support_frac") == 0) {
    bad = parse_f(value, 1e-6f, 0.999999f, &t->support_frac);
  } else if (strcmp(name, "inner_steps") == 0) {
    bad = parse_u32(value, 0, 1000000, &t->inner_steps);
  } else if (strcmp(name, "inner_lr") == 0) {
    bad = parse_f(value, 1e-9f, 10.0f, &t->inner_lr);
  } else if (strcmp(name, "personal_steps") == 0) {
    bad = parse_u32(value, 0, 1000000, &t->personal_steps);
  } else if (strcmp(name, "personal_last") == 0) {
    bad = parse_u32(value, 0, UINT32_MAX, &t->personal_last);
  } else if (strcmp(name, "personal_lr") == 0) {
    bad = parse_f(value, 1e-9f, 10.0f, &t->personal_lr);
  } else {
    snprintf(c->msg, sizeof c->msg, "unknown key '%s' in [%s]", name, section);
    return 0;
  }
  if (bad) {
    snprintf(c->msg, sizeof c->msg, "invalid value for %s: '%s'", name, value);
    return 0;
  }
  return 1;
}

int storefl_train_config_load_ini(const char *path, const char *section, storefl_model_config *mc,
                                  storefl_train_config *tc, char *err, size_t errlen) {
  if (!path || !section) {
    if (err && errlen)
      snprintf(err, errlen, "no path or section");
    return STOREFL_ERR_INVALID;
  }
  ctx c;
  memset(&c, 0, sizeof c);
  c.section = section;
  if (mc)
    c.mc = *mc;
  else
    storefl_model_config_default(&c.mc);
  if (tc)
    c.tc = *tc;
  else
    storefl_train_config_default(&c.tc);
  FILE *f = fopen(path, "r");
  if (!f) {
    if (err && errlen)
      snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return STOREFL_ERR_IO;
  }
  int rc = ini_parse_file(f, handler, &c);
  fclose(f);
  if (rc != 0) {
    if (err && errlen) {
      if (c.msg[0])
        snprintf(err, errlen, "%s: line %d: %s", path, rc, c.msg);
      else
        snprintf(err, errlen, "%s: line %d: syntax error", path, rc);
    }
    return rc < 0 ? STOREFL_ERR_IO : STOREFL_ERR_INVALID;
  }
  /* Validate the whole: a trainer accepts exactly what is valid. */
  storefl_trainer *t = NULL;
  rc = storefl_trainer_create(&c.mc, &c.tc, &t);
  storefl_trainer_free(t);
  if (rc == STOREFL_OK) {
    storefl_optim *o = NULL;
    rc = storefl_optim_create(&c.tc.optim, &c.mc, &o);
    storefl_optim_free(o);
  }
  if (rc != STOREFL_OK) {
    if (err && errlen)
      snprintf(err, errlen, "%s: [%s]: invalid combination of settings (%s)", path, section,
               storefl_strerror(rc));
    return rc == STOREFL_ERR_NOMEM ? rc : STOREFL_ERR_INVALID;
  }
  if (mc)
    *mc = c.mc;
  if (tc)
    *tc = c.tc;
  return STOREFL_OK;
}
