/*
 * Child processes of the benchmark: the memory probes (this program again) and
 * build/bin/lifeline-server instances (the memory probe's separate server, the failover
 * cluster, the separate-process rows: --process, where the raw reference's server is this
 * program re-run with the hidden --raw-server flag, so that both columns cross a process
 * boundary and their ratio stays fair). Each child's stdout comes back on a pipe, its stderr is ours; a child dies with
 * the benchmark (PR_SET_PDEATHSIG), so a benchmark stopped by its watchdog leaves no server
 * behind.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_LIMIT_MS 120000
#define STOP_LIMIT_MS 10000
#define PORT_RETRY_MS 5000

pid_t bench_spawn(char *const argv[], int *out)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        bench_die("pipe: %s", strerror(errno));
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        bench_die("fork: %s", strerror(errno));
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127); /* the benchmark is gone already */
        }
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

int bench_reap_usage(pid_t pid, int sig, double *cpu_s)
{
    if (sig) {
        kill(pid, sig);
    }
    int status = -1;
    struct rusage ru = {0};
    uint64_t deadline = bench_now_ns() + (uint64_t)STOP_LIMIT_MS * 1000000u;
    for (;;) {
        pid_t r = wait4(pid, &status, WNOHANG, &ru);
        if (r == pid || (r < 0 && errno != EINTR)) {
            break;
        }
        if (bench_now_ns() > deadline) { /* a stop that hangs is killed, and says so */
            fprintf(stderr, "lifeline-bench: pid %ld did not exit within %d ms of signal %d: killed\n", (long)pid,
                    STOP_LIMIT_MS, sig);
            kill(pid, SIGKILL);
            deadline = UINT64_MAX;
        }
        bench_sleep_ms(1);
    }
    if (cpu_s) {
        *cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    }
    return status;
}

int bench_reap(pid_t pid, int sig)
{
    return bench_reap_usage(pid, sig, NULL);
}

/* One try: the server's pid, with p->port set from its "listening on 127.0.0.1:PORT" line;
 * 0 if it exited without that line (for a fixed port: most likely not free yet). */
static pid_t server_try(char *const argv[], bench_proc *p)
{
    pid_t pid = bench_spawn(argv, &p->out);
    char line[256];
    unsigned port = 0;
    if (bench_read_line(p->out, line, sizeof line) && sscanf(line, "listening on 127.0.0.1:%u", &port) == 1) {
        p->pid = pid;
        p->port = (uint16_t)port;
        return pid;
    }
    bench_reap(pid, SIGKILL);
    close(p->out);
    p->out = -1;
    return 0;
}

bool bench_server_start(const bench_opts *o, uint16_t port, const char *const *extra, bench_proc *p)
{
    char path[600], listen[32];
    snprintf(path, sizeof path, "%s/lifeline-server", o->bindir);
    if (access(path, X_OK) != 0) {
        return false;
    }
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    char *argv[32] = {path, "--listen", listen, "--dev-certs", (char *)o->certs};
    size_t argc = 5;
    char threads[16];
    if (o->io_threads > 0) {
        snprintf(threads, sizeof threads, "%d", o->io_threads);
        argv[argc++] = "--io-threads";
        argv[argc++] = threads;
    }
    for (size_t i = 0; extra && extra[i] && argc + 1 < sizeof argv / sizeof argv[0]; i++) {
        argv[argc++] = (char *)extra[i];
    }
    argv[argc] = NULL;
    *p = (bench_proc){.out = -1};
    uint64_t deadline = bench_now_ns() + (uint64_t)PORT_RETRY_MS * 1000000u;
    while (server_try(argv, p) == 0) {
        if (port == 0 || bench_now_ns() > deadline) {
            bench_die("%s did not print 'listening on %s'", path, listen);
        }
        bench_sleep_ms(20);
    }
    return true;
}

int bench_server_stop(bench_proc *p, int sig)
{
    if (p->pid <= 0) {
        return -1;
    }
    int status = bench_reap(p->pid, sig);
    close(p->out);
    p->out = -1;
    p->pid = 0;
    return status;
}

/* ---- one figure against a fresh server process (--process) ---- */

/* lifeline-server with mode (--sink or --echo), or the raw server (mode sink or echo). */
static bench_proc start(const bench_opts *o, bool raw, const char *mode)
{
    bench_proc p = {.out = -1};
    if (!raw) {
        const char *const extra[] = {mode, "--log-level", "warn", NULL};
        if (!bench_server_start(o, 0, extra, &p)) {
            bench_die("--process: no %s/lifeline-server", o->bindir);
        }
        return p;
    }
    char *argv[] = {(char *)o->self, "--raw-server", (char *)mode, (char *)o->certs, NULL};
    if (server_try(argv, &p) == 0) {
        bench_die("--process: %s --raw-server did not print 'listening on 127.0.0.1:PORT'", o->self);
    }
    return p;
}

/* The raw server exits by itself once its one client is gone; lifeline-server is stopped.
 * Returns the server's CPU seconds. */
static double finish(bench_proc *p, bool stop)
{
    double cpu = 0;
    (void)bench_reap_usage(p->pid, stop ? SIGTERM : 0, &cpu);
    close(p->out);
    p->out = -1;
    return cpu;
}

bench_proc_pair bench_proc_throughput(const bench_opts *o, bool echo, size_t size)
{
    const char *mode = echo ? "--echo" : "--sink";
    bench_proc_pair r;
    bench_proc s = start(o, false, mode);
    double cpu0 = bench_cpu_s();
    r.lifeline = bench_sdk_throughput_at(o, s.port, echo, size);
    double client = bench_cpu_s() - cpu0;
    r.lifeline_cpu_us = (client + finish(&s, true)) * 1e6 / (double)bench_last_sent;
    s = start(o, true, echo ? "echo" : "sink");
    cpu0 = bench_cpu_s();
    r.raw = bench_raw_throughput_at(s.port, echo, size, o->duration_s);
    client = bench_cpu_s() - cpu0;
    r.raw_cpu_us = (client + finish(&s, false)) * 1e6 / (double)bench_last_sent;
    return r;
}

void bench_proc_latency(const bench_opts *o, bench_latency *lifeline, bench_latency *raw)
{
    bench_proc s = start(o, false, "--echo");
    *lifeline = bench_sdk_latency_at(o, s.port);
    finish(&s, true);
    s = start(o, true, "echo");
    *raw = bench_raw_latency_at(s.port, o->latency_iters);
    finish(&s, false);
}
