/*
 * The client's I/O thread: connect, run the session until the link fails, back off,
 * reconnect and resume; until sdk_close or a reason to give up. It alone owns the socket.
 */
#include "client.h"
#include "link.h"
#include "ll.h"
#include "net.h"
#include "retry.h"
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
#define GREET_READ       1u
#define GOODBYE_MS       1000 /* how long sdk_close waits for the close frame to go out */
#define PROTOCOL_VERSION 1

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
    pthread_cond_broadcast(&c->send_cv);
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
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = c->wake_fd, .events = POLLIN}};
    for (;;) {
        uint64_t now = ll_now_ms();
        if (now >= deadline_ms) {
            return SDK_ETIMEDOUT;
        }
        int n = poll(p, 2, (int)LL_MIN(deadline_ms - now, 1000u));
        if (n > 0 && p[1].revents) {
            ll_wake_drain(c->wake_fd);
            if (closing(c)) {
                return SDK_ECLOSED;
            }
        }
        if (n > 0 && p[0].revents) {
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
            LL_DETAIL(l->detail, sizeof(l->detail), "%s", ll_tls_error(l->tls));
            return rc;
        }
        rc = wait_fd(c, l->fd, rc == LL_TLS_WANT_READ ? POLLIN : POLLOUT, deadline_ms);
        if (rc != 0) {
            LL_DETAIL(l->detail, sizeof(l->detail), "TLS handshake: %s", sdk_strerror(rc));
            return rc;
        }
    }
}

static int send_hello(sdk_client *c, ll_link *l)
{
    Lifeline__Hello hello = LIFELINE__HELLO__INIT;
    hello.version = PROTOCOL_VERSION;
    hello.heartbeat_interval_ms = (uint32_t)c->cfg.heartbeat_interval_ms;
    hello.heartbeat_timeout_ms = (uint32_t)c->cfg.heartbeat_timeout_ms;
    hello.window_messages = c->cfg.window_messages;
    hello.window_bytes = c->cfg.window_bytes;
    hello.max_frame = c->cfg.max_frame;
    pthread_mutex_lock(&c->mu);
    hello.session_id = c->session_id;
    hello.resume_token.data = c->token;
    hello.resume_token.len = c->token_len;
    hello.last_received = c->s.received;
    pthread_mutex_unlock(&c->mu);
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_HELLO;
    f.hello = &hello;
    return ll_link_send(l, &f);
}

/* The server's close frame: its reason, and whether we may come back. */
static int closed_by_peer(ll_link *l, const Lifeline__Close *cl)
{
    LL_DETAIL(l->detail, sizeof(l->detail), "server closed the connection: %s",
              cl->reason && *cl->reason ? cl->reason : "no reason given");
    return cl->reconnect ? SDK_EDISCONNECTED : SDK_EREJECTED;
}

/* Adopt the session the welcome describes. Caller holds mu. Sets *lost when the server
 * no longer knew our session. */
static int adopt_welcome(sdk_client *c, ll_link *l, const Lifeline__Welcome *w, bool *lost)
{
    if (w->version != PROTOCOL_VERSION || w->resume_token.len > sizeof(c->token)) {
        LL_DETAIL(l->detail, sizeof(l->detail), "unsupported welcome (version %u)", w->version);
        return SDK_EPROTO;
    }
    if (w->resumed && w->session_id != c->session_id) {
        LL_DETAIL(l->detail, sizeof(l->detail), "welcome resumes session %llu, ours is %llu",
                  (unsigned long long)w->session_id, (unsigned long long)c->session_id);
        return SDK_EPROTO;
    }
    *lost = c->session_id != 0 && !w->resumed;
    if (c->session_id != 0 && w->resumed) {
        if (ll_session_resume(&c->s, w->last_received) != 0) {
            LL_DETAIL(l->detail, sizeof(l->detail), "server resumed at sequence %llu, outside what we sent",
                      (unsigned long long)w->last_received);
            return SDK_EPROTO;
        }
    } else if (*lost) {
        if (ll_session_restart(&c->s) != 0) {
            LL_DETAIL(l->detail, sizeof(l->detail), "out of memory renumbering the queue for a new session");
            return SDK_ENOMEM;
        }
        c->stats.sessions_lost++;
    }
    c->session_id = w->session_id;
    c->s.peer_max_frame = w->max_frame;
    if (w->resume_token.len > 0) { /* protobuf-c leaves an empty token NULL: no memcpy from it */
        memcpy(c->token, w->resume_token.data, w->resume_token.len);
    }
    c->token_len = w->resume_token.len;
    c->s.window_messages = LL_MAX(1u, LL_MIN(c->cfg.window_messages, w->window_messages));
    c->s.window_bytes = LL_MAX(1u, LL_MIN(c->cfg.window_bytes, w->window_bytes));
    /* Our own timeout decides when we give up on the server; the welcome's value is the
     * (clamped) one the server applies when watching us. */
    ll_hb_start(&l->hb, (uint32_t)c->cfg.heartbeat_interval_ms, (uint32_t)c->cfg.heartbeat_timeout_ms, ll_now_ms());
    l->keepalive_ms = (uint32_t)c->cfg.heartbeat_timeout_ms; /* set by the first flush after */
    return 0;
}

/* Write the hello and read until the welcome. On a resumed connection the server may have
 * sent the welcome with its handshake flight, so OpenSSL may hold it already: poll only
 * when it does not. */
static int greet(sdk_client *c, ll_link *l, uint64_t deadline_ms, bool *lost)
{
    LL_GUARD(send_hello(c, l));
    for (;;) {
        int rc = ll_link_flush(l, ll_now_ms());
        if (rc == 0 && !ll_tls_has_pending(l->tls)) {
            rc = wait_fd(c, l->fd, ll_link_events(l), deadline_ms);
            if (rc != 0) {
                LL_DETAIL(l->detail, sizeof(l->detail), "waiting for welcome: %s", sdk_strerror(rc));
            }
        }
        if (rc == 0) {
            rc = ll_link_fill(l, ll_now_ms(), GREET_READ);
        }
        ll_frame f;
        if (rc == 0 && (rc = ll_link_next(l, &f)) == 1) {
            if (f.kind == LIFELINE__FRAME__KIND_WELCOME) {
                pthread_mutex_lock(&c->mu);
                rc = adopt_welcome(c, l, f.pb->welcome, lost);
                pthread_mutex_unlock(&c->mu);
            } else if (f.kind == LIFELINE__FRAME__KIND_CLOSE) {
                rc = closed_by_peer(l, f.pb->close);
            } else {
                LL_DETAIL(l->detail, sizeof(l->detail), "expected welcome, got frame kind %d", f.kind);
                rc = SDK_EPROTO;
            }
            ll_frame_release(&f);
            return rc;
        }
        if (rc != 0) {
            return rc;
        }
    }
}

/* Connect, handshake and greet: on 0 the link is ready and the session adopted. */
static int establish(sdk_client *c, ll_link *l, bool *lost)
{
    uint64_t deadline = ll_client_attempt_deadline(c);
    int fd = -1;
    int rc = ll_net_connect(c->cfg.host, c->cfg.port, deadline, c->wake_fd, &fd, l->detail, sizeof(l->detail));
    LL_GUARD(rc);
    ll_tls *tls = NULL;
    rc = ll_tls_new(c->tls, fd, c->cfg.servername, &tls, l->detail, sizeof(l->detail));
    if (rc != 0) {
        close(fd);
        return rc;
    }
    ll_link_init(l, fd, tls, c->cfg.max_frame);
    LL_GUARD(handshake(c, l, deadline));
    return greet(c, l, deadline, lost);
}

/* Under mu: queue an ack if due and encode what the window allows. */
static int fill_output(sdk_client *c, ll_link *l)
{
    if (ll_session_ack_due(&c->s, c->recvq.count == 0)) {
        LL_GUARD(ll_link_send_ack(l, ll_session_ack_take(&c->s)));
    }
    return ll_session_write(&c->s, &l->out, OUT_LIMIT);
}

static int on_data(sdk_client *c, ll_link *l, const ll_data_view *d, bool *got)
{
    int verdict = ll_session_on_data(&c->s, d->seq, d->len);
    if (verdict == LL_DATA_DUPLICATE) {
        return 0;
    }
    if (verdict != LL_DATA_ACCEPT) {
        LL_DETAIL(l->detail, sizeof(l->detail), "data sequence %llu after %llu: gap", (unsigned long long)d->seq,
                  (unsigned long long)c->s.received);
        return SDK_EPROTO;
    }
    ll_msg *m = ll_msg_carve(&c->carver, d->payload, d->len, d->type, d->type_len, NULL);
    LL_ENSURE(m, SDK_ENOMEM);
    m->pub.seq = d->seq;
    m->epoch = c->s.epoch;
    ll_msgq *q = c->cfg.on_message ? &c->deliver : &c->recvq;
    if (ll_msgq_push(q, m) != 0) {
        ll_msg_free(m);
        return SDK_ENOMEM;
    }
    if (q == &c->deliver) {
        ll_session_consumed(&c->s, m); /* acked by the next write, after the callback */
    }
    *got = q == &c->recvq;
    return 0;
}

/* Under mu: add what this link's heartbeat counted since last time to the client's
 * lifetime counters (a new link's start at 0; sdk_stats must not go back). */
static void count_heartbeats(sdk_client *c, ll_link *l)
{
    c->stats.heartbeats_sent += l->hb.sent - l->hb_sent_counted;
    c->stats.heartbeats_answered += l->hb.answered - l->hb_answered_counted;
    l->hb_sent_counted = l->hb.sent;
    l->hb_answered_counted = l->hb.answered;
}

/* Under mu: act on one frame from the server. */
static int on_frame(sdk_client *c, ll_link *l, const ll_frame *frame, bool *got, bool *acked)
{
    size_t freed = 0;
    const Lifeline__Frame *f = frame->pb;
    switch (frame->kind) {
    case LIFELINE__FRAME__KIND_DATA:
        return on_data(c, l, &frame->data, got);
    case LIFELINE__FRAME__KIND_ACK:
        if (ll_session_on_ack(&c->s, f->ack->seq, &freed) != 0) {
            LL_DETAIL(l->detail, sizeof(l->detail), "ack %llu for a message never sent",
                      (unsigned long long)f->ack->seq);
            return SDK_EPROTO;
        }
        *acked = *acked || freed > 0;
        return 0;
    case LIFELINE__FRAME__KIND_PING:
        return ll_link_send_pong(l, f->ping->nonce, f->ping->timestamp_us);
    case LIFELINE__FRAME__KIND_PONG:
        ll_hb_on_pong(&l->hb, f->pong->nonce, f->pong->timestamp_us, ll_now_us());
        count_heartbeats(c, l);
        c->stats.rtt_last_us = l->hb.rtt_last_us;
        c->stats.rtt_smoothed_us = l->hb.rtt_smoothed_us;
        return 0;
    case LIFELINE__FRAME__KIND_CLOSE:
        return closed_by_peer(l, f->close);
    default:
        LL_DETAIL(l->detail, sizeof(l->detail), "unexpected frame kind %d", frame->kind);
        return SDK_EPROTO;
    }
}

/* Decode and handle every complete frame, under one lock round trip. */
static int process_input(sdk_client *c, ll_link *l)
{
    bool got = false;
    bool acked = false;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    ll_frame f;
    while (rc == 0 && (rc = ll_link_next(l, &f)) == 1) {
        rc = on_frame(c, l, &f, &got, &acked);
        ll_frame_release(&f);
    }
    pthread_mutex_unlock(&c->mu);
    /* Signalled after unlocking, so a woken reader does not wake only to wait for mu. */
    if (got) {
        pthread_cond_broadcast(&c->recv_cv);
    }
    if (acked) {
        pthread_cond_broadcast(&c->send_cv);
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
        rc = ll_link_heartbeat(l, now, next_ms);
    }
    /* Keep writing batches while the socket takes them: nothing else would wake us to. */
    while (rc == 0 && (rc = ll_link_flush(l, now)) == 0 && more && ll_buf_size(&l->out) == 0) {
        pthread_mutex_lock(&c->mu);
        rc = take_work(c, l, stop, &more);
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* Connected: move messages both ways until the link fails or sdk_close. 0 means closing. */
static int run(sdk_client *c, ll_link *l)
{
    LL_GUARD(process_input(c, l)); /* frames that arrived right behind the welcome */
    for (;;) {
        uint64_t now = ll_now_ms();
        uint64_t next = now + 1000;
        bool stop = false;
        int rc = prepare(c, l, now, &next, &stop);
        if (rc != 0) {
            /* A write failed: the peer may have said why (a close frame) just before going. */
            (void)ll_link_fill(l, ll_now_ms(), READ_BUDGET);
            int said = process_input(c, l);
            return said ? said : rc;
        }
        if (stop) {
            return 0;
        }
        struct pollfd p[2] = {{.fd = l->fd, .events = ll_link_events(l)}, {.fd = c->wake_fd, .events = POLLIN}};
        int timeout = ll_tls_has_pending(l->tls) ? 0 : (int)(next > now ? next - now : 0);
        if (poll(p, 2, timeout) < 0) {
            continue; /* EINTR */
        }
        if (p[1].revents) {
            ll_wake_drain(c->wake_fd);
        }
        if (p[0].revents || ll_tls_has_pending(l->tls)) {
            /* Frames that arrived before a failure (a close frame before EOF) still count. */
            rc = ll_link_fill(l, ll_now_ms(), READ_BUDGET);
            int rc_frames = process_input(c, l);
            LL_GUARD(rc_frames ? rc_frames : rc);
        }
    }
}

/* Tell the server we are leaving and give the frame a moment to go out. */
static void goodbye(sdk_client *c, ll_link *l)
{
    if (ll_link_send_close(l, LIFELINE__CLOSE__CODE__NORMAL, "client closed", false) != 0) {
        return;
    }
    uint64_t deadline = ll_now_ms() + GOODBYE_MS;
    while (ll_buf_size(&l->out) > 0 && ll_now_ms() < deadline) {
        if (ll_link_flush(l, ll_now_ms()) != 0) {
            return;
        }
        struct pollfd p = {.fd = l->fd, .events = ll_link_events(l)};
        (void)poll(&p, 1, 50);
    }
    (void)c;
}

/* Sleep delay_ms unless sdk_close comes first. Returns true if closing. */
static bool backoff_wait(sdk_client *c, uint32_t delay_ms)
{
    uint64_t deadline = ll_now_ms() + delay_ms;
    struct pollfd p = {.fd = c->wake_fd, .events = POLLIN};
    while (!closing(c)) {
        uint64_t now = ll_now_ms();
        if (now >= deadline) {
            return false;
        }
        if (poll(&p, 1, (int)(deadline - now)) > 0) {
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

/* Record why the connection ended; decide whether to give up (returns the close error). */
static int after_failure(sdk_client *c, int err, const char *detail, unsigned failures, bool ever_connected,
                         bool policy_stop)
{
    pthread_mutex_lock(&c->mu);
    if (err != 0) {
        c->last_err = err;
        LL_DETAIL(c->last_detail, sizeof(c->last_detail), "%s", detail[0] ? detail : sdk_strerror(err));
    }
    int give_up = 0;
    if (c->closing) {
        give_up = SDK_OK;
    } else if (policy_stop || err == SDK_ETOOBIG) {
        give_up = err; /* a frame over our limit would only come again after a resume */
    } else if (!ever_connected && !c->cfg.retry_on_first_connect) {
        give_up = err;
    } else if (c->cfg.max_reconnect_attempts && failures >= c->cfg.max_reconnect_attempts) {
        give_up = err;
    } else {
        give_up = -1; /* keep trying */
    }
    if (give_up >= 0) {
        c->close_err = give_up;
    } else {
        c->state = ever_connected ? SDK_STATE_RECONNECTING : SDK_STATE_CONNECTING;
        /* A wake-up meant for the connected loop (new work, an ack due) may still be pending
         * when the link fails; the next run() takes that work anyway. Left there, the next
         * connect would take it for sdk_close and give up the attempt, and with no backoff
         * to wait (and drain it) in, every attempt after it. Until CONNECTED only sdk_close
         * signals (ll_client_wake_locked), and it does so under mu: none is lost here. */
        c->wake_pending = false;
        ll_wake_drain(c->wake_fd);
    }
    c->first_done = c->first_done || give_up >= 0;
    pthread_cond_broadcast(&c->send_cv);
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
    pthread_cond_broadcast(&c->send_cv);
    pthread_mutex_unlock(&c->mu);
    if (lost) {
        emit(c, (sdk_event){.type = SDK_EVENT_SESSION_LOST,
                            .attempt = attempt,
                            .detail = "the server did not know the session; unacknowledged messages are sent again"});
    }
    emit(c, (sdk_event){.type = SDK_EVENT_CONNECTED, .attempt = attempt, .resumed = !lost && ever_connected});
}

void *ll_client_io_main(void *arg)
{
    sdk_client *c = arg;
    ll_io_self = c;
    pthread_setname_np(pthread_self(), "lifeline-client"); /* for top -H, perf, gdb */
    uint64_t rng = ll_now_us() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ULL;
    unsigned failures = 0;
    bool ever_connected = false;
    int close_err = SDK_OK;
    for (;;) {
        ll_link l = {.fd = -1};
        bool lost = false;
        emit(c, (sdk_event){.type = SDK_EVENT_CONNECTING, .attempt = failures + 1});
        int err = establish(c, &l, &lost);
        bool ran = err == 0; /* a session ran: its end is not a failed attempt */
        if (ran) {
            connected(c, &l, ever_connected, failures + 1, lost);
            failures = 0;
            ever_connected = true;
            err = run(c, &l);
            if (err == 0) {
                goodbye(c, &l);
            }
        }
        char detail[256];
        LL_DETAIL(detail, sizeof(detail), "%s", l.detail);
        ll_link_close(&l);
        if (err != 0 && ran) {
            emit(c, (sdk_event){.type = SDK_EVENT_DISCONNECTED, .error = err, .detail = detail});
        }
        failures += err != 0 && !ran;
        ll_retry_verdict next = ll_retry_decide(c->cfg.reconnect_policy, (uint32_t)c->cfg.reconnect_min_ms,
                                                (uint32_t)c->cfg.reconnect_max_ms, ll_retry_cause(err, detail),
                                                failures + 1, next_random(&rng));
        close_err = after_failure(c, err == 0 ? SDK_OK : err, detail, failures, ever_connected, next.stop && err);
        if (close_err >= 0) {
            break;
        }
        uint32_t delay = next.delay_ms;
        emit(c, (sdk_event){.type = SDK_EVENT_RECONNECTING,
                            .error = err,
                            .detail = detail,
                            .attempt = failures + 1,
                            .delay_ms = delay});
        if (backoff_wait(c, delay)) {
            after_failure(c, SDK_OK, "", failures, ever_connected, false);
            close_err = SDK_OK;
            break;
        }
    }
    set_state(c, SDK_STATE_CLOSED);
    char why[256] = "";
    if (close_err != SDK_OK) {
        sdk_last_error(c, why, sizeof(why));
    }
    emit(c, (sdk_event){.type = SDK_EVENT_CLOSED, .error = close_err, .detail = why});
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->recv_cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
