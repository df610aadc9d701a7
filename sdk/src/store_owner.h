/*
 * Owner marks and instance channels in the session store: what lets a server take a live
 * session over from another one (server_takeover.c, docs/cluster.md "Takeover").
 *
 * An owner mark says which instance holds a session live, and the hash of its resume token
 * (so that a client that knows only an id cannot make an instance let its session go). It
 * is a hint, not a lock: the epochs of recstore.h alone decide who may write a session, so a
 * stale mark costs a question, never a state. Marks expire (ttl_ms) unless refreshed.
 *
 * Each instance listens on its own channel; another instance that wants one of its sessions
 * publishes a request there, and is told on its own channel when the session is let go.
 *
 * Backends that have no channels (the memory store) leave st->owner_ops NULL: a server on
 * them takes nothing over (ll_owner_supported is false).
 *
 * Locking: the calls on st take st->mu, as recstore.h's; a subscription is a connection of
 * its own, used by one thread, without st->mu.
 */
#ifndef LL_STORE_OWNER_H
#define LL_STORE_OWNER_H

#include "lifeline/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ll_store_sub ll_store_sub;

/* One owner mark to write: session id's mark becomes value. */
typedef struct ll_owner_mark {
    uint64_t id;
    char value[96]; /* NUL-terminated */
} ll_owner_mark;

/* A message that arrived on a subscription (not NUL-terminated). */
typedef void (*ll_store_msg_fn)(const char *msg, size_t len, void *ctx);

typedef struct ll_owner_ops {
    /* Write n marks in one round trip, each expiring ttl_ms later. keep_others: leave a mark
     * alone that names something else (a refresh must not take back a session moved on). */
    int (*mark)(sdk_store *st, const ll_owner_mark *m, size_t n, uint64_t ttl_ms, bool keep_others);
    /* Session id's mark into buf (len bytes, NUL-terminated): 0 or SDK_ENOTFOUND. */
    int (*get_mark)(sdk_store *st, uint64_t id, char *buf, size_t len);
    /* A new owner epoch for session id into *epoch, only if nobody holds a claim on it now;
     * *epoch 0 if someone does (a takeover under way: the new owner's state comes first). */
    int (*claim_free)(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch);
    /* Send msg on channel; *receivers: how many listened (0: the instance is gone). */
    int (*publish)(sdk_store *st, const char *channel, const char *msg, uint64_t *receivers);
    /* A connection of its own listening on channel (connected and subscribed on return,
     * within st->timeout_ms per round trip). */
    int (*sub_open)(sdk_store *st, const char *channel, ll_store_sub **out);
    /* Its socket, for poll(): readable when sub_read has something to do. */
    int (*sub_fd)(const ll_store_sub *s);
    /* Read what has arrived (call when sub_fd is readable) and pass each message to fn.
     * 0, or an sdk_err when the connection is gone (close it and open another). */
    int (*sub_read)(ll_store_sub *s, ll_store_msg_fn fn, void *ctx);
    void (*sub_close)(ll_store_sub *s);
} ll_owner_ops;

/* The Redis backend's (store_redis_owner.c). */
extern const ll_owner_ops LL_REDIS_OWNER_OPS;

/* Whether st has owner marks and channels. */
bool ll_owner_supported(const sdk_store *st);
/* The calls of ll_owner_ops, st->mu taken where they use st's connection. 0 or an sdk_err
 * (sdk_store_last_error says more). Blocking: one round trip each, bounded by st's timeout. */
int ll_owner_write_marks(sdk_store *st, const ll_owner_mark *m, size_t n, uint64_t ttl_ms, bool keep_others);
int ll_owner_get_mark(sdk_store *st, uint64_t id, char *buf, size_t len);
int ll_owner_claim_free(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch);
int ll_owner_publish(sdk_store *st, const char *channel, const char *msg, uint64_t *receivers);
int ll_owner_sub_open(sdk_store *st, const char *channel, ll_store_sub **out);
int ll_owner_sub_fd(const sdk_store *st, const ll_store_sub *s);
int ll_owner_sub_read(const sdk_store *st, ll_store_sub *s, ll_store_msg_fn fn, void *ctx);
void ll_owner_sub_close(const sdk_store *st, ll_store_sub *s); /* NULL is ignored */

#endif
