/*
 * The ledger's enrolment list: the stores that may take part in the campaign. In a round with
 * sampling (q < 1) every enrolled store is charged in the privacy ledger, selected or not: under
 * Poisson sampling a store's absence is as secret as its presence, and the amplified bound holds
 * per potential participant. With PSK the keys file is the list; certificate-only deployments name
 * one with [ledger] enrolment = FILE.
 *
 * File format: one store id ([A-Za-z0-9._-]{1,64}) per line; blank lines and lines starting with '#'
 * are ignored; surrounding spaces are trimmed. Duplicates, bad ids, more than
 * STOREFL_MAX_PARTICIPANTS ids (what one ledger entry can list) and files over
 * STOREFL_ENROLMENT_MAX_BYTES are refused.
 */
#ifndef STOREFL_ENROLMENT_H
#define STOREFL_ENROLMENT_H

#include <stddef.h>

#include "storefl/messages.h"

#define STOREFL_ENROLMENT_MAX_BYTES (1u << 20)

typedef struct storefl_enrolment {
  char (*ids)[STOREFL_MAX_ID_LEN + 1]; /* n ids, sorted bytewise, owned */
  size_t n;
} storefl_enrolment;

/* Parses buf[0..len) (not NUL-terminated). On success *out holds the ids (free with
 * storefl_enrolment_free; out is zeroed first). STOREFL_ERR_INVALID with "line N: ..." in err,
 * STOREFL_ERR_TOO_LARGE over the byte limit, STOREFL_ERR_NOMEM. */
int storefl_enrolment_parse(const char *buf, size_t len, storefl_enrolment *out, char *err, size_t errlen);

/* Reads and parses path. Like the PSK keys file it must be a regular file without group or other
 * access (mode 0600 or stricter): whoever can rewrite it decides who is charged, so a looser mode is
 * STOREFL_ERR_FORBIDDEN. STOREFL_ERR_IO if it cannot be read; parse errors as above (err names the
 * file). */
int storefl_enrolment_load(const char *path, storefl_enrolment *out, char *err, size_t errlen);

void storefl_enrolment_free(storefl_enrolment *e);

#endif
