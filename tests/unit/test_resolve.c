/*
 * Unit tests for resolve.c, and for what it gives sdk_connect: "localhost" from
 * /etc/hosts, IP literals without the resolver, several addresses (from a DNS server on
 * loopback) tried in turn, and a DNS server on loopback that never answers (a UDP socket nobody reads): resolution ends at the connect
 * deadline with SDK_ERESOLVE, and sdk_close interrupts it at once. Loopback only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lifeline/sdk.h"
#include "lifeline/server.h"
#include "ll.h"
#include "net.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ERRLEN    256
#define SLACK_MS  100 /* the brief's tolerance for "at the deadline" and "at once" */
#define DEAD_NAME "lifeline-test.example"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A UDP socket on 127.0.0.1 that receives queries and never answers. */
static int silent_dns(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void use_servers(uint16_t port)
{
    char csv[64];
    LL_DETAIL(csv, sizeof csv, "127.0.0.1:%u", (unsigned)port);
    ll_resolve_test_servers(csv);
}

/* A silent DNS server that every later resolution asks; silent_dns_done ends it. */
static int silent_dns_in_use(void)
{
    uint16_t port = 0;
    int fd = silent_dns(&port);
    use_servers(port);
    return fd;
}

static void silent_dns_done(int fd)
{
    ll_resolve_test_servers(NULL);
    close(fd);
}

static uint16_t addr_port(const ll_addr *a)
{
    return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

static const char *addr_v4(const ll_addr *a, char *buf)
{
    return inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, buf, INET_ADDRSTRLEN);
}

/* ---- names and literals --------------------------------------------------------------- */

static void test_localhost_from_hosts_file(void **state)
{
    ll_addrs list;
    char err[ERRLEN] = "";
    char text[INET_ADDRSTRLEN];
    (void)state;
    assert_int_equal(ll_resolve("localhost", 7443, ll_now_ms() + 5000, -1, &list, err, sizeof err), 0);
    assert_true(list.count >= 1);
    for (size_t i = 0; i < list.count; i++) {
        assert_int_equal(addr_port(&list.addr[i]), 7443);
        if (list.addr[i].sa.ss_family == AF_INET) {
            assert_int_equal(strncmp(addr_v4(&list.addr[i], text), "127.", 4), 0);
        }
    }
}

/* Literals never reach the resolver: with a DNS server that never answers, they still
 * come back at once. */
static void test_literals_skip_resolver(void **state)
{
    ll_addrs list;
    char err[ERRLEN] = "";
    int dns = silent_dns_in_use();
    (void)state;
    uint64_t t0 = ll_now_ms();
    assert_int_equal(ll_resolve("127.0.0.1", 1, t0 + 5000, -1, &list, err, sizeof err), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(list.addr[0].sa.ss_family, AF_INET);
    assert_int_equal(ll_resolve("::1", 2, t0 + 5000, -1, &list, err, sizeof err), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(list.addr[0].sa.ss_family, AF_INET6);
    assert_true(ll_now_ms() - t0 < SLACK_MS);
    assert_int_equal(ll_resolve("", 1, t0 + 5000, -1, &list, err, sizeof err), SDK_EINVAL);
    silent_dns_done(dns);
}

/* ---- a DNS server on loopback that answers every A query with 127.0.0.2 and 127.0.0.1 -- */

typedef struct fake_dns {
    int fd;
    uint16_t port;
    atomic_bool stop;
    pthread_t thread;
} fake_dns;

/* The answer to query q (n bytes): the question copied, then for an A query two A records
 * pointing back at it (0xc00c); any other type gets none (NOERROR, no data). */
static size_t dns_answer(const uint8_t *q, size_t n, uint8_t *out, size_t cap)
{
    static const uint8_t ips[2][4] = {{127, 0, 0, 2}, {127, 0, 0, 1}};
    size_t end = 12;
    while (end < n && q[end] != 0) {
        end += (size_t)q[end] + 1;
    }
    end += 5; /* the root label, type and class */
    if (end > n || end + 2 * 16 > cap) {
        return 0;
    }
    bool a = q[end - 4] == 0 && q[end - 3] == 1;
    memcpy(out, q, end);
    out[2] = 0x81; /* response, recursion desired and available, NOERROR */
    out[3] = 0x80;
    out[6] = 0;
    out[7] = a ? 2 : 0; /* answers */
    memset(out + 8, 0, 4);
    for (int i = 0; a && i < 2; i++) {
        const uint8_t rr[12] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
        memcpy(out + end, rr, sizeof rr);
        memcpy(out + end + sizeof rr, ips[i], 4);
        end += sizeof rr + 4;
    }
    return end;
}

static void *fake_dns_main(void *arg)
{
    fake_dns *d = arg;
    while (!atomic_load(&d->stop)) {
        struct pollfd p = {.fd = d->fd, .events = POLLIN};
        uint8_t q[512];
        uint8_t a[600];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        if (poll(&p, 1, 20) != 1) {
            continue;
        }
        ssize_t n = recvfrom(d->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fromlen);
        size_t len = n > 12 ? dns_answer(q, (size_t)n, a, sizeof a) : 0;
        if (len > 0) {
            (void)sendto(d->fd, a, len, 0, (struct sockaddr *)&from, fromlen);
        }
    }
    return NULL;
}

static void fake_dns_start(fake_dns *d)
{
    d->fd = silent_dns(&d->port);
    atomic_init(&d->stop, false);
    assert_int_equal(pthread_create(&d->thread, NULL, fake_dns_main, d), 0);
    use_servers(d->port);
}

static void fake_dns_stop(fake_dns *d)
{
    atomic_store(&d->stop, true);
    pthread_join(d->thread, NULL);
    close(d->fd);
    ll_resolve_test_servers(NULL);
}

/* "multi.test" resolves to 127.0.0.2 and 127.0.0.1. A listener on either one is reached:
 * whichever the resolver puts first, the other is reached only by trying the next address
 * after a refusal. */
static void test_several_addresses_tried_in_turn(void **state)
{
    const char *where[] = {"127.0.0.1", "127.0.0.2"};
    fake_dns dns;
    ll_addrs list;
    char err[ERRLEN] = "";
    (void)state;
    fake_dns_start(&dns);
    assert_int_equal(ll_resolve("multi.test", 9, ll_now_ms() + 5000, -1, &list, err, sizeof err), 0);
    assert_int_equal(list.count, 2);
    for (size_t i = 0; i < 2; i++) {
        int lfd = -1;
        int cfd = -1;
        assert_int_equal(ll_net_listen(where[i], 0, &lfd, err, sizeof err), 0);
        uint16_t port = ll_net_local_port(lfd);
        assert_int_equal(ll_net_connect("multi.test", port, ll_now_ms() + 5000, -1, &cfd, err, sizeof err), 0);
        close(cfd);
        close(lfd);
    }
    fake_dns_stop(&dns);
}

static void test_refused_resolver_fails_fast(void **state)
{
    ll_addrs list;
    char err[ERRLEN] = "";
    close(silent_dns_in_use()); /* closed: queries meet ICMP port unreachable */
    (void)state;
    uint64_t t0 = ll_now_ms();
    assert_int_equal(ll_resolve(DEAD_NAME, 1, t0 + 5000, -1, &list, err, sizeof err), SDK_ERESOLVE);
    assert_true(ll_now_ms() - t0 < 2000);
    assert_non_null(strstr(err, DEAD_NAME));
    assert_int_equal(list.count, 0);
    ll_resolve_test_servers(NULL);
}

/* ---- a resolver that never answers ------------------------------------------------------ */

static void test_silent_resolver_ends_at_deadline(void **state)
{
    ll_addrs list;
    char err[ERRLEN] = "";
    int dns = silent_dns_in_use();
    (void)state;
    uint64_t t0 = ll_now_ms();
    assert_int_equal(ll_resolve(DEAD_NAME, 1, t0 + 500, -1, &list, err, sizeof err), SDK_ERESOLVE);
    uint64_t took = ll_now_ms() - t0;
    printf("ll_resolve against a silent DNS server, 500 ms deadline: %llu ms: %s\n", (unsigned long long)took, err);
    assert_true(took >= 500 && took <= 500 + SLACK_MS);
    assert_non_null(strstr(err, DEAD_NAME));
    assert_non_null(strstr(err, "c-ares"));
    silent_dns_done(dns);
}

static void test_wake_fd_interrupts(void **state)
{
    ll_addrs list;
    char err[ERRLEN] = "";
    int dns = silent_dns_in_use();
    int wake = -1;
    (void)state;
    assert_int_equal(ll_wake_open(&wake), 0);
    ll_wake_signal(wake);
    assert_int_equal(ll_resolve(DEAD_NAME, 1, ll_now_ms() + 5000, wake, &list, err, sizeof err), SDK_ECLOSED);
    assert_int_equal(list.count, 0);
    ll_resolve_test_servers(NULL);
    close(wake);
    close(dns);
}

/* A one-certificate CA file: loading (and freeing) the system store costs 350 ms under
 * TSan, time that is not resolution's and that a loaded machine stretches further. */
static char ca_dir[64];
static char ca_file[96];

static void dead_name_config(sdk_config *cfg, int timeout_ms)
{
    sdk_config_init(cfg);
    cfg->ca_file = ca_file;
    cfg->host = DEAD_NAME;
    cfg->port = 7443;
    cfg->connect_timeout_ms = timeout_ms;
}

/* Done when (issue 19.5): sdk_connect fails with SDK_ERESOLVE at connect_timeout_ms. */
static void test_connect_fails_at_connect_timeout(void **state)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    char detail[ERRLEN] = "";
    int dns = silent_dns_in_use();
    (void)state;
    dead_name_config(&cfg, 800);
    uint64_t t0 = ll_now_ms();
    assert_int_equal(sdk_connect(&cfg, &c), SDK_ERESOLVE);
    uint64_t took = ll_now_ms() - t0;
    assert_int_equal(sdk_last_connect_error(detail, sizeof detail), SDK_ERESOLVE);
    printf("sdk_connect, connect_timeout_ms 800, silent DNS server: SDK_ERESOLVE after %llu ms: %s\n",
           (unsigned long long)took, detail);
    assert_null(c);
    assert_true(took + SLACK_MS >= 800 && took <= 800 + SLACK_MS);
    assert_non_null(strstr(detail, DEAD_NAME));
    silent_dns_done(dns);
}

/* Done when (issue 19.5): sdk_close during the resolution returns within 100 ms. */
static void test_close_interrupts_resolution(void **state)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    sdk_stats st;
    int dns = silent_dns_in_use();
    (void)state;
    dead_name_config(&cfg, 10000);
    cfg.retry_on_first_connect = true;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    sleep_ms(300); /* well inside the resolution: the silent server holds it for 10 s */
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.connects, 0);
    uint64_t t0 = ll_now_ms();
    assert_int_equal(sdk_close(c), SDK_OK);
    uint64_t took = ll_now_ms() - t0;
    printf("sdk_close during a resolution the DNS server never answers: %llu ms\n", (unsigned long long)took);
    assert_true(took <= SLACK_MS);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CLOSED);
    sdk_destroy(c);
    silent_dns_done(dns);
}

/* A server on ip:port with the dev certificates; its port. */
static uint16_t server_on(const char *ip, uint16_t port, sdk_server **out)
{
    char listen[64], cert[160], key[160];
    sdk_server_config scfg;
    sdk_server_config_init(&scfg);
    LL_DETAIL(listen, sizeof listen, "%s:%u", ip, (unsigned)port);
    LL_DETAIL(cert, sizeof cert, "%s/server.pem", ca_dir);
    LL_DETAIL(key, sizeof key, "%s/server.key", ca_dir);
    scfg.listen = listen;
    scfg.cert_file = cert;
    scfg.key_file = key;
    assert_int_equal(sdk_server_start(&scfg, out), SDK_OK);
    return sdk_server_port(*out);
}

/* sdk_config.endpoints: a name with two addresses is two endpoints. "multi.test" (127.0.0.2
 * and 127.0.0.1) with a server on each: after the first one's GOING_AWAY the client moves to
 * the other address of the same entry. servername covers both (the certificate does not
 * name multi.test). */
static void test_name_with_two_addresses_is_two_endpoints(void **state)
{
    fake_dns dns;
    sdk_server *srv[2] = {NULL, NULL};
    (void)state;
    fake_dns_start(&dns);
    uint16_t port = server_on("127.0.0.1", 0, &srv[0]);
    assert_int_equal(server_on("127.0.0.2", port, &srv[1]), port);
    char ep[32], first[64], then[64];
    LL_DETAIL(ep, sizeof ep, "multi.test:%u", (unsigned)port);
    const char *eps[1] = {ep};
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.endpoints = eps;
    cfg.endpoint_count = 1;
    cfg.servername = "localhost";
    cfg.ca_file = ca_file;
    cfg.reconnect_min_ms = 10;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    size_t index = 9;
    assert_int_equal(sdk_current_endpoint(c, &index, first, sizeof first), SDK_OK);
    assert_int_equal(index, 0);
    int used = strncmp(first, "127.0.0.1:", 10) == 0 ? 0 : 1;
    assert_int_equal(strncmp(first, used ? "127.0.0.2:" : "127.0.0.1:", 10), 0);
    sdk_server_stop(srv[used]);
    uint64_t deadline = ll_now_ms() + 10000;
    do {
        sleep_ms(5);
        assert_int_equal(sdk_current_endpoint(c, &index, then, sizeof then), SDK_OK);
    } while ((sdk_get_state(c) != SDK_STATE_CONNECTED || strcmp(first, then) == 0) && ll_now_ms() < deadline);
    assert_int_equal(index, 0);
    assert_int_equal(strncmp(then, used ? "127.0.0.1:" : "127.0.0.2:", 10), 0);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTED);
    sdk_destroy(c);
    sdk_server_destroy(srv[0]);
    sdk_server_destroy(srv[1]);
    fake_dns_stop(&dns);
}

static int make_ca(void **state)
{
    char err[256] = "";
    (void)state;
    LL_DETAIL(ca_dir, sizeof ca_dir, "/tmp/lifeline-resolve-%ld", (long)getpid());
    LL_DETAIL(ca_file, sizeof ca_file, "%s/ca.pem", ca_dir);
    if (sdk_dev_certs(ca_dir, err, sizeof err) != SDK_OK) {
        fprintf(stderr, "dev certs: %s\n", err);
        return -1;
    }
    return 0;
}

static int remove_ca(void **state)
{
    static const char *const files[] = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"};
    char path[160];
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        LL_DETAIL(path, sizeof path, "%s/%s", ca_dir, files[i]);
        unlink(path);
    }
    return rmdir(ca_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localhost_from_hosts_file),
        cmocka_unit_test(test_literals_skip_resolver),
        cmocka_unit_test(test_several_addresses_tried_in_turn),
        cmocka_unit_test(test_refused_resolver_fails_fast),
        cmocka_unit_test(test_silent_resolver_ends_at_deadline),
        cmocka_unit_test(test_wake_fd_interrupts),
        cmocka_unit_test(test_connect_fails_at_connect_timeout),
        cmocka_unit_test(test_close_interrupts_resolution),
        cmocka_unit_test(test_name_with_two_addresses_is_two_endpoints),
    };
    return cmocka_run_group_tests(tests, make_ca, remove_ca);
}
