/*
 * Tests for server_io.c that need a client the SDK would never be: raw peers built from the
 * internal link, TLS and codec modules speak to the real server over TLS on loopback, one
 * blocking step at a time, so a test can send exactly the frames it means to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codec.h"
#include "link.h"
#include "ll.h"
#include "net.h"
#include "lifeline/server.h"

#include <ftw.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WAIT_MS 10000
#define ERRLEN 512

typedef struct fixture {
    char dir[64];
    char ca[128], cert[128], key[128];
    sdk_server *srv;
    uint16_t port;
    ll_tls_ctx *client_tls;
} fixture;

/* A raw client: one link, driven with blocking waits. */
typedef struct peer {
    ll_link link;
} peer;

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char err[ERRLEN] = "";
    LL_DETAIL(fx->dir, sizeof(fx->dir), "/tmp/ll-test-server-io-XXXXXX");
    if (!mkdtemp(fx->dir) || ll_tls_dev_certs(fx->dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "dev certs: %s\n", err);
        return -1;
    }
    LL_DETAIL(fx->ca, sizeof(fx->ca), "%s/ca.pem", fx->dir);
    LL_DETAIL(fx->cert, sizeof(fx->cert), "%s/server.pem", fx->dir);
    LL_DETAIL(fx->key, sizeof(fx->key), "%s/server.key", fx->dir);
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.cert_file = fx->cert;
    cfg.key_file = fx->key;
    ll_tls_ctx_config tc = {.server = false, .ca_file = fx->ca};
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
    nftw(fx->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static void wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
}

static void peer_open(fixture *fx, peer *p)
{
    char err[ERRLEN] = "";
    int fd = -1;
    ll_tls *tls = NULL;
    assert_int_equal(ll_net_connect("127.0.0.1", fx->port, ll_now_ms() + WAIT_MS, -1, &fd, err, sizeof(err)), 0);
    assert_int_equal(ll_tls_new(fx->client_tls, fd, "127.0.0.1", &tls, err, sizeof(err)), 0);
    ll_link_init(&p->link, fd, tls, LL_MAX_FRAME_DEFAULT);
    int rc;
    while ((rc = ll_tls_handshake(tls)) == LL_TLS_WANT_READ || rc == LL_TLS_WANT_WRITE) {
        wait_fd(fd, rc == LL_TLS_WANT_READ ? POLLIN : POLLOUT);
    }
    assert_int_equal(rc, LL_TLS_OK);
}

static void peer_send(peer *p, const Lifeline__Frame *f)
{
    assert_int_equal(ll_link_send(&p->link, f), 0);
    while (ll_buf_size(&p->link.out) > 0) {
        assert_int_equal(ll_link_flush(&p->link, ll_now_ms()), 0);
        if (ll_buf_size(&p->link.out) > 0) {
            wait_fd(p->link.fd, ll_link_events(&p->link));
        }
    }
}

/* The next frame the server sends (release with ll_frame_release). A server that closes
 * right after its last frame may have it read together with the end of the stream. */
static void peer_next(peer *p, ll_frame *f)
{
    int rc, filled = 0;
    while ((rc = ll_link_next(&p->link, f)) == 0 && filled == 0) {
        wait_fd(p->link.fd, POLLIN);
        filled = ll_link_fill(&p->link, ll_now_ms(), 1 << 20);
    }
    assert_int_equal(rc, 1);
}

static void send_hello(peer *p, uint64_t session, const uint8_t *token, size_t token_len, uint64_t last_received)
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
    peer_send(p, &f);
}

static void send_ping(peer *p, uint64_t nonce)
{
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = nonce;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &ping;
    peer_send(p, &f);
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
    peer a, b;
    ll_frame f;
    peer_open(fx, &a);
    send_hello(&a, 0, NULL, 0, 0);
    peer_next(&a, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    uint64_t id = f.pb->welcome->session_id;
    uint8_t token[16];
    assert_int_equal(f.pb->welcome->resume_token.len, sizeof(token));
    memcpy(token, f.pb->welcome->resume_token.data, sizeof(token));
    ll_frame_release(&f);

    peer_open(fx, &b);
    send_hello(&b, id, token, sizeof(token), 99); /* nothing was ever sent to it */
    peer_next(&b, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_CLOSE);
    assert_int_equal(f.pb->close->code, LIFELINE__CLOSE__CODE__PROTOCOL_ERROR);
    ll_frame_release(&f);

    send_ping(&a, 7); /* the first connection still carries the session */
    peer_next(&a, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_PONG);
    assert_true(f.pb->pong->nonce == 7);
    ll_frame_release(&f);
    assert_int_equal(session_state(fx, id), SDK_SESSION_STATE_CONNECTED);
    ll_link_close(&a.link);
    ll_link_close(&b.link);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_resume_position_keeps_the_session),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
