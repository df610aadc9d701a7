/*
 * Sessions handed over through a session store (lifeline/store.h): server A, started with a
 * store, has a client mid-conversation in both directions (some messages taken, some
 * waiting, some not yet written) when it stops; server B, started on the same port with the
 * same store, resumes the session: the client reports resumed=true, the session keeps its
 * id, and every message in both directions arrives exactly once, in order. Run with the
 * memory store (one handle shared by both servers) and with a real redis-server of the
 * test's own (a handle each, as two processes would have). Then across processes: two
 * lifeline-server --store redis://... in turn, the first stopped by SIGTERM under a client
 * whose echoes are still in flight, every echo arriving exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "redis_proc.h"

#include <lifeline/store.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#define N 40 /* messages each way before the stop; as many after */

static void send_ids(sdk_client *c, sdk_server *srv, uint64_t session, uint32_t from, uint32_t to)
{
    for (uint32_t id = from; id <= to; id++) {
        sdk_err rc = c ? sdk_send(c, &id, sizeof(id), HT_WAIT_MS) : sdk_server_send(srv, session, &id, sizeof(id), 0);
        assert_int_equal(rc, SDK_OK);
    }
}

/* Take ids from..to, exactly these, in order, from the client (c) or the server (srv). */
static uint64_t expect_ids(sdk_client *c, sdk_server *srv, uint32_t from, uint32_t to)
{
    uint64_t session = 0;
    for (uint32_t want = from; want <= to; want++) {
        sdk_message *m = NULL;
        sdk_err rc = c ? sdk_recv(c, &m, HT_WAIT_MS) : sdk_server_recv(srv, &m, HT_WAIT_MS);
        if (rc != SDK_OK) {
            fail_msg("waiting for %s message %u: %s", c ? "client" : "server", want, sdk_errname(rc));
        }
        uint32_t got;
        assert_int_equal(m->len, sizeof(got));
        memcpy(&got, m->data, sizeof(got));
        assert_int_equal(got, want);
        session = m->session;
        sdk_message_free(m);
    }
    return session;
}

static void expect_nothing_more(sdk_client *c, sdk_server *srv)
{
    sdk_message *m = NULL;
    assert_int_equal(c ? sdk_recv(c, &m, 200) : sdk_server_recv(srv, &m, 200), SDK_ETIMEDOUT);
}

static sdk_server *start_on(sdk_store *store, const char *listen)
{
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.listen = listen;
    cfg.store = store;
    sdk_server *srv = NULL;
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    sdk_err rc;
    /* The port A just freed may be refused for a moment. */
    while ((rc = sdk_server_start(&cfg, &srv)) == SDK_ELISTEN && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
    }
    assert_int_equal(rc, SDK_OK);
    return srv;
}

static void handover(sdk_store *store_a, sdk_store *store_b)
{
    sdk_server *a = start_on(store_a, "127.0.0.1:0");
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)sdk_server_port(a));

    ht_events ev;
    ht_events_init(&ev);
    sdk_config cc;
    ht_client_config(&cc, sdk_server_port(a));
    cc.reconnect_min_ms = 10;
    cc.reconnect_max_ms = 100;
    ht_events_attach(&ev, &cc);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cc, &c), SDK_OK);

    /* Mid-conversation: A took half of what the client sent, and the client took half of
     * what A sent; the rest is in queues and windows on both sides. */
    send_ids(c, NULL, 0, 1, N);
    uint64_t session = expect_ids(NULL, a, 1, N / 2);
    send_ids(NULL, a, session, 1, N);
    expect_ids(c, NULL, 1, N / 2);

    assert_int_equal(sdk_server_stop(a), SDK_OK);
    sdk_server *b = start_on(store_b, listen);
    ht_event connected;
    int first = ht_events_wait(&ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(first >= 0);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)first + 1, HT_WAIT_MS, &connected) > first);
    assert_true(connected.resumed);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_SESSION_LOST), 0);

    /* Nothing lost, nothing twice, on the same session. */
    assert_int_equal(expect_ids(NULL, b, N / 2 + 1, N), session);
    expect_ids(c, NULL, N / 2 + 1, N);
    send_ids(c, NULL, 0, N + 1, 2 * N);
    send_ids(NULL, b, session, N + 1, 2 * N);
    assert_int_equal(expect_ids(NULL, b, N + 1, 2 * N), session);
    expect_ids(c, NULL, N + 1, 2 * N);
    expect_nothing_more(c, NULL);
    expect_nothing_more(NULL, b);

    sdk_close(c);
    sdk_destroy(c);
    sdk_server_destroy(b);
    sdk_server_destroy(a);
    ht_events_free(&ev);
}

static void test_memory_store(void **state)
{
    (void)state;
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open("memory:", 0, &st), SDK_OK);
    handover(st, st);
    sdk_store_close(st);
}

static void test_redis_store(void **state)
{
    (void)state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    sdk_store *sa = NULL, *sb = NULL;
    assert_int_equal(sdk_store_open(redis.url, 0, &sa), SDK_OK);
    assert_int_equal(sdk_store_open(redis.url, 0, &sb), SDK_OK);
    handover(sa, sb);
    sdk_store_close(sa);
    sdk_store_close(sb);
    redis_proc_stop(&redis);
}

/* lifeline-server A echoes; SIGTERM; lifeline-server B on the same port and store. */
static void test_lifeline_server_failover(void **state)
{
    (void)state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    const char *extra[] = {"--store", redis.url, NULL};
    ht_proc a = {0}, b = {0};
    assert_int_equal(ht_proc_start(&a, 0, extra), 0);

    ht_events ev;
    ht_events_init(&ev);
    sdk_config cc;
    ht_client_config(&cc, a.port);
    cc.reconnect_min_ms = 10;
    cc.reconnect_max_ms = 100;
    ht_events_attach(&ev, &cc);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cc, &c), SDK_OK);
    send_ids(c, NULL, 0, 1, 4 * N);
    expect_ids(c, NULL, 1, N); /* the rest in flight when A stops */

    assert_true(WIFEXITED(ht_proc_stop(&a, SIGTERM)));
    assert_int_equal(ht_proc_start(&b, a.port, extra), 0);
    expect_ids(c, NULL, N + 1, 4 * N);
    ht_event connected;
    int first = ht_events_wait(&ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)first + 1, HT_WAIT_MS, &connected) > first);
    assert_true(connected.resumed);
    send_ids(c, NULL, 0, 4 * N + 1, 5 * N);
    expect_ids(c, NULL, 4 * N + 1, 5 * N);
    expect_nothing_more(c, NULL);

    sdk_close(c);
    sdk_destroy(c);
    ht_proc_stop(&b, SIGTERM);
    ht_events_free(&ev);
    redis_proc_stop(&redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_store),
        cmocka_unit_test(test_redis_store),
        cmocka_unit_test(test_lifeline_server_failover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
