#include "cbor_io.h"

#include <cbor.h>
#include <math.h>
#include <string.h>

#include "storefl/codec.h"
#include "storefl/error.h"

/* ---------------------------------------------------------------------------------- reader -- */

enum {
  MT_UINT = 0,
  MT_NEGINT = 1,
  MT_BYTES = 2,
  MT_TEXT = 3,
  MT_ARRAY = 4,
  MT_MAP = 5,
  MT_TAG = 6,
  MT_SIMPLE = 7
};

void rd_init(cbor_rd *r, const uint8_t *buf, size_t len, size_t cap) {
  r->p = buf;
  r->end = buf + len;
  r->cap = cap;
}

/* Reads one head. Indefinite lengths (ai 31, including a stray "break") and the reserved
 * additional-information values 28..30 are rejected: v1 uses definite lengths only, so a body
 * is never ambiguous about its size. */
static int rd_head(cbor_rd *r, int *major, int *ai, uint64_t *val) {
  if (r->p >= r->end)
    return STOREFL_ERR_INVALID;
  uint8_t ib = *r->p++;
  *major = ib >> 5;
  *ai = ib & 31;
  if (*ai < 24) {
    *val = (uint64_t)*ai;
    return STOREFL_OK;
  }
  if (*ai > 27)
    return STOREFL_ERR_INVALID;
  size_t n = (size_t)1 << (*ai - 24);
  if ((size_t)(r->end - r->p) < n)
    return STOREFL_ERR_INVALID;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v = (v << 8) | r->p[i];
  r->p += n;
  *val = v;
  return STOREFL_OK;
}

static int rd_expect(cbor_rd *r, int want, uint64_t *val) {
  int major, ai;
  int rc = rd_head(r, &major, &ai, val);
  if (rc)
    return rc;
  if (major != want)
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

/* A declared byte length: over the caller's cap it is a size violation (4.13), merely beyond the
 * body it is a truncated/forged body (4.00). */
static int rd_check_len(const cbor_rd *r, uint64_t n) {
  if (n > r->cap)
    return STOREFL_ERR_TOO_LARGE;
  if (n > (uint64_t)(r->end - r->p))
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

int rd_uint(cbor_rd *r, uint64_t *v) {
  return rd_expect(r, MT_UINT, v);
}

int rd_uint32(cbor_rd *r, uint32_t *v) {
  uint64_t x;
  int rc = rd_uint(r, &x);
  if (rc)
    return rc;
  if (x > UINT32_MAX)
    return STOREFL_ERR_INVALID;
  *v = (uint32_t)x;
  return STOREFL_OK;
}

int rd_int64(cbor_rd *r, int64_t *v) {
  int major, ai;
  uint64_t x;
  int rc = rd_head(r, &major, &ai, &x);
  if (rc)
    return rc;
  if ((major != MT_UINT && major != MT_NEGINT) || x > (uint64_t)INT64_MAX)
    return STOREFL_ERR_INVALID;
  *v = major == MT_UINT ? (int64_t)x : -1 - (int64_t)x;
  return STOREFL_OK;
}

int rd_double(cbor_rd *r, double *v) {
  int major, ai;
  uint64_t x;
  int rc = rd_head(r, &major, &ai, &x);
  if (rc)
    return rc;
  if (major != MT_SIMPLE || ai < 25)
    return STOREFL_ERR_INVALID;
  double d;
  if (ai == 25) {
    d = storefl_f16_to_f32((uint16_t)x);
  } else if (ai == 26) {
    uint32_t b = (uint32_t)x;
    float f;
    memcpy(&f, &b, sizeof f);
    d = f;
  } else {
    memcpy(&d, &x, sizeof d);
  }
  if (!isfinite(d))
    return STOREFL_ERR_NONFINITE;
  *v = d;
  return STOREFL_OK;
}

int rd_bool(cbor_rd *r, uint8_t *v) {
  int major, ai;
  uint64_t x;
  int rc = rd_head(r, &major, &ai, &x);
  if (rc)
    return rc;
  if (major != MT_SIMPLE || (ai != 20 && ai != 21))
    return STOREFL_ERR_INVALID;
  *v = ai == 21;
  return STOREFL_OK;
}

size_t utf8_valid_prefix(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (len - i - 1 < n)
      return i;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return i;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    /* overlong forms, UTF-16 surrogates, beyond U+10FFFF */
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return i;
    i += n + 1;
  }
  return len;
}

int utf8_valid(const uint8_t *s, size_t len) {
  return utf8_valid_prefix(s, len) == len;
}

int check_text(const storefl_str *s, size_t min, size_t max) {
  if (s->len < min || s->len > max || (s->len && !s->ptr))
    return STOREFL_ERR_INVALID;
  if (!utf8_valid((const uint8_t *)s->ptr, s->len))
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

int rd_text(cbor_rd *r, storefl_str *s, size_t min, size_t max) {
  uint64_t n;
  int rc = rd_expect(r, MT_TEXT, &n);
  if (rc)
    return rc;
  if ((rc = rd_check_len(r, n)))
    return rc;
  s->ptr = (const char *)r->p;
  s->len = (size_t)n;
  r->p += n;
  return check_text(s, min, max);
}

int rd_store_id(cbor_rd *r, storefl_str *s) {
  int rc = rd_text(r, s, 1, STOREFL_MAX_ID_LEN);
  if (rc)
    return rc;
  return storefl_store_id_valid(s->ptr, s->len) ? STOREFL_OK : STOREFL_ERR_INVALID;
}

int rd_bytes(cbor_rd *r, const uint8_t **ptr, size_t *len, size_t n_exact, size_t max) {
  uint64_t n;
  int rc = rd_expect(r, MT_BYTES, &n);
  if (rc)
    return rc;
  if ((rc = rd_check_len(r, n)))
    return rc;
  if (n_exact ? n != n_exact : (n < 1 || n > max))
    return STOREFL_ERR_INVALID;
  *ptr = r->p;
  *len = (size_t)n;
  r->p += n;
  return STOREFL_OK;
}

int rd_digest(cbor_rd *r, uint8_t out[STOREFL_DIGEST_LEN]) {
  const uint8_t *p;
  size_t n;
  int rc = rd_bytes(r, &p, &n, STOREFL_DIGEST_LEN, 0);
  if (rc)
    return rc;
  memcpy(out, p, STOREFL_DIGEST_LEN);
  return STOREFL_OK;
}

/* Every element takes at least one byte, so a count above the remaining bytes is a lie. */
int rd_array(cbor_rd *r, uint64_t *n) {
  int rc = rd_expect(r, MT_ARRAY, n);
  if (rc)
    return rc;
  return *n > (uint64_t)(r->end - r->p) ? STOREFL_ERR_INVALID : STOREFL_OK;
}

int rd_map(cbor_rd *r, uint64_t *n) {
  int rc = rd_expect(r, MT_MAP, n);
  if (rc)
    return rc;
  return *n > (uint64_t)(r->end - r->p) / 2 ? STOREFL_ERR_INVALID : STOREFL_OK;
}

int rd_key(cbor_rd *r, unsigned nkeys, uint32_t *seen, unsigned *key) {
  uint64_t k;
  int rc = rd_uint(r, &k);
  if (rc)
    return rc;
  if (k >= nkeys || (*seen & (UINT32_C(1) << k)))
    return STOREFL_ERR_INVALID;
  *seen |= UINT32_C(1) << k;
  *key = (unsigned)k;
  return STOREFL_OK;
}

int rd_version(cbor_rd *r) {
  uint64_t v;
  int rc = rd_uint(r, &v);
  if (rc)
    return rc;
  return v == STOREFL_PROTOCOL_VERSION ? STOREFL_OK : STOREFL_ERR_FORMAT;
}

int rd_finish(const cbor_rd *r) {
  return r->p == r->end ? STOREFL_OK : STOREFL_ERR_INVALID;
}

int check_finite(double v) {
  return isfinite(v) ? STOREFL_OK : STOREFL_ERR_NONFINITE;
}

/* Bit tests instead of isfinite() per element: this runs over every tensor byte received. The
 * fixed-size inner blocks let gcc -O2's cheap vectorizer turn them into SIMD compares (a plain
 * loop over numel stayed scalar at a third of memcpy speed). */
enum { FIN_BLOCK = 32 };

static int data_finite(storefl_dtype dtype, const uint8_t *d, size_t numel) {
  uint32_t bad = 0;
  size_t i = 0;
  if (dtype == STOREFL_DTYPE_F32) {
    for (; i + FIN_BLOCK <= numel; i += FIN_BLOCK) {
      uint32_t blk[FIN_BLOCK];
      memcpy(blk, d + 4 * i, sizeof blk);
      uint32_t acc = 0;
      for (int k = 0; k < FIN_BLOCK; k++)
        acc |= (uint32_t)((blk[k] & 0x7f800000u) == 0x7f800000u);
      bad |= acc;
    }
    for (; i < numel; i++) {
      uint32_t x;
      memcpy(&x, d + 4 * i, 4);
      bad |= (uint32_t)((x & 0x7f800000u) == 0x7f800000u);
    }
  } else if (dtype == STOREFL_DTYPE_F16) {
    for (; i + FIN_BLOCK <= numel; i += FIN_BLOCK) {
      uint16_t blk[FIN_BLOCK];
      memcpy(blk, d + 2 * i, sizeof blk); /* host order is little-endian, as on the wire */
      uint32_t acc = 0;
      for (int k = 0; k < FIN_BLOCK; k++)
        acc |= (uint32_t)((blk[k] & 0x7c00u) == 0x7c00u);
      bad |= acc;
    }
    for (; i < numel; i++) {
      uint16_t x = (uint16_t)(d[2 * i] | (d[2 * i + 1] << 8));
      bad |= (uint32_t)((x & 0x7c00u) == 0x7c00u);
    }
  }
  return !bad;
}

int check_tensor(const storefl_tensor *t) {
  int rc = check_text(&t->name, 1, STOREFL_MAX_NAME_LEN);
  if (rc)
    return rc;
  size_t es = storefl_dtype_size(t->dtype);
  if (!es)
    return STOREFL_ERR_FORMAT;
  uint64_t numel;
  if ((rc = storefl_tensor_numel(t, &numel)))
    return rc;
  if (numel > SIZE_MAX / es || (size_t)numel * es != t->nbytes)
    return STOREFL_ERR_INVALID;
  if (t->nbytes && !t->data)
    return STOREFL_ERR_INVALID;
  if (t->dtype == STOREFL_DTYPE_I8) {
    if (!isfinite(t->scale))
      return STOREFL_ERR_NONFINITE;
    if (!(t->scale > 0))
      return STOREFL_ERR_INVALID;
    if (!isfinite(t->scale * 128.0f)) /* q * scale must stay finite for q = -128 */
      return STOREFL_ERR_NONFINITE;
  }
  if (!data_finite(t->dtype, t->data, (size_t)numel))
    return STOREFL_ERR_NONFINITE;
  return STOREFL_OK;
}

enum { TK_NAME = 1, TK_SHAPE = 2, TK_DATA = 3, TK_SCALE = 4, TK_N = 5 };

int rd_tensor(cbor_rd *r, storefl_tensor *t) {
  uint64_t npairs;
  int rc = rd_map(r, &npairs);
  if (rc)
    return rc;
  memset(t, 0, sizeof *t);
  uint32_t seen = 1; /* key 0 (version) belongs to messages, not to tensors */
  double scale = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    if ((rc = rd_key(r, TK_N, &seen, &key)))
      return rc;
    switch (key) {
    case TK_NAME:
      rc = rd_text(r, &t->name, 1, STOREFL_MAX_NAME_LEN);
      break;
    case TK_SHAPE: {
      uint64_t nd;
      if ((rc = rd_array(r, &nd)))
        return rc;
      if (nd > STOREFL_MAX_DIMS)
        return STOREFL_ERR_INVALID;
      t->ndim = (uint32_t)nd;
      for (uint32_t k = 0; k < t->ndim && !rc; k++)
        rc = rd_uint(r, &t->shape[k]);
      break;
    }
    case TK_DATA: {
      int major, ai;
      uint64_t tag;
      if ((rc = rd_head(r, &major, &ai, &tag)))
        return rc;
      /* Anything but one of the three typed-array tags is a tensor encoding we do not speak. */
      if (major != MT_TAG ||
          (tag != STOREFL_DTYPE_F32 && tag != STOREFL_DTYPE_F16 && tag != STOREFL_DTYPE_I8))
        return STOREFL_ERR_FORMAT;
      t->dtype = (storefl_dtype)tag;
      uint64_t n;
      if ((rc = rd_expect(r, MT_BYTES, &n)))
        return rc;
      if ((rc = rd_check_len(r, n)))
        return rc;
      t->data = r->p;
      t->nbytes = (size_t)n;
      r->p += n;
      break;
    }
    case TK_SCALE:
      if ((rc = rd_double(r, &scale)))
        return rc;
      break;
    }
    if (rc)
      return rc;
  }
  const uint32_t required = (1u << TK_NAME) | (1u << TK_SHAPE) | (1u << TK_DATA);
  if ((seen & required) != required)
    return STOREFL_ERR_INVALID;
  int has_scale = (seen >> TK_SCALE) & 1;
  if (has_scale != (t->dtype == STOREFL_DTYPE_I8))
    return STOREFL_ERR_INVALID;
  if (has_scale) {
    if (!(scale > 0))
      return STOREFL_ERR_INVALID;
    t->scale = (float)scale;
    if (!isfinite(t->scale))
      return STOREFL_ERR_NONFINITE; /* finite double beyond FLT_MAX */
    if (!(t->scale > 0))
      return STOREFL_ERR_INVALID; /* underflowed to 0 as a float */
  }
  return check_tensor(t);
}

int rd_tensors(cbor_rd *r, storefl_tensor *ts, uint32_t *n) {
  uint64_t cnt;
  int rc = rd_array(r, &cnt);
  if (rc)
    return rc;
  if (cnt > STOREFL_MAX_TENSORS)
    return STOREFL_ERR_TOO_LARGE;
  for (uint64_t i = 0; i < cnt; i++)
    if ((rc = rd_tensor(r, &ts[i])))
      return rc;
  *n = (uint32_t)cnt;
  return STOREFL_OK;
}

/* ---------------------------------------------------------------------------------- writer -- */

void wr_init(cbor_wr *w, uint8_t *buf, size_t cap) {
  memset(w, 0, sizeof *w);
  w->buf = buf;
  w->cap = buf ? cap : 0;
}

static void wr_drain(cbor_wr *w) {
  if (w->pos && !w->err)
    w->err = w->sink(w->ctx, w->buf, w->pos);
  w->pos = 0;
}

void wr_put(cbor_wr *w, const void *data, size_t n) {
  w->total += n;
  if (w->sink) {
    if (w->pos + n > w->cap) {
      wr_drain(w);
      if (n > w->cap) { /* large payloads go straight to the sink */
        if (!w->err)
          w->err = w->sink(w->ctx, data, n);
        return;
      }
    }
  } else if (w->overflow || n > w->cap - w->pos) {
    w->overflow = 1;
    return;
  }
  if (n)
    memcpy(w->buf + w->pos, data, n);
  w->pos += n;
}

int wr_flush(cbor_wr *w) {
  if (w->sink)
    wr_drain(w);
  return w->err;
}

int wr_result(const cbor_wr *w, uint8_t *buf, size_t *len) {
  if (len)
    *len = w->total;
  if (!buf)
    return STOREFL_OK;
  return w->overflow ? STOREFL_ERR_TOO_LARGE : STOREFL_OK;
}

/* Heads are at most 9 bytes; libcbor picks the shortest form (canonical). */
#define WR_HEAD(w, call)                                                                                     \
  do {                                                                                                       \
    unsigned char tmp_[9];                                                                                   \
    size_t n_ = call;                                                                                        \
    wr_put((w), tmp_, n_);                                                                                   \
  } while (0)

void wr_uint(cbor_wr *w, uint64_t v) {
  WR_HEAD(w, cbor_encode_uint(v, tmp_, sizeof tmp_));
}

void wr_int64(cbor_wr *w, int64_t v) {
  if (v >= 0)
    WR_HEAD(w, cbor_encode_uint((uint64_t)v, tmp_, sizeof tmp_));
  else
    WR_HEAD(w, cbor_encode_negint((uint64_t)(-(v + 1)), tmp_, sizeof tmp_));
}

void wr_double(cbor_wr *w, double v) {
  WR_HEAD(w, cbor_encode_double(v, tmp_, sizeof tmp_));
}

void wr_float(cbor_wr *w, float v) {
  WR_HEAD(w, cbor_encode_single(v, tmp_, sizeof tmp_));
}

void wr_bool(cbor_wr *w, int v) {
  WR_HEAD(w, cbor_encode_bool(v != 0, tmp_, sizeof tmp_));
}

void wr_text(cbor_wr *w, const char *s, size_t len) {
  WR_HEAD(w, cbor_encode_string_start(len, tmp_, sizeof tmp_));
  wr_put(w, s, len);
}

void wr_bytes(cbor_wr *w, const void *data, size_t len) {
  WR_HEAD(w, cbor_encode_bytestring_start(len, tmp_, sizeof tmp_));
  wr_put(w, data, len);
}

void wr_array(cbor_wr *w, size_t n) {
  WR_HEAD(w, cbor_encode_array_start(n, tmp_, sizeof tmp_));
}

void wr_map(cbor_wr *w, size_t n) {
  WR_HEAD(w, cbor_encode_map_start(n, tmp_, sizeof tmp_));
}

void wr_tag(cbor_wr *w, uint64_t tag) {
  WR_HEAD(w, cbor_encode_tag(tag, tmp_, sizeof tmp_));
}

int wr_tensors(cbor_wr *w, const storefl_tensor *ts, uint32_t n) {
  if (n > STOREFL_MAX_TENSORS)
    return STOREFL_ERR_TOO_LARGE;
  if (n && !ts)
    return STOREFL_ERR_INVALID;
  wr_array(w, n);
  for (uint32_t i = 0; i < n; i++) {
    const storefl_tensor *t = &ts[i];
    int rc = check_tensor(t);
    if (rc)
      return rc;
    int i8 = t->dtype == STOREFL_DTYPE_I8;
    wr_map(w, i8 ? 4 : 3);
    wr_uint(w, TK_NAME);
    wr_text(w, t->name.ptr, t->name.len);
    wr_uint(w, TK_SHAPE);
    wr_array(w, t->ndim);
    for (uint32_t k = 0; k < t->ndim; k++)
      wr_uint(w, t->shape[k]);
    wr_uint(w, TK_DATA);
    wr_tag(w, (uint64_t)t->dtype);
    wr_bytes(w, t->data, t->nbytes);
    if (i8) {
      wr_uint(w, TK_SCALE);
      wr_float(w, t->scale);
    }
  }
  return STOREFL_OK;
}
