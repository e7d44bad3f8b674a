#include "storefl/log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "storefl/error.h"

static storefl_log_level g_level = STOREFL_LOG_INFO;
static FILE *g_stream;

void storefl_log_set_level(storefl_log_level level) { g_level = level; }
storefl_log_level storefl_log_get_level(void) { return g_level; }
void storefl_log_set_stream(FILE *stream) { g_stream = stream; }

int storefl_log_parse_level(const char *name, storefl_log_level *out) {
  static const char *const names[] = {"debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 5; i++) {
    if (name && strcmp(name, names[i]) == 0) {
      *out = (storefl_log_level)i;
      return STOREFL_OK;
    }
  }
  return STOREFL_ERR_INVALID;
}

void storefl_log(storefl_log_level level, const char *component, const char *fmt, ...) {
  static const char *const tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if (level < g_level || level >= STOREFL_LOG_OFF)
    return;
  char line[2048];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
  n += snprintf(line + n, sizeof line - (size_t)n, "%s %s: ", tags[level], component);
  if (n < (int)sizeof line) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
  }
  size_t len = strnlen(line, sizeof line - 2);
  line[len] = '\n';
  /* One fwrite per line so concurrent writers never interleave within a line. */
  fwrite(line, 1, len + 1, g_stream ? g_stream : stderr);
  fflush(g_stream ? g_stream : stderr);
}
