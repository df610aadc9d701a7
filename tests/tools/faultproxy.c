/*
 * faultproxy: see faultproxy.h for the contract.
 *
 * One proxy thread owns every socket and runs a poll() loop. Other threads never
 * touch a socket: they edit the wanted settings under p->mu, bump p->cmd_seq,
 * write a byte to the wake pipe and wait on p->applied_cv until the thread reports
 * that sequence number applied. Lock order: p->mu is the only lock.
 *
 * Each connection carries two flows (client->server and server->client). A flow
 * is one fixed buffer; the thread stops reading a side while the flow out of it is
 * full, so memory stays bounded and backpressure reaches the sender's kernel.
 * Delay is done with "marks": each chunk read records its end offset and when it
 * may leave, and only bytes up to the last due mark are written.
 */
#include "faultproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS   1000000LL
#define NO_DEADLINE INT64_MAX
/* Chunks that may wait out a delay per flow; reading pauses when they are all in use. */
#define MAX_MARKS 256
/* How long a cleanly closed connection keeps discarding input so close() stays a FIN. */
#define DRAIN_NS (1000 * NS_PER_MS)
/* Accepts per loop turn, so a connection storm cannot starve forwarding. */
#define ACCEPT_BURST 16
#define POLL_SLOTS   (2 + 2 * FP_MAX_CONNS)

typedef struct addr {
    struct sockaddr_storage ss;
    socklen_t len;
} addr;

/* What callers asked for. Callers write p->want under p->mu; the thread copies it. */
typedef struct settings {
    bool blackhole;
    bool refuse;
    int delay_ms;
    int reset_min_ms;
    int reset_max_ms;
    addr target;
} settings;

typedef struct mark {
    uint64_t upto;  /* flow->in after the chunk */
    int64_t due_ns; /* when the chunk may be written */
} mark;

/* Bytes read from one socket waiting to be written to the other. */
typedef struct flow {
    uint8_t *buf;
    size_t start, end; /* unsent bytes are buf[start, end) */
    uint64_t in;       /* bytes ever read */
    uint64_t out;      /* bytes ever written */
    uint64_t released; /* bytes ever allowed out (delay passed) */
    mark marks[MAX_MARKS];
    size_t mark_head, mark_count;
    bool eof;  /* the source sent FIN */
    bool shut; /* the FIN was passed on */
} flow;

typedef enum conn_state {
    C_WAITING,    /* accepted during a blackhole; server not contacted yet */
    C_CONNECTING, /* non-blocking connect to the server in progress */
    C_OPEN,
    C_DRAINING, /* FIN sent by fp_close_all; discarding input until EOF or deadline */
    C_DEAD,
} conn_state;

typedef struct conn {
    conn_state state;
    int cfd, sfd;
    flow up;   /* client -> server */
    flow down; /* server -> client */
    int64_t drain_until_ns;
    int cslot, sslot; /* pollfd index this turn, or -1 */
} conn;

struct fp_proxy {
    /* Set before the thread starts, then read-only. */
    pthread_t thread;
    addr listen_addr; /* with the bound port */
    uint16_t port;
    int wake_rd, wake_wr;

    pthread_mutex_t mu; /* guards the block below */
    pthread_cond_t applied_cv;
    settings want;
    unsigned pending_resets, pending_closes;
    bool stop;
    uint64_t cmd_seq, applied_seq;
    int listen_errno; /* errno of the last reopen of the listener, 0 if fine */
    fp_stats published;

    /* Owned by the proxy thread. */
    settings cur;
    uint64_t seen_seq;
    int lfd;
    conn *conns[FP_MAX_CONNS];
    size_t nconns;
    fp_stats stats;
    int64_t next_reset_ns;
    uint64_t rng;
};

/* ---- small helpers ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* xorshift64*: reproducibility across runs is not needed, only spread. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* The proxy re-chunks the stream; Nagle would add its own delays on top. */
static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Close with SO_LINGER 0, which makes the kernel send RST instead of FIN. */
static void abort_fd(int fd)
{
    if (fd < 0) {
        return;
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void wake(fp_proxy *p)
{
    char b = 1;
    /* A full pipe already holds a wake-up, so EAGAIN is fine to ignore. */
    ssize_t n = write(p->wake_wr, &b, 1);
    (void)n;
}

/* ---- loopback-only address resolution ---- */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static int refuse_host(const char *host)
{
    fprintf(stderr,
            "faultproxy: refusing host \"%s\": only 127.0.0.0/8, ::1 and localhost are "
            "allowed, so tests never send traffic off this machine\n",
            host);
    errno = EPERM;
    return -1;
}

/* Prefer IPv4 for "localhost": test servers usually listen on 127.0.0.1. */
static const struct addrinfo *pick_addr(const struct addrinfo *res)
{
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            return ai;
        }
    }
    return res;
}

/*
 * Only numeric addresses and "localhost" (answered from /etc/hosts) are looked up,
 * so no name ever reaches DNS; every answer must still be loopback.
 */
static int resolve_loopback(const char *host, uint16_t port, addr *out)
{
    if (host == NULL || out == NULL) {
        errno = EINVAL;
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    if (strcmp(host, "localhost") != 0) {
        hints.ai_flags |= AI_NUMERICHOST;
    }
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL) {
        return refuse_host(host);
    }
    int rc = 0;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) {
            rc = refuse_host(host);
            goto out;
        }
    }
    const struct addrinfo *ai = pick_addr(res);
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = ai->ai_addrlen;
out:
    freeaddrinfo(res);
    return rc;
}

static uint16_t addr_port(const addr *a)
{
    if (a->ss.ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

int fp_parse_hostport(const char *s, char *host, size_t host_len, uint16_t *port)
{
    if (s == NULL || host == NULL || port == NULL) {
        goto bad;
    }
    const char *colon = strrchr(s, ':');
    if (colon == NULL) {
        goto bad;
    }
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        h = s + 1;
        hlen -= 2;
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (hlen == 0 || hlen >= host_len || colon[1] == '\0' || *end != '\0' || errno != 0 || v > 65535) {
        goto bad;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)v;
    return 0;
bad:
    errno = EINVAL;
    return -1;
}

/* ---- listener ---- */

static int open_listener(const addr *a)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    /* Reopening after fp_set_refuse must not trip over TIME_WAIT on the same port. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 128) < 0 || set_nonblock(fd) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* ---- flows ---- */

static size_t flow_used(const flow *f)
{
    return f->end - f->start;
}

static bool flow_can_read(const flow *f)
{
    return !f->eof && flow_used(f) < FP_BUF_SIZE && f->mark_count < MAX_MARKS;
}

static bool flow_can_write(const flow *f)
{
    return f->released > f->out;
}

/* Record when the chunk just read may leave. Keeps due times monotonic so order holds. */
static void flow_mark(flow *f, int64_t due_ns)
{
    if (f->mark_count == 0 && due_ns == 0) {
        f->released = f->in;
        return;
    }
    if (f->mark_count > 0) {
        const mark *last = &f->marks[(f->mark_head + f->mark_count - 1) % MAX_MARKS];
        if (due_ns < last->due_ns) {
            due_ns = last->due_ns;
        }
    }
    f->marks[(f->mark_head + f->mark_count) % MAX_MARKS] = (mark){f->in, due_ns};
    f->mark_count++;
}

static void flow_release(flow *f, int64_t now)
{
    while (f->mark_count > 0 && f->marks[f->mark_head].due_ns <= now) {
        f->released = f->marks[f->mark_head].upto;
        f->mark_head = (f->mark_head + 1) % MAX_MARKS;
        f->mark_count--;
    }
}

static int64_t flow_next_due(const flow *f)
{
    return f->mark_count > 0 ? f->marks[f->mark_head].due_ns : NO_DEADLINE;
}

/* Read one chunk from fd. Returns -1 on a socket error (the peer reset, usually). */
static int flow_fill(flow *f, int fd, int64_t delay_ns, int64_t now)
{
    if (f->end == FP_BUF_SIZE) {
        memmove(f->buf, f->buf + f->start, flow_used(f));
        f->end -= f->start;
        f->start = 0;
    }
    ssize_t n = recv(fd, f->buf + f->end, FP_BUF_SIZE - f->end, 0);
    if (n > 0) {
        f->end += (size_t)n;
        f->in += (uint64_t)n;
        flow_mark(f, delay_ns == 0 ? 0 : now + delay_ns);
        return 0;
    }
    if (n == 0) {
        f->eof = true;
        return 0;
    }
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
}

/* Write released bytes to fd and count them. Returns -1 on a socket error. */
static int flow_flush(flow *f, int fd, uint64_t *counter)
{
    size_t n = (size_t)(f->released - f->out);
    ssize_t w = send(fd, f->buf + f->start, n, MSG_NOSIGNAL);
    if (w < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    }
    f->start += (size_t)w;
    f->out += (uint64_t)w;
    *counter += (uint64_t)w;
    if (f->start == f->end) {
        f->start = f->end = 0;
    }
    return 0;
}

/* Pass a half-close on once everything before it has been delivered. */
static void flow_forward_fin(flow *f, int fd)
{
    if (f->eof && !f->shut && f->out == f->in) {
        (void)shutdown(fd, SHUT_WR);
        f->shut = true;
    }
}

/* ---- connections ---- */

static void conn_abort(conn *c)
{
    abort_fd(c->cfd);
    abort_fd(c->sfd);
    c->cfd = c->sfd = -1;
    c->state = C_DEAD;
}

/* Plain close: FIN, or RST if the kernel still holds unread input. */
static void conn_close(conn *c)
{
    if (c->cfd >= 0) {
        close(c->cfd);
    }
    if (c->sfd >= 0) {
        close(c->sfd);
    }
    c->cfd = c->sfd = -1;
    c->state = C_DEAD;
}

static void conn_free(conn *c)
{
    conn_close(c);
    free(c->up.buf);
    free(c->down.buf);
    free(c);
}

static void conn_start_connect(fp_proxy *p, conn *c)
{
    const addr *t = &p->cur.target;
    c->sfd = socket(t->ss.ss_family, SOCK_STREAM, 0);
    if (c->sfd < 0 || set_nonblock(c->sfd) < 0) {
        goto fail;
    }
    set_nodelay(c->sfd);
    if (connect(c->sfd, (const struct sockaddr *)&t->ss, t->len) == 0) {
        c->state = C_OPEN;
        return;
    }
    if (errno == EINPROGRESS) {
        c->state = C_CONNECTING;
        return;
    }
fail:
    /* The server is unreachable: the client sees a reset, as a dead route would give. */
    conn_abort(c);
}

static void conn_finish_connect(conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
        conn_abort(c);
        return;
    }
    c->state = C_OPEN;
}

/* FIN both ways now, then keep reading so unread input does not turn close() into RST. */
static void conn_begin_drain(conn *c, int64_t now)
{
    if (c->state == C_OPEN) {
        (void)shutdown(c->sfd, SHUT_WR);
    } else if (c->sfd >= 0) {
        close(c->sfd);
        c->sfd = -1;
    }
    (void)shutdown(c->cfd, SHUT_WR);
    c->state = C_DRAINING;
    c->drain_until_ns = now + DRAIN_NS;
}

static void drain_fd(conn *c, int *fd)
{
    ssize_t n = recv(*fd, c->up.buf, FP_BUF_SIZE, 0);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
        return;
    }
    close(*fd);
    *fd = -1;
}

static void conn_service_draining(conn *c, short crev, short srev, int64_t now)
{
    if (crev != 0 && c->cfd >= 0) {
        drain_fd(c, &c->cfd);
    }
    if (srev != 0 && c->sfd >= 0) {
        drain_fd(c, &c->sfd);
    }
    if ((c->cfd < 0 && c->sfd < 0) || now >= c->drain_until_ns) {
        conn_close(c);
    }
}

static void conn_service_open(fp_proxy *p, conn *c, short crev, short srev, int64_t now)
{
    int64_t delay_ns = (int64_t)p->cur.delay_ms * NS_PER_MS;
    int rc = 0;
    /* A reset from one peer is passed on to the other, like a real broken path. */
    if ((crev | srev) & POLLERR) {
        goto fail;
    }
    if ((crev & (POLLIN | POLLHUP)) && flow_can_read(&c->up)) {
        rc |= flow_fill(&c->up, c->cfd, delay_ns, now);
    }
    if ((srev & (POLLIN | POLLHUP)) && flow_can_read(&c->down)) {
        rc |= flow_fill(&c->down, c->sfd, delay_ns, now);
    }
    if ((srev & POLLOUT) && flow_can_write(&c->up)) {
        rc |= flow_flush(&c->up, c->sfd, &p->stats.bytes_to_target);
    }
    if ((crev & POLLOUT) && flow_can_write(&c->down)) {
        rc |= flow_flush(&c->down, c->cfd, &p->stats.bytes_to_client);
    }
    if (rc != 0) {
        goto fail;
    }
    flow_forward_fin(&c->up, c->sfd);
    flow_forward_fin(&c->down, c->cfd);
    if (c->up.shut && c->down.shut) {
        conn_close(c);
    }
    return;
fail:
    conn_abort(c);
}

static conn *conn_new(int cfd)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->up.buf = malloc(FP_BUF_SIZE);
    c->down.buf = malloc(FP_BUF_SIZE);
    if (c->up.buf == NULL || c->down.buf == NULL) {
        free(c->up.buf);
        free(c->down.buf);
        free(c);
        return NULL;
    }
    c->cfd = cfd;
    c->sfd = -1;
    c->cslot = c->sslot = -1;
    c->state = C_WAITING;
    return c;
}

/* ---- the proxy thread: commands and timers ---- */

static void schedule_reset(fp_proxy *p, int64_t now)
{
    int lo = p->cur.reset_min_ms;
    int hi = p->cur.reset_max_ms;
    if (hi == 0) {
        p->next_reset_ns = NO_DEADLINE;
        return;
    }
    uint64_t span = (uint64_t)(hi - lo) + 1;
    int64_t ms = lo + (int64_t)(rng_next(&p->rng) % span);
    p->next_reset_ns = now + ms * NS_PER_MS;
}

static void reset_all(fp_proxy *p)
{
    for (size_t i = 0; i < p->nconns; i++) {
        conn *c = p->conns[i];
        if (c->state == C_DEAD) {
            continue;
        }
        if (c->state != C_DRAINING) {
            p->stats.resets++;
        }
        conn_abort(c);
    }
}

static void close_all(fp_proxy *p, int64_t now)
{
    for (size_t i = 0; i < p->nconns; i++) {
        conn *c = p->conns[i];
        if (c->state == C_WAITING || c->state == C_CONNECTING || c->state == C_OPEN) {
            conn_begin_drain(c, now);
            p->stats.closes++;
        }
    }
}

/* Accept one connection. Returns false when the backlog is empty. */
static bool accept_one(fp_proxy *p)
{
    int fd = p->lfd < 0 ? -1 : accept(p->lfd, NULL, NULL);
    if (fd < 0) {
        return false;
    }
    p->stats.accepted++;
    conn *c = NULL;
    if (p->nconns < FP_MAX_CONNS && set_nonblock(fd) == 0) {
        c = conn_new(fd);
    }
    if (c == NULL) {
        abort_fd(fd);
        return true;
    }
    set_nodelay(fd);
    p->conns[p->nconns++] = c;
    if (!p->cur.blackhole) {
        conn_start_connect(p, c);
    }
    return true;
}

static void accept_new(fp_proxy *p)
{
    for (int i = 0; i < ACCEPT_BURST && accept_one(p); i++) {
    }
}

/* Open or close the listener to match p->cur.refuse. Returns 0 or an errno. */
static int sync_listener(fp_proxy *p)
{
    if (p->cur.refuse && p->lfd >= 0) {
        close(p->lfd);
        p->lfd = -1;
    } else if (!p->cur.refuse && p->lfd < 0) {
        p->lfd = open_listener(&p->listen_addr);
        if (p->lfd < 0) {
            return errno;
        }
    }
    return 0;
}

/* Take the callers' latest requests and report them applied. Returns true on stop. */
static bool apply_commands(fp_proxy *p, int64_t now)
{
    pthread_mutex_lock(&p->mu);
    settings want = p->want;
    unsigned resets = p->pending_resets;
    unsigned closes = p->pending_closes;
    p->pending_resets = p->pending_closes = 0;
    bool stop = p->stop;
    uint64_t seq = p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    if (seq == p->seen_seq) {
        return stop;
    }

    bool reset_timer_changed = want.reset_min_ms != p->cur.reset_min_ms || want.reset_max_ms != p->cur.reset_max_ms;
    /*
     * Take in the backlog first: a command must reach every connection whose connect()
     * returned before it, even if this thread had not accepted it yet.
     */
    while (accept_one(p)) {
    }
    p->cur = want;
    if (resets > 0) {
        reset_all(p);
    }
    if (closes > 0) {
        close_all(p, now);
    }
    if (reset_timer_changed) {
        schedule_reset(p, now);
    }
    int listen_err = sync_listener(p);
    p->seen_seq = seq;

    pthread_mutex_lock(&p->mu);
    p->applied_seq = seq;
    p->listen_errno = listen_err;
    p->published = p->stats;
    pthread_cond_broadcast(&p->applied_cv);
    pthread_mutex_unlock(&p->mu);
    return stop;
}

static void run_timers(fp_proxy *p, int64_t now)
{
    if (now >= p->next_reset_ns) {
        reset_all(p);
        schedule_reset(p, now);
    }
    for (size_t i = 0; i < p->nconns; i++) {
        conn *c = p->conns[i];
        if (c->state == C_WAITING && !p->cur.blackhole) {
            conn_start_connect(p, c);
        }
        if (c->state == C_DRAINING && now >= c->drain_until_ns) {
            conn_close(c);
        }
        flow_release(&c->up, now);
        flow_release(&c->down, now);
    }
}

/* ---- the proxy thread: poll ---- */

static int add_slot(struct pollfd *pfds, int *n, int fd, short events)
{
    if (fd < 0 || events == 0) {
        return -1;
    }
    pfds[*n] = (struct pollfd){.fd = fd, .events = events};
    return (*n)++;
}

/*
 * Ask only for what can make progress: an fd polled for nothing is left out, or
 * POLLHUP on it would wake the loop forever.
 */
static void conn_events(const fp_proxy *p, const conn *c, short *cev, short *sev)
{
    *cev = *sev = 0;
    switch (c->state) {
    case C_DRAINING:
        *cev = *sev = POLLIN;
        break;
    case C_CONNECTING:
        *sev = p->cur.blackhole ? 0 : POLLOUT;
        break;
    case C_OPEN:
        if (p->cur.blackhole) {
            break;
        }
        *cev = (short)((flow_can_read(&c->up) ? POLLIN : 0) | (flow_can_write(&c->down) ? POLLOUT : 0));
        *sev = (short)((flow_can_read(&c->down) ? POLLIN : 0) | (flow_can_write(&c->up) ? POLLOUT : 0));
        break;
    default:
        break;
    }
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Fill pfds: [0] wake pipe, then the listener, then the connections. */
static int build_pollset(fp_proxy *p, struct pollfd *pfds, int *lslot, int64_t *deadline)
{
    int n = 0;
    (void)add_slot(pfds, &n, p->wake_rd, POLLIN);
    *lslot = add_slot(pfds, &n, p->lfd, POLLIN);
    *deadline = p->next_reset_ns;
    for (size_t i = 0; i < p->nconns; i++) {
        conn *c = p->conns[i];
        short cev, sev;
        conn_events(p, c, &cev, &sev);
        c->cslot = add_slot(pfds, &n, c->cfd, cev);
        c->sslot = add_slot(pfds, &n, c->sfd, sev);
        if (c->state == C_DRAINING) {
            *deadline = min64(*deadline, c->drain_until_ns);
        }
        *deadline = min64(*deadline, min64(flow_next_due(&c->up), flow_next_due(&c->down)));
    }
    return n;
}

static int timeout_ms(int64_t deadline, int64_t now)
{
    if (deadline == NO_DEADLINE) {
        return -1;
    }
    if (deadline <= now) {
        return 0;
    }
    /* Round up: waking early would only spin once more, waking late breaks delays. */
    int64_t ms = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void service_conns(fp_proxy *p, const struct pollfd *pfds, int64_t now)
{
    for (size_t i = 0; i < p->nconns; i++) {
        conn *c = p->conns[i];
        short crev = c->cslot >= 0 ? pfds[c->cslot].revents : 0;
        short srev = c->sslot >= 0 ? pfds[c->sslot].revents : 0;
        switch (c->state) {
        case C_CONNECTING:
            if (srev != 0) {
                conn_finish_connect(c);
            }
            break;
        case C_OPEN:
            if ((crev | srev) != 0) {
                conn_service_open(p, c, crev, srev, now);
            }
            break;
        case C_DRAINING:
            conn_service_draining(c, crev, srev, now);
            break;
        default:
            break;
        }
    }
}

static void reap(fp_proxy *p)
{
    size_t kept = 0;
    for (size_t i = 0; i < p->nconns; i++) {
        if (p->conns[i]->state == C_DEAD) {
            conn_free(p->conns[i]);
        } else {
            p->conns[kept++] = p->conns[i];
        }
    }
    p->nconns = kept;
}

static void drain_wake(int fd)
{
    char b[64];
    while (read(fd, b, sizeof b) > 0) {
    }
}

static void *proxy_main(void *arg)
{
    fp_proxy *p = arg;
    struct pollfd pfds[POLL_SLOTS];
    while (!apply_commands(p, now_ns())) {
        int64_t now = now_ns();
        run_timers(p, now);
        int lslot;
        int64_t deadline;
        int n = build_pollset(p, pfds, &lslot, &deadline);
        if (poll(pfds, (nfds_t)n, timeout_ms(deadline, now)) < 0) {
            continue; /* EINTR: revents are undefined, go round again */
        }
        now = now_ns();
        if (pfds[0].revents != 0) {
            drain_wake(p->wake_rd);
        }
        service_conns(p, pfds, now);
        if (lslot >= 0 && pfds[lslot].revents != 0) {
            accept_new(p);
        }
        reap(p);
    }
    for (size_t i = 0; i < p->nconns; i++) {
        conn_free(p->conns[i]);
    }
    p->nconns = 0;
    if (p->lfd >= 0) {
        close(p->lfd);
        p->lfd = -1;
    }
    return NULL;
}

/* ---- public API ---- */

/* Wake the thread and block until it has applied seq. Returns the listener errno then. */
static int await_applied(fp_proxy *p, uint64_t seq)
{
    wake(p);
    pthread_mutex_lock(&p->mu);
    while (p->applied_seq < seq) {
        pthread_cond_wait(&p->applied_cv, &p->mu);
    }
    int listen_err = p->listen_errno;
    pthread_mutex_unlock(&p->mu);
    return listen_err;
}

static int make_wake_pipe(fp_proxy *p)
{
    int fds[2];
    if (pipe(fds) < 0) {
        return -1;
    }
    p->wake_rd = fds[0];
    p->wake_wr = fds[1];
    if (set_nonblock(fds[0]) < 0 || set_nonblock(fds[1]) < 0) {
        return -1;
    }
    return 0;
}

static void destroy(fp_proxy *p)
{
    if (p->lfd >= 0) {
        close(p->lfd);
    }
    if (p->wake_rd >= 0) {
        close(p->wake_rd);
    }
    if (p->wake_wr >= 0) {
        close(p->wake_wr);
    }
    pthread_cond_destroy(&p->applied_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Bind the listener and learn its port before the thread exists, so errors surface here. */
static int setup(fp_proxy *p, const char *listen_host, uint16_t listen_port, const char *target_host,
                 uint16_t target_port)
{
    if (resolve_loopback(listen_host, listen_port, &p->listen_addr) < 0 ||
        resolve_loopback(target_host, target_port, &p->want.target) < 0) {
        return -1;
    }
    p->lfd = open_listener(&p->listen_addr);
    if (p->lfd < 0) {
        return -1;
    }
    p->listen_addr.len = sizeof p->listen_addr.ss;
    if (getsockname(p->lfd, (struct sockaddr *)&p->listen_addr.ss, &p->listen_addr.len) < 0) {
        return -1;
    }
    p->port = addr_port(&p->listen_addr);
    if (make_wake_pipe(p) < 0) {
        return -1;
    }
    p->cur = p->want;
    p->next_reset_ns = NO_DEADLINE;
    p->rng = (uint64_t)now_ns() ^ ((uint64_t)(uintptr_t)p << 16) ^ (uint64_t)getpid();
    p->rng |= 1; /* xorshift must not start at zero */
    return 0;
}

int fp_start(const char *listen_host, uint16_t listen_port, const char *target_host, uint16_t target_port,
             fp_proxy **out)
{
    if (out == NULL) {
        errno = EINVAL;
        return -1;
    }
    *out = NULL;
    fp_proxy *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return -1;
    }
    p->lfd = p->wake_rd = p->wake_wr = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->applied_cv, NULL);
    int rc = setup(p, listen_host, listen_port, target_host, target_port);
    if (rc == 0) {
        rc = pthread_create(&p->thread, NULL, proxy_main, p);
        if (rc != 0) {
            errno = rc;
            rc = -1;
        }
    }
    if (rc != 0) {
        int e = errno;
        destroy(p);
        errno = e;
        return -1;
    }
    *out = p;
    return 0;
}

uint16_t fp_port(const fp_proxy *p)
{
    return p->port;
}

void fp_reset_all(fp_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->pending_resets++;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
}

void fp_close_all(fp_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->pending_closes++;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
}

void fp_set_blackhole(fp_proxy *p, bool on)
{
    pthread_mutex_lock(&p->mu);
    p->want.blackhole = on;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
}

int fp_set_delay_ms(fp_proxy *p, int ms)
{
    if (ms < 0) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->want.delay_ms = ms;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
    return 0;
}

int fp_set_refuse(fp_proxy *p, bool on)
{
    pthread_mutex_lock(&p->mu);
    p->want.refuse = on;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    int listen_err = await_applied(p, seq);
    if (!on && listen_err != 0) {
        errno = listen_err;
        return -1;
    }
    return 0;
}

int fp_set_target(fp_proxy *p, const char *host, uint16_t port)
{
    addr target;
    if (resolve_loopback(host, port, &target) < 0) {
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->want.target = target;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
    return 0;
}

int fp_random_resets(fp_proxy *p, int min_ms, int max_ms)
{
    if (min_ms < 0 || max_ms < min_ms || (max_ms == 0 && min_ms != 0)) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->want.reset_min_ms = min_ms;
    p->want.reset_max_ms = max_ms;
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
    return 0;
}

void fp_get_stats(fp_proxy *p, fp_stats *out)
{
    pthread_mutex_lock(&p->mu);
    uint64_t seq = ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    (void)await_applied(p, seq);
    pthread_mutex_lock(&p->mu);
    *out = p->published;
    pthread_mutex_unlock(&p->mu);
}

void fp_stop(fp_proxy *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    ++p->cmd_seq;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    pthread_join(p->thread, NULL);
    destroy(p);
}
