/*
 * The application's pollable descriptor (sdk_fd, sdk_server_fd): an eventfd, made on the first
 * request, that every wake-up of the object's waiters also signals, so that an event loop can
 * watch one fd instead of parking a thread in a blocking call.
 *
 * Lock-free: the fd is published with a compare-and-swap, so the I/O thread may signal with or
 * without the object's mutex held. Before the first request nothing is signalled and no system
 * call is made: objects nobody polls pay one atomic load per wake-up.
 */
#ifndef LL_NOTIFY_H
#define LL_NOTIFY_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct ll_notify {
    _Atomic int fd; /* -1 until ll_notify_fd made it */
} ll_notify;

void ll_notify_init(ll_notify *n);
/* The descriptor, made on the first call (by whichever thread wins; the loser's is closed).
 * 0, or SDK_EIO when no eventfd could be made (errno says why). */
int ll_notify_fd(ll_notify *n, int *out);
/* Make the descriptor readable, if anyone asked for it. */
void ll_notify_signal(ll_notify *n);
/* pthread_cond_broadcast(cv), then ll_notify_signal: every wake-up of waiters is one for the
 * descriptor's watchers too. */
void ll_notify_broadcast(ll_notify *n, pthread_cond_t *cv);
/* Close the descriptor (when the object is freed: no other thread may use it). */
void ll_notify_free(ll_notify *n);

#endif
