/*
 * Streaming RFC 4180 CSV reader over plain or gzip-compressed files (zlib detects which).
 *
 * Memory is bounded by the limits given at open, whatever the input: a record longer than
 * max_record_bytes or with more than max_fields fields is an error (STOREFL_ERR_TOO_LARGE), not a
 * reallocation. Fields are returned NUL-terminated, quotes removed and "" unescaped; the pointers
 * stay valid until the next call to storefl_csv_next() or storefl_csv_close().
 */
#ifndef STOREFL_CSV_H
#define STOREFL_CSV_H
#include <stddef.h>
#include <stdint.h>

typedef struct storefl_csv storefl_csv;

typedef struct storefl_csv_limits {
  size_t max_record_bytes; /* 0 -> 65536 */
  size_t max_fields;       /* 0 -> 256 */
} storefl_csv_limits;

/* Opens a file ("-" is not accepted). limits may be NULL for the defaults. On success *out is
 * owned by the caller and released with storefl_csv_close(). Errors: STOREFL_ERR_IO (cannot open),
 * STOREFL_ERR_NOMEM. */
int storefl_csv_open(const char *path, const storefl_csv_limits *limits, storefl_csv **out);

/* Reads from a caller-owned memory buffer that must outlive the reader (used by tests and fuzzers). */
int storefl_csv_open_mem(const void *data, size_t len, const storefl_csv_limits *limits, storefl_csv **out);

/* Reads the next record. Returns 1 when a record was read, 0 at end of input, or a negative
 * storefl_err: STOREFL_ERR_INVALID (bad quoting), STOREFL_ERR_TOO_LARGE (limits), STOREFL_ERR_IO
 * (read or decompression error). After an error the reader stays unusable; see storefl_csv_error(). */
int storefl_csv_next(storefl_csv *r);

size_t storefl_csv_nfields(const storefl_csv *r);
/* Field i of the current record, or NULL if i is out of range. *len (if not NULL) gets its length. */
const char *storefl_csv_field(const storefl_csv *r, size_t i, size_t *len);
/* 1-based line number at which the current record starts (quoted fields may span lines). */
uint64_t storefl_csv_line(const storefl_csv *r);
/* Bytes consumed from the underlying file so far (compressed bytes for .gz): for progress. */
uint64_t storefl_csv_offset(const storefl_csv *r);
/* Human-readable description of the last error ("line 12: unterminated quoted field"). */
const char *storefl_csv_error(const storefl_csv *r);

/* Index of the field equal to name in the current record (typically the header), or -1. */
int storefl_csv_find(const storefl_csv *r, const char *name);

void storefl_csv_close(storefl_csv *r);

#endif
