/*
 * Unit tests for sdk/src/backoff.c: the delay is uniform in
 * [0, min(max_ms, min_ms * 2^(attempt-1))]. Checked against an independent computation of
 * the ceiling for many random values, at the edges of the range (the ceiling itself is
 * reachable), at saturation, for odd inputs and for attempt counts that would overflow a
 * naive shift.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

#include <limits.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* min(max_ms, min_ms * 2^(attempt-1)) without overflow; attempt 0 counts as the first. */
static uint64_t expected_ceiling(unsigned attempt, uint32_t min_ms, uint32_t max_ms)
{
    unsigned shift = attempt > 1 ? attempt - 1 : 0;
    if (min_ms == 0) {
        return 0;
    }
    if (shift >= 32) { /* min_ms * 2^32 > UINT32_MAX >= max_ms */
        return max_ms;
    }
    uint64_t c = (uint64_t)min_ms << shift;
    return c < max_ms ? c : max_ms;
}

static void test_first_attempts(void **state)
{
    (void)state;

    /* Attempt 1 (and 0, before any failure) has the floor itself as ceiling. */
    for (unsigned attempt = 0; attempt <= 1; attempt++) {
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, 0), 0);
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, 100), 100);
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, 101), 0);
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, 250), 250 % 101);
    }
    /* Then it doubles: 200, 400, 800. */
    assert_int_equal(ll_backoff_delay(2, 100, 30000, 200), 200);
    assert_int_equal(ll_backoff_delay(2, 100, 30000, 201), 0);
    assert_int_equal(ll_backoff_delay(3, 100, 30000, 400), 400);
    assert_int_equal(ll_backoff_delay(3, 100, 30000, 401), 0);
    assert_int_equal(ll_backoff_delay(4, 100, 30000, 800), 800);
    assert_int_equal(ll_backoff_delay(4, 100, 30000, 801), 0);
}

static void test_within_bounds_random(void **state)
{
    (void)state;
    const uint32_t mins[] = {1, 3, 50, 100, 1000, 65535, UINT32_MAX / 3, UINT32_MAX};
    const uint32_t maxs[] = {1, 100, 30000, 1u << 20, UINT32_MAX - 1, UINT32_MAX};
    uint64_t rng = 42;

    for (size_t i = 0; i < sizeof mins / sizeof mins[0]; i++) {
        for (size_t j = 0; j < sizeof maxs / sizeof maxs[0]; j++) {
            if (maxs[j] < mins[i]) {
                continue; /* covered by test_max_below_min */
            }
            for (unsigned attempt = 0; attempt <= 70; attempt++) {
                uint64_t ceiling = expected_ceiling(attempt, mins[i], maxs[j]);
                uint64_t top = 0;
                for (int k = 0; k < 200; k++) {
                    uint64_t r = splitmix64(&rng);
                    uint32_t d = ll_backoff_delay(attempt, mins[i], maxs[j], r);
                    assert_true(d <= ceiling);
                    assert_int_equal(d, r % (ceiling + 1)); /* uniform: the draw decides */
                    top = d > top ? d : top;
                }
                /* The ceiling itself is reachable, and so is 0. */
                assert_int_equal(ll_backoff_delay(attempt, mins[i], maxs[j], ceiling), ceiling);
                assert_int_equal(ll_backoff_delay(attempt, mins[i], maxs[j], 0), 0);
                assert_int_equal(ll_backoff_delay(attempt, mins[i], maxs[j], ceiling + 1), 0);
            }
        }
    }
}

static void test_spread(void **state)
{
    (void)state;
    uint64_t rng = 7;
    unsigned low = 0, high = 0;

    /* Full jitter: draws land all over [0, ceiling], not bunched at one end. */
    for (int k = 0; k < 10000; k++) {
        uint32_t d = ll_backoff_delay(5, 100, 30000, splitmix64(&rng)); /* ceiling 1600 */
        assert_true(d <= 1600);
        low += d < 400;
        high += d > 1200;
    }
    assert_true(low > 2000 && low < 3000);
    assert_true(high > 2000 && high < 3000);
}

static void test_ceiling_saturates(void **state)
{
    (void)state;

    /* 100 * 2^8 = 25600, 2^9 would be 51200 > 30000. */
    assert_int_equal(ll_backoff_delay(9, 100, 30000, 25600), 25600);
    assert_int_equal(ll_backoff_delay(9, 100, 30000, 25601), 0);
    for (unsigned attempt = 10; attempt < 1000; attempt++) {
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, 30000), 30000);
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, 30001), 0);
        assert_int_equal(ll_backoff_delay(attempt, 100, 30000, UINT64_MAX), UINT64_MAX % 30001);
    }
    /* min == max: a constant ceiling. */
    for (unsigned attempt = 0; attempt < 100; attempt++) {
        assert_int_equal(ll_backoff_delay(attempt, 500, 500, 500), 500);
        assert_int_equal(ll_backoff_delay(attempt, 500, 500, 501), 0);
    }
}

static void test_huge_attempts_do_not_overflow(void **state)
{
    (void)state;
    const unsigned attempts[] = {31, 32, 33, 34, 63, 64, 65, 1000, 1u << 20, UINT_MAX - 1, UINT_MAX};
    const uint32_t mins[] = {1, 3, 100, UINT32_MAX};

    /* A naive min << (attempt - 1) would wrap to a small (or zero) ceiling here. */
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        for (size_t j = 0; j < sizeof mins / sizeof mins[0]; j++) {
            unsigned a = attempts[i];
            uint64_t ceiling = expected_ceiling(a, mins[j], UINT32_MAX);
            assert_int_equal(ll_backoff_delay(a, mins[j], UINT32_MAX, ceiling), ceiling);
            assert_int_equal(ll_backoff_delay(a, mins[j], UINT32_MAX, UINT64_MAX), UINT64_MAX % (ceiling + 1));
        }
        assert_int_equal(ll_backoff_delay(attempts[i], 100, 30000, 30000), 30000);
        assert_int_equal(ll_backoff_delay(attempts[i], 100, 30000, 30001), 0);
    }
    /* The exact edge: 1 * 2^31 still fits below UINT32_MAX, 1 * 2^32 is clamped. */
    assert_int_equal(ll_backoff_delay(32, 1, UINT32_MAX, UINT64_C(1) << 31), UINT64_C(1) << 31);
    assert_int_equal(ll_backoff_delay(32, 1, UINT32_MAX, (UINT64_C(1) << 31) + 1), 0);
    assert_int_equal(ll_backoff_delay(33, 1, UINT32_MAX, UINT32_MAX), UINT32_MAX);
    /* UINT64_MAX % 2^32 */
    assert_int_equal(ll_backoff_delay(UINT_MAX, 1, UINT32_MAX, UINT64_MAX), UINT32_MAX);
}

static void test_zero_min(void **state)
{
    (void)state;

    /* min 0 (allowed by sdk_client_config): every ceiling is 0, so reconnect at once. */
    for (unsigned attempt = 0; attempt < 100; attempt++) {
        assert_int_equal(ll_backoff_delay(attempt, 0, 30000, 12345), 0);
        assert_int_equal(ll_backoff_delay(attempt, 0, 0, UINT64_MAX), 0);
    }
    /* A ceiling of 0 never grows, so the doubling must not run once per attempt: these
     * return at once (a loop bounded only by attempt took seconds here). */
    assert_int_equal(ll_backoff_delay(1u << 20, 0, 30000, 777), 0);
    assert_int_equal(ll_backoff_delay(UINT_MAX, 0, 30000, 777), 0);
    assert_int_equal(ll_backoff_delay(UINT_MAX, 0, UINT32_MAX, UINT64_MAX), 0);
}

/* backoff.h: the delay is within [0, min(max_ms, min_ms * 2^(attempt-1))], so when max_ms
 * is below min_ms the ceiling is max_ms. (sdk_connect rejects that configuration, so this
 * only matters for direct callers; the function must still honour its own formula.) */
static void test_max_below_min(void **state)
{
    (void)state;
    uint64_t rng = 99;

    for (unsigned attempt = 0; attempt < 40; attempt++) {
        assert_int_equal(ll_backoff_delay(attempt, 500, 100, 100), 100);
        for (int k = 0; k < 100; k++) {
            assert_true(ll_backoff_delay(attempt, 500, 100, splitmix64(&rng)) <= 100);
        }
        assert_int_equal(ll_backoff_delay(attempt, 500, 0, UINT64_MAX), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_attempts),
        cmocka_unit_test(test_within_bounds_random),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_ceiling_saturates),
        cmocka_unit_test(test_huge_attempts_do_not_overflow),
        cmocka_unit_test(test_zero_min),
        cmocka_unit_test(test_max_below_min),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
