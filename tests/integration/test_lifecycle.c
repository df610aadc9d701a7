/*
 * The client handle's life: arguments, timeouts, a full queue, and closing, from the
 * caller's thread and from others, connected, reconnecting or never connected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Closing must never take long; sanitizer builds get the same bound. */
#define PROMPT_MS 1000

static sdk_client *connect_to(const ht_server *hs)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    return c;
}

/* A client that never reaches a server: retry_on_first_connect against a refusing port. */
static sdk_client *connect_nowhere(uint16_t port, sdk_config *cfg)
{
    sdk_client *c = NULL;
    cfg->port = port;
    cfg->retry_on_first_connect = true;
    assert_int_equal(sdk_connect(cfg, &c), SDK_OK);
    assert_non_null(c);
    return c;
}

static void test_null_arguments(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs);
    sdk_message *m = (sdk_message *)1;
    sdk_stats st;
    char buf[64];

    assert_int_equal(sdk_send(NULL, "x", 1, 0), SDK_EINVAL);
    assert_int_equal(sdk_send(c, NULL, 1, 0), SDK_EINVAL);
    assert_int_equal(sdk_send_typed(NULL, "t", "x", 1, 0), SDK_EINVAL);
    assert_int_equal(sdk_send_typed(c, "t", NULL, 5, 0), SDK_EINVAL);
    assert_int_equal(sdk_recv(NULL, &m, 0), SDK_EINVAL);
    assert_int_equal(sdk_recv(c, NULL, 0), SDK_EINVAL);
    assert_int_equal(sdk_flush(NULL, 0), SDK_EINVAL);
    assert_int_equal(sdk_get_stats(NULL, &st), SDK_EINVAL);
    assert_int_equal(sdk_get_stats(c, NULL), SDK_EINVAL);
    assert_int_equal(sdk_last_error(NULL, buf, sizeof(buf)), SDK_EINVAL);
    assert_int_equal(sdk_close(NULL), SDK_EINVAL);
    assert_int_equal(sdk_get_state(NULL), SDK_STATE_CLOSED);
    sdk_destroy(NULL);
    sdk_message_free(NULL);
    /* NULL data with length 0 is an empty message, not an error. */
    assert_int_equal(sdk_send(c, NULL, 0, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 0);
    sdk_message_free(m);
    /* Invalid arguments did not disturb the connection. */
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTED);
    sdk_destroy(c);

    /* sdk_connect's own checks, each with a detail. */
    sdk_config cfg;
    sdk_client *out = (sdk_client *)1;
    char detail[256];
    assert_int_equal(sdk_connect(NULL, &out), SDK_EINVAL);
    assert_null(out);
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, NULL), SDK_EINVAL);
    cfg.host = NULL;
    assert_int_equal(sdk_connect(&cfg, &out), SDK_EINVAL);
    assert_int_equal(sdk_last_connect_error(detail, sizeof(detail)), SDK_EINVAL);
    assert_non_null(strstr(detail, "host and port"));
    cfg.host = "";
    assert_int_equal(sdk_connect(&cfg, &out), SDK_EINVAL);
    ht_client_config(&cfg, 0);
    assert_int_equal(sdk_connect(&cfg, &out), SDK_EINVAL);
    ht_client_config(&cfg, hs->port);
    cfg.reconnect_max_ms = cfg.reconnect_min_ms - 1;
    assert_int_equal(sdk_connect(&cfg, &out), SDK_EINVAL);
    ht_client_config(&cfg, hs->port);
    cfg.queue_max_messages = 0;
    assert_int_equal(sdk_connect(&cfg, &out), SDK_EINVAL);
    ht_client_config(&cfg, hs->port);
    cfg.connect_timeout_ms = 0;
    assert_int_equal(sdk_connect(&cfg, &out), SDK_EINVAL);
    assert_null(out);

    /* The error table's edges. */
    assert_string_equal(sdk_errname(SDK_OK), "SDK_OK");
    assert_string_equal(sdk_errname(SDK_EQUEUEFULL), "SDK_EQUEUEFULL");
    assert_string_equal(sdk_strerror(SDK_ETIMEDOUT), "timed out");
    assert_string_equal(sdk_strerror(-1), "unknown error");
    assert_string_equal(sdk_strerror(SDK_ERR_COUNT_), "unknown error");
    assert_string_equal(sdk_state_name(SDK_STATE_RECONNECTING), "reconnecting");
}

static void test_recv_timeouts(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs);
    sdk_message *m = (sdk_message *)1;

    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_recv(c, &m, 0), SDK_ETIMEDOUT);
    assert_true(ht_now_ms() - t0 < 50);
    assert_null(m);

    t0 = ht_now_ms();
    assert_int_equal(sdk_recv(c, &m, 100), SDK_ETIMEDOUT);
    uint64_t took = ht_now_ms() - t0;
    if (took < 99 || took > PROMPT_MS) {
        fail_msg("sdk_recv(timeout 100) returned after %llu ms", (unsigned long long)took);
    }
    /* timeout 0 still takes a message that is already there. */
    assert_int_equal(sdk_send(c, "ready", 5, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    sdk_stats st;
    t0 = ht_now_ms();
    do {
        assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    } while (st.msgs_received < 1 && ht_now_ms() - t0 < HT_WAIT_MS);
    assert_int_equal(sdk_recv(c, &m, 0), SDK_OK);
    assert_memory_equal(m->data, "ready", 5);
    sdk_message_free(m);
    sdk_destroy(c);
}

static void test_calls_after_close(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs);
    sdk_message *m = NULL;
    sdk_stats st;

    /* Three echoes reach the client before it closes: recv still hands them out. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sdk_send(c, "abc", 3, HT_WAIT_MS), SDK_OK);
    }
    uint64_t t0 = ht_now_ms();
    do {
        assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    } while (st.msgs_received < 3 && ht_now_ms() - t0 < HT_WAIT_MS);
    assert_int_equal(st.msgs_received, 3);

    assert_int_equal(sdk_close(c), SDK_OK);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CLOSED);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sdk_recv(c, &m, 0), SDK_OK);
        assert_memory_equal(m->data, "abc", 3);
        sdk_message_free(m);
    }
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_ECLOSED);
    assert_null(m);
    assert_int_equal(sdk_recv(c, &m, -1), SDK_ECLOSED); /* no wait forever on a closed handle */
    assert_int_equal(sdk_send(c, "x", 1, HT_WAIT_MS), SDK_ECLOSED);
    assert_int_equal(sdk_send_typed(c, "t", "x", 1, -1), SDK_ECLOSED);
    assert_int_equal(sdk_send(c, NULL, 0, 0), SDK_ECLOSED);
    /* Everything sent before close was acknowledged, yet a closed client's flush is
     * SDK_ECLOSED: one rule, whatever is left (and at once). */
    t0 = ht_now_ms();
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_ECLOSED);
    assert_int_equal(sdk_flush_to(c, 1, HT_WAIT_MS), SDK_ECLOSED);
    assert_true(ht_now_ms() - t0 < PROMPT_MS);
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK); /* works after close */
    assert_int_equal(st.state, SDK_STATE_CLOSED);
    assert_int_equal(st.connects, 1);
    char detail[64];
    assert_int_equal(sdk_last_error(c, detail, sizeof(detail)), SDK_OK);
    /* Twice is harmless. */
    assert_int_equal(sdk_close(c), SDK_OK);
    assert_int_equal(sdk_close(c), SDK_OK);
    sdk_destroy(c);
}

/* Flush after close with messages still unacknowledged: SDK_ECLOSED, at once. */
static void test_flush_after_close_with_pending(void **state)
{
    (void)state;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    sdk_config cfg;
    assert_int_not_equal(port, 0);
    ht_client_config(&cfg, port);
    sdk_client *c = connect_nowhere(port, &cfg);
    assert_int_equal(sdk_send(c, "pending", 7, 0), SDK_OK);
    assert_int_equal(sdk_flush(c, 0), SDK_ETIMEDOUT);
    assert_int_equal(sdk_close(c), SDK_OK);
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_ECLOSED);
    assert_int_equal(sdk_flush(c, -1), SDK_ECLOSED);
    assert_true(ht_now_ms() - t0 < PROMPT_MS);
    sdk_destroy(c);
    close(holder);
}

typedef struct blocked_call {
    sdk_client *c;
    int kind; /* 0: recv, 1: send into a full queue, 2: flush */
    sdk_err rc;
    uint64_t returned_ms;
} blocked_call;

static void *blocked_main(void *arg)
{
    blocked_call *b = arg;
    sdk_message *m = NULL;
    switch (b->kind) {
    case 0:
        b->rc = sdk_recv(b->c, &m, -1);
        sdk_message_free(m);
        break;
    case 1:
        b->rc = sdk_send(b->c, "more", 4, -1);
        break;
    default:
        b->rc = sdk_flush(b->c, -1);
        break;
    }
    b->returned_ms = ht_now_ms();
    return NULL;
}

static void test_close_wakes_blocked_recv(void **state)
{
    ht_server *hs = *state;
    blocked_call b = {.c = connect_to(hs), .kind = 0, .rc = SDK_OK};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_main, &b), 0);
    ht_sleep_ms(100); /* let it block */
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_close(b.c), SDK_OK);
    pthread_join(t, NULL);
    assert_int_equal(b.rc, SDK_ECLOSED);
    assert_true(b.returned_ms - t0 < PROMPT_MS);
    assert_true(ht_now_ms() - t0 < PROMPT_MS);
    sdk_destroy(b.c);
}

/* Two threads closing the same client at once both return, after the I/O thread ends. */
static void *close_main(void *arg)
{
    return (void *)(intptr_t)sdk_close(arg);
}

static void test_concurrent_close(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, close_main, c), 0);
    }
    for (int i = 0; i < 3; i++) {
        void *rc = NULL;
        pthread_join(t[i], &rc);
        assert_int_equal((intptr_t)rc, SDK_OK);
    }
    assert_int_equal(sdk_get_state(c), SDK_STATE_CLOSED);
    sdk_destroy(c);
}

static void test_queue_full(void **state)
{
    (void)state;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    sdk_config cfg;
    assert_int_not_equal(port, 0);
    ht_client_config(&cfg, port);
    cfg.queue_max_messages = 10;
    cfg.reconnect_min_ms = 50;
    cfg.reconnect_max_ms = 200;
    sdk_client *c = connect_nowhere(port, &cfg);
    assert_int_not_equal(sdk_get_state(c), SDK_STATE_CONNECTED);

    for (int i = 0; i < 10; i++) {
        assert_int_equal(sdk_send(c, "q", 1, 0), SDK_OK);
    }
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_send(c, "q", 1, 0), SDK_EQUEUEFULL);
    assert_true(ht_now_ms() - t0 < 50);
    t0 = ht_now_ms();
    assert_int_equal(sdk_send(c, "q", 1, 50), SDK_EQUEUEFULL);
    uint64_t took = ht_now_ms() - t0;
    if (took < 49 || took > PROMPT_MS) {
        fail_msg("sdk_send(timeout 50) on a full queue returned after %llu ms", (unsigned long long)took);
    }
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.queue_depth, 10);
    assert_int_equal(st.queue_bytes, 10);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.msgs_sent, 0);

    /* A sender blocked without limit is woken by close. */
    blocked_call b = {.c = c, .kind = 1, .rc = SDK_OK};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_main, &b), 0);
    blocked_call f = {.c = c, .kind = 2, .rc = SDK_OK};
    pthread_t tf;
    assert_int_equal(pthread_create(&tf, NULL, blocked_main, &f), 0);
    ht_sleep_ms(100);
    t0 = ht_now_ms();
    assert_int_equal(sdk_close(c), SDK_OK);
    pthread_join(t, NULL);
    pthread_join(tf, NULL);
    assert_int_equal(b.rc, SDK_ECLOSED);
    assert_int_equal(f.rc, SDK_ECLOSED);
    assert_true(b.returned_ms - t0 < PROMPT_MS);
    assert_true(f.returned_ms - t0 < PROMPT_MS);
    sdk_destroy(c);
    close(holder);
}

static void test_queue_full_bytes(void **state)
{
    (void)state;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    sdk_config cfg;
    uint8_t buf[600] = {0};
    assert_int_not_equal(port, 0);
    ht_client_config(&cfg, port);
    cfg.queue_max_bytes = 1000;
    sdk_client *c = connect_nowhere(port, &cfg);
    assert_int_equal(sdk_send(c, buf, 600, 0), SDK_OK);
    assert_int_equal(sdk_send(c, buf, 600, 20), SDK_EQUEUEFULL);
    assert_int_equal(sdk_send(c, buf, 400, 0), SDK_OK); /* exactly fills it */
    assert_int_equal(sdk_send(c, buf, 1, 0), SDK_EQUEUEFULL);
    assert_int_equal(sdk_send(c, NULL, 0, 0), SDK_OK); /* empty messages cost no bytes */
    sdk_destroy(c);
    close(holder);
}

static void test_close_during_backoff(void **state)
{
    (void)state;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    sdk_config cfg;
    ht_events ev;
    assert_int_not_equal(port, 0);
    ht_events_init(&ev);
    ht_client_config(&cfg, port);
    ht_events_attach(&ev, &cfg);
    cfg.reconnect_min_ms = 60000;
    cfg.reconnect_max_ms = 60000;
    sdk_client *c = connect_nowhere(port, &cfg);

    ht_event e;
    assert_true(ht_events_wait(&ev, SDK_EVENT_RECONNECTING, 0, HT_WAIT_MS, &e) >= 0);
    assert_int_equal(e.error, SDK_ECONNREFUSED);
    assert_non_null(strstr(e.detail, "Connection refused"));
    assert_true(e.delay_ms <= 60000);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTING); /* never connected yet */
    ht_sleep_ms(50);

    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_close(c), SDK_OK);
    uint64_t took = ht_now_ms() - t0;
    if (took >= PROMPT_MS) {
        fail_msg("sdk_close during a 60 s backoff took %llu ms", (unsigned long long)took);
    }
    assert_int_equal(sdk_get_state(c), SDK_STATE_CLOSED);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CLOSED, 0, 0, &e) >= 0);
    assert_int_equal(e.error, SDK_OK); /* closed by us, not given up */
    char detail[256];
    assert_int_equal(sdk_last_error(c, detail, sizeof(detail)), SDK_ECONNREFUSED);
    assert_non_null(strstr(detail, "Connection refused"));
    sdk_destroy(c);
    ht_events_free(&ev);
    close(holder);
}

/* retry_on_first_connect with a limit: exactly that many attempts, then CLOSED with why. */
static void test_first_connect_gives_up(void **state)
{
    (void)state;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    sdk_config cfg;
    ht_events ev;
    assert_int_not_equal(port, 0);
    ht_events_init(&ev);
    ht_client_config(&cfg, port);
    ht_events_attach(&ev, &cfg);
    cfg.reconnect_min_ms = 1;
    cfg.reconnect_max_ms = 5;
    cfg.max_reconnect_attempts = 3;
    sdk_client *c = connect_nowhere(port, &cfg);
    assert_true(ht_wait_state(c, SDK_STATE_CLOSED, HT_WAIT_MS));
    ht_event e;
    assert_true(ht_events_wait(&ev, SDK_EVENT_CLOSED, 0, HT_WAIT_MS, &e) >= 0);
    assert_int_equal(e.error, SDK_ECONNREFUSED);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTING), 3);
    assert_int_equal(sdk_send(c, "x", 1, 0), SDK_ECLOSED);
    char detail[256];
    assert_int_equal(sdk_last_error(c, detail, sizeof(detail)), SDK_ECONNREFUSED);
    sdk_destroy(c);
    ht_events_free(&ev);
    close(holder);
}

/* Destroy without close, with a connected client and messages in both queues. */
static void test_destroy_without_close(void **state)
{
    ht_server *hs = *state;
    sdk_client *c = connect_to(hs);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sdk_send(c, "unread", 6, HT_WAIT_MS), SDK_OK);
    }
    sdk_destroy(c); /* leak checkers verify the queued messages were freed */
}

/* A server application that starts reading only after a while. */
typedef struct late_reader {
    sdk_server *srv;
    int delay_ms;
    int count;
    int got; /* messages taken, in order and intact */
} late_reader;

static void *late_reader_main(void *arg)
{
    late_reader *r = arg;
    ht_sleep_ms(r->delay_ms);
    for (int i = 0; i < r->count; i++) {
        sdk_message *m = NULL;
        if (sdk_server_recv(r->srv, &m, HT_WAIT_MS) != SDK_OK) {
            break;
        }
        bool ok = m->len == sizeof(i) && memcmp(m->data, &i, sizeof(i)) == 0;
        sdk_message_free(m);
        if (!ok) {
            break;
        }
        r->got++;
    }
    return NULL;
}

/* close_linger_ms: sdk_close first waits until what was sent is acknowledged, which here
 * happens only once the server application starts reading, 300 ms later. */
static void test_close_linger_flushes(void **state)
{
    (void)state;
    ht_server hs;
    sdk_config cfg;
    sdk_client *c = NULL;
    assert_int_equal(ht_server_start(&hs, NULL, false), SDK_OK);
    ht_client_config(&cfg, hs.port);
    cfg.close_linger_ms = 5000;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sdk_send(c, &i, sizeof(i), HT_WAIT_MS), SDK_OK);
    }
    late_reader r = {.srv = hs.srv, .delay_ms = 300, .count = 20};
    pthread_t t;
    uint64_t t0 = ht_now_ms();
    assert_int_equal(pthread_create(&t, NULL, late_reader_main, &r), 0);
    assert_int_equal(sdk_close(c), SDK_OK);
    uint64_t took = ht_now_ms() - t0;
    pthread_join(t, NULL);
    assert_int_equal(r.got, 20);
    if (took < 250 || took >= 5000) {
        fail_msg("sdk_close with linger took %llu ms; the server read after 300 ms", (unsigned long long)took);
    }
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.queue_depth, 0); /* all acknowledged before the close frame */
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

/* Without linger, sdk_close does not wait for acknowledgements. */
static void test_close_without_linger_is_prompt(void **state)
{
    (void)state;
    ht_server hs;
    sdk_config cfg;
    sdk_client *c = NULL;
    assert_int_equal(ht_server_start(&hs, NULL, false), SDK_OK); /* nobody reads */
    ht_client_config(&cfg, hs.port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(sdk_send(c, &i, sizeof(i), HT_WAIT_MS), SDK_OK);
    }
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_close(c), SDK_OK);
    assert_true(ht_now_ms() - t0 < PROMPT_MS);
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_null_arguments, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_recv_timeouts, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_calls_after_close, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_flush_after_close_with_pending),
        cmocka_unit_test_setup_teardown(test_close_wakes_blocked_recv, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_concurrent_close, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_queue_full_bytes),
        cmocka_unit_test(test_close_during_backoff),
        cmocka_unit_test(test_first_connect_gives_up),
        cmocka_unit_test_setup_teardown(test_destroy_without_close, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_close_linger_flushes),
        cmocka_unit_test(test_close_without_linger_is_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
