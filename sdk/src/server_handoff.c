/*
 * Connections moving between the server's I/O loops (server_impl.h, "I/O threads"): handed
 * over under mu, adopted by the receiving loop's own thread. New connections go from loop 0
 * (the listener's) to the loops in turn; a resume goes to the loop of its session, with its
 * hello; at stop every loop hands its connections back to loop 0 and exits.
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"

#include <stdlib.h>

/* conn leaves its loop's poller, timers and list (it is freed, or goes to another loop). */
void ll_server_release_conn(srv_conn *conn)
{
    ll_srv_loop *lp = conn->loop;
    ll_net_poll_del(lp->poll_fd, conn->link.fd);
    conn->moved_deadline_ms = conn->timer.idx ? conn->timer.deadline_ms : 0;
    ll_timers_cancel(&lp->timers, &conn->timer);
    if (conn->handshaking) {
        ll_server_admit_untrack(lp, conn);
    }
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        lp->conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    conn->prev = conn->next = NULL;
}

/* conn goes to loop `to` (its thread adopts it). The caller touches it no more. */
void ll_server_hand_off(sdk_server *srv, srv_conn *conn, ll_srv_loop *to)
{
    ll_server_release_conn(conn);
    pthread_mutex_lock(&srv->mu);
    ll_server_hand_locked(srv, conn, to);
    pthread_mutex_unlock(&srv->mu);
}

/* A moved connection's hello, handled here, by the loop that serves its session. */
static void greet_moved(sdk_server *srv, srv_conn *conn)
{
    pthread_mutex_lock(&srv->mu);
    conn->move_to = NULL;
    Lifeline__Hello *h = ll_server_take_hello(conn);
    int rc = h ? ll_server_on_hello(srv, conn, h)
               : ll_conn_fail(&conn->link.conn, SDK_ENOMEM, "out of memory moving a resume");
    pthread_mutex_unlock(&srv->mu);
    if (h) {
        lifeline__hello__free_unpacked(h, NULL);
    }
    ll_server_report_events(srv);
    if (conn->move_to) {
        ll_server_hand_off(srv, conn, conn->move_to); /* its session moved on meanwhile */
    } else if (rc != 0) {
        ll_server_conn_failed(srv, conn, rc, SDK_CAUSE_RESET);
    } else {
        ll_server_conn_ready(srv, conn, LL_POLL_IN); /* the frames behind the hello, then the welcome */
    }
}

/* conn, handed to lp (conn->loop), joins its poller, timers and list. */
static void adopt(sdk_server *srv, ll_srv_loop *lp, srv_conn *conn)
{
    if (conn->handshaking) {
        ll_server_admit_track(lp, conn);
    }
    conn->next = lp->conns;
    if (lp->conns) {
        lp->conns->prev = conn;
    }
    lp->conns = conn;
    if (ll_net_poll_add(lp->poll_fd, conn->link.fd, conn->events, conn) != 0 ||
        (conn->moved_deadline_ms && ll_timers_set(&lp->timers, &conn->timer, conn->moved_deadline_ms) != 0)) {
        ll_server_drop_conn(srv, conn, SDK_CAUSE_RESET); /* out of memory */
        return;
    }
    if (conn->pending_hello) {
        greet_moved(srv, conn);
    }
}

void ll_server_adopt_all(sdk_server *srv, ll_srv_loop *lp, srv_conn *list)
{
    while (list) {
        srv_conn *conn = list;
        list = conn->next_incoming;
        conn->next_incoming = NULL;
        adopt(srv, lp, conn);
    }
}

/* A new connection to a loop: loop 0's at once, another's through its incoming list. */
void ll_server_place(sdk_server *srv, srv_conn *conn)
{
    ll_srv_loop *lp = &srv->loops[0];
    if (srv->nloops > 1) {
        pthread_mutex_lock(&srv->mu);
        lp = ll_server_pick_loop_locked(srv);
        if (lp->index != 0) {
            ll_server_hand_locked(srv, conn, lp);
        }
        pthread_mutex_unlock(&srv->mu);
    }
    if (lp->index == 0) {
        conn->loop = lp;
        adopt(srv, lp, conn);
    }
}

/* Stopping, loop 0: the other loops have handed their connections back; take them. */
void ll_server_gather(sdk_server *srv)
{
    if (srv->loops_joined) {
        return;
    }
    ll_server_loops_join(srv);
    pthread_mutex_lock(&srv->mu);
    srv_conn *incoming = srv->loops[0].incoming;
    srv->loops[0].incoming = NULL;
    pthread_mutex_unlock(&srv->mu);
    ll_server_adopt_all(srv, &srv->loops[0], incoming);
}

/* Stopping, a loop but 0: everything it serves goes to loop 0 (which joins its thread). */
void ll_server_retire(sdk_server *srv, ll_srv_loop *lp)
{
    while (lp->conns) {
        ll_server_hand_off(srv, lp->conns, &srv->loops[0]);
    }
    pthread_mutex_lock(&srv->mu);
    lp->retired = true;
    while (lp->incoming) {
        srv_conn *conn = lp->incoming;
        lp->incoming = conn->next_incoming;
        ll_server_hand_locked(srv, conn, &srv->loops[0]);
    }
    while (lp->dirty) {
        srv_session *ss = lp->dirty;
        lp->dirty = ss->next_dirty;
        ss->dirty = false;
        ll_server_mark_dirty_locked(srv, ss); /* its connection is loop 0's now */
    }
    pthread_mutex_unlock(&srv->mu);
}
