/*
 * Internal conventions (see docs/DEVELOPMENT.md): public names are sdk_*, internal
 * non-static names ll_<module>_<verb>. Functions return 0 or a positive sdk_err.
 */
#ifndef LL_H
#define LL_H

#include "lifeline/sdk.h"

#include <stdio.h>

/* Return the error of a call that failed. */
#define LL_GUARD(expr)       \
    do {                     \
        int ll_rc_ = (expr); \
        if (ll_rc_ != 0) {   \
            return ll_rc_;   \
        }                    \
    } while (0)

/* Return err unless cond holds. */
#define LL_ENSURE(cond, err) \
    do {                     \
        if (!(cond)) {       \
            return (err);    \
        }                    \
    } while (0)

/* Format a detail string into a fixed buffer (never overflows, always terminated). */
#define LL_DETAIL(buf, len, ...) ((void)snprintf((buf), (len), __VA_ARGS__))

#define LL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* names[v] for an enum value v in 0..n-1, else "unknown" (the *_name functions). */
const char *ll_enum_name(const char *const *names, size_t n, int v);
#define LL_ENUM_NAME(names, v) ll_enum_name((names), sizeof(names) / sizeof((names)[0]), (v))

/* Record why the calling thread's sdk_connect (or, for 0.1 programs, sdk_server_start)
 * failed, read back with sdk_last_connect_error (and sdk_last_call_error). Returns err. */
int ll_set_connect_error(int err, const char *detail);
/* Record why the calling thread's last call failed (read back with sdk_last_call_error).
 * Returns err. */
int ll_set_call_error(int err, const char *detail);

#endif
