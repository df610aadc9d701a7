/*
 * Unit tests for sdk/src/store.c, the open-addressing session map. Besides put/get/del over
 * thousands of random ids with growth, it builds clusters of ids that share a home slot
 * (found by brute force over the store's hash) and deletes from every position in them,
 * including clusters that wrap past the end of the table, checking after each deletion that
 * every remaining id is still found and that the linear-probing invariant holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 64 /* the table's first size; it holds at most 32 ids */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* The store's hash, restated (store.c: slot_of). */
static size_t home_slot(uint64_t id, size_t cap)
{
    return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 17) & (cap - 1);
}

/* The first n ids (>= *from) whose home slot in a FIRST_CAP table is `slot`. */
static void ids_with_home(size_t slot, uint64_t *out, size_t n, uint64_t *from)
{
    for (size_t k = 0; k < n; (*from)++) {
        if (home_slot(*from, FIRST_CAP) == slot) {
            out[k++] = *from;
        }
    }
}

/* Every id sits in its home slot or after it with no empty slot in between (otherwise a
 * lookup would stop early), and count matches the occupied slots. */
static void check_invariant(const ll_store *st)
{
    size_t occupied = 0;

    for (size_t j = 0; j < st->cap; j++) {
        if (st->ids[j] == 0) {
            continue;
        }
        occupied++;
        for (size_t i = home_slot(st->ids[j], st->cap); i != j; i = (i + 1) & (st->cap - 1)) {
            assert_int_not_equal(st->ids[i], 0);
            assert_int_not_equal(st->ids[i], st->ids[j]); /* no id stored twice */
        }
    }
    assert_int_equal(occupied, st->count);
    assert_true(st->cap == 0 || (st->cap & (st->cap - 1)) == 0);
    assert_true(st->count * 2 <= st->cap);
}

/* Values are the addresses of a per-test array, so each id maps to a distinct pointer. */
static void *val_of(int *vals, size_t k)
{
    return &vals[k];
}

static void count_visits(void *val, void *ctx)
{
    (*(int *)val)++;
    (*(int *)ctx)++;
}

static void test_empty_store(void **state)
{
    (void)state;
    ll_store st = {0};
    int visits = 0;

    assert_null(ll_store_get(&st, 1));
    assert_null(ll_store_get(&st, 0));
    assert_null(ll_store_del(&st, 1));
    assert_null(ll_store_del(&st, 0));
    ll_store_each(&st, count_visits, &visits);
    assert_int_equal(visits, 0);
    ll_store_free(&st);
    assert_int_equal(st.cap, 0);
}

static void test_put_get_replace(void **state)
{
    (void)state;
    ll_store st = {0};
    int a = 1, b = 2, c = 3;

    assert_int_equal(ll_store_put(&st, 7, &a), 0);
    assert_int_equal(ll_store_put(&st, UINT64_MAX, &b), 0);
    assert_int_equal(st.count, 2);
    assert_int_equal(st.cap, FIRST_CAP);
    assert_ptr_equal(ll_store_get(&st, 7), &a);
    assert_ptr_equal(ll_store_get(&st, UINT64_MAX), &b);

    /* Replacing keeps one entry with the new value. */
    assert_int_equal(ll_store_put(&st, 7, &c), 0);
    assert_int_equal(st.count, 2);
    assert_ptr_equal(ll_store_get(&st, 7), &c);

    /* A NULL value is storable (get cannot tell it from absent, del returns it). */
    assert_int_equal(ll_store_put(&st, 9, NULL), 0);
    assert_int_equal(st.count, 3);

    /* Missing ids and id 0 are not there. */
    assert_null(ll_store_get(&st, 8));
    assert_null(ll_store_get(&st, 0));
    assert_null(ll_store_del(&st, 8));
    assert_null(ll_store_del(&st, 0));
    assert_int_equal(st.count, 3);

    assert_ptr_equal(ll_store_del(&st, 7), &c);
    assert_null(ll_store_get(&st, 7));
    assert_null(ll_store_del(&st, 7)); /* twice */
    assert_int_equal(st.count, 2);
    assert_ptr_equal(ll_store_get(&st, UINT64_MAX), &b);
    check_invariant(&st);

    ll_store_free(&st);
    assert_null(st.ids);
    assert_null(st.vals);
    assert_int_equal(st.count, 0);
}

static void test_many_random_ids(void **state)
{
    (void)state;
    enum { N = 5000 };
    ll_store st = {0};
    uint64_t *ids = calloc(N, sizeof *ids);
    int *vals = calloc(N, sizeof *vals);
    uint64_t rng = 11;
    assert_non_null(ids);
    assert_non_null(vals);

    for (size_t k = 0; k < N; k++) {
        do {
            ids[k] = splitmix64(&rng);
        } while (ids[k] == 0 || ll_store_get(&st, ids[k]) != NULL);
        assert_int_equal(ll_store_put(&st, ids[k], val_of(vals, k)), 0);
        assert_int_equal(st.count, k + 1);
    }
    assert_true(st.cap >= 2 * N);
    check_invariant(&st);
    for (size_t k = 0; k < N; k++) {
        assert_ptr_equal(ll_store_get(&st, ids[k]), val_of(vals, k));
    }

    /* Ids that were never put are absent (with this many keys, probes cross clusters). */
    uint64_t other = 12345;
    for (int k = 0; k < 2000; k++) {
        uint64_t id = splitmix64(&other);
        int known = 0;
        for (size_t j = 0; j < N && !known; j++) {
            known = ids[j] == id;
        }
        if (!known) {
            assert_null(ll_store_get(&st, id));
            assert_null(ll_store_del(&st, id));
        }
    }
    assert_int_equal(st.count, N);

    /* Delete every other one; the rest must stay findable. */
    for (size_t k = 0; k < N; k += 2) {
        assert_ptr_equal(ll_store_del(&st, ids[k]), val_of(vals, k));
    }
    assert_int_equal(st.count, N / 2);
    check_invariant(&st);
    for (size_t k = 0; k < N; k++) {
        if (k % 2) {
            assert_ptr_equal(ll_store_get(&st, ids[k]), val_of(vals, k));
        } else {
            assert_null(ll_store_get(&st, ids[k]));
        }
    }

    /* Put the deleted ones back, then delete everything in a shuffled order. */
    for (size_t k = 0; k < N; k += 2) {
        assert_int_equal(ll_store_put(&st, ids[k], val_of(vals, k)), 0);
    }
    assert_int_equal(st.count, N);
    for (size_t k = N - 1; k > 0; k--) {
        size_t j = splitmix64(&rng) % (k + 1);
        uint64_t tmp = ids[k];
        ids[k] = ids[j];
        ids[j] = tmp;
    }
    for (size_t k = 0; k < N; k++) {
        assert_non_null(ll_store_del(&st, ids[k]));
        if (k % 500 == 0) {
            check_invariant(&st);
            for (size_t j = k + 1; j < N; j++) {
                assert_non_null(ll_store_get(&st, ids[j]));
            }
        }
    }
    assert_int_equal(st.count, 0);
    check_invariant(&st);

    ll_store_free(&st);
    free(ids);
    free(vals);
}

/* Clusters in a FIRST_CAP table: 6 ids homed at 10, 4 at 11 and 3 at 13 make one run from
 * slot 10 to 22; 5 ids homed at 62 and 3 at 63 wrap around to slot 5, and 2 ids homed at 2
 * extend that run to slot 7. 23 ids, so the table does not grow. */
#define CLUSTER_IDS 23

static void cluster_ids(uint64_t *ids)
{
    uint64_t from = 1;
    ids_with_home(10, ids + 0, 6, &from);
    ids_with_home(11, ids + 6, 4, &from);
    ids_with_home(13, ids + 10, 3, &from);
    ids_with_home(62, ids + 13, 5, &from);
    ids_with_home(63, ids + 18, 3, &from);
    ids_with_home(2, ids + 21, 2, &from);
}

static void fill(ll_store *st, const uint64_t *ids, int *vals, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(ll_store_put(st, ids[k], val_of(vals, k)), 0);
    }
    assert_int_equal(st->cap, FIRST_CAP);
    assert_int_equal(st->count, n);
    check_invariant(st);
}

static void assert_present_except(const ll_store *st, const uint64_t *ids, int *vals, const int *gone, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (gone[k]) {
            assert_null(ll_store_get(st, ids[k]));
        } else {
            assert_ptr_equal(ll_store_get(st, ids[k]), val_of(vals, k));
        }
    }
}

static void test_cluster_layout(void **state)
{
    (void)state;
    ll_store st = {0};
    uint64_t ids[CLUSTER_IDS];
    int vals[CLUSTER_IDS];

    cluster_ids(ids);
    fill(&st, ids, vals, CLUSTER_IDS);
    /* The crafted collisions really collide: slots 10..22 form one run, and 62..63, 0..7
     * another that wraps past the end of the table. */
    for (size_t i = 10; i <= 22; i++) {
        assert_int_not_equal(st.ids[i], 0);
    }
    assert_int_equal(st.ids[9], 0);
    assert_int_equal(st.ids[23], 0);
    assert_int_not_equal(st.ids[62], 0);
    assert_int_not_equal(st.ids[63], 0);
    for (size_t i = 0; i <= 7; i++) {
        assert_int_not_equal(st.ids[i], 0);
    }
    assert_int_equal(st.ids[8], 0);
    assert_int_equal(st.ids[61], 0);
    /* Inserted in order, each id lands at the first free slot after its home. */
    assert_int_equal(st.ids[10], ids[0]);
    assert_int_equal(st.ids[16], ids[6]);  /* homed at 11, pushed past the six from 10 */
    assert_int_equal(st.ids[20], ids[10]); /* homed at 13 */
    assert_int_equal(st.ids[0], ids[15]);  /* homed at 62, wrapped */
    assert_int_equal(st.ids[3], ids[18]);  /* homed at 63 */
    assert_int_equal(st.ids[6], ids[21]);  /* homed at 2, four slots from home */
    ll_store_free(&st);
}

static void test_delete_each_position_in_clusters(void **state)
{
    (void)state;
    uint64_t ids[CLUSTER_IDS];
    int vals[CLUSTER_IDS];

    cluster_ids(ids);
    /* Delete each single id from a fresh table: everything else stays findable. */
    for (size_t victim = 0; victim < CLUSTER_IDS; victim++) {
        ll_store st = {0};
        int gone[CLUSTER_IDS] = {0};
        fill(&st, ids, vals, CLUSTER_IDS);
        assert_ptr_equal(ll_store_del(&st, ids[victim]), val_of(vals, victim));
        gone[victim] = 1;
        check_invariant(&st);
        assert_present_except(&st, ids, vals, gone, CLUSTER_IDS);
        /* And it can come back. */
        assert_int_equal(ll_store_put(&st, ids[victim], val_of(vals, victim)), 0);
        gone[victim] = 0;
        check_invariant(&st);
        assert_present_except(&st, ids, vals, gone, CLUSTER_IDS);
        ll_store_free(&st);
    }
}

static void test_delete_clusters_in_random_orders(void **state)
{
    (void)state;
    uint64_t ids[CLUSTER_IDS];
    int vals[CLUSTER_IDS];
    uint64_t rng = 5;

    cluster_ids(ids);
    for (int round = 0; round < 200; round++) {
        ll_store st = {0};
        int gone[CLUSTER_IDS] = {0};
        size_t order[CLUSTER_IDS];
        for (size_t k = 0; k < CLUSTER_IDS; k++) {
            order[k] = k;
        }
        for (size_t k = CLUSTER_IDS - 1; k > 0; k--) {
            size_t j = splitmix64(&rng) % (k + 1);
            size_t tmp = order[k];
            order[k] = order[j];
            order[j] = tmp;
        }
        /* Insertion order decides the layout too: insert in another shuffled order. */
        uint64_t shuffled[CLUSTER_IDS];
        int *shuffled_vals[CLUSTER_IDS];
        for (size_t k = 0; k < CLUSTER_IDS; k++) {
            shuffled[k] = ids[order[(k + 7) % CLUSTER_IDS]];
            shuffled_vals[k] = &vals[order[(k + 7) % CLUSTER_IDS]];
        }
        for (size_t k = 0; k < CLUSTER_IDS; k++) {
            assert_int_equal(ll_store_put(&st, shuffled[k], shuffled_vals[k]), 0);
        }
        assert_int_equal(st.cap, FIRST_CAP);
        for (size_t k = 0; k < CLUSTER_IDS; k++) {
            size_t victim = order[k];
            assert_ptr_equal(ll_store_del(&st, ids[victim]), val_of(vals, victim));
            gone[victim] = 1;
            check_invariant(&st);
            assert_present_except(&st, ids, vals, gone, CLUSTER_IDS);
        }
        assert_int_equal(st.count, 0);
        ll_store_free(&st);
    }
}

static void test_each_visits_once(void **state)
{
    (void)state;
    enum { N = 1000 };
    ll_store st = {0};
    int *vals = calloc(N, sizeof *vals);
    uint64_t rng = 17;
    assert_non_null(vals);

    for (size_t k = 0; k < N; k++) {
        assert_int_equal(ll_store_put(&st, splitmix64(&rng) | 1, val_of(vals, k)), 0);
    }
    assert_int_equal(st.count, N);
    int total = 0;
    ll_store_each(&st, count_visits, &total);
    assert_int_equal(total, N);
    for (size_t k = 0; k < N; k++) {
        assert_int_equal(vals[k], 1);
    }
    ll_store_free(&st);
    free(vals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_many_random_ids),
        cmocka_unit_test(test_cluster_layout),
        cmocka_unit_test(test_delete_each_position_in_clusters),
        cmocka_unit_test(test_delete_clusters_in_random_orders),
        cmocka_unit_test(test_each_visits_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
