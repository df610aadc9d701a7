#include "redis_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_MS 10000 /* a loaded CI machine under TSan can be slow to exec */

uint16_t redis_proc_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* Whether the server on port answers PING now. */
static bool answers_ping(uint16_t port)
{
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

static bool spawn(redis_proc *r)
{
    const char *bin = getenv("LIFELINE_REDIS_SERVER");
    char port[8], log[300];
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
    pid_t parent = getpid();
    r->pid = fork();
    if (r->pid == 0) {
        /* A test that dies (a crash, ctest's timeout) takes its Redis with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == parent) {
            execvp(argv[0], argv);
        }
        _exit(127);
    }
    if (r->pid < 0) {
        fprintf(stderr, "redis_proc: fork: %s\n", strerror(errno));
        r->pid = 0;
        return false;
    }
    return true;
}

/* Wait until it answers PING; false if it exited first (its port taken) or took too long. */
static bool wait_ready(redis_proc *r)
{
    for (int waited = 0; waited < READY_MS; waited += 10) {
        if (answers_ping(r->port)) {
            return true;
        }
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return false;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    redis_proc_kill(r);
    return false;
}

bool redis_proc_restart(redis_proc *r)
{
    return spawn(r) && wait_ready(r);
}

bool redis_proc_start(redis_proc *r)
{
    const char *tmp = getenv("LIFELINE_TEST_TMP");
    *r = (redis_proc){0};
    snprintf(r->dir, sizeof(r->dir), "%s/redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(r->dir)) {
        fprintf(stderr, "redis_proc: mkdtemp %s: %s\n", r->dir, strerror(errno));
        return false;
    }
    /* The port is free when picked but not reserved: if another process takes it before
     * redis binds it, redis exits, and another port is picked. */
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = redis_proc_free_port();
        if (r->port != 0 && redis_proc_restart(r)) {
            snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%u", (unsigned)r->port);
            return true;
        }
    }
    fprintf(stderr, "redis_proc: redis-server did not start (log in %s)\n", r->dir);
    return false;
}

void redis_proc_kill(redis_proc *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        r->pid = 0;
    }
}

void redis_proc_stop(redis_proc *r)
{
    redis_proc_kill(r);
    char log[300];
    snprintf(log, sizeof(log), "%s/redis.log", r->dir);
    unlink(log);
    if (r->dir[0]) {
        rmdir(r->dir);
    }
}
