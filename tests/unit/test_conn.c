/* conn.c: the connection core, driven without sockets: frames in, events and frames out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conn.h"
#include "ll.h"

#include <string.h>

#define LONG_REASON                                                                            \
    "the hello named session 12345678901234567890 at a position outside what was ever sent, "  \
    "which no honest client can do; this sentence goes on to be longer than any frame limit "  \
    "the smallest configurations allow, and longer than the 255 characters a close reason is " \
    "ever given on the wire, so both cuts show"
#define NOW_MS 1000000u
#define NOW_US ((uint64_t)NOW_MS * 1000)

/* ---- helpers: the peer's side of the wire ---- */

static void feed_frame(ll_conn *c, Lifeline__Frame *f)
{
    ll_buf b = {0};
    assert_int_equal(ll_encode_frame(&b, f, LL_MAX_FRAME_DEFAULT), 0);
    assert_int_equal(ll_conn_feed(c, ll_buf_head(&b), ll_buf_size(&b), NOW_MS), 0);
    ll_buf_free(&b);
}

static void feed_data(ll_conn *c, uint64_t seq, const char *payload)
{
    ll_buf b = {0};
    assert_int_equal(ll_encode_data(&b, seq, payload, strlen(payload), NULL, LL_MAX_FRAME_DEFAULT), 0);
    assert_int_equal(ll_conn_feed(c, ll_buf_head(&b), ll_buf_size(&b), NOW_MS), 0);
    ll_buf_free(&b);
}

static void feed_ack(ll_conn *c, uint64_t seq)
{
    Lifeline__Ack ack = LIFELINE__ACK__INIT;
    ack.seq = seq;
    feed_frame(c, &LL_FRAME_OF(ack, ACK, &ack));
}

static void feed_hello(ll_conn *c, uint32_t version)
{
    Lifeline__Hello h = LIFELINE__HELLO__INIT;
    h.version = version;
    feed_frame(c, &LL_FRAME_OF(hello, HELLO, &h));
}

/* The frames the connection wrote, in order (up to max); out is emptied. */
static size_t written(ll_conn *c, Lifeline__Frame **frames, size_t max)
{
    ll_decoder d;
    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&c->out), ll_buf_size(&c->out)), 0);
    ll_conn_wrote(c, ll_buf_size(&c->out), NOW_MS);
    size_t n = 0;
    while (n < max && ll_decoder_next(&d, &frames[n]) == LL_DEC_FRAME) {
        n++;
    }
    assert_int_equal(d.err, 0);
    ll_decoder_free(&d);
    return n;
}

static void free_frames(Lifeline__Frame **frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ll_frame_free(frames[i]);
    }
}

/* The one Close the connection wrote: its code and reconnect flag. */
static void assert_closed_with(ll_conn *c, int code, bool reconnect)
{
    Lifeline__Frame *f[4];
    size_t n = written(c, f, 4);
    assert_int_equal(n, 1);
    assert_int_equal(f[0]->kind_case, LIFELINE__FRAME__KIND_CLOSE);
    assert_int_equal(f[0]->close->code, code);
    assert_int_equal(f[0]->close->reconnect, reconnect);
    free_frames(f, n);
    assert_int_equal(c->phase, LL_CONN_CLOSED);
}

typedef struct fixture {
    ll_conn c;
    ll_session s;
} fixture;

/* A READY connection of role carrying a fresh session. */
static void ready(fixture *fx, ll_role role, uint32_t window_messages, uint64_t window_bytes)
{
    ll_conn_init(&fx->c, role, LL_MAX_FRAME_DEFAULT);
    ll_session_init(&fx->s, window_messages, window_bytes);
    ll_conn_attach(&fx->c, &fx->s, role == LL_ROLE_CLIENT ? 1000 : 0, 3000, NOW_MS);
}

static void done(fixture *fx)
{
    ll_conn_free(&fx->c);
    ll_session_free(&fx->s);
}

/* ---- tests ---- */

static void test_server_greeting_yields_the_hello(void **state)
{
    (void)state;
    ll_conn c;
    ll_conn_init(&c, LL_ROLE_SERVER, LL_MAX_FRAME_DEFAULT);
    feed_hello(&c, 1);
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&c, NOW_US, &ev), LL_CONN_EVENT);
    assert_int_equal(ev.type, LL_EV_HELLO);
    assert_int_equal(ev.frame.pb->hello->version, 1);
    assert_int_equal(ll_conn_next(&c, NOW_US, &ev), LL_CONN_NEED_MORE);
    ll_conn_free(&c);
}

static void test_data_before_hello_is_a_protocol_error(void **state)
{
    (void)state;
    ll_conn c;
    ll_conn_init(&c, LL_ROLE_SERVER, LL_MAX_FRAME_DEFAULT);
    feed_data(&c, 1, "early");
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&c, NOW_US, &ev), LL_CONN_FAILED);
    assert_int_equal(c.err, SDK_EPROTO);
    assert_non_null(strstr(c.detail, "expected hello"));
    assert_closed_with(&c, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, false); /* the server: do not return */
    assert_int_equal(ll_conn_next(&c, NOW_US, &ev), LL_CONN_FAILED);      /* sticky */
    ll_conn_free(&c);
}

static void test_data_in_sequence_duplicates_dropped(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
    feed_data(&fx.c, 1, "one");
    feed_data(&fx.c, 1, "one again");
    feed_data(&fx.c, 2, "two");
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_int_equal(ev.type, LL_EV_DATA);
    assert_true(ev.frame.data.seq == 1 && ev.frame.data.len == 3);
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_true(ev.frame.data.seq == 2);
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_NEED_MORE);
    assert_int_equal(fx.s.duplicates, 1);
    done(&fx);
}

static void test_sequence_zero_and_gaps_fail(void **state)
{
    (void)state;
    static const uint64_t bad[] = {0, 2};
    for (size_t i = 0; i < 2; i++) {
        fixture fx;
        ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
        feed_data(&fx.c, bad[i], "x");
        ll_conn_event ev;
        assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_FAILED);
        assert_int_equal(fx.c.err, SDK_EPROTO);
        assert_closed_with(&fx.c, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, false);
        done(&fx);
    }
}

static void test_client_protocol_error_keeps_its_session(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_CLIENT, 16, 1 << 20);
    feed_ack(&fx.c, 5); /* nothing was ever sent */
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_FAILED);
    assert_non_null(strstr(fx.c.detail, "never sent"));
    assert_closed_with(&fx.c, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, true);
    done(&fx);
}

static void test_too_big_frame_closes_for_good(void **state)
{
    (void)state;
    ll_conn c;
    ll_conn_init(&c, LL_ROLE_CLIENT, 64);
    uint8_t header[4];
    ll_put_be32(header, 65);
    assert_int_equal(ll_conn_feed(&c, header, sizeof header, NOW_MS), SDK_ETOOBIG);
    assert_int_equal(c.err, SDK_ETOOBIG);
    assert_closed_with(&c, LIFELINE__CLOSE__CODE__TOO_BIG, false);
    ll_conn_free(&c);
}

static void test_ack_event_and_stale_acks(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
    assert_int_equal(ll_session_enqueue(&fx.s, "a", 1, NULL), 0);
    assert_int_equal(ll_session_enqueue(&fx.s, "b", 1, NULL), 0);
    assert_int_equal(ll_conn_fill(&fx.c, true, 1 << 20), 0);
    Lifeline__Frame *f[4];
    size_t n = written(&fx.c, f, 4);
    assert_int_equal(n, 2);
    free_frames(f, n);
    feed_ack(&fx.c, 2);
    feed_ack(&fx.c, 1); /* older: harmless */
    feed_ack(&fx.c, 0); /* seq 0 is legal: it acknowledges nothing */
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_int_equal(ev.type, LL_EV_ACKED);
    assert_int_equal(ev.freed, 2);
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_NEED_MORE);
    done(&fx);
}

static void test_ping_answered_with_pong(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = 7;
    ping.timestamp_us = 1234;
    ping.rtt_us = 99;
    feed_frame(&fx.c, &LL_FRAME_OF(ping, PING, &ping));
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_NEED_MORE);
    assert_int_equal(fx.c.peer_rtt_us, 99);
    Lifeline__Frame *f[2];
    assert_int_equal(written(&fx.c, f, 2), 1);
    assert_int_equal(f[0]->kind_case, LIFELINE__FRAME__KIND_PONG);
    assert_true(f[0]->pong->nonce == 7 && f[0]->pong->timestamp_us == 1234);
    free_frames(f, 1);
    done(&fx);
}

/* A quiet connection gives its buffers back only while they hold nothing: half a frame in,
 * or output not yet written, stays; afterwards both work as before. */
static void test_release_buffers_only_when_empty(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
    ll_buf b = {0};
    assert_int_equal(ll_encode_data(&b, 1, "hello", 5, NULL, LL_MAX_FRAME_DEFAULT), 0);
    assert_int_equal(ll_conn_feed(&fx.c, ll_buf_head(&b), 3, NOW_MS), 0); /* part of a frame */
    ll_conn_release_buffers(&fx.c);
    assert_non_null(fx.c.dec.in.data); /* 3 bytes wait for the rest */
    assert_int_equal(ll_conn_feed(&fx.c, ll_buf_head(&b) + 3, ll_buf_size(&b) - 3, NOW_MS), 0);
    ll_buf_free(&b);
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_int_equal(ev.type, LL_EV_DATA);
    assert_memory_equal(ev.frame.data.payload, "hello", 5);
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_NEED_MORE);
    done(&fx);

    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    feed_frame(&fx.c, &LL_FRAME_OF(ping, PING, &ping));
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_NEED_MORE); /* a pong is due */
    ll_conn_release_buffers(&fx.c);
    assert_null(fx.c.dec.in.data);  /* all read */
    assert_non_null(fx.c.out.data); /* the pong is not written yet */
    Lifeline__Frame *f[2];
    assert_int_equal(written(&fx.c, f, 2), 1);
    assert_int_equal(f[0]->kind_case, LIFELINE__FRAME__KIND_PONG);
    free_frames(f, 1);
    ll_conn_release_buffers(&fx.c);
    assert_null(fx.c.out.data);
    feed_data(&fx.c, 1, "again"); /* both are made again as needed */
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_memory_equal(ev.frame.data.payload, "again", 5);
    done(&fx);
}

/* Fix 1: never more than window_bytes in flight, but a lone larger message still goes. */
static void test_byte_window_is_never_exceeded(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_SERVER, 16, 100);
    char sixty[61];
    memset(sixty, 'x', 60);
    sixty[60] = '\0';
    assert_int_equal(ll_session_enqueue(&fx.s, sixty, 60, NULL), 0);
    assert_int_equal(ll_session_enqueue(&fx.s, sixty, 60, NULL), 0);
    assert_int_equal(ll_conn_fill(&fx.c, true, 1 << 20), 0);
    assert_false(ll_conn_can_write(&fx.c));
    Lifeline__Frame *f[4];
    assert_int_equal(written(&fx.c, f, 4), 1); /* 120 bytes would exceed 100 */
    free_frames(f, 1);
    feed_ack(&fx.c, 1);
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_true(ll_conn_can_write(&fx.c));
    assert_int_equal(ll_conn_fill(&fx.c, true, 1 << 20), 0);
    assert_int_equal(written(&fx.c, f, 4), 1);
    free_frames(f, 1);
    done(&fx);

    ready(&fx, LL_ROLE_SERVER, 16, 10); /* a 60-byte message alone, over a 10-byte window */
    assert_int_equal(ll_session_enqueue(&fx.s, sixty, 60, NULL), 0);
    assert_int_equal(ll_conn_fill(&fx.c, true, 1 << 20), 0);
    assert_int_equal(written(&fx.c, f, 4), 1);
    free_frames(f, 1);
    done(&fx);
}

/* Fix 2: a dead peer is told so before the connection closes. */
static void test_heartbeat_timeout_sends_close(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20);
    uint64_t next = 0;
    assert_int_equal(ll_conn_tick(&fx.c, NOW_US + 2999 * 1000, &next), 0);
    assert_int_equal(next, NOW_MS + 3000);
    assert_int_equal(ll_conn_tick(&fx.c, NOW_US + 3000 * 1000, &next), SDK_ETIMEDOUT);
    assert_non_null(strstr(fx.c.detail, "no heartbeat"));
    assert_closed_with(&fx.c, LIFELINE__CLOSE__CODE__HEARTBEAT_TIMEOUT, true);
    done(&fx);
}

static void test_client_pings_when_idle(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_CLIENT, 16, 1 << 20);
    uint64_t next = 0;
    assert_int_equal(ll_conn_tick(&fx.c, NOW_US + 1000 * 1000, &next), 0);
    Lifeline__Frame *f[2];
    assert_int_equal(written(&fx.c, f, 2), 1);
    assert_int_equal(f[0]->kind_case, LIFELINE__FRAME__KIND_PING);
    free_frames(f, 1);
    done(&fx);
}

static void test_peer_close_is_an_event(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_CLIENT, 16, 1 << 20);
    Lifeline__Close cl = LIFELINE__CLOSE__INIT;
    cl.code = LIFELINE__CLOSE__CODE__GOING_AWAY;
    cl.reason = "server stopping";
    cl.reconnect = true;
    feed_frame(&fx.c, &LL_FRAME_OF(close, CLOSE, &cl));
    feed_data(&fx.c, 1, "after the close: never handled");
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_int_equal(ev.type, LL_EV_CLOSE);
    assert_true(ev.frame.pb->close->reconnect);
    assert_string_equal(fx.c.detail, "server closed the connection: server stopping");
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_NEED_MORE);
    assert_int_equal(fx.s.received, 0);
    assert_int_equal(ll_conn_close(&fx.c, 0, "too late", false), 0); /* nothing after a close */
    assert_int_equal(ll_buf_size(&fx.c.out), 0);
    done(&fx);
}

static void test_second_welcome_reaches_the_client_only(void **state)
{
    (void)state;
    fixture fx;
    ready(&fx, LL_ROLE_CLIENT, 16, 1 << 20);
    Lifeline__Welcome w = LIFELINE__WELCOME__INIT;
    w.version = 1;
    w.heartbeat_interval_ms = 500;
    Lifeline__Frame f = LL_FRAME_OF(welcome, WELCOME, &w);
    feed_frame(&fx.c, &f);
    ll_conn_event ev;
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_EVENT);
    assert_int_equal(ev.type, LL_EV_WELCOME);
    done(&fx);

    ready(&fx, LL_ROLE_SERVER, 16, 1 << 20); /* a client never sends one */
    feed_frame(&fx.c, &f);
    assert_int_equal(ll_conn_next(&fx.c, NOW_US, &ev), LL_CONN_FAILED);
    done(&fx);
}

/* Encode a close on a connection with max_frame and read its reason back. */
static void close_frame_reason(uint32_t max_frame, char *reason, size_t reason_len)
{
    ll_conn c;
    ll_conn_init(&c, LL_ROLE_SERVER, max_frame);
    assert_int_equal(ll_conn_close(&c, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, LONG_REASON, false), 0);
    Lifeline__Frame *f[1];
    assert_int_equal(written(&c, f, 1), 1);
    LL_DETAIL(reason, reason_len, "%s", f[0]->close->reason);
    free_frames(f, 1);
    ll_conn_free(&c);
}

static void test_close_reason_fits_the_smallest_frame(void **state)
{
    (void)state;
    char reason[512];
    close_frame_reason(64, reason, sizeof(reason));
    assert_true(strlen(reason) > 0 && strlen(reason) <= 64);
    assert_memory_equal(reason, LONG_REASON, strlen(reason)); /* a prefix of the reason */
}

static void test_close_reason_is_capped(void **state)
{
    (void)state;
    char reason[512];
    assert_true(strlen(LONG_REASON) > 255);
    close_frame_reason(LL_MAX_FRAME_DEFAULT, reason, sizeof(reason));
    assert_int_equal(strlen(reason), 255);
    assert_memory_equal(reason, LONG_REASON, 255);
}

/* Fix 5: what 0 means, and the clamps (docs/protocol.md's Hello table). */
static void test_params_defaults_and_clamps(void **state)
{
    (void)state;
    ll_limits lim = {.heartbeat_min_ms = 1000, .heartbeat_max_ms = 300000, .window_messages = 64, .window_bytes = 4096};
    Lifeline__Hello h = LIFELINE__HELLO__INIT;
    ll_params p;
    ll_params_from_hello(&h, &lim, &p); /* everything unset */
    assert_int_equal(p.heartbeat_timeout_ms, 15000);
    assert_int_equal(p.heartbeat_interval_ms, 5000);
    assert_int_equal(p.window_messages, 64);
    assert_int_equal(p.window_bytes, 4096);
    assert_int_equal(p.peer_max_frame, LL_MAX_FRAME_DEFAULT);

    h.heartbeat_timeout_ms = 10;      /* under the minimum */
    h.heartbeat_interval_ms = 100000; /* over half the timeout */
    h.window_messages = 1000;         /* over ours */
    h.window_bytes = 100;             /* under ours */
    h.max_frame = 4096;
    ll_params_from_hello(&h, &lim, &p);
    assert_int_equal(p.heartbeat_timeout_ms, 1000);
    assert_int_equal(p.heartbeat_interval_ms, 500);
    assert_int_equal(p.window_messages, 64);
    assert_int_equal(p.window_bytes, 100);
    assert_int_equal(p.peer_max_frame, 4096);

    h.heartbeat_timeout_ms = 1000000; /* over the maximum */
    ll_params_from_hello(&h, &lim, &p);
    assert_int_equal(p.heartbeat_timeout_ms, 300000);
}

static void test_close_for_table(void **state)
{
    (void)state;
    int code = -1;
    bool reconnect = true;
    assert_true(ll_conn_close_for(LL_ROLE_SERVER, SDK_ETOOBIG, &code, &reconnect));
    assert_true(code == LIFELINE__CLOSE__CODE__TOO_BIG && !reconnect);
    assert_true(ll_conn_close_for(LL_ROLE_CLIENT, SDK_ETOOBIG, &code, &reconnect));
    assert_true(code == LIFELINE__CLOSE__CODE__TOO_BIG && !reconnect);
    assert_true(ll_conn_close_for(LL_ROLE_CLIENT, SDK_ETIMEDOUT, &code, &reconnect));
    assert_true(code == LIFELINE__CLOSE__CODE__HEARTBEAT_TIMEOUT && reconnect);
    assert_false(ll_conn_close_for(LL_ROLE_SERVER, SDK_EDISCONNECTED, &code, &reconnect));
    assert_false(ll_conn_close_for(LL_ROLE_SERVER, SDK_ENOMEM, &code, &reconnect));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_greeting_yields_the_hello),
        cmocka_unit_test(test_data_before_hello_is_a_protocol_error),
        cmocka_unit_test(test_data_in_sequence_duplicates_dropped),
        cmocka_unit_test(test_sequence_zero_and_gaps_fail),
        cmocka_unit_test(test_client_protocol_error_keeps_its_session),
        cmocka_unit_test(test_too_big_frame_closes_for_good),
        cmocka_unit_test(test_ack_event_and_stale_acks),
        cmocka_unit_test(test_ping_answered_with_pong),
        cmocka_unit_test(test_byte_window_is_never_exceeded),
        cmocka_unit_test(test_heartbeat_timeout_sends_close),
        cmocka_unit_test(test_client_pings_when_idle),
        cmocka_unit_test(test_peer_close_is_an_event),
        cmocka_unit_test(test_second_welcome_reaches_the_client_only),
        cmocka_unit_test(test_close_reason_fits_the_smallest_frame),
        cmocka_unit_test(test_close_reason_is_capped),
        cmocka_unit_test(test_params_defaults_and_clamps),
        cmocka_unit_test(test_close_for_table),
        cmocka_unit_test(test_release_buffers_only_when_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
