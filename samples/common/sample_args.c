#include "sample_args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool sample_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) {
        return false;
    }
    *out = v;
    return true;
}

bool sample_parse_target(const char *s, char *host, size_t host_size, uint16_t *port)
{
    const char *name = s;
    const char *colon = strrchr(s, ':');
    size_t name_len = colon ? (size_t)(colon - s) : 0;
    if (*s == '[') {
        name = s + 1;
        name_len = colon && colon > s + 1 && colon[-1] == ']' ? (size_t)(colon - s - 2) : 0;
    }
    uint64_t p = 0;
    if (name_len == 0 || name_len >= host_size || !sample_parse_u64(colon + 1, 65535, &p) || p == 0) {
        return false;
    }
    memcpy(host, name, name_len);
    host[name_len] = '\0';
    *port = (uint16_t)p;
    return true;
}
