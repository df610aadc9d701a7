/*
 * The server's TLS ticket keys when it has a session store (lifeline/store.h, "Ticket
 * keys"): a refresher (ticket_refresh.h) keeps them, the TLS context seals with them.
 * Without a store nothing here runs and OpenSSL's keys of this process serve, as before.
 */
#include "server_impl.h"

#include "ll.h"
#include "recstore.h"
#include "ticket_refresh.h"

#include <string.h>

bool ll_server_tickets_config_ok(const sdk_server_config *cfg)
{
    uint64_t rotation = cfg->ticket_key_rotation_ms;
    uint32_t live = cfg->ticket_keys_live;
    return (rotation == 0 || rotation >= LL_TK_ROTATION_MIN_MS) &&
           (live == 0 || (live >= LL_TK_LIVE_MIN && live <= LL_TK_LIVE_MAX));
}

int ll_server_tickets_start(sdk_server *srv, char *why, size_t len)
{
    if (!srv->store) {
        return 0;
    }
    uint64_t rotation = srv->cfg.ticket_key_rotation_ms ? srv->cfg.ticket_key_rotation_ms : LL_TK_ROTATION_DEFAULT_MS;
    unsigned live = srv->cfg.ticket_keys_live ? srv->cfg.ticket_keys_live : LL_TK_LIVE_DEFAULT;
    int rc = ll_tk_refresher_start(srv->store, rotation, live, &srv->tickets);
    if (rc == 0) {
        rc = ll_tls_ctx_share_ticket_keys(srv->tls, ll_tk_refresher_ring(srv->tickets));
    }
    if (rc != 0) {
        LL_DETAIL(why, len, "could not set up the shared TLS ticket keys: %s", sdk_strerror(rc));
    }
    return rc;
}

void ll_server_tickets_stop(sdk_server *srv)
{
    ll_tk_refresher_stop(srv->tickets);
    srv->tickets = NULL;
}

sdk_err sdk_server_ticket_keys(sdk_server *srv, char *buf, size_t buflen)
{
    if (!srv) {
        return SDK_EINVAL;
    }
    char scratch[1];
    if (!buf || buflen == 0) {
        buf = scratch;
        buflen = sizeof(scratch);
    }
    if (!srv->tickets) {
        LL_DETAIL(buf, buflen, "no session store: ticket keys of this process only");
        return SDK_ENOTFOUND;
    }
    ll_tk_status s;
    ll_tk_refresher_status(srv->tickets, &s);
    if (s.last_err == 0) {
        LL_DETAIL(buf, buflen, "shared through the store (%llu fetches, %llu failed)", (unsigned long long)s.fetches,
                  (unsigned long long)s.failures);
    } else {
        LL_DETAIL(buf, buflen, "the store failed (%s): %s", s.detail,
                  s.shared ? "keeping the shared keys already held" : "using a key of this process only");
    }
    return (sdk_err)s.last_err;
}

/* The early welcome across instances. The ticket says which session its client was on and,
 * sealed under the shared keys, that session's token; the record is read, not claimed (the
 * ClientHello may be a replay: LL-EARLY-7), and offered only if the token hashes to the
 * record's hash. The Hello then adopts it (ll_server_adopt_stored), or the connection is
 * sent away as LL-EARLY-6 if the record went meanwhile. */
bool ll_server_peek_stored(sdk_server *srv, uint64_t id, const ll_tls *tls, ll_welcome_values *out)
{
    uint8_t token[LL_TLS_TICKET_SECRET_MAX];
    uint8_t hash[LL_SHA256_LEN];
    ll_buf bytes = {0};
    ll_sessrec r;
    bool ok = ll_tls_ticket_secret(tls, token, sizeof(token)) == sizeof(out->token) &&
              ll_recstore_get(srv->store, id, &bytes, &r) == 0 && ll_tls_sha256(token, sizeof(out->token), hash) == 0 &&
              ll_tls_equal_ct(hash, r.token_hash, sizeof(hash));
    if (ok) {
        *out = (ll_welcome_values){.id = id,
                                   .last_received = r.consumed, /* what a restore resumes from (sessrec.h) */
                                   .hb_interval_ms = r.hb_interval_ms,
                                   .hb_timeout_ms = r.hb_timeout_ms};
        memcpy(out->token, token, sizeof(out->token));
    }
    ll_buf_free(&bytes);
    memset(token, 0, sizeof(token));
    return ok;
}
