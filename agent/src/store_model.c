/* Store database <-> in-memory model data (store_model.h). */
#include "store_model.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storefl/codec.h"
#include "storefl/error.h"
#include "storefl/model_wire.h"

static int sql_err(int rc) {
  return rc == SQLITE_NOMEM ? STOREFL_ERR_NOMEM : STOREFL_ERR_IO;
}

int storefl_agent_load_catalog(storefl_store *s, uint32_t buckets, storefl_agent_data *d) {
  memset(d, 0, sizeof *d);
  sqlite3 *db = storefl_store_db(s);
  int rc = storefl_catalog_create(buckets, &d->cat);
  if (rc != STOREFL_OK)
    return rc;
  sqlite3_stmt *st = NULL;
  /* first_seen falls back to the first purchase, then to now: a product listed but never sold is
   * the newest of all. */
  int q =
      sqlite3_prepare_v2(db,
                         "SELECT p.id, p.code, p.name, p.category, p.brand, p.price,"
                         " COALESCE(p.first_seen, (SELECT min(time) FROM events e WHERE e.product_id = p.id))"
                         " FROM products p ORDER BY p.id",
                         -1, &st, NULL);
  if (q != SQLITE_OK)
    return sql_err(q);
  size_t cap = 0;
  int64_t now = (int64_t)time(NULL);
  while ((q = sqlite3_step(st)) == SQLITE_ROW) {
    if (d->n_products == cap) {
      size_t nc = cap ? cap * 2 : 1024;
      int64_t *ids = realloc(d->product_ids, nc * sizeof *ids);
      if (!ids) {
        rc = STOREFL_ERR_NOMEM;
        break;
      }
      d->product_ids = ids;
      cap = nc;
    }
    const char *cat = (const char *)sqlite3_column_text(st, 3);
    const char *brand = (const char *)sqlite3_column_text(st, 4);
    storefl_item_attrs a = {
        (const char *)sqlite3_column_text(st, 1),
        sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "",
        cat && cat[0] ? cat : NULL,
        brand && brand[0] ? brand : NULL,
        sqlite3_column_type(st, 5) == SQLITE_NULL ? 0.0f : (float)sqlite3_column_double(st, 5),
        sqlite3_column_type(st, 6) == SQLITE_NULL ? now : sqlite3_column_int64(st, 6),
    };
    if (!a.code) {
      rc = STOREFL_ERR_NOMEM;
      break;
    }
    if ((rc = storefl_catalog_add(d->cat, &a, NULL)) != STOREFL_OK)
      break;
    d->product_ids[d->n_products++] = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  if (rc != STOREFL_OK)
    return rc;
  if (q != SQLITE_DONE)
    return sql_err(q);
  return storefl_catalog_finalize(d->cat);
}

static int64_t index_of(const storefl_agent_data *d, int64_t id) {
  size_t lo = 0, hi = d->n_products;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (d->product_ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < d->n_products && d->product_ids[lo] == id ? (int64_t)lo : -1;
}

int64_t storefl_agent_find(const storefl_agent_data *d, const char *code) {
  return storefl_catalog_find(d->cat, code);
}

static int new_profile(storefl_agent_data *d, size_t *cap) {
  if (d->n_profiles == *cap) {
    size_t nc = *cap ? *cap * 2 : 256;
    storefl_profile **p = realloc(d->profiles, nc * sizeof *p);
    if (!p)
      return STOREFL_ERR_NOMEM;
    d->profiles = p;
    *cap = nc;
  }
  int rc = storefl_profile_create(d->cat, &d->profiles[d->n_profiles]);
  if (rc == STOREFL_OK)
    d->n_profiles++;
  return rc;
}

/* Rows (group key, basket, product id, time) ordered by group then time: a new group starts a new
 * profile. */
static int load_groups(storefl_agent_data *d, sqlite3_stmt *st, size_t *cap) {
  int q, rc = STOREFL_OK, first = 1;
  sqlite3_int64 group = 0;
  while ((q = sqlite3_step(st)) == SQLITE_ROW) {
    sqlite3_int64 g = sqlite3_column_int64(st, 0);
    const unsigned char *b = sqlite3_column_text(st, 1);
    int64_t idx = index_of(d, sqlite3_column_int64(st, 2));
    int64_t t = sqlite3_column_int64(st, 3);
    if (idx < 0)
      continue; /* cannot happen with the foreign key; skip rather than fail */
    if (first || g != group) {
      if ((rc = new_profile(d, cap)) != STOREFL_OK)
        return rc;
      first = 0;
      group = g;
    }
    uint64_t basket = b ? storefl_fnv1a64(b, (size_t)sqlite3_column_bytes(st, 1)) : (uint64_t)t;
    if ((rc = storefl_profile_add(d->profiles[d->n_profiles - 1], (uint32_t)idx, t, basket)) != STOREFL_OK)
      return rc;
    if (d->n_events == 0 || t < d->first_time)
      d->first_time = t;
    if (t > d->last_time)
      d->last_time = t;
    d->n_events++;
  }
  return q == SQLITE_DONE ? STOREFL_OK : sql_err(q);
}

int storefl_agent_load_profiles(storefl_store *s, storefl_agent_data *d, const char *shopper) {
  if (!d->cat)
    return STOREFL_ERR_INVALID;
  sqlite3 *db = storefl_store_db(s);
  size_t cap = 0;
  sqlite3_stmt *st = NULL;
  int q, rc;
  if (shopper) {
    sqlite3_int64 sid = 0;
    q = sqlite3_prepare_v2(db, "SELECT id FROM shoppers WHERE ext_id = ?", -1, &st, NULL);
    if (q != SQLITE_OK)
      return sql_err(q);
    sqlite3_bind_text(st, 1, shopper, -1, SQLITE_STATIC);
    q = sqlite3_step(st);
    if (q == SQLITE_ROW)
      sid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (q == SQLITE_DONE)
      return STOREFL_ERR_NOT_FOUND;
    if (q != SQLITE_ROW)
      return sql_err(q);
    q = sqlite3_prepare_v2(db,
                           "SELECT shopper_id, basket, product_id, time FROM events"
                           " WHERE kind = 2 AND shopper_id = ? ORDER BY time, basket, id",
                           -1, &st, NULL);
    if (q != SQLITE_OK)
      return sql_err(q);
    sqlite3_bind_int64(st, 1, sid);
    rc = load_groups(d, st, &cap);
    sqlite3_finalize(st);
    return rc;
  }
  q = sqlite3_prepare_v2(db,
                         "SELECT shopper_id, basket, product_id, time FROM events"
                         " WHERE kind = 2 AND shopper_id IS NOT NULL ORDER BY shopper_id, time, basket, id",
                         -1, &st, NULL);
  if (q != SQLITE_OK)
    return sql_err(q);
  rc = load_groups(d, st, &cap);
  sqlite3_finalize(st);
  if (rc != STOREFL_OK)
    return rc;
  /* Anonymous purchases: one profile per basket (grouped by the basket's hash). */
  q = sqlite3_prepare_v2(db,
                         "SELECT coalesce(basket, '') AS b, basket, product_id, time FROM events"
                         " WHERE kind = 2 AND shopper_id IS NULL ORDER BY b, time, id",
                         -1, &st, NULL);
  if (q != SQLITE_OK)
    return sql_err(q);
  /* The group key is text here: map it to an integer by hashing in a wrapper loop. */
  int first = 1;
  uint64_t group = 0;
  while ((q = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *b = sqlite3_column_text(st, 0);
    uint64_t g = storefl_fnv1a64(b ? (const char *)b : "", (size_t)sqlite3_column_bytes(st, 0));
    int64_t idx = index_of(d, sqlite3_column_int64(st, 2));
    int64_t t = sqlite3_column_int64(st, 3);
    if (idx < 0)
      continue;
    if (first || g != group) {
      if ((rc = new_profile(d, &cap)) != STOREFL_OK)
        break;
      first = 0;
      group = g;
    }
    if ((rc = storefl_profile_add(d->profiles[d->n_profiles - 1], (uint32_t)idx, t, g)) != STOREFL_OK)
      break;
    if (d->n_events == 0 || t < d->first_time)
      d->first_time = t;
    if (t > d->last_time)
      d->last_time = t;
    d->n_events++;
  }
  sqlite3_finalize(st);
  if (rc != STOREFL_OK)
    return rc;
  return q == SQLITE_DONE ? STOREFL_OK : sql_err(q);
}

void storefl_agent_data_free(storefl_agent_data *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->n_profiles; i++)
    storefl_profile_free(d->profiles[i]);
  free(d->profiles);
  free(d->product_ids);
  storefl_catalog_free(d->cat);
  memset(d, 0, sizeof *d);
}

int storefl_agent_load_model(storefl_store *s, const char *kind, storefl_model **out, uint64_t *version,
                             uint8_t digest[STOREFL_MODEL_DIGEST_LEN]) {
  void *blob = NULL;
  size_t len = 0;
  uint8_t stored[32];
  uint64_t v = 0;
  int rc = storefl_store_get_model(s, kind, UINT64_MAX, &v, stored, &blob, &len);
  if (rc != STOREFL_OK)
    return rc;
  storefl_model_msg msg;
  storefl_model_config cfg;
  storefl_model *m = NULL;
  rc = storefl_model_decode(blob, len, len, &msg);
  if (rc == STOREFL_OK && (msg.arch.len != strlen(STOREFL_MODEL_ARCH) ||
                           memcmp(msg.arch.ptr, STOREFL_MODEL_ARCH, msg.arch.len) != 0))
    rc = STOREFL_ERR_FORMAT;
  if (rc == STOREFL_OK)
    rc = storefl_model_config_from_tensors(msg.tensors, msg.n_tensors, &cfg);
  if (rc == STOREFL_OK)
    rc = storefl_model_create(&cfg, &m);
  if (rc == STOREFL_OK)
    rc = storefl_model_from_tensors(m, msg.tensors, msg.n_tensors);
  uint8_t dg[32];
  if (rc == STOREFL_OK)
    rc = storefl_model_sha256(m, dg);
  /* The digest is checked against both the message and the table: a blob corrupted on disk or
   * stored under the wrong digest is refused rather than used. */
  if (rc == STOREFL_OK && (memcmp(dg, stored, 32) != 0 || memcmp(dg, msg.digest, 32) != 0))
    rc = STOREFL_ERR_CONFLICT;
  free(blob);
  if (rc != STOREFL_OK) {
    storefl_model_free(m);
    return rc;
  }
  if (version)
    *version = v;
  if (digest)
    memcpy(digest, dg, 32);
  *out = m;
  return STOREFL_OK;
}

int storefl_agent_save_model(storefl_store *s, const char *kind, uint64_t version, const storefl_model *m) {
  storefl_model_msg msg;
  memset(&msg, 0, sizeof msg);
  msg.model_version = version;
  msg.arch = (storefl_str){STOREFL_MODEL_ARCH, strlen(STOREFL_MODEL_ARCH)};
  int rc = storefl_model_to_tensors(m, msg.tensors, STOREFL_MAX_TENSORS, &msg.n_tensors);
  if (rc == STOREFL_OK)
    rc = storefl_model_sha256(m, msg.digest);
  size_t len = 0;
  if (rc == STOREFL_OK)
    rc = storefl_model_encode(&msg, NULL, 0, &len);
  if (rc != STOREFL_OK)
    return rc;
  uint8_t *buf = malloc(len);
  if (!buf)
    return STOREFL_ERR_NOMEM;
  rc = storefl_model_encode(&msg, buf, len, &len);
  if (rc == STOREFL_OK)
    rc = storefl_store_put_model(s, kind, version, msg.digest, buf, len);
  free(buf);
  return rc;
}

uint64_t storefl_agent_model_version(storefl_store *s, const char *kind) {
  sqlite3_stmt *st = NULL;
  uint64_t v = 0;
  if (sqlite3_prepare_v2(storefl_store_db(s), "SELECT max(version) FROM models WHERE kind = ?", -1, &st,
                         NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
    v = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

int storefl_agent_last_purchase(storefl_store *s, int64_t *out) {
  sqlite3_stmt *st = NULL;
  int q =
      sqlite3_prepare_v2(storefl_store_db(s), "SELECT max(time) FROM events WHERE kind = 2", -1, &st, NULL);
  if (q != SQLITE_OK)
    return sql_err(q);
  q = sqlite3_step(st);
  *out = (q == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  return q == SQLITE_ROW ? STOREFL_OK : sql_err(q);
}

int storefl_agent_local_update(storefl_store *s, const storefl_model *global, const storefl_train_config *cfg,
                               storefl_model *delta, size_t *n_examples) {
  if (!s || !global || !cfg || !delta)
    return STOREFL_ERR_INVALID;
  storefl_agent_data d;
  int rc = storefl_agent_load_catalog(s, global->cfg.buckets, &d);
  if (rc == STOREFL_OK)
    rc = storefl_agent_load_profiles(s, &d, NULL);
  if (rc == STOREFL_OK) {
    storefl_train_data td = {d.cat, (const storefl_profile *const *)d.profiles, d.n_profiles, INT64_MIN,
                             INT64_MAX};
    rc = storefl_local_update(global, &td, cfg, delta, n_examples);
  }
  storefl_agent_data_free(&d);
  return rc;
}
