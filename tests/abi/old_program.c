/*
 * old_program: a program written and built against Lifeline 0.1 (tests/abi/v0.1/include),
 * run against the current liblifeline.so.0 (tests/abi/README.md). Usage: old_program DIR
 * (DIR for throwaway certificates). Exit status 0 and "old program: ok" on success.
 */
#include <lifeline/server.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "old program: check failed: %s\n", #cond); \
            return 1;                                                  \
        }                                                              \
    } while (0)

static int connected_events;

static void on_event(const sdk_event *ev, void *user)
{
    if (ev->type == SDK_EVENT_CONNECTED && user == &connected_events) {
        connected_events++;
    }
}

/* The 0.1 error detail of a start that fails, read where 0.1 read it. */
static int check_errors(void)
{
    sdk_server_config bad;
    sdk_server_config_init(&bad);
    bad.listen = "no-port-here";
    bad.cert_file = bad.key_file = "/nonexistent";
    sdk_server *srv = NULL;
    char detail[256] = "";
    CHECK(sdk_server_start(&bad, &srv) == SDK_EINVAL && srv == NULL);
    CHECK(sdk_last_connect_error(detail, sizeof(detail)) == SDK_EINVAL);
    CHECK(strstr(detail, "no-port-here") != NULL);
    sdk_config cfg;
    sdk_config_init(&cfg);
    sdk_client *c = NULL;
    CHECK(sdk_connect(&cfg, &c) == SDK_EINVAL && c == NULL); /* no host, port 0 */
    return 0;
}

static int start_server(const char *dir, sdk_server **srv)
{
    static char cert[512], key[512];
    char err[256] = "";
    CHECK(sdk_dev_certs(dir, err, sizeof(err)) == SDK_OK);
    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    sdk_server_config scfg;
    sdk_server_config_init(&scfg);
    CHECK(scfg.session_ttl_ms == 60000 && scfg.max_output_bytes == 4u * 1024 * 1024); /* 0.1 defaults */
    scfg.listen = "127.0.0.1:0";
    scfg.cert_file = cert;
    scfg.key_file = key;
    scfg.max_frame = 8192;
    CHECK(sdk_server_start(&scfg, srv) == SDK_OK);
    CHECK(sdk_server_port(*srv) != 0);
    return 0;
}

static int connect_client(const char *dir, uint16_t port, sdk_client **c)
{
    static char ca[512];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    sdk_config cfg;
    sdk_config_init(&cfg);
    CHECK(cfg.connect_timeout_ms == 10000 && cfg.window_messages == 16384); /* 0.1 defaults */
    cfg.host = "127.0.0.1";
    cfg.port = port;
    cfg.ca_file = ca;
    cfg.max_frame = 4096;
    cfg.heartbeat_interval_ms = 700;
    cfg.on_event = on_event;
    cfg.user = &connected_events;
    CHECK(sdk_connect(&cfg, c) == SDK_OK);
    return 0;
}

/* A round trip both ways, then the settings that only work if read at their 0.1 places. */
static int round_trip(sdk_server *srv, sdk_client *c)
{
    sdk_message *m = NULL;
    CHECK(sdk_send(c, "ping", 4, 5000) == SDK_OK);
    CHECK(sdk_server_recv(srv, &m, 5000) == SDK_OK);
    CHECK(m->len == 4 && memcmp(m->data, "ping", 4) == 0);
    uint64_t session = m->session;
    sdk_message_free(m);
    CHECK(sdk_server_send(srv, session, "pong", 4, 5000) == SDK_OK);
    CHECK(sdk_recv(c, &m, 5000) == SDK_OK);
    CHECK(m->len == 4 && memcmp(m->data, "pong", 4) == 0);
    sdk_message_free(m);
    static char big[5000];
    CHECK(sdk_send(c, big, sizeof(big), 0) == SDK_ETOOBIG); /* cfg.max_frame = 4096 arrived */
    CHECK(connected_events == 1);                           /* on_event and user arrived */
    sdk_session_info *info = NULL;
    size_t n = 0;
    CHECK(sdk_server_sessions(srv, &info, &n) == SDK_OK && n == 1 && info[0].id == session);
    free(info); /* as 0.1 documented */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: old_program CERT_DIR\n");
        return 2;
    }
    Dl_info where;
    if (dladdr((void *)sdk_connect, &where) && where.dli_fname) {
        printf("old program: running against %s\n", where.dli_fname);
    }
    sdk_server *srv = NULL;
    sdk_client *c = NULL;
    int rc = check_errors();
    rc = rc ? rc : start_server(argv[1], &srv);
    rc = rc ? rc : connect_client(argv[1], sdk_server_port(srv), &c);
    rc = rc ? rc : round_trip(srv, c);
    CHECK(sdk_close(c) == SDK_OK || c == NULL);
    sdk_destroy(c);
    CHECK(sdk_server_stop(srv) == SDK_OK || srv == NULL);
    sdk_server_destroy(srv);
    if (rc == 0) {
        printf("old program: ok (%s)\n", sdk_strerror(SDK_ETOOBIG));
    }
    return rc;
}
