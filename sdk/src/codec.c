/*
 * Length-prefixed framing: a 4-byte big-endian body length, then a protobuf lifeline.Frame.
 *
 * The decoder follows hiredis's reader: bytes go in with ll_decoder_feed, whole frames come
 * out of ll_decoder_next, nothing here does I/O, and the first error sticks. Frames are taken
 * out by advancing the buffer's read cursor, so a chunk holding many frames is never shifted
 * once per frame.
 *
 * The Data encoder writes protobuf by hand: Data is the one frame sent at message rate, and
 * building protobuf-c structs for it would cost allocations and a second copy of the payload.
 * tests/unit/test_codec.c checks it byte for byte against protobuf-c.
 */
#include "codec.h"

#include "ll.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Protobuf keys are (field number << 3) | wire type; every field used here fits one byte. */
#define WIRE_VARINT      0u
#define WIRE_LEN         2u
#define KEY(field, wire) ((uint8_t)(((field) << 3) | (wire)))

/* Field numbers from proto/lifeline.proto. */
#define FRAME_DATA   3u
#define DATA_SEQ     1u
#define DATA_PAYLOAD 2u
#define DATA_TYPE    3u

/* ---- decoder ---------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(ll_decoder *d, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(d->detail, sizeof d->detail, fmt, ap);
    va_end(ap);
    d->err = err;
    return err;
}

void ll_decoder_init(ll_decoder *d, uint32_t max_frame)
{
    memset(d, 0, sizeof *d);
    d->max_frame = max_frame;
}

void ll_decoder_free(ll_decoder *d)
{
    ll_buf_free(&d->in);
}

/* Check the length header at the front of the buffer (at least 4 bytes must be there). */
static int check_header(ll_decoder *d, uint32_t *body_len)
{
    uint32_t n = ll_get_be32(ll_buf_head(&d->in));

    /* An empty body cannot carry a frame kind, so it is never valid. */
    if (n == 0) {
        return fail(d, SDK_EPROTO, "zero-length frame");
    }
    if (n > d->max_frame) {
        return fail(d, SDK_ETOOBIG, "frame length %" PRIu32 " exceeds limit %" PRIu32, n, d->max_frame);
    }
    *body_len = n;
    return 0;
}

static int append(ll_decoder *d, const uint8_t *p, size_t n)
{
    if (ll_buf_append(&d->in, p, n) != 0) {
        return fail(d, SDK_ENOMEM, "out of memory buffering %zu received bytes", n);
    }
    return 0;
}

int ll_decoder_feed(ll_decoder *d, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t have = ll_buf_size(&d->in);
    uint32_t body_len = 0; /* set by check_header; gcc -O3 cannot see it */

    if (d->err != 0) {
        return d->err;
    }
    if (len == 0) {
        return 0;
    }
    /*
     * Take the first frame's header on its own and check it before copying anything after
     * it, so a hostile length is refused without buffering (or allocating for) its body.
     * Later frames in the same chunk are checked by ll_decoder_next as it reaches them.
     */
    if (have < LL_FRAME_HEADER) {
        size_t n = LL_MIN(len, LL_FRAME_HEADER - have);
        LL_GUARD(append(d, p, n));
        p += n;
        len -= n;
        if (have + n == LL_FRAME_HEADER) {
            LL_GUARD(check_header(d, &body_len));
        }
    }
    return append(d, p, len);
}

uint8_t *ll_decoder_space(ll_decoder *d, size_t *room)
{
    *room = d->err ? 0 : ll_buf_room(&d->in);
    return *room ? ll_buf_tail(&d->in) : NULL;
}

int ll_decoder_commit(ll_decoder *d, size_t n)
{
    size_t have = ll_buf_size(&d->in);
    uint32_t body_len = 0;

    if (d->err != 0) {
        return d->err;
    }
    d->in.len += n;
    /* The first frame's header is checked as soon as it is whole, as in ll_decoder_feed; what
     * follows it is at most one read, into memory the buffer already had. */
    if (have < LL_FRAME_HEADER && have + n >= LL_FRAME_HEADER) {
        return check_header(d, &body_len);
    }
    return 0;
}

/*
 * protobuf-c reports every unpack failure as NULL; this allocator remembers whether memory
 * ran out, so that is not blamed on the peer. It uses malloc/free like protobuf-c's default,
 * so frames can still be freed with a NULL allocator.
 */
static void *tracking_alloc(void *ctx, size_t size)
{
    void *p = malloc(size);

    if (p == NULL && size != 0) {
        *(bool *)ctx = true;
    }
    return p;
}

static void tracking_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* Unpack the whole frame at the front of the buffer and consume it, valid or not. */
static ll_dec_result unpack_frame(ll_decoder *d, uint32_t body_len, Lifeline__Frame **out)
{
    bool oom = false;
    ProtobufCAllocator alloc = {tracking_alloc, tracking_free, &oom};
    Lifeline__Frame *f = lifeline__frame__unpack(&alloc, body_len, ll_buf_head(&d->in) + LL_FRAME_HEADER);

    ll_buf_consume(&d->in, LL_FRAME_HEADER + (size_t)body_len);
    if (f == NULL && oom) {
        (void)fail(d, SDK_ENOMEM, "out of memory decoding a %" PRIu32 "-byte frame", body_len);
        return LL_DEC_ERROR;
    }
    if (f == NULL) {
        (void)fail(d, SDK_EPROTO, "frame body of %" PRIu32 " bytes is not a valid lifeline.Frame", body_len);
        return LL_DEC_ERROR;
    }
    if (f->kind_case == LIFELINE__FRAME__KIND__NOT_SET) {
        ll_frame_free(f);
        (void)fail(d, SDK_EPROTO, "frame of %" PRIu32 " bytes has no kind set", body_len);
        return LL_DEC_ERROR;
    }
    *out = f;
    return LL_DEC_FRAME;
}

/* Whether a whole frame is buffered (with its body length), more bytes are needed, or the
 * (sticky) error is set. */
static ll_dec_result whole_frame(ll_decoder *d, uint32_t *body_len)
{
    *body_len = 0;
    if (d->err != 0) {
        return LL_DEC_ERROR;
    }
    if (ll_buf_size(&d->in) < LL_FRAME_HEADER) {
        return LL_DEC_NEED_MORE;
    }
    if (check_header(d, body_len) != 0) {
        return LL_DEC_ERROR;
    }
    return ll_buf_size(&d->in) - LL_FRAME_HEADER >= *body_len ? LL_DEC_FRAME : LL_DEC_NEED_MORE;
}

ll_dec_result ll_decoder_next(ll_decoder *d, Lifeline__Frame **out)
{
    uint32_t body_len = 0;
    *out = NULL;
    ll_dec_result rc = whole_frame(d, &body_len);
    return rc == LL_DEC_FRAME ? unpack_frame(d, body_len, out) : rc;
}

/* ---- in-place Data frames -------------------------------------------------------------- */

/* A varint at *p (before end): false if truncated or longer than 64 bits. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t value = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t byte = *(*p)++;
        if (shift == 63 && byte > 1) {
            return false;
        }
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (byte < 0x80) {
            *v = value;
            return true;
        }
    }
    return false;
}

/* An optional length-delimited field with key `key` at *p: its bytes, or false if malformed. */
static bool get_len_field(const uint8_t **p, const uint8_t *end, uint8_t key, const uint8_t **data, size_t *len)
{
    uint64_t n = 0;
    *data = NULL;
    *len = 0;
    if (*p == end || **p != key) {
        return true; /* absent: proto3 default */
    }
    (*p)++;
    if (!get_varint(p, end, &n) || n > (uint64_t)(end - *p)) {
        return false;
    }
    *data = *p;
    *len = (size_t)n;
    *p += n;
    return true;
}

/* The canonical Data frame: Frame{data(3)} holding seq(1), payload(2), type(3) in order,
 * each at most once, nothing else. Anything else is left to protobuf-c. */
static bool read_data_in_place(const uint8_t *body, size_t len, ll_data_view *v)
{
    const uint8_t *p = body;
    const uint8_t *end = body + len;
    uint64_t inner = 0;
    if (len < 2 || *p++ != KEY(FRAME_DATA, WIRE_LEN) || !get_varint(&p, end, &inner) || inner != (uint64_t)(end - p)) {
        return false;
    }
    *v = (ll_data_view){0};
    if (p < end && *p == KEY(DATA_SEQ, WIRE_VARINT)) {
        p++;
        if (!get_varint(&p, end, &v->seq)) {
            return false;
        }
    }
    const uint8_t *type = NULL;
    if (!get_len_field(&p, end, KEY(DATA_PAYLOAD, WIRE_LEN), &v->payload, &v->len) ||
        !get_len_field(&p, end, KEY(DATA_TYPE, WIRE_LEN), &type, &v->type_len) || p != end) {
        return false;
    }
    /* A NUL inside the name would read differently as a C string: protobuf-c decides. */
    if (v->type_len && memchr(type, 0, v->type_len) != NULL) {
        return false;
    }
    v->type = (const char *)type;
    return true;
}

ll_dec_result ll_decoder_take(ll_decoder *d, ll_frame *f)
{
    uint32_t body_len = 0;
    *f = (ll_frame){0};
    ll_dec_result rc = whole_frame(d, &body_len);
    if (rc != LL_DEC_FRAME) {
        return rc;
    }
    if (read_data_in_place(ll_buf_head(&d->in) + LL_FRAME_HEADER, body_len, &f->data)) {
        f->kind = LIFELINE__FRAME__KIND_DATA;
        /* Consumed, not overwritten: the bytes stay put until the next feed. */
        ll_buf_consume(&d->in, LL_FRAME_HEADER + (size_t)body_len);
        return LL_DEC_FRAME;
    }
    rc = unpack_frame(d, body_len, &f->pb);
    if (rc != LL_DEC_FRAME) {
        return rc;
    }
    f->kind = f->pb->kind_case;
    if (f->kind == LIFELINE__FRAME__KIND_DATA) {
        const Lifeline__Data *dt = f->pb->data;
        f->data = (ll_data_view){.seq = dt->seq,
                                 .payload = dt->payload.data,
                                 .len = dt->payload.len,
                                 .type = dt->type && *dt->type ? dt->type : NULL,
                                 .type_len = dt->type ? strlen(dt->type) : 0};
    }
    return LL_DEC_FRAME;
}

void ll_frame_release(ll_frame *f)
{
    ll_frame_free(f->pb);
    *f = (ll_frame){0};
}

void ll_frame_free(Lifeline__Frame *f)
{
    if (f != NULL) {
        lifeline__frame__free_unpacked(f, NULL);
    }
}

/* ---- encoders --------------------------------------------------------------------------- */

/* Write the 4-byte header into reserved space and commit header + body to the buffer. */
static void commit_frame(ll_buf *out, size_t body_len)
{
    ll_put_be32(ll_buf_tail(out), (uint32_t)body_len);
    out->len += LL_FRAME_HEADER + body_len;
}

int ll_encode_frame(ll_buf *out, const Lifeline__Frame *f, uint32_t max_frame)
{
    /* The peer's decoder rejects a frame without a kind, so never send one. */
    LL_ENSURE(f != NULL && f->kind_case != LIFELINE__FRAME__KIND__NOT_SET, SDK_EINVAL);
    size_t body_len = lifeline__frame__get_packed_size(f);
    LL_ENSURE(body_len <= max_frame, SDK_ETOOBIG);
    LL_GUARD(ll_buf_reserve(out, LL_FRAME_HEADER + body_len));
    (void)lifeline__frame__pack(f, ll_buf_tail(out) + LL_FRAME_HEADER);
    commit_frame(out, body_len);
    return 0;
}

/* Sizes saturate at SIZE_MAX so an absurd payload length reads as "too big", never wraps. */
static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* 7 bits per byte: on every send path, so no loop. */
static size_t varint_size(uint64_t v)
{
    unsigned bits = 64 - (unsigned)__builtin_clzll(v | 1);
    return (bits + 6) / 7;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Key + length + bytes of a length-delimited field. */
static size_t len_field_size(size_t len)
{
    return add_sat(1 + varint_size(len), len);
}

/* proto3 omits fields equal to their default: zero seq, empty payload, empty type. */
static size_t data_body_size(uint64_t seq, size_t len, size_t type_len)
{
    size_t n = seq != 0 ? 1 + varint_size(seq) : 0;

    if (len != 0) {
        n = add_sat(n, len_field_size(len));
    }
    if (type_len != 0) {
        n = add_sat(n, len_field_size(type_len));
    }
    return n;
}

static uint8_t *put_len_field(uint8_t *p, unsigned field, const void *data, size_t len)
{
    if (len == 0) {
        return p;
    }
    *p++ = KEY(field, WIRE_LEN);
    p = put_varint(p, len);
    memcpy(p, data, len);
    return p + len;
}

size_t ll_data_frame_size_n(uint64_t seq, size_t len, size_t type_len)
{
    return add_sat(LL_FRAME_HEADER, len_field_size(data_body_size(seq, len, type_len)));
}

size_t ll_data_frame_size(uint64_t seq, size_t len, const char *type)
{
    return ll_data_frame_size_n(seq, len, type != NULL ? strlen(type) : 0);
}

void ll_put_data_frame(uint8_t *dst, uint64_t seq, const void *payload, size_t len, const char *type, size_t type_len)
{
    size_t data_len = data_body_size(seq, len, type_len);
    uint8_t *p = dst + LL_FRAME_HEADER;

    ll_put_be32(dst, (uint32_t)len_field_size(data_len));
    *p++ = KEY(FRAME_DATA, WIRE_LEN);
    p = put_varint(p, data_len);
    if (seq != 0) {
        *p++ = KEY(DATA_SEQ, WIRE_VARINT);
        p = put_varint(p, seq);
    }
    p = put_len_field(p, DATA_PAYLOAD, payload, len);
    (void)put_len_field(p, DATA_TYPE, type, type_len);
}

bool ll_data_frame_read(const uint8_t *frame, size_t size, ll_data_view *v)
{
    return size >= LL_FRAME_HEADER && ll_get_be32(frame) == size - LL_FRAME_HEADER &&
           read_data_in_place(frame + LL_FRAME_HEADER, size - LL_FRAME_HEADER, v);
}

int ll_encode_data(ll_buf *out, uint64_t seq, const void *payload, size_t len, const char *type, uint32_t max_frame)
{
    size_t type_len = type != NULL ? strlen(type) : 0;
    size_t body_len = len_field_size(data_body_size(seq, len, type_len));

    LL_ENSURE(payload != NULL || len == 0, SDK_EINVAL);
    /* A saturated size is too big even when max_frame is UINT32_MAX and size_t is 32 bits. */
    LL_ENSURE(body_len != SIZE_MAX && body_len <= max_frame, SDK_ETOOBIG);
    LL_GUARD(ll_buf_reserve(out, LL_FRAME_HEADER + body_len));
    ll_put_data_frame(ll_buf_tail(out), seq, payload, len, type, type_len);
    out->len += LL_FRAME_HEADER + body_len;
    return 0;
}
