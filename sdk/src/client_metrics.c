/* The client's metrics in the Prometheus text format (sdk_get_metrics): sdk_stats, named
 * lifeline_client_*, and the round-trip histogram. */
#include "client.h"

#include "ll.h"

/* One counter: name, help and where it sits in sdk_stats. */
typedef struct stat_field {
    const char *name;
    const char *help;
    size_t offset;
} stat_field;

#define STAT(name, field, help)                                   \
    {                                                             \
        "lifeline_client_" name, help, offsetof(sdk_stats, field) \
    }

static const stat_field counters[] = {
    STAT("connects_total", connects, "Sessions established, the first one included."),
    STAT("reconnects_total", reconnects, "Sessions established after a lost connection."),
    STAT("handshakes_full_total", handshakes_full, "TLS handshakes with a full key exchange."),
    STAT("handshakes_resumed_total", handshakes_resumed, "TLS handshakes that resumed a session ticket."),
    STAT("sessions_lost_total", sessions_lost, "Times the server did not know our session."),
    STAT("heartbeats_sent_total", heartbeats_sent, "Pings sent."),
    STAT("heartbeats_answered_total", heartbeats_answered, "Pings answered."),
    STAT("messages_sent_total", msgs_sent, "Data messages written, retransmissions included."),
    STAT("sent_bytes_total", bytes_sent, "Payload bytes of the messages written."),
    STAT("messages_received_total", msgs_received, "Data messages accepted (duplicates excluded)."),
    STAT("received_bytes_total", bytes_received, "Payload bytes of the messages accepted."),
    STAT("retransmits_total", retransmits, "Data messages written again after a reconnect."),
    STAT("duplicates_dropped_total", duplicates_dropped, "Data messages from the server dropped as duplicates."),
    STAT("acks_sent_total", acks_sent, "Acknowledgement frames written."),
    STAT("acks_received_total", acks_received, "Acknowledgement frames from the server."),
};

static const stat_field gauges[] = {
    STAT("queued_messages", queue_depth, "Messages waiting or unacknowledged."),
    STAT("queued_bytes", queue_bytes, "Payload bytes of the messages waiting or unacknowledged."),
};

static uint64_t field_of(const sdk_stats *st, const stat_field *f)
{
    return *(const uint64_t *)((const char *)st + f->offset);
}

sdk_err sdk_get_metrics(sdk_client *c, char **text, size_t *len)
{
    if (!c || !text || !len) {
        return SDK_EINVAL;
    }
    *text = NULL;
    *len = 0;
    sdk_stats st;
    LL_GUARD(sdk_get_stats(c, &st));
    ll_prom p;
    LL_GUARD(ll_prom_open(&p));
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        ll_prom_counter(&p, counters[i].name, counters[i].help, field_of(&st, &counters[i]));
    }
    for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
        ll_prom_gauge(&p, gauges[i].name, gauges[i].help, field_of(&st, &gauges[i]));
    }
    ll_prom_family(&p, "lifeline_client_state", "gauge", "1 for the state the client is in.");
    for (int s = SDK_STATE_CONNECTING; s <= SDK_STATE_CLOSED; s++) {
        ll_prom_labeled(&p, "lifeline_client_state", "state", sdk_state_name(s), st.state == (sdk_state)s);
    }
    ll_prom_histogram(&p, "lifeline_client_heartbeat_rtt_seconds", "Round trips of answered pings.", &c->rtt);
    return (sdk_err)ll_prom_finish(&p, text, len);
}
