/*
 * Unit tests for sdk/src/heartbeat.c, driven entirely by the clock values passed in: when a
 * ping is due, the one-per-interval limit, death after the timeout, the deadlines handed
 * back for the next poll, round-trip measurement from pongs, and the missed-interval count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "heartbeat.h"

#define T0 UINT64_C(1000000) /* a start time well away from 0 */

static ll_hb_action poll_at(const ll_heartbeat *hb, uint64_t now, uint64_t *next)
{
    *next = 0xdeadbeef;
    return ll_hb_poll(hb, now, next);
}

static void test_start(void **state)
{
    (void)state;
    ll_heartbeat hb;

    ll_hb_start(&hb, 1000, 3000, T0);
    assert_int_equal(hb.interval_ms, 1000);
    assert_int_equal(hb.timeout_ms, 3000);
    assert_int_equal(hb.last_rx_ms, T0);
    assert_int_equal(hb.last_tx_ms, T0);
    assert_int_equal(hb.last_ping_ms, T0);
    assert_int_equal(hb.sent, 0);
    assert_int_equal(hb.answered, 0);
    assert_int_equal(hb.rtt_last_us, 0);
    assert_int_equal(hb.rtt_smoothed_us, 0);

    /* Restarting (a new connection) clears what the previous one measured. */
    (void)ll_hb_ping_sent(&hb, T0 + 1000);
    ll_hb_on_pong(&hb, 1, 5, 105);
    ll_hb_start(&hb, 2000, 6000, T0 + 5000);
    assert_int_equal(hb.sent, 0);
    assert_int_equal(hb.answered, 0);
    assert_int_equal(hb.rtt_smoothed_us, 0);
    assert_int_equal(hb.last_rx_ms, T0 + 5000);
}

static void test_ping_after_quiet_interval(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    ll_hb_start(&hb, 1000, 3000, T0);
    assert_int_equal(poll_at(&hb, T0, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 1000);
    assert_int_equal(poll_at(&hb, T0 + 999, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 1000);
    assert_int_equal(poll_at(&hb, T0 + 1000, &next), LL_HB_PING);
    assert_int_equal(next, T0 + 2000);

    assert_int_equal(ll_hb_ping_sent(&hb, T0 + 1000), 1);
    assert_int_equal(hb.sent, 1);
    assert_int_equal(hb.last_tx_ms, T0 + 1000);
    assert_int_equal(hb.last_ping_ms, T0 + 1000);

    /* Not more than one ping per interval, though rx has been quiet all along. */
    assert_int_equal(poll_at(&hb, T0 + 1000, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 2000);
    assert_int_equal(poll_at(&hb, T0 + 1999, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 2000);
    assert_int_equal(poll_at(&hb, T0 + 2000, &next), LL_HB_PING);
    assert_int_equal(ll_hb_ping_sent(&hb, T0 + 2000), 2);

    /* The next ping would be at T0+3000, which is also when the peer is declared dead. */
    assert_int_equal(poll_at(&hb, T0 + 2500, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 3000);
}

static void test_quiet_in_either_direction(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    /* We keep receiving but send nothing: the peer cannot tell we are alive, so ping. */
    ll_hb_start(&hb, 1000, 3000, T0);
    for (uint64_t t = T0 + 200; t < T0 + 1000; t += 200) {
        ll_hb_on_rx(&hb, t);
        assert_int_equal(poll_at(&hb, t, &next), LL_HB_IDLE);
    }
    ll_hb_on_rx(&hb, T0 + 1000);
    assert_int_equal(poll_at(&hb, T0 + 1000, &next), LL_HB_PING);

    /* We keep sending but hear nothing: ping to make the peer answer. */
    ll_hb_start(&hb, 1000, 3000, T0);
    for (uint64_t t = T0 + 200; t < T0 + 1000; t += 200) {
        ll_hb_on_tx(&hb, t);
        assert_int_equal(poll_at(&hb, t, &next), LL_HB_IDLE);
    }
    ll_hb_on_tx(&hb, T0 + 1000);
    assert_int_equal(poll_at(&hb, T0 + 1000, &next), LL_HB_PING);
}

static void test_busy_link_never_pings(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    ll_hb_start(&hb, 1000, 3000, T0);
    for (uint64_t t = T0 + 300; t < T0 + 60000; t += 300) {
        ll_hb_on_rx(&hb, t);
        ll_hb_on_tx(&hb, t);
        assert_int_equal(poll_at(&hb, t + 299, &next), LL_HB_IDLE);
        assert_int_equal(next, t + 1000);
    }
    assert_int_equal(hb.sent, 0);
}

static void test_dead_after_timeout(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    ll_hb_start(&hb, 1000, 3000, T0);
    /* Our own traffic (pings included) is no proof the peer lives. */
    (void)ll_hb_ping_sent(&hb, T0 + 2000);
    ll_hb_on_tx(&hb, T0 + 2900);
    assert_int_equal(poll_at(&hb, T0 + 2999, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 3000);
    assert_int_equal(poll_at(&hb, T0 + 3000, &next), LL_HB_DEAD);
    assert_int_equal(next, T0 + 3000);
    assert_int_equal(poll_at(&hb, T0 + 100000, &next), LL_HB_DEAD);
    assert_int_equal(next, T0 + 100000);
}

static void test_rx_resets(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    ll_hb_start(&hb, 1000, 3000, T0);
    (void)ll_hb_ping_sent(&hb, T0 + 1000);
    (void)ll_hb_ping_sent(&hb, T0 + 2000);
    ll_hb_on_rx(&hb, T0 + 2999);                                  /* anything at all: data, ack, pong */
    assert_int_equal(poll_at(&hb, T0 + 3000, &next), LL_HB_PING); /* tx quiet since 2000 */
    (void)ll_hb_ping_sent(&hb, T0 + 3000);
    assert_int_equal(poll_at(&hb, T0 + 3001, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 4000); /* next ping before the new death at 5999 */
    assert_int_equal(poll_at(&hb, T0 + 5998, &next), LL_HB_PING);
    assert_int_equal(next, T0 + 5999); /* dead before another interval passes */
    assert_int_equal(poll_at(&hb, T0 + 5999, &next), LL_HB_DEAD);
}

static void test_interval_zero_never_pings(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    ll_hb_start(&hb, 0, 5000, T0);
    for (uint64_t t = T0; t < T0 + 5000; t += 250) {
        assert_int_equal(poll_at(&hb, t, &next), LL_HB_IDLE);
        assert_int_equal(next, T0 + 5000); /* only the death deadline matters */
    }
    assert_int_equal(poll_at(&hb, T0 + 5000, &next), LL_HB_DEAD);
    ll_hb_on_rx(&hb, T0 + 4000);
    assert_int_equal(poll_at(&hb, T0 + 5000, &next), LL_HB_IDLE);
    assert_int_equal(next, T0 + 9000);
}

static void test_next_deadline_is_exact(void **state)
{
    (void)state;
    ll_heartbeat hb;
    uint64_t next;

    /* Polling at the deadline handed back always finds the action that was due, and
     * polling one millisecond before it never does. */
    ll_hb_start(&hb, 700, 2500, T0);
    uint64_t now = T0;
    int pings = 0;
    for (int step = 0; step < 50; step++) {
        ll_hb_action a = poll_at(&hb, now, &next);
        if (a == LL_HB_DEAD) {
            break;
        }
        if (a == LL_HB_PING) {
            (void)ll_hb_ping_sent(&hb, now);
            pings++;
            assert_int_equal(poll_at(&hb, now, &next), LL_HB_IDLE);
        }
        assert_true(next > now);
        assert_int_equal(poll_at(&hb, next - 1, &(uint64_t){0}), LL_HB_IDLE);
        now = next;
    }
    /* Pings at 700, 1400, 2100; dead at 2500. */
    assert_int_equal(pings, 3);
    assert_int_equal(now, T0 + 2500);
    assert_int_equal(hb.sent, 3);
}

static void test_pong_updates_rtt(void **state)
{
    (void)state;
    ll_heartbeat hb;

    ll_hb_start(&hb, 1000, 3000, T0);
    uint64_t n1 = ll_hb_ping_sent(&hb, T0 + 1000);
    ll_hb_on_pong(&hb, n1, 10000, 10800);
    assert_int_equal(hb.answered, 1);
    assert_int_equal(hb.rtt_last_us, 800);
    assert_int_equal(hb.rtt_smoothed_us, 800); /* the first sample is taken as is */

    uint64_t n2 = ll_hb_ping_sent(&hb, T0 + 2000);
    assert_int_not_equal(n1, n2);
    ll_hb_on_pong(&hb, n2, 20000, 21600);
    assert_int_equal(hb.rtt_last_us, 1600);
    assert_int_equal(hb.rtt_smoothed_us, 900); /* (7 * 800 + 1600) / 8 */

    uint64_t n3 = ll_hb_ping_sent(&hb, T0 + 3000);
    ll_hb_on_pong(&hb, n3, 30000, 30100);
    assert_int_equal(hb.rtt_last_us, 100);
    assert_int_equal(hb.rtt_smoothed_us, 800); /* (7 * 900 + 100) / 8 */
    assert_int_equal(hb.answered, 3);
    assert_int_equal(hb.sent, 3);

    /* A pong for the same microsecond: rtt 0 is a valid measurement. */
    uint64_t n4 = ll_hb_ping_sent(&hb, T0 + 4000);
    ll_hb_on_pong(&hb, n4, 40000, 40000);
    assert_int_equal(hb.rtt_last_us, 0);
    assert_int_equal(hb.rtt_smoothed_us, 700); /* 7 * 800 / 8 */
}

static void test_stale_and_future_pongs_ignored(void **state)
{
    (void)state;
    ll_heartbeat hb;

    ll_hb_start(&hb, 1000, 3000, T0);
    uint64_t n1 = ll_hb_ping_sent(&hb, T0 + 1000);
    uint64_t n2 = ll_hb_ping_sent(&hb, T0 + 2000);

    /* The answer to the previous ping arrives late: it says nothing about now. */
    ll_hb_on_pong(&hb, n1, 10000, 90000);
    assert_int_equal(hb.answered, 0);
    assert_int_equal(hb.rtt_last_us, 0);
    assert_int_equal(hb.rtt_smoothed_us, 0);

    /* A nonce we never sent. */
    ll_hb_on_pong(&hb, n2 + 1, 10000, 10500);
    assert_int_equal(hb.answered, 0);

    /* A timestamp after now (forged or from another clock) would underflow: ignored. */
    ll_hb_on_pong(&hb, n2, 50001, 50000);
    assert_int_equal(hb.answered, 0);
    assert_int_equal(hb.rtt_last_us, 0);
    ll_hb_on_pong(&hb, n2, UINT64_MAX, 50000);
    assert_int_equal(hb.answered, 0);

    /* The real answer still counts afterwards. */
    ll_hb_on_pong(&hb, n2, 50000, 50250);
    assert_int_equal(hb.answered, 1);
    assert_int_equal(hb.rtt_last_us, 250);
    assert_int_equal(hb.rtt_smoothed_us, 250);
}

/* "update round-trip times if it answers our last ping": before any ping there is nothing
 * to answer, so a pong carrying the default nonce 0 must be ignored. */
static void test_pong_before_any_ping_ignored(void **state)
{
    (void)state;
    ll_heartbeat hb;

    ll_hb_start(&hb, 1000, 3000, T0);
    ll_hb_on_pong(&hb, 0, 1000, 1500);
    assert_int_equal(hb.answered, 0);
    assert_int_equal(hb.rtt_last_us, 0);
    assert_int_equal(hb.rtt_smoothed_us, 0);
}

static void test_missed(void **state)
{
    (void)state;
    ll_heartbeat hb;

    ll_hb_start(&hb, 1000, 3000, T0);
    assert_int_equal(ll_hb_missed(&hb, T0, 1000), 0);
    assert_int_equal(ll_hb_missed(&hb, T0 + 999, 1000), 0);
    assert_int_equal(ll_hb_missed(&hb, T0 + 1000, 1000), 1);
    assert_int_equal(ll_hb_missed(&hb, T0 + 3500, 1000), 3);
    assert_int_equal(ll_hb_missed(&hb, T0 + 3500, 500), 7);
    /* Our pings are not the peer's heartbeats. */
    (void)ll_hb_ping_sent(&hb, T0 + 3000);
    assert_int_equal(ll_hb_missed(&hb, T0 + 3500, 1000), 3);
    /* Anything received resets the count. */
    ll_hb_on_rx(&hb, T0 + 3400);
    assert_int_equal(ll_hb_missed(&hb, T0 + 3500, 1000), 0);
    assert_int_equal(ll_hb_missed(&hb, T0 + 4400, 1000), 1);
    /* No interval: nothing can be missed. A clock before last rx: nothing missed. */
    assert_int_equal(ll_hb_missed(&hb, T0 + 100000, 0), 0);
    assert_int_equal(ll_hb_missed(&hb, T0, 1000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_ping_after_quiet_interval),
        cmocka_unit_test(test_quiet_in_either_direction),
        cmocka_unit_test(test_busy_link_never_pings),
        cmocka_unit_test(test_dead_after_timeout),
        cmocka_unit_test(test_rx_resets),
        cmocka_unit_test(test_interval_zero_never_pings),
        cmocka_unit_test(test_next_deadline_is_exact),
        cmocka_unit_test(test_pong_updates_rtt),
        cmocka_unit_test(test_stale_and_future_pongs_ignored),
        cmocka_unit_test(test_pong_before_any_ping_ignored),
        cmocka_unit_test(test_missed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
