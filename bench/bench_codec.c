/*
 * Codec throughput on a 0.5 M-float model update (two tensors: 1000x400 and 400x250) in each
 * tensor encoding. Per encoding, median over REPS of:
 *   pack    floats -> wire elements (storefl_tensor_pack: copy / float16 / int8 quantization)
 *   encode  storefl_update_encode of the packed update into a caller buffer
 *   decode  storefl_update_decode with every validation (shapes, NaN/Inf scan of every element)
 *   unpack  storefl_tensor_to_f32 of both tensors (dequantization for int8)
 * Throughput is given in MB/s (1e6 bytes) of encoded body bytes and of float bytes (2 MB), and
 * encode/decode as a ratio to memcpy of the same number of encoded bytes measured in this run
 * (bench_memcpy_bandwidth, best of its reps: the limit a zero-copy codec can approach).
 * Prints one JSON object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "storefl/codec.h"
#include "storefl/error.h"

enum { N0 = 1000 * 400, N1 = 400 * 250, N = N0 + N1, REPS = 31 };

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_codec: %s: %s\n", what, storefl_strerror(rc));
  exit(1);
}

int main(void) {
  float *vals = malloc(N * sizeof *vals), *back = malloc(N * sizeof *back);
  uint8_t *wire = malloc(N * 4);
  if (!vals || !wire || !back)
    die("malloc", STOREFL_ERR_NOMEM);
  /* deterministic update-like values: small, signed, varied */
  uint32_t x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1664525u + 1013904223u;
    vals[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 0.02f;
  }
  const storefl_dtype dts[3] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  const double float_bytes = (double)N * 4;
  printf("{\"bench\":\"codec\",\"floats\":%d,\"tensors\":2,\"reps\":%d,\"encodings\":{", N, REPS);
  double memcpy_ref_f32 = 0;
  for (int d = 0; d < 3; d++) {
    storefl_dtype dt = dts[d];
    size_t es = storefl_dtype_size(dt);
    storefl_update_msg m;
    memset(&m, 0, sizeof m);
    m.store_id = (storefl_str){"store-0001", 10};
    m.round = 1;
    m.base_model_version = 1;
    m.num_examples = 1000;
    m.mode = STOREFL_PRIVACY_LOCAL;
    m.clip_norm = 1.0;
    m.noise_multiplier = 1.0;
    m.n_tensors = 2;
    m.tensors[0] = (storefl_tensor){.name = {"emb", 3}, .ndim = 2, .shape = {1000, 400}, .dtype = dt};
    m.tensors[1] = (storefl_tensor){.name = {"dense", 5}, .ndim = 2, .shape = {400, 250}, .dtype = dt};
    m.tensors[0].data = wire;
    m.tensors[0].nbytes = N0 * es;
    m.tensors[1].data = wire + N0 * es;
    m.tensors[1].nbytes = N1 * es;

    double t_pack[REPS], t_enc[REPS], t_dec[REPS], t_unpack[REPS];
    size_t len = 0;
    int rc;
    if ((rc = storefl_tensor_pack(dt, vals, N0, wire, &m.tensors[0].scale)) ||
        (rc = storefl_tensor_pack(dt, vals + N0, N1, wire + N0 * es, &m.tensors[1].scale)))
      die("pack", rc);
    rc = storefl_update_encode(&m, NULL, 0, &len);
    if (rc)
      die("size query", rc);
    uint8_t *body = malloc(len);
    if (!body)
      die("malloc", STOREFL_ERR_NOMEM);
    for (int r = 0; r < REPS; r++) {
      double t0 = bench_now();
      if ((rc = storefl_tensor_pack(dt, vals, N0, wire, &m.tensors[0].scale)) ||
          (rc = storefl_tensor_pack(dt, vals + N0, N1, wire + N0 * es, &m.tensors[1].scale)))
        die("pack", rc);
      double t1 = bench_now();
      size_t got;
      if ((rc = storefl_update_encode(&m, body, len, &got)) || got != len)
        die("encode", rc);
      double t2 = bench_now();
      storefl_update_msg out;
      if ((rc = storefl_update_decode(body, len, len, &out)))
        die("decode", rc);
      double t3 = bench_now();
      if ((rc = storefl_tensor_to_f32(&out.tensors[0], back, N0)) ||
          (rc = storefl_tensor_to_f32(&out.tensors[1], back + N0, N1)))
        die("unpack", rc);
      double t4 = bench_now();
      t_pack[r] = t1 - t0;
      t_enc[r] = t2 - t1;
      t_dec[r] = t3 - t2;
      t_unpack[r] = t4 - t3;
    }
    /* the round trip is checked, not just timed */
    double maxerr = 0;
    for (int i = 0; i < N; i++) {
      double e = back[i] > vals[i] ? back[i] - vals[i] : vals[i] - back[i];
      maxerr = e > maxerr ? e : maxerr;
    }
    double mc = bench_memcpy_bandwidth(len, REPS);
    if (d == 0)
      memcpy_ref_f32 = mc;
    double pack = bench_median(t_pack, REPS), enc = bench_median(t_enc, REPS),
           dec = bench_median(t_dec, REPS), unpack = bench_median(t_unpack, REPS);
    printf("%s\"%s\":{\"encoded_bytes\":%zu,\"max_abs_error\":%.3g,"
           "\"encode_ms\":%.4f,\"decode_ms\":%.4f,\"pack_ms\":%.4f,\"unpack_ms\":%.4f,"
           "\"encode_MBps_encoded\":%.1f,\"decode_MBps_encoded\":%.1f,"
           "\"encode_MBps_float\":%.1f,\"decode_MBps_float\":%.1f,"
           "\"pack_encode_MBps_float\":%.1f,\"decode_unpack_MBps_float\":%.1f,"
           "\"memcpy_MBps\":%.1f,\"encode_vs_memcpy\":%.3f,\"decode_vs_memcpy\":%.3f}",
           d ? "," : "", storefl_dtype_name(dt), len, maxerr, enc * 1e3, dec * 1e3, pack * 1e3, unpack * 1e3,
           len / enc / 1e6, len / dec / 1e6, float_bytes / enc / 1e6, float_bytes / dec / 1e6,
           float_bytes / (pack + enc) / 1e6, float_bytes / (dec + unpack) / 1e6, mc / 1e6, (len / enc) / mc,
           (len / dec) / mc);
    free(body);
  }
  printf("},\"memcpy_MBps_2MB\":%.1f,\"peak_rss_bytes\":%zu}\n", memcpy_ref_f32 / 1e6, bench_peak_rss());
  free(vals);
  free(back);
  free(wire);
  return 0;
}
