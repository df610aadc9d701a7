/*
 * Outgoing Data frames, encoded once when queued and kept byte for byte until the peer
 * acknowledges them. Writing them, and writing them again after a reconnect, is a plain
 * copy, and a queued message costs no allocation of its own: frames sit back to back in
 * segments (appending never moves what is queued), and a ring of per-frame sizes maps
 * positions in the stream to bytes.
 *
 * A cursor splits the queue into frames already copied out on the current connection and
 * frames still to copy. Pure data structure: no locks, no I/O.
 */
#ifndef LL_FRAMEQ_H
#define LL_FRAMEQ_H

#include "buf.h"
#include "codec.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ll_frameq_seg ll_frameq_seg;

/* Where a frame starts: a segment and an offset in it. */
typedef struct ll_frameq_pos {
    ll_frameq_seg *seg;
    size_t off;
} ll_frameq_pos;

typedef struct ll_frameq_entry {
    uint32_t frame_len;   /* encoded size, header included */
    uint32_t payload_len; /* what queue bounds and windows count */
} ll_frameq_entry;

typedef struct ll_frameq {
    ll_frameq_seg *head, *tail; /* oldest and newest segment */
    ll_frameq_pos front;        /* the oldest frame */
    ll_frameq_pos cursor;       /* the next frame to copy out */
    size_t copied;              /* frames before the cursor */
    uint64_t copied_bytes;      /* their payload bytes */
    ll_frameq_entry *ring;      /* one entry per frame, oldest at ring[first] */
    size_t cap;                 /* power of two, or 0 */
    size_t first;
    size_t count;         /* frames queued */
    uint64_t bytes;       /* payload bytes queued */
    ll_frameq_seg *spare; /* emptied full-size segments (a list of up to a few), kept for
                             the next: a steady stream then mallocs no segment (whose fresh
                             pages fault in, a tenth of a 64 B sink's CPU) per 64 KiB sent */
    size_t spares;
} ll_frameq;

/* Append the Data frame {seq, payload, type} (type_len bytes, 0 for none). The caller has
 * checked its size against the frame limit. 0 or SDK_ENOMEM (nothing appended). */
int ll_frameq_push(ll_frameq *q, uint64_t seq, const void *payload, size_t len, const char *type, size_t type_len);

/* i-th oldest frame's sizes (i < count). */
static inline ll_frameq_entry ll_frameq_entry_at(const ll_frameq *q, size_t i)
{
    return q->ring[(q->first + i) & (q->cap - 1)];
}

/* Read the i-th oldest frame back (i < count; O(i)): its fields point into the queue. */
void ll_frameq_view(const ll_frameq *q, size_t i, ll_data_view *v);

/* Encode every frame again with sequences first_seq, first_seq + 1, ...; the cursor goes
 * back to the oldest. 0, or SDK_ENOMEM with q unchanged. */
int ll_frameq_renumber(ll_frameq *q, uint64_t first_seq);

/* Copy frames at the cursor to out and move the cursor past them, frame by frame while
 * fewer than max_copied frames are before the cursor, the payload bytes before it stay within
 * max_copied_bytes (a larger frame goes only alone, with nothing before the cursor), and out
 * holds fewer than out_limit bytes. 0 or SDK_ENOMEM (nothing copied). */
int ll_frameq_copy(ll_frameq *q, ll_buf *out, size_t max_copied, uint64_t max_copied_bytes, size_t out_limit);

/* Append every queued frame to out, oldest first, whatever the cursor: the queue as bytes,
 * for a session record. The queue is unchanged. 0 or SDK_ENOMEM (out as it was). */
int ll_frameq_append_all(const ll_frameq *q, ll_buf *out);

/* The same from the first-th oldest frame on (first <= count), for a store that already
 * holds the ones before it. 0 or SDK_ENOMEM (out as it was). */
int ll_frameq_append_from(const ll_frameq *q, size_t first, ll_buf *out);

/* Drop the n oldest frames (n <= count): the peer has them. */
void ll_frameq_drop(ll_frameq *q, size_t n);

/* Put the cursor back on the oldest frame: everything goes out again. */
void ll_frameq_rewind(ll_frameq *q);

/* Free everything; the queue is empty and reusable afterwards. */
void ll_frameq_free(ll_frameq *q);

#endif
