/*
 * A cluster: three lifeline-server processes (echo) on three loopback ports sharing one
 * redis-server of the test's own, and one client given all three endpoints (kept in order,
 * so each fault below hits the instance the client is on). The client streams numbered
 * messages from one thread while another takes the echoes and checks that every one
 * arrives exactly once, in order, across:
 *  a. a rolling SIGTERM restart of every instance (store sync handover): the client hears
 *     GOING_AWAY, moves on, and resumes every time (no SESSION_LOST);
 *  b. a SIGKILL of each instance in turn (sync always), each restarted once the client is
 *     back: exact on the client, and on the server side a message taken by two instances'
 *     applications is flagged redelivered at the later one (their --log-messages files);
 *  c. redis-server killed and restarted empty mid-stream (sync always).
 * Prints the time from each SIGKILL to the client resumed elsewhere, and the median
 * client-side interruption of a graceful restart (DISCONNECTED to CONNECTED).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "redis_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define INSTANCES 3
#define LIVES     4 /* per instance: the first start and at most three restarts */

/* ---- the streaming client ---- */

typedef struct stream {
    sdk_client *c;
    ht_events ev;
    pthread_t sender, receiver;
    atomic_bool stop_sending, stop_receiving;
    atomic_uint sent;     /* ids 1..sent are queued */
    atomic_uint received; /* ids 1..received arrived, in order */
    atomic_uint bad;      /* the first id that came out of order or twice (0: none) */
    atomic_int send_err;  /* the first sdk_send failure */
    int burst;            /* messages between 5 ms pauses */
    const char *endpoints[INSTANCES];
} stream;

static void *send_loop(void *arg)
{
    stream *s = arg;
    while (!atomic_load(&s->stop_sending)) {
        for (int k = 0; k < s->burst; k++) {
            uint32_t id = atomic_load(&s->sent) + 1;
            sdk_err rc = sdk_send(s->c, &id, sizeof(id), HT_WAIT_MS);
            if (rc != SDK_OK) {
                atomic_store(&s->send_err, rc);
                return NULL;
            }
            atomic_store(&s->sent, id);
        }
        ht_sleep_ms(5); /* a steady stream (burst 10: about 2000 a second), not a flood */
    }
    return NULL;
}

static void *recv_loop(void *arg)
{
    stream *s = arg;
    while (!atomic_load(&s->stop_receiving)) {
        sdk_message *m = NULL;
        if (sdk_recv(s->c, &m, 100) != SDK_OK) {
            continue;
        }
        uint32_t got = 0;
        if (m->len == sizeof(got)) {
            memcpy(&got, m->data, sizeof(got));
        }
        if (got != atomic_load(&s->received) + 1) {
            unsigned none = 0;
            atomic_compare_exchange_strong(&s->bad, &none, got ? got : UINT32_MAX);
        } else {
            atomic_store(&s->received, got);
        }
        sdk_message_free(m);
    }
    return NULL;
}

static void stream_start(stream *s, char eps[INSTANCES][32], int burst)
{
    memset(s, 0, sizeof(*s));
    s->burst = burst;
    ht_events_init(&s->ev);
    sdk_config cc;
    ht_client_config(&cc, 0);
    cc.host = NULL;
    cc.port = 0;
    for (int i = 0; i < INSTANCES; i++) {
        s->endpoints[i] = eps[i];
    }
    cc.endpoints = s->endpoints;
    cc.endpoint_count = INSTANCES;
    cc.keep_endpoint_order = true;
    cc.reconnect_min_ms = 10;
    cc.reconnect_max_ms = 100;
    ht_events_attach(&s->ev, &cc);
    assert_int_equal(sdk_connect(&cc, &s->c), SDK_OK);
    assert_int_equal(pthread_create(&s->receiver, NULL, recv_loop, s), 0);
    assert_int_equal(pthread_create(&s->sender, NULL, send_loop, s), 0);
}

/* Wait until at least n more echoes arrived: the stream flows. */
static void stream_wait_flowing(stream *s, unsigned n)
{
    unsigned want = atomic_load(&s->received) + n;
    uint64_t deadline = ht_now_ms() + 3 * HT_WAIT_MS;
    while (atomic_load(&s->received) < want && !atomic_load(&s->bad) && ht_now_ms() < deadline) {
        ht_sleep_ms(10);
    }
    assert_int_equal(atomic_load(&s->bad), 0);
    assert_true(atomic_load(&s->received) >= want);
}

/* Stop sending, take every echo, and check nothing more comes; returns how many. */
static unsigned stream_finish(stream *s)
{
    atomic_store(&s->stop_sending, true);
    pthread_join(s->sender, NULL);
    assert_int_equal(atomic_load(&s->send_err), SDK_OK);
    unsigned sent = atomic_load(&s->sent);
    uint64_t deadline = ht_now_ms() + 3 * HT_WAIT_MS;
    while (atomic_load(&s->received) < sent && !atomic_load(&s->bad) && ht_now_ms() < deadline) {
        ht_sleep_ms(10);
    }
    ht_sleep_ms(300); /* room for a late duplicate to show */
    atomic_store(&s->stop_receiving, true);
    pthread_join(s->receiver, NULL);
    if (atomic_load(&s->bad)) {
        fail_msg("echo %u arrived out of order or twice (after %u)", atomic_load(&s->bad), atomic_load(&s->received));
    }
    assert_int_equal(atomic_load(&s->received), sent);
    assert_int_equal(ht_events_count(&s->ev, SDK_EVENT_SESSION_LOST), 0);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(s->c, &st), SDK_OK);
    assert_int_equal(st.sessions_lost, 0);
    /* Every reconnect went to an instance other than the one that issued its ticket, and
     * resumed TLS there: the ticket keys are shared through the store. */
    assert_int_equal(st.handshakes_full, 1);
    assert_int_equal(st.handshakes_resumed, st.reconnects);
    printf("client: %llu reconnects, sessions_lost 0, TLS handshakes %llu full and %llu resumed\n",
           (unsigned long long)st.reconnects, (unsigned long long)st.handshakes_full,
           (unsigned long long)st.handshakes_resumed);
    sdk_close(s->c);
    sdk_destroy(s->c);
    ht_events_free(&s->ev);
    return sent;
}

/* How many events the client recorded so far (the recorder's lock: its thread appends). */
static size_t events_now(stream *s)
{
    pthread_mutex_lock(&s->ev.mu);
    size_t n = s->ev.n;
    pthread_mutex_unlock(&s->ev.mu);
    return n;
}

static size_t current_endpoint(stream *s)
{
    size_t index = SIZE_MAX;
    assert_int_equal(sdk_current_endpoint(s->c, &index, NULL, 0), SDK_OK);
    return index;
}

/* Every CONNECTED after the first resumed the session. */
static void assert_all_resumed(stream *s)
{
    int at = ht_events_wait(&s->ev, SDK_EVENT_CONNECTED, 0, 0, NULL);
    ht_event e;
    while ((at = ht_events_wait(&s->ev, SDK_EVENT_CONNECTED, (size_t)at + 1, 0, &e)) >= 0) {
        assert_true(e.resumed);
    }
}

/* ---- the instances ---- */

typedef struct cluster {
    redis_proc redis;
    ht_proc proc[INSTANCES];
    uint16_t port[INSTANCES];
    int lives[INSTANCES]; /* starts so far */
    bool always;
    char eps[INSTANCES][32];
} cluster;

static void log_path(const cluster *cl, int i, int life, char *out, size_t len)
{
    snprintf(out, len, "%s/inst%d.life%d.log", cl->redis.dir, i, life);
}

/* Start instance i (on its port once it had one), with a log file per life under always. */
static void instance_start(cluster *cl, int i)
{
    char log[300];
    assert_true(cl->lives[i] < LIVES);
    log_path(cl, i, cl->lives[i], log, sizeof(log));
    const char *extra[] = {"--store",
                           cl->redis.url,
                           "--store-sync",
                           cl->always ? "always" : "handover",
                           cl->always ? "--log-messages" : NULL,
                           log,
                           NULL};
    assert_int_equal(ht_proc_start(&cl->proc[i], cl->port[i], extra), 0);
    cl->port[i] = cl->proc[i].port;
    cl->lives[i]++;
    snprintf(cl->eps[i], sizeof(cl->eps[i]), "127.0.0.1:%u", (unsigned)cl->port[i]);
}

static void cluster_start(cluster *cl, bool always)
{
    memset(cl, 0, sizeof(*cl));
    cl->always = always;
    assert_true(redis_proc_start(&cl->redis));
    for (int i = 0; i < INSTANCES; i++) {
        instance_start(cl, i);
    }
}

static void cluster_stop(cluster *cl)
{
    for (int i = 0; i < INSTANCES; i++) {
        ht_proc_stop(&cl->proc[i], SIGTERM);
    }
    redis_proc_stop(&cl->redis);
}

/* The cluster up, and the client streaming through it (burst: see stream). */
static void begin(cluster *cl, stream *s, bool always, int burst)
{
    cluster_start(cl, always);
    stream_start(s, cl->eps, burst);
    stream_wait_flowing(s, 200);
}

/* Wait for a CONNECTED at index >= from; returns its index and time. */
static int wait_connected(stream *s, size_t from, ht_event *out)
{
    int at = ht_events_wait(&s->ev, SDK_EVENT_CONNECTED, from, 3 * HT_WAIT_MS, out);
    assert_true(at >= 0);
    return at;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- a. rolling SIGTERM restart ---- */

static void test_rolling_restart(void **state)
{
    (void)state;
    cluster cl;
    stream s;
    begin(&cl, &s, false, 10);
    uint64_t gap[INSTANCES];
    for (int i = 0; i < INSTANCES; i++) {
        assert_int_equal(current_endpoint(&s), (size_t)i); /* kept order: GOING_AWAY moves on by one */
        size_t from = events_now(&s);
        assert_true(WIFEXITED(ht_proc_stop(&cl.proc[i], SIGTERM)));
        ht_event gone, back;
        int at = ht_events_wait(&s.ev, SDK_EVENT_DISCONNECTED, from, HT_WAIT_MS, &gone);
        assert_true(at >= 0);
        wait_connected(&s, (size_t)at, &back);
        assert_true(back.resumed);
        gap[i] = back.at_ms - gone.at_ms;
        instance_start(&cl, i); /* on its port again before the next one stops */
        stream_wait_flowing(&s, 200);
    }
    assert_all_resumed(&s);
    unsigned n = stream_finish(&s);
    qsort(gap, INSTANCES, sizeof(gap[0]), compare_u64);
    printf("rolling SIGTERM restart of %d instances, sync handover: %u echoes exact; client interruption "
           "(DISCONNECTED to CONNECTED) %llu, %llu, %llu ms, median %llu ms\n",
           INSTANCES, n, (unsigned long long)gap[0], (unsigned long long)gap[1], (unsigned long long)gap[2],
           (unsigned long long)gap[INSTANCES / 2]);
    cluster_stop(&cl);
}

/* ---- b. SIGKILL of each instance in turn ---- */

/* What the applications took, per sequence: how often in total, and per owner in turn. */
typedef struct taken {
    unsigned max_seq;
    uint8_t *count;   /* takings over every life so far */
    uint8_t *flagged; /* flags seen at the current life */
} taken;

/* Fold one life's log into t: none of it twice within the life, and a message an earlier
 * life took comes flagged redelivered. Returns how many came flagged. */
static unsigned fold_log(taken *t, const char *path, bool first_owner)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0; /* this life took nothing */
    }
    uint8_t *here = calloc(t->max_seq + 1, 1);
    assert_non_null(here);
    unsigned long long session, seq;
    unsigned flags, flagged = 0;
    while (fscanf(f, "%llx %llu %u", &session, &seq, &flags) == 3) {
        assert_true(seq >= 1 && seq <= t->max_seq);
        assert_int_equal(here[seq], 0);
        here[seq] = 1;
        if (first_owner) {
            assert_int_equal(flags, 0);
        }
        if (t->count[seq] && !flags) {
            fail_msg("message %llu taken again at %s, unflagged", seq, path);
        }
        t->count[seq]++;
        flagged += flags;
    }
    fclose(f);
    free(here);
    return flagged;
}

static void check_owners(const cluster *cl, const int owner[][2], int owners, unsigned total)
{
    taken t = {total, calloc(total + 1, 1), NULL};
    assert_non_null(t.count);
    unsigned flagged = 0, twice = 0;
    for (int k = 0; k < owners; k++) {
        char path[300];
        log_path(cl, owner[k][0], owner[k][1], path, sizeof(path));
        flagged += fold_log(&t, path, k == 0);
    }
    for (unsigned seq = 1; seq <= total; seq++) {
        assert_true(t.count[seq] >= 1);
        twice += t.count[seq] > 1;
    }
    printf("sigkill, sync always: %u of %u messages reached two applications, all flagged at the later one; "
           "%u came flagged\n",
           twice, total, flagged);
    free(t.count);
}

static void test_sigkill_each(void **state)
{
    (void)state;
    cluster cl;
    stream s;
    begin(&cl, &s, true, 100);   /* messages in flight at each kill: some taken, some stored */
    int owner[INSTANCES + 1][2]; /* instance and life that held the session, in turn */
    uint64_t took[INSTANCES];
    for (int k = 0; k < INSTANCES; k++) {
        int i = (int)current_endpoint(&s);
        owner[k][0] = i;
        owner[k][1] = cl.lives[i] - 1;
        size_t from = events_now(&s);
        uint64_t killed = ht_now_ms();
        assert_true(WIFSIGNALED(ht_proc_stop(&cl.proc[i], SIGKILL)));
        ht_event back;
        wait_connected(&s, from, &back);
        assert_true(back.resumed);
        took[k] = back.at_ms - killed;
        assert_true(current_endpoint(&s) != (size_t)i);
        instance_start(&cl, i);
        stream_wait_flowing(&s, 200);
    }
    int last = (int)current_endpoint(&s);
    owner[INSTANCES][0] = last;
    owner[INSTANCES][1] = cl.lives[last] - 1;
    assert_all_resumed(&s);
    unsigned n = stream_finish(&s);
    cluster_stop(&cl); /* flushes the last logs */
    printf("sigkill each of %d instances, sync always: %u echoes exact; SIGKILL to CONNECTED (resumed) "
           "elsewhere %llu, %llu, %llu ms\n",
           INSTANCES, n, (unsigned long long)took[0], (unsigned long long)took[1], (unsigned long long)took[2]);
    check_owners(&cl, owner, INSTANCES + 1, n);
}

/* ---- c. redis-server killed and restarted empty ---- */

static void test_redis_restart(void **state)
{
    (void)state;
    cluster cl;
    stream s;
    begin(&cl, &s, true, 10);
    redis_proc_kill(&cl.redis);
    ht_sleep_ms(300); /* a stretch of the stream with no store (not an assertion) */
    assert_true(redis_proc_restart(&cl.redis));
    stream_wait_flowing(&s, 400);
    unsigned n = stream_finish(&s);
    printf("redis-server killed and restarted empty mid-stream, sync always: %u echoes exact\n", n);
    cluster_stop(&cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rolling_restart),
        cmocka_unit_test(test_sigkill_each),
        cmocka_unit_test(test_redis_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
