/*
 * The aggregator's audit ledger: one signed, hash-chained entry per closed round, in SQLite (WAL).
 *
 * Entry (protocol/include/storefl/messages.h, storefl_ledger_entry): index, round, mode, q claimed,
 * sigma, C, delta, close time, model digest, participants (sorted ids), cumulative epsilon of every
 * store known to the ledger, previous entry hash, entry hash = SHA-256 of the entry's canonical
 * CBOR without hash and signature (protocol/codec.h, storefl_ledger_entry_encode_signed_part), and
 * an ECDSA P-256 signature (DER) over that hash by the aggregator's key. Rows hold the canonical
 * CBOR of the whole entry, so `openssl dgst -sha256 -verify` can check an exported entry with
 * nothing but the public key (docs/privacy.md).
 *
 * Accounting (per store, RDP at the default orders of accountant.h, kept in table ledger_rdp and
 * re-derivable from the entries alone -- audit verify replays it):
 *  - q claimed: storefl_budget_effective_q (q only for central rounds closing at their deadline).
 *  - q = 1 rounds charge their participants only (non-participants' data was not used);
 *  - q < 1 rounds charge every store known to the ledger, participant or not: under Poisson
 *    sampling a store's absence is as secret as its presence, and the amplified bound is a bound
 *    on the round as a whole for each potential participant.
 *
 * All functions return 0 or a negative storefl_err.
 */
#ifndef STOREFL_LEDGER_H
#define STOREFL_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "storefl/messages.h"

/* ---- the aggregator's signing key ------------------------------------------------------------ */

typedef struct storefl_signer storefl_signer;

/* Loads the ECDSA P-256 private key (PEM) at key_path, or creates it there if the file does not
 * exist (created with O_EXCL and mode 0600). STOREFL_ERR_FORBIDDEN if the existing file is readable
 * or writable by group or others (mode looser than 0600): a leaked key lets anyone forge history.
 * STOREFL_ERR_CRYPTO if the file is not a P-256 key. *created (may be NULL) is set to 1 if the key
 * was made now. Caller frees with storefl_signer_free. */
int storefl_signer_open(const char *key_path, storefl_signer **out, int *created);

/* A verify-only signer from a published public key (PEM file). */
int storefl_signer_open_public(const char *pem_path, storefl_signer **out);

/* The public key as PEM ("-----BEGIN PUBLIC KEY-----..."), NUL-terminated. STOREFL_ERR_TOO_LARGE
 * if cap is too small (256 bytes is enough). */
int storefl_signer_public_pem(const storefl_signer *s, char *buf, size_t cap);

void storefl_signer_free(storefl_signer *s);

/* ---- the ledger ------------------------------------------------------------------------------ */

/* Opens (creating) the SQLite database at path in WAL mode with the ledger tables. */
int storefl_ledger_open_db(const char *path, sqlite3 **db);

/* Creates the ledger tables if missing (ledger, ledger_rdp). */
int storefl_ledger_init_schema(sqlite3 *db);

/* Round results to record (what the round logic knows when it closes a round). */
typedef struct storefl_ledger_round {
  uint64_t round;
  storefl_privacy_mode mode;
  double participation_q; /* q the round announced */
  int closed_on_deadline; /* 1 if it closed at its deadline (needed to claim amplification) */
  double noise_multiplier;
  double clip_norm;
  double delta;
  int64_t closed_unix_ms;
  uint8_t model_digest[STOREFL_DIGEST_LEN];
  uint32_t n_participants;
  const storefl_str *participants; /* any order, no duplicates */
  /* Every enrolled store (e.g. the PSK keys file), any order. With sampling (q < 1) not being
   * selected is part of the mechanism, so a round charges each enrolled store whether or not it
   * sent anything; without this list only stores the ledger has already seen would be charged. */
  uint32_t n_population;
  const storefl_str *population;
} storefl_ledger_round;

/* Appends the entry for a closed round: charges the stores, builds, hashes, signs and inserts it.
 * Runs inside the caller's transaction if one is open (so that the model, the round state and the
 * ledger commit together), else in its own. *index_out (may be NULL) receives the entry's index.
 * STOREFL_ERR_INVALID for bad round data, STOREFL_ERR_CONFLICT if this round is already recorded. */
int storefl_ledger_append(sqlite3 *db, storefl_signer *signer, const storefl_ledger_round *r,
                          uint64_t *index_out);

/* Cumulative epsilon of a store at delta (0 if unknown). */
int storefl_ledger_store_epsilon(sqlite3 *db, const char *store_id, double delta, double *eps);

/* The aggregator's budget check for an update: would charging store_id for a round (mode, q,
 * closes on deadline, sigma) at delta keep it within cap? 0 yes, STOREFL_ERR_BUDGET no (answer
 * 4.03 budget_exceeded); *eps_now / *eps_after (may be NULL) give the figures. */
int storefl_ledger_budget_check(sqlite3 *db, const char *store_id, storefl_privacy_mode mode, double q,
                                int closes_on_deadline, double sigma, double delta, double cap,
                                double *eps_now, double *eps_after);

/* Visits the entries in index order. The entry and its cbor are valid during the call only. A
 * non-zero return from cb stops the walk and is returned. */
typedef int (*storefl_ledger_visit_fn)(void *ctx, const storefl_ledger_entry *e, const uint8_t *signed_cbor,
                                       size_t signed_len);
int storefl_ledger_foreach(sqlite3 *db, storefl_ledger_visit_fn cb, void *ctx);

/* Result of a verification. */
typedef struct storefl_ledger_report {
  uint64_t n_entries;
  int64_t bad_row;   /* rowid (= stored index) of the first bad entry, -1 if none */
  char problem[256]; /* what is wrong with it */
} storefl_ledger_report;

/* Checks every entry in order: it decodes, its index is its position (0, 1, 2, ...; catches
 * deleted, inserted and swapped rows), prev_hash is the previous entry's hash, entry_hash is the
 * SHA-256 of its canonical signed part, the signature verifies under pub, and the epsilons it lists
 * are those a replay of the ledger's own rounds gives (relative 1e-9). Returns 0 if all is well,
 * STOREFL_ERR_INVALID if an entry is bad (report->bad_row and report->problem say which and why),
 * other errors if the database cannot be read. */
int storefl_ledger_verify(sqlite3 *db, const storefl_signer *pub, storefl_ledger_report *report);

#endif
