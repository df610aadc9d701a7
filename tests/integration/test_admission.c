/*
 * Admission control against real sockets: connections over max_handshakes, max_connections
 * or the per-address rate are refused at accept (a reset, no TLS), counted and reported (a
 * stalled handshake is dropped to make room at max_handshakes),
 * while an established client keeps its exact stream and clients from other addresses
 * still connect.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ATTACKER "127.0.0.2" /* another loopback address: its own rate bucket */

typedef struct fixture {
    ht_server hs;
    ht_sevents sev;
    sdk_client *established;
    int sent; /* messages the established client has had echoed so far */
} fixture;

static double metric(const fixture *f, const char *sample)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sdk_server_metrics(f->hs.srv, &text, &len), SDK_OK);
    char want[128];
    snprintf(want, sizeof(want), "\n%s ", sample);
    const char *at = strstr(text, want);
    double v = at ? strtod(at + strlen(want), NULL) : -1;
    sdk_metrics_free(text);
    return v;
}

static void wait_metric(const fixture *f, const char *sample, double want)
{
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (metric(f, sample) != want && ht_now_ms() < deadline) {
        ht_sleep_ms(5);
    }
    assert_true(metric(f, sample) == want);
}

/* A TCP connection from ATTACKER that sends nothing: a handshake that never progresses. */
static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ATTACKER, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    return fd;
}

/* Whether the server reset or closed fd within timeout_ms (a refusal), rather than wait. */
static bool refused(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) {
        return false;
    }
    char b;
    return recv(fd, &b, 1, 0) <= 0;
}

/* The established client's stream: count more messages, each echoed back in order. */
static void stream(fixture *f, int count)
{
    char msg[32];
    for (int i = f->sent; i < f->sent + count; i++) {
        int n = snprintf(msg, sizeof(msg), "s%06d", i);
        assert_int_equal(sdk_send(f->established, msg, (size_t)n, HT_WAIT_MS), SDK_OK);
    }
    for (int i = f->sent; i < f->sent + count; i++) {
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(f->established, &m, HT_WAIT_MS), SDK_OK);
        int n = snprintf(msg, sizeof(msg), "s%06d", i);
        assert_int_equal(m->len, (size_t)n);
        assert_memory_equal(m->data, msg, (size_t)n);
        sdk_message_free(m);
    }
    f->sent += count;
}

static int start(void **state, uint32_t max_conns, uint32_t max_hs, uint32_t rate, uint32_t burst)
{
    fixture *f = calloc(1, sizeof(*f));
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.max_connections = max_conns;
    cfg.max_handshakes = max_hs;
    cfg.connect_rate_per_address = rate;
    cfg.connect_burst_per_address = burst;
    ht_sevents_init(&f->sev);
    ht_sevents_attach(&f->sev, &cfg);
    sdk_config cc;
    if (!f || ht_server_start(&f->hs, &cfg, true) != SDK_OK) {
        return -1;
    }
    ht_client_config(&cc, f->hs.port);
    if (sdk_connect(&cc, &f->established) != SDK_OK) {
        return -1;
    }
    *state = f;
    return 0;
}

static int setup_handshakes(void **state)
{
    return start(state, SDK_UNLIMITED, 5, SDK_UNLIMITED, 0);
}

static int setup_connections(void **state)
{
    return start(state, 4, SDK_UNLIMITED, SDK_UNLIMITED, 0);
}

static int setup_rate(void **state)
{
    return start(state, SDK_UNLIMITED, SDK_UNLIMITED, 5, 10);
}

static int teardown(void **state)
{
    fixture *f = *state;
    sdk_destroy(f->established);
    ht_server_destroy(&f->hs);
    ht_sevents_free(&f->sev);
    free(f);
    return 0;
}

static sdk_err connect_new(const fixture *f)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    ht_client_config(&cfg, f->hs.port);
    cfg.connect_timeout_ms = 2000;
    sdk_err rc = sdk_connect(&cfg, &c);
    if (rc == SDK_OK) {
        sdk_destroy(c);
    }
    return rc;
}

static void test_max_handshakes(void **state)
{
    fixture *f = *state;
    int stalled[5];
    uint64_t t0 = ht_now_ms();
    for (int i = 0; i < 5; i++) {
        stalled[i] = raw_connect(f->hs.port);
    }
    wait_metric(f, "lifeline_handshakes_in_progress", 5);
    int extra = raw_connect(f->hs.port);
    bool was_refused = refused(extra, HT_WAIT_MS);
    if (ht_now_ms() - t0 < 400) { /* every handshake younger than the stall bound: refused */
        assert_true(was_refused);
        assert_true(metric(f, "lifeline_connections_refused_total{reason=\"max_handshakes\"}") == 1);
        ht_sevent ev;
        assert_true(ht_sevents_wait(&f->sev, SDK_SERVER_CONNECTIONS_REFUSED, 0, 0, HT_WAIT_MS, &ev) >= 0);
        assert_non_null(strstr(ev.detail, "max_handshakes (5)"));
        assert_non_null(strstr(ev.peer_addr, ATTACKER));
    }
    close(extra);
    stream(f, 100); /* the established client does not notice */
    /* Once the stalled handshakes are older than the bound, a new client makes room. */
    ht_sleep_ms(600);
    assert_int_equal(connect_new(f), SDK_OK);
    assert_true(metric(f, "lifeline_handshakes_evicted_total") >= 1);
    stream(f, 100);
    for (int i = 0; i < 5; i++) {
        close(stalled[i]);
    }
    wait_metric(f, "lifeline_handshakes_in_progress", 0);
    assert_true(metric(f, "lifeline_handshakes_total{kind=\"full\"}") == 2);
}

static void test_max_connections(void **state)
{
    fixture *f = *state;
    int idle[3];
    for (int i = 0; i < 3; i++) {
        idle[i] = raw_connect(f->hs.port);
    }
    wait_metric(f, "lifeline_connections", 4);
    assert_int_not_equal(connect_new(f), SDK_OK);
    assert_true(metric(f, "lifeline_connections_refused_total{reason=\"max_connections\"}") >= 1);
    stream(f, 100);
    close(idle[0]);
    wait_metric(f, "lifeline_connections", 3);
    assert_int_equal(connect_new(f), SDK_OK);
    for (int i = 1; i < 3; i++) {
        close(idle[i]);
    }
}

static void test_rate_per_address(void **state)
{
    fixture *f = *state;
    int fds[30];
    int refusals = 0;
    for (int i = 0; i < 30; i++) { /* within milliseconds: the burst of 10, then refusals */
        fds[i] = raw_connect(f->hs.port);
    }
    for (int i = 0; i < 30; i++) {
        refusals += refused(fds[i], 200);
        close(fds[i]);
    }
    double counted = metric(f, "lifeline_connections_refused_total{reason=\"rate\"}");
    assert_true(refusals >= 15 && refusals <= 20);
    assert_true(counted == refusals);
    assert_int_equal(connect_new(f), SDK_OK); /* from 127.0.0.1: a bucket of its own */
    stream(f, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_max_handshakes, setup_handshakes, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup_connections, teardown),
        cmocka_unit_test_setup_teardown(test_rate_per_address, setup_rate, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
