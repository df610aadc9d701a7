/*
 * lifeline-bench --only store, failover: what a client sees when the instance it is on goes
 * away. Two build/bin/lifeline-server instances (--echo, --store-sync always) share the
 * store section's redis-server; one client in this process is given both endpoints (kept
 * in order) and streams numbered messages, which come back as echoes and are checked to
 * arrive exactly once and in order (in the client's on_message). Then, a number of times, the instance the client is on
 * (sdk_current_endpoint) gets a signal, the client resumes on the other one, and the
 * stopped instance is started again on its port. Four series:
 *  - no fault, for reference: the client's TCP connection is cut (shutdown(2)) and it
 *    resumes on the same instance, which has the session in memory;
 *  - SIGKILL, the instances sharing their TLS ticket keys through the store;
 *  - SIGTERM (a graceful stop: the client hears GOING_AWAY), shared ticket keys;
 *  - SIGTERM with each instance on a ticket rotation period of its own, so neither finds
 *    the other's keys: every reconnect is a full TLS handshake, for contrast.
 * Each fault gives three spans (README.md, "Failover"): signal to the client's CONNECTED,
 * its DISCONNECTED to CONNECTED, and the successful attempt's CONNECTING to CONNECTED
 * (the reconnect itself), set beside the raw OpenSSL resumed and full handshakes of
 * bench_raw.c measured in the same run.
 */
#include "bench.h"

#include <lifeline/sdk.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define INSTANCES     2
#define MAX_SAMPLES   512 /* faults per series over all runs */
#define MSG_SIZE      64
#define BURST         8  /* messages between pauses */
#define PAUSE_MS      2  /* a steady stream of a few thousand a second, not a flood */
#define FLOWING       50 /* echoes that show the stream flows again */
#define WAIT_S        10
#define SLOW_FAULT_MS 100   /* a fault that interrupted the client for longer counts as slow */
#define ROTATION_S    43200 /* the ticket rotation default; the series without shared keys add i */

enum { CUT, KILL, STOP, STOP_OWN_KEYS, N_SERIES };
enum { FROM_SIGNAL, FROM_DISCONNECT, ATTEMPT, ECHO_GAP, N_SPANS };

typedef struct series {
    const char *name;
    int sig;
    bool shared_keys;
    double ms[N_SPANS][MAX_SAMPLES];
    int n;
    unsigned long echoes; /* checked exact, over all runs */
    double stream_s;      /* how long the streams ran, over all runs */
} series;

static series all[N_SERIES] = {
    [CUT] = {.name = "cut, same instance (no fault)", .sig = 0, .shared_keys = true},
    [KILL] = {.name = "SIGKILL, shared ticket keys", .sig = SIGKILL, .shared_keys = true},
    [STOP] = {.name = "SIGTERM, shared ticket keys", .sig = SIGTERM, .shared_keys = true},
    [STOP_OWN_KEYS] = {.name = "SIGTERM, no shared ticket keys", .sig = SIGTERM, .shared_keys = false},
};

/* The raw OpenSSL reference, one median per run. */
static double raw_resumed[BENCH_MAX_RUNS], raw_full[BENCH_MAX_RUNS];
static int raw_runs;

/* ---- the streaming client ---- */

typedef struct stream {
    sdk_client *c;
    bench_events ev;
    pthread_t sender;
    atomic_bool stop_sending;
    atomic_ulong sent;                          /* messages 0..sent-1 are queued */
    atomic_ulong received;                      /* echoes 0..received-1 came, in order */
    atomic_ulong bad;                           /* echoes out of order or twice */
    atomic_int send_err;                        /* the first sdk_send failure */
    atomic_ullong last_echo_ns, longest_gap_ns; /* the longest wait for an echo since reset */
    const char *endpoints[INSTANCES];
} stream;

static void *send_loop(void *arg)
{
    stream *s = arg;
    uint8_t msg[MSG_SIZE] = {0};
    while (!atomic_load(&s->stop_sending)) {
        for (int k = 0; k < BURST; k++) {
            unsigned long n = atomic_load(&s->sent);
            bench_put_u64(msg, n);
            sdk_err rc = sdk_send(s->c, msg, sizeof msg, WAIT_S * 1000);
            if (rc != SDK_OK) {
                atomic_store(&s->send_err, (int)rc);
                return NULL;
            }
            atomic_store(&s->sent, n + 1);
        }
        bench_sleep_ms(PAUSE_MS);
    }
    return NULL;
}

/* An echo came at now: the wait since the one before may be the longest so far. */
static void note_echo(stream *s, uint64_t now)
{
    unsigned long long gap = now - atomic_exchange(&s->last_echo_ns, now);
    unsigned long long longest = atomic_load(&s->longest_gap_ns);
    while (gap > longest && !atomic_compare_exchange_weak(&s->longest_gap_ns, &longest, gap)) {
    }
}

/* The client's on_message, on its I/O thread: each echo must be the next number. */
static void on_echo(sdk_message *m, void *user)
{
    stream *s = user;
    note_echo(s, bench_now_ns());
    unsigned long next = atomic_load(&s->received);
    if (m->len == MSG_SIZE && bench_get_u64(m->data) == next) {
        atomic_store(&s->received, next + 1);
    } else {
        atomic_fetch_add(&s->bad, 1);
    }
    sdk_message_free(m);
}

/* The client's on_event: one user pointer serves both callbacks. */
static void on_stream_event(const sdk_event *ev, void *user)
{
    stream *s = user;
    bench_on_event(ev, &s->ev);
}

static void stream_start(stream *s, const bench_opts *o, char eps[INSTANCES][32])
{
    memset(s, 0, sizeof *s);
    atomic_store(&s->last_echo_ns, bench_now_ns());
    bench_events_init(&s->ev);
    for (int i = 0; i < INSTANCES; i++) {
        s->endpoints[i] = eps[i];
    }
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.endpoints = s->endpoints;
    cfg.endpoint_count = INSTANCES;
    cfg.keep_endpoint_order = true; /* a fault always sends the client to the other one */
    cfg.ca_file = o->ca;
    cfg.reconnect_min_ms = 10; /* as the restart figure of the main table */
    cfg.reconnect_max_ms = 100;
    cfg.on_event = on_stream_event;
    cfg.on_message = on_echo;
    cfg.user = s;
    sdk_err rc = sdk_connect(&cfg, &s->c);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        bench_die("failover: sdk_connect: %s: %s", sdk_errname(rc), detail);
    }
    if (pthread_create(&s->sender, NULL, send_loop, s) != 0) {
        bench_die("failover: cannot start the sender thread");
    }
}

/* Until n more echoes came, in order: the stream flows (through whichever instance). */
static void stream_wait_flowing(stream *s, unsigned long n)
{
    unsigned long want = atomic_load(&s->received) + n;
    uint64_t deadline = bench_now_ns() + WAIT_S * 1000000000ull;
    while (atomic_load(&s->received) < want && !atomic_load(&s->bad) && bench_now_ns() < deadline) {
        bench_sleep_ms(1);
    }
    if (atomic_load(&s->bad) || atomic_load(&s->received) < want) {
        bench_die("failover: the echoes stopped at %lu (%lu out of order or twice; send error %s)",
                  atomic_load(&s->received), atomic_load(&s->bad), sdk_errname(atomic_load(&s->send_err)));
    }
}

/* Stop sending, take every echo, and check that none comes twice or is lost; the count. */
static unsigned long stream_finish(stream *s)
{
    atomic_store(&s->stop_sending, true);
    pthread_join(s->sender, NULL);
    unsigned long sent = atomic_load(&s->sent);
    uint64_t deadline = bench_now_ns() + WAIT_S * 1000000000ull;
    while (atomic_load(&s->received) < sent && !atomic_load(&s->bad) && bench_now_ns() < deadline) {
        bench_sleep_ms(1);
    }
    bench_sleep_ms(100); /* room for a late duplicate to show */
    sdk_stats st;
    sdk_get_stats(s->c, &st);
    bench_event_times t = bench_events_snapshot(&s->ev);
    if (atomic_load(&s->send_err) || atomic_load(&s->bad) || atomic_load(&s->received) != sent || st.sessions_lost ||
        t.lost) {
        bench_die("failover: sent %lu, echoes %lu in order, %lu out of order or twice, sessions lost %llu, send "
                  "error %s",
                  sent, atomic_load(&s->received), atomic_load(&s->bad), (unsigned long long)st.sessions_lost,
                  sdk_errname(atomic_load(&s->send_err)));
    }
    sdk_destroy(s->c); /* no callback runs after it */
    bench_events_free(&s->ev);
    return sent;
}

/* ---- the instances ---- */

typedef struct cluster {
    const bench_opts *o;
    const char *redis_url;
    bool shared_keys;
    bench_proc proc[INSTANCES];
    uint16_t port[INSTANCES]; /* 0 until the first start picked one */
    char eps[INSTANCES][32];
} cluster;

static void instance_start(cluster *cl, int i)
{
    char rotation[24];
    snprintf(rotation, sizeof rotation, "%d", ROTATION_S + (cl->shared_keys ? 0 : i));
    const char *const extra[] = {"--store",     cl->redis_url, "--store-sync",        "always", "--echo",
                                 "--log-level", "warn",        "--ticket-rotation-s", rotation, NULL};
    if (!bench_server_start(cl->o, cl->port[i], extra, &cl->proc[i])) {
        bench_die("failover: no %s/lifeline-server", cl->o->bindir);
    }
    cl->port[i] = cl->proc[i].port;
    snprintf(cl->eps[i], sizeof cl->eps[i], "127.0.0.1:%u", (unsigned)cl->port[i]);
}

static size_t current_endpoint(sdk_client *c)
{
    size_t index = SIZE_MAX;
    if (sdk_current_endpoint(c, &index, NULL, 0) != SDK_OK || index >= INSTANCES) {
        bench_die("failover: sdk_current_endpoint gave no endpoint");
    }
    return index;
}

/* The client's TCP connection to instance at (the only one from this process to its port). */
static int client_socket(const cluster *cl, size_t at)
{
    int fd = bench_find_socket(0, cl->port[at]);
    if (fd < 0) {
        bench_die("failover: cannot find the client's socket to port %u", (unsigned)cl->port[at]);
    }
    return fd;
}

/* After the fault: the client back, on the endpoint it should be on, resumed, with one more
 * TLS handshake of the kind the keys allow, and the instance gone as its signal says. */
static void check_fault(stream *s, const series *se, const bench_event_times *t0, const sdk_stats *st0, size_t at,
                        int status)
{
    bench_event_times t1 = bench_events_snapshot(&s->ev);
    sdk_stats st1;
    sdk_get_stats(s->c, &st1);
    bool exited = se->sig == 0         ? true
                  : se->sig == SIGKILL ? WIFSIGNALED(status)
                                       : WIFEXITED(status) && WEXITSTATUS(status) == 0;
    bool tls_ok = se->shared_keys ? st1.handshakes_resumed == st0->handshakes_resumed + 1
                                  : st1.handshakes_full == st0->handshakes_full + 1;
    bool moved = current_endpoint(s->c) != at;
    if (!exited || !t1.last_resumed || t1.lost != t0->lost || t1.disconnected != t0->disconnected + 1 || !tls_ok ||
        moved != (se->sig != 0)) {
        bench_die("failover: %s: exit status %#x, resumed %d, sessions lost %u, TLS resumed %llu -> %llu, full "
                  "%llu -> %llu, endpoint %zu -> %zu",
                  se->name, (unsigned)status, t1.last_resumed, t1.lost - t0->lost,
                  (unsigned long long)st0->handshakes_resumed, (unsigned long long)st1.handshakes_resumed,
                  (unsigned long long)st0->handshakes_full, (unsigned long long)st1.handshakes_full, at,
                  current_endpoint(s->c));
    }
}

/* One fault: the client's instance gets se->sig (0: the client's connection is cut and the
 * instance lives on); record the spans once the client is back, then restart the instance. */
static void fault_once(cluster *cl, stream *s, series *se)
{
    size_t at = current_endpoint(s->c);
    int fd = se->sig == 0 ? client_socket(cl, at) : -1;
    bench_event_times t0 = bench_events_snapshot(&s->ev);
    sdk_stats st0;
    sdk_get_stats(s->c, &st0);
    atomic_store(&s->longest_gap_ns, 0);
    uint64_t signalled = bench_now_ns();
    int status = fd >= 0 ? shutdown(fd, SHUT_RDWR) : bench_server_stop(&cl->proc[at], se->sig);
    if (!bench_events_wait(&s->ev, &s->ev.t.connected, t0.connected)) {
        bench_die("failover: %s: the client did not reconnect within %d s", se->name, WAIT_S);
    }
    check_fault(s, se, &t0, &st0, at, status);
    bench_event_times t1 = bench_events_snapshot(&s->ev);
    se->ms[FROM_SIGNAL][se->n] = (double)(t1.connected_ns - signalled) / 1e6;
    se->ms[FROM_DISCONNECT][se->n] = (double)(t1.connected_ns - t1.disconnected_ns) / 1e6;
    se->ms[ATTEMPT][se->n] = (double)(t1.connected_ns - t1.attempt_ns) / 1e6;
    stream_wait_flowing(s, FLOWING); /* before the restart, whose start-up would take CPU from it */
    se->ms[ECHO_GAP][se->n] = (double)atomic_load(&s->longest_gap_ns) / 1e6;
    se->n++;
    if (se->sig != 0) {
        instance_start(cl, (int)at);
        stream_wait_flowing(s, FLOWING);
    }
}

static void series_run(const bench_opts *o, const char *redis_url, series *se, int faults)
{
    cluster cl = {.o = o, .redis_url = redis_url, .shared_keys = se->shared_keys};
    for (int i = 0; i < INSTANCES; i++) {
        instance_start(&cl, i);
    }
    stream s;
    uint64_t t0 = bench_now_ns();
    stream_start(&s, o, cl.eps);
    stream_wait_flowing(&s, FLOWING);
    for (int k = 0; k < faults && se->n < MAX_SAMPLES; k++) {
        fault_once(&cl, &s, se);
    }
    se->echoes += stream_finish(&s);
    se->stream_s += (double)(bench_now_ns() - t0) / 1e9;
    for (int i = 0; i < INSTANCES; i++) {
        bench_server_stop(&cl.proc[i], SIGTERM);
    }
}

void bench_failover_run(const bench_opts *o, const char *redis_url)
{
    int faults = o->quick ? 3 : 8;
    for (int k = 0; k < N_SERIES; k++) {
        char phase[96];
        snprintf(phase, sizeof phase, "failover: %s", all[k].name);
        bench_phase(phase, 60 + 10 * faults, NULL);
        series_run(o, redis_url, &all[k], faults);
        bench_phase(NULL, 0, NULL);
    }
    bench_phase("failover: raw TLS handshakes", 60, NULL);
    raw_resumed[raw_runs] = bench_raw_handshake_ms(o->handshakes, true);
    raw_full[raw_runs] = bench_raw_handshake_ms(o->handshakes, false);
    raw_runs++;
    bench_phase(NULL, 0, NULL);
}

/* ---- the table ---- */

/* "median / p90" of n samples (sorted in place). */
static const char *median_p90(double *v, int n, char *buf, size_t len)
{
    bench_sort(v, (size_t)n);
    snprintf(buf, len, "%.2f / %.2f", bench_median(v, n), bench_percentile(v, (size_t)n, 0.9));
    return buf;
}

static void print_series(series *se, double raw_resumed_ms, double raw_full_ms)
{
    char span[N_SPANS][40];
    for (int k = 0; k < N_SPANS; k++) {
        median_p90(se->ms[k], se->n, span[k], sizeof span[k]);
    }
    double raw = se->shared_keys ? raw_resumed_ms : raw_full_ms, attempt = bench_median(se->ms[ATTEMPT], se->n);
    char ref[32];
    snprintf(ref, sizeof ref, "%.3f %s", raw, se->shared_keys ? "resumed" : "full");
    printf("%-30s | %3d | %17s | %18s | %16s | %15s | %13s | %5.2f\n", se->name, se->n, span[FROM_SIGNAL],
           span[FROM_DISCONNECT], span[ECHO_GAP], span[ATTEMPT], ref, raw > 0 ? attempt / raw : 0);
}

void bench_failover_print(void)
{
    if (raw_runs == 0) {
        return;
    }
    double resumed = bench_median(raw_resumed, raw_runs), full = bench_median(raw_full, raw_runs);
    double rate = all[KILL].stream_s > 0 ? (double)all[KILL].echoes / all[KILL].stream_s : 0;
    printf("\nfailover: %d lifeline-server --echo --store-sync always instances on that redis-server, one client given "
           "both endpoints\n(kept in order, reconnect_min_ms 10, reconnect_max_ms 100), %d B messages both ways, "
           "about %.0f/s; times in ms, median / p90\n",
           INSTANCES, MSG_SIZE, rate);
    printf("%-30s | %3s | %17s | %18s | %16s | %15s | %13s | %5s\n", "fault", "n", "signal->CONNECTED",
           "DISCONN->CONNECTED", "longest echo gap", "reconnect", "raw handshake", "ratio");
    printf("-------------------------------+-----+-------------------+-----------"
           "---------+------------------+-----------------+---------------+-------\n");
    for (int k = 0; k < N_SERIES; k++) {
        print_series(&all[k], resumed, full);
    }
    printf("every fault: the client resumed its session (CONNECTED resumed, no SESSION_LOST), on the other instance "
           "after a signal and on the\nsame one after a cut, with a resumed TLS handshake where the keys are shared "
           "and a full one where not; echoes exact\n(none lost, none twice, in order), per series:");
    for (int k = 0; k < N_SERIES; k++) {
        printf(" %lu%s", all[k].echoes, k + 1 < N_SERIES ? "," : "\n");
    }
    printf("longest signal->CONNECTED per series (ms):"); /* sorted by median_p90 */
    for (int k = 0; k < N_SERIES; k++) {
        printf(" %.2f%s", all[k].n ? all[k].ms[FROM_SIGNAL][all[k].n - 1] : 0, k + 1 < N_SERIES ? "," : "\n");
    }
    /* A graceful stop that waits out its drain bound shows here, where a median hides it. */
    printf("faults over %d ms signal->CONNECTED per series:", SLOW_FAULT_MS);
    for (int k = 0; k < N_SERIES; k++) {
        int slow = 0;
        for (int i = 0; i < all[k].n; i++) {
            slow += all[k].ms[FROM_SIGNAL][i] > SLOW_FAULT_MS;
        }
        printf(" %d of %d%s", slow, all[k].n, k + 1 < N_SERIES ? "," : "\n\n");
    }
}
