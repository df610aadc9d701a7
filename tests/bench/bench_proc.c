/*
 * The separate-process run (--process): the client in this process, the server in another,
 * as users run it. Lifeline's server is build/bin/lifeline-server --sink or --echo; the raw
 * reference's server is this program re-run with the hidden --raw-server flag, so both
 * columns cross a process boundary and their ratio stays fair. Also the subprocess helpers
 * the memory probes use.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_LIMIT_MS 120000

pid_t bench_spawn(char *const argv[], int *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        bench_die("pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        bench_die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(argv[0], argv);
        fprintf(stderr, "lifeline-bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    *out = p[0];
    return pid;
}

bool bench_read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)READ_LIMIT_MS * 1000000u;
    while (n + 1 < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0) {
            if (bench_now_ns() > deadline) {
                return false;
            }
            continue;
        }
        char ch;
        if (read(fd, &ch, 1) != 1) {
            return false;
        }
        if (ch == '\n') {
            break;
        }
        buf[n++] = ch;
    }
    buf[n] = '\0';
    return true;
}

double bench_reap(pid_t pid, int sig)
{
    if (sig) {
        kill(pid, sig);
    }
    int status;
    struct rusage ru = {0};
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

pid_t bench_server_process(const bench_opts *o, const char *program, const char *mode, uint16_t *port, int *out)
{
    char path[600];
    bool raw = strcmp(program, "raw") == 0;
    snprintf(path, sizeof path, "%s/%s", o->bindir, program);
    if (!raw && access(path, X_OK) != 0) {
        return 0;
    }
    char *lifeline[] = {path,         "--listen",    "127.0.0.1:0", "--dev-certs", (char *)o->certs,
                        (char *)mode, "--log-level", "warn",        NULL};
    char *reference[] = {(char *)o->self, "--raw-server", (char *)mode, (char *)o->certs, NULL};
    pid_t pid = bench_spawn(raw ? reference : lifeline, out);
    char line[256];
    unsigned p = 0;
    if (!bench_read_line(*out, line, sizeof line) || sscanf(line, "listening on 127.0.0.1:%u", &p) != 1) {
        bench_reap(pid, SIGKILL);
        bench_die("%s %s did not print 'listening on 127.0.0.1:PORT'", program, mode);
    }
    *port = (uint16_t)p;
    return pid;
}

/* ---- one figure against a fresh server process ---- */

typedef struct server_proc {
    pid_t pid;
    int out;
    uint16_t port;
} server_proc;

static server_proc start(const bench_opts *o, const char *program, const char *mode)
{
    server_proc s = {0};
    s.pid = bench_server_process(o, program, mode, &s.port, &s.out);
    if (!s.pid) {
        bench_die("--process: no %s/%s", o->bindir, program);
    }
    return s;
}

/* The raw server exits by itself once its one client is gone; lifeline-server is stopped.
 * Returns the server's CPU seconds. */
static double finish(server_proc *s, bool stop)
{
    double cpu = bench_reap(s->pid, stop ? SIGTERM : 0);
    close(s->out);
    return cpu;
}

bench_proc_pair bench_proc_throughput(const bench_opts *o, bool echo, size_t size)
{
    const char *mode = echo ? "--echo" : "--sink";
    bench_proc_pair r;
    server_proc s = start(o, "lifeline-server", mode);
    double cpu0 = bench_cpu_s();
    r.lifeline = bench_sdk_throughput_at(o, s.port, echo, size);
    double client = bench_cpu_s() - cpu0;
    r.lifeline_cpu_us = (client + finish(&s, true)) * 1e6 / (double)bench_last_sent;
    s = start(o, "raw", echo ? "echo" : "sink");
    cpu0 = bench_cpu_s();
    r.raw = bench_raw_throughput_at(s.port, echo, size, o->duration_s);
    client = bench_cpu_s() - cpu0;
    r.raw_cpu_us = (client + finish(&s, false)) * 1e6 / (double)bench_last_sent;
    return r;
}

void bench_proc_latency(const bench_opts *o, bench_latency *lifeline, bench_latency *raw)
{
    server_proc s = start(o, "lifeline-server", "--echo");
    *lifeline = bench_sdk_latency_at(o, s.port);
    finish(&s, true);
    s = start(o, "raw", "echo");
    *raw = bench_raw_latency_at(s.port, o->latency_iters);
    finish(&s, false);
}
