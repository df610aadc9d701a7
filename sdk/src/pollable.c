/* sdk_fd and sdk_server_fd: the descriptor an event loop watches instead of a blocked thread
 * (sdk.h, server.h; notify.h holds the mechanism). */
#include "client.h"
#include "ll.h"
#include "server_impl.h"

sdk_err sdk_fd(sdk_client *c, int *fd)
{
    LL_ENSURE(c != NULL && fd != NULL, SDK_EINVAL);
    return ll_notify_fd(&c->notify, fd);
}

sdk_err sdk_server_fd(sdk_server *srv, int *fd)
{
    LL_ENSURE(srv != NULL && fd != NULL, SDK_EINVAL);
    return ll_notify_fd(&srv->notify, fd);
}
