/*
 * Unit tests for tls.c and devcert.c: real handshakes between an ll_tls client and server
 * over a socketpair (one over loopback TCP), both driven non-blocking with poll() from one
 * thread. Certificates are made once per run by ll_tls_dev_certs in a temporary directory.
 *
 * OpenSSL is included here only to play peers our API cannot (a client without ALPN, a
 * server that ignores it) and to inspect the generated certificates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ll.h"
#include "certdir.h"
#include "net.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define ERRLEN  512
#define WAIT_MS 5000
#define PATHLEN 256

static char dir[128];       /* dev certs: ca, server, client, alt */
static char other[PATHLEN]; /* a second, unrelated CA with its own server and client */

static const char *path_in(const char *d, const char *name, char *buf)
{
    LL_DETAIL(buf, PATHLEN, "%s/%s", d, name);
    return buf;
}

/* ---- fixture ------------------------------------------------------------------------ */

static int setup_certs(void **state)
{
    char err[ERRLEN] = "";
    const char *const alt_sans[] = {"alt.example", NULL};

    (void)state;
    if (ll_test_certdirs("/tmp/ll-test-tls-XXXXXX", dir, sizeof dir, "other/ca", other, sizeof other) != 0) {
        return -1;
    }
    if (ll_tls_dev_cert_for(dir, "alt", "alt.example", alt_sans, err, sizeof err) != 0) {
        fprintf(stderr, "dev certs: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown_certs(void **state)
{
    (void)state;
    return ll_test_rmtree(dir);
}

/* ---- contexts ----------------------------------------------------------------------- */

static ll_tls_ctx *server_ctx_with(const char *cert, const char *key, const char *client_ca)
{
    char err[ERRLEN] = "";
    ll_tls_ctx *ctx = NULL;
    ll_tls_ctx_config cfg = {.server = true, .cert_file = cert, .key_file = key, .client_ca_file = client_ca};

    assert_int_equal(ll_tls_ctx_new(&cfg, &ctx, err, sizeof err), 0);
    return ctx;
}

static ll_tls_ctx *server_ctx(bool require_client_cert)
{
    char cert[PATHLEN], key[PATHLEN], ca[PATHLEN];

    return server_ctx_with(path_in(dir, "server.pem", cert), path_in(dir, "server.key", key),
                           require_client_cert ? path_in(dir, "ca.pem", ca) : NULL);
}

static ll_tls_ctx *client_ctx_with(const char *ca, const char *cert, const char *key)
{
    char err[ERRLEN] = "";
    ll_tls_ctx *ctx = NULL;
    ll_tls_ctx_config cfg = {.ca_file = ca, .cert_file = cert, .key_file = key};

    assert_int_equal(ll_tls_ctx_new(&cfg, &ctx, err, sizeof err), 0);
    return ctx;
}

static ll_tls_ctx *client_ctx(const char *certdir, bool with_cert)
{
    char ca[PATHLEN], cert[PATHLEN], key[PATHLEN];

    return client_ctx_with(path_in(dir, "ca.pem", ca), with_cert ? path_in(certdir, "client.pem", cert) : NULL,
                           with_cert ? path_in(certdir, "client.key", key) : NULL);
}

/* ---- a client and a server over a socketpair ---------------------------------------- */

typedef struct tpair {
    int fd[2]; /* [0] client, [1] server */
    ll_tls *c;
    ll_tls *s;
    int crc; /* last handshake result of each side */
    int src;
} tpair;

static bool pending(int rc)
{
    return rc == LL_TLS_WANT_READ || rc == LL_TLS_WANT_WRITE;
}

static void link_wrap(tpair *l, ll_tls_ctx *cctx, ll_tls_ctx *sctx, const char *name)
{
    char err[ERRLEN] = "";

    if (cctx != NULL) {
        assert_int_equal(ll_tls_new(cctx, l->fd[0], name, &l->c, err, sizeof err), 0);
    }
    if (sctx != NULL) {
        assert_int_equal(ll_tls_new(sctx, l->fd[1], NULL, &l->s, err, sizeof err), 0);
    }
    /* A side played by a foreign peer counts as done. */
    l->crc = cctx != NULL ? LL_TLS_WANT_READ : LL_TLS_OK;
    l->src = sctx != NULL ? LL_TLS_WANT_READ : LL_TLS_OK;
}

static void link_open(tpair *l, ll_tls_ctx *cctx, ll_tls_ctx *sctx, const char *name)
{
    memset(l, 0, sizeof *l);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, l->fd), 0);
    link_wrap(l, cctx, sctx, name);
}

static void link_close(tpair *l)
{
    ll_tls_free(l->c);
    ll_tls_free(l->s);
    if (l->fd[0] >= 0) {
        close(l->fd[0]);
    }
    if (l->fd[1] >= 0) {
        close(l->fd[1]);
    }
}

/* One handshake step of a side still pending; a side that fails hangs up, as the real
 * client and server do, so its peer is not left waiting. */
static void step(ll_tls *t, int fd, int *rc)
{
    if (t == NULL || !pending(*rc)) {
        return;
    }
    *rc = ll_tls_handshake(t);
    if (*rc > 0) {
        shutdown(fd, SHUT_RDWR);
    }
}

/* Drive both handshakes until neither side is waiting. */
static void link_handshake(tpair *l)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = -1}, {.fd = -1}};
        step(l->c, l->fd[0], &l->crc);
        step(l->s, l->fd[1], &l->src);
        if (!pending(l->crc) && !pending(l->src)) {
            return;
        }
        if (pending(l->crc)) {
            p[0] = (struct pollfd){l->fd[0], l->crc == LL_TLS_WANT_WRITE ? POLLOUT : POLLIN, 0};
        }
        if (pending(l->src)) {
            p[1] = (struct pollfd){l->fd[1], l->src == LL_TLS_WANT_WRITE ? POLLOUT : POLLIN, 0};
        }
        assert_true(poll(p, 2, WAIT_MS) > 0); /* a stalled handshake is a failure */
    }
}

static void wait_fd(int fd, int rc)
{
    struct pollfd p = {.fd = fd, .events = rc == LL_TLS_WANT_WRITE ? POLLOUT : POLLIN};

    assert_int_equal(poll(&p, 1, WAIT_MS), 1);
}

/* Read until some bytes or an error arrive. */
static int read_some(ll_tls *t, int fd, char *buf, size_t len, size_t *n)
{
    for (;;) {
        int rc = ll_tls_read(t, buf, len, n);
        if (!pending(rc)) {
            return rc;
        }
        wait_fd(fd, rc);
    }
}

static void write_all(ll_tls *t, int fd, const char *data, size_t len)
{
    while (len > 0) {
        size_t n = 0;
        int rc = ll_tls_write(t, data, len, &n);
        if (pending(rc)) {
            wait_fd(fd, rc);
            continue;
        }
        assert_int_equal(rc, LL_TLS_OK);
        data += n;
        len -= n;
    }
}

static void expect_message(ll_tls *t, int fd, const char *want)
{
    char buf[64] = "";
    size_t n = 0;

    assert_int_equal(read_some(t, fd, buf, sizeof buf - 1, &n), LL_TLS_OK);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

/* The server's TLS 1.3 session ticket, which it sends only when asked. */
static void send_ticket(tpair *l)
{
    int rc = LL_TLS_WANT_WRITE;

    while (pending(rc)) {
        rc = ll_tls_send_ticket(l->s);
        if (pending(rc)) {
            wait_fd(l->fd[1], rc);
        }
    }
    assert_int_equal(rc, LL_TLS_OK);
}

/* Bytes both ways, the server first with its session ticket right behind, as the server
 * sends its Welcome. The client takes the ticket in with its read of "done", so the client
 * context then holds a session. */
static void exchange(tpair *l)
{
    write_all(l->s, l->fd[1], "ping", 4);
    send_ticket(l);
    expect_message(l->c, l->fd[0], "ping");
    write_all(l->c, l->fd[0], "pong", 4);
    expect_message(l->s, l->fd[1], "pong");
    write_all(l->s, l->fd[1], "done", 4);
    expect_message(l->c, l->fd[0], "done");
}

/* Handshake expected to succeed, then an exchange. */
static void connect_ok(ll_tls_ctx *cctx, ll_tls_ctx *sctx, const char *name, tpair *l)
{
    link_open(l, cctx, sctx, name);
    link_handshake(l);
    if (l->crc != 0 || l->src != 0) {
        fail_msg("handshake: client %d (%s), server %d (%s)", l->crc, ll_tls_error(l->c), l->src, ll_tls_error(l->s));
    }
    exchange(l);
}

static void assert_contains(const char *s, const char *part)
{
    if (strstr(s, part) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", s, part);
    }
}

/* Handshake expected to fail on the client with code and a reason containing part. */
static void expect_client_rejects(ll_tls_ctx *cctx, ll_tls_ctx *sctx, const char *name, int code, const char *part)
{
    tpair l;

    link_open(&l, cctx, sctx, name);
    link_handshake(&l);
    assert_int_equal(l.crc, code);
    assert_contains(ll_tls_error(l.c), part);
    assert_int_not_equal(l.src, LL_TLS_OK);
    link_close(&l);
}

/* ---- handshakes that succeed -------------------------------------------------------- */

static void test_handshake_and_alpn(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    char buf[128];
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    ll_tls_alpn(l.c, buf, sizeof buf);
    assert_string_equal(buf, "lifeline/1");
    ll_tls_alpn(l.s, buf, sizeof buf);
    assert_string_equal(buf, "lifeline/1");
    ll_tls_peer_subject(l.c, buf, sizeof buf);
    assert_string_equal(buf, "CN=localhost");
    ll_tls_peer_subject(l.s, buf, sizeof buf);
    assert_string_equal(buf, ""); /* no client certificate */
    assert_false(ll_tls_resumed(l.c));
    assert_string_equal(ll_tls_error(l.c), "");
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_ip_literals(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "127.0.0.1", &l);
    link_close(&l);
    connect_ok(cctx, sctx, "::1", &l);
    link_close(&l);
    expect_client_rejects(cctx, sctx, "127.0.0.2", SDK_EPEERAUTH, "certificate verify failed: IP address mismatch");
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_mutual_tls(void **state)
{
    ll_tls_ctx *sctx = server_ctx(true);
    ll_tls_ctx *cctx = client_ctx(dir, true);
    char subject[128];
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    ll_tls_peer_subject(l.s, subject, sizeof subject);
    assert_string_equal(subject, "CN=lifeline-dev-client");
    link_close(&l);
    /* A resumed session still knows who the client is. */
    connect_ok(cctx, sctx, "localhost", &l);
    assert_true(ll_tls_resumed(l.s));
    ll_tls_peer_subject(l.s, subject, sizeof subject);
    assert_string_equal(subject, "CN=lifeline-dev-client");
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_certificate_for_other_names(void **state)
{
    char cert[PATHLEN], key[PATHLEN];
    ll_tls_ctx *sctx = server_ctx_with(path_in(dir, "alt.pem", cert), path_in(dir, "alt.key", key), NULL);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "alt.example", &l);
    link_close(&l);
    expect_client_rejects(cctx, sctx, "localhost", SDK_EPEERAUTH, "certificate verify failed: hostname mismatch");
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_over_tcp(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    char err[ERRLEN] = "";
    int lfd = -1;
    tpair l;

    (void)state;
    memset(&l, 0, sizeof l);
    assert_int_equal(ll_net_listen("127.0.0.1", 0, &lfd, err, sizeof err), 0);
    assert_int_equal(
        ll_net_connect("127.0.0.1", ll_net_local_port(lfd), ll_now_ms() + WAIT_MS, -1, &l.fd[0], err, sizeof err), 0);
    wait_fd(lfd, LL_TLS_WANT_READ);
    assert_int_equal(ll_net_accept(lfd, &l.fd[1], NULL, 0), 0);
    link_wrap(&l, cctx, sctx, "127.0.0.1");
    link_handshake(&l);
    assert_int_equal(l.crc, 0);
    assert_int_equal(l.src, 0);
    exchange(&l);
    link_close(&l);
    close(lfd);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* ---- verification failures ---------------------------------------------------------- */

static void test_wrong_ca(void **state)
{
    char ca[PATHLEN];
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx_with(path_in(other, "ca.pem", ca), NULL, NULL);
    tpair l;

    (void)state;
    link_open(&l, cctx, sctx, "localhost");
    link_handshake(&l);
    assert_int_equal(l.crc, SDK_EPEERAUTH);
    assert_contains(ll_tls_error(l.c), "certificate verify failed: unable to get local issuer");
    /* The server hears the client's alert. */
    assert_int_equal(l.src, SDK_EPEERAUTH);
    assert_contains(ll_tls_error(l.s), "unknown ca");
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_hostname_mismatch(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);

    (void)state;
    expect_client_rejects(cctx, sctx, "wrong.example", SDK_EPEERAUTH, "certificate verify failed: hostname mismatch");
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* TLS 1.3: the client finishes first, so it learns of the refusal on its first read. */
static void expect_client_cert_refused(ll_tls_ctx *cctx, ll_tls_ctx *sctx, const char *server_part,
                                       const char *client_part)
{
    char buf[16];
    size_t n = 0;
    tpair l;

    link_open(&l, cctx, sctx, "localhost");
    link_handshake(&l);
    assert_int_equal(l.src, SDK_EPEERAUTH);
    assert_contains(ll_tls_error(l.s), server_part);
    if (l.crc == LL_TLS_OK) {
        l.crc = read_some(l.c, l.fd[0], buf, sizeof buf, &n);
    }
    assert_int_equal(l.crc, SDK_EPEERAUTH);
    assert_contains(ll_tls_error(l.c), client_part);
    link_close(&l);
}

static void test_client_cert_missing(void **state)
{
    ll_tls_ctx *sctx = server_ctx(true);
    ll_tls_ctx *cctx = client_ctx(dir, false);

    (void)state;
    expect_client_cert_refused(cctx, sctx, "peer did not return a certificate", "alert certificate required");
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_client_cert_from_other_ca(void **state)
{
    ll_tls_ctx *sctx = server_ctx(true);
    ll_tls_ctx *cctx = client_ctx(other, true);

    (void)state;
    expect_client_cert_refused(cctx, sctx, "certificate verify failed: unable to get local issuer", "alert unknown ca");
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* ---- resumption --------------------------------------------------------------------- */

static void test_resumption(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    assert_false(ll_tls_resumed(l.c));
    link_close(&l);
    connect_ok(cctx, sctx, "localhost", &l);
    assert_true(ll_tls_resumed(l.c));
    assert_true(ll_tls_resumed(l.s));
    link_close(&l);
    /* The session was verified for "localhost"; its certificate also names 127.0.0.1 (one
     * cluster's endpoints), so it is offered there too ... */
    connect_ok(cctx, sctx, "127.0.0.1", &l);
    assert_true(ll_tls_resumed(l.c));
    link_close(&l);
    /* ... but never to a name the certificate does not cover: a full handshake, which fails. */
    expect_client_rejects(cctx, sctx, "wrong.example", SDK_EPEERAUTH, "hostname mismatch");
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* Another server (its own ticket keys) cannot use the saved ticket: a full handshake, no
 * error, and its ticket then replaces the first one's. */
static void test_ticket_from_another_server(void **state)
{
    ll_tls_ctx *first = server_ctx(false);
    ll_tls_ctx *second = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    tpair l;

    (void)state;
    connect_ok(cctx, first, "localhost", &l);
    link_close(&l);
    connect_ok(cctx, second, "127.0.0.1", &l);
    assert_false(ll_tls_resumed(l.c));
    assert_false(ll_tls_resumed(l.s));
    link_close(&l);
    connect_ok(cctx, second, "localhost", &l);
    assert_true(ll_tls_resumed(l.c));
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(first);
    ll_tls_ctx_free(second);
}

/* The server sends no TLS 1.3 ticket during the handshake, only when asked (the server I/O
 * thread asks once its Welcome is written): before that the client has nothing to resume. */
static void test_ticket_on_request(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    char buf[8];
    size_t n = 0;
    tpair l;

    (void)state;
    link_open(&l, cctx, sctx, "localhost");
    link_handshake(&l);
    assert_int_equal(l.crc, LL_TLS_OK);
    assert_int_equal(l.src, LL_TLS_OK);
    write_all(l.s, l.fd[1], "ping", 4);
    expect_message(l.c, l.fd[0], "ping");
    assert_int_equal(ll_tls_read(l.c, buf, sizeof buf, &n), LL_TLS_WANT_READ); /* no ticket */
    assert_int_equal(ll_tls_send_ticket(l.c), SDK_EINVAL);                     /* a server's call */
    link_close(&l);
    connect_ok(cctx, sctx, "localhost", &l); /* this one sends the ticket */
    assert_false(ll_tls_resumed(l.c));
    assert_int_equal(ll_tls_send_ticket(l.s), LL_TLS_OK); /* once sent, a no-op */
    link_close(&l);
    connect_ok(cctx, sctx, "localhost", &l);
    assert_true(ll_tls_resumed(l.c));
    assert_true(ll_tls_resumed(l.s));
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* A connection that was offered the saved session and then failed with a TLS error (here:
 * another server, which wants a client certificate) discards that session. */
static void test_fatal_error_forgets_session(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *strict = server_ctx(true);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    link_close(&l);
    expect_client_cert_refused(cctx, strict, "peer did not return a certificate", "alert certificate required");
    connect_ok(cctx, sctx, "localhost", &l);
    assert_false(ll_tls_resumed(l.c));
    link_close(&l);
    /* A plain disconnect (the pair above closed without close_notify) keeps it. */
    connect_ok(cctx, sctx, "localhost", &l);
    assert_true(ll_tls_resumed(l.c));
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(strict);
    ll_tls_ctx_free(sctx);
}

typedef struct worker {
    ll_tls_ctx *cctx;
    ll_tls_ctx *sctx;
    int handshakes_ok;
    int resumed;
} worker;

/* No cmocka asserts off the main thread: count and let the main thread check. */
static void *handshake_worker(void *arg)
{
    worker *w = arg;
    int i = 0;

    for (i = 0; i < 5; i++) {
        char buf[8];
        size_t n = 0;
        tpair l;
        memset(&l, 0, sizeof l);
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, l.fd) != 0 ||
            ll_tls_new(w->cctx, l.fd[0], "localhost", &l.c, NULL, 0) != 0 ||
            ll_tls_new(w->sctx, l.fd[1], NULL, &l.s, NULL, 0) != 0) {
            break;
        }
        l.crc = l.src = LL_TLS_WANT_READ;
        while (pending(l.crc) || pending(l.src)) {
            step(l.c, l.fd[0], &l.crc);
            step(l.s, l.fd[1], &l.src);
        }
        /* The ticket goes first here, so that the client's read of "t" takes it in. */
        if (l.crc == 0 && l.src == 0 && ll_tls_send_ticket(l.s) == 0 && ll_tls_write(l.s, "t", 1, &n) == 0) {
            int rc = LL_TLS_WANT_READ;
            while (pending(rc)) {
                rc = ll_tls_read(l.c, buf, sizeof buf, &n);
            }
            w->handshakes_ok += rc == 0;
            w->resumed += ll_tls_resumed(l.c);
        }
        link_close(&l);
    }
    return NULL;
}

/* Two threads share both contexts (and so the client's saved session). */
static void test_shared_contexts(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    worker w[2] = {{cctx, sctx, 0, 0}, {cctx, sctx, 0, 0}};
    pthread_t th[2];
    int i = 0;

    (void)state;
    for (i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, handshake_worker, &w[i]), 0);
    }
    for (i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].handshakes_ok, 5);
        /* From its second handshake on, each thread finds some saved session. */
        assert_true(w[i].resumed >= 4);
    }
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* ---- data and closing --------------------------------------------------------------- */

#define BIG (1024 * 1024 + 17)

/* Write from client to server while reading on the server, both non-blocking. */
static void pump(tpair *l, const unsigned char *data, unsigned char *got, size_t len)
{
    size_t sent = 0;
    size_t recvd = 0;

    while (recvd < len) {
        struct pollfd p[2] = {{sent < len ? l->fd[0] : -1, POLLOUT, 0}, {l->fd[1], POLLIN, 0}};
        size_t n = 0;
        int rc = LL_TLS_OK;
        if (sent < len) {
            rc = ll_tls_write(l->c, data + sent, LL_MIN(len - sent, (size_t)65536), &n);
            assert_true(rc == LL_TLS_OK || pending(rc));
            sent += n;
        }
        rc = ll_tls_read(l->s, got + recvd, len - recvd, &n);
        assert_true(rc == LL_TLS_OK || pending(rc));
        recvd += n;
        if (n == 0) {
            assert_true(poll(p, 2, WAIT_MS) > 0);
        }
    }
}

static void test_large_transfer(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    unsigned char *data = malloc(BIG);
    unsigned char *got = malloc(BIG);
    size_t i = 0;
    tpair l;

    (void)state;
    assert_non_null(data);
    assert_non_null(got);
    for (i = 0; i < BIG; i++) {
        data[i] = (unsigned char)(i * 7 + (i >> 12));
    }
    connect_ok(cctx, sctx, "localhost", &l);
    pump(&l, data, got, BIG);
    assert_memory_equal(data, got, BIG);
    assert_false(ll_tls_has_pending(l.s));
    link_close(&l);
    free(data);
    free(got);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_pending(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    char buf[4];
    size_t n = 0;
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    write_all(l.c, l.fd[0], "abcdefgh", 8);
    assert_int_equal(read_some(l.s, l.fd[1], buf, 3, &n), LL_TLS_OK);
    assert_int_equal(n, 3);
    /* The rest of the record is decrypted already: the socket will not become readable. */
    assert_true(ll_tls_has_pending(l.s));
    assert_int_equal(read_some(l.s, l.fd[1], buf, 4, &n), LL_TLS_OK);
    assert_int_equal(read_some(l.s, l.fd[1], buf, 1, &n), LL_TLS_OK);
    assert_false(ll_tls_has_pending(l.s));

    /* Two records in one read (read-ahead): the second waits inside OpenSSL, not in the
     * socket, and has_pending says so. */
    write_all(l.c, l.fd[0], "ab", 2);
    write_all(l.c, l.fd[0], "cd", 2);
    assert_int_equal(read_some(l.s, l.fd[1], buf, 4, &n), LL_TLS_OK);
    assert_int_equal(n, 2);
    assert_true(ll_tls_has_pending(l.s));
    assert_int_equal(read_some(l.s, l.fd[1], buf, 4, &n), LL_TLS_OK);
    assert_memory_equal(buf, "cd", 2);
    assert_false(ll_tls_has_pending(l.s));
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* A quiet connection's buffers freed on both ends (also with nothing to free): the next
 * exchange allocates them again. */
static void test_release_buffers(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    for (int i = 0; i < 2; i++) {
        ll_tls_release_buffers(l.c);
        ll_tls_release_buffers(l.s);
        exchange(&l);
    }
    ll_tls_release_buffers(NULL);
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

static void test_close_notify(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    char buf[16];
    size_t n = 0;
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    ll_tls_shutdown(l.c);
    ll_tls_shutdown(l.c); /* once only */
    assert_int_equal(read_some(l.s, l.fd[1], buf, sizeof buf, &n), SDK_EDISCONNECTED);
    assert_contains(ll_tls_error(l.s), "close_notify");
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* The peer vanishes: reads see EOF, writes see EPIPE, and no SIGPIPE kills the process
 * (this test runs with SIGPIPE's default action). */
static void test_peer_vanishes(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    ll_tls_ctx *cctx = client_ctx(dir, false);
    char buf[16];
    size_t n = 0;
    int rc = 0;
    tpair l;

    (void)state;
    connect_ok(cctx, sctx, "localhost", &l);
    close(l.fd[0]);
    l.fd[0] = -1;
    assert_int_equal(read_some(l.s, l.fd[1], buf, sizeof buf, &n), SDK_EDISCONNECTED);
    assert_string_equal(ll_tls_error(l.s), "peer closed the connection");
    ll_tls_shutdown(l.s); /* after a failure: a no-op */
    link_close(&l);

    connect_ok(cctx, sctx, "localhost", &l);
    close(l.fd[0]);
    l.fd[0] = -1;
    rc = ll_tls_write(l.s, "data", 4, &n);
    assert_int_equal(rc, SDK_EDISCONNECTED);
    assert_string_equal(ll_tls_error(l.s), strerror(EPIPE));
    link_close(&l);
    ll_tls_ctx_free(cctx);
    ll_tls_ctx_free(sctx);
}

/* ---- ALPN against foreign peers ----------------------------------------------------- */

typedef struct raw_peer {
    int fd;
    bool server;
    const char *alpn;     /* client: ALPN list in wire format, NULL for none */
    int max_version;      /* 0 for OpenSSL's default */
    SSL_SESSION *session; /* client: offered if set; then the connection's session */
    bool reused;          /* client: the session was resumed */
    int version;          /* the negotiated protocol version */
    int ret;              /* SSL_connect / SSL_accept */
    char reason[256];
} raw_peer;

/* A plain OpenSSL peer without ALPN, blocking, on its own thread. */
static void *raw_peer_run(void *arg)
{
    raw_peer *r = arg;
    char cert[PATHLEN], key[PATHLEN];
    SSL_CTX *ctx = SSL_CTX_new(r->server ? TLS_server_method() : TLS_client_method());
    SSL *ssl = NULL;
    sigset_t pipe_set;

    /* Plain OpenSSL writes with write(2); keep a late write from raising SIGPIPE. */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    if (r->server) {
        SSL_CTX_use_certificate_chain_file(ctx, path_in(dir, "server.pem", cert));
        SSL_CTX_use_PrivateKey_file(ctx, path_in(dir, "server.key", key), SSL_FILETYPE_PEM);
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (r->alpn != NULL) {
        SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)r->alpn, (unsigned)strlen(r->alpn));
    }
    if (r->max_version != 0) {
        SSL_CTX_set_max_proto_version(ctx, r->max_version);
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, r->fd);
    if (r->session != NULL) {
        SSL_set_session(ssl, r->session);
    }
    r->ret = r->server ? SSL_accept(ssl) : SSL_connect(ssl);
    ERR_error_string_n(ERR_peek_error(), r->reason, sizeof r->reason);
    ERR_clear_error();
    r->version = SSL_version(ssl);
    if (r->ret == 1 && !r->server) {
        r->reused = SSL_session_reused(ssl) == 1;
        SSL_SESSION_free(r->session);
        r->session = SSL_get1_session(ssl);
        SSL_shutdown(ssl); /* keeps the session resumable */
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return NULL;
}

static void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    assert_true(flags >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

/* Handshake between one of ours (cctx or sctx, the other NULL) and a raw OpenSSL peer; r's
 * max_version and session are kept, the rest is set here. */
static void with_raw_peer(ll_tls_ctx *cctx, ll_tls_ctx *sctx, const char *alpn, tpair *l, raw_peer *r)
{
    bool raw_is_server = sctx == NULL;
    pthread_t th;

    memset(l, 0, sizeof *l);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l->fd), 0);
    /* Ours is non-blocking; the raw peer blocks on its own thread. */
    set_nonblocking(l->fd[raw_is_server ? 0 : 1]);
    *r = (raw_peer){.fd = l->fd[raw_is_server ? 1 : 0],
                    .server = raw_is_server,
                    .alpn = alpn,
                    .max_version = r->max_version,
                    .session = r->session};
    link_wrap(l, cctx, sctx, "localhost");
    assert_int_equal(pthread_create(&th, NULL, raw_peer_run, r), 0);
    link_handshake(l);
    pthread_join(th, NULL);
}

static void expect_server_refuses_alpn(const char *alpn, const char *server_reason)
{
    ll_tls_ctx *sctx = server_ctx(false);
    raw_peer r = {0};
    tpair l;

    with_raw_peer(NULL, sctx, alpn, &l, &r);
    assert_int_equal(l.src, SDK_ETLS);
    assert_contains(ll_tls_error(l.s), server_reason);
    assert_int_not_equal(r.ret, 1);
    assert_contains(r.reason, "no application protocol");
    link_close(&l);
    ll_tls_ctx_free(sctx);
}

/* TLS 1.2 carries its ticket inside the handshake: a TLS 1.2 client resumes without the server
 * asking for a ticket, and asking is a harmless no-op. */
static void test_tls12_resumption(void **state)
{
    ll_tls_ctx *sctx = server_ctx(false);
    raw_peer r = {.max_version = TLS1_2_VERSION};
    tpair l;
    int i = 0;

    (void)state;
    for (i = 0; i < 2; i++) {
        with_raw_peer(NULL, sctx, "\x0alifeline/1", &l, &r);
        assert_int_equal(r.ret, 1);
        assert_int_equal(r.version, TLS1_2_VERSION);
        assert_int_equal(l.src, LL_TLS_OK);
        assert_int_equal(ll_tls_send_ticket(l.s), LL_TLS_OK);
        assert_int_equal(r.reused, i == 1);
        assert_int_equal(ll_tls_resumed(l.s), i == 1);
        link_close(&l);
    }
    SSL_SESSION_free(r.session);
    ll_tls_ctx_free(sctx);
}

static void test_server_requires_alpn(void **state)
{
    (void)state;
    expect_server_refuses_alpn(NULL, "client did not offer ALPN protocol lifeline/1");
    expect_server_refuses_alpn("\x02h2\x08http/1.1", "no application protocol");
}

static void test_client_requires_alpn(void **state)
{
    ll_tls_ctx *cctx = client_ctx(dir, false);
    raw_peer r = {0};
    tpair l;

    (void)state;
    with_raw_peer(cctx, NULL, NULL, &l, &r);
    assert_int_equal(l.crc, SDK_ETLS);
    assert_string_equal(ll_tls_error(l.c), "server did not select ALPN protocol lifeline/1");
    link_close(&l);
    ll_tls_ctx_free(cctx);
}

/* ---- configuration errors ----------------------------------------------------------- */

static void expect_ctx_fails(const ll_tls_ctx_config *cfg, int code, const char *part)
{
    char err[ERRLEN] = "";
    ll_tls_ctx *ctx = (ll_tls_ctx *)&err; /* must be reset to NULL */

    assert_int_equal(ll_tls_ctx_new(cfg, &ctx, err, sizeof err), code);
    assert_null(ctx);
    assert_contains(err, part);
}

static void test_bad_files(void **state)
{
    char cert[PATHLEN], key[PATHLEN], ckey[PATHLEN], junk[PATHLEN];
    FILE *f = fopen(path_in(dir, "junk.pem", junk), "w");

    (void)state;
    assert_non_null(f);
    fputs("this is not PEM\n", f);
    fclose(f);
    path_in(dir, "server.pem", cert);
    path_in(dir, "server.key", key);
    path_in(dir, "client.key", ckey);
    expect_ctx_fails(&(ll_tls_ctx_config){.server = true, .cert_file = "/nonexistent/s.pem", .key_file = key}, SDK_ETLS,
                     "cannot load certificate /nonexistent/s.pem: ");
    expect_ctx_fails(&(ll_tls_ctx_config){.server = true, .cert_file = cert, .key_file = "/nonexistent/s.key"},
                     SDK_ETLS, "cannot load private key /nonexistent/s.key: ");
    expect_ctx_fails(&(ll_tls_ctx_config){.server = true, .cert_file = junk, .key_file = key}, SDK_ETLS, junk);
    expect_ctx_fails(&(ll_tls_ctx_config){.server = true, .cert_file = cert, .key_file = ckey}, SDK_ETLS,
                     "key values mismatch");
    expect_ctx_fails(
        &(ll_tls_ctx_config){
            .server = true, .cert_file = cert, .key_file = key, .client_ca_file = "/nonexistent/ca.pem"},
        SDK_ETLS, "/nonexistent/ca.pem");
    expect_ctx_fails(&(ll_tls_ctx_config){.ca_file = "/nonexistent/ca.pem"}, SDK_ETLS,
                     "cannot load CA file /nonexistent/ca.pem: ");
    expect_ctx_fails(&(ll_tls_ctx_config){.ca_file = junk}, SDK_ETLS, junk);
    expect_ctx_fails(&(ll_tls_ctx_config){.server = true}, SDK_EINVAL, "certificate");
}

static void test_bad_arguments(void **state)
{
    char err[ERRLEN] = "";
    ll_tls_ctx *cctx = client_ctx(dir, false);
    ll_tls *t = NULL;
    char buf[8];
    size_t n = 0;

    (void)state;
    assert_int_equal(ll_tls_ctx_new(NULL, &cctx, err, sizeof err), SDK_EINVAL);
    assert_int_equal(ll_tls_new(cctx, 0, NULL, &t, err, sizeof err), SDK_EINVAL);
    assert_null(t);
    assert_int_equal(ll_tls_new(cctx, 0, "", &t, err, sizeof err), SDK_EINVAL);
    assert_int_equal(ll_tls_new(cctx, -1, "localhost", &t, err, sizeof err), SDK_EINVAL);
    assert_int_equal(ll_tls_read(NULL, buf, sizeof buf, &n), SDK_EINVAL);
    assert_int_equal(ll_tls_write(NULL, buf, sizeof buf, &n), SDK_EINVAL);
    assert_false(ll_tls_has_pending(NULL));
    assert_false(ll_tls_resumed(NULL));
    assert_string_equal(ll_tls_error(NULL), "");
    ll_tls_peer_subject(NULL, buf, sizeof buf);
    assert_string_equal(buf, "");
    ll_tls_shutdown(NULL);
    ll_tls_free(NULL);
    ll_tls_ctx_free(NULL);
    ll_tls_ctx_free(cctx);
}

/* ---- development certificates ------------------------------------------------------- */

static X509 *read_cert(const char *d, const char *name)
{
    char p[PATHLEN];
    FILE *f = fopen(path_in(d, name, p), "r");
    X509 *x = NULL;

    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static void test_dev_cert_contents(void **state)
{
    X509 *ca = read_cert(dir, "ca.pem");
    X509 *server = read_cert(dir, "server.pem");
    X509 *client = read_cert(dir, "client.pem");

    (void)state;
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_check_ca(server), 0);
    assert_true((X509_get_key_usage(ca) & KU_KEY_CERT_SIGN) != 0);
    assert_int_equal(X509_check_issued(ca, server), X509_V_OK);
    assert_int_equal(X509_check_issued(ca, client), X509_V_OK);
    assert_int_equal(X509_check_host(server, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(server, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(server, "::1", 0), 1);
    assert_int_equal(X509_check_purpose(server, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_purpose(client, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_not_equal(X509_check_purpose(client, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(server)), 256);
    X509_free(ca);
    X509_free(server);
    X509_free(client);
}

static void assert_mode(const char *d, const char *name, mode_t want)
{
    char p[PATHLEN];
    struct stat st;

    assert_int_equal(stat(path_in(d, name, p), &st), 0);
    assert_int_equal(st.st_mode & 0777, want);
}

static bool same_file_content(const char *a, const char *b)
{
    char buf_a[8192], buf_b[8192];
    FILE *fa = fopen(a, "r");
    FILE *fb = fopen(b, "r");
    size_t na = fa != NULL ? fread(buf_a, 1, sizeof buf_a, fa) : 0;
    size_t nb = fb != NULL ? fread(buf_b, 1, sizeof buf_b, fb) : 0;

    if (fa != NULL) {
        fclose(fa);
    }
    if (fb != NULL) {
        fclose(fb);
    }
    return na > 0 && na == nb && memcmp(buf_a, buf_b, na) == 0;
}

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "r");
    FILE *out = fopen(to, "w");
    size_t n = 0;

    assert_non_null(in);
    assert_non_null(out);
    n = fread(buf, 1, sizeof buf, in);
    assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_dev_certs_idempotent(void **state)
{
    char err[ERRLEN] = "";
    char d[PATHLEN], p[PATHLEN], saved[PATHLEN], ca[PATHLEN], ca_saved[PATHLEN];

    (void)state;
    path_in(dir, "idem", d);
    assert_int_equal(ll_tls_dev_certs(d, err, sizeof err), 0);
    assert_mode(d, "ca.key", 0600);
    assert_mode(d, "server.key", 0600);
    assert_mode(d, "client.key", 0600);
    copy_file(path_in(d, "server.pem", p), path_in(dir, "idem-server.pem", saved));
    copy_file(path_in(d, "ca.pem", ca), path_in(dir, "idem-ca.pem", ca_saved));
    /* All present: nothing changes. */
    assert_int_equal(ll_tls_dev_certs(d, err, sizeof err), 0);
    assert_true(same_file_content(p, saved));
    /* A missing leaf is issued again by the same CA. */
    assert_int_equal(unlink(path_in(d, "client.pem", p)), 0);
    assert_int_equal(ll_tls_dev_certs(d, err, sizeof err), 0);
    assert_int_equal(access(p, F_OK), 0);
    assert_true(same_file_content(ca, ca_saved));
    assert_true(same_file_content(path_in(d, "server.pem", p), saved));
    /* A new CA invalidates every leaf. */
    assert_int_equal(unlink(path_in(d, "ca.key", p)), 0);
    assert_int_equal(ll_tls_dev_certs(d, err, sizeof err), 0);
    assert_false(same_file_content(ca, ca_saved));
    assert_false(same_file_content(path_in(d, "server.pem", p), saved));
}

static void test_dev_certs_errors(void **state)
{
    char err[ERRLEN] = "";
    char d[PATHLEN], from[PATHLEN], to[PATHLEN];
    const char *const sans[] = {"x.example", NULL};

    (void)state;
    assert_int_equal(ll_tls_dev_certs("/dev/null/certs", err, sizeof err), SDK_EIO);
    assert_contains(err, "/dev/null");
    assert_int_equal(ll_tls_dev_certs("", err, sizeof err), SDK_EINVAL);
    assert_int_equal(ll_tls_dev_cert_for(dir, NULL, "x", sans, err, sizeof err), SDK_EINVAL);
    /* A CA key that does not belong to the CA certificate is refused. */
    path_in(dir, "mixed", d);
    assert_int_equal(ll_tls_dev_certs(d, err, sizeof err), 0);
    copy_file(path_in(dir, "client.key", from), path_in(d, "ca.key", to));
    assert_int_equal(ll_tls_dev_cert_for(d, "x", "x.example", sans, err, sizeof err), SDK_ETLS);
    assert_contains(err, "ca.key does not match ca.pem");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_alpn),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_certificate_for_other_names),
        cmocka_unit_test(test_over_tcp),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_hostname_mismatch),
        cmocka_unit_test(test_client_cert_missing),
        cmocka_unit_test(test_client_cert_from_other_ca),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_ticket_from_another_server),
        cmocka_unit_test(test_ticket_on_request),
        cmocka_unit_test(test_tls12_resumption),
        cmocka_unit_test(test_fatal_error_forgets_session),
        cmocka_unit_test(test_shared_contexts),
        cmocka_unit_test(test_large_transfer),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_release_buffers),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_peer_vanishes),
        cmocka_unit_test(test_server_requires_alpn),
        cmocka_unit_test(test_client_requires_alpn),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_dev_cert_contents),
        cmocka_unit_test(test_dev_certs_idempotent),
        cmocka_unit_test(test_dev_certs_errors),
    };

    return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
