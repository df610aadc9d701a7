/*
 * TLS session ticket keys shared by the instances of a server through their session store
 * (lifeline/store.h, "Ticket keys"): which keys are live, which one encrypts, which one a
 * ticket names. Pure logic on a ring of keys; the store calls and the thread that refreshes
 * the ring are ticket_refresh.c's, the OpenSSL callback that uses it is tls_tickets.c's.
 *
 * Time is cut into periods of rotation_ms on the wall clock (period = wall_ms / rotation_ms),
 * so every instance names the same period at the same time without talking to the others.
 * Each period has one key, created once in the store by whichever instance asks first.
 * Live are `live` keys: the current period's, the next one's (created ahead, so an instance
 * whose clock runs a little fast already encrypts with a key the others hold), and live - 2
 * before them. Encrypting uses the current period's key; decrypting accepts any live key,
 * and a ticket under a key other than the current one is renewed.
 */
#ifndef LL_TICKETKEYS_H
#define LL_TICKETKEYS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LL_TK_NAME_LEN            16 /* OpenSSL's key_name: sent in the clear inside each ticket */
#define LL_TK_AES_LEN             32 /* AES-256-CBC */
#define LL_TK_HMAC_LEN            32 /* HMAC-SHA256 */
#define LL_TK_BLOB_LEN            (LL_TK_NAME_LEN + LL_TK_AES_LEN + LL_TK_HMAC_LEN) /* as stored */
#define LL_TK_LIVE_MIN            2
#define LL_TK_LIVE_MAX            8
#define LL_TK_LIVE_DEFAULT        3
#define LL_TK_ROTATION_DEFAULT_MS (12ull * 3600 * 1000)
#define LL_TK_ROTATION_MIN_MS     1000ull

typedef struct ll_ticket_key {
    uint64_t period; /* the period this key belongs to; 0 for a key of this process only */
    uint8_t name[LL_TK_NAME_LEN];
    uint8_t aes[LL_TK_AES_LEN];
    uint8_t hmac[LL_TK_HMAC_LEN];
} ll_ticket_key;

/* The periods whose keys are live at `period`: first..last, last - first + 1 == live. */
typedef struct ll_tk_window {
    uint64_t first, last;
} ll_tk_window;

/* The period of wall_ms (rotation_ms > 0). Pure. */
uint64_t ll_tk_period(uint64_t wall_ms, uint64_t rotation_ms);
/* The live window at period (live in LL_TK_LIVE_MIN..MAX): period + 1 is the newest. Pure. */
ll_tk_window ll_tk_window_at(uint64_t period, unsigned live);
/* When the window next moves after wall_ms: the start of the next period. Pure. */
uint64_t ll_tk_next_boundary_ms(uint64_t wall_ms, uint64_t rotation_ms);

/* A key's stored form (name | aes | hmac) and back. Pure. */
void ll_tk_encode(const ll_ticket_key *k, uint8_t blob[LL_TK_BLOB_LEN]);
void ll_tk_decode(const uint8_t blob[LL_TK_BLOB_LEN], uint64_t period, ll_ticket_key *k);
/* Fill blob with a new key from the CSPRNG. 0 or SDK_EIO. */
int ll_tk_generate(uint8_t blob[LL_TK_BLOB_LEN]);

/*
 * The keys a server holds, shared by its TLS callback (any thread that runs handshakes) and
 * the thread that refreshes them: every call below takes mu. `want_refresh` is how a
 * handshake that met an unknown key asks for a refresh without doing one (cv wakes the
 * refresher); a store call never runs under mu.
 */
typedef struct ll_ticket_ring {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC (ll_cond_init) */
    uint64_t rotation_ms;
    unsigned live;
    ll_ticket_key keys[LL_TK_LIVE_MAX];
    size_t count;
    bool shared;       /* the keys came from the store (false: this process's own fallback) */
    bool want_refresh; /* a ticket named a key not held */
    bool stopping;     /* the refresher is asked to end */
} ll_ticket_ring;

/* rotation_ms >= LL_TK_ROTATION_MIN_MS, live in LL_TK_LIVE_MIN..MAX (callers validate). */
void ll_tk_ring_init(ll_ticket_ring *r, uint64_t rotation_ms, unsigned live);
void ll_tk_ring_destroy(ll_ticket_ring *r);
/* Replace the held keys with keys[0..n) (n <= LL_TK_LIVE_MAX; extra ones are ignored). */
void ll_tk_ring_install(ll_ticket_ring *r, const ll_ticket_key *keys, size_t n, bool shared);
/* The key to encrypt a new ticket with at wall_ms: the one of its period if held, else the
 * newest held before it, else the oldest held. false if the ring is empty. */
bool ll_tk_ring_encrypt_key(ll_ticket_ring *r, uint64_t wall_ms, ll_ticket_key *out);
/* The held key named name into *out, with *renew set when it is not the key
 * ll_tk_ring_encrypt_key would choose at wall_ms. false (and a refresh asked for) if no held
 * key has that name. */
bool ll_tk_ring_find(ll_ticket_ring *r, const uint8_t name[LL_TK_NAME_LEN], uint64_t wall_ms, ll_ticket_key *out,
                     bool *renew);
/* Whether the ring's keys come from the store. */
bool ll_tk_ring_shared(ll_ticket_ring *r);

#endif
