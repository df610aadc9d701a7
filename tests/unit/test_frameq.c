/*
 * Unit tests for sdk/src/frameq.c: frames go in encoded and come out byte-identical, in
 * order, across segment boundaries and oversized frames; the cursor honours its limits;
 * dropping, rewinding and renumbering keep every remaining frame intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frameq.h"
#include "ll.h"

#include <stdio.h>
#include <string.h>

#define BIG (200u * 1024) /* bigger than any shared segment */

static uint8_t pattern[BIG];

/* Message i: payload of len_of(i) pattern bytes starting at offset i, type "t" when i % 3 == 0. */
static size_t len_of(size_t i)
{
    return i % 97 == 5 ? BIG - i : (i * 37) % 700;
}

static const char *type_of(size_t i)
{
    return i % 3 == 0 ? "t.T" : NULL;
}

static void push(ll_frameq *q, uint64_t seq, size_t i)
{
    const char *type = type_of(i);
    assert_int_equal(ll_frameq_push(q, seq, pattern + i, len_of(i), type, type ? strlen(type) : 0), 0);
}

/* Check that out holds exactly messages first..last with sequences seq0, seq0 + 1, ... */
static void assert_frames(const ll_buf *out, size_t first, size_t last, uint64_t seq0)
{
    size_t off = 0;
    for (size_t i = first; i <= last; i++) {
        const uint8_t *p = ll_buf_head(out) + off;
        size_t size = LL_FRAME_HEADER + ll_get_be32(p);
        ll_data_view v;
        assert_true(off + size <= ll_buf_size(out));
        assert_true(ll_data_frame_read(p, size, &v));
        assert_int_equal(v.seq, seq0 + (i - first));
        assert_int_equal(v.len, len_of(i));
        assert_memory_equal(v.payload, pattern + i, v.len);
        assert_int_equal(v.type_len, type_of(i) ? strlen(type_of(i)) : 0);
        off += size;
    }
    assert_int_equal(off, ll_buf_size(out));
}

static void test_push_copy_across_segments(void **state)
{
    (void)state;
    ll_frameq q = {0};
    ll_buf out = {0};
    uint64_t payload = 0;
    for (size_t i = 0; i < 1000; i++) {
        push(&q, i + 1, i);
        payload += len_of(i);
    }
    assert_int_equal(q.count, 1000);
    assert_int_equal(q.bytes, payload);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_int_equal(q.copied, 1000);
    assert_int_equal(q.copied_bytes, payload);
    assert_frames(&out, 0, 999, 1);

    /* Nothing left at the cursor: a second copy adds nothing. */
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_frames(&out, 0, 999, 1);

    ll_data_view v;
    ll_frameq_view(&q, 500, &v);
    assert_int_equal(v.seq, 501);
    assert_memory_equal(v.payload, pattern + 500, len_of(500));
    ll_buf_free(&out);
    ll_frameq_free(&q);
    assert_int_equal(q.count, 0);
}

static void test_copy_limits(void **state)
{
    (void)state;
    ll_frameq q = {0};
    ll_buf out = {0};
    for (size_t i = 1; i <= 10; i++) {
        push(&q, i, i);
    }
    /* At most 3 frames before the cursor. */
    assert_int_equal(ll_frameq_copy(&q, &out, 3, UINT64_MAX, SIZE_MAX), 0);
    assert_int_equal(q.copied, 3);
    assert_frames(&out, 1, 3, 1);

    /* Payload bound: a frame goes only if the bytes before the cursor stay within it. */
    uint64_t bound = q.copied_bytes + len_of(4) - 1; /* one byte short of the next frame */
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, bound, SIZE_MAX), 0);
    assert_int_equal(q.copied, 3);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, bound + 1, SIZE_MAX), 0);
    assert_int_equal(q.copied, 4);

    /* Output bound: frames go while out holds less than the limit. */
    ll_buf_clear(&out);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, 1), 0);
    assert_int_equal(q.copied, 5);
    assert_frames(&out, 5, 5, 5);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, 0), 0);
    assert_int_equal(q.copied, 5);
    ll_buf_free(&out);
    ll_frameq_free(&q);
}

static void test_drop_rewind(void **state)
{
    (void)state;
    ll_frameq q = {0};
    ll_buf out = {0};
    for (size_t i = 0; i < 300; i++) {
        push(&q, i + 1, i);
    }
    assert_int_equal(ll_frameq_copy(&q, &out, 200, UINT64_MAX, SIZE_MAX), 0);
    ll_frameq_drop(&q, 150);
    assert_int_equal(q.count, 150);
    assert_int_equal(q.copied, 50);

    /* The rest of the stream continues where it was. */
    ll_buf_clear(&out);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_frames(&out, 200, 299, 201);

    /* A reconnect: everything still queued goes out again, as the same bytes. */
    ll_frameq_rewind(&q);
    assert_int_equal(q.copied, 0);
    ll_buf_clear(&out);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_frames(&out, 150, 299, 151);

    /* Dropping frames not yet copied (the peer had them from an earlier connection) moves
     * the cursor along. */
    ll_frameq_rewind(&q);
    ll_frameq_drop(&q, 100);
    assert_int_equal(q.copied, 0);
    ll_buf_clear(&out);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_frames(&out, 250, 299, 251);

    /* Emptied, then reused. */
    ll_frameq_drop(&q, 50);
    assert_int_equal(q.count, 0);
    assert_int_equal(q.bytes, 0);
    push(&q, 7, 3);
    ll_buf_clear(&out);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_frames(&out, 3, 3, 7);
    ll_buf_free(&out);
    ll_frameq_free(&q);
}

static void test_renumber(void **state)
{
    (void)state;
    ll_frameq q = {0};
    ll_buf out = {0};
    for (size_t i = 0; i < 400; i++) {
        push(&q, 1000 + i, i); /* sequences that need wider varints than 1.. */
    }
    assert_int_equal(ll_frameq_copy(&q, &out, 10, UINT64_MAX, SIZE_MAX), 0);
    ll_frameq_drop(&q, 4);
    assert_int_equal(ll_frameq_renumber(&q, 1), 0);
    assert_int_equal(q.count, 396);
    assert_int_equal(q.copied, 0);
    ll_buf_clear(&out);
    assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
    assert_frames(&out, 4, 399, 1);
    ll_buf_free(&out);
    ll_frameq_free(&q);

    /* An empty queue renumbers to an empty queue. */
    assert_int_equal(ll_frameq_renumber(&q, 1), 0);
    assert_int_equal(q.count, 0);
}

/* A long stream of small frames, acknowledged in batches as a peer does: emptied full-size
 * segments come back as spares (never more than a few), every frame still reads back, and
 * an emptied queue holds no spare. */
static void test_spares_recycled(void **state)
{
    (void)state;
    ll_frameq q = {0};
    ll_buf out = {0};
    uint64_t seq = 1, next_out = 1;
    bool reused = false;
    for (int round = 0; round < 40; round++) {
        for (int k = 0; k < 3000; k++, seq++) {
            assert_int_equal(ll_frameq_push(&q, seq, pattern + (seq % 64), 64, NULL, 0), 0);
        }
        reused = reused || q.spares > 0;
        ll_buf_clear(&out);
        assert_int_equal(ll_frameq_copy(&q, &out, SIZE_MAX, UINT64_MAX, SIZE_MAX), 0);
        for (size_t off = 0; off < ll_buf_size(&out);) {
            ll_data_view v;
            size_t size = LL_FRAME_HEADER + ll_get_be32(ll_buf_head(&out) + off);
            assert_true(ll_data_frame_read(ll_buf_head(&out) + off, size, &v));
            assert_int_equal(v.seq, next_out++);
            assert_memory_equal(v.payload, pattern + (v.seq % 64), 64);
            off += size;
        }
        size_t n = q.count - 500; /* keep some in flight */
        ll_frameq_drop(&q, n);
        assert_true(q.spares <= 16);
    }
    assert_true(reused);
    assert_int_equal(next_out, seq);
    ll_frameq_drop(&q, q.count);
    assert_int_equal(q.spares, 0);
    assert_null(q.spare);
    ll_frameq_free(&q);
    ll_buf_free(&out);
}

int main(void)
{
    for (size_t i = 0; i < sizeof pattern; i++) {
        pattern[i] = (uint8_t)(i * 131 + 17);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_copy_across_segments),
        cmocka_unit_test(test_copy_limits),
        cmocka_unit_test(test_drop_rewind),
        cmocka_unit_test(test_renumber),
        cmocka_unit_test(test_spares_recycled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
