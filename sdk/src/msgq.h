/* Messages and FIFO queues of them: the send/retransmit queue and the receive queue. */
#ifndef LL_MSGQ_H
#define LL_MSGQ_H

#include "lifeline/sdk.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ll_block ll_block;

/* One allocation, or one piece of a shared block: the public view first (sdk_message_free
 * casts back), then peer, type and payload bytes. */
typedef struct ll_msg {
    sdk_message pub;
    uint32_t epoch;  /* session generation pub.seq belongs to (see ll_session.epoch) */
    ll_block *block; /* the shared block it was carved from, or NULL for its own allocation */
} ll_msg;

/* Copy payload, type (NULL/"" for none) and peer identity (NULL for none). NULL on ENOMEM. */
ll_msg *ll_msg_new(const void *data, size_t len, const char *type, const char *peer);

/* Same, with a type name of type_len bytes that need not be NUL-terminated (0: none). */
ll_msg *ll_msg_new_n(const void *data, size_t len, const char *type, size_t type_len, const char *peer);

/* Free a message however it was made (what sdk_message_free does). NULL is ignored. */
void ll_msg_free(ll_msg *m);

/*
 * Received messages, carved out of shared 16 KiB blocks instead of a malloc each: the
 * receiving I/O thread fills a block; every message in it holds a reference, and the last
 * sdk_message_free returns the block. A message that does not fit comfortably (over 5 KiB)
 * gets an allocation of its own, so keeping one message pins at most one block. One thread
 * carves with a carver; any thread frees the messages.
 */
typedef struct ll_carver {
    ll_block *block; /* being filled, or NULL */
    size_t carved;   /* messages carved from it */
} ll_carver;

/* Like ll_msg_new_n, from the carver's block. NULL on ENOMEM. */
ll_msg *ll_msg_carve(ll_carver *cv, const void *data, size_t len, const char *type, size_t type_len, const char *peer);
/* Give up the block being filled (its messages keep it until they are freed). */
void ll_carver_free(ll_carver *cv);

/* FIFO as a growable ring of pointers; counts payload bytes for queue bounds. */
typedef struct ll_msgq {
    ll_msg **ring;
    size_t cap;  /* power of two, or 0 */
    size_t head; /* index of the oldest */
    size_t count;
    uint64_t bytes; /* sum of payload lengths */
} ll_msgq;

/* Append m (ownership moves in). Returns 0 or SDK_ENOMEM. */
int ll_msgq_push(ll_msgq *q, ll_msg *m);
/* Remove and return the oldest, or NULL if empty (ownership moves out). */
ll_msg *ll_msgq_pop(ll_msgq *q);
/* i-th oldest (i < count), still owned by the queue. */
static inline ll_msg *ll_msgq_at(const ll_msgq *q, size_t i)
{
    return q->ring[(q->head + i) & (q->cap - 1)];
}
/* Pop every message, oldest first, into fn (which owns it from then on): how the I/O threads
 * hand accepted messages to an on_message callback once their mutex is released. */
void ll_msgq_deliver(ll_msgq *q, sdk_message_fn fn, void *user);
/* Free every message and the ring. */
void ll_msgq_free(ll_msgq *q);

#endif
