/* POSIX networking, wake-up fd and clock: the platform layer. */
#ifndef LL_NET_H
#define LL_NET_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Split "host:port" or "[v6]:port" (an IPv6 literal needs brackets): sdk_parse_address. 0 or SDK_EINVAL. */
int ll_net_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/*
 * Resolve host (again on every call, through ll_resolve: an IP literal directly, a name
 * with c-ares inside the same deadline) and try each address in the resolver's order with
 * a non-blocking connect, until one succeeds or deadline_ms (ll_now_ms clock) passes.
 * If wake_fd >= 0 becomes readable, gives up with SDK_ECLOSED (sdk_close interrupts), in
 * resolution as in connect. On 0 *fd is a connected, non-blocking, tuned socket. Errors:
 * SDK_ERESOLVE (no address, or no answer before the deadline), SDK_ECONNREFUSED (every
 * address refused), SDK_ETIMEDOUT, SDK_ECONNECT, SDK_ECLOSED, SDK_ENOMEM; detail
 * (strerror with the address, or c-ares' reason with the host) in err.
 */
int ll_net_connect(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, int *fd, char *err,
                   size_t errlen);

/* Connect to one resolved address, as ll_net_connect does to each of a name's (deadline,
 * wake_fd, tuning and errors alike, less SDK_ERESOLVE). */
struct ll_addr;
int ll_net_connect_addr(const struct ll_addr *addr, uint64_t deadline_ms, int wake_fd, int *fd, char *err,
                        size_t errlen);
/* addr as "IP:PORT" or "[IPv6]:PORT" into buf ("?" if it cannot be printed). */
void ll_net_format_addr(const struct ll_addr *addr, char *buf, size_t len);

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

/* Wait up to timeout_ms (0: do not block) until fd (-1: none) is ready for events (POLLIN,
 * POLLOUT) or wake_fd (-1: none) is signalled. Returns fd's ready events (0: none, also on
 * EINTR); *woken (may be NULL) says whether wake_fd fired (it is left for ll_wake_drain). */
short ll_net_wait(int fd, short events, int wake_fd, int timeout_ms, bool *woken);

/* Shut our side for writing (a lingering close: the peer sees EOF, we keep reading). */
void ll_net_shutdown_write(int fd);
/* Close fd at once with a reset (SO_LINGER 0): nothing lingers in the kernel, no TIME_WAIT.
 * For connections refused before any byte was exchanged. */
void ll_net_abort(int fd);

/* len random bytes from the kernel (getrandom), retried a bounded number of times on EINTR
 * or a short read. 0, or SDK_EIO. */
int ll_net_random(void *buf, size_t len);

/* A level-triggered readiness poller (epoll) for the server's loop. Events are LL_POLL_*. */
enum { LL_POLL_IN = 1u, LL_POLL_OUT = 2u, LL_POLL_ERR = 4u, LL_POLL_HUP = 8u };
typedef struct ll_poll_event {
    uint32_t events;
    void *ptr;
} ll_poll_event;
/* A new poller's descriptor, or -1. */
int ll_net_poll_open(void);
/* Watch fd for events (0: only errors and hang-ups), reported with ptr. 0 or SDK_EIO. */
int ll_net_poll_add(int poller, int fd, uint32_t events, void *ptr);
int ll_net_poll_mod(int poller, int fd, uint32_t events, void *ptr);
void ll_net_poll_del(int poller, int fd);
/* Wait up to timeout_ms (0: do not block) for ready descriptors: how many were filled into
 * evs (0 on timeout or EINTR). */
int ll_net_poll_wait(int poller, ll_poll_event *evs, int max, int timeout_ms);

/* Wake-up fd (eventfd): signal from any thread, drain on the I/O thread. */
int ll_wake_open(int *fd);
void ll_wake_signal(int fd);
void ll_wake_drain(int fd);

/* Monotonic milliseconds / microseconds; wall-clock milliseconds since the epoch. */
uint64_t ll_now_ms(void);
uint64_t ll_now_us(void);
uint64_t ll_wall_ms(void);

/* Keep SIGPIPE from the process while the calling thread writes to a socket that a library
 * other than ours writes with write(2) (hiredis): a vanished peer then shows as EPIPE, not
 * as the signal's default, the end of the process. Block before the writes, restore after;
 * a SIGPIPE raised in between is consumed. */
typedef struct ll_sigpipe_guard {
    sigset_t old;
    bool was_pending; /* a SIGPIPE already pending is the application's: leave it */
} ll_sigpipe_guard;
void ll_net_sigpipe_block(ll_sigpipe_guard *g);
void ll_net_sigpipe_restore(const ll_sigpipe_guard *g);

#endif
