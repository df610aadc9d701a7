/*
 * lifeline-bench: shared declarations.
 *
 * The benchmark is a separate program: it talks to Lifeline through the public headers
 * only (sdk.h, server.h) and, for the raw reference, to OpenSSL directly. Every figure is
 * measured on loopback with client and server in one process, except the memory probes,
 * which run in fresh child processes (see bench_mem.c), the --process rows, whose servers
 * are separate processes (see bench_proc.c), and the peers' servers (nats-server,
 * mosquitto: bench_nats.c, bench_mqtt.c). The bench_ prefix marks this code.
 */
#ifndef LIFELINE_BENCH_H
#define LIFELINE_BENCH_H

#include <pthread.h>
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
    bool process;      /* --process: also the separate-process throughput and latency rows */
    int io_threads;    /* --io-threads: every server's sdk_server_config.io_threads (0: its default) */
    char certs[256];   /* sdk_dev_certs directory */
    char ca[320], cert[320], key[320];
    char bindir[512]; /* where lifeline-bench (and lifeline-server) live */
    char self[512];   /* this program, for the memory probes */
} bench_opts;

typedef struct bench_latency {
    double p50_us, p99_us, p999_us;
    /* Lifeline: the client's Ack frames written and received per round trip (sdk_stats),
     * to see how many acknowledgements went as frames of their own; raw: 0. */
    double acks_sent_per_rt, acks_received_per_rt;
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
/* CPU seconds this process (all threads) has used so far. */
double bench_cpu_s(void);
/* Messages sent by the last throughput run, of either column (set by the throughput
 * functions below), for CPU time per message. */
extern unsigned long bench_last_sent;
/* bench_latency_of: p50, p99 and p99.9 of n round trips in microseconds (sorts v). */
bench_latency bench_latency_of(double *v, size_t n);
/* bench_rss_bytes: resident set size of pid (0: this process), from /proc/PID/statm; -1. */
long bench_rss_bytes(pid_t pid);

/* Watchdog: a hang in the SDK must end the benchmark with a diagnosis, not stall it.
 * bench_phase names what runs now and allows it limit_s seconds; note is an optional
 * function printing extra state when the limit passes. */
void bench_watchdog_start(void);
void bench_phase(const char *name, int limit_s, void (*note)(void));

/* bench_find_socket: a connected IPv4 socket of this process with peer port peer_port and
 * local port local_port (0: any), found through /proc/self/fd; -1 if there is none. For
 * cutting a client's connection under it with shutdown(2). */
int bench_find_socket(uint16_t local_port, uint16_t peer_port);
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

/* ---- bench_events.c: the client event recorder ---- */

struct sdk_event;
/* What the recorder has seen; times are bench_now_ns() in the callback. */
typedef struct bench_event_times {
    unsigned connected, resumed, lost, disconnected; /* events so far (resumed: CONNECTED resumed) */
    bool last_resumed;                               /* the last CONNECTED resumed the session */
    uint64_t connected_ns;                           /* the last CONNECTED */
    uint64_t connecting_ns;                          /* the last CONNECTING */
    uint64_t attempt_ns;                             /* CONNECTING of the attempt that last connected */
    uint64_t disconnected_ns;                        /* the last DISCONNECTED */
} bench_event_times;

typedef struct bench_events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bench_event_times t;     /* under mu */
    const unsigned *awaited; /* the counter bench_events_wait is waiting on, or NULL */
} bench_events;

void bench_events_init(bench_events *e);
void bench_events_free(bench_events *e);
/* bench_on_event: the sdk_config.on_event callback; user is the bench_events. */
void bench_on_event(const struct sdk_event *ev, void *user);
/* bench_events_wait: wait until *counter (a field of e->t) exceeds before; false after 10 s. */
bool bench_events_wait(bench_events *e, const unsigned *counter, unsigned before);
/* bench_events_snapshot: a copy of e->t, taken under its lock. */
bench_event_times bench_events_snapshot(bench_events *e);

/* ---- bench_proc.c: child processes ---- */

/* bench_spawn: run argv (argv[0] a path) with its stdout on a pipe (*out); stderr is shared;
 * the child is killed if the benchmark dies. */
pid_t bench_spawn(char *const argv[], int *out);
/* bench_read_line: one line from fd (without the newline), waiting at most 120 s; false on
 * EOF or timeout. */
bool bench_read_line(int fd, char *buf, size_t len);
/* bench_reap: send sig (0: none) and wait for pid to exit (SIGKILL after 10 s); its status. */
int bench_reap(pid_t pid, int sig);
/* The same, with the CPU seconds (user + system, all threads) the child used in its life in
 * *cpu_s. */
int bench_reap_usage(pid_t pid, int sig, double *cpu_s);

typedef struct bench_proc {
    pid_t pid; /* 0: not running */
    uint16_t port;
    int out; /* its stdout, kept open so a late write cannot SIGPIPE it */
} bench_proc;
/* bench_server_start: run <bindir>/lifeline-server --listen 127.0.0.1:<port> (0: ephemeral)
 * --dev-certs <o->certs> plus extra (NULL-terminated, may be NULL) and wait for its
 * "listening on" line. A fixed port just freed may not be free yet: tried again for 5 s.
 * false if lifeline-server is missing; exits the benchmark if it does not start. */
bool bench_server_start(const bench_opts *o, uint16_t port, const char *const *extra, bench_proc *p);
/* bench_server_stop: send sig and reap it (as bench_reap); its wait status, or -1 if it was
 * not running. */
int bench_server_stop(bench_proc *p, int sig);

/* ---- bench_failover.c: an instance stopped under its client (--only store) ---- */

/* One run of every failover series and of the raw handshake reference, against the
 * redis-server at redis_url; the samples are kept for bench_failover_print. */
void bench_failover_run(const bench_opts *o, const char *redis_url);
/* The failover table: medians and p90 over every sample of every run so far. */
void bench_failover_print(void);

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
/* The same against a server already listening on 127.0.0.1:port (lifeline-server --sink or
 * --echo in another process): the client side alone, blocking sdk_send/sdk_recv. */
double bench_sdk_throughput_at(const bench_opts *o, uint16_t port, bool echo, size_t size);
bench_latency bench_sdk_latency_at(const bench_opts *o, uint16_t port);
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
/* The same against a raw server already listening on 127.0.0.1:port (bench_raw_server_main). */
double bench_raw_throughput_at(uint16_t port, bool echo, size_t size, double duration_s);
bench_latency bench_raw_latency_at(uint16_t port, int iters);
/* The child side of --raw-server: argv is "sink|echo CERTDIR". Prints "listening on
 * 127.0.0.1:PORT", serves one connection, returns the exit status. */
int bench_raw_server_main(int argc, char **argv);
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

/* ---- bench_proc.c: the separate-process rows (--process) ---- */

typedef struct bench_proc_pair {
    double lifeline, raw;               /* messages per second */
    double lifeline_cpu_us, raw_cpu_us; /* CPU per message, client and server process */
} bench_proc_pair;
/* One separate-process throughput run of each, Lifeline first, each on a fresh server process. */
bench_proc_pair bench_proc_throughput(const bench_opts *o, bool echo, size_t size);
/* One separate-process ping-pong run of each (blocking send/recv, 64 B). */
void bench_proc_latency(const bench_opts *o, bench_latency *lifeline, bench_latency *raw);
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
