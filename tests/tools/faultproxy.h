/*
 * faultproxy: a loopback TCP proxy that injects network faults for tests.
 *
 * It sits between a client and a server on 127.0.0.1 (or ::1) and forwards bytes
 * blindly in both directions, so it works for TLS without knowing about it. On
 * command it resets or closes connections, stalls them (blackhole), delays them,
 * refuses new ones, or points new ones at another server.
 *
 * Threads: fp_start() starts one proxy thread that owns every socket. All other
 * functions may be called from any thread except that thread (there are no
 * callbacks, so that cannot happen by accident). Each command blocks until the
 * proxy thread has applied it, normally a few microseconds: when fp_reset_all()
 * returns, the RSTs have been sent; when fp_set_refuse(p, true) returns, connect()
 * fails. A command also reaches connections still waiting in the listen backlog, so
 * "connect(); fp_reset_all();" resets that connection. That makes tests
 * deterministic without sleeps.
 *
 * Safety: the proxy only listens on and connects to loopback addresses
 * (127.0.0.0/8, ::1, or the name "localhost"), so a test can never send traffic
 * elsewhere. Host names other than "localhost" are refused without a DNS lookup.
 *
 * Memory is bounded: each connection has one buffer of FP_BUF_SIZE bytes per
 * direction, and the proxy stops reading a side while its buffer is full.
 *
 * The fp_ prefix (rather than ll_) marks this as a test tool, not SDK code.
 */
#ifndef LIFELINE_FAULTPROXY_H
#define LIFELINE_FAULTPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes buffered per connection per direction. */
#define FP_BUF_SIZE (256u * 1024u)

/* At most this many connections at once; further ones are accepted and reset. */
#define FP_MAX_CONNS 128

typedef struct fp_proxy fp_proxy;

typedef struct fp_stats {
    uint64_t accepted;        /* connections accepted from clients */
    uint64_t resets;          /* connections torn down by an injected reset */
    uint64_t closes;          /* connections closed by fp_close_all() */
    uint64_t bytes_to_target; /* client -> server bytes written to the server */
    uint64_t bytes_to_client; /* server -> client bytes written to the client */
} fp_stats;

/*
 * fp_start: listen on listen_host:listen_port (port 0 picks a free one) and forward
 * every accepted connection to target_host:target_port. The listening socket is
 * open when this returns, so clients may connect at once. Blocks only for socket
 * setup. On success stores the proxy in *out (free it with fp_stop()) and returns 0.
 * Returns -1 with errno set: EPERM when either host is not a loopback address or
 * "localhost" (a message saying why goes to stderr), EINVAL for a NULL argument,
 * or the errno of socket(), bind(), listen(), pipe(), malloc() or pthread_create().
 */
int fp_start(const char *listen_host, uint16_t listen_port, const char *target_host, uint16_t target_port,
             fp_proxy **out);

/* fp_port: the port the proxy listens on (useful after asking for port 0). Never blocks. */
uint16_t fp_port(const fp_proxy *p);

/*
 * fp_reset_all: abort every current connection, sending RST to both the client and
 * the server (SO_LINGER 0, then close). Clients see ECONNRESET. New connections are
 * still accepted. Blocks until done.
 */
void fp_reset_all(fp_proxy *p);

/*
 * fp_close_all: close every current connection cleanly: FIN to both sides, so
 * clients read EOF. Data buffered in the proxy is dropped, and data still arriving
 * is read and discarded for up to a second so the kernel does not turn the FIN
 * into a RST. Blocks until the FINs are sent.
 */
void fp_close_all(fp_proxy *p);

/*
 * fp_set_blackhole: while on, forward nothing in either direction and start no
 * connection to the server, but keep every socket open: a half-open link. New
 * connections are accepted and stalled the same way. Data is held, not dropped,
 * so when it is turned off the streams resume intact (as TCP would after a
 * healed partition). Note the proxy's kernel still acknowledges bytes until its
 * receive window fills, so the peer notices only through application heartbeats.
 * Blocks until applied.
 */
void fp_set_blackhole(fp_proxy *p, bool on);

/*
 * fp_set_delay_ms: hold each chunk read from either side for ms milliseconds before
 * forwarding it (0 turns it off). Order is kept; chunks already buffered keep the
 * delay they were read with. Returns 0, or -1 with errno EINVAL when ms < 0.
 */
int fp_set_delay_ms(fp_proxy *p, int ms);

/*
 * fp_set_refuse: while on, the listening socket is closed so clients get
 * ECONNREFUSED; existing connections are untouched. Turning it off listens again
 * on the same port. Blocks until applied. Returns 0, or -1 with errno from
 * socket(), bind() or listen() when the port cannot be reopened (then the proxy
 * stays refusing; calling again retries).
 */
int fp_set_refuse(fp_proxy *p, bool on);

/*
 * fp_set_target: send new connections to host:port (for example a restarted server
 * on a new port). Existing connections keep their server. Blocks until applied.
 * Returns 0, or -1 with errno EPERM (not loopback, message on stderr) or EINVAL
 * (NULL host).
 */
int fp_set_target(fp_proxy *p, const char *host, uint16_t port);

/*
 * fp_random_resets: reset all connections (as fp_reset_all) at random intervals
 * drawn uniformly from [min_ms, max_ms]; 0, 0 turns it off. Returns 0, or -1 with
 * errno EINVAL when min_ms < 0, max_ms < min_ms, or max_ms == 0 with min_ms != 0.
 */
int fp_random_resets(fp_proxy *p, int min_ms, int max_ms);

/*
 * fp_get_stats: copy the counters into *out. Blocks until the proxy thread has
 * finished its current step, so everything it did before the call is counted.
 */
void fp_get_stats(fp_proxy *p, fp_stats *out);

/*
 * fp_stop: stop the thread, close every socket (connections end with FIN or RST as
 * the kernel decides), free p. Blocks until the thread has exited. No other call
 * on p may be running or follow. p may be NULL.
 */
void fp_stop(fp_proxy *p);

/*
 * fp_parse_hostport: split "127.0.0.1:8443", "localhost:8443" or "[::1]:8443" into
 * host (at most host_len bytes with its NUL) and port. Returns 0, or -1 with errno
 * EINVAL. Shared by the command-line tool and tests.
 */
int fp_parse_hostport(const char *s, char *host, size_t host_len, uint16_t *port);

#endif
