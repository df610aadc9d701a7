#include "store.h"

#include "lifeline/sdk.h"

#include <stdlib.h>

static size_t slot_of(const ll_store *st, uint64_t id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 17) & (st->cap - 1);
}

/* Index of id, or of the empty slot where it would go. */
static size_t find(const ll_store *st, uint64_t id)
{
    size_t i = slot_of(st, id);
    while (st->ids[i] != 0 && st->ids[i] != id) {
        i = (i + 1) & (st->cap - 1);
    }
    return i;
}

static int grow(ll_store *st)
{
    ll_store bigger = {.cap = st->cap ? st->cap * 2 : 64};
    bigger.ids = calloc(bigger.cap, sizeof(*bigger.ids));
    bigger.vals = calloc(bigger.cap, sizeof(*bigger.vals));
    if (!bigger.ids || !bigger.vals) {
        free(bigger.ids);
        free(bigger.vals);
        return SDK_ENOMEM;
    }
    for (size_t i = 0; i < st->cap; i++) {
        if (st->ids[i]) {
            size_t j = find(&bigger, st->ids[i]);
            bigger.ids[j] = st->ids[i];
            bigger.vals[j] = st->vals[i];
            bigger.count++;
        }
    }
    ll_store_free(st);
    *st = bigger;
    return 0;
}

int ll_store_put(ll_store *st, uint64_t id, void *val)
{
    /* Keep the load under 1/2 so probes stay short. */
    if ((st->count + 1) * 2 > st->cap && grow(st) != 0) {
        return SDK_ENOMEM;
    }
    size_t i = find(st, id);
    if (st->ids[i] == 0) {
        st->ids[i] = id;
        st->count++;
    }
    st->vals[i] = val;
    return 0;
}

void *ll_store_get(const ll_store *st, uint64_t id)
{
    if (st->cap == 0 || id == 0) {
        return NULL;
    }
    size_t i = find(st, id);
    return st->ids[i] ? st->vals[i] : NULL;
}

void *ll_store_del(ll_store *st, uint64_t id)
{
    if (st->cap == 0 || id == 0) {
        return NULL;
    }
    size_t i = find(st, id);
    if (st->ids[i] == 0) {
        return NULL;
    }
    void *val = st->vals[i];
    st->ids[i] = 0;
    st->count--;
    /* Backward-shift deletion: re-place the rest of the probe run so lookups never stop
     * early at the hole. */
    for (size_t j = (i + 1) & (st->cap - 1); st->ids[j] != 0; j = (j + 1) & (st->cap - 1)) {
        uint64_t moved = st->ids[j];
        void *moved_val = st->vals[j];
        st->ids[j] = 0;
        size_t k = find(st, moved);
        st->ids[k] = moved;
        st->vals[k] = moved_val;
    }
    return val;
}

void ll_store_each(const ll_store *st, void (*fn)(void *val, void *ctx), void *ctx)
{
    for (size_t i = 0; i < st->cap; i++) {
        if (st->ids[i]) {
            fn(st->vals[i], ctx);
        }
    }
}

void ll_store_free(ll_store *st)
{
    free(st->ids);
    free(st->vals);
    *st = (ll_store){0};
}
