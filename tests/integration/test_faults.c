/*
 * Faults between client and server: the fault proxy (tests/tools/faultproxy.h) sits on
 * loopback between real clients and an in-process echo server and resets, blackholes or
 * refuses connections. Every message must still arrive exactly once, in order; dead links
 * must be noticed within the heartbeat timeout and healthy slow ones must not be.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faultproxy.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared helpers ---- */

/* A proxy from an ephemeral loopback port to the server. */
static fp_proxy *start_proxy(uint16_t server_port)
{
    fp_proxy *p = NULL;
    assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", server_port, &p), 0);
    assert_non_null(p);
    assert_int_not_equal(fp_port(p), 0);
    return p;
}

/* Close the client, then the proxy and the server behind it. */
static void stop_all(sdk_client *c, fp_proxy *p, ht_server *hs, ht_events *ev)
{
    assert_int_equal(sdk_close(c), SDK_OK);
    sdk_destroy(c);
    fp_stop(p);
    ht_server_destroy(hs);
    ht_events_free(ev);
}

/* Send text and expect it back as the next message. */
static void round_trip(sdk_client *c, const char *text)
{
    sdk_message *m = NULL;
    size_t len = strlen(text);
    assert_int_equal(sdk_send(c, text, len, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_non_null(m);
    assert_int_equal(m->len, len);
    assert_memory_equal(m->data, text, len);
    sdk_message_free(m);
}

/* Client config with fast heartbeats, pointed at the proxy. */
static void fast_hb_config(sdk_config *cfg, uint16_t port)
{
    ht_client_config(cfg, port);
    cfg->heartbeat_interval_ms = 200;
    cfg->heartbeat_timeout_ms = 600;
    cfg->reconnect_min_ms = 10;
    cfg->reconnect_max_ms = 200;
    cfg->connect_timeout_ms = 3000;
}

/* ---- 1. random resets, three clients, both directions ---- */

#define RESET_CLIENTS 3
#define RESET_MSGS    20000

typedef struct reset_client {
    int id;
    sdk_client *c;
    /* filled by the threads, read by the main thread after join */
    int send_err;    /* first sdk_send failure, SDK_OK if none */
    int send_at;     /* index where it failed */
    int recv_err;    /* first sdk_recv failure */
    size_t received; /* messages received in order */
    int mismatch_at; /* first index whose payload was not the expected one, or -1 */
    char got[64];    /* what arrived there */
} reset_client;

static void *reset_sender(void *arg)
{
    reset_client *rc = arg;
    char text[32];
    rc->send_err = SDK_OK;
    rc->send_at = -1;
    for (int n = 0; n < RESET_MSGS; n++) {
        if (n == RESET_MSGS / 2) {
            /* Loopback is fast enough to finish between two resets: make sure this
             * client's link has been reset at least once while messages are in flight. */
            uint64_t until = ht_now_ms() + HT_WAIT_MS;
            sdk_stats st;
            while (sdk_get_stats(rc->c, &st) == SDK_OK && st.reconnects == 0 && ht_now_ms() < until) {
                ht_sleep_ms(1);
            }
        }
        if (n % 20 == 19) {
            ht_sleep_ms(1); /* spread the run over several reset intervals */
        }
        int len = snprintf(text, sizeof(text), "c%d-%d", rc->id, n);
        sdk_err e = sdk_send(rc->c, text, (size_t)len, -1);
        if (e != SDK_OK) {
            rc->send_err = e;
            rc->send_at = n;
            break;
        }
    }
    return NULL;
}

static void *reset_receiver(void *arg)
{
    reset_client *rc = arg;
    char text[32];
    rc->recv_err = SDK_OK;
    rc->mismatch_at = -1;
    rc->received = 0;
    for (int n = 0; n < RESET_MSGS; n++) {
        sdk_message *m = NULL;
        sdk_err e = sdk_recv(rc->c, &m, 30000);
        if (e != SDK_OK) {
            rc->recv_err = e;
            break;
        }
        int len = snprintf(text, sizeof(text), "c%d-%d", rc->id, n);
        if (m->len != (size_t)len || memcmp(m->data, text, (size_t)len) != 0) {
            size_t k = m->len < sizeof(rc->got) - 1 ? m->len : sizeof(rc->got) - 1;
            memcpy(rc->got, m->data, k);
            rc->got[k] = '\0';
            rc->mismatch_at = n;
            sdk_message_free(m);
            break;
        }
        sdk_message_free(m);
        rc->received++;
    }
    return NULL;
}

static void test_resets_exact_both_ways(void **state)
{
    (void)state;
    ht_server hs;
    reset_client rc[RESET_CLIENTS];
    pthread_t senders[RESET_CLIENTS], receivers[RESET_CLIENTS];
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    fp_proxy *p = start_proxy(hs.port);

    sdk_config cfg;
    ht_client_config(&cfg, fp_port(p));
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 200;
    cfg.heartbeat_interval_ms = 500;
    cfg.connect_timeout_ms = 5000;
    memset(rc, 0, sizeof(rc));
    for (int i = 0; i < RESET_CLIENTS; i++) {
        rc[i].id = i;
        assert_int_equal(sdk_connect(&cfg, &rc[i].c), SDK_OK);
    }

    uint64_t t0 = ht_now_ms();
    assert_int_equal(fp_random_resets(p, 100, 300), 0);
    for (int i = 0; i < RESET_CLIENTS; i++) {
        assert_int_equal(pthread_create(&receivers[i], NULL, reset_receiver, &rc[i]), 0);
        assert_int_equal(pthread_create(&senders[i], NULL, reset_sender, &rc[i]), 0);
    }
    for (int i = 0; i < RESET_CLIENTS; i++) {
        pthread_join(senders[i], NULL);
        pthread_join(receivers[i], NULL);
    }
    uint64_t elapsed = ht_now_ms() - t0;

    fp_stats ps;
    fp_get_stats(p, &ps);
    printf("resets: %d x %d messages echoed in %llu ms through %llu proxy resets\n", RESET_CLIENTS, RESET_MSGS,
           (unsigned long long)elapsed, (unsigned long long)ps.resets);

    for (int i = 0; i < RESET_CLIENTS; i++) {
        if (rc[i].mismatch_at >= 0) {
            printf("client %d: message %d was \"%s\"\n", i, rc[i].mismatch_at, rc[i].got);
        }
        assert_int_equal(rc[i].send_err, SDK_OK);
        assert_int_equal(rc[i].recv_err, SDK_OK);
        assert_int_equal(rc[i].mismatch_at, -1);
        assert_int_equal(rc[i].received, RESET_MSGS);
    }
    /* Resets stop; every message must then be acknowledged and nothing more arrive. */
    assert_int_equal(fp_random_resets(p, 0, 0), 0);
    for (int i = 0; i < RESET_CLIENTS; i++) {
        assert_int_equal(sdk_flush(rc[i].c, 30000), SDK_OK);
        sdk_message *extra = NULL;
        assert_int_equal(sdk_recv(rc[i].c, &extra, 200), SDK_ETIMEDOUT);
        assert_null(extra);
        sdk_stats st;
        assert_int_equal(sdk_get_stats(rc[i].c, &st), SDK_OK);
        printf("client %d: reconnects %llu retransmits %llu duplicates_dropped %llu\n", i,
               (unsigned long long)st.reconnects, (unsigned long long)st.retransmits,
               (unsigned long long)st.duplicates_dropped);
        assert_true(st.reconnects >= 1);
        assert_int_equal(st.msgs_received, RESET_MSGS);
        assert_int_equal(st.queue_depth, 0);
        assert_int_equal(st.sessions_lost, 0);
    }
    fp_get_stats(p, &ps);
    assert_true(ps.resets >= 1);
    assert_int_equal(atomic_load(&hs.echoed), (unsigned long)RESET_CLIENTS * RESET_MSGS);
    assert_int_equal(atomic_load(&hs.echo_failed), 0);

    for (int i = 0; i < RESET_CLIENTS; i++) {
        assert_int_equal(sdk_close(rc[i].c), SDK_OK);
        sdk_destroy(rc[i].c);
    }
    fp_stop(p);
    ht_server_destroy(&hs);
}

/* ---- 2. blackhole noticed by the client ---- */

static void test_blackhole_detected_client(void **state)
{
    (void)state;
    ht_server hs;
    ht_events ev;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_event got;
    sdk_server_config scfg;
    /* The client adopts the timeout the server's welcome returns, which the server clamps to
     * heartbeat_min_ms (default 1000): lower it so the client's 600 ms is what is measured. */
    ht_server_config(&scfg);
    scfg.heartbeat_min_ms = 100;
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);
    fp_proxy *p = start_proxy(hs.port);
    ht_events_init(&ev);
    fast_hb_config(&cfg, fp_port(p));
    ht_events_attach(&ev, &cfg);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    round_trip(c, "warm-up");

    /* Bytes heard last arrive after t_send, so silence cannot start before it. */
    uint64_t t_send = ht_now_ms();
    round_trip(c, "before blackhole");
    fp_set_blackhole(p, true);

    int idx = ht_events_wait(&ev, SDK_EVENT_DISCONNECTED, 0, HT_WAIT_MS, &got);
    assert_true(idx >= 0);
    uint64_t detected = got.at_ms - t_send;
    printf("blackhole detected by client after %llu ms (timeout 600)\n", (unsigned long long)detected);
    assert_int_equal(got.error, SDK_ETIMEDOUT);
    assert_true(detected >= 600);
    assert_true(detected <= 600 + 700);

    fp_set_blackhole(p, false);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)idx + 1, 5000, NULL) >= 0);
    assert_true(ht_wait_state(c, SDK_STATE_CONNECTED, 5000));
    round_trip(c, "after blackhole");
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_true(st.reconnects >= 1);

    stop_all(c, p, &hs, &ev);
}

/* ---- 3. blackhole noticed by the server ---- */

static void test_blackhole_detected_server(void **state)
{
    (void)state;
    ht_server hs;
    ht_sevents sev;
    sdk_server_config scfg;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_sevent got;
    ht_sevents_init(&sev);
    ht_server_config(&scfg);
    scfg.heartbeat_min_ms = 100; /* or the client's 600 ms is clamped up to 1000 */
    ht_sevents_attach(&sev, &scfg);
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);
    fp_proxy *p = start_proxy(hs.port);
    fast_hb_config(&cfg, fp_port(p));
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    round_trip(c, "warm-up");
    int opened = ht_sevents_wait(&sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &got);
    assert_true(opened >= 0);
    uint64_t session = got.session;

    /* The server hears the client's message after t_send. */
    uint64_t t_send = ht_now_ms();
    round_trip(c, "before blackhole");
    fp_set_blackhole(p, true);

    int idx = ht_sevents_wait(&sev, SDK_SESSION_DETACHED, session, 0, HT_WAIT_MS, &got);
    uint64_t detected = ht_now_ms() - t_send;
    assert_true(idx >= 0);
    printf("blackhole detected by server after %llu ms (client's timeout 600), cause %s\n",
           (unsigned long long)detected, sdk_cause_name(got.cause));
    assert_int_equal(got.cause, SDK_CAUSE_HEARTBEAT_TIMEOUT);
    assert_true(detected <= 600 + 700);

    fp_set_blackhole(p, false);
    assert_true(ht_sevents_wait(&sev, SDK_SESSION_RESUMED, session, (size_t)idx + 1, 5000, NULL) >= 0);
    assert_true(ht_wait_state(c, SDK_STATE_CONNECTED, 5000));
    round_trip(c, "after blackhole");

    assert_int_equal(sdk_close(c), SDK_OK);
    sdk_destroy(c);
    fp_stop(p);
    ht_server_destroy(&hs);
    ht_sevents_free(&sev);
}

/* ---- 4. a slow reader is not a dead peer ---- */

#define SLOW_MSGS 2000

static void test_slow_consumer_keeps_link(void **state)
{
    (void)state;
    ht_server hs;
    ht_events ev;
    sdk_config cfg;
    sdk_client *c = NULL;
    char text[32];
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    fp_proxy *p = start_proxy(hs.port);
    ht_events_init(&ev);
    fast_hb_config(&cfg, fp_port(p));
    cfg.window_messages = 64;
    ht_events_attach(&ev, &cfg);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);

    for (int n = 0; n < SLOW_MSGS; n++) {
        int len = snprintf(text, sizeof(text), "slow-%d", n);
        assert_int_equal(sdk_send(c, text, (size_t)len, HT_WAIT_MS), SDK_OK);
    }
    ht_sleep_ms(2000); /* well past the 600 ms heartbeat timeout, reading nothing */

    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_DISCONNECTED), 0);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.state, SDK_STATE_CONNECTED);

    for (int n = 0; n < SLOW_MSGS; n++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
        int len = snprintf(text, sizeof(text), "slow-%d", n);
        assert_int_equal(m->len, (size_t)len);
        assert_memory_equal(m->data, text, (size_t)len);
        assert_int_equal(m->seq, (uint64_t)n + 1);
        sdk_message_free(m);
    }
    sdk_message *extra = NULL;
    assert_int_equal(sdk_recv(c, &extra, 200), SDK_ETIMEDOUT);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.msgs_received, SLOW_MSGS);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_DISCONNECTED), 0);

    stop_all(c, p, &hs, &ev);
}

/* ---- 5. nothing listening at first, then the server appears ---- */

static void test_server_not_started_then_started(void **state)
{
    (void)state;
    ht_server hs;
    ht_events ev;
    sdk_config cfg;
    sdk_client *c = NULL;
    char text[32];
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    fp_proxy *p = start_proxy(hs.port);
    assert_int_equal(fp_set_refuse(p, true), 0);
    ht_events_init(&ev);
    ht_client_config(&cfg, fp_port(p));
    cfg.retry_on_first_connect = true;
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 200;
    ht_events_attach(&ev, &cfg);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_non_null(c);

    for (int n = 0; n < 10; n++) {
        int len = snprintf(text, sizeof(text), "queued-%d", n);
        assert_int_equal(sdk_send(c, text, (size_t)len, HT_WAIT_MS), SDK_OK);
    }
    ht_sleep_ms(500);
    assert_int_not_equal(sdk_get_state(c), SDK_STATE_CONNECTED);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTED), 0);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(c, &m, 0), SDK_ETIMEDOUT);
    assert_int_equal(fp_set_refuse(p, false), 0);

    for (int n = 0; n < 10; n++) {
        m = NULL;
        assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
        int len = snprintf(text, sizeof(text), "queued-%d", n);
        assert_int_equal(m->len, (size_t)len);
        assert_memory_equal(m->data, text, (size_t)len);
        sdk_message_free(m);
    }
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    assert_true(ht_events_count(&ev, SDK_EVENT_CONNECTED) >= 1);
    assert_int_equal(atomic_load(&hs.echoed), 10);

    stop_all(c, p, &hs, &ev);
}

/* ---- 6. work queued as the link fails does not abort the reconnect ---- */

#define WAKE_CUTS 30

/* A client without backoff, connected to an echo server through a fault proxy. */
typedef struct cut_rig {
    ht_server hs;
    fp_proxy *p;
    ht_events ev;
    sdk_client *c;
    int idx; /* the latest CONNECTED event */
} cut_rig;

static void cut_rig_start(cut_rig *r)
{
    sdk_config cfg;
    assert_int_equal(ht_server_start(&r->hs, NULL, true), SDK_OK);
    r->p = start_proxy(r->hs.port);
    ht_events_init(&r->ev);
    fast_hb_config(&cfg, fp_port(r->p));
    cfg.reconnect_min_ms = 0;
    cfg.reconnect_max_ms = 0;
    ht_events_attach(&r->ev, &cfg);
    assert_int_equal(sdk_connect(&cfg, &r->c), SDK_OK);
    r->idx = ht_events_wait(&r->ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(r->idx >= 0);
}

/* Reset the link and wait for the next CONNECTED (into *e if not NULL). */
static void cut_rig_cut(cut_rig *r, ht_event *e)
{
    fp_reset_all(r->p);
    r->idx = ht_events_wait(&r->ev, SDK_EVENT_CONNECTED, (size_t)r->idx + 1, HT_WAIT_MS, e);
    assert_true(r->idx >= 0);
}

static void cut_rig_stop(cut_rig *r)
{
    stop_all(r->c, r->p, &r->hs, &r->ev);
}

/* A send wakes the I/O thread; when the link fails before it looks, that wake-up is still
 * pending as it reconnects. It must not pass for sdk_close: no attempt may be given up as
 * "connect interrupted: closing", and with no backoff the client must not spin on that. */
static void test_wake_pending_at_failure(void **state)
{
    (void)state;
    cut_rig r;
    cut_rig_start(&r);
    for (int i = 0; i < WAKE_CUTS; i++) {
        assert_int_equal(sdk_send(r.c, "x", 1, HT_WAIT_MS), SDK_OK);
        cut_rig_cut(&r, NULL);
    }
    for (int i = 0; i < WAKE_CUTS; i++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(r.c, &m, HT_WAIT_MS), SDK_OK);
        sdk_message_free(m);
    }
    pthread_mutex_lock(&r.ev.mu);
    size_t aborted = 0;
    for (size_t k = 0; k < r.ev.n; k++) {
        aborted += r.ev.ev[k].error == SDK_ECLOSED;
    }
    pthread_mutex_unlock(&r.ev.mu);
    assert_int_equal(aborted, 0);
    assert_int_equal(ht_events_count(&r.ev, SDK_EVENT_RECONNECTING), WAKE_CUTS);
    cut_rig_stop(&r);
}

/* ---- 7. every reconnect resumes the TLS session ---- */

#define RESUME_CUTS 6

/* The server sends its session ticket right behind the Welcome, so CONNECTED can come before
 * the new ticket has arrived: a link cut at once must still resume, with the previous ticket.
 * Every other cut here comes right after CONNECTED, the rest after a round trip. */
static void test_reconnects_resume_tls(void **state)
{
    (void)state;
    cut_rig r;
    sdk_stats st;
    cut_rig_start(&r);
    round_trip(r.c, "first"); /* the echo comes behind the first ticket */
    for (int i = 0; i < RESUME_CUTS; i++) {
        ht_event e;
        cut_rig_cut(&r, &e);
        assert_true(e.resumed);
        if (i % 2 == 1) {
            round_trip(r.c, "again");
        }
    }
    round_trip(r.c, "last");
    assert_int_equal(sdk_get_stats(r.c, &st), SDK_OK);
    assert_int_equal(st.reconnects, RESUME_CUTS);
    assert_int_equal(st.handshakes_full, 1);
    assert_int_equal(st.handshakes_resumed, RESUME_CUTS);
    assert_int_equal(st.sessions_lost, 0);
    cut_rig_stop(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resets_exact_both_ways),          cmocka_unit_test(test_blackhole_detected_client),
        cmocka_unit_test(test_blackhole_detected_server),       cmocka_unit_test(test_slow_consumer_keeps_link),
        cmocka_unit_test(test_server_not_started_then_started), cmocka_unit_test(test_wake_pending_at_failure),
        cmocka_unit_test(test_reconnects_resume_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
