/*
 * fuzz_conn runs its servers without a session store (srv->store stays NULL), so the store's
 * hooks are never reached; these stand in for server_handover.c, which would pull in the
 * store backends, hiredis and tls.c's hashing. Reaching one is a bug in the hooks' guard.
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
