/*
 * Unit tests for sdk/src/retry.c: every sdk_err maps to its cause, the default policy is
 * the behaviour before the policy existed (shared backoff, a 1 s floor after a certificate
 * failure, stop on rejection), and a custom rule keeps every delay in [min_ms, max_ms] or
 * stops. No sleeping: the delays are computed, not waited for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"
#include "lifeline/sdk.h"
#include "retry.h"

#include <string.h>

#define BASE_MS 100
#define CAP_MS  30000

static void test_cause_of_each_error(void **state)
{
    static const struct {
        int err;
        const char *detail;
        sdk_retry_cause cause;
    } cases[] = {
        {SDK_ECONNREFUSED, "connect 127.0.0.1:1: Connection refused", SDK_RETRY_REFUSED},
        {SDK_EDISCONNECTED, "connection reset by peer", SDK_RETRY_RESET},
        {SDK_ETIMEDOUT, "no heartbeat from the peer for 1500 ms", SDK_RETRY_HEARTBEAT},
        {SDK_ETIMEDOUT, "TLS handshake: timed out", SDK_RETRY_TIMEOUT},
        {SDK_ETIMEDOUT, "connect 10.0.0.1:7443: Connection timed out", SDK_RETRY_TIMEOUT},
        {SDK_ETIMEDOUT, "", SDK_RETRY_TIMEOUT},
        {SDK_EPEERAUTH, "certificate verify failed", SDK_RETRY_CERTIFICATE},
        {SDK_EREJECTED, "server closed the connection: bye", SDK_RETRY_REJECTED},
        {SDK_EPROTO, "unexpected frame kind 9", SDK_RETRY_PROTOCOL},
        {SDK_ERESOLVE, "resolve x: Domain name not found", SDK_RETRY_OTHER},
        {SDK_ECONNECT, "connect: Network is unreachable", SDK_RETRY_OTHER},
        {SDK_ETLS, "", SDK_RETRY_OTHER},
        {SDK_OK, "", SDK_RETRY_OTHER},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ll_retry_cause(cases[i].err, cases[i].detail) != cases[i].cause) {
            fail_msg("%s \"%s\": want cause %s", sdk_errname(cases[i].err), cases[i].detail,
                     sdk_retry_cause_name(cases[i].cause));
        }
    }
}

static void test_cause_names(void **state)
{
    (void)state;
    assert_string_equal(sdk_retry_cause_name(SDK_RETRY_OTHER), "other");
    assert_string_equal(sdk_retry_cause_name(SDK_RETRY_REFUSED), "refused");
    assert_string_equal(sdk_retry_cause_name(SDK_RETRY_HEARTBEAT), "heartbeat");
    assert_string_equal(sdk_retry_cause_name(SDK_RETRY_PROTOCOL), "protocol");
    assert_string_equal(sdk_retry_cause_name(SDK_RETRY_CAUSES), "unknown");
    assert_string_equal(sdk_retry_cause_name(-1), "unknown");
}

/* The defaults give, cause by cause, exactly what client_io.c computed before the policy. */
static void test_defaults_are_the_old_behaviour(void **state)
{
    sdk_retry_rule p[SDK_RETRY_CAUSES];
    (void)state;
    ll_retry_defaults(p);
    assert_true(ll_retry_valid(p));
    for (int cause = 0; cause < SDK_RETRY_CAUSES; cause++) {
        for (unsigned attempt = 1; attempt < 40; attempt++) {
            uint64_t r = (uint64_t)attempt * 0x9e3779b97f4a7c15ULL + (uint64_t)cause;
            ll_retry_verdict v = ll_retry_decide(p, BASE_MS, CAP_MS, (sdk_retry_cause)cause, attempt, r);
            uint32_t old = ll_backoff_delay(attempt, BASE_MS, CAP_MS, r);
            assert_int_equal(v.cause, cause);
            assert_int_equal(v.stop, cause == SDK_RETRY_REJECTED);
            if (cause == SDK_RETRY_CERTIFICATE) {
                assert_true(v.delay_ms >= 1000 && v.delay_ms <= CAP_MS);
            } else if (cause != SDK_RETRY_REJECTED) {
                assert_int_equal(v.delay_ms, old);
            }
        }
    }
}

/* A rule of its own: every delay in [min_ms, max_ms], whatever the attempt and the dice. */
static void test_custom_rule_bounds(void **state)
{
    sdk_retry_rule p[SDK_RETRY_CAUSES];
    uint32_t lo = UINT32_MAX;
    uint32_t hi = 0;
    (void)state;
    ll_retry_defaults(p);
    p[SDK_RETRY_REFUSED] = (sdk_retry_rule){.stop = false, .min_ms = 50, .max_ms = 80};
    for (unsigned attempt = 1; attempt < 1000; attempt++) {
        uint64_t r = (uint64_t)attempt * 0xbf58476d1ce4e5b9ULL;
        ll_retry_verdict v = ll_retry_decide(p, BASE_MS, CAP_MS, SDK_RETRY_REFUSED, attempt, r);
        assert_false(v.stop);
        lo = v.delay_ms < lo ? v.delay_ms : lo;
        hi = v.delay_ms > hi ? v.delay_ms : hi;
    }
    assert_true(lo >= 50 && hi <= 80);
    assert_true(hi > lo); /* jittered, not a constant */
    /* The ceiling is reachable: the largest random value for a high attempt gives max_ms. */
    assert_int_equal(ll_retry_decide(p, BASE_MS, CAP_MS, SDK_RETRY_REFUSED, 30, 30).delay_ms, 80);
    assert_int_equal(ll_retry_decide(p, BASE_MS, CAP_MS, SDK_RETRY_REFUSED, 30, 0).delay_ms, 50);
    /* min_ms == max_ms: a fixed delay. max_ms < 0 with min_ms above the cap: min_ms. */
    p[SDK_RETRY_RESET] = (sdk_retry_rule){.min_ms = 20, .max_ms = 20};
    assert_int_equal(ll_retry_decide(p, BASE_MS, CAP_MS, SDK_RETRY_RESET, 7, 12345).delay_ms, 20);
    p[SDK_RETRY_RESET] = (sdk_retry_rule){.min_ms = 900, .max_ms = -1};
    assert_int_equal(ll_retry_decide(p, BASE_MS, 500, SDK_RETRY_RESET, 7, 12345).delay_ms, 900);
}

static void test_stop_rule(void **state)
{
    sdk_retry_rule p[SDK_RETRY_CAUSES];
    (void)state;
    ll_retry_defaults(p);
    p[SDK_RETRY_CERTIFICATE].stop = true;
    p[SDK_RETRY_REJECTED].stop = false;
    assert_true(ll_retry_decide(p, BASE_MS, CAP_MS, SDK_RETRY_CERTIFICATE, 1, 0).stop);
    ll_retry_verdict v = ll_retry_decide(p, BASE_MS, CAP_MS, SDK_RETRY_REJECTED, 1, 77);
    assert_false(v.stop);
    assert_int_equal(v.delay_ms, ll_backoff_delay(1, BASE_MS, CAP_MS, 77));
    /* An out-of-range cause is treated as OTHER. */
    p[SDK_RETRY_OTHER].stop = true;
    assert_true(ll_retry_decide(p, BASE_MS, CAP_MS, (sdk_retry_cause)99, 1, 0).stop);
}

static void test_validation(void **state)
{
    sdk_retry_rule p[SDK_RETRY_CAUSES];
    (void)state;
    ll_retry_defaults(p);
    p[SDK_RETRY_TIMEOUT] = (sdk_retry_rule){.min_ms = 10, .max_ms = 10};
    assert_true(ll_retry_valid(p));
    p[SDK_RETRY_TIMEOUT] = (sdk_retry_rule){.min_ms = 10, .max_ms = 9};
    assert_false(ll_retry_valid(p));
    p[SDK_RETRY_TIMEOUT] = (sdk_retry_rule){.min_ms = -1, .max_ms = -1};
    assert_false(ll_retry_valid(p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cause_of_each_error),
        cmocka_unit_test(test_cause_names),
        cmocka_unit_test(test_defaults_are_the_old_behaviour),
        cmocka_unit_test(test_custom_rule_bounds),
        cmocka_unit_test(test_stop_rule),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
