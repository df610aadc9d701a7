#include "msgq.h"

#include <stdlib.h>
#include <string.h>

ll_msg *ll_msg_new(const void *data, size_t len, const char *type, const char *peer)
{
    return ll_msg_new_n(data, len, type, type ? strlen(type) : 0, peer);
}

ll_msg *ll_msg_new_n(const void *data, size_t len, const char *type, size_t type_name_len, const char *peer)
{
    size_t type_len = type_name_len ? type_name_len + 1 : 0;
    size_t peer_len = peer ? strlen(peer) + 1 : 0;
    if (len > SIZE_MAX - sizeof(ll_msg) - type_len - peer_len) {
        return NULL;
    }
    ll_msg *m = malloc(sizeof(*m) + type_len + peer_len + len);
    if (!m) {
        return NULL;
    }
    char *tail = (char *)(m + 1);
    memset(m, 0, sizeof(*m));
    if (type_len) {
        memcpy(tail, type, type_name_len);
        tail[type_name_len] = '\0';
        m->pub.type = tail;
        tail += type_len;
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

void sdk_message_free(sdk_message *msg)
{
    free(msg); /* pub is the first member of the single ll_msg allocation */
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
        free(m);
    }
    free(q->ring);
    memset(q, 0, sizeof(*q));
}
