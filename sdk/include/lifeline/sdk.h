/*
 * Lifeline client SDK: a TLS message connection that survives network failures.
 *
 * Model. sdk_connect() makes the first connection on the calling thread, then starts one
 * background I/O thread per client that carries it on. From then on that thread alone
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

/* sdk_state_name: "connecting", "connected", "reconnecting", "closed", or "unknown" (static
 * string). Any thread. */
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

/* sdk_event_name: "connecting", "connected", "disconnected", "reconnecting", "session_lost",
 * "closed", or "unknown" (static string). Any thread. */
SDK_API const char *sdk_event_name(int type);

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
 * are allowed. Exception: the events of sdk_connect's own attempts (without
 * retry_on_first_connect: CONNECTING, RECONNECTING to the next endpoint, SESSION_LOST and
 * CONNECTED, or CLOSED when it fails) run on the thread calling sdk_connect, before it
 * returns, when there is no client handle yet to call anything on. */
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
 * timeout. sdk_flush, sdk_close and sdk_server_close return SDK_EINVAL from it.
 */
typedef void (*sdk_message_fn)(sdk_message *msg, void *user);

/*
 * Reconnect policy. Every failed connection attempt and every lost connection has one of
 * these causes; sdk_config.reconnect_policy[cause] says what the client does next.
 */
typedef enum sdk_retry_cause {
    SDK_RETRY_OTHER = 0,   /* none of the below: SDK_ERESOLVE, SDK_ECONNECT (unreachable),
                              SDK_ETLS, SDK_EIO, SDK_ENOMEM */
    SDK_RETRY_REFUSED,     /* SDK_ECONNREFUSED: nothing listens on the port */
    SDK_RETRY_RESET,       /* SDK_EDISCONNECTED: reset, EOF, or a server close that allows a
                              reconnect (a server restarting) */
    SDK_RETRY_HEARTBEAT,   /* SDK_ETIMEDOUT on a live link: nothing heard for heartbeat_timeout_ms */
    SDK_RETRY_TIMEOUT,     /* SDK_ETIMEDOUT while connecting: TCP, TLS handshake or welcome
                              not done within connect_timeout_ms */
    SDK_RETRY_CERTIFICATE, /* SDK_EPEERAUTH: the server's certificate or name failed verification */
    SDK_RETRY_REJECTED,    /* SDK_EREJECTED: the server closed and asked us not to come back */
    SDK_RETRY_PROTOCOL,    /* SDK_EPROTO: the server broke the protocol */
    SDK_RETRY_CAUSES       /* the number of causes: the size of reconnect_policy */
} sdk_retry_cause;

/* sdk_retry_cause_name: "other", "refused", "reset", "heartbeat", "timeout", "certificate",
 * "rejected", "protocol" ("unknown" if out of range). A static string; any thread. */
SDK_API const char *sdk_retry_cause_name(int cause);

/*
 * What to do after a failure of one cause. stop: close the client at once (state CLOSED,
 * the error in sdk_last_error; sdk_connect without retry_on_first_connect fails either
 * way). Otherwise wait before the next attempt: min_ms plus a random share ("full jitter")
 * of an exponential ceiling that starts at reconnect_min_ms and doubles with each failure
 * in a row, up to max_ms - min_ms; so every delay lies in [min_ms, max_ms]. max_ms < 0
 * means reconnect_max_ms (and below min_ms counts as min_ms). max_reconnect_attempts still
 * caps the failures in a row for every cause. SDK_ETOOBIG (a frame over our max_frame)
 * always stops: it would come again after a resume.
 */
typedef struct sdk_retry_rule {
    bool stop;  /* give up at the first failure of this cause */
    int min_ms; /* shortest delay before the next attempt, >= 0 */
    int max_ms; /* longest delay; < 0: reconnect_max_ms */
} sdk_retry_rule;

/*
 * Client configuration. ABI rule: `size` comes first and is set by sdk_config_init to the
 * size of the struct the program was compiled with, and the library reads only that many
 * bytes. A program built against an older header (smaller size) gets the defaults for the
 * fields it does not know; one built against a newer header (larger size) works as long as
 * it leaves the fields this library does not know at zero, and is refused with SDK_EINVAL
 * otherwise. Fields are only ever appended, and 0 always means "the default" for fields
 * added after 0.1 (docs/DEVELOPMENT.md, "ABI").
 */
typedef struct sdk_config {
    size_t size; /* sizeof(sdk_config) as the program saw it: set by sdk_config_init, do not touch */

    const char *host;       /* server host name or IP literal (required unless address is set) */
    uint16_t port;          /* server port (required unless address is set) */
    const char *servername; /* name checked against the certificate and sent as SNI; NULL: host */
    const char *ca_file;    /* PEM file of trusted CAs; NULL: the system store */
    const char *cert_file;  /* client certificate (PEM) for mutual TLS; NULL: none */
    const char *key_file;   /* its private key (PEM) */

    uint32_t max_frame;              /* largest frame accepted or sent, bytes (default 16 MiB) */
    int connect_timeout_ms;          /* name resolution + TCP connect + TLS handshake + hello, per
                                        attempt, the first counted from sdk_connect's call (default
                                        10000); sdk_close interrupts any of them */
    int heartbeat_interval_ms;       /* ping after this long without traffic (default 5000) */
    int heartbeat_timeout_ms;        /* declare the peer dead after this long silent (default 3 x interval) */
    int reconnect_min_ms;            /* first backoff ceiling (default 100) */
    int reconnect_max_ms;            /* largest backoff ceiling (default 30000) */
    unsigned max_reconnect_attempts; /* failed connection attempts in a row (counting from the
                                        first connect or the last lost connection) before the
                                        client gives up and closes; 0: forever. With several
                                        endpoints, a round over all of them counts as one
                                        (see endpoints) */
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

    /* ---- 0.2 ---- (new fields go below, see docs/DEVELOPMENT.md) */
    const char *address; /* the server as "HOST:PORT" or "[IPv6]:PORT", the syntax of
                            sdk_server_config.listen and sdk_parse_address; instead of host and
                            port (set one or the other). NULL: use host and port */
    /* Per-cause reconnect policy, indexed by sdk_retry_cause (see sdk_retry_rule). Defaults,
     * which are the behaviour before the policy existed: every cause {retry, min_ms 0, max_ms
     * -1} (the shared backoff), except SDK_RETRY_CERTIFICATE {retry, min_ms 1000, max_ms -1}
     * (a person must act: at least 1 s between attempts) and SDK_RETRY_REJECTED {stop}.
     * Bad values (min_ms < 0, 0 <= max_ms < min_ms) make sdk_connect fail with SDK_EINVAL. */
    sdk_retry_rule reconnect_policy[SDK_RETRY_CAUSES];

    /*
     * Several servers of one service (a cluster), instead of host and port or address (set
     * one of the three; host/port and address are a one-entry list). endpoints points to
     * endpoint_count strings, each "HOST:PORT" or "[IPv6]:PORT" (sdk_parse_address), 1 to 64
     * of them; sdk_connect copies them (the array and strings stay the caller's). NULL and 0:
     * none. A malformed entry makes sdk_connect fail with SDK_EINVAL, naming its index.
     *
     * Which endpoint an attempt goes to:
     *  - A host name counts as one endpoint per address it resolves to. It is resolved
     *    when its turn comes, so DNS changes are seen once per round.
     *  - The entries are tried in one random order per client (their addresses shuffled
     *    too), so clients spread over the servers; keep_endpoint_order keeps the order
     *    given (and the resolver's order of addresses), for a primary and its standbys.
     *  - Each attempt (one address) has its own connect_timeout_ms, as libpq's per host.
     *    After a failed attempt the next endpoint is tried at once; the reconnect policy's
     *    delay comes after a round, every endpoint failed once in a row. The client cycles
     *    through the rounds for as long as the policy allows: max_reconnect_attempts counts
     *    rounds, and sdk_connect without retry_on_first_connect fails after one round (so
     *    it may block up to the number of endpoints times connect_timeout_ms) with the last
     *    attempt's error; after a round over several, the detail starts "all N endpoint
     *    addresses failed; the last: ".
     *  - A lost connection is retried on the same endpoint first: without a shared session
     *    store only that server knows the session. After the server's Close with
     *    GOING_AWAY (a server stopping, sdk_server_stop), the next attempt goes to the next
     *    endpoint first. Another server that does not share the store answers
     *    SDK_EVENT_SESSION_LOST (the session's unacknowledged messages are sent again).
     *
     * TLS: each endpoint's host is checked against its certificate (servername, if set,
     * for every endpoint). A saved TLS session is offered to another endpoint only where its
     * certificate also covers that endpoint's name (a cluster's certificate naming its
     * nodes, or one servername); a server that does not know the ticket's key makes a full
     * handshake, which is no error. sdk_current_endpoint tells which endpoint is in use.
     */
    const char *const *endpoints;
    size_t endpoint_count;
    bool keep_endpoint_order; /* try the endpoints in the order given (default false: shuffled) */
} sdk_config;

/*
 * sdk_config_init(cfg): a macro, so that the size of the caller's sdk_config reaches the
 * library: it calls sdk_config_init_sized(cfg, sizeof(*(cfg))) and yields its sdk_err. Use
 * it on every sdk_config before setting fields (copying a whole initialised sdk_config is
 * fine; setting `size` by hand is not).
 */
#define sdk_config_init(cfg) sdk_config_init_sized((cfg), sizeof(*(cfg)))

/*
 * sdk_config_init_sized: fill the first size bytes of cfg with the defaults above (host
 * NULL, port 0, address and endpoints NULL), zero whatever lies beyond what this library
 * knows, and set cfg->size = size. Does not block; any thread; cfg is the caller's. Errors: SDK_EINVAL
 * (cfg NULL, or size smaller than the first sized layout, 0.2's: cfg is left untouched).
 * Programs call it through sdk_config_init; bindings call it with their struct's size.
 */
SDK_API sdk_err sdk_config_init_sized(sdk_config *cfg, size_t size);

/*
 * sdk_parse_address: split "HOST:PORT" or "[IPv6]:PORT" (the one address syntax of
 * sdk_config.address, sdk_server_config.listen, lifeline-cat --connect and lifeline-server
 * --listen) into host (NUL-terminated, brackets removed) and port. HOST is a name or an
 * IPv4 literal; an IPv6 literal must be bracketed ("::1:7443" is refused: it is itself an
 * address). PORT is decimal, 0 to 65535 (0 only makes sense for listening). Does not block
 * or resolve; any thread; buffers are the caller's. Errors: SDK_EINVAL (NULL argument,
 * malformed, port out of range, or host longer than hostlen - 1).
 */
SDK_API sdk_err sdk_parse_address(const char *address, char *host, size_t hostlen, uint16_t *port);

/* sdk_message.flags. SDK_MSG_REDELIVERED marks a message the application may have seen
 * before: a server resuming a session after its previous owner died (a session store with
 * sync "always", lifeline/store.h) flags every message that may have reached the dead
 * instance's application, and no other. Clients never see it set yet. Test it with
 * `flags & SDK_MSG_REDELIVERED`; ignore bits you do not know. */
#define SDK_MSG_REDELIVERED 0x1u

/* A received message, owned by whoever received it. All pointers stay valid until
 * sdk_message_free(). Only the library allocates one: programs hold the pointer and never
 * copy, embed or allocate an sdk_message, so fields can be appended (ABI rule). */
struct sdk_message {
    const uint8_t *data; /* payload (not NUL-terminated) */
    size_t len;          /* payload length */
    const char *type;    /* protobuf type name given by the sender, or NULL */
    uint64_t seq;        /* sequence number within the session (restarts at 1 in a new one) */
    uint64_t session;    /* server side: the client session it came from; client side: 0 */
    const char *peer;    /* server side: client certificate subject (mTLS), else NULL */
    uint32_t flags;      /* SDK_MSG_* bits (SDK_MSG_REDELIVERED) */
};

/* sdk_message_free: release a message from sdk_recv/sdk_server_recv. NULL is ignored.
 * Any thread. Messages of up to about 2 KiB are carved from shared 16 KiB blocks (one
 * allocation for many messages); a block is released with the last of its messages, so
 * holding one small message for long holds at most 16 KiB. */
SDK_API void sdk_message_free(sdk_message *msg);

typedef struct sdk_client sdk_client;

/*
 * sdk_connect: copy cfg, connect, and start the client's I/O thread on that connection.
 * Blocks until the first session is established (at most connect_timeout_ms per endpoint
 * address tried, see sdk_config.endpoints): the calling thread resolves, connects, makes
 * the TLS handshake (certificate and host name checked) and greets the server itself, so
 * that the handshake's transient memory is the caller's, not kept by each client's thread
 * (docs/tls.md, "Memory of an idle client"). Unless
 * cfg->retry_on_first_connect is set: then it returns SDK_OK at once and the I/O
 * thread keeps trying under the reconnect policy while sdk_send queues.
 * On SDK_OK *out is a client to release with sdk_close() then sdk_destroy().
 * Errors: SDK_EINVAL (missing host/port, address or endpoints, more than one given, a bad address, bad values,
 * cfg->size not from sdk_config_init, or a field this library does not know set; the
 * detail says which), SDK_ENOMEM, SDK_ERESOLVE (no address for host, or no answer from the
 * DNS servers within connect_timeout_ms: the detail names the host and c-ares' reason),
 * SDK_ECONNREFUSED, SDK_ECONNECT, SDK_ETIMEDOUT, SDK_ETLS, SDK_EPEERAUTH (certificate or host
 * name check failed), SDK_EPROTO, SDK_EREJECTED. sdk_close interrupts a resolution at once.
 * On failure *out is NULL and
 * sdk_last_connect_error() gives the detail.
 */
SDK_API sdk_err sdk_connect(const sdk_config *cfg, sdk_client **out);

/*
 * sdk_send: queue len bytes for delivery, in order, exactly once while the server runs.
 * The data is copied; the caller keeps its buffer. Returns once queued: it does not wait
 * for the network (see sdk_flush). While disconnected, messages queue. If the queue is
 * full, blocks up to timeout_ms for room.
 * Any thread. Errors: SDK_EINVAL (NULL client, NULL data with len > 0), SDK_ETOOBIG (larger
 * than max_frame or queue_max_bytes, or than the server's max_frame once its welcome has
 * told it; sdk_last_call_error says which, with the sizes), SDK_EQUEUEFULL (no room before
 * the timeout), SDK_ECLOSED, SDK_ENOMEM.
 */
SDK_API sdk_err sdk_send(sdk_client *c, const void *data, size_t len, int timeout_ms);

/* sdk_send_typed: sdk_send, labelling the payload with a type name (e.g. a protobuf full
 * name; NULL or "" for none). Same blocking, threads and errors. */
SDK_API sdk_err sdk_send_typed(sdk_client *c, const char *type, const void *data, size_t len, int timeout_ms);

/*
 * sdk_send_seq: sdk_send_typed (type NULL or "" for none) that also tells the message's
 * client sequence: on SDK_OK *seq (if seq is not NULL) is n when this is the n-th message
 * this client ever queued, counting from 1 over the client's whole life. It is not the
 * wire sequence (sdk_message.seq, which restarts when a session is lost and its messages
 * are renumbered): a client sequence never changes, so it can be handed to sdk_flush_to
 * whatever happened to the connection since. Messages are acknowledged in this order.
 * Same blocking, threads and errors as sdk_send; on any error *seq is 0.
 */
SDK_API sdk_err sdk_send_seq(sdk_client *c, const char *type, const void *data, size_t len, int timeout_ms,
                             uint64_t *seq);

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
 * the server's application (timeout_ms as above). Any thread but the client's callbacks.
 * Errors: SDK_EINVAL (NULL, or from a callback: acknowledgements come through the I/O
 * thread), SDK_ETIMEDOUT (while the client cannot connect, sdk_last_call_error and
 * sdk_last_error say why),
 * SDK_ECLOSED: always once the client is closed (sdk_close, or it gave up), even with
 * nothing left to acknowledge, and at once.
 */
SDK_API sdk_err sdk_flush(sdk_client *c, int timeout_ms);

/*
 * sdk_flush_to: wait until the message with client sequence seq (from sdk_send_seq), and
 * so every one before it, has been acknowledged by the server's application. seq 0 is
 * acknowledged from the start. Blocking, threads and errors as sdk_flush, plus SDK_EINVAL
 * for a seq this client has not queued yet.
 */
SDK_API sdk_err sdk_flush_to(sdk_client *c, uint64_t seq, int timeout_ms);

/* sdk_get_state: the client's current state (SDK_STATE_CLOSED for NULL). Any thread. */
SDK_API sdk_state sdk_get_state(sdk_client *c);

/* Client statistics. Every counter is the client's, for its whole life: reconnects and a
 * lost session (SDK_EVENT_SESSION_LOST, which renumbers the wire sequences) never reset or
 * lower one. queue_depth, queue_bytes, state and the rtt fields are current values. */
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
    uint64_t retransmits; /* data messages written again: after a reconnect, or in a new
                             session after SESSION_LOST */
    uint64_t duplicates_dropped;
    uint64_t queue_depth; /* messages waiting or unacknowledged */
    uint64_t queue_bytes;
    uint64_t acks_sent;     /* acknowledgement frames written (each covers many messages) */
    uint64_t acks_received; /* acknowledgement frames from the server */
} sdk_stats;

/* sdk_get_stats: snapshot of counters. Any thread. Errors: SDK_EINVAL. Works after close. */
SDK_API sdk_err sdk_get_stats(sdk_client *c, sdk_stats *out);

/*
 * sdk_current_endpoint: the endpoint the client is connected to, or while it is not, the
 * one it is trying or will try next. *index (may be NULL) gets its position in
 * sdk_config.endpoints as given (0 with host/port or address); address (may be NULL, else
 * always NUL-terminated) the "IP:PORT" or "[IPv6]:PORT" connected to or tried, "" before
 * its name is resolved. Any thread; never blocks; works after close (the last one used).
 * Errors: SDK_EINVAL (NULL client).
 */
SDK_API sdk_err sdk_current_endpoint(sdk_client *c, size_t *index, char *address, size_t addresslen);

/*
 * sdk_get_metrics: what sdk_get_stats counts, and the heartbeat round-trip histogram, in the
 * Prometheus text exposition format 0.0.4 (names lifeline_client_*, base units, counters
 * ending in _total), for a program that exposes its own metrics endpoint. On SDK_OK *text is
 * a NUL-terminated string of *len bytes owned by the caller, released with
 * sdk_metrics_free(). Takes the client's mutex briefly; any thread; works after close.
 * Errors: SDK_EINVAL, SDK_ENOMEM.
 */
SDK_API sdk_err sdk_get_metrics(sdk_client *c, char **text, size_t *len);

/* sdk_metrics_free: release text from sdk_get_metrics or sdk_server_metrics. NULL is
 * ignored. Any thread. */
SDK_API void sdk_metrics_free(char *text);

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
 * sdk_last_call_error: the detail of the calling thread's most recent failure that has
 * one, and its code: an SDK_ETOOBIG from a send (sdk_send*, sdk_server_send*) gives the
 * message's size, the limit it is over and whose limit it is, e.g. "a message of 70000
 * bytes makes a frame of up to 70020 bytes, over the server's max_frame of 65536 bytes";
 * an SDK_ETIMEDOUT from sdk_flush or sdk_flush_to while the client cannot connect gives
 * why, from sdk_last_error ("not connected: SDK_ECONNREFUSED: connect ...: Connection
 * refused"); a failed sdk_connect or sdk_server_start gives what sdk_last_connect_error
 * gives.
 * Other failures leave it as it was. Thread-local: other threads' calls never change it.
 * Copied into buf (always NUL-terminated). Any thread; never blocks; no errors of its own.
 */
SDK_API sdk_err sdk_last_call_error(char *buf, size_t buflen);

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

/*
 * sdk_fd: a file descriptor for event loops (libuv's uv_poll_t, GLib's g_unix_fd_add, your
 * own epoll or poll, Python's loop.add_reader), so that no thread has to sit blocked in
 * sdk_recv or sdk_flush. It becomes readable whenever a blocked caller would be woken: a
 * message arrived for sdk_recv, acknowledgements came (room in the send queue, progress for
 * sdk_flush and sdk_flush_to), the state changed, or the client closed (sdk_recv then
 * drains, then answers SDK_ECLOSED).
 *
 * The rule, which works with level- and edge-triggered polling alike:
 *   1. try the call first, with timeout_ms 0 (sdk_recv, sdk_send, sdk_flush, ...);
 *   2. only when it answers SDK_ETIMEDOUT (or SDK_EQUEUEFULL), wait for the fd to be readable;
 *   3. then read 8 bytes from it to reset it (it is non-blocking; EAGAIN means someone else
 *      did already) and go back to 1.
 * It is a hint, not a count: one readiness may stand for many messages, and what happened
 * before the first sdk_fd call is not signalled, hence step 1. On Linux it is an eventfd.
 *
 * The first call makes the descriptor; every call returns the same one. It belongs to the
 * client: do not close it; it stays valid until sdk_destroy. Until someone asks for it the
 * library makes no system call for it. Any thread; never blocks. Errors: SDK_EINVAL (c or
 * fd NULL), SDK_EIO (no descriptor could be made: errno says why, e.g. EMFILE).
 */
SDK_API sdk_err sdk_fd(sdk_client *c, int *fd);

/*
 * Introspection for bindings and loaders that mirror these structs (ctypes, cffi, another
 * language's FFI) instead of compiling against this header: they check at load time that
 * the library is the one they were written for, rather than misreading memory.
 *
 * sdk_version: the library's version, "MAJOR.MINOR.PATCH" (static string; "0.2.0" for this
 * release). Within one major version a newer library serves a program written for an older
 * one (docs/DEVELOPMENT.md, "ABI"). Any thread; never blocks; never fails.
 *
 * sdk_struct_size: sizeof the public struct called name ("sdk_config", "sdk_server_config",
 * "sdk_retry_rule", "sdk_event", "sdk_message", "sdk_stats", "sdk_session_event",
 * "sdk_session_info") as this library was compiled, or 0 for a name it does not know (or
 * NULL). A mirror of an output struct (all but the two configs) must have exactly this
 * size; a config mirror may be smaller or larger (the size rule: sdk_config_init_sized).
 * Any thread; never blocks.
 */
SDK_API const char *sdk_version(void);
SDK_API size_t sdk_struct_size(const char *name);

#ifdef __cplusplus
}
#endif

#endif
