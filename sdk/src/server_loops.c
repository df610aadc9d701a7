/*
 * The server's I/O threads (sdk_server_config.io_threads): one loop each, loop 0 on the
 * server's own thread (server_io.c runs them). This file sets them up, hands connections
 * between them under mu, and runs the callbacks on loop 0 (see server_impl.h).
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"
#include "wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int watch(int poll_fd, int *fd)
{
    return ll_net_poll_add(poll_fd, *fd, LL_POLL_IN, fd);
}

int ll_server_loops_open(sdk_server *srv, unsigned n, char *why, size_t len)
{
    srv->loops = calloc(n, sizeof(*srv->loops));
    if (!srv->loops) {
        LL_DETAIL(why, len, "out of memory");
        return SDK_ENOMEM;
    }
    srv->nloops = n;
    for (unsigned i = 0; i < n; i++) {
        ll_srv_loop *lp = &srv->loops[i];
        lp->srv = srv;
        lp->index = i;
        lp->wake_fd = -1;
        lp->poll_fd = ll_net_poll_open();
        if (lp->poll_fd < 0 || ll_wake_open(&lp->wake_fd) != 0 || watch(lp->poll_fd, &lp->wake_fd) != 0 ||
            (i == 0 && watch(lp->poll_fd, &srv->listen_fd) != 0)) {
            LL_DETAIL(why, len, "poller setup failed");
            return SDK_EIO;
        }
    }
    return 0;
}

int ll_server_loops_start(sdk_server *srv)
{
    for (unsigned i = 1; i < srv->nloops; i++) {
        ll_srv_loop *lp = &srv->loops[i];
        if (pthread_create(&lp->thread, NULL, ll_server_worker_main, lp) != 0) {
            return SDK_ENOMEM;
        }
        lp->thread_started = true;
    }
    return 0;
}

void ll_server_loops_join(sdk_server *srv)
{
    if (srv->loops_joined) {
        return;
    }
    pthread_mutex_lock(&srv->mu);
    srv->stopping = true; /* set already, but for a start that failed half-way */
    for (unsigned i = 1; i < srv->nloops; i++) {
        ll_wake_signal(srv->loops[i].wake_fd);
    }
    pthread_mutex_unlock(&srv->mu);
    for (unsigned i = 1; i < srv->nloops; i++) {
        if (srv->loops[i].thread_started) {
            pthread_join(srv->loops[i].thread, NULL);
        }
    }
    srv->loops_joined = true;
}

void ll_server_loops_free(sdk_server *srv)
{
    ll_server_loops_join(srv);
    for (unsigned i = 0; srv->loops && i < srv->nloops; i++) {
        ll_srv_loop *lp = &srv->loops[i];
        ll_timers_free(&lp->timers);
        if (lp->wake_fd >= 0) {
            close(lp->wake_fd);
        }
        if (lp->poll_fd >= 0) {
            close(lp->poll_fd);
        }
    }
    free(srv->loops);
    srv->loops = NULL;
}

/* Whether the calling thread runs lp (loop 0's thread is marked with srv, the others with
 * their loop: only loop 0 is "the I/O thread" that callbacks run on). */
bool ll_server_on_loop(const sdk_server *srv, const ll_srv_loop *lp)
{
    return lp->index == 0 ? ll_on_io_thread(srv) : ll_io_self == lp;
}

void ll_server_loop_wake_locked(sdk_server *srv, ll_srv_loop *lp)
{
    if (!lp->wake_pending) {
        lp->wake_pending = true;
        if (ll_server_on_loop(srv, lp)) {
            lp->self_wake = true; /* its own thread: it looks again before it sleeps */
        } else {
            ll_wake_signal(lp->wake_fd);
        }
    }
}

bool ll_server_runs_callbacks(const sdk_server *srv)
{
    return srv->nloops <= 1 || ll_on_io_thread(srv);
}

void ll_server_tell_loop0_locked(sdk_server *srv)
{
    if (srv->nloops > 1 && !ll_on_io_thread(srv)) {
        ll_server_wake_locked(srv);
    }
}

void ll_server_take_callbacks_locked(sdk_server *srv)
{
    if (srv->nevents > 0 && srv->nreporting == 0) {
        srv_event *ev = srv->reporting;
        size_t cap = srv->reporting_cap;
        srv->reporting = srv->events;
        srv->reporting_cap = srv->events_cap;
        srv->nreporting = srv->nevents;
        srv->events = ev;
        srv->events_cap = cap;
        srv->nevents = 0;
    }
    if (srv->deliver.count > 0 && srv->delivering.count == 0) {
        ll_msgq q = srv->delivering; /* both keep their rings: no allocation per batch */
        srv->delivering = srv->deliver;
        srv->deliver = q;
    }
}

typedef struct taken_msg {
    uint64_t session, seq;
    uint32_t epoch;
} taken_msg;

/* Under mu: the callback has returned from these messages: acknowledge them. */
static void ack_taken(sdk_server *srv, const taken_msg *t, size_t n)
{
    pthread_mutex_lock(&srv->mu);
    for (size_t i = 0; i < n; i++) {
        srv_session *ss = ll_store_get(&srv->sessions, t[i].session);
        if (ss && t[i].epoch == ss->s.epoch) {
            ll_server_consumed_locked(srv, ss, t[i].seq);
        }
    }
    pthread_mutex_unlock(&srv->mu);
}

/* Several loops: each message to on_message, and then its ack (under mu once per batch of
 * them), so that no ack leaves before the application took its message. */
static void deliver_then_ack(sdk_server *srv)
{
    taken_msg taken[64];
    size_t n = 0;
    ll_msg *m;
    while ((m = ll_msgq_pop(&srv->delivering)) != NULL) {
        taken[n++] = (taken_msg){.session = m->pub.session, .seq = m->pub.seq, .epoch = m->epoch};
        srv->cfg.on_message(&m->pub, srv->cfg.user); /* owns m from here on; may send */
        if (n == sizeof(taken) / sizeof(taken[0])) {
            ack_taken(srv, taken, n);
            n = 0;
        }
    }
    ack_taken(srv, taken, n);
}

void ll_server_run_callbacks(sdk_server *srv)
{
    for (size_t i = 0; i < srv->nreporting; i++) {
        srv_event *e = &srv->reporting[i];
        sdk_session_event ev = {
            .type = e->type, .session = e->session, .cause = e->cause, .peer_addr = e->peer_addr, .detail = e->detail};
        srv->cfg.on_event(&ev, srv->cfg.user);
    }
    srv->nreporting = 0;
    if (srv->delivering.count == 0) {
        return;
    }
    if (srv->cfg.manual_ack || ll_server_taken_at_queue(srv)) {
        ll_msgq_deliver(&srv->delivering, srv->cfg.on_message, srv->cfg.user); /* may send */
    } else {
        deliver_then_ack(srv);
    }
}

void ll_server_report_events(sdk_server *srv)
{
    if (!ll_server_runs_callbacks(srv)) {
        return; /* queued for loop 0, which was woken */
    }
    pthread_mutex_lock(&srv->mu);
    ll_server_take_callbacks_locked(srv);
    pthread_mutex_unlock(&srv->mu);
    ll_server_run_callbacks(srv);
}

ll_srv_loop *ll_server_pick_loop_locked(sdk_server *srv)
{
    for (unsigned tries = 0; tries < srv->nloops; tries++) {
        ll_srv_loop *lp = &srv->loops[srv->next_loop];
        srv->next_loop = (srv->next_loop + 1) % srv->nloops;
        if (!lp->retired) {
            return lp;
        }
    }
    return &srv->loops[0];
}

void ll_server_hand_locked(sdk_server *srv, srv_conn *conn, ll_srv_loop *lp)
{
    if (lp->retired) {
        lp = &srv->loops[0]; /* stopping: loop 0 takes everything back */
    }
    conn->loop = lp;
    conn->next_incoming = lp->incoming;
    lp->incoming = conn;
    ll_server_loop_wake_locked(srv, lp);
}

int ll_server_move_for_resume(srv_conn *conn, const Lifeline__Hello *h, ll_srv_loop *to)
{
    size_t len = lifeline__hello__get_packed_size(h);
    conn->pending_hello = malloc(len ? len : 1);
    if (!conn->pending_hello) {
        return ll_conn_fail(&conn->link.conn, SDK_ENOMEM, "out of memory moving a resume");
    }
    conn->pending_hello_len = lifeline__hello__pack(h, conn->pending_hello);
    conn->move_to = to;
    return 0;
}

Lifeline__Hello *ll_server_take_hello(srv_conn *conn)
{
    Lifeline__Hello *h = lifeline__hello__unpack(NULL, conn->pending_hello_len, conn->pending_hello);
    free(conn->pending_hello);
    conn->pending_hello = NULL;
    conn->pending_hello_len = 0;
    return h;
}

void *ll_server_worker_main(void *arg)
{
    ll_srv_loop *lp = arg;
    ll_io_self = lp; /* not srv: callbacks never run here, and sends from here never wait */
    char name[16];
    snprintf(name, sizeof(name), "lifeline-io%u", lp->index);
    pthread_setname_np(pthread_self(), name);
    while (ll_server_worker_turn(lp)) {
    }
    return NULL;
}
