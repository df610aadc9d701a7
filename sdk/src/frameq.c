#include "frameq.h"

#include "ll.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Segments start small, so an idle or lightly used session holds little, and double up to
 * SEG_MAX while a backlog builds; a frame bigger than that gets a segment of its own. */
#define SEG_MIN   2048u
#define SEG_MAX   (64u * 1024)
#define RING_MIN  64u
#define RING_KEEP 1024u /* an empty queue gives back a ring bigger than this */
/* Emptied full-size segments kept while the queue is in use: acknowledgements free several
 * at once, and the sender wants as many again right after. */
#define SPARES_MAX 16u

struct ll_frameq_seg {
    ll_frameq_seg *next;
    size_t cap;
    size_t len; /* bytes used: whole frames, back to back */
    uint8_t bytes[];
};

/* A position at the end of a full segment continues at the start of the next one. */
static void settle(ll_frameq_pos *p)
{
    if (p->off == p->seg->len && p->seg->next) {
        *p = (ll_frameq_pos){p->seg->next, 0};
    }
}

static int grow_ring(ll_frameq *q)
{
    size_t cap = q->cap ? q->cap * 2 : RING_MIN;
    ll_frameq_entry *ring = malloc(cap * sizeof(*ring));
    LL_ENSURE(ring, SDK_ENOMEM);
    for (size_t i = 0; i < q->count; i++) {
        ring[i] = ll_frameq_entry_at(q, i);
    }
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->first = 0;
    return 0;
}

/* Room for `size` more bytes at the tail, in a new segment if the tail is full. */
static int reserve(ll_frameq *q, size_t size)
{
    if (q->tail && q->tail->cap - q->tail->len >= size) {
        return 0;
    }
    size_t cap = q->tail ? LL_MIN(SEG_MAX, 2 * q->tail->cap) : SEG_MIN;
    cap = LL_MAX(cap, size);
    LL_ENSURE(cap <= SIZE_MAX - sizeof(ll_frameq_seg), SDK_ENOMEM);
    ll_frameq_seg *seg = q->spare;
    if (seg && seg->cap >= cap) {
        q->spare = seg->next;
        q->spares--;
        cap = seg->cap;
    } else {
        seg = malloc(sizeof(*seg) + cap);
        LL_ENSURE(seg, SDK_ENOMEM);
    }
    *seg = (ll_frameq_seg){.cap = cap};
    if (q->tail) {
        q->tail->next = seg;
    } else {
        q->head = seg;
        q->front = q->cursor = (ll_frameq_pos){seg, 0};
    }
    q->tail = seg;
    return 0;
}

int ll_frameq_push(ll_frameq *q, uint64_t seq, const void *payload, size_t len, const char *type, size_t type_len)
{
    size_t size = ll_data_frame_size_n(seq, len, type_len);
    LL_ENSURE(size <= UINT32_MAX && len <= UINT32_MAX, SDK_ENOMEM); /* callers check far lower limits */
    if (q->count == q->cap) {
        LL_GUARD(grow_ring(q));
    }
    LL_GUARD(reserve(q, size));
    ll_put_data_frame(q->tail->bytes + q->tail->len, seq, payload, len, type, type_len);
    q->tail->len += size;
    q->ring[(q->first + q->count) & (q->cap - 1)] = (ll_frameq_entry){(uint32_t)size, (uint32_t)len};
    q->count++;
    q->bytes += len;
    return 0;
}

/* Read the frame at p (whose entry is e) and move p past it. */
static void read_at(ll_frameq_pos *p, ll_frameq_entry e, ll_data_view *v)
{
    settle(p);
    /* Our own encoding, so it always reads back. */
    (void)ll_data_frame_read(p->seg->bytes + p->off, e.frame_len, v);
    p->off += e.frame_len;
}

void ll_frameq_view(const ll_frameq *q, size_t i, ll_data_view *v)
{
    ll_frameq_pos p = q->front;
    for (size_t k = 0; k <= i; k++) {
        read_at(&p, ll_frameq_entry_at(q, k), v);
    }
}

int ll_frameq_renumber(ll_frameq *q, uint64_t first_seq)
{
    ll_frameq fresh = {0};
    ll_frameq_pos p = q->front;
    for (size_t i = 0; i < q->count; i++) {
        ll_data_view v;
        read_at(&p, ll_frameq_entry_at(q, i), &v);
        int rc = ll_frameq_push(&fresh, first_seq + i, v.payload, v.len, v.type, v.type_len);
        if (rc != 0) {
            ll_frameq_free(&fresh);
            return rc;
        }
    }
    ll_frameq_free(q);
    *q = fresh;
    return 0;
}

int ll_frameq_copy(ll_frameq *q, ll_buf *out, size_t max_copied, uint64_t max_copied_bytes, size_t out_limit)
{
    size_t n = 0;
    size_t size = 0;
    uint64_t payload = 0;
    while (q->copied + n < q->count && q->copied + n < max_copied && ll_buf_size(out) + size < out_limit) {
        ll_frameq_entry e = ll_frameq_entry_at(q, q->copied + n);
        /* Never more than the byte window in flight, except one message larger than the whole
         * window, alone: it could never go out otherwise. */
        bool alone = q->copied + n == 0;
        if (!alone && q->copied_bytes + payload + e.payload_len > max_copied_bytes) {
            break;
        }
        n++;
        size += e.frame_len;
        payload += e.payload_len;
    }
    if (n == 0) {
        return 0;
    }
    LL_GUARD(ll_buf_reserve(out, size));
    /* Frames never straddle segments, so the run is a few large copies. */
    while (size > 0) {
        settle(&q->cursor);
        size_t run = LL_MIN(size, q->cursor.seg->len - q->cursor.off);
        memcpy(ll_buf_tail(out), q->cursor.seg->bytes + q->cursor.off, run);
        out->len += run;
        q->cursor.off += run;
        size -= run;
    }
    q->copied += n;
    q->copied_bytes += payload;
    return 0;
}

int ll_frameq_append_from(const ll_frameq *q, size_t first, ll_buf *out)
{
    size_t size = 0;
    for (size_t i = first; i < q->count; i++) {
        size += ll_frameq_entry_at(q, i).frame_len;
    }
    LL_GUARD(ll_buf_reserve(out, size));
    ll_frameq_pos p = q->front;
    for (size_t i = 0; i < q->count; i++) {
        uint32_t len = ll_frameq_entry_at(q, i).frame_len;
        settle(&p);
        if (i >= first) {
            memcpy(ll_buf_tail(out), p.seg->bytes + p.off, len);
            out->len += len;
        }
        p.off += len;
    }
    return 0;
}

int ll_frameq_append_all(const ll_frameq *q, ll_buf *out)
{
    return ll_frameq_append_from(q, 0, out);
}

/* Free the segments before keep (all of them if keep is NULL), but full-size ones while
 * there are fewer than SPARES_MAX spares: those become spares. */
static void free_segments(ll_frameq *q, ll_frameq_seg *keep)
{
    while (q->head != keep) {
        ll_frameq_seg *next = q->head->next;
        if (q->spares < SPARES_MAX && q->head->cap == SEG_MAX) {
            q->head->next = q->spare;
            q->spare = q->head;
            q->spares++;
        } else {
            free(q->head);
        }
        q->head = next;
    }
}

static void free_spares(ll_frameq *q)
{
    while (q->spare) {
        ll_frameq_seg *next = q->spare->next;
        free(q->spare);
        q->spare = next;
    }
    q->spares = 0;
}

/* Emptied: keep one small segment for the next message, give the rest back. */
static void reset_empty(ll_frameq *q)
{
    ll_frameq_seg *keep = q->tail->cap <= SEG_MIN ? q->tail : NULL;
    free_segments(q, keep);
    free_spares(q); /* an emptied queue holds one small segment at most */
    q->tail = keep;
    if (keep) {
        keep->len = 0;
        q->front = q->cursor = (ll_frameq_pos){keep, 0};
    } else {
        q->front = q->cursor = (ll_frameq_pos){0};
    }
    if (q->cap > RING_KEEP) {
        free(q->ring);
        q->ring = NULL;
        q->cap = 0;
    }
    q->first = 0;
}

void ll_frameq_drop(ll_frameq *q, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        ll_frameq_entry e = q->ring[q->first];
        bool at_cursor = q->copied == 0; /* not copied yet: the cursor moves with the front */
        settle(&q->front);
        q->front.off += e.frame_len;
        q->first = (q->first + 1) & (q->cap - 1);
        q->count--;
        q->bytes -= e.payload_len;
        if (at_cursor) {
            q->cursor = q->front;
        } else {
            q->copied--;
            q->copied_bytes -= e.payload_len;
        }
    }
    if (q->count == 0 && q->tail) {
        reset_empty(q);
    } else if (n > 0) {
        free_segments(q, q->front.seg);
    }
}

void ll_frameq_rewind(ll_frameq *q)
{
    q->cursor = q->front;
    q->copied = 0;
    q->copied_bytes = 0;
}

void ll_frameq_free(ll_frameq *q)
{
    free_segments(q, NULL);
    free_spares(q);
    free(q->ring);
    *q = (ll_frameq){0};
}
