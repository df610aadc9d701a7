#include "server_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define START_ATTEMPTS 5

uint16_t server_proc_free_port(void)
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

bool server_proc_tempdir(char *dir, size_t len, const char *prefix)
{
    const char *base = getenv("LIFELINE_TEST_TMP");
    if (!base || !*base) {
        base = getenv("TMPDIR");
    }
    snprintf(dir, len, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "server_proc: mkdtemp %s: %s\n", dir, strerror(errno));
        dir[0] = '\0';
        return false;
    }
    return true;
}

void server_proc_path(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

FILE *server_proc_open_config(const char *dir, const char *conf_name, const char *log_name, char *conf, size_t len)
{
    char log[1024];
    server_proc_path(log, sizeof(log), dir, log_name);
    unlink(log);
    server_proc_path(conf, len, dir, conf_name);
    FILE *f = fopen(conf, "w");
    if (!f) {
        fprintf(stderr, "server_proc: cannot write %s: %s\n", conf, strerror(errno));
    }
    return f;
}

void server_proc_remove_dir(const char *dir, const char *const names[])
{
    if (!dir || !dir[0]) {
        return;
    }
    for (size_t i = 0; names[i]; i++) {
        char path[1024];
        server_proc_path(path, sizeof(path), dir, names[i]);
        unlink(path);
    }
    rmdir(dir); /* fails, as it should, if files of others are left */
}

pid_t server_proc_spawn(char *const argv[], const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that dies (a crash, ctest's timeout) takes its server with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        if (getppid() == parent) {
            execvp(argv[0], argv);
        }
        _exit(127);
    }
    if (pid < 0) {
        fprintf(stderr, "server_proc: fork: %s\n", strerror(errno));
        return 0;
    }
    return pid;
}

pid_t server_proc_spawn_config(const char *bin, const char *conf, const char *dir, const char *out_name)
{
    char out[1024];
    server_proc_path(out, sizeof(out), dir, out_name);
    char *argv[] = {(char *)bin, "-c", (char *)conf, NULL};
    return server_proc_spawn(argv, out);
}

bool server_proc_wait(pid_t *pid, uint16_t port, server_proc_ready_fn ready, void *arg, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int status;
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return false;
        }
        if (ready(port, arg)) {
            return true;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    server_proc_kill(pid);
    return false;
}

bool server_proc_start(pid_t *pid, uint16_t *port, server_proc_launch_fn launch, server_proc_ready_fn ready, void *arg,
                       int timeout_ms)
{
    /* The port is free when picked but not reserved: if another process takes it before
     * the server binds it, the server exits, and another port is picked. */
    for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
        *port = server_proc_free_port();
        *pid = *port ? launch(*port, arg) : 0;
        if (*pid && server_proc_wait(pid, *port, ready, arg, timeout_ms)) {
            return true;
        }
    }
    *pid = 0;
    return false;
}

void server_proc_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    *pid = 0;
}

bool server_proc_connects(uint16_t port, void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

bool server_proc_file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f)) {
        found = strstr(line, needle) != NULL;
    }
    if (f) {
        fclose(f);
    }
    return found;
}
