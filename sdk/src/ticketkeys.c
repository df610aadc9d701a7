/*
 * Ticket key periods and the ring of held keys (ticketkeys.h). No I/O but the CSPRNG.
 */
#include "ticketkeys.h"

#include "ll.h"
#include "net.h"
#include "wait.h"

#include <string.h>

uint64_t ll_tk_period(uint64_t wall_ms, uint64_t rotation_ms)
{
    return wall_ms / rotation_ms;
}

ll_tk_window ll_tk_window_at(uint64_t period, unsigned live)
{
    uint64_t back = live - 2; /* live counts the current and the next key too */
    return (ll_tk_window){.first = period > back ? period - back : 0, .last = period + 1};
}

uint64_t ll_tk_next_boundary_ms(uint64_t wall_ms, uint64_t rotation_ms)
{
    return (ll_tk_period(wall_ms, rotation_ms) + 1) * rotation_ms;
}

void ll_tk_encode(const ll_ticket_key *k, uint8_t blob[LL_TK_BLOB_LEN])
{
    memcpy(blob, k->name, LL_TK_NAME_LEN);
    memcpy(blob + LL_TK_NAME_LEN, k->aes, LL_TK_AES_LEN);
    memcpy(blob + LL_TK_NAME_LEN + LL_TK_AES_LEN, k->hmac, LL_TK_HMAC_LEN);
}

void ll_tk_decode(const uint8_t blob[LL_TK_BLOB_LEN], uint64_t period, ll_ticket_key *k)
{
    k->period = period;
    memcpy(k->name, blob, LL_TK_NAME_LEN);
    memcpy(k->aes, blob + LL_TK_NAME_LEN, LL_TK_AES_LEN);
    memcpy(k->hmac, blob + LL_TK_NAME_LEN + LL_TK_AES_LEN, LL_TK_HMAC_LEN);
}

int ll_tk_generate(uint8_t blob[LL_TK_BLOB_LEN])
{
    return ll_net_random(blob, LL_TK_BLOB_LEN) == 0 ? 0 : SDK_EIO;
}

void ll_tk_ring_init(ll_ticket_ring *r, uint64_t rotation_ms, unsigned live)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    ll_cond_init(&r->cv);
    r->rotation_ms = rotation_ms;
    r->live = live;
}

void ll_tk_ring_destroy(ll_ticket_ring *r)
{
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    /* Secrets do not outlive their use in freed memory. */
    volatile uint8_t *p = (volatile uint8_t *)r->keys;
    for (size_t i = 0; i < sizeof(r->keys); i++) {
        p[i] = 0;
    }
}

void ll_tk_ring_install(ll_ticket_ring *r, const ll_ticket_key *keys, size_t n, bool shared)
{
    n = LL_MIN(n, (size_t)LL_TK_LIVE_MAX);
    pthread_mutex_lock(&r->mu);
    memcpy(r->keys, keys, n * sizeof(*keys));
    r->count = n;
    r->shared = shared;
    pthread_mutex_unlock(&r->mu);
}

/* The index of the key to encrypt with at period, or -1 (under mu). */
static int encrypt_index(const ll_ticket_ring *r, uint64_t period)
{
    int best = -1, oldest = -1;
    for (size_t i = 0; i < r->count; i++) {
        uint64_t p = r->keys[i].period;
        if (p == period) {
            return (int)i;
        }
        if (p < period && (best < 0 || p > r->keys[best].period)) {
            best = (int)i;
        }
        if (oldest < 0 || p < r->keys[oldest].period) {
            oldest = (int)i;
        }
    }
    return best >= 0 ? best : oldest;
}

bool ll_tk_ring_encrypt_key(ll_ticket_ring *r, uint64_t wall_ms, ll_ticket_key *out)
{
    pthread_mutex_lock(&r->mu);
    int i = encrypt_index(r, ll_tk_period(wall_ms, r->rotation_ms));
    if (i >= 0) {
        *out = r->keys[i];
    }
    pthread_mutex_unlock(&r->mu);
    return i >= 0;
}

bool ll_tk_ring_find(ll_ticket_ring *r, const uint8_t name[LL_TK_NAME_LEN], uint64_t wall_ms, ll_ticket_key *out,
                     bool *renew)
{
    bool found = false;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->count && !found; i++) {
        if (memcmp(r->keys[i].name, name, LL_TK_NAME_LEN) == 0) {
            found = true;
            *out = r->keys[i];
            *renew = (int)i != encrypt_index(r, ll_tk_period(wall_ms, r->rotation_ms));
        }
    }
    if (!found && !r->want_refresh) {
        r->want_refresh = true;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

bool ll_tk_ring_shared(ll_ticket_ring *r)
{
    pthread_mutex_lock(&r->mu);
    bool shared = r->shared;
    pthread_mutex_unlock(&r->mu);
    return shared;
}
