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
#include "scale.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

scale_counts st;
conn *conns;

static int ep;
static SSL_CTX *ctx;
static bool holding;
static uint64_t hold_start_us, hold_end_us;

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "lifeline-scale: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* The first error of the run, or (once the storm began) of the storm, where refused connects
 * and GOING_AWAY are expected and retried. */
static void note_error(const char *what)
{
    char *slot = storm_active() ? st.storm_error : st.first_error;
    if (slot[0])
        return;
    unsigned long e = ERR_peek_last_error();
    char ebuf[160] = "";
    if (e)
        ERR_error_string_n(e, ebuf, sizeof ebuf);
    snprintf(slot, sizeof st.first_error, "%s%s%s%s%s", what, e ? ": " : "", ebuf, errno ? " / " : "",
             errno ? strerror(errno) : "");
}

/* /proc/PID/stat utime+stime in clock ticks; -1 if unreadable. */
long long proc_cpu_ticks(int pid)
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

/* The connection is gone: dead, or in the storm queued to reconnect. */
static void conn_kill(conn *c, bool failure_counted)
{
    bool was_ready = c->st == ST_READY, storm = storm_active();
    if (c->st >= ST_TCP && c->st <= ST_HELLO) {
        st.in_flight--;
        if (!failure_counted && !storm)
            st.handshake_failed++;
    }
    if (was_ready) {
        st.ready--;
        if (!storm)
            st.dropped_after_ready++;
    }
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->st = ST_DEAD;
    if (storm)
        storm_requeue(c, was_ready);
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

/* The Welcome: keep the session to resume it. A second one for the same session on a READY
 * connection (LL-EARLY-4, after an early Welcome) only restates heartbeat values. */
static int on_welcome(conn *c, const Lifeline__Welcome *w, uint64_t now)
{
    if (c->st == ST_READY && w->session_id == c->session_id)
        return 0;
    if (c->st != ST_HELLO || w->session_id == 0 || w->resume_token.len > TOKEN_CAP) {
        note_error("unexpected Welcome");
        return -1;
    }
    c->session_id = w->session_id;
    c->token_len = (uint8_t)w->resume_token.len;
    memcpy(c->token, w->resume_token.data, w->resume_token.len);
    c->st = ST_READY;
    st.in_flight--;
    st.ready++;
    if (!storm_active()) /* the result block counts the first connects; the storm its own */
        st.connected++;
    /* Spread the clients' pings evenly over one interval. */
    c->next_ping_us = now + (uint64_t)(rand() % opt.interval_ms) * 1000u + 1000u;
    if (storm_active())
        storm_on_ready(c, w->resumed);
    return 0;
}

/* A Close ends the connection; GOING_AWAY is the storm's restart, not an error. */
static void on_close(const Lifeline__Close *cl)
{
    if (storm_active() && cl->code == LIFELINE__CLOSE__CODE__GOING_AWAY)
        return;
    st.closes_received++;
    char what[200];
    snprintf(what, sizeof what, "server sent Close code %d: %s", (int)cl->code, cl->reason ? cl->reason : "");
    note_error(what);
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
        rc = on_welcome(c, f->welcome, now);
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
        on_close(f->close);
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
    if (c->session_id) { /* LL-SESSION-5: name the session; nothing was ever received */
        h.session_id = c->session_id;
        h.resume_token.data = c->token;
        h.resume_token.len = c->token_len;
    }
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
        if (storm_active())
            storm_on_handshake(c);
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

/* c's TLS object on its socket: verification of the server, and the ticket to offer. */
static bool new_ssl(conn *c)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
        return false;
    SSL_set_app_data(c->ssl, c);
    if (c->ticket) { /* a copy again: c->ticket stays resumable whatever this connection meets */
        SSL_SESSION *copy = SSL_SESSION_dup(c->ticket);
        int ok = copy && SSL_set_session(c->ssl, copy) == 1;
        SSL_SESSION_free(copy);
        if (!ok)
            return false;
    }
    if (opt.name) {
        SSL_set_tlsext_host_name(c->ssl, opt.name);
        SSL_set1_host(c->ssl, opt.name);
    } else {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), opt.host);
    }
    SSL_set_connect_state(c->ssl);
    return true;
}

void start_conn(conn *c)
{
    st.started++;
    st.in_flight++;
    c->st = ST_TCP;
    c->started_us = now_us();
    c->rlen = c->wlen = 0;
    c->ping_sent_us = 0;
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
    if (connect(c->fd, (struct sockaddr *)&opt.addr, sizeof opt.addr) < 0 && errno != EINPROGRESS) {
        note_error("connect");
        conn_kill(c, false);
        return;
    }
    if (!new_ssl(c)) {
        note_error("SSL_new");
        conn_kill(c, false);
        return;
    }
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
        if (storm_active())
            storm_on_connected();
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

/* The client SSL_CTX: TLS 1.2+, the CA, ALPN lifeline/1, tickets kept per connection. */
static void setup_tls(void)
{
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
    if (opt.storm_pid_file)
        storm_setup_ctx(ctx);
    else
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

/* What the result block needs from the phases of the run. */
static struct {
    uint64_t t0, ramp_us, hold_us;
    long ready_at_hold_end;
    long srv_rss_before, srv_rss_after, srv_rss_end, gen_rss_before, gen_rss_after;
    long long cpu_start, cpu_end;
    struct rusage ru0, ru1;
} run = {.srv_rss_after = -1, .gen_rss_after = -1, .cpu_start = -1, .cpu_end = -1};

static void setup(void)
{
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)getpid());
    setup_tls();
    conns = calloc((size_t)opt.clients, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0)
        die("%s", "out of memory / epoll_create1");
    for (int i = 0; i < opt.clients; i++)
        conns[i].fd = -1;
    run.srv_rss_before = opt.server_pid ? proc_rss_kib(opt.server_pid) : -1;
    if (opt.server_pid && run.srv_rss_before < 0) {
        char pid[32];
        snprintf(pid, sizeof pid, "%d", opt.server_pid);
        die("cannot read /proc/%s/statm", pid);
    }
    run.gen_rss_before = proc_rss_kib(0);
    fprintf(
        stderr,
        "lifeline-scale: %d clients to %s:%d from %d source addresses, %d in flight, ping every %d ms, hold %d s%s\n",
        opt.clients, opt.host, opt.port, opt.sources, opt.inflight, opt.interval_ms, opt.hold_s,
        opt.storm_pid_file ? ", then the restart storm" : "");
}

/* The ramp is over (all in, or timed out): measure the start of the hold. */
static void begin_hold(uint64_t now, bool timed_out)
{
    if (timed_out)
        fprintf(stderr, "lifeline-scale: ramp timed out after %d s; holding with %ld ready\n", opt.ramp_timeout_s,
                st.ready);
    run.ramp_us = now - run.t0;
    /* Let the last handshakes' work settle before the measured window. */
    run.srv_rss_after = opt.server_pid ? proc_rss_kib(opt.server_pid) : -1;
    run.gen_rss_after = proc_rss_kib(0);
    holding = true;
    hold_start_us = now;
    /* Nothing to hold when no client got through: report at once. */
    hold_end_us = now + (st.ready ? (uint64_t)opt.hold_s * 1000000u : 0);
    run.cpu_start = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
    getrusage(RUSAGE_SELF, &run.ru0);
    fprintf(stderr, "lifeline-scale: %ld ready after %.1f s; holding %d s\n", st.ready, (double)run.ramp_us / 1e6,
            opt.hold_s);
}

/* The hold is over: measure its end (before a storm changes the server). */
static void end_hold(uint64_t now)
{
    run.cpu_end = opt.server_pid ? proc_cpu_ticks(opt.server_pid) : -1;
    getrusage(RUSAGE_SELF, &run.ru1);
    run.hold_us = st.connected ? now - hold_start_us : 0;
    run.srv_rss_end = opt.server_pid ? proc_rss_kib(opt.server_pid) : -1;
    run.ready_at_hold_end = st.ready;
}

static void progress(uint64_t now, const char *phase)
{
    fprintf(stderr, "  t=%5.1fs %s: ready %ld, in flight %ld, handshake failures %ld, dropped %ld, pongs %ld\n",
            (double)(now - run.t0) / 1e6, phase, st.ready, st.in_flight, st.handshake_failed, st.dropped_after_ready,
            st.pongs);
}

/* Ramp, hold, and (with --storm) the restart storm; returns once there is a result. */
static void run_phases(void)
{
    enum { PH_RAMP, PH_HOLD, PH_STORM, PH_DONE } phase = PH_RAMP;
    static const char *names[] = {"ramp", "hold", "storm", "done"};
    run.t0 = now_us();
    uint64_t ramp_deadline = run.t0 + (uint64_t)opt.ramp_timeout_s * 1000000u, last_tick = 0, last_progress = run.t0;
    int next = 0;
    struct epoll_event evs[512];
    while (phase != PH_DONE) {
        while (phase == PH_RAMP && next < opt.clients && st.in_flight < opt.inflight)
            start_conn(&conns[next++]);
        int n = epoll_wait(ep, evs, 512, phase == PH_STORM ? 2 : 20);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        uint64_t now = now_us();
        if (now - last_tick >= 20000) {
            tick(now);
            last_tick = now;
        }
        if (now - last_progress >= 1000000) {
            progress(now, names[phase]);
            last_progress = now;
        }
        if (phase == PH_RAMP && ((next == opt.clients && st.in_flight == 0) || now > ramp_deadline)) {
            begin_hold(now, now > ramp_deadline);
            phase = PH_HOLD;
        } else if (phase == PH_HOLD && now >= hold_end_us) {
            end_hold(now);
            phase = opt.storm_pid_file && st.ready && storm_begin() ? PH_STORM : PH_DONE;
        } else if (phase == PH_STORM && storm_step(now)) {
            phase = PH_DONE;
        }
    }
}

static void print_memory(double gen_cpu)
{
    uint64_t hold_us = run.hold_us;
    if (run.srv_rss_before >= 0 && run.srv_rss_after >= 0) {
        printf("server RSS                 %ld KiB before, %ld KiB all connected, %ld KiB after hold\n",
               run.srv_rss_before, run.srv_rss_after, run.srv_rss_end);
        if (st.connected)
            printf("server RSS per client      %.1f KiB ((all connected - before) / connected)\n",
                   (double)(run.srv_rss_after - run.srv_rss_before) / (double)st.connected);
    }
    printf("generator RSS              %ld KiB (%.1f KiB per client); generator CPU in hold %.1f %% of one core\n",
           run.gen_rss_after,
           st.connected ? (double)(run.gen_rss_after - run.gen_rss_before) / (double)st.connected : 0.0,
           hold_us ? 100.0 * gen_cpu / ((double)hold_us / 1e6) : 0.0);
    if (st.first_error[0])
        printf("first error                %s\n", st.first_error);
}

static void print_idle_result(void)
{
    uint64_t hold_us = run.hold_us;
    double hz = (double)sysconf(_SC_CLK_TCK);
    const struct rusage *ru0 = &run.ru0, *ru1 = &run.ru1;
    double gen_cpu =
        (double)(ru1->ru_utime.tv_sec - ru0->ru_utime.tv_sec + ru1->ru_stime.tv_sec - ru0->ru_stime.tv_sec) +
        (double)(ru1->ru_utime.tv_usec - ru0->ru_utime.tv_usec + ru1->ru_stime.tv_usec - ru0->ru_stime.tv_usec) / 1e6;
    printf("== lifeline-scale result ==\n");
    printf("clients requested          %d\n", opt.clients);
    printf("clients connected          %ld (ramp %.1f s, %d in flight)\n", st.connected, (double)run.ramp_us / 1e6,
           opt.inflight);
    printf("handshake failures         %ld\n", st.handshake_failed);
    printf("dropped after connecting   %ld (of which no Pong in 3 intervals: %ld; Close from server: %ld)\n",
           st.dropped_after_ready, st.ping_timeouts, st.closes_received);
    printf("still connected at end     %ld\n", run.ready_at_hold_end);
    printf("hold window                %.1f s\n", (double)hold_us / 1e6);
    printf("pongs in hold window       %ld (expected about %.0f = connected x hold / %.1f s)\n", st.pongs_in_hold,
           (double)run.ready_at_hold_end * (double)hold_us / 1e6 / (opt.interval_ms / 1000.0),
           opt.interval_ms / 1000.0);
    if (st.rtt_n)
        printf("ping round trip in hold    mean %.0f us, max %.0f us\n", (double)st.rtt_sum_us / (double)st.rtt_n,
               (double)st.rtt_max_us);
    if (run.cpu_start >= 0 && run.cpu_end >= 0)
        printf("server CPU during hold     %.2f %% of one core (%lld ticks at %.0f Hz over %.1f s)\n",
               100.0 * (double)(run.cpu_end - run.cpu_start) / hz / ((double)hold_us / 1e6),
               run.cpu_end - run.cpu_start, hz, (double)hold_us / 1e6);
    else
        printf("server CPU during hold     n/a (no --server-pid)\n");
    print_memory(gen_cpu);
}

int main(int argc, char **argv)
{
    scale_parse(argc, argv);
    setup();
    run_phases();
    print_idle_result();
    bool ok = st.connected == opt.clients && run.ready_at_hold_end == opt.clients;
    if (opt.storm_pid_file)
        ok = storm_report() && ok;
    fflush(stdout);
    for (int i = 0; i < opt.clients; i++) {
        if (conns[i].ssl)
            SSL_free(conns[i].ssl);
        SSL_SESSION_free(conns[i].ticket);
    }
    /* fds close at exit */
    SSL_CTX_free(ctx);
    free(conns);
    return ok ? 0 : 2;
}
