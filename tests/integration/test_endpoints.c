/*
 * A client given several endpoints (sdk_config.endpoints), over real TLS against several
 * in-process servers.
 *
 *  - The server in use stops (sdk_server_stop: GOING_AWAY) mid-stream: the client moves to
 *    another one at once. Without a shared store that server does not know the session
 *    (SDK_EVENT_SESSION_LOST, as documented), yet every message reaches exactly one
 *    server's application, once, in order: the stopping one acknowledged all it took.
 *  - Unreachable entries (refused, silent, a certificate for another name) are skipped
 *    within a round and the list is cycled round after round: not tried once only, and not
 *    stuck on its last entry, until an entry that was dead comes up.
 *  - By default the order is shuffled per client, so clients spread; kept when asked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NSERVERS 3
#define NMSGS    3000
#define STOP_AT  500 /* messages the first server takes before it is stopped */

/* A server whose application records the id (first 4 bytes) of every message it takes. */
typedef struct sink {
    sdk_server *srv;
    uint16_t port;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    uint32_t *ids;
    size_t n;
} sink;

static void *sink_main(void *arg)
{
    sink *s = arg;
    sdk_message *m = NULL;
    while (sdk_server_recv(s->srv, &m, -1) == SDK_OK) {
        uint32_t id = 0;
        if (m->len >= sizeof(id)) {
            memcpy(&id, m->data, sizeof(id));
        }
        pthread_mutex_lock(&s->mu);
        if (s->n < 2 * NMSGS) {
            s->ids[s->n++] = id;
        }
        pthread_mutex_unlock(&s->mu);
        sdk_message_free(m);
    }
    return NULL;
}

static void sink_start(sink *s, const char *listen)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->ids = calloc(2 * NMSGS, sizeof(uint32_t));
    assert_non_null(s->ids);
    sdk_server_config cfg;
    ht_server_config(&cfg);
    if (listen) {
        cfg.listen = listen;
    }
    assert_int_equal(sdk_server_start(&cfg, &s->srv), SDK_OK);
    s->port = sdk_server_port(s->srv);
    assert_int_equal(pthread_create(&s->thread, NULL, sink_main, s), 0);
    s->running = true;
}

static size_t sink_count(sink *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The count once it reaches want (or the wait's end): the server acknowledges a message when
 * sdk_server_recv hands it over, so a client's flush can return before the application
 * thread above has counted it. */
static size_t sink_count_reaching(sink *s, size_t want)
{
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (sink_count(s) < want && ht_now_ms() < deadline) {
        ht_sleep_ms(1);
    }
    return sink_count(s);
}

/* sdk_server_stop (its clients hear GOING_AWAY) and join the application thread. */
static void sink_stop(sink *s)
{
    if (s->running) {
        sdk_server_stop(s->srv);
        pthread_join(s->thread, NULL);
        s->running = false;
    }
}

static void sink_free(sink *s)
{
    sink_stop(s);
    sdk_server_destroy(s->srv);
    pthread_mutex_destroy(&s->mu);
    free(s->ids);
}

/* "127.0.0.1:PORT" into buf. */
static const char *loopback(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "127.0.0.1:%u", (unsigned)port);
    return buf;
}

/* NSERVERS sinks on 127.0.0.1, and their addresses (in addr) as an endpoint list. */
static void cluster_start(sink s[NSERVERS], char addr[NSERVERS][32], const char *eps[NSERVERS])
{
    for (int i = 0; i < NSERVERS; i++) {
        sink_start(&s[i], NULL);
        eps[i] = loopback(addr[i], sizeof(addr[i]), s[i].port);
    }
}

static void client_config(sdk_config *cfg, const char *const *endpoints, size_t n)
{
    sdk_config_init(cfg);
    cfg->endpoints = endpoints;
    cfg->endpoint_count = n;
    cfg->ca_file = ht_certs_get()->ca;
    cfg->reconnect_min_ms = 20;
    cfg->reconnect_max_ms = 200;
}

static size_t current_index(sdk_client *c, char *addr, size_t len)
{
    size_t index = SIZE_MAX;
    assert_int_equal(sdk_current_endpoint(c, &index, addr, len), SDK_OK);
    return index;
}

/* Wait until the client is connected to endpoint index; false on timeout. */
static bool wait_endpoint(sdk_client *c, size_t index, int timeout_ms)
{
    uint64_t deadline = ht_now_ms() + (uint64_t)timeout_ms;
    while (ht_now_ms() < deadline) {
        if (sdk_get_state(c) == SDK_STATE_CONNECTED && current_index(c, NULL, 0) == index) {
            return true;
        }
        ht_sleep_ms(5);
    }
    return false;
}

typedef struct sender {
    sdk_client *c;
    uint32_t n;
    sdk_err err;
} sender;

static void *sender_main(void *arg)
{
    sender *s = arg;
    uint8_t buf[64];
    for (uint32_t id = 1; id <= s->n && s->err == SDK_OK; id++) {
        memset(buf, 0, sizeof(buf));
        memcpy(buf, &id, sizeof(id));
        s->err = sdk_send(s->c, buf, sizeof(buf), HT_WAIT_MS);
        if (id % 8 == 0) {
            ht_sleep_ms(1); /* a stream, not one burst: the stop lands in its middle */
        }
    }
    return NULL;
}

/* Each id 1..n reached exactly one server, once; each server saw its share in order. */
static void assert_exactly_once(sink *s, size_t nsinks, uint32_t n)
{
    uint8_t *seen = calloc(n + 1, 1);
    assert_non_null(seen);
    for (size_t k = 0; k < nsinks; k++) {
        for (size_t i = 0; i < s[k].n; i++) {
            uint32_t id = s[k].ids[i];
            assert_in_range(id, 1, n);
            if (seen[id]) {
                fail_msg("id %u reached a server twice (server %zu)", id, k);
            }
            seen[id] = 1;
            if (i > 0) {
                assert_true(id > s[k].ids[i - 1]);
            }
        }
    }
    for (uint32_t id = 1; id <= n; id++) {
        if (!seen[id]) {
            fail_msg("id %u was lost", id);
        }
    }
    free(seen);
}

static void test_going_away_moves_to_another_endpoint(void **state)
{
    (void)state;
    sink s[NSERVERS];
    char addr[NSERVERS][32];
    const char *eps[NSERVERS];
    cluster_start(s, addr, eps);
    ht_events ev;
    ht_events_init(&ev);
    sdk_config cfg;
    client_config(&cfg, eps, NSERVERS);
    ht_events_attach(&ev, &cfg);
    sender snd = {.n = NMSGS};
    assert_int_equal(sdk_connect(&cfg, &snd.c), SDK_OK);
    char where[64];
    size_t first = current_index(snd.c, where, sizeof(where));
    assert_in_range(first, 0, NSERVERS - 1);
    assert_string_equal(where, eps[first]);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender_main, &snd), 0);
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (sink_count(&s[first]) < STOP_AT && ht_now_ms() < deadline) {
        ht_sleep_ms(1);
    }
    assert_true(sink_count(&s[first]) >= STOP_AT);
    uint64_t stop_at = ht_now_ms();
    sink_stop(&s[first]); /* GOING_AWAY under a streaming client */
    pthread_join(t, NULL);
    assert_int_equal(snd.err, SDK_OK);
    assert_int_equal(sdk_flush(snd.c, HT_WAIT_MS), SDK_OK);

    size_t now = current_index(snd.c, where, sizeof(where));
    assert_true(now != first);
    assert_string_equal(where, eps[now]);
    assert_true(ht_events_wait(&ev, SDK_EVENT_SESSION_LOST, 0, HT_WAIT_MS, NULL) >= 0);
    ht_event gone, back;
    int i_gone = ht_events_wait(&ev, SDK_EVENT_DISCONNECTED, 0, 0, &gone);
    assert_true(i_gone >= 0);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)i_gone, 0, &back) > i_gone);
    printf("# stop called to connected elsewhere: %" PRIu64 " ms; disconnected to connected: %" PRIu64 " ms\n",
           back.at_ms - stop_at, back.at_ms - gone.at_ms);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(snd.c, &st), SDK_OK);
    assert_int_equal(st.connects, 2); /* straight to a live one: no attempt at the stopped one */
    assert_int_equal(st.sessions_lost, 1);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTING), 2);
    assert_true(sink_count(&s[first]) < NMSGS);
    assert_true(sink_count(&s[now]) > 0);
    sdk_close(snd.c);
    for (int i = 0; i < NSERVERS; i++) {
        sink_stop(&s[i]);
    }
    printf("# first server took %zu, the next %zu, of %u\n", s[first].n, s[now].n, NMSGS);
    assert_exactly_once(s, NSERVERS, NMSGS);
    sdk_destroy(snd.c);
    ht_events_free(&ev);
    for (int i = 0; i < NSERVERS; i++) {
        sink_free(&s[i]);
    }
}

/* A port that completes TCP but never TLS: listening, never accepting. */
static uint16_t silent_port(int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(*fd, 16), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* RECONNECTING events from index from on with a delay (round ends) and without (next
 * endpoint of the same round). */
static void count_delays(ht_events *ev, size_t from, size_t *waited, size_t *at_once)
{
    *waited = *at_once = 0;
    pthread_mutex_lock(&ev->mu);
    for (size_t i = from; i < ev->n; i++) {
        if (ev->ev[i].type == SDK_EVENT_RECONNECTING) {
            *(ev->ev[i].delay_ms > 0 ? waited : at_once) += 1;
        }
    }
    pthread_mutex_unlock(&ev->mu);
}

/* Events of type from index from on, and those of them whose detail contains text. */
static size_t count_since(ht_events *ev, sdk_event_type type, size_t from, const char *text)
{
    size_t n = 0;
    pthread_mutex_lock(&ev->mu);
    for (size_t i = from; i < ev->n; i++) {
        n += ev->ev[i].type == type && (!text || strstr(ev->ev[i].detail, text));
    }
    pthread_mutex_unlock(&ev->mu);
    return n;
}

/* Wait for three rounds and more after event mark, each over all four entries (the three
 * refused ports in down and a silent one): the failures name them, the silent one by its
 * timeout. */
static void wait_rounds_over(ht_events *ev, size_t mark, const uint16_t down[3])
{
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (count_since(ev, SDK_EVENT_CONNECTING, mark, NULL) < 1 + 3 * 4 && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
    }
    assert_true(count_since(ev, SDK_EVENT_CONNECTING, mark, NULL) >= 1 + 3 * 4);
    char port[16];
    for (int i = 0; i < 3; i++) {
        snprintf(port, sizeof(port), ":%u:", (unsigned)down[i]);
        assert_true(count_since(ev, SDK_EVENT_RECONNECTING, mark, port) >= 3);
    }
    assert_true(count_since(ev, SDK_EVENT_RECONNECTING, mark, "TLS handshake: timed out") >= 3);
}

static void test_unreachable_entries_are_cycled(void **state)
{
    (void)state;
    int refused1_fd, refused2_fd, silent_fd;
    uint16_t refused1 = ht_closed_port(&refused1_fd);
    uint16_t refused2 = ht_closed_port(&refused2_fd);
    uint16_t silent = silent_port(&silent_fd);
    assert_true(refused1 && refused2);
    sink live;
    sink_start(&live, NULL);
    char a[4][32];
    const char *eps[4] = {loopback(a[0], 32, refused1), loopback(a[1], 32, silent), loopback(a[2], 32, refused2),
                          loopback(a[3], 32, live.port)};
    ht_events ev;
    ht_events_init(&ev);
    sdk_config cfg;
    client_config(&cfg, eps, 4);
    cfg.keep_endpoint_order = true;
    cfg.connect_timeout_ms = 300; /* what the silent one costs per round */
    ht_events_attach(&ev, &cfg);
    sdk_client *c = NULL;
    /* Fail-fast sdk_connect still tries the whole first round. */
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(current_index(c, NULL, 0), 3);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTING), 4);
    size_t waited, at_once;
    count_delays(&ev, 0, &waited, &at_once);
    assert_int_equal(waited, 0);
    assert_int_equal(at_once, 3);

    pthread_mutex_lock(&ev.mu);
    size_t mark = ev.n;
    pthread_mutex_unlock(&ev.mu);
    sink_stop(&live); /* now every entry is down */
    const uint16_t down[3] = {refused1, refused2, live.port};
    wait_rounds_over(&ev, mark, down);
    assert_int_equal(sdk_get_state(c), SDK_STATE_RECONNECTING);

    /* The third entry comes up: the cursor reaches it (it is not stuck on the last one). */
    char listen[32];
    close(refused2_fd);
    sink back;
    sink_start(&back, loopback(listen, sizeof(listen), refused2));
    assert_true(wait_endpoint(c, 2, HT_WAIT_MS));
    assert_int_equal(sdk_send(c, "x\0\0\0", 4, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sink_count_reaching(&back, 1), 1);

    sdk_destroy(c);
    ht_events_free(&ev);
    sink_free(&back);
    sink_free(&live);
    close(refused1_fd);
    close(silent_fd);
}

/* Each endpoint's host is checked against its certificate: one the certificate does not
 * name is skipped at once (no 1 s certificate floor inside a round); a name with two
 * addresses counts twice. After GOING_AWAY, the next server cannot use the ticket of the
 * first (its own ticket keys): a full handshake, no error. */
static void test_names_checked_and_ticket_fallback(void **state)
{
    (void)state;
    sink other, a, b;
    sink_start(&other, "127.0.0.2:0"); /* the dev certificate names 127.0.0.1 and ::1 only */
    sink_start(&a, NULL);
    sink_start(&b, NULL);
    char e[3][40];
    snprintf(e[0], sizeof(e[0]), "127.0.0.2:%u", (unsigned)other.port);
    snprintf(e[1], sizeof(e[1]), "localhost:%u", (unsigned)a.port);
    snprintf(e[2], sizeof(e[2]), "127.0.0.1:%u", (unsigned)b.port);
    const char *eps[3] = {e[0], e[1], e[2]};
    ht_events ev;
    ht_events_init(&ev);
    sdk_config cfg;
    client_config(&cfg, eps, 3);
    cfg.keep_endpoint_order = true;
    ht_events_attach(&ev, &cfg);
    sdk_client *c = NULL;
    uint64_t start = ht_now_ms();
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_true(ht_now_ms() - start < 1000);
    char where[64];
    assert_int_equal(current_index(c, where, sizeof(where)), 1);
    char want[40];
    assert_string_equal(where, loopback(want, sizeof(want), a.port));
    ht_event first;
    assert_int_equal(ht_events_wait(&ev, SDK_EVENT_RECONNECTING, 0, 0, &first), 1);
    assert_int_equal(first.error, SDK_EPEERAUTH);
    assert_int_equal(first.delay_ms, 0);

    sink_stop(&a);
    assert_true(wait_endpoint(c, 2, HT_WAIT_MS));
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    assert_int_equal(st.handshakes_full, 2);
    assert_int_equal(st.handshakes_resumed, 0);
    assert_int_equal(st.sessions_lost, 1);
    assert_int_equal(sdk_send(c, "y\0\0\0", 4, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    sdk_destroy(c);
    ht_events_free(&ev);
    sink_free(&other);
    sink_free(&a);
    sink_free(&b);
}

/* Many clients on the same list: shuffled, they spread over the servers; kept, they all
 * take the first. */
static void test_shuffled_by_default_kept_on_request(void **state)
{
    (void)state;
    enum { CLIENTS = 24 };
    sink s[NSERVERS];
    char addr[NSERVERS][32];
    const char *eps[NSERVERS];
    cluster_start(s, addr, eps);
    size_t per[NSERVERS] = {0};
    for (int keep = 0; keep <= 1; keep++) {
        for (int i = 0; i < CLIENTS; i++) {
            sdk_config cfg;
            client_config(&cfg, eps, NSERVERS);
            cfg.keep_endpoint_order = keep;
            sdk_client *c = NULL;
            assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
            size_t idx = current_index(c, NULL, 0);
            if (keep) {
                assert_int_equal(idx, 0);
            } else {
                per[idx]++;
            }
            sdk_destroy(c);
        }
    }
    printf("# %d shuffled clients per server: %zu %zu %zu\n", CLIENTS, per[0], per[1], per[2]);
    int used = 0;
    for (int i = 0; i < NSERVERS; i++) {
        used += per[i] > 0;
    }
    assert_true(used >= 2); /* all on one: probability 3 * 3^-24 */
    for (int i = 0; i < NSERVERS; i++) {
        sink_free(&s[i]);
    }
}

static void test_bad_endpoint_lists(void **state)
{
    (void)state;
    const char *good[2] = {"127.0.0.1:1", "127.0.0.1:2"};
    const char *bad[2] = {"127.0.0.1:1", "::1:7443"};
    const char *null_entry[2] = {"127.0.0.1:1", NULL};
    char detail[256];
    sdk_client *c = NULL;
    sdk_config cfg;
    client_config(&cfg, bad, 2);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    sdk_last_connect_error(detail, sizeof(detail));
    assert_non_null(strstr(detail, "endpoints[1]"));
    client_config(&cfg, null_entry, 2);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    client_config(&cfg, good, 0);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    client_config(&cfg, NULL, 2);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    client_config(&cfg, good, 65);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    client_config(&cfg, good, 2);
    cfg.address = "127.0.0.1:3";
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    sdk_last_connect_error(detail, sizeof(detail));
    assert_non_null(strstr(detail, "one of them"));
    client_config(&cfg, good, 2);
    cfg.host = "127.0.0.1";
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    assert_null(c);
    assert_int_equal(sdk_current_endpoint(NULL, NULL, NULL, 0), SDK_EINVAL);
}

/* Without retry_on_first_connect, sdk_connect gives up after one round, and says so. */
static void test_fail_fast_after_one_round(void **state)
{
    (void)state;
    int h1, h2;
    char a[2][32], detail[256];
    const char *eps[2] = {loopback(a[0], 32, ht_closed_port(&h1)), loopback(a[1], 32, ht_closed_port(&h2))};
    ht_events ev;
    ht_events_init(&ev);
    sdk_config cfg;
    client_config(&cfg, eps, 2);
    ht_events_attach(&ev, &cfg);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_ECONNREFUSED);
    assert_null(c);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_CONNECTING), 2);
    sdk_last_connect_error(detail, sizeof(detail));
    assert_non_null(strstr(detail, "all 2 endpoint addresses failed; the last: connect 127.0.0.1:"));
    ht_events_free(&ev);
    close(h1);
    close(h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_going_away_moves_to_another_endpoint),
        cmocka_unit_test(test_unreachable_entries_are_cycled),
        cmocka_unit_test(test_names_checked_and_ticket_fallback),
        cmocka_unit_test(test_shuffled_by_default_kept_on_request),
        cmocka_unit_test(test_bad_endpoint_lists),
        cmocka_unit_test(test_fail_fast_after_one_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
