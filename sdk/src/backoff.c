#include "backoff.h"

uint32_t ll_backoff_delay(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint64_t random)
{
    uint64_t ceiling = min_ms;
    /* Doubling stops at max (or at 0, which never grows), so huge attempt counts cost
     * at most 33 steps and never overflow. */
    for (unsigned i = 1; i < attempt && ceiling < max_ms && ceiling > 0; i++) {
        ceiling *= 2;
    }
    if (ceiling > max_ms) {
        ceiling = max_ms;
    }
    return (uint32_t)(random % (ceiling + 1));
}
