/* POSIX networking, wake-up fd and clock: the platform layer. */
#ifndef LL_NET_H
#define LL_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Split "host:port" or "[v6]:port" (an IPv6 literal needs brackets): sdk_parse_address. 0 or SDK_EINVAL. */
int ll_net_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/*
 * Resolve host (again on every call) and try each address in getaddrinfo order with a
 * non-blocking connect, until one succeeds or deadline_ms (ll_now_ms clock) passes.
 * If wake_fd >= 0 becomes readable, gives up with SDK_ECLOSED (sdk_close interrupts).
 * On 0 *fd is a connected, non-blocking, tuned socket. Errors: SDK_ERESOLVE,
 * SDK_ECONNREFUSED (every address refused), SDK_ETIMEDOUT, SDK_ECONNECT, SDK_ECLOSED;
 * detail (strerror / gai_strerror with the address) in err.
 */
int ll_net_connect(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, int *fd, char *err,
                   size_t errlen);

/* Non-blocking listening socket (SO_REUSEADDR, IPV6_V6ONLY off for "::"). 0 or SDK_ELISTEN. */
int ll_net_listen(const char *host, uint16_t port, int *fd, char *err, size_t errlen);
uint16_t ll_net_local_port(int fd);
/* Accept one connection, non-blocking and tuned; peer "ip:port" into peer. 0, LL_NET_AGAIN, or SDK_EIO. */
enum { LL_NET_AGAIN = -1 };
int ll_net_accept(int lfd, int *fd, char *peer, size_t peerlen);
/* TCP_NODELAY: frames are small and latency matters (the session batches writes itself).
 * ll_net_connect and ll_net_accept set it. */
void ll_net_nodelay(int fd);
/* SO_KEEPALIVE with probes so a dead peer is found within about user_timeout_ms, and
 * TCP_USER_TIMEOUT = user_timeout_ms (<= 0: nothing; the system defaults stay). */
void ll_net_keepalive(int fd, int user_timeout_ms);

/* Read and discard what the socket holds: 0 while it stays open, SDK_EDISCONNECTED at EOF
 * or error. For lingering closes when TLS can no longer be used. */
int ll_net_drain(int fd);

/* Wake-up fd (eventfd): signal from any thread, drain on the I/O thread. */
int ll_wake_open(int *fd);
void ll_wake_signal(int fd);
void ll_wake_drain(int fd);

/* Monotonic milliseconds / microseconds; wall-clock milliseconds since the epoch. */
uint64_t ll_now_ms(void);
uint64_t ll_now_us(void);
uint64_t ll_wall_ms(void);

#endif
