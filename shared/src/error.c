#include "storefl/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *storefl_strerror(int err) {
  switch ((storefl_err)err) {
  case STOREFL_OK: return "ok";
  case STOREFL_ERR_INVALID: return "invalid";
  case STOREFL_ERR_UNAUTHORIZED: return "unauthorized";
  case STOREFL_ERR_FORBIDDEN: return "forbidden";
  case STOREFL_ERR_NOT_FOUND: return "not_found";
  case STOREFL_ERR_CONFLICT: return "conflict";
  case STOREFL_ERR_TOO_LARGE: return "too_large";
  case STOREFL_ERR_FORMAT: return "unsupported_format";
  case STOREFL_ERR_UNAVAILABLE: return "unavailable";
  case STOREFL_ERR_NOMEM: return "out_of_memory";
  case STOREFL_ERR_IO: return "io";
  case STOREFL_ERR_CRYPTO: return "crypto";
  case STOREFL_ERR_INTERNAL: return "internal";
  case STOREFL_ERR_BUDGET: return "budget_exceeded";
  case STOREFL_ERR_NONFINITE: return "nonfinite";
  }
  return "unknown";
}

int storefl_err_to_coap(int err) {
  switch ((storefl_err)err) {
  case STOREFL_OK: return 0;
  case STOREFL_ERR_INVALID: return 400;
  case STOREFL_ERR_NONFINITE: return 400;
  case STOREFL_ERR_UNAUTHORIZED: return 401;
  case STOREFL_ERR_FORBIDDEN: return 403;
  case STOREFL_ERR_BUDGET: return 403;
  case STOREFL_ERR_NOT_FOUND: return 404;
  case STOREFL_ERR_CONFLICT: return 409;
  case STOREFL_ERR_TOO_LARGE: return 413;
  case STOREFL_ERR_FORMAT: return 415;
  case STOREFL_ERR_UNAVAILABLE: return 503;
  case STOREFL_ERR_NOMEM:
  case STOREFL_ERR_IO:
  case STOREFL_ERR_CRYPTO:
  case STOREFL_ERR_INTERNAL: return 500;
  }
  return 500;
}

void storefl_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}
