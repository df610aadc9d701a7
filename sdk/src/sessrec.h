/*
 * The session record: what a detached server session must carry for another server
 * process to resume it, and its versioned binary form, the bytes a session store keeps.
 * Pure: no I/O, no locks, no clock.
 *
 * Format, version 1: a fixed header of LL_SESSREC_HEADER bytes, every integer big-endian,
 * then the frames.
 *
 *   off size field
 *     0    4 magic "LLSR"
 *     4    4 version (1); a reader refuses any other, so a layout change is a new version
 *     8    8 session id (never 0)
 *    16   32 SHA-256 of the resume token: a store's reader never learns the token itself
 *    48    8 owner epoch: the fencing epoch of the instance that wrote the record
 *    56    8 acked          the client acknowledged every sequence <= acked
 *    64    8 high_written   highest sequence ever written (acked <= it <= acked + frames)
 *    72    8 received       highest sequence accepted from the client (>= consumed); above
 *                         consumed only in a record written while its session was live
 *                         (store sync "always"), where it bounds what the writer's
 *                         application may have seen: resumed elsewhere, messages up to it
 *                         arrive flagged as redelivered
 *    80    8 consumed       highest sequence the application took
 *    88    4 epoch          the reliable stream's epoch (ll_session.epoch)
 *    92    4 heartbeat interval, ms, as the client announced
 *    96    4 heartbeat timeout, ms, as applied
 *   100    4 window, messages
 *   104    8 window, bytes
 *   112    4 the client's max_frame
 *   116    4 frame count
 *   120    . the unacknowledged server-to-client messages: Data frames exactly as the
 *            retransmit queue holds them (each with its 4-byte length), oldest first, the
 *            i-th with sequence acked + 1 + i, and nothing after the last
 *
 * A reader checks every field's relations and every frame before it believes any of them:
 * a store is shared, so its bytes are input like any peer's.
 */
#ifndef LL_SESSREC_H
#define LL_SESSREC_H

#include "buf.h"
#include "session.h"
#include "tls.h"

#include <stddef.h>
#include <stdint.h>

#define LL_SESSREC_VERSION 1u
#define LL_SESSREC_HEADER  120u
/* The largest record a reader accepts unless told otherwise (a full retransmit queue at
 * the default windows is far smaller; Redis refuses values over 512 MiB). */
#define LL_SESSREC_MAX_DEFAULT (64u * 1024 * 1024)

typedef struct ll_sessrec {
    uint64_t id;
    uint8_t token_hash[LL_SHA256_LEN];
    uint64_t owner_epoch;
    uint64_t acked, high_written, received, consumed;
    uint32_t epoch;
    uint32_t hb_interval_ms, hb_timeout_ms;
    uint32_t window_messages;
    uint64_t window_bytes;
    uint32_t peer_max_frame;
    uint32_t nframes;
    const uint8_t *frames; /* nframes encoded Data frames back to back; not owned */
    size_t frames_len;
} ll_sessrec;

/* Append r's encoding to out. SDK_ENOMEM (out as it was), SDK_ETOOBIG (more frames than
 * the format counts), or 0. */
int ll_sessrec_encode(const ll_sessrec *r, ll_buf *out);

/* Read a record of len bytes at p into *r, checking everything; r->frames then points
 * into p. 0, SDK_ETOOBIG (len > max_len), or SDK_EPROTO (truncated, not a record, another
 * version, fields that contradict each other, a malformed or misnumbered frame, bytes after
 * the last frame), with detail saying which. */
int ll_sessrec_decode(const uint8_t *p, size_t len, size_t max_len, ll_sessrec *r, char *detail, size_t dlen);

/* A whole record from a header (a record of any frame count, whose own frames are ignored)
 * and nframes frames (frames_len bytes), appended to out with the count set. This is how a
 * store keeping the frames apart gives a record back. 0, SDK_EPROTO (a header too short),
 * SDK_ENOMEM. */
int ll_sessrec_assemble(const uint8_t *header, size_t header_len, const uint8_t *frames, size_t frames_len,
                        uint32_t nframes, ll_buf *out);

/* The acked field of a record's header (len bytes at header) into *acked: what a store
 * keeping the frames apart needs to tell which of them are still queued. 0, or SDK_EPROTO
 * (a header too short). Checks nothing else. */
int ll_sessrec_header_acked(const uint8_t *header, size_t len, uint64_t *acked);

/* The header of r alone (r with no frames), appended to out: what a store keeps beside the
 * frames. 0 or SDK_ENOMEM. */
int ll_sessrec_encode_header(const ll_sessrec *r, ll_buf *out);

/* Fill r's stream fields from s (id, token hash, owner epoch and the heartbeat values are
 * the caller's) and append s's unacknowledged frames to frames, which r->frames then points
 * into: keep frames unchanged while r is used. 0 or SDK_ENOMEM / SDK_ETOOBIG.
 * received is taken as consumed: messages the application never took die with this
 * process, and the client still has them (we acknowledge only what was consumed), so
 * whoever resumes asks for them again rather than losing them. */
int ll_sessrec_capture(const ll_session *s, ll_buf *frames, ll_sessrec *r);

/* The same with only the unacknowledged frames from the first-th on (0: all) appended: a
 * delta for a store that has the earlier ones. r->nframes still counts every frame. */
int ll_sessrec_capture_from(const ll_session *s, size_t first, ll_buf *frames, ll_sessrec *r);

/* Put r's stream into s, a session fresh from ll_session_init: sequences, windows, the
 * client's max_frame and the frames, queued to be written again. 0 or SDK_ENOMEM (s then
 * holds part of the frames: free it). r must come from ll_sessrec_decode. */
int ll_sessrec_restore(const ll_sessrec *r, ll_session *s);

#endif
