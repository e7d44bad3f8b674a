/* Test helper: writes a ledger of N closed rounds into DB, signed with KEY (created if missing), via
 * the library call the aggregator uses when it closes a round (storefl_ledger_append).
 * Usage: privacy_make_ledger DB KEY N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storefl/error.h"
#include "storefl/ledger.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DB KEY N\n", argv[0]);
    return 2;
  }
  int n = atoi(argv[3]);
  sqlite3 *db;
  storefl_signer *signer;
  int rc = storefl_ledger_open_db(argv[1], &db);
  if (rc == 0)
    rc = storefl_signer_open(argv[2], &signer, NULL);
  if (rc != 0) {
    fprintf(stderr, "open: %s\n", storefl_strerror(rc));
    return 1;
  }
  static const char *ids[] = {"store-001", "store-002", "store-003", "store-004", "store-005"};
  for (int i = 0; i < n; i++) {
    storefl_str parts[5];
    uint32_t np = 0;
    for (int k = 0; k < 5; k++)
      if ((i + k) % 3 != 0) /* a varying subset each round */
        parts[np++] = (storefl_str){ids[k], strlen(ids[k])};
    storefl_ledger_round r;
    memset(&r, 0, sizeof r);
    r.round = (uint64_t)i + 1;
    r.mode = i % 4 == 3 ? STOREFL_PRIVACY_LOCAL : STOREFL_PRIVACY_CENTRAL;
    r.participation_q = 0.2;
    r.closed_on_deadline = i % 5 != 4;
    r.noise_multiplier = 1.2;
    r.clip_norm = 0.5;
    r.delta = 1e-6;
    r.closed_unix_ms = 1795000000000LL + (int64_t)i * 3600000;
    memset(r.model_digest, 0xa0 + i, sizeof r.model_digest);
    r.n_participants = np;
    r.participants = parts;
    rc = storefl_ledger_append(db, signer, &r, NULL);
    if (rc != 0) {
      fprintf(stderr, "append round %d: %s\n", i + 1, storefl_strerror(rc));
      return 1;
    }
  }
  storefl_signer_free(signer);
  return sqlite3_close(db) == SQLITE_OK ? 0 : 1;
}
