/*
 * Client TLS contexts shared within the process: every client made with the same CA file,
 * certificate and key uses one SSL_CTX, so that sdk_connect parses the CA file (and builds
 * OpenSSL's context, a costly step in OpenSSL 3) once, not per client, and an idle client
 * does not carry its own copy of the CA store. Private to the TLS modules (tls.c calls it;
 * it includes OpenSSL).
 *
 * An entry is found by the three paths (NULL, the system store, is a key of its own) and by
 * what stat(2) says of each file now (device, inode, size, modification and change time;
 * for the system store, OpenSSL's default CA file): a file replaced or rewritten since the
 * entry was built gives a new entry, so a new client reads it again. Clients made before
 * keep the entry they had until they are destroyed (a reconnect does not re-read files, as
 * before this cache). Entries are counted by their users; one whose last user has gone is
 * kept for the next client (a program may connect, work and destroy its client again and
 * again), up to LL_TLS_SHARED_IDLE_MAX such entries, the least recently used freed first;
 * an unused entry is also freed as soon as a lookup finds its files changed.
 * What is shared is read only after it is built; each connection's expected host name and
 * offered session are set on its own SSL, so certificate and name are still checked on
 * every handshake.
 */
#ifndef LL_TLS_SHARED_H
#define LL_TLS_SHARED_H

#include "tls.h"

#include <openssl/ssl.h>

typedef struct ll_tls_shared ll_tls_shared;

/* Makes a fresh SSL_CTX for cfg (0 or an sdk_err with detail in err). */
typedef int (*ll_tls_build_fn)(const ll_tls_ctx_config *cfg, SSL_CTX **out, char *err, size_t errlen);

/*
 * The SSL_CTX for the client configuration cfg: the entry's if one matches (see above),
 * else one made by build and entered. On 0, *ssl_ctx is a reference of the caller's own
 * (SSL_CTX_free it) and *entry is to be given to ll_tls_shared_release once that reference
 * is freed. Errors are build's; a failed build enters nothing. Any thread; blocks on stat(2)
 * and, for a new entry, on build's file I/O (without holding the cache's lock).
 */
int ll_tls_shared_acquire(const ll_tls_ctx_config *cfg, ll_tls_build_fn build, ll_tls_shared **entry, SSL_CTX **ssl_ctx,
                          char *err, size_t errlen);
/* Unused entries kept (a few CA stores: tens of KiB each). */
#define LL_TLS_SHARED_IDLE_MAX 4
/* One user less for entry (NULL: nothing); without users it is kept as described above.
 * Any thread. */
void ll_tls_shared_release(ll_tls_shared *entry);
/* Free every entry without users (tests; a program could call it after its last client).
 * Any thread. */
void ll_tls_shared_flush_idle(void);
/* For tests: how many entries the cache holds. */
size_t ll_tls_shared_entries(void);

#endif
