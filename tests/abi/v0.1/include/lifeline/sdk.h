/*
 * Lifeline client SDK: a TLS message connection that survives network failures.
 *
 * Model. sdk_connect() starts one background I/O thread per client. That thread alone
 * touches the socket: it writes queued messages (many per TLS record), reads and
 * acknowledges incoming ones, sends heartbeats, detects a dead peer and reconnects.
 * Application threads meet it only through the blocking calls below, which any
 * number of threads may call on one client at the same time.
 *
 * Timeouts. Every `timeout_ms` argument means: < 0 wait without limit, 0 do not
 * wait (fail at once with SDK_ETIMEDOUT if the call would block), > 0 wait at most
 * that many milliseconds.
 *
 * Errors. Every call returns an sdk_err; SDK_OK is 0. sdk_strerror() and
 * sdk_errname() describe a code; sdk_last_error() gives the detail (for example
 * OpenSSL's reason) of the client's most recent connection failure.
 */
#ifndef LIFELINE_SDK_H
#define LIFELINE_SDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LIFELINE_BUILDING)
#define SDK_API __attribute__((visibility("default")))
#else
#define SDK_API
#endif

/* One table gives the enum, sdk_errname() and sdk_strerror(), so they never drift. */
#define SDK_ERROR_TABLE(X)                                                \
    X(OK, "success")                                                      \
    X(EINVAL, "invalid argument")                                         \
    X(ENOMEM, "out of memory")                                            \
    X(ETIMEDOUT, "timed out")                                             \
    X(ECLOSED, "handle is closed")                                        \
    X(ERESOLVE, "host name could not be resolved")                        \
    X(ECONNREFUSED, "connection refused")                                 \
    X(ECONNECT, "could not connect")                                      \
    X(ETLS, "TLS error")                                                  \
    X(EPEERAUTH, "peer certificate verification failed")                  \
    X(EPROTO, "protocol error")                                           \
    X(ETOOBIG, "message too big")                                         \
    X(EQUEUEFULL, "send queue full")                                      \
    X(EDISCONNECTED, "connection lost")                                   \
    X(EREJECTED, "the peer ended the session and asked not to reconnect") \
    X(ETYPE, "message type mismatch")                                     \
    X(ENOTFOUND, "no such session")                                       \
    X(EIO, "I/O error")                                                   \
    X(ELISTEN, "could not listen on the address")

typedef enum sdk_err {
#define SDK_ERR_ENUM_(name, text) SDK_##name,
    SDK_ERROR_TABLE(SDK_ERR_ENUM_)
#undef SDK_ERR_ENUM_
        SDK_ERR_COUNT_
} sdk_err;

/* sdk_strerror: a static, human-readable sentence for err ("unknown error" if out of range). */
SDK_API const char *sdk_strerror(int err);
/* sdk_errname: the code's name, e.g. "SDK_ETIMEDOUT" (static string). */
SDK_API const char *sdk_errname(int err);

/* Connection state as seen by the application. */
typedef enum sdk_state {
    SDK_STATE_CONNECTING = 0, /* first connection attempt in progress */
    SDK_STATE_CONNECTED,      /* session established; messages flow */
    SDK_STATE_RECONNECTING,   /* connection lost; waiting out backoff or reconnecting */
    SDK_STATE_CLOSED          /* sdk_close() was called, or reconnecting was given up */
} sdk_state;

/* sdk_state_name: "connecting", "connected", "reconnecting" or "closed". */
SDK_API const char *sdk_state_name(int state);

typedef enum sdk_event_type {
    SDK_EVENT_CONNECTING = 0, /* a connection attempt starts (attempt = 1, 2, ...) */
    SDK_EVENT_CONNECTED,      /* session established (resumed tells whether it continued) */
    SDK_EVENT_DISCONNECTED,   /* connection lost; error and detail say why */
    SDK_EVENT_RECONNECTING,   /* next attempt after delay_ms */
    SDK_EVENT_SESSION_LOST,   /* the server no longer knew the session: a new one was opened and
                                 unacknowledged messages are sent again (at least once) */
    SDK_EVENT_CLOSED          /* the client is closed for good; error says why (SDK_OK after sdk_close) */
} sdk_event_type;

typedef struct sdk_event {
    sdk_event_type type;
    int error;          /* sdk_err for DISCONNECTED, RECONNECTING (the failed attempt) and
                           CLOSED (why it gave up; SDK_OK after sdk_close), else SDK_OK */
    const char *detail; /* readable cause, valid only during the callback; never NULL */
    unsigned attempt;   /* connection attempt number, from 1 */
    unsigned delay_ms;  /* RECONNECTING: wait before the next attempt */
    bool resumed;       /* CONNECTED: the server resumed the previous session */
} sdk_event;

/* Called on the client's I/O thread. It must return quickly and must not block on the
 * client (sdk_close, sdk_flush: SDK_EINVAL; sends do not wait for room); other sdk_* calls
 * are allowed. */
typedef void (*sdk_event_fn)(const sdk_event *event, void *user);

typedef struct sdk_message sdk_message;

/*
 * A message callback (sdk_config.on_message, sdk_server_config.on_message): called on the
 * I/O thread with each message as it arrives, in order, instead of queueing it for
 * sdk_recv/sdk_server_recv (which then return SDK_EINVAL). The message is the callback's:
 * sdk_message_free it, then or later, from any thread. Handing a message to the callback
 * is receiving it: it is acknowledged once the callback returns.
 * Why: no hand-over to a thread blocked in a receive call, which is about half of a round
 * trip on an idle machine. The price: while the callback runs, the connection (on the
 * server, every connection) waits, so it must return quickly. Sending from it never waits
 * for room: when the queue is full the send returns SDK_EQUEUEFULL at once, whatever its
 * timeout. sdk_flush, sdk_close and sdk_server_stop return SDK_EINVAL from it.
 */
typedef void (*sdk_message_fn)(sdk_message *msg, void *user);

typedef struct sdk_config {
    const char *host;       /* server host name or IP literal (required) */
    uint16_t port;          /* server port (required) */
    const char *servername; /* name checked against the certificate and sent as SNI; NULL: host */
    const char *ca_file;    /* PEM file of trusted CAs; NULL: the system store */
    const char *cert_file;  /* client certificate (PEM) for mutual TLS; NULL: none */
    const char *key_file;   /* its private key (PEM) */

    uint32_t max_frame;              /* largest frame accepted or sent, bytes (default 16 MiB) */
    int connect_timeout_ms;          /* TCP connect + TLS handshake + hello, per attempt (default 10000) */
    int heartbeat_interval_ms;       /* ping after this long without traffic (default 5000) */
    int heartbeat_timeout_ms;        /* declare the peer dead after this long silent (default 3 x interval) */
    int reconnect_min_ms;            /* first backoff ceiling (default 100) */
    int reconnect_max_ms;            /* largest backoff ceiling (default 30000) */
    unsigned max_reconnect_attempts; /* failed connection attempts in a row (counting from the
                                        first connect or the last lost connection) before the
                                        client gives up and closes; 0: forever */
    bool retry_on_first_connect;     /* sdk_connect returns at once and keeps retrying in the
                                        background (default false: it fails fast) */
    size_t queue_max_messages;       /* messages waiting or unacknowledged (default 65536) */
    size_t queue_max_bytes;          /* their payload bytes (default 64 MiB) */
    uint32_t window_messages;        /* most unacknowledged messages either side keeps in flight
                                  (default 16384) */
    uint64_t window_bytes;           /* their payload bytes (default 16 MiB) */
    int close_linger_ms;             /* sdk_close first waits up to this long for sdk_flush (default 0) */

    sdk_event_fn on_event;     /* optional state-change callback, see sdk_event_fn */
    void *user;                /* passed to on_event and on_message */
    sdk_message_fn on_message; /* optional: deliver on the I/O thread, see sdk_message_fn */
} sdk_config;

/* sdk_config_init: fill cfg with the defaults above (host NULL, port 0). Never fails. */
SDK_API void sdk_config_init(sdk_config *cfg);

/* A received message. All pointers stay valid until sdk_message_free(). */
struct sdk_message {
    const uint8_t *data; /* payload (not NUL-terminated) */
    size_t len;          /* payload length */
    const char *type;    /* protobuf type name given by the sender, or NULL */
    uint64_t seq;        /* sequence number within the session */
    uint64_t session;    /* server side: the client session it came from; client side: 0 */
    const char *peer;    /* server side: client certificate subject (mTLS), else NULL */
};

/* sdk_message_free: release a message from sdk_recv/sdk_server_recv. NULL is ignored.
 * Any thread. Messages of up to about 2 KiB are carved from shared 16 KiB blocks (one
 * allocation for many messages); a block is released with the last of its messages, so
 * holding one small message for long holds at most 16 KiB. */
SDK_API void sdk_message_free(sdk_message *msg);

typedef struct sdk_client sdk_client;

/*
 * sdk_connect: copy cfg, start the client's I/O thread and connect.
 * Blocks until the first session is established (at most connect_timeout_ms), unless
 * cfg->retry_on_first_connect is set: then it returns SDK_OK at once and the I/O
 * thread keeps trying under the reconnect policy while sdk_send queues.
 * On SDK_OK *out is a client to release with sdk_close() then sdk_destroy().
 * Errors: SDK_EINVAL (missing host/port, bad values), SDK_ENOMEM, SDK_ERESOLVE,
 * SDK_ECONNREFUSED, SDK_ECONNECT, SDK_ETIMEDOUT, SDK_ETLS, SDK_EPEERAUTH (certificate
 * or host name check failed), SDK_EPROTO, SDK_EREJECTED. On failure *out is NULL and
 * sdk_last_connect_error() gives the detail.
 */
SDK_API sdk_err sdk_connect(const sdk_config *cfg, sdk_client **out);

/*
 * sdk_send: queue len bytes for delivery, in order, exactly once while the server runs.
 * The data is copied; the caller keeps its buffer. Returns once queued: it does not wait
 * for the network (see sdk_flush). While disconnected, messages queue. If the queue is
 * full, blocks up to timeout_ms for room.
 * Any thread. Errors: SDK_EINVAL (NULL client, NULL data with len > 0), SDK_ETOOBIG (larger
 * than max_frame, or than the server's limit once its welcome has told it), SDK_EQUEUEFULL (no room before the timeout), SDK_ECLOSED, SDK_ENOMEM.
 */
SDK_API sdk_err sdk_send(sdk_client *c, const void *data, size_t len, int timeout_ms);

/* sdk_send_typed: sdk_send, labelling the payload with a type name (e.g. a protobuf full
 * name; NULL or "" for none). Same blocking, threads and errors. */
SDK_API sdk_err sdk_send_typed(sdk_client *c, const char *type, const void *data, size_t len, int timeout_ms);

/*
 * sdk_recv: take the next message from the server, waiting up to timeout_ms.
 * On SDK_OK *out is owned by the caller (sdk_message_free). Receiving is what
 * acknowledges a message: one that is never taken is never acknowledged, so a slow
 * reader slows the sender down instead of growing memory.
 * Any thread; each message goes to exactly one caller.
 * Errors: SDK_EINVAL (also when cfg.on_message takes the messages), SDK_ETIMEDOUT,
 * SDK_ECLOSED (closed and nothing left to read).
 */
SDK_API sdk_err sdk_recv(sdk_client *c, sdk_message **out, int timeout_ms);

/*
 * sdk_flush: wait until every message sent before this call has been acknowledged by
 * the server's application (timeout_ms as above).
 * Errors: SDK_EINVAL (also from a callback), SDK_ETIMEDOUT, SDK_ECLOSED.
 */
SDK_API sdk_err sdk_flush(sdk_client *c, int timeout_ms);

/* sdk_get_state: the client's current state (SDK_STATE_CLOSED for NULL). Any thread. */
SDK_API sdk_state sdk_get_state(sdk_client *c);

typedef struct sdk_stats {
    sdk_state state;
    uint64_t connects;           /* sessions established, first one included */
    uint64_t reconnects;         /* of which after a lost connection */
    uint64_t handshakes_full;    /* TLS handshakes with a full key exchange */
    uint64_t handshakes_resumed; /* TLS handshakes that resumed a session ticket */
    uint64_t sessions_lost;      /* times the server did not know our session */
    uint64_t heartbeats_sent;
    uint64_t heartbeats_answered;
    uint64_t rtt_last_us;     /* last ping round trip */
    uint64_t rtt_smoothed_us; /* smoothed round trip (RFC 6298 style, 1/8 gain) */
    uint64_t msgs_sent;       /* data messages written, retransmissions included */
    uint64_t bytes_sent;      /* their payload bytes */
    uint64_t msgs_received;   /* data messages accepted (duplicates excluded) */
    uint64_t bytes_received;
    uint64_t retransmits; /* data messages written again after a reconnect */
    uint64_t duplicates_dropped;
    uint64_t queue_depth; /* messages waiting or unacknowledged */
    uint64_t queue_bytes;
    uint64_t acks_sent;     /* acknowledgement frames written (each covers many messages) */
    uint64_t acks_received; /* acknowledgement frames from the server */
} sdk_stats;

/* sdk_get_stats: snapshot of counters. Any thread. Errors: SDK_EINVAL. Works after close. */
SDK_API sdk_err sdk_get_stats(sdk_client *c, sdk_stats *out);

/*
 * sdk_last_error: the cause of the client's most recent connection failure, as a
 * readable string (e.g. "certificate verify failed: hostname mismatch"), or "" if none.
 * It stays after a successful reconnect, until the next failure replaces it.
 * Copied into buf (always NUL-terminated); returns its sdk_err code.
 */
SDK_API sdk_err sdk_last_error(sdk_client *c, char *buf, size_t buflen);

/* sdk_last_connect_error: like sdk_last_error, for the calling thread's most recent
 * sdk_connect() that failed (when there is no client to ask). */
SDK_API sdk_err sdk_last_connect_error(char *buf, size_t buflen);

/*
 * sdk_close: close the client. If close_linger_ms > 0, first waits that long for
 * sdk_flush. Then sends a close frame, stops the I/O thread and wakes every blocked
 * caller, which returns SDK_ECLOSED (sdk_recv first drains what was already received).
 * The handle stays valid: later calls return SDK_ECLOSED. Blocks until the I/O thread
 * has exited (bounded by about one second for the close frame). Any thread; calling it
 * twice is harmless. Errors: SDK_EINVAL (NULL, or called from a callback: it would wait
 * for its own thread).
 */
SDK_API sdk_err sdk_close(sdk_client *c);

/* sdk_destroy: free a client. Closes it first if needed. No other thread may be using
 * it, nor use it afterwards. NULL is ignored, and so is a call from one of the client's
 * callbacks (it would free the client under its own I/O thread). */
SDK_API void sdk_destroy(sdk_client *c);

#ifdef __cplusplus
}
#endif

#endif
