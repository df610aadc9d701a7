/*
 * Round trip through the real server over TLS: every message comes back exactly once, in
 * order, byte for byte, with its type; flush and the statistics agree with what was sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes around the interesting edges: empty, tiny, a TLS record (16 KiB), several records. */
static const size_t SIZES[] = {0, 1, 2, 3, 100, 1000, 16383, 16384, 16385, 65536, 100000, 0, 7};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))
#define ROUNDS 20
#define NMSG   (NSIZES * ROUNDS)

static size_t size_of(size_t i)
{
    return SIZES[i % NSIZES];
}

/* Every third message is typed; of the untyped ones, some say "" (which means none). */
static const char *type_of(size_t i)
{
    static const char *const types[] = {"lifeline.test.Echo", NULL, "", "a.b.C"};
    return types[i % 4];
}

static void test_roundtrip_in_order(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    sdk_client *c = NULL;
    uint8_t *buf = malloc(100000);
    uint64_t bytes = 0;
    assert_non_null(buf);
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_non_null(c);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTED);

    for (size_t i = 0; i < NMSG; i++) {
        ht_fill(buf, size_of(i), (uint32_t)i);
        const char *type = type_of(i);
        sdk_err rc =
            type ? sdk_send_typed(c, type, buf, size_of(i), HT_WAIT_MS) : sdk_send(c, buf, size_of(i), HT_WAIT_MS);
        assert_int_equal(rc, SDK_OK);
        bytes += size_of(i);
    }
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);

    for (size_t i = 0; i < NMSG; i++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
        assert_non_null(m);
        assert_int_equal(m->len, size_of(i));
        assert_true(ht_check(m->data, m->len, (uint32_t)i));
        assert_int_equal(m->seq, i + 1);
        assert_int_equal(m->session, 0);
        assert_null(m->peer);
        const char *type = type_of(i);
        if (type && *type) {
            assert_non_null(m->type);
            assert_string_equal(m->type, type);
        } else {
            assert_null(m->type);
        }
        sdk_message_free(m);
    }
    /* Nothing more: no duplicate arrives late. */
    sdk_message *extra = NULL;
    assert_int_equal(sdk_recv(c, &extra, 200), SDK_ETIMEDOUT);
    assert_null(extra);

    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.state, SDK_STATE_CONNECTED);
    assert_int_equal(st.msgs_sent, NMSG);
    assert_int_equal(st.bytes_sent, bytes);
    assert_int_equal(st.msgs_received, NMSG);
    assert_int_equal(st.bytes_received, bytes);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.handshakes_full, 1);
    assert_int_equal(st.handshakes_resumed, 0);
    assert_int_equal(st.sessions_lost, 0);
    assert_int_equal(st.retransmits, 0);
    assert_int_equal(st.duplicates_dropped, 0);
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(st.queue_bytes, 0);

    char detail[256] = "x";
    assert_int_equal(sdk_last_error(c, detail, sizeof(detail)), SDK_OK);
    assert_string_equal(detail, "");

    assert_int_equal(atomic_load(&hs->echoed), NMSG);
    assert_int_equal(atomic_load(&hs->echo_failed), 0);

    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(hs->srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].received, NMSG);
    assert_int_equal(info[0].connections, 1);
    free(info);

    assert_int_equal(sdk_close(c), SDK_OK);
    sdk_destroy(c);
    free(buf);
}

/* sdk_flush waits for the server application: after it returns, the server has them all. */
static void test_flush_means_delivered(void **state)
{
    (void)state;
    ht_server hs;
    sdk_config cfg;
    sdk_client *c = NULL;
    char text[32];
    assert_int_equal(ht_server_start(&hs, NULL, false), SDK_OK); /* no echo: we read ourselves */
    ht_client_config(&cfg, hs.port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    for (int i = 0; i < 50; i++) {
        int n = snprintf(text, sizeof(text), "msg %d", i);
        assert_int_equal(sdk_send(c, text, (size_t)n, HT_WAIT_MS), SDK_OK);
    }
    /* Nobody takes them on the server yet: they are not acknowledged, so flush times out. */
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_flush(c, 150), SDK_ETIMEDOUT);
    assert_true(ht_now_ms() - t0 >= 140);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.queue_depth, 50);

    uint64_t session = 0;
    for (int i = 0; i < 50; i++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_server_recv(hs.srv, &m, HT_WAIT_MS), SDK_OK);
        int n = snprintf(text, sizeof(text), "msg %d", i);
        assert_int_equal(m->len, (size_t)n);
        assert_memory_equal(m->data, text, (size_t)n);
        assert_int_equal(m->seq, (uint64_t)i + 1);
        assert_int_not_equal(m->session, 0);
        assert_null(m->peer); /* no client certificate */
        if (session == 0) {
            session = m->session;
        }
        assert_int_equal(m->session, session);
        sdk_message_free(m);
    }
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.queue_depth, 0);
    /* Flush with nothing outstanding returns at once, even with timeout 0. */
    assert_int_equal(sdk_flush(c, 0), SDK_OK);

    /* The other direction, typed, from the server application. */
    assert_int_equal(sdk_server_send_typed(hs.srv, session, "x.Y", "hello", 5, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_server_send(hs.srv, session, NULL, 0, HT_WAIT_MS), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 5);
    assert_memory_equal(m->data, "hello", 5);
    assert_string_equal(m->type, "x.Y");
    sdk_message_free(m);
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 0);
    assert_null(m->type);
    sdk_message_free(m);

    sdk_destroy(c);
    ht_server_destroy(&hs);
}

/* A second client to the same server is a separate session with its own sequence numbers. */
static void test_two_sessions_are_separate(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    sdk_client *a = NULL;
    sdk_client *b = NULL;
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, &a), SDK_OK);
    cfg.host = "localhost"; /* also a DNS name the certificate covers */
    assert_int_equal(sdk_connect(&cfg, &b), SDK_OK);
    assert_int_equal(sdk_send(a, "from a", 6, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_send(b, "from b", 6, HT_WAIT_MS), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(a, &m, HT_WAIT_MS), SDK_OK);
    assert_memory_equal(m->data, "from a", 6);
    assert_int_equal(m->seq, 1);
    sdk_message_free(m);
    assert_int_equal(sdk_recv(b, &m, HT_WAIT_MS), SDK_OK);
    assert_memory_equal(m->data, "from b", 6);
    assert_int_equal(m->seq, 1);
    sdk_message_free(m);
    assert_int_equal(sdk_recv(a, &m, 100), SDK_ETIMEDOUT);
    assert_int_equal(sdk_recv(b, &m, 100), SDK_ETIMEDOUT);
    sdk_destroy(a);
    sdk_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_in_order, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_flush_means_delivered),
        cmocka_unit_test_setup_teardown(test_two_sessions_are_separate, ht_setup_echo_server, ht_teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
