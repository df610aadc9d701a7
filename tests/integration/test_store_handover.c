/*
 * Sessions handed over through a session store (lifeline/store.h): server A, started with a
 * store, has a client mid-conversation in both directions (some messages taken, some
 * waiting, some not yet written) when it stops; server B, started on the same port with the
 * same store, resumes the session: the client reports resumed=true, the session keeps its
 * id, and every message in both directions arrives exactly once, in order. Run with the
 * memory store (one handle shared by both servers) and with a real redis-server of the
 * test's own (a handle each, as two processes would have). Then across processes: two
 * lifeline-server --store redis://... in turn, the first stopped by SIGTERM under a client
 * whose echoes are still in flight, every echo arriving exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "redis_proc.h"

#include <lifeline/store.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#define N 40 /* messages each way before the stop; as many after */

static void send_ids(sdk_client *c, sdk_server *srv, uint64_t session, uint32_t from, uint32_t to)
{
    for (uint32_t id = from; id <= to; id++) {
        sdk_err rc = c ? sdk_send(c, &id, sizeof(id), HT_WAIT_MS) : sdk_server_send(srv, session, &id, sizeof(id), 0);
        assert_int_equal(rc, SDK_OK);
    }
}

/* Take ids from..to, exactly these, in order, from the client (c) or the server (srv). */
static uint64_t expect_ids(sdk_client *c, sdk_server *srv, uint32_t from, uint32_t to)
{
    uint64_t session = 0;
    for (uint32_t want = from; want <= to; want++) {
        sdk_message *m = NULL;
        sdk_err rc = c ? sdk_recv(c, &m, HT_WAIT_MS) : sdk_server_recv(srv, &m, HT_WAIT_MS);
        if (rc != SDK_OK) {
            fail_msg("waiting for %s message %u: %s", c ? "client" : "server", want, sdk_errname(rc));
        }
        uint32_t got;
        assert_int_equal(m->len, sizeof(got));
        memcpy(&got, m->data, sizeof(got));
        assert_int_equal(got, want);
        session = m->session;
        sdk_message_free(m);
    }
    return session;
}

/* A client of the server at port that reconnects at once (10..100 ms), its events in ev. */
static sdk_client *fast_client(uint16_t port, ht_events *ev)
{
    ht_events_init(ev);
    sdk_config cc;
    ht_client_config(&cc, port);
    cc.reconnect_min_ms = 10;
    cc.reconnect_max_ms = 100;
    ht_events_attach(ev, &cc);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cc, &c), SDK_OK);
    return c;
}

static void expect_nothing_more(sdk_client *c, sdk_server *srv)
{
    sdk_message *m = NULL;
    assert_int_equal(c ? sdk_recv(c, &m, 200) : sdk_server_recv(srv, &m, 200), SDK_ETIMEDOUT);
}

static sdk_store_sync sync_mode; /* of the servers start_on starts */
static const sdk_store_sync HANDOVER = SDK_STORE_SYNC_HANDOVER, ALWAYS = SDK_STORE_SYNC_ALWAYS;

static sdk_server *start_on(sdk_store *store, const char *listen)
{
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.listen = listen;
    cfg.store = store;
    cfg.store_sync = sync_mode;
    sdk_server *srv = NULL;
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    sdk_err rc;
    /* The port A just freed may be refused for a moment. */
    while ((rc = sdk_server_start(&cfg, &srv)) == SDK_ELISTEN && ht_now_ms() < deadline) {
        ht_sleep_ms(20);
    }
    assert_int_equal(rc, SDK_OK);
    return srv;
}

static void handover(sdk_store *store_a, sdk_store *store_b)
{
    sdk_server *a = start_on(store_a, "127.0.0.1:0");
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)sdk_server_port(a));

    ht_events ev;
    sdk_client *c = fast_client(sdk_server_port(a), &ev);

    /* Mid-conversation: A took half of what the client sent, and the client took half of
     * what A sent; the rest is in queues and windows on both sides. */
    send_ids(c, NULL, 0, 1, N);
    uint64_t session = expect_ids(NULL, a, 1, N / 2);
    send_ids(NULL, a, session, 1, N);
    expect_ids(c, NULL, 1, N / 2);

    assert_int_equal(sdk_server_stop(a), SDK_OK);
    sdk_server *b = start_on(store_b, listen);
    ht_event connected;
    int first = ht_events_wait(&ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(first >= 0);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)first + 1, HT_WAIT_MS, &connected) > first);
    assert_true(connected.resumed);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_SESSION_LOST), 0);

    /* Nothing lost, nothing twice, on the same session. */
    assert_int_equal(expect_ids(NULL, b, N / 2 + 1, N), session);
    expect_ids(c, NULL, N / 2 + 1, N);
    send_ids(c, NULL, 0, N + 1, 2 * N);
    send_ids(NULL, b, session, N + 1, 2 * N);
    assert_int_equal(expect_ids(NULL, b, N + 1, 2 * N), session);
    expect_ids(c, NULL, N + 1, 2 * N);
    expect_nothing_more(c, NULL);
    expect_nothing_more(NULL, b);

    sdk_close(c);
    sdk_destroy(c);
    sdk_server_destroy(b);
    sdk_server_destroy(a);
    ht_events_free(&ev);
}

/* state: the sync mode (a prestate of the table in main). */
static void test_memory_store(void **state)
{
    sync_mode = *(const sdk_store_sync *)*state;
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open("memory:", 0, &st), SDK_OK);
    handover(st, st);
    sdk_store_close(st);
}

static void test_redis_store(void **state)
{
    sync_mode = *(const sdk_store_sync *)*state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    sdk_store *sa = NULL, *sb = NULL;
    assert_int_equal(sdk_store_open(redis.url, 0, &sa), SDK_OK);
    assert_int_equal(sdk_store_open(redis.url, 0, &sb), SDK_OK);
    handover(sa, sb);
    sdk_store_close(sa);
    sdk_store_close(sb);
    redis_proc_stop(&redis);
}

/* lifeline-server A echoes; SIGTERM; lifeline-server B on the same port and store. */
static void test_lifeline_server_failover(void **state)
{
    (void)state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    const char *extra[] = {"--store", redis.url, NULL};
    ht_proc a = {0}, b = {0};
    assert_int_equal(ht_proc_start(&a, 0, extra), 0);

    ht_events ev;
    sdk_client *c = fast_client(a.port, &ev);
    send_ids(c, NULL, 0, 1, 4 * N);
    expect_ids(c, NULL, 1, N); /* the rest in flight when A stops */

    assert_true(WIFEXITED(ht_proc_stop(&a, SIGTERM)));
    assert_int_equal(ht_proc_start(&b, a.port, extra), 0);
    expect_ids(c, NULL, N + 1, 4 * N);
    ht_event connected;
    int first = ht_events_wait(&ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)first + 1, HT_WAIT_MS, &connected) > first);
    assert_true(connected.resumed);
    send_ids(c, NULL, 0, 4 * N + 1, 5 * N);
    expect_ids(c, NULL, 4 * N + 1, 5 * N);
    expect_nothing_more(c, NULL);

    sdk_close(c);
    sdk_destroy(c);
    ht_proc_stop(&b, SIGTERM);
    ht_events_free(&ev);
    redis_proc_stop(&redis);
}

/* One exchange of ids from..to both ways on a live session. */
static void exchange(sdk_client *c, sdk_server *srv, uint64_t session, uint32_t from, uint32_t to)
{
    send_ids(c, NULL, 0, from, to);
    send_ids(NULL, srv, session, from, to);
    assert_int_equal(expect_ids(NULL, srv, from, to), session);
    expect_ids(c, NULL, from, to);
}

/* The store unreachable (Redis frozen by SIGSTOP: every call times out), then gone and back
 * empty (SIGKILL, restart). Under sync always nothing reaches either application while the
 * store cannot hold it, and all of it once it can; under handover messages keep flowing.
 * The connection survives both (the I/O thread never waits on the store), and every message
 * arrives exactly once, in order. */
static void test_redis_outage(void **state)
{
    sdk_store_sync mode = *(const sdk_store_sync *)*state;
    sync_mode = mode;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open(redis.url, 300, &st), SDK_OK);
    sdk_server *srv = start_on(st, "127.0.0.1:0");
    ht_events ev;
    ht_events_init(&ev);
    sdk_config cc;
    ht_client_config(&cc, sdk_server_port(srv));
    ht_events_attach(&ev, &cc);
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cc, &c), SDK_OK);
    send_ids(c, NULL, 0, 1, N);
    uint64_t session = expect_ids(NULL, srv, 1, N);
    send_ids(NULL, srv, session, 1, N);
    expect_ids(c, NULL, 1, N);

    kill(redis.pid, SIGSTOP);
    if (mode == SDK_STORE_SYNC_ALWAYS) {
        send_ids(c, NULL, 0, N + 1, 2 * N);
        send_ids(NULL, srv, session, N + 1, 2 * N);
        ht_sleep_ms(800); /* two timeouts and a backoff */
        expect_nothing_more(c, NULL);
        expect_nothing_more(NULL, srv);
        char why[256];
        uint64_t failures = 0;
        assert_int_equal(sdk_server_store_status(srv, why, sizeof(why), &failures), SDK_ETIMEDOUT);
        assert_true(failures >= 1 && strstr(why, "no answer within 300 ms") != NULL);
        kill(redis.pid, SIGCONT);
        assert_int_equal(expect_ids(NULL, srv, N + 1, 2 * N), session);
        expect_ids(c, NULL, N + 1, 2 * N);
        assert_int_equal(sdk_server_store_status(srv, why, sizeof(why), NULL), SDK_OK);
        assert_string_equal(why, "");
    } else {
        exchange(c, srv, session, N + 1, 2 * N);
        kill(redis.pid, SIGCONT);
    }
    redis_proc_kill(&redis);
    assert_true(redis_proc_restart(&redis)); /* empty: the session's record is gone */
    exchange(c, srv, session, 2 * N + 1, 3 * N);
    expect_nothing_more(c, NULL);
    expect_nothing_more(NULL, srv);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_DISCONNECTED), 0);

    sdk_close(c);
    sdk_destroy(c);
    sdk_server_destroy(srv);
    sdk_store_close(st);
    ht_events_free(&ev);
    redis_proc_stop(&redis);
}

/* What a --log-messages file says the application took: per sequence (1..max) how often,
 * and whether flagged redelivered. */
typedef struct taken {
    uint8_t count[8 * N + 1];
    uint8_t flagged[8 * N + 1];
} taken;

static void read_log(const char *path, taken *t)
{
    memset(t, 0, sizeof(*t));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long long session, seq;
    unsigned flags;
    while (fscanf(f, "%llx %llu %u", &session, &seq, &flags) == 3) {
        assert_true(seq >= 1 && seq <= 8 * N);
        t->count[seq]++;
        t->flagged[seq] |= (uint8_t)flags;
    }
    fclose(f);
}

/* Across a SIGKILL: every message reached an application at least once; the ones both took
 * are flagged at B, and the flagged ones are the first B took (what A's store record says
 * it had received: taken by A's application or queued for it); neither took one twice.
 * Returns how many B got flagged. */
static int check_taken(const char *log_a, const char *log_b, uint32_t total)
{
    static taken a, b;
    read_log(log_a, &a);
    read_log(log_b, &b);
    int flagged = 0;
    uint32_t first_b = 0; /* flags mark where B began, and only a run from there */
    for (uint32_t seq = 1; seq <= total; seq++) {
        first_b = first_b ? first_b : b.count[seq] ? seq : 0;
        if (b.flagged[seq] && seq != first_b + (uint32_t)flagged) {
            fail_msg("message %u flagged outside the run that starts B's deliveries at %u", seq, first_b);
        }
        assert_true(a.count[seq] + b.count[seq] >= 1);
        assert_true(a.count[seq] <= 1 && b.count[seq] <= 1);
        assert_int_equal(a.flagged[seq], 0); /* A was the first owner */
        if (a.count[seq] && b.count[seq] && !b.flagged[seq]) {
            fail_msg("message %u reached both applications, unflagged at B", seq);
        }
        flagged += b.flagged[seq];
    }
    return flagged;
}

/* Sync always: lifeline-server A echoes under a client streaming ids; SIGKILL mid-stream;
 * B on the same port and store. Every echo arrives exactly once, in order, on the same
 * session; a message both applications took arrives flagged at B. */
static void test_lifeline_server_sigkill_always(void **state)
{
    (void)state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    char log_a[300], log_b[300];
    snprintf(log_a, sizeof(log_a), "%s/a.log", redis.dir);
    snprintf(log_b, sizeof(log_b), "%s/b.log", redis.dir);
    const char *extra_a[] = {"--store", redis.url, "--store-sync", "always", "--log-messages", log_a, NULL};
    const char *extra_b[] = {"--store", redis.url, "--store-sync", "always", "--log-messages", log_b, NULL};
    ht_proc a = {0}, b = {0};
    assert_int_equal(ht_proc_start(&a, 0, extra_a), 0);

    ht_events ev;
    sdk_client *c = fast_client(a.port, &ev);
    send_ids(c, NULL, 0, 1, 8 * N);
    expect_ids(c, NULL, 1, N); /* the rest in flight, some taken, some stored, when A dies */

    assert_true(WIFSIGNALED(ht_proc_stop(&a, SIGKILL)));
    assert_int_equal(ht_proc_start(&b, a.port, extra_b), 0);
    expect_ids(c, NULL, N + 1, 8 * N);
    expect_nothing_more(c, NULL);
    ht_event connected;
    int first = ht_events_wait(&ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(ht_events_wait(&ev, SDK_EVENT_CONNECTED, (size_t)first + 1, HT_WAIT_MS, &connected) > first);
    assert_true(connected.resumed);
    assert_int_equal(ht_events_count(&ev, SDK_EVENT_SESSION_LOST), 0);
    int flagged = check_taken(log_a, log_b, 8 * N);
    printf("sigkill, sync always: %d of %d messages came again to B flagged as redelivered\n", flagged, 8 * N);

    sdk_close(c);
    sdk_destroy(c);
    ht_proc_stop(&b, SIGTERM);
    ht_events_free(&ev);
    redis_proc_stop(&redis);
}

/* A test run with sync mode `mode` as its state, named for it. */
#define IN_MODE(fn, mode)                                      \
    {                                                          \
#fn " (sync " #mode ")", fn, NULL, NULL, (void *)&mode \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        IN_MODE(test_memory_store, HANDOVER),
        IN_MODE(test_redis_store, HANDOVER),
        IN_MODE(test_memory_store, ALWAYS),
        IN_MODE(test_redis_store, ALWAYS),
        IN_MODE(test_redis_outage, ALWAYS),
        IN_MODE(test_redis_outage, HANDOVER),
        cmocka_unit_test(test_lifeline_server_failover),
        cmocka_unit_test(test_lifeline_server_sigkill_always),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
