/*
 * The server's metrics (sdk_server_metrics in server.h). The I/O thread counts events as
 * they happen into lock-free counters; what lives in sessions (messages, bytes, acks,
 * queues) is summed over the live sessions under the server's mutex at scrape time, plus
 * what sessions that ended had counted ("retired", also under the mutex), so every counter
 * is exact and never goes back.
 */
#ifndef LL_SERVER_METRICS_H
#define LL_SERVER_METRICS_H

#include "lifeline/server.h"
#include "metrics.h"
#include "session.h"

#include <stdbool.h>

#define LL_CAUSES         (SDK_CAUSE_SERVER_STOP + 1)
#define LL_SESSION_EVENTS (SDK_SESSION_CLOSED + 1)

/* Why admission control refused a new connection (server_admit.c). */
typedef enum {
    LL_REFUSED_MAX_CONNECTIONS = 0,
    LL_REFUSED_MAX_HANDSHAKES,
    LL_REFUSED_RATE,
    LL_REFUSED_REASONS
} ll_refusal;

/* How a takeover this instance asked for ended (server_takeover.c), and the ones it served. */
typedef enum {
    LL_TAKEOVER_RELEASED = 0, /* the owner wrote the session and let go */
    LL_TAKEOVER_OWNER_GONE,   /* nobody listened on the owner's channel: resumed from the store */
    LL_TAKEOVER_TIMED_OUT,    /* the owner did not answer within takeover_timeout_ms */
    LL_TAKEOVER_FAILED,       /* the request could not be published (the store failed) */
    LL_TAKEOVER_SERVED,       /* another instance asked us, and we let a session go */
    LL_TAKEOVER_OUTCOMES
} ll_takeover_outcome;

/* What the reliable streams of sessions counted (session.h). */
typedef struct ll_stream_totals {
    uint64_t msgs_sent, bytes_sent, retransmits;
    uint64_t msgs_received, bytes_received, duplicates;
    uint64_t acks_sent, acks_received;
} ll_stream_totals;

void ll_stream_totals_add(ll_stream_totals *t, const ll_session *s);

typedef struct ll_server_metrics {
    ll_counter connections_accepted;
    ll_counter connections_open; /* gauge: every phase, handshaking included */
    ll_counter refused[LL_REFUSED_REASONS];
    ll_counter handshakes_in_progress; /* gauge */
    ll_counter handshakes_full, handshakes_resumed, handshakes_failed, handshakes_evicted;
    ll_counter session_events[LL_SESSION_EVENTS];
    ll_counter detaches[LL_CAUSES];
    ll_counter output_drops;
    ll_counter takeovers[LL_TAKEOVER_OUTCOMES];
    ll_counter tls_reloads_ok, tls_reloads_failed;
    ll_counter cert_not_after_s; /* gauge: of the certificate in use (0: unknown) */
    ll_histogram rtt;            /* the round trips clients report in their pings */
    ll_counter drain_ms;         /* gauge: how long the last stop's drain took (server_stop.c) */
    ll_counter drain_timeouts;   /* drains that ran to LL_SERVER_DRAIN_MS */
    ll_counter linger_ms;        /* gauge: how long the last stop waited for its clients to hang up */
    ll_stream_totals retired;    /* under the server's mutex: what sessions that ended counted */
} ll_server_metrics;

/* Under the server's mutex: s is about to be freed; keep what it counted. */
void ll_server_metrics_retire(ll_server_metrics *m, const ll_session *s);
/* A session event (and, for a detach, its cause). Any thread, lock-free. */
void ll_server_count_event(ll_server_metrics *m, sdk_session_event_type type, sdk_cause cause);

/* I/O thread: the connection counts from accept to close, and is handshaking until
 * ll_server_metrics_handshake_done (a close before that counts as a failed handshake). */
struct srv_conn;
struct sdk_server;
void ll_server_metrics_conn_opened(struct sdk_server *srv, struct srv_conn *conn);
void ll_server_metrics_handshake_done(struct sdk_server *srv, struct srv_conn *conn, bool ok);
void ll_server_metrics_conn_closed(struct sdk_server *srv, struct srv_conn *conn);
/* I/O thread, after a batch of frames: the round trips its new pings reported. */
void ll_server_metrics_pings(struct sdk_server *srv, struct srv_conn *conn);

#endif
