/* lifeline-server: the reference server, a thin program on the public server API. */
#include <lifeline/server.h>
#include <lifeline/store.h>

#include "json.h"
#include "log.h"
#include "service.h"
#ifdef LIFELINE_HAVE_HTTP
#include "http.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ECHO_SEND_TIMEOUT_MS 5000

typedef struct options {
    sdk_server_config cfg;
    const char *dev_certs;
    const char *store_url; /* NULL: sessions live and die with this process */
    bool sink;
    int log_fd;             /* --log-messages: one line per message taken; -1: none */
    long sessions_every_ms; /* 0: only on SIGUSR1 */
    const char *metrics;    /* --metrics HOST:PORT, or NULL */
    char metrics_addr[300]; /* --metrics PORT alone: on loopback */
    log_level log_min;
    bool log_json;
    char cert[4096], key[4096];
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lifeline-server [options]\n"
            "  --listen HOST:PORT       address to listen on (default 127.0.0.1:7443; IPv6 as [::]:7443; port 0 picks "
            "one)\n"
            "  --cert FILE --key FILE   server certificate chain and key (PEM)\n"
            "  --client-ca FILE         require client certificates signed by these CAs\n"
            "  --dev-certs DIR          create a throwaway CA and certificates in DIR if absent, and use them\n"
            "  --max-frame BYTES        largest frame accepted (default 16777216)\n"
            "  --session-ttl-ms N       keep a disconnected session this long for resume (default 60000)\n"
            "  --store URL              hand sessions over through a session store at stop, and resume\n"
            "                           sessions handed over by other servers: memory: or\n"
            "                           redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]\n"
            "  --store-sync MODE        handover (default): write sessions to the store when their\n"
            "                           connection drops and at stop; always: also before any ack,\n"
            "                           data or delivery leaves, so a kill -9 loses nothing (an echo\n"
            "                           and its request's ack are stored together)\n"
            "  --log-messages FILE      append 'SESSION SEQ FLAGS' (hex session, flags 0 or 1 for\n"
            "                           redelivered) to FILE for every message taken, as it is taken\n"
            "  --ticket-rotation-s N    with --store: each shared TLS ticket key encrypts for N seconds\n"
            "                           (default 43200, 12 h)\n"
            "  --ticket-keys N          with --store: ticket keys accepted at once, 2-8 (default 3)\n"
            "  --lame-duck-ms N         at stop, tell clients to go one by one over N ms (at most\n"
            "                           600000) instead of all at once, serving the rest meanwhile\n"
            "  --takeover-timeout-ms N  with --store redis://: how long a resume of a session another\n"
            "                           live server holds waits for it to let go, 0-10000 (default 500)\n"
            "  --io-threads N           I/O threads sharing the connections, 0-64 (default 1; 0: one per\n"
            "                           online CPU, at most 8; with --store always 1)\n"
            "  --echo                   send every message back to its sender (default)\n"
            "  --sink                   acknowledge and drop every message\n"
            "  --sessions-every-ms N    print the liveness view of every session as a JSON line on stderr every N ms\n"
            "  --metrics HOST:PORT      serve /metrics (Prometheus), /sessions and /healthz over HTTP there\n"
            "                           (a PORT alone listens on 127.0.0.1; port 0 picks one)\n"
            "  --log-level LEVEL        debug, info (default: a line per event), warn or error\n"
            "  --log-format text|json   one line per event on stderr, as text (default) or JSON\n"
            "  --max-connections N      refuse new connections beyond N open ones (default 20000)\n"
            "  --max-handshakes N       refuse new connections while N TLS handshakes are under way (default 1000)\n"
            "  --connect-rate N         new connections per second from one address (default 200; off: no limit)\n"
            "  --connect-burst N        ...in bursts of up to N (default 400)\n"
            "Prints 'listening on HOST:PORT' when ready (then 'metrics on HOST:PORT' with --metrics);\n"
            "SIGUSR1 prints the liveness view once; SIGHUP reloads the certificate, key and client CA;\n"
            "stops on SIGINT or SIGTERM.\n");
}

static long number(const char *flag, const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || !end || *end || v < min || v > max) {
        fprintf(stderr, "lifeline-server: %s wants a number from %ld to %ld, not '%s'\n", flag, min, max, text);
        exit(64);
    }
    return v;
}

/* The long options; parse() switches on their values. */
enum {
    LISTEN = 1,
    CERT,
    KEY,
    CLIENT_CA,
    DEV_CERTS,
    MAX_FRAME,
    TTL,
    ECHO,
    SINK,
    SESSIONS_EVERY,
    STORE,
    STORE_SYNC,
    LOG_MESSAGES,
    TICKET_ROTATION,
    TICKET_KEYS,
    LAME_DUCK,
    METRICS,
    LOG_LEVEL,
    LOG_FORMAT,
    MAX_CONNECTIONS,
    MAX_HANDSHAKES,
    CONNECT_RATE,
    CONNECT_BURST,
    TAKEOVER_TIMEOUT,
    IO_THREADS,
    HELP
};
static const struct option longs[] = {{"listen", required_argument, NULL, LISTEN},
                                      {"cert", required_argument, NULL, CERT},
                                      {"key", required_argument, NULL, KEY},
                                      {"client-ca", required_argument, NULL, CLIENT_CA},
                                      {"dev-certs", required_argument, NULL, DEV_CERTS},
                                      {"max-frame", required_argument, NULL, MAX_FRAME},
                                      {"session-ttl-ms", required_argument, NULL, TTL},
                                      {"echo", no_argument, NULL, ECHO},
                                      {"sink", no_argument, NULL, SINK},
                                      {"help", no_argument, NULL, HELP},
                                      {"sessions-every-ms", required_argument, NULL, SESSIONS_EVERY},
                                      {"store", required_argument, NULL, STORE},
                                      {"store-sync", required_argument, NULL, STORE_SYNC},
                                      {"log-messages", required_argument, NULL, LOG_MESSAGES},
                                      {"ticket-rotation-s", required_argument, NULL, TICKET_ROTATION},
                                      {"ticket-keys", required_argument, NULL, TICKET_KEYS},
                                      {"lame-duck-ms", required_argument, NULL, LAME_DUCK},
                                      {"metrics", required_argument, NULL, METRICS},
                                      {"log-level", required_argument, NULL, LOG_LEVEL},
                                      {"log-format", required_argument, NULL, LOG_FORMAT},
                                      {"max-connections", required_argument, NULL, MAX_CONNECTIONS},
                                      {"max-handshakes", required_argument, NULL, MAX_HANDSHAKES},
                                      {"connect-rate", required_argument, NULL, CONNECT_RATE},
                                      {"connect-burst", required_argument, NULL, CONNECT_BURST},
                                      {"takeover-timeout-ms", required_argument, NULL, TAKEOVER_TIMEOUT},
                                      {"io-threads", required_argument, NULL, IO_THREADS},
                                      {NULL, 0, NULL, 0}};

/* --store-sync MODE: always also means manual acks, so that an echo is acknowledged only
 * once its reply is queued (and so stored with it). */
static void set_store_sync(options *o, const char *mode)
{
    if (strcmp(mode, "handover") != 0 && strcmp(mode, "always") != 0) {
        fprintf(stderr, "lifeline-server: --store-sync wants handover or always, not '%s'\n", mode);
        exit(64);
    }
    o->cfg.store_sync = mode[0] == 'a' ? SDK_STORE_SYNC_ALWAYS : SDK_STORE_SYNC_HANDOVER;
    o->cfg.manual_ack = o->cfg.store_sync == SDK_STORE_SYNC_ALWAYS;
}

static void open_log(options *o, const char *path)
{
    o->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (o->log_fd < 0) {
        fprintf(stderr, "lifeline-server: --log-messages %s: %s\n", path, strerror(errno));
        exit(66);
    }
}

static void bad_value(const char *flag, const char *want, const char *text)
{
    fprintf(stderr, "lifeline-server: %s wants %s, not '%s'\n", flag, want, text);
    exit(64);
}

/* An admission limit: a positive number, or "off". */
static uint32_t limit(const char *flag, const char *text)
{
    return strcmp(text, "off") == 0 ? SDK_UNLIMITED : (uint32_t)number(flag, text, 1, 1L << 30);
}

/* The operator's options: --metrics, --log-level, --log-format and the admission limits. */
static void parse_ops_option(int opt, const char *arg, options *o)
{
    if (opt == MAX_CONNECTIONS) {
        o->cfg.max_connections = limit("--max-connections", arg);
    } else if (opt == MAX_HANDSHAKES) {
        o->cfg.max_handshakes = limit("--max-handshakes", arg);
    } else if (opt == CONNECT_RATE) {
        o->cfg.connect_rate_per_address = limit("--connect-rate", arg);
    } else if (opt == CONNECT_BURST) {
        o->cfg.connect_burst_per_address = limit("--connect-burst", arg);
    } else if (opt == METRICS) {
        bool port_only = *arg && strspn(arg, "0123456789") == strlen(arg);
        snprintf(o->metrics_addr, sizeof(o->metrics_addr), port_only ? "127.0.0.1:%s" : "%s", arg);
        o->metrics = o->metrics_addr;
    } else if (opt == LOG_LEVEL) {
        if (!log_parse_level(arg, &o->log_min)) {
            bad_value("--log-level", "debug, info, warn or error", arg);
        }
    } else if (strcmp(arg, "json") == 0 || strcmp(arg, "text") == 0) {
        o->log_json = strcmp(arg, "json") == 0;
    } else {
        bad_value("--log-format", "text or json", arg);
    }
}

/* The certificates: given, or made in a directory. */
static void parse_tls_option(int opt, const char *arg, options *o)
{
    if (opt == CERT) {
        o->cfg.cert_file = arg;
    } else if (opt == KEY) {
        o->cfg.key_file = arg;
    } else if (opt == CLIENT_CA) {
        o->cfg.client_ca_file = arg;
    } else {
        o->dev_certs = arg;
    }
}

/* Running in a fleet: the store and its options, the message log, the lame-duck window. */
static void parse_fleet_option(int opt, const char *arg, options *o)
{
    if (opt == STORE) {
        o->store_url = arg;
    } else if (opt == STORE_SYNC) {
        set_store_sync(o, arg);
    } else if (opt == LOG_MESSAGES) {
        open_log(o, arg);
    } else if (opt == TICKET_ROTATION) {
        o->cfg.ticket_key_rotation_ms = 1000ull * (uint64_t)number("--ticket-rotation-s", arg, 1, 30 * 86400L);
    } else if (opt == TICKET_KEYS) {
        o->cfg.ticket_keys_live = (uint32_t)number("--ticket-keys", arg, 2, 8);
    } else if (opt == LAME_DUCK) {
        o->cfg.lame_duck_ms = (uint32_t)number("--lame-duck-ms", arg, 0, 600000);
    } else if (opt == IO_THREADS) {
        o->cfg.io_threads = (uint32_t)number("--io-threads", arg, 0, SDK_IO_THREADS_MAX);
    } else { /* TAKEOVER_TIMEOUT */
        o->cfg.takeover_timeout_ms = (int)number("--takeover-timeout-ms", arg, 0, SDK_TAKEOVER_TIMEOUT_MAX_MS);
    }
}

static void parse(int argc, char **argv, options *o)
{
    sdk_server_config_init(&o->cfg);
    o->log_min = LOG_INFO;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (opt) {
        case LISTEN:
            o->cfg.listen = optarg;
            break;
        case CERT:
        case KEY:
        case CLIENT_CA:
        case DEV_CERTS:
            parse_tls_option(opt, optarg, o);
            break;
        case MAX_FRAME:
            o->cfg.max_frame = (uint32_t)number("--max-frame", optarg, 64, 1L << 30);
            break;
        case TTL:
            o->cfg.session_ttl_ms = (int)number("--session-ttl-ms", optarg, 0, 86400000L);
            break;
        case ECHO:
        case SINK:
            o->sink = opt == SINK;
            break;
        case SESSIONS_EVERY:
            o->sessions_every_ms = number("--sessions-every-ms", optarg, 1, 86400000L);
            break;
        case STORE:
        case STORE_SYNC:
        case LOG_MESSAGES:
        case TICKET_ROTATION:
        case TICKET_KEYS:
        case LAME_DUCK:
        case TAKEOVER_TIMEOUT:
        case IO_THREADS:
            parse_fleet_option(opt, optarg, o);
            break;
        case METRICS:
        case LOG_LEVEL:
        case LOG_FORMAT:
        case MAX_CONNECTIONS:
        case MAX_HANDSHAKES:
        case CONNECT_RATE:
        case CONNECT_BURST:
            parse_ops_option(opt, optarg, o);
            break;
        case HELP:
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(64);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(64);
    }
}

/* --dev-certs: create if needed, and fill in whatever --cert/--key did not give. */
static int use_dev_certs(options *o)
{
    char err[256];
    if (sdk_dev_certs(o->dev_certs, err, sizeof(err)) != SDK_OK) {
        fprintf(stderr, "lifeline-server: --dev-certs %s: %s\n", o->dev_certs, err);
        return -1;
    }
    snprintf(o->cert, sizeof(o->cert), "%s/server.pem", o->dev_certs);
    snprintf(o->key, sizeof(o->key), "%s/server.key", o->dev_certs);
    if (!o->cfg.cert_file) {
        o->cfg.cert_file = o->cert;
        o->cfg.key_file = o->key;
    }
    return 0;
}

typedef struct worker {
    sdk_server *srv;
    bool sink;
    bool manual_ack;
    int log_fd;
} worker;

/* --log-messages: one write(2) per line, so a line taken is a line written even if the
 * process is killed right after. */
static void log_message(int fd, const sdk_message *m)
{
    char line[64];
    int len = snprintf(line, sizeof(line), "%016llx %llu %u\n", (unsigned long long)m->session,
                       (unsigned long long)m->seq, (unsigned)(m->flags & SDK_MSG_REDELIVERED));
    if (write(fd, line, (size_t)len) != len) {
        perror("lifeline-server: --log-messages");
    }
}

/* One thread: echo keeps each session's order only if a single thread sends it back. */
static void *serve(void *arg)
{
    worker *w = arg;
    sdk_message *m = NULL;
    while (sdk_server_recv(w->srv, &m, -1) == SDK_OK) {
        if (w->log_fd >= 0) {
            log_message(w->log_fd, m);
        }
        if (!w->sink) {
            /* With manual acks the echo and the request's ack go to the store together. */
            sdk_err rc = sdk_server_reply(w->srv, m->session, w->manual_ack ? m->seq : 0, m->type, m->data, m->len,
                                          ECHO_SEND_TIMEOUT_MS);
            if (rc == SDK_EQUEUEFULL) {
                /* The client stopped reading its echoes: let it go rather than stall everyone. */
                sdk_server_close_session(w->srv, m->session, "echo queue full: client is not reading", false);
            }
        } else if (w->manual_ack) {
            (void)sdk_server_ack(w->srv, m->session, m->seq);
        }
        sdk_message_free(m);
    }
    return NULL;
}

/* The liveness view: one JSON object per line on stderr, every session in it. */
static void print_sessions(sdk_server *srv)
{
    sdk_session_info *info = NULL;
    size_t n = 0;
    if (sdk_server_sessions(srv, &info, &n) != SDK_OK) {
        return;
    }
    FILE *out = stderr;
    flockfile(out);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fprintf(out, "{\"ts_ms\":%lld,\"sessions\":[", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? "," : "", out);
        json_session(out, &info[i]);
    }
    fprintf(out, "]}\n");
    fflush(out);
    funlockfile(out);
    sdk_sessions_free(info);
}

/* How bad a session or server event is, for the log. */
static log_level event_level(const sdk_session_event *ev)
{
    switch (ev->type) {
    case SDK_SERVER_TLS_RELOAD_FAILED:
        return LOG_ERROR;
    case SDK_SERVER_CONNECTIONS_REFUSED:
        return LOG_WARN;
    case SDK_SESSION_DETACHED:
        return ev->cause == SDK_CAUSE_PROTOCOL_ERROR || ev->cause == SDK_CAUSE_OUTPUT_OVERFLOW ? LOG_WARN : LOG_INFO;
    default:
        return LOG_INFO;
    }
}

/* on_event: one log line per event (on the server's I/O thread: it only formats a line). */
static void log_server_event(const sdk_session_event *ev, void *user)
{
    (void)user;
    log_level level = event_level(ev);
    if (!log_enabled(level)) {
        return;
    }
    char name[40], session[20];
    snprintf(name, sizeof(name), "%s%s", ev->session ? "session_" : "", sdk_session_event_name((int)ev->type));
    snprintf(session, sizeof(session), "%016llx", (unsigned long long)ev->session);
    log_field fields[] = {{"session", ev->session ? session : NULL},
                          {"peer", ev->peer_addr && *ev->peer_addr ? ev->peer_addr : NULL},
                          {"cause", ev->cause != SDK_CAUSE_NONE ? sdk_cause_name(ev->cause) : NULL},
                          {"detail", ev->detail && *ev->detail ? ev->detail : NULL}};
    log_event(level, name, fields, sizeof(fields) / sizeof(fields[0]));
}

/* SIGHUP: the certificate, key and client CA again; the outcome is logged by its event. */
static void reload_tls(sdk_server *srv)
{
    char why[256];
    service_reloading();
    (void)sdk_server_reload_tls(srv, why, sizeof(why));
    service_reloaded(); /* a failed reload keeps serving with the old context */
}

/* Until SIGINT/SIGTERM: print the liveness view on SIGUSR1 and every sessions_every_ms;
 * reload TLS on SIGHUP. */
static void wait_for_stop(sdk_server *srv, const sigset_t *signals, long every_ms)
{
    for (;;) {
        struct timespec ts = {.tv_sec = every_ms / 1000, .tv_nsec = (every_ms % 1000) * 1000000L};
        int sig = sigtimedwait(signals, NULL, every_ms > 0 ? &ts : NULL);
        if (sig == SIGINT || sig == SIGTERM) {
            service_stopping();
            return;
        }
        if (sig == SIGHUP) {
            reload_tls(srv);
        } else if (sig == SIGUSR1 || (sig < 0 && errno == EAGAIN)) {
            print_sessions(srv);
        }
    }
}

/* A bound address as users will type it: the address given, with the real port. */
static void print_bound(const char *what, const char *address, uint16_t port)
{
    const char *colon = strrchr(address, ':');
    int host_len = colon ? (int)(colon - address) : (int)strlen(address);
    printf("%s %.*s:%u\n", what, host_len, address, (unsigned)port);
    fflush(stdout);
}

/* Open the store (--store) and start the server on it; -1 with the reason on stderr. */
static int start(const options *o, sdk_store **store, sdk_server **srv)
{
    sdk_err rc = o->store_url ? sdk_store_open(o->store_url, 0, store) : SDK_OK;
    const char *what = o->store_url ? "--store" : "start";
    if (rc == SDK_OK) {
        what = "start";
        sdk_server_config cfg = o->cfg;
        cfg.store = *store;
        cfg.on_event = log_server_event;
        rc = sdk_server_start(&cfg, srv);
    }
    char keys[320];
    if (rc == SDK_OK && *store && sdk_server_ticket_keys(*srv, keys, sizeof(keys)) != SDK_OK) {
        fprintf(stderr, "lifeline-server: TLS ticket keys: %s\n", keys); /* tickets resume here only */
    }
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof(detail));
        fprintf(stderr, "lifeline-server: %s: %s: %s\n", what, sdk_strerror(rc), detail);
        sdk_store_close(*store);
        *store = NULL;
        return -1;
    }
    return 0;
}

static atomic_bool stopping; /* /healthz answers 503 from then on */

#ifdef LIFELINE_HAVE_HTTP
/* --metrics: the HTTP endpoint, announced on stdout; NULL without the option. -1 on failure. */
static int start_http(const options *o, sdk_server *srv, sdk_store *store, http_endpoint **ep)
{
    *ep = NULL;
    if (!o->metrics) {
        return 0;
    }
    char err[256];
    http_target target = {.srv = srv, .store = store, .stopping = &stopping};
    if (http_start(o->metrics, &target, ep, err, sizeof(err)) != 0) {
        fprintf(stderr, "lifeline-server: --metrics %s: %s\n", o->metrics, err);
        return -1;
    }
    print_bound("metrics on", o->metrics, http_port(*ep));
    return 0;
}
#else
typedef struct http_endpoint http_endpoint;
static void http_stop(http_endpoint *ep)
{
    (void)ep;
}
static int start_http(const options *o, sdk_server *srv, sdk_store *store, http_endpoint **ep)
{
    (void)srv;
    (void)store;
    *ep = NULL;
    if (o->metrics) {
        fprintf(stderr, "lifeline-server: --metrics: this build has no HTTP endpoint (libmicrohttpd was not found)\n");
        return -1;
    }
    return 0;
}
#endif

int main(int argc, char **argv)
{
    options o = {.log_fd = -1};
    parse(argc, argv, &o);
    log_setup(o.log_min, o.log_json);
    if (o.dev_certs && use_dev_certs(&o) != 0) {
        return 1;
    }
    if (!o.cfg.cert_file || !o.cfg.key_file) {
        fprintf(stderr, "lifeline-server: give --cert and --key, or --dev-certs DIR\n");
        return 64;
    }
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGUSR1);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);

    sdk_server *srv = NULL;
    sdk_store *store = NULL;
    http_endpoint *http = NULL;
    if (start(&o, &store, &srv) != 0) {
        return 1;
    }
    print_bound("listening on", o.cfg.listen, sdk_server_port(srv));
    if (start_http(&o, srv, store, &http) != 0) {
        sdk_server_destroy(srv);
        sdk_store_close(store);
        return 1;
    }
    char status[96];
    snprintf(status, sizeof(status), "listening on port %u", (unsigned)sdk_server_port(srv));
    service_ready(status);
    worker w = {.srv = srv, .sink = o.sink, .manual_ack = o.cfg.manual_ack, .log_fd = o.log_fd};
    pthread_t thread;
    pthread_create(&thread, NULL, serve, &w);
    wait_for_stop(srv, &stop_signals, o.sessions_every_ms);
    atomic_store(&stopping, true);
    sdk_server_close(srv);
    pthread_join(thread, NULL);
    http_stop(http); /* before the server it reads goes */
    sdk_server_destroy(srv);
    sdk_store_close(store); /* after the server: its stop wrote the sessions there */
    return 0;
}
