#include "redis_proc.h"
#include "server_proc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READY_MS 10000 /* a loaded CI machine under TSan can be slow to exec */

uint16_t redis_proc_free_port(void)
{
    return server_proc_free_port();
}

/* Whether the server on port answers PING now. */
static bool answers_ping(uint16_t port, void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[16] = "";
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6 && recv(fd, buf, sizeof(buf) - 1, 0) >= 5 &&
              strncmp(buf, "+PONG", 5) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* server_proc_launch_fn: redis-server on port, persistence off, files in r->dir. */
static pid_t launch(uint16_t port_number, void *arg)
{
    redis_proc *r = arg;
    const char *bin = getenv("LIFELINE_REDIS_SERVER");
    char port[8], log[300];
    r->port = port_number;
    snprintf(port, sizeof(port), "%u", (unsigned)r->port);
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    char *argv[] = {(char *)(bin ? bin : "redis-server"),
                    "--port",
                    port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    r->dir,
                    "--logfile",
                    log,
                    "--daemonize",
                    "no",
                    NULL};
    return server_proc_spawn(argv, NULL);
}

bool redis_proc_restart(redis_proc *r)
{
    r->pid = launch(r->port, r);
    return r->pid && server_proc_wait(&r->pid, r->port, answers_ping, NULL, READY_MS);
}

bool redis_proc_start(redis_proc *r)
{
    *r = (redis_proc){0};
    if (!server_proc_tempdir(r->dir, sizeof(r->dir), "redis")) {
        return false;
    }
    if (!server_proc_start(&r->pid, &r->port, launch, answers_ping, r, READY_MS)) {
        fprintf(stderr, "redis_proc: redis-server did not start (log in %s)\n", r->dir);
        return false;
    }
    snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%u", (unsigned)r->port);
    return true;
}

void redis_proc_kill(redis_proc *r)
{
    server_proc_kill(&r->pid);
}

void redis_proc_stop(redis_proc *r)
{
    redis_proc_kill(r);
    static const char *const files[] = {"redis.log", NULL};
    server_proc_remove_dir(r->dir, files);
}
