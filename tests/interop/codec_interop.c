/*
 * C side of the cbor2 interoperability test (tests/interop/cbor2_interop.py).
 *   codec_interop write DIR   writes every sample message (codec_samples.h) as DIR/<name>.cbor;
 *                             the python script decodes them with cbor2 and checks every field.
 *                             The same files are the fuzz seed corpora.
 *   codec_interop read DIR    decodes DIR/py_<name>.cbor, written by cbor2 from the same sample
 *                             values, and checks every field against codec_samples.h.
 * Exit status 0 when all checks pass, 1 otherwise (each failure printed on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_samples.h"

static int failures;

#define CHECK(cond)                                                                                          \
  do {                                                                                                       \
    if (!(cond)) {                                                                                           \
      fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, cur, #cond);                      \
      failures++;                                                                                            \
    }                                                                                                        \
  } while (0)

static const char *cur = "";

static int write_file(const char *dir, const char *name, const uint8_t *buf, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.cbor", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
    fprintf(stderr, "codec_interop: cannot write %s: %s\n", path, strerror(errno));
    return 1;
  }
  return 0;
}

/* Reads DIR/py_<name>.cbor into a fresh malloc'ed buffer (freed by the caller). */
static uint8_t *read_file(const char *dir, const char *name, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/py_%s.cbor", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "codec_interop: cannot open %s: %s\n", path, strerror(errno));
    exit(1);
  }
  uint8_t *buf = malloc(1 << 20);
  if (!buf)
    exit(1);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

static const storefl_dtype dts[3] = {STOREFL_DTYPE_F32, STOREFL_DTYPE_F16, STOREFL_DTYPE_I8};

static int cmd_write(const char *dir) {
  uint8_t buf[4096];
  size_t len;
  int rc = 0;
  char name[64];
  for (int d = 0; d < 3; d++) {
    storefl_model_msg m;
    sample_model(&m, dts[d]);
    if (storefl_model_encode(&m, buf, sizeof buf, &len))
      return 1;
    snprintf(name, sizeof name, "model_%s", storefl_dtype_name(dts[d]));
    rc |= write_file(dir, name, buf, len);
    storefl_update_msg u;
    sample_update(&u, dts[d]);
    if (storefl_update_encode(&u, buf, sizeof buf, &len))
      return 1;
    snprintf(name, sizeof name, "update_%s", storefl_dtype_name(dts[d]));
    rc |= write_file(dir, name, buf, len);
  }
  storefl_round_msg r;
  sample_round(&r);
  if (storefl_round_encode(&r, buf, sizeof buf, &len))
    return 1;
  rc |= write_file(dir, "round", buf, len);
  storefl_receipt_msg c;
  sample_receipt(&c);
  if (storefl_receipt_encode(&c, buf, sizeof buf, &len))
    return 1;
  rc |= write_file(dir, "receipt", buf, len);
  storefl_error_msg e;
  sample_error(&e);
  if (storefl_error_encode(&e, buf, sizeof buf, &len))
    return 1;
  rc |= write_file(dir, "error", buf, len);
  storefl_status_msg s;
  sample_status(&s);
  if (storefl_status_encode(&s, buf, sizeof buf, &len))
    return 1;
  rc |= write_file(dir, "status", buf, len);
  storefl_ledger_entry le;
  sample_ledger(&le);
  if (storefl_ledger_entry_encode(&le, buf, sizeof buf, &len))
    return 1;
  rc |= write_file(dir, "ledger", buf, len);
  if (storefl_ledger_entry_encode_signed_part(&le, buf, sizeof buf, &len))
    return 1;
  rc |= write_file(dir, "ledger_signed_part", buf, len);
  uint8_t h[32];
  if (storefl_ledger_entry_hash(&le, h))
    return 1;
  rc |= write_file(dir, "ledger_hash", h, 32);
  return rc;
}

static int str_is(storefl_str s, storefl_str want) {
  return s.len == want.len && (!s.len || memcmp(s.ptr, want.ptr, s.len) == 0);
}

/* Field-by-field comparison with the C sample; python quantizes int8 itself, so int8 values are
 * compared after dequantization within half a step (and the planted -128). */
static void check_tensors(const storefl_tensor *got, uint32_t n, storefl_dtype dt) {
  storefl_tensor want[4];
  CHECK(n == sample_tensors(want, dt));
  if (n != 4)
    return;
  for (uint32_t i = 0; i < 4; i++) {
    CHECK(str_is(got[i].name, want[i].name));
    CHECK(got[i].ndim == want[i].ndim);
    for (uint32_t k = 0; k < want[i].ndim && k < STOREFL_MAX_DIMS; k++)
      CHECK(got[i].shape[k] == want[i].shape[k]);
    CHECK(got[i].dtype == dt);
    CHECK(got[i].nbytes == want[i].nbytes);
    if (got[i].nbytes != want[i].nbytes)
      continue;
    if (dt != STOREFL_DTYPE_I8) {
      CHECK(!want[i].nbytes || memcmp(got[i].data, want[i].data, want[i].nbytes) == 0);
      continue;
    }
    const float *vals = i == 0 ? sample_w : i == 1 ? sample_b : sample_s;
    for (size_t k = 0; k < got[i].nbytes; k++) {
      float v = storefl_tensor_get(&got[i], k);
      if (i == 0 && k == 1)
        CHECK((int8_t)got[i].data[k] == -128);
      else
        CHECK(fabsf(v - vals[k]) <= got[i].scale * 0.5f + 1e-6f);
    }
  }
}

static int cmd_read(const char *dir) {
  size_t len;
  uint8_t *buf;
  char name[64];
  for (int d = 0; d < 3; d++) {
    storefl_model_msg m, w;
    snprintf(name, sizeof name, "model_%s", storefl_dtype_name(dts[d]));
    cur = name;
    buf = read_file(dir, name, &len);
    int rc = storefl_model_decode(buf, len, len, &m);
    CHECK(rc == STOREFL_OK);
    if (rc == STOREFL_OK) {
      sample_model(&w, dts[d]);
      CHECK(m.model_version == w.model_version);
      CHECK(memcmp(m.digest, w.digest, 32) == 0);
      CHECK(str_is(m.arch, w.arch));
      check_tensors(m.tensors, m.n_tensors, dts[d]);
    }
    free(buf);

    storefl_update_msg u, uw;
    snprintf(name, sizeof name, "update_%s", storefl_dtype_name(dts[d]));
    cur = name;
    buf = read_file(dir, name, &len);
    rc = storefl_update_decode(buf, len, len, &u);
    CHECK(rc == STOREFL_OK);
    if (rc == STOREFL_OK) {
      sample_update(&uw, dts[d]);
      CHECK(str_is(u.store_id, uw.store_id));
      CHECK(u.round == uw.round && u.base_model_version == uw.base_model_version);
      CHECK(u.num_examples == uw.num_examples && u.mode == uw.mode);
      CHECK(u.clip_norm == uw.clip_norm && u.noise_multiplier == uw.noise_multiplier);
      check_tensors(u.tensors, u.n_tensors, dts[d]);
    }
    free(buf);
  }

  storefl_round_msg r, rw;
  cur = "round";
  buf = read_file(dir, "round", &len);
  CHECK(storefl_round_decode(buf, len, len, &r) == STOREFL_OK);
  sample_round(&rw);
  CHECK(r.round == rw.round && r.state == rw.state && r.model_version == rw.model_version);
  CHECK(memcmp(r.model_digest, rw.model_digest, 32) == 0);
  CHECK(r.deadline_unix_ms == rw.deadline_unix_ms);
  CHECK(r.participation_q == rw.participation_q && r.mode == rw.mode && r.clip_norm == rw.clip_norm);
  CHECK(r.noise_multiplier == rw.noise_multiplier && r.delta == rw.delta && r.local_lr == rw.local_lr);
  CHECK(r.min_participants == rw.min_participants && r.target_participants == rw.target_participants);
  CHECK(r.local_steps == rw.local_steps && r.upload_dtype == rw.upload_dtype);
  CHECK(r.max_upload_bytes == rw.max_upload_bytes && r.scale_bits == rw.scale_bits);
  free(buf);

  storefl_receipt_msg c, cw;
  cur = "receipt";
  buf = read_file(dir, "receipt", &len);
  CHECK(storefl_receipt_decode(buf, len, len, &c) == STOREFL_OK);
  sample_receipt(&cw);
  CHECK(str_is(c.store_id, cw.store_id) && c.round == cw.round);
  CHECK(memcmp(c.update_digest, cw.update_digest, 32) == 0);
  CHECK(c.accepted_unix_ms == cw.accepted_unix_ms && c.participants_so_far == cw.participants_so_far);
  CHECK(c.duplicate == cw.duplicate);
  free(buf);

  storefl_error_msg e, ew;
  cur = "error";
  buf = read_file(dir, "error", &len);
  CHECK(storefl_error_decode(buf, len, len, &e) == STOREFL_OK);
  sample_error(&ew);
  CHECK(e.coap_code == ew.coap_code && str_is(e.reason, ew.reason) && str_is(e.detail, ew.detail));
  CHECK(e.max_age_s == ew.max_age_s);
  free(buf);

  storefl_status_msg s, sw;
  cur = "status";
  buf = read_file(dir, "status", &len);
  CHECK(storefl_status_decode(buf, len, len, &s) == STOREFL_OK);
  sample_status(&sw);
  CHECK(s.round == sw.round && s.state == sw.state && s.model_version == sw.model_version);
  CHECK(s.participants_so_far == sw.participants_so_far && s.sessions == sw.sessions);
  CHECK(str_is(s.health, sw.health));
  free(buf);

  storefl_ledger_entry l, lw;
  storefl_str parts[8];
  storefl_store_epsilon eps[8];
  cur = "ledger";
  buf = read_file(dir, "ledger", &len);
  CHECK(storefl_ledger_entry_decode(buf, len, len, &l, parts, 8, eps, 8) == STOREFL_OK);
  sample_ledger(&lw);
  CHECK(l.index == lw.index && l.round == lw.round && l.mode == lw.mode);
  CHECK(l.participation_q == lw.participation_q && l.noise_multiplier == lw.noise_multiplier);
  CHECK(l.clip_norm == lw.clip_norm && l.delta == lw.delta && l.closed_unix_ms == lw.closed_unix_ms);
  CHECK(memcmp(l.model_digest, lw.model_digest, 32) == 0 && memcmp(l.prev_hash, lw.prev_hash, 32) == 0);
  CHECK(l.n_participants == lw.n_participants && l.n_epsilons == lw.n_epsilons);
  for (uint32_t i = 0; i < l.n_participants && i < lw.n_participants; i++)
    CHECK(str_is(l.participants[i], lw.participants[i]));
  for (uint32_t i = 0; i < l.n_epsilons && i < lw.n_epsilons; i++)
    CHECK(str_is(l.epsilons[i].store_id, lw.epsilons[i].store_id) &&
          l.epsilons[i].epsilon == lw.epsilons[i].epsilon);
  /* python computed entry_hash itself, as SHA-256 over its own encoding of keys 0..12 */
  uint8_t h[32];
  CHECK(storefl_ledger_entry_hash(&l, h) == STOREFL_OK);
  CHECK(memcmp(h, l.entry_hash, 32) == 0);
  CHECK(l.signature_len == lw.signature_len && memcmp(l.signature, lw.signature, lw.signature_len) == 0);
  free(buf);

  /* messages the C decoder must refuse, written by python, each with its code */
  static const struct {
    const char *name;
    int want;
  } bad[] = {{"bad_nan_update", STOREFL_ERR_NONFINITE},
             {"bad_version_status", STOREFL_ERR_FORMAT},
             {"bad_tag_update", STOREFL_ERR_FORMAT},
             {"bad_shape_update", STOREFL_ERR_INVALID},
             {"bad_unknown_key_receipt", STOREFL_ERR_INVALID}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cur = bad[i].name;
    buf = read_file(dir, bad[i].name, &len);
    int rc;
    if (strstr(bad[i].name, "update")) {
      storefl_update_msg bu;
      rc = storefl_update_decode(buf, len, len, &bu);
    } else if (strstr(bad[i].name, "status")) {
      storefl_status_msg bs;
      rc = storefl_status_decode(buf, len, len, &bs);
    } else {
      storefl_receipt_msg br;
      rc = storefl_receipt_decode(buf, len, len, &br);
    }
    if (rc != bad[i].want)
      fprintf(stderr, "%s: got %s, want %s\n", bad[i].name, storefl_strerror(rc),
              storefl_strerror(bad[i].want));
    CHECK(rc == bad[i].want);
    free(buf);
  }
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: codec_interop write|read DIR\n");
    return 2;
  }
  if (!strcmp(argv[1], "write"))
    return cmd_write(argv[2]);
  if (!strcmp(argv[1], "read")) {
    int rc = cmd_read(argv[2]);
    if (!rc)
      printf("codec_interop: all python-encoded messages decoded and matched field by field\n");
    return rc;
  }
  fprintf(stderr, "usage: codec_interop write|read DIR\n");
  return 2;
}
