/*
 * Admission control of new connections (sdk_server_config: max_connections, max_handshakes,
 * connect_rate_per_address): checked right after accept, before any TLS work, on the I/O
 * thread. Refusals are counted in the metrics and reported as an event at most once a second
 * per limit, so that a flood costs neither TLS work nor a log line per connection.
 */
#ifndef LL_SERVER_ADMIT_H
#define LL_SERVER_ADMIT_H

#include "ratelimit.h"
#include "server_metrics.h"

#include <stdbool.h>
#include <stdint.h>

#define LL_ADMIT_REPORT_MS 1000 /* at most one event per limit this often */
/* At max_handshakes, a handshake this old is taken for stalled (a real one takes a few round
 * trips) and dropped to make room, so that a slowloris cannot hold every slot until the
 * handshake timeout; only when every handshake is younger is the new connection refused. */
#define LL_ADMIT_STALLED_MS 500

typedef struct ll_admit {
    ll_rate_table *rates; /* allocated at the first connection (I/O thread only) */
    uint64_t unreported[LL_REFUSED_REASONS];
    uint64_t reported_ms[LL_REFUSED_REASONS];
} ll_admit;

struct sdk_server;
struct srv_conn;
struct ll_srv_loop;
/* I/O thread: whether the connection just accepted from peer ("ip:port") may stay. */
bool ll_server_admit(struct sdk_server *srv, const char *peer, uint64_t now_ms);
/* lp's thread: conn, handshaking, joins lp (the newest), or leaves it. */
void ll_server_admit_track(struct ll_srv_loop *lp, struct srv_conn *conn);
void ll_server_admit_untrack(struct ll_srv_loop *lp, struct srv_conn *conn);

#endif
