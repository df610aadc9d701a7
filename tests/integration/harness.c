/* Integration-test harness (see harness.h). Public headers only. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- time ---- */

uint64_t ht_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ht_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* An absolute CLOCK_MONOTONIC time timeout_ms from now, for condition variables that use it. */
static struct timespec deadline_in(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void monotonic_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* ---- certificates ---- */

static const char *const CERT_FILES[] = {"ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key"};

static ht_certs process_certs;
static pthread_once_t process_certs_once = PTHREAD_ONCE_INIT;

static void path_join(char *out, size_t len, const char *dir, const char *file)
{
    int n = snprintf(out, len, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, "harness: path too long: %s/%s\n", dir, file);
        abort();
    }
}

int ht_certs_make(ht_certs *out)
{
    const char *base = getenv("LIFELINE_TEST_TMP");
    char err[256] = "";
    memset(out, 0, sizeof(*out));
    if (!base || !*base) {
        base = "/tmp";
    }
    (void)mkdir(base, 0700); /* the build's testtmp may not exist yet; EEXIST is fine */
    int n = snprintf(out->dir, sizeof(out->dir), "%s/lifeline-itest-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof(out->dir) || !mkdtemp(out->dir)) {
        fprintf(stderr, "harness: mkdtemp under %s: %s\n", base, strerror(errno));
        return -1;
    }
    sdk_err rc = sdk_dev_certs(out->dir, err, sizeof(err));
    if (rc != SDK_OK) {
        fprintf(stderr, "harness: sdk_dev_certs %s: %s: %s\n", out->dir, sdk_errname(rc), err);
        ht_certs_remove(out);
        return -1;
    }
    path_join(out->ca, sizeof(out->ca), out->dir, "ca.pem");
    path_join(out->server_cert, sizeof(out->server_cert), out->dir, "server.pem");
    path_join(out->server_key, sizeof(out->server_key), out->dir, "server.key");
    path_join(out->client_cert, sizeof(out->client_cert), out->dir, "client.pem");
    path_join(out->client_key, sizeof(out->client_key), out->dir, "client.key");
    return 0;
}

void ht_certs_remove(const ht_certs *c)
{
    char path[320];
    if (!c->dir[0]) {
        return;
    }
    for (size_t i = 0; i < sizeof(CERT_FILES) / sizeof(CERT_FILES[0]); i++) {
        path_join(path, sizeof(path), c->dir, CERT_FILES[i]);
        (void)unlink(path);
    }
    (void)rmdir(c->dir);
}

static void remove_process_certs(void)
{
    ht_certs_remove(&process_certs);
}

static void make_process_certs(void)
{
    if (ht_certs_make(&process_certs) != 0) {
        abort(); /* nothing in an integration test can run without them */
    }
    atexit(remove_process_certs);
}

const ht_certs *ht_certs_get(void)
{
    pthread_once(&process_certs_once, make_process_certs);
    return &process_certs;
}

/* ---- in-process server ---- */

double ht_metric(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, sample, n) == 0 && line[n] == ' ') {
            return strtod(line + n + 1, NULL);
        }
    }
    return -1;
}

double ht_server_metric(sdk_server *srv, const char *sample)
{
    char *text = NULL;
    size_t len = 0;
    if (sdk_server_metrics(srv, &text, &len) != SDK_OK) {
        return -1;
    }
    double v = ht_metric(text, sample);
    sdk_metrics_free(text);
    return v;
}

void ht_server_config(sdk_server_config *cfg)
{
    const ht_certs *c = ht_certs_get();
    sdk_server_config_init(cfg);
    cfg->listen = "127.0.0.1:0";
    cfg->cert_file = c->server_cert;
    cfg->key_file = c->server_key;
    /* The whole set runs again with several I/O threads (tests/CMakeLists.txt, "_io2"). */
    const char *threads = getenv("LL_TEST_IO_THREADS");
    if (threads && *threads) {
        cfg->io_threads = (uint32_t)strtoul(threads, NULL, 10);
    }
}

/* One thread: a second one could reorder a session's echoes. */
static void *echo_main(void *arg)
{
    ht_server *hs = arg;
    sdk_message *m = NULL;
    while (sdk_server_recv(hs->srv, &m, -1) == SDK_OK) {
        /* Counted before the send: the client may read the echo before the send returns, and a
         * test that has read every echo must find them all counted. */
        atomic_fetch_add(&hs->echoed, 1);
        sdk_err rc = sdk_server_send_typed(hs->srv, m->session, m->type, m->data, m->len, HT_WAIT_MS);
        if (rc != SDK_OK) {
            atomic_fetch_sub(&hs->echoed, 1);
        }
        if (rc != SDK_OK && rc != SDK_ECLOSED) {
            atomic_fetch_add(&hs->echo_failed, 1);
            atomic_store(&hs->last_echo_err, (int)rc);
        }
        sdk_message_free(m);
    }
    return NULL;
}

sdk_err ht_server_start(ht_server *hs, const sdk_server_config *cfg, bool echo)
{
    sdk_server_config def;
    memset(hs, 0, sizeof(*hs));
    if (!cfg) {
        ht_server_config(&def);
        cfg = &def;
    }
    sdk_err rc = sdk_server_start(cfg, &hs->srv);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof(detail));
        fprintf(stderr, "harness: sdk_server_start: %s: %s\n", sdk_errname(rc), detail);
        return rc;
    }
    hs->port = sdk_server_port(hs->srv);
    if (echo) {
        if (pthread_create(&hs->thread, NULL, echo_main, hs) != 0) {
            sdk_server_destroy(hs->srv);
            hs->srv = NULL;
            return SDK_ENOMEM;
        }
        hs->echo = true;
    }
    return SDK_OK;
}

void ht_server_stop(ht_server *hs)
{
    if (!hs->srv) {
        return;
    }
    sdk_server_stop(hs->srv);
    if (hs->echo) {
        pthread_join(hs->thread, NULL);
        hs->echo = false;
    }
}

void ht_server_destroy(ht_server *hs)
{
    ht_server_stop(hs);
    sdk_server_destroy(hs->srv);
    hs->srv = NULL;
}

int ht_setup_echo_server(void **state)
{
    ht_server *hs = calloc(1, sizeof(*hs));
    if (!hs || ht_server_start(hs, NULL, true) != SDK_OK) {
        free(hs);
        return -1;
    }
    *state = hs;
    return 0;
}

int ht_teardown_server(void **state)
{
    ht_server *hs = *state;
    if (hs) {
        ht_server_destroy(hs);
        free(hs);
    }
    *state = NULL;
    return 0;
}

/* ---- clients ---- */

void ht_client_config(sdk_config *cfg, uint16_t port)
{
    sdk_config_init(cfg);
    cfg->host = "127.0.0.1";
    cfg->port = port;
    cfg->ca_file = ht_certs_get()->ca;
}

bool ht_wait_state(sdk_client *c, sdk_state st, int timeout_ms)
{
    uint64_t deadline = ht_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (sdk_get_state(c) == st) {
            return true;
        }
        if (ht_now_ms() >= deadline) {
            return false;
        }
        ht_sleep_ms(2);
    }
}

/* ---- payloads ---- */

static uint8_t pattern_byte(size_t i, uint32_t seed)
{
    uint32_t x = (uint32_t)i * 2654435761u ^ seed * 40503u;
    x ^= x >> 15;
    x *= 2246822519u;
    return (uint8_t)(x >> 24);
}

void ht_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = pattern_byte(i, seed);
    }
}

bool ht_check(const uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != pattern_byte(i, seed)) {
            return false;
        }
    }
    return true;
}

/* ---- client event recorder ---- */

void ht_events_init(ht_events *e)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    monotonic_cond_init(&e->cv);
}

void ht_events_free(ht_events *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

static void record_event(const sdk_event *ev, void *user)
{
    ht_events *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->n < HT_MAX_EVENTS) {
        ht_event *r = &e->ev[e->n++];
        r->type = ev->type;
        r->error = ev->error;
        snprintf(r->detail, sizeof(r->detail), "%s", ev->detail ? ev->detail : "(NULL)");
        r->attempt = ev->attempt;
        r->delay_ms = ev->delay_ms;
        r->resumed = ev->resumed;
        r->at_ms = ht_now_ms();
    } else {
        e->dropped++;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void ht_events_attach(ht_events *e, sdk_config *cfg)
{
    cfg->on_event = record_event;
    cfg->user = e;
}

int ht_events_wait(ht_events *e, sdk_event_type type, size_t from, int timeout_ms, ht_event *out)
{
    struct timespec dl = deadline_in(timeout_ms);
    int found = -1;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (size_t i = from; i < e->n; i++) {
            if (e->ev[i].type == type) {
                found = (int)i;
                break;
            }
        }
        if (found >= 0 || pthread_cond_timedwait(&e->cv, &e->mu, &dl) == ETIMEDOUT) {
            break;
        }
    }
    if (found >= 0 && out) {
        *out = e->ev[found];
    }
    pthread_mutex_unlock(&e->mu);
    return found;
}

size_t ht_events_count(ht_events *e, sdk_event_type type)
{
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n; i++) {
        n += e->ev[i].type == type;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- server session event recorder ---- */

void ht_sevents_init(ht_sevents *e)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    monotonic_cond_init(&e->cv);
}

void ht_sevents_free(ht_sevents *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

static void record_sevent(const sdk_session_event *ev, void *user)
{
    ht_sevents *e = user;
    pthread_mutex_lock(&e->mu);
    if (e->n < HT_MAX_EVENTS) {
        ht_sevent *r = &e->ev[e->n++];
        r->type = ev->type;
        r->session = ev->session;
        r->cause = ev->cause;
        snprintf(r->peer_addr, sizeof(r->peer_addr), "%s", ev->peer_addr ? ev->peer_addr : "(NULL)");
        snprintf(r->detail, sizeof(r->detail), "%s", ev->detail ? ev->detail : "(NULL)");
    } else {
        e->dropped++;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void ht_sevents_attach(ht_sevents *e, sdk_server_config *cfg)
{
    cfg->on_event = record_sevent;
    cfg->user = e;
}

int ht_sevents_wait(ht_sevents *e, sdk_session_event_type type, uint64_t session, size_t from, int timeout_ms,
                    ht_sevent *out)
{
    struct timespec dl = deadline_in(timeout_ms);
    int found = -1;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (size_t i = from; i < e->n; i++) {
            if (e->ev[i].type == type && (session == 0 || e->ev[i].session == session)) {
                found = (int)i;
                break;
            }
        }
        if (found >= 0 || pthread_cond_timedwait(&e->cv, &e->mu, &dl) == ETIMEDOUT) {
            break;
        }
    }
    if (found >= 0 && out) {
        *out = e->ev[found];
    }
    pthread_mutex_unlock(&e->mu);
    return found;
}

/* ---- lifeline-server subprocess ---- */

enum { SPAWN_OK = 0, SPAWN_EXITED = 1, SPAWN_ERROR = -1 };

/* Read the child's stdout until "listening on HOST:PORT\n"; the port, or 0. */
static uint16_t read_listening(int fd, uint64_t deadline_ms)
{
    char buf[1024];
    size_t used = 0;
    for (;;) {
        buf[used] = '\0';
        char *line = strstr(buf, "listening on ");
        char *nl = line ? strchr(line, '\n') : NULL;
        if (nl) {
            *nl = '\0';
            char *colon = strrchr(line, ':');
            long port = colon ? strtol(colon + 1, NULL, 10) : 0;
            return port > 0 && port <= 65535 ? (uint16_t)port : 0;
        }
        uint64_t now = ht_now_ms();
        if (now >= deadline_ms || used + 1 >= sizeof(buf)) {
            return 0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline_ms - now)) <= 0) {
            continue;
        }
        ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0) {
            return 0; /* EOF: it exited */
        }
        used += (size_t)n;
    }
}

static int spawn_once(ht_proc *p, const char *const *argv, uint64_t deadline_ms)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        perror("harness: pipe2");
        return SPAWN_ERROR;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that dies (a crash, ctest's timeout) takes its server with it; only
         * async-signal-safe calls between fork and exec. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pipefd[1], STDOUT_FILENO);
        if (getppid() == parent) {
            execv(argv[0], (char *const *)argv);
            static const char msg[] = "harness: exec of the server failed\n";
            (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
        }
        _exit(127);
    }
    int err = errno;
    close(pipefd[1]);
    if (pid < 0) {
        fprintf(stderr, "harness: fork for %s: %s\n", argv[0], strerror(err));
        close(pipefd[0]);
        return SPAWN_ERROR;
    }
    p->pid = pid;
    p->out_fd = pipefd[0];
    p->port = read_listening(pipefd[0], deadline_ms);
    if (p->port != 0) {
        return SPAWN_OK;
    }
    int status = ht_proc_stop(p, SIGKILL);
    return WIFEXITED(status) ? SPAWN_EXITED : SPAWN_ERROR;
}

int ht_proc_start(ht_proc *p, uint16_t port, const char *const *extra)
{
    const char *bin_dir = getenv("LIFELINE_BIN");
    char bin[512];
    char listen[64];
    const char *argv[32];
    size_t argc = 0;
    memset(p, 0, sizeof(*p));
    p->out_fd = -1;
    snprintf(bin, sizeof(bin), "%s/lifeline-server", bin_dir && *bin_dir ? bin_dir : "build/bin");
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
    argv[argc++] = bin;
    argv[argc++] = "--dev-certs";
    argv[argc++] = ht_certs_get()->dir;
    argv[argc++] = "--listen";
    argv[argc++] = listen;
    for (size_t i = 0; extra && extra[i] && argc < 31; i++) {
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    for (;;) {
        int rc = spawn_once(p, argv, deadline);
        if (rc == SPAWN_OK) {
            return 0;
        }
        /* It exited at once: with a fixed port, most likely the port is not free yet. */
        if (rc == SPAWN_ERROR || port == 0 || ht_now_ms() >= deadline) {
            fprintf(stderr, "harness: %s did not start listening on %s\n", bin, listen);
            return -1;
        }
        ht_sleep_ms(50);
    }
}

int ht_proc_stop(ht_proc *p, int sig)
{
    int status = -1;
    if (p->pid <= 0) {
        return -1;
    }
    (void)kill(p->pid, sig);
    uint64_t deadline = ht_now_ms() + HT_WAIT_MS;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR)) {
            break;
        }
        if (ht_now_ms() >= deadline) {
            (void)kill(p->pid, SIGKILL);
            (void)waitpid(p->pid, &status, 0);
            break;
        }
        ht_sleep_ms(5);
    }
    if (p->out_fd >= 0) {
        close(p->out_fd);
    }
    p->out_fd = -1;
    p->pid = 0;
    return status;
}

/* ---- ports ---- */

uint16_t ht_closed_port(int *holder)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *holder = -1;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return 0;
    }
    *holder = fd;
    return ntohs(a.sin_port);
}
