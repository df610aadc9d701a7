/*
 * lifeline-bench --only store: what a session store costs. Throughput (sink and echo, 64 B
 * and 4 KiB) with no store (the memory default), with Redis in handover mode and with Redis
 * under sync always, measured in the same runs and interleaved, so the ratios to the
 * no-store figure are what the targets are about; in each run too, the failover series of
 * bench_failover.c on the same redis-server; then Redis memory per detached session.
 * It starts its own redis-server (tests/unit/redis_proc.c) on a free loopback port.
 */
#include "bench.h"
#include "redis_proc.h"

#include <lifeline/server.h>
#include <lifeline/store.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { NO_STORE, HANDOVER, ALWAYS, N_MODES };
static const char *const MODE_NAMES[N_MODES] = {"no store", "redis handover", "redis always"};

/* One figure: samples per store mode. */
typedef struct store_row {
    const char *name;
    bool echo;
    size_t size;
    double v[N_MODES][BENCH_MAX_RUNS];
    double redis_cpu_s[N_MODES]; /* redis-server's CPU time over all runs */
    double msgs[N_MODES];        /* messages over all runs */
} store_row;

static store_row store_rows[] = {
    {.name = "sink 64 B (k msg/s)", .echo = false, .size = 64},
    {.name = "sink 4 KiB (k msg/s)", .echo = false, .size = 4096},
    {.name = "echo 64 B (k msg/s)", .echo = true, .size = 64},
    {.name = "echo 4 KiB (k msg/s)", .echo = true, .size = 4096},
};
#define N_ROWS (sizeof(store_rows) / sizeof(store_rows[0]))

/* CPU seconds (user + system) process pid has used so far; 0 if unreadable. */
static double cpu_seconds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    unsigned long utime = 0, stime = 0;
    /* Fields 14 and 15, after the command in parentheses (which has no spaces here). */
    if (!f || fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) {
        utime = stime = 0;
    }
    if (f) {
        fclose(f);
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double one(const bench_opts *o, sdk_store *redis, int mode, bool echo, size_t size)
{
    bench_sdk_use_store(mode == NO_STORE ? NULL : redis,
                        mode == ALWAYS ? SDK_STORE_SYNC_ALWAYS : SDK_STORE_SYNC_HANDOVER);
    double v = bench_sdk_throughput(o, echo, size);
    bench_sdk_use_store(NULL, SDK_STORE_SYNC_HANDOVER);
    return v;
}

static void print_rows(int runs)
{
    printf("%-24s | %12s | %14s | %6s | %14s | %6s\n", "store figure", MODE_NAMES[0], MODE_NAMES[1], "ratio",
           MODE_NAMES[2], "ratio");
    printf("-------------------------+--------------+----------------+--------+----------------+-------\n");
    for (size_t i = 0; i < N_ROWS; i++) {
        double med[N_MODES];
        for (int m = 0; m < N_MODES; m++) {
            med[m] = bench_median(store_rows[i].v[m], runs) * 1e-3;
        }
        printf("%-24s | %12.1f | %14.1f | %6.2f | %14.1f | %6.2f\n", store_rows[i].name, med[NO_STORE], med[HANDOVER],
               med[HANDOVER] / med[NO_STORE], med[ALWAYS], med[ALWAYS] / med[NO_STORE]);
    }
    printf("redis-server CPU per message under sync always (us):");
    for (size_t i = 0; i < N_ROWS; i++) {
        const store_row *row = &store_rows[i];
        printf(" %s %.2f;", row->name, row->msgs[ALWAYS] > 0 ? row->redis_cpu_s[ALWAYS] * 1e6 / row->msgs[ALWAYS] : 0);
    }
    printf("\n");
}

/* used_memory_dataset of the Redis at port (the keys alone: client buffers, which the
 * throughput runs leave large and Redis shrinks later, would blur it), from redis-cli INFO;
 * -1 if it cannot be read. */
static long redis_used_memory(uint16_t port)
{
    char cmd[128], line[256];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %u INFO memory", (unsigned)port);
    FILE *p = popen(cmd, "r");
    long used = -1;
    while (p && fgets(line, sizeof line, p)) {
        if (strncmp(line, "used_memory_dataset:", 20) == 0) {
            used = strtol(line + 20, NULL, 10);
        }
    }
    if (p) {
        pclose(p);
    }
    return used;
}

void bench_store_section(const bench_opts *o)
{
    redis_proc redis;
    if (!redis_proc_start(&redis)) {
        bench_die("store: cannot start redis-server (install it: bash setup.sh deps)");
    }
    sdk_store *st = NULL;
    if (sdk_store_open(redis.url, 0, &st) != SDK_OK) {
        bench_die("store: sdk_store_open(%s) failed", redis.url);
    }
    for (int r = 0; r < o->runs; r++) {
        fprintf(stderr, "store run %d/%d...\n", r + 1, o->runs);
        for (size_t i = 0; i < N_ROWS; i++) {
            for (int m = 0; m < N_MODES; m++) {
                store_row *row = &store_rows[i];
                double cpu0 = cpu_seconds(redis.pid);
                row->v[m][r] = one(o, st, m, row->echo, row->size);
                row->redis_cpu_s[m] += cpu_seconds(redis.pid) - cpu0;
                row->msgs[m] += row->v[m][r] * o->duration_s; /* about: the rate times the run */
            }
        }
        bench_failover_run(o, redis.url);
    }
    printf("session store: redis-server %s on loopback, persistence off; throughput with one client\n", redis.url);
    print_rows(o->runs);
    bench_failover_print();
    char flush[128]; /* the throughput runs' records go first: they expire only later */
    snprintf(flush, sizeof flush, "redis-cli -h 127.0.0.1 -p %u FLUSHALL SYNC >/dev/null", (unsigned)redis.port);
    if (system(flush) != 0) {
        bench_die("store: %s failed", flush);
    }
    long before = redis_used_memory(redis.port);
    int sessions = o->quick ? 100 : 1000;
    bench_sdk_use_store(st, SDK_STORE_SYNC_HANDOVER);
    bench_sdk_detached_sessions(o, sessions);
    bench_sdk_use_store(NULL, SDK_STORE_SYNC_HANDOVER);
    long after = redis_used_memory(redis.port);
    if (before >= 0 && after >= 0) {
        printf("redis memory per detached session (%d sessions, each with one unacknowledged 64 B message): "
               "%.0f bytes\n\n",
               sessions, (double)(after - before) / sessions);
    }
    sdk_store_close(st);
    redis_proc_stop(&redis);
}
