/*
 * telemetry_collector: the other end of telemetry_publisher. A server on lifeline/server.h
 * and lifeline/pb.h that keeps the latest telemetry.Reading of every device and answers
 * telemetry.Query with a telemetry.QueryReply (telemetry.proto).
 *
 * Delivery. Lifeline hands each reading to this program once while it runs, including
 * across a device's reconnects. When the collector itself restarts (or a device stays away
 * longer than --session-ttl-ms) the device resends what had not been acknowledged, so a
 * reading can come twice: one whose seq is not above the device's stored seq is counted as
 * a duplicate and dropped. The table lives in memory only, so a restarted collector starts
 * empty and learns each device's latest reading again from the next one it sends. (A device
 * must keep seq rising across its own restarts, or its new readings look like repeats.)
 *
 * Threads. One thread receives and answers, and alone owns the table; the main thread waits
 * for SIGINT/SIGTERM, stops the server, and prints one summary line on stdout.
 * Exit status: 0 after a clean stop, 1 if the server did not start, 64 usage error.
 */
#include <lifeline/pb.h>

#include "telemetry.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG             "telemetry_collector"
#define MAX_DEVICES      4096 /* a bound on memory: readings from more devices are dropped */
#define DEFAULT_LIMIT    100  /* readings in a reply when Query.limit is 0 */
#define MAX_LIMIT        1000 /* and at most, whatever the query asks */
#define REPLY_TIMEOUT_MS 1000

typedef struct options {
    sdk_server_config cfg;
    char cert[4096], key[4096];
} options;

/* The latest reading of each device, unpacked as received; linear search is plenty for a
 * sample (a real collector would use a hash map or a database). */
typedef struct collector {
    sdk_server *srv;
    Telemetry__Reading *latest[MAX_DEVICES];
    size_t devices;
    Telemetry__Reading *found[MAX_DEVICES]; /* answer()'s work space */
    uint64_t stored, duplicates, queries;
} collector;

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [OPTIONS]\n"
               "Keep the latest telemetry.Reading per device; answer telemetry.Query.\n"
               "  --listen HOST:PORT      address to listen on (default 127.0.0.1:7443; port 0 picks one)\n"
               "  --cert FILE --key FILE  server certificate chain and key (PEM)\n"
               "  --dev-certs DIR         create throwaway certificates in DIR if absent, and use them\n"
               "  --session-ttl-ms N      keep a disconnected device's session this long (default 60000)\n"
               "  -h, --help              show this help\n"
               "Prints 'listening on HOST:PORT' when ready; stops on SIGINT or SIGTERM.\n");
}

/* use_dev_certs: create them if needed; --cert/--key, if given, still win. */
static bool use_dev_certs(options *o, const char *dir)
{
    char err[256];
    if (sdk_dev_certs(dir, err, sizeof err) != SDK_OK) {
        fprintf(stderr, PROG ": --dev-certs %s: %s\n", dir, err);
        return false;
    }
    snprintf(o->cert, sizeof o->cert, "%s/server.pem", dir);
    snprintf(o->key, sizeof o->key, "%s/server.key", dir);
    if (!o->cfg.cert_file) {
        o->cfg.cert_file = o->cert;
        o->cfg.key_file = o->key;
    }
    return true;
}

static bool parse_ttl(const char *s, int *out)
{
    errno = 0;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end || v < 0 || v > 86400000L) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* parse_args: -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    enum { LISTEN = 256, CERT, KEY, DEV_CERTS, TTL };
    static const struct option longs[] = {{"listen", required_argument, NULL, LISTEN},
                                          {"cert", required_argument, NULL, CERT},
                                          {"key", required_argument, NULL, KEY},
                                          {"dev-certs", required_argument, NULL, DEV_CERTS},
                                          {"session-ttl-ms", required_argument, NULL, TTL},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    sdk_server_config_init(&o->cfg);
    const char *dev_certs = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (opt) {
        case LISTEN:
            o->cfg.listen = optarg;
            break;
        case CERT:
            o->cfg.cert_file = optarg;
            break;
        case KEY:
            o->cfg.key_file = optarg;
            break;
        case DEV_CERTS:
            dev_certs = optarg;
            break;
        case TTL:
            if (!parse_ttl(optarg, &o->cfg.session_ttl_ms)) {
                fprintf(stderr, PROG ": bad value '%s' for --session-ttl-ms\n", optarg);
                return 64;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 64;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 64;
    }
    if (dev_certs && !use_dev_certs(o, dev_certs)) {
        return 1;
    }
    if (!o->cfg.cert_file || !o->cfg.key_file) {
        fprintf(stderr, PROG ": give --cert and --key, or --dev-certs DIR\n");
        return 64;
    }
    return -1;
}

static Telemetry__Reading **find_device(collector *col, const char *device_id)
{
    for (size_t i = 0; i < col->devices; i++) {
        if (strcmp(col->latest[i]->device_id, device_id) == 0) {
            return &col->latest[i];
        }
    }
    return NULL;
}

/* store: keep r (taking ownership) if it is newer than what the device last sent. */
static void store(collector *col, Telemetry__Reading *r)
{
    Telemetry__Reading **slot = find_device(col, r->device_id);
    if (slot && r->seq <= (*slot)->seq) {
        col->duplicates++; /* a repeat (delivery is at least once), or out of date */
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return;
    }
    if (!slot && col->devices == MAX_DEVICES) {
        fprintf(stderr, PROG ": table full (%d devices): dropped a reading from '%s'\n", MAX_DEVICES, r->device_id);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return;
    }
    if (slot) {
        protobuf_c_message_free_unpacked(&(*slot)->base, NULL);
    } else {
        slot = &col->latest[col->devices++];
    }
    *slot = r;
    col->stored++;
}

/* Newest first; equal timestamps by device id, so that replies do not depend on arrival. */
static int newest_first(const void *a, const void *b)
{
    const Telemetry__Reading *x = *(Telemetry__Reading *const *)a;
    const Telemetry__Reading *y = *(Telemetry__Reading *const *)b;
    if (x->timestamp_ms != y->timestamp_ms) {
        return x->timestamp_ms < y->timestamp_ms ? 1 : -1;
    }
    return strcmp(x->device_id, y->device_id);
}

/* answer: reply to q on session with the matching readings. The reply points into the
 * table (packing only reads), so nothing is copied. */
static void answer(collector *col, uint64_t session, const Telemetry__Query *q)
{
    Telemetry__Reading **found = col->found;
    size_t n = 0;
    for (size_t i = 0; i < col->devices; i++) {
        Telemetry__Reading *r = col->latest[i];
        if ((q->device_id[0] == '\0' || strcmp(q->device_id, r->device_id) == 0) && r->timestamp_ms >= q->since_ms) {
            found[n++] = r;
        }
    }
    qsort(found, n, sizeof *found, newest_first);
    size_t limit = q->limit == 0 ? DEFAULT_LIMIT : q->limit > MAX_LIMIT ? MAX_LIMIT : q->limit;
    Telemetry__QueryReply reply = TELEMETRY__QUERY_REPLY__INIT;
    reply.request_id = q->request_id;
    reply.n_readings = n < limit ? n : limit;
    reply.readings = found;
    sdk_err rc = sdk_server_send_pb(col->srv, session, &reply.base, REPLY_TIMEOUT_MS);
    if (rc == SDK_OK) {
        col->queries++;
    } else { /* SDK_ENOTFOUND: the asker has gone for good */
        fprintf(stderr, PROG ": reply to query %" PRIu64 ": %s\n", q->request_id, sdk_strerror(rc));
    }
}

/* dispatch: a message that is not a Reading; raw stays the caller's. */
static void dispatch(collector *col, uint64_t session, const sdk_message *raw)
{
    const char *type = raw->type ? raw->type : "(none)";
    ProtobufCMessage *q = NULL;
    if (strcmp(type, telemetry__query__descriptor.name) == 0) {
        q = protobuf_c_message_unpack(&telemetry__query__descriptor, NULL, raw->len, raw->data);
    }
    if (!q) {
        fprintf(stderr, PROG ": ignored a message of type %s (%zu bytes)\n", type, raw->len);
        return;
    }
    answer(col, session, (const Telemetry__Query *)q);
    protobuf_c_message_free_unpacked(q, NULL);
}

/* serve: the receiving thread, until the server stops. */
static void *serve(void *arg)
{
    collector *col = arg;
    for (;;) {
        ProtobufCMessage *msg = NULL;
        sdk_message *raw = NULL;
        uint64_t session = 0;
        sdk_err rc = sdk_server_recv_pb(col->srv, &telemetry__reading__descriptor, &msg, &session, &raw, -1);
        if (rc == SDK_OK) {
            store(col, (Telemetry__Reading *)msg);
        } else if (rc == SDK_ETYPE || rc == SDK_EPROTO) {
            dispatch(col, session, raw); /* a Query, or something we do not know */
            sdk_message_free(raw);
        } else { /* SDK_ECLOSED: stopped */
            return NULL;
        }
    }
}

/* on_event: the server's I/O thread; one line per session change on stderr. */
static void on_event(const sdk_session_event *ev, void *user)
{
    (void)user;
    static const char *const names[] = {"opened", "resumed", "detached", "expired", "closed"};
    fprintf(stderr, PROG ": session %016" PRIx64 " %s (%s)%s%s\n", ev->session,
            ev->type <= SDK_SESSION_CLOSED ? names[ev->type] : "?", ev->peer_addr,
            ev->cause != SDK_CAUSE_NONE ? ": " : "", ev->cause != SDK_CAUSE_NONE ? sdk_cause_name(ev->cause) : "");
}

/* The bound address as users will type it: the --listen host with the real port. */
static void print_listening(const char *listen, uint16_t port)
{
    const char *colon = strrchr(listen, ':');
    int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);
    printf("listening on %.*s:%u\n", host_len, listen, (unsigned)port);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    static options o; /* static: the certificate paths are large */
    int status = parse_args(argc, argv, &o);
    if (status >= 0) {
        return status;
    }
    o.cfg.on_event = on_event;
    /* Block the stop signals before any thread starts, so that every thread inherits the
     * mask and only sigwait() below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    static collector col; /* static: the table is a fixed array */
    sdk_err rc = sdk_server_start(&o.cfg, &col.srv);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_server_last_start_error(detail, sizeof detail);
        fprintf(stderr, PROG ": %s: %s\n", sdk_strerror(rc), detail);
        return 1;
    }
    print_listening(o.cfg.listen, sdk_server_port(col.srv));
    pthread_t thread;
    if (pthread_create(&thread, NULL, serve, &col) != 0) {
        fprintf(stderr, PROG ": cannot start a thread\n");
        sdk_server_destroy(col.srv);
        return 1;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    sdk_server_close(col.srv); /* serve() gets SDK_ECLOSED once it has taken what there was */
    pthread_join(thread, NULL);
    printf(PROG ": devices=%zu readings_stored=%" PRIu64 " duplicates_dropped=%" PRIu64 " queries_answered=%" PRIu64
                "\n",
           col.devices, col.stored, col.duplicates, col.queries);
    for (size_t i = 0; i < col.devices; i++) {
        protobuf_c_message_free_unpacked(&col.latest[i]->base, NULL);
    }
    sdk_server_destroy(col.srv);
    return 0;
}
