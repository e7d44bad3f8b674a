/* Fixed-point accumulator: exact against an independent reference, order- and shard-independent,
 * and every rejection leaves the sums unchanged. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storefl/accum.h"
#include "storefl/error.h"

#define NT 3
static const storefl_accum_tensor SPEC[NT] = {
    {"emb", 2, {37, 8}},
    {"w1", 2, {5, 11}},
    {"bias", 1, {1}},
};
static const size_t NUMEL[NT] = {296, 55, 1};
#define TOTAL (296 + 55 + 1)
#define S 24

static uint64_t rng_state = 42;
static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}
static double unif(void) {
  return (double)(rnd() >> 11) * 0x1.0p-53;
}

/* One synthetic update: its own bytes and tensor views. */
typedef struct upd {
  storefl_tensor t[NT];
  uint8_t *bytes[NT];
  uint64_t weight;
} upd;

/* Independent half decoder (not the library's table). */
static double half_value(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? ldexp(m, -24) : ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

static void make_update(upd *u, storefl_dtype dt, double amp) {
  memset(u, 0, sizeof *u);
  u->weight = 1 + rnd() % 500;
  for (int i = 0; i < NT; i++) {
    size_t es = dt == STOREFL_DTYPE_F32 ? 4 : dt == STOREFL_DTYPE_F16 ? 2 : 1;
    u->bytes[i] = malloc(NUMEL[i] * es);
    assert_non_null(u->bytes[i]);
    for (size_t k = 0; k < NUMEL[i]; k++) {
      if (dt == STOREFL_DTYPE_F32) {
        float f = (float)((2 * unif() - 1) * amp);
        memcpy(u->bytes[i] + 4 * k, &f, 4);
      } else if (dt == STOREFL_DTYPE_F16) {
        /* random finite half with exponent <= 14 (|x| < 2) */
        uint16_t h = (uint16_t)((rnd() & 0x8000) | ((rnd() % 15) << 10) | (rnd() & 1023));
        u->bytes[i][2 * k] = (uint8_t)h;
        u->bytes[i][2 * k + 1] = (uint8_t)(h >> 8);
      } else {
        u->bytes[i][k] = (uint8_t)(rnd() & 0xff);
      }
    }
    u->t[i].name.ptr = SPEC[i].name;
    u->t[i].name.len = strlen(SPEC[i].name);
    u->t[i].ndim = SPEC[i].ndim;
    memcpy(u->t[i].shape, SPEC[i].shape, sizeof u->t[i].shape);
    u->t[i].dtype = dt;
    u->t[i].scale = dt == STOREFL_DTYPE_I8 ? (float)(amp / 127.0 * (0.5 + unif())) : 1.0f;
    u->t[i].data = u->bytes[i];
    u->t[i].nbytes = NUMEL[i] * es;
  }
}

static void free_update(upd *u) {
  for (int i = 0; i < NT; i++)
    free(u->bytes[i]);
}

static double value_at(const storefl_tensor *t, size_t k) {
  if (t->dtype == STOREFL_DTYPE_F32) {
    float f;
    memcpy(&f, t->data + 4 * k, 4);
    return f;
  }
  if (t->dtype == STOREFL_DTYPE_F16)
    return half_value((uint16_t)(t->data[2 * k] | (t->data[2 * k + 1] << 8)));
  return (double)(int8_t)t->data[k] * (double)t->scale;
}

/* Reference: sum over updates of rint(x * w * 2^S) (the product is exact in long double), in __int128. */
static void reference(upd *us, int n, __int128 *ref) {
  memset(ref, 0, TOTAL * sizeof *ref);
  for (int j = 0; j < n; j++) {
    size_t off = 0;
    for (int i = 0; i < NT; i++) {
      for (size_t k = 0; k < NUMEL[i]; k++) {
        long double v = (long double)value_at(&us[j].t[i], k) * (long double)us[j].weight * ldexpl(1.0L, S);
        ref[off + k] += (__int128)llrintl(v);
      }
      off += NUMEL[i];
    }
  }
}

static storefl_accum *mk(uint32_t max) {
  storefl_accum *a = NULL;
  assert_int_equal(storefl_accum_create(SPEC, NT, S, max, &a), STOREFL_OK);
  assert_int_equal(storefl_accum_numel(a), TOTAL);
  return a;
}

static void test_exact_against_reference(void **state) {
  (void)state;
  const storefl_dtype dts[] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  enum { N = 30 };
  upd us[N];
  for (int j = 0; j < N; j++)
    make_update(&us[j], dts[j % 3], 1.5);
  storefl_accum *a = mk(100);
  uint64_t wsum = 0;
  for (int j = 0; j < N; j++) {
    assert_int_equal(storefl_accum_add(a, us[j].t, NT, us[j].weight), STOREFL_OK);
    wsum += us[j].weight;
  }
  assert_int_equal(storefl_accum_count(a), N);
  assert_int_equal(storefl_accum_weight(a), wsum);
  static __int128 ref[TOTAL];
  reference(us, N, ref);
  const int64_t *s = storefl_accum_sums(a);
  for (size_t i = 0; i < TOTAL; i++)
    assert_true(ref[i] == (__int128)s[i]);
  /* The mean is the sum over (W * 2^S), as documented. */
  double *mean = malloc(TOTAL * sizeof *mean);
  assert_non_null(mean);
  assert_int_equal(storefl_accum_mean(a, mean), STOREFL_OK);
  for (size_t i = 0; i < TOTAL; i++)
    assert_true(mean[i] == (double)s[i] / ldexp((double)wsum, S));
  free(mean);
  storefl_accum_free(a);
  for (int j = 0; j < N; j++)
    free_update(&us[j]);
}

static void test_order_and_shards(void **state) {
  (void)state;
  enum { N = 24 };
  upd us[N];
  for (int j = 0; j < N; j++)
    make_update(&us[j], (storefl_dtype[]){STOREFL_DTYPE_F32, STOREFL_DTYPE_I8, STOREFL_DTYPE_F16}[j % 3],
                0.7);
  storefl_accum *a = mk(N);
  for (int j = 0; j < N; j++)
    assert_int_equal(storefl_accum_add(a, us[j].t, NT, us[j].weight), STOREFL_OK);
  for (int trial = 0; trial < 5; trial++) {
    int perm[N];
    for (int j = 0; j < N; j++)
      perm[j] = j;
    for (int j = N - 1; j > 0; j--) {
      int k = (int)(rnd() % (uint64_t)(j + 1)), t = perm[j];
      perm[j] = perm[k];
      perm[k] = t;
    }
    /* two shards in shuffled order, then merged by integer addition */
    storefl_accum *s1 = mk(N), *s2 = mk(N);
    for (int j = 0; j < N; j++)
      assert_int_equal(storefl_accum_add(j % 2 ? s1 : s2, us[perm[j]].t, NT, us[perm[j]].weight), STOREFL_OK);
    const int64_t *x = storefl_accum_sums(a), *y1 = storefl_accum_sums(s1), *y2 = storefl_accum_sums(s2);
    for (size_t i = 0; i < TOTAL; i++)
      assert_true(x[i] == y1[i] + y2[i]);
    storefl_accum_free(s1);
    storefl_accum_free(s2);
  }
  storefl_accum_free(a);
  for (int j = 0; j < N; j++)
    free_update(&us[j]);
}

static void snapshot(storefl_accum *a, int64_t *buf) {
  memcpy(buf, storefl_accum_sums(a), TOTAL * sizeof *buf);
}
static void assert_unchanged(storefl_accum *a, const int64_t *buf, uint32_t count) {
  assert_memory_equal(storefl_accum_sums(a), buf, TOTAL * sizeof *buf);
  assert_int_equal(storefl_accum_count(a), count);
}

static void test_rejections_change_nothing(void **state) {
  (void)state;
  storefl_accum *a = mk(3);
  upd u;
  make_update(&u, STOREFL_DTYPE_F32, 1.0);
  assert_int_equal(storefl_accum_add(a, u.t, NT, 10), STOREFL_OK);
  int64_t snap[TOTAL];
  snapshot(a, snap);

  /* NaN and Inf */
  float bad = NAN;
  uint8_t save[4];
  memcpy(save, u.bytes[1] + 8, 4);
  memcpy(u.bytes[1] + 8, &bad, 4);
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_ERR_NONFINITE);
  bad = -INFINITY;
  memcpy(u.bytes[1] + 8, &bad, 4);
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_ERR_NONFINITE);
  memcpy(u.bytes[1] + 8, save, 4);
  assert_unchanged(a, snap, 1);

  /* wrong shape, name, count, dtype, nbytes */
  u.t[0].shape[1] = 9;
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_ERR_INVALID);
  u.t[0].shape[1] = 8;
  u.t[2].name.ptr = "bias2";
  u.t[2].name.len = 5;
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_ERR_INVALID);
  u.t[2].name.ptr = "bias";
  u.t[2].name.len = 4;
  assert_int_equal(storefl_accum_add(a, u.t, NT - 1, 1), STOREFL_ERR_INVALID);
  u.t[1].dtype = (storefl_dtype)99;
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_ERR_FORMAT);
  u.t[1].dtype = STOREFL_DTYPE_F32;
  u.t[1].nbytes -= 4;
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_ERR_INVALID);
  u.t[1].nbytes += 4;
  /* weight 0 and over the exactness limit */
  assert_int_equal(storefl_accum_add(a, u.t, NT, 0), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_accum_add(a, u.t, NT, ((uint64_t)1 << 20) + 1), STOREFL_ERR_INVALID);
  /* a value whose contribution would pass the range limit: rejected, not wrapped */
  float big = 3.0e6f; /* * 2^24 * 2^20 > 2^51 */
  memcpy(u.bytes[0], &big, 4);
  assert_int_equal(storefl_accum_add(a, u.t, NT, (uint64_t)1 << 20), STOREFL_ERR_INVALID);
  assert_unchanged(a, snap, 1);
  /* but the same value with weight 1 fits (3e6 * 2^24 < 2^51 / 3) */
  assert_int_equal(storefl_accum_add(a, u.t, NT, 1), STOREFL_OK);
  /* int8 with a non-finite or non-positive scale */
  upd q;
  make_update(&q, STOREFL_DTYPE_I8, 1.0);
  snapshot(a, snap);
  q.t[0].scale = 0.0f;
  assert_int_equal(storefl_accum_add(a, q.t, NT, 1), STOREFL_ERR_NONFINITE);
  q.t[0].scale = INFINITY;
  assert_int_equal(storefl_accum_add(a, q.t, NT, 1), STOREFL_ERR_NONFINITE);
  q.t[0].scale = 0.01f;
  assert_unchanged(a, snap, 2);
  /* capacity: max_updates = 3 */
  assert_int_equal(storefl_accum_add(a, q.t, NT, 1), STOREFL_OK);
  snapshot(a, snap);
  assert_int_equal(storefl_accum_add(a, q.t, NT, 1), STOREFL_ERR_UNAVAILABLE);
  assert_unchanged(a, snap, 3);
  storefl_accum_reset(a);
  assert_int_equal(storefl_accum_count(a), 0);
  assert_int_equal(storefl_accum_weight(a), 0);
  assert_int_equal(storefl_accum_sums(a)[5], 0);
  free_update(&u);
  free_update(&q);
  storefl_accum_free(a);
}

/* The one-pass path: add while measuring; a rejection subtracts the same contributions again. */
static void test_add_measured_rejects_exactly(void **state) {
  (void)state;
  const storefl_dtype dts[] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  storefl_accum *a = mk(10), *ref = mk(10);
  upd base;
  make_update(&base, STOREFL_DTYPE_F32, 1.0);
  assert_int_equal(storefl_accum_add_measured(a, base.t, NT, 7, 1e9, NULL), STOREFL_OK);
  assert_int_equal(storefl_accum_add(ref, base.t, NT, 7), STOREFL_OK);
  assert_memory_equal(storefl_accum_sums(a), storefl_accum_sums(ref), TOTAL * sizeof(int64_t));
  int64_t snap[TOTAL];
  for (int d = 0; d < 3; d++) {
    upd u;
    make_update(&u, dts[d], 0.5);
    storefl_accum_stats st, want;
    assert_int_equal(storefl_accum_check(a, u.t, NT, &want), STOREFL_OK);
    /* norm over the bound: measured, rejected, undone */
    uint32_t n0 = storefl_accum_count(a);
    snapshot(a, snap);
    assert_int_equal(storefl_accum_add_measured(a, u.t, NT, 3, want.l2_norm * 0.999, &st),
                     STOREFL_ERR_INVALID);
    assert_true(fabs(st.l2_norm - want.l2_norm) <= 1e-9 * want.l2_norm);
    assert_true(st.max_abs == want.max_abs);
    assert_unchanged(a, snap, n0);
    /* accepted: equals the two-pass path */
    assert_int_equal(storefl_accum_add_measured(a, u.t, NT, 3, want.l2_norm * 1.001, &st), STOREFL_OK);
    assert_int_equal(storefl_accum_add(ref, u.t, NT, 3), STOREFL_OK);
    assert_memory_equal(storefl_accum_sums(a), storefl_accum_sums(ref), TOTAL * sizeof(int64_t));
    /* taken back exactly */
    assert_int_equal(storefl_accum_sub(a, u.t, NT, 3), STOREFL_OK);
    assert_unchanged(a, snap, n0);
    assert_int_equal(storefl_accum_add_measured(a, u.t, NT, 3, 1e9, NULL), STOREFL_OK);
    free_update(&u);
  }
  /* NaN, Inf and a value whose contribution is garbage for the rounding trick (far over 2^51): all
   * added, detected and subtracted again - with SIMD lanes and the scalar tail. */
  uint32_t count = storefl_accum_count(a);
  snapshot(a, snap);
  const float bad[] = {NAN, -INFINITY, 3.0e30f, -1.0e20f};
  for (int b = 0; b < 4; b++) {
    for (size_t pos = 0; pos < NUMEL[0]; pos += 37) {
      float save;
      memcpy(&save, base.bytes[0] + 4 * pos, 4);
      memcpy(base.bytes[0] + 4 * pos, &bad[b], 4);
      int rc = storefl_accum_add_measured(a, base.t, NT, 1000, 1e40, NULL);
      assert_int_equal(rc, b < 2 ? STOREFL_ERR_NONFINITE : STOREFL_ERR_INVALID);
      memcpy(base.bytes[0] + 4 * pos, &save, 4);
    }
  }
  assert_unchanged(a, snap, count);
  /* structure errors change nothing and are reported as by storefl_accum_check */
  base.t[1].shape[0] = 4;
  assert_int_equal(storefl_accum_add_measured(a, base.t, NT, 1, 1e9, NULL), STOREFL_ERR_INVALID);
  base.t[1].shape[0] = 5;
  assert_int_equal(storefl_accum_match(a, base.t, NT), STOREFL_OK);
  assert_unchanged(a, snap, count);
  free_update(&base);
  storefl_accum_free(a);
  storefl_accum_free(ref);
}

static void test_stats_and_rounding(void **state) {
  (void)state;
  storefl_accum_tensor one = {"x", 1, {4}};
  storefl_accum *a = NULL;
  assert_int_equal(storefl_accum_create(&one, 1, 1, 10, &a), STOREFL_OK);
  /* grid 1/2: x*w*2 = 0.5, 1.5, -0.5, -2.5 round half to even -> 0, 2, -0, -2 */
  float v[4] = {0.25f, 0.75f, -0.25f, -1.25f};
  storefl_tensor t = {{"x", 1}, 1, {4}, STOREFL_DTYPE_F32, 1.0f, (const uint8_t *)v, sizeof v};
  storefl_accum_stats st;
  assert_int_equal(storefl_accum_check(a, &t, 1, &st), STOREFL_OK);
  assert_true(fabs(st.l2_norm - sqrt(0.0625 + 0.5625 + 0.0625 + 1.5625)) < 1e-12);
  assert_true(st.max_abs == 1.25);
  assert_int_equal(st.numel, 4);
  assert_int_equal(storefl_accum_add(a, &t, 1, 1), STOREFL_OK);
  const int64_t *s = storefl_accum_sums(a);
  assert_int_equal(s[0], 0);
  assert_int_equal(s[1], 2);
  assert_int_equal(s[2], 0);
  assert_int_equal(s[3], -2);
  int64_t q;
  assert_int_equal(storefl_accum_quantize(2.5, 0, &q), STOREFL_OK);
  assert_int_equal(q, 2);
  assert_int_equal(storefl_accum_quantize(NAN, 0, &q), STOREFL_ERR_INVALID);
  /* bad creation arguments */
  storefl_accum *b = NULL;
  assert_int_equal(storefl_accum_create(&one, 1, 0, 10, &b), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_accum_create(&one, 1, 61, 10, &b), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_accum_create(&one, 1, 8, 0, &b), STOREFL_ERR_INVALID);
  storefl_accum_tensor huge = {"h", 2, {1u << 20, 1u << 12}};
  assert_int_equal(storefl_accum_create(&huge, 1, 8, 1, &b), STOREFL_ERR_INVALID);
  storefl_accum_free(a);
}

/* The partial int32 sums of storefl_accum_add_measured at their boundaries (13 coordinates: one
 * SIMD block of 8 and a scalar tail; unit.accum_scalar runs the scalar code). With S = 30 and w = 1
 * the per-update bounds b are 2^30, 2^30 - 64 and 63: together exactly INT32_MAX, which must stay in
 * the partial sums; the next update (b = 1) must fold first. Every coordinate then holds +-2^31,
 * which an int32 lane cannot: a missed or late fold shows as a wrapped sum. Then b = 2^31 (straight
 * to int64), and a NaN update after all that (taken back exactly). */
static void put_all(float *v, size_t n, float x) {
  for (size_t i = 0; i < n; i++)
    v[i] = (i % 2) ? -x : x;
}

static void test_partial_fold_boundaries(void **state) {
  (void)state;
  enum { N = 13 };
  const storefl_accum_tensor spec = {"t", 1, {N}};
  storefl_accum *a = NULL;
  assert_int_equal(storefl_accum_create(&spec, 1, 30, 16, &a), 0);
  float v[N];
  storefl_tensor t;
  memset(&t, 0, sizeof t);
  t.name.ptr = "t";
  t.name.len = 1;
  t.ndim = 1;
  t.shape[0] = N;
  t.dtype = STOREFL_DTYPE_F32;
  t.scale = 1.0f;
  t.data = (const uint8_t *)v;
  t.nbytes = sizeof v;
  const float xs[] = {1.0f, 1.0f - 0x1.0p-24f, 63 * 0x1.0p-30f, 0x1.0p-30f};
  const int64_t cs[] = {(int64_t)1 << 30, ((int64_t)1 << 30) - 64, 63, 1};
  int64_t want = 0;
  for (int k = 0; k < 4; k++) {
    put_all(v, N, xs[k]);
    storefl_accum_stats st;
    assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1e30, &st), 0);
    assert_true(st.max_abs == (double)xs[k]);
    want += cs[k];
    if (k == 2)
      assert_int_equal(want, INT32_MAX); /* the partial sums are exactly full here */
  }
  assert_int_equal(want, (int64_t)1 << 31);
  const int64_t *s = storefl_accum_sums(a);
  for (int i = 0; i < N; i++)
    assert_int_equal(s[i], (i % 2) ? -want : want);
  /* b = 2^31 does not fit a lane: it goes to the int64 sums. */
  put_all(v, N, 2.0f);
  assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1e30, NULL), 0);
  want += (int64_t)1 << 31;
  /* Partial sums again, then a NaN update: taken back exactly. */
  put_all(v, N, 0.5f);
  assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1e30, NULL), 0);
  want += (int64_t)1 << 29;
  put_all(v, N, 0.25f);
  v[N - 1] = NAN; /* in the scalar tail */
  assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1e30, NULL), STOREFL_ERR_NONFINITE);
  put_all(v, N, 0.25f);
  v[3] = NAN; /* in the SIMD block */
  assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1e30, NULL), STOREFL_ERR_NONFINITE);
  put_all(v, N, 0.75f); /* over the norm bound */
  assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1.0, NULL), STOREFL_ERR_INVALID);
  s = storefl_accum_sums(a);
  for (int i = 0; i < N; i++)
    assert_int_equal(s[i], (i % 2) ? -want : want);
  assert_int_equal(storefl_accum_count(a), 6);
  assert_int_equal(storefl_accum_weight(a), 6);
  /* Reading the sums folded them; more updates after that still count (same arrays). */
  put_all(v, N, 1.0f);
  assert_int_equal(storefl_accum_add_measured(a, &t, 1, 1, 1e30, NULL), 0);
  want += (int64_t)1 << 30;
  s = storefl_accum_sums(a);
  for (int i = 0; i < N; i++)
    assert_int_equal(s[i], (i % 2) ? -want : want);
  storefl_accum_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_against_reference),   cmocka_unit_test(test_order_and_shards),
      cmocka_unit_test(test_rejections_change_nothing), cmocka_unit_test(test_add_measured_rejects_exactly),
      cmocka_unit_test(test_stats_and_rounding),        cmocka_unit_test(test_partial_fold_boundaries),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
