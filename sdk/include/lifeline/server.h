/*
 * Lifeline server library: the other end of sdk.h, for applications to embed.
 *
 * Model. sdk_server_start() binds, then runs one I/O thread (epoll, non-blocking TLS;
 * io_threads of them to share the connections) that serves every client: handshakes,
 * heartbeats, acknowledgements, session resume, dead-client detection. Callbacks run on
 * one of them, one at a time. The application takes messages with sdk_server_recv() and
 * sends with sdk_server_send(), from any number of threads at once.
 *
 * Sessions. Each client holds one session, named by a 64-bit id. When its connection
 * drops, the session is kept ("detached") for session_ttl_ms so that the client can
 * resume it: messages in both directions are then neither lost nor duplicated. A
 * message counts as delivered to the application when sdk_server_recv() returns it (or,
 * with manual_ack, when the application calls sdk_server_ack()); the client is
 * acknowledged no earlier. With a session store (lifeline/store.h) sessions also outlive
 * the process.
 *
 * Timeouts and errors follow sdk.h.
 */
#ifndef LIFELINE_SERVER_H
#define LIFELINE_SERVER_H

#include <lifeline/sdk.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdk_server sdk_server;

/* Why a session's connection went away or the session ended. */
typedef enum sdk_cause {
    SDK_CAUSE_NONE = 0,
    SDK_CAUSE_RESET,             /* read/write error: reset, broken pipe, TLS failure */
    SDK_CAUSE_CLEAN_CLOSE,       /* the client closed (close frame or TCP FIN) */
    SDK_CAUSE_HEARTBEAT_TIMEOUT, /* nothing heard within the client's announced timeout */
    SDK_CAUSE_PROTOCOL_ERROR,    /* malformed or unexpected frame */
    SDK_CAUSE_OUTPUT_OVERFLOW,   /* the client stopped reading; output buffer bound hit */
    SDK_CAUSE_REPLACED,          /* the client resumed the session on a new connection */
    SDK_CAUSE_EXPIRED,           /* detached longer than session_ttl_ms */
    SDK_CAUSE_CLOSED_BY_APP,     /* sdk_server_close_session() */
    SDK_CAUSE_SERVER_STOP,       /* sdk_server_close() (or sdk_server_stop()) */
    SDK_CAUSE_TAKEN_OVER         /* another server took the session over from the store */
} sdk_cause;

/* sdk_cause_name: "none", "reset", "clean_close", "heartbeat_timeout", "protocol_error",
 * "output_overflow", "replaced", "expired", "closed_by_app", "server_stop", or "unknown"
 * (static string). Any thread. */
SDK_API const char *sdk_cause_name(int cause);

typedef enum sdk_session_event_type {
    SDK_SESSION_OPENED = 0, /* a new session was established */
    SDK_SESSION_RESUMED,    /* a detached session was taken up by a new connection */
    SDK_SESSION_DETACHED,   /* its connection went away (cause says why); kept for the TTL */
    SDK_SESSION_EXPIRED,    /* detached past the TTL: freed, undelivered messages dropped */
    SDK_SESSION_CLOSED,     /* ended for good (close_session, server stop) */
    /* 0.2: events of the server itself (session 0, peer_addr "", detail says more) */
    SDK_SERVER_TLS_RELOADED,       /* sdk_server_reload_tls succeeded: new handshakes use the new files */
    SDK_SERVER_TLS_RELOAD_FAILED,  /* it failed (detail: why); the previous context stays in use */
    SDK_SERVER_CONNECTIONS_REFUSED /* admission control refused new connections (detail: how many,
                                      which limit; peer_addr: the last one) */
} sdk_session_event_type;

/* sdk_session_event_name: "opened", "resumed", "detached", "expired", "closed",
 * "tls_reloaded", "tls_reload_failed", "connections_refused", or "unknown" (static string).
 * Any thread. */
SDK_API const char *sdk_session_event_name(int type);

typedef struct sdk_session_event {
    sdk_session_event_type type;
    uint64_t session;
    sdk_cause cause;
    const char *peer_addr; /* "ip:port" of the connection, valid during the callback */
    /* ---- 0.2 ---- */
    const char *detail; /* server events: what happened or why it failed; "" otherwise; valid
                           during the callback */
} sdk_session_event;

/* Called on the server's I/O thread: it must return quickly. sdk_server_close() returns
 * SDK_EINVAL there and sends do not wait for room; other sdk_server_* calls are allowed. */
typedef void (*sdk_server_event_fn)(const sdk_session_event *event, void *user);

/* When a server with a session store writes its sessions there (lifeline/store.h). */
typedef enum sdk_store_sync {
    SDK_STORE_SYNC_HANDOVER = 0, /* when a connection detaches, at takeover and at a graceful stop */
    SDK_STORE_SYNC_ALWAYS = 1,   /* also before anything leaves: acks, data and deliveries wait for
                                    the store, in batches, so a killed server loses nothing */
} sdk_store_sync;

/* Server configuration: the same ABI rule as sdk_config (sdk.h): `size` first, set by
 * sdk_server_config_init; fields only appended; 0 means the default for fields after 0.1. */
typedef struct sdk_server_config {
    size_t size; /* sizeof(sdk_server_config) as the program saw it: set by sdk_server_config_init */

    const char *listen;         /* "HOST:PORT", "[v6]:PORT"; port 0 picks one (default "127.0.0.1:7443") */
    const char *cert_file;      /* server certificate chain, PEM (required) */
    const char *key_file;       /* its private key, PEM (required) */
    const char *client_ca_file; /* if set, clients must present a certificate from these CAs */
    uint32_t max_frame;         /* largest frame accepted or sent (default 16 MiB) */
    int handshake_timeout_ms;   /* TLS handshake + hello (default 10000) */
    int heartbeat_min_ms;       /* clamp for the timeout a client announces (default 1000) */
    int heartbeat_max_ms;       /* (default 300000) */
    int session_ttl_ms;         /* how long a detached session waits for resume (default 60000) */
    size_t queue_max_messages;  /* per session: messages waiting or unacknowledged (default 65536) */
    size_t queue_max_bytes;     /* per session: their payload bytes (default 64 MiB) */
    uint32_t window_messages;   /* per session in flight (default 16384) */
    uint64_t window_bytes;      /* (default 16 MiB) */
    size_t max_output_bytes;    /* per connection encoded-but-unwritten bytes beyond one max_frame;
                                   a client that lets more pile up is dropped (default 4 MiB) */
    sdk_server_event_fn on_event;
    void *user;                /* passed to on_event and on_message */
    sdk_message_fn on_message; /* optional: deliver on the I/O thread (see sdk_message_fn in
                                  sdk.h); sdk_server_send from it answers at once */

    /* ---- 0.2 ---- (new fields go below, see docs/DEVELOPMENT.md) */
    struct sdk_store *store;   /* sessions outlive the process in this store (lifeline/store.h:
                                sdk_store_open, and "handover" there); NULL: in memory only.
                                The caller's: close it after sdk_server_destroy */
    sdk_store_sync store_sync; /* with a store: when sessions are written (default HANDOVER) */
    bool manual_ack;           /* messages are acknowledged by sdk_server_ack, not when taken: an
                                  application acks after its own commit (default false) */
    /* With a store: how long each shared TLS ticket key seals new tickets (lifeline/store.h,
     * "Ticket keys"); at least 1000 (default 12 h, 43200000). */
    uint64_t ticket_key_rotation_ms;
    /* With a store: ticket keys accepted at once, the current one, the next one and those
     * before them; 2-8 (default 3). */
    uint32_t ticket_keys_live;
    /* Admission control: a new connection over one of these limits is closed as soon as it
     * is accepted, before any TLS work, counted (lifeline_connections_refused_total{reason})
     * and reported (SDK_SERVER_CONNECTIONS_REFUSED, at most once a second per limit), while
     * established clients carry on. SDK_UNLIMITED lifts a limit. */
    uint32_t max_connections;           /* open connections, handshaking ones included (default 20000) */
    uint32_t max_handshakes;            /* connections in their TLS handshake at once (default 1000); at the
                                           limit one stalled over 500 ms is dropped to make room */
    uint32_t connect_rate_per_address;  /* new connections per second from one source address, with
                                          bursts of up to connect_burst_per_address (default 200) */
    uint32_t connect_burst_per_address; /* (default 400) */
    /* Lame duck: sdk_server_close spreads its GOING_AWAY over this many ms instead of telling
     * every client at once, so that their reconnects (to the other instances, with a store)
     * do not all land together. Meanwhile the listener is closed, clients not yet told are
     * served as usual (sdk_server_recv keeps returning their messages), and each client,
     * when its turn comes, gets what its window allows, has its session handed over to the
     * store (a told session takes no more sdk_server_send: SDK_ENOTFOUND), then GOING_AWAY.
     * At most 600000; 0 (the default): everyone at once. */
    uint32_t lame_duck_ms;
    /* With a store: how long a resume of a session that another live instance holds waits for
     * that instance to write it and let go (lifeline/store.h, "Takeover"); after that the
     * session resumes from what the store has. The I/O thread waits meanwhile, so keep it
     * small: 0 to SDK_TAKEOVER_TIMEOUT_MAX_MS (default 500; 0 means the default). */
    int takeover_timeout_ms;
    /* I/O threads: each serves its share of the connections, their TLS handshakes and
     * records (accepted connections go round-robin; a resumed session's connection moves
     * to the thread serving the session). Callbacks (on_event, on_message) still run on one
     * of them only, one at a time, in order, as with one; sdk_server_send and the rest work
     * from any thread as before. 0: one per online CPU, at most 8; at most
     * SDK_IO_THREADS_MAX (default 1), with or without a store. */
    uint32_t io_threads;
} sdk_server_config;

/* The largest sdk_server_config.takeover_timeout_ms. */
#define SDK_TAKEOVER_TIMEOUT_MAX_MS 10000
/* The largest sdk_server_config.io_threads. */
#define SDK_IO_THREADS_MAX 64

/* A limit of sdk_server_config that does not apply. */
#define SDK_UNLIMITED UINT32_MAX

/* sdk_server_config_init(cfg): a macro passing the size of the caller's struct, as
 * sdk_config_init: it calls sdk_server_config_init_sized(cfg, sizeof(*(cfg))). */
#define sdk_server_config_init(cfg) sdk_server_config_init_sized((cfg), sizeof(*(cfg)))

/*
 * sdk_server_config_init_sized: fill the first size bytes of cfg with the defaults above,
 * zero whatever lies beyond what this library knows, and set cfg->size = size. Does not
 * block; any thread. Errors: SDK_EINVAL (cfg NULL, or size smaller than 0.2's layout: cfg
 * is left untouched).
 */
SDK_API sdk_err sdk_server_config_init_sized(sdk_server_config *cfg, size_t size);

/*
 * sdk_server_start: load the certificates, bind and listen, start the I/O thread.
 * Returns once listening; blocks only on file and socket setup. Any thread. cfg and its
 * strings are copied. On SDK_OK *out is a server to release with sdk_server_close() then
 * sdk_server_destroy(). Errors: SDK_EINVAL (missing cert/key, bad listen address, cfg->size
 * not from sdk_server_config_init, or a field this library does not know set), SDK_ETLS
 * (unreadable certificate or key), SDK_ELISTEN (bind/listen failed, e.g. address in use),
 * SDK_EIO, SDK_ENOMEM. On failure *out is NULL and sdk_server_last_start_error() gives the
 * detail (sdk_last_connect_error() too, for programs written against 0.1).
 */
SDK_API sdk_err sdk_server_start(const sdk_server_config *cfg, sdk_server **out);

/*
 * sdk_server_ticket_keys: where the server's TLS session ticket keys come from. SDK_OK: from
 * its store, shared with every server on that store (lifeline/store.h "Ticket keys"), the
 * latest fetch succeeded. SDK_ENOTFOUND: no store, OpenSSL's keys of this process. Otherwise
 * the error of the latest fetch from the store, which failed: the keys already held stay in
 * use (if the store never answered, a key of this process only: tickets resume here, not
 * elsewhere), and the detail says so. The detail goes NUL-terminated into buf (buflen bytes;
 * buf may be NULL); it never contains a key. Does not block. Any thread. SDK_EINVAL for NULL.
 */
SDK_API sdk_err sdk_server_ticket_keys(sdk_server *srv, char *buf, size_t buflen);

/* sdk_server_last_start_error: the detail of the calling thread's most recent
 * sdk_server_start() that failed (e.g. "bad listen address ..."), copied into buf (always
 * NUL-terminated; buf may be NULL), or "" if none; returns its sdk_err code. Any thread. */
SDK_API sdk_err sdk_server_last_start_error(char *buf, size_t buflen);

/* sdk_server_port: the bound TCP port (useful after listening on port 0). */
SDK_API uint16_t sdk_server_port(sdk_server *srv);

/*
 * sdk_server_recv: take the next message from any client, waiting up to timeout_ms.
 * msg->session names its session, msg->peer the client certificate subject (mTLS).
 * Returning it is what acknowledges it to the client, unless manual_ack is set (then
 * sdk_server_ack does). msg->flags has SDK_MSG_REDELIVERED if a previous owner of the
 * session, which died, may have delivered it already (sdk.h). Any thread.
 * Errors: SDK_EINVAL (also when cfg.on_message takes the messages), SDK_ETIMEDOUT,
 * SDK_ECLOSED (the server is stopping and every message it will deliver has been taken:
 * during sdk_server_close's drain not before the last one, under sync "always" including
 * those read before the stop that the store held only after it).
 */
SDK_API sdk_err sdk_server_recv(sdk_server *srv, sdk_message **out, int timeout_ms);

/*
 * sdk_server_ack: with manual_ack, acknowledge every message of session up to seq (from
 * its sdk_message): the client frees them, and (sync "always") the store records them as
 * delivered before the acknowledgement leaves. Call it once a message is safe in the
 * application (its effect committed); a message never acknowledged is sent again if its
 * session moves to another server. Acknowledging less than before changes nothing. Does
 * not block beyond the server's lock. Any thread, on_message callbacks included.
 * Errors: SDK_EINVAL (NULL srv, a server without manual_ack, or seq beyond what the
 * session received), SDK_ENOTFOUND (no such session, or it is gone).
 */
SDK_API sdk_err sdk_server_ack(sdk_server *srv, uint64_t session, uint64_t seq);

/*
 * sdk_server_store_status: whether the server's writes to its session store go through:
 * SDK_OK (no store, nothing written yet, or the last batch of writes went through), else the
 * error of the last batch, which failed (SDK_ETIMEDOUT, SDK_ECONNREFUSED, ...), with the
 * store's detail in detail (len bytes, NUL-terminated; may be NULL). *failures (may be NULL)
 * gets how many batches have failed so far. While it fails, writes are retried with backoff
 * (lifeline/store.h, "The store unreachable"). Takes the server's lock briefly; any thread.
 * Errors beyond those: SDK_EINVAL (NULL srv).
 */
SDK_API sdk_err sdk_server_store_status(sdk_server *srv, char *detail, size_t len, uint64_t *failures);

/*
 * sdk_server_fd: the server's descriptor for event loops, as sdk_fd (sdk.h) is the client's,
 * with the same rule (try with timeout_ms 0, wait for readable, read 8 bytes, try again).
 * Readable whenever a blocked caller would be woken: a message for sdk_server_recv, room
 * in a session's queue, a session gone (its senders get SDK_ENOTFOUND), or the server
 * stopped. Belongs to the server, valid until sdk_server_destroy. Any thread; never blocks.
 * Errors: SDK_EINVAL (srv or fd NULL), SDK_EIO (no descriptor could be made).
 */
SDK_API sdk_err sdk_server_fd(sdk_server *srv, int *fd);

/*
 * sdk_server_send: queue a message for one session, delivered in order exactly once
 * while the session lives, including across the client's reconnects. Copies data.
 * Blocks up to timeout_ms while the session's queue is full. Any thread.
 * Errors: SDK_EINVAL, SDK_ENOTFOUND (no such session, or it expired/closed), SDK_ETOOBIG
 * (over max_frame or queue_max_bytes, or over the max_frame the client announced;
 * sdk_last_call_error says which, with the sizes),
 * SDK_EQUEUEFULL, SDK_ECLOSED (server stopped), SDK_ENOMEM.
 */
SDK_API sdk_err sdk_server_send(sdk_server *srv, uint64_t session, const void *data, size_t len, int timeout_ms);

/* sdk_server_send_typed: sdk_server_send with a payload type name (NULL or "" for none). */
SDK_API sdk_err sdk_server_send_typed(sdk_server *srv, uint64_t session, const char *type, const void *data, size_t len,
                                      int timeout_ms);

/*
 * sdk_server_reply: queue data (type NULL or "" for none) to session and, with manual_ack,
 * acknowledge its messages up to ack_seq in the same step (0: none; a request's reply passes
 * the request's seq). Under sync "always" the store then holds the reply and the
 * acknowledgement together or neither, so a request is answered exactly once across a
 * server's crash: it comes again (flagged SDK_MSG_REDELIVERED) only if its reply did not
 * survive. Blocks and errors as sdk_server_send, and SDK_EINVAL for an ack_seq without
 * manual_ack or beyond what the session received; on an error nothing is queued or
 * acknowledged.
 */
SDK_API sdk_err sdk_server_reply(sdk_server *srv, uint64_t session, uint64_t ack_seq, const char *type,
                                 const void *data, size_t len, int timeout_ms);

/*
 * sdk_server_close_session: end a session. The client gets a close frame with reason;
 * if reconnect_allowed is false it stops retrying and reports SDK_EREJECTED with reason.
 * Undelivered messages to it are dropped. Does not block. Errors: SDK_EINVAL, SDK_ENOTFOUND.
 */
SDK_API sdk_err sdk_server_close_session(sdk_server *srv, uint64_t session, const char *reason, bool reconnect_allowed);

typedef enum sdk_session_state {
    SDK_SESSION_STATE_CONNECTED = 0,
    SDK_SESSION_STATE_DETACHED /* connection lost, awaiting resume until the TTL */
} sdk_session_state;

/* sdk_session_state_name: "connected", "detached", or "unknown" (static string). Any thread. */
SDK_API const char *sdk_session_state_name(int state);

typedef struct sdk_session_info {
    uint64_t id;
    sdk_session_state state;
    char peer_addr[64];          /* "ip:port" of the current or last connection */
    char peer_identity[256];     /* client certificate subject, "" without mTLS */
    uint64_t connected_since_ms; /* wall clock (ms since the epoch) of the current connection */
    uint64_t last_heard_ms;      /* wall clock of the last bytes received */
    uint64_t rtt_smoothed_us;    /* from the client's pings; 0 before the first */
    uint32_t missed_heartbeats;  /* whole heartbeat intervals of silence so far */
    sdk_cause last_cause;        /* why the last connection went away (NONE if never) */
    uint64_t queued;             /* messages to the client not yet written */
    uint64_t unacked;            /* messages to the client written, not yet acknowledged */
    uint64_t received;           /* messages accepted from the client */
    uint64_t connections;        /* connections this session has had (1 + resumes) */
} sdk_session_info;

/*
 * sdk_server_sessions: snapshot of every session. On SDK_OK *out is an array of *count
 * entries owned by the caller, released with sdk_sessions_free() (NULL when count is 0).
 * Takes the server's mutex briefly; any thread. Errors: SDK_EINVAL, SDK_ENOMEM, SDK_ECLOSED.
 */
SDK_API sdk_err sdk_server_sessions(sdk_server *srv, sdk_session_info **out, size_t *count);

/* sdk_sessions_free: release an array from sdk_server_sessions(). NULL is ignored. Any
 * thread. (Programs written against 0.1 call free() on it, which stays valid.) */
SDK_API void sdk_sessions_free(sdk_session_info *sessions);

/*
 * sdk_server_metrics: the server's metrics in the Prometheus text exposition format 0.0.4
 * (names prefixed lifeline_, base units, counters ending in _total; docs/server.md lists
 * them): sessions by state, connections, handshakes, messages and bytes each way, acks,
 * retransmits, session events, detaches by cause, the heartbeat round-trip histogram, queue
 * depths, output-buffer drops, admission refusals, TLS reloads and the certificate's expiry.
 * Counters are exact: every message accepted from or written to a client is counted once.
 * On SDK_OK *text is a NUL-terminated string of *len bytes owned by the caller, released
 * with sdk_metrics_free(). Takes the server's mutex briefly; any thread, also after
 * sdk_server_close (until sdk_server_destroy). Errors: SDK_EINVAL, SDK_ENOMEM.
 */
SDK_API sdk_err sdk_server_metrics(sdk_server *srv, char **text, size_t *len);

/*
 * sdk_server_reload_tls: read cert_file, key_file and client_ca_file (as configured) again
 * and build a new TLS context from them. On success every new handshake uses it, while
 * connections already established carry on untouched and clients resuming a TLS ticket
 * issued before still resume. On failure (a file missing or unreadable, a key that is not
 * the certificate's) the context in use stays. Either way the outcome is counted
 * (lifeline_tls_reloads_total) and reported to on_event as SDK_SERVER_TLS_RELOADED or
 * SDK_SERVER_TLS_RELOAD_FAILED with the reason in detail; the reason is also copied into
 * err (NUL-terminated; may be NULL). Blocks on file I/O only, never on the I/O thread; any
 * thread, callbacks included. Errors: SDK_EINVAL, SDK_ETLS (with the reason), SDK_ENOMEM,
 * SDK_ECLOSED (the server is stopping).
 */
SDK_API sdk_err sdk_server_reload_tls(sdk_server *srv, char *err, size_t errlen);

/*
 * sdk_server_close: graceful stop, the server's sdk_close. Sends a close frame (GOING_AWAY)
 * to every client, flushes for at most about one second, closes every connection and the
 * listener, stops the I/O thread, and wakes blocked callers with SDK_ECLOSED. Blocks until
 * the I/O thread has exited: with lame_duck_ms, after that window (clients told one by one
 * over it) and then the usual second at most. The handle stays valid until sdk_server_destroy(). Any thread
 * but the server's own callbacks; idempotent. Errors: SDK_EINVAL (NULL, or called from a
 * callback: it would wait for its own thread).
 */
SDK_API sdk_err sdk_server_close(sdk_server *srv);

/* sdk_server_stop: the 0.1 name of sdk_server_close, kept (same behaviour, same errors);
 * deprecated, new code calls sdk_server_close. */
SDK_API sdk_err sdk_server_stop(sdk_server *srv);

/* sdk_server_destroy: close if needed, then free everything. NULL is ignored, and so is a
 * call from one of the server's callbacks (it would free the server under its I/O thread). */
SDK_API void sdk_server_destroy(sdk_server *srv);

/*
 * sdk_dev_certs: for development and tests only. If dir lacks them, create a throwaway CA
 * (ca.pem, ca.key), a server certificate for localhost, 127.0.0.1 and ::1 (server.pem,
 * server.key) and a client certificate (client.pem, client.key), creating dir if needed;
 * existing files are kept. Blocks on file I/O. Any thread. Errors: SDK_EIO, SDK_ETLS, with
 * the detail written to err (NUL-terminated, may be NULL).
 */
SDK_API sdk_err sdk_dev_certs(const char *dir, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
