/*
 * lifeline-bench --peers: NATS core and MQTT QoS 1 in the same run as Lifeline and raw TLS.
 * Each run measures every figure once per system, in turn (Lifeline, raw TLS, NATS, MQTT),
 * so background load hits all four alike; a figure is the median of its runs. All four
 * use TLS over loopback with the same certificates. Their guarantees differ, and the table
 * says which each row has: the figures are not of the same service.
 */
#include "bench.h"

#include <stdio.h>

enum { SYS_LIFELINE, SYS_RAW, SYS_NATS, SYS_MQTT, N_SYS };

/* Per system: its column heading, its guarantee in a few words, and the footnote. */
static const struct {
    const char *name, *short_guarantee, *note;
} SYSTEMS[N_SYS] = {
    {"lifeline", "exactly once",
     "exactly once and in order, across reconnects: the server acknowledges every "
     "message, unacknowledged ones are replayed on resume.\n              publish: sdk_send "
     "in a loop, then sdk_flush (the server application has taken every message)."},
    {"raw TLS", "none",
     "none: bytes on one TLS connection, whatever is in flight when it breaks is lost; "
     "no acknowledgements.\n              publish: framed SSL_write in a loop, then one byte back "
     "(the server has read everything)."},
    {"NATS core", "at most once",
     "at most once: no acknowledgements, a message in flight at a disconnect is lost; "
     "no subscriber (the server drops each).\n              publish: "
     "natsConnection_Publish in a loop, then FlushTimeout (PING/PONG: the server has "
     "read everything)."},
    {"MQTT QoS 1", "at least once",
     "at least once: a PUBACK from the broker for every message (unacknowledged ones are sent again, so "
     "duplicates are\n              possible); no subscriber, broker persistence off. publish: QoS 1 publishes "
     "(window 16384 messages / 16 MiB) until every PUBACK is in."},
};

enum { F_PUB64, F_PUB4K, F_RT64_P50, F_RT64_P99, F_RT64_P999, F_RT4K_P50, F_RT4K_P99, F_RT4K_P999, N_FIG };
static const struct {
    const char *name;
    double scale;
} FIGURES[N_FIG] = {
    {"publish 64 B (k msg/s)", 1e-3}, {"publish 4 KiB (k msg/s)", 1e-3},  {"round trip 64 B p50 (us)", 1},
    {"round trip 64 B p99 (us)", 1},  {"round trip 64 B p99.9 (us)", 1},  {"round trip 4 KiB p50 (us)", 1},
    {"round trip 4 KiB p99 (us)", 1}, {"round trip 4 KiB p99.9 (us)", 1},
};

static double samples[N_FIG][N_SYS][BENCH_MAX_RUNS];
static int runs_done;

void bench_peers_start(const bench_opts *o)
{
    bench_nats_start(o);
    bench_mqtt_start(o);
}

/* One publish figure for every system, in turn. */
static void publish_run(const bench_opts *o, int fig, size_t size)
{
    samples[fig][SYS_LIFELINE][runs_done] = bench_sdk_throughput(o, false, size);
    samples[fig][SYS_RAW][runs_done] = bench_raw_throughput(false, size, o->duration_s);
    samples[fig][SYS_NATS][runs_done] = bench_nats_publish(o, size);
    samples[fig][SYS_MQTT][runs_done] = bench_mqtt_publish(o, size);
}

static void put_latency(int fig, int sys, bench_latency l)
{
    samples[fig][sys][runs_done] = l.p50_us;
    samples[fig + 1][sys][runs_done] = l.p99_us;
    samples[fig + 2][sys][runs_done] = l.p999_us;
}

/* The three percentiles starting at figure fig, for every system, in turn. */
static void round_trip_run(const bench_opts *o, int fig, size_t size)
{
    put_latency(fig, SYS_LIFELINE, bench_sdk_latency_size(o, false, size));
    put_latency(fig, SYS_RAW, bench_raw_latency_size(o->latency_iters, size));
    put_latency(fig, SYS_NATS, bench_nats_round_trip(o, size));
    put_latency(fig, SYS_MQTT, bench_mqtt_round_trip(o, size));
}

void bench_peers_run(const bench_opts *o)
{
    if (runs_done >= BENCH_MAX_RUNS) {
        return;
    }
    fprintf(stderr, "  peers: publish...\n");
    publish_run(o, F_PUB64, 64);
    publish_run(o, F_PUB4K, 4096);
    fprintf(stderr, "  peers: round trips...\n");
    round_trip_run(o, F_RT64_P50, 64);
    round_trip_run(o, F_RT4K_P50, 4096);
    runs_done++;
}

static void print_rows(void)
{
    printf("%-28s", "peer figure");
    for (int s = 0; s < N_SYS; s++) {
        printf(" | %18s", SYSTEMS[s].name);
    }
    printf("\n%-28s", "guarantee (notes below)");
    for (int s = 0; s < N_SYS; s++) {
        printf(" | %18s", SYSTEMS[s].short_guarantee);
    }
    printf("\n----------------------------");
    for (int s = 0; s < N_SYS; s++) {
        printf("-+-------------------");
    }
    printf("\n");
    for (int f = 0; f < N_FIG; f++) {
        double med[N_SYS];
        for (int s = 0; s < N_SYS; s++) {
            med[s] = bench_median(samples[f][s], runs_done) * FIGURES[f].scale;
        }
        printf("%-28s", FIGURES[f].name);
        for (int s = 0; s < N_SYS; s++) {
            printf(" | %10.1f (%5.2f)", med[s], med[SYS_RAW] > 0 ? med[s] / med[SYS_RAW] : 0);
        }
        printf("\n");
    }
}

void bench_peers_finish(const bench_opts *o)
{
    (void)o;
    printf("\npeers: value (ratio to raw TLS), median of %d interleaved run%s; all over TLS on 127.0.0.1\n", runs_done,
           runs_done == 1 ? "" : "s");
    print_rows();
    printf("\nguarantees:\n");
    for (int s = 0; s < N_SYS; s++) {
        printf("  %-11s %s\n", SYSTEMS[s].name, SYSTEMS[s].note);
    }
    printf("round trips: lifeline sdk_send + sdk_recv against an echo thread in sdk_server_recv; raw TLS one frame "
           "out and back;\n              NATS publish + NextMsg, a responder thread publishes it back (SendAsap); "
           "MQTT QoS 1 both ways, the responder\n              publishes from its message callback. Lifeline's "
           "server is in this process; nats-server and mosquitto are separate processes.\n");
    printf("NATS: %s\nMQTT: %s\n", bench_nats_describe(), bench_mqtt_describe());
    bench_nats_stop();
    bench_mqtt_stop();
}
