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
/* Decrypt in place only into at least this much room: smaller reads would split records. */
#define IN_PLACE_MIN (4u * 1024)
void ll_link_init(ll_link *l, int fd, ll_tls *tls, ll_role role, uint32_t max_frame)
{
    memset(l, 0, sizeof(*l));
    l->fd = fd;
    l->tls = tls;
    ll_conn_init(&l->conn, role, max_frame);
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
    ll_conn_free(&l->conn);
}

static int tls_failed(ll_link *l, int rc)
{
    LL_DETAIL(l->conn.detail, sizeof(l->conn.detail), "%s", ll_tls_error(l->tls));
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
    ll_buf *out = &l->conn.out;
    while (ll_buf_size(out) > 0) {
        size_t n = 0;
        int rc = ll_tls_write(l->tls, ll_buf_head(out), LL_MIN(ll_buf_size(out), WRITE_CHUNK), &n);
        if (write_blocked(l, rc)) {
            return 0;
        }
        if (rc != LL_TLS_OK) {
            return tls_failed(l, rc);
        }
        ll_conn_wrote(&l->conn, n, now_ms);
    }
    int rc = l->ticket_due ? flush_ticket(l) : 0;
    if (rc == 0 && !l->ticket_due && l->keepalive_ms) {
        ll_net_keepalive(l->fd, (int)l->keepalive_ms);
        l->keepalive_ms = 0;
    }
    return rc;
}

/* One TLS read into the connection: straight into the decoder's buffer when it has room for
 * a good part of a record (a streaming connection's has grown to that), else through chunk,
 * so an idle connection's buffer stays small. Returns what ll_tls_read did; on LL_TLS_OK,
 * *got bytes came and *fed is what the connection made of them (0 or its error). */
static int read_once(ll_link *l, uint8_t *chunk, uint64_t now_ms, size_t *got, int *fed)
{
    size_t room = 0;
    uint8_t *dst = ll_conn_recv_space(&l->conn, &room);
    bool in_place = room >= IN_PLACE_MIN;
    int rc = ll_tls_read(l->tls, in_place ? dst : chunk, in_place ? LL_MIN(room, READ_CHUNK) : READ_CHUNK, got);
    if (rc == LL_TLS_OK) {
        *fed = in_place ? ll_conn_received(&l->conn, *got, now_ms) : ll_conn_feed(&l->conn, chunk, *got, now_ms);
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
        int fed = 0;
        int rc = read_once(l, chunk, now_ms, &n, &fed);
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
        LL_GUARD(fed); /* the decoder's error, with the Close it owes queued */
        total += n;
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

short ll_link_events(const ll_link *l)
{
    bool out = ll_buf_size(&l->conn.out) > 0 && !l->want_read_for_write;
    return (short)(POLLIN | ((out || l->want_write) ? POLLOUT : 0));
}
