/*
 * Concurrency through the public API: one client shared by 4 sender and 2 receiver
 * threads, and several clients at once against one server. Every message must come back
 * exactly once, and each sender's messages in the order it sent them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENDERS    4
#define RECEIVERS  2
#define PER_SENDER 2000
#define TOTAL      (SENDERS * PER_SENDER)

/* A message says who sent it and its index, then padding that depends on both. */
typedef struct tag {
    uint32_t sender;
    uint32_t index;
} tag;

static size_t payload_len(uint32_t sender, uint32_t index)
{
    return sizeof(tag) + (index * 37u + sender * 11u) % 300u;
}

static size_t make_payload(uint8_t *buf, uint32_t sender, uint32_t index)
{
    tag t = {sender, index};
    size_t len = payload_len(sender, index);
    memcpy(buf, &t, sizeof(t));
    ht_fill(buf + sizeof(t), len - sizeof(t), sender * 1000003u + index);
    return len;
}

/* Checks a received payload; false if it is not one we could have sent. */
static bool parse_payload(const sdk_message *m, uint32_t senders, uint32_t per_sender, tag *out)
{
    if (m->len < sizeof(tag)) {
        return false;
    }
    memcpy(out, m->data, sizeof(tag));
    return out->sender < senders && out->index < per_sender && m->len == payload_len(out->sender, out->index) &&
           ht_check(m->data + sizeof(tag), m->len - sizeof(tag), out->sender * 1000003u + out->index);
}

/* ---- one client, many threads ---- */

typedef struct shared {
    sdk_client *c;
    pthread_mutex_t mu;
    /* seq_of[s][i]: the client-side sequence number message (s, i) came back with; 0: not yet */
    uint64_t seq_of[SENDERS][PER_SENDER];
    unsigned copies[SENDERS][PER_SENDER];
    size_t received;
    size_t bad;       /* payloads that are not ours */
    sdk_err send_err; /* first failure of a sender */
    sdk_err recv_err; /* first unexpected failure of a receiver */
} shared;

typedef struct sender_arg {
    shared *sh;
    uint32_t id;
} sender_arg;

static void *sender_main(void *arg)
{
    sender_arg *a = arg;
    uint8_t buf[512];
    for (uint32_t i = 0; i < PER_SENDER; i++) {
        size_t len = make_payload(buf, a->id, i);
        sdk_err rc = sdk_send(a->sh->c, buf, len, HT_WAIT_MS);
        if (rc != SDK_OK) {
            pthread_mutex_lock(&a->sh->mu);
            a->sh->send_err = a->sh->send_err ? a->sh->send_err : rc;
            pthread_mutex_unlock(&a->sh->mu);
            break;
        }
    }
    return NULL;
}

static void *receiver_main(void *arg)
{
    shared *sh = arg;
    uint64_t deadline = ht_now_ms() + 2 * HT_WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&sh->mu);
        bool done = sh->received >= TOTAL || sh->send_err || sh->recv_err;
        pthread_mutex_unlock(&sh->mu);
        if (done || ht_now_ms() > deadline) {
            break;
        }
        sdk_message *m = NULL;
        sdk_err rc = sdk_recv(sh->c, &m, 50);
        if (rc == SDK_ETIMEDOUT) {
            continue;
        }
        pthread_mutex_lock(&sh->mu);
        tag t;
        if (rc != SDK_OK) {
            sh->recv_err = rc;
        } else if (!parse_payload(m, SENDERS, PER_SENDER, &t)) {
            sh->bad++;
        } else {
            /* Receivers race after taking a message, so order is judged by m->seq, which the
             * client assigns in arrival order, not by the order we record in. */
            sh->copies[t.sender][t.index]++;
            sh->seq_of[t.sender][t.index] = m->seq;
            sh->received++;
        }
        pthread_mutex_unlock(&sh->mu);
        sdk_message_free(m);
    }
    return NULL;
}

static void test_one_client_many_threads(void **state)
{
    ht_server *hs = *state;
    shared *sh = calloc(1, sizeof(*sh));
    sdk_config cfg;
    assert_non_null(sh);
    pthread_mutex_init(&sh->mu, NULL);
    ht_client_config(&cfg, hs->port);
    assert_int_equal(sdk_connect(&cfg, &sh->c), SDK_OK);

    pthread_t senders[SENDERS];
    pthread_t receivers[RECEIVERS];
    sender_arg args[SENDERS];
    for (int i = 0; i < RECEIVERS; i++) {
        assert_int_equal(pthread_create(&receivers[i], NULL, receiver_main, sh), 0);
    }
    for (uint32_t i = 0; i < SENDERS; i++) {
        args[i] = (sender_arg){sh, i};
        assert_int_equal(pthread_create(&senders[i], NULL, sender_main, &args[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(senders[i], NULL);
    }
    for (int i = 0; i < RECEIVERS; i++) {
        pthread_join(receivers[i], NULL);
    }

    assert_int_equal(sh->send_err, SDK_OK);
    assert_int_equal(sh->recv_err, SDK_OK);
    assert_int_equal(sh->bad, 0);
    assert_int_equal(sh->received, TOTAL);
    for (uint32_t s = 0; s < SENDERS; s++) {
        for (uint32_t i = 0; i < PER_SENDER; i++) {
            if (sh->copies[s][i] != 1) {
                fail_msg("sender %u message %u came back %u times", s, i, sh->copies[s][i]);
            }
            if (i > 0 && sh->seq_of[s][i] <= sh->seq_of[s][i - 1]) {
                fail_msg("sender %u: message %u (seq %" PRIu64 ") overtook message %u (seq %" PRIu64 ")", s, i,
                         sh->seq_of[s][i], i - 1, sh->seq_of[s][i - 1]);
            }
            assert_in_range(sh->seq_of[s][i], 1, TOTAL);
        }
    }
    sdk_message *m = NULL;
    assert_int_equal(sdk_recv(sh->c, &m, 100), SDK_ETIMEDOUT);
    assert_int_equal(sdk_flush(sh->c, HT_WAIT_MS), SDK_OK);

    sdk_stats st;
    assert_int_equal(sdk_get_stats(sh->c, &st), SDK_OK);
    assert_int_equal(st.msgs_sent, TOTAL);
    assert_int_equal(st.msgs_received, TOTAL);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.retransmits, 0);
    assert_int_equal(st.duplicates_dropped, 0);

    sdk_destroy(sh->c);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

/* ---- several clients at once ---- */

#define CLIENTS    6
#define PER_CLIENT 1000

typedef struct client_run {
    uint16_t port;
    uint32_t id;
    sdk_err err;    /* first failure */
    char where[64]; /* which step failed */
    size_t received;
    size_t out_of_order; /* echoes that were not the next expected one */
} client_run;

static void client_failed(client_run *r, sdk_err rc, const char *where)
{
    if (r->err == SDK_OK) {
        r->err = rc;
        snprintf(r->where, sizeof(r->where), "%s", where);
    }
}

/* Send everything, then read everything back: echoes must arrive in order, only ours. */
static void *client_main(void *arg)
{
    client_run *r = arg;
    sdk_config cfg;
    sdk_client *c = NULL;
    uint8_t buf[512];
    ht_client_config(&cfg, r->port);
    sdk_err rc = sdk_connect(&cfg, &c);
    if (rc != SDK_OK) {
        client_failed(r, rc, "connect");
        return NULL;
    }
    for (uint32_t i = 0; i < PER_CLIENT && r->err == SDK_OK; i++) {
        size_t len = make_payload(buf, r->id, i);
        rc = sdk_send(c, buf, len, HT_WAIT_MS);
        if (rc != SDK_OK) {
            client_failed(r, rc, "send");
        }
    }
    for (uint32_t i = 0; i < PER_CLIENT && r->err == SDK_OK; i++) {
        sdk_message *m = NULL;
        tag t;
        rc = sdk_recv(c, &m, HT_WAIT_MS);
        if (rc != SDK_OK) {
            client_failed(r, rc, "recv");
            break;
        }
        if (!parse_payload(m, CLIENTS, PER_CLIENT, &t) || t.sender != r->id || t.index != i ||
            m->seq != (uint64_t)i + 1) {
            r->out_of_order++;
        }
        r->received++;
        sdk_message_free(m);
    }
    rc = sdk_flush(c, HT_WAIT_MS);
    if (rc != SDK_OK) {
        client_failed(r, rc, "flush");
    }
    sdk_destroy(c);
    return NULL;
}

static void test_many_clients(void **state)
{
    ht_server *hs = *state;
    pthread_t threads[CLIENTS];
    client_run runs[CLIENTS];
    for (uint32_t i = 0; i < CLIENTS; i++) {
        runs[i] = (client_run){.port = hs->port, .id = i};
        assert_int_equal(pthread_create(&threads[i], NULL, client_main, &runs[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
    }
    for (int i = 0; i < CLIENTS; i++) {
        if (runs[i].err != SDK_OK) {
            fail_msg("client %d: %s failed: %s", i, runs[i].where, sdk_errname(runs[i].err));
        }
        assert_int_equal(runs[i].received, PER_CLIENT);
        assert_int_equal(runs[i].out_of_order, 0);
    }
    assert_int_equal(atomic_load(&hs->echoed), CLIENTS * PER_CLIENT);
    assert_int_equal(atomic_load(&hs->echo_failed), 0);
}

/* Senders blocked on a full queue all get through once the server catches up. */
static void test_blocked_senders_resume(void **state)
{
    ht_server *hs = *state;
    shared *sh = calloc(1, sizeof(*sh));
    sdk_config cfg;
    assert_non_null(sh);
    pthread_mutex_init(&sh->mu, NULL);
    ht_client_config(&cfg, hs->port);
    cfg.queue_max_messages = 8; /* far fewer than in flight: senders block and wake often */
    assert_int_equal(sdk_connect(&cfg, &sh->c), SDK_OK);
    pthread_t senders[SENDERS];
    pthread_t receivers[RECEIVERS];
    sender_arg args[SENDERS];
    for (int i = 0; i < RECEIVERS; i++) {
        assert_int_equal(pthread_create(&receivers[i], NULL, receiver_main, sh), 0);
    }
    for (uint32_t i = 0; i < SENDERS; i++) {
        args[i] = (sender_arg){sh, i};
        assert_int_equal(pthread_create(&senders[i], NULL, sender_main, &args[i]), 0);
    }
    for (int i = 0; i < SENDERS; i++) {
        pthread_join(senders[i], NULL);
    }
    for (int i = 0; i < RECEIVERS; i++) {
        pthread_join(receivers[i], NULL);
    }
    assert_int_equal(sh->send_err, SDK_OK);
    assert_int_equal(sh->recv_err, SDK_OK);
    assert_int_equal(sh->received, TOTAL);
    for (uint32_t s = 0; s < SENDERS; s++) {
        for (uint32_t i = 0; i < PER_SENDER; i++) {
            assert_int_equal(sh->copies[s][i], 1);
            if (i > 0) {
                assert_true(sh->seq_of[s][i] > sh->seq_of[s][i - 1]);
            }
        }
    }
    sdk_destroy(sh->c);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_client_many_threads, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_many_clients, ht_setup_echo_server, ht_teardown_server),
        cmocka_unit_test_setup_teardown(test_blocked_senders_resume, ht_setup_echo_server, ht_teardown_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
