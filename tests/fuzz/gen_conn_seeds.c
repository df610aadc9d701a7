/*
 * Writes the seed corpus of fuzz_conn (tests/fuzz/corpus/conn) from frames encoded by the
 * real codec, so the seeds stay valid when the protocol changes: rebuild and run
 *   build-fuzz/bin/fuzz_conn_seeds tests/fuzz/corpus/conn
 * Each seed is a short story in the script language of conn.h: sessions opened and resumed,
 * data both ways, acks, pings, stalls, protocol errors, timeouts, closes and stops.
 */
#include "codec.h"
#include "conn.h"
#include "ll.h"

#include <stdio.h>
#include <string.h>

static const uint8_t TOKEN[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static void u8(ll_buf *b, uint8_t v)
{
    if (ll_buf_append(b, &v, 1) != 0) {
        abort();
    }
}

static void bytes(ll_buf *b, const void *p, size_t n)
{
    if (ll_buf_append(b, p, n) != 0) {
        abort();
    }
}

static void encode(ll_buf *b, Lifeline__Frame *f)
{
    if (ll_encode_frame(b, f, UINT32_MAX) != 0) {
        abort();
    }
}

/* ---- frames ---- */

static void hello(ll_buf *b, uint64_t session, uint64_t last_received)
{
    Lifeline__Hello h = LIFELINE__HELLO__INIT;
    h.version = 1;
    h.session_id = session;
    h.resume_token = (ProtobufCBinaryData){session ? sizeof(TOKEN) : 0, (uint8_t *)TOKEN};
    h.last_received = last_received;
    h.heartbeat_interval_ms = 1000;
    h.heartbeat_timeout_ms = 3000;
    h.window_messages = 8;
    h.max_frame = 4096;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_HELLO;
    f.hello = &h;
    encode(b, &f);
}

static void welcome(ll_buf *b, uint64_t session, bool resumed, uint64_t last_received, uint32_t version)
{
    Lifeline__Welcome w = LIFELINE__WELCOME__INIT;
    w.version = version;
    w.session_id = session;
    w.resume_token = (ProtobufCBinaryData){sizeof(TOKEN), (uint8_t *)TOKEN};
    w.resumed = resumed;
    w.last_received = last_received;
    w.heartbeat_interval_ms = 1000;
    w.heartbeat_timeout_ms = 3000;
    w.window_messages = 4;
    w.window_bytes = 1 << 20;
    w.max_frame = 4096;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_WELCOME;
    f.welcome = &w;
    encode(b, &f);
}

static void data(ll_buf *b, uint64_t seq, size_t len)
{
    uint8_t payload[64] = {0};
    payload[0] = (uint8_t)seq;
    if (ll_encode_data(b, seq, payload, LL_MIN(len, sizeof(payload)), NULL, UINT32_MAX) != 0) {
        abort();
    }
}

static void ack(ll_buf *b, uint64_t seq)
{
    Lifeline__Ack a = LIFELINE__ACK__INIT;
    a.seq = seq;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_ACK;
    f.ack = &a;
    encode(b, &f);
}

static void ping(ll_buf *b, uint64_t nonce)
{
    Lifeline__Ping p = LIFELINE__PING__INIT;
    p.nonce = nonce;
    p.timestamp_us = 5;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &p;
    encode(b, &f);
}

static void pong(ll_buf *b, uint64_t nonce)
{
    Lifeline__Pong p = LIFELINE__PONG__INIT;
    p.nonce = nonce;
    p.timestamp_us = 5;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PONG;
    f.pong = &p;
    encode(b, &f);
}

static void close_frame(ll_buf *b, int code, bool reconnect)
{
    Lifeline__Close c = LIFELINE__CLOSE__INIT;
    c.code = (Lifeline__Close__Code)code;
    c.reason = "seed";
    c.reconnect = reconnect;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_CLOSE;
    f.close = &c;
    encode(b, &f);
}

/* ---- server-side steps ---- */

static void op(ll_buf *b, int o, int arg)
{
    u8(b, SOP(o, arg));
}

/* A connection whose handshake is `handshake` (SOP_ACCEPT's arg: 1-8 resume a tagged
 * ticket, 9-15 extra rounds or failures), read in any piece size. */
static void accept_with(ll_buf *b, int handshake)
{
    op(b, SOP_ACCEPT, handshake);
    u8(b, 0);
}

static void accept_conn(ll_buf *b)
{
    accept_with(b, 0);
}

/* 3000 ms timeout, window 3 messages and 1 KiB; or 500 ms, the server's windows, 16 MiB frames */
#define LIMITS_SMALL 0x2d
#define LIMITS_LARGE 0xc1

static void model_hello_with(ll_buf *b, int conn, uint8_t flags, uint8_t pick, uint8_t limits)
{
    op(b, SOP_HELLO, conn);
    u8(b, flags);
    u8(b, pick);
    u8(b, 0);
    u8(b, limits);
}

static void model_hello(ll_buf *b, int conn, uint8_t flags, uint8_t pick)
{
    model_hello_with(b, conn, flags, pick, LIMITS_SMALL);
}

/* A hello naming a session the client knows, with last_received off by lie. */
static void lying_hello(ll_buf *b, int conn, int8_t lie)
{
    op(b, SOP_HELLO, conn);
    u8(b, SOP_HELLO_RESUME | SOP_HELLO_LIE);
    u8(b, 0);
    u8(b, (uint8_t)lie);
    u8(b, LIMITS_SMALL);
}

static void model_data(ll_buf *b, int conn, uint8_t shape, int8_t offset)
{
    op(b, SOP_DATA, conn);
    u8(b, shape);
    u8(b, (uint8_t)offset);
}

static void model_ack(ll_buf *b, int conn, int8_t offset)
{
    op(b, SOP_ACK, conn);
    u8(b, (uint8_t)offset);
}

static void app_send(ll_buf *b, int session, uint8_t shape)
{
    op(b, SOP_SEND, session);
    u8(b, shape);
}

/* Raw bytes: frames the model would not build. */
static void raw(ll_buf *b, int conn, const ll_buf *frames)
{
    op(b, SOP_RAW_LONG, conn);
    u8(b, (uint8_t)(ll_buf_size(frames) >> 8));
    u8(b, (uint8_t)ll_buf_size(frames));
    bytes(b, ll_buf_head(frames), ll_buf_size(frames));
}

/* The mode byte for callback mode whose callback starts with plan (CB_*). */
#define CALLBACKS(plan) ((uint8_t)(MODE_CALLBACKS | (plan) << 2))

static void start_in(ll_buf *b, uint8_t mode, uint8_t cfg_a, uint8_t cfg_b)
{
    u8(b, mode);
    u8(b, cfg_a);
    u8(b, cfg_b);
}

static void server_start(ll_buf *b, uint8_t cfg_a, uint8_t cfg_b)
{
    start_in(b, 0, cfg_a, cfg_b);
}

/* window 7, max_frame 1024, TTL 5000; queue 21 messages */
#define SRV_A 0x4a
#define SRV_B 0x05

static void seed_srv_basic(ll_buf *b)
{
    server_start(b, SRV_A, SRV_B);
    accept_conn(b);
    model_hello(b, 0, 0, 0);
    model_data(b, 0, 0x13, 0);
    op(b, SOP_RECV, 0);
    app_send(b, 0, 0x02);
    model_ack(b, 0, 0);
    op(b, SOP_PING, 0);
    op(b, SOP_SESSIONS, 0);
    model_data(b, 0, 0x01, 0);
    op(b, SOP_RECV, 0);
}

static void seed_srv_resume(ll_buf *b, bool replace, bool forge)
{
    seed_srv_basic(b);
    app_send(b, 0, 0x03);
    if (!replace) {
        op(b, SOP_HANGUP, 0);
        u8(b, 0);
    }
    accept_conn(b);
    model_hello(b, 1, SOP_HELLO_RESUME | (forge ? SOP_HELLO_FORGE : 0), 0);
    model_data(b, 1, 0x12, 0);
    op(b, SOP_RECV, 0);
    model_ack(b, 1, 0);
    app_send(b, 0, 0x01);
    model_ack(b, 1, 0);
}

/* A resume refused for its position while the session is attached elsewhere: the session
 * must keep its connection (it used to be left with neither a connection nor a TTL). */
static void seed_srv_resume_bad_position(ll_buf *b)
{
    seed_srv_basic(b);
    accept_conn(b);
    lying_hello(b, 1, 99);
    op(b, SOP_PING, 0);
    model_ack(b, 0, 0);
}

static void seed_srv_raw(ll_buf *b)
{
    ll_buf frames = {0};
    hello(&frames, 0, 0);
    data(&frames, 1, 10);
    data(&frames, 2, 10);
    data(&frames, 2, 10); /* a duplicate */
    ping(&frames, 9);
    ack(&frames, 0);
    server_start(b, SRV_A, SRV_B);
    accept_conn(b);
    raw(b, 0, &frames);
    op(b, SOP_RECV, 0);
    app_send(b, 0, 0x01);
    ll_buf_clear(&frames);
    ack(&frames, 2);
    data(&frames, 4, 3); /* a gap: protocol error */
    raw(b, 0, &frames);
    ll_buf_free(&frames);
}

static void seed_srv_errors(ll_buf *b)
{
    server_start(b, SRV_A, SRV_B);
    accept_conn(b);
    model_data(b, 0, 0x00, 0); /* before hello */
    accept_conn(b);
    model_hello(b, 1, SOP_HELLO_BADVER, 0);
    accept_conn(b);
    model_hello(b, 2, 0, 0);
    model_ack(b, 2, 5); /* acks what was never sent */
    accept_conn(b);
    model_hello(b, 3, 0, 0);
    model_data(b, 3, 0x00, 3); /* a gap */
    accept_with(b, 14);        /* TLS handshake fails */
    op(b, SOP_TICK, 9);
}

static void seed_srv_stall(ll_buf *b)
{
    server_start(b, 0x07 | 0x18, 0x0f); /* window 22, max_frame 16384, queue 61 */
    accept_conn(b);
    model_hello_with(b, 0, 0, 0, LIMITS_LARGE);
    op(b, SOP_ROOM, 0);
    u8(b, 0);
    for (int i = 0; i < 4; i++) {
        app_send(b, 0, 0x3f); /* 8 x 16000 bytes */
    }
    op(b, SOP_ROOM, 0);
    u8(b, 40);
    op(b, SOP_ROOM, 0);
    u8(b, 255);
    model_ack(b, 0, 0);
}

static void seed_srv_lifecycle(ll_buf *b)
{
    server_start(b, SRV_A, SRV_B);
    accept_conn(b);
    model_hello(b, 0, 0, 0);
    accept_conn(b);
    model_hello(b, 1, 0, 0);
    accept_conn(b);
    model_hello(b, 2, 0, 0);
    model_data(b, 2, 0x02, 0);
    op(b, SOP_CLOSE, 0);
    u8(b, 0); /* for good: the session ends */
    op(b, SOP_APP_CLOSE, 1);
    u8(b, 1);
    op(b, SOP_HANGUP, 2);
    u8(b, 1);
    op(b, SOP_TICK, 5);  /* 1000 ms: beyond the TTL? not yet */
    op(b, SOP_TICK, 10); /* 15 s: heartbeat and TTL */
    op(b, SOP_SESSIONS, 0);
    op(b, SOP_STOP, 0);
    app_send(b, 2, 0x00);
    op(b, SOP_RECV, 0);
}

/* A client resumes a TLS ticket of the first session (SOP_ACCEPT arg 1) and is welcomed back
 * in 0.5-RTT while the old connection still delivers; its hello resumes the session with no
 * second welcome, and the stream goes on. */
static void seed_srv_early_welcome(ll_buf *b)
{
    seed_srv_basic(b);
    app_send(b, 0, 0x03);
    accept_with(b, 1);
    model_data(b, 0, 0x01, 0); /* the old connection, between welcome and hello */
    model_hello(b, 1, SOP_HELLO_RESUME, 0);
    model_data(b, 1, 0x12, 0);
    op(b, SOP_RECV, 0);
    model_ack(b, 1, 0);
    app_send(b, 0, 0x01);
    model_ack(b, 1, 0);
}

/* Hellos a 0.5-RTT welcome refuses: a new session, another session, a wrong token (protocol
 * errors), the session closed between welcome and hello (come again); then a ticket naming
 * no session, which gets no early welcome. */
static void seed_srv_early_welcome_refused(ll_buf *b)
{
    server_start(b, SRV_A, SRV_B);
    accept_conn(b);
    model_hello(b, 0, 0, 0);
    accept_conn(b);
    model_hello(b, 1, 0, 0);
    accept_with(b, 1);
    model_hello(b, 2, 0, 0);
    accept_with(b, 1);
    model_hello(b, 3, SOP_HELLO_RESUME, 1);
    accept_with(b, 2);
    model_hello(b, 4, SOP_HELLO_RESUME | SOP_HELLO_FORGE, 1);
    accept_with(b, 1);
    op(b, SOP_APP_CLOSE, 0);
    u8(b, 1);
    model_hello(b, 5, SOP_HELLO_RESUME, 0);
    accept_with(b, 8);
    model_hello(b, 6, 0, 0);
}

/* ---- client-side records ---- */

static void client_start(ll_buf *b, uint8_t cfg_a, uint8_t cfg_b)
{
    start_in(b, MODE_CLIENT, cfg_a, cfg_b);
}

/* What the server sends, as one record. */
static void says(ll_buf *b, const ll_buf *frames)
{
    size_t n = ll_buf_size(frames) - 1;
    u8(b, CREC(CREC_LONG, (uint8_t)(n >> 8)));
    u8(b, (uint8_t)n);
    bytes(b, ll_buf_head(frames), ll_buf_size(frames));
}

static void app(ll_buf *b, int action, int arg)
{
    u8(b, CREC(CREC_APP, action | (arg << 3)));
}

static void end(ll_buf *b, int how)
{
    u8(b, CREC(CREC_END, how));
}

/* window 4, max_frame 4096, 2 attempts; queue 11, heartbeat 1000 ms */
#define CLI_A 0x51
#define CLI_B 0x15

static void first_connection(ll_buf *b)
{
    ll_buf f = {0};
    app(b, CAPP_SEND, 2);
    welcome(&f, 77, false, 0, 1);
    says(b, &f);
    app(b, CAPP_PAUSE, 0); /* the client writes its messages */
    ll_buf_clear(&f);
    data(&f, 1, 5);
    data(&f, 2, 5);
    ack(&f, 1);
    ping(&f, 3);
    says(b, &f);
    app(b, CAPP_PAUSE, 0);
    app(b, CAPP_RECV_ALL, 0);
    ll_buf_clear(&f);
    data(&f, 3, 5);
    data(&f, 3, 5);
    says(b, &f);
    app(b, CAPP_RECV, 0);
    ll_buf_free(&f);
}

static void seed_cli_resume(ll_buf *b, bool lost)
{
    client_start(b, CLI_A, CLI_B);
    first_connection(b);
    end(b, CEND_FIN);
    ll_buf f = {0};
    welcome(&f, lost ? 78 : 77, !lost, 2, 1); /* the server has 1 and 2 */
    data(&f, lost ? 1 : 4, 5);
    says(b, &f);
    app(b, CAPP_SEND, 1);
    app(b, CAPP_PAUSE, 0); /* the client writes again what the server lacks */
    ll_buf_clear(&f);
    ack(&f, lost ? 1 : 3);
    says(b, &f);
    app(b, CAPP_PAUSE, 0);
    app(b, CAPP_RECV_ALL, 0);
    app(b, CAPP_TIME, 3); /* past the heartbeat interval: the client pings */
    app(b, CAPP_PAUSE, 0);
    ll_buf_clear(&f);
    pong(&f, 1);
    says(b, &f);
    app(b, CAPP_QUERY, 0);
    app(b, CAPP_CLOSE, 0);
    app(b, CAPP_PAUSE, 0); /* the client says goodbye */
    ll_buf_free(&f);
}

/* A welcome that resumes another session than the client's is refused; the next one for its
 * own session resumes it. */
static void seed_cli_foreign_welcome(ll_buf *b)
{
    client_start(b, CLI_A, CLI_B);
    first_connection(b);
    end(b, CEND_FIN);
    ll_buf f = {0};
    welcome(&f, 78, true, 2, 1);
    says(b, &f);
    ll_buf_clear(&f);
    welcome(&f, 77, true, 2, 1);
    data(&f, 4, 5);
    says(b, &f);
    app(b, CAPP_PAUSE, 0);
    app(b, CAPP_RECV_ALL, 0);
    ll_buf_free(&f);
}

/* The server refuses at once: a close frame where the welcome should be. */
static void seed_cli_refused(ll_buf *b)
{
    client_start(b, CLI_A, CLI_B);
    ll_buf f = {0};
    close_frame(&f, LIFELINE__CLOSE__CODE__REJECTED, false);
    says(b, &f);
    ll_buf_free(&f);
}

/* A welcome without a resume token (protobuf-c hands it over as NULL), then a reconnect. */
static void seed_cli_welcome_without_token(ll_buf *b)
{
    client_start(b, CLI_A, CLI_B);
    ll_buf f = {0};
    Lifeline__Welcome w = LIFELINE__WELCOME__INIT;
    w.version = 1;
    w.session_id = 9;
    Lifeline__Frame fr = LIFELINE__FRAME__INIT;
    fr.kind_case = LIFELINE__FRAME__KIND_WELCOME;
    fr.welcome = &w;
    encode(&f, &fr);
    says(b, &f);
    app(b, CAPP_PAUSE, 0);
    end(b, CEND_FIN);
    ll_buf_clear(&f);
    welcome(&f, 9, true, 0, 1);
    says(b, &f);
    ll_buf_free(&f);
}

static void seed_cli_rejected(ll_buf *b)
{
    client_start(b, CLI_A, CLI_B);
    first_connection(b);
    ll_buf f = {0};
    close_frame(&f, LIFELINE__CLOSE__CODE__SESSION_CLOSED, false);
    says(b, &f);
    ll_buf_free(&f);
}

static void seed_cli_errors(ll_buf *b)
{
    client_start(b, CLI_A & ~0x60, CLI_B); /* retry forever */
    ll_buf f = {0};
    welcome(&f, 5, false, 0, 2); /* unsupported version */
    says(b, &f);
    ll_buf_clear(&f);
    ack(&f, 1); /* no welcome first */
    says(b, &f);
    ll_buf_clear(&f);
    end(b, CEND_FIN_THEN_BAD_CERT);
    end(b, CEND_RESET);
    welcome(&f, 6, true, 9, 1); /* resumed, but we never had a session */
    says(b, &f);
    ll_buf_clear(&f);
    welcome(&f, 6, false, 0, 1);
    data(&f, 2, 1); /* a gap */
    says(b, &f);
    end(b, CEND_TLS_ERROR);
    ll_buf_clear(&f);
    welcome(&f, 7, false, 0, 1);
    says(b, &f);
    app(b, CAPP_TIME, 7); /* silence past the heartbeat timeout */
    app(b, CAPP_PAUSE, 0);
    ll_buf_free(&f);
}

/* Callback mode: the callback echoes each message, then sends three per message and tries
 * sdk_flush and sdk_close, across a resume; the application closes at the end. */
static void seed_cli_callbacks(ll_buf *b)
{
    start_in(b, MODE_CLIENT | CALLBACKS(1), CLI_A, CLI_B);
    ll_buf f = {0};
    welcome(&f, 77, false, 0, 1);
    data(&f, 1, 20);
    data(&f, 2, 20);
    says(b, &f);
    app(b, CAPP_PAUSE, 0); /* the client writes the echoes and acks */
    ll_buf_clear(&f);
    ack(&f, 2);
    data(&f, 3, 5);
    says(b, &f);
    app(b, CAPP_RECV, CB_SENDS | CB_REFUSED);
    ll_buf_clear(&f);
    data(&f, 4, 5);
    says(b, &f);
    app(b, CAPP_PAUSE, 0);
    end(b, CEND_FIN);
    ll_buf_clear(&f);
    welcome(&f, 77, true, 2, 1);
    data(&f, 5, 5);
    says(b, &f);
    app(b, CAPP_PAUSE, 0);
    app(b, CAPP_CLOSE, 0);
    app(b, CAPP_PAUSE, 0);
    ll_buf_free(&f);
}

/* The application acts while frames wait unread (SOP_LATER), then the loop sees it all. */
static void seed_srv_concurrent(ll_buf *b)
{
    server_start(b, SRV_A, SRV_B);
    accept_conn(b);
    model_hello(b, 0, 0, 0);
    model_data(b, 0 | SOP_LATER, 0x01, 0);
    app_send(b, 0 | SOP_LATER, 0x01);
    op(b, SOP_CLOSE, 0); /* for good, while the session is on the dirty list */
    u8(b, 0);
    accept_conn(b);
    model_hello(b, 1, 0, 0);
    accept_conn(b);
    model_hello(b, 2 | SOP_LATER, SOP_HELLO_RESUME, 1); /* resume the second session... */
    op(b, SOP_APP_CLOSE, 1 | SOP_LATER);                /* ...which the application closes */
    u8(b, 1);
    op(b, SOP_RECV, 0);
}

/* Callback mode: the callback echoes each message, then (receive steps set its plan) sends
 * three per message and tries sdk_server_stop, across a resume and a stop. */
static void seed_srv_callbacks(ll_buf *b)
{
    start_in(b, CALLBACKS(1), SRV_A, SRV_B);
    accept_conn(b);
    model_hello(b, 0, 0, 0);
    model_data(b, 0, 0x13, 0);
    model_ack(b, 0, 0);
    op(b, SOP_RECV, CB_SENDS | CB_REFUSED);
    model_data(b, 0, 0x01, 0);
    app_send(b, 0, 0x01);
    model_ack(b, 0, 0);
    op(b, SOP_HANGUP, 0);
    u8(b, 0);
    accept_conn(b);
    model_hello(b, 1, SOP_HELLO_RESUME, 0);
    op(b, SOP_RECV, 1);
    model_data(b, 1, 0x12, 0);
    model_ack(b, 1, 0);
    op(b, SOP_STOP, 0);
}

/* Callback mode with a one-message queue and a client that reads nothing: the callback's
 * sends find the queue full and must say so at once. */
static void seed_srv_callbacks_full(ll_buf *b)
{
    start_in(b, CALLBACKS(CB_SENDS), SRV_A, 0x00);
    accept_conn(b);
    model_hello(b, 0, 0, 0);
    op(b, SOP_ROOM, 0);
    u8(b, 0);
    model_data(b, 0, 0x03, 0);
    op(b, SOP_ROOM, 0);
    u8(b, 255);
    model_ack(b, 0, 0);
    model_data(b, 0, 0x01, 0);
}

typedef struct seed {
    const char *name;
    void (*write)(ll_buf *b);
} seed;

static void srv_resume(ll_buf *b)
{
    seed_srv_resume(b, false, false);
}
static void srv_resume_replace(ll_buf *b)
{
    seed_srv_resume(b, true, false);
}
static void srv_forged(ll_buf *b)
{
    seed_srv_resume(b, false, true);
}
static void cli_resume(ll_buf *b)
{
    seed_cli_resume(b, false);
}
static void cli_lost(ll_buf *b)
{
    seed_cli_resume(b, true);
}

static const seed SEEDS[] = {
    {"srv_basic", seed_srv_basic},
    {"srv_resume", srv_resume},
    {"srv_resume_replace", srv_resume_replace},
    {"srv_forged_token", srv_forged},
    {"srv_raw_frames", seed_srv_raw},
    {"srv_errors", seed_srv_errors},
    {"srv_stall", seed_srv_stall},
    {"srv_lifecycle", seed_srv_lifecycle},
    {"srv_concurrent", seed_srv_concurrent},
    {"srv_resume_bad_position", seed_srv_resume_bad_position},
    {"cli_refused", seed_cli_refused},
    {"cli_welcome_without_token", seed_cli_welcome_without_token},
    {"cli_resume", cli_resume},
    {"cli_session_lost", cli_lost},
    {"cli_rejected", seed_cli_rejected},
    {"cli_errors", seed_cli_errors},
    {"srv_callbacks", seed_srv_callbacks},
    {"srv_callbacks_full", seed_srv_callbacks_full},
    {"cli_callbacks", seed_cli_callbacks},
    {"srv_early_welcome", seed_srv_early_welcome},
    {"srv_early_welcome_refused", seed_srv_early_welcome_refused},
    {"cli_foreign_welcome", seed_cli_foreign_welcome},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(SEEDS) / sizeof(SEEDS[0]); i++) {
        ll_buf b = {0};
        char path[4096];
        SEEDS[i].write(&b);
        snprintf(path, sizeof(path), "%s/%s", argv[1], SEEDS[i].name);
        FILE *fp = fopen(path, "wb");
        if (!fp || fwrite(ll_buf_head(&b), 1, ll_buf_size(&b), fp) != ll_buf_size(&b) || fclose(fp) != 0) {
            perror(path);
            return 1;
        }
        ll_buf_free(&b);
    }
    return 0;
}
