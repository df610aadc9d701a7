/* Admission control of new connections (server_admit.h). */
#include "server_impl.h"

#include "ll.h"
#include "net.h"

#include <stdlib.h>

static bool over(uint64_t current, uint32_t limit)
{
    return limit != SDK_UNLIMITED && current >= limit;
}

void ll_server_admit_track(ll_srv_loop *lp, srv_conn *conn)
{
    /* A connection handed back at stop goes in at the newest end: close enough. */
    conn->hs_prev = lp->hs_newest;
    conn->hs_next = NULL;
    if (lp->hs_newest) {
        lp->hs_newest->hs_next = conn;
    } else {
        lp->hs_oldest = conn;
    }
    lp->hs_newest = conn;
}

void ll_server_admit_untrack(ll_srv_loop *lp, srv_conn *conn)
{
    if (conn->hs_prev) {
        conn->hs_prev->hs_next = conn->hs_next;
    } else if (lp->hs_oldest == conn) {
        lp->hs_oldest = conn->hs_next;
    }
    if (conn->hs_next) {
        conn->hs_next->hs_prev = conn->hs_prev;
    } else if (lp->hs_newest == conn) {
        lp->hs_newest = conn->hs_prev;
    }
    conn->hs_prev = conn->hs_next = NULL;
}

/* At max_handshakes: make room by ending the oldest handshake if it has stalled. Its
 * deadline is moved to now, so the timers drop it at the end of this turn (never here: the
 * poller's events of this turn may still name it). With several I/O threads, the oldest of
 * loop 0's (the accepting one), which has its share of every flood. */
static bool evict_stalled(sdk_server *srv, uint64_t now_ms)
{
    ll_srv_loop *lp = &srv->loops[0];
    srv_conn *oldest = lp->hs_oldest;
    if (!oldest || now_ms - oldest->accepted_ms < LL_ADMIT_STALLED_MS) {
        return false;
    }
    ll_server_metrics_handshake_done(srv, oldest, false);
    ll_counter_add(&srv->metrics.handshakes_evicted, 1);
    ll_timers_set(&lp->timers, &oldest->timer, now_ms);
    return true;
}

/* Which limit refuses the connection, or -1. */
static int refusal(sdk_server *srv, const char *peer, uint64_t now_ms)
{
    const sdk_server_config *c = &srv->cfg;
    ll_server_metrics *m = &srv->metrics;
    if (over(ll_counter_get(&m->connections_open), c->max_connections)) {
        return LL_REFUSED_MAX_CONNECTIONS;
    }
    if (over(ll_counter_get(&m->handshakes_in_progress), c->max_handshakes) && !evict_stalled(srv, now_ms)) {
        return LL_REFUSED_MAX_HANDSHAKES;
    }
    if (c->connect_rate_per_address == SDK_UNLIMITED) {
        return -1;
    }
    if (!srv->admit.rates && !(srv->admit.rates = calloc(1, sizeof(*srv->admit.rates)))) {
        return -1; /* out of memory: admit rather than refuse everyone */
    }
    char addr[LL_RATE_ADDR_LEN];
    ll_rate_address(peer, addr);
    uint32_t burst = LL_MAX(c->connect_burst_per_address, 1u);
    bool ok = ll_rate_take(srv->admit.rates, addr, c->connect_rate_per_address, burst, now_ms);
    return ok ? -1 : LL_REFUSED_RATE;
}

static void describe(const sdk_server *srv, int why, uint64_t refused, char *buf, size_t len)
{
    const sdk_server_config *c = &srv->cfg;
    switch (why) {
    case LL_REFUSED_MAX_CONNECTIONS:
        LL_DETAIL(buf, len, "refused %llu new connection(s): max_connections (%u) open", (unsigned long long)refused,
                  c->max_connections);
        break;
    case LL_REFUSED_MAX_HANDSHAKES:
        LL_DETAIL(buf, len, "refused %llu new connection(s): max_handshakes (%u) in progress",
                  (unsigned long long)refused, c->max_handshakes);
        break;
    default:
        LL_DETAIL(buf, len, "refused %llu new connection(s): over %u per second (burst %u) from one address",
                  (unsigned long long)refused, c->connect_rate_per_address, c->connect_burst_per_address);
        break;
    }
}

/* Count the refusal; report what was refused since the last report, at most once a second. */
static void note_refusal(sdk_server *srv, int why, const char *peer, uint64_t now_ms)
{
    ll_admit *a = &srv->admit;
    ll_counter_add(&srv->metrics.refused[why], 1);
    a->unreported[why]++;
    if (a->reported_ms[why] && now_ms - a->reported_ms[why] < LL_ADMIT_REPORT_MS) {
        return;
    }
    char detail[256];
    describe(srv, why, a->unreported[why], detail, sizeof(detail));
    pthread_mutex_lock(&srv->mu); /* the events queue is shared with the other loops */
    ll_server_queue_detail_event(srv, SDK_SERVER_CONNECTIONS_REFUSED, peer, detail);
    pthread_mutex_unlock(&srv->mu);
    a->unreported[why] = 0;
    a->reported_ms[why] = now_ms;
}

bool ll_server_admit(sdk_server *srv, const char *peer, uint64_t now_ms)
{
    int why = refusal(srv, peer, now_ms);
    if (why < 0) {
        return true;
    }
    note_refusal(srv, why, peer, now_ms);
    return false;
}
