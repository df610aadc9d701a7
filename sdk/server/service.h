/* lifeline-server under a service manager: systemd's readiness protocol (sd_notify), when
 * the program is built with libsystemd (LIFELINE_HAVE_SYSTEMD); otherwise these do nothing.
 * Each is a no-op too when the server was not started by systemd (no NOTIFY_SOCKET). */
#ifndef LIFELINE_SERVER_SERVICE_H
#define LIFELINE_SERVER_SERVICE_H

/* Listening (and serving --metrics, if asked): READY=1 with a STATUS line. */
void service_ready(const char *status);
/* SIGHUP taken: RELOADING=1 before the reload, then READY=1 after it. */
void service_reloading(void);
void service_reloaded(void);
/* SIGINT/SIGTERM taken: STOPPING=1, so systemd knows the stop is under way. */
void service_stopping(void);

#endif
