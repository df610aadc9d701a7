/*
 * Metrics from the library, against real clients over TLS: sdk_server_metrics and
 * sdk_get_metrics count a concurrent workload exactly while other threads scrape them
 * (under TSan: no data race between the I/O threads' counting and the scrapers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENTS    4
#define PER_CLIENT 500

typedef struct scraper {
    sdk_server *srv;
    sdk_client **clients;
    atomic_bool stop;
    unsigned long scrapes;
    double last_received; /* never goes back */
    bool went_back;
} scraper;

static void *scrape_loop(void *arg)
{
    scraper *s = arg;
    while (!atomic_load(&s->stop)) {
        char *text = NULL;
        size_t len = 0;
        if (sdk_server_metrics(s->srv, &text, &len) == SDK_OK) {
            double v = ht_metric(text, "lifeline_messages_received_total");
            s->went_back |= v < s->last_received;
            s->last_received = v;
            sdk_metrics_free(text);
        }
        for (int i = 0; i < CLIENTS; i++) {
            if (sdk_get_metrics(s->clients[i], &text, &len) == SDK_OK) {
                sdk_metrics_free(text);
            }
        }
        s->scrapes++;
    }
    return NULL;
}

static void *client_loop(void *arg)
{
    sdk_client *c = arg;
    char msg[32];
    for (int i = 0; i < PER_CLIENT; i++) {
        int n = snprintf(msg, sizeof(msg), "m%05d", i); /* 6 bytes each */
        if (sdk_send(c, msg, (size_t)n, HT_WAIT_MS) != SDK_OK) {
            return (void *)1;
        }
    }
    for (int i = 0; i < PER_CLIENT; i++) {
        sdk_message *m = NULL;
        if (sdk_recv(c, &m, HT_WAIT_MS) != SDK_OK) {
            return (void *)1;
        }
        sdk_message_free(m);
    }
    return sdk_flush(c, HT_WAIT_MS) == SDK_OK ? NULL : (void *)1;
}

/* The closed events have been counted once every client's close frame was handled. */
static void wait_closed(sdk_server *srv, double want)
{
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (ht_server_metric(srv, "lifeline_session_events_total{event=\"closed\"}") < want && ht_now_ms() < deadline) {
        ht_sleep_ms(10);
    }
}

static void test_counts_are_exact_while_scraped(void **state)
{
    (void)state;
    ht_server hs;
    assert_int_equal(ht_server_start(&hs, NULL, true), SDK_OK);
    sdk_client *clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        sdk_config cfg;
        ht_client_config(&cfg, hs.port);
        assert_int_equal(sdk_connect(&cfg, &clients[i]), SDK_OK);
    }
    scraper sc = {.srv = hs.srv, .clients = clients};
    pthread_t scrape_thread, threads[CLIENTS];
    assert_int_equal(pthread_create(&scrape_thread, NULL, scrape_loop, &sc), 0);
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, client_loop, clients[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        void *failed = NULL;
        pthread_join(threads[i], &failed);
        assert_null(failed);
    }
    atomic_store(&sc.stop, true);
    pthread_join(scrape_thread, NULL);
    assert_true(sc.scrapes > 0);
    assert_false(sc.went_back);

    char *text = NULL;
    size_t len = 0;
    assert_int_equal(sdk_get_metrics(clients[0], &text, &len), SDK_OK);
    assert_true(ht_metric(text, "lifeline_client_messages_sent_total") == PER_CLIENT);
    assert_true(ht_metric(text, "lifeline_client_messages_received_total") == PER_CLIENT);
    assert_true(ht_metric(text, "lifeline_client_sent_bytes_total") == PER_CLIENT * 6);
    assert_true(ht_metric(text, "lifeline_client_state{state=\"connected\"}") == 1);
    assert_true(ht_metric(text, "lifeline_client_connects_total") == 1);
    sdk_metrics_free(text);
    for (int i = 0; i < CLIENTS; i++) {
        sdk_close(clients[i]);
    }
    wait_closed(hs.srv, CLIENTS);
    sdk_server *srv = hs.srv;
    const double total = CLIENTS * PER_CLIENT;
    assert_true(ht_server_metric(srv, "lifeline_messages_received_total") == total);
    assert_true(ht_server_metric(srv, "lifeline_messages_sent_total") == total);
    assert_true(ht_server_metric(srv, "lifeline_received_bytes_total") == total * 6);
    assert_true(ht_server_metric(srv, "lifeline_sent_bytes_total") == total * 6);
    assert_true(ht_server_metric(srv, "lifeline_handshakes_total{kind=\"full\"}") == CLIENTS);
    assert_true(ht_server_metric(srv, "lifeline_session_events_total{event=\"opened\"}") == CLIENTS);
    assert_true(ht_server_metric(srv, "lifeline_session_events_total{event=\"closed\"}") == CLIENTS);
    assert_true(ht_server_metric(srv, "lifeline_connections") == 0);
    assert_true(ht_server_metric(srv, "lifeline_sessions{state=\"connected\"}") == 0);
    assert_true(ht_server_metric(srv, "lifeline_handshakes_in_progress") == 0);
    /* After the stop too (until destroy), with what the stopped sessions counted. */
    ht_server_stop(&hs);
    assert_true(ht_server_metric(srv, "lifeline_messages_received_total") == total);
    for (int i = 0; i < CLIENTS; i++) {
        sdk_destroy(clients[i]);
    }
    ht_server_destroy(&hs);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char *text = (char *)"x";
    size_t len = 1;
    assert_int_equal(sdk_server_metrics(NULL, &text, &len), SDK_EINVAL);
    assert_int_equal(sdk_get_metrics(NULL, &text, &len), SDK_EINVAL);
    assert_int_equal(sdk_server_reload_tls(NULL, NULL, 0), SDK_EINVAL);
    sdk_metrics_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_are_exact_while_scraped),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
