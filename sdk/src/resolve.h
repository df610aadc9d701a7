/*
 * Host name resolution inside a deadline, through c-ares (the resolver gRPC uses): no
 * thread, no blocking call. The caller's thread polls c-ares' sockets together with the
 * client's wake-up fd, so resolution ends at the deadline or at sdk_close, whichever
 * comes first. IP literals never reach the resolver.
 */
#ifndef LL_RESOLVE_H
#define LL_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* At most this many addresses are kept from one answer, in the resolver's order. */
#define LL_RESOLVE_MAX 16

typedef struct ll_addr {
    struct sockaddr_storage sa;
    socklen_t len;
} ll_addr;

typedef struct ll_addrs {
    size_t count;
    ll_addr addr[LL_RESOLVE_MAX];
} ll_addrs;

/*
 * Resolve host (a name, or an IPv4/IPv6 literal, which is parsed without the resolver)
 * into TCP addresses with the given port, in the order to try them. Blocks until the
 * answer, deadline_ms (ll_now_ms clock) or wake_fd (>= 0) becoming readable. 0 with
 * out->count >= 1, SDK_ERESOLVE (no address; the deadline passed: err names host and
 * c-ares' reason), SDK_ECLOSED (woken), SDK_ENOMEM, or SDK_EINVAL (empty host).
 */
int ll_resolve(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, ll_addrs *out, char *err,
               size_t errlen);

/*
 * Test-only: the DNS servers every later ll_resolve asks, as c-ares'
 * ares_set_servers_ports_csv takes them ("127.0.0.1:5353"); NULL: the system's
 * (resolv.conf). Not thread-safe against running resolutions: set it before connecting.
 */
void ll_resolve_test_servers(const char *csv);

#endif
