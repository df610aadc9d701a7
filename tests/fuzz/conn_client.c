/*
 * fuzz_conn, client side: the client's real I/O thread function (ll_client_io_main) runs to
 * its end on the calling thread, against a server the input plays (enum cli_rec in conn.h).
 * Each connection it makes is a new wire; whenever it reads an empty one, the next records
 * say what the server sends, whether the connection ends, and what the application does in
 * the meantime (send, receive, close, let time pass), which is a moment when the real I/O
 * thread holds no lock either. What the client writes is read back and checked, and so is
 * what its application is handed.
 */
#include "client.h"
#include "codec.h"
#include "conn.h"
#include "ll.h"
#include "wait.h"
#include "wire.h"

#include <string.h>

#define MAX_LINKS   32
#define COUNTER_LEN 8 /* every payload the application sends starts with its number */
#define MAX_SEND    16000

/* One connection, as the server (the input) sees it. */
typedef struct fz_link {
    struct fz_client *h;
    fake_wire *w;
    ll_decoder dec;
    uint64_t session_at_connect;  /* what the client's hello must name... */
    uint64_t received_at_connect; /* ...and say it has */
    bool hello, closed;
    bool have_offset;
    uint64_t offset; /* message number - sequence: fixed for a connection */
    uint64_t last_data, last_ack, last_ping;
    /* The first frame the server sent, which greet takes for the welcome: */
    ll_decoder said; /* decodes what the server sent until it is whole */
    bool first_seen;
    bool first_welcome; /* ...a welcome, for session first_session */
    uint64_t first_session;
    bool foreign;        /* ...resuming a session not the client's: the client must refuse it */
    size_t first_end;    /* where it ends on the wire */
    bool failure_judged; /* the event for the refusal was checked */
} fz_link;

typedef struct fz_client {
    sdk_client *c;
    script *s;
    fz_link links[MAX_LINKS];
    int nlinks;
    int next_handshake; /* how the next connection's handshake ends */
    size_t read_piece;
    uint64_t app_sent;  /* messages the application queued */
    uint32_t app_epoch; /* the session generation of the last message it was handed... */
    uint64_t app_last;  /* ...and that message's sequence */
    uint64_t app_max;   /* highest sequence it was ever handed */
    uint64_t session;   /* the session of the last welcome it adopted */
    bool closing;       /* the application called sdk_close */
    bool connected, closed_event;
    bool callbacks; /* on_message takes the messages (callback mode, see conn.h) */
    uint8_t plan;   /* ...and does this with each (CB_*) */
} fz_client;

/* ---- the client's state and what it tells its application ---- */

/* The connection made last: the one the client's events are about. */
static fz_link *current_link(fz_client *h)
{
    return h->nlinks > 0 ? &h->links[h->nlinks - 1] : NULL;
}

/* A connection whose welcome resumes another session than the client's fails with
 * SDK_EPROTO once the client has read that welcome (greet acts on it at once). */
static void check_refused(fz_client *h, const sdk_event *ev)
{
    fz_link *l = current_link(h);
    if (!l || !l->foreign || l->failure_judged || l->w->read_total < l->first_end) {
        return;
    }
    l->failure_judged = true;
    FUZZ_CHECK(ev->error == SDK_EPROTO || (ev->type == SDK_EVENT_CLOSED && ev->error == SDK_OK && h->closing));
}

static void on_event(const sdk_event *ev, void *user)
{
    fz_client *h = user;
    FUZZ_CHECK(!h->closed_event && ev->detail != NULL && ev->error >= 0 && ev->error < SDK_ERR_COUNT_);
    switch (ev->type) {
    case SDK_EVENT_CONNECTING:
    case SDK_EVENT_SESSION_LOST:
        FUZZ_CHECK(!h->connected);
        return;
    case SDK_EVENT_RECONNECTING:
        FUZZ_CHECK(!h->connected);
        check_refused(h, ev);
        return;
    case SDK_EVENT_CONNECTED: { /* greet adopted the first frame, a welcome for our session */
        const fz_link *l = current_link(h);
        FUZZ_CHECK(!h->connected && l && l->first_welcome && !l->foreign);
        h->connected = true;
        h->session = l->first_session;
        return;
    }
    case SDK_EVENT_DISCONNECTED:
        FUZZ_CHECK(h->connected && ev->error != SDK_OK);
        h->connected = false;
        return;
    case SDK_EVENT_CLOSED: /* once, last, and without an error only after sdk_close */
        FUZZ_CHECK(ev->error != SDK_OK || h->closing);
        check_refused(h, ev);
        h->closed_event = true;
        return;
    default:
        FUZZ_CHECK(false);
    }
}

static void check_client(fz_client *h)
{
    sdk_client *c = h->c;
    pthread_mutex_lock(&c->mu);
    const ll_session *s = &c->s;
    FUZZ_CHECK(s->sendq.copied <= s->sendq.count && s->sendq.copied_bytes <= s->sendq.bytes);
    FUZZ_CHECK(s->acked_total + s->sendq.count == s->enqueued_total && s->enqueued_total == h->app_sent);
    FUZZ_CHECK(s->consumed <= s->received && s->ack_sent <= s->consumed);
    for (size_t i = 0; i < c->recvq.count; i++) {
        FUZZ_CHECK(ll_msgq_at(&c->recvq, i)->epoch <= s->epoch);
    }
    /* The callback had every accepted message before the thread read again; none queued. */
    FUZZ_CHECK(c->deliver.count == 0 && (!h->callbacks || c->recvq.count == 0));
    pthread_mutex_unlock(&c->mu);
}

/* In order within a session generation, without gaps or duplicates; a new one starts at 1. */
static void check_delivery(fz_client *h, const sdk_message *m)
{
    const ll_msg *lm = (const ll_msg *)m;
    if (lm->epoch == h->app_epoch) {
        FUZZ_CHECK(m->seq == h->app_last + 1);
    } else {
        FUZZ_CHECK(lm->epoch > h->app_epoch && m->seq == 1);
        h->app_epoch = lm->epoch;
    }
    h->app_last = m->seq;
    h->app_max = LL_MAX(h->app_max, m->seq);
}

/* ---- the application, between two reads ---- */

static void app_recv(fz_client *h, size_t n)
{
    if (h->callbacks) { /* the callback takes them all */
        sdk_message *m = NULL;
        FUZZ_CHECK(sdk_recv(h->c, &m, 0) == SDK_EINVAL && m == NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sdk_message *m = NULL;
        int rc = sdk_recv(h->c, &m, 0);
        if (rc != 0) {
            FUZZ_CHECK(rc == SDK_ETIMEDOUT || rc == SDK_ECLOSED);
            return;
        }
        check_delivery(h, m);
        sdk_message_free(m);
    }
}

/* The application queues its next numbered message. False once refused. */
static bool send_one(fz_client *h, size_t len, int timeout_ms)
{
    static uint8_t buf[MAX_SEND];
    put_u64(buf, h->app_sent + 1);
    int rc = sdk_send(h->c, buf, len, timeout_ms);
    if (rc == 0) {
        h->app_sent++;
        return true;
    }
    FUZZ_CHECK(rc == SDK_EQUEUEFULL || rc == SDK_ETOOBIG || (rc == SDK_ECLOSED && h->closing));
    return false;
}

static void app_send(fz_client *h, int count, int size)
{
    static const size_t sizes[] = {8, 8, 30, 100, 250, 1000, 4000, MAX_SEND};
    for (int i = 0; i < count && send_one(h, sizes[size], 0); i++) {
    }
}

/* on_message: the application takes each message on the I/O thread and, as h->plan says,
 * sends from there (an echo of its size) and tries what must be refused there. A send
 * that waited for room would wait forever: room comes from this very thread. */
static void on_message(sdk_message *m, void *user)
{
    fz_client *h = user;
    FUZZ_CHECK(ll_on_io_thread(h->c));
    check_delivery(h, m);
    size_t len = LL_MIN(LL_MAX(m->len, COUNTER_LEN), MAX_SEND);
    sdk_message_free(m);
    for (int i = 0; i < (h->plan & CB_SENDS) && send_one(h, len, -1); i++) {
    }
    if (h->plan & CB_REFUSED) {
        FUZZ_CHECK(sdk_flush(h->c, -1) == SDK_EINVAL && sdk_close(h->c) == SDK_EINVAL);
        sdk_destroy(h->c); /* ignored: freeing it would show as a use after free */
    }
}

/* A receive action: callback mode takes its argument as the callback's new plan. */
static void app_takes(fz_client *h, int arg, size_t n)
{
    h->plan = h->callbacks ? (uint8_t)arg : h->plan;
    app_recv(h, n);
}

/* Calls that only look: they must not disturb anything. */
static void app_query(fz_client *h)
{
    sdk_stats st;
    char why[64];
    int rc = sdk_flush(h->c, 0);
    FUZZ_CHECK(rc == SDK_OK || rc == SDK_ETIMEDOUT || (rc == SDK_ECLOSED && h->closing));
    FUZZ_CHECK(sdk_get_stats(h->c, &st) == SDK_OK && st.queue_depth <= h->app_sent);
    FUZZ_CHECK(sdk_get_state(h->c) != SDK_STATE_CLOSED);
    (void)sdk_last_error(h->c, why, sizeof(why));
}

/* False for a pause: the server has nothing more to say for now. */
static bool app_acts(fz_client *h, int action, int arg)
{
    static const uint64_t jumps[] = {10, 100, 500, 1000, 3000, 5000, 15000, 60000};
    switch (action) {
    case CAPP_SEND:
        app_send(h, arg + 1, arg);
        return true;
    case CAPP_RECV:
        app_takes(h, arg, (size_t)arg + 1);
        return true;
    case CAPP_TIME:
        wire_advance_clock(jumps[arg]);
        return true;
    case CAPP_CLOSE: /* without a thread to join, sdk_close only tells the I/O loop */
        h->closing = true;
        FUZZ_CHECK(sdk_close(h->c) == SDK_OK);
        return true;
    case CAPP_QUERY:
        app_query(h);
        return true;
    case CAPP_RECV_ALL:
        app_takes(h, arg, SIZE_MAX);
        return true;
    default:
        return false;
    }
}

/* ---- what the client writes, read by the server ---- */

static void check_hello(fz_client *h, fz_link *l, const Lifeline__Hello *hello)
{
    FUZZ_CHECK(!l->hello); /* first, and once */
    l->hello = true;
    FUZZ_CHECK(hello->version == 1 && hello->session_id == l->session_at_connect &&
               hello->last_received == l->received_at_connect && hello->max_frame == h->c->cfg.max_frame);
}

/* Consecutive sequences, each carrying the message queued under it in this generation. */
static void check_data(fz_client *h, fz_link *l, const Lifeline__Data *d)
{
    FUZZ_CHECK(l->hello && !l->closed && (l->last_data == 0 || d->seq == l->last_data + 1));
    l->last_data = d->seq;
    FUZZ_CHECK(d->payload.len >= COUNTER_LEN);
    uint64_t n = get_u64(d->payload.data);
    FUZZ_CHECK(n >= d->seq && n <= h->app_sent);
    FUZZ_CHECK(!l->have_offset || n - d->seq == l->offset);
    l->offset = n - d->seq;
    l->have_offset = true;
}

/* The goodbye after sdk_close, or the Close a failure owes the server (docs/protocol.md). */
static bool honest_close(const fz_client *h, const Lifeline__Close *cl)
{
    switch (cl->code) {
    case LIFELINE__CLOSE__CODE__NORMAL:
        return h->closing && !cl->reconnect;
    case LIFELINE__CLOSE__CODE__PROTOCOL_ERROR:
    case LIFELINE__CLOSE__CODE__HEARTBEAT_TIMEOUT:
        return cl->reconnect; /* keep the session: we come back */
    case LIFELINE__CLOSE__CODE__TOO_BIG:
        return !cl->reconnect; /* the frame would come again: end it */
    default:
        return false;
    }
}

static void check_frame(fz_client *h, fz_link *l, const Lifeline__Frame *f)
{
    /* A refused welcome: the hello, and the Close for the protocol error, were all the client
     * had to say there. */
    FUZZ_CHECK(
        !l->foreign || f->kind_case == LIFELINE__FRAME__KIND_HELLO ||
        (f->kind_case == LIFELINE__FRAME__KIND_CLOSE && f->close->code == LIFELINE__CLOSE__CODE__PROTOCOL_ERROR));
    switch (f->kind_case) {
    case LIFELINE__FRAME__KIND_HELLO:
        check_hello(h, l, f->hello);
        return;
    case LIFELINE__FRAME__KIND_DATA:
        check_data(h, l, f->data);
        return;
    case LIFELINE__FRAME__KIND_ACK: /* only what the application took, never going back */
        FUZZ_CHECK(l->hello && !l->closed && f->ack->seq >= l->last_ack && f->ack->seq <= h->app_max);
        l->last_ack = f->ack->seq;
        return;
    case LIFELINE__FRAME__KIND_PING:
        FUZZ_CHECK(l->hello && !l->closed && f->ping->nonce > l->last_ping);
        l->last_ping = f->ping->nonce;
        return;
    case LIFELINE__FRAME__KIND_PONG:
        FUZZ_CHECK(l->hello && !l->closed);
        return;
    case LIFELINE__FRAME__KIND_CLOSE:
        FUZZ_CHECK(l->hello && !l->closed && honest_close(h, f->close));
        l->closed = true;
        return;
    default: /* a client never sends Welcome */
        FUZZ_CHECK(false);
    }
}

static void link_frame(const Lifeline__Frame *f, void *arg)
{
    fz_link *l = arg;
    check_frame(l->h, l, f);
}

/* The server reads what the client wrote: always whole, valid frames. */
static void observe(fz_client *h)
{
    for (int i = 0; i < h->nlinks; i++) {
        FUZZ_CHECK(wire_read_frames(h->links[i].w, &h->links[i].dec, link_frame, &h->links[i]) == 0);
    }
}

/* ---- the server, played by the input ---- */

/* Until the first frame the server sent is whole: what it is, and where it ends. Called
 * once p's n bytes are on the wire. */
static void track_first(fz_link *l, const uint8_t *p, size_t n)
{
    Lifeline__Frame *f = NULL;
    if (l->first_seen || ll_decoder_feed(&l->said, p, n) != 0 || ll_decoder_next(&l->said, &f) != 1) {
        return;
    }
    l->first_seen = true;
    l->first_end = wire_sent(l->w) - ll_buf_size(&l->said.in);
    if (f->kind_case == LIFELINE__FRAME__KIND_WELCOME) {
        l->first_welcome = true;
        l->first_session = f->welcome->session_id;
        l->foreign = f->welcome->resumed && f->welcome->session_id != l->session_at_connect;
    }
    ll_frame_free(f);
    ll_decoder_free(&l->said);
}

static void server_says(fz_client *h, fz_link *l, size_t n)
{
    size_t got = 0;
    const uint8_t *p = script_bytes(h->s, n, &got);
    FUZZ_CHECK(ll_buf_append(&l->w->in, p, got) == 0);
    track_first(l, p, got);
}

static void end_conn(fz_client *h, fake_wire *w, int how)
{
    switch (how) {
    case CEND_RESET:
        w->reset = true;
        w->hung_up = true;
        return;
    case CEND_TLS_ERROR:
        w->read_error = SDK_ETLS;
        return;
    case CEND_FIN_THEN_BAD_CERT:
        h->next_handshake = SDK_EPEERAUTH;
        w->hung_up = true;
        return;
    default:
        w->hung_up = true;
        return;
    }
}

/* The next record, played while the I/O thread waits in a read. */
static bool play_record(fz_client *h, fz_link *l)
{
    fake_wire *w = l->w;
    observe(h);
    check_client(h);
    if (script_done(h->s)) {
        w->hung_up = true;
        return true;
    }
    uint8_t b = script_u8(h->s);
    switch ((enum cli_rec)(b >> 6)) {
    case CREC_BYTES:
        server_says(h, l, (size_t)(b & 63) + 1);
        return true;
    case CREC_LONG:
        server_says(h, l, ((size_t)(b & 63) << 8 | script_u8(h->s)) + 1);
        return true;
    case CREC_APP:
        return app_acts(h, b & 7, (b >> 3) & 7);
    default:
        end_conn(h, w, b & 3);
        return true;
    }
}

/* The client reads an empty wire: the server and the application act. */
static bool refill(fake_wire *w, void *arg)
{
    fz_link *l = arg;
    (void)w;
    const void *io = playing(NULL);
    bool more = play_record(l->h, l);
    playing(io);
    return more;
}

/* A new wire for the client to connect over, unless the input is over; then the
 * application closes the client too, which ends the run. */
static fake_wire *new_link(fz_client *h)
{
    observe(h);
    check_client(h);
    if (script_done(h->s) || h->nlinks == MAX_LINKS) {
        h->closing = true;
        FUZZ_CHECK(sdk_close(h->c) == SDK_OK);
        return NULL;
    }
    fz_link *l = &h->links[h->nlinks++];
    *l = (fz_link){.h = h, .w = wire_new()};
    l->w->refill = refill;
    l->w->hook_arg = l;
    l->w->read_piece = h->read_piece;
    l->w->handshake_rc = h->next_handshake;
    l->w->handshake_waits = h->nlinks % 3; /* some handshakes take more rounds */
    h->next_handshake = 0;
    ll_decoder_init(&l->dec, h->c->cfg.max_frame);
    ll_decoder_init(&l->said, h->c->cfg.max_frame); /* as the client's own */
    pthread_mutex_lock(&h->c->mu);
    l->session_at_connect = h->c->session_id;
    l->received_at_connect = h->c->s.received;
    pthread_mutex_unlock(&h->c->mu);
    /* Only an adopted welcome changes the session: a refused one leaves it as it was. */
    FUZZ_CHECK(l->session_at_connect == h->session);
    return l->w;
}

/* The client connects (on its I/O thread, meanwhile the application may close it). */
static fake_wire *connect_wire(void *arg)
{
    const void *io = playing(NULL);
    fake_wire *w = new_link(arg);
    playing(io);
    return w;
}

/* ---- running an input ---- */

static sdk_config config_from(script *s, fz_client *h, uint8_t mode)
{
    static const uint32_t frames[] = {256, 1024, 4096, 16384};
    static const int intervals[] = {100, 1000, 5000, 30000};
    uint8_t a = script_u8(s), b = script_u8(s);
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.host = "fuzz";
    cfg.servername = "fuzz";
    cfg.port = 1;
    cfg.window_messages = 1 + (a & 7) * 3;
    cfg.max_frame = frames[(a >> 3) & 3];
    cfg.max_reconnect_attempts = (a >> 5) & 3;
    cfg.heartbeat_interval_ms = intervals[(b >> 4) & 3];
    cfg.heartbeat_timeout_ms = 3 * cfg.heartbeat_interval_ms;
    cfg.queue_max_messages = 1 + (b & 15) * 2;
    cfg.queue_max_bytes = (b & 0x40) ? 2048 : cfg.queue_max_bytes;
    cfg.retry_on_first_connect = !(b & 0x80);
    /* No backoff: waiting would only move the virtual clock. */
    cfg.reconnect_min_ms = 0;
    cfg.reconnect_max_ms = 0;
    cfg.on_event = on_event;
    cfg.on_message = (mode & MODE_CALLBACKS) ? on_message : NULL;
    cfg.user = h;
    h->callbacks = cfg.on_message != NULL;
    h->plan = MODE_PLAN(mode);
    h->read_piece = (a & 0x80) ? 7 : SIZE_MAX;
    return cfg;
}

/* What sdk_connect sets up, minus the TLS context and the thread. The wake fd is readable
 * for good, so the client's polls never sleep. */
static sdk_client *client_new(const sdk_config *cfg)
{
    sdk_client *c = calloc(1, sizeof(*c));
    FUZZ_CHECK(c != NULL);
    c->cfg = *cfg;
    c->wake_fd = wire_wake_fd();
    pthread_mutex_init(&c->mu, NULL);
    ll_cond_init(&c->recv_cv);
    ll_cond_init(&c->send_cv);
    ll_session_init(&c->s, cfg->window_messages, cfg->window_bytes);
    c->state = SDK_STATE_CONNECTING;
    FUZZ_CHECK(ll_endpoints_add(&c->endpoints, cfg->host, cfg->port) == 0);
    ll_endpoints_order(&c->endpoints, true, 1);
    return c;
}

void fuzz_conn_client(script *s, uint8_t mode)
{
    static fz_client h; /* large: kept off the stack */
    memset(&h, 0, sizeof(h));
    h.s = s;
    sdk_config cfg = config_from(s, &h, mode);
    h.c = client_new(&cfg);
    wire_set_connect(connect_wire, &h);
    (void)ll_client_io_main(h.c);
    playing(NULL); /* the thread is over: the rest is the application's */
    observe(&h);
    check_client(&h);
    FUZZ_CHECK(h.closed_event && sdk_get_state(h.c) == SDK_STATE_CLOSED);
    app_recv(&h, SIZE_MAX); /* what arrived before the end is still handed out, in order */
    for (int i = 0; i < h.nlinks; i++) {
        FUZZ_CHECK(h.links[i].w->tls_freed);
        ll_decoder_free(&h.links[i].dec);
        ll_decoder_free(&h.links[i].said);
    }
    sdk_destroy(h.c);
}
