#include "link.h"

#include "ll.h"
#include "net.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Bytes handed to one SSL_write: large enough to fill whole 16 KiB TLS records. */
#define WRITE_CHUNK (256u * 1024)
/* SSL_read returns at most one TLS record (16 KiB of plaintext) per call: a bigger buffer
 * would only cost every I/O thread stack. */
#define READ_CHUNK (16u * 1024)
/* A close frame's reason is cut to this, and to what leaves room for the frame's other
 * fields (at most CLOSE_OVERHEAD bytes with lengths under 16 KiB) within max_frame. */
#define CLOSE_REASON_MAX 255u
#define CLOSE_OVERHEAD   16u

void ll_link_init(ll_link *l, int fd, ll_tls *tls, uint32_t max_frame)
{
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    l->tls = tls;
    l->max_frame = max_frame;
    ll_decoder_init(&l->dec, max_frame);
}

void ll_link_close(ll_link *l)
{
    if (l->tls) {
        ll_tls_shutdown(l->tls);
        ll_tls_free(l->tls);
        l->tls = NULL;
    }
    if (l->fd >= 0) { /* a link is closed once: ll_link_init and this leave fd -1 or its own */
        close(l->fd);
    }
    l->fd = -1;
    ll_decoder_free(&l->dec);
    ll_buf_free(&l->out);
}

static int tls_failed(ll_link *l, int rc)
{
    LL_DETAIL(l->detail, sizeof(l->detail), "%s", ll_tls_error(l->tls));
    return rc;
}

/* A write that has to wait for the socket: note which way, for ll_link_events. */
static bool write_blocked(ll_link *l, int rc)
{
    l->want_write = rc == LL_TLS_WANT_WRITE;
    l->want_read_for_write = rc == LL_TLS_WANT_READ;
    return l->want_write || l->want_read_for_write;
}

/* The server's session ticket goes right behind its first frames (the Welcome), so that
 * the client reads the Welcome first (see ll_tls_send_ticket). OpenSSL cannot start the
 * ticket while a record of ours is half written, hence only with `out` empty. */
static int flush_ticket(ll_link *l)
{
    int rc = ll_tls_send_ticket(l->tls);
    if (write_blocked(l, rc)) {
        return 0;
    }
    l->ticket_due = false;
    return rc == LL_TLS_OK ? 0 : tls_failed(l, rc);
}

int ll_link_flush(ll_link *l, uint64_t now_ms)
{
    l->want_write = false;
    l->want_read_for_write = false;
    while (ll_buf_size(&l->out) > 0) {
        size_t n = 0;
        int rc = ll_tls_write(l->tls, ll_buf_head(&l->out), LL_MIN(ll_buf_size(&l->out), WRITE_CHUNK), &n);
        if (write_blocked(l, rc)) {
            return 0;
        }
        if (rc != LL_TLS_OK) {
            return tls_failed(l, rc);
        }
        ll_buf_consume(&l->out, n);
        ll_hb_on_tx(&l->hb, now_ms);
    }
    int rc = l->ticket_due ? flush_ticket(l) : 0;
    if (rc == 0 && !l->ticket_due && l->keepalive_ms) {
        ll_net_keepalive(l->fd, (int)l->keepalive_ms);
        l->keepalive_ms = 0;
    }
    return rc;
}

int ll_link_fill(ll_link *l, uint64_t now_ms, size_t max_bytes)
{
    uint8_t chunk[READ_CHUNK];
    size_t total = 0;
    /* Stop at the budget only when OpenSSL holds nothing decrypted: epoll cannot see that. */
    while (total < max_bytes || ll_tls_has_pending(l->tls)) {
        size_t n = 0;
        int rc = ll_tls_read(l->tls, chunk, sizeof(chunk), &n);
        if (rc == LL_TLS_WANT_READ) {
            break;
        }
        if (rc == LL_TLS_WANT_WRITE) {
            l->want_write = true;
            break;
        }
        if (rc != LL_TLS_OK) {
            return tls_failed(l, rc);
        }
        ll_hb_on_rx(&l->hb, now_ms);
        total += n;
        rc = ll_decoder_feed(&l->dec, chunk, n);
        if (rc != 0) {
            LL_DETAIL(l->detail, sizeof(l->detail), "%s", l->dec.detail);
            return rc;
        }
        /* A short record with nothing behind it: the peer wrote little, so the socket is
         * most likely empty. Hand the frames over now rather than after a read that would
         * only say EAGAIN; if more did arrive, poll says so. Full records keep streaming. */
        if (n < sizeof(chunk) && !ll_tls_has_pending(l->tls)) {
            break;
        }
    }
    return 0;
}

int ll_link_discard(ll_link *l)
{
    uint8_t chunk[READ_CHUNK];
    for (;;) {
        size_t n = 0;
        int rc = ll_tls_read(l->tls, chunk, sizeof(chunk), &n);
        if (rc == LL_TLS_WANT_READ || rc == LL_TLS_WANT_WRITE) {
            return 0;
        }
        if (rc != LL_TLS_OK) {
            return rc;
        }
    }
}

int ll_link_next(ll_link *l, ll_frame *f)
{
    int rc = ll_decoder_take(&l->dec, f);
    if (rc > 1 || rc < 0) {
        LL_DETAIL(l->detail, sizeof(l->detail), "%s", l->dec.detail);
    }
    return rc;
}

short ll_link_events(const ll_link *l)
{
    bool out = ll_buf_size(&l->out) > 0 && !l->want_read_for_write;
    return (short)(POLLIN | ((out || l->want_write) ? POLLOUT : 0));
}

int ll_link_send(ll_link *l, const Lifeline__Frame *f)
{
    return ll_encode_frame(&l->out, f, l->max_frame);
}

int ll_link_send_ack(ll_link *l, uint64_t seq)
{
    Lifeline__Ack ack = LIFELINE__ACK__INIT;
    ack.seq = seq;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_ACK;
    f.ack = &ack;
    return ll_link_send(l, &f);
}

int ll_link_send_ping(ll_link *l, uint64_t nonce, uint64_t timestamp_us)
{
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = nonce;
    ping.timestamp_us = timestamp_us;
    ping.rtt_us = l->hb.rtt_smoothed_us;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &ping;
    return ll_link_send(l, &f);
}

int ll_link_send_pong(ll_link *l, uint64_t nonce, uint64_t timestamp_us)
{
    Lifeline__Pong pong = LIFELINE__PONG__INIT;
    pong.nonce = nonce;
    pong.timestamp_us = timestamp_us;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PONG;
    f.pong = &pong;
    return ll_link_send(l, &f);
}

int ll_link_send_close(ll_link *l, int code, const char *reason, bool reconnect)
{
    /* The reason is cut to what fits a frame (max_frame may be as small as 64 bytes): a
     * shortened reason beats a close frame that never goes out. */
    char cut[CLOSE_REASON_MAX + 1];
    size_t room = l->max_frame > CLOSE_OVERHEAD ? l->max_frame - CLOSE_OVERHEAD : 0;
    LL_DETAIL(cut, LL_MIN(sizeof(cut), room + 1), "%s", reason ? reason : "");
    Lifeline__Close close_msg = LIFELINE__CLOSE__INIT;
    close_msg.code = (Lifeline__Close__Code)code;
    close_msg.reason = cut;
    close_msg.reconnect = reconnect;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_CLOSE;
    f.close = &close_msg;
    return ll_link_send(l, &f);
}

int ll_link_heartbeat(ll_link *l, uint64_t now_ms, uint64_t *next_ms)
{
    switch (ll_hb_poll(&l->hb, now_ms, next_ms)) {
    case LL_HB_DEAD:
        LL_DETAIL(l->detail, sizeof(l->detail), "no heartbeat from the peer for %u ms",
                  (unsigned)(now_ms - l->hb.last_rx_ms));
        return SDK_ETIMEDOUT;
    case LL_HB_PING:
        return ll_link_send_ping(l, ll_hb_ping_sent(&l->hb, now_ms), ll_now_us());
    case LL_HB_IDLE:
    default:
        return 0;
    }
}
