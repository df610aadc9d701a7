/* Per-address token buckets for new connections (ratelimit.h). */
#include "ratelimit.h"

#include "ll.h"

#include <string.h>

void ll_rate_address(const char *peer, char addr[LL_RATE_ADDR_LEN])
{
    const char *colon = strrchr(peer, ':');
    size_t len = colon ? (size_t)(colon - peer) : strlen(peer);
    len = LL_MIN(len, (size_t)LL_RATE_ADDR_LEN - 1);
    memcpy(addr, peer, len);
    addr[len] = '\0';
}

/* FNV-1a: cheap, and good enough to spread addresses over the slots. */
static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

static uint64_t refilled(const ll_rate_slot *s, uint32_t rate, uint32_t burst, uint64_t now_ms)
{
    uint64_t elapsed = now_ms > s->last_ms ? now_ms - s->last_ms : 0;
    uint64_t full = (uint64_t)burst * 1000;
    /* rate tokens per second = rate milli-tokens per millisecond */
    uint64_t gained = elapsed >= full / rate ? full : elapsed * rate;
    return LL_MIN(full, s->milli_tokens + gained);
}

bool ll_rate_take(ll_rate_table *t, const char *addr, uint32_t rate, uint32_t burst, uint64_t now_ms)
{
    ll_rate_slot *s = &t->slots[hash(addr) % LL_RATE_SLOTS];
    uint64_t tokens = refilled(s, rate, burst, now_ms);
    bool mine = strncmp(s->addr, addr, LL_RATE_ADDR_LEN) == 0;
    if (!mine && (s->addr[0] == '\0' || tokens == (uint64_t)burst * 1000)) {
        LL_DETAIL(s->addr, sizeof(s->addr), "%s", addr); /* free, or its address went quiet */
        tokens = (uint64_t)burst * 1000;
    }
    s->last_ms = now_ms;
    if (tokens < 1000) {
        s->milli_tokens = tokens;
        return false;
    }
    s->milli_tokens = tokens - 1000;
    return true;
}
