/*
 * Minimal leveled logging: one line per event, to stderr by default.
 * Format: "2026-11-23T14:35:52Z LEVEL component: message". Thread-safe (one write per line).
 */
#ifndef STOREFL_LOG_H
#define STOREFL_LOG_H
#include <stdio.h>

typedef enum { STOREFL_LOG_DEBUG = 0, STOREFL_LOG_INFO, STOREFL_LOG_WARN, STOREFL_LOG_ERROR, STOREFL_LOG_OFF } storefl_log_level;

void storefl_log_set_level(storefl_log_level level);
storefl_log_level storefl_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off". Returns 0, or STOREFL_ERR_INVALID. */
int storefl_log_parse_level(const char *name, storefl_log_level *out);
/* Where lines go; NULL restores stderr. The stream is not owned. */
void storefl_log_set_stream(FILE *stream);

void storefl_log(storefl_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SFL_DEBUG(comp, ...) storefl_log(STOREFL_LOG_DEBUG, comp, __VA_ARGS__)
#define SFL_INFO(comp, ...) storefl_log(STOREFL_LOG_INFO, comp, __VA_ARGS__)
#define SFL_WARN(comp, ...) storefl_log(STOREFL_LOG_WARN, comp, __VA_ARGS__)
#define SFL_ERROR(comp, ...) storefl_log(STOREFL_LOG_ERROR, comp, __VA_ARGS__)

#endif
