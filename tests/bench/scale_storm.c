/*
 * lifeline-scale's restart storm (--storm FILE): after the hold, SIGTERM the server; every
 * client hears GOING_AWAY (or EOF) and reconnects at once, at most --inflight at a time,
 * retrying refused connects after a jittered --retry-ms, to the new server that whoever
 * restarts it (scale.sh) starts on the same port and names in FILE. Each reconnect offers the
 * client's latest TLS ticket and names its Lifeline session. Counts and times how they all come
 * back. See README.md ("Handshake storm").
 */
#include "scale.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct {
    bool active;
    uint64_t sigterm_us, first_connect_us, last_lost_us, all_back_us, deadline_us, last_pid_read_us;
    int new_pid;
    double sigterm_wall_s, old_exit_wall_s, listening_wall_s; /* CLOCK_REALTIME, as scale.sh's date */
    long lost, back, relost, attempts_failed, tls_resumed, tls_full, sess_resumed, sess_lost, with_ticket;
    long long new_cpu_ticks;
    double gen_cpu_s;                  /* the generator's own CPU over the storm */
    char load_begin[32], load_end[32]; /* /proc/loadavg's 1-minute figure: shared cores */
    int *queue;                        /* ring of conn indices in ST_WAIT, in the order they were queued */
    int q_head, q_count;
    bool *is_back;          /* per client: READY again since the SIGTERM */
    uint32_t *reconnect_us; /* per client that came back: from its loss to its Welcome */
} sm;

/* TLS 1.3 tickets arrive after the handshake (the server asks for one once its first frames
 * are out): this keeps a copy of the latest one per connection, to offer on the next connect.
 * A copy, because OpenSSL marks the connection's own session not resumable when the
 * connection ends without a close_notify, as the restart's do. */
static int on_new_ticket(SSL *ssl, SSL_SESSION *sess)
{
    conn *c = SSL_get_app_data(ssl);
    SSL_SESSION *copy = c ? SSL_SESSION_dup(sess) : NULL;
    if (copy) {
        SSL_SESSION_free(c->ticket);
        c->ticket = copy;
    }
    return 0; /* OpenSSL keeps (and frees) its own reference */
}

void storm_setup_ctx(SSL_CTX *ctx)
{
    /* The client "cache" is only the callback: OpenSSL keeps nothing itself. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_ticket);
}

bool storm_active(void)
{
    return sm.active;
}

static void push(conn *c)
{
    sm.queue[(sm.q_head + sm.q_count) % opt.clients] = (int)(c - conns);
    sm.q_count++;
}

void storm_requeue(conn *c, bool was_ready)
{
    uint64_t now = now_us();
    int i = (int)(c - conns);
    c->st = ST_WAIT;
    if (was_ready) { /* the restart reached this client: reconnect at once */
        c->lost_us = now;
        c->retry_at_us = now;
        sm.last_lost_us = now;
        if (sm.is_back[i]) { /* back already, and lost again */
            sm.is_back[i] = false;
            sm.back--;
            sm.relost++;
        } else {
            sm.lost++;
        }
    } else {
        sm.attempts_failed++;
        uint64_t jitter = (uint64_t)opt.retry_ms * 500u + (uint64_t)(rand() % (opt.retry_ms * 1000 + 1));
        c->retry_at_us = now + jitter;
    }
    push(c);
}

void storm_on_connected(void)
{
    if (!sm.first_connect_us)
        sm.first_connect_us = now_us();
}

void storm_on_handshake(conn *c)
{
    if (SSL_session_reused(c->ssl))
        sm.tls_resumed++;
    else
        sm.tls_full++;
}

void storm_on_ready(conn *c, bool resumed)
{
    int i = (int)(c - conns);
    if (sm.is_back[i] || !c->lost_us)
        return;
    if (resumed)
        sm.sess_resumed++;
    else
        sm.sess_lost++;
    sm.reconnect_us[sm.back] = (uint32_t)(now_us() - c->lost_us);
    sm.is_back[i] = true;
    sm.back++;
    c->lost_us = 0;
}

/* This process's user + system CPU in seconds. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void read_loadavg(char *out, size_t len)
{
    snprintf(out, len, "n/a");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    char one[16];
    if (fscanf(f, "%15s", one) == 1)
        snprintf(out, len, "%s", one);
    fclose(f);
}

bool storm_begin(void)
{
    sm.queue = calloc((size_t)opt.clients, sizeof *sm.queue);
    sm.is_back = calloc((size_t)opt.clients, sizeof *sm.is_back);
    sm.reconnect_us = calloc((size_t)opt.clients, sizeof *sm.reconnect_us);
    if (!sm.queue || !sm.is_back || !sm.reconnect_us)
        die("%s", "out of memory for the storm");
    for (int i = 0; i < opt.clients; i++)
        sm.with_ticket += conns[i].ticket != NULL;
    sm.new_pid = -1;
    read_loadavg(sm.load_begin, sizeof sm.load_begin);
    sm.gen_cpu_s = -self_cpu_s();
    sm.sigterm_us = now_us();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sm.sigterm_wall_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    sm.deadline_us = sm.sigterm_us + (uint64_t)opt.storm_timeout_s * 1000000u;
    if (kill(opt.server_pid, SIGTERM) < 0) {
        fprintf(stderr, "lifeline-scale: cannot SIGTERM server pid %d: %s\n", opt.server_pid, strerror(errno));
        return false;
    }
    sm.active = true;
    fprintf(stderr, "lifeline-scale: storm: SIGTERM to server pid %d; %ld of %d clients hold a TLS ticket\n",
            opt.server_pid, sm.with_ticket, opt.clients);
    return true;
}

/* --storm FILE, once it is there (written whole, by a rename): "PID [OLD_EXIT LISTENING]",
 * the new server's pid, then when the old one exited and the new one printed its
 * "listening on" line (seconds since the epoch; optional). */
static void read_new_pid(void)
{
    FILE *f = fopen(opt.storm_pid_file, "r");
    if (!f)
        return;
    int pid = -1;
    if (fscanf(f, "%d %lf %lf", &pid, &sm.old_exit_wall_s, &sm.listening_wall_s) >= 1 && pid > 0 &&
        pid != opt.server_pid)
        sm.new_pid = pid;
    fclose(f);
}

/* The new server's CPU since it started, read when all are back. The clients may be back
 * before the restarter has named the new server (it listens before it says so): wait for
 * the name up to 5 s. */
static void measure_new_server(void)
{
    for (int i = 0; i < 500 && sm.new_pid < 0; i++) {
        read_new_pid();
        if (sm.new_pid < 0)
            usleep(10000);
    }
    sm.new_cpu_ticks = sm.new_pid > 0 ? proc_cpu_ticks(sm.new_pid) : -1;
}

bool storm_step(uint64_t now)
{
    if (sm.new_pid < 0 && now - sm.last_pid_read_us >= 10000) {
        read_new_pid();
        sm.last_pid_read_us = now;
    }
    while (sm.q_count > 0 && st.in_flight < opt.inflight) {
        conn *c = &conns[sm.queue[sm.q_head]];
        if (c->retry_at_us > now)
            break; /* jitter may leave a later one due first: it waits a moment */
        sm.q_head = (sm.q_head + 1) % opt.clients;
        sm.q_count--;
        start_conn(c);
    }
    if (sm.back == opt.clients || now > sm.deadline_us) {
        sm.all_back_us = now;
        sm.gen_cpu_s += self_cpu_s();
        read_loadavg(sm.load_end, sizeof sm.load_end);
        measure_new_server();
        if (sm.back < opt.clients)
            fprintf(stderr, "lifeline-scale: storm timed out after %d s with %ld of %d back\n", opt.storm_timeout_s,
                    sm.back, opt.clients);
        return true;
    }
    return false;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(double p)
{
    if (!sm.back)
        return 0;
    size_t i = (size_t)(p * (double)(sm.back - 1) + 0.5);
    return sm.reconnect_us[i] / 1000.0;
}

static double since_ms(uint64_t from_us)
{
    return from_us ? (double)(sm.all_back_us - from_us) / 1000.0 : 0;
}

/* The new server's CPU: total, % of one core from the first accepted connect, per handshake. */
static void report_cpu(void)
{
    double hz = (double)sysconf(_SC_CLK_TCK);
    long handshakes = sm.tls_resumed + sm.tls_full;
    if (sm.new_cpu_ticks < 0) {
        printf("storm new server CPU       n/a (no pid in %s)\n", opt.storm_pid_file);
        return;
    }
    double cpu_s = (double)sm.new_cpu_ticks / hz, window_s = since_ms(sm.first_connect_us) / 1000.0;
    printf("storm new server CPU       %.2f s (%lld ticks at %.0f Hz, pid %d, from its start until all back) = %.0f %% "
           "of one core over the %.2f s from the first accepted connect\n",
           cpu_s, sm.new_cpu_ticks, hz, sm.new_pid, window_s > 0 ? 100.0 * cpu_s / window_s : 0.0, window_s);
    printf("storm CPU per handshake    %.0f us (server CPU / %ld TLS handshakes completed)\n",
           handshakes ? 1e6 * cpu_s / (double)handshakes : 0.0, handshakes);
    printf("storm generator CPU        %.2f s from the SIGTERM until all back; load average (1 min) %s then, %s at "
           "the end\n",
           sm.gen_cpu_s, sm.load_begin, sm.load_end);
}

bool storm_report(void)
{
    qsort(sm.reconnect_us, (size_t)sm.back, sizeof *sm.reconnect_us, cmp_u32);
    printf("storm restart              SIGTERM to pid %d; %ld clients lost their connection (%ld held a TLS "
           "ticket), the last %.0f ms after the SIGTERM\n",
           opt.server_pid, sm.lost, sm.with_ticket,
           sm.last_lost_us ? (double)(sm.last_lost_us - sm.sigterm_us) / 1000.0 : 0.0);
    if (sm.listening_wall_s > 0)
        printf("storm server restart       old server exited %.0f ms after the SIGTERM, the new one said "
               "'listening on' %.0f ms after it (as scale.sh saw them, +-20 ms)\n",
               1000.0 * (sm.old_exit_wall_s - sm.sigterm_wall_s), 1000.0 * (sm.listening_wall_s - sm.sigterm_wall_s));
    printf("storm back (READY again)   %ld of %d; all back %.0f ms after the SIGTERM, %.0f ms after the first "
           "accepted connect (%.0f ms after the SIGTERM)\n",
           sm.back, opt.clients, since_ms(sm.sigterm_us), since_ms(sm.first_connect_us),
           sm.first_connect_us ? (double)(sm.first_connect_us - sm.sigterm_us) / 1000.0 : 0.0);
    printf(
        "storm per-client reconnect p50 %.0f ms, p99 %.0f ms, max %.0f ms (from its GOING_AWAY/EOF to its Welcome)\n",
        pct_ms(0.50), pct_ms(0.99), pct_ms(1.0));
    printf("storm TLS handshakes       %ld resumed (SSL_session_reused), %ld full\n", sm.tls_resumed, sm.tls_full);
    printf("storm Lifeline sessions    %ld resumed (Welcome.resumed), %ld lost (a new session)\n", sm.sess_resumed,
           sm.sess_lost);
    printf("storm failed attempts      %ld (refused or failed connects, retried after %d ms +-50 %%); lost again "
           "after coming back: %ld\n",
           sm.attempts_failed, opt.retry_ms, sm.relost);
    report_cpu();
    if (st.storm_error[0])
        printf("storm first failure        %s\n", st.storm_error);
    free(sm.queue);
    free(sm.is_back);
    free(sm.reconnect_us);
    return sm.back == opt.clients;
}
