/*
 * Tests for the fault-injection proxy (tests/tools/faultproxy.c): a plain TCP echo
 * server runs in a thread of this process, the proxy sits in front of it, and the
 * tests talk to the proxy with ordinary sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "faultproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Generous bound for things that should take milliseconds, so sanitizers never flake. */
#define SLOW_MS 3000

/* ---- a poll-based echo server ---- */

#define ECHO_MAX_CONNS 32
#define ECHO_BUF       65536

typedef struct echo_conn {
    int fd;
    bool eof;
    size_t off, len;
    uint8_t buf[ECHO_BUF];
} echo_conn;

typedef struct echo_server {
    int lfd;
    uint16_t port;
    int wake[2];
    pthread_t thread;
    pthread_mutex_t mu;
    unsigned accepted; /* guarded by mu */
    echo_conn *conns[ECHO_MAX_CONNS];
    size_t nconns;
} echo_server;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Fixed, small kernel buffers on the test's own sockets (accepted ones inherit them)
 * keep the backpressure test's byte count dominated by the proxy, not by autotuning.
 */
static void small_buffers(int fd)
{
    int size = 64 * 1024;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

static int listen_any_port(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd >= 0) {
        small_buffers(fd);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void echo_accept(echo_server *e)
{
    int fd = accept(e->lfd, NULL, NULL);
    if (fd < 0) {
        return;
    }
    echo_conn *c = calloc(1, sizeof *c);
    if (c == NULL || e->nconns == ECHO_MAX_CONNS) {
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    e->conns[e->nconns++] = c;
    pthread_mutex_lock(&e->mu);
    e->accepted++;
    pthread_mutex_unlock(&e->mu);
}

/* Read when the buffer is empty, write it back otherwise: backpressure, like the proxy. */
static bool echo_service(echo_conn *c, short rev)
{
    if (c->len == 0 && (rev & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n < 0) {
            return false;
        }
        c->eof = (n == 0);
        c->off = 0;
        c->len = (size_t)(n > 0 ? n : 0);
    } else if (c->len > 0 && (rev & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            return false;
        }
        c->off += (size_t)n;
        if (c->off == c->len) {
            c->off = c->len = 0;
        }
    }
    return !(c->eof && c->len == 0);
}

static void *echo_main(void *arg)
{
    echo_server *e = arg;
    struct pollfd pfds[2 + ECHO_MAX_CONNS];
    for (;;) {
        pfds[0] = (struct pollfd){.fd = e->wake[0], .events = POLLIN};
        pfds[1] = (struct pollfd){.fd = e->lfd, .events = POLLIN};
        for (size_t i = 0; i < e->nconns; i++) {
            short ev = e->conns[i]->len > 0 ? POLLOUT : POLLIN;
            pfds[2 + i] = (struct pollfd){.fd = e->conns[i]->fd, .events = ev};
        }
        size_t n = e->nconns;
        if (poll(pfds, 2 + n, -1) < 0 || pfds[0].revents != 0) {
            break;
        }
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            echo_conn *c = e->conns[i];
            if (echo_service(c, pfds[2 + i].revents)) {
                e->conns[kept++] = c;
            } else {
                close(c->fd);
                free(c);
            }
        }
        e->nconns = kept;
        if (pfds[1].revents != 0) {
            echo_accept(e);
        }
    }
    for (size_t i = 0; i < e->nconns; i++) {
        close(e->conns[i]->fd);
        free(e->conns[i]);
    }
    return NULL;
}

static void echo_start(echo_server *e)
{
    memset(e, 0, sizeof *e);
    e->lfd = listen_any_port(&e->port);
    assert_true(e->lfd >= 0);
    assert_int_equal(pipe(e->wake), 0);
    pthread_mutex_init(&e->mu, NULL);
    assert_int_equal(pthread_create(&e->thread, NULL, echo_main, e), 0);
}

static void echo_stop(echo_server *e)
{
    char b = 1;
    assert_int_equal(write(e->wake[1], &b, 1), 1);
    pthread_join(e->thread, NULL);
    close(e->wake[0]);
    close(e->wake[1]);
    close(e->lfd);
    pthread_mutex_destroy(&e->mu);
}

static unsigned echo_accepted(echo_server *e)
{
    pthread_mutex_lock(&e->mu);
    unsigned n = e->accepted;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- client helpers ---- */

static int connect_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    small_buffers(fd);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* recv() with a deadline: bytes, 0 at EOF, or -1 with errno (ETIMEDOUT when none came). */
static ssize_t recv_within(int fd, void *buf, size_t len, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc = poll(&pfd, 1, ms);
    if (rc == 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    if (rc < 0) {
        return -1;
    }
    return recv(fd, buf, len, MSG_DONTWAIT);
}

/* Send msg and expect it echoed back in full. */
static void roundtrip(int fd, const char *msg)
{
    size_t len = strlen(msg);
    char buf[256];
    assert_true(len <= sizeof buf);
    assert_int_equal(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv_within(fd, buf + got, len - got, SLOW_MS);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, msg, len);
}

/* Wait for the connection to end; returns 0 for EOF or the errno it failed with. */
static int wait_for_end(int fd, int ms)
{
    char buf[4096];
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        ssize_t n = recv_within(fd, buf, sizeof buf, left > 0 ? left : 0);
        if (n == 0) {
            return 0;
        }
        if (n < 0 && errno != EAGAIN) {
            return errno;
        }
    }
}

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void set_nonblock(int fd)
{
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* Send bytes [sent, sent+len) of the pattern; returns what the socket took, or -1. */
static ssize_t send_pattern(int fd, uint64_t sent, size_t len)
{
    static uint8_t chunk[65536];
    if (len > sizeof chunk) {
        len = sizeof chunk;
    }
    for (size_t k = 0; k < len; k++) {
        chunk[k] = pattern(sent + k);
    }
    ssize_t n = send(fd, chunk, len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
    }
    return n;
}

/* Read what is there and check it against the pattern; returns bytes read or -1. */
static ssize_t recv_pattern(int fd, uint64_t got)
{
    uint8_t buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return 0;
    }
    if (n <= 0) {
        return -1;
    }
    for (ssize_t k = 0; k < n; k++) {
        if (buf[k] != pattern(got + (uint64_t)k)) {
            return -1;
        }
    }
    return n;
}

/* Stream total bytes through the echo path, sending and receiving at once. */
static void duplex(int fd, uint64_t total, int ms)
{
    set_nonblock(fd);
    uint64_t sent = 0, got = 0;
    int64_t deadline = now_ms() + ms;
    while (got < total) {
        assert_true(now_ms() < deadline);
        struct pollfd pfd = {.fd = fd, .events = (short)(POLLIN | (sent < total ? POLLOUT : 0))};
        assert_true(poll(&pfd, 1, 100) >= 0);
        if (pfd.revents & POLLOUT) {
            ssize_t n = send_pattern(fd, sent, (size_t)(total - sent));
            assert_true(n >= 0);
            sent += (uint64_t)n;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv_pattern(fd, got);
            assert_true(n >= 0);
            got += (uint64_t)n;
        }
    }
    assert_int_equal(got, total);
}

/* ---- fixture: echo server plus a proxy in front of it ---- */

typedef struct fixture {
    echo_server echo;
    fp_proxy *proxy;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    echo_start(&f->echo);
    assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", f->echo.port, &f->proxy), 0);
    assert_true(fp_port(f->proxy) != 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fp_stop(f->proxy);
    echo_stop(&f->echo);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_roundtrip_and_stats(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "hello lifeline");
    roundtrip(fd, "again");
    close(fd);
    fp_stats s;
    fp_get_stats(f->proxy, &s);
    assert_int_equal(s.accepted, 1);
    assert_int_equal(s.bytes_to_target, 19);
    assert_int_equal(s.bytes_to_client, 19);
    assert_int_equal(s.resets, 0);
    assert_int_equal(s.closes, 0);
}

static void test_large_transfer(void **state)
{
    fixture *f = *state;
    const uint64_t total = 8u << 20;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    duplex(fd, total, 8000);
    close(fd);
    fp_stats s;
    fp_get_stats(f->proxy, &s);
    assert_int_equal(s.bytes_to_target, total);
    assert_int_equal(s.bytes_to_client, total);
}

/*
 * A client that writes and never reads must stall: the proxy stops reading once its
 * buffers are full, so only kernel buffers and two FP_BUF_SIZE buffers fill up.
 * Then every byte must still come back intact.
 */
static void test_backpressure_bounded(void **state)
{
    fixture *f = *state;
    const uint64_t cap = 96u << 20;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    set_nonblock(fd);
    uint64_t sent = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 300) == 0 || sent >= cap) {
            break;
        }
        ssize_t n = send_pattern(fd, sent, 65536);
        assert_true(n >= 0);
        sent += (uint64_t)n;
    }
    assert_true(sent < (64u << 20));
    uint64_t got = 0;
    int64_t deadline = now_ms() + 8000;
    while (got < sent) {
        assert_true(now_ms() < deadline);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_true(poll(&pfd, 1, 100) >= 0);
        ssize_t n = recv_pattern(fd, got);
        assert_true(n >= 0);
        got += (uint64_t)n;
    }
    close(fd);
}

static void test_reset_all(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "x");
    fp_reset_all(f->proxy);
    assert_int_equal(wait_for_end(fd, SLOW_MS), ECONNRESET);
    close(fd);
    fp_stats s;
    fp_get_stats(f->proxy, &s);
    assert_int_equal(s.resets, 1);
    assert_int_equal(s.closes, 0);

    /* A connection the proxy has not even accepted yet is reset too. */
    fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    fp_reset_all(f->proxy);
    assert_int_equal(wait_for_end(fd, SLOW_MS), ECONNRESET);
    close(fd);

    /* The proxy itself keeps serving. */
    fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "still here");
    close(fd);
}

static void test_close_all(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "x");
    fp_close_all(f->proxy);
    assert_int_equal(wait_for_end(fd, SLOW_MS), 0);
    close(fd);
    fp_stats s;
    fp_get_stats(f->proxy, &s);
    assert_int_equal(s.closes, 1);
    assert_int_equal(s.resets, 0);
}

/* With data in flight both ways, a clean close must still read as EOF, not a reset. */
static void test_close_all_in_flight(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    set_nonblock(fd);
    uint64_t sent = 0;
    while (sent < (1u << 20)) {
        ssize_t n = send_pattern(fd, sent, 65536);
        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        sent += (uint64_t)n;
    }
    assert_true(sent > 0);
    fp_close_all(f->proxy);
    assert_int_equal(wait_for_end(fd, SLOW_MS), 0);
    close(fd);
}

static void test_half_close(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    assert_int_equal(send(fd, "half", 4, MSG_NOSIGNAL), 4);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    char buf[8];
    size_t got = 0;
    while (got < 4) {
        ssize_t n = recv_within(fd, buf + got, sizeof buf - got, SLOW_MS);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, "half", 4);
    assert_int_equal(wait_for_end(fd, SLOW_MS), 0);
    close(fd);
}

static void test_blackhole(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "a");
    fp_set_blackhole(f->proxy, true);

    /* A new connection is accepted but not passed on to the server. */
    int fd2 = connect_port(fp_port(f->proxy));
    assert_true(fd2 >= 0);
    assert_int_equal(send(fd, "b", 1, MSG_NOSIGNAL), 1);
    assert_int_equal(send(fd2, "c", 1, MSG_NOSIGNAL), 1);
    struct pollfd pfds[2] = {{.fd = fd, .events = POLLIN}, {.fd = fd2, .events = POLLIN}};
    assert_int_equal(poll(pfds, 2, 300), 0); /* nothing echoed, no HUP, no error */
    assert_int_equal(echo_accepted(&f->echo), 1);

    /* Lifting it delivers what was held: a healed link, not a lossy one. */
    fp_set_blackhole(f->proxy, false);
    char c = 0;
    assert_int_equal(recv_within(fd, &c, 1, SLOW_MS), 1);
    assert_int_equal(c, 'b');
    assert_int_equal(recv_within(fd2, &c, 1, SLOW_MS), 1);
    assert_int_equal(c, 'c');
    assert_int_equal(echo_accepted(&f->echo), 2);
    close(fd);
    close(fd2);
}

static void test_refuse(void **state)
{
    fixture *f = *state;
    uint16_t port = fp_port(f->proxy);
    int fd = connect_port(port);
    assert_true(fd >= 0);
    roundtrip(fd, "before");

    assert_int_equal(fp_set_refuse(f->proxy, true), 0);
    assert_int_equal(connect_port(port), -1);
    assert_int_equal(errno, ECONNREFUSED);
    roundtrip(fd, "existing connections live on");

    assert_int_equal(fp_set_refuse(f->proxy, false), 0);
    assert_int_equal(fp_port(f->proxy), port);
    int fd2 = connect_port(port);
    assert_true(fd2 >= 0);
    roundtrip(fd2, "after");
    close(fd);
    close(fd2);
}

static void test_delay(void **state)
{
    fixture *f = *state;
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "warm up");
    assert_int_equal(fp_set_delay_ms(f->proxy, -1), -1);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(fp_set_delay_ms(f->proxy, 100), 0);
    int64_t t0 = now_ms();
    roundtrip(fd, "slow");
    int64_t took = now_ms() - t0;
    assert_true(took >= 200); /* 100 ms each way */
    assert_true(took < 200 + SLOW_MS);

    /* Many chunks through the delay queue arrive complete and in order. */
    duplex(fd, 2u << 20, 8000);

    assert_int_equal(fp_set_delay_ms(f->proxy, 0), 0);
    t0 = now_ms();
    roundtrip(fd, "fast");
    assert_true(now_ms() - t0 < 100);
    close(fd);
}

static void test_random_resets(void **state)
{
    fixture *f = *state;
    assert_int_equal(fp_random_resets(f->proxy, 100, 50), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(fp_random_resets(f->proxy, 30, 80), 0);
    for (int i = 0; i < 3; i++) {
        int fd = connect_port(fp_port(f->proxy));
        assert_true(fd >= 0);
        int64_t t0 = now_ms();
        assert_int_equal(wait_for_end(fd, SLOW_MS), ECONNRESET);
        /* At most two intervals: the first may pass before the proxy accepts. */
        assert_true(now_ms() - t0 < 160 + SLOW_MS / 3);
        close(fd);
    }
    fp_stats s;
    fp_get_stats(f->proxy, &s);
    assert_true(s.resets >= 3);

    assert_int_equal(fp_random_resets(f->proxy, 0, 0), 0);
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "calm");
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 200), 0);
    roundtrip(fd, "still calm");
    close(fd);
}

static void test_set_target(void **state)
{
    fixture *f = *state;
    int old = connect_port(fp_port(f->proxy));
    assert_true(old >= 0);
    roundtrip(old, "old");

    echo_server second;
    echo_start(&second);
    assert_int_equal(fp_set_target(f->proxy, "localhost", second.port), 0);
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "new");
    assert_int_equal(echo_accepted(&second), 1);
    assert_int_equal(echo_accepted(&f->echo), 1);
    roundtrip(old, "old still works");
    close(fd);
    close(old);
    echo_stop(&second);
}

/* A dead server shows up as a reset at the client, the way a refused hop would. */
static void test_target_down(void **state)
{
    fixture *f = *state;
    uint16_t dead_port = 0;
    int lfd = listen_any_port(&dead_port);
    assert_true(lfd >= 0);
    close(lfd); /* nobody listens there now */
    assert_int_equal(fp_set_target(f->proxy, "127.0.0.1", dead_port), 0);
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    assert_int_equal(wait_for_end(fd, SLOW_MS), ECONNRESET);
    close(fd);
}

static void test_loopback_only(void **state)
{
    fixture *f = *state;
    fp_proxy *p = NULL;
    const char *bad[] = {"10.1.2.3",        "192.168.0.1", "8.8.8.8", "example.com",
                         "::ffff:10.0.0.1", "2001:db8::1", "0.0.0.0", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_int_equal(fp_start("127.0.0.1", 0, bad[i], 80, &p), -1);
        assert_int_equal(errno, EPERM);
        assert_null(p);
        assert_int_equal(fp_set_target(f->proxy, bad[i], 80), -1);
        assert_int_equal(errno, EPERM);
    }
    assert_int_equal(fp_start("0.0.0.0", 0, "127.0.0.1", 80, &p), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(fp_start("127.0.0.1", 0, NULL, 80, &p), -1);
    assert_int_equal(errno, EINVAL);

    const char *good[] = {"127.0.0.1", "127.200.3.4", "::1", "localhost", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(fp_start("127.0.0.1", 0, good[i], 80, &p), 0);
        fp_stop(p);
        p = NULL;
    }
    /* The rejected targets left the proxy pointing at the echo server. */
    int fd = connect_port(fp_port(f->proxy));
    assert_true(fd >= 0);
    roundtrip(fd, "unchanged");
    close(fd);
}

static void test_parse_hostport(void **state)
{
    (void)state;
    char host[64];
    uint16_t port = 0;
    assert_int_equal(fp_parse_hostport("127.0.0.1:8443", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8443);
    assert_int_equal(fp_parse_hostport("[::1]:0", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 0);
    assert_int_equal(fp_parse_hostport("localhost:65535", host, sizeof host, &port), 0);
    assert_string_equal(host, "localhost");
    const char *bad[] = {"nocolon", ":80", "127.0.0.1:", "127.0.0.1:65536", "h:12x", "[]:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fp_parse_hostport(bad[i], host, sizeof host, &port), -1);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(fp_parse_hostport("127.0.0.1:1", host, 4, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_all_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blackhole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_only, setup, teardown),
        cmocka_unit_test(test_parse_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
