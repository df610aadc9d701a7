/* Unit tests for net.c: host:port parsing, connect/listen/accept on loopback only, error
 * codes and their detail, the wake-up fd and the clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ll.h"
#include "net.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN  256
#define WAIT_MS 5000

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

/* ---- split_hostport ----------------------------------------------------------------- */

static void expect_split(const char *s, const char *host, uint16_t port)
{
    char h[64];
    uint16_t p = 1;

    assert_int_equal(ll_net_split_hostport(s, h, sizeof h, &p), 0);
    assert_string_equal(h, host);
    assert_int_equal(p, port);
}

static void expect_split_fails(const char *s)
{
    char h[64];
    uint16_t p = 0;

    assert_int_equal(ll_net_split_hostport(s, h, sizeof h, &p), SDK_EINVAL);
}

static void test_split_valid(void **state)
{
    (void)state;
    expect_split("localhost:7443", "localhost", 7443);
    expect_split("127.0.0.1:0", "127.0.0.1", 0);
    expect_split("[::1]:7443", "::1", 7443);
    expect_split("[::]:65535", "::", 65535);
    expect_split("example.com:00080", "example.com", 80);
}

static void test_split_invalid(void **state)
{
    char small[4];
    uint16_t p = 0;

    (void)state;
    expect_split_fails("");
    expect_split_fails("localhost");
    expect_split_fails("localhost:");
    expect_split_fails(":7443");
    expect_split_fails("localhost:65536");
    expect_split_fails("localhost:99999999999999999999");
    expect_split_fails("localhost:12ab");
    expect_split_fails("localhost:-1");
    expect_split_fails("localhost: 80");
    expect_split_fails("[::1]");
    expect_split_fails("[::1]7443");
    expect_split_fails("[::1:7443");
    expect_split_fails("[]:7443");
    expect_split_fails("::1:7443"); /* an IPv6 literal needs brackets */
    expect_split_fails("a:b:7443");
    assert_int_equal(ll_net_split_hostport(NULL, small, sizeof small, &p), SDK_EINVAL);
    /* The host must fit, terminator included. */
    assert_int_equal(ll_net_split_hostport("abcd:1", small, sizeof small, &p), SDK_EINVAL);
    assert_int_equal(ll_net_split_hostport("abc:1", small, sizeof small, &p), 0);
}

/* ---- listen, connect, accept -------------------------------------------------------- */

static int listen_loopback(const char *host, uint16_t *port)
{
    char err[ERRLEN] = "";
    int lfd = -1;

    assert_int_equal(ll_net_listen(host, 0, &lfd, err, sizeof err), 0);
    *port = ll_net_local_port(lfd);
    assert_int_not_equal(*port, 0);
    return lfd;
}

static int accept_one(int lfd, char *peer, size_t peerlen)
{
    int fd = -1;

    assert_true(readable(lfd, WAIT_MS));
    assert_int_equal(ll_net_accept(lfd, &fd, peer, peerlen), 0);
    return fd;
}

static void test_listen_connect_accept(void **state)
{
    char err[ERRLEN] = "";
    char peer[64] = "";
    uint16_t port = 0;
    int lfd = listen_loopback("127.0.0.1", &port);
    int cfd = -1;
    int sfd = -1;
    char byte = 0;

    (void)state;
    /* Nothing pending yet: accept must not block. */
    assert_int_equal(ll_net_accept(lfd, &sfd, peer, sizeof peer), LL_NET_AGAIN);
    assert_int_equal(ll_net_connect("127.0.0.1", port, ll_now_ms() + WAIT_MS, -1, &cfd, err, sizeof err), 0);
    sfd = accept_one(lfd, peer, sizeof peer);
    assert_int_equal(strncmp(peer, "127.0.0.1:", 10), 0);
    assert_int_equal(send(cfd, "x", 1, 0), 1);
    assert_true(readable(sfd, WAIT_MS));
    assert_int_equal(recv(sfd, &byte, 1, 0), 1);
    assert_int_equal(byte, 'x');
    close(cfd);
    close(sfd);
    close(lfd);
}

static void test_connect_by_name(void **state)
{
    char err[ERRLEN] = "";
    uint16_t port = 0;
    int lfd = listen_loopback("127.0.0.1", &port);
    int cfd = -1;

    (void)state;
    /* "localhost" may resolve to ::1 first, which nobody listens on: the next address must
     * be tried. */
    assert_int_equal(ll_net_connect("localhost", port, ll_now_ms() + WAIT_MS, -1, &cfd, err, sizeof err), 0);
    close(accept_one(lfd, NULL, 0));
    close(cfd);
    close(lfd);
}

static void test_dual_stack_listener(void **state)
{
    char err[ERRLEN] = "";
    char peer[64] = "";
    uint16_t port = 0;
    int lfd = -1;
    int cfd = -1;

    (void)state;
    if (ll_net_listen("::", 0, &lfd, err, sizeof err) != 0) {
        skip(); /* no IPv6 on this machine */
    }
    port = ll_net_local_port(lfd);
    assert_int_equal(ll_net_connect("127.0.0.1", port, ll_now_ms() + WAIT_MS, -1, &cfd, err, sizeof err), 0);
    close(accept_one(lfd, peer, sizeof peer));
    assert_non_null(strstr(peer, "127.0.0.1"));
    close(cfd);
    close(lfd);
}

static void test_listen_port_in_use(void **state)
{
    char err[ERRLEN] = "";
    uint16_t port = 0;
    int lfd = listen_loopback("127.0.0.1", &port);
    int second = -1;

    (void)state;
    assert_int_equal(ll_net_listen("127.0.0.1", port, &second, err, sizeof err), SDK_ELISTEN);
    assert_int_equal(second, -1);
    assert_non_null(strstr(err, "Address already in use"));
    assert_non_null(strstr(err, "127.0.0.1"));
    close(lfd);
}

static void test_connect_refused(void **state)
{
    char err[ERRLEN] = "";
    char expect[64];
    uint16_t port = 0;
    int lfd = listen_loopback("127.0.0.1", &port);
    int cfd = -1;

    (void)state;
    close(lfd); /* the port is now closed */
    assert_int_equal(ll_net_connect("127.0.0.1", port, ll_now_ms() + WAIT_MS, -1, &cfd, err, sizeof err),
                     SDK_ECONNREFUSED);
    assert_int_equal(cfd, -1);
    LL_DETAIL(expect, sizeof expect, "connect 127.0.0.1:%u: Connection refused", (unsigned)port);
    assert_string_equal(err, expect);
}

static void test_resolve_fails(void **state)
{
    char err[ERRLEN] = "";
    int cfd = -1;

    (void)state;
    /* Loopback only: the resolver asks a closed local port, which refuses at once. */
    ll_resolve_test_servers("127.0.0.1:9");
    assert_int_equal(ll_net_connect("nonexistent.invalid", 7443, ll_now_ms() + WAIT_MS, -1, &cfd, err, sizeof err),
                     SDK_ERESOLVE);
    ll_resolve_test_servers(NULL);
    assert_non_null(strstr(err, "nonexistent.invalid"));
    assert_int_equal(cfd, -1);
    assert_int_equal(ll_net_connect("", 7443, ll_now_ms() + WAIT_MS, -1, &cfd, err, sizeof err), SDK_EINVAL);
}

/*
 * A loopback listener whose accept queue is full drops further SYNs, so a connect to it
 * hangs: a local, harmless stand-in for a blackholed address. Returns the listener; the
 * fillers are the connections that filled the queue.
 */
static int full_listener(uint16_t *port, int fillers[2])
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int i = 0;

    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 0), 0); /* Linux then queues one connection */
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    for (i = 0; i < 2; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fillers[i], (struct sockaddr *)&sa, sizeof sa);
    }
    sleep_ms(50); /* let both handshakes reach the queue */
    return lfd;
}

static void test_connect_timeout(void **state)
{
    char err[ERRLEN] = "";
    uint16_t port = 0;
    int fillers[2];
    int lfd = full_listener(&port, fillers);
    int cfd = -1;
    uint64_t start = ll_now_ms();

    (void)state;
    assert_int_equal(ll_net_connect("127.0.0.1", port, start + 300, -1, &cfd, err, sizeof err), SDK_ETIMEDOUT);
    assert_true(ll_now_ms() - start >= 290);
    assert_true(ll_now_ms() - start < WAIT_MS);
    assert_non_null(strstr(err, "timed out"));
    close(fillers[0]);
    close(fillers[1]);
    close(lfd);
}

static void test_wake_before_connect(void **state)
{
    char err[ERRLEN] = "";
    uint16_t port = 0;
    int lfd = listen_loopback("127.0.0.1", &port);
    int wake = -1;
    int cfd = -1;

    (void)state;
    assert_int_equal(ll_wake_open(&wake), 0);
    ll_wake_signal(wake);
    assert_int_equal(ll_net_connect("127.0.0.1", port, ll_now_ms() + WAIT_MS, wake, &cfd, err, sizeof err),
                     SDK_ECLOSED);
    assert_int_equal(cfd, -1);
    /* connect must leave the signal for the I/O loop to see. */
    assert_true(readable(wake, 0));
    close(wake);
    close(lfd);
}

static void *signal_later(void *arg)
{
    sleep_ms(100);
    ll_wake_signal(*(int *)arg);
    return NULL;
}

static void test_wake_interrupts_connect(void **state)
{
    char err[ERRLEN] = "";
    uint16_t port = 0;
    int fillers[2];
    int lfd = full_listener(&port, fillers);
    int wake = -1;
    int cfd = -1;
    pthread_t th;
    uint64_t start = ll_now_ms();

    (void)state;
    assert_int_equal(ll_wake_open(&wake), 0);
    assert_int_equal(pthread_create(&th, NULL, signal_later, &wake), 0);
    assert_int_equal(ll_net_connect("127.0.0.1", port, start + WAIT_MS, wake, &cfd, err, sizeof err), SDK_ECLOSED);
    assert_true(ll_now_ms() - start < WAIT_MS / 2);
    pthread_join(th, NULL);
    close(wake);
    close(fillers[0]);
    close(fillers[1]);
    close(lfd);
}

/* ---- tune, wake, clocks ------------------------------------------------------------- */

static int get_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;

    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void test_tune(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    (void)state;
    ll_net_nodelay(fd);
    assert_int_not_equal(get_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    ll_net_keepalive(fd, 0);
    assert_int_equal(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    ll_net_keepalive(fd, 9000);
    assert_int_not_equal(get_int(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 9000);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 3);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 2);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    /* A short budget still gets valid (>= 1 s) probe timings. */
    ll_net_keepalive(fd, 500);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE), 1);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL), 1);
    close(fd);
}

static void test_wake(void **state)
{
    int wake = -1;

    (void)state;
    assert_int_equal(ll_wake_open(&wake), 0);
    assert_false(readable(wake, 0));
    ll_wake_signal(wake);
    ll_wake_signal(wake);
    assert_true(readable(wake, 0));
    ll_wake_drain(wake);
    assert_false(readable(wake, 0));
    ll_wake_drain(wake); /* draining an empty fd does not block */
    close(wake);
}

static void test_clocks(void **state)
{
    uint64_t ms = ll_now_ms();
    uint64_t us = ll_now_us();

    (void)state;
    sleep_ms(20);
    assert_true(ll_now_ms() - ms >= 19);
    assert_true(ll_now_us() - us >= 19000);
    /* Wall clock: after 2020-01-01, in milliseconds. */
    assert_true(ll_wall_ms() > 1577836800000ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_valid),
        cmocka_unit_test(test_split_invalid),
        cmocka_unit_test(test_listen_connect_accept),
        cmocka_unit_test(test_connect_by_name),
        cmocka_unit_test(test_dual_stack_listener),
        cmocka_unit_test(test_listen_port_in_use),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_resolve_fails),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_wake_before_connect),
        cmocka_unit_test(test_wake_interrupts_connect),
        cmocka_unit_test(test_tune),
        cmocka_unit_test(test_wake),
        cmocka_unit_test(test_clocks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
