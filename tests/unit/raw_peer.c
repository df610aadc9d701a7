#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "raw_peer.h"

#include "ll.h"
#include "net.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ERRLEN 512

int rp_certs_make(rp_certs *c)
{
    char err[ERRLEN] = "";
    LL_DETAIL(c->dir, sizeof(c->dir), "/tmp/ll-test-peer-XXXXXX");
    if (!mkdtemp(c->dir) || ll_tls_dev_certs(c->dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "dev certs: %s\n", err);
        return -1;
    }
    LL_DETAIL(c->ca, sizeof(c->ca), "%s/ca.pem", c->dir);
    LL_DETAIL(c->cert, sizeof(c->cert), "%s/server.pem", c->dir);
    LL_DETAIL(c->key, sizeof(c->key), "%s/server.key", c->dir);
    return 0;
}

static int remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void rp_certs_remove(const rp_certs *c)
{
    nftw(c->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    assert_int_equal(poll(&p, 1, RP_WAIT_MS), 1);
}

static void handshake(rp_peer *p, int fd, ll_tls *tls)
{
    /* The role does not matter: a raw peer uses only the link's transport and framing. */
    ll_link_init(&p->link, fd, tls, LL_ROLE_CLIENT, LL_MAX_FRAME_DEFAULT);
    int rc;
    while ((rc = ll_tls_handshake(tls)) == LL_TLS_WANT_READ || rc == LL_TLS_WANT_WRITE) {
        wait_fd(fd, rc == LL_TLS_WANT_READ ? POLLIN : POLLOUT);
    }
    assert_int_equal(rc, LL_TLS_OK);
}

void rp_connect(rp_peer *p, ll_tls_ctx *ctx, uint16_t port)
{
    char err[ERRLEN] = "";
    int fd = -1;
    ll_tls *tls = NULL;
    assert_int_equal(ll_net_connect("127.0.0.1", port, ll_now_ms() + RP_WAIT_MS, -1, &fd, err, sizeof(err)), 0);
    assert_int_equal(ll_tls_new(ctx, fd, "127.0.0.1", &tls, err, sizeof(err)), 0);
    handshake(p, fd, tls);
}

void rp_accept(rp_peer *p, ll_tls_ctx *ctx, int listen_fd)
{
    char err[ERRLEN] = "", peer[64];
    int fd = -1, rc;
    ll_tls *tls = NULL;
    while ((rc = ll_net_accept(listen_fd, &fd, peer, sizeof(peer))) == LL_NET_AGAIN) {
        wait_fd(listen_fd, POLLIN);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(ll_tls_new(ctx, fd, NULL, &tls, err, sizeof(err)), 0);
    handshake(p, fd, tls);
}

void rp_send(rp_peer *p, const Lifeline__Frame *f)
{
    ll_buf *out = &p->link.conn.out;
    assert_int_equal(ll_encode_frame(out, f, LL_MAX_FRAME_DEFAULT), 0);
    while (ll_buf_size(out) > 0) {
        assert_int_equal(ll_link_flush(&p->link, ll_now_ms()), 0);
        if (ll_buf_size(out) > 0) {
            wait_fd(p->link.fd, ll_link_events(&p->link));
        }
    }
}

/* A peer that closes right after its last frame may have it read with the end of the stream. */
void rp_next(rp_peer *p, ll_frame *f)
{
    ll_dec_result rc;
    int filled = 0;
    while ((rc = ll_decoder_take(&p->link.conn.dec, f)) == LL_DEC_NEED_MORE && filled == 0) {
        if (!ll_tls_has_pending(p->link.tls)) { /* read-ahead: OpenSSL may hold the rest */
            wait_fd(p->link.fd, POLLIN);
        }
        filled = ll_link_fill(&p->link, ll_now_ms(), 1 << 20);
    }
    assert_int_equal(rc, LL_DEC_FRAME);
}

void rp_close(rp_peer *p)
{
    ll_link_close(&p->link);
}

int rp_other_end(const rp_peer *p)
{
    struct sockaddr_in mine, theirs;
    socklen_t len = sizeof(mine);
    assert_int_equal(getsockname(p->link.fd, (struct sockaddr *)&mine, &len), 0);
    for (int fd = 3; fd < 1024; fd++) {
        len = sizeof(theirs);
        if (fd != p->link.fd && getpeername(fd, (struct sockaddr *)&theirs, &len) == 0 &&
            theirs.sin_family == AF_INET && theirs.sin_port == mine.sin_port) {
            return fd;
        }
    }
    return -1;
}

static int sockopt(int fd, int level, int name)
{
    int v = 0;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

int rp_wait_keepalive(const rp_peer *p, int *user_timeout_ms)
{
    int fd = rp_other_end(p);
    assert_true(fd >= 0);
    assert_int_not_equal(sockopt(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    /* Wait for TCP_USER_TIMEOUT, the last option ll_net_keepalive sets: its other thread may
     * still be between the two. */
    for (uint64_t end = ll_now_ms() + RP_WAIT_MS; ll_now_ms() < end; poll(NULL, 0, 5)) {
        if ((*user_timeout_ms = sockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT)) != 0) {
            assert_int_not_equal(sockopt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
            return 0;
        }
    }
    return -1;
}

void rp_send_hello(rp_peer *p, uint64_t session, const uint8_t *token, size_t token_len, uint64_t last_received)
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

void rp_send_ping(rp_peer *p, uint64_t nonce)
{
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = nonce;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &ping;
    rp_send(p, &f);
}

void rp_expect_pong(rp_peer *p, uint64_t nonce)
{
    ll_frame f;
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_PONG);
    assert_true(f.pb->pong->nonce == nonce);
    ll_frame_release(&f);
}

uint64_t rp_open_session(rp_peer *p, ll_tls_ctx *ctx, uint16_t port, uint8_t *token)
{
    ll_frame f;
    rp_connect(p, ctx, port);
    rp_send_hello(p, 0, NULL, 0, 0);
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    uint64_t id = f.pb->welcome->session_id;
    assert_int_equal(f.pb->welcome->resume_token.len, 16);
    memcpy(token, f.pb->welcome->resume_token.data, 16);
    ll_frame_release(&f);
    rp_send_ping(p, 1);
    rp_expect_pong(p, 1);
    return id;
}
