#include "storefl/parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "storefl/error.h"

int storefl_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  /* strtoull would skip blanks and wrap "-1" to the maximum: demand a digit first. */
  if (!s || !isdigit((unsigned char)s[0]))
    return STOREFL_ERR_INVALID;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno || *end || x < lo || x > hi)
    return STOREFL_ERR_INVALID;
  *out = x;
  return STOREFL_OK;
}

int storefl_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
  uint64_t x;
  if (storefl_parse_u64(s, lo, hi, &x) != STOREFL_OK)
    return STOREFL_ERR_INVALID;
  *out = (uint32_t)x;
  return STOREFL_OK;
}

int storefl_parse_double(const char *s, double lo, double hi, double *out) {
  if (!s || !*s)
    return STOREFL_ERR_INVALID;
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (errno || *end || !isfinite(x) || x < lo || x > hi)
    return STOREFL_ERR_INVALID;
  *out = x;
  return STOREFL_OK;
}

int storefl_parse_float(const char *s, float lo, float hi, float *out) {
  /* strtof, not (float)strtod: rounding twice can land one ulp away from the written value. */
  if (!s || !*s)
    return STOREFL_ERR_INVALID;
  char *end;
  errno = 0;
  float x = strtof(s, &end);
  if (errno || *end || !isfinite(x) || x < lo || x > hi)
    return STOREFL_ERR_INVALID;
  *out = x;
  return STOREFL_OK;
}
