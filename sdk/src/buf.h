/* Byte buffer with a read cursor: bytes [off, len) are unread. Shared by codec, tls and queues. */
#ifndef LL_BUF_H
#define LL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ll_buf {
    uint8_t *data;
    size_t off; /* first unread byte */
    size_t len; /* end of written bytes */
    size_t cap;
} ll_buf;

/* Ensure room for `extra` more bytes at data+len (compacting first). Returns 0 or SDK_ENOMEM. */
int ll_buf_reserve(ll_buf *b, size_t extra);
/* Free room at data+len without growing: compacts first when that reclaims at least as
 * many bytes as it moves (as ll_buf_reserve does). For writing in place, then len += n. */
size_t ll_buf_room(ll_buf *b);
/* Append n bytes. Returns 0 or SDK_ENOMEM. */
int ll_buf_append(ll_buf *b, const void *p, size_t n);
/* Drop n unread bytes from the front (n <= ll_buf_size). Resets to empty when all are read. */
void ll_buf_consume(ll_buf *b, size_t n);
static inline size_t ll_buf_size(const ll_buf *b)
{
    return b->len - b->off;
}
static inline uint8_t *ll_buf_head(const ll_buf *b)
{
    return b->data + b->off;
}
/* Where the next byte goes; valid for as many bytes as the last ll_buf_reserve granted. */
static inline uint8_t *ll_buf_tail(const ll_buf *b)
{
    return b->data + b->len;
}
void ll_buf_clear(ll_buf *b);
void ll_buf_free(ll_buf *b);

/* Network-order helpers. */
static inline void ll_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint32_t ll_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void ll_put_be64(uint8_t *p, uint64_t v)
{
    ll_put_be32(p, (uint32_t)(v >> 32));
    ll_put_be32(p + 4, (uint32_t)v);
}
static inline uint64_t ll_get_be64(const uint8_t *p)
{
    return ((uint64_t)ll_get_be32(p) << 32) | ll_get_be32(p + 4);
}

#endif
