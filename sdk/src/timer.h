/* Deadlines kept in a binary min-heap with back-indices: add, move and remove are
 * O(log n) and finding the next expiry is O(1), so nothing scans every client per tick.
 * Embed an ll_timer in the object it times; recover the object with container_of. */
#ifndef LL_TIMER_H
#define LL_TIMER_H

#include <stddef.h>
#include <stdint.h>

typedef struct ll_timer {
    uint64_t deadline_ms;
    size_t idx; /* position in the heap + 1; 0 when not armed */
} ll_timer;

typedef struct ll_timers {
    ll_timer **heap;
    size_t count;
    size_t cap;
} ll_timers;

/* Arm t at deadline (or move it if armed). 0 or SDK_ENOMEM. */
int ll_timers_set(ll_timers *h, ll_timer *t, uint64_t deadline_ms);
void ll_timers_cancel(ll_timers *h, ll_timer *t);
/* The earliest armed timer if its deadline is <= now (disarmed and returned), else NULL. */
ll_timer *ll_timers_expired(ll_timers *h, uint64_t now_ms);
/* Earliest deadline, or UINT64_MAX when none is armed. */
uint64_t ll_timers_next(const ll_timers *h);
void ll_timers_free(ll_timers *h);

#define ll_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
