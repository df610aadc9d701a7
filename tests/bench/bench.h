/*
 * lifeline-bench: shared declarations.
 *
 * The benchmark is a separate program: it talks to Lifeline through the public headers
 * only (sdk.h, server.h) and, for the raw reference, to OpenSSL directly. Every figure is
 * measured on loopback with client and server in one process, except the memory probes,
 * which run in fresh child processes (see bench_mem.c), and the peers' servers (nats-server,
 * mosquitto: bench_nats.c, bench_mqtt.c). The bench_ prefix marks this code.
 */
#ifndef LIFELINE_BENCH_H
#define LIFELINE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_RUNS 50

typedef struct bench_opts {
    int runs;          /* every figure is the median of this many runs */
    bool quick;        /* a ~10 s smoke run */
    const char *only;  /* --only: comma-separated sections, or NULL for all */
    bool peers;        /* --peers: the NATS and MQTT rows too (bench_peers.c) */
    double duration_s; /* length of one throughput run */
    int latency_iters; /* request/reply round trips per latency run */
    int handshakes;    /* raw handshakes of each kind per run */
    int connects;      /* fresh Lifeline sdk_connect calls per run */
    int reconnects;    /* forced Lifeline reconnects per run */
    int mem_clients;   /* idle clients per memory probe */
    char certs[256];   /* sdk_dev_certs directory */
    char ca[320], cert[320], key[320];
    char bindir[512]; /* where lifeline-bench (and lifeline-server) live */
    char self[512];   /* this program, for the memory probes */
} bench_opts;

typedef struct bench_latency {
    double p50_us, p99_us, p999_us;
} bench_latency;

/* ---- bench_util.c ---- */

uint64_t bench_now_ns(void);
void bench_sleep_ms(int ms);
/* bench_die: print "lifeline-bench: <message>" on stderr and exit(2). */
_Noreturn void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* bench_median: median of n values (the array is sorted in place). */
double bench_median(double *v, int n);
/* bench_percentile: q in [0,1] of n values already sorted ascending (nearest rank). */
double bench_percentile(const double *v, size_t n, double q);
void bench_sort(double *v, size_t n);
/* bench_latency_of: p50, p99 and p99.9 of n round trips in microseconds (sorts v). */
bench_latency bench_latency_of(double *v, size_t n);
/* bench_rss_bytes: resident set size of pid (0: this process), from /proc/PID/statm; -1. */
long bench_rss_bytes(pid_t pid);

/* Watchdog: a hang in the SDK must end the benchmark with a diagnosis, not stall it.
 * bench_phase names what runs now and allows it limit_s seconds; note is an optional
 * function printing extra state when the limit passes. */
void bench_watchdog_start(void);
void bench_phase(const char *name, int limit_s, void (*note)(void));

/* Send message n (buf: size bytes that start with n), for bench_send_for. */
typedef void (*bench_send_fn)(void *ctx, const uint8_t *buf, size_t size, uint64_t n);
/* bench_send_for: send(ctx, ...) messages of size bytes in a tight loop until duration_s
 * have passed since *t0 (set here at the start). Returns how many were sent. */
uint64_t bench_send_for(double duration_s, size_t size, bench_send_fn send, void *ctx, uint64_t *t0);

/* Round trip i: buf (size bytes, starting with i) out and its echo back, checked; returns
 * the time in microseconds. For bench_ping_pong. */
typedef double (*bench_round_trip_fn)(void *ctx, uint8_t *buf, size_t size, int i);
/* bench_ping_pong: a 5% warm-up, then o->latency_iters round trips of size bytes, under
 * the watchdog as phase; their percentiles. */
bench_latency bench_ping_pong(const bench_opts *o, const char *phase, size_t size, bench_round_trip_fn once, void *ctx);

void bench_put_u64(uint8_t *p, uint64_t v);
uint64_t bench_get_u64(const uint8_t *p);

/* ---- bench_sdk.c: Lifeline ---- */

struct sdk_store;
/* The servers started from now on keep their sessions in store (NULL: none), synced as
 * sync says (sdk_store_sync); under sync always they acknowledge by hand. */
void bench_sdk_use_store(struct sdk_store *store, int sync);
/* n clients connect, the server queues one message to each, then stops (writing every
 * session to the store, if any) and the clients go. */
void bench_sdk_detached_sessions(const bench_opts *o, int n);

/* ---- bench_store.c: what a session store costs (--only store) ---- */
void bench_store_section(const bench_opts *o);

/* One throughput run: messages per second (sink: first send to sdk_flush returning;
 * echo: first send to the last echo received). */
double bench_sdk_throughput(const bench_opts *o, bool echo, size_t size);
/* callbacks: both ends take messages in on_message (the reply is sent from there) instead
 * of a thread blocked in sdk_recv / sdk_server_recv. */
bench_latency bench_sdk_latency(const bench_opts *o, bool callbacks);
/* The same with messages of size bytes (at least 8) instead of 64. */
bench_latency bench_sdk_latency_size(const bench_opts *o, bool callbacks, size_t size);
/* Median sdk_connect time (ms) of o->connects fresh clients. */
double bench_sdk_connect_ms(const bench_opts *o);

typedef struct bench_reconnect {
    double attempt_median_ms; /* the reconnect attempt's SDK_EVENT_CONNECTING to SDK_EVENT_CONNECTED */
    double median_ms;         /* shutdown(2) of the client's socket to SDK_EVENT_CONNECTED */
    uint64_t reconnects;      /* client stats after the run */
    uint64_t handshakes_full;
    uint64_t handshakes_resumed;
    uint64_t sessions_lost;
    unsigned resumed_events; /* CONNECTED events with resumed = true */
} bench_reconnect;
bench_reconnect bench_sdk_reconnect(const bench_opts *o);

typedef struct bench_restart {
    double connected_ms; /* new server's sdk_server_start returning to SDK_EVENT_CONNECTED */
    double backoff_ms;   /* of which: until the client's next SDK_EVENT_CONNECTING */
    bool resumed_tls;    /* the reconnect's TLS handshake resumed */
    bool session_lost;   /* SDK_EVENT_SESSION_LOST was reported */
} bench_restart;
bench_restart bench_sdk_restart(const bench_opts *o);

/* ---- bench_raw.c: the OpenSSL reference ---- */

void bench_raw_init(const bench_opts *o);
void bench_raw_free(void);
const char *bench_raw_cipher(void); /* negotiated by the last raw connection */
double bench_raw_throughput(bool echo, size_t size, double duration_s);
bench_latency bench_raw_latency(int iters);
/* The same with frames of size bytes (at least 8) instead of 64. */
bench_latency bench_raw_latency_size(int iters, size_t size);
/* Median (ms) of n handshakes: TCP connect + SSL_connect, full or resumed. */
double bench_raw_handshake_ms(int n, bool resumed);

/* ---- bench_mem.c: resident memory per idle connection ---- */

typedef struct bench_mem {
    double both_kib;   /* client + server in one process, per connection */
    double client_kib; /* client side only (server is a lifeline-server subprocess) */
    double server_kib; /* that subprocess's growth, per connection */
} bench_mem;
/* One run of both probes; a figure is -1 if lifeline-server is missing. */
bench_mem bench_memory(const bench_opts *o);
/* The child side: argv after "--mem-probe". Returns the exit status. */
int bench_mem_probe_main(int argc, char **argv);

/* ---- bench_peers.c: NATS and MQTT beside Lifeline and raw TLS (--peers) ---- */

/* Built only when CMake finds libnats and libmosquitto (LIFELINE_BENCH_PEERS defined). */
/* Start the private nats-server and mosquitto (bench_die if one will not start). */
void bench_peers_start(const bench_opts *o);
/* One interleaved run of every peer figure: Lifeline, raw TLS, NATS, MQTT in turn. */
void bench_peers_run(const bench_opts *o);
/* The peer table with its guarantees, then stop the servers. */
void bench_peers_finish(const bench_opts *o);

/* ---- bench_nats.c: NATS core (libnats against a private nats-server) ---- */

void bench_nats_start(const bench_opts *o);
void bench_nats_stop(void);
/* One sentence on the versions and the transport, for the table. */
const char *bench_nats_describe(void);
/* Messages per second: natsConnection_Publish for the duration, then FlushTimeout. */
double bench_nats_publish(const bench_opts *o, size_t size);
/* Ping-pong through the server: publish, a responder publishes it back, NextMsg. */
bench_latency bench_nats_round_trip(const bench_opts *o, size_t size);

/* ---- bench_mqtt.c: MQTT QoS 1 (libmosquitto against a private mosquitto) ---- */

void bench_mqtt_start(const bench_opts *o);
void bench_mqtt_stop(void);
const char *bench_mqtt_describe(void);
/* Messages per second: QoS 1 publishes for the duration, until every PUBACK is in. */
double bench_mqtt_publish(const bench_opts *o, size_t size);
/* QoS 1 ping-pong through the broker (a responder client publishes each ping back). */
bench_latency bench_mqtt_round_trip(const bench_opts *o, size_t size);

#endif
