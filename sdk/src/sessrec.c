#include "sessrec.h"

#include "codec.h"
#include "ll.h"

#include <string.h>

static const uint8_t MAGIC[4] = {'L', 'L', 'S', 'R'};

/* Field offsets in the header (sessrec.h has the table). */
enum {
    OFF_VERSION = 4,
    OFF_ID = 8,
    OFF_TOKEN = 16,
    OFF_OWNER = 48,
    OFF_ACKED = 56,
    OFF_HIGH = 64,
    OFF_RECEIVED = 72,
    OFF_CONSUMED = 80,
    OFF_EPOCH = 88,
    OFF_HB_INTERVAL = 92,
    OFF_HB_TIMEOUT = 96,
    OFF_WIN_MSGS = 100,
    OFF_WIN_BYTES = 104,
    OFF_MAX_FRAME = 112,
    OFF_NFRAMES = 116,
};

/* Every fixed-width field after the token: one table for the writer and the reader, so they
 * cannot drift. X(offset, bits, member). */
#define SESSREC_FIELDS(X)                  \
    X(OFF_ID, 64, id)                      \
    X(OFF_OWNER, 64, owner_epoch)          \
    X(OFF_ACKED, 64, acked)                \
    X(OFF_HIGH, 64, high_written)          \
    X(OFF_RECEIVED, 64, received)          \
    X(OFF_CONSUMED, 64, consumed)          \
    X(OFF_EPOCH, 32, epoch)                \
    X(OFF_HB_INTERVAL, 32, hb_interval_ms) \
    X(OFF_HB_TIMEOUT, 32, hb_timeout_ms)   \
    X(OFF_WIN_MSGS, 32, window_messages)   \
    X(OFF_WIN_BYTES, 64, window_bytes)     \
    X(OFF_MAX_FRAME, 32, peer_max_frame)   \
    X(OFF_NFRAMES, 32, nframes)

int ll_sessrec_encode(const ll_sessrec *r, ll_buf *out)
{
    LL_ENSURE(r->frames_len <= SIZE_MAX - LL_SESSREC_HEADER, SDK_ETOOBIG);
    LL_GUARD(ll_buf_reserve(out, LL_SESSREC_HEADER + r->frames_len));
    uint8_t *p = ll_buf_tail(out);
    memcpy(p, MAGIC, sizeof(MAGIC));
    ll_put_be32(p + OFF_VERSION, LL_SESSREC_VERSION);
    memcpy(p + OFF_TOKEN, r->token_hash, LL_SHA256_LEN);
#define PUT_FIELD(off, bits, member) ll_put_be##bits(p + (off), r->member);
    SESSREC_FIELDS(PUT_FIELD)
#undef PUT_FIELD
    if (r->frames_len > 0) {
        memcpy(p + LL_SESSREC_HEADER, r->frames, r->frames_len);
    }
    out->len += LL_SESSREC_HEADER + r->frames_len;
    return 0;
}

int ll_sessrec_encode_header(const ll_sessrec *r, ll_buf *out)
{
    ll_sessrec h = *r;
    h.nframes = 0;
    h.frames = NULL;
    h.frames_len = 0;
    return ll_sessrec_encode(&h, out);
}

int ll_sessrec_assemble(const uint8_t *header, size_t header_len, const uint8_t *frames, size_t frames_len,
                        uint32_t nframes, ll_buf *out)
{
    LL_ENSURE(header_len >= LL_SESSREC_HEADER, SDK_EPROTO);
    LL_ENSURE(frames_len <= SIZE_MAX - LL_SESSREC_HEADER, SDK_ENOMEM);
    LL_GUARD(ll_buf_reserve(out, LL_SESSREC_HEADER + frames_len));
    uint8_t *p = ll_buf_tail(out);
    memcpy(p, header, LL_SESSREC_HEADER);
    ll_put_be32(p + OFF_NFRAMES, nframes);
    if (frames_len > 0) {
        memcpy(p + LL_SESSREC_HEADER, frames, frames_len);
    }
    out->len += LL_SESSREC_HEADER + frames_len;
    return 0;
}

int ll_sessrec_header_acked(const uint8_t *header, size_t len, uint64_t *acked)
{
    LL_ENSURE(len >= LL_SESSREC_HEADER, SDK_EPROTO);
    *acked = ll_get_be64(header + OFF_ACKED);
    return 0;
}

static void read_header(const uint8_t *p, ll_sessrec *r)
{
    *r = (ll_sessrec){0};
    memcpy(r->token_hash, p + OFF_TOKEN, LL_SHA256_LEN);
#define GET_FIELD(off, bits, member) r->member = ll_get_be##bits(p + (off));
    SESSREC_FIELDS(GET_FIELD)
#undef GET_FIELD
}

/* The header's fields against each other; the frames come next. */
static int check_fields(const ll_sessrec *r, char *detail, size_t dlen)
{
    const char *why = NULL;
    if (r->id == 0) {
        why = "session id 0";
    } else if (r->consumed > r->received) {
        why = "consumed beyond received";
    } else if (r->high_written < r->acked || r->high_written - r->acked > r->nframes) {
        why = "high_written outside the queued frames";
    } else if (r->acked > UINT64_MAX - r->nframes) {
        why = "sequences overflow";
    }
    if (why) {
        LL_DETAIL(detail, dlen, "session record: %s", why);
        return SDK_EPROTO;
    }
    return 0;
}

/* Every frame whole, a canonical Data frame, numbered acked + 1, + 2, ..., and nothing after
 * the last. */
static int check_frames(const ll_sessrec *r, char *detail, size_t dlen)
{
    size_t off = 0;
    for (uint32_t i = 0; i < r->nframes; i++) {
        size_t left = r->frames_len - off;
        size_t size = left >= LL_FRAME_HEADER ? LL_FRAME_HEADER + (size_t)ll_get_be32(r->frames + off) : SIZE_MAX;
        ll_data_view v;
        if (size > left || !ll_data_frame_read(r->frames + off, size, &v) || v.seq != r->acked + 1 + i) {
            LL_DETAIL(detail, dlen, "session record: frame %u of %u is %s", (unsigned)i + 1, (unsigned)r->nframes,
                      size > left ? "truncated" : "malformed or misnumbered");
            return SDK_EPROTO;
        }
        off += size;
    }
    if (off != r->frames_len) {
        LL_DETAIL(detail, dlen, "session record: %zu bytes after the last frame", r->frames_len - off);
        return SDK_EPROTO;
    }
    return 0;
}

int ll_sessrec_decode(const uint8_t *p, size_t len, size_t max_len, ll_sessrec *r, char *detail, size_t dlen)
{
    if (len > max_len) {
        LL_DETAIL(detail, dlen, "session record of %zu bytes, over the limit of %zu", len, max_len);
        return SDK_ETOOBIG;
    }
    if (len < LL_SESSREC_HEADER || memcmp(p, MAGIC, sizeof(MAGIC)) != 0) {
        LL_DETAIL(detail, dlen, "%s",
                  len < sizeof(MAGIC) || memcmp(p, MAGIC, sizeof(MAGIC)) != 0
                      ? "not a session record"
                      : "session record truncated in its header");
        return SDK_EPROTO;
    }
    uint32_t version = ll_get_be32(p + OFF_VERSION);
    if (version != LL_SESSREC_VERSION) {
        LL_DETAIL(detail, dlen, "session record version %u; this library reads version %u", (unsigned)version,
                  LL_SESSREC_VERSION);
        return SDK_EPROTO;
    }
    read_header(p, r);
    r->frames = p + LL_SESSREC_HEADER;
    r->frames_len = len - LL_SESSREC_HEADER;
    LL_GUARD(check_fields(r, detail, dlen));
    return check_frames(r, detail, dlen);
}

int ll_sessrec_capture_from(const ll_session *s, size_t first, ll_buf *frames, ll_sessrec *r)
{
    LL_ENSURE(s->sendq.count <= UINT32_MAX, SDK_ETOOBIG);
    size_t start = ll_buf_size(frames);
    LL_GUARD(ll_frameq_append_from(&s->sendq, first, frames));
    r->acked = s->acked;
    r->high_written = s->high_written;
    r->received = s->consumed; /* see sessrec.h: the client sends the rest again */
    r->consumed = s->consumed;
    r->epoch = s->epoch;
    r->window_messages = s->window_messages;
    r->window_bytes = s->window_bytes;
    r->peer_max_frame = s->peer_max_frame;
    r->nframes = (uint32_t)s->sendq.count;
    r->frames = ll_buf_head(frames) + start;
    r->frames_len = ll_buf_size(frames) - start;
    return 0;
}

int ll_sessrec_capture(const ll_session *s, ll_buf *frames, ll_sessrec *r)
{
    return ll_sessrec_capture_from(s, 0, frames, r);
}

int ll_sessrec_restore(const ll_sessrec *r, ll_session *s)
{
    size_t off = 0;
    for (uint32_t i = 0; i < r->nframes; i++) {
        size_t size = LL_FRAME_HEADER + (size_t)ll_get_be32(r->frames + off);
        ll_data_view v;
        (void)ll_data_frame_read(r->frames + off, size, &v); /* checked by ll_sessrec_decode */
        LL_GUARD(ll_frameq_push(&s->sendq, v.seq, v.payload, v.len, v.type, v.type_len));
        off += size;
    }
    s->acked = r->acked;
    s->high_written = r->high_written;
    s->received = r->consumed; /* see sessrec.h */
    s->consumed = r->consumed;
    s->ack_sent = 0; /* a new connection hears our acknowledgement again */
    s->epoch = r->epoch;
    s->window_messages = r->window_messages ? r->window_messages : 1;
    s->window_bytes = r->window_bytes ? r->window_bytes : 1;
    s->peer_max_frame = r->peer_max_frame;
    return 0;
}
