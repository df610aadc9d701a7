/*
 * fuzz_conn runs its servers without a session store (srv->store stays NULL), so the store's
 * hooks are never reached; these stand in for server_handover.c and server_tickets.c, which
 * would pull in the store backends, hiredis and tls.c's hashing and ticket keys. Reaching one
 * is a bug in the hooks' guard (so is a sync without a store).
 */
#include "server_impl.h"

#include <stdlib.h>

void ll_server_handover_all(sdk_server *srv)
{
    (void)srv;
    abort();
}

srv_session *ll_server_adopt_stored(sdk_server *srv, const Lifeline__Hello *h)
{
    (void)srv;
    (void)h;
    abort();
}

/* Without a store there are no shared ticket keys (server_tickets.c): nothing to start. */
int ll_server_tickets_start(sdk_server *srv, char *why, size_t len)
{
    (void)why;
    (void)len;
    if (srv->store) {
        abort();
    }
    return 0;
}

void ll_server_tickets_stop(sdk_server *srv)
{
    (void)srv;
}

bool ll_server_tickets_config_ok(const sdk_server_config *cfg)
{
    (void)cfg;
    return true;
}

bool ll_server_peek_stored(sdk_server *srv, uint64_t id, const ll_tls *tls, ll_welcome_values *out)
{
    (void)srv;
    (void)id;
    (void)tls;
    (void)out;
    abort();
}

/* server_sync.c keeps a store in step: without one, its hooks do nothing (they are called
 * unconditionally, and return at once when srv->store is NULL). */
void ll_server_want_sync_locked(sdk_server *srv, srv_session *ss, ll_sync_want want)
{
    (void)ss;
    (void)want;
    if (srv->store) {
        abort();
    }
}

void ll_server_sync_forget_locked(sdk_server *srv, srv_session *ss)
{
    (void)srv;
    ll_msgq_free(&ss->unsynced); /* never filled without a store */
}

void ll_server_sync(sdk_server *srv, uint64_t now)
{
    (void)srv;
    (void)now;
    abort();
}

uint64_t ll_server_sync_next(sdk_server *srv)
{
    (void)srv;
    abort();
}

int ll_server_sync_start(sdk_server *srv)
{
    return srv->store ? SDK_EINVAL : 0;
}

void ll_server_sync_finish(sdk_server *srv)
{
    (void)srv;
    abort();
}

void ll_server_sync_stop(sdk_server *srv)
{
    (void)srv;
}

sdk_err sdk_server_store_status(sdk_server *srv, char *detail, size_t len, uint64_t *failures)
{
    (void)srv;
    (void)detail;
    (void)len;
    (void)failures;
    return SDK_OK;
}

/* Without a store a lame-duck window hands nothing over (and fuzz_conn sets no window). */
void ll_server_hand_over_one(sdk_server *srv, srv_session *ss)
{
    (void)srv;
    (void)ss;
    abort();
}

/* Takeover needs a store with channels: none here. */
int ll_server_takeover_start(sdk_server *srv)
{
    (void)srv;
    return 0;
}

void ll_server_takeover_stop(sdk_server *srv)
{
    (void)srv;
}

void ll_server_takeover_free(sdk_server *srv)
{
    (void)srv;
}

void ll_server_takeover_mark_locked(sdk_server *srv, const srv_session *ss)
{
    (void)srv;
    (void)ss;
}

/* Only another instance's claim, through the store, lets a session go. */
void ll_server_let_go_locked(sdk_server *srv, srv_session *ss)
{
    (void)srv;
    (void)ss;
    abort();
}
