/*
 * lifeline-scale: idle-client scale run against a running lifeline-server.
 *
 * One thread, epoll, non-blocking OpenSSL. Opens --clients N TLS connections (at most
 * --inflight at a time in TCP connect / TLS handshake / Hello), sends Hello with a 5 s
 * heartbeat, then every --interval-ms (jittered per client) a Ping, and reads the Pong.
 * Once all are connected it holds for --hold-s seconds and measures the server process
 * (--server-pid) from /proc: CPU (utime+stime) over the hold, RSS before and after.
 * Progress goes to stderr, the result block to stdout. See README.md ("Scale run").
 */
#include "lifeline.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_CAP 1024 /* Welcome, Pong, Close are all far smaller */
#define WBUF_CAP 128  /* Hello, Ping, Pong */

enum state { ST_FREE = 0, ST_TCP, ST_TLS, ST_HELLO, ST_READY, ST_DEAD };

typedef struct conn {
    int fd;
    enum state st;
    SSL *ssl;
    uint64_t started_us;   /* connect started (for the ramp timeout) */
    uint64_t next_ping_us; /* READY: when to send the next Ping */
    uint64_t ping_sent_us; /* 0: no Ping outstanding */
    uint64_t nonce;
    uint32_t events; /* what epoll currently waits for */
    uint16_t rlen, wlen;
    uint8_t rbuf[RBUF_CAP];
    uint8_t wbuf[WBUF_CAP];
} conn;

static struct {
    int clients, inflight, hold_s, interval_ms, ramp_timeout_s, handshake_timeout_ms;
    const char *host, *ca, *name;
    int port, server_pid;
    int sources; /* source addresses 127.0.0.2, .3, ...; 0: the kernel's choice */
} opt = {10000, 500, 30, 30000, 0, 15000, NULL, NULL, NULL, 0, 0, -1};

static struct {
    long started, connected, handshake_failed, dropped_after_ready, pongs, pongs_in_hold, pings_sent, closes_received,
        ping_timeouts;
    long in_flight, ready;
    uint64_t rtt_sum_us, rtt_max_us, rtt_n; /* over the hold */
    char first_error[256];
} st;

static int ep;
static conn *conns;
static SSL_CTX *ctx;
static struct sockaddr_in addr;
static bool holding;
static uint64_t hold_start_us, hold_end_us;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "lifeline-scale: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void note_error(const char *what)
{
    if (st.first_error[0])
        return;
    unsigned long e = ERR_peek_last_error();
    char ebuf[160] = "";
    if (e)
        ERR_error_string_n(e, ebuf, sizeof ebuf);
    snprintf(st.first_error, sizeof st.first_error, "%s%s%s%s%s", what, e ? ": " : "", ebuf, errno ? " / " : "",
             errno ? strerror(errno) : "");
}

/* /proc/PID/stat utime+stime in clock ticks; -1 if unreadable. */
static long long proc_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    unsigned long long ut = 0, stm = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stm) != 2)
        return -1;
    return (long long)(ut + stm);
}

/* RSS in KiB from /proc/PID/statm ("self" when pid is 0); -1 if unreadable. */
static long proc_rss_kib(int pid)
{
    char path[64];
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/statm", pid);
    else
        snprintf(path, sizeof path, "/proc/self/statm");
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long size = 0, rss = 0;
    int ok = fscanf(f, "%ld %ld", &size, &rss);
    fclose(f);
    return ok == 2 ? rss * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static void want(conn *c, uint32_t ev)
{
    if (c->events == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

static void conn_kill(conn *c, bool failure_counted)
{
    bool was_ready = c->st == ST_READY;
    if (c->st >= ST_TCP && c->st <= ST_HELLO) {
        st.in_flight--;
        if (!failure_counted)
            st.handshake_failed++;
    }
    if (was_ready) {
        st.ready--;
        st.dropped_after_ready++;
    }
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->st = ST_DEAD;
}

/* Encode one frame into c->wbuf (after anything pending). */
static bool queue_frame(conn *c, const Lifeline__Frame *f)
{
    size_t n = lifeline__frame__get_packed_size(f);
    if (c->wlen + 4 + n > WBUF_CAP)
        return false;
    uint8_t *p = c->wbuf + c->wlen;
    p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
    lifeline__frame__pack(f, p + 4);
    c->wlen = (uint16_t)(c->wlen + 4 + n);
    return true;
}

/* Write what is pending. 0: all written or waiting for EPOLLOUT; -1: dead. */
static int flush_out(conn *c)
{
    while (c->wlen) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->wbuf, c->wlen);
        if (n > 0) {
            memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
            c->wlen = (uint16_t)(c->wlen - n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            want(c, EPOLLIN | EPOLLOUT);
            return 0;
        }
        note_error("SSL_write");
        return -1;
    }
    want(c, EPOLLIN);
    return 0;
}

static void send_ping(conn *c, uint64_t now)
{
    Lifeline__Ping ping = LIFELINE__PING__INIT;
    ping.nonce = ++c->nonce;
    ping.timestamp_us = now;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_PING;
    f.ping = &ping;
    if (!queue_frame(c, &f) || flush_out(c) < 0) {
        conn_kill(c, false);
        return;
    }
    c->ping_sent_us = now;
    st.pings_sent++;
    c->next_ping_us += (uint64_t)opt.interval_ms * 1000u;
    if (c->next_ping_us <= now)
        c->next_ping_us = now + (uint64_t)opt.interval_ms * 1000u;
}

/* One decoded frame. -1: the connection must go. */
static int on_frame(conn *c, const uint8_t *body, size_t len)
{
    Lifeline__Frame *f = lifeline__frame__unpack(NULL, len, body);
    if (!f) {
        note_error("unparsable frame from server");
        return -1;
    }
    int rc = 0;
    uint64_t now = now_us();
    switch (f->kind_case) {
    case LIFELINE__FRAME__KIND_WELCOME:
        if (c->st != ST_HELLO) {
            note_error("unexpected Welcome");
            rc = -1;
            break;
        }
        c->st = ST_READY;
        st.in_flight--;
        st.ready++;
        st.connected++;
        /* Spread the clients' pings evenly over one interval. */
        c->next_ping_us = now + (uint64_t)(rand() % opt.interval_ms) * 1000u + 1000u;
        break;
    case LIFELINE__FRAME__KIND_PONG:
        st.pongs++;
        if (holding && now >= hold_start_us && now < hold_end_us) {
            st.pongs_in_hold++;
            uint64_t rtt = f->pong->timestamp_us && now > f->pong->timestamp_us ? now - f->pong->timestamp_us : 0;
            st.rtt_sum_us += rtt;
            st.rtt_n++;
            if (rtt > st.rtt_max_us)
                st.rtt_max_us = rtt;
        }
        c->ping_sent_us = 0;
        break;
    case LIFELINE__FRAME__KIND_PING: {
        Lifeline__Pong pong = LIFELINE__PONG__INIT;
        pong.nonce = f->ping->nonce;
        pong.timestamp_us = f->ping->timestamp_us;
        Lifeline__Frame out = LIFELINE__FRAME__INIT;
        out.kind_case = LIFELINE__FRAME__KIND_PONG;
        out.pong = &pong;
        if (!queue_frame(c, &out) || flush_out(c) < 0)
            rc = -1;
        break;
    }
    case LIFELINE__FRAME__KIND_CLOSE:
        st.closes_received++;
        {
            char what[200];
            snprintf(what, sizeof what, "server sent Close code %d: %s", (int)f->close->code,
                     f->close->reason ? f->close->reason : "");
            note_error(what);
        }
        rc = -1;
        break;
    default:
        break; /* Ack, Data: not expected on an idle connection; ignore */
    }
    lifeline__frame__free_unpacked(f, NULL);
    return rc;
}

static int read_frames(conn *c)
{
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->rbuf + c->rlen, RBUF_CAP - c->rlen);
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ)
                return 0;
            if (e == SSL_ERROR_WANT_WRITE) {
                want(c, EPOLLIN | EPOLLOUT);
                return 0;
            }
            note_error(e == SSL_ERROR_ZERO_RETURN ? "server closed the connection" : "SSL_read");
            return -1;
        }
        c->rlen = (uint16_t)(c->rlen + n);
        size_t off = 0;
        while (c->rlen - off >= 4) {
            const uint8_t *p = c->rbuf + off;
            uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            if (len == 0 || len > RBUF_CAP - 4) {
                note_error("frame length out of range");
                return -1;
            }
            if (c->rlen - off < 4 + len)
                break;
            if (on_frame(c, p + 4, len) < 0)
                return -1;
            off += 4 + len;
        }
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen = (uint16_t)(c->rlen - off);
    }
}

static void send_hello(conn *c)
{
    Lifeline__Hello h = LIFELINE__HELLO__INIT;
    h.version = 1;
    h.heartbeat_interval_ms = (uint32_t)opt.interval_ms;
    h.heartbeat_timeout_ms = (uint32_t)opt.interval_ms * 3;
    h.window_messages = 16;
    h.window_bytes = 65536;
    h.max_frame = 16777216;
    Lifeline__Frame f = LIFELINE__FRAME__INIT;
    f.kind_case = LIFELINE__FRAME__KIND_HELLO;
    f.hello = &h;
    c->st = ST_HELLO;
    if (!queue_frame(c, &f) || flush_out(c) < 0)
        conn_kill(c, false);
}

static void do_handshake(conn *c)
{
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        const unsigned char *alpn = NULL;
        unsigned alen = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
        if (alen != 10 || memcmp(alpn, "lifeline/1", 10) != 0) {
            note_error("server did not select ALPN lifeline/1");
            conn_kill(c, false);
            return;
        }
        send_hello(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        want(c, EPOLLIN);
    else if (e == SSL_ERROR_WANT_WRITE)
        want(c, EPOLLOUT);
    else {
        if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
            char what[128];
            snprintf(what, sizeof what, "certificate verification: %s",
                     X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
            note_error(what);
        } else
            note_error("SSL_connect");
        conn_kill(c, false);
    }
}

/* Client i's source address: 127.0.0.2 + i mod sources, its port picked at connect time
 * (IP_BIND_ADDRESS_NO_PORT), so that each source address has an ephemeral range of its own:
 * how more clients than ports (28232 by default) reach one server address. */
static int bind_source(int fd, int i)
{
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK + 1u + (uint32_t)(i % opt.sources))};
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

static void start_conn(conn *c)
{
    st.started++;
    st.in_flight++;
    c->st = ST_TCP;
    c->started_us = now_us();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_error("socket");
        conn_kill(c, false);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.sources > 0 && bind_source(c->fd, (int)(c - conns)) < 0) {
        note_error("bind to a source address");
        conn_kill(c, false);
        return;
    }
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        note_error("connect");
        conn_kill(c, false);
        return;
    }
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        note_error("SSL_new");
        conn_kill(c, false);
        return;
    }
    if (opt.name) {
        SSL_set_tlsext_host_name(c->ssl, opt.name);
        SSL_set1_host(c->ssl, opt.name);
    } else {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), opt.host);
    }
    SSL_set_connect_state(c->ssl);
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    c->events = EPOLLOUT;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        note_error("epoll_ctl");
        conn_kill(c, false);
    }
}

static void on_event(conn *c, uint32_t ev)
{
    if (c->st == ST_TCP) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            errno = err;
            note_error("TCP connect");
            conn_kill(c, false);
            return;
        }
        c->st = ST_TLS;
        do_handshake(c);
        return;
    }
    if (c->st == ST_TLS) {
        do_handshake(c);
        return;
    }
    if (c->st != ST_HELLO && c->st != ST_READY)
        return;
    if ((ev & EPOLLOUT) && c->wlen && flush_out(c) < 0) {
        conn_kill(c, false);
        return;
    }
    if ((ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) && read_frames(c) < 0)
        conn_kill(c, false);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: lifeline-scale --connect HOST:PORT --ca FILE [options]\n"
                 "  --clients N          idle TLS clients to open (default 10000)\n"
                 "  --inflight N         connections at once in TCP connect / TLS handshake / Hello (default 500)\n"
                 "  --hold-s S           seconds to hold once all are connected, measuring (default 30)\n"
                 "  --interval-ms MS     heartbeat (Ping) interval announced and used (default 30000)\n"
                 "  --sources N          bind clients to N source addresses 127.0.0.2.. in turn (default:\n"
                 "                       one per 20000 clients when HOST is loopback; 0: the kernel's choice)\n"
                 "  --server-pid PID     the server process to measure (/proc/PID/stat, statm)\n"
                 "  --server-name NAME   verify this DNS name and send it as SNI (default: verify the IP of HOST)\n"
                 "  --ramp-timeout-s S   give up ramping after S seconds (default 60 + N/100)\n");
}

static void parse(int argc, char **argv)
{
    enum { CLIENTS = 1, CONNECT, CA, HOLD, SERVER_PID, INFLIGHT, INTERVAL, NAME, RAMP, SOURCES, HELP };
    static const struct option longs[] = {{"clients", required_argument, NULL, CLIENTS},
                                          {"connect", required_argument, NULL, CONNECT},
                                          {"ca", required_argument, NULL, CA},
                                          {"hold-s", required_argument, NULL, HOLD},
                                          {"server-pid", required_argument, NULL, SERVER_PID},
                                          {"inflight", required_argument, NULL, INFLIGHT},
                                          {"interval-ms", required_argument, NULL, INTERVAL},
                                          {"server-name", required_argument, NULL, NAME},
                                          {"ramp-timeout-s", required_argument, NULL, RAMP},
                                          {"sources", required_argument, NULL, SOURCES},
                                          {"help", no_argument, NULL, HELP},
                                          {NULL, 0, NULL, 0}};
    static char host[256];
    int o;
    while ((o = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (o) {
        case CLIENTS:
            opt.clients = atoi(optarg);
            break;
        case CONNECT: {
            const char *colon = strrchr(optarg, ':');
            if (!colon || colon == optarg || (size_t)(colon - optarg) >= sizeof host)
                die("--connect wants HOST:PORT, not '%s'", optarg);
            memcpy(host, optarg, (size_t)(colon - optarg));
            host[colon - optarg] = 0;
            opt.host = host;
            opt.port = atoi(colon + 1);
            break;
        }
        case CA:
            opt.ca = optarg;
            break;
        case HOLD:
            opt.hold_s = atoi(optarg);
            break;
        case SERVER_PID:
            opt.server_pid = atoi(optarg);
            break;
        case INFLIGHT:
            opt.inflight = atoi(optarg);
            break;
        case INTERVAL:
            opt.interval_ms = atoi(optarg);
            break;
        case NAME:
            opt.name = optarg;
            break;
        case RAMP:
            opt.ramp_timeout_s = atoi(optarg);
            break;
        case SOURCES:
            opt.sources = atoi(optarg);
            break;
        case HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(64);
        }
    }
    if (optind < argc || !opt.host || !opt.ca || opt.clients < 1 || opt.inflight < 1 || opt.hold_s < 0 ||
        opt.interval_ms < 100 || opt.port < 1 || opt.port > 65535) {
        usage(stderr);
        exit(64);
    }
    if (!opt.ramp_timeout_s)
        opt.ramp_timeout_s = 60 + opt.clients / 100;
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1)
        die("--connect: HOST must be an IPv4 address (loopback), not '%s'", opt.host);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt.port);
    bool loopback = (ntohl(addr.sin_addr.s_addr) >> 24) == 127;
    if (opt.sources < 0)
        opt.sources = loopback ? (opt.clients + 19999) / 20000 : 0;
    if (opt.sources > 250 || (opt.sources > 0 && !loopback))
        die("--sources: at most 250, and only towards a loopback HOST, not '%s'", opt.host);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    if (rl.rlim_cur < (rlim_t)opt.clients + 100) {
        char msg[160];
        snprintf(msg, sizeof msg, "%llu (hard limit) < clients + 100 = %d; raise it (ulimit -Hn, limits.conf)",
                 (unsigned long long)rl.rlim_cur, opt.clients + 100);
        die("open files limit %s", msg);
    }
}

/* Per-tick work: start connections, time out stuck handshakes, send due pings. */
static void tick(uint64_t now)
{
    for (int i = 0; i < opt.clients; i++) {
        conn *c = &conns[i];
        if (c->st == ST_READY) {
            if (c->next_ping_us <= now)
                send_ping(c, now);
            else if (c->ping_sent_us && now - c->ping_sent_us > (uint64_t)opt.interval_ms * 3000u) {
                st.ping_timeouts++;
                note_error("no Pong within 3 intervals");
                conn_kill(c, false);
            }
        } else if (c->st >= ST_TCP && c->st <= ST_HELLO &&
                   now - c->started_us > (uint64_t)opt.handshake_timeout_ms * 1000u) {
            note_error("connect/handshake/Welcome timed out");
            conn_kill(c, false);
        }
    }
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)getpid());

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("%s", "SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1)
        die("cannot load CA file %s", opt.ca);
    static const unsigned char alpn[] = "\x0alifeline/1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    conns = calloc((size_t)opt.clients, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        die("%s", "out of memory / epoll_create1");
    for (int i = 0; i < opt.clients; i++)
        conns[i].fd = -1;

    long srv_rss_before = opt.server_pid ? proc_rss_kib(opt.server_pid) : -1;
    if (opt.server_pid && srv_rss_before < 0) {
        char pid[32];
        snprintf(pid, sizeof pid, "%d", opt.server_pid);
        die("cannot read /proc/%s/statm", pid);
    }
    long gen_rss_before = proc_rss_kib(0);
    fprintf(stderr,
            "lifeline-scale: %d clients to %s:%d from %d source addresses, %d in flight, ping every %d ms, hold %d s\n",
            opt.clients, opt.host, opt.port, opt.sources, opt.inflight, opt.interval_ms, opt.hold_s);

    uint64_t t0 = now_us(), ramp_deadline = t0 + (uint64_t)opt.ramp_timeout_s * 1000000u;
    uint64_t last_tick = 0, last_progress = t0, ramp_us = 0;
    int next = 0;
    long srv_rss_after = -1, gen_rss_after = -1;
    long long cpu_start = -1, cpu_end = -1;
    struct rusage ru0, ru1;
    struct epoll_event evs[512];
    bool done = false;
    while (!done) {
        while (!holding && next < opt.clients && st.in_flight < opt.inflight)
            start_conn(&conns[next++]);
        int n = epoll_wait(ep, evs, 512, 20);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        uint64_t now = now_us();
        if (now - last_tick >= 20000) {
            tick(now);
            last_tick = now;
        }
        if (now - last_progress >= 1000000) {
            fprintf(stderr, "  t=%5.1fs %s: ready %ld, in flight %ld, handshake failures %ld, dropped %ld, pongs %ld\n",
                    (double)(now - t0) / 1e6, holding ? "hold" : "ramp", st.ready, st.in_flight, st.handshake_failed,
                    st.dropped_after_ready, st.pongs);
            last_progress = now;
        }
        if (!holding && ((next == opt.clients && st.in_flight == 0) || now > ramp_deadline)) {
            if (now > ramp_deadline)
                fprintf(stderr, "lifeline-scale: ramp timed out after %d s; holding with %ld ready\n",
                        opt.ramp_timeout_s, st.ready);
            ramp_us = now - t0;
            /* Let the last handshakes' work settle before the measured window. */
            srv_rss_after = opt.server_pid ? proc_rss_kib(opt.server_pid) : -1;
            gen_rss_after = proc_rss_kib(0);
            holding = true;
            hold_start_us = now;
            /* Nothing to hold when no client got through: report at once. */
            hold_end_us = now + (st.ready ? (uint64_t)opt.hold_s * 1000000u : 0);
            cpu_start = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
            getrusage(RUSAGE_SELF, &ru0);
            fprintf(stderr, "lifeline-scale: %ld ready after %.1f s; holding %d s\n", st.ready, (double)ramp_us / 1e6,
                    opt.hold_s);
        }
        if (holding && now >= hold_end_us) {
            cpu_end = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
            getrusage(RUSAGE_SELF, &ru1);
            done = true;
        }
    }
    uint64_t hold_us = st.connected ? now_us() - hold_start_us : 0;
    long srv_rss_end = opt.server_pid ? proc_rss_kib(opt.server_pid) : -1;
    double hz = (double)sysconf(_SC_CLK_TCK);
    double gen_cpu =
        (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
        (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

    printf("== lifeline-scale result ==\n");
    printf("clients requested          %d\n", opt.clients);
    printf("clients connected          %ld (ramp %.1f s, %d in flight)\n", st.connected, (double)ramp_us / 1e6,
           opt.inflight);
    printf("handshake failures         %ld\n", st.handshake_failed);
    printf("dropped after connecting   %ld (of which no Pong in 3 intervals: %ld; Close from server: %ld)\n",
           st.dropped_after_ready, st.ping_timeouts, st.closes_received);
    printf("still connected at end     %ld\n", st.ready);
    printf("hold window                %.1f s\n", (double)hold_us / 1e6);
    printf("pongs in hold window       %ld (expected about %.0f = connected x hold / %.1f s)\n", st.pongs_in_hold,
           (double)st.ready * (double)hold_us / 1e6 / (opt.interval_ms / 1000.0), opt.interval_ms / 1000.0);
    if (st.rtt_n)
        printf("ping round trip in hold    mean %.0f us, max %.0f us\n", (double)st.rtt_sum_us / (double)st.rtt_n,
               (double)st.rtt_max_us);
    if (cpu_start >= 0 && cpu_end >= 0)
        printf("server CPU during hold     %.2f %% of one core (%lld ticks at %.0f Hz over %.1f s)\n",
               100.0 * (double)(cpu_end - cpu_start) / hz / ((double)hold_us / 1e6), cpu_end - cpu_start, hz,
               (double)hold_us / 1e6);
    else
        printf("server CPU during hold     n/a (no --server-pid)\n");
    if (srv_rss_before >= 0 && srv_rss_after >= 0) {
        printf("server RSS                 %ld KiB before, %ld KiB all connected, %ld KiB after hold\n", srv_rss_before,
               srv_rss_after, srv_rss_end);
        if (st.connected)
            printf("server RSS per client      %.1f KiB ((all connected - before) / connected)\n",
                   (double)(srv_rss_after - srv_rss_before) / (double)st.connected);
    }
    printf("generator RSS              %ld KiB (%.1f KiB per client); generator CPU in hold %.1f %% of one core\n",
           gen_rss_after, st.connected ? (double)(gen_rss_after - gen_rss_before) / (double)st.connected : 0.0,
           hold_us ? 100.0 * gen_cpu / ((double)hold_us / 1e6) : 0.0);
    if (st.first_error[0])
        printf("first error                %s\n", st.first_error);
    fflush(stdout);

    for (int i = 0; i < opt.clients; i++)
        if (conns[i].ssl)
            SSL_free(conns[i].ssl), conns[i].ssl = NULL;
    /* fds close at exit */
    SSL_CTX_free(ctx);
    free(conns);
    bool ok = st.connected == opt.clients && st.ready == opt.clients;
    return ok ? 0 : 2;
}
