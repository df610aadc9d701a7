/* The client's endpoints: list, order and cursor (see endpoints.h). */
#include "endpoints.h"

#include "ll.h"
#include "net.h"

#include <stdlib.h>
#include <string.h>

void ll_endpoints_init(ll_endpoints *e)
{
    memset(e, 0, sizeof(*e));
}

int ll_endpoints_add(ll_endpoints *e, const char *host, uint16_t port)
{
    LL_ENSURE(host != NULL && host[0] != '\0' && port != 0 && e->count < LL_ENDPOINTS_MAX, SDK_EINVAL);
    ll_endpoint *list = realloc(e->list, (e->count + 1) * sizeof(*list)); /* a few entries, once */
    LL_ENSURE(list != NULL, SDK_ENOMEM);
    e->list = list;
    char *copy = strdup(host);
    LL_ENSURE(copy != NULL, SDK_ENOMEM);
    e->list[e->count] = (ll_endpoint){.host = copy, .port = port, .index = e->count, .known = 1};
    e->count++;
    return 0;
}

int ll_endpoints_add_address(ll_endpoints *e, const char *address)
{
    char host[256];
    uint16_t port = 0;
    LL_GUARD(ll_net_split_hostport(address, host, sizeof(host), &port));
    return ll_endpoints_add(e, host, port);
}

/* xorshift64*: an order needs spread, not secrecy (the seed comes from getrandom). */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ULL;
}

/* Fisher-Yates over n elements of size bytes at base (n <= LL_RESOLVE_MAX or LL_ENDPOINTS_MAX).
 * The modulo bias of a 64-bit value over at most 64 choices is below 2^-57. */
static void shuffle(void *base, size_t n, size_t size, uint64_t *rng)
{
    unsigned char tmp[sizeof(ll_addr) > sizeof(ll_endpoint) ? sizeof(ll_addr) : sizeof(ll_endpoint)];
    unsigned char *p = base;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(next_random(rng) % i);
        memcpy(tmp, p + (i - 1) * size, size);
        memcpy(p + (i - 1) * size, p + j * size, size);
        memcpy(p + j * size, tmp, size);
    }
}

void ll_endpoints_order(ll_endpoints *e, bool keep_order, uint64_t seed)
{
    e->keep_order = keep_order;
    e->rng = seed ? seed : 0x9e3779b97f4a7c15ULL; /* xorshift must not start at 0 */
    if (!keep_order) {
        shuffle(e->list, e->count, sizeof(e->list[0]), &e->rng);
    }
    e->entry = 0;
    e->addr = 0;
    e->addrs_count = 0;
    e->round_failures = 0;
}

void ll_endpoints_free(ll_endpoints *e)
{
    for (size_t i = 0; i < e->count; i++) {
        free(e->list[i].host);
    }
    free(e->list);
    free(e->addrs);
    ll_endpoints_init(e);
}

const ll_endpoint *ll_endpoints_current(const ll_endpoints *e)
{
    return &e->list[e->entry];
}

bool ll_endpoints_need_addrs(const ll_endpoints *e)
{
    return e->addrs_count == 0;
}

int ll_endpoints_set_addrs(ll_endpoints *e, const ll_addrs *addrs)
{
    size_t n = LL_MIN(addrs->count, (size_t)LL_RESOLVE_MAX);
    if (n > e->addrs_cap) { /* grown once to the most a name has had */
        ll_addr *grown = realloc(e->addrs, n * sizeof(*grown));
        LL_ENSURE(grown != NULL, SDK_ENOMEM);
        e->addrs = grown;
        e->addrs_cap = n;
    }
    memcpy(e->addrs, addrs->addr, n * sizeof(*e->addrs));
    e->addrs_count = n;
    e->addr = 0;
    e->list[e->entry].known = LL_MAX(n, (size_t)1);
    if (!e->keep_order) {
        shuffle(e->addrs, n, sizeof(e->addrs[0]), &e->rng);
    }
    return 0;
}

const ll_addr *ll_endpoints_addr(const ll_endpoints *e)
{
    return e->addr < e->addrs_count ? &e->addrs[e->addr] : NULL;
}

/* The next address: of this entry, else the first of the next entry (resolved afresh when
 * the cursor gets there, so a name's changes are seen once per round). */
static void advance(ll_endpoints *e)
{
    e->addr++;
    if (e->addr >= e->addrs_count) {
        e->addr = 0;
        e->addrs_count = 0;
        e->entry = e->count ? (e->entry + 1) % e->count : 0;
    }
}

size_t ll_endpoints_round_size(const ll_endpoints *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->count; i++) {
        n += e->list[i].known;
    }
    return LL_MAX(n, (size_t)1);
}

bool ll_endpoints_failed(ll_endpoints *e)
{
    if (e->addrs_count == 0 && e->count) {
        e->list[e->entry].known = 1; /* its resolution failed: one attempt */
    }
    advance(e);
    e->round_failures++;
    if (e->round_failures < ll_endpoints_round_size(e)) {
        return false;
    }
    e->round_failures = 0;
    return true;
}

void ll_endpoints_connected(ll_endpoints *e)
{
    e->round_failures = 0;
}

void ll_endpoints_ended(ll_endpoints *e, bool going_away)
{
    if (going_away) {
        advance(e);
    }
    e->round_failures = 0;
}
