/*
 * fuzz_conn, server side. The server's own loop turn (ll_server_io_turn, the function its
 * thread calls) runs here one turn at a time, on wire.c's poller, which reports what
 * level-triggered epoll would for the wires (fuzz_conn.c says why). The input plays the
 * clients, the server application and the clock (see enum srv_op in conn.h). After every step
 * each client reads what the server wrote to it and checks it, and the server's own state is
 * checked against what its events and the application have seen.
 *
 * A small model client builds hellos, data and acks from what the server told it, so that
 * resumes with real tokens and honest positions happen often. Raw bytes can go anywhere; a
 * session any of whose clients sent bytes the model did not build is "dishonest", and the
 * checks that depend on the client telling the truth are skipped for it.
 *
 * A client may resume a TLS ticket tagged with a session (wire.c's resume_tag). Whether the
 * server welcomes it early, and what its hello must then lead to, depend on the session at
 * two moments inside the loop: the wire's hooks let the model judge at those very moments
 * (half_rtt_over, hello_read), and the client checks what it reads against that.
 */
#include "server_impl.h"

#include "codec.h"
#include "conn.h"
#include "ll.h"
#include "net.h"
#include "wait.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNS    8    /* per input (three argument bits); each opens at most one session */
#define MAX_TURNS    4096 /* I/O loop turns per step: a loop that never goes idle is a bug */
#define PAYLOAD_HEAD 16   /* every modeled payload starts with its sequence and session id */
#define MAX_PAYLOAD  16000
#define TOKEN_LEN    16

typedef enum { SESS_ATTACHED = 1, SESS_DETACHED, SESS_ENDED } sess_state;

/* Heartbeat values a session's welcomes announce, as its last hello set them. */
typedef struct fz_hb {
    bool known; /* false: a hello the model did not build set them */
    uint32_t interval, timeout;
} fz_hb;

/* What a hello after a 0.5-RTT welcome may lead to (a set, judged as the server reads it). */
enum { OUT_RESUME = 1, OUT_PROTOCOL_ERROR = 2, OUT_SESSION_CLOSED = 4 };

/* One server session: what its events said, what its client knows, what the application did. */
typedef struct fz_session {
    uint64_t id;
    sess_state state;
    bool honest;      /* every byte its clients sent was built by the model */
    bool close_asked; /* the application closed it */
    bool known;       /* a Welcome reached its client: token is valid */
    uint8_t token[TOKEN_LEN];
    uint64_t received; /* client: highest data sequence it has */
    uint64_t next_seq; /* client: the next data sequence it sends */
    uint64_t sent_max; /* client: highest data sequence it ever sent */
    uint64_t app_last; /* application: the last sequence it was handed */
    uint64_t app_sent; /* application: messages it queued (each payload carries its number) */
    fz_hb hb;
} fz_session;

/* One connection, as its client sees it. */
typedef struct fz_conn {
    struct fz_server *h;
    fake_wire *w;
    int sess;          /* index into sessions once an event bound it, else -1 */
    bool raw;          /* its client sent bytes the model did not build */
    bool abandoned;    /* its client resumed the session elsewhere and stopped using it */
    bool hello_sent;   /* the model sent its hello (one per connection) */
    bool hello_honest; /* ...naming sessions[hello_sess] truthfully */
    bool forged;       /* ...with a wrong token, so it must not resume */
    int hello_sess;
    uint64_t hello_last;                          /* ...announcing this last_received */
    uint8_t hello_flags;                          /* ...built with these SOP_HELLO_* */
    uint32_t hello_hb_interval, hello_hb_timeout; /* ...announcing these */
    size_t hello_end;                             /* where the hello ends on the wire, if it came first (else 0) */
    int early;           /* the session the server welcomes in 0.5-RTT (its conn->welcomed), or -1 */
    uint64_t early_last; /* ...with this last_received */
    fz_hb early_hb;      /* ...and these heartbeat values */
    int rewelcome;       /* a second welcome after the hello: 1 due, 0 not, -1 either (unknown values)... */
    fz_hb hello_hb;      /* ...announcing what the server applies from its hello */
    uint8_t outcomes;    /* what its hello may lead to (OUT_*), 0: not judged */
    ll_decoder dec;      /* the client reading what the server wrote */
    bool welcomed, closed;
    uint64_t first_data; /* what the first Data frame must carry (0: unknown) */
    uint64_t last_data, last_ack, pings;
} fz_conn;

typedef struct fz_server {
    sdk_server *srv;
    script *s;
    fz_conn conns[MAX_CONNS];
    int nconns;
    fz_session sessions[MAX_CONNS];
    int nsessions;
    bool over;      /* the I/O loop would have ended: only the teardown is left */
    bool callbacks; /* on_message takes the messages (callback mode, see conn.h) */
    uint8_t plan;   /* ...and does this with each (CB_*) */
    bool in_event;  /* on_event runs: later events of its batch are not told yet */
} fz_server;

/* A modeled payload: sequence, session id, then zeros. Returns a static buffer. */
static const uint8_t *payload(uint64_t seq, uint64_t session, size_t len)
{
    static uint8_t buf[MAX_PAYLOAD];
    memset(buf, 0, len);
    put_u64(buf, seq);
    put_u64(buf + 8, session);
    return buf;
}

static fz_session *session_by_id(fz_server *h, uint64_t id)
{
    for (int i = 0; i < h->nsessions; i++) {
        if (h->sessions[i].id == id) {
            return &h->sessions[i];
        }
    }
    return NULL;
}

/* The server's connection on the client's wire, or NULL once it is gone. */
static srv_conn *server_conn(const fz_server *h, const fz_conn *c)
{
    for (srv_conn *sc = h->srv->loops[0].conns; sc; sc = sc->next) {
        if (wire_of(sc->link.tls) == c->w) {
            return sc;
        }
    }
    return NULL;
}

static uint64_t inbox_count(const sdk_server *srv, uint64_t session)
{
    uint64_t n = 0;
    for (size_t i = 0; i < srv->inbox.count; i++) {
        n += ll_msgq_at(&srv->inbox, i)->pub.session == session;
    }
    return n;
}

/* ---- events: the session life cycle the application is told ---- */

/* What the server applies from the connection's hello (docs/protocol.md's Hello table):
 * timeout 0 is 15000, clamped to the server's bounds; interval 0 is a third of it, and at
 * most half of it. */
static fz_hb hello_hb(const fz_server *h, const fz_conn *c)
{
    const sdk_server_config *cfg = &h->srv->cfg;
    uint32_t timeout = c->hello_hb_timeout ? c->hello_hb_timeout : 15000u;
    timeout = LL_MAX((uint32_t)cfg->heartbeat_min_ms, LL_MIN(timeout, (uint32_t)cfg->heartbeat_max_ms));
    uint32_t interval = c->hello_hb_interval ? c->hello_hb_interval : timeout / 3;
    return (fz_hb){
        .known = c->hello_sent && !c->raw, .interval = LL_MAX(1u, LL_MIN(interval, timeout / 2)), .timeout = timeout};
}

/* A connection (named by its peer address, "wire:N") now carries session sess. */
static void bind_conn(fz_server *h, const char *peer, fz_session *fs, bool resumed)
{
    int i = -1;
    FUZZ_CHECK(sscanf(peer, "wire:%d", &i) == 1 && i >= 0 && i < h->nconns);
    fz_conn *c = &h->conns[i];
    FUZZ_CHECK(c->sess < 0); /* a connection attaches once */
    c->sess = (int)(fs - h->sessions);
    if (c->raw) {
        fs->honest = false;
    }
    /* A wrong token never resumes; an honest hello for a live session always does. Judged
     * now, not when the hello was sent: the session may have ended in between. */
    FUZZ_CHECK(!resumed || !c->forged || c->raw);
    const fz_session *named = c->hello_sess >= 0 ? &h->sessions[c->hello_sess] : NULL;
    if (c->hello_honest && !c->raw && named->honest && !named->close_asked && named->state != SESS_ENDED) {
        FUZZ_CHECK(resumed && fs == named);
    }
    FUZZ_CHECK(c->w->ticket_tag == fs->id); /* so a resume with that ticket is welcomed early */
    fs->hb = c->hello_hb = hello_hb(h, c);  /* the hello's values, on every path */
    if (c->early >= 0) {
        /* After a 0.5-RTT welcome only its session resumes, with the hello's heartbeat values
         * (a second welcome says them if they differ): the data goes on from where the hello
         * said. */
        FUZZ_CHECK(resumed && fs == &h->sessions[c->early] && (!c->outcomes || (c->outcomes & OUT_RESUME)));
        c->first_data = c->hello_sent && !c->raw ? c->hello_last + 1 : 0;
        bool known = c->early_hb.known && fs->hb.known;
        bool same = fs->hb.interval == c->early_hb.interval && fs->hb.timeout == c->early_hb.timeout;
        c->rewelcome = known ? !same : -1;
    }
}

static void track_event(fz_server *h, const sdk_session_event *ev)
{
    fz_session *fs = session_by_id(h, ev->session);
    FUZZ_CHECK(ev->cause >= SDK_CAUSE_NONE && ev->cause <= SDK_CAUSE_SERVER_STOP);
    switch (ev->type) {
    case SDK_SESSION_OPENED:
        FUZZ_CHECK(!fs && ev->session != 0 && h->nsessions < MAX_CONNS);
        fs = &h->sessions[h->nsessions++];
        *fs = (fz_session){.id = ev->session, .state = SESS_ATTACHED, .honest = true, .next_seq = 1};
        bind_conn(h, ev->peer_addr, fs, false);
        return;
    case SDK_SESSION_RESUMED:
        FUZZ_CHECK(fs && fs->state == SESS_DETACHED);
        fs->state = SESS_ATTACHED;
        bind_conn(h, ev->peer_addr, fs, true);
        return;
    case SDK_SESSION_DETACHED:
        FUZZ_CHECK(fs && fs->state == SESS_ATTACHED);
        fs->state = SESS_DETACHED;
        return;
    case SDK_SESSION_EXPIRED:
        FUZZ_CHECK(fs && fs->state == SESS_DETACHED);
        fs->state = SESS_ENDED;
        return;
    case SDK_SESSION_CLOSED:
        FUZZ_CHECK(fs && fs->state != SESS_ENDED);
        fs->state = SESS_ENDED;
        return;
    default:
        FUZZ_CHECK(false);
    }
}

/* ---- the I/O loop, one turn at a time ---- */

/* A turn on the I/O thread. */
static bool turn(fz_server *h)
{
    playing(h->srv);
    ll_turn t = ll_server_io_turn(h->srv);
    playing(NULL);
    h->over = t == LL_TURN_DONE;
    return t == LL_TURN_BUSY;
}

/* Turns until nothing is ready, as the real loop would before it blocks. By then no work
 * may be waiting for it: nothing will wake it (no application thread acts meanwhile). */
static void pump(fz_server *h)
{
    int turns = 0;
    while (!h->over && turn(h)) {
        FUZZ_CHECK(++turns < MAX_TURNS);
    }
    FUZZ_CHECK(h->over || (h->srv->loops[0].dirty == NULL && !h->srv->loops[0].self_wake));
}

/* ---- the clients ---- */

/* The step's connection, or NULL once the server has closed it (or none exists). */
static fz_conn *pick_conn(fz_server *h, uint8_t arg)
{
    if (h->nconns == 0) {
        return NULL;
    }
    fz_conn *c = &h->conns[arg % h->nconns];
    return c->w->tls_freed ? NULL : c;
}

/* The session the model may speak for on this connection, or NULL. */
static fz_session *modeled_session(fz_server *h, const fz_conn *c)
{
    return c->sess >= 0 && c->welcomed && !c->raw && !c->abandoned ? &h->sessions[c->sess] : NULL;
}

static void mark_raw(fz_server *h, fz_conn *c)
{
    c->raw = true;
    if (c->sess >= 0) {
        h->sessions[c->sess].honest = false;
    }
}

static void send_bytes(fz_server *h, fz_conn *c, const void *p, size_t n, bool modeled)
{
    FUZZ_CHECK(ll_buf_append(&c->w->in, p, n) == 0);
    if (!modeled) {
        mark_raw(h, c);
    }
}

static void send_frame(fz_server *h, fz_conn *c, const Lifeline__Frame *f, bool modeled)
{
    ll_buf b = {0};
    FUZZ_CHECK(ll_encode_frame(&b, f, UINT32_MAX) == 0);
    send_bytes(h, c, ll_buf_head(&b), ll_buf_size(&b), modeled);
    ll_buf_free(&b);
}

/* ---- 0.5-RTT welcomes ---- */

static void conn_frame(const Lifeline__Frame *f, void *arg);

/* The session tag of the TLS ticket a new connection resumes (SOP_ACCEPT arg 1-8). */
static uint64_t resumed_ticket(const fz_server *h, uint8_t arg)
{
    if (arg == 0 || arg > 8) {
        return 0;
    }
    /* Issued on a connection of a session the server opened, which may have ended since; or
     * naming no session at all. */
    return arg < 8 && h->nsessions > 0 ? h->sessions[(arg - 1) % h->nsessions].id : UINT64_C(0xfeedface);
}

/* The server has just welcomed the client early, or not: it must have exactly when the
 * ticket's session is open and the application has not closed it. Nothing has changed since
 * LL_TLS_HALF_RTT, and every event is told, so the model is up to date. */
static void half_rtt_over(fake_wire *w, void *arg)
{
    fz_conn *c = arg;
    fz_server *h = c->h;
    FUZZ_CHECK(h->srv->nevents == 0);
    fz_session *fs = session_by_id(h, w->resume_tag);
    if (fs && fs->state != SESS_ENDED && !fs->close_asked) {
        c->early = (int)(fs - h->sessions);
        c->early_last = fs->app_last + inbox_count(h->srv, fs->id); /* what the server has */
        c->early_hb = fs->hb;
    }
    FUZZ_CHECK(wire_read_frames(w, &c->dec, conn_frame, c) == 0);
    FUZZ_CHECK(c->welcomed == (c->early >= 0) || w->room != SIZE_MAX); /* sent at once */
}

/* The server has read the hello of a connection welcomed early and acts on it next, before
 * anything else changes: judge now what it must lead to. Only for a hello the model built
 * that came first (anything before it is refused by itself). */
static void hello_read(fake_wire *w, void *arg)
{
    fz_conn *c = arg;
    if (c->early < 0 || c->outcomes || !c->hello_end || w->read_total < c->hello_end) {
        return;
    }
    const srv_conn *sc = server_conn(c->h, c);
    if (!sc || sc->phase != CONN_HELLO || c->h->srv->draining) {
        return; /* it will not be acted on */
    }
    const fz_session *fs = &c->h->sessions[c->early];
    if ((c->hello_flags & SOP_HELLO_BADVER) || c->hello_sess != c->early) {
        c->outcomes = OUT_PROTOCOL_ERROR; /* it must name the session welcomed */
    } else if (fs->state == SESS_ENDED || fs->close_asked) {
        c->outcomes = OUT_SESSION_CLOSED; /* it ended after its welcome: come again */
    } else if (c->forged) {
        c->outcomes = OUT_PROTOCOL_ERROR;
    } else { /* a dishonest session's client may not know where it is */
        c->outcomes = fs->honest ? OUT_RESUME : OUT_RESUME | OUT_PROTOCOL_ERROR;
    }
}

/* A welcome before the hello: the one expected, with the session's values. */
static void check_early_welcome(fz_server *h, fz_conn *c, const Lifeline__Welcome *w)
{
    fz_session *fs = &h->sessions[c->early];
    FUZZ_CHECK(w->version == LL_PROTOCOL_VERSION && w->resumed && w->session_id == fs->id &&
               w->resume_token.len == TOKEN_LEN && w->last_received == c->early_last);
    FUZZ_CHECK(!fs->known || memcmp(w->resume_token.data, fs->token, TOKEN_LEN) == 0);
    FUZZ_CHECK(!c->early_hb.known ||
               (w->heartbeat_interval_ms == c->early_hb.interval && w->heartbeat_timeout_ms == c->early_hb.timeout));
    FUZZ_CHECK(!fs->honest || w->last_received <= fs->sent_max);
    c->welcomed = true;
    memcpy(fs->token, w->resume_token.data, TOKEN_LEN);
    fs->known = true;
    fs->next_seq = w->last_received + 1; /* what the old connection delivers comes again */
}

/* The close that refuses a hello after a 0.5-RTT welcome: the one judged, and come again. */
static void check_refusal(const fz_conn *c, const Lifeline__Close *cl)
{
    bool protocol = cl->code == LIFELINE__CLOSE__CODE__PROTOCOL_ERROR && (c->outcomes & OUT_PROTOCOL_ERROR);
    bool ended = cl->code == LIFELINE__CLOSE__CODE__SESSION_CLOSED && (c->outcomes & OUT_SESSION_CLOSED);
    FUZZ_CHECK(protocol || ended);
    FUZZ_CHECK(cl->reconnect == ended); /* a protocol error would only come again */
}

/* After each step: what the server did with each judged hello. */
static void check_early(fz_server *h)
{
    for (int i = 0; i < h->nconns; i++) {
        const fz_conn *c = &h->conns[i];
        if (c->outcomes == OUT_RESUME) {
            FUZZ_CHECK(c->sess >= 0);
        } else if (c->outcomes && !(c->outcomes & OUT_RESUME)) {
            const srv_conn *sc = server_conn(h, c);
            FUZZ_CHECK(c->sess < 0 && (!sc || sc->phase == CONN_CLOSING));
        }
    }
}

/* ---- the clients, continued ---- */

static void op_accept(fz_server *h, uint8_t arg)
{
    uint8_t piece = script_u8(h->s);
    if (h->nconns == MAX_CONNS || h->srv->draining) {
        return;
    }
    fz_conn *c = &h->conns[h->nconns++];
    *c = (fz_conn){.h = h, .w = wire_new(), .sess = -1, .hello_sess = -1, .early = -1};
    FUZZ_CHECK(c->w->index == h->nconns - 1);
    c->w->handshake_rc = arg < 13 ? 0 : arg < 15 ? SDK_ETLS : SDK_EPEERAUTH;
    c->w->handshake_waits = arg > 8 ? arg - 8 : 0;
    c->w->read_piece = piece ? piece : SIZE_MAX;
    c->w->resume_tag = resumed_ticket(h, arg);
    c->w->on_half_rtt_over = half_rtt_over;
    c->w->on_read = hello_read;
    c->w->hook_arg = c;
    ll_decoder_init(&c->dec, h->srv->cfg.max_frame);
    wire_offer_accept(c->w);
}

static void op_raw(fz_server *h, uint8_t arg, size_t n)
{
    size_t got = 0;
    const uint8_t *p = script_bytes(h->s, n, &got);
    fz_conn *c = pick_conn(h, arg);
    if (c) {
        send_bytes(h, c, p, got, false);
    }
}

/* The n-th session whose token a client has, or NULL. */
static fz_session *known_session(fz_server *h, uint8_t n)
{
    int known = 0;
    for (int i = 0; i < h->nsessions; i++) {
        known += h->sessions[i].known;
    }
    for (int i = 0, k = known ? n % known : -1; i < h->nsessions; i++) {
        if (h->sessions[i].known && k-- == 0) {
            return &h->sessions[i];
        }
    }
    return NULL;
}

/* Heartbeat, window and frame limits the client announces. */
static void hello_limits(Lifeline__Hello *hello, uint8_t limits)
{
    static const uint32_t timeouts[] = {0, 500, 3000, 100000};
    static const uint32_t frames[] = {0, 300, 4096, LL_MAX_FRAME_DEFAULT};
    hello->heartbeat_interval_ms = 1000;
    hello->heartbeat_timeout_ms = timeouts[limits & 3];
    hello->window_messages = (limits >> 2) & 7; /* 0: the server's */
    hello->window_bytes = (limits & 0x20) ? 1024 : 0;
    hello->max_frame = frames[limits >> 6];
}

/* What the model expects of its hello, remembered until the server answers. A client that
 * resumes has given up its other connections to that session: what they still carry is
 * nothing it counts on (a real one closed them first). */
static void expect_hello(fz_server *h, fz_conn *c, const fz_session *fs, uint8_t flags, uint64_t last)
{
    for (int i = 0; fs && i < h->nconns; i++) {
        h->conns[i].abandoned |= h->conns[i].sess == (int)(fs - h->sessions) && &h->conns[i] != c;
    }
    c->hello_sent = true;
    c->hello_sess = fs ? (int)(fs - h->sessions) : -1;
    c->hello_last = last;
    c->forged = fs && (flags & SOP_HELLO_FORGE);
    c->hello_honest = fs && !(flags & (SOP_HELLO_FORGE | SOP_HELLO_BADVER));
    c->hello_flags = flags;
}

static void op_hello(fz_server *h, uint8_t arg)
{
    uint8_t flags = script_u8(h->s), pick = script_u8(h->s), lie = script_u8(h->s);
    uint8_t limits = script_u8(h->s);
    fz_conn *c = pick_conn(h, arg);
    if (!c) {
        return;
    }
    Lifeline__Hello hello = LIFELINE__HELLO__INIT;
    hello.version = (flags & SOP_HELLO_BADVER) ? 0 : LL_PROTOCOL_VERSION; /* 0: no version, the one refused */
    hello_limits(&hello, limits);
    fz_session *fs = (flags & SOP_HELLO_RESUME) ? known_session(h, pick) : NULL;
    uint8_t token[TOKEN_LEN];
    if (fs) {
        bool forge = flags & SOP_HELLO_FORGE;
        memcpy(token, fs->token, sizeof(token));
        token[pick % TOKEN_LEN] ^= forge ? 0x5a : 0;
        hello.session_id = fs->id;
        /* Some forgeries are a byte short instead. */
        hello.resume_token = (ProtobufCBinaryData){sizeof(token) - (forge && (pick & 0x80)), token};
        hello.last_received = fs->received + ((flags & SOP_HELLO_LIE) ? (uint64_t)(int64_t)(int8_t)lie : 0);
    }
    /* A second hello, or one that lies, is just bytes to the model. */
    bool modeled = !c->hello_sent && !(flags & SOP_HELLO_LIE);
    if (modeled) {
        expect_hello(h, c, fs, flags, hello.last_received);
        c->hello_hb_interval = hello.heartbeat_interval_ms;
        c->hello_hb_timeout = hello.heartbeat_timeout_ms;
    }
    bool first = wire_sent(c->w) == 0;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_HELLO;
    f.hello = &hello;
    send_frame(h, c, &f, modeled);
    c->hello_end = modeled && first ? wire_sent(c->w) : c->hello_end;
}

static void op_data(fz_server *h, uint8_t arg)
{
    uint8_t shape = script_u8(h->s);
    int8_t offset = (int8_t)script_u8(h->s);
    fz_conn *c = pick_conn(h, arg);
    if (!c) {
        return;
    }
    if (c->abandoned) {
        return;
    }
    fz_session *fs = modeled_session(h, c);
    bool modeled = fs && offset == 0;
    uint64_t seq = (fs ? fs->next_seq : 1) + (uint64_t)(int64_t)offset;
    size_t len = PAYLOAD_HEAD + (size_t)(shape >> 4) * 9;
    for (int i = 0; i <= (shape & 7); i++, seq++) {
        Lifeline__Data d = LIFELINE__DATA__INIT;
        d.seq = seq;
        d.payload = (ProtobufCBinaryData){len, (uint8_t *)payload(seq, fs ? fs->id : 0, len)};
        d.type = (shape & 8) ? "fz.T" : (char *)protobuf_c_empty_string;
        Lifeline__Frame f = LIFELINE__FRAME__INIT;
        f.kind_case = LIFELINE__FRAME__KIND_DATA;
        f.data = &d;
        send_frame(h, c, &f, modeled);
    }
    if (modeled) {
        fs->next_seq = seq;
        fs->sent_max = LL_MAX(fs->sent_max, seq - 1);
    }
}

static void op_ack(fz_server *h, uint8_t arg)
{
    int8_t offset = (int8_t)script_u8(h->s);
    fz_conn *c = pick_conn(h, arg);
    if (!c) {
        return;
    }
    if (c->abandoned) {
        return;
    }
    fz_session *fs = modeled_session(h, c);
    Lifeline__Ack ack = LIFELINE__ACK__INIT;
    ack.seq = (fs ? fs->received : 0) + (uint64_t)(int64_t)offset;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_ACK;
    f.ack = &ack;
    send_frame(h, c, &f, fs && offset == 0);
}

static void op_ping(fz_server *h, uint8_t arg)
{
    fz_conn *c = pick_conn(h, arg);
    if (!c) {
        return;
    }
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = ++c->pings;
    ping.timestamp_us = 1;
    ping.rtt_us = 250;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &ping;
    send_frame(h, c, &f, true);
}

static void op_close(fz_server *h, uint8_t arg)
{
    uint8_t how = script_u8(h->s);
    fz_conn *c = pick_conn(h, arg);
    if (!c) {
        return;
    }
    Lifeline__Close cl = LIFELINE__CLOSE__INIT;
    cl.reason = "client done";
    cl.reconnect = how & 1;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_CLOSE;
    f.close = &cl;
    send_frame(h, c, &f, true);
}

static void op_hangup(fz_server *h, uint8_t arg)
{
    uint8_t how = script_u8(h->s);
    fz_conn *c = pick_conn(h, arg);
    if (c) {
        c->w->hung_up = true;
        c->w->reset = how & 1;
    }
}

static void op_room(fz_server *h, uint8_t arg)
{
    uint8_t room = script_u8(h->s);
    fz_conn *c = pick_conn(h, arg);
    if (c) {
        c->w->room = room == 255 ? SIZE_MAX : (size_t)room * 64;
    }
}

/* ---- the server application ---- */

static void check_delivery(fz_server *h, const sdk_message *m)
{
    fz_session *fs = session_by_id(h, m->session);
    FUZZ_CHECK(fs != NULL);                 /* only opened sessions deliver */
    FUZZ_CHECK(m->seq == fs->app_last + 1); /* in order, no gap, no duplicate */
    fs->app_last = m->seq;
    if (fs->honest) { /* and it is what the client sent under that number */
        FUZZ_CHECK(m->len >= PAYLOAD_HEAD && get_u64(m->data) == m->seq && get_u64(m->data + 8) == m->session);
    }
}

static void app_recv(fz_server *h, size_t n)
{
    if (h->callbacks) { /* the callback takes them all */
        sdk_message *m = NULL;
        FUZZ_CHECK(sdk_server_recv(h->srv, &m, 0) == SDK_EINVAL && m == NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sdk_message *m = NULL;
        int rc = sdk_server_recv(h->srv, &m, 0);
        if (rc != 0) {
            FUZZ_CHECK(rc == SDK_ETIMEDOUT || rc == SDK_ECLOSED);
            return;
        }
        check_delivery(h, m);
        sdk_message_free(m);
    }
}

/* The application queues the session's next numbered message. False once refused. */
static bool send_one(fz_server *h, fz_session *fs, size_t len, int timeout_ms)
{
    int rc = sdk_server_send(h->srv, fs->id, payload(fs->app_sent + 1, fs->id, len), len, timeout_ms);
    if (rc == 0) {
        FUZZ_CHECK(fs->state != SESS_ENDED && !fs->close_asked);
        fs->app_sent++;
        return true;
    }
    FUZZ_CHECK(rc == SDK_EQUEUEFULL || rc == SDK_ETOOBIG || rc == SDK_ENOTFOUND || rc == SDK_ECLOSED);
    FUZZ_CHECK(rc != SDK_ENOTFOUND || fs->state == SESS_ENDED || fs->close_asked || h->in_event);
    return false;
}

static void app_send(fz_server *h, uint8_t arg)
{
    static const size_t sizes[] = {16, 40, 100, 300, 1000, 3000, 8000, MAX_PAYLOAD};
    uint8_t shape = script_u8(h->s);
    if (h->nsessions == 0) {
        return;
    }
    fz_session *fs = &h->sessions[arg % h->nsessions];
    for (int i = 0; i <= (shape & 7) && send_one(h, fs, sizes[(shape >> 3) & 7], 0); i++) {
    }
}

/* What the plan says to send from the I/O thread. A send that waited for room would wait
 * forever: room comes from this very thread. */
static void sends_from_io(fz_server *h, fz_session *fs, size_t len)
{
    for (int i = 0; i < (h->plan & CB_SENDS) && send_one(h, fs, len, -1); i++) {
    }
}

/* on_message: the application takes each message on the I/O thread and, as h->plan says,
 * answers it there (an echo of its size) and tries what must be refused there. */
static void on_message(sdk_message *m, void *user)
{
    fz_server *h = user;
    FUZZ_CHECK(ll_on_io_thread(h->srv));
    check_delivery(h, m);
    fz_session *fs = session_by_id(h, m->session);
    size_t len = LL_MIN(LL_MAX(m->len, PAYLOAD_HEAD), MAX_PAYLOAD);
    sdk_message_free(m);
    sends_from_io(h, fs, len);
    if (h->plan & CB_REFUSED) { /* refused, and without stopping anything */
        bool stopping = h->srv->stopping;
        FUZZ_CHECK(sdk_server_stop(h->srv) == SDK_EINVAL && h->srv->stopping == stopping);
        sdk_server_destroy(h->srv); /* ignored: freeing it would show as a use after free */
    }
}

/* In callback mode the application also acts on the I/O thread when told of an event: it
 * sends to another session. Work made there after service_dirty looked (an expiry found by
 * fire_timers, say) is found only because the loop looks again before it sleeps. */
static void on_event(const sdk_session_event *ev, void *user)
{
    fz_server *h = user;
    track_event(h, ev);
    h->in_event = true;
    for (int i = 0; h->callbacks && i < h->nsessions; i++) {
        if (h->sessions[i].id != ev->session && h->sessions[i].state != SESS_ENDED) {
            sends_from_io(h, &h->sessions[i], PAYLOAD_HEAD);
            break;
        }
    }
    h->in_event = false;
}

/* A receive step: callback mode takes its argument as the callback's new plan. */
static void app_takes(fz_server *h, uint8_t arg)
{
    h->plan = h->callbacks ? arg : h->plan;
    app_recv(h, arg ? arg : SIZE_MAX);
}

static void app_close(fz_server *h, uint8_t arg)
{
    uint8_t how = script_u8(h->s);
    if (h->nsessions == 0) {
        return;
    }
    fz_session *fs = &h->sessions[arg % h->nsessions];
    int rc = sdk_server_close_session(h->srv, fs->id, "closed by the fuzzer", how & 1);
    FUZZ_CHECK(rc == 0 || rc == SDK_ENOTFOUND);
    FUZZ_CHECK(rc == 0 || fs->state == SESS_ENDED || fs->close_asked || h->srv->sends_closed);
    fs->close_asked |= rc == 0;
}

static int live_sessions(const fz_server *h)
{
    int n = 0;
    for (int i = 0; i < h->nsessions; i++) {
        n += h->sessions[i].state != SESS_ENDED;
    }
    return n;
}

static void app_sessions(fz_server *h)
{
    sdk_session_info *info = NULL;
    size_t n = 0;
    int rc = sdk_server_sessions(h->srv, &info, &n);
    FUZZ_CHECK(rc == 0 || (rc == SDK_ECLOSED && h->srv->stopping));
    FUZZ_CHECK(rc != 0 || n == (size_t)live_sessions(h));
    free(info);
}

/* Time passes: a little, a heartbeat, a handshake limit, a session TTL, ... */
static void op_tick(uint8_t arg)
{
    static const uint64_t ms[] = {1,    10,   100,   500,   999,   1000,  1001,   2000,
                                  3000, 5000, 10000, 15000, 30000, 60000, 100000, 300000};
    wire_advance_clock(ms[arg]);
}

/* ---- what the clients read ---- */

/* A second welcome, after the hello that followed a 0.5-RTT one: only when the hello's
 * heartbeat values differ from what the first announced, with the new values. */
static void check_rewelcome(fz_server *h, fz_conn *c, const Lifeline__Welcome *w)
{
    const fz_session *fs = &h->sessions[c->early];
    const fz_hb *hb = &c->hello_hb; /* this connection's hello: a later one may have taken over */
    FUZZ_CHECK(c->rewelcome != 0 && !c->closed && c->sess == c->early);
    FUZZ_CHECK(w->version == LL_PROTOCOL_VERSION && w->resumed && w->session_id == fs->id);
    FUZZ_CHECK(!hb->known || (w->heartbeat_interval_ms == hb->interval && w->heartbeat_timeout_ms == hb->timeout));
    c->rewelcome = 0; /* once */
}

static void check_welcome(fz_server *h, fz_conn *c, const Lifeline__Welcome *w)
{
    if (c->early >= 0 && !c->welcomed) {
        check_early_welcome(h, c, w);
        return;
    }
    if (c->early >= 0) {
        check_rewelcome(h, c, w);
        return;
    }
    FUZZ_CHECK(!c->welcomed && !c->closed && c->sess >= 0);
    fz_session *fs = &h->sessions[c->sess];
    FUZZ_CHECK(w->version == LL_PROTOCOL_VERSION && w->session_id == fs->id && w->resume_token.len == TOKEN_LEN);
    c->welcomed = true;
    if (w->resumed) {
        FUZZ_CHECK(fs->known || c->raw);
        c->first_data = c->hello_sent && !c->raw ? c->hello_last + 1 : 0;
    } else {
        FUZZ_CHECK(w->last_received == 0);
        c->first_data = 1;
    }
    FUZZ_CHECK(!fs->honest || w->last_received <= fs->sent_max);
    memcpy(fs->token, w->resume_token.data, TOKEN_LEN);
    fs->known = true;
    fs->next_seq = w->last_received + 1; /* the client sends again what the server lacks */
}

static void check_data(fz_server *h, fz_conn *c, const Lifeline__Data *d)
{
    FUZZ_CHECK(c->welcomed && !c->closed);
    fz_session *fs = &h->sessions[c->sess];
    FUZZ_CHECK(d->seq == (c->last_data ? c->last_data + 1 : c->first_data ? c->first_data : d->seq));
    c->last_data = d->seq;
    /* What the application queued under that number, for this session and no other. */
    FUZZ_CHECK(d->payload.len >= PAYLOAD_HEAD && get_u64(d->payload.data) == d->seq &&
               get_u64(d->payload.data + 8) == fs->id && d->seq <= fs->app_sent);
    if (!c->abandoned) {
        FUZZ_CHECK(!fs->honest || d->seq <= fs->received + 1);
        fs->received = LL_MAX(fs->received, d->seq);
    }
}

static void check_frame(fz_server *h, fz_conn *c, const Lifeline__Frame *f)
{
    /* Welcomed in 0.5-RTT: that welcome comes before anything else. */
    FUZZ_CHECK(c->early < 0 || c->welcomed || f->kind_case == LIFELINE__FRAME__KIND_WELCOME);
    switch (f->kind_case) {
    case LIFELINE__FRAME__KIND_WELCOME:
        check_welcome(h, c, f->welcome);
        return;
    case LIFELINE__FRAME__KIND_DATA:
        check_data(h, c, f->data);
        return;
    case LIFELINE__FRAME__KIND_ACK: /* only what the application took, never going back */
        FUZZ_CHECK(c->welcomed && !c->closed && f->ack->seq >= c->last_ack);
        FUZZ_CHECK(f->ack->seq <= h->sessions[c->sess].app_last);
        c->last_ack = f->ack->seq;
        return;
    case LIFELINE__FRAME__KIND_PONG:
        FUZZ_CHECK(c->welcomed && !c->closed && (c->raw || f->pong->nonce <= c->pings));
        return;
    case LIFELINE__FRAME__KIND_CLOSE:
        FUZZ_CHECK(!c->closed && f->close->code <= LIFELINE__CLOSE__CODE__HEARTBEAT_TIMEOUT);
        if (c->outcomes && c->sess < 0) {
            check_refusal(c, f->close);
        }
        c->closed = true;
        return;
    default: /* the server never sends Hello or Ping */
        FUZZ_CHECK(false);
    }
}

static void conn_frame(const Lifeline__Frame *f, void *arg)
{
    fz_conn *c = arg;
    check_frame(c->h, c, f);
}

/* Each client reads what the server wrote to it: always whole, valid frames. */
static void observe(fz_server *h)
{
    for (int i = 0; i < h->nconns; i++) {
        FUZZ_CHECK(wire_read_frames(h->conns[i].w, &h->conns[i].dec, conn_frame, &h->conns[i]) == 0);
    }
}

/* ---- the server's own state ---- */

static void check_session(fz_server *h, const srv_session *ss)
{
    const ll_session *s = &ss->s;
    FUZZ_CHECK(s->sendq.copied <= s->sendq.count && s->sendq.copied_bytes <= s->sendq.bytes);
    FUZZ_CHECK(s->acked_total + s->sendq.count == s->enqueued_total);
    FUZZ_CHECK(s->consumed <= s->received && s->ack_sent <= s->consumed);
    FUZZ_CHECK((ss->conn == NULL) == (ss->ttl.idx != 0)); /* waits for a resume iff detached */
    FUZZ_CHECK(!ss->conn || ss->conn->sess == ss);
    FUZZ_CHECK(ss->in_inbox == inbox_count(h->srv, ss->id));
    fz_session *fs = session_by_id(h, ss->id);
    FUZZ_CHECK(fs && fs->state == (ss->conn ? SESS_ATTACHED : SESS_DETACHED));
    FUZZ_CHECK(s->enqueued_total == fs->app_sent && s->received == fs->app_last + ss->in_inbox);
}

static void check_server(fz_server *h)
{
    const sdk_server *srv = h->srv;
    /* The callback had every accepted message before its step ended; nothing was queued. */
    FUZZ_CHECK(srv->deliver.count == 0 && (!h->callbacks || srv->inbox.count == 0));
    for (const srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        FUZZ_CHECK(c->timer.idx != 0); /* every connection has a deadline: none lives forever */
        FUZZ_CHECK(!c->sess || (c->sess->conn == c && c->phase == CONN_READY));
    }
    /* The store holds exactly the sessions whose events left them open: each is found, and
     * there are no others. Looked up one by one rather than walked, as walking every slot of
     * the table after every step took a tenth of the run time. */
    for (int i = 0; i < h->nsessions; i++) {
        const srv_session *ss = ll_store_get(&srv->sessions, h->sessions[i].id);
        FUZZ_CHECK((ss != NULL) == (h->sessions[i].state != SESS_ENDED));
        if (ss) {
            check_session(h, ss);
        }
    }
    FUZZ_CHECK(srv->sessions.count == (size_t)live_sessions(h));
    check_early(h);
}

/* ---- running an input ---- */

/* What the server application does (SOP_RECV, SOP_SEND, ...). */
static void app_step(fz_server *h, enum srv_op op, uint8_t who)
{
    switch (op) {
    case SOP_RECV:
        app_takes(h, who);
        break;
    case SOP_SEND:
        app_send(h, who);
        break;
    case SOP_APP_CLOSE:
        app_close(h, who);
        break;
    case SOP_STOP:
        sdk_server_stop(h->srv);
        break;
    case SOP_SESSIONS:
        app_sessions(h);
        break;
    default:
        break;
    }
}

static void step(fz_server *h)
{
    uint8_t b = script_u8(h->s);
    uint8_t arg = b >> 4, who = arg & 7;
    bool later = arg & SOP_LATER;
    switch ((enum srv_op)(b & 15)) {
    case SOP_ACCEPT:
        op_accept(h, arg);
        later = false;
        break;
    case SOP_RAW:
        op_raw(h, who, script_u8(h->s));
        break;
    case SOP_RAW_LONG:
        op_raw(h, who, script_u16(h->s));
        break;
    case SOP_HELLO:
        op_hello(h, who);
        break;
    case SOP_DATA:
        op_data(h, who);
        break;
    case SOP_ACK:
        op_ack(h, who);
        break;
    case SOP_PING:
        op_ping(h, who);
        break;
    case SOP_CLOSE:
        op_close(h, who);
        break;
    case SOP_HANGUP:
        op_hangup(h, who);
        break;
    case SOP_ROOM:
        op_room(h, who);
        break;
    case SOP_TICK:
        op_tick(arg);
        later = false;
        break;
    default:
        app_step(h, (enum srv_op)(b & 15), who);
        break;
    }
    if (!later) {
        pump(h);
    }
    observe(h);
    check_server(h);
}

static sdk_server_config config_from(script *s, fz_server *h, uint8_t mode)
{
    static const uint32_t frames[] = {256, 1024, 4096, 16384};
    static const int ttls[] = {0, 1000, 5000, 60000};
    uint8_t a = script_u8(s), b = script_u8(s);
    sdk_server_config cfg;
    sdk_server_config_init(&cfg);
    cfg.window_messages = 1 + (a & 7) * 3;
    cfg.max_frame = frames[(a >> 3) & 3];
    cfg.session_ttl_ms = ttls[(a >> 5) & 3];
    cfg.window_bytes = (a & 0x80) ? 2048 : cfg.window_bytes;
    cfg.queue_max_messages = 1 + (b & 15) * 4;
    cfg.heartbeat_max_ms = (b & 0x10) ? 2000 : 30000;
    cfg.handshake_timeout_ms = (b & 0x20) ? 1000 : 10000;
    cfg.queue_max_bytes = (b & 0x40) ? 4096 : cfg.queue_max_bytes;
    cfg.max_output_bytes = 64 * 1024; /* the least sdk_server_start accepts */
    cfg.on_event = on_event;
    cfg.on_message = (mode & MODE_CALLBACKS) ? on_message : NULL;
    cfg.user = h;
    h->callbacks = cfg.on_message != NULL;
    h->plan = MODE_PLAN(mode);
    return cfg;
}

/* What sdk_server_start sets up, minus certificates, listener and thread. The wake fd is
 * the listener are wire.c's (its poller reports them), and nothing ever sleeps. */
static sdk_server *server_new(const sdk_server_config *cfg)
{
    sdk_server *srv = calloc(1, sizeof(*srv));
    FUZZ_CHECK(srv != NULL);
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->mu, NULL);
    ll_cond_init(&srv->recv_cv);
    ll_cond_init(&srv->send_cv);
    srv->loops = calloc(1, sizeof(*srv->loops)); /* one I/O thread: this one */
    FUZZ_CHECK(srv->loops != NULL);
    srv->nloops = 1;
    ll_srv_loop *lp = &srv->loops[0];
    lp->srv = srv;
    lp->poll_fd = ll_net_poll_open();
    lp->wake_fd = wire_wake_fd();
    srv->listen_fd = wire_listen_fd();
    FUZZ_CHECK(lp->poll_fd >= 0 && ll_net_poll_add(lp->poll_fd, lp->wake_fd, LL_POLL_IN, &lp->wake_fd) == 0 &&
               ll_net_poll_add(lp->poll_fd, srv->listen_fd, LL_POLL_IN, &srv->listen_fd) == 0);
    return srv;
}

/* sdk_server_stop as the I/O thread lives it: drain (the application keeps taking what
 * arrived), then the teardown, with every client reading to the end and leaving. */
static void finish(fz_server *h)
{
    sdk_server_stop(h->srv);
    for (int turns = 0; !h->over; turns++) {
        FUZZ_CHECK(turns < MAX_TURNS);
        app_recv(h, SIZE_MAX);
        wire_advance_clock(LL_SERVER_DRAIN_QUIET_MS);
        (void)turn(h);
    }
    check_server(h); /* every message the server accepted reached the application */
    for (int i = 0; i < h->nconns; i++) {
        h->conns[i].w->room = SIZE_MAX;
        h->conns[i].w->hung_up = true;
    }
    playing(h->srv);
    ll_server_io_teardown(h->srv);
    playing(NULL);
    observe(h);
    FUZZ_CHECK(live_sessions(h) == 0);
    for (int i = 0; i < h->nconns; i++) {
        FUZZ_CHECK(h->conns[i].w->tls_freed);
        ll_decoder_free(&h->conns[i].dec);
    }
    sdk_server_destroy(h->srv);
}

void fuzz_conn_server(script *s, uint8_t mode)
{
    static fz_server h; /* large: kept off the stack */
    memset(&h, 0, sizeof(h));
    h.s = s;
    sdk_server_config cfg = config_from(s, &h, mode);
    h.srv = server_new(&cfg);
    while (!script_done(s) && !h.over) {
        step(&h);
    }
    finish(&h);
}
