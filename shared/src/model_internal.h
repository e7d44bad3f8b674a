/* Building blocks shared by scoring (model.c) and training (train.c). */
#ifndef STOREFL_MODEL_INTERNAL_H
#define STOREFL_MODEL_INTERNAL_H
#include <stddef.h>
#include <stdint.h>

#include "features_internal.h"
#include "storefl/model.h"

/* Width of the MLP input [u, v, u*v, wide]. */
#define SFL_IN(cfg) (3 * (size_t)(cfg)->dim + STOREFL_WIDE_FEATURES)

/* Scratch for one context. Dense per-bucket TF-IDF accumulators are reset through the touched
 * list, so building a context costs O(its tokens), not O(B). */
typedef struct sfl_ctx {
  uint32_t buckets;
  float *tf_all, *tf_bsk; /* [B] each */
  uint32_t *touched;      /* buckets set in tf_all (a superset of tf_bsk's) */
  size_t ntouched, cap_touched;
  uint32_t *items; /* context items: history then basket */
  size_t nitems, cap_items;
  float item_w; /* weight of each context item in the mean (1 / items with tokens) */
  /* u's embedding part as distinct buckets with summed weights: history items share many tokens,
   * so forward (u) and backward (scatter of du) touch each row once. */
  float *wsum;  /* [B] accumulator, reset through ub */
  uint32_t *ub; /* distinct buckets */
  float *uw;    /* their weights */
  size_t nu;
  int hour, wday;
  float norm_all, norm_bsk;
  float usual_logprice;
  int has_usual;
  const storefl_profile *profile;
  int64_t time;
  float *u; /* [d] */
} sfl_ctx;

int sfl_ctx_init(sfl_ctx *x, uint32_t buckets, uint32_t dim, size_t max_items);
void sfl_ctx_free(sfl_ctx *x);
/* Builds the context of a query: history = profile events [hist_begin, hist_end), basket items. */
void sfl_ctx_build(sfl_ctx *x, const storefl_model *m, const storefl_catalog *c, const storefl_profile *p,
                   size_t hist_begin, size_t hist_end, const uint32_t *basket, size_t n_basket, int64_t time);
/* Writes the MLP input row [u, v, u*v, wide] for candidate item; v (d floats) also to v_out. */
void sfl_row(const sfl_ctx *x, const storefl_model *m, const storefl_catalog *c, uint32_t item, float *row,
             float *v_out);
/* Forward of R rows X [R, I]: hid [R, H] gets relu(X W1^T + b1), z [R] the logits. */
void sfl_forward(const storefl_model *m, const float *X, size_t R, float *hid, float *z);

/* UTC hour of day and weekday (0 = Sunday) of unix seconds. */
void sfl_hour_wday(int64_t t, int *hour, int *wday);

#endif
