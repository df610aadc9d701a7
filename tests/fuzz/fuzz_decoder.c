/*
 * libFuzzer target for the frame decoder (sdk/src/codec.c).
 *
 * Arbitrary bytes are fed in pieces of varying size, draining frames after each piece as the
 * I/O thread does. Piece sizes come from a hash of the input, not from rand(), so every
 * finding reproduces from its file alone. Beyond "no crash, no leak", it checks properties:
 * - errors are sticky;
 * - after draining, at most one partial frame stays buffered (limits hold before buffering);
 * - every decoded frame re-encodes, and for Data frames the hand-written encoder agrees byte
 *   for byte with protobuf-c.
 */
#include "codec.h"
#include "ll.h"

#include <stdlib.h>
#include <string.h>

/* Small, so short inputs reach the limit and both sides of it. */
#define FUZZ_MAX_FRAME 4096u
#define FUZZ_MAX_PIECE 512u

/* A failed property: abort so libFuzzer records the input. */
#define FUZZ_CHECK(cond) \
    do {                 \
        if (!(cond)) {   \
            abort();     \
        }                \
    } while (0)

/* FNV-1a: seeds the piece sizes from the input. */
static uint64_t hash_input(const uint8_t *data, size_t size)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < size; i++) {
        h = (h ^ data[i]) * UINT64_C(1099511628211);
    }
    return h != 0 ? h : 1;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Mostly tiny pieces (the hard case for an incremental parser), sometimes all that is left. */
static size_t next_piece(uint64_t *rng, size_t left)
{
    uint64_t r = xorshift(rng);
    size_t n;

    switch (r % 4) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + (size_t)((r >> 8) % 16);
        break;
    case 2:
        n = 1 + (size_t)((r >> 8) % FUZZ_MAX_PIECE);
        break;
    default:
        n = left;
        break;
    }
    return LL_MIN(n, left);
}

/* Unknown fields survive a protobuf-c round trip but the Data fast path cannot carry them. */
static bool has_unknown_fields(const Lifeline__Frame *f)
{
    return f->base.n_unknown_fields != 0 || f->data->base.n_unknown_fields != 0;
}

/* The hand-written Data encoder must agree byte for byte with protobuf-c's packing (ref). */
static void check_fast_data(const Lifeline__Data *m, const ll_buf *ref)
{
    ll_buf fast = {0};

    FUZZ_CHECK(ll_encode_data(&fast, m->seq, m->payload.data, m->payload.len, m->type, UINT32_MAX) == 0);
    FUZZ_CHECK(ll_buf_size(&fast) == ll_buf_size(ref));
    FUZZ_CHECK(memcmp(ll_buf_head(&fast), ll_buf_head(ref), ll_buf_size(ref)) == 0);
    FUZZ_CHECK(ll_data_frame_size(m->seq, m->payload.len, m->type) == ll_buf_size(&fast));
    ll_buf_free(&fast);
}

static void check_reencode(const Lifeline__Frame *f)
{
    ll_buf ref = {0};

    FUZZ_CHECK(ll_encode_frame(&ref, f, UINT32_MAX) == 0);
    if (f->kind_case == LIFELINE__FRAME__KIND_DATA && !has_unknown_fields(f)) {
        check_fast_data(f->data, &ref);
    }
    ll_buf_free(&ref);
}

/* Take every available frame; returns 0 or the decoder's (sticky) error. */
static int drain(ll_decoder *d)
{
    Lifeline__Frame *f;
    ll_dec_result rc;

    while ((rc = ll_decoder_next(d, &f)) == LL_DEC_FRAME) {
        check_reencode(f);
        ll_frame_free(f);
    }
    FUZZ_CHECK(f == NULL);
    if (rc == LL_DEC_NEED_MORE) {
        FUZZ_CHECK(ll_buf_size(&d->in) < LL_FRAME_HEADER + FUZZ_MAX_FRAME);
        return 0;
    }
    FUZZ_CHECK(d->err != 0);
    return d->err;
}

static void check_sticky(ll_decoder *d, int err)
{
    Lifeline__Frame *f;

    FUZZ_CHECK(err == SDK_EPROTO || err == SDK_ETOOBIG);
    FUZZ_CHECK(d->err == err && d->detail[0] != '\0');
    FUZZ_CHECK(ll_decoder_feed(d, "\0\0\0\2\x22\x00", 6) == err);
    FUZZ_CHECK(ll_decoder_next(d, &f) == LL_DEC_ERROR && f == NULL && d->err == err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The in-place reader (ll_decoder_take) must agree with protobuf-c (ll_decoder_next) on every
 * input: same results, same kinds, same Data fields. */
static void check_take_agrees(const uint8_t *data, size_t size)
{
    ll_decoder a, b;
    ll_decoder_init(&a, FUZZ_MAX_FRAME);
    ll_decoder_init(&b, FUZZ_MAX_FRAME);
    int ra = ll_decoder_feed(&a, data, size);
    int rb = ll_decoder_feed(&b, data, size);
    FUZZ_CHECK(ra == rb);
    while (ra == 0) {
        Lifeline__Frame *pb = NULL;
        ll_frame f;
        ll_dec_result da = ll_decoder_next(&a, &pb);
        ll_dec_result db = ll_decoder_take(&b, &f);
        FUZZ_CHECK(da == db && a.err == b.err);
        if (da != LL_DEC_FRAME) {
            break;
        }
        FUZZ_CHECK((int)f.kind == (int)pb->kind_case);
        if (f.kind == LIFELINE__FRAME__KIND_DATA) {
            const Lifeline__Data *dt = pb->data;
            size_t type_len = dt->type ? strlen(dt->type) : 0;
            FUZZ_CHECK(f.data.seq == dt->seq && f.data.len == dt->payload.len);
            FUZZ_CHECK(f.data.len == 0 || memcmp(f.data.payload, dt->payload.data, f.data.len) == 0);
            FUZZ_CHECK(f.data.type_len == type_len);
            FUZZ_CHECK(type_len == 0 || memcmp(f.data.type, dt->type, type_len) == 0);
        }
        ll_frame_free(pb);
        ll_frame_release(&f);
        ra = 0;
    }
    ll_decoder_free(&a);
    ll_decoder_free(&b);
}

/* Frames taken from d until it needs more; -1 on a decoder error. */
static long count_frames(ll_decoder *d)
{
    ll_frame f;
    long n = 0;
    ll_dec_result r;
    while ((r = ll_decoder_take(d, &f)) == LL_DEC_FRAME) {
        ll_frame_release(&f);
        n++;
    }
    return r == LL_DEC_ERROR ? -1 : n;
}

/* Bytes written in place (ll_decoder_space/commit, as ll_link_fill reads records) must give
 * the same results, errors and frames as the same pieces fed, whatever the room. */
static void check_in_place_agrees(const uint8_t *data, size_t size, uint64_t rng)
{
    ll_decoder a, b;
    ll_decoder_init(&a, FUZZ_MAX_FRAME);
    ll_decoder_init(&b, FUZZ_MAX_FRAME);
    for (size_t at = 0; at < size;) {
        size_t room = 0;
        uint8_t *dst = ll_decoder_space(&b, &room);
        size_t n = next_piece(&rng, size - at);
        int rb;
        if (room > 0) {
            n = n < room ? n : room;
            memcpy(dst, data + at, n);
            rb = ll_decoder_commit(&b, n);
        } else {
            rb = ll_decoder_feed(&b, data + at, n);
        }
        int ra = ll_decoder_feed(&a, data + at, n);
        FUZZ_CHECK(ra == rb);
        at += n;
        long fa = count_frames(&a), fb = count_frames(&b);
        FUZZ_CHECK(fa == fb && a.err == b.err);
        if (ra != 0 || fa < 0) {
            break;
        }
    }
    ll_decoder_free(&a);
    ll_decoder_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ll_decoder d;
    uint64_t rng = hash_input(data, size);
    uint64_t rng_in_place = rng;
    int rc = 0;

    ll_decoder_init(&d, FUZZ_MAX_FRAME);
    for (size_t at = 0; at < size && rc == 0;) {
        size_t n = next_piece(&rng, size - at);
        rc = ll_decoder_feed(&d, data + at, n);
        at += n;
        if (rc == 0) {
            rc = drain(&d);
        }
    }
    if (rc != 0) {
        check_sticky(&d, rc);
    }
    ll_decoder_free(&d);
    check_take_agrees(data, size);
    check_in_place_agrees(data, size, rng_in_place);
    return 0;
}
