/*
 * The lame-duck window (sdk_server_config.lame_duck_ms): server A, with a store shared with
 * server B, is closed under K clients that were given both endpoints (A first). A tells them
 * GOING_AWAY one by one over the window, and serves the ones not yet told meanwhile; each
 * resumes its session on B. Checked: the clients left A spread over the window (not all at
 * once), A still took messages after the first client was told, every client resumed
 * (resumed=true, no SESSION_LOST), and every message in both directions arrived exactly
 * once and in order. In both sync modes, over the memory store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <lifeline/store.h>

#include <stdio.h>
#include <string.h>

#define K       4   /* clients */
#define N       20  /* messages each way before the stop */
#define M       40  /* messages each client sends during and after the window, one per tick */
#define WINDOW  600 /* ms */
#define TICK_MS 20

typedef struct client {
    sdk_client *c;
    ht_events ev;
    uint64_t session;
    uint32_t sent;  /* ids sent so far (1..sent) */
    uint32_t taken; /* ids the servers took so far, in order */
} client;

typedef struct fleet {
    sdk_server *a, *b;
    char eps[2][32];
    const char *ep[2];
    client cl[K];
    uint64_t close_at;    /* when sdk_server_close(a) began */
    uint64_t a_last_take; /* when A last handed a message over */
    bool a_closed;
} fleet;

static sdk_server *start(sdk_store *st, sdk_store_sync mode, uint32_t lame_duck_ms)
{
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.store = st;
    cfg.store_sync = mode;
    cfg.lame_duck_ms = lame_duck_ms;
    sdk_server *srv = NULL;
    assert_int_equal(sdk_server_start(&cfg, &srv), SDK_OK);
    return srv;
}

static void connect_all(fleet *f)
{
    for (int i = 0; i < 2; i++) {
        snprintf(f->eps[i], sizeof(f->eps[i]), "127.0.0.1:%u", (unsigned)sdk_server_port(i ? f->b : f->a));
        f->ep[i] = f->eps[i];
    }
    for (int i = 0; i < K; i++) {
        sdk_config cc;
        sdk_config_init(&cc);
        cc.endpoints = f->ep;
        cc.endpoint_count = 2;
        cc.keep_endpoint_order = true; /* everyone on A first */
        cc.ca_file = ht_certs_get()->ca;
        cc.reconnect_min_ms = 10;
        cc.reconnect_max_ms = 100;
        ht_events_init(&f->cl[i].ev);
        ht_events_attach(&f->cl[i].ev, &cc);
        assert_int_equal(sdk_connect(&cc, &f->cl[i].c), SDK_OK);
    }
}

/* A client's message: its index and its sequence, so that each server can check both. */
typedef struct payload {
    uint32_t client;
    uint32_t seq;
} payload;

/* One message taken by a server: its client's next sequence, exactly, on its one session. */
static void check_taken(fleet *f, const sdk_message *m, bool from_a)
{
    payload p;
    assert_int_equal(m->len, sizeof(p));
    memcpy(&p, m->data, sizeof(p));
    assert_true(p.client < K);
    client *cl = &f->cl[p.client];
    if (p.seq != cl->taken + 1) {
        fail_msg("client %u: took %u after %u (from %s)", p.client, p.seq, cl->taken, from_a ? "A" : "B");
    }
    if (cl->session == 0) {
        cl->session = m->session;
    }
    assert_int_equal(m->session, cl->session); /* resumed on B: the same session */
    cl->taken = p.seq;
    if (from_a) {
        f->a_last_take = ht_now_ms();
    }
}

/* Take whatever the servers have now. */
static void take_available(fleet *f)
{
    for (int s = f->a_closed ? 1 : 0; s < 2; s++) {
        sdk_message *m = NULL;
        sdk_err rc;
        while ((rc = sdk_server_recv(s ? f->b : f->a, &m, 0)) == SDK_OK) {
            check_taken(f, m, s == 0);
            sdk_message_free(m);
        }
        if (s == 0 && rc == SDK_ECLOSED) {
            f->a_closed = true;
        } else {
            assert_int_equal(rc, SDK_ETIMEDOUT);
        }
    }
}

static void send_next(client *cl, uint32_t index)
{
    payload p = {.client = index, .seq = ++cl->sent};
    assert_int_equal(sdk_send(cl->c, &p, sizeof(p), HT_WAIT_MS), SDK_OK);
}

/* Ids from..to, exactly these, in order, at client cl. */
static void client_expects(client *cl, uint32_t from, uint32_t to)
{
    for (uint32_t want = from; want <= to; want++) {
        sdk_message *m = NULL;
        sdk_err rc = sdk_recv(cl->c, &m, HT_WAIT_MS);
        if (rc != SDK_OK) {
            fail_msg("waiting for server message %u: %s", want, sdk_errname(rc));
        }
        uint32_t got;
        assert_int_equal(m->len, sizeof(got));
        memcpy(&got, m->data, sizeof(got));
        assert_int_equal(got, want);
        sdk_message_free(m);
    }
}

/* Before the stop: N each way, the clients taking half of theirs (the rest in flight). */
static void converse(fleet *f)
{
    for (uint32_t i = 0; i < K; i++) {
        for (int n = 0; n < N; n++) {
            send_next(&f->cl[i], i);
        }
    }
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    bool all = false;
    while (!all && ht_now_ms() < deadline) {
        take_available(f);
        all = true;
        for (int i = 0; i < K; i++) {
            all &= f->cl[i].taken == N;
        }
        ht_sleep_ms(all ? 0 : 5);
    }
    assert_true(all);
    for (uint32_t i = 0; i < K; i++) {
        for (uint32_t id = 1; id <= N; id++) {
            assert_int_equal(sdk_server_send(f->a, f->cl[i].session, &id, sizeof(id), 0), SDK_OK);
        }
        client_expects(&f->cl[i], 1, N / 2);
    }
}

static void *close_a(void *arg)
{
    fleet *f = arg;
    assert_int_equal(sdk_server_close(f->a), SDK_OK);
    return NULL;
}

/* During and after the window: each client sends one message a tick; the servers' takes. */
static void stream_through_close(fleet *f)
{
    pthread_t closer;
    f->close_at = ht_now_ms();
    assert_int_equal(pthread_create(&closer, NULL, close_a, f), 0);
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    bool done = false;
    while (!done && ht_now_ms() < deadline) {
        done = true;
        for (uint32_t i = 0; i < K; i++) {
            if (f->cl[i].sent < N + M) {
                send_next(&f->cl[i], i);
            }
            take_available(f);
            done &= f->cl[i].taken == N + M;
        }
        ht_sleep_ms(TICK_MS);
    }
    pthread_join(closer, NULL);
    assert_true(done);
}

/* Each client left A once, resumed on B, and the departures spread over the window. */
static void check_departures(fleet *f)
{
    uint64_t first = UINT64_MAX, last = 0;
    for (int i = 0; i < K; i++) {
        ht_event left, back;
        int at = ht_events_wait(&f->cl[i].ev, SDK_EVENT_DISCONNECTED, 0, HT_WAIT_MS, &left);
        assert_true(at >= 0);
        assert_true(ht_events_wait(&f->cl[i].ev, SDK_EVENT_CONNECTED, (size_t)at, HT_WAIT_MS, &back) > at);
        assert_true(back.resumed);
        assert_int_equal(ht_events_count(&f->cl[i].ev, SDK_EVENT_SESSION_LOST), 0);
        assert_int_equal(ht_events_count(&f->cl[i].ev, SDK_EVENT_DISCONNECTED), 1);
        first = left.at_ms < first ? left.at_ms : first;
        last = left.at_ms > last ? left.at_ms : last;
    }
    /* K clients at 0, W/K, 2W/K, ...: the last leaves (K-1)/K of the window after the first */
    printf("departures over %llu ms of a %u ms window; A took its last message %llu ms into it\n",
           (unsigned long long)(last - first), WINDOW, (unsigned long long)(f->a_last_take - f->close_at));
    assert_true(last - first >= WINDOW / 2);
    assert_true(last - first <= WINDOW + 500);
    assert_true(f->a_last_take >= f->close_at + WINDOW / 2); /* A served the others meanwhile */
}

static void lame_duck(sdk_store_sync mode)
{
    sdk_store *st = NULL;
    assert_int_equal(sdk_store_open("memory:", 0, &st), SDK_OK);
    fleet f = {.a = start(st, mode, WINDOW), .b = start(st, mode, 0)};
    connect_all(&f);
    converse(&f);
    stream_through_close(&f);
    check_departures(&f);
    for (int i = 0; i < K; i++) {
        client_expects(&f.cl[i], N / 2 + 1, N); /* A's, handed over in B's care */
        sdk_message *m = NULL;
        assert_int_equal(sdk_recv(f.cl[i].c, &m, 100), SDK_ETIMEDOUT);
        sdk_close(f.cl[i].c);
        sdk_destroy(f.cl[i].c);
        ht_events_free(&f.cl[i].ev);
    }
    take_available(&f);
    sdk_server_destroy(f.b);
    sdk_server_destroy(f.a);
    sdk_store_close(st);
}

static void test_lame_duck_handover(void **state)
{
    (void)state;
    lame_duck(SDK_STORE_SYNC_HANDOVER);
}

static void test_lame_duck_always(void **state)
{
    (void)state;
    lame_duck(SDK_STORE_SYNC_ALWAYS);
}

/* The window has a bound. */
static void test_config(void **state)
{
    (void)state;
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.lame_duck_ms = 600001;
    sdk_server *srv = NULL;
    assert_int_equal(sdk_server_start(&cfg, &srv), SDK_EINVAL);
    assert_null(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lame_duck_handover),
        cmocka_unit_test(test_lame_duck_always),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
