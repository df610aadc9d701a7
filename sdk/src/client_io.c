/*
 * The client's I/O thread: connect, run the session until the link fails, back off,
 * reconnect and resume; until sdk_close or a reason to give up. It alone owns the socket.
 */
#include "client.h"
#include "conn.h"
#include "link.h"
#include "ll.h"
#include "net.h"
#include "resolve.h"
#include "retry.h"
#include "stack.h"
#include "wait.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUT_LIMIT   (256u * 1024) /* encode at most this much ahead of the socket */
#define READ_BUDGET (512u * 1024) /* read at most this much before writing again */
/* While greeting, read one TLS record at a time: the welcome comes first, and what follows
 * it (the server's session ticket, resent data) can wait for run(), after CONNECTED. */
#define GREET_READ 1u
#define GOODBYE_MS 1000 /* how long sdk_close waits for the close frame to go out */
#define QUIET_MS   100  /* no traffic for this long: an idle connection (went_quiet) */

static void emit(sdk_client *c, sdk_event ev)
{
    if (c->cfg.on_event) {
        if (!ev.detail) {
            ev.detail = "";
        }
        c->cfg.on_event(&ev, c->cfg.user);
    }
}

static void set_state(sdk_client *c, sdk_state st)
{
    pthread_mutex_lock(&c->mu);
    c->state = st;
    c->wake_pending = false;
    ll_notify_broadcast(&c->notify, &c->send_cv);
    pthread_mutex_unlock(&c->mu);
}

static bool closing(sdk_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool yes = c->closing;
    pthread_mutex_unlock(&c->mu);
    return yes;
}

/* Wait for fd events or the deadline; the wake fd fires only for sdk_close here.
 * Returns 0 when fd is ready, SDK_ETIMEDOUT, or SDK_ECLOSED. */
static int wait_fd(sdk_client *c, int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = ll_now_ms();
        if (now >= deadline_ms) {
            return SDK_ETIMEDOUT;
        }
        bool woken = false;
        short ready = ll_net_wait(fd, events, c->wake_fd, (int)LL_MIN(deadline_ms - now, 1000u), &woken);
        if (woken) {
            ll_wake_drain(c->wake_fd);
            if (closing(c)) {
                return SDK_ECLOSED;
            }
        }
        if (ready) {
            return 0;
        }
    }
}

static int handshake(sdk_client *c, ll_link *l, uint64_t deadline_ms)
{
    for (;;) {
        int rc = ll_tls_handshake(l->tls);
        if (rc == LL_TLS_OK) {
            return 0;
        }
        if (rc != LL_TLS_WANT_READ && rc != LL_TLS_WANT_WRITE) {
            LL_DETAIL(l->conn.detail, sizeof(l->conn.detail), "%s", ll_tls_error(l->tls));
            return rc;
        }
        rc = wait_fd(c, l->fd, rc == LL_TLS_WANT_READ ? POLLIN : POLLOUT, deadline_ms);
        if (rc != 0) {
            LL_DETAIL(l->conn.detail, sizeof(l->conn.detail), "TLS handshake: %s", sdk_strerror(rc));
            return rc;
        }
    }
}

/* The server's close frame: whether we may come back (the core has the reason), and
 * whether it is stopping (the next attempt then goes elsewhere first). */
static int closed_by_peer(sdk_client *c, const Lifeline__Close *cl)
{
    c->going_away = cl->code == LIFELINE__CLOSE__CODE__GOING_AWAY;
    return cl->reconnect ? SDK_EDISCONNECTED : SDK_EREJECTED;
}

/* One step of the greeting: wait, read, and take the welcome if it is whole. 0 while it is
 * not, 1 when the welcome was adopted, or an sdk_err. */
static int greet_step(sdk_client *c, ll_link *l, uint64_t deadline_ms, bool *lost)
{
    int rc = ll_link_flush(l, ll_now_ms());
    if (rc == 0 && !ll_tls_has_pending(l->tls)) {
        rc = wait_fd(c, l->fd, ll_link_events(l), deadline_ms);
        if (rc != 0) {
            LL_DETAIL(l->conn.detail, sizeof(l->conn.detail), "waiting for welcome: %s", sdk_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = ll_link_fill(l, ll_now_ms(), GREET_READ);
    }
    ll_conn_event ev;
    ll_conn_result r = rc == 0 ? ll_conn_next(&l->conn, ll_now_us(), &ev) : LL_CONN_NEED_MORE;
    if (r == LL_CONN_FAILED) {
        return l->conn.err;
    }
    if (r == LL_CONN_EVENT && ev.type == LL_EV_CLOSE) {
        return closed_by_peer(c, ev.frame.pb->close);
    }
    if (r == LL_CONN_EVENT) { /* the core lets nothing but a welcome through here */
        pthread_mutex_lock(&c->mu);
        rc = ll_client_adopt_welcome(c, l, ev.frame.pb->welcome, lost);
        pthread_mutex_unlock(&c->mu);
        return rc ? rc : 1;
    }
    return rc;
}

/* Write the hello and read until the welcome. On a resumed connection the server may have
 * sent the welcome with its handshake flight, so OpenSSL may hold it already: poll only
 * when it does not. */
static int greet(sdk_client *c, ll_link *l, uint64_t deadline_ms, bool *lost)
{
    LL_GUARD(ll_client_send_hello(c, &l->conn));
    int rc;
    while ((rc = greet_step(c, l, deadline_ms, lost)) == 0) {
    }
    return rc == 1 ? 0 : rc;
}

/* What sdk_current_endpoint reports, from the cursor (takes mu). */
static void publish_endpoint(sdk_client *c)
{
    const ll_addr *a = ll_endpoints_addr(&c->endpoints);
    pthread_mutex_lock(&c->mu);
    c->endpoint_index = ll_endpoints_current(&c->endpoints)->index;
    c->endpoint_addr[0] = '\0';
    if (a) {
        ll_net_format_addr(a, c->endpoint_addr, sizeof(c->endpoint_addr));
    }
    pthread_mutex_unlock(&c->mu);
}

/* TCP to the endpoint whose turn it is, resolving its name first when the cursor has just
 * reached it (endpoints.h); the attempt's deadline covers both. */
static int connect_endpoint(sdk_client *c, uint64_t deadline, int *fd, char *why, size_t len)
{
    const ll_endpoint *ep = ll_endpoints_current(&c->endpoints);
    publish_endpoint(c);
    if (ll_endpoints_need_addrs(&c->endpoints)) {
        ll_addrs addrs;
        LL_GUARD(ll_resolve(ep->host, ep->port, deadline, c->wake_fd, &addrs, why, len));
        LL_GUARD(ll_endpoints_set_addrs(&c->endpoints, &addrs));
        publish_endpoint(c);
    }
    return ll_net_connect_addr(ll_endpoints_addr(&c->endpoints), deadline, c->wake_fd, fd, why, len);
}

/* Kept out of the frames that stay on the stack while the connection runs (not inlined into
 * one_attempt): the attempt's locals (a resolution's addresses alone are 2 KiB) would
 * otherwise lie between the thread's top and its idle loop, resident in every idle client
 * (ll_stack_trim gives back only what is below the loop). Also end_attempt, next_attempt and report_closed. */
#define LL_OFF_IDLE_STACK __attribute__((noinline))

/* Connect, handshake and greet: on 0 the link is ready and the session adopted. */
LL_OFF_IDLE_STACK static int establish(sdk_client *c, ll_link *l, bool *lost)
{
    uint64_t deadline = ll_client_attempt_deadline(c);
    int fd = -1;
    char *why = l->conn.detail;
    LL_GUARD(connect_endpoint(c, deadline, &fd, why, sizeof(l->conn.detail)));
    /* Each endpoint proves its own name, unless the configuration names one for all. */
    const char *name = c->cfg.servername ? c->cfg.servername : ll_endpoints_current(&c->endpoints)->host;
    ll_tls *tls = NULL;
    int rc = ll_tls_new(c->tls, fd, name, &tls, why, sizeof(l->conn.detail));
    if (rc != 0) {
        close(fd);
        return rc;
    }
    char detail[sizeof(l->conn.detail)]; /* what connect said, kept across the link's init */
    memcpy(detail, why, sizeof(detail));
    ll_link_init(l, fd, tls, LL_ROLE_CLIENT, c->cfg.max_frame);
    memcpy(l->conn.detail, detail, sizeof(detail));
    LL_GUARD(handshake(c, l, deadline));
    return greet(c, l, deadline, lost);
}

/* Under mu: queue an ack if due and encode what the window allows. */
static int fill_output(sdk_client *c, ll_link *l)
{
    return ll_conn_fill(&l->conn, c->recvq.count == 0, OUT_LIMIT);
}

static int on_data(sdk_client *c, const ll_data_view *d, bool *got)
{
    bool callback = c->cfg.on_message != NULL;
    ll_msg *m = NULL;
    LL_GUARD(ll_session_deliver(&c->s, &c->carver, d, NULL, callback ? &c->deliver : &c->recvq, callback, &m));
    *got = *got || !callback;
    return 0;
}

/* Under mu: add what this link's heartbeat counted since last time to the client's
 * lifetime counters (a new link's start at 0; sdk_stats must not go back). */
static void count_heartbeats(sdk_client *c, ll_link *l)
{
    const ll_heartbeat *hb = &l->conn.hb;
    if (hb->answered != l->hb_answered_counted) { /* a pong came: its round trip is the last */
        ll_histogram_observe(&c->rtt, hb->rtt_last_us);
    }
    c->stats.heartbeats_sent += hb->sent - l->hb_sent_counted;
    c->stats.heartbeats_answered += hb->answered - l->hb_answered_counted;
    l->hb_sent_counted = hb->sent;
    l->hb_answered_counted = hb->answered;
}

/* Under mu: act on one event of the connection. */
static int on_event(sdk_client *c, ll_link *l, const ll_conn_event *ev, bool *got, bool *acked)
{
    switch (ev->type) {
    case LL_EV_DATA:
        return on_data(c, &ev->frame.data, got);
    case LL_EV_ACKED:
        *acked = true;
        return 0;
    case LL_EV_WELCOME:
        return ll_client_rewelcome(c, &l->conn, ev->frame.pb->welcome);
    case LL_EV_CLOSE:
        return closed_by_peer(c, ev->frame.pb->close);
    case LL_EV_HELLO:
    default:
        return ll_conn_fail(&l->conn, SDK_EPROTO, "unexpected event %d", ev->type);
    }
}

/* Under mu: handle every complete frame. */
static int handle_frames(sdk_client *c, ll_link *l, bool *got, bool *acked)
{
    ll_conn_event ev;
    ll_conn_result r;
    int rc = 0;
    uint64_t now_us = ll_now_us(); /* once per batch: a clock read per message shows at 64 B */
    while (rc == 0 && (r = ll_conn_next(&l->conn, now_us, &ev)) == LL_CONN_EVENT) {
        rc = on_event(c, l, &ev, got, acked);
    }
    if (rc == 0 && r == LL_CONN_FAILED) {
        rc = l->conn.err;
    }
    count_heartbeats(c, l);
    c->stats.rtt_last_us = l->conn.hb.rtt_last_us;
    c->stats.rtt_smoothed_us = l->conn.hb.rtt_smoothed_us;
    return rc;
}

/* Decode and handle every complete frame, under one lock round trip. */
static int process_input(sdk_client *c, ll_link *l)
{
    bool got = false;
    bool acked = false;
    pthread_mutex_lock(&c->mu);
    int rc = handle_frames(c, l, &got, &acked);
    pthread_mutex_unlock(&c->mu);
    /* Signalled after unlocking, so a woken reader does not wake only to wait for mu. */
    if (got) {
        ll_notify_broadcast(&c->notify, &c->recv_cv);
    }
    if (acked) {
        ll_notify_broadcast(&c->notify, &c->send_cv);
    }
    /* on_message, outside mu (it may send); the acks earned go out with prepare()'s write. */
    ll_msgq_deliver(&c->deliver, c->cfg.on_message, c->cfg.user);
    return rc;
}

/* One turn of the connected loop before polling: take new work, heartbeat, write. */
/* Under mu: take new work; *more tells whether the queue holds more than one batch. */
static int take_work(sdk_client *c, ll_link *l, bool *stop, bool *more)
{
    c->wake_pending = false;
    *stop = c->closing;
    int rc = *stop ? 0 : fill_output(c, l);
    *more = !*stop && ll_session_can_write(&c->s);
    count_heartbeats(c, l);
    return rc;
}

static int prepare(sdk_client *c, ll_link *l, uint64_t now, uint64_t *next_ms, bool *stop)
{
    bool more = false;
    pthread_mutex_lock(&c->mu);
    int rc = take_work(c, l, stop, &more);
    pthread_mutex_unlock(&c->mu);
    if (rc == 0 && !*stop) {
        rc = ll_conn_tick(&l->conn, ll_now_us(), next_ms);
    }
    /* Keep writing batches while the socket takes them: nothing else would wake us to. */
    while (rc == 0 && (rc = ll_link_flush(l, now)) == 0 && more && ll_buf_size(&l->conn.out) == 0) {
        pthread_mutex_lock(&c->mu);
        rc = take_work(c, l, stop, &more);
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* The wait timed out with nothing to do: the connection is quiet. Give back what an idle
 * client need not hold (lifeline-bench --only memory): OpenSSL's read and write buffers, our
 * own (the decoder's and the output, grown on a busy connection), the carver's block of
 * received messages (freed once the application has freed those), and the stack pages below
 * this frame. Every time it goes quiet, not once: each heartbeat's read and write touch some
 * 8 KiB of stack again. A busy connection does not time out, so this costs the hot path
 * nothing. Not the thread's OpenSSL state (OPENSSL_thread_stop): a thread that reconnected
 * holds two random generators (6 KiB), but making them again costs the next reconnect's
 * handshake about 40 us, and glibc's per-thread cache kept most of the freed memory anyway. */
static void went_quiet(sdk_client *c, ll_link *l)
{
    ll_tls_release_buffers(l->tls);
    ll_conn_release_buffers(&l->conn);
    ll_carver_free(&c->carver);
    ll_stack_trim();
}

/* Connected: move messages both ways until the link fails or sdk_close. 0 means closing. */
static int run(sdk_client *c, ll_link *l)
{
    bool quiet = false;            /* went_quiet ran and nothing happened since */
    LL_GUARD(process_input(c, l)); /* frames that arrived right behind the welcome */
    for (;;) {
        uint64_t now = ll_now_ms();
        uint64_t next = now + 1000;
        bool stop = false;
        int rc = prepare(c, l, now, &next, &stop);
        if (rc != 0 && l->conn.phase == LL_CONN_CLOSED && l->conn.err == rc) {
            return rc; /* we failed the connection (a dead peer): its Close goes in goodbye */
        }
        if (rc != 0) {
            /* A write failed: the peer may have said why (a close frame) just before going. */
            (void)ll_link_fill(l, ll_now_ms(), READ_BUDGET);
            int said = process_input(c, l);
            return said ? said : rc;
        }
        if (stop) {
            return 0;
        }
        int timeout = ll_tls_has_pending(l->tls) ? 0 : (int)(next > now ? next - now : 0);
        /* A long wait (until a heartbeat is due) starts with QUIET_MS, so that a connection
         * gone quiet trims itself then rather than seconds later. */
        bool probe = !quiet && timeout > QUIET_MS;
        bool woken = false;
        short ready = ll_net_wait(l->fd, ll_link_events(l), c->wake_fd, probe ? QUIET_MS : timeout, &woken);
        if (woken) {
            ll_wake_drain(c->wake_fd);
        }
        bool idle = !ready && !woken;
        if (idle && probe) {
            went_quiet(c, l);
        }
        quiet = idle && (quiet || probe);
        if (ready || ll_tls_has_pending(l->tls)) {
            /* Frames that arrived before a failure (a close frame before EOF) still count. */
            rc = ll_link_fill(l, ll_now_ms(), READ_BUDGET);
            int rc_frames = process_input(c, l);
            LL_GUARD(rc_frames ? rc_frames : rc);
        }
    }
}

/* Give our last frames (a Close) until deadline_ms to go out. */
static void flush_until(ll_link *l, uint64_t deadline_ms)
{
    while (ll_link_flush(l, ll_now_ms()) == 0 && ll_buf_size(&l->conn.out) > 0 && ll_now_ms() < deadline_ms) {
        (void)ll_net_wait(l->fd, ll_link_events(l), -1, 50, NULL);
    }
}

/* Tell the server we are leaving and give the frame a moment to go out: after sdk_close
 * (err 0) for good; after a failure of the connection core (a dead server, a protocol error,
 * while greeting too), one try to write the Close it owes the server, if any. */
static void goodbye(ll_link *l, int err)
{
    if (err != 0 && (l->fd < 0 || l->conn.err != err)) {
        return; /* the transport failed, not the protocol: nothing is owed, or nobody hears */
    }
    if (err == 0 && ll_conn_close(&l->conn, LIFELINE__CLOSE__CODE__NORMAL, "client closed", false) != 0) {
        return;
    }
    flush_until(l, ll_now_ms() + (err == 0 ? GOODBYE_MS : 0));
}

/* Sleep delay_ms unless sdk_close comes first. Returns true if closing. */
static bool backoff_wait(sdk_client *c, uint32_t delay_ms)
{
    uint64_t deadline = ll_now_ms() + delay_ms;
    while (!closing(c)) {
        uint64_t now = ll_now_ms();
        if (now >= deadline) {
            return false;
        }
        bool woken = false;
        (void)ll_net_wait(-1, 0, c->wake_fd, (int)(deadline - now), &woken);
        if (woken) {
            ll_wake_drain(c->wake_fd);
        }
    }
    return true;
}

static uint64_t next_random(uint64_t *x)
{
    /* xorshift64*: jitter needs spread, not secrecy */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ULL;
}

/* The I/O thread's reconnect bookkeeping. */
typedef struct attempts {
    unsigned tried;  /* failed attempts since the last session (each endpoint tried counts) */
    unsigned rounds; /* failed rounds in a row (endpoints.h): the backoff's exponent, and
                        what max_reconnect_attempts counts */
    bool ever_connected;
    uint64_t rng;
} attempts;

/* Under mu: whether to give up after err (the close error), or -1 to keep trying. Inside a
 * round only a stop (the policy's, sdk_close, a frame too big) ends it: the other endpoints
 * are still to be tried. */
static int give_up_on(const sdk_client *c, int err, const attempts *a, bool round_over, bool policy_stop)
{
    if (c->closing) {
        return SDK_OK;
    }
    if (policy_stop || err == SDK_ETOOBIG) {
        return err; /* a frame over our limit would only come again after a resume */
    }
    if (!round_over) {
        return -1;
    }
    if (!a->ever_connected && !c->cfg.retry_on_first_connect) {
        return err;
    }
    if (c->cfg.max_reconnect_attempts && a->rounds >= c->cfg.max_reconnect_attempts) {
        return err;
    }
    return -1;
}

/* Record why the connection ended; decide whether to give up (returns the close error). */
static int after_failure(sdk_client *c, int err, const char *detail, const attempts *a, bool round_over,
                         bool policy_stop)
{
    pthread_mutex_lock(&c->mu);
    if (err != 0) {
        c->last_err = err;
        LL_DETAIL(c->last_detail, sizeof(c->last_detail), "%s", detail[0] ? detail : sdk_strerror(err));
    }
    int give_up = give_up_on(c, err, a, round_over, policy_stop);
    if (give_up >= 0) {
        c->close_err = give_up;
    } else {
        c->state = a->ever_connected ? SDK_STATE_RECONNECTING : SDK_STATE_CONNECTING;
        /* A wake-up meant for the connected loop (new work, an ack due) may still be pending
         * when the link fails; the next run() takes that work anyway. Left there, the next
         * connect would take it for sdk_close and give up the attempt, and with no backoff
         * to wait (and drain it) in, every attempt after it. Until CONNECTED only sdk_close
         * signals (ll_client_wake_locked), and it does so under mu: none is lost here. */
        c->wake_pending = false;
        ll_wake_drain(c->wake_fd);
    }
    c->first_done = c->first_done || give_up >= 0;
    ll_notify_broadcast(&c->notify, &c->send_cv);
    pthread_mutex_unlock(&c->mu);
    return give_up;
}

static void connected(sdk_client *c, ll_link *l, bool ever_connected, unsigned attempt, bool lost)
{
    bool resumed = ll_tls_resumed(l->tls);
    pthread_mutex_lock(&c->mu);
    c->stats.connects++;
    c->stats.reconnects += ever_connected;
    c->stats.handshakes_resumed += resumed;
    c->stats.handshakes_full += !resumed;
    c->state = SDK_STATE_CONNECTED;
    c->first_done = true;
    ll_notify_broadcast(&c->notify, &c->send_cv);
    pthread_mutex_unlock(&c->mu);
    if (lost) {
        emit(c, (sdk_event){.type = SDK_EVENT_SESSION_LOST,
                            .attempt = attempt,
                            .detail = "the server did not know the session; unacknowledged messages are sent again"});
    }
    emit(c, (sdk_event){.type = SDK_EVENT_CONNECTED, .attempt = attempt, .resumed = !lost && ever_connected});
}

/* After an attempt or a session that ended with err: move the endpoint cursor, then give
 * up (the close error, >= 0) or wait out the delay (-1: attempt again). The policy's delay
 * comes after a round, or after a session; within a round the next endpoint comes at once. */
LL_OFF_IDLE_STACK static int next_attempt(sdk_client *c, attempts *a, int err, bool ran, const char *detail)
{
    bool round_over = true;
    if (ran) {
        ll_endpoints_ended(&c->endpoints, c->going_away);
    } else if (err != 0) {
        a->tried++;
        round_over = ll_endpoints_failed(&c->endpoints);
        a->rounds += round_over;
    }
    ll_retry_verdict next =
        ll_retry_decide(c->cfg.reconnect_policy, (uint32_t)c->cfg.reconnect_min_ms, (uint32_t)c->cfg.reconnect_max_ms,
                        ll_retry_cause(err, detail), a->rounds + 1, next_random(&a->rng));
    char said[320]; /* after a round over several endpoints, that they all failed */
    size_t tried = ll_endpoints_round_size(&c->endpoints);
    if (!ran && round_over && tried > 1) {
        LL_DETAIL(said, sizeof(said), "all %zu endpoint addresses failed; the last: %s", tried, detail);
        detail = said;
    }
    int close_err = after_failure(c, err, detail, a, round_over, next.stop && err);
    if (close_err >= 0) {
        return close_err;
    }
    uint32_t delay = round_over ? next.delay_ms : 0;
    emit(c, (sdk_event){.type = SDK_EVENT_RECONNECTING,
                        .error = err,
                        .detail = detail,
                        .attempt = a->tried + 1,
                        .delay_ms = delay});
    if (backoff_wait(c, delay)) {
        after_failure(c, SDK_OK, "", a, true, false);
        return SDK_OK;
    }
    return -1;
}

/* The end of an attempt (err) or of the session it ran: say goodbye, close, and go on to
 * the next attempt (next_attempt's result). */
LL_OFF_IDLE_STACK static int end_attempt(sdk_client *c, attempts *a, ll_link *l, int err, bool ran)
{
    goodbye(l, err);
    char detail[256];
    LL_DETAIL(detail, sizeof(detail), "%s", l->conn.detail);
    ll_link_close(l);
    if (err != 0 && ran) {
        emit(c, (sdk_event){.type = SDK_EVENT_DISCONNECTED, .error = err, .detail = detail});
    }
    return next_attempt(c, a, err, ran, detail);
}

/* One connection attempt: true when *l is established and CONNECTED; else false with
 * *verdict end_attempt's (the close error, >= 0, or -1 to go on). */
static bool attempt(sdk_client *c, attempts *a, ll_link *l, int *verdict)
{
    *l = (ll_link){.fd = -1};
    bool lost = false;
    c->going_away = false;
    emit(c, (sdk_event){.type = SDK_EVENT_CONNECTING, .attempt = a->tried + 1});
    int err = establish(c, l, &lost);
    if (err != 0) {
        *verdict = end_attempt(c, a, l, err, false);
        return false;
    }
    connected(c, l, a->ever_connected, a->tried + 1, lost);
    *a = (attempts){.ever_connected = true, .rng = a->rng};
    ll_endpoints_connected(&c->endpoints);
    return true;
}

/* What sdk_connect's thread hands the I/O thread after connecting for it. */
struct ll_client_first {
    attempts a;
    ll_link link; /* established, CONNECTED */
};

/* One connection attempt (or the one sdk_connect made, c->first) and, if it succeeds, the
 * session it opens, to its end. Returns the close error (>= 0) or -1 to go on. */
static int one_attempt(sdk_client *c, attempts *a)
{
    ll_link l;
    int verdict = -1;
    if (c->first) {
        l = c->first->link;
        *a = c->first->a;
        free(c->first);
        c->first = NULL;
    } else if (!attempt(c, a, &l, &verdict)) {
        return verdict;
    }
    return end_attempt(c, a, &l, run(c, &l), true);
}

/* The client has given up (close_err) or was closed: say so, and wake sdk_recv. */
LL_OFF_IDLE_STACK static void report_closed(sdk_client *c, int close_err)
{
    set_state(c, SDK_STATE_CLOSED);
    char why[256] = "";
    if (close_err != SDK_OK) {
        sdk_last_error(c, why, sizeof(why));
    }
    emit(c, (sdk_event){.type = SDK_EVENT_CLOSED, .error = close_err, .detail = why});
    pthread_mutex_lock(&c->mu);
    ll_notify_broadcast(&c->notify, &c->recv_cv);
    pthread_mutex_unlock(&c->mu);
}

/* The client's attempts start from here (jitter needs spread, not secrecy). */
static attempts first_attempts(const sdk_client *c)
{
    return (attempts){.rng = ll_now_us() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ULL};
}

void *ll_client_io_main(void *arg)
{
    sdk_client *c = arg;
    ll_io_self = c;
    pthread_setname_np(pthread_self(), "lifeline-client"); /* for top -H, perf, gdb */
    attempts a = first_attempts(c);
    int close_err;
    while ((close_err = one_attempt(c, &a)) < 0) {
    }
    report_closed(c, close_err);
    return NULL;
}

/* Start the I/O thread on the session sdk_connect established (l). 0 or SDK_ENOMEM (the
 * link closed, the client CLOSED). */
static int start_with(sdk_client *c, const attempts *a, ll_link *l)
{
    /* OpenSSL's record buffers (17 KiB each) freed here, by the thread that allocated them,
     * rather than by the I/O thread once quiet, 100 ms and many connects later: the next
     * client this thread connects then reuses them instead of splitting them with its
     * long-lived TLS objects (lifeline-bench: 2.6 KiB less RSS per idle client). The I/O
     * thread makes its own on its first read or write; with bytes held they stay. */
    ll_tls_release_buffers(l->tls);
    c->first = malloc(sizeof(*c->first));
    if (c->first) {
        *c->first = (struct ll_client_first){.a = *a, .link = *l};
        if (pthread_create(&c->thread, NULL, ll_client_io_main, c) == 0) {
            c->thread_started = true;
            return 0;
        }
    }
    free(c->first);
    c->first = NULL;
    ll_link_close(l);
    pthread_mutex_lock(&c->mu);
    c->last_err = c->close_err = SDK_ENOMEM;
    LL_DETAIL(c->last_detail, sizeof(c->last_detail), "could not start the I/O thread");
    pthread_mutex_unlock(&c->mu);
    report_closed(c, SDK_ENOMEM);
    return SDK_ENOMEM;
}

int ll_client_connect_first(sdk_client *c)
{
    attempts a = first_attempts(c);
    ll_link l;
    int verdict = -1;
    while (verdict < 0) {
        if (attempt(c, &a, &l, &verdict)) {
            return start_with(c, &a, &l);
        }
    }
    report_closed(c, verdict);
    return verdict != SDK_OK ? verdict : SDK_ECLOSED; /* OK only after sdk_close: not here */
}
