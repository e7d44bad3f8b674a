#include "storefl/retail_csv.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "storefl/csv.h"
#include "storefl/error.h"

static const char *const COL_KEYS[STOREFL_COL_COUNT] = {
    "product", "text",     "time",  "basket",  "shopper", "quantity",
    "price",   "category", "brand", "country", "kind",
};

enum { FIRST_OPTIONAL = STOREFL_COL_CATEGORY, CODE_MAX = 64, SHOPPER_MAX = 128 };

void storefl_retail_columns_default(storefl_retail_columns *c) {
  static const char *const DEFAULTS[STOREFL_COL_COUNT] = {
      "StockCode",
      "Description",
      "InvoiceDate",
      "InvoiceNo",
      "CustomerID",
      "Quantity",
      "UnitPrice",
      "",
      "",
      "Country",
      "",
  };
  memset(c, 0, sizeof *c);
  for (int i = 0; i < STOREFL_COL_COUNT; i++)
    snprintf(c->name[i], sizeof c->name[i], "%s", DEFAULTS[i]);
}

const char *storefl_retail_col_key(storefl_retail_col col) {
  return col >= 0 && col < STOREFL_COL_COUNT ? COL_KEYS[col] : "?";
}

static int col_index(const char *key) {
  for (int i = 0; i < STOREFL_COL_COUNT; i++)
    if (strcmp(key, COL_KEYS[i]) == 0)
      return i;
  return -1;
}

int storefl_retail_columns_set(storefl_retail_columns *c, const char *key, const char *value) {
  int i = col_index(key);
  if (i >= 0) {
    if (value[0] == '\0' && i < FIRST_OPTIONAL)
      return STOREFL_ERR_INVALID;
    if (strlen(value) >= STOREFL_RETAIL_NAME_MAX)
      return STOREFL_ERR_TOO_LARGE;
    size_t n = strlen(value);
    memmove(c->name[i], value, n + 1); /* value may be c->name[i] itself */
    if (n)
      c->explicit_mask |= 1u << i;
    else
      c->explicit_mask &= ~(1u << i);
    return STOREFL_OK;
  }
  return STOREFL_ERR_INVALID;
}

typedef struct ini_ctx {
  storefl_retail_columns *cols;
  const char *section;
  char *err;
  size_t errlen;
  int rc;
} ini_ctx;

static int ini_handler_fn(void *user, const char *section, const char *name, const char *value) {
  ini_ctx *ctx = user;
  if (strcmp(section, ctx->section) != 0)
    return 1;
  int rc = storefl_retail_columns_set(ctx->cols, name, value);
  if (rc != STOREFL_OK) {
    ctx->rc = rc;
    if (rc == STOREFL_ERR_TOO_LARGE)
      storefl_set_err(ctx->err, ctx->errlen, "[%s] %s: column name too long", section, name);
    else if (value[0] == '\0' && col_index(name) >= 0)
      storefl_set_err(ctx->err, ctx->errlen, "[%s] %s: a required column cannot be empty", section, name);
    else
      storefl_set_err(ctx->err, ctx->errlen,
                      "[%s] unknown key '%s' (known: product, text, time, basket, shopper, quantity, price, "
                      "category, brand, country, kind)",
                      section, name);
    return 0; /* makes ini_parse report this line */
  }
  return 1;
}

int storefl_retail_columns_load_ini(const char *path, const char *section, storefl_retail_columns *c,
                                    char *err, size_t errlen) {
  storefl_retail_columns tmp = *c; /* all or nothing */
  ini_ctx ctx = {&tmp, section, err, errlen, STOREFL_OK};
  int line = ini_parse(path, ini_handler_fn, &ctx);
  if (line == -1) {
    storefl_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return STOREFL_ERR_IO;
  }
  if (line == -2) {
    storefl_set_err(err, errlen, "%s: out of memory", path);
    return STOREFL_ERR_NOMEM;
  }
  if (line != 0) {
    if (ctx.rc != STOREFL_OK && err && errlen) {
      char buf[256];
      snprintf(buf, sizeof buf, "%s", err);
      storefl_set_err(err, errlen, "%s:%d: %s", path, line, buf);
    } else {
      storefl_set_err(err, errlen, "%s:%d: syntax error", path, line);
    }
    return ctx.rc != STOREFL_OK ? ctx.rc : STOREFL_ERR_INVALID;
  }
  *c = tmp;
  return STOREFL_OK;
}

const char *storefl_event_kind_name(storefl_event_kind k) {
  switch (k) {
  case STOREFL_EVENT_VIEW:
    return "view";
  case STOREFL_EVENT_CART:
    return "add-to-cart";
  case STOREFL_EVENT_PURCHASE:
    return "purchase";
  case STOREFL_EVENT_RETURN:
    return "return";
  }
  return "?";
}

int storefl_event_kind_parse(const char *s, storefl_event_kind *out) {
  static const struct {
    const char *name;
    storefl_event_kind kind;
  } NAMES[] = {
      {"view", STOREFL_EVENT_VIEW},         {"add-to-cart", STOREFL_EVENT_CART},
      {"add_to_cart", STOREFL_EVENT_CART},  {"cart", STOREFL_EVENT_CART},
      {"purchase", STOREFL_EVENT_PURCHASE}, {"sale", STOREFL_EVENT_PURCHASE},
      {"return", STOREFL_EVENT_RETURN},     {"refund", STOREFL_EVENT_RETURN},
  };
  for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
    if (strcasecmp(s, NAMES[i].name) == 0) {
      *out = NAMES[i].kind;
      return STOREFL_OK;
    }
  return STOREFL_ERR_INVALID;
}

int storefl_retail_is_product_code(const char *code) {
  for (int i = 0; i < 5; i++)
    if (code[i] < '0' || code[i] > '9')
      return 0;
  for (const char *p = code + 5; *p; p++)
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
      return 0;
  return 1;
}

unsigned storefl_retail_classify(const char *basket, const char *code, double quantity, double price,
                                 const char *text) {
  unsigned f = 0;
  if (basket[0] == 'C' || basket[0] == 'c')
    f |= STOREFL_ROW_CANCELLED;
  if (!(quantity > 0))
    f |= STOREFL_ROW_QTY_NONPOS;
  if (!(price > 0))
    f |= STOREFL_ROW_PRICE_NONPOS;
  if (!storefl_retail_is_product_code(code))
    f |= STOREFL_ROW_NOT_PRODUCT;
  if (text[0] == '\0')
    f |= STOREFL_ROW_NO_TEXT;
  return f;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

int storefl_parse_time(const char *s, int64_t *out) {
  int y, mo, d, h, mi, sec = 0;
  size_t n = strlen(s);
  if (n != 16 && n != 19)
    return STOREFL_ERR_INVALID;
  if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
      (s[10] != ' ' && s[10] != 'T') || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi))
    return STOREFL_ERR_INVALID;
  if (n == 19 && (s[16] != ':' || !digits(s + 17, 2, &sec)))
    return STOREFL_ERR_INVALID;
  static const int MDAYS[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > MDAYS[mo - 1] || h > 23 || mi > 59 || sec > 60)
    return STOREFL_ERR_INVALID;
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap)
    return STOREFL_ERR_INVALID;
  *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
  return STOREFL_OK;
}

void storefl_format_time(int64_t t, char *buf, size_t len) {
  /* civil_from_days, the inverse of days_from_civil. */
  int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  int64_t secs = t - days * 86400;
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
  snprintf(buf, len, "%04lld-%02u-%02u %02d:%02d:%02d", (long long)y, m, d, (int)(secs / 3600),
           (int)(secs / 60 % 60), (int)(secs % 60));
}

struct storefl_retail_reader {
  storefl_csv *csv;
  int idx[STOREFL_COL_COUNT]; /* field index, -1 = absent optional */
  size_t min_fields;          /* a row must have at least this many fields */
  char code[CODE_MAX];
  char shopper[SHOPPER_MAX];
  char err[256];
  int failed;
};

/* Exports are produced by tools that pad numbers; accept surrounding blanks, nothing else. */
static int parse_number(const char *s, double *out) {
  while (*s == ' ' || *s == '\t')
    s++;
  if (*s == '\0')
    return STOREFL_ERR_INVALID;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  while (*end == ' ' || *end == '\t')
    end++;
  if (*end != '\0' || errno == ERANGE || !isfinite(v))
    return STOREFL_ERR_INVALID;
  *out = v;
  return STOREFL_OK;
}

static int map_header(storefl_retail_reader *r, const storefl_retail_columns *cols) {
  int rc = storefl_csv_next(r->csv);
  if (rc < 0) {
    snprintf(r->err, sizeof r->err, "%s", storefl_csv_error(r->csv));
    return rc;
  }
  if (rc == 0) {
    snprintf(r->err, sizeof r->err, "empty file: no header line");
    return STOREFL_ERR_INVALID;
  }
  r->min_fields = 0;
  for (int i = 0; i < STOREFL_COL_COUNT; i++) {
    r->idx[i] = -1;
    if (cols->name[i][0] == '\0') {
      if (i < FIRST_OPTIONAL) {
        snprintf(r->err, sizeof r->err, "no header name configured for required column '%s'", COL_KEYS[i]);
        return STOREFL_ERR_INVALID;
      }
      continue;
    }
    r->idx[i] = storefl_csv_find(r->csv, cols->name[i]);
    if (r->idx[i] < 0) {
      if (i >= FIRST_OPTIONAL && !(cols->explicit_mask & (1u << i)))
        continue; /* a defaulted optional column may be missing from other exports */
      snprintf(r->err, sizeof r->err,
               "line 1: header has no column '%s' (the %s column; set it in [columns])", cols->name[i],
               COL_KEYS[i]);
      return STOREFL_ERR_INVALID;
    }
    if ((size_t)r->idx[i] + 1 > r->min_fields)
      r->min_fields = (size_t)r->idx[i] + 1;
  }
  return STOREFL_OK;
}

static int finish_open(storefl_retail_reader *r, int rc, const storefl_retail_columns *cols,
                       storefl_retail_reader **out, char *err, size_t errlen) {
  if (rc == STOREFL_OK)
    rc = map_header(r, cols);
  if (rc != STOREFL_OK) {
    storefl_set_err(err, errlen, "%s", r->err[0] ? r->err : storefl_strerror(rc));
    storefl_retail_close(r);
    return rc;
  }
  *out = r;
  return STOREFL_OK;
}

int storefl_retail_open(const char *path, const storefl_retail_columns *cols, storefl_retail_reader **out,
                        char *err, size_t errlen) {
  *out = NULL;
  storefl_retail_reader *r = calloc(1, sizeof *r);
  if (!r)
    return STOREFL_ERR_NOMEM;
  int rc = storefl_csv_open(path, NULL, &r->csv);
  if (rc == STOREFL_ERR_IO)
    snprintf(r->err, sizeof r->err, "%s: cannot open: %s", path, errno ? strerror(errno) : "unknown error");
  return finish_open(r, rc, cols, out, err, errlen);
}

int storefl_retail_open_mem(const void *data, size_t len, const storefl_retail_columns *cols,
                            storefl_retail_reader **out, char *err, size_t errlen) {
  *out = NULL;
  storefl_retail_reader *r = calloc(1, sizeof *r);
  if (!r)
    return STOREFL_ERR_NOMEM;
  return finish_open(r, storefl_csv_open_mem(data, len, NULL, &r->csv), cols, out, err, errlen);
}

static const char *field(const storefl_retail_reader *r, storefl_retail_col c) {
  if (r->idx[c] < 0)
    return "";
  const char *f = storefl_csv_field(r->csv, (size_t)r->idx[c], NULL);
  return f ? f : "";
}

static int row_error(storefl_retail_reader *r, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int row_error(storefl_retail_reader *r, uint64_t line, const char *fmt, ...) {
  int n = snprintf(r->err, sizeof r->err, "line %llu: ", (unsigned long long)line);
  if (n > 0 && (size_t)n < sizeof r->err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err + n, sizeof r->err - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return STOREFL_ERR_INVALID;
}

int storefl_retail_next(storefl_retail_reader *r, storefl_retail_row *row) {
  if (r->failed)
    return STOREFL_ERR_INVALID;
  int rc = storefl_csv_next(r->csv);
  if (rc < 0) {
    r->failed = 1;
    snprintf(r->err, sizeof r->err, "%s", storefl_csv_error(r->csv));
    return rc;
  }
  if (rc == 0)
    return 0;
  uint64_t line = storefl_csv_line(r->csv);
  memset(row, 0, sizeof *row);
  row->line = line;
  size_t nf = storefl_csv_nfields(r->csv);
  if (nf < r->min_fields) {
    return row_error(r, line, "%zu fields, the mapped columns need at least %zu%s", nf, r->min_fields,
                     nf == 1 && storefl_csv_field(r->csv, 0, NULL)[0] == '\0' ? " (blank line)" : "");
  }
  const char *code = field(r, STOREFL_COL_PRODUCT);
  size_t clen = strlen(code);
  if (clen == 0)
    return row_error(r, line, "empty product code");
  if (clen >= sizeof r->code)
    return row_error(r, line, "product code '%.40s...' longer than %d bytes", code, CODE_MAX - 1);
  for (size_t i = 0; i <= clen; i++)
    r->code[i] = (char)toupper((unsigned char)code[i]);
  row->code = r->code;

  const char *shopper = field(r, STOREFL_COL_SHOPPER);
  size_t slen = strlen(shopper);
  if (slen >= sizeof r->shopper)
    return row_error(r, line, "shopper id '%.40s...' longer than %d bytes", shopper, SHOPPER_MAX - 1);
  memcpy(r->shopper, shopper, slen + 1);
  /* Spreadsheet exports turn numeric ids into floats ("17850.0"): the id is the integer. */
  if (slen > 2 && memcmp(r->shopper + slen - 2, ".0", 2) == 0) {
    int numeric = 1;
    for (size_t i = 0; i < slen - 2; i++)
      numeric &= r->shopper[i] >= '0' && r->shopper[i] <= '9';
    if (numeric)
      r->shopper[slen - 2] = '\0';
  }
  row->shopper = r->shopper;

  row->text = field(r, STOREFL_COL_TEXT);
  row->basket = field(r, STOREFL_COL_BASKET);
  row->category = field(r, STOREFL_COL_CATEGORY);
  row->brand = field(r, STOREFL_COL_BRAND);
  row->country = field(r, STOREFL_COL_COUNTRY);
  const char *t = field(r, STOREFL_COL_TIME);
  if (storefl_parse_time(t, &row->time) != STOREFL_OK)
    return row_error(r, line, "bad time '%.40s' (want YYYY-MM-DD HH:MM[:SS])", t);
  const char *q = field(r, STOREFL_COL_QUANTITY);
  if (parse_number(q, &row->quantity) != STOREFL_OK)
    return row_error(r, line, "bad quantity '%.40s'", q);
  const char *p = field(r, STOREFL_COL_PRICE);
  if (parse_number(p, &row->price) != STOREFL_OK)
    return row_error(r, line, "bad unit price '%.40s'", p);
  if (r->idx[STOREFL_COL_KIND] >= 0) {
    const char *k = field(r, STOREFL_COL_KIND);
    if (storefl_event_kind_parse(k, &row->kind) != STOREFL_OK)
      return row_error(r, line, "bad event kind '%.40s' (want view, add-to-cart, purchase or return)", k);
  } else {
    row->kind = (row->basket[0] == 'C' || row->basket[0] == 'c' || row->quantity < 0)
                    ? STOREFL_EVENT_RETURN
                    : STOREFL_EVENT_PURCHASE;
  }
  row->flags = storefl_retail_classify(row->basket, row->code, row->quantity, row->price, row->text);
  return 1;
}

const char *storefl_retail_error(const storefl_retail_reader *r) {
  return r->err;
}

int storefl_retail_failed(const storefl_retail_reader *r) {
  return r->failed;
}

uint64_t storefl_retail_offset(const storefl_retail_reader *r) {
  return storefl_csv_offset(r->csv);
}

void storefl_retail_close(storefl_retail_reader *r) {
  if (!r)
    return;
  storefl_csv_close(r->csv);
  free(r);
}
