/*
 * telemetry_publisher: a device that publishes --count telemetry.Reading messages
 * (telemetry.proto), one every --interval-ms, and survives server restarts.
 *
 * Resilience is configuration, not code here:
 *  - retry_on_first_connect: start even while the server is down; readings queue meanwhile;
 *  - max_reconnect_attempts 0 with a short backoff: reconnect for as long as it takes;
 *  - the SDK resends whatever the server's application has not acknowledged, so the
 *    sdk_flush() at the end returns only once every reading has reached it. (A server that
 *    restarts loses its sessions, so a reading may arrive twice: Reading.seq lets a
 *    collector drop repeats.)
 * sdk_send_pb() blocks only while the send queue is full, never on the network.
 *
 * Messages that come back (the default lifeline-server echoes; run it with --sink for a
 * plain sink) are read and dropped, so that they never hold up the server.
 *
 * Prints one summary line of key=value pairs on stdout; connection events on stderr.
 * Exit status: 0 every reading acknowledged, 1 a send failed or the flush timed out,
 * 64 usage error.
 */
#include "sample_args.h"

#include <lifeline/pb.h>

#include "telemetry.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG   "telemetry_publisher"
#define TWO_PI 6.283185307179586

typedef struct options {
    char host[256];
    uint16_t port;
    const char *ca_file;
    const char *device;
    uint64_t count;
    uint64_t interval_ms;
    uint64_t flush_timeout_ms;
} options;

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTIONS]\n"
               "Publish telemetry.Reading messages to a Lifeline server, surviving its restarts.\n"
               "  --connect HOST:PORT     server (default 127.0.0.1:7443)\n"
               "  --ca FILE               trusted CA certificates, PEM (default: system store)\n"
               "  --device ID             device id in every reading (default device-1)\n"
               "  --count N               readings to send (default 10)\n"
               "  --interval-ms N         pause between readings (default 1000)\n"
               "  --flush-timeout-ms N    how long to wait at the end for every reading to be\n"
               "                          acknowledged (default 60000)\n"
               "  -h, --help              show this help\n");
}

static const char *option_name(const struct option *longs, int val)
{
    for (; longs->name; longs++) {
        if (longs->val == val) {
            return longs->name;
        }
    }
    return "?";
}

/* parse_args: -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    enum { CONNECT = 256, CA, DEVICE, COUNT, INTERVAL, FLUSH_TIMEOUT };
    static const struct option longs[] = {{"connect", required_argument, NULL, CONNECT},
                                          {"ca", required_argument, NULL, CA},
                                          {"device", required_argument, NULL, DEVICE},
                                          {"count", required_argument, NULL, COUNT},
                                          {"interval-ms", required_argument, NULL, INTERVAL},
                                          {"flush-timeout-ms", required_argument, NULL, FLUSH_TIMEOUT},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (options){.device = "device-1", .count = 10, .interval_ms = 1000, .flush_timeout_ms = 60000};
    (void)sample_parse_target("127.0.0.1:7443", o->host, sizeof o->host, &o->port);
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case CONNECT:
            ok = sample_parse_target(optarg, o->host, sizeof o->host, &o->port);
            break;
        case CA:
            o->ca_file = optarg;
            break;
        case DEVICE:
            o->device = optarg;
            break;
        case COUNT:
            ok = sample_parse_u64(optarg, UINT64_MAX, &o->count);
            break;
        case INTERVAL:
            ok = sample_parse_u64(optarg, 3600000, &o->interval_ms);
            break;
        case FLUSH_TIMEOUT:
            ok = sample_parse_u64(optarg, INT_MAX, &o->flush_timeout_ms);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
        if (!ok) {
            fprintf(stderr, PROG ": bad value '%s' for --%s\n", optarg, option_name(longs, opt));
            return 64;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 64;
    }
    return -1;
}

static uint64_t clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* sleep_until: an absolute monotonic schedule, so pauses do not add up to drift. */
static void sleep_until(uint64_t mono_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(mono_ms / 1000), .tv_nsec = (long)(mono_ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* on_event: the SDK's I/O thread; one line per connection change on stderr. */
static void on_event(const sdk_event *ev, void *user)
{
    (void)user;
    const char *sep = ev->detail[0] ? ": " : "";
    switch (ev->type) {
    case SDK_EVENT_CONNECTED:
        fprintf(stderr, PROG ": connected (%s)\n", ev->resumed ? "session resumed" : "new session");
        break;
    case SDK_EVENT_DISCONNECTED:
        fprintf(stderr, PROG ": disconnected: %s%s%s\n", sdk_errname(ev->error), sep, ev->detail);
        break;
    case SDK_EVENT_RECONNECTING:
        fprintf(stderr, PROG ": reconnecting in %u ms (attempt %u)\n", ev->delay_ms, ev->attempt);
        break;
    case SDK_EVENT_SESSION_LOST:
        fprintf(stderr, PROG ": server lost our session: resending what it had not acknowledged\n");
        break;
    case SDK_EVENT_CLOSED:
        if (ev->error != SDK_OK) { /* SDK_OK: our own sdk_close() */
            fprintf(stderr, PROG ": closed: %s%s%s\n", sdk_errname(ev->error), sep, ev->detail);
        }
        break;
    default:
        break;
    }
}

/* reading: a plausible day of weather, the same for a given device and seq. */
static void make_reading(Telemetry__Reading *r, const options *o, uint64_t seq)
{
    double phase = (double)seq * TWO_PI / 60.0;
    r->device_id = (char *)o->device; /* protobuf-c wants char *; packing only reads it */
    r->timestamp_ms = clock_ms(CLOCK_REALTIME);
    r->temperature_c = 21.0 + 3.0 * sin(phase) + (double)(seq % 7) * 0.05;
    r->humidity = 45.0 + 10.0 * cos(phase);
    r->seq = seq;
}

/* drain: drop whatever came back (an echoing server) without waiting. */
static uint64_t drain(sdk_client *c)
{
    uint64_t n = 0;
    sdk_message *m = NULL;
    while (sdk_recv(c, &m, 0) == SDK_OK) {
        sdk_message_free(m);
        n++;
    }
    return n;
}

/* publish: send every reading on schedule. Returns SDK_OK or the error that stopped it. */
static sdk_err publish(sdk_client *c, const options *o, uint64_t *sent, uint64_t *echoes)
{
    uint64_t start = clock_ms(CLOCK_MONOTONIC);
    for (uint64_t i = 0; i < o->count; i++) {
        if (i > 0 && o->interval_ms > 0) {
            sleep_until(start + i * o->interval_ms);
        }
        Telemetry__Reading r = TELEMETRY__READING__INIT;
        make_reading(&r, o, i + 1);
        sdk_err rc = sdk_send_pb(c, &r.base, -1); /* waits only while the queue is full */
        if (rc != SDK_OK) {
            return rc;
        }
        (*sent)++;
        *echoes += drain(c);
    }
    return SDK_OK;
}

static sdk_err connect_client(const options *o, sdk_client **c)
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.host = o->host;
    cfg.port = o->port;
    cfg.ca_file = o->ca_file;
    cfg.retry_on_first_connect = true; /* readings queue until the server is there */
    cfg.max_reconnect_attempts = 0;    /* a device never gives up */
    cfg.reconnect_min_ms = 100;
    cfg.reconnect_max_ms = 2000;      /* back within two seconds of the server */
    cfg.heartbeat_interval_ms = 1000; /* notice a vanished server within about 3 s */
    cfg.on_event = on_event;
    return sdk_connect(&cfg, c);
}

int main(int argc, char **argv)
{
    options o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0) {
        return status;
    }
    sdk_client *c = NULL;
    sdk_err rc = connect_client(&o, &c);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        fprintf(stderr, PROG ": %s: %s\n", sdk_errname(rc), detail);
        return 1;
    }
    uint64_t t0 = clock_ms(CLOCK_MONOTONIC), sent = 0, echoes = 0;
    rc = publish(c, &o, &sent, &echoes);
    if (rc == SDK_OK) {
        rc = sdk_flush(c, (int)o.flush_timeout_ms);
    }
    if (rc != SDK_OK) {
        fprintf(stderr, PROG ": %s: %s\n", sdk_errname(rc), sdk_strerror(rc));
    }
    echoes += drain(c);
    sdk_stats st;
    sdk_get_stats(c, &st);
    printf(PROG ": device=%s sent=%" PRIu64 " acknowledged=%" PRIu64 " echoes=%" PRIu64 " elapsed_ms=%" PRIu64
                " connects=%" PRIu64 " reconnects=%" PRIu64 " sessions_lost=%" PRIu64 " retransmits=%" PRIu64 "\n",
           o.device, sent, sent - (st.queue_depth < sent ? st.queue_depth : sent), echoes,
           clock_ms(CLOCK_MONOTONIC) - t0, st.connects, st.reconnects, st.sessions_lost, st.retransmits);
    sdk_close(c);
    sdk_destroy(c);
    return rc == SDK_OK ? 0 : 1;
}
