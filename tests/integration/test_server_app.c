/*
 * The server library from an application's point of view: the liveness view follows a
 * client that vanishes, a client that stops reading cannot grow the server's memory, and two
 * server application threads exchange messages both ways with several clients through
 * injected faults, exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faultproxy.h"
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The only session's entry in the liveness view (fails unless there is exactly one). */
static sdk_session_info only_session(sdk_server *srv)
{
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    sdk_session_info one = info[0];
    free(info);
    return one;
}

static size_t session_count(sdk_server *srv)
{
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(srv, &info, &n), SDK_OK);
    free(info);
    return n;
}

/* ---- a vanished client: missed heartbeats, detached (heartbeat timeout), expired ---- */

static void test_liveness_of_vanished_client(void **state)
{
    (void)state;
    enum { INTERVAL = 200, TIMEOUT = 600, TTL = 800 };
    ht_server hs;
    ht_sevents sev;
    sdk_server_config scfg;
    ht_server_config(&scfg);
    scfg.heartbeat_min_ms = 100;
    scfg.session_ttl_ms = TTL;
    ht_sevents_init(&sev);
    ht_sevents_attach(&sev, &scfg);
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);
    fp_proxy *p = NULL;
    assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", hs.port, &p), 0);

    sdk_config cfg;
    ht_client_config(&cfg, fp_port(p));
    cfg.heartbeat_interval_ms = INTERVAL;
    cfg.heartbeat_timeout_ms = TIMEOUT;
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 100;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_send(c, "x", 1, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);

    sdk_session_info s = only_session(hs.srv);
    assert_int_equal(s.state, SDK_SESSION_STATE_CONNECTED);
    assert_int_equal(s.missed_heartbeats, 0);
    assert_int_equal(s.received, 1);
    uint64_t id = s.id;

    /* The link goes silent: the view counts missed heartbeats while still connected. */
    fp_set_blackhole(p, true);
    uint64_t cut = ht_now_ms();
    ht_sleep_ms(TIMEOUT - 150);
    s = only_session(hs.srv);
    assert_int_equal(s.state, SDK_SESSION_STATE_CONNECTED);
    assert_true(s.missed_heartbeats >= 1);

    /* Then it is detached for heartbeat timeout, within the announced timeout + slack. */
    ht_sevent e;
    assert_true(ht_sevents_wait(&sev, SDK_SESSION_DETACHED, id, 0, 3000, &e) >= 0);
    uint64_t detached = ht_now_ms();
    assert_int_equal(e.cause, SDK_CAUSE_HEARTBEAT_TIMEOUT);
    assert_true(detached - cut >= TIMEOUT - 250); /* the last bytes may predate the cut */
    printf("server detached the blackholed client after %llu ms (timeout %d)\n", (unsigned long long)(detached - cut),
           TIMEOUT);
    s = only_session(hs.srv);
    assert_int_equal(s.state, SDK_SESSION_STATE_DETACHED);
    assert_int_equal(s.last_cause, SDK_CAUSE_HEARTBEAT_TIMEOUT);

    /* The client cannot get through (new connections are blackholed too): expired at the TTL. */
    assert_true(ht_sevents_wait(&sev, SDK_SESSION_EXPIRED, id, 0, TTL + 3000, &e) >= 0);
    uint64_t expired = ht_now_ms();
    assert_true(expired - detached >= TTL - 50);
    assert_int_equal(session_count(hs.srv), 0);
    assert_int_equal(sdk_server_send(hs.srv, id, "y", 1, 0), SDK_ENOTFOUND);

    sdk_destroy(c);
    fp_stop(p);
    ht_server_destroy(&hs);
    ht_sevents_free(&sev);
}

/* ---- a client that stops reading: bounded by the window and the queue ---- */

static void test_slow_reader_is_bounded(void **state)
{
    (void)state;
    enum { WINDOW = 16, QUEUE = 100 };
    ht_server hs;
    sdk_server_config scfg;
    ht_server_config(&scfg);
    scfg.window_messages = WINDOW;
    scfg.queue_max_messages = QUEUE;
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK);
    sdk_config cfg;
    ht_client_config(&cfg, hs.port);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_send(c, "hello", 5, HT_WAIT_MS), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_server_recv(hs.srv, &m, HT_WAIT_MS), SDK_OK);
    uint64_t id = m->session;
    sdk_message_free(m);

    /* The client reads nothing: the server application can queue QUEUE messages, no more. */
    char text[16];
    int sent = 0;
    for (; sent < 10 * QUEUE; sent++) {
        snprintf(text, sizeof(text), "%d", sent);
        sdk_err rc = sdk_server_send(hs.srv, id, text, strlen(text), 0);
        if (rc != SDK_OK) {
            assert_int_equal(rc, SDK_EQUEUEFULL);
            break;
        }
    }
    assert_int_equal(sent, QUEUE);
    ht_sleep_ms(200); /* let the I/O thread write what the window allows */
    sdk_session_info s = only_session(hs.srv);
    assert_true(s.unacked <= WINDOW);
    assert_int_equal(s.queued + s.unacked, QUEUE);
    assert_int_equal(sdk_server_send(hs.srv, id, "more", 4, 100), SDK_EQUEUEFULL);

    /* Once it reads, everything arrives, in order, and the queue drains. */
    for (int n = 0; n < QUEUE; n++) {
        assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
        snprintf(text, sizeof(text), "%d", n);
        assert_int_equal(m->len, strlen(text));
        assert_memory_equal(m->data, text, m->len);
        sdk_message_free(m);
    }
    assert_int_equal(sdk_server_send(hs.srv, id, "more", 4, HT_WAIT_MS), SDK_OK);
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

/* ---- two server threads, several clients, both directions, through resets ---- */

#define APP_CLIENTS 3
#define UP_MSGS     5000 /* per client, client -> server */
#define DOWN_MSGS   5000 /* per client, server -> client */

typedef struct up_log {
    pthread_mutex_t mu;
    uint64_t session[APP_CLIENTS]; /* learned from the first message of each client */
    uint32_t count[APP_CLIENTS];   /* messages received from each */
    uint8_t seen[APP_CLIENTS][UP_MSGS];
    int errors;                        /* duplicates, unknown senders, seq going backwards */
    uint64_t last_seq[2][APP_CLIENTS]; /* per server thread: seq must rise per session */
} up_log;

typedef struct server_reader {
    sdk_server *srv;
    up_log *log;
    int index;
} server_reader;

static void record_up(up_log *log, int reader, const sdk_message *m)
{
    int client = -1;
    int n = -1;
    char text[32];
    size_t len = m->len < sizeof(text) - 1 ? m->len : sizeof(text) - 1;
    memcpy(text, m->data, len);
    text[len] = '\0';
    pthread_mutex_lock(&log->mu);
    if (sscanf(text, "c%d-%d", &client, &n) != 2 || client < 0 || client >= APP_CLIENTS || n < 0 || n >= UP_MSGS ||
        log->seen[client][n] || m->seq <= log->last_seq[reader][client]) {
        log->errors++;
    } else {
        log->seen[client][n] = 1;
        log->count[client]++;
        log->session[client] = m->session;
        log->last_seq[reader][client] = m->seq;
    }
    pthread_mutex_unlock(&log->mu);
}

static void *server_reader_main(void *arg)
{
    server_reader *r = arg;
    sdk_message *m = NULL;
    while (sdk_server_recv(r->srv, &m, -1) == SDK_OK) {
        record_up(r->log, r->index, m);
        sdk_message_free(m);
    }
    return NULL;
}

typedef struct app_client {
    int id;
    sdk_client *c;
    int send_err;
    int recv_err;
    int received; /* server -> client messages received, in order */
    int mismatch; /* first out-of-order index, or -1 */
} app_client;

static void *client_sender(void *arg)
{
    app_client *ac = arg;
    char text[32];
    for (int n = 0; n < UP_MSGS && ac->send_err == SDK_OK; n++) {
        snprintf(text, sizeof(text), "c%d-%d", ac->id, n);
        ac->send_err = sdk_send(ac->c, text, strlen(text), -1);
        if (n % 10 == 0) {
            ht_sleep_ms(1); /* spread the stream over the resets */
        }
    }
    return NULL;
}

static void *client_receiver(void *arg)
{
    app_client *ac = arg;
    char want[32];
    while (ac->received < DOWN_MSGS) {
        sdk_message *m = NULL;
        ac->recv_err = sdk_recv(ac->c, &m, 30000);
        if (ac->recv_err != SDK_OK) {
            return NULL;
        }
        snprintf(want, sizeof(want), "s-%d", ac->received);
        if (ac->mismatch < 0 && (m->len != strlen(want) || memcmp(m->data, want, m->len) != 0)) {
            ac->mismatch = ac->received;
        }
        ac->received++;
        sdk_message_free(m);
    }
    return NULL;
}

/* The second server thread's other job: stream to every session once it is known. */
typedef struct server_writer {
    sdk_server *srv;
    up_log *log;
    int err;
} server_writer;

static void *server_writer_main(void *arg)
{
    server_writer *w = arg;
    char text[32];
    for (int client = 0; client < APP_CLIENTS; client++) {
        uint64_t id = 0;
        while (id == 0) {
            pthread_mutex_lock(&w->log->mu);
            id = w->log->session[client];
            pthread_mutex_unlock(&w->log->mu);
            if (id == 0) {
                ht_sleep_ms(5);
            }
        }
        for (int n = 0; n < DOWN_MSGS && w->err == SDK_OK; n++) {
            snprintf(text, sizeof(text), "s-%d", n);
            w->err = sdk_server_send(w->srv, id, text, strlen(text), 30000);
        }
    }
    return NULL;
}

static void test_two_app_threads_both_ways_through_resets(void **state)
{
    (void)state;
    ht_server hs;
    sdk_server_config scfg;
    ht_server_config(&scfg);
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK);
    fp_proxy *p = NULL;
    assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", hs.port, &p), 0);

    up_log *log = calloc(1, sizeof(*log));
    assert_non_null(log);
    pthread_mutex_init(&log->mu, NULL);
    server_reader readers[2];
    pthread_t reader_threads[2];
    for (int i = 0; i < 2; i++) {
        readers[i] = (server_reader){.srv = hs.srv, .log = log, .index = i};
        assert_int_equal(pthread_create(&reader_threads[i], NULL, server_reader_main, &readers[i]), 0);
    }
    server_writer writer = {.srv = hs.srv, .log = log, .err = SDK_OK};
    pthread_t writer_thread;
    assert_int_equal(pthread_create(&writer_thread, NULL, server_writer_main, &writer), 0);

    app_client clients[APP_CLIENTS];
    pthread_t senders[APP_CLIENTS], receivers[APP_CLIENTS];
    for (int i = 0; i < APP_CLIENTS; i++) {
        sdk_config cfg;
        ht_client_config(&cfg, fp_port(p));
        cfg.reconnect_min_ms = 10;
        cfg.reconnect_max_ms = 200;
        cfg.heartbeat_interval_ms = 500;
        cfg.retry_on_first_connect = true; /* a reset may hit the very first connect */
        clients[i] = (app_client){.id = i, .send_err = SDK_OK, .recv_err = SDK_OK, .mismatch = -1};
        assert_int_equal(sdk_connect(&cfg, &clients[i].c), SDK_OK);
    }
    assert_int_equal(fp_random_resets(p, 100, 300), 0);
    for (int i = 0; i < APP_CLIENTS; i++) {
        assert_int_equal(pthread_create(&senders[i], NULL, client_sender, &clients[i]), 0);
        assert_int_equal(pthread_create(&receivers[i], NULL, client_receiver, &clients[i]), 0);
    }
    for (int i = 0; i < 5; i++) { /* besides the random ones: every client is hit mid-stream */
        ht_sleep_ms(80);
        fp_reset_all(p);
    }
    for (int i = 0; i < APP_CLIENTS; i++) {
        pthread_join(senders[i], NULL);
        pthread_join(receivers[i], NULL);
    }
    pthread_join(writer_thread, NULL);
    assert_int_equal(fp_random_resets(p, 0, 0), 0);
    for (int i = 0; i < APP_CLIENTS; i++) {
        assert_int_equal(clients[i].send_err, SDK_OK);
        assert_int_equal(clients[i].recv_err, SDK_OK);
        assert_int_equal(clients[i].received, DOWN_MSGS);
        assert_int_equal(clients[i].mismatch, -1);
        assert_int_equal(sdk_flush(clients[i].c, 30000), SDK_OK);
        sdk_stats st;
        assert_int_equal(sdk_get_stats(clients[i].c, &st), SDK_OK);
        assert_true(st.reconnects >= 1);
        assert_int_equal(st.sessions_lost, 0);
    }
    assert_int_equal(writer.err, SDK_OK);
    fp_stats fs;
    fp_get_stats(p, &fs);
    assert_true(fs.resets >= APP_CLIENTS);
    printf("two app threads: %d clients x (%d up + %d down) exact through %llu resets\n", APP_CLIENTS, UP_MSGS,
           DOWN_MSGS, (unsigned long long)fs.resets);

    for (int i = 0; i < APP_CLIENTS; i++) {
        sdk_destroy(clients[i].c);
    }
    ht_server_stop(&hs); /* wakes the readers with SDK_ECLOSED */
    for (int i = 0; i < 2; i++) {
        pthread_join(reader_threads[i], NULL);
    }
    assert_int_equal(log->errors, 0);
    for (int i = 0; i < APP_CLIENTS; i++) {
        assert_int_equal(log->count[i], UP_MSGS);
    }
    pthread_mutex_destroy(&log->mu);
    free(log);
    fp_stop(p);
    ht_server_destroy(&hs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liveness_of_vanished_client),
        cmocka_unit_test(test_slow_reader_is_bounded),
        cmocka_unit_test(test_two_app_threads_both_ways_through_resets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
