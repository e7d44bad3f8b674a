/* Signed, hash-chained audit ledger in SQLite; see storefl/ledger.h. */
#include "storefl/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>

#include "storefl/accountant.h"
#include "storefl/budget.h"
#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/rng.h"

/* ---- signer ---------------------------------------------------------------------------------- */

struct storefl_signer {
  mbedtls_pk_context pk;
  storefl_rng *rng; /* NULL for verify-only signers */
};

void storefl_signer_free(storefl_signer *s) {
  if (s == NULL)
    return;
  mbedtls_pk_free(&s->pk);
  storefl_rng_free(s->rng);
  free(s);
}

static int is_p256(mbedtls_pk_context *pk) {
  return mbedtls_pk_can_do(pk, MBEDTLS_PK_ECKEY) && mbedtls_pk_ec(*pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1;
}

static int create_key(storefl_signer *s, const char *path) {
  int rc = mbedtls_pk_setup(&s->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
  if (rc == 0)
    rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(s->pk), storefl_rng_mbedtls, s->rng);
  if (rc != 0)
    return STOREFL_ERR_CRYPTO;
  unsigned char pem[1024];
  if (mbedtls_pk_write_key_pem(&s->pk, pem, sizeof pem) != 0)
    return STOREFL_ERR_CRYPTO;
  size_t len = strlen((char *)pem);
  /* O_EXCL: never overwrite a key (a lost key would orphan the ledger's signatures). */
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    return STOREFL_ERR_IO;
  int ok = fchmod(fd, 0600) == 0 && write(fd, pem, len) == (ssize_t)len && fsync(fd) == 0;
  mbedtls_platform_zeroize(pem, sizeof pem);
  if (close(fd) != 0)
    ok = 0;
  if (!ok) {
    unlink(path);
    return STOREFL_ERR_IO;
  }
  return STOREFL_OK;
}

int storefl_signer_open(const char *key_path, storefl_signer **out, int *created) {
  if (key_path == NULL || out == NULL)
    return STOREFL_ERR_INVALID;
  *out = NULL;
  if (created != NULL)
    *created = 0;
  storefl_signer *s = calloc(1, sizeof *s);
  if (s == NULL)
    return STOREFL_ERR_NOMEM;
  mbedtls_pk_init(&s->pk);
  int rc = storefl_rng_create("storefl-ledger-signer", &s->rng);
  if (rc != 0)
    goto fail;
  struct stat st;
  if (stat(key_path, &st) != 0) {
    if (errno != ENOENT) {
      rc = STOREFL_ERR_IO;
      goto fail;
    }
    rc = create_key(s, key_path);
    if (rc != 0)
      goto fail;
    if (created != NULL)
      *created = 1;
    *out = s;
    return STOREFL_OK;
  }
  if ((st.st_mode & 077) != 0) {
    rc = STOREFL_ERR_FORBIDDEN;
    goto fail;
  }
  if (mbedtls_pk_parse_keyfile(&s->pk, key_path, NULL) != 0 || !is_p256(&s->pk)) {
    rc = STOREFL_ERR_CRYPTO;
    goto fail;
  }
  *out = s;
  return STOREFL_OK;
fail:
  storefl_signer_free(s);
  return rc;
}

int storefl_signer_open_public(const char *pem_path, storefl_signer **out) {
  if (pem_path == NULL || out == NULL)
    return STOREFL_ERR_INVALID;
  *out = NULL;
  storefl_signer *s = calloc(1, sizeof *s);
  if (s == NULL)
    return STOREFL_ERR_NOMEM;
  mbedtls_pk_init(&s->pk);
  if (mbedtls_pk_parse_public_keyfile(&s->pk, pem_path) != 0 || !is_p256(&s->pk)) {
    storefl_signer_free(s);
    return STOREFL_ERR_CRYPTO;
  }
  *out = s;
  return STOREFL_OK;
}

int storefl_signer_public_pem(const storefl_signer *s, char *buf, size_t cap) {
  if (s == NULL || buf == NULL)
    return STOREFL_ERR_INVALID;
  unsigned char tmp[512];
  if (mbedtls_pk_write_pubkey_pem((mbedtls_pk_context *)&s->pk, tmp, sizeof tmp) != 0)
    return STOREFL_ERR_CRYPTO;
  size_t len = strlen((char *)tmp);
  if (len + 1 > cap)
    return STOREFL_ERR_TOO_LARGE;
  memcpy(buf, tmp, len + 1);
  return STOREFL_OK;
}

/* ---- database -------------------------------------------------------------------------------- */

int storefl_ledger_init_schema(sqlite3 *db) {
  /* idx is the entry index; rows are kept by the chain, never updated. ledger_rdp is a cache of
   * each store's RDP curve (re-derivable from the entries). */
  const char *sql = "CREATE TABLE IF NOT EXISTS ledger(idx INTEGER PRIMARY KEY, round INTEGER NOT NULL,"
                    " entry BLOB NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS ledger_rdp(store_id TEXT PRIMARY KEY, rdp BLOB NOT NULL);";
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? STOREFL_OK : STOREFL_ERR_IO;
}

int storefl_ledger_open_db(const char *path, sqlite3 **db) {
  if (path == NULL || db == NULL)
    return STOREFL_ERR_INVALID;
  *db = NULL;
  sqlite3 *d = NULL;
  if (sqlite3_open_v2(path, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    sqlite3_close(d);
    return STOREFL_ERR_IO;
  }
  sqlite3_busy_timeout(d, 5000);
  if (sqlite3_exec(d, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) != SQLITE_OK ||
      storefl_ledger_init_schema(d) != 0) {
    sqlite3_close(d);
    return STOREFL_ERR_IO;
  }
  *db = d;
  return STOREFL_OK;
}

/* ---- per-store RDP state --------------------------------------------------------------------- */

typedef struct store_state {
  char id[STOREFL_MAX_ID_LEN + 1];
  double rdp[STOREFL_BUDGET_ORDERS];
} store_state;

typedef struct store_set {
  store_state *v;
  size_t n, cap;
} store_set;

static int cmp_state(const void *a, const void *b) {
  return strcmp(((const store_state *)a)->id, ((const store_state *)b)->id);
}

static store_state *set_find(store_set *s, const char *id) {
  store_state key;
  snprintf(key.id, sizeof key.id, "%s", id);
  return s->n ? bsearch(&key, s->v, s->n, sizeof *s->v, cmp_state) : NULL;
}

/* Adds id with zero RDP if missing (keeps the set sorted). */
static int set_add(store_set *s, const char *id, size_t len, store_state **out) {
  if (len == 0 || len > STOREFL_MAX_ID_LEN)
    return STOREFL_ERR_INVALID;
  char buf[STOREFL_MAX_ID_LEN + 1];
  memcpy(buf, id, len);
  buf[len] = '\0';
  store_state *f = set_find(s, buf);
  if (f != NULL) {
    *out = f;
    return STOREFL_OK;
  }
  if (s->n >= STOREFL_MAX_PARTICIPANTS)
    return STOREFL_ERR_TOO_LARGE;
  if (s->n == s->cap) {
    size_t nc = s->cap ? 2 * s->cap : 64;
    store_state *nv = realloc(s->v, nc * sizeof *nv);
    if (nv == NULL)
      return STOREFL_ERR_NOMEM;
    s->v = nv;
    s->cap = nc;
  }
  size_t pos = 0;
  while (pos < s->n && strcmp(s->v[pos].id, buf) < 0)
    pos++;
  memmove(&s->v[pos + 1], &s->v[pos], (s->n - pos) * sizeof *s->v);
  memset(&s->v[pos], 0, sizeof s->v[pos]);
  memcpy(s->v[pos].id, buf, len + 1);
  s->n++;
  *out = &s->v[pos];
  return STOREFL_OK;
}

/* One round's RDP at the default orders, remembered for the last (q, sigma): a replay of a long
 * ledger mostly repeats the same parameters. */
typedef struct round_rdp {
  int valid;
  double q, sigma;
  double inc[STOREFL_BUDGET_ORDERS];
} round_rdp;

/* Charges one round: q < 1 -> every known store, the enrolled population and the participants;
 * q = 1 -> participants only. */
static int charge_round(store_set *s, round_rdp *cache, double q, double sigma, const storefl_str *parts,
                        uint32_t n_parts, const storefl_str *pop, uint32_t n_pop) {
  size_t n_orders;
  const double *orders = storefl_rdp_default_orders(&n_orders);
  if (n_orders != STOREFL_BUDGET_ORDERS)
    return STOREFL_ERR_INTERNAL;
  if (!cache->valid || cache->q != q || cache->sigma != sigma) {
    cache->valid = 0;
    for (size_t k = 0; k < n_orders; k++) {
      int rc = storefl_rdp_sgm(q, sigma, orders[k], &cache->inc[k]);
      if (rc != 0)
        return rc;
      if (!isfinite(cache->inc[k]))
        return STOREFL_ERR_INVALID; /* sigma = 0: no finite epsilon to record */
    }
    cache->valid = 1;
    cache->q = q;
    cache->sigma = sigma;
  }
  const double *inc = cache->inc;
  for (uint32_t i = 0; q < 1 && i < n_pop; i++) {
    store_state *st;
    int rc = set_add(s, pop[i].ptr, pop[i].len, &st);
    if (rc != 0)
      return rc;
  }
  for (uint32_t i = 0; i < n_parts; i++) {
    store_state *st;
    int rc = set_add(s, parts[i].ptr, parts[i].len, &st);
    if (rc != 0)
      return rc;
    if (q < 1) /* charged below with everyone */
      continue;
    for (size_t k = 0; k < n_orders; k++)
      st->rdp[k] += inc[k];
  }
  if (q < 1)
    for (size_t j = 0; j < s->n; j++)
      for (size_t k = 0; k < n_orders; k++)
        s->v[j].rdp[k] += inc[k];
  return STOREFL_OK;
}

static int load_states(sqlite3 *db, store_set *s) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT store_id, rdp FROM ledger_rdp ORDER BY store_id", -1, &st, NULL) !=
      SQLITE_OK)
    return STOREFL_ERR_IO;
  int rc = STOREFL_OK, step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const void *blob = sqlite3_column_blob(st, 1);
    if (id == NULL || blob == NULL ||
        sqlite3_column_bytes(st, 1) != (int)(STOREFL_BUDGET_ORDERS * sizeof(double))) {
      rc = STOREFL_ERR_IO;
      break;
    }
    store_state *x;
    rc = set_add(s, id, strlen(id), &x);
    if (rc != 0)
      break;
    memcpy(x->rdp, blob, sizeof x->rdp);
  }
  if (rc == 0 && step != SQLITE_DONE)
    rc = STOREFL_ERR_IO;
  sqlite3_finalize(st);
  return rc;
}

static int save_states(sqlite3 *db, const store_set *s) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO ledger_rdp(store_id, rdp) VALUES(?, ?)", -1, &st,
                         NULL) != SQLITE_OK)
    return STOREFL_ERR_IO;
  int rc = STOREFL_OK;
  for (size_t i = 0; i < s->n && rc == 0; i++) {
    sqlite3_reset(st);
    if (sqlite3_bind_text(st, 1, s->v[i].id, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(st, 2, s->v[i].rdp, sizeof s->v[i].rdp, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_DONE)
      rc = STOREFL_ERR_IO;
  }
  sqlite3_finalize(st);
  return rc;
}

/* Epsilons of all known stores, sorted by id (the set is sorted by strcmp = bytewise). */
static int fill_epsilons(const store_set *s, double delta, storefl_store_epsilon *eps) {
  for (size_t i = 0; i < s->n; i++) {
    eps[i].store_id.ptr = s->v[i].id;
    eps[i].store_id.len = strlen(s->v[i].id);
    int rc = storefl_budget_epsilon(s->v[i].rdp, delta, &eps[i].epsilon);
    if (rc != 0)
      return rc;
  }
  return STOREFL_OK;
}

static int cmp_str(const void *a, const void *b) {
  const storefl_str *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = n ? memcmp(x->ptr, y->ptr, n) : 0;
  if (c)
    return c;
  return x->len < y->len ? -1 : (x->len > y->len);
}

/* ---- decoding helper --------------------------------------------------------------------------- */

typedef struct decoded {
  storefl_ledger_entry e;
  storefl_str *parts;
  storefl_store_epsilon *eps;
} decoded;

static int decoded_init(decoded *d) {
  memset(d, 0, sizeof *d);
  d->parts = calloc(STOREFL_MAX_PARTICIPANTS, sizeof *d->parts);
  d->eps = calloc(STOREFL_MAX_PARTICIPANTS, sizeof *d->eps);
  return d->parts && d->eps ? STOREFL_OK : STOREFL_ERR_NOMEM;
}

static void decoded_free(decoded *d) {
  free(d->parts);
  free(d->eps);
}

static int decode_row(const void *blob, int len, decoded *d) {
  if (blob == NULL || len <= 0)
    return STOREFL_ERR_INVALID;
  return storefl_ledger_entry_decode(blob, (size_t)len, STOREFL_DEFAULT_MAX_BODY, &d->e, d->parts,
                                     STOREFL_MAX_PARTICIPANTS, d->eps, STOREFL_MAX_PARTICIPANTS);
}

/* ---- append ---------------------------------------------------------------------------------- */

static int append_in_tx(sqlite3 *db, storefl_signer *signer, const storefl_ledger_round *r,
                        uint64_t *index_out) {
  int rc;
  sqlite3_stmt *st = NULL;
  /* Already recorded? */
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM ledger WHERE round = ?", -1, &st, NULL) != SQLITE_OK)
    return STOREFL_ERR_IO;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)r->round);
  int step = sqlite3_step(st);
  sqlite3_finalize(st);
  if (step == SQLITE_ROW)
    return STOREFL_ERR_CONFLICT;
  if (step != SQLITE_DONE)
    return STOREFL_ERR_IO;

  storefl_ledger_entry e;
  memset(&e, 0, sizeof e);
  e.index = 0;
  /* The previous entry gives the index and the hash to chain to. */
  decoded prev;
  rc = decoded_init(&prev);
  if (rc != 0) {
    decoded_free(&prev);
    return rc;
  }
  if (sqlite3_prepare_v2(db, "SELECT idx, entry FROM ledger ORDER BY idx DESC LIMIT 1", -1, &st, NULL) !=
      SQLITE_OK) {
    decoded_free(&prev);
    return STOREFL_ERR_IO;
  }
  step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    rc = decode_row(sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1), &prev);
    if (rc == 0) {
      e.index = prev.e.index + 1;
      memcpy(e.prev_hash, prev.e.entry_hash, STOREFL_DIGEST_LEN);
    } else {
      rc = STOREFL_ERR_IO; /* a corrupt tail: refuse to chain onto it (audit verify names it) */
    }
  } else if (step != SQLITE_DONE) {
    rc = STOREFL_ERR_IO;
  }
  sqlite3_finalize(st);
  decoded_free(&prev);
  if (rc != 0)
    return rc;

  store_set set = {NULL, 0, 0};
  storefl_str *parts = NULL;
  storefl_store_epsilon *eps = NULL;
  uint8_t *blob = NULL;
  rc = load_states(db, &set);
  double q = storefl_budget_effective_q(r->mode == STOREFL_PRIVACY_CENTRAL, r->participation_q,
                                        r->closed_on_deadline);
  if (rc == 0) {
    round_rdp cache;
    memset(&cache, 0, sizeof cache);
    rc = charge_round(&set, &cache, q, r->noise_multiplier, r->participants, r->n_participants, r->population,
                      r->n_population);
  }
  if (rc == 0) {
    parts = calloc(r->n_participants ? r->n_participants : 1, sizeof *parts);
    eps = calloc(set.n ? set.n : 1, sizeof *eps);
    if (parts == NULL || eps == NULL)
      rc = STOREFL_ERR_NOMEM;
  }
  if (rc == 0) {
    memcpy(parts, r->participants, r->n_participants * sizeof *parts);
    qsort(parts, r->n_participants, sizeof *parts, cmp_str);
    rc = fill_epsilons(&set, r->delta, eps);
  }
  uint8_t sig[MBEDTLS_ECDSA_MAX_LEN];
  size_t sig_len = 0;
  if (rc == 0) {
    e.round = r->round;
    e.mode = r->mode;
    e.participation_q = q;
    e.noise_multiplier = r->noise_multiplier;
    e.clip_norm = r->clip_norm;
    e.delta = r->delta;
    e.closed_unix_ms = r->closed_unix_ms;
    memcpy(e.model_digest, r->model_digest, STOREFL_DIGEST_LEN);
    e.n_participants = r->n_participants;
    e.participants = parts;
    e.n_epsilons = (uint32_t)set.n;
    e.epsilons = eps;
    rc = storefl_ledger_entry_hash(&e, e.entry_hash);
  }
  if (rc == 0 && (signer->rng == NULL ||
                  mbedtls_pk_sign(&signer->pk, MBEDTLS_MD_SHA256, e.entry_hash, STOREFL_DIGEST_LEN, sig,
                                  &sig_len, storefl_rng_mbedtls, signer->rng) != 0))
    rc = STOREFL_ERR_CRYPTO;
  size_t len = 0;
  if (rc == 0) {
    e.signature = sig;
    e.signature_len = sig_len;
    rc = storefl_ledger_entry_encode(&e, NULL, 0, &len);
    if (rc == STOREFL_ERR_TOO_LARGE || (rc == 0 && len > 0)) {
      blob = malloc(len);
      rc = blob ? storefl_ledger_entry_encode(&e, blob, len, &len) : STOREFL_ERR_NOMEM;
    }
  }
  if (rc == 0) {
    if (sqlite3_prepare_v2(db, "INSERT INTO ledger(idx, round, entry) VALUES(?, ?, ?)", -1, &st, NULL) !=
        SQLITE_OK)
      rc = STOREFL_ERR_IO;
    else {
      sqlite3_bind_int64(st, 1, (sqlite3_int64)e.index);
      sqlite3_bind_int64(st, 2, (sqlite3_int64)e.round);
      sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE)
        rc = STOREFL_ERR_IO;
      sqlite3_finalize(st);
    }
  }
  if (rc == 0)
    rc = save_states(db, &set);
  if (rc == 0 && index_out != NULL)
    *index_out = e.index;
  free(blob);
  free(parts);
  free(eps);
  free(set.v);
  return rc;
}

int storefl_ledger_append(sqlite3 *db, storefl_signer *signer, const storefl_ledger_round *r,
                          uint64_t *index_out) {
  if (db == NULL || signer == NULL || r == NULL || (r->n_participants > 0 && r->participants == NULL) ||
      r->n_participants > STOREFL_MAX_PARTICIPANTS || !(r->noise_multiplier > 0) ||
      !(r->participation_q > 0 && r->participation_q <= 1) || !(r->delta > 0 && r->delta < 1))
    return STOREFL_ERR_INVALID;
  for (uint32_t i = 0; i < r->n_participants; i++)
    if (!storefl_store_id_valid(r->participants[i].ptr, r->participants[i].len))
      return STOREFL_ERR_INVALID;
  if (r->n_population > STOREFL_MAX_PARTICIPANTS || (r->n_population > 0 && r->population == NULL))
    return STOREFL_ERR_INVALID;
  for (uint32_t i = 0; i < r->n_population; i++)
    if (!storefl_store_id_valid(r->population[i].ptr, r->population[i].len))
      return STOREFL_ERR_INVALID;
  int own_tx = sqlite3_get_autocommit(db);
  if (own_tx && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return STOREFL_ERR_IO;
  int rc = append_in_tx(db, signer, r, index_out);
  if (own_tx) {
    if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
      rc = STOREFL_ERR_IO;
    if (rc != 0)
      sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  }
  return rc;
}

/* ---- budget ---------------------------------------------------------------------------------- */

static int load_rdp(sqlite3 *db, const char *store_id, double *rdp, int *found) {
  sqlite3_stmt *st = NULL;
  *found = 0;
  if (sqlite3_prepare_v2(db, "SELECT rdp FROM ledger_rdp WHERE store_id = ?", -1, &st, NULL) != SQLITE_OK)
    return STOREFL_ERR_IO;
  sqlite3_bind_text(st, 1, store_id, -1, SQLITE_STATIC);
  int rc = STOREFL_OK;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    if (sqlite3_column_bytes(st, 0) != (int)(STOREFL_BUDGET_ORDERS * sizeof(double)))
      rc = STOREFL_ERR_IO;
    else {
      memcpy(rdp, sqlite3_column_blob(st, 0), STOREFL_BUDGET_ORDERS * sizeof(double));
      *found = 1;
    }
  } else if (step != SQLITE_DONE) {
    rc = STOREFL_ERR_IO;
  }
  sqlite3_finalize(st);
  return rc;
}

int storefl_ledger_store_epsilon(sqlite3 *db, const char *store_id, double delta, double *eps) {
  if (db == NULL || store_id == NULL || eps == NULL)
    return STOREFL_ERR_INVALID;
  double rdp[STOREFL_BUDGET_ORDERS];
  int found;
  int rc = load_rdp(db, store_id, rdp, &found);
  if (rc != 0)
    return rc;
  return storefl_budget_epsilon(found ? rdp : NULL, delta, eps);
}

int storefl_ledger_budget_check(sqlite3 *db, const char *store_id, storefl_privacy_mode mode, double q,
                                int closes_on_deadline, double sigma, double delta, double cap,
                                double *eps_now, double *eps_after) {
  if (db == NULL || store_id == NULL)
    return STOREFL_ERR_INVALID;
  double rdp[STOREFL_BUDGET_ORDERS];
  int found;
  int rc = load_rdp(db, store_id, rdp, &found);
  if (rc != 0)
    return rc;
  double qe = storefl_budget_effective_q(mode == STOREFL_PRIVACY_CENTRAL, q, closes_on_deadline);
  return storefl_budget_check(found ? rdp : NULL, qe, sigma, delta, cap, eps_now, eps_after);
}

/* ---- walking and verifying ---------------------------------------------------------------------- */

typedef int (*row_fn)(void *ctx, int64_t rowid, const void *blob, int len);

static int walk_rows(sqlite3 *db, row_fn fn, void *ctx) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT idx, entry FROM ledger ORDER BY idx", -1, &st, NULL) != SQLITE_OK)
    return STOREFL_ERR_IO;
  int rc = STOREFL_OK, step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    rc = fn(ctx, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1));
    if (rc != 0)
      break;
  }
  if (rc == 0 && step != SQLITE_DONE)
    rc = STOREFL_ERR_IO;
  sqlite3_finalize(st);
  return rc;
}

typedef struct visit_ctx {
  storefl_ledger_visit_fn cb;
  void *ctx;
  decoded d;
  uint8_t *buf;
  size_t cap;
} visit_ctx;

static int signed_part(const storefl_ledger_entry *e, uint8_t **buf, size_t *cap, size_t *len) {
  int rc = storefl_ledger_entry_encode_signed_part(e, *buf, *cap, len);
  if (rc == STOREFL_ERR_TOO_LARGE || (rc == 0 && *buf == NULL)) {
    rc = storefl_ledger_entry_encode_signed_part(e, NULL, 0, len);
    if (rc != 0 && rc != STOREFL_ERR_TOO_LARGE)
      return rc;
    uint8_t *nb = realloc(*buf, *len);
    if (nb == NULL)
      return STOREFL_ERR_NOMEM;
    *buf = nb;
    *cap = *len;
    rc = storefl_ledger_entry_encode_signed_part(e, *buf, *cap, len);
  }
  return rc;
}

static int visit_row(void *p, int64_t rowid, const void *blob, int len) {
  visit_ctx *v = p;
  (void)rowid;
  int rc = decode_row(blob, len, &v->d);
  if (rc != 0)
    return rc;
  size_t sl;
  rc = signed_part(&v->d.e, &v->buf, &v->cap, &sl);
  if (rc != 0)
    return rc;
  return v->cb(v->ctx, &v->d.e, v->buf, sl);
}

int storefl_ledger_foreach(sqlite3 *db, storefl_ledger_visit_fn cb, void *ctx) {
  if (db == NULL || cb == NULL)
    return STOREFL_ERR_INVALID;
  visit_ctx v;
  memset(&v, 0, sizeof v);
  v.cb = cb;
  v.ctx = ctx;
  int rc = decoded_init(&v.d);
  if (rc == 0)
    rc = walk_rows(db, visit_row, &v);
  decoded_free(&v.d);
  free(v.buf);
  return rc;
}

typedef struct verify_ctx {
  const storefl_signer *pub;
  storefl_ledger_report *rep;
  decoded d;
  uint64_t expect_index;
  uint8_t prev_hash[STOREFL_DIGEST_LEN];
  store_set set;
  round_rdp cache;
} verify_ctx;

#define BAD(...)                                                                                             \
  do {                                                                                                       \
    snprintf(v->rep->problem, sizeof v->rep->problem, __VA_ARGS__);                                          \
    v->rep->bad_row = rowid;                                                                                 \
    return STOREFL_ERR_INVALID;                                                                              \
  } while (0)

static int verify_row(void *p, int64_t rowid, const void *blob, int len) {
  verify_ctx *v = p;
  int rc = decode_row(blob, len, &v->d);
  if (rc != 0)
    BAD("entry does not decode as a canonical ledger entry (%s)", storefl_strerror(rc));
  const storefl_ledger_entry *e = &v->d.e;
  if (e->index != v->expect_index || (uint64_t)rowid != e->index)
    BAD("entry claims index %llu at position %llu: an entry was removed, inserted or reordered",
        (unsigned long long)e->index, (unsigned long long)v->expect_index);
  if (memcmp(e->prev_hash, v->prev_hash, STOREFL_DIGEST_LEN) != 0)
    BAD("previous-entry hash does not match entry %llu: the chain is broken",
        (unsigned long long)(v->expect_index ? v->expect_index - 1 : 0));
  uint8_t h[STOREFL_DIGEST_LEN];
  rc = storefl_ledger_entry_hash(e, h);
  if (rc != 0)
    BAD("entry cannot be re-encoded (%s)", storefl_strerror(rc));
  if (memcmp(h, e->entry_hash, STOREFL_DIGEST_LEN) != 0)
    BAD("entry hash does not match its content: the entry was modified");
  if (mbedtls_pk_verify((mbedtls_pk_context *)&v->pub->pk, MBEDTLS_MD_SHA256, h, STOREFL_DIGEST_LEN,
                        e->signature, e->signature_len) != 0)
    BAD("signature does not verify under the aggregator's public key");
  /* Replay the accounting and compare the epsilons the entry lists. A q < 1 round charged every
   * enrolled store, and the entry lists all of them, so its own list is the population to replay. */
  storefl_str *pop = NULL;
  if (e->participation_q < 1 && e->n_epsilons > 0) {
    pop = calloc(e->n_epsilons, sizeof *pop);
    if (pop == NULL)
      return STOREFL_ERR_NOMEM;
    for (uint32_t i = 0; i < e->n_epsilons; i++)
      pop[i] = e->epsilons[i].store_id;
  }
  rc = charge_round(&v->set, &v->cache, e->participation_q, e->noise_multiplier, e->participants,
                    e->n_participants, pop, pop ? e->n_epsilons : 0);
  free(pop);
  if (rc != 0)
    BAD("cannot replay the accounting of this round (%s)", storefl_strerror(rc));
  if (e->n_epsilons != v->set.n)
    BAD("lists %u store epsilons, the replay knows %zu stores", e->n_epsilons, v->set.n);
  for (uint32_t i = 0; i < e->n_epsilons; i++) {
    const store_state *s = &v->set.v[i];
    if (strlen(s->id) != e->epsilons[i].store_id.len ||
        memcmp(s->id, e->epsilons[i].store_id.ptr, strlen(s->id)))
      BAD("epsilon list names store '%.*s', the replay expects '%s'", (int)e->epsilons[i].store_id.len,
          e->epsilons[i].store_id.ptr, s->id);
    double x;
    rc = storefl_budget_epsilon(s->rdp, e->delta, &x);
    if (rc != 0 || !(fabs(x - e->epsilons[i].epsilon) <= 1e-9 * fabs(x) + 1e-12))
      BAD("store '%s': listed epsilon %.17g, replay gives %.17g", s->id, e->epsilons[i].epsilon, x);
  }
  memcpy(v->prev_hash, e->entry_hash, STOREFL_DIGEST_LEN);
  v->expect_index++;
  v->rep->n_entries++;
  return STOREFL_OK;
}

int storefl_ledger_verify(sqlite3 *db, const storefl_signer *pub, storefl_ledger_report *report) {
  if (db == NULL || pub == NULL || report == NULL)
    return STOREFL_ERR_INVALID;
  memset(report, 0, sizeof *report);
  report->bad_row = -1;
  verify_ctx v;
  memset(&v, 0, sizeof v);
  v.pub = pub;
  v.rep = report;
  int rc = decoded_init(&v.d);
  if (rc == 0)
    rc = walk_rows(db, verify_row, &v);
  if (rc == 0) {
    /* The chain alone cannot reveal a truncated tail; the stores' running RDP (written in the same
     * transaction as each entry) can, unless it was rewritten too -- compare against the published
     * head (count and last hash, printed by audit verify) for that case. */
    store_set cache = {NULL, 0, 0};
    rc = load_states(db, &cache);
    if (rc == 0) {
      int same = cache.n == v.set.n;
      for (size_t i = 0; same && i < cache.n; i++) {
        same = strcmp(cache.v[i].id, v.set.v[i].id) == 0;
        for (size_t k = 0; same && k < STOREFL_BUDGET_ORDERS; k++) {
          double a = cache.v[i].rdp[k], b = v.set.v[i].rdp[k];
          same = (isinf(a) && isinf(b)) || fabs(a - b) <= 1e-9 * fabs(a) + 1e-300;
        }
      }
      if (!same) {
        report->bad_row = (int64_t)v.expect_index;
        snprintf(report->problem, sizeof report->problem,
                 "the stores' recorded spend goes beyond the last entry (%llu entries): entries at the end "
                 "were removed",
                 (unsigned long long)v.expect_index);
        rc = STOREFL_ERR_INVALID;
      }
    }
    free(cache.v);
  }
  decoded_free(&v.d);
  free(v.set.v);
  return rc;
}
