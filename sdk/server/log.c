/* lifeline-server's log (log.h). */
#include "log.h"

#include "json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static log_level min_level = LOG_WARN;
static bool as_json;

void log_setup(log_level min, bool json)
{
    min_level = min;
    as_json = json;
}

bool log_parse_level(const char *text, log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(log_level level)
{
    return level >= min_level;
}

static void timestamp(char *buf, size_t len)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", now.tv_nsec / 1000000);
}

/* A text value: bare if it is one word, else quoted with quotes and backslashes escaped. */
static void text_value(FILE *out, const char *v)
{
    if (*v && strpbrk(v, " \"\\=\t\n") == NULL) {
        fputs(v, out);
    } else {
        json_string(out, v);
    }
}

void log_event(log_level level, const char *event, const log_field *fields, size_t n)
{
    if (!log_enabled(level)) {
        return;
    }
    char ts[40];
    timestamp(ts, sizeof(ts));
    flockfile(stderr);
    if (as_json) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":", ts, level_names[level]);
        json_string(stderr, event);
    } else {
        fprintf(stderr, "%s %s %s", ts, level_names[level], event);
    }
    for (size_t i = 0; i < n; i++) {
        if (!fields[i].value) {
            continue;
        }
        if (as_json) {
            fputc(',', stderr);
            json_string(stderr, fields[i].key);
            fputc(':', stderr);
            json_string(stderr, fields[i].value);
        } else {
            fprintf(stderr, " %s=", fields[i].key);
            text_value(stderr, fields[i].value);
        }
    }
    fputs(as_json ? "}\n" : "\n", stderr);
    fflush(stderr);
    funlockfile(stderr);
}
