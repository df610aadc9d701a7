/*
 * lifeline-server's HTTP endpoint (--metrics HOST:PORT), served by GNU libmicrohttpd on a
 * thread of its own:
 *   GET /metrics   sdk_server_metrics, Prometheus text format 0.0.4
 *   GET /sessions  the liveness view as JSON: ?limit=N (default 1024), &offset=N (default 0),
 *                  &sort=id|start|rtt|idle|queued|unacked|received|connections
 *   GET /healthz   200 "ok", or 503 with the reason while stopping or when the store is down
 */
#ifndef LIFELINE_SERVER_HTTP_H
#define LIFELINE_SERVER_HTTP_H

#include <lifeline/server.h>
#include <lifeline/store.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct http_endpoint http_endpoint;

/* What /healthz looks at: *stopping is set once the program is shutting down. */
typedef struct http_target {
    sdk_server *srv;
    sdk_store *store; /* NULL: none */
    const atomic_bool *stopping;
} http_target;

/* Listen on address ("HOST:PORT", "[v6]:PORT"; port 0 picks one) and serve target. 0, or -1
 * with the reason in err. */
int http_start(const char *address, const http_target *target, http_endpoint **out, char *err, size_t errlen);
/* The bound port. */
uint16_t http_port(const http_endpoint *ep);
/* Stop serving (waits for requests in progress) and free. NULL is ignored. */
void http_stop(http_endpoint *ep);

#endif
