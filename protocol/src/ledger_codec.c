/* Canonical CBOR of audit ledger entries (keys: protocol/cddl/storefl.cddl, ledger-entry). */
#include <mbedtls/sha256.h>
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

enum {
  LK_VERSION,
  LK_INDEX,
  LK_ROUND,
  LK_MODE,
  LK_Q,
  LK_SIGMA,
  LK_CLIP,
  LK_DELTA,
  LK_CLOSED,
  LK_MODEL_DIGEST,
  LK_PREV_HASH,
  LK_PARTICIPANTS,
  LK_EPSILONS,
  LK_SIGNED_N, /* keys below this are covered by entry_hash */
  LK_ENTRY_HASH = LK_SIGNED_N,
  LK_SIGNATURE,
  LK_N
};

/* Bytewise order, a proper prefix first: the order strcmp gives for ASCII store ids. */
static int str_cmp(const storefl_str *a, const storefl_str *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->ptr, b->ptr, n) : 0;
  if (c)
    return c;
  return a->len < b->len ? -1 : (a->len > b->len);
}

/* Everything but the two trailer fields. Sorted unique lists make the encoding a function of the
 * set of participants, so two honest encoders always hash the same bytes. */
static int entry_check(const storefl_ledger_entry *e) {
  TRY(check_finite(e->participation_q));
  TRY(check_finite(e->noise_multiplier));
  TRY(check_finite(e->clip_norm));
  TRY(check_finite(e->delta));
  if ((e->mode != STOREFL_PRIVACY_LOCAL && e->mode != STOREFL_PRIVACY_CENTRAL) ||
      !(e->participation_q > 0 && e->participation_q <= 1) || e->noise_multiplier < 0 ||
      !(e->clip_norm > 0) || !(e->delta > 0 && e->delta < 1))
    return STOREFL_ERR_INVALID;
  if (e->n_participants > STOREFL_MAX_PARTICIPANTS || e->n_epsilons > STOREFL_MAX_PARTICIPANTS)
    return STOREFL_ERR_TOO_LARGE;
  if ((e->n_participants && !e->participants) || (e->n_epsilons && !e->epsilons))
    return STOREFL_ERR_INVALID;
  for (uint32_t i = 0; i < e->n_participants; i++) {
    const storefl_str *s = &e->participants[i];
    if (!storefl_store_id_valid(s->ptr, s->len))
      return STOREFL_ERR_INVALID;
    if (i && str_cmp(&e->participants[i - 1], s) >= 0)
      return STOREFL_ERR_INVALID;
  }
  for (uint32_t i = 0; i < e->n_epsilons; i++) {
    const storefl_store_epsilon *s = &e->epsilons[i];
    if (!storefl_store_id_valid(s->store_id.ptr, s->store_id.len))
      return STOREFL_ERR_INVALID;
    if (i && str_cmp(&e->epsilons[i - 1].store_id, &s->store_id) >= 0)
      return STOREFL_ERR_INVALID;
    TRY(check_finite(s->epsilon));
    if (s->epsilon < 0)
      return STOREFL_ERR_INVALID;
  }
  return STOREFL_OK;
}

static int sig_check(const storefl_ledger_entry *e) {
  if (e->signature_len < 1 || e->signature_len > STOREFL_MAX_SIGNATURE_LEN || !e->signature)
    return STOREFL_ERR_INVALID;
  return STOREFL_OK;
}

static void write_entry(cbor_wr *w, const storefl_ledger_entry *e, int whole) {
  wr_map(w, whole ? LK_N : LK_SIGNED_N);
  wr_uint(w, LK_VERSION);
  wr_uint(w, STOREFL_PROTOCOL_VERSION);
  wr_uint(w, LK_INDEX);
  wr_uint(w, e->index);
  wr_uint(w, LK_ROUND);
  wr_uint(w, e->round);
  wr_uint(w, LK_MODE);
  wr_uint(w, (uint64_t)e->mode);
  wr_uint(w, LK_Q);
  wr_double(w, e->participation_q);
  wr_uint(w, LK_SIGMA);
  wr_double(w, e->noise_multiplier);
  wr_uint(w, LK_CLIP);
  wr_double(w, e->clip_norm);
  wr_uint(w, LK_DELTA);
  wr_double(w, e->delta);
  wr_uint(w, LK_CLOSED);
  wr_int64(w, e->closed_unix_ms);
  wr_uint(w, LK_MODEL_DIGEST);
  wr_bytes(w, e->model_digest, STOREFL_DIGEST_LEN);
  wr_uint(w, LK_PREV_HASH);
  wr_bytes(w, e->prev_hash, STOREFL_DIGEST_LEN);
  wr_uint(w, LK_PARTICIPANTS);
  wr_array(w, e->n_participants);
  for (uint32_t i = 0; i < e->n_participants; i++)
    wr_text(w, e->participants[i].ptr, e->participants[i].len);
  wr_uint(w, LK_EPSILONS);
  wr_array(w, e->n_epsilons);
  for (uint32_t i = 0; i < e->n_epsilons; i++) {
    wr_array(w, 2);
    wr_text(w, e->epsilons[i].store_id.ptr, e->epsilons[i].store_id.len);
    wr_double(w, e->epsilons[i].epsilon);
  }
  if (whole) {
    wr_uint(w, LK_ENTRY_HASH);
    wr_bytes(w, e->entry_hash, STOREFL_DIGEST_LEN);
    wr_uint(w, LK_SIGNATURE);
    wr_bytes(w, e->signature, e->signature_len);
  }
}

int storefl_ledger_entry_encode_signed_part(const storefl_ledger_entry *e, uint8_t *buf, size_t cap,
                                            size_t *len) {
  if (!e || (!buf && !len))
    return STOREFL_ERR_INVALID;
  TRY(entry_check(e));
  cbor_wr w;
  wr_init(&w, buf, cap);
  write_entry(&w, e, 0);
  return wr_result(&w, buf, len);
}

int storefl_ledger_entry_encode(const storefl_ledger_entry *e, uint8_t *buf, size_t cap, size_t *len) {
  if (!e || (!buf && !len))
    return STOREFL_ERR_INVALID;
  TRY(entry_check(e));
  TRY(sig_check(e));
  cbor_wr w;
  wr_init(&w, buf, cap);
  write_entry(&w, e, 1);
  return wr_result(&w, buf, len);
}

static int sha_sink(void *ctx, const uint8_t *data, size_t len) {
  return mbedtls_sha256_update_ret(ctx, data, len) ? STOREFL_ERR_CRYPTO : STOREFL_OK;
}

int storefl_ledger_entry_hash(const storefl_ledger_entry *e, uint8_t hash[STOREFL_DIGEST_LEN]) {
  if (!e || !hash)
    return STOREFL_ERR_INVALID;
  TRY(entry_check(e));
  mbedtls_sha256_context ctx;
  mbedtls_sha256_init(&ctx);
  int rc = STOREFL_OK;
  if (mbedtls_sha256_starts_ret(&ctx, 0) != 0) {
    rc = STOREFL_ERR_CRYPTO;
  } else {
    uint8_t chunk[512];
    cbor_wr w;
    wr_init(&w, chunk, sizeof chunk);
    w.sink = sha_sink;
    w.ctx = &ctx;
    write_entry(&w, e, 0);
    rc = wr_flush(&w);
    if (rc == STOREFL_OK && mbedtls_sha256_finish_ret(&ctx, hash) != 0)
      rc = STOREFL_ERR_CRYPTO;
  }
  mbedtls_sha256_free(&ctx);
  return rc;
}

int storefl_ledger_entry_decode(const uint8_t *buf, size_t len, size_t max_len, storefl_ledger_entry *out,
                                storefl_str *participants, size_t participants_cap,
                                storefl_store_epsilon *epsilons, size_t epsilons_cap) {
  if (len > max_len)
    return STOREFL_ERR_TOO_LARGE;
  if (!out || !buf || len == 0)
    return STOREFL_ERR_INVALID;
  cbor_rd r;
  rd_init(&r, buf, len, max_len);
  uint64_t npairs, n;
  TRY(rd_map(&r, &npairs));
  memset(out, 0, sizeof *out);
  uint32_t seen = 0;
  for (uint64_t i = 0; i < npairs; i++) {
    unsigned key;
    uint32_t u;
    TRY(rd_key(&r, LK_N, &seen, &key));
    switch (key) {
    case LK_VERSION:
      TRY(rd_version(&r));
      break;
    case LK_INDEX:
      TRY(rd_uint(&r, &out->index));
      break;
    case LK_ROUND:
      TRY(rd_uint(&r, &out->round));
      break;
    case LK_MODE:
      TRY(rd_uint32(&r, &u));
      out->mode = (storefl_privacy_mode)u;
      break;
    case LK_Q:
      TRY(rd_double(&r, &out->participation_q));
      break;
    case LK_SIGMA:
      TRY(rd_double(&r, &out->noise_multiplier));
      break;
    case LK_CLIP:
      TRY(rd_double(&r, &out->clip_norm));
      break;
    case LK_DELTA:
      TRY(rd_double(&r, &out->delta));
      break;
    case LK_CLOSED:
      TRY(rd_int64(&r, &out->closed_unix_ms));
      break;
    case LK_MODEL_DIGEST:
      TRY(rd_digest(&r, out->model_digest));
      break;
    case LK_PREV_HASH:
      TRY(rd_digest(&r, out->prev_hash));
      break;
    case LK_PARTICIPANTS:
      TRY(rd_array(&r, &n));
      if (n > STOREFL_MAX_PARTICIPANTS || n > participants_cap)
        return STOREFL_ERR_TOO_LARGE;
      for (uint64_t k = 0; k < n; k++)
        TRY(rd_store_id(&r, &participants[k]));
      out->n_participants = (uint32_t)n;
      out->participants = participants;
      break;
    case LK_EPSILONS:
      TRY(rd_array(&r, &n));
      if (n > STOREFL_MAX_PARTICIPANTS || n > epsilons_cap)
        return STOREFL_ERR_TOO_LARGE;
      for (uint64_t k = 0; k < n; k++) {
        uint64_t two;
        TRY(rd_array(&r, &two));
        if (two != 2)
          return STOREFL_ERR_INVALID;
        TRY(rd_store_id(&r, &epsilons[k].store_id));
        TRY(rd_double(&r, &epsilons[k].epsilon));
      }
      out->n_epsilons = (uint32_t)n;
      out->epsilons = epsilons;
      break;
    case LK_ENTRY_HASH:
      TRY(rd_digest(&r, out->entry_hash));
      break;
    case LK_SIGNATURE:
      TRY(rd_bytes(&r, &out->signature, &out->signature_len, 0, STOREFL_MAX_SIGNATURE_LEN));
      break;
    }
  }
  const uint32_t all = (uint32_t)((UINT64_C(1) << LK_N) - 1);
  if ((seen & all) != all)
    return STOREFL_ERR_INVALID;
  TRY(rd_finish(&r));
  TRY(entry_check(out));
  return sig_check(out);
}
