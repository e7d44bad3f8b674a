/* storefl_model <-> wire tensor list (storefl/model_wire.h). */
#include "storefl/model_wire.h"

#include <math.h>
#include <string.h>

#include "storefl/error.h"

int storefl_model_to_tensors(const storefl_model *m, storefl_tensor *out, uint32_t max, uint32_t *n) {
  if (!m || !out || !n)
    return STOREFL_ERR_INVALID;
  if (max < STOREFL_MODEL_NPARAMS)
    return STOREFL_ERR_TOO_LARGE;
  for (int i = 0; i < STOREFL_MODEL_NPARAMS; i++) {
    const storefl_param *p = &m->params[i];
    storefl_tensor *t = &out[i];
    memset(t, 0, sizeof *t);
    t->name = (storefl_str){p->name, strlen(p->name)};
    t->ndim = p->ndim;
    t->shape[0] = p->shape[0];
    t->shape[1] = p->ndim == 2 ? p->shape[1] : 0;
    t->dtype = STOREFL_DTYPE_F32;
    t->scale = 0;
    /* Model memory is host float32; the wire is little-endian float32, which is the same on every
     * platform storefl builds for (checked at compile time below). */
    t->data = (const uint8_t *)p->data;
    t->nbytes = p->numel * sizeof(float);
  }
  *n = STOREFL_MODEL_NPARAMS;
  return STOREFL_OK;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "storefl_model_to_tensors exposes host floats as little-endian float32"
#endif

/* Finds tensor `name` in the list; -1 if absent, -2 if present twice. */
static int find(const storefl_tensor *t, uint32_t n, const char *name) {
  int at = -1;
  size_t len = strlen(name);
  for (uint32_t i = 0; i < n; i++)
    if (t[i].name.len == len && t[i].name.ptr && memcmp(t[i].name.ptr, name, len) == 0) {
      if (at >= 0)
        return -2;
      at = (int)i;
    }
  return at;
}

int storefl_model_config_from_tensors(const storefl_tensor *t, uint32_t n, storefl_model_config *cfg) {
  if (!t || !cfg || n != STOREFL_MODEL_NPARAMS)
    return STOREFL_ERR_INVALID;
  int e = find(t, n, "item_emb"), h = find(t, n, "mlp_b1");
  if (e < 0 || h < 0 || t[e].ndim != 2 || t[h].ndim != 1)
    return STOREFL_ERR_INVALID;
  if (t[e].shape[0] > UINT32_MAX || t[e].shape[1] > UINT32_MAX || t[h].shape[0] > UINT32_MAX)
    return STOREFL_ERR_INVALID;
  storefl_model_config c = {(uint32_t)t[e].shape[0], (uint32_t)t[e].shape[1], (uint32_t)t[h].shape[0]};
  if (storefl_model_config_check(&c) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  *cfg = c;
  return STOREFL_OK;
}

int storefl_model_from_tensors(storefl_model *m, const storefl_tensor *t, uint32_t n) {
  if (!m || !t || n != STOREFL_MODEL_NPARAMS)
    return STOREFL_ERR_INVALID;
  int at[STOREFL_MODEL_NPARAMS];
  /* Validate everything before copying anything: m is unchanged on error. */
  for (int i = 0; i < STOREFL_MODEL_NPARAMS; i++) {
    const storefl_param *p = &m->params[i];
    int k = find(t, n, p->name);
    if (k < 0)
      return STOREFL_ERR_INVALID;
    const storefl_tensor *x = &t[k];
    if (x->ndim != p->ndim || x->shape[0] != p->shape[0] || (p->ndim == 2 && x->shape[1] != p->shape[1]))
      return STOREFL_ERR_INVALID;
    if (x->dtype != STOREFL_DTYPE_F32)
      return STOREFL_ERR_FORMAT;
    if (x->nbytes != p->numel * sizeof(float) || (x->nbytes && !x->data))
      return STOREFL_ERR_INVALID;
    for (size_t j = 0; j < p->numel; j++) {
      float f;
      memcpy(&f, x->data + 4 * j, 4);
      if (!isfinite(f))
        return STOREFL_ERR_NONFINITE;
    }
    at[i] = k;
  }
  for (int i = 0; i < STOREFL_MODEL_NPARAMS; i++)
    memcpy(m->params[i].data, t[at[i]].data, t[at[i]].nbytes);
  return STOREFL_OK;
}
