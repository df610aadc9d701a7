/*
 * telemetry_query: ask a telemetry_collector for the latest readings (telemetry.Query) and
 * print its telemetry.QueryReply, one line per reading, newest first:
 *
 *   device=sensor-1 seq=50 temperature_c=21.25 humidity=55.0 timestamp_ms=1795611850774
 *
 * One request, one reply: the reply is matched by request_id, and anything else that
 * arrives is dropped. --timeout-ms bounds the whole run (connect, send, wait).
 * Exit status: 0 a reply came (even with no readings), 1 timeout, error or an error in
 * the reply, 64 usage error.
 */
#include "sample_args.h"

#include <lifeline/pb.h>

#include "telemetry.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "telemetry_query"

typedef struct options {
    char host[256];
    uint16_t port;
    const char *ca_file;
    const char *device;
    uint64_t since_ms;
    uint64_t limit;
    uint64_t timeout_ms;
} options;

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTIONS]\n"
               "Ask a telemetry_collector for the latest readings and print them.\n"
               "  --connect HOST:PORT   collector (default 127.0.0.1:7443)\n"
               "  --ca FILE             trusted CA certificates, PEM (default: system store)\n"
               "  --device ID           only this device (default: every device)\n"
               "  --since-ms T          only readings with timestamp_ms >= T (default 0)\n"
               "  --limit N             at most N readings (default 0: the collector's default)\n"
               "  --timeout-ms N        give up after this long (default 5000)\n"
               "  -h, --help            show this help\n");
}

/* parse_args: -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    enum { CONNECT = 256, CA, DEVICE, SINCE, LIMIT, TIMEOUT };
    static const struct option longs[] = {{"connect", required_argument, NULL, CONNECT},
                                          {"ca", required_argument, NULL, CA},
                                          {"device", required_argument, NULL, DEVICE},
                                          {"since-ms", required_argument, NULL, SINCE},
                                          {"limit", required_argument, NULL, LIMIT},
                                          {"timeout-ms", required_argument, NULL, TIMEOUT},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (options){.device = "", .timeout_ms = 5000};
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
        case SINCE:
            ok = sample_parse_u64(optarg, UINT64_MAX, &o->since_ms);
            break;
        case LIMIT:
            ok = sample_parse_u64(optarg, UINT32_MAX, &o->limit);
            break;
        case TIMEOUT:
            ok = sample_parse_u64(optarg, INT_MAX, &o->timeout_ms) && o->timeout_ms > 0;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
        if (!ok) {
            fprintf(stderr, PROG ": bad value '%s'\n", optarg);
            return 64;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 64;
    }
    return -1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* left_ms: milliseconds to the deadline; 0 once it has passed. */
static int left_ms(uint64_t deadline)
{
    uint64_t now = now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

/* await_reply: the QueryReply to request_id, or the error that ended the wait. */
static sdk_err await_reply(sdk_client *c, uint64_t request_id, uint64_t deadline, Telemetry__QueryReply **out)
{
    for (;;) {
        int wait = left_ms(deadline);
        if (wait == 0) {
            return SDK_ETIMEDOUT;
        }
        ProtobufCMessage *msg = NULL;
        sdk_message *raw = NULL;
        sdk_err rc = sdk_recv_pb(c, &telemetry__query_reply__descriptor, &msg, &raw, wait);
        if (rc == SDK_ETYPE || rc == SDK_EPROTO) {
            sdk_message_free(raw); /* not a QueryReply: not ours */
            continue;
        }
        if (rc != SDK_OK) {
            return rc;
        }
        Telemetry__QueryReply *reply = (Telemetry__QueryReply *)msg;
        if (reply->request_id == request_id) {
            *out = reply;
            return SDK_OK;
        }
        protobuf_c_message_free_unpacked(msg, NULL);
    }
}

static void print_reply(const Telemetry__QueryReply *reply)
{
    for (size_t i = 0; i < reply->n_readings; i++) {
        const Telemetry__Reading *r = reply->readings[i];
        printf("device=%s seq=%" PRIu64 " temperature_c=%.2f humidity=%.1f timestamp_ms=%" PRIu64 "\n", r->device_id,
               r->seq, r->temperature_c, r->humidity, r->timestamp_ms);
    }
    fprintf(stderr, PROG ": %zu reading%s\n", reply->n_readings, reply->n_readings == 1 ? "" : "s");
}

/* query: send one Query and print its reply. */
static sdk_err query(sdk_client *c, const options *o, uint64_t deadline)
{
    Telemetry__Query q = TELEMETRY__QUERY__INIT;
    q.request_id = (uint64_t)time(NULL); /* any id: it only has to come back */
    q.device_id = (char *)o->device;     /* protobuf-c wants char *; packing only reads it */
    q.since_ms = o->since_ms;
    q.limit = (uint32_t)o->limit;
    sdk_err rc = sdk_send_pb(c, &q.base, left_ms(deadline));
    Telemetry__QueryReply *reply = NULL;
    if (rc == SDK_OK) {
        rc = await_reply(c, q.request_id, deadline, &reply);
    }
    if (rc != SDK_OK) {
        fprintf(stderr, PROG ": %s\n", rc == SDK_ETIMEDOUT ? "no reply in time" : sdk_strerror(rc));
        return rc;
    }
    print_reply(reply);
    if (reply->error[0]) {
        fprintf(stderr, PROG ": the collector says: %s\n", reply->error);
        rc = SDK_EPROTO;
    }
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    return rc;
}

int main(int argc, char **argv)
{
    options o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0) {
        return status;
    }
    uint64_t deadline = now_ms() + o.timeout_ms;
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.host = o.host;
    cfg.port = o.port;
    cfg.ca_file = o.ca_file;
    cfg.connect_timeout_ms = (int)o.timeout_ms;
    sdk_client *c = NULL;
    sdk_err rc = sdk_connect(&cfg, &c); /* fails fast: no collector, no answer */
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        fprintf(stderr, PROG ": %s: %s\n", sdk_errname(rc), detail);
        return 1;
    }
    rc = query(c, &o, deadline);
    sdk_close(c);
    sdk_destroy(c);
    return rc == SDK_OK ? 0 : 1;
}
