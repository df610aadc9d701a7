/*
 * Unit tests for sdk/src/msgq.c: messages are single allocations that copy what they are
 * given, and the queue is a growable ring that keeps FIFO order and byte counts through
 * wrap-around and growth. Run under ASan, the frees are checked too (no leak, no double
 * free when popped messages are released with sdk_message_free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "msgq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Message number i: payload "m<i>" repeated i % 7 + 1 times, so lengths vary. */
static size_t payload_of(size_t i, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t r = 0; r <= i % 7; r++) {
        int n = snprintf(buf + len, cap - len, "m%zu;", i);
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
    return len;
}

static ll_msg *make(size_t i)
{
    char buf[256];
    size_t len = payload_of(i, buf, sizeof buf);
    ll_msg *m = ll_msg_new(buf, len, NULL, NULL);
    assert_non_null(m);
    m->pub.seq = i; /* a tag to check order by */
    return m;
}

static void assert_is(const ll_msg *m, size_t i)
{
    char buf[256];
    size_t len = payload_of(i, buf, sizeof buf);
    assert_non_null(m);
    assert_int_equal(m->pub.seq, i);
    assert_int_equal(m->pub.len, len);
    assert_memory_equal(m->pub.data, buf, len);
}

static uint64_t bytes_of(size_t i)
{
    char buf[256];
    return payload_of(i, buf, sizeof buf);
}

static void test_msg_new_copies(void **state)
{
    (void)state;
    char payload[] = "hello, lifeline";
    char type[] = "lifeline.test.Greeting";
    char peer[] = "CN=client-1";

    ll_msg *m = ll_msg_new(payload, sizeof payload - 1, type, peer);
    assert_non_null(m);
    /* The caller's buffers can change or go away: the message has its own copies. */
    memset(payload, 'X', sizeof payload - 1);
    memset(type, 'Y', sizeof type - 1);
    memset(peer, 'Z', sizeof peer - 1);
    assert_int_equal(m->pub.len, 15);
    assert_memory_equal(m->pub.data, "hello, lifeline", 15);
    assert_string_equal(m->pub.type, "lifeline.test.Greeting");
    assert_string_equal(m->pub.peer, "CN=client-1");
    assert_int_equal(m->pub.seq, 0);
    assert_int_equal(m->pub.session, 0);
    assert_int_equal(m->epoch, 0);
    /* Everything lives in the one allocation sdk_message_free releases. */
    assert_true((const char *)m->pub.type > (const char *)m);
    assert_true((const char *)m->pub.data > (const char *)m);
    sdk_message_free(&m->pub);
}

static void test_msg_new_optional_fields(void **state)
{
    (void)state;

    /* "" and NULL both mean "no type"; NULL peer means none. */
    ll_msg *m = ll_msg_new("abc", 3, "", NULL);
    assert_non_null(m);
    assert_null(m->pub.type);
    assert_null(m->pub.peer);
    assert_memory_equal(m->pub.data, "abc", 3);
    sdk_message_free(&m->pub);

    m = ll_msg_new("abc", 3, NULL, "");
    assert_non_null(m);
    assert_null(m->pub.type);
    assert_non_null(m->pub.peer); /* an empty identity is still an identity */
    assert_string_equal(m->pub.peer, "");
    sdk_message_free(&m->pub);

    /* An empty payload: length 0, data still a valid pointer. */
    m = ll_msg_new(NULL, 0, "t", NULL);
    assert_non_null(m);
    assert_int_equal(m->pub.len, 0);
    assert_non_null(m->pub.data);
    assert_string_equal(m->pub.type, "t");
    sdk_message_free(&m->pub);

    /* Type and peer with a payload containing NUL bytes (binary data is opaque). */
    const uint8_t bin[] = {0, 1, 0, 255, 0};
    m = ll_msg_new(bin, sizeof bin, "a.B", "peer");
    assert_non_null(m);
    assert_int_equal(m->pub.len, sizeof bin);
    assert_memory_equal(m->pub.data, bin, sizeof bin);
    assert_string_equal(m->pub.type, "a.B");
    assert_string_equal(m->pub.peer, "peer");
    sdk_message_free(&m->pub);

    sdk_message_free(NULL); /* ignored */
}

static void test_msg_new_size_overflow(void **state)
{
    (void)state;
    static const char byte = 'x';

    /* Sizes whose total would wrap size_t are refused before any allocation. */
    assert_null(ll_msg_new(&byte, SIZE_MAX, NULL, NULL));
    assert_null(ll_msg_new(&byte, SIZE_MAX - sizeof(ll_msg) + 1, NULL, NULL));
    assert_null(ll_msg_new(&byte, SIZE_MAX - sizeof(ll_msg) - 4, "abcd", NULL)); /* +5 for type */
    assert_null(ll_msg_new(&byte, SIZE_MAX - sizeof(ll_msg) - 2, NULL, "pq"));   /* +3 for peer */
}

static void test_empty_queue(void **state)
{
    (void)state;
    ll_msgq q = {0};

    assert_null(ll_msgq_pop(&q));
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    ll_msgq_free(&q);
    assert_null(q.ring);

    assert_int_equal(ll_msgq_push(&q, make(1)), 0);
    assert_is(ll_msgq_at(&q, 0), 1);
    ll_msg *m = ll_msgq_pop(&q);
    assert_is(m, 1);
    sdk_message_free(&m->pub);
    assert_null(ll_msgq_pop(&q)); /* drained */
    assert_int_equal(q.bytes, 0);
    ll_msgq_free(&q);
}

static void test_fifo_through_wrap_and_growth(void **state)
{
    (void)state;
    ll_msgq q = {0};
    size_t next_in = 0, next_out = 0;
    uint64_t bytes = 0;

    /* Fill the first ring (64), then keep it partly full while popping, so the head walks
     * around the ring several times; then push past capacity while head != 0 so the
     * growth must unroll a wrapped ring. Repeat up through several doublings. */
    for (int round = 0; round < 6; round++) {
        size_t pushes = 50u << round;
        size_t pops = (40u << round) - 3;
        for (size_t k = 0; k < pushes; k++) {
            bytes += bytes_of(next_in);
            assert_int_equal(ll_msgq_push(&q, make(next_in++)), 0);
            assert_int_equal(q.bytes, bytes);
        }
        /* Every queued message is reachable in order through ll_msgq_at. */
        for (size_t k = 0; k < q.count; k++) {
            assert_int_equal(ll_msgq_at(&q, k)->pub.seq, next_out + k);
        }
        assert_int_equal(q.count, next_in - next_out);
        assert_true((q.cap & (q.cap - 1)) == 0);
        assert_true(q.cap >= q.count);
        for (size_t k = 0; k < pops; k++) {
            ll_msg *m = ll_msgq_pop(&q);
            assert_is(m, next_out);
            bytes -= bytes_of(next_out++);
            assert_int_equal(q.bytes, bytes);
            sdk_message_free(&m->pub);
        }
    }
    assert_true(q.cap > 64);
    assert_true(q.head != 0);

    /* Drain: still in order, and the byte count ends at 0. */
    ll_msg *m;
    while ((m = ll_msgq_pop(&q)) != NULL) {
        assert_is(m, next_out++);
        sdk_message_free(&m->pub);
    }
    assert_int_equal(next_out, next_in);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    ll_msgq_free(&q);
}

static void test_wrap_at_exact_capacity(void **state)
{
    (void)state;
    ll_msgq q = {0};

    /* Head at 60 of 64, ring exactly full (wrapped), then one more forces growth. */
    for (size_t i = 0; i < 64; i++) {
        assert_int_equal(ll_msgq_push(&q, make(i)), 0);
    }
    assert_int_equal(q.cap, 64);
    for (size_t i = 0; i < 60; i++) {
        ll_msg *m = ll_msgq_pop(&q);
        assert_is(m, i);
        sdk_message_free(&m->pub);
    }
    for (size_t i = 64; i < 124; i++) {
        assert_int_equal(ll_msgq_push(&q, make(i)), 0);
    }
    assert_int_equal(q.cap, 64);
    assert_int_equal(q.count, 64);
    assert_int_equal(q.head, 60);
    assert_is(ll_msgq_at(&q, 0), 60);
    assert_is(ll_msgq_at(&q, 4), 64); /* ring slot 0 */
    assert_is(ll_msgq_at(&q, 63), 123);

    assert_int_equal(ll_msgq_push(&q, make(124)), 0);
    assert_int_equal(q.cap, 128);
    assert_int_equal(q.head, 0);
    for (size_t k = 0; k < q.count; k++) {
        assert_is(ll_msgq_at(&q, k), 60 + k);
    }
    ll_msgq_free(&q);
}

static void test_free_releases_remaining(void **state)
{
    (void)state;
    ll_msgq q = {0};

    /* ASan's leak check fails the run if ll_msgq_free misses any of these. */
    for (size_t i = 0; i < 300; i++) {
        assert_int_equal(ll_msgq_push(&q, make(i)), 0);
    }
    for (size_t i = 0; i < 100; i++) {
        ll_msg *m = ll_msgq_pop(&q);
        sdk_message_free(&m->pub);
    }
    ll_msgq_free(&q);
    assert_null(q.ring);
    assert_int_equal(q.cap, 0);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.head, 0);
    assert_int_equal(q.bytes, 0);

    /* A freed queue is an empty queue, usable again. */
    assert_int_equal(ll_msgq_push(&q, make(7)), 0);
    assert_is(ll_msgq_at(&q, 0), 7);
    assert_int_equal(q.bytes, bytes_of(7));
    ll_msgq_free(&q);
    ll_msgq_free(&q); /* twice is harmless */
}

/* ---- carved messages -------------------------------------------------------------------- */

#define CARVED 5000

/* Message i: i % 300 payload bytes of value i, type "T<i>" when i is even, peer "p". */
static ll_msg *carve(ll_carver *cv, size_t i)
{
    uint8_t payload[300];
    char type[16];
    memset(payload, (int)(i & 0xff), sizeof payload);
    int n = snprintf(type, sizeof type, "T%zu", i);
    ll_msg *m = ll_msg_carve(cv, payload, i % 300, i % 2 ? NULL : type, i % 2 ? 0 : (size_t)n, "p");
    assert_non_null(m);
    return m;
}

static void assert_carved(const ll_msg *m, size_t i)
{
    char type[16];
    snprintf(type, sizeof type, "T%zu", i);
    assert_int_equal(m->pub.len, i % 300);
    for (size_t k = 0; k < m->pub.len; k++) {
        assert_int_equal(m->pub.data[k], i & 0xff);
    }
    if (i % 2) {
        assert_null(m->pub.type);
    } else {
        assert_string_equal(m->pub.type, type);
    }
    assert_string_equal(m->pub.peer, "p");
    assert_int_equal((uintptr_t)m % _Alignof(max_align_t), 0);
}

static void *free_odd(void *arg)
{
    ll_msg **msgs = arg;
    for (size_t i = 1; i < CARVED; i += 2) {
        sdk_message_free(&msgs[i]->pub);
    }
    return NULL;
}

/* Many messages share blocks; each reads back intact; freeing them in any order and from
 * two threads, before or after the carver lets go, frees every block exactly once (ASan
 * and TSan builds check that). */
static void test_carve_share_and_free(void **state)
{
    (void)state;
    static ll_msg *msgs[CARVED];
    ll_carver cv = {0};
    for (size_t i = 0; i < CARVED; i++) {
        msgs[i] = carve(&cv, i);
    }
    assert_ptr_equal(msgs[1]->block, msgs[2]->block); /* small ones share */
    for (size_t i = 0; i < CARVED; i++) {
        assert_carved(msgs[i], i);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_odd, msgs), 0);
    for (size_t i = 0; i < CARVED / 2; i += 2) {
        sdk_message_free(&msgs[i]->pub);
    }
    ll_carver_free(&cv); /* messages still out keep their blocks */
    for (size_t i = CARVED / 2 + (CARVED / 2) % 2; i < CARVED; i += 2) {
        assert_carved(msgs[i], i);
        sdk_message_free(&msgs[i]->pub);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    sdk_message_free(NULL);
}

/* A message too big to share a block gets its own allocation; the queue frees both kinds. */
static void test_carve_big_and_queue_free(void **state)
{
    (void)state;
    static uint8_t big[8192];
    ll_carver cv = {0};
    ll_msgq q = {0};
    ll_msg *m = ll_msg_carve(&cv, big, sizeof big, NULL, 0, NULL);
    assert_non_null(m);
    assert_null(m->block);
    assert_int_equal(ll_msgq_push(&q, m), 0);
    assert_int_equal(ll_msgq_push(&q, carve(&cv, 7)), 0);
    ll_carver_free(&cv);
    ll_carver_free(&cv); /* idempotent */
    ll_msgq_free(&q);
}

/* 4 KiB messages, the common large size, are carved too: three share a 16 KiB block. */
static void test_carve_4k_share(void **state)
{
    (void)state;
    static uint8_t page[4096];
    memset(page, 0x5a, sizeof page);
    ll_carver cv = {0};
    ll_msg *m[4];
    for (int i = 0; i < 4; i++) {
        m[i] = ll_msg_carve(&cv, page, sizeof page, NULL, 0, "peer");
        assert_non_null(m[i]);
        assert_non_null(m[i]->block);
        assert_memory_equal(m[i]->pub.data, page, sizeof page);
    }
    assert_ptr_equal(m[0]->block, m[2]->block);
    assert_ptr_not_equal(m[2]->block, m[3]->block); /* the fourth starts the next block */
    ll_carver_free(&cv);
    for (int i = 0; i < 4; i++) {
        sdk_message_free(&m[i]->pub);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_new_copies),
        cmocka_unit_test(test_msg_new_optional_fields),
        cmocka_unit_test(test_msg_new_size_overflow),
        cmocka_unit_test(test_empty_queue),
        cmocka_unit_test(test_fifo_through_wrap_and_growth),
        cmocka_unit_test(test_wrap_at_exact_capacity),
        cmocka_unit_test(test_free_releases_remaining),
        cmocka_unit_test(test_carve_share_and_free),
        cmocka_unit_test(test_carve_big_and_queue_free),
        cmocka_unit_test(test_carve_4k_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
