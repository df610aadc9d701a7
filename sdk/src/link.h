/*
 * One live connection: a socket and its TLS carrying the connection core (conn.h). Shared
 * by the client's I/O thread and the server's; only the owning I/O thread touches a link.
 * The core encodes frames into conn.out, written here in large batches: many frames per TLS
 * record.
 */
#ifndef LL_LINK_H
#define LL_LINK_H

#include "conn.h"
#include "tls.h"

#include <stdbool.h>

typedef struct ll_link {
    int fd;
    ll_tls *tls;
    ll_conn conn;                 /* the protocol: decoder, output, heartbeat, why it failed */
    uint64_t hb_sent_counted;     /* client: conn.hb.sent / .answered already added to the */
    uint64_t hb_answered_counted; /* client's lifetime counters (sdk_stats) */
    bool want_write;              /* TLS needs the socket writable before it can go on */
    bool want_read_for_write;     /* a write is waiting for the socket to be readable */
    bool ticket_due;              /* server: send the TLS session ticket once `out` is written */
    uint32_t keepalive_ms;        /* to set with ll_net_keepalive once `out` (and the ticket) is
                                 written: after the greeting, off a reconnect's critical path */
} ll_link;

/* Take over fd and tls (both freed by ll_link_close); the connection plays role. */
void ll_link_init(ll_link *l, int fd, ll_tls *tls, ll_role role, uint32_t max_frame);
/* Best-effort close_notify, then free everything. Safe on a link that is {.fd = -1} or
 * already closed. */
void ll_link_close(ll_link *l);

/* Write as much of conn.out as the socket takes, then the session ticket if due. 0 (done or
 * would block) or an sdk_err with conn.detail set. */
int ll_link_flush(ll_link *l, uint64_t now_ms);
/* Read what the socket has (up to about max_bytes) into the connection. 0 or an sdk_err
 * (SDK_EDISCONNECTED on EOF; the decoder's error, with the Close it owes queued) with
 * conn.detail set. Frames are then taken with ll_conn_next. */
int ll_link_fill(ll_link *l, uint64_t now_ms, size_t max_bytes);
/* Closing: read and throw away whatever the peer still sends, so that closing the socket
 * with unread input does not turn into a reset that destroys our last frames in flight.
 * 0 while the peer keeps the connection open, else an sdk_err (SDK_EDISCONNECTED at EOF). */
int ll_link_discard(ll_link *l);
/* Poll events the link needs: POLLIN always, POLLOUT while output is pending. */
short ll_link_events(const ll_link *l);

#endif
