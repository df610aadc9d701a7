/*
 * TLS ticket keys shared through a session store, end to end with the SDK's client: a
 * reconnect after a graceful stop resumes TLS (sdk_get_stats handshakes_resumed) and the
 * session (resumed=true), on another lifeline-server process with the same Redis store,
 * and on the same in-process server restarted on it. Without a store the restarted server
 * holds new keys and the reconnect costs a full handshake: the control.
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

typedef struct client {
    ht_events ev;
    sdk_client *c;
} client;

static void client_connect(client *cl, uint16_t port)
{
    ht_events_init(&cl->ev);
    sdk_config cc;
    ht_client_config(&cc, port);
    cc.reconnect_min_ms = 10;
    cc.reconnect_max_ms = 50;
    ht_events_attach(&cl->ev, &cc);
    assert_int_equal(sdk_connect(&cc, &cl->c), SDK_OK);
}

static void client_free(client *cl)
{
    sdk_close(cl->c);
    sdk_destroy(cl->c);
    ht_events_free(&cl->ev);
}

/* One message each way, so that the session is in use and the ticket has arrived (it comes
 * right behind the welcome, before any echo). */
static void round_trip(client *cl, uint32_t id)
{
    assert_int_equal(sdk_send(cl->c, &id, sizeof(id), HT_WAIT_MS), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(cl->c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, sizeof(id));
    assert_memory_equal(m->data, &id, sizeof(id));
    sdk_message_free(m);
}

/* The client's second CONNECTED event: whether it resumed its session, and what its TLS
 * handshakes were. */
static void expect_reconnect(client *cl, bool tls_resumed)
{
    ht_event connected;
    int first = ht_events_wait(&cl->ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(first >= 0);
    assert_true(ht_events_wait(&cl->ev, SDK_EVENT_CONNECTED, (size_t)first + 1, HT_WAIT_MS, &connected) > first);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(cl->c, &st), SDK_OK);
    assert_int_equal(st.handshakes_full, tls_resumed ? 1 : 2);
    assert_int_equal(st.handshakes_resumed, tls_resumed ? 1 : 0);
    if (tls_resumed) {
        assert_true(connected.resumed); /* and the session came along */
    }
}

/* lifeline-server A, SIGTERM, lifeline-server B on the same port and Redis: B opens A's
 * ticket, and the session goes on. */
static void test_another_process_resumes_tls(void **state)
{
    (void)state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    const char *extra[] = {"--store", redis.url, "--ticket-rotation-s", "3600", "--ticket-keys", "3", NULL};
    ht_proc a = {0}, b = {0};
    assert_int_equal(ht_proc_start(&a, 0, extra), 0);
    client cl;
    client_connect(&cl, a.port);
    round_trip(&cl, 1);
    assert_true(WIFEXITED(ht_proc_stop(&a, SIGTERM)));
    assert_int_equal(ht_proc_start(&b, a.port, extra), 0);
    round_trip(&cl, 2);
    expect_reconnect(&cl, true);
    client_free(&cl);
    ht_proc_stop(&b, SIGTERM);
    redis_proc_stop(&redis);
}

/* The same in-process server stopped and started again on its store (and port). */
static void restart_once(sdk_store *store, bool tls_resumed)
{
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.store = store;
    ht_server a = {0}, b = {0};
    assert_int_equal(ht_server_start(&a, &cfg, true), SDK_OK);
    client cl;
    client_connect(&cl, a.port);
    round_trip(&cl, 1);
    ht_server_stop(&a);
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)a.port);
    cfg.listen = listen;
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    sdk_err rc;
    while ((rc = ht_server_start(&b, &cfg, true)) == SDK_ELISTEN && ht_now_ms() < deadline) {
        ht_sleep_ms(20); /* the port just freed may be refused for a moment */
    }
    assert_int_equal(rc, SDK_OK);
    round_trip(&cl, 2);
    expect_reconnect(&cl, tls_resumed);
    client_free(&cl);
    ht_server_destroy(&b);
    ht_server_destroy(&a);
}

static void test_restart_resumes_tls(void **state)
{
    (void)state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open(redis.url, 0, &st), SDK_OK);
    restart_once(st, true);
    sdk_store_close(st);
    redis_proc_stop(&redis);
}

static void test_restart_without_store_is_a_full_handshake(void **state)
{
    (void)state;
    restart_once(NULL, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_another_process_resumes_tls),
        cmocka_unit_test(test_restart_resumes_tls),
        cmocka_unit_test(test_restart_without_store_is_a_full_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
