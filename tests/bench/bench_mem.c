/*
 * Resident memory per idle connection.
 *
 * Each probe is a fresh child process (this program re-run with --mem-probe), so that
 * memory freed by earlier measurements and kept by malloc cannot hide the cost. A probe
 * connects one warm-up client (libraries, OpenSSL tables and the first thread are paid
 * then), reads RSS from /proc/self/statm, opens N more idle clients, waits for things to
 * settle, reads RSS again and prints both readings.
 *  - inproc: the server runs inside the probe too: the growth is client + server side.
 *  - client: the server is a build/bin/lifeline-server subprocess: the probe's growth is
 *    the client side alone, and the subprocess's growth (/proc/PID/statm, read by the
 *    probe at the same moments) is the server side alone.
 */
#include "bench.h"

#include <lifeline/sdk.h>
#include <lifeline/server.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SETTLE_MS 300

/* ---- child side ---- */

static sdk_client *probe_connect(const char *ca, uint16_t port)
{
    sdk_config cfg;
    sdk_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = port;
    cfg.ca_file = ca;
    sdk_client *c = NULL;
    sdk_err rc = sdk_connect(&cfg, &c);
    if (rc != SDK_OK) {
        char detail[256];
        sdk_last_connect_error(detail, sizeof detail);
        bench_die("memory probe: sdk_connect: %s: %s", sdk_errname(rc), detail);
    }
    return c;
}

/* argv: inproc N CERTDIR | client N CERTDIR PORT SERVER_PID */
int bench_mem_probe_main(int argc, char **argv)
{
    if (argc < 3) {
        bench_die("--mem-probe: missing arguments");
    }
    bool inproc = strcmp(argv[0], "inproc") == 0;
    int n = atoi(argv[1]);
    char ca[320], cert[320], key[320];
    snprintf(ca, sizeof ca, "%s/ca.pem", argv[2]);
    snprintf(cert, sizeof cert, "%s/server.pem", argv[2]);
    snprintf(key, sizeof key, "%s/server.key", argv[2]);
    uint16_t port = 0;
    pid_t server_pid = 0;
    if (inproc) {
        sdk_server_config sc;
        sdk_server_config_init(&sc);
        sc.listen = "127.0.0.1:0";
        sc.cert_file = cert;
        sc.key_file = key;
        sdk_server *srv = NULL;
        if (sdk_server_start(&sc, &srv) != SDK_OK) {
            bench_die("memory probe: sdk_server_start failed");
        }
        port = sdk_server_port(srv);
    } else if (argc >= 5) {
        port = (uint16_t)atoi(argv[3]);
        server_pid = (pid_t)atol(argv[4]);
    } else {
        bench_die("--mem-probe client: missing PORT SERVER_PID");
    }
    (void)probe_connect(ca, port);
    bench_sleep_ms(SETTLE_MS);
    long self0 = bench_rss_bytes(0), srv0 = server_pid ? bench_rss_bytes(server_pid) : 0;
    for (int i = 0; i < n; i++) {
        (void)probe_connect(ca, port); /* kept open until the process exits */
    }
    bench_sleep_ms(SETTLE_MS);
    long self1 = bench_rss_bytes(0), srv1 = server_pid ? bench_rss_bytes(server_pid) : 0;
    printf("%ld %ld %ld %ld\n", self0, self1, srv0, srv1);
    fflush(stdout);
    _exit(0); /* no need to close hundreds of clients one by one */
}

/* ---- parent side ---- */

/* Run one probe; fills v[0..3] (self before/after, server before/after). */
static void run_probe(const bench_opts *o, const char *mode, uint16_t port, pid_t server_pid, long v[4])
{
    char n[16], portbuf[16], pidbuf[24];
    snprintf(n, sizeof n, "%d", o->mem_clients);
    snprintf(portbuf, sizeof portbuf, "%u", (unsigned)port);
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)server_pid);
    char *argv[] = {(char *)o->self, "--mem-probe", (char *)mode, n, (char *)o->certs, portbuf, pidbuf, NULL};
    int out;
    pid_t pid = bench_spawn(argv, &out);
    char line[256];
    bool ok =
        bench_read_line(out, line, sizeof line) && sscanf(line, "%ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3]) == 4;
    close(out);
    bench_reap(pid, ok ? 0 : SIGKILL);
    if (!ok) {
        bench_die("memory probe '%s' gave no result", mode);
    }
}

bench_mem bench_memory(const bench_opts *o)
{
    double per = 1024.0 * o->mem_clients;
    long v[4];
    run_probe(o, "inproc", 0, 0, v);
    bench_mem m = {.both_kib = (double)(v[1] - v[0]) / per, .client_kib = -1, .server_kib = -1};
    uint16_t port;
    int out;
    pid_t srv = bench_server_process(o, "lifeline-server", "--sink", &port, &out);
    if (srv) {
        run_probe(o, "client", port, srv, v);
        m.client_kib = (double)(v[1] - v[0]) / per;
        m.server_kib = (double)(v[3] - v[2]) / per;
        bench_reap(srv, SIGTERM);
        close(out);
    } else {
        fprintf(stderr, "lifeline-bench: no %s/lifeline-server: client-only and server-only memory skipped\n",
                o->bindir);
    }
    return m;
}
