#include "sample_args.h"

#include <lifeline/sdk.h>

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

/* The library's one address syntax (sdk_parse_address); a client needs a port other than 0. */
bool sample_parse_target(const char *s, char *host, size_t host_size, uint16_t *port)
{
    uint16_t p = 0;
    if (sdk_parse_address(s, host, host_size, &p) != SDK_OK || p == 0) {
        return false;
    }
    *port = p;
    return true;
}
