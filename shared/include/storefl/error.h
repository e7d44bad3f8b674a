/*
 * storefl error codes.
 *
 * Every library function that can fail returns an int: 0 (STOREFL_OK) on success, a negative
 * storefl_err on failure. Libraries never exit() and never print; the callers (the two
 * executables) decide what to tell the user. Each code maps to exactly one CoAP response code so
 * that a rejection deep in a decoder reaches the wire with a precise meaning.
 */
#ifndef STOREFL_ERROR_H
#define STOREFL_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum storefl_err {
  STOREFL_OK = 0,
  STOREFL_ERR_INVALID = -1,     /* malformed or semantically wrong input            -> 4.00 */
  STOREFL_ERR_UNAUTHORIZED = -2,/* no or unknown identity                            -> 4.01 */
  STOREFL_ERR_FORBIDDEN = -3,   /* identity known but not allowed (forged id, cap)   -> 4.03 */
  STOREFL_ERR_NOT_FOUND = -4,   /* no such resource / record                         -> 4.04 */
  STOREFL_ERR_CONFLICT = -5,    /* wrong round or base model version                 -> 4.09 */
  STOREFL_ERR_TOO_LARGE = -6,   /* body or declared size over the configured cap     -> 4.13 */
  STOREFL_ERR_FORMAT = -7,      /* unsupported content format / tensor encoding      -> 4.15 */
  STOREFL_ERR_UNAVAILABLE = -8, /* overloaded, disk full, shutting down; retry later -> 5.03 */
  STOREFL_ERR_NOMEM = -9,       /* allocation failed                                 -> 5.00 */
  STOREFL_ERR_IO = -10,         /* file or database error                            -> 5.00 */
  STOREFL_ERR_CRYPTO = -11,     /* Mbed TLS failure                                  -> 5.00 */
  STOREFL_ERR_INTERNAL = -12,   /* broken invariant                                  -> 5.00 */
  STOREFL_ERR_BUDGET = -13,     /* privacy budget would be exceeded                  -> 4.03 */
  STOREFL_ERR_NONFINITE = -14,  /* NaN or infinity where a finite number is required -> 4.00 */
} storefl_err;

/* Short, stable, lower-case name of a code ("invalid", "too_large", ...). Never NULL. */
const char *storefl_strerror(int err);

/* CoAP response code for an error, as class*100 + detail (e.g. 413 for 4.13). 0 for STOREFL_OK. */
int storefl_err_to_coap(int err);

/* Formats a message into the caller's err[errlen] buffer (the convention of every API that takes
 * char *err, size_t errlen); does nothing when err is NULL or errlen is 0. Truncates, never
 * overflows. */
void storefl_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
