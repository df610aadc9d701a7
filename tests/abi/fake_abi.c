/*
 * A library that calls itself Lifeline but is not what the Python binding mirrors, for
 * python_mismatch.py: it reports FAKE_VERSION, and sdk_message FAKE_MESSAGE_EXTRA bytes
 * bigger than it is. It has no other function: the binding must refuse it at its ABI check,
 * before it looks anything else up.
 */
#include <stddef.h>
#include <string.h>

#include "lifeline/server.h"

const char *sdk_version(void);
size_t sdk_struct_size(const char *name);

const char *sdk_version(void)
{
    return FAKE_VERSION;
}

size_t sdk_struct_size(const char *name)
{
    if (strcmp(name, "sdk_message") == 0) {
        return sizeof(sdk_message) + FAKE_MESSAGE_EXTRA;
    }
    if (strcmp(name, "sdk_event") == 0) {
        return sizeof(sdk_event);
    }
    if (strcmp(name, "sdk_stats") == 0) {
        return sizeof(sdk_stats);
    }
    if (strcmp(name, "sdk_retry_rule") == 0) {
        return sizeof(sdk_retry_rule);
    }
    if (strcmp(name, "sdk_session_event") == 0) {
        return sizeof(sdk_session_event);
    }
    if (strcmp(name, "sdk_session_info") == 0) {
        return sizeof(sdk_session_info);
    }
    return 0;
}
