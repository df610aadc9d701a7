/*
 * What store_redis.c lends the other Redis file (store_redis_owner.c): its connection and
 * its address. Both files include hiredis; nothing else in the library does.
 */
#ifndef LL_STORE_REDIS_H
#define LL_STORE_REDIS_H

#include "recstore.h"

#include <hiredis/hiredis.h>

/* One command on the store's connection (connecting first if needed), under st->mu. On 0
 * *out is a reply that is not an error (the caller frees it); otherwise an sdk_err after
 * ll_recstore_fail, the connection dropped if it failed. */
int ll_redis_command(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what,
                     redisReply **out);
/* The same for a command answering an integer >= 0, into *out (the reply freed here). */
int ll_redis_run_int(sdk_store *st, int argc, const char **argv, const size_t *lens, const char *what, uint64_t *out);
/* The address st was opened with. */
const ll_store_url *ll_redis_url(const sdk_store *st);
/* The AUTH command for u's credentials into argv/lens: its argument count, 0 without a
 * password (then no AUTH is due). */
size_t ll_redis_auth_args(const ll_store_url *u, const char *argv[3], size_t lens[3]);
/* The sdk_err of a failed context (its err kind, and errno for I/O errors). */
int ll_redis_code_of(int kind, int err);

#endif
