/*
 * Length-prefixed framing: each frame is a 4-byte big-endian length, then that many bytes
 * of a protobuf-encoded lifeline.Frame. The decoder is a state struct fed bytes in any
 * pieces (one at a time works); it yields whole frames. Errors are sticky.
 */
#ifndef LL_CODEC_H
#define LL_CODEC_H

#include "buf.h"
#include "lifeline.pb-c.h"

#include <stdbool.h>

#define LL_FRAME_HEADER      4
#define LL_MAX_FRAME_DEFAULT (16u * 1024 * 1024)

typedef struct ll_decoder {
    ll_buf in;          /* unparsed bytes: at most one partial frame + one fed chunk */
    uint32_t max_frame; /* largest body accepted, checked before the body is buffered */
    int err;            /* sticky: 0 or SDK_ETOOBIG / SDK_EPROTO */
    char detail[96];    /* why err was set */
} ll_decoder;

/* What ll_decoder_next / ll_decoder_take found: results of their own, never an sdk_err, so
 * "a frame" cannot be mistaken for an error code (SDK_EINVAL is 1). */
typedef enum {
    LL_DEC_NEED_MORE = 0, /* no whole frame buffered yet: feed more bytes */
    LL_DEC_FRAME,         /* a frame was taken */
    LL_DEC_ERROR,         /* d->err (SDK_ETOOBIG / SDK_EPROTO / SDK_ENOMEM) and d->detail say why */
} ll_dec_result;

void ll_decoder_init(ll_decoder *d, uint32_t max_frame);
void ll_decoder_free(ll_decoder *d);
/* Append received bytes. Returns 0, the sticky error, or SDK_ENOMEM (also sticky: bytes may
 * have been half taken). If the first buffered frame's header completes here, it is checked
 * at once, so SDK_ETOOBIG / SDK_EPROTO can come from feed too. */
int ll_decoder_feed(ll_decoder *d, const void *data, size_t len);
/* Where up to *room received bytes can be written in place, saving the copy ll_decoder_feed
 * makes: the free tail of the buffer, never grown here (so an idle connection's stays small;
 * *room may be 0). After an error: NULL and 0. Invalidates frames taken, as a feed does. */
uint8_t *ll_decoder_space(ll_decoder *d, size_t *room);
/* n bytes (at most the room given) were written at ll_decoder_space: take them, with the
 * same checks and results as ll_decoder_feed of those bytes. */
int ll_decoder_commit(ll_decoder *d, size_t n);
/*
 * Next whole frame: LL_DEC_FRAME with *out set (free with ll_frame_free), LL_DEC_NEED_MORE,
 * or LL_DEC_ERROR with d->err one of SDK_ETOOBIG (length over max_frame), SDK_EPROTO (zero
 * length, malformed protobuf, no frame kind set), SDK_ENOMEM. An oversize length is rejected
 * as soon as its 4 header bytes arrive, before any body is buffered. Every error is
 * sticky: later calls return LL_DEC_ERROR again; d->detail says why.
 */
ll_dec_result ll_decoder_next(ll_decoder *d, Lifeline__Frame **out);
void ll_frame_free(Lifeline__Frame *f);

/* A Data frame's fields, pointing into memory owned by someone else. */
typedef struct ll_data_view {
    uint64_t seq;
    const uint8_t *payload;
    size_t len;
    const char *type; /* not NUL-terminated; NULL when type_len is 0 */
    size_t type_len;
} ll_data_view;

/* A frame taken with ll_decoder_take. */
typedef struct ll_frame {
    Lifeline__Frame__KindCase kind;
    Lifeline__Frame *pb; /* protobuf-c's unpacking; NULL for a Data frame read in place */
    ll_data_view data;   /* kind DATA: its fields, whichever way it was read */
} ll_frame;

/*
 * ll_decoder_next, without allocating for the common case: a Data frame in the canonical
 * form ll_encode_data writes (fields in order, nothing else) is read in place, and f->data
 * points into the decoder's buffer until the next ll_decoder_feed. Any other frame, including
 * a Data frame encoded differently, is unpacked by protobuf-c into f->pb, so both paths accept
 * exactly the same inputs. Same results and errors as ll_decoder_next; release the frame with
 * ll_frame_release.
 */
ll_dec_result ll_decoder_take(ll_decoder *d, ll_frame *f);
void ll_frame_release(ll_frame *f);

/* A Frame (a compound literal) holding msg in its oneof member `member` of kind KIND:
 * LL_FRAME_OF(ack, ACK, &ack). */
#define LL_FRAME_OF(member, KIND, msg)                                                \
    ((Lifeline__Frame){.base = PROTOBUF_C_MESSAGE_INIT(&lifeline__frame__descriptor), \
                       .kind_case = LIFELINE__FRAME__KIND_##KIND,                     \
                       .member = (msg)})

/* Append header + packed frame to out. SDK_ETOOBIG if the body exceeds max_frame,
 * SDK_EINVAL if f is NULL or has no kind set, SDK_ENOMEM. On error nothing is
 * appended. */
int ll_encode_frame(ll_buf *out, const Lifeline__Frame *f, uint32_t max_frame);
/*
 * Append a Data frame without building protobuf-c structs: byte-identical to
 * ll_encode_frame of Frame{data{seq, payload, type}} (type NULL or "" omitted).
 * Errors: SDK_EINVAL (payload NULL with len > 0), SDK_ETOOBIG, SDK_ENOMEM; on error
 * nothing is appended.
 */
int ll_encode_data(ll_buf *out, uint64_t seq, const void *payload, size_t len, const char *type, uint32_t max_frame);
/* Exact encoded size (header included) of the Data frame above, for bound checks;
 * SIZE_MAX if it would not fit in a size_t. */
size_t ll_data_frame_size(uint64_t seq, size_t len, const char *type);
/* The same, for a type name of type_len bytes (0: none). */
size_t ll_data_frame_size_n(uint64_t seq, size_t len, size_t type_len);
/* The same Data frame, written at dst, which must hold ll_data_frame_size_n(seq, len, type_len)
 * bytes. For queues that keep frames in their own memory. */
void ll_put_data_frame(uint8_t *dst, uint64_t seq, const void *payload, size_t len, const char *type, size_t type_len);
/* Read back a whole frame (header included) of `size` bytes: true with *v pointing into it
 * if it is a Data frame in the canonical form written above, else false. */
bool ll_data_frame_read(const uint8_t *frame, size_t size, ll_data_view *v);

#endif
