/*
 * Growable byte buffer with a read cursor. Readers consume from the front by moving `off`
 * instead of shifting bytes, so taking many small frames out of one large read costs
 * nothing per frame; the unread bytes are moved to the front only when the tail runs out.
 */
#include "buf.h"

#include "ll.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Small enough for an idle connection, big enough that a stream of small frames rarely grows. */
#define BUF_MIN_CAP 256

/*
 * No single object may exceed PTRDIFF_MAX bytes (pointer differences would overflow), and a
 * request that large can only come from an arithmetic mistake or a hostile length, so it is
 * refused here instead of being passed to realloc.
 */
#define BUF_MAX_CAP ((size_t)PTRDIFF_MAX)

static size_t tail_room(const ll_buf *b)
{
    return b->cap - b->len;
}

static void compact(ll_buf *b)
{
    size_t n = ll_buf_size(b);

    if (b->off == 0) {
        return;
    }
    if (n > 0) {
        memmove(b->data, b->data + b->off, n);
    }
    b->off = 0;
    b->len = n;
}

/* Double from the current capacity until `need` fits, so appends cost amortised O(1). */
static size_t grown_cap(size_t cap, size_t need)
{
    size_t c = LL_MAX(cap, (size_t)BUF_MIN_CAP);

    while (c < need) {
        if (c > BUF_MAX_CAP / 2) {
            return need;
        }
        c *= 2;
    }
    return c;
}

int ll_buf_reserve(ll_buf *b, size_t extra)
{
    if (tail_room(b) >= extra) {
        return 0;
    }
    /*
     * Compacting alone is worth it only when it reclaims at least as many bytes as it
     * moves; otherwise a reader that consumes a little before every append would memmove
     * the whole buffer each time, which is quadratic.
     */
    if (b->off >= ll_buf_size(b)) {
        compact(b);
        if (tail_room(b) >= extra) {
            return 0;
        }
    }
    /* Growing copies the buffer anyway: compact first so dead bytes are not copied too. */
    compact(b);
    LL_ENSURE(extra <= BUF_MAX_CAP - b->len, SDK_ENOMEM);
    size_t cap = grown_cap(b->cap, b->len + extra);
    uint8_t *data = realloc(b->data, cap);
    LL_ENSURE(data != NULL, SDK_ENOMEM);
    b->data = data;
    b->cap = cap;
    return 0;
}

size_t ll_buf_room(ll_buf *b)
{
    if (b->off > 0 && b->off >= ll_buf_size(b)) {
        compact(b);
    }
    return tail_room(b);
}

int ll_buf_append(ll_buf *b, const void *p, size_t n)
{
    /* memcpy from NULL is undefined even for zero bytes, and empty appends are common. */
    if (n == 0) {
        return 0;
    }
    LL_GUARD(ll_buf_reserve(b, n));
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void ll_buf_consume(ll_buf *b, size_t n)
{
    b->off += LL_MIN(n, ll_buf_size(b));
    /* Once everything is read, the next append starts at the front again with no memmove. */
    if (b->off == b->len) {
        b->off = 0;
        b->len = 0;
    }
}

void ll_buf_clear(ll_buf *b)
{
    b->off = 0;
    b->len = 0;
}

void ll_buf_free(ll_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = 0;
    b->len = 0;
    b->cap = 0;
}
