/* Training and recommendation speed of the default wide-deep-v1 model on real data.
 *
 * The store: the first 10,000 clean purchase lines of the Online Retail export (all shoppers pooled
 * into one event stream, baskets = invoices); the catalogue: every clean product of the export.
 * Measures, on one OpenBLAS thread:
 *  - local training throughput (positives/s and rows/s, rows = positives + sampled negatives) and
 *    the achieved GFLOP/s of its matrix products as a fraction of OpenBLAS sgemm at the same shapes,
 *    measured in the same run;
 *  - the time of one local federated step (storefl_local_update, default config) on the 10k events;
 *  - peak RSS;
 *  - recommend latency: storefl_model_rank over 1,000 candidates (top 10), median and p99.
 * Usage: bench_train [online_retail.csv.gz]   (default: $STOREFL_DATA_DIR/online-retail/...) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "storefl/error.h"
#include "storefl/features.h"
#include "storefl/model.h"
#include "storefl/prng.h"
#include "storefl/retail_csv.h"
#include "storefl/train.h"

#define STORE_EVENTS 10000
#define CANDIDATES 1000
#define QUERIES 2000

static int load(const char *path, storefl_catalog *cat, storefl_profile *prof) {
  storefl_retail_columns cols;
  storefl_retail_columns_default(&cols);
  storefl_retail_reader *r;
  char err[256];
  if (storefl_retail_open(path, &cols, &r, err, sizeof err) != STOREFL_OK) {
    fprintf(stderr, "bench_train: %s: %s\n", path, err);
    return -1;
  }
  storefl_retail_row row_, *row = &row_;
  int rc;
  uint64_t basket_id = 0;
  char last_basket[64] = "";
  /* Products first (the whole catalogue), events of the first STORE_EVENTS clean lines. */
  while ((rc = storefl_retail_next(r, row)) == 1) {
    if (row->flags)
      continue;
    int64_t idx = storefl_catalog_find(cat, row->code);
    if (idx < 0) {
      storefl_item_attrs a = {row->code, row->text, NULL, NULL, (float)row->price, row->time};
      uint32_t i;
      if (storefl_catalog_add(cat, &a, &i) != STOREFL_OK)
        return -1;
      idx = i;
    }
    if (storefl_profile_len(prof) < STORE_EVENTS) {
      if (strcmp(row->basket, last_basket) != 0) {
        basket_id++;
        snprintf(last_basket, sizeof last_basket, "%s", row->basket);
      }
      /* The catalogue is not finalised yet: profiles only need indices. */
      if (storefl_profile_add(prof, (uint32_t)idx, row->time, basket_id) != STOREFL_OK)
        return -1;
    }
  }
  storefl_retail_close(r);
  return rc == 0 ? 0 : -1;
}

/* sgemm GFLOP/s at the training shapes: forward X W1^T, and the two backward products. */
static double cpu_now(void);

/* Returns GFLOP/s over wall time; *cpu_gflops gets it over this thread's CPU time. */
static double sgemm_peak(int R, int IN, int H, double seconds, double *cpu_gflops) {
  float *X = malloc(sizeof(float) * (size_t)R * IN), *W = malloc(sizeof(float) * (size_t)H * IN);
  float *Y = malloc(sizeof(float) * (size_t)R * H), *G = malloc(sizeof(float) * (size_t)H * IN);
  float *D = malloc(sizeof(float) * (size_t)R * IN);
  for (int i = 0; i < R * IN; i++)
    X[i] = (float)(i % 13) * 0.01f;
  for (int i = 0; i < H * IN; i++)
    W[i] = (float)(i % 7) * 0.01f;
  double t0 = bench_now(), c0 = cpu_now(), t;
  long reps = 0;
  do {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, H, IN, 1.0f, X, IN, W, IN, 0.0f, Y, H);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, IN, R, 1.0f, Y, H, X, IN, 0.0f, G, IN);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, IN, H, 1.0f, Y, H, W, IN, 0.0f, D, IN);
    reps++;
    t = bench_now() - t0;
  } while (t < seconds);
  free(X);
  free(W);
  free(Y);
  free(G);
  free(D);
  *cpu_gflops = 6.0 * R * IN * H * (double)reps / (cpu_now() - c0) / 1e9;
  return 6.0 * R * IN * H * (double)reps / t / 1e9;
}

/* CPU time of this thread: what a query costs, whatever else the machine runs. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double sgemm_square(int M, int N, int K, double seconds) {
  float *A = calloc((size_t)M * K, sizeof(float)), *B = calloc((size_t)K * N, sizeof(float));
  float *C = calloc((size_t)M * N, sizeof(float));
  double t0 = bench_now(), t;
  long reps = 0;
  do {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    reps++;
    t = bench_now() - t0;
  } while (t < seconds);
  free(A);
  free(B);
  free(C);
  return 2.0 * M * N * K * (double)reps / t / 1e9;
}

int main(int argc, char **argv) {
  openblas_set_num_threads(1);
  char def[4096];
  const char *path = argc > 1 ? argv[1] : NULL;
  if (!path) {
    const char *dir = getenv("STOREFL_DATA_DIR");
    if (!dir) {
      fprintf(stderr, "bench_train: give the Online Retail CSV path or set STOREFL_DATA_DIR\n");
      return 2;
    }
    snprintf(def, sizeof def, "%s/online-retail/online_retail.csv.gz", dir);
    path = def;
  }
  storefl_model_config mc;
  storefl_model_config_default(&mc);
  storefl_catalog *cat;
  storefl_profile *prof;
  if (storefl_catalog_create(mc.buckets, &cat) != STOREFL_OK ||
      storefl_profile_create(cat, &prof) != STOREFL_OK)
    return 1;
  double tl = bench_now();
  if (load(path, cat, prof) != 0 || storefl_catalog_finalize(cat) != STOREFL_OK)
    return 1;
  tl = bench_now() - tl;
  size_t rss_loaded = bench_peak_rss();

  storefl_model *m, *delta;
  if (storefl_model_create(&mc, &m) != STOREFL_OK || storefl_model_create(&mc, &delta) != STOREFL_OK)
    return 1;
  storefl_model_init(m, 1);
  storefl_train_config tc;
  storefl_train_config_default(&tc);
  const storefl_profile *profs[1] = {prof};
  storefl_train_data data = {cat, profs, 1, INT64_MIN, INT64_MAX};

  /* Throughput of training steps (after a warm-up that allocates the optimizer state). */
  storefl_trainer *t;
  if (storefl_trainer_create(&mc, &tc, &t) != STOREFL_OK)
    return 1;
  storefl_train_stats st;
  if (storefl_trainer_train(t, m, &data, 20, &st) != STOREFL_OK)
    return 1;
  const uint32_t steps = 300;
  double t0 = bench_now(), c0 = cpu_now();
  if (storefl_trainer_train(t, m, &data, steps, &st) != STOREFL_OK)
    return 1;
  double ttrain = bench_now() - t0, ctrain = cpu_now() - c0;
  storefl_trainer_free(t);
  int R = (int)(tc.batch * (1 + tc.negatives)), IN = (int)(3 * mc.dim + STOREFL_WIDE_FEATURES),
      H = (int)mc.hidden;
  double train_gflops = 6.0 * R * IN * H * steps / ttrain / 1e9;
  double peak_same_cpu = 0, peak_same = sgemm_peak(R, IN, H, 1.0, &peak_same_cpu);
  double peak_square = sgemm_square(256, 512, 512, 1.0);

  /* One local federated step on the whole store (default k steps), then a one-epoch variant. */
  size_t nex = 0;
  double fs[3];
  for (int i = 0; i < 3; i++) {
    double a = bench_now();
    if (storefl_local_update(m, &data, &tc, delta, &nex) != STOREFL_OK)
      return 1;
    fs[i] = bench_now() - a;
  }
  double fed_step = bench_median(fs, 3);
  storefl_train_config epoch = tc;
  epoch.steps = (uint32_t)((nex + tc.batch - 1) / tc.batch);
  double a = bench_now();
  if (storefl_local_update(m, &data, &epoch, delta, &nex) != STOREFL_OK)
    return 1;
  double fed_epoch = bench_now() - a;
  tc.algo = STOREFL_FED_FOMAML;
  a = bench_now();
  if (storefl_local_update(m, &data, &tc, delta, &nex) != STOREFL_OK)
    return 1;
  double fed_fomaml = bench_now() - a;
  size_t rss_train = bench_peak_rss();

  /* Recommend: the 1,000 most recently launched products, contexts from the store's stream. */
  size_t n = storefl_catalog_size(cat);
  uint32_t *cands = malloc(CANDIDATES * sizeof *cands);
  size_t nc = 0;
  for (size_t i = n; i > 0 && nc < CANDIDATES; i--)
    cands[nc++] = (uint32_t)(i - 1);
  double *lat = malloc(QUERIES * sizeof *lat), *cpu = malloc(QUERIES * sizeof *cpu);
  storefl_prng r;
  storefl_prng_seed(&r, 7);
  uint32_t top[10];
  float ts[10];
  for (int q = 0; q < QUERIES; q++) {
    size_t e = (size_t)storefl_prng_below(&r, storefl_profile_len(prof));
    uint32_t basket[3];
    for (int k = 0; k < 3; k++)
      basket[k] = storefl_profile_item(prof, (size_t)storefl_prng_below(&r, storefl_profile_len(prof)));
    storefl_query qu = {prof, basket, 3, storefl_profile_time(prof, e), 0};
    double b = bench_now(), c = cpu_now();
    if (storefl_model_rank(m, cat, &qu, cands, nc, 10, top, ts) != 10)
      return 1;
    lat[q] = (bench_now() - b) * 1e3;
    cpu[q] = (cpu_now() - c) * 1e3;
  }
  double med = bench_median(lat, QUERIES); /* sorts */
  double p99 = lat[(size_t)(0.99 * QUERIES)];
  double cmed = bench_median(cpu, QUERIES), cp99 = cpu[(size_t)(0.99 * QUERIES)];
  double load1 = 0;
  FILE *la = fopen("/proc/loadavg", "r");
  if (la) {
    if (fscanf(la, "%lf", &load1) != 1)
      load1 = 0;
    fclose(la);
  }

  printf("{\"bench\":\"train\",\"threads\":1,\"data\":\"%s\",\"load_s\":%.3f,"
         "\"model\":{\"buckets\":%u,\"dim\":%u,\"hidden\":%u,\"params\":%zu},"
         "\"catalogue\":%zu,\"store_events\":%zu,"
         "\"train\":{\"batch\":%u,\"negatives\":%u,\"steps\":%u,\"seconds\":%.4f,"
         "\"cpu_seconds\":%.4f,\"positives_per_s\":%.0f,\"positives_per_cpu_s\":%.0f,\"rows_per_s\":%.0f,"
         "\"loss_first\":%.4f,\"loss_last\":%.4f,"
         "\"matmul_gflops\":%.2f,\"matmul_gflops_cpu\":%.2f,\"sgemm_same_shapes_gflops\":%.2f,"
         "\"sgemm_same_shapes_gflops_cpu\":%.2f,"
         "\"fraction_of_sgemm\":%.3f,\"fraction_of_sgemm_cpu\":%.3f,"
         "\"sgemm_256x512x512_gflops\":%.2f},"
         "\"local_update\":{\"steps\":%u,\"seconds\":%.4f,\"one_epoch_steps\":%u,\"one_epoch_seconds\":%.4f,"
         "\"fomaml_seconds\":%.4f},"
         "\"peak_rss_mb\":%.1f,\"rss_after_load_mb\":%.1f,"
         "\"recommend\":{\"candidates\":%zu,\"k\":10,\"queries\":%d,\"median_ms\":%.4f,\"p99_ms\":%.4f,"
         "\"cpu_median_ms\":%.4f,\"cpu_p99_ms\":%.4f,\"p99_target_ms\":2.0},\"loadavg_1min\":%.2f}\n",
         path, tl, mc.buckets, mc.dim, mc.hidden, m->numel, n, storefl_profile_len(prof), tc.batch,
         tc.negatives, steps, ttrain, ctrain, steps * tc.batch / ttrain, steps * tc.batch / ctrain,
         steps * (double)R / ttrain, st.first_loss, st.last_loss, train_gflops,
         train_gflops * ttrain / ctrain, peak_same, peak_same_cpu, train_gflops / peak_same,
         train_gflops * ttrain / ctrain / peak_same_cpu, peak_square, tc.steps, fed_step, epoch.steps,
         fed_epoch, fed_fomaml, rss_train / 1048576.0, rss_loaded / 1048576.0, nc, QUERIES, med, p99, cmed,
         cp99, load1);
  free(lat);
  free(cpu);
  free(cands);
  storefl_model_free(delta);
  storefl_model_free(m);
  storefl_profile_free(prof);
  storefl_catalog_free(cat);
  return 0;
}
