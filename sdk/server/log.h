/*
 * lifeline-server's log: one line per event on stderr, with a time, a level and the event's
 * fields, as text ("2026-12-07T15:50:00.123Z info session_opened session=... peer=...") or,
 * with --log-format json, as one JSON object per line. Any thread; each line is written
 * whole (stdio's stream lock).
 */
#ifndef LIFELINE_SERVER_LOG_H
#define LIFELINE_SERVER_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

typedef struct log_field {
    const char *key;
    const char *value;
} log_field;

/* Lines below min are not written. */
void log_setup(log_level min, bool json);
/* "debug", "info", "warn" or "error" into *out; false for anything else. */
bool log_parse_level(const char *text, log_level *out);
/* One line: the event's name and its n fields (values NULL are left out). */
void log_event(log_level level, const char *event, const log_field *fields, size_t n);
/* Whether a line at level would be written. */
bool log_enabled(log_level level);

#endif
