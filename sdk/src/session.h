/*
 * The reliable stream of one session, kept by both ends: sequence numbers, the
 * retransmit queue, duplicate suppression and cumulative acknowledgements.
 *
 * Outgoing messages are encoded into Data frames once, when queued, and wait in sendq until
 * the peer acknowledges them; sendq's i-th frame always has sequence acked + 1 + i. The
 * frames before sendq's cursor (sendq.copied of them) went out on the current connection;
 * on a new connection the peer says what it already has and the rest is written again, as
 * the same bytes. A lost session renumbers from 1 by encoding the frames again.
 * Pure logic: no I/O, no locks, no clock (callers pass `now`); the owner's lock guards it.
 */
#ifndef LL_SESSION_H
#define LL_SESSION_H

#include "buf.h"
#include "frameq.h"
#include "msgq.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ll_session {
    ll_frameq sendq;          /* unacknowledged messages as encoded frames, oldest first; those
                            before its cursor were written on the current connection */
    uint64_t acked;           /* the peer acknowledged every sequence <= acked */
    uint64_t high_written;    /* highest sequence ever written: beyond it is not a retransmit */
    uint64_t written_before;  /* after a lost session: sequences <= this (renumbered) were written
                                 in an earlier session, so writing them again is a retransmit */
    uint64_t received;        /* highest sequence accepted from the peer */
    uint64_t consumed;        /* highest sequence our application took: what we acknowledge */
    uint64_t ack_sent;        /* highest acknowledgement written on the current connection */
    uint32_t epoch;           /* bumped when the session is lost and sequences restart */
    uint32_t window_messages; /* in flight at most, the smaller of ours and the peer's */
    uint64_t window_bytes;
    uint32_t ack_every;      /* acknowledge at least every this many consumed messages */
    uint32_t peer_max_frame; /* the largest frame the peer accepts, from hello/welcome; 0: unknown */
    /* Durability gates (a server whose store syncs before anything leaves): no Data frame
     * beyond write_limit is written, and no acknowledgement beyond ack_limit. UINT64_MAX
     * (what ll_session_init sets): no gate. */
    uint64_t write_limit;
    uint64_t ack_limit;

    uint64_t enqueued_total; /* messages ever queued; with acked_total, what sdk_flush waits on */
    uint64_t acked_total;
    uint64_t msgs_sent, bytes_sent, retransmits;
    uint64_t msgs_received, bytes_received, duplicates;
    uint64_t acks_sent, acks_received; /* ack frames: what acknowledging costs on the wire */
} ll_session;

void ll_session_init(ll_session *s, uint32_t window_messages, uint64_t window_bytes);
void ll_session_free(ll_session *s);

/* An outgoing message, checked before taking any lock. */
typedef struct ll_outgoing {
    const void *data;
    size_t len;
    const char *type;  /* NULL or "" for none */
    size_t frame_size; /* its frame at the widest sequence: what frame limits are checked on */
} ll_outgoing;

/* Check a message against our own limits and fill *out: SDK_EINVAL (NULL data with
 * len > 0), SDK_ETOOBIG (its frame would exceed max_frame, or it alone exceeds max_bytes),
 * or 0. */
int ll_session_check_msg(const void *data, size_t len, const char *type, uint32_t max_frame, uint64_t max_bytes,
                         ll_outgoing *out);
/* ll_session_check_msg for a send call: an SDK_ETOOBIG also records why for
 * sdk_last_call_error (ll_session_too_big with self and peer). */
int ll_session_check_send(const void *data, size_t len, const char *type, uint32_t max_frame, uint64_t max_bytes,
                          const char *self, const char *peer, ll_outgoing *out);
/* Record for sdk_last_call_error why m is SDK_ETOOBIG (from ll_session_check_msg, or from
 * ll_session_offer on s; s may be NULL for the former): its size, the limit it is over and
 * whose limit that is ("this client" / "the server", or the other way round, as self and
 * peer say). Returns SDK_ETOOBIG. */
int ll_session_too_big(const ll_session *s, const ll_outgoing *m, uint32_t max_frame, uint64_t max_bytes,
                       const char *self, const char *peer);
/* Queue a checked message (copied) if the peer can take it and the bounds have room:
 * 0, SDK_ETOOBIG (over the peer's announced frame limit: it would refuse it, forever),
 * SDK_EQUEUEFULL (no room now: the caller may wait for acks and offer again), SDK_ENOMEM. */
int ll_session_offer(ll_session *s, const ll_outgoing *m, size_t max_messages, uint64_t max_bytes);

/* Queue a message for sending (copied; type NULL or "" for none) as the next sequence,
 * acked + sendq.count + 1. 0 or SDK_ENOMEM. */
int ll_session_enqueue(ll_session *s, const void *data, size_t len, const char *type);

/* Copy unwritten frames into out while the window allows and out holds less than
 * out_limit bytes. Returns 0 or SDK_ENOMEM. */
int ll_session_write(ll_session *s, ll_buf *out, size_t out_limit);

/* Whether ll_session_write has more to encode now (unwritten messages, window open). */
bool ll_session_can_write(const ll_session *s);

/* Cumulative ack from the peer: frees every message <= seq. SDK_EPROTO if seq acknowledges
 * something never written. *freed (may be NULL) gets how many were freed. */
int ll_session_on_ack(ll_session *s, uint64_t seq, size_t *freed);

typedef enum {
    LL_DATA_ACCEPT = 0, /* the next one: counted as received */
    LL_DATA_DUPLICATE,  /* already had it (a resend after a resume): drop it */
    LL_DATA_INVALID,    /* a gap, or sequence 0: the peer broke the protocol */
} ll_data_verdict;
/* Incoming data with sequence seq: see ll_data_verdict. */
ll_data_verdict ll_session_on_data(ll_session *s, uint64_t seq, size_t len);

/* An accepted message (ll_session_on_data said LL_DATA_ACCEPT), carved from cv with its
 * sender's identity peer (NULL: none) and pushed onto q. With `taken` (a callback takes it
 * from q before the next write) it counts as consumed at once, so the next write acks it.
 * 0 or SDK_ENOMEM (nothing queued). *out: the message, for the caller to stamp. */
int ll_session_deliver(ll_session *s, ll_carver *cv, const ll_data_view *d, const char *peer, ll_msgq *q, bool taken,
                       ll_msg **out);
/* The application took message m: advance what we acknowledge (ignores older epochs). */
void ll_session_consumed(ll_session *s, const ll_msg *m);
/* The application is done with every message up to seq of this epoch (a manual ack):
 * advance what we acknowledge, never back. */
void ll_session_consumed_upto(ll_session *s, uint64_t seq);
/* Whether an ack frame should go out now; `idle` means the application has nothing left
 * to read, so the peer should hear at once. */
bool ll_session_ack_due(const ll_session *s, bool idle);
/* Record that an ack for `consumed` was written; returns the sequence to put in it. */
uint64_t ll_session_ack_take(ll_session *s);
/* What we may tell the peer we have (an ack, a welcome's last_received): what the
 * application consumed, within ack_limit. */
uint64_t ll_session_ackable(const ll_session *s);
/* What a welcome tells a resuming peer we have (it sends what follows again): everything
 * received, or under an ack gate no more than ll_session_ackable, since the peer frees what
 * it hears we have. */
uint64_t ll_session_resume_point(const ll_session *s);

/* A new connection continues the session: the peer has everything <= peer_received.
 * Frees those, rewinds the write cursor, re-announces our ack. SDK_EPROTO if peer_received
 * is outside what we ever wrote. */
int ll_session_resume(ll_session *s, uint64_t peer_received);
/* The peer lost the session: every unacknowledged message will go out again, renumbered
 * from 1; incoming sequences restart too. 0, or SDK_ENOMEM with the session unchanged. */
int ll_session_restart(ll_session *s);

#endif
