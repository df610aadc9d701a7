/*
 * Client sequences (sdk_send_seq, sdk_flush_to) and lifetime counters across a lost
 * session: build/bin/lifeline-server is killed and restarted on the same port, the new
 * process does not know the session, so the client opens a new one and renumbers its
 * wire sequences. The client sequences it handed out stay valid, keep counting, and
 * sdk_flush_to waits on them; no sdk_stats counter goes back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <signal.h>
#include <string.h>

#define FIRST 3

static uint64_t send_seq(sdk_client *c, const char *text)
{
    uint64_t seq = 0;
    assert_int_equal(sdk_send_seq(c, NULL, text, strlen(text), HT_WAIT_MS, &seq), SDK_OK);
    return seq;
}

/* Every lifetime counter in after is at least what it was in before. */
static void assert_counters_kept(const sdk_stats *before, const sdk_stats *after)
{
    const struct {
        const char *name;
        uint64_t was, now;
    } k[] = {
        {"connects", before->connects, after->connects},
        {"heartbeats_sent", before->heartbeats_sent, after->heartbeats_sent},
        {"heartbeats_answered", before->heartbeats_answered, after->heartbeats_answered},
        {"msgs_sent", before->msgs_sent, after->msgs_sent},
        {"bytes_sent", before->bytes_sent, after->bytes_sent},
        {"msgs_received", before->msgs_received, after->msgs_received},
        {"retransmits", before->retransmits, after->retransmits},
        {"acks_sent", before->acks_sent, after->acks_sent},
        {"acks_received", before->acks_received, after->acks_received},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        if (k[i].now < k[i].was) {
            fail_msg("%s went back from %llu to %llu", k[i].name, (unsigned long long)k[i].was,
                     (unsigned long long)k[i].now);
        }
    }
}

/* Once the client has failed to reconnect, a flush that times out says why. */
static void expect_not_connected_detail(sdk_client *c)
{
    char detail[512] = "";
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    while (sdk_last_error(c, detail, sizeof detail) != SDK_ECONNREFUSED && ht_now_ms() < deadline) {
        ht_sleep_ms(5);
    }
    assert_int_equal(sdk_flush(c, 0), SDK_ETIMEDOUT);
    assert_int_equal(sdk_last_call_error(detail, sizeof detail), SDK_ETIMEDOUT);
    if (!strstr(detail, "not connected: SDK_ECONNREFUSED: connect 127.0.0.1:")) {
        fail_msg("flush timeout detail: \"%s\"", detail);
    }
}

static void test_sequences_survive_session_loss(void **state)
{
    ht_proc proc;
    ht_events ev;
    sdk_config cfg;
    sdk_client *c = NULL;
    sdk_stats before, after;
    (void)state;
    assert_int_equal(ht_proc_start(&proc, 0, NULL), 0);
    ht_events_init(&ev);
    ht_client_config(&cfg, proc.port);
    cfg.heartbeat_interval_ms = 50; /* heartbeats to count before the loss */
    cfg.reconnect_min_ms = 20;
    cfg.reconnect_max_ms = 100;
    ht_events_attach(&ev, &cfg);
    assert_int_equal(sdk_connect(&cfg, &c), SDK_OK);
    assert_int_equal(sdk_flush_to(c, 0, 0), SDK_OK); /* nothing to wait for */
    for (uint64_t i = 1; i <= FIRST; i++) {
        assert_int_equal(send_seq(c, "before"), i);
    }
    assert_int_equal(sdk_flush_to(c, FIRST, HT_WAIT_MS), SDK_OK);
    assert_int_equal(sdk_flush_to(c, FIRST + 1, 0), SDK_EINVAL); /* not queued yet */
    ht_sleep_ms(300);                                            /* idle: pings and pongs */
    assert_int_equal(sdk_get_stats(c, &before), SDK_OK);
    assert_true(before.heartbeats_answered > 0);

    uint16_t port = proc.port;
    ht_proc_stop(&proc, SIGKILL);
    /* Queued while the server is gone: they go out in the new session, as 1 and 2 there. */
    assert_int_equal(send_seq(c, "during"), FIRST + 1);
    assert_int_equal(send_seq(c, "during"), FIRST + 2);
    assert_int_equal(sdk_flush_to(c, FIRST + 2, 0), SDK_ETIMEDOUT);
    expect_not_connected_detail(c);
    assert_int_equal(ht_proc_start(&proc, port, NULL), 0);
    assert_true(ht_events_wait(&ev, SDK_EVENT_SESSION_LOST, 0, HT_WAIT_MS, NULL) >= 0);
    assert_int_equal(sdk_flush_to(c, FIRST + 2, HT_WAIT_MS), SDK_OK);
    assert_int_equal(send_seq(c, "after"), FIRST + 3);
    assert_int_equal(sdk_flush(c, HT_WAIT_MS), SDK_OK);

    assert_int_equal(sdk_get_stats(c, &after), SDK_OK);
    assert_int_equal(after.sessions_lost, 1);
    assert_counters_kept(&before, &after);
    assert_int_equal(sdk_close(c), SDK_OK);
    assert_int_equal(sdk_flush_to(c, 1, HT_WAIT_MS), SDK_ECLOSED);
    uint64_t seq = 99;
    assert_int_equal(sdk_send_seq(c, NULL, "x", 1, 0, &seq), SDK_ECLOSED);
    assert_int_equal(seq, 0);
    sdk_destroy(c);
    ht_events_free(&ev);
    ht_proc_stop(&proc, SIGTERM);
}

static void test_bad_arguments(void **state)
{
    uint64_t seq = 99;
    (void)state;
    assert_int_equal(sdk_send_seq(NULL, NULL, "x", 1, 0, &seq), SDK_EINVAL);
    assert_int_equal(seq, 0);
    assert_int_equal(sdk_flush_to(NULL, 1, 0), SDK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences_survive_session_loss),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
