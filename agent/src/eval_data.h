/*
 * The evaluation dataset: a retailer export loaded once into memory, cleaned, and split in time
 * exactly as issue 7 ("Evaluation") defines it.
 *
 * Definitions (the C code, tools/eval_split_reference.py and docs/evaluation.md agree on them):
 * - clean line: not a cancellation, quantity > 0, unit price > 0, code matching
 *   ^[0-9]{5}[A-Za-z]*$ (storefl_retail_classify; an empty description does not make a line unclean);
 *   codes upper-cased (a lower-case variant is the same product);
 * - cut: the instant at 80% of the time range of the raw file (first to last time of ALL lines),
 *   compared exactly in integers: t is at or after the cut iff 5t >= 5*first + 4*(last - first);
 * - new product: a code first seen in clean lines at or after the cut; its launch time is that
 *   first clean line;
 * - clients: customers with >= 20 clean lines before the cut (anonymous lines belong to none), or
 *   countries (every line has one; all countries are clients);
 * - test event: one per (client, product, invoice) over clean lines at or after the evaluation
 *   start on new products by eligible clients; its candidates are ALL new products launched by the
 *   event's time (full ranking);
 * - regimes: zero-shot trains only on lines before the cut and evaluates from the cut;
 *   few-shot also has the first 14 days after the cut (the adaptation window) for adaptation and
 *   federated rounds, and evaluates on events from cut + 14 days;
 * - validation split: the same rules applied to the period before the test cut only (its own cut at
 *   80% of [first, test cut)), so that tuning never sees the test period.
 */
#ifndef STOREFL_EVAL_DATA_H
#define STOREFL_EVAL_DATA_H
#include <stddef.h>
#include <stdint.h>

#include "storefl/retail_csv.h"

typedef struct storefl_eval_product {
  char code[24];       /* upper-cased */
  char *text;          /* first non-empty description of a clean line (else of any line); owned */
  float price;         /* unit price of the first clean line */
  int64_t first_clean; /* time of the first clean line, INT64_MAX if the code has none */
  int64_t first_any;   /* time of the first line of any kind */
} storefl_eval_product;

/* A clean line. Lines are sorted by time (stable: file order within a minute). */
typedef struct storefl_eval_line {
  int64_t t;
  uint32_t product;
  uint32_t invoice;
  int32_t customer; /* index into customer ids, -1 = anonymous */
  uint16_t country;
  float quantity;
  float price;
} storefl_eval_line;

typedef struct storefl_eval_data {
  storefl_eval_product *products;
  size_t nproducts;
  storefl_eval_line *lines; /* clean lines only */
  size_t nlines;
  char **customers; /* ids without the ".0" artefact */
  size_t ncustomers;
  char **countries;
  size_t ncountries;
  size_t ninvoices;
  /* Raw-file figures. */
  uint64_t nrows;          /* data rows read */
  uint64_t nbad_rows;      /* rows that did not parse (skipped) */
  int64_t t_first, t_last; /* first and last time of ALL rows */
  size_t nclean_with_customer;
} storefl_eval_data;

/* Limits that bound memory whatever the input. */
typedef struct storefl_eval_load_opts {
  const storefl_retail_columns *columns; /* NULL = Online Retail defaults */
  uint64_t max_rows;                     /* 0 = 20,000,000; more rows is STOREFL_ERR_TOO_LARGE */
  uint64_t max_bad_rows;                 /* 0 = 1,000; unparsable rows are skipped up to this many */
  /* Optional progress callback, called every ~64k rows. */
  void (*progress)(void *arg, uint64_t rows, uint64_t bytes);
  void *progress_arg;
} storefl_eval_load_opts;

/* Loads an export. On success *out is owned by the caller (storefl_eval_data_free). Errors:
 * STOREFL_ERR_IO / STOREFL_ERR_INVALID from the reader (err says where), STOREFL_ERR_TOO_LARGE
 * (limits), STOREFL_ERR_NOMEM. err may be NULL. */
int storefl_eval_data_load(const char *path, const storefl_eval_load_opts *opts, storefl_eval_data **out,
                           char *err, size_t errlen);
/* Same from a memory buffer (tests). */
int storefl_eval_data_load_mem(const void *buf, size_t len, const storefl_eval_load_opts *opts,
                               storefl_eval_data **out, char *err, size_t errlen);
void storefl_eval_data_free(storefl_eval_data *d);

typedef enum { STOREFL_EVAL_CUSTOMERS = 0, STOREFL_EVAL_COUNTRIES = 1 } storefl_eval_clients;
typedef enum { STOREFL_EVAL_ZERO_SHOT = 0, STOREFL_EVAL_FEW_SHOT = 1 } storefl_eval_regime;
typedef enum { STOREFL_EVAL_TEST = 0, STOREFL_EVAL_VALIDATION = 1 } storefl_eval_period;

typedef struct storefl_eval_split_opts {
  storefl_eval_clients clients;
  storefl_eval_regime regime;
  storefl_eval_period period;
  unsigned min_customer_lines; /* 0 = 20 */
  unsigned adapt_days;         /* few-shot adaptation window, 0 = 14 */
  /* Keep only the first max_clients eligible clients (in order of client index, i.e. of first
   * appearance in the file); 0 = all. For small test slices; the full evaluation uses all. */
  size_t max_clients;
} storefl_eval_split_opts;

typedef struct storefl_eval_event {
  int64_t t;
  uint32_t client;  /* split client index */
  uint32_t product; /* data product index (a new product) */
  uint32_t invoice;
  uint32_t line;  /* index of the first clean line of (client, product, invoice) */
  uint32_t ncand; /* number of new products launched by t (the candidate count) */
} storefl_eval_event;

typedef struct storefl_eval_split {
  storefl_eval_split_opts opts;
  int64_t range_first, range_last; /* the time range the cut is taken on */
  int64_t cut;                     /* first integer second at or after the cut */
  int64_t adapt_end;               /* training data: lines with t < adapt_end (= cut in zero-shot) */
  int64_t eval_start;              /* events: t >= eval_start (= adapt_end) */
  int64_t end;                     /* lines with t >= end do not exist for this split (INT64_MAX for test) */
  /* New products sorted by launch time (ties by product index). */
  uint32_t *new_products;
  int64_t *launch; /* launch[i] = first clean time of new_products[i] */
  size_t nnew;
  uint8_t *is_new; /* per data product */
  /* Clients: for customers, client i is data customer client_source[i]; for countries, country. */
  size_t nclients; /* eligible clients */
  uint32_t *client_source;
  char **client_names;        /* borrowed from data */
  int32_t *line_client;       /* per data line: split client index or -1 (not eligible / out of slice) */
  storefl_eval_event *events; /* sorted by (t, line) */
  size_t nevents;
  size_t nclients_with_events;
  size_t nproducts_with_events;
} storefl_eval_split;

/* Builds a split over d (which must outlive it). *out owned by the caller (storefl_eval_split_free).
 * Errors: STOREFL_ERR_INVALID (bad options, empty data), STOREFL_ERR_NOMEM. */
int storefl_eval_split_build(const storefl_eval_data *d, const storefl_eval_split_opts *opts,
                             storefl_eval_split **out);
void storefl_eval_split_free(storefl_eval_split *s);

/* Number of new products launched by t (binary search): the candidates of an event at t are
 * new_products[0 .. n-1]. */
size_t storefl_eval_split_candidates(const storefl_eval_split *s, int64_t t);

#endif
