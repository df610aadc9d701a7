/*
 * The ticket key refresher (ticket_refresh.h). Its thread sleeps on the ring's condition
 * variable (monotonic clock) until the next period boundary of the wall clock, a retry after
 * a failure, or a handshake's request; the store call itself runs without the ring's mutex,
 * so handshakes go on meanwhile with the keys already held.
 */
#include "ticket_refresh.h"

#include "ll.h"
#include "net.h"
#include "recstore.h"
#include "wait.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_FIRST_MS       500u
#define RETRY_MAX_MS         30000u
#define MISS_MIN_INTERVAL_MS 5000u /* an unknown key asks for a refresh at most this often */
#define JITTER_MAX_MS        1000u /* spreads the instances' fetches after a boundary */
/* Fetched again at least this often, not only at boundaries: a store that lost its keys
 * (restarted without persistence) has new ones made by the first instance to ask, and
 * the others must not keep sealing with the lost ones until the next boundary. */
#define REFETCH_MAX_MS 60000u

struct ll_tk_refresher {
    ll_ticket_ring ring; /* its mu guards everything below too */
    sdk_store *store;
    pthread_t thread;
    bool thread_started;
    uint64_t due_ms;        /* monotonic: the next scheduled fetch */
    uint64_t last_fetch_ms; /* monotonic: the latest fetch's start */
    uint32_t retry_ms;      /* the next retry's delay after a failure */
    ll_tk_status status;
};

/* The live keys of the current window from the store, each created there if missing. */
static int fetch_window(ll_tk_refresher *f, ll_ticket_key *keys, size_t *n)
{
    ll_ticket_ring *r = &f->ring;
    ll_tk_window w = ll_tk_window_at(ll_tk_period(ll_wall_ms(), r->rotation_ms), r->live);
    uint64_t periods[LL_TK_LIVE_MAX];
    uint8_t blobs[LL_TK_LIVE_MAX][LL_TK_BLOB_LEN];
    *n = (size_t)(w.last - w.first + 1);
    int rc = 0;
    for (size_t i = 0; i < *n && rc == 0; i++) {
        periods[i] = w.first + i;
        rc = ll_tk_generate(blobs[i]);
    }
    /* A key lives through its window (live periods from its creation as the next one) and
     * one period more, for instances whose clocks lag. */
    uint64_t ttl_ms = (uint64_t)(r->live + 1) * r->rotation_ms;
    if (rc == 0) {
        rc = ll_recstore_ticket_keys(f->store, r->rotation_ms, periods, blobs, *n, ttl_ms);
    }
    for (size_t i = 0; i < *n && rc == 0; i++) {
        ll_tk_decode(blobs[i], periods[i], &keys[i]);
    }
    memset(blobs, 0, sizeof(blobs)); /* secrets: gone from the stack once copied */
    return rc;
}

/* When to fetch next, after a fetch that returned rc (under mu). */
static void schedule(ll_tk_refresher *f, int rc, uint64_t now)
{
    if (rc == 0) {
        uint64_t wall = ll_wall_ms();
        uint32_t jitter = 0;
        (void)ll_net_random(&jitter, sizeof(jitter));
        jitter %= (uint32_t)LL_MIN((uint64_t)JITTER_MAX_MS, f->ring.rotation_ms / 10) + 1;
        uint64_t to_boundary = ll_tk_next_boundary_ms(wall, f->ring.rotation_ms) - wall + jitter;
        f->due_ms = now + LL_MIN(to_boundary, (uint64_t)REFETCH_MAX_MS);
        f->retry_ms = RETRY_FIRST_MS;
    } else {
        f->due_ms = now + f->retry_ms;
        f->retry_ms = (uint32_t)LL_MIN((uint64_t)f->retry_ms * 2, LL_MIN((uint64_t)RETRY_MAX_MS, f->ring.rotation_ms));
    }
}

int ll_tk_refresher_fetch(ll_tk_refresher *f)
{
    ll_ticket_key keys[LL_TK_LIVE_MAX];
    size_t n = 0;
    uint64_t started = ll_now_ms();
    int rc = fetch_window(f, keys, &n);
    if (rc == 0) {
        ll_tk_ring_install(&f->ring, keys, n, true);
    }
    memset(keys, 0, sizeof(keys));
    pthread_mutex_lock(&f->ring.mu);
    ll_tk_status *s = &f->status;
    s->shared = f->ring.shared;
    s->fetches += rc == 0;
    s->failures += rc != 0;
    s->last_err = rc;
    if (rc != 0) { /* the store's detail: never a key (none is ever formatted) */
        (void)sdk_store_last_error(f->store, s->detail, sizeof(s->detail));
    } else {
        s->detail[0] = '\0';
    }
    f->last_fetch_ms = started;
    schedule(f, rc, ll_now_ms());
    pthread_mutex_unlock(&f->ring.mu);
    return rc;
}

/* How long the thread may sleep before its next fetch (under mu). */
static uint64_t sleep_ms(const ll_tk_refresher *f, uint64_t now)
{
    uint64_t due = f->due_ms;
    if (f->ring.want_refresh) {
        due = LL_MIN(due, f->last_fetch_ms + MISS_MIN_INTERVAL_MS);
    }
    return due > now ? due - now : 0;
}

static void *refresh_main(void *arg)
{
    ll_tk_refresher *f = arg;
    ll_ticket_ring *r = &f->ring;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        uint64_t ms = sleep_ms(f, ll_now_ms());
        if (ms > 0) {
            ll_deadline dl = ll_deadline_in((int)LL_MIN(ms, (uint64_t)INT_MAX));
            (void)ll_cond_wait(&r->cv, &r->mu, &dl);
            continue;
        }
        r->want_refresh = false;
        pthread_mutex_unlock(&r->mu);
        (void)ll_tk_refresher_fetch(f);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* The store did not answer at start: a key of this process, so tickets resume here. */
static int install_local_key(ll_tk_refresher *f)
{
    uint8_t blob[LL_TK_BLOB_LEN];
    ll_ticket_key k;
    LL_GUARD(ll_tk_generate(blob));
    ll_tk_decode(blob, ll_tk_period(ll_wall_ms(), f->ring.rotation_ms), &k);
    ll_tk_ring_install(&f->ring, &k, 1, false);
    memset(blob, 0, sizeof(blob));
    memset(&k, 0, sizeof(k));
    return 0;
}

int ll_tk_refresher_start(sdk_store *store, uint64_t rotation_ms, unsigned live, ll_tk_refresher **out)
{
    ll_tk_refresher *f = calloc(1, sizeof(*f));
    LL_ENSURE(f != NULL, SDK_ENOMEM);
    ll_tk_ring_init(&f->ring, rotation_ms, live);
    f->store = store;
    f->retry_ms = RETRY_FIRST_MS;
    int rc = ll_tk_refresher_fetch(f) == 0 ? 0 : install_local_key(f);
    if (rc == 0 && pthread_create(&f->thread, NULL, refresh_main, f) != 0) {
        rc = SDK_ENOMEM;
    }
    f->thread_started = rc == 0;
    if (rc != 0) {
        ll_tk_refresher_stop(f);
        return rc;
    }
    *out = f;
    return 0;
}

ll_ticket_ring *ll_tk_refresher_ring(ll_tk_refresher *f)
{
    return &f->ring;
}

void ll_tk_refresher_status(ll_tk_refresher *f, ll_tk_status *out)
{
    pthread_mutex_lock(&f->ring.mu);
    *out = f->status;
    pthread_mutex_unlock(&f->ring.mu);
}

void ll_tk_refresher_stop(ll_tk_refresher *f)
{
    if (!f) {
        return;
    }
    if (f->thread_started) {
        pthread_mutex_lock(&f->ring.mu);
        f->ring.stopping = true;
        pthread_cond_broadcast(&f->ring.cv);
        pthread_mutex_unlock(&f->ring.mu);
        pthread_join(f->thread, NULL);
    }
    ll_tk_ring_destroy(&f->ring);
    free(f);
}
