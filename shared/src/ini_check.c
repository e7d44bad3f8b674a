/* Section check of a shared INI file against the union of its loaders' sections (storefl/ini_check.h). */
#include "storefl/ini_check.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "storefl/error.h"

typedef struct check_ctx {
  const char *const *known;
  char bad_section[128];
  char bad_key[128];
  int found;
} check_ctx;

static int is_known(const char *const *known, const char *s) {
  for (size_t i = 0; known[i]; i++)
    if (strcmp(known[i], s) == 0)
      return 1;
  return 0;
}

/* Parameter names differ from the loaders' handlers on purpose: tests/demo/config_keys.py finds key
 * handlers by their signature, and this one accepts no key. */
static int on_entry(void *user, const char *sec, const char *key, const char *value) {
  check_ctx *c = user;
  (void)value;
  if (is_known(c->known, sec))
    return 1;
  if (c->found)
    return 0; /* inih returns the first failing line: keep the first name with it */
  snprintf(c->bad_section, sizeof c->bad_section, "%s", sec);
  snprintf(c->bad_key, sizeof c->bad_key, "%s", key);
  c->found = 1;
  return 0; /* inih reports this line */
}

static int report(const check_ctx *c, int rc, const char *label, char *err, size_t errlen) {
  if (rc == 0)
    return STOREFL_OK;
  if (rc == -1) {
    if (err && errlen)
      snprintf(err, errlen, "%s: cannot read: %s", label, strerror(errno));
    return STOREFL_ERR_IO;
  }
  if (rc == -2) {
    if (err && errlen)
      snprintf(err, errlen, "%s: out of memory", label);
    return STOREFL_ERR_NOMEM;
  }
  if (err && errlen) {
    if (!c->found) {
      snprintf(err, errlen, "%s:%d: syntax error", label, rc);
    } else if (!c->bad_section[0]) {
      snprintf(err, errlen, "%s:%d: key '%s' is outside any [section]", label, rc, c->bad_key);
    } else {
      int n = snprintf(err, errlen, "%s:%d: unknown section [%s] (key '%s'); known sections:", label, rc,
                       c->bad_section, c->bad_key);
      for (size_t i = 0; c->known[i] && n >= 0 && (size_t)n < errlen; i++) {
        int m = snprintf(err + n, errlen - (size_t)n, " [%s]", c->known[i]);
        if (m < 0)
          break;
        n += m;
      }
    }
  }
  return STOREFL_ERR_INVALID;
}

int storefl_ini_check_sections(const char *path, const char *const *known, char *err, size_t errlen) {
  if (!path || !known)
    return STOREFL_ERR_INVALID;
  check_ctx c;
  memset(&c, 0, sizeof c);
  c.known = known;
  return report(&c, ini_parse(path, on_entry, &c), path, err, errlen);
}

int storefl_ini_check_sections_string(const char *text, const char *label, const char *const *known,
                                      char *err, size_t errlen) {
  if (!text || !known)
    return STOREFL_ERR_INVALID;
  check_ctx c;
  memset(&c, 0, sizeof c);
  c.known = known;
  return report(&c, ini_parse_string(text, on_entry, &c), label ? label : "config", err, errlen);
}
