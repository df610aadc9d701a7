/*
 * The client event recorder: an sdk_config.on_event callback that takes the time of each
 * event on the client's I/O thread, counts what the figures need, and wakes a measuring
 * thread only for the event it waits for.
 */
#include "bench.h"

#include <lifeline/sdk.h>

#include <string.h>
#include <time.h>

#define WAIT_MS 10000

void bench_on_event(const sdk_event *ev, void *user)
{
    bench_events *e = user;
    uint64_t now = bench_now_ns();
    const unsigned *changed = NULL;
    pthread_mutex_lock(&e->mu);
    switch (ev->type) {
    case SDK_EVENT_CONNECTING:
        e->t.connecting_ns = now;
        break;
    case SDK_EVENT_CONNECTED:
        e->t.connected++;
        e->t.resumed += ev->resumed;
        e->t.last_resumed = ev->resumed;
        e->t.connected_ns = now;
        e->t.attempt_ns = e->t.connecting_ns;
        changed = &e->t.connected;
        break;
    case SDK_EVENT_SESSION_LOST:
        e->t.lost++;
        changed = &e->t.lost;
        break;
    case SDK_EVENT_DISCONNECTED:
        e->t.disconnected++;
        e->t.disconnected_ns = now;
        changed = &e->t.disconnected;
        break;
    default:
        break;
    }
    /* Wake the waiting thread only for what it waits for. Woken by every event (DISCONNECTED,
     * RECONNECTING, CONNECTING), on 2 cores it took the CPU from the client's I/O thread in
     * the middle of the reconnect being timed, each time. */
    if (changed != NULL && changed == e->awaited) {
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
}

void bench_events_init(bench_events *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
}

void bench_events_free(bench_events *e)
{
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
}

bool bench_events_wait(bench_events *e, const unsigned *counter, unsigned before)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    e->awaited = counter;
    while (*counter <= before && rc == 0) {
        rc = pthread_cond_timedwait(&e->cv, &e->mu, &deadline);
    }
    e->awaited = NULL;
    bool ok = *counter > before;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

bench_event_times bench_events_snapshot(bench_events *e)
{
    pthread_mutex_lock(&e->mu);
    bench_event_times copy = e->t;
    pthread_mutex_unlock(&e->mu);
    return copy;
}
