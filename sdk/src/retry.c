/* The reconnect policy (see retry.h): cause of a failure, and stop or delay for it. */
#include "retry.h"

#include "backoff.h"
#include "ll.h"

#include <string.h>

/* What the connection core says when the peer fell silent (ll_conn_tick). */
#define HEARTBEAT_DETAIL "no heartbeat"

void ll_retry_defaults(sdk_retry_rule policy[SDK_RETRY_CAUSES])
{
    static const sdk_retry_rule defaults[SDK_RETRY_CAUSES] = LL_RETRY_DEFAULT_POLICY;
    memcpy(policy, defaults, sizeof(defaults));
}

bool ll_retry_valid(const sdk_retry_rule policy[SDK_RETRY_CAUSES])
{
    for (int i = 0; i < SDK_RETRY_CAUSES; i++) {
        if (policy[i].min_ms < 0 || (policy[i].max_ms >= 0 && policy[i].max_ms < policy[i].min_ms)) {
            return false;
        }
    }
    return true;
}

sdk_retry_cause ll_retry_cause(int err, const char *detail)
{
    switch (err) {
    case SDK_ECONNREFUSED:
        return SDK_RETRY_REFUSED;
    case SDK_EDISCONNECTED:
        return SDK_RETRY_RESET;
    case SDK_ETIMEDOUT:
        return strncmp(detail, HEARTBEAT_DETAIL, strlen(HEARTBEAT_DETAIL)) == 0 ? SDK_RETRY_HEARTBEAT
                                                                                : SDK_RETRY_TIMEOUT;
    case SDK_EPEERAUTH:
        return SDK_RETRY_CERTIFICATE;
    case SDK_EREJECTED:
        return SDK_RETRY_REJECTED;
    case SDK_EPROTO:
        return SDK_RETRY_PROTOCOL;
    default:
        return SDK_RETRY_OTHER;
    }
}

ll_retry_verdict ll_retry_decide(const sdk_retry_rule policy[SDK_RETRY_CAUSES], uint32_t base_ms, uint32_t cap_ms,
                                 sdk_retry_cause cause, unsigned attempt, uint64_t random)
{
    ll_retry_verdict v = {.cause = cause};
    const sdk_retry_rule *r = &policy[(unsigned)cause < SDK_RETRY_CAUSES ? cause : SDK_RETRY_OTHER];
    uint32_t min_ms = (uint32_t)LL_MAX(r->min_ms, 0);
    uint32_t max_ms = r->max_ms < 0 ? cap_ms : (uint32_t)r->max_ms;

    if (r->stop) {
        v.stop = true;
        return v;
    }
    max_ms = LL_MAX(max_ms, min_ms);
    v.delay_ms = min_ms + ll_backoff_delay(attempt, base_ms, max_ms - min_ms, random);
    return v;
}

const char *sdk_retry_cause_name(int cause)
{
    static const char *const names[SDK_RETRY_CAUSES] = {"other",   "refused",     "reset",    "heartbeat",
                                                        "timeout", "certificate", "rejected", "protocol"};

    return cause >= 0 && cause < SDK_RETRY_CAUSES ? names[cause] : "unknown";
}
