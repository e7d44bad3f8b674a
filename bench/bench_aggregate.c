/* In-process ingest of one update of the default model (wide-deep-v1 as the model module defines it):
 * decode (codec) + validate (shapes, finiteness, L2 norm, range) + exact fixed-point accumulate, per
 * tensor encoding, in GB/s of update bytes, and the ratio to a memcpy of the same number of bytes
 * measured in the same run (best of reps for both). Also the whole accept path of the service
 * (SHA-256 of the body + SQLite commit with fsync + accumulate) for one int8 update.
 * Prints one JSON object. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "benchutil.h"
#include "storefl/accum.h"
#include "storefl/agg_service.h"
#include "storefl/codec.h"
#include "storefl/log.h"

/* The default model: wide-deep-v1 as defined by the model module (resolved like the aggregator does). */
static storefl_agg_config g_cfg;
#define NT ((int)g_cfg.n_tensors)
#define SPEC (g_cfg.tensors)

static size_t spec_numel(int t) {
  size_t n = 1;
  for (uint32_t d = 0; d < SPEC[t].ndim; d++)
    n *= (size_t)SPEC[t].shape[d];
  return n;
}

/* Encodes one update with values of L2 norm 0.9 in dtype. Returns the body (malloc'd). */
static uint8_t *make_body(storefl_dtype dt, const char *store, uint64_t seed, size_t *len) {
  size_t total = 0;
  for (int t = 0; t < NT; t++)
    total += spec_numel(t);
  float *v = malloc(total * sizeof *v);
  uint8_t *packed = malloc(total * 4);
  if (!v || !packed)
    exit(1);
  double ss = 0;
  for (size_t i = 0; i < total; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = (float)((double)(seed >> 11) * 0x1.0p-53 - 0.5);
    ss += (double)v[i] * v[i];
  }
  for (size_t i = 0; i < total; i++)
    v[i] *= (float)(0.9 / sqrt(ss));
  storefl_update_msg m;
  memset(&m, 0, sizeof m);
  m.store_id.ptr = store;
  m.store_id.len = strlen(store);
  m.round = 1;
  m.base_model_version = 1;
  m.num_examples = 100;
  m.mode = STOREFL_PRIVACY_CENTRAL;
  m.clip_norm = 1.0;
  m.n_tensors = NT;
  size_t off = 0, es = storefl_dtype_size(dt);
  for (int t = 0; t < NT; t++) {
    storefl_tensor *x = &m.tensors[t];
    x->name.ptr = SPEC[t].name;
    x->name.len = strlen(SPEC[t].name);
    x->ndim = SPEC[t].ndim;
    memcpy(x->shape, SPEC[t].shape, sizeof x->shape);
    x->dtype = dt;
    x->scale = 1.0f;
    if (storefl_tensor_pack(dt, v + off, spec_numel(t), packed + off * es, &x->scale))
      exit(1);
    x->data = packed + off * es;
    x->nbytes = spec_numel(t) * es;
    off += spec_numel(t);
  }
  size_t n = 0;
  if (storefl_update_encode(&m, NULL, 0, &n))
    exit(1);
  uint8_t *body = malloc(n);
  if (!body || storefl_update_encode(&m, body, n, &n))
    exit(1);
  free(v);
  free(packed);
  *len = n;
  return body;
}

typedef struct result {
  size_t bytes;
  double best_s, median_s, memcpy_bps, touched_memcpy_s;
} result;

static result bench_dtype(storefl_accum *acc, storefl_update_msg *m, storefl_dtype dt, int reps) {
  size_t len;
  uint8_t *body = make_body(dt, "store-000", 42 + (uint64_t)dt, &len);
  double *t = malloc((size_t)reps * sizeof *t);
  if (!t)
    exit(1);
  for (int r = 0; r < reps; r++) {
    if (storefl_accum_count(acc) + 1 >= 4096)
      storefl_accum_reset(acc);
    double t0 = bench_now();
    /* the service's path: strict decode, structure match, one pass that adds and measures (norm,
     * finiteness, range) and would take the update back if it failed */
    storefl_accum_stats st;
    if (storefl_update_decode(body, len, len, m) || storefl_accum_match(acc, m->tensors, m->n_tensors) ||
        storefl_accum_add_measured(acc, m->tensors, m->n_tensors, 100, 1.01, &st)) {
      fprintf(stderr, "bench_aggregate: ingest failed\n");
      exit(1);
    }
    t[r] = bench_now() - t0;
  }
  result res = {len, 1e30, 0, 0, 0};
  for (int r = 0; r < reps; r++)
    res.best_s = t[r] < res.best_s ? t[r] : res.best_s;
  res.median_s = bench_median(t, (size_t)reps);
  res.memcpy_bps = bench_memcpy_bandwidth(len, reps);
  /* The int32 partial sums (4 bytes per coordinate) are read and written once per update (the int64
   * fold every ~200 updates is amortized away): the memory traffic of an ingest is update + 2 x
   * partial bytes, i.e. a memcpy of (update + 2 x 4 x numel) / 2 bytes. */
  size_t touched = (len + 2 * 4 * storefl_accum_numel(acc)) / 2;
  res.touched_memcpy_s = (double)touched / bench_memcpy_bandwidth(touched, reps);
  free(t);
  free(body);
  return res;
}

/* The whole accept path of the service for n int8 updates on a temp database: per-update time. */
static double g_restore_ms, g_db_bytes;

static double file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

static double bench_service(int n, double *median_ms) {
  storefl_agg_config c;
  storefl_agg_config_defaults(&c);
  char dir[] = "/tmp/storefl-bench-agg-XXXXXX";
  if (!mkdtemp(dir))
    exit(1);
  snprintf(c.db_path, sizeof c.db_path, "%s/agg.db", dir);
  c.n_tensors = g_cfg.n_tensors;
  memcpy(c.tensors, g_cfg.tensors, sizeof c.tensors);
  c.mode = STOREFL_PRIVACY_CENTRAL;
  c.noise_multiplier = 0;
  c.target_participants = (uint32_t)n + 1;
  c.max_participants = (uint32_t)n + 1;
  storefl_agg *a = NULL;
  if (storefl_agg_open(&c, NULL, &a))
    exit(1);
  double *t = malloc((size_t)n * sizeof *t), best = 1e30;
  for (int i = 0; i < n && t; i++) {
    char id[32];
    snprintf(id, sizeof id, "store-%04d", i);
    size_t len;
    uint8_t *body = make_body(STOREFL_DTYPE_I8, id, 1000 + (uint64_t)i, &len);
    storefl_agg_response resp;
    double t0 = bench_now();
    storefl_agg_handle_update(a, id, STOREFL_COAP_CONTENT_CBOR, body, len, &resp);
    t[i] = bench_now() - t0;
    if (resp.coap_code != 204) {
      fprintf(stderr, "bench_aggregate: service answered %d\n", resp.coap_code);
      exit(1);
    }
    storefl_agg_response_release(&resp);
    free(body);
    best = t[i] < best ? t[i] : best;
  }
  *median_ms = 1e3 * bench_median(t, (size_t)n);
  free(t);
  storefl_agg_close(a);
  /* Durability cost: disk used by the open round, and the time a restart takes to replay it. */
  char wal[STOREFL_AGG_PATH_MAX + 8];
  snprintf(wal, sizeof wal, "%s-wal", c.db_path);
  g_db_bytes = file_size(c.db_path) + file_size(wal);
  double t0 = bench_now();
  if (storefl_agg_open(&c, NULL, &a))
    exit(1);
  g_restore_ms = 1e3 * (bench_now() - t0);
  storefl_agg_close(a);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_aggregate: cannot remove %s\n", dir);
  return 1e3 * best;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 30;
  if (reps < 3)
    reps = 3;
  storefl_log_set_level(STOREFL_LOG_WARN);
  storefl_agg_config_defaults(&g_cfg);
  if (storefl_agg_config_resolve_model(&g_cfg, NULL, 0))
    return 1;
  storefl_accum *acc = NULL;
  if (storefl_accum_create(SPEC, NT, 24, 4096, &acc))
    return 1;
  storefl_update_msg *m = malloc(sizeof *m);
  if (!m)
    return 1;
  const storefl_dtype dts[3] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  result r[3];
  for (int i = 0; i < 3; i++)
    r[i] = bench_dtype(acc, m, dts[i], reps);
  double svc_median_ms, svc_best_ms = bench_service(20, &svc_median_ms);
  printf("{\"bench\":\"aggregate\",\"params\":%zu,\"reps\":%d,\"scale_bits\":24,\"simd\":\"%s\",",
         storefl_accum_numel(acc), reps, storefl_accum_kernel());
  for (int i = 0; i < 3; i++) {
    double gbps = (double)r[i].bytes / r[i].best_s / 1e9, mc = r[i].memcpy_bps / 1e9;
    printf("\"%s\":{\"update_bytes\":%zu,\"best_ms\":%.4f,\"median_ms\":%.4f,\"gb_per_s\":%.3f,"
           "\"median_gb_per_s\":%.3f,\"memcpy_gb_per_s\":%.3f,\"ratio_to_memcpy\":%.3f,"
           "\"memcpy_of_touched_bytes_ms\":%.4f,\"ratio_to_memcpy_of_touched_bytes\":%.3f},",
           storefl_dtype_name(dts[i]), r[i].bytes, 1e3 * r[i].best_s, 1e3 * r[i].median_s, gbps,
           (double)r[i].bytes / r[i].median_s / 1e9, mc, gbps / mc, 1e3 * r[i].touched_memcpy_s,
           r[i].touched_memcpy_s / r[i].best_s);
  }
  printf("\"service_accept_i8\":{\"updates\":20,\"best_ms\":%.3f,\"median_ms\":%.3f,"
         "\"note\":\"decode+validate+sha256+sqlite commit (fsync)+accumulate\"},",
         svc_best_ms, svc_median_ms);
  printf("\"durability\":{\"open_round_updates\":20,\"db_bytes\":%.0f,\"restart_replay_ms\":%.2f},",
         g_db_bytes, g_restore_ms);
  printf("\"peak_rss_bytes\":%zu}\n", bench_peak_rss());
  free(m);
  storefl_accum_free(acc);
  return 0;
}
