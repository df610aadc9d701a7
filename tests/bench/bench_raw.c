/*
 * The raw reference: the least a TLS message connection can cost on this machine.
 *
 * A minimal OpenSSL TLS 1.3 pair on loopback, same certificates as Lifeline (P-256 from
 * sdk_dev_certs), default cipher suites, TCP_NODELAY, blocking sockets except where noted.
 * Frames are a 4-byte big-endian length and the payload, packed into 16 KiB buffers, one
 * SSL_write per buffer. No acknowledgements, no sequence numbers, no protobuf, no queues:
 * the gap to Lifeline is what those cost.
 */
#include "bench.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 16384
#define HDR   4

static SSL_CTX *srv_ctx, *cli_ctx;
static char cipher[64] = "?";

static void ssl_die(const char *what)
{
    char buf[256] = "";
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    bench_die("raw TLS: %s: %s", what, buf);
}

void bench_raw_init(const bench_opts *o)
{
    srv_ctx = SSL_CTX_new(TLS_server_method());
    cli_ctx = SSL_CTX_new(TLS_client_method());
    if (!srv_ctx || !cli_ctx) {
        ssl_die("SSL_CTX_new");
    }
    SSL_CTX_set_min_proto_version(srv_ctx, TLS1_3_VERSION);
    SSL_CTX_set_min_proto_version(cli_ctx, TLS1_3_VERSION);
    if (SSL_CTX_use_certificate_chain_file(srv_ctx, o->cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(srv_ctx, o->key, SSL_FILETYPE_PEM) != 1) {
        ssl_die("load server certificate");
    }
    /* As Lifeline's server: one ticket per handshake. */
    SSL_CTX_set_num_tickets(srv_ctx, 1);
    if (SSL_CTX_load_verify_locations(cli_ctx, o->ca, NULL) != 1) {
        ssl_die("load CA");
    }
    SSL_CTX_set_verify(cli_ctx, SSL_VERIFY_PEER, NULL);
}

void bench_raw_free(void)
{
    SSL_CTX_free(srv_ctx);
    SSL_CTX_free(cli_ctx);
}

const char *bench_raw_cipher(void)
{
    return cipher;
}

/* ---- sockets ---- */

static void nodelay(int fd)
{
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        bench_die("raw TLS: listen on 127.0.0.1: %s", strerror(errno));
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        bench_die("raw TLS: connect: %s", strerror(errno));
    }
    nodelay(fd);
    return fd;
}

static SSL *client_ssl(int fd, SSL_SESSION *resume)
{
    SSL *ssl = SSL_new(cli_ctx);
    SSL_set_fd(ssl, fd);
    /* Verify the IP the client dialled, as Lifeline does. */
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    if (resume) {
        SSL_set_session(ssl, resume);
    }
    if (SSL_connect(ssl) != 1) {
        ssl_die("SSL_connect");
    }
    snprintf(cipher, sizeof cipher, "%s", SSL_get_cipher_name(ssl));
    return ssl;
}

static SSL *server_ssl(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        bench_die("raw TLS: accept: %s", strerror(errno));
    }
    nodelay(fd);
    SSL *ssl = SSL_new(srv_ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        ssl_die("SSL_accept");
    }
    return ssl;
}

static void ssl_close(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

static void write_all(SSL *ssl, const void *p, size_t n)
{
    if (n > 0 && SSL_write(ssl, p, (int)n) != (int)n) {
        ssl_die("SSL_write");
    }
}

static void read_exact(SSL *ssl, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        int r = SSL_read(ssl, p + got, (int)(n - got));
        if (r <= 0) {
            ssl_die("SSL_read");
        }
        got += (size_t)r;
    }
}

/* ---- frame scanning: counts frames in a byte stream, across reads ---- */

typedef struct scanner {
    uint8_t hdr[HDR];
    size_t hdr_have;  /* header bytes collected */
    size_t body_left; /* body bytes still to skip */
    uint64_t frames;
    uint64_t ends; /* zero-length frames: the sender's "that was all" */
} scanner;

static void scan(scanner *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (s->body_left > 0) {
            size_t k = n < s->body_left ? n : s->body_left;
            s->body_left -= k;
            p += k;
            n -= k;
            continue;
        }
        s->hdr[s->hdr_have++] = *p++;
        n--;
        if (s->hdr_have == HDR) {
            s->hdr_have = 0;
            s->body_left = (size_t)s->hdr[0] << 24 | (size_t)s->hdr[1] << 16 | (size_t)s->hdr[2] << 8 | s->hdr[3];
            if (s->body_left == 0) {
                s->ends++;
            } else {
                s->frames++;
            }
        }
    }
}

/* ---- servers: one connection each, on their own thread ---- */

typedef enum raw_mode { RAW_SINK, RAW_ECHO, RAW_HANDSHAKE } raw_mode;

typedef struct raw_server {
    int lfd;
    uint16_t port;
    raw_mode mode;
    int accepts; /* connections to serve, one after the other */
    pthread_t thread;
} raw_server;

/* Sink: scan frames and drop them; answer each end marker with one byte. */
static void serve_sink(SSL *ssl, uint8_t *buf, size_t len)
{
    scanner s = {0};
    for (;;) {
        int n = SSL_read(ssl, buf, (int)len);
        if (n <= 0) {
            return;
        }
        uint64_t ends = s.ends;
        scan(&s, buf, (size_t)n);
        for (; ends < s.ends; ends++) {
            write_all(ssl, "k", 1);
        }
    }
}

/* Echo: every byte back as it comes (whole records, so writes stay batched). */
static void serve_echo(SSL *ssl, uint8_t *buf, size_t len)
{
    for (;;) {
        int n = SSL_read(ssl, buf, (int)len);
        if (n <= 0) {
            return;
        }
        write_all(ssl, buf, (size_t)n);
    }
}

/* The read buffer is on the heap: a static _Thread_local one would be laid out (and zeroed)
 * in every thread of the process, the SDK's I/O threads included, and inflate the memory
 * figures. */
static void *server_main(void *arg)
{
    raw_server *rs = arg;
    size_t len = 65536;
    uint8_t *buf = malloc(len);
    for (int i = 0; i < rs->accepts; i++) {
        SSL *ssl = server_ssl(rs->lfd);
        switch (rs->mode) {
        case RAW_HANDSHAKE: {
            /* One byte lets the client collect its ticket; then wait for it to go. */
            uint8_t b;
            write_all(ssl, "k", 1);
            (void)SSL_read(ssl, &b, 1);
            break;
        }
        case RAW_ECHO:
            serve_echo(ssl, buf, len);
            break;
        case RAW_SINK:
        default:
            serve_sink(ssl, buf, len);
            break;
        }
        ssl_close(ssl);
    }
    free(buf);
    return NULL;
}

static void server_start(raw_server *rs, raw_mode mode, int accepts)
{
    rs->mode = mode;
    rs->accepts = accepts;
    rs->lfd = listen_loopback(&rs->port);
    if (pthread_create(&rs->thread, NULL, server_main, rs) != 0) {
        bench_die("raw TLS: cannot start the server thread");
    }
}

static void server_join(raw_server *rs)
{
    pthread_join(rs->thread, NULL);
    close(rs->lfd);
}

/* ---- throughput ---- */

/* Pack frames of size bytes into buf until it is full; returns the bytes used. */
static size_t pack(uint8_t *buf, size_t size, uint64_t *next, int *count)
{
    size_t pos = 0;
    *count = 0;
    while (pos + HDR + size <= BATCH) {
        buf[pos] = (uint8_t)(size >> 24);
        buf[pos + 1] = (uint8_t)(size >> 16);
        buf[pos + 2] = (uint8_t)(size >> 8);
        buf[pos + 3] = (uint8_t)size;
        memset(buf + pos + HDR, 'x', size);
        bench_put_u64(buf + pos + HDR, (*next)++);
        pos += HDR + size;
        (*count)++;
    }
    return pos;
}

static double sink_run(SSL *ssl, size_t size, double duration_s)
{
    static uint8_t buf[BATCH];
    uint64_t next = 0, sent = 0;
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(duration_s * 1e9);
    while (bench_now_ns() < end) {
        int k;
        size_t n = pack(buf, size, &next, &k);
        write_all(ssl, buf, n);
        sent += (uint64_t)k;
    }
    uint8_t done[HDR] = {0}, k;
    write_all(ssl, done, HDR);
    read_exact(ssl, &k, 1);
    bench_last_sent = (unsigned long)sent;
    return (double)sent / ((double)(bench_now_ns() - t0) / 1e9);
}

/* Echo client on one thread (an SSL object is not for two threads at once): a non-blocking
 * loop that writes batches while they are due and reads echoes whenever they come. */
typedef struct echo_client {
    SSL *ssl;
    size_t size;
    uint8_t out[BATCH];
    size_t out_len, out_off;
    uint64_t next, sent;
    bool sending;
    scanner in;
} echo_client;

/* Returns true if it wrote anything. */
static bool echo_write(echo_client *e, uint64_t end, bool *want_write)
{
    *want_write = false;
    if (e->out_off == e->out_len && e->sending) {
        int k;
        e->out_len = pack(e->out, e->size, &e->next, &k);
        e->out_off = 0;
        e->sent += (uint64_t)k;
        e->sending = bench_now_ns() < end;
    }
    if (e->out_off == e->out_len) {
        return false;
    }
    int n = SSL_write(e->ssl, e->out + e->out_off, (int)(e->out_len - e->out_off));
    if (n > 0) {
        e->out_off += (size_t)n;
        return true;
    }
    int err = SSL_get_error(e->ssl, n);
    if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
        ssl_die("SSL_write (echo client)");
    }
    *want_write = err == SSL_ERROR_WANT_WRITE;
    return false;
}

static bool echo_read(echo_client *e)
{
    static uint8_t buf[65536];
    bool progress = false;
    for (;;) {
        int n = SSL_read(e->ssl, buf, sizeof buf);
        if (n > 0) {
            scan(&e->in, buf, (size_t)n);
            progress = true;
            continue;
        }
        int err = SSL_get_error(e->ssl, n);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            ssl_die("SSL_read (echo client)");
        }
        return progress;
    }
}

static double echo_run(SSL *ssl, size_t size, double duration_s)
{
    static echo_client e;
    e = (echo_client){.ssl = ssl, .size = size, .sending = true};
    int fd = SSL_get_fd(ssl);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(duration_s * 1e9);
    while (e.sending || e.out_off < e.out_len || e.in.frames < e.sent) {
        bool want_write;
        bool progress = echo_write(&e, end, &want_write);
        progress = echo_read(&e) || progress;
        if (!progress) {
            struct pollfd p = {.fd = fd, .events = POLLIN | (want_write ? POLLOUT : 0)};
            (void)poll(&p, 1, 100);
        }
    }
    uint64_t t1 = bench_now_ns();
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    bench_last_sent = (unsigned long)e.sent;
    return (double)e.sent / ((double)(t1 - t0) / 1e9);
}

double bench_raw_throughput_at(uint16_t port, bool echo, size_t size, double duration_s)
{
    SSL *ssl = client_ssl(dial(port), NULL);
    double rate = echo ? echo_run(ssl, size, duration_s) : sink_run(ssl, size, duration_s);
    ssl_close(ssl);
    return rate;
}

double bench_raw_throughput(bool echo, size_t size, double duration_s)
{
    raw_server rs;
    server_start(&rs, echo ? RAW_ECHO : RAW_SINK, 1);
    double rate = bench_raw_throughput_at(rs.port, echo, size, duration_s);
    server_join(&rs);
    return rate;
}

/* ---- ping-pong ---- */

/* iters round trips of size-byte frames with the raw echo server at port. */
static bench_latency latency_with(uint16_t port, int iters, size_t size)
{
    SSL *ssl = client_ssl(dial(port), NULL);
    double *v = malloc(sizeof(double) * (size_t)iters);
    uint8_t *frame = calloc(1, HDR + size), *back = malloc(HDR + size);
    frame[0] = (uint8_t)(size >> 24);
    frame[1] = (uint8_t)(size >> 16);
    frame[2] = (uint8_t)(size >> 8);
    frame[3] = (uint8_t)size;
    for (int i = 0; i < iters; i++) {
        bench_put_u64(frame + HDR, (uint64_t)i);
        uint64_t t0 = bench_now_ns();
        write_all(ssl, frame, HDR + size);
        read_exact(ssl, back, HDR + size);
        v[i] = (double)(bench_now_ns() - t0) / 1e3;
        if (bench_get_u64(back + HDR) != (uint64_t)i) {
            bench_die("raw TLS: ping-pong reply out of order");
        }
    }
    ssl_close(ssl);
    bench_latency l = bench_latency_of(v, (size_t)iters);
    free(v);
    free(frame);
    free(back);
    return l;
}

bench_latency bench_raw_latency_at(uint16_t port, int iters)
{
    return latency_with(port, iters, 64);
}

bench_latency bench_raw_latency_size(int iters, size_t size)
{
    raw_server rs;
    server_start(&rs, RAW_ECHO, 1);
    bench_latency l = latency_with(rs.port, iters, size);
    server_join(&rs);
    return l;
}

bench_latency bench_raw_latency(int iters)
{
    return bench_raw_latency_size(iters, 64);
}

/* ---- the server in a process of its own (--process) ---- */

int bench_raw_server_main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[0], "sink") != 0 && strcmp(argv[0], "echo") != 0)) {
        bench_die("--raw-server wants sink|echo CERTDIR");
    }
    static bench_opts o;
    snprintf(o.ca, sizeof o.ca, "%s/ca.pem", argv[1]);
    snprintf(o.cert, sizeof o.cert, "%s/server.pem", argv[1]);
    snprintf(o.key, sizeof o.key, "%s/server.key", argv[1]);
    bench_raw_init(&o);
    raw_server rs = {.mode = strcmp(argv[0], "echo") == 0 ? RAW_ECHO : RAW_SINK, .accepts = 1};
    rs.lfd = listen_loopback(&rs.port);
    printf("listening on 127.0.0.1:%u\n", (unsigned)rs.port);
    fflush(stdout);
    (void)server_main(&rs); /* on this thread: the process is the server */
    close(rs.lfd);
    bench_raw_free();
    return 0;
}

/* ---- handshakes ---- */

/* One connection: returns the TCP connect + SSL_connect time in ms; *session becomes the
 * newest ticket (the server's one byte is read first, which processes the ticket). */
static double handshake_once(uint16_t port, SSL_SESSION **session, bool resume)
{
    uint64_t t0 = bench_now_ns();
    SSL *ssl = client_ssl(dial(port), resume ? *session : NULL);
    double ms = (double)(bench_now_ns() - t0) / 1e6;
    if (resume && !SSL_session_reused(ssl)) {
        bench_die("raw TLS: the resumed handshake did not resume");
    }
    uint8_t b;
    read_exact(ssl, &b, 1);
    SSL_SESSION *s = SSL_get1_session(ssl);
    if (s) {
        SSL_SESSION_free(*session);
        *session = s;
    }
    ssl_close(ssl);
    return ms;
}

double bench_raw_handshake_ms(int n, bool resumed)
{
    raw_server rs;
    server_start(&rs, RAW_HANDSHAKE, n + 1);
    SSL_SESSION *session = NULL;
    double *v = malloc(sizeof(double) * (size_t)n);
    (void)handshake_once(rs.port, &session, false); /* the first ticket */
    for (int i = 0; i < n; i++) {
        v[i] = handshake_once(rs.port, &session, resumed);
    }
    SSL_SESSION_free(session);
    server_join(&rs);
    double m = bench_median(v, n);
    free(v);
    return m;
}
