/* Reconnect delay policy: exponential ceiling with full jitter (AWS architecture blog,
 * "Exponential Backoff And Jitter"). A pure function: no clock, no I/O. */
#ifndef LL_BACKOFF_H
#define LL_BACKOFF_H

#include <stdint.h>

/* Delay before attempt number `attempt` (1 = first retry): uniform in
 * [0, min(max_ms, min_ms * 2^(attempt-1))], drawn from `random` (any 64-bit value). */
uint32_t ll_backoff_delay(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint64_t random);

#endif
