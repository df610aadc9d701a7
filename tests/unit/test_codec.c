/*
 * Unit tests for sdk/src/codec.c: decoding in arbitrary pieces, every failure the decoder
 * reports, limits, and the hand-written Data encoder checked byte for byte against protobuf-c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codec.h"
#include "ll.h"

#include <string.h>

#define FRAME_KINDS 7

/* A decoder call that failed: LL_DEC_ERROR, with the sticky error code in the decoder. */
#define assert_dec_error(call, dec, code)       \
    do {                                        \
        assert_int_equal((call), LL_DEC_ERROR); \
        assert_int_equal((dec)->err, (code));   \
    } while (0)

/* ---- helpers ---------------------------------------------------------------------------- */

/* One frame of every kind, each with non-default fields so none is packed empty. */
static void encode_every_kind(ll_buf *out)
{
    static uint8_t token[] = {0xde, 0xad, 0xbe, 0xef};
    Lifeline__Hello hello = LIFELINE__HELLO__INIT;
    Lifeline__Welcome welcome = LIFELINE__WELCOME__INIT;
    Lifeline__Data data = LIFELINE__DATA__INIT;
    Lifeline__Ack ack = LIFELINE__ACK__INIT;
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    Lifeline__Pong pong = LIFELINE__PONG__INIT;
    Lifeline__Close close = LIFELINE__CLOSE__INIT;
    Lifeline__Frame f[FRAME_KINDS];

    hello.version = 1;
    hello.session_id = UINT64_C(1) << 40;
    hello.resume_token = (ProtobufCBinaryData){sizeof token, token};
    hello.last_received = 77;
    hello.heartbeat_interval_ms = 5000;
    hello.heartbeat_timeout_ms = 15000;
    hello.window_messages = 16384;
    hello.window_bytes = UINT64_C(1) << 24;
    welcome.version = 1;
    welcome.session_id = 9;
    welcome.resume_token = hello.resume_token;
    welcome.resumed = true;
    welcome.last_received = 12;
    welcome.heartbeat_interval_ms = 1000;
    welcome.heartbeat_timeout_ms = 3000;
    welcome.window_messages = 8;
    welcome.window_bytes = 4096;
    data.seq = 42;
    data.payload = (ProtobufCBinaryData){7, (uint8_t *)"payload"};
    data.type = "lifeline.test.Msg";
    ack.seq = 41;
    ping.nonce = 5;
    ping.timestamp_us = UINT64_MAX;
    pong.nonce = 5;
    pong.timestamp_us = 123456789;
    close.code = LIFELINE__CLOSE__CODE__GOING_AWAY;
    close.reason = "bye";
    close.reconnect = true;

    for (size_t i = 0; i < FRAME_KINDS; i++) {
        lifeline__frame__init(&f[i]);
    }
    f[0].kind_case = LIFELINE__FRAME__KIND_HELLO;
    f[0].hello = &hello;
    f[1].kind_case = LIFELINE__FRAME__KIND_WELCOME;
    f[1].welcome = &welcome;
    f[2].kind_case = LIFELINE__FRAME__KIND_DATA;
    f[2].data = &data;
    f[3].kind_case = LIFELINE__FRAME__KIND_ACK;
    f[3].ack = &ack;
    f[4].kind_case = LIFELINE__FRAME__KIND_PING;
    f[4].ping = &ping;
    f[5].kind_case = LIFELINE__FRAME__KIND_PONG;
    f[5].pong = &pong;
    f[6].kind_case = LIFELINE__FRAME__KIND_CLOSE;
    f[6].close = &close;
    for (size_t i = 0; i < FRAME_KINDS; i++) {
        assert_int_equal(ll_encode_frame(out, &f[i], LL_MAX_FRAME_DEFAULT), 0);
    }
}

/*
 * Take every frame the decoder has, re-encoding each into `again` (protobuf-c packing is
 * deterministic, so equal bytes mean every field survived). Returns how many were taken.
 */
static size_t drain(ll_decoder *d, ll_buf *again)
{
    Lifeline__Frame *f;
    size_t n = 0;
    ll_dec_result rc;

    while ((rc = ll_decoder_next(d, &f)) == LL_DEC_FRAME) {
        assert_int_equal(ll_encode_frame(again, f, LL_MAX_FRAME_DEFAULT), 0);
        ll_frame_free(f);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_null(f);
    return n;
}

/* The same through ll_decoder_space / ll_decoder_commit, writing up to `piece` bytes in place
 * whenever the buffer has room (ll_decoder_feed when it has none, as ll_link_fill does). */
static void assert_decodes_in_place(const ll_buf *stream, size_t piece, size_t frames)
{
    ll_decoder d;
    ll_buf again = {0};
    size_t n = 0;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    for (size_t at = 0; at < ll_buf_size(stream);) {
        size_t room = 0;
        uint8_t *dst = ll_decoder_space(&d, &room);
        size_t len = LL_MIN(piece, ll_buf_size(stream) - at);
        if (room > 0) {
            len = LL_MIN(len, room);
            memcpy(dst, ll_buf_head(stream) + at, len);
            assert_int_equal(ll_decoder_commit(&d, len), 0);
        } else {
            assert_int_equal(ll_decoder_feed(&d, ll_buf_head(stream) + at, len), 0);
        }
        at += len;
        n += drain(&d, &again);
    }
    assert_int_equal(n, frames);
    assert_int_equal(ll_buf_size(&again), ll_buf_size(stream));
    assert_memory_equal(ll_buf_head(&again), ll_buf_head(stream), ll_buf_size(stream));
    ll_buf_free(&again);
    ll_decoder_free(&d);
}

/* Feed `stream` in pieces of `piece` bytes, draining after each; check it comes back whole. */
static void assert_decodes_in_pieces(const ll_buf *stream, size_t piece, size_t frames)
{
    ll_decoder d;
    ll_buf again = {0};
    size_t n = 0;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    for (size_t at = 0; at < ll_buf_size(stream); at += piece) {
        size_t len = LL_MIN(piece, ll_buf_size(stream) - at);
        assert_int_equal(ll_decoder_feed(&d, ll_buf_head(stream) + at, len), 0);
        n += drain(&d, &again);
    }
    assert_int_equal(n, frames);
    assert_int_equal(ll_buf_size(&again), ll_buf_size(stream));
    assert_memory_equal(ll_buf_head(&again), ll_buf_head(stream), ll_buf_size(stream));
    assert_int_equal(ll_buf_size(&d.in), 0);
    ll_buf_free(&again);
    ll_decoder_free(&d);
}

/* A 4-byte header followed by `body`. */
static void make_raw_frame(ll_buf *out, uint32_t declared, const void *body, size_t len)
{
    uint8_t hdr[LL_FRAME_HEADER];

    ll_put_be32(hdr, declared);
    assert_int_equal(ll_buf_append(out, hdr, sizeof hdr), 0);
    assert_int_equal(ll_buf_append(out, body, len), 0);
}

/* Feed a whole raw frame; expect the decoder to fail with err and a detail containing why. */
static void assert_raw_frame_fails(const void *body, size_t len, int err, const char *why)
{
    ll_decoder d;
    ll_buf raw = {0};
    Lifeline__Frame *f = (Lifeline__Frame *)&raw; /* any non-NULL value: next must reset it */

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    make_raw_frame(&raw, (uint32_t)len, body, len);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&raw), ll_buf_size(&raw)), 0);
    assert_dec_error(ll_decoder_next(&d, &f), &d, err);
    assert_null(f);
    assert_int_equal(d.err, err);
    assert_non_null(strstr(d.detail, why));
    ll_buf_free(&raw);
    ll_decoder_free(&d);
}

/* ---- decoding --------------------------------------------------------------------------- */

static void test_round_trip_every_kind(void **state)
{
    (void)state;
    ll_buf stream = {0};

    encode_every_kind(&stream);
    /* Several frames in one feed. */
    assert_decodes_in_pieces(&stream, ll_buf_size(&stream), FRAME_KINDS);
    ll_buf_free(&stream);
}

static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    ll_buf stream = {0};

    encode_every_kind(&stream);
    assert_decodes_in_pieces(&stream, 1, FRAME_KINDS);
    assert_decodes_in_pieces(&stream, 3, FRAME_KINDS);
    assert_decodes_in_pieces(&stream, 7, FRAME_KINDS);
    ll_buf_free(&stream);
}

/* Bytes written in place (ll_decoder_space/commit, as ll_link_fill reads TLS records) decode
 * exactly as fed ones, in any pieces, and an oversize header is refused at the commit that
 * completes it; a failed decoder offers no room. */
static void test_in_place(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    uint8_t hdr[LL_FRAME_HEADER];
    size_t room = 1;

    encode_every_kind(&stream);
    assert_decodes_in_place(&stream, ll_buf_size(&stream), FRAME_KINDS);
    assert_decodes_in_place(&stream, 1, FRAME_KINDS);
    assert_decodes_in_place(&stream, 5, FRAME_KINDS);
    assert_decodes_in_place(&stream, 300, FRAME_KINDS);
    ll_buf_free(&stream);

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    assert_null(ll_decoder_space(&d, &room)); /* a new decoder has no buffer yet */
    assert_int_equal(room, 0);
    ll_put_be32(hdr, 20000000);
    assert_int_equal(ll_decoder_feed(&d, hdr, 2), 0);
    uint8_t *dst = ll_decoder_space(&d, &room);
    assert_non_null(dst);
    assert_true(room >= 2);
    memcpy(dst, hdr + 2, 2);
    assert_int_equal(ll_decoder_commit(&d, 2), SDK_ETOOBIG);
    assert_null(ll_decoder_space(&d, &room));
    assert_int_equal(room, 0);
    assert_int_equal(ll_decoder_commit(&d, 0), SDK_ETOOBIG); /* sticky */
    ll_decoder_free(&d);
}

static void test_split_at_every_boundary(void **state)
{
    (void)state;
    ll_buf stream = {0};

    encode_every_kind(&stream);
    for (size_t cut = 0; cut <= ll_buf_size(&stream); cut++) {
        ll_decoder d;
        ll_buf again = {0};

        ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
        assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), cut), 0);
        size_t n = drain(&d, &again);
        assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream) + cut, ll_buf_size(&stream) - cut), 0);
        n += drain(&d, &again);
        assert_int_equal(n, FRAME_KINDS);
        assert_memory_equal(ll_buf_head(&again), ll_buf_head(&stream), ll_buf_size(&stream));
        ll_buf_free(&again);
        ll_decoder_free(&d);
    }
    ll_buf_free(&stream);
}

static void test_partial_frame_needs_more(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    Lifeline__Frame *f;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    encode_every_kind(&stream);
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_NEED_MORE);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), LL_FRAME_HEADER + 1), 0);
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_NEED_MORE);
    assert_null(f);
    assert_int_equal(d.err, 0);
    ll_buf_free(&stream);
    ll_decoder_free(&d);
}

static void test_fields_survive(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    Lifeline__Frame *f;
    const char payload[] = "\x00\x01 binary \xff";

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    assert_int_equal(ll_encode_data(&stream, 7, payload, sizeof payload, "a.B", 1024), 0);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), ll_buf_size(&stream)), 0);
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_FRAME);
    assert_int_equal(f->kind_case, LIFELINE__FRAME__KIND_DATA);
    assert_int_equal(f->data->seq, 7);
    assert_int_equal(f->data->payload.len, sizeof payload);
    assert_memory_equal(f->data->payload.data, payload, sizeof payload);
    assert_string_equal(f->data->type, "a.B");
    ll_frame_free(f);
    ll_frame_free(NULL);
    ll_buf_free(&stream);
    ll_decoder_free(&d);
}

/* Frames are taken by moving the read cursor: nothing is shifted per frame. */
static void test_consumes_via_cursor(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    Lifeline__Frame *f;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    encode_every_kind(&stream);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), ll_buf_size(&stream)), 0);
    uint8_t *data = d.in.data;
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_FRAME);
    ll_frame_free(f);
    assert_ptr_equal(d.in.data, data);
    assert_true(d.in.off > 0);
    assert_memory_equal(ll_buf_head(&d.in), ll_buf_head(&stream) + d.in.off, ll_buf_size(&d.in));
    ll_buf_free(&stream);
    ll_decoder_free(&d);
}

/* A long stream fed in small pieces keeps at most a partial frame plus a piece buffered. */
static void test_long_stream_stays_small(void **state)
{
    (void)state;
    ll_buf stream = {0};

    for (uint64_t seq = 1; seq <= 2000; seq++) {
        assert_int_equal(ll_encode_data(&stream, seq, "abcdefgh", seq % 9, NULL, 1024), 0);
    }
    ll_decoder d;
    ll_buf again = {0};
    size_t n = 0;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    for (size_t at = 0; at < ll_buf_size(&stream); at += 13) {
        size_t len = LL_MIN((size_t)13, ll_buf_size(&stream) - at);
        assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream) + at, len), 0);
        n += drain(&d, &again);
        assert_true(d.in.cap <= 256);
    }
    assert_int_equal(n, 2000);
    assert_memory_equal(ll_buf_head(&again), ll_buf_head(&stream), ll_buf_size(&stream));
    ll_buf_free(&again);
    ll_buf_free(&stream);
    ll_decoder_free(&d);
}

static void test_zero_length(void **state)
{
    (void)state;
    ll_decoder d;
    Lifeline__Frame *f;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    assert_int_equal(ll_decoder_feed(&d, "\0\0\0\0", 4), SDK_EPROTO);
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_EPROTO);
    assert_null(f);
    assert_string_equal(d.detail, "zero-length frame");
    ll_decoder_free(&d);
}

/* A bad header that is not the first in its chunk is caught by next, in order. */
static void test_zero_length_after_valid_frame(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    Lifeline__Frame *f;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    assert_int_equal(ll_encode_data(&stream, 1, "x", 1, NULL, 1024), 0);
    assert_int_equal(ll_buf_append(&stream, "\0\0\0\0", 4), 0);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), ll_buf_size(&stream)), 0);
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_FRAME);
    ll_frame_free(f);
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_EPROTO);
    assert_null(f);
    ll_buf_free(&stream);
    ll_decoder_free(&d);
}

static void test_oversized_rejected_before_body(void **state)
{
    (void)state;
    static uint8_t body[64 * 1024];
    ll_decoder d;
    Lifeline__Frame *f;
    uint8_t hdr[LL_FRAME_HEADER];

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    ll_put_be32(hdr, 20000000);
    /* Three header bytes say nothing yet; the fourth decides, with no body sent at all. */
    assert_int_equal(ll_decoder_feed(&d, hdr, 3), 0);
    assert_int_equal(ll_decoder_feed(&d, hdr + 3, 1), SDK_ETOOBIG);
    assert_string_equal(d.detail, "frame length 20000000 exceeds limit 16777216");
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_ETOOBIG);
    assert_null(f);
    /* The body that follows is refused, not buffered: capacity stays tiny. */
    assert_int_equal(ll_decoder_feed(&d, body, sizeof body), SDK_ETOOBIG);
    assert_int_equal(ll_buf_size(&d.in), LL_FRAME_HEADER);
    assert_true(d.in.cap <= 256);
    ll_decoder_free(&d);
}

/* Header and body in one chunk: the body is still not copied in. */
static void test_oversized_in_one_chunk(void **state)
{
    (void)state;
    static uint8_t body[8 * 1024];
    ll_buf raw = {0};
    ll_decoder d;

    ll_decoder_init(&d, 1024);
    make_raw_frame(&raw, sizeof body, body, sizeof body);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&raw), ll_buf_size(&raw)), SDK_ETOOBIG);
    assert_string_equal(d.detail, "frame length 8192 exceeds limit 1024");
    assert_int_equal(ll_buf_size(&d.in), LL_FRAME_HEADER);
    assert_true(d.in.cap <= 256);
    ll_buf_free(&raw);
    ll_decoder_free(&d);
}

static void test_oversized_after_valid_frame(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    Lifeline__Frame *f;

    ll_decoder_init(&d, 64);
    assert_int_equal(ll_encode_data(&stream, 1, "x", 1, NULL, 64), 0);
    make_raw_frame(&stream, 65, "partial", 7);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), ll_buf_size(&stream)), 0);
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_FRAME);
    ll_frame_free(f);
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_ETOOBIG);
    assert_string_equal(d.detail, "frame length 65 exceeds limit 64");
    ll_buf_free(&stream);
    ll_decoder_free(&d);
}

static void test_limit_is_inclusive(void **state)
{
    (void)state;
    ll_buf stream = {0};
    ll_decoder d;
    Lifeline__Frame *f;

    assert_int_equal(ll_encode_data(&stream, 3, "abc", 3, "t", 1024), 0);
    uint32_t body = (uint32_t)(ll_buf_size(&stream) - LL_FRAME_HEADER);

    ll_decoder_init(&d, body);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), ll_buf_size(&stream)), 0);
    assert_int_equal(ll_decoder_next(&d, &f), LL_DEC_FRAME);
    ll_frame_free(f);
    ll_decoder_free(&d);

    ll_decoder_init(&d, body - 1);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&stream), ll_buf_size(&stream)), SDK_ETOOBIG);
    ll_decoder_free(&d);
    ll_buf_free(&stream);
}

static void test_garbage_protobuf(void **state)
{
    (void)state;
    /* A varint that never ends. */
    assert_raw_frame_fails("\xff\xff\xff\xff\xff", 5, SDK_EPROTO, "not a valid lifeline.Frame");
    /* Data claims 5 bytes, 1 follows. */
    assert_raw_frame_fails("\x1a\x05\x08", 3, SDK_EPROTO, "not a valid lifeline.Frame");
    /* Field 3 (Data) sent as a varint instead of length-delimited. */
    assert_raw_frame_fails("\x18\x01", 2, SDK_EPROTO, "not a valid lifeline.Frame");
    /* Wire type 7 does not exist. */
    assert_raw_frame_fails("\x0f", 1, SDK_EPROTO, "not a valid lifeline.Frame");
}

static void test_no_kind(void **state)
{
    (void)state;
    /* Only an unknown field 15: valid protobuf, but no frame kind. */
    assert_raw_frame_fails("\x78\x01", 2, SDK_EPROTO, "has no kind set");
}

static void test_error_is_sticky(void **state)
{
    (void)state;
    ll_buf good = {0};
    ll_buf bad = {0};
    ll_decoder d;
    Lifeline__Frame *f;

    ll_decoder_init(&d, LL_MAX_FRAME_DEFAULT);
    encode_every_kind(&good);
    make_raw_frame(&bad, 2, "\x18\x01", 2);
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&bad), ll_buf_size(&bad)), 0);
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_EPROTO);
    ll_buf_free(&bad);
    char detail[sizeof d.detail];
    memcpy(detail, d.detail, sizeof detail);

    /* Valid frames afterwards change nothing: the stream position is lost for good. */
    assert_int_equal(ll_decoder_feed(&d, ll_buf_head(&good), ll_buf_size(&good)), SDK_EPROTO);
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_EPROTO);
    assert_null(f);
    assert_dec_error(ll_decoder_next(&d, &f), &d, SDK_EPROTO);
    assert_string_equal(d.detail, detail);
    ll_buf_free(&good);
    ll_decoder_free(&d);
}

/* ---- encoding --------------------------------------------------------------------------- */

static void test_encode_frame_rejects_bad_frames(void **state)
{
    (void)state;
    ll_buf out = {0};
    Lifeline__Frame empty = LIFELINE__FRAME__INIT;

    assert_int_equal(ll_encode_frame(&out, NULL, 1024), SDK_EINVAL);
    assert_int_equal(ll_encode_frame(&out, &empty, 1024), SDK_EINVAL);
    assert_int_equal(ll_buf_size(&out), 0);
    ll_buf_free(&out);
}

static void test_encode_frame_too_big(void **state)
{
    (void)state;
    static uint8_t payload[100];
    ll_buf out = {0};
    Lifeline__Data data = LIFELINE__DATA__INIT;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;

    data.seq = 1;
    data.payload = (ProtobufCBinaryData){sizeof payload, payload};
    f.kind_case = LIFELINE__FRAME__KIND_DATA;
    f.data = &data;
    uint32_t body = (uint32_t)lifeline__frame__get_packed_size(&f);

    assert_int_equal(ll_buf_append(&out, "keep", 4), 0);
    assert_int_equal(ll_encode_frame(&out, &f, body - 1), SDK_ETOOBIG);
    assert_int_equal(ll_buf_size(&out), 4);
    assert_int_equal(ll_encode_frame(&out, &f, body), 0);
    assert_int_equal(ll_buf_size(&out), 4 + LL_FRAME_HEADER + body);
    assert_int_equal(ll_get_be32(ll_buf_head(&out) + 4), body);
    ll_buf_free(&out);
}

static void test_encode_data_too_big(void **state)
{
    (void)state;
    static uint8_t payload[1000];
    ll_buf out = {0};
    size_t body = ll_data_frame_size(9, sizeof payload, "t") - LL_FRAME_HEADER;

    assert_int_equal(ll_encode_data(&out, 9, payload, sizeof payload, "t", (uint32_t)body - 1), SDK_ETOOBIG);
    assert_int_equal(ll_buf_size(&out), 0);
    assert_int_equal(ll_encode_data(&out, 9, payload, sizeof payload, "t", (uint32_t)body), 0);
    assert_int_equal(ll_buf_size(&out), body + LL_FRAME_HEADER);
    /* Lengths no frame could hold are refused before the payload is read. */
    assert_int_equal(ll_encode_data(&out, 9, payload, SIZE_MAX, NULL, UINT32_MAX), SDK_ETOOBIG);
    assert_int_equal(ll_encode_data(&out, 9, payload, (size_t)UINT32_MAX + 1, NULL, UINT32_MAX), SDK_ETOOBIG);
    assert_int_equal(ll_data_frame_size(0, SIZE_MAX, NULL), SIZE_MAX);
    assert_int_equal(ll_data_frame_size(UINT64_MAX, SIZE_MAX - 3, "t"), SIZE_MAX);
    assert_int_equal(ll_buf_size(&out), body + LL_FRAME_HEADER);
    ll_buf_free(&out);
}

static void test_encode_data_null_payload(void **state)
{
    (void)state;
    ll_buf out = {0};

    assert_int_equal(ll_encode_data(&out, 1, NULL, 1, NULL, 1024), SDK_EINVAL);
    assert_int_equal(ll_buf_size(&out), 0);
    assert_int_equal(ll_encode_data(&out, 1, NULL, 0, NULL, 1024), 0);
    ll_buf_free(&out);
}

/* The fast path must produce exactly what protobuf-c produces, and say its size truly. */
static void assert_data_identical(uint64_t seq, const uint8_t *payload, size_t len, const char *type)
{
    ll_buf fast = {0};
    ll_buf ref = {0};
    Lifeline__Data data = LIFELINE__DATA__INIT;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;

    data.seq = seq;
    data.payload = (ProtobufCBinaryData){len, (uint8_t *)payload};
    data.type = (char *)type;
    f.kind_case = LIFELINE__FRAME__KIND_DATA;
    f.data = &data;

    assert_int_equal(ll_encode_frame(&ref, &f, LL_MAX_FRAME_DEFAULT), 0);
    assert_int_equal(ll_encode_data(&fast, seq, payload, len, type, LL_MAX_FRAME_DEFAULT), 0);
    assert_int_equal(ll_buf_size(&fast), ll_buf_size(&ref));
    assert_memory_equal(ll_buf_head(&fast), ll_buf_head(&ref), ll_buf_size(&ref));
    assert_int_equal(ll_data_frame_size(seq, len, type), ll_buf_size(&fast));
    /* And it reads back in place, as queues of encoded frames rely on. */
    ll_data_view v;
    assert_true(ll_data_frame_read(ll_buf_head(&fast), ll_buf_size(&fast), &v));
    assert_int_equal(v.seq, seq);
    assert_int_equal(v.len, len);
    assert_int_equal(v.type_len, type ? strlen(type) : 0);
    assert_false(ll_data_frame_read(ll_buf_head(&fast), ll_buf_size(&fast) - 1, &v));
    ll_buf_free(&fast);
    ll_buf_free(&ref);
}

static void test_encode_data_matches_protobuf_c(void **state)
{
    (void)state;
    /* Varint widths change at 2^7, 2^14, 2^21, ... so lengths straddle those edges. */
    static const size_t big_lens[] = {16383, 16384, 16385, 65536, 2097151, 2097152};
    static const uint64_t seqs[] = {0,         1, 127, 128, 16383, 16384, UINT64_C(1) << 35, INT64_MAX, UINT64_MAX - 1,
                                    UINT64_MAX};
    static uint8_t payload[2097152];
    char long_type[301];
    const char *types[] = {NULL, "", "t", "lifeline.test.Msg", long_type};

    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i * 31 + 7);
    }
    memset(long_type, 'T', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = '\0';

    for (size_t s = 0; s < sizeof seqs / sizeof seqs[0]; s++) {
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            /* Every length up to 300 crosses the 127/128 edge of both nested lengths. */
            for (size_t len = 0; len <= 300; len++) {
                assert_data_identical(seqs[s], payload, len, types[t]);
            }
            for (size_t b = 0; b < sizeof big_lens / sizeof big_lens[0]; b++) {
                assert_data_identical(seqs[s], payload, big_lens[b], types[t]);
            }
        }
    }
}

static int encode_ack(ll_buf *out)
{
    Lifeline__Ack ack = LIFELINE__ACK__INIT;
    ack.seq = 99;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_ACK;
    f.ack = &ack;
    return ll_encode_frame(out, &f, LL_MAX_FRAME_DEFAULT);
}

/* Feed one frame body (header added here) and take it. */
static ll_dec_result take_body(const uint8_t *body, size_t len, ll_decoder *d, ll_frame *f)
{
    uint8_t header[LL_FRAME_HEADER];
    ll_put_be32(header, (uint32_t)len);
    ll_decoder_init(d, LL_MAX_FRAME_DEFAULT);
    assert_int_equal(ll_decoder_feed(d, header, sizeof header), 0);
    assert_int_equal(ll_decoder_feed(d, body, len), 0);
    return ll_decoder_take(d, f);
}

static void test_take_reads_canonical_data_in_place(void **state)
{
    (void)state;
    static const uint64_t seqs[] = {0, 1, 300, UINT64_MAX};
    static const char *types[] = {NULL, "", "pkg.Msg"};
    uint8_t payload[300];
    memset(payload, 0xab, sizeof payload);
    for (size_t s = 0; s < 4; s++) {
        for (size_t t = 0; t < 3; t++) {
            for (size_t len = 0; len <= sizeof payload; len += 150) {
                ll_buf out = {0};
                assert_int_equal(ll_encode_data(&out, seqs[s], payload, len, types[t], LL_MAX_FRAME_DEFAULT), 0);
                ll_decoder d;
                ll_frame f;
                assert_int_equal(
                    take_body(ll_buf_head(&out) + LL_FRAME_HEADER, ll_buf_size(&out) - LL_FRAME_HEADER, &d, &f),
                    LL_DEC_FRAME);
                assert_int_equal(f.kind, LIFELINE__FRAME__KIND_DATA);
                assert_null(f.pb); /* no allocation */
                assert_true(f.data.seq == seqs[s]);
                assert_int_equal(f.data.len, len);
                if (len) {
                    assert_memory_equal(f.data.payload, payload, len);
                }
                size_t tl = types[t] ? strlen(types[t]) : 0;
                assert_int_equal(f.data.type_len, tl);
                if (tl) {
                    assert_memory_equal(f.data.type, types[t], tl);
                }
                ll_frame_release(&f);
                assert_int_equal(ll_decoder_take(&d, &f), LL_DEC_NEED_MORE);
                ll_decoder_free(&d);
                ll_buf_free(&out);
            }
        }
    }
}

/* Valid protobuf that is not the canonical form goes through protobuf-c, same meaning. */
static void test_take_falls_back_for_other_encodings(void **state)
{
    (void)state;
    /* Frame{data{type="t", payload="p", seq=5}}: fields out of order. */
    static const uint8_t reordered[] = {0x1a, 0x08, 0x1a, 0x01, 't', 0x12, 0x01, 'p', 0x08, 0x05};
    /* seq given twice (last wins), then payload. */
    static const uint8_t repeated[] = {0x1a, 0x07, 0x08, 0x01, 0x08, 0x05, 0x12, 0x01, 'p'};
    /* an unknown field 9 inside Data. */
    static const uint8_t unknown[] = {0x1a, 0x07, 0x08, 0x05, 0x48, 0x01, 0x12, 0x01, 'p'};
    const struct {
        const uint8_t *body;
        size_t len;
        uint64_t seq;
        size_t type_len;
    } cases[] = {
        {reordered, sizeof reordered, 5, 1}, {repeated, sizeof repeated, 5, 0}, {unknown, sizeof unknown, 5, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ll_decoder d;
        ll_frame f;
        assert_int_equal(take_body(cases[i].body, cases[i].len, &d, &f), LL_DEC_FRAME);
        assert_int_equal(f.kind, LIFELINE__FRAME__KIND_DATA);
        assert_non_null(f.pb);
        assert_true(f.data.seq == cases[i].seq);
        assert_int_equal(f.data.len, 1);
        assert_memory_equal(f.data.payload, "p", 1);
        assert_int_equal(f.data.type_len, cases[i].type_len);
        ll_frame_release(&f);
        ll_decoder_free(&d);
    }
}

static void test_take_other_kinds_and_errors(void **state)
{
    (void)state;
    ll_buf out = {0};
    assert_int_equal(encode_ack(&out), 0);
    ll_decoder d;
    ll_frame f;
    assert_int_equal(take_body(ll_buf_head(&out) + LL_FRAME_HEADER, ll_buf_size(&out) - LL_FRAME_HEADER, &d, &f),
                     LL_DEC_FRAME);
    assert_int_equal(f.kind, LIFELINE__FRAME__KIND_ACK);
    assert_non_null(f.pb);
    assert_true(f.pb->ack->seq == 99);
    ll_frame_release(&f);
    ll_decoder_free(&d);
    ll_buf_free(&out);

    /* A Data frame whose payload length runs past the end: rejected exactly as by next(). */
    static const uint8_t truncated[] = {0x1a, 0x04, 0x08, 0x05, 0x12, 0x09};
    assert_dec_error(take_body(truncated, sizeof truncated, &d, &f), &d, SDK_EPROTO);
    assert_null(f.pb);
    assert_dec_error(ll_decoder_take(&d, &f), &d, SDK_EPROTO); /* sticky */
    ll_decoder_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_one_byte_at_a_time),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_split_at_every_boundary),
        cmocka_unit_test(test_partial_frame_needs_more),
        cmocka_unit_test(test_fields_survive),
        cmocka_unit_test(test_consumes_via_cursor),
        cmocka_unit_test(test_long_stream_stays_small),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_zero_length_after_valid_frame),
        cmocka_unit_test(test_oversized_rejected_before_body),
        cmocka_unit_test(test_oversized_in_one_chunk),
        cmocka_unit_test(test_oversized_after_valid_frame),
        cmocka_unit_test(test_limit_is_inclusive),
        cmocka_unit_test(test_garbage_protobuf),
        cmocka_unit_test(test_no_kind),
        cmocka_unit_test(test_error_is_sticky),
        cmocka_unit_test(test_encode_frame_rejects_bad_frames),
        cmocka_unit_test(test_encode_frame_too_big),
        cmocka_unit_test(test_encode_data_too_big),
        cmocka_unit_test(test_encode_data_null_payload),
        cmocka_unit_test(test_encode_data_matches_protobuf_c),
        cmocka_unit_test(test_take_reads_canonical_data_in_place),
        cmocka_unit_test(test_take_falls_back_for_other_encodings),
        cmocka_unit_test(test_take_other_kinds_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
