/*
 * Unit tests for sdk/src/sessrec.c, the session record: a live reliable stream captured,
 * encoded, decoded and restored into a fresh one comes back with the same sequences,
 * windows and byte-identical frames; every prefix of a record, garbage, another version, an
 * oversize record and each contradiction a reader checks are refused with a reason. Also
 * the SHA-256 and constant-time compare helpers in tls.c that the record relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codec.h"
#include "ll.h"
#include "sessrec.h"

#include <stdlib.h>
#include <string.h>

/* A stream with five messages queued, three written, one acknowledged, two received and
 * one of them consumed. */
static void make_stream(ll_session *s)
{
    ll_session_init(s, 8, 1 << 20);
    for (int i = 0; i < 5; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "message %d", i);
        assert_int_equal(ll_session_enqueue(s, msg, (size_t)n, i % 2 ? "t.Even" : NULL), 0);
    }
    ll_buf out = {0};
    s->window_messages = 3;
    assert_int_equal(ll_session_write(s, &out, SIZE_MAX), 0);
    assert_int_equal(ll_session_on_ack(s, 1, NULL), 0);
    assert_int_equal(ll_session_on_data(s, 1, 1), LL_DATA_ACCEPT);
    assert_int_equal(ll_session_on_data(s, 2, 1), LL_DATA_ACCEPT);
    s->consumed = 1;
    s->epoch = 3;
    s->peer_max_frame = 4096;
    ll_buf_free(&out);
}

/* A valid record of make_stream's stream, in *enc. */
static void make_record(ll_buf *enc, ll_buf *frames, ll_sessrec *r)
{
    ll_session s;
    make_stream(&s);
    *r = (ll_sessrec){.id = 77, .owner_epoch = 9, .hb_interval_ms = 5000, .hb_timeout_ms = 15000};
    assert_int_equal(ll_tls_sha256("token", 5, r->token_hash), 0);
    assert_int_equal(ll_sessrec_capture(&s, frames, r), 0);
    assert_int_equal(ll_sessrec_encode(r, enc), 0);
    ll_session_free(&s);
}

static void test_round_trip(void **state)
{
    (void)state;
    ll_buf enc = {0}, frames = {0}, again = {0};
    ll_sessrec r, d;
    make_record(&enc, &frames, &r);
    assert_int_equal(r.nframes, 4);
    assert_int_equal(r.received, 1); /* taken as consumed: the client sends sequence 2 again */
    char why[128] = "";
    assert_int_equal(ll_sessrec_decode(ll_buf_head(&enc), ll_buf_size(&enc), SIZE_MAX, &d, why, sizeof(why)), 0);
    assert_int_equal(d.id, 77);
    assert_memory_equal(d.token_hash, r.token_hash, LL_SHA256_LEN);
    assert_int_equal(d.owner_epoch, 9);
    assert_int_equal(d.acked, 1);
    assert_int_equal(d.high_written, 3);
    assert_int_equal(d.received, 1);
    assert_int_equal(d.consumed, 1);
    assert_int_equal(d.epoch, 3);
    assert_int_equal(d.hb_interval_ms, 5000);
    assert_int_equal(d.hb_timeout_ms, 15000);
    assert_int_equal(d.window_messages, 3);
    assert_int_equal(d.window_bytes, 1 << 20);
    assert_int_equal(d.peer_max_frame, 4096);
    assert_int_equal(d.frames_len, r.frames_len);
    assert_memory_equal(d.frames, r.frames, r.frames_len);

    /* Restored, the stream resumes where it was: a client that has 2 gets 3, 4, 5 again. */
    ll_session s;
    ll_session_init(&s, 8, 1 << 20);
    assert_int_equal(ll_sessrec_restore(&d, &s), 0);
    assert_int_equal(s.sendq.count, 4);
    assert_int_equal(ll_frameq_append_all(&s.sendq, &again), 0);
    assert_int_equal(ll_buf_size(&again), r.frames_len);
    assert_memory_equal(ll_buf_head(&again), r.frames, r.frames_len);
    assert_int_equal(ll_session_resume(&s, 2), 0);
    assert_int_equal(s.sendq.count, 3);
    ll_session_free(&s);
    ll_buf_free(&again);
    ll_buf_free(&frames);
    ll_buf_free(&enc);
}

static void test_empty_queue(void **state)
{
    (void)state;
    ll_session s;
    ll_session_init(&s, 4, 100);
    ll_buf enc = {0}, frames = {0};
    ll_sessrec r = {.id = 1}, d;
    assert_int_equal(ll_sessrec_capture(&s, &frames, &r), 0);
    assert_int_equal(ll_sessrec_encode(&r, &enc), 0);
    assert_int_equal(ll_buf_size(&enc), LL_SESSREC_HEADER);
    assert_int_equal(ll_sessrec_decode(ll_buf_head(&enc), ll_buf_size(&enc), SIZE_MAX, &d, NULL, 0), 0);
    assert_int_equal(d.nframes, 0);
    ll_session_free(&s);
    ll_buf_free(&enc);
    ll_buf_free(&frames);
}

static int decode_copy(const uint8_t *p, size_t len, char *why, size_t wlen)
{
    /* A heap copy of exactly len bytes, so ASan catches any read past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, p, len);
    ll_sessrec d;
    int rc = ll_sessrec_decode(copy, len, SIZE_MAX, &d, why, wlen);
    free(copy);
    return rc;
}

static void test_truncated(void **state)
{
    (void)state;
    ll_buf enc = {0}, frames = {0};
    ll_sessrec r;
    make_record(&enc, &frames, &r);
    for (size_t len = 0; len < ll_buf_size(&enc); len++) {
        char why[128] = "";
        assert_int_equal(decode_copy(ll_buf_head(&enc), len, why, sizeof(why)), SDK_EPROTO);
        assert_true(why[0] != '\0');
    }
    char why[128];
    decode_copy(ll_buf_head(&enc), LL_SESSREC_HEADER - 1, why, sizeof(why));
    assert_non_null(strstr(why, "truncated"));
    decode_copy(ll_buf_head(&enc), ll_buf_size(&enc) - 1, why, sizeof(why));
    assert_non_null(strstr(why, "truncated"));
    ll_buf_free(&frames);
    ll_buf_free(&enc);
}

static void test_garbage_version_oversize(void **state)
{
    (void)state;
    ll_buf enc = {0}, frames = {0};
    ll_sessrec r, d;
    make_record(&enc, &frames, &r);
    uint8_t *p = ll_buf_head(&enc);
    size_t len = ll_buf_size(&enc);
    char why[128];

    uint8_t junk[300];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 89 + 3);
    }
    assert_int_equal(decode_copy(junk, sizeof(junk), why, sizeof(why)), SDK_EPROTO);
    assert_string_equal(why, "not a session record");

    ll_put_be32(p + 4, 2);
    assert_int_equal(decode_copy(p, len, why, sizeof(why)), SDK_EPROTO);
    assert_string_equal(why, "session record version 2; this library reads version 1");
    ll_put_be32(p + 4, LL_SESSREC_VERSION);

    assert_int_equal(ll_sessrec_decode(p, len, len - 1, &d, why, sizeof(why)), SDK_ETOOBIG);
    assert_non_null(strstr(why, "over the limit"));
    assert_int_equal(ll_sessrec_decode(p, len, len, &d, why, sizeof(why)), 0);
    ll_buf_free(&frames);
    ll_buf_free(&enc);
}

/* Overwrite a header field of a valid record (at off, 8 or 4 bytes) and expect the reason. */
static void expect_refused(size_t off, size_t width, uint64_t value, const char *reason)
{
    ll_buf enc = {0}, frames = {0};
    ll_sessrec r;
    make_record(&enc, &frames, &r);
    uint8_t *p = ll_buf_head(&enc);
    if (width == 8) {
        ll_put_be64(p + off, value);
    } else {
        ll_put_be32(p + off, (uint32_t)value);
    }
    char why[128] = "";
    assert_int_equal(decode_copy(p, ll_buf_size(&enc), why, sizeof(why)), SDK_EPROTO);
    assert_non_null(strstr(why, reason));
    ll_buf_free(&frames);
    ll_buf_free(&enc);
}

static void test_contradictions(void **state)
{
    (void)state;
    expect_refused(8, 8, 0, "session id 0");
    expect_refused(80, 8, 5, "consumed beyond received");    /* consumed 5 > received 1 */
    expect_refused(64, 8, 9, "high_written outside");        /* acked 1 + 4 frames < 9 */
    expect_refused(56, 8, 2, "malformed or misnumbered");    /* frame 1 has sequence 2, not 3 */
    expect_refused(116, 4, 3, "bytes after the last frame"); /* one frame too many */
    expect_refused(116, 4, 5, "truncated");                  /* a frame that is not there */

    /* A frame that is not a Data frame: its body bytes changed, its length kept. */
    ll_buf enc = {0}, frames = {0};
    ll_sessrec r;
    make_record(&enc, &frames, &r);
    memset(ll_buf_head(&enc) + LL_SESSREC_HEADER + LL_FRAME_HEADER, 0xff, 3);
    char why[128] = "";
    assert_int_equal(decode_copy(ll_buf_head(&enc), ll_buf_size(&enc), why, sizeof(why)), SDK_EPROTO);
    assert_non_null(strstr(why, "frame 1 of 4 is malformed"));
    ll_buf_free(&frames);
    ll_buf_free(&enc);
}

static void test_sha256_and_compare(void **state)
{
    (void)state;
    /* FIPS 180-2, appendix B.1: SHA-256("abc"). */
    static const uint8_t abc[LL_SHA256_LEN] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                               0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                               0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t h[LL_SHA256_LEN];
    assert_int_equal(ll_tls_sha256("abc", 3, h), 0);
    assert_memory_equal(h, abc, sizeof(abc));
    assert_true(ll_tls_equal_ct(h, abc, sizeof(abc)));
    h[31] ^= 1;
    assert_false(ll_tls_equal_ct(h, abc, sizeof(abc)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_empty_queue),
        cmocka_unit_test(test_truncated),      cmocka_unit_test(test_garbage_version_oversize),
        cmocka_unit_test(test_contradictions), cmocka_unit_test(test_sha256_and_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
