/*
 * libFuzzer target for the reliable-stream state machine (sdk/src/session.c) driven by a
 * hostile peer: arbitrary bytes are decoded as frames (sdk/src/codec.c) and each frame is
 * applied as the I/O threads apply it (Data -> on_data, Ack -> on_ack, Hello/Welcome ->
 * resume at last_received, Close -> restart), interleaved with local sends and writes and
 * with the application consuming. Beyond "no crash, no leak", it checks the invariants the
 * rest of the library relies on after every step, whatever the peer said:
 * - written <= queued, and written bytes never exceed queued bytes; what is written is whole
 *   canonical Data frames numbered on from the last one;
 * - acked_total + queued == enqueued_total (nothing vanishes, nothing is invented);
 * - received never goes backwards except on restart, consumed <= received, ack_sent <= consumed;
 * - a rejected frame (SDK_EPROTO) changes none of that state.
 */
#include "codec.h"
#include "ll.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_FRAME 4096u

#define FUZZ_CHECK(cond) \
    do {                 \
        if (!(cond)) {   \
            abort();     \
        }                \
    } while (0)

static void check_invariants(const ll_session *s)
{
    FUZZ_CHECK(s->sendq.copied <= s->sendq.count);
    FUZZ_CHECK(s->sendq.copied_bytes <= s->sendq.bytes);
    FUZZ_CHECK(s->acked_total + s->sendq.count == s->enqueued_total);
    FUZZ_CHECK(s->consumed <= s->received);
    FUZZ_CHECK(s->ack_sent <= s->consumed);
}

/* What a rejected frame must leave alone. */
typedef struct snapshot {
    size_t written, queued;
    uint64_t acked, received;
} snapshot;

static snapshot take(const ll_session *s)
{
    return (snapshot){s->sendq.copied, s->sendq.count, s->acked, s->received};
}

static void unchanged(const ll_session *s, snapshot before)
{
    snapshot now = take(s);
    FUZZ_CHECK(memcmp(&now, &before, sizeof(now)) == 0);
}

/* Write what the window allows: whole canonical Data frames, numbered on from the cursor. */
static void check_written(ll_session *s, ll_buf *out)
{
    uint64_t next = s->acked + s->sendq.copied + 1;
    FUZZ_CHECK(ll_session_write(s, out, 1024) == 0);
    while (ll_buf_size(out) > 0) {
        FUZZ_CHECK(ll_buf_size(out) >= LL_FRAME_HEADER);
        size_t size = LL_FRAME_HEADER + ll_get_be32(ll_buf_head(out));
        ll_data_view v;
        FUZZ_CHECK(size <= ll_buf_size(out) && size <= FUZZ_MAX_FRAME);
        FUZZ_CHECK(ll_data_frame_read(ll_buf_head(out), size, &v) && v.seq == next);
        next++;
        ll_buf_consume(out, size);
    }
    FUZZ_CHECK(next == s->acked + s->sendq.copied + 1);
}

/* Local activity between peer frames, chosen by a byte of the frame so inputs reproduce. */
static void local_step(ll_session *s, ll_msgq *inbox, ll_buf *out, uint8_t choice)
{
    if (choice & 1) {
        FUZZ_CHECK(ll_session_enqueue(s, "payload", choice % 8, (choice & 2) ? "t.T" : NULL) == 0);
    }
    if (choice & 4) {
        check_written(s, out);
    }
    if ((choice & 8) && inbox->count > 0) {
        ll_msg *m = ll_msgq_pop(inbox);
        ll_session_consumed(s, m);
        free(m);
    }
    if (choice & 16 && ll_session_ack_due(s, inbox->count == 0)) {
        (void)ll_session_ack_take(s);
    }
}

static void apply(ll_session *s, ll_msgq *inbox, const Lifeline__Frame *f)
{
    snapshot before = take(s);
    uint64_t received = s->received;
    int rc = 0;
    switch (f->kind_case) {
    case LIFELINE__FRAME__KIND_DATA:
        switch (ll_session_on_data(s, f->data->seq, f->data->payload.len)) {
        case LL_DATA_ACCEPT: {
            ll_msg *m = ll_msg_new(f->data->payload.data, f->data->payload.len, f->data->type, NULL);
            FUZZ_CHECK(m != NULL);
            m->pub.seq = f->data->seq;
            m->epoch = s->epoch;
            FUZZ_CHECK(ll_msgq_push(inbox, m) == 0);
            FUZZ_CHECK(s->received == received + 1);
            break;
        }
        case LL_DATA_DUPLICATE:
            FUZZ_CHECK(f->data->seq != 0);
            unchanged(s, before);
            break;
        case LL_DATA_INVALID:
        default:
            rc = SDK_EPROTO; /* a gap, or sequence 0 */
            break;
        }
        break;
    case LIFELINE__FRAME__KIND_ACK:
        rc = ll_session_on_ack(s, f->ack->seq, NULL);
        break;
    case LIFELINE__FRAME__KIND_HELLO:
        rc = ll_session_resume(s, f->hello->last_received);
        break;
    case LIFELINE__FRAME__KIND_WELCOME:
        rc = ll_session_resume(s, f->welcome->last_received);
        break;
    case LIFELINE__FRAME__KIND_CLOSE:
        FUZZ_CHECK(ll_session_restart(s) == 0);
        FUZZ_CHECK(s->acked == 0 && s->received == 0 && s->sendq.copied == 0);
        break;
    default:
        break;
    }
    if (rc != 0) {
        FUZZ_CHECK(rc == SDK_EPROTO);
        unchanged(s, before);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ll_decoder dec;
    ll_decoder_init(&dec, FUZZ_MAX_FRAME);
    ll_session s;
    ll_session_init(&s, 8, 64);
    ll_msgq inbox = {0};
    ll_buf out = {0};
    if (ll_decoder_feed(&dec, data, size) == 0) {
        Lifeline__Frame *f = NULL;
        size_t step = 0;
        while (ll_decoder_next(&dec, &f) == LL_DEC_FRAME) {
            local_step(&s, &inbox, &out, data[step++ % size]);
            apply(&s, &inbox, f);
            check_invariants(&s);
            ll_frame_free(f);
        }
    }
    ll_buf_free(&out);
    ll_msgq_free(&inbox);
    ll_session_free(&s);
    ll_decoder_free(&dec);
    return 0;
}
