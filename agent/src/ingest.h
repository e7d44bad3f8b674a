/*
 * Streaming import of a retailer CSV export into the store, as one logical unit.
 *
 * Rows are parsed by the retail reader (storefl/retail_csv.h) and appended, one transaction per
 * batch, to the store's staging table under a new ingest run ('running'). Only when the whole file
 * has been read does one final transaction merge the staged rows into products, shoppers and
 * events and mark the run 'complete'. Readers therefore never see a partial file: an error that
 * stops the ingest deletes the run's staged rows ('failed'), and a crash or kill -9 leaves them
 * behind under a 'running' run that the next storefl_store_open() discards ('aborted'). Memory
 * is bounded by the batch, whatever the file size.
 *
 * Which rows become events: clean purchases (storefl_retail_classify() == 0); returns (the kind
 * column says so, or a cancellation invoice with a negative quantity) of a clean product with a
 * price, stored with the units returned; views and add-to-carts of a product with text (no price
 * needed). Everything else (non-product codes, zero prices, stock adjustments) is "filtered":
 * counted, not an error. Re-importing the same file adds nothing (events are keyed by basket,
 * product, time and source line).
 */
#ifndef STOREFL_INGEST_H
#define STOREFL_INGEST_H
#include <stdint.h>

#include "storefl/retail_csv.h"
#include "storefl_agent.h"

typedef enum { STOREFL_ON_ERROR_SKIP = 0, STOREFL_ON_ERROR_STOP = 1 } storefl_on_error;

typedef struct storefl_ingest_stats {
  int64_t run_id;
  uint64_t rows;      /* data rows read (header excluded) */
  uint64_t staged;    /* rows kept for the store */
  uint64_t filtered;  /* rows dropped by the cleaning rules */
  uint64_t bad;       /* unparsable rows (skipped with STOREFL_ON_ERROR_SKIP) */
  uint64_t inserted;  /* new events after the merge */
  uint64_t duplicate; /* staged rows already in the store (re-import) */
  uint64_t bytes;     /* bytes consumed from the file (compressed for .gz) */
  int recovered_runs; /* interrupted earlier runs rolled back before this one */
} storefl_ingest_stats;

typedef struct storefl_ingest_options {
  storefl_on_error on_error;
  uint32_t batch; /* rows per staging transaction; 0 -> 10000 */
  int any_code;   /* accept any product code (not only ^[0-9]{5}[A-Za-z]*$, the Online
                     Retail rule) */
  /* Called after each batch commit and once before the merge; may be NULL. */
  void (*progress)(void *user, const storefl_ingest_stats *st);
  /* Called for each bad row (message "line N: ..."); may be NULL. */
  void (*bad_row)(void *user, const char *message);
  void *user;
} storefl_ingest_options;

/* Ingests path (CSV or CSV.gz) into s with the column mapping cols. s must not be inside a batch.
 * *stats is filled as far as the ingest got. Errors: STOREFL_ERR_UNAVAILABLE (another ingest is
 * running on this store), STOREFL_ERR_INVALID (missing column, bad row with STOREFL_ON_ERROR_STOP,
 * broken CSV), STOREFL_ERR_IO, STOREFL_ERR_NOMEM; storefl_store_errmsg(s) says why, with the line
 * number. On any error nothing of this file is visible in the store. */
int storefl_ingest_file(storefl_store *s, const char *path, const storefl_retail_columns *cols,
                        const storefl_ingest_options *opts, storefl_ingest_stats *stats);

#endif
