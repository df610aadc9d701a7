/*
 * The NATS peer: libnats (Debian's libnats-dev) against a nats-server this benchmark starts
 * itself on a free loopback port, its configuration and log in a temp directory, TLS with
 * the same certificates as Lifeline's server. NATS core: at most once, no acknowledgements.
 *
 * publish: natsConnection_Publish in a loop for the duration, then natsConnection_FlushTimeout
 * (a PING/PONG: the server has read everything before it). No subscriber: the server parses
 * each message and drops it. Default options: libnats buffers and its flusher thread writes.
 *
 * round trip: a client publishes on one subject; a responder thread (its own connection, a
 * synchronous subscription) publishes each message back on another, which the client takes
 * with natsSubscription_NextMsg. Both connections send as soon as published
 * (natsOptions_SetSendAsap), the libnats setting for latency.
 */
#include "bench.h"
#include "server_proc.h"

#include <nats/nats.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READY_MS   10000
#define REPLY_MS   10000 /* a ping-pong reply later than this is a failure, not a figure */
#define FLUSH_MS   60000
#define PING_SUBJ  "lifeline-bench.ping"
#define PONG_SUBJ  "lifeline-bench.pong"
#define SINK_SUBJ  "lifeline-bench.sink"
#define STOP_BYTES 1 /* a message this long tells the responder to stop */

static struct {
    pid_t pid;
    uint16_t port;
    char dir[256];
    char url[64];
    char describe[256];
    const bench_opts *o;
} ns;

static void check(natsStatus s, const char *what)
{
    if (s != NATS_OK) {
        bench_die("NATS: %s: %s (%s)", what, natsStatus_GetText(s), nats_GetLastError(NULL));
    }
}

/* ---- the private nats-server ---- */

/* server_proc_launch_fn: write nats.conf for port and start nats-server on it. */
static pid_t launch(uint16_t port, void *arg)
{
    (void)arg;
    char conf[320], log[320];
    server_proc_path(log, sizeof log, ns.dir, "nats.log");
    FILE *f = server_proc_open_config(ns.dir, "nats.conf", "nats.log", conf, sizeof conf);
    if (!f) {
        return 0;
    }
    fprintf(f,
            "listen: \"127.0.0.1:%u\"\nlog_file: \"%s\"\n"
            "tls {\n  cert_file: \"%s\"\n  key_file: \"%s\"\n  timeout: 5\n}\n",
            (unsigned)port, log, ns.o->cert, ns.o->key);
    fclose(f);
    return server_proc_spawn_config("nats-server", conf, ns.dir, "nats.out");
}

static bool ready(uint16_t port, void *arg)
{
    (void)port;
    (void)arg;
    char log[320];
    server_proc_path(log, sizeof log, ns.dir, "nats.log");
    return server_proc_file_has(log, "Server is ready");
}

/* "2.9.10" from the server's log, or "?". */
static void server_version(char *out, size_t len)
{
    char log[320], line[256];
    server_proc_path(log, sizeof log, ns.dir, "nats.log");
    snprintf(out, len, "?");
    FILE *f = fopen(log, "r");
    while (f && fgets(line, sizeof line, f)) {
        const char *v = strstr(line, "Version:");
        if (v) {
            v += strlen("Version:");
            v += strspn(v, " ");
            snprintf(out, len, "%.*s", (int)strcspn(v, " \n"), v);
            break;
        }
    }
    if (f) {
        fclose(f);
    }
}

void bench_nats_start(const bench_opts *o)
{
    ns.o = o;
    if (!server_proc_tempdir(ns.dir, sizeof ns.dir, "lifeline-bench-nats")) {
        bench_die("NATS: no temp directory");
    }
    if (!server_proc_start(&ns.pid, &ns.port, launch, ready, NULL, READY_MS)) {
        bench_die("NATS: nats-server did not start (files in %s; bash setup.sh bench --peers installs it)", ns.dir);
    }
    snprintf(ns.url, sizeof ns.url, "tls://127.0.0.1:%u", (unsigned)ns.port);
    char version[32];
    server_version(version, sizeof version);
    snprintf(ns.describe, sizeof ns.describe, "nats-server %s on %s (private), libnats %s, TLS (CA verified)", version,
             ns.url, nats_GetVersion());
}

void bench_nats_stop(void)
{
    server_proc_kill(&ns.pid);
    static const char *const files[] = {"nats.conf", "nats.log", "nats.out", NULL};
    server_proc_remove_dir(ns.dir, files);
}

const char *bench_nats_describe(void)
{
    return ns.describe;
}

/* ---- clients ---- */

/* A TLS connection verifying the server against the dev CA, with no reconnects (one would
 * hide a loss); asap: send as soon as published, for the round trip. */
static natsConnection *connect_nats(bool asap)
{
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    check(natsOptions_Create(&opts), "natsOptions_Create");
    check(natsOptions_SetURL(opts, ns.url), "natsOptions_SetURL");
    check(natsOptions_SetSecure(opts, true), "natsOptions_SetSecure");
    check(natsOptions_LoadCATrustedCertificates(opts, ns.o->ca), "natsOptions_LoadCATrustedCertificates");
    /* The dev certificate names localhost and 127.0.0.1; libnats checks a host name. */
    check(natsOptions_SetExpectedHostname(opts, "localhost"), "natsOptions_SetExpectedHostname");
    check(natsOptions_SetAllowReconnect(opts, false), "natsOptions_SetAllowReconnect");
    check(natsOptions_SetSendAsap(opts, asap), "natsOptions_SetSendAsap");
    check(natsConnection_Connect(&nc, opts), "natsConnection_Connect");
    natsOptions_Destroy(opts);
    return nc;
}

static void close_nats(natsConnection *nc)
{
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
}

/* bench_send_fn: one natsConnection_Publish. */
static void publish_one(void *ctx, const uint8_t *buf, size_t size, uint64_t n)
{
    (void)n;
    check(natsConnection_Publish(ctx, SINK_SUBJ, buf, (int)size), "natsConnection_Publish");
}

double bench_nats_publish(const bench_opts *o, size_t size)
{
    static char phase[64];
    snprintf(phase, sizeof phase, "NATS publish %zu B", size);
    natsConnection *nc = connect_nats(false);
    bench_phase(phase, (int)o->duration_s + 90, NULL);
    uint64_t t0;
    uint64_t n = bench_send_for(o->duration_s, size, publish_one, nc, &t0);
    check(natsConnection_FlushTimeout(nc, FLUSH_MS), "natsConnection_FlushTimeout");
    uint64_t t1 = bench_now_ns();
    bench_phase(NULL, 0, NULL);
    close_nats(nc);
    return (double)n / ((double)(t1 - t0) / 1e9);
}

/* ---- round trip ---- */

typedef struct nats_responder {
    natsConnection *nc;
    natsSubscription *sub; /* PING_SUBJ, synchronous */
    pthread_t thread;
} nats_responder;

/* The responder thread: every ping back as a pong, until the stop message. */
static void *respond(void *arg)
{
    nats_responder *r = arg;
    for (;;) {
        natsMsg *m = NULL;
        check(natsSubscription_NextMsg(&m, r->sub, REPLY_MS * 2), "natsSubscription_NextMsg (responder)");
        int len = natsMsg_GetDataLength(m);
        if (len == STOP_BYTES) {
            natsMsg_Destroy(m);
            return NULL;
        }
        check(natsConnection_Publish(r->nc, PONG_SUBJ, natsMsg_GetData(m), len), "natsConnection_Publish (responder)");
        natsMsg_Destroy(m);
    }
}

/* Subscribe synchronously and make sure the server has the subscription (a flush is a
 * PING/PONG, after the SUB). */
static natsSubscription *subscribe_sync(natsConnection *nc, const char *subject)
{
    natsSubscription *sub = NULL;
    check(natsConnection_SubscribeSync(&sub, nc, subject), "natsConnection_SubscribeSync");
    check(natsConnection_FlushTimeout(nc, FLUSH_MS), "natsConnection_FlushTimeout (subscribe)");
    return sub;
}

typedef struct nats_pinger {
    natsConnection *nc;
    natsSubscription *pongs; /* PONG_SUBJ, synchronous */
} nats_pinger;

/* bench_round_trip_fn: ping i out, its pong back. */
static double ping_once(void *ctx, uint8_t *buf, size_t size, int i)
{
    nats_pinger *p = ctx;
    uint64_t t0 = bench_now_ns();
    check(natsConnection_Publish(p->nc, PING_SUBJ, buf, (int)size), "natsConnection_Publish (ping)");
    natsMsg *m = NULL;
    check(natsSubscription_NextMsg(&m, p->pongs, REPLY_MS), "natsSubscription_NextMsg (pong)");
    double us = (double)(bench_now_ns() - t0) / 1e3;
    if ((size_t)natsMsg_GetDataLength(m) != size || bench_get_u64((const uint8_t *)natsMsg_GetData(m)) != (uint64_t)i) {
        bench_die("NATS: pong %d is not the echo of ping %d", i, i);
    }
    natsMsg_Destroy(m);
    return us;
}

bench_latency bench_nats_round_trip(const bench_opts *o, size_t size)
{
    nats_responder r = {.nc = connect_nats(true)};
    r.sub = subscribe_sync(r.nc, PING_SUBJ);
    if (pthread_create(&r.thread, NULL, respond, &r) != 0) {
        bench_die("NATS: cannot start the responder thread");
    }
    nats_pinger p = {.nc = connect_nats(true)};
    p.pongs = subscribe_sync(p.nc, PONG_SUBJ);
    bench_latency l = bench_ping_pong(o, "NATS round trip", size, ping_once, &p);
    uint8_t stop[STOP_BYTES] = {0};
    check(natsConnection_Publish(p.nc, PING_SUBJ, stop, STOP_BYTES), "natsConnection_Publish (stop)");
    pthread_join(r.thread, NULL);
    natsSubscription_Destroy(p.pongs);
    natsSubscription_Destroy(r.sub);
    close_nats(p.nc);
    close_nats(r.nc);
    return l;
}
