/* Condition-variable waits with deadlines on the monotonic clock. */
#ifndef LL_WAIT_H
#define LL_WAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* A deadline fixed lazily: the clock is read only if the caller actually has to wait, which
 * keeps it off the hot path of calls that find their message or room at once. */
typedef struct ll_deadline {
    int timeout_ms;
    bool fixed;
    struct timespec at; /* CLOCK_MONOTONIC, once fixed */
} ll_deadline;

/* timeout_ms < 0: forever; 0: do not wait; > 0: that long from the first wait. */
ll_deadline ll_deadline_in(int timeout_ms);
/* A condition variable that times out on CLOCK_MONOTONIC (wall-clock jumps do not matter). */
void ll_cond_init(pthread_cond_t *cv);
/* Wait once (spurious wake-ups return 0 too: callers loop on their predicate). Returns
 * 0, or ETIMEDOUT when the deadline has passed. */
int ll_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, ll_deadline *dl);

/* The client or server whose I/O thread this is (NULL on other threads). Its callbacks run
 * there, so calls made from them must never wait for that very thread: they check this. */
extern _Thread_local const void *ll_io_self;
static inline bool ll_on_io_thread(const void *owner)
{
    return ll_io_self == owner;
}

#endif
