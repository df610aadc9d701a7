/*
 * One live connection carrying frames: socket, TLS, decoder, output buffer and heartbeat.
 * Shared by the client's I/O thread and the server's. Only the owning I/O thread touches
 * a link. Frames are encoded into `out` and written in large batches: many frames per
 * TLS record.
 */
#ifndef LL_LINK_H
#define LL_LINK_H

#include "buf.h"
#include "codec.h"
#include "heartbeat.h"
#include "tls.h"

#include <stdbool.h>

typedef struct ll_link {
    int fd;
    ll_tls *tls;
    ll_decoder dec;
    ll_buf out; /* encoded frames not yet written */
    ll_heartbeat hb;
    uint64_t hb_sent_counted;     /* client: hb.sent / hb.answered already added to the */
    uint64_t hb_answered_counted; /* client's lifetime counters (sdk_stats) */
    uint32_t max_frame;
    bool want_write;          /* TLS needs the socket writable before it can go on */
    bool want_read_for_write; /* a write is waiting for the socket to be readable */
    bool ticket_due;          /* server: send the TLS session ticket once `out` is written */
    uint32_t keepalive_ms;    /* to set with ll_net_keepalive once `out` (and the ticket) is
                              written: after the greeting, off a reconnect's critical path */
    char detail[256];         /* why the link failed, for the application */
} ll_link;

/* Take over fd and tls (both freed by ll_link_close). */
void ll_link_init(ll_link *l, int fd, ll_tls *tls, uint32_t max_frame);
/* Best-effort close_notify, then free everything. Safe on a link that is {.fd = -1} or
 * already closed. */
void ll_link_close(ll_link *l);

/* Write as much of `out` as the socket takes, then the session ticket if due. 0 (done or
 * would block) or an sdk_err with l->detail set. */
int ll_link_flush(ll_link *l, uint64_t now_ms);
/* Read what the socket has (up to about max_bytes) into the decoder. 0 or an sdk_err
 * (SDK_EDISCONNECTED on EOF) with l->detail set. Frames are then taken with ll_link_next. */
int ll_link_fill(ll_link *l, uint64_t now_ms, size_t max_bytes);
/* Closing: read and throw away whatever the peer still sends, so that closing the socket
 * with unread input does not turn into a reset that destroys our last frames in flight.
 * 0 while the peer keeps the connection open, else an sdk_err (SDK_EDISCONNECTED at EOF). */
int ll_link_discard(ll_link *l);
/* Next decoded frame: 1 with *f set, 0 when none is complete, or an sdk_err. */
/* (Data frames are usually read in place: see ll_decoder_take; release with ll_frame_release.) */
int ll_link_next(ll_link *l, ll_frame *f);
/* Poll events the link needs: POLLIN always, POLLOUT while output is pending. */
short ll_link_events(const ll_link *l);

/* Encode frames into out. 0 or an sdk_err. */
int ll_link_send(ll_link *l, const Lifeline__Frame *f);
int ll_link_send_ack(ll_link *l, uint64_t seq);
int ll_link_send_ping(ll_link *l, uint64_t nonce, uint64_t timestamp_us);
int ll_link_send_pong(ll_link *l, uint64_t nonce, uint64_t timestamp_us);
int ll_link_send_close(ll_link *l, int code, const char *reason, bool reconnect);

/* The heartbeat step for this link: sends a ping when due. 0, or SDK_ETIMEDOUT with
 * l->detail set when the peer has been silent too long. *next_ms: when to call again. */
int ll_link_heartbeat(ll_link *l, uint64_t now_ms, uint64_t *next_ms);

#endif
