#include "storefl/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "storefl/error.h"

enum { CSV_CHUNK = 1 << 16 };

struct storefl_csv {
  gzFile gz;              /* NULL when reading from memory */
  const unsigned char *mem;
  size_t mem_len, mem_pos;
  unsigned char *in;      /* input chunk (file mode) */
  size_t in_len, in_pos;
  int eof;
  char *rec;              /* field bytes, each NUL-terminated */
  size_t rec_cap, rec_len;
  size_t *offs;           /* start offset of each field in rec */
  size_t max_fields, nfields;
  uint64_t line, rec_line;
  int failed;
  char err[160];
};

static int csv_alloc(storefl_csv *r, const storefl_csv_limits *limits) {
  r->rec_cap = limits && limits->max_record_bytes ? limits->max_record_bytes : 65536;
  r->max_fields = limits && limits->max_fields ? limits->max_fields : 256;
  r->rec = malloc(r->rec_cap + 1);
  r->offs = malloc(r->max_fields * sizeof *r->offs);
  r->line = 1;
  return r->rec && r->offs ? STOREFL_OK : STOREFL_ERR_NOMEM;
}

int storefl_csv_open(const char *path, const storefl_csv_limits *limits, storefl_csv **out) {
  *out = NULL;
  storefl_csv *r = calloc(1, sizeof *r);
  if (!r)
    return STOREFL_ERR_NOMEM;
  int rc = csv_alloc(r, limits);
  if (rc == STOREFL_OK && !(r->in = malloc(CSV_CHUNK)))
    rc = STOREFL_ERR_NOMEM;
  if (rc == STOREFL_OK && !(r->gz = gzopen(path, "rb")))
    rc = STOREFL_ERR_IO;
  if (rc == STOREFL_OK && gzbuffer(r->gz, CSV_CHUNK) != 0)
    rc = STOREFL_ERR_IO;
  if (rc != STOREFL_OK) {
    storefl_csv_close(r);
    return rc;
  }
  *out = r;
  return STOREFL_OK;
}

int storefl_csv_open_mem(const void *data, size_t len, const storefl_csv_limits *limits, storefl_csv **out) {
  *out = NULL;
  storefl_csv *r = calloc(1, sizeof *r);
  if (!r)
    return STOREFL_ERR_NOMEM;
  r->mem = data;
  r->mem_len = len;
  int rc = csv_alloc(r, limits);
  if (rc != STOREFL_OK) {
    storefl_csv_close(r);
    return rc;
  }
  *out = r;
  return STOREFL_OK;
}

void storefl_csv_close(storefl_csv *r) {
  if (!r)
    return;
  if (r->gz)
    gzclose(r->gz);
  free(r->in);
  free(r->rec);
  free(r->offs);
  free(r);
}

/* Returns the next byte, -1 at end of input, -2 on read error. */
static int csv_getc(storefl_csv *r) {
  if (!r->gz)
    return r->mem_pos < r->mem_len ? r->mem[r->mem_pos++] : -1;
  if (r->in_pos == r->in_len) {
    if (r->eof)
      return -1;
    int n = gzread(r->gz, r->in, CSV_CHUNK);
    if (n < 0)
      return -2;
    if (n == 0) {
      r->eof = 1;
      return -1;
    }
    r->in_len = (size_t)n;
    r->in_pos = 0;
  }
  return r->in[r->in_pos++];
}

static int csv_peek(storefl_csv *r) {
  int c = csv_getc(r);
  if (c >= 0) {
    if (r->gz)
      r->in_pos--;
    else
      r->mem_pos--;
  }
  return c;
}

static int csv_fail(storefl_csv *r, int rc, const char *what) {
  r->failed = rc;
  snprintf(r->err, sizeof r->err, "line %llu: %s", (unsigned long long)r->rec_line, what);
  return rc;
}

static int csv_put(storefl_csv *r, int c) {
  if (r->rec_len >= r->rec_cap)
    return csv_fail(r, STOREFL_ERR_TOO_LARGE, "record longer than the configured limit");
  r->rec[r->rec_len++] = (char)c;
  return STOREFL_OK;
}

static int csv_start_field(storefl_csv *r) {
  if (r->nfields >= r->max_fields)
    return csv_fail(r, STOREFL_ERR_TOO_LARGE, "more fields than the configured limit");
  r->offs[r->nfields++] = r->rec_len;
  return STOREFL_OK;
}

int storefl_csv_next(storefl_csv *r) {
  if (r->failed)
    return r->failed;
  r->rec_len = 0;
  r->nfields = 0;
  r->rec_line = r->line;
  int c = csv_getc(r);
  if (c == -1)
    return 0;
  int rc;
  for (;;) { /* one field per iteration; c is its first byte */
    if ((rc = csv_start_field(r)) != STOREFL_OK)
      return rc;
    if (c == '"') {
      for (;;) {
        c = csv_getc(r);
        if (c == -2)
          return csv_fail(r, STOREFL_ERR_IO, "read error");
        if (c == -1)
          return csv_fail(r, STOREFL_ERR_INVALID, "unterminated quoted field");
        if (c == '"') {
          if (csv_peek(r) == '"') {
            csv_getc(r);
          } else {
            c = csv_getc(r);
            break;
          }
        } else if (c == '\n') {
          r->line++;
        }
        if ((rc = csv_put(r, c)) != STOREFL_OK)
          return rc;
      }
      if (c == '\r' && csv_peek(r) == '\n')
        c = csv_getc(r);
      if (c != ',' && c != '\n' && c != -1) {
        if (c == -2)
          return csv_fail(r, STOREFL_ERR_IO, "read error");
        return csv_fail(r, STOREFL_ERR_INVALID, "characters after a closing quote");
      }
    } else {
      while (c != ',' && c != '\n' && c != -1) {
        if (c == -2)
          return csv_fail(r, STOREFL_ERR_IO, "read error");
        if (c == '\r' && csv_peek(r) == '\n') {
          c = csv_getc(r);
          break;
        }
        if (c == '"')
          return csv_fail(r, STOREFL_ERR_INVALID, "quote inside an unquoted field");
        if ((rc = csv_put(r, c)) != STOREFL_OK)
          return rc;
        c = csv_getc(r);
      }
      if (c == -2)
        return csv_fail(r, STOREFL_ERR_IO, "read error");
    }
    if ((rc = csv_put(r, '\0')) != STOREFL_OK)
      return rc;
    if (c == ',') {
      c = csv_getc(r);
      if (c == -2)
        return csv_fail(r, STOREFL_ERR_IO, "read error");
      if (c == '\n' || c == -1) { /* trailing empty field */
        if ((rc = csv_start_field(r)) != STOREFL_OK || (rc = csv_put(r, '\0')) != STOREFL_OK)
          return rc;
        if (c == '\n')
          r->line++;
        return 1;
      }
      continue;
    }
    if (c == '\n')
      r->line++;
    return 1;
  }
}

size_t storefl_csv_nfields(const storefl_csv *r) { return r->nfields; }

const char *storefl_csv_field(const storefl_csv *r, size_t i, size_t *len) {
  if (i >= r->nfields)
    return NULL;
  const char *f = r->rec + r->offs[i];
  if (len)
    *len = (i + 1 < r->nfields ? r->offs[i + 1] : r->rec_len) - r->offs[i] - 1;
  return f;
}

uint64_t storefl_csv_line(const storefl_csv *r) { return r->rec_line; }

uint64_t storefl_csv_offset(const storefl_csv *r) {
  if (!r->gz)
    return r->mem_pos;
  z_off_t off = gzoffset(r->gz);
  return off < 0 ? 0 : (uint64_t)off;
}

const char *storefl_csv_error(const storefl_csv *r) { return r->failed ? r->err : ""; }

int storefl_csv_find(const storefl_csv *r, const char *name) {
  for (size_t i = 0; i < r->nfields; i++)
    if (strcmp(r->rec + r->offs[i], name) == 0)
      return (int)i;
  return -1;
}
