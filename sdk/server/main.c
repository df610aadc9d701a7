/* lifeline-server: the reference server, a thin program on the public server API. */
#include <lifeline/server.h>
#include <lifeline/store.h>

#include <errno.h>
#include <fcntl.h>
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
            "                           redis://HOST[:PORT][/DB]\n"
            "  --store-sync MODE        handover (default): write sessions to the store when their\n"
            "                           connection drops and at stop; always: also before any ack,\n"
            "                           data or delivery leaves, so a kill -9 loses nothing (an echo\n"
            "                           and its request's ack are stored together)\n"
            "  --log-messages FILE      append 'SESSION SEQ FLAGS' (hex session, flags 0 or 1 for\n"
            "                           redelivered) to FILE for every message taken, as it is taken\n"
            "  --ticket-rotation-s N    with --store: each shared TLS ticket key encrypts for N seconds\n"
            "                           (default 43200, 12 h)\n"
            "  --ticket-keys N          with --store: ticket keys accepted at once, 2-8 (default 3)\n"
            "  --echo                   send every message back to its sender (default)\n"
            "  --sink                   acknowledge and drop every message\n"
            "  --sessions-every-ms N    print the liveness view of every session as a JSON line on stderr every N ms\n"
            "Prints 'listening on HOST:PORT' when ready; SIGUSR1 prints the liveness view once;\n"
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
    HELP,
    TICKET_ROTATION,
    TICKET_KEYS
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

static void parse(int argc, char **argv, options *o)
{
    sdk_server_config_init(&o->cfg);
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
        case CLIENT_CA:
            o->cfg.client_ca_file = optarg;
            break;
        case DEV_CERTS:
            o->dev_certs = optarg;
            break;
        case MAX_FRAME:
            o->cfg.max_frame = (uint32_t)number("--max-frame", optarg, 64, 1L << 30);
            break;
        case TTL:
            o->cfg.session_ttl_ms = (int)number("--session-ttl-ms", optarg, 0, 86400000L);
            break;
        case ECHO:
            o->sink = false;
            break;
        case SINK:
            o->sink = true;
            break;
        case SESSIONS_EVERY:
            o->sessions_every_ms = number("--sessions-every-ms", optarg, 1, 86400000L);
            break;
        case STORE:
            o->store_url = optarg;
            break;
        case STORE_SYNC:
            set_store_sync(o, optarg);
            break;
        case LOG_MESSAGES:
            open_log(o, optarg);
            break;
        case TICKET_ROTATION:
            o->cfg.ticket_key_rotation_ms = 1000ull * (uint64_t)number("--ticket-rotation-s", optarg, 1, 30 * 86400L);
            break;
        case TICKET_KEYS:
            o->cfg.ticket_keys_live = (uint32_t)number("--ticket-keys", optarg, 2, 8);
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

/* A JSON string: quotes and control characters escaped. */
static void put_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(out, "\\u%04x", ch);
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
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
        const sdk_session_info *s = &info[i];
        fprintf(out, "%s{\"id\":\"%016llx\",\"state\":\"%s\",\"peer\":", i ? "," : "", (unsigned long long)s->id,
                s->state == SDK_SESSION_STATE_CONNECTED ? "connected" : "detached");
        put_json_string(out, s->peer_addr);
        fprintf(out, ",\"identity\":");
        put_json_string(out, s->peer_identity);
        fprintf(out,
                ",\"connected_since_ms\":%llu,\"last_heard_ms\":%llu,\"rtt_smoothed_us\":%llu,"
                "\"missed_heartbeats\":%u,\"last_cause\":\"%s\",\"queued\":%llu,\"unacked\":%llu,"
                "\"received\":%llu,\"connections\":%llu}",
                (unsigned long long)s->connected_since_ms, (unsigned long long)s->last_heard_ms,
                (unsigned long long)s->rtt_smoothed_us, s->missed_heartbeats, sdk_cause_name(s->last_cause),
                (unsigned long long)s->queued, (unsigned long long)s->unacked, (unsigned long long)s->received,
                (unsigned long long)s->connections);
    }
    fprintf(out, "]}\n");
    fflush(out);
    funlockfile(out);
    sdk_sessions_free(info);
}

/* Until SIGINT/SIGTERM: print the liveness view on SIGUSR1 and every sessions_every_ms. */
static void wait_for_stop(sdk_server *srv, const sigset_t *signals, long every_ms)
{
    for (;;) {
        struct timespec ts = {.tv_sec = every_ms / 1000, .tv_nsec = (every_ms % 1000) * 1000000L};
        int sig = sigtimedwait(signals, NULL, every_ms > 0 ? &ts : NULL);
        if (sig == SIGINT || sig == SIGTERM) {
            return;
        }
        if (sig == SIGUSR1 || (sig < 0 && errno == EAGAIN)) {
            print_sessions(srv);
        }
    }
}

/* The bound address as users will type it: the --listen host with the real port. */
static void print_listening(const char *listen, uint16_t port)
{
    const char *colon = strrchr(listen, ':');
    int host_len = colon ? (int)(colon - listen) : (int)strlen(listen);
    printf("listening on %.*s:%u\n", host_len, listen, (unsigned)port);
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

int main(int argc, char **argv)
{
    options o = {.log_fd = -1};
    parse(argc, argv, &o);
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
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);

    sdk_server *srv = NULL;
    sdk_store *store = NULL;
    if (start(&o, &store, &srv) != 0) {
        return 1;
    }
    print_listening(o.cfg.listen, sdk_server_port(srv));
    worker w = {.srv = srv, .sink = o.sink, .manual_ack = o.cfg.manual_ack, .log_fd = o.log_fd};
    pthread_t thread;
    pthread_create(&thread, NULL, serve, &w);
    wait_for_stop(srv, &stop_signals, o.sessions_every_ms);
    sdk_server_close(srv);
    pthread_join(thread, NULL);
    sdk_server_destroy(srv);
    sdk_store_close(store); /* after the server: its stop wrote the sessions there */
    return 0;
}
