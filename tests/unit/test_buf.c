/* Unit tests for sdk/src/buf.c: append, consume, compaction, growth and size limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "buf.h"
#include "ll.h"

#include <string.h>

/* Append n bytes counting up from `first`, so any misplaced byte shows up. */
static void append_pattern(ll_buf *b, uint8_t first, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t v = (uint8_t)(first + i);
        assert_int_equal(ll_buf_append(b, &v, 1), 0);
    }
}

static void assert_pattern(const ll_buf *b, uint8_t first, size_t n)
{
    assert_int_equal(ll_buf_size(b), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ll_buf_head(b)[i], (uint8_t)(first + i));
    }
}

static void test_append_consume(void **state)
{
    (void)state;
    ll_buf b = {0};

    assert_int_equal(ll_buf_append(&b, "hello", 5), 0);
    assert_int_equal(ll_buf_append(&b, " world", 6), 0);
    assert_int_equal(ll_buf_size(&b), 11);
    assert_memory_equal(ll_buf_head(&b), "hello world", 11);

    ll_buf_consume(&b, 6);
    assert_int_equal(ll_buf_size(&b), 5);
    assert_memory_equal(ll_buf_head(&b), "world", 5);

    ll_buf_consume(&b, 5);
    assert_int_equal(ll_buf_size(&b), 0);
    /* Fully read: the cursor rewinds so the next append needs no memmove. */
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    ll_buf_free(&b);
}

static void test_append_empty(void **state)
{
    (void)state;
    ll_buf b = {0};

    assert_int_equal(ll_buf_append(&b, NULL, 0), 0);
    assert_int_equal(ll_buf_size(&b), 0);
    assert_null(b.data);
    ll_buf_free(&b);
}

static void test_consume_more_than_size(void **state)
{
    (void)state;
    ll_buf b = {0};

    assert_int_equal(ll_buf_append(&b, "abc", 3), 0);
    ll_buf_consume(&b, 10);
    assert_int_equal(ll_buf_size(&b), 0);
    assert_int_equal(b.off, 0);
    ll_buf_free(&b);
}

static void test_reserve_compacts_before_growing(void **state)
{
    (void)state;
    ll_buf b = {0};

    append_pattern(&b, 0, 10);
    size_t cap = b.cap;
    append_pattern(&b, 10, cap - 10);
    assert_int_equal(b.len, cap);
    ll_buf_consume(&b, cap - 4);

    /* Four unread bytes, the rest consumed: room comes from moving them to the front. */
    assert_int_equal(ll_buf_reserve(&b, cap / 2), 0);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.off, 0);
    assert_pattern(&b, (uint8_t)(cap - 4), 4);
    ll_buf_free(&b);
}

static void test_reserve_grows_when_mostly_unread(void **state)
{
    (void)state;
    ll_buf b = {0};

    append_pattern(&b, 0, 1);
    size_t cap = b.cap;
    append_pattern(&b, 1, cap - 1);
    ll_buf_consume(&b, 1);

    /* Moving cap-1 bytes to win one byte would be quadratic for small reads: grow instead. */
    assert_int_equal(ll_buf_reserve(&b, 2), 0);
    assert_true(b.cap >= 2 * cap);
    assert_int_equal(b.off, 0);
    assert_pattern(&b, 1, cap - 1);
    ll_buf_free(&b);
}

static void test_reserve_enough_room_is_noop(void **state)
{
    (void)state;
    ll_buf b = {0};

    append_pattern(&b, 0, 8);
    ll_buf_consume(&b, 3);
    size_t cap = b.cap;
    uint8_t *data = b.data;
    assert_int_equal(ll_buf_reserve(&b, cap - 8), 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.off, 3);
    assert_pattern(&b, 3, 5);
    ll_buf_free(&b);
}

static void test_growth_is_geometric(void **state)
{
    (void)state;
    ll_buf b = {0};
    size_t grows = 0;
    size_t cap = 0;

    for (size_t i = 0; i < (1u << 20); i++) {
        uint8_t v = (uint8_t)i;
        assert_int_equal(ll_buf_append(&b, &v, 1), 0);
        if (b.cap != cap) {
            grows++;
            cap = b.cap;
        }
    }
    /* Doubling from a small start reaches 1 MiB in a dozen or so steps, not thousands. */
    assert_true(grows <= 20);
    assert_true(b.cap < (2u << 20) + 256);
    for (size_t i = 0; i < (1u << 20); i++) {
        assert_int_equal(b.data[i], (uint8_t)i);
    }
    ll_buf_free(&b);
}

static void test_large_append_at_once(void **state)
{
    (void)state;
    ll_buf b = {0};
    static uint8_t big[100000];

    memset(big, 0x5a, sizeof big);
    assert_int_equal(ll_buf_append(&b, "x", 1), 0);
    assert_int_equal(ll_buf_append(&b, big, sizeof big), 0);
    assert_int_equal(ll_buf_size(&b), sizeof big + 1);
    assert_memory_equal(ll_buf_head(&b) + 1, big, sizeof big);
    ll_buf_free(&b);
}

static void test_reserve_overflow(void **state)
{
    (void)state;
    ll_buf b = {0};

    assert_int_equal(ll_buf_append(&b, "abc", 3), 0);
    ll_buf_consume(&b, 1);
    /* len + extra wraps around: must fail before any allocation, leaving the data intact. */
    assert_int_equal(ll_buf_reserve(&b, SIZE_MAX), SDK_ENOMEM);
    assert_int_equal(ll_buf_reserve(&b, SIZE_MAX - 1), SDK_ENOMEM);
    /* No object may exceed PTRDIFF_MAX; refused without asking realloc. */
    assert_int_equal(ll_buf_reserve(&b, (size_t)PTRDIFF_MAX), SDK_ENOMEM);
    assert_int_equal(ll_buf_append(&b, "x", SIZE_MAX), SDK_ENOMEM);
    assert_int_equal(ll_buf_size(&b), 2);
    assert_memory_equal(ll_buf_head(&b), "bc", 2);
    ll_buf_free(&b);
}

static void test_reserve_overflow_empty(void **state)
{
    (void)state;
    ll_buf b = {0};

    assert_int_equal(ll_buf_reserve(&b, SIZE_MAX), SDK_ENOMEM);
    assert_int_equal(ll_buf_reserve(&b, (size_t)PTRDIFF_MAX + 1), SDK_ENOMEM);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    ll_buf_free(&b);
}

static void test_tail_after_reserve(void **state)
{
    (void)state;
    ll_buf b = {0};

    assert_int_equal(ll_buf_append(&b, "ab", 2), 0);
    assert_int_equal(ll_buf_reserve(&b, 3), 0);
    memcpy(ll_buf_tail(&b), "cde", 3);
    b.len += 3;
    assert_memory_equal(ll_buf_head(&b), "abcde", 5);
    ll_buf_free(&b);
}

static void test_clear_keeps_capacity(void **state)
{
    (void)state;
    ll_buf b = {0};

    append_pattern(&b, 0, 300);
    ll_buf_consume(&b, 7);
    size_t cap = b.cap;
    ll_buf_clear(&b);
    assert_int_equal(ll_buf_size(&b), 0);
    assert_int_equal(b.off, 0);
    assert_int_equal(b.cap, cap);
    ll_buf_free(&b);
}

static void test_free_is_repeatable(void **state)
{
    (void)state;
    ll_buf b = {0};

    ll_buf_free(&b);
    assert_int_equal(ll_buf_append(&b, "a", 1), 0);
    ll_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.cap, 0);
    ll_buf_free(&b);
    /* Usable again after free. */
    assert_int_equal(ll_buf_append(&b, "b", 1), 0);
    ll_buf_free(&b);
}

/* ll_buf_room never grows the buffer; it compacts only when that reclaims at least as much as
 * it moves, and the unread bytes stay intact either way. */
static void test_room(void **state)
{
    (void)state;
    ll_buf b = {0};
    uint8_t bytes[100];

    for (size_t i = 0; i < sizeof bytes; i++) {
        bytes[i] = (uint8_t)i;
    }
    assert_int_equal(ll_buf_room(&b), 0); /* nothing allocated, nothing offered */
    assert_int_equal(ll_buf_append(&b, bytes, sizeof bytes), 0);
    size_t cap = b.cap;
    assert_int_equal(ll_buf_room(&b), cap - 100);
    ll_buf_consume(&b, 10); /* 10 dead bytes before 90 unread: not worth moving */
    assert_int_equal(ll_buf_room(&b), cap - 100);
    assert_int_equal(b.off, 10);
    ll_buf_consume(&b, 50); /* 60 dead before 40 unread: compacted */
    assert_int_equal(ll_buf_room(&b), cap - 40);
    assert_int_equal(b.off, 0);
    assert_memory_equal(ll_buf_head(&b), bytes + 60, 40);
    assert_int_equal(b.cap, cap);
    ll_buf_free(&b);
}

static void test_be32(void **state)
{
    (void)state;
    uint8_t p[4];
    const uint32_t values[] = {0, 1, 0xff, 0x100, 0x12345678, 0x80000000u, UINT32_MAX};

    ll_put_be32(p, 0x01020304);
    assert_memory_equal(p, "\x01\x02\x03\x04", 4);
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        ll_put_be32(p, values[i]);
        assert_int_equal(ll_get_be32(p), values[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_consume),
        cmocka_unit_test(test_room),
        cmocka_unit_test(test_append_empty),
        cmocka_unit_test(test_consume_more_than_size),
        cmocka_unit_test(test_reserve_compacts_before_growing),
        cmocka_unit_test(test_reserve_grows_when_mostly_unread),
        cmocka_unit_test(test_reserve_enough_room_is_noop),
        cmocka_unit_test(test_growth_is_geometric),
        cmocka_unit_test(test_large_append_at_once),
        cmocka_unit_test(test_reserve_overflow),
        cmocka_unit_test(test_reserve_overflow_empty),
        cmocka_unit_test(test_tail_after_reserve),
        cmocka_unit_test(test_clear_keeps_capacity),
        cmocka_unit_test(test_free_is_repeatable),
        cmocka_unit_test(test_be32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
