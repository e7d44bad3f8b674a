/* Fuzzes the aggregator's POST /v1/update handler with arbitrary bodies. Input: byte 0 selects the
 * authenticated identity (low 2 bits: store-000..003) and, with bit 7, a wrong content format; the
 * rest is the body. Invariant checked beyond memory safety: a rejection changes nothing (the round's
 * participant count only moves on 2.04). The seeds (corpus/fuzz_update_handler) are valid updates
 * for the model below, made by tests/fuzz/gen_update_seeds.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/agg_service.h"
#include "storefl/log.h"

static storefl_agg *g_agg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  storefl_log_set_level(STOREFL_LOG_OFF);
  storefl_agg_config c;
  storefl_agg_config_defaults(&c);
  /* In-memory database: the handler's SQL paths run, without an fsync per accepted input. */
  snprintf(c.db_path, sizeof c.db_path, ":memory:");
  c.n_tensors = 2;
  memcpy(c.tensors[0].name, "w", 2);
  c.tensors[0].ndim = 2;
  c.tensors[0].shape[0] = 4;
  c.tensors[0].shape[1] = 4;
  memcpy(c.tensors[1].name, "b", 2);
  c.tensors[1].ndim = 1;
  c.tensors[1].shape[0] = 4;
  c.min_participants = 1;
  c.target_participants = 3; /* rounds close now and then: the close path is fuzzed too */
  c.max_participants = 4;
  c.mode = STOREFL_PRIVACY_LOCAL;
  c.noise_multiplier = 0.5;
  c.max_upload_bytes = 4096;
  if (storefl_agg_open(&c, NULL, &g_agg) != 0)
    abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  char id[16];
  snprintf(id, sizeof id, "store-%03d", data[0] & 3);
  int cf = (data[0] & 0x80) ? 0 : STOREFL_COAP_CONTENT_CBOR;
  storefl_round_msg before, after;
  uint32_t n0 = 0, n1 = 0;
  storefl_agg_round_info(g_agg, &before, &n0);
  storefl_agg_response resp;
  int rc = storefl_agg_handle_update(g_agg, id, cf, data + 1, size - 1, &resp);
  if ((rc == 0) != (resp.coap_code == 204))
    abort();
  if (resp.coap_code != 203 && resp.coap_code != 204 && (resp.coap_code < 400 || resp.body_len == 0))
    abort(); /* every error carries a CBOR body */
  storefl_agg_round_info(g_agg, &after, &n1);
  if (resp.coap_code != 204 && (after.round != before.round || n1 != n0))
    abort();
  storefl_agg_response_release(&resp);
  return 0;
}
