/* sd_notify for lifeline-server (service.h). */
#include "service.h"

#ifdef LIFELINE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

#include <stdio.h>
#include <time.h>

void service_ready(const char *status)
{
    (void)sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void service_reloading(void)
{
    /* MONOTONIC_USEC lets a manager that reloads by notification (Type=notify-reload) match
     * this reload to its request; older ones ignore it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                     (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
}

void service_reloaded(void)
{
    (void)sd_notify(0, "READY=1");
}

void service_stopping(void)
{
    (void)sd_notify(0, "STOPPING=1");
}

#else

void service_ready(const char *status)
{
    (void)status;
}

void service_reloading(void)
{
}

void service_reloaded(void)
{
}

void service_stopping(void)
{
}

#endif
