#include "backoff.h"

uint32_t ll_backoff_delay(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint64_t random)
{
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    uint64_t ceiling = min_ms;
    for (unsigned i = 1; i < attempt && ceiling < max_ms; i++) {
        ceiling *= 2;
    }
    if (ceiling > max_ms) {
        ceiling = max_ms;
    }
    return (uint32_t)(random % (ceiling + 1));
}
