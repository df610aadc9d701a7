/*
 * The reconnect policy: which cause a failure has, and what to do about it (stop, or wait
 * how long). A pure function of (policy, cause, attempt, random): no clock, no I/O, no
 * locks, so it is tested without sleeping. The policy is sdk_config.reconnect_policy with
 * reconnect_min_ms / reconnect_max_ms; defaults in LL_RETRY_DEFAULT_POLICY (sdk.h documents them).
 */
#ifndef LL_RETRY_H
#define LL_RETRY_H

#include "lifeline/sdk.h"

#include <stdbool.h>
#include <stdint.h>

/* The defaults, as an initializer (client_defaults is a static struct): retry every cause
 * with the shared backoff, except a certificate failure (at least 1000 ms between attempts:
 * it needs a person) and a rejection (stop). */
#define LL_RETRY_BACKOFF                         \
    {                                            \
        .stop = false, .min_ms = 0, .max_ms = -1 \
    }
#define LL_RETRY_DEFAULT_POLICY                                                                                    \
    {                                                                                                              \
        [SDK_RETRY_OTHER] = LL_RETRY_BACKOFF, [SDK_RETRY_REFUSED] = LL_RETRY_BACKOFF,                              \
        [SDK_RETRY_RESET] = LL_RETRY_BACKOFF, [SDK_RETRY_HEARTBEAT] = LL_RETRY_BACKOFF,                            \
        [SDK_RETRY_TIMEOUT] = LL_RETRY_BACKOFF,                                                                    \
        [SDK_RETRY_CERTIFICATE] = {.stop = false, .min_ms = 1000, .max_ms = -1},                                   \
        [SDK_RETRY_REJECTED] = {.stop = true, .min_ms = 0, .max_ms = -1}, [SDK_RETRY_PROTOCOL] = LL_RETRY_BACKOFF, \
    }
_Static_assert(SDK_RETRY_CAUSES == 8, "LL_RETRY_DEFAULT_POLICY names every cause");

/* The defaults above, into policy. */
void ll_retry_defaults(sdk_retry_rule policy[SDK_RETRY_CAUSES]);

/* Whether every rule is in range (min_ms >= 0; max_ms < 0 or >= min_ms). */
bool ll_retry_valid(const sdk_retry_rule policy[SDK_RETRY_CAUSES]);

/* The cause of a failure with code err and detail (never NULL): ETIMEDOUT is a heartbeat
 * timeout when the link says so ("no heartbeat ..."), else a connect/handshake timeout. */
sdk_retry_cause ll_retry_cause(int err, const char *detail);

typedef struct ll_retry_verdict {
    sdk_retry_cause cause;
    bool stop;         /* the rule says give up */
    uint32_t delay_ms; /* else: wait this long before the attempt */
} ll_retry_verdict;

/*
 * What to do before attempt number `attempt` (1 = the first retry) after a failure of
 * cause: its rule's stop, or a delay of min_ms plus full jitter over an exponential
 * ceiling that starts at base_ms and grows to (max_ms - min_ms) (ll_backoff_delay), where
 * max_ms < 0 means cap_ms. random is any 64-bit value.
 */
ll_retry_verdict ll_retry_decide(const sdk_retry_rule policy[SDK_RETRY_CAUSES], uint32_t base_ms, uint32_t cap_ms,
                                 sdk_retry_cause cause, unsigned attempt, uint64_t random);

#endif
