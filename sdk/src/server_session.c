/*
 * The server's sessions, on its I/O thread: their events, their life cycle (open, resume,
 * detach, end) and the greeting that binds a connection to one (Hello, Welcome, the early
 * Welcome of a resumed TLS ticket). The rules are docs/protocol.md's; the parameters a
 * Hello announces are negotiated by the connection core (ll_params_from_hello).
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"

#include <stdlib.h>
#include <string.h>

/* ---- events: queued under mu, reported after it is released ---- */

/* A new event at the end of the queue, or NULL (no callback, or out of memory). */
static srv_event *push_event(sdk_server *srv)
{
    if (!srv->cfg.on_event) {
        return NULL;
    }
    if (srv->nevents == srv->events_cap) {
        size_t cap = srv->events_cap ? srv->events_cap * 2 : 16;
        srv_event *ev = realloc(srv->events, cap * sizeof(*ev));
        if (!ev) {
            return NULL; /* an event lost to ENOMEM is better than a stalled server */
        }
        srv->events = ev;
        srv->events_cap = cap;
    }
    srv_event *e = &srv->events[srv->nevents++];
    memset(e, 0, sizeof(*e));
    ll_server_tell_loop0_locked(srv);
    return e;
}

void ll_server_queue_event(sdk_server *srv, sdk_session_event_type type, const srv_session *ss, sdk_cause cause)
{
    ll_server_count_event(&srv->metrics, type, cause); /* every event is counted, reported or not */
    srv_event *e = push_event(srv);
    if (e) {
        e->type = type;
        e->session = ss->id;
        e->cause = cause;
        LL_DETAIL(e->peer_addr, sizeof(e->peer_addr), "%s", ss->peer_addr);
    }
}

void ll_server_queue_detail_event(sdk_server *srv, sdk_session_event_type type, const char *peer, const char *detail)
{
    srv_event *e = push_event(srv);
    if (e) {
        e->type = type;
        LL_DETAIL(e->peer_addr, sizeof(e->peer_addr), "%s", peer ? peer : "");
        LL_DETAIL(e->detail, sizeof(e->detail), "%s", detail);
    }
}

/* ---- life cycle (under mu) ---- */

static void unlink_dirty(srv_session *ss)
{
    for (srv_session **p = &ss->dirty_loop->dirty; *p; p = &(*p)->next_dirty) {
        if (*p == ss) {
            *p = ss->next_dirty;
            break;
        }
    }
    ss->dirty = false;
}

void ll_server_end_session(sdk_server *srv, srv_session *ss, sdk_session_event_type type, sdk_cause cause)
{
    ss->last_cause = cause;
    ll_server_queue_event(srv, type, ss, cause);
    if (ss->conn) {
        ss->conn->sess = NULL;
    }
    if (ss->dirty) {
        unlink_dirty(ss);
    }
    ll_timers_cancel(&srv->ttls, &ss->ttl);
    ll_server_sync_forget_locked(srv, ss);
    ll_store_del(&srv->sessions, ss->id);
    ll_server_metrics_retire(&srv->metrics, &ss->s);
    ll_session_free(&ss->s);
    free(ss);
    ll_notify_broadcast(&srv->notify, &srv->send_cv); /* its blocked senders get SDK_ENOTFOUND */
}

void ll_server_detach_locked(sdk_server *srv, srv_conn *conn, sdk_cause cause)
{
    srv_session *ss = conn->sess;
    if (!ss) {
        return;
    }
    ss->conn = NULL;
    conn->sess = NULL;
    if (ss->letting_go) { /* another instance owns it: nothing to keep it for */
        ll_server_end_session(srv, ss, SDK_SESSION_CLOSED, SDK_CAUSE_TAKEN_OVER);
        return;
    }
    ss->last_cause = cause;
    ss->last_rx_ms = conn->link.conn.hb.last_rx_ms;
    ll_server_queue_event(srv, SDK_SESSION_DETACHED, ss, cause);
    ll_server_tell_loop0_locked(srv); /* loop 0 fires the expiry: it may be asleep past it */
    if (ll_timers_set(&srv->ttls, &ss->ttl, ll_now_ms() + (uint64_t)srv->cfg.session_ttl_ms) != 0) {
        ll_server_end_session(srv, ss, SDK_SESSION_EXPIRED, SDK_CAUSE_EXPIRED);
    } else if (srv->cfg.session_ttl_ms > 0) {
        ll_server_want_sync_locked(srv, ss, LL_SYNC_FULL); /* its client may resume elsewhere */
    }
}

void ll_server_gate_session(sdk_server *srv, srv_session *ss)
{
    if (ll_server_sync_always(srv)) {
        ss->s.write_limit = ss->synced_seq;
        ss->s.ack_limit = ss->s.consumed;
    }
}

static srv_session *new_session(sdk_server *srv)
{
    srv_session *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        return NULL;
    }
    int rc;
    do {
        rc = ll_net_random(&ss->id, sizeof(ss->id));
    } while (rc == 0 && (ss->id == 0 || ll_store_get(&srv->sessions, ss->id)));
    if (rc != 0 || ll_net_random(ss->token, sizeof(ss->token)) != 0 || ll_store_put(&srv->sessions, ss->id, ss) != 0) {
        free(ss);
        return NULL;
    }
    ll_session_init(&ss->s, srv->cfg.window_messages, srv->cfg.window_bytes);
    ll_server_gate_session(srv, ss);
    if (ll_server_sync_always(srv)) {
        ll_server_want_sync_locked(srv, ss, LL_SYNC_FULL); /* so that a resume elsewhere finds it */
    }
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

/* ---- the greeting ---- */

static int send_welcome_of(sdk_server *srv, srv_conn *conn, const ll_welcome_values *v, bool resumed)
{
    Lifeline__Welcome w = LIFELINE__WELCOME__INIT;
    w.version = LL_PROTOCOL_VERSION;
    w.session_id = v->id;
    w.resume_token.data = (uint8_t *)v->token;
    w.resume_token.len = sizeof(v->token);
    w.resumed = resumed;
    w.last_received = v->last_received;
    w.heartbeat_interval_ms = v->hb_interval_ms;
    w.heartbeat_timeout_ms = v->hb_timeout_ms;
    w.window_messages = srv->cfg.window_messages;
    w.window_bytes = srv->cfg.window_bytes;
    w.max_frame = srv->cfg.max_frame;
    return ll_conn_send_welcome(&conn->link.conn, &w);
}

static ll_welcome_values values_of(const srv_session *ss)
{
    ll_welcome_values v = {.id = ss->id,
                           .last_received = ll_session_resume_point(&ss->s),
                           .hb_interval_ms = ss->hb_interval_ms,
                           .hb_timeout_ms = ss->hb_timeout_ms};
    memcpy(v.token, ss->token, sizeof(v.token));
    return v;
}

static int send_welcome(sdk_server *srv, srv_conn *conn, const srv_session *ss, bool resumed)
{
    ll_welcome_values v = values_of(ss);
    return send_welcome_of(srv, conn, &v, resumed);
}

/* After a 0.5-RTT welcome: a hello that does not resume exactly the welcomed session.
 * Another session or a wrong token is a protocol error; a session that ended in between
 * sends the client away to reconnect. */
static int refuse_after_welcome(sdk_server *srv, srv_conn *conn, const Lifeline__Hello *h, const srv_session *ss)
{
    ll_conn *core = &conn->link.conn;
    if (h->session_id != conn->welcomed) {
        return ll_conn_fail(core, SDK_EPROTO, "hello for session %llu after a welcome to session %llu",
                            (unsigned long long)h->session_id, (unsigned long long)conn->welcomed);
    }
    if (ss && !ss->close_requested) {
        return ll_conn_fail(core, SDK_EPROTO, "hello with a wrong token for session %llu",
                            (unsigned long long)h->session_id);
    }
    ll_server_conn_closing(srv, conn, LIFELINE__CLOSE__CODE__SESSION_CLOSED, "session ended after its welcome", true);
    return 0;
}

/* A resume of ss: refused before anything changes (a bad resume must not cost the session its
 * connection, nor, detached that way, its expiry); a connection it still has is replaced. */
static int resume_session(sdk_server *srv, srv_conn *conn, srv_session *ss, const Lifeline__Hello *h)
{
    if (ll_session_resume(&ss->s, h->last_received) != 0) {
        return ll_conn_fail(&conn->link.conn, SDK_EPROTO, "resume at sequence %llu, outside what was sent",
                            (unsigned long long)h->last_received);
    }
    if (ss->conn) { /* the client noticed the old connection die before we did */
        srv_conn *old = ss->conn;
        ss->conn = NULL;
        old->sess = NULL;
        ll_server_queue_event(srv, SDK_SESSION_DETACHED, ss, SDK_CAUSE_REPLACED);
        ll_server_conn_closing(srv, old, LIFELINE__CLOSE__CODE__NORMAL, "session resumed elsewhere", true);
    }
    ll_timers_cancel(&srv->ttls, &ss->ttl);
    if (!ll_server_sync_always(srv) && ss->owner_epoch) {
        ll_server_want_sync_locked(srv, ss, LL_SYNC_DELETE); /* the record of its detach is stale now */
    }
    return 0;
}

/* Bind conn and ss, with the values the hello announced (on every path: fresh, resumed,
 * and resumed after an early welcome). */
static void bind_session(sdk_server *srv, srv_conn *conn, srv_session *ss, const ll_params *p)
{
    ss->conn = conn;
    conn->sess = ss;
    ss->connections++;
    ss->connected_since_ms = ll_wall_ms();
    ss->s.peer_max_frame = p->peer_max_frame;
    ss->s.window_messages = p->window_messages;
    ss->s.window_bytes = p->window_bytes;
    ss->hb_interval_ms = p->heartbeat_interval_ms;
    ss->hb_timeout_ms = p->heartbeat_timeout_ms;
    memcpy(ss->peer_addr, conn->peer_addr, sizeof(ss->peer_addr));
    memcpy(ss->identity, conn->identity, sizeof(ss->identity));
    uint64_t now = ll_now_ms();
    ll_conn_attach(&conn->link.conn, &ss->s, 0, ss->hb_timeout_ms, now); /* the client pings; we watch */
    conn->link.keepalive_ms = ss->hb_timeout_ms;                         /* set once the welcome is out */
    conn->phase = CONN_READY;
    ll_timers_set(&conn->loop->timers, &conn->timer, now + ss->hb_timeout_ms);
    conn->link.ticket_due = true; /* right behind the welcome: see ll_link_flush */
    /* A resume from it can be welcomed early: here, and with a store anywhere (the token in
     * the ticket lets another instance's early welcome hand it back, see server_tickets.c). */
    ll_tls_tag_ticket(conn->link.tls, ss->id, ss->token, srv->store ? sizeof(ss->token) : 0);
    ll_server_takeover_mark_locked(srv, ss); /* held here: another instance asks us first */
}

int ll_server_on_hello(sdk_server *srv, srv_conn *conn, const Lifeline__Hello *h)
{
    if (h->version == 0) { /* a client's highest version; we speak 1, which every one has */
        return ll_conn_fail(&conn->link.conn, SDK_EPROTO, "unsupported protocol version 0");
    }
    srv_session *ss = ll_store_get(&srv->sessions, h->session_id);
    if (ss && ss->letting_go && ss->conn->loop != conn->loop) {
        return ll_server_move_for_resume(conn, h, ss->conn->loop); /* let go there first */
    }
    if (ss && ss->letting_go) {
        ll_server_let_go_locked(srv, ss); /* on its loop: now, and the store decides */
        ss = NULL;
    }
    if (!ss && srv->store && h->session_id && (!conn->welcomed || conn->welcomed == h->session_id)) {
        ss = ll_server_adopt_stored(srv, h); /* another instance handed it over */
        if (ss && conn->welcomed && ss->s.received < conn->welcomed_received) {
            /* the store went back since the early welcome: never resume below it */
            ll_server_end_session(srv, ss, SDK_SESSION_CLOSED, SDK_CAUSE_RESET);
            ss = NULL;
        }
    }
    bool resumed = ss && !ss->close_requested && token_matches(ss, &h->resume_token);
    if (conn->welcomed && (!resumed || h->session_id != conn->welcomed)) {
        return refuse_after_welcome(srv, conn, h, ss);
    }
    if (resumed && ss->conn && ss->conn->loop != conn->loop) {
        return ll_server_move_for_resume(conn, h, ss->conn->loop); /* replaced there, by its own loop */
    }
    if (resumed) {
        LL_GUARD(resume_session(srv, conn, ss, h));
    } else if ((ss = new_session(srv)) == NULL) {
        return ll_conn_fail(&conn->link.conn, SDK_ENOMEM, "out of memory opening a session");
    }
    ll_limits lim = {.heartbeat_min_ms = (uint32_t)srv->cfg.heartbeat_min_ms,
                     .heartbeat_max_ms = (uint32_t)srv->cfg.heartbeat_max_ms,
                     .window_messages = srv->cfg.window_messages,
                     .window_bytes = srv->cfg.window_bytes};
    ll_params p;
    ll_params_from_hello(h, &lim, &p);
    /* An early welcome announced the session's old values: say the new ones if they differ. */
    bool changed =
        p.heartbeat_interval_ms != conn->welcomed_interval_ms || p.heartbeat_timeout_ms != conn->welcomed_timeout_ms;
    bind_session(srv, conn, ss, &p);
    ll_server_queue_event(srv, resumed ? SDK_SESSION_RESUMED : SDK_SESSION_OPENED, ss, SDK_CAUSE_NONE);
    return !conn->welcomed || changed ? send_welcome(srv, conn, ss, resumed) : 0;
}

/* The client resumed a TLS ticket we issued on a connection of a session: welcome it back
 * to that session now, in 0.5-RTT data behind our handshake flight, rather than a round trip
 * later in answer to its hello. A reconnect then costs the client no more than the resumed
 * TLS handshake. Nothing changes here: the ClientHello may be a replay (only the real
 * client can read this welcome), and the hello still decides, in ll_server_on_hello. Any
 * data the old connection delivers meanwhile comes again and is dropped as a duplicate. */
int ll_server_welcome_early(sdk_server *srv, srv_conn *conn)
{
    uint64_t id = ll_tls_ticket_tag(conn->link.tls);
    int rc = 0;
    ll_welcome_values v;
    bool offer = false;
    pthread_mutex_lock(&srv->mu);
    srv_session *ss = ll_store_get(&srv->sessions, id);
    if (ss && !ss->close_requested) {
        v = values_of(ss);
        offer = true;
    } else if (!ss && srv->store) { /* issued by another instance, or by this one before a restart */
        offer = ll_server_peek_stored(srv, id, conn->link.tls, &v);
    }
    if (offer) {
        conn->welcomed = id;
        conn->welcomed_received = v.last_received;
        conn->welcomed_interval_ms = v.hb_interval_ms;
        conn->welcomed_timeout_ms = v.hb_timeout_ms;
        rc = send_welcome_of(srv, conn, &v, true);
    }
    pthread_mutex_unlock(&srv->mu);
    memset(&v, 0, sizeof(v)); /* the token */
    return rc == 0 ? ll_link_flush(&conn->link, ll_now_ms()) : rc;
}

int ll_server_on_data(sdk_server *srv, srv_session *ss, const ll_data_view *d, bool *got)
{
    bool always = ll_server_sync_always(srv);
    bool callback = srv->cfg.on_message != NULL && !always;
    ll_msgq *q = always ? &ss->unsynced : callback ? &srv->deliver : &srv->inbox;
    ll_msg *m = NULL;
    if (callback) {
        ll_server_tell_loop0_locked(srv);
    }
    LL_GUARD(ll_session_deliver(&ss->s, &srv->carver, d, ss->identity[0] ? ss->identity : NULL, q,
                                callback && ll_server_taken_at_queue(srv), &m));
    m->pub.session = ss->id;
    if (m->pub.seq <= ss->redeliver_upto) {
        m->pub.flags |= SDK_MSG_REDELIVERED;
    }
    if (always) {
        srv->unsynced++;
        ll_server_want_sync_locked(srv, ss, LL_SYNC_DELTA); /* delivered once the store has it */
        return 0;
    }
    ss->in_inbox += !callback;
    *got = *got || !callback;
    return 0;
}

void ll_server_session_liveness(const srv_session *ss, uint64_t now_ms, uint64_t wall_ms, sdk_session_info *info)
{
    uint64_t silent = now_ms > ss->last_rx_ms ? now_ms - ss->last_rx_ms : 0;
    info->last_heard_ms = wall_ms - LL_MIN(silent, wall_ms);
    info->rtt_smoothed_us = ss->rtt_us;
    info->missed_heartbeats = ss->hb_interval_ms ? (uint32_t)(silent / ss->hb_interval_ms) : 0;
}
