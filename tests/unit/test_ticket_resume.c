/*
 * TLS tickets across server instances that share a session store, with raw peers
 * (raw_peer.h) as the client: a session opened on A, handed over at A's graceful stop, is
 * resumed on B with TLS resumed (B reads A's ticket: the keys come from the store) and
 * welcomed early, before the Hello, from the stored record; the Hello then adopts it
 * without a second Welcome. B never offers a session it cannot resume: a ticket whose
 * session has left the store gets no early welcome. A server on another store cannot read
 * the ticket at all. Run on a memory store shared by the servers, and on a redis-server of
 * the test's own with a handle per server, as separate processes would have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "faultproxy.h"
#include "raw_peer.h"
#include "redis_proc.h"

#include "lifeline/server.h"
#include "lifeline/store.h"
#include "ll.h"
#include "net.h"
#include "recstore.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct fixture {
    rp_certs certs;
    redis_proc redis; /* pid 0: the memory store */
    sdk_store *store_a, *store_b;
    ll_tls_ctx *client_tls;
} fixture;

static int setup_with(void **state, bool redis)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char err[256] = "";
    ll_tls_ctx_config tc = {.server = false};
    if (!fx || rp_certs_make(&fx->certs) != 0) {
        return -1;
    }
    tc.ca_file = fx->certs.ca;
    if (redis) {
        if (!redis_proc_start(&fx->redis) || sdk_store_open(fx->redis.url, 0, &fx->store_a) != SDK_OK ||
            sdk_store_open(fx->redis.url, 0, &fx->store_b) != SDK_OK) {
            return -1;
        }
    } else if (sdk_store_open("memory:", 0, &fx->store_a) != SDK_OK) {
        return -1;
    } else {
        fx->store_b = fx->store_a; /* one handle, as servers of one process share it */
    }
    if (ll_tls_ctx_new(&tc, &fx->client_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "client context: %s\n", err);
        return -1;
    }
    *state = fx;
    return 0;
}

static int setup_memory(void **state)
{
    return setup_with(state, false);
}

static int setup_redis(void **state)
{
    return setup_with(state, true);
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx->store_b != fx->store_a) {
        sdk_store_close(fx->store_b);
    }
    sdk_store_close(fx->store_a);
    if (fx->redis.pid) {
        redis_proc_stop(&fx->redis);
    }
    ll_tls_ctx_free(fx->client_tls);
    rp_certs_remove(&fx->certs);
    free(fx);
    return 0;
}

/* A client TLS context of its own, holding no ticket yet. */
static ll_tls_ctx *new_client_ctx(fixture *fx)
{
    ll_tls_ctx *ctx = NULL;
    char err[256];
    ll_tls_ctx_config tc = {.server = false, .ca_file = fx->certs.ca};
    assert_int_equal(ll_tls_ctx_new(&tc, &ctx, err, sizeof(err)), 0);
    return ctx;
}

static sdk_server *start_on(fixture *fx, sdk_store *store)
{
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.cert_file = fx->certs.cert;
    cfg.key_file = fx->certs.key;
    cfg.store = store;
    sdk_server *srv = NULL;
    assert_int_equal(sdk_server_start(&cfg, &srv), SDK_OK);
    char detail[256];
    assert_int_equal(sdk_server_ticket_keys(srv, detail, sizeof(detail)), store ? SDK_OK : SDK_ENOTFOUND);
    return srv;
}

/* The first frame on p, read before any Hello is sent: the early welcome to session id. */
static void expect_early_welcome(rp_peer *p, uint64_t id, const uint8_t *token)
{
    ll_frame f;
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    assert_true(f.pb->welcome->resumed);
    assert_true(f.pb->welcome->session_id == id);
    assert_int_equal(f.pb->welcome->heartbeat_timeout_ms, 15000); /* as the stored record has it */
    assert_int_equal(f.pb->welcome->resume_token.len, 16);
    assert_memory_equal(f.pb->welcome->resume_token.data, token, 16); /* the client's, unchanged */
    ll_frame_release(&f);
}

/* A session opened on a new server A (into *srv_a, stopped), handed over to the store at A's
 * stop: its id, and its token into token[16]. The client holds A's ticket. */
static uint64_t handed_over(fixture *fx, sdk_server **srv_a, uint8_t *token)
{
    rp_peer a;
    *srv_a = start_on(fx, fx->store_a);
    uint64_t id = rp_open_session(&a, fx->client_tls, sdk_server_port(*srv_a), token);
    assert_int_equal(sdk_server_stop(*srv_a), SDK_OK); /* the session goes into the store */
    rp_close(&a);
    return id;
}

static void expect_session_on(sdk_server *srv, uint64_t id)
{
    sdk_session_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sdk_server_sessions(srv, &info, &n), SDK_OK);
    assert_int_equal(n, 1);
    assert_true(info[0].id == id);
    assert_int_equal(info[0].state, SDK_SESSION_STATE_CONNECTED);
    sdk_sessions_free(info);
}

/* A's session, handed over at its stop, is welcomed early on B and resumed there. */
static void test_early_welcome_on_another_instance(void **state)
{
    fixture *fx = *state;
    rp_peer b;
    uint8_t token[16];
    sdk_server *srv_a = NULL;
    uint64_t id = handed_over(fx, &srv_a, token);

    sdk_server *srv_b = start_on(fx, fx->store_b);
    rp_connect(&b, fx->client_tls, sdk_server_port(srv_b));
    assert_true(ll_tls_resumed(b.link.tls)); /* B opened A's ticket */
    expect_early_welcome(&b, id, token);
    rp_send_hello(&b, id, token, sizeof(token), 0);
    rp_send_ping(&b, 2);
    rp_expect_pong(&b, 2); /* no second welcome before it */
    expect_session_on(srv_b, id);
    rp_close(&b);
    sdk_server_destroy(srv_b);
    sdk_server_destroy(srv_a);
}

/* The ticket names a session whose record is gone (another instance took it): resumed TLS,
 * but no early welcome, and the Hello opens a new session. */
static void test_no_early_welcome_without_a_record(void **state)
{
    fixture *fx = *state;
    rp_peer b;
    uint8_t token[16];
    sdk_server *srv_a = NULL;
    uint64_t id = handed_over(fx, &srv_a, token);
    ll_buf bytes = {0};
    ll_sessrec r;
    assert_int_equal(ll_recstore_get(fx->store_b, id, &bytes, &r), 0);
    assert_int_equal(ll_recstore_del(fx->store_b, id, r.owner_epoch), LL_WRITE_DONE);
    ll_buf_free(&bytes);

    sdk_server *srv_b = start_on(fx, fx->store_b);
    rp_connect(&b, fx->client_tls, sdk_server_port(srv_b));
    assert_true(ll_tls_resumed(b.link.tls));
    rp_send_hello(&b, id, token, sizeof(token), 0);
    ll_frame f;
    rp_next(&b, &f); /* an early welcome would have come first */
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    assert_false(f.pb->welcome->resumed);
    assert_true(f.pb->welcome->session_id != id);
    ll_frame_release(&f);
    rp_close(&b);
    sdk_server_destroy(srv_b);
    sdk_server_destroy(srv_a);
}

/* A server on another store, or on none, holds other keys: A's ticket costs a full
 * handshake there. */
static void test_other_keys_full_handshake(void **state)
{
    fixture *fx = *state;
    rp_peer a, b;
    uint8_t token[16];
    sdk_store *other = NULL;
    assert_int_equal(sdk_store_open("memory:", 0, &other), SDK_OK);
    sdk_server *srv_a = start_on(fx, fx->store_a);
    (void)rp_open_session(&a, fx->client_tls, sdk_server_port(srv_a), token);
    sdk_server *srv_c = start_on(fx, other);
    sdk_server *srv_d = start_on(fx, NULL);
    rp_connect(&b, fx->client_tls, sdk_server_port(srv_c));
    assert_false(ll_tls_resumed(b.link.tls));
    rp_close(&b); /* C sent no ticket (no Hello): the client still holds A's */
    assert_false(ll_tls_resumed(b.link.tls));
    rp_close(&b);
    rp_connect(&b, fx->client_tls, sdk_server_port(srv_a)); /* the control: A itself resumes it */
    assert_true(ll_tls_resumed(b.link.tls));
    rp_close(&b);
    rp_close(&a);
    sdk_server_destroy(srv_d);
    sdk_server_destroy(srv_c);
    sdk_server_destroy(srv_a);
    sdk_store_close(other);
}

/* Sleep until `ms` past the start of the period `ahead` periods after the current one. */
static uint64_t sleep_into_period(uint64_t from_period, uint64_t rotation_ms, uint64_t ahead, uint64_t ms)
{
    uint64_t target = (from_period + ahead) * rotation_ms + ms, now = ll_wall_ms();
    if (target > now) {
        struct timespec ts = {(time_t)((target - now) / 1000), (long)((target - now) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return ll_wall_ms() / rotation_ms;
}

/* Keys rotate every second here, 3 live: a ticket sealed in period p still resumes in p + 1
 * (the previous key is accepted), and no longer in p + 3, when its key has left the window. */
static void test_rotation_accepts_previous_keys(void **state)
{
    fixture *fx = *state;
    enum { ROTATION_MS = 1000 };
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.cert_file = fx->certs.cert;
    cfg.key_file = fx->certs.key;
    cfg.store = fx->store_a;
    cfg.ticket_key_rotation_ms = ROTATION_MS;
    cfg.ticket_keys_live = 3;
    sdk_server *srv = NULL;
    assert_int_equal(sdk_server_start(&cfg, &srv), SDK_OK);
    ll_tls_ctx *late = new_client_ctx(fx);
    uint64_t p = sleep_into_period(ll_wall_ms() / ROTATION_MS, ROTATION_MS, 1, 200);
    rp_peer a, b, c;
    uint8_t token[16];
    (void)rp_open_session(&a, fx->client_tls, sdk_server_port(srv), token); /* both tickets of p */
    (void)rp_open_session(&b, late, sdk_server_port(srv), token);
    rp_close(&a);
    rp_close(&b);
    assert_true(ll_wall_ms() / ROTATION_MS == p); /* (a slow machine: the test means nothing) */

    assert_true(sleep_into_period(p, ROTATION_MS, 1, 300) == p + 1);
    rp_connect(&c, fx->client_tls, sdk_server_port(srv));
    assert_true(ll_tls_resumed(c.link.tls)); /* under the previous key */
    rp_close(&c);
    assert_true(sleep_into_period(p, ROTATION_MS, 3, 300) == p + 3);
    rp_connect(&c, late, sdk_server_port(srv));
    assert_false(ll_tls_resumed(c.link.tls)); /* its key is gone */
    rp_close(&c);
    sdk_server_destroy(srv);
    ll_tls_ctx_free(late);
}

/* ---- the figure: a reconnect after a restart, with and without shared keys ---- */

#define ROUNDS 11

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), by_value);
    return v[n / 2];
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A path to srv through a proxy that holds every chunk delay_ms each way (a network's
 * round trip of twice that), so that round trips show, not only CPU. */
static fp_proxy *delayed_link(sdk_server *srv, int delay_ms)
{
    fp_proxy *link = NULL;
    assert_int_equal(fp_start("127.0.0.1", 0, "127.0.0.1", sdk_server_port(srv), &link), 0);
    assert_int_equal(fp_set_delay_ms(link, delay_ms), 0);
    return link;
}

/* From connect to the session's Welcome in hand, each time on a server just restarted on
 * the store (the previous one stopped, handing the session over): resumed TLS, early welcome. */
static uint64_t resumed_reconnect_us(fixture *fx, int delay_ms)
{
    uint64_t took[ROUNDS];
    uint8_t token[16];
    rp_peer p;
    ll_tls_ctx *client = new_client_ctx(fx); /* no ticket of an earlier call's session */
    sdk_server *srv = start_on(fx, fx->store_a);
    uint64_t id = rp_open_session(&p, client, sdk_server_port(srv), token);
    fp_proxy *link = NULL;
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(sdk_server_stop(srv), SDK_OK);
        rp_close(&p);
        fp_stop(link); /* (NULL the first time) */
        sdk_server_destroy(srv);
        srv = start_on(fx, i % 2 ? fx->store_a : fx->store_b);
        link = delayed_link(srv, delay_ms);
        uint64_t t0 = now_us();
        rp_connect(&p, client, fp_port(link));
        expect_early_welcome(&p, id, token);
        took[i] = now_us() - t0;
        assert_true(ll_tls_resumed(p.link.tls));
        rp_send_hello(&p, id, token, sizeof(token), 0);
        rp_send_ping(&p, 1);
        rp_expect_pong(&p, 1); /* the next ticket is in */
    }
    rp_close(&p);
    fp_stop(link);
    sdk_server_destroy(srv);
    ll_tls_ctx_free(client);
    return median(took, ROUNDS);
}

/* The same without shared keys: each time a server just started without a store, where the
 * client's ticket is worthless (a fresh client context: none at all), so a full handshake,
 * then Hello and Welcome. */
static uint64_t full_reconnect_us(fixture *fx, int delay_ms)
{
    uint64_t took[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        sdk_server *srv = start_on(fx, NULL);
        ll_tls_ctx *fresh = new_client_ctx(fx);
        rp_peer p;
        ll_frame f;
        fp_proxy *link = delayed_link(srv, delay_ms);
        uint64_t t0 = now_us();
        rp_connect(&p, fresh, fp_port(link));
        rp_send_hello(&p, 0, NULL, 0, 0);
        rp_next(&p, &f);
        took[i] = now_us() - t0;
        assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
        assert_false(ll_tls_resumed(p.link.tls));
        ll_frame_release(&f);
        rp_close(&p);
        fp_stop(link);
        ll_tls_ctx_free(fresh);
        sdk_server_destroy(srv);
    }
    return median(took, ROUNDS);
}

static void test_reconnect_time_after_restart(void **state)
{
    fixture *fx = *state;
    static const int delays_ms[] = {0, 10};
    for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
        uint64_t resumed = resumed_reconnect_us(fx, delays_ms[i]);
        uint64_t full = full_reconnect_us(fx, delays_ms[i]);
        printf("reconnect after a restart, connect to Welcome, %d ms each way, median of %d: shared ticket keys "
               "(resumed TLS, early welcome from Redis) %llu us; full handshake then Hello/Welcome %llu us\n",
               delays_ms[i], ROUNDS, (unsigned long long)resumed, (unsigned long long)full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_early_welcome_on_another_instance, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_early_welcome_on_another_instance, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_no_early_welcome_without_a_record, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_no_early_welcome_without_a_record, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_other_keys_full_handshake, setup_memory, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_accepts_previous_keys, setup_redis, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_time_after_restart, setup_redis, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
