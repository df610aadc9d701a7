/*
 * The connection core: the Lifeline protocol of one connection (docs/protocol.md), for
 * either end, without I/O, in the style of quiche's Connection and h11. Received bytes and
 * `now` go in; out come the bytes to write (`out`), the next deadline and events: a Hello or
 * Welcome for the driver to decide on, an accepted message, acknowledgements, the peer's
 * Close. Heartbeats, pongs, sequence checks, acknowledgements, flow control and the Close
 * that every failure owes the peer are handled here, once, for both ends.
 *
 * It never touches a socket, a poller, the clock, a thread or a lock. Its drivers (the
 * client's I/O thread, the server's loop, the fuzzers and the unit tests) move the bytes,
 * pass the time and hold whatever lock guards the session they attach.
 */
#ifndef LL_CONN_H
#define LL_CONN_H

#include "buf.h"
#include "codec.h"
#include "heartbeat.h"
#include "session.h"

#include <stdbool.h>
#include <stdint.h>

#define LL_PROTOCOL_VERSION 1

typedef enum { LL_ROLE_CLIENT = 0, LL_ROLE_SERVER } ll_role;

typedef enum {
    LL_CONN_GREETING = 0, /* client: waiting for the Welcome; server: waiting for the Hello */
    LL_CONN_READY,        /* a session is attached: data, acks, heartbeats */
    LL_CONN_CLOSED,       /* a Close went out or came in, or the connection failed: nothing
                             more is written or handled */
} ll_conn_phase;

/* What ll_conn_next found: results of their own, never an sdk_err. */
typedef enum {
    LL_CONN_NEED_MORE = 0, /* nothing more to handle until more bytes are fed */
    LL_CONN_EVENT,         /* *ev is set */
    LL_CONN_FAILED,        /* c->err and c->detail say why; the Close owed to the peer (if
                              any) is in out, and the phase is CLOSED */
} ll_conn_result;

typedef enum {
    LL_EV_HELLO = 1, /* server, greeting: ev->frame.pb->hello. The driver attaches a session
                        (ll_conn_attach) and answers with ll_conn_send_welcome, or fails */
    LL_EV_WELCOME,   /* client: ev->frame.pb->welcome. While greeting: the driver adopts it
                        and attaches; when READY: a second Welcome, heartbeat values only */
    LL_EV_DATA,      /* an accepted message, the next in sequence: ev->frame.data */
    LL_EV_ACKED,     /* the peer acknowledged ev->freed (> 0) more of our messages */
    LL_EV_CLOSE,     /* the peer's Close: ev->frame.pb->close; the phase is now CLOSED */
} ll_conn_event_type;

typedef struct ll_conn_event {
    ll_conn_event_type type;
    ll_frame frame; /* owned by the core: valid until the next ll_conn_next or ll_conn_free */
    size_t freed;
} ll_conn_event;

typedef struct ll_conn {
    ll_role role;
    ll_conn_phase phase;
    ll_decoder dec; /* its max_frame is ours: the largest frame we accept or send */
    ll_buf out;     /* encoded frames the driver has not written yet */
    ll_heartbeat hb;
    ll_session *s;        /* the session carried; NULL until attached. The driver owns it and
                           holds its lock across every call that may touch it */
    uint64_t peer_rtt_us; /* the peer's smoothed round trip, as its pings report it */
    int err;              /* why it failed: 0 or an sdk_err */
    char detail[256];     /* why it failed, for the application */
    ll_frame cur;         /* behind the last event; released by the next call */
    /* the peer's pings so far (a new peer_rtt_us each) */
    uint64_t pings_received;
} ll_conn;

void ll_conn_init(ll_conn *c, ll_role role, uint32_t max_frame);
void ll_conn_free(ll_conn *c);

/* Received bytes (the plaintext after TLS). 0, or the decoder's sticky error (the
 * connection has then failed: see ll_conn_fail). Frames are handled by ll_conn_next. */
int ll_conn_feed(ll_conn *c, const void *data, size_t len, uint64_t now_ms);
/* The same without a copy: where up to *room bytes can be decrypted straight into the
 * decoder (ll_decoder_space; *room 0: use ll_conn_feed), then ll_conn_received with how many
 * came. Same results as ll_conn_feed. */
uint8_t *ll_conn_recv_space(ll_conn *c, size_t *room);
int ll_conn_received(ll_conn *c, size_t n, uint64_t now_ms);
/* Handle buffered frames until one needs the driver: see ll_conn_result and the event
 * types. Pings are answered, pongs timed, duplicates dropped, protocol errors turned into
 * the Close they call for. now_us: the monotonic clock (round trips are in microseconds). */
ll_conn_result ll_conn_next(ll_conn *c, uint64_t now_us, ll_conn_event *ev);

/* The driver wrote n bytes from the front of out. */
void ll_conn_wrote(ll_conn *c, size_t n, uint64_t now_ms);
/* The connection has gone quiet: free the input and output buffers if they hold nothing
 * (a busy connection's grow to a TLS record and more, and would stay that size for good);
 * the next bytes in or out allocate them again. Releases the last event's frame: call it
 * between ll_conn_next calls, never while an event is being handled. */
void ll_conn_release_buffers(ll_conn *c);

/* Carry session s from now on, watched with these heartbeat values (interval 0: never
 * ping, only watch). The phase becomes READY. */
void ll_conn_attach(ll_conn *c, ll_session *s, uint32_t interval_ms, uint32_t timeout_ms, uint64_t now_ms);
/* New heartbeat values for a READY connection (a second Welcome); its silence so far counts. */
void ll_conn_set_heartbeat(ll_conn *c, uint32_t interval_ms, uint32_t timeout_ms);

/* READY: encode the ack that is due (idle: the application has nothing left to read) and the
 * data the window allows, while out holds less than out_limit. 0 or SDK_ENOMEM. */
int ll_conn_fill(ll_conn *c, bool idle, size_t out_limit);
/* Whether ll_conn_fill has more data to encode now. */
bool ll_conn_can_write(const ll_conn *c);

/* The heartbeat: a ping when one is due. 0 with *next_ms the next deadline, or SDK_ETIMEDOUT
 * when the peer has been silent for the timeout (the connection has failed: a Close
 * HEARTBEAT_TIMEOUT is in out). */
int ll_conn_tick(ll_conn *c, uint64_t now_us, uint64_t *next_ms);

/* The connection failed with err (an sdk_err; detail printf-style, NULL: keep c->detail).
 * Encodes the Close the failure owes the peer (ll_conn_close_for) and closes. Returns err. */
int ll_conn_fail(ll_conn *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Encode Close{code, reason, reconnect} (the reason cut to fit a frame) and close: nothing
 * more is encoded after it. 0 or an encoder error; a CLOSED connection encodes nothing. */
int ll_conn_close(ll_conn *c, int code, const char *reason, bool reconnect);
/* The Close a failure with err owes the peer, for this role: false if none (the peer is not
 * listening, or we ran out of memory). See docs/protocol.md, Close. */
bool ll_conn_close_for(ll_role role, int err, int *code, bool *reconnect);

/* What the client announces in its Hello. */
typedef struct ll_hello {
    uint64_t session_id;
    const uint8_t *token;
    size_t token_len;
    uint64_t last_received;
    uint32_t heartbeat_interval_ms, heartbeat_timeout_ms;
    uint32_t window_messages;
    uint64_t window_bytes;
} ll_hello;
int ll_conn_send_hello(ll_conn *c, const ll_hello *h);
int ll_conn_send_welcome(ll_conn *c, const Lifeline__Welcome *w);

/* ---- parameters (pure; the spec's tables in code) ---- */

/* The server's bounds for what a Hello announces. */
typedef struct ll_limits {
    uint32_t heartbeat_min_ms, heartbeat_max_ms;
    uint32_t window_messages;
    uint64_t window_bytes;
} ll_limits;
/* What the server applies to a session, from its Hello. */
typedef struct ll_params {
    uint32_t heartbeat_interval_ms, heartbeat_timeout_ms;
    uint32_t window_messages; /* server -> client in flight */
    uint64_t window_bytes;
    uint32_t peer_max_frame; /* the largest frame the client accepts */
} ll_params;
#define LL_HEARTBEAT_TIMEOUT_DEFAULT 15000u
/* Timeout 0 -> 15000, clamped to [min, max]; interval 0 -> timeout / 3, clamped to
 * [1, timeout / 2]; windows 0 -> the server's own, else the smaller; max_frame 0 -> 16 MiB. */
void ll_params_from_hello(const Lifeline__Hello *h, const ll_limits *lim, ll_params *p);
/* A window the peer announced, against ours: 0 (unset) -> ours, else the smaller. */
uint64_t ll_params_window(uint64_t peer, uint64_t ours);

#endif
