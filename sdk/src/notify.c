/* The application's pollable descriptor (notify.h). */
#include "notify.h"

#include "ll.h"
#include "net.h"

#include <unistd.h>

void ll_notify_init(ll_notify *n)
{
    atomic_init(&n->fd, -1);
}

int ll_notify_fd(ll_notify *n, int *out)
{
    int fd = atomic_load(&n->fd);
    if (fd < 0) {
        int made = -1;
        LL_GUARD(ll_wake_open(&made));
        int expected = -1;
        if (atomic_compare_exchange_strong(&n->fd, &expected, made)) {
            fd = made;
        } else {
            close(made); /* another thread published one first */
            fd = expected;
        }
    }
    *out = fd;
    return 0;
}

void ll_notify_signal(ll_notify *n)
{
    int fd = atomic_load(&n->fd);
    if (fd >= 0) {
        ll_wake_signal(fd);
    }
}

void ll_notify_broadcast(ll_notify *n, pthread_cond_t *cv)
{
    pthread_cond_broadcast(cv);
    ll_notify_signal(n);
}

void ll_notify_free(ll_notify *n)
{
    int fd = atomic_exchange(&n->fd, -1);
    if (fd >= 0) {
        close(fd);
    }
}
