/*
 * What an idle client holds: its I/O thread gives back the stack pages a heartbeat's read
 * and write touched every time the connection goes quiet again, not only those of its
 * handshake (lifeline-bench --only memory measures the whole of it); what it gives back
 * when quiet (the received messages' block among them) leaves the messages the application
 * holds intact; and sdk_connect's first connection is made on the calling thread, so the
 * I/O thread never runs a handshake it would keep the memory of.
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
     * nothing deeper than an idle loop stays resident. Not under ThreadSanitizer: its
     * runtime keeps the thread's stack resident far deeper (800 KiB seen), trimmed or not. */
#if defined(__SANITIZE_THREAD__)
    sdk_destroy(c);
    return;
#endif
    size_t deep = resident_pages(low, high - IDLE_DEPTH);
    while (deep > 0 && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
        deep = resident_pages(low, high - IDLE_DEPTH);
    }
    assert_int_equal(deep, 0);
    sdk_destroy(c);
}

/* Messages taken before the client went quiet (and gave back the block they were carved
 * from) are still whole afterwards; AddressSanitizer would see a block freed under them. */
static void test_messages_outlive_quiet(void **state)
{
    ht_server *hs = *state;
    sdk_config cfg;
    ht_client_config(&cfg, hs->port);
    cfg.heartbeat_interval_ms = 300;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    enum { N = 8, LEN = 1000 };
    uint8_t buf[LEN];
    for (uint32_t i = 0; i < N; i++) {
        ht_fill(buf, sizeof(buf), i);
        assert_int_equal(sdk_send(c, buf, sizeof(buf), -1), SDK_OK);
    }
    sdk_message *m[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(sdk_recv(c, &m[i], HT_WAIT_MS), SDK_OK);
    }
    uint64_t hb = heartbeats_answered(c), deadline = ht_now_ms() + HT_WAIT_MS;
    while (heartbeats_answered(c) < hb + 2 && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
    }
    assert_true(heartbeats_answered(c) >= hb + 2); /* quiet at least twice in between */
    for (uint32_t i = 0; i < N; i++) {
        assert_int_equal(m[i]->len, LEN);
        assert_true(ht_check(m[i]->data, m[i]->len, i));
        sdk_message_free(m[i]);
    }
    sdk_destroy(c);
}

/* Which thread each event ran on. */
typedef struct threads_seen {
    pthread_mutex_t mu;
    pthread_t on[SDK_EVENT_CLOSED + 1];
    bool seen[SDK_EVENT_CLOSED + 1];
} threads_seen;

static void on_event(const sdk_event *ev, void *user)
{
    threads_seen *t = user;
    pthread_mutex_lock(&t->mu);
    if (ev->type >= 0 && ev->type <= SDK_EVENT_CLOSED && !t->seen[ev->type]) {
        t->on[ev->type] = pthread_self();
        t->seen[ev->type] = true;
    }
    pthread_mutex_unlock(&t->mu);
}

static void test_first_connect_on_callers_thread(void **state)
{
    ht_server *hs = *state;
    threads_seen t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sdk_config cfg;
    ht_client_config(&cfg, hs->port);
    cfg.on_event = on_event;
    cfg.user = &t;
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_get_state(c), SDK_STATE_CONNECTED);
    assert_int_equal(sdk_send(c, "x", 1, -1), SDK_OK); /* the I/O thread carries it on */
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    sdk_message_free(m);
    assert_int_equal(sdk_close(c), SDK_OK);
    pthread_mutex_lock(&t.mu);
    assert_true(t.seen[SDK_EVENT_CONNECTING] && t.seen[SDK_EVENT_CONNECTED] && t.seen[SDK_EVENT_CLOSED]);
    assert_true(pthread_equal(t.on[SDK_EVENT_CONNECTING], pthread_self()));
    assert_true(pthread_equal(t.on[SDK_EVENT_CONNECTED], pthread_self()));
    assert_false(pthread_equal(t.on[SDK_EVENT_CLOSED], pthread_self())); /* the I/O thread's */
    pthread_mutex_unlock(&t.mu);
    sdk_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stack_trimmed_after_heartbeats, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_messages_outlive_quiet, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_first_connect_on_callers_thread, ht_setup_echo_server, ht_teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
