/* The server's metrics in the Prometheus text format (sdk_server_metrics; server_metrics.h). */
#include "server_impl.h"

#include "ll.h"
#include "net.h"

#include <stdlib.h>

void ll_stream_totals_add(ll_stream_totals *t, const ll_session *s)
{
    t->msgs_sent += s->msgs_sent;
    t->bytes_sent += s->bytes_sent;
    t->retransmits += s->retransmits;
    t->msgs_received += s->msgs_received;
    t->bytes_received += s->bytes_received;
    t->duplicates += s->duplicates;
    t->acks_sent += s->acks_sent;
    t->acks_received += s->acks_received;
}

void ll_server_metrics_retire(ll_server_metrics *m, const ll_session *s)
{
    ll_stream_totals_add(&m->retired, s);
}

void ll_server_count_event(ll_server_metrics *m, sdk_session_event_type type, sdk_cause cause)
{
    if ((unsigned)type < LL_SESSION_EVENTS) {
        ll_counter_add(&m->session_events[type], 1);
    }
    if (type == SDK_SESSION_DETACHED && (unsigned)cause < LL_CAUSES) {
        ll_counter_add(&m->detaches[cause], 1);
    }
}

void ll_server_metrics_conn_opened(sdk_server *srv, srv_conn *conn)
{
    ll_counter_add(&srv->metrics.connections_accepted, 1);
    ll_counter_add(&srv->metrics.connections_open, 1);
    ll_counter_add(&srv->metrics.handshakes_in_progress, 1);
    conn->handshaking = true; /* tracked by the loop that adopts it */
    conn->accepted_ms = ll_now_ms();
}

void ll_server_metrics_handshake_done(sdk_server *srv, srv_conn *conn, bool ok)
{
    if (!conn->handshaking) {
        return;
    }
    conn->handshaking = false;
    ll_server_admit_untrack(conn->loop, conn);
    ll_server_metrics *m = &srv->metrics;
    ll_counter_sub(&m->handshakes_in_progress, 1);
    if (!ok) {
        ll_counter_add(&m->handshakes_failed, 1);
    } else if (ll_tls_resumed(conn->link.tls)) {
        ll_counter_add(&m->handshakes_resumed, 1);
    } else {
        ll_counter_add(&m->handshakes_full, 1);
    }
}

void ll_server_metrics_conn_closed(sdk_server *srv, srv_conn *conn)
{
    ll_server_metrics_handshake_done(srv, conn, false);
    ll_counter_sub(&srv->metrics.connections_open, 1);
}

void ll_server_metrics_pings(sdk_server *srv, srv_conn *conn)
{
    /* One observation per batch: two pings in one read are a burst after a stall, and the
     * later report is the one that describes the link now. */
    if (conn->link.conn.pings_received != conn->pings_counted) {
        conn->pings_counted = conn->link.conn.pings_received;
        ll_histogram_observe(&srv->metrics.rtt, conn->link.conn.peer_rtt_us);
    }
}

/* What the sessions count, live and retired, read under mu as one snapshot. */
typedef struct session_totals {
    ll_stream_totals stream;
    uint64_t connected, detached;
    uint64_t queued, queued_bytes, unacked;
    uint64_t inbox;
} session_totals;

static void add_session(void *val, void *arg)
{
    const srv_session *ss = val;
    session_totals *t = arg;
    const ll_session *s = &ss->s;
    ll_stream_totals_add(&t->stream, s);
    t->connected += ss->conn != NULL;
    t->detached += ss->conn == NULL;
    t->queued += s->sendq.count - s->sendq.copied;
    t->unacked += s->sendq.copied;
    t->queued_bytes += s->sendq.bytes;
}

static void sum_sessions(sdk_server *srv, session_totals *t)
{
    pthread_mutex_lock(&srv->mu);
    *t = (session_totals){.stream = srv->metrics.retired, .inbox = srv->inbox.count};
    ll_store_each(&srv->sessions, add_session, t);
    pthread_mutex_unlock(&srv->mu);
}

static void write_streams(ll_prom *p, const session_totals *t)
{
    const ll_stream_totals *st = &t->stream;
    ll_prom_counter(p, "lifeline_messages_received_total", "Data messages accepted from clients (duplicates excluded).",
                    st->msgs_received);
    ll_prom_counter(p, "lifeline_received_bytes_total", "Payload bytes of the messages accepted from clients.",
                    st->bytes_received);
    ll_prom_counter(p, "lifeline_messages_sent_total", "Data messages written to clients, retransmissions included.",
                    st->msgs_sent);
    ll_prom_counter(p, "lifeline_sent_bytes_total", "Payload bytes of the messages written to clients.",
                    st->bytes_sent);
    ll_prom_counter(p, "lifeline_retransmits_total", "Data messages written again after a client resumed.",
                    st->retransmits);
    ll_prom_counter(p, "lifeline_duplicates_dropped_total", "Data messages from clients dropped as duplicates.",
                    st->duplicates);
    ll_prom_counter(p, "lifeline_acks_sent_total", "Acknowledgement frames written to clients.", st->acks_sent);
    ll_prom_counter(p, "lifeline_acks_received_total", "Acknowledgement frames received from clients.",
                    st->acks_received);
    ll_prom_family(p, "lifeline_sessions", "gauge", "Sessions by state.");
    ll_prom_labeled(p, "lifeline_sessions", "state", "connected", t->connected);
    ll_prom_labeled(p, "lifeline_sessions", "state", "detached", t->detached);
    ll_prom_gauge(p, "lifeline_queued_messages", "Messages to clients not yet written.", t->queued);
    ll_prom_gauge(p, "lifeline_unacked_messages", "Messages to clients written, not yet acknowledged.", t->unacked);
    ll_prom_gauge(p, "lifeline_queued_bytes", "Payload bytes of the messages to clients, queued or unacknowledged.",
                  t->queued_bytes);
    ll_prom_gauge(p, "lifeline_inbox_messages", "Messages from clients waiting for sdk_server_recv.", t->inbox);
}

static void write_connections(ll_prom *p, const ll_server_metrics *m)
{
    static const char *const refusals[LL_REFUSED_REASONS] = {"max_connections", "max_handshakes", "rate"};
    ll_prom_counter(p, "lifeline_connections_accepted_total", "TCP connections accepted.",
                    ll_counter_get(&m->connections_accepted));
    ll_prom_gauge(p, "lifeline_connections", "Open client connections, handshaking ones included.",
                  ll_counter_get(&m->connections_open));
    ll_prom_family(p, "lifeline_connections_refused_total", "counter",
                   "New connections refused by admission control, by limit.");
    for (int i = 0; i < LL_REFUSED_REASONS; i++) {
        ll_prom_labeled(p, "lifeline_connections_refused_total", "reason", refusals[i], ll_counter_get(&m->refused[i]));
    }
    ll_prom_gauge(p, "lifeline_handshakes_in_progress", "TLS handshakes under way.",
                  ll_counter_get(&m->handshakes_in_progress));
    ll_prom_family(p, "lifeline_handshakes_total", "counter", "Completed TLS handshakes, by kind.");
    ll_prom_labeled(p, "lifeline_handshakes_total", "kind", "full", ll_counter_get(&m->handshakes_full));
    ll_prom_labeled(p, "lifeline_handshakes_total", "kind", "resumed", ll_counter_get(&m->handshakes_resumed));
    ll_prom_counter(p, "lifeline_handshake_failures_total", "TLS handshakes that failed, timed out or were evicted.",
                    ll_counter_get(&m->handshakes_failed));
    ll_prom_counter(p, "lifeline_handshakes_evicted_total",
                    "Stalled handshakes dropped to make room for a new connection (max_handshakes).",
                    ll_counter_get(&m->handshakes_evicted));
    ll_prom_counter(p, "lifeline_output_buffer_drops_total",
                    "Connections dropped because the client let output pile up (max_output_bytes).",
                    ll_counter_get(&m->output_drops));
}

static void write_sessions(ll_prom *p, const ll_server_metrics *m)
{
    ll_prom_family(p, "lifeline_session_events_total", "counter", "Session life-cycle events, by event.");
    for (int i = 0; i < LL_SESSION_EVENTS; i++) {
        ll_prom_labeled(p, "lifeline_session_events_total", "event", sdk_session_event_name(i),
                        ll_counter_get(&m->session_events[i]));
    }
    ll_prom_family(p, "lifeline_detaches_total", "counter", "Sessions whose connection went away, by cause.");
    for (int i = 1; i < LL_CAUSES; i++) {
        ll_prom_labeled(p, "lifeline_detaches_total", "cause", sdk_cause_name(i), ll_counter_get(&m->detaches[i]));
    }
    ll_prom_histogram(p, "lifeline_heartbeat_rtt_seconds", "Smoothed round trips that clients report in their pings.",
                      &m->rtt);
}

static void write_tls(ll_prom *p, const ll_server_metrics *m)
{
    ll_prom_family(p, "lifeline_tls_reloads_total", "counter", "TLS context reloads, by result.");
    ll_prom_labeled(p, "lifeline_tls_reloads_total", "result", "success", ll_counter_get(&m->tls_reloads_ok));
    ll_prom_labeled(p, "lifeline_tls_reloads_total", "result", "failure", ll_counter_get(&m->tls_reloads_failed));
    ll_prom_gauge(p, "lifeline_tls_certificate_not_after_timestamp_seconds",
                  "When the server certificate in use expires (Unix time).", ll_counter_get(&m->cert_not_after_s));
}

/* The graceful stop's drain: how long the last one took, and how many waited out the bound. */
static void write_stop(ll_prom *p, const ll_server_metrics *m)
{
    ll_prom_gauge_ms(p, "lifeline_stop_drain_seconds",
                     "How long the last graceful stop's drain took (0 before a stop).", ll_counter_get(&m->drain_ms));
    ll_prom_counter(p, "lifeline_stop_drain_timeouts_total",
                    "Graceful stops whose drain ran to its bound (1 s) instead of ending when done.",
                    ll_counter_get(&m->drain_timeouts));
    ll_prom_gauge_ms(p, "lifeline_stop_linger_seconds",
                     "How long the last graceful stop waited, after GOING_AWAY, for its clients to hang up.",
                     ll_counter_get(&m->linger_ms));
}

/* With a store: its health as the server's writes see it (sdk_server_store_status). */
static void write_store(ll_prom *p, sdk_server *srv)
{
    uint64_t failures = 0;
    bool up = sdk_server_store_status(srv, NULL, 0, &failures) == SDK_OK;
    ll_prom_gauge(p, "lifeline_store_up", "1 while the last batch of writes to the session store went through.", up);
    ll_prom_counter(p, "lifeline_store_write_failures_total", "Batches of writes to the session store that failed.",
                    failures);
    static const char *const outcomes[LL_TAKEOVER_OUTCOMES] = {"released", "owner_gone", "timed_out", "failed",
                                                               "served"};
    ll_prom_family(p, "lifeline_takeovers_total", "counter",
                   "Live sessions taken over through the store: asked of another instance, by how that ended, "
                   "or served (let go at another's request).");
    for (int i = 0; i < LL_TAKEOVER_OUTCOMES; i++) {
        ll_prom_labeled(p, "lifeline_takeovers_total", "result", outcomes[i],
                        ll_counter_get(&srv->metrics.takeovers[i]));
    }
}

sdk_err sdk_server_metrics(sdk_server *srv, char **text, size_t *len)
{
    if (!srv || !text || !len) {
        return SDK_EINVAL;
    }
    *text = NULL;
    *len = 0;
    session_totals t;
    sum_sessions(srv, &t);
    ll_prom p;
    LL_GUARD(ll_prom_open(&p));
    write_streams(&p, &t);
    write_connections(&p, &srv->metrics);
    write_sessions(&p, &srv->metrics);
    write_tls(&p, &srv->metrics);
    write_stop(&p, &srv->metrics);
    if (srv->store) {
        write_store(&p, srv);
    }
    return (sdk_err)ll_prom_finish(&p, text, len);
}
