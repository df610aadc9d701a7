/*
 * lifeline-faultproxy: the fault-injection proxy as a program, for shell-level checks
 * such as
 *
 *   lifeline-faultproxy --listen 127.0.0.1:0 --target 127.0.0.1:8443 \
 *       --reset-every-ms 100-500 --duration-ms 20000 &
 *   seq 1 1000000 | lifeline-cat --connect 127.0.0.1:<port> ...
 *
 * It prints "listening on HOST:PORT" (flushed) once clients may connect, runs until
 * SIGINT, SIGTERM or --duration-ms, and prints one line of counters to stderr.
 */
#include "faultproxy.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS 1000000LL
#define NEVER     INT64_MAX

typedef struct range {
    int lo, hi;
} range;

typedef struct options {
    char listen_host[256];
    uint16_t listen_port;
    char target_host[256];
    uint16_t target_port;
    range reset_every;     /* {0, 0}: off */
    range blackhole_every; /* {0, 0}: off */
    int blackhole_for_ms;
    int delay_ms;
    int64_t duration_ms; /* 0: until a signal */
} options;

static void usage(FILE *f)
{
    fprintf(f, "usage: lifeline-faultproxy --listen HOST:PORT --target HOST:PORT\n"
               "         [--reset-every-ms MIN-MAX] [--delay-ms N]\n"
               "         [--blackhole-every-ms MIN-MAX --blackhole-for-ms N]\n"
               "         [--duration-ms N]\n"
               "HOST must be 127.x.x.x, ::1 (as [::1]) or localhost; PORT 0 picks a free port.\n"
               "Prints \"listening on HOST:PORT\" when ready; stops on SIGINT, SIGTERM or\n"
               "after --duration-ms; prints counters to stderr at exit.\n");
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_int(const char *s, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < 0 || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* "MIN-MAX" or a single "N" meaning N-N. */
static int parse_range(const char *s, range *out)
{
    char buf[64];
    if (strlen(s) >= sizeof buf) {
        return -1;
    }
    strcpy(buf, s);
    char *dash = strchr(buf, '-');
    const char *hi_s = buf;
    if (dash != NULL) {
        *dash = '\0';
        hi_s = dash + 1;
    }
    int64_t lo, hi;
    if (parse_int(buf, 86400000, &lo) < 0 || parse_int(hi_s, 86400000, &hi) < 0 || hi < lo || hi == 0) {
        return -1;
    }
    *out = (range){(int)lo, (int)hi};
    return 0;
}

static int parse_option(int opt, const char *arg, options *o)
{
    int64_t v;
    switch (opt) {
    case 'l':
        return fp_parse_hostport(arg, o->listen_host, sizeof o->listen_host, &o->listen_port);
    case 't':
        return fp_parse_hostport(arg, o->target_host, sizeof o->target_host, &o->target_port);
    case 'r':
        return parse_range(arg, &o->reset_every);
    case 'b':
        return parse_range(arg, &o->blackhole_every);
    case 'f':
        if (parse_int(arg, 86400000, &v) < 0 || v == 0) {
            return -1;
        }
        o->blackhole_for_ms = (int)v;
        return 0;
    case 'd':
        if (parse_int(arg, 86400000, &v) < 0) {
            return -1;
        }
        o->delay_ms = (int)v;
        return 0;
    case 'u':
        if (parse_int(arg, INT64_MAX / NS_PER_MS, &v) < 0 || v == 0) {
            return -1;
        }
        o->duration_ms = v;
        return 0;
    default:
        return -1;
    }
}

/* Returns 0, 1 after --help, or -1 on a usage error (already reported). */
static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"target", required_argument, NULL, 't'},
        {"reset-every-ms", required_argument, NULL, 'r'},
        {"blackhole-every-ms", required_argument, NULL, 'b'},
        {"blackhole-for-ms", required_argument, NULL, 'f'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"duration-ms", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    int idx = 0;
    while ((opt = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if (opt == '?') {
            goto bad; /* getopt_long already said what was wrong */
        }
        if (parse_option(opt, optarg, o) < 0) {
            fprintf(stderr, "lifeline-faultproxy: bad value \"%s\" for --%s\n", optarg, longopts[idx].name);
            goto bad;
        }
    }
    if (optind != argc || o->listen_host[0] == '\0' || o->target_host[0] == '\0') {
        fprintf(stderr, "lifeline-faultproxy: --listen and --target are required\n");
        goto bad;
    }
    if ((o->blackhole_every.hi == 0) != (o->blackhole_for_ms == 0)) {
        fprintf(stderr, "lifeline-faultproxy: --blackhole-every-ms needs --blackhole-for-ms\n");
        goto bad;
    }
    return 0;
bad:
    usage(stderr);
    return -1;
}

static int64_t pick_ms(const range *r, unsigned *seed)
{
    return r->lo + (int64_t)(rand_r(seed) % (r->hi - r->lo + 1));
}

/*
 * Sleep in sigtimedwait() until the next deadline or a signal. Returns false once a
 * stop signal arrived.
 */
static bool wait_until(const sigset_t *stop_sigs, int64_t deadline_ns)
{
    int64_t left = deadline_ns - now_ns();
    if (left <= 0) {
        return true;
    }
    struct timespec ts = {.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
    int sig = sigtimedwait(stop_sigs, NULL, &ts);
    return sig < 0; /* EAGAIN (timeout) or EINTR: keep going */
}

/* Toggle the blackhole on its schedule until the duration ends or a signal comes. */
static void run(fp_proxy *p, const options *o, const sigset_t *stop_sigs)
{
    unsigned seed = (unsigned)now_ns() ^ (unsigned)getpid();
    int64_t start = now_ns();
    int64_t end = o->duration_ms > 0 ? start + o->duration_ms * NS_PER_MS : NEVER;
    int64_t toggle = NEVER;
    bool dark = false;
    if (o->blackhole_every.hi > 0) {
        toggle = start + pick_ms(&o->blackhole_every, &seed) * NS_PER_MS;
    }
    for (;;) {
        int64_t next = toggle < end ? toggle : end;
        if (!wait_until(stop_sigs, next)) {
            return;
        }
        int64_t now = now_ns();
        if (now >= end) {
            return;
        }
        if (now >= toggle) {
            dark = !dark;
            fp_set_blackhole(p, dark);
            int64_t ms = dark ? o->blackhole_for_ms : pick_ms(&o->blackhole_every, &seed);
            toggle = now + ms * NS_PER_MS;
        }
    }
}

static void print_stats(fp_proxy *p)
{
    fp_stats s;
    fp_get_stats(p, &s);
    fprintf(stderr,
            "lifeline-faultproxy: accepted=%" PRIu64 " resets=%" PRIu64 " closes=%" PRIu64 " bytes_to_target=%" PRIu64
            " bytes_to_client=%" PRIu64 "\n",
            s.accepted, s.resets, s.closes, s.bytes_to_target, s.bytes_to_client);
}

static int configure(fp_proxy *p, const options *o)
{
    if (o->reset_every.hi > 0 && fp_random_resets(p, o->reset_every.lo, o->reset_every.hi) < 0) {
        return -1;
    }
    if (o->delay_ms > 0 && fp_set_delay_ms(p, o->delay_ms) < 0) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    /* Block the stop signals before the proxy thread exists so only sigtimedwait sees them. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    fp_proxy *p = NULL;
    if (fp_start(o.listen_host, o.listen_port, o.target_host, o.target_port, &p) < 0) {
        fprintf(stderr, "lifeline-faultproxy: cannot start: %s\n", strerror(errno));
        return 1;
    }
    if (configure(p, &o) < 0) {
        fprintf(stderr, "lifeline-faultproxy: %s\n", strerror(errno));
        fp_stop(p);
        return 1;
    }
    bool v6 = strchr(o.listen_host, ':') != NULL;
    printf("listening on %s%s%s:%u\n", v6 ? "[" : "", o.listen_host, v6 ? "]" : "", (unsigned)fp_port(p));
    fflush(stdout);
    run(p, &o, &stop_sigs);
    print_stats(p);
    fp_stop(p);
    return 0;
}
