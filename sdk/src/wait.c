#include "wait.h"

#include <errno.h>
#include <time.h>

ll_deadline ll_deadline_in(int timeout_ms)
{
    ll_deadline dl = {.forever = timeout_ms < 0, .immediate = timeout_ms == 0};
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &dl.at);
        dl.at.tv_sec += timeout_ms / 1000;
        dl.at.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.at.tv_nsec >= 1000000000L) {
            dl.at.tv_sec++;
            dl.at.tv_nsec -= 1000000000L;
        }
    }
    return dl;
}

void ll_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

int ll_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const ll_deadline *dl)
{
    if (dl->immediate) {
        return ETIMEDOUT;
    }
    if (dl->forever) {
        return pthread_cond_wait(cv, mu);
    }
    return pthread_cond_timedwait(cv, mu, &dl->at);
}
