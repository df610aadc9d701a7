/*
 * The client's endpoints: which server address the next connection attempt goes to.
 * Sans-I/O: the caller resolves names and connects; this module only keeps the list, its
 * order and the cursor, and says when a round (every address tried once in a row) is over,
 * which is when the reconnect policy's backoff applies (client_io.c). Randomness comes in
 * as a seed, so tests drive it deterministically.
 *
 * The rules (sdk.h, sdk_config.endpoints, documents them for users):
 *  - the configured entries are put in one random order per client (or kept as given), and
 *    the cursor cycles through them for as long as the reconnect policy allows: a list is
 *    never tried only once, and the last entry is never where the cursor stays;
 *  - a name is resolved when the cursor reaches it, and each of its addresses counts as an
 *    endpoint of its own (shuffled too, unless the order is kept);
 *  - a lost connection is retried on the same address first (without a shared store only
 *    that server knows the session); after the server's GOING_AWAY the cursor moves on.
 *
 * One thread at a time (the client's I/O thread).
 */
#ifndef LL_ENDPOINTS_H
#define LL_ENDPOINTS_H

#include "resolve.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most entries one sdk_config.endpoints may list. */
#define LL_ENDPOINTS_MAX 64

typedef struct ll_endpoint {
    char *host; /* a name or an IP literal, owned by the list */
    uint16_t port;
    size_t index; /* position in the configuration as given */
    size_t known; /* addresses its latest resolution gave; 1 before any */
} ll_endpoint;

/* The arrays are on the heap, as large as they have needed to be (most clients have one
 * entry with one address), not LL_ENDPOINTS_MAX and LL_RESOLVE_MAX inline: that was 4 KiB of
 * every client (lifeline-bench's RSS per idle client). */
typedef struct ll_endpoints {
    ll_endpoint *list; /* count entries, in the order they are tried */
    size_t count;
    size_t entry;       /* the entry tried now or next */
    size_t addr;        /* its address tried now or next, in addrs */
    ll_addr *addrs;     /* the entry's addresses in trying order ... */
    size_t addrs_count; /* ... this many; 0: resolve first */
    size_t addrs_cap;
    size_t round_failures; /* failed attempts in a row since the round began */
    bool keep_order;
    uint64_t rng; /* xorshift state for the shuffles */
} ll_endpoints;

/* An empty list (count 0). */
void ll_endpoints_init(ll_endpoints *e);
/* Append host:port (copied). 0, SDK_EINVAL (empty host, port 0, more than LL_ENDPOINTS_MAX),
 * or SDK_ENOMEM. */
int ll_endpoints_add(ll_endpoints *e, const char *host, uint16_t port);
/* Append "HOST:PORT" or "[IPv6]:PORT" (sdk_parse_address syntax). 0, SDK_EINVAL (malformed,
 * port 0, or as ll_endpoints_add) or SDK_ENOMEM. */
int ll_endpoints_add_address(ll_endpoints *e, const char *address);
/* Fix the trying order: shuffled with seed (any 64-bit value), or as added if keep_order.
 * Call once, after the last add; the cursor starts on the first entry of that order. */
void ll_endpoints_order(ll_endpoints *e, bool keep_order, uint64_t seed);
void ll_endpoints_free(ll_endpoints *e);

/* The entry the next attempt goes to (count must be >= 1). */
const ll_endpoint *ll_endpoints_current(const ll_endpoints *e);
/* Whether that entry must be resolved (ll_endpoints_set_addrs) before ll_endpoints_addr. */
bool ll_endpoints_need_addrs(const ll_endpoints *e);
/* The current entry's addresses as resolved (count >= 1), put in trying order. 0 or
 * SDK_ENOMEM (nothing changed). */
int ll_endpoints_set_addrs(ll_endpoints *e, const ll_addrs *addrs);
/* The address the next attempt connects to; NULL while ll_endpoints_need_addrs. */
const ll_addr *ll_endpoints_addr(const ll_endpoints *e);

/* An attempt on the current address (or the resolution of its entry) failed: move to the
 * next address. Returns true when this failure completes a round (every known address has
 * failed once in a row), which starts the next round. */
bool ll_endpoints_failed(ll_endpoints *e);
/* Attempts in a round: the addresses each entry's latest resolution gave (1 for an entry
 * not resolved yet, or whose resolution failed). */
size_t ll_endpoints_round_size(const ll_endpoints *e);
/* A session was established: a new round starts here. */
void ll_endpoints_connected(ll_endpoints *e);
/* The session ended. going_away (the server said GOING_AWAY): the next attempt goes to the
 * next address; else to the same one again. Either way a new round starts there. */
void ll_endpoints_ended(ll_endpoints *e, bool going_away);

#endif
