/*
 * Unit tests for sdk/src/endpoints.c: the order endpoints are tried in and the cursor
 * through them, without sockets or DNS (resolutions are handed in). What the peers got
 * wrong is asserted directly: the list is cycled round after round for as long as the
 * caller goes on (Paho #989: tried once), and no entry keeps the cursor (Paho #1661: stuck
 * on the last one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "endpoints.h"
#include "lifeline/sdk.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* n IPv4 addresses 10.0.<net>.1 .. 10.0.<net>.n, port 7443. */
static ll_addrs addrs_of(unsigned net, size_t n)
{
    ll_addrs a;
    memset(&a, 0, sizeof(a));
    a.count = n;
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.addr[i].sa;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(7443);
        sin->sin_addr.s_addr = htonl((10u << 24) | (net << 8) | (unsigned)(i + 1));
        a.addr[i].len = sizeof(*sin);
    }
    return a;
}

/* The last byte of the current address (1..n), after resolving the entry as one address
 * in net <entry's index> when it needs it. */
static unsigned visit(ll_endpoints *e, size_t per_entry)
{
    if (ll_endpoints_need_addrs(e)) {
        ll_addrs a = addrs_of((unsigned)ll_endpoints_current(e)->index, per_entry);
        assert_int_equal(ll_endpoints_set_addrs(e, &a), 0);
    }
    const ll_addr *a = ll_endpoints_addr(e);
    assert_non_null(a);
    return ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) & 0xffu;
}

static void three(ll_endpoints *e, bool keep_order, uint64_t seed)
{
    ll_endpoints_init(e);
    assert_int_equal(ll_endpoints_add_address(e, "a.example:7001"), 0);
    assert_int_equal(ll_endpoints_add_address(e, "127.0.0.1:7002"), 0);
    assert_int_equal(ll_endpoints_add_address(e, "[::1]:7003"), 0);
    ll_endpoints_order(e, keep_order, seed);
}

static void test_parse_and_limits(void **state)
{
    (void)state;
    ll_endpoints e;
    three(&e, true, 1);
    assert_int_equal(e.count, 3);
    assert_string_equal(e.list[0].host, "a.example");
    assert_int_equal(e.list[0].port, 7001);
    assert_string_equal(e.list[2].host, "::1");
    assert_int_equal(e.list[2].index, 2);
    assert_int_equal(ll_endpoints_add_address(&e, "no-port"), SDK_EINVAL);
    assert_int_equal(ll_endpoints_add_address(&e, "::1:7443"), SDK_EINVAL);
    assert_int_equal(ll_endpoints_add_address(&e, "h:0"), SDK_EINVAL);
    assert_int_equal(ll_endpoints_add_address(&e, "h:70000"), SDK_EINVAL);
    assert_int_equal(ll_endpoints_add_address(&e, NULL), SDK_EINVAL);
    assert_int_equal(ll_endpoints_add(&e, "", 1), SDK_EINVAL);
    assert_int_equal(e.count, 3);
    while (e.count < LL_ENDPOINTS_MAX) {
        assert_int_equal(ll_endpoints_add(&e, "h", 1), 0);
    }
    assert_int_equal(ll_endpoints_add(&e, "h", 1), SDK_EINVAL);
    ll_endpoints_free(&e);
    assert_int_equal(e.count, 0);
}

/* Kept order: 0, 1, 2, 0, 1, 2, ... and a round ends exactly at every third failure. */
static void test_kept_order_cycles_for_ever(void **state)
{
    (void)state;
    ll_endpoints e;
    three(&e, true, 42);
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(ll_endpoints_current(&e)->index, i);
            (void)visit(&e, 1);
            assert_int_equal(ll_endpoints_failed(&e), i == 2);
        }
    }
    ll_endpoints_free(&e);
}

/* Shuffled: the same seed gives the same order, every round visits every entry once, and
 * over many clients (seeds) each entry comes first about equally often. */
static void test_shuffled_order_spreads_and_cycles(void **state)
{
    (void)state;
    size_t first[3] = {0, 0, 0};
    for (uint64_t seed = 1; seed <= 3000; seed++) {
        ll_endpoints e, again;
        three(&e, false, seed * 0x9e3779b97f4a7c15ULL);
        three(&again, false, seed * 0x9e3779b97f4a7c15ULL);
        first[ll_endpoints_current(&e)->index]++;
        size_t order[3];
        for (int round = 0; round < 4; round++) {
            bool seen[3] = {false, false, false};
            for (size_t i = 0; i < 3; i++) {
                size_t idx = ll_endpoints_current(&e)->index;
                assert_false(seen[idx]);
                seen[idx] = true;
                if (round == 0) {
                    order[i] = idx;
                    assert_int_equal(ll_endpoints_current(&again)->index, idx);
                    (void)ll_endpoints_failed(&again);
                } else {
                    assert_int_equal(order[i], idx); /* one order per client, round after round */
                }
                (void)visit(&e, 1);
                assert_int_equal(ll_endpoints_failed(&e), i == 2);
            }
        }
        ll_endpoints_free(&e);
        ll_endpoints_free(&again);
    }
    for (int i = 0; i < 3; i++) {
        assert_in_range(first[i], 850, 1150); /* 1000 expected; 1/3000 each is ~26 sd */
    }
}

/* A name with three addresses is three endpoints: a round is 3 + 1 attempts, all three of
 * its addresses come before the next entry, and it is resolved again the next round. */
static void test_name_with_several_addresses(void **state)
{
    (void)state;
    ll_endpoints e;
    ll_endpoints_init(&e);
    assert_int_equal(ll_endpoints_add(&e, "cluster.example", 7443), 0);
    assert_int_equal(ll_endpoints_add(&e, "solo.example", 7443), 0);
    ll_endpoints_order(&e, true, 7);
    for (int round = 0; round < 3; round++) {
        assert_true(ll_endpoints_need_addrs(&e));
        assert_null(ll_endpoints_addr(&e));
        ll_addrs a = addrs_of(0, 3);
        assert_int_equal(ll_endpoints_set_addrs(&e, &a), 0);
        for (unsigned i = 1; i <= 3; i++) {
            assert_int_equal(ll_endpoints_current(&e)->index, 0);
            assert_int_equal(visit(&e, 3), i); /* kept order: the resolver's */
            assert_false(ll_endpoints_failed(&e));
        }
        assert_int_equal(ll_endpoints_current(&e)->index, 1);
        (void)visit(&e, 1);
        assert_true(ll_endpoints_failed(&e));
    }
    /* Shuffled, a name's addresses are a permutation of the answer. */
    ll_endpoints_order(&e, false, 99);
    while (ll_endpoints_current(&e)->index != 0) {
        (void)ll_endpoints_failed(&e);
    }
    bool seen[5] = {false};
    for (int i = 0; i < 4; i++) {
        unsigned last = visit(&e, 4);
        assert_in_range(last, 1, 4);
        assert_false(seen[last]);
        seen[last] = true;
        (void)ll_endpoints_failed(&e);
    }
    assert_int_equal(ll_endpoints_current(&e)->index, 1);
    ll_endpoints_free(&e);
}

/* A name that does not resolve is one failed attempt, and the cursor moves on. */
static void test_resolution_failure_moves_on(void **state)
{
    (void)state;
    ll_endpoints e;
    three(&e, true, 3);
    assert_true(ll_endpoints_need_addrs(&e));
    assert_false(ll_endpoints_failed(&e)); /* entry 0 never resolved */
    assert_int_equal(ll_endpoints_current(&e)->index, 1);
    (void)visit(&e, 1);
    assert_false(ll_endpoints_failed(&e));
    (void)visit(&e, 1);
    assert_true(ll_endpoints_failed(&e));
    assert_int_equal(ll_endpoints_current(&e)->index, 0);
    ll_endpoints_free(&e);
}

/* A lost connection retries the same address; GOING_AWAY moves to the next. */
static void test_session_end_same_or_next(void **state)
{
    (void)state;
    ll_endpoints e;
    three(&e, true, 5);
    (void)visit(&e, 2);
    assert_false(ll_endpoints_failed(&e)); /* 0.1 failed: 0.2 next */
    assert_int_equal(visit(&e, 2), 2);
    ll_endpoints_connected(&e);
    ll_endpoints_ended(&e, false);
    assert_int_equal(ll_endpoints_current(&e)->index, 0);
    assert_false(ll_endpoints_need_addrs(&e)); /* the address that holds the session */
    assert_int_equal(visit(&e, 2), 2);
    ll_endpoints_connected(&e);
    ll_endpoints_ended(&e, true);
    assert_int_equal(ll_endpoints_current(&e)->index, 1);
    /* A new round starts after a session: it takes every address again (2 + 1 + 1). */
    for (int i = 0; i < 3; i++) {
        (void)visit(&e, i == 2 ? 2 : 1);
        assert_false(ll_endpoints_failed(&e));
    }
    (void)visit(&e, 2);
    assert_true(ll_endpoints_failed(&e));
    ll_endpoints_free(&e);
}

/* One endpoint with one address: every failure is a round (the behaviour before lists),
 * GOING_AWAY has nowhere else to go, and the name is resolved again each time. */
static void test_single_endpoint(void **state)
{
    (void)state;
    ll_endpoints e;
    ll_endpoints_init(&e);
    assert_int_equal(ll_endpoints_add(&e, "127.0.0.1", 7443), 0);
    ll_endpoints_order(&e, false, 11);
    for (int i = 0; i < 5; i++) {
        assert_true(ll_endpoints_need_addrs(&e));
        (void)visit(&e, 1);
        assert_true(ll_endpoints_failed(&e));
    }
    (void)visit(&e, 1);
    ll_endpoints_connected(&e);
    ll_endpoints_ended(&e, true);
    assert_int_equal(ll_endpoints_current(&e)->index, 0);
    ll_endpoints_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_limits),
        cmocka_unit_test(test_kept_order_cycles_for_ever),
        cmocka_unit_test(test_shuffled_order_spreads_and_cycles),
        cmocka_unit_test(test_name_with_several_addresses),
        cmocka_unit_test(test_resolution_failure_moves_on),
        cmocka_unit_test(test_session_end_same_or_next),
        cmocka_unit_test(test_single_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
