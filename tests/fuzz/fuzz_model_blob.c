/* Fuzzes the two parsers of model bytes that cross a trust boundary: the personalised head blob
 * (read back from the agent's SQLite cache) and a wire tensor list applied to a model (the tensors
 * of a decoded model message or update). First input byte selects the parser. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/model.h"
#include "storefl/model_wire.h"

static storefl_model *model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!model) {
    storefl_model_config mc = {16, 2, 3};
    if (storefl_model_create(&mc, &model) != STOREFL_OK)
      return 0;
  }
  if (size < 1)
    return 0;
  if (data[0] & 1) {
    (void)storefl_head_from_blob(model, data + 1, size - 1, NULL);
    uint8_t dg[32];
    memset(dg, 0, sizeof dg);
    (void)storefl_head_from_blob(model, data + 1, size - 1, dg);
    return 0;
  }
  /* Tensor list: per tensor 1 byte name index, 1 byte ndim, 2 x 1 byte dims, 1 byte dtype, then
   * the rest of the input as data for every tensor (lengths taken from a byte). */
  static const char *const names[] = {"item_emb", "hour_emb", "wday_emb", "mlp_w1", "mlp_b1",
                                      "mlp_w2",   "wide_w",   "bias",     "extra"};
  storefl_tensor t[STOREFL_MAX_TENSORS];
  size_t pos = 1;
  uint32_t n = 0;
  while (n < STOREFL_MAX_TENSORS && pos + 6 <= size) {
    const char *nm = names[data[pos] % 9];
    t[n].name = (storefl_str){nm, strlen(nm)};
    t[n].ndim = data[pos + 1] % 4;
    t[n].shape[0] = data[pos + 2];
    t[n].shape[1] = data[pos + 3];
    t[n].shape[2] = t[n].shape[3] = 0;
    t[n].dtype = (data[pos + 4] & 1) ? STOREFL_DTYPE_F32 : STOREFL_DTYPE_F16;
    t[n].scale = 0;
    size_t want = (size_t)data[pos + 5] * 4;
    pos += 6;
    size_t have = size - pos;
    t[n].nbytes = want < have ? want : have;
    t[n].data = data + pos;
    n++;
  }
  storefl_model_config cfg;
  (void)storefl_model_config_from_tensors(t, n, &cfg);
  (void)storefl_model_from_tensors(model, t, n);
  return 0;
}
