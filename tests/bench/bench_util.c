/* lifeline-bench helpers: clock, statistics, /proc readers, the watchdog. */
#include "bench.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

unsigned long bench_last_sent;

double bench_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lifeline-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
}

double bench_median(double *v, int n)
{
    if (n <= 0) {
        return 0;
    }
    bench_sort(v, (size_t)n);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_percentile(const double *v, size_t n, double q)
{
    if (n == 0) {
        return 0;
    }
    /* Nearest rank: the smallest value with at least q of the samples at or below it. */
    size_t rank = (size_t)(q * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return v[rank - 1];
}

bench_latency bench_latency_of(double *v, size_t n)
{
    bench_sort(v, n);
    return (bench_latency){.p50_us = bench_percentile(v, n, 0.50),
                           .p99_us = bench_percentile(v, n, 0.99),
                           .p999_us = bench_percentile(v, n, 0.999)};
}

long bench_rss_bytes(pid_t pid)
{
    char path[64];
    if (pid == 0) {
        snprintf(path, sizeof path, "/proc/self/statm");
    } else {
        snprintf(path, sizeof path, "/proc/%ld/statm", (long)pid);
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    long size = 0, resident = 0;
    int got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

int bench_find_socket(uint16_t local_port, uint16_t peer_port)
{
    DIR *d = opendir("/proc/self/fd");
    int found = -1;
    struct dirent *de;
    while (d && found < 0 && (de = readdir(d)) != NULL) {
        int fd = atoi(de->d_name);
        struct sockaddr_in a, b;
        socklen_t la = sizeof a, lb = sizeof b;
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && fd != dirfd(d) &&
            getsockname(fd, (struct sockaddr *)&a, &la) == 0 && a.sin_family == AF_INET &&
            (local_port == 0 || ntohs(a.sin_port) == local_port) && getpeername(fd, (struct sockaddr *)&b, &lb) == 0 &&
            ntohs(b.sin_port) == peer_port) {
            found = fd;
        }
    }
    if (d) {
        closedir(d);
    }
    return found;
}

void bench_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

uint64_t bench_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

uint64_t bench_send_for(double duration_s, size_t size, bench_send_fn send, void *ctx, uint64_t *t0)
{
    uint8_t *buf = malloc(size);
    memset(buf, 'x', size);
    *t0 = bench_now_ns();
    uint64_t end = *t0 + (uint64_t)(duration_s * 1e9), n = 0;
    do {
        for (int k = 0; k < 64; k++, n++) { /* the clock once per 64 messages */
            bench_put_u64(buf, n);
            send(ctx, buf, size, n);
        }
    } while (bench_now_ns() < end);
    free(buf);
    return n;
}

bench_latency bench_ping_pong(const bench_opts *o, const char *phase, size_t size, bench_round_trip_fn once, void *ctx)
{
    int warm = o->latency_iters / 20, n = o->latency_iters;
    double *v = malloc(sizeof(double) * (size_t)n);
    uint8_t *buf = malloc(size);
    memset(buf, 'x', size);
    bench_phase(phase, 60 + n / 500, NULL);
    for (int i = 0; i < warm + n; i++) {
        bench_put_u64(buf, (uint64_t)i);
        double us = once(ctx, buf, size, i);
        if (i >= warm) {
            v[i - warm] = us;
        }
    }
    bench_phase(NULL, 0, NULL);
    bench_latency l = bench_latency_of(v, (size_t)n);
    free(v);
    free(buf);
    return l;
}

/* ---- watchdog ---- */

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *wd_name;
static uint64_t wd_deadline_ns; /* 0: no phase running */
static void (*wd_note)(void);

void bench_phase(const char *name, int limit_s, void (*note)(void))
{
    pthread_mutex_lock(&wd_mu);
    wd_name = name;
    wd_deadline_ns = name ? bench_now_ns() + (uint64_t)limit_s * 1000000000u : 0;
    wd_note = note;
    pthread_mutex_unlock(&wd_mu);
}

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        bench_sleep_ms(250);
        pthread_mutex_lock(&wd_mu);
        bool expired = wd_deadline_ns && bench_now_ns() > wd_deadline_ns;
        const char *name = wd_name;
        void (*note)(void) = wd_note;
        pthread_mutex_unlock(&wd_mu);
        if (expired) {
            fprintf(stderr,
                    "\nlifeline-bench: WATCHDOG: phase '%s' exceeded its time limit; "
                    "the SDK (or the benchmark) is stuck\n",
                    name);
            if (note) {
                note();
            }
            fflush(stderr);
            _exit(3);
        }
    }
    return NULL;
}

void bench_watchdog_start(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) != 0) {
        bench_die("cannot start the watchdog thread");
    }
    pthread_detach(t);
}
