/* The ledger's enrolment list; see storefl/enrolment.h. */
#include "storefl/enrolment.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storefl/codec.h"
#include "storefl/error.h"

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int cmp_id(const void *a, const void *b) {
  return strcmp((const char *)a, (const char *)b);
}

void storefl_enrolment_free(storefl_enrolment *e) {
  if (!e)
    return;
  free(e->ids);
  e->ids = NULL;
  e->n = 0;
}

int storefl_enrolment_parse(const char *buf, size_t len, storefl_enrolment *out, char *err, size_t errlen) {
  if (!out || (!buf && len))
    return STOREFL_ERR_INVALID;
  memset(out, 0, sizeof *out);
  if (len > STOREFL_ENROLMENT_MAX_BYTES) {
    storefl_set_err(err, errlen, "more than %u bytes", STOREFL_ENROLMENT_MAX_BYTES);
    return STOREFL_ERR_TOO_LARGE;
  }
  size_t cap = 0;
  unsigned lineno = 0;
  for (size_t pos = 0; pos < len;) {
    const char *line = buf + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t l = nl ? (size_t)(nl - line) : len - pos;
    pos += l + (nl ? 1 : 0);
    lineno++;
    while (l && is_space(line[l - 1]))
      l--;
    while (l && is_space(*line)) {
      line++;
      l--;
    }
    if (l == 0 || *line == '#')
      continue;
    if (!storefl_store_id_valid(line, l)) {
      storefl_set_err(err, errlen, "line %u: not a store id ([A-Za-z0-9._-]{1,64}, one per line)", lineno);
      storefl_enrolment_free(out);
      return STOREFL_ERR_INVALID;
    }
    if (out->n == STOREFL_MAX_PARTICIPANTS) {
      storefl_set_err(err, errlen, "line %u: more than %d stores", lineno, STOREFL_MAX_PARTICIPANTS);
      storefl_enrolment_free(out);
      return STOREFL_ERR_INVALID;
    }
    if (out->n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      void *p = realloc(out->ids, ncap * sizeof *out->ids);
      if (!p) {
        storefl_enrolment_free(out);
        return STOREFL_ERR_NOMEM;
      }
      out->ids = p;
      cap = ncap;
    }
    memcpy(out->ids[out->n], line, l);
    out->ids[out->n][l] = '\0';
    out->n++;
  }
  if (out->n)
    qsort(out->ids, out->n, sizeof *out->ids, cmp_id);
  for (size_t i = 1; i < out->n; i++)
    if (strcmp(out->ids[i - 1], out->ids[i]) == 0) {
      storefl_set_err(err, errlen, "store %s listed twice", out->ids[i]);
      storefl_enrolment_free(out);
      return STOREFL_ERR_INVALID;
    }
  return STOREFL_OK;
}

int storefl_enrolment_load(const char *path, storefl_enrolment *out, char *err, size_t errlen) {
  if (!path || !out)
    return STOREFL_ERR_INVALID;
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) {
    storefl_set_err(err, errlen, "%s: %s", path, strerror(errno));
    return STOREFL_ERR_IO;
  }
  struct stat st;
  int rc = STOREFL_OK;
  if (fstat(fileno(f), &st) != 0) {
    storefl_set_err(err, errlen, "%s: %s", path, strerror(errno));
    rc = STOREFL_ERR_IO;
  } else if (!S_ISREG(st.st_mode)) {
    storefl_set_err(err, errlen, "%s: not a regular file", path);
    rc = STOREFL_ERR_INVALID;
  } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    storefl_set_err(err, errlen, "%s: mode %03o gives group/other access to the enrolment list; chmod 600 it",
                    path, (unsigned)(st.st_mode & 0777));
    rc = STOREFL_ERR_FORBIDDEN;
  } else if ((unsigned long long)st.st_size > STOREFL_ENROLMENT_MAX_BYTES) {
    storefl_set_err(err, errlen, "%s: more than %u bytes", path, STOREFL_ENROLMENT_MAX_BYTES);
    rc = STOREFL_ERR_TOO_LARGE;
  }
  char *buf = NULL;
  size_t n = 0;
  if (!rc) {
    /* Read to EOF with the cap enforced while reading: the size seen by fstat may change. */
    buf = malloc(STOREFL_ENROLMENT_MAX_BYTES + 1);
    if (!buf)
      rc = STOREFL_ERR_NOMEM;
    else {
      n = fread(buf, 1, STOREFL_ENROLMENT_MAX_BYTES + 1, f);
      if (ferror(f)) {
        storefl_set_err(err, errlen, "%s: read error", path);
        rc = STOREFL_ERR_IO;
      }
    }
  }
  fclose(f);
  if (!rc) {
    char msg[256] = "";
    rc = storefl_enrolment_parse(buf, n, out, msg, sizeof msg);
    if (rc)
      storefl_set_err(err, errlen, "%s: %s", path, msg);
  }
  free(buf);
  return rc;
}
