#include "msgq.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

ll_msg *ll_msg_new(const void *data, size_t len, const char *type, const char *peer)
{
    return ll_msg_new_n(data, len, type, type ? strlen(type) : 0, peer);
}

#define BLOCK_SIZE (16u * 1024)
/* Three 4 KiB messages fit a block: a stream of them costs one malloc per three, not one
 * each (and a kept one pins at most 4 times its size, as a kept 2 KiB one did before). */
#define CARVE_MAX (BLOCK_SIZE / 3)
/* A block starts with this many references on behalf of its carver, who returns the
 * unused part when it moves on: so carving costs no atomic operation per message. */
#define CARVER_REFS (SIZE_MAX / 2)

struct ll_block {
    atomic_size_t refs;
    size_t used; /* carver only */
    max_align_t bytes[];
};

/* Bytes of a message with these parts, or 0 if it would not fit in a size_t. */
static size_t msg_size(size_t len, size_t type_len, size_t peer_len)
{
    size_t fixed = sizeof(ll_msg) + type_len + peer_len;
    return len > SIZE_MAX - fixed ? 0 : fixed + len;
}

/* Lay a message out in m, which holds msg_size() bytes. */
static ll_msg *fill(ll_msg *m, const void *data, size_t len, const char *type, size_t type_name_len, const char *peer,
                    size_t peer_len)
{
    char *tail = (char *)(m + 1);
    memset(m, 0, sizeof(*m));
    if (type_name_len) {
        memcpy(tail, type, type_name_len);
        tail[type_name_len] = '\0';
        m->pub.type = tail;
        tail += type_name_len + 1;
    }
    if (peer_len) {
        memcpy(tail, peer, peer_len);
        m->pub.peer = tail;
        tail += peer_len;
    }
    if (len) {
        memcpy(tail, data, len);
    }
    m->pub.data = (const uint8_t *)tail;
    m->pub.len = len;
    return m;
}

ll_msg *ll_msg_new_n(const void *data, size_t len, const char *type, size_t type_name_len, const char *peer)
{
    size_t type_len = type_name_len ? type_name_len + 1 : 0;
    size_t peer_len = peer ? strlen(peer) + 1 : 0;
    size_t size = msg_size(len, type_len, peer_len);
    ll_msg *m = size ? malloc(size) : NULL;
    return m ? fill(m, data, len, type, type_name_len, peer, peer_len) : NULL;
}

static void block_release(ll_block *b, size_t refs)
{
    if (atomic_fetch_sub_explicit(&b->refs, refs, memory_order_acq_rel) == refs) {
        free(b);
    }
}

void ll_carver_free(ll_carver *cv)
{
    if (cv->block) {
        block_release(cv->block, CARVER_REFS - cv->carved);
    }
    *cv = (ll_carver){0};
}

ll_msg *ll_msg_carve(ll_carver *cv, const void *data, size_t len, const char *type, size_t type_name_len,
                     const char *peer)
{
    size_t type_len = type_name_len ? type_name_len + 1 : 0;
    size_t peer_len = peer ? strlen(peer) + 1 : 0;
    size_t size = msg_size(len, type_len, peer_len);
    if (size == 0 || size > CARVE_MAX) {
        return ll_msg_new_n(data, len, type, type_name_len, peer);
    }
    size = (size + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) * _Alignof(max_align_t);
    if (!cv->block || cv->block->used + size > BLOCK_SIZE) {
        ll_carver_free(cv);
        ll_block *b = malloc(sizeof(*b) + BLOCK_SIZE);
        if (!b) {
            return NULL;
        }
        atomic_init(&b->refs, CARVER_REFS);
        b->used = 0;
        cv->block = b;
    }
    ll_msg *m = (ll_msg *)((char *)cv->block->bytes + cv->block->used);
    cv->block->used += size;
    cv->carved++;
    fill(m, data, len, type, type_name_len, peer, peer_len);
    m->block = cv->block;
    return m;
}

void ll_msg_free(ll_msg *m)
{
    if (!m) {
        return;
    }
    if (m->block) {
        block_release(m->block, 1);
    } else {
        free(m);
    }
}

void sdk_message_free(sdk_message *msg)
{
    ll_msg_free((ll_msg *)msg); /* pub is the first member of every ll_msg */
}

static int grow(ll_msgq *q)
{
    size_t cap = q->cap ? q->cap * 2 : 64;
    ll_msg **ring = malloc(cap * sizeof(*ring));
    if (!ring) {
        return SDK_ENOMEM;
    }
    for (size_t i = 0; i < q->count; i++) {
        ring[i] = ll_msgq_at(q, i);
    }
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int ll_msgq_push(ll_msgq *q, ll_msg *m)
{
    if (q->count == q->cap && grow(q) != 0) {
        return SDK_ENOMEM;
    }
    q->ring[(q->head + q->count) & (q->cap - 1)] = m;
    q->count++;
    q->bytes += m->pub.len;
    return 0;
}

void ll_msgq_deliver(ll_msgq *q, sdk_message_fn fn, void *user)
{
    ll_msg *m;
    while ((m = ll_msgq_pop(q)) != NULL) {
        fn(&m->pub, user);
    }
}

ll_msg *ll_msgq_pop(ll_msgq *q)
{
    if (q->count == 0) {
        return NULL;
    }
    ll_msg *m = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    q->bytes -= m->pub.len;
    return m;
}

void ll_msgq_free(ll_msgq *q)
{
    ll_msg *m;
    while ((m = ll_msgq_pop(q)) != NULL) {
        ll_msg_free(m);
    }
    free(q->ring);
    memset(q, 0, sizeof(*q));
}
