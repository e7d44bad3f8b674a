/* Tensor helpers of codec.h: element sizes, float16, dequantization, packing, model digest. */
#include <math.h>
#include <mbedtls/sha256.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/error.h"

/* Tensor data is little-endian on the wire and read in place (zero copy), with memcpy into
 * native floats; a big-endian port would need byte swaps in cbor_io.c and here. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "storefl's codec reads little-endian tensor data in place; big-endian hosts are not supported"
#endif

size_t storefl_dtype_size(storefl_dtype dtype) {
  switch (dtype) {
  case STOREFL_DTYPE_F32:
    return 4;
  case STOREFL_DTYPE_F16:
    return 2;
  case STOREFL_DTYPE_I8:
    return 1;
  }
  return 0;
}

const char *storefl_dtype_name(storefl_dtype dtype) {
  switch (dtype) {
  case STOREFL_DTYPE_F32:
    return "f32";
  case STOREFL_DTYPE_F16:
    return "f16";
  case STOREFL_DTYPE_I8:
    return "i8";
  }
  return NULL;
}

int storefl_dtype_parse(const char *name, storefl_dtype *out) {
  static const storefl_dtype all[] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  if (!name)
    return STOREFL_ERR_FORMAT;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (strcmp(name, storefl_dtype_name(all[i])) == 0) {
      *out = all[i];
      return STOREFL_OK;
    }
  }
  return STOREFL_ERR_FORMAT;
}

int storefl_shape_numel(uint32_t ndim, const uint64_t *shape, uint64_t *numel) {
  if (ndim > STOREFL_MAX_DIMS || (ndim && !shape))
    return STOREFL_ERR_INVALID;
  uint64_t n = 1;
  int zero = 0;
  for (uint32_t i = 0; i < ndim; i++)
    zero |= shape[i] == 0;
  if (zero) {
    *numel = 0;
    return STOREFL_OK;
  }
  for (uint32_t i = 0; i < ndim; i++) {
    if (n > UINT64_MAX / shape[i])
      return STOREFL_ERR_INVALID;
    n *= shape[i];
  }
  if (n > SIZE_MAX)
    return STOREFL_ERR_INVALID;
  *numel = n;
  return STOREFL_OK;
}

int storefl_tensor_numel(const storefl_tensor *t, uint64_t *numel) {
  return storefl_shape_numel(t->ndim, t->shape, numel);
}

/* Branch-free in the common (normal) case, after F. Giesen's float_to_half_fast3_rtne: random
 * mantissas made a rounding branch mispredict half the time (15 ns per element). Normal values
 * round by adding 0xfff plus the lowest kept bit (ties to even); subnormal results let the FPU
 * round, by adding a magic number that aligns the float16 subnormal step with the float32 ulp,
 * which relies on the default rounding mode (to nearest, ties to even). */
uint16_t storefl_f32_to_f16(float f) {
  const uint32_t f32_inf = 255u << 23, f16_overflow = (127u + 16u) << 23;
  const uint32_t denorm_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = x & 0x80000000u;
  x ^= sign;
  uint32_t o;
  if (x >= f16_overflow) { /* overflow (after rounding too), Inf, NaN (payload top bits kept) */
    o = x > f32_inf ? 0x7c00u | 0x200u | ((x >> 13) & 0x3ffu) : 0x7c00u;
  } else if (x < (113u << 23)) { /* result is a float16 subnormal or zero */
    float fx, magic;
    memcpy(&fx, &x, sizeof fx);
    memcpy(&magic, &denorm_magic_bits, sizeof magic);
    fx += magic;
    uint32_t r;
    memcpy(&r, &fx, sizeof r);
    o = r - denorm_magic_bits;
  } else {
    uint32_t mant_odd = (x >> 13) & 1u;
    x += ((15u - 127u) << 23) + 0xfffu; /* rebias the exponent (wraps, intended) and round */
    x += mant_odd;
    o = x >> 13;
  }
  return (uint16_t)(o | (sign >> 16));
}

float storefl_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) {
        man <<= 1;
        exp--;
      }
      bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

float storefl_tensor_get(const storefl_tensor *t, size_t i) {
  switch (t->dtype) {
  case STOREFL_DTYPE_F32: {
    float f;
    memcpy(&f, t->data + 4 * i, 4);
    return f;
  }
  case STOREFL_DTYPE_F16:
    return storefl_f16_to_f32((uint16_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8)));
  case STOREFL_DTYPE_I8:
    return (float)(int8_t)t->data[i] * t->scale;
  }
  return 0.0f;
}

int storefl_tensor_to_f32(const storefl_tensor *t, float *dst, size_t n) {
  uint64_t numel;
  int rc = storefl_tensor_numel(t, &numel);
  if (rc)
    return rc;
  size_t es = storefl_dtype_size(t->dtype);
  if (!es)
    return STOREFL_ERR_FORMAT;
  if (numel != n || n > SIZE_MAX / es || n * es != t->nbytes || (n && (!t->data || !dst)))
    return STOREFL_ERR_INVALID;
  if (n == 0)
    return STOREFL_OK;
  switch (t->dtype) {
  case STOREFL_DTYPE_F32: /* wire is little-endian, as is every platform we build for */
    memcpy(dst, t->data, n * 4);
    break;
  case STOREFL_DTYPE_F16:
    for (size_t i = 0; i < n; i++)
      dst[i] = storefl_f16_to_f32((uint16_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8)));
    break;
  case STOREFL_DTYPE_I8:
    for (size_t i = 0; i < n; i++)
      dst[i] = (float)(int8_t)t->data[i] * t->scale;
    break;
  }
  return STOREFL_OK;
}

int storefl_tensor_pack(storefl_dtype dtype, const float *src, size_t n, uint8_t *dst, float *scale) {
  if (!storefl_dtype_size(dtype))
    return STOREFL_ERR_FORMAT;
  if (n && (!src || !dst))
    return STOREFL_ERR_INVALID;
  float maxabs = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(src[i]))
      return STOREFL_ERR_NONFINITE;
    float a = fabsf(src[i]);
    maxabs = a > maxabs ? a : maxabs;
  }
  switch (dtype) {
  case STOREFL_DTYPE_F32:
    if (n)
      memcpy(dst, src, n * 4);
    break;
  case STOREFL_DTYPE_F16:
    for (size_t i = 0; i < n; i++) {
      uint16_t h = storefl_f32_to_f16(src[i]);
      if ((h & 0x7c00u) == 0x7c00u)
        return STOREFL_ERR_NONFINITE;
      dst[2 * i] = (uint8_t)(h & 0xff);
      dst[2 * i + 1] = (uint8_t)(h >> 8);
    }
    break;
  case STOREFL_DTYPE_I8: {
    if (!scale)
      return STOREFL_ERR_INVALID;
    float s = maxabs / 127.0f;
    if (maxabs == 0)
      s = 1.0f;
    else if (s == 0) /* maxabs so tiny that /127 underflows: the smallest step still works */
      s = nextafterf(0.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
      float q = rintf(src[i] / s); /* default rounding mode: to nearest, ties to even */
      q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
      dst[i] = (uint8_t)(int8_t)q;
    }
    *scale = s;
    break;
  }
  }
  return STOREFL_OK;
}

static void put_u32le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

int storefl_model_digest(const storefl_tensor *tensors, uint32_t n_tensors,
                         uint8_t digest[STOREFL_DIGEST_LEN]) {
  if (n_tensors > STOREFL_MAX_TENSORS || (n_tensors && !tensors))
    return STOREFL_ERR_INVALID;
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  int rc = STOREFL_OK;
  if (mbedtls_sha256_starts_ret(&ctx, 0) != 0) {
    rc = STOREFL_ERR_CRYPTO;
    goto out;
  }
  for (uint32_t t = 0; t < n_tensors && rc == STOREFL_OK; t++) {
    const storefl_tensor *ten = &tensors[t];
    uint64_t numel;
    size_t es = storefl_dtype_size(ten->dtype);
    if (storefl_tensor_numel(ten, &numel) || !es || numel > SIZE_MAX / es || numel * es != ten->nbytes ||
        ten->name.len > UINT32_MAX || (ten->name.len && !ten->name.ptr) || (ten->nbytes && !ten->data)) {
      rc = STOREFL_ERR_INVALID;
      break;
    }
    uint8_t hdr[4 + 4 + 8 * STOREFL_MAX_DIMS];
    put_u32le(hdr, (uint32_t)ten->name.len);
    if (mbedtls_sha256_update_ret(&ctx, hdr, 4) ||
        mbedtls_sha256_update_ret(&ctx, (const uint8_t *)ten->name.ptr, ten->name.len)) {
      rc = STOREFL_ERR_CRYPTO;
      break;
    }
    put_u32le(hdr, ten->ndim);
    for (uint32_t k = 0; k < ten->ndim; k++)
      for (int b = 0; b < 8; b++)
        hdr[4 + 8 * k + b] = (uint8_t)(ten->shape[k] >> (8 * b));
    if (mbedtls_sha256_update_ret(&ctx, hdr, 4 + 8 * (size_t)ten->ndim)) {
      rc = STOREFL_ERR_CRYPTO;
      break;
    }
    if (ten->dtype == STOREFL_DTYPE_F32) {
      if (ten->nbytes && mbedtls_sha256_update_ret(&ctx, ten->data, ten->nbytes))
        rc = STOREFL_ERR_CRYPTO;
      continue;
    }
    float chunk[1024];
    for (size_t i = 0; i < numel && rc == STOREFL_OK; i += 1024) {
      size_t m = numel - i < 1024 ? (size_t)(numel - i) : 1024;
      for (size_t j = 0; j < m; j++)
        chunk[j] = storefl_tensor_get(ten, i + j);
      if (mbedtls_sha256_update_ret(&ctx, (const uint8_t *)chunk, m * 4))
        rc = STOREFL_ERR_CRYPTO;
    }
  }
  if (rc == STOREFL_OK && mbedtls_sha256_finish_ret(&ctx, digest) != 0)
    rc = STOREFL_ERR_CRYPTO;
out:
  mbedtls_sha256_free(&ctx);
  return rc;
}

int storefl_tensors_match(const storefl_tensor *update, uint32_t n_update, const storefl_tensor *model,
                          uint32_t n_model) {
  if (n_update != n_model || (n_update && (!update || !model)))
    return STOREFL_ERR_INVALID;
  for (uint32_t i = 0; i < n_update; i++) {
    const storefl_tensor *a = &update[i], *b = &model[i];
    if (a->name.len != b->name.len || (a->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) != 0) ||
        a->ndim != b->ndim || a->ndim > STOREFL_MAX_DIMS)
      return STOREFL_ERR_INVALID;
    for (uint32_t k = 0; k < a->ndim; k++)
      if (a->shape[k] != b->shape[k])
        return STOREFL_ERR_INVALID;
  }
  return STOREFL_OK;
}

int storefl_store_id_valid(const char *s, size_t len) {
  if (!s || len < 1 || len > STOREFL_MAX_ID_LEN)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return 0;
  }
  return 1;
}
