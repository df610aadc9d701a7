/*
 * A private server process for a test or the benchmark (redis-server, nats-server,
 * mosquitto): started on a free loopback port with its files in a temp directory, checked
 * ready, killed at the end. Never the system's service. The child dies with its parent
 * (PR_SET_PDEATHSIG), so a crashed or timed-out test leaves no server behind.
 *
 * Single-threaded use: each function is for the thread that owns the server.
 */
#ifndef LL_TEST_SERVER_PROC_H
#define LL_TEST_SERVER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* server_proc_free_port: a loopback port nobody listens on now (bound to 127.0.0.1:0, then
 * closed; not reserved, so the server may lose it to another process); 0 on failure. */
uint16_t server_proc_free_port(void);

/* server_proc_tempdir: create "<base>/<prefix>-XXXXXX" (base: $LIFELINE_TEST_TMP, else
 * $TMPDIR, else /tmp) into dir. Returns false, with the reason on stderr, on failure. */
bool server_proc_tempdir(char *dir, size_t len, const char *prefix);

/* server_proc_path: "<dir>/<name>" into out (len bytes). */
void server_proc_path(char *out, size_t len, const char *dir, const char *name);

/* server_proc_open_config: create (truncate) <dir>/<conf_name> for writing, its path into
 * conf (len bytes), and remove <dir>/<log_name>, so that a log line of a previous attempt
 * cannot pass for this one's. NULL (reason on stderr) if it cannot be created. */
FILE *server_proc_open_config(const char *dir, const char *conf_name, const char *log_name, char *conf, size_t len);

/* server_proc_remove_dir: remove the named files in dir (a NULL-terminated list), then dir
 * if that left it empty: files others put there (a test's own logs) stay, and so does dir. */
void server_proc_remove_dir(const char *dir, const char *const names[]);

/* server_proc_spawn: fork and exec argv (argv[0] looked up on the PATH), its stdout and
 * stderr to log (appended; NULL: inherited). Returns the child's pid, or 0 (reason on
 * stderr). */
pid_t server_proc_spawn(char *const argv[], const char *log);

/* server_proc_spawn_config: server_proc_spawn "bin -c conf" (nats-server, mosquitto), its
 * output to <dir>/<out_name>. */
pid_t server_proc_spawn_config(const char *bin, const char *conf, const char *dir, const char *out_name);

/* Whether the server at port is ready: a probe called every 10 ms by server_proc_wait. */
typedef bool (*server_proc_ready_fn)(uint16_t port, void *arg);

/* server_proc_wait: poll ready(port, arg) until it holds (true) or the child exits (false:
 * its port was taken, or a bad configuration; *pid becomes 0) or timeout_ms pass (false:
 * the child is killed). Blocks for up to timeout_ms. */
bool server_proc_wait(pid_t *pid, uint16_t port, server_proc_ready_fn ready, void *arg, int timeout_ms);

/* Start the server on port (write its configuration, server_proc_spawn it): a pid or 0. */
typedef pid_t (*server_proc_launch_fn)(uint16_t port, void *arg);

/* server_proc_start: pick a free port, launch(port, arg), server_proc_wait for ready; if the
 * child exits first (another process took the port in between), again on a new port, up
 * to 5 times. On success *pid and *port are the running server's. Blocks for up to
 * 5 * timeout_ms. Returns false, with the reason on stderr, if it would not start. */
bool server_proc_start(pid_t *pid, uint16_t *port, server_proc_launch_fn launch, server_proc_ready_fn ready, void *arg,
                       int timeout_ms);

/* server_proc_kill: SIGKILL *pid (if not 0) and reap it, a crash as a client sees one;
 * *pid becomes 0. */
void server_proc_kill(pid_t *pid);

/* server_proc_connects: a ready probe: a TCP connection to 127.0.0.1:port is accepted
 * (arg unused). */
bool server_proc_connects(uint16_t port, void *arg);

/* server_proc_file_has: whether the file at path contains needle (a log line, say). */
bool server_proc_file_has(const char *path, const char *needle);

#endif
