/* ratelimit.c: per-address token buckets, driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_address_without_port(void **state)
{
    (void)state;
    char addr[LL_RATE_ADDR_LEN];
    ll_rate_address("127.0.0.1:5555", addr);
    assert_string_equal(addr, "127.0.0.1");
    ll_rate_address("[::1]:443", addr);
    assert_string_equal(addr, "[::1]");
    ll_rate_address("nocolon", addr);
    assert_string_equal(addr, "nocolon");
}

static void test_burst_then_rate(void **state)
{
    (void)state;
    ll_rate_table *t = calloc(1, sizeof(*t));
    uint64_t now = 1000000;
    for (int i = 0; i < 5; i++) {
        assert_true(ll_rate_take(t, "10.0.0.1", 10, 5, now)); /* the burst */
    }
    assert_false(ll_rate_take(t, "10.0.0.1", 10, 5, now));
    assert_false(ll_rate_take(t, "10.0.0.1", 10, 5, now + 99)); /* 10/s: one per 100 ms */
    assert_true(ll_rate_take(t, "10.0.0.1", 10, 5, now + 100));
    assert_false(ll_rate_take(t, "10.0.0.1", 10, 5, now + 150));
    assert_true(ll_rate_take(t, "10.0.0.2", 10, 5, now + 150)); /* another address: its own bucket */
    /* Quiet for long: the burst is back, and no more than the burst. */
    for (int i = 0; i < 5; i++) {
        assert_true(ll_rate_take(t, "10.0.0.1", 10, 5, now + 60000));
    }
    assert_false(ll_rate_take(t, "10.0.0.1", 10, 5, now + 60000));
    free(t);
}

static void test_many_addresses_bounded(void **state)
{
    (void)state;
    ll_rate_table *t = calloc(1, sizeof(*t));
    char addr[32];
    /* Far more addresses than slots, each once: each gets its first connection (a slot is
     * taken over once its address has refilled, or shared and still holding tokens). */
    unsigned refused = 0;
    for (int i = 0; i < 4 * LL_RATE_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        refused += !ll_rate_take(t, addr, 100, 10, 5000 + (uint64_t)i);
    }
    assert_int_equal(refused, 0);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_without_port),
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_many_addresses_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
