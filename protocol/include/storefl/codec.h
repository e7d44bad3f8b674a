/*
 * storefl CBOR codec (protocol version 1): encoders and strict decoders for every wire message in
 * storefl/messages.h, plus tensor helpers. The schema is protocol/cddl/storefl.cddl; the rules
 * (keys, limits, error codes) are explained in protocol/PROTOCOL.md.
 *
 * Error convention: every function returning int returns STOREFL_OK (0) or a negative storefl_err
 * (storefl/error.h) whose storefl_err_to_coap() is the CoAP response code to send:
 *   STOREFL_ERR_INVALID    (4.00) not well-formed CBOR, truncation, trailing bytes, wrong major type,
 *                                 unexpected tag (outside a tensor), indefinite length, duplicate,
 *                                 unknown or missing key, value out of range, bad store id or text,
 *                                 tensor length disagreeing with its shape, shape overflow
 *   STOREFL_ERR_NONFINITE  (4.00) NaN or +-Inf in a float field, a float32/float16 tensor or a scale
 *   STOREFL_ERR_TOO_LARGE  (4.13) body over the caller's cap, a declared length over the cap, more
 *                                 than STOREFL_MAX_TENSORS tensors / STOREFL_MAX_PARTICIPANTS ids /
 *                                 more than the caller's storage; for encoders: output buffer too small
 *   STOREFL_ERR_FORMAT     (4.15) protocol version (key 0) other than 1, a tensor whose tag is not
 *                                 85/84/72, an unknown dtype
 * No function allocates memory, prints or exits.
 *
 * Decoders: storefl_X_decode(buf, len, max_len, out). The body is rejected with TOO_LARGE when
 * len > max_len, before any parsing. On success *out is a view into buf (strings and tensor data
 * point into it; buf must outlive *out); the whole of buf must be exactly one message (trailing
 * bytes are rejected). On failure *out is unspecified. Decoders never recurse on input structure,
 * so nesting bombs cost O(1) stack: anything nested where the schema has a scalar is a wrong type.
 * Accepted but not required: non-shortest integer heads, float16/float32/float64 for any float
 * field, map keys in any order. Forbidden: indefinite lengths, unknown keys (v1 is strict; a
 * future version bumps key 0 and is answered with 4.15 by a v1 peer), tags other than the tensor
 * tags.
 *
 * Encoders: storefl_X_encode(msg, buf, cap, &len). They validate the message with the same rules
 * as the decoder (so we never emit what a peer must reject) and write canonical CBOR (RFC 8949
 * section 4.2.1: definite lengths, shortest integer heads, map keys in ascending order, which for
 * the small unsigned keys used here is also bytewise order). Float rule: every double field is
 * written as float64, the tensor scale (a C float) as float32. If buf is NULL the encoder only
 * computes the size: returns STOREFL_OK with *len = needed bytes. If cap is too small it returns
 * STOREFL_ERR_TOO_LARGE with *len = needed bytes and buf contents unspecified. len may be NULL
 * only when buf is not NULL.
 */
#ifndef STOREFL_CODEC_H
#define STOREFL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "storefl/messages.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Text limits (bytes) beyond the store id's STOREFL_MAX_ID_LEN. */
#define STOREFL_MAX_NAME_LEN 128      /* tensor name, 1..128 bytes of UTF-8 */
#define STOREFL_MAX_ARCH_LEN 64       /* model architecture id, 1..64 bytes of UTF-8 */
#define STOREFL_MAX_REASON_LEN 64     /* error reason, 1..64 bytes of [a-z0-9_] */
#define STOREFL_MAX_TEXT_LEN 1024     /* error detail (0..1024), status health (1..1024), UTF-8 */
#define STOREFL_MAX_SIGNATURE_LEN 160 /* ledger signature (DER ECDSA P-256 is at most 72) */

/* Default body cap for decoders when the caller has nothing better (64 MiB). */
#define STOREFL_DEFAULT_MAX_BODY ((size_t)64 << 20)

/* ---- Tensor helpers ------------------------------------------------------------------------ */

/* Bytes per element: 4 (F32), 2 (F16), 1 (I8), 0 for an unknown dtype. */
size_t storefl_dtype_size(storefl_dtype dtype);

/* Short name: "f32", "f16", "i8"; NULL for an unknown dtype. */
const char *storefl_dtype_name(storefl_dtype dtype);

/* Parses "f32" / "f16" / "i8" into *out. STOREFL_ERR_FORMAT for anything else. */
int storefl_dtype_parse(const char *name, storefl_dtype *out);

/* Number of elements of a shape (1 for ndim 0, 0 if any dimension is 0). STOREFL_ERR_INVALID if
 * ndim > STOREFL_MAX_DIMS or the product overflows uint64 (or size_t). */
int storefl_shape_numel(uint32_t ndim, const uint64_t *shape, uint64_t *numel);

/* storefl_shape_numel of t->ndim / t->shape. */
int storefl_tensor_numel(const storefl_tensor *t, uint64_t *numel);

/* IEEE binary16 <-> binary32. f32->f16 rounds to nearest, ties to even; keeps +-0 and produces
 * subnormals; a finite value beyond the largest float16 (65504 after rounding) becomes +-Inf and
 * NaN stays NaN (the bulk encoder below rejects both). f16->f32 is exact. */
uint16_t storefl_f32_to_f16(float f);
float storefl_f16_to_f32(uint16_t h);

/* Element i of a validated tensor as a float (I8: q * scale). i must be < numel. */
float storefl_tensor_get(const storefl_tensor *t, size_t i);

/* Converts all n = numel elements of t to floats in dst (I8: q * scale). STOREFL_ERR_INVALID if
 * n differs from the tensor's numel or its nbytes disagree with the shape. */
int storefl_tensor_to_f32(const storefl_tensor *t, float *dst, size_t n);

/* Wire bytes for n floats in dtype, for filling storefl_tensor.data before encoding:
 *   F32: little-endian copy. F16: storefl_f32_to_f16 per element.
 *   I8:  symmetric quantization q = round-half-even(x / scale) with scale = max|x| / 127
 *        (scale = 1 when all x are 0), written to *scale.
 * dst must hold n * storefl_dtype_size(dtype) bytes; scale may be NULL except for I8.
 * STOREFL_ERR_NONFINITE if any x is NaN/Inf or (F16) overflows to Inf; STOREFL_ERR_FORMAT for an
 * unknown dtype. */
int storefl_tensor_pack(storefl_dtype dtype, const float *src, size_t n, uint8_t *dst, float *scale);

/* Model digest (ETag of /v1/model, digest field of the model and round messages): SHA-256 over,
 * for each tensor in order, u32le(name length) || name || u32le(ndim) || u64le(dim)... ||
 * float32-LE bytes of every element (F16/I8 tensors are converted to float32 first). Uses no
 * heap: converts through a small stack buffer. STOREFL_ERR_INVALID for an inconsistent tensor,
 * STOREFL_ERR_CRYPTO if Mbed TLS fails. */
int storefl_model_digest(const storefl_tensor *tensors, uint32_t n_tensors,
                         uint8_t digest[STOREFL_DIGEST_LEN]);

/* CoAP ETag of /v1/model: the first STOREFL_ETAG_LEN bytes of the model digest (an ETag option
 * holds at most 8 bytes, RFC 7252 section 5.10.6). */
#define STOREFL_ETAG_LEN 8

/* Protocol rule "an update has the model's tensors": same count, and tensor i has the same name,
 * rank and shape as model tensor i (dtypes may differ). STOREFL_OK or STOREFL_ERR_INVALID (4.00). */
int storefl_tensors_match(const storefl_tensor *update, uint32_t n_update, const storefl_tensor *model,
                          uint32_t n_model);

/* Returns 1 if s (len bytes, no NUL needed) matches [A-Za-z0-9._-]{1,64}, else 0. */
int storefl_store_id_valid(const char *s, size_t len);

/* ---- Messages --------------------------------------------------------------------------------
 * Encoders and decoders follow the conventions at the top of this file. */

/* m->digest is written as given: fill it with storefl_model_digest(m->tensors, m->n_tensors, ...).
 * The decoder does not recompute it either (it would cost a SHA-256 pass per download); agents
 * verify it after decoding. */
int storefl_model_encode(const storefl_model_msg *m, uint8_t *buf, size_t cap, size_t *len);
int storefl_model_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_model_msg *out);

int storefl_round_encode(const storefl_round_msg *m, uint8_t *buf, size_t cap, size_t *len);
int storefl_round_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_round_msg *out);

int storefl_update_encode(const storefl_update_msg *m, uint8_t *buf, size_t cap, size_t *len);
int storefl_update_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_update_msg *out);

int storefl_receipt_encode(const storefl_receipt_msg *m, uint8_t *buf, size_t cap, size_t *len);
int storefl_receipt_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_receipt_msg *out);

int storefl_error_encode(const storefl_error_msg *m, uint8_t *buf, size_t cap, size_t *len);
int storefl_error_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_error_msg *out);

int storefl_status_encode(const storefl_status_msg *m, uint8_t *buf, size_t cap, size_t *len);
int storefl_status_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_status_msg *out);

/* Convenience for servers: encodes the error body for err (coap_code = storefl_err_to_coap(err),
 * reason = storefl_strerror(err)) with an optional detail (NUL-terminated, may be NULL; truncated
 * to STOREFL_MAX_TEXT_LEN and before the first invalid UTF-8 sequence, so that the body can always be
 * encoded) and max_age_s. */
int storefl_error_encode_for(int err, const char *detail, uint32_t max_age_s, uint8_t *buf, size_t cap,
                             size_t *len);

/* ---- Ledger entry ----------------------------------------------------------------------------
 * Validation: participants strictly increasing in bytewise order (sorted, no duplicates), each a
 * valid store id; epsilons strictly increasing by store_id, each finite and >= 0; at most
 * STOREFL_MAX_PARTICIPANTS of each; doubles finite; participation_q in (0, 1], noise_multiplier
 * >= 0, clip_norm > 0, delta in (0, 1); signature 1..STOREFL_MAX_SIGNATURE_LEN bytes. */

/* The canonical CBOR that entry_hash is computed over: the map of keys 0..12, i.e. every field but
 * entry_hash (13) and signature (14); those two fields of e are ignored. The caller hashes the
 * output with SHA-256 and stores the result in e->entry_hash before signing. Same buffer
 * conventions as the other encoders. */
int storefl_ledger_entry_encode_signed_part(const storefl_ledger_entry *e, uint8_t *buf, size_t cap,
                                            size_t *len);

/* The whole entry (keys 0..14), canonical. Requires a signature. */
int storefl_ledger_entry_encode(const storefl_ledger_entry *e, uint8_t *buf, size_t cap, size_t *len);

/* Decodes a whole entry (keys 0..14). Because the entry holds pointer arrays, the caller provides
 * their storage: participants[participants_cap] and epsilons[epsilons_cap]; out->participants and
 * out->epsilons point into them and their strings into buf. STOREFL_ERR_TOO_LARGE if the entry
 * has more ids than the storage (or than STOREFL_MAX_PARTICIPANTS). The decoder does NOT check
 * entry_hash or the signature: recompute with storefl_ledger_entry_hash(), compare with
 * out->entry_hash, then verify the signature over it. */
int storefl_ledger_entry_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_ledger_entry *out,
                                storefl_str *participants, size_t participants_cap,
                                storefl_store_epsilon *epsilons, size_t epsilons_cap);

/* SHA-256 of the canonical signed part of e, written to hash. Needs no heap for entries with up to
 * STOREFL_MAX_PARTICIPANTS ids (streams the encoding through a small stack buffer).
 * STOREFL_ERR_CRYPTO if Mbed TLS fails, otherwise the encoder's validation errors. */
int storefl_ledger_entry_hash(const storefl_ledger_entry *e, uint8_t hash[STOREFL_DIGEST_LEN]);

#ifdef __cplusplus
}
#endif
#endif
