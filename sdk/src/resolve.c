/*
 * Resolution inside a deadline (see resolve.h). c-ares is driven the way curl and gRPC's
 * poller drive it: ares_getsock says which sockets to watch, poll() waits on them, the
 * wake-up fd and the earlier of c-ares' own timer and our deadline, and ares_process_fd
 * moves the queries on (with ARES_SOCKET_BAD on a timeout, so c-ares' retries happen). A
 * channel lives for one resolution: resolv.conf and /etc/hosts are read again each time, as
 * getaddrinfo would, and nothing is shared between clients or threads.
 */
#include "resolve.h"

#include "ll.h"
#include "net.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status = ARES_SUCCESS;
/* Set by a test before any client starts (pthread_create orders it before the I/O thread). */
static char test_servers[128];

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

void ll_resolve_test_servers(const char *csv)
{
    LL_DETAIL(test_servers, sizeof test_servers, "%s", csv ? csv : "");
}

/* An IPv4 or IPv6 literal: the one address, without asking anyone. */
static bool parse_literal(const char *host, uint16_t port, ll_addrs *out)
{
    ll_addr *a = &out->addr[0];
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->sa;

    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a->len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a->len = sizeof *v6;
    } else {
        return false;
    }
    out->count = 1;
    return true;
}

typedef struct query {
    bool done;
    int status; /* ARES_* once done */
    uint16_t port;
    ll_addrs *out;
} query;

static void copy_nodes(const struct ares_addrinfo_node *n, query *q)
{
    for (; n != NULL && q->out->count < LL_RESOLVE_MAX; n = n->ai_next) {
        bool inet = n->ai_family == AF_INET || n->ai_family == AF_INET6;
        if (!inet || n->ai_addr == NULL || (size_t)n->ai_addrlen > sizeof(struct sockaddr_storage)) {
            continue;
        }
        ll_addr *a = &q->out->addr[q->out->count++];
        memset(a, 0, sizeof *a);
        memcpy(&a->sa, n->ai_addr, (size_t)n->ai_addrlen);
        a->len = (socklen_t)n->ai_addrlen;
        if (n->ai_family == AF_INET) {
            ((struct sockaddr_in *)&a->sa)->sin_port = htons(q->port);
        } else {
            ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(q->port);
        }
    }
}

/* ares_getaddrinfo's callback: also called with ARES_EDESTRUCTION by ares_destroy. */
static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    query *q = arg;

    (void)timeouts;
    if (q->done) {
        return;
    }
    q->done = true;
    q->status = status;
    if (status == ARES_SUCCESS && res != NULL) {
        copy_nodes(res->nodes, q);
        q->status = q->out->count > 0 ? ARES_SUCCESS : ARES_ENODATA;
    }
    if (res != NULL) {
        ares_freeaddrinfo(res);
    }
}

static int ares_failed(const char *host, int status, char *err, size_t errlen)
{
    LL_DETAIL(err, errlen, "resolve %s: %s", host, ares_strerror(status));
    return status == ARES_ENOMEM ? SDK_ENOMEM : SDK_ERESOLVE;
}

static int open_channel(ares_channel *ch, const char *host, char *err, size_t errlen)
{
    struct ares_options opts;
    int rc = 0;

    pthread_once(&lib_once, lib_init);
    if (lib_status != ARES_SUCCESS) {
        return ares_failed(host, lib_status, err, errlen);
    }
    memset(&opts, 0, sizeof opts);
    rc = ares_init_options(ch, &opts, 0);
    if (rc != ARES_SUCCESS) {
        return ares_failed(host, rc, err, errlen);
    }
    if (test_servers[0] != '\0' && (rc = ares_set_servers_ports_csv(*ch, test_servers)) != ARES_SUCCESS) {
        ares_destroy(*ch);
        return ares_failed(host, rc, err, errlen);
    }
    return 0;
}

/* The poll timeout: the earlier of c-ares' next timer and the deadline, rounded up so a
 * sub-millisecond timer does not spin; 0 once the deadline has passed. */
static int poll_timeout(ares_channel ch, uint64_t deadline_ms)
{
    uint64_t now = ll_now_ms();
    uint64_t left = deadline_ms > now ? deadline_ms - now : 0;
    struct timeval max = {.tv_sec = (time_t)(left / 1000), .tv_usec = (suseconds_t)(left % 1000) * 1000};
    struct timeval tv;
    const struct timeval *t = ares_timeout(ch, &max, &tv);
    uint64_t ms = (uint64_t)t->tv_sec * 1000u + ((uint64_t)t->tv_usec + 999u) / 1000u;

    return (int)LL_MIN(LL_MIN(ms, left), (uint64_t)INT_MAX);
}

/* c-ares' sockets into p (read and/or write as it asks); returns how many. */
static nfds_t watch_sockets(ares_channel ch, struct pollfd *p)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    nfds_t n = 0;

    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev =
            (short)((ARES_GETSOCK_READABLE(bits, i) ? POLLIN : 0) | (ARES_GETSOCK_WRITABLE(bits, i) ? POLLOUT : 0));
        if (ev == 0) {
            break; /* the sockets come first, without gaps */
        }
        p[n++] = (struct pollfd){.fd = socks[i], .events = ev};
    }
    return n;
}

static void process(ares_channel ch, const struct pollfd *p, nfds_t n, int ready)
{
    if (ready <= 0) {
        ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timers: retries, give-ups */
        return;
    }
    for (nfds_t i = 0; i < n; i++) {
        if (p[i].revents != 0) {
            bool rd = (p[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
            bool wr = (p[i].revents & POLLOUT) != 0;
            ares_process_fd(ch, rd ? p[i].fd : ARES_SOCKET_BAD, wr ? p[i].fd : ARES_SOCKET_BAD);
        }
    }
}

/* Run the channel until the query is answered (0), the deadline (SDK_ETIMEDOUT) or a
 * wake-up (SDK_ECLOSED). */
static int drive(ares_channel ch, query *q, uint64_t deadline_ms, int wake_fd)
{
    struct pollfd p[ARES_GETSOCK_MAXNUM + 1];

    while (!q->done) {
        nfds_t n = watch_sockets(ch, p);
        int timeout = poll_timeout(ch, deadline_ms);
        if (timeout == 0 && ll_now_ms() >= deadline_ms) {
            return SDK_ETIMEDOUT;
        }
        p[n] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
        int ready = poll(p, n + (wake_fd >= 0 ? 1 : 0), timeout);
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (wake_fd >= 0 && ready > 0 && (p[n].revents & POLLIN) != 0) {
            return SDK_ECLOSED;
        }
        process(ch, p, n, ready);
    }
    return 0;
}

int ll_resolve(const char *host, uint16_t port, uint64_t deadline_ms, int wake_fd, ll_addrs *out, char *err,
               size_t errlen)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    query q = {.port = port, .out = out};
    ares_channel ch = NULL;
    int rc = 0;

    LL_ENSURE(host != NULL && host[0] != '\0' && out != NULL, SDK_EINVAL);
    out->count = 0;
    if (parse_literal(host, port, out)) {
        return 0;
    }
    LL_GUARD(open_channel(&ch, host, err, errlen));
    ares_getaddrinfo(ch, host, NULL, &hints, on_answer, &q); /* may answer at once (hosts file) */
    rc = drive(ch, &q, deadline_ms, wake_fd);
    if (rc == SDK_ETIMEDOUT) {
        LL_DETAIL(err, errlen, "resolve %s: no answer before the connect deadline (c-ares: %s)", host,
                  ares_strerror(ARES_ETIMEOUT));
        rc = SDK_ERESOLVE;
    } else if (rc == SDK_ECLOSED) {
        LL_DETAIL(err, errlen, "resolve %s interrupted: closing", host);
    } else if (q.status != ARES_SUCCESS) {
        rc = ares_failed(host, q.status, err, errlen);
    }
    ares_destroy(ch); /* an unanswered query ends here, with ARES_EDESTRUCTION */
    if (rc != 0) {
        out->count = 0;
    }
    return rc;
}
