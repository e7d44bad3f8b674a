/*
 * Load generator: N concurrent agents x R rounds against the real `storefl-aggregator serve`
 * (started here as a separate process on 127.0.0.1, its configuration and PSK table in a temporary
 * directory), every agent with its own DTLS 1.2 PSK session (own identity and random key) in one
 * process: the many-agent engine of agent/src/sim_engine.h. Prints one JSON object.
 *
 * Each round, every agent GETs /v1/round, then POSTs an update for that round and base model,
 * encoded by the agent's own encoder (storefl_agent_encode_update: int8 stochastic quantization by
 * default) with the shapes of the model the aggregator serves (default model: ~0.5 M parameters).
 * The update values are synthetic (a seeded pseudo-random delta of L2 norm C/2): this measures the
 * transport and the aggregator, not training (the scale campaign, storefl-agent simulate, trains
 * for real). The round closes on its target (q = 1, target = N); the next one opens on the new
 * model.
 *
 * Measured: handshake p50/p99; upload latency p50/p99 (first byte of the POST to the receipt);
 * sustained updates/s over the upload phases; the aggregator's peak RSS (VmHWM of its
 * /proc/PID/status) for N and for a smaller comparison run (--compare, default 100) to show it does
 * not grow with the number of participants; lost updates: every 2.04 receipt (not duplicate) must
 * be counted in its closed round (storefl-aggregator rounds --json) and every counted update must
 * have a receipt -- lost = receipts missing from the rounds, double = counted more than receipted.
 * Limit measured in the same run: raw Mbed TLS ChaCha20-Poly1305 throughput on 1 KiB records (the
 * negotiated suite); ratio = update payload MB/s sustained / that.
 *
 * Exit status 0 iff lost = double = 0 and every upload was acknowledged (--check also requires
 * every round to close with exactly N participants).
 *
 * --disconnect: each agent closes its session after each exchange (DTLS close_notify) and makes a new
 * handshake next round, so the aggregator holds at most ~U sessions instead of N.
 *
 * Usage: bench_load [--agents N] [--rounds R] [--compare N2] [--port P] [--inflight U]
 *                   [--handshakes H] [--dtype i8|f16|f32] [--small] [--disconnect] [--aggregator PATH]
 *                   [--agg-max-uploads M] [--block1] [--keep DIR]
 * --block1: lock-step Block1 (RFC 7959) uploads instead of Q-Block1 (RFC 9177, the agent's default).
 * --agg-max-uploads M: the aggregator accepts M block-wise uploads at once and answers 5.03 with
 * Max-Age 1 beyond; the agents retry the same body (the exit status then also requires retries).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <mbedtls/chachapoly.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchutil.h"
#include "net_agent.h"
#include "sim_engine.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/log.h"
#include "storefl/stats.h"

typedef struct opts {
  long agents, rounds, compare, port, inflight, handshakes;
  storefl_dtype dtype;
  int small;
  int disconnect;       /* agents close their session after each upload (re-handshake next round) */
  long agg_max_uploads; /* > 0: the aggregator's [server] max_uploads (5.03 + Max-Age 1 beyond it) */
  int block1;           /* plain Block1 (RFC 7959) instead of Q-Block1 */
  char aggregator[4000];
  const char *keep;
} opts;

static double chacha_mbps(void) {
  enum { REC = 1024, N = 20000 };
  static uint8_t in[REC], out[REC], tag[16], key[32], iv[12];
  memset(in, 0x5a, sizeof in);
  mbedtls_chachapoly_context c;
  mbedtls_chachapoly_init(&c);
  mbedtls_chachapoly_setkey(&c, key);
  double t0 = bench_now();
  for (int i = 0; i < N; i++) {
    iv[0] = (uint8_t)i;
    mbedtls_chachapoly_encrypt_and_tag(&c, REC, iv, iv, 13, in, out, tag);
  }
  double dt = bench_now() - t0;
  mbedtls_chachapoly_free(&c);
  return (double)REC * N / dt / 1e6;
}

/* ---- the aggregator process --------------------------------------------------------------------- */

typedef struct agg_proc {
  pid_t pid;
  char dir[256], ini[300], db[300], log[300];
} agg_proc;

static int write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0)
    return -1;
  size_t n = strlen(text);
  int ok = write(fd, text, n) == (ssize_t)n;
  return close(fd) == 0 && ok ? 0 : -1;
}

static int start_aggregator(const opts *o, long n, agg_proc *p, char (*ids)[16], uint8_t (*keys)[32]) {
  /* PSK table: one random key per store (mode 0600, as the aggregator requires). */
  size_t cap = (size_t)n * 100 + 64;
  char *tab = malloc(cap);
  if (!tab)
    return -1;
  size_t off = 0;
  mbedtls_ctr_drbg_context *drbg = NULL;
  if (storefl_agent_drbg_new(&drbg) != 0) {
    free(tab);
    return -1;
  }
  for (long i = 0; i < n; i++) {
    snprintf(ids[i], 16, "load-%05d", (int)((i + 1) % 100000));
    if (mbedtls_ctr_drbg_random(drbg, keys[i], 32) != 0) {
      storefl_agent_drbg_free(drbg);
      free(tab);
      return -1;
    }
    off += (size_t)snprintf(tab + off, cap - off, "%s ", ids[i]);
    for (int k = 0; k < 32; k++)
      off += (size_t)snprintf(tab + off, cap - off, "%02x", keys[i][k]);
    off += (size_t)snprintf(tab + off, cap - off, "\n");
  }
  storefl_agent_drbg_free(drbg);
  char path[400];
  snprintf(path, sizeof path, "%s/psk.keys", p->dir);
  int rc = write_file(path, tab, 0600);
  free(tab);
  if (rc)
    return -1;
  snprintf(p->ini, sizeof p->ini, "%s/aggregator.ini", p->dir);
  snprintf(p->db, sizeof p->db, "%s/aggregator.db", p->dir);
  snprintf(p->log, sizeof p->log, "%s/aggregator.log", p->dir);
  char ini[4096], busy[96] = "";
  if (o->agg_max_uploads > 0)
    snprintf(busy, sizeof busy, "max_uploads = %ld\nbusy_max_age_s = 1\n", o->agg_max_uploads);
  snprintf(
      ini, sizeof ini,
      "[storage]\ndb = %s\n[model]\narch = wide-deep-v1\n%s"
      "[round]\nmin_participants = %ld\ntarget_participants = %ld\nmax_participants = %ld\n"
      "duration_s = 3600\nparticipation_q = 1.0\ntotal_rounds = %ld\nupload_dtype = %s\n"
      "[privacy]\nmode = central\nclip_norm = 1.0\nnoise_multiplier = 0\n"
      "[server]\nlisten = 127.0.0.1:%ld\nmax_sessions = %ld\nidle_timeout_s = 3600\nmax_handshakes = %ld\n"
      "%s[dtls]\npsk_keys = %s\n[log]\nlevel = info\n",
      p->db, o->small ? "buckets = 4096\ndim = 16\nhidden = 32\n" : "", n, n, n, o->rounds,
      storefl_dtype_name(o->dtype), o->port, n + 64, o->handshakes > 128 ? o->handshakes : 128, busy, path);
  if (write_file(p->ini, ini, 0600))
    return -1;
  p->pid = fork();
  if (p->pid < 0)
    return -1;
  if (p->pid == 0) {
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execl(o->aggregator, o->aggregator, "serve", "--config", p->ini, (char *)NULL);
    _exit(127);
  }
  /* Wait for its "listening" line. */
  for (int t = 0; t < 300; t++) {
    FILE *f = fopen(p->log, "r");
    char line[1024];
    int up = 0;
    while (f && fgets(line, sizeof line, f))
      up |= strstr(line, "listening") != NULL;
    if (f)
      fclose(f);
    if (up)
      return 0;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
      p->pid = 0;
      return -1;
    }
    usleep(100000);
  }
  return -1;
}

static long vmhwm_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long v = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6))
      v = strtol(line + 6, NULL, 10);
  if (f)
    fclose(f);
  return v;
}

static void stop_aggregator(agg_proc *p) {
  if (p->pid <= 0)
    return;
  kill(p->pid, SIGTERM);
  for (int t = 0; t < 100; t++) {
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
      p->pid = 0;
      return;
    }
    usleep(100000);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  p->pid = 0;
}

/* Participants of every closed round, from `storefl-aggregator rounds --json --limit 0`. */
static int closed_rounds(const opts *o, const agg_proc *p, long *participants, long max_round) {
  char cmd[4500];
  snprintf(cmd, sizeof cmd, "'%s' rounds --db '%s' --json --limit 0", o->aggregator, p->db);
  FILE *f = popen(cmd, "r");
  if (!f)
    return -1;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  if (pclose(f) != 0)
    return -1;
  for (const char *q = buf; (q = strstr(q, "{\"round\":")) != NULL; q++) {
    long r = strtol(q + 9, NULL, 10);
    const char *stt = strstr(q, "\"state\":\"");
    const char *pp = strstr(q, "\"participants\":");
    if (!stt || !pp)
      break;
    if (r >= 1 && r <= max_round && !strncmp(stt + 9, "closed", 6))
      participants[r] = strtol(pp + 15, NULL, 10);
  }
  return 0;
}

/* ---- one run ------------------------------------------------------------------------------------- */

typedef struct run_ctx {
  storefl_sim *sim;
  int disconnect;
  char (*ids)[16];
  const storefl_model_msg *model;
  size_t numel;
  storefl_round_msg *rounds; /* per agent: the round it read */
  storefl_dtype dtype;
  mbedtls_ctr_drbg_context *drbg;
  float *delta;
  /* results */
  double *lat, *hs;
  size_t n_lat;
  long receipts, duplicates, failures, bad_receipts, round_errors, retried;
  uint64_t bytes_up;
  uint64_t cur_round;
  char first_error[200];
} run_ctx;

static void on_round(void *arg, size_t i, const storefl_sim_result *r) {
  run_ctx *c = arg;
  if (r->rc || r->resp->code != 205 ||
      storefl_round_decode(r->resp->body, r->resp->len, r->resp->len, &c->rounds[i]) != 0) {
    c->round_errors++;
    memset(&c->rounds[i], 0, sizeof c->rounds[i]);
  }
  if (c->disconnect)
    storefl_sim_disconnect(c->sim, i);
}

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int make_update(void *arg, size_t i, uint8_t **body, size_t *len) {
  run_ctx *c = arg;
  const storefl_round_msg *r = &c->rounds[i];
  if (r->round == 0 || r->state != STOREFL_ROUND_OPEN)
    return STOREFL_ERR_NOT_FOUND;
  uint64_t seed = (uint64_t)i * 1000003u + r->round;
  double ss = 0;
  for (size_t k = 0; k < c->numel; k++) {
    float v = (float)((double)(splitmix(&seed) >> 11) * (1.0 / 9007199254740992.0) - 0.5);
    c->delta[k] = v;
    ss += (double)v * v;
  }
  float scale = (float)(0.5 * r->clip_norm / sqrt(ss > 0 ? ss : 1));
  for (size_t k = 0; k < c->numel; k++)
    c->delta[k] *= scale;
  return storefl_agent_encode_update(c->model, c->delta, c->numel, c->ids[i], r, 100, c->dtype, c->drbg, body,
                                     len);
}

static void on_upload(void *arg, size_t i, const storefl_sim_result *r) {
  run_ctx *c = arg;
  if (r->rc || r->resp->code != 204) {
    c->failures++;
    if (!c->first_error[0]) {
      storefl_error_msg e;
      if (!r->rc && r->resp->len && storefl_error_decode(r->resp->body, r->resp->len, r->resp->len, &e) == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s: %d %.*s", c->ids[i], r->resp->code,
                 (int)e.reason.len, e.reason.ptr);
      else
        snprintf(c->first_error, sizeof c->first_error, "%s: %s (code %d)", c->ids[i],
                 storefl_strerror(r->rc), r->rc ? 0 : r->resp->code);
    }
    return;
  }
  storefl_receipt_msg m;
  if (storefl_receipt_decode(r->resp->body, r->resp->len, r->resp->len, &m) != 0 ||
      m.round != c->rounds[i].round || m.store_id.len != strlen(c->ids[i]) ||
      memcmp(m.store_id.ptr, c->ids[i], m.store_id.len) != 0) {
    c->bad_receipts++;
    return;
  }
  if (c->disconnect)
    storefl_sim_disconnect(c->sim, i);
  if (r->attempts > 1)
    c->retried++;
  if (m.duplicate)
    c->duplicates++;
  else
    c->receipts++;
  c->lat[c->n_lat++] = r->latency_ms;
}

typedef struct run_result {
  long agents, rounds_done;
  double hs_p50, hs_p99, up_p50, up_p99, updates_per_s, upload_mbps, wall_s;
  long vmhwm_kib, lost, doubled, failures, bad_receipts, round_errors, connected, retried;
  size_t update_bytes;
  char cipher[80];
  char first_error[200];
} run_result;

static int run(const opts *o, long n, run_result *res) {
  memset(res, 0, sizeof *res);
  res->agents = n;
  agg_proc p;
  memset(&p, 0, sizeof p);
  if (o->keep)
    snprintf(p.dir, sizeof p.dir, "%s/n%ld", o->keep, n);
  else
    snprintf(p.dir, sizeof p.dir, "/tmp/storefl-load-XXXXXX");
  if (o->keep ? (mkdir(o->keep, 0700), mkdir(p.dir, 0700) != 0 && errno != EEXIST) : !mkdtemp(p.dir)) {
    fprintf(stderr, "bench_load: cannot create %s\n", p.dir);
    return -1;
  }
  char(*ids)[16] = calloc((size_t)n, sizeof *ids);
  uint8_t(*keys)[32] = calloc((size_t)n, sizeof *keys);
  run_ctx c;
  memset(&c, 0, sizeof c);
  c.rounds = calloc((size_t)n, sizeof *c.rounds);
  c.lat = calloc((size_t)(n * o->rounds), sizeof *c.lat);
  c.hs = calloc((size_t)n, sizeof *c.hs);
  size_t *all = calloc((size_t)n, sizeof *all);
  long *parts = calloc((size_t)o->rounds + 2, sizeof *parts);
  long *rec_round = calloc((size_t)o->rounds + 2, sizeof *rec_round);
  int rc = -1;
  storefl_response mr = {0};
  if (!ids || !keys || !c.rounds || !c.lat || !c.hs || !all || !parts || !rec_round)
    goto out;
  if (start_aggregator(o, n, &p, ids, keys) != 0) {
    fprintf(stderr, "bench_load: the aggregator did not start (log: %s)\n", p.log);
    goto out;
  }
  char err[256] = {0};
  storefl_sim_opts so;
  memset(&so, 0, sizeof so);
  so.port = (uint16_t)o->port;
  so.max_handshakes = (unsigned)o->handshakes;
  so.q_block = !o->block1;
  so.timeout_ms = 60000;
  if (storefl_sim_create(&so, &c.sim, err, sizeof err) != 0) {
    fprintf(stderr, "bench_load: %s\n", err);
    goto out;
  }
  for (long i = 0; i < n; i++) {
    all[i] = (size_t)i;
    if (storefl_sim_add_agent(c.sim, ids[i], keys[i], 32, NULL) != 0)
      goto out;
  }
  memset(keys, 0, (size_t)n * sizeof *keys);
  c.ids = ids;
  c.dtype = o->dtype;
  c.disconnect = o->disconnect;
  /* 1. Every agent's DTLS session, all held at once (with --disconnect: made on demand in the
   * waves and closed after each exchange, so at most ~U exist at a time). */
  if (!o->disconnect) {
    size_t ok = 0;
    storefl_sim_connect(c.sim, NULL, 0, &ok);
    res->connected = (long)ok;
    for (long i = 0; i < n; i++)
      c.hs[i] = storefl_sim_agent_stats(c.sim, (size_t)i)->handshake_ms;
    res->hs_p50 = storefl_percentile(c.hs, (size_t)n, 50);
    res->hs_p99 = storefl_percentile(c.hs, (size_t)n, 99);
  }
  /* 2. The model's shapes (one download for the process: the update encoder needs only its
   * tensor names and shapes). */
  storefl_model_msg model;
  if (storefl_sim_request(c.sim, 0, COAP_REQUEST_CODE_GET, "v1/model", -1, NULL, 0, &mr) != 0 ||
      mr.code != 205 || storefl_model_decode(mr.body, mr.len, mr.len, &model) != 0) {
    fprintf(stderr, "bench_load: cannot fetch the model\n");
    goto out;
  }
  c.model = &model;
  snprintf(res->cipher, sizeof res->cipher, "%s", storefl_sim_agent_cipher(c.sim, 0));
  if (o->disconnect)
    storefl_sim_disconnect(c.sim, 0);
  for (uint32_t t = 0; t < model.n_tensors; t++) {
    uint64_t ne = 0;
    storefl_tensor_numel(&model.tensors[t], &ne);
    c.numel += (size_t)ne;
  }
  c.delta = malloc(c.numel * sizeof *c.delta);
  if (!c.delta || storefl_agent_drbg_new(&c.drbg) != 0)
    goto out;
  /* 3. Rounds. */
  double upload_s = 0, t_all = bench_now();
  for (long r = 1; r <= o->rounds; r++) {
    storefl_sim_req rq = {COAP_REQUEST_CODE_GET, "v1/round", -1, NULL, on_round, &c, 64, NULL};
    storefl_sim_wave(c.sim, all, (size_t)n, &rq);
    long before = c.receipts;
    uint64_t up0 = 0;
    for (long i = 0; i < n; i++)
      up0 += storefl_sim_agent_stats(c.sim, (size_t)i)->body_up;
    storefl_sim_req uq = {COAP_REQUEST_CODE_POST, "v1/update", 60, make_update, on_upload, &c,
                          (unsigned)o->inflight,  NULL};
    double t0 = bench_now();
    storefl_sim_wave(c.sim, all, (size_t)n, &uq);
    upload_s += bench_now() - t0;
    for (long i = 0; i < n; i++)
      c.bytes_up += storefl_sim_agent_stats(c.sim, (size_t)i)->body_up;
    c.bytes_up -= up0;
    uint64_t rr = c.rounds[0].round;
    if (rr >= 1 && rr <= (uint64_t)o->rounds)
      rec_round[rr] += c.receipts - before;
    /* Wait for the close: the round announced after the target is the next one (or idle). */
    for (int t = 0; t < 600; t++) {
      storefl_response sr;
      storefl_round_msg now;
      int got = storefl_sim_request(c.sim, 0, COAP_REQUEST_CODE_GET, "v1/round", -1, NULL, 0, &sr) == 0 &&
                sr.code == 205 && storefl_round_decode(sr.body, sr.len, sr.len, &now) == 0;
      storefl_response_free(&sr);
      if (got && (now.round > rr || now.state != STOREFL_ROUND_OPEN))
        break;
      usleep(100000);
    }
    res->rounds_done++;
    if (c.failures)
      break;
  }
  res->wall_s = bench_now() - t_all;
  if (o->disconnect) {
    /* Handshakes made in the waves: each agent's last one. */
    for (long i = 0; i < n; i++) {
      const storefl_sim_stats *st = storefl_sim_agent_stats(c.sim, (size_t)i);
      c.hs[i] = st->handshake_ms;
      res->connected += st->handshakes > 0;
    }
    res->hs_p50 = storefl_percentile(c.hs, (size_t)n, 50);
    res->hs_p99 = storefl_percentile(c.hs, (size_t)n, 99);
  }
  res->vmhwm_kib = vmhwm_kib(p.pid);
  stop_aggregator(&p);
  if (closed_rounds(o, &p, parts, o->rounds) != 0) {
    fprintf(stderr, "bench_load: cannot read the rounds\n");
    goto out;
  }
  for (long r = 1; r <= o->rounds; r++) {
    if (rec_round[r] > parts[r])
      res->lost += rec_round[r] - parts[r];
    else
      res->doubled += parts[r] - rec_round[r];
  }
  res->up_p50 = storefl_percentile(c.lat, c.n_lat, 50);
  res->up_p99 = storefl_percentile(c.lat, c.n_lat, 99);
  res->updates_per_s = upload_s > 0 ? (double)c.receipts / upload_s : 0;
  res->upload_mbps = upload_s > 0 ? (double)c.bytes_up / upload_s / 1e6 : 0;
  res->update_bytes = c.receipts ? (size_t)(c.bytes_up / (uint64_t)(c.receipts + c.duplicates)) : 0;
  res->failures = c.failures;
  res->retried = c.retried;
  res->bad_receipts = c.bad_receipts;
  res->round_errors = c.round_errors;
  snprintf(res->first_error, sizeof res->first_error, "%s", c.first_error);
  rc = 0;
out:
  stop_aggregator(&p);
  storefl_response_free(&mr);
  storefl_sim_free(c.sim);
  storefl_agent_drbg_free(c.drbg);
  free(c.delta);
  free(ids);
  free(keys);
  free(c.rounds);
  free(c.lat);
  free(c.hs);
  free(all);
  free(parts);
  free(rec_round);
  if (!o->keep) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p.dir);
    if (system(cmd) != 0)
      fprintf(stderr, "bench_load: could not remove %s\n", p.dir);
  }
  return rc;
}

static void print_run(const run_result *r) {
  printf("{\"agents\":%ld,\"connected\":%ld,\"rounds\":%ld,\"cipher\":\"%s\",\"handshake_ms_p50\":%.2f,"
         "\"handshake_ms_p99\":%.2f,\"upload_ms_p50\":%.2f,\"upload_ms_p99\":%.2f,\"updates_per_s\":%.1f,"
         "\"update_bytes\":%zu,\"upload_payload_mb_s\":%.2f,\"wall_s\":%.1f,\"aggregator_vmhwm_kib\":%ld,"
         "\"lost\":%ld,\"double_counted\":%ld,\"failed_uploads\":%ld,\"bad_receipts\":%ld,"
         "\"round_errors\":%ld,\"retried_uploads\":%ld,\"first_error\":\"%s\"}",
         r->agents, r->connected, r->rounds_done, r->cipher, r->hs_p50, r->hs_p99, r->up_p50, r->up_p99,
         r->updates_per_s, r->update_bytes, r->upload_mbps, r->wall_s, r->vmhwm_kib, r->lost, r->doubled,
         r->failures, r->bad_receipts, r->round_errors, r->retried, r->first_error);
}

int main(int argc, char **argv) {
  opts o = {1000, 10, 100, 20290, 32, 32, STOREFL_DTYPE_I8, 0, 0, 0, 0, {0}, NULL};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--small")) {
      o.small = 1;
      continue;
    }
    if (!strcmp(a, "--disconnect")) {
      o.disconnect = 1;
      continue;
    }
    if (!strcmp(a, "--block1")) {
      o.block1 = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "bench_load: %s needs a value\n", a);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--agents"))
      o.agents = strtol(v, NULL, 10);
    else if (!strcmp(a, "--rounds"))
      o.rounds = strtol(v, NULL, 10);
    else if (!strcmp(a, "--compare"))
      o.compare = strtol(v, NULL, 10);
    else if (!strcmp(a, "--port"))
      o.port = strtol(v, NULL, 10);
    else if (!strcmp(a, "--agg-max-uploads"))
      o.agg_max_uploads = strtol(v, NULL, 10);
    else if (!strcmp(a, "--inflight"))
      o.inflight = strtol(v, NULL, 10);
    else if (!strcmp(a, "--handshakes"))
      o.handshakes = strtol(v, NULL, 10);
    else if (!strcmp(a, "--dtype")) {
      if (storefl_dtype_parse(v, &o.dtype) != 0) {
        fprintf(stderr, "bench_load: --dtype i8|f16|f32\n");
        return 2;
      }
    } else if (!strcmp(a, "--aggregator"))
      snprintf(o.aggregator, sizeof o.aggregator, "%s", v);
    else if (!strcmp(a, "--keep"))
      o.keep = v;
    else {
      fprintf(stderr, "bench_load: unknown option %s\n", a);
      return 2;
    }
  }
  if (o.agents < 1 || o.agents > 20000 || o.rounds < 1 || o.rounds > 1000 || o.compare < 0 || o.port < 1024 ||
      o.port > 65535 || o.inflight < 1 || o.inflight > 1024 || o.handshakes < 1 || o.handshakes > 1024) {
    fprintf(stderr, "bench_load: out-of-range option\n");
    return 2;
  }
  if (!o.aggregator[0]) {
    char self[4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0)
      return 1;
    self[k] = 0;
    snprintf(o.aggregator, sizeof o.aggregator, "%s/../aggregator/storefl-aggregator", dirname(self));
  }
  signal(SIGPIPE, SIG_IGN);
  storefl_log_set_level(STOREFL_LOG_WARN);
  double limit = chacha_mbps();
  run_result big, small;
  int rc = run(&o, o.agents, &big);
  int rc2 = 0;
  if (rc == 0 && o.compare > 0 && o.compare != o.agents) {
    o.port++;
    rc2 = run(&o, o.compare, &small);
  }
  if (rc || rc2)
    return 1;
  printf("{\"bench\":\"load\",\"model\":\"%s\",\"dtype\":\"%s\",\"inflight\":%ld,\"sessions\":\"%s\","
         "\"limit\":{\"chacha20_poly1305_"
         "1k_mb_s\":%.1f},\"ratio_upload_vs_cipher\":%.4f,\"run\":",
         o.small ? "small (B=2^12, d=16)" : "default", storefl_dtype_name(o.dtype), o.inflight,
         o.disconnect ? "closed after each exchange" : "held by every agent", limit, big.upload_mbps / limit);
  print_run(&big);
  if (o.compare > 0 && o.compare != o.agents) {
    printf(",\"compare\":");
    print_run(&small);
    printf(",\"vmhwm_ratio\":%.3f",
           small.vmhwm_kib > 0 ? (double)big.vmhwm_kib / (double)small.vmhwm_kib : 0);
  }
  printf("}\n");
  int bad = big.lost || big.doubled || big.failures || big.bad_receipts || big.connected != big.agents ||
            big.rounds_done != o.rounds;
  /* With a tight upload limit the busy path (5.03, Max-Age, same body again) must have been taken. */
  if (o.agg_max_uploads > 0 && o.agg_max_uploads < o.inflight && big.retried == 0) {
    fprintf(stderr, "bench_load: --agg-max-uploads %ld below --inflight %ld but no upload was retried\n",
            o.agg_max_uploads, o.inflight);
    bad = 1;
  }
  if (o.compare > 0 && o.compare != o.agents)
    bad |= small.lost || small.doubled || small.failures || small.bad_receipts;
  return bad ? 1 : 0;
}
