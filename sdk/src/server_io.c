/*
 * The server's I/O thread: one epoll loop over the listener, the wake fd and every client
 * connection (level-triggered, non-blocking TLS). Each turn it handles ready sockets,
 * moves what the application queued onto links ("dirty" sessions), and fires the
 * deadlines that are due: handshake limits, heartbeat timeouts, session expiries.
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"
#include "wait.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define OUT_LIMIT        (256u * 1024) /* encode at most this much data ahead of one socket */
#define READ_BUDGET      (256u * 1024) /* per connection per turn, for fairness */
#define WRITE_TURNS      4             /* output batches per connection per turn, for fairness */
#define CLOSING_MS       1000          /* how long a closing connection may take to flush */
#define DRAIN_MS         1000          /* at most this long for the application to answer at stop */
#define DRAIN_QUIET_MS   20            /* ...or until it has been this quiet with nothing left to read */
#define ACCEPT_PAUSE_MS  100           /* listener rest after accept ran out of descriptors */
#define PROTOCOL_VERSION 1

typedef struct srv_event {
    sdk_session_event_type type;
    uint64_t session;
    sdk_cause cause;
    char peer_addr[64];
} srv_event;

/* ---- events: queued under mu, reported after it is released ---- */

static void queue_event(sdk_server *srv, sdk_session_event_type type, const srv_session *ss, sdk_cause cause)
{
    if (!srv->cfg.on_event) {
        return;
    }
    if (srv->nevents == srv->events_cap) {
        size_t cap = srv->events_cap ? srv->events_cap * 2 : 16;
        srv_event *ev = realloc(srv->events, cap * sizeof(*ev));
        if (!ev) {
            return; /* an event lost to ENOMEM is better than a stalled server */
        }
        srv->events = ev;
        srv->events_cap = cap;
    }
    srv_event *e = &srv->events[srv->nevents++];
    *e = (srv_event){.type = type, .session = ss->id, .cause = cause};
    LL_DETAIL(e->peer_addr, sizeof(e->peer_addr), "%s", ss->peer_addr);
}

static void report_events(sdk_server *srv)
{
    for (size_t i = 0; i < srv->nevents; i++) {
        srv_event *e = &srv->events[i];
        sdk_session_event ev = {.type = e->type, .session = e->session, .cause = e->cause, .peer_addr = e->peer_addr};
        srv->cfg.on_event(&ev, srv->cfg.user);
    }
    srv->nevents = 0;
}

/* ---- sessions (under mu) ---- */

static void unlink_dirty(sdk_server *srv, srv_session *ss)
{
    for (srv_session **p = &srv->dirty; *p; p = &(*p)->next_dirty) {
        if (*p == ss) {
            *p = ss->next_dirty;
            break;
        }
    }
    ss->dirty = false;
}

/* Forget a session for good: remove it from the store and free it. */
static void end_session(sdk_server *srv, srv_session *ss, sdk_session_event_type type, sdk_cause cause)
{
    ss->last_cause = cause;
    queue_event(srv, type, ss, cause);
    if (ss->conn) {
        ss->conn->sess = NULL;
    }
    if (ss->dirty) {
        unlink_dirty(srv, ss);
    }
    ll_timers_cancel(&srv->ttls, &ss->ttl);
    ll_store_del(&srv->sessions, ss->id);
    ll_session_free(&ss->s);
    free(ss);
    pthread_cond_broadcast(&srv->send_cv); /* its blocked senders get SDK_ENOTFOUND */
}

static uint64_t random_u64(void)
{
    uint64_t v = 0;
    while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
    }
    return v;
}

static srv_session *new_session(sdk_server *srv, const Lifeline__Hello *h)
{
    srv_session *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        return NULL;
    }
    do {
        ss->id = random_u64();
    } while (ss->id == 0 || ll_store_get(&srv->sessions, ss->id));
    if (getrandom(ss->token, sizeof(ss->token), 0) != (ssize_t)sizeof(ss->token) ||
        ll_store_put(&srv->sessions, ss->id, ss) != 0) {
        free(ss);
        return NULL;
    }
    uint32_t win = h->window_messages ? LL_MIN(h->window_messages, srv->cfg.window_messages) : srv->cfg.window_messages;
    uint64_t winb = h->window_bytes ? LL_MIN(h->window_bytes, srv->cfg.window_bytes) : srv->cfg.window_bytes;
    ll_session_init(&ss->s, win, winb);
    return ss;
}

static bool token_matches(const srv_session *ss, const ProtobufCBinaryData *t)
{
    if (t->len != sizeof(ss->token)) {
        return false;
    }
    uint8_t diff = 0; /* constant time: the token is a secret */
    for (size_t i = 0; i < sizeof(ss->token); i++) {
        diff |= (uint8_t)(ss->token[i] ^ t->data[i]);
    }
    return diff == 0;
}

/* ---- connections (I/O thread) ---- */

static void set_events(sdk_server *srv, srv_conn *conn)
{
    uint32_t in = srv->draining ? 0 : EPOLLIN; /* a stopping server reads no more input */
    /* More to encode counts as output: the socket being writable is the cue to go on. */
    bool out = (ll_link_events(&conn->link) & POLLOUT) || (conn->more_to_write && conn->phase == CONN_READY);
    uint32_t want = out ? (in | EPOLLOUT) : in;
    if (want != conn->events) {
        struct epoll_event ev = {.events = want, .data.ptr = conn};
        epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, conn->link.fd, &ev);
        conn->events = want;
    }
}

/* Under mu: the connection's session waits, detached, for a resume until its TTL. */
static void detach_locked(sdk_server *srv, srv_conn *conn, sdk_cause cause)
{
    srv_session *ss = conn->sess;
    if (!ss) {
        return;
    }
    ss->conn = NULL;
    conn->sess = NULL;
    ss->last_cause = cause;
    ss->last_rx_ms = conn->link.hb.last_rx_ms;
    queue_event(srv, SDK_SESSION_DETACHED, ss, cause);
    if (ll_timers_set(&srv->ttls, &ss->ttl, ll_now_ms() + (uint64_t)srv->cfg.session_ttl_ms) != 0) {
        end_session(srv, ss, SDK_SESSION_EXPIRED, SDK_CAUSE_EXPIRED);
    }
}

/* Detach the connection's session (kept for resume) and free the connection. */
static void drop_conn(sdk_server *srv, srv_conn *conn, sdk_cause cause)
{
    pthread_mutex_lock(&srv->mu);
    detach_locked(srv, conn, cause);
    pthread_mutex_unlock(&srv->mu);
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, conn->link.fd, NULL);
    ll_timers_cancel(&srv->timers, &conn->timer);
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        srv->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    ll_link_close(&conn->link);
    free(conn);
    report_events(srv);
}

/* Send a close frame and let the connection flush for a moment before it goes. Asking for
 * writability gets the frame out even when the connection is not the one being served (a
 * session taken over by a resume): else it waited for its peer to send, or went unsent. */
static void start_closing(sdk_server *srv, srv_conn *conn, int code, const char *reason, bool reconnect)
{
    (void)ll_link_send_close(&conn->link, code, reason, reconnect);
    conn->phase = CONN_CLOSING;
    ll_timers_set(&srv->timers, &conn->timer, ll_now_ms() + CLOSING_MS);
    set_events(srv, conn);
}

static int send_welcome(sdk_server *srv, srv_conn *conn, srv_session *ss, bool resumed)
{
    Lifeline__Welcome w = LIFELINE__WELCOME__INIT;
    w.version = PROTOCOL_VERSION;
    w.session_id = ss->id;
    w.resume_token.data = ss->token;
    w.resume_token.len = sizeof(ss->token);
    w.resumed = resumed;
    w.last_received = ss->s.received;
    w.heartbeat_interval_ms = ss->hb_interval_ms;
    w.heartbeat_timeout_ms = ss->hb_timeout_ms;
    w.window_messages = srv->cfg.window_messages;
    w.window_bytes = srv->cfg.window_bytes;
    w.max_frame = srv->cfg.max_frame;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_WELCOME;
    f.welcome = &w;
    return ll_link_send(&conn->link, &f);
}

/* Under mu, after a 0.5-RTT welcome: a hello that does not resume exactly the welcomed
 * session. Another session or a wrong token is a protocol error; a session that ended in
 * between sends the client away to reconnect. */
static int refuse_after_welcome(sdk_server *srv, srv_conn *conn, const Lifeline__Hello *h, const srv_session *ss)
{
    if (h->session_id != conn->welcomed) {
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail),
                  "hello for session %llu after a welcome to session %llu", (unsigned long long)h->session_id,
                  (unsigned long long)conn->welcomed);
        return SDK_EPROTO;
    }
    if (ss && !ss->close_requested) {
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "hello with a wrong token for session %llu",
                  (unsigned long long)h->session_id);
        return SDK_EPROTO;
    }
    start_closing(srv, conn, LIFELINE__CLOSE__CODE__SESSION_CLOSED, "session ended after its welcome", true);
    return 0;
}

/* Under mu: bind the connection to the session its hello names, or to a new one. After a
 * 0.5-RTT welcome (welcome_early) the hello must resume exactly that session: the client
 * has already taken it. If the session ended in between, the client is sent away to
 * reconnect, and learns so from the next welcome. */
static int attach(sdk_server *srv, srv_conn *conn, const Lifeline__Hello *h)
{
    if (h->version != PROTOCOL_VERSION) {
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "unsupported protocol version %u", h->version);
        return SDK_EPROTO;
    }
    srv_session *ss = ll_store_get(&srv->sessions, h->session_id);
    bool resumed = ss && !ss->close_requested && token_matches(ss, &h->resume_token);
    if (conn->welcomed && (!resumed || h->session_id != conn->welcomed)) {
        return refuse_after_welcome(srv, conn, h, ss);
    }
    if (resumed) {
        /* Refused before anything changes: a bad resume must not cost the session its
         * connection (nor, detached that way, its expiry). */
        if (ll_session_resume(&ss->s, h->last_received) != 0) {
            LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "resume at sequence %llu, outside what was sent",
                      (unsigned long long)h->last_received);
            return SDK_EPROTO;
        }
        if (ss->conn) { /* the client noticed the old connection die before we did */
            srv_conn *old = ss->conn;
            ss->conn = NULL;
            old->sess = NULL;
            queue_event(srv, SDK_SESSION_DETACHED, ss, SDK_CAUSE_REPLACED);
            start_closing(srv, old, LIFELINE__CLOSE__CODE__NORMAL, "session resumed elsewhere", true);
        }
        ll_timers_cancel(&srv->ttls, &ss->ttl);
    } else if ((ss = new_session(srv, h)) == NULL) {
        return SDK_ENOMEM;
    }
    ss->conn = conn;
    conn->sess = ss;
    ss->connections++;
    ss->connected_since_ms = ll_wall_ms();
    ss->s.peer_max_frame = h->max_frame;
    if (!conn->welcomed) { /* else the welcome has announced the session's values */
        ss->hb_interval_ms = h->heartbeat_interval_ms;
        ss->hb_timeout_ms = (uint32_t)LL_MAX(
            (uint32_t)srv->cfg.heartbeat_min_ms,
            LL_MIN(h->heartbeat_timeout_ms ? h->heartbeat_timeout_ms : 15000u, (uint32_t)srv->cfg.heartbeat_max_ms));
    }
    memcpy(ss->peer_addr, conn->peer_addr, sizeof(ss->peer_addr));
    memcpy(ss->identity, conn->identity, sizeof(ss->identity));
    queue_event(srv, resumed ? SDK_SESSION_RESUMED : SDK_SESSION_OPENED, ss, SDK_CAUSE_NONE);
    uint64_t now = ll_now_ms();
    ll_hb_start(&conn->link.hb, 0, ss->hb_timeout_ms, now); /* the client pings; we watch */
    conn->link.keepalive_ms = ss->hb_timeout_ms;            /* set once the welcome is out */
    conn->phase = CONN_READY;
    ll_timers_set(&srv->timers, &conn->timer, now + ss->hb_timeout_ms);
    conn->link.ticket_due = true;              /* right behind the welcome: see ll_link_flush */
    ll_tls_tag_ticket(conn->link.tls, ss->id); /* a resume from it can be welcomed early */
    return conn->welcomed ? 0 : send_welcome(srv, conn, ss, resumed);
}

/* The client resumed a TLS ticket we issued on a connection of a session: welcome it back
 * to that session now, in 0.5-RTT data behind our handshake flight, rather than a round trip
 * later in answer to its hello. A reconnect then costs the client no more than the resumed
 * TLS handshake. Nothing changes here: the ClientHello may be a replay (only the real
 * client can read this welcome), and the hello still decides, in attach. Any data the old
 * connection delivers meanwhile comes again and is dropped as a duplicate. */
static int welcome_early(sdk_server *srv, srv_conn *conn)
{
    uint64_t id = ll_tls_ticket_tag(conn->link.tls);
    int rc = 0;
    pthread_mutex_lock(&srv->mu);
    srv_session *ss = ll_store_get(&srv->sessions, id);
    if (ss && !ss->close_requested) {
        conn->welcomed = id;
        rc = send_welcome(srv, conn, ss, true);
    }
    pthread_mutex_unlock(&srv->mu);
    return rc == 0 ? ll_link_flush(&conn->link, ll_now_ms()) : rc;
}

/* Under mu: accept a data frame into the inbox. */
static int on_data(sdk_server *srv, srv_conn *conn, srv_session *ss, const ll_data_view *d, bool *got)
{
    int verdict = ll_session_on_data(&ss->s, d->seq, d->len);
    if (verdict == LL_DATA_DUPLICATE) {
        return 0;
    }
    if (verdict != LL_DATA_ACCEPT) {
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "data sequence %llu after %llu: gap",
                  (unsigned long long)d->seq, (unsigned long long)ss->s.received);
        return SDK_EPROTO;
    }
    ll_msg *m =
        ll_msg_carve(&srv->carver, d->payload, d->len, d->type, d->type_len, ss->identity[0] ? ss->identity : NULL);
    LL_ENSURE(m, SDK_ENOMEM);
    m->pub.seq = d->seq;
    m->pub.session = ss->id;
    m->epoch = ss->s.epoch;
    ll_msgq *q = srv->cfg.on_message ? &srv->deliver : &srv->inbox;
    if (ll_msgq_push(q, m) != 0) {
        ll_msg_free(m);
        return SDK_ENOMEM;
    }
    if (q == &srv->deliver) {
        ll_session_consumed(&ss->s, m); /* acked by the next write, after the callback */
    } else {
        ss->in_inbox++;
        *got = true;
    }
    return 0;
}

/* Under mu: one frame from a client. Returns 0 or an sdk_err; *cause says how to detach. */
static int on_frame(sdk_server *srv, srv_conn *conn, const ll_frame *frame, bool *got, sdk_cause *cause)
{
    srv_session *ss = conn->sess;
    const Lifeline__Frame *f = frame->pb;
    if (frame->kind == LIFELINE__FRAME__KIND_HELLO && conn->phase == CONN_HELLO) {
        return attach(srv, conn, f->hello);
    }
    if (conn->phase != CONN_READY || !ss) {
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "frame kind %d before hello", frame->kind);
        return SDK_EPROTO;
    }
    size_t freed = 0;
    switch (frame->kind) {
    case LIFELINE__FRAME__KIND_DATA:
        return on_data(srv, conn, ss, &frame->data, got);
    case LIFELINE__FRAME__KIND_ACK:
        if (ll_session_on_ack(&ss->s, f->ack->seq, &freed) != 0) {
            LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "ack %llu for a message never sent",
                      (unsigned long long)f->ack->seq);
            return SDK_EPROTO;
        }
        if (freed) {
            pthread_cond_broadcast(&srv->send_cv);
        }
        return 0;
    case LIFELINE__FRAME__KIND_PING:
        ss->rtt_us = f->ping->rtt_us;
        return ll_link_send_pong(&conn->link, f->ping->nonce, f->ping->timestamp_us);
    case LIFELINE__FRAME__KIND_PONG:
        return 0;
    case LIFELINE__FRAME__KIND_CLOSE:
        *cause = SDK_CAUSE_CLEAN_CLOSE;
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "client closed: %s", f->close->reason);
        if (!f->close->reconnect) { /* the client is gone for good: so is its session */
            end_session(srv, ss, SDK_SESSION_CLOSED, SDK_CAUSE_CLEAN_CLOSE);
        }
        return SDK_EDISCONNECTED;
    default:
        LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "unexpected frame kind %d", frame->kind);
        return SDK_EPROTO;
    }
}

/* Under mu: acks due and data the window allows, onto the connection's link. */
static int fill_output(srv_conn *conn)
{
    srv_session *ss = conn->sess;
    if (!ss || conn->phase != CONN_READY) {
        return 0;
    }
    if (ll_session_ack_due(&ss->s, ss->in_inbox == 0)) {
        LL_GUARD(ll_link_send_ack(&conn->link, ll_session_ack_take(&ss->s)));
    }
    int rc = ll_session_write(&ss->s, &conn->link.out, OUT_LIMIT);
    conn->more_to_write = ll_session_can_write(&ss->s);
    return rc;
}

/* Write; while the socket takes whole batches and the session has more, encode the next
 * (a few per turn, so one busy client cannot starve the others). */
static int write_batches(sdk_server *srv, srv_conn *conn, uint64_t now)
{
    int rc = ll_link_flush(&conn->link, now);
    for (int turn = 0; rc == 0 && turn < WRITE_TURNS && conn->more_to_write && ll_buf_size(&conn->link.out) == 0;
         turn++) {
        pthread_mutex_lock(&srv->mu);
        rc = fill_output(conn);
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

/* Decode and handle every complete frame under one lock round trip. */
static int process_input(sdk_server *srv, srv_conn *conn, sdk_cause *cause)
{
    bool got = false;
    int rc = 0;
    pthread_mutex_lock(&srv->mu);
    ll_frame f;
    while (rc == 0 && conn->phase != CONN_CLOSING && (rc = ll_link_next(&conn->link, &f)) == 1) {
        rc = on_frame(srv, conn, &f, &got, cause);
        ll_frame_release(&f);
    }
    if (srv->deliver.count > 0) {
        /* The callbacks' replies then go out in one write with the acks they earned. */
        pthread_mutex_unlock(&srv->mu);
        report_events(srv); /* a session's OPENED comes before its first message */
        ll_msgq_deliver(&srv->deliver, srv->cfg.on_message, srv->cfg.user); /* may send */
        pthread_mutex_lock(&srv->mu);
    }
    if (rc == 0) {
        rc = fill_output(conn);
    }
    if (conn->sess) {
        conn->sess->last_rx_ms = conn->link.hb.last_rx_ms;
    }
    pthread_mutex_unlock(&srv->mu);
    if (got) {
        pthread_cond_broadcast(&srv->recv_cv); /* after unlocking: see client_io.c */
    }
    report_events(srv);
    return rc;
}

static int step_handshake(sdk_server *srv, srv_conn *conn)
{
    int rc = ll_tls_handshake(conn->link.tls);
    if (rc == LL_TLS_HALF_RTT) {
        LL_GUARD(welcome_early(srv, conn));
        rc = ll_tls_handshake(conn->link.tls);
    }
    if (rc == LL_TLS_OK) {
        conn->phase = CONN_HELLO;
        ll_tls_peer_subject(conn->link.tls, conn->identity, sizeof(conn->identity));
        return 0;
    }
    if (rc == LL_TLS_WANT_WRITE) {
        conn->link.want_write = true;
        return 0;
    }
    if (rc == LL_TLS_WANT_READ) {
        conn->link.want_write = false;
        return 0;
    }
    LL_DETAIL(conn->link.detail, sizeof(conn->link.detail), "%s", ll_tls_error(conn->link.tls));
    return rc;
}

/* A closing connection: flush the close frame, then half-close and drain until the peer
 * hangs up (or the closing deadline), so our last frames are not lost to a reset. */
static void on_closing_ready(sdk_server *srv, srv_conn *conn, uint32_t revents)
{
    int rc = conn->tls_failed ? 0 : ll_link_flush(&conn->link, ll_now_ms());
    if (rc == 0 && ll_buf_size(&conn->link.out) == 0) {
        if (!conn->half_closed) {
            shutdown(conn->link.fd, SHUT_WR);
            conn->half_closed = true;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            rc = conn->tls_failed ? ll_net_drain(conn->link.fd) : ll_link_discard(&conn->link);
        }
    }
    if (rc != 0) {
        drop_conn(srv, conn, SDK_CAUSE_CLEAN_CLOSE);
        return;
    }
    set_events(srv, conn);
}

/* The connection failed with rc (cause: what is known beyond rc). A protocol error is
 * explained to the client before hanging up; anything else ends the connection at once. */
static void conn_failed(sdk_server *srv, srv_conn *conn, int rc, sdk_cause cause)
{
    if (cause == SDK_CAUSE_RESET) {
        cause = cause_of(rc);
    }
    if (rc == SDK_EDISCONNECTED && ll_tls_peer_closed(conn->link.tls)) {
        cause = SDK_CAUSE_CLEAN_CLOSE; /* FIN without a close frame */
    }
    if (cause != SDK_CAUSE_PROTOCOL_ERROR || conn->phase == CONN_CLOSING) {
        drop_conn(srv, conn, cause);
        return;
    }
    /* The session waits for a resume. A frame over our limit would only come again on
     * resume, so that client must not return. */
    pthread_mutex_lock(&srv->mu);
    detach_locked(srv, conn, cause);
    pthread_mutex_unlock(&srv->mu);
    report_events(srv);
    bool too_big = rc == SDK_ETOOBIG;
    start_closing(srv, conn, too_big ? LIFELINE__CLOSE__CODE__TOO_BIG : LIFELINE__CLOSE__CODE__PROTOCOL_ERROR,
                  conn->link.detail, !too_big);
    on_closing_ready(srv, conn, 0);
}

/* The socket is ready: move bytes and frames. */
static void on_conn_ready(sdk_server *srv, srv_conn *conn, uint32_t revents)
{
    sdk_cause cause = SDK_CAUSE_RESET;
    int rc = 0;
    uint64_t now = ll_now_ms();
    if (srv->draining && (revents & (EPOLLHUP | EPOLLERR))) {
        drop_conn(srv, conn, SDK_CAUSE_RESET);
        return;
    }
    if (conn->phase == CONN_HANDSHAKE && (rc = step_handshake(srv, conn)) != 0) {
        /* OpenSSL has written its alert; linger so the client reads it instead of a reset. */
        conn->tls_failed = true;
        conn->phase = CONN_CLOSING;
        ll_timers_set(&srv->timers, &conn->timer, now + CLOSING_MS);
        on_closing_ready(srv, conn, revents);
        return;
    }
    if (conn->phase == CONN_CLOSING) {
        on_closing_ready(srv, conn, revents);
        return;
    }
    if (rc == 0 && conn->phase != CONN_HANDSHAKE && !srv->draining && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        rc = ll_link_fill(&conn->link, now, READ_BUDGET);
        if (rc == 0 || ll_buf_size(&conn->link.dec.in) > 0) {
            int rc2 = process_input(srv, conn, &cause);
            rc = rc2 ? rc2 : rc;
        }
    }
    if (rc == 0 && conn->phase != CONN_HANDSHAKE) {
        rc = write_batches(srv, conn, now);
    }
    /* One frame may be as large as max_frame; beyond that, output piling up means the client
     * is not reading (pongs and acks are encoded regardless of the window). */
    if (rc == 0 && ll_buf_size(&conn->link.out) > srv->cfg.max_output_bytes + (size_t)srv->cfg.max_frame) {
        cause = SDK_CAUSE_OUTPUT_OVERFLOW;
        rc = SDK_EIO;
    }
    if (rc != 0) {
        conn_failed(srv, conn, rc, cause);
        return;
    }
    set_events(srv, conn);
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
            struct epoll_event ev = {.events = 0, .data.ptr = &srv->listen_fd};
            epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, srv->listen_fd, &ev);
            srv->accept_paused_until = ll_now_ms() + ACCEPT_PAUSE_MS;
            return;
        }
        if (rc != 0) {
            return;
        }
        srv_conn *conn = calloc(1, sizeof(*conn));
        ll_tls *tls = NULL;
        char why[256];
        if (!conn || ll_tls_new(srv->tls, fd, NULL, &tls, why, sizeof(why)) != 0) {
            free(conn);
            close(fd);
            continue;
        }
        ll_link_init(&conn->link, fd, tls, srv->cfg.max_frame);
        LL_DETAIL(conn->peer_addr, sizeof(conn->peer_addr), "%s", peer);
        conn->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = conn};
        if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0 ||
            ll_timers_set(&srv->timers, &conn->timer, ll_now_ms() + (uint64_t)srv->cfg.handshake_timeout_ms) != 0) {
            ll_link_close(&conn->link);
            free(conn);
            continue;
        }
        conn->next = srv->conns;
        if (srv->conns) {
            srv->conns->prev = conn;
        }
        srv->conns = conn;
    }
}

/* Move what application threads queued onto their sessions' links. */
static bool service_dirty(sdk_server *srv)
{
    srv_conn *flush = NULL;
    pthread_mutex_lock(&srv->mu);
    bool stop = srv->stopping;
    srv->wake_pending = false;
    srv->self_wake = false;
    srv_session *list = srv->dirty;
    srv->dirty = NULL;
    while (list) {
        srv_session *ss = list;
        list = ss->next_dirty;
        ss->dirty = false;
        srv_conn *conn = ss->conn;
        if (ss->close_requested) {
            if (conn) {
                start_closing(srv, conn, LIFELINE__CLOSE__CODE__SESSION_CLOSED, ss->close_reason,
                              ss->reconnect_allowed);
            }
            end_session(srv, ss, SDK_SESSION_CLOSED, SDK_CAUSE_CLOSED_BY_APP);
        } else if (conn && fill_output(conn) != 0) {
            conn->phase = CONN_CLOSING; /* encode failure: let the timer end it */
        }
        if (conn && !conn->flush_queued) {
            conn->flush_queued = true;
            conn->next_flush = flush;
            flush = conn;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    report_events(srv);
    while (flush) {
        srv_conn *conn = flush;
        flush = conn->next_flush;
        conn->flush_queued = false;
        on_conn_ready(srv, conn, 0);
    }
    return stop;
}

static void on_conn_timer(sdk_server *srv, srv_conn *conn, uint64_t now)
{
    if (conn->phase == CONN_READY && now < conn->link.hb.last_rx_ms + conn->link.hb.timeout_ms) {
        ll_timers_set(&srv->timers, &conn->timer, conn->link.hb.last_rx_ms + conn->link.hb.timeout_ms);
        return; /* heard from since the deadline was set: look again later */
    }
    sdk_cause cause = conn->phase == CONN_READY ? SDK_CAUSE_HEARTBEAT_TIMEOUT : SDK_CAUSE_RESET;
    drop_conn(srv, conn, cause);
}

static void fire_timers(sdk_server *srv, uint64_t now)
{
    ll_timer *t;
    while ((t = ll_timers_expired(&srv->timers, now)) != NULL) {
        on_conn_timer(srv, ll_container_of(t, srv_conn, timer), now);
    }
    pthread_mutex_lock(&srv->mu);
    while ((t = ll_timers_expired(&srv->ttls, now)) != NULL) {
        end_session(srv, ll_container_of(t, srv_session, ttl), SDK_SESSION_EXPIRED, SDK_CAUSE_EXPIRED);
    }
    pthread_mutex_unlock(&srv->mu);
    report_events(srv);
}

void ll_server_session_liveness(const srv_session *ss, uint64_t now_ms, uint64_t wall_ms, sdk_session_info *info)
{
    uint64_t silent = now_ms > ss->last_rx_ms ? now_ms - ss->last_rx_ms : 0;
    info->last_heard_ms = wall_ms - LL_MIN(silent, wall_ms);
    info->rtt_smoothed_us = ss->rtt_us;
    info->missed_heartbeats = ss->hb_interval_ms ? (uint32_t)(silent / ss->hb_interval_ms) : 0;
}

static void free_session(void *val, void *arg)
{
    sdk_server *srv = arg;
    srv_session *ss = val;
    queue_event(srv, SDK_SESSION_CLOSED, ss, SDK_CAUSE_SERVER_STOP);
    ll_timers_cancel(&srv->ttls, &ss->ttl);
    ll_session_free(&ss->s);
    free(ss);
}

/* One step of a lingering close, without epoll: flush, half-close, then read and drop until
 * the client hangs up. True once there is nothing more to wait for. */
static bool linger_done(srv_conn *c)
{
    if (c->tls_failed || c->lingered) {
        return true;
    }
    int rc = ll_link_flush(&c->link, ll_now_ms());
    if (rc == 0 && ll_buf_size(&c->link.out) > 0) {
        return false;
    }
    if (rc == 0 && !c->half_closed) {
        shutdown(c->link.fd, SHUT_WR);
        c->half_closed = true;
    }
    if (rc == 0) {
        rc = ll_link_discard(&c->link);
    }
    c->lingered = rc != 0; /* the client closed its end (or the link failed): done */
    return c->lingered;
}

/* Stopping, first phase: refuse new clients and stop reading, so the application can
 * answer what it already took (sdk_server_send still works) while nothing new arrives. */
static void begin_drain(sdk_server *srv)
{
    epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
    close(srv->listen_fd);
    srv->listen_fd = -1;
    srv->accept_paused_until = 0;
    srv->draining = true;
    srv_conn *next = NULL;
    for (srv_conn *c = srv->conns; c; c = next) {
        next = c->next;
        if (c->phase == CONN_READY || c->phase == CONN_CLOSING) {
            set_events(srv, c);
        } else {
            drop_conn(srv, c, SDK_CAUSE_SERVER_STOP); /* not yet a session: nothing to finish */
        }
    }
}

/* The drain ends when the application has taken everything and gone quiet, or at the
 * deadline; from then on sdk_server_send returns SDK_ECLOSED. */
static bool drain_over(sdk_server *srv, uint64_t now, uint64_t deadline)
{
    pthread_mutex_lock(&srv->mu);
    bool quiet = srv->inbox.count == 0 && srv->dirty == NULL && now >= srv->last_send_ms + DRAIN_QUIET_MS;
    bool over = quiet || now >= deadline;
    if (over) {
        srv->sends_closed = true;
        pthread_cond_broadcast(&srv->send_cv);
    }
    pthread_mutex_unlock(&srv->mu);
    return over;
}

/* Stop, last phase: encode what the windows allow, tell every client we are going away,
 * give the frames a moment, free it all. */
void ll_server_io_teardown(sdk_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (srv_conn *c = srv->conns; c; c = c->next) {
        (void)fill_output(c);
    }
    pthread_mutex_unlock(&srv->mu);
    for (srv_conn *c = srv->conns; c; c = c->next) {
        if (c->phase == CONN_READY) {
            start_closing(srv, c, LIFELINE__CLOSE__CODE__GOING_AWAY, "server stopping", true);
        }
    }
    uint64_t deadline = ll_now_ms() + CLOSING_MS;
    bool pending = true;
    while (pending && ll_now_ms() < deadline) {
        pending = false;
        for (srv_conn *c = srv->conns; c; c = c->next) {
            pending |= c->phase == CONN_CLOSING && !linger_done(c);
        }
        struct epoll_event evs[1];
        if (pending) {
            (void)epoll_wait(srv->epoll_fd, evs, 1, 10);
        }
    }
    pthread_mutex_lock(&srv->mu);
    for (srv_conn *c = srv->conns; c; c = c->next) {
        c->sess = NULL;
    }
    ll_store_each(&srv->sessions, free_session, srv);
    ll_store_free(&srv->sessions);
    srv->dirty = NULL;
    pthread_mutex_unlock(&srv->mu);
    while (srv->conns) {
        drop_conn(srv, srv->conns, SDK_CAUSE_SERVER_STOP);
    }
    report_events(srv);
}

void *ll_server_io_main(void *arg)
{
    sdk_server *srv = arg;
    ll_io_self = srv;
    pthread_setname_np(pthread_self(), "lifeline-server"); /* for top -H, perf, gdb */
    struct epoll_event evs[128];
    uint64_t drain_deadline = 0;
    for (;;) {
        uint64_t now = ll_now_ms();
        uint64_t next = LL_MIN(ll_timers_next(&srv->timers), ll_timers_next(&srv->ttls));
        if (srv->accept_paused_until) {
            next = LL_MIN(next, srv->accept_paused_until);
        }
        int timeout =
            next <= now || srv->self_wake ? 0 : (int)LL_MIN(next - now, srv->draining ? DRAIN_QUIET_MS : 1000u);
        int n = epoll_wait(srv->epoll_fd, evs, 128, timeout);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &srv->listen_fd) {
                accept_clients(srv);
            } else if (p == &srv->wake_fd) {
                ll_wake_drain(srv->wake_fd);
            } else {
                on_conn_ready(srv, p, evs[i].events);
            }
        }
        if (service_dirty(srv) && !srv->draining) {
            begin_drain(srv);
            drain_deadline = ll_now_ms() + DRAIN_MS;
        }
        if (srv->draining && drain_over(srv, ll_now_ms(), drain_deadline)) {
            break;
        }
        if (srv->accept_paused_until && ll_now_ms() >= srv->accept_paused_until) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &srv->listen_fd};
            epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, srv->listen_fd, &ev);
            srv->accept_paused_until = 0;
        }
        fire_timers(srv, ll_now_ms());
    }
    ll_server_io_teardown(srv);
    return NULL;
}
