#include "wait.h"

#include <errno.h>
#include <time.h>

_Thread_local const void *ll_io_self;

ll_deadline ll_deadline_in(int timeout_ms)
{
    return (ll_deadline){.timeout_ms = timeout_ms};
}

void ll_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

static void fix(ll_deadline *dl)
{
    clock_gettime(CLOCK_MONOTONIC, &dl->at);
    dl->at.tv_sec += dl->timeout_ms / 1000;
    dl->at.tv_nsec += (long)(dl->timeout_ms % 1000) * 1000000L;
    if (dl->at.tv_nsec >= 1000000000L) {
        dl->at.tv_sec++;
        dl->at.tv_nsec -= 1000000000L;
    }
    dl->fixed = true;
}

int ll_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, ll_deadline *dl)
{
    if (dl->timeout_ms == 0) {
        return ETIMEDOUT;
    }
    if (dl->timeout_ms < 0) {
        return pthread_cond_wait(cv, mu);
    }
    if (!dl->fixed) {
        fix(dl);
    }
    return pthread_cond_timedwait(cv, mu, &dl->at);
}
