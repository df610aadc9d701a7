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

#include "lifeline/server.h"
#include "ll.h"
#include "net.h"
#include "server_impl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
    rp_certs certs;
    sdk_server *srv;
    uint16_t port;
    ll_tls_ctx *client_tls;
} fixture;

static int start(void **state, uint32_t io_threads)
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
    cfg.io_threads = io_threads;
    ll_tls_ctx_config tc = {.server = false, .ca_file = fx->certs.ca};
    if (sdk_server_start(&cfg, &fx->srv) != SDK_OK || ll_tls_ctx_new(&tc, &fx->client_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    fx->port = sdk_server_port(fx->srv);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return start(state, 1);
}

/* The same tests with two I/O threads: the second connection of each is on the other loop,
 * so every resume there moves the connection to its session's loop. */
static int setup_io2(void **state)
{
    return start(state, 2);
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

static void expect_close(rp_peer *p, Lifeline__Close__Code code, bool reconnect)
{
    ll_frame f;
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_CLOSE);
    assert_int_equal(f.pb->close->code, code);
    assert_int_equal(f.pb->close->reconnect, reconnect);
    ll_frame_release(&f);
}

/* A new session on p (rp_open_session). */
static uint64_t open_session(fixture *fx, rp_peer *p, uint8_t *token)
{
    return rp_open_session(p, fx->client_tls, fx->port, token);
}

/* Connect with the ticket of session id's connection: the server welcomes the connection
 * back to that session before any hello, in the TLS handshake's 0.5-RTT data. */
static void connect_welcomed(fixture *fx, rp_peer *p, uint64_t id)
{
    ll_frame f;
    rp_connect(p, fx->client_tls, fx->port);
    assert_true(ll_tls_resumed(p->link.tls));
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    assert_true(f.pb->welcome->resumed);
    assert_true(f.pb->welcome->session_id == id);
    assert_true(f.pb->welcome->last_received == 0);
    assert_int_equal(f.pb->welcome->heartbeat_timeout_ms, 15000); /* as the session's hello set */
    ll_frame_release(&f);
}

/* The session's first connection p still carries it: a ping is answered there. */
static void expect_still_carries(fixture *fx, rp_peer *p, uint64_t id)
{
    rp_send_ping(p, 7);
    rp_expect_pong(p, 7);
    assert_int_equal(session_state(fx, id), SDK_SESSION_STATE_CONNECTED);
}

/* A resume naming a live session with the right token but a position outside what was sent
 * is refused, and must cost the session nothing: it used to detach the session from its
 * connection first, leaving it with neither a connection nor an expiry. An early welcome
 * (the second connection resumes the first's TLS ticket) changes none of that. */
static void test_bad_resume_position_keeps_the_session(void **state)
{
    fixture *fx = *state;
    rp_peer a, b;
    uint8_t token[16];
    uint64_t id = open_session(fx, &a, token);

    connect_welcomed(fx, &b, id);
    rp_send_hello(&b, id, token, sizeof(token), 99);                /* nothing was ever sent to it */
    expect_close(&b, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, false); /* it would only come again */

    expect_still_carries(fx, &a, id);
    rp_close(&a);
    rp_close(&b);
}

/* A reconnect is welcomed before its hello; the hello then takes the session over without a
 * second welcome, and the old connection is sent away. */
static void test_resume_welcomed_before_hello(void **state)
{
    fixture *fx = *state;
    rp_peer a, b;
    uint8_t token[16];
    uint64_t id = open_session(fx, &a, token);

    connect_welcomed(fx, &b, id);
    assert_int_equal(session_state(fx, id), SDK_SESSION_STATE_CONNECTED); /* nothing committed yet */
    rp_send_ping(&a, 2);
    rp_expect_pong(&a, 2); /* ...and the old connection still carries the session */

    rp_send_hello(&b, id, token, sizeof(token), 0);
    rp_send_ping(&b, 3);
    rp_expect_pong(&b, 3); /* no second welcome before it */
    expect_close(&a, LIFELINE__CLOSE__CODE__NORMAL, true);
    rp_close(&a);
    rp_close(&b);
}

/* After an early welcome, a hello for another session or with a wrong token is a protocol
 * error, and the session keeps its connection. */
static void test_hello_must_match_early_welcome(void **state)
{
    fixture *fx = *state;
    rp_peer a, b, c;
    uint8_t token[16];
    uint64_t id = open_session(fx, &a, token);

    connect_welcomed(fx, &b, id);
    rp_send_hello(&b, 0, NULL, 0, 0);                               /* a new session instead */
    expect_close(&b, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, false); /* it would only come again */
    rp_close(&b);

    connect_welcomed(fx, &c, id);
    token[0] ^= 1;
    rp_send_hello(&c, id, token, sizeof(token), 0);
    expect_close(&c, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR, false);
    rp_close(&c);

    expect_still_carries(fx, &a, id);
    rp_close(&a);
}

/* The session ends between the early welcome and the hello: the client is told to come back
 * (and then learns from a plain welcome that its session is gone). */
static void test_session_ends_after_early_welcome(void **state)
{
    fixture *fx = *state;
    rp_peer a, b;
    uint8_t token[16];
    uint64_t id = open_session(fx, &a, token);

    connect_welcomed(fx, &b, id);
    assert_int_equal(sdk_server_close_session(fx->srv, id, "bye", true), SDK_OK);
    expect_close(&a, LIFELINE__CLOSE__CODE__SESSION_CLOSED, true);
    rp_send_hello(&b, id, token, sizeof(token), 0);
    expect_close(&b, LIFELINE__CLOSE__CODE__SESSION_CLOSED, true);
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
    rp_send_hello(&a, 0, NULL, 0, 0);
    rp_next(&a, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    ll_frame_release(&f);
    int user_timeout_ms = 0;
    assert_int_equal(rp_wait_keepalive(&a, &user_timeout_ms), 0);
    assert_int_equal(user_timeout_ms, 15000); /* send_hello's heartbeat_timeout_ms */
    rp_close(&a);
}

/* Which loop serves session id's connection (-1: none), read under the server's mutex. */
static int loop_of(fixture *fx, uint64_t id)
{
    pthread_mutex_lock(&fx->srv->mu);
    srv_session *ss = ll_store_get(&fx->srv->sessions, id);
    int index = ss && ss->conn ? (int)ss->conn->loop->index : -1;
    pthread_mutex_unlock(&fx->srv->mu);
    return index;
}

/* Until the server has seen session id's connection go (it has no event to wait on here). */
static void wait_detached(fixture *fx, uint64_t id)
{
    uint64_t deadline = ll_now_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&fx->srv->mu);
        srv_session *ss = ll_store_get(&fx->srv->sessions, id);
        bool detached = ss && !ss->conn;
        pthread_mutex_unlock(&fx->srv->mu);
        if (detached) {
            return;
        }
        assert_true(ll_now_ms() < deadline ? 1 : 0);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
}

static ll_tls_ctx *fresh_client_tls(fixture *fx)
{
    ll_tls_ctx *ctx = NULL;
    char err[256] = "";
    ll_tls_ctx_config tc = {.server = false, .ca_file = fx->certs.ca};
    assert_int_equal(ll_tls_ctx_new(&tc, &ctx, err, sizeof(err)), 0); /* no ticket: no early welcome */
    return ctx;
}

/* A new connection on p resumes session id with a plain hello (no ticket: no early welcome),
 * is welcomed back and carries it. */
static void resume_with_hello(fixture *fx, rp_peer *p, ll_tls_ctx *ctx, uint64_t id, const uint8_t *token)
{
    ll_frame f;
    rp_connect(p, ctx, fx->port);
    rp_send_hello(p, id, token, 16, 0);
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    assert_true(f.pb->welcome->resumed && f.pb->welcome->session_id == id);
    ll_frame_release(&f);
    rp_send_ping(p, 5);
    rp_expect_pong(p, 5);
}

/* Two I/O threads: connections go to them in turn, and a resume arriving on the other one
 * (a plain hello, no early welcome) moves to the loop of its session, which replaces the
 * session's old connection there. */
static void test_connections_spread_and_resume_moves(void **state)
{
    fixture *fx = *state;
    ll_tls_ctx *tls_b = fresh_client_tls(fx), *tls_c = fresh_client_tls(fx);
    rp_peer a, b, c;
    uint8_t token_a[16], token_b[16];
    uint64_t ida = rp_open_session(&a, fx->client_tls, fx->port, token_a); /* accepted first: loop 0 */
    uint64_t idb = rp_open_session(&b, tls_b, fx->port, token_b);          /* then loop 1 */
    assert_int_equal(loop_of(fx, ida), 0);
    assert_int_equal(loop_of(fx, idb), 1);

    resume_with_hello(fx, &c, tls_c, idb, token_b);        /* the third connection: loop 0 again */
    expect_close(&b, LIFELINE__CLOSE__CODE__NORMAL, true); /* replaced, by its own loop */
    assert_int_equal(loop_of(fx, idb), 1);                 /* the session stayed with its loop */
    rp_send_ping(&a, 6);
    rp_expect_pong(&a, 6);
    assert_int_equal(loop_of(fx, ida), 0);

    rp_close(&a);
    rp_close(&b);
    rp_close(&c);
    ll_tls_ctx_free(tls_b);
    ll_tls_ctx_free(tls_c);
}

/* Two I/O threads, a resume of a detached session on the other loop: it is served there. */
static void test_detached_session_resumes_on_any_loop(void **state)
{
    fixture *fx = *state;
    ll_tls_ctx *tls_b = fresh_client_tls(fx), *tls_c = fresh_client_tls(fx);
    rp_peer a, b, c;
    uint8_t token_a[16], token_b[16];
    uint64_t ida = rp_open_session(&a, fx->client_tls, fx->port, token_a); /* loop 0 */
    (void)rp_open_session(&b, tls_b, fx->port, token_b);                   /* loop 1 */
    rp_close(&a);
    wait_detached(fx, ida);
    resume_with_hello(fx, &c, tls_c, ida, token_a); /* loop 0 again */
    assert_int_equal(loop_of(fx, ida), 0);
    rp_close(&b);
    rp_close(&c);
    ll_tls_ctx_free(tls_b);
    ll_tls_ctx_free(tls_c);
}

/* io_threads: 0 is one per online CPU (up to 8), more than SDK_IO_THREADS_MAX is refused. */
static void test_io_threads_configured(void **state)
{
    (void)state;
    rp_certs certs;
    assert_int_equal(rp_certs_make(&certs), 0);
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    assert_int_equal(cfg.io_threads, 1); /* the default */
    cfg.listen = "127.0.0.1:0";
    cfg.cert_file = certs.cert;
    cfg.key_file = certs.key;
    cfg.io_threads = SDK_IO_THREADS_MAX + 1;
    sdk_server *srv = NULL;
    assert_int_equal(sdk_server_start(&cfg, &srv), SDK_EINVAL);
    cfg.io_threads = 0;
    assert_int_equal(sdk_server_start(&cfg, &srv), SDK_OK);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(srv->nloops, cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
    sdk_server_destroy(srv);
    rp_certs_remove(&certs);
}

#define BOTH(test) \
    cmocka_unit_test_setup_teardown(test, setup, teardown), cmocka_unit_test_setup_teardown(test, setup_io2, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_bad_resume_position_keeps_the_session),
        BOTH(test_resume_welcomed_before_hello),
        BOTH(test_hello_must_match_early_welcome),
        BOTH(test_session_ends_after_early_welcome),
        BOTH(test_keepalive_set_after_welcome),
        cmocka_unit_test_setup_teardown(test_connections_spread_and_resume_moves, setup_io2, teardown),
        cmocka_unit_test_setup_teardown(test_detached_session_resumes_on_any_loop, setup_io2, teardown),
        cmocka_unit_test(test_io_threads_configured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* a server per test: tickets and sessions do not carry over */
}
