/* lifeline-server: the liveness view as JSON (json.h). */
#include "json.h"

void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(out, "\\u%04x", ch);
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
}

void json_session(FILE *out, const sdk_session_info *s)
{
    fprintf(out, "{\"id\":\"%016llx\",\"state\":\"%s\",\"peer\":", (unsigned long long)s->id,
            sdk_session_state_name(s->state));
    json_string(out, s->peer_addr);
    fprintf(out, ",\"identity\":");
    json_string(out, s->peer_identity);
    fprintf(out,
            ",\"connected_since_ms\":%llu,\"last_heard_ms\":%llu,\"rtt_smoothed_us\":%llu,"
            "\"missed_heartbeats\":%u,\"last_cause\":\"%s\",\"queued\":%llu,\"unacked\":%llu,"
            "\"received\":%llu,\"connections\":%llu}",
            (unsigned long long)s->connected_since_ms, (unsigned long long)s->last_heard_ms,
            (unsigned long long)s->rtt_smoothed_us, s->missed_heartbeats, sdk_cause_name(s->last_cause),
            (unsigned long long)s->queued, (unsigned long long)s->unacked, (unsigned long long)s->received,
            (unsigned long long)s->connections);
}
