/*
 * Unit tests for sdk/src/session.c: sequence numbering, what ll_session_write puts on the
 * wire (decoded back with the real decoder), the message and byte windows, cumulative acks,
 * incoming duplicate/gap handling, the ack policy, resume, restart after a lost session and
 * the arithmetic at very large sequence numbers. Every protocol violation the module
 * reports is exercised and checked to leave the state untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codec.h"
#include "ll.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_WINDOW_BYTES (UINT64_C(1) << 30)
#define MAX_FRAMES       64

/* ---- helpers ---------------------------------------------------------------------------- */

/* Queue message number i: payload "msg-<i>", the given type. Returns its sequence. */
static uint64_t enqueue(ll_session *s, int i, const char *type)
{
    char payload[32];
    int n = snprintf(payload, sizeof payload, "msg-%d", i);
    uint64_t seq = s->acked + s->sendq.count + 1;
    assert_int_equal(ll_session_enqueue(s, payload, (size_t)n, type), 0);
    return seq;
}

/* Queue a message of exactly len bytes (all 'x'). */
static void enqueue_len(ll_session *s, size_t len)
{
    static const char xs[256] = {0};
    assert_true(len <= sizeof xs);
    assert_int_equal(ll_session_enqueue(s, xs, len, NULL), 0);
}

typedef struct decoded {
    size_t count;
    uint64_t seq[MAX_FRAMES];
    char payload[MAX_FRAMES][32];
    char type[MAX_FRAMES][32];
} decoded;

/* Decode every frame in out (without consuming it); each must be a Data frame. */
static void decode_all(const ll_buf *out, decoded *d)
{
    ll_decoder dec;
    Lifeline__Frame *f = NULL;
    int rc;

    memset(d, 0, sizeof *d);
    ll_decoder_init(&dec, LL_MAX_FRAME_DEFAULT);
    assert_int_equal(ll_decoder_feed(&dec, ll_buf_head(out), ll_buf_size(out)), 0);
    while ((rc = ll_decoder_next(&dec, &f)) == 1) {
        assert_true(d->count < MAX_FRAMES);
        assert_int_equal(f->kind_case, LIFELINE__FRAME__KIND_DATA);
        d->seq[d->count] = f->data->seq;
        assert_true(f->data->payload.len < sizeof d->payload[0]);
        memcpy(d->payload[d->count], f->data->payload.data, f->data->payload.len);
        snprintf(d->type[d->count], sizeof d->type[0], "%s", f->data->type ? f->data->type : "");
        d->count++;
        ll_frame_free(f);
    }
    assert_int_equal(rc, 0); /* no trailing partial frame, no error */
    assert_int_equal(dec.in.len - dec.in.off, 0);
    ll_decoder_free(&dec);
}

static void assert_payload(const char *got, int i)
{
    char want[32];
    snprintf(want, sizeof want, "msg-%d", i);
    assert_string_equal(got, want);
}

/* The payload of sendq entry k must be "msg-<i>". */
static void assert_queued(const ll_session *s, size_t k, int i)
{
    char want[32];
    int n = snprintf(want, sizeof want, "msg-%d", i);
    ll_data_view v;
    ll_frameq_view(&s->sendq, k, &v);
    assert_int_equal(v.len, (size_t)n);
    assert_memory_equal(v.payload, want, (size_t)n);
}

/* The sequence encoded in sendq's k-th frame. */
static uint64_t queued_seq(const ll_session *s, size_t k)
{
    ll_data_view v;
    ll_frameq_view(&s->sendq, k, &v);
    return v.seq;
}

/* Every field that a rejected operation must leave alone. */
static void assert_same_state(const ll_session *a, const ll_session *b)
{
    assert_int_equal(a->sendq.count, b->sendq.count);
    assert_int_equal(a->sendq.first, b->sendq.first);
    assert_int_equal(a->sendq.bytes, b->sendq.bytes);
    assert_int_equal(a->sendq.copied, b->sendq.copied);
    assert_int_equal(a->sendq.copied_bytes, b->sendq.copied_bytes);
    assert_int_equal(a->acked, b->acked);
    assert_int_equal(a->high_written, b->high_written);
    assert_int_equal(a->received, b->received);
    assert_int_equal(a->consumed, b->consumed);
    assert_int_equal(a->ack_sent, b->ack_sent);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->enqueued_total, b->enqueued_total);
    assert_int_equal(a->acked_total, b->acked_total);
    assert_int_equal(a->msgs_sent, b->msgs_sent);
    assert_int_equal(a->bytes_sent, b->bytes_sent);
    assert_int_equal(a->retransmits, b->retransmits);
    assert_int_equal(a->msgs_received, b->msgs_received);
    assert_int_equal(a->bytes_received, b->bytes_received);
    assert_int_equal(a->duplicates, b->duplicates);
}

/* Write with no output or frame limit. */
static void write_all(ll_session *s, ll_buf *out)
{
    assert_int_equal(ll_session_write(s, out, SIZE_MAX), 0);
}

static size_t msg_len(int i)
{
    char tmp[32];
    return (size_t)snprintf(tmp, sizeof tmp, "msg-%d", i);
}

/* A received message the application takes, for ll_session_consumed. */
static ll_msg received_msg(uint64_t seq, uint32_t epoch)
{
    ll_msg m;
    memset(&m, 0, sizeof m);
    m.pub.seq = seq;
    m.epoch = epoch;
    return m;
}

/* ---- init and enqueue ------------------------------------------------------------------- */

static void test_init_defaults(void **state)
{
    (void)state;
    ll_session s;

    ll_session_init(&s, 100, 5000);
    assert_int_equal(s.window_messages, 100);
    assert_int_equal(s.window_bytes, 5000);
    assert_int_equal(s.ack_every, 25); /* a quarter window */
    assert_int_equal(s.acked, 0);
    assert_int_equal(s.received, 0);
    assert_int_equal(s.epoch, 0);
    ll_session_free(&s);

    /* Zero windows would stall the stream forever: both are raised to 1. */
    ll_session_init(&s, 0, 0);
    assert_int_equal(s.window_messages, 1);
    assert_int_equal(s.window_bytes, 1);
    assert_int_equal(s.ack_every, 1);
    ll_session_free(&s);

    ll_session_init(&s, 3, 1); /* 3 / 4 == 0, but acks must still go out */
    assert_int_equal(s.ack_every, 1);
    ll_session_free(&s);
}

static void test_enqueue_assigns_sequences(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(enqueue(&s, i, NULL), (uint64_t)i);
    }
    assert_int_equal(s.sendq.count, 5);
    assert_int_equal(s.enqueued_total, 5);
    assert_int_equal(s.sendq.bytes, 5 * msg_len(1));
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(queued_seq(&s, k), k + 1);
    }

    /* After an ack of 3, the next message is still acked + 1 + count. */
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 3, NULL), 0);
    assert_int_equal(enqueue(&s, 6, NULL), 6);
    assert_int_equal(s.acked + s.sendq.count, 6);
    assert_int_equal(queued_seq(&s, s.sendq.count - 1), 6);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_enqueue_after_existing_acked(void **state)
{
    (void)state;
    ll_session s;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    s.acked = 41;
    s.high_written = 41;
    assert_int_equal(enqueue(&s, 1, NULL), 42);
    assert_int_equal(enqueue(&s, 2, NULL), 43);
    assert_int_equal(enqueue(&s, 3, NULL), 44);
    assert_int_equal(queued_seq(&s, 2), 44);
    ll_session_free(&s);
}

/* ---- write ------------------------------------------------------------------------------ */

static void test_write_encodes_unwritten(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    enqueue(&s, 1, "lifeline.test.A");
    enqueue(&s, 2, NULL);
    enqueue(&s, 3, ""); /* "" means no type, like NULL */
    write_all(&s, &out);

    decode_all(&out, &d);
    assert_int_equal(d.count, 3);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(d.seq[k], k + 1);
        assert_payload(d.payload[k], (int)k + 1);
    }
    assert_string_equal(d.type[0], "lifeline.test.A");
    assert_string_equal(d.type[1], "");
    assert_string_equal(d.type[2], "");
    assert_int_equal(s.sendq.copied, 3);
    assert_int_equal(s.sendq.copied_bytes, 3 * msg_len(1));
    assert_int_equal(s.msgs_sent, 3);
    assert_int_equal(s.bytes_sent, 3 * msg_len(1));
    assert_int_equal(s.high_written, 3);
    assert_int_equal(s.retransmits, 0);
    assert_int_equal(s.sendq.count, 3); /* still held until acknowledged */

    /* Nothing unwritten: a second write appends nothing. */
    size_t before = ll_buf_size(&out);
    write_all(&s, &out);
    assert_int_equal(ll_buf_size(&out), before);
    assert_int_equal(s.msgs_sent, 3);

    /* Only the new messages go out next time. */
    ll_buf_clear(&out);
    enqueue(&s, 4, NULL);
    enqueue(&s, 5, "t");
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.seq[0], 4);
    assert_int_equal(d.seq[1], 5);
    assert_payload(d.payload[0], 4);
    assert_payload(d.payload[1], 5);
    assert_string_equal(d.type[1], "t");
    assert_int_equal(s.sendq.copied, 5);
    assert_int_equal(s.high_written, 5);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_write_empty_queue(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    write_all(&s, &out);
    assert_int_equal(ll_buf_size(&out), 0);
    assert_int_equal(s.sendq.copied, 0);
    assert_int_equal(s.msgs_sent, 0);
    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_write_respects_window_messages(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;

    ll_session_init(&s, 3, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 6; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.seq[2], 3);
    assert_int_equal(s.sendq.copied, 3);

    /* Window full: nothing more until an ack. */
    ll_buf_clear(&out);
    write_all(&s, &out);
    assert_int_equal(ll_buf_size(&out), 0);

    /* One acked opens one slot. */
    assert_int_equal(ll_session_on_ack(&s, 1, NULL), 0);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.seq[0], 4);
    assert_payload(d.payload[0], 4);

    /* Three acked opens the rest. */
    ll_buf_clear(&out);
    assert_int_equal(ll_session_on_ack(&s, 4, NULL), 0);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 2);
    assert_int_equal(d.seq[0], 5);
    assert_int_equal(d.seq[1], 6);
    assert_int_equal(s.sendq.copied, 2);
    assert_int_equal(s.high_written, 6);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_write_respects_window_bytes(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;

    /* Never more than window_bytes in flight: the message that would cross the limit
     * waits for an ack (only one bigger than the whole window goes, alone: see below). */
    ll_session_init(&s, 100, 10);
    for (int i = 0; i < 6; i++) {
        enqueue_len(&s, 4);
    }
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 2); /* in flight after each: 4, 8 <= 10; a third would make 12 */
    assert_int_equal(s.sendq.copied, 2);
    assert_int_equal(s.sendq.copied_bytes, 8);
    assert_false(ll_session_can_write(&s));

    ll_buf_clear(&out);
    write_all(&s, &out);
    assert_int_equal(ll_buf_size(&out), 0);

    /* Acking one leaves 4 in flight: one more fits. */
    assert_int_equal(ll_session_on_ack(&s, 1, NULL), 0);
    assert_int_equal(s.sendq.copied_bytes, 4);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.seq[0], 3);
    assert_int_equal(s.sendq.copied_bytes, 8);

    ll_buf_free(&out);
    ll_session_free(&s);

    /* A single message larger than the whole byte window still goes out, alone. */
    ll_session_init(&s, 100, 10);
    enqueue_len(&s, 50);
    enqueue_len(&s, 1);
    write_all(&s, &out);
    assert_int_equal(s.sendq.copied, 1);
    assert_int_equal(s.sendq.copied_bytes, 50);
    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_write_respects_out_limit(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;
    size_t frame = ll_data_frame_size(1, msg_len(1), NULL); /* seqs 1..9: same size */

    ll_session_init(&s, 100, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 9; i++) {
        enqueue(&s, i, NULL);
    }

    /* A zero limit writes nothing. */
    assert_int_equal(ll_session_write(&s, &out, 0), 0);
    assert_int_equal(ll_buf_size(&out), 0);
    assert_int_equal(s.sendq.copied, 0);

    /* Writing goes on while out holds less than the limit: 1 byte of room takes one frame. */
    assert_int_equal(ll_session_write(&s, &out, 1), 0);
    assert_int_equal(ll_buf_size(&out), frame);
    assert_int_equal(s.sendq.copied, 1);

    /* Exactly three frames' worth: out reaches the limit after two more. */
    assert_int_equal(ll_session_write(&s, &out, 3 * frame), 0);
    assert_int_equal(ll_buf_size(&out), 3 * frame);
    assert_int_equal(s.sendq.copied, 3);

    /* Bytes already in out count against the limit: out is at it, so nothing is added. */
    assert_int_equal(ll_session_write(&s, &out, 3 * frame), 0);
    assert_int_equal(ll_buf_size(&out), 3 * frame);
    assert_int_equal(s.sendq.copied, 3);

    /* One byte more than four frames: five go in (the fifth starts below the limit). */
    assert_int_equal(ll_session_write(&s, &out, 4 * frame + 1), 0);
    assert_int_equal(ll_buf_size(&out), 5 * frame);
    assert_int_equal(s.sendq.copied, 5);

    decode_all(&out, &d);
    assert_int_equal(d.count, 5);
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(d.seq[k], k + 1);
        assert_payload(d.payload[k], (int)k + 1);
    }

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* Our own frame limit is checked before anything is queued: what is queued always fits. */
static void test_check_msg_limits(void **state)
{
    (void)state;
    static const char payload[256] = {0};
    ll_outgoing o;
    size_t fits = 64 - ll_data_frame_size(UINT64_MAX, 0, NULL) - 2; /* payload key + 1-byte length */

    assert_int_equal(ll_data_frame_size(UINT64_MAX, fits, NULL), 64);
    assert_int_equal(ll_session_check_msg(payload, fits, NULL, 64, 1000, &o), 0);
    assert_int_equal(o.frame_size, 64);
    assert_int_equal(o.len, fits);
    assert_int_equal(ll_session_check_msg(payload, fits + 1, NULL, 64, 1000, &o), SDK_ETOOBIG);
    assert_int_equal(ll_session_check_msg(payload, fits, "t", 64, 1000, &o), SDK_ETOOBIG);  /* the type counts */
    assert_int_equal(ll_session_check_msg(payload, 200, NULL, 1024, 199, &o), SDK_ETOOBIG); /* over the byte bound */
    assert_int_equal(ll_session_check_msg(NULL, 1, NULL, 1024, 1000, &o), SDK_EINVAL);
    assert_int_equal(ll_session_check_msg(NULL, 0, NULL, 1024, 1000, &o), 0);
}

/* ---- acknowledgements ------------------------------------------------------------------- */

static void test_ack_frees_exactly(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    size_t freed = 99;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    enqueue(&s, 1, NULL);
    enqueue(&s, 2, NULL);
    enqueue(&s, 3, NULL);
    enqueue(&s, 40, NULL); /* a longer payload, so byte counts tell messages apart */
    enqueue(&s, 500, NULL);
    write_all(&s, &out);
    assert_int_equal(s.sendq.copied_bytes, 3 * msg_len(1) + msg_len(40) + msg_len(500));

    assert_int_equal(ll_session_on_ack(&s, 3, &freed), 0);
    assert_int_equal(freed, 3);
    assert_int_equal(s.acked, 3);
    assert_int_equal(s.acked_total, 3);
    assert_int_equal(s.sendq.count, 2);
    assert_int_equal(s.sendq.bytes, msg_len(40) + msg_len(500));
    assert_int_equal(s.sendq.copied, 2);
    assert_int_equal(s.sendq.copied_bytes, msg_len(40) + msg_len(500));
    assert_queued(&s, 0, 40);
    assert_int_equal(queued_seq(&s, 0), 4);
    assert_queued(&s, 1, 500);

    assert_int_equal(ll_session_on_ack(&s, 4, &freed), 0);
    assert_int_equal(freed, 1);
    assert_int_equal(s.sendq.copied_bytes, msg_len(500));
    assert_queued(&s, 0, 500);

    assert_int_equal(ll_session_on_ack(&s, 5, NULL), 0); /* freed may be NULL */
    assert_int_equal(s.sendq.count, 0);
    assert_int_equal(s.sendq.bytes, 0);
    assert_int_equal(s.sendq.copied, 0);
    assert_int_equal(s.sendq.copied_bytes, 0);
    assert_int_equal(s.acked, 5);
    assert_int_equal(s.acked_total, 5);
    assert_int_equal(s.enqueued_total, 5);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_ack_leaves_unwritten_alone(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    size_t freed = 99;

    /* Window 2: messages 3 and 4 are queued but not written; acking 2 must not touch them. */
    ll_session_init(&s, 2, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 4; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 2, &freed), 0);
    assert_int_equal(freed, 2);
    assert_int_equal(s.sendq.copied, 0);
    assert_int_equal(s.sendq.copied_bytes, 0);
    assert_int_equal(s.sendq.count, 2);
    assert_queued(&s, 0, 3);
    assert_queued(&s, 1, 4);

    ll_buf_clear(&out);
    write_all(&s, &out);
    assert_int_equal(s.sendq.copied, 2);
    assert_int_equal(s.retransmits, 0);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_duplicate_and_old_acks_harmless(void **state)
{
    (void)state;
    ll_session s, before;
    ll_buf out = {0};
    size_t freed;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 3, NULL), 0);
    before = s;

    const uint64_t stale[] = {3, 3, 2, 1, 0};
    for (size_t k = 0; k < sizeof stale / sizeof stale[0]; k++) {
        freed = 99;
        assert_int_equal(ll_session_on_ack(&s, stale[k], &freed), 0);
        assert_int_equal(freed, 0);
        assert_same_state(&s, &before);
    }
    assert_queued(&s, 0, 4);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_ack_beyond_written_rejected(void **state)
{
    (void)state;
    ll_session s, before;
    ll_buf out = {0};

    /* Five queued, three written (window 3): acking 4 acknowledges something never sent. */
    ll_session_init(&s, 3, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    before = s;
    assert_int_equal(ll_session_on_ack(&s, 4, NULL), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_on_ack(&s, 6, NULL), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_on_ack(&s, UINT64_MAX, NULL), SDK_EPROTO);
    assert_same_state(&s, &before);

    /* After acking 2, written covers 3 only: 4 is still beyond it. */
    assert_int_equal(ll_session_on_ack(&s, 2, NULL), 0);
    before = s;
    assert_int_equal(ll_session_on_ack(&s, 4, NULL), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_on_ack(&s, 3, NULL), 0);
    ll_session_free(&s);

    /* Nothing written at all: any ack above 0 is a violation. */
    ll_session_init(&s, 3, BIG_WINDOW_BYTES);
    enqueue(&s, 1, NULL);
    before = s;
    assert_int_equal(ll_session_on_ack(&s, 1, NULL), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_on_ack(&s, 0, NULL), 0);
    assert_same_state(&s, &before);

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* ---- incoming data ---------------------------------------------------------------------- */

static void test_on_data(void **state)
{
    (void)state;
    ll_session s, before;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    assert_int_equal(ll_session_on_data(&s, 1, 10), LL_DATA_ACCEPT);
    assert_int_equal(ll_session_on_data(&s, 2, 5), LL_DATA_ACCEPT);
    assert_int_equal(s.received, 2);
    assert_int_equal(s.msgs_received, 2);
    assert_int_equal(s.bytes_received, 15);
    assert_int_equal(s.duplicates, 0);

    /* Duplicates (the peer retransmitting after a resume) are counted and dropped. */
    assert_int_equal(ll_session_on_data(&s, 2, 5), LL_DATA_DUPLICATE);
    assert_int_equal(ll_session_on_data(&s, 1, 10), LL_DATA_DUPLICATE);
    assert_int_equal(s.duplicates, 2);
    assert_int_equal(s.received, 2);
    assert_int_equal(s.msgs_received, 2);
    assert_int_equal(s.bytes_received, 15);

    /* A gap is a protocol violation and changes nothing. */
    before = s;
    assert_int_equal(ll_session_on_data(&s, 4, 7), LL_DATA_INVALID);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_on_data(&s, UINT64_MAX, 7), LL_DATA_INVALID);
    assert_same_state(&s, &before);

    /* Sequence 0 is never valid; it must not be accepted. */
    assert_int_not_equal(ll_session_on_data(&s, 0, 7), LL_DATA_ACCEPT);
    assert_int_equal(s.received, 2);
    assert_int_equal(s.msgs_received, 2);

    /* The stream continues at the next one. */
    assert_int_equal(ll_session_on_data(&s, 3, 0), LL_DATA_ACCEPT);
    assert_int_equal(s.received, 3);
    assert_int_equal(s.msgs_received, 3);
    assert_int_equal(s.bytes_received, 15);
    ll_session_free(&s);
}

/* ---- ack policy ------------------------------------------------------------------------- */

static void test_ack_policy(void **state)
{
    (void)state;
    ll_session s;
    ll_msg m;

    ll_session_init(&s, 8, BIG_WINDOW_BYTES); /* ack_every = 2 */
    assert_int_equal(s.ack_every, 2);
    assert_false(ll_session_ack_due(&s, true));
    assert_false(ll_session_ack_due(&s, false));

    m = received_msg(1, 0);
    ll_session_consumed(&s, &m);
    assert_int_equal(s.consumed, 1);
    assert_true(ll_session_ack_due(&s, true));   /* the reader is idle: tell the peer now */
    assert_false(ll_session_ack_due(&s, false)); /* 1 < ack_every: wait for more */

    m = received_msg(2, 0);
    ll_session_consumed(&s, &m);
    assert_true(ll_session_ack_due(&s, false));
    assert_int_equal(ll_session_ack_take(&s), 2);
    assert_int_equal(s.ack_sent, 2);
    assert_false(ll_session_ack_due(&s, true));
    assert_false(ll_session_ack_due(&s, false));

    /* Consuming an older sequence again does not move consumed back or make an ack due. */
    m = received_msg(1, 0);
    ll_session_consumed(&s, &m);
    assert_int_equal(s.consumed, 2);
    assert_false(ll_session_ack_due(&s, true));

    /* Three more: due without idle after two, and the ack carries the highest consumed. */
    m = received_msg(3, 0);
    ll_session_consumed(&s, &m);
    assert_false(ll_session_ack_due(&s, false));
    m = received_msg(4, 0);
    ll_session_consumed(&s, &m);
    m = received_msg(5, 0);
    ll_session_consumed(&s, &m);
    assert_true(ll_session_ack_due(&s, false));
    assert_int_equal(ll_session_ack_take(&s), 5);
    assert_false(ll_session_ack_due(&s, true));

    /* A message of another epoch (from before a restart) moves nothing. */
    m = received_msg(9, 3);
    ll_session_consumed(&s, &m);
    assert_int_equal(s.consumed, 5);
    assert_false(ll_session_ack_due(&s, true));
    ll_session_free(&s);

    /* Window 1: every consumed message is due at once. */
    ll_session_init(&s, 1, BIG_WINDOW_BYTES);
    m = received_msg(1, 0);
    ll_session_consumed(&s, &m);
    assert_true(ll_session_ack_due(&s, false));
    ll_session_free(&s);
}

/* ---- resume ----------------------------------------------------------------------------- */

static void test_resume_rewinds_and_retransmits(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;
    ll_msg m;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    m = received_msg(4, 0);
    ll_session_consumed(&s, &m);
    (void)ll_session_ack_take(&s);
    assert_false(ll_session_ack_due(&s, true));

    /* The connection died; the new one says the peer has 1 and 2. */
    assert_int_equal(ll_session_resume(&s, 2), 0);
    assert_int_equal(s.acked, 2);
    assert_int_equal(s.acked_total, 2);
    assert_int_equal(s.sendq.count, 3);
    assert_int_equal(s.sendq.copied, 0);
    assert_int_equal(s.sendq.copied_bytes, 0);
    assert_queued(&s, 0, 3);
    /* Our ack is announced again on the new connection. */
    assert_int_equal(s.ack_sent, 0);
    assert_true(ll_session_ack_due(&s, true));
    assert_int_equal(ll_session_ack_take(&s), 4);

    ll_buf_clear(&out);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 3);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(d.seq[k], k + 3);
        assert_payload(d.payload[k], (int)k + 3);
    }
    assert_int_equal(s.retransmits, 3);
    assert_int_equal(s.msgs_sent, 8);
    assert_int_equal(s.high_written, 5);

    /* Everything arrived: resuming at 5 frees the rest. */
    assert_int_equal(ll_session_resume(&s, 5), 0);
    assert_int_equal(s.sendq.count, 0);
    assert_int_equal(s.acked, 5);
    assert_int_equal(s.acked_total, 5);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_resume_counts_only_real_retransmits(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;

    /* Window 3 with 5 queued: 1..3 written. Resume at 1; 2 and 3 are retransmits, 4 is new. */
    ll_session_init(&s, 3, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    assert_int_equal(ll_session_resume(&s, 1), 0);
    ll_buf_clear(&out);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.seq[0], 2);
    assert_int_equal(d.seq[2], 4);
    assert_payload(d.payload[2], 4);
    assert_int_equal(s.retransmits, 2);
    assert_int_equal(s.high_written, 4);

    /* Resume where we are: nothing freed, everything in flight is written again. */
    assert_int_equal(ll_session_resume(&s, 1), 0);
    assert_int_equal(s.acked, 1);
    assert_int_equal(s.sendq.count, 4);
    ll_buf_clear(&out);
    write_all(&s, &out);
    assert_int_equal(s.retransmits, 5);
    assert_int_equal(s.sendq.copied, 3);

    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_resume_out_of_range(void **state)
{
    (void)state;
    ll_session s, before;
    ll_buf out = {0};

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 2, NULL), 0);
    before = s;

    /* Below what the peer already acknowledged. */
    assert_int_equal(ll_session_resume(&s, 1), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_resume(&s, 0), SDK_EPROTO);
    assert_same_state(&s, &before);
    /* Beyond anything queued. */
    assert_int_equal(ll_session_resume(&s, 6), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_resume(&s, UINT64_MAX), SDK_EPROTO);
    assert_same_state(&s, &before);

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* A session and an output buffer that teardown frees even when an assertion fails, for
 * tests that split into cases: each case gets its own fixture. */
typedef struct fixture {
    ll_session s;
    ll_buf out;
} fixture;

static int fixture_setup(void **state)
{
    static fixture fx;
    ll_session_init(&fx.s, 3, BIG_WINDOW_BYTES);
    fx.out = (ll_buf){0};
    *state = &fx;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *fx = *state;
    ll_session_free(&fx->s);
    ll_buf_free(&fx->out);
    return 0;
}

/* session.h: "SDK_EPROTO if peer_received is outside what we ever wrote". A peer that
 * claims a message we queued but never put on the wire is broken; accepting the claim
 * would drop that message unsent (and let sdk_flush report it delivered). */
static void test_resume_beyond_written_rejected(void **state)
{
    fixture *fx = *state;
    ll_session *s = &fx->s;
    ll_session before;

    /* Window 3: 1..3 written, 4 and 5 never were. */
    for (int i = 1; i <= 5; i++) {
        enqueue(s, i, NULL);
    }
    write_all(s, &fx->out);
    assert_int_equal(s->high_written, 3);
    before = *s;
    assert_int_equal(ll_session_resume(s, 4), SDK_EPROTO);
    assert_same_state(s, &before);
    assert_int_equal(ll_session_resume(s, 5), SDK_EPROTO);
    assert_same_state(s, &before);
    assert_int_equal(ll_session_resume(s, 3), 0); /* the edge of what was written is fine */
    assert_int_equal(s->sendq.count, 2);
}

static void test_resume_nothing_written_rejected(void **state)
{
    fixture *fx = *state;
    ll_session *s = &fx->s;
    ll_session before;

    /* Queued but never written: only 0 is a valid resume point. */
    enqueue(s, 1, NULL);
    before = *s;
    assert_int_equal(ll_session_resume(s, 1), SDK_EPROTO);
    assert_same_state(s, &before);
    assert_int_equal(ll_session_resume(s, 0), 0);
    assert_int_equal(s->sendq.count, 1);
}

/* ---- restart (session lost) ------------------------------------------------------------- */

static void test_restart_renumbers(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;
    ll_msg m;

    ll_session_init(&s, 3, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 5; i++) {
        enqueue(&s, i, "t");
    }
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 1, NULL), 0);
    for (uint64_t q = 1; q <= 7; q++) {
        assert_int_equal(ll_session_on_data(&s, q, 1), LL_DATA_ACCEPT);
    }
    m = received_msg(6, 0);
    ll_session_consumed(&s, &m);
    assert_int_equal(ll_session_ack_take(&s), 6);
    uint64_t retransmits = s.retransmits;

    assert_int_equal(ll_session_restart(&s), 0);
    assert_int_equal(s.epoch, 1);
    assert_int_equal(s.acked, 0);
    assert_int_equal(s.sendq.copied, 0);
    assert_int_equal(s.sendq.copied_bytes, 0);
    assert_int_equal(s.high_written, 0);
    assert_int_equal(s.received, 0);
    assert_int_equal(s.consumed, 0);
    assert_int_equal(s.ack_sent, 0);
    assert_false(ll_session_ack_due(&s, true));
    /* Unacknowledged messages 2..5 keep their order and become 1..4 of epoch 1. */
    assert_int_equal(s.sendq.count, 4);
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(queued_seq(&s, k), k + 1);
        assert_queued(&s, k, (int)k + 2);
    }
    /* Totals are for sdk_flush: nothing was acknowledged by the restart. */
    assert_int_equal(s.enqueued_total, 5);
    assert_int_equal(s.acked_total, 1);

    /* Out again from 1 (window 3): old 2, 3 (new 1, 2) were written in the lost session, so
     * they count as retransmits (counters are for the client's life); old 4 is a first write. */
    ll_buf_clear(&out);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 3);
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(d.seq[k], k + 1);
        assert_payload(d.payload[k], (int)k + 2);
        assert_string_equal(d.type[k], "t");
    }
    assert_int_equal(s.retransmits, retransmits + 2);
    assert_int_equal(s.high_written, 3);

    /* New messages continue the new numbering in the new epoch. */
    assert_int_equal(enqueue(&s, 6, NULL), 5);
    assert_int_equal(queued_seq(&s, 4), 5);

    /* Incoming sequences restart at 1 too. */
    assert_int_equal(ll_session_on_data(&s, 1, 1), LL_DATA_ACCEPT);
    assert_int_equal(s.received, 1);
    assert_int_equal(ll_session_on_data(&s, 3, 1), LL_DATA_INVALID);

    /* The application still reading a message of the old session must not move what we
     * acknowledge in the new one. */
    m = received_msg(7, 0);
    ll_session_consumed(&s, &m);
    assert_int_equal(s.consumed, 0);
    assert_false(ll_session_ack_due(&s, true));
    m = received_msg(1, 1);
    ll_session_consumed(&s, &m);
    assert_int_equal(s.consumed, 1);
    assert_true(ll_session_ack_due(&s, true));

    /* Acks now use the new numbering. */
    size_t freed = 0;
    assert_int_equal(ll_session_on_ack(&s, 3, &freed), 0);
    assert_int_equal(freed, 3);
    assert_int_equal(s.acked_total, 4);
    assert_int_equal(s.enqueued_total - s.acked_total, s.sendq.count);
    assert_queued(&s, 0, 5);

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* Retransmits are the client's for its whole life: writes again after a lost session count,
 * in the new session and after a resume of it, and after a second loss. */
static void test_restart_keeps_counting_retransmits(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    ll_session_init(&s, 2, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 3; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out); /* 1 and 2 (window 2) */
    assert_int_equal(s.retransmits, 0);
    assert_int_equal(ll_session_restart(&s), 0);
    write_all(&s, &out); /* old 1, 2 again as new 1, 2: both written before */
    assert_int_equal(s.retransmits, 2);
    assert_int_equal(ll_session_on_ack(&s, 1, NULL), 0);
    write_all(&s, &out); /* new 3 (old 3): a first write */
    assert_int_equal(s.retransmits, 2);
    assert_int_equal(ll_session_resume(&s, 1), 0);
    write_all(&s, &out); /* 2 and 3 again on the next connection */
    assert_int_equal(s.retransmits, 4);
    assert_int_equal(ll_session_restart(&s), 0); /* 2, 3 become 1, 2: both written before */
    write_all(&s, &out);
    assert_int_equal(s.retransmits, 6);
    assert_int_equal(s.msgs_sent, 9);
    ll_buf_free(&out);
    ll_session_free(&s);
}

static void test_restart_twice_and_empty(void **state)
{
    (void)state;
    ll_session s;
    ll_msg m;

    ll_session_init(&s, 4, BIG_WINDOW_BYTES);
    assert_int_equal(ll_session_restart(&s), 0);
    assert_int_equal(ll_session_restart(&s), 0);
    assert_int_equal(s.epoch, 2);
    assert_int_equal(s.sendq.count, 0);
    assert_int_equal(enqueue(&s, 1, NULL), 1);
    assert_int_equal(queued_seq(&s, 0), 1);
    m = received_msg(1, 1); /* epoch 1 is also older */
    ll_session_consumed(&s, &m);
    assert_int_equal(s.consumed, 0);
    ll_session_free(&s);
}

/* ---- flush accounting ------------------------------------------------------------------- */

static void test_flush_totals(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};

    /* Over acks, a resume and a restart, enqueued - acked is what is still outstanding. */
    ll_session_init(&s, 4, BIG_WINDOW_BYTES);
    for (int i = 1; i <= 10; i++) {
        enqueue(&s, i, NULL);
    }
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 2, NULL), 0);
    assert_int_equal(s.enqueued_total - s.acked_total, s.sendq.count);
    assert_int_equal(ll_session_resume(&s, 3), 0);
    assert_int_equal(s.acked_total, 3);
    assert_int_equal(s.enqueued_total - s.acked_total, s.sendq.count);
    assert_int_equal(ll_session_restart(&s), 0);
    assert_int_equal(s.acked_total, 3);
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 4, NULL), 0);
    assert_int_equal(s.acked_total, 7);
    assert_int_equal(s.enqueued_total, 10);
    assert_int_equal(s.enqueued_total - s.acked_total, s.sendq.count);
    write_all(&s, &out);
    assert_int_equal(ll_session_on_ack(&s, 7, NULL), 0);
    assert_int_equal(s.acked_total, s.enqueued_total);
    assert_int_equal(s.sendq.count, 0);

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* ---- large sequence numbers ------------------------------------------------------------- */

/* Sequences are 64-bit from 1 and cannot wrap in practice; this shows the arithmetic holds
 * far up the range (around 2^63, where a signed type would break). */
static void test_large_sequences(void **state)
{
    (void)state;
    const uint64_t base = (UINT64_C(1) << 63) - 2;
    ll_session s, before;
    ll_buf out = {0};
    decoded d;
    size_t freed;
    ll_msg m;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    s.acked = base;
    s.high_written = base;
    s.received = base;
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(enqueue(&s, i, NULL), base + (uint64_t)i);
    }
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 4);
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(d.seq[k], base + k + 1);
        assert_payload(d.payload[k], (int)k + 1);
    }
    assert_int_equal(s.high_written, base + 4);

    before = s;
    assert_int_equal(ll_session_on_ack(&s, base + 5, NULL), SDK_EPROTO);
    assert_same_state(&s, &before);
    assert_int_equal(ll_session_on_ack(&s, base + 2, &freed), 0); /* 2^63 */
    assert_int_equal(freed, 2);
    assert_int_equal(s.acked, UINT64_C(1) << 63);
    assert_queued(&s, 0, 3);
    assert_int_equal(ll_session_on_ack(&s, 5, &freed), 0); /* ancient */
    assert_int_equal(freed, 0);

    assert_int_equal(ll_session_resume(&s, base + 3), 0);
    ll_buf_clear(&out);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.seq[0], base + 4);
    assert_int_equal(s.retransmits, 1);
    before = s;
    assert_int_equal(ll_session_resume(&s, base + 5), SDK_EPROTO);
    assert_same_state(&s, &before);

    assert_int_equal(ll_session_on_data(&s, base + 1, 1), LL_DATA_ACCEPT);
    assert_int_equal(ll_session_on_data(&s, base + 2, 1), LL_DATA_ACCEPT);
    assert_int_equal(ll_session_on_data(&s, base + 1, 1), LL_DATA_DUPLICATE);
    assert_int_equal(ll_session_on_data(&s, base + 4, 1), LL_DATA_INVALID);
    assert_int_equal(s.received, UINT64_C(1) << 63);

    m = received_msg(base + 2, 0);
    ll_session_consumed(&s, &m);
    assert_true(ll_session_ack_due(&s, true));
    assert_int_equal(ll_session_ack_take(&s), base + 2);

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* The very last sequence, UINT64_MAX, is still assigned, written, acknowledged and accepted
 * correctly. (Beyond it the numbering would wrap to 0; see the report, not reachable.) */
static void test_last_sequence(void **state)
{
    (void)state;
    ll_session s;
    ll_buf out = {0};
    decoded d;
    size_t freed;

    ll_session_init(&s, 16, BIG_WINDOW_BYTES);
    s.acked = UINT64_MAX - 1;
    s.high_written = UINT64_MAX - 1;
    s.received = UINT64_MAX - 1;
    assert_int_equal(enqueue(&s, 1, NULL), UINT64_MAX);
    write_all(&s, &out);
    decode_all(&out, &d);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.seq[0], UINT64_MAX);
    assert_int_equal(s.high_written, UINT64_MAX);
    assert_int_equal(ll_session_resume(&s, UINT64_MAX - 1), 0);
    ll_buf_clear(&out);
    write_all(&s, &out);
    assert_int_equal(s.retransmits, 1);
    assert_int_equal(ll_session_on_ack(&s, UINT64_MAX, &freed), 0);
    assert_int_equal(freed, 1);
    assert_int_equal(s.acked, UINT64_MAX);
    assert_int_equal(s.sendq.count, 0);

    assert_int_equal(ll_session_on_data(&s, UINT64_MAX, 3), LL_DATA_ACCEPT);
    assert_int_equal(s.received, UINT64_MAX);

    ll_buf_free(&out);
    ll_session_free(&s);
}

/* offer: the peer's frame limit is final (SDK_ETOOBIG), the queue bounds are not (EQUEUEFULL). */
/* A message as sdk_send checks it. */
static ll_outgoing outgoing(const void *data, size_t len)
{
    ll_outgoing m;
    assert_int_equal(ll_session_check_msg(data, len, NULL, LL_MAX_FRAME_DEFAULT, UINT64_MAX, &m), 0);
    return m;
}

static void test_offer_checks_peer_limit_and_bounds(void **state)
{
    (void)state;
    ll_session s;
    ll_session_init(&s, 16, 1 << 20);
    s.peer_max_frame = 100;
    uint8_t payload[200] = {0};
    ll_outgoing big = outgoing(payload, 200), m = outgoing(payload, 50);
    assert_int_equal(ll_session_offer(&s, &big, 10, 1000), SDK_ETOOBIG);
    assert_int_equal(s.sendq.count, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ll_session_offer(&s, &m, 2, 1000), 0);
    }
    assert_int_equal(ll_session_offer(&s, &m, 2, 1000), SDK_EQUEUEFULL); /* message bound */
    assert_int_equal(ll_session_offer(&s, &m, 10, 120), SDK_EQUEUEFULL); /* byte bound */
    assert_int_equal(s.sendq.count, 2);
    assert_int_equal(ll_session_offer(&s, &m, 10, 150), 0); /* exactly fits */
    assert_int_equal(s.sendq.count, 3);
    ll_session_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_enqueue_assigns_sequences),
        cmocka_unit_test(test_offer_checks_peer_limit_and_bounds),
        cmocka_unit_test(test_enqueue_after_existing_acked),
        cmocka_unit_test(test_write_encodes_unwritten),
        cmocka_unit_test(test_write_empty_queue),
        cmocka_unit_test(test_write_respects_window_messages),
        cmocka_unit_test(test_write_respects_window_bytes),
        cmocka_unit_test(test_write_respects_out_limit),
        cmocka_unit_test(test_check_msg_limits),
        cmocka_unit_test(test_ack_frees_exactly),
        cmocka_unit_test(test_ack_leaves_unwritten_alone),
        cmocka_unit_test(test_duplicate_and_old_acks_harmless),
        cmocka_unit_test(test_ack_beyond_written_rejected),
        cmocka_unit_test(test_on_data),
        cmocka_unit_test(test_ack_policy),
        cmocka_unit_test(test_resume_rewinds_and_retransmits),
        cmocka_unit_test(test_resume_counts_only_real_retransmits),
        cmocka_unit_test(test_resume_out_of_range),
        cmocka_unit_test_setup_teardown(test_resume_beyond_written_rejected, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_resume_nothing_written_rejected, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_restart_renumbers),
        cmocka_unit_test(test_restart_keeps_counting_retransmits),
        cmocka_unit_test(test_restart_twice_and_empty),
        cmocka_unit_test(test_flush_totals),
        cmocka_unit_test(test_large_sequences),
        cmocka_unit_test(test_last_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
