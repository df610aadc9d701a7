/*
 * Session record stores behind a small table of functions (the public face is
 * lifeline/store.h). The core sees only this header: a backend (store_mem.c, store_redis.c,
 * the only file that includes hiredis) fills an ll_recstore_ops and keeps its state in
 * st->be.
 *
 * Fencing. claim(id) takes a new owner epoch for the session from a counter that never goes
 * back, and makes it the session's; put and del carry the writer's epoch and change nothing
 * unless it is still the session's. Both steps are atomic in the store (Lua in Redis), so
 * of two instances that both think they own a session, only the last to claim can write.
 *
 * Locking: st->mu serializes the calls below (a backend is single-threaded); backends never
 * call back into them. Nothing here holds another lock, so there is no order to keep.
 */
#ifndef LL_RECSTORE_H
#define LL_RECSTORE_H

#include "buf.h"
#include "lifeline/store.h"
#include "sessrec.h"
#include "ticketkeys.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The answer of a fenced write: results of their own, not an sdk_err, so that "fenced", a
 * normal outcome of a takeover, is not mistaken for a failure of the store. */
typedef enum {
    LL_WRITE_DONE = 0, /* written (or, for del, nothing of that epoch was left to delete) */
    LL_WRITE_FENCED,   /* another instance owns the session now: nothing was changed */
    LL_WRITE_FAILED,   /* the store failed; sdk_store_last_error says how */
} ll_write_result;

/* One write of a session's record, as the backend receives it: the header (a record
 * encoded with no frames), and frames to add behind those the store already holds. The
 * store drops its frames up to `acked` first, so what it holds stays the retransmit queue,
 * and skips any of the new frames it holds already (a write sent again after its answer was
 * lost), so what it holds stays numbered without a gap or a repeat. A batch of these is one
 * round trip. */
typedef struct ll_recwrite {
    uint64_t id;
    uint64_t epoch; /* the writer's claim: nothing changes unless it is the session's */
    const uint8_t *header;
    size_t header_len;
    uint64_t acked;        /* the header's acked: stored frames up to it go */
    const uint8_t *frames; /* Data frames to append (each with its 4-byte length), in order */
    size_t frames_len;
    uint32_t nframes;   /* how many frames `frames` holds... */
    uint64_t first_seq; /* ...numbered first_seq, first_seq + 1, ..., last_seq (0, 0: none) */
    uint64_t last_seq;
    bool replace;   /* drop every stored frame first: `frames` is the whole queue */
    uint64_t owner; /* out: the owner epoch found (0: no entry) */
} ll_recwrite;

/* A backend. Each function returns 0 or an sdk_err after ll_recstore_fail; none blocks longer
 * than st->timeout_ms per round trip. */
typedef struct ll_recstore_ops {
    /* Make a new epoch the session's owner epoch (creating its entry), into *epoch. ttl_ms > 0
     * lets the entry expire that long after the last claim or write. */
    int (*claim)(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch);
    /* Apply each of the n writes whose epoch is its session's owner epoch, and set every
     * w[i].owner, matched or not. A failure of the store fails the whole batch (some writes
     * may have been applied: each is atomic by itself). */
    int (*write)(sdk_store *st, ll_recwrite *w, size_t n, uint64_t ttl_ms);
    /* The session's record (header and frames, as ll_sessrec_assemble puts them together)
     * appended to out: 0, or SDK_ENOTFOUND (no entry, or claimed but never written). */
    int (*get)(sdk_store *st, uint64_t id, ll_buf *out);
    /* If the session's owner epoch is epoch, delete its entry; *owner as for write. */
    int (*del)(sdk_store *st, uint64_t id, uint64_t epoch, uint64_t *owner);
    void (*close)(sdk_store *st);
    /* TLS ticket keys (lifeline/store.h, "Ticket keys"): for each of the n periods of the
     * rotation, the key stored for it into blobs[i], which holds a fresh key on entry that is
     * stored first if the period has none. Atomic per period: of instances racing, the
     * first one's key becomes every one's. A created key expires ttl_ms later. */
    int (*ticket_keys)(sdk_store *st, uint64_t rotation_ms, const uint64_t *periods, uint8_t (*blobs)[LL_TK_BLOB_LEN],
                       size_t n, uint64_t ttl_ms);
} ll_recstore_ops;

struct sdk_store {
    const ll_recstore_ops *ops;
    const struct ll_owner_ops *owner_ops; /* store_owner.h; NULL: no takeover on this backend */
    void *be;                             /* the backend's state */
    uint32_t timeout_ms;                  /* per round trip to a remote store */
    size_t max_record;                    /* largest record get accepts */
    pthread_mutex_t mu;
    int err; /* the last failure, for sdk_store_last_error (under mu) */
    char detail[256];
};

/* Record err and its detail (printf-style) as the store's last failure; returns err. */
int ll_recstore_fail(sdk_store *st, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A parsed store URL. */
typedef enum { LL_STORE_MEMORY = 0, LL_STORE_REDIS } ll_store_kind;
typedef struct ll_store_url {
    ll_store_kind kind;
    char host[256]; /* without brackets */
    uint16_t port;
    uint32_t db;
    char user[128];     /* Redis ACL user ("": the default user), percent-decoded */
    char password[256]; /* "": no AUTH; never printed */
} ll_store_url;
/* Parse url (see lifeline/store.h): 0 or SDK_EINVAL with the reason in detail. Pure. */
int ll_store_url_parse(const char *url, ll_store_url *out, char *detail, size_t dlen);

/* Backends' constructors: fill st->ops and st->be. 0 or an sdk_err after ll_recstore_fail. */
int ll_store_mem_open(sdk_store *st);
int ll_store_redis_open(sdk_store *st, const ll_store_url *u);

/* The record-level calls the server makes (st->mu taken inside). */
/* Take session id over: its new owner epoch into *epoch. 0 or the store's error. */
int ll_recstore_claim(sdk_store *st, uint64_t id, uint64_t ttl_ms, uint64_t *epoch);
/* Write r (encoded here) fenced by r->owner_epoch, which must be the epoch of a claim,
 * replacing whatever the store held for the session. */
ll_write_result ll_recstore_put(sdk_store *st, const ll_sessrec *r, uint64_t ttl_ms);
/* A session's changes since its last write: r's header (its frames are ignored) and the
 * frames queued after the ones the store holds. Input to ll_recstore_write. */
typedef struct ll_recdelta {
    const ll_sessrec *r;
    const uint8_t *frames; /* new frames, the first with sequence the store's last + 1 */
    size_t frames_len;
    bool replace;           /* frames is the whole queue: drop every stored frame first */
    ll_write_result result; /* out */
    uint64_t owner;         /* out: the owner epoch found (0: no entry, e.g. it expired) */
} ll_recdelta;
/* Apply n deltas in one round trip, each fenced by its r->owner_epoch: every d[i].result
 * is set (all LL_WRITE_FAILED if the store failed). 0 or the store's error. */
int ll_recstore_write(sdk_store *st, ll_recdelta *d, size_t n, uint64_t ttl_ms);
/* Read session id's record into *r, its frames pointing into bytes (cleared first; the
 * caller frees it). 0, SDK_ENOTFOUND, SDK_EPROTO / SDK_ETOOBIG (a record that does not
 * decode), or the store's error. */
int ll_recstore_get(sdk_store *st, uint64_t id, ll_buf *bytes, ll_sessrec *r);
/* The session ended: delete its record unless another epoch owns it now. */
ll_write_result ll_recstore_del(sdk_store *st, uint64_t id, uint64_t epoch);
/* The ticket keys of periods[0..n) of a rotation, as ops->ticket_keys (n <= LL_TK_LIVE_MAX).
 * 0 or the store's error (blobs are then unspecified). */
int ll_recstore_ticket_keys(sdk_store *st, uint64_t rotation_ms, const uint64_t *periods,
                            uint8_t (*blobs)[LL_TK_BLOB_LEN], size_t n, uint64_t ttl_ms);

#endif
