/* Writes the seed corpus of fuzz_update_handler: valid updates (i8, f16, f32) for its model.
 * Build and run by hand (see the comment in fuzz_update_handler.c):
 *   cc -Iprotocol/include -Ishared/include tests/fuzz/gen_update_seeds.c build/protocol/libstorefl_protocol.a \
 *      build/shared/libstorefl_shared.a -lcbor -lmbedcrypto -lm -o /tmp/gen && /tmp/gen tests/fuzz/corpus/fuzz_update_handler */
#include <stdio.h>
#include <string.h>

#include "storefl/codec.h"

int main(int argc, char **argv) {
  if (argc != 2)
    return 2;
  const storefl_dtype dts[3] = {STOREFL_DTYPE_I8, STOREFL_DTYPE_F16, STOREFL_DTYPE_F32};
  for (int k = 0; k < 6; k++) {
    float w[16], b[4];
    for (int i = 0; i < 16; i++)
      w[i] = (float)((i * 7 + k) % 11 - 5) * 0.02f;
    for (int i = 0; i < 4; i++)
      b[i] = (float)(i - k) * 0.01f;
    uint8_t pw[64], pb[16];
    storefl_update_msg m;
    memset(&m, 0, sizeof m);
    char id[16];
    snprintf(id, sizeof id, "store-%03d", k & 3);
    m.store_id.ptr = id;
    m.store_id.len = strlen(id);
    m.round = 1 + (uint64_t)(k / 4);
    m.base_model_version = 1 + (uint64_t)(k / 4);
    m.num_examples = 10 + (uint64_t)k;
    m.mode = STOREFL_PRIVACY_LOCAL;
    m.clip_norm = 1.0;
    m.noise_multiplier = 0.5;
    m.n_tensors = 2;
    storefl_dtype dt = dts[k % 3];
    storefl_tensor *t = m.tensors;
    t[0].name.ptr = "w";
    t[0].name.len = 1;
    t[0].ndim = 2;
    t[0].shape[0] = t[0].shape[1] = 4;
    t[0].dtype = dt;
    t[1].name.ptr = "b";
    t[1].name.len = 1;
    t[1].ndim = 1;
    t[1].shape[0] = 4;
    t[1].dtype = dt;
    if (storefl_tensor_pack(dt, w, 16, pw, &t[0].scale) || storefl_tensor_pack(dt, b, 4, pb, &t[1].scale))
      return 1;
    t[0].data = pw;
    t[0].nbytes = 16 * storefl_dtype_size(dt);
    t[1].data = pb;
    t[1].nbytes = 4 * storefl_dtype_size(dt);
    uint8_t buf[1024];
    buf[0] = (uint8_t)(k & 3);
    size_t len;
    if (storefl_update_encode(&m, buf + 1, sizeof buf - 1, &len))
      return 1;
    char path[512];
    snprintf(path, sizeof path, "%s/seed-%s-%d", argv[1], storefl_dtype_name(dt), k);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len + 1, f) != len + 1 || fclose(f))
      return 1;
  }
  return 0;
}
