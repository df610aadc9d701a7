/*
 * Store URLs: "memory:" and "redis://HOST[:PORT][/DB]" (lifeline/store.h). Strict on
 * purpose: a URL that half-parses would send sessions to the wrong place.
 */
#include "recstore.h"

#include "ll.h"

#include <string.h>

#define REDIS_PREFIX "redis://"
#define REDIS_PORT   6379

/* A decimal number of at most max in [p, end): no sign, no spaces, at least one digit. */
static bool parse_number(const char *p, const char *end, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (p == end) {
        return false;
    }
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || (v = v * 10 + (uint64_t)(*p - '0')) > max) {
            return false;
        }
    }
    *out = v;
    return true;
}

/* The host at *p, bracketed for IPv6, moved past; false with the reason in *why. */
static bool parse_host(const char **p, const char *end, ll_store_url *u, const char **why)
{
    const char *s = *p, *e;
    if (*s == '[') {
        e = memchr(s, ']', (size_t)(end - s));
        if (!e) {
            *why = "unclosed '[' in the host";
            return false;
        }
        *p = e + 1;
        s++;
    } else {
        for (e = s; e < end && *e != ':' && *e != '/' && *e != '['; e++) {
        }
        *p = e;
    }
    size_t len = (size_t)(e - s);
    if (len == 0 || len >= sizeof(u->host)) {
        *why = len ? "host too long" : "no host (an IPv6 address goes in brackets)";
        return false;
    }
    memcpy(u->host, s, len);
    u->host[len] = '\0';
    return true;
}

/* ":PORT" and "/DB", each optional, and nothing else after the host. */
static bool parse_rest(const char *p, const char *end, ll_store_url *u, const char **why)
{
    uint64_t v = REDIS_PORT;
    if (p < end && *p == ':') {
        const char *e = memchr(p, '/', (size_t)(end - p));
        e = e ? e : end;
        if (!parse_number(p + 1, e, 65535, &v) || v == 0) {
            *why = "the port must be 1-65535";
            return false;
        }
        p = e;
    }
    u->port = (uint16_t)v;
    v = 0;
    if (p < end && (*p != '/' || !parse_number(p + 1, end, INT32_MAX, &v))) {
        *why = *p == '/' ? "the DB must be a number 0-2147483647" : "unexpected characters after the host";
        return false;
    }
    u->db = (uint32_t)v;
    return true;
}

int ll_store_url_parse(const char *url, ll_store_url *out, char *detail, size_t dlen)
{
    *out = (ll_store_url){.kind = LL_STORE_MEMORY};
    if (strcmp(url, "memory:") == 0) {
        return 0;
    }
    const char *why = "the store URL must be \"memory:\" or \"redis://HOST[:PORT][/DB]\"";
    if (strncmp(url, REDIS_PREFIX, strlen(REDIS_PREFIX)) == 0) {
        const char *p = url + strlen(REDIS_PREFIX), *end = url + strlen(url);
        out->kind = LL_STORE_REDIS;
        if (strchr(p, '@')) {
            why = "credentials are not supported";
        } else if (p == end) {
            why = "no host";
        } else if (parse_host(&p, end, out, &why) && parse_rest(p, end, out, &why)) {
            return 0;
        }
    }
    LL_DETAIL(detail, dlen, "store URL \"%.100s\": %s", url, why);
    return SDK_EINVAL;
}
