/* Privacy mechanisms' speed against limits measured in the same run: discrete Gaussian sampling and
 * clipping versus raw CTR_DRBG output and memcpy bandwidth; the accountant's cost per epsilon and per
 * calibration. Prints one JSON object. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "storefl/accountant.h"
#include "storefl/dp.h"
#include "storefl/rng.h"

#define REPS 5

int main(void) {
  storefl_rng *rng;
  if (storefl_rng_create("bench_dp", &rng) != 0)
    return 1;
  /* Limit 1: raw CTR_DRBG output. */
  size_t nb = (size_t)8 << 20;
  uint8_t *buf = malloc(nb);
  enum { NCOORD = 500000 };
  int64_t *v = calloc(NCOORD, sizeof *v);
  float *x = malloc(NCOORD * sizeof *x);
  if (buf == NULL || v == NULL || x == NULL)
    return 1;
  double t[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now();
    if (storefl_rng_bytes(rng, buf, nb) != 0)
      return 1;
    t[r] = bench_now() - t0;
  }
  double drbg_bps = (double)nb / bench_median(t, REPS);

  /* Discrete Gaussian noise on 0.5 M coordinates (the default model size), at the accumulator-grid
   * scale (s = 2^20 grid units) and at a small scale (s = 3). */
  double ns_big[REPS], ns_small[REPS];
  for (int r = 0; r < REPS; r++) {
    double t0 = bench_now();
    if (storefl_dp_add_dgauss(rng, v, NCOORD, 1048576.0) != 0)
      return 1;
    ns_big[r] = (bench_now() - t0) / NCOORD * 1e9;
    t0 = bench_now();
    if (storefl_dp_add_dgauss(rng, v, NCOORD / 5, 3.0) != 0)
      return 1;
    ns_small[r] = (bench_now() - t0) / (NCOORD / 5) * 1e9;
  }
  double ns_per_sample = bench_median(ns_big, REPS), ns_small_med = bench_median(ns_small, REPS);

  /* Clipping 0.5 M floats (norm pass + scale pass) against memcpy bandwidth. */
  for (int i = 0; i < NCOORD; i++)
    x[i] = (float)((i % 97) - 48) * 0.01f;
  double tc[REPS];
  for (int r = 0; r < REPS; r++) {
    storefl_dp_span sp = {x, NCOORD};
    double pre, t0 = bench_now();
    if (storefl_dp_clip(&sp, 1, 1e-3, &pre) != 0)
      return 1;
    tc[r] = bench_now() - t0;
    for (int i = 0; i < NCOORD; i++)
      x[i] = (float)((i % 97) - 48) * 0.01f;
  }
  double clip_bps = NCOORD * sizeof(float) / bench_median(tc, REPS);
  double memcpy_bps = bench_memcpy_bandwidth(NCOORD * sizeof(float), REPS);

  /* Accountant: one epsilon (160 orders) and one calibration. */
  double te[REPS], tcal[REPS];
  for (int r = 0; r < REPS; r++) {
    double e, s, t0 = bench_now();
    if (storefl_dp_epsilon(0.01, 1.1 + 0.01 * r, 1000, 1e-5, NULL, &e, NULL) != 0)
      return 1;
    te[r] = bench_now() - t0;
    t0 = bench_now();
    if (storefl_dp_calibrate_sigma(0.01, 2.0 + 0.1 * r, 1000, 1e-5, NULL, &s) != 0)
      return 1;
    tcal[r] = bench_now() - t0;
  }
  printf("{\"bench\":\"dp\",\"coordinates\":%d,"
         "\"drbg_bytes_per_s\":%.4g,"
         "\"dgauss_ns_per_sample_s2e20\":%.4g,\"dgauss_ns_per_sample_s3\":%.4g,"
         "\"dgauss_sample_cost_in_drbg_bytes\":%.4g,"
         "\"noise_0p5M_ms\":%.4g,"
         "\"clip_bytes_per_s\":%.4g,\"memcpy_bytes_per_s\":%.4g,\"clip_vs_memcpy\":%.4g,"
         "\"epsilon_ms\":%.4g,\"calibrate_ms\":%.4g}\n",
         NCOORD, drbg_bps, ns_per_sample, ns_small_med, ns_per_sample * 1e-9 * drbg_bps,
         ns_per_sample * NCOORD * 1e-6, clip_bps, memcpy_bps, clip_bps / memcpy_bps,
         bench_median(te, REPS) * 1e3, bench_median(tcal, REPS) * 1e3);
  free(buf);
  free(v);
  free(x);
  storefl_rng_free(rng);
  return 0;
}
