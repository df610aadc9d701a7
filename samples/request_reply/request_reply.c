/*
 * request_reply: send a request, wait for its reply with a timeout, --count times, and
 * report the round-trip latency (p50, p99, max).
 *
 * Run it against the echo server (lifeline-server, whose default is --echo): the reply is the
 * request sent back. A request is an 8-byte big-endian request id followed by --size filler
 * bytes; a reply counts only if it carries the id being waited for. A reply that comes after
 * its request timed out is dropped when it turns up later, so one slow answer costs one
 * timeout, not every answer after it.
 *
 * Lifeline delivers each message once and in order, also across reconnects, so the only
 * thing the application adds is the deadline: sdk_recv() with the time left.
 *
 * Prints one summary line of key=value pairs on stdout (latencies in microseconds).
 * Exit status: 0 every request answered, 1 a timeout or an error, 64 usage error.
 */
#include "sample_args.h"

#include <lifeline/sdk.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG     "request_reply"
#define ID_BYTES 8

typedef struct options {
    char host[256];
    uint16_t port;
    const char *ca_file;
    uint64_t count;
    uint64_t size;
    uint64_t timeout_ms;
} options;

typedef struct results {
    uint64_t *rtt_us; /* one per answered request */
    uint64_t requests;
    uint64_t replies;
    uint64_t timeouts;
    uint64_t stale; /* late replies to requests that had timed out */
} results;

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTIONS]\n"
               "Request/reply against an echoing Lifeline server; prints latency percentiles.\n"
               "  --connect HOST:PORT   server (default 127.0.0.1:7443)\n"
               "  --ca FILE             trusted CA certificates, PEM (default: system store)\n"
               "  --count N             requests, one at a time (default 100)\n"
               "  --size BYTES          filler bytes in each request (default 64)\n"
               "  --timeout-ms N        how long to wait for each reply (default 2000)\n"
               "  -h, --help            show this help\n");
}

/* parse_args: -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    enum { CONNECT = 256, CA, COUNT, SIZE, TIMEOUT };
    static const struct option longs[] = {{"connect", required_argument, NULL, CONNECT},
                                          {"ca", required_argument, NULL, CA},
                                          {"count", required_argument, NULL, COUNT},
                                          {"size", required_argument, NULL, SIZE},
                                          {"timeout-ms", required_argument, NULL, TIMEOUT},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (options){.count = 100, .size = 64, .timeout_ms = 2000};
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
        case COUNT:
            ok = sample_parse_u64(optarg, 100000000, &o->count);
            break;
        case SIZE:
            ok = sample_parse_u64(optarg, 1u << 30, &o->size);
            break;
        case TIMEOUT:
            ok = sample_parse_u64(optarg, INT_MAX, &o->timeout_ms);
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

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void put_id(uint8_t *p, uint64_t id)
{
    for (int i = ID_BYTES - 1; i >= 0; i--) {
        p[i] = (uint8_t)id;
        id >>= 8;
    }
}

static uint64_t get_id(const uint8_t *p)
{
    uint64_t id = 0;
    for (int i = 0; i < ID_BYTES; i++) {
        id = id << 8 | p[i];
    }
    return id;
}

/* await_reply: receive until the reply to id arrives or deadline_us passes. Replies to
 * earlier requests (which timed out) are counted and dropped. */
static sdk_err await_reply(sdk_client *c, uint64_t id, uint64_t deadline_us, results *r)
{
    for (;;) {
        uint64_t now = now_us();
        if (now >= deadline_us) {
            return SDK_ETIMEDOUT;
        }
        /* Round up, so that a wait of less than a millisecond is not "do not wait". */
        int left_ms = (int)((deadline_us - now + 999) / 1000);
        sdk_message *m = NULL;
        sdk_err rc = sdk_recv(c, &m, left_ms);
        if (rc != SDK_OK) {
            return rc;
        }
        bool match = m->len >= ID_BYTES && get_id(m->data) == id;
        if (!match) {
            r->stale++;
        }
        sdk_message_free(m);
        if (match) {
            return SDK_OK;
        }
    }
}

/* run: one request at a time; stops early only if the client closes. */
static sdk_err run(sdk_client *c, const options *o, uint8_t *req, results *r)
{
    for (uint64_t id = 1; id <= o->count; id++) {
        put_id(req, id);
        r->requests++;
        uint64_t t0 = now_us();
        sdk_err rc = sdk_send(c, req, ID_BYTES + o->size, (int)o->timeout_ms);
        if (rc == SDK_OK) {
            rc = await_reply(c, id, t0 + o->timeout_ms * 1000, r);
        }
        if (rc == SDK_OK) {
            r->rtt_us[r->replies++] = now_us() - t0;
        } else if (rc == SDK_ETIMEDOUT || rc == SDK_EQUEUEFULL) {
            r->timeouts++;
        } else {
            fprintf(stderr, PROG ": request %" PRIu64 ": %s\n", id, sdk_strerror(rc));
            return rc;
        }
    }
    return SDK_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* percentile: nearest rank of the sorted v[0..n); 0 when empty. */
static uint64_t percentile(const uint64_t *v, uint64_t n, unsigned p)
{
    if (n == 0) {
        return 0;
    }
    uint64_t rank = (n * p + 99) / 100; /* ceil(p% of n), from 1 */
    return v[rank > 0 ? rank - 1 : 0];
}

static sdk_err connect_client(const options *o, sdk_client **c)
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.host = o->host;
    cfg.port = o->port;
    cfg.ca_file = o->ca_file;
    return sdk_connect(&cfg, c);
}

int main(int argc, char **argv)
{
    options o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0) {
        return status;
    }
    uint8_t *req = calloc(1, ID_BYTES + o.size);
    results r = {.rtt_us = calloc(o.count ? o.count : 1, sizeof(uint64_t))};
    if (!req || !r.rtt_us) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    sdk_client *c = NULL;
    sdk_err rc = connect_client(&o, &c);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        fprintf(stderr, PROG ": %s: %s\n", sdk_errname(rc), detail);
        free(req);
        free(r.rtt_us);
        return 1;
    }
    rc = run(c, &o, req, &r);
    qsort(r.rtt_us, r.replies, sizeof(uint64_t), cmp_u64);
    printf(PROG ": requests=%" PRIu64 " replies=%" PRIu64 " timeouts=%" PRIu64 " stale=%" PRIu64 " size=%" PRIu64
                " p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%" PRIu64 "\n",
           r.requests, r.replies, r.timeouts, r.stale, o.size, percentile(r.rtt_us, r.replies, 50),
           percentile(r.rtt_us, r.replies, 99), r.replies ? r.rtt_us[r.replies - 1] : 0);
    sdk_close(c);
    sdk_destroy(c);
    free(req);
    free(r.rtt_us);
    return rc == SDK_OK && r.replies == o.count ? 0 : 1;
}
