/*
 * Optimizers over a storefl_model: SGD and Adam, deterministic (no randomness at all).
 *
 * Gradients come as a storefl_model of the same config (dense) plus, for item_emb, the list of
 * rows actually touched: embedding gradients are sparse, and updating only those rows keeps a
 * step O(touched rows) instead of O(B*d). Adam on item_emb is therefore the "lazy" variant (moments
 * of an untouched row are not decayed), which is what sparse Adam implementations do.
 *
 * Ownership: storefl_optim_create() allocates state (Adam: two moment buffers of the model's size);
 * storefl_optim_free() releases it.
 */
#ifndef STOREFL_OPTIM_H
#define STOREFL_OPTIM_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/model.h"

typedef enum storefl_opt_kind {
  STOREFL_OPT_SGD = 1,
  STOREFL_OPT_ADAM = 2,
} storefl_opt_kind;

typedef struct storefl_optim_config {
  storefl_opt_kind kind;
  float lr;      /* step size */
  float beta1;   /* Adam: default 0.9 */
  float beta2;   /* Adam: default 0.999 */
  float eps;     /* Adam: default 1e-8 */
  float clip;    /* if > 0, the gradient is scaled to L2 norm <= clip before the step */
  int head_only; /* 1: only mlp_*, wide_w and bias move (personalisation) */
} storefl_optim_config;

typedef struct storefl_optim storefl_optim;

/* Sparse rows of item_emb touched by a gradient. */
typedef struct storefl_rows {
  const uint32_t *rows;
  size_t n;
} storefl_rows;

int storefl_optim_create(const storefl_optim_config *cfg, const storefl_model_config *mcfg,
                         storefl_optim **out);
void storefl_optim_free(storefl_optim *o);
/* Forgets the moments and the step count. */
void storefl_optim_reset(storefl_optim *o);
/* One step: m -= update(grad). rows lists the touched item_emb rows (grad's other item_emb rows are
 * assumed zero and not read). Errors: STOREFL_ERR_INVALID (config mismatch), STOREFL_ERR_NONFINITE
 * (non-finite gradient: m is left unchanged). */
int storefl_optim_step(storefl_optim *o, storefl_model *m, const storefl_model *grad, storefl_rows rows);

#endif
