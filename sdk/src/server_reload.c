/*
 * TLS reload (sdk_server_reload_tls): the configured files are read again into a new
 * context on the calling thread, swapped in by tls.c, counted, and reported to on_event by
 * the I/O thread, which alone calls it.
 */
#include "server_impl.h"

#include "ll.h"
#include "tls.h"

#include <stdatomic.h>
#include <time.h>

ll_tls_ctx_config ll_server_tls_config(const sdk_server *srv)
{
    return (ll_tls_ctx_config){.server = true,
                               .cert_file = srv->cfg.cert_file,
                               .key_file = srv->cfg.key_file,
                               .client_ca_file = srv->cfg.client_ca_file};
}

void ll_server_note_certificate(sdk_server *srv)
{
    int64_t not_after = ll_tls_ctx_not_after(srv->tls);
    atomic_store_explicit(&srv->metrics.cert_not_after_s, not_after > 0 ? (uint64_t)not_after : 0,
                          memory_order_relaxed);
}

/* What a successful reload reports: the certificate and when it expires. */
static void describe_success(sdk_server *srv, char *buf, size_t len)
{
    time_t when = (time_t)ll_counter_get(&srv->metrics.cert_not_after_s);
    struct tm tm;
    char date[32] = "unknown";
    if (when > 0 && gmtime_r(&when, &tm)) {
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    LL_DETAIL(buf, len, "reloaded %s (expires %s)", srv->cfg.cert_file, date);
}

sdk_err sdk_server_reload_tls(sdk_server *srv, char *err, size_t errlen)
{
    if (!srv) {
        return SDK_EINVAL;
    }
    char why[256] = "";
    pthread_mutex_lock(&srv->mu);
    bool stopping = srv->stopping;
    pthread_mutex_unlock(&srv->mu);
    int rc = SDK_ECLOSED;
    if (stopping) {
        LL_DETAIL(why, sizeof(why), "the server is stopping");
    } else {
        ll_tls_ctx_config tc = ll_server_tls_config(srv);
        rc = ll_tls_ctx_reload(srv->tls, &tc, why, sizeof(why));
        ll_counter_add(rc == 0 ? &srv->metrics.tls_reloads_ok : &srv->metrics.tls_reloads_failed, 1);
        if (rc == 0) {
            ll_server_note_certificate(srv);
            describe_success(srv, why, sizeof(why));
        }
        pthread_mutex_lock(&srv->mu);
        srv->reload_pending = true;
        srv->reload_ok = rc == 0;
        LL_DETAIL(srv->reload_detail, sizeof(srv->reload_detail), "%s", why);
        ll_server_wake_locked(srv);
        pthread_mutex_unlock(&srv->mu);
    }
    if (err && errlen) {
        LL_DETAIL(err, errlen, "%s", why);
    }
    return (sdk_err)rc;
}

void ll_server_reload_event_locked(sdk_server *srv)
{
    if (srv->reload_pending) {
        srv->reload_pending = false;
        ll_server_queue_detail_event(srv, srv->reload_ok ? SDK_SERVER_TLS_RELOADED : SDK_SERVER_TLS_RELOAD_FAILED, NULL,
                                     srv->reload_detail);
    }
}
