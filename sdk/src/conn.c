#include "conn.h"

#include "ll.h"

#include <stdarg.h>
#include <string.h>

/* A close frame's reason is cut to this, and to what leaves room for the frame's other
 * fields (at most CLOSE_OVERHEAD bytes with lengths under 16 KiB) within max_frame. */
#define CLOSE_REASON_MAX 255u
#define CLOSE_OVERHEAD   16u

void ll_conn_init(ll_conn *c, ll_role role, uint32_t max_frame)
{
    memset(c, 0, sizeof(*c));
    c->role = role;
    ll_decoder_init(&c->dec, max_frame);
}

void ll_conn_free(ll_conn *c)
{
    ll_frame_release(&c->cur);
    ll_decoder_free(&c->dec);
    ll_buf_free(&c->out);
}

void ll_conn_release_buffers(ll_conn *c)
{
    ll_frame_release(&c->cur);
    if (ll_buf_size(&c->dec.in) == 0) {
        ll_buf_free(&c->dec.in);
    }
    if (ll_buf_size(&c->out) == 0) {
        ll_buf_free(&c->out);
    }
}

int ll_conn_fail(ll_conn *c, int err, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
        va_end(ap);
    }
    int code = 0;
    bool reconnect = false;
    if (ll_conn_close_for(c->role, err, &code, &reconnect)) {
        (void)ll_conn_close(c, code, c->detail, reconnect);
    }
    c->phase = LL_CONN_CLOSED;
    c->err = err;
    return err;
}

bool ll_conn_close_for(ll_role role, int err, int *code, bool *reconnect)
{
    switch (err) {
    case SDK_EPROTO:
        /* Sent by the server, the error is the client's and would come again: it must not
         * return. Sent by the client, the flag asks the server to keep the session. */
        *code = LIFELINE__CLOSE__CODE__PROTOCOL_ERROR;
        *reconnect = role == LL_ROLE_CLIENT;
        return true;
    case SDK_ETOOBIG:
        /* The frame would only come again after a resume, from either end. */
        *code = LIFELINE__CLOSE__CODE__TOO_BIG;
        *reconnect = false;
        return true;
    case SDK_ETIMEDOUT:
        *code = LIFELINE__CLOSE__CODE__HEARTBEAT_TIMEOUT;
        *reconnect = true;
        return true;
    default:
        return false; /* the peer hung up, or we cannot encode: nobody to tell */
    }
}

int ll_conn_close(ll_conn *c, int code, const char *reason, bool reconnect)
{
    if (c->phase == LL_CONN_CLOSED) {
        return 0;
    }
    c->phase = LL_CONN_CLOSED;
    /* max_frame may be as small as 64 bytes: a shortened reason beats a close frame that
     * never goes out. */
    char cut[CLOSE_REASON_MAX + 1];
    size_t room = c->dec.max_frame > CLOSE_OVERHEAD ? c->dec.max_frame - CLOSE_OVERHEAD : 0;
    LL_DETAIL(cut, LL_MIN(sizeof(cut), room + 1), "%s", reason ? reason : "");
    Lifeline__Close close_msg = LIFELINE__CLOSE__INIT;
    close_msg.code = (Lifeline__Close__Code)code;
    close_msg.reason = cut;
    close_msg.reconnect = reconnect;
    return ll_encode_frame(&c->out, &LL_FRAME_OF(close, CLOSE, &close_msg), c->dec.max_frame);
}

int ll_conn_feed(ll_conn *c, const void *data, size_t len, uint64_t now_ms)
{
    ll_hb_on_rx(&c->hb, now_ms);
    int rc = ll_decoder_feed(&c->dec, data, len);
    return rc ? ll_conn_fail(c, rc, "%s", c->dec.detail) : 0;
}

uint8_t *ll_conn_recv_space(ll_conn *c, size_t *room)
{
    return ll_decoder_space(&c->dec, room);
}

int ll_conn_received(ll_conn *c, size_t n, uint64_t now_ms)
{
    ll_hb_on_rx(&c->hb, now_ms);
    int rc = ll_decoder_commit(&c->dec, n);
    return rc ? ll_conn_fail(c, rc, "%s", c->dec.detail) : 0;
}

void ll_conn_wrote(ll_conn *c, size_t n, uint64_t now_ms)
{
    ll_buf_consume(&c->out, n);
    ll_hb_on_tx(&c->hb, now_ms);
}

static int send_frame(ll_conn *c, Lifeline__Frame *f)
{
    return ll_encode_frame(&c->out, f, c->dec.max_frame);
}

static int send_pong(ll_conn *c, const Lifeline__Ping *ping)
{
    Lifeline__Pong pong = LIFELINE__PONG__INIT;
    pong.nonce = ping->nonce;
    pong.timestamp_us = ping->timestamp_us;
    return send_frame(c, &LL_FRAME_OF(pong, PONG, &pong));
}

static int send_ping(ll_conn *c, uint64_t now_ms, uint64_t now_us)
{
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = ll_hb_ping_sent(&c->hb, now_ms);
    ping.timestamp_us = now_us;
    ping.rtt_us = c->hb.rtt_smoothed_us;
    return send_frame(c, &LL_FRAME_OF(ping, PING, &ping));
}

int ll_conn_send_hello(ll_conn *c, const ll_hello *h)
{
    Lifeline__Hello hello = LIFELINE__HELLO__INIT;
    hello.version = LL_PROTOCOL_VERSION;
    hello.session_id = h->session_id;
    hello.resume_token.data = (uint8_t *)h->token;
    hello.resume_token.len = h->token_len;
    hello.last_received = h->last_received;
    hello.heartbeat_interval_ms = h->heartbeat_interval_ms;
    hello.heartbeat_timeout_ms = h->heartbeat_timeout_ms;
    hello.window_messages = h->window_messages;
    hello.window_bytes = h->window_bytes;
    hello.max_frame = c->dec.max_frame;
    return send_frame(c, &LL_FRAME_OF(hello, HELLO, &hello));
}

int ll_conn_send_welcome(ll_conn *c, const Lifeline__Welcome *w)
{
    return send_frame(c, &LL_FRAME_OF(welcome, WELCOME, (Lifeline__Welcome *)w));
}

void ll_conn_attach(ll_conn *c, ll_session *s, uint32_t interval_ms, uint32_t timeout_ms, uint64_t now_ms)
{
    c->s = s;
    c->phase = LL_CONN_READY;
    ll_hb_start(&c->hb, interval_ms, timeout_ms, now_ms);
}

void ll_conn_set_heartbeat(ll_conn *c, uint32_t interval_ms, uint32_t timeout_ms)
{
    c->hb.interval_ms = interval_ms;
    c->hb.timeout_ms = timeout_ms;
}

int ll_conn_fill(ll_conn *c, bool idle, size_t out_limit)
{
    if (c->phase != LL_CONN_READY) {
        return 0;
    }
    if (ll_session_ack_due(c->s, idle)) {
        Lifeline__Ack ack = LIFELINE__ACK__INIT;
        ack.seq = ll_session_ack_take(c->s);
        LL_GUARD(send_frame(c, &LL_FRAME_OF(ack, ACK, &ack)));
    }
    return ll_session_write(c->s, &c->out, out_limit);
}

bool ll_conn_can_write(const ll_conn *c)
{
    return c->phase == LL_CONN_READY && ll_session_can_write(c->s);
}

int ll_conn_tick(ll_conn *c, uint64_t now_us, uint64_t *next_ms)
{
    uint64_t now_ms = now_us / 1000;
    *next_ms = UINT64_MAX;
    if (c->phase != LL_CONN_READY) {
        return 0;
    }
    switch (ll_hb_poll(&c->hb, now_ms, next_ms)) {
    case LL_HB_DEAD:
        return ll_conn_fail(c, SDK_ETIMEDOUT, "no heartbeat from the peer for %u ms",
                            (unsigned)(now_ms - c->hb.last_rx_ms));
    case LL_HB_PING:
        return send_ping(c, now_ms, now_us);
    case LL_HB_IDLE:
    default:
        return 0;
    }
}

/* ---- received frames ---- */

/* A frame the session handles, READY only. LL_CONN_EVENT for the driver, LL_CONN_NEED_MORE
 * when handled here, or LL_CONN_FAILED. */
static ll_conn_result on_data(ll_conn *c, ll_conn_event *ev)
{
    const ll_data_view *d = &c->cur.data;
    switch (ll_session_on_data(c->s, d->seq, d->len)) {
    case LL_DATA_ACCEPT:
        ev->type = LL_EV_DATA;
        return LL_CONN_EVENT;
    case LL_DATA_DUPLICATE:
        return LL_CONN_NEED_MORE; /* a resend after a resume: already had it */
    case LL_DATA_INVALID:
    default:
        ll_conn_fail(c, SDK_EPROTO, "data sequence %llu after %llu: %s", (unsigned long long)d->seq,
                     (unsigned long long)c->s->received, d->seq == 0 ? "sequence 0 is never valid" : "gap");
        return LL_CONN_FAILED;
    }
}

static ll_conn_result on_ack(ll_conn *c, uint64_t seq, ll_conn_event *ev)
{
    if (ll_session_on_ack(c->s, seq, &ev->freed) != 0) {
        ll_conn_fail(c, SDK_EPROTO, "ack %llu for a message never sent", (unsigned long long)seq);
        return LL_CONN_FAILED;
    }
    ev->type = LL_EV_ACKED;
    return ev->freed > 0 ? LL_CONN_EVENT : LL_CONN_NEED_MORE;
}

static ll_conn_result on_ready_frame(ll_conn *c, uint64_t now_us, ll_conn_event *ev)
{
    const Lifeline__Frame *f = c->cur.pb;
    switch (c->cur.kind) {
    case LIFELINE__FRAME__KIND_DATA:
        return on_data(c, ev);
    case LIFELINE__FRAME__KIND_ACK:
        return on_ack(c, f->ack->seq, ev);
    case LIFELINE__FRAME__KIND_PING:
        c->peer_rtt_us = f->ping->rtt_us;
        c->pings_received++;
        if (send_pong(c, f->ping) != 0) {
            ll_conn_fail(c, SDK_ENOMEM, "out of memory answering a ping");
            return LL_CONN_FAILED;
        }
        return LL_CONN_NEED_MORE;
    case LIFELINE__FRAME__KIND_PONG:
        ll_hb_on_pong(&c->hb, f->pong->nonce, f->pong->timestamp_us, now_us);
        return LL_CONN_NEED_MORE;
    case LIFELINE__FRAME__KIND_WELCOME:
        if (c->role == LL_ROLE_CLIENT) {
            ev->type = LL_EV_WELCOME; /* a second Welcome: the driver checks it */
            return LL_CONN_EVENT;
        }
        break;
    default:
        break;
    }
    ll_conn_fail(c, SDK_EPROTO, "unexpected frame kind %d", c->cur.kind);
    return LL_CONN_FAILED;
}

/* Greeting: only the Hello (server) or the Welcome (client) may come. */
static ll_conn_result on_greeting_frame(ll_conn *c, ll_conn_event *ev)
{
    ll_conn_event_type want = c->role == LL_ROLE_SERVER ? LL_EV_HELLO : LL_EV_WELCOME;
    Lifeline__Frame__KindCase kind =
        c->role == LL_ROLE_SERVER ? LIFELINE__FRAME__KIND_HELLO : LIFELINE__FRAME__KIND_WELCOME;
    if (c->cur.kind != kind) {
        ll_conn_fail(c, SDK_EPROTO, "expected %s, got frame kind %d", c->role == LL_ROLE_SERVER ? "hello" : "welcome",
                     c->cur.kind);
        return LL_CONN_FAILED;
    }
    ev->type = want;
    return LL_CONN_EVENT;
}

static ll_conn_result on_frame(ll_conn *c, uint64_t now_us, ll_conn_event *ev)
{
    if (c->cur.kind == LIFELINE__FRAME__KIND_CLOSE) {
        const Lifeline__Close *cl = c->cur.pb->close;
        LL_DETAIL(c->detail, sizeof(c->detail), "%s closed the connection: %s",
                  c->role == LL_ROLE_CLIENT ? "server" : "client",
                  cl->reason && *cl->reason ? cl->reason : "no reason given");
        c->phase = LL_CONN_CLOSED;
        ev->type = LL_EV_CLOSE;
        return LL_CONN_EVENT;
    }
    if (c->phase == LL_CONN_GREETING) {
        return on_greeting_frame(c, ev);
    }
    return on_ready_frame(c, now_us, ev);
}

ll_conn_result ll_conn_next(ll_conn *c, uint64_t now_us, ll_conn_event *ev)
{
    ll_frame_release(&c->cur);
    *ev = (ll_conn_event){0};
    while (c->phase != LL_CONN_CLOSED) {
        ll_dec_result rc = ll_decoder_take(&c->dec, &c->cur);
        if (rc == LL_DEC_NEED_MORE) {
            return LL_CONN_NEED_MORE;
        }
        if (rc == LL_DEC_ERROR) {
            ll_conn_fail(c, c->dec.err, "%s", c->dec.detail);
            return LL_CONN_FAILED;
        }
        ll_conn_result r = on_frame(c, now_us, ev);
        if (r != LL_CONN_NEED_MORE) {
            ev->frame = c->cur;
            return r;
        }
        ll_frame_release(&c->cur);
    }
    return c->err ? LL_CONN_FAILED : LL_CONN_NEED_MORE;
}

/* ---- parameters ---- */

uint64_t ll_params_window(uint64_t peer, uint64_t ours)
{
    return peer ? LL_MIN(peer, ours) : ours;
}

void ll_params_from_hello(const Lifeline__Hello *h, const ll_limits *lim, ll_params *p)
{
    uint32_t timeout = h->heartbeat_timeout_ms ? h->heartbeat_timeout_ms : LL_HEARTBEAT_TIMEOUT_DEFAULT;
    timeout = LL_MAX(lim->heartbeat_min_ms, LL_MIN(timeout, lim->heartbeat_max_ms));
    uint32_t interval = h->heartbeat_interval_ms ? h->heartbeat_interval_ms : timeout / 3;
    p->heartbeat_timeout_ms = timeout;
    p->heartbeat_interval_ms = LL_MAX(1u, LL_MIN(interval, timeout / 2));
    p->window_messages = (uint32_t)ll_params_window(h->window_messages, lim->window_messages);
    p->window_bytes = ll_params_window(h->window_bytes, lim->window_bytes);
    p->peer_max_frame = h->max_frame ? h->max_frame : LL_MAX_FRAME_DEFAULT;
}
