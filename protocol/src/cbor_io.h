/*
 * Internal to protocol/: a minimal strict CBOR reader over a caller buffer and a writer on top of
 * libcbor's low-level cbor_encode_* functions. Not installed; codec.h is the public API.
 *
 * Why a hand-written reader: the decoder must be zero-copy and zero-allocation and must reject
 * everything outside the schema at the first wrong byte. libcbor's cbor_load builds a heap tree
 * (83 ms per 1 M floats) and its streaming callbacks would turn a schema walk into a state
 * machine; reading heads directly is shorter and easier to audit.
 */
#ifndef STOREFL_CBOR_IO_H
#define STOREFL_CBOR_IO_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"

/* ---- reader ---- */

typedef struct cbor_rd {
  const uint8_t *p;   /* next byte */
  const uint8_t *end; /* one past the body */
  size_t cap;         /* caller's body cap: declared lengths above it are TOO_LARGE */
} cbor_rd;

void rd_init(cbor_rd *r, const uint8_t *buf, size_t len, size_t cap);
int rd_uint(cbor_rd *r, uint64_t *v);
int rd_uint32(cbor_rd *r, uint32_t *v);
int rd_int64(cbor_rd *r, int64_t *v);
int rd_double(cbor_rd *r, double *v); /* float16/32/64; NaN/Inf -> NONFINITE */
int rd_bool(cbor_rd *r, uint8_t *v);
/* Text string of min..max bytes of valid UTF-8. */
int rd_text(cbor_rd *r, storefl_str *s, size_t min, size_t max);
int rd_store_id(cbor_rd *r, storefl_str *s);
/* Byte string of exactly n bytes (n > 0) or of 1..max bytes (n == 0). */
int rd_bytes(cbor_rd *r, const uint8_t **ptr, size_t *len, size_t n, size_t max);
int rd_digest(cbor_rd *r, uint8_t out[STOREFL_DIGEST_LEN]);
/* Array / map heads with definite length; the count is checked against the remaining bytes. */
int rd_array(cbor_rd *r, uint64_t *n);
int rd_map(cbor_rd *r, uint64_t *n);
/* Reads a map key (unsigned int < nkeys) and records it in *seen; INVALID for unknown/duplicate. */
int rd_key(cbor_rd *r, unsigned nkeys, uint32_t *seen, unsigned *key);
/* Version value under key 0: must be 1, else FORMAT. */
int rd_version(cbor_rd *r);
/* Trailing bytes -> INVALID. */
int rd_finish(const cbor_rd *r);
/* Tensor map (keys 1..4). */
int rd_tensor(cbor_rd *r, storefl_tensor *t);
/* Array of tensors. */
int rd_tensors(cbor_rd *r, storefl_tensor *ts, uint32_t *n);

int utf8_valid(const uint8_t *s, size_t len);
/* Length of the longest prefix of s made of complete, valid UTF-8 sequences. */
size_t utf8_valid_prefix(const uint8_t *s, size_t len);

/* ---- writer ---- */

/* Output goes to buf; when sink is set, full buffers are flushed to it (used to hash without a
 * heap buffer), otherwise bytes beyond cap are only counted. */
typedef struct cbor_wr {
  uint8_t *buf;
  size_t cap;
  size_t pos;   /* bytes in buf */
  size_t total; /* bytes produced so far */
  int overflow; /* some bytes did not fit (no sink) */
  int (*sink)(void *ctx, const uint8_t *data, size_t len);
  void *ctx;
  int err; /* first sink error */
} cbor_wr;

void wr_init(cbor_wr *w, uint8_t *buf, size_t cap);
void wr_put(cbor_wr *w, const void *data, size_t n);
void wr_uint(cbor_wr *w, uint64_t v);
void wr_int64(cbor_wr *w, int64_t v);
void wr_double(cbor_wr *w, double v);
void wr_float(cbor_wr *w, float v);
void wr_bool(cbor_wr *w, int v);
void wr_text(cbor_wr *w, const char *s, size_t len);
void wr_bytes(cbor_wr *w, const void *data, size_t len);
void wr_array(cbor_wr *w, size_t n);
void wr_map(cbor_wr *w, size_t n);
void wr_tag(cbor_wr *w, uint64_t tag);
int wr_flush(cbor_wr *w); /* sink mode: pushes the rest; returns the first sink error */
/* Result for an encoder: STOREFL_OK or TOO_LARGE, *len = total. */
int wr_result(const cbor_wr *w, uint8_t *buf, size_t *len);

/* ---- validation shared by encoders and decoders ---- */

int check_finite(double v);
int check_tensor(const storefl_tensor *t); /* shape/nbytes/dtype/scale/values */
int check_text(const storefl_str *s, size_t min, size_t max);
int wr_tensors(cbor_wr *w, const storefl_tensor *ts, uint32_t n);

#endif
