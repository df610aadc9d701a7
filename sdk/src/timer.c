#include "timer.h"

#include "lifeline/sdk.h"

#include <stdlib.h>

static void place(ll_timers *h, size_t i, ll_timer *t)
{
    h->heap[i] = t;
    t->idx = i + 1;
}

static void sift_up(ll_timers *h, size_t i)
{
    ll_timer *t = h->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->heap[parent]->deadline_ms <= t->deadline_ms) {
            break;
        }
        place(h, i, h->heap[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(ll_timers *h, size_t i)
{
    ll_timer *t = h->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count) {
            break;
        }
        if (child + 1 < h->count && h->heap[child + 1]->deadline_ms < h->heap[child]->deadline_ms) {
            child++;
        }
        if (t->deadline_ms <= h->heap[child]->deadline_ms) {
            break;
        }
        place(h, i, h->heap[child]);
        i = child;
    }
    place(h, i, t);
}

int ll_timers_set(ll_timers *h, ll_timer *t, uint64_t deadline_ms)
{
    if (t->idx) {
        uint64_t old = t->deadline_ms;
        t->deadline_ms = deadline_ms;
        if (deadline_ms < old) {
            sift_up(h, t->idx - 1);
        } else {
            sift_down(h, t->idx - 1);
        }
        return 0;
    }
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        ll_timer **heap = realloc(h->heap, cap * sizeof(*heap));
        if (!heap) {
            return SDK_ENOMEM;
        }
        h->heap = heap;
        h->cap = cap;
    }
    t->deadline_ms = deadline_ms;
    h->heap[h->count] = t;
    t->idx = ++h->count;
    sift_up(h, h->count - 1);
    return 0;
}

void ll_timers_cancel(ll_timers *h, ll_timer *t)
{
    if (!t->idx) {
        return;
    }
    size_t i = t->idx - 1;
    t->idx = 0;
    h->count--;
    if (i == h->count) {
        return;
    }
    place(h, i, h->heap[h->count]);
    sift_down(h, i);
    sift_up(h, h->heap[i]->idx - 1);
}

ll_timer *ll_timers_expired(ll_timers *h, uint64_t now_ms)
{
    if (h->count == 0 || h->heap[0]->deadline_ms > now_ms) {
        return NULL;
    }
    ll_timer *t = h->heap[0];
    ll_timers_cancel(h, t);
    return t;
}

uint64_t ll_timers_next(const ll_timers *h)
{
    return h->count ? h->heap[0]->deadline_ms : UINT64_MAX;
}

void ll_timers_free(ll_timers *h)
{
    for (size_t i = 0; i < h->count; i++) {
        h->heap[i]->idx = 0;
    }
    free(h->heap);
    *h = (ll_timers){0};
}
