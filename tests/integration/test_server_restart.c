/*
 * The server goes away under its clients.
 *
 * build/bin/lifeline-server is stopped under a streaming client (SIGTERM: a graceful stop;
 * SIGKILL: a crash) and started again on the same port. The new process does not know the
 * session, so the client opens a new one and sends again what was not acknowledged: at
 * least once, in order, duplicates only across the restart.
 *
 * The in-process server is stopped with sdk_server_stop under connected clients: they are
 * told why (GOING_AWAY), give up after max_reconnect_attempts, and newcomers are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define MAX_IDS    20000
#define STREAM_MS  1500 /* how long the sender streams */
#define KILL_AFTER 300  /* echoes seen before the server is stopped */
#define DOWN_MS    200  /* how long the server stays down */

typedef struct stream {
    sdk_client *c;
    pthread_mutex_t mu;
    /* sender */
    uint32_t sent; /* ids 1..sent were queued */
    sdk_err send_err;
    /* receiver: every id in arrival order */
    uint32_t got[2 * MAX_IDS];
    size_t ngot;
    sdk_err recv_err;
    bool stop;
    sdk_stats stats; /* the client's, taken after it closed */
} stream;

static void *sender_main(void *arg)
{
    stream *s = arg;
    uint8_t buf[64];
    uint64_t end = ht_now_ms() + STREAM_MS;
    for (uint32_t id = 1; id < MAX_IDS && ht_now_ms() < end; id++) {
        memcpy(buf, &id, sizeof(id));
        ht_fill(buf + sizeof(id), sizeof(buf) - sizeof(id), id);
        sdk_err rc = sdk_send(s->c, buf, sizeof(buf), HT_WAIT_MS);
        pthread_mutex_lock(&s->mu);
        if (rc == SDK_OK) {
            s->sent = id;
        } else {
            s->send_err = rc;
        }
        pthread_mutex_unlock(&s->mu);
        if (rc != SDK_OK) {
            break;
        }
        if (id % 4 == 0) {
            ht_sleep_ms(1);
        }
    }
    return NULL;
}

static void *receiver_main(void *arg)
{
    stream *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            break;
        }
        sdk_message *m = NULL;
        sdk_err rc = sdk_recv(s->c, &m, 50);
        if (rc == SDK_ETIMEDOUT) {
            continue;
        }
        pthread_mutex_lock(&s->mu);
        if (rc != SDK_OK) {
            s->recv_err = rc;
            s->stop = true;
        } else if (m->len != 64 || s->ngot == 2 * MAX_IDS) {
            s->recv_err = SDK_EPROTO; /* not ours, or far too many copies */
            s->stop = true;
        } else {
            uint32_t id;
            memcpy(&id, m->data, sizeof(id));
            if (!ht_check(m->data + sizeof(id), m->len - sizeof(id), id)) {
                s->recv_err = SDK_EPROTO;
                s->stop = true;
            }
            s->got[s->ngot++] = id;
        }
        pthread_mutex_unlock(&s->mu);
        sdk_message_free(m);
    }
    return NULL;
}

static size_t received(stream *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->ngot;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Every id in [from, to] was received at least once. */
static bool all_received(stream *s, uint32_t from, uint32_t to, uint32_t *first_missing)
{
    uint8_t *seen = calloc(MAX_IDS + 1, 1);
    assert_non_null(seen);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->ngot; i++) {
        if (s->got[i] <= MAX_IDS) {
            seen[s->got[i]] = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    bool all = true;
    for (uint32_t id = from; id <= to && all; id++) {
        if (!seen[id]) {
            all = false;
            *first_missing = id;
        }
    }
    free(seen);
    return all;
}

/* Arrival order is increasing except where the stream went back after the restart. */
static size_t count_rewinds(stream *s)
{
    size_t rewinds = 0;
    for (size_t i = 1; i < s->ngot; i++) {
        rewinds += s->got[i] <= s->got[i - 1];
    }
    return rewinds;
}

static uint32_t sent_so_far(stream *s)
{
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->sent;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The last stretch of ids, sent long after a restart. */
static uint32_t tail_start(uint32_t total)
{
    return total > 100 ? total - 100 : 1;
}

/* Stream through a stop/start of the server process; returns with everything joined. */
static void stream_through_restart(int sig, ht_events *ev, stream *s, uint32_t *total)
{
    ht_proc proc;
    assert_int_equal(ht_proc_start(&proc, 0, NULL), 0);
    uint16_t port = proc.port;

    sdk_config cfg;
    ht_client_config(&cfg, port);
    ht_events_attach(ev, &cfg);
    cfg.retry_on_first_connect = true;
    cfg.reconnect_min_ms = 50;
    cfg.reconnect_max_ms = 500;
    assert_int_equal(sdk_connect(&cfg, &s->c), SDK_OK);

    pthread_t ts, tr;
    assert_int_equal(pthread_create(&tr, NULL, receiver_main, s), 0);
    assert_int_equal(pthread_create(&ts, NULL, sender_main, s), 0);

    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (received(s) < KILL_AFTER && ht_now_ms() < deadline) {
        ht_sleep_ms(5);
    }
    assert_true(received(s) >= KILL_AFTER);
    int status = ht_proc_stop(&proc, sig);
    if (sig == SIGTERM) {
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    } else {
        assert_true(WIFSIGNALED(status));
    }
    ht_sleep_ms(DOWN_MS);
    assert_int_equal(ht_proc_start(&proc, port, NULL), 0);
    assert_int_equal(proc.port, port);

    pthread_join(ts, NULL);
    assert_int_equal(s->send_err, SDK_OK);
    *total = sent_so_far(s);
    assert_true(*total > KILL_AFTER);
    /* Acknowledged by the new server: every message reached a server application. */
    assert_int_equal(sdk_flush(s->c, 2 * HT_WAIT_MS), SDK_OK);

    /* Wait for the echoes that must come: all of them after SIGTERM, the tail after SIGKILL. */
    uint32_t missing = 0;
    uint32_t from = sig == SIGTERM ? 1 : tail_start(*total);
    deadline = ht_now_ms() + HT_WAIT_MS / 2; /* all acknowledged already: echoes are close behind */
    while (!all_received(s, from, *total, &missing) && ht_now_ms() < deadline) {
        ht_sleep_ms(10);
    }
    ht_sleep_ms(200); /* late duplicates would show up now */
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_mutex_unlock(&s->mu);
    pthread_join(tr, NULL);
    sdk_close(s->c);
    assert_int_equal(sdk_get_stats(s->c, &s->stats), SDK_OK);
    /* Freed before the caller asserts anything: a failure leaves no client behind. */
    sdk_destroy(s->c);
    s->c = NULL;
    ht_proc_stop(&proc, SIGTERM);
}

static void stream_init(stream *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
}

static void stream_free(stream *s)
{
    pthread_mutex_destroy(&s->mu);
}

static void assert_session_lost(const sdk_stats *stats, ht_events *ev)
{
    sdk_stats st = *stats;
    if (st.sessions_lost < 1 || st.reconnects < 1 || st.connects < 2) {
        fail_msg("stats: sessions_lost %llu, reconnects %llu, connects %llu", (unsigned long long)st.sessions_lost,
                 (unsigned long long)st.reconnects, (unsigned long long)st.connects);
    }
    ht_event e;
    int lost = ht_events_wait(ev, SDK_EVENT_SESSION_LOST, 0, 0, &e);
    assert_true(lost >= 0);
    assert_true(ht_events_wait(ev, SDK_EVENT_DISCONNECTED, 0, 0, NULL) >= 0);
    /* The connect right after the loss is not a resumption. */
    assert_true(ht_events_wait(ev, SDK_EVENT_CONNECTED, (size_t)lost, 0, &e) >= 0);
    assert_false(e.resumed);
}

static void test_sigterm_restart_loses_nothing(void **state)
{
    (void)state;
    static stream s; /* large; static so that a failed assertion leaks nothing */
    ht_events ev;
    uint32_t total = 0;
    stream_init(&s);
    ht_events_init(&ev);
    stream_through_restart(SIGTERM, &ev, &s, &total);

    assert_int_equal(s.recv_err, SDK_OK);
    uint32_t missing = 0;
    if (!all_received(&s, 1, total, &missing)) {
        fail_msg("message %u of %u never came back (%zu received)", missing, total, s.ngot);
    }
    size_t rewinds = count_rewinds(&s);
    if (rewinds > 1) {
        fail_msg("arrival order went back %zu times; one restart allows one", rewinds);
    }
    assert_true(s.ngot >= total);
    assert_session_lost(&s.stats, &ev);
    /* A graceful stop says why. */
    ht_event e;
    assert_true(ht_events_wait(&ev, SDK_EVENT_DISCONNECTED, 0, 0, &e) >= 0);
    if (!strstr(e.detail, "server stopping")) {
        fail_msg("disconnect detail after SIGTERM: \"%s\"", e.detail);
    }
    stream_free(&s);
    ht_events_free(&ev);
}

/* A crash may lose echoes the dead process had acknowledged but not yet written; what it
 * must not do is reorder, or lose anything sent after the new server is up. */
static void test_sigkill_restart_recovers(void **state)
{
    (void)state;
    static stream s; /* large; static so that a failed assertion leaks nothing */
    ht_events ev;
    uint32_t total = 0;
    stream_init(&s);
    ht_events_init(&ev);
    stream_through_restart(SIGKILL, &ev, &s, &total);
    assert_int_equal(s.recv_err, SDK_OK);
    size_t rewinds = count_rewinds(&s);
    if (rewinds > 1) {
        fail_msg("arrival order went back %zu times; one restart allows one", rewinds);
    }
    assert_session_lost(&s.stats, &ev);
    /* Everything sent in the last stretch, long after the restart, came back. */
    uint32_t missing = 0;
    if (!all_received(&s, tail_start(total), total, &missing)) {
        fail_msg("message %u (sent after the restart) never came back", missing);
    }
    stream_free(&s);
    ht_events_free(&ev);
}

/* ---- the in-process server stops under connected clients ---- */

static sdk_client *connect_to(const ht_server *hs, ht_events *ev, unsigned max_attempts)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    ht_events_attach(ev, &cfg);
    cfg.reconnect_min_ms = 1;
    cfg.reconnect_max_ms = 5;
    cfg.max_reconnect_attempts = max_attempts;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    return c;
}

static void echo_one(sdk_client *c)
{
    sdk_message *m = NULL;
    assert_int_equal(sdk_send(c, "ping", 4, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 4);
    sdk_message_free(m);
}

/* Server stop: every connected client is told why, and the session events say so. */
static void test_server_stop_reports_going_away(void **state)
{
    (void)state;
    ht_server hs;
    ht_sevents sev;
    ht_events ev[2];
    sdk_client *c[2];
    sdk_server_config scfg;
    ht_sevents_init(&sev);
    ht_server_config(&scfg);
    ht_sevents_attach(&sev, &scfg);
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);
    for (int i = 0; i < 2; i++) {
        ht_events_init(&ev[i]);
        c[i] = connect_to(&hs, &ev[i], 0);
        echo_one(c[i]);
    }
    ht_server_stop(&hs);
    for (int i = 0; i < 2; i++) {
        ht_event e;
        assert_true(ht_events_wait(&ev[i], SDK_EVENT_DISCONNECTED, 0, HT_WAIT_MS, &e) >= 0);
        assert_int_equal(e.error, SDK_EDISCONNECTED);
        if (!strstr(e.detail, "server stopping")) {
            fail_msg("client %d: disconnect detail \"%s\" does not say the server is stopping", i, e.detail);
        }
        assert_int_not_equal(sdk_get_state(c[i]), SDK_STATE_CLOSED); /* it may come back */
    }
    pthread_mutex_lock(&sev.mu);
    size_t closed = 0;
    for (size_t i = 0; i < sev.n; i++) {
        if (sev.ev[i].type == SDK_SESSION_CLOSED) {
            assert_int_equal(sev.ev[i].cause, SDK_CAUSE_SERVER_STOP);
            closed++;
        }
    }
    pthread_mutex_unlock(&sev.mu);
    assert_int_equal(closed, 2);
    /* A stopped server refuses the application too. */
    sdk_message *m = NULL;
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_recv(hs.srv, &m, -1), SDK_ECLOSED);
    assert_int_equal(sdk_server_send(hs.srv, 1, "x", 1, -1), SDK_ECLOSED);
    assert_int_equal(sdk_server_sessions(hs.srv, &info, &n), SDK_ECLOSED);
    assert_int_equal(sdk_server_stop(hs.srv), SDK_OK); /* idempotent */
    for (int i = 0; i < 2; i++) {
        sdk_destroy(c[i]);
        ht_events_free(&ev[i]);
    }
    ht_server_destroy(&hs);
    ht_sevents_free(&sev);
}

/* max_reconnect_attempts counts attempts to reconnect: after the server goes away the
 * client tries exactly that many times, then closes with the last attempt's error. */
static void test_gives_up_after_max_attempts(void **state)
{
    (void)state;
    ht_server hs;
    ht_events ev;
    ht_events_init(&ev);
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    sdk_client *c = connect_to(&hs, &ev, 3);
    echo_one(c);
    ht_server_destroy(&hs); /* the port now refuses */

    ht_event closed = {.error = -1};
    int lost = ht_events_wait(&ev, SDK_EVENT_DISCONNECTED, 0, HT_WAIT_MS, NULL);
    bool gave_up = ht_wait_state(c, SDK_STATE_CLOSED, HT_WAIT_MS);
    (void)ht_events_wait(&ev, SDK_EVENT_CLOSED, 0, HT_WAIT_MS, &closed);
    char detail[256];
    sdk_err last = sdk_last_error(c, detail, sizeof(detail));
    sdk_destroy(c); /* before any assertion: no client may outlive the recorder */
    size_t attempts = 0;
    for (size_t i = lost >= 0 ? (size_t)lost : ev.n; i < ev.n; i++) {
        attempts += ev.ev[i].type == SDK_EVENT_CONNECTING;
    }
    ht_events_free(&ev);

    assert_true(lost >= 0);
    assert_true(gave_up);
    if (attempts != 3) {
        fail_msg("max_reconnect_attempts 3: the client made %zu reconnect attempts", attempts);
    }
    assert_int_equal(closed.error, SDK_ECONNREFUSED);
    assert_int_equal(last, SDK_ECONNREFUSED);
    assert_non_null(strstr(detail, "Connection refused"));
}

/* sdk_server_stop closes the listener too: a client arriving afterwards is refused at once
 * rather than accepted by the kernel and left hanging in its TLS handshake. */
static void test_stopped_server_refuses(void **state)
{
    (void)state;
    ht_server hs;
    sdk_config cfg;
    sdk_client *c = NULL;
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    ht_server_stop(&hs); /* stopped, not yet destroyed */
    ht_client_config(&cfg, hs.port);
    cfg.connect_timeout_ms = 2000;
    uint64_t t0 = ht_now_ms();
    sdk_err rc = sdk_connect(&cfg, &c);
    uint64_t took = ht_now_ms() - t0;
    char detail[256];
    sdk_last_connect_error(detail, sizeof(detail));
    sdk_destroy(c); /* NULL unless it wrongly connected */
    ht_server_destroy(&hs);
    if (rc != SDK_ECONNREFUSED || took >= 1000) {
        fail_msg("connect to a stopped server: %s after %llu ms (%s)", sdk_errname(rc), (unsigned long long)took,
                 detail);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_restart_loses_nothing),  cmocka_unit_test(test_sigkill_restart_recovers),
        cmocka_unit_test(test_server_stop_reports_going_away), cmocka_unit_test(test_gives_up_after_max_attempts),
        cmocka_unit_test(test_stopped_server_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
