/*
 * The lame-duck window (sdk_server_config.lame_duck_ms), on the I/O thread: a stopping
 * server tells its clients GOING_AWAY one by one, evenly over the window, instead of all at
 * once, so that a fleet's reconnects after a deploy arrive spread out rather than as one
 * storm of handshakes and store reads on the instances left. Until its turn a client is
 * served as usual; at its turn it gets what its window allows, its session goes to the
 * store (with one), and it is told. The listener closes when the window opens: a client told
 * to go must not come back here.
 */
#include "server_impl.h"

#include "ll.h"
#include "net.h"

#define LAME_DUCK_TICK_MS 5u /* the poller wakes at least this often in the window */

static bool tellable(const srv_conn *c)
{
    return c->phase == CONN_READY && c->sess && !c->sess->gone_away;
}

static void begin(sdk_server *srv, uint64_t now)
{
    ll_server_stop_listening(srv);
    srv->lame_duck_start = now;
    for (srv_conn *c = srv->loops[0].conns; c; c = c->next) {
        srv->lame_duck_total += tellable(c);
    }
}

/* One client's turn: its output (what the window allows), its session written, GOING_AWAY. */
static void tell(sdk_server *srv, srv_conn *c)
{
    pthread_mutex_lock(&srv->mu);
    (void)ll_server_fill_output(c);
    ll_server_hand_over_one(srv, c->sess);
    pthread_mutex_unlock(&srv->mu);
    ll_server_conn_closing(srv, c, LIFELINE__CLOSE__CODE__GOING_AWAY, "server stopping", true);
}

/* Under mu: the window is over; sdk_server_recv may report the stop once the inbox is empty. */
static void end(sdk_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->lame_duck = false;
    ll_notify_broadcast(&srv->notify, &srv->recv_cv);
    pthread_mutex_unlock(&srv->mu);
}

bool ll_server_lame_duck(sdk_server *srv, uint64_t now)
{
    uint64_t window = srv->cfg.lame_duck_ms;
    if (window == 0 || (srv->lame_duck_start && srv->lame_duck_told >= srv->lame_duck_total)) {
        return false;
    }
    if (!srv->lame_duck_start) {
        begin(srv, now);
    }
    /* the i-th client (from 0) at start + i * window / total: the first at once */
    uint64_t elapsed = now - srv->lame_duck_start;
    size_t due = elapsed >= window ? srv->lame_duck_total : (size_t)(elapsed * srv->lame_duck_total / window) + 1;
    srv_conn *next = NULL;
    for (srv_conn *c = srv->loops[0].conns; c && srv->lame_duck_told < due; c = next) {
        next = c->next;
        if (tellable(c)) {
            tell(srv, c);
            srv->lame_duck_told++;
        }
    }
    if (srv->lame_duck_told < due) {
        srv->lame_duck_told = srv->lame_duck_total; /* the rest left by themselves */
    }
    bool running = srv->lame_duck_told < srv->lame_duck_total;
    if (!running) {
        end(srv);
    }
    return running;
}

uint64_t ll_server_lame_duck_next(const sdk_server *srv)
{
    if (!srv->lame_duck_start || srv->lame_duck_told >= srv->lame_duck_total) {
        return UINT64_MAX;
    }
    uint64_t at = srv->lame_duck_start + srv->lame_duck_told * (uint64_t)srv->cfg.lame_duck_ms / srv->lame_duck_total;
    return LL_MIN(at, ll_now_ms() + LAME_DUCK_TICK_MS);
}
