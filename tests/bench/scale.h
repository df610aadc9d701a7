/*
 * lifeline-scale's shared state: the connections, the options, the counters, and the hooks
 * between the idle run (scale.c) and the restart storm (scale_storm.c). One thread: nothing
 * here is locked.
 */
#ifndef LIFELINE_SCALE_H
#define LIFELINE_SCALE_H

#include "lifeline.pb-c.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#define RBUF_CAP  1024 /* Welcome, Pong, Close are all far smaller */
#define WBUF_CAP  192  /* Hello (with a resume token), Ping, Pong */
#define TOKEN_CAP 64   /* LL-WELCOME-4: a resume token has at most 64 bytes */

/* ST_WAIT: lost in the storm, waiting for its (re)connect slot and retry time. */
enum state { ST_FREE = 0, ST_TCP, ST_TLS, ST_HELLO, ST_READY, ST_DEAD, ST_WAIT };

typedef struct conn {
    int fd;
    enum state st;
    SSL *ssl;
    SSL_SESSION *ticket;   /* the latest TLS session (ticket) the server sent; NULL: none */
    uint64_t started_us;   /* connect started (for the ramp timeout) */
    uint64_t next_ping_us; /* READY: when to send the next Ping */
    uint64_t ping_sent_us; /* 0: no Ping outstanding */
    uint64_t nonce;
    uint64_t session_id;  /* from the Welcome; 0: none yet */
    uint64_t lost_us;     /* storm: when the server's GOING_AWAY/EOF arrived; 0: not lost */
    uint64_t retry_at_us; /* ST_WAIT: not before this */
    uint32_t events;      /* what epoll currently waits for */
    uint16_t rlen, wlen;
    uint8_t token_len;
    uint8_t token[TOKEN_CAP];
    uint8_t rbuf[RBUF_CAP];
    uint8_t wbuf[WBUF_CAP];
} conn;

typedef struct scale_opts {
    int clients, inflight, hold_s, interval_ms, ramp_timeout_s, handshake_timeout_ms;
    const char *host, *ca, *name;
    int port, server_pid;
    int sources;                /* source addresses 127.0.0.2, .3, ...; 0: the kernel's choice */
    const char *storm_pid_file; /* --storm FILE: restart after the hold; NULL: no storm */
    int storm_timeout_s, retry_ms;
    struct sockaddr_in addr; /* --connect, resolved */
} scale_opts;

typedef struct scale_counts {
    long started, connected, handshake_failed, dropped_after_ready, pongs, pongs_in_hold, pings_sent, closes_received,
        ping_timeouts;
    long in_flight, ready;
    uint64_t rtt_sum_us, rtt_max_us, rtt_n; /* over the hold */
    char first_error[256];
    char storm_error[256]; /* the first cause of a failed reconnect in the storm */
} scale_counts;

extern scale_opts opt;
extern scale_counts st;
extern conn *conns;

/* Parse and check the command line into opt; exits 64 (usage) or 1 (with the reason) on bad
 * input, 0 after --help. */
void scale_parse(int argc, char **argv);
uint64_t now_us(void);
/* /proc/PID/stat utime+stime in clock ticks; -1 if unreadable. */
long long proc_cpu_ticks(int pid);
/* Print "lifeline-scale: " + fmt (with arg) to stderr and exit 1. */
void die(const char *fmt, const char *arg);
/* Start connecting c (any state but a live one): TCP, then TLS (offering c->ticket), Hello. */
void start_conn(conn *c);

/* The storm (scale_storm.c). */
/* The SSL_CTX hook that keeps each connection's latest ticket in its conn. */
void storm_setup_ctx(SSL_CTX *ctx);
/* True between the SIGTERM and the end of the run: a lost connection reconnects. */
bool storm_active(void);
/* c failed or was closed while the storm is active: queue it to reconnect, at once when it
 * was READY (the restart), else after a jittered --retry-ms. */
void storm_requeue(conn *c, bool was_ready);
/* c's TLS handshake completed / its Welcome arrived during the storm. */
void storm_on_handshake(conn *c);
void storm_on_ready(conn *c, bool resumed);
/* c reached TCP established during the storm. */
void storm_on_connected(void);
/* SIGTERM the server and switch to the storm; false (with a message) if it cannot. */
bool storm_begin(void);
/* One loop step of the storm: start due reconnects, pick up the new server's pid. True once
 * every client is READY again or the storm timed out. */
bool storm_step(uint64_t now);
/* Append the storm's lines to the result block; true if every session came back. */
bool storm_report(void);

#endif
