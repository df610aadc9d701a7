/*
 * Tests for server_handover.c with raw peers (raw_peer.h) against a server started on a
 * memory store: a Hello naming a stored session with its token resumes it where the record
 * left off (and claims it, fencing out the writer, and deletes the record); with a wrong
 * token it opens a new session and leaves the record and its owner alone; a graceful stop
 * writes the session, with its unacknowledged messages, before the client hears GOING_AWAY.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "raw_peer.h"

#include "lifeline/server.h"
#include "lifeline/store.h"
#include "ll.h"
#include "recstore.h"

#include <stdlib.h>
#include <string.h>

#define STORED_ID 1234

static const uint8_t TOKEN[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

typedef struct fixture {
    rp_certs certs;
    sdk_store *store;
    sdk_server *srv;
    ll_tls_ctx *client_tls;
    uint64_t planted_epoch; /* the owner epoch the planted record was written with */
} fixture;

/* A record as another instance would have left it: messages 1 and 2 written, none
 * acknowledged; five messages taken from the client. */
static void plant_record(fixture *fx)
{
    ll_session s;
    ll_session_init(&s, 64, 1 << 20);
    assert_int_equal(ll_session_enqueue(&s, "hello", 5, NULL), 0);
    assert_int_equal(ll_session_enqueue(&s, "world", 5, NULL), 0);
    ll_buf frames = {0};
    ll_sessrec r = {.id = STORED_ID, .hb_interval_ms = 5000, .hb_timeout_ms = 15000};
    assert_int_equal(ll_tls_sha256(TOKEN, sizeof(TOKEN), r.token_hash), 0);
    assert_int_equal(ll_sessrec_capture(&s, &frames, &r), 0);
    r.high_written = 2;
    r.received = r.consumed = 5;
    assert_int_equal(ll_recstore_claim(fx->store, STORED_ID, 0, &fx->planted_epoch), 0);
    r.owner_epoch = fx->planted_epoch;
    assert_int_equal(ll_recstore_put(fx->store, &r, 0), LL_WRITE_DONE);
    ll_buf_free(&frames);
    ll_session_free(&s);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char err[256] = "";
    if (!fx || rp_certs_make(&fx->certs) != 0 || sdk_store_open("memory:", 0, &fx->store) != SDK_OK) {
        return -1;
    }
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.cert_file = fx->certs.cert;
    cfg.key_file = fx->certs.key;
    ll_tls_ctx_config tc = {.server = false, .ca_file = fx->certs.ca};
    cfg.store = fx->store;
    if (sdk_server_start(&cfg, &fx->srv) != SDK_OK || ll_tls_ctx_new(&tc, &fx->client_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "start: %s\n", err);
        return -1;
    }
    plant_record(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    sdk_server_destroy(fx->srv);
    sdk_store_close(fx->store);
    ll_tls_ctx_free(fx->client_tls);
    rp_certs_remove(&fx->certs);
    free(fx);
    return 0;
}

typedef struct welcome {
    uint64_t id;
    bool resumed;
    uint64_t last_received;
    uint8_t token[16];
} welcome;

/* Connect, say hello, and read the welcome. */
static welcome greet(fixture *fx, rp_peer *p, uint64_t session, const uint8_t *token, uint64_t last_received)
{
    rp_connect(p, fx->client_tls, sdk_server_port(fx->srv));
    Lifeline__Hello h = LIFELINE__HELLO__INIT;
    h.version = 1;
    h.session_id = session;
    h.resume_token = (ProtobufCBinaryData){token ? 16 : 0, (uint8_t *)token};
    h.last_received = last_received;
    h.heartbeat_interval_ms = 5000;
    h.heartbeat_timeout_ms = 15000;
    rp_send(p, &LL_FRAME_OF(hello, HELLO, &h));
    ll_frame f;
    rp_next(p, &f);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_WELCOME);
    welcome w = {f.pb->welcome->session_id, f.pb->welcome->resumed, f.pb->welcome->last_received, {0}};
    assert_int_equal(f.pb->welcome->resume_token.len, sizeof(w.token));
    memcpy(w.token, f.pb->welcome->resume_token.data, sizeof(w.token));
    ll_frame_release(&f);
    return w;
}

/* The next Data frame; an Ack before it (the server says again what it has, on a new
 * connection) must carry acked. */
static void expect_data(rp_peer *p, uint64_t seq, const char *payload, uint64_t acked)
{
    ll_frame f;
    rp_next(p, &f);
    if (f.kind == LIFELINE__FRAME__KIND_ACK) {
        assert_int_equal(f.pb->ack->seq, acked);
        ll_frame_release(&f);
        rp_next(p, &f);
    }
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_DATA);
    assert_int_equal(f.data.seq, seq);
    assert_int_equal(f.data.len, strlen(payload));
    assert_memory_equal(f.data.payload, payload, f.data.len);
    ll_frame_release(&f);
}

/* Whether the planted record is still there and its writer still owns it. */
static bool planted_owner_holds(fixture *fx)
{
    ll_buf bytes = {0};
    ll_sessrec r;
    int rc = ll_recstore_get(fx->store, STORED_ID, &bytes, &r);
    ll_buf_free(&bytes);
    return rc == 0 && ll_recstore_del(fx->store, STORED_ID, fx->planted_epoch + 1) == LL_WRITE_FENCED;
}

static void test_adopts_with_its_token(void **state)
{
    fixture *fx = *state;
    rp_peer p;
    welcome w = greet(fx, &p, STORED_ID, TOKEN, 1);
    assert_int_equal(w.id, STORED_ID);
    assert_true(w.resumed);
    assert_int_equal(w.last_received, 5); /* the stored stream, not a fresh one */
    assert_memory_equal(w.token, TOKEN, sizeof(TOKEN));
    expect_data(&p, 2, "world", 5); /* it has 1; 2 comes again, as the same frame */

    ll_buf bytes = {0};
    ll_sessrec r;
    assert_int_equal(ll_recstore_get(fx->store, STORED_ID, &bytes, &r), SDK_ENOTFOUND); /* deleted */
    ll_buf_free(&bytes);
    ll_recwrite old = {.id = STORED_ID, .epoch = fx->planted_epoch, .header = (const uint8_t *)"x", .header_len = 1};
    assert_int_equal(fx->store->ops->write(fx->store, &old, 1, 0), 0);
    assert_int_equal(old.owner, 0); /* nothing the old writer could write to */
    rp_close(&p);
}

static void test_wrong_token_opens_a_new_session(void **state)
{
    fixture *fx = *state;
    rp_peer p;
    uint8_t wrong[16];
    memcpy(wrong, TOKEN, sizeof(wrong));
    wrong[15] ^= 1;
    welcome w = greet(fx, &p, STORED_ID, wrong, 1);
    assert_true(w.id != STORED_ID);
    assert_false(w.resumed);
    assert_int_equal(w.last_received, 0);
    assert_true(planted_owner_holds(fx)); /* not claimed: a guessed id takes nothing over */
    rp_close(&p);
}

static void test_stop_writes_the_session(void **state)
{
    fixture *fx = *state;
    rp_peer p;
    welcome w = greet(fx, &p, 0, NULL, 0);
    uint64_t id = w.id;
    assert_int_equal(sdk_server_send(fx->srv, id, "one", 3, 0), SDK_OK);
    assert_int_equal(sdk_server_send(fx->srv, id, "two", 3, 0), SDK_OK);
    expect_data(&p, 1, "one", 0);
    expect_data(&p, 2, "two", 0);
    assert_int_equal(sdk_server_stop(fx->srv), SDK_OK);

    ll_buf bytes = {0};
    ll_sessrec r;
    assert_int_equal(ll_recstore_get(fx->store, id, &bytes, &r), 0);
    assert_int_equal(r.nframes, 2); /* never acknowledged */
    assert_int_equal(r.acked, 0);
    assert_int_equal(r.high_written, 2);
    assert_int_equal(r.hb_timeout_ms, 15000);
    uint8_t hash[LL_SHA256_LEN];
    assert_int_equal(ll_tls_sha256(w.token, sizeof(w.token), hash), 0);
    assert_memory_equal(r.token_hash, hash, sizeof(hash)); /* its hash, never the token */
    ll_buf_free(&bytes);
    rp_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adopts_with_its_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_token_opens_a_new_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_writes_the_session, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
