/*
 * The server's I/O threads: each loop polls its wake fd and its client connections
 * (level-triggered, non-blocking TLS), loop 0 the listener too (server_loops.c). Each turn
 * (ll_server_io_turn, ll_server_worker_turn) it handles ready sockets, moves what the
 * application queued onto links ("dirty" sessions), and fires the deadlines that are due:
 * handshake limits, heartbeat timeouts, and on loop 0 session expiries. The protocol itself
 * is the connection core's (conn.h); sessions and the greeting are in server_session.c,
 * stopping in server_stop.c, connections between loops in server_handoff.c.
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"
#include "wait.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_LIMIT       (256u * 1024) /* encode at most this much data ahead of one socket */
#define READ_BUDGET     (256u * 1024) /* per connection per turn, for fairness */
#define WRITE_TURNS     4             /* output batches per connection per turn, for fairness */
#define ACCEPT_PAUSE_MS 100           /* listener rest after accept ran out of descriptors */
#define MAX_EVENTS      128

/* ---- connections (I/O thread) ---- */

void ll_server_set_events(sdk_server *srv, srv_conn *conn)
{
    uint32_t in = srv->draining ? 0 : LL_POLL_IN; /* a stopping server reads no more input */
    /* More to encode counts as output: the socket being writable is the cue to go on. */
    bool out = (ll_link_events(&conn->link) & POLLOUT) || (conn->more_to_write && conn->phase == CONN_READY);
    uint32_t want = out ? (in | LL_POLL_OUT) : in;
    if (want != conn->events) {
        (void)ll_net_poll_mod(conn->loop->poll_fd, conn->link.fd, want, conn);
        conn->events = want;
    }
}

void ll_server_drop_conn(sdk_server *srv, srv_conn *conn, sdk_cause cause)
{
    pthread_mutex_lock(&srv->mu);
    ll_server_detach_locked(srv, conn, cause);
    pthread_mutex_unlock(&srv->mu);
    ll_server_metrics_conn_closed(srv, conn);
    ll_server_release_conn(conn);
    ll_link_close(&conn->link);
    free(conn->pending_hello);
    free(conn);
    ll_server_report_events(srv);
}

/* Let the connection flush what it has (its Close) for a moment before it goes. Asking for
 * writability gets the frame out even when the connection is not the one being served (a
 * session taken over by a resume): else it waited for its peer to send, or went unsent. */
static void linger(sdk_server *srv, srv_conn *conn)
{
    conn->phase = CONN_CLOSING;
    ll_timers_set(&conn->loop->timers, &conn->timer, ll_now_ms() + LL_SERVER_CLOSING_MS);
    ll_server_set_events(srv, conn);
}

void ll_server_conn_closing(sdk_server *srv, srv_conn *conn, int code, const char *reason, bool reconnect)
{
    (void)ll_conn_close(&conn->link.conn, code, reason, reconnect);
    linger(srv, conn);
}

int ll_server_fill_output(srv_conn *conn)
{
    srv_session *ss = conn->sess;
    if (!ss || ss->letting_go || conn->phase != CONN_READY) {
        return 0;
    }
    int rc = ll_conn_fill(&conn->link.conn, ss->in_inbox == 0, OUT_LIMIT);
    conn->more_to_write = ll_conn_can_write(&conn->link.conn);
    return rc;
}

/* Write; while the socket takes whole batches and the session has more, encode the next
 * (a few per turn, so one busy client cannot starve the others). */
static int write_batches(sdk_server *srv, srv_conn *conn, uint64_t now)
{
    int rc = ll_link_flush(&conn->link, now);
    for (int turn = 0; rc == 0 && turn < WRITE_TURNS && conn->more_to_write && ll_buf_size(&conn->link.conn.out) == 0;
         turn++) {
        pthread_mutex_lock(&srv->mu);
        rc = ll_server_fill_output(conn);
        pthread_mutex_unlock(&srv->mu);
        if (rc == 0) {
            rc = ll_link_flush(&conn->link, now);
        }
    }
    return rc;
}

static sdk_cause cause_of(int err)
{
    switch (err) {
    case SDK_EPROTO:
    case SDK_ETOOBIG:
        return SDK_CAUSE_PROTOCOL_ERROR;
    case SDK_ETIMEDOUT:
        return SDK_CAUSE_HEARTBEAT_TIMEOUT;
    default:
        return SDK_CAUSE_RESET;
    }
}

/* Under mu: the client's Close. Without reconnect it is gone for good, and so is its session. */
static int on_close(sdk_server *srv, srv_conn *conn, const Lifeline__Close *cl, sdk_cause *cause)
{
    *cause = SDK_CAUSE_CLEAN_CLOSE;
    if (!cl->reconnect && conn->sess) {
        ll_server_end_session(srv, conn->sess, SDK_SESSION_CLOSED, SDK_CAUSE_CLEAN_CLOSE);
    }
    return SDK_EDISCONNECTED;
}

/* Under mu: one event of a client's connection. Returns 0 or an sdk_err; *cause says how to
 * detach. */
static int on_event(sdk_server *srv, srv_conn *conn, const ll_conn_event *ev, bool *got, sdk_cause *cause)
{
    switch (ev->type) {
    case LL_EV_HELLO:
        return ll_server_on_hello(srv, conn, ev->frame.pb->hello);
    case LL_EV_DATA:
        return ll_server_on_data(srv, conn->sess, &ev->frame.data, got);
    case LL_EV_ACKED:
        ll_notify_broadcast(&srv->notify, &srv->send_cv);
        return 0;
    case LL_EV_CLOSE:
        return on_close(srv, conn, ev->frame.pb->close, cause);
    case LL_EV_WELCOME:
    default:
        return ll_conn_fail(&conn->link.conn, SDK_EPROTO, "unexpected event %d", ev->type);
    }
}

/* Under mu: every complete frame, then what is to be written. */
static int handle_frames(sdk_server *srv, srv_conn *conn, bool *got, sdk_cause *cause)
{
    ll_conn_event ev;
    ll_conn_result r = LL_CONN_NEED_MORE;
    int rc = 0;
    uint64_t now_us = ll_now_us(); /* once per batch: a clock read per message shows at 64 B */
    while (rc == 0 && conn->phase != CONN_CLOSING && !conn->move_to && !(conn->sess && conn->sess->letting_go) &&
           (r = ll_conn_next(&conn->link.conn, now_us, &ev)) == LL_CONN_EVENT) {
        rc = on_event(srv, conn, &ev, got, cause);
    }
    return rc == 0 && r == LL_CONN_FAILED ? conn->link.conn.err : rc;
}

/* Decode and handle every complete frame under one lock round trip. */
static int process_input(sdk_server *srv, srv_conn *conn, sdk_cause *cause)
{
    bool got = false;
    bool callbacks = ll_server_runs_callbacks(srv);
    pthread_mutex_lock(&srv->mu);
    int rc = handle_frames(srv, conn, &got, cause);
    if (callbacks && srv->deliver.count > 0) {
        /* The callbacks' replies then go out in one write with the acks they earned. */
        ll_server_take_callbacks_locked(srv);
        pthread_mutex_unlock(&srv->mu);
        ll_server_run_callbacks(srv); /* OPENED before its first message; may send */
        pthread_mutex_lock(&srv->mu);
    }
    if (rc == 0) {
        rc = ll_server_fill_output(conn);
    }
    if (conn->sess) {
        conn->sess->last_rx_ms = conn->link.conn.hb.last_rx_ms;
        conn->sess->rtt_us = conn->link.conn.peer_rtt_us;
        ll_server_metrics_pings(srv, conn);
    }
    pthread_mutex_unlock(&srv->mu);
    if (got) {
        ll_notify_broadcast(&srv->notify, &srv->recv_cv); /* after unlocking: see client_io.c */
    }
    ll_server_report_events(srv);
    return rc;
}

static int step_handshake(sdk_server *srv, srv_conn *conn)
{
    int rc = ll_tls_handshake(conn->link.tls);
    if (rc == LL_TLS_HALF_RTT) {
        LL_GUARD(ll_server_welcome_early(srv, conn));
        rc = ll_tls_handshake(conn->link.tls);
    }
    if (rc == LL_TLS_OK) {
        ll_server_metrics_handshake_done(srv, conn, true);
        conn->phase = CONN_HELLO;
        ll_tls_peer_subject(conn->link.tls, conn->identity, sizeof(conn->identity));
        return 0;
    }
    if (rc == LL_TLS_WANT_WRITE || rc == LL_TLS_WANT_READ) {
        conn->link.want_write = rc == LL_TLS_WANT_WRITE;
        return 0;
    }
    LL_DETAIL(conn->link.conn.detail, sizeof(conn->link.conn.detail), "%s", ll_tls_error(conn->link.tls));
    return rc;
}

/* A closing connection: flush what is left (its Close), then half-close and drain until the
 * peer hangs up (or the closing deadline), so our last frames are not lost to a reset. */
static void on_closing_ready(sdk_server *srv, srv_conn *conn, uint32_t revents)
{
    int rc = conn->tls_failed ? 0 : ll_link_flush(&conn->link, ll_now_ms());
    if (rc == 0 && ll_buf_size(&conn->link.conn.out) == 0) {
        if (!conn->half_closed) {
            ll_net_shutdown_write(conn->link.fd);
            conn->half_closed = true;
        }
        if (revents & (LL_POLL_IN | LL_POLL_HUP | LL_POLL_ERR)) {
            rc = conn->tls_failed ? ll_net_drain(conn->link.fd) : ll_link_discard(&conn->link);
        }
    }
    if (rc != 0) {
        ll_server_drop_conn(srv, conn, SDK_CAUSE_CLEAN_CLOSE);
        return;
    }
    ll_server_set_events(srv, conn);
}

/* The connection failed with rc (cause: what is known beyond rc). A failure that owes the
 * client a Close (a protocol error, a frame too big, a heartbeat timeout) lingers until the
 * Close is out; with reconnect false the session ends too. Anything else ends the connection
 * at once. */
void ll_server_conn_failed(sdk_server *srv, srv_conn *conn, int rc, sdk_cause cause)
{
    if (cause == SDK_CAUSE_RESET) {
        cause = cause_of(rc);
    }
    if (rc == SDK_EDISCONNECTED && ll_tls_peer_closed(conn->link.tls)) {
        cause = SDK_CAUSE_CLEAN_CLOSE; /* FIN without a close frame */
    }
    int code = 0;
    bool reconnect = true;
    bool owed = conn->link.conn.err == rc && ll_conn_close_for(LL_ROLE_SERVER, rc, &code, &reconnect);
    if (!owed || conn->phase == CONN_CLOSING) {
        ll_server_drop_conn(srv, conn, cause);
        return;
    }
    pthread_mutex_lock(&srv->mu);
    if (!reconnect && conn->sess) { /* told not to come back: nothing would resume it */
        ll_server_end_session(srv, conn->sess, SDK_SESSION_CLOSED, cause);
    }
    ll_server_detach_locked(srv, conn, cause);
    pthread_mutex_unlock(&srv->mu);
    ll_server_report_events(srv);
    linger(srv, conn);
    on_closing_ready(srv, conn, 0);
}

/* Input, then output, for a connection past its handshake. */
static int move_bytes(sdk_server *srv, srv_conn *conn, uint32_t revents, uint64_t now, sdk_cause *cause)
{
    int rc = 0;
    if (!srv->draining && (revents & (LL_POLL_IN | LL_POLL_HUP | LL_POLL_ERR))) {
        rc = ll_link_fill(&conn->link, now, READ_BUDGET);
        if (rc == 0 || ll_buf_size(&conn->link.conn.dec.in) > 0) {
            int rc2 = process_input(srv, conn, cause);
            rc = rc2 ? rc2 : rc;
        }
    }
    if (rc == 0 && conn->phase != CONN_CLOSING && !conn->move_to) {
        rc = write_batches(srv, conn, now);
    }
    /* One frame may be as large as max_frame; beyond that, output piling up means the client
     * is not reading (pongs and acks are encoded regardless of the window). */
    if (rc == 0 && ll_buf_size(&conn->link.conn.out) > srv->cfg.max_output_bytes + (size_t)srv->cfg.max_frame) {
        *cause = SDK_CAUSE_OUTPUT_OVERFLOW;
        ll_counter_add(&srv->metrics.output_drops, 1);
        rc = SDK_EIO;
    }
    return rc;
}

/* The socket is ready: move bytes and frames. */
void ll_server_conn_ready(sdk_server *srv, srv_conn *conn, uint32_t revents)
{
    uint64_t now = ll_now_ms();
    if (srv->draining && (revents & (LL_POLL_HUP | LL_POLL_ERR))) {
        ll_server_drop_conn(srv, conn, SDK_CAUSE_RESET);
        return;
    }
    if (conn->phase == CONN_HANDSHAKE && step_handshake(srv, conn) != 0) {
        /* OpenSSL has written its alert; linger so the client reads it instead of a reset. */
        ll_server_metrics_handshake_done(srv, conn, false);
        conn->tls_failed = true;
        linger(srv, conn);
        on_closing_ready(srv, conn, revents);
        return;
    }
    if (conn->phase == CONN_CLOSING) {
        on_closing_ready(srv, conn, revents);
        return;
    }
    sdk_cause cause = SDK_CAUSE_RESET;
    int rc = conn->phase == CONN_HANDSHAKE ? 0 : move_bytes(srv, conn, revents, now, &cause);
    if (rc == 0 && conn->move_to) {
        ll_server_hand_off(srv, conn, conn->move_to); /* its hello is handled there */
        return;
    }
    if (rc != 0) {
        ll_server_conn_failed(srv, conn, rc, cause);
        return;
    }
    if (conn->phase == CONN_CLOSING) {
        on_closing_ready(srv, conn, 0); /* the greeting sent it away */
        return;
    }
    ll_server_set_events(srv, conn);
}

static srv_conn *new_conn(sdk_server *srv, int fd, const char *peer)
{
    srv_conn *conn = calloc(1, sizeof(*conn));
    ll_tls *tls = NULL;
    char why[256];
    if (!conn || ll_tls_new(srv->tls, fd, NULL, &tls, why, sizeof(why)) != 0) {
        free(conn);
        close(fd);
        return NULL;
    }
    ll_link_init(&conn->link, fd, tls, LL_ROLE_SERVER, srv->cfg.max_frame);
    LL_DETAIL(conn->peer_addr, sizeof(conn->peer_addr), "%s", peer);
    conn->events = LL_POLL_IN;
    conn->moved_deadline_ms = ll_now_ms() + (uint64_t)srv->cfg.handshake_timeout_ms;
    return conn;
}

static void accept_clients(sdk_server *srv)
{
    for (int i = 0; i < 64; i++) {
        int fd = -1;
        char peer[64] = "";
        int rc = ll_net_accept(srv->listen_fd, &fd, peer, sizeof(peer));
        if (rc == SDK_EIO) {
            /* Out of descriptors or memory: the listener stays readable, so stop watching
             * it for a moment instead of spinning; the pending clients wait in the backlog. */
            (void)ll_net_poll_mod(srv->loops[0].poll_fd, srv->listen_fd, 0, &srv->listen_fd);
            srv->accept_paused_until = ll_now_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        if (rc != 0) {
            return;
        }
        if (!ll_server_admit(srv, peer, ll_now_ms())) {
            ll_net_abort(fd); /* before any TLS work */
            continue;
        }
        srv_conn *conn = new_conn(srv, fd, peer);
        if (!conn) {
            continue;
        }
        ll_server_metrics_conn_opened(srv, conn);
        ll_server_place(srv, conn);
    }
}

/* Under mu: one session the application touched. Returns its connection, if it has one. */
static srv_conn *service_session(sdk_server *srv, ll_srv_loop *lp, srv_session *ss)
{
    srv_conn *conn = ss->conn;
    if (conn && conn->loop != lp) {
        ll_server_mark_dirty_locked(srv, ss); /* its connection moved: that loop serves it */
        return NULL;
    }
    if (ss->letting_go) {
        ll_server_let_go_locked(srv, ss); /* here, on its connection's loop */
    } else if (ss->close_requested) {
        if (conn) {
            ll_server_conn_closing(srv, conn, LIFELINE__CLOSE__CODE__SESSION_CLOSED, ss->close_reason,
                                   ss->reconnect_allowed);
        }
        ll_server_end_session(srv, ss, SDK_SESSION_CLOSED, SDK_CAUSE_CLOSED_BY_APP);
    } else if (conn && ll_server_fill_output(conn) != 0) {
        conn->phase = CONN_CLOSING; /* encode failure: let the timer end it */
    }
    return conn;
}

/* Adopt the connections handed to lp, then move what application threads queued onto its
 * sessions' links. True when stopping. */
static bool service_dirty(sdk_server *srv, ll_srv_loop *lp)
{
    srv_conn *flush = NULL;
    pthread_mutex_lock(&srv->mu);
    bool stop = srv->stopping;
    lp->wake_pending = false;
    lp->self_wake = false;
    if (lp->incoming) {
        srv_conn *incoming = lp->incoming;
        lp->incoming = NULL;
        pthread_mutex_unlock(&srv->mu);
        ll_server_adopt_all(srv, lp, incoming);
        pthread_mutex_lock(&srv->mu);
    }
    if (lp->index == 0) {
        ll_server_reload_event_locked(srv);
    }
    srv_session *list = lp->dirty;
    lp->dirty = NULL;
    while (list) {
        srv_session *ss = list;
        list = ss->next_dirty;
        ss->dirty = false;
        srv_conn *conn = service_session(srv, lp, ss);
        if (conn && !conn->flush_queued) {
            conn->flush_queued = true;
            conn->next_flush = flush;
            flush = conn;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    ll_server_report_events(srv);
    while (flush) {
        srv_conn *conn = flush;
        flush = conn->next_flush;
        conn->flush_queued = false;
        ll_server_conn_ready(srv, conn, 0);
    }
    return stop;
}

/* A connection's deadline: the handshake limit, the closing limit, or its heartbeat. */
static void on_conn_timer(sdk_server *srv, srv_conn *conn, uint64_t now)
{
    if (conn->phase != CONN_READY) {
        ll_server_drop_conn(srv, conn, SDK_CAUSE_RESET);
        return;
    }
    uint64_t next = 0;
    int rc = ll_conn_tick(&conn->link.conn, now * 1000, &next);
    if (rc != 0) {
        ll_server_conn_failed(srv, conn, rc, SDK_CAUSE_HEARTBEAT_TIMEOUT); /* Close{HEARTBEAT_TIMEOUT} first */
        return;
    }
    ll_timers_set(&conn->loop->timers, &conn->timer, next); /* heard from since: look again later */
}

static void fire_conn_timers(sdk_server *srv, ll_srv_loop *lp, uint64_t now)
{
    ll_timer *t;
    while ((t = ll_timers_expired(&lp->timers, now)) != NULL) {
        on_conn_timer(srv, ll_container_of(t, srv_conn, timer), now);
    }
}

static void fire_timers(sdk_server *srv, uint64_t now)
{
    ll_timer *t;
    fire_conn_timers(srv, &srv->loops[0], now);
    pthread_mutex_lock(&srv->mu);
    while ((t = ll_timers_expired(&srv->ttls, now)) != NULL) {
        ll_server_end_session(srv, ll_container_of(t, srv_session, ttl), SDK_SESSION_EXPIRED, SDK_CAUSE_EXPIRED);
    }
    pthread_mutex_unlock(&srv->mu);
    ll_server_report_events(srv);
}

/* How long the poller may sleep: until the next deadline, at most a second. */
static int poll_timeout(sdk_server *srv, uint64_t now)
{
    ll_srv_loop *lp = &srv->loops[0];
    pthread_mutex_lock(&srv->mu); /* other loops set expiries too */
    uint64_t ttl = ll_timers_next(&srv->ttls);
    pthread_mutex_unlock(&srv->mu);
    uint64_t next = LL_MIN(ll_timers_next(&lp->timers), ttl);
    if (srv->accept_paused_until) {
        next = LL_MIN(next, srv->accept_paused_until);
    }
    if (srv->store) {
        next = LL_MIN(next, ll_server_sync_next(srv));
    }
    next = LL_MIN(next, ll_server_lame_duck_next(srv));
    if (next <= now || lp->self_wake) {
        return 0;
    }
    return (int)LL_MIN(next - now, srv->draining ? (uint64_t)LL_SERVER_DRAIN_QUIET_MS : 1000u);
}

/* Wait for lp's poller (up to timeout_ms) and handle what is ready. How many were. */
static int poll_loop(sdk_server *srv, ll_srv_loop *lp, int timeout_ms)
{
    ll_poll_event evs[MAX_EVENTS];
    int n = ll_net_poll_wait(lp->poll_fd, evs, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].ptr == &srv->listen_fd) {
            accept_clients(srv);
        } else if (evs[i].ptr == &lp->wake_fd) {
            ll_wake_drain(lp->wake_fd);
        } else {
            ll_server_conn_ready(srv, evs[i].ptr, evs[i].events);
        }
    }
    return n;
}

ll_turn ll_server_io_turn(sdk_server *srv)
{
    ll_srv_loop *lp = &srv->loops[0];
    int n = poll_loop(srv, lp, poll_timeout(srv, ll_now_ms()));
    bool stop = service_dirty(srv, lp);
    if (stop) {
        ll_server_gather(srv);
    }
    if (stop && !srv->draining && !ll_server_lame_duck(srv, ll_now_ms())) {
        ll_server_begin_drain(srv, ll_now_ms());
    }
    if (srv->store) {
        ll_server_sync(srv, ll_now_ms()); /* in one batch what this turn changed */
    }
    if (srv->draining && ll_server_drain_over(srv, ll_now_ms())) {
        return LL_TURN_DONE;
    }
    if (srv->accept_paused_until && ll_now_ms() >= srv->accept_paused_until) {
        (void)ll_net_poll_mod(lp->poll_fd, srv->listen_fd, LL_POLL_IN, &srv->listen_fd);
        srv->accept_paused_until = 0;
    }
    fire_timers(srv, ll_now_ms());
    /* A callback that made work after service_dirty looked: poll again without sleeping. */
    return n > 0 || lp->self_wake ? LL_TURN_BUSY : LL_TURN_IDLE;
}

bool ll_server_worker_turn(ll_srv_loop *lp)
{
    sdk_server *srv = lp->srv;
    uint64_t now = ll_now_ms();
    uint64_t next = ll_timers_next(&lp->timers);
    int timeout = lp->self_wake || next <= now ? 0 : (int)LL_MIN(next - now, 1000u);
    (void)poll_loop(srv, lp, timeout);
    if (service_dirty(srv, lp)) {
        ll_server_retire(srv, lp);
        return false;
    }
    fire_conn_timers(srv, lp, ll_now_ms());
    return true;
}

void *ll_server_io_main(void *arg)
{
    sdk_server *srv = arg;
    ll_io_self = srv;
    pthread_setname_np(pthread_self(), "lifeline-server"); /* for top -H, perf, gdb */
    while (ll_server_io_turn(srv) != LL_TURN_DONE) {
    }
    ll_server_io_teardown(srv);
    return NULL;
}
