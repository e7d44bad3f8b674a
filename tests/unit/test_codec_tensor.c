/* Tensor helpers: float16 conversion against an independent reference, numel, packing and
 * int8 quantization. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storefl/codec.h"
#include "storefl/error.h"

static float f_of(uint32_t bits) {
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Value of a finite float16 by arithmetic, not bit manipulation: the reference. */
static double f16_value(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
  return (h & 0x8000) ? -v : v;
}

/* Round-to-nearest-even into float16 by searching the (monotonic) positive codes. */
static uint16_t ref_f32_to_f16(float f) {
  uint16_t sign = signbit(f) ? 0x8000 : 0;
  double a = fabs((double)f);
  if (a >= 65520.0) /* 65504 + half an ulp (16) and up round to infinity */
    return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) { /* largest code with value <= a */
    uint16_t mid = (uint16_t)((lo + hi + 1) / 2);
    if (f16_value(mid) <= a)
      lo = mid;
    else
      hi = (uint16_t)(mid - 1);
  }
  if (lo == 0x7bff)
    return sign | lo;
  double dl = a - f16_value(lo), du = f16_value((uint16_t)(lo + 1)) - a;
  uint16_t r = dl < du ? lo : du < dl ? (uint16_t)(lo + 1) : ((lo & 1) ? (uint16_t)(lo + 1) : lo);
  return sign | r;
}

static void test_f16_exhaustive_decode(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = storefl_f16_to_f32((uint16_t)h);
    int exp = (h >> 10) & 0x1f;
    if (exp == 31) {
      if (h & 0x3ff)
        assert_true(isnan(f));
      else
        assert_true(isinf(f) && (signbit(f) != 0) == ((h & 0x8000) != 0));
      assert_int_equal(storefl_f32_to_f16(f) & 0xfc00, h & 0xfc00); /* Inf stays Inf, NaN stays NaN */
      assert_true((storefl_f32_to_f16(f) & 0x3ff) != 0 || !(h & 0x3ff));
      continue;
    }
    assert_true((double)f == f16_value((uint16_t)h));
    assert_int_equal(signbit(f) != 0, (h & 0x8000) != 0); /* covers -0 */
    assert_int_equal(storefl_f32_to_f16(f), h);           /* exact round trip */
  }
}

static void test_f16_rounding(void **state) {
  (void)state;
  /* pinned cases */
  assert_int_equal(storefl_f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(storefl_f32_to_f16(65519.996f), 0x7bff);
  assert_int_equal(storefl_f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even = overflow */
  assert_int_equal(storefl_f32_to_f16(-1e9f), 0xfc00);
  assert_int_equal(storefl_f32_to_f16(ldexpf(1, -24)), 0x0001);
  assert_int_equal(storefl_f32_to_f16(ldexpf(1, -25)), 0x0000);        /* tie to even: 0 */
  assert_int_equal(storefl_f32_to_f16(-ldexpf(1, -25)), 0x8000);       /* -0 */
  assert_int_equal(storefl_f32_to_f16(ldexpf(3, -26)), 0x0001);        /* 0.75 ulp up */
  assert_int_equal(storefl_f32_to_f16(ldexpf(3, -25)), 0x0002);        /* 1.5 ulp: tie to even 2 */
  assert_int_equal(storefl_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);  /* carries into the smallest normal */
  assert_int_equal(storefl_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie to even */
  assert_int_equal(storefl_f32_to_f16(1.0f + ldexpf(3, -11)), 0x3c02); /* tie to even (up) */
  assert_int_equal(storefl_f32_to_f16(f_of(0x00000001)), 0x0000);      /* f32 subnormal */
  assert_int_equal(storefl_f32_to_f16(-0.0f), 0x8000);
  /* every 9973rd float32 bit pattern (430 k) against the reference; all 4 G would be slow under ASan */
  for (uint64_t b = 0; b < 0x100000000ull; b += 9973) {
    float f = f_of((uint32_t)b);
    if (isnan(f))
      continue;
    uint16_t got = storefl_f32_to_f16(f), want = ref_f32_to_f16(f);
    if (got != want)
      fail_msg("f32 bits %08x: got %04x want %04x", (unsigned)b, got, want);
  }
  /* and densely around the float16 subnormal/normal boundary and the overflow edge */
  for (uint32_t b = 0x33000000u; b < 0x38900000u; b += 61) {
    float f = f_of(b);
    assert_int_equal(storefl_f32_to_f16(f), ref_f32_to_f16(f));
  }
  for (uint32_t b = 0x477fe000u; b < 0x47800100u; b++) {
    float f = f_of(b);
    assert_int_equal(storefl_f32_to_f16(f), ref_f32_to_f16(f));
  }
}

static void test_numel(void **state) {
  (void)state;
  uint64_t n;
  uint64_t s1[4] = {2, 3, 4, 5};
  assert_int_equal(storefl_shape_numel(4, s1, &n), STOREFL_OK);
  assert_int_equal(n, 120);
  assert_int_equal(storefl_shape_numel(0, NULL, &n), STOREFL_OK);
  assert_int_equal(n, 1);
  uint64_t s2[3] = {UINT64_MAX, 0, 7};
  assert_int_equal(storefl_shape_numel(3, s2, &n), STOREFL_OK); /* a zero dimension wins */
  assert_int_equal(n, 0);
  uint64_t s3[3] = {1ull << 32, 1ull << 32, 1};
  assert_int_equal(storefl_shape_numel(3, s3, &n), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_shape_numel(5, s1, &n), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_dtype_size(STOREFL_DTYPE_F32), 4);
  assert_int_equal(storefl_dtype_size(STOREFL_DTYPE_F16), 2);
  assert_int_equal(storefl_dtype_size(STOREFL_DTYPE_I8), 1);
  assert_int_equal(storefl_dtype_size((storefl_dtype)86), 0);
  storefl_dtype d;
  assert_int_equal(storefl_dtype_parse("f16", &d), STOREFL_OK);
  assert_int_equal(d, STOREFL_DTYPE_F16);
  assert_int_equal(storefl_dtype_parse("F16", &d), STOREFL_ERR_FORMAT);
  assert_string_equal(storefl_dtype_name(STOREFL_DTYPE_I8), "i8");
}

static void test_pack(void **state) {
  (void)state;
  const float v[5] = {0.5f, -1.27f, 1.27f, 0.0f, 0.005f};
  uint8_t out[20];
  float scale = 0;
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_I8, v, 5, out, &scale), STOREFL_OK);
  assert_true(fabsf(scale - 0.01f) < 1e-9f);
  assert_int_equal((int8_t)out[0], 50);
  assert_int_equal((int8_t)out[1], -127);
  assert_int_equal((int8_t)out[2], 127);
  assert_int_equal((int8_t)out[3], 0);
  assert_true((int8_t)out[4] == 0 || (int8_t)out[4] == 1); /* 0.5 step: the float quotient decides */
  /* all zeros: scale 1, never 0 (a zero scale would be rejected by the decoder) */
  const float z[2] = {0.0f, -0.0f};
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_I8, z, 2, out, &scale), STOREFL_OK);
  assert_true(scale == 1.0f);
  /* tiny values whose max/127 underflows still get a positive scale */
  const float tiny[1] = {f_of(0x00000010)};
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_I8, tiny, 1, out, &scale), STOREFL_OK);
  assert_true(scale > 0);
  assert_true((int8_t)out[0] * scale == tiny[0]);
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_I8, v, 5, out, NULL), STOREFL_ERR_INVALID);
  /* float16 overflow and non-finite input are refused */
  const float big[2] = {1.0f, 65520.0f};
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_F16, big, 2, out, NULL), STOREFL_ERR_NONFINITE);
  const float ok16[2] = {1.0f, 65519.0f};
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_F16, ok16, 2, out, NULL), STOREFL_OK);
  assert_int_equal(out[2] | (out[3] << 8), 0x7bff);
  const float bad[2] = {1.0f, NAN};
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_F32, bad, 2, out, NULL), STOREFL_ERR_NONFINITE);
  assert_int_equal(storefl_tensor_pack((storefl_dtype)0, v, 1, out, NULL), STOREFL_ERR_FORMAT);
  /* f32 is a little-endian copy */
  assert_int_equal(storefl_tensor_pack(STOREFL_DTYPE_F32, v, 1, out, NULL), STOREFL_OK);
  assert_memory_equal(out, "\x00\x00\x00\x3f", 4);
}

static void test_tensors_match(void **state) {
  (void)state;
  static const uint8_t data[24];
  storefl_tensor m[2] = {{.name = {"w", 1}, .ndim = 2, .shape = {2, 3}, .dtype = STOREFL_DTYPE_F32},
                         {.name = {"b", 1}, .ndim = 1, .shape = {3}, .dtype = STOREFL_DTYPE_F32}};
  m[0].data = m[1].data = data;
  m[0].nbytes = 24;
  m[1].nbytes = 12;
  storefl_tensor u[2];
  memcpy(u, m, sizeof u);
  u[0].dtype = STOREFL_DTYPE_I8; /* encodings may differ */
  assert_int_equal(storefl_tensors_match(u, 2, m, 2), STOREFL_OK);
  assert_int_equal(storefl_tensors_match(u, 1, m, 2), STOREFL_ERR_INVALID);
  u[1].name.ptr = "c";
  assert_int_equal(storefl_tensors_match(u, 2, m, 2), STOREFL_ERR_INVALID);
  u[1].name.ptr = "b";
  u[0].shape[0] = 3;
  u[0].shape[1] = 2; /* same numel, other shape */
  assert_int_equal(storefl_tensors_match(u, 2, m, 2), STOREFL_ERR_INVALID);
  u[0].shape[0] = 2;
  u[0].shape[1] = 3;
  u[1].ndim = 2;
  u[1].shape[1] = 1;
  assert_int_equal(storefl_tensors_match(u, 2, m, 2), STOREFL_ERR_INVALID);
  assert_int_equal(storefl_tensors_match(NULL, 0, NULL, 0), STOREFL_OK);
}

static void test_store_id(void **state) {
  (void)state;
  char id[66];
  memset(id, 'a', sizeof id);
  assert_true(storefl_store_id_valid(id, 64));
  assert_false(storefl_store_id_valid(id, 65));
  assert_false(storefl_store_id_valid(id, 0));
  assert_true(storefl_store_id_valid("A-z_0.9", 7));
  assert_false(storefl_store_id_valid("a b", 3));
  assert_false(storefl_store_id_valid("a/b", 3));
  assert_false(storefl_store_id_valid("\xc3\xa9", 2));
  assert_false(storefl_store_id_valid("a\0b", 3));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_f16_exhaustive_decode),
      cmocka_unit_test(test_f16_rounding),
      cmocka_unit_test(test_numel),
      cmocka_unit_test(test_pack),
      cmocka_unit_test(test_store_id),
      cmocka_unit_test(test_tensors_match),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
