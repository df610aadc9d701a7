/*
 * The server's session store: session id -> session state. In memory for now; this small
 * interface is the seam where a shared store could later let a client resume on another
 * server instance. Open addressing with linear probing; ids are random, so no hashing
 * beyond a multiply is needed. Not thread-safe: the server's lock guards it.
 */
#ifndef LL_STORE_H
#define LL_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ll_store {
    uint64_t *ids; /* 0 marks an empty slot (0 is never a session id) */
    void **vals;
    size_t cap; /* power of two */
    size_t count;
} ll_store;

/* Insert or replace. 0 or SDK_ENOMEM. id must not be 0. */
int ll_store_put(ll_store *st, uint64_t id, void *val);
void *ll_store_get(const ll_store *st, uint64_t id);
/* Remove and return the value (NULL if absent). */
void *ll_store_del(ll_store *st, uint64_t id);
/* Call fn for every value; fn must not modify the store. */
void ll_store_each(const ll_store *st, void (*fn)(void *val, void *ctx), void *ctx);
void ll_store_free(ll_store *st);

#endif
