/*
 * Tests for client_io.c that need a server the real one would never be: a raw peer
 * (raw_peer.h) accepts the SDK client's connections over TLS on loopback and answers with
 * exactly the frames a test means to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "raw_peer.h"

#include "lifeline/sdk.h"
#include "ll.h"
#include "net.h"

#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fixture {
    rp_certs certs;
    ll_tls_ctx *server_tls;
    int listen_fd;
    uint16_t port;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char err[256] = "";
    if (!fx || rp_certs_make(&fx->certs) != 0) {
        return -1;
    }
    ll_tls_ctx_config tc = {.server = true, .cert_file = fx->certs.cert, .key_file = fx->certs.key};
    if (ll_tls_ctx_new(&tc, &fx->server_tls, err, sizeof(err)) != 0 ||
        ll_net_listen("127.0.0.1", 0, &fx->listen_fd, err, sizeof(err)) != 0) {
        fprintf(stderr, "listen: %s\n", err);
        return -1;
    }
    fx->port = ll_net_local_port(fx->listen_fd);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    close(fx->listen_fd);
    ll_tls_ctx_free(fx->server_tls);
    rp_certs_remove(&fx->certs);
    free(fx);
    return 0;
}

/* A client that keeps retrying in the background, so this one thread can play the server. */
static sdk_client *start_client(fixture *fx)
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = fx->port;
    cfg.ca_file = fx->certs.ca;
    cfg.retry_on_first_connect = true;
    cfg.reconnect_min_ms = 10;
    cfg.reconnect_max_ms = 10;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    return c;
}

static void wait_connected(sdk_client *c)
{
    uint64_t deadline = ll_now_ms() + RP_WAIT_MS;
    while (sdk_get_state(c) != SDK_STATE_CONNECTED) {
        assert_true(ll_now_ms() < deadline);
        poll(NULL, 0, 5);
    }
}

static void expect_hello(rp_peer *p, uint64_t session, size_t token_len)
{
    ll_frame f;
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_HELLO);
    assert_true(f.pb->hello->session_id == session);
    assert_int_equal(f.pb->hello->resume_token.len, token_len);
    ll_frame_release(&f);
}

/* A welcome without a resume token. */
static void send_welcome(rp_peer *p, uint64_t session, bool resumed)
{
    Lifeline__Welcome w = LIFELINE__WELCOME__INIT;
    w.version = 1;
    w.session_id = session;
    w.resumed = resumed;
    w.window_messages = 16;
    w.window_bytes = 1 << 20;
    w.max_frame = 1 << 20;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_WELCOME;
    f.welcome = &w;
    rp_send(p, &f);
}

/* A client that connected once, to session id (welcomed without a token), and was then cut
 * off: it is reconnecting. */
static sdk_client *connected_once(fixture *fx, uint64_t session)
{
    sdk_client *c = start_client(fx);
    rp_peer p;
    rp_accept(&p, fx->server_tls, fx->listen_fd);
    expect_hello(&p, 0, 0);
    send_welcome(&p, session, false);
    wait_connected(c);
    rp_close(&p);
    return c;
}

/* A welcome without a resume token: protobuf-c gives it as NULL with length 0, which the
 * client used to hand to memcpy (undefined; UBSan stops the sanitizer build there). The
 * client adopts the session and names it, without a token, when it comes back. */
static void test_welcome_without_token(void **state)
{
    fixture *fx = *state;
    sdk_client *c = connected_once(fx, 42);
    rp_peer p;
    rp_accept(&p, fx->server_tls, fx->listen_fd);
    expect_hello(&p, 42, 0);
    rp_close(&p);
    sdk_destroy(c);
}

/* Dead-peer detection (keepalive, TCP_USER_TIMEOUT = the heartbeat timeout) is set once the
 * welcome is in rather than before the handshake, off a reconnect's critical path, but set. */
static void test_keepalive_set_once_greeted(void **state)
{
    fixture *fx = *state;
    sdk_client *c = start_client(fx);
    rp_peer p;
    rp_accept(&p, fx->server_tls, fx->listen_fd);
    expect_hello(&p, 0, 0);
    send_welcome(&p, 7, false);
    int user_timeout_ms = 0;
    assert_int_equal(rp_wait_keepalive(&p, &user_timeout_ms), 0);
    assert_int_equal(user_timeout_ms, 15000); /* 3 x the default 5 s interval */
    rp_close(&p);
    sdk_destroy(c);
}

/* A welcome that claims to resume a session other than the one the hello named is refused,
 * and the client keeps its own session. */
static void test_resumed_welcome_for_another_session(void **state)
{
    fixture *fx = *state;
    sdk_client *c = connected_once(fx, 42);
    rp_peer p;
    rp_accept(&p, fx->server_tls, fx->listen_fd);
    expect_hello(&p, 42, 0);
    send_welcome(&p, 43, true);
    ll_frame f;
    int rc = ll_link_fill(&p.link, ll_now_ms(), SIZE_MAX);
    for (uint64_t deadline = ll_now_ms() + RP_WAIT_MS; rc == 0 && ll_now_ms() < deadline;) {
        /* The client sends nothing more but the Close a protocol error owes: no data, no ack. */
        if (ll_decoder_take(&p.link.conn.dec, &f) == LL_DEC_FRAME) {
            assert_int_equal(f.kind, LIFELINE__FRAME__KIND_CLOSE);
            assert_int_equal(f.pb->close->code, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR);
            ll_frame_release(&f);
        }
        poll(&(struct pollfd){.fd = p.link.fd, .events = POLLIN}, 1, 10);
        rc = ll_link_fill(&p.link, ll_now_ms(), SIZE_MAX);
    }
    assert_int_equal(rc, SDK_EDISCONNECTED); /* it hung up */
    rp_close(&p);

    rp_accept(&p, fx->server_tls, fx->listen_fd);
    expect_hello(&p, 42, 0); /* still its own session */
    char why[256];
    sdk_last_error(c, why, sizeof(why));
    assert_non_null(strstr(why, "welcome resumes session 43, ours is 42"));
    rp_close(&p);
    sdk_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_welcome_without_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_set_once_greeted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resumed_welcome_for_another_session, setup, teardown),
    };
    /* A listener per test: a client destroyed mid-reconnect leaves a connection in the
     * backlog, which the next test would otherwise accept as its own. */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
