/* Encoders and strict decoders of the protocol v1 messages (keys: protocol/cddl/storefl.cddl). */
#include <stdbool.h>
#include <string.h>

#include "cbor_io.h"
#include "storefl/codec.h"
#include "storefl/error.h"

#define TRY(expr)                                                                                            \
  do {                                                                                                       \
    int rc_ = (expr);                                                                                        \
    if (rc_)                                                                                                 \
      return rc_;                                                                                            \
  } while (0)

#define BIT(k) (UINT32_C(1) << (k))
#define ALL_KEYS(n) ((uint32_t)((UINT64_C(1) << (n)) - 1))

/* Opens a decode: body cap, map head. */
static int dec_begin(cbor_rd *r, const uint8_t *buf, size_t len, size_t max_len, uint64_t *npairs) {
  if (len > max_len)
    return STOREFL_ERR_TOO_LARGE;
  if (!buf || len == 0) /* an empty body is not a message (and NULL + 0 is not valid C) */
    return STOREFL_ERR_INVALID;
  rd_init(r, buf, len, max_len);
  return rd_map(r, npairs);
}

static int dec_end(const cbor_rd *r, uint32_t seen, uint32_t required) {
  if ((seen & required) != required)
    return STOREFL_ERR_INVALID;
  return rd_finish(r);
}

static int enc_check(const void *m, uint8_t *buf, size_t *len) {
  if (!m || (!buf && !len))
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

static bool mode_ok(storefl_privacy_mode m) {
  return m == STOREFL_PRIVACY_LOCAL || m == STOREFL_PRIVACY_CENTRAL;
}

static bool state_ok(storefl_round_state s) {
  return s >= STOREFL_ROUND_OPEN && s <= STOREFL_ROUND_IDLE;
}

static int rd_mode(cbor_rd *r, storefl_privacy_mode *m) {
  uint32_t v;
  TRY(rd_uint32(r, &v));
  *m = (storefl_privacy_mode)v;
  return mode_ok(*m) ? STOREFL_OK : STOREFL_ERR_INVALID;
}

static int rd_state(cbor_rd *r, storefl_round_state *s) {
  uint32_t v;
  TRY(rd_uint32(r, &v));
  *s = (storefl_round_state)v;
  return state_ok(*s) ? STOREFL_OK : STOREFL_ERR_INVALID;
}

/* ------------------------------------------------------------------------------------ model -- */

enum { MK_VERSION, MK_MODEL_VERSION, MK_DIGEST, MK_ARCH, MK_TENSORS, MK_N };

int storefl_model_encode(const storefl_model_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  TRY(enc_check(m, buf, len));
  TRY(check_text(&m->arch, 1, STOREFL_MAX_ARCH_LEN));
  cbor_wr w;
  wr_init(&w, buf, cap);
  wr_map(&w, MK_N);
  wr_uint(&w, MK_VERSION);
  wr_uint(&w, STOREFL_PROTOCOL_VERSION);
  wr_uint(&w, MK_MODEL_VERSION);
  wr_uint(&w, m->model_version);
  wr_uint(&w, MK_DIGEST);
  wr_bytes(&w, m->digest, STOREFL_DIGEST_LEN);
  wr_uint(&w, MK_ARCH);
  wr_text(&w, m->arch.ptr, m->arch.len);
  wr_uint(&w, MK_TENSORS);
  TRY(wr_tensors(&w, m->tensors, m->n_tensors));
  return wr_result(&w, buf, len);
}

int storefl_model_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_model_msg *out) {
  cbor_rd r;
  uint64_t npairs;
  TRY(dec_begin(&r, buf, len, max_len, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    TRY(rd_key(&r, MK_N, &seen, &key));
    switch (key) {
    case MK_VERSION:
      TRY(rd_version(&r));
      break;
    case MK_MODEL_VERSION:
      TRY(rd_uint(&r, &out->model_version));
      break;
    case MK_DIGEST:
      TRY(rd_digest(&r, out->digest));
      break;
    case MK_ARCH:
      TRY(rd_text(&r, &out->arch, 1, STOREFL_MAX_ARCH_LEN));
      break;
    case MK_TENSORS:
      TRY(rd_tensors(&r, out->tensors, &out->n_tensors));
      break;
    }
  }
  return dec_end(&r, seen, ALL_KEYS(MK_N));
}

/* ------------------------------------------------------------------------------------ round -- */

enum {
  RK_VERSION,
  RK_ROUND,
  RK_STATE,
  RK_MODEL_VERSION,
  RK_MODEL_DIGEST,
  RK_DEADLINE,
  RK_Q,
  RK_MODE,
  RK_CLIP,
  RK_SIGMA,
  RK_DELTA,
  RK_MIN_PART,
  RK_TARGET_PART,
  RK_LOCAL_STEPS,
  RK_LOCAL_LR,
  RK_UPLOAD_DTYPE,
  RK_MAX_UPLOAD,
  RK_SCALE_BITS,
  RK_N
};

/* Semantic checks shared by both directions: ranges a peer could not act on sensibly. */
static int round_check(const storefl_round_msg *m) {
  TRY(check_finite(m->participation_q));
  TRY(check_finite(m->clip_norm));
  TRY(check_finite(m->noise_multiplier));
  TRY(check_finite(m->delta));
  TRY(check_finite(m->local_lr));
  if (!state_ok(m->state) || !mode_ok(m->mode))
    return STOREFL_ERR_INVALID;
  if (!(m->participation_q > 0 && m->participation_q <= 1) || !(m->clip_norm > 0) ||
      m->noise_multiplier < 0 || !(m->delta > 0 && m->delta < 1) || m->local_lr < 0 || m->scale_bits < 1 ||
      m->scale_bits > STOREFL_MAX_SCALE_BITS)
    return STOREFL_ERR_INVALID;
  if (!storefl_dtype_size(m->upload_dtype))
    return STOREFL_ERR_FORMAT;
  return STOREFL_OK;
}

int storefl_round_encode(const storefl_round_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  TRY(enc_check(m, buf, len));
  TRY(round_check(m));
  cbor_wr w;
  wr_init(&w, buf, cap);
  wr_map(&w, RK_N);
  wr_uint(&w, RK_VERSION);
  wr_uint(&w, STOREFL_PROTOCOL_VERSION);
  wr_uint(&w, RK_ROUND);
  wr_uint(&w, m->round);
  wr_uint(&w, RK_STATE);
  wr_uint(&w, (uint64_t)m->state);
  wr_uint(&w, RK_MODEL_VERSION);
  wr_uint(&w, m->model_version);
  wr_uint(&w, RK_MODEL_DIGEST);
  wr_bytes(&w, m->model_digest, STOREFL_DIGEST_LEN);
  wr_uint(&w, RK_DEADLINE);
  wr_int64(&w, m->deadline_unix_ms);
  wr_uint(&w, RK_Q);
  wr_double(&w, m->participation_q);
  wr_uint(&w, RK_MODE);
  wr_uint(&w, (uint64_t)m->mode);
  wr_uint(&w, RK_CLIP);
  wr_double(&w, m->clip_norm);
  wr_uint(&w, RK_SIGMA);
  wr_double(&w, m->noise_multiplier);
  wr_uint(&w, RK_DELTA);
  wr_double(&w, m->delta);
  wr_uint(&w, RK_MIN_PART);
  wr_uint(&w, m->min_participants);
  wr_uint(&w, RK_TARGET_PART);
  wr_uint(&w, m->target_participants);
  wr_uint(&w, RK_LOCAL_STEPS);
  wr_uint(&w, m->local_steps);
  wr_uint(&w, RK_LOCAL_LR);
  wr_double(&w, m->local_lr);
  wr_uint(&w, RK_UPLOAD_DTYPE);
  wr_uint(&w, (uint64_t)m->upload_dtype);
  wr_uint(&w, RK_MAX_UPLOAD);
  wr_uint(&w, m->max_upload_bytes);
  wr_uint(&w, RK_SCALE_BITS);
  wr_uint(&w, m->scale_bits);
  return wr_result(&w, buf, len);
}

int storefl_round_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_round_msg *out) {
  cbor_rd r;
  uint64_t npairs;
  TRY(dec_begin(&r, buf, len, max_len, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    uint32_t u;
    TRY(rd_key(&r, RK_N, &seen, &key));
    switch (key) {
    case RK_VERSION:
      TRY(rd_version(&r));
      break;
    case RK_ROUND:
      TRY(rd_uint(&r, &out->round));
      break;
    case RK_STATE:
      TRY(rd_state(&r, &out->state));
      break;
    case RK_MODEL_VERSION:
      TRY(rd_uint(&r, &out->model_version));
      break;
    case RK_MODEL_DIGEST:
      TRY(rd_digest(&r, out->model_digest));
      break;
    case RK_DEADLINE:
      TRY(rd_int64(&r, &out->deadline_unix_ms));
      break;
    case RK_Q:
      TRY(rd_double(&r, &out->participation_q));
      break;
    case RK_MODE:
      TRY(rd_mode(&r, &out->mode));
      break;
    case RK_CLIP:
      TRY(rd_double(&r, &out->clip_norm));
      break;
    case RK_SIGMA:
      TRY(rd_double(&r, &out->noise_multiplier));
      break;
    case RK_DELTA:
      TRY(rd_double(&r, &out->delta));
      break;
    case RK_MIN_PART:
      TRY(rd_uint32(&r, &out->min_participants));
      break;
    case RK_TARGET_PART:
      TRY(rd_uint32(&r, &out->target_participants));
      break;
    case RK_LOCAL_STEPS:
      TRY(rd_uint32(&r, &out->local_steps));
      break;
    case RK_LOCAL_LR:
      TRY(rd_double(&r, &out->local_lr));
      break;
    case RK_UPLOAD_DTYPE:
      TRY(rd_uint32(&r, &u));
      out->upload_dtype = (storefl_dtype)u;
      if (!storefl_dtype_size(out->upload_dtype))
        return STOREFL_ERR_FORMAT;
      break;
    case RK_MAX_UPLOAD:
      TRY(rd_uint(&r, &out->max_upload_bytes));
      break;
    case RK_SCALE_BITS:
      TRY(rd_uint32(&r, &out->scale_bits));
      break;
    }
  }
  TRY(dec_end(&r, seen, ALL_KEYS(RK_N)));
  return round_check(out);
}

/* ----------------------------------------------------------------------------------- update -- */

enum { UK_VERSION, UK_STORE, UK_ROUND, UK_BASE, UK_NUM_EX, UK_MODE, UK_CLIP, UK_SIGMA, UK_TENSORS, UK_N };

static int update_check(const storefl_update_msg *m) {
  if (!storefl_store_id_valid(m->store_id.ptr, m->store_id.len))
    return STOREFL_ERR_INVALID;
  TRY(check_finite(m->clip_norm));
  TRY(check_finite(m->noise_multiplier));
  if (!mode_ok(m->mode) || !(m->clip_norm > 0) || m->noise_multiplier < 0)
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

int storefl_update_encode(const storefl_update_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  TRY(enc_check(m, buf, len));
  TRY(update_check(m));
  cbor_wr w;
  wr_init(&w, buf, cap);
  wr_map(&w, UK_N);
  wr_uint(&w, UK_VERSION);
  wr_uint(&w, STOREFL_PROTOCOL_VERSION);
  wr_uint(&w, UK_STORE);
  wr_text(&w, m->store_id.ptr, m->store_id.len);
  wr_uint(&w, UK_ROUND);
  wr_uint(&w, m->round);
  wr_uint(&w, UK_BASE);
  wr_uint(&w, m->base_model_version);
  wr_uint(&w, UK_NUM_EX);
  wr_uint(&w, m->num_examples);
  wr_uint(&w, UK_MODE);
  wr_uint(&w, (uint64_t)m->mode);
  wr_uint(&w, UK_CLIP);
  wr_double(&w, m->clip_norm);
  wr_uint(&w, UK_SIGMA);
  wr_double(&w, m->noise_multiplier);
  wr_uint(&w, UK_TENSORS);
  TRY(wr_tensors(&w, m->tensors, m->n_tensors));
  return wr_result(&w, buf, len);
}

int storefl_update_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_update_msg *out) {
  cbor_rd r;
  uint64_t npairs;
  TRY(dec_begin(&r, buf, len, max_len, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    TRY(rd_key(&r, UK_N, &seen, &key));
    switch (key) {
    case UK_VERSION:
      TRY(rd_version(&r));
      break;
    case UK_STORE:
      TRY(rd_store_id(&r, &out->store_id));
      break;
    case UK_ROUND:
      TRY(rd_uint(&r, &out->round));
      break;
    case UK_BASE:
      TRY(rd_uint(&r, &out->base_model_version));
      break;
    case UK_NUM_EX:
      TRY(rd_uint(&r, &out->num_examples));
      break;
    case UK_MODE:
      TRY(rd_mode(&r, &out->mode));
      break;
    case UK_CLIP:
      TRY(rd_double(&r, &out->clip_norm));
      break;
    case UK_SIGMA:
      TRY(rd_double(&r, &out->noise_multiplier));
      break;
    case UK_TENSORS:
      TRY(rd_tensors(&r, out->tensors, &out->n_tensors));
      break;
    }
  }
  TRY(dec_end(&r, seen, ALL_KEYS(UK_N)));
  return update_check(out);
}

/* ---------------------------------------------------------------------------------- receipt -- */

enum { CK_VERSION, CK_STORE, CK_ROUND, CK_DIGEST, CK_ACCEPTED, CK_PARTICIPANTS, CK_DUPLICATE, CK_N };

int storefl_receipt_encode(const storefl_receipt_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  TRY(enc_check(m, buf, len));
  if (!storefl_store_id_valid(m->store_id.ptr, m->store_id.len) || m->duplicate > 1)
    return STOREFL_ERR_INVALID;
  cbor_wr w;
  wr_init(&w, buf, cap);
  wr_map(&w, CK_N);
  wr_uint(&w, CK_VERSION);
  wr_uint(&w, STOREFL_PROTOCOL_VERSION);
  wr_uint(&w, CK_STORE);
  wr_text(&w, m->store_id.ptr, m->store_id.len);
  wr_uint(&w, CK_ROUND);
  wr_uint(&w, m->round);
  wr_uint(&w, CK_DIGEST);
  wr_bytes(&w, m->update_digest, STOREFL_DIGEST_LEN);
  wr_uint(&w, CK_ACCEPTED);
  wr_int64(&w, m->accepted_unix_ms);
  wr_uint(&w, CK_PARTICIPANTS);
  wr_uint(&w, m->participants_so_far);
  wr_uint(&w, CK_DUPLICATE);
  wr_bool(&w, m->duplicate);
  return wr_result(&w, buf, len);
}

int storefl_receipt_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_receipt_msg *out) {
  cbor_rd r;
  uint64_t npairs;
  TRY(dec_begin(&r, buf, len, max_len, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    TRY(rd_key(&r, CK_N, &seen, &key));
    switch (key) {
    case CK_VERSION:
      TRY(rd_version(&r));
      break;
    case CK_STORE:
      TRY(rd_store_id(&r, &out->store_id));
      break;
    case CK_ROUND:
      TRY(rd_uint(&r, &out->round));
      break;
    case CK_DIGEST:
      TRY(rd_digest(&r, out->update_digest));
      break;
    case CK_ACCEPTED:
      TRY(rd_int64(&r, &out->accepted_unix_ms));
      break;
    case CK_PARTICIPANTS:
      TRY(rd_uint32(&r, &out->participants_so_far));
      break;
    case CK_DUPLICATE:
      TRY(rd_bool(&r, &out->duplicate));
      break;
    }
  }
  return dec_end(&r, seen, ALL_KEYS(CK_N));
}

/* ------------------------------------------------------------------------------------ error -- */

enum { EK_VERSION, EK_CODE, EK_REASON, EK_DETAIL, EK_MAX_AGE, EK_N };

static int reason_ok(const storefl_str *s) {
  if (s->len < 1 || s->len > STOREFL_MAX_REASON_LEN || !s->ptr)
    return 0;
  for (size_t i = 0; i < s->len; i++) {
    char c = s->ptr[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

/* CoAP error classes only: 4.00..4.31 and 5.00..5.31. */
static int error_check(const storefl_error_msg *m) {
  unsigned cls = m->coap_code / 100, detail = m->coap_code % 100;
  if ((cls != 4 && cls != 5) || detail > 31 || !reason_ok(&m->reason))
    return STOREFL_ERR_INVALID;
  return check_text(&m->detail, 0, STOREFL_MAX_TEXT_LEN);
}

int storefl_error_encode(const storefl_error_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  TRY(enc_check(m, buf, len));
  TRY(error_check(m));
  cbor_wr w;
  wr_init(&w, buf, cap);
  wr_map(&w, EK_N);
  wr_uint(&w, EK_VERSION);
  wr_uint(&w, STOREFL_PROTOCOL_VERSION);
  wr_uint(&w, EK_CODE);
  wr_uint(&w, m->coap_code);
  wr_uint(&w, EK_REASON);
  wr_text(&w, m->reason.ptr, m->reason.len);
  wr_uint(&w, EK_DETAIL);
  wr_text(&w, m->detail.ptr, m->detail.len);
  wr_uint(&w, EK_MAX_AGE);
  wr_uint(&w, m->max_age_s);
  return wr_result(&w, buf, len);
}

int storefl_error_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_error_msg *out) {
  cbor_rd r;
  uint64_t npairs;
  TRY(dec_begin(&r, buf, len, max_len, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    TRY(rd_key(&r, EK_N, &seen, &key));
    switch (key) {
    case EK_VERSION:
      TRY(rd_version(&r));
      break;
    case EK_CODE:
      TRY(rd_uint32(&r, &out->coap_code));
      break;
    case EK_REASON:
      TRY(rd_text(&r, &out->reason, 1, STOREFL_MAX_REASON_LEN));
      break;
    case EK_DETAIL:
      TRY(rd_text(&r, &out->detail, 0, STOREFL_MAX_TEXT_LEN));
      break;
    case EK_MAX_AGE:
      TRY(rd_uint32(&r, &out->max_age_s));
      break;
    }
  }
  TRY(dec_end(&r, seen, ALL_KEYS(EK_N)));
  return error_check(out);
}

int storefl_error_encode_for(int err, const char *detail, uint32_t max_age_s, uint8_t *buf, size_t cap,
                             size_t *len) {
  storefl_error_msg m = {0};
  m.coap_code = (uint32_t)storefl_err_to_coap(err);
  if (m.coap_code < 400)
    return STOREFL_ERR_INVALID; /* STOREFL_OK is not an error */
  const char *reason = storefl_strerror(err);
  m.reason.ptr = reason;
  m.reason.len = strlen(reason);
  if (detail) {
    size_t n = strlen(detail);
    n = n > STOREFL_MAX_TEXT_LEN ? STOREFL_MAX_TEXT_LEN : n;
    /* an error body must always be sendable: cut before a bad or cut-off UTF-8 sequence */
    n = utf8_valid_prefix((const uint8_t *)detail, n);
    m.detail.ptr = detail;
    m.detail.len = n;
  }
  m.max_age_s = max_age_s;
  return storefl_error_encode(&m, buf, cap, len);
}

/* ----------------------------------------------------------------------------------- status -- */

enum { SK_VERSION, SK_ROUND, SK_STATE, SK_MODEL_VERSION, SK_PARTICIPANTS, SK_SESSIONS, SK_HEALTH, SK_N };

int storefl_status_encode(const storefl_status_msg *m, uint8_t *buf, size_t cap, size_t *len) {
  TRY(enc_check(m, buf, len));
  if (!state_ok(m->state))
    return STOREFL_ERR_INVALID;
  TRY(check_text(&m->health, 1, STOREFL_MAX_TEXT_LEN));
  cbor_wr w;
  wr_init(&w, buf, cap);
  wr_map(&w, SK_N);
  wr_uint(&w, SK_VERSION);
  wr_uint(&w, STOREFL_PROTOCOL_VERSION);
  wr_uint(&w, SK_ROUND);
  wr_uint(&w, m->round);
  wr_uint(&w, SK_STATE);
  wr_uint(&w, (uint64_t)m->state);
  wr_uint(&w, SK_MODEL_VERSION);
  wr_uint(&w, m->model_version);
  wr_uint(&w, SK_PARTICIPANTS);
  wr_uint(&w, m->participants_so_far);
  wr_uint(&w, SK_SESSIONS);
  wr_uint(&w, m->sessions);
  wr_uint(&w, SK_HEALTH);
  wr_text(&w, m->health.ptr, m->health.len);
  return wr_result(&w, buf, len);
}

int storefl_status_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_status_msg *out) {
  cbor_rd r;
  uint64_t npairs;
  TRY(dec_begin(&r, buf, len, max_len, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    TRY(rd_key(&r, SK_N, &seen, &key));
    switch (key) {
    case SK_VERSION:
      TRY(rd_version(&r));
      break;
    case SK_ROUND:
      TRY(rd_uint(&r, &out->round));
      break;
    case SK_STATE:
      TRY(rd_state(&r, &out->state));
      break;
    case SK_MODEL_VERSION:
      TRY(rd_uint(&r, &out->model_version));
      break;
    case SK_PARTICIPANTS:
      TRY(rd_uint32(&r, &out->participants_so_far));
      break;
    case SK_SESSIONS:
      TRY(rd_uint32(&r, &out->sessions));
      break;
    case SK_HEALTH:
      TRY(rd_text(&r, &out->health, 1, STOREFL_MAX_TEXT_LEN));
      break;
    }
  }
  return dec_end(&r, seen, ALL_KEYS(SK_N));
}
