/*
 * Lifeline measurements, through the public API only: an in-process sdk_server with one
 * sink or echo thread, and sdk clients on loopback. Every payload starts with a 64-bit
 * counter, and every receiver checks it: a lost, duplicated or reordered message stops
 * the benchmark with a diagnosis instead of producing a figure.
 */
#include "bench.h"

#include <lifeline/sdk.h>
#include <lifeline/server.h>
#include <lifeline/store.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define WAIT_MS 10000

/* ---- in-process server: sink or echo, on one thread or in the message callback ---- */

typedef struct bsrv {
    sdk_server *srv;
    uint16_t port;
    bool echo;
    bool callback; /* on_message on the I/O thread instead of the worker thread */
    pthread_t thread;
    atomic_ulong taken;     /* messages returned by sdk_server_recv */
    atomic_ulong bad;       /* wrong counter or size */
    atomic_int send_err;    /* first echo failure */
    uint64_t session, next; /* the thread that takes messages only */
} bsrv;

/* The session store the next servers use (bench_sdk_use_store), and how. */
static struct {
    sdk_store *store;
    sdk_store_sync sync;
} bstore;

void bench_sdk_use_store(sdk_store *store, int sync)
{
    bstore.store = store;
    bstore.sync = (sdk_store_sync)sync;
}

/* Check one message's counter, echo it if asked (from the callback: never waiting). Under
 * sync always the server acks by hand: the echo and the ack go to the store together. */
static void take(bsrv *s, sdk_message *m)
{
    if (m->session != s->session) { /* a new client starts counting from 0 */
        s->session = m->session;
        s->next = 0;
    }
    if (m->len < 8 || bench_get_u64(m->data) != s->next) {
        atomic_fetch_add(&s->bad, 1);
    }
    s->next++;
    sdk_err rc = SDK_OK;
    bool manual = bstore.sync == SDK_STORE_SYNC_ALWAYS && bstore.store;
    if (s->echo) {
        rc = sdk_server_reply(s->srv, m->session, manual ? m->seq : 0, NULL, m->data, m->len, -1);
    } else if (manual) {
        rc = sdk_server_ack(s->srv, m->session, m->seq);
    }
    if (rc != SDK_OK && rc != SDK_ECLOSED) {
        int none = 0;
        atomic_compare_exchange_strong(&s->send_err, &none, (int)rc);
    }
    sdk_message_free(m);
    atomic_fetch_add(&s->taken, 1);
}

static void *serve(void *arg)
{
    bsrv *s = arg;
    sdk_message *m = NULL;
    while (sdk_server_recv(s->srv, &m, -1) == SDK_OK) {
        take(s, m);
    }
    return NULL;
}

static void on_server_message(sdk_message *m, void *user)
{
    take(user, m);
}

typedef enum bsrv_mode { BSRV_SINK, BSRV_ECHO, BSRV_ECHO_CALLBACK } bsrv_mode;

static sdk_err bsrv_start(bsrv *s, const bench_opts *o, bsrv_mode mode, uint16_t port, sdk_server_event_fn fn,
                          void *user)
{
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    bool callback = mode == BSRV_ECHO_CALLBACK;
    memset(s, 0, sizeof *s);
    s->echo = mode != BSRV_SINK;
    s->callback = callback;
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.listen = listen;
    cfg.cert_file = o->cert;
    cfg.key_file = o->key;
    cfg.on_event = fn;
    cfg.user = callback ? (void *)s : user;
    cfg.on_message = callback ? on_server_message : NULL;
    cfg.store = bstore.store;
    cfg.store_sync = bstore.sync;
    cfg.manual_ack = bstore.store && bstore.sync == SDK_STORE_SYNC_ALWAYS;
    /* Every client here comes from 127.0.0.1, as a flood would: the per-address limit (200 a
     * second, bursts of 400) refused some of the 1000 clients of the store's memory probe. */
    cfg.connect_rate_per_address = SDK_UNLIMITED;
    cfg.io_threads = o->io_threads > 0 ? (uint32_t)o->io_threads : cfg.io_threads;
    if (callback && fn) {
        bench_die("bsrv: one user pointer cannot serve both callbacks");
    }
    sdk_err rc = sdk_server_start(&cfg, &s->srv);
    if (rc != SDK_OK) {
        return rc;
    }
    s->port = sdk_server_port(s->srv);
    if (!callback && pthread_create(&s->thread, NULL, serve, s) != 0) {
        bench_die("cannot start the server thread");
    }
    return SDK_OK;
}

static void bsrv_start_or_die(bsrv *s, const bench_opts *o, bsrv_mode mode)
{
    sdk_err rc = bsrv_start(s, o, mode, 0, NULL, NULL);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        bench_die("sdk_server_start: %s: %s", sdk_errname(rc), detail);
    }
}

static void bsrv_destroy(bsrv *s)
{
    sdk_server_stop(s->srv);
    if (!s->callback) {
        pthread_join(s->thread, NULL);
    }
    sdk_server_destroy(s->srv);
    s->srv = NULL;
}

/* ---- clients ---- */

static void client_config(sdk_config *cfg, const bench_opts *o, uint16_t port)
{
    sdk_config_init(cfg);
    cfg->host = "127.0.0.1";
    cfg->port = port;
    cfg->ca_file = o->ca;
}

static sdk_client *connect_or_die(const sdk_config *cfg)
{
    sdk_client *c = NULL;
    sdk_err rc = sdk_connect(cfg, &c);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        bench_die("sdk_connect: %s: %s", sdk_errname(rc), detail);
    }
    return c;
}

/* What the watchdog prints if a phase hangs. */
static struct {
    sdk_client *client;
    bsrv *srv;
    atomic_ulong sent, received;
} g;

static void note_state(void)
{
    sdk_stats st = {0};
    if (g.client) {
        sdk_get_stats(g.client, &st);
    }
    fprintf(stderr,
            "  application: sent %lu, echoes received %lu; server thread took %lu (bad %lu)\n"
            "  client stats: state %s, msgs_sent %llu, msgs_received %llu, queue_depth %llu, queue_bytes %llu,\n"
            "                reconnects %llu, retransmits %llu, heartbeats %llu/%llu answered\n",
            atomic_load(&g.sent), atomic_load(&g.received), g.srv ? atomic_load(&g.srv->taken) : 0,
            g.srv ? atomic_load(&g.srv->bad) : 0, sdk_state_name(st.state), (unsigned long long)st.msgs_sent,
            (unsigned long long)st.msgs_received, (unsigned long long)st.queue_depth,
            (unsigned long long)st.queue_bytes, (unsigned long long)st.reconnects, (unsigned long long)st.retransmits,
            (unsigned long long)st.heartbeats_sent, (unsigned long long)st.heartbeats_answered);
    if (g.srv && g.srv->srv) {
        sdk_session_info *info = NULL;
        size_t n = 0;
        if (sdk_server_sessions(g.srv->srv, &info, &n) == SDK_OK) {
            for (size_t i = 0; i < n; i++) {
                fprintf(stderr, "  server session %016llx: %s, queued %llu, unacked %llu, received %llu\n",
                        (unsigned long long)info[i].id,
                        info[i].state == SDK_SESSION_STATE_CONNECTED ? "connected" : "detached",
                        (unsigned long long)info[i].queued, (unsigned long long)info[i].unacked,
                        (unsigned long long)info[i].received);
            }
            free(info);
        }
    }
}

/* ---- throughput ---- */

typedef struct echo_rx {
    sdk_client *c;
    size_t size;
    atomic_ulong total; /* set by the sender when done; ULONG_MAX until then */
    uint64_t last_ns;
    unsigned long bad;
} echo_rx;

static void *echo_receiver(void *arg)
{
    echo_rx *r = arg;
    unsigned long got = 0;
    while (got < atomic_load(&r->total)) {
        sdk_message *m = NULL;
        sdk_err rc = sdk_recv(r->c, &m, 200);
        if (rc == SDK_ETIMEDOUT) {
            continue;
        }
        if (rc != SDK_OK) {
            bench_die("echo: sdk_recv: %s after %lu echoes", sdk_errname(rc), got);
        }
        if (m->len != r->size || bench_get_u64(m->data) != got) {
            r->bad++;
        }
        got++;
        atomic_store(&g.received, got);
        r->last_ns = bench_now_ns();
        sdk_message_free(m);
    }
    return NULL;
}

/* The tight sender loop: sdk_send with no timeout until the duration is over. */
static unsigned long send_for(sdk_client *c, size_t size, double duration_s, uint64_t t0)
{
    uint8_t *buf = malloc(size);
    memset(buf, 'x', size);
    uint64_t end = t0 + (uint64_t)(duration_s * 1e9);
    unsigned long n = 0;
    do {
        for (int k = 0; k < 64; k++, n++) {
            bench_put_u64(buf, n);
            sdk_err rc = sdk_send(c, buf, size, -1);
            if (rc != SDK_OK) {
                bench_die("sdk_send: %s after %lu messages", sdk_errname(rc), n);
            }
        }
        atomic_store(&g.sent, n);
    } while (bench_now_ns() < end);
    free(buf);
    return n;
}

/* The client side of one throughput run against the server on port; *sent is the count.
 * Dies with a diagnosis on a send, flush or echo failure. */
static double client_throughput(const bench_opts *o, uint16_t port, bool echo, size_t size, unsigned long *sent)
{
    sdk_config cfg;
    client_config(&cfg, o, port);
    sdk_client *c = connect_or_die(&cfg);
    g.client = c;
    atomic_store(&g.sent, 0);
    atomic_store(&g.received, 0);
    echo_rx rx = {.c = c, .size = size, .total = ULONG_MAX};
    pthread_t rt;
    if (echo && pthread_create(&rt, NULL, echo_receiver, &rx) != 0) {
        bench_die("cannot start the echo receiver");
    }
    uint64_t t0 = bench_now_ns(), t1;
    unsigned long n = send_for(c, size, o->duration_s, t0);
    if (echo) {
        atomic_store(&rx.total, n);
        pthread_join(rt, NULL);
        t1 = rx.last_ns;
    } else {
        sdk_err rc = sdk_flush(c, -1);
        t1 = bench_now_ns();
        if (rc != SDK_OK) {
            bench_die("sdk_flush: %s", sdk_errname(rc));
        }
    }
    if (rx.bad) {
        note_state();
        bench_die("echo %zu B: %lu echoes out of order", size, rx.bad);
    }
    g.client = NULL;
    sdk_destroy(c);
    *sent = n;
    bench_last_sent = n;
    return (double)n / ((double)(t1 - t0) / 1e9);
}

double bench_sdk_throughput(const bench_opts *o, bool echo, size_t size)
{
    static char phase[64];
    snprintf(phase, sizeof phase, "lifeline %s %zu B", echo ? "echo" : "sink", size);
    bsrv s;
    bsrv_start_or_die(&s, o, echo ? BSRV_ECHO : BSRV_SINK);
    g.srv = &s;
    bench_phase(phase, (int)o->duration_s + 60, note_state);
    unsigned long n = 0;
    double rate = client_throughput(o, s.port, echo, size, &n);
    /* The server thread counts a message just after sdk_server_recv returns it. */
    for (int i = 0; i < 1000 && atomic_load(&s.taken) < n; i++) {
        bench_sleep_ms(1);
    }
    if (atomic_load(&s.taken) != n || atomic_load(&s.bad) || atomic_load(&s.send_err)) {
        note_state();
        bench_die("%s: sent %lu, server took %lu (%lu out of order), echo send error %s", phase, n,
                  atomic_load(&s.taken), atomic_load(&s.bad), sdk_errname(atomic_load(&s.send_err)));
    }
    bench_phase(NULL, 0, NULL);
    g.srv = NULL;
    bsrv_destroy(&s);
    return rate;
}

/* lifeline-server acknowledges a message once its sink or echo thread took it, so a flush
 * returning (sink) or every echo back in order (echo) means the server had them all. */
double bench_sdk_throughput_at(const bench_opts *o, uint16_t port, bool echo, size_t size)
{
    static char phase[64];
    snprintf(phase, sizeof phase, "lifeline %s %zu B, separate process", echo ? "echo" : "sink", size);
    bench_phase(phase, (int)o->duration_s + 60, note_state);
    unsigned long n = 0;
    double rate = client_throughput(o, port, echo, size, &n);
    bench_phase(NULL, 0, NULL);
    return rate;
}

/* ---- detached sessions, for the store's memory per session ---- */

void bench_sdk_detached_sessions(const bench_opts *o, int n)
{
    bsrv s;
    bsrv_start_or_die(&s, o, BSRV_SINK);
    sdk_config cfg;
    client_config(&cfg, o, s.port);
    sdk_client **cs = calloc((size_t)n, sizeof *cs);
    for (int i = 0; i < n; i++) {
        cs[i] = connect_or_die(&cfg);
    }
    sdk_session_info *info = NULL;
    size_t k = 0;
    uint8_t msg[64] = {0};
    if (sdk_server_sessions(s.srv, &info, &k) != SDK_OK || k != (size_t)n) {
        bench_die("store: %zu sessions on the server, not %d", k, n);
    }
    for (size_t j = 0; j < k; j++) { /* one each, which the client never takes */
        (void)sdk_server_send(s.srv, info[j].id, msg, sizeof msg, -1);
    }
    sdk_sessions_free(info);
    bench_sleep_ms(200);
    sdk_server_stop(s.srv); /* hands every session over: claimed and written */
    for (int i = 0; i < n; i++) {
        sdk_destroy(cs[i]);
    }
    free(cs);
    bsrv_destroy(&s);
}

/* ---- request/reply latency ---- */

/* One ping-pong: round trip i is request i and its echo; the first `warm` are not kept. */
typedef struct pingpong {
    sdk_client *c;
    int warm, n, i;
    double *v;
    uint64_t t0;
    uint8_t *buf;
    size_t size;
    sdk_err err;        /* first failure, which ends the run */
    pthread_mutex_t mu; /* callback mode: done and err, for the waiting main thread */
    pthread_cond_t cv;
    bool done;
} pingpong;

static sdk_err pingpong_send(pingpong *p)
{
    bench_put_u64(p->buf, (uint64_t)p->i);
    p->t0 = bench_now_ns();
    return sdk_send(p->c, p->buf, p->size, -1);
}

/* The echo of request p->i has come: check and record it. Returns true while more remain. */
static bool pingpong_reply(pingpong *p, sdk_message *m)
{
    uint64_t t1 = bench_now_ns();
    if (m->len != p->size || bench_get_u64(m->data) != (uint64_t)p->i) {
        bench_die("latency: reply %d is not the echo of request %d", p->i, p->i);
    }
    sdk_message_free(m);
    if (p->i >= p->warm) {
        p->v[p->i - p->warm] = (double)(t1 - p->t0) / 1e3;
    }
    return ++p->i < p->warm + p->n;
}

/* Callback mode: the client's I/O thread sends the next request from the reply's callback. */
static void on_reply(sdk_message *m, void *user)
{
    pingpong *p = user;
    sdk_err rc = pingpong_reply(p, m) ? pingpong_send(p) : SDK_OK;
    if (rc != SDK_OK || p->i == p->warm + p->n) {
        pthread_mutex_lock(&p->mu);
        p->err = rc;
        p->done = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* The blocking ping-pong: sdk_send, then sdk_recv its echo. */
static void pingpong_blocking(pingpong *p)
{
    bool more = true;
    while (more && p->err == SDK_OK) {
        sdk_message *m = NULL;
        p->err = pingpong_send(p);
        if (p->err == SDK_OK && (p->err = sdk_recv(p->c, &m, -1)) == SDK_OK) {
            more = pingpong_reply(p, m);
        }
    }
}

/* The callback ping-pong: started here, driven by on_reply on the client's I/O thread. */
static void pingpong_callbacks(pingpong *p)
{
    pthread_mutex_lock(&p->mu);
    p->err = pingpong_send(p);
    while (p->err == SDK_OK && !p->done) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

/* One ping-pong run against the echo server on port; the percentiles of its round trips. */
static bench_latency client_latency(const bench_opts *o, uint16_t port, bool callbacks, size_t size)
{
    pingpong p = {.warm = o->latency_iters / 20,
                  .n = o->latency_iters,
                  .size = size,
                  .mu = PTHREAD_MUTEX_INITIALIZER,
                  .cv = PTHREAD_COND_INITIALIZER};
    p.v = malloc(sizeof(double) * (size_t)p.n);
    p.buf = malloc(size);
    memset(p.buf, 'x', size);
    sdk_config cfg;
    client_config(&cfg, o, port);
    cfg.on_message = callbacks ? on_reply : NULL;
    cfg.user = &p;
    p.c = connect_or_die(&cfg);
    g.client = p.c;
    bench_phase(callbacks ? "lifeline request/reply latency, callbacks" : "lifeline request/reply latency",
                60 + o->latency_iters / 1000, note_state);
    if (callbacks) {
        pingpong_callbacks(&p);
    } else {
        pingpong_blocking(&p);
    }
    if (p.err != SDK_OK) {
        bench_die("latency: %s at round trip %d", sdk_errname(p.err), p.i);
    }
    bench_phase(NULL, 0, NULL);
    g.client = NULL;
    sdk_stats st = {0};
    sdk_get_stats(p.c, &st);
    sdk_destroy(p.c);
    double rts = (double)(p.warm + p.n);
    bench_latency l = bench_latency_of(p.v, (size_t)p.n);
    l.acks_sent_per_rt = (double)st.acks_sent / rts;
    l.acks_received_per_rt = (double)st.acks_received / rts;
    free(p.v);
    free(p.buf);
    return l;
}

bench_latency bench_sdk_latency_size(const bench_opts *o, bool callbacks, size_t size)
{
    bsrv s;
    bsrv_start_or_die(&s, o, callbacks ? BSRV_ECHO_CALLBACK : BSRV_ECHO);
    g.srv = &s;
    bench_latency l = client_latency(o, s.port, callbacks, size);
    g.srv = NULL;
    bsrv_destroy(&s);
    return l;
}

bench_latency bench_sdk_latency(const bench_opts *o, bool callbacks)
{
    return bench_sdk_latency_size(o, callbacks, 64);
}

bench_latency bench_sdk_latency_at(const bench_opts *o, uint16_t port)
{
    return client_latency(o, port, false, 64);
}

/* ---- fresh connections ---- */

double bench_sdk_connect_ms(const bench_opts *o)
{
    bsrv s;
    bsrv_start_or_die(&s, o, BSRV_SINK);
    sdk_config cfg;
    client_config(&cfg, o, s.port);
    bench_phase("lifeline sdk_connect", 60, NULL);
    double *v = malloc(sizeof(double) * (size_t)o->connects);
    for (int i = 0; i < o->connects; i++) {
        uint64_t t0 = bench_now_ns();
        sdk_client *c = connect_or_die(&cfg);
        v[i] = (double)(bench_now_ns() - t0) / 1e6;
        sdk_destroy(c);
    }
    bench_phase(NULL, 0, NULL);
    bsrv_destroy(&s);
    double m = bench_median(v, o->connects);
    free(v);
    return m;
}

/* ---- forced reconnect: the client's TCP connection is cut under it ---- */

/* The session's current client port, once the server reports it connected on a port other
 * than old; 0 on timeout. */
static uint16_t session_port(sdk_server *srv, uint16_t old)
{
    for (int i = 0; i < WAIT_MS; i++) {
        sdk_session_info *info = NULL;
        size_t n = 0;
        uint16_t port = 0;
        if (sdk_server_sessions(srv, &info, &n) == SDK_OK && n == 1 && info[0].state == SDK_SESSION_STATE_CONNECTED) {
            const char *colon = strrchr(info[0].peer_addr, ':');
            port = colon ? (uint16_t)atoi(colon + 1) : 0;
        }
        free(info);
        if (port && port != old) {
            return port;
        }
        bench_sleep_ms(1);
    }
    return 0;
}

/* Before each cut: message n (payloads start with their counter, which the server checks)
 * and its acknowledgement. The server sends its session ticket right behind the Welcome and
 * the acknowledgement after it, so once sdk_flush returns the last connection's handshake
 * work is over at both ends, as it is on the raw side, which reads the server's byte (sent
 * after the server's ticket) before its next handshake. */
static void settle(sdk_client *c, uint64_t n)
{
    uint8_t msg[8];
    bench_put_u64(msg, n);
    sdk_err rc = sdk_send(c, msg, sizeof msg, WAIT_MS);
    if (rc == SDK_OK) {
        rc = sdk_flush(c, WAIT_MS);
    }
    if (rc != SDK_OK) {
        bench_die("reconnect: message %llu before the cut: %s", (unsigned long long)n, sdk_errname(rc));
    }
}

bench_reconnect bench_sdk_reconnect(const bench_opts *o)
{
    bench_reconnect r = {0};
    bsrv s;
    bsrv_start_or_die(&s, o, BSRV_SINK);
    bench_events e;
    bench_events_init(&e);
    sdk_config cfg;
    client_config(&cfg, o, s.port);
    cfg.reconnect_min_ms = 0; /* reconnect at once: measure the reconnect, not the backoff */
    cfg.reconnect_max_ms = 0;
    cfg.on_event = bench_on_event;
    cfg.user = &e;
    sdk_client *c = connect_or_die(&cfg);
    g.client = c;
    g.srv = &s;
    bench_phase("lifeline forced reconnect", 60, note_state);
    double *v = malloc(sizeof(double) * (size_t)o->reconnects);
    double *attempt = malloc(sizeof(double) * (size_t)o->reconnects);
    uint16_t port = 0;
    for (int i = 0; i < o->reconnects; i++) {
        settle(c, (uint64_t)i);
        port = session_port(s.srv, port);
        int fd = port ? bench_find_socket(port, s.port) : -1;
        if (fd < 0) {
            bench_die("reconnect: cannot find the client's socket (session port %u)", port);
        }
        pthread_mutex_lock(&e.mu);
        unsigned before = e.t.connected;
        pthread_mutex_unlock(&e.mu);
        uint64_t t0 = bench_now_ns();
        shutdown(fd, SHUT_RDWR);
        if (!bench_events_wait(&e, &e.t.connected, before)) {
            bench_die("reconnect %d: no SDK_EVENT_CONNECTED within %d ms", i, WAIT_MS);
        }
        pthread_mutex_lock(&e.mu);
        v[i] = (double)(e.t.connected_ns - t0) / 1e6;
        attempt[i] = (double)(e.t.connected_ns - e.t.attempt_ns) / 1e6;
        pthread_mutex_unlock(&e.mu);
    }
    bench_phase(NULL, 0, NULL);
    if (atomic_load(&s.taken) != (unsigned long)o->reconnects || atomic_load(&s.bad)) {
        bench_die("reconnect: the server took %lu of %d messages, %lu out of order", atomic_load(&s.taken),
                  o->reconnects, atomic_load(&s.bad));
    }
    sdk_stats st;
    sdk_get_stats(c, &st);
    r.median_ms = bench_median(v, o->reconnects);
    r.attempt_median_ms = bench_median(attempt, o->reconnects);
    r.reconnects = st.reconnects;
    r.handshakes_full = st.handshakes_full;
    r.handshakes_resumed = st.handshakes_resumed;
    r.sessions_lost = st.sessions_lost;
    r.resumed_events = e.t.resumed;
    g.client = NULL;
    g.srv = NULL;
    sdk_destroy(c);
    bsrv_destroy(&s);
    bench_events_free(&e);
    free(v);
    free(attempt);
    return r;
}

/* ---- server restart ---- */

bench_restart bench_sdk_restart(const bench_opts *o)
{
    bench_restart r = {0};
    bsrv a, b;
    bsrv_start_or_die(&a, o, BSRV_SINK);
    uint16_t port = a.port;
    bench_events e;
    bench_events_init(&e);
    sdk_config cfg;
    client_config(&cfg, o, port);
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 100;
    cfg.on_event = bench_on_event;
    cfg.user = &e;
    sdk_client *c = connect_or_die(&cfg);
    bench_phase("lifeline server restart", 60, NULL);
    sdk_stats st0;
    sdk_get_stats(c, &st0);
    bsrv_destroy(&a);
    if (!bench_events_wait(&e, &e.t.disconnected, 0)) {
        bench_die("restart: the client did not notice the server stopping");
    }
    bench_sleep_ms(150); /* let the client settle into refused attempts and backoff */
    pthread_mutex_lock(&e.mu);
    unsigned before = e.t.connected;
    pthread_mutex_unlock(&e.mu);
    sdk_err rc = SDK_ECONNECT;
    for (int i = 0; i < 100 && rc == SDK_ECONNECT; i++) {
        rc = bsrv_start(&b, o, BSRV_SINK, port, NULL, NULL);
        if (rc == SDK_ECONNECT) {
            bench_sleep_ms(20);
        }
    }
    uint64_t t0 = bench_now_ns();
    if (rc != SDK_OK) {
        bench_die("restart: sdk_server_start on port %u: %s", port, sdk_errname(rc));
    }
    if (!bench_events_wait(&e, &e.t.connected, before)) {
        bench_die("restart: the client did not reconnect within %d ms", WAIT_MS);
    }
    bench_phase(NULL, 0, NULL);
    pthread_mutex_lock(&e.mu);
    r.connected_ms = ((double)e.t.connected_ns - (double)t0) / 1e6;
    r.backoff_ms = ((double)e.t.attempt_ns - (double)t0) / 1e6;
    r.session_lost = e.t.lost > 0;
    pthread_mutex_unlock(&e.mu);
    if (r.backoff_ms < 0) {
        r.backoff_ms = 0; /* the attempt began while the new server was starting */
    }
    sdk_stats st1;
    sdk_get_stats(c, &st1);
    r.resumed_tls = st1.handshakes_resumed > st0.handshakes_resumed;
    sdk_destroy(c);
    bsrv_destroy(&b);
    bench_events_free(&e);
    return r;
}
