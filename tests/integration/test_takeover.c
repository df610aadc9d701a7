/*
 * Takeover of a live session (docs/cluster.md, "Takeover"), over real TLS with a
 * redis-server of the test's own:
 *  a. two in-process servers A and B on one redis-server; the client reaches A through a
 *     fault proxy and has B as its second endpoint; ids stream both ways (each server's
 *     application replies to every message with sdk_server_reply, manual ack). A's link is
 *     blackholed (no RST, no FIN): the client's heartbeat notices, it resumes on B, and B
 *     takes the session over from A, which writes what it holds and lets go (the session
 *     ends there with SDK_CAUSE_TAKEN_OVER, long before A's own heartbeat timeout of 20 s).
 *     Exact both ways: every echo once, in order; every id taken by one application once
 *     (a second time only flagged redelivered); resumed, sessions_lost 0. Under sync
 *     handover (where this lost the session before) and always.
 *  b. lifeline-server A killed (SIGKILL): B finds nobody listening on A's channel and
 *     resumes at once (the attempt at B takes far less than the takeover bound).
 *  c. lifeline-server A alive but silent (SIGSTOP): B waits the bound, then resumes from the
 *     store (sync always: exactly); A, continued, cannot write over B and lets go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faultproxy.h"
#include "harness.h"
#include "redis_proc.h"

#include <lifeline/store.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS      (1u << 16)
#define A_HEARTBEAT  20000 /* A's own watch on the client: the takeover must beat it by far */
#define CLIENT_HB_MS 150   /* the client pings this often and gives up after 4 times it */

/* ---- the client: ids out, echoes back in order ---- */

typedef struct flow {
    sdk_client *c;
    ht_events ev;
    pthread_t tx, rx;
    atomic_bool stop_tx, stop_rx;
    atomic_uint sent;   /* ids 1..sent queued */
    atomic_uint echoed; /* echoes 1..echoed arrived in order */
    atomic_uint bad;    /* the first echo out of order or twice (0: none) */
    atomic_int tx_err;
    const char *eps[2];
} flow;

static void *flow_tx(void *arg)
{
    flow *f = arg;
    for (uint32_t id = 1; !atomic_load(&f->stop_tx) && id < MAX_IDS; id++) {
        sdk_err rc = sdk_send(f->c, &id, sizeof(id), HT_WAIT_MS);
        if (rc != SDK_OK) {
            atomic_store(&f->tx_err, rc);
            break;
        }
        atomic_store(&f->sent, id);
        if (id % 8 == 0) {
            ht_sleep_ms(2);
        }
    }
    return NULL;
}

static void *flow_rx(void *arg)
{
    flow *f = arg;
    while (!atomic_load(&f->stop_rx)) {
        sdk_message *m = NULL;
        if (sdk_recv(f->c, &m, 100) != SDK_OK) {
            continue;
        }
        uint32_t id = 0;
        memcpy(&id, m->data, m->len == sizeof(id) ? sizeof(id) : 0);
        unsigned none = 0;
        if (id != atomic_load(&f->echoed) + 1) {
            atomic_compare_exchange_strong(&f->bad, &none, id ? id : UINT32_MAX);
        } else {
            atomic_store(&f->echoed, id);
        }
        sdk_message_free(m);
    }
    return NULL;
}

/* A client of ep_a then ep_b (in that order), fast to give up on a silent link. */
static void flow_start(flow *f, const char *ep_a, const char *ep_b)
{
    memset(f, 0, sizeof(*f));
    ht_events_init(&f->ev);
    sdk_config cc;
    ht_client_config(&cc, 0);
    cc.host = NULL;
    f->eps[0] = ep_a;
    f->eps[1] = ep_b;
    cc.endpoints = f->eps;
    cc.endpoint_count = 2;
    cc.keep_endpoint_order = true;
    cc.heartbeat_interval_ms = CLIENT_HB_MS;
    cc.heartbeat_timeout_ms = 4 * CLIENT_HB_MS;
    cc.connect_timeout_ms = 1000; /* a stalled attempt at A gives way to B */
    cc.reconnect_min_ms = 10;
    cc.reconnect_max_ms = 50;
    ht_events_attach(&f->ev, &cc);
    assert_int_equal(sdk_connect(&cc, &f->c), SDK_OK);
    assert_int_equal(pthread_create(&f->rx, NULL, flow_rx, f), 0);
    assert_int_equal(pthread_create(&f->tx, NULL, flow_tx, f), 0);
}

static void flow_wait_echoes(flow *f, unsigned more)
{
    unsigned want = atomic_load(&f->echoed) + more;
    uint64_t deadline = ht_now_ms() + 3 * HT_WAIT_MS;
    while (atomic_load(&f->echoed) < want && !atomic_load(&f->bad) && ht_now_ms() < deadline) {
        ht_sleep_ms(5);
    }
    assert_int_equal(atomic_load(&f->bad), 0);
    assert_true(atomic_load(&f->echoed) >= want);
}

/* The CONNECTED after the first one (the resume); how long its attempt took into
 * *attempt_ms: from its CONNECTING to the next echo (not to CONNECTED, which an early
 * welcome may report before the server has even looked at the hello). */
static ht_event flow_wait_resumed(flow *f, uint64_t *attempt_ms)
{
    ht_event connected, connecting;
    int first = ht_events_wait(&f->ev, SDK_EVENT_CONNECTED, 0, HT_WAIT_MS, NULL);
    assert_true(first >= 0);
    int at = ht_events_wait(&f->ev, SDK_EVENT_CONNECTED, (size_t)first + 1, 2 * HT_WAIT_MS, &connected);
    assert_true(at > first);
    int attempt = -1;
    for (int i = first + 1; (i = ht_events_wait(&f->ev, SDK_EVENT_CONNECTING, (size_t)i, 0, NULL)) >= 0 && i < at;
         i++) {
        attempt = i;
    }
    assert_true(attempt > first);
    (void)ht_events_wait(&f->ev, SDK_EVENT_CONNECTING, (size_t)attempt, 0, &connecting);
    unsigned before = atomic_load(&f->echoed);
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (atomic_load(&f->echoed) == before && ht_now_ms() < deadline) {
        ht_sleep_ms(1);
    }
    *attempt_ms = ht_now_ms() - connecting.at_ms;
    return connected;
}

/* Stop sending, take every echo, check nothing more comes and nothing was lost. */
static unsigned flow_finish(flow *f)
{
    atomic_store(&f->stop_tx, true);
    pthread_join(f->tx, NULL);
    assert_int_equal(atomic_load(&f->tx_err), SDK_OK);
    unsigned sent = atomic_load(&f->sent);
    uint64_t deadline = ht_now_ms() + 3 * HT_WAIT_MS;
    while (atomic_load(&f->echoed) < sent && !atomic_load(&f->bad) && ht_now_ms() < deadline) {
        ht_sleep_ms(10);
    }
    ht_sleep_ms(300); /* room for a late duplicate to show */
    atomic_store(&f->stop_rx, true);
    pthread_join(f->rx, NULL);
    if (atomic_load(&f->bad)) {
        fail_msg("echo %u out of order or twice (after %u)", atomic_load(&f->bad), atomic_load(&f->echoed));
    }
    assert_int_equal(atomic_load(&f->echoed), sent);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(f->c, &st), SDK_OK);
    assert_int_equal(st.sessions_lost, 0);
    assert_int_equal(ht_events_count(&f->ev, SDK_EVENT_SESSION_LOST), 0);
    sdk_close(f->c);
    sdk_destroy(f->c);
    ht_events_free(&f->ev);
    return sent;
}

/* ---- an in-process server whose application replies to every id ---- */

typedef struct app {
    sdk_server *srv;
    sdk_store *store;
    ht_sevents ev;
    pthread_t thread;
    atomic_bool stop;
    uint32_t *taken; /* ids in the order taken */
    uint8_t *flagged;
    atomic_uint ntaken;
} app;

static void *app_main(void *arg)
{
    app *a = arg;
    while (!atomic_load(&a->stop)) {
        sdk_message *m = NULL;
        if (sdk_server_recv(a->srv, &m, 100) != SDK_OK) {
            continue;
        }
        unsigned n = atomic_load(&a->ntaken);
        memcpy(&a->taken[n], m->data, sizeof(uint32_t));
        a->flagged[n] = (m->flags & SDK_MSG_REDELIVERED) != 0;
        atomic_store(&a->ntaken, n + 1);
        /* Let go between the take and the reply: the request comes again to the next owner. */
        (void)sdk_server_reply(a->srv, m->session, m->seq, NULL, m->data, m->len, HT_WAIT_MS);
        sdk_message_free(m);
    }
    return NULL;
}

static void app_start(app *a, const char *redis_url, sdk_store_sync mode)
{
    memset(a, 0, sizeof(*a));
    a->taken = calloc(MAX_IDS, sizeof(*a->taken));
    a->flagged = calloc(MAX_IDS, 1);
    assert_true(a->taken && a->flagged);
    assert_int_equal(sdk_store_open(redis_url, 0, &a->store), SDK_OK);
    ht_sevents_init(&a->ev);
    sdk_server_config cfg;
    ht_server_config(&cfg);
    cfg.store = a->store;
    cfg.store_sync = mode;
    cfg.manual_ack = true;
    cfg.heartbeat_min_ms = A_HEARTBEAT;
    cfg.heartbeat_max_ms = A_HEARTBEAT;
    ht_sevents_attach(&a->ev, &cfg);
    assert_int_equal(sdk_server_start(&cfg, &a->srv), SDK_OK);
    assert_int_equal(pthread_create(&a->thread, NULL, app_main, a), 0);
}

static void app_stop(app *a)
{
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    sdk_server_destroy(a->srv);
    sdk_store_close(a->store);
    ht_sevents_free(&a->ev);
    free(a->taken);
    free(a->flagged);
}

/* Every id 1..sent was taken: A's run, then B's, each in order; an id taken by both comes
 * to B flagged redelivered (A took it and let go before its reply), at most a few. */
static void check_taken(const app *a, const app *b, unsigned sent)
{
    unsigned na = atomic_load(&a->ntaken), nb = atomic_load(&b->ntaken), twice = 0;
    for (unsigned i = 0; i < na; i++) {
        assert_int_equal(a->taken[i], i + 1);
        assert_false(a->flagged[i]);
    }
    for (unsigned i = 0; i < nb; i++) {
        uint32_t id = b->taken[i], want = i == 0 ? b->taken[0] : b->taken[i - 1] + 1;
        assert_int_equal(id, want);
        if (id <= na) {
            assert_true(b->flagged[i]); /* seen by A's application: said so */
            twice++;
        } else {
            assert_false(b->flagged[i]);
        }
    }
    assert_true(nb > 0 && b->taken[0] <= na + 1);
    assert_int_equal(b->taken[nb - 1], sent);
    printf("taken: %u by A, %u by B, %u of them by both (flagged at B)\n", na, nb, twice);
}

static void test_blackholed_owner(void **state)
{
    sdk_store_sync mode = *(const sdk_store_sync *)*state;
    redis_proc redis;
    assert_true(redis_proc_start(&redis));
    app a, b;
    app_start(&a, redis.url, mode);
    app_start(&b, redis.url, mode);
    fp_proxy *px = NULL;
    assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", sdk_server_port(a.srv), &px), 0);
    char ep_a[32], ep_b[32];
    snprintf(ep_a, sizeof(ep_a), "127.0.0.1:%u", (unsigned)fp_port(px));
    snprintf(ep_b, sizeof(ep_b), "127.0.0.1:%u", (unsigned)sdk_server_port(b.srv));

    flow f;
    flow_start(&f, ep_a, ep_b);
    flow_wait_echoes(&f, 300);
    uint64_t cut = ht_now_ms();
    fp_set_blackhole(px, true);
    uint64_t attempt_ms = 0;
    ht_event resumed = flow_wait_resumed(&f, &attempt_ms);
    assert_true(resumed.resumed);
    ht_sevent gone;
    assert_true(ht_sevents_wait(&a.ev, SDK_SESSION_CLOSED, 0, 0, HT_WAIT_MS, &gone) >= 0);
    uint64_t let_go = ht_now_ms() - cut;
    assert_int_equal(gone.cause, SDK_CAUSE_TAKEN_OVER);
    assert_true(ht_sevents_wait(&a.ev, SDK_SESSION_DETACHED, 0, 0, 0, NULL) < 0); /* A never saw it die */
    assert_true(let_go < A_HEARTBEAT / 4);
    flow_wait_echoes(&f, 300); /* flowing on B */
    unsigned sent = flow_finish(&f);
    check_taken(&a, &b, sent);
    printf("sync %s: A's link blackholed (A's own watch: %d ms): resumed on B %llu ms later (that attempt "
           "%llu ms), A let go by %llu ms; %u ids each way exact\n",
           mode == SDK_STORE_SYNC_ALWAYS ? "always" : "handover", A_HEARTBEAT,
           (unsigned long long)(resumed.at_ms - cut), (unsigned long long)attempt_ms, (unsigned long long)let_go, sent);
    sdk_session_info *infos = NULL;
    size_t count = 1;
    assert_int_equal(sdk_server_sessions(a.srv, &infos, &count), SDK_OK);
    assert_int_equal(count, 0); /* A holds nothing any more */
    sdk_sessions_free(infos);
    /* Counted on both sides: B asked and A let go; nothing else happened. */
    assert_true(ht_server_metric(b.srv, "lifeline_takeovers_total{result=\"released\"}") == 1);
    assert_true(ht_server_metric(a.srv, "lifeline_takeovers_total{result=\"served\"}") == 1);
    static const char *const others[] = {"owner_gone", "timed_out", "failed"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        char sample[80];
        snprintf(sample, sizeof(sample), "lifeline_takeovers_total{result=\"%s\"}", others[i]);
        assert_true(ht_server_metric(b.srv, sample) == 0);
        assert_true(ht_server_metric(a.srv, sample) == 0);
    }

    fp_stop(px);
    app_stop(&a);
    app_stop(&b);
    redis_proc_stop(&redis);
}

/* ---- lifeline-server A dead or silent ---- */

/* A and B as lifeline-server processes (echo) on one store, sync always, with a takeover
 * bound, and the client streaming through A (B its second endpoint). */
typedef struct pair {
    redis_proc redis;
    ht_proc a, b;
    char ep_a[32], ep_b[32];
    flow f;
} pair;

static void pair_start(pair *p, const char *bound)
{
    memset(p, 0, sizeof(*p));
    assert_true(redis_proc_start(&p->redis));
    const char *extra[] = {"--store", p->redis.url, "--store-sync", "always", "--takeover-timeout-ms", bound, NULL};
    assert_int_equal(ht_proc_start(&p->a, 0, extra), 0);
    assert_int_equal(ht_proc_start(&p->b, 0, extra), 0);
    snprintf(p->ep_a, sizeof(p->ep_a), "127.0.0.1:%u", (unsigned)p->a.port);
    snprintf(p->ep_b, sizeof(p->ep_b), "127.0.0.1:%u", (unsigned)p->b.port);
    flow_start(&p->f, p->ep_a, p->ep_b);
    flow_wait_echoes(&p->f, 200);
}

/* The client resumed on B: how long the attempt there took. */
static uint64_t pair_resumed(pair *p, const char *owner, const char *bound)
{
    uint64_t attempt_ms = 0;
    assert_true(flow_wait_resumed(&p->f, &attempt_ms).resumed);
    printf("owner %s: the attempt that resumed on B took %llu ms (bound %s ms)\n", owner,
           (unsigned long long)attempt_ms, bound);
    return attempt_ms;
}

/* The stream flows on B and ends exact. */
static void pair_finish(pair *p)
{
    flow_wait_echoes(&p->f, 200);
    flow_finish(&p->f);
    ht_proc_stop(&p->a, SIGTERM);
    ht_proc_stop(&p->b, SIGTERM);
    redis_proc_stop(&p->redis);
}

/* SIGKILL: nobody listens on A's channel any more, so B does not wait for it. */
static void test_dead_owner(void **state)
{
    (void)state;
    static pair p;
    pair_start(&p, "5000");
    ht_proc_stop(&p.a, SIGKILL);
    assert_true(pair_resumed(&p, "killed", "5000") < 2500);
    pair_finish(&p);
}

/* SIGSTOP: A still listens (its connection to Redis is open) but cannot answer: B waits the
 * bound, then resumes from the store. A, woken, finds the session claimed: it writes nothing
 * and lets go, and the stream on B stays exact. */
static void test_silent_owner(void **state)
{
    (void)state;
    static pair p;
    pair_start(&p, "1000");
    kill(p.a.pid, SIGSTOP);
    uint64_t attempt_ms = pair_resumed(&p, "silent", "1000");
    assert_true(attempt_ms >= 1000 && attempt_ms < 1000 + 2500);
    flow_wait_echoes(&p.f, 200);
    kill(p.a.pid, SIGCONT);
    ht_sleep_ms(300); /* A serves the late request: fenced out, it lets go */
    pair_finish(&p);
}

static const sdk_store_sync HANDOVER = SDK_STORE_SYNC_HANDOVER, ALWAYS = SDK_STORE_SYNC_ALWAYS;

int main(void)
{
    const struct CMUnitTest tests[] = {
        {"test_blackholed_owner (sync handover)", test_blackholed_owner, NULL, NULL, (void *)&HANDOVER},
        {"test_blackholed_owner (sync always)", test_blackholed_owner, NULL, NULL, (void *)&ALWAYS},
        cmocka_unit_test(test_dead_owner),
        cmocka_unit_test(test_silent_owner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
