/*
 * What an idle client holds: its I/O thread gives back the stack pages a heartbeat's read
 * and write touched every time the connection goes quiet again, not only those of its
 * handshake (lifeline-bench --only memory measures the whole of it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An idle I/O thread runs about 6 KiB below its stack's top (Release, x86-64); a heartbeat
 * reads through a 16 KiB buffer, so what it touched lies deeper than this. */
#define IDLE_DEPTH (16u * 1024)

/* The I/O thread's stack, as a message callback (on that thread) finds it. */
typedef struct stack_seen {
    pthread_mutex_t mu;
    uintptr_t low, high;
} stack_seen;

static void on_message(sdk_message *m, void *user)
{
    stack_seen *s = user;
    pthread_attr_t attr;
    void *low = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &low, &size) == 0) {
            pthread_mutex_lock(&s->mu);
            s->low = (uintptr_t)low;
            s->high = (uintptr_t)low + size;
            pthread_mutex_unlock(&s->mu);
        }
        pthread_attr_destroy(&attr);
    }
    sdk_message_free(m);
}

/* Pages of [low, high) that are resident. */
static size_t resident_pages(uintptr_t low, uintptr_t high)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t n = (high - low) / page;
    unsigned char *vec = calloc(n, 1);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)low, high - low, vec), 0);
    size_t resident = 0;
    for (size_t i = 0; i < n; i++) {
        resident += vec[i] & 1;
    }
    free(vec);
    return resident;
}

static uint64_t heartbeats_answered(sdk_client *c)
{
    sdk_stats st;
    assert_int_equal(sdk_get_stats(c, &st), SDK_OK);
    return st.heartbeats_answered;
}

static void test_stack_trimmed_after_heartbeats(void **state)
{
    ht_server *hs = *state;
    stack_seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sdk_config cfg;
    ht_client_config(&cfg, hs->port);
    cfg.heartbeat_interval_ms = 300; /* a few heartbeats in a second, each a read and a write */
    cfg.on_message = on_message;
    cfg.user = &seen;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_send(c, "x", 1, -1), SDK_OK); /* its echo tells us the stack */
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    uintptr_t low = 0, high = 0;
    while (low == 0 && ht_now_ms() < deadline) {
        pthread_mutex_lock(&seen.mu);
        low = seen.low;
        high = seen.high;
        pthread_mutex_unlock(&seen.mu);
        ht_sleep_ms(5); /* polling what a callback recorded */
    }
    assert_true(low != 0 && high - low > IDLE_DEPTH);
    uint64_t hb = heartbeats_answered(c);
    while (heartbeats_answered(c) < hb + 2 && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
    }
    assert_true(heartbeats_answered(c) >= hb + 2);
    /* Between heartbeats the thread has gone quiet (100 ms without traffic) and trimmed:
     * nothing deeper than an idle loop stays resident. */
    size_t deep = resident_pages(low, high - IDLE_DEPTH);
    while (deep > 0 && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
        deep = resident_pages(low, high - IDLE_DEPTH);
    }
    assert_int_equal(deep, 0);
    sdk_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stack_trimmed_after_heartbeats, ht_setup_echo_server, ht_teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
