/*
 * POSIX networking, wake-up fd and clocks: the platform layer (see net.h).
 *
 * Every socket made here is non-blocking and close-on-exec from birth (SOCK_NONBLOCK |
 * SOCK_CLOEXEC), so no fd leaks into a child process between socket() and fcntl().
 */
#include "net.h"

#include "ll.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PORT_TEXT_LEN 8
#define ADDR_TEXT_LEN (INET6_ADDRSTRLEN + PORT_TEXT_LEN + 4)

/* Keepalive probes sent before the kernel gives up on a silent peer. */
#define KEEPALIVE_PROBES 3

/* ---- host:port ---------------------------------------------------------------------- */

/* Digits only, at most 65535; port 0 is valid (listen on any free port). */
static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    size_t i = 0;

    LL_ENSURE(s[0] != '\0', SDK_EINVAL);
    for (i = 0; s[i] != '\0'; i++) {
        LL_ENSURE(s[i] >= '0' && s[i] <= '9' && i < 5, SDK_EINVAL);
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    LL_ENSURE(v <= 65535, SDK_EINVAL);
    *port = (uint16_t)v;
    return 0;
}

static int copy_host(const char *start, size_t n, char *host, size_t hostlen)
{
    LL_ENSURE(n > 0 && n < hostlen, SDK_EINVAL);
    memcpy(host, start, n);
    host[n] = '\0';
    return 0;
}

int ll_net_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon = NULL;

    LL_ENSURE(s != NULL && host != NULL && port != NULL, SDK_EINVAL);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        LL_ENSURE(close != NULL && close[1] == ':', SDK_EINVAL);
        LL_GUARD(copy_host(s + 1, (size_t)(close - s - 1), host, hostlen));
        return parse_port(close + 2, port);
    }
    /* Without brackets the host has no colon: "::1:7443" is itself an IPv6 address, so an
     * IPv6 literal needs brackets (the one syntax of sdk_parse_address). */
    colon = strchr(s, ':');
    LL_ENSURE(colon != NULL && strchr(colon + 1, ':') == NULL, SDK_EINVAL);
    LL_GUARD(copy_host(s, (size_t)(colon - s), host, hostlen));
    return parse_port(colon + 1, port);
}

/* ---- addresses and time ------------------------------------------------------------- */

/* "127.0.0.1:7443" or "[::1]:7443" for messages and peer names. */
static void format_addr(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    char serv[PORT_TEXT_LEN] = "?";

    if (getnameinfo(sa, salen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        LL_DETAIL(buf, len, "?");
        return;
    }
    if (sa->sa_family == AF_INET6) {
        LL_DETAIL(buf, len, "[%s]:%s", host, serv);
    } else {
        LL_DETAIL(buf, len, "%s:%s", host, serv);
    }
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ll_now_ms(void)
{
    return clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

uint64_t ll_now_us(void)
{
    return clock_ns(CLOCK_MONOTONIC) / 1000u;
}

uint64_t ll_wall_ms(void)
{
    return clock_ns(CLOCK_REALTIME) / 1000000u;
}

/* Milliseconds left until deadline as a poll() timeout (0 once it has passed). */
static int ms_left(uint64_t deadline_ms)
{
    uint64_t now = ll_now_ms();

    if (deadline_ms <= now) {
        return 0;
    }
    return (int)LL_MIN(deadline_ms - now, (uint64_t)INT_MAX);
}

static bool wake_pending(int wake_fd)
{
    struct pollfd p = {.fd = wake_fd, .events = POLLIN};

    return wake_fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

/* ---- connect ------------------------------------------------------------------------ */

static int resolve(const char *host, uint16_t port, int flags, struct addrinfo **res, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char serv[PORT_TEXT_LEN];
    int rc = 0;

    /* No AI_ADDRCONFIG: glibc ignores loopback for it, so "localhost" would fail on a host
     * whose only interface is lo (containers, CI). */
    hints.ai_flags = AI_NUMERICSERV | flags;
    LL_DETAIL(serv, sizeof serv, "%u", (unsigned)port);
    rc = getaddrinfo(host, serv, &hints, res);
    if (rc != 0) {
        LL_DETAIL(err, errlen, "resolve %s: %s", host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return SDK_ERESOLVE;
    }
    return 0;
}

static int connect_failed(const ll_addr *a, int e, char *err, size_t errlen)
{
    char addr[ADDR_TEXT_LEN];

    format_addr((const struct sockaddr *)&a->sa, a->len, addr, sizeof addr);
    LL_DETAIL(err, errlen, "connect %s: %s", addr, strerror(e));
    return e == ECONNREFUSED ? SDK_ECONNREFUSED : SDK_ECONNECT;
}

/* Wait for an in-progress connect: 0 (connected), an error, or ECLOSED/ETIMEDOUT. */
static int wait_connected(int s, const ll_addr *a, uint64_t deadline_ms, int wake_fd, char *err, size_t errlen)
{
    struct pollfd p[2] = {{.fd = s, .events = POLLOUT}, {.fd = wake_fd, .events = POLLIN}};
    int soerr = 0;
    socklen_t len = sizeof soerr;

    for (;;) {
        int n = poll(p, wake_fd >= 0 ? 2 : 1, ms_left(deadline_ms));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return connect_failed(a, errno, err, errlen);
        }
        /* The wake-up wins over a simultaneous connect: closing must not be delayed. */
        if (wake_fd >= 0 && (p[1].revents & POLLIN) != 0) {
            LL_DETAIL(err, errlen, "connect interrupted: closing");
            return SDK_ECLOSED;
        }
        if (n == 0) {
            (void)connect_failed(a, ETIMEDOUT, err, errlen);
            return SDK_ETIMEDOUT;
        }
        if (p[0].revents != 0) {
            break;
        }
    }
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        soerr = errno;
    }
    return soerr == 0 ? 0 : connect_failed(a, soerr, err, errlen);
}

static int connect_one(const ll_addr *a, uint64_t deadline_ms, int wake_fd, int *fd, char *err, size_t errlen)
{
    int rc = 0;
    int s = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (s < 0) {
        return connect_failed(a, errno, err, errlen);
    }
    if (connect(s, (const struct sockaddr *)&a->sa, a->len) != 0) {
        if (errno != EINPROGRESS) {
            rc = connect_failed(a, errno, err, errlen);
            goto out;
        }
        rc = wait_connected(s, a, deadline_ms, wake_fd, err, errlen);
    }
out:
    if (rc != 0) {
        close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

/* Try each address in turn; a timeout or a wake-up ends the whole attempt. */
static int connect_any(const ll_addrs *list, uint64_t deadline_ms, int wake_fd, int *fd, char *err, size_t errlen)
{
    bool all_refused = true;
    int rc = SDK_ECONNECT;

    for (size_t i = 0; i < list->count; i++) {
        if (wake_pending(wake_fd)) {
            LL_DETAIL(err, errlen, "connect interrupted: closing");
            return SDK_ECLOSED;
        }
        rc = connect_one(&list->addr[i], deadline_ms, wake_fd, fd, err, errlen);
        if (rc == 0 || rc == SDK_ECLOSED || rc == SDK_ETIMEDOUT) {
            return rc;
        }
        all_refused = all_refused && rc == SDK_ECONNREFUSED;
    }
    return all_refused ? SDK_ECONNREFUSED : SDK_ECONNECT;
}

int ll_net_connect(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, int *fd, char *err,
                   size_t errlen)
{
    ll_addrs list;
    int rc = 0;

    LL_ENSURE(host != NULL && host[0] != '\0' && fd != NULL, SDK_EINVAL);
    *fd = -1;
    if (wake_pending(wake_fd)) {
        LL_DETAIL(err, errlen, "connect interrupted: closing");
        return SDK_ECLOSED;
    }
    /* Resolution shares the attempt's deadline and watches the wake fd (resolve.c). */
    LL_GUARD(ll_resolve(host, port, deadline_ms, wake_fd, &list, err, errlen));
    rc = connect_any(&list, deadline_ms, wake_fd, fd, err, errlen);
    if (rc == 0) {
        ll_net_nodelay(*fd);
    }
    return rc;
}

int ll_net_connect_addr(const ll_addr *addr, uint64_t deadline_ms, int wake_fd, int *fd, char *err, size_t errlen)
{
    LL_ENSURE(addr != NULL && fd != NULL, SDK_EINVAL);
    *fd = -1;
    ll_addrs one = {.count = 1, .addr = {*addr}};
    int rc = connect_any(&one, deadline_ms, wake_fd, fd, err, errlen);
    if (rc == 0) {
        ll_net_nodelay(*fd);
    }
    return rc;
}

void ll_net_format_addr(const ll_addr *addr, char *buf, size_t len)
{
    format_addr((const struct sockaddr *)&addr->sa, addr->len, buf, len);
}

/* ---- listen and accept -------------------------------------------------------------- */

static int listen_failed(const struct addrinfo *ai, const char *what, char *err, size_t errlen)
{
    char addr[ADDR_TEXT_LEN];

    format_addr(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr);
    LL_DETAIL(err, errlen, "listen %s: %s: %s", addr, what, strerror(errno));
    return SDK_ELISTEN;
}

static int listen_one(const struct addrinfo *ai, int *fd, char *err, size_t errlen)
{
    int on = 1;
    int off = 0;
    int rc = 0;
    int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);

    if (s < 0) {
        return listen_failed(ai, "socket", err, errlen);
    }
    /* REUSEADDR lets a restarted server bind while old connections sit in TIME_WAIT. */
    (void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    /* Dual stack: "::" also accepts IPv4 clients (as ::ffff:a.b.c.d). */
    if (ai->ai_family == AF_INET6) {
        (void)setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    if (bind(s, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = listen_failed(ai, "bind", err, errlen);
        goto out;
    }
    /* The kernel caps the backlog at net.core.somaxconn; ask for enough to absorb a
     * reconnect storm of many clients at once. */
    if (listen(s, LL_MAX(1024, SOMAXCONN)) != 0) {
        rc = listen_failed(ai, "listen", err, errlen);
        goto out;
    }
out:
    if (rc != 0) {
        close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

int ll_net_listen(const char *host, uint16_t port, int *fd, char *err, size_t errlen)
{
    struct addrinfo *list = NULL;
    const struct addrinfo *ai = NULL;
    int rc = SDK_ELISTEN;

    LL_ENSURE(host != NULL && host[0] != '\0' && fd != NULL, SDK_EINVAL);
    *fd = -1;
    if (resolve(host, port, AI_PASSIVE, &list, err, errlen) != 0) {
        return SDK_ELISTEN;
    }
    for (ai = list; ai != NULL; ai = ai->ai_next) {
        rc = listen_one(ai, fd, err, errlen);
        if (rc == 0) {
            break;
        }
    }
    freeaddrinfo(list);
    return rc;
}

uint16_t ll_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    }
    return 0;
}

/* Errors that concern only the connection being accepted (accept(2), Linux notes): the
 * listener is fine, so the caller just tries again. */
static bool accept_transient(int e)
{
    switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

int ll_net_accept(int lfd, int *fd, char *peer, size_t peerlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int s = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (s < 0) {
        /* EMFILE/ENFILE/ENOBUFS/ENOMEM leave the listener readable: the caller must back
         * off rather than spin on it. */
        return accept_transient(errno) ? LL_NET_AGAIN : SDK_EIO;
    }
    if (peer != NULL && peerlen > 0) {
        format_addr((const struct sockaddr *)&ss, len, peer, peerlen);
    }
    ll_net_nodelay(s);
    *fd = s;
    return 0;
}

/* ---- socket options ----------------------------------------------------------------- */

static void set_int(int fd, int level, int name, int value)
{
    /* Best effort: an option the socket type or kernel lacks changes nothing we rely on. */
    (void)setsockopt(fd, level, name, &value, sizeof value);
}

void ll_net_nodelay(int fd)
{
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

void ll_net_keepalive(int fd, int user_timeout_ms)
{
    int idle_s = 0;
    int intvl_s = 0;

    if (user_timeout_ms <= 0) {
        return;
    }
    /* Split the budget: a third idle before the first probe, the rest across the probes,
     * so an idle dead peer is noticed in about user_timeout_ms. */
    idle_s = LL_MAX(1, user_timeout_ms / 3000);
    intvl_s = LL_MAX(1, (user_timeout_ms / 1000 - idle_s) / KEEPALIVE_PROBES);
    set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
    set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl_s);
    set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, KEEPALIVE_PROBES);
    /* Unacknowledged data (a peer that vanished mid-write) fails the socket as well. */
    set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, user_timeout_ms);
}

/* ---- wake-up fd --------------------------------------------------------------------- */

int ll_wake_open(int *fd)
{
    LL_ENSURE(fd != NULL, SDK_EINVAL);
    *fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return *fd < 0 ? SDK_EIO : 0;
}

void ll_wake_signal(int fd)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is saturated: the fd is readable already, which is all a
     * wake-up needs. */
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

void ll_wake_drain(int fd)
{
    uint64_t count = 0;

    /* One read resets a (non-semaphore) eventfd to zero. */
    while (read(fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
}

int ll_net_drain(int fd)
{
    char scratch[16384];
    for (;;) {
        ssize_t n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return 0;
        }
        return SDK_EDISCONNECTED;
    }
}

void ll_net_abort(int fd)
{
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    close(fd);
}

void ll_net_shutdown_write(int fd)
{
    (void)shutdown(fd, SHUT_WR);
}

int ll_net_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    size_t got = 0;
    /* getrandom blocks only before the pool is first seeded, and returns short reads or
     * EINTR only for requests over 256 bytes or signals: a few tries are plenty. */
    for (int tries = 0; got < len && tries < 16; tries++) {
        ssize_t n = getrandom(p + got, len - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            break;
        }
    }
    return got == len ? 0 : SDK_EIO;
}

static uint32_t to_epoll(uint32_t ev)
{
    return ((ev & LL_POLL_IN) ? EPOLLIN : 0u) | ((ev & LL_POLL_OUT) ? EPOLLOUT : 0u);
}

static uint32_t from_epoll(uint32_t ev)
{
    return ((ev & EPOLLIN) ? LL_POLL_IN : 0u) | ((ev & EPOLLOUT) ? LL_POLL_OUT : 0u) |
           ((ev & EPOLLERR) ? LL_POLL_ERR : 0u) | ((ev & EPOLLHUP) ? LL_POLL_HUP : 0u);
}

int ll_net_poll_open(void)
{
    return epoll_create1(EPOLL_CLOEXEC);
}

static int poll_ctl(int poller, int op, int fd, uint32_t events, void *ptr)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = ptr};
    return epoll_ctl(poller, op, fd, &ev) == 0 ? 0 : SDK_EIO;
}

int ll_net_poll_add(int poller, int fd, uint32_t events, void *ptr)
{
    return poll_ctl(poller, EPOLL_CTL_ADD, fd, events, ptr);
}

int ll_net_poll_mod(int poller, int fd, uint32_t events, void *ptr)
{
    return poll_ctl(poller, EPOLL_CTL_MOD, fd, events, ptr);
}

void ll_net_poll_del(int poller, int fd)
{
    (void)epoll_ctl(poller, EPOLL_CTL_DEL, fd, NULL);
}

int ll_net_poll_wait(int poller, ll_poll_event *evs, int max, int timeout_ms)
{
    struct epoll_event raw[128];
    int n = epoll_wait(poller, raw, LL_MIN(max, 128), timeout_ms);
    for (int i = 0; i < n; i++) {
        evs[i] = (ll_poll_event){.events = from_epoll(raw[i].events), .ptr = raw[i].data.ptr};
    }
    return n > 0 ? n : 0;
}

short ll_net_wait(int fd, short events, int wake_fd, int timeout_ms, bool *woken)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = wake_fd, .events = POLLIN}};
    int n = poll(p, 2, timeout_ms); /* a negative fd is ignored by poll */
    if (woken) {
        *woken = n > 0 && p[1].revents != 0;
    }
    return n > 0 ? p[0].revents : 0;
}

void ll_net_sigpipe_block(ll_sigpipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigemptyset(&pending);
    (void)sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    (void)pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
}

void ll_net_sigpipe_restore(const ll_sigpipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigemptyset(&pending);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const struct timespec now = {0, 0};
        while (sigtimedwait(&pipe, NULL, &now) < 0 && errno == EINTR) {
        }
    }
    (void)pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}
