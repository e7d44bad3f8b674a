/*
 * Retailer exports: column mapping, row reader and the cleaning rules.
 *
 * A retailer's CSV export (plain or .gz) names its columns in a header. A storefl_retail_columns
 * says which header name holds each field storefl needs; the defaults are the Online Retail (UCI)
 * layout, and an INI section (normally [columns] of agent.ini) overrides them, e.g.
 *
 *   [columns]
 *   product  = sku
 *   text     = title
 *   time     = ts
 *   category = department
 *
 * The reader maps the header once (a missing required column is an error naming it), then returns
 * one parsed storefl_retail_row per record, with the cleaning classification of the data README
 * already computed (storefl_retail_classify), so that the ingest, the partition tool and the
 * evaluation all drop exactly the same lines.
 */
#ifndef STOREFL_RETAIL_CSV_H
#define STOREFL_RETAIL_CSV_H
#include <stddef.h>
#include <stdint.h>

/* The fields of a retail row. The first seven are required, the rest optional. */
typedef enum storefl_retail_col {
  STOREFL_COL_PRODUCT = 0, /* product code (SKU)                    default StockCode   */
  STOREFL_COL_TEXT,        /* product text (name / description)     default Description */
  STOREFL_COL_TIME,        /* event time, YYYY-MM-DD HH:MM[:SS]     default InvoiceDate */
  STOREFL_COL_BASKET,      /* basket / invoice / receipt id         default InvoiceNo   */
  STOREFL_COL_SHOPPER,     /* shopper id, empty = anonymous         default CustomerID  */
  STOREFL_COL_QUANTITY,    /* units on the line                     default Quantity    */
  STOREFL_COL_PRICE,       /* unit price                            default UnitPrice   */
  STOREFL_COL_CATEGORY,    /* optional: product category            default (none)      */
  STOREFL_COL_BRAND,       /* optional: brand or supplier           default (none)      */
  STOREFL_COL_COUNTRY,     /* optional: shopper's country           default Country     */
  STOREFL_COL_KIND,        /* optional: view|add-to-cart|purchase|return  default (none) */
  STOREFL_COL_COUNT
} storefl_retail_col;

enum { STOREFL_RETAIL_NAME_MAX = 64 };

/* Header name of each field; an empty string means "not in this export" (allowed for the
 * optional fields only). A required column missing from the header is an error; an optional one
 * is an error only if it was set explicitly (storefl_retail_columns_set), so the default
 * "Country" may be absent from other exports. Plain value type, no ownership. */
typedef struct storefl_retail_columns {
  char name[STOREFL_COL_COUNT][STOREFL_RETAIL_NAME_MAX];
  unsigned explicit_mask; /* bit i: field i was set explicitly */
} storefl_retail_columns;

/* Online Retail defaults (see the table above). */
void storefl_retail_columns_default(storefl_retail_columns *c);

/* INI key of a field ("product", "text", "time", "basket", "shopper", "quantity", "price",
 * "category", "brand", "country", "kind"). */
const char *storefl_retail_col_key(storefl_retail_col col);

/* Sets the header name of the field whose INI key is key. value "" removes an optional field.
 * Errors: STOREFL_ERR_INVALID (unknown key, empty required field), STOREFL_ERR_TOO_LARGE (name of
 * STOREFL_RETAIL_NAME_MAX bytes or more). */
int storefl_retail_columns_set(storefl_retail_columns *c, const char *key, const char *value);

/* Applies the keys of [section] (e.g. "columns") of an INI file on top of *c; other sections are
 * ignored, so the agent's whole config file can be passed. An absent section leaves *c unchanged.
 * Errors: STOREFL_ERR_IO (cannot open), STOREFL_ERR_INVALID (syntax error or unknown key in the
 * section; err names the line). err may be NULL. */
int storefl_retail_columns_load_ini(const char *path, const char *section, storefl_retail_columns *c,
                                    char *err, size_t errlen);

/* Event kinds, as stored in the agent's database (the numbers are part of the schema). */
typedef enum storefl_event_kind {
  STOREFL_EVENT_VIEW = 0,
  STOREFL_EVENT_CART = 1, /* added to cart */
  STOREFL_EVENT_PURCHASE = 2,
  STOREFL_EVENT_RETURN = 3,
} storefl_event_kind;

/* "view", "add-to-cart", "purchase", "return". */
const char *storefl_event_kind_name(storefl_event_kind k);
/* Parses the names above (case-insensitive; also "cart", "add_to_cart", "sale", "refund").
 * Returns 0 or STOREFL_ERR_INVALID. */
int storefl_event_kind_parse(const char *s, storefl_event_kind *out);

/* Cleaning classification (bit set; 0 = a clean line). The first four are the evaluation's
 * rules from the data README; an empty text is also unusable for the attribute-based model. */
enum {
  STOREFL_ROW_CANCELLED = 1u << 0,    /* basket id starts with 'C' (a cancellation invoice) */
  STOREFL_ROW_QTY_NONPOS = 1u << 1,   /* quantity <= 0 */
  STOREFL_ROW_PRICE_NONPOS = 1u << 2, /* unit price <= 0 */
  STOREFL_ROW_NOT_PRODUCT = 1u << 3,  /* code does not match ^[0-9]{5}[A-Za-z]*$ (POST, M, DOT...) */
  STOREFL_ROW_NO_TEXT = 1u << 4,      /* empty product text */
};

/* Classifies one line. code is compared case-insensitively (the regex allows either case). */
unsigned storefl_retail_classify(const char *basket, const char *code, double quantity, double price,
                                 const char *text);

/* 1 when code matches ^[0-9]{5}[A-Za-z]*$. */
int storefl_retail_is_product_code(const char *code);

/* Parses "YYYY-MM-DD HH:MM[:SS]" (or with 'T' instead of the space) as UTC into unix seconds.
 * Exports carry the store's local time without zone; storefl treats it as UTC throughout, which
 * keeps order and durations (no DST jumps). Returns 0 or STOREFL_ERR_INVALID. */
int storefl_parse_time(const char *s, int64_t *out);

/* Formats unix seconds as "YYYY-MM-DD HH:MM:SS" (UTC) into buf (at least 20 bytes). */
void storefl_format_time(int64_t t, char *buf, size_t len);

/* One parsed record. The strings point into the reader and stay valid until the next call to
 * storefl_retail_next() or storefl_retail_close(). Absent optional fields are "". */
typedef struct storefl_retail_row {
  uint64_t line;           /* 1-based line of the record in the file (header = line 1) */
  const char *code;        /* product code, upper-cased (a lower-case variant is the same product) */
  const char *text;        /* product text */
  const char *basket;      /* basket / invoice id, "" if none (e.g. a view) */
  const char *shopper;     /* shopper id, "" when anonymous; "17850.0" becomes "17850" */
  const char *category;    /* "" if absent */
  const char *brand;       /* "" if absent */
  const char *country;     /* "" if absent */
  int64_t time;            /* unix seconds */
  double quantity;         /* as in the file (negative on cancellations) */
  double price;            /* unit price */
  storefl_event_kind kind; /* from the kind column; without one: return for cancellations and
                              negative quantities, purchase otherwise */
  unsigned flags;          /* storefl_retail_classify() of the row */
} storefl_retail_row;

typedef struct storefl_retail_reader storefl_retail_reader;

/* Opens path (plain or gzip CSV) and maps its header with cols. On success *out is owned by the
 * caller (storefl_retail_close). Errors: STOREFL_ERR_IO (cannot open/read), STOREFL_ERR_INVALID
 * (no header, or a required column missing: err says which), STOREFL_ERR_NOMEM. err may be NULL. */
int storefl_retail_open(const char *path, const storefl_retail_columns *cols, storefl_retail_reader **out,
                        char *err, size_t errlen);
/* Same over a caller-owned buffer that must outlive the reader (tests, fuzzing). */
int storefl_retail_open_mem(const void *data, size_t len, const storefl_retail_columns *cols,
                            storefl_retail_reader **out, char *err, size_t errlen);

/* Reads the next row: 1 = *row filled, 0 = end of input, < 0 = error (storefl_retail_error() gives
 * "line N: ..."). STOREFL_ERR_INVALID with storefl_retail_failed() == 0 is a bad row (unparsable
 * number or time, wrong field count, over-long code): the caller may skip it and call again.
 * Otherwise (broken quoting, record over the size limit, I/O) the reader is finished. */
int storefl_retail_next(storefl_retail_reader *r, storefl_retail_row *row);

const char *storefl_retail_error(const storefl_retail_reader *r);
/* 1 when the reader cannot continue after its last error. */
int storefl_retail_failed(const storefl_retail_reader *r);
/* Bytes consumed from the file (compressed bytes for .gz), for progress. */
uint64_t storefl_retail_offset(const storefl_retail_reader *r);

void storefl_retail_close(storefl_retail_reader *r);

#endif
