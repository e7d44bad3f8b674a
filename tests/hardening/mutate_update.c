/*
 * Turns a valid float32 update body into a hostile one, re-encoded with the real codec so that
 * only the intended property is wrong (the CBOR itself stays well-formed):
 *   mutate_update IN OUT KIND
 * KIND: nan | inf (one coordinate), norm (all coordinates x1000), shape (first tensor's dims swapped),
 * numel (first tensor one row short, data truncated to match), tag (first tensor renamed), order
 * (first two tensors swapped), dtype (float32 bytes declared float16), missing (last tensor dropped),
 * examples0 (num_examples 0), mode (local instead of central).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/error.h"

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  uint8_t *b = NULL;
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
    b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
      free(b);
      b = NULL;
    }
  }
  fclose(f);
  *len = n > 0 ? (size_t)n : 0;
  return b;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: mutate_update IN OUT KIND\n");
    return 2;
  }
  size_t len;
  uint8_t *in = slurp(argv[1], &len);
  storefl_update_msg u;
  if (!in || storefl_update_decode(in, len, len, &u) != 0 || u.n_tensors < 2 ||
      u.tensors[0].dtype != STOREFL_DTYPE_F32) {
    fprintf(stderr, "mutate_update: %s is not a float32 update with >= 2 tensors\n", argv[1]);
    return 1;
  }
  const char *k = argv[3];
  storefl_tensor *t = &u.tensors[0];
  float *f = (float *)(uintptr_t)t->data; /* points into in[], which is ours to modify */
  int raw = 0;                            /* 1: in[] patched in place, same CBOR structure */
  size_t nf = t->nbytes / sizeof(float);
  if (!strcmp(k, "nan")) {
    f[nf / 2] = NAN;
    raw = 1;
  } else if (!strcmp(k, "inf")) {
    f[nf / 2] = INFINITY;
    raw = 1;
  } else if (!strcmp(k, "norm")) {
    raw = 1;
    for (uint32_t i = 0; i < u.n_tensors; i++) {
      float *g = (float *)(uintptr_t)u.tensors[i].data;
      for (size_t j = 0; j < u.tensors[i].nbytes / sizeof(float); j++)
        g[j] *= 1000.0f;
    }
  } else if (!strcmp(k, "shape") && t->ndim == 2) {
    uint64_t a = t->shape[0];
    t->shape[0] = t->shape[1];
    t->shape[1] = a;
  } else if (!strcmp(k, "numel") && t->ndim == 2) {
    t->shape[0] -= 1;
    t->nbytes -= t->shape[1] * sizeof(float);
  } else if (!strcmp(k, "tag")) {
    t->name.ptr = "bogus";
    t->name.len = 5;
  } else if (!strcmp(k, "order")) {
    storefl_tensor x = u.tensors[0];
    u.tensors[0] = u.tensors[1];
    u.tensors[1] = x;
  } else if (!strcmp(k, "dtype")) {
    t->dtype = STOREFL_DTYPE_F16;
  } else if (!strcmp(k, "missing")) {
    u.n_tensors--;
  } else if (!strcmp(k, "examples0")) {
    u.num_examples = 0;
  } else if (!strcmp(k, "mode")) {
    u.mode = STOREFL_PRIVACY_LOCAL;
  } else {
    fprintf(stderr, "mutate_update: unknown kind %s\n", k);
    return 2;
  }
  size_t cap = len * 2 + 4096, out_len = 0;
  uint8_t *out = malloc(cap);
  int rc = STOREFL_ERR_NOMEM;
  if (out && raw) {
    memcpy(out, in, len);
    out_len = len;
    rc = 0;
  } else if (out) {
    rc = storefl_update_encode(&u, out, cap, &out_len);
  }
  if (rc) {
    fprintf(stderr, "mutate_update: cannot encode %s (%s)\n", k, storefl_strerror(rc));
    return 3;
  }
  FILE *o = fopen(argv[2], "wb");
  if (!o || fwrite(out, 1, out_len, o) != out_len || fclose(o) != 0) {
    fprintf(stderr, "mutate_update: cannot write %s\n", argv[2]);
    return 1;
  }
  free(out);
  free(in);
  return 0;
}
