/* Public server API: configuration, start/stop, and the application's blocking calls.
 * No socket I/O happens here; server_io.c does all of it on the server's I/O thread. */
#include "server_impl.h"

#include "codec.h"
#include "config.h"
#include "ll.h"
#include "net.h"
#include "wait.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Why the calling thread's last sdk_server_start failed (there is no server to ask). */
static _Thread_local char start_detail[256];
static _Thread_local int start_err;

const char *sdk_cause_name(int cause)
{
    static const char *const names[] = {"none",           "reset",           "clean_close", "heartbeat_timeout",
                                        "protocol_error", "output_overflow", "replaced",    "expired",
                                        "closed_by_app",  "server_stop",     "taken_over"};
    return LL_ENUM_NAME(names, cause);
}

const char *sdk_session_event_name(int type)
{
    static const char *const names[] = {"opened", "resumed",      "detached",          "expired",
                                        "closed", "tls_reloaded", "tls_reload_failed", "connections_refused"};
    return LL_ENUM_NAME(names, type);
}

const char *sdk_session_state_name(int state)
{
    static const char *const names[] = {"connected", "detached"};
    return LL_ENUM_NAME(names, state);
}

static const sdk_server_config server_defaults = {
    .size = sizeof(sdk_server_config),
    .listen = "127.0.0.1:7443",
    .max_frame = LL_MAX_FRAME_DEFAULT,
    .handshake_timeout_ms = 10000,
    .heartbeat_min_ms = 1000,
    .heartbeat_max_ms = 300000,
    .session_ttl_ms = 60000,
    .queue_max_messages = 65536,
    .queue_max_bytes = 64u * 1024 * 1024,
    .window_messages = 16384,
    .window_bytes = 16u * 1024 * 1024,
    .max_output_bytes = 4u * 1024 * 1024,
    .ticket_key_rotation_ms = 12ull * 3600 * 1000,
    .ticket_keys_live = 3,
    .max_connections = 20000,
    .max_handshakes = 1000,
    .connect_rate_per_address = 200,
    .connect_burst_per_address = 400,
    .takeover_timeout_ms = 500,
    .io_threads = 1,
};

static const ll_config_layout server_layout =
    LL_CONFIG_LAYOUT(sdk_server_config, server_defaults, LL_SERVER_CONFIG_SIZE_0_2);

sdk_err sdk_server_config_init_sized(sdk_server_config *cfg, size_t size)
{
    return (sdk_err)ll_config_init(&server_layout, cfg, size);
}

sdk_err sdk_server_last_start_error(char *buf, size_t buflen)
{
    if (buf && buflen) {
        LL_DETAIL(buf, buflen, "%s", start_detail);
    }
    return (sdk_err)start_err;
}

/* Record why sdk_server_start failed, here and where 0.1 programs look. Returns err. */
static sdk_err start_failed(int err, const char *detail)
{
    start_err = err;
    LL_DETAIL(start_detail, sizeof(start_detail), "%s", detail && *detail ? detail : sdk_strerror(err));
    return (sdk_err)ll_set_connect_error(err, start_detail);
}

/* cfg is the caller's, already size-checked and merged over the defaults. */
static int copy_config(sdk_server *srv, const sdk_server_config *cfg)
{
    srv->cfg = *cfg;
    const char **fields[] = {&srv->cfg.listen, &srv->cfg.cert_file, &srv->cfg.key_file, &srv->cfg.client_ca_file};
    return ll_config_own_strings(fields, sizeof(fields) / sizeof(fields[0]), &srv->strings);
}

static int validate(const sdk_server_config *cfg, char *why, size_t len)
{
    if (!cfg->cert_file || !cfg->key_file) {
        LL_DETAIL(why, len, "cert_file and key_file are required");
        return SDK_EINVAL;
    }
    if (cfg->max_frame < 64 || cfg->handshake_timeout_ms <= 0 || cfg->heartbeat_min_ms <= 0 ||
        cfg->heartbeat_max_ms < cfg->heartbeat_min_ms || cfg->session_ttl_ms < 0 || cfg->queue_max_messages == 0 ||
        cfg->queue_max_bytes == 0 || cfg->window_messages == 0 || cfg->window_bytes == 0 ||
        cfg->max_output_bytes < 64 * 1024 || cfg->lame_duck_ms > LL_SERVER_LAME_DUCK_MAX_MS ||
        !ll_server_tickets_config_ok(cfg) || cfg->takeover_timeout_ms < 0 ||
        cfg->takeover_timeout_ms > SDK_TAKEOVER_TIMEOUT_MAX_MS || cfg->io_threads > SDK_IO_THREADS_MAX) {
        LL_DETAIL(why, len, "a numeric setting is out of range (see sdk_server_config in server.h)");
        return SDK_EINVAL;
    }
    return 0;
}

static void server_free(sdk_server *srv)
{
    ll_server_takeover_free(srv);
    ll_server_sync_stop(srv);
    ll_msgq_free(&srv->inbox);
    ll_server_loops_free(srv); /* joins the other loops if a start failed half-way */
    ll_msgq_free(&srv->deliver);
    ll_msgq_free(&srv->delivering);
    ll_carver_free(&srv->carver);
    ll_store_free(&srv->sessions);
    ll_timers_free(&srv->ttls);
    free(srv->events);
    free(srv->reporting);
    free(srv->admit.rates);
    ll_tls_ctx_free(srv->tls);
    ll_server_tickets_stop(srv); /* the context's callbacks used its keys */
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
    }
    ll_notify_free(&srv->notify);
    pthread_cond_destroy(&srv->recv_cv);
    pthread_cond_destroy(&srv->send_cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->strings);
    free(srv);
}

/* How many I/O threads: as configured; 0, one per online CPU (up to a cap). */
static unsigned io_threads(const sdk_server_config *cfg)
{
    if (cfg->io_threads > 0) {
        return cfg->io_threads;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1u : (unsigned)LL_MIN(cpus, (long)LL_SERVER_IO_THREADS_AUTO_MAX);
}

/* Certificates, listening socket, poller and wake fd: everything that can fail at start. */
static int open_resources(sdk_server *srv, char *why, size_t len)
{
    char host[256];
    uint16_t port = 0;
    if (ll_net_split_hostport(srv->cfg.listen ? srv->cfg.listen : "127.0.0.1:7443", host, sizeof(host), &port) != 0) {
        LL_DETAIL(why, len, "bad listen address \"%s\" (want HOST:PORT or [IPv6]:PORT)", srv->cfg.listen);
        return SDK_EINVAL;
    }
    ll_tls_ctx_config tc = ll_server_tls_config(srv);
    LL_GUARD(ll_tls_ctx_new(&tc, &srv->tls, why, len));
    LL_GUARD(ll_server_tickets_start(srv, why, len));
    ll_server_note_certificate(srv);
    LL_GUARD(ll_net_listen(host, port, &srv->listen_fd, why, len));
    srv->port = ll_net_local_port(srv->listen_fd);
    return ll_server_loops_open(srv, io_threads(&srv->cfg), why, len);
}

static sdk_err start(const sdk_server_config *cfg, sdk_server **out)
{
    char why[256] = "";
    if (!cfg || !out) {
        return start_failed(SDK_EINVAL, !cfg ? "cfg is NULL" : "out is NULL");
    }
    *out = NULL;
    sdk_server_config full = server_defaults; /* the caller's fields over the defaults */
    int rc = ll_config_take(&server_layout, &full, cfg, why, sizeof(why));
    if (rc == 0) {
        rc = validate(&full, why, sizeof(why));
    }
    if (rc != 0) {
        return start_failed(rc, why);
    }
    sdk_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        return start_failed(SDK_ENOMEM, NULL);
    }
    srv->listen_fd = -1;
    srv->store = full.store; /* before the I/O thread starts: its first hello may need it */
    ll_notify_init(&srv->notify);
    pthread_mutex_init(&srv->mu, NULL);
    ll_cond_init(&srv->recv_cv);
    ll_cond_init(&srv->send_cv);
    rc = copy_config(srv, &full);
    if (rc == 0) {
        rc = open_resources(srv, why, sizeof(why));
    }
    if (rc == 0 && ll_server_sync_start(srv) != 0) {
        rc = SDK_ENOMEM;
        LL_DETAIL(why, sizeof(why), "could not start the store thread");
    }
    if (rc == 0 && ll_server_takeover_start(srv) != 0) {
        rc = SDK_ENOMEM;
        LL_DETAIL(why, sizeof(why), "could not start the takeover thread");
    }
    if (rc == 0 && ll_server_loops_start(srv) != 0) {
        rc = SDK_ENOMEM;
        LL_DETAIL(why, sizeof(why), "could not start the I/O threads");
    }
    if (rc == 0 && pthread_create(&srv->thread, NULL, ll_server_io_main, srv) != 0) {
        rc = SDK_ENOMEM;
        LL_DETAIL(why, sizeof(why), "could not start the I/O thread");
    }
    if (rc != 0) {
        server_free(srv);
        return start_failed(rc, why);
    }
    srv->thread_started = true;
    *out = srv;
    return SDK_OK;
}

sdk_err sdk_server_start(const sdk_server_config *cfg, sdk_server **out)
{
    return start(cfg, out);
}

uint16_t sdk_server_port(sdk_server *srv)
{
    return srv ? srv->port : 0;
}

void ll_server_mark_dirty_locked(sdk_server *srv, srv_session *ss)
{
    /* The loop of its connection serves it; loop 0 one without (it may only end there). */
    ll_srv_loop *lp = ss->dirty ? ss->dirty_loop : ss->conn ? ss->conn->loop : &srv->loops[0];
    if (!ss->dirty) {
        ss->dirty = true;
        ss->dirty_loop = lp;
        ss->next_dirty = lp->dirty;
        lp->dirty = ss;
    }
    ll_server_loop_wake_locked(srv, lp);
}

void ll_server_wake_locked(sdk_server *srv)
{
    ll_server_loop_wake_locked(srv, &srv->loops[0]);
}

void ll_server_consumed_locked(sdk_server *srv, srv_session *ss, uint64_t seq)
{
    ll_session_consumed_upto(&ss->s, seq);
    if (ll_server_sync_always(srv)) {
        ll_server_want_sync_locked(srv, ss, LL_SYNC_DELTA);
    } else if (ll_session_ack_due(&ss->s, ss->in_inbox == 0)) {
        ll_server_mark_dirty_locked(srv, ss);
    }
}

/* Under mu: the live session to acknowledge up to seq in, or NULL with *rc saying why. */
static srv_session *ackable(sdk_server *srv, uint64_t session, uint64_t seq, int *rc)
{
    srv_session *ss = ll_store_get(&srv->sessions, session);
    *rc = !ss ? SDK_ENOTFOUND : seq > ss->s.received ? SDK_EINVAL : 0;
    return *rc ? NULL : ss;
}

sdk_err sdk_server_ack(sdk_server *srv, uint64_t session, uint64_t seq)
{
    if (!srv || !srv->cfg.manual_ack) {
        return SDK_EINVAL;
    }
    int rc;
    pthread_mutex_lock(&srv->mu);
    srv_session *ss = ackable(srv, session, seq, &rc);
    if (ss) {
        ll_server_consumed_locked(srv, ss, seq);
    }
    pthread_mutex_unlock(&srv->mu);
    return (sdk_err)rc;
}

sdk_err sdk_server_recv(sdk_server *srv, sdk_message **out, int timeout_ms)
{
    if (!srv || !out || srv->cfg.on_message) {
        return SDK_EINVAL;
    }
    *out = NULL;
    ll_deadline dl = ll_deadline_in(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        ll_msg *m = ll_msgq_pop(&srv->inbox);
        if (m) {
            srv_session *ss = ll_store_get(&srv->sessions, m->pub.session);
            if (ss) {
                ss->in_inbox--;
                if (!srv->cfg.manual_ack && m->epoch == ss->s.epoch) {
                    ll_server_consumed_locked(srv, ss, m->pub.seq);
                }
            }
            *out = &m->pub;
            break;
        }
        if (srv->input_closed) { /* not before: a message still to come would never be taken */
            rc = SDK_ECLOSED;
            break;
        }
        if (ll_cond_wait(&srv->recv_cv, &srv->mu, &dl) != 0) {
            rc = SDK_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return (sdk_err)rc;
}

/* The live session to send to, or NULL. */
static srv_session *open_session(sdk_server *srv, uint64_t id)
{
    srv_session *ss = ll_store_get(&srv->sessions, id);
    return ss && !ss->close_requested ? ss : NULL;
}

/* Queue m on session (acknowledging its messages up to ack_seq with it, atomically, unless
 * 0), waiting up to dl for room. Under mu. */
static int send_locked(sdk_server *srv, uint64_t session, const ll_outgoing *m, uint64_t ack_seq, ll_deadline *dl)
{
    for (;;) {
        srv_session *ss = srv->sends_closed ? NULL : open_session(srv, session);
        if (!ss) {
            return srv->sends_closed ? SDK_ECLOSED : SDK_ENOTFOUND;
        }
        if (ack_seq > ss->s.received) {
            return SDK_EINVAL;
        }
        int rc = ll_session_offer(&ss->s, m, srv->cfg.queue_max_messages, srv->cfg.queue_max_bytes);
        if (rc == SDK_ETOOBIG) {
            rc = ll_session_too_big(&ss->s, m, srv->cfg.max_frame, srv->cfg.queue_max_bytes, "this server",
                                    "the client");
        }
        if (rc == 0) {
            srv->last_send_ms = ll_now_ms();
            ll_server_mark_dirty_locked(srv, ss);
            if (ack_seq) {
                ll_server_consumed_locked(srv, ss, ack_seq); /* in the same store write as the reply */
            } else if (ll_server_sync_always(srv)) {
                ll_server_want_sync_locked(srv, ss, LL_SYNC_DELTA); /* it leaves once stored */
            }
        }
        /* Room comes from the I/O thread: a callback on it must not wait for it. */
        if (rc != SDK_EQUEUEFULL || ll_on_io_thread(srv) || ll_cond_wait(&srv->send_cv, &srv->mu, dl) != 0) {
            return rc;
        }
    }
}

static sdk_err send_checked(sdk_server *srv, uint64_t session, const char *type, const void *data, size_t len,
                            uint64_t ack_seq, int timeout_ms)
{
    if (!srv) {
        return SDK_EINVAL;
    }
    ll_outgoing m;
    int rc = ll_session_check_send(data, len, type, srv->cfg.max_frame, srv->cfg.queue_max_bytes, "this server",
                                   "the client", &m);
    if (rc != 0) {
        return (sdk_err)rc;
    }
    ll_deadline dl = ll_deadline_in(timeout_ms);
    pthread_mutex_lock(&srv->mu);
    rc = send_locked(srv, session, &m, ack_seq, &dl);
    pthread_mutex_unlock(&srv->mu);
    return (sdk_err)rc;
}

sdk_err sdk_server_send_typed(sdk_server *srv, uint64_t session, const char *type, const void *data, size_t len,
                              int timeout_ms)
{
    return send_checked(srv, session, type, data, len, 0, timeout_ms);
}

sdk_err sdk_server_reply(sdk_server *srv, uint64_t session, uint64_t ack_seq, const char *type, const void *data,
                         size_t len, int timeout_ms)
{
    if (srv && ack_seq && !srv->cfg.manual_ack) {
        return SDK_EINVAL;
    }
    return send_checked(srv, session, type, data, len, ack_seq, timeout_ms);
}

sdk_err sdk_server_send(sdk_server *srv, uint64_t session, const void *data, size_t len, int timeout_ms)
{
    return sdk_server_send_typed(srv, session, NULL, data, len, timeout_ms);
}

sdk_err sdk_server_close_session(sdk_server *srv, uint64_t session, const char *reason, bool reconnect_allowed)
{
    if (!srv) {
        return SDK_EINVAL;
    }
    int rc = SDK_ENOTFOUND;
    pthread_mutex_lock(&srv->mu);
    srv_session *ss = srv->sends_closed ? NULL : open_session(srv, session);
    if (ss) {
        ss->close_requested = true;
        ss->reconnect_allowed = reconnect_allowed;
        LL_DETAIL(ss->close_reason, sizeof(ss->close_reason), "%s", reason ? reason : "closed by the server");
        ll_server_mark_dirty_locked(srv, ss);
        ll_notify_broadcast(&srv->notify, &srv->send_cv); /* senders blocked on it get SDK_ENOTFOUND */
        rc = 0;
    }
    pthread_mutex_unlock(&srv->mu);
    return (sdk_err)rc;
}

typedef struct collect_ctx {
    sdk_session_info *out;
    size_t n;
    uint64_t now_ms;
    uint64_t wall_ms;
} collect_ctx;

static void collect(void *val, void *arg)
{
    srv_session *ss = val;
    collect_ctx *cx = arg;
    sdk_session_info *info = &cx->out[cx->n++];
    memset(info, 0, sizeof(*info));
    info->id = ss->id;
    info->state = ss->conn ? SDK_SESSION_STATE_CONNECTED : SDK_SESSION_STATE_DETACHED;
    LL_DETAIL(info->peer_addr, sizeof(info->peer_addr), "%s", ss->peer_addr);
    LL_DETAIL(info->peer_identity, sizeof(info->peer_identity), "%s", ss->identity);
    info->connected_since_ms = ss->connected_since_ms;
    info->last_cause = ss->last_cause;
    info->queued = ss->s.sendq.count - ss->s.sendq.copied;
    info->unacked = ss->s.sendq.copied;
    info->received = ss->s.msgs_received;
    info->connections = ss->connections;
    ll_server_session_liveness(ss, cx->now_ms, cx->wall_ms, info);
}

sdk_err sdk_server_sessions(sdk_server *srv, sdk_session_info **out, size_t *count)
{
    if (!srv || !out || !count) {
        return SDK_EINVAL;
    }
    *out = NULL;
    *count = 0;
    int rc = 0;
    pthread_mutex_lock(&srv->mu);
    if (srv->stopping) {
        rc = SDK_ECLOSED;
    } else if (srv->sessions.count > 0) {
        collect_ctx cx = {.out = calloc(srv->sessions.count, sizeof(sdk_session_info)),
                          .now_ms = ll_now_ms(),
                          .wall_ms = ll_wall_ms()};
        if (!cx.out) {
            rc = SDK_ENOMEM;
        } else {
            ll_store_each(&srv->sessions, collect, &cx);
            *out = cx.out;
            *count = cx.n;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return (sdk_err)rc;
}

void sdk_sessions_free(sdk_session_info *sessions)
{
    free(sessions); /* calloc'd: 0.1 programs free() it themselves */
}

sdk_err sdk_server_close(sdk_server *srv)
{
    if (!srv || ll_on_io_thread(srv)) { /* a callback cannot join its own thread */
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&srv->mu);
    bool join = !srv->stopping && srv->thread_started;
    srv->lame_duck |= join && srv->cfg.lame_duck_ms > 0; /* the I/O thread ends it */
    srv->stopping = true;
    for (unsigned i = 0; i < srv->nloops; i++) {
        ll_wake_signal(srv->loops[i].wake_fd);
    }
    ll_notify_broadcast(&srv->notify, &srv->recv_cv);
    ll_notify_broadcast(&srv->notify, &srv->send_cv);
    pthread_mutex_unlock(&srv->mu);
    if (join) {
        pthread_join(srv->thread, NULL);
        pthread_mutex_lock(&srv->mu);
        srv->stopped = true;
        ll_notify_broadcast(&srv->notify, &srv->send_cv);
        pthread_mutex_unlock(&srv->mu);
    } else {
        pthread_mutex_lock(&srv->mu);
        while (srv->thread_started && !srv->stopped) {
            pthread_cond_wait(&srv->send_cv, &srv->mu);
        }
        pthread_mutex_unlock(&srv->mu);
    }
    return SDK_OK;
}

sdk_err sdk_server_stop(sdk_server *srv)
{
    return sdk_server_close(srv);
}

sdk_err sdk_dev_certs(const char *dir, char *err, size_t errlen)
{
    char why[256] = "";
    int rc = dir ? ll_tls_dev_certs(dir, why, sizeof(why)) : SDK_EINVAL;
    if (err && errlen) {
        LL_DETAIL(err, errlen, "%s", why);
    }
    return (sdk_err)rc;
}

void sdk_server_destroy(sdk_server *srv)
{
    if (!srv || ll_on_io_thread(srv)) {
        return;
    }
    sdk_server_close(srv);
    server_free(srv);
}
