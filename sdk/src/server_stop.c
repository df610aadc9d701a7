/*
 * Stopping the server, on its I/O thread: the drain (no new clients, no more input, while the
 * application answers what it took) and the teardown (what the windows allow goes out, every
 * client hears GOING_AWAY, every connection and session is freed).
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define LINGER_EVENTS 128 /* poller events taken at once while connections linger */

/* One step of a lingering close, without the poller: flush, half-close, then read and drop
 * until the client hangs up. True once there is nothing more to wait for. */
static bool linger_done(srv_conn *c)
{
    if (c->tls_failed || c->lingered) {
        return true;
    }
    int rc = ll_link_flush(&c->link, ll_now_ms());
    if (rc == 0 && ll_buf_size(&c->link.conn.out) > 0) {
        return false;
    }
    if (rc == 0 && !c->half_closed) {
        ll_net_shutdown_write(c->link.fd);
        c->half_closed = true;
    }
    if (rc == 0) {
        rc = ll_link_discard(&c->link);
    }
    c->lingered = rc != 0; /* the client closed its end (or the link failed): done */
    return c->lingered;
}

void ll_server_stop_listening(sdk_server *srv)
{
    if (srv->listen_fd >= 0) {
        ll_net_poll_del(srv->loops[0].poll_fd, srv->listen_fd);
        close(srv->listen_fd);
        srv->listen_fd = -1;
        srv->accept_paused_until = 0;
    }
    srv_conn *next = NULL;
    for (srv_conn *c = srv->loops[0].conns; c; c = next) {
        next = c->next;
        if (c->phase != CONN_READY && c->phase != CONN_CLOSING) {
            ll_server_drop_conn(srv, c, SDK_CAUSE_SERVER_STOP); /* not yet a session: nothing to finish */
        }
    }
}

void ll_server_begin_drain(sdk_server *srv, uint64_t now)
{
    ll_server_stop_listening(srv);
    srv->draining = true;
    srv->drain_start = now;
    srv->drain_deadline = now + LL_SERVER_DRAIN_MS;
    for (srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        ll_server_set_events(srv, c);
    }
}

static void find_unacked(void *val, void *arg)
{
    const srv_session *ss = val;
    bool *unacked = arg;
    *unacked = *unacked || (!ss->gone_away && ss->s.consumed < ss->s.received);
}

/* Under mu: whether the application has answered everything it took. With manual_ack the
 * server knows: every message it accepted is acknowledged (an echo's reply carries its ack),
 * so the drain waits for nothing more. Otherwise a message counts as answered once taken,
 * and only a quiet spell says that the replies have stopped coming. */
static bool answered_locked(sdk_server *srv, uint64_t now)
{
    if (!srv->cfg.manual_ack) {
        return now >= srv->last_send_ms + LL_SERVER_DRAIN_QUIET_MS;
    }
    bool unacked = false;
    ll_store_each(&srv->sessions, find_unacked, &unacked); /* only once the rest is done */
    return !unacked;
}

/* Under mu: nothing left for the drain to wait for. Input is closed once nothing can reach
 * the inbox any more (under sync always a message read before the drain waits in its session
 * until the store holds it); the application has taken everything; its replies are on their
 * links (the store holds them first, under sync always: no batch listed or in flight). */
static bool drained_locked(sdk_server *srv, uint64_t now)
{
    bool stored = !ll_server_sync_always(srv) || (srv->sync_list == NULL && srv->sync_state == LL_SYNC_IDLE);
    return srv->input_closed && srv->inbox.count == 0 && srv->loops[0].dirty == NULL && stored &&
           answered_locked(srv, now);
}

bool ll_server_drain_over(sdk_server *srv, uint64_t now)
{
    pthread_mutex_lock(&srv->mu);
    bool was_closed = srv->input_closed;
    srv->input_closed = srv->input_closed || srv->unsynced == 0;
    bool drained = drained_locked(srv, now);
    bool over = drained || now >= srv->drain_deadline;
    if (over) {
        atomic_store(&srv->metrics.drain_ms, now - srv->drain_start);
        ll_counter_add(&srv->metrics.drain_timeouts, !drained);
        srv->input_closed = true;
        srv->sends_closed = true;
        ll_notify_broadcast(&srv->notify, &srv->send_cv);
    }
    if (srv->input_closed && !was_closed) { /* the application may hear of the stop now */
        ll_notify_broadcast(&srv->notify, &srv->recv_cv);
    }
    pthread_mutex_unlock(&srv->mu);
    return over;
}

static void free_session(void *val, void *arg)
{
    sdk_server *srv = arg;
    srv_session *ss = val;
    ll_server_queue_event(srv, SDK_SESSION_CLOSED, ss, SDK_CAUSE_SERVER_STOP);
    ll_timers_cancel(&srv->ttls, &ss->ttl);
    ll_server_sync_forget_locked(srv, ss); /* undelivered: the next owner has them again */
    ll_server_metrics_retire(&srv->metrics, &ss->s);
    ll_session_free(&ss->s);
    free(ss);
}

/* What a lingering connection waits for: the client's bytes and hang-up (read and dropped),
 * and room to write while its Close is still going out. */
static void linger_watch(sdk_server *srv, srv_conn *c)
{
    uint32_t want = LL_POLL_IN | ((ll_link_events(&c->link) & POLLOUT) ? LL_POLL_OUT : 0u);
    if (want != c->events) {
        (void)ll_net_poll_mod(srv->loops[0].poll_fd, c->link.fd, want, c);
        c->events = want;
    }
}

/* One step of c's lingering close: true while it goes on. Once done, the poller forgets it
 * (a hung-up socket stays ready, and the teardown frees it after the others). */
static bool linger_step(sdk_server *srv, srv_conn *c)
{
    if (c->phase == CONN_CLOSING && !linger_done(c)) {
        linger_watch(srv, c);
        return true;
    }
    ll_net_poll_del(srv->loops[0].poll_fd, c->link.fd);
    c->events = 0;
    return false;
}

/* Every closing connection lingers until its client hangs up, or the closing deadline. Each
 * takes a step now, then one whenever the poller reports it; a count of those still
 * lingering says when all are done. A wake-up costs what woke it: rescanning every
 * connection at each one made a stop with 10,000 clients take seconds. */
static void linger_all(sdk_server *srv)
{
    uint64_t start = ll_now_ms(), deadline = start + LL_SERVER_CLOSING_MS;
    size_t lingering = 0;
    for (srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        lingering += linger_step(srv, c);
    }
    ll_poll_event evs[LINGER_EVENTS];
    uint64_t now;
    while (lingering > 0 && (now = ll_now_ms()) < deadline) {
        int n = ll_net_poll_wait(srv->loops[0].poll_fd, evs, LINGER_EVENTS, (int)(deadline - now));
        for (int i = 0; i < n; i++) {
            if (evs[i].ptr == &srv->loops[0].wake_fd) {
                ll_wake_drain(srv->loops[0].wake_fd);
            } else if (evs[i].ptr != &srv->listen_fd && !linger_step(srv, evs[i].ptr)) {
                lingering--;
            }
        }
    }
    atomic_store(&srv->metrics.linger_ms, ll_now_ms() - start);
}

/* Under mu: messages still in the inbox can no longer be acknowledged (the sessions go
 * next), so they must not reach the application either: their clients send them again to
 * whoever serves them next. With their sessions' counts at 0, the last write acknowledges
 * everything the application took. */
static void drop_inbox(sdk_server *srv)
{
    ll_msg *m;
    while ((m = ll_msgq_pop(&srv->inbox)) != NULL) {
        srv_session *ss = ll_store_get(&srv->sessions, m->pub.session);
        if (ss && ss->in_inbox > 0) {
            ss->in_inbox--;
        }
        ll_msg_free(m);
    }
}

void ll_server_io_teardown(sdk_server *srv)
{
    ll_server_takeover_stop(srv); /* from now on an instance resuming our sessions does not ask */
    pthread_mutex_lock(&srv->mu);
    drop_inbox(srv);
    for (srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        (void)ll_server_fill_output(c);
    }
    if (srv->store) { /* before GOING_AWAY: a client that reconnects at once finds its record */
        ll_server_sync_finish(srv);
        ll_server_handover_all(srv);
    }
    pthread_mutex_unlock(&srv->mu);
    for (srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        if (c->phase == CONN_READY) {
            ll_server_conn_closing(srv, c, LIFELINE__CLOSE__CODE__GOING_AWAY, "server stopping", true);
        }
    }
    linger_all(srv);
    pthread_mutex_lock(&srv->mu);
    for (srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        c->sess = NULL;
    }
    srv->sync_list = NULL; /* every session goes: no need to unlink them one by one */
    ll_store_each(&srv->sessions, free_session, srv);
    ll_store_free(&srv->sessions);
    srv->loops[0].dirty = NULL;
    pthread_mutex_unlock(&srv->mu);
    while (srv->loops[0].conns) {
        ll_server_drop_conn(srv, srv->loops[0].conns, SDK_CAUSE_SERVER_STOP);
    }
    ll_server_report_events(srv);
}
