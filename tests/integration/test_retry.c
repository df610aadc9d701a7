/*
 * The per-cause reconnect policy (sdk_config.reconnect_policy) against real sockets on
 * loopback: a server whose certificate comes from another CA, with "stop on certificate
 * failure", closes the client at the first failure; a closed port, with "retry on refused"
 * and delays of its own, keeps retrying with exactly those delays; and "stop on refused"
 * stops there too. The client retries its first connection in the background
 * (retry_on_first_connect), so what follows the failure is the policy's doing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <string.h>
#include <unistd.h>

#define RETRIES 5

static void expect_closed_at_first_failure(ht_events *ev, sdk_client *c, sdk_err want, const char *needle)
{
    ht_event closed;
    char detail[256] = "";
    assert_true(ht_events_wait(ev, SDK_EVENT_CLOSED, 0, HT_WAIT_MS, &closed) >= 0);
    assert_int_equal(closed.error, want);
    assert_int_equal(ht_events_count(ev, SDK_EVENT_CONNECTING), 1);
    assert_int_equal(ht_events_count(ev, SDK_EVENT_RECONNECTING), 0);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CLOSED);
    assert_int_equal(sdk_last_error(c, detail, sizeof detail), want);
    if (!strstr(detail, needle)) {
        fail_msg("expected \"%s\" in \"%s\"", needle, detail);
    }
    /* A closed client refuses sends and flushes. */
    assert_int_equal(sdk_send(c, "x", 1, 0), SDK_ECLOSED);
    assert_int_equal(sdk_flush(c, 0), SDK_ECLOSED);
}

/* A client of a closed port (kept closed by holder) that retries its first connection. */
typedef struct closed_client {
    int holder;
    ht_events ev;
    sdk_config cfg;
    sdk_client *c;
} closed_client;

static void closed_begin(closed_client *k)
{
    uint16_t port = ht_closed_port(&k->holder);
    assert_int_not_equal(port, 0);
    ht_events_init(&k->ev);
    ht_client_config(&k->cfg, port);
    k->cfg.retry_on_first_connect = true;
    k->c = NULL;
}

/* Connect with k->cfg as the test left it. */
static void closed_connect(closed_client *k)
{
    ht_events_attach(&k->ev, &k->cfg);
    assert_int_equal(sdk_connect(&k->cfg, &k->c), SDK_OK);
}

static void closed_end(closed_client *k)
{
    sdk_destroy(k->c);
    ht_events_free(&k->ev);
    close(k->holder);
}

static void test_stop_on_certificate_failure(void **state)
{
    ht_server *hs = *state;
    ht_certs other;
    ht_events ev;
    sdk_config cfg;
    sdk_client *c = NULL;
    assert_int_equal(ht_certs_make(&other), 0);
    ht_events_init(&ev);
    ht_client_config(&cfg, hs->port);
    cfg.ca_file = other.ca; /* a CA that did not sign the server's certificate */
    cfg.retry_on_first_connect = true;
    cfg.reconnect_policy[SDK_RETRY_CERTIFICATE].stop = true;
    ht_events_attach(&ev, &cfg);
    uint64_t t0 = ht_now_ms();
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    expect_closed_at_first_failure(&ev, c, SDK_EPEERAUTH, "certificate verify failed");
    /* No 1 s certificate floor was waited out: the client stopped instead. */
    assert_true(ht_now_ms() - t0 < 1000);
    sdk_destroy(c);
    ht_events_free(&ev);
    ht_certs_remove(&other);
}

static void test_retry_on_refused_with_own_delays(void **state)
{
    closed_client k;
    (void)state;
    closed_begin(&k);
    k.cfg.reconnect_min_ms = 1; /* the shared backoff alone would give delays near 0 */
    k.cfg.reconnect_max_ms = 5;
    k.cfg.reconnect_policy[SDK_RETRY_REFUSED] = (sdk_retry_rule){.stop = false, .min_ms = 40, .max_ms = 70};
    closed_connect(&k);
    int at = -1;
    ht_event prev = {0};
    for (int i = 0; i < RETRIES; i++) {
        ht_event r;
        at = ht_events_wait(&k.ev, SDK_EVENT_RECONNECTING, (size_t)(at + 1), HT_WAIT_MS, &r);
        assert_true(at >= 0);
        assert_int_equal(r.error, SDK_ECONNREFUSED);
        assert_int_equal(r.attempt, (unsigned)i + 2);
        if (r.delay_ms < 40 || r.delay_ms > 70) {
            fail_msg("retry %d: delay %u ms outside the rule's [40, 70]", i + 1, r.delay_ms);
        }
        /* The delay is really waited: the next failure comes no sooner. */
        if (i > 0) {
            assert_true(r.at_ms - prev.at_ms >= prev.delay_ms);
        }
        prev = r;
    }
    assert_int_not_equal(sdk_get_state(k.c), SDK_STATE_CLOSED);
    assert_int_equal(ht_events_count(&k.ev, SDK_EVENT_CLOSED), 0);
    assert_int_equal(sdk_close(k.c), SDK_OK);
    closed_end(&k);
}

static void test_stop_on_refused(void **state)
{
    closed_client k;
    (void)state;
    closed_begin(&k);
    k.cfg.reconnect_policy[SDK_RETRY_REFUSED].stop = true;
    closed_connect(&k);
    expect_closed_at_first_failure(&k.ev, k.c, SDK_ECONNREFUSED, "Connection refused");
    closed_end(&k);
}

static void test_bad_policy_refused(void **state)
{
    sdk_config cfg;
    sdk_client *c = NULL;
    (void)state;
    ht_client_config(&cfg, 7443);
    cfg.reconnect_policy[SDK_RETRY_RESET] = (sdk_retry_rule){.min_ms = 100, .max_ms = 50};
    assert_int_equal(sdk_connect(&cfg, &c), SDK_EINVAL);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stop_on_certificate_failure, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test(test_retry_on_refused_with_own_delays),
        cmocka_unit_test(test_stop_on_refused),
        cmocka_unit_test(test_bad_policy_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
