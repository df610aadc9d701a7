/*
 * lifeline-scale's command line: the options into opt (scale.h), checked, with their
 * defaults filled in and the server address resolved.
 */
#include "scale.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

scale_opts opt = {10000, 500, 30, 30000, 0, 15000, NULL, NULL, NULL, 0, 0, -1, NULL, 0, 20, {0}};

static void usage(FILE *out)
{
    fprintf(out, "usage: lifeline-scale --connect HOST:PORT --ca FILE [options]\n"
                 "  --clients N          idle TLS clients to open (default 10000)\n"
                 "  --inflight N         connections at once in TCP connect / TLS handshake / Hello (default 500)\n"
                 "  --hold-s S           seconds to hold once all are connected, measuring (default 30)\n"
                 "  --interval-ms MS     heartbeat (Ping) interval announced and used (default 30000)\n"
                 "  --sources N          bind clients to N source addresses 127.0.0.2.. in turn (default:\n"
                 "                       one per 20000 clients when HOST is loopback; 0: the kernel's choice)\n"
                 "  --server-pid PID     the server process to measure (/proc/PID/stat, statm)\n"
                 "  --server-name NAME   verify this DNS name and send it as SNI (default: verify the IP of HOST)\n"
                 "  --ramp-timeout-s S   give up ramping after S seconds (default 60 + N/100)\n"
                 "  --storm FILE         after the hold, SIGTERM --server-pid and reconnect every client at once\n"
                 "                       (resuming TLS and Lifeline sessions) to the server whose pid appears\n"
                 "                       in FILE (written by whoever restarts it, e.g. scale.sh --storm)\n"
                 "  --storm-timeout-s S  give up the storm after S seconds (default 60 + N/200)\n"
                 "  --retry-ms MS        storm: a refused or failed reconnect is retried after MS, jittered\n"
                 "                       0.5-1.5x (default 20)\n");
}

/* --connect HOST:PORT into opt.host (a static copy) and opt.port. */
static void parse_connect(const char *arg)
{
    static char host[256];
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof host)
        die("--connect wants HOST:PORT, not '%s'", arg);
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = 0;
    opt.host = host;
    opt.port = atoi(colon + 1);
}

enum {
    CLIENTS = 1,
    CONNECT,
    CA,
    HOLD,
    SERVER_PID,
    INFLIGHT,
    INTERVAL,
    NAME,
    RAMP,
    SOURCES,
    STORM,
    STORM_TIMEOUT,
    RETRY,
    HELP
};

/* The integer option o's field in opt; NULL for the others. */
static int *int_option(int o)
{
    switch (o) {
    case CLIENTS:
        return &opt.clients;
    case HOLD:
        return &opt.hold_s;
    case SERVER_PID:
        return &opt.server_pid;
    case INFLIGHT:
        return &opt.inflight;
    case INTERVAL:
        return &opt.interval_ms;
    case RAMP:
        return &opt.ramp_timeout_s;
    case SOURCES:
        return &opt.sources;
    case STORM_TIMEOUT:
        return &opt.storm_timeout_s;
    case RETRY:
        return &opt.retry_ms;
    default:
        return NULL;
    }
}

/* One option from getopt_long; exits on --help and unknown ones. */
static void parse_option(int o, const char *arg)
{
    int *field = int_option(o);
    if (field) {
        *field = atoi(arg);
        return;
    }
    switch (o) {
    case CONNECT:
        parse_connect(arg);
        break;
    case CA:
        opt.ca = arg;
        break;
    case NAME:
        opt.name = arg;
        break;
    case STORM:
        opt.storm_pid_file = arg;
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

/* Range checks and defaults once all options are in; the server address in addr. */
static void check_options(void)
{
    if (!opt.host || !opt.ca || opt.clients < 1 || opt.inflight < 1 || opt.hold_s < 0 || opt.interval_ms < 100 ||
        opt.port < 1 || opt.port > 65535 || opt.retry_ms < 1 || opt.storm_timeout_s < 0) {
        usage(stderr);
        exit(64);
    }
    if (opt.storm_pid_file && opt.server_pid <= 0)
        die("%s", "--storm needs --server-pid (the server to restart)");
    if (!opt.ramp_timeout_s)
        opt.ramp_timeout_s = 60 + opt.clients / 100;
    if (!opt.storm_timeout_s)
        opt.storm_timeout_s = 60 + opt.clients / 200;
    if (inet_pton(AF_INET, opt.host, &opt.addr.sin_addr) != 1)
        die("--connect: HOST must be an IPv4 address (loopback), not '%s'", opt.host);
    opt.addr.sin_family = AF_INET;
    opt.addr.sin_port = htons((uint16_t)opt.port);
    bool loopback = (ntohl(opt.addr.sin_addr.s_addr) >> 24) == 127;
    if (opt.sources < 0)
        opt.sources = loopback ? (opt.clients + 19999) / 20000 : 0;
    if (opt.sources > 250 || (opt.sources > 0 && !loopback))
        die("--sources: at most 250, and only towards a loopback HOST, not '%s'", opt.host);
}

void scale_parse(int argc, char **argv)
{
    static const struct option longs[] = {{"clients", required_argument, NULL, CLIENTS},
                                          {"connect", required_argument, NULL, CONNECT},
                                          {"ca", required_argument, NULL, CA},
                                          {"hold-s", required_argument, NULL, HOLD},
                                          {"server-pid", required_argument, NULL, SERVER_PID},
                                          {"inflight", required_argument, NULL, INFLIGHT},
                                          {"interval-ms", required_argument, NULL, INTERVAL},
                                          {"server-name", required_argument, NULL, NAME},
                                          {"ramp-timeout-s", required_argument, NULL, RAMP},
                                          {"sources", required_argument, NULL, SOURCES},
                                          {"storm", required_argument, NULL, STORM},
                                          {"storm-timeout-s", required_argument, NULL, STORM_TIMEOUT},
                                          {"retry-ms", required_argument, NULL, RETRY},
                                          {"help", no_argument, NULL, HELP},
                                          {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", longs, NULL)) != -1)
        parse_option(o, optarg);
    if (optind < argc) {
        usage(stderr);
        exit(64);
    }
    check_options();
}
