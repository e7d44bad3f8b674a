/* Hostile input: every decoder against truncation at every offset, trailing bytes, bodies over
 * the cap, missing / duplicate / unknown keys, wrong major types in every field, NaN and Inf,
 * wrong protocol versions, indefinite lengths, huge declared lengths, nesting bombs, and tensor
 * corruptions (wrong tags, lengths disagreeing with shapes, overflowing shapes, bad scales).
 * Each must be refused with its documented code. The decoders allocate nothing, so ASan would
 * only catch out-of-bounds reads here, which is the point of running this under it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_samples.h"

/* ---- a growable byte buffer and a CBOR head writer independent of the codec ---- */

typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *d, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  if (n)
    memcpy(b->p + b->n, d, n);
  b->n += n;
}

static void b_byte(bytes *b, uint8_t c) {
  b_put(b, &c, 1);
}

static void b_head(bytes *b, int major, uint64_t v) {
  uint8_t m = (uint8_t)(major << 5);
  if (v < 24) {
    b_byte(b, m | (uint8_t)v);
  } else if (v <= 0xff) {
    b_byte(b, m | 24);
    b_byte(b, (uint8_t)v);
  } else if (v <= 0xffff) {
    b_byte(b, m | 25);
    for (int i = 1; i >= 0; i--)
      b_byte(b, (uint8_t)(v >> (8 * i)));
  } else if (v <= 0xffffffffu) {
    b_byte(b, m | 26);
    for (int i = 3; i >= 0; i--)
      b_byte(b, (uint8_t)(v >> (8 * i)));
  } else {
    b_byte(b, m | 27);
    for (int i = 7; i >= 0; i--)
      b_byte(b, (uint8_t)(v >> (8 * i)));
  }
}

static void b_text(bytes *b, const char *s) {
  b_head(b, 3, strlen(s));
  b_put(b, s, strlen(s));
}

static void b_free(bytes *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* Length of the well-formed item at p (test-side, trusted input only). */
static size_t item_len(const uint8_t *p) {
  uint8_t ib = p[0];
  int major = ib >> 5, ai = ib & 31;
  size_t hl = ai < 24 ? 1 : 1 + ((size_t)1 << (ai - 24));
  uint64_t v = ai < 24 ? (uint64_t)ai : 0;
  for (size_t i = 1; i < hl; i++)
    v = (v << 8) | p[i];
  switch (major) {
  case 2:
  case 3:
    return hl + v;
  case 4: {
    size_t n = hl;
    for (uint64_t i = 0; i < v; i++)
      n += item_len(p + n);
    return n;
  }
  case 5: {
    size_t n = hl;
    for (uint64_t i = 0; i < 2 * v; i++)
      n += item_len(p + n);
    return n;
  }
  case 6:
    return hl + item_len(p + hl);
  default:
    return hl;
  }
}

/* A top-level map split into pairs. */
typedef struct pairs {
  size_t n;
  size_t koff[32], klen[32], voff[32], vlen[32];
} pairs;

static void split(const uint8_t *msg, pairs *ps) {
  assert_int_equal(msg[0] >> 5, 5);
  size_t hl = (msg[0] & 31) < 24 ? 1 : 2;
  ps->n = (msg[0] & 31) < 24 ? (msg[0] & 31) : msg[1];
  size_t off = hl;
  for (size_t i = 0; i < ps->n; i++) {
    ps->koff[i] = off;
    ps->klen[i] = item_len(msg + off);
    off += ps->klen[i];
    ps->voff[i] = off;
    ps->vlen[i] = item_len(msg + off);
    off += ps->vlen[i];
  }
}

/* ---- the decoders under test ---- */

typedef int (*dec_fn)(const uint8_t *buf, size_t len, size_t cap);

static int dec_model(const uint8_t *b, size_t n, size_t cap) {
  storefl_model_msg m;
  return storefl_model_decode(b, n, cap, &m);
}
static int dec_round(const uint8_t *b, size_t n, size_t cap) {
  storefl_round_msg m;
  return storefl_round_decode(b, n, cap, &m);
}
static int dec_update(const uint8_t *b, size_t n, size_t cap) {
  storefl_update_msg m;
  return storefl_update_decode(b, n, cap, &m);
}
static int dec_receipt(const uint8_t *b, size_t n, size_t cap) {
  storefl_receipt_msg m;
  return storefl_receipt_decode(b, n, cap, &m);
}
static int dec_error(const uint8_t *b, size_t n, size_t cap) {
  storefl_error_msg m;
  return storefl_error_decode(b, n, cap, &m);
}
static int dec_status(const uint8_t *b, size_t n, size_t cap) {
  storefl_status_msg m;
  return storefl_status_decode(b, n, cap, &m);
}
static int dec_ledger(const uint8_t *b, size_t n, size_t cap) {
  static storefl_str parts[STOREFL_MAX_PARTICIPANTS];
  static storefl_store_epsilon eps[STOREFL_MAX_PARTICIPANTS];
  storefl_ledger_entry e;
  return storefl_ledger_entry_decode(b, n, cap, &e, parts, STOREFL_MAX_PARTICIPANTS, eps,
                                     STOREFL_MAX_PARTICIPANTS);
}

typedef struct sample {
  const char *name;
  dec_fn dec;
  uint8_t buf[1024];
  size_t len;
} sample;

enum { NSAMPLES = 11 };
static sample samples[NSAMPLES];

static void make_samples(void) {
  const storefl_dtype dts[3] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};
  int k = 0;
  for (int d = 0; d < 3; d++) {
    storefl_model_msg m;
    sample_model(&m, dts[d]);
    samples[k].name = "model";
    samples[k].dec = dec_model;
    assert_int_equal(storefl_model_encode(&m, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
    k++;
    storefl_update_msg u;
    sample_update(&u, dts[d]);
    samples[k].name = "update";
    samples[k].dec = dec_update;
    assert_int_equal(storefl_update_encode(&u, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
    k++;
  }
  storefl_round_msg r;
  sample_round(&r);
  samples[k] = (sample){.name = "round", .dec = dec_round};
  assert_int_equal(storefl_round_encode(&r, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
  k++;
  storefl_receipt_msg c;
  sample_receipt(&c);
  samples[k] = (sample){.name = "receipt", .dec = dec_receipt};
  assert_int_equal(storefl_receipt_encode(&c, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
  k++;
  storefl_error_msg e;
  sample_error(&e);
  samples[k] = (sample){.name = "error", .dec = dec_error};
  assert_int_equal(storefl_error_encode(&e, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
  k++;
  storefl_status_msg s;
  sample_status(&s);
  samples[k] = (sample){.name = "status", .dec = dec_status};
  assert_int_equal(storefl_status_encode(&s, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
  k++;
  storefl_ledger_entry le;
  sample_ledger(&le);
  samples[k] = (sample){.name = "ledger", .dec = dec_ledger};
  assert_int_equal(storefl_ledger_entry_encode(&le, samples[k].buf, 1024, &samples[k].len), STOREFL_OK);
  k++;
  assert_int_equal(k, NSAMPLES);
  for (int i = 0; i < NSAMPLES; i++)
    assert_int_equal(samples[i].dec(samples[i].buf, samples[i].len, samples[i].len), STOREFL_OK);
}

static int setup(void **state) {
  (void)state;
  make_samples();
  return 0;
}

/* Decodes a heap copy of exactly n bytes so that ASan sees any read past the end. */
static int dec_exact(const sample *s, const uint8_t *b, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n)
    memcpy(c, b, n);
  int rc = s->dec(c, n, STOREFL_DEFAULT_MAX_BODY);
  free(c);
  return rc;
}

#define EXPECT(s, b, n, want)                                                                                \
  do {                                                                                                       \
    int got_ = dec_exact((s), (b), (n));                                                                     \
    if (got_ != (want))                                                                                      \
      fail_msg("%s: %s at line %d: got %s, want %s", (s)->name, #want, __LINE__, storefl_strerror(got_),     \
               storefl_strerror(want));                                                                      \
  } while (0)

static void test_truncation_every_offset(void **state) {
  (void)state;
  for (int i = 0; i < NSAMPLES; i++) {
    const sample *s = &samples[i];
    for (size_t n = 0; n < s->len; n++)
      EXPECT(s, s->buf, n, STOREFL_ERR_INVALID);
    EXPECT(s, s->buf, s->len, STOREFL_OK);
    assert_int_equal(s->dec(NULL, 0, 100), STOREFL_ERR_INVALID);
    assert_int_equal(s->dec(NULL, 5, 100), STOREFL_ERR_INVALID);
  }
}

static void test_trailing_bytes_and_cap(void **state) {
  (void)state;
  for (int i = 0; i < NSAMPLES; i++) {
    const sample *s = &samples[i];
    bytes b = {0};
    b_put(&b, s->buf, s->len);
    b_byte(&b, 0x00);
    EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
    b.n = 0;
    b_put(&b, s->buf, s->len); /* two messages back to back */
    b_put(&b, s->buf, s->len);
    EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
    b_free(&b);
    assert_int_equal(s->dec(s->buf, s->len, s->len - 1), STOREFL_ERR_TOO_LARGE);
    assert_int_equal(s->dec(s->buf, s->len, 0), STOREFL_ERR_TOO_LARGE);
    assert_int_equal(s->dec(s->buf, s->len, s->len), STOREFL_OK);
  }
}

/* Rebuilds sample s with pair `skip` left out, `dup` repeated, value of `sub` replaced, and an
 * extra raw pair appended; any of them may be -1 / NULL. */
static void rebuild(const sample *s, const pairs *ps, int skip, int dup, int sub, const bytes *subval,
                    const bytes *extra, int extra_pairs, bytes *out) {
  size_t n = ps->n - (skip >= 0) + (dup >= 0) + (size_t)extra_pairs;
  b_head(out, 5, n);
  for (size_t i = 0; i < ps->n; i++) {
    if ((int)i == skip)
      continue;
    b_put(out, s->buf + ps->koff[i], ps->klen[i]);
    if ((int)i == sub)
      b_put(out, subval->p, subval->n);
    else
      b_put(out, s->buf + ps->voff[i], ps->vlen[i]);
  }
  if (dup >= 0)
    b_put(out, s->buf + ps->koff[dup], ps->klen[dup] + ps->vlen[dup]);
  if (extra)
    b_put(out, extra->p, extra->n);
}

/* Kind of an item for "same type" decisions: the major type, and for major 7 bool / float / other. */
static int kind(const uint8_t *p) {
  int major = p[0] >> 5, ai = p[0] & 31;
  if (major != 7)
    return major;
  if (ai == 20 || ai == 21)
    return 10;
  if (ai >= 25 && ai <= 27)
    return 11;
  return 12;
}

/* The int64 timestamp fields (either integer major type is valid). */
static int signed_field(const sample *s, size_t key) {
  return (!strcmp(s->name, "round") && key == 5) || (!strcmp(s->name, "receipt") && key == 4) ||
         (!strcmp(s->name, "ledger") && key == 8);
}

static void test_keys_and_types(void **state) {
  (void)state;
  /* one item of every kind; tag 1 wraps a uint, as a date would */
  static const uint8_t subs[][9] = {
      {1, 0x00},       {1, 0x20},
      {1, 0x40},       {1, 0x60},
      {1, 0x80},       {1, 0xa0},
      {2, 0xc1, 0x00}, {1, 0xf4},
      {1, 0xf6},       {3, 0xf9, 0x3c, 0x00},
      {1, 0xf7},       {3, 0xd8, 0x55, 0x40},
  };
  static const uint8_t nonfinite[][10] = {
      {3, 0xf9, 0x7e, 0x00},                   /* NaN, float16 */
      {5, 0xfa, 0x7f, 0x80, 0x00, 0x00},       /* +Inf, float32 */
      {9, 0xfb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0}, /* -Inf, float64 */
      {9, 0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}, /* NaN with payload, float64 */
  };
  for (int i = 0; i < NSAMPLES; i++) {
    const sample *s = &samples[i];
    pairs ps;
    split(s->buf, &ps);
    for (size_t k = 0; k < ps.n; k++) {
      bytes b = {0};
      rebuild(s, &ps, (int)k, -1, -1, NULL, NULL, 0, &b); /* missing key */
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      b.n = 0;
      rebuild(s, &ps, -1, (int)k, -1, NULL, NULL, 0, &b); /* duplicate key */
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      const uint8_t *val = s->buf + ps.voff[k];
      for (size_t t = 0; t < sizeof subs / sizeof subs[0]; t++) {
        bytes v = {0};
        b_put(&v, subs[t] + 1, subs[t][0]);
        int ka = kind(v.p), kb = kind(val);
        /* int64 timestamps take both integer major types */
        int same = ka == kb || (signed_field(s, k) && ka <= 1 && kb <= 1);
        if (!same) {
          b.n = 0;
          rebuild(s, &ps, -1, -1, (int)k, &v, NULL, 0, &b);
          EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
        }
        b_free(&v);
      }
      if (kind(val) == 11) {
        for (size_t t = 0; t < sizeof nonfinite / sizeof nonfinite[0]; t++) {
          bytes v = {0};
          b_put(&v, nonfinite[t] + 1, nonfinite[t][0]);
          b.n = 0;
          rebuild(s, &ps, -1, -1, (int)k, &v, NULL, 0, &b);
          EXPECT(s, b.p, b.n, STOREFL_ERR_NONFINITE);
          b_free(&v);
        }
      }
      b_free(&b);
    }
    /* unknown keys: the next integer, a large one, a negative one, a text one */
    static const uint8_t extras[][4] = {{0}, {3, 0x18, 0x1f, 0x00}, {2, 0x20, 0x00}, {3, 0x61, 'a', 0x00}};
    for (size_t t = 0; t < 4; t++) {
      bytes x = {0}, b = {0};
      if (t == 0) {
        b_head(&x, 0, ps.n);
        b_byte(&x, 0x00);
      } else {
        b_put(&x, extras[t] + 1, extras[t][0]);
      }
      rebuild(s, &ps, -1, -1, -1, NULL, &x, 1, &b);
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      b_free(&x);
      b_free(&b);
    }
    /* a map head promising one more pair than present */
    {
      bytes b = {0};
      bytes none = {0};
      rebuild(s, &ps, -1, -1, -1, NULL, &none, 1, &b);
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      b_free(&b);
    }
    /* protocol versions other than 1 are a format we do not speak (4.15) */
    assert_int_equal(s->buf[ps.koff[0]], 0x00);
    for (uint64_t ver = 0; ver < 300; ver += 2) {
      bytes v = {0}, b = {0};
      b_head(&v, 0, ver);
      rebuild(s, &ps, -1, -1, 0, &v, NULL, 0, &b);
      EXPECT(s, b.p, b.n, STOREFL_ERR_FORMAT);
      b_free(&v);
      b_free(&b);
    }
    /* indefinite-length map with the same pairs */
    {
      bytes b = {0};
      b_byte(&b, 0xbf);
      b_put(&b, s->buf + ps.koff[0], s->len - ps.koff[0]);
      b_byte(&b, 0xff);
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      b_free(&b);
    }
    /* not a map at the top; a map wrapped in a tag (self-described CBOR is not accepted either) */
    {
      bytes b = {0};
      b_head(&b, 4, 1);
      b_put(&b, s->buf, s->len);
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      b.n = 0;
      b_put(&b, "\xd9\xd9\xf7", 3);
      b_put(&b, s->buf, s->len);
      EXPECT(s, b.p, b.n, STOREFL_ERR_INVALID);
      b_free(&b);
    }
  }
}

/* Nesting bombs in place of the whole body, of a scalar field, and of a tensor's data. */
static void test_depth_bombs(void **state) {
  (void)state;
  enum { DEPTH = 200000 };
  for (int i = 0; i < NSAMPLES; i++) {
    const sample *s = &samples[i];
    pairs ps;
    split(s->buf, &ps);
    static const uint8_t bomb_bytes[] = {0x81, 0xa1, 0xc1, 0xd8};
    for (size_t t = 0; t < sizeof bomb_bytes; t++) {
      bytes v = {0};
      for (int d = 0; d < DEPTH; d++) {
        b_byte(&v, bomb_bytes[t]);
        if (bomb_bytes[t] == 0xa1 || bomb_bytes[t] == 0xd8)
          b_byte(&v, bomb_bytes[t] == 0xa1 ? 0x00 : 0x55); /* {0: {0: ...}} / tag 85(tag 85(...)) */
      }
      b_byte(&v, 0x00);
      EXPECT(s, v.p, v.n, STOREFL_ERR_INVALID);
      for (size_t k = 0; k < ps.n; k++) {
        bytes b = {0};
        rebuild(s, &ps, -1, -1, (int)k, &v, NULL, 0, &b);
        int got = dec_exact(s, b.p, b.n);
        /* where a tensor array is expected the bomb is arrays of non-maps (4.00), and where tensor
         * data is expected tags other than 84/85/72 are 4.15; everything else is 4.00 */
        assert_true(got == STOREFL_ERR_INVALID || got == STOREFL_ERR_FORMAT);
        if (got == STOREFL_ERR_FORMAT)
          fail_msg("%s key %zu: format for a bomb outside tensor data", s->name, k);
        b_free(&b);
      }
      b_free(&v);
    }
  }
}

/* ---- tensors: updates built by hand around one tensor ---- */

/* An update body whose tensor array is `tensors` (raw CBOR of the array). */
static void update_with(const bytes *tensors, bytes *out) {
  const sample *s = &samples[1]; /* the f32 update */
  pairs ps;
  split(s->buf, &ps);
  rebuild(s, &ps, -1, -1, (int)ps.n - 1, tensors, NULL, 0, out);
}

typedef struct tspec {
  const char *name;
  int ndim;
  uint64_t shape[6];
  int tag;         /* -1: no tag */
  int data_major;  /* 2 normally */
  uint64_t nbytes; /* declared length */
  size_t present;  /* bytes actually present (<= nbytes) */
  uint8_t fill[4]; /* element pattern (little-endian) */
  int fill_len;
  int scale_kind; /* 0 none, 1 float32 0.5, 2 NaN, 3 zero, 4 -1, 5 float64 1e300 (> FLT_MAX), 6 1e-50,
                     7 3e38 (a float, but -128 * 3e38 overflows) */
} tspec;

static void b_tensor(bytes *b, const tspec *t) {
  b_head(b, 5, 3 + (t->scale_kind != 0));
  b_byte(b, 0x01);
  b_text(b, t->name);
  b_byte(b, 0x02);
  b_head(b, 4, (uint64_t)t->ndim);
  for (int i = 0; i < t->ndim; i++)
    b_head(b, 0, t->shape[i]);
  b_byte(b, 0x03);
  if (t->tag >= 0)
    b_head(b, 6, (uint64_t)t->tag);
  b_head(b, t->data_major, t->nbytes);
  for (size_t i = 0; i < t->present; i++)
    b_byte(b, t->fill[i % (size_t)t->fill_len]);
  if (t->scale_kind) {
    b_byte(b, 0x04);
    static const uint8_t sc[][6] = {{0},
                                    {5, 0xfa, 0x3f, 0x00, 0x00, 0x00},
                                    {3, 0xf9, 0x7e, 0x00},
                                    {3, 0xf9, 0x00, 0x00},
                                    {3, 0xf9, 0xbc, 0x00}};
    if (t->scale_kind <= 4) {
      b_put(b, sc[t->scale_kind] + 1, sc[t->scale_kind][0]);
    } else { /* a finite double beyond FLT_MAX, or one that underflows to 0 as a float */
      double d = t->scale_kind == 5 ? 1e300 : t->scale_kind == 6 ? 1e-50 : 3e38;
      uint64_t bits;
      memcpy(&bits, &d, 8);
      b_byte(b, 0xfb);
      for (int i = 7; i >= 0; i--)
        b_byte(b, (uint8_t)(bits >> (8 * i)));
    }
  }
}

static int decode_tensor_case(const tspec *t, int count) {
  bytes arr = {0}, body = {0};
  b_head(&arr, 4, (uint64_t)count);
  for (int i = 0; i < count; i++)
    b_tensor(&arr, t);
  update_with(&arr, &body);
  int rc = dec_exact(&samples[1], body.p, body.n);
  b_free(&arr);
  b_free(&body);
  return rc;
}

static tspec good_f32(void) {
  return (tspec){.name = "w",
                 .ndim = 2,
                 .shape = {2, 3},
                 .tag = 85,
                 .data_major = 2,
                 .nbytes = 24,
                 .present = 24,
                 .fill = {0, 0, 0x80, 0x3f},
                 .fill_len = 4};
}

static void test_tensor_corruptions(void **state) {
  (void)state;
  tspec t = good_f32();
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_OK);
  assert_int_equal(decode_tensor_case(&t, STOREFL_MAX_TENSORS), STOREFL_OK);
  assert_int_equal(decode_tensor_case(&t, STOREFL_MAX_TENSORS + 1), STOREFL_ERR_TOO_LARGE);
  /* tags: unknown typed arrays (86 = float32 big-endian... , 81 = float16 BE, 64 = uint8), none */
  static const int badtags[] = {86, 81, 64, 80, 0, 24, 55799, -1};
  for (size_t i = 0; i < sizeof badtags / sizeof badtags[0]; i++) {
    t = good_f32();
    t.tag = badtags[i];
    assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_FORMAT);
  }
  /* tag 85 around something else than a definite byte string */
  t = good_f32();
  t.data_major = 3;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t.data_major = 4;
  t.nbytes = t.present = 0;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* lengths disagreeing with the shape */
  t = good_f32();
  t.nbytes = t.present = 20;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t.nbytes = t.present = 28;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t = good_f32();
  t.tag = 84; /* 24 bytes are 12 float16, not 6 */
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* shapes: overflowing product, rank 5, a non-uint dimension */
  t = good_f32();
  t.ndim = 3;
  t.shape[0] = 1ull << 32;
  t.shape[1] = 1ull << 32;
  t.shape[2] = 4;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t = good_f32();
  t.ndim = 5;
  t.shape[2] = t.shape[3] = t.shape[4] = 1;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* a product that wraps to exactly the data length when multiplied in 64 bits */
  t = good_f32();
  t.ndim = 2;
  t.shape[0] = (1ull << 62) + 3;
  t.shape[1] = 2;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* empty tensor: a zero dimension and no bytes is fine, a zero dimension with bytes is not */
  t = good_f32();
  t.shape[0] = 0;
  t.nbytes = t.present = 0;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_OK);
  t.nbytes = t.present = 4;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* non-finite elements */
  t = good_f32();
  memcpy(t.fill, "\x00\x00\xc0\x7f", 4); /* NaN */
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_NONFINITE);
  memcpy(t.fill, "\x00\x00\x80\xff", 4); /* -Inf */
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_NONFINITE);
  t = good_f32();
  t.tag = 84;
  t.nbytes = t.present = 12;
  memcpy(t.fill, "\x00\x7c", 2); /* +Inf float16 */
  t.fill_len = 2;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_NONFINITE);
  memcpy(t.fill, "\xff\x7b", 2); /* 65504: the largest finite float16 is fine */
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_OK);
  memcpy(t.fill, "\x01\x80", 2); /* negative subnormal */
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_OK);
  /* int8: scale required, finite, > 0, representable as float32; forbidden elsewhere */
  t = good_f32();
  t.tag = 72;
  t.nbytes = t.present = 6;
  t.fill_len = 1;
  t.fill[0] = 0x80;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID); /* no scale */
  t.scale_kind = 1;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_OK);
  t.scale_kind = 2;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_NONFINITE);
  t.scale_kind = 3;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t.scale_kind = 4;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t.scale_kind = 5;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_NONFINITE);
  t.scale_kind = 6;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* regression (found by writing the fuzz oracle): q * scale must stay finite for q = -128 */
  t.scale_kind = 7;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_NONFINITE);
  t = good_f32();
  t.scale_kind = 1;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID); /* scale on a float tensor */
  /* names: empty, invalid UTF-8, too long */
  t = good_f32();
  t.name = "";
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t.name = "bad\xff";
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  t.name = "\xed\xa0\x80"; /* a UTF-16 surrogate */
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  char longname[STOREFL_MAX_NAME_LEN + 2];
  memset(longname, 'n', sizeof longname);
  longname[STOREFL_MAX_NAME_LEN + 1] = 0;
  t.name = longname;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  longname[STOREFL_MAX_NAME_LEN] = 0;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_OK);
}

/* Declared lengths: over the cap is 4.13 before anything is read; within the cap but past the end
 * of the body is a truncated body, 4.00. Counts are bounded by the bytes that remain. */
static void test_huge_lengths(void **state) {
  (void)state;
  tspec t = good_f32();
  t.nbytes = UINT64_MAX;
  t.present = 24;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_TOO_LARGE);
  t.nbytes = (uint64_t)STOREFL_DEFAULT_MAX_BODY + 1;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_TOO_LARGE);
  t.nbytes = 1000;
  assert_int_equal(decode_tensor_case(&t, 1), STOREFL_ERR_INVALID);
  /* a tensor array claiming 2^60 entries */
  bytes arr = {0}, body = {0};
  b_head(&arr, 4, 1ull << 60);
  update_with(&arr, &body);
  EXPECT(&samples[1], body.p, body.n, STOREFL_ERR_INVALID);
  b_free(&arr);
  b_free(&body);
  /* huge text and map heads at the top */
  static const uint8_t heads[][10] = {
      {9, 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* map of 2^64-1 pairs */
      {5, 0xba, 0xff, 0xff, 0xff, 0xff},
  };
  for (int i = 0; i < NSAMPLES; i++)
    for (size_t h = 0; h < 2; h++)
      EXPECT(&samples[i], heads[h] + 1, heads[h][0], STOREFL_ERR_INVALID);
  /* store id with a 4 GiB declared length */
  const sample *s = &samples[1];
  pairs ps;
  split(s->buf, &ps);
  bytes v = {0}, b = {0};
  b_put(&v, "\x7a\xff\xff\xff\xff", 5);
  rebuild(s, &ps, -1, -1, 1, &v, NULL, 0, &b);
  EXPECT(s, b.p, b.n, STOREFL_ERR_TOO_LARGE);
  b_free(&v);
  b_free(&b);
  /* reserved additional information 28..30 and a lone break */
  for (int i = 0; i < NSAMPLES; i++) {
    EXPECT(&samples[i], (const uint8_t *)"\xbc", 1, STOREFL_ERR_INVALID);
    EXPECT(&samples[i], (const uint8_t *)"\xff", 1, STOREFL_ERR_INVALID);
  }
}

static void test_field_values(void **state) {
  (void)state;
  const sample *u = &samples[1], *r = &samples[6];
  pairs pu, pr;
  split(u->buf, &pu);
  split(r->buf, &pr);
  char id65[STOREFL_MAX_ID_LEN + 2];
  memset(id65, 'x', sizeof id65);
  id65[STOREFL_MAX_ID_LEN + 1] = 0;
  const char *bad_ids[] = {"", "a b", "s/1", "caf\xc3\xa9", id65};
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
    bytes v = {0}, b = {0};
    b_text(&v, bad_ids[i]);
    rebuild(u, &pu, -1, -1, 1, &v, NULL, 0, &b);
    EXPECT(u, b.p, b.n, STOREFL_ERR_INVALID);
    b_free(&v);
    b_free(&b);
  }
  /* round: state, mode out of range (4.00); an upload dtype we do not know (4.15) */
  struct {
    int key;
    uint64_t val;
    int want;
  } cases[] = {{2, 0, STOREFL_ERR_INVALID}, {2, 5, STOREFL_ERR_INVALID},
               {7, 3, STOREFL_ERR_INVALID}, {15, 86, STOREFL_ERR_FORMAT},
               {15, 85, STOREFL_OK},        {11, 1ull << 32, STOREFL_ERR_INVALID},
               {7, 1, STOREFL_OK}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    bytes v = {0}, b = {0};
    b_head(&v, 0, cases[i].val);
    rebuild(r, &pr, -1, -1, cases[i].key, &v, NULL, 0, &b);
    EXPECT(r, b.p, b.n, cases[i].want);
    b_free(&v);
    b_free(&b);
  }
  /* deadline as a negative integer beyond int64 */
  bytes v = {0}, b = {0};
  b_put(&v, "\x3b\xff\xff\xff\xff\xff\xff\xff\xff", 9);
  rebuild(r, &pr, -1, -1, 5, &v, NULL, 0, &b);
  EXPECT(r, b.p, b.n, STOREFL_ERR_INVALID);
  b_free(&v);
  b_free(&b);
  /* non-shortest integer heads are accepted (well-formed CBOR) */
  b_put(&v, "\x1b\x00\x00\x00\x00\x00\x00\x00\x07", 9);
  rebuild(r, &pr, -1, -1, 1, &v, NULL, 0, &b);
  EXPECT(r, b.p, b.n, STOREFL_OK);
  b_free(&v);
  b_free(&b);
  /* delta must be in (0, 1): 1.0 as a float16 */
  b_put(&v, "\xf9\x3c\x00", 3);
  rebuild(r, &pr, -1, -1, 10, &v, NULL, 0, &b);
  EXPECT(r, b.p, b.n, STOREFL_ERR_INVALID);
  b_free(&v);
  b_free(&b);
  /* error body: a 2.xx code is not an error */
  const sample *e = &samples[8];
  pairs pe;
  split(e->buf, &pe);
  b_head(&v, 0, 205);
  rebuild(e, &pe, -1, -1, 1, &v, NULL, 0, &b);
  EXPECT(e, b.p, b.n, STOREFL_ERR_INVALID);
  b_free(&v);
  b_free(&b);
  /* ledger: participants out of order */
  const sample *l = &samples[10];
  pairs pl;
  split(l->buf, &pl);
  b_head(&v, 4, 2);
  b_text(&v, "S2");
  b_text(&v, "S1");
  rebuild(l, &pl, -1, -1, 11, &v, NULL, 0, &b);
  EXPECT(l, b.p, b.n, STOREFL_ERR_INVALID);
  b_free(&v);
  b_free(&b);
  /* ledger: more participants than STOREFL_MAX_PARTICIPANTS (4.13), exactly the limit is fine */
  for (int extra = 0; extra <= 1; extra++) {
    b_head(&v, 4, STOREFL_MAX_PARTICIPANTS + (uint64_t)extra);
    for (int i = 0; i < STOREFL_MAX_PARTICIPANTS + extra; i++) {
      char id[8];
      snprintf(id, sizeof id, "s%05d", i);
      b_text(&v, id);
    }
    rebuild(l, &pl, -1, -1, 11, &v, NULL, 0, &b);
    int want = extra ? STOREFL_ERR_TOO_LARGE : STOREFL_OK;
    EXPECT(l, b.p, b.n, want);
    b_free(&v);
    b_free(&b);
  }
  /* ledger: an epsilon pair with three elements */
  b_head(&v, 4, 1);
  b_head(&v, 4, 3);
  b_text(&v, "S1");
  b_put(&v, "\xf9\x3c\x00\xf9\x3c\x00", 6);
  rebuild(l, &pl, -1, -1, 12, &v, NULL, 0, &b);
  EXPECT(l, b.p, b.n, STOREFL_ERR_INVALID);
  b_free(&v);
  b_free(&b);
  /* ledger: a signature over the limit */
  b_head(&v, 2, STOREFL_MAX_SIGNATURE_LEN + 1);
  for (int i = 0; i <= STOREFL_MAX_SIGNATURE_LEN; i++)
    b_byte(&v, 0x30);
  rebuild(l, &pl, -1, -1, 14, &v, NULL, 0, &b);
  EXPECT(l, b.p, b.n, STOREFL_ERR_INVALID);
  b_free(&v);
  b_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_truncation_every_offset),
      cmocka_unit_test(test_trailing_bytes_and_cap),
      cmocka_unit_test(test_keys_and_types),
      cmocka_unit_test(test_depth_bombs),
      cmocka_unit_test(test_tensor_corruptions),
      cmocka_unit_test(test_huge_lengths),
      cmocka_unit_test(test_field_values),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
