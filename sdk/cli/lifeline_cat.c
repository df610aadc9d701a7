/*
 * lifeline-cat: nc for Lifeline. Each line of stdin (newline stripped) becomes one message;
 * each message received becomes one line of stdout.
 *
 * Threads. main parses arguments, connects, then receives and prints. A sender thread reads
 * stdin and calls sdk_send/sdk_flush. A signal thread waits for SIGINT/SIGTERM/SIGHUP with
 * sigwait(), so no handler ever interrupts a system call in the SDK's I/O thread (which runs
 * on_event). Those three signals are blocked before any thread starts, so every thread
 * inherits the mask.
 *
 * Shutdown (finish()). main sets `stop` and writes to the wake pipe: the sender waits for
 * stdin with poll() on stdin and that pipe, so it is never stuck in read() where nobody can
 * reach it. Then sdk_close() wakes a sender blocked in sdk_send/sdk_flush with SDK_ECLOSED.
 * Only after pthread_join() does main call sdk_destroy(), as sdk.h requires. The signal
 * thread never touches the client; exit() ends it.
 *
 * Exit status: 0 done, 1 runtime error (stdin, stdout, a line the SDK refuses), 2 connection
 * failed or closed for good, 3 --timeout-ms expired, 64 usage error, 128+N signal N.
 */
#include <lifeline/sdk.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_RUNTIME = 1, EXIT_CONNECTION = 2, EXIT_TIMEOUT = 3, EXIT_USAGE = 64 };

#define PROG           "lifeline-cat"
#define DEFAULT_TARGET "127.0.0.1:7443"
#define GRACE_MS       200 /* silence after the last ack before exiting without --expect */
#define RECV_SLICE_MS  50  /* how often main re-checks deadlines and the sender's progress */
#define STDOUT_BUFFER  (1u << 20)
#define READ_CHUNK     65536

#define MAX_ENDPOINTS 64 /* sdk_config.endpoints' limit */

typedef struct options {
    const char *target;                   /* HOST:PORT[,HOST:PORT...] as given: for messages */
    char target_copy[4096];               /* the list split in place at the commas */
    const char *endpoints[MAX_ENDPOINTS]; /* its entries: sdk_config.address or .endpoints */
    size_t endpoint_count;
    bool keep_endpoint_order;
    const char *ca_file;
    const char *servername;
    const char *cert_file;
    const char *key_file;
    bool have_expect;
    uint64_t expect;
    int64_t timeout_ms; /* 0: no deadline */
    bool stats;
    bool quiet;
    bool retry_first_connect;
    int heartbeat_ms; /* -1: SDK default, for these four */
    int heartbeat_timeout_ms;
    int reconnect_min_ms;
    int reconnect_max_ms;
    uint32_t max_frame;     /* 0: SDK default */
    int connect_timeout_ms; /* 0: SDK default */
} options;

/* State main and the sender thread share; the sender writes, main reads. */
typedef struct shared {
    sdk_client *client;
    int wake_rd;      /* read end of the wake pipe; readable means stop */
    size_t max_line;  /* a pending line longer than this cannot be sent */
    atomic_bool stop; /* main is shutting down */
    atomic_uint_fast64_t lines_sent;
    atomic_bool input_done; /* stdin hit EOF and every line was queued */
    atomic_bool flushed;    /* ... and every one was acknowledged */
    atomic_int send_err;    /* first sdk_send/sdk_flush failure, SDK_OK if none */
    atomic_int read_errno;  /* stdin read failure, 0 if none */
    char send_detail[256];  /* send_err's detail, written before send_err is stored */
} shared;

typedef struct app {
    options opt;
    shared sh;
    int wake_wr;
    pthread_t sender;
    bool sender_started;
    int64_t start_ms;
    int64_t deadline_ms; /* 0: none */
    uint64_t received;
    int64_t last_rx_ms;
} app;

static int64_t g_start_ms;
static atomic_int g_signal;          /* signal number that asked us to stop, 0 if none */
static atomic_bool g_connected_once; /* after this, a signal stops us cleanly */
static bool g_verbose;               /* LIFELINE_CAT_VERBOSE=1, read once before any thread */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- arguments */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [OPTIONS]\n"
            "Send each line of stdin as one Lifeline message; print each message received\n"
            "as one line of stdout.\n"
            "\n"
            "Connection:\n"
            "  --connect HOST:PORT[,HOST:PORT...]\n"
            "                            server (default " DEFAULT_TARGET "; IPv6 as [::1]:7443),\n"
            "                            or several of one service: tried in random order,\n"
            "                            cycled while reconnecting; after the server's\n"
            "                            GOING_AWAY the next one is tried first\n"
            "  --keep-endpoint-order     try the --connect list in the order given\n"
            "  --ca FILE                 trusted CA certificates, PEM (default: system store)\n"
            "  --servername NAME         name to verify in the server certificate and send as\n"
            "                            SNI (default: HOST)\n"
            "  --cert FILE --key FILE    client certificate and key for mutual TLS\n"
            "  --retry-first-connect     keep retrying the first connection in the background\n"
            "                            instead of failing at once\n"
            "Tuning (default: the SDK's):\n"
            "  --heartbeat-ms N          ping after N ms without traffic\n"
            "  --heartbeat-timeout-ms N  declare the server dead after N ms of silence\n"
            "  --reconnect-min-ms N      first reconnect backoff ceiling\n"
            "  --reconnect-max-ms N      largest reconnect backoff ceiling\n"
            "  --max-frame BYTES         largest frame sent or accepted\n"
            "  --connect-timeout-ms N    per attempt: resolving HOST, TCP, TLS and the\n"
            "                            session greeting together (N >= 1)\n"
            "Run:\n"
            "  --expect N                exit once stdin is at EOF, every line is acknowledged\n"
            "                            and N messages have been received\n"
            "  --timeout-ms N            give up after N ms in all (exit 3); 0: never\n"
            "  --quiet                   do not print received messages\n"
            "  --stats                   at exit, print the client's counters as one JSON line\n"
            "                            on stderr\n"
            "  -h, --help                show this help\n"
            "\n"
            "Without --expect, at EOF on stdin " PROG " waits until every line is acknowledged,\n"
            "prints what still arrives until %d ms pass in silence, and exits.\n"
            "Environment: LIFELINE_CAT_VERBOSE=1 prints connection events on stderr.\n"
            "Exit status: 0 done, 1 stdin/stdout/send error, 2 connection failed or closed,\n"
            "3 timed out, 64 usage error, 128+N stopped by signal N.\n",
            GRACE_MS);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return EXIT_USAGE;
}

/* parse_u64: a decimal integer in [min, max], nothing else. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_int(const char *s, int *out)
{
    uint64_t v;
    if (!parse_u64(s, 0, INT_MAX, &v)) {
        return false;
    }
    *out = (int)v;
    return true;
}

/* parse_target: HOST:PORT in the library's one syntax (sdk_parse_address: "[v6]:port" for
 * IPv6), or a comma-separated list of them (sdk_config.endpoints); port 1 to 65535. */
static bool parse_target(const char *s, options *o)
{
    if (strlen(s) >= sizeof(o->target_copy)) {
        return false;
    }
    memcpy(o->target_copy, s, strlen(s) + 1);
    o->endpoint_count = 0;
    char *save = NULL;
    for (char *e = strtok_r(o->target_copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char host[256];
        uint16_t port = 0;
        if (o->endpoint_count == MAX_ENDPOINTS || sdk_parse_address(e, host, sizeof host, &port) != SDK_OK ||
            port == 0) {
            return false;
        }
        o->endpoints[o->endpoint_count++] = e;
    }
    /* strtok_r skips empty fields: "a:1,,b:2" or a trailing comma is a typo, not a list. */
    if (o->endpoint_count == 0 || strstr(s, ",,") || s[0] == ',' || s[strlen(s) - 1] == ',') {
        return false;
    }
    o->target = s;
    return true;
}

enum {
    OPT_CONNECT = 256,
    OPT_CA,
    OPT_SERVERNAME,
    OPT_CERT,
    OPT_KEY,
    OPT_EXPECT,
    OPT_TIMEOUT,
    OPT_STATS,
    OPT_HB,
    OPT_HB_TIMEOUT,
    OPT_RC_MIN,
    OPT_RC_MAX,
    OPT_RETRY,
    OPT_KEEP_ORDER,
    OPT_MAX_FRAME,
    OPT_CONNECT_TIMEOUT,
    OPT_QUIET
};

static const struct option long_options[] = {
    {"connect", required_argument, NULL, OPT_CONNECT},
    {"ca", required_argument, NULL, OPT_CA},
    {"servername", required_argument, NULL, OPT_SERVERNAME},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"expect", required_argument, NULL, OPT_EXPECT},
    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"stats", no_argument, NULL, OPT_STATS},
    {"heartbeat-ms", required_argument, NULL, OPT_HB},
    {"heartbeat-timeout-ms", required_argument, NULL, OPT_HB_TIMEOUT},
    {"reconnect-min-ms", required_argument, NULL, OPT_RC_MIN},
    {"reconnect-max-ms", required_argument, NULL, OPT_RC_MAX},
    {"retry-first-connect", no_argument, NULL, OPT_RETRY},
    {"keep-endpoint-order", no_argument, NULL, OPT_KEEP_ORDER},
    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* apply_number: the options that take a number. Returns false if arg is not one. */
static bool apply_number(options *o, int opt, const char *arg)
{
    uint64_t v;
    switch (opt) {
    case OPT_EXPECT:
        o->have_expect = true;
        return parse_u64(arg, 0, UINT64_MAX, &o->expect);
    case OPT_TIMEOUT:
        if (!parse_u64(arg, 0, INT_MAX, &v)) {
            return false;
        }
        o->timeout_ms = (int64_t)v;
        return true;
    case OPT_HB:
        return parse_int(arg, &o->heartbeat_ms);
    case OPT_HB_TIMEOUT:
        return parse_int(arg, &o->heartbeat_timeout_ms);
    case OPT_RC_MIN:
        return parse_int(arg, &o->reconnect_min_ms);
    case OPT_RC_MAX:
        return parse_int(arg, &o->reconnect_max_ms);
    case OPT_MAX_FRAME:
        if (!parse_u64(arg, 1, UINT32_MAX, &v)) {
            return false;
        }
        o->max_frame = (uint32_t)v;
        return true;
    case OPT_CONNECT_TIMEOUT:
        if (!parse_u64(arg, 1, INT_MAX, &v)) {
            return false;
        }
        o->connect_timeout_ms = (int)v;
        return true;
    default:
        return false;
    }
}

/* apply_option: one parsed option. Returns -1 to go on, else an exit status. */
static int apply_option(options *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_CONNECT:
        if (!parse_target(arg, o)) {
            return usage_error(
                "--connect: expected HOST:PORT or [ADDR]:PORT, or a comma-separated list of up to 64, got '%s'", arg);
        }
        return -1;
    case OPT_CA:
        o->ca_file = arg;
        return -1;
    case OPT_SERVERNAME:
        o->servername = arg;
        return -1;
    case OPT_CERT:
        o->cert_file = arg;
        return -1;
    case OPT_KEY:
        o->key_file = arg;
        return -1;
    case OPT_STATS:
        o->stats = true;
        return -1;
    case OPT_RETRY:
        o->retry_first_connect = true;
        return -1;
    case OPT_KEEP_ORDER:
        o->keep_endpoint_order = true;
        return -1;
    case OPT_QUIET:
        o->quiet = true;
        return -1;
    case 'h':
        usage(stdout);
        return 0;
    case ':':
        return usage_error("option '%s' needs an argument", arg);
    case '?':
        return usage_error("unknown option '%s'", arg);
    default:
        return apply_number(o, opt, arg) ? -1 : usage_error("bad number '%s'", arg);
    }
}

/* parse_args: fill o. Returns -1 to go on, else an exit status (help or usage error). */
static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = o->heartbeat_timeout_ms = -1;
    o->reconnect_min_ms = o->reconnect_max_ms = -1;
    (void)parse_target(DEFAULT_TARGET, o);
    int opt;
    opterr = 0; /* we word the errors ourselves, and print usage */
    while ((opt = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        bool bad = opt == '?' || opt == ':';
        int rc = apply_option(o, opt, bad ? argv[optind - 1] : optarg);
        if (rc >= 0) {
            return rc;
        }
    }
    if (optind < argc) {
        return usage_error("unexpected argument '%s'", argv[optind]);
    }
    if ((o->cert_file == NULL) != (o->key_file == NULL)) {
        return usage_error("%s", "--cert and --key go together");
    }
    if (o->reconnect_min_ms >= 0 && o->reconnect_max_ms >= 0 && o->reconnect_min_ms > o->reconnect_max_ms) {
        return usage_error("%s", "--reconnect-min-ms must not exceed --reconnect-max-ms");
    }
    return -1;
}

/* ---------------------------------------------------------------- events */

/* on_event: runs on the SDK's I/O thread; only writes one line to stderr. */
static void on_event(const sdk_event *ev, void *user)
{
    const options *o = user;
    if (ev->type == SDK_EVENT_CONNECTED) {
        atomic_store(&g_connected_once, true);
    }
    if (!g_verbose) {
        return;
    }
    double t = (double)(now_ms() - g_start_ms) / 1000.0;
    const char *sep = ev->detail[0] != '\0' ? ": " : "";
    switch (ev->type) {
    case SDK_EVENT_CONNECTING:
        fprintf(stderr, PROG ": [%.3fs] connecting to %s (attempt %u)\n", t, o->target, ev->attempt);
        break;
    case SDK_EVENT_CONNECTED:
        fprintf(stderr, PROG ": [%.3fs] connected (attempt %u, %s)\n", t, ev->attempt,
                ev->resumed ? "session resumed" : "new session");
        break;
    case SDK_EVENT_DISCONNECTED:
        fprintf(stderr, PROG ": [%.3fs] disconnected: %s%s%s\n", t, sdk_errname(ev->error), sep, ev->detail);
        break;
    case SDK_EVENT_RECONNECTING:
        fprintf(stderr, PROG ": [%.3fs] reconnecting in %u ms (attempt %u)%s%s%s%s\n", t, ev->delay_ms, ev->attempt,
                ev->error ? " after " : "", ev->error ? sdk_errname(ev->error) : "", sep, ev->detail);
        break;
    case SDK_EVENT_SESSION_LOST:
        fprintf(stderr, PROG ": [%.3fs] session lost%s%s\n", t, sep, ev->detail);
        break;
    case SDK_EVENT_CLOSED:
        fprintf(stderr, PROG ": [%.3fs] closed: %s%s%s\n", t, sdk_errname(ev->error), sep, ev->detail);
        break;
    default:
        fprintf(stderr, PROG ": [%.3fs] event %d\n", t, (int)ev->type);
        break;
    }
}

/* ---------------------------------------------------------------- sender thread */

/* wait_input: block until stdin is readable (or at EOF/error) or main asks us to stop. */
static bool wait_input(shared *sh)
{
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = sh->wake_rd, .events = POLLIN}};
    for (;;) {
        if (atomic_load(&sh->stop)) {
            return false;
        }
        int n = poll(fds, 2, -1);
        if (n < 0 && errno != EINTR) {
            atomic_store(&sh->read_errno, errno);
            return false;
        }
        if (n > 0) {
            return fds[1].revents == 0;
        }
    }
}

/* send_lines: send every complete line in buf[0..*len), keep the partial tail. */
static sdk_err send_lines(shared *sh, char *buf, size_t *len, bool at_eof)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(buf + start, '\n', *len - start);
        if (nl == NULL && !(at_eof && start < *len)) {
            break;
        }
        size_t end = nl != NULL ? (size_t)(nl - buf) : *len;
        sdk_err err = sdk_send(sh->client, buf + start, end - start, -1);
        if (err != SDK_OK) {
            (void)sdk_last_call_error(sh->send_detail, sizeof sh->send_detail); /* ETOOBIG: sizes, limit */
            return err;
        }
        atomic_fetch_add(&sh->lines_sent, 1);
        start = nl != NULL ? end + 1 : end;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
    if (*len > sh->max_line) {
        snprintf(sh->send_detail, sizeof sh->send_detail,
                 "a line of more than %zu bytes is over this client's max_frame of %zu bytes", sh->max_line,
                 sh->max_line);
        return SDK_ETOOBIG;
    }
    return SDK_OK;
}

/* read_and_send: stdin to sdk_send until EOF (SDK_OK), stop or failure. */
static sdk_err read_and_send(shared *sh)
{
    size_t cap = 2 * READ_CHUNK, len = 0;
    char *buf = malloc(cap);
    sdk_err err = buf != NULL ? SDK_OK : SDK_ENOMEM;
    while (err == SDK_OK) {
        if (cap - len < READ_CHUNK) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                err = SDK_ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        if (!wait_input(sh)) {
            /* Told to stop, or poll failed (read_errno says so). */
            err = atomic_load(&sh->read_errno) != 0 ? SDK_EIO : SDK_ECLOSED;
            break;
        }
        ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            atomic_store(&sh->read_errno, errno);
            err = SDK_EIO;
            break;
        }
        len += (size_t)n;
        err = send_lines(sh, buf, &len, n == 0);
        if (n == 0) {
            break;
        }
    }
    free(buf);
    return err;
}

static void *sender_main(void *arg)
{
    shared *sh = arg;
    sdk_err err = read_and_send(sh);
    if (err == SDK_OK) {
        atomic_store(&sh->input_done, true);
        /* -1: main bounds the wait by calling sdk_close(), which wakes us with SDK_ECLOSED. */
        err = sdk_flush(sh->client, -1);
    }
    if (err == SDK_OK) {
        atomic_store(&sh->flushed, true);
    } else {
        atomic_store(&sh->send_err, (int)err);
    }
    return NULL;
}

/* ---------------------------------------------------------------- signals */

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) {
            continue;
        }
        if (atomic_load(&g_signal) != 0 || !atomic_load(&g_connected_once)) {
            /* A second signal, or one during a blocking first connect that main cannot
             * interrupt: leave now, as the default action would. */
            _exit(128 + sig);
        }
        atomic_store(&g_signal, sig);
    }
    return NULL;
}

/* start_signal_thread: block the stop signals in every thread to come; one thread takes them. */
static void start_signal_thread(void)
{
    static sigset_t set;
    static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++) {
        struct sigaction old;
        /* Keep an inherited SIG_IGN (nohup, background jobs): Linux would queue a blocked
         * signal even if ignored, and sigwait() would then take it. */
        if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN) {
            sigaddset(&set, stop_signals[i]);
        }
    }
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout becomes EPIPE, reported, then a clean close */
    pthread_t tid;
    if (pthread_create(&tid, NULL, signal_main, &set) == 0) {
        pthread_detach(tid);
    }
}

/* ---------------------------------------------------------------- main loop */

static void print_stats(sdk_client *c)
{
    sdk_stats s;
    if (sdk_get_stats(c, &s) != SDK_OK) {
        fprintf(stderr, PROG ": stats unavailable\n");
        return;
    }
    size_t index = 0;
    char endpoint[64]; /* "IP:PORT" or "[IPv6]:PORT": nothing to escape in JSON */
    (void)sdk_current_endpoint(c, &index, endpoint, sizeof endpoint);
    fprintf(stderr,
            "{\"state\":\"%s\",\"connects\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"handshakes_full\":%" PRIu64
            ",\"handshakes_resumed\":%" PRIu64 ",\"sessions_lost\":%" PRIu64 ",\"heartbeats_sent\":%" PRIu64
            ",\"heartbeats_answered\":%" PRIu64 ",\"rtt_last_us\":%" PRIu64 ",\"rtt_smoothed_us\":%" PRIu64
            ",\"msgs_sent\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 ",\"msgs_received\":%" PRIu64
            ",\"bytes_received\":%" PRIu64 ",\"retransmits\":%" PRIu64 ",\"duplicates_dropped\":%" PRIu64
            ",\"queue_depth\":%" PRIu64 ",\"queue_bytes\":%" PRIu64 ",\"acks_sent\":%" PRIu64
            ",\"acks_received\":%" PRIu64 ",\"endpoint_index\":%zu,\"endpoint\":\"%s\"}\n",
            sdk_state_name((int)s.state), s.connects, s.reconnects, s.handshakes_full, s.handshakes_resumed,
            s.sessions_lost, s.heartbeats_sent, s.heartbeats_answered, s.rtt_last_us, s.rtt_smoothed_us, s.msgs_sent,
            s.bytes_sent, s.msgs_received, s.bytes_received, s.retransmits, s.duplicates_dropped, s.queue_depth,
            s.queue_bytes, s.acks_sent, s.acks_received, index, endpoint);
}

/* finish: stop the sender, close, report stats, destroy. Returns code. */
static int finish(app *a, int code)
{
    if (fflush(stdout) != 0 && code == 0) {
        fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
        code = EXIT_RUNTIME;
    }
    sdk_client *c = a->sh.client;
    atomic_store(&a->sh.stop, true);
    if (write(a->wake_wr, "x", 1) < 0) {
        /* Cannot happen with an empty pipe; the `stop` flag is checked too. */
    }
    if (a->opt.stats) {
        print_stats(c); /* before sdk_close, so `state` tells how the run ended */
    }
    sdk_close(c);
    if (a->sender_started) {
        pthread_join(a->sender, NULL);
    }
    sdk_destroy(c);
    return code;
}

static int report_timeout(app *a)
{
    sdk_stats s = {0};
    (void)sdk_get_stats(a->sh.client, &s);
    char expect[48] = "";
    if (a->opt.have_expect) {
        snprintf(expect, sizeof expect, " of %" PRIu64, a->opt.expect);
    }
    char input[64] = "all acknowledged";
    if (!atomic_load(&a->sh.input_done)) {
        snprintf(input, sizeof input, "stdin not at EOF");
    } else if (!atomic_load(&a->sh.flushed)) {
        snprintf(input, sizeof input, "%" PRIu64 " not yet acknowledged", s.queue_depth);
    }
    /* Not connected: say why not, from the client's last connection failure. */
    char why[320] = "";
    char detail[256] = "";
    sdk_state st = sdk_get_state(a->sh.client);
    int err = st != SDK_STATE_CONNECTED ? (int)sdk_last_error(a->sh.client, detail, sizeof detail) : SDK_OK;
    if (err != SDK_OK) {
        snprintf(why, sizeof why, " (%s: %s)", sdk_errname(err), detail);
    }
    fprintf(stderr,
            PROG ": timed out after %" PRId64 " ms: received %" PRIu64 "%s messages; sent %" PRIu64
                 " lines (%s); connection %s%s\n",
            a->opt.timeout_ms, a->received, expect, (uint64_t)atomic_load(&a->sh.lines_sent), input,
            sdk_state_name((int)st), why);
    return EXIT_TIMEOUT;
}

static int report_sender_failure(app *a, int err)
{
    int read_errno = atomic_load(&a->sh.read_errno);
    uint64_t line = (uint64_t)atomic_load(&a->sh.lines_sent) + 1;
    if (read_errno != 0) {
        fprintf(stderr, PROG ": stdin: %s\n", strerror(read_errno));
    } else if (err == SDK_ETOOBIG) {
        /* --max-frame is named only when it was given and it is the limit in question. */
        bool ours = a->opt.max_frame != 0 && strstr(a->sh.send_detail, "this client's max_frame") != NULL;
        fprintf(stderr, PROG ": line %" PRIu64 ": %s: %s%s\n", line, sdk_strerror(err), a->sh.send_detail,
                ours ? " (set by --max-frame)" : "");
    } else {
        fprintf(stderr, PROG ": send line %" PRIu64 ": %s\n", line, sdk_strerror(err));
    }
    return EXIT_RUNTIME;
}

static int report_closed(app *a)
{
    char detail[512] = "";
    int err = (int)sdk_last_error(a->sh.client, detail, sizeof detail);
    fprintf(stderr, PROG ": %s: connection closed: %s%s%s\n", a->opt.target,
            err != SDK_OK ? sdk_strerror(err) : "closed by the peer", detail[0] ? ": " : "", detail);
    return EXIT_CONNECTION;
}

/* check_done: -1 to keep going, else the exit status. */
static int check_done(app *a, int64_t now)
{
    int sig = atomic_load(&g_signal);
    if (sig != 0) {
        fprintf(stderr, PROG ": stopped by signal %d\n", sig);
        return 128 + sig;
    }
    int err = atomic_load(&a->sh.send_err);
    if (err != SDK_OK && err != SDK_ECLOSED) {
        return report_sender_failure(a, err);
    }
    if (atomic_load(&a->sh.flushed)) {
        if (a->opt.have_expect ? a->received >= a->opt.expect : now - a->last_rx_ms >= GRACE_MS) {
            return 0;
        }
    }
    if (a->deadline_ms != 0 && now >= a->deadline_ms) {
        return report_timeout(a);
    }
    return -1;
}

static int recv_slice_ms(const app *a, int64_t now)
{
    if (a->deadline_ms == 0) {
        return RECV_SLICE_MS;
    }
    int64_t left = a->deadline_ms - now;
    return left < RECV_SLICE_MS ? (int)(left > 0 ? left : 0) : RECV_SLICE_MS;
}

static bool print_message(app *a, const sdk_message *m)
{
    if (a->opt.quiet) {
        return true;
    }
    if (m->len > 0 && fwrite(m->data, 1, m->len, stdout) != m->len) {
        return false;
    }
    return putchar('\n') != EOF;
}

/* receive_loop: print messages until done; returns the exit status. */
static int receive_loop(app *a)
{
    for (;;) {
        int64_t now = now_ms();
        int rc = check_done(a, now);
        if (rc >= 0) {
            return rc;
        }
        sdk_message *m = NULL;
        sdk_err err = sdk_recv(a->sh.client, &m, 0);
        if (err == SDK_ETIMEDOUT) {
            /* Nothing more right now: show what we have, then wait a little. */
            if (fflush(stdout) != 0) {
                fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
                return EXIT_RUNTIME;
            }
            err = sdk_recv(a->sh.client, &m, recv_slice_ms(a, now));
        }
        if (err == SDK_ETIMEDOUT) {
            continue;
        }
        if (err == SDK_ECLOSED) {
            return report_closed(a);
        }
        if (err != SDK_OK) {
            fprintf(stderr, PROG ": receive: %s\n", sdk_strerror(err));
            return EXIT_RUNTIME;
        }
        bool ok = print_message(a, m);
        sdk_message_free(m);
        a->received++;
        a->last_rx_ms = now_ms();
        if (!ok) {
            fprintf(stderr, PROG ": stdout: %s\n", strerror(errno));
            return EXIT_RUNTIME;
        }
    }
}

static void build_config(const options *o, sdk_config *cfg)
{
    sdk_config_init(cfg);
    if (o->endpoint_count == 1) {
        cfg->address = o->endpoints[0];
    } else {
        cfg->endpoints = o->endpoints;
        cfg->endpoint_count = o->endpoint_count;
    }
    cfg->keep_endpoint_order = o->keep_endpoint_order;
    cfg->servername = o->servername;
    cfg->ca_file = o->ca_file;
    cfg->cert_file = o->cert_file;
    cfg->key_file = o->key_file;
    cfg->retry_on_first_connect = o->retry_first_connect;
    if (o->max_frame != 0) {
        cfg->max_frame = o->max_frame;
    }
    if (o->heartbeat_ms >= 0) {
        cfg->heartbeat_interval_ms = o->heartbeat_ms;
    }
    if (o->heartbeat_timeout_ms >= 0) {
        cfg->heartbeat_timeout_ms = o->heartbeat_timeout_ms;
    }
    if (o->reconnect_min_ms >= 0) {
        cfg->reconnect_min_ms = o->reconnect_min_ms;
    }
    if (o->reconnect_max_ms >= 0) {
        cfg->reconnect_max_ms = o->reconnect_max_ms;
    }
    if (o->connect_timeout_ms > 0) {
        cfg->connect_timeout_ms = o->connect_timeout_ms;
    }
    if (o->timeout_ms > 0 && o->timeout_ms < cfg->connect_timeout_ms) {
        cfg->connect_timeout_ms = (int)o->timeout_ms; /* a first connect must not outlast us */
    }
    cfg->on_event = on_event;
    cfg->user = (void *)o;
}

/* connect_client: sdk_connect, reporting failure. Returns -1 on success, else exit status. */
static int connect_client(app *a)
{
    sdk_config cfg;
    build_config(&a->opt, &cfg);
    a->sh.max_line = cfg.max_frame;
    sdk_err err = sdk_connect(&cfg, &a->sh.client);
    if (err == SDK_OK) {
        atomic_store(&g_connected_once, true); /* signals now stop us cleanly */
        return -1;
    }
    char detail[512] = "";
    (void)sdk_last_connect_error(detail, sizeof detail);
    fprintf(stderr, PROG ": connect %s: %s%s%s\n", a->opt.target, sdk_strerror(err), detail[0] ? ": " : "", detail);
    return EXIT_CONNECTION;
}

static int run(app *a)
{
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    a->sh.wake_rd = pipefd[0];
    a->wake_wr = pipefd[1];
    int rc = connect_client(a);
    if (rc >= 0) {
        return rc;
    }
    a->last_rx_ms = now_ms();
    if (pthread_create(&a->sender, NULL, sender_main, &a->sh) != 0) {
        fprintf(stderr, PROG ": cannot start the sender thread\n");
        return finish(a, EXIT_RUNTIME);
    }
    a->sender_started = true;
    return finish(a, receive_loop(a));
}

int main(int argc, char **argv)
{
    static app a; /* static: zeroed, and large enough to keep off the stack */
    g_start_ms = now_ms();
    const char *verbose = getenv("LIFELINE_CAT_VERBOSE");
    g_verbose = verbose != NULL && strcmp(verbose, "1") == 0;
    a.start_ms = g_start_ms;
    int rc = parse_args(argc, argv, &a.opt);
    if (rc >= 0) {
        return rc;
    }
    if (a.opt.timeout_ms > 0) {
        a.deadline_ms = a.start_ms + a.opt.timeout_ms;
    }
    static char outbuf[STDOUT_BUFFER];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    start_signal_thread();
    return run(&a);
}
