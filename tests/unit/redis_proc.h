/*
 * A private redis-server for a test: started on a free loopback port in a temp directory
 * with persistence off, ready once it answers PING, killed at the end (server_proc.h does
 * the process part). Never the system's service. The binary is $LIFELINE_REDIS_SERVER, else
 * redis-server on the PATH. It dies with the test (PR_SET_PDEATHSIG), so a crashed or
 * timed-out test leaves no Redis behind.
 */
#ifndef LL_TEST_REDIS_PROC_H
#define LL_TEST_REDIS_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct redis_proc {
    pid_t pid; /* 0: not running */
    uint16_t port;
    char dir[256];
    char url[64]; /* "redis://127.0.0.1:<port>" */
} redis_proc;

/* Start on a free port (picked by binding 127.0.0.1:0; a new one is tried if another process
 * took it first). Returns false, with the reason on stderr, if it would not start. */
bool redis_proc_start(redis_proc *r);
/* Start again on r->port after redis_proc_kill (same directory). */
bool redis_proc_restart(redis_proc *r);
/* SIGKILL it and reap it: a crash, as a store client sees one. */
void redis_proc_kill(redis_proc *r);
/* Kill it if running and remove its directory. */
void redis_proc_stop(redis_proc *r);

/* A loopback port nobody listens on (bound, then closed), for "unreachable" tests. */
uint16_t redis_proc_free_port(void);

#endif
