/* Public client API: argument checks, queue bounds, and blocking waits with deadlines.
 * No socket I/O happens here; the I/O thread (client_io.c) does all of it. */
#include "client.h"

#include "codec.h"
#include "config.h"
#include "ll.h"
#include "net.h"
#include "retry.h"
#include "wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Why the calling thread's last sdk_connect failed (there is no client to ask). */
static _Thread_local char connect_detail[256];
static _Thread_local int connect_err;

static const sdk_config client_defaults = {
    .size = sizeof(sdk_config),
    .max_frame = LL_MAX_FRAME_DEFAULT,
    .connect_timeout_ms = 10000,
    .heartbeat_interval_ms = 5000,
    .heartbeat_timeout_ms = 0,
    .reconnect_min_ms = 100,
    .reconnect_max_ms = 30000,
    .queue_max_messages = 65536,
    .queue_max_bytes = 64u * 1024 * 1024,
    .window_messages = 16384,
    .window_bytes = 16u * 1024 * 1024,
    .reconnect_policy = LL_RETRY_DEFAULT_POLICY,
};

static const ll_config_layout client_layout = LL_CONFIG_LAYOUT(sdk_config, client_defaults, LL_CLIENT_CONFIG_SIZE_0_2);

sdk_err sdk_config_init_sized(sdk_config *cfg, size_t size)
{
    return (sdk_err)ll_config_init(&client_layout, cfg, size);
}

sdk_err sdk_parse_address(const char *address, char *host, size_t hostlen, uint16_t *port)
{
    return (sdk_err)ll_net_split_hostport(address, host, hostlen, port);
}

const char *sdk_state_name(int state)
{
    static const char *const names[] = {"connecting", "connected", "reconnecting", "closed"};
    return LL_ENUM_NAME(names, state);
}

const char *sdk_event_name(int type)
{
    static const char *const names[] = {"connecting",   "connected",    "disconnected",
                                        "reconnecting", "session_lost", "closed"};
    return LL_ENUM_NAME(names, type);
}

sdk_err sdk_last_connect_error(char *buf, size_t buflen)
{
    if (buf && buflen) {
        LL_DETAIL(buf, buflen, "%s", connect_detail);
    }
    return (sdk_err)connect_err;
}

int ll_set_connect_error(int err, const char *detail)
{
    connect_err = err;
    LL_DETAIL(connect_detail, sizeof(connect_detail), "%s", detail && *detail ? detail : sdk_strerror(err));
    return ll_set_call_error(err, detail);
}

static sdk_err connect_failed(int err, const char *detail)
{
    return (sdk_err)ll_set_connect_error(err, detail);
}

/* The server is named one way: host and port, address, or endpoints (not both, nor none). */
static int check_target(const sdk_config *cfg, char *why, size_t len)
{
    bool list = cfg->endpoints != NULL || cfg->endpoint_count != 0;
    bool address = cfg->address != NULL;
    bool hostport = cfg->host != NULL || cfg->port != 0;
    if ((int)list + (int)address + (int)hostport > 1) {
        LL_DETAIL(why, len, "set endpoints, address, or host and port: one of them, not both");
        return SDK_EINVAL;
    }
    if (list && (cfg->endpoints == NULL || cfg->endpoint_count == 0 || cfg->endpoint_count > LL_ENDPOINTS_MAX)) {
        LL_DETAIL(why, len, "endpoints needs 1 to %d entries in endpoint_count (got %zu%s)", LL_ENDPOINTS_MAX,
                  cfg->endpoint_count, cfg->endpoints ? "" : ", endpoints NULL");
        return SDK_EINVAL;
    }
    if (!list && !address && (!cfg->host || !*cfg->host || cfg->port == 0)) {
        LL_DETAIL(why, len, "host and port (or address, or endpoints) are required");
        return SDK_EINVAL;
    }
    return 0;
}

static int add_address(ll_endpoints *e, const char *address, const char *what, char *why, size_t len)
{
    int rc = address ? ll_endpoints_add_address(e, address) : SDK_EINVAL;
    if (rc == SDK_EINVAL) {
        LL_DETAIL(why, len, "%s: bad address \"%s\" (want HOST:PORT or [IPv6]:PORT)", what,
                  address ? address : "(null)");
    }
    return rc;
}

/* The configured server(s) into e, in the order to try them. */
static int take_endpoints(ll_endpoints *e, const sdk_config *cfg, char *why, size_t len)
{
    char what[32];
    if (cfg->endpoints) {
        for (size_t i = 0; i < cfg->endpoint_count; i++) {
            LL_DETAIL(what, sizeof(what), "endpoints[%zu]", i);
            LL_GUARD(add_address(e, cfg->endpoints[i], what, why, len));
        }
    } else if (cfg->address) {
        LL_GUARD(add_address(e, cfg->address, "address", why, len));
    } else {
        LL_GUARD(ll_endpoints_add(e, cfg->host, cfg->port));
    }
    uint64_t seed = 0;
    if (ll_net_random(&seed, sizeof(seed)) != 0) {
        seed = ll_now_us() ^ (uint64_t)(uintptr_t)e; /* an order still differs per client */
    }
    ll_endpoints_order(e, cfg->keep_endpoint_order, seed);
    return 0;
}

static int validate(const sdk_config *cfg, char *why, size_t len)
{
    LL_GUARD(check_target(cfg, why, len));
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        LL_DETAIL(why, len, "cert_file and key_file go together");
        return SDK_EINVAL;
    }
    if (cfg->max_frame < 64 || cfg->connect_timeout_ms <= 0 || cfg->heartbeat_interval_ms <= 0 ||
        cfg->heartbeat_timeout_ms < 0 || cfg->reconnect_min_ms < 0 || cfg->reconnect_max_ms < cfg->reconnect_min_ms ||
        cfg->queue_max_messages == 0 || cfg->queue_max_bytes == 0 || cfg->close_linger_ms < 0 ||
        !ll_retry_valid(cfg->reconnect_policy)) {
        LL_DETAIL(why, len, "a numeric setting is out of range (see sdk_config in sdk.h)");
        return SDK_EINVAL;
    }
    return 0;
}

/* The caller's configuration, size-checked, over the defaults in *full, then checked. */
static int take_config(const sdk_config *cfg, sdk_config *full, char *why, size_t len)
{
    LL_GUARD(ll_config_take(&client_layout, full, cfg, why, len));
    return validate(full, why, len);
}

/* Copy the configuration, its strings into one block, and fill derived defaults. */
static int copy_config(sdk_client *c, const sdk_config *cfg)
{
    c->cfg = *cfg;
    const char **fields[] = {&c->cfg.host,      &c->cfg.servername, &c->cfg.ca_file,
                             &c->cfg.cert_file, &c->cfg.key_file,   &c->cfg.address};
    LL_GUARD(ll_config_own_strings(fields, sizeof(fields) / sizeof(fields[0]), &c->strings));
    c->cfg.endpoints = NULL; /* the caller's: copied into c->endpoints (take_endpoints) */
    if (c->cfg.heartbeat_timeout_ms == 0) {
        c->cfg.heartbeat_timeout_ms = 3 * c->cfg.heartbeat_interval_ms;
    }
    return 0;
}

static void client_free(sdk_client *c)
{
    ll_session_free(&c->s);
    ll_msgq_free(&c->recvq);
    ll_msgq_free(&c->deliver);
    ll_carver_free(&c->carver);
    ll_endpoints_free(&c->endpoints);
    ll_tls_ctx_free(c->tls);
    if (c->wake_fd >= 0) {
        close(c->wake_fd);
    }
    ll_notify_free(&c->notify);
    pthread_cond_destroy(&c->recv_cv);
    pthread_cond_destroy(&c->send_cv);
    pthread_mutex_destroy(&c->mu);
    free(c->strings);
    free(c);
}

static int client_new(const sdk_config *cfg, sdk_client **out, char *why, size_t len)
{
    sdk_client *c = calloc(1, sizeof(*c));
    LL_ENSURE(c, SDK_ENOMEM);
    c->wake_fd = -1;
    ll_notify_init(&c->notify);
    pthread_mutex_init(&c->mu, NULL);
    ll_cond_init(&c->recv_cv);
    ll_cond_init(&c->send_cv);
    ll_session_init(&c->s, cfg->window_messages, cfg->window_bytes);
    c->state = SDK_STATE_CONNECTING;
    int rc = take_endpoints(&c->endpoints, cfg, why, len);
    if (rc == 0) {
        rc = copy_config(c, cfg);
    }
    if (rc == 0) {
        ll_tls_ctx_config tc = {
            .server = false, .ca_file = c->cfg.ca_file, .cert_file = c->cfg.cert_file, .key_file = c->cfg.key_file};
        rc = ll_tls_ctx_new(&tc, &c->tls, why, len);
    }
    if (rc == 0) {
        rc = ll_wake_open(&c->wake_fd);
    }
    if (rc != 0) {
        client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

uint64_t ll_client_attempt_deadline(sdk_client *c)
{
    uint64_t deadline = c->first_deadline_ms;
    c->first_deadline_ms = 0;
    return deadline ? deadline : ll_now_ms() + (uint64_t)c->cfg.connect_timeout_ms;
}

sdk_err sdk_connect(const sdk_config *cfg, sdk_client **out)
{
    uint64_t start = ll_now_ms(); /* connect_timeout_ms bounds the whole call */
    char why[256] = "";
    if (!out) {
        return connect_failed(SDK_EINVAL, "out is NULL");
    }
    *out = NULL;
    if (!cfg) {
        return connect_failed(SDK_EINVAL, "cfg is NULL");
    }
    sdk_config full = client_defaults; /* the caller's fields over the defaults */
    int rc = take_config(cfg, &full, why, sizeof(why));
    sdk_client *c = NULL;
    if (rc == 0) {
        rc = client_new(&full, &c, why, sizeof(why));
    }
    if (rc != 0) {
        return connect_failed(rc, why[0] ? why : NULL);
    }
    c->first_deadline_ms = start + (uint64_t)c->cfg.connect_timeout_ms;
    if (!full.retry_on_first_connect) {
        rc = ll_client_connect_first(c);
        if (rc != 0) {
            sdk_last_error(c, why, sizeof(why));
            sdk_destroy(c);
            return connect_failed(rc, why);
        }
    } else if (pthread_create(&c->thread, NULL, ll_client_io_main, c) != 0) {
        client_free(c);
        return connect_failed(SDK_ENOMEM, "could not start the I/O thread");
    } else {
        c->thread_started = true;
    }
    *out = c;
    return SDK_OK;
}

void ll_client_wake_locked(sdk_client *c)
{
    /* Only a connected I/O thread waits for work; while connecting it watches the wake fd
     * for sdk_close alone, and picks the queue up once connected. */
    if (!c->wake_pending && (c->state == SDK_STATE_CONNECTED || c->closing)) {
        c->wake_pending = true;
        if (!ll_on_io_thread(c)) { /* from a callback: its loop looks before it next sleeps */
            ll_wake_signal(c->wake_fd);
        }
    }
}

static bool closed_locked(const sdk_client *c)
{
    return c->closing || c->state == SDK_STATE_CLOSED;
}

/* Queue m, waiting up to dl for room; on 0 *seq (may be NULL) is its client sequence. */
static int offer(sdk_client *c, const ll_outgoing *m, ll_deadline *dl, uint64_t *seq)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (closed_locked(c)) {
            rc = SDK_ECLOSED;
            break;
        }
        rc = ll_session_offer(&c->s, m, c->cfg.queue_max_messages, c->cfg.queue_max_bytes);
        if (rc == SDK_ETOOBIG) {
            rc = ll_session_too_big(&c->s, m, c->cfg.max_frame, c->cfg.queue_max_bytes, "this client", "the server");
        }
        if (rc == 0) {
            if (seq) {
                *seq = c->s.enqueued_total; /* the n-th message this client ever queued */
            }
            ll_client_wake_locked(c);
        }
        /* Room comes from the I/O thread: a callback on it must not wait for it. */
        if (rc != SDK_EQUEUEFULL || ll_on_io_thread(c) || ll_cond_wait(&c->send_cv, &c->mu, dl) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

sdk_err sdk_send_seq(sdk_client *c, const char *type, const void *data, size_t len, int timeout_ms, uint64_t *seq)
{
    if (seq) {
        *seq = 0;
    }
    if (!c) {
        return SDK_EINVAL;
    }
    ll_outgoing m;
    int rc = ll_session_check_send(data, len, type, c->cfg.max_frame, c->cfg.queue_max_bytes, "this client",
                                   "the server", &m);
    if (rc != 0) {
        return (sdk_err)rc;
    }
    ll_deadline dl = ll_deadline_in(timeout_ms);
    return (sdk_err)offer(c, &m, &dl, seq);
}

sdk_err sdk_send_typed(sdk_client *c, const char *type, const void *data, size_t len, int timeout_ms)
{
    return sdk_send_seq(c, type, data, len, timeout_ms, NULL);
}

sdk_err sdk_send(sdk_client *c, const void *data, size_t len, int timeout_ms)
{
    return sdk_send_seq(c, NULL, data, len, timeout_ms, NULL);
}

sdk_err sdk_recv(sdk_client *c, sdk_message **out, int timeout_ms)
{
    if (!c || !out || c->cfg.on_message) {
        return SDK_EINVAL;
    }
    *out = NULL;
    ll_deadline dl = ll_deadline_in(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        ll_msg *m = ll_msgq_pop(&c->recvq);
        if (m) {
            ll_session_consumed(&c->s, m);
            if (ll_session_ack_due(&c->s, c->recvq.count == 0)) {
                ll_client_wake_locked(c);
            }
            *out = &m->pub;
            break;
        }
        if (closed_locked(c)) {
            rc = SDK_ECLOSED;
            break;
        }
        if (ll_cond_wait(&c->recv_cv, &c->mu, &dl) != 0) {
            rc = SDK_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return (sdk_err)rc;
}

sdk_err sdk_flush_to(sdk_client *c, uint64_t seq, int timeout_ms)
{
    if (!c || ll_on_io_thread(c)) { /* acks come through the I/O thread: it cannot wait for them */
        return SDK_EINVAL;
    }
    ll_deadline dl = ll_deadline_in(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (seq > c->s.enqueued_total) {
        rc = SDK_EINVAL; /* never queued: it could never be acknowledged */
    }
    /* A closed client answers SDK_ECLOSED whatever is left: one rule, not a race with the
     * last acknowledgement. */
    while (rc == 0 && (closed_locked(c) || c->s.acked_total < seq)) {
        if (closed_locked(c)) {
            rc = SDK_ECLOSED;
        } else if (ll_cond_wait(&c->send_cv, &c->mu, &dl) != 0) {
            rc = SDK_ETIMEDOUT;
        }
    }
    if (rc == SDK_ETIMEDOUT && c->state != SDK_STATE_CONNECTED && c->last_err != SDK_OK) {
        char why[320];
        LL_DETAIL(why, sizeof(why), "not connected: %s: %s", sdk_errname(c->last_err), c->last_detail);
        ll_set_call_error(rc, why); /* why the acknowledgement cannot come */
    }
    pthread_mutex_unlock(&c->mu);
    return (sdk_err)rc;
}

sdk_err sdk_flush(sdk_client *c, int timeout_ms)
{
    if (!c) {
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    uint64_t target = c->s.enqueued_total;
    pthread_mutex_unlock(&c->mu);
    return sdk_flush_to(c, target, timeout_ms);
}

sdk_state sdk_get_state(sdk_client *c)
{
    if (!c) {
        return SDK_STATE_CLOSED;
    }
    pthread_mutex_lock(&c->mu);
    sdk_state st = c->state;
    pthread_mutex_unlock(&c->mu);
    return st;
}

sdk_err sdk_get_stats(sdk_client *c, sdk_stats *out)
{
    if (!c || !out) {
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->state = c->state;
    out->msgs_sent = c->s.msgs_sent;
    out->bytes_sent = c->s.bytes_sent;
    out->retransmits = c->s.retransmits;
    out->msgs_received = c->s.msgs_received;
    out->bytes_received = c->s.bytes_received;
    out->duplicates_dropped = c->s.duplicates;
    out->queue_depth = c->s.sendq.count;
    out->queue_bytes = c->s.sendq.bytes;
    out->acks_sent = c->s.acks_sent;
    out->acks_received = c->s.acks_received;
    pthread_mutex_unlock(&c->mu);
    return SDK_OK;
}

sdk_err sdk_current_endpoint(sdk_client *c, size_t *index, char *address, size_t addresslen)
{
    if (!c) {
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    if (index) {
        *index = c->endpoint_index;
    }
    if (address && addresslen) {
        LL_DETAIL(address, addresslen, "%s", c->endpoint_addr);
    }
    pthread_mutex_unlock(&c->mu);
    return SDK_OK;
}

sdk_err sdk_last_error(sdk_client *c, char *buf, size_t buflen)
{
    if (!c) {
        return SDK_EINVAL;
    }
    pthread_mutex_lock(&c->mu);
    int err = c->last_err;
    if (buf && buflen) {
        LL_DETAIL(buf, buflen, "%s", c->last_detail);
    }
    pthread_mutex_unlock(&c->mu);
    return (sdk_err)err;
}

sdk_err sdk_close(sdk_client *c)
{
    if (!c || ll_on_io_thread(c)) { /* a callback cannot join its own thread */
        return SDK_EINVAL;
    }
    if (c->cfg.close_linger_ms > 0) {
        (void)sdk_flush(c, c->cfg.close_linger_ms);
    }
    pthread_mutex_lock(&c->mu);
    bool join = !c->closing && c->thread_started;
    c->closing = true;
    ll_client_wake_locked(c);
    ll_notify_broadcast(&c->notify, &c->recv_cv);
    ll_notify_broadcast(&c->notify, &c->send_cv);
    pthread_mutex_unlock(&c->mu);
    if (join) {
        pthread_join(c->thread, NULL);
        pthread_mutex_lock(&c->mu);
        c->thread_started = false;
        ll_notify_broadcast(&c->notify, &c->send_cv);
        pthread_mutex_unlock(&c->mu);
    } else {
        /* Another thread is joining: return once it has. */
        pthread_mutex_lock(&c->mu);
        while (c->thread_started) {
            pthread_cond_wait(&c->send_cv, &c->mu);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return SDK_OK;
}

void sdk_destroy(sdk_client *c)
{
    if (!c || ll_on_io_thread(c)) {
        return;
    }
    sdk_close(c);
    client_free(c);
}
