/*
 * Messages near and over the frame limit: large ones round trip intact; one over the
 * client's limit is refused by sdk_send without harming the connection; one over the
 * server's (smaller) limit is refused by the server as a protocol error, and the client
 * says why.
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
#include <unistd.h>

#define MIB               (1024u * 1024u)
#define DEFAULT_MAX_FRAME (16u * MIB)
/* Room for the frame header and the data frame's fields (seq, type, lengths): generous. */
#define FRAME_OVERHEAD 64u

/* The calling thread's last SDK_ETOOBIG detail must contain needle (size, limit, whose). */
static void expect_too_big_detail(const char *needle)
{
    char detail[256] = "";
    assert_int_equal(sdk_last_call_error(detail, sizeof(detail)), SDK_ETOOBIG);
    if (!strstr(detail, needle)) {
        fail_msg("expected \"%s\" in the SDK_ETOOBIG detail, got \"%s\"", needle, detail);
    }
}

static void roundtrip_one(sdk_client *c, size_t len, uint32_t seed, const char *type)
{
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    ht_fill(buf, len, seed);
    assert_int_equal(sdk_send_typed(c, type, buf, len, HT_WAIT_MS), SDK_OK);
    free(buf);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(c, &m, 2 * HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, len);
    assert_true(ht_check(m->data, m->len, seed));
    if (type) {
        assert_string_equal(m->type, type);
    }
    sdk_message_free(m);
}

/* Fails the test if the server dropped a connection: a large message must not need one. */
static void assert_no_detach(ht_sevents *sev)
{
    ht_sevent se;
    if (ht_sevents_wait(sev, SDK_SESSION_DETACHED, 0, 0, 0, &se) >= 0) {
        fail_msg("the server dropped the connection (cause %s) while echoing a large message",
                 sdk_cause_name(se.cause));
    }
}

static void test_large_messages_roundtrip(void **state)
{
    (void)state;
    ht_server hs;
    ht_sevents sev;
    sdk_server_config scfg;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_sevents_init(&sev);
    ht_server_config(&scfg);
    ht_sevents_attach(&sev, &scfg);
    assert_int_equal(scfg.max_frame, DEFAULT_MAX_FRAME);
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);
    ht_client_config(&cfg, hs.port);
    assert_int_equal(cfg.max_frame, DEFAULT_MAX_FRAME);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);

    roundtrip_one(c, 8 * MIB, 1, NULL);
    assert_no_detach(&sev);
    roundtrip_one(c, DEFAULT_MAX_FRAME - FRAME_OVERHEAD, 2, "big.Type");
    assert_no_detach(&sev);
    roundtrip_one(c, 3, 3, NULL); /* small ones still flow behind them */

    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.msgs_received, 3);
    assert_int_equal(st.bytes_received, 8 * MIB + DEFAULT_MAX_FRAME - FRAME_OVERHEAD + 3);
    assert_int_equal(st.connects, 1); /* no reconnect was needed to get them through */
    assert_int_equal(st.duplicates_dropped, 0);
    assert_int_equal(atomic_load(&hs.echo_failed), 0);
    sdk_destroy(c);
    ht_server_destroy(&hs);
    ht_sevents_free(&sev);
}

static void test_too_big_for_client(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);

    uint8_t *buf = calloc(1, DEFAULT_MAX_FRAME + 1);
    assert_non_null(buf);
    /* The payload alone fills the frame: header and fields push it over. */
    assert_int_equal(sdk_send(c, buf, DEFAULT_MAX_FRAME, 0), SDK_ETOOBIG);
    assert_int_equal(sdk_send(c, buf, DEFAULT_MAX_FRAME + 1, 0), SDK_ETOOBIG);
    assert_int_equal(sdk_send_typed(c, "t", buf, DEFAULT_MAX_FRAME, 0), SDK_ETOOBIG);
    free(buf);

    /* Refused before queueing: nothing was sent and the connection is untouched. */
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(st.msgs_sent, 0);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTED);
    roundtrip_one(c, 10, 7, NULL);
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.connects, 1);
    sdk_destroy(c);
}

/* A client limit smaller than the default: the edge is exact to within the overhead. */
static void test_client_limit_edge(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    cfg.max_frame = 64 * 1024;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    uint8_t *buf = calloc(1, 64 * 1024);
    assert_non_null(buf);
    assert_int_equal(sdk_send(c, buf, 64 * 1024, 0), SDK_ETOOBIG);
    expect_too_big_detail("a message of 65536 bytes makes a frame of up to");
    expect_too_big_detail("over this client's max_frame of 65536 bytes");
    assert_int_equal(sdk_send(c, buf, 64 * 1024 - 4, 0), SDK_ETOOBIG); /* header alone is 4 */
    free(buf);
    roundtrip_one(c, 64 * 1024 - FRAME_OVERHEAD, 9, NULL);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTED);
    sdk_destroy(c);
}

/* A message larger than the queue's byte budget can never be queued: ETOOBIG, not a wait. */
static void test_bigger_than_queue(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, hs->port);
    cfg.queue_max_bytes = 1000;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    uint8_t buf[1001] = {0};
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_send(c, buf, sizeof(buf), 5000), SDK_ETOOBIG);
    assert_true(ht_now_ms() - t0 < 1000);
    expect_too_big_detail("a message of 1001 bytes is over this client's queue_max_bytes of 1000 bytes");
    roundtrip_one(c, 1000, 11, NULL);
    sdk_destroy(c);
}

/* Once connected, the client knows the server's limit and refuses bigger sends itself. */
static void test_server_limit_learned(void **state)
{
    (void)state;
    ht_server hs;
    sdk_server_config scfg;
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_server_config(&scfg);
    scfg.max_frame = 64 * 1024;
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);
    ht_client_config(&cfg, hs.port);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    roundtrip_one(c, 1000, 5, NULL); /* within both limits: fine */

    uint8_t *buf = calloc(1, 100 * 1024);
    assert_non_null(buf);
    assert_int_equal(sdk_send(c, buf, 100 * 1024, HT_WAIT_MS), SDK_ETOOBIG); /* within ours only */
    expect_too_big_detail("a message of 102400 bytes makes a frame of up to");
    expect_too_big_detail("over the server's max_frame of 65536 bytes");
    free(buf);
    roundtrip_one(c, 60 * 1024, 6, NULL); /* the connection is untouched */
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.connects, 1);
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

/* Queued before the client could know the limit: the server refuses the frame and tells the
 * client not to come back (it would only send the same frame again); the server stays healthy. */
static void test_server_refuses_over_its_limit(void **state)
{
    (void)state;
    ht_server hs;
    ht_sevents sev;
    ht_events ev;
    sdk_server_config scfg;
    sdk_config cfg;
    sdk_client *c = NULL;
    int holder = -1;
    uint16_t port = ht_closed_port(&holder);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);

    ht_client_config(&cfg, port);
    ht_events_init(&ev);
    ht_events_attach(&ev, &cfg);
    cfg.retry_on_first_connect = true;
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 50;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    uint8_t *buf = calloc(1, 100 * 1024);
    assert_non_null(buf);
    assert_int_equal(sdk_send(c, buf, 100 * 1024, HT_WAIT_MS), SDK_OK); /* within ours; queued */
    free(buf);

    ht_sevents_init(&sev);
    ht_server_config(&scfg);
    scfg.listen = listen;
    scfg.max_frame = 64 * 1024;
    ht_sevents_attach(&sev, &scfg);
    close(holder);
    assert_int_equal(ht_server_start(&hs, &scfg, true), SDK_OK);

    ht_event e;
    assert_true(ht_events_wait(&ev, SDK_EVENT_DISCONNECTED, 0, HT_WAIT_MS, &e) >= 0);
    assert_int_equal(e.error, SDK_EREJECTED);
    if (!strstr(e.detail, "exceeds limit 65536")) {
        fail_msg("disconnect detail does not say why: \"%s\"", e.detail);
    }
    assert_true(ht_wait_state(c, SDK_STATE_CLOSED, HT_WAIT_MS));
    char detail[256];
    assert_int_equal(sdk_last_error(c, detail, sizeof(detail)), SDK_EREJECTED);
    if (!strstr(detail, "server closed the connection") || !strstr(detail, "exceeds limit 65536")) {
        fail_msg("sdk_last_error detail: \"%s\"", detail);
    }
    assert_true(ht_events_wait(&ev, SDK_EVENT_CLOSED, 0, HT_WAIT_MS, &e) >= 0);
    assert_int_equal(e.error, SDK_EREJECTED);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTED), 1); /* no retry after the refusal */

    /* The server saw a protocol error on that session, ended it (the client was told not to
     * come back), and is still healthy. */
    ht_sevent se;
    assert_true(ht_sevents_wait(&sev, SDK_SESSION_CLOSED, 0, 0, HT_WAIT_MS, &se) >= 0);
    assert_int_equal(se.cause, SDK_CAUSE_PROTOCOL_ERROR);
    sdk_client *c2 = NULL;
    sdk_config cfg2;
    ht_client_config(&cfg2, port);
    assert_int_equal(sdk_connect(&cfg2, &c2), SDK_OK);
    roundtrip_one(c2, 60 * 1024, 6, NULL);
    sdk_destroy(c2);

    sdk_destroy(c);
    ht_server_destroy(&hs);
    ht_events_free(&ev);
    ht_sevents_free(&sev);
}

/* The client announces its limit in its hello: the server refuses bigger sends to it at once
 * instead of sending a frame the client would reject on every resume. */
static void test_client_limit_known_to_server(void **state)
{
    (void)state;
    ht_server hs;
    assert_int_equal(ht_server_start(&hs, NULL, false), SDK_OK);
    sdk_config cfg;
    ht_client_config(&cfg, hs.port);
    cfg.max_frame = 4096;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_send(c, "hi", 2, HT_WAIT_MS), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_server_recv(hs.srv, &m, HT_WAIT_MS), SDK_OK);
    uint64_t session = m->session;
    sdk_message_free(m);

    uint8_t *big = calloc(1, 8000);
    assert_non_null(big);
    assert_int_equal(sdk_server_send(hs.srv, session, big, 8000, HT_WAIT_MS), SDK_ETOOBIG);
    expect_too_big_detail("over the client's max_frame of 4096 bytes");
    assert_int_equal(sdk_server_send(hs.srv, session, big, 1000, HT_WAIT_MS), SDK_OK);
    free(big);
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 1000);
    sdk_message_free(m);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.connects, 1); /* never disconnected */
    sdk_destroy(c);
    ht_server_destroy(&hs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_large_messages_roundtrip),
        cmocka_unit_test_setup_teardown(test_too_big_for_client, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_client_limit_edge, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_bigger_than_queue, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_server_limit_learned),
        cmocka_unit_test(test_client_limit_known_to_server),
        cmocka_unit_test(test_server_refuses_over_its_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
