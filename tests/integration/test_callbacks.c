/*
 * Message callbacks (sdk_config.on_message, sdk_server_config.on_message): messages are
 * handed over on the I/O thread, in order, exactly once, also across link resets; replies
 * sent from there go out; and nothing called from a callback waits for its own thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faultproxy.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT     2000
#define CUT_EVERY 250

/* ---- what a callback saw, for the test thread to wait on ---- */

typedef struct inbox {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t next;       /* the counter expected next */
    uint32_t got;        /* messages seen */
    uint32_t misordered; /* a counter other than next (lost, repeated or reordered) */
    uint32_t bad_type;
} inbox;

static void inbox_init(inbox *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

static void inbox_take(inbox *b, const sdk_message *m)
{
    uint32_t n = 0;
    pthread_mutex_lock(&b->mu);
    if (m->len == sizeof(n)) {
        memcpy(&n, m->data, sizeof(n));
    }
    b->misordered += m->len != sizeof(n) || n != b->next;
    b->bad_type += !m->type || strcmp(m->type, "test.Count") != 0;
    b->next = n + 1;
    b->got++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Wait until want messages are in; returns how many are. */
static uint32_t inbox_wait(inbox *b, uint32_t want)
{
    uint64_t end = ht_now_ms() + HT_WAIT_MS;
    pthread_mutex_lock(&b->mu);
    while (b->got < want && ht_now_ms() < end) {
        pthread_mutex_unlock(&b->mu);
        ht_sleep_ms(5);
        pthread_mutex_lock(&b->mu);
    }
    uint32_t got = b->got;
    pthread_mutex_unlock(&b->mu);
    return got;
}

/* ---- an echo server and a client that both take messages in callbacks ---- */

typedef struct rig {
    sdk_server *srv;
    inbox client_in;
    atomic_uint echo_failed;
    fp_proxy *p; /* between them, or NULL */
    sdk_client *c;
} rig;

static void server_echo(sdk_message *m, void *user)
{
    rig *r = user;
    /* A timeout of -1 must not wait here: the callback runs on the I/O thread. */
    if (sdk_server_send_typed(r->srv, m->session, m->type, m->data, m->len, -1) != SDK_OK) {
        atomic_fetch_add(&r->echo_failed, 1);
    }
    sdk_message_free(m);
}

static void client_take(sdk_message *m, void *user)
{
    rig *r = user;
    inbox_take(&r->client_in, m);
    sdk_message_free(m);
}

static void rig_start(rig *r, bool proxy)
{
    memset(r, 0, sizeof(*r));
    inbox_init(&r->client_in);
    sdk_server_config scfg;
    ht_server_config(&scfg);
    scfg.on_message = server_echo;
    scfg.user = r;
    assert_int_equal(sdk_server_start(&scfg, &r->srv), SDK_OK);
    uint16_t port = sdk_server_port(r->srv);
    if (proxy) {
        assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", port, &r->p), 0);
        port = fp_port(r->p);
    }
    sdk_config cfg;
    ht_client_config(&cfg, port);
    cfg.on_message = client_take;
    cfg.user = r;
    cfg.reconnect_min_ms = 0;
    cfg.reconnect_max_ms = 10;
    assert_int_equal(sdk_connect(&cfg, &r->c), SDK_OK);
}

static void rig_stop(rig *r)
{
    assert_int_equal(sdk_close(r->c), SDK_OK);
    sdk_destroy(r->c);
    if (r->p) {
        fp_stop(r->p);
    }
    sdk_server_destroy(r->srv);
    pthread_mutex_destroy(&r->client_in.mu);
    pthread_cond_destroy(&r->client_in.cv);
}

static void send_count(sdk_client *c, uint32_t n)
{
    assert_int_equal(sdk_send_typed(c, "test.Count", &n, sizeof(n), HT_WAIT_MS), SDK_OK);
}

/* ---- 1. both ends in callbacks: every echo, in order; acks flow; receive calls refuse ---- */

static void test_echo_in_callbacks(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, false);
    for (uint32_t i = 0; i < COUNT; i++) {
        send_count(r.c, i);
    }
    assert_int_equal(inbox_wait(&r.client_in, COUNT), COUNT);
    assert_int_equal(r.client_in.misordered, 0);
    assert_int_equal(r.client_in.bad_type, 0);
    assert_int_equal(atomic_load(&r.echo_failed), 0);
    /* Handing a message to the callback is receiving it: the server acknowledged them all. */
    assert_int_equal(sdk_flush(r.c, HT_WAIT_MS), SDK_OK);
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(r.c, &m, 0), SDK_EINVAL);
    assert_int_equal(sdk_server_recv(r.srv, &m, 0), SDK_EINVAL);
    assert_null(m);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(r.c, &st), SDK_OK);
    assert_int_equal(st.msgs_received, COUNT);
    rig_stop(&r);
}

/* ---- 2. the same across link resets: exactly once, in order ---- */

static void test_callbacks_across_resets(void **state)
{
    (void)state;
    rig r;
    rig_start(&r, true);
    for (uint32_t i = 0; i < COUNT; i++) {
        send_count(r.c, i);
        if (i % CUT_EVERY == CUT_EVERY - 1) {
            fp_reset_all(r.p);
        }
    }
    assert_int_equal(inbox_wait(&r.client_in, COUNT), COUNT);
    assert_int_equal(r.client_in.misordered, 0);
    assert_int_equal(atomic_load(&r.echo_failed), 0);
    sdk_stats st;
    assert_int_equal(sdk_get_stats(r.c, &st), SDK_OK);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.sessions_lost, 0);
    ht_sleep_ms(50); /* nothing more may come after the last */
    assert_int_equal(inbox_wait(&r.client_in, COUNT), COUNT);
    rig_stop(&r);
}

/* ---- 3. a client callback never waits for its own thread ---- */

/* Wait until a callback has set *called (under mu); false if it did not in HT_WAIT_MS. */
static bool wait_called(pthread_mutex_t *mu, const bool *called)
{
    bool yes = false;
    for (uint64_t end = ht_now_ms() + HT_WAIT_MS; !yes && ht_now_ms() < end;) {
        ht_sleep_ms(5);
        pthread_mutex_lock(mu);
        yes = *called;
        pthread_mutex_unlock(mu);
    }
    return yes;
}

typedef struct blocked_client {
    sdk_client *c;
    pthread_mutex_t mu;
    bool called;
    sdk_err send_rc, flush_rc, close_rc;
    uint64_t took_ms;
} blocked_client;

static void client_tries_to_wait(sdk_message *m, void *user)
{
    blocked_client *b = user;
    uint64_t t0 = ht_now_ms();
    sdk_err send_rc = sdk_send(b->c, "x", 1, -1); /* the queue is full: must not wait */
    sdk_err flush_rc = sdk_flush(b->c, -1);
    sdk_err close_rc = sdk_close(b->c);
    sdk_destroy(b->c); /* ignored here: it would free the client under this very thread */
    pthread_mutex_lock(&b->mu);
    b->send_rc = send_rc;
    b->flush_rc = flush_rc;
    b->close_rc = close_rc;
    b->took_ms = ht_now_ms() - t0;
    b->called = true;
    pthread_mutex_unlock(&b->mu);
    sdk_message_free(m);
}

static void test_client_callback_never_waits(void **state)
{
    (void)state;
    ht_server hs;
    ht_sevents sev;
    ht_sevents_init(&sev);
    sdk_server_config scfg;
    ht_server_config(&scfg);
    ht_sevents_attach(&sev, &scfg);
    assert_int_equal(ht_server_start(&hs, &scfg, false), SDK_OK); /* nobody receives: no acks */
    blocked_client b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sdk_config cfg;
    ht_client_config(&cfg, hs.port);
    cfg.queue_max_messages = 2;
    cfg.on_message = client_tries_to_wait;
    cfg.user = &b;
    assert_int_equal(sdk_connect(&cfg, &b.c), SDK_OK);
    ht_sevent opened;
    assert_true(ht_sevents_wait(&sev, SDK_SESSION_OPENED, 0, 0, HT_WAIT_MS, &opened) >= 0);
    assert_int_equal(sdk_send(b.c, "a", 1, 0), SDK_OK);
    assert_int_equal(sdk_send(b.c, "b", 1, 0), SDK_OK);
    assert_int_equal(sdk_send(b.c, "c", 1, 0), SDK_EQUEUEFULL);
    assert_int_equal(sdk_server_send(hs.srv, opened.session, "go", 2, HT_WAIT_MS), SDK_OK);
    assert_true(wait_called(&b.mu, &b.called));
    assert_int_equal(b.send_rc, SDK_EQUEUEFULL);
    assert_int_equal(b.flush_rc, SDK_EINVAL);
    assert_int_equal(b.close_rc, SDK_EINVAL);
    assert_true(b.took_ms < HT_WAIT_MS / 2);
    assert_int_equal(sdk_get_state(b.c), SDK_STATE_CONNECTED); /* the refused close did nothing */
    assert_int_equal(sdk_close(b.c), SDK_OK);
    sdk_destroy(b.c);
    ht_server_destroy(&hs);
    ht_sevents_free(&sev);
}

/* ---- 4. a server callback never waits for its own thread ---- */

typedef struct blocked_server {
    sdk_server *srv;
    pthread_mutex_t mu;
    bool called;
    sdk_err first_rc, second_rc, stop_rc;
} blocked_server;

static void server_tries_to_wait(sdk_message *m, void *user)
{
    blocked_server *b = user;
    /* The client never receives, so nothing is acknowledged: the second send finds the
     * session's one-message queue full and must answer at once. */
    sdk_err first_rc = sdk_server_send(b->srv, m->session, "1", 1, -1);
    sdk_err second_rc = sdk_server_send(b->srv, m->session, "2", 1, -1);
    sdk_err stop_rc = sdk_server_stop(b->srv);
    sdk_server_destroy(b->srv); /* ignored here, like stop */
    pthread_mutex_lock(&b->mu);
    b->first_rc = first_rc;
    b->second_rc = second_rc;
    b->stop_rc = stop_rc;
    b->called = true;
    pthread_mutex_unlock(&b->mu);
    sdk_message_free(m);
}

static void test_server_callback_never_waits(void **state)
{
    (void)state;
    blocked_server b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sdk_server_config scfg;
    ht_server_config(&scfg);
    scfg.queue_max_messages = 1;
    scfg.on_message = server_tries_to_wait;
    scfg.user = &b;
    assert_int_equal(sdk_server_start(&scfg, &b.srv), SDK_OK);
    sdk_config cfg;
    ht_client_config(&cfg, sdk_server_port(b.srv));
    sdk_client *c = NULL;
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_send(c, "hi", 2, HT_WAIT_MS), SDK_OK);
    assert_true(wait_called(&b.mu, &b.called));
    assert_int_equal(b.first_rc, SDK_OK);
    assert_int_equal(b.second_rc, SDK_EQUEUEFULL);
    assert_int_equal(b.stop_rc, SDK_EINVAL);
    /* The server still runs: the client gets the reply that fitted. */
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(c, &m, HT_WAIT_MS), SDK_OK);
    assert_int_equal(m->len, 1);
    assert_memory_equal(m->data, "1", 1);
    sdk_message_free(m);
    assert_int_equal(sdk_close(c), SDK_OK);
    sdk_destroy(c);
    assert_int_equal(sdk_server_stop(b.srv), SDK_OK);
    sdk_server_destroy(b.srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_in_callbacks),
        cmocka_unit_test(test_callbacks_across_resets),
        cmocka_unit_test(test_client_callback_never_waits),
        cmocka_unit_test(test_server_callback_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
