/* lifeline-server's HTTP endpoint on libmicrohttpd (http.h). */
#include "http.h"

#include "json.h"

#include <microhttpd.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_LIMIT 1024
#define MAX_LIMIT     100000

struct http_endpoint {
    struct MHD_Daemon *daemon;
    http_target target;
    uint16_t port;
};

/* ---- responses ---- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    char *body = strdup(text);
    return body ? reply(c, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

static enum MHD_Result serve_metrics(struct MHD_Connection *c, const http_target *t)
{
    char *text = NULL;
    size_t len = 0;
    sdk_err rc = sdk_server_metrics(t->srv, &text, &len);
    if (rc != SDK_OK) {
        return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, sdk_strerror(rc));
    }
    /* MHD frees with free(), which is what sdk_metrics_free does. */
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* Whether the server's writes to its store go through (sdk_server_store_status). */
static bool store_up(sdk_server *srv)
{
    return sdk_server_store_status(srv, NULL, 0, NULL) == SDK_OK;
}

static enum MHD_Result serve_health(struct MHD_Connection *c, const http_target *t)
{
    if (atomic_load(t->stopping)) {
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping\n");
    }
    if (t->store && !store_up(t->srv)) {
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "store down\n");
    }
    return reply_text(c, MHD_HTTP_OK, "ok\n");
}

/* ---- /sessions ---- */

typedef int (*session_cmp)(const void *, const void *);

#define CMP(a, b) (((a) > (b)) - ((a) < (b)))
#define SESSION_CMP(fname, expr)                               \
    static int fname(const void *pa, const void *pb)           \
    {                                                          \
        const sdk_session_info *a = pa, *b = pb;               \
        int by = (expr);                                       \
        return by ? by : CMP(a->id, b->id); /* stable pages */ \
    }

/* As NATS /connz: id and start ascending, idle longest first, the rest largest first. */
SESSION_CMP(by_id, 0)
SESSION_CMP(by_start, CMP(a->connected_since_ms, b->connected_since_ms))
SESSION_CMP(by_rtt, CMP(b->rtt_smoothed_us, a->rtt_smoothed_us))
SESSION_CMP(by_idle, CMP(a->last_heard_ms, b->last_heard_ms))
SESSION_CMP(by_queued, CMP(b->queued, a->queued))
SESSION_CMP(by_unacked, CMP(b->unacked, a->unacked))
SESSION_CMP(by_received, CMP(b->received, a->received))
SESSION_CMP(by_connections, CMP(b->connections, a->connections))

static const struct {
    const char *name;
    session_cmp cmp;
} sorts[] = {
    {"id", by_id},         {"start", by_start},     {"rtt", by_rtt},           {"idle", by_idle},
    {"queued", by_queued}, {"unacked", by_unacked}, {"received", by_received}, {"connections", by_connections}};

static session_cmp find_sort(const char *name)
{
    for (size_t i = 0; i < sizeof(sorts) / sizeof(sorts[0]); i++) {
        if (strcmp(sorts[i].name, name) == 0) {
            return sorts[i].cmp;
        }
    }
    return NULL;
}

/* A query argument as a number in [0, max]; absent: dflt; false if malformed. */
static bool query_number(struct MHD_Connection *c, const char *key, long dflt, long max, long *out)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
    if (!v) {
        *out = dflt;
        return true;
    }
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > max) {
        return false;
    }
    *out = n;
    return true;
}

static enum MHD_Result write_page(struct MHD_Connection *c, sdk_session_info *info, size_t n, size_t offset,
                                  size_t limit, const char *sort)
{
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out) {
        return MHD_NO;
    }
    size_t first = offset < n ? offset : n;
    size_t last = first + limit < n ? first + limit : n;
    fprintf(out, "{\"total\":%zu,\"offset\":%zu,\"limit\":%zu,\"sort\":\"%s\",\"count\":%zu,\"sessions\":[", n, offset,
            limit, sort, last - first);
    for (size_t i = first; i < last; i++) {
        fputs(i > first ? "," : "", out);
        json_session(out, &info[i]);
    }
    fputs("]}\n", out);
    if (fclose(out) != 0) {
        free(body);
        return MHD_NO;
    }
    return reply(c, MHD_HTTP_OK, "application/json", body, len);
}

static enum MHD_Result serve_sessions(struct MHD_Connection *c, const http_target *t)
{
    long limit = 0, offset = 0;
    const char *sort = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sort");
    sort = sort ? sort : "id";
    session_cmp cmp = find_sort(sort);
    if (!cmp || !query_number(c, "limit", DEFAULT_LIMIT, MAX_LIMIT, &limit) ||
        !query_number(c, "offset", 0, 1L << 30, &offset)) {
        return reply_text(c, MHD_HTTP_BAD_REQUEST,
                          "want limit and offset as numbers (limit at most 100000) and sort one of id, start, rtt, "
                          "idle, queued, unacked, received, connections\n");
    }
    sdk_session_info *info = NULL;
    size_t n = 0;
    sdk_err rc = sdk_server_sessions(t->srv, &info, &n);
    if (rc != SDK_OK) {
        return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, sdk_strerror(rc));
    }
    qsort(info, n, sizeof(*info), cmp);
    enum MHD_Result ok = write_page(c, info, n, (size_t)offset, (size_t)limit, sort);
    sdk_sessions_free(info);
    return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)state;
    const http_endpoint *ep = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        return serve_metrics(c, &ep->target);
    }
    if (strcmp(url, "/sessions") == 0) {
        return serve_sessions(c, &ep->target);
    }
    if (strcmp(url, "/healthz") == 0) {
        return serve_health(c, &ep->target);
    }
    return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /sessions or /healthz\n");
}

/* ---- the daemon ---- */

static int resolve(const char *address, struct addrinfo **res, char *err, size_t errlen)
{
    char host[256];
    uint16_t port = 0;
    if (sdk_parse_address(address, host, sizeof(host), &port) != SDK_OK) {
        snprintf(err, errlen, "bad address \"%s\" (want HOST:PORT or [IPv6]:PORT)", address);
        return -1;
    }
    char service[8];
    snprintf(service, sizeof(service), "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    int rc = getaddrinfo(host, service, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

int http_start(const char *address, const http_target *target, http_endpoint **out, char *err, size_t errlen)
{
    struct addrinfo *ai = NULL;
    *out = NULL;
    if (resolve(address, &ai, err, errlen) != 0) {
        return -1;
    }
    http_endpoint *ep = calloc(1, sizeof(*ep));
    if (!ep) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ep->target = *target;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    ep->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, ep, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                  MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!ep->daemon) {
        snprintf(err, errlen, "cannot listen on %s (address in use?)", address);
        free(ep);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(ep->daemon, MHD_DAEMON_INFO_BIND_PORT);
    ep->port = info ? info->port : 0;
    *out = ep;
    return 0;
}

uint16_t http_port(const http_endpoint *ep)
{
    return ep->port;
}

void http_stop(http_endpoint *ep)
{
    if (ep) {
        MHD_stop_daemon(ep->daemon);
        free(ep);
    }
}
