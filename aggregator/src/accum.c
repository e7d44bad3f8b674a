/* Exact fixed-point accumulation of weighted updates (see storefl/accum.h). */
#include "storefl/accum.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/error.h"

/* Contributions must stay below 2^51 so that the "add 1.5 * 2^52" rounding trick (which needs
 * |v| < 2^51) is exact, and below INT64_MAX / max_updates so that no sum can overflow. */
#define ACC_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#define ACC_MAX_CONTRIB ((int64_t)1 << 51)
/* Weights above 2^20 would make x * w * 2^S inexact for int8 values (8 + 24 + 20 = 52 bits). */
#define ACC_MAX_WEIGHT ((uint64_t)1 << 20)

struct storefl_accum {
  uint32_t n_tensors;
  storefl_accum_tensor tensors[STOREFL_MAX_TENSORS];
  size_t numel[STOREFL_MAX_TENSORS];
  size_t offset[STOREFL_MAX_TENSORS];
  size_t total;
  int scale_bits;
  uint32_t max_updates;
  uint32_t count;
  uint64_t weight;
  int64_t limit;
  int64_t *sums;
  /* Narrow partial sums (see "Partial int32 sums" below): the accumulated value of coordinate i is
   * sums[i] + part[i]. part_bound bounds every |part[i]| and never exceeds INT32_MAX. */
  int32_t *part;
  int64_t part_bound;
};

static float g_half_table[65536];
static pthread_once_t g_half_once = PTHREAD_ONCE_INIT;

static float half_to_float(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0)
    v = ldexpf((float)man, -24); /* subnormal (and zero) */
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = ldexpf((float)(man | 0x400), exp - 25);
  return sign ? -v : v;
}

static void half_table_init(void) {
  for (uint32_t i = 0; i < 65536; i++)
    g_half_table[i] = half_to_float((uint16_t)i);
}

static int shape_numel(uint32_t ndim, const uint64_t *shape, size_t *out) {
  if (ndim > STOREFL_MAX_DIMS)
    return STOREFL_ERR_INVALID;
  uint64_t n = 1;
  for (uint32_t i = 0; i < ndim; i++) {
    if (shape[i] != 0 && n > ((uint64_t)1 << 31) / shape[i])
      return STOREFL_ERR_INVALID;
    n *= shape[i];
  }
  if (n > ((uint64_t)1 << 31))
    return STOREFL_ERR_INVALID;
  *out = (size_t)n;
  return STOREFL_OK;
}

int storefl_accum_create(const storefl_accum_tensor *tensors, uint32_t n_tensors, int scale_bits,
                         uint32_t max_updates, storefl_accum **out) {
  if (!tensors || !out || n_tensors == 0 || n_tensors > STOREFL_MAX_TENSORS || scale_bits < 1 ||
      scale_bits > 60 || max_updates == 0)
    return STOREFL_ERR_INVALID;
  pthread_once(&g_half_once, half_table_init);
  storefl_accum *a = calloc(1, sizeof *a);
  if (!a)
    return STOREFL_ERR_NOMEM;
  a->n_tensors = n_tensors;
  a->scale_bits = scale_bits;
  a->max_updates = max_updates;
  int64_t lim = INT64_MAX / (int64_t)max_updates;
  a->limit = lim < ACC_MAX_CONTRIB - 1 ? lim : ACC_MAX_CONTRIB - 1;
  for (uint32_t t = 0; t < n_tensors; t++) {
    a->tensors[t] = tensors[t];
    a->tensors[t].name[STOREFL_MAX_ID_LEN] = '\0';
    if (a->tensors[t].name[0] == '\0' || shape_numel(tensors[t].ndim, tensors[t].shape, &a->numel[t]) != 0 ||
        a->total + a->numel[t] > ((size_t)1 << 31)) {
      free(a);
      return STOREFL_ERR_INVALID;
    }
    a->offset[t] = a->total;
    a->total += a->numel[t];
  }
  a->sums = calloc(a->total ? a->total : 1, sizeof *a->sums);
  a->part = calloc(a->total ? a->total : 1, sizeof *a->part);
  if (!a->sums || !a->part) {
    free(a->sums);
    free(a->part);
    free(a);
    return STOREFL_ERR_NOMEM;
  }
  *out = a;
  return STOREFL_OK;
}

void storefl_accum_free(storefl_accum *acc) {
  if (!acc)
    return;
  free(acc->sums);
  free(acc->part);
  free(acc);
}

static int match_tensor(const storefl_accum *a, uint32_t t, const storefl_tensor *u) {
  const storefl_accum_tensor *m = &a->tensors[t];
  size_t nlen = strlen(m->name);
  if (!u->name.ptr || u->name.len != nlen || memcmp(u->name.ptr, m->name, nlen) != 0 || u->ndim != m->ndim)
    return STOREFL_ERR_INVALID;
  for (uint32_t d = 0; d < m->ndim; d++)
    if (u->shape[d] != m->shape[d])
      return STOREFL_ERR_INVALID;
  size_t es = storefl_dtype_size(u->dtype);
  if (es == 0)
    return STOREFL_ERR_FORMAT;
  if (u->nbytes != a->numel[t] * es || (a->numel[t] > 0 && !u->data))
    return STOREFL_ERR_INVALID;
  if (u->dtype == STOREFL_DTYPE_I8 && !(isfinite(u->scale) && u->scale > 0.0f))
    return STOREFL_ERR_NONFINITE;
  return STOREFL_OK;
}

/* Sum of squares and max |x| of one tensor; a NaN/Inf makes ss non-finite. Four partial sums give
 * instruction-level parallelism; their order is fixed, so the result is deterministic. */
static void tensor_stats(const storefl_tensor *u, size_t n, double *ss_out, double *max_out) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  float mx = 0.0f;
  size_t i = 0;
  if (u->dtype == STOREFL_DTYPE_F32) {
    const uint8_t *p = u->data;
    for (; i + 4 <= n; i += 4) {
      float v[4];
      memcpy(v, p + 4 * i, sizeof v);
      s0 += (double)v[0] * v[0];
      s1 += (double)v[1] * v[1];
      s2 += (double)v[2] * v[2];
      s3 += (double)v[3] * v[3];
      for (int k = 0; k < 4; k++)
        mx = fabsf(v[k]) > mx ? fabsf(v[k]) : mx;
    }
    for (; i < n; i++) {
      float v;
      memcpy(&v, p + 4 * i, sizeof v);
      s0 += (double)v * v;
      mx = fabsf(v) > mx ? fabsf(v) : mx;
    }
  } else if (u->dtype == STOREFL_DTYPE_F16) {
    const uint8_t *p = u->data;
    for (; i < n; i++) {
      uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
      float v = g_half_table[h];
      s0 += (double)v * v;
      mx = fabsf(v) > mx ? fabsf(v) : mx;
    }
  } else {
    const int8_t *q = (const int8_t *)u->data;
    int64_t sq = 0;
    int qm = 0;
    for (; i < n; i++) {
      int v = q[i];
      sq += v * v;
      qm = abs(v) > qm ? abs(v) : qm;
    }
    double sc = (double)u->scale;
    *ss_out = sc * sc * (double)sq;
    *max_out = sc * qm;
    return;
  }
  *ss_out = (s0 + s1) + (s2 + s3);
  *max_out = mx;
}

/* x * w * 2^S for float values x: exact in double (24 + 20 bits), then rounded half-to-even by the
 * magic-number addition; the integer is read from the low mantissa bits (valid for |v| < 2^51). Out of
 * that range (or for NaN) the result is garbage, but deterministic garbage: an update measured as out
 * of range is subtracted again with the very same values, so integer arithmetic here wraps (unsigned)
 * instead of overflowing. */
static inline int64_t round_bits(double v) {
  double r = v + ACC_MAGIC;
  uint64_t bits, magic_bits;
  const double m = ACC_MAGIC;
  memcpy(&bits, &r, sizeof bits);
  memcpy(&magic_bits, &m, sizeof magic_bits);
  return (int64_t)(bits - magic_bits);
}

static inline void put(int64_t *s, int64_t c, int sub) {
  uint64_t u = (uint64_t)*s;
  *s = (int64_t)(sub ? u - (uint64_t)c : u + (uint64_t)c);
}

/* Scalar kernels: add (sub = 0) or subtract (sub = 1) the contributions; with ss/mx non-NULL also
 * measure sum of squares and max |x| in the same pass. */
static void f32_scalar(int64_t *restrict sums, const uint8_t *restrict p, size_t n, double ws, int sub,
                       double *ss, double *mx) {
  double s0 = 0;
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float v;
    memcpy(&v, p + 4 * i, sizeof v);
    put(&sums[i], round_bits((double)v * ws), sub);
    if (ss) {
      s0 += (double)v * v;
      m = fabsf(v) > m ? fabsf(v) : m;
    }
  }
  if (ss) {
    *ss += s0;
    *mx = (double)m > *mx ? (double)m : *mx;
  }
}

static void f16_scalar(int64_t *restrict sums, const uint8_t *restrict p, size_t n, double ws, int sub,
                       double *ss, double *mx) {
  double s0 = 0;
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float v = g_half_table[(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8))];
    put(&sums[i], round_bits((double)v * ws), sub);
    if (ss) {
      s0 += (double)v * v;
      m = fabsf(v) > m ? fabsf(v) : m;
    }
  }
  if (ss) {
    *ss += s0;
    *mx = (double)m > *mx ? (double)m : *mx;
  }
}

/* int8: q * (scale * w * 2^S) is exact (8 + 24 + 20 bits) and equals (q * scale) * w * 2^S. */
static void i8_scalar(int64_t *restrict sums, const uint8_t *restrict p, size_t n, double ws, float scale,
                      int sub) {
  int64_t table[256];
  for (int q = -128; q < 128; q++)
    table[(uint8_t)q] = round_bits((double)q * ((double)scale * ws));
  for (size_t i = 0; i < n; i++)
    put(&sums[i], table[p[i]], sub);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define ACC_HAVE_AVX2 1
/* AVX2 (+F16C) kernels, chosen at run time. They perform exactly the same IEEE operations per element
 * as the scalar code (float->double, an exact product, one rounding addition, integer add), so the
 * sums are bit-identical whichever path runs; only the summation order of the squared norm differs
 * (it is compared with a bound, never accumulated). */
#define AVX2 __attribute__((target("avx2,f16c")))

/* Horizontal reductions of the AVX2 kernels' in-pass measurements: s0 + s1 lane by lane, then
 * pairwise (one order for every kernel); and the largest lane of m. */
AVX2 static inline double hsum2_pd(__m256d s0, __m256d s1) {
  double v[4], w[4];
  _mm256_storeu_pd(v, s0);
  _mm256_storeu_pd(w, s1);
  return ((v[0] + w[0]) + (v[1] + w[1])) + ((v[2] + w[2]) + (v[3] + w[3]));
}

AVX2 static inline float hmax128_ps(__m128 m) {
  float mm[4];
  _mm_storeu_ps(mm, m);
  return fmaxf(fmaxf(mm[0], mm[1]), fmaxf(mm[2], mm[3]));
}

AVX2 static inline double hmax_pd(__m256d m) {
  double mm[4];
  _mm256_storeu_pd(mm, m);
  return fmax(fmax(mm[0], mm[1]), fmax(mm[2], mm[3]));
}

AVX2 static inline float hmax256_ps(__m256 m) {
  float mm[8];
  _mm256_storeu_ps(mm, m);
  float mx = 0;
  for (int j = 0; j < 8; j++)
    mx = fmaxf(mx, mm[j]);
  return mx;
}

AVX2 static void stats_f32_avx2(const uint8_t *p, size_t n, double *ss, double *mx) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m128 m = _mm_setzero_ps();
  const __m128 absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128 a = _mm_loadu_ps((const float *)(const void *)(p + 4 * i));
    __m128 b = _mm_loadu_ps((const float *)(const void *)(p + 4 * i + 16));
    __m256d da = _mm256_cvtps_pd(a), db = _mm256_cvtps_pd(b);
    s0 = _mm256_add_pd(s0, _mm256_mul_pd(da, da));
    s1 = _mm256_add_pd(s1, _mm256_mul_pd(db, db));
    m = _mm_max_ps(m, _mm_max_ps(_mm_and_ps(a, absmask), _mm_and_ps(b, absmask)));
  }
  double sum = hsum2_pd(s0, s1);
  float mxf = hmax128_ps(m);
  for (; i < n; i++) {
    float x;
    memcpy(&x, p + 4 * i, sizeof x);
    sum += (double)x * x;
    mxf = fabsf(x) > mxf ? fabsf(x) : mxf;
  }
  *ss = sum;
  *mx = mxf;
}

AVX2 static void stats_f16_avx2(const uint8_t *p, size_t n, double *ss, double *mx) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256 m = _mm256_setzero_ps();
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i)));
    __m256d da = _mm256_cvtps_pd(_mm256_castps256_ps128(f)),
            db = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    s0 = _mm256_add_pd(s0, _mm256_mul_pd(da, da));
    s1 = _mm256_add_pd(s1, _mm256_mul_pd(db, db));
    m = _mm256_max_ps(m, _mm256_and_ps(f, absmask));
  }
  double sum = hsum2_pd(s0, s1);
  float mxf = hmax256_ps(m);
  for (; i < n; i++) {
    float x = g_half_table[(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8))];
    sum += (double)x * x;
    mxf = fabsf(x) > mxf ? fabsf(x) : mxf;
  }
  /* a NaN lane would be dropped by max_ps but never by the sum of squares */
  *ss = sum;
  *mx = mxf;
}

/* Eight contributions (two vectors of four doubles) into sums[0..8), added or subtracted. */
AVX2 static inline void put8_avx2(int64_t *sums, __m256d a, __m256d b, __m256d k, int sub) {
  const __m256d vm = _mm256_set1_pd(ACC_MAGIC);
  const __m256i vmb = _mm256_castpd_si256(vm);
  __m256i qa = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(_mm256_mul_pd(a, k), vm)), vmb);
  __m256i qb = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(_mm256_mul_pd(b, k), vm)), vmb);
  __m256i *d = (__m256i *)(void *)sums;
  __m256i da = _mm256_loadu_si256(d), db = _mm256_loadu_si256(d + 1);
  _mm256_storeu_si256(d, sub ? _mm256_sub_epi64(da, qa) : _mm256_add_epi64(da, qa));
  _mm256_storeu_si256(d + 1, sub ? _mm256_sub_epi64(db, qb) : _mm256_add_epi64(db, qb));
}

/* float32: add or subtract; with ss/mx also measure in the same pass (the update is read once). */
AVX2 static void f32_avx2(int64_t *sums, const uint8_t *p, size_t n, double ws, int sub, double *ss,
                          double *mx) {
  const __m256d k = _mm256_set1_pd(ws);
  const __m128 absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m128 m = _mm_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128 fa = _mm_loadu_ps((const float *)(const void *)(p + 4 * i));
    __m128 fb = _mm_loadu_ps((const float *)(const void *)(p + 4 * i + 16));
    __m256d a = _mm256_cvtps_pd(fa), b = _mm256_cvtps_pd(fb);
    put8_avx2(sums + i, a, b, k, sub);
    if (ss) {
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(a, a));
      s1 = _mm256_add_pd(s1, _mm256_mul_pd(b, b));
      m = _mm_max_ps(m, _mm_max_ps(_mm_and_ps(fa, absmask), _mm_and_ps(fb, absmask)));
    }
  }
  if (ss) {
    *ss += hsum2_pd(s0, s1);
    double mxf = hmax128_ps(m);
    *mx = mxf > *mx ? mxf : *mx;
  }
  f32_scalar(sums + i, p + 4 * i, n - i, ws, sub, ss, mx);
}

AVX2 static void f16_avx2(int64_t *sums, const uint8_t *p, size_t n, double ws, int sub, double *ss,
                          double *mx) {
  const __m256d k = _mm256_set1_pd(ws);
  const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  __m256 m = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i)));
    __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(f)), b = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
    put8_avx2(sums + i, a, b, k, sub);
    if (ss) {
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(a, a));
      s1 = _mm256_add_pd(s1, _mm256_mul_pd(b, b));
      m = _mm256_max_ps(m, _mm256_and_ps(f, absmask));
    }
  }
  if (ss) {
    *ss += hsum2_pd(s0, s1);
    float mxf = hmax256_ps(m);
    *mx = (double)mxf > *mx ? (double)mxf : *mx;
  }
  f16_scalar(sums + i, p + 2 * i, n - i, ws, sub, ss, mx);
}

/* int8: q * (scale * w * 2^S) is exact (8 + 24 + 20 bits) and equals (q * scale) * w * 2^S. With ss/mx,
 * also sum q^2 (exact in double: at most 2^31 terms of at most 2^14) and max |q|, then scale them,
 * exactly as tensor_stats does. */
AVX2 static void i8_avx2(int64_t *sums, const uint8_t *p, size_t n, double ws, float scale, int sub,
                         double *ss, double *mx) {
  const __m256d k = _mm256_set1_pd((double)scale * ws);
  const __m256d sign = _mm256_set1_pd(-0.0);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), m = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    int64_t raw;
    memcpy(&raw, p + i, sizeof raw);
    __m256i q32 = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(raw));
    __m256d a = _mm256_cvtepi32_pd(_mm256_castsi256_si128(q32));
    __m256d b = _mm256_cvtepi32_pd(_mm256_extracti128_si256(q32, 1));
    put8_avx2(sums + i, a, b, k, sub);
    if (ss) {
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(a, a));
      s1 = _mm256_add_pd(s1, _mm256_mul_pd(b, b));
      m = _mm256_max_pd(m, _mm256_max_pd(_mm256_andnot_pd(sign, a), _mm256_andnot_pd(sign, b)));
    }
  }
  double sq = 0, mq = 0;
  if (ss) {
    sq = hsum2_pd(s0, s1);
    mq = hmax_pd(m);
  }
  for (; i < n; i++) {
    int q = (int8_t)p[i];
    put(&sums[i], round_bits((double)q * ((double)scale * ws)), sub);
    sq += (double)(q * q);
    mq = fmax(mq, (double)abs(q));
  }
  if (ss) {
    double sc = (double)scale;
    *ss += sc * sc * sq;
    *mx = sc * mq > *mx ? sc * mq : *mx;
  }
}

/* Partial int32 sums: the same contributions, converted with cvtpd_epi32 (round half to even under
 * the default rounding mode, like the magic-number addition; exact for |v| < 2^31), added to (or
 * subtracted from) 32-bit lanes with wrapping arithmetic: half the accumulator traffic of the int64
 * kernels. Out of range or NaN the lane value is garbage, but the same garbage for the add and the
 * take-back, which wrapping arithmetic undoes exactly. */
AVX2 static inline void put8_part_avx2(int32_t *part, __m256d a, __m256d b, __m256d k, int sub) {
  __m128i qa = _mm256_cvtpd_epi32(_mm256_mul_pd(a, k));
  __m128i qb = _mm256_cvtpd_epi32(_mm256_mul_pd(b, k));
  __m256i q = _mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1);
  __m256i *d = (__m256i *)(void *)part;
  __m256i v = _mm256_loadu_si256(d);
  _mm256_storeu_si256(d, sub ? _mm256_sub_epi32(v, q) : _mm256_add_epi32(v, q));
}

/* One tensor into the partial sums, 8 coordinates at a time, measuring (ss/mx non-NULL) in the same
 * pass as f32_avx2/f16_avx2/i8_avx2 do. Returns how many coordinates it did (the caller finishes
 * the tail with part_scalar). */
AVX2 static size_t part_avx2(int32_t *part, const storefl_tensor *u, size_t n, double ws, int sub, double *ss,
                             double *mx) {
  size_t i = 0;
  const uint8_t *p = u->data;
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  if (u->dtype == STOREFL_DTYPE_F32 || u->dtype == STOREFL_DTYPE_F16) {
    const __m256d k = _mm256_set1_pd(ws);
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 m = _mm256_setzero_ps();
    int f32 = u->dtype == STOREFL_DTYPE_F32;
    for (; i + 8 <= n; i += 8) {
      __m256 f = f32 ? _mm256_loadu_ps((const float *)(const void *)(p + 4 * i))
                     : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i)));
      __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(f)),
              b = _mm256_cvtps_pd(_mm256_extractf128_ps(f, 1));
      put8_part_avx2(part + i, a, b, k, sub);
      if (ss) {
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(a, a));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(b, b));
        m = _mm256_max_ps(m, _mm256_and_ps(f, absmask));
      }
    }
    if (ss) {
      *ss += hsum2_pd(s0, s1);
      float mxf = hmax256_ps(m);
      *mx = (double)mxf > *mx ? (double)mxf : *mx;
    }
  } else {
    const __m256d k = _mm256_set1_pd((double)u->scale * ws);
    const __m256d sign = _mm256_set1_pd(-0.0);
    __m256d m = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
      int64_t raw;
      memcpy(&raw, p + i, sizeof raw);
      __m256i q32 = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(raw));
      __m256d a = _mm256_cvtepi32_pd(_mm256_castsi256_si128(q32));
      __m256d b = _mm256_cvtepi32_pd(_mm256_extracti128_si256(q32, 1));
      put8_part_avx2(part + i, a, b, k, sub);
      if (ss) {
        s0 = _mm256_add_pd(s0, _mm256_mul_pd(a, a));
        s1 = _mm256_add_pd(s1, _mm256_mul_pd(b, b));
        m = _mm256_max_pd(m, _mm256_max_pd(_mm256_andnot_pd(sign, a), _mm256_andnot_pd(sign, b)));
      }
    }
    if (ss) {
      /* sums of q^2 (exact integers in double) and max |q|, scaled as tensor_stats does */
      double sq = hsum2_pd(s0, s1);
      double mq = hmax_pd(m);
      for (size_t j = i; j < n; j++) { /* the tail's measurement (part_scalar only adds for int8) */
        int q = (int8_t)p[j];
        sq += (double)(q * q);
        mq = fmax(mq, (double)abs(q));
      }
      double sc = (double)u->scale;
      *ss += sc * sc * sq;
      *mx = sc * mq > *mx ? sc * mq : *mx;
    }
  }
  return i;
}

AVX2 static void fold_avx2(int64_t *sums, int32_t *part, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(part + i));
    __m256i *d = (__m256i *)(void *)(sums + i);
    _mm256_storeu_si256(d, _mm256_add_epi64(_mm256_loadu_si256(d), _mm256_cvtepi32_epi64(q)));
    _mm_storeu_si128((__m128i *)(void *)(part + i), _mm_setzero_si128());
  }
  for (; i < n; i++) {
    sums[i] = (int64_t)((uint64_t)sums[i] + (uint64_t)(int64_t)part[i]);
    part[i] = 0;
  }
}

static int g_use_avx2;
static pthread_once_t g_simd_once = PTHREAD_ONCE_INIT;
static void simd_init(void) {
  const char *off = getenv("STOREFL_NO_SIMD");
  unsigned a, b, c, d;
  /* F16C is CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c"). */
  int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
  g_use_avx2 = !(off && *off) && __builtin_cpu_supports("avx2") && f16c;
}
static int use_avx2(void) {
  pthread_once(&g_simd_once, simd_init);
  return g_use_avx2;
}
#else
static int use_avx2(void) {
  return 0;
}
#endif

/* Scalar partial-sum kernel from index i on: the low 32 bits of round_bits (the value itself when
 * |c| < 2^31), added or subtracted with wrapping; with ss/mx, f32/f16 values are measured too (int8
 * measurement is done by the caller, from the integers). */
static void part_scalar(int32_t *part, const storefl_tensor *u, size_t i, size_t n, double ws, int sub,
                        double *ss, double *mx) {
  const uint8_t *p = u->data;
  uint32_t *w = (uint32_t *)part;
  if (u->dtype == STOREFL_DTYPE_I8) {
    uint32_t table[256];
    for (int q = -128; q < 128; q++)
      table[(uint8_t)q] = (uint32_t)round_bits((double)q * ((double)u->scale * ws));
    for (; i < n; i++)
      w[i] = sub ? w[i] - table[p[i]] : w[i] + table[p[i]];
    return;
  }
  double s0 = 0;
  float m = 0.0f;
  for (; i < n; i++) {
    float v;
    if (u->dtype == STOREFL_DTYPE_F32)
      memcpy(&v, p + 4 * i, sizeof v);
    else
      v = g_half_table[(uint16_t)(p[2 * i] | (p[2 * i + 1] << 8))];
    uint32_t c = (uint32_t)round_bits((double)v * ws);
    w[i] = sub ? w[i] - c : w[i] + c;
    if (ss) {
      s0 += (double)v * v;
      m = fabsf(v) > m ? fabsf(v) : m;
    }
  }
  if (ss) {
    *ss += s0;
    *mx = (double)m > *mx ? (double)m : *mx;
  }
}

/* Moves the partial sums into the int64 sums (the accumulated values do not change). */
static void fold_part(storefl_accum *acc) {
  if (acc->part_bound == 0)
    return;
#ifdef ACC_HAVE_AVX2
  if (use_avx2())
    fold_avx2(acc->sums, acc->part, acc->total);
  else
#endif
  {
    for (size_t i = 0; i < acc->total; i++) {
      acc->sums[i] = (int64_t)((uint64_t)acc->sums[i] + (uint64_t)(int64_t)acc->part[i]);
      acc->part[i] = 0;
    }
  }
  acc->part_bound = 0;
}

int storefl_accum_check(const storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                        storefl_accum_stats *stats) {
  if (!acc || (!tensors && n_tensors))
    return STOREFL_ERR_INVALID;
  if (n_tensors != acc->n_tensors)
    return STOREFL_ERR_INVALID;
  for (uint32_t t = 0; t < n_tensors; t++) {
    int rc = match_tensor(acc, t, &tensors[t]);
    if (rc)
      return rc;
  }
  double ss = 0, mx = 0;
  for (uint32_t t = 0; t < n_tensors; t++) {
    double s, m;
#ifdef ACC_HAVE_AVX2
    if (use_avx2() && tensors[t].dtype == STOREFL_DTYPE_F32)
      stats_f32_avx2(tensors[t].data, acc->numel[t], &s, &m);
    else if (use_avx2() && tensors[t].dtype == STOREFL_DTYPE_F16)
      stats_f16_avx2(tensors[t].data, acc->numel[t], &s, &m);
    else
#endif
      tensor_stats(&tensors[t], acc->numel[t], &s, &m);
    if (!isfinite(s))
      return STOREFL_ERR_NONFINITE;
    ss += s;
    mx = m > mx ? m : mx;
  }
  if (!isfinite(ss))
    return STOREFL_ERR_NONFINITE; /* finite values whose squares overflow: certainly too large */
  if (stats) {
    stats->l2_norm = sqrt(ss);
    stats->max_abs = mx;
    stats->numel = acc->total;
  }
  return STOREFL_OK;
}

/* Adds (sub = 0) or subtracts (sub = 1) one tensor's contributions; with ss/mx non-NULL, also adds its
 * sum of squares to *ss and raises *mx to its max |x| (int8: from the integers, exact). */
static void tensor_kernel(storefl_accum *acc, uint32_t t, const storefl_tensor *u, double ws, int sub,
                          double *ss, double *mx) {
  int64_t *s = acc->sums + acc->offset[t];
  size_t n = acc->numel[t];
#ifdef ACC_HAVE_AVX2
  if (use_avx2()) {
    if (u->dtype == STOREFL_DTYPE_F32)
      f32_avx2(s, u->data, n, ws, sub, ss, mx);
    else if (u->dtype == STOREFL_DTYPE_F16)
      f16_avx2(s, u->data, n, ws, sub, ss, mx);
    else
      i8_avx2(s, u->data, n, ws, u->scale, sub, ss, mx);
    return;
  }
#endif
  if (u->dtype == STOREFL_DTYPE_I8 && ss) {
    double s8, m8;
    tensor_stats(u, n, &s8, &m8);
    *ss += s8;
    *mx = m8 > *mx ? m8 : *mx;
  }
  if (u->dtype == STOREFL_DTYPE_F32)
    f32_scalar(s, u->data, n, ws, sub, ss, mx);
  else if (u->dtype == STOREFL_DTYPE_F16)
    f16_scalar(s, u->data, n, ws, sub, ss, mx);
  else
    i8_scalar(s, u->data, n, ws, u->scale, sub);
}

int storefl_accum_match(const storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors) {
  if (!acc || (!tensors && n_tensors) || n_tensors != acc->n_tensors)
    return STOREFL_ERR_INVALID;
  for (uint32_t t = 0; t < n_tensors; t++) {
    int rc = match_tensor(acc, t, &tensors[t]);
    if (rc)
      return rc;
  }
  return STOREFL_OK;
}

/* Adds (sub = 0) or subtracts one update's contributions to/from the partial int32 sums, measuring
 * it (sum of squares, max |x|) when ss/mx are not NULL. */
static void part_kernel(storefl_accum *acc, uint32_t t, const storefl_tensor *u, double ws, int sub,
                        double *ss, double *mx) {
  int32_t *part = acc->part + acc->offset[t];
  size_t n = acc->numel[t], i = 0;
#ifdef ACC_HAVE_AVX2
  if (use_avx2()) {
    i = part_avx2(part, u, n, ws, sub, ss, mx);
    part_scalar(part, u, i, n, ws, sub, u->dtype == STOREFL_DTYPE_I8 ? NULL : ss, mx);
    return;
  }
#endif
  if (u->dtype == STOREFL_DTYPE_I8 && ss) {
    double s8, m8;
    tensor_stats(u, n, &s8, &m8);
    *ss += s8;
    *mx = m8 > *mx ? m8 : *mx;
  }
  part_scalar(part, u, 0, n, ws, sub, ss, mx);
}

/* Partial int32 sums. Folding every update into the int64 sums reads and writes 8 bytes per
 * coordinate per update, twice the bytes of a float32 update. Instead an update goes into a 32-bit
 * partial array (4 bytes per coordinate), folded into the int64 sums when the next update might
 * overflow it and before anyone reads the sums. The update is added and measured in one pass (it is
 * read once); if the measurement says it might not have fitted, it is taken back (wrapping
 * arithmetic makes that exact even if a lane wrapped), the partial sums are folded and it is added
 * again. Why nothing is lost:
 *   - every coordinate has |x| <= max_abs, so its contribution c = round_half_even(x * w * 2^S) has
 *     |c| = round(|x| * w * 2^S) <= round(max_abs * w * 2^S) <= ceil(max_abs * w * 2^S) = b
 *     (rounding is symmetric and monotone; max_abs * w * 2^S is an exact double: at most 24 + 20
 *     significant bits, 8 + 24 + 20 for int8 with its scale);
 *   - part_bound is the sum of the b of the updates in the partial array since the last fold, so
 *     |part[i]| <= part_bound for every i (triangle inequality), and an update is kept there only if
 *     part_bound + b <= INT32_MAX: no lane ever holds a wrapped value once an update is accepted;
 *   - an update with b > INT32_MAX goes to the int64 sums (the previous kernels).
 * With the defaults (S = 24), an update of norm <= 1 over the ~532k coordinates of the default model
 * has max |x| of a few 1e-3, so b ~ 1e7 at weight 100 and a fold happens every ~200 updates; the
 * fold costs one int64 pass, as every update did before. The integers accumulated are the same
 * whichever array holds them: the sums stay exact and independent of arrival order. unit.accum
 * checks the boundaries (b = INT32_MAX, b = 2^31, part_bound + b = INT32_MAX and one more). */
int storefl_accum_add_measured(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                               uint64_t weight, double max_norm, storefl_accum_stats *stats) {
  int rc = storefl_accum_match(acc, tensors, n_tensors);
  if (rc)
    return rc;
  if (weight == 0 || weight > ACC_MAX_WEIGHT)
    return STOREFL_ERR_INVALID;
  if (acc->count >= acc->max_updates)
    return STOREFL_ERR_UNAVAILABLE;
  double ws = ldexp((double)weight, acc->scale_bits), ss = 0, mx = 0;
  for (uint32_t t = 0; t < n_tensors; t++)
    part_kernel(acc, t, &tensors[t], ws, 0, &ss, &mx);
  storefl_accum_stats st = {sqrt(ss), mx, acc->total};
  if (!isfinite(ss))
    rc = STOREFL_ERR_NONFINITE;
  else if (!(st.l2_norm <= max_norm) || !(mx * ws <= (double)acc->limit))
    rc = STOREFL_ERR_INVALID;
  if (stats)
    *stats = st;
  double bd = rc ? 0 : ceil(mx * ws);
  if (rc || bd > (double)((int64_t)INT32_MAX - acc->part_bound)) {
    /* Rejected, or it may not have fitted: take it back exactly. */
    for (uint32_t t = 0; t < n_tensors; t++)
      part_kernel(acc, t, &tensors[t], ws, 1, NULL, NULL);
    if (rc)
      return rc;
    fold_part(acc);
    if (bd <= (double)INT32_MAX) {
      for (uint32_t t = 0; t < n_tensors; t++)
        part_kernel(acc, t, &tensors[t], ws, 0, NULL, NULL);
      acc->part_bound = (int64_t)bd;
    } else {
      for (uint32_t t = 0; t < n_tensors; t++)
        tensor_kernel(acc, t, &tensors[t], ws, 0, NULL, NULL);
    }
  } else {
    acc->part_bound += (int64_t)bd;
  }
  acc->count++;
  acc->weight += weight;
  return STOREFL_OK;
}

int storefl_accum_sub(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                      uint64_t weight) {
  if (!acc || acc->count == 0 || acc->weight < weight || weight == 0 || weight > ACC_MAX_WEIGHT ||
      storefl_accum_match(acc, tensors, n_tensors) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  double ws = ldexp((double)weight, acc->scale_bits);
  for (uint32_t t = 0; t < n_tensors; t++)
    tensor_kernel(acc, t, &tensors[t], ws, 1, NULL, NULL);
  acc->count--;
  acc->weight -= weight;
  return STOREFL_OK;
}

int storefl_accum_add(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                      uint64_t weight) {
  storefl_accum_stats st;
  int rc = storefl_accum_check(acc, tensors, n_tensors, &st);
  if (rc)
    return rc;
  return storefl_accum_add_checked(acc, tensors, n_tensors, weight, &st);
}

int storefl_accum_range_ok(const storefl_accum *acc, const storefl_accum_stats *st, uint64_t weight) {
  if (weight == 0 || weight > ACC_MAX_WEIGHT)
    return STOREFL_ERR_INVALID;
  double ws = ldexp((double)weight, acc->scale_bits);
  /* |x| <= max_abs for every coordinate and rounding is monotone, so this bounds every contribution. */
  if (!(st->max_abs * ws <= (double)acc->limit))
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

int storefl_accum_add_checked(storefl_accum *acc, const storefl_tensor *tensors, uint32_t n_tensors,
                              uint64_t weight, const storefl_accum_stats *stats) {
  if (!acc || !stats || n_tensors != acc->n_tensors)
    return STOREFL_ERR_INVALID;
  int rc = storefl_accum_range_ok(acc, stats, weight);
  if (rc)
    return rc;
  if (acc->count >= acc->max_updates)
    return STOREFL_ERR_UNAVAILABLE;
  double ws = ldexp((double)weight, acc->scale_bits);
  for (uint32_t t = 0; t < n_tensors; t++)
    tensor_kernel(acc, t, &tensors[t], ws, 0, NULL, NULL);
  acc->count++;
  acc->weight += weight;
  return STOREFL_OK;
}

const char *storefl_accum_kernel(void) {
  return use_avx2() ? "avx2" : "scalar";
}

uint32_t storefl_accum_count(const storefl_accum *acc) {
  return acc->count;
}
uint64_t storefl_accum_weight(const storefl_accum *acc) {
  return acc->weight;
}
size_t storefl_accum_numel(const storefl_accum *acc) {
  return acc->total;
}
int storefl_accum_scale_bits(const storefl_accum *acc) {
  return acc->scale_bits;
}
/* The partial sums are folded first. The accumulator is never a const object (it is allocated by
 * storefl_accum_create), and folding does not change the values it represents, hence the cast. */
const int64_t *storefl_accum_sums(const storefl_accum *acc) {
  fold_part((storefl_accum *)(uintptr_t)acc);
  return acc->sums;
}
int64_t *storefl_accum_sums_mut(storefl_accum *acc) {
  fold_part(acc);
  return acc->sums;
}
int64_t storefl_accum_limit(const storefl_accum *acc) {
  return acc->limit;
}

void storefl_accum_reset(storefl_accum *acc) {
  memset(acc->sums, 0, acc->total * sizeof *acc->sums);
  memset(acc->part, 0, acc->total * sizeof *acc->part);
  acc->part_bound = 0;
  acc->count = 0;
  acc->weight = 0;
}

int storefl_accum_mean(const storefl_accum *acc, double *out) {
  if (!acc || !out || acc->weight == 0)
    return STOREFL_ERR_INVALID;
  double denom = ldexp((double)acc->weight, acc->scale_bits);
  const int64_t *sums = storefl_accum_sums(acc);
  for (size_t i = 0; i < acc->total; i++)
    out[i] = (double)sums[i] / denom;
  return STOREFL_OK;
}

int storefl_accum_quantize(double x, int scale_bits, int64_t *q) {
  double v = ldexp(x, scale_bits);
  if (!isfinite(v) || fabs(v) >= 9.2e18)
    return STOREFL_ERR_INVALID;
  *q = (int64_t)nearbyint(v);
  return STOREFL_OK;
}
