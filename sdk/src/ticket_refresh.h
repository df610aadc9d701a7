/*
 * The thread that keeps a server's ticket key ring (ticketkeys.h) in step with its session
 * store: the keys are fetched once at start, then again at each period boundary and when a
 * handshake met a ticket under a key the ring lacks, always off the I/O thread, so that no
 * handshake waits on the store. A store that fails keeps the keys already held (retried
 * with backoff); one that fails at start leaves a key of this process only, so tickets still
 * resume here until the store answers.
 */
#ifndef LL_TICKET_REFRESH_H
#define LL_TICKET_REFRESH_H

#include "lifeline/store.h"
#include "ticketkeys.h"

typedef struct ll_tk_refresher ll_tk_refresher;

/* What the refresher has seen, for sdk_server_ticket_keys. */
typedef struct ll_tk_status {
    bool shared;       /* the ring holds the store's keys */
    uint64_t fetches;  /* successful fetches */
    uint64_t failures; /* failed ones */
    int last_err;      /* the latest fetch's error (0: it succeeded) */
    char detail[256];  /* and why */
} ll_tk_status;

/* A ring of rotation_ms and live keys (validated by the caller), fetched from store now
 * (blocks up to the store's timeout), then a refresher thread. 0 or SDK_ENOMEM / SDK_EIO
 * (no thread, no randomness); a store failure is not an error here. */
int ll_tk_refresher_start(sdk_store *store, uint64_t rotation_ms, unsigned live, ll_tk_refresher **out);
/* The ring to give the TLS context (lives until ll_tk_refresher_stop). */
ll_ticket_ring *ll_tk_refresher_ring(ll_tk_refresher *f);
/* A copy of the status. Any thread. */
void ll_tk_refresher_status(ll_tk_refresher *f, ll_tk_status *out);
/* One fetch now, on the calling thread (tests; the thread does the same). 0 or the store's
 * error. */
int ll_tk_refresher_fetch(ll_tk_refresher *f);
/* End the thread (waits for a fetch under way, up to the store's timeout) and free
 * everything, the ring included. NULL is ignored. */
void ll_tk_refresher_stop(ll_tk_refresher *f);

#endif
