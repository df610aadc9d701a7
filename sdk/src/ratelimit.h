/*
 * Per-source-address rate of new connections (admission control, server_admit.c): a token
 * bucket per address in a fixed table, so that a flood from many addresses costs bounded
 * memory. Each address refills at `rate` tokens per second up to `burst`; a new connection
 * takes one. Addresses are hashed into LL_RATE_SLOTS slots: a slot is taken over by another
 * address once it has refilled completely (its address has been quiet), and until then two
 * colliding addresses share one bucket, which errs on the side of refusing.
 * Pure logic: no clock (callers pass now_ms), no locks (the server's I/O thread owns it).
 */
#ifndef LL_RATELIMIT_H
#define LL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define LL_RATE_SLOTS    4096
#define LL_RATE_ADDR_LEN 48 /* an IPv6 literal with brackets */

typedef struct ll_rate_slot {
    char addr[LL_RATE_ADDR_LEN]; /* "" while unused */
    uint64_t milli_tokens;       /* thousandths of a token, to refill without floating point */
    uint64_t last_ms;
} ll_rate_slot;

typedef struct ll_rate_table {
    ll_rate_slot slots[LL_RATE_SLOTS];
} ll_rate_table;

/* The address part of "ip:port" or "[v6]:port" into addr (at most LL_RATE_ADDR_LEN bytes). */
void ll_rate_address(const char *peer, char addr[LL_RATE_ADDR_LEN]);
/* Whether addr may open a connection at now_ms (taking a token if so). rate and burst > 0. */
bool ll_rate_take(ll_rate_table *t, const char *addr, uint32_t rate, uint32_t burst, uint64_t now_ms);

#endif
