/* The aggregator's service logic on a real SQLite file: 50 stores x 3 rounds against an independent
 * reference, shuffled orders, SIGKILLed children, every rejection code, deadlines, hooks. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "agg_testutil.h"
#include "cmd_rounds.h"
#include "storefl/agg_service.h"
#include "storefl/budget.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/ledger.h"
#include "storefl/log.h"
#include "storefl/model.h"

#define NSTORES 50
#define NROUNDS 3

static int64_t g_now = 1700000000000;
static int64_t fake_now(void *ctx) {
  (void)ctx;
  return g_now;
}
static const storefl_agg_options CLOCK = {fake_now, NULL, NULL, NULL, NULL, NULL, 0};

static storefl_dtype dtype_of(int s) {
  static const storefl_dtype d[3] = {STOREFL_DTYPE_I8, STOREFL_DTYPE_F16, STOREFL_DTYPE_F32};
  return d[s % 3];
}

/* All updates for NROUNDS rounds (base version of round r is r: one model per round). */
static tu_update g_up[NROUNDS][NSTORES];
static float g_ref[NROUNDS + 1][TU_TOTAL]; /* reference model after each round */

static int setup(void **state) {
  (void)state;
  storefl_log_set_level(STOREFL_LOG_ERROR);
  for (int r = 0; r < NROUNDS; r++)
    for (int s = 0; s < NSTORES; s++)
      if (tu_make_update(&g_up[r][s], s, (uint64_t)r + 1, (uint64_t)r + 1, dtype_of(s)))
        return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int r = 0; r < NROUNDS; r++)
    for (int s = 0; s < NSTORES; s++)
      free(g_up[r][s].body);
  return 0;
}

static int post(storefl_agg *a, const tu_update *u, storefl_receipt_msg *rec) {
  storefl_agg_response resp;
  storefl_agg_handle_update(a, u->store, STOREFL_COAP_CONTENT_CBOR, u->body, u->len, &resp);
  int code = resp.coap_code;
  if (code == 204 && rec) {
    static uint8_t keep[512];
    assert_true(resp.body_len <= sizeof keep);
    memcpy(keep, resp.body, resp.body_len);
    assert_int_equal(storefl_receipt_decode(keep, resp.body_len, sizeof keep, rec), STOREFL_OK);
  }
  storefl_agg_response_release(&resp);
  return code;
}

static void shuffle(int *p, int n, uint64_t seed) {
  for (int i = 0; i < n; i++)
    p[i] = i;
  for (int i = n - 1; i > 0; i--) {
    seed = tu_mix(seed);
    int k = (int)(seed % (uint64_t)(i + 1)), t = p[i];
    p[i] = p[k];
    p[k] = t;
  }
}

/* Runs NROUNDS full rounds in an order given by seed; returns the digests after each round. */
static void run_campaign(uint64_t seed, uint8_t digests[NROUNDS][STOREFL_DIGEST_LEN], int check_reference) {
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  assert_int_equal(storefl_agg_model_numel(a), TU_TOTAL);
  if (check_reference)
    assert_int_equal(storefl_agg_model_copy(a, g_ref[0], TU_TOTAL, NULL, NULL), STOREFL_OK);
  for (int r = 0; r < NROUNDS; r++) {
    int order[NSTORES];
    shuffle(order, NSTORES, seed * 31 + (uint64_t)r);
    for (int j = 0; j < NSTORES; j++) {
      storefl_receipt_msg rec;
      assert_int_equal(post(a, &g_up[r][order[j]], &rec), 204);
      assert_int_equal(rec.participants_so_far, j + 1);
      assert_int_equal(rec.duplicate, 0);
    }
    static float got[TU_TOTAL];
    uint64_t version;
    assert_int_equal(storefl_agg_model_copy(a, got, TU_TOTAL, &version, digests[r]), STOREFL_OK);
    assert_int_equal(version, r + 2);
    if (check_reference) {
      tu_update *ups[NSTORES];
      for (int s = 0; s < NSTORES; s++)
        ups[s] = &g_up[r][s];
      memcpy(g_ref[r + 1], g_ref[r], sizeof g_ref[r]);
      assert_int_equal(
          tu_reference_round(g_ref[r + 1], ups, NSTORES, c.weight_cap, c.scale_bits, c.server_lr), 0);
      assert_memory_equal(got, g_ref[r + 1], sizeof got);
      assert_memory_not_equal(g_ref[r + 1], g_ref[r], sizeof got);
    }
  }
  storefl_agg_close(a);
  tu_rmdir(dir);
}

static uint8_t g_digests[NROUNDS][STOREFL_DIGEST_LEN];

static void test_50_stores_3_rounds_exact(void **state) {
  (void)state;
  run_campaign(1, g_digests, 1);
}

static void test_shuffled_orders_bit_identical(void **state) {
  (void)state;
  for (uint64_t seed = 2; seed < 5; seed++) {
    uint8_t d[NROUNDS][STOREFL_DIGEST_LEN];
    run_campaign(seed, d, 0);
    assert_memory_equal(d, g_digests, sizeof d);
  }
}

/* Child: opens the service, posts round r's updates in the given order, reports each acknowledged
 * store index on the pipe. Runs until killed or done. */
static void child_run(const storefl_agg_config *c, int r, const int *order, int fd) {
  storefl_agg *a = NULL;
  if (storefl_agg_open(c, &CLOCK, &a) != STOREFL_OK)
    _exit(3);
  for (int j = 0; j < NSTORES; j++) {
    storefl_agg_response resp;
    storefl_agg_handle_update(a, g_up[r][order[j]].store, 60, g_up[r][order[j]].body, g_up[r][order[j]].len,
                              &resp);
    int code = resp.coap_code;
    storefl_agg_response_release(&resp);
    if (code == 204) {
      unsigned char b = (unsigned char)order[j];
      if (write(fd, &b, 1) != 1)
        _exit(4);
    }
  }
  storefl_agg_close(a);
  _exit(0);
}

static void test_sigkill_loses_no_acknowledged_update(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  uint64_t seed = 77;
  int kills = 0;
  for (int r = 0; r < NROUNDS; r++) {
    int order[NSTORES];
    shuffle(order, NSTORES, 1000 + (uint64_t)r);
    int acked[NSTORES] = {0};
    /* Kill the writer twice per round at random numbers of acknowledged updates (the last kill point
     * can land inside the round's close, which must be atomic). */
    for (int attempt = 0; attempt < 2; attempt++) {
      int fds[2];
      assert_int_equal(pipe(fds), 0);
      seed = tu_mix(seed);
      int stop_after = 1 + (int)(seed % NSTORES);
      pid_t pid = fork();
      assert_true(pid >= 0);
      if (pid == 0) {
        close(fds[0]);
        child_run(&c, r, order, fds[1]);
      }
      close(fds[1]);
      int seen = 0;
      unsigned char b;
      while (seen < stop_after && read(fds[0], &b, 1) == 1) {
        acked[b] = 1;
        seen++;
      }
      kill(pid, SIGKILL);
      int st;
      assert_int_equal(waitpid(pid, &st, 0), pid);
      kills += WIFSIGNALED(st);
      while (read(fds[0], &b, 1) == 1) /* acks written before the kill */
        acked[b] = 1;
      close(fds[0]);
    }
    /* Restart: every acknowledged update must still count (a retry is a duplicate), the rest are new. */
    storefl_agg *a = NULL;
    assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
    uint64_t version;
    assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &version, NULL), STOREFL_OK);
    if (version == (uint64_t)r + 2) {
      /* The round closed before the kill: every update is durable (retries are duplicates); at most one
       * per kill may have lost its ack. */
      int unacked = 0;
      for (int s = 0; s < NSTORES; s++) {
        storefl_receipt_msg rec;
        unacked += !acked[s];
        assert_int_equal(post(a, &g_up[r][s], &rec), 204);
        assert_int_equal(rec.duplicate, 1);
        assert_int_equal(rec.round, r + 1);
      }
      assert_true(unacked <= 2);
    } else {
      storefl_round_msg rm;
      uint32_t parts = 0;
      assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
      assert_int_equal(rm.round, r + 1);
      /* An update committed just before the kill, whose ack never left, may be durable too (the agent
       * would retry and get the same receipt): at most one per kill. */
      int durable_unacked = 0;
      for (int j = 0; j < NSTORES; j++) {
        storefl_receipt_msg rec;
        int s = order[j];
        assert_int_equal(post(a, &g_up[r][s], &rec), 204);
        if (acked[s])
          assert_int_equal(rec.duplicate, 1);
        else
          durable_unacked += rec.duplicate;
      }
      assert_true(durable_unacked <= 2);
    }
    uint8_t d[STOREFL_DIGEST_LEN];
    assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &version, d), STOREFL_OK);
    assert_int_equal(version, r + 2);
    assert_memory_equal(d, g_digests[r], sizeof d);
    storefl_agg_close(a);
  }
  assert_true(kills > 0);
  tu_rmdir(dir);
}

static int code_of(storefl_agg *a, const char *id, int cf, const uint8_t *body, size_t len,
                   const char *reason) {
  storefl_agg_response resp;
  storefl_agg_handle_update(a, id, cf, body, len, &resp);
  int code = resp.coap_code;
  if (code >= 400) {
    storefl_error_msg em;
    assert_int_equal(storefl_error_decode(resp.body, resp.body_len, resp.body_len, &em), STOREFL_OK);
    assert_int_equal(em.coap_code, code);
    if (reason) {
      assert_int_equal(em.reason.len, strlen(reason));
      assert_memory_equal(em.reason.ptr, reason, em.reason.len);
    }
  }
  storefl_agg_response_release(&resp);
  return code;
}

/* Re-encodes update u of store s with a modification applied to its decoded message. */
static size_t mutate(const tu_update *u, void (*fn)(storefl_update_msg *, void *), void *arg, uint8_t *out,
                     size_t cap) {
  storefl_update_msg m;
  static uint8_t copy[TU_TOTAL * 4 + 1024];
  memcpy(copy, u->body, u->len);
  assert_int_equal(storefl_update_decode(copy, u->len, u->len, &m), STOREFL_OK);
  fn(&m, arg);
  size_t len = 0;
  assert_int_equal(storefl_update_encode(&m, out, cap, &len), STOREFL_OK);
  return len;
}
static void set_round(storefl_update_msg *m, void *arg) {
  m->round = *(uint64_t *)arg;
}
static void set_base(storefl_update_msg *m, void *arg) {
  m->base_model_version = *(uint64_t *)arg;
}
static void drop_tensor(storefl_update_msg *m, void *arg) {
  (void)arg;
  m->n_tensors--;
}
static void swap_shape(storefl_update_msg *m, void *arg) {
  (void)arg;
  m->tensors[1].shape[0] = 12;
  m->tensors[1].shape[1] = 8;
}
static void scale_up(storefl_update_msg *m, void *arg) {
  m->tensors[0].scale *= *(float *)arg; /* int8 update: a norm over the clip bound */
}
static void set_mode(storefl_update_msg *m, void *arg) {
  (void)arg;
  m->mode = STOREFL_PRIVACY_LOCAL;
}
static void set_clip(storefl_update_msg *m, void *arg) {
  m->clip_norm = *(double *)arg;
}
static void local_noise(storefl_update_msg *m, void *arg) {
  m->mode = STOREFL_PRIVACY_LOCAL;
  m->noise_multiplier = *(double *)arg;
}
static void zero_examples(storefl_update_msg *m, void *arg) {
  (void)arg;
  m->num_examples = 0;
}

static int g_budget_calls;
static int budget_deny_store7(void *ctx, const char *id, const storefl_round_msg *r) {
  (void)ctx;
  (void)r;
  g_budget_calls++;
  return strcmp(id, "store-007") == 0 ? STOREFL_ERR_BUDGET : STOREFL_OK;
}

static void test_rejections_change_nothing(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.max_upload_bytes = 4096;
  storefl_agg_privacy priv = {NULL, budget_deny_store7, NULL, NULL};
  storefl_agg_options opt = CLOCK;
  opt.privacy = &priv;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &opt, &a), STOREFL_OK);
  static uint8_t buf[TU_TOTAL * 4 + 1024];
  const tu_update *u0 = &g_up[0][0];  /* int8, store-000 */
  const tu_update *f32 = &g_up[0][2]; /* float32 (4.5 KB): over the 4 KiB cap */
  assert_int_equal(code_of(a, NULL, 60, u0->body, u0->len, "no_identity"), 401);
  assert_int_equal(code_of(a, "store-000", 0, u0->body, u0->len, "content_format"), 415);
  assert_int_equal(code_of(a, "store-000", -1, u0->body, u0->len, "content_format"), 415);
  assert_int_equal(code_of(a, "store-002", 60, f32->body, f32->len, "too_large"), 413);
  assert_int_equal(code_of(a, "store-001", 60, u0->body, u0->len, "forged_identity"), 403);
  assert_int_equal(code_of(a, "store-000", 60, (const uint8_t *)"\xa1\x00\x01", 3, NULL), 400);
  assert_int_equal(code_of(a, "store-000", 60, u0->body, u0->len - 1, NULL), 400);
  uint64_t v = 2;
  size_t n = mutate(u0, set_round, &v, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "wrong_round"), 409);
  n = mutate(u0, set_base, &v, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "wrong_base_model"), 409);
  n = mutate(u0, drop_tensor, NULL, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "shape_mismatch"), 400);
  n = mutate(u0, swap_shape, NULL, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "shape_mismatch"), 400);
  float k = 2.0f;
  n = mutate(u0, scale_up, &k, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "norm_exceeds_clip"), 400);
  n = mutate(u0, set_mode, NULL, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "wrong_privacy_mode"), 400);
  double clip = 1.5;
  n = mutate(u0, set_clip, &clip, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "clip_norm_mismatch"), 400);
  n = mutate(u0, zero_examples, NULL, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "no_examples"), 400);
  /* NaN inside a float16 tensor: patch the first element of the first tensor of store-001's update */
  const tu_update *h = &g_up[0][1];
  memcpy(buf, h->body, h->len);
  storefl_update_msg m;
  assert_int_equal(storefl_update_decode(buf, h->len, h->len, &m), STOREFL_OK);
  uint8_t *p = (uint8_t *)m.tensors[0].data;
  p[0] = 0x00;
  p[1] = 0x7e; /* f16 NaN */
  assert_int_equal(code_of(a, "store-001", 60, buf, h->len, NULL), 400);
  p[1] = 0x7c; /* +Inf */
  assert_int_equal(code_of(a, "store-001", 60, buf, h->len, NULL), 400);
  /* budget hook: 4.03 */
  assert_int_equal(code_of(a, "store-007", 60, g_up[0][7].body, g_up[0][7].len, "budget_exceeded"), 403);
  uint32_t parts = 99;
  storefl_round_msg rm;
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(parts, 0);
  /* a valid update, then its duplicate: same receipt, counted once */
  storefl_receipt_msg r1, r2;
  assert_int_equal(post(a, u0, &r1), 204);
  g_now += 1234;
  assert_int_equal(post(a, u0, &r2), 204);
  assert_int_equal(r2.duplicate, 1);
  assert_int_equal(r1.participants_so_far, 1);
  assert_int_equal(r2.participants_so_far, 1);
  assert_int_equal(r1.accepted_unix_ms, r2.accepted_unix_ms);
  assert_memory_equal(r1.update_digest, r2.update_digest, STOREFL_DIGEST_LEN);
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(parts, 1);
  assert_true(g_budget_calls >= 2);
  storefl_agg_close(a);

  /* Replaying this database reproduces the round exactly as if the rejected uploads never happened:
   * finish round 1 with the other int8/f16 stores and compare with a reference. */
  /* The edited cap applies from the next round: round 1 keeps the 4 KiB it opened with. */
  c.max_upload_bytes = 8u << 20;
  assert_int_equal(storefl_agg_open(&c, &opt, &a), STOREFL_OK);
  static float theta[TU_TOTAL], got[TU_TOTAL];
  assert_int_equal(storefl_agg_model_copy(a, theta, TU_TOTAL, NULL, NULL), STOREFL_OK);
  tu_update *ups[NSTORES];
  int nu = 0;
  ups[nu++] = &g_up[0][0];
  for (int s = 1; s < NSTORES; s++) {
    if (s == 7) /* over budget */
      continue;
    if (dtype_of(s) == STOREFL_DTYPE_F32) {
      assert_int_equal(code_of(a, g_up[0][s].store, 60, g_up[0][s].body, g_up[0][s].len, "too_large"), 413);
      continue;
    }
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
    ups[nu++] = &g_up[0][s];
  }
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(parts, nu);
  assert_int_equal(rm.max_upload_bytes, 4096);
  g_now += c.duration_ms; /* deadline: closes with 49 >= min */
  assert_true(storefl_agg_tick(a) >= 0);
  uint64_t ver;
  assert_int_equal(storefl_agg_model_copy(a, got, TU_TOTAL, &ver, NULL), STOREFL_OK);
  assert_int_equal(ver, 2);
  assert_int_equal(tu_reference_round(theta, ups, nu, c.weight_cap, c.scale_bits, c.server_lr), 0);
  assert_memory_equal(got, theta, sizeof got);
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.max_upload_bytes, 8u << 20); /* round 2: the edited value */
  /* a retry of a round-1 upload after the round closed still gets its receipt */
  assert_int_equal(post(a, u0, &r2), 204);
  assert_int_equal(r2.duplicate, 1);
  assert_int_equal(r2.round, 1);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

static void test_get_handlers(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  storefl_agg_response resp;
  assert_int_equal(storefl_agg_handle_model(a, NULL, 0, &resp), STOREFL_OK);
  assert_int_equal(resp.coap_code, 205);
  assert_true(resp.has_etag);
  storefl_model_msg *mm = malloc(sizeof *mm);
  assert_non_null(mm);
  assert_int_equal(storefl_model_decode(resp.body, resp.body_len, resp.body_len, mm), STOREFL_OK);
  assert_int_equal(mm->model_version, 1);
  assert_int_equal(mm->n_tensors, TU_NT);
  assert_memory_equal(mm->digest, resp.etag, STOREFL_DIGEST_LEN);
  uint8_t d[STOREFL_DIGEST_LEN];
  assert_int_equal(storefl_model_digest(mm->tensors, mm->n_tensors, d), STOREFL_OK);
  assert_memory_equal(d, resp.etag, STOREFL_DIGEST_LEN);
  /* The old body stays valid while a new model is published. */
  storefl_agg_response old = resp;
  for (int s = 0; s < NSTORES; s++)
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  assert_int_equal(storefl_model_decode(old.body, old.body_len, old.body_len, mm), STOREFL_OK);
  assert_int_equal(mm->model_version, 1);
  /* conditional fetch: stale etag -> full body; current etag -> 2.03 without a body */
  assert_int_equal(storefl_agg_handle_model(a, old.etag, STOREFL_DIGEST_LEN, &resp), STOREFL_OK);
  assert_int_equal(resp.coap_code, 205);
  assert_memory_not_equal(resp.etag, old.etag, STOREFL_DIGEST_LEN);
  uint8_t cur[STOREFL_DIGEST_LEN];
  memcpy(cur, resp.etag, sizeof cur);
  storefl_agg_response_release(&resp);
  storefl_agg_response_release(&old);
  assert_int_equal(storefl_agg_handle_model(a, cur, sizeof cur, &resp), STOREFL_OK);
  assert_int_equal(resp.coap_code, 203);
  assert_int_equal(resp.body_len, 0);
  storefl_agg_response_release(&resp);
  free(mm);
  /* round */
  assert_int_equal(storefl_agg_handle_round(a, &resp), STOREFL_OK);
  assert_int_equal(resp.coap_code, 205);
  storefl_round_msg rm;
  assert_int_equal(storefl_round_decode(resp.body, resp.body_len, resp.body_len, &rm), STOREFL_OK);
  assert_int_equal(rm.round, 2);
  assert_int_equal(rm.state, STOREFL_ROUND_OPEN);
  assert_int_equal(rm.model_version, 2);
  assert_memory_equal(rm.model_digest, cur, STOREFL_DIGEST_LEN);
  assert_int_equal(rm.deadline_unix_ms, g_now + c.duration_ms);
  assert_int_equal(rm.target_participants, 50);
  storefl_agg_response_release(&resp);
  /* status */
  assert_int_equal(post(a, &g_up[1][3], NULL), 204);
  assert_int_equal(storefl_agg_handle_status(a, 7, &resp), STOREFL_OK);
  storefl_status_msg sm;
  assert_int_equal(storefl_status_decode(resp.body, resp.body_len, resp.body_len, &sm), STOREFL_OK);
  assert_int_equal(sm.round, 2);
  assert_int_equal(sm.participants_so_far, 1);
  assert_int_equal(sm.sessions, 7);
  storefl_agg_response_release(&resp);
  storefl_agg_close(a);
  /* A restart with another model spec is refused rather than mixing models. */
  c.tensors[0].shape[1] = 8;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_ERR_INVALID);
  tu_rmdir(dir);
}

static void test_deadlines_extend_abandon_and_sampling(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.min_participants = 3;
  c.target_participants = 5;
  c.participation_q = 0.5; /* amplification claimed: closes on the deadline only */
  c.on_short = STOREFL_AGG_EXTEND;
  c.max_extensions = 1;
  c.total_rounds = 2;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  /* round 1: 2 updates < min 3 -> extended once, then abandoned; the model does not change */
  uint8_t d0[STOREFL_DIGEST_LEN], d1[STOREFL_DIGEST_LEN];
  uint64_t ver;
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, d0), STOREFL_OK);
  for (int s = 0; s < 2; s++)
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  g_now += c.duration_ms;
  assert_int_equal(storefl_agg_tick(a), c.duration_ms);
  storefl_round_msg rm;
  uint32_t parts;
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.round, 1);
  assert_int_equal(parts, 2);
  g_now += c.duration_ms;
  storefl_agg_tick(a);
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.round, 2);
  assert_int_equal(parts, 0);
  assert_int_equal(rm.model_version, 1);
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, d1), STOREFL_OK);
  assert_int_equal(ver, 1);
  assert_memory_equal(d0, d1, sizeof d0);
  /* a late upload for the abandoned round: 4.09 */
  assert_int_equal(code_of(a, "store-002", 60, g_up[0][2].body, g_up[0][2].len, "wrong_round"), 409);
  /* round 2 (base model 1): 6 updates > target 5, still open because q < 1; closes at the deadline */
  static tu_update r2[6];
  for (int s = 0; s < 6; s++)
    assert_int_equal(tu_make_update(&r2[s], s, 2, 1, dtype_of(s)), 0);
  for (int s = 0; s < 6; s++)
    assert_int_equal(post(a, &r2[s], NULL), 204);
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.state, STOREFL_ROUND_OPEN);
  assert_int_equal(parts, 6);
  g_now += c.duration_ms;
  assert_int_equal(storefl_agg_tick(a), -1); /* total_rounds = 2: idle afterwards */
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.state, STOREFL_ROUND_IDLE);
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, d1), STOREFL_OK);
  assert_int_equal(ver, 2);
  assert_int_equal(code_of(a, "store-007", 60, g_up[1][7].body, g_up[1][7].len, "wrong_round"), 409);
  storefl_agg_close(a);
  /* idle survives a restart */
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.state, STOREFL_ROUND_IDLE);
  storefl_agg_close(a);
  for (int s = 0; s < 6; s++)
    free(r2[s].body);
  tu_rmdir(dir);
}

static void test_local_mode_noise_floor(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.mode = STOREFL_PRIVACY_LOCAL;
  c.noise_multiplier = 0.5;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  static uint8_t buf[TU_TOTAL * 4 + 1024];
  double sigma = 0.25;
  size_t n = mutate(&g_up[0][0], local_noise, &sigma, buf, sizeof buf);
  assert_int_equal(code_of(a, "store-000", 60, buf, n, "insufficient_noise"), 400);
  sigma = 0.5;
  n = mutate(&g_up[0][0], local_noise, &sigma, buf, sizeof buf);
  storefl_agg_response resp;
  storefl_agg_handle_update(a, "store-000", 60, buf, n, &resp);
  assert_int_equal(resp.coap_code, 204);
  storefl_agg_response_release(&resp);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

/* Central mode with sigma > 0 and no hook: the built-in discrete Gaussian. The model must differ from
 * the noiseless reference by noise of the documented scale: per coordinate
 * lr * sigma * D / (W * 2^S), D = C (1 + tol) weight_cap 2^S + sqrt(d)/2. */
static void test_central_noise_builtin(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.noise_multiplier = 1.0;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  static float ref[TU_TOTAL], got[TU_TOTAL];
  assert_int_equal(storefl_agg_model_copy(a, ref, TU_TOTAL, NULL, NULL), STOREFL_OK);
  tu_update *ups[NSTORES];
  uint64_t W = 0;
  for (int s = 0; s < NSTORES; s++) {
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
    ups[s] = &g_up[0][s];
    W += g_up[0][s].num_examples < c.weight_cap ? g_up[0][s].num_examples : c.weight_cap;
  }
  assert_int_equal(storefl_agg_model_copy(a, got, TU_TOTAL, NULL, NULL), STOREFL_OK);
  assert_int_equal(tu_reference_round(ref, ups, NSTORES, c.weight_cap, c.scale_bits, c.server_lr), 0);
  double s1 = 0, s2 = 0;
  for (int i = 0; i < TU_TOTAL; i++) {
    double e = (double)got[i] - (double)ref[i];
    s1 += e;
    s2 += e * e;
  }
  double mean = s1 / TU_TOTAL, sd = sqrt(s2 / TU_TOTAL - mean * mean);
  double D =
      ldexp(c.clip_norm * (1 + c.clip_tolerance) * (double)c.weight_cap, c.scale_bits) + 0.5 * sqrt(TU_TOTAL);
  double expect = c.server_lr * c.noise_multiplier * D / ldexp((double)W, c.scale_bits);
  /* 1121 samples: the sample sd is within 5 standard errors (~1/sqrt(2n) = 2.1% each) of the truth */
  assert_true(fabs(sd / expect - 1.0) < 0.11);
  assert_true(fabs(mean) < 5 * expect / sqrt(TU_TOTAL));
  storefl_agg_close(a);
  tu_rmdir(dir);
}

/* Runs `rounds` with stdout captured into out (NUL-terminated). Returns the exit status. */
static int run_rounds_cmd(char **argv, int argc, char *out, size_t cap) {
  char path[] = "/tmp/storefl-rounds-out-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  int saved = dup(1);
  assert_true(saved >= 0);
  assert_true(dup2(fd, 1) >= 0);
  int rc = storefl_cmd_rounds(argc, argv);
  fflush(stdout);
  assert_true(dup2(saved, 1) >= 0);
  close(saved);
  ssize_t n = pread(fd, out, cap - 1, 0);
  assert_true(n >= 0);
  out[n] = '\0';
  close(fd);
  unlink(path);
  return rc;
}

static void test_rounds_command(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.target_participants = 3;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  for (int s = 0; s < 3; s++)
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  assert_int_equal(post(a, &g_up[1][4], NULL), 204); /* round 2 open with one update */
  uint8_t d[STOREFL_DIGEST_LEN];
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, NULL, d), STOREFL_OK);
  char hex[65];
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  static char out[16384];
  char *argv[] = {"rounds", "--db", c.db_path, "--json", NULL};
  /* while the service holds the database open (WAL readers do not block it) */
  assert_int_equal(run_rounds_cmd(argv, 4, out, sizeof out), 0);
  assert_non_null(strstr(out, "{\"round\":2,\"state\":\"open\",\"model_version\":2,\"participants\":1,"));
  assert_non_null(strstr(out, "{\"round\":1,\"state\":\"closed\",\"model_version\":1,\"participants\":3,"));
  assert_non_null(strstr(out, hex));
  assert_non_null(strstr(out, "\"open_round_updates\":1,"));
  storefl_agg_close(a);
  char *text[] = {"rounds", "--db", c.db_path, "--limit", "1", NULL};
  assert_int_equal(run_rounds_cmd(text, 5, out, sizeof out), 0);
  assert_non_null(strstr(out, "open"));
  assert_null(strstr(out, " closed "));
  char *help[] = {"rounds", "--help", NULL};
  assert_int_equal(run_rounds_cmd(help, 2, out, sizeof out), 0);
  assert_non_null(strstr(out, "EXIT STATUS"));
  char *bad[] = {"rounds", "--db", c.db_path, "--config", "x", NULL};
  assert_int_equal(run_rounds_cmd(bad, 5, out, sizeof out), 2);
  char missing[128];
  snprintf(missing, sizeof missing, "%s/none.db", dir);
  char *miss[] = {"rounds", "--db", missing, NULL};
  assert_int_equal(run_rounds_cmd(miss, 3, out, sizeof out), 1);
  assert_int_equal(access(missing, F_OK), -1); /* not created */
  tu_rmdir(dir);
}

/* A round keeps the parameters it opened with across a restart with an edited config (so its result is
 * bit-identical); the edited ones (grid, weight cap, server rate, clip) apply from the next round. */
static void test_round_keeps_its_parameters(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.target_participants = 10;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  static float theta[TU_TOTAL], got[TU_TOTAL];
  assert_int_equal(storefl_agg_model_copy(a, theta, TU_TOTAL, NULL, NULL), STOREFL_OK);
  tu_update *ups[10];
  for (int s = 0; s < 5; s++) {
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
    ups[s] = &g_up[0][s];
  }
  storefl_agg_close(a);
  storefl_agg_config old = c;
  c.scale_bits = 20;
  c.weight_cap = 300;
  c.server_lr = 0.25;
  c.target_participants = 8;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  storefl_round_msg rm;
  uint32_t parts;
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(parts, 5);
  assert_int_equal(rm.target_participants, 10);
  for (int s = 5; s < 10; s++) {
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
    ups[s] = &g_up[0][s];
  }
  assert_int_equal(storefl_agg_model_copy(a, got, TU_TOTAL, NULL, NULL), STOREFL_OK);
  assert_int_equal(tu_reference_round(theta, ups, 10, old.weight_cap, old.scale_bits, old.server_lr), 0);
  assert_memory_equal(got, theta, sizeof got);
  /* round 2 runs with the edited parameters */
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.round, 2);
  assert_int_equal(rm.target_participants, 8);
  tu_update *ups2[8];
  for (int s = 0; s < 8; s++) {
    assert_int_equal(post(a, &g_up[1][s], NULL), 204);
    ups2[s] = &g_up[1][s];
  }
  assert_int_equal(storefl_agg_model_copy(a, got, TU_TOTAL, NULL, NULL), STOREFL_OK);
  assert_int_equal(tu_reference_round(theta, ups2, 8, c.weight_cap, c.scale_bits, c.server_lr), 0);
  assert_memory_equal(got, theta, sizeof got);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

typedef struct thread_arg {
  storefl_agg *a;
  int first, step, ok;
} thread_arg;

static void *poster(void *p) {
  thread_arg *t = p;
  t->ok = 1;
  for (int s = t->first; s < NSTORES; s += t->step) {
    storefl_agg_response resp;
    storefl_agg_handle_update(t->a, g_up[0][s].store, 60, g_up[0][s].body, g_up[0][s].len, &resp);
    t->ok &= resp.coap_code == 204;
    storefl_agg_response_release(&resp);
    /* readers in between, as the transport's GETs would be */
    storefl_agg_handle_model(t->a, NULL, 0, &resp);
    t->ok &= resp.coap_code == 205;
    storefl_agg_response_release(&resp);
    storefl_agg_handle_status(t->a, 0, &resp);
    storefl_agg_response_release(&resp);
  }
  return NULL;
}

/* Four threads posting the 50 updates of round 1 concurrently: same model as the sequential run. */
static void test_concurrent_callers(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  pthread_t th[4];
  thread_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (thread_arg){a, i, 4, 0};
    assert_int_equal(pthread_create(&th[i], NULL, poster, &args[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_true(args[i].ok);
  }
  uint8_t d[STOREFL_DIGEST_LEN];
  uint64_t ver;
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, d), STOREFL_OK);
  assert_int_equal(ver, 2);
  assert_memory_equal(d, g_digests[0], sizeof d);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

typedef struct ledger_seen {
  int n;
  uint8_t digests[4][STOREFL_DIGEST_LEN];
  uint32_t parts[4];
} ledger_seen;

static int see_entry(void *ctx, const storefl_ledger_entry *e, const uint8_t *cbor, size_t len) {
  ledger_seen *l = ctx;
  (void)cbor;
  (void)len;
  if (l->n < 4) {
    memcpy(l->digests[l->n], e->model_digest, STOREFL_DIGEST_LEN);
    l->parts[l->n] = e->n_participants;
  }
  l->n++;
  return 0;
}

/* Built-in privacy: central noise, the signed ledger appended in the closing transaction, and the
 * per-store epsilon cap answered with 4.03 - all from the privacy module, configured by keys only. */
static void test_builtin_ledger_and_budget(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.noise_multiplier = 1.0;
  c.target_participants = 5;
  snprintf(c.signing_key, sizeof c.signing_key, "%s/aggregator.key", dir);
  /* a cap between one and two rounds of (q = 1, sigma = 1) */
  double rdp[STOREFL_BUDGET_ORDERS] = {0}, e1, e2;
  assert_int_equal(storefl_budget_add_round(rdp, 1.0, 1.0), STOREFL_OK);
  assert_int_equal(storefl_budget_epsilon(rdp, c.delta, &e1), STOREFL_OK);
  assert_int_equal(storefl_budget_add_round(rdp, 1.0, 1.0), STOREFL_OK);
  assert_int_equal(storefl_budget_epsilon(rdp, c.delta, &e2), STOREFL_OK);
  assert_true(e1 > 0 && e2 > e1);
  c.epsilon_cap = 0.5 * (e1 + e2);
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  uint8_t d[2][STOREFL_DIGEST_LEN];
  for (int s = 0; s < 5; s++)
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, NULL, d[0]), STOREFL_OK);
  /* round 2: store-000 already spent e1; one more round would take it past the cap */
  assert_int_equal(code_of(a, "store-000", 60, g_up[1][0].body, g_up[1][0].len, "budget_exceeded"), 403);
  for (int s = 5; s < 10; s++)
    assert_int_equal(post(a, &g_up[1][s], NULL), 204);
  uint64_t ver;
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, d[1]), STOREFL_OK);
  assert_int_equal(ver, 3);
  storefl_agg_close(a);
  /* the ledger verifies (chain, signatures, replayed epsilons) and records the served models */
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(c.db_path, &db), SQLITE_OK);
  storefl_signer *signer = NULL;
  assert_int_equal(storefl_signer_open(c.signing_key, &signer, NULL), STOREFL_OK);
  storefl_ledger_report rep;
  assert_int_equal(storefl_ledger_verify(db, signer, &rep), STOREFL_OK);
  assert_int_equal(rep.n_entries, 2);
  ledger_seen seen = {0};
  assert_int_equal(storefl_ledger_foreach(db, see_entry, &seen), STOREFL_OK);
  assert_int_equal(seen.n, 2);
  assert_memory_equal(seen.digests[0], d[0], STOREFL_DIGEST_LEN);
  assert_memory_equal(seen.digests[1], d[1], STOREFL_DIGEST_LEN);
  assert_int_equal(seen.parts[0], 5);
  assert_int_equal(seen.parts[1], 5);
  double eps;
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-000", c.delta, &eps), STOREFL_OK);
  assert_true(fabs(eps - e1) <= 1e-9 * e1);
  storefl_signer_free(signer);
  sqlite3_close(db);
  tu_rmdir(dir);
}

/* One ledger configuration: the built-in ledger charges the enrolled stores (storefl_agg_options.enrolled,
 * what serve passes from [ledger] enrolment or the PSK file) in a sampled round, selected or not, with
 * the amplified q; a store outside the list that never sent anything is not charged. */
static void test_builtin_ledger_charges_enrolled(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.noise_multiplier = 1.0;
  c.participation_q = 0.5; /* closes on its deadline only */
  snprintf(c.signing_key, sizeof c.signing_key, "%s/aggregator.key", dir);
  const char *enrolled[] = {"store-000", "store-001", "store-002", "store-009", "absent.store"};
  storefl_agg_options o = CLOCK;
  o.enrolled = enrolled;
  o.n_enrolled = 5;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &o, &a), STOREFL_OK);
  for (int s = 0; s < 3; s++)
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  g_now += c.duration_ms;
  storefl_agg_tick(a);
  storefl_agg_close(a);
  double rdp[STOREFL_BUDGET_ORDERS] = {0}, want;
  assert_int_equal(storefl_budget_add_round(rdp, 0.5, 1.0), STOREFL_OK);
  assert_int_equal(storefl_budget_epsilon(rdp, c.delta, &want), STOREFL_OK);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(c.db_path, &db), SQLITE_OK);
  const char *charged[] = {"store-000", "store-002", "store-009", "absent.store"};
  for (int i = 0; i < 4; i++) {
    double eps = -1;
    assert_int_equal(storefl_ledger_store_epsilon(db, charged[i], c.delta, &eps), STOREFL_OK);
    if (!(fabs(eps - want) <= 1e-9 * want))
      fail_msg("%s: epsilon %g, want %g (q = 0.5, sigma = 1, one round)", charged[i], eps, want);
  }
  double eps = -1;
  assert_int_equal(storefl_ledger_store_epsilon(db, "store-005", c.delta, &eps), STOREFL_OK);
  assert_true(eps == 0);
  sqlite3_close(db);
  /* An invalid id in the list is refused at open. */
  const char *bad[] = {"store-000", "no spaces"};
  o.enrolled = bad;
  o.n_enrolled = 2;
  assert_int_equal(storefl_agg_open(&c, &o, &a), STOREFL_ERR_INVALID);
  tu_rmdir(dir);
}

static void exec_sql(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* The database refuses one write (a trigger injects the failure): 5.03, the update is taken back out
 * of the sums, and the round still ends bit-identical to the uninterrupted run once it is re-sent. */
static void test_persist_failure_takes_update_back(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  exec_sql(c.db_path, "CREATE TRIGGER fail13 BEFORE INSERT ON updates WHEN NEW.store_id = 'store-013' "
                      "BEGIN SELECT RAISE(ABORT, 'injected'); END;");
  for (int s = 0; s < NSTORES; s++) {
    if (s == 13) {
      assert_int_equal(code_of(a, "store-013", 60, g_up[0][13].body, g_up[0][13].len, "storage"), 503);
      continue;
    }
    if (s == 20) {
      exec_sql(c.db_path, "DROP TRIGGER fail13;");
      assert_int_equal(post(a, &g_up[0][13], NULL), 204);
    }
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  }
  uint8_t d[STOREFL_DIGEST_LEN];
  uint64_t ver;
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, d), STOREFL_OK);
  assert_int_equal(ver, 2);
  assert_memory_equal(d, g_digests[0], sizeof d);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

typedef struct hook_ctx {
  int calls, fail;
  uint32_t n;
  char first[65], last[65];
} hook_ctx;

static int ledger_hook(void *ctx, sqlite3 *db, const storefl_agg_round_result *res) {
  hook_ctx *h = ctx;
  h->calls++;
  h->n = res->n_participants;
  for (uint32_t i = 1; i < res->n_participants; i++) {
    size_t l = res->participants[i - 1].len < res->participants[i].len ? res->participants[i - 1].len
                                                                       : res->participants[i].len;
    int c = memcmp(res->participants[i - 1].ptr, res->participants[i].ptr, l);
    if (c > 0 || (c == 0 && res->participants[i - 1].len >= res->participants[i].len))
      return STOREFL_ERR_INTERNAL; /* not sorted */
  }
  snprintf(h->first, sizeof h->first, "%.*s", (int)res->participants[0].len, res->participants[0].ptr);
  (void)db;
  return h->fail ? STOREFL_ERR_IO : STOREFL_OK;
}

static void test_ledger_hook_atomic(void **state) {
  (void)state;
  storefl_agg_config c;
  char dir[64];
  tu_config(&c, dir, sizeof dir);
  c.target_participants = 10;
  hook_ctx h = {0};
  h.fail = 1;
  storefl_agg_privacy priv = {&h, NULL, NULL, ledger_hook};
  storefl_agg_options opt = CLOCK;
  opt.privacy = &priv;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &opt, &a), STOREFL_OK);
  for (int s = 9; s >= 0; s--)
    assert_int_equal(post(a, &g_up[0][s], NULL), 204);
  /* the hook failed: nothing applied, the round is still open with its 10 updates */
  assert_int_equal(h.calls, 1);
  /* past the deadline with the close still failing: later uploads are not folded into it (5.03) */
  g_now += c.duration_ms;
  assert_int_equal(code_of(a, "store-011", 60, g_up[0][11].body, g_up[0][11].len, "round_closing"), 503);
  assert_int_equal(h.calls, 2);
  g_now -= c.duration_ms;
  storefl_round_msg rm;
  uint32_t parts;
  assert_int_equal(storefl_agg_round_info(a, &rm, &parts), STOREFL_OK);
  assert_int_equal(rm.round, 1);
  assert_int_equal(parts, 10);
  uint64_t ver;
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, NULL), STOREFL_OK);
  assert_int_equal(ver, 1);
  storefl_agg_close(a);
  /* after a restart the round is restored and closes at the deadline once the hook works */
  h.fail = 0;
  assert_int_equal(storefl_agg_open(&c, &opt, &a), STOREFL_OK);
  g_now += c.duration_ms;
  storefl_agg_tick(a);
  assert_int_equal(h.calls, 3);
  assert_int_equal(h.n, 10);
  assert_string_equal(h.first, "store-000");
  assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, NULL), STOREFL_OK);
  assert_int_equal(ver, 2);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

static void test_fedadam_deterministic_and_pruning(void **state) {
  (void)state;
  uint8_t d[2][STOREFL_DIGEST_LEN];
  for (int run = 0; run < 2; run++) {
    storefl_agg_config c;
    char dir[64];
    tu_config(&c, dir, sizeof dir);
    c.optimizer = STOREFL_AGG_FEDADAM;
    c.server_lr = 0.01;
    c.target_participants = 5;
    c.keep_models = 2;
    storefl_agg *a = NULL;
    assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
    static float before[TU_TOTAL], after[TU_TOTAL];
    for (int r = 0; r < NROUNDS; r++) {
      assert_int_equal(storefl_agg_model_copy(a, before, TU_TOTAL, NULL, NULL), STOREFL_OK);
      for (int j = 0; j < 5; j++) {
        int s = run ? 4 - j : j;
        static tu_update u;
        assert_int_equal(tu_make_update(&u, s, (uint64_t)r + 1, (uint64_t)r + 1, dtype_of(s)), 0);
        assert_int_equal(post(a, &u, NULL), 204);
        free(u.body);
      }
      assert_int_equal(storefl_agg_model_copy(a, after, TU_TOTAL, NULL, d[run]), STOREFL_OK);
      /* first Adam step moves each coordinate by about lr (m/sqrt(v) ~ +-1 for nonzero means) */
      double maxstep = 0;
      for (int i = 0; i < TU_TOTAL; i++)
        maxstep = fmax(maxstep, fabs((double)after[i] - before[i]));
      assert_true(maxstep > 0.001 && maxstep < 0.1);
    }
    storefl_agg_close(a);
    /* restart restores the moments: reopening works and the model is the newest */
    assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
    uint64_t ver;
    uint8_t dd[STOREFL_DIGEST_LEN];
    assert_int_equal(storefl_agg_model_copy(a, NULL, TU_TOTAL, &ver, dd), STOREFL_OK);
    assert_int_equal(ver, 4);
    assert_memory_equal(dd, d[run], sizeof dd);
    storefl_agg_close(a);
    /* pruning: only keep_models = 2 versions are left */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(c.db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), MIN(version) FROM models", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    assert_int_equal(sqlite3_column_int(st, 1), 3);
    sqlite3_finalize(st);
    /* bodies of closed rounds are dropped, receipts stay */
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*), COUNT(body) FROM updates", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 15);
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    tu_rmdir(dir);
  }
  assert_memory_equal(d[0], d[1], STOREFL_DIGEST_LEN);
}

/* The local-mode grid: auto puts the agents' noise at 16..32 grid units for i8, 64..128 for f16 and
 * 2^16..2^17 for f32, never finer than the accumulator; explicit values are checked against the
 * accumulator grid and the upload encoding; the round message announces it. */
static void test_local_grid_config(void **state) {
  (void)state;
  storefl_agg_config c;
  char err[256] = "";
  struct {
    const char *ini;
    int rc;
    uint32_t bits;
  } cases[] = {
      {"[privacy]\nnoise_multiplier = 1\nclip_norm = 1\n", STOREFL_OK, 4},               /* i8: s = 16 */
      {"[privacy]\nnoise_multiplier = 1\nclip_norm = 0.1\n", STOREFL_OK, 8},             /* s = 25.6 */
      {"[privacy]\nnoise_multiplier = 3\nclip_norm = 1\n", STOREFL_OK, 3},               /* s = 24 */
      {"[round]\nupload_dtype = f16\n[privacy]\nnoise_multiplier = 1\n", STOREFL_OK, 6}, /* s = 64 */
      {"[round]\nupload_dtype = f32\n[privacy]\nnoise_multiplier = 1\n", STOREFL_OK, 16},
      {"[round]\nupload_dtype = f32\n[privacy]\nnoise_multiplier = 1\n[aggregation]\nscale_bits = 12\n",
       STOREFL_OK, 12},                                     /* never finer than the accumulator */
      {"[privacy]\nnoise_multiplier = 0\n", STOREFL_OK, 8}, /* no noise: as if sigma = 1/16 */
      {"[privacy]\nnoise_multiplier = 1\nlocal_scale_bits = 2\n", STOREFL_OK, 2},
      {"[privacy]\nnoise_multiplier = 1\nlocal_scale_bits = 6\n", STOREFL_ERR_INVALID, 0}, /* i8: s = 64 */
      {"[round]\nupload_dtype = f32\n[privacy]\nlocal_scale_bits = 30\n", STOREFL_ERR_INVALID, 0},
      {"[privacy]\nlocal_scale_bits = 0\n", STOREFL_ERR_INVALID, 0},
      {"[privacy]\nlocal_scale_bits = auto\n", STOREFL_OK, 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char ini[512];
    snprintf(ini, sizeof ini, "[model]\ntensor = a:4\n%s", cases[i].ini);
    storefl_agg_config_defaults(&c);
    int rc = storefl_agg_config_load_string(ini, &c, err, sizeof err);
    if (rc != cases[i].rc)
      fail_msg("case %zu: rc %d (%s)", i, rc, err);
    if (rc == STOREFL_OK)
      assert_int_equal(storefl_agg_config_local_scale_bits(&c), cases[i].bits);
  }
  /* The announcement carries it, and a restored round's parameters keep it. */
  char dir[] = "/tmp/storefl-aggloc-XXXXXX";
  assert_non_null(mkdtemp(dir));
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string("[model]\ntensor = a:4\n[privacy]\nnoise_multiplier = 2\n"
                                                  "clip_norm = 0.5\n",
                                                  &c, err, sizeof err),
                   STOREFL_OK);
  snprintf(c.db_path, sizeof c.db_path, "%s/agg.db", dir);
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  storefl_agg_response resp;
  assert_int_equal(storefl_agg_handle_round(a, &resp), STOREFL_OK);
  storefl_round_msg rm;
  assert_int_equal(storefl_round_decode(resp.body, resp.body_len, resp.body_len, &rm), STOREFL_OK);
  assert_int_equal(rm.mode, STOREFL_PRIVACY_LOCAL);
  assert_int_equal(rm.scale_bits, 4); /* sigma C = 1: s = 16 */
  storefl_agg_response_release(&resp);
  char params[4096];
  assert_int_equal(storefl_agg_config_round_params(&c, params, sizeof params), STOREFL_OK);
  assert_non_null(strstr(params, "local_scale_bits = 4\n"));
  storefl_agg_close(a);
  tu_rmdir(dir);
}

/* [ledger] is the one place for the ledger's key, cap and enrolment; the old [privacy] spelling is
 * refused with a message that names the new key. */
static void test_ledger_config_section(void **state) {
  (void)state;
  storefl_agg_config c;
  char err[256] = "";
  storefl_agg_config_defaults(&c);
  assert_int_equal(
      storefl_agg_config_load_string("[model]\ntensor = a:4\n[ledger]\nkey = k.pem\nepsilon_cap = 3\n"
                                     "enrolment = stores.txt\n",
                                     &c, err, sizeof err),
      STOREFL_OK);
  assert_string_equal(c.signing_key, "k.pem");
  assert_true(c.epsilon_cap == 3.0);
  assert_string_equal(c.enrolment, "stores.txt");
  const char *old[] = {"[privacy]\nsigning_key = k.pem\n", "[privacy]\nepsilon_cap = 3\n"};
  const char *want[] = {"[ledger] key", "[ledger] epsilon_cap"};
  for (int i = 0; i < 2; i++) {
    char ini[256];
    snprintf(ini, sizeof ini, "[model]\ntensor = a:4\n%s", old[i]);
    storefl_agg_config_defaults(&c);
    assert_int_equal(storefl_agg_config_load_string(ini, &c, err, sizeof err), STOREFL_ERR_INVALID);
    if (!strstr(err, want[i]))
      fail_msg("message '%s' does not name %s", err, want[i]);
  }
  const char *refused[] = {"[ledger]\nepsilon_cap = 3\n", "[ledger]\nenrolment = s.txt\n",
                           "[ledger]\ntypo = 1\n", "[ledger]\nkey = k\nepsilon_cap = -1\n"};
  for (int i = 0; i < 4; i++) {
    char ini[256];
    snprintf(ini, sizeof ini, "[model]\ntensor = a:4\n%s", refused[i]);
    storefl_agg_config_defaults(&c);
    if (storefl_agg_config_load_string(ini, &c, err, sizeof err) != STOREFL_ERR_INVALID)
      fail_msg("accepted: %s", refused[i]);
  }
}

static void test_config_file(void **state) {
  (void)state;
  storefl_agg_config c;
  char err[256] = "";
  storefl_agg_config_defaults(&c);
  assert_int_equal(
      storefl_agg_config_load_string("[model]\ntensor = a:4x4\ntensor = b:3\n[round]\n"
                                     "min_participants = 1\ntarget_participants = 3\n"
                                     "duration_s = 1.5\non_short = abandon\n[server]\nlisten = x\n",
                                     &c, err, sizeof err),
      STOREFL_OK);
  assert_int_equal(c.n_tensors, 2);
  assert_int_equal(c.tensors[0].shape[1], 4);
  assert_int_equal(c.duration_ms, 1500);
  assert_int_equal(c.on_short, STOREFL_AGG_ABANDON);
  storefl_agg_config_defaults(&c);
  assert_int_equal(
      storefl_agg_config_load_string("[model]\ntensor = a:4\n[round]\ntypo = 1\n", &c, err, sizeof err),
      STOREFL_ERR_INVALID);
  assert_non_null(strstr(err, "line 4"));
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string("[model]\ntensor = a:0\n", &c, err, sizeof err),
                   STOREFL_ERR_INVALID);
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string("[model]\ntensor = a:4\n[round]\nmin_participants = 9\n"
                                                  "target_participants = 3\n",
                                                  &c, err, sizeof err),
                   STOREFL_ERR_INVALID);
  /* a grid so fine that a valid update could overflow is refused */
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string("[model]\ntensor = a:4\n[aggregation]\nscale_bits = 40\n",
                                                  &c, err, sizeof err),
                   STOREFL_ERR_INVALID);
  /* an architecture without a built-in definition needs its tensors */
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load_string("[model]\narch = other\n", &c, err, sizeof err),
                   STOREFL_ERR_INVALID);
  /* the shipped example config loads, and its wide-deep-v1 model comes from the model module's initializer */
  const char *src = getenv("STOREFL_SOURCE_DIR");
  assert_non_null(src);
  char path[1024];
  snprintf(path, sizeof path, "%s/configs/aggregator.ini", src);
  storefl_agg_config_defaults(&c);
  assert_int_equal(storefl_agg_config_load(path, &c, err, sizeof err), STOREFL_OK);
  assert_true(c.init_from_model);
  assert_int_equal(c.n_tensors, STOREFL_MODEL_NPARAMS);
  char dir[] = "/tmp/storefl-aggcfg-XXXXXX";
  assert_non_null(mkdtemp(dir));
  snprintf(c.db_path, sizeof c.db_path, "%s/agg.db", dir);
  assert_true(c.signing_key[0] && c.epsilon_cap > 0); /* the example enables the ledger and a cap */
  snprintf(c.signing_key, sizeof c.signing_key, "%s/aggregator.key", dir);
  c.init_seed = 5;
  storefl_agg *a = NULL;
  assert_int_equal(storefl_agg_open(&c, &CLOCK, &a), STOREFL_OK);
  storefl_model_config mc = {c.model_buckets, c.model_dim, c.model_hidden};
  storefl_model *m = NULL;
  assert_int_equal(storefl_model_create(&mc, &m), STOREFL_OK);
  storefl_model_init(m, 5);
  assert_int_equal(storefl_agg_model_numel(a), m->numel);
  float *p = malloc(m->numel * sizeof *p);
  assert_non_null(p);
  uint8_t d[STOREFL_DIGEST_LEN], d2[STOREFL_DIGEST_LEN];
  assert_int_equal(storefl_agg_model_copy(a, p, m->numel, NULL, d), STOREFL_OK);
  assert_memory_equal(p, m->block, m->numel * sizeof *p);
  assert_int_equal(storefl_model_sha256(m, d2), STOREFL_OK);
  assert_memory_equal(d, d2, sizeof d);
  free(p);
  storefl_model_free(m);
  storefl_agg_close(a);
  tu_rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_50_stores_3_rounds_exact),
      cmocka_unit_test(test_shuffled_orders_bit_identical),
      cmocka_unit_test(test_sigkill_loses_no_acknowledged_update),
      cmocka_unit_test(test_rejections_change_nothing),
      cmocka_unit_test(test_get_handlers),
      cmocka_unit_test(test_deadlines_extend_abandon_and_sampling),
      cmocka_unit_test(test_concurrent_callers),
      cmocka_unit_test(test_persist_failure_takes_update_back),
      cmocka_unit_test(test_local_mode_noise_floor),
      cmocka_unit_test(test_round_keeps_its_parameters),
      cmocka_unit_test(test_rounds_command),
      cmocka_unit_test(test_central_noise_builtin),
      cmocka_unit_test(test_builtin_ledger_and_budget),
      cmocka_unit_test(test_ledger_hook_atomic),
      cmocka_unit_test(test_fedadam_deterministic_and_pruning),
      cmocka_unit_test(test_config_file),
      cmocka_unit_test(test_local_grid_config),
      cmocka_unit_test(test_builtin_ledger_charges_enrolled),
      cmocka_unit_test(test_ledger_config_section),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
