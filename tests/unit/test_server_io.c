/*
 * Tests for server_io.c that need a client the SDK would never be: raw peers (raw_peer.h)
 * speak to the real server over TLS on loopback and send exactly the frames a test means to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "raw_peer.h"

#include "ll.h"
#include "lifeline/server.h"

#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    rp_certs certs;
    sdk_server *srv;
    uint16_t port;
    ll_tls_ctx *client_tls;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char err[256] = "";
    if (!fx || rp_certs_make(&fx->certs) != 0) {
        return -1;
    }
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.cert_file = fx->certs.cert;
    cfg.key_file = fx->certs.key;
    ll_tls_ctx_config tc = {.server = false, .ca_file = fx->certs.ca};
    if (sdk_server_start(&cfg, &fx->srv) != SDK_OK || ll_tls_ctx_new(&tc, &fx->client_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    fx->port = sdk_server_port(fx->srv);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    sdk_server_destroy(fx->srv);
    ll_tls_ctx_free(fx->client_tls);
    rp_certs_remove(&fx->certs);
    free(fx);
    return 0;
}

static void send_hello(rp_peer *p, uint64_t session, const uint8_t *token, size_t token_len, uint64_t last_received)
{
    Lifeline__Hello h = LIFELINE__HELLO__INIT;
    h.version = 1;
    h.session_id = session;
    h.resume_token = (ProtobufCBinaryData){token_len, (uint8_t *)token};
    h.last_received = last_received;
    h.heartbeat_interval_ms = 5000;
    h.heartbeat_timeout_ms = 15000;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_HELLO;
    f.hello = &h;
    rp_send(p, &f);
}

static void send_ping(rp_peer *p, uint64_t nonce)
{
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = nonce;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &ping;
    rp_send(p, &f);
}

static sdk_session_state session_state(fixture *fx, uint64_t id)
{
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(fx->srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_true(info[0].id == id);
    sdk_session_state st = info[0].state;
    free(info);
    return st;
}

/* A resume naming a live session with the right token but a position outside what was sent
 * is refused, and must cost the session nothing: it used to detach the session from its
 * connection first, leaving it with neither a connection nor an expiry. */
static void test_bad_resume_position_keeps_the_session(void **state)
{
    fixture *fx = *state;
    rp_peer a, b;
    ll_frame f;
    rp_connect(&a, fx->client_tls, fx->port);
    send_hello(&a, 0, NULL, 0, 0);
    rp_next(&a, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    uint64_t id = f.pb->welcome->session_id;
    uint8_t token[16];
    assert_int_equal(f.pb->welcome->resume_token.len, sizeof(token));
    memcpy(token, f.pb->welcome->resume_token.data, sizeof(token));
    ll_frame_release(&f);

    rp_connect(&b, fx->client_tls, fx->port);
    send_hello(&b, id, token, sizeof(token), 99); /* nothing was ever sent to it */
    rp_next(&b, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_CLOSE);
    assert_int_equal(f.pb->close->code, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR);
    ll_frame_release(&f);

    send_ping(&a, 7); /* the first connection still carries the session */
    rp_next(&a, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_PONG);
    assert_true(f.pb->pong->nonce == 7);
    ll_frame_release(&f);
    assert_int_equal(session_state(fx, id), SDK_SESSION_STATE_CONNECTED);
    rp_close(&a);
    rp_close(&b);
}

/* The server sets dead-peer detection with the timeout the hello asked for, once its welcome
 * (and ticket) are out: those system calls do not delay the welcome. */
static void test_keepalive_set_after_welcome(void **state)
{
    fixture *fx = *state;
    rp_peer a;
    ll_frame f;
    rp_connect(&a, fx->client_tls, fx->port);
    send_hello(&a, 0, NULL, 0, 0);
    rp_next(&a, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    ll_frame_release(&f);
    int user_timeout_ms = 0;
    assert_int_equal(rp_wait_keepalive(&a, &user_timeout_ms), 0);
    assert_int_equal(user_timeout_ms, 15000); /* send_hello's heartbeat_timeout_ms */
    rp_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_resume_position_keeps_the_session),
        cmocka_unit_test(test_keepalive_set_after_welcome),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
