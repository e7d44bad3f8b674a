/*
 * Whole-string number parsing for configuration values and command-line options.
 *
 * Each function accepts the entire string or nothing: it returns 0 and sets *out, or
 * STOREFL_ERR_INVALID (and leaves *out alone) for an empty string, leading blanks or signs on
 * unsigned values, trailing characters, overflow, a value outside [lo, hi], or, for floating point,
 * NaN and infinities. Decimal only, so "010" is ten and "0x10" is refused.
 */
#ifndef STOREFL_PARSE_H
#define STOREFL_PARSE_H
#include <stdint.h>

int storefl_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int storefl_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);
int storefl_parse_double(const char *s, double lo, double hi, double *out);
int storefl_parse_float(const char *s, float lo, float hi, float *out);

#endif
