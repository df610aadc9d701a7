/*
 * Unit tests for sdk/src/timer.c, the indexed min-heap of deadlines. After every operation
 * the heap is checked in full: the heap order, every back-index, and that armed timers are
 * exactly the ones the test expects. Random workloads are seeded, so failures repeat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "timer.h"

#include <stdlib.h>
#include <string.h>

#define N 1000

typedef struct item {
    int id;
    ll_timer t;
    int armed; /* what the test believes */
} item;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Heap order, back-indices, and agreement with the test's own bookkeeping. */
static void check_heap(const ll_timers *h, const item *items, size_t n)
{
    size_t armed = 0;
    uint64_t min = UINT64_MAX;

    for (size_t i = 0; i < h->count; i++) {
        assert_int_equal(h->heap[i]->idx, i + 1);
        if (i > 0) {
            assert_true(h->heap[(i - 1) / 2]->deadline_ms <= h->heap[i]->deadline_ms);
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (items[k].armed) {
            armed++;
            assert_int_not_equal(items[k].t.idx, 0);
            assert_true(items[k].t.idx <= h->count);
            assert_ptr_equal(h->heap[items[k].t.idx - 1], &items[k].t);
            min = items[k].t.deadline_ms < min ? items[k].t.deadline_ms : min;
        } else {
            assert_int_equal(items[k].t.idx, 0);
        }
    }
    assert_int_equal(h->count, armed);
    assert_int_equal(ll_timers_next(h), min);
}

static void arm(ll_timers *h, item *it, uint64_t deadline)
{
    assert_int_equal(ll_timers_set(h, &it->t, deadline), 0);
    assert_int_equal(it->t.deadline_ms, deadline);
    it->armed = 1;
}

static void cancel(ll_timers *h, item *it)
{
    ll_timers_cancel(h, &it->t);
    it->armed = 0;
}

/* Pop everything due by now; deadlines must come out in order and be disarmed. */
static size_t drain(ll_timers *h, uint64_t now, uint64_t *last)
{
    size_t n = 0;
    ll_timer *t;

    while ((t = ll_timers_expired(h, now)) != NULL) {
        item *it = ll_container_of(t, item, t);
        assert_int_equal(t->idx, 0);
        assert_true(t->deadline_ms <= now);
        assert_true(t->deadline_ms >= *last);
        assert_int_equal(it->armed, 1);
        *last = t->deadline_ms;
        it->armed = 0;
        n++;
    }
    return n;
}

static item *make_items(size_t n)
{
    item *items = calloc(n, sizeof *items);
    assert_non_null(items);
    for (size_t k = 0; k < n; k++) {
        items[k].id = (int)k;
    }
    return items;
}

static void test_empty(void **state)
{
    (void)state;
    ll_timers h = {0};
    ll_timer t = {0};

    assert_int_equal(ll_timers_next(&h), UINT64_MAX);
    assert_null(ll_timers_expired(&h, 0));
    assert_null(ll_timers_expired(&h, UINT64_MAX));
    ll_timers_cancel(&h, &t); /* not armed: nothing happens */
    assert_int_equal(h.count, 0);
    ll_timers_free(&h);
    assert_int_equal(ll_timers_next(&h), UINT64_MAX);
}

static void test_random_deadlines_in_order(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(N);
    uint64_t rng = 1;
    uint64_t last = 0;

    for (size_t k = 0; k < N; k++) {
        /* A narrow range so equal deadlines occur too. */
        arm(&h, &items[k], 1 + splitmix64(&rng) % 5000);
    }
    check_heap(&h, items, N);

    /* Not yet due: nothing. */
    assert_null(ll_timers_expired(&h, ll_timers_next(&h) - 1));

    /* In steps of time: only what is due, in deadline order. */
    size_t total = 0;
    for (uint64_t now = 0; now <= 5000; now += 250) {
        total += drain(&h, now, &last);
        check_heap(&h, items, N);
        assert_true(ll_timers_next(&h) > now);
    }
    assert_int_equal(total, N);
    assert_int_equal(h.count, 0);
    assert_int_equal(ll_timers_next(&h), UINT64_MAX);

    ll_timers_free(&h);
    free(items);
}

static void test_set_moves_armed_timer(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(100);

    for (size_t k = 0; k < 100; k++) {
        arm(&h, &items[k], 1000 + 10 * k);
    }
    check_heap(&h, items, 100);
    assert_int_equal(ll_timers_next(&h), 1000);

    /* Move one from deep in the heap to the front. */
    arm(&h, &items[77], 5);
    assert_int_equal(h.count, 100); /* moved, not added twice */
    check_heap(&h, items, 100);
    assert_int_equal(ll_timers_next(&h), 5);
    assert_ptr_equal(h.heap[0], &items[77].t);

    /* Move the root to the back. */
    arm(&h, &items[77], 1000000);
    check_heap(&h, items, 100);
    assert_int_equal(ll_timers_next(&h), 1000);
    assert_ptr_equal(h.heap[0], &items[0].t);

    /* Move the root later, but not last. */
    arm(&h, &items[0], 1500);
    check_heap(&h, items, 100);
    assert_int_equal(ll_timers_next(&h), 1010);

    /* Set to the same deadline: nothing changes. */
    arm(&h, &items[1], 1010);
    check_heap(&h, items, 100);

    /* Everything comes out in the new order, items[77] last. */
    uint64_t last = 0;
    ll_timer *t = NULL;
    size_t n = 0;
    while ((t = ll_timers_expired(&h, UINT64_MAX)) != NULL) {
        assert_true(t->deadline_ms >= last);
        last = t->deadline_ms;
        ll_container_of(t, item, t)->armed = 0;
        n++;
    }
    assert_int_equal(n, 100);
    assert_int_equal(last, 1000000);
    check_heap(&h, items, 100);

    ll_timers_free(&h);
    free(items);
}

static void test_random_moves(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(300);
    uint64_t rng = 2;

    for (size_t k = 0; k < 300; k++) {
        arm(&h, &items[k], splitmix64(&rng) % 100000);
    }
    for (int step = 0; step < 3000; step++) {
        item *it = &items[splitmix64(&rng) % 300];
        switch (splitmix64(&rng) % 3) {
        case 0:
            arm(&h, it, splitmix64(&rng) % 100000);
            break;
        case 1:
            cancel(&h, it);
            break;
        default:
            arm(&h, it, splitmix64(&rng)); /* anywhere in the 64-bit range */
            break;
        }
        check_heap(&h, items, 300);
    }
    uint64_t last = 0;
    (void)drain(&h, UINT64_MAX, &last);
    check_heap(&h, items, 300);
    assert_int_equal(h.count, 0);

    ll_timers_free(&h);
    free(items);
}

static void test_cancel_positions(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(64);

    /* Deadlines in reverse so the heap is not just the insertion order. */
    for (size_t k = 0; k < 64; k++) {
        arm(&h, &items[k], 10000 - 100 * k);
    }
    check_heap(&h, items, 64);

    /* The root. */
    item *root = ll_container_of(h.heap[0], item, t);
    uint64_t root_deadline = root->t.deadline_ms;
    cancel(&h, root);
    check_heap(&h, items, 64);
    assert_true(ll_timers_next(&h) > root_deadline);

    /* The last slot of the heap (nothing to move in). */
    cancel(&h, ll_container_of(h.heap[h.count - 1], item, t));
    check_heap(&h, items, 64);

    /* Middle slots, where the replacement must move down or up. */
    for (size_t pos = 1; h.count > 10; pos = (pos * 7 + 3) % h.count) {
        cancel(&h, ll_container_of(h.heap[pos], item, t));
        check_heap(&h, items, 64);
    }

    /* Cancelling twice, or a timer never armed, is harmless. */
    size_t count = h.count;
    for (size_t k = 0; k < 64; k++) {
        if (!items[k].armed) {
            cancel(&h, &items[k]);
            assert_int_equal(h.count, count);
        }
    }
    check_heap(&h, items, 64);

    uint64_t last = 0;
    assert_int_equal(drain(&h, UINT64_MAX, &last), count);
    check_heap(&h, items, 64);

    ll_timers_free(&h);
    free(items);
}

/* A replacement taken from the end of the heap that is smaller than the cancelled node's
 * parent must move up (a sift-down alone would leave the heap broken). */
static void test_cancel_needs_sift_up(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(7);
    /* heap:        1
     *          10      2
     *        11  12   3  4      cancel 11 (slot 3): 4 moves there and must rise above 10 */
    const uint64_t d[] = {1, 10, 2, 11, 12, 3, 4};
    for (size_t k = 0; k < 7; k++) {
        arm(&h, &items[k], d[k]);
        assert_int_equal(items[k].t.idx, k + 1); /* no insert moved: the layout drawn above */
    }
    cancel(&h, &items[3]);
    check_heap(&h, items, 7);
    assert_ptr_equal(h.heap[1], &items[6].t);
    assert_ptr_equal(h.heap[3], &items[1].t);

    uint64_t last = 0;
    assert_int_equal(drain(&h, UINT64_MAX, &last), 6);
    ll_timers_free(&h);
    free(items);
}

static void test_expired_boundaries(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(3);

    arm(&h, &items[0], 100);
    arm(&h, &items[1], 100);
    arm(&h, &items[2], 0);
    assert_int_equal(ll_timers_next(&h), 0);
    ll_timer *t = ll_timers_expired(&h, 0); /* deadline <= now is expired */
    assert_ptr_equal(t, &items[2].t);
    items[2].armed = 0;
    assert_null(ll_timers_expired(&h, 99));
    check_heap(&h, items, 3);
    uint64_t last = 0;
    assert_int_equal(drain(&h, 100, &last), 2);
    check_heap(&h, items, 3);

    /* An expired timer can be armed again. */
    arm(&h, &items[0], 500);
    check_heap(&h, items, 3);
    assert_int_equal(ll_timers_next(&h), 500);
    assert_ptr_equal(ll_timers_expired(&h, UINT64_MAX), &items[0].t);
    items[0].armed = 0;

    /* UINT64_MAX is a valid deadline, and only "now = UINT64_MAX" reaches it. */
    arm(&h, &items[1], UINT64_MAX);
    assert_null(ll_timers_expired(&h, UINT64_MAX - 1));
    assert_ptr_equal(ll_timers_expired(&h, UINT64_MAX), &items[1].t);
    items[1].armed = 0;
    check_heap(&h, items, 3);

    ll_timers_free(&h);
    free(items);
}

static void test_free_disarms(void **state)
{
    (void)state;
    ll_timers h = {0};
    item *items = make_items(200);
    uint64_t rng = 3;

    /* Over 64 so the heap array has grown at least once. */
    for (size_t k = 0; k < 200; k++) {
        arm(&h, &items[k], splitmix64(&rng) % 1000);
    }
    assert_true(h.cap >= 200);
    ll_timers_free(&h);
    assert_null(h.heap);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.cap, 0);
    for (size_t k = 0; k < 200; k++) {
        assert_int_equal(items[k].t.idx, 0);
        items[k].armed = 0;
    }
    assert_int_equal(ll_timers_next(&h), UINT64_MAX);

    /* The heap is usable again after free, and the old timers can be re-armed. */
    arm(&h, &items[5], 42);
    check_heap(&h, items, 200);
    ll_timers_cancel(&h, &items[5].t);
    items[5].armed = 0;
    check_heap(&h, items, 200);
    ll_timers_free(&h);
    free(items);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_random_deadlines_in_order),
        cmocka_unit_test(test_set_moves_armed_timer),
        cmocka_unit_test(test_random_moves),
        cmocka_unit_test(test_cancel_positions),
        cmocka_unit_test(test_cancel_needs_sift_up),
        cmocka_unit_test(test_expired_boundaries),
        cmocka_unit_test(test_free_disarms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
