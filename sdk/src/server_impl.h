/*
 * The server object shared by its API (server.c) and its I/O thread (server_io.c).
 *
 * Locking: one mutex, `mu`, guards the store, every session's reliable stream, the inbox
 * and the dirty list. Application threads take it briefly; the I/O thread takes it to
 * move frames between links and sessions, never across socket I/O or the event callback.
 * Connections (links, timers, epoll) belong to the I/O thread alone.
 */
#ifndef LL_SERVER_IMPL_H
#define LL_SERVER_IMPL_H

#include "lifeline/server.h"
#include "link.h"
#include "msgq.h"
#include "session.h"
#include "store.h"
#include "timer.h"

#include <pthread.h>

typedef enum { CONN_HANDSHAKE = 0, CONN_HELLO, CONN_READY, CONN_CLOSING } conn_phase;

/* One client connection (I/O thread only, except `sess`, which changes under mu). */
typedef struct srv_conn {
    ll_link link;
    struct srv_session *sess; /* NULL until hello, and after detach */
    uint64_t welcomed;        /* the session a 0.5-RTT welcome offered (0: none); see attach */
    conn_phase phase;
    ll_timer timer;     /* handshake deadline, heartbeat deadline, or closing deadline */
    uint32_t events;    /* registered with epoll */
    bool flush_queued;  /* on the flush list of this turn */
    bool more_to_write; /* its session had more than one batch to encode */
    bool tls_failed;    /* the handshake failed: only raw draining is left */
    bool half_closed;   /* closing: our side is shut for writing, draining the peer's */
    bool lingered;      /* stopping: the client has hung up after our close frame */
    struct srv_conn *next_flush;
    struct srv_conn *prev, *next; /* every connection, for stop */
    char peer_addr[64];
    char identity[256];
} srv_conn;

typedef struct srv_session {
    uint64_t id;
    uint8_t token[16];
    ll_session s;
    srv_conn *conn;          /* NULL while detached (I/O thread writes, under mu) */
    ll_timer ttl;            /* armed while detached (I/O thread only) */
    uint32_t hb_interval_ms; /* as the client announced */
    uint32_t hb_timeout_ms;  /* as applied (clamped) */
    uint64_t in_inbox;       /* its messages waiting in the inbox */
    uint64_t last_rx_ms;     /* monotonic; copied from the link under mu for the liveness view */
    uint64_t rtt_us;         /* the client's smoothed round trip, as its pings report */
    char peer_addr[64];
    char identity[256];
    uint64_t connected_since_ms; /* wall clock */
    uint64_t connections;
    sdk_cause last_cause;
    bool dirty; /* on the dirty list */
    struct srv_session *next_dirty;
    bool close_requested; /* sdk_server_close_session: I/O thread ends it */
    bool reconnect_allowed;
    char close_reason[128];
} srv_session;

struct sdk_server {
    sdk_server_config cfg; /* strings point into `strings` */
    char *strings;
    ll_tls_ctx *tls;
    int listen_fd;
    int wake_fd;
    int epoll_fd;
    uint16_t port;
    pthread_t thread;
    bool thread_started;
    ll_timers timers;             /* connection deadlines (I/O thread only) */
    ll_timers ttls;               /* detached-session expiries (I/O thread only) */
    srv_conn *conns;              /* every connection (I/O thread only) */
    ll_carver carver;             /* received messages are carved from its blocks (I/O thread only) */
    ll_msgq deliver;              /* with on_message: accepted, for the callback outside mu (I/O only) */
    bool self_wake;               /* a callback made work for its own thread: poll, do not sleep (I/O only) */
    uint64_t accept_paused_until; /* listener unwatched until then, after EMFILE (I/O only) */
    bool draining;                /* stopping: input is no longer read (I/O thread only) */
    struct srv_event *events;     /* session events to report once mu is released (I/O only) */
    size_t nevents, events_cap;

    pthread_mutex_t mu;
    pthread_cond_t recv_cv; /* inbox gained a message, or stopped */
    pthread_cond_t send_cv; /* a session's queue shrank, a session went away, or stopped */
    ll_store sessions;
    ll_msgq inbox;
    srv_session *dirty; /* sessions with new output or acks due */
    bool wake_pending;
    bool stopping;         /* sdk_server_stop: no new input; replies still go out (drain) */
    bool sends_closed;     /* the drain is over: sdk_server_send returns SDK_ECLOSED */
    uint64_t last_send_ms; /* when the application last queued a message (drain ends when quiet) */
    bool stopped;          /* the I/O thread has exited */
};

/* Under mu: put the session on the dirty list and wake the I/O thread if needed. */
void ll_server_mark_dirty_locked(sdk_server *srv, srv_session *ss);
void *ll_server_io_main(void *arg);
/* Stop the I/O thread's world: close every connection and free every session. */
void ll_server_io_teardown(sdk_server *srv);
/* Under mu: fill the liveness fields of info (last heard, missed heartbeats, RTT). */
void ll_server_session_liveness(const srv_session *ss, uint64_t now_ms, uint64_t wall_ms, sdk_session_info *info);

#endif
