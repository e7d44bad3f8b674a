/*
 * Agent-internal parts of the store used by the ingest and partition code: error helpers, the
 * ingest lock and the recovery of interrupted ingests. Not part of the public storefl_agent.h.
 */
#ifndef STOREFL_STORE_INTERNAL_H
#define STOREFL_STORE_INTERNAL_H
#include <sqlite3.h>

#include "storefl_agent.h"

/* Maps a SQLite result code to a storefl_err and records "what: sqlite message" as the handle's
 * error message. Returns the storefl_err. */
int storefl_store_sqlerr(storefl_store *s, int sqlite_rc, const char *what);

/* Sets the handle's error message (printf-style) and returns err. */
int storefl_store_fail(storefl_store *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Runs SQL with no result rows; on failure records the message and returns the storefl_err. */
int storefl_store_exec(storefl_store *s, const char *sql);

/* Takes the store's ingest lock (an fcntl lock on "<db>-ingest.lock", released by the kernel if the
 * process dies), so that only one ingest runs at a time and staging rows of a live ingest are never
 * mistaken for leftovers. Errors: STOREFL_ERR_UNAVAILABLE (another ingest runs), _IO. */
int storefl_store_ingest_lock(storefl_store *s);
void storefl_store_ingest_unlock(storefl_store *s);

/* Deletes the staging rows of ingest runs left 'running' by a dead process and marks them
 * 'aborted'. Needs the ingest lock (takes it temporarily if not held; skips silently when another
 * process holds it). *aborted (may be NULL) gets the number of runs rolled back. */
int storefl_store_recover_ingests(storefl_store *s, int *aborted);

/* Deletes the staged rows of run_id in bounded chunks, inside the caller's transaction. */
int storefl_store_delete_staging(storefl_store *s, int64_t run_id);

/* Interrupted ingest runs this handle has discarded so far (at open or later). */
int storefl_store_recovered_runs(const storefl_store *s);

/* 1 while a batch (storefl_store_begin) is open. */
int storefl_store_in_batch(const storefl_store *s);

#endif
