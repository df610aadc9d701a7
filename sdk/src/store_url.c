/*
 * Store URLs: "memory:" and "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]" (lifeline/store.h).
 * Strict on purpose: a URL that half-parses would send sessions to the wrong place. A
 * password never appears in a message: the URL is quoted with its credentials masked.
 */
#include "recstore.h"

#include "ll.h"

#include <stdio.h>
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

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* [p, end) percent-decoded (RFC 3986) into out (cap bytes, NUL-terminated); false if too
 * long, a '%' is not followed by two hex digits, or it decodes to a NUL. */
static bool decode_part(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    for (; p < end; p++, n++) {
        int c = (unsigned char)*p;
        if (c == '%') {
            int hi = p + 2 < end ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
            if (lo < 0 || (c = hi * 16 + lo) == 0) {
                return false;
            }
            p += 2;
        }
        if (n + 1 >= cap) {
            return false;
        }
        out[n] = (char)c;
    }
    out[n] = '\0';
    return true;
}

static const char *last_at(const char *p, const char *end)
{
    const char *at = NULL;
    for (; p < end; p++) {
        at = *p == '@' ? p : at;
    }
    return at;
}

/* "USER:PASSWORD@" or ":PASSWORD@" before the host, if there is an '@': *p moved past it. */
static bool parse_credentials(const char **p, const char *end, ll_store_url *u, const char **why)
{
    /* The last '@': a password's own '@' or '/' should be percent-encoded, but may not be,
     * and neither can follow the host. */
    const char *at = last_at(*p, end);
    if (!at) {
        return true;
    }
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    if (!colon || colon + 1 == at) {
        *why = "credentials must be USER:PASSWORD@ or :PASSWORD@ (percent-encoded)";
        return false;
    }
    if (!decode_part(*p, colon, u->user, sizeof(u->user)) ||
        !decode_part(colon + 1, at, u->password, sizeof(u->password))) {
        *why = "bad credentials: too long, a NUL, or a '%' not followed by two hex digits";
        return false;
    }
    *p = at + 1;
    return true;
}

/* The URL as messages may quote it: any credentials replaced by "***". */
static void masked(const char *url, char *out, size_t len)
{
    const char *host = strncmp(url, REDIS_PREFIX, strlen(REDIS_PREFIX)) == 0 ? url + strlen(REDIS_PREFIX) : NULL;
    const char *at = host ? last_at(host, host + strlen(host)) : NULL;
    if (at) {
        LL_DETAIL(out, len, "%s***@%.100s", REDIS_PREFIX, at + 1);
    } else {
        LL_DETAIL(out, len, "%.100s", url);
    }
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

/* What follows "redis://" in [p, end), into u; false with the reason in *why. */
static bool parse_redis(const char *p, const char *end, ll_store_url *u, const char **why)
{
    if (!parse_credentials(&p, end, u, why)) {
        return false;
    }
    if (p == end) {
        *why = "no host";
        return false;
    }
    return parse_host(&p, end, u, why) && parse_rest(p, end, u, why);
}

int ll_store_url_parse(const char *url, ll_store_url *out, char *detail, size_t dlen)
{
    *out = (ll_store_url){.kind = LL_STORE_MEMORY};
    if (strcmp(url, "memory:") == 0) {
        return 0;
    }
    const char *why = "the store URL must be \"memory:\" or \"redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\"";
    if (strncmp(url, REDIS_PREFIX, strlen(REDIS_PREFIX)) == 0) {
        const char *p = url + strlen(REDIS_PREFIX), *end = url + strlen(url);
        out->kind = LL_STORE_REDIS;
        if (parse_redis(p, end, out, &why)) {
            return 0;
        }
    }
    char shown[160];
    masked(url, shown, sizeof(shown));
    LL_DETAIL(detail, dlen, "store URL \"%s\": %s", shown, why);
    *out = (ll_store_url){.kind = LL_STORE_MEMORY}; /* no half-parsed password left behind */
    return SDK_EINVAL;
}
