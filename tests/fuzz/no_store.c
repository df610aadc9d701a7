/*
 * fuzz_conn runs its servers without a session store (srv->store stays NULL), so the store's
 * hooks are never reached; these stand in for server_handover.c and server_tickets.c, which
 * would pull in the store backends, hiredis and tls.c's hashing and ticket keys. Reaching one
 * is a bug in the hooks' guard.
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
