/*
 * lifeline-bench: throughput, latency, handshake, reconnect and memory figures for
 * Lifeline on loopback, beside a minimal raw OpenSSL TLS 1.3 pair as the reference.
 *
 *   lifeline-bench [--runs N] [--quick] [--duration SECONDS] [--mem-clients N] [--peers]
 *
 * Every figure is the median of N runs (default 5). Runs are interleaved (one run of each
 * measurement, Lifeline then raw, then the next run) so background load hits both sides
 * alike. The table goes to stdout, progress to stderr. See README.md for what each figure
 * means exactly.
 */
#include "bench.h"

#include <lifeline/sdk.h>
#include <lifeline/server.h>

#include <openssl/crypto.h>

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LIFELINE_BENCH_BUILD_TYPE
#define LIFELINE_BENCH_BUILD_TYPE "unknown"
#endif

/* ---- options ---- */

static void usage(FILE *out)
{
    fprintf(out, "usage: lifeline-bench [options]\n"
                 "  --runs N           runs per figure; each figure is their median (default 5; --quick: 1)\n"
                 "  --quick            a short smoke run (about 10 s)\n"
                 "  --duration S       seconds per throughput run (default 2; --quick: 0.5)\n"
                 "  --mem-clients N    idle clients per memory probe (default 200; --quick: 50)\n"
                 "  --only SECTIONS    comma-separated subset of: memory,throughput,sink,latency,handshake,restart,\n"
                 "                     store (session store costs, with a private redis-server; only when named)\n"
                 "                     (sink: the sink half of throughput alone)\n"
                 "                     (for profiling one part, e.g. perf record -g lifeline-bench --only throughput)\n"
                 "  --process          also the separate-process rows: the client here, the server a\n"
                 "                     lifeline-server --sink/--echo (raw: a raw server) subprocess\n"
                 "                     peers: the peer table alone (as --peers, without the rest)\n"
                 "  --io-threads N     every Lifeline server (in-process and lifeline-server) with N I/O threads\n"
                 "                     (default: the server's default, 1)\n"
                 "  --peers            also NATS core and MQTT QoS 1 beside Lifeline and raw TLS, each against a\n"
                 "                     private nats-server / mosquitto (needs a build with libnats and libmosquitto)\n"
                 "Loopback only. The table goes to stdout, progress to stderr.\n");
}

static long number(const char *flag, const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text ? text : "", &end, 10);
    if (!text || errno || *end || v < min || v > max) {
        fprintf(stderr, "lifeline-bench: %s wants a number from %ld to %ld\n", flag, min, max);
        exit(64);
    }
    return v;
}

static void check_peers(bench_opts *o);

static void parse(int argc, char **argv, bench_opts *o)
{
    int runs = 0, mem = 0;
    double duration = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            o->quick = true;
        } else if (strcmp(a, "--process") == 0) {
            o->process = true;
        } else if (strcmp(a, "--runs") == 0) {
            runs = (int)number(a, next, 1, BENCH_MAX_RUNS);
            i++;
        } else if (strcmp(a, "--mem-clients") == 0) {
            mem = (int)number(a, next, 1, 5000);
            i++;
        } else if (strcmp(a, "--duration") == 0) {
            char *end = NULL;
            duration = next ? strtod(next, &end) : 0;
            if (!next || *end || duration < 0.05 || duration > 60) {
                fprintf(stderr, "lifeline-bench: --duration wants seconds from 0.05 to 60\n");
                exit(64);
            }
            i++;
        } else if (strcmp(a, "--peers") == 0) {
            o->peers = true;
        } else if (strcmp(a, "--io-threads") == 0) {
            o->io_threads = (int)number(a, next, 1, SDK_IO_THREADS_MAX);
            i++;
        } else if (strcmp(a, "--only") == 0) {
            if (!next) {
                usage(stderr);
                exit(64);
            }
            o->only = next;
            i++;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            exit(64);
        }
    }
    o->runs = runs ? runs : o->quick ? 1 : 5;
    o->duration_s = duration > 0 ? duration : o->quick ? 0.5 : 2.0;
    o->mem_clients = mem ? mem : o->quick ? 50 : 200;
    o->latency_iters = o->quick ? 2000 : 20000;
    o->handshakes = o->quick ? 50 : 200;
    o->connects = o->quick ? 10 : 40;
    o->reconnects = o->quick ? 10 : 40;
    check_peers(o);
}

static bool wanted(const bench_opts *o, const char *section);

/* --peers, or --only naming peers: the peer table, if this build has it. */
static void check_peers(bench_opts *o)
{
    o->peers = o->peers || (o->only && wanted(o, "peers"));
#ifndef LIFELINE_BENCH_PEERS
    if (o->peers) {
        fprintf(stderr, "lifeline-bench: built without the peers (CMake found no libnats and libmosquitto);\n"
                        "  bash setup.sh bench --peers installs them and rebuilds\n");
        exit(64);
    }
#endif
}

/* Whether section is selected by --only (everything is, without it). */
static bool wanted(const bench_opts *o, const char *section)
{
    if (!o->only) {
        return true;
    }
    size_t n = strlen(section);
    for (const char *p = o->only; (p = strstr(p, section)) != NULL; p += n) {
        bool starts = p == o->only || p[-1] == ',';
        bool ends = p[n] == '\0' || p[n] == ',';
        if (starts && ends) {
            return true;
        }
    }
    return false;
}

/* Whether --only names the store section alone (its table is all there is to print). */
static bool only_store(const bench_opts *o)
{
    return o->only && strcmp(o->only, "store") == 0;
}

/* ---- environment ---- */

static bench_opts *cleanup_opts;

static void remove_certs(void)
{
    DIR *d = opendir(cleanup_opts->certs);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            char path[600];
            snprintf(path, sizeof path, "%s/%s", cleanup_opts->certs, de->d_name);
            unlink(path);
        }
    }
    if (d) {
        closedir(d);
    }
    rmdir(cleanup_opts->certs);
}

static void setup(bench_opts *o, const char *argv0)
{
    ssize_t n = readlink("/proc/self/exe", o->self, sizeof o->self - 1);
    if (n <= 0) {
        snprintf(o->self, sizeof o->self, "%s", argv0);
    } else {
        o->self[n] = '\0';
    }
    char tmp[sizeof o->self];
    snprintf(tmp, sizeof tmp, "%s", o->self);
    snprintf(o->bindir, sizeof o->bindir, "%s", dirname(tmp));

    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(o->certs, sizeof o->certs, "%s/lifeline-bench-XXXXXX", base);
    if (!mkdtemp(o->certs)) {
        bench_die("mkdtemp %s: %s", o->certs, strerror(errno));
    }
    cleanup_opts = o;
    atexit(remove_certs);
    char err[256];
    if (sdk_dev_certs(o->certs, err, sizeof err) != SDK_OK) {
        bench_die("sdk_dev_certs: %s", err);
    }
    snprintf(o->ca, sizeof o->ca, "%s/ca.pem", o->certs);
    snprintf(o->cert, sizeof o->cert, "%s/server.pem", o->certs);
    snprintf(o->key, sizeof o->key, "%s/server.key", o->certs);
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) {
                snprintf(buf, len, "%s", v + 2);
                buf[strcspn(buf, "\n")] = '\0';
            }
            break;
        }
    }
    if (f) {
        fclose(f);
    }
}

static void loadavg(char *buf, size_t len)
{
    snprintf(buf, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fgets(buf, (int)len, f)) {
        buf[strcspn(buf, "\n")] = '\0';
    }
    if (f) {
        fclose(f);
    }
}

/* ---- the table ---- */

typedef struct row {
    const char *name;
    int decimals;
    double scale;               /* printed value = sample * scale */
    double lif[BENCH_MAX_RUNS]; /* per-run samples */
    double raw[BENCH_MAX_RUNS];
    int nl, nr;
} row;

enum {
    R_SINK64,
    R_SINK64_MB,
    R_SINK4K,
    R_SINK4K_MB,
    R_ECHO64,
    R_ECHO64_MB,
    R_ECHO4K,
    R_ECHO4K_MB,
    R_P50,
    R_P99,
    R_P999,
    R_CB_P50,
    R_CB_P99,
    R_CB_P999,
    R_CPU_SINK64,
    R_CPU_SINK4K,
    R_CPU_ECHO64,
    R_CPU_ECHO4K,
    R_PROC_SINK64,
    R_PROC_SINK4K,
    R_PROC_ECHO4K,
    R_PROC_CPU_SINK64,
    R_PROC_CPU_SINK4K,
    R_PROC_CPU_ECHO4K,
    R_PROC_P50,
    R_PROC_P99,
    R_PROC_P999,
    R_FULL,
    R_RESUMED,
    R_RESUMED_CUT,
    R_RESTART,
    R_RESTART_BACKOFF,
    R_MEM_BOTH,
    R_MEM_CLIENT,
    R_MEM_SERVER,
    R_COUNT
};

#define ROW(n, d, s)                               \
    {                                              \
        .name = (n), .decimals = (d), .scale = (s) \
    }
static row rows[R_COUNT] = {
    [R_SINK64] = ROW("sink 64 B, one client (k msg/s)", 1, 1e-3),
    [R_SINK64_MB] = ROW("sink 64 B (MB/s payload)", 1, 64e-6),
    [R_SINK4K] = ROW("sink 4 KiB, one client (k msg/s)", 1, 1e-3),
    [R_SINK4K_MB] = ROW("sink 4 KiB (MB/s payload)", 1, 4096e-6),
    [R_ECHO64] = ROW("echo 64 B, one client (k msg/s)", 1, 1e-3),
    [R_ECHO64_MB] = ROW("echo 64 B (MB/s payload, one way)", 1, 64e-6),
    [R_ECHO4K] = ROW("echo 4 KiB, one client (k msg/s)", 1, 1e-3),
    [R_ECHO4K_MB] = ROW("echo 4 KiB (MB/s payload, one way)", 1, 4096e-6),
    [R_P50] = ROW("round trip 64 B p50 (us)", 1, 1),
    [R_P99] = ROW("round trip 64 B p99 (us)", 1, 1),
    [R_P999] = ROW("round trip 64 B p99.9 (us)", 1, 1),
    [R_CB_P50] = ROW("round trip, on_message p50 (us)", 1, 1),
    [R_CB_P99] = ROW("round trip, on_message p99 (us)", 1, 1),
    [R_CB_P999] = ROW("round trip, on_message p99.9 (us)", 1, 1),
    [R_CPU_SINK64] = ROW("CPU per msg, sink 64 B (us, both ends)", 3, 1),
    [R_CPU_SINK4K] = ROW("CPU per msg, sink 4 KiB (us)", 2, 1),
    [R_CPU_ECHO64] = ROW("CPU per msg, echo 64 B (us)", 3, 1),
    [R_CPU_ECHO4K] = ROW("CPU per msg, echo 4 KiB (us)", 2, 1),
    [R_PROC_SINK64] = ROW("process: sink 64 B (k msg/s)", 1, 1e-3),
    [R_PROC_SINK4K] = ROW("process: sink 4 KiB (k msg/s)", 1, 1e-3),
    [R_PROC_ECHO4K] = ROW("process: echo 4 KiB (k msg/s)", 1, 1e-3),
    [R_PROC_CPU_SINK64] = ROW("process: CPU per msg, sink 64 B (us)", 3, 1),
    [R_PROC_CPU_SINK4K] = ROW("process: CPU per msg, sink 4 KiB (us)", 2, 1),
    [R_PROC_CPU_ECHO4K] = ROW("process: CPU per msg, echo 4 KiB (us)", 2, 1),
    [R_PROC_P50] = ROW("process: round trip 64 B p50 (us)", 1, 1),
    [R_PROC_P99] = ROW("process: round trip 64 B p99 (us)", 1, 1),
    [R_PROC_P999] = ROW("process: round trip 64 B p99.9 (us)", 1, 1),
    [R_FULL] = ROW("new connection, full handshake (ms)", 3, 1),
    [R_RESUMED] = ROW("reconnect, resumed handshake (ms)", 3, 1),
    [R_RESUMED_CUT] = ROW("  the same from the cut (ms)", 3, 1),
    [R_RESTART] = ROW("server restart -> CONNECTED (ms)", 1, 1),
    [R_RESTART_BACKOFF] = ROW("  of which backoff wait (ms)", 1, 1),
    [R_MEM_BOTH] = ROW("RSS per idle conn, both ends (KiB)", 1, 1),
    [R_MEM_CLIENT] = ROW("RSS per idle conn, client (KiB)", 1, 1),
    [R_MEM_SERVER] = ROW("RSS per idle conn, server (KiB)", 1, 1),
};

static void add(int r, double lifeline, double raw)
{
    if (lifeline >= 0) {
        rows[r].lif[rows[r].nl++] = lifeline;
    }
    if (raw >= 0) {
        rows[r].raw[rows[r].nr++] = raw;
    }
}

static void print_table(void)
{
    bool any = false;
    for (int i = 0; i < R_COUNT; i++) {
        any = any || rows[i].nl > 0;
    }
    if (!any) {
        return; /* --only peers or store: their own tables */
    }
    printf("%-38s | %12s | %12s | %7s | %s\n", "metric", "lifeline", "raw TLS", "ratio", "lifeline min..max");
    printf("%.38s-+-%.12s-+-%.12s-+-%.7s-+-%.20s\n", "----------------------------------------", "--------------",
           "--------------", "---------", "----------------------");
    for (int i = 0; i < R_COUNT; i++) {
        row *r = &rows[i];
        if (r->nl == 0) {
            continue;
        }
        double lo = 0, hi = 0;
        for (int k = 0; k < r->nl; k++) {
            lo = k == 0 || r->lif[k] < lo ? r->lif[k] : lo;
            hi = k == 0 || r->lif[k] > hi ? r->lif[k] : hi;
        }
        double l = bench_median(r->lif, r->nl) * r->scale;
        char raw[32] = "-", ratio[16] = "-";
        if (r->nr > 0) {
            double w = bench_median(r->raw, r->nr) * r->scale;
            snprintf(raw, sizeof raw, "%.*f", r->decimals, w);
            if (w > 0) {
                snprintf(ratio, sizeof ratio, "%.2f", l / w);
            }
        }
        printf("%-38s | %12.*f | %12s | %7s | %.*f..%.*f\n", r->name, r->decimals, l, raw, ratio, r->decimals,
               lo * r->scale, r->decimals, hi * r->scale);
    }
}

/* ---- one run of everything ---- */

typedef struct extras {
    bench_latency blocking, process; /* from the last run: ack frames per round trip */
    bench_reconnect rc;              /* from the last run */
    int reconnect_runs;
    int restart_tls_resumed, restart_session_lost, restart_runs;
} extras;

/* The separate-process rows (--process), for the sections selected. */
static void process_run(const bench_opts *o, extras *x)
{
    if (wanted(o, "throughput") || wanted(o, "sink")) {
        bench_proc_pair p = bench_proc_throughput(o, false, 64);
        add(R_PROC_SINK64, p.lifeline, p.raw);
        add(R_PROC_CPU_SINK64, p.lifeline_cpu_us, p.raw_cpu_us);
        p = bench_proc_throughput(o, false, 4096);
        add(R_PROC_SINK4K, p.lifeline, p.raw);
        add(R_PROC_CPU_SINK4K, p.lifeline_cpu_us, p.raw_cpu_us);
    }
    if (wanted(o, "throughput")) {
        bench_proc_pair p = bench_proc_throughput(o, true, 4096);
        add(R_PROC_ECHO4K, p.lifeline, p.raw);
        add(R_PROC_CPU_ECHO4K, p.lifeline_cpu_us, p.raw_cpu_us);
    }
    if (wanted(o, "latency")) {
        bench_latency l, r;
        bench_proc_latency(o, &l, &r);
        x->process = l;
        add(R_PROC_P50, l.p50_us, r.p50_us);
        add(R_PROC_P99, l.p99_us, r.p99_us);
        add(R_PROC_P999, l.p999_us, r.p999_us);
    }
}

/* One in-process throughput run of each column: rates into rate_row (and the MB/s row after
 * it), CPU per message (the whole process: both ends) into cpu_row. */
static void throughput_pair(const bench_opts *o, bool echo, size_t size, int rate_row, int cpu_row)
{
    double cpu0 = bench_cpu_s();
    double l = bench_sdk_throughput(o, echo, size);
    double l_cpu = (bench_cpu_s() - cpu0) * 1e6 / (double)bench_last_sent;
    cpu0 = bench_cpu_s();
    double w = bench_raw_throughput(echo, size, o->duration_s);
    double w_cpu = (bench_cpu_s() - cpu0) * 1e6 / (double)bench_last_sent;
    add(rate_row, l, w);
    add(rate_row + 1, l, w);
    add(cpu_row, l_cpu, w_cpu);
}

static void one_run(const bench_opts *o, extras *x)
{
    static const size_t sizes[2] = {64, 4096};
    for (int s = 0; s < 2 && (wanted(o, "throughput") || wanted(o, "sink")); s++) {
        throughput_pair(o, false, sizes[s], s ? R_SINK4K : R_SINK64, s ? R_CPU_SINK4K : R_CPU_SINK64);
        if (wanted(o, "throughput")) { /* not --only sink */
            throughput_pair(o, true, sizes[s], s ? R_ECHO4K : R_ECHO64, s ? R_CPU_ECHO4K : R_CPU_ECHO64);
        }
    }
    if (wanted(o, "latency")) {
        bench_latency ll = bench_sdk_latency(o, false), lc = bench_sdk_latency(o, true);
        bench_latency rl = bench_raw_latency(o->latency_iters);
        x->blocking = ll;
        add(R_P50, ll.p50_us, rl.p50_us);
        add(R_P99, ll.p99_us, rl.p99_us);
        add(R_P999, ll.p999_us, rl.p999_us);
        add(R_CB_P50, lc.p50_us, rl.p50_us);
        add(R_CB_P99, lc.p99_us, rl.p99_us);
        add(R_CB_P999, lc.p999_us, rl.p999_us);
    }
    if (o->process) {
        process_run(o, x);
    }
    if (wanted(o, "handshake")) {
        add(R_FULL, bench_sdk_connect_ms(o), bench_raw_handshake_ms(o->handshakes, false));
        x->rc = bench_sdk_reconnect(o);
        double raw = bench_raw_handshake_ms(o->handshakes, true);
        add(R_RESUMED, x->rc.attempt_median_ms, raw);
        add(R_RESUMED_CUT, x->rc.median_ms, raw);
        x->reconnect_runs++;
    }
    if (wanted(o, "restart")) {
        bench_restart rs = bench_sdk_restart(o);
        add(R_RESTART, rs.connected_ms, -1);
        add(R_RESTART_BACKOFF, rs.backoff_ms, -1);
        x->restart_tls_resumed += rs.resumed_tls;
        x->restart_session_lost += rs.session_lost;
        x->restart_runs++;
    }
#ifdef LIFELINE_BENCH_PEERS
    if (o->peers) {
        bench_peers_run(o);
    }
#endif
}

static void print_header(const bench_opts *o)
{
    char cpu[256], load[128];
    cpu_model(cpu, sizeof cpu);
    loadavg(load, sizeof load);
    printf("lifeline-bench: loopback 127.0.0.1, client and server in one process%s\n",
           o->process ? " (process: rows with the server in another)" : "");
    printf("cpu: %s, %ld cores online\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    printf("build type: %s; %s\n", LIFELINE_BENCH_BUILD_TYPE, OpenSSL_version(OPENSSL_VERSION));
    printf("runs: %d (each figure is the median), throughput runs of %.2f s, %d round trips per latency run,\n"
           "      %d raw handshakes of each kind, %d sdk_connect and %d forced reconnects per run, %d idle clients "
           "per memory probe\n",
           o->runs, o->duration_s, o->latency_iters, o->handshakes, o->connects, o->reconnects, o->mem_clients);
    printf("server I/O threads: %d%s\n", o->io_threads ? o->io_threads : 1, o->io_threads ? "" : " (default)");
    printf("load average at start: %s\n\n", load);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--mem-probe") == 0) {
        return bench_mem_probe_main(argc - 2, argv + 2);
    }
    if (argc > 1 && strcmp(argv[1], "--raw-server") == 0) {
        return bench_raw_server_main(argc - 2, argv + 2);
    }
    static bench_opts o;
    parse(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    setup(&o, argv[0]);
    print_header(&o);
    bench_watchdog_start();
    bench_raw_init(&o);
    uint64_t t0 = bench_now_ns();

    /* Memory first: nothing else has run in this process yet, though the probes are
     * separate processes anyway. */
    for (int r = 0; r < o.runs && wanted(&o, "memory"); r++) {
        fprintf(stderr, "memory probe %d/%d...\n", r + 1, o.runs);
        bench_phase("memory probes", 240, NULL);
        bench_mem m = bench_memory(&o);
        bench_phase(NULL, 0, NULL);
        add(R_MEM_BOTH, m.both_kib, -1);
        add(R_MEM_CLIENT, m.client_kib, -1);
        add(R_MEM_SERVER, m.server_kib, -1);
    }

    if (o.only && wanted(&o, "store")) { /* only when asked: it needs a redis-server */
        bench_store_section(&o);
    }
    extras x = {0};
#ifdef LIFELINE_BENCH_PEERS
    if (o.peers) {
        bench_peers_start(&o);
    }
#endif
    for (int r = 0; r < o.runs && !only_store(&o); r++) {
        fprintf(stderr, "run %d/%d...\n", r + 1, o.runs);
        one_run(&o, &x);
    }
    bench_raw_free();

    if (!only_store(&o)) {
        print_table(); /* the store section printed its own tables */
    }
    char load[128];
    loadavg(load, sizeof load);
    printf("\nraw TLS cipher: %s. ratio = lifeline / raw.\n", bench_raw_cipher());
    if (x.blocking.acks_sent_per_rt > 0 || x.process.acks_sent_per_rt > 0) {
        printf("ack frames per blocking round trip (client, last run): in-process %.2f sent / %.2f received",
               x.blocking.acks_sent_per_rt, x.blocking.acks_received_per_rt);
        if (o.process) {
            printf("; process %.2f / %.2f", x.process.acks_sent_per_rt, x.process.acks_received_per_rt);
        }
        printf("\n");
    }
    if (x.reconnect_runs) {
        printf("forced reconnects (last run): %llu reconnects, %llu TLS resumed / %llu full handshakes "
               "(first connect included), %u sessions resumed, %llu lost\n",
               (unsigned long long)x.rc.reconnects, (unsigned long long)x.rc.handshakes_resumed,
               (unsigned long long)x.rc.handshakes_full, x.rc.resumed_events, (unsigned long long)x.rc.sessions_lost);
    }
    if (x.restart_runs) {
        printf("server restarts: %d of %d reconnected with a resumed TLS handshake, %d reported SESSION_LOST\n",
               x.restart_tls_resumed, x.restart_runs, x.restart_session_lost);
    }
#ifdef LIFELINE_BENCH_PEERS
    if (o.peers) {
        bench_peers_finish(&o);
    }
#endif
    printf("load average at end: %s; total %.1f s\n", load, (double)(bench_now_ns() - t0) / 1e9);
    return 0;
}
