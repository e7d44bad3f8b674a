/*
 * storefl wire messages (protocol version 1), as C structs.
 *
 * The CBOR form of each message is specified in protocol/cddl/storefl.cddl and described in
 * protocol/PROTOCOL.md; protocol/include/storefl/codec.h encodes and decodes them.
 *
 * Ownership: decoded messages are *views*. Strings and tensor data point into the buffer that
 * was decoded, which must outlive the struct; nothing is allocated per message, so a hostile
 * body can never make the decoder allocate more than the caller's buffer. For encoding the
 * caller fills the same structs with pointers to its own memory.
 */
#ifndef STOREFL_MESSAGES_H
#define STOREFL_MESSAGES_H

#include <stddef.h>
#include <stdint.h>

#define STOREFL_PROTOCOL_VERSION 1

#define STOREFL_MAX_TENSORS 32   /* tensors in one model or update */
#define STOREFL_MAX_DIMS 4       /* rank of a tensor */
#define STOREFL_MAX_ID_LEN 64    /* store ids: [A-Za-z0-9._-]{1,64} */
#define STOREFL_DIGEST_LEN 32    /* SHA-256 */
#define STOREFL_MAX_PARTICIPANTS 4096 /* ids listed in one ledger entry */
#define STOREFL_MAX_SCALE_BITS 60     /* finest fixed-point grid, 2^-60 (round scale_bits) */

/* Element encodings, numbered by their RFC 8746 typed-array tag. */
typedef enum storefl_dtype {
  STOREFL_DTYPE_F32 = 85, /* float32 little-endian */
  STOREFL_DTYPE_F16 = 84, /* IEEE binary16 little-endian */
  STOREFL_DTYPE_I8 = 72,  /* sint8, value = q * scale */
} storefl_dtype;

/* A string view: not NUL-terminated. */
typedef struct storefl_str {
  const char *ptr;
  size_t len;
} storefl_str;

/* A named tensor. data holds numel(shape) elements of dtype, little-endian, possibly unaligned:
 * read with memcpy or the helpers in codec.h. */
typedef struct storefl_tensor {
  storefl_str name;
  uint32_t ndim;
  uint64_t shape[STOREFL_MAX_DIMS];
  storefl_dtype dtype;
  float scale; /* I8 only (> 0, finite); ignored otherwise */
  const uint8_t *data;
  size_t nbytes;
} storefl_tensor;

typedef enum storefl_privacy_mode {
  STOREFL_PRIVACY_LOCAL = 1,   /* agent adds noise sigma*C before upload */
  STOREFL_PRIVACY_CENTRAL = 2, /* agent clips; aggregator adds noise to the sum */
} storefl_privacy_mode;

/* GET /v1/model */
typedef struct storefl_model_msg {
  uint64_t model_version;
  uint8_t digest[STOREFL_DIGEST_LEN]; /* SHA-256 over the tensors' names, shapes and f32 bytes */
  storefl_str arch;                   /* architecture id, e.g. "wide-deep-v1" */
  uint32_t n_tensors;
  storefl_tensor tensors[STOREFL_MAX_TENSORS];
} storefl_model_msg;

typedef enum storefl_round_state {
  STOREFL_ROUND_OPEN = 1,
  STOREFL_ROUND_CLOSED = 2,
  STOREFL_ROUND_ABANDONED = 3,
  STOREFL_ROUND_IDLE = 4, /* no round open: campaign finished or not started */
} storefl_round_state;

/* GET /v1/round (Observe) */
typedef struct storefl_round_msg {
  uint64_t round;
  storefl_round_state state;
  uint64_t model_version;             /* base model an update must start from */
  uint8_t model_digest[STOREFL_DIGEST_LEN];
  int64_t deadline_unix_ms;
  double participation_q;             /* stores self-select with probability q (1 = all) */
  storefl_privacy_mode mode;
  double clip_norm;                   /* C */
  double noise_multiplier;            /* sigma */
  double delta;                       /* delta of the (epsilon, delta) accounting */
  uint32_t min_participants, target_participants;
  uint32_t local_steps;
  double local_lr;
  storefl_dtype upload_dtype;         /* encoding the aggregator asks for */
  uint64_t max_upload_bytes;
  /* Grid of the released values, step 2^-scale_bits (1..60). In local mode the agent clips, rounds
   * to this grid and adds discrete-Gaussian noise in grid units (storefl_dp_privatize_local), so
   * every value it sends is an exact multiple of the step; the aggregator's accumulator grid is at
   * least as fine, so it sums them exactly. In central mode: the accumulator's own grid. */
  uint32_t scale_bits;
} storefl_round_msg;

/* POST /v1/update */
typedef struct storefl_update_msg {
  storefl_str store_id;               /* must equal the DTLS identity, else 4.03 */
  uint64_t round;
  uint64_t base_model_version;        /* else 4.09 */
  uint64_t num_examples;              /* weight, capped by the aggregator */
  storefl_privacy_mode mode;
  double clip_norm;                   /* C the agent clipped to */
  double noise_multiplier;            /* sigma the agent added (local mode), 0 in central mode */
  uint32_t n_tensors;
  storefl_tensor tensors[STOREFL_MAX_TENSORS]; /* the update delta, same names/shapes as the model */
} storefl_update_msg;

/* Response to POST /v1/update (2.04) */
typedef struct storefl_receipt_msg {
  storefl_str store_id;
  uint64_t round;
  uint8_t update_digest[STOREFL_DIGEST_LEN]; /* SHA-256 of the update body as received */
  int64_t accepted_unix_ms;
  uint32_t participants_so_far;
  uint8_t duplicate;                  /* 1 if this (store, round) had already been accepted */
} storefl_receipt_msg;

/* Body of every 4.xx / 5.xx response */
typedef struct storefl_error_msg {
  uint32_t coap_code;                 /* e.g. 403 */
  storefl_str reason;                 /* stable machine-readable reason, e.g. "budget_exceeded" */
  storefl_str detail;                 /* human-readable, may be empty */
  uint32_t max_age_s;                 /* retry hint for 5.03, 0 if none */
} storefl_error_msg;

/* GET /v1/status */
typedef struct storefl_status_msg {
  uint64_t round;
  storefl_round_state state;
  uint64_t model_version;
  uint32_t participants_so_far;
  uint32_t sessions;
  storefl_str health;                 /* "ok", "degraded: ..." */
} storefl_status_msg;

/* One store's cumulative privacy spend after a round. */
typedef struct storefl_store_epsilon {
  storefl_str store_id;
  double epsilon;
} storefl_store_epsilon;

/* One entry of the aggregator's audit ledger. The entry hash is SHA-256 over the canonical CBOR
 * encoding of every field but entry_hash and signature; the signature is ECDSA P-256 over
 * entry_hash (DER). */
typedef struct storefl_ledger_entry {
  uint64_t index;                     /* 0, 1, 2, ... */
  uint64_t round;
  storefl_privacy_mode mode;
  double participation_q;             /* q claimed for amplification (1 when not claimed) */
  double noise_multiplier;
  double clip_norm;
  double delta;
  int64_t closed_unix_ms;
  uint8_t model_digest[STOREFL_DIGEST_LEN];
  uint8_t prev_hash[STOREFL_DIGEST_LEN];  /* zeros for index 0 */
  uint32_t n_participants;
  const storefl_str *participants;        /* n_participants ids, sorted */
  uint32_t n_epsilons;
  const storefl_store_epsilon *epsilons;  /* cumulative epsilon per store, sorted by id */
  uint8_t entry_hash[STOREFL_DIGEST_LEN];
  const uint8_t *signature;
  size_t signature_len;
} storefl_ledger_entry;

#endif
