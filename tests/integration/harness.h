/*
 * Integration-test harness: real TLS on loopback against the real server, through the
 * public headers only.
 *
 * What it gives a test:
 *  - development certificates, created once per test process in a fresh directory under
 *    $LIFELINE_TEST_TMP (or /tmp) and removed at exit; more independent sets on demand
 *    (another CA, for the wrong-CA test);
 *  - an in-process server on 127.0.0.1:0 with an optional echo thread (one thread, so each
 *    session's order is kept);
 *  - client configurations pointing at it;
 *  - build/bin/lifeline-server as a subprocess ($LIFELINE_BIN), stopped by signal and
 *    restarted on the same port;
 *  - recorders for client and server events, so tests wait on facts rather than sleeps.
 *
 * Addresses are loopback only and ports ephemeral: the tests run in parallel.
 * The ht_ prefix (rather than sdk_ or ll_) marks test code.
 */
#ifndef LIFELINE_TEST_HARNESS_H
#define LIFELINE_TEST_HARNESS_H

#include <lifeline/sdk.h>
#include <lifeline/server.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bound for things that take milliseconds normally: generous, so sanitizer builds do not
 * flake, yet a hang still fails well inside the ctest timeout. */
#define HT_WAIT_MS 10000

/* ---- time ---- */

uint64_t ht_now_ms(void);
void ht_sleep_ms(int ms);

/* ---- certificates ---- */

typedef struct ht_certs {
    char dir[256];
    char ca[320];
    char server_cert[320];
    char server_key[320];
    char client_cert[320];
    char client_key[320];
} ht_certs;

/* ht_certs_get: the process's development certificates, created on the first call (any
 * thread) and removed at exit. Aborts the process if they cannot be made. */
const ht_certs *ht_certs_get(void);
/* ht_certs_make: an independent set with its own CA in a fresh directory. 0 or -1 (reason
 * on stderr). Remove it with ht_certs_remove. */
int ht_certs_make(ht_certs *out);
void ht_certs_remove(const ht_certs *c);

/* ---- in-process server ---- */

typedef struct ht_server {
    sdk_server *srv;
    uint16_t port;
    bool echo;
    pthread_t thread;
    atomic_ulong echoed;      /* messages sent back */
    atomic_ulong echo_failed; /* sdk_server_send failures other than a stopped server */
    atomic_int last_echo_err;
} ht_server;

/* ht_server_config: defaults, the dev certificates, listen on 127.0.0.1:0. */
void ht_server_config(sdk_server_config *cfg);
/* ht_server_start: start a server (cfg NULL: ht_server_config) and, if echo, a thread that
 * sends every message back to its session with its type. Returns sdk_server_start's code. */
sdk_err ht_server_start(ht_server *hs, const sdk_server_config *cfg, bool echo);
/* ht_server_stop: sdk_server_stop and join the echo thread; the handle stays valid. */
void ht_server_stop(ht_server *hs);
/* ht_server_destroy: stop if needed, free everything. Safe on a zeroed struct. */
void ht_server_destroy(ht_server *hs);

/* ht_metric: the value of the sample named exactly `sample` ("name" or
 * "name{label=\"v\"}") in Prometheus text, or -1 if absent. ht_server_metric: the same in
 * sdk_server_metrics(srv)'s text (-1 also if that fails). */
double ht_metric(const char *text, const char *sample);
double ht_server_metric(sdk_server *srv, const char *sample);

/* cmocka fixtures: *state becomes a started echo server (ht_server *). */
int ht_setup_echo_server(void **state);
int ht_teardown_server(void **state);

/* ---- clients ---- */

/* ht_client_config: defaults, host 127.0.0.1, the given port, the dev CA. */
void ht_client_config(sdk_config *cfg, uint16_t port);
/* ht_wait_state: poll until the client is in state st; false on timeout. */
bool ht_wait_state(sdk_client *c, sdk_state st, int timeout_ms);

/* ---- payloads ---- */

/* ht_fill: a byte pattern that depends on seed and position; ht_check verifies it. */
void ht_fill(uint8_t *buf, size_t len, uint32_t seed);
bool ht_check(const uint8_t *buf, size_t len, uint32_t seed);

/* ---- client event recorder ---- */

#define HT_MAX_EVENTS 512

typedef struct ht_event {
    sdk_event_type type;
    int error;
    char detail[256];
    unsigned attempt;
    unsigned delay_ms;
    bool resumed;
    uint64_t at_ms;
} ht_event;

typedef struct ht_events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ht_event ev[HT_MAX_EVENTS];
    size_t n;       /* recorded (at most HT_MAX_EVENTS) */
    size_t dropped; /* beyond the capacity */
} ht_events;

void ht_events_init(ht_events *e);
void ht_events_free(ht_events *e);
/* ht_events_attach: make cfg report its events into e. */
void ht_events_attach(ht_events *e, sdk_config *cfg);
/* ht_events_wait: wait for an event of type at index >= from; returns its index (and a copy
 * in *out, which may be NULL), or -1 on timeout. */
int ht_events_wait(ht_events *e, sdk_event_type type, size_t from, int timeout_ms, ht_event *out);
/* ht_events_count: recorded events of type. */
size_t ht_events_count(ht_events *e, sdk_event_type type);

/* ---- server session event recorder ---- */

typedef struct ht_sevent {
    sdk_session_event_type type;
    uint64_t session;
    sdk_cause cause;
    char peer_addr[64];
    char detail[256]; /* server events (TLS reload) */
} ht_sevent;

typedef struct ht_sevents {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ht_sevent ev[HT_MAX_EVENTS];
    size_t n;
    size_t dropped;
} ht_sevents;

void ht_sevents_init(ht_sevents *e);
void ht_sevents_free(ht_sevents *e);
void ht_sevents_attach(ht_sevents *e, sdk_server_config *cfg);
/* ht_sevents_wait: like ht_events_wait, for session (0: any session). */
int ht_sevents_wait(ht_sevents *e, sdk_session_event_type type, uint64_t session, size_t from, int timeout_ms,
                    ht_sevent *out);

/* ---- lifeline-server subprocess ---- */

typedef struct ht_proc {
    pid_t pid;
    uint16_t port;
    int out_fd; /* read end of its stdout, kept open so a late write cannot SIGPIPE it */
} ht_proc;

/*
 * ht_proc_start: run $LIFELINE_BIN/lifeline-server --dev-certs <process certs> --listen
 * 127.0.0.1:<port> (0: ephemeral) plus extra (NULL-terminated, may be NULL), and wait up to
 * HT_WAIT_MS for its "listening on HOST:PORT" line, which sets p->port. 0 or -1 (reason on
 * stderr). Asking for a port just freed may meet EADDRINUSE for a moment: it tries again
 * until the deadline.
 */
int ht_proc_start(ht_proc *p, uint16_t port, const char *const *extra);
/* ht_proc_stop: send sig, reap the process (SIGKILL after HT_WAIT_MS). Returns its wait
 * status, or -1. Safe when not running. */
int ht_proc_stop(ht_proc *p, int sig);

/* ---- ports ---- */

/* ht_closed_port: a loopback port that refuses connections: bound without SO_REUSEADDR and
 * not listening, so nothing else can take it while *holder stays open. 0 on failure. */
uint16_t ht_closed_port(int *holder);

#endif
